//! `clawfleet up`: the whole platform in one process ([`clawfleet::mesh`]), stopped by
//! SIGTERM or Ctrl-C.

use clawfleet::mesh::Mesh;
use clawfleet_kit::{config::EnvSource, shutdown::token_cancelled_on_signal, telemetry};

pub async fn run(process_env: &dyn EnvSource) -> anyhow::Result<()> {
    let _telemetry = telemetry::init("clawfleet", process_env);
    let mesh = Mesh::start(process_env, token_cancelled_on_signal()).await?;
    let addresses = &mesh.addresses;
    println!(
        "clawfleet is up: edge http://{}  lifecycle grpc {}  bridge grpc {}  channels grpc {}  auth grpc {}  data {}",
        addresses.edge,
        addresses.lifecycle,
        addresses.bridge,
        addresses.channels,
        addresses.auth,
        addresses.data_dir.display()
    );
    tracing::info!(
        edge_address = %addresses.edge,
        lifecycle_address = %addresses.lifecycle,
        bridge_address = %addresses.bridge,
        channels_address = %addresses.channels,
        auth_address = %addresses.auth,
        data_dir = %addresses.data_dir.display(),
        "clawfleet up"
    );
    mesh.wait().await
}
