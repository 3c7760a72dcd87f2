//! The standard Prometheus process metrics (`process_cpu_seconds_total`,
//! `process_resident_memory_bytes`, `process_open_fds`, …), read from
//! `/proc` at scrape time and appended to `/metrics`. Nothing is kept
//! between scrapes; off Linux the section is empty.

use std::fmt::Write;

/// Clock ticks per second of `/proc/<pid>/stat` (USER_HZ, fixed at 100 in
/// Linux's user-space ABI).
const TICKS_PER_SECOND: f64 = 100.0;

/// The process metrics in the Prometheus text format.
pub(crate) fn render() -> String {
    let mut out = String::new();
    let Some(sample) = Sample::read() else {
        return out;
    };
    let mut metric = |name: &str, kind: &str, help: &str, value: f64| {
        // Writing to a String cannot fail.
        let _ = write!(
            out,
            "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}\n"
        );
    };
    metric(
        "process_cpu_seconds_total",
        "counter",
        "Total user and system CPU time spent in seconds.",
        sample.cpu_seconds,
    );
    metric(
        "process_resident_memory_bytes",
        "gauge",
        "Resident memory size in bytes.",
        sample.resident_bytes,
    );
    metric(
        "process_virtual_memory_bytes",
        "gauge",
        "Virtual memory size in bytes.",
        sample.virtual_bytes,
    );
    metric(
        "process_open_fds",
        "gauge",
        "Number of open file descriptors.",
        sample.open_fds,
    );
    if let Some(max) = sample.max_fds {
        metric(
            "process_max_fds",
            "gauge",
            "Maximum number of open file descriptors.",
            max,
        );
    }
    metric(
        "process_threads",
        "gauge",
        "Number of OS threads in the process.",
        sample.threads,
    );
    if let Some(start) = sample.start_time_seconds {
        metric(
            "process_start_time_seconds",
            "gauge",
            "Start time of the process since unix epoch in seconds.",
            start,
        );
    }
    out
}

struct Sample {
    cpu_seconds: f64,
    resident_bytes: f64,
    virtual_bytes: f64,
    open_fds: f64,
    max_fds: Option<f64>,
    threads: f64,
    start_time_seconds: Option<f64>,
}

impl Sample {
    fn read() -> Option<Sample> {
        let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
        let status = std::fs::read_to_string("/proc/self/status").ok()?;
        // Fields after the command name, which is in parentheses and may
        // itself hold spaces: state is field 3, so index 0 here.
        let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
        let field = |n: usize| fields.get(n - 3).and_then(|v| v.parse::<f64>().ok());
        // `Key:  value [kB]` of /proc/self/status.
        let number = |key: &str| {
            status
                .lines()
                .find_map(|line| line.strip_prefix(key))
                .and_then(|rest| rest.split_whitespace().next())
                .and_then(|v| v.parse::<f64>().ok())
        };
        let boot_time = std::fs::read_to_string("/proc/stat").ok().and_then(|s| {
            s.lines()
                .find_map(|line| line.strip_prefix("btime "))
                .and_then(|v| v.trim().parse::<f64>().ok())
        });
        let max_fds = std::fs::read_to_string("/proc/self/limits").ok().and_then(|s| {
            s.lines()
                .find(|line| line.starts_with("Max open files"))
                .and_then(|line| line.split_whitespace().nth(3))
                .and_then(|v| v.parse::<f64>().ok())
        });
        Some(Sample {
            cpu_seconds: (field(14)? + field(15)?) / TICKS_PER_SECOND,
            resident_bytes: number("VmRSS:").unwrap_or(0.0) * 1024.0,
            virtual_bytes: number("VmSize:").unwrap_or(0.0) * 1024.0,
            open_fds: std::fs::read_dir("/proc/self/fd").map_or(0, |d| d.count()) as f64,
            max_fds,
            threads: number("Threads:").unwrap_or(0.0),
            start_time_seconds: boot_time
                .zip(field(22))
                .map(|(boot, ticks)| boot + ticks / TICKS_PER_SECOND),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    #[cfg(target_os = "linux")]
    fn the_process_metrics_describe_this_process() {
        let text = render();
        let value = |name: &str| -> f64 {
            text.lines()
                .find_map(|line| line.strip_prefix(&format!("{name} ")))
                .and_then(|v| v.parse().ok())
                .unwrap_or_else(|| panic!("{name} missing in\n{text}"))
        };
        assert!(text.contains("# TYPE process_cpu_seconds_total counter\n"));
        assert!(value("process_resident_memory_bytes") > 1_000_000.0);
        assert!(value("process_virtual_memory_bytes") >= value("process_resident_memory_bytes"));
        assert!(value("process_open_fds") >= 3.0);
        assert!(value("process_max_fds") >= value("process_open_fds"));
        assert!(value("process_threads") >= 1.0);
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs_f64();
        let start = value("process_start_time_seconds");
        assert!(
            start <= now + 1.0 && start > now - 24.0 * 3600.0,
            "{start} vs {now}"
        );
    }
}
