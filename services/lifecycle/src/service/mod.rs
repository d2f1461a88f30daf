//! The InstanceService gRPC handlers: validation, ownership, store writes, runtime calls.

mod errors; // store and runtime failures as the kit's error codes
mod gateway_access; // ResolveGateway, RotateGatewayToken and ExecInInstance
mod watch; // WatchInstances: snapshot, changes, resynchronisation

use std::sync::Arc;

use clawfleet_contracts::common::v1::PageInfo;
use clawfleet_contracts::lifecycle::v1::{
    CreateInstanceRequest, CreateInstanceResponse, DeleteInstanceRequest, DeleteInstanceResponse,
    ExecInInstanceRequest, ExecInInstanceResponse, GetInstanceRequest, GetInstanceResponse,
    Instance, ListInstancesRequest, ListInstancesResponse, ResolveGatewayRequest,
    ResolveGatewayResponse, RotateGatewayTokenRequest, RotateGatewayTokenResponse,
    StartInstanceRequest, StartInstanceResponse, StopInstanceRequest, StopInstanceResponse,
    WatchInstancesRequest, instance_service_server::InstanceService,
};
use clawfleet_kit::{
    error::ServiceError,
    identity::{Caller, Role},
    secret::random_token,
};
use tokio_util::sync::CancellationToken;
use tonic::{Request, Response, Status};

use self::{
    errors::{caller_of, parse_id, runtime_error, store_error},
    watch::WatchStream,
};
use crate::{
    instance_id::InstanceId,
    model::{DesiredState, InstanceRecord, Plan, now_ms},
    registry::Registry,
    runtime::{DataRetention, SharedRuntime},
    validation::{validate_model, validate_owner, validate_secrets},
    view::instance_view,
    watch_hub::WatchHub,
};

/// Default and largest page sizes of ListInstances.
const DEFAULT_PAGE_SIZE: usize = 100;
const MAX_PAGE_SIZE: usize = 1000;

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
            revision: 0,
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
        let mut last_view = lifecycle.view(&record);
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
        last_view.revision = crate::revision::next();
        let revision = last_view.revision;
        lifecycle.hub.deleted(last_view);
        Ok(Response::new(DeleteInstanceResponse {
            id: record.id.to_string(),
            data_preserved: preserve_data,
            revision,
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
        let stream = watch::watch(self.lifecycle.clone(), caller, &request.get_ref().id)?;
        Ok(Response::new(stream))
    }

    async fn resolve_gateway(
        &self,
        request: Request<ResolveGatewayRequest>,
    ) -> Result<Response<ResolveGatewayResponse>, Status> {
        self.lifecycle.resolve_gateway(request).await
    }

    async fn rotate_gateway_token(
        &self,
        request: Request<RotateGatewayTokenRequest>,
    ) -> Result<Response<RotateGatewayTokenResponse>, Status> {
        self.lifecycle.rotate_gateway_token(request).await
    }

    async fn exec_in_instance(
        &self,
        request: Request<ExecInInstanceRequest>,
    ) -> Result<Response<ExecInInstanceResponse>, Status> {
        self.lifecycle.exec_in_instance(request).await
    }
}
