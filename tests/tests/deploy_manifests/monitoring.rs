//! The optional monitoring component (`deploy/components/monitoring`), rendered into the
//! dev overlay the way an operator adds it (`monitoring_overlay/`): a ServiceMonitor per
//! service reaching a port its Service has, the alerts the runbook covers each with a
//! runbook line, rules promtool accepts, and a dashboard that is valid JSON. That the
//! rules and the dashboard use only metrics the code exports is checked against real
//! scrapes in tests/tests/metrics.rs.

use std::collections::BTreeSet;

use clawfleet_kit::service_keys::Service;
use clawfleet_tests::{prometheus, tools::repo_root};
use serde_json::Value;

use crate::render::{kustomize_dir, of_kind, test_overlay};

/// The alerts docs/monitoring.md describes.
const ALERTS: [&str; 7] = [
    "ClawfleetEdge5xxRatioHigh",
    "ClawfleetInstancesStuckStarting",
    "ClawfleetInstancesInError",
    "ClawfleetReconcileFailing",
    "ClawfleetKubernetesApiThrottled",
    "ClawfleetBridgeReconnectStorm",
    "ClawfleetSignInFailureSpike",
];

fn rendered() -> Vec<Value> {
    test_overlay("monitoring_overlay")
}

#[test]
fn every_service_is_scraped_on_a_port_its_service_has() {
    let documents = rendered();
    let monitors = of_kind(&documents, "ServiceMonitor");
    assert_eq!(monitors.len(), Service::ALL.len());
    let services = of_kind(&documents, "Service");
    for monitor in monitors {
        assert_eq!(monitor["apiVersion"], "monitoring.coreos.com/v1");
        let name = monitor["metadata"]["name"].as_str().unwrap_or_default();
        let selector = &monitor["spec"]["selector"]["matchLabels"];
        let selector = selector.as_object().expect("matchLabels");
        let selected: Vec<&&Value> = services
            .iter()
            .filter(|service| {
                selector
                    .iter()
                    .all(|(key, value)| service["metadata"]["labels"][key] == *value)
            })
            .collect();
        assert_eq!(selected.len(), 1, "{name} selects one Service");
        let port = monitor["spec"]["endpoints"][0]["port"]
            .as_str()
            .expect("a port name");
        assert_eq!(
            monitor["spec"]["endpoints"][0]["path"], "/metrics",
            "{name}"
        );
        let ports = selected[0]["spec"]["ports"].as_array().expect("ports");
        assert!(
            ports.iter().any(|candidate| candidate["name"] == port),
            "{name}: the Service has no port {port}"
        );
    }
}

/// The rule groups of the rendered PrometheusRule.
pub fn rule_groups(documents: &[Value]) -> Vec<Value> {
    let rules = of_kind(documents, "PrometheusRule");
    assert_eq!(rules.len(), 1, "one PrometheusRule");
    rules[0]["spec"]["groups"]
        .as_array()
        .expect("groups")
        .clone()
}

#[test]
fn every_alert_of_the_runbook_exists_with_a_runbook_line_and_promtool_accepts_them() {
    let groups = rule_groups(&rendered());
    let mut alerts = BTreeSet::new();
    for rule in groups
        .iter()
        .flat_map(|group| group["rules"].as_array().expect("rules"))
    {
        let alert = rule["alert"].as_str().expect("only alerting rules");
        let runbook = rule["annotations"]["runbook"].as_str().unwrap_or_default();
        assert!(runbook.len() > 20, "{alert} has a runbook line");
        assert!(
            rule["labels"]["severity"].is_string(),
            "{alert} has a severity"
        );
        let names = prometheus::metric_names_in(rule["expr"].as_str().expect("an expr"));
        assert!(!names.is_empty(), "{alert} reads a platform metric");
        alerts.insert(alert.to_owned());
    }
    let expected: BTreeSet<String> = ALERTS.iter().map(|alert| (*alert).to_owned()).collect();
    assert_eq!(alerts, expected);

    let file = tempfile::Builder::new()
        .suffix(".yaml")
        .tempfile()
        .expect("a temp file");
    let body = serde_json::json!({ "groups": groups });
    // JSON is YAML: promtool reads it as the rule file Prometheus would load.
    std::fs::write(file.path(), serde_json::to_string_pretty(&body).unwrap()).unwrap();
    prometheus::check_rules(file.path());
}

#[test]
fn the_dashboard_is_a_grafana_dashboard_the_sidecar_loads() {
    let documents = rendered();
    let maps = of_kind(&documents, "ConfigMap");
    let dashboards = maps
        .iter()
        .find(|map| map["metadata"]["name"] == "clawfleet-dashboards")
        .expect("the dashboards ConfigMap");
    assert_eq!(dashboards["metadata"]["labels"]["grafana_dashboard"], "1");
    let text = dashboards["data"]["clawfleet-fleet.json"]
        .as_str()
        .expect("the dashboard file");
    let dashboard: Value = serde_json::from_str(text).expect("valid JSON");
    let titles: Vec<&str> = dashboard["panels"]
        .as_array()
        .expect("panels")
        .iter()
        .map(|panel| panel["title"].as_str().unwrap_or_default())
        .collect();
    for wanted in [
        "Instances by phase",
        "Time from create to running",
        "Errors per service",
        "Latency p95 per service",
        "Bridge calls by gateway method",
    ] {
        assert!(titles.contains(&wanted), "{wanted} in {titles:?}");
    }
}

#[test]
fn the_overlays_leave_monitoring_out() {
    for overlay in crate::render::OVERLAYS {
        let text = kustomize_dir(&repo_root().join("deploy/overlays").join(overlay));
        assert!(!text.contains("kind: ServiceMonitor"), "{overlay}");
    }
}
