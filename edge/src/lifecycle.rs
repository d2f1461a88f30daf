//! The edge's client of the lifecycle service: one lazily connected gRPC channel, every
//! call stamped with the edge's service token and the operator role, every unary call
//! bounded by a deadline.

pub mod backups; // CreateBackup, ListBackups, RestoreBackup, DeleteBackup on the slow channel
mod provider_keys; // RotateProviderKey and GetInstanceUsage

use clawfleet_kit::tls::ServiceTls;
use std::time::Duration;

use clawfleet_contracts::{
    common::v1::PageRequest,
    lifecycle::v1::{
        CreateInstanceRequest, DeleteInstanceRequest, DeleteInstanceResponse, GetInstanceRequest,
        Instance, ListInstancesRequest, ListInstancesResponse, SetOwnerPlanRequest,
        StartInstanceRequest, StopInstanceRequest, WatchInstancesRequest, WatchInstancesResponse,
        instance_service_client::InstanceServiceClient,
    },
};
use clawfleet_kit::client::GrpcChannel;
use clawfleet_kit::{error::ErrorCode, identity::Caller};
use tonic::{Request, Status, Streaming};

use crate::{
    error::ApiError,
    upstream::{Stamper, UpstreamClientError, lazy_channel},
};

/// How long one unary call, or the opening of a watch, may take.
pub const CALL_DEADLINE: Duration = Duration::from_secs(15);
/// Named in errors about the upstream.
const SERVICE_NAME: &str = "lifecycle service";

/// Calls the lifecycle service on behalf of the caller the edge authenticated.
#[derive(Clone, Debug)]
pub struct LifecycleClient {
    client: InstanceServiceClient<GrpcChannel>,
    /// Backups and restores stop and start a gateway: a channel with their longer
    /// deadline (docs/product/backups.md#routes).
    slow: InstanceServiceClient<GrpcChannel>,
    stamper: Stamper,
}

impl LifecycleClient {
    /// Builds the client without connecting; the first call connects. Must run inside a
    /// tokio runtime, which drives the channel.
    pub fn connect_lazy(
        address: &str,
        tls: Option<&ServiceTls>,
        service_token: &str,
    ) -> Result<Self, UpstreamClientError> {
        // The endpoint timeout bounds the wait for response headers only, so it also
        // caps opening a watch.
        let channel = lazy_channel(address, tls, |endpoint| endpoint.timeout(CALL_DEADLINE))?;
        let slow = lazy_channel(address, tls, |endpoint| {
            endpoint.timeout(backups::BACKUP_DEADLINE)
        })?;
        Ok(Self {
            client: InstanceServiceClient::new(channel),
            slow: InstanceServiceClient::new(slow),
            stamper: Stamper::new(service_token)?,
        })
    }

    fn stamped<T>(&self, caller: &Caller, message: T) -> Result<Request<T>, ApiError> {
        self.stamper.stamped(caller, message)
    }

    fn unary<T>(&self, caller: &Caller, message: T) -> Result<Request<T>, ApiError> {
        let mut request = self.stamped(caller, message)?;
        request.set_timeout(CALL_DEADLINE);
        Ok(request)
    }

    pub async fn create(
        &self,
        caller: &Caller,
        request: CreateInstanceRequest,
    ) -> Result<Instance, ApiError> {
        let request = self.unary(caller, request)?;
        let response = self
            .client
            .clone()
            .create_instance(request)
            .await
            .map_err(upstream)?;
        present(response.into_inner().instance)
    }

    pub async fn get(&self, caller: &Caller, id: String) -> Result<Instance, ApiError> {
        let request = self.unary(caller, GetInstanceRequest { id })?;
        let response = self
            .client
            .clone()
            .get_instance(request)
            .await
            .map_err(upstream)?;
        present(response.into_inner().instance)
    }

    pub async fn list(
        &self,
        caller: &Caller,
        page_size: u32,
        page_token: String,
    ) -> Result<ListInstancesResponse, ApiError> {
        self.list_of(caller, String::new(), page_size, page_token)
            .await
    }

