//! Hearing the other replicas' writes. On PostgreSQL every write notifies
//! [`CHANGES_CHANNEL`] with the instance id (see [`crate::store`]); each replica listens,
//! reloads that row, tells its watchers and converges the runtime to it at once, so a
//! create accepted by any replica is applied without waiting for the periodic
//! reconcile. Whenever the listening connection was lost (and notifications with it)
//! the whole store is reloaded. SQLite has one writer process, so nothing to follow.

use std::{sync::Arc, time::Duration};

use clawfleet_database::Database;
use clawfleet_kit::backoff::Backoff;
use sqlx::postgres::PgListener;
use tokio_util::sync::CancellationToken;

use crate::{instance_id::InstanceId, service::Lifecycle, store::CHANGES_CHANNEL};

/// Reconnect delays of the listening connection.
const RECONNECT_FLOOR: Duration = Duration::from_millis(100);
const RECONNECT_CAP: Duration = Duration::from_secs(5);

/// Follows the other replicas' writes until `shutdown`; `None` on SQLite.
pub fn spawn_follower(
    lifecycle: Arc<Lifecycle>,
    shutdown: CancellationToken,
) -> Option<tokio::task::JoinHandle<()>> {
    let Database::Postgres(pool) = lifecycle.registry.store().database() else {
        return None;
    };
    let pool = pool.clone();
    Some(tokio::spawn(async move {
        let mut backoff = Backoff::new(RECONNECT_FLOOR, RECONNECT_CAP);
        loop {
            let listening = tokio::select! {
                listening = listen(&pool) => listening,
                () = shutdown.cancelled() => return,
            };
            match listening {
                Ok(listener) => {
                    backoff.reset();
                    // Writes made before the listener was up were not heard.
                    resync(&lifecycle).await;
                    follow(&lifecycle, listener, &shutdown).await;
                    if shutdown.is_cancelled() {
                        return;
                    }
                }
                Err(error) => {
                    tracing::warn!(%error, "cannot listen for other replicas' changes; retrying");
                }
            }
            tokio::select! {
                () = tokio::time::sleep(backoff.next_delay()) => {}
                () = shutdown.cancelled() => return,
            }
        }
    }))
}

async fn listen(pool: &sqlx::PgPool) -> Result<PgListener, sqlx::Error> {
    let mut listener = PgListener::connect_with(pool).await?;
    listener.listen(CHANGES_CHANNEL).await?;
    Ok(listener)
}

/// Applies each notification until the listener fails or `shutdown`.
async fn follow(
    lifecycle: &Arc<Lifecycle>,
    mut listener: PgListener,
    shutdown: &CancellationToken,
) {
    loop {
        let received = tokio::select! {
            received = listener.try_recv() => received,
            () = shutdown.cancelled() => return,
        };
        match received {
            Ok(Some(notification)) => {
                let Ok(id) = InstanceId::parse(notification.payload()) else {
                    tracing::warn!("ignoring a change notification that names no instance");
                    continue;
                };
                match lifecycle.registry.refresh(&id).await {
                    // Its own writes are in the map already, so only others' get here.
                    Ok(Some(change)) => {
                        let lifecycle = lifecycle.clone();
                        tokio::spawn(async move { lifecycle.publish(change).await });
                    }
                    Ok(None) => {}
                    Err(error) => {
                        tracing::warn!(instance = %id, %error, "cannot reload a changed instance; reloading everything");
                        resync(lifecycle).await;
                    }
                }
            }
            // The connection dropped; the next receive reconnects and listens again,
            // and whatever was written in between must be read back.
            Ok(None) => resync(lifecycle).await,
            Err(error) => {
                tracing::warn!(%error, "lost the change notifications; reconnecting");
                return;
            }
        }
    }
}

async fn resync(lifecycle: &Arc<Lifecycle>) {
    match lifecycle.registry.resync().await {
        Ok(changes) => {
            for change in changes {
                lifecycle.publish(change).await;
            }
        }
        Err(error) => tracing::warn!(%error, "cannot reload the instance store; will retry"),
    }
}
