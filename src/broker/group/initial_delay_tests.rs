//! Deterministic tests of `group.initial.rebalance.delay.ms` (Kafka's InitialDelayedJoin):
//! explicit `now_ms`, no threads, no sleeps.

use bytes::Bytes;

use super::*;

const DELAY_MS: i64 = 3_000;
const REBALANCE_MS: i32 = 10_000;

fn delayed() -> GroupCoordinator {
    let config = GroupConfig {
        initial_rebalance_delay_ms: DELAY_MS,
        ..GroupConfig::default()
    };
    GroupCoordinator::new(config, 7)
}

fn join_req(member_id: &str) -> JoinRequest {
    JoinRequest {
        group_id: "g".into(),
        member_id: member_id.into(),
        client_id: "client".into(),
        session_timeout_ms: 30_000,
        rebalance_timeout_ms: REBALANCE_MS,
        protocol_type: "consumer".into(),
        protocols: vec![Protocol {
            name: "range".into(),
            metadata: Bytes::from_static(b"m"),
        }],
        ..JoinRequest::default()
    }
}

fn ticket(r: Reply<JoinResponse>) -> Ticket {
    match r {
        Reply::Wait(t) => t,
        Reply::Done(r) => panic!("expected to wait, got {r:?}"),
    }
}

fn pending_until(c: &mut GroupCoordinator, now: i64, t: Ticket) -> i64 {
    match c.poll(now, t) {
        Poll::Pending { deadline_ms } => deadline_ms,
        other => panic!("expected pending at {now}, got {other:?}"),
    }
}

fn answer(c: &mut GroupCoordinator, now: i64, t: Ticket) -> JoinResponse {
    match c.poll(now, t) {
        Poll::Ready(Answer::Join(r)) => r,
        other => panic!("expected a join answer at {now}, got {other:?}"),
    }
}

#[test]
fn first_member_of_an_empty_group_waits_the_delay_even_when_all_joined() {
    let mut c = delayed();
    let a = ticket(c.join(0, join_req("")));
    assert_eq!(c.state("g"), Some(GroupState::PreparingRebalance));
    assert_eq!(pending_until(&mut c, 1_000, a), DELAY_MS);
    c.tick(DELAY_MS - 1);
    assert_eq!(c.state("g"), Some(GroupState::PreparingRebalance));
    c.tick(DELAY_MS);
    assert_eq!(c.state("g"), Some(GroupState::CompletingRebalance));
    let r = answer(&mut c, DELAY_MS, a);
    assert_eq!((r.error, r.generation_id), (None, 1));
    assert_eq!(r.members.len(), 1);
}

#[test]
fn members_arriving_during_the_delay_extend_it_and_share_one_generation() {
    let mut c = delayed();
    let a = ticket(c.join(0, join_req("")));
    let b = ticket(c.join(1_000, join_req("")));
    // At the first deadline a member has arrived: one more round of `DELAY_MS`.
    c.tick(DELAY_MS);
    assert_eq!(c.state("g"), Some(GroupState::PreparingRebalance));
    assert_eq!(pending_until(&mut c, DELAY_MS, a), 2 * DELAY_MS);
    // Nobody arrived in that round: the join completes, once, for both.
    c.tick(2 * DELAY_MS);
    let (ra, rb) = (
        answer(&mut c, 2 * DELAY_MS, a),
        answer(&mut c, 2 * DELAY_MS, b),
    );
    assert_eq!((ra.generation_id, rb.generation_id), (1, 1));
    assert_eq!(ra.leader, ra.member_id);
    assert_eq!(
        ra.members.len(),
        2,
        "the leader assigns to both members at once"
    );
    assert!(rb.members.is_empty());
}

#[test]
fn the_delay_ends_at_the_rebalance_timeout_however_many_members_keep_arriving() {
    let mut c = delayed();
    let first = ticket(c.join(0, join_req("")));
    // A member arrives in every round; rounds end at 3000, 6000, 9000 and, with 1000 ms
    // left, 10000. The timer runs every 100 ms.
    for now in (100..i64::from(REBALANCE_MS)).step_by(100) {
        if now % 3_000 == 500 {
            ticket(c.join(now, join_req("")));
        }
        c.tick(now);
    }
    c.tick(i64::from(REBALANCE_MS) - 1);
    assert_eq!(c.state("g"), Some(GroupState::PreparingRebalance));
    c.tick(i64::from(REBALANCE_MS));
    let r = answer(&mut c, i64::from(REBALANCE_MS), first);
    assert_eq!(r.generation_id, 1);
    assert_eq!(r.members.len(), 5, "joined at 0, 500, 3500, 6500, 9500");
}

#[test]
fn a_member_leaving_during_the_delay_does_not_end_it_early() {
    let mut c = delayed();
    let a = ticket(c.join(0, join_req("")));
    let b = ticket(c.join(100, join_req("")));
    let b_id = c
        .describe("g")
        .and_then(|s| s.members.last().map(|m| m.member_id.clone()))
        .unwrap_or_default();
    let left = c.leave(
        200,
        "g",
        &[LeavingMember {
            member_id: b_id,
            group_instance_id: None,
        }],
    );
    assert_eq!(left, vec![Ok(())]);
    assert_eq!(
        answer(&mut c, 200, b).error,
        Some(GroupError::UnknownMemberId)
    );
    assert_eq!(pending_until(&mut c, 200, a), DELAY_MS);
    // b's arrival extends the delay by one round.
    c.tick(DELAY_MS);
    assert_eq!(c.state("g"), Some(GroupState::PreparingRebalance));
    c.tick(2 * DELAY_MS);
    assert_eq!(answer(&mut c, 2 * DELAY_MS, a).members.len(), 1);
}

#[test]
fn later_rebalances_of_a_non_empty_group_are_not_delayed() {
    let mut c = delayed();
    let a = ticket(c.join(0, join_req("")));
    c.tick(DELAY_MS);
    let ra = answer(&mut c, DELAY_MS, a);
    let sync = SyncRequest {
        group_id: "g".into(),
        member_id: ra.member_id.clone(),
        generation_id: 1,
        ..SyncRequest::default()
    };
    assert!(matches!(c.sync(DELAY_MS, sync), Reply::Done(r) if r.error.is_none()));
    assert_eq!(c.state("g"), Some(GroupState::Stable));
    // A second member: the rebalance completes as soon as both have joined.
    let b = ticket(c.join(DELAY_MS + 1, join_req("")));
    let a2 = c.join(DELAY_MS + 2, join_req(&ra.member_id));
    let ra2 = match a2 {
        Reply::Done(r) => r,
        Reply::Wait(t) => answer(&mut c, DELAY_MS + 2, t),
    };
    assert_eq!(ra2.generation_id, 2);
    assert_eq!(answer(&mut c, DELAY_MS + 2, b).generation_id, 2);
}

#[test]
fn a_zero_delay_completes_a_lone_members_join_at_once() {
    let config = GroupConfig {
        initial_rebalance_delay_ms: 0,
        ..GroupConfig::default()
    };
    let mut c = GroupCoordinator::new(config, 7);
    match c.join(0, join_req("")) {
        Reply::Done(r) => assert_eq!((r.error, r.generation_id), (None, 1)),
        Reply::Wait(t) => panic!("waited on ticket {t}"),
    }
}
