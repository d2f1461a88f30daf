//! The runner's child processes, and the reaping of every one of them.
//!
//! In a pod the runner is PID 1: orphans of the whole container are handed to it, and
//! nobody else reaps them. So the runner waits for its children itself instead of through
//! `tokio::process`: one table of the children it started, one reaper woken by SIGCHLD
//! (and a slow tick, in case a signal was merged), and, when the table adopts orphans,
//! `waitpid(-1)` reaps whatever else exits. Spawning and reaping share the table's lock,
//! so a child that exits at once is never reaped before it is known.

use std::{
    collections::HashMap,
    io,
    os::unix::process::ExitStatusExt,
    process::ExitStatus,
    sync::{Arc, Mutex, MutexGuard, Weak},
    time::Duration,
};

use nix::{
    errno::Errno,
    sys::{
        signal::{Signal, kill},
        wait::{WaitPidFlag, WaitStatus, waitpid},
    },
    unistd::Pid,
};
use tokio::{
    signal::unix::{SignalKind, signal},
    sync::watch,
    task::JoinHandle,
};

/// How often the reaper looks even without a SIGCHLD.
const REAP_TICK: Duration = Duration::from_millis(500);

type Table = HashMap<i32, watch::Sender<Option<ExitStatus>>>;

/// The children of this process that it started through [`Children::spawn`].
pub struct Children {
    table: Arc<Mutex<Table>>,
    adopts_orphans: bool,
    reaper: JoinHandle<()>,
}

/// One child; killed when dropped while it still runs.
#[derive(Debug)]
pub struct ChildProcess {
    name: String,
    pid: i32,
    status: watch::Receiver<Option<ExitStatus>>,
    table: Weak<Mutex<Table>>,
}

impl Children {
    /// Reaps only the children it started: safe in any process (tests, or beside
    /// `tokio::process`, whose children it never touches).
    pub fn new() -> io::Result<Self> {
        Self::start(false)
    }

    /// Reaps every child of this process, orphans included, and makes this process the
    /// reaper of its descendants' orphans (a child subreaper), as PID 1 of a container
    /// is. Only for a process in which nothing else waits for children: `clawfleet
    /// instance run`.
    pub fn adopting_orphans() -> io::Result<Self> {
        nix::sys::prctl::set_child_subreaper(true).map_err(io::Error::from)?;
        Self::start(true)
    }

    fn start(adopts_orphans: bool) -> io::Result<Self> {
        let mut sigchld = signal(SignalKind::child())?;
        let table: Arc<Mutex<Table>> = Arc::default();
        let weak = Arc::downgrade(&table);
        let reaper = tokio::spawn(async move {
            loop {
                tokio::select! {
                    _ = sigchld.recv() => {}
                    _ = tokio::time::sleep(REAP_TICK) => {}
                }
                let Some(table) = weak.upgrade() else {
                    return;
                };
                reap(&mut lock(&table), adopts_orphans);
            }
        });
        Ok(Self {
            table,
            adopts_orphans,
            reaper,
        })
    }

    /// Starts `command` as a child named `name` (for logs and errors).
    pub fn spawn(
        &self,
        name: &str,
        command: &mut std::process::Command,
    ) -> io::Result<ChildProcess> {
        let mut table = lock(&self.table);
        let child = command.spawn()?;
        let pid = i32::try_from(child.id()).map_err(io::Error::other)?;
        // The std handle only holds the pid: the table waits for the child.
        drop(child);
        let (sender, status) = watch::channel(None);
        table.insert(pid, sender);
        Ok(ChildProcess {
            name: name.to_owned(),
            pid,
            status,
            table: Arc::downgrade(&self.table),
        })
    }

    /// Reaps what has exited now (the reaper task does this on every SIGCHLD).
    pub fn reap_now(&self) {
        reap(&mut lock(&self.table), self.adopts_orphans);
    }

