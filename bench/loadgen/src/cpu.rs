//! CPU time of the broker process (and of this process) from `/proc/<pid>/stat`.
//!
//! The client shares the machine with the broker, so wall-clock throughput alone says little
//! about the broker's efficiency; CPU-seconds per GB does.

use crate::report::Report;

/// Linux reports utime/stime in clock ticks; USER_HZ is 100 on every mainstream architecture.
const TICKS_PER_SECOND: f64 = 100.0;

pub struct Sample {
    pub broker_seconds: f64,
    pub self_seconds: f64,
}

impl Sample {
    pub fn take(pid: Option<u32>) -> Option<Sample> {
        let pid = pid?;
        Some(Sample {
            broker_seconds: cpu_seconds(&format!("/proc/{pid}/stat"))?,
            self_seconds: cpu_seconds("/proc/self/stat").unwrap_or(0.0),
        })
    }
}

/// utime + stime (fields 14 and 15; the command name in field 2 may contain spaces, so count
/// from the closing parenthesis).
fn cpu_seconds(path: &str) -> Option<f64> {
    let stat = std::fs::read_to_string(path).ok()?;
    let rest = &stat[stat.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    let utime: f64 = f.get(11)?.parse().ok()?;
    let stime: f64 = f.get(12)?.parse().ok()?;
    Some((utime + stime) / TICKS_PER_SECOND)
}

pub fn report(r: &mut Report, before: &Option<Sample>, after: &Option<Sample>, bytes: u64) {
    if let (Some(b), Some(a)) = (before, after) {
        let broker = a.broker_seconds - b.broker_seconds;
        r.num("broker_cpu_s", broker)
            .num("client_cpu_s", a.self_seconds - b.self_seconds);
        if bytes > 0 {
            r.num("broker_cpu_s_per_gb", broker / (bytes as f64 / 1e9));
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
