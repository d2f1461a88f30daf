//! One order for every change of an instance, record and observation alike: each change
//! takes the next revision, so a watcher (the edge's replica) can drop an update older
//! than what it holds. Revisions follow the wall clock in microseconds where it is ahead
//! (a hybrid logical clock), so a restarted lifecycle never hands out numbers lower than
//! the ones its predecessor gave.

use std::{
    sync::atomic::{AtomicU64, Ordering},
    time::{SystemTime, UNIX_EPOCH},
};

static LAST: AtomicU64 = AtomicU64::new(0);

/// A revision greater than every one handed out before in this process.
pub fn next() -> u64 {
    let clock = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| {
            u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX)
        });
    let previous = LAST
        .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |last| {
            Some(clock.max(last.saturating_add(1)))
        })
        .unwrap_or_else(|last| last);
    clock.max(previous.saturating_add(1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn revisions_only_grow_and_follow_the_clock() {
        let before = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_micros() as u64;
        let mut last = next();
        assert!(last >= before);
        for _ in 0..10_000 {
            let revision = next();
            assert!(revision > last);
            last = revision;
        }
    }
}
