//! Every call the runtime makes to the Kubernetes API, each naming the verbs it needs
//! from the [`rbac`] table (checked in debug builds), so the Role in
//! `deploy/base/lifecycle-rbac.yaml` and the code cannot drift apart unnoticed.

use std::{future::Future, time::Duration};

use clawfleet_kit::metrics::kubernetes_api::KubernetesApiMetricsLayer;
use futures_util::Stream;
use k8s_openapi::api::core::v1::Pod;
use kube::{
    Client,
    api::{
        Api, AttachParams, AttachedProcess, DeleteParams, DynamicObject, ListParams, Patch,
        PatchParams, Preconditions,
    },
    client::ClientBuilder,
    config::{KubeConfigOptions, Kubeconfig},
    runtime::{WatchStreamExt, watcher},
};

use super::{
    api_spans,
    config::ClusterAccess,
    failure::ApiFailure,
    kinds::ObjectKind,
    manifests::DesiredObject,
    names::{FIELD_MANAGER, MANAGED_SELECTOR},
    rbac::{self, Verb},
};

/// Why the runtime could not reach the cluster.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    #[error("cannot read the kubeconfig: {0}")]
    Kubeconfig(#[from] kube::config::KubeconfigError),
    #[error("no in-cluster config and no kubeconfig: {0}")]
    Infer(#[from] kube::config::InferConfigError),
    #[error("cannot build the kubernetes client: {0}")]
    Client(#[from] kube::Error),
}

/// Objects per page of the watchers' lists.
const LIST_PAGE_SIZE: u32 = 100;

/// How long one call may take unless configured otherwise.
pub const DEFAULT_CALL_TIMEOUT: Duration = Duration::from_secs(15);

/// Builds a client from the in-cluster service account or a kubeconfig.
pub async fn connect(access: &ClusterAccess) -> Result<Client, ConnectError> {
    let config = match access {
        ClusterAccess::Infer => kube::Config::infer().await?,
        ClusterAccess::Kubeconfig(path) => {
            let kubeconfig = Kubeconfig::read_from(path)?;
            kube::Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default()).await?
        }
    };
    // Every request gets a client span and is counted by verb and status code
    // (clawfleet_kubernetes_api_requests_total).
    Ok(ClientBuilder::try_from(config)?
        .with_layer(&api_spans::layer())
        .with_layer(&KubernetesApiMetricsLayer)
        .build())
}

fn check(group: &str, resource: &str, verbs: &[Verb]) {
    debug_assert!(
        verbs
            .iter()
            .all(|verb| rbac::allows(group, resource, *verb)),
        "{verbs:?} on {group}/{resource} is not in the rbac table"
    );
}

/// The namespace's API, as the runtime uses it.
#[derive(Clone)]
pub struct ClusterApi {
    client: Client,
    namespace: String,
    call_timeout: Duration,
}

impl ClusterApi {
    pub fn client(&self) -> Client {
        self.client.clone()
    }

    pub fn new(client: Client, namespace: impl Into<String>) -> Self {
        Self {
            client,
            namespace: namespace.into(),
            call_timeout: DEFAULT_CALL_TIMEOUT,
        }
    }

    /// Bounds every call by `call_timeout` (see [`super::config::KubernetesConfig::api_timeout`]).
    pub fn with_call_timeout(mut self, call_timeout: Duration) -> Self {
        self.call_timeout = call_timeout;
        self
    }

    /// kube's client retries 429, 503 and 504 with exponential backoff for minutes; a
    /// caller waiting on us must hear "unavailable" long before that.
    async fn bounded<T>(
        &self,
        call: impl Future<Output = Result<T, kube::Error>>,
    ) -> Result<T, kube::Error> {
        tokio::time::timeout(self.call_timeout, call)
            .await
            .unwrap_or_else(|_| {
                Err(kube::Error::Service(Box::new(std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    format!("no answer within {:?}", self.call_timeout),
                ))))
            })
    }

    fn dynamic(&self, kind: ObjectKind) -> Api<DynamicObject> {
        Api::namespaced_with(self.client.clone(), &self.namespace, &kind.api_resource())
    }

    /// Server-side apply under the platform's field manager. `force` takes over fields a
    /// stale manager (a person's `kubectl edit`, an old version of us) still owns.
    ///
    /// Not retried on 409: a forced apply under one field manager has no field conflicts,
    /// and our bodies carry no resourceVersion, so the apiserver re-applies the patch to
    /// the newest object itself when another writer (a controller's status update, the
    /// garbage collector) got in between, and creates it when it vanished meanwhile. A 409
    /// that still arrives is reported as unavailable, and the caller (the reconciler, drift
    /// repair, a person) retries on its own schedule instead of us hammering here.
    pub async fn apply(&self, object: &DesiredObject) -> Result<(), ApiFailure> {
        check(object.kind.group(), object.kind.plural(), rbac::APPLY);
        let params = PatchParams::apply(FIELD_MANAGER).force();
        self.bounded(self.dynamic(object.kind).patch(
            &object.name,
            &params,
            &Patch::Apply(&object.body),
        ))
        .await
        .map(|_| ())
        .map_err(|source| self.failure("patch", object.kind, &object.name, source))
    }

    /// Deletes one object; dependents (a Deployment's ReplicaSets and pods) go in the
    /// foreground, so nothing is orphaned. Returns false when it was already gone.
    pub async fn delete(&self, kind: ObjectKind, name: &str) -> Result<bool, ApiFailure> {
        check(kind.group(), kind.plural(), rbac::DELETE);
        let params = match kind {
            ObjectKind::Deployment => DeleteParams::foreground(),
            _ => DeleteParams::background(),
        };
        match self.bounded(self.dynamic(kind).delete(name, &params)).await {
            Ok(_) => Ok(true),
            Err(kube::Error::Api(status)) if status.code == 404 => Ok(false),
            Err(source) => Err(self.failure("delete", kind, name, source)),
        }
    }

    /// Deletes the object only if it is still the one with `uid` (not one someone made
    /// since under the same name). Returns false when it is gone or was replaced.
    pub async fn delete_exact(
        &self,
        kind: ObjectKind,
        name: &str,
        uid: &str,
    ) -> Result<bool, ApiFailure> {
        check(kind.group(), kind.plural(), rbac::DELETE);
        let params = DeleteParams {
            preconditions: Some(Preconditions {
                uid: Some(uid.to_owned()),
                resource_version: None,
            }),
            ..DeleteParams::background()
        };
        match self.bounded(self.dynamic(kind).delete(name, &params)).await {
            Ok(_) => Ok(true),
            Err(kube::Error::Api(status)) if matches!(status.code, 404 | 409) => Ok(false),
            Err(source) => Err(self.failure("delete", kind, name, source)),
        }
    }

    /// This platform's objects of `kind` in the namespace, listed once; none when the
    /// cluster does not serve the kind (a ManagedCertificate outside GKE).
    pub async fn list_managed(&self, kind: ObjectKind) -> Result<Vec<DynamicObject>, ApiFailure> {
        check(kind.group(), kind.plural(), &[Verb::List]);
        let list_params = ListParams::default().labels(MANAGED_SELECTOR);
        match self.bounded(self.dynamic(kind).list(&list_params)).await {
            Ok(list) => Ok(list.items),
            Err(kube::Error::Api(status)) if status.code == 404 => Ok(Vec::new()),
            Err(source) => Err(self.failure("list", kind, "", source)),
        }
    }

    /// List-then-watch of this platform's objects of `kind` in the namespace, with
    /// backoff on errors.
    pub fn watch(
        &self,
        kind: ObjectKind,
    ) -> impl Stream<Item = Result<watcher::Event<DynamicObject>, watcher::Error>> + Send + use<>
    {
        check(kind.group(), kind.plural(), rbac::WATCH);
        watcher(
            self.dynamic(kind),
            // Small pages: a list's objects are held whole until the page is read, and
            // that peak, not the lean cache, would set the RSS of a start with 10,000
            // instances (docs/capacity.md#what-the-lifecycle-keeps).
            watcher::Config::default()
                .labels(MANAGED_SELECTOR)
                .page_size(LIST_PAGE_SIZE),
        )
        .default_backoff()
        // managedFields are most of an object's bytes and nothing here reads them.
        .modify(super::lean::strip_managed_fields)
    }

    /// `pods/exec` in `container` of `pod`.
    pub async fn exec(
        &self,
        pod: &str,
        argv: Vec<String>,
        params: &AttachParams,
    ) -> Result<AttachedProcess, ApiFailure> {
        check(ObjectKind::Pod.group(), rbac::EXEC_SUBRESOURCE, rbac::EXEC);
        Api::<Pod>::namespaced(self.client.clone(), &self.namespace)
            .exec(pod, argv, params)
            .await
            .map_err(|source| ApiFailure {
                verb: "create",
                resource: rbac::EXEC_SUBRESOURCE.to_owned(),
                name: pod.to_owned(),
                namespace: self.namespace.clone(),
                source,
            })
    }

    fn failure(
        &self,
        verb: &'static str,
        kind: ObjectKind,
        name: &str,
        source: kube::Error,
    ) -> ApiFailure {
        let resource = match kind.group() {
            "" => kind.plural().to_owned(),
            group => format!("{}.{group}", kind.plural()),
        };
        ApiFailure {
            verb,
            resource,
            name: name.to_owned(),
            namespace: self.namespace.clone(),
            source,
        }
    }
}
