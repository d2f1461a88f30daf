//! The handle a test holds: starts the stand-in, queues faults, sets usage, reads the
//! keys and the calls made.

use std::{net::SocketAddr, sync::Arc};

use super::{
    routes::router,
    state::{Fault, Shared, StoredKey},
};

/// A fake OpenRouter key-provisioning API. Dropping it stops the server.
pub struct OpenRouterStandIn {
    shared: Arc<Shared>,
    address: SocketAddr,
}

impl OpenRouterStandIn {
    /// Starts a stand-in that accepts `management_key` on `127.0.0.1:<free port>`.
    pub async fn start(management_key: &str) -> OpenRouterStandIn {
        let shared = Arc::new(Shared::new(management_key));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the OpenRouter stand-in on loopback");
        let address = listener.local_addr().expect("stand-in address");
        let app = router(shared.clone());
        let mut stopped = shared.stopped.subscribe();
        tokio::spawn(async move {
            let shutdown = async move {
                let _ = stopped.wait_for(|stopped| *stopped).await;
            };
            let _ = axum::serve(listener, app)
                .with_graceful_shutdown(shutdown)
                .await;
        });
        OpenRouterStandIn { shared, address }
    }

    /// The value for `OPENROUTER_BASE_URL`: `http://127.0.0.1:<port>/api/v1`.
    pub fn base_url(&self) -> String {
        format!("http://{}/api/v1", self.address)
    }

    /// The next `count` management calls answer with `fault`.
    pub fn fail_next(&self, fault: Fault, count: usize) {
        let mut state = self.shared.lock();
        state
            .faults
            .extend(std::iter::repeat_n((None, fault), count));
    }

    /// The next `count` management calls whose `METHOD path` starts with `call_prefix`
    /// (e.g. `DELETE /api/v1/keys/`) answer with `fault`; other calls pass.
    pub fn fail_next_matching(&self, call_prefix: &str, fault: Fault, count: usize) {
        let mut state = self.shared.lock();
        state.faults.extend(std::iter::repeat_n(
            (Some(call_prefix.to_owned()), fault),
            count,
        ));
    }

    /// Drops faults not yet played.
    pub fn clear_faults(&self) {
        self.shared.lock().faults.clear();
    }

    /// Sets the spend (USD) of the key with this hash; false when there is none.
    pub fn set_usage(&self, hash: &str, usage: f64) -> bool {
        let mut state = self.shared.lock();
        match state.keys.iter_mut().find(|key| key.hash == hash) {
            Some(key) => {
                key.usage = usage;
                true
            }
            None => false,
        }
    }

    /// Every key that exists now, in creation order.
    pub fn keys(&self) -> Vec<StoredKey> {
        self.shared.lock().keys.clone()
    }

    /// `METHOD path` of every call so far.
    pub fn calls(&self) -> Vec<String> {
        self.shared.lock().calls.clone()
    }
}

impl Drop for OpenRouterStandIn {
    fn drop(&mut self) {
        let _ = self.shared.stopped.send(true);
    }
}
