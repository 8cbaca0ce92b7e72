//! The classic consumer-group protocol, as Kafka's GroupCoordinator runs it.
//!
//! `GroupCoordinator` (in `coordinator.rs`, per group in `classic.rs`) is a sans-IO state
//! machine in the style of raft-rs: it is fed requests and ticks with an explicit `now_ms`,
//! answers at once or hands back a `Ticket` for a request that must wait for other members
//! (JoinGroup until everyone rejoined, SyncGroup until the leader's assignment), and never
//! touches a thread, a socket or a clock. `GroupService` (`service.rs`) is the thread-safe
//! shell the broker owns: a mutex, a monotonic clock, and an event for each group that changed
//! (events on the broker's wait set, which wake parked wire requests and embedded consumers).
//! `timer.rs` is its timer thread, applying deadlines (session expiry, timeouts) when due.
//!
//! States: Empty → PreparingRebalance → CompletingRebalance → Stable, back to
//! PreparingRebalance on any membership change, to Empty when the last member is gone.
//! Membership is not persisted: after a restart members rejoin (committed offsets are, in
//! `offset_store.rs`).

pub mod assignor;
mod classic;
mod coordinator;
#[cfg(test)]
mod deadline_tests;
pub mod embedded;
#[cfg(test)]
mod initial_delay_tests;
mod service;
#[cfg(test)]
mod tests;
mod timer;

use bytes::Bytes;

pub use self::coordinator::{
    GroupCoordinator, GroupSummary, ListedGroup, OffsetDeletePolicy, Poll,
};
pub use self::service::GroupService;
/// Defined with the crate's error table, below every layer that reports it.
pub use crate::error::GroupError;

/// Identifies a waiting JoinGroup or SyncGroup until its answer is taken with `poll`.
pub type Ticket = u64;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GroupState {
    Empty,
    PreparingRebalance,
    CompletingRebalance,
    Stable,
    Dead,
}

impl GroupState {
    /// The name Kafka reports in DescribeGroups and ListGroups.
    pub fn as_str(self) -> &'static str {
        match self {
            GroupState::Empty => "Empty",
            GroupState::PreparingRebalance => "PreparingRebalance",
            GroupState::CompletingRebalance => "CompletingRebalance",
            GroupState::Stable => "Stable",
            GroupState::Dead => "Dead",
        }
    }
}

/// Bounds and timeouts of the coordinator (Kafka's `group.*` broker settings).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupConfig {
    /// Kafka's `group.min.session.timeout.ms`.
    pub min_session_timeout_ms: i32,
    /// Kafka's `group.max.session.timeout.ms`.
    pub max_session_timeout_ms: i32,
    /// Members (plus members still to confirm their id) one group may hold
    /// (`group.max.size`).
    pub group_members_max: usize,
    /// Groups the coordinator tracks at once; past this a new group is refused.
    pub groups_max: usize,
    /// How long an answer nobody took is kept before it is dropped.
    pub answer_ttl_ms: i64,
    /// Kafka's `group.initial.rebalance.delay.ms`: the first rebalance of an Empty group
    /// waits this long for more members, extended while new ones keep arriving (0: none).
    pub initial_rebalance_delay_ms: i64,
}

impl Default for GroupConfig {
    fn default() -> Self {
        GroupConfig {
            min_session_timeout_ms: 6_000,
            max_session_timeout_ms: 1_800_000,
            group_members_max: 1_000,
            groups_max: 100_000,
            answer_ttl_ms: 600_000,
            initial_rebalance_delay_ms: 3_000,
        }
    }
}

/// One protocol a member supports (e.g. `range`) with its metadata (the subscription).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Protocol {
    pub name: String,
    pub metadata: Bytes,
}

/// A JoinGroup as the coordinator sees it (wire versions mapped by the caller).
#[derive(Debug, Clone, Default)]
pub struct JoinRequest {
    pub group_id: String,
    /// Empty on a member's first join.
    pub member_id: String,
    pub group_instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub session_timeout_ms: i32,
    pub rebalance_timeout_ms: i32,
    pub protocol_type: String,
    pub protocols: Vec<Protocol>,
    /// JoinGroup v4+: a member without an id gets one with MEMBER_ID_REQUIRED and must
    /// rejoin with it (so a lost response does not leave a ghost member).
    pub require_known_member_id: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JoinedMember {
    pub member_id: String,
    pub group_instance_id: Option<String>,
    pub metadata: Bytes,
}

/// The answer to a JoinGroup. `error` set means the other fields (but `member_id` for
/// MEMBER_ID_REQUIRED) carry no information.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct JoinResponse {
    pub error: Option<GroupError>,
    pub generation_id: i32,
    pub protocol_type: Option<String>,
    pub protocol_name: Option<String>,
    pub leader: String,
    /// The leader already has a valid assignment (a static leader rejoined, KIP-814).
    pub skip_assignment: bool,
    pub member_id: String,
    /// Every member with its metadata: only for the leader.
    pub members: Vec<JoinedMember>,
}

impl JoinResponse {
    pub(crate) fn error(e: GroupError, member_id: &str) -> JoinResponse {
        JoinResponse {
            error: Some(e),
            generation_id: -1,
            member_id: member_id.to_string(),
            ..JoinResponse::default()
        }
    }
}

#[derive(Debug, Clone, Default)]
pub struct SyncRequest {
    pub group_id: String,
    pub member_id: String,
    pub group_instance_id: Option<String>,
    pub generation_id: i32,
    pub protocol_type: Option<String>,
    pub protocol_name: Option<String>,
    /// The leader's assignment per member id; empty from followers.
    pub assignments: Vec<(String, Bytes)>,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SyncResponse {
    pub error: Option<GroupError>,
    pub protocol_type: Option<String>,
    pub protocol_name: Option<String>,
    pub assignment: Bytes,
}

impl SyncResponse {
    pub(crate) fn error(e: GroupError) -> SyncResponse {
        SyncResponse {
            error: Some(e),
            ..SyncResponse::default()
        }
    }
}

/// What a waiting request gets once it can be answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    Join(JoinResponse),
    Sync(SyncResponse),
}

/// A coordinator call either answers now or must wait (poll the ticket after a group event).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply<T> {
    Done(T),
    Wait(Ticket),
}

/// A member leaving: by member id, or (administratively) by instance id with an empty id.
#[derive(Debug, Clone, Default)]
pub struct LeavingMember {
    pub member_id: String,
    pub group_instance_id: Option<String>,
}
