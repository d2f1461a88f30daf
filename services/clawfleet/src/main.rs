//! `clawfleet up` runs the whole platform on one machine (edge + lifecycle, each on its
//! own loopback port, speaking real gRPC to each other); `clawfleet <service>` runs one.

#![forbid(unsafe_code)]

mod up;

use clap::{Parser, Subcommand};
use clawfleet::{
    confine,
    instance::{self, InstanceCommand},
    service_credentials, settings, toolchain,
};
use clawfleet_kit::{
    config::{EnvSource, ProcessEnv},
    principal::Principal,
    server,
    shutdown::token_cancelled_on_signal,
    telemetry,
};
use clawfleet_kit::{metrics::exposition, service_keys::Service, shutdown::ShutdownToken};
use clawfleet_lifecycle::LifecycleServer;

#[derive(Parser)]
#[command(
    name = "clawfleet",
    version,
    about = "Hosts one isolated OpenClaw gateway per user"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the whole platform on this machine: SQLite and local gateway processes.
    Up,
    /// Run only the lifecycle service (InstanceService over gRPC).
    Lifecycle,
    /// Run only the gateway bridge (GatewayBridgeService over gRPC).
    Bridge,
    /// Run only the channels service (ChannelService over gRPC).
    Channels,
    /// Run only the auth service (AuthService over gRPC: accounts and tokens).
    Auth,
    /// Run only the edge (REST APIs), talking to the lifecycle service over gRPC.
    Edge,
    /// Instance side: run one gateway (the gateway container's entrypoint, and how the
    /// local runtime starts every instance).
    Instance {
        #[command(subcommand)]
        command: InstanceCommand,
    },
    /// Install (if needed) and print the openclaw CLI the local runtime uses.
    Toolchain,
    /// Read a root secret on stdin and print each calling service's token
    /// (`<service>=<token>`) and the `CLAWFLEET_SERVICE_TOKEN_DIGESTS` line every gRPC
    /// service is given (see deploy/README.md).
    ServiceCredentials {
        /// Print only this service's token (edge, bridge or channels).
        #[arg(long, value_parser = parse_calling_service, conflicts_with = "digests")]
        token: Option<Principal>,
        /// Print only the digests line's value.
        #[arg(long)]
        digests: bool,
    },
}

