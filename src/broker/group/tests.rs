//! Deterministic tests of the coordinator state machine: explicit `now_ms`, no threads, no
//! sleeps.

use bytes::Bytes;

use super::coordinator::offsets_expired;
use super::*;

const SESSION_MS: i32 = 10_000;
const REBALANCE_MS: i32 = 5_000;

/// Without the initial rebalance delay (as Kafka's own coordinator tests), so a lone member's
/// join completes at once; `delayed_coordinator` has it.
fn no_delay() -> GroupConfig {
    GroupConfig {
        initial_rebalance_delay_ms: 0,
        ..GroupConfig::default()
    }
}

fn coordinator() -> GroupCoordinator {
    GroupCoordinator::new(no_delay(), 7)
}

fn req(member_id: &str, protocols: &[(&str, &str)]) -> JoinRequest {
    JoinRequest {
        group_id: "g".into(),
        member_id: member_id.into(),
        group_instance_id: None,
        client_id: "client".into(),
        client_host: "/127.0.0.1".into(),
        session_timeout_ms: SESSION_MS,
        rebalance_timeout_ms: REBALANCE_MS,
        protocol_type: "consumer".into(),
        protocols: protocols
            .iter()
            .map(|(name, meta)| Protocol {
                name: name.to_string(),
                metadata: Bytes::from(meta.to_string()),
            })
            .collect(),
        require_known_member_id: false,
    }
}

fn range(member_id: &str) -> JoinRequest {
    req(member_id, &[("range", "m")])
}

fn done<T: std::fmt::Debug>(r: Reply<T>) -> T {
    match r {
        Reply::Done(t) => t,
        Reply::Wait(t) => panic!("expected an answer, got wait on ticket {t}"),
    }
}

fn waits<T: std::fmt::Debug>(r: Reply<T>) -> Ticket {
    match r {
        Reply::Wait(t) => t,
        Reply::Done(t) => panic!("expected to wait, got {t:?}"),
    }
}

fn join_answer(c: &mut GroupCoordinator, now: i64, t: Ticket) -> JoinResponse {
    match c.poll(now, t) {
        Poll::Ready(Answer::Join(r)) => r,
        other => panic!("expected a join answer, got {other:?}"),
    }
}

fn sync_answer(c: &mut GroupCoordinator, now: i64, t: Ticket) -> SyncResponse {
    match c.poll(now, t) {
        Poll::Ready(Answer::Sync(r)) => r,
        other => panic!("expected a sync answer, got {other:?}"),
    }
}

fn sync(member_id: &str, generation: i32, assignments: &[(&str, &str)]) -> SyncRequest {
    SyncRequest {
        group_id: "g".into(),
        member_id: member_id.into(),
        group_instance_id: None,
        generation_id: generation,
        protocol_type: None,
        protocol_name: None,
        assignments: assignments
            .iter()
            .map(|(m, a)| (m.to_string(), Bytes::from(a.to_string())))
            .collect(),
    }
}

/// A lone member joins and syncs: returns its id (generation 1, Stable).
fn lone_member(c: &mut GroupCoordinator, now: i64) -> String {
    let r = done(c.join(now, range("")));
    assert_eq!(r.error, None);
    assert_eq!(r.generation_id, 1);
    assert_eq!(r.leader, r.member_id);
    let s = done(c.sync(now, sync(&r.member_id, 1, &[(&r.member_id, "all")])));
    assert_eq!(s.assignment, Bytes::from("all"));
    assert_eq!(c.state("g"), Some(GroupState::Stable));
    r.member_id
}

/// Two members, Stable at generation 2: (leader, follower).
fn two_members(c: &mut GroupCoordinator, now: i64) -> (String, String) {
    let a = lone_member(c, now);
    let tb = waits(c.join(now, range("")));
    assert_eq!(c.state("g"), Some(GroupState::PreparingRebalance));
    // The last member to rejoin completes the join: it is answered at once.
    let ra = done(c.join(now, range(&a)));
    let rb = join_answer(c, now, tb);
    let b = rb.member_id.clone();
    assert_eq!((ra.generation_id, rb.generation_id), (2, 2));
    let sb = waits(c.sync(now, sync(&b, 2, &[])));
    done(c.sync(now, sync(&a, 2, &[(&a, "A"), (&b, "B")])));
    assert_eq!(sync_answer(c, now, sb).assignment, Bytes::from("B"));
    (a, b)
}

