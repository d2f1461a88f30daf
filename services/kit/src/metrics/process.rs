//! Process metrics under their conventional names (`process_cpu_seconds_total`,
//! `process_resident_memory_bytes`, `process_open_fds`, `process_max_fds`,
//! `process_start_time_seconds`), read from `/proc` at each scrape. No maintained
//! crate provides them for `prometheus-client`; the Go and Python clients export the
//! same names, so existing dashboards work unchanged. Off Linux nothing is exported.

use prometheus_client::{
    collector::Collector,
    encoding::{DescriptorEncoder, EncodeMetric},
    metrics::{counter::ConstCounter, gauge::ConstGauge},
};

/// Linux reports `/proc/<pid>/stat` times in USER_HZ ticks, fixed at 100 for userspace
/// on every architecture (the kernel's own HZ may differ; the ABI does not).
const TICKS_PER_SECOND: f64 = 100.0;

/// What one reading of `/proc` found.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ProcessSample {
    pub cpu_seconds: f64,
    pub resident_bytes: f64,
    pub start_time_seconds: f64,
    pub open_fds: f64,
    pub max_fds: Option<f64>,
}

/// Reads the sample of this process; `None` where `/proc` is missing or unreadable.
pub fn sample() -> Option<ProcessSample> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let boot = std::fs::read_to_string("/proc/stat").ok()?;
    let times = parse_stat(&stat)?;
    let open_fds = std::fs::read_dir("/proc/self/fd").ok()?.count() as f64;
    let limits = std::fs::read_to_string("/proc/self/limits").unwrap_or_default();
    Some(ProcessSample {
        cpu_seconds: times.cpu_ticks / TICKS_PER_SECOND,
        resident_bytes: parse_resident_kib(&status)? * 1024.0,
        start_time_seconds: parse_boot_time(&boot)? + times.start_ticks / TICKS_PER_SECOND,
        open_fds,
        max_fds: parse_max_open_files(&limits),
    })
}

/// CPU time (user + system) and start time since boot, in ticks, from `/proc/<pid>/stat`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct StatTimes {
    pub cpu_ticks: f64,
    pub start_ticks: f64,
}

/// Fields after the command name, which is in parentheses and may itself hold spaces
/// and parentheses: the last `)` ends it. utime and stime are fields 14 and 15,
/// starttime is field 22 (`man 5 proc`).
pub fn parse_stat(stat: &str) -> Option<StatTimes> {
    let rest = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // `rest` starts at field 3 (state).
    let field = |number: usize| fields.get(number - 3)?.parse::<f64>().ok();
    Some(StatTimes {
        cpu_ticks: field(14)? + field(15)?,
        start_ticks: field(22)?,
    })
}

/// `VmRSS` of `/proc/<pid>/status`, in KiB.
pub fn parse_resident_kib(status: &str) -> Option<f64> {
    let line = status.lines().find(|line| line.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// `btime` of `/proc/stat`: the boot time in seconds since the epoch.
pub fn parse_boot_time(proc_stat: &str) -> Option<f64> {
    let line = proc_stat.lines().find(|line| line.starts_with("btime "))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// The soft limit on open files from `/proc/<pid>/limits`; `None` when unlimited.
pub fn parse_max_open_files(limits: &str) -> Option<f64> {
    let line = limits
        .lines()
        .find(|line| line.starts_with("Max open files"))?;
    line.split_whitespace().nth(3)?.parse().ok()
}

/// Encodes a fresh [`sample`] at each scrape.
#[derive(Debug, Clone, Copy, Default)]
pub struct ProcessCollector;

impl Collector for ProcessCollector {
    fn encode(&self, mut encoder: DescriptorEncoder<'_>) -> Result<(), std::fmt::Error> {
        let Some(sample) = sample() else {
            return Ok(());
        };
        let cpu = ConstCounter::new(sample.cpu_seconds);
        cpu.encode(encoder.encode_descriptor(
            "process_cpu_seconds",
            "Total user and system CPU time spent in seconds.",
            None,
            cpu.metric_type(),
        )?)?;
        let mut gauges = vec![
            (
                "process_resident_memory_bytes",
                "Resident memory size in bytes.",
                sample.resident_bytes,
            ),
            (
                "process_start_time_seconds",
                "Start time of the process since unix epoch in seconds.",
                sample.start_time_seconds,
            ),
            (
                "process_open_fds",
                "Number of open file descriptors.",
                sample.open_fds,
            ),
        ];
        if let Some(max_fds) = sample.max_fds {
            gauges.push((
                "process_max_fds",
                "Maximum number of open file descriptors.",
                max_fds,
            ));
        }
        for (name, help, value) in gauges {
            let gauge = ConstGauge::new(value);
            gauge.encode(encoder.encode_descriptor(name, help, None, gauge.metric_type())?)?;
        }
        Ok(())
    }
}

#[cfg(test)]
#[path = "process_tests.rs"]
mod tests;
