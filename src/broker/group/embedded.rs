//! The membership side of an embedded consumer: join, (as leader) run the range assignor,
//! sync, heartbeat, rejoin on a rebalance, leave. It calls the broker's coordinator directly
//! (no TCP) and never blocks: `step` does whatever can be done now and reports assignment
//! changes; the consumer waits between steps in the broker's wait set, on its group's key.

use std::collections::BTreeMap;

use super::assignor::{self, CONSUMER_PROTOCOL, RANGE, Subscriber};
use super::{
    Answer, GroupError, JoinRequest, JoinResponse, JoinedMember, LeavingMember, Poll, Protocol,
    Reply, SyncRequest, SyncResponse, Ticket,
};
use crate::broker::Broker;
use crate::types::TopicPartition;

use crate::limits::RETRY_BACKOFF_MS;
use crate::limits::STEP_CALLS_MAX;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberConfig {
    pub group_id: String,
    pub group_instance_id: Option<String>,
    pub client_id: String,
    pub session_timeout_ms: i32,
    pub rebalance_timeout_ms: i32,
    pub heartbeat_interval_ms: i64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Unjoined,
    Joining(Ticket),
    Syncing(Ticket),
    Stable { next_heartbeat_ms: i64 },
}

/// What a `step` changed for the consumer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    None,
    /// A rebalance started: stop consuming until the next assignment.
    Revoked,
    /// The assignment of `generation`.
    Assigned {
        partitions: Vec<TopicPartition>,
        generation: i32,
    },
}

pub struct EmbeddedMember {
    config: MemberConfig,
    topics: Vec<String>,
    member_id: String,
    generation: i32,
    phase: Phase,
    seen_changes: u64,
    /// Unjoined: do not rejoin before this time. Joining/Syncing: poll again by then.
    wake_at_ms: i64,
    /// As leader: the partition counts the current assignment was computed from.
    leader_counts: Option<BTreeMap<String, i32>>,
}

impl EmbeddedMember {
    pub fn new(config: MemberConfig, topics: Vec<String>) -> EmbeddedMember {
        EmbeddedMember {
            config,
            topics,
            member_id: String::new(),
            generation: -1,
            phase: Phase::Unjoined,
            seen_changes: 0,
            wake_at_ms: 0,
            leader_counts: None,
        }
    }

    pub fn group_id(&self) -> &str {
        &self.config.group_id
    }

    pub fn member_id(&self) -> &str {
        &self.member_id
    }

    pub fn generation(&self) -> i32 {
        self.generation
    }

    pub fn group_instance_id(&self) -> Option<&str> {
        self.config.group_instance_id.as_deref()
    }

    pub fn is_stable(&self) -> bool {
        matches!(self.phase, Phase::Stable { .. })
    }

    /// Changes the subscription; the next `step` rejoins if it differs.
    pub fn set_topics(&mut self, topics: Vec<String>, broker: &Broker) -> bool {
        if topics == self.topics {
            return false;
        }
        self.topics = topics;
        self.rejoin(broker);
        true
    }

    /// Drops out of the current generation; the next `step` joins again (same member id).
    pub fn rejoin(&mut self, broker: &Broker) {
        self.forget_ticket(broker);
        self.phase = Phase::Unjoined;
        self.wake_at_ms = 0;
        self.leader_counts = None;
    }

    fn forget_ticket(&mut self, broker: &Broker) {
        if let Phase::Joining(t) | Phase::Syncing(t) = self.phase {
            broker.groups().forget(t);
        }
    }

    /// When the consumer should call `step` again even if nothing wakes it.
    pub fn next_wakeup_ms(&self) -> i64 {
        match self.phase {
            Phase::Stable { next_heartbeat_ms } => next_heartbeat_ms,
            _ => self.wake_at_ms,
        }
    }