#[test]
fn first_join_of_v4_client_gets_member_id_required_then_leads() {
    let mut c = coordinator();
    let mut first = range("");
    first.require_known_member_id = true;
    let r = done(c.join(0, first.clone()));
    assert_eq!(r.error, Some(GroupError::MemberIdRequired));
    assert!(r.member_id.starts_with("client-"), "{}", r.member_id);
    assert_eq!(c.state("g"), Some(GroupState::Empty));
    first.member_id = r.member_id.clone();
    let joined = done(c.join(1, first));
    assert_eq!(joined.error, None);
    assert_eq!(joined.member_id, r.member_id);
    assert_eq!(joined.leader, r.member_id);
    assert_eq!(joined.generation_id, 1);
    assert_eq!(joined.protocol_name.as_deref(), Some("range"));
    assert_eq!(joined.members.len(), 1);
    assert_eq!(c.state("g"), Some(GroupState::CompletingRebalance));
}

#[test]
fn unknown_member_id_on_a_missing_group_is_refused() {
    let mut c = coordinator();
    let r = done(c.join(0, range("ghost")));
    assert_eq!(r.error, Some(GroupError::UnknownMemberId));
    assert_eq!(c.state("g"), None);
    let mut bad = range("");
    bad.session_timeout_ms = 10;
    assert_eq!(
        done(c.join(0, bad)).error,
        Some(GroupError::InvalidSessionTimeout)
    );
}

#[test]
fn rebalance_with_two_members_leader_gets_metadata_follower_waits_for_sync() {
    let mut c = coordinator();
    let a = lone_member(&mut c, 0);
    let tb = waits(c.join(10, req("", &[("range", "meta-b")])));
    // A learns of the rebalance from its heartbeat.
    assert_eq!(
        c.heartbeat(20, "g", &a, None, 1),
        Err(GroupError::RebalanceInProgress)
    );
    assert!(matches!(c.poll(20, tb), Poll::Pending { .. }));
    let ra = done(c.join(30, req(&a, &[("range", "meta-a")])));
    let rb = join_answer(&mut c, 30, tb);
    let b = rb.member_id.clone();
    assert_eq!(ra.leader, a);
    assert_eq!(rb.leader, a);
    assert_eq!(ra.generation_id, 2);
    let metas: Vec<(String, Bytes)> = ra
        .members
        .iter()
        .map(|m| (m.member_id.clone(), m.metadata.clone()))
        .collect();
    assert_eq!(
        metas,
        vec![
            (a.clone(), Bytes::from("meta-a")),
            (b.clone(), Bytes::from("meta-b"))
        ]
    );
    assert!(rb.members.is_empty(), "followers get no member list");
    assert_eq!(c.state("g"), Some(GroupState::CompletingRebalance));
    // Heartbeats are fine while the leader assigns.
    assert_eq!(c.heartbeat(40, "g", &b, None, 2), Ok(()));

    let sb = waits(c.sync(40, sync(&b, 2, &[])));
    assert!(matches!(c.poll(41, sb), Poll::Pending { .. }));
    let sa = done(c.sync(50, sync(&a, 2, &[(&a, "p0,p1"), (&b, "p2,p3")])));
    assert_eq!(sa.assignment, Bytes::from("p0,p1"));
    assert_eq!(sa.protocol_name.as_deref(), Some("range"));
    assert_eq!(sync_answer(&mut c, 50, sb).assignment, Bytes::from("p2,p3"));
    assert_eq!(c.state("g"), Some(GroupState::Stable));
    assert_eq!(c.take_changed(), vec!["g".to_string()]);

    let d = c.describe("g").expect("described");
    assert_eq!(d.state, GroupState::Stable);
    assert_eq!(d.protocol_data, "range");
    assert_eq!(d.members.len(), 2);
    assert_eq!(d.members[1].assignment, Bytes::from("p2,p3"));
}

