//! The InstanceService gRPC handlers: validation, ownership, store writes, runtime calls.

use std::{pin::Pin, sync::Arc, time::Duration};

use clawfleet_contracts::common::v1::PageInfo;
use clawfleet_contracts::lifecycle::v1::{
    CreateInstanceRequest, CreateInstanceResponse, DeleteInstanceRequest, DeleteInstanceResponse,
    ExecInInstanceRequest, ExecInInstanceResponse, GetInstanceRequest, GetInstanceResponse,
    Instance, ListInstancesRequest, ListInstancesResponse, ResolveGatewayRequest,
    ResolveGatewayResponse, RotateGatewayTokenRequest, RotateGatewayTokenResponse,
    StartInstanceRequest, StartInstanceResponse, StopInstanceRequest, StopInstanceResponse,
    WatchInstancesRequest, WatchInstancesResponse, instance_service_server::InstanceService,
    watch_instances_response::Kind,
};
use clawfleet_kit::{
    error::{ErrorCode, ServiceError},
    identity::{Caller, Role},
    secret::random_token,
};
use tokio::sync::{broadcast, mpsc};
use tokio_stream::{Stream, wrappers::ReceiverStream};
use tokio_util::sync::CancellationToken;
use tonic::{Request, Response, Status};

use crate::{
    instance_id::InstanceId,
    model::{DesiredState, InstanceRecord, Phase, Plan, now_ms},
    registry::Registry,
    runtime::{DataRetention, ExecRequest, RuntimeError, SharedRuntime},
    settling,
    store::StoreError,
    validation::{validate_model, validate_owner, validate_secrets},
    view::instance_view,
    watch_hub::WatchHub,
};

/// Default and largest page sizes of ListInstances.
const DEFAULT_PAGE_SIZE: usize = 100;
const MAX_PAGE_SIZE: usize = 1000;
/// Bounds of ExecInInstance.
const DEFAULT_EXEC_TIMEOUT: Duration = Duration::from_secs(30);
const MAX_EXEC_TIMEOUT: Duration = Duration::from_secs(300);
const EXEC_OUTPUT_LIMIT: usize = 1024 * 1024;
const MAX_EXEC_ARGS: usize = 64;
/// Messages a WatchInstances stream may buffer before the sender waits.
const WATCH_STREAM_BUFFER: usize = 256;

/// Shared state behind the gRPC handlers.
pub struct Lifecycle {
    pub registry: Arc<Registry>,
    pub runtime: SharedRuntime,
    pub hub: WatchHub,
    pub shutdown: CancellationToken,
}

/// The gRPC face of [`Lifecycle`].
#[derive(Clone)]
pub struct InstanceServiceHandler {
    lifecycle: Arc<Lifecycle>,
}

impl InstanceServiceHandler {
    pub fn new(lifecycle: Arc<Lifecycle>) -> Self {
        Self { lifecycle }
    }
}

impl Lifecycle {
    fn view(&self, record: &InstanceRecord) -> Instance {
        instance_view(record, self.runtime.observe(&record.id))
    }

    /// The record if it exists and the caller may see it; NotFound otherwise, so app
    /// users cannot learn that another user's instance exists.
    fn visible_record(
        &self,
        caller: &Caller,
        id_text: &str,
    ) -> Result<InstanceRecord, ServiceError> {
        let id = parse_id(id_text)?;
        match self.registry.get(&id) {
            Some(record) if may_see(caller, &record) => Ok(record),
            _ => Err(ServiceError::not_found(format!("instance {id} not found"))),
        }
    }

    async fn set_desired_state(
        &self,
        caller: &Caller,
        id_text: &str,
        desired_state: DesiredState,
    ) -> Result<Instance, ServiceError> {
        let record = self.visible_record(caller, id_text)?;
        let updated = self
            .registry
            .set_desired_state(&record.id, desired_state)
            .await
            .map_err(store_error)?
            .ok_or_else(|| ServiceError::not_found(format!("instance {} not found", record.id)))?;
        self.runtime
            .apply(&updated.spec())
            .await
            .map_err(runtime_error)?;
        let view = self.view(&updated);
        self.hub.updated(view.clone());
        Ok(view)
    }
}

