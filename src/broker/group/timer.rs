//! The coordinator's timer: the `thorstream-groups` thread applies every group deadline
//! (session expiry, pending member ids, the rebalance and sync timeouts, the initial
//! rebalance delay) when it falls due, waiting for it in the broker's wait set, so a silent
//! member is removed at its deadline and DescribeGroups/DeleteGroups see the group as Kafka
//! would, not up to a housekeeping tick later.
//!
//! Invariants (no deadline is missed):
//! - `timer_armed_ms` is never later than the deadline the thread will wake at: each round
//!   the thread resets it to `i64::MAX`, ticks, reads the `GroupDeadline` epoch and then the
//!   coordinator's earliest deadline, and lowers it to what it waits for;
//! - a call that leaves a group with a deadline before `timer_armed_ms` lowers it and fires
//!   `GroupDeadline`, which ends the thread's wait (or makes its next park return at once:
//!   the epoch it read has moved).
//!
//! Heartbeats only move deadlines later, so they never re-arm; the thread then wakes at the
//! old deadline, finds nothing due and waits for the next one.

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use super::GroupService;
use crate::broker::wait::{INTERNAL_SCOPE, WaitKey, Wake};

/// How long the timer waits when no group has a deadline (a group call re-arms it).
const IDLE_WAIT: Duration = Duration::from_secs(3600);

impl GroupService {
    /// A group now has a deadline at `deadline_ms`: wake the timer if it waits for later.
    pub(super) fn arm_timer(&self, deadline_ms: i64) {
        let armed = self.timer_armed_ms.fetch_min(deadline_ms, Ordering::AcqRel);
        if deadline_ms < armed {
            self.waits.event(&WaitKey::GroupDeadline);
        }
    }

    /// The body of the `thorstream-groups` thread: applies deadlines as they fall due until
    /// the wait set shuts down.
    pub fn run_timer(&self) {
        let keys = [WaitKey::GroupDeadline];
        loop {
            self.timer_armed_ms.store(i64::MAX, Ordering::Release);
            self.tick();
            let seen = self.waits.epochs(&keys);
            let next = self.next_deadline_ms().unwrap_or(i64::MAX);
            let armed = self
                .timer_armed_ms
                .fetch_min(next, Ordering::AcqRel)
                .min(next);
            let deadline = if armed == i64::MAX {
                Instant::now() + IDLE_WAIT
            } else {
                self.instant_at(armed)
            };
            let woken = self
                .waits
                .wait_in(INTERNAL_SCOPE, keys.to_vec(), &seen, deadline);
            if woken == Wake::Shutdown {
                return;
            }
        }
    }
}
