//! The Role in `deploy/base/lifecycle-rbac.yaml` grants exactly what the Kubernetes
//! runtime's calls need (the table in `runtime/kubernetes/rbac.rs`), with no wildcards,
//! and its RoleBinding gives it to the lifecycle's ServiceAccount, which lives with the
//! lifecycle's Deployment in the platform's namespace (`deploy/base/lifecycle.yaml`).

use std::collections::BTreeSet;

use clawfleet_lifecycle::runtime::kubernetes::rbac::{Permission, required_permissions};
use serde_json::Value;

const RBAC_FILE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../deploy/base/lifecycle-rbac.yaml"
);
const LIFECYCLE_FILE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../deploy/base/lifecycle.yaml"
);

fn documents_of(path: &str) -> Vec<Value> {
    let text = std::fs::read_to_string(path).unwrap_or_else(|error| panic!("{path}: {error}"));
    serde_saphyr::from_multiple::<Value>(&text).expect("valid yaml")
}

fn documents() -> Vec<Value> {
    documents_of(RBAC_FILE)
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
fn the_binding_gives_the_role_to_the_lifecycles_service_account() {
    let documents = documents();
    let kinds: Vec<&str> = documents
        .iter()
        .map(|document| document["kind"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["Role", "RoleBinding"]);
    let (role, binding) = (&documents[0], &documents[1]);
    assert_eq!(
        role["metadata"]["namespace"], binding["metadata"]["namespace"],
        "the binding is in the Role's namespace"
    );
    assert_eq!(binding["roleRef"]["kind"], "Role");
    assert_eq!(binding["roleRef"]["name"], role["metadata"]["name"]);
    let subjects = binding["subjects"].as_array().expect("subjects");
    assert_eq!(subjects.len(), 1, "one subject");

    let lifecycle = documents_of(LIFECYCLE_FILE);
    let account = lifecycle
        .iter()
        .find(|document| document["kind"] == "ServiceAccount")
        .expect("the lifecycle's ServiceAccount");
    let deployment = lifecycle
        .iter()
        .find(|document| document["kind"] == "Deployment")
        .expect("the lifecycle's Deployment");
    assert_eq!(subjects[0]["kind"], "ServiceAccount");
    assert_eq!(subjects[0]["name"], account["metadata"]["name"]);
    assert_eq!(subjects[0]["namespace"], account["metadata"]["namespace"]);
    assert_eq!(
        deployment["spec"]["template"]["spec"]["serviceAccountName"], account["metadata"]["name"],
        "the lifecycle's pods run as the bound account"
    );
    assert_eq!(
        deployment["metadata"]["namespace"],
        account["metadata"]["namespace"]
    );
}
