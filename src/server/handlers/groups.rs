//! Group membership over the broker's coordinator: JoinGroup, SyncGroup, Heartbeat,
//! LeaveGroup, DescribeGroups, ListGroups, DeleteGroups, OffsetDelete.
//!
//! A JoinGroup waiting for the other members, or a SyncGroup waiting for the leader, parks in
//! the broker's wait set under `WaitKey::Group` with the group's next deadline; the
//! coordinator fires an event on that key whenever the group changes, and the retry takes the
//! answer from the coordinator or parks again. A server shutting down answers
//! COORDINATOR_NOT_AVAILABLE (the client finds a coordinator again).
//!
//! Authorization (Kafka's `KafkaApis`): JoinGroup, SyncGroup, Heartbeat and LeaveGroup need
//! Read on the group, DescribeGroups Describe (per group), DeleteGroups Delete (per group),
//! OffsetDelete Delete on the group and Read on each topic; ListGroups lists every group with
//! Describe on the cluster, else those the caller may Describe. A refusal answers
//! GROUP_AUTHORIZATION_FAILED (TOPIC_AUTHORIZATION_FAILED for a topic) before anything else.

use std::net::IpAddr;

use kafka_protocol::messages::delete_groups_response::DeletableGroupResult;
use kafka_protocol::messages::describe_groups_response::{DescribedGroup, DescribedGroupMember};
use kafka_protocol::messages::join_group_response::JoinGroupResponseMember;
use kafka_protocol::messages::leave_group_response::MemberResponse;
use kafka_protocol::messages::list_groups_response::ListedGroup;
use kafka_protocol::messages::offset_delete_response::{
    OffsetDeleteResponsePartition, OffsetDeleteResponseTopic,
};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;

use super::Ctx;
use super::authz;
use super::{Delayed, Outcome};
use crate::broker::group::{
    Answer, GroupError, GroupState, JoinRequest, JoinResponse, LeavingMember, Poll, Protocol,
    Reply, SyncRequest, SyncResponse, Ticket,
};
use crate::broker::wait::{WaitKey, Wake};
use crate::error::{AuthzError, NO_ERROR_CODE};
use crate::security::acl::{AclOperation, ResourceType};
use crate::server::session::Caller;

const UNKNOWN_TOPIC_OR_PARTITION: i16 =
    kafka_protocol::error::ResponseError::UnknownTopicOrPartition.code();
/// Kafka's "authorized operations not requested".
const OPERATIONS_NOT_REQUESTED: i32 = i32::MIN;
const GROUP_AUTHORIZATION_FAILED: i16 = AuthzError::GroupAuthorizationFailed.code();
const TOPIC_AUTHORIZATION_FAILED: i16 = AuthzError::TopicAuthorizationFailed.code();

/// Whether the caller may perform `op` on the group.
fn group_allowed(ctx: &Ctx, caller: &Caller, op: AclOperation, group: &str) -> bool {
    authz::allowed(ctx, caller, op, ResourceType::Group, group)
}

/// A JoinGroup or SyncGroup parked until its group changes or its deadline passes.
pub struct PendingGroup {
    ticket: Ticket,
    group_id: String,
    member_id: String,
    sync: bool,
}

fn s(v: impl Into<String>) -> StrBytes {
    StrBytes::from_string(v.into())
}

fn opt(v: &Option<StrBytes>) -> Option<String> {
    v.as_ref().map(|x| x.to_string()).filter(|x| !x.is_empty())
}

fn code<T>(r: &Result<T, GroupError>) -> i16 {
    crate::error::result_code(r)
}

