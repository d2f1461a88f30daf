//! Who may reach which gateway: operators and services any; app users only their own
//! instances. The bridge asks the lifecycle for the instance as itself (only the edge may
//! state an app user) and compares the owner.

use std::time::Duration;

use clawfleet_contracts::lifecycle::v1::{
    GetInstanceRequest, instance_service_client::InstanceServiceClient,
};
use clawfleet_kit::{
    client::GrpcChannel,
    error::ServiceError,
    identity::{Caller, ServiceCredentials},
    instance_access::ensure_may_use,
};
use tonic::Request;

const OWNERSHIP_DEADLINE: Duration = Duration::from_secs(5);

#[derive(Clone)]
pub struct InstanceAccess {
    lifecycle: InstanceServiceClient<GrpcChannel>,
    credentials: ServiceCredentials,
}

impl InstanceAccess {
    pub fn new(channel: GrpcChannel, credentials: ServiceCredentials) -> Self {
        Self {
            lifecycle: InstanceServiceClient::new(channel),
            credentials,
        }
    }

    /// Ok when `caller` may use the instance; NotFound (never PermissionDenied) otherwise.
    pub async fn check(&self, caller: &Caller, instance_id: &str) -> Result<(), ServiceError> {
        if caller.is_privileged() {
            return Ok(());
        }
        let mut request = Request::new(GetInstanceRequest {
            id: instance_id.to_owned(),
        });
        self.credentials.stamp_self(&mut request);
        request.set_timeout(OWNERSHIP_DEADLINE);
        ensure_may_use(&self.lifecycle, request, caller).await
    }
}
