//! The InstanceService gRPC handlers: validation, ownership, store writes, runtime calls.

mod backups; // CreateBackup, ListBackups, RestoreBackup, DeleteBackup
mod deleting; // DeleteInstance: mark, tear down (bounded wait), answer
mod errors; // store and runtime failures as the kit's error codes
mod gateway_access; // ResolveGateway, RotateGatewayToken and ExecInInstance
mod provider_key_access; // SetOwnerPlan, RotateProviderKey and GetInstanceUsage
mod watch; // WatchInstances: snapshot, changes, resynchronisation

use std::sync::Arc;

use clawfleet_contracts::common::v1::PageInfo;
use clawfleet_contracts::lifecycle::v1::{
    CreateBackupRequest, CreateBackupResponse, CreateInstanceRequest, CreateInstanceResponse,
    DeleteBackupRequest, DeleteBackupResponse, DeleteInstanceRequest, DeleteInstanceResponse,
    ExecInInstanceRequest, ExecInInstanceResponse, GetInstanceRequest, GetInstanceResponse,
    GetInstanceUsageRequest, GetInstanceUsageResponse, Instance, ListBackupsRequest,
    ListBackupsResponse, ListInstancesRequest, ListInstancesResponse, ResolveGatewayRequest,
    ResolveGatewayResponse, RestoreBackupRequest, RestoreBackupResponse, RotateGatewayTokenRequest,
    RotateGatewayTokenResponse, RotateProviderKeyRequest, RotateProviderKeyResponse,
    SetOwnerPlanRequest, SetOwnerPlanResponse, StartInstanceRequest, StartInstanceResponse,
    StopInstanceRequest, StopInstanceResponse, WatchInstancesRequest,
    instance_service_server::InstanceService,
};
use clawfleet_kit::{
    error::ServiceError,
    identity::{Caller, Role},
    secret::random_token,
};
use tokio_util::sync::CancellationToken;
use tonic::{Request, Response, Status};