fn may_see(caller: &Caller, record: &InstanceRecord) -> bool {
    caller.is_privileged() || (caller.role == Role::App && record.owner == caller.subject)
}

fn parse_id(text: &str) -> Result<InstanceId, ServiceError> {
    Ok(InstanceId::parse(text)?)
}

fn store_error(error: StoreError) -> ServiceError {
    match error {
        StoreError::AlreadyExists(id) => ServiceError::new(
            ErrorCode::AlreadyExists,
            format!("instance {id} already exists"),
        ),
        StoreError::QuotaExceeded { owned, quota } => ServiceError::new(
            ErrorCode::FailedPrecondition,
            format!(
                "your plan allows {quota} instance{}, and you have {owned}; delete one or upgrade your plan",
                if quota == 1 { "" } else { "s" }
            ),
        ),
        other => ServiceError::internal(other),
    }
}

/// When to retry after the runtime's backend was unavailable (apiserver outages and
/// throttling usually pass within seconds).
const RUNTIME_RETRY_AFTER_SECONDS: u32 = 5;
/// How long ResolveGateway waits for a pending or starting instance to become ready: a
/// little under the bridge's 5 s deadline for the call, so the caller gets the answer.
const READY_WAIT: Duration = Duration::from_secs(4);

/// Whether any of the instance's pods has a container running right now.
fn has_a_running_container(pods: &[clawfleet_contracts::lifecycle::v1::Pod]) -> bool {
    pods.iter().any(|pod| {
        pod.state
            .as_ref()
            .is_some_and(|state| state.status == "running")
    })
}

fn runtime_error(error: RuntimeError) -> ServiceError {
    match error {
        RuntimeError::NotFound(id) => ServiceError::not_found(format!("instance {id} not found")),
        RuntimeError::NotRunning { id, reason } => {
            ServiceError::unavailable(format!("instance {id} is not running: {reason}"))
                .with_retry_after(2)
        }
        RuntimeError::InvalidExec(message) => ServiceError::invalid_argument(message),
        RuntimeError::ShuttingDown => ServiceError::unavailable("the platform is shutting down"),
        RuntimeError::Io(error) => ServiceError::internal(error),
        RuntimeError::Unavailable(message) => {
            ServiceError::unavailable(message).with_retry_after(RUNTIME_RETRY_AFTER_SECONDS)
        }
        RuntimeError::Misconfigured(message) => {
            // Not the caller's fault and not transient: the operator reading this error (or
            // the log) must learn which permission or setting to fix, so it is named.
            tracing::error!(error = %message, "the runtime is misconfigured");
            ServiceError::new(ErrorCode::Internal, message)
        }
    }
}

fn caller_of<T>(request: &Request<T>) -> Result<Caller, Status> {
    Caller::of(request).cloned()
}

type WatchStream = Pin<Box<dyn Stream<Item = Result<WatchInstancesResponse, Status>> + Send>>;

#[tonic::async_trait]
impl InstanceService for InstanceServiceHandler {
    async fn create_instance(
        &self,
        request: Request<CreateInstanceRequest>,
    ) -> Result<Response<CreateInstanceResponse>, Status> {
        let caller = caller_of(&request)?;
        let body = request.into_inner();
        let (id, owner) = match caller.role {
            // App users always own what they create, under a generated id.
            Role::App => (InstanceId::generate(), caller.subject.clone()),
            Role::Operator | Role::Service => {
                let id = if body.id.is_empty() {
                    InstanceId::generate()
                } else {
                    parse_id(&body.id)?
                };
                (id, body.owner.clone())
            }
        };
        validate_owner(&owner)?;
        let plan = Plan::from_proto(body.plan).map_err(ServiceError::from)?;
        let secrets = body.secrets.into_iter().collect();
        validate_secrets(&secrets)?;
        validate_model(&body.model)?;
        let now = now_ms();
        let record = InstanceRecord {
            id,
            owner,
            plan,
            desired_state: DesiredState::Running,
            model: body.model,
            gateway_token: random_token(32),
            secrets,
            created_at_ms: now,
            updated_at_ms: now,
        };
        // App users are held to their plan's quota; operators are not.
        let quota = (caller.role == Role::App).then(|| plan.instance_quota());
        let lifecycle = &self.lifecycle;
        lifecycle
            .registry
            .insert_within_quota(record.clone(), quota)
            .await
            .map_err(store_error)?;
        tracing::info!(instance = %record.id, plan = record.plan.as_str(), "instance created");
        if let Err(error) = lifecycle.runtime.apply(&record.spec()).await {
            // The record stands; the reconciler keeps trying to apply it.
            tracing::warn!(instance = %record.id, %error, "could not apply a new instance yet");
        }
        let view = lifecycle.view(&record);
        lifecycle.hub.updated(view.clone());
        Ok(Response::new(CreateInstanceResponse {
            instance: Some(view),
        }))
    }

