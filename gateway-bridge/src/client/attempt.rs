//! Connect attempts: one shared attempt for concurrent callers, what the client learns from
//! a failed one (refresh the endpoint, forget a refused device token, pairing pending).

use std::sync::Arc;

use clawfleet_kit::secret::{ExposeSecret, SecretString};
use tokio::{
    sync::watch,
    time::{Instant, timeout, timeout_at},
};

use tracing::Instrument;

use super::{
    ClientError,
    spans::{self, Trigger},
    state::{AttemptOutcome, Inner, Link, State},
};
use crate::connection::{ConnectError, ConnectOptions, Connection};

impl Inner {
    /// The open connection, or the outcome of one connect attempt made (or joined) now.
    pub(super) async fn connection(
        self: &Arc<Self>,
        deadline_at: Instant,
        trigger: Trigger,
    ) -> Result<Arc<Connection>, ClientError> {
        let mut outcome = {
            let mut state = self.lock_state();
            if let Link::Open { connection, .. } = &state.link
                && connection.is_open()
            {
                return Ok(connection.clone());
            }
            self.start_attempt(&mut state, trigger)
        };
        match timeout_at(deadline_at, outcome.wait_for(Option::is_some)).await {
            Err(_) => Err(ClientError::DeadlineExceeded),
            Ok(Err(_)) => Err(ClientError::Unavailable(
                "gateway connect attempt abandoned".to_owned(),
            )),
            Ok(Ok(result)) => result.clone().unwrap_or_else(|| {
                Err(ClientError::Unavailable(
                    "gateway connect attempt abandoned".to_owned(),
                ))
            }),
        }
    }

    /// Joins the attempt under way, or starts one. Must be called with the state locked.
    pub(super) fn start_attempt(
        self: &Arc<Self>,
        state: &mut State,
        trigger: Trigger,
    ) -> watch::Receiver<AttemptOutcome> {
        match &state.link {
            Link::Connecting { outcome, .. } => return outcome.clone(),
            Link::Open { connection, .. } if connection.is_open() => {
                return watch::channel(Some(Ok(connection.clone()))).1;
            }
            Link::Open { connection, .. } => {
                let connection = connection.clone();
                self.retire(state, &connection);
            }
            Link::Idle => {}
        }
        if state.shut_down {
            return watch::channel(Some(Err(ClientError::Unavailable(
                "gateway client shut down".to_owned(),
            ))))
            .1;
        }
        state.next_attempt += 1;
        let attempt = state.next_attempt;
        let (outcome_tx, outcome_rx) = watch::channel(None);
        state.link = Link::Connecting {
            attempt,
            outcome: outcome_rx.clone(),
        };
        let refresh = std::mem::take(&mut state.refresh_endpoint);
        let device_token = state.device_token.clone();
        let inner = self.clone();
        let span = spans::connect_span(
            &self.instance_id,
            attempt,
            trigger,
            state.last_close.as_ref(),
        );
        // Owned by its bounds: resolve and connect each end within `connect_timeout`.
        tokio::spawn(async move {
            let outcome = tokio::select! {
                outcome = inner
                    .connect_once(attempt, refresh, device_token)
                    .instrument(span.clone()) => outcome,
                () = inner.stop.cancelled() => Err(ClientError::Unavailable(
                    "gateway client shut down".to_owned(),
                )),
            };
            spans::record_connect_outcome(&span, &outcome);
            if outcome.is_err() {
                let mut state = inner.lock_state();
                if matches!(state.link, Link::Connecting { attempt: current, .. } if current == attempt)
                {
                    state.link = Link::Idle;
                }
            }
            outcome_tx.send_replace(Some(outcome));
            inner.wake.notify_one();
        });
        outcome_rx
    }

    async fn connect_once(
        &self,
        attempt: u64,
        refresh: bool,
        device_token: Option<SecretString>,
    ) -> Result<Arc<Connection>, ClientError> {
        let started = Instant::now();
        let budget = self.options.connect_timeout;
        let endpoint = match timeout(budget, self.source.resolve(&self.instance_id, refresh)).await
        {
            Ok(Ok(endpoint)) => endpoint,
            Ok(Err(error)) => return Err(error.into()),
            Err(_) => {
                return Err(ClientError::Unavailable(
                    "resolving the gateway endpoint timed out".to_owned(),
                ));
            }
        };
        let options = ConnectOptions {
            url: endpoint.url.clone(),
            token: endpoint.token.clone(),
            identity: Some(self.identity.clone()),
            device_token: device_token.clone(),
            max_in_flight: self.options.max_in_flight,
            connect_timeout: budget.saturating_sub(started.elapsed()),
            extra_headers: self.options.extra_headers.clone(),
        };
        match Connection::open(&options).await {
            Ok((connection, hello)) => {
                let connection = Arc::new(connection);
                let events = connection.subscribe();
                let mut state = self.lock_state();
                let current = matches!(
                    state.link,
                    Link::Connecting { attempt: current, .. } if current == attempt
                );
                if !current || state.shut_down {
                    drop(state);
                    connection.close_now();
                    return Err(ClientError::Unavailable(
                        "gateway endpoint changed while connecting".to_owned(),
                    ));
                }
                if hello.device_token.is_some() {
                    state.device_token = hello.device_token;
                }
                state.pairing_pending = false;
                state.link = Link::Open {
                    connection: connection.clone(),
                    events: Some(events),
                };
                tracing::info!(
                    instance = %self.instance_id,
                    url = %endpoint.url,
                    revision = %endpoint.revision,
                    server_version = %hello.server_version,
                    "connected to gateway"
                );
                Ok(connection)
            }
            Err(error) => {
                let mut state = self.lock_state();
                match &error {
                    ConnectError::Auth(_) => {
                        // A rotated shared token or a revoked device token: fetch the token
                        // again and retry with the shared token alone.
                        state.refresh_endpoint = true;
                        let refused = device_token.as_ref().map(ExposeSecret::expose_secret);
                        let held = state.device_token.as_ref().map(ExposeSecret::expose_secret);
                        if refused.is_some() && held == refused {
                            state.device_token = None;
                        }
                    }
                    ConnectError::PairingRequired { .. } => state.pairing_pending = true,
                    ConnectError::Io(_) | ConnectError::Timeout => state.refresh_endpoint = true,
                    ConnectError::Protocol(_)
                    | ConnectError::ScopesMissing { .. }
                    | ConnectError::Unavailable { .. } => {}
                }
                drop(state);
                tracing::warn!(
                    instance = %self.instance_id,
                    url = %endpoint.url,
                    %error,
                    "gateway connect failed"
                );
                Err(error.into())
            }
        }
    }
}