    /// Leaves the group (static members stay, as Kafka's clients do on close).
    pub fn leave(&mut self, broker: &Broker) {
        let id = std::mem::take(&mut self.member_id);
        if !id.is_empty() && self.config.group_instance_id.is_none() {
            let leaving = [LeavingMember {
                member_id: id,
                group_instance_id: None,
            }];
            let _ = broker.groups().leave(&self.config.group_id, &leaving);
        }
        self.forget_ticket(broker);
        self.phase = Phase::Unjoined;
        self.generation = -1;
    }

    /// Does what membership needs now: join, sync, heartbeat, rejoin. Never waits.
    pub fn step(&mut self, broker: &Broker) -> Result<Change, GroupError> {
        let groups = broker.groups();
        let mut change = Change::None;
        for _ in 0..STEP_CALLS_MAX {
            let now = groups.now_ms();
            match self.phase {
                Phase::Unjoined => {
                    if now < self.wake_at_ms {
                        break;
                    }
                    match groups.join(self.join_request()) {
                        Reply::Done(r) => {
                            if let Some(c) = self.on_join(broker, r)? {
                                change = c;
                            }
                        }
                        Reply::Wait(t) => self.phase = Phase::Joining(t),
                    }
                }
                Phase::Joining(t) => match groups.poll(t) {
                    Poll::Ready(Answer::Join(r)) => {
                        if let Some(c) = self.on_join(broker, r)? {
                            change = c;
                        }
                    }
                    Poll::Pending { deadline_ms } => {
                        self.wake_at_ms = deadline_ms;
                        break;
                    }
                    _ => {
                        self.phase = Phase::Unjoined;
                        self.wake_at_ms = 0;
                    }
                },
                Phase::Syncing(t) => match groups.poll(t) {
                    Poll::Ready(Answer::Sync(r)) => {
                        if let Some(c) = self.on_sync(broker, r)? {
                            change = c;
                        }
                    }
                    Poll::Pending { deadline_ms } => {
                        self.wake_at_ms = deadline_ms;
                        break;
                    }
                    _ => {
                        self.phase = Phase::Unjoined;
                        self.wake_at_ms = 0;
                    }
                },
                Phase::Stable { next_heartbeat_ms } => {
                    let changes = groups.changes();
                    if now < next_heartbeat_ms && changes == self.seen_changes {
                        break;
                    }
                    self.seen_changes = changes;
                    let hb = groups.heartbeat(
                        &self.config.group_id,
                        &self.member_id,
                        self.config.group_instance_id.as_deref(),
                        self.generation,
                    );
                    match hb {
                        Ok(()) if self.partitions_changed(broker) => {
                            // As leader, re-assign when a subscribed topic grew.
                            self.phase = Phase::Unjoined;
                            change = Change::Revoked;
                        }
                        Ok(()) => {
                            self.phase = Phase::Stable {
                                next_heartbeat_ms: now + self.config.heartbeat_interval_ms,
                            };
                            break;
                        }
                        Err(e) => {
                            self.on_error(e, now)?;
                            change = Change::Revoked;
                        }
                    }
                }
            }
        }
        let now = groups.now_ms();
        if self.phase == Phase::Unjoined && self.wake_at_ms <= now {
            // Out of calls while rejoining keeps failing: back off instead of spinning.
            self.wake_at_ms = now + RETRY_BACKOFF_MS;
        }
        Ok(change)
    }

    fn join_request(&self) -> JoinRequest {
        JoinRequest {
            group_id: self.config.group_id.clone(),
            member_id: self.member_id.clone(),
            group_instance_id: self.config.group_instance_id.clone(),
            client_id: self.config.client_id.clone(),
            client_host: "embedded".to_string(),
            session_timeout_ms: self.config.session_timeout_ms,
            rebalance_timeout_ms: self.config.rebalance_timeout_ms,
            protocol_type: CONSUMER_PROTOCOL.to_string(),
            protocols: vec![Protocol {
                name: RANGE.to_string(),
                metadata: assignor::encode_subscription(&self.topics),
            }],
            require_known_member_id: false,
        }
    }

