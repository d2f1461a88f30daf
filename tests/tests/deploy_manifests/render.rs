//! Rendering the overlays with `kubectl kustomize` and reading every object into its
//! k8s-openapi type. An object that does not survive the round trip (a field the type does
//! not know, a value of the wrong shape) fails the test instead of being dropped.

use std::{process::Command, sync::OnceLock, time::Duration};

use clawfleet_tests::tools::{kubectl_bin, repo_root};
use k8s_openapi::{
    api::{
        apps::v1::Deployment,
        core::v1::{ConfigMap, Namespace, PersistentVolumeClaim, PodSpec, Service, ServiceAccount},
        networking::v1::{Ingress, NetworkPolicy},
        policy::v1::PodDisruptionBudget,
        rbac::v1::{Role, RoleBinding},
        storage::v1::StorageClass,
    },
    apimachinery::pkg::apis::meta::v1::ObjectMeta,
    serde::{Serialize, de::DeserializeOwned},
};
use serde_json::Value;

/// Every overlay under deploy/overlays.
pub const OVERLAYS: [&str; 2] = ["gke", "dev"];

/// GKE's own kinds, which k8s-openapi does not have; they are checked as JSON.
const GKE_KINDS: [(&str, &str); 3] = [
    ("networking.gke.io/v1", "ManagedCertificate"),
    ("networking.gke.io/v1beta1", "FrontendConfig"),
    ("cloud.google.com/v1", "BackendConfig"),
];

/// Rendering two overlays takes well under a second; anything near this is a hang.
const RENDER_TIMEOUT: Duration = Duration::from_secs(60);

/// The objects of one rendered overlay, by kind.
#[derive(Default)]
pub struct Rendered {
    pub overlay: &'static str,
    pub namespaces: Vec<Namespace>,
    pub service_accounts: Vec<ServiceAccount>,
    pub config_maps: Vec<ConfigMap>,
    pub deployments: Vec<Deployment>,
    pub services: Vec<Service>,
    pub disruption_budgets: Vec<PodDisruptionBudget>,
    pub volume_claims: Vec<PersistentVolumeClaim>,
    pub network_policies: Vec<NetworkPolicy>,
    pub roles: Vec<Role>,
    pub role_bindings: Vec<RoleBinding>,
    pub ingresses: Vec<Ingress>,
    pub storage_classes: Vec<StorageClass>,
    /// GKE's custom resources, as JSON.
    pub gke_objects: Vec<Value>,
}

impl Rendered {
    pub fn config_map(&self, namespace: &str, name: &str) -> Option<&ConfigMap> {
        self.config_maps.iter().find(|config_map| {
            namespace_of(&config_map.metadata) == namespace && name_of(&config_map.metadata) == name
        })
    }

    pub fn gke_object(&self, kind: &str, name: &str) -> Option<&Value> {
        self.gke_objects
            .iter()
            .find(|object| object["kind"] == kind && object["metadata"]["name"] == name)
    }
}

/// Every overlay, rendered once per test run.
pub fn overlays() -> &'static [Rendered] {
    static RENDERED: OnceLock<Vec<Rendered>> = OnceLock::new();
    RENDERED.get_or_init(|| OVERLAYS.into_iter().map(render).collect())
}

pub fn name_of(metadata: &ObjectMeta) -> &str {
    metadata.name.as_deref().expect("every object has a name")
}

pub fn namespace_of(metadata: &ObjectMeta) -> &str {
    metadata
        .namespace
        .as_deref()
        .unwrap_or_else(|| panic!("{} names its namespace", name_of(metadata)))
}

pub fn pod_spec(deployment: &Deployment) -> &PodSpec {
    deployment
        .spec
        .as_ref()
        .and_then(|spec| spec.template.spec.as_ref())
        .expect("a pod template")
}

fn kustomize(overlay: &str) -> String {
    kustomize_dir(&repo_root().join("deploy/overlays").join(overlay))
}

