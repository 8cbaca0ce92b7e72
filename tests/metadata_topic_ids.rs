//! Metadata v12 by topic id, as Kafka (`KafkaApis.handleTopicMetadataRequest`): when any
//! requested topic carries an id, topics are looked up by id (the Java AdminClient sends the id
//! with `name: ""`), and an unknown id is answered UNKNOWN_TOPIC_ID with the id and a null name.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::io::Write;
use std::net::TcpStream;
use std::time::Duration;

use common::server::start_wire;
use common::wire::{request, response};
use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;

const V: i16 = 12;

fn metadata(s: &mut TcpStream, topics: Vec<MetadataRequestTopic>) -> MetadataResponse {
    let req = MetadataRequest::default().with_topics(Some(topics));
    s.write_all(&request(ApiKey::Metadata, V, 7, &req)).unwrap();
    let (corr, resp): (i32, MetadataResponse) =
        response(s, ApiKey::Metadata.response_header_version(V), V);
    assert_eq!(corr, 7);
    resp
}

#[test]
fn topics_are_found_by_id_even_with_an_empty_name_and_unknown_ids_get_error_100() {
    let f = start_wire(64 * 1024, |_| {});
    let mut s = TcpStream::connect(f.addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();

    let by_name = metadata(
        &mut s,
        vec![
            MetadataRequestTopic::default()
                .with_name(Some(TopicName(StrBytes::from_static_str("t")))),
        ],
    );
    let id = by_name.topics[0].topic_id;
    assert!(!id.is_nil());

    // What the Java admin's describeTopics(TopicCollection.ofTopicIds(..)) sends.
    let unknown = uuid::Uuid::from_bytes([7; 16]);
    let resp = metadata(
        &mut s,
        vec![
            MetadataRequestTopic::default()
                .with_topic_id(id)
                .with_name(Some(TopicName(StrBytes::from_static_str("")))),
            MetadataRequestTopic::default().with_topic_id(unknown),
        ],
    );
    assert_eq!(resp.topics.len(), 2, "{resp:?}");
    let known = &resp.topics[0];
    assert_eq!(known.error_code, 0);
    assert_eq!(known.topic_id, id);
    assert_eq!(
        known.name.as_ref().map(|n| n.0.to_string()),
        Some("t".to_string())
    );
    assert_eq!(known.partitions.len(), 2);
    let missing = &resp.topics[1];
    assert_eq!(missing.error_code, 100, "UNKNOWN_TOPIC_ID");
    assert_eq!(missing.topic_id, unknown);
    assert_eq!(missing.name, None);
}
