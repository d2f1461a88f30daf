//! One Xvfb + x11vnc + websockify chain: started in order, each probed until it serves,
//! stopped together.

use std::{
    ffi::OsStr,
    net::{Ipv4Addr, SocketAddr, TcpListener},
    path::{Path, PathBuf},
    process::{Command, Stdio},
    sync::Arc,
    time::Duration,
};

use std::os::unix::fs::OpenOptionsExt;

use nix::sys::signal::Signal;
use tokio::{
    io::AsyncReadExt,
    net::{TcpStream, UnixStream},
    time::Instant,
};
use tokio_util::sync::CancellationToken;

use super::{number::DisplayNumber, tools::VncTools};
use crate::children::{ChildProcess, Children, describe_exit};

const SCREEN_GEOMETRY: &str = "1280x800x24";
const START_TIMEOUT: Duration = Duration::from_secs(10);
const PROBE_TIMEOUT: Duration = Duration::from_secs(1);
const POLL_INTERVAL: Duration = Duration::from_millis(50);
const STOP_GRACE: Duration = Duration::from_secs(3);

/// Where a display serves, and where its processes write.
#[derive(Debug, Clone)]
pub struct DisplaySettings {
    pub tools: VncTools,
    /// websockify's listen address: `0.0.0.0:6080` in a pod, a loopback port locally.
    pub websocket: SocketAddr,
    /// x11vnc's RFB socket, in a folder only this user can enter.
    pub vnc_socket: PathBuf,
    /// The X server's authority file (a new cookie each start, mode 0600); clients need
    /// it (`XAUTHORITY`) to be let in.
    pub xauthority: PathBuf,
    /// The parts' stdout and stderr; `None` shares the runner's.
    pub log_file: Option<PathBuf>,
}

