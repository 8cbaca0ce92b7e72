//! All groups of this broker, and the tickets of requests waiting on them.
//!
//! Sans-IO: every entry point takes `now_ms`; nothing here reads a clock, sleeps or locks.
//! A JoinGroup/SyncGroup that cannot be answered yet gets a `Ticket`; when a later call (of
//! any member, or `tick`) completes it, its answer is stored until `poll` takes it, and the
//! group is reported by `take_changed` so the caller can wake whoever waits on it.
//!
//! Invariant: a ticket is in at most one of `waiting` (not answered yet) and `answers`.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use bytes::Bytes;

use super::classic::{ClassicGroup, Effects, IdGen};
use super::{
    Answer, GroupConfig, GroupError, GroupState, JoinRequest, JoinResponse, LeavingMember, Reply,
    SyncRequest, SyncResponse, Ticket,
};

use crate::limits::POLL_AGAIN_MIN_MS;

/// What `poll` finds for a ticket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Poll {
    Ready(Answer),
    /// Still waiting; nothing can change before `deadline_ms` unless another call arrives.
    Pending {
        deadline_ms: i64,
    },
    /// Never issued, already taken, or its group is gone.
    Unknown,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberSummary {
    pub member_id: String,
    pub group_instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub metadata: Bytes,
    pub assignment: Bytes,
}

/// DescribeGroups: metadata and assignments are shown only in Stable (as Kafka does).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupSummary {
    pub state: GroupState,
    pub protocol_type: String,
    pub protocol_data: String,
    pub members: Vec<MemberSummary>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListedGroup {
    pub group_id: String,
    pub protocol_type: String,
    pub state: GroupState,
}

/// Whether OffsetDelete may remove a group's offsets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OffsetDeletePolicy {
    /// Not tracked or Empty: any offset may go.
    Any,
    /// A consumer group with members: offsets of these topics stay (`None`: all stay).
    NotSubscribed(Option<BTreeSet<String>>),
    /// Members of a non-consumer protocol: nothing may go (NON_EMPTY_GROUP).
    Refused,
}

pub struct GroupCoordinator {
    config: GroupConfig,
    groups: BTreeMap<String, ClassicGroup>,
    next_ticket: Ticket,
    /// Waiting ticket → its group.
    waiting: HashMap<Ticket, String>,
    /// Answered ticket → (answer time, answer), until taken.
    answers: HashMap<Ticket, (i64, Answer)>,
    changed: BTreeSet<String>,
    ids: IdGen,
}

impl GroupCoordinator {
    /// `seed` makes the member ids; pass randomness in production, a constant in tests.
    pub fn new(config: GroupConfig, seed: u64) -> GroupCoordinator {
        GroupCoordinator {
            config,
            groups: BTreeMap::new(),
            next_ticket: 1,
            waiting: HashMap::new(),
            answers: HashMap::new(),
            changed: BTreeSet::new(),
            ids: IdGen::new(seed),
        }
    }

    fn ticket(&mut self) -> Ticket {
        let t = self.next_ticket;
        self.next_ticket += 1;
        t
    }

    fn apply(&mut self, group_id: &str, now_ms: i64, fx: Effects) {
        for (t, a) in fx.answers {
            self.waiting.remove(&t);
            self.answers.insert(t, (now_ms, a));
        }
        if fx.changed {
            self.changed.insert(group_id.to_string());
        }
    }

    /// Answer now if the ticket was answered during the call, else record it as waiting.
    fn settle<T>(
        &mut self,
        group_id: &str,
        ticket: Ticket,
        unwrap: impl Fn(Answer) -> Option<T>,
    ) -> Reply<T> {
        if let Some((_, a)) = self.answers.remove(&ticket)
            && let Some(r) = unwrap(a)
        {
            return Reply::Done(r);
        }
        self.waiting.insert(ticket, group_id.to_string());
        Reply::Wait(ticket)
    }

