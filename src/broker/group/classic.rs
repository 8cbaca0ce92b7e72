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

use std::collections::{BTreeMap, BTreeSet};

use bytes::Bytes;

use super::{
    Answer, GroupConfig, GroupError, GroupState, JoinRequest, JoinResponse, JoinedMember,
    LeavingMember, Protocol, SyncRequest, SyncResponse, Ticket, assignor,
};

use crate::limits::REBALANCE_TIMEOUT_MIN_MS;

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

pub(super) struct Member {
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
    fn new(id: String, req: &JoinRequest, now_ms: i64, join_seq: u64) -> Member {
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

    fn update(&mut self, req: &JoinRequest, now_ms: i64) {
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

    fn heartbeat(&mut self, now_ms: i64) {
        self.heartbeat_deadline_ms = now_ms + self.session_timeout_ms;
    }

    fn matches(&self, req: &JoinRequest) -> bool {
        self.protocol_type == req.protocol_type && self.protocols == req.protocols
    }

    fn supports(&self, protocol: &str) -> bool {
        self.protocols.iter().any(|p| p.name == protocol)
    }

    pub fn metadata(&self, protocol: &str) -> Bytes {
        self.protocols
            .iter()
            .find(|p| p.name == protocol)
            .map(|p| p.metadata.clone())
            .unwrap_or_default()
    }

    fn is_waiting(&self) -> bool {
        self.awaiting_join.is_some() || self.awaiting_sync.is_some()
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
}

impl ClassicGroup {
    pub fn new(id: String, now_ms: i64) -> ClassicGroup {
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

    /// As Kafka: an empty group takes any non-empty protocol list; otherwise the type must
    /// match and one offered protocol must be supported by every other member.
    fn supports_protocols(&self, req: &JoinRequest) -> bool {
        if req.protocol_type.is_empty() || req.protocols.is_empty() {
            return false;
        }
        let others: Vec<&Member> = self
            .members
            .values()
            .filter(|m| m.id != req.member_id)
            .collect();
        if others.is_empty() {
            return true;
        }
        self.protocol_type.as_deref() == Some(req.protocol_type.as_str())
            && req
                .protocols
                .iter()
                .any(|p| others.iter().all(|m| m.supports(&p.name)))
    }

    fn is_full(&self, config: &GroupConfig) -> bool {
        self.members.len() + self.pending_members.len() >= config.group_members_max
    }

    /// JoinGroup. `Some` is an immediate answer; `None` means the request waits on `ticket`
    /// (which may already be answered in `fx`).
    pub fn join(
        &mut self,
        now_ms: i64,
        req: &JoinRequest,
        ticket: Ticket,
        ids: &mut IdGen,
        config: &GroupConfig,
        fx: &mut Effects,
    ) -> Option<JoinResponse> {
        if !self.supports_protocols(req) {
            return Some(JoinResponse::error(
                GroupError::InconsistentGroupProtocol,
                &req.member_id,
            ));
        }
        if req.member_id.is_empty() {
            self.join_new_member(now_ms, req, ticket, ids, config, fx)
        } else {
            self.join_known_member(now_ms, req, ticket, fx)
        }
    }

    fn join_new_member(
        &mut self,
        now_ms: i64,
        req: &JoinRequest,
        ticket: Ticket,
        ids: &mut IdGen,
        config: &GroupConfig,
        fx: &mut Effects,
    ) -> Option<JoinResponse> {
        if let Some(iid) = &req.group_instance_id {
            if let Some(old_id) = self.static_members.get(iid).cloned() {
                let new_id = ids.member_id(iid);
                return self.replace_static_member(now_ms, &old_id, new_id, req, ticket, fx);
            }
            if self.is_full(config) {
                return Some(JoinResponse::error(GroupError::GroupMaxSizeReached, ""));
            }
            // Static members skip MEMBER_ID_REQUIRED: the instance id already names them.
            let id = ids.member_id(iid);
            self.add_member_and_rebalance(now_ms, id, req, ticket, fx);
            return None;
        }
        if self.is_full(config) {
            return Some(JoinResponse::error(GroupError::GroupMaxSizeReached, ""));
        }
        let id = ids.member_id(&req.client_id);
        if req.require_known_member_id {
            self.pending_members
                .insert(id.clone(), now_ms + i64::from(req.session_timeout_ms));
            return Some(JoinResponse::error(GroupError::MemberIdRequired, &id));
        }
        self.add_member_and_rebalance(now_ms, id, req, ticket, fx);
        None
    }

    fn join_known_member(
        &mut self,
        now_ms: i64,
        req: &JoinRequest,
        ticket: Ticket,
        fx: &mut Effects,
    ) -> Option<JoinResponse> {
        let id = req.member_id.clone();
        if self.pending_members.remove(&id).is_some() {
            self.add_member_and_rebalance(now_ms, id, req, ticket, fx);
            return None;
        }
        if let Err(e) = self.validate_member(&id, req.group_instance_id.as_deref()) {
            return Some(JoinResponse::error(e, &id));
        }
        let is_leader = self.is_leader(&id);
        let state = self.state;
        let member = self.members.get_mut(&id)?;
        match state {
            GroupState::Empty | GroupState::Dead => {
                Some(JoinResponse::error(GroupError::UnknownMemberId, &id))
            }
            GroupState::PreparingRebalance => {
                member.update(req, now_ms);
                if let Some(old) = member.awaiting_join.replace(ticket) {
                    let e = JoinResponse::error(GroupError::RebalanceInProgress, &id);
                    fx.answer(old, Answer::Join(e));
                }
                fx.changed = true;
                self.maybe_complete_join(now_ms, fx);
                None
            }
            GroupState::CompletingRebalance | GroupState::Stable => {
                let rebalance = !member.matches(req) || (state == GroupState::Stable && is_leader);
                if !rebalance {
                    // The member lost its JoinGroup response: resend the current generation.
                    member.heartbeat(now_ms);
                    return Some(self.current_join_response(&id, false));
                }
                member.update(req, now_ms);
                member.awaiting_join = Some(ticket);
                self.prepare_rebalance(now_ms, fx);
                None
            }
        }
    }

    /// KIP-345: a known instance id rejoined with a new member id. The old id is fenced; in
    /// Stable with unchanged protocols the group keeps its generation and assignment.
    fn replace_static_member(
        &mut self,
        now_ms: i64,
        old_id: &str,
        new_id: String,
        req: &JoinRequest,
        ticket: Ticket,
        fx: &mut Effects,
    ) -> Option<JoinResponse> {
        let Some(mut member) = self.members.remove(old_id) else {
            return Some(JoinResponse::error(GroupError::UnknownMemberId, ""));
        };
        if let Some(t) = member.awaiting_join.take() {
            let e = JoinResponse::error(GroupError::FencedInstanceId, old_id);
            fx.answer(t, Answer::Join(e));
        }
        if let Some(t) = member.awaiting_sync.take() {
            fx.answer(
                t,
                Answer::Sync(SyncResponse::error(GroupError::FencedInstanceId)),
            );
        }
        let unchanged = member.matches(req);
        member.id = new_id.clone();
        member.update(req, now_ms);
        if let Some(iid) = &member.instance_id {
            self.static_members.insert(iid.clone(), new_id.clone());
        }
        self.members.insert(new_id.clone(), member);
        if self.is_leader(old_id) {
            self.leader = Some(new_id.clone());
        }
        if self.pending_sync.remove(old_id) {
            self.pending_sync.insert(new_id.clone());
        }
        fx.changed = true;
        match self.state {
            GroupState::Stable if unchanged => {
                let is_leader = self.is_leader(&new_id);
                let mut resp = self.current_join_response(&new_id, is_leader);
                resp.skip_assignment = is_leader;
                return Some(resp);
            }
            GroupState::PreparingRebalance => {
                if let Some(m) = self.members.get_mut(&new_id) {
                    m.awaiting_join = Some(ticket);
                }
                self.maybe_complete_join(now_ms, fx);
            }
            _ => {
                // CompletingRebalance: the leader may be assigning to the old id; rebalance.
                if let Some(m) = self.members.get_mut(&new_id) {
                    m.awaiting_join = Some(ticket);
                }
                self.prepare_rebalance(now_ms, fx);
            }
        }
        None
    }

    fn add_member_and_rebalance(
        &mut self,
        now_ms: i64,
        id: String,
        req: &JoinRequest,
        ticket: Ticket,
        fx: &mut Effects,
    ) {
        let seq = self.next_join_seq;
        self.next_join_seq += 1;
        let mut member = Member::new(id.clone(), req, now_ms, seq);
        member.awaiting_join = Some(ticket);
        if self.members.is_empty() {
            self.protocol_type = Some(req.protocol_type.clone());
        }
        if self.leader.is_none() {
            self.leader = Some(id.clone());
        }
        if let Some(iid) = &req.group_instance_id {
            self.static_members.insert(iid.clone(), id.clone());
        }
        self.members.insert(id, member);
        fx.changed = true;
        if self.state == GroupState::PreparingRebalance {
            self.maybe_complete_join(now_ms, fx);
        } else {
            self.prepare_rebalance(now_ms, fx);
        }
    }

    /// The JoinGroup answer for the current generation (the leader also gets the members).
    fn current_join_response(&self, member_id: &str, with_members: bool) -> JoinResponse {
        JoinResponse {
            error: None,
            generation_id: self.generation,
            protocol_type: self.protocol_type.clone(),
            protocol_name: self.protocol_name.clone(),
            leader: self.leader.clone().unwrap_or_default(),
            skip_assignment: false,
            member_id: member_id.to_string(),
            members: if with_members {
                self.member_list()
            } else {
                Vec::new()
            },
        }
    }

    fn member_list(&self) -> Vec<JoinedMember> {
        let protocol = self.protocol_name.clone().unwrap_or_default();
        let mut ms: Vec<&Member> = self.members.values().collect();
        ms.sort_by_key(|m| m.join_seq);
        ms.into_iter()
            .map(|m| JoinedMember {
                member_id: m.id.clone(),
                group_instance_id: m.instance_id.clone(),
                metadata: m.metadata(&protocol),
            })
            .collect()
    }

    fn transition(&mut self, state: GroupState, now_ms: i64, fx: &mut Effects) {
        self.state = state;
        self.state_since_ms = now_ms;
        fx.changed = true;
    }

    fn rebalance_timeout_ms(&self) -> i64 {
        self.members
            .values()
            .map(|m| m.rebalance_timeout_ms)
            .max()
            .unwrap_or(0)
    }

    /// Starts a rebalance: waiting SyncGroups get REBALANCE_IN_PROGRESS, members have until
    /// the largest rebalance timeout to rejoin.
    pub fn prepare_rebalance(&mut self, now_ms: i64, fx: &mut Effects) {
        if self.state == GroupState::CompletingRebalance {
            for m in self.members.values_mut() {
                m.assignment = Bytes::new();
                if let Some(t) = m.awaiting_sync.take() {
                    let e = SyncResponse::error(GroupError::RebalanceInProgress);
                    fx.answer(t, Answer::Sync(e));
                }
            }
        }
        self.pending_sync.clear();
        self.rebalance_deadline_ms = now_ms + self.rebalance_timeout_ms();
        self.transition(GroupState::PreparingRebalance, now_ms, fx);
        self.maybe_complete_join(now_ms, fx);
    }

    fn all_joined(&self) -> bool {
        self.pending_members.is_empty() && self.members.values().all(|m| m.awaiting_join.is_some())
    }

    fn maybe_complete_join(&mut self, now_ms: i64, fx: &mut Effects) {
        if self.state == GroupState::PreparingRebalance && self.all_joined() {
            self.complete_join(now_ms, fx);
        }
    }

    /// Kafka's `onCompleteJoin`: drop dynamic members that did not rejoin, elect a leader
    /// among those that did, start the next generation and answer every waiting JoinGroup.
    fn complete_join(&mut self, now_ms: i64, fx: &mut Effects) {
        let gone: Vec<String> = self
            .members
            .values()
            .filter(|m| m.awaiting_join.is_none() && m.instance_id.is_none())
            .map(|m| m.id.clone())
            .collect();
        for id in gone {
            self.remove_member(&id, fx);
        }
        let leader_rejoined = self
            .leader
            .as_ref()
            .and_then(|l| self.members.get(l))
            .is_some_and(|m| m.awaiting_join.is_some());
        if !leader_rejoined {
            let joined = self
                .members
                .values()
                .filter(|m| m.awaiting_join.is_some())
                .min_by_key(|m| m.join_seq);
            let any = self.members.values().min_by_key(|m| m.join_seq);
            self.leader = joined.or(any).map(|m| m.id.clone());
        }
        self.generation += 1;
        if self.members.is_empty() {
            self.protocol_name = None;
            self.leader = None;
            self.transition(GroupState::Empty, now_ms, fx);
            return;
        }
        self.protocol_name = self.select_protocol();
        self.transition(GroupState::CompletingRebalance, now_ms, fx);
        self.pending_sync = self.members.keys().cloned().collect();
        self.sync_deadline_ms = now_ms + self.rebalance_timeout_ms();
        let leader = self.leader.clone().unwrap_or_default();
        let all = self.member_list();
        let template = self.current_join_response("", false);
        for m in self.members.values_mut() {
            let Some(t) = m.awaiting_join.take() else {
                continue;
            };
            m.heartbeat(now_ms);
            let mut resp = template.clone();
            resp.member_id = m.id.clone();
            if m.id == leader {
                resp.members = all.clone();
            }
            fx.answer(t, Answer::Join(resp));
        }
    }

    /// The protocol every member supports that most members prefer (each member votes for
    /// the first of its protocols all support); ties go to the earliest member's preference.
    fn select_protocol(&self) -> Option<String> {
        let mut ms: Vec<&Member> = self.members.values().collect();
        ms.sort_by_key(|m| m.join_seq);
        let first = ms.first()?;
        let candidates: Vec<&str> = first
            .protocols
            .iter()
            .map(|p| p.name.as_str())
            .filter(|name| ms.iter().all(|m| m.supports(name)))
            .collect();
        let mut best: Option<(&str, usize)> = None;
        for c in &candidates {
            let votes = ms
                .iter()
                .filter(|m| {
                    m.protocols
                        .iter()
                        .find(|p| candidates.contains(&p.name.as_str()))
                        .is_some_and(|p| p.name == *c)
                })
                .count();
            if best.is_none_or(|(_, v)| votes > v) {
                best = Some((c, votes));
            }
        }
        best.map(|(name, _)| name.to_string())
            .or_else(|| first.protocols.first().map(|p| p.name.clone()))
    }

    /// Removes a member without reacting to it (callers decide whether to rebalance).
    fn remove_member(&mut self, id: &str, fx: &mut Effects) {
        let Some(mut m) = self.members.remove(id) else {
            return;
        };
        if let Some(t) = m.awaiting_join.take() {
            let e = JoinResponse::error(GroupError::UnknownMemberId, id);
            fx.answer(t, Answer::Join(e));
        }
        if let Some(t) = m.awaiting_sync.take() {
            fx.answer(
                t,
                Answer::Sync(SyncResponse::error(GroupError::UnknownMemberId)),
            );
        }
        if let Some(iid) = &m.instance_id
            && self.static_members.get(iid).is_some_and(|x| x == id)
        {
            self.static_members.remove(iid);
        }
        self.pending_sync.remove(id);
        if self.is_leader(id) {
            self.leader = self
                .members
                .values()
                .min_by_key(|m| m.join_seq)
                .map(|m| m.id.clone());
        }
        fx.changed = true;
    }

    fn remove_member_and_update(&mut self, now_ms: i64, id: &str, fx: &mut Effects) {
        self.remove_member(id, fx);
        match self.state {
            GroupState::Empty | GroupState::Dead => {}
            GroupState::PreparingRebalance => self.maybe_complete_join(now_ms, fx),
            GroupState::CompletingRebalance | GroupState::Stable => {
                self.prepare_rebalance(now_ms, fx)
            }
        }
    }

    /// SyncGroup. `Some` is an immediate answer; `None` waits on `ticket`.
    pub fn sync(
        &mut self,
        now_ms: i64,
        req: &SyncRequest,
        ticket: Ticket,
        fx: &mut Effects,
    ) -> Option<SyncResponse> {
        let id = req.member_id.as_str();
        if let Err(e) = self.validate_member(id, req.group_instance_id.as_deref()) {
            return Some(SyncResponse::error(e));
        }
        if req.generation_id != self.generation {
            return Some(SyncResponse::error(GroupError::IllegalGeneration));
        }
        let type_ok = req.protocol_type.is_none() || req.protocol_type == self.protocol_type;
        let name_ok = req.protocol_name.is_none() || req.protocol_name == self.protocol_name;
        if !type_ok || !name_ok {
            return Some(SyncResponse::error(GroupError::InconsistentGroupProtocol));
        }
        let ok = |assignment: Bytes, g: &ClassicGroup| SyncResponse {
            error: None,
            protocol_type: g.protocol_type.clone(),
            protocol_name: g.protocol_name.clone(),
            assignment,
        };
        match self.state {
            GroupState::Empty | GroupState::Dead => {
                Some(SyncResponse::error(GroupError::UnknownMemberId))
            }
            GroupState::PreparingRebalance => {
                Some(SyncResponse::error(GroupError::RebalanceInProgress))
            }
            GroupState::Stable => {
                self.pending_sync.remove(id);
                let m = self.members.get_mut(id)?;
                m.heartbeat(now_ms);
                let assignment = m.assignment.clone();
                Some(ok(assignment, self))
            }
            GroupState::CompletingRebalance => {
                self.pending_sync.remove(id);
                let m = self.members.get_mut(id)?;
                m.heartbeat(now_ms);
                if let Some(old) = m.awaiting_sync.replace(ticket) {
                    let e = SyncResponse::error(GroupError::RebalanceInProgress);
                    fx.answer(old, Answer::Sync(e));
                }
                if self.is_leader(id) {
                    for m in self.members.values_mut() {
                        m.assignment = Bytes::new();
                    }
                    for (member_id, a) in &req.assignments {
                        if let Some(m) = self.members.get_mut(member_id) {
                            m.assignment = a.clone();
                        }
                    }
                    self.transition(GroupState::Stable, now_ms, fx);
                    let template = ok(Bytes::new(), self);
                    for m in self.members.values_mut() {
                        if let Some(t) = m.awaiting_sync.take() {
                            let mut resp = template.clone();
                            resp.assignment = m.assignment.clone();
                            fx.answer(t, Answer::Sync(resp));
                        }
                    }
                }
                None
            }
        }
    }

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
        if self.state == GroupState::PreparingRebalance && now_ms >= self.rebalance_deadline_ms {
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
        let rebalance =
            (self.state == GroupState::PreparingRebalance).then_some(self.rebalance_deadline_ms);
        let sync = (matches!(
            self.state,
            GroupState::CompletingRebalance | GroupState::Stable
        ) && !self.pending_sync.is_empty())
        .then_some(self.sync_deadline_ms);
        pending.chain(sessions).chain(rebalance).chain(sync).min()
    }

    /// Kafka's offset-commit validation for a classic group.
    pub fn validate_commit(
        &self,
        member_id: &str,
        instance_id: Option<&str>,
        generation: i32,
    ) -> Result<(), GroupError> {
        if generation < 0 && self.state == GroupState::Empty {
            return Ok(());
        }
        if generation >= 0 || !member_id.is_empty() || instance_id.is_some() {
            self.validate_member(member_id, instance_id)?;
            if generation != self.generation {
                return Err(GroupError::IllegalGeneration);
            }
        } else if self.state != GroupState::Empty {
            // A simple (generation -1) commit only while nobody is a member.
            return Err(GroupError::UnknownMemberId);
        }
        if self.state == GroupState::CompletingRebalance {
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