/// Why a display could not be started.
#[derive(Debug, thiserror::Error)]
pub enum DisplayError {
    #[error("{0} is already in use")]
    AddressBusy(SocketAddr),
    #[error("could not start {program}: {source}")]
    Spawn {
        program: &'static str,
        source: std::io::Error,
    },
    #[error("{program} {description} while starting")]
    Exited {
        program: &'static str,
        description: String,
    },
    #[error("{program} was not ready within {}s", START_TIMEOUT.as_secs())]
    NotReady { program: &'static str },
    #[error("display i/o failed: {0}")]
    Io(#[from] std::io::Error),
    #[error("display start was cancelled")]
    Cancelled,
}

/// What shows that a part is ready.
enum Probe {
    /// The X server accepts connections on its unix socket.
    XSocket(PathBuf),
    /// x11vnc sends the RFB protocol banner on its unix socket.
    RfbBanner(PathBuf),
    /// websockify accepts TCP connections.
    Accepts(SocketAddr),
}

struct Part {
    program: &'static str,
    child: ChildProcess,
}

/// A running chain. Stop it with [`VirtualDisplay::stop`]; dropping it kills the parts.
pub struct VirtualDisplay {
    number: Arc<DisplayNumber>,
    parts: Vec<Part>,
}

impl VirtualDisplay {
    /// Starts the chain and returns once x11vnc sends its RFB banner and websockify accepts
    /// connections; on failure or `cancel`, everything started is stopped again.
    pub async fn start(
        children: &Children,
        settings: &DisplaySettings,
        number: Arc<DisplayNumber>,
        cancel: &CancellationToken,
    ) -> Result<Self, DisplayError> {
        let mut display = Self {
            number,
            parts: Vec::new(),
        };
        let outcome = tokio::select! {
            outcome = display.bring_up(children, settings) => outcome,
            _ = cancel.cancelled() => Err(DisplayError::Cancelled),
        };
        match outcome {
            Ok(()) => Ok(display),
            Err(error) => {
                display.stop().await;
                Err(error)
            }
        }
    }

    async fn bring_up(
        &mut self,
        children: &Children,
        settings: &DisplaySettings,
    ) -> Result<(), DisplayError> {
        if TcpListener::bind(settings.websocket).is_err() {
            return Err(DisplayError::AddressBusy(settings.websocket));
        }
        let deadline = Instant::now() + START_TIMEOUT;
        self.number.clear_stale_lock();
        let name = self.number.name();
        let tools = &settings.tools;

        // No TCP listener; the unix socket is for x11vnc and the gateway's browsers,
        // which must hold the cookie.
        super::xauth::write_new_cookie(&settings.xauthority, self.number.get())?;
        // No abstract socket either (`local`): a confined gateway may not connect to
        // one created outside its Landlock domain, and X clients fall back to the
        // socket file only when the abstract one is refused, not forbidden.
        let xvfb_args: [&OsStr; 11] = [
            name.as_ref(),
            "-auth".as_ref(),
            settings.xauthority.as_os_str(),
            "-screen".as_ref(),
            "0".as_ref(),
            SCREEN_GEOMETRY.as_ref(),
            "-nolisten".as_ref(),
            "tcp".as_ref(),
            "-nolisten".as_ref(),
            "local".as_ref(),
            "-noreset".as_ref(),
        ];
        self.spawn_part(children, "Xvfb", &tools.xvfb, &xvfb_args, settings)?;
        self.wait_until_ready(0, &Probe::XSocket(self.number.socket_file()), deadline)
            .await?;

        // A socket left by an x11vnc that was killed would make the next one fail.
        let _ = std::fs::remove_file(&settings.vnc_socket);
        let x11vnc_args: [&OsStr; 16] = [
            "-display".as_ref(),
            name.as_ref(),
            "-auth".as_ref(),
            settings.xauthority.as_os_str(),
            // No remote control through X properties from the display's other clients.
            "-noremote".as_ref(),
            // No TCP port: RFB only on the unix socket.
            "-rfbport".as_ref(),
            "0".as_ref(),
            "-unixsock".as_ref(),
            settings.vnc_socket.as_os_str(),
            "-nopw".as_ref(),
            "-forever".as_ref(),
            "-shared".as_ref(),
            "-quiet".as_ref(),
            "-norc".as_ref(),
            "-noipv6".as_ref(),
            "-nossl".as_ref(),
        ];
        self.spawn_part(children, "x11vnc", &tools.x11vnc, &x11vnc_args, settings)?;
        self.wait_until_ready(1, &Probe::RfbBanner(settings.vnc_socket.clone()), deadline)
            .await?;

        let mut unix_target = std::ffi::OsString::from("--unix-target=");
        unix_target.push(&settings.vnc_socket);
        let listen = settings.websocket.to_string();
        let mut websockify_args: Vec<&OsStr> = Vec::new();
        if let Some(web) = &tools.novnc_web {
            websockify_args.extend([OsStr::new("--web"), web.as_os_str()]);
        }
        websockify_args.extend([unix_target.as_os_str(), OsStr::new(&listen)]);
        self.spawn_part(
            children,
            "websockify",
            &tools.websockify,
            &websockify_args,
            settings,
        )?;
        self.wait_until_ready(2, &Probe::Accepts(settings.websocket), deadline)
            .await
    }

    fn spawn_part(
        &mut self,
        children: &Children,
        program: &'static str,
        executable: &Path,
        args: &[impl AsRef<OsStr>],
        settings: &DisplaySettings,
    ) -> Result<(), DisplayError> {
        let (stdout, stderr) = match &settings.log_file {
            Some(path) => {
                let log = std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .mode(0o600)
                    .open(path)?;
                (Stdio::from(log.try_clone()?), Stdio::from(log))
            }
            None => (Stdio::inherit(), Stdio::inherit()),
        };
        let mut command = Command::new(executable);
        command
            .args(args)
            // Nothing of the runner's environment (the gateway token) reaches them.
            .env_clear()
            .env("PATH", system_path())
            .stdin(Stdio::null())
            .stdout(stdout)
            .stderr(stderr);
        let child = children
            .spawn(program, &mut command)
            .map_err(|source| DisplayError::Spawn { program, source })?;
        self.parts.push(Part { program, child });
        Ok(())
    }

    async fn wait_until_ready(
        &mut self,
        index: usize,
        probe: &Probe,
        deadline: Instant,
    ) -> Result<(), DisplayError> {
        let part = &mut self.parts[index];
        loop {
            if let Some(status) = part.child.status() {
                return Err(DisplayError::Exited {
                    program: part.program,
                    description: describe_exit(status),
                });
            }
            if probe_once(probe).await {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(DisplayError::NotReady {
                    program: part.program,
                });
            }
            tokio::time::sleep(POLL_INTERVAL).await;
        }
    }

    pub fn number(&self) -> u32 {
        self.number.get()
    }

    /// Pids of Xvfb, x11vnc and websockify, in that order.
    pub fn pids(&self) -> Vec<u32> {
        self.parts.iter().map(|part| part.child.pid()).collect()
    }

    /// Resolves when one of the parts exits, describing which and how.
    pub async fn exited(&mut self) -> String {
        if self.parts.is_empty() {
            return std::future::pending().await;
        }
        let waits = self
            .parts
            .iter_mut()
            .map(|part| Box::pin(async move { (part.program, part.child.wait().await) }));
        let ((program, status), _, _) = futures_util::future::select_all(waits).await;
        format!("{program} {}", describe_exit(status))
    }

    /// Stops every part (SIGTERM, SIGKILL after a grace period) and returns once they
    /// have exited.
    pub async fn stop(mut self) {
        let parts = std::mem::take(&mut self.parts);
        futures_util::future::join_all(parts.into_iter().map(|part| async move {
            part.child.signal(Signal::SIGTERM);
            if tokio::time::timeout(STOP_GRACE, part.child.wait())
                .await
                .is_err()
            {
                tracing::warn!(
                    program = part.program,
                    "display part did not stop in time; killing it"
                );
                part.child.signal(Signal::SIGKILL);
                part.child.wait().await;
            }
        }))
        .await;
    }
}

fn system_path() -> std::ffi::OsString {
    std::env::var_os("PATH").unwrap_or_else(|| "/usr/local/bin:/usr/bin:/bin".into())
}

async fn probe_once(probe: &Probe) -> bool {
    let attempt = async {
        match probe {
            Probe::XSocket(path) => UnixStream::connect(path).await.is_ok(),
            Probe::Accepts(address) => TcpStream::connect(reachable(*address)).await.is_ok(),
            Probe::RfbBanner(path) => {
                let Ok(mut stream) = UnixStream::connect(path).await else {
                    return false;
                };
                let mut banner = [0u8; 12];
                stream.read_exact(&mut banner).await.is_ok() && is_rfb_banner(&banner)
            }
        }
    };
    tokio::time::timeout(PROBE_TIMEOUT, attempt)
        .await
        .unwrap_or(false)
}

/// The address to connect to for a listen address: loopback for "every interface".
pub(crate) fn reachable(listen: SocketAddr) -> SocketAddr {
    if listen.ip().is_unspecified() {
        SocketAddr::new(Ipv4Addr::LOCALHOST.into(), listen.port())
    } else {
        listen
    }
}

/// `RFB 003.008\n` and its older versions.
pub(crate) fn is_rfb_banner(banner: &[u8]) -> bool {
    banner.len() == 12 && banner.starts_with(b"RFB ") && banner[11] == b'\n'
}
