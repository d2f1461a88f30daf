//! Virtual displays for local instances: an `Xvfb` X server, `x11vnc` serving it over RFB
//! on loopback, and `websockify` turning that into the WebSocket (and NoVNC page) that the
//! bridge tunnels to users — the local counterpart of a pod's NoVNC port.
//!
//! The three run in their own process groups with a cleared environment, like a gateway.
//! A [`DisplayKeeper`] owns one display for one gateway run: the display number stays the
//! same (the gateway's `DISPLAY` points at it) while the chain restarts when a part dies,
//! and the gateway keeps running whatever happens to its display.

use std::{
    collections::BTreeSet,
    ffi::OsStr,
    net::{Ipv4Addr, SocketAddrV4, TcpListener},
    os::unix::{ffi::OsStrExt, fs::PermissionsExt},
    path::{Path, PathBuf},
    process::{ExitStatus, Stdio},
    sync::{Arc, Mutex},
    time::Duration,
};

use nix::{
    sys::signal::{Signal, killpg},
    unistd::Pid,
};
use tokio::{
    io::AsyncReadExt,
    net::{TcpStream, UnixStream},
    process::{Child, Command},
    task::JoinHandle,
    time::Instant,
};
use tokio_util::sync::CancellationToken;

use super::{layout::InstanceLayout, ports, process};
use crate::instance_id::InstanceId;

/// x11vnc's RFB port sits this far above the gateway's port, inside its port slot.
pub const VNC_PORT_OFFSET: u16 = 5;
/// websockify's port sits this far above the gateway's port, inside its port slot.
pub const WEBSOCKET_PORT_OFFSET: u16 = 6;
const _: () = assert!(VNC_PORT_OFFSET < ports::RELAY_OFFSET);
const _: () = assert!(WEBSOCKET_PORT_OFFSET < ports::RELAY_OFFSET);
const _: () = assert!(VNC_PORT_OFFSET != WEBSOCKET_PORT_OFFSET && VNC_PORT_OFFSET > 0);

/// Display numbers are searched from here, clear of the low numbers desktops use.
const FIRST_DISPLAY: u32 = 100;
const DISPLAY_COUNT: u32 = 1000;
const SCREEN_GEOMETRY: &str = "1280x800x24";
const X11_SOCKET_DIR: &str = "/tmp/.X11-unix";
const NOVNC_WEB_DIR: &str = "/usr/share/novnc";
/// Set in every display process's environment, so leftovers of a crashed platform are
/// recognised (websockify changes its working directory, so that cannot tell).
const OWNER_VARIABLE: &str = "CLAWFLEET_DISPLAY_OWNER";

const START_TIMEOUT: Duration = Duration::from_secs(10);
const PROBE_TIMEOUT: Duration = Duration::from_secs(1);
const POLL_INTERVAL: Duration = Duration::from_millis(50);
const STOP_GRACE: Duration = Duration::from_secs(3);
const RESTART_DELAY_INITIAL: Duration = Duration::from_millis(500);
const RESTART_DELAY_MAXIMUM: Duration = Duration::from_secs(30);
/// A display that stayed up this long has recovered: the next failure restarts at once.
const HEALTHY_RUN_RESETS_DELAY: Duration = Duration::from_secs(60);

/// The NoVNC URL of a running instance's display, readable by the runtime.
pub type LiveVncUrl = Arc<Mutex<Option<String>>>;

/// The programs a virtual display needs, found on `PATH`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VncTools {
    pub xvfb: PathBuf,
    pub x11vnc: PathBuf,
    pub websockify: PathBuf,
    /// The NoVNC web client, served by websockify when installed.
    pub novnc_web: Option<PathBuf>,
}

impl VncTools {
    /// Looks the tools up on the platform's `PATH`; `None` when one is missing.
    pub fn detect() -> Option<Self> {
        Self::detect_in(&std::env::var_os("PATH")?)
    }

    fn detect_in(search_path: &OsStr) -> Option<Self> {
        Some(Self {
            xvfb: find_program(search_path, "Xvfb")?,
            x11vnc: find_program(search_path, "x11vnc")?,
            websockify: find_program(search_path, "websockify")?,
            novnc_web: Some(PathBuf::from(NOVNC_WEB_DIR)).filter(|dir| dir.is_dir()),
        })
    }
}

