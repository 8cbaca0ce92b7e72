//! JoinGroup: new members (dynamic, which first get MEMBER_ID_REQUIRED, and static, KIP-345),
//! known members rejoining, and a static member replacing its earlier member id.
//!
//! Invariants:
//! - a join is refused with INCONSISTENT_GROUP_PROTOCOL unless its protocol type matches the
//!   group's and one of its protocols is supported by every other member;
//! - members plus pending ids never exceed `group_members_max`;
//! - a replaced static member's waiting requests are answered FENCED_INSTANCE_ID, and its
//!   new id takes over its leadership, pending sync and assignment.

use super::member::Member;
use super::{ClassicGroup, Effects, IdGen};
use crate::broker::group::{
    Answer, GroupConfig, GroupError, GroupState, JoinRequest, JoinResponse, SyncResponse, Ticket,
};

impl ClassicGroup {
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
            self.note_new_member();
            self.maybe_complete_join(now_ms, fx);
        } else {
            self.prepare_rebalance(now_ms, fx);
        }
    }
}