    /// Ends every process left: the children still in the table and, when adopting
    /// orphans, every other child of this process (the gateway's workers that outlived
    /// it). SIGTERM first, SIGKILL after `grace`; returns once all are reaped.
    pub async fn end_all(&self, grace: Duration) {
        let deadline = tokio::time::Instant::now() + grace;
        let mut signal = Signal::SIGTERM;
        loop {
            self.reap_now();
            let left = self.live_pids();
            if left.is_empty() {
                return;
            }
            for pid in &left {
                let _ = kill(Pid::from_raw(*pid), signal);
            }
            if tokio::time::Instant::now() >= deadline {
                signal = Signal::SIGKILL;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Pids of the children not reaped yet, adopted ones included.
    fn live_pids(&self) -> Vec<i32> {
        let mut pids: Vec<i32> = lock(&self.table).keys().copied().collect();
        if self.adopts_orphans {
            for pid in direct_children() {
                if !pids.contains(&pid) {
                    pids.push(pid);
                }
            }
        }
        pids
    }
}

impl Drop for Children {
    fn drop(&mut self) {
        self.reaper.abort();
    }
}

impl ChildProcess {
    pub fn pid(&self) -> u32 {
        self.pid.unsigned_abs()
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// How it exited, once it has.
    pub fn status(&self) -> Option<ExitStatus> {
        *self.status.borrow()
    }

    /// Waits until it has exited. A child whose table is gone counts as killed.
    pub async fn wait(&self) -> ExitStatus {
        let mut status = self.status.clone();
        let exited = match status.wait_for(Option::is_some).await {
            Ok(status) => *status,
            Err(_) => self.status(),
        };
        exited.unwrap_or_else(killed)
    }

    /// Sends `signal` unless it has already been reaped (its pid may be another
    /// process's by then).
    pub fn signal(&self, signal: Signal) {
        let Some(table) = self.table.upgrade() else {
            return;
        };
        let table = lock(&table);
        if table.contains_key(&self.pid) {
            let _ = kill(Pid::from_raw(self.pid), signal);
        }
    }
}

impl Drop for ChildProcess {
    fn drop(&mut self) {
        self.signal(Signal::SIGKILL);
    }
}

fn lock(table: &Mutex<Table>) -> MutexGuard<'_, Table> {
    table
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn killed() -> ExitStatus {
    ExitStatus::from_raw(Signal::SIGKILL as i32)
}

fn reap(table: &mut Table, adopts_orphans: bool) {
    if adopts_orphans {
        loop {
            match waitpid(Pid::from_raw(-1), Some(WaitPidFlag::WNOHANG)) {
                Ok(WaitStatus::StillAlive) | Err(Errno::ECHILD) => return,
                Ok(status) => deliver(table, status),
                Err(Errno::EINTR) => continue,
                Err(error) => {
                    tracing::warn!(%error, "waitpid failed");
                    return;
                }
            }
        }
    }
    let pids: Vec<i32> = table.keys().copied().collect();
    for pid in pids {
        match waitpid(Pid::from_raw(pid), Some(WaitPidFlag::WNOHANG)) {
            Ok(WaitStatus::StillAlive) => {}
            Ok(status) => deliver(table, status),
            // Someone else waited for it: it is gone, how is not known.
            Err(Errno::ECHILD) => {
                if let Some(sender) = table.remove(&pid) {
                    let _ = sender.send(Some(killed()));
                }
            }
            Err(_) => {}
        }
    }
}

fn deliver(table: &mut Table, status: WaitStatus) {
    let (pid, exit) = match status {
        WaitStatus::Exited(pid, code) => (pid, ExitStatus::from_raw((code & 0xff) << 8)),
        WaitStatus::Signaled(pid, signal, core_dumped) => (
            pid,
            ExitStatus::from_raw(signal as i32 | if core_dumped { 0x80 } else { 0 }),
        ),
        _ => return,
    };
    match table.remove(&pid.as_raw()) {
        Some(sender) => {
            let _ = sender.send(Some(exit));
        }
        None => tracing::debug!(pid = pid.as_raw(), %exit, "reaped an orphaned process"),
    }
}

/// Pids whose parent is this process.
fn direct_children() -> Vec<i32> {
    let own = std::process::id().to_string();
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|entry| entry.file_name().to_str()?.parse::<i32>().ok())
        .filter(|pid| {
            std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
                // `pid (comm) state ppid …`; comm may hold spaces and parentheses.
                stat.rsplit_once(')')
                    .and_then(|(_, rest)| rest.split_whitespace().nth(1))
                    == Some(own.as_str())
            })
        })
        .collect()
}

/// The shell convention for an exit status: the code, or 128 + the signal.
pub fn exit_code(status: ExitStatus) -> u8 {
    match (status.code(), status.signal()) {
        (Some(code), _) => u8::try_from(code & 0xff).unwrap_or(1),
        (None, Some(signal)) => u8::try_from(128 + (signal & 0x7f)).unwrap_or(1),
        (None, None) => 1,
    }
}

/// `exited with status 1`, `was killed by signal 9`.
pub fn describe_exit(status: ExitStatus) -> String {
    match (status.code(), status.signal()) {
        (Some(code), _) => format!("exited with status {code}"),
        (None, Some(signal)) => format!("was killed by signal {signal}"),
        (None, None) => "exited".to_owned(),
    }
}

#[cfg(test)]
mod tests;
