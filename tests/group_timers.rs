#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Group deadlines are applied when they fall due, by the coordinator's timer thread: with
//! housekeeping effectively off (`common::config`: once an hour), a member that stops
//! heartbeating is still removed at the end of its session, so the group is seen Empty and
//! can be deleted.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use thorstream::internals::BrokerInternals;
use thorstream::internals::broker::group::GroupState;
use thorstream::{Consumer, FsyncPolicy, TopicConfig};

const SESSION_MS: i32 = 6_000;
const HEARTBEAT_MS: i64 = 500;

#[test]
fn a_silent_member_is_expired_at_its_session_deadline_without_housekeeping() {
    let tmp = tempfile::tempdir().unwrap();
    let broker = common::open(tmp.path(), FsyncPolicy::Never);
    broker
        .create_topic("t", Some(TopicConfig::with_partitions(2)))
        .unwrap();
    let mut c = Consumer::new(Arc::clone(&broker));
    c.set_group_id("g");
    // A static member does not leave when dropped (as Kafka): its session must expire.
    c.set_group_instance_id("i1");
    c.set_session_timeout_ms(SESSION_MS);
    c.set_heartbeat_interval_ms(HEARTBEAT_MS);
    c.subscribe(vec!["t".to_string()]).unwrap();
    assert!(common::wait_until(Duration::from_secs(10), || {
        c.poll(Some(Duration::from_millis(50))).unwrap();
        c.assignment().len() == 2
    }));
    assert_eq!(broker.groups().state("g"), Some(GroupState::Stable));
    let refused = broker.groups().delete_group("g", broker.offset_store());
    assert!(refused.is_err(), "a group with a member is not deleted");
    let silent_since = Instant::now();
    drop(c);
    assert!(
        common::wait_until(Duration::from_secs(30), || {
            broker.groups().state("g") == Some(GroupState::Empty)
        }),
        "the member was never expired"
    );
    // Not before its session could have ended: it heartbeat last at most `HEARTBEAT_MS`
    // (plus a poll) before `silent_since`.
    let earliest = Duration::from_millis(SESSION_MS as u64 - 2 * HEARTBEAT_MS as u64);
    assert!(
        silent_since.elapsed() >= earliest,
        "{:?}",
        silent_since.elapsed()
    );
    broker
        .groups()
        .delete_group("g", broker.offset_store())
        .expect("an empty group is deleted");
}