    async fn get_instance(
        &self,
        request: Request<GetInstanceRequest>,
    ) -> Result<Response<GetInstanceResponse>, Status> {
        let caller = caller_of(&request)?;
        let record = self
            .lifecycle
            .visible_record(&caller, &request.get_ref().id)?;
        Ok(Response::new(GetInstanceResponse {
            instance: Some(self.lifecycle.view(&record)),
        }))
    }

    async fn list_instances(
        &self,
        request: Request<ListInstancesRequest>,
    ) -> Result<Response<ListInstancesResponse>, Status> {
        let caller = caller_of(&request)?;
        let body = request.into_inner();
        let page = body.page.unwrap_or_default();
        let limit = match page.page_size as usize {
            0 => DEFAULT_PAGE_SIZE,
            size => size.min(MAX_PAGE_SIZE),
        };
        let after = if page.page_token.is_empty() {
            None
        } else {
            Some(
                InstanceId::parse(&page.page_token)
                    .map_err(|_| ServiceError::invalid_argument("invalid page token"))?,
            )
        };
        let owner_filter = match caller.role {
            Role::App => Some(caller.subject.clone()),
            Role::Operator | Role::Service => Some(body.owner).filter(|owner| !owner.is_empty()),
        };
        let (records, more) = self
            .lifecycle
            .registry
            .page(after.as_ref(), limit, |record| {
                owner_filter
                    .as_ref()
                    .is_none_or(|owner| &record.owner == owner)
            });
        let next_page_token = match (more, records.last()) {
            (true, Some(last)) => last.id.to_string(),
            _ => String::new(),
        };
        let instances = records
            .iter()
            .map(|record| self.lifecycle.view(record))
            .collect();
        Ok(Response::new(ListInstancesResponse {
            instances,
            page: Some(PageInfo { next_page_token }),
        }))
    }

    async fn delete_instance(
        &self,
        request: Request<DeleteInstanceRequest>,
    ) -> Result<Response<DeleteInstanceResponse>, Status> {
        let caller = caller_of(&request)?;
        let body = request.into_inner();
        let lifecycle = &self.lifecycle;
        let record = lifecycle.visible_record(&caller, &body.id)?;
        let preserve_data = body.preserve_data.unwrap_or(true);
        let retention = if preserve_data {
            DataRetention::Keep
        } else {
            DataRetention::Purge
        };
        let last_view = lifecycle.view(&record);
        // Runtime first: a crash between the two leaves a record the reconciler re-applies,
        // never a gateway without a record.
        lifecycle
            .runtime
            .delete(&record.id, retention)
            .await
            .map_err(runtime_error)?;
        lifecycle
            .registry
            .remove(&record.id)
            .await
            .map_err(store_error)?;
        tracing::info!(instance = %record.id, preserve_data, "instance deleted");
        lifecycle.hub.deleted(last_view);
        Ok(Response::new(DeleteInstanceResponse {
            id: record.id.to_string(),
            data_preserved: preserve_data,
        }))
    }

