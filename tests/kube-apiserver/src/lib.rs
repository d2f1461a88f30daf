//! A Kubernetes API server on loopback for tests, speaking the real wire format for everything
//! clawfleet's kube-rs code uses, so the Kubernetes runtime is tested against HTTP, JSON, watch
//! streams and WebSockets exactly as kube-rs 5 produces and consumes them.
//!
//! What it serves (the kinds are a table in [`resources`]; add one line per kind):
//! core/v1 namespaces, configmaps, secrets, services, persistentvolumeclaims, pods (+ `exec`,
//! `log`), events, serviceaccounts; apps/v1 deployments (+ `scale`), replicasets;
//! networking.k8s.io/v1 networkpolicies, ingresses; networking.gke.io/v1 managedcertificates;
//! plus discovery (`/version`, `/api`, `/api/v1`, `/apis`, `/apis/<g>[/<v>]`, also aggregated).
//!
//! Semantics: GET/LIST (label and field selectors, `limit`/`continue`), POST (409 AlreadyExists),
//! PUT (409 Conflict on a stale `resourceVersion`), PATCH (server-side apply with managedFields,
//! conflicts and `force`; merge, strategic merge and JSON patch), DELETE (propagation policies,
//! finalizers, preconditions, garbage collection through `ownerReferences`), WATCH (bookmarks,
//! `sendInitialEvents`, 410 Expired after [`KubeApiServer::compact_history`]), errors as `Status`.
//! A built-in Deployment/ReplicaSet controller creates pods whose statuses follow
//! [`PodScript`]s; `pods/exec` runs a test-supplied [`ExecHandler`], or an async one for
//! commands that take time (dropped when the client hangs up, as the kubelet kills them).
//! Faults: requests can be made to fail with a status or to be held in flight for a while.
//!
//! Transport: **plain HTTP on 127.0.0.1** (kube-rs accepts `http://` cluster URLs) with bearer
//! token authentication; request bodies are JSON (apply patches, sent by kube-rs as JSON with
//! content type `application/apply-patch+yaml`, are accepted since JSON is YAML; other YAML is not).
//!
//! ```no_run
//! # async fn example() -> Result<(), Box<dyn std::error::Error>> {
//! use clawfleet_kube_apiserver::{KubeApiServer, Options};
//! let server = KubeApiServer::start(Options::default()).await?;
//! let yaml = server.kubeconfig_yaml();
//! // In the test crate (which picks the k8s-openapi version feature):
//! // let kubeconfig = kube::config::Kubeconfig::from_yaml(&yaml)?;
//! // let config = kube::Config::from_custom_kubeconfig(kubeconfig, &Default::default()).await?;
//! // let client = kube::Client::try_from(config)?;
//! # let _ = yaml; Ok(()) }
//! ```

mod apply;
mod controller;
mod crud;
mod defaults;
mod deployment_status;
mod discovery;
mod exec;
mod fields;
mod gc;
mod kubelet;
mod logs;
mod merge;
mod patch;
mod routing;
mod scale;
mod selectors;
mod server;
mod state;
mod status;
mod store;
mod util;
mod validation;
mod watch;

pub mod resources;

pub use exec::{ExecCall, ExecHandler, ExecResult};
pub use kubelet::{PodScript, PodState};
pub use resources::ResourceType;
pub use server::KubeApiServer;
pub use state::{Options, RequestRecord};
pub use status::ApiError;