pub fn join_group(
    ctx: &Ctx,
    header: &RequestHeader,
    req: JoinGroupRequest,
    caller: &Caller,
) -> Outcome {
    let v = header.request_api_version;
    let peer: IpAddr = caller.ip;
    if !group_allowed(ctx, caller, AclOperation::Read, &req.group_id.0) {
        return Outcome::Respond(ResponseKind::JoinGroup(
            JoinGroupResponse::default()
                .with_error_code(GROUP_AUTHORIZATION_FAILED)
                .with_generation_id(-1),
        ));
    }
    let group_id = req.group_id.0.to_string();
    let seen = ctx.broker.waits().epochs(&[WaitKey::group(&group_id)]);
    let request = JoinRequest {
        group_id: group_id.clone(),
        member_id: req.member_id.to_string(),
        group_instance_id: opt(&req.group_instance_id),
        client_id: opt(&header.client_id).unwrap_or_default(),
        // As Kafka (Java's `InetAddress.toString()` of the connection's address).
        client_host: format!("/{peer}"),
        session_timeout_ms: req.session_timeout_ms,
        // v0 has no rebalance timeout: Kafka uses the session timeout.
        rebalance_timeout_ms: if v == 0 {
            req.session_timeout_ms
        } else {
            req.rebalance_timeout_ms
        },
        protocol_type: req.protocol_type.to_string(),
        protocols: req
            .protocols
            .iter()
            .map(|p| Protocol {
                name: p.name.to_string(),
                metadata: p.metadata.clone(),
            })
            .collect(),
        require_known_member_id: v >= 4,
    };
    let member_id = request.member_id.clone();
    match ctx.broker.groups().join(request) {
        Reply::Done(r) => Outcome::Respond(ResponseKind::JoinGroup(join_response(v, r))),
        Reply::Wait(ticket) => wait(ctx, v, ticket, group_id, member_id, false, seen),
    }
}

pub fn sync_group(ctx: &Ctx, version: i16, req: SyncGroupRequest, caller: &Caller) -> Outcome {
    if !group_allowed(ctx, caller, AclOperation::Read, &req.group_id.0) {
        return Outcome::Respond(ResponseKind::SyncGroup(
            SyncGroupResponse::default().with_error_code(GROUP_AUTHORIZATION_FAILED),
        ));
    }
    let group_id = req.group_id.0.to_string();
    let seen = ctx.broker.waits().epochs(&[WaitKey::group(&group_id)]);
    let request = SyncRequest {
        group_id: group_id.clone(),
        member_id: req.member_id.to_string(),
        group_instance_id: opt(&req.group_instance_id),
        generation_id: req.generation_id,
        protocol_type: opt(&req.protocol_type),
        protocol_name: opt(&req.protocol_name),
        assignments: req
            .assignments
            .iter()
            .map(|a| (a.member_id.to_string(), a.assignment.clone()))
            .collect(),
    };
    let member_id = request.member_id.clone();
    match ctx.broker.groups().sync(request) {
        Reply::Done(r) => Outcome::Respond(ResponseKind::SyncGroup(sync_response(version, r))),
        Reply::Wait(ticket) => wait(ctx, version, ticket, group_id, member_id, true, seen),
    }
}

/// Answers from the coordinator if the ticket is ready, else parks until the group changes.
fn wait(
    ctx: &Ctx,
    version: i16,
    ticket: Ticket,
    group_id: String,
    member_id: String,
    sync: bool,
    seen: Vec<u64>,
) -> Outcome {
    let groups = ctx.broker.groups();
    match groups.poll(ticket) {
        Poll::Ready(answer) => respond(version, answer),
        Poll::Unknown => lost(version, sync, &member_id),
        Poll::Pending { deadline_ms } => {
            let deadline = groups.instant_at(deadline_ms);
            Outcome::Park {
                keys: vec![WaitKey::group(&group_id)],
                kind: Delayed::Group(PendingGroup {
                    ticket,
                    group_id,
                    member_id,
                    sync,
                }),
                deadline,
                seen,
            }
        }
    }
}

/// Re-evaluates a parked JoinGroup/SyncGroup after a group event or its deadline.
pub fn retry(ctx: &Ctx, version: i16, p: PendingGroup, woke: Wake) -> Outcome {
    let seen = ctx.broker.waits().epochs(&[WaitKey::group(&p.group_id)]);
    if woke == Wake::Shutdown {
        // The server is stopping. The client finds a coordinator again.
        ctx.broker.groups().forget(p.ticket);
        let e = GroupError::CoordinatorNotAvailable;
        return if p.sync {
            respond(version, Answer::Sync(SyncResponse::error(e)))
        } else {
            respond(version, Answer::Join(JoinResponse::error(e, &p.member_id)))
        };
    }
    wait(
        ctx,
        version,
        p.ticket,
        p.group_id,
        p.member_id,
        p.sync,
        seen,
    )
}

