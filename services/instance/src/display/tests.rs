use std::{
    collections::BTreeSet,
    net::{Ipv4Addr, SocketAddr, TcpListener},
    os::unix::fs::PermissionsExt,
    path::Path,
    sync::Arc,
    time::Duration,
};

use futures_util::StreamExt;
use nix::{sys::signal::kill, unistd::Pid};
use tokio::{io::AsyncReadExt, net::UnixStream, time::Instant};
use tokio_tungstenite::tungstenite::{Message, client::IntoClientRequest, http::HeaderValue};
use tokio_util::sync::CancellationToken;

use super::{chain::is_rfb_banner, *};
use crate::children::Children;

const WAIT: Duration = Duration::from_secs(8);

fn tools() -> VncTools {
    VncTools::detect().expect(
        "virtual display tests need Xvfb, x11vnc and websockify on PATH: \
         apt-get install -y xvfb x11vnc websockify novnc",
    )
}

fn free_loopback_address() -> SocketAddr {
    TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .unwrap()
        .local_addr()
        .unwrap()
}

fn settings_in(dir: &Path) -> DisplaySettings {
    DisplaySettings {
        tools: tools(),
        websocket: free_loopback_address(),
        vnc_socket: dir.join("rfb.sock"),
        xauthority: dir.join("xauthority"),
        log_file: Some(dir.join("display.log")),
    }
}

fn is_gone(pid: u32) -> bool {
    kill(Pid::from_raw(pid as i32), None).is_err()
}

async fn rfb_banner(socket: &Path) -> Vec<u8> {
    let read = async {
        let mut stream = UnixStream::connect(socket).await?;
        let mut banner = vec![0u8; 12];
        stream.read_exact(&mut banner).await?;
        std::io::Result::Ok(banner)
    };
    tokio::time::timeout(WAIT, read)
        .await
        .expect("no rfb banner in time")
        .expect("no rfb banner")
}

async fn first_websocket_message(address: SocketAddr) -> Vec<u8> {
    let mut request = format!("ws://{address}").into_client_request().unwrap();
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

async fn start_display(children: &Children, settings: &DisplaySettings) -> VirtualDisplay {
    let number = Arc::new(DisplayNumber::reserve().expect("no free display number"));
    VirtualDisplay::start(children, settings, number, &CancellationToken::new())
        .await
        .unwrap_or_else(|error| {
            let log = settings
                .log_file
                .as_ref()
                .and_then(|path| std::fs::read_to_string(path).ok())
                .unwrap_or_default();
            panic!("display did not start: {error}\n{log}")
        })
}

/// TCP ports x11vnc would take without `-rfbport 0`.
fn default_rfb_ports(number: u32) -> [u16; 2] {
    [5900, u16::try_from(5900 + number).unwrap()]
}

#[tokio::test]
async fn a_display_serves_rfb_on_a_unix_socket_and_a_websocket_and_stops_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let children = Children::new().unwrap();
    let settings = settings_in(dir.path());
    let display = start_display(&children, &settings).await;
    let number = display.number();
    let pids = display.pids();
    assert_eq!(pids.len(), 3);
    let lock = std::path::PathBuf::from(format!("/tmp/.X{number}-lock"));
    assert!(lock.exists());

    let banner = rfb_banner(&settings.vnc_socket).await;
    assert!(is_rfb_banner(&banner), "{banner:?}");
    assert!(banner.starts_with(b"RFB 003.00"), "{banner:?}");
    let through_websocket = first_websocket_message(settings.websocket).await;
    assert_eq!(through_websocket, banner);
    // No RFB over TCP: x11vnc listens on its socket only.
    for port in default_rfb_ports(number) {
        assert!(
            std::net::TcpStream::connect((Ipv4Addr::LOCALHOST, port)).is_err(),
            "something listens on {port}"
        );
    }

    display.stop().await;
    for pid in pids {
        assert!(is_gone(pid), "pid {pid} still runs");
    }
    assert!(!lock.exists());
    assert!(!Path::new(&format!("/tmp/.X11-unix/X{number}")).exists());
}