    /// Retriable errors send the member back to join (clearing its id if the group forgot
    /// it); the others are returned.
    fn on_error(&mut self, e: GroupError, now: i64) -> Result<(), GroupError> {
        self.phase = Phase::Unjoined;
        self.wake_at_ms = 0;
        self.leader_counts = None;
        match e {
            GroupError::UnknownMemberId => self.member_id.clear(),
            GroupError::RebalanceInProgress | GroupError::IllegalGeneration => {}
            GroupError::CoordinatorNotAvailable => self.wake_at_ms = now + RETRY_BACKOFF_MS,
            other => return Err(other),
        }
        Ok(())
    }

    fn on_join(&mut self, broker: &Broker, r: JoinResponse) -> Result<Option<Change>, GroupError> {
        let now = broker.groups().now_ms();
        match r.error {
            None => {}
            Some(GroupError::MemberIdRequired) => {
                self.member_id = r.member_id;
                self.phase = Phase::Unjoined;
                self.wake_at_ms = 0;
                return Ok(None);
            }
            Some(e) => {
                self.on_error(e, now)?;
                return Ok(None);
            }
        }
        self.member_id = r.member_id;
        self.generation = r.generation_id;
        let assignments = if r.leader == self.member_id && !r.skip_assignment {
            self.assign(broker, &r.members)
        } else {
            Vec::new()
        };
        let req = SyncRequest {
            group_id: self.config.group_id.clone(),
            member_id: self.member_id.clone(),
            group_instance_id: self.config.group_instance_id.clone(),
            generation_id: self.generation,
            protocol_type: r.protocol_type,
            protocol_name: r.protocol_name,
            assignments,
        };
        match broker.groups().sync(req) {
            Reply::Done(s) => self.on_sync(broker, s),
            Reply::Wait(t) => {
                self.phase = Phase::Syncing(t);
                Ok(None)
            }
        }
    }

    fn on_sync(&mut self, broker: &Broker, r: SyncResponse) -> Result<Option<Change>, GroupError> {
        let groups = broker.groups();
        let now = groups.now_ms();
        if let Some(e) = r.error {
            self.on_error(e, now)?;
            return Ok(None);
        }
        let parts = assignor::decode_assignment(&r.assignment).unwrap_or_else(|| {
            log::warn!(
                "group {}: undecodable assignment from the leader; consuming nothing",
                self.config.group_id
            );
            Vec::new()
        });
        self.phase = Phase::Stable {
            next_heartbeat_ms: now + self.config.heartbeat_interval_ms,
        };
        self.seen_changes = groups.changes();
        let partitions = parts
            .into_iter()
            .flat_map(|(t, ps)| {
                ps.into_iter()
                    .map(move |p| TopicPartition::new(t.clone(), p))
            })
            .collect();
        Ok(Some(Change::Assigned {
            partitions,
            generation: self.generation,
        }))
    }

    /// The leader's range assignment over every member's subscription.
    fn assign(&mut self, broker: &Broker, members: &[JoinedMember]) -> Vec<(String, bytes::Bytes)> {
        let subs: Vec<Subscriber> = members
            .iter()
            .map(|m| Subscriber {
                member_id: m.member_id.clone(),
                group_instance_id: m.group_instance_id.clone(),
                topics: assignor::decode_subscription(&m.metadata).unwrap_or_default(),
            })
            .collect();
        let counts = partition_counts(broker, subs.iter().flat_map(|s| s.topics.iter()));
        let assignment = assignor::range_assign(&subs, &counts);
        self.leader_counts = Some(counts);
        assignment
            .into_iter()
            .map(|(m, parts)| (m, assignor::encode_assignment(&parts)))
            .collect()
    }

    fn partitions_changed(&self, broker: &Broker) -> bool {
        self.leader_counts
            .as_ref()
            .is_some_and(|counts| partition_counts(broker, counts.keys()) != *counts)
    }
}

fn partition_counts<'a>(
    broker: &Broker,
    topics: impl Iterator<Item = &'a String>,
) -> BTreeMap<String, i32> {
    let mut counts = BTreeMap::new();
    for t in topics {
        if let Ok(n) = broker.partition_count(t) {
            counts.insert(t.clone(), n as i32);
        }
    }
    counts
}
