//! Options and the state shared by the HTTP handlers, the controllers and the test handle.

use std::sync::atomic::AtomicUsize;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::Value;

use crate::exec::{ExecHandler, Handler};
use crate::kubelet::PodScripts;
use crate::resources::{Registry, ResourceType};
use crate::store::Store;

/// How to start the server. `Options::default()` is what most tests want.
#[derive(Clone)]
pub struct Options {
    /// Bearer token clients must present (`None` disables authentication).
    pub token: Option<String>,
    /// Run the built-in Deployment/ReplicaSet controller.
    pub deployment_controller: bool,
    /// How long a pod stays Pending before the default script makes it Running and Ready.
    pub pod_startup: Duration,
    /// More kinds (e.g. other custom resources) on top of the built-in table.
    pub extra_resources: Vec<ResourceType>,
    /// How many changes are kept for watches; older resourceVersions get 410 Expired.
    pub watch_history: usize,
    /// How often watches with `allowWatchBookmarks=true` get a BOOKMARK.
    pub bookmark_interval: Duration,
    /// Delay before the garbage collector deletes dependents of a deleted owner.
    pub gc_delay: Duration,
    /// WebSocket subprotocols offered for exec, in preference order.
    pub exec_protocols: Vec<String>,
    /// The namespace of the kubeconfig's context.
    pub namespace: String,
    /// What `pods/exec` runs; by default every command "is not found" (exit 127).
    pub exec_handler: Option<ExecHandler>,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            token: Some("clawfleet-test-token".into()),
            deployment_controller: true,
            pod_startup: Duration::from_millis(100),
            extra_resources: Vec::new(),
            watch_history: 1000,
            bookmark_interval: Duration::from_secs(5),
            gc_delay: Duration::from_millis(10),
            exec_protocols: vec!["v5.channel.k8s.io".into(), "v4.channel.k8s.io".into()],
            namespace: "default".into(),
            exec_handler: None,
        }
    }
}

impl std::fmt::Debug for Options {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Options")
            .field("deployment_controller", &self.deployment_controller)
            .field("pod_startup", &self.pod_startup)
            .field("watch_history", &self.watch_history)
            .finish_non_exhaustive()
    }
}

/// One request as the server saw it, for assertions such as "this List was served from a cache".
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestRecord {
    pub method: String,
    pub path: String,
    /// The raw query string (empty if none).
    pub query: String,
    pub content_type: Option<String>,
    pub accept: Option<String>,
    /// The HTTP status answered (200 for a watch that started streaming, 101 for exec).
    pub status: u16,
    /// `get`, `list`, `watch`, `create`, `update`, `patch`, `delete`, `deletecollection`,
    /// `exec`, `log`, `discovery`.
    pub verb: String,
    /// The resource's plural (`pods`), empty for discovery.
    pub resource: String,
}

impl RequestRecord {
    /// True for a watch request (`watch=true` / `watch=1`).
    pub fn is_watch(&self) -> bool {
        self.verb == "watch"
    }
}

/// A pending injected failure (`T` = status code) or slowness (`T` = delay).
#[derive(Debug, Clone)]
pub(crate) struct Fault<T> {
    pub resource: Option<String>,
    pub verb: Option<String>,
    pub effect: T,
    pub remaining: usize,
}

/// Takes one use of the first fault matching `resource` and `verb`.
fn take<T: Clone>(faults: &Mutex<Vec<Fault<T>>>, resource: &str, verb: &str) -> Option<T> {
    let mut faults = faults.lock().unwrap_or_else(|p| p.into_inner());
    let fault = faults.iter_mut().find(|f| {
        f.remaining > 0
            && f.resource.as_deref().is_none_or(|r| r == resource)
            && f.verb.as_deref().is_none_or(|v| v == verb)
    })?;
    fault.remaining -= 1;
    let effect = fault.effect.clone();
    faults.retain(|f| f.remaining > 0);
    Some(effect)
}

pub(crate) struct ServerState {
    pub options: Options,
    pub registry: Registry,
    pub store: Store,
    pub requests: Mutex<Vec<RequestRecord>>,
    pub faults: Mutex<Vec<Fault<u16>>>,
    pub delays: Mutex<Vec<Fault<Duration>>>,
    pub exec_handler: Mutex<Option<Handler>>,
    /// Exec sessions whose WebSocket is still open.
    pub exec_sessions: AtomicUsize,
    pub pod_scripts: PodScripts,
    pub pod_logs: Mutex<std::collections::HashMap<(String, String), String>>,
    /// Bumped to end every open watch stream (fault injection and shutdown).
    pub watch_kill: tokio::sync::watch::Sender<u64>,
    pub address: Mutex<String>,
}

impl ServerState {
    pub(crate) fn new(options: Options) -> Arc<Self> {
        let registry = Registry::new(&options.extra_resources);
        let store = Store::new(options.watch_history);
        let (watch_kill, _) = tokio::sync::watch::channel(0);
        Arc::new(Self {
            exec_handler: Mutex::new(options.exec_handler.clone().map(Handler::Blocking)),
            exec_sessions: AtomicUsize::new(0),
            pod_scripts: PodScripts::new(options.pod_startup),
            options,
            registry,
            store,
            requests: Mutex::new(Vec::new()),
            faults: Mutex::new(Vec::new()),
            delays: Mutex::new(Vec::new()),
            pod_logs: Mutex::new(Default::default()),
            watch_kill,
            address: Mutex::new(String::new()),
        })
    }

    /// Takes one matching injected fault, if any.
    pub(crate) fn take_fault(&self, resource: &str, verb: &str) -> Option<u16> {
        take(&self.faults, resource, verb)
    }

    /// Takes one matching injected delay, if any.
    pub(crate) fn take_delay(&self, resource: &str, verb: &str) -> Option<Duration> {
        take(&self.delays, resource, verb)
    }

    pub(crate) fn record(&self, record: RequestRecord) {
        self.requests
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(record);
    }

    pub(crate) fn object(&self, rt: &ResourceType, ns: &str, name: &str) -> Option<Value> {
        self.store.lock().get(rt, ns, name).cloned()
    }
}
