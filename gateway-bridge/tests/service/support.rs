//! A bridge served on loopback, its lifecycle played by a stand-in that resolves every
//! instance to one scripted gateway, and a gRPC client that calls it as the operator.

use std::{net::SocketAddr, path::PathBuf};

use clawfleet_contracts::lifecycle::v1 as lifecycle_v1;

use clawfleet_contracts::{
    bridge::v1::gateway_bridge_service_client::GatewayBridgeServiceClient,
    lifecycle::v1::{
        CreateInstanceRequest, CreateInstanceResponse, DeleteInstanceRequest,
        DeleteInstanceResponse, ExecInInstanceRequest, ExecInInstanceResponse, GetInstanceRequest,
        GetInstanceResponse, Instance, ListInstancesRequest, ListInstancesResponse,
        ResolveGatewayRequest, ResolveGatewayResponse, RotateGatewayTokenRequest,
        RotateGatewayTokenResponse, SetOwnerPlanRequest, SetOwnerPlanResponse,
        StartInstanceRequest, StartInstanceResponse, StopInstanceRequest, StopInstanceResponse,
        WatchInstancesRequest, WatchInstancesResponse,
        instance_service_server::{InstanceService, InstanceServiceServer},
    },
};
use clawfleet_gateway_bridge::{
    BridgeConfig, BridgeServer, ClientOptions,
    fake_gateway::{FakeGateway, Script},
};
use clawfleet_kit::{
    identity::{Caller, Credentials, ServiceCredentials},
    principal::Principal,
    server::ServerError,
    service_token::ServiceDigests,
    shutdown::ShutdownToken,
};
use tokio::{net::TcpListener, task::JoinHandle};
use tokio_stream::Stream;
use tonic::{
    Request, Response, Status,
    transport::{Channel, Server, server::TcpIncoming},
};

/// The token the bridge presents to the stand-in lifecycle.
const BRIDGE_TOKEN: &str = "bridge-service-token-for-bridge-tests";
const PLATFORM_API_KEY: &str = "operator-key-for-bridge-tests";
/// The edge's token, which the bridge recognises by its digest.
const EDGE_TOKEN: &str = "edge-service-token-for-bridge-tests";
/// The owner of every instance of the stand-in lifecycle.
pub const OWNER: &str = "owner-of-every-instance";

/// A served bridge and what it talks to; the bridge stops when `shutdown` is cancelled.
pub struct Harness {
    pub gateway: FakeGateway,
    pub bridge: GatewayBridgeServiceClient<Channel>,
    pub shutdown: ShutdownToken,
    /// Ends when the bridge's `serve` returns.
    pub served: JoinHandle<Result<(), ServerError>>,
    lifecycle: JoinHandle<()>,
    _state: tempfile::TempDir,
}

impl Harness {
    pub async fn start() -> Harness {
        let gateway = FakeGateway::start(Script::default()).await;
        let (lifecycle_address, lifecycle) = serve_lifecycle(StandInLifecycle {
            gateway_url: gateway.url.clone(),
            gateway_token: Script::default().token,
        })
        .await;
        let state = tempfile::tempdir().unwrap();
        let bridge = BridgeServer::start(BridgeConfig {
            lifecycle_address: lifecycle_address.to_string(),
            service_token: BRIDGE_TOKEN.to_owned(),
            identity_file: PathBuf::from(state.path()).join("device-identity.json"),
            client: ClientOptions::default(),
            service_tls: None,
        })
        .unwrap();
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let bridge_address = listener.local_addr().unwrap();
        let shutdown = ShutdownToken::new();
        let credentials = Credentials {
            platform_api_key: PLATFORM_API_KEY.into(),
            service_digests: ServiceDigests::of_tokens([(Principal::Edge, EDGE_TOKEN)]).unwrap(),
            tls: None,
        };
        let served = tokio::spawn(bridge.serve(listener, credentials, shutdown.clone()));
        let client = GatewayBridgeServiceClient::connect(format!("http://{bridge_address}"))
            .await
            .unwrap();
        Harness {
            gateway,
            bridge: client,
            shutdown,
            served,
            lifecycle,
            _state: state,
        }
    }

    /// `message` as a request of the platform operator (the platform API key).
    pub fn request<T>(&self, message: T) -> Request<T> {
        let mut request = Request::new(message);
        request.metadata_mut().insert(
            "authorization",
            format!("Bearer {PLATFORM_API_KEY}").parse().unwrap(),
        );
        request
    }

    /// `message` as the edge sends it for the app user `user_id`.
    pub fn as_app_user<T>(&self, message: T, user_id: &str) -> Request<T> {
        let mut request = Request::new(message);
        ServiceCredentials::new(EDGE_TOKEN)
            .unwrap()
            .stamp(&mut request, &Caller::app_user(user_id))
            .unwrap();
        request
    }
}

impl Drop for Harness {
    fn drop(&mut self) {
        self.shutdown.cancel();
        self.lifecycle.abort();
    }
}