    pub fn join(&mut self, now_ms: i64, req: JoinRequest) -> Reply<JoinResponse> {
        let err = |e| Reply::Done(JoinResponse::error(e, &req.member_id));
        if req.group_id.is_empty() {
            return err(GroupError::InvalidGroupId);
        }
        let c = &self.config;
        if req.session_timeout_ms < c.min_session_timeout_ms
            || req.session_timeout_ms > c.max_session_timeout_ms
        {
            return err(GroupError::InvalidSessionTimeout);
        }
        if !self.groups.contains_key(&req.group_id) {
            if !req.member_id.is_empty() {
                return err(GroupError::UnknownMemberId);
            }
            if self.groups.len() >= self.config.groups_max {
                return err(GroupError::CoordinatorNotAvailable);
            }
            let g = ClassicGroup::new(
                req.group_id.clone(),
                now_ms,
                self.config.initial_rebalance_delay_ms,
            );
            self.groups.insert(req.group_id.clone(), g);
        }
        let ticket = self.ticket();
        let mut fx = Effects::default();
        let group_id = req.group_id.clone();
        let Some(group) = self.groups.get_mut(&group_id) else {
            return err(GroupError::CoordinatorNotAvailable);
        };
        let immediate = group.join(now_ms, &req, ticket, &mut self.ids, &self.config, &mut fx);
        self.apply(&group_id, now_ms, fx);
        self.drop_if_unused(&group_id);
        match immediate {
            Some(r) => Reply::Done(r),
            None => self.settle(&group_id, ticket, |a| match a {
                Answer::Join(r) => Some(r),
                Answer::Sync(_) => None,
            }),
        }
    }

    pub fn sync(&mut self, now_ms: i64, req: SyncRequest) -> Reply<SyncResponse> {
        if req.group_id.is_empty() {
            return Reply::Done(SyncResponse::error(GroupError::InvalidGroupId));
        }
        let ticket = self.ticket();
        let mut fx = Effects::default();
        let Some(group) = self.groups.get_mut(&req.group_id) else {
            return Reply::Done(SyncResponse::error(GroupError::UnknownMemberId));
        };
        let immediate = group.sync(now_ms, &req, ticket, &mut fx);
        self.apply(&req.group_id, now_ms, fx);
        match immediate {
            Some(r) => Reply::Done(r),
            None => self.settle(&req.group_id, ticket, |a| match a {
                Answer::Sync(r) => Some(r),
                Answer::Join(_) => None,
            }),
        }
    }

    pub fn heartbeat(
        &mut self,
        now_ms: i64,
        group_id: &str,
        member_id: &str,
        instance_id: Option<&str>,
        generation: i32,
    ) -> Result<(), GroupError> {
        if group_id.is_empty() {
            return Err(GroupError::InvalidGroupId);
        }
        let group = self
            .groups
            .get_mut(group_id)
            .ok_or(GroupError::UnknownMemberId)?;
        group.heartbeat(now_ms, member_id, instance_id, generation)
    }

    pub fn leave(
        &mut self,
        now_ms: i64,
        group_id: &str,
        members: &[LeavingMember],
    ) -> Vec<Result<(), GroupError>> {
        let Some(group) = self.groups.get_mut(group_id) else {
            return members
                .iter()
                .map(|_| Err(GroupError::UnknownMemberId))
                .collect();
        };
        let mut fx = Effects::default();
        let results = group.leave(now_ms, members, &mut fx);
        self.apply(group_id, now_ms, fx);
        results
    }

    /// Takes the answer of `ticket`, after applying any deadline its group has reached.
    pub fn poll(&mut self, now_ms: i64, ticket: Ticket) -> Poll {
        if let Some((_, a)) = self.answers.remove(&ticket) {
            return Poll::Ready(a);
        }
        let Some(group_id) = self.waiting.get(&ticket).cloned() else {
            return Poll::Unknown;
        };
        self.tick_group(now_ms, &group_id);
        if let Some((_, a)) = self.answers.remove(&ticket) {
            return Poll::Ready(a);
        }
        match self.groups.get(&group_id) {
            Some(g) => Poll::Pending {
                deadline_ms: g
                    .next_deadline_ms()
                    .unwrap_or(now_ms + 1_000)
                    .max(now_ms + POLL_AGAIN_MIN_MS),
            },
            None => {
                self.waiting.remove(&ticket);
                Poll::Unknown
            }
        }
    }