pub use self::deleting::DELETE_WAIT;
pub(crate) use self::errors::{runtime_error, store_error};
use self::{
    errors::{caller_of, parse_id},
    watch::WatchStream,
};
use crate::{
    deletion::Deletions,
    instance_id::InstanceId,
    model::{DesiredState, InstanceRecord, Plan, now_ms},
    registry::{Change, Registry},
    runtime::SharedRuntime,
    store::Update,
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
    /// Teardowns of deleted instances in flight.
    pub deletions: Deletions,
    /// Commands running inside each instance (ExecInInstance), capped per instance.
    pub exec_slots: crate::exec_slots::ExecSlots,
    /// Whether this replica leads: only the leader applies, repairs and deletes in the
    /// runtime; the others record writes in the store, which the leader hears at once
    /// (docs/product/runtimes.md#leader).
    leadership: tokio::sync::watch::Receiver<bool>,
    /// Per-user OpenRouter keys (docs/product/provider-keys.md); inert without a
    /// management key.
    pub provider_keys: crate::provider_keys::ProviderKeys,
    /// Instances a backup or restore is stopping and starting itself.
    pub holds: crate::backups::Holds,
    /// The configured backups, if any (docs/product/backups.md).
    pub backups: Option<Arc<crate::backups::Backups>>,
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
    pub fn new(
        registry: Arc<Registry>,
        runtime: SharedRuntime,
        hub: WatchHub,
        shutdown: CancellationToken,
    ) -> Self {
        Self {
            registry,
            runtime,
            hub,
            shutdown,
            deletions: Deletions::default(),
            exec_slots: crate::exec_slots::ExecSlots::default(),
            leadership: tokio::sync::watch::channel(true).1,
            provider_keys: Default::default(),
            holds: crate::backups::Holds::default(),
            backups: None,
        }
    }

    /// This lifecycle managing per-user provider keys as `provider_keys` says.
    pub fn with_provider_keys(mut self, provider_keys: crate::provider_keys::ProviderKeys) -> Self {
        self.provider_keys = provider_keys;
        self
    }

    /// This lifecycle taking and restoring backups with `backups`.
    pub fn with_backups(mut self, backups: Option<Arc<crate::backups::Backups>>) -> Self {
        self.backups = backups;
        self
    }

    /// This lifecycle following the election that `leadership` reports.
    pub fn with_leadership(mut self, leadership: tokio::sync::watch::Receiver<bool>) -> Self {
        self.leadership = leadership;
        self
    }

    pub fn is_leader(&self) -> bool {
        *self.leadership.borrow()
    }

    /// Hands `record` to the runtime when this replica leads (which applies it now or,
    /// on Kubernetes, in the background: docs/capacity.md#accept-then-apply); a follower
    /// leaves it to the leader, which hears of the write from the store.
    pub(crate) async fn apply_if_leading(
        &self,
        record: &InstanceRecord,
    ) -> Result<(), crate::runtime::RuntimeError> {
        // A backup or restore applies the record itself when it ends.
        if !self.is_leader() || self.holds.is_held(&record.id) {
            return Ok(());
        }
        self.runtime.submit(&record.spec(), &record.owner).await
    }

    /// What callers see of `record` now.
    pub fn view(&self, record: &InstanceRecord) -> Instance {
        instance_view(record, self.runtime.observe(&record.id))
    }

    /// Tells watchers about a change of the registry and converges the runtime to it
    /// (a record another replica wrote).
    pub async fn publish(self: &Arc<Self>, change: Change) {
        if let Change::Upserted(record) = &change {
            crate::reconciler::converge(self, record).await;
        }
        self.announce(change);
    }

    /// Tells watchers about a change of the registry.
    pub fn announce(&self, change: Change) {
        match change {
            Change::Upserted(record) => self.hub.updated(self.view(&record)),
            Change::Removed(record) => {
                let mut view = self.view(&record);
                view.revision = crate::revision::next();
                self.hub.deleted(view);
            }
        }
    }

    /// The record if it exists and the caller may see it; NotFound otherwise, so app
    /// users cannot learn that another user's instance exists.
    async fn visible_record(
        &self,
        caller: &Caller,
        id_text: &str,
    ) -> Result<InstanceRecord, ServiceError> {
        let id = parse_id(id_text)?;
        match self.registry.get_or_load(&id).await.map_err(store_error)? {
            Some(record) if may_see(caller, &record) => Ok(record),
            _ => Err(ServiceError::not_found(format!("instance {id} not found"))),
        }
    }

    /// [`Self::visible_record`], refused while the instance is being deleted: nothing
    /// may start, change or use it any more.
    async fn live_record(
        &self,
        caller: &Caller,
        id_text: &str,
    ) -> Result<InstanceRecord, ServiceError> {
        let record = self.visible_record(caller, id_text).await?;
        if record.deleting.is_some() {
            return Err(being_deleted(&record.id));
        }
        Ok(record)
    }

    async fn set_desired_state(
        &self,
        caller: &Caller,
        id_text: &str,
        desired_state: DesiredState,
    ) -> Result<Instance, ServiceError> {
        let record = self.live_record(caller, id_text).await?;
        let update = self
            .registry
            .set_desired_state(&record.id, desired_state)
            .await
            .map_err(store_error)?;
        let updated = changed_record(&record.id, update)?;
        self.apply_if_leading(&updated)
            .await
            .map_err(runtime_error)?;
        let view = self.view(&updated);
        self.hub.updated(view.clone());
        Ok(view)
    }
}

/// The record a conditional write changed, or the error a caller should see when the
/// instance was deleted (or began to be) in the meantime.
fn changed_record(id: &InstanceId, update: Update) -> Result<InstanceRecord, ServiceError> {
    match update {
        Update::Changed(record) => Ok(record),
        Update::Deleting(_) => Err(being_deleted(id)),
        Update::Missing => Err(ServiceError::not_found(format!("instance {id} not found"))),
    }
}