async fn serve_lifecycle(lifecycle: StandInLifecycle) -> (SocketAddr, JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let task = tokio::spawn(async move {
        let _ = Server::builder()
            .add_service(InstanceServiceServer::new(lifecycle))
            .serve_with_incoming(TcpIncoming::from(listener))
            .await;
    });
    (address, task)
}

/// Every instance runs, on the one scripted gateway; the bridge needs nothing else.
struct StandInLifecycle {
    gateway_url: String,
    gateway_token: String,
}

type WatchStream =
    std::pin::Pin<Box<dyn Stream<Item = Result<WatchInstancesResponse, Status>> + Send>>;

fn not_played(method: &str) -> Status {
    Status::unimplemented(format!("the stand-in lifecycle does not play {method}"))
}

#[tonic::async_trait]
impl InstanceService for StandInLifecycle {
    async fn resolve_gateway(
        &self,
        _: Request<ResolveGatewayRequest>,
    ) -> Result<Response<ResolveGatewayResponse>, Status> {
        Ok(Response::new(ResolveGatewayResponse {
            gateway_url: self.gateway_url.clone(),
            gateway_token: self.gateway_token.clone(),
            vnc_url: String::new(),
            endpoint_revision: "1".to_owned(),
            loopback: true,
        }))
    }

    type WatchInstancesStream = WatchStream;

    async fn watch_instances(
        &self,
        _: Request<WatchInstancesRequest>,
    ) -> Result<Response<WatchStream>, Status> {
        Err(not_played("WatchInstances"))
    }

    async fn create_instance(
        &self,
        _: Request<CreateInstanceRequest>,
    ) -> Result<Response<CreateInstanceResponse>, Status> {
        Err(not_played("CreateInstance"))
    }

    async fn get_instance(
        &self,
        request: Request<GetInstanceRequest>,
    ) -> Result<Response<GetInstanceResponse>, Status> {
        Ok(Response::new(GetInstanceResponse {
            instance: Some(Instance {
                id: request.into_inner().id,
                owner: OWNER.to_owned(),
                ..Instance::default()
            }),
        }))
    }

    async fn list_instances(
        &self,
        _: Request<ListInstancesRequest>,
    ) -> Result<Response<ListInstancesResponse>, Status> {
        Err(not_played("ListInstances"))
    }

    async fn delete_instance(
        &self,
        _: Request<DeleteInstanceRequest>,
    ) -> Result<Response<DeleteInstanceResponse>, Status> {
        Err(not_played("DeleteInstance"))
    }

    async fn stop_instance(
        &self,
        _: Request<StopInstanceRequest>,
    ) -> Result<Response<StopInstanceResponse>, Status> {
        Err(not_played("StopInstance"))
    }

    async fn start_instance(
        &self,
        _: Request<StartInstanceRequest>,
    ) -> Result<Response<StartInstanceResponse>, Status> {
        Err(not_played("StartInstance"))
    }

    async fn rotate_gateway_token(
        &self,
        _: Request<RotateGatewayTokenRequest>,
    ) -> Result<Response<RotateGatewayTokenResponse>, Status> {
        Err(not_played("RotateGatewayToken"))
    }

    async fn exec_in_instance(
        &self,
        _: Request<ExecInInstanceRequest>,
    ) -> Result<Response<ExecInInstanceResponse>, Status> {
        Err(not_played("ExecInInstance"))
    }

    async fn set_owner_plan(
        &self,
        _: Request<SetOwnerPlanRequest>,
    ) -> Result<Response<SetOwnerPlanResponse>, Status> {
        Err(not_played("SetOwnerPlan"))
    }

    async fn rotate_provider_key(
        &self,
        _: Request<clawfleet_contracts::lifecycle::v1::RotateProviderKeyRequest>,
    ) -> Result<Response<clawfleet_contracts::lifecycle::v1::RotateProviderKeyResponse>, Status>
    {
        Err(not_played("RotateProviderKey"))
    }

    async fn get_instance_usage(
        &self,
        _: Request<clawfleet_contracts::lifecycle::v1::GetInstanceUsageRequest>,
    ) -> Result<Response<clawfleet_contracts::lifecycle::v1::GetInstanceUsageResponse>, Status>
    {
        Err(not_played("GetInstanceUsage"))
    }

    async fn create_backup(
        &self,
        _: Request<lifecycle_v1::CreateBackupRequest>,
    ) -> Result<Response<lifecycle_v1::CreateBackupResponse>, Status> {
        Err(not_played("CreateBackup"))
    }

    async fn list_backups(
        &self,
        _: Request<lifecycle_v1::ListBackupsRequest>,
    ) -> Result<Response<lifecycle_v1::ListBackupsResponse>, Status> {
        Err(not_played("ListBackups"))
    }

    async fn restore_backup(
        &self,
        _: Request<lifecycle_v1::RestoreBackupRequest>,
    ) -> Result<Response<lifecycle_v1::RestoreBackupResponse>, Status> {
        Err(not_played("RestoreBackup"))
    }

    async fn delete_backup(
        &self,
        _: Request<lifecycle_v1::DeleteBackupRequest>,
    ) -> Result<Response<lifecycle_v1::DeleteBackupResponse>, Status> {
        Err(not_played("DeleteBackup"))
    }
}