    /// The waiter of `ticket` went away; drop its answer if one comes.
    pub fn forget(&mut self, ticket: Ticket) {
        self.answers.remove(&ticket);
        self.waiting.remove(&ticket);
    }

    fn tick_group(&mut self, now_ms: i64, group_id: &str) {
        let Some(group) = self.groups.get_mut(group_id) else {
            return;
        };
        let mut fx = Effects::default();
        group.tick(now_ms, &mut fx);
        self.apply(group_id, now_ms, fx);
    }

    /// Applies every deadline that has passed: session expiry, rebalance and sync timeouts.
    pub fn tick(&mut self, now_ms: i64) {
        let due: Vec<String> = self
            .groups
            .iter()
            .filter(|(_, g)| g.next_deadline_ms().is_some_and(|d| d <= now_ms))
            .map(|(id, _)| id.clone())
            .collect();
        for id in due {
            self.tick_group(now_ms, &id);
        }
        let ttl = self.config.answer_ttl_ms;
        self.answers.retain(|_, (at, _)| now_ms - *at < ttl);
    }

    /// The earliest time at which `tick` would change something, over every group.
    pub fn next_deadline_ms(&self) -> Option<i64> {
        self.groups
            .values()
            .filter_map(|g| g.next_deadline_ms())
            .min()
    }

    /// The earliest time at which `tick` would change something in `group_id`.
    pub fn group_deadline_ms(&self, group_id: &str) -> Option<i64> {
        self.groups.get(group_id)?.next_deadline_ms()
    }

    /// Groups changed since the last call (their waiters should poll again).
    pub fn take_changed(&mut self) -> Vec<String> {
        std::mem::take(&mut self.changed).into_iter().collect()
    }

    /// A group created by a failed first join keeps nothing worth tracking.
    fn drop_if_unused(&mut self, group_id: &str) {
        if self.groups.get(group_id).is_some_and(|g| {
            g.members.is_empty() && g.pending_members.is_empty() && g.generation == 0
        }) {
            self.groups.remove(group_id);
        }
    }

    /// OffsetCommit validation. Groups we do not track take simple commits (generation < 0)
    /// only.
    pub fn validate_commit(
        &self,
        group_id: &str,
        member_id: &str,
        instance_id: Option<&str>,
        generation: i32,
    ) -> Result<(), GroupError> {
        self.validate_commit_as(group_id, member_id, instance_id, generation, false)
    }

    /// `validate_commit` for an OffsetCommit or (`transactional`) a TxnOffsetCommit.
    pub fn validate_commit_as(
        &self,
        group_id: &str,
        member_id: &str,
        instance_id: Option<&str>,
        generation: i32,
        transactional: bool,
    ) -> Result<(), GroupError> {
        if group_id.is_empty() {
            return Err(GroupError::InvalidGroupId);
        }
        match self.groups.get(group_id) {
            Some(g) => g.validate_commit_as(member_id, instance_id, generation, transactional),
            None if generation < 0 => Ok(()),
            None => Err(GroupError::IllegalGeneration),
        }
    }

    pub fn state(&self, group_id: &str) -> Option<GroupState> {
        self.groups.get(group_id).map(|g| g.state)
    }

    #[cfg(test)]
    pub fn generation(&self, group_id: &str) -> Option<i32> {
        self.groups.get(group_id).map(|g| g.generation)
    }

    /// When the group became Empty, if it is tracked and Empty.
    pub fn empty_since_ms(&self, group_id: &str) -> Option<i64> {
        self.groups
            .get(group_id)
            .filter(|g| g.state == GroupState::Empty)
            .map(|g| g.state_since_ms)
    }

