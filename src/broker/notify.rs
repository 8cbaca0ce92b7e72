//! Wake-ups when a partition's high watermark moves.
//!
//! Two kinds of waiter: threads of the embedded API (a condition variable, waited on with a
//! timeout, never spun on) and registered listeners such as the server's delayed-operation
//! purgatory (called inline by whoever advanced the watermark; they must only enqueue work).

use std::sync::{Arc, Condvar, Mutex, RwLock};
use std::time::{Duration, Instant};

pub type HwListener = Arc<dyn Fn(&str, i32, i64) + Send + Sync>;

#[derive(Default)]
pub struct Notifier {
    seq: Mutex<u64>,
    cv: Condvar,
    listeners: RwLock<Vec<HwListener>>,
}

impl Notifier {
    pub fn add_listener(&self, listener: HwListener) {
        if let Ok(mut l) = self.listeners.write() {
            l.push(listener);
        }
    }

    /// Called after `topic`/`partition`'s high watermark advanced to `hw`.
    pub fn hw_advanced(&self, topic: &str, partition: i32, hw: i64) {
        if let Ok(mut seq) = self.seq.lock() {
            *seq += 1;
        }
        self.cv.notify_all();
        if let Ok(listeners) = self.listeners.read() {
            for l in listeners.iter() {
                l(topic, partition, hw);
            }
        }
    }

    /// Wakes every waiter without an event (shutdown).
    pub fn wake_all(&self) {
        if let Ok(mut seq) = self.seq.lock() {
            *seq += 1;
        }
        self.cv.notify_all();
    }

    pub fn current(&self) -> u64 {
        self.seq.lock().map(|s| *s).unwrap_or(0)
    }

    /// Waits until the sequence moves past `seen` or `deadline` passes; returns the new value.
    pub fn wait_past(&self, seen: u64, deadline: Instant) -> u64 {
        let Ok(mut seq) = self.seq.lock() else {
            return seen;
        };
        while *seq == seen {
            let now = Instant::now();
            if now >= deadline {
                break;
            }
            match self.cv.wait_timeout(seq, deadline - now) {
                Ok((s, _)) => seq = s,
                Err(_) => return seen,
            }
        }
        *seq
    }

    /// Convenience: wait up to `timeout` for any change.
    pub fn wait_for(&self, seen: u64, timeout: Duration) -> u64 {
        self.wait_past(seen, Instant::now() + timeout)
    }
}