#[tokio::test]
async fn two_displays_get_different_numbers_and_claims() {
    let first_dir = tempfile::tempdir().unwrap();
    let second_dir = tempfile::tempdir().unwrap();
    let children = Children::new().unwrap();
    let (first_settings, second_settings) = (
        settings_in(first_dir.path()),
        settings_in(second_dir.path()),
    );
    let (first, second) = tokio::join!(
        start_display(&children, &first_settings),
        start_display(&children, &second_settings)
    );
    assert_ne!(first.number(), second.number());
    assert!(is_rfb_banner(&rfb_banner(&first_settings.vnc_socket).await));
    assert!(is_rfb_banner(
        &rfb_banner(&second_settings.vnc_socket).await
    ));
    tokio::join!(first.stop(), second.stop());
}

#[test]
fn a_claimed_number_is_not_handed_out_again_until_released() {
    let first = DisplayNumber::reserve().unwrap();
    let second = DisplayNumber::reserve().unwrap();
    assert_ne!(first.get(), second.get());
    let released = first.get();
    drop(first);
    let numbers: BTreeSet<u32> = (0..3)
        .map(|_| DisplayNumber::reserve().unwrap())
        .map(|number| number.get())
        .collect();
    assert!(numbers.contains(&released), "{numbers:?}");
}

#[tokio::test]
async fn a_keeper_restarts_the_chain_when_a_part_dies() {
    let dir = tempfile::tempdir().unwrap();
    let children = Arc::new(Children::new().unwrap());
    let settings = settings_in(dir.path());
    let keeper = DisplayKeeper::spawn(
        children.clone(),
        settings.clone(),
        DisplayNumber::reserve().unwrap(),
    );
    let mut up = keeper.up();
    tokio::time::timeout(WAIT, up.wait_for(|up| *up))
        .await
        .expect("the display never came up")
        .unwrap();
    let first_banner = rfb_banner(&settings.vnc_socket).await;
    assert!(is_rfb_banner(&first_banner));
    let x11vnc = x11vnc_pid(&settings.vnc_socket);

    // x11vnc dies: the chain comes back, serving on the same socket and address.
    kill(
        Pid::from_raw(x11vnc as i32),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    tokio::time::timeout(WAIT, up.wait_for(|up| !*up))
        .await
        .expect("the keeper did not notice")
        .unwrap();
    tokio::time::timeout(WAIT, up.wait_for(|up| *up))
        .await
        .expect("the display was not restarted")
        .unwrap();
    assert!(is_rfb_banner(&rfb_banner(&settings.vnc_socket).await));
    assert_ne!(x11vnc_pid(&settings.vnc_socket), x11vnc);
    let through_websocket = first_websocket_message(settings.websocket).await;
    assert!(is_rfb_banner(&through_websocket));

    keeper.stop().await;
    assert!(!*up.borrow());
    let deadline = Instant::now() + WAIT;
    while TcpListener::bind(settings.websocket).is_err() {
        assert!(Instant::now() < deadline, "websockify still listens");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The x11vnc process serving `socket` (its command line names the socket).
fn x11vnc_pid(socket: &Path) -> u32 {
    let wanted = socket.as_os_str().as_encoded_bytes();
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|entry| entry.file_name().to_str()?.parse::<u32>().ok())
        .find(|pid| {
            std::fs::read(format!("/proc/{pid}/cmdline")).is_ok_and(|cmdline| {
                cmdline.starts_with(b"/usr/bin/x11vnc")
                    || cmdline
                        .split(|byte| *byte == 0)
                        .next()
                        .is_some_and(|program| program.ends_with(b"x11vnc"))
            }) && std::fs::read(format!("/proc/{pid}/cmdline"))
                .is_ok_and(|cmdline| cmdline.split(|byte| *byte == 0).any(|arg| arg == wanted))
        })
        .expect("no x11vnc serves the socket")
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
