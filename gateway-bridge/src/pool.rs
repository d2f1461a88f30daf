//! One [`GatewayClient`] per instance, created on first use.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex, MutexGuard},
};

use crate::{
    client::{ClientOptions, EndpointSource, GatewayClient},
    device_identity::DeviceIdentity,
};

/// The bridge's clients, keyed by instance id. All share one endpoint source, one device
/// identity and one set of options.
pub struct GatewayPool {
    source: Arc<dyn EndpointSource>,
    identity: Arc<DeviceIdentity>,
    options: ClientOptions,
    clients: Mutex<HashMap<String, Arc<GatewayClient>>>,
}

impl GatewayPool {
    /// An empty pool.
    pub fn new(
        source: Arc<dyn EndpointSource>,
        identity: Arc<DeviceIdentity>,
        options: ClientOptions,
    ) -> Self {
        Self {
            source,
            identity,
            options,
            clients: Mutex::new(HashMap::new()),
        }
    }

    /// The client of `instance_id`, created (unconnected) when missing.
    pub fn client(&self, instance_id: &str) -> Arc<GatewayClient> {
        let mut clients = self.lock_clients();
        if let Some(client) = clients.get(instance_id) {
            return client.clone();
        }
        let client = GatewayClient::new(
            instance_id.to_owned(),
            self.source.clone(),
            self.identity.clone(),
            self.options.clone(),
        );
        clients.insert(instance_id.to_owned(), client.clone());
        client
    }

    /// The endpoint of `instance_id` changed: its client reconnects afresh on next use.
    pub fn invalidate(&self, instance_id: &str) {
        let client = self.lock_clients().get(instance_id).cloned();
        if let Some(client) = client {
            client.invalidate();
        }
    }

    /// Forgets `instance_id` and shuts its client down (its pending calls fail with
    /// `Unavailable`); a later [`client`](Self::client) starts a fresh one.
    pub fn remove(&self, instance_id: &str) {
        let client = self.lock_clients().remove(instance_id);
        if let Some(client) = client {
            client.shutdown_now();
        }
    }

    /// Shuts every client down and empties the pool.
    pub async fn shutdown(&self) {
        let clients: Vec<_> = self
            .lock_clients()
            .drain()
            .map(|(_, client)| client)
            .collect();
        futures_util::future::join_all(clients.iter().map(|client| client.shutdown())).await;
    }

    /// How many instances have a client.
    pub fn len(&self) -> usize {
        self.lock_clients().len()
    }

    /// Whether no instance has a client.
    pub fn is_empty(&self) -> bool {
        self.lock_clients().is_empty()
    }

    fn lock_clients(&self) -> MutexGuard<'_, HashMap<String, Arc<GatewayClient>>> {
        self.clients
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use serde_json::Value;

    use super::*;
    use crate::client::{ClientError, Endpoint, ResolveError};

    struct Missing;

    #[tonic::async_trait]
    impl EndpointSource for Missing {
        async fn resolve(&self, instance_id: &str, _: bool) -> Result<Endpoint, ResolveError> {
            Err(ResolveError::NotFound(instance_id.to_owned()))
        }
    }

    fn pool() -> GatewayPool {
        GatewayPool::new(
            Arc::new(Missing),
            Arc::new(DeviceIdentity::generate()),
            ClientOptions::default(),
        )
    }

    #[tokio::test]
    async fn the_same_instance_gets_the_same_client_until_removed() {
        let pool = pool();
        let first = pool.client("alice");
        assert!(Arc::ptr_eq(&first, &pool.client("alice")));
        assert!(!Arc::ptr_eq(&first, &pool.client("bob")));
        assert_eq!(pool.len(), 2);
        pool.remove("alice");
        let error = first
            .call("health", Value::Null, Duration::from_secs(1))
            .await
            .unwrap_err();
        assert!(matches!(error, ClientError::Unavailable(_)), "{error:?}");
        assert!(!Arc::ptr_eq(&first, &pool.client("alice")));
        pool.shutdown().await;
        assert!(pool.is_empty());
    }
}
