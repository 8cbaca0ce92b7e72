//! The rebalance: PreparingRebalance (waiting for members to rejoin), Kafka's
//! `onCompleteJoin` (new generation, leader, protocol, JoinGroup answers), and removing
//! members with the state change their leaving causes.
//!
//! Invariants:
//! - a rebalance ends when every member and no pending id is waiting in JoinGroup, or at the
//!   largest member rebalance timeout (an Empty group's first one: at the end of its initial
//!   delay, `initial.rs`); dynamic members that did not rejoin are then removed;
//! - each completed join increments the generation; the leader is the rejoined leader or
//!   else the earliest joined member; a group with no members left becomes Empty;
//! - every removed member's waiting requests are answered UNKNOWN_MEMBER_ID.

use bytes::Bytes;

use super::member::Member;
use super::{ClassicGroup, Effects};
use crate::broker::group::{
    Answer, GroupError, GroupState, JoinResponse, JoinedMember, SyncResponse,
};

impl ClassicGroup {
    /// The JoinGroup answer for the current generation (the leader also gets the members).
    pub(super) fn current_join_response(
        &self,
        member_id: &str,
        with_members: bool,
    ) -> JoinResponse {
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

    pub(super) fn transition(&mut self, state: GroupState, now_ms: i64, fx: &mut Effects) {
        if state != GroupState::PreparingRebalance {
            self.initial_join = None;
        }
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
        let timeout_ms = self.rebalance_timeout_ms();
        self.rebalance_deadline_ms = now_ms + timeout_ms;
        if self.state == GroupState::Empty {
            self.start_initial_join(now_ms, timeout_ms);
        }
        self.transition(GroupState::PreparingRebalance, now_ms, fx);
        self.maybe_complete_join(now_ms, fx);
    }

    fn all_joined(&self) -> bool {
        self.pending_members.is_empty() && self.members.values().all(|m| m.awaiting_join.is_some())
    }

    pub(super) fn maybe_complete_join(&mut self, now_ms: i64, fx: &mut Effects) {
        // The initial rebalance's delay ends only at its deadline (`initial.rs`).
        if self.state == GroupState::PreparingRebalance
            && self.initial_join.is_none()
            && self.all_joined()
        {
            self.complete_join(now_ms, fx);
        }
    }

    /// Kafka's `onCompleteJoin`: drop dynamic members that did not rejoin, elect a leader
    /// among those that did, start the next generation and answer every waiting JoinGroup.
    pub(super) fn complete_join(&mut self, now_ms: i64, fx: &mut Effects) {
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
    pub(super) fn remove_member(&mut self, id: &str, fx: &mut Effects) {
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

    pub(super) fn remove_member_and_update(&mut self, now_ms: i64, id: &str, fx: &mut Effects) {
        self.remove_member(id, fx);
        match self.state {
            GroupState::Empty | GroupState::Dead => {}
            GroupState::PreparingRebalance => self.maybe_complete_join(now_ms, fx),
            GroupState::CompletingRebalance | GroupState::Stable => {
                self.prepare_rebalance(now_ms, fx)
            }
        }
    }
}
