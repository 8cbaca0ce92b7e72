#![allow(clippy::unwrap_used, clippy::expect_used)]
//! The embedded-usage snippet of the seed README, byte for byte. `BrokerConfig::default()` puts
//! data in `./data`, so this binary holds a single test that first moves into a temp dir.

use std::sync::Arc;
use thorstream::{Broker, BrokerConfig, Consumer, Producer, Record};

fn readme_snippet() -> Result<Vec<thorstream::StoredRecord>, Box<dyn std::error::Error>> {
    // ---- README snippet, unchanged ----
    let config = BrokerConfig::default();
    let broker = Arc::new(Broker::new(config)?);
    broker.create_topic("events", None)?;

    let producer = Producer::new(Arc::clone(&broker));
    producer.send("events", Record::new(b"hello".to_vec()), None)?;

    let mut consumer = Consumer::new(Arc::clone(&broker));
    consumer.set_group_id("my-group");
    consumer.subscribe(vec!["events".to_string()])?;
    let records = consumer.poll(None)?;
    consumer.commit()?;
    // ---- end of snippet ----
    assert_eq!(
        broker
            .committed_offset("my-group", "events", 0)
            .map(|c| c.offset),
        Some(1)
    );
    Ok(records)
}

#[test]
fn readme_snippet_runs_unchanged_and_returns_the_record() {
    let tmp = tempfile::tempdir().expect("tmp");
    std::env::set_current_dir(tmp.path()).expect("chdir");
    let records = readme_snippet().expect("snippet runs");
    assert_eq!(records.len(), 1);
    assert_eq!(records[0].topic, "events");
    assert_eq!(records[0].partition, 0);
    assert_eq!(records[0].offset, 0);
    assert_eq!(records[0].value.as_deref(), Some(&b"hello"[..]));
    assert!(
        tmp.path()
            .join("data/events-0/00000000000000000000.log")
            .exists()
    );
}
