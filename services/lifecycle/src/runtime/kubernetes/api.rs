//! Every call the runtime makes to the Kubernetes API, each naming the verbs it needs
//! from the [`rbac`] table (checked in debug builds), so the Role in
//! `deploy/rbac/lifecycle.yaml` and the code cannot drift apart unnoticed.

use futures_util::Stream;
use k8s_openapi::api::core::v1::Pod;
use kube::{
    Client,
    api::{Api, AttachParams, AttachedProcess, DeleteParams, DynamicObject, Patch, PatchParams},
    config::{KubeConfigOptions, Kubeconfig},
    runtime::{WatchStreamExt, watcher},
};

use super::{
    config::ClusterAccess,
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

/// Builds a client from the in-cluster service account or a kubeconfig.
pub async fn connect(access: &ClusterAccess) -> Result<Client, ConnectError> {
    let config = match access {
        ClusterAccess::Infer => kube::Config::infer().await?,
        ClusterAccess::Kubeconfig(path) => {
            let kubeconfig = Kubeconfig::read_from(path)?;
            kube::Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default()).await?
        }
    };
    Ok(Client::try_from(config)?)
}

/// Tries of one apply that loses a race with another write.
const APPLY_ATTEMPTS: u32 = 4;

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
}

impl ClusterApi {
    pub fn new(client: Client, namespace: impl Into<String>) -> Self {
        Self {
            client,
            namespace: namespace.into(),
        }
    }

    fn dynamic(&self, kind: ObjectKind) -> Api<DynamicObject> {
        Api::namespaced_with(self.client.clone(), &self.namespace, &kind.api_resource())
    }

    /// Server-side apply under the platform's field manager. `force` takes over fields a
    /// stale manager (a person's `kubectl edit`, an old version of us) still owns.
    pub async fn apply(&self, object: &DesiredObject) -> Result<(), kube::Error> {
        check(object.kind.group(), object.kind.plural(), rbac::APPLY);
        let params = PatchParams::apply(FIELD_MANAGER).force();
        let api = self.dynamic(object.kind);
        let mut attempt = 1;
        loop {
            match api
                .patch(&object.name, &params, &Patch::Apply(&object.body))
                .await
            {
                Ok(_) => return Ok(()),
                // A write racing ours (a controller's status update, a concurrent first
                // apply creating the object): apply again on top of it.
                Err(kube::Error::Api(status)) if status.code == 409 && attempt < APPLY_ATTEMPTS => {
                    attempt += 1;
                }
                Err(error) => return Err(error),
            }
        }
    }

    /// Deletes one object; dependents (a Deployment's ReplicaSets and pods) go in the
    /// foreground, so nothing is orphaned. Returns false when it was already gone.
    pub async fn delete(&self, kind: ObjectKind, name: &str) -> Result<bool, kube::Error> {
        check(kind.group(), kind.plural(), rbac::DELETE);
        let params = match kind {
            ObjectKind::Deployment => DeleteParams::foreground(),
            _ => DeleteParams::background(),
        };
        match self.dynamic(kind).delete(name, &params).await {
            Ok(_) => Ok(true),
            Err(kube::Error::Api(status)) if status.code == 404 => Ok(false),
            Err(error) => Err(error),
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
            watcher::Config::default().labels(MANAGED_SELECTOR),
        )
        .default_backoff()
    }

    /// `pods/exec` in `container` of `pod`.
    pub async fn exec(
        &self,
        pod: &str,
        argv: Vec<String>,
        params: &AttachParams,
    ) -> Result<AttachedProcess, kube::Error> {
        check(ObjectKind::Pod.group(), rbac::EXEC_SUBRESOURCE, rbac::EXEC);
        Api::<Pod>::namespaced(self.client.clone(), &self.namespace)
            .exec(pod, argv, params)
            .await
    }
}