fn respond(version: i16, answer: Answer) -> Outcome {
    match answer {
        Answer::Join(r) => Outcome::Respond(ResponseKind::JoinGroup(join_response(version, r))),
        Answer::Sync(r) => Outcome::Respond(ResponseKind::SyncGroup(sync_response(version, r))),
    }
}

/// The coordinator no longer knows the ticket (its group was deleted).
fn lost(version: i16, sync: bool, member_id: &str) -> Outcome {
    let e = GroupError::UnknownMemberId;
    if sync {
        respond(version, Answer::Sync(SyncResponse::error(e)))
    } else {
        respond(version, Answer::Join(JoinResponse::error(e, member_id)))
    }
}

fn join_response(v: i16, r: JoinResponse) -> JoinGroupResponse {
    // Before v7 the protocol name is not nullable.
    let protocol_name = match r.protocol_name {
        Some(n) => Some(s(n)),
        None if v < 7 => Some(s("")),
        None => None,
    };
    JoinGroupResponse::default()
        .with_error_code(r.error.map_or(NO_ERROR_CODE, |e| e.code()))
        .with_generation_id(r.generation_id)
        .with_protocol_type(if v >= 7 { r.protocol_type.map(s) } else { None })
        .with_protocol_name(protocol_name)
        .with_leader(s(r.leader))
        .with_skip_assignment(v >= 9 && r.skip_assignment)
        .with_member_id(s(r.member_id))
        .with_members(
            r.members
                .into_iter()
                .map(|m| {
                    JoinGroupResponseMember::default()
                        .with_member_id(s(m.member_id))
                        .with_group_instance_id(if v >= 5 {
                            m.group_instance_id.map(s)
                        } else {
                            None
                        })
                        .with_metadata(m.metadata)
                })
                .collect(),
        )
}

fn sync_response(v: i16, r: SyncResponse) -> SyncGroupResponse {
    let (protocol_type, protocol_name) = if v >= 5 && r.error.is_none() {
        (r.protocol_type.map(s), r.protocol_name.map(s))
    } else {
        (None, None)
    };
    SyncGroupResponse::default()
        .with_error_code(r.error.map_or(NO_ERROR_CODE, |e| e.code()))
        .with_protocol_type(protocol_type)
        .with_protocol_name(protocol_name)
        .with_assignment(r.assignment)
}

pub fn heartbeat(ctx: &Ctx, req: HeartbeatRequest, caller: &Caller) -> Outcome {
    if !group_allowed(ctx, caller, AclOperation::Read, &req.group_id.0) {
        return Outcome::Respond(ResponseKind::Heartbeat(
            HeartbeatResponse::default().with_error_code(GROUP_AUTHORIZATION_FAILED),
        ));
    }
    let r = ctx.broker.groups().heartbeat(
        &req.group_id.0,
        &req.member_id,
        opt(&req.group_instance_id).as_deref(),
        req.generation_id,
    );
    Outcome::Respond(ResponseKind::Heartbeat(
        HeartbeatResponse::default().with_error_code(code(&r)),
    ))
}

pub fn leave_group(ctx: &Ctx, version: i16, req: LeaveGroupRequest, caller: &Caller) -> Outcome {
    let group_id = req.group_id.0.to_string();
    let resp = LeaveGroupResponse::default();
    if !group_allowed(ctx, caller, AclOperation::Read, &group_id) {
        let resp = resp.with_error_code(GROUP_AUTHORIZATION_FAILED);
        return Outcome::Respond(ResponseKind::LeaveGroup(resp));
    }
    if group_id.is_empty() {
        let resp = resp.with_error_code(GroupError::InvalidGroupId.code());
        return Outcome::Respond(ResponseKind::LeaveGroup(resp));
    }
    let leaving: Vec<LeavingMember> = if version >= 3 {
        req.members
            .iter()
            .map(|m| LeavingMember {
                member_id: m.member_id.to_string(),
                group_instance_id: opt(&m.group_instance_id),
            })
            .collect()
    } else {
        vec![LeavingMember {
            member_id: req.member_id.to_string(),
            group_instance_id: None,
        }]
    };
    let results = ctx.broker.groups().leave(&group_id, &leaving);
    let resp = if version >= 3 {
        resp.with_members(
            leaving
                .into_iter()
                .zip(&results)
                .map(|(l, r)| {
                    MemberResponse::default()
                        .with_member_id(s(l.member_id))
                        .with_group_instance_id(l.group_instance_id.map(s))
                        .with_error_code(code(r))
                })
                .collect(),
        )
    } else {
        resp.with_error_code(results.first().map_or(NO_ERROR_CODE, code))
    };
    Outcome::Respond(ResponseKind::LeaveGroup(resp))
}

