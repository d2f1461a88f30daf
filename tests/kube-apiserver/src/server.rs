//! The test-facing handle: start/stop, client configuration, direct object access for
//! assertions, pod scripts, exec handlers, the request log and fault injection.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use serde_json::Value;
use tokio::task::JoinHandle;

use crate::crud::create_object;
use crate::exec::{ExecCall, ExecFuture, ExecResult, Handler};
use crate::gc::{self, DeleteOptions, Propagation};
use crate::kubelet::{self, PodScript, PodState};
use crate::selectors::LabelSelector;
use crate::state::{Fault, Options, RequestRecord, ServerState};
use crate::status::ApiError;
use crate::{controller, routing};

/// A running API server on `127.0.0.1:<random port>`; stops when dropped.
pub struct KubeApiServer {
    state: Arc<ServerState>,
    address: std::net::SocketAddr,
    tasks: Vec<JoinHandle<()>>,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
}

impl KubeApiServer {
    /// Binds `127.0.0.1:0` and starts serving, with the controllers `options` asks for.
    pub async fn start(options: Options) -> std::io::Result<Self> {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0)).await?;
        let address = listener.local_addr()?;
        let state = ServerState::new(options);
        *state.address.lock().unwrap_or_else(|p| p.into_inner()) = address.to_string();
        let router = axum::Router::new()
            .fallback(routing::dispatch)
            .with_state(state.clone());
        let (shutdown, stopped) = tokio::sync::oneshot::channel::<()>();
        let mut tasks = vec![tokio::spawn(async move {
            let serve = axum::serve(listener, router).with_graceful_shutdown(async {
                let _ = stopped.await;
            });
            if let Err(error) = serve.await {
                tracing::warn!(%error, "kube-apiserver stopped");
            }
        })];
        tasks.push(tokio::spawn(kubelet::run(state.clone())));
        tasks.push(tokio::spawn(garbage_collector(state.clone())));
        if state.options.deployment_controller {
            tasks.push(tokio::spawn(controller::run(state.clone())));
        }
        Ok(Self {
            state,
            address,
            tasks,
            shutdown: Some(shutdown),
        })
    }

    /// `http://127.0.0.1:<port>` — plain HTTP on loopback, which kube-rs accepts as a cluster URL.
    pub fn url(&self) -> String {
        format!("http://{}", self.address)
    }

    pub fn address(&self) -> std::net::SocketAddr {
        self.address
    }

    /// The bearer token clients must send (`None` when authentication is off).
    pub fn token(&self) -> Option<&str> {
        self.state.options.token.as_deref()
    }

    /// A kubeconfig for this server: one cluster, one user with the bearer token, one context
    /// selecting `Options::namespace`. Load it with `kube::config::Kubeconfig::from_yaml`.
    pub fn kubeconfig_yaml(&self) -> String {
        let user = match self.token() {
            Some(token) => format!("    token: {token}\n"),
            None => "    {}\n".to_string(),
        };
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: test\n  cluster:\n    server: {url}\nusers:\n- name: test\n  user:\n{user}contexts:\n- name: test\n  context:\n    cluster: test\n    user: test\n    namespace: {ns}\ncurrent-context: test\n",
            url = self.url(),
            ns = self.state.options.namespace,
        )
    }

    /// Writes [`Self::kubeconfig_yaml`] to `path` (for code that reads `KUBECONFIG`).
    pub fn write_kubeconfig(&self, path: &std::path::Path) -> std::io::Result<()> {
        std::fs::write(path, self.kubeconfig_yaml())
    }

    fn kind(&self, kind: &str) -> Result<crate::resources::ResourceType, ApiError> {
        self.state
            .registry
            .find(kind)
            .cloned()
            .ok_or_else(|| ApiError::bad_request(format!("unknown kind {kind}")))
    }

    /// Objects of `kind` (`"Pod"`, `"pods"`, `"deployments.apps"`…) in `namespace` (`""`: all).
    pub fn objects(&self, kind: &str, namespace: &str) -> Vec<Value> {
        let Ok(rt) = self.kind(kind) else {
            return Vec::new();
        };
        let store = self.state.store.lock();
        store
            .list(&rt, (!namespace.is_empty()).then_some(namespace))
            .into_iter()
            .cloned()
            .collect()
    }

    pub fn get(&self, kind: &str, namespace: &str, name: &str) -> Option<Value> {
        let rt = self.kind(kind).ok()?;
        self.state.object(&rt, namespace, name)
    }

    /// Creates an object directly (as field manager `test`), bypassing HTTP.
    pub fn create(&self, object: Value) -> Result<Value, ApiError> {
        let api_version = object["apiVersion"].as_str().unwrap_or_default();
        let kind = object["kind"].as_str().unwrap_or_default();
        let rt = self
            .state
            .registry
            .by_kind(api_version, kind)
            .cloned()
            .ok_or_else(|| ApiError::bad_request(format!("unknown kind {api_version}/{kind}")))?;
        let ns = object
            .pointer("/metadata/namespace")
            .and_then(Value::as_str)
            .unwrap_or(&self.state.options.namespace)
            .to_string();
        let ns = if rt.namespaced { ns } else { String::new() };
        create_object(&self.state, &rt, &ns, object, "test", false)
    }

    /// Deletes with background propagation, as `kubectl delete` does.
    pub fn delete(&self, kind: &str, namespace: &str, name: &str) -> Result<(), ApiError> {
        let rt = self.kind(kind)?;
        let options = DeleteOptions {
            propagation: Propagation::Background,
            uid: None,
            resource_version: None,
        };
        gc::delete(&mut self.state.store.lock(), &rt, namespace, name, &options).map(|_| ())
    }

    /// Puts a pod into `state` now (stopping its script). False if the pod does not exist.
    pub fn set_pod_state(&self, namespace: &str, name: &str, state: PodState) -> bool {
        self.state.pod_scripts.bump(namespace, name);
        kubelet::set_state(&self.state, namespace, name, &state)
    }

    /// New pods matching `selector` (e.g. `clawfleet.io/instance=u1`) follow `script`.
    pub fn script_pods(&self, selector: &str, script: PodScript) -> Result<(), ApiError> {
        self.state
            .pod_scripts
            .add(LabelSelector::parse(selector)?, script);
        Ok(())
    }

    /// The script of pods no selector matches (default: Pending, Running+Ready after `pod_startup`).
    pub fn set_default_pod_script(&self, script: PodScript) {
        self.state.pod_scripts.set_default(script);
    }

    /// Decides what `pods/exec` commands do from now on.
    pub fn set_exec_handler(
        &self,
        handler: impl Fn(ExecCall) -> ExecResult + Send + Sync + 'static,
    ) {
        self.put_exec_handler(Handler::Blocking(Arc::new(handler)));
    }

    /// Like [`Self::set_exec_handler`], for commands that take time (`sleep 30`, a command
    /// waiting for input): the future runs while the session is open, and is dropped, as
    /// the kubelet kills the command, when the client hangs up first.
    pub fn set_async_exec_handler<F, Fut>(&self, handler: F)
    where
        F: Fn(ExecCall) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = ExecResult> + Send + 'static,
    {
        self.put_exec_handler(Handler::Async(Arc::new(move |call| {
            Box::pin(handler(call)) as ExecFuture
        })));
    }

    fn put_exec_handler(&self, handler: Handler) {
        *self
            .state
            .exec_handler
            .lock()
            .unwrap_or_else(|p| p.into_inner()) = Some(handler);
    }

    /// Exec sessions whose WebSocket is still open (a client that gave up must close its own).
    pub fn open_exec_sessions(&self) -> usize {
        self.state.exec_sessions.load(Ordering::SeqCst)
    }

    /// Appends to what `pods/{name}/log` returns.
    pub fn append_pod_log(&self, namespace: &str, pod: &str, text: &str) {
        let mut logs = self
            .state
            .pod_logs
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        logs.entry((namespace.to_string(), pod.to_string()))
            .or_default()
            .push_str(text);
    }

    /// Every request served so far, in order.
    pub fn request_log(&self) -> Vec<RequestRecord> {
        self.state
            .requests
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    pub fn clear_request_log(&self) {
        self.state
            .requests
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clear();
    }

    /// The next `times` requests for `resource` (plural, e.g. `pods`; `None`: any) and `verb`
    /// (`get`, `list`, `watch`, `create`, `update`, `patch`, `delete`, `exec`…; `None`: any)
    /// fail with `code` (500 InternalError, 503 ServiceUnavailable, 429, 504, 409 Conflict,
    /// 403 Forbidden).
    pub fn fail_requests(
        &self,
        resource: Option<&str>,
        verb: Option<&str>,
        code: u16,
        times: usize,
    ) {
        self.state
            .faults
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(Fault {
                resource: resource.map(str::to_string),
                verb: verb.map(str::to_string),
                effect: code,
                remaining: times,
            });
    }

    /// Forgets every injected failure and delay not yet used up.
    pub fn clear_faults(&self) {
        self.state
            .faults
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clear();
        self.state
            .delays
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clear();
    }

    /// The next `times` requests for `resource` and `verb` (as in [`Self::fail_requests`])
    /// are held for `delay` before being served: a write in flight for that long.
    pub fn delay_requests(
        &self,
        resource: Option<&str>,
        verb: Option<&str>,
        delay: std::time::Duration,
        times: usize,
    ) {
        self.state
            .delays
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(Fault {
                resource: resource.map(str::to_string),
                verb: verb.map(str::to_string),
                effect: delay,
                remaining: times,
            });
    }

    /// Ends every open watch (and followed log) stream; clients see a clean end of stream.
    pub fn drop_watches(&self) {
        self.state.watch_kill.send_modify(|n| *n += 1);
    }

    /// Forgets the change history (like etcd compaction): watches resuming from an older
    /// resourceVersion get an ERROR event with 410 Expired and must relist.
    pub fn compact_history(&self) {
        self.state.store.lock().compact();
    }

    /// The current global resourceVersion.
    pub fn resource_version(&self) -> u64 {
        self.state.store.lock().resource_version()
    }

    /// The oldest resourceVersion a watch may still resume from.
    pub fn history_floor(&self) -> u64 {
        self.state.store.lock().history_floor()
    }
}

async fn garbage_collector(state: Arc<ServerState>) {
    let wake = state.store.lock().gc_wake.clone();
    loop {
        wake.notified().await;
        tokio::time::sleep(state.options.gc_delay).await;
        gc::collect(&mut state.store.lock());
    }
}

impl Drop for KubeApiServer {
    fn drop(&mut self) {
        self.drop_watches();
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
        // The listener task (first) ends by itself once graceful shutdown completes; the
        // controllers are ours to stop.
        for task in self.tasks.drain(1..) {
            task.abort();
        }
    }
}
