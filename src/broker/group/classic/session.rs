//! Liveness: heartbeats, LeaveGroup, and the timers `tick` runs (session expiry, pending
//! member-id expiry, the rebalance and pending-sync deadlines).
//!
//! Invariants:
//! - a member waiting in JoinGroup or SyncGroup is never expired by its session timeout;
//! - `next_deadline_ms` is the earliest time at which `tick` would change something, so a
//!   caller that ticks then never misses a timeout and never ticks for nothing.

use super::{ClassicGroup, Effects};
use crate::broker::group::{GroupError, GroupState, LeavingMember};

impl ClassicGroup {
    pub fn heartbeat(
        &mut self,
        now_ms: i64,
        member_id: &str,
        instance_id: Option<&str>,
        generation: i32,
    ) -> Result<(), GroupError> {
        self.validate_member(member_id, instance_id)?;
        if generation != self.generation {
            return Err(GroupError::IllegalGeneration);
        }
        let state = self.state;
        let m = self
            .members
            .get_mut(member_id)
            .ok_or(GroupError::UnknownMemberId)?;
        match state {
            GroupState::Empty | GroupState::Dead => Err(GroupError::UnknownMemberId),
            GroupState::PreparingRebalance => {
                m.heartbeat(now_ms);
                Err(GroupError::RebalanceInProgress)
            }
            GroupState::CompletingRebalance | GroupState::Stable => {
                m.heartbeat(now_ms);
                Ok(())
            }
        }
    }

    /// LeaveGroup: one result per leaving member.
    pub fn leave(
        &mut self,
        now_ms: i64,
        leaving: &[LeavingMember],
        fx: &mut Effects,
    ) -> Vec<Result<(), GroupError>> {
        leaving
            .iter()
            .map(|l| {
                if l.member_id.is_empty() {
                    // Administrative removal by instance id.
                    let id = l
                        .group_instance_id
                        .as_ref()
                        .and_then(|iid| self.static_members.get(iid).cloned())
                        .ok_or(GroupError::UnknownMemberId)?;
                    self.remove_member_and_update(now_ms, &id, fx);
                    return Ok(());
                }
                if self.pending_members.remove(&l.member_id).is_some() {
                    fx.changed = true;
                    self.maybe_complete_join(now_ms, fx);
                    return Ok(());
                }
                self.validate_member(&l.member_id, l.group_instance_id.as_deref())?;
                self.remove_member_and_update(now_ms, &l.member_id, fx);
                Ok(())
            })
            .collect()
    }

    /// Expires silent members and pending ids, completes an overdue join, and restarts the
    /// rebalance when members did not SyncGroup in time.
    pub fn tick(&mut self, now_ms: i64, fx: &mut Effects) {
        let before = self.pending_members.len();
        self.pending_members
            .retain(|_, deadline| *deadline > now_ms);
        if self.pending_members.len() != before {
            fx.changed = true;
            self.maybe_complete_join(now_ms, fx);
        }
        let silent: Vec<String> = self
            .members
            .values()
            .filter(|m| !m.is_waiting() && m.heartbeat_deadline_ms <= now_ms)
            .map(|m| m.id.clone())
            .collect();
        for id in silent {
            log::info!("group {}: member {id} session expired", self.id);
            self.remove_member_and_update(now_ms, &id, fx);
        }
        if self.state == GroupState::PreparingRebalance
            && !self.tick_initial_join(now_ms, fx)
            && now_ms >= self.rebalance_deadline_ms
        {
            self.complete_join(now_ms, fx);
        }
        if matches!(
            self.state,
            GroupState::CompletingRebalance | GroupState::Stable
        ) && !self.pending_sync.is_empty()
            && now_ms >= self.sync_deadline_ms
        {
            log::info!(
                "group {}: members {:?} did not sync in time; rebalancing",
                self.id,
                self.pending_sync
            );
            self.prepare_rebalance(now_ms, fx);
        }
    }

    /// The earliest time at which `tick` would change something.
    pub fn next_deadline_ms(&self) -> Option<i64> {
        let pending = self.pending_members.values().copied();
        let sessions = self
            .members
            .values()
            .filter(|m| !m.is_waiting())
            .map(|m| m.heartbeat_deadline_ms);
        let rebalance = (self.state == GroupState::PreparingRebalance).then(|| {
            self.initial_join
                .map_or(self.rebalance_deadline_ms, |j| j.deadline_ms)
        });
        let sync = (matches!(
            self.state,
            GroupState::CompletingRebalance | GroupState::Stable
        ) && !self.pending_sync.is_empty())
        .then_some(self.sync_deadline_ms);
        pending.chain(sessions).chain(rebalance).chain(sync).min()
    }
}