pub fn describe_groups(
    ctx: &Ctx,
    version: i16,
    req: DescribeGroupsRequest,
    caller: &Caller,
) -> Outcome {
    // Decided first, under one read lock of the ACLs: (may describe, authorized operations).
    let decisions: Vec<(bool, i32)> = {
        let checks = authz::checks(ctx, caller);
        req.groups
            .iter()
            .map(|id| {
                let describe = checks.allows(AclOperation::Describe, ResourceType::Group, &id.0);
                let ops = if req.include_authorized_operations {
                    checks.operations(ResourceType::Group, &id.0)
                } else {
                    OPERATIONS_NOT_REQUESTED
                };
                (describe, ops)
            })
            .collect()
    };
    let groups = req
        .groups
        .iter()
        .zip(decisions)
        .map(|(id, (describe, ops))| {
            let gid = id.0.to_string();
            if !describe {
                return DescribedGroup::default()
                    .with_group_id(id.clone())
                    .with_error_code(GROUP_AUTHORIZATION_FAILED)
                    .with_authorized_operations(OPERATIONS_NOT_REQUESTED);
            }
            let base = DescribedGroup::default()
                .with_group_id(id.clone())
                .with_authorized_operations(ops);
            if gid.is_empty() {
                return base
                    .with_error_code(GroupError::InvalidGroupId.code())
                    .with_group_state(s(GroupState::Dead.as_str()));
            }
            let Some(g) = ctx.broker.groups().describe(&gid) else {
                if !ctx.broker.group_offsets(&gid).is_empty() {
                    // Known only by its committed offsets: an Empty group.
                    return base.with_group_state(s(GroupState::Empty.as_str()));
                }
                let base = base.with_group_state(s(GroupState::Dead.as_str()));
                // v6 (KIP-1043) reports a missing group as an error; before, as Dead.
                return if version >= 6 {
                    base.with_error_code(GroupError::GroupIdNotFound.code())
                        .with_error_message(Some(s(format!("Group {gid} not found."))))
                } else {
                    base
                };
            };
            base.with_group_state(s(g.state.as_str()))
                .with_protocol_type(s(g.protocol_type))
                .with_protocol_data(s(g.protocol_data))
                .with_members(
                    g.members
                        .into_iter()
                        .map(|m| {
                            DescribedGroupMember::default()
                                .with_member_id(s(m.member_id))
                                .with_group_instance_id(if version >= 4 {
                                    m.group_instance_id.map(s)
                                } else {
                                    None
                                })
                                .with_client_id(s(m.client_id))
                                .with_client_host(s(m.client_host))
                                .with_member_metadata(m.metadata)
                                .with_member_assignment(m.assignment)
                        })
                        .collect(),
                )
        })
        .collect();
    Outcome::Respond(ResponseKind::DescribeGroups(
        DescribeGroupsResponse::default().with_groups(groups),
    ))
}

pub fn list_groups(ctx: &Ctx, req: ListGroupsRequest, caller: &Caller) -> Outcome {
    let states: Vec<String> = req.states_filter.iter().map(|x| x.to_lowercase()).collect();
    let classic_wanted = req.types_filter.is_empty()
        || req
            .types_filter
            .iter()
            .any(|t| t.eq_ignore_ascii_case("classic"));
    let checks = authz::checks(ctx, caller);
    let all = checks.allows_cluster(AclOperation::Describe);
    let groups = ctx
        .broker
        .groups()
        .list(ctx.broker.offset_store())
        .into_iter()
        .filter(|_| classic_wanted)
        .filter(|g| all || checks.allows(AclOperation::Describe, ResourceType::Group, &g.group_id))
        .filter(|g| states.is_empty() || states.contains(&g.state.as_str().to_lowercase()))
        .map(|g| {
            ListedGroup::default()
                .with_group_id(GroupId(s(g.group_id)))
                .with_protocol_type(s(g.protocol_type))
                .with_group_state(s(g.state.as_str()))
                .with_group_type(s("classic"))
        })
        .collect();
    Outcome::Respond(ResponseKind::ListGroups(
        ListGroupsResponse::default().with_groups(groups),
    ))
}

