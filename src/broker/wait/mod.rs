//! The one wait set: everything that must wait for a partition's high watermark, a group's
//! state change, the offsets file's fsync, or a deadline — parked wire requests (long-poll
//! Fetch, acks=all Produce, JoinGroup/SyncGroup, OffsetCommit) and threads of the embedded API
//! (a `poll`, a blocking `send` or `commit`) — waits here, keyed by what can complete it.
//!
//! `set.rs` is the sans-IO core: fed keys, events and an explicit `now`, it hands back what
//! to wake and why (`Wake::Event`, `Wake::Deadline`, `Wake::Shutdown`); it never touches a
//! clock, a thread or a lock, so every case is unit-tested deterministically. `shell.rs` is the
//! broker's thread-safe shell: a mutex around the core, one timer thread for deadlines, and
//! the wake-up callbacks run outside the lock.
//!
//! No lost wake-ups: each key has an epoch bumped by every event on it. A waiter reads the
//! epochs of its keys *before* it checks its condition and parks with them; if any moved in
//! between, the park completes at once with `Wake::Event`.

mod set;
mod shell;

pub use shell::{Waits, spawn_timer};

/// What a waiter waits for.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum WaitKey {
    /// A partition's high watermark moved (or its log changed in a way readers must see:
    /// poisoned by a failed fsync, truncated, deleted).
    Partition(String, i32),
    /// A consumer group changed state (a member joined, left, an assignment arrived).
    Group(String),
    /// The group coordinator has a deadline earlier than the one its timer thread waits for
    /// (`GroupService::run_timer`).
    GroupDeadline,
    /// The committed-offsets file was fsynced (commits written before it are durable), or an
    /// fsync of it failed (`OffsetStore`).
    Offsets,
    /// The transaction coordinator has new work for its thread (a marker write to finish, an
    /// earlier deadline): `broker::txn::service`.
    TxnCoordinator,
    /// The transaction state log was fsynced (or its fsync failed): the records written
    /// before it are applied, their results ready (`TxnService::collect`).
    TxnLog,
}

impl WaitKey {
    pub fn partition(topic: &str, partition: i32) -> WaitKey {
        WaitKey::Partition(topic.to_string(), partition)
    }

    pub fn group(group_id: &str) -> WaitKey {
        WaitKey::Group(group_id.to_string())
    }
}

/// Why a waiter was woken.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Wake {
    /// An event on one of its keys (or one happened between reading the epochs and parking).
    Event,
    /// Its deadline passed.
    Deadline,
    /// Its scope is shutting down: answer now with what there is.
    Shutdown,
}

/// A scope groups waiters that shut down together: `BROKER_SCOPE` for the embedded API, one
/// per wire server (a server can stop while the broker it serves stays open).
pub type Scope = u64;
pub const BROKER_SCOPE: Scope = 0;
/// The broker's own timer threads (the group coordinator's, `group/timer.rs`): shut down with
/// the broker, not counted as parked clients. Wire servers' scopes count up from 1.
pub const INTERNAL_SCOPE: Scope = Scope::MAX - 1;