fn find_program(search_path: &OsStr, name: &str) -> Option<PathBuf> {
    std::env::split_paths(search_path)
        .map(|dir| dir.join(name))
        .find(|candidate| {
            std::fs::metadata(candidate).is_ok_and(|metadata| {
                metadata.is_file() && metadata.permissions().mode() & 0o111 != 0
            })
        })
}

/// Display numbers handed out by this process (several runtimes may share it).
static RESERVED_DISPLAYS: Mutex<BTreeSet<u32>> = Mutex::new(BTreeSet::new());

/// An X display number that no other display of this process uses and that had no X
/// server (lock file or socket) when reserved; released on drop.
#[derive(Debug)]
pub struct DisplayNumber(u32);

impl DisplayNumber {
    /// The lowest free display number from 100 up.
    pub fn reserve() -> Option<Self> {
        let mut reserved = RESERVED_DISPLAYS
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let number = (FIRST_DISPLAY..FIRST_DISPLAY + DISPLAY_COUNT)
            .find(|number| !reserved.contains(number) && display_is_free(*number))?;
        reserved.insert(number);
        Some(Self(number))
    }

    pub fn get(&self) -> u32 {
        self.0
    }

    /// The `DISPLAY` value, `:<n>`.
    pub fn name(&self) -> String {
        format!(":{}", self.0)
    }
}

impl Drop for DisplayNumber {
    fn drop(&mut self) {
        RESERVED_DISPLAYS
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .remove(&self.0);
    }
}

fn lock_file(number: u32) -> PathBuf {
    PathBuf::from(format!("/tmp/.X{number}-lock"))
}

fn socket_file(number: u32) -> PathBuf {
    Path::new(X11_SOCKET_DIR).join(format!("X{number}"))
}

fn display_is_free(number: u32) -> bool {
    std::fs::symlink_metadata(lock_file(number)).is_err()
        && std::fs::symlink_metadata(socket_file(number)).is_err()
}

/// The loopback ports of a display: RFB (x11vnc) and WebSocket (websockify).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DisplayPorts {
    pub vnc: u16,
    pub websocket: u16,
}

impl DisplayPorts {
    /// The ports inside a gateway's port slot, unused by the gateway itself.
    pub fn beside_gateway(gateway_port: u16) -> Option<Self> {
        Some(Self {
            vnc: gateway_port.checked_add(VNC_PORT_OFFSET)?,
            websocket: gateway_port.checked_add(WEBSOCKET_PORT_OFFSET)?,
        })
    }

    /// The NoVNC WebSocket URL.
    pub fn url(&self) -> String {
        format!("ws://127.0.0.1:{}", self.websocket)
    }
}

/// Where a display's processes run and write.
#[derive(Debug, Clone)]
pub struct DisplayFiles {
    /// Working directory; also the owner mark in the processes' environment.
    pub work_dir: PathBuf,
    pub log_file: PathBuf,
    pub pid_file: PathBuf,
}

impl DisplayFiles {
    pub fn for_instance(layout: &InstanceLayout) -> Self {
        Self {
            work_dir: layout.root.clone(),
            log_file: layout.display_log_file(),
            pid_file: layout.display_pid_file(),
        }
    }

    fn owner_mark(&self) -> Vec<u8> {
        let mut mark = format!("{OWNER_VARIABLE}=").into_bytes();
        mark.extend_from_slice(self.work_dir.as_os_str().as_bytes());
        mark
    }
}

/// Why a display could not be started.
#[derive(Debug, thiserror::Error)]
pub enum DisplayError {
    #[error("port {0} is already in use")]
    PortBusy(u16),
    #[error("could not start {program}: {source}")]
    Spawn {
        program: &'static str,
        source: std::io::Error,
    },
    #[error("{program} {description} while starting (see display.log)")]
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

struct Part {
    program: &'static str,
    pid: u32,
    child: Child,
}

/// What shows that a part is ready.
enum Probe {
    /// The X server accepts connections on its unix socket.
    XSocket(PathBuf),
    /// x11vnc sends the RFB protocol banner.
    RfbBanner(u16),
    /// websockify accepts TCP connections.
    Accepts(u16),
}

/// A running Xvfb + x11vnc + websockify chain. Stop it with [`VirtualDisplay::stop`];
/// dropping it only signals the processes.
pub struct VirtualDisplay {
    number: Arc<DisplayNumber>,
    ports: DisplayPorts,
    pid_file: PathBuf,
    parts: Vec<Part>,
}

impl VirtualDisplay {
    /// Starts the chain and returns once x11vnc sends its RFB banner and websockify accepts
    /// connections; on failure everything started is stopped again.
    pub async fn start(
        tools: &VncTools,
        number: Arc<DisplayNumber>,
        ports: DisplayPorts,
        files: &DisplayFiles,
    ) -> Result<Self, DisplayError> {
        Self::start_unless_cancelled(tools, number, ports, files, &CancellationToken::new()).await
    }