fn being_deleted(id: &InstanceId) -> ServiceError {
    ServiceError::new(
        clawfleet_kit::error::ErrorCode::FailedPrecondition,
        format!("instance {id} is being deleted"),
    )
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
        // An app user's subscription, once known, decides their plan; a lapsed one
        // creates nothing (docs/product/provider-keys.md#plans-and-subscriptions).
        let plan = if caller.role == Role::App {
            self.lifecycle.app_create_plan(&owner, plan).await?
        } else {
            plan
        };
        let secrets = body.secrets.into_iter().collect();
        validate_secrets(&secrets)?;
        validate_model(&body.model)?;
        let mut secrets = secrets;
        let mut model = body.model;
        let lifecycle = &self.lifecycle;
        // App users without a key of their own get the platform's (one per user).
        let provided =
            if caller.role == Role::App && !crate::provider_keys::brings_own_key(&secrets) {
                lifecycle
                    .provide_key_for_create(&owner, plan, &mut secrets, &mut model)
                    .await?
            } else {
                None
            };
        let now = now_ms();
        let record = InstanceRecord {
            revision: 0,
            id,
            owner: owner.clone(),
            plan,
            desired_state: DesiredState::Running,
            model,
            gateway_token: random_token(32),
            secrets,
            created_at_ms: now,
            updated_at_ms: now,
            deleting: None,
            generation: 0,
        };
        // App users are held to their plan's quota; operators are not.
        let quota = (caller.role == Role::App).then(|| plan.instance_quota());
        let inserted = lifecycle.registry.insert_within_quota(record, quota).await;
        let record = match inserted {
            Ok(record) => record,
            Err(error) => {
                // No orphan: a key made for this create goes with it.
                if let Some(provided) = &provided {
                    lifecycle.release_failed_create_key(&owner, provided).await;
                }
                return Err(store_error(error).into());
            }
        };
        crate::metrics::instance_created(&record.id);
        tracing::info!(instance = %record.id, plan = record.plan.as_str(), "instance created");
        if let Err(error) = lifecycle.apply_if_leading(&record).await {
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
            .visible_record(&caller, &request.get_ref().id)
            .await?;
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
        let deleted = self
            .lifecycle
            .delete(&caller, &body.id, body.preserve_data.unwrap_or(true))
            .await?;
        Ok(Response::new(deleted))
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
        let stream = watch::watch(self.lifecycle.clone(), caller, &request.get_ref().id).await?;
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

    async fn set_owner_plan(
        &self,
        request: Request<SetOwnerPlanRequest>,
    ) -> Result<Response<SetOwnerPlanResponse>, Status> {
        provider_key_access::set_owner_plan(&self.lifecycle, request).await
    }

    async fn rotate_provider_key(
        &self,
        request: Request<RotateProviderKeyRequest>,
    ) -> Result<Response<RotateProviderKeyResponse>, Status> {
        provider_key_access::rotate_provider_key(&self.lifecycle, request).await
    }

    async fn get_instance_usage(
        &self,
        request: Request<GetInstanceUsageRequest>,
    ) -> Result<Response<GetInstanceUsageResponse>, Status> {
        provider_key_access::get_instance_usage(&self.lifecycle, request).await
    }

    async fn create_backup(
        &self,
        request: Request<CreateBackupRequest>,
    ) -> Result<Response<CreateBackupResponse>, Status> {
        let caller = caller_of(&request)?;
        let body = request.into_inner();
        let created = self
            .lifecycle
            .create_backup_now(&caller, &body.instance_id)
            .await?;
        Ok(Response::new(created))
    }

    async fn list_backups(
        &self,
        request: Request<ListBackupsRequest>,
    ) -> Result<Response<ListBackupsResponse>, Status> {
        let caller = caller_of(&request)?;
        let listed = self
            .lifecycle
            .list_backups(&caller, &request.get_ref().instance_id)
            .await?;
        Ok(Response::new(listed))
    }

    async fn restore_backup(
        &self,
        request: Request<RestoreBackupRequest>,
    ) -> Result<Response<RestoreBackupResponse>, Status> {
        let caller = caller_of(&request)?;
        let body = request.into_inner();
        let restored = self
            .lifecycle
            .restore_backup(
                &caller,
                &body.instance_id,
                &body.backup_id,
                &body.target_instance_id,
            )
            .await?;
        Ok(Response::new(restored))
    }

    async fn delete_backup(
        &self,
        request: Request<DeleteBackupRequest>,
    ) -> Result<Response<DeleteBackupResponse>, Status> {
        let caller = caller_of(&request)?;
        let body = request.into_inner();
        let deleted = self
            .lifecycle
            .delete_backup(&caller, &body.instance_id, &body.backup_id)
            .await?;
        Ok(Response::new(deleted))
    }
}
