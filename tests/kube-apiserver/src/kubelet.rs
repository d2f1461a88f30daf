//! A stand-in kubelet and scheduler: every new pod follows a test-controlled script of states,
//! each rendered into `status` exactly as kubelet reports it (phase, conditions, container
//! states with reasons such as ImagePullBackOff or CrashLoopBackOff with `lastState.terminated`
//! OOMKilled, restart counts), plus the matching Events.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Value, json};

use crate::apply::{Writer, record_update};
use crate::fields::Scope;
use crate::selectors::LabelSelector;
use crate::state::ServerState;
use crate::store::{ChangeType, Inner, meta_str};
use crate::util::{now, random};

/// The field manager of the kubelet's status writes.
const KUBELET: &str = "kubelet";
const NODE: &str = "gke-clawfleet-pool-1-node-1";
const HOST_IP: &str = "10.128.0.2";

/// One state of a pod, rendered into a realistic `status`. States apply to every container.
#[derive(Debug, Clone, PartialEq)]
pub enum PodState {
    /// Scheduled, containers `ContainerCreating`.
    Pending,
    /// Not schedulable: `PodScheduled=False`, reason `Unschedulable`, the scheduler's message.
    Unschedulable {
        message: String,
    },
    /// All containers running; `ready` drives the Ready/ContainersReady conditions.
    Running {
        ready: bool,
    },
    /// Containers waiting with a kubelet reason: `ImagePullBackOff`, `ErrImagePull`,
    /// `CreateContainerConfigError`, `ContainerCreating`, …
    Waiting {
        reason: String,
        message: String,
    },
    /// Restarting: waiting `CrashLoopBackOff`, `lastState.terminated` with `last_reason`
    /// (`OOMKilled`, `Error`) and `last_exit_code`, and `restart_count`.
    CrashLoopBackOff {
        restart_count: u32,
        last_reason: String,
        last_exit_code: i32,
    },
    Succeeded,
    Failed {
        reason: String,
        message: String,
    },
    /// A status exactly as given.
    Raw(Value),
}

impl PodState {
    pub fn unschedulable(message: &str) -> Self {
        Self::Unschedulable {
            message: message.into(),
        }
    }

    pub fn waiting(reason: &str, message: &str) -> Self {
        Self::Waiting {
            reason: reason.into(),
            message: message.into(),
        }
    }

    /// A container killed for exceeding its memory limit, now in CrashLoopBackOff.
    pub fn oom_killed(restart_count: u32) -> Self {
        Self::CrashLoopBackOff {
            restart_count,
            last_reason: "OOMKilled".into(),
            last_exit_code: 137,
        }
    }

    fn scheduled(&self) -> bool {
        !matches!(self, Self::Unschedulable { .. } | Self::Raw(_))
    }
}

/// A sequence of states, each entered `after` the previous one.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct PodScript {
    pub steps: Vec<(Duration, PodState)>,
}

impl PodScript {
    /// Enters `state` at once and stays there.
    pub fn stays(state: PodState) -> Self {
        Self {
            steps: vec![(Duration::ZERO, state)],
        }
    }

    /// Pending, then Running and Ready after `delay` (the default script).
    pub fn starts_after(delay: Duration) -> Self {
        Self::stays(PodState::Pending).then(delay, PodState::Running { ready: true })
    }

    pub fn then(mut self, after: Duration, state: PodState) -> Self {
        self.steps.push((after, state));
        self
    }
}

/// Which script a new pod follows; the most recently registered matching selector wins.
pub(crate) struct PodScripts {
    default: Mutex<PodScript>,
    by_selector: Mutex<Vec<(LabelSelector, PodScript)>>,
    /// Bumped per pod when a test sets its state directly, to stop its script.
    epochs: Mutex<HashMap<(String, String), u64>>,
}

impl PodScripts {
    pub(crate) fn new(startup: Duration) -> Self {
        Self {
            default: Mutex::new(PodScript::starts_after(startup)),
            by_selector: Mutex::new(Vec::new()),
            epochs: Mutex::new(HashMap::new()),
        }
    }

    pub(crate) fn set_default(&self, script: PodScript) {
        *self.default.lock().unwrap_or_else(|p| p.into_inner()) = script;
    }

    pub(crate) fn add(&self, selector: LabelSelector, script: PodScript) {
        self.by_selector
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push((selector, script));
    }

    fn for_pod(&self, pod: &Value) -> PodScript {
        let rules = self.by_selector.lock().unwrap_or_else(|p| p.into_inner());
        match rules.iter().rev().find(|(s, _)| s.matches(pod)) {
            Some((_, script)) => script.clone(),
            None => self
                .default
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .clone(),
        }
    }

    fn epoch(&self, ns: &str, name: &str) -> u64 {
        *self
            .epochs
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&(ns.into(), name.into()))
            .unwrap_or(&0)
    }

    pub(crate) fn bump(&self, ns: &str, name: &str) {
        *self
            .epochs
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry((ns.into(), name.into()))
            .or_default() += 1;
    }
}