    async fn start_unless_cancelled(
        tools: &VncTools,
        number: Arc<DisplayNumber>,
        ports: DisplayPorts,
        files: &DisplayFiles,
        cancel: &CancellationToken,
    ) -> Result<Self, DisplayError> {
        let mut display = Self {
            number,
            ports,
            pid_file: files.pid_file.clone(),
            parts: Vec::new(),
        };
        let outcome = tokio::select! {
            outcome = display.bring_up(tools, files) => outcome,
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
        tools: &VncTools,
        files: &DisplayFiles,
    ) -> Result<(), DisplayError> {
        for port in [self.ports.vnc, self.ports.websocket] {
            if !port_is_free(port) {
                return Err(DisplayError::PortBusy(port));
            }
        }
        let deadline = Instant::now() + START_TIMEOUT;
        let number = self.number.get();
        let name = self.number.name();
        clear_stale_lock(number);
        let vnc_port = self.ports.vnc.to_string();
        let vnc_target = format!("127.0.0.1:{}", self.ports.vnc);
        let websocket_source = format!("127.0.0.1:{}", self.ports.websocket);

        // No TCP listener; the unix socket stays, for x11vnc and the gateway's browsers.
        let xvfb_args = [
            &name,
            "-screen",
            "0",
            SCREEN_GEOMETRY,
            "-nolisten",
            "tcp",
            "-noreset",
        ];
        self.spawn_part("Xvfb", &tools.xvfb, &xvfb_args, files)?;
        self.wait_until_ready(0, &Probe::XSocket(socket_file(number)), deadline)
            .await?;

        let x11vnc_args = [
            "-display",
            &name,
            "-rfbport",
            &vnc_port,
            "-localhost",
            "-nopw",
            "-forever",
            "-shared",
            "-quiet",
            "-norc",
        ];
        self.spawn_part("x11vnc", &tools.x11vnc, &x11vnc_args, files)?;
        let mut websockify_args: Vec<&OsStr> = Vec::new();
        if let Some(web) = &tools.novnc_web {
            websockify_args.extend([OsStr::new("--web"), web.as_os_str()]);
        }
        websockify_args.extend([OsStr::new(&websocket_source), OsStr::new(&vnc_target)]);
        self.spawn_part("websockify", &tools.websockify, &websockify_args, files)?;

        self.wait_until_ready(1, &Probe::RfbBanner(self.ports.vnc), deadline)
            .await?;
        self.wait_until_ready(2, &Probe::Accepts(self.ports.websocket), deadline)
            .await
    }

    fn spawn_part(
        &mut self,
        program: &'static str,
        executable: &Path,
        args: &[impl AsRef<OsStr>],
        files: &DisplayFiles,
    ) -> Result<(), DisplayError> {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&files.log_file)?;
        let mut command = Command::new(executable);
        command
            .args(args)
            .env_clear()
            .env("PATH", system_path())
            .env(OWNER_VARIABLE, &files.work_dir)
            .current_dir(&files.work_dir)
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .process_group(0)
            .kill_on_drop(true);
        let child = command
            .spawn()
            .map_err(|source| DisplayError::Spawn { program, source })?;
        let pid = child.id().ok_or_else(|| DisplayError::Exited {
            program,
            description: "exited at once".into(),
        })?;
        self.parts.push(Part {
            program,
            pid,
            child,
        });
        std::fs::write(&self.pid_file, self.pid_lines())?;
        Ok(())
    }

    fn pid_lines(&self) -> String {
        self.parts
            .iter()
            .map(|part| format!("{}\n", part.pid))
            .collect()
    }

