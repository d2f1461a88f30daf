//! The table of resource kinds the server knows. Adding a kind is one line in [`BUILTIN`] (or one
//! [`ResourceType`] in `Options::extra_resources` for a custom resource).

/// One REST resource: where it lives in the URL space and how the server treats it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResourceType {
    /// API group; empty for the core group (`/api/v1`).
    pub group: String,
    pub version: String,
    /// Lower-case plural used in URLs (`deployments`).
    pub plural: String,
    pub singular: String,
    pub kind: String,
    pub namespaced: bool,
    pub short_names: Vec<String>,
    /// Writes to the main resource ignore `status`; `/status` writes only touch `status`.
    pub status_subresource: bool,
    /// `metadata.generation` starts at 1 and increments on changes outside metadata and status.
    pub generation: bool,
}

/// group, version, plural, kind, namespaced, short names, status subresource, generation.
type Row = (
    &'static str,
    &'static str,
    &'static str,
    &'static str,
    bool,
    &'static [&'static str],
    bool,
    bool,
);

/// The built-in kinds: what clawfleet's Kubernetes runtime touches, plus namespaces and events.
const BUILTIN: &[Row] = &[
    (
        "coordination.k8s.io",
        "v1",
        "leases",
        "Lease",
        true,
        &[],
        false,
        false,
    ),
    (
        "",
        "v1",
        "namespaces",
        "Namespace",
        false,
        &["ns"],
        true,
        false,
    ),
    (
        "",
        "v1",
        "configmaps",
        "ConfigMap",
        true,
        &["cm"],
        false,
        false,
    ),
    ("", "v1", "secrets", "Secret", true, &[], false, false),
    ("", "v1", "services", "Service", true, &["svc"], true, false),
    (
        "",
        "v1",
        "persistentvolumeclaims",
        "PersistentVolumeClaim",
        true,
        &["pvc"],
        true,
        false,
    ),
    ("", "v1", "pods", "Pod", true, &["po"], true, true),
    ("", "v1", "events", "Event", true, &["ev"], false, false),
    (
        "",
        "v1",
        "serviceaccounts",
        "ServiceAccount",
        true,
        &["sa"],
        false,
        false,
    ),
    (
        "apps",
        "v1",
        "deployments",
        "Deployment",
        true,
        &["deploy"],
        true,
        true,
    ),
    (
        "apps",
        "v1",
        "replicasets",
        "ReplicaSet",
        true,
        &["rs"],
        true,
        true,
    ),
    (
        "networking.k8s.io",
        "v1",
        "networkpolicies",
        "NetworkPolicy",
        true,
        &["netpol"],
        false,
        true,
    ),
    (
        "networking.k8s.io",
        "v1",
        "ingresses",
        "Ingress",
        true,
        &["ing"],
        true,
        true,
    ),
    (
        "networking.gke.io",
        "v1",
        "managedcertificates",
        "ManagedCertificate",
        true,
        &["mcrt"],
        true,
        true,
    ),
];

impl ResourceType {
    /// A namespaced custom resource with a status subresource, like a typical CRD.
    pub fn custom(group: &str, version: &str, plural: &str, kind: &str) -> Self {
        Self {
            group: group.into(),
            version: version.into(),
            plural: plural.into(),
            singular: kind.to_ascii_lowercase(),
            kind: kind.into(),
            namespaced: true,
            short_names: Vec::new(),
            status_subresource: true,
            generation: true,
        }
    }

    fn from_row(row: &Row) -> Self {
        let (group, version, plural, kind, namespaced, short, status, generation) = *row;
        Self {
            group: group.into(),
            version: version.into(),
            plural: plural.into(),
            singular: kind.to_ascii_lowercase(),
            kind: kind.into(),
            namespaced,
            short_names: short.iter().map(|s| s.to_string()).collect(),
            status_subresource: status,
            generation,
        }
    }

    /// `v1` or `apps/v1`.
    pub fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.clone()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }

    /// How the real server names the resource in error messages: `pods`, `deployments.apps`.
    pub fn qualified_plural(&self) -> String {
        if self.group.is_empty() {
            self.plural.clone()
        } else {
            format!("{}.{}", self.plural, self.group)
        }
    }

    /// The storage key: unique across groups.
    pub(crate) fn id(&self) -> String {
        self.qualified_plural()
    }

    pub(crate) fn is(&self, kind: &str) -> bool {
        self.kind == kind
    }
}

/// All kinds this server serves.
#[derive(Debug, Clone)]
pub(crate) struct Registry {
    types: Vec<ResourceType>,
}

impl Registry {
    pub(crate) fn new(extra: &[ResourceType]) -> Self {
        let mut types: Vec<ResourceType> = BUILTIN.iter().map(ResourceType::from_row).collect();
        types.extend(extra.iter().cloned());
        Self { types }
    }

    /// The resource served at `/api{s}/<group>/<version>/<plural>`.
    pub(crate) fn by_path(
        &self,
        group: &str,
        version: &str,
        plural: &str,
    ) -> Option<&ResourceType> {
        self.types
            .iter()
            .find(|t| t.group == group && t.version == version && t.plural == plural)
    }

    /// Lenient lookup for the test-facing API: `Pod`, `pods`, `pod`, `po` or `deployments.apps`.
    pub(crate) fn find(&self, name: &str) -> Option<&ResourceType> {
        let lower = name.to_ascii_lowercase();
        self.types.iter().find(|t| {
            t.kind.eq_ignore_ascii_case(name)
                || t.plural == lower
                || t.singular == lower
                || t.qualified_plural() == lower
                || t.short_names.contains(&lower)
        })
    }

    pub(crate) fn by_kind(&self, api_version: &str, kind: &str) -> Option<&ResourceType> {
        self.types
            .iter()
            .find(|t| t.kind == kind && t.api_version() == api_version)
    }

    /// Groups other than core, each with its versions, in table order.
    pub(crate) fn groups(&self) -> Vec<(String, Vec<String>)> {
        let mut groups: Vec<(String, Vec<String>)> = Vec::new();
        for t in self.types.iter().filter(|t| !t.group.is_empty()) {
            match groups.iter_mut().find(|(g, _)| *g == t.group) {
                Some((_, versions)) if !versions.contains(&t.version) => {
                    versions.push(t.version.clone())
                }
                Some(_) => {}
                None => groups.push((t.group.clone(), vec![t.version.clone()])),
            }
        }
        groups
    }

    pub(crate) fn in_group_version(&self, group: &str, version: &str) -> Vec<&ResourceType> {
        self.types
            .iter()
            .filter(|t| t.group == group && t.version == version)
            .collect()
    }
}