fn parse_calling_service(name: &str) -> Result<Principal, String> {
    Principal::service_named(name)
        .ok_or_else(|| format!("{name:?} is not a calling service (edge, bridge, channels)"))
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    // Both confine the process, which works only while it has one thread.
    let command = match cli.command {
        Command::Instance {
            command: InstanceCommand::Confine(args),
        } => return std::process::ExitCode::from(confine::confine_and_exec(args)),
        command => command,
    };
    if matches!(
        command,
        Command::Instance {
            command: InstanceCommand::Run(_)
        }
    ) && let Err(message) = confine::become_tenant_if_asked()
    {
        eprintln!("clawfleet instance run: {message}");
        return std::process::ExitCode::from(confine::EXIT_NOT_CONFINED);
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("clawfleet: cannot start the async runtime: {error}");
            return std::process::ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(command)) {
        // `instance run` exits with its gateway's status, so its supervisor counts the restart.
        Ok(code) => std::process::ExitCode::from(code),
        Err(error) => {
            eprintln!("clawfleet: {error:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run(command: Command) -> anyhow::Result<u8> {
    let env = ProcessEnv;
    match command {
        Command::Instance { command } => return instance::run(command, &env).await,
        Command::Up => up::run(&env).await?,
        Command::Lifecycle => run_lifecycle(&env).await?,
        Command::Edge => run_edge(&env).await?,
        Command::Bridge => run_bridge(&env).await?,
        Command::Channels => run_channels(&env).await?,
        Command::Auth => run_auth(&env).await?,
        Command::ServiceCredentials { token, digests } => {
            let output = match (token, digests) {
                (Some(service), _) => service_credentials::Output::Token(service),
                (None, true) => service_credentials::Output::Digests,
                (None, false) => service_credentials::Output::All,
            };
            print!(
                "{}",
                service_credentials::render(&mut std::io::stdin().lock(), output)?
            );
        }
        Command::Toolchain => {
            let openclaw = toolchain::resolve_openclaw(&env)?;
            println!("{}", openclaw.program.display());
        }
    }
    Ok(0)
}

async fn run_lifecycle(env: &dyn EnvSource) -> anyhow::Result<()> {
    let credentials = settings::credentials(env)?;
    let address = settings::lifecycle_address(env)?;
    let config = settings::lifecycle_config(env, || toolchain::resolve_openclaw(env))?;
    let metrics_address = settings::metrics_address(env, Service::Lifecycle)?;
    let _telemetry = telemetry::init("clawfleet-lifecycle", env);
    let shutdown = token_cancelled_on_signal();
    let listener = server::bind(address).await?;
    serve_metrics(metrics_address, &shutdown).await?;
    let lifecycle = LifecycleServer::start(config).await?;
    lifecycle.serve(listener, credentials, shutdown).await?;
    Ok(())
}

async fn run_bridge(env: &dyn EnvSource) -> anyhow::Result<()> {
    let credentials = settings::credentials(env)?;
    let config = clawfleet_gateway_bridge::BridgeConfig::from_env(env)?;
    let address = settings::bridge_address(env)?;
    let metrics_address = settings::metrics_address(env, Service::Bridge)?;
    let _telemetry = telemetry::init("clawfleet-bridge", env);
    let shutdown = token_cancelled_on_signal();
    let listener = server::bind(address).await?;
    serve_metrics(metrics_address, &shutdown).await?;
    let bridge = clawfleet_gateway_bridge::BridgeServer::start(config)?;
    bridge.serve(listener, credentials, shutdown).await?;
    Ok(())
}

async fn run_channels(env: &dyn EnvSource) -> anyhow::Result<()> {
    let credentials = settings::credentials(env)?;
    let config = clawfleet_channels::ChannelsConfig::from_env(env)?;
    let address = settings::channels_address(env)?;
    let metrics_address = settings::metrics_address(env, Service::Channels)?;
    let _telemetry = telemetry::init("clawfleet-channels", env);
    let shutdown = token_cancelled_on_signal();
    let listener = server::bind(address).await?;
    serve_metrics(metrics_address, &shutdown).await?;
    let channels = clawfleet_channels::ChannelsServer::start(config)?;
    channels.serve(listener, credentials, shutdown).await?;
    Ok(())
}

async fn run_auth(env: &dyn EnvSource) -> anyhow::Result<()> {
    let credentials = settings::credentials(env)?;
    let config = clawfleet_auth::server::AuthConfig::from_env(env)?;
    let address = settings::auth_address(env)?;
    let metrics_address = settings::metrics_address(env, Service::Auth)?;
    let _telemetry = telemetry::init("clawfleet-auth", env);
    let shutdown = token_cancelled_on_signal();
    let listener = server::bind(address).await?;
    serve_metrics(metrics_address, &shutdown).await?;
    let auth = clawfleet_auth::server::AuthServer::start(config).await?;
    auth.serve(listener, credentials, shutdown).await?;
    Ok(())
}

async fn run_edge(env: &dyn EnvSource) -> anyhow::Result<()> {
    let config = clawfleet_edge::EdgeConfig::from_env(env)?;
    let address = settings::edge_address(env)?;
    let _telemetry = telemetry::init("clawfleet-edge", env);
    let shutdown = token_cancelled_on_signal();
    let listener = server::bind(address).await?;
    tracing::info!(%address, "edge listening");
    clawfleet_edge::serve(listener, config, shutdown).await?;
    Ok(())
}

/// Binds the service's `/metrics` port (failing the start when it is taken) and serves
/// it in the background until `shutdown`.
async fn serve_metrics(
    address: Option<std::net::SocketAddr>,
    shutdown: &ShutdownToken,
) -> anyhow::Result<()> {
    if let Some(address) = address {
        let listener = server::bind(address).await?;
        let stop = shutdown.clone();
        tokio::spawn(async move {
            if let Err(error) = exposition::serve(listener, stop).await {
                tracing::warn!(%error, "metrics server stopped");
            }
        });
    }
    Ok(())
}
