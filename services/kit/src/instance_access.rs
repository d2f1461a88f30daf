//! Whether a caller may use an instance, for services that ask the lifecycle as
//! themselves (the bridge and channels: only the edge may state an app user, so they
//! compare the owner on their side). An instance the caller may not use reads as not
//! found, exactly as the lifecycle answers an app user for someone else's.

use clawfleet_contracts::lifecycle::v1::{
    GetInstanceRequest, instance_service_client::InstanceServiceClient,
};
use tonic::Request;

use crate::{client::GrpcChannel, error::ServiceError, identity::Caller};

/// Ok when `caller` may use the instance `request` asks for (sent as it is: stamped
/// with the service's own credential and a deadline); NotFound otherwise.
pub async fn ensure_may_use(
    lifecycle: &InstanceServiceClient<GrpcChannel>,
    request: Request<GetInstanceRequest>,
    caller: &Caller,
) -> Result<(), ServiceError> {
    let instance_id = request.get_ref().id.clone();
    let instance = lifecycle
        .clone()
        .get_instance(request)
        .await
        .map_err(|status| ServiceError::from_status(&status))?
        .into_inner()
        .instance;
    match instance {
        Some(instance) if caller.may_use_instance_of(&instance.owner) => Ok(()),
        _ => Err(ServiceError::not_found(format!(
            "instance {instance_id} not found"
        ))),
    }
}