    pub fn describe(&self, group_id: &str) -> Option<GroupSummary> {
        let g = self.groups.get(group_id)?;
        let stable = g.state == GroupState::Stable;
        let protocol = g.protocol_name.clone().unwrap_or_default();
        let mut members: Vec<_> = g.members.values().collect();
        members.sort_by_key(|m| m.join_seq);
        Some(GroupSummary {
            state: g.state,
            protocol_type: g.protocol_type.clone().unwrap_or_default(),
            protocol_data: if stable {
                protocol.clone()
            } else {
                String::new()
            },
            members: members
                .into_iter()
                .map(|m| MemberSummary {
                    member_id: m.id.clone(),
                    group_instance_id: m.instance_id.clone(),
                    client_id: m.client_id.clone(),
                    client_host: m.client_host.clone(),
                    metadata: if stable {
                        m.metadata(&protocol)
                    } else {
                        Bytes::new()
                    },
                    assignment: if stable {
                        m.assignment.clone()
                    } else {
                        Bytes::new()
                    },
                })
                .collect(),
        })
    }

    pub fn list(&self) -> Vec<ListedGroup> {
        self.groups
            .values()
            .map(|g| ListedGroup {
                group_id: g.id.clone(),
                protocol_type: g.protocol_type.clone().unwrap_or_default(),
                state: g.state,
            })
            .collect()
    }

    /// DeleteGroups: NON_EMPTY_GROUP while members remain. `Ok(true)` if it was tracked.
    pub fn delete(&mut self, group_id: &str) -> Result<bool, GroupError> {
        if group_id.is_empty() {
            return Err(GroupError::InvalidGroupId);
        }
        match self.groups.get(group_id) {
            None => Ok(false),
            Some(g) if g.state != GroupState::Empty => Err(GroupError::NonEmptyGroup),
            Some(_) => {
                self.groups.remove(group_id);
                self.waiting.retain(|_, g| g != group_id);
                Ok(true)
            }
        }
    }

    /// Drops an Empty group (its offsets expired or it never had any).
    pub fn remove_if_empty(&mut self, group_id: &str) -> bool {
        let empty = self
            .groups
            .get(group_id)
            .is_some_and(|g| g.state == GroupState::Empty && g.pending_members.is_empty());
        if empty {
            self.groups.remove(group_id);
        }
        empty
    }

    pub fn empty_groups(&self) -> Vec<String> {
        self.groups
            .values()
            .filter(|g| g.state == GroupState::Empty && g.pending_members.is_empty())
            .map(|g| g.id.clone())
            .collect()
    }

    pub fn offset_delete_policy(&self, group_id: &str) -> OffsetDeletePolicy {
        match self.groups.get(group_id) {
            None => OffsetDeletePolicy::Any,
            Some(g) if g.state == GroupState::Empty => OffsetDeletePolicy::Any,
            Some(g) if g.protocol_type.as_deref() == Some(super::assignor::CONSUMER_PROTOCOL) => {
                OffsetDeletePolicy::NotSubscribed(g.subscribed_topics())
            }
            Some(_) => OffsetDeletePolicy::Refused,
        }
    }
}

/// Whether a group's committed offsets have expired (Kafka's `offsets.retention.minutes`):
/// the group must have been without members for longer than `retention_ms` and nobody may
/// have committed within it. Membership is not persisted, so a group not tracked since this
/// start (`empty_since_ms` = `None` and `active` false) counts as emptied at the start.
/// `*_wall_ms` are wall-clock times (commit timestamps), `*_mono_ms` the coordinator clock.
pub fn offsets_expired(
    active: bool,
    empty_since_mono_ms: Option<i64>,
    now_mono_ms: i64,
    now_wall_ms: i64,
    last_commit_wall_ms: i64,
    started_wall_ms: i64,
    retention_ms: i64,
) -> bool {
    if active {
        return false;
    }
    let since_reference = now_wall_ms - last_commit_wall_ms.max(started_wall_ms);
    let empty_for = match empty_since_mono_ms {
        Some(t) => (now_mono_ms - t).min(since_reference),
        None => since_reference,
    };
    empty_for > retention_ms
}
