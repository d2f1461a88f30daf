//! The Kubernetes API the runtime uses, as one table: every call site goes through
//! [`super::api::ClusterApi`], whose methods name the verbs they need from here, and
//! `deploy/base/lifecycle-rbac.yaml` grants exactly [`required_permissions`] (a test keeps
//! the two equal).

use std::collections::BTreeSet;

use super::kinds::ObjectKind;

/// Verbs of the Kubernetes authorizer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Verb {
    Create,
    Get,
    List,
    Watch,
    Patch,
    Update,
    Delete,
}

impl Verb {
    pub fn as_str(self) -> &'static str {
        match self {
            Verb::Create => "create",
            Verb::Get => "get",
            Verb::List => "list",
            Verb::Watch => "watch",
            Verb::Patch => "patch",
            Verb::Update => "update",
            Verb::Delete => "delete",
        }
    }
}

/// Server-side apply: `patch`, and `create` when the apply creates the object.
pub const APPLY: &[Verb] = &[Verb::Patch, Verb::Create];
/// Deleting one object by name.
pub const DELETE: &[Verb] = &[Verb::Delete];
/// The watchers behind the cache: an initial list, then a watch.
pub const WATCH: &[Verb] = &[Verb::List, Verb::Watch];
/// `pods/exec` over a WebSocket: the upgrade is a GET, which clusters before 1.35
/// authorize as `get` and newer ones (AuthorizePodWebsocketUpgradeCreatePermission)
/// as `create`.
pub const EXEC: &[Verb] = &[Verb::Create, Verb::Get];

/// The leader Lease: read, created by the first replica, then renewed or taken over
/// with a resourceVersion precondition (a PUT).
pub const LEASE: &[Verb] = &[Verb::Get, Verb::Create, Verb::Update];

/// The subresource exec goes through.
pub const EXEC_SUBRESOURCE: &str = "pods/exec";

/// One line of the Role: `(apiGroup, resource, verb)`.
pub type Permission = (String, String, String);

/// Every permission the runtime's calls need, whether or not ingress is enabled.
pub fn required_permissions() -> BTreeSet<Permission> {
    let mut needed = BTreeSet::new();
    let mut grant = |group: &str, resource: &str, verbs: &[Verb]| {
        for verb in verbs {
            needed.insert((
                group.to_owned(),
                resource.to_owned(),
                verb.as_str().to_owned(),
            ));
        }
    };
    for kind in ObjectKind::OWNED {
        for verbs in [APPLY, DELETE, WATCH] {
            grant(kind.group(), kind.plural(), verbs);
        }
    }
    grant(ObjectKind::Pod.group(), ObjectKind::Pod.plural(), WATCH);
    grant(ObjectKind::Pod.group(), EXEC_SUBRESOURCE, EXEC);
    grant(super::lease::LEASE_GROUP, super::lease::LEASE_PLURAL, LEASE);
    needed
}

/// Whether the table grants `verb` on `kind` (checked by every API call in debug builds).
pub fn allows(group: &str, resource: &str, verb: Verb) -> bool {
    required_permissions().contains(&(
        group.to_owned(),
        resource.to_owned(),
        verb.as_str().to_owned(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pods_are_only_read_and_exec_is_the_only_subresource() {
        let needed = required_permissions();
        let on_pods: Vec<&str> = needed
            .iter()
            .filter(|(group, resource, _)| group.is_empty() && resource == "pods")
            .map(|(_, _, verb)| verb.as_str())
            .collect();
        assert_eq!(on_pods, ["list", "watch"]);
        assert!(
            needed
                .iter()
                .all(|(_, resource, _)| !resource.contains('*'))
        );
        assert!(allows("", "pods/exec", Verb::Create));
        assert!(!allows("", "secrets", Verb::Get));
    }
}
