//! Defaulting as the real apiserver does it for the fields our code is likely to compare against
//! (so a reconciler that diffs desired vs live sees the same extra fields it would in production).
//! Every default only fills a missing field, so defaulting is idempotent.

use serde_json::{Value, json};

fn fill(target: &mut Value, field: &str, value: Value) {
    if let Some(map) = target.as_object_mut() {
        map.entry(field.to_string()).or_insert(value);
    }
}

/// Applies the defaults of `kind` to `object` in place.
pub(crate) fn apply_defaults(kind: &str, object: &mut Value) {
    match kind {
        "Pod" => {
            if let Some(spec) = object.get_mut("spec") {
                default_pod_spec(spec);
            }
        }
        "Deployment" => {
            let Some(spec) = object.get_mut("spec").filter(|s| s.is_object()) else {
                return;
            };
            fill(spec, "replicas", json!(1));
            fill(spec, "revisionHistoryLimit", json!(10));
            fill(spec, "progressDeadlineSeconds", json!(600));
            fill(spec, "strategy", json!({}));
            let strategy = &mut spec["strategy"];
            fill(strategy, "type", json!("RollingUpdate"));
            if strategy["type"] == "RollingUpdate" {
                fill(strategy, "rollingUpdate", json!({}));
                fill(&mut strategy["rollingUpdate"], "maxSurge", json!("25%"));
                fill(
                    &mut strategy["rollingUpdate"],
                    "maxUnavailable",
                    json!("25%"),
                );
            }
            default_template(spec);
        }
        "ReplicaSet" => {
            let Some(spec) = object.get_mut("spec").filter(|s| s.is_object()) else {
                return;
            };
            fill(spec, "replicas", json!(1));
            default_template(spec);
        }
        "Service" => {
            let Some(spec) = object.get_mut("spec").filter(|s| s.is_object()) else {
                return;
            };
            fill(spec, "type", json!("ClusterIP"));
            fill(spec, "sessionAffinity", json!("None"));
            if spec["type"] != "ExternalName" {
                fill(spec, "ipFamilies", json!(["IPv4"]));
                fill(spec, "ipFamilyPolicy", json!("SingleStack"));
                fill(spec, "internalTrafficPolicy", json!("Cluster"));
            }
            if let Some(ports) = spec.get_mut("ports").and_then(Value::as_array_mut) {
                for port in ports {
                    fill(port, "protocol", json!("TCP"));
                    if let Some(number) = port.get("port").cloned() {
                        fill(port, "targetPort", number);
                    }
                }
            }
        }
        "PersistentVolumeClaim" => {
            if let Some(spec) = object.get_mut("spec").filter(|s| s.is_object()) {
                fill(spec, "volumeMode", json!("Filesystem"));
            }
        }
        "Secret" => fill(object, "type", json!("Opaque")),
        "NetworkPolicy" => {
            let Some(spec) = object.get_mut("spec").filter(|s| s.is_object()) else {
                return;
            };
            if spec.get("policyTypes").is_none() {
                let mut types = vec![json!("Ingress")];
                if spec.get("egress").is_some() {
                    types.push(json!("Egress"));
                }
                spec["policyTypes"] = Value::Array(types);
            }
        }
        _ => {}
    }
}

fn default_template(spec: &mut Value) {
    if let Some(pod_spec) = spec.get_mut("template").and_then(|t| t.get_mut("spec")) {
        default_pod_spec(pod_spec);
    }
}

fn default_pod_spec(spec: &mut Value) {
    if !spec.is_object() {
        return;
    }
    fill(spec, "restartPolicy", json!("Always"));
    fill(spec, "terminationGracePeriodSeconds", json!(30));
    fill(spec, "dnsPolicy", json!("ClusterFirst"));
    fill(spec, "securityContext", json!({}));
    fill(spec, "schedulerName", json!("default-scheduler"));
    for list in ["containers", "initContainers"] {
        if let Some(containers) = spec.get_mut(list).and_then(Value::as_array_mut) {
            for container in containers {
                default_container(container);
            }
        }
    }
}

fn default_container(container: &mut Value) {
    let image = container
        .get("image")
        .and_then(Value::as_str)
        .unwrap_or_default();
    // `:latest` or no tag (and no digest) pulls Always; anything else IfNotPresent.
    let last = image.rsplit('/').next().unwrap_or_default();
    let always = !image.contains('@') && (!last.contains(':') || last.ends_with(":latest"));
    fill(
        container,
        "imagePullPolicy",
        json!(if always { "Always" } else { "IfNotPresent" }),
    );
    fill(
        container,
        "terminationMessagePath",
        json!("/dev/termination-log"),
    );
    fill(container, "terminationMessagePolicy", json!("File"));
    fill(container, "resources", json!({}));
    if let Some(ports) = container.get_mut("ports").and_then(Value::as_array_mut) {
        for port in ports {
            fill(port, "protocol", json!("TCP"));
        }
    }
}
