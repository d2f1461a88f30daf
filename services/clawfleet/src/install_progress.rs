//! One line per install step for a person at a terminal: what is being installed, how
//! much has landed on disk and for how long, updated in place while npm works (npm's
//! own per-request log goes to a file). Without a terminal only the final line of each
//! step is printed.

use std::{
    io::{IsTerminal, Write},
    path::{Path, PathBuf},
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    thread::JoinHandle,
    time::{Duration, Instant},
};

/// Steps of a first-use install.
const STEPS: u32 = 3;
/// How often the line is redrawn (each redraw walks the install folder).
const REDRAW_EVERY: Duration = Duration::from_secs(1);

/// An install step in progress.
pub struct Step {
    label: String,
    index: u32,
    folder: PathBuf,
    size_before: u64,
    started: Instant,
    done: Arc<AtomicBool>,
    ticker: Option<JoinHandle<()>>,
}

impl Step {
    /// Starts step `index` installing `label` into `folder`.
    pub fn new(index: u32, label: String, folder: &Path) -> Step {
        let size_before = folder_size(folder);
        let started = Instant::now();
        let done = Arc::new(AtomicBool::new(false));
        let ticker = std::io::stderr().is_terminal().then(|| {
            let (label, folder, done) = (label.clone(), folder.to_path_buf(), done.clone());
            std::thread::spawn(move || {
                while !done.load(Ordering::Relaxed) {
                    let grown = folder_size(&folder).saturating_sub(size_before);
                    let line = progress_line(index, &label, grown, started.elapsed(), "…");
                    let mut stderr = std::io::stderr().lock();
                    let _ = write!(stderr, "\r\x1b[2K{line}");
                    let _ = stderr.flush();
                    drop(stderr);
                    std::thread::sleep(REDRAW_EVERY);
                }
            })
        });
        Step {
            label,
            index,
            folder: folder.to_path_buf(),
            size_before,
            started,
            done,
            ticker,
        }
    }

    /// Ends the step with its final line, passing `outcome` through.
    pub fn finish<T, E>(mut self, outcome: Result<T, E>) -> Result<T, E> {
        self.done.store(true, Ordering::Relaxed);
        let drew_in_place = self.ticker.is_some();
        if let Some(ticker) = self.ticker.take() {
            let _ = ticker.join();
        }
        let grown = folder_size(&self.folder).saturating_sub(self.size_before);
        let verdict = if outcome.is_ok() { "done" } else { "failed" };
        let line = progress_line(
            self.index,
            &self.label,
            grown,
            self.started.elapsed(),
            verdict,
        );
        if drew_in_place {
            eprintln!("\r\x1b[2K{line}");
        } else {
            eprintln!("{line}");
        }
        outcome
    }
}

fn progress_line(index: u32, label: &str, bytes: u64, elapsed: Duration, state: &str) -> String {
    format!(
        "clawfleet: [{index}/{STEPS}] {label}: {} in {:.0} s {state}",
        human_size(bytes),
        elapsed.as_secs_f64()
    )
}

/// `12.3 MB`-style sizes (decimal units, as npm and disk tools print them).
pub fn human_size(bytes: u64) -> String {
    const UNITS: [&str; 4] = ["B", "kB", "MB", "GB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1000.0 && unit < UNITS.len() - 1 {
        value /= 1000.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

/// Bytes of the regular files under `folder` (symlinks are not followed).
pub fn folder_size(folder: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(folder) else {
        return 0;
    };
    entries
        .flatten()
        .map(|entry| match entry.file_type() {
            Ok(kind) if kind.is_dir() => folder_size(&entry.path()),
            Ok(kind) if kind.is_file() => entry.metadata().map_or(0, |meta| meta.len()),
            _ => 0,
        })
        .sum()
}

/// The last lines of a log file, for an error message.
pub fn log_tail(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(20)..].join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_read_like_a_person_would_write_them() {
        assert_eq!(human_size(999), "999 B");
        assert_eq!(human_size(48_300_000), "48.3 MB");
        assert_eq!(human_size(1_250_000_000), "1.2 GB");
    }

    #[test]
    fn a_step_line_names_the_step_its_size_and_time() {
        let line = progress_line(
            2,
            "openclaw 1.0",
            12_500_000,
            Duration::from_secs(41),
            "done",
        );
        assert_eq!(line, "clawfleet: [2/3] openclaw 1.0: 12.5 MB in 41 s done");
    }

    #[test]
    fn folder_sizes_count_nested_files() {
        let folder = tempfile::tempdir().unwrap();
        std::fs::create_dir(folder.path().join("nested")).unwrap();
        std::fs::write(folder.path().join("a"), [0u8; 10]).unwrap();
        std::fs::write(folder.path().join("nested").join("b"), [0u8; 5]).unwrap();
        assert_eq!(folder_size(folder.path()), 15);
    }
}
