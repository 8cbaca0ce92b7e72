//! CreateTopics and CreatePartitions with `validate_only` answer exactly what the real call
//! answers on the same broker, and create nothing: for each case the validate-only request is
//! sent first, the broker is checked unchanged, then the real request is sent.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::net::TcpStream;
use std::time::Duration;

use common::server::{Fixture, start};
use common::wire::{request, response};
use kafka_protocol::messages::create_partitions_request::CreatePartitionsTopic;
use kafka_protocol::messages::create_topics_request::{CreatableTopic, CreatableTopicConfig};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use thorstream::TopicConfig;

const CREATE_TOPICS_V: i16 = 7;
const CREATE_PARTITIONS_V: i16 = 3;
/// The broker's `max_partitions`; the fixture starts with topic `exists` of 2 partitions.
const BROKER_PARTITIONS_MAX: u32 = 6;

fn fixture() -> Fixture {
    start(
        |bc| bc.max_partitions = BROKER_PARTITIONS_MAX,
        [("exists", TopicConfig::with_partitions(2))],
        |_| {},
    )
}

fn connect(f: &Fixture) -> TcpStream {
    let s = TcpStream::connect(f.addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s
}

fn str(s: &str) -> StrBytes {
    StrBytes::from_string(s.to_string())
}

/// What the broker holds: topic names, each with its partition count, and the data dir's
/// entries (a created partition is a directory there).
fn state(f: &Fixture) -> (Vec<(String, usize)>, Vec<String>) {
    let topics = f
        .broker
        .topics()
        .into_iter()
        .map(|t| {
            let n = f.broker.partition_count(&t).unwrap();
            (t, n)
        })
        .collect();
    let mut entries: Vec<String> = std::fs::read_dir(&f.broker.config().data_dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    entries.sort();
    (topics, entries)
}

fn create_topic_code(s: &mut TcpStream, topic: &CreatableTopic, validate_only: bool) -> i16 {
    let req = CreateTopicsRequest::default()
        .with_topics(vec![topic.clone()])
        .with_timeout_ms(5000)
        .with_validate_only(validate_only);
    std::io::Write::write_all(s, &request(ApiKey::CreateTopics, CREATE_TOPICS_V, 1, &req)).unwrap();
    let (_, resp): (i32, CreateTopicsResponse) = response(
        s,
        ApiKey::CreateTopics.response_header_version(CREATE_TOPICS_V),
        CREATE_TOPICS_V,
    );
    assert_eq!(resp.topics.len(), 1);
    resp.topics[0].error_code
}

fn create_partitions_code(s: &mut TcpStream, name: &str, count: i32, validate_only: bool) -> i16 {
    let req = CreatePartitionsRequest::default()
        .with_topics(vec![
            CreatePartitionsTopic::default()
                .with_name(TopicName(str(name)))
                .with_count(count),
        ])
        .with_timeout_ms(5000)
        .with_validate_only(validate_only);
    std::io::Write::write_all(
        s,
        &request(ApiKey::CreatePartitions, CREATE_PARTITIONS_V, 2, &req),
    )
    .unwrap();
    let (_, resp): (i32, CreatePartitionsResponse) = response(
        s,
        ApiKey::CreatePartitions.response_header_version(CREATE_PARTITIONS_V),
        CREATE_PARTITIONS_V,
    );
    assert_eq!(resp.results.len(), 1);
    resp.results[0].error_code
}

#[test]
fn validate_only_create_topics_answers_the_real_calls_code_and_creates_nothing() {
    let f = fixture();
    let mut s = connect(&f);
    let topic = |name: &str, partitions: i32| {
        CreatableTopic::default()
            .with_name(TopicName(str(name)))
            .with_num_partitions(partitions)
            .with_replication_factor(-1)
    };
    let long = "a".repeat(250);
    // (case, request, Kafka error code the real call answers)
    let cases: Vec<(&str, CreatableTopic, i16)> = vec![
        ("bad character", topic("bad/name", 1), 17),
        ("dot dot", topic("..", 1), 17),
        ("name too long", topic(&long, 1), 17),
        ("already exists", topic("exists", 1), 36),
        ("too many partitions for a topic", topic("huge", 10_001), 37),
        ("over the broker's max_partitions", topic("over", 5), 37),
        (
            "bad config value",
            topic("badcfg", 1).with_configs(vec![
                CreatableTopicConfig::default()
                    .with_name(str("segment.bytes"))
                    .with_value(Some(str("not-a-number"))),
            ]),
            40,
        ),
        (
            "replication factor 2",
            topic("rf2", 1).with_replication_factor(2),
            38,
        ),
        ("ok", topic("fresh", 4), 0),
        // `fresh` took the broker to its limit of 6: one more partition is refused.
        ("over max_partitions after a creation", topic("one", 1), 37),
    ];
    for (case, t, expected) in cases {
        let before = state(&f);
        let validated = create_topic_code(&mut s, &t, true);
        assert_eq!(state(&f), before, "{case}: validate_only created something");
        let real = create_topic_code(&mut s, &t, false);
        assert_eq!(
            validated, real,
            "{case}: validate_only and the real call differ"
        );
        assert_eq!(real, expected, "{case}");
        if real != 0 {
            assert_eq!(
                state(&f),
                before,
                "{case}: a refused call created something"
            );
        }
    }
    assert_eq!(f.broker.partition_count("fresh").unwrap(), 4);
}

#[test]
fn validate_only_create_partitions_answers_the_real_calls_code_and_creates_nothing() {
    let f = fixture();
    let mut s = connect(&f);
    // (case, topic, new total, Kafka error code the real call answers)
    let cases = [
        ("unknown topic", "nope", 3, 3),
        ("not more than now", "exists", 2, 37),
        ("zero", "exists", 0, 37),
        ("over the per-topic limit", "exists", 10_001, 37),
        ("over the broker's max_partitions", "exists", 7, 37),
        ("ok", "exists", 6, 0),
        ("over max_partitions after the growth", "exists", 7, 37),
    ];
    for (case, name, count, expected) in cases {
        let before = state(&f);
        let validated = create_partitions_code(&mut s, name, count, true);
        assert_eq!(state(&f), before, "{case}: validate_only created something");
        let real = create_partitions_code(&mut s, name, count, false);
        assert_eq!(
            validated, real,
            "{case}: validate_only and the real call differ"
        );
        assert_eq!(real, expected, "{case}");
        if real != 0 {
            assert_eq!(
                state(&f),
                before,
                "{case}: a refused call created something"
            );
        }
    }
    assert_eq!(f.broker.partition_count("exists").unwrap(), 6);
}