    async fn stop_instance(
        &self,
        request: Request<StopInstanceRequest>,
    ) -> Result<Response<StopInstanceResponse>, Status> {
        let caller = caller_of(&request)?;
        let instance = self
            .lifecycle
            .set_desired_state(&caller, &request.get_ref().id, DesiredState::Stopped)
            .await?;
        Ok(Response::new(StopInstanceResponse {
            instance: Some(instance),
        }))
    }

    async fn start_instance(
        &self,
        request: Request<StartInstanceRequest>,
    ) -> Result<Response<StartInstanceResponse>, Status> {
        let caller = caller_of(&request)?;
        let instance = self
            .lifecycle
            .set_desired_state(&caller, &request.get_ref().id, DesiredState::Running)
            .await?;
        Ok(Response::new(StartInstanceResponse {
            instance: Some(instance),
        }))
    }

    type WatchInstancesStream = WatchStream;

    async fn watch_instances(
        &self,
        request: Request<WatchInstancesRequest>,
    ) -> Result<Response<Self::WatchInstancesStream>, Status> {
        let caller = caller_of(&request)?;
        let lifecycle = self.lifecycle.clone();
        let only_id = match request.get_ref().id.as_str() {
            "" => None,
            text => Some(lifecycle.visible_record(&caller, text)?.id),
        };
        // Subscribe before taking the snapshot so no change falls between the two.
        let mut changes = lifecycle.hub.subscribe();
        let (sender, receiver) = mpsc::channel(WATCH_STREAM_BUFFER);
        let wanted = move |instance: &Instance| {
            let id_matches = only_id.as_ref().is_none_or(|id| id.as_str() == instance.id);
            let visible = caller.is_privileged() || instance.owner == caller.subject;
            id_matches && visible
        };
        tokio::spawn(async move {
            let snapshot = |lifecycle: &Lifecycle| -> Vec<WatchInstancesResponse> {
                lifecycle
                    .registry
                    .all()
                    .iter()
                    .map(|record| lifecycle.view(record))
                    .filter(&wanted)
                    .map(|instance| WatchInstancesResponse {
                        kind: Kind::Snapshot as i32,
                        instance: Some(instance),
                    })
                    .collect()
            };
            for message in snapshot(&lifecycle) {
                if sender.send(Ok(message)).await.is_err() {
                    return;
                }
            }
            loop {
                let change = tokio::select! {
                    change = changes.recv() => change,
                    _ = sender.closed() => return,
                    _ = lifecycle.shutdown.cancelled() => return,
                };
                let messages = match change {
                    Ok(message) if message.instance.as_ref().is_some_and(&wanted) => vec![message],
                    Ok(_) => continue,
                    Err(broadcast::error::RecvError::Lagged(_)) => snapshot(&lifecycle),
                    Err(broadcast::error::RecvError::Closed) => return,
                };
                for message in messages {
                    if sender.send(Ok(message)).await.is_err() {
                        return;
                    }
                }
            }
        });
        Ok(Response::new(Box::pin(ReceiverStream::new(receiver))))
    }

