//! The handle a test holds: starts the stand-in, changes subscribers' entitlements as a
//! store purchase or expiry would, queues faults and reads what was asked.

use std::{net::SocketAddr, sync::Arc};

use axum::{Router, routing::get};
use tokio::sync::oneshot;

use super::{
    routes::subscriber,
    state::{Fault, Shared, StoredEntitlement},
};

/// A RevenueCat subscriber API on `127.0.0.1:<free port>`; stopped when dropped.
pub struct RevenueCatStandIn {
    shared: Arc<Shared>,
    address: SocketAddr,
    _stop: oneshot::Sender<()>,
}

impl RevenueCatStandIn {
    /// Starts a stand-in that accepts `secret_key`.
    pub async fn start(secret_key: &str) -> RevenueCatStandIn {
        let shared = Arc::new(Shared::new(secret_key));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the RevenueCat stand-in on loopback");
        let address = listener.local_addr().expect("stand-in address");
        let app = Router::new()
            .route("/v1/subscribers/{app_user_id}", get(subscriber))
            .with_state(shared.clone());
        let (stop, stopped) = oneshot::channel::<()>();
        tokio::spawn(async move {
            let _ = axum::serve(listener, app)
                .with_graceful_shutdown(async move {
                    let _ = stopped.await;
                })
                .await;
        });
        RevenueCatStandIn {
            shared,
            address,
            _stop: stop,
        }
    }

    /// The value for `REVENUECAT_BASE_URL`.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.address)
    }

    /// Gives `app_user_id` the entitlement until `expires_ms` (`None`: for life), as a
    /// purchase of `product` would.
    pub fn grant(
        &self,
        app_user_id: &str,
        entitlement: &str,
        product: &str,
        expires_ms: Option<i64>,
    ) {
        self.shared
            .lock()
            .subscribers
            .entry(app_user_id.to_owned())
            .or_default()
            .insert(
                entitlement.to_owned(),
                StoredEntitlement {
                    product_identifier: product.to_owned(),
                    purchase_ms: now_ms(),
                    expires_ms,
                    grace_period_expires_ms: None,
                },
            );
    }

    /// Ends every entitlement of `app_user_id` a moment ago (a lapsed subscription keeps
    /// its entitlements, expired, as RevenueCat reports them).
    pub fn expire_all(&self, app_user_id: &str) {
        let past = now_ms() - 1000;
        if let Some(entitlements) = self.shared.lock().subscribers.get_mut(app_user_id) {
            for entitlement in entitlements.values_mut() {
                entitlement.expires_ms = Some(past);
                entitlement.grace_period_expires_ms = None;
            }
        }
    }

    /// The next request gets `fault` instead of its answer (faults queue up).
    pub fn fail_next(&self, fault: Fault) {
        self.shared.lock().faults.push_back(fault);
    }

    /// How many subscriber requests arrived (including refused ones).
    pub fn request_count(&self) -> usize {
        self.shared.lock().requests.len()
    }
}

pub(super) fn now_ms() -> i64 {
    (time::OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000) as i64
}
