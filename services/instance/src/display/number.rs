//! X display numbers. Several runners on one machine (the local runtime starts one per
//! instance) pick numbers at the same time, so a number is claimed with an exclusive
//! `flock` on a claim file: the kernel releases it when its holder dies, so a crashed
//! runner never leaves a number taken.

use std::{
    fs::{File, OpenOptions},
    os::unix::fs::OpenOptionsExt,
    path::{Path, PathBuf},
};

/// Display numbers are searched from here, clear of the low numbers desktops use.
const FIRST_DISPLAY: u32 = 100;
const DISPLAY_COUNT: u32 = 1000;
const X11_SOCKET_DIR: &str = "/tmp/.X11-unix";

/// A claimed X display number with no X server (lock file or socket) when claimed;
/// released on drop.
#[derive(Debug)]
pub struct DisplayNumber {
    number: u32,
    /// Holds the claim's lock.
    _claim: File,
}

impl DisplayNumber {
    /// The lowest free display number from 100 up.
    pub fn reserve() -> Option<Self> {
        (FIRST_DISPLAY..FIRST_DISPLAY + DISPLAY_COUNT).find_map(Self::claim)
    }

    fn claim(number: u32) -> Option<Self> {
        if !display_is_free(number) {
            return None;
        }
        // Readable by all, so the runners of other tenants (other uids) can claim the
        // number too; a claim file someone else created opens read-only (flock works
        // on any open file).
        let claim = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o644)
            .open(claim_file(number))
            .or_else(|_| File::open(claim_file(number)))
            .ok()?;
        claim.try_lock().ok()?;
        // Taken between the check and the claim by someone who does not claim.
        display_is_free(number).then_some(Self {
            number,
            _claim: claim,
        })
    }

    pub fn get(&self) -> u32 {
        self.number
    }

    /// The `DISPLAY` value, `:<n>`.
    pub fn name(&self) -> String {
        format!(":{}", self.number)
    }

    /// The X server's lock file.
    pub fn lock_file(&self) -> PathBuf {
        lock_file(self.number)
    }

    /// The X server's unix socket.
    pub fn socket_file(&self) -> PathBuf {
        socket_file(self.number)
    }

    /// Removes the lock and socket of an X server of ours that died without cleaning up
    /// (SIGKILL); Xvfb refuses to start over them. The number is claimed, so a lock
    /// naming a live process is not ours and is left alone.
    pub fn clear_stale_lock(&self) {
        let Ok(text) = std::fs::read_to_string(self.lock_file()) else {
            return;
        };
        let owner_alive = text
            .trim()
            .parse::<u32>()
            .is_ok_and(|pid| Path::new(&format!("/proc/{pid}")).exists());
        if !owner_alive {
            let _ = std::fs::remove_file(self.lock_file());
            let _ = std::fs::remove_file(self.socket_file());
        }
    }
}

fn claim_file(number: u32) -> PathBuf {
    PathBuf::from(format!("/tmp/.clawfleet-display-{number}.claim"))
}

fn lock_file(number: u32) -> PathBuf {
    PathBuf::from(format!("/tmp/.X{number}-lock"))
}

fn socket_file(number: u32) -> PathBuf {
    Path::new(X11_SOCKET_DIR).join(format!("X{number}"))
}

fn display_is_free(number: u32) -> bool {
    std::fs::symlink_metadata(lock_file(number)).is_err()
        && std::fs::symlink_metadata(socket_file(number)).is_err()
}
