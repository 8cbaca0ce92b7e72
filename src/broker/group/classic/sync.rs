//! SyncGroup: the leader's assignment delivered to every member, which makes the group Stable.
//!
//! Invariants:
//! - only a member of the current generation with a matching protocol gets an assignment;
//! - in CompletingRebalance every SyncGroup waits until the leader's arrives; the leader's
//!   replaces all assignments (members it omits get an empty one) and answers them all.

use bytes::Bytes;

use super::{ClassicGroup, Effects};
use crate::broker::group::{Answer, GroupError, GroupState, SyncRequest, SyncResponse, Ticket};

impl ClassicGroup {
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
}
