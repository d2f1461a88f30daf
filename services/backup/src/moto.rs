//! A real S3 wire-format server on loopback for tests: PyPI `moto[server]`
//! (`scripts/install-test-tools` puts it in `.cache/tools/venv`), started on a free port,
//! stopped and its data discarded when dropped.

use std::{
    io::{Read, Write},
    net::{TcpListener, TcpStream},
    path::PathBuf,
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use clawfleet_kit::secret::SecretString;

use crate::store::{S3Settings, StoreConfig};

/// A running `moto_server`.
pub struct MotoServer {
    child: Child,
    port: u16,
}

/// `MOTO_SERVER`, or the project's tool venv.
fn moto_server_bin() -> PathBuf {
    if let Some(path) = std::env::var_os("MOTO_SERVER") {
        return PathBuf::from(path);
    }
    let venv =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../.cache/tools/venv/bin/moto_server");
    assert!(
        venv.exists(),
        "moto_server not found at {}: run scripts/install-test-tools (it installs PyPI \
         moto[server]) or set MOTO_SERVER",
        venv.display()
    );
    venv
}

impl MotoServer {
    /// Starts moto on a free loopback port and waits until it answers.
    pub fn start() -> Self {
        // The kernel picks a free port; moto binds it right after (a narrow race that a
        // retry would hide, and that fails loudly if lost).
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|listener| listener.local_addr())
            .expect("free port")
            .port();
        let child = Command::new(moto_server_bin())
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start moto_server");
        let server = Self { child, port };
        let deadline = Instant::now() + Duration::from_secs(30);
        while server.request("GET", "/").is_none() {
            assert!(
                Instant::now() < deadline,
                "moto_server did not answer in 30 s"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        server
    }

    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Creates a bucket (moto accepts unsigned requests).
    pub fn create_bucket(&self, bucket: &str) {
        let answer = self
            .request("PUT", &format!("/{bucket}"))
            .expect("moto answers");
        assert!(
            answer.starts_with("HTTP/1.1 200"),
            "create bucket: {answer}"
        );
    }

    /// A store config for `bucket` under `prefix` on this server.
    pub fn store_config(&self, bucket: &str, prefix: &str) -> StoreConfig {
        StoreConfig::S3(S3Settings {
            endpoint: self.endpoint(),
            bucket: bucket.to_owned(),
            prefix: prefix.to_owned(),
            region: "us-east-1".to_owned(),
            access_key_id: "testing".to_owned(),
            secret_access_key: SecretString::from("testing"),
        })
    }

    /// One HTTP/1.1 request with an empty body; the status line and headers, or `None`
    /// when nothing answers.
    fn request(&self, method: &str, path: &str) -> Option<String> {
        let mut stream = TcpStream::connect(("127.0.0.1", self.port)).ok()?;
        stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
        let request = format!(
            "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
            self.port
        );
        stream.write_all(request.as_bytes()).ok()?;
        let mut answer = String::new();
        stream.read_to_string(&mut answer).ok()?;
        (!answer.is_empty()).then_some(answer)
    }
}

impl Drop for MotoServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
