//! Steps shared by the scenario tests: REST calls with the operator key and waiting
//! for an instance to reach a phase.

use std::time::{Duration, Instant};

use http::{Method, StatusCode};
use serde_json::Value;

use crate::{
    http::{HttpClient, Reply, send},
    platform::Platform,
};

/// A REST user of one platform.
pub struct Operator<'a> {
    pub platform: &'a Platform,
    pub client: HttpClient,
}

impl<'a> Operator<'a> {
    pub fn new(platform: &'a Platform) -> Self {
        Self {
            platform,
            client: crate::http::client(),
        }
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.platform.edge_url)
    }

    pub async fn get(&self, path: &str) -> Reply {
        send(
            &self.client,
            Method::GET,
            &self.url(path),
            Some(&self.platform.options.api_key),
            None,
            "",
        )
        .await
        .expect("GET")
    }

    pub async fn post(&self, path: &str, body: Value) -> Reply {
        send(
            &self.client,
            Method::POST,
            &self.url(path),
            Some(&self.platform.options.api_key),
            Some("application/json"),
            body.to_string(),
        )
        .await
        .expect("POST")
    }

    pub async fn delete(&self, path: &str) -> Reply {
        send(
            &self.client,
            Method::DELETE,
            &self.url(path),
            Some(&self.platform.options.api_key),
            None,
            "",
        )
        .await
        .expect("DELETE")
    }

    /// Polls `GET /api/instances/<id>` until `accept` holds, failing after `timeout`.
    pub async fn wait_for(
        &self,
        id: &str,
        timeout: Duration,
        what: &str,
        accept: impl Fn(&Value) -> bool,
    ) -> Value {
        let deadline = Instant::now() + timeout;
        let mut last = Value::Null;
        while Instant::now() < deadline {
            let reply = self.get(&format!("/api/instances/{id}")).await;
            if reply.status == StatusCode::OK {
                last = reply.json();
                if accept(&last) {
                    return last;
                }
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        let gateway_log =
            std::fs::read_to_string(self.platform.instance_dir(id).join("gateway.log"))
                .unwrap_or_default();
        let gateway_tail: Vec<&str> = gateway_log.lines().rev().take(40).collect();
        panic!(
            "instance {id} never became {what} within {timeout:?}; last state: {last}\nplatform log:\n{}\ngateway log (newest first):\n{}",
            self.platform.log_tail(),
            gateway_tail.join("\n")
        );
    }

    /// Waits until the instance is running and ready.
    pub async fn wait_running(&self, id: &str) -> Value {
        self.wait_for(id, GATEWAY_READY_TIMEOUT, "running", |instance| {
            instance["phase"] == "running" && instance["ready"] == true
        })
        .await
    }
}

/// A real gateway needs 10–25 s to become ready; a loaded 2-core CI machine more.
pub const GATEWAY_READY_TIMEOUT: Duration = Duration::from_secs(240);