#[test]
fn follower_rejoining_with_same_metadata_in_stable_keeps_the_generation() {
    let mut c = coordinator();
    let (a, b) = two_members(&mut c, 0);
    let again = done(c.join(100, range(&b)));
    assert_eq!(
        (again.generation_id, again.leader.as_str()),
        (2, a.as_str())
    );
    assert!(again.members.is_empty());
    assert_eq!(c.state("g"), Some(GroupState::Stable));
    // The leader rejoining always rebalances (it may want to reassign).
    waits(c.join(110, range(&a)));
    assert_eq!(c.state("g"), Some(GroupState::PreparingRebalance));
}

#[test]
fn protocol_is_one_every_member_supports_chosen_by_votes() {
    let mut c = coordinator();
    let ra = done(c.join(0, req("", &[("roundrobin", ""), ("range", "")])));
    assert_eq!(ra.protocol_name.as_deref(), Some("roundrobin"));
    done(c.sync(0, sync(&ra.member_id, 1, &[])));
    let tb = waits(c.join(1, req("", &[("range", ""), ("roundrobin", "")])));
    let tc = waits(c.join(
        1,
        req("", &[("range", ""), ("roundrobin", ""), ("sticky", "")]),
    ));
    let last = done(c.join(2, req(&ra.member_id, &[("roundrobin", ""), ("range", "")])));
    // Two of three members prefer range.
    assert_eq!(last.protocol_name.as_deref(), Some("range"));
    for t in [tb, tc] {
        assert_eq!(
            join_answer(&mut c, 2, t).protocol_name.as_deref(),
            Some("range")
        );
    }
    // A protocol nobody else supports, or another protocol type, is refused.
    let r = done(c.join(3, req("", &[("sticky", "")])));
    assert_eq!(r.error, Some(GroupError::InconsistentGroupProtocol));
    let mut connect = range("");
    connect.protocol_type = "connect".into();
    assert_eq!(
        done(c.join(3, connect)).error,
        Some(GroupError::InconsistentGroupProtocol)
    );
}

#[test]
fn silent_member_expires_after_its_session_timeout_and_the_group_rebalances() {
    let mut c = coordinator();
    let (a, b) = two_members(&mut c, 0);
    let t = i64::from(SESSION_MS);
    // A heartbeats, B does not.
    assert_eq!(c.heartbeat(t - 1_000, "g", &a, None, 2), Ok(()));
    c.tick(t - 1);
    assert_eq!(c.state("g"), Some(GroupState::Stable));
    c.tick(t);
    assert_eq!(c.state("g"), Some(GroupState::PreparingRebalance));
    assert_eq!(
        c.heartbeat(t + 1, "g", &b, None, 2),
        Err(GroupError::UnknownMemberId)
    );
    assert_eq!(
        c.heartbeat(t + 1, "g", &a, None, 2),
        Err(GroupError::RebalanceInProgress)
    );
    let r = done(c.join(t + 2, range(&a)));
    assert_eq!(r.generation_id, 3);
    assert_eq!(r.members.len(), 1);
}

#[test]
fn waiting_member_is_not_expired_by_session_timeout() {
    let mut c = coordinator();
    let (a, b) = two_members(&mut c, 0);
    // B rejoins with a long rebalance timeout and waits; A heartbeats but does not rejoin yet.
    let mut rejoin = req(&b, &[("range", "changed")]);
    rejoin.rebalance_timeout_ms = 60_000;
    let tb = waits(c.join(100, rejoin));
    for now in [9_000, 18_000] {
        assert_eq!(
            c.heartbeat(now, "g", &a, None, 2),
            Err(GroupError::RebalanceInProgress)
        );
    }
    c.tick(20_000);
    // B's session (10 s) passed while it waited in JoinGroup: still a member, still waiting.
    assert!(matches!(c.poll(20_000, tb), Poll::Pending { .. }));
    assert_eq!(done(c.join(20_001, range(&a))).members.len(), 2);
    assert_eq!(join_answer(&mut c, 20_001, tb).generation_id, 3);
}

