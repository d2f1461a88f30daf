//! What a failed apiserver call means to the runtime's callers.
//!
//! An outage, throttling, a broken connection or a write that lost a race is
//! [`RuntimeError::Unavailable`]: the same request may work in a moment. A refused
//! permission, a missing namespace or a rejected object is [`RuntimeError::Misconfigured`]:
//! the operator must change the deployment, and the message says what. Messages are built
//! from what the call was doing and the status's code, reason and field paths, never from
//! the apiserver's own message, which may quote object contents (a Secret's, say); the full
//! error goes to the log.

use kube::client::UpgradeConnectionError;

use crate::runtime::RuntimeError;

/// One failed call to the apiserver, and what it was doing.
#[derive(Debug, thiserror::Error)]
#[error("kubernetes api: {verb} {resource} {name:?} in namespace {namespace}: {source}")]
pub struct ApiFailure {
    /// The authorizer's verb (`patch`, `delete`, `list`, `create`).
    pub verb: &'static str,
    /// `plural[.group]`, or `pods/exec`.
    pub resource: String,
    /// Empty for a list.
    pub name: String,
    pub namespace: String,
    #[source]
    pub source: kube::Error,
}

impl ApiFailure {
    /// The HTTP status the apiserver answered, when it answered at all.
    pub fn http_status(&self) -> Option<u16> {
        match &self.source {
            kube::Error::Api(status) => Some(status.code),
            kube::Error::UpgradeConnection(UpgradeConnectionError::ProtocolSwitch(status)) => {
                Some(status.as_u16())
            }
            _ => None,
        }
    }

    fn target(&self) -> String {
        if self.name.is_empty() {
            self.resource.clone()
        } else {
            format!("{} {}", self.resource, self.name)
        }
    }

    /// The status's reason and the fields it blames (e.g. `Invalid: spec.storageClassName`).
    fn cause(&self) -> String {
        let kube::Error::Api(status) = &self.source else {
            return String::new();
        };
        let fields: Vec<&str> = status
            .details
            .iter()
            .flat_map(|details| details.causes.iter())
            .map(|cause| cause.field.as_str())
            .filter(|field| !field.is_empty())
            .collect();
        match (status.reason.is_empty(), fields.is_empty()) {
            (true, _) => String::new(),
            (false, true) => format!(": {}", status.reason),
            (false, false) => format!(": {} ({})", status.reason, fields.join(", ")),
        }
    }

    fn exceeds_quota(&self) -> bool {
        matches!(&self.source, kube::Error::Api(status) if status.message.contains("exceeded quota"))
    }

    fn names_missing_namespace(&self) -> bool {
        matches!(&self.source, kube::Error::Api(status)
            if status.details.as_ref().is_some_and(|details| details.kind == "namespaces"))
    }
}

/// The metric class of a failed apply (see [`crate::metrics::APPLY_FAILURE_CLASSES`]):
/// `refused` needs someone to change something (a quota, an admission policy, a setting)
/// and is retried slowly; `unavailable` is overload or an outage.
pub fn class_of(error: &RuntimeError) -> &'static str {
    match error {
        RuntimeError::Unavailable(_) => "unavailable",
        RuntimeError::Misconfigured(_) => "refused",
        _ => "other",
    }
}