/// Watches for new pods and plays their scripts.
pub(crate) async fn run(state: Arc<ServerState>) {
    let Ok((_, mut changes)) = state.store.lock().subscribe(None) else {
        return;
    };
    let pods = state.registry.find("pods").expect("pods are built in").id();
    loop {
        let change = match changes.recv().await {
            Ok(change) => change,
            Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => continue,
            Err(_) => return,
        };
        if change.resource != pods || change.kind != ChangeType::Added {
            continue;
        }
        let name = meta_str(&change.object, "name")
            .unwrap_or_default()
            .to_string();
        let script = state.pod_scripts.for_pod(&change.object);
        let (state, ns) = (state.clone(), change.namespace.clone());
        tokio::spawn(async move {
            let epoch = state.pod_scripts.epoch(&ns, &name);
            for (after, pod_state) in script.steps {
                tokio::time::sleep(after).await;
                if state.pod_scripts.epoch(&ns, &name) != epoch
                    || !set_state(&state, &ns, &name, &pod_state)
                {
                    return;
                }
            }
        });
    }
}

/// Writes `pod_state` into the pod's status (and binds it to the node). False if the pod is gone.
pub(crate) fn set_state(state: &ServerState, ns: &str, name: &str, pod_state: &PodState) -> bool {
    let rt = state
        .registry
        .find("pods")
        .expect("pods are built in")
        .clone();
    let events = state
        .registry
        .find("events")
        .expect("events are built in")
        .clone();
    let mut store = state.store.lock();
    let Some(mut pod) = store.get(&rt, ns, name).cloned() else {
        return false;
    };
    if pod_state.scheduled() && pod.pointer("/spec/nodeName").is_none() {
        pod["spec"]["nodeName"] = json!(NODE);
    }
    let before = pod.clone();
    pod["status"] = render(&pod, pod_state);
    // The kubelet writes status through the status subresource, and the real apiserver
    // records that in managedFields like any other write (a pod read back from a real
    // cluster carries a kubelet entry of a few KB).
    let now = now();
    record_update(
        Some(&before),
        &mut pod,
        &Writer {
            rt: &rt,
            manager: KUBELET,
            scope: Scope::Status,
            now: &now,
        },
    );
    store.put_key(&Inner::key_of(&rt, ns, name), pod.clone());
    if let Some(event) = event_for(&pod, pod_state) {
        let _ = store.create(&events, ns, event);
    }
    true
}

