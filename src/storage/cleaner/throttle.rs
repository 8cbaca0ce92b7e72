//! Bounding the cleaner's I/O rate (Kafka's `log.cleaner.io.max.bytes.per.second`, its
//! `Throttler`): bytes read and written are counted in windows of `CHECK_INTERVAL`; when a
//! window has lasted that long and its rate is above the bound, the cleaner sleeps until the
//! window's average is the bound, and a new window starts after the sleep.
//!
//! `Window` is the decision, sans-IO (fed `now`, returns how long to sleep); `Throttle` sleeps
//! it, in slices, and stops sleeping for good once the broker is stopping, so a throttled pass
//! never holds up a shutdown for longer than an unthrottled one would.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// How long a window lasts before its rate is checked (Kafka's 300 ms).
pub const CHECK_INTERVAL: Duration = Duration::from_millis(300);
/// Longest single sleep between two looks at the stop flag.
const SLEEP_SLICE: Duration = Duration::from_millis(50);

/// The rate decision: bytes seen since the window began.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Window {
    /// Bytes per second; `None`: unbounded.
    bytes_per_sec: Option<f64>,
    start: Instant,
    bytes: u64,
}

impl Window {
    pub fn new(bytes_per_sec: Option<f64>, now: Instant) -> Window {
        Window {
            bytes_per_sec: bytes_per_sec.filter(|r| *r > 0.0 && r.is_finite()),
            start: now,
            bytes: 0,
        }
    }

    /// Counts `n` bytes at `now`; returns how long to sleep (zero: go on). A window that has
    /// lasted `CHECK_INTERVAL` ends here; the next one starts when the sleep ends.
    pub fn observe(&mut self, n: u64, now: Instant) -> Duration {
        let Some(rate) = self.bytes_per_sec else {
            return Duration::ZERO;
        };
        self.bytes = self.bytes.saturating_add(n);
        let elapsed = now.saturating_duration_since(self.start);
        if elapsed <= CHECK_INTERVAL || self.bytes == 0 {
            return Duration::ZERO;
        }
        let due = Duration::try_from_secs_f64(self.bytes as f64 / rate).unwrap_or(Duration::MAX);
        let sleep = due.saturating_sub(elapsed);
        self.start = now.checked_add(sleep).unwrap_or(now);
        self.bytes = 0;
        sleep
    }
}

/// `Window` with the sleeping done, interrupted by `stop`.
#[derive(Debug)]
pub struct Throttle {
    window: Window,
    stop: Option<Arc<AtomicBool>>,
}

impl Throttle {
    pub fn new(bytes_per_sec: Option<f64>, stop: Option<Arc<AtomicBool>>) -> Throttle {
        Throttle {
            window: Window::new(bytes_per_sec, Instant::now()),
            stop,
        }
    }

    /// Counts `n` bytes of I/O and sleeps while the rate is above the bound.
    pub fn add(&mut self, n: u64) {
        let sleep = self.window.observe(n, Instant::now());
        let until = Instant::now() + sleep.min(Duration::from_secs(24 * 3600));
        loop {
            if self
                .stop
                .as_ref()
                .is_some_and(|s| s.load(Ordering::Acquire))
            {
                self.window.bytes_per_sec = None;
                return;
            }
            let left = until.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return;
            }
            std::thread::sleep(left.min(SLEEP_SLICE));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn unbounded_never_sleeps() {
        let t0 = Instant::now();
        for rate in [None, Some(0.0), Some(-1.0), Some(f64::INFINITY)] {
            let mut w = Window::new(rate, t0);
            assert_eq!(w.observe(u64::MAX, t0 + 10_000 * MS), Duration::ZERO);
        }
    }

    #[test]
    fn a_window_over_the_rate_sleeps_until_its_average_is_the_rate() {
        let t0 = Instant::now();
        // 1000 bytes/s.
        let mut w = Window::new(Some(1000.0), t0);
        // Within the check interval: no decision yet, whatever the bytes.
        assert_eq!(w.observe(400, t0 + 100 * MS), Duration::ZERO);
        assert_eq!(w.observe(400, t0 + 300 * MS), Duration::ZERO);
        // 1000 bytes after 400 ms: due at 1000 ms, so 600 ms more.
        assert_eq!(w.observe(200, t0 + 400 * MS), 600 * MS);
        // The next window starts when that sleep ends (t0 + 1000 ms): 100 bytes in 350 ms is
        // under the rate.
        assert_eq!(w.observe(100, t0 + 1_350 * MS), Duration::ZERO);
        // And a new one started there: 2000 bytes in 500 ms → due at 2 s, sleep 1.5 s.
        assert_eq!(w.observe(2_000, t0 + 1_850 * MS), 1_500 * MS);
    }

    #[test]
    fn a_window_under_the_rate_goes_on_and_restarts() {
        let t0 = Instant::now();
        let mut w = Window::new(Some(1_000_000.0), t0);
        assert_eq!(w.observe(1_000, t0 + 301 * MS), Duration::ZERO);
        // A fresh window began at 301 ms: 100,000 bytes by 350 ms is not judged yet.
        assert_eq!(w.observe(100_000, t0 + 350 * MS), Duration::ZERO);
        // 400,000 bytes in 400 ms of the new window (301 → 701 ms) is 1 MB/s: due 400 ms.
        assert_eq!(w.observe(300_000, t0 + 701 * MS), Duration::ZERO);
        assert_eq!(w.observe(500_000, t0 + 1_002 * MS), 199 * MS);
    }

    #[test]
    fn a_stopping_broker_ends_the_sleep_and_the_throttling() {
        let stop = Arc::new(AtomicBool::new(true));
        let mut t = Throttle::new(Some(1.0), Some(Arc::clone(&stop)));
        t.window.start = Instant::now() - 10 * CHECK_INTERVAL;
        let began = Instant::now();
        t.add(1 << 30);
        assert!(began.elapsed() < Duration::from_secs(5));
        assert_eq!(t.window.bytes_per_sec, None);
    }
}
