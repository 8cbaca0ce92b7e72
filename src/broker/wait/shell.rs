//! The broker's thread-safe shell around `WaitSet`: a mutex, a condition variable for the one
//! timer thread (`thorstream-waits`, which fires deadlines), and wake-up callbacks.
//!
//! A parked item is a callback (`WakeFn`): the wire server's sends the request back to the
//! workers, an embedded thread's sets its signal. Callbacks run outside the lock, on whichever
//! thread completed them (an appending worker, the flusher, a group call, the timer); they
//! must only hand work on, never block or do it.

use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use super::set::{Parking, WaitSet, WaiterId};
use super::{BROKER_SCOPE, INTERNAL_SCOPE, Scope, WaitKey, Wake};
use crate::error::{Error, Result};

/// What a parked waiter runs when it is woken.
pub type WakeFn = Box<dyn FnOnce(Wake) + Send>;

#[derive(Default)]
pub struct Waits {
    set: Mutex<WaitSet<WakeFn>>,
    /// Wakes the timer thread when an earlier deadline arrives or on shutdown.
    timer: Condvar,
    next_scope: Mutex<Scope>,
}

impl Waits {
    fn lock(&self) -> Option<MutexGuard<'_, WaitSet<WakeFn>>> {
        self.set.lock().ok()
    }

    /// A fresh scope for a wire server (shut down with `shutdown`).
    pub fn new_scope(&self) -> Scope {
        let Ok(mut s) = self.next_scope.lock() else {
            return Scope::MAX;
        };
        *s += 1;
        *s
    }

    /// The epochs of `keys`, read before checking whatever the caller waits for.
    pub fn epochs(&self, keys: &[WaitKey]) -> Vec<u64> {
        self.lock()
            .map_or_else(|| vec![0; keys.len()], |s| s.epochs(keys))
    }

    /// Parks `wake` until an event on one of `keys`, `deadline` or a shutdown of `scope`. If
    /// it cannot park (an epoch moved since `seen`, the deadline passed, the scope is shut
    /// down), `wake` runs at once on this thread.
    pub fn park(
        &self,
        keys: Vec<WaitKey>,
        seen: &[u64],
        deadline: Instant,
        scope: Scope,
        wake: WakeFn,
    ) -> Option<WaiterId> {
        let Some(mut set) = self.lock() else {
            wake(Wake::Shutdown);
            return None;
        };
        let earlier = set.next_deadline().is_none_or(|d| deadline < d);
        match set.park(wake, keys, seen, deadline, scope, Instant::now()) {
            Parking::Parked(id) => {
                drop(set);
                if earlier {
                    self.timer.notify_one();
                }
                Some(id)
            }
            Parking::Ready(wake, why) => {
                drop(set);
                wake(why);
                None
            }
        }
    }

    /// Something changed for `key`: wakes everything waiting on it.
    pub fn event(&self, key: &WaitKey) {
        let woken = match self.lock() {
            Some(mut set) => set.event(key),
            None => return,
        };
        run(woken);
    }

    /// Takes a waiter back without waking it; false if it was already woken.
    pub fn cancel(&self, id: WaiterId) -> bool {
        self.lock().and_then(|mut s| s.cancel(id)).is_some()
    }

    /// Wakes every waiter of `scope` with `Wake::Shutdown`; later parks in it return at once.
    pub fn shutdown(&self, scope: Scope) {
        let woken = match self.lock() {
            Some(mut set) => set.shutdown(scope),
            None => return,
        };
        run(woken);
    }

    /// Shuts every scope down and stops the timer thread (the broker is closing).
    pub fn shutdown_all(&self) {
        let woken = match self.lock() {
            Some(mut set) => set.shutdown_all(),
            None => return,
        };
        self.timer.notify_all();
        run(woken);
    }

    /// Waiters of clients (wire requests, embedded calls) parked now; the broker's own timer
    /// threads (`INTERNAL_SCOPE`) are not counted.
    pub fn parked(&self) -> usize {
        self.lock().map_or(0, |s| s.len_outside(INTERNAL_SCOPE))
    }

    /// Blocks the calling thread (embedded API only) until an event on one of `keys`, the
    /// deadline, or shutdown. `seen` as for `park`.
    pub fn wait(&self, keys: Vec<WaitKey>, seen: &[u64], deadline: Instant) -> Wake {
        self.wait_in(BROKER_SCOPE, keys, seen, deadline)
    }

    /// `wait`, parked in `scope` (the broker's timer threads wait in `INTERNAL_SCOPE`).
    pub fn wait_in(
        &self,
        scope: Scope,
        keys: Vec<WaitKey>,
        seen: &[u64],
        deadline: Instant,
    ) -> Wake {
        let signal: Arc<(Mutex<Option<Wake>>, Condvar)> = Arc::default();
        let s = Arc::clone(&signal);
        let id = self.park(
            keys,
            seen,
            deadline,
            scope,
            Box::new(move |why| {
                if let Ok(mut w) = s.0.lock() {
                    *w = Some(why);
                }
                s.1.notify_all();
            }),
        );
        let Ok(mut woken) = signal.0.lock() else {
            return Wake::Shutdown;
        };
        loop {
            if let Some(why) = *woken {
                return why;
            }
            let now = Instant::now();
            if now >= deadline {
                // The timer fires deadlines, but this thread need not rely on it.
                drop(woken);
                if id.is_some_and(|id| self.cancel(id)) {
                    return Wake::Deadline;
                }
                // Woken meanwhile: the callback has run or is about to.
                woken = match signal.0.lock() {
                    Ok(w) => w,
                    Err(_) => return Wake::Shutdown,
                };
                if let Some(why) = *woken {
                    return why;
                }
                woken = match signal.1.wait_timeout(woken, Duration::from_millis(1)) {
                    Ok((w, _)) => w,
                    Err(_) => return Wake::Shutdown,
                };
                continue;
            }
            woken = match signal.1.wait_timeout(woken, deadline - now) {
                Ok((w, _)) => w,
                Err(_) => return Wake::Shutdown,
            };
        }
    }

    /// The timer thread's body: fires deadlines until `shutdown_all`.
    pub fn run_timer(&self) {
        let Some(mut set) = self.lock() else { return };
        loop {
            if set.all_shut_down() {
                return;
            }
            let now = Instant::now();
            let expired = set.expire(now);
            if !expired.is_empty() {
                drop(set);
                run(expired);
                set = match self.lock() {
                    Some(s) => s,
                    None => return,
                };
                continue;
            }
            let wait = set
                .next_deadline()
                .map_or(Duration::from_secs(1), |d| d.saturating_duration_since(now));
            set = match self.timer.wait_timeout(set, wait) {
                Ok((s, _)) => s,
                Err(_) => return,
            };
        }
    }
}

fn run(woken: Vec<(WakeFn, Wake)>) {
    for (wake, why) in woken {
        wake(why);
    }
}

/// Starts the timer thread of `waits`; it exits at `shutdown_all`.
pub fn spawn_timer(waits: Arc<Waits>) -> Result<std::thread::JoinHandle<()>> {
    std::thread::Builder::new()
        .name("thorstream-waits".into())
        .spawn(move || waits.run_timer())
        .map_err(|e| Error::InvalidConfig(format!("cannot start the wait-set timer: {e}")))
}
