//! The lightest HTTP/1.1 client there is, for benchmarks: one prebuilt GET written on a
//! kept-alive connection, the answer read by its Content-Length. It separates what the
//! edge costs from what a full client library costs per request.

use std::{net::SocketAddr, sync::Mutex};

use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
};

/// Connections sending one fixed GET; each call borrows an idle one or opens one.
pub struct RawGet {
    address: SocketAddr,
    request: Vec<u8>,
    idle: Mutex<Vec<TcpStream>>,
}

impl RawGet {
    /// GET `path` on `address`, with `Authorization: Bearer <bearer>` when given.
    pub fn new(address: SocketAddr, path: &str, bearer: Option<&str>) -> Self {
        let mut request = format!("GET {path} HTTP/1.1\r\nHost: {address}\r\n");
        if let Some(bearer) = bearer {
            request.push_str(&format!("Authorization: Bearer {bearer}\r\n"));
        }
        request.push_str("\r\n");
        Self {
            address,
            request: request.into_bytes(),
            idle: Mutex::new(Vec::new()),
        }
    }

    /// Sends the GET; true when the answer is 200 and the connection stays usable.
    pub async fn get_ok(&self) -> bool {
        let borrowed = self
            .idle
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .pop();
        let mut stream = match borrowed {
            Some(stream) => stream,
            None => match TcpStream::connect(self.address).await {
                Ok(stream) => {
                    let _ = stream.set_nodelay(true);
                    stream
                }
                Err(_) => return false,
            },
        };
        let Ok(status) = exchange(&mut stream, &self.request).await else {
            return false;
        };
        self.idle
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .push(stream);
        status == 200
    }
}

/// Writes `request` and reads one whole response; its status code.
async fn exchange(stream: &mut TcpStream, request: &[u8]) -> std::io::Result<u16> {
    stream.write_all(request).await?;
    let mut buffer = Vec::with_capacity(2048);
    let mut chunk = [0u8; 4096];
    let header_end = loop {
        let read = stream.read(&mut chunk).await?;
        if read == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        buffer.extend_from_slice(&chunk[..read]);
        if let Some(end) = find(&buffer, b"\r\n\r\n") {
            break end + 4;
        }
    };
    let head = String::from_utf8_lossy(&buffer[..header_end]).to_ascii_lowercase();
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|code| code.parse().ok())
        .unwrap_or(0);
    let length: usize = head
        .lines()
        .find_map(|line| line.strip_prefix("content-length:"))
        .and_then(|value| value.trim().parse().ok())
        .unwrap_or(0);
    while buffer.len() < header_end + length {
        let read = stream.read(&mut chunk).await?;
        if read == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        buffer.extend_from_slice(&chunk[..read]);
    }
    Ok(status)
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack
        .windows(needle.len())
        .position(|window| window == needle)
}
