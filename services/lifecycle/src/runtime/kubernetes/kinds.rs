//! The object kinds the runtime writes or reads, with their API coordinates.

use kube::core::ApiResource;

use crate::instance_id::InstanceId;

use super::names;

/// Every kind of object the runtime touches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ObjectKind {
    Secret,
    ConfigMap,
    PersistentVolumeClaim,
    Service,
    NetworkPolicy,
    Ingress,
    ManagedCertificate,
    Deployment,
    Pod,
}

impl ObjectKind {
    /// The kinds the runtime applies for an instance (pods are the Deployment's).
    pub const OWNED: [ObjectKind; 8] = [
        ObjectKind::Secret,
        ObjectKind::ConfigMap,
        ObjectKind::PersistentVolumeClaim,
        ObjectKind::Service,
        ObjectKind::NetworkPolicy,
        ObjectKind::Ingress,
        ObjectKind::ManagedCertificate,
        ObjectKind::Deployment,
    ];

    /// `(group, version, kind, plural)`.
    pub const fn coordinates(self) -> (&'static str, &'static str, &'static str, &'static str) {
        match self {
            ObjectKind::Secret => ("", "v1", "Secret", "secrets"),
            ObjectKind::ConfigMap => ("", "v1", "ConfigMap", "configmaps"),
            ObjectKind::PersistentVolumeClaim => {
                ("", "v1", "PersistentVolumeClaim", "persistentvolumeclaims")
            }
            ObjectKind::Service => ("", "v1", "Service", "services"),
            ObjectKind::Pod => ("", "v1", "Pod", "pods"),
            ObjectKind::NetworkPolicy => (
                "networking.k8s.io",
                "v1",
                "NetworkPolicy",
                "networkpolicies",
            ),
            ObjectKind::Ingress => ("networking.k8s.io", "v1", "Ingress", "ingresses"),
            ObjectKind::ManagedCertificate => (
                "networking.gke.io",
                "v1",
                "ManagedCertificate",
                "managedcertificates",
            ),
            ObjectKind::Deployment => ("apps", "v1", "Deployment", "deployments"),
        }
    }

    pub fn group(self) -> &'static str {
        self.coordinates().0
    }

    pub fn plural(self) -> &'static str {
        self.coordinates().3
    }

    pub fn kind_name(self) -> &'static str {
        self.coordinates().2
    }

    pub fn api_version(self) -> String {
        let (group, version, _, _) = self.coordinates();
        if group.is_empty() {
            version.to_owned()
        } else {
            format!("{group}/{version}")
        }
    }

    pub fn api_resource(self) -> ApiResource {
        let (group, version, kind, plural) = self.coordinates();
        ApiResource {
            group: group.to_owned(),
            version: version.to_owned(),
            api_version: self.api_version(),
            kind: kind.to_owned(),
            plural: plural.to_owned(),
        }
    }

    /// Kinds an instance had in earlier versions and no longer gets: found once at start
    /// and removed by the next apply (docs/capacity.md#objects-per-tenant). Instances are
    /// now covered by one shared NetworkPolicy instead of one each.
    pub fn is_retired(self) -> bool {
        matches!(self, ObjectKind::NetworkPolicy)
    }

    /// Only when ingress is enabled.
    pub fn is_ingress(self) -> bool {
        matches!(self, ObjectKind::Ingress | ObjectKind::ManagedCertificate)
    }

    /// The name of this kind's object for an instance (not for pods).
    pub fn object_name(self, id: &InstanceId) -> String {
        match self {
            ObjectKind::PersistentVolumeClaim => names::pvc_name(id),
            _ => names::object_name(id),
        }
    }

    /// Lower-case file stem for golden manifests and logs.
    pub fn file_stem(self) -> &'static str {
        match self {
            ObjectKind::Secret => "secret",
            ObjectKind::ConfigMap => "configmap",
            ObjectKind::PersistentVolumeClaim => "pvc",
            ObjectKind::Service => "service",
            ObjectKind::NetworkPolicy => "networkpolicy",
            ObjectKind::Ingress => "ingress",
            ObjectKind::ManagedCertificate => "managedcertificate",
            ObjectKind::Deployment => "deployment",
            ObjectKind::Pod => "pod",
        }
    }
}

#[cfg(test)]
mod tests {
    use k8s_openapi::api::{
        apps::v1::Deployment,
        core::v1::{ConfigMap, PersistentVolumeClaim, Pod, Secret, Service},
        networking::v1::{Ingress, NetworkPolicy},
    };

    use super::*;

    #[test]
    fn coordinates_match_the_openapi_types() {
        let erased = [
            (ObjectKind::Secret, ApiResource::erase::<Secret>(&())),
            (ObjectKind::ConfigMap, ApiResource::erase::<ConfigMap>(&())),
            (
                ObjectKind::PersistentVolumeClaim,
                ApiResource::erase::<PersistentVolumeClaim>(&()),
            ),
            (ObjectKind::Service, ApiResource::erase::<Service>(&())),
            (ObjectKind::Pod, ApiResource::erase::<Pod>(&())),
            (
                ObjectKind::NetworkPolicy,
                ApiResource::erase::<NetworkPolicy>(&()),
            ),
            (ObjectKind::Ingress, ApiResource::erase::<Ingress>(&())),
            (
                ObjectKind::Deployment,
                ApiResource::erase::<Deployment>(&()),
            ),
        ];
        for (kind, resource) in erased {
            assert_eq!(kind.api_resource(), resource, "{kind:?}");
        }
    }
}
