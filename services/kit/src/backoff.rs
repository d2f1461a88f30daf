//! The platform's one retry delay policy: exponential (factor 2) from a floor to a cap,
//! with jitter so that many gateways or connections failing together do not retry in
//! lockstep, and a reset once the thing retried has recovered.

use std::time::Duration;

use backon::{BackoffBuilder, ExponentialBackoff, ExponentialBuilder};

/// Delays for successive retries; never runs out (the cap repeats).
#[derive(Debug)]
pub struct Backoff {
    builder: ExponentialBuilder,
    delays: ExponentialBackoff,
    cap: Duration,
}

impl Backoff {
    /// Delays from `floor` doubling up to `cap`, each stretched by up to its own length
    /// of jitter (so a delay lies in `[d, 2d)` until the cap).
    pub fn new(floor: Duration, cap: Duration) -> Self {
        let builder = ExponentialBuilder::new()
            .with_min_delay(floor)
            .with_max_delay(cap)
            .with_factor(2.0)
            .with_jitter()
            .without_max_times();
        Self {
            delays: builder.build(),
            builder,
            cap,
        }
    }

    /// The delay before the next retry.
    pub fn next_delay(&mut self) -> Duration {
        self.delays.next().unwrap_or(self.cap)
    }

    /// Starts over from the floor, after the retried thing recovered.
    pub fn reset(&mut self) {
        self.delays = self.builder.build();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_double_with_jitter_up_to_the_cap_and_reset() {
        let second = Duration::from_secs(1);
        let mut backoff = Backoff::new(second, 5 * second);
        let delays: Vec<Duration> = (0..6).map(|_| backoff.next_delay()).collect();
        let floors = [1, 2, 4, 5, 5, 5];
        for (delay, floor) in delays.iter().zip(floors) {
            let floor = floor * second;
            assert!(*delay >= floor && *delay < 2 * floor, "{delays:?}");
        }
        backoff.reset();
        let first = backoff.next_delay();
        assert!(first >= second && first < 2 * second, "{first:?}");
    }
}
