//! The broker's thread-safe shell around the sans-IO `GroupCoordinator`: one mutex, a
//! monotonic clock, and an event on the broker's wait set (`WaitKey::Group`) for every group
//! a call changed, fired after the lock is released.
//!
//! Lock order: this service's coordinator lock is taken before the offset store's lock
//! (`commit_fenced`, `delete_group`, `expire_offsets` write offsets while holding it) and never
//! after it; the wait set's lock is a leaf, taken only once this lock is released. So an
//! offset commit's fence check and its write are one step: no rebalance can come between.

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use super::coordinator::{OffsetDeletePolicy, offsets_expired};
use super::{
    GroupConfig, GroupCoordinator, GroupError, GroupState, GroupSummary, JoinRequest, JoinResponse,
    LeavingMember, ListedGroup, Poll, Reply, SyncRequest, SyncResponse, Ticket,
};
use crate::broker::offset_store::OffsetStore;
use crate::broker::wait::{WaitKey, Waits};

pub struct GroupService {
    coordinator: Mutex<GroupCoordinator>,
    pub(super) waits: Arc<Waits>,
    epoch: Instant,
    started_wall_ms: i64,
    /// Bumped on every group change; embedded members compare it to notice rebalances.
    changes: AtomicU64,
    /// The coordinator time the timer thread waits for (`timer.rs`).
    pub(super) timer_armed_ms: AtomicI64,
}

impl GroupService {
    pub fn new(config: GroupConfig, waits: Arc<Waits>) -> GroupService {
        let seed = RandomState::new().build_hasher().finish();
        GroupService {
            coordinator: Mutex::new(GroupCoordinator::new(config, seed)),
            waits,
            epoch: Instant::now(),
            started_wall_ms: crate::storage::now_ms(),
            changes: AtomicU64::new(0),
            timer_armed_ms: AtomicI64::new(i64::MAX),
        }
    }

    /// The coordinator's clock: monotonic milliseconds since the broker started.
    pub fn now_ms(&self) -> i64 {
        self.epoch.elapsed().as_millis() as i64
    }

    /// The `Instant` of a coordinator time (for wait-set deadlines).
    pub fn instant_at(&self, ms: i64) -> Instant {
        let far = self.epoch + Duration::from_secs(100 * 365 * 24 * 3600);
        self.epoch
            .checked_add(Duration::from_millis(ms.max(0) as u64))
            .map_or(far, |t| t.min(far))
    }

    pub fn changes(&self) -> u64 {
        self.changes.load(Ordering::Acquire)
    }

