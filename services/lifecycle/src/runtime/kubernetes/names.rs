//! Object names and labels (docs/product/instances.md#kubernetes-objects): everything is `<id>-openclaw` except the PVC,
//! `<id>-openclaw-data`, and everything carries the four platform labels.

use std::collections::BTreeMap;

use crate::instance_id::InstanceId;

/// The one server-side-apply field manager of every object the platform writes.
pub const FIELD_MANAGER: &str = "clawfleet-lifecycle";

pub const LABEL_USER: &str = "openclaw.ai/user";
pub const LABEL_NAME: &str = "app.kubernetes.io/name";
pub const LABEL_INSTANCE: &str = "app.kubernetes.io/instance";
pub const LABEL_MANAGED_BY: &str = "app.kubernetes.io/managed-by";
pub const APP_NAME: &str = "openclaw";
pub const MANAGER_NAME: &str = "clawfleet";

/// The selector of everything this platform manages in the namespace.
pub const MANAGED_SELECTOR: &str = "app.kubernetes.io/managed-by=clawfleet";

/// The name of the Deployment, Service, Secret, ConfigMap, NetworkPolicy, Ingress and
/// ManagedCertificate of an instance.
pub fn object_name(id: &InstanceId) -> String {
    format!("{id}-openclaw")
}

/// The name of an instance's PVC.
pub fn pvc_name(id: &InstanceId) -> String {
    format!("{id}-openclaw-data")
}

/// The labels of every object of an instance (and of its pods).
pub fn labels(id: &InstanceId) -> BTreeMap<String, String> {
    [
        (LABEL_USER, id.as_str()),
        (LABEL_NAME, APP_NAME),
        (LABEL_INSTANCE, id.as_str()),
        (LABEL_MANAGED_BY, MANAGER_NAME),
    ]
    .into_iter()
    .map(|(key, value)| (key.to_owned(), value.to_owned()))
    .collect()
}

/// The labels that select an instance's pods (a Deployment's immutable selector).
pub fn selector_labels(id: &InstanceId) -> BTreeMap<String, String> {
    [(LABEL_NAME, APP_NAME), (LABEL_INSTANCE, id.as_str())]
        .into_iter()
        .map(|(key, value)| (key.to_owned(), value.to_owned()))
        .collect()
}

/// The instance an object belongs to, from its labels; `None` for objects that are
/// not the platform's or carry an id that is not valid.
pub fn instance_of(labels: Option<&BTreeMap<String, String>>) -> Option<InstanceId> {
    let labels = labels?;
    if labels.get(LABEL_MANAGED_BY).map(String::as_str) != Some(MANAGER_NAME) {
        return None;
    }
    InstanceId::parse(labels.get(LABEL_INSTANCE)?).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_labels_follow_the_spec() {
        let id = InstanceId::parse("alice").unwrap();
        assert_eq!(object_name(&id), "alice-openclaw");
        assert_eq!(pvc_name(&id), "alice-openclaw-data");
        let labels = labels(&id);
        assert_eq!(labels.len(), 4);
        assert_eq!(labels[LABEL_USER], "alice");
        assert_eq!(labels[LABEL_NAME], "openclaw");
        assert_eq!(labels[LABEL_INSTANCE], "alice");
        assert_eq!(labels[LABEL_MANAGED_BY], "clawfleet");
        assert_eq!(instance_of(Some(&labels)), Some(id));
        let mut foreign = labels.clone();
        foreign.insert(LABEL_MANAGED_BY.into(), "helm".into());
        assert_eq!(instance_of(Some(&foreign)), None);
    }
}
