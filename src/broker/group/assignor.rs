//! The consumer protocol carried inside JoinGroup/SyncGroup (subscription and assignment,
//! each a 2-byte version then the body, as Kafka's `ConsumerProtocol`) and the range
//! assignor, for embedded members and for OffsetDelete's "is this topic subscribed" check.

use std::collections::BTreeMap;

use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::messages::consumer_protocol_assignment::TopicPartition as AssignedTopic;
use kafka_protocol::messages::{
    ConsumerProtocolAssignment, ConsumerProtocolSubscription, TopicName,
};
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};

/// JoinGroup `protocol_type` of consumers.
pub const CONSUMER_PROTOCOL: &str = "consumer";
/// Kafka's RangeAssignor name.
pub const RANGE: &str = "range";
/// Highest consumer-protocol version we decode; newer ones only append fields.
const VERSION_MAX: i16 = 3;
/// Version we write (every client reads it).
const VERSION_WRITTEN: i16 = 0;

fn encode<T: Encodable>(message: &T) -> Bytes {
    let mut buf = BytesMut::new();
    buf.put_i16(VERSION_WRITTEN);
    match message.encode(&mut buf, VERSION_WRITTEN) {
        Ok(()) => buf.freeze(),
        Err(e) => {
            // Only reachable with a field unsupported at v0, which we never set.
            log::error!("encoding consumer protocol message: {e}");
            Bytes::new()
        }
    }
}

fn decode<T: Decodable>(bytes: &[u8]) -> Option<T> {
    if bytes.len() < 2 {
        return None;
    }
    let version = i16::from_be_bytes([bytes[0], bytes[1]]).clamp(0, VERSION_MAX);
    let mut body = Bytes::copy_from_slice(&bytes[2..]);
    T::decode(&mut body, version).ok()
}

/// Subscription metadata for the topics (JoinGroup protocol metadata).
pub fn encode_subscription(topics: &[String]) -> Bytes {
    encode(
        &ConsumerProtocolSubscription::default().with_topics(
            topics
                .iter()
                .map(|t| StrBytes::from_string(t.clone()))
                .collect(),
        ),
    )
}

/// The topics of a subscription; `None` if it is not consumer-protocol metadata.
pub fn decode_subscription(metadata: &[u8]) -> Option<Vec<String>> {
    let s: ConsumerProtocolSubscription = decode(metadata)?;
    Some(s.topics.iter().map(|t| t.to_string()).collect())
}

pub fn encode_assignment(partitions: &[(String, Vec<i32>)]) -> Bytes {
    encode(
        &ConsumerProtocolAssignment::default().with_assigned_partitions(
            partitions
                .iter()
                .map(|(t, ps)| {
                    AssignedTopic::default()
                        .with_topic(TopicName(StrBytes::from_string(t.clone())))
                        .with_partitions(ps.clone())
                })
                .collect(),
        ),
    )
}

/// The partitions of an assignment; empty bytes are an empty assignment.
pub fn decode_assignment(bytes: &[u8]) -> Option<Vec<(String, Vec<i32>)>> {
    if bytes.is_empty() {
        return Some(Vec::new());
    }
    let a: ConsumerProtocolAssignment = decode(bytes)?;
    Some(
        a.assigned_partitions
            .iter()
            .map(|t| (t.topic.0.to_string(), t.partitions.clone()))
            .collect(),
    )
}

/// A member as an assignor sees it.
#[derive(Debug, Clone)]
pub struct Subscriber {
    pub member_id: String,
    pub group_instance_id: Option<String>,
    pub topics: Vec<String>,
}