    fn lock(&self) -> Result<MutexGuard<'_, GroupCoordinator>, GroupError> {
        self.coordinator
            .lock()
            .map_err(|_| GroupError::CoordinatorNotAvailable)
    }

    /// Runs `f` under the lock, then fires an event for each group it changed (and wakes the
    /// timer if `touched` or a changed group now has an earlier deadline than it waits for).
    fn run<R>(
        &self,
        touched: Option<&str>,
        f: impl FnOnce(&mut GroupCoordinator, i64) -> R,
    ) -> Result<R, GroupError> {
        let now = self.now_ms();
        let (r, changed, deadline) = {
            let mut c = self.lock()?;
            let r = f(&mut c, now);
            let changed = c.take_changed();
            let deadline = touched
                .into_iter()
                .chain(changed.iter().map(String::as_str))
                .filter_map(|g| c.group_deadline_ms(g))
                .min();
            (r, changed, deadline)
        };
        self.notify(&changed);
        if let Some(d) = deadline {
            self.arm_timer(d);
        }
        Ok(r)
    }

    fn notify(&self, changed: &[String]) {
        if changed.is_empty() {
            return;
        }
        self.changes.fetch_add(1, Ordering::AcqRel);
        for g in changed {
            self.waits.event(&WaitKey::group(g));
        }
    }

    pub fn join(&self, req: JoinRequest) -> Reply<JoinResponse> {
        let member_id = req.member_id.clone();
        let group_id = req.group_id.clone();
        self.run(Some(&group_id), |c, now| c.join(now, req))
            .unwrap_or_else(|e| Reply::Done(JoinResponse::error(e, &member_id)))
    }

    pub fn sync(&self, req: SyncRequest) -> Reply<SyncResponse> {
        let group_id = req.group_id.clone();
        self.run(Some(&group_id), |c, now| c.sync(now, req))
            .unwrap_or_else(|e| Reply::Done(SyncResponse::error(e)))
    }

    pub fn heartbeat(
        &self,
        group_id: &str,
        member_id: &str,
        instance_id: Option<&str>,
        generation: i32,
    ) -> Result<(), GroupError> {
        self.run(None, |c, now| {
            c.heartbeat(now, group_id, member_id, instance_id, generation)
        })?
    }

    pub fn leave(&self, group_id: &str, members: &[LeavingMember]) -> Vec<Result<(), GroupError>> {
        self.run(Some(group_id), |c, now| c.leave(now, group_id, members))
            .unwrap_or_else(|e| members.iter().map(|_| Err(e)).collect())
    }

    pub fn poll(&self, ticket: Ticket) -> Poll {
        self.run(None, |c, now| c.poll(now, ticket))
            .unwrap_or(Poll::Unknown)
    }

    pub fn forget(&self, ticket: Ticket) {
        let _ = self.run(None, |c, _| c.forget(ticket));
    }

    /// Applies passed deadlines (session expiry, rebalance and sync timeouts).
    pub fn tick(&self) {
        let _ = self.run(None, |c, now| c.tick(now));
    }

    /// The earliest deadline of any group (coordinator time).
    pub fn next_deadline_ms(&self) -> Option<i64> {
        self.lock().ok()?.next_deadline_ms()
    }

    /// OffsetCommit's fence and write as one step: checks, under the coordinator lock, that
    /// the commit may land (`GroupCoordinator::validate_commit`: a current member of the
    /// current generation, or a simple commit to a group without members) and runs `write`
    /// still under that lock, so no join, leave or expiry can fence the member in between.
    /// `write` may take the offset store's lock (see the lock order above) and nothing else
    /// that could wait for a group.
    pub fn commit_fenced<R>(
        &self,
        group_id: &str,
        member_id: &str,
        instance_id: Option<&str>,
        generation: i32,
        write: impl FnOnce() -> R,
    ) -> Result<R, GroupError> {
        let c = self.lock()?;
        c.validate_commit(group_id, member_id, instance_id, generation)?;
        Ok(write())
    }

    /// `commit_fenced` for a TxnOffsetCommit (Kafka's transactional fence, see
    /// `GroupCoordinator::validate_commit_as`).
    pub fn txn_commit_fenced<R>(
        &self,
        group_id: &str,
        member_id: &str,
        instance_id: Option<&str>,
        generation: i32,
        write: impl FnOnce() -> R,
    ) -> Result<R, GroupError> {
        let c = self.lock()?;
        c.validate_commit_as(group_id, member_id, instance_id, generation, true)?;
        Ok(write())
    }

    /// True if the coordinator lock is held right now (tests check `commit_fenced` writes
    /// under it).
    #[cfg(test)]
    pub(crate) fn is_locked(&self) -> bool {
        matches!(
            self.coordinator.try_lock(),
            Err(std::sync::TryLockError::WouldBlock)
        )
    }

    pub fn state(&self, group_id: &str) -> Option<GroupState> {
        self.lock().ok()?.state(group_id)
    }

    pub fn describe(&self, group_id: &str) -> Option<GroupSummary> {
        self.lock().ok()?.describe(group_id)
    }

    /// Tracked groups plus groups that only have committed offsets (listed as Empty).
    pub fn list(&self, offsets: &OffsetStore) -> Vec<ListedGroup> {
        let mut groups = self.lock().map(|c| c.list()).unwrap_or_default();
        for g in offsets.groups() {
            if !groups.iter().any(|l| l.group_id == g) {
                groups.push(ListedGroup {
                    group_id: g,
                    protocol_type: String::new(),
                    state: GroupState::Empty,
                });
            }
        }
        groups.sort_by(|a, b| a.group_id.cmp(&b.group_id));
        groups
    }

    /// DeleteGroups: refuses groups with members, else drops the group and its offsets.
    pub fn delete_group(&self, group_id: &str, offsets: &OffsetStore) -> Result<(), GroupError> {
        // Offsets are deleted under the coordinator lock so no member joins in between.
        let mut c = self.lock()?;
        let tracked = c.delete(group_id)?;
        let has_offsets =
            !offsets.group_offsets(group_id).is_empty() || offsets.has_open_txn(group_id);
        if !tracked && !has_offsets {
            return Err(GroupError::GroupIdNotFound);
        }
        if has_offsets && let Err(e) = offsets.delete_group(group_id) {
            log::error!("deleting offsets of group {group_id}: {e}");
            return Err(GroupError::CoordinatorNotAvailable);
        }
        Ok(())
    }

    pub fn offset_delete_policy(&self, group_id: &str) -> Result<OffsetDeletePolicy, GroupError> {
        Ok(self.lock()?.offset_delete_policy(group_id))
    }

    /// Deletes the offsets of groups empty for longer than `retention_ms` and forgets Empty
    /// groups that have no offsets. Returns the groups whose offsets were deleted.
    pub fn expire_offsets(&self, offsets: &OffsetStore, retention_ms: i64) -> Vec<String> {
        let now_wall = crate::storage::now_ms();
        let mut expired = Vec::new();
        for group in offsets.groups() {
            let last_commit = offsets
                .group_offsets(&group)
                .iter()
                .map(|(_, c)| c.commit_timestamp_ms)
                .max()
                .unwrap_or(0);
            let Ok(mut c) = self.lock() else {
                return expired;
            };
            let now = self.now_ms();
            let state = c.state(&group);
            let active = state.is_some_and(|s| s != GroupState::Empty);
            let due = offsets_expired(
                active,
                c.empty_since_ms(&group),
                now,
                now_wall,
                last_commit,
                self.started_wall_ms,
                retention_ms,
            );
            // Pending transactional offsets keep the group (Kafka's rule).
            if !due || offsets.has_open_txn(&group) {
                continue;
            }
            // Under the lock: a member joining now sees no offsets rather than a half-deleted set.
            if let Err(e) = offsets.delete_group(&group) {
                log::error!("expiring offsets of group {group}: {e}");
                continue;
            }
            c.remove_if_empty(&group);
            log::info!(
                "group {group}: committed offsets expired (empty for over {retention_ms} ms)"
            );
            expired.push(group);
        }
        if let Ok(mut c) = self.lock() {
            for g in c.empty_groups() {
                if offsets.group_offsets(&g).is_empty() && !offsets.has_open_txn(&g) {
                    c.remove_if_empty(&g);
                }
            }
        }
        expired
    }
}
