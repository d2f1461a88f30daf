//! Benchmark (not a test): backup and restore throughput of a 500 MB state directory,
//! side by side with the plain `tar | gzip` of the same directory (and `gzip -dc | tar -x`
//! back) as the baseline. The backup runs the real pipeline: tar, gzip level 1,
//! XChaCha20-Poly1305 STREAM sealing, SHA-256, and a multipart upload into the directory
//! store; the restore downloads, authenticates, checks and unpacks
//! (docs/product/backups.md).
//!
//! The state is half text (JSON-like session lines, which compress well) and half
//! pseudo-random bytes (like SQLite pages and media, which do not), in files of 1–8 MB.
//!
//! Run: `cargo build --release -p clawfleet-tests && target/release/bench-backup`
//! (`BENCH_BACKUP_MB` changes the size).

use std::{
    io::Write,
    path::Path,
    process::Command,
    sync::Arc,
    time::{Duration, Instant},
};

use clawfleet_backup::{
    key::PlatformKey,
    manifest::BackupReason,
    operations::{NewBackup, create_backup, unpack_backup},
    store::{BackupStore, StoreConfig},
};

const DEFAULT_MEGABYTES: usize = 500;
const MB: usize = 1024 * 1024;

fn main() -> anyhow::Result<()> {
    let megabytes = std::env::var("BENCH_BACKUP_MB")
        .ok()
        .and_then(|text| text.parse().ok())
        .unwrap_or(DEFAULT_MEGABYTES);
    let scratch = tempfile::tempdir()?;
    let state = scratch.path().join("state");
    let written = fill_state_dir(&state, megabytes)?;
    println!("state dir: {} MB in {} files", written / MB, megabytes / 4);

    let baseline_archive = scratch.path().join("baseline.tar.gz");
    let baseline_backup = timed(|| {
        shell(&format!(
            "tar -C {} -cf - . | gzip -c > {}",
            state.display(),
            baseline_archive.display()
        ))
    })?;
    let baseline_target = scratch.path().join("baseline-restore");
    std::fs::create_dir_all(&baseline_target)?;
    let baseline_restore = timed(|| {
        shell(&format!(
            "gzip -dc {} | tar -C {} -xf -",
            baseline_archive.display(),
            baseline_target.display()
        ))
    })?;
    let baseline_bytes = std::fs::metadata(&baseline_archive)?.len();
    std::fs::remove_dir_all(&baseline_target)?;
    std::fs::remove_file(&baseline_archive)?;

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let key = Arc::new(PlatformKey::from_hex(&"ab".repeat(32).into()).expect("key"));
    let store = BackupStore::open(&StoreConfig::Local {
        dir: scratch.path().join("store"),
    })?;
    let started = Instant::now();
    let manifest = runtime.block_on(create_backup(
        &store,
        key.clone(),
        &state,
        NewBackup {
            instance_id: "bench".to_owned(),
            gateway_version: "2026.9.6".to_owned(),
            reason: BackupReason::Manual,
        },
    ))?;
    let backup = started.elapsed();
    let target = scratch.path().join("restore");
    std::fs::create_dir_all(&target)?;
    let started = Instant::now();
    runtime.block_on(unpack_backup(&store, key, &manifest, &target))?;
    let restore = started.elapsed();

    let throughput = |elapsed: Duration| written as f64 / MB as f64 / elapsed.as_secs_f64();
    println!(
        "{:<28} {:>10} {:>10} {:>12}",
        "", "seconds", "MB/s", "archive MB"
    );
    let row = |name: &str, elapsed: Duration, bytes: u64| {
        println!(
            "{name:<28} {:>10.2} {:>10.1} {:>12.1}",
            elapsed.as_secs_f64(),
            throughput(elapsed),
            bytes as f64 / MB as f64
        )
    };
    row("baseline tar | gzip", baseline_backup, baseline_bytes);
    row("clawfleet backup", backup, manifest.archive_bytes);
    row(
        "baseline gzip -dc | tar -x",
        baseline_restore,
        baseline_bytes,
    );
    row("clawfleet restore", restore, manifest.archive_bytes);
    println!(
        "ratio vs baseline (>1 is faster): backup {:.2}x, restore {:.2}x; archive size {:.2}x of baseline",
        baseline_backup.as_secs_f64() / backup.as_secs_f64(),
        baseline_restore.as_secs_f64() / restore.as_secs_f64(),
        manifest.archive_bytes as f64 / baseline_bytes as f64
    );
    Ok(())
}

fn timed(work: impl FnOnce() -> anyhow::Result<()>) -> anyhow::Result<Duration> {
    let started = Instant::now();
    work()?;
    Ok(started.elapsed())
}

fn shell(script: &str) -> anyhow::Result<()> {
    let status = Command::new("bash")
        .args(["-c", &format!("set -o pipefail; {script}")])
        .status()?;
    anyhow::ensure!(status.success(), "{script} failed: {status}");
    Ok(())
}

/// Writes `megabytes` of state in 4 MB files alternating text and noise; returns bytes.
fn fill_state_dir(state: &Path, megabytes: usize) -> anyhow::Result<usize> {
    let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    let mut written = 0;
    for index in 0..megabytes / 4 {
        let dir = state.join(format!("agents/agent-{}/sessions", index % 8));
        std::fs::create_dir_all(&dir)?;
        let mut file = std::io::BufWriter::new(std::fs::File::create(
            dir.join(format!("file-{index}.dat")),
        )?);
        let mut remaining = 4 * MB;
        while remaining > 0 {
            let chunk: Vec<u8> = if index % 2 == 0 {
                format!(
                    "{{\"role\":\"assistant\",\"turn\":{},\"text\":\"reply number {} about topic {}\"}}\n",
                    next() % 100_000,
                    next() % 1_000,
                    next() % 50
                )
                .into_bytes()
            } else {
                (0..8).flat_map(|_| next().to_le_bytes()).collect()
            };
            let taken = chunk.len().min(remaining);
            file.write_all(&chunk[..taken])?;
            remaining -= taken;
        }
        file.flush()?;
        written += 4 * MB;
    }
    Ok(written)
}
