//! The initial rebalance of an Empty group (Kafka's `group.initial.rebalance.delay.ms`,
//! `InitialDelayedJoin`): the first join waits `delay_ms` for more members instead of
//! completing at once, so a group started with several members gets one rebalance, not one
//! per member. Each time the delay ends with a new member having arrived during it, it is
//! extended by `min(delay_ms, remaining_ms)`; `remaining_ms` starts at the rebalance timeout
//! minus the delay, so the whole wait never exceeds the larger of the two.
//!
//! Invariants:
//! - `ClassicGroup::initial_join` is `Some` only in PreparingRebalance entered from Empty;
//!   while it is, nothing but its deadline completes the join (not even every member having
//!   joined, as Kafka), and the regular rebalance deadline does not apply;
//! - `remaining_ms` never grows, so the delay is extended finitely often.

use super::{ClassicGroup, Effects};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct InitialJoin {
    /// When this round of the delay ends.
    pub deadline_ms: i64,
    /// The length of this round.
    pub delay_ms: i64,
    /// What is left to extend by after this round.
    pub remaining_ms: i64,
    /// A member joined during this round (the delay is then extended once more).
    pub new_member_added: bool,
}

impl ClassicGroup {
    /// Called as an Empty group starts its first rebalance: starts the delay, if any.
    pub(super) fn start_initial_join(&mut self, now_ms: i64, rebalance_timeout_ms: i64) {
        let delay_ms = self.initial_rebalance_delay_ms;
        if delay_ms <= 0 {
            return;
        }
        self.initial_join = Some(InitialJoin {
            deadline_ms: now_ms.saturating_add(delay_ms),
            delay_ms,
            remaining_ms: (rebalance_timeout_ms - delay_ms).max(0),
            new_member_added: false,
        });
    }

    /// A member joined: during the initial delay this extends it at its next deadline.
    pub(super) fn note_new_member(&mut self) {
        if let Some(j) = &mut self.initial_join {
            j.new_member_added = true;
        }
    }

    /// At the delay's deadline: extend it if a member arrived and time remains, else complete
    /// the join. Returns true if the delay was handled (the caller must not apply the regular
    /// rebalance deadline).
    pub(super) fn tick_initial_join(&mut self, now_ms: i64, fx: &mut Effects) -> bool {
        let Some(j) = self.initial_join else {
            return false;
        };
        if now_ms < j.deadline_ms {
            return true;
        }
        if j.new_member_added && j.remaining_ms != 0 {
            let delay_ms = self.initial_rebalance_delay_ms.min(j.remaining_ms);
            self.initial_join = Some(InitialJoin {
                deadline_ms: now_ms.saturating_add(delay_ms),
                delay_ms,
                remaining_ms: (j.remaining_ms - j.delay_ms).max(0),
                new_member_added: false,
            });
            fx.changed = true;
        } else {
            self.complete_join(now_ms, fx);
        }
        true
    }
}
