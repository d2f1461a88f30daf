//! Keeps a virtual display up for one gateway run: starts it, says whether it is up, and
//! restarts the chain (on the same display number: the gateway's `DISPLAY` points at it)
//! when a part dies. The gateway keeps running whatever happens to its display.

use std::{sync::Arc, time::Duration};

use clawfleet_kit::backoff::Backoff;
use tokio::{sync::watch, task::JoinHandle, time::Instant};
use tokio_util::sync::CancellationToken;

use super::{
    chain::{DisplayError, DisplaySettings, VirtualDisplay},
    number::DisplayNumber,
};
use crate::children::Children;

const RESTART_DELAY_FLOOR: Duration = Duration::from_millis(500);
const RESTART_DELAY_CAP: Duration = Duration::from_secs(30);
/// A display that stayed up this long has recovered: the next failure restarts soon.
const HEALTHY_RUN_RESETS_DELAY: Duration = Duration::from_secs(60);

pub struct DisplayKeeper {
    display_name: String,
    xauthority: std::path::PathBuf,
    up: watch::Receiver<bool>,
    stop: CancellationToken,
    task: JoinHandle<()>,
}

impl DisplayKeeper {
    pub fn spawn(
        children: Arc<Children>,
        settings: DisplaySettings,
        number: DisplayNumber,
    ) -> Self {
        let stop = CancellationToken::new();
        let display_name = number.name();
        let xauthority = settings.xauthority.clone();
        let (up_sender, up) = watch::channel(false);
        let keeper = Keeper {
            children,
            settings,
            number: Arc::new(number),
            up: up_sender,
            stop: stop.clone(),
        };
        Self {
            display_name,
            xauthority,
            up,
            stop,
            task: tokio::spawn(keeper.run()),
        }
    }

    /// The `DISPLAY` value for the gateway, `:<n>`.
    pub fn display_name(&self) -> &str {
        &self.display_name
    }

    /// The X authority file a client of the display needs (`XAUTHORITY`).
    pub fn xauthority(&self) -> &std::path::Path {
        &self.xauthority
    }

    /// True while the whole chain serves.
    pub fn up(&self) -> watch::Receiver<bool> {
        self.up.clone()
    }

    /// Stops the display and returns once its processes have exited.
    pub async fn stop(mut self) {
        self.stop.cancel();
        let _ = (&mut self.task).await;
    }
}

impl Drop for DisplayKeeper {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

struct Keeper {
    children: Arc<Children>,
    settings: DisplaySettings,
    number: Arc<DisplayNumber>,
    up: watch::Sender<bool>,
    stop: CancellationToken,
}

impl Keeper {
    async fn run(self) {
        let mut backoff = Backoff::new(RESTART_DELAY_FLOOR, RESTART_DELAY_CAP);
        let display_name = self.number.name();
        loop {
            let started_at = Instant::now();
            let started = VirtualDisplay::start(
                &self.children,
                &self.settings,
                self.number.clone(),
                &self.stop,
            )
            .await;
            match started {
                Ok(mut running) => {
                    self.up.send_replace(true);
                    tracing::info!(display = %display_name, websocket = %self.settings.websocket, "virtual display ready");
                    let exited = tokio::select! {
                        description = running.exited() => Some(description),
                        _ = self.stop.cancelled() => None,
                    };
                    self.up.send_replace(false);
                    running.stop().await;
                    let Some(description) = exited else {
                        return;
                    };
                    if started_at.elapsed() >= HEALTHY_RUN_RESETS_DELAY {
                        backoff.reset();
                    }
                    tracing::warn!(display = %display_name, part = %description, "virtual display part exited; restarting the display");
                }
                Err(DisplayError::Cancelled) => return,
                Err(error) => {
                    tracing::warn!(display = %display_name, %error, "virtual display did not start; retrying");
                }
            }
            tokio::select! {
                _ = tokio::time::sleep(backoff.next_delay()) => {}
                _ = self.stop.cancelled() => return,
            }
        }
    }
}