    async fn wait_until_ready(
        &mut self,
        index: usize,
        probe: &Probe,
        deadline: Instant,
    ) -> Result<(), DisplayError> {
        let part = &mut self.parts[index];
        loop {
            if let Some(status) = part.child.try_wait()? {
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

    pub fn ports(&self) -> DisplayPorts {
        self.ports
    }

    /// The NoVNC WebSocket URL.
    pub fn url(&self) -> String {
        self.ports.url()
    }

    /// Pids of Xvfb, x11vnc and websockify, in that order (each leads its process group).
    pub fn pids(&self) -> Vec<u32> {
        self.parts.iter().map(|part| part.pid).collect()
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
        match status {
            Ok(status) => format!("{program} {}", describe_exit(status)),
            Err(error) => format!("{program} could not be waited for ({error})"),
        }
    }

    /// Stops every part (process-group SIGTERM, SIGKILL after a grace period) and
    /// returns once they have exited.
    pub async fn stop(mut self) {
        let parts = std::mem::take(&mut self.parts);
        futures_util::future::join_all(parts.into_iter().map(|mut part| async move {
            process::terminate(&mut part.child, STOP_GRACE).await;
            process::kill_group(part.pid);
        }))
        .await;
        let _ = tokio::fs::remove_file(&self.pid_file).await;
    }
}

impl Drop for VirtualDisplay {
    /// Only when a display was not stopped (a panic, an aborted task): signals the groups
    /// and reaps them in the background; `kill_on_drop` covers a runtime going away.
    fn drop(&mut self) {
        if self.parts.is_empty() {
            return;
        }
        let parts = std::mem::take(&mut self.parts);
        for part in &parts {
            let _ = killpg(Pid::from_raw(part.pid as i32), Signal::SIGTERM);
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            for part in &parts {
                process::kill_group(part.pid);
            }
            return;
        };
        runtime.spawn(async move {
            for mut part in parts {
                let _ = tokio::time::timeout(STOP_GRACE, part.child.wait()).await;
                process::kill_group(part.pid);
                let _ = part.child.wait().await;
            }
        });
    }
}

fn system_path() -> std::ffi::OsString {
    std::env::var_os("PATH").unwrap_or_else(|| "/usr/local/bin:/usr/bin:/bin".into())
}

fn port_is_free(port: u16) -> bool {
    TcpListener::bind(SocketAddrV4::new(Ipv4Addr::LOCALHOST, port)).is_ok()
}

/// Removes the lock and socket of an X server of ours that died without cleaning up
/// (SIGKILL); Xvfb refuses to start over them. Only called for a reserved number, so
/// a lock naming a live process is left alone.
fn clear_stale_lock(number: u32) {
    let Ok(text) = std::fs::read_to_string(lock_file(number)) else {
        return;
    };
    let owner_alive = text
        .trim()
        .parse::<u32>()
        .is_ok_and(|pid| Path::new(&format!("/proc/{pid}")).exists());
    if !owner_alive {
        let _ = std::fs::remove_file(lock_file(number));
        let _ = std::fs::remove_file(socket_file(number));
    }
}

async fn probe_once(probe: &Probe) -> bool {
    let attempt = async {
        match probe {
            Probe::XSocket(path) => UnixStream::connect(path).await.is_ok(),
            Probe::Accepts(port) => TcpStream::connect((Ipv4Addr::LOCALHOST, *port))
                .await
                .is_ok(),
            Probe::RfbBanner(port) => {
                let Ok(mut stream) = TcpStream::connect((Ipv4Addr::LOCALHOST, *port)).await else {
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

/// `RFB 003.008\n` and its older versions.
fn is_rfb_banner(banner: &[u8]) -> bool {
    banner.len() == 12 && banner.starts_with(b"RFB ") && banner[11] == b'\n'
}

fn describe_exit(status: ExitStatus) -> String {
    use std::os::unix::process::ExitStatusExt;
    match (status.code(), status.signal()) {
        (Some(code), _) => format!("exited with status {code}"),
        (None, Some(signal)) => format!("was killed by signal {signal}"),
        (None, None) => "exited".to_owned(),
    }
}

/// Stops display processes left running by an earlier platform process that died
/// without stopping them, so their ports are free again. Only processes carrying this
/// instance's owner mark are touched.
pub async fn stop_orphaned_display(files: &DisplayFiles) {
    let Ok(text) = tokio::fs::read_to_string(&files.pid_file).await else {
        return;
    };
    let _ = tokio::fs::remove_file(&files.pid_file).await;
    let mark = files.owner_mark();
    let owned = |pid: &i32| is_owned_by(*pid, &mark);
    let pids: Vec<i32> = text
        .lines()
        .filter_map(|line| line.trim().parse().ok())
        .filter(owned)
        .collect();
    if pids.is_empty() {
        return;
    }
    tracing::info!(?pids, work_dir = %files.work_dir.display(), "stopping virtual display processes left by an earlier run");
    for pid in &pids {
        let _ = killpg(Pid::from_raw(*pid), Signal::SIGTERM);
    }
    let deadline = Instant::now() + STOP_GRACE;
    while Instant::now() < deadline && pids.iter().any(owned) {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    for pid in &pids {
        let _ = killpg(Pid::from_raw(*pid), Signal::SIGKILL);
    }
}

fn is_owned_by(pid: i32, mark: &[u8]) -> bool {
    std::fs::read(format!("/proc/{pid}/environ"))
        .is_ok_and(|environ| environ.split(|byte| *byte == 0).any(|entry| entry == mark))
}

/// Keeps a virtual display up for one gateway run: starts it, publishes its URL while it
/// is up, and restarts the chain (on the same display number) when a part dies.
pub struct DisplayKeeper {
    display_name: String,
    stop: CancellationToken,
    task: JoinHandle<()>,
}

impl DisplayKeeper {
    pub fn spawn(
        instance: InstanceId,
        tools: VncTools,
        number: DisplayNumber,
        ports: DisplayPorts,
        files: DisplayFiles,
        live_url: LiveVncUrl,
    ) -> Self {
        let stop = CancellationToken::new();
        let display_name = number.name();
        let keeper = Keeper {
            instance,
            tools,
            number: Arc::new(number),
            ports,
            files,
            live_url,
            stop: stop.clone(),
        };
        Self {
            display_name,
            stop,
            task: tokio::spawn(keeper.run()),
        }
    }

    /// The `DISPLAY` value for the gateway, `:<n>`.
    pub fn display_name(&self) -> &str {
        &self.display_name
    }

    /// Stops the display and returns once its processes have exited.
    pub async fn stop(mut self) {
        self.stop.cancel();
        let _ = (&mut self.task).await;
    }
}

impl Drop for DisplayKeeper {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

struct Keeper {
    instance: InstanceId,
    tools: VncTools,
    number: Arc<DisplayNumber>,
    ports: DisplayPorts,
    files: DisplayFiles,
    live_url: LiveVncUrl,
    stop: CancellationToken,
}

impl Keeper {
    async fn run(self) {
        let mut delay = RESTART_DELAY_INITIAL;
        let display_name = self.number.name();
        loop {
            let started_at = Instant::now();
            let started = VirtualDisplay::start_unless_cancelled(
                &self.tools,
                self.number.clone(),
                self.ports,
                &self.files,
                &self.stop,
            )
            .await;
            match started {
                Ok(mut running) => {
                    self.publish(Some(running.url()));
                    tracing::info!(instance = %self.instance, display = %display_name, vnc_port = self.ports.vnc, websocket_port = self.ports.websocket, "virtual display ready");
                    let exited = tokio::select! {
                        description = running.exited() => Some(description),
                        _ = self.stop.cancelled() => None,
                    };
                    self.publish(None);
                    running.stop().await;
                    let Some(description) = exited else {
                        return;
                    };
                    if started_at.elapsed() >= HEALTHY_RUN_RESETS_DELAY {
                        delay = RESTART_DELAY_INITIAL;
                    }
                    tracing::warn!(instance = %self.instance, display = %display_name, part = %description, "virtual display part exited; restarting the display");
                }
                Err(DisplayError::Cancelled) => return,
                Err(error) => {
                    tracing::warn!(instance = %self.instance, display = %display_name, %error, "virtual display did not start; retrying");
                }
            }
            tokio::select! {
                _ = tokio::time::sleep(delay) => {}
                _ = self.stop.cancelled() => return,
            }
            delay = (delay * 2).min(RESTART_DELAY_MAXIMUM);
        }
    }

    fn publish(&self, url: Option<String>) {
        *self
            .live_url
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = url;
    }
}

#[cfg(test)]
mod tests {
    use futures_util::StreamExt;
    use tokio_tungstenite::tungstenite::{Message, client::IntoClientRequest, http::HeaderValue};

    use super::*;
    use crate::runtime::local::ports::PortAllocator;

    const WAIT: Duration = Duration::from_secs(8);

    fn tools() -> VncTools {
        VncTools::detect().expect(
            "virtual display tests need Xvfb, x11vnc and websockify on PATH: \
             apt-get install -y xvfb x11vnc websockify novnc",
        )
    }

    /// Display ports beside a free gateway slot from `base`; every test uses its own base.
    fn ports_from(base: u16) -> DisplayPorts {
        let gateway_port = PortAllocator::new(base).allocate().unwrap();
        DisplayPorts::beside_gateway(gateway_port).unwrap()
    }

    fn files_in(dir: &Path) -> DisplayFiles {
        DisplayFiles {
            work_dir: dir.to_path_buf(),
            log_file: dir.join("display.log"),
            pid_file: dir.join("display.pids"),
        }
    }

    fn reserved(number: u32) -> bool {
        RESERVED_DISPLAYS.lock().unwrap().contains(&number)
    }

    /// Gone, or a zombie nobody reaps (its pid is no longer in use by a program).
    fn is_gone(pid: u32) -> bool {
        if nix::sys::signal::kill(Pid::from_raw(pid as i32), None).is_err() {
            return true;
        }
        std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .map(|stat| {
                stat.rsplit_once(')')
                    .is_some_and(|(_, rest)| rest.trim_start().starts_with('Z'))
            })
            .unwrap_or(true)
    }

    async fn rfb_banner(port: u16) -> Vec<u8> {
        let read = async {
            let mut stream = TcpStream::connect((Ipv4Addr::LOCALHOST, port)).await?;
            let mut banner = vec![0u8; 12];
            stream.read_exact(&mut banner).await?;
            std::io::Result::Ok(banner)
        };
        tokio::time::timeout(WAIT, read)
            .await
            .expect("no rfb banner in time")
            .expect("no rfb banner")
    }

    async fn first_websocket_message(url: &str) -> Vec<u8> {
        let mut request = url.into_client_request().unwrap();
        request
            .headers_mut()
            .insert("Sec-WebSocket-Protocol", HeaderValue::from_static("binary"));
        let (mut socket, _) = tokio::time::timeout(WAIT, tokio_tungstenite::connect_async(request))
            .await
            .expect("websocket handshake timed out")
            .expect("websocket handshake failed");
        let message = tokio::time::timeout(WAIT, socket.next())
            .await
            .expect("no websocket message in time")
            .expect("websocket closed")
            .expect("websocket failed");
        let _ = socket.close(None).await;
        match message {
            Message::Binary(bytes) => bytes.to_vec(),
            other => panic!("expected a binary message, got {other:?}"),
        }
    }

    async fn start_display(base: u16, dir: &Path) -> VirtualDisplay {
        let number = Arc::new(DisplayNumber::reserve().expect("no free display number"));
        VirtualDisplay::start(&tools(), number, ports_from(base), &files_in(dir))
            .await
            .unwrap_or_else(|error| {
                let log = std::fs::read_to_string(dir.join("display.log")).unwrap_or_default();
                panic!("display did not start: {error}\n{log}")
            })
    }

    #[tokio::test]
    async fn a_display_serves_rfb_over_vnc_and_websocket_and_stops_cleanly() {
        let dir = tempfile::tempdir().unwrap();
        let display = start_display(24100, dir.path()).await;
        let number = display.number();
        let pids = display.pids();
        assert_eq!(pids.len(), 3);
        assert!(reserved(number));
        assert!(lock_file(number).exists());

        let banner = rfb_banner(display.ports().vnc).await;
        assert!(is_rfb_banner(&banner), "{banner:?}");
        assert!(banner.starts_with(b"RFB 003.00"), "{banner:?}");
        let through_websocket = first_websocket_message(&display.url()).await;
        assert_eq!(through_websocket, banner);

        display.stop().await;
        for pid in pids {
            assert!(is_gone(pid), "pid {pid} still runs");
        }
        assert!(!reserved(number));
        assert!(!lock_file(number).exists());
        assert!(!socket_file(number).exists());
        assert!(!dir.path().join("display.pids").exists());
    }

    #[tokio::test]
    async fn two_displays_get_different_numbers_and_ports() {
        let first_dir = tempfile::tempdir().unwrap();
        let second_dir = tempfile::tempdir().unwrap();
        let (first, second) = tokio::join!(
            start_display(24300, first_dir.path()),
            start_display(24500, second_dir.path())
        );
        assert_ne!(first.number(), second.number());
        let (first_ports, second_ports) = (first.ports(), second.ports());
        let all = [
            first_ports.vnc,
            first_ports.websocket,
            second_ports.vnc,
            second_ports.websocket,
        ];
        assert_eq!(all.iter().collect::<BTreeSet<_>>().len(), 4, "{all:?}");
        assert!(is_rfb_banner(&rfb_banner(first_ports.vnc).await));
        assert!(is_rfb_banner(&rfb_banner(second_ports.vnc).await));
        tokio::join!(first.stop(), second.stop());
    }

    #[tokio::test]
    async fn a_keeper_restarts_the_chain_when_a_part_dies() {
        let dir = tempfile::tempdir().unwrap();
        let files = files_in(dir.path());
        let ports = ports_from(24700);
        let live_url: LiveVncUrl = Arc::default();
        let current_url = || live_url.lock().unwrap().clone();
        let read_pids = || -> Vec<u32> {
            std::fs::read_to_string(&files.pid_file)
                .unwrap_or_default()
                .lines()
                .filter_map(|line| line.parse().ok())
                .collect()
        };
        let keeper = DisplayKeeper::spawn(
            InstanceId::parse("vnc-keeper").unwrap(),
            tools(),
            DisplayNumber::reserve().unwrap(),
            ports,
            files.clone(),
            live_url.clone(),
        );
        let deadline = Instant::now() + WAIT;
        while current_url().is_none() {
            assert!(Instant::now() < deadline, "the display never came up");
            tokio::time::sleep(POLL_INTERVAL).await;
        }
        assert_eq!(current_url().unwrap(), ports.url());
        let first_pids = read_pids();
        assert_eq!(first_pids.len(), 3);

        // x11vnc dies: the chain comes back with a new x11vnc on the same ports.
        process::kill_group(first_pids[1]);
        let deadline = Instant::now() + WAIT;
        loop {
            let pids = read_pids();
            if current_url().is_some() && pids.len() == 3 && pids[1] != first_pids[1] {
                break;
            }
            assert!(Instant::now() < deadline, "the display was not restarted");
            tokio::time::sleep(POLL_INTERVAL).await;
        }
        assert!(is_rfb_banner(&rfb_banner(ports.vnc).await));
        let second_pids = read_pids();

        keeper.stop().await;
        assert_eq!(current_url(), None);
        for pid in first_pids.into_iter().chain(second_pids) {
            assert!(is_gone(pid), "pid {pid} still runs");
        }
    }

    #[tokio::test]
    async fn leftovers_of_a_crashed_platform_are_stopped() {
        let dir = tempfile::tempdir().unwrap();
        let display = start_display(24900, dir.path()).await;
        let pids = display.pids();
        let websocket_port = display.ports().websocket;
        // As if the platform died: nothing stops or reaps these processes.
        std::mem::forget(display);
        stop_orphaned_display(&files_in(dir.path())).await;
        // Killed, but nobody reaps them here: wait until each has finished exiting.
        let deadline = Instant::now() + WAIT;
        while !pids.iter().all(|pid| is_gone(*pid)) {
            assert!(Instant::now() < deadline, "{pids:?} still run");
            tokio::time::sleep(POLL_INTERVAL).await;
        }
        assert!(port_is_free(websocket_port));
        assert!(!dir.path().join("display.pids").exists());
    }

    #[test]
    fn tools_are_found_only_when_all_three_are_executable() {
        let dir = tempfile::tempdir().unwrap();
        for name in ["Xvfb", "x11vnc"] {
            let path = dir.path().join(name);
            std::fs::write(&path, "#!/bin/sh\n").unwrap();
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
        }
        assert_eq!(VncTools::detect_in(dir.path().as_os_str()), None);
        let websockify = dir.path().join("websockify");
        std::fs::write(&websockify, "#!/bin/sh\n").unwrap();
        assert_eq!(VncTools::detect_in(dir.path().as_os_str()), None);
        std::fs::set_permissions(&websockify, std::fs::Permissions::from_mode(0o755)).unwrap();
        let tools = VncTools::detect_in(dir.path().as_os_str()).unwrap();
        assert_eq!(tools.websockify, websockify);
    }
}
