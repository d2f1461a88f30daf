//! The validation rules a fake would most likely let slip and production would reject with 422:
//! object names, label keys and values, Deployment selectors vs template labels (and their
//! immutability), container names and images.

use serde_json::Value;

use crate::resources::ResourceType;
use crate::status::ApiError;

type Causes = Vec<(String, String)>;

fn is_dns_label(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

fn is_dns_subdomain(s: &str) -> bool {
    s.len() <= 253 && s.split('.').all(is_dns_label)
}

/// `(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?`, at most 63 characters.
fn is_label_value(s: &str) -> bool {
    s.is_empty()
        || (s.len() <= 63
            && s.chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
            && s.starts_with(|c: char| c.is_ascii_alphanumeric())
            && s.ends_with(|c: char| c.is_ascii_alphanumeric()))
}

fn is_qualified_name(s: &str) -> bool {
    match s.split_once('/') {
        Some((prefix, name)) => {
            is_dns_subdomain(prefix) && !name.is_empty() && is_label_value(name)
        }
        None => !s.is_empty() && is_label_value(s),
    }
}

fn check_labels(labels: Option<&Value>, field: &str, causes: &mut Causes) {
    let Some(labels) = labels.and_then(Value::as_object) else {
        return;
    };
    for (key, value) in labels {
        if !is_qualified_name(key) {
            causes.push((field.to_string(), format!("Invalid value: {key:?}: name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character")));
        }
        match value.as_str() {
            Some(v) if is_label_value(v) => {}
            _ => causes.push((field.to_string(), format!("Invalid value: {value}: a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyValue',  or 'my_value',  or '12345', regex used for validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')"))),
        }
    }
}

fn check_pod_spec(spec: Option<&Value>, field: &str, causes: &mut Causes) {
    let containers = spec
        .and_then(|s| s.get("containers"))
        .and_then(Value::as_array);
    let Some(containers) = containers.filter(|c| !c.is_empty()) else {
        causes.push((format!("{field}.containers"), "Required value".into()));
        return;
    };
    for (i, c) in containers.iter().enumerate() {
        let name = c.get("name").and_then(Value::as_str).unwrap_or_default();
        if !is_dns_label(name) {
            causes.push((format!("{field}.containers[{i}].name"), format!("Invalid value: {name:?}: a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character")));
        }
        if c.get("image")
            .and_then(Value::as_str)
            .is_none_or(str::is_empty)
        {
            causes.push((
                format!("{field}.containers[{i}].image"),
                "Required value".into(),
            ));
        }
    }
}

/// Validates `object` (and, on update, what may not change relative to `old`).
pub(crate) fn validate(
    rt: &ResourceType,
    object: &Value,
    old: Option<&Value>,
) -> Result<(), ApiError> {
    let name = object
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let mut causes = Causes::new();
    let name_ok = match rt.kind.as_str() {
        "Service" | "Namespace" => is_dns_label(name),
        _ => is_dns_subdomain(name),
    };
    if !name_ok {
        causes.push(("metadata.name".into(), format!("Invalid value: {name:?}: a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character")));
    }
    check_labels(
        object.pointer("/metadata/labels"),
        "metadata.labels",
        &mut causes,
    );
    match rt.kind.as_str() {
        "Pod" => check_pod_spec(object.get("spec"), "spec", &mut causes),
        "Deployment" | "ReplicaSet" => {
            let template_labels = object.pointer("/spec/template/metadata/labels");
            check_labels(
                template_labels,
                "spec.template.metadata.labels",
                &mut causes,
            );
            check_pod_spec(
                object.pointer("/spec/template/spec"),
                "spec.template.spec",
                &mut causes,
            );
            match object
                .pointer("/spec/selector/matchLabels")
                .and_then(Value::as_object)
            {
                None => causes.push(("spec.selector".into(), "Required value".into())),
                Some(selector) => {
                    let matches = selector
                        .iter()
                        .all(|(k, v)| template_labels.and_then(|l| l.get(k)) == Some(v));
                    if !matches {
                        causes.push((
                            "spec.template.metadata.labels".into(),
                            "Invalid value: `selector` does not match template `labels`".into(),
                        ));
                    }
                }
            }
            if let Some(old) = old
                && rt.group == "apps"
                && old.pointer("/spec/selector") != object.pointer("/spec/selector")
            {
                causes.push(("spec.selector".into(), "field is immutable".into()));
            }
        }
        "Service" => {
            // A Service's cluster IP (or `None`, headless) is fixed once set: turning a
            // ClusterIP Service headless means deleting and re-creating it.
            if let Some(old) = old
                && let (Some(was), Some(now)) = (
                    old.pointer("/spec/clusterIP").and_then(Value::as_str),
                    object.pointer("/spec/clusterIP").and_then(Value::as_str),
                )
                && was != now
            {
                causes.push((
                    "spec.clusterIPs[0]".into(),
                    format!("Invalid value: {now:?}: may not change once set"),
                ));
            }
            if let Some(ports) = object.pointer("/spec/ports").and_then(Value::as_array) {
                for (i, p) in ports.iter().enumerate() {
                    let port = p.get("port").and_then(Value::as_u64).unwrap_or(0);
                    if !(1..=65535).contains(&port) {
                        causes.push((
                            format!("spec.ports[{i}].port"),
                            format!(
                                "Invalid value: {port}: must be between 1 and 65535, inclusive"
                            ),
                        ));
                    }
                }
            }
        }
        _ => {}
    }
    if causes.is_empty() {
        Ok(())
    } else {
        Err(ApiError::invalid(rt, name, &causes))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_rules() {
        assert!(is_qualified_name("clawfleet.io/instance"));
        assert!(!is_qualified_name("Bad Key"));
        assert!(is_label_value("u-123_a.b"));
        assert!(!is_label_value("-x"));
        assert!(!is_label_value(&"a".repeat(64)));
    }
}