pub fn delete_groups(ctx: &Ctx, req: DeleteGroupsRequest, caller: &Caller) -> Outcome {
    let results = req
        .groups_names
        .iter()
        .map(|id| {
            if !group_allowed(ctx, caller, AclOperation::Delete, &id.0) {
                return DeletableGroupResult::default()
                    .with_group_id(id.clone())
                    .with_error_code(GROUP_AUTHORIZATION_FAILED);
            }
            let r = ctx
                .broker
                .groups()
                .delete_group(&id.0, ctx.broker.offset_store());
            if r.is_ok() {
                log::info!("deleted group {}", id.0);
            }
            DeletableGroupResult::default()
                .with_group_id(id.clone())
                .with_error_code(code(&r))
        })
        .collect();
    Outcome::Respond(ResponseKind::DeleteGroups(
        DeleteGroupsResponse::default().with_results(results),
    ))
}

pub fn offset_delete(ctx: &Ctx, req: OffsetDeleteRequest, caller: &Caller) -> Outcome {
    use crate::broker::group::OffsetDeletePolicy;
    let gid = req.group_id.0.to_string();
    let top = |e: GroupError| {
        Outcome::Respond(ResponseKind::OffsetDelete(
            OffsetDeleteResponse::default().with_error_code(e.code()),
        ))
    };
    if !group_allowed(ctx, caller, AclOperation::Delete, &gid) {
        return Outcome::Respond(ResponseKind::OffsetDelete(
            OffsetDeleteResponse::default().with_error_code(GROUP_AUTHORIZATION_FAILED),
        ));
    }
    let readable: Vec<bool> = {
        let checks = authz::checks(ctx, caller);
        req.topics
            .iter()
            .map(|t| checks.allows(AclOperation::Read, ResourceType::Topic, &t.name.0))
            .collect()
    };
    if gid.is_empty() {
        return top(GroupError::InvalidGroupId);
    }
    let groups = ctx.broker.groups();
    let policy = match groups.offset_delete_policy(&gid) {
        Ok(p) => p,
        Err(e) => return top(e),
    };
    if groups.state(&gid).is_none() && ctx.broker.group_offsets(&gid).is_empty() {
        return top(GroupError::GroupIdNotFound);
    }
    let subscribed = match policy {
        OffsetDeletePolicy::Refused => return top(GroupError::NonEmptyGroup),
        OffsetDeletePolicy::Any => Some(Default::default()),
        OffsetDeletePolicy::NotSubscribed(topics) => topics,
    };
    let topics = req
        .topics
        .iter()
        .zip(readable)
        .map(|(t, readable)| {
            let name = t.name.0.to_string();
            let exists = ctx.broker.partition_count(&name).is_ok();
            let parts = t
                .partitions
                .iter()
                .map(|p| {
                    let code = if !readable {
                        TOPIC_AUTHORIZATION_FAILED
                    } else if !exists {
                        UNKNOWN_TOPIC_OR_PARTITION
                    } else if subscribed.as_ref().is_none_or(|s| s.contains(&name)) {
                        GroupError::GroupSubscribedToTopic.code()
                    } else {
                        match ctx.broker.offset_store().delete_offset(
                            &gid,
                            &name,
                            p.partition_index,
                        ) {
                            Ok(()) => NO_ERROR_CODE,
                            Err(e) => e.kafka_code(),
                        }
                    };
                    OffsetDeleteResponsePartition::default()
                        .with_partition_index(p.partition_index)
                        .with_error_code(code)
                })
                .collect();
            OffsetDeleteResponseTopic::default()
                .with_name(t.name.clone())
                .with_partitions(parts)
        })
        .collect();
    Outcome::Respond(ResponseKind::OffsetDelete(
        OffsetDeleteResponse::default().with_topics(topics),
    ))
}