impl From<ApiFailure> for RuntimeError {
    fn from(failure: ApiFailure) -> Self {
        tracing::warn!(error = %failure, "kubernetes api call failed");
        let target = failure.target();
        let verb = failure.verb;
        let namespace = &failure.namespace;
        let Some(code) = failure.http_status() else {
            return match failure.source {
                kube::Error::Service(error) if timed_out(error.as_ref()) => {
                    RuntimeError::Unavailable(format!(
                        "the kubernetes api did not answer in time to {verb} {target} \
                         (overloaded or down); retry shortly"
                    ))
                }
                // Connection refused or reset, TLS, a dropped watch or exec stream.
                kube::Error::HyperError(_)
                | kube::Error::Service(_)
                | kube::Error::ReadEvents(_)
                | kube::Error::UpgradeConnection(_) => RuntimeError::Unavailable(format!(
                    "cannot reach the kubernetes api to {verb} {target}; retry shortly"
                )),
                // Our request or its answer could not be (de)serialized: a platform bug.
                _ => RuntimeError::Io(std::io::Error::other(format!(
                    "kubernetes api: {verb} {target} failed on the client side"
                ))),
            };
        };
        match code {
            401 => RuntimeError::Misconfigured(format!(
                "the kubernetes api rejected the platform's credentials ({verb} {target}); \
                 check its service account or KUBECONFIG"
            )),
            // The quota admission plugin answers 403 too; its message is not quoted (it
            // names only counts, but the rule stands), only recognised.
            403 if failure.exceeds_quota() => RuntimeError::Misconfigured(format!(
                "the namespace {namespace}'s ResourceQuota is used up ({verb} {target}); \
                 raise it or remove instances"
            )),
            403 => RuntimeError::Misconfigured(format!(
                "the platform's service account may not {verb} {resource} in namespace \
                 {namespace}; grant it as deploy/base/lifecycle-rbac.yaml does",
                resource = failure.resource,
            )),
            404 if failure.names_missing_namespace() => RuntimeError::Misconfigured(format!(
                "namespace {namespace} does not exist; create it or set OPENCLAW_NAMESPACE"
            )),
            404 => RuntimeError::Misconfigured(format!(
                "the kubernetes api does not serve {resource} in namespace {namespace} \
                 (is its resource type installed?)",
                resource = failure.resource,
            )),
            // Forced server-side apply under one field manager never conflicts on fields,
            // and the apiserver retries precondition-free writes itself: a 409 that still
            // reaches us lost a race with another writer, which a retry can win.
            409 => RuntimeError::Unavailable(format!(
                "{target} was changed by another writer while the platform wrote it; retry"
            )),
            429 => RuntimeError::Unavailable(format!(
                "the kubernetes api is throttling requests ({verb} {target}); retry shortly"
            )),
            500..=599 => RuntimeError::Unavailable(format!(
                "the kubernetes api failed to {verb} {target} ({code}{cause}); retry shortly",
                cause = failure.cause(),
            )),
            _ => RuntimeError::Misconfigured(format!(
                "the kubernetes api refused to {verb} {target} ({code}{cause})",
                cause = failure.cause(),
            )),
        }
    }
}

fn timed_out(error: &(dyn std::error::Error + 'static)) -> bool {
    error
        .downcast_ref::<std::io::Error>()
        .is_some_and(|error| error.kind() == std::io::ErrorKind::TimedOut)
}

#[cfg(test)]
mod tests {
    use kube::core::{Status, response::StatusDetails};

    use super::*;

    fn failure(source: kube::Error) -> ApiFailure {
        ApiFailure {
            verb: "patch",
            resource: "secrets".into(),
            name: "alice-openclaw".into(),
            namespace: "openclaw".into(),
            source,
        }
    }

    fn status(code: u16, reason: &str, message: &str) -> kube::Error {
        kube::Error::Api(Status::failure(message, reason).with_code(code).boxed())
    }

    #[test]
    fn outages_are_unavailable_and_never_quote_the_apiservers_message() {
        for code in [409, 429, 500, 503, 504] {
            let error = RuntimeError::from(failure(status(code, "X", "data: sk-ant-secret")));
            let RuntimeError::Unavailable(message) = error else {
                panic!("{code}: {error:?}");
            };
            assert!(message.contains("secrets alice-openclaw"), "{message}");
            assert!(!message.contains("sk-ant"), "{message}");
        }
    }

    #[test]
    fn a_forbidden_call_names_the_missing_permission() {
        let error = RuntimeError::from(failure(status(403, "Forbidden", "no")));
        assert_eq!(
            error.to_string(),
            "the platform's service account may not patch secrets in namespace openclaw; \
             grant it as deploy/base/lifecycle-rbac.yaml does"
        );
    }

    #[test]
    fn a_missing_namespace_and_a_rejected_object_say_what_to_fix() {
        let missing = Status::failure("namespaces \"openclaw\" not found", "NotFound")
            .with_code(404)
            .with_details(StatusDetails {
                name: "openclaw".into(),
                group: String::new(),
                kind: "namespaces".into(),
                uid: String::new(),
                causes: Vec::new(),
                retry_after_seconds: 0,
            });
        let error = RuntimeError::from(failure(kube::Error::Api(missing.boxed())));
        assert!(
            matches!(&error, RuntimeError::Misconfigured(message) if message.starts_with("namespace openclaw does not exist")),
            "{error:?}"
        );
        let invalid = RuntimeError::from(failure(status(422, "Invalid", "value sk-ant-x")));
        assert_eq!(
            invalid.to_string(),
            "the kubernetes api refused to patch secrets alice-openclaw (422: Invalid)"
        );
    }
}
