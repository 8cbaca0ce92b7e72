//! One classic group: members, generation, leader, protocol, and the transitions of Kafka's
//! GroupCoordinator (`onCompleteJoin`, `prepareRebalance`, heartbeat and pending-sync expiry).
//!
//! Invariants:
//! - `static_members` maps each instance id to the one member carrying it;
//! - `leader` is a member whenever `members` is non-empty, `None` when it is empty;
//! - `awaiting_join` is set only in PreparingRebalance, `awaiting_sync` only in
//!   CompletingRebalance; every ticket taken out of a member is answered (through `Effects`);
//! - a member waiting in JoinGroup or SyncGroup is never expired by its session timeout (the
//!   rebalance deadline or the pending-sync deadline bounds its wait instead);
//! - Empty ⇔ no members (pending members, which only hold an id, may exist).
//!
//! Layout: this file holds the group's state and the checks on it (member validation, commit
//! validation, subscriptions); `member.rs` one member; `initial.rs` the initial rebalance's
//! delay; `join.rs` JoinGroup; `rebalance.rs`
//! the rebalance and member removal; `sync.rs` SyncGroup; `session.rs` heartbeats, LeaveGroup
//! and the timers. `join.rs`, `sync.rs` and `session.rs` only add methods to `ClassicGroup`
//! and call `rebalance.rs`, `member.rs` and this file, never each other.

mod initial;
mod join;
mod member;
mod rebalance;
mod session;
mod sync;

use std::collections::{BTreeMap, BTreeSet};

use super::{Answer, GroupError, GroupState, Ticket, assignor};

use self::initial::InitialJoin;
use self::member::Member;

/// What a call did besides its direct result: answers for waiting tickets, and whether
/// anything changed that a waiter might care about.
#[derive(Default)]
pub(super) struct Effects {
    pub answers: Vec<(Ticket, Answer)>,
    pub changed: bool,
}

impl Effects {
    fn answer(&mut self, ticket: Ticket, answer: Answer) {
        self.answers.push((ticket, answer));
        self.changed = true;
    }
}

/// Member ids: `<client id or instance id>-<uuid-shaped random>`, as Kafka makes them. The
/// generator is seeded from outside so the state machine stays deterministic.
pub(super) struct IdGen {
    state: u64,
}

impl IdGen {
    pub fn new(seed: u64) -> IdGen {
        IdGen { state: seed }
    }

    fn next_u64(&mut self) -> u64 {
        // splitmix64
        self.state = self.state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    pub fn member_id(&mut self, prefix: &str) -> String {
        let (a, b) = (self.next_u64(), self.next_u64());
        format!(
            "{prefix}-{:08x}-{:04x}-{:04x}-{:04x}-{:012x}",
            a >> 32,
            (a >> 16) & 0xffff,
            a & 0xffff,
            b >> 48,
            b & 0xffff_ffff_ffff
        )
    }
}

pub(super) struct ClassicGroup {
    pub id: String,
    pub state: GroupState,
    pub generation: i32,
    pub protocol_type: Option<String>,
    pub protocol_name: Option<String>,
    pub leader: Option<String>,
    pub members: BTreeMap<String, Member>,
    /// Ids handed out with MEMBER_ID_REQUIRED, not yet used to join → their expiry deadline.
    pub pending_members: BTreeMap<String, i64>,
    /// group.instance.id → member id.
    pub static_members: BTreeMap<String, String>,
    /// PreparingRebalance: when the join completes even if some members have not rejoined.
    pub rebalance_deadline_ms: i64,
    /// Members that have not sent SyncGroup for the current generation.
    pub pending_sync: BTreeSet<String>,
    pub sync_deadline_ms: i64,
    pub state_since_ms: i64,
    next_join_seq: u64,
    /// `group.initial.rebalance.delay.ms` (`initial.rs`).
    initial_rebalance_delay_ms: i64,
    /// The initial rebalance's delay, while it runs.
    initial_join: Option<InitialJoin>,
}

impl ClassicGroup {
    pub fn new(id: String, now_ms: i64, initial_rebalance_delay_ms: i64) -> ClassicGroup {
        ClassicGroup {
            id,
            state: GroupState::Empty,
            generation: 0,
            protocol_type: None,
            protocol_name: None,
            leader: None,
            members: BTreeMap::new(),
            pending_members: BTreeMap::new(),
            static_members: BTreeMap::new(),
            rebalance_deadline_ms: 0,
            pending_sync: BTreeSet::new(),
            sync_deadline_ms: 0,
            state_since_ms: now_ms,
            next_join_seq: 0,
            initial_rebalance_delay_ms,
            initial_join: None,
        }
    }

    pub fn is_leader(&self, member_id: &str) -> bool {
        self.leader.as_deref() == Some(member_id)
    }

    /// FENCED_INSTANCE_ID if the instance id belongs to another member, UNKNOWN_MEMBER_ID if
    /// the member is not in the group.
    pub fn validate_member(
        &self,
        member_id: &str,
        instance_id: Option<&str>,
    ) -> Result<(), GroupError> {
        if let Some(iid) = instance_id {
            return match self.static_members.get(iid) {
                Some(m) if m == member_id => Ok(()),
                Some(_) => Err(GroupError::FencedInstanceId),
                None => Err(GroupError::UnknownMemberId),
            };
        }
        if self.members.contains_key(member_id) {
            Ok(())
        } else {
            Err(GroupError::UnknownMemberId)
        }
    }

    /// Kafka's offset-commit validation for a classic group, of an OffsetCommit or (with
    /// `transactional`) a TxnOffsetCommit, which Kafka accepts without member id and
    /// generation while the group has members, and during CompletingRebalance.
    pub fn validate_commit_as(
        &self,
        member_id: &str,
        instance_id: Option<&str>,
        generation: i32,
        transactional: bool,
    ) -> Result<(), GroupError> {
        if generation < 0 && self.state == GroupState::Empty {
            return Ok(());
        }
        if generation >= 0 || !member_id.is_empty() || instance_id.is_some() {
            self.validate_member(member_id, instance_id)?;
            if generation != self.generation {
                return Err(GroupError::IllegalGeneration);
            }
        } else if self.state != GroupState::Empty && !transactional {
            // A simple (generation -1) commit only while nobody is a member.
            return Err(GroupError::UnknownMemberId);
        }
        if self.state == GroupState::CompletingRebalance && !transactional {
            return Err(GroupError::RebalanceInProgress);
        }
        Ok(())
    }

    /// Topics the members subscribe to, from their consumer-protocol metadata; `None` when
    /// some member's metadata cannot be read (then every topic counts as subscribed).
    pub fn subscribed_topics(&self) -> Option<BTreeSet<String>> {
        let mut topics = BTreeSet::new();
        for m in self.members.values() {
            let metadata = match &self.protocol_name {
                Some(p) => m.metadata(p),
                None => m.protocols.first()?.metadata.clone(),
            };
            topics.extend(assignor::decode_subscription(&metadata)?);
        }
        Some(topics)
    }
}