/// Kafka's RangeAssignor: per topic, members subscribed to it in order (static members by
/// instance id first, then by member id) take consecutive ranges, the first
/// `partitions % members` one partition more. Topics missing from `partition_counts` are
/// skipped. Every member gets an entry (possibly empty).
pub fn range_assign(
    members: &[Subscriber],
    partition_counts: &BTreeMap<String, i32>,
) -> BTreeMap<String, Vec<(String, Vec<i32>)>> {
    let mut out: BTreeMap<String, Vec<(String, Vec<i32>)>> = members
        .iter()
        .map(|m| (m.member_id.clone(), Vec::new()))
        .collect();
    for (topic, &count) in partition_counts {
        let mut subscribed: Vec<&Subscriber> = members
            .iter()
            .filter(|m| m.topics.contains(topic))
            .collect();
        if subscribed.is_empty() || count <= 0 {
            continue;
        }
        subscribed.sort_by(|a, b| match (&a.group_instance_id, &b.group_instance_id) {
            (Some(x), Some(y)) => x.cmp(y),
            (Some(_), None) => std::cmp::Ordering::Less,
            (None, Some(_)) => std::cmp::Ordering::Greater,
            (None, None) => a.member_id.cmp(&b.member_id),
        });
        let n = subscribed.len() as i32;
        let (per, extra) = (count / n, count % n);
        for (i, m) in subscribed.iter().enumerate() {
            let i = i as i32;
            let start = per * i + i.min(extra);
            let len = per + i32::from(i < extra);
            if len > 0
                && let Some(list) = out.get_mut(&m.member_id)
            {
                list.push((topic.clone(), (start..start + len).collect()));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sub(id: &str, topics: &[&str]) -> Subscriber {
        Subscriber {
            member_id: id.into(),
            group_instance_id: None,
            topics: topics.iter().map(|t| t.to_string()).collect(),
        }
    }

    #[test]
    fn subscription_and_assignment_round_trip() {
        let s = encode_subscription(&["a".into(), "b".into()]);
        assert_eq!(decode_subscription(&s), Some(vec!["a".into(), "b".into()]));
        let parts = vec![("a".to_string(), vec![0, 2]), ("b".to_string(), vec![1])];
        assert_eq!(decode_assignment(&encode_assignment(&parts)), Some(parts));
        assert_eq!(decode_assignment(&[]), Some(vec![]));
        assert_eq!(decode_subscription(&[0]), None);
    }

    #[test]
    fn newer_subscription_versions_decode_as_the_highest_known() {
        // v3 body written, header claims v5: fields we know are read, the rest ignored.
        let mut buf = BytesMut::new();
        buf.put_i16(5);
        let s = ConsumerProtocolSubscription::default()
            .with_topics(vec![StrBytes::from_static_str("t")])
            .with_generation_id(4);
        s.encode(&mut buf, 3).expect("encode");
        assert_eq!(decode_subscription(&buf), Some(vec!["t".into()]));
    }

    #[test]
    fn range_splits_four_partitions_between_two_members() {
        let counts = BTreeMap::from([("t".to_string(), 4)]);
        let a = range_assign(&[sub("b-2", &["t"]), sub("a-1", &["t"])], &counts);
        assert_eq!(a["a-1"], vec![("t".to_string(), vec![0, 1])]);
        assert_eq!(a["b-2"], vec![("t".to_string(), vec![2, 3])]);
    }

    #[test]
    fn range_gives_the_first_members_the_remainder_and_skips_unsubscribed() {
        let counts = BTreeMap::from([("t".to_string(), 5), ("u".to_string(), 1)]);
        let members = [sub("m1", &["t"]), sub("m2", &["t", "u"]), sub("m3", &["t"])];
        let a = range_assign(&members, &counts);
        assert_eq!(a["m1"], vec![("t".to_string(), vec![0, 1])]);
        assert_eq!(
            a["m2"],
            vec![("t".to_string(), vec![2, 3]), ("u".to_string(), vec![0])]
        );
        assert_eq!(a["m3"], vec![("t".to_string(), vec![4])]);
        let lone = range_assign(&[sub("x", &["t"])], &counts);
        assert_eq!(lone["x"], vec![("t".to_string(), vec![0, 1, 2, 3, 4])]);
    }

    #[test]
    fn range_orders_static_members_by_instance_id_first() {
        let counts = BTreeMap::from([("t".to_string(), 2)]);
        let mut s = sub("zzz", &["t"]);
        s.group_instance_id = Some("i-1".into());
        let a = range_assign(&[sub("aaa", &["t"]), s], &counts);
        assert_eq!(a["zzz"], vec![("t".to_string(), vec![0])]);
        assert_eq!(a["aaa"], vec![("t".to_string(), vec![1])]);
    }
}
