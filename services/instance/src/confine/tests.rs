//! Landlock restricts only the calling thread, so each test confines a thread of its own
//! and probes from it, while the test's other threads stay free.

use std::{
    io::ErrorKind,
    net::{Ipv4Addr, SocketAddrV4, TcpListener, TcpStream},
    path::PathBuf,
};

use super::{Confinement, Policy, ProcessLimits, landlock_rules::connect_allowed};

fn confinement(read_write: PathBuf) -> Confinement {
    Confinement {
        policy: Policy::Required,
        read_write: vec![read_write],
        read_only: Vec::new(),
        bind_ports: Vec::new(),
        connect_denied: Vec::new(),
        identity: None,
        limits: ProcessLimits::default(),
    }
}

/// Runs `probe` on a new thread confined by `confinement`.
fn confined<T: Send + 'static>(
    confinement: Confinement,
    probe: impl FnOnce() -> T + Send + 'static,
) -> T {
    std::thread::spawn(move || {
        let enforced = confinement.apply().expect("confinement applies");
        assert_eq!(enforced.landlock, "fully");
        assert!(enforced.no_new_privs);
        probe()
    })
    .join()
    .expect("the confined thread ran")
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[test]
fn a_tenant_reads_and_writes_its_own_folder_only() {
    let own = tempfile::tempdir().unwrap();
    let platform = tempfile::tempdir().unwrap();
    let secret = platform.path().join("jwt-secret");
    std::fs::write(&secret, "s3cret").unwrap();
    let own_file = own.path().join("state.json");
    let neighbour_file = platform.path().join("written-by-tenant");
    let (own_write, own_read, secret_read, foreign_write, system_read) =
        confined(confinement(own.path().to_owned()), {
            let (own_file, secret, neighbour_file) =
                (own_file.clone(), secret.clone(), neighbour_file.clone());
            move || {
                (
                    std::fs::write(&own_file, "mine").map_err(|e| e.kind()),
                    std::fs::read_to_string(&own_file).map_err(|e| e.kind()),
                    std::fs::read_to_string(&secret).map_err(|e| e.kind()),
                    std::fs::write(&neighbour_file, "x").map_err(|e| e.kind()),
                    std::fs::read_to_string("/etc/hostname")
                        .or_else(|_| std::fs::read_to_string("/proc/self/status"))
                        .map(|_| ())
                        .map_err(|e| e.kind()),
                )
            }
        });
    assert_eq!(own_write, Ok(()));
    assert_eq!(own_read.as_deref(), Ok("mine"));
    assert_eq!(secret_read, Err(ErrorKind::PermissionDenied));
    assert_eq!(foreign_write, Err(ErrorKind::PermissionDenied));
    assert_eq!(system_read, Ok(()));
    // The test's own thread is not confined.
    assert_eq!(std::fs::read_to_string(&secret).unwrap(), "s3cret");
    assert!(!neighbour_file.exists());
}

#[test]
fn a_tenant_binds_only_its_own_ports() {
    let own = tempfile::tempdir().unwrap();
    let own_port = free_port();
    let other_port = free_port();
    let mut confinement = confinement(own.path().to_owned());
    confinement.bind_ports = vec![own_port];
    let (own_bind, other_bind, ephemeral) = confined(confinement, move || {
        let bind = |port| {
            TcpListener::bind(SocketAddrV4::new(Ipv4Addr::LOCALHOST, port))
                .map(drop)
                .map_err(|e| e.kind())
        };
        (bind(own_port), bind(other_port), bind(0))
    });
    assert_eq!(own_bind, Ok(()));
    assert_eq!(other_bind, Err(ErrorKind::PermissionDenied));
    assert_eq!(ephemeral, Ok(()));
}

#[test]
fn a_tenant_cannot_connect_to_denied_ports() {
    let own = tempfile::tempdir().unwrap();
    let denied = TcpListener::bind("127.0.0.1:0").unwrap();
    let allowed = TcpListener::bind("127.0.0.1:0").unwrap();
    let denied_port = denied.local_addr().unwrap().port();
    let allowed_port = allowed.local_addr().unwrap().port();
    let mut confinement = confinement(own.path().to_owned());
    confinement.connect_denied = vec![denied_port..=denied_port];
    let started = std::time::Instant::now();
    let (to_denied, to_allowed) = confined(confinement, move || {
        let connect = |port| {
            TcpStream::connect(SocketAddrV4::new(Ipv4Addr::LOCALHOST, port))
                .map(drop)
                .map_err(|e| e.kind())
        };
        (connect(denied_port), connect(allowed_port))
    });
    eprintln!(
        "confinement with 65535 connect rules took {:?}",
        started.elapsed()
    );
    assert_eq!(to_denied, Err(ErrorKind::PermissionDenied));
    assert_eq!(to_allowed, Ok(()));
}

#[test]
fn a_missing_tenant_folder_refuses_to_confine() {
    let gone = tempfile::tempdir().unwrap().path().join("never-created");
    let result = std::thread::spawn(move || confinement(gone).apply().map(drop))
        .join()
        .unwrap();
    assert!(result.is_err());
}

#[test]
fn connect_rules_allow_everything_but_the_denied_ranges() {
    let mut confinement = confinement(PathBuf::from("/nonexistent"));
    confinement.connect_denied = vec![19000..=19019, 19040..=u16::MAX];
    let allowed: Vec<u16> = connect_allowed(&confinement).collect();
    assert_eq!(allowed.len(), 19000 + 20);
    assert!(allowed.contains(&443) && allowed.contains(&19020) && allowed.contains(&19039));
    assert!(!allowed.contains(&19000) && !allowed.contains(&19040));
}

#[test]
fn the_confinement_travels_as_json() {
    let mut original = confinement(PathBuf::from("/data/instances/a/state"));
    original.bind_ports = vec![19000, 19010];
    original.connect_denied = vec![19020..=u16::MAX];
    original.identity = Some(super::TenantIdentity {
        uid: 1_500_000_001,
        gid: 1_500_000_001,
    });
    original.policy = Policy::BestEffort;
    assert_eq!(
        Confinement::from_json(&original.to_json()).unwrap(),
        original
    );
}
