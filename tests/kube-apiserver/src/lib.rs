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

mod apply; // server-side apply and managedFields bookkeeping
mod controller; // Deployment -> ReplicaSet -> pod controllers
mod crud; // GET, LIST, POST, PUT, PATCH and DELETE on objects and their status
mod defaults; // the defaults the real apiserver fills in
mod deployment_status; // Deployment status counts and conditions as the controller reports them
mod discovery; // /version, /api, /apis and their aggregated form
mod exec; // pods/exec over WebSocket (v4 and v5 channel protocols)
mod fields; // field sets in the fieldsV1 vocabulary
mod gc; // deletion: preconditions, finalizers, propagation, garbage collection
mod kubelet; // a stand-in kubelet: pods follow test-scripted states
mod logs; // pods/log, with tailLines and follow
mod merge; // JSON merge, strategic merge and JSON patch
mod patch; // PATCH in all four formats, on objects and status
pub mod resources; // the table of resource kinds served
mod routing; // authentication, URL parsing, request log, faults, dispatch
mod scale; // the scale subresource of Deployments and ReplicaSets
mod selectors; // label and field selectors with the real semantics
mod server; // the test-facing handle
mod state; // options and the state every handler shares
mod status; // errors as kind: Status bodies
mod store; // objects with one resourceVersion counter and a watch history
mod util; // timestamps, uids and random name suffixes
mod validation; // the 422 rules a fake would most likely let slip
mod watch; // WATCH streams of newline-delimited JSON events

pub use exec::{ExecCall, ExecHandler, ExecResult};
pub use kubelet::{PodScript, PodState};
pub use resources::ResourceType;
pub use server::KubeApiServer;
pub use state::{Options, RequestRecord};
pub use status::ApiError;
