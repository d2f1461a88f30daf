use super::*;

#[test]
fn stat_fields_are_counted_after_a_command_name_holding_spaces_and_parentheses() {
    // pid (comm) state ppid pgrp session tty tpgid flags minflt cminflt majflt cmajflt
    // utime stime cutime cstime priority nice threads itrealvalue starttime ...
    let stat = "42 (a (b) c) S 1 42 42 0 -1 4194560 10 0 0 0 250 50 7 7 20 0 4 0 12345 1000 300";
    assert_eq!(
        parse_stat(stat),
        Some(StatTimes {
            cpu_ticks: 300.0,
            start_ticks: 12345.0
        })
    );
    assert_eq!(parse_stat("42 (truncated) S 1"), None);
}

#[test]
fn resident_memory_boot_time_and_fd_limit_come_from_their_lines() {
    assert_eq!(
        parse_resident_kib("Name:\tx\nVmRSS:\t  2048 kB\n"),
        Some(2048.0)
    );
    assert_eq!(
        parse_boot_time("cpu 1 2 3\nbtime 1700000000\n"),
        Some(1.7e9)
    );
    let limits = "Limit                     Soft Limit           Hard Limit           Units\n\
                  Max open files            1024                 4096                 files\n";
    assert_eq!(parse_max_open_files(limits), Some(1024.0));
    let unlimited = "Max open files            unlimited            unlimited            files\n";
    assert_eq!(parse_max_open_files(unlimited), None);
}

#[test]
fn this_process_has_a_plausible_sample() {
    let sample = sample().expect("/proc is readable on Linux");
    assert!(sample.resident_bytes > 1024.0 * 1024.0, "{sample:?}");
    assert!(sample.open_fds >= 3.0, "{sample:?}");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    // Started within the last day, not in the future (ticks are 1/100 s).
    assert!(sample.start_time_seconds <= now + 1.0, "{sample:?}");
    assert!(sample.start_time_seconds > now - 86_400.0, "{sample:?}");
}
