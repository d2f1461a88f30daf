//! The services channels calls, always as itself (only the edge may state an app user):
//! the lifecycle (the instance, whose owner channels compares with its caller; exec
//! inside the instance) and the bridge (gateway methods, once ownership is checked).

use std::time::Duration;

use clawfleet_contracts::{
    bridge::v1::{
        CallRequest, GatewayError, call_response::Outcome,
        gateway_bridge_service_client::GatewayBridgeServiceClient,
    },
    json::{json_to_struct, value_to_json},
    lifecycle::v1::{
        ExecInInstanceRequest, ExecInInstanceResponse, GetInstanceRequest,
        instance_service_client::InstanceServiceClient,
    },
};
use clawfleet_kit::{
    client::GrpcChannel,
    error::ServiceError,
    identity::{Caller, ServiceCredentials},
    instance_access::ensure_may_use,
};
use tonic::Request;

/// How long an ownership check may take.
const ACCESS_DEADLINE: Duration = Duration::from_secs(5);

/// What a gateway answered: its result, or its own error frame.
pub type GatewayAnswer = Result<serde_json::Value, GatewayError>;

#[derive(Clone)]
pub struct Upstream {
    bridge: GatewayBridgeServiceClient<GrpcChannel>,
    lifecycle: InstanceServiceClient<GrpcChannel>,
    credentials: ServiceCredentials,
}

impl Upstream {
    pub fn new(
        bridge: GrpcChannel,
        lifecycle: GrpcChannel,
        credentials: ServiceCredentials,
    ) -> Self {
        Self {
            bridge: GatewayBridgeServiceClient::new(bridge),
            lifecycle: InstanceServiceClient::new(lifecycle),
            credentials,
        }
    }

    fn stamped<T>(&self, message: T, deadline: Duration) -> Request<T> {
        let mut request = Request::new(message);
        self.credentials.stamp_self(&mut request);
        request.set_timeout(deadline);
        request
    }

    /// NotFound unless `caller` may use the instance.
    pub async fn check_access(
        &self,
        caller: &Caller,
        instance_id: &str,
    ) -> Result<(), ServiceError> {
        let request = self.stamped(
            GetInstanceRequest {
                id: instance_id.to_owned(),
            },
            ACCESS_DEADLINE,
        );
        ensure_may_use(&self.lifecycle, request, caller).await
    }

    /// Calls a gateway method through the bridge for `caller`, once it is known to
    /// own the instance (channels calls the bridge as itself, so the bridge cannot check).
    pub async fn call(
        &self,
        caller: &Caller,
        instance_id: &str,
        method: &str,
        params: serde_json::Value,
        deadline: Duration,
    ) -> Result<GatewayAnswer, ServiceError> {
        self.check_access(caller, instance_id).await?;
        let request = self.stamped(
            CallRequest {
                instance_id: instance_id.to_owned(),
                method: method.to_owned(),
                params: Some(json_to_struct(params)),
            },
            deadline,
        );
        let response = self.bridge.clone().call(request).await?.into_inner();
        match response.outcome {
            Some(Outcome::Result(value)) => Ok(Ok(value_to_json(value))),
            Some(Outcome::Error(error)) => Ok(Err(error)),
            None => Err(ServiceError::internal(
                "the bridge answered without an outcome",
            )),
        }
    }

    /// Calls a gateway method and turns a gateway error frame into a service error.
    pub async fn call_ok(
        &self,
        caller: &Caller,
        instance_id: &str,
        method: &str,
        params: serde_json::Value,
        deadline: Duration,
    ) -> Result<serde_json::Value, ServiceError> {
        self.call(caller, instance_id, method, params, deadline)
            .await?
            .map_err(|error| gateway_failure(method, &error))
    }

    /// Runs `argv` inside the instance (the caller's access must be checked first).
    pub async fn exec(
        &self,
        instance_id: &str,
        argv: Vec<String>,
        timeout: Duration,
    ) -> Result<ExecInInstanceResponse, ServiceError> {
        let message = ExecInInstanceRequest {
            instance_id: instance_id.to_owned(),
            argv,
            stdin: Vec::new(),
            timeout_ms: u32::try_from(timeout.as_millis()).unwrap_or(u32::MAX),
        };
        let request = self.stamped(message, timeout + Duration::from_secs(5));
        Ok(self
            .lifecycle
            .clone()
            .exec_in_instance(request)
            .await?
            .into_inner())
    }
}

/// A gateway error frame as a service error: the gateway's own code and message kept.
pub fn gateway_failure(method: &str, error: &GatewayError) -> ServiceError {
    use clawfleet_kit::error::ErrorCode;
    let code = match error.code.as_str() {
        "INVALID_REQUEST" => ErrorCode::InvalidArgument,
        "FORBIDDEN" => ErrorCode::PermissionDenied,
        "UNAVAILABLE" => ErrorCode::Unavailable,
        _ => ErrorCode::BadGateway,
    };
    let mut failure = ServiceError::new(
        code,
        format!(
            "gateway {method} failed ({}): {}",
            error.code, error.message
        ),
    );
    if error.retryable {
        failure = failure.with_retry_after(error.retry_after_ms.div_ceil(1000).max(1));
    }
    failure
}
