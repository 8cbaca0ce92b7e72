//! Delayed operations: requests that must wait for a partition event or a deadline.
//!
//! A worker that cannot answer yet (a long-poll Fetch below `min_bytes`, an acks=all Produce
//! not yet durable) parks the operation here, keyed by every partition whose high-watermark
//! change could complete it, with a deadline. An event on any key, or the deadline, sends the
//! operation back to the workers, which re-evaluate it and answer or park it again.
//!
//! No lost wake-ups: each key has an event counter; a worker reads the counters before it
//! evaluates and hands them to `park`, which re-queues at once if any moved meanwhile.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use crossbeam_channel::Sender;

use super::worker::DelayedOp;
use crate::error::{Error, Result};

type Key = (String, i32);

#[derive(Default)]
struct State {
    next_id: u64,
    ops: HashMap<u64, (DelayedOp, Vec<Key>)>,
    by_key: HashMap<Key, Vec<u64>>,
    deadlines: BTreeMap<(Instant, u64), ()>,
    counters: HashMap<Key, u64>,
    stopped: bool,
}

pub struct Purgatory {
    state: Mutex<State>,
    cv: Condvar,
    retry_tx: Sender<DelayedOp>,
}

impl Purgatory {
    /// Creates the purgatory and its deadline thread.
    pub fn start(retry_tx: Sender<DelayedOp>) -> Result<Arc<Purgatory>> {
        let p = Arc::new(Purgatory {
            state: Mutex::new(State::default()),
            cv: Condvar::new(),
            retry_tx,
        });
        let timer = Arc::clone(&p);
        std::thread::Builder::new()
            .name("thorstream-purgatory".into())
            .spawn(move || timer.run_timer())
            .map_err(|e| Error::InvalidConfig(format!("cannot start purgatory: {e}")))?;
        Ok(p)
    }

    /// Event counters for `keys`, to pass to `park` after evaluating.
    pub fn counters(&self, keys: &[Key]) -> Vec<u64> {
        let Ok(st) = self.state.lock() else {
            return vec![0; keys.len()];
        };
        keys.iter()
            .map(|k| st.counters.get(k).copied().unwrap_or(0))
            .collect()
    }

    /// Parks `op` until an event on one of `keys` or its deadline.
    pub fn park(&self, op: DelayedOp, keys: Vec<Key>, seen: &[u64]) {
        let Ok(mut st) = self.state.lock() else {
            return;
        };
        let moved = keys
            .iter()
            .zip(seen)
            .any(|(k, s)| st.counters.get(k).copied().unwrap_or(0) != *s);
        if moved || st.stopped {
            drop(st);
            let _ = self.retry_tx.send(op);
            return;
        }
        let id = st.next_id;
        st.next_id += 1;
        let deadline = op.deadline;
        for k in &keys {
            st.by_key.entry(k.clone()).or_default().push(id);
        }
        st.deadlines.insert((deadline, id), ());
        st.ops.insert(id, (op, keys));
        drop(st);
        self.cv.notify_one();
    }

    /// A partition's high watermark moved: re-run everything waiting on it.
    pub fn on_event(&self, topic: &str, partition: i32) {
        let key = (topic.to_string(), partition);
        let ready = {
            let Ok(mut st) = self.state.lock() else {
                return;
            };
            *st.counters.entry(key.clone()).or_insert(0) += 1;
            let ids = st.by_key.remove(&key).unwrap_or_default();
            ids.into_iter()
                .filter_map(|id| take(&mut st, id))
                .collect::<Vec<_>>()
        };
        for op in ready {
            let _ = self.retry_tx.send(op);
        }
    }

    /// Completes every parked operation now (shutdown).
    pub fn expire_all(&self) {
        let ready = {
            let Ok(mut st) = self.state.lock() else {
                return;
            };
            st.stopped = true;
            let ids: Vec<u64> = st.ops.keys().copied().collect();
            ids.into_iter()
                .filter_map(|id| take(&mut st, id))
                .collect::<Vec<_>>()
        };
        for mut op in ready {
            op.deadline = Instant::now();
            let _ = self.retry_tx.send(op);
        }
    }

    pub fn stop(&self) {
        if let Ok(mut st) = self.state.lock() {
            st.stopped = true;
        }
        self.cv.notify_all();
    }

    pub fn parked(&self) -> usize {
        self.state.lock().map(|s| s.ops.len()).unwrap_or(0)
    }

    fn run_timer(&self) {
        let Ok(mut st) = self.state.lock() else {
            return;
        };
        loop {
            if st.stopped && st.ops.is_empty() {
                return;
            }
            let now = Instant::now();
            let mut expired = Vec::new();
            while let Some((&(deadline, id), _)) = st.deadlines.iter().next() {
                if deadline > now {
                    break;
                }
                if let Some(op) = take(&mut st, id) {
                    expired.push(op);
                } else {
                    st.deadlines.remove(&(deadline, id));
                }
            }
            if !expired.is_empty() {
                drop(st);
                for op in expired {
                    let _ = self.retry_tx.send(op);
                }
                st = match self.state.lock() {
                    Ok(s) => s,
                    Err(_) => return,
                };
                continue;
            }
            let wait = st
                .deadlines
                .keys()
                .next()
                .map_or(Duration::from_secs(1), |(d, _)| {
                    d.saturating_duration_since(now)
                });
            st = match self.cv.wait_timeout(st, wait) {
                Ok((s, _)) => s,
                Err(_) => return,
            };
        }
    }
}

/// Removes operation `id` from every index and returns it.
fn take(st: &mut State, id: u64) -> Option<DelayedOp> {
    let (op, keys) = st.ops.remove(&id)?;
    st.deadlines.remove(&(op.deadline, id));
    for k in keys {
        if let Some(ids) = st.by_key.get_mut(&k) {
            ids.retain(|&i| i != id);
            if ids.is_empty() {
                st.by_key.remove(&k);
            }
        }
    }
    Some(op)
}
