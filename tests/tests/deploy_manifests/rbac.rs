//! The only grant in `deploy/`: the lifecycle's Role in the instances' namespace, equal to
//! the Kubernetes runtime's permission table, bound to the account its pods run as.

use std::collections::BTreeSet;

use clawfleet_kit::service_keys::Service;
use clawfleet_lifecycle::runtime::kubernetes::rbac::{Permission, required_permissions};

use crate::{
    deployment_of, overlays,
    render::{name_of, namespace_of, pod_spec},
    runtime_config,
};

#[test]
fn the_lifecycles_role_equals_the_runtimes_table_in_the_instances_namespace() {
    for rendered in overlays() {
        let instances = runtime_config(rendered).namespace;
        assert_eq!(rendered.roles.len(), 1, "{}: one Role", rendered.overlay);
        let role = &rendered.roles[0];
        assert_eq!(
            namespace_of(&role.metadata),
            instances,
            "{}",
            rendered.overlay
        );
        let mut granted: BTreeSet<Permission> = BTreeSet::new();
        for rule in role.rules.iter().flatten() {
            assert!(rule.resource_names.is_none() && rule.non_resource_urls.is_none());
            for group in rule.api_groups.iter().flatten() {
                for resource in rule.resources.iter().flatten() {
                    for verb in &rule.verbs {
                        for part in [group, resource, verb] {
                            assert!(!part.contains('*'), "{}: wildcard {part}", rendered.overlay);
                        }
                        granted.insert((group.clone(), resource.clone(), verb.clone()));
                    }
                }
            }
        }
        assert_eq!(granted, required_permissions(), "{}", rendered.overlay);
    }
}

#[test]
fn the_role_is_bound_to_the_account_the_lifecycle_runs_as_and_nothing_else() {
    for rendered in overlays() {
        let lifecycle = deployment_of(rendered, Service::Lifecycle);
        let account = pod_spec(lifecycle)
            .service_account_name
            .clone()
            .expect("an account");
        assert_eq!(
            rendered.role_bindings.len(),
            1,
            "{}: one RoleBinding",
            rendered.overlay
        );
        let binding = &rendered.role_bindings[0];
        let role = &rendered.roles[0];
        assert_eq!(
            namespace_of(&binding.metadata),
            namespace_of(&role.metadata)
        );
        assert_eq!(binding.role_ref.kind, "Role");
        assert_eq!(binding.role_ref.name, name_of(&role.metadata));
        let subjects: Vec<(String, String, Option<String>)> = binding
            .subjects
            .iter()
            .flatten()
            .map(|subject| {
                (
                    subject.kind.clone(),
                    subject.name.clone(),
                    subject.namespace.clone(),
                )
            })
            .collect();
        assert_eq!(
            subjects,
            [(
                "ServiceAccount".to_owned(),
                account,
                Some(namespace_of(&lifecycle.metadata).to_owned())
            )],
            "{}",
            rendered.overlay
        );
    }
}
