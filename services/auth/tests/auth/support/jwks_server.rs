//! A loopback stand-in for Google's or Apple's JWKS endpoint: serves whatever key set
//! the test installs and counts the requests, so tests can see refetches.

use std::sync::{
    Arc, Mutex,
    atomic::{AtomicUsize, Ordering},
};

use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpListener,
    task::JoinHandle,
};

use super::keys::TestKey;

struct Shared {
    body: Mutex<String>,
    hits: AtomicUsize,
}

/// A JWKS server on 127.0.0.1.
pub struct JwksServer {
    url: String,
    shared: Arc<Shared>,
    task: JoinHandle<()>,
}

/// A JWKS document holding the public halves of `keys`, each under its `kid`.
pub fn jwks_document(keys: &[(&str, &TestKey)]) -> String {
    let keys: Vec<serde_json::Value> = keys.iter().map(|(kid, key)| key.public_jwk(kid)).collect();
    serde_json::json!({ "keys": keys }).to_string()
}

impl JwksServer {
    pub async fn start(keys: &[(&str, &TestKey)]) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind jwks server");
        let url = format!("http://{}/keys", listener.local_addr().unwrap());
        let shared = Arc::new(Shared {
            body: Mutex::new(jwks_document(keys)),
            hits: AtomicUsize::new(0),
        });
        let serving = shared.clone();
        let task = tokio::spawn(async move {
            while let Ok((mut stream, _)) = listener.accept().await {
                let shared = serving.clone();
                tokio::spawn(async move {
                    let mut request = Vec::new();
                    let mut buffer = [0u8; 1024];
                    while !request.windows(4).any(|window| window == b"\r\n\r\n") {
                        match stream.read(&mut buffer).await {
                            Ok(0) | Err(_) => return,
                            Ok(read) => request.extend_from_slice(&buffer[..read]),
                        }
                    }
                    shared.hits.fetch_add(1, Ordering::SeqCst);
                    let body = shared.body.lock().unwrap().clone();
                    let response = format!(
                        "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                        body.len()
                    );
                    let _ = stream.write_all(response.as_bytes()).await;
                    let _ = stream.shutdown().await;
                });
            }
        });
        Self { url, shared, task }
    }

    pub fn url(&self) -> &str {
        &self.url
    }

    /// Requests served so far.
    pub fn hits(&self) -> usize {
        self.shared.hits.load(Ordering::SeqCst)
    }

    /// Replaces the published key set (a provider rotating its keys).
    pub fn publish(&self, keys: &[(&str, &TestKey)]) {
        *self.shared.body.lock().unwrap() = jwks_document(keys);
    }
}

impl Drop for JwksServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}
