//! What the platform's own services need of an instance's gateway: where it listens
//! and its token (ResolveGateway, for the bridge), a new token, and a command run
//! inside the instance (ExecInInstance, for the channels service).

use std::time::Duration;

use clawfleet_contracts::lifecycle::v1::{
    ExecInInstanceRequest, ExecInInstanceResponse, ResolveGatewayRequest, ResolveGatewayResponse,
    RotateGatewayTokenRequest, RotateGatewayTokenResponse,
};
use clawfleet_kit::{
    error::{ErrorCode, ServiceError},
    secret::random_token,
};
use tonic::{Request, Response, Status};

use super::{
    Lifecycle,
    errors::{RUNTIME_RETRY_AFTER_SECONDS, caller_of, runtime_error, store_error},
};
use crate::{
    instance_id::InstanceId,
    model::{DesiredState, Phase},
    runtime::{ExecRequest, RuntimeError},
    settling,
};

/// Bounds of ExecInInstance.
const DEFAULT_EXEC_TIMEOUT: Duration = Duration::from_secs(30);
const MAX_EXEC_TIMEOUT: Duration = Duration::from_secs(300);
const EXEC_OUTPUT_LIMIT: usize = 1024 * 1024;
const MAX_EXEC_ARGS: usize = 64;
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

impl Lifecycle {
    pub(super) async fn resolve_gateway(
        &self,
        request: Request<ResolveGatewayRequest>,
    ) -> Result<Response<ResolveGatewayResponse>, Status> {
        let caller = caller_of(&request)?;
        caller.require_service()?;
        let record = self
            .live_record(&caller, &request.get_ref().instance_id)
            .await?;
        let runtime = &self.runtime;
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
        let endpoint = match runtime
            .gateway_endpoint(&record.id, &record.gateway_token)
            .await
        {
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

    pub(super) async fn rotate_gateway_token(
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
            .live_record(&caller, &request.get_ref().instance_id)
            .await?;
        let update = self
            .registry
            .set_gateway_token(&record.id, &random_token(32))
            .await
            .map_err(store_error)?;
        let updated = super::changed_record(&record.id, update)?;
        self.apply_if_leading(&updated)
            .await
            .map_err(runtime_error)?;
        tracing::info!(instance = %record.id, "gateway token rotated");
        let endpoint_revision = match self
            .runtime
            .gateway_endpoint(&record.id, &record.gateway_token)
            .await
        {
            Ok(endpoint) => endpoint.revision(),
            // Not running: the new token applies when it starts.
            Err(_) => String::new(),
        };
        Ok(Response::new(RotateGatewayTokenResponse {
            endpoint_revision,
        }))
    }

    pub(super) async fn exec_in_instance(
        &self,
        request: Request<ExecInInstanceRequest>,
    ) -> Result<Response<ExecInInstanceResponse>, Status> {
        let caller = caller_of(&request)?;
        caller.require_service()?;
        let body = request.into_inner();
        let record = self.live_record(&caller, &body.instance_id).await?;
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
        let _slot = self.exec_slots.take(&record.id)?;
        let output = self
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