#[test]
fn rebalance_timeout_drops_members_that_did_not_rejoin() {
    let mut c = coordinator();
    let (a, b) = two_members(&mut c, 0);
    let tc = waits(c.join(1_000, range("")));
    let ta = waits(c.join(1_100, range(&a)));
    // B keeps heartbeating (so its session is fine) but never rejoins.
    for now in [2_000, 4_000, 5_900] {
        assert_eq!(
            c.heartbeat(now, "g", &b, None, 2),
            Err(GroupError::RebalanceInProgress)
        );
    }
    let deadline = 1_000 + i64::from(REBALANCE_MS);
    match c.poll(deadline - 100, ta) {
        Poll::Pending { deadline_ms } => assert_eq!(deadline_ms, deadline),
        other => panic!("{other:?}"),
    }
    let ra = join_answer(&mut c, deadline, ta);
    let rc = join_answer(&mut c, deadline, tc);
    assert_eq!(ra.generation_id, 3);
    assert_eq!(ra.leader, a);
    let ids: Vec<&str> = ra.members.iter().map(|m| m.member_id.as_str()).collect();
    assert_eq!(ids, vec![a.as_str(), rc.member_id.as_str()]);
    assert_eq!(
        c.heartbeat(deadline + 1, "g", &b, None, 2),
        Err(GroupError::UnknownMemberId)
    );
}

#[test]
fn leader_that_does_not_rejoin_is_replaced_by_a_member_that_did() {
    let mut c = coordinator();
    let (a, b) = two_members(&mut c, 0);
    let tb = waits(c.join(10, req(&b, &[("range", "new")])));
    let rb = join_answer(&mut c, 10 + i64::from(REBALANCE_MS), tb);
    assert_eq!(rb.leader, b);
    assert_eq!(rb.members.len(), 1);
    assert_ne!(a, b);
}

#[test]
fn stale_generations_and_unknown_members_are_fenced() {
    let mut c = coordinator();
    let (a, b) = two_members(&mut c, 0);
    assert_eq!(
        c.heartbeat(1, "g", &a, None, 1),
        Err(GroupError::IllegalGeneration)
    );
    assert_eq!(
        c.heartbeat(1, "g", "nobody", None, 2),
        Err(GroupError::UnknownMemberId)
    );
    assert_eq!(
        done(c.sync(1, sync(&b, 1, &[]))).error,
        Some(GroupError::IllegalGeneration)
    );
    // Offset commits: the member's generation must be current.
    assert_eq!(c.validate_commit("g", &a, None, 2), Ok(()));
    assert_eq!(
        c.validate_commit("g", &a, None, 1),
        Err(GroupError::IllegalGeneration)
    );
    assert_eq!(
        c.validate_commit("g", "nobody", None, 2),
        Err(GroupError::UnknownMemberId)
    );
    // A simple commit (generation -1, no member) is refused while the group has members.
    assert_eq!(
        c.validate_commit("g", "", None, -1),
        Err(GroupError::UnknownMemberId)
    );
    assert_eq!(c.validate_commit("other", "", None, -1), Ok(()));
    assert_eq!(
        c.validate_commit("other", "x", None, 3),
        Err(GroupError::IllegalGeneration)
    );
    assert_eq!(
        c.validate_commit("", "", None, -1),
        Err(GroupError::InvalidGroupId)
    );
    // While the leader assigns, commits of the new generation wait for the rebalance.
    let tb = waits(c.join(2, req(&b, &[("range", "new")])));
    // During PreparingRebalance the old generation may still commit (before revoking).
    assert_eq!(c.validate_commit("g", &a, None, 2), Ok(()));
    done(c.join(3, range(&a)));
    join_answer(&mut c, 3, tb);
    assert_eq!(
        c.validate_commit("g", &a, None, 3),
        Err(GroupError::RebalanceInProgress)
    );
    // Once everyone left, simple commits are accepted again.
    let left = c.leave(
        4,
        "g",
        &[
            LeavingMember {
                member_id: a.clone(),
                group_instance_id: None,
            },
            LeavingMember {
                member_id: b.clone(),
                group_instance_id: None,
            },
        ],
    );
    assert_eq!(left, vec![Ok(()), Ok(())]);
    assert_eq!(c.state("g"), Some(GroupState::Empty));
    assert_eq!(c.validate_commit("g", "", None, -1), Ok(()));
}