fn container_names(pod: &Value) -> Vec<(String, String)> {
    pod.pointer("/spec/containers")
        .and_then(Value::as_array)
        .map(|cs| {
            cs.iter()
                .map(|c| {
                    (
                        c["name"].as_str().unwrap_or_default().to_string(),
                        c["image"].as_str().unwrap_or_default().to_string(),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

fn condition(kind: &str, ok: bool, reason: Option<(&str, String)>, t: &str) -> Value {
    let mut c = json!({ "type": kind, "status": if ok { "True" } else { "False" }, "lastProbeTime": null, "lastTransitionTime": t });
    if let Some((reason, message)) = reason {
        c["reason"] = json!(reason);
        c["message"] = json!(message);
    }
    c
}

fn container_id() -> String {
    format!(
        "containerd://{:016x}{:016x}{:016x}{:016x}",
        random(),
        random(),
        random(),
        random()
    )
}

/// The `status` kubelet (or the scheduler) would report for `pod` in `pod_state`.
pub(crate) fn render(pod: &Value, pod_state: &PodState) -> Value {
    let t = now();
    let containers = container_names(pod);
    let names: Vec<&str> = containers.iter().map(|(n, _)| n.as_str()).collect();
    if let PodState::Raw(status) = pod_state {
        return status.clone();
    }
    if let PodState::Unschedulable { message } = pod_state {
        return json!({ "phase": "Pending", "qosClass": "BestEffort",
            "conditions": [condition("PodScheduled", false, Some(("Unschedulable", message.clone())), &t)] });
    }
    let ready = matches!(pod_state, PodState::Running { ready: true });
    let started = matches!(pod_state, PodState::Running { .. });
    let unready = Some((
        "ContainersNotReady",
        format!("containers with unready status: [{}]", names.join(" ")),
    ));
    let (phase, sandbox_ready) = match pod_state {
        PodState::Pending => ("Pending", false),
        PodState::Waiting { reason, .. } if reason != "CrashLoopBackOff" => ("Pending", true),
        PodState::Succeeded => ("Succeeded", false),
        PodState::Failed { .. } => ("Failed", false),
        _ => ("Running", true),
    };
    let statuses: Vec<Value> = containers
        .iter()
        .map(|(name, image)| {
            let (state, last_state, restarts) = match pod_state {
                PodState::Pending => (json!({ "waiting": { "reason": "ContainerCreating" } }), json!({}), 0),
                PodState::Running { .. } => (json!({ "running": { "startedAt": t } }), json!({}), 0),
                PodState::Waiting { reason, message } => (json!({ "waiting": { "reason": reason, "message": message } }), json!({}), 0),
                PodState::CrashLoopBackOff { restart_count, last_reason, last_exit_code } => (
                    json!({ "waiting": { "reason": "CrashLoopBackOff", "message": format!("back-off 40s restarting failed container={name} pod={}_{}({})", meta_str(pod, "name").unwrap_or_default(), meta_str(pod, "namespace").unwrap_or_default(), meta_str(pod, "uid").unwrap_or_default()) } }),
                    json!({ "terminated": { "exitCode": last_exit_code, "reason": last_reason, "startedAt": t, "finishedAt": t, "containerID": container_id() } }),
                    *restart_count,
                ),
                PodState::Succeeded => (json!({ "terminated": { "exitCode": 0, "reason": "Completed", "startedAt": t, "finishedAt": t, "containerID": container_id() } }), json!({}), 0),
                PodState::Failed { reason, message } => (json!({ "terminated": { "exitCode": 1, "reason": reason, "message": message, "startedAt": t, "finishedAt": t, "containerID": container_id() } }), json!({}), 0),
                PodState::Unschedulable { .. } | PodState::Raw(_) => unreachable!("handled above"),
            };
            let mut status = json!({ "name": name, "state": state, "lastState": last_state, "ready": ready, "restartCount": restarts, "image": image, "imageID": "", "started": started });
            if started {
                status["imageID"] = json!(format!("{image}@sha256:{:016x}{:016x}{:016x}{:016x}", random(), random(), random(), random()));
                status["containerID"] = json!(container_id());
            }
            status
        })
        .collect();
    let pod_ip = format!("10.8.{}.{}", random() % 250, random() % 250 + 2);
    let mut status = json!({
        "phase": phase,
        "conditions": [
            condition("PodReadyToStartContainers", sandbox_ready, None, &t),
            condition("Initialized", true, None, &t),
            condition("Ready", ready, if ready { None } else { unready.clone() }, &t),
            condition("ContainersReady", ready, if ready { None } else { unready }, &t),
            condition("PodScheduled", true, None, &t),
        ],
        "hostIP": HOST_IP, "hostIPs": [{ "ip": HOST_IP }],
        "startTime": t,
        "containerStatuses": statuses,
        "qosClass": "BestEffort",
    });
    if sandbox_ready {
        let ip = pod
            .pointer("/status/podIP")
            .cloned()
            .unwrap_or(json!(pod_ip));
        status["podIP"] = ip.clone();
        status["podIPs"] = json!([{ "ip": ip }]);
    }
    if let Some(start) = pod.pointer("/status/startTime") {
        status["startTime"] = start.clone();
    }
    status
}

/// The Event the scheduler or kubelet records on entering `pod_state`.
fn event_for(pod: &Value, pod_state: &PodState) -> Option<Value> {
    let first = container_names(pod)
        .into_iter()
        .next()
        .unwrap_or_default()
        .0;
    let (kind, reason, message, component) = match pod_state {
        PodState::Unschedulable { message } => (
            "Warning",
            "FailedScheduling",
            message.clone(),
            "default-scheduler",
        ),
        PodState::Running { .. } => (
            "Normal",
            "Started",
            format!("Started container {first}"),
            "kubelet",
        ),
        PodState::Waiting { reason, message } if reason == "ImagePullBackOff" => {
            ("Normal", "BackOff", message.clone(), "kubelet")
        }
        PodState::Waiting { reason, message } if reason != "ContainerCreating" => (
            "Warning",
            "Failed",
            format!("Error: {reason}: {message}"),
            "kubelet",
        ),
        PodState::CrashLoopBackOff { .. } => (
            "Warning",
            "BackOff",
            "Back-off restarting failed container".to_string(),
            "kubelet",
        ),
        _ => return None,
    };
    let t = now();
    let ns = meta_str(pod, "namespace").unwrap_or_default();
    let name = meta_str(pod, "name").unwrap_or_default();
    Some(json!({
        "apiVersion": "v1", "kind": "Event",
        "metadata": { "name": format!("{name}.{:016x}", random()), "namespace": ns },
        "involvedObject": { "kind": "Pod", "namespace": ns, "name": name, "uid": meta_str(pod, "uid"), "apiVersion": "v1", "fieldPath": format!("spec.containers{{{first}}}") },
        "reason": reason, "message": message, "type": kind, "count": 1,
        "source": { "component": component, "host": NODE },
        "firstTimestamp": t, "lastTimestamp": t, "eventTime": null,
        "reportingComponent": component, "reportingInstance": NODE,
    }))
}
