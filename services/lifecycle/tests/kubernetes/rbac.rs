//! The Role in `deploy/rbac/lifecycle.yaml` grants exactly what the Kubernetes
//! runtime's calls need (the table in `runtime/kubernetes/rbac.rs`), with no wildcards.

use std::collections::BTreeSet;

use clawfleet_lifecycle::runtime::kubernetes::rbac::{Permission, required_permissions};
use serde_json::Value;

const RBAC_FILE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../deploy/rbac/lifecycle.yaml"
);

fn documents() -> Vec<Value> {
    let text = std::fs::read_to_string(RBAC_FILE).expect("deploy/rbac/lifecycle.yaml exists");
    serde_saphyr::from_multiple::<Value>(&text).expect("valid yaml")
}

fn strings(value: &Value) -> Vec<String> {
    value
        .as_array()
        .expect("a list")
        .iter()
        .map(|item| item.as_str().expect("a string").to_owned())
        .collect()
}

#[test]
fn the_role_grants_exactly_what_the_code_uses() {
    let documents = documents();
    let role = documents
        .iter()
        .find(|document| document["kind"] == "Role")
        .expect("a Role");
    let mut granted: BTreeSet<Permission> = BTreeSet::new();
    for rule in role["rules"].as_array().expect("rules") {
        let groups = strings(&rule["apiGroups"]);
        let resources = strings(&rule["resources"]);
        let verbs = strings(&rule["verbs"]);
        assert!(rule.get("resourceNames").is_none());
        for list in [&groups, &resources, &verbs] {
            assert!(
                !list.iter().any(|item| item.contains('*')),
                "wildcard in {rule}"
            );
        }
        for group in &groups {
            for resource in &resources {
                for verb in &verbs {
                    assert!(
                        granted.insert((group.clone(), resource.clone(), verb.clone())),
                        "{group}/{resource} {verb} is granted twice"
                    );
                }
            }
        }
    }
    let needed = required_permissions();
    let missing: Vec<_> = needed.difference(&granted).collect();
    let extra: Vec<_> = granted.difference(&needed).collect();
    assert!(
        missing.is_empty() && extra.is_empty(),
        "missing {missing:?}, extra {extra:?}"
    );
}

#[test]
fn the_binding_gives_the_role_to_the_service_account_in_one_namespace() {
    let documents = documents();
    let kinds: Vec<&str> = documents
        .iter()
        .map(|document| document["kind"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["ServiceAccount", "Role", "RoleBinding"]);
    let namespace = &documents[0]["metadata"]["namespace"];
    assert!(
        documents
            .iter()
            .all(|document| document["metadata"]["namespace"] == *namespace)
    );
    let binding = &documents[2];
    assert_eq!(binding["roleRef"]["kind"], "Role");
    assert_eq!(binding["roleRef"]["name"], documents[1]["metadata"]["name"]);
    assert_eq!(binding["subjects"][0]["kind"], "ServiceAccount");
    assert_eq!(
        binding["subjects"][0]["name"],
        documents[0]["metadata"]["name"]
    );
}