fn static_req(member_id: &str, instance: &str, meta: &str) -> JoinRequest {
    let mut r = req(member_id, &[("range", meta)]);
    r.group_instance_id = Some(instance.into());
    r
}

#[test]
fn static_member_rejoin_takes_over_without_a_rebalance() {
    let mut c = coordinator();
    let ra = done(c.join(0, static_req("", "inst-a", "m")));
    let a = ra.member_id.clone();
    assert!(a.starts_with("inst-a-"));
    done(c.sync(0, {
        let mut s = sync(&a, 1, &[(&a, "everything")]);
        s.group_instance_id = Some("inst-a".into());
        s
    }));
    // The process restarts and joins with its instance id but no member id.
    let r = done(c.join(100, static_req("", "inst-a", "m")));
    assert_eq!(r.error, None);
    assert_ne!(r.member_id, a);
    assert_eq!(r.generation_id, 1, "no new generation");
    assert_eq!(r.leader, r.member_id);
    assert!(r.skip_assignment, "the leader keeps its assignment");
    assert_eq!(c.state("g"), Some(GroupState::Stable));
    // The old incarnation is fenced; the new one gets the old assignment.
    assert_eq!(
        c.heartbeat(101, "g", &a, Some("inst-a"), 1),
        Err(GroupError::FencedInstanceId)
    );
    assert_eq!(
        c.validate_commit("g", &a, Some("inst-a"), 1),
        Err(GroupError::FencedInstanceId)
    );
    let mut s = sync(&r.member_id, 1, &[]);
    s.group_instance_id = Some("inst-a".into());
    assert_eq!(done(c.sync(102, s)).assignment, Bytes::from("everything"));

    // With different metadata it rebalances (a new generation).
    let r = done(c.join(200, static_req("", "inst-a", "other")));
    assert_eq!(r.generation_id, 2);
    assert_eq!(c.state("g"), Some(GroupState::CompletingRebalance));
}

#[test]
fn static_member_that_does_not_rejoin_stays_until_its_session_expires() {
    let mut c = coordinator();
    let ra = done(c.join(0, static_req("", "inst-a", "m")));
    let a = ra.member_id;
    let mut s = sync(&a, 1, &[]);
    s.group_instance_id = Some("inst-a".into());
    done(c.sync(0, s));
    let tb = waits(c.join(10, range("")));
    let rb = join_answer(&mut c, 10 + i64::from(REBALANCE_MS), tb);
    assert_eq!(rb.generation_id, 2);
    // The static member was kept through the rebalance (and is in the leader's list)...
    let is_member = |c: &GroupCoordinator| {
        c.describe("g")
            .expect("g")
            .members
            .iter()
            .any(|m| m.member_id == a)
    };
    assert!(is_member(&c));
    assert_eq!(rb.members.len(), 2);
    // ...until its session expires.
    c.tick(i64::from(SESSION_MS));
    assert!(!is_member(&c));
}

#[test]
fn leave_rebalances_and_the_last_leave_empties_the_group() {
    let mut c = coordinator();
    let (a, b) = two_members(&mut c, 0);
    let left = c.leave(
        5,
        "g",
        &[
            LeavingMember {
                member_id: b.clone(),
                group_instance_id: None,
            },
            LeavingMember {
                member_id: "ghost".into(),
                group_instance_id: None,
            },
        ],
    );
    assert_eq!(left, vec![Ok(()), Err(GroupError::UnknownMemberId)]);
    assert_eq!(c.state("g"), Some(GroupState::PreparingRebalance));
    let r = done(c.join(6, range(&a)));
    assert_eq!((r.generation_id, r.members.len()), (3, 1));
    let left = c.leave(
        7,
        "g",
        &[LeavingMember {
            member_id: a,
            group_instance_id: None,
        }],
    );
    assert_eq!(left, vec![Ok(())]);
    assert_eq!(c.state("g"), Some(GroupState::Empty));
    assert_eq!(c.generation("g"), Some(4));
    assert_eq!(c.empty_since_ms("g"), Some(7));
    assert_eq!(
        c.leave(8, "missing", &[LeavingMember::default()]),
        vec![Err(GroupError::UnknownMemberId)]
    );
}

