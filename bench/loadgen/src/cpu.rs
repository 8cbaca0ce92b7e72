//! CPU time of the broker process (and of this process) from `/proc/<pid>/stat`.
//!
//! The client shares the machine with the broker, so wall-clock throughput alone says little
//! about the broker's efficiency; CPU-seconds per GB does.

use crate::report::Report;

/// Linux reports utime/stime in clock ticks; USER_HZ is 100 on every mainstream architecture.
const TICKS_PER_SECOND: f64 = 100.0;

pub struct Sample {
    pub broker_seconds: f64,
    /// The broker's share of `broker_seconds` spent in the kernel (stime): on its produce path,
    /// mostly the copy of every written byte into the page cache, which any broker writing
    /// through the page cache pays alike.
    pub broker_system_seconds: f64,
    pub self_seconds: f64,
}

impl Sample {
    pub fn take(pid: Option<u32>) -> Option<Sample> {
        let pid = pid?;
        let (utime, stime) = cpu_seconds(&format!("/proc/{pid}/stat"))?;
        Some(Sample {
            broker_seconds: utime + stime,
            broker_system_seconds: stime,
            self_seconds: cpu_seconds("/proc/self/stat").map_or(0.0, |(u, s)| u + s),
        })
    }
}

/// (utime, stime) in seconds (fields 14 and 15; the command name in field 2 may contain
/// spaces, so count from the closing parenthesis).
fn cpu_seconds(path: &str) -> Option<(f64, f64)> {
    let stat = std::fs::read_to_string(path).ok()?;
    let rest = &stat[stat.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    let utime: f64 = f.get(11)?.parse().ok()?;
    let stime: f64 = f.get(12)?.parse().ok()?;
    Some((utime / TICKS_PER_SECOND, stime / TICKS_PER_SECOND))
}

pub fn report(r: &mut Report, before: &Option<Sample>, after: &Option<Sample>, bytes: u64) {
    if let (Some(b), Some(a)) = (before, after) {
        let broker = a.broker_seconds - b.broker_seconds;
        let system = a.broker_system_seconds - b.broker_system_seconds;
        r.num("broker_cpu_s", broker)
            .num("broker_system_cpu_s", system)
            .num("client_cpu_s", a.self_seconds - b.self_seconds);
        if bytes > 0 {
            let gb = bytes as f64 / 1e9;
            r.num("broker_cpu_s_per_gb", broker / gb)
                .num("broker_user_cpu_s_per_gb", (broker - system) / gb)
                .num("broker_system_cpu_s_per_gb", system / gb);
        }
    }
}

/// The broker's CPU over an idle interval of `seconds`, as `<prefix>cpu_s` and `<prefix>cpu_pct`.
pub fn idle_report(
    r: &mut Report,
    prefix: &str,
    before: &Option<Sample>,
    after: &Option<Sample>,
    seconds: f64,
) {
    if let (Some(b), Some(a)) = (before, after) {
        let cpu_s = a.broker_seconds - b.broker_seconds;
        r.num(&format!("{prefix}cpu_s"), cpu_s)
            .num(&format!("{prefix}cpu_pct"), 100.0 * cpu_s / seconds);
    }
}