    async fn resolve_gateway(
        &self,
        request: Request<ResolveGatewayRequest>,
    ) -> Result<Response<ResolveGatewayResponse>, Status> {
        let caller = caller_of(&request)?;
        caller.require_service()?;
        let record = self
            .lifecycle
            .visible_record(&caller, &request.get_ref().instance_id)?;
        let runtime = &self.lifecycle.runtime;
        let observed = if record.desired_state == DesiredState::Running {
            settling::settled(runtime.as_ref(), &record.id, READY_WAIT).await
        } else {
            runtime.observe(&record.id)
        };
        let not_running = |id: &InstanceId, reason: &str| {
            Status::from(ServiceError::new(
                ErrorCode::FailedPrecondition,
                format!("instance {id} is not running ({reason}); start it or fix it first"),
            ))
        };
        match observed.phase {
            phase if settling::is_on_its_way_up(phase) => {
                return Err(ServiceError::unavailable(format!(
                    "instance {} is still starting ({}); try again in a few seconds",
                    record.id, observed.reason
                ))
                .with_retry_after(RUNTIME_RETRY_AFTER_SECONDS)
                .into());
            }
            // Stopped by request, or failing with no gateway container left running
            // (crash loop, image pull, config error): retrying will not help until
            // someone starts or fixes the instance, so say so instead of handing out an
            // endpoint nobody answers on (a cluster Service name resolves even then). A
            // running gateway that failed readiness (say, restarting after a config
            // change) still gets its endpoint: it may answer by the time it is called.
            Phase::Stopped => return Err(not_running(&record.id, &observed.reason)),
            Phase::Error if !has_a_running_container(&observed.pods) => {
                return Err(not_running(&record.id, &observed.reason));
            }
            _ if record.desired_state == DesiredState::Stopped => {
                return Err(not_running(&record.id, "stopped"));
            }
            _ => {}
        }
        let endpoint = match runtime.gateway_endpoint(&record.id).await {
            Ok(endpoint) => endpoint,
            Err(RuntimeError::NotRunning { id, reason })
                if runtime.observe(&id).phase == Phase::Error =>
            {
                return Err(not_running(&id, &reason));
            }
            Err(error) => return Err(runtime_error(error).into()),
        };
        Ok(Response::new(ResolveGatewayResponse {
            endpoint_revision: endpoint.revision(),
            gateway_url: endpoint.gateway_url,
            gateway_token: endpoint.gateway_token,
            vnc_url: endpoint.vnc_url,
            loopback: endpoint.loopback,
        }))
    }

    async fn rotate_gateway_token(
        &self,
        request: Request<RotateGatewayTokenRequest>,
    ) -> Result<Response<RotateGatewayTokenResponse>, Status> {
        let caller = caller_of(&request)?;
        if !caller.is_privileged() {
            return Err(Status::permission_denied(
                "only operators and services may rotate gateway tokens",
            ));
        }
        let record = self
            .lifecycle
            .visible_record(&caller, &request.get_ref().instance_id)?;
        let updated = self
            .lifecycle
            .registry
            .set_gateway_token(&record.id, random_token(32))
            .await
            .map_err(store_error)?
            .ok_or_else(|| ServiceError::not_found(format!("instance {} not found", record.id)))?;
        self.lifecycle
            .runtime
            .apply(&updated.spec())
            .await
            .map_err(runtime_error)?;
        tracing::info!(instance = %record.id, "gateway token rotated");
        let endpoint_revision = match self.lifecycle.runtime.gateway_endpoint(&record.id).await {
            Ok(endpoint) => endpoint.revision(),
            // Not running: the new token applies when it starts.
            Err(_) => String::new(),
        };
        Ok(Response::new(RotateGatewayTokenResponse {
            endpoint_revision,
        }))
    }

    async fn exec_in_instance(
        &self,
        request: Request<ExecInInstanceRequest>,
    ) -> Result<Response<ExecInInstanceResponse>, Status> {
        let caller = caller_of(&request)?;
        caller.require_service()?;
        let body = request.into_inner();
        let record = self.lifecycle.visible_record(&caller, &body.instance_id)?;
        if body.argv.is_empty() || body.argv.len() > MAX_EXEC_ARGS {
            return Err(ServiceError::invalid_argument(format!(
                "argv must hold 1 to {MAX_EXEC_ARGS} arguments"
            ))
            .into());
        }
        let timeout = match body.timeout_ms {
            0 => DEFAULT_EXEC_TIMEOUT,
            ms => Duration::from_millis(u64::from(ms)).min(MAX_EXEC_TIMEOUT),
        };
        let output = self
            .lifecycle
            .runtime
            .exec(
                &record.id,
                ExecRequest {
                    argv: body.argv,
                    stdin: body.stdin,
                    timeout,
                    output_limit_bytes: EXEC_OUTPUT_LIMIT,
                },
            )
            .await
            .map_err(runtime_error)?;
        Ok(Response::new(ExecInInstanceResponse {
            exit_code: output.exit_code,
            stdout: output.stdout,
            stderr: output.stderr,
            truncated: output.truncated,
            timed_out: output.timed_out,
        }))
    }
}
