//! The coordinator-wide next deadline the timer thread waits for (`timer.rs`): it names the
//! earliest session end of any group, and ticking at it expires that member then, not later.

use bytes::Bytes;

use super::*;

const SESSION_MS: i32 = 10_000;

fn coordinator() -> GroupCoordinator {
    let config = GroupConfig {
        initial_rebalance_delay_ms: 0,
        ..GroupConfig::default()
    };
    GroupCoordinator::new(config, 3)
}

/// A lone member of `group` joined and synced at `now`; its member id.
fn stable_member(c: &mut GroupCoordinator, group: &str, now: i64) -> String {
    let join = JoinRequest {
        group_id: group.into(),
        client_id: "c".into(),
        session_timeout_ms: SESSION_MS,
        rebalance_timeout_ms: 5_000,
        protocol_type: "consumer".into(),
        protocols: vec![Protocol {
            name: "range".into(),
            metadata: Bytes::from_static(b"m"),
        }],
        ..JoinRequest::default()
    };
    let Reply::Done(r) = c.join(now, join) else {
        panic!("a lone member's join completes at once without the initial delay")
    };
    let sync = SyncRequest {
        group_id: group.into(),
        member_id: r.member_id.clone(),
        generation_id: r.generation_id,
        ..SyncRequest::default()
    };
    assert!(matches!(c.sync(now, sync), Reply::Done(s) if s.error.is_none()));
    r.member_id
}

#[test]
fn the_next_deadline_is_the_earliest_session_end_of_any_group() {
    let mut c = coordinator();
    assert_eq!(c.next_deadline_ms(), None);
    let a = stable_member(&mut c, "a", 0);
    stable_member(&mut c, "b", 2_000);
    let session = i64::from(SESSION_MS);
    assert_eq!(c.next_deadline_ms(), Some(session));
    assert_eq!(c.group_deadline_ms("b"), Some(2_000 + session));
    // A heartbeat moves a's deadline later; b's is now the earliest.
    assert_eq!(c.heartbeat(5_000, "a", &a, None, 1), Ok(()));
    assert_eq!(c.next_deadline_ms(), Some(2_000 + session));
    c.tick(2_000 + session - 1);
    assert_eq!(c.state("b"), Some(GroupState::Stable));
    c.tick(2_000 + session);
    assert_eq!(
        c.state("b"),
        Some(GroupState::Empty),
        "expired at its deadline"
    );
    assert_eq!(c.state("a"), Some(GroupState::Stable));
    assert_eq!(c.next_deadline_ms(), Some(5_000 + session));
}