#[test]
fn leave_by_instance_id_removes_the_static_member() {
    let mut c = coordinator();
    done(c.join(0, static_req("", "inst-a", "m")));
    let left = c.leave(
        1,
        "g",
        &[LeavingMember {
            member_id: String::new(),
            group_instance_id: Some("inst-a".into()),
        }],
    );
    assert_eq!(left, vec![Ok(())]);
    assert_eq!(c.state("g"), Some(GroupState::Empty));
}

#[test]
fn member_leaving_while_others_wait_completes_their_join() {
    let mut c = coordinator();
    let (a, b) = two_members(&mut c, 0);
    let ta = waits(c.join(1, range(&a)));
    c.leave(
        2,
        "g",
        &[LeavingMember {
            member_id: b,
            group_instance_id: None,
        }],
    );
    let r = join_answer(&mut c, 2, ta);
    assert_eq!((r.generation_id, r.members.len()), (3, 1));
}

#[test]
fn pending_member_id_expires_and_unblocks_the_rebalance() {
    let mut c = coordinator();
    let a = lone_member(&mut c, 0);
    let mut new = range("");
    new.require_known_member_id = true;
    let pending = done(c.join(1, new)).member_id;
    // A rebalance started by the leader waits for the pending member...
    let ta = waits(c.join(2, range(&a)));
    assert!(matches!(c.poll(3, ta), Poll::Pending { .. }));
    // ...until its id expires (session timeout from when it was handed out).
    let r = join_answer(&mut c, 1 + i64::from(SESSION_MS), ta);
    assert_eq!(r.members.len(), 1);
    assert_eq!(
        done(c.join(20_000, range(&pending))).error,
        Some(GroupError::UnknownMemberId)
    );
}

#[test]
fn leader_that_never_syncs_triggers_a_new_rebalance() {
    let mut c = coordinator();
    let a = lone_member(&mut c, 0);
    let tb = waits(c.join(10, range("")));
    done(c.join(11, range(&a)));
    let b = join_answer(&mut c, 11, tb).member_id;
    let sb = waits(c.sync(12, sync(&b, 2, &[])));
    match c.poll(13, sb) {
        Poll::Pending { deadline_ms } => assert_eq!(deadline_ms, 11 + i64::from(REBALANCE_MS)),
        other => panic!("{other:?}"),
    }
    let r = sync_answer(&mut c, 11 + i64::from(REBALANCE_MS), sb);
    assert_eq!(r.error, Some(GroupError::RebalanceInProgress));
    assert_eq!(c.state("g"), Some(GroupState::PreparingRebalance));
}

#[test]
fn sync_before_join_completes_is_told_to_rebalance() {
    let mut c = coordinator();
    let (a, _b) = two_members(&mut c, 0);
    waits(c.join(1, range("")));
    assert_eq!(
        done(c.sync(2, sync(&a, 2, &[]))).error,
        Some(GroupError::RebalanceInProgress)
    );
}

#[test]
fn delete_refuses_groups_with_members() {
    let mut c = coordinator();
    let a = lone_member(&mut c, 0);
    assert_eq!(c.delete("g"), Err(GroupError::NonEmptyGroup));
    c.leave(
        1,
        "g",
        &[LeavingMember {
            member_id: a,
            group_instance_id: None,
        }],
    );
    assert_eq!(c.delete("g"), Ok(true));
    assert_eq!(c.delete("g"), Ok(false));
    assert_eq!(c.state("g"), None);
}

