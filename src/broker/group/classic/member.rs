//! One member of a classic group: what it joined with (protocols, timeouts, client), its
//! assignment, its session deadline and the JoinGroup/SyncGroup ticket it waits on.
//!
//! Invariants:
//! - `rebalance_timeout_ms` is at least `REBALANCE_TIMEOUT_MIN_MS` (a non-positive one would
//!   end every rebalance at once);
//! - `heartbeat_deadline_ms` is `session_timeout_ms` after the member was last heard from;
//! - `join_seq` never changes once given: it orders members by first join.

use bytes::Bytes;

use crate::broker::group::{JoinRequest, Protocol, Ticket};
use crate::limits::REBALANCE_TIMEOUT_MIN_MS;

pub(in crate::broker::group) struct Member {
    pub id: String,
    pub instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub session_timeout_ms: i64,
    pub rebalance_timeout_ms: i64,
    pub protocol_type: String,
    pub protocols: Vec<Protocol>,
    pub assignment: Bytes,
    /// Order of first join; the earliest joined member is preferred as leader.
    pub join_seq: u64,
    pub heartbeat_deadline_ms: i64,
    pub awaiting_join: Option<Ticket>,
    pub awaiting_sync: Option<Ticket>,
}

impl Member {
    pub(super) fn new(id: String, req: &JoinRequest, now_ms: i64, join_seq: u64) -> Member {
        let mut m = Member {
            id,
            instance_id: req.group_instance_id.clone(),
            client_id: String::new(),
            client_host: String::new(),
            session_timeout_ms: 0,
            rebalance_timeout_ms: 0,
            protocol_type: String::new(),
            protocols: Vec::new(),
            assignment: Bytes::new(),
            join_seq,
            heartbeat_deadline_ms: 0,
            awaiting_join: None,
            awaiting_sync: None,
        };
        m.update(req, now_ms);
        m
    }

    pub(super) fn update(&mut self, req: &JoinRequest, now_ms: i64) {
        self.client_id = req.client_id.clone();
        self.client_host = req.client_host.clone();
        self.session_timeout_ms = i64::from(req.session_timeout_ms);
        // A non-positive rebalance timeout would make every rebalance end at once.
        self.rebalance_timeout_ms =
            i64::from(req.rebalance_timeout_ms.max(REBALANCE_TIMEOUT_MIN_MS));
        self.protocol_type = req.protocol_type.clone();
        self.protocols = req.protocols.clone();
        self.heartbeat(now_ms);
    }

    pub(super) fn heartbeat(&mut self, now_ms: i64) {
        self.heartbeat_deadline_ms = now_ms + self.session_timeout_ms;
    }

    pub(super) fn matches(&self, req: &JoinRequest) -> bool {
        self.protocol_type == req.protocol_type && self.protocols == req.protocols
    }

    pub(super) fn supports(&self, protocol: &str) -> bool {
        self.protocols.iter().any(|p| p.name == protocol)
    }

    pub fn metadata(&self, protocol: &str) -> Bytes {
        self.protocols
            .iter()
            .find(|p| p.name == protocol)
            .map(|p| p.metadata.clone())
            .unwrap_or_default()
    }

    pub(super) fn is_waiting(&self) -> bool {
        self.awaiting_join.is_some() || self.awaiting_sync.is_some()
    }
}