    /// One page of `owner`'s instances (app callers always get their own).
    pub async fn list_of(
        &self,
        caller: &Caller,
        owner: String,
        page_size: u32,
        page_token: String,
    ) -> Result<ListInstancesResponse, ApiError> {
        let request = self.unary(
            caller,
            ListInstancesRequest {
                owner,
                page: Some(PageRequest {
                    page_size,
                    page_token,
                }),
            },
        )?;
        let response = self
            .client
            .clone()
            .list_instances(request)
            .await
            .map_err(upstream)?;
        Ok(response.into_inner())
    }

    pub async fn delete(
        &self,
        caller: &Caller,
        id: String,
        preserve_data: bool,
    ) -> Result<DeleteInstanceResponse, ApiError> {
        let request = self.unary(
            caller,
            DeleteInstanceRequest {
                id,
                preserve_data: Some(preserve_data),
            },
        )?;
        let response = self
            .client
            .clone()
            .delete_instance(request)
            .await
            .map_err(upstream)?;
        Ok(response.into_inner())
    }

    pub async fn stop(&self, caller: &Caller, id: String) -> Result<Instance, ApiError> {
        let request = self.unary(caller, StopInstanceRequest { id })?;
        let response = self
            .client
            .clone()
            .stop_instance(request)
            .await
            .map_err(upstream)?;
        present(response.into_inner().instance)
    }

    pub async fn start(&self, caller: &Caller, id: String) -> Result<Instance, ApiError> {
        let request = self.unary(caller, StartInstanceRequest { id })?;
        let response = self
            .client
            .clone()
            .start_instance(request)
            .await
            .map_err(upstream)?;
        present(response.into_inner().instance)
    }

    /// Applies a user's plan and standing to everything they own. `Ok(None)` when this
    /// lifecycle does not serve SetOwnerPlan yet (an older version during an upgrade):
    /// the plan is recorded and applies to the next create; see
    /// docs/product/subscriptions.md#applying-a-plan.
    pub async fn set_owner_plan(
        &self,
        caller: &Caller,
        request: SetOwnerPlanRequest,
    ) -> Result<Option<Vec<Instance>>, ApiError> {
        let request = self.unary(caller, request)?;
        match self.client.clone().set_owner_plan(request).await {
            Ok(response) => Ok(Some(response.into_inner().instances)),
            Err(status) if status.code() == tonic::Code::Unimplemented => {
                tracing::warn!("the lifecycle does not apply plans to running instances yet");
                Ok(None)
            }
            Err(status) => Err(upstream(status)),
        }
    }

    /// Opens a watch of one instance (`id`) or of every instance (empty `id`). The call
    /// carries no deadline, which would end the stream; opening it is bounded instead.
    pub async fn watch(
        &self,
        caller: &Caller,
        id: String,
    ) -> Result<Streaming<WatchInstancesResponse>, ApiError> {
        let request = self.stamped(caller, WatchInstancesRequest { id })?;
        let mut client = self.client.clone();
        let response = tokio::time::timeout(CALL_DEADLINE, client.watch_instances(request))
            .await
            .map_err(|_| deadline_passed())?
            .map_err(upstream)?;
        Ok(response.into_inner())
    }
}

/// Maps a status from the lifecycle service to the edge's error.
pub fn upstream(status: Status) -> ApiError {
    ApiError::from_upstream_status(&status, SERVICE_NAME)
}

/// The error for a lifecycle call that took longer than [`CALL_DEADLINE`].
pub fn deadline_passed() -> ApiError {
    ApiError::new(
        ErrorCode::DeadlineExceeded,
        format!("{SERVICE_NAME} did not answer in time"),
    )
}

fn present(instance: Option<Instance>) -> Result<Instance, ApiError> {
    instance.ok_or_else(|| ApiError::internal("lifecycle service answered without an instance"))
}
