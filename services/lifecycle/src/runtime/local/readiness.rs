//! The gateway's readiness endpoint (`GET /readyz`, no token), read over loopback.

use std::time::Duration;

use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
};

/// The largest probe answer read; `/readyz` answers are a few KiB.
const MAX_ANSWER_BYTES: usize = 256 * 1024;

/// What `/readyz` said.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Readiness {
    Ready,
    /// The gateway answered but is not ready; the failing checks, if it named them.
    NotReady {
        failing: Vec<String>,
    },
    /// Nothing answered (not listening yet, or hung).
    NoAnswer {
        detail: String,
    },
}

/// Probes `http://127.0.0.1:<port>/readyz` within `timeout`.
pub async fn probe(port: u16, timeout: Duration) -> Readiness {
    match tokio::time::timeout(timeout, fetch(port)).await {
        Ok(Ok((status, body))) => interpret(status, &body),
        Ok(Err(error)) => Readiness::NoAnswer {
            detail: error.to_string(),
        },
        Err(_) => Readiness::NoAnswer {
            detail: format!("no answer within {}ms", timeout.as_millis()),
        },
    }
}

async fn fetch(port: u16) -> std::io::Result<(u16, Vec<u8>)> {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).await?;
    stream
        .write_all(b"GET /readyz HTTP/1.0\r\nHost: 127.0.0.1\r\nAccept: application/json\r\n\r\n")
        .await?;
    let mut answer = Vec::with_capacity(4096);
    (&mut stream)
        .take(MAX_ANSWER_BYTES as u64)
        .read_to_end(&mut answer)
        .await?;
    let header_end = answer
        .windows(4)
        .position(|window| window == b"\r\n\r\n")
        .ok_or_else(|| std::io::Error::other("incomplete http answer"))?;
    let status_line = answer[..header_end]
        .split(|byte| *byte == b'\r')
        .next()
        .unwrap_or_default();
    let status = std::str::from_utf8(status_line)
        .ok()
        .and_then(|line| line.split_whitespace().nth(1))
        .and_then(|code| code.parse().ok())
        .ok_or_else(|| std::io::Error::other("malformed http status line"))?;
    Ok((status, answer[header_end + 4..].to_vec()))
}

fn interpret(status: u16, body: &[u8]) -> Readiness {
    if status == 200 {
        return Readiness::Ready;
    }
    let failing = serde_json::from_slice::<serde_json::Value>(body)
        .ok()
        .and_then(|value| {
            let list = value.get("failing")?.as_array()?.clone();
            Some(
                list.iter()
                    .map(|item| match item {
                        serde_json::Value::String(text) => text.clone(),
                        other => other.to_string(),
                    })
                    .collect(),
            )
        })
        .unwrap_or_else(|| vec![format!("http {status}")]);
    Readiness::NotReady { failing }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::net::TcpListener;

    async fn serve_once(answer: &'static str) -> u16 {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        tokio::spawn(async move {
            let (mut stream, _) = listener.accept().await.unwrap();
            let mut buffer = [0u8; 1024];
            let _ = stream.read(&mut buffer).await;
            stream.write_all(answer.as_bytes()).await.unwrap();
        });
        port
    }

    #[tokio::test]
    async fn a_200_means_ready() {
        let port =
            serve_once("HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n\r\n{\"ready\":true}")
                .await;
        assert_eq!(probe(port, Duration::from_secs(2)).await, Readiness::Ready);
    }

    #[tokio::test]
    async fn a_503_names_the_failing_checks() {
        let port = serve_once("HTTP/1.1 503 Service Unavailable\r\n\r\n{\"ready\":false,\"failing\":[\"telegram:default\"]}").await;
        assert_eq!(
            probe(port, Duration::from_secs(2)).await,
            Readiness::NotReady {
                failing: vec!["telegram:default".into()]
            }
        );
    }

    #[tokio::test]
    async fn silence_is_no_answer() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        drop(listener);
        assert!(matches!(
            probe(port, Duration::from_secs(1)).await,
            Readiness::NoAnswer { .. }
        ));
    }
}