/// `kubectl kustomize <directory>`: the rendered YAML.
pub fn kustomize_dir(directory: &std::path::Path) -> String {
    let kubectl = kubectl_bin();
    let overlay = directory.display();
    let mut child = Command::new(&kubectl)
        .arg("kustomize")
        .arg(directory)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap_or_else(|error| panic!("cannot run {}: {error}", kubectl.display()));
    // Read the pipes while waiting, so a large rendering cannot fill one and stall kubectl.
    let mut stdout = child.stdout.take().expect("piped stdout");
    let mut stderr = child.stderr.take().expect("piped stderr");
    let reading = std::thread::spawn(move || {
        let mut text = Vec::new();
        std::io::Read::read_to_end(&mut stdout, &mut text).map(|_| text)
    });
    let reading_errors = std::thread::spawn(move || {
        let mut text = Vec::new();
        std::io::Read::read_to_end(&mut stderr, &mut text).map(|_| text)
    });
    let started = std::time::Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().expect("kubectl's status") {
            break status;
        }
        if started.elapsed() > RENDER_TIMEOUT {
            let _ = child.kill();
            panic!("kubectl kustomize {overlay} ran longer than {RENDER_TIMEOUT:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let output = reading.join().expect("reader").expect("kubectl's output");
    let errors = reading_errors.join().expect("reader").unwrap_or_default();
    assert!(
        status.success(),
        "kubectl kustomize {} failed: {}",
        directory.display(),
        String::from_utf8_lossy(&errors)
    );
    String::from_utf8(output).expect("YAML is UTF-8")
}

/// Reads `value` into `T` and requires that `T` writes back exactly the same object.
fn typed<T: DeserializeOwned + Serialize>(overlay: &str, value: Value) -> T {
    let label = format!("{overlay}: {} {}", value["kind"], value["metadata"]["name"]);
    let typed: T = serde_json::from_value(value.clone())
        .unwrap_or_else(|error| panic!("{label} is not a valid object: {error}"));
    let written = serde_json::to_value(&typed).expect("serializable");
    assert_eq!(
        written, value,
        "{label} changes when read as its API type: a field is misspelt or misplaced"
    );
    typed
}

fn render(overlay: &'static str) -> Rendered {
    let text = kustomize(overlay);
    let documents: Vec<Value> = serde_saphyr::from_multiple(&text)
        .unwrap_or_else(|error| panic!("{overlay}: kustomize wrote invalid YAML: {error}"));
    let mut rendered = Rendered {
        overlay,
        ..Rendered::default()
    };
    for document in documents {
        let api_version = document["apiVersion"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        let kind = document["kind"].as_str().unwrap_or_default().to_owned();
        match (api_version.as_str(), kind.as_str()) {
            ("v1", "Namespace") => rendered.namespaces.push(typed(overlay, document)),
            ("v1", "ServiceAccount") => rendered.service_accounts.push(typed(overlay, document)),
            ("v1", "ConfigMap") => rendered.config_maps.push(typed(overlay, document)),
            ("v1", "Service") => rendered.services.push(typed(overlay, document)),
            ("v1", "PersistentVolumeClaim") => {
                rendered.volume_claims.push(typed(overlay, document))
            }
            ("apps/v1", "Deployment") => rendered.deployments.push(typed(overlay, document)),
            ("policy/v1", "PodDisruptionBudget") => {
                rendered.disruption_budgets.push(typed(overlay, document))
            }
            ("networking.k8s.io/v1", "NetworkPolicy") => {
                rendered.network_policies.push(typed(overlay, document))
            }
            ("networking.k8s.io/v1", "Ingress") => {
                rendered.ingresses.push(typed(overlay, document))
            }
            ("rbac.authorization.k8s.io/v1", "Role") => {
                rendered.roles.push(typed(overlay, document))
            }
            ("rbac.authorization.k8s.io/v1", "RoleBinding") => {
                rendered.role_bindings.push(typed(overlay, document))
            }
            ("storage.k8s.io/v1", "StorageClass") => {
                rendered.storage_classes.push(typed(overlay, document))
            }
            (api_version, kind) if GKE_KINDS.contains(&(api_version, kind)) => {
                rendered.gke_objects.push(document)
            }
            (api_version, kind) => {
                panic!("{overlay}: {api_version} {kind} is not a kind this test checks")
            }
        }
    }
    rendered
}

#[test]
fn every_overlay_renders_into_known_kinds_with_no_secret_and_no_cluster_wide_grant() {
    for rendered in overlays() {
        assert!(!rendered.deployments.is_empty(), "{}", rendered.overlay);
        // Secrets are created by the operator (deploy/README.md) and never rendered; a
        // ClusterRole or Secret kind would have failed the rendering above.
        for namespace in &rendered.namespaces {
            assert!(namespace.metadata.namespace.is_none());
        }
    }
}

/// A test overlay of this folder (`<name>/kustomization.yaml`: an overlay plus an optional
/// component, as an operator adds it), rendered into plain JSON documents.
pub fn test_overlay(name: &str) -> Vec<serde_json::Value> {
    let directory = repo_root().join("tests/tests/deploy_manifests").join(name);
    serde_saphyr::from_multiple(&kustomize_dir(&directory)).expect("kustomize writes YAML")
}

/// The documents of `kind`.
pub fn of_kind<'a>(documents: &'a [serde_json::Value], kind: &str) -> Vec<&'a serde_json::Value> {
    documents
        .iter()
        .filter(|document| document["kind"] == kind)
        .collect()
}