#[test]
fn describe_shows_metadata_only_when_stable_and_list_reports_states() {
    let mut c = coordinator();
    let a = lone_member(&mut c, 0);
    waits(c.join(1, range("")));
    let d = c.describe("g").expect("g");
    assert_eq!(d.state, GroupState::PreparingRebalance);
    assert_eq!(d.protocol_data, "");
    assert!(d.members.iter().all(|m| m.metadata.is_empty()));
    assert_eq!(d.members[0].member_id, a);
    let l = c.list();
    assert_eq!(l.len(), 1);
    assert_eq!(l[0].protocol_type, "consumer");
    assert_eq!(l[0].state.as_str(), "PreparingRebalance");
}

#[test]
fn offset_delete_policy_protects_subscribed_topics() {
    let mut c = coordinator();
    let sub = assignor::encode_subscription(&["orders".to_string()]);
    let mut r = range("");
    r.protocols[0].metadata = sub;
    done(c.join(0, r));
    match c.offset_delete_policy("g") {
        OffsetDeletePolicy::NotSubscribed(Some(topics)) => {
            assert!(topics.contains("orders"));
            assert!(!topics.contains("audit"));
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(c.offset_delete_policy("none"), OffsetDeletePolicy::Any);
}

#[test]
fn answers_nobody_takes_are_dropped_after_their_ttl() {
    let mut c = coordinator();
    let (a, b) = two_members(&mut c, 0);
    let tb = waits(c.join(1, req(&b, &[("range", "new")])));
    done(c.join(1, range(&a)));
    c.tick(1 + GroupConfig::default().answer_ttl_ms);
    assert_eq!(
        c.poll(2 + GroupConfig::default().answer_ttl_ms, tb),
        Poll::Unknown
    );
}

#[test]
fn offsets_expire_only_after_the_group_was_empty_for_the_retention() {
    let day = 86_400_000;
    let start = 1_000 * day;
    // Active group: never.
    assert!(!offsets_expired(
        true,
        None,
        0,
        start + 30 * day,
        start,
        start,
        day
    ));
    // Unknown since start: measured from the later of the last commit and the start.
    assert!(!offsets_expired(
        false,
        None,
        0,
        start + day,
        start - 9 * day,
        start,
        day
    ));
    assert!(offsets_expired(
        false,
        None,
        0,
        start + day + 1,
        start - 9 * day,
        start,
        day
    ));
    // Empty since a coordinator time: both the empty time and the last commit count.
    assert!(!offsets_expired(
        false,
        Some(100),
        100 + day,
        start + 5 * day,
        start,
        start,
        day
    ));
    assert!(offsets_expired(
        false,
        Some(100),
        101 + day,
        start + 5 * day,
        start,
        start,
        day
    ));
    assert!(!offsets_expired(
        false,
        Some(100),
        101 + day,
        start + 5 * day,
        start + 5 * day - 10,
        start,
        day
    ));
}

#[test]
fn member_ids_are_deterministic_for_a_seed_and_unique() {
    let mut c1 = GroupCoordinator::new(no_delay(), 42);
    let mut c2 = GroupCoordinator::new(no_delay(), 42);
    let mut r = range("");
    r.require_known_member_id = true;
    let a1 = done(c1.join(0, r.clone())).member_id;
    let a2 = done(c2.join(0, r.clone())).member_id;
    let b1 = done(c1.join(0, r)).member_id;
    assert_eq!(a1, a2);
    assert_ne!(a1, b1);
    assert_eq!(a1.len(), "client-".len() + 36);
}

#[test]
fn group_size_is_bounded() {
    let config = GroupConfig {
        group_members_max: 2,
        ..no_delay()
    };
    let mut c = GroupCoordinator::new(config, 1);
    let a = done(c.join(0, range(""))).member_id;
    done(c.sync(0, sync(&a, 1, &[])));
    waits(c.join(1, range("")));
    assert_eq!(
        done(c.join(2, range(""))).error,
        Some(GroupError::GroupMaxSizeReached)
    );
}
