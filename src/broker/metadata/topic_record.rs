//! `__topics.meta` records: the broker's `TopicRecord` and its private on-disk form.
//!
//! Topic configs are stored as Kafka's name → value map, so a new config needs no format
//! change. `config_to_map` / `config_from_map` are the one place that maps `TopicConfig` to
//! and from those names; a name this build does not know is ignored with a warning (a newer
//! build may have written it), a known name with a value that does not parse fails the decode
//! naming the topic. Range checks stay in `TopicConfig::validate` (run by `Broker::new`).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::record_log::MetaRecord;
use super::{decode_body, encode_versioned, legacy};
use crate::broker::TopicMeta;
use crate::config::{FsyncPolicy, TopicConfig};

/// The header's file-kind byte of `__topics.meta`.
pub(crate) const TOPICS_FILE_KIND: u8 = 1;
/// Version byte of the current topic record layout (`TopicRecordV1`).
const TOPIC_RECORD_V1: u8 = 1;

pub(crate) const SEGMENT_BYTES: &str = "segment.bytes";
pub(crate) const SEGMENT_MS: &str = "segment.ms";
pub(crate) const RETENTION_MS: &str = "retention.ms";
pub(crate) const RETENTION_BYTES: &str = "retention.bytes";
pub(crate) const MAX_MESSAGE_BYTES: &str = "max.message.bytes";
/// Thorstream's own per-topic fsync policy (absent: the broker's).
pub(crate) const FSYNC: &str = "thorstream.fsync";

/// One record of `__topics.meta`, as the broker replays it.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum TopicRecord {
    Upsert(TopicMeta),
    Delete { name: String },
}

/// Version 1 on disk (bincode, see `metadata`'s docs for the bytes). Never change it: add a
/// `TopicRecordV2` and a new version byte instead.
#[derive(Debug, Serialize, Deserialize)]
enum TopicRecordV1 {
    Upsert {
        name: String,
        id: [u8; 16],
        partitions: u32,
        replication_factor: u16,
        configs: BTreeMap<String, String>,
    },
    Delete {
        name: String,
    },
}

/// `fsync` as stored: `always`, `never` or `<N>ms` (any N, 0 included, so every policy the
/// embedded API can set round-trips).
fn fsync_to_string(p: FsyncPolicy) -> String {
    p.to_string()
}

fn fsync_from_str(s: &str) -> Option<FsyncPolicy> {
    match s {
        "always" => Some(FsyncPolicy::Always),
        "never" => Some(FsyncPolicy::Never),
        other => other
            .strip_suffix("ms")
            .and_then(|n| n.parse().ok())
            .map(FsyncPolicy::Interval),
    }
}

/// A topic's config as Kafka's name → value map (partition and replica counts are not Kafka
/// configs; they are fields of the record).
pub(crate) fn config_to_map(c: &TopicConfig) -> BTreeMap<String, String> {
    let mut m = BTreeMap::new();
    m.insert(SEGMENT_BYTES.into(), c.segment_bytes.to_string());
    m.insert(SEGMENT_MS.into(), c.segment_ms.to_string());
    m.insert(RETENTION_MS.into(), c.retention_ms.to_string());
    m.insert(RETENTION_BYTES.into(), c.retention_bytes.to_string());
    m.insert(MAX_MESSAGE_BYTES.into(), c.max_message_bytes.to_string());
    if let Some(f) = c.fsync {
        m.insert(FSYNC.into(), fsync_to_string(f));
    }
    let policy = match (c.cleanup_delete, c.cleanup_compact) {
        (true, true) => "compact,delete",
        (false, true) => "compact",
        _ => "delete",
    };
    m.insert("cleanup.policy".into(), policy.into());
    m.insert(
        "delete.retention.ms".into(),
        c.delete_retention_ms.to_string(),
    );
    m.insert(
        "min.compaction.lag.ms".into(),
        c.min_compaction_lag_ms.to_string(),
    );
    m.insert(
        "max.compaction.lag.ms".into(),
        c.max_compaction_lag_ms.to_string(),
    );
    let ratio = c.min_cleanable_dirty_ratio.to_string();
    m.insert("min.cleanable.dirty.ratio".into(), ratio);
    m
}

/// Compaction settings, stored under their Kafka names and parsed back by `TopicConfig::set`.
const COMPACTION_CONFIGS: &[&str] = &[
    "cleanup.policy",
    "delete.retention.ms",
    "min.compaction.lag.ms",
    "max.compaction.lag.ms",
    "min.cleanable.dirty.ratio",
];

/// The inverse of `config_to_map`. A name missing from the map keeps `TopicConfig`'s default
/// (a record written before that config existed); an unknown name is ignored with a warning;
/// a value that does not parse is an error naming the topic.
pub(crate) fn config_from_map(
    topic: &str,
    partitions: u32,
    replication_factor: u16,
    configs: &BTreeMap<String, String>,
) -> Result<TopicConfig, String> {
    let mut c = TopicConfig {
        num_partitions: partitions,
        replication_factor,
        ..TopicConfig::default()
    };
    for (name, value) in configs {
        fn parse<V: std::str::FromStr>(v: &str) -> Option<V> {
            v.parse().ok()
        }
        let ok = match name.as_str() {
            SEGMENT_BYTES => parse(value).map(|v| c.segment_bytes = v),
            SEGMENT_MS => parse(value).map(|v| c.segment_ms = v),
            RETENTION_MS => parse(value).map(|v| c.retention_ms = v),
            RETENTION_BYTES => parse(value).map(|v| c.retention_bytes = v),
            MAX_MESSAGE_BYTES => parse(value).map(|v| c.max_message_bytes = v),
            FSYNC => fsync_from_str(value).map(|v| c.fsync = Some(v)),
            n if COMPACTION_CONFIGS.contains(&n) => c.set(n, value).ok(),
            _ => {
                log::warn!(
                    "topic {topic}: ignoring stored config {name}={value:?}, unknown to this version"
                );
                Some(())
            }
        };
        if ok.is_none() {
            return Err(format!(
                "topic {topic}: stored config {name}={value:?} is not a valid value"
            ));
        }
    }
    Ok(c)
}

impl TopicRecord {
    fn to_v1(&self) -> TopicRecordV1 {
        match self {
            TopicRecord::Upsert(m) => TopicRecordV1::Upsert {
                name: m.name.clone(),
                id: m.id,
                partitions: m.config.num_partitions,
                replication_factor: m.config.replication_factor,
                configs: config_to_map(&m.config),
            },
            TopicRecord::Delete { name } => TopicRecordV1::Delete { name: name.clone() },
        }
    }

    fn from_v1(r: TopicRecordV1) -> Result<TopicRecord, String> {
        Ok(match r {
            TopicRecordV1::Upsert {
                name,
                id,
                partitions,
                replication_factor,
                configs,
            } => {
                let config = config_from_map(&name, partitions, replication_factor, &configs)?;
                TopicRecord::Upsert(TopicMeta { name, id, config })
            }
            TopicRecordV1::Delete { name } => TopicRecord::Delete { name },
        })
    }
}

impl MetaRecord for TopicRecord {
    const FILE_KIND: u8 = TOPICS_FILE_KIND;

    fn encode(&self) -> Result<Vec<u8>, String> {
        encode_versioned(TOPIC_RECORD_V1, &self.to_v1())
    }

    fn decode(payload: &[u8]) -> Result<Self, String> {
        match payload.split_first() {
            Some((&TOPIC_RECORD_V1, body)) => TopicRecord::from_v1(decode_body(body)?),
            Some((v, _)) => Err(format!("unknown topic record version {v}")),
            None => Err("empty topic record".into()),
        }
    }

    fn decode_legacy(payload: &[u8]) -> Result<Self, String> {
        Ok(match legacy::decode_topic_record(payload)? {
            legacy::LegacyTopicRecord::Upsert(m) => {
                let c = m.config;
                TopicRecord::Upsert(TopicMeta {
                    name: m.name,
                    id: m.id,
                    config: TopicConfig {
                        num_partitions: c.num_partitions,
                        replication_factor: c.replication_factor,
                        fsync: c.fsync.map(|f| match f {
                            legacy::LegacyFsyncPolicy::Always => FsyncPolicy::Always,
                            legacy::LegacyFsyncPolicy::Interval(ms) => FsyncPolicy::Interval(ms),
                            legacy::LegacyFsyncPolicy::Never => FsyncPolicy::Never,
                        }),
                        segment_bytes: c.segment_bytes,
                        segment_ms: c.segment_ms,
                        retention_ms: c.retention_ms,
                        retention_bytes: c.retention_bytes,
                        max_message_bytes: c.max_message_bytes,
                        ..TopicConfig::default()
                    },
                })
            }
            legacy::LegacyTopicRecord::Delete { name } => TopicRecord::Delete { name },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn fsync_policy() -> impl Strategy<Value = Option<FsyncPolicy>> {
        prop_oneof![
            Just(None),
            Just(Some(FsyncPolicy::Always)),
            Just(Some(FsyncPolicy::Never)),
            any::<u64>().prop_map(|n| Some(FsyncPolicy::Interval(n))),
        ]
    }

    fn topic_config() -> impl Strategy<Value = TopicConfig> {
        (
            any::<u32>(),
            any::<u16>(),
            fsync_policy(),
            any::<u64>(),
            any::<i64>(),
            any::<i64>(),
            any::<i64>(),
            any::<u32>(),
            (
                prop::sample::select(vec![(true, false), (false, true), (true, true)]),
                (any::<i64>(), any::<i64>(), any::<i64>(), 0.0..=1.0f64),
            ),
        )
            .prop_map(
                |(p, rf, fsync, sb, sms, rms, rb, mmb, compaction)| TopicConfig {
                    num_partitions: p,
                    replication_factor: rf,
                    fsync,
                    segment_bytes: sb,
                    segment_ms: sms,
                    retention_ms: rms,
                    retention_bytes: rb,
                    max_message_bytes: mmb,
                    cleanup_delete: compaction.0.0,
                    cleanup_compact: compaction.0.1,
                    delete_retention_ms: compaction.1.0,
                    min_compaction_lag_ms: compaction.1.1,
                    max_compaction_lag_ms: compaction.1.2,
                    min_cleanable_dirty_ratio: compaction.1.3,
                },
            )
    }

    proptest! {
        #[test]
        fn topic_records_round_trip(name in "[a-zA-Z0-9._-]{1,40}", id in any::<[u8; 16]>(), config in topic_config(), delete in any::<bool>()) {
            let r = if delete {
                TopicRecord::Delete { name }
            } else {
                TopicRecord::Upsert(TopicMeta { name, id, config })
            };
            let payload = r.encode().map_err(TestCaseError::fail)?;
            prop_assert_eq!(payload[0], TOPIC_RECORD_V1);
            prop_assert_eq!(TopicRecord::decode(&payload).map_err(TestCaseError::fail)?, r);
        }

        #[test]
        fn legacy_topic_records_decode_to_the_same_record(name in "[a-zA-Z0-9._-]{1,40}", id in any::<[u8; 16]>(), config in topic_config()) {
            // The legacy layout predates the compaction settings: they decode as defaults.
            let d = TopicConfig::default();
            let config = TopicConfig {
                cleanup_delete: d.cleanup_delete,
                cleanup_compact: d.cleanup_compact,
                delete_retention_ms: d.delete_retention_ms,
                min_compaction_lag_ms: d.min_compaction_lag_ms,
                max_compaction_lag_ms: d.max_compaction_lag_ms,
                min_cleanable_dirty_ratio: d.min_cleanable_dirty_ratio,
                ..config
            };
            let r = TopicRecord::Upsert(TopicMeta { name, id, config });
            let legacy = legacy::encode_topic_record_for_test(&r);
            prop_assert_eq!(TopicRecord::decode_legacy(&legacy).map_err(TestCaseError::fail)?, r);
        }

        #[test]
        fn garbage_payloads_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            let _ = TopicRecord::decode(&bytes);
            let _ = TopicRecord::decode_legacy(&bytes);
        }
    }

    #[test]
    fn unknown_config_names_are_ignored_and_missing_ones_default() {
        let mut m = BTreeMap::new();
        m.insert("thorstream.not.yet.known".to_string(), "x".to_string());
        m.insert(RETENTION_MS.to_string(), "-1".to_string());
        let c = config_from_map("t", 3, 1, &m).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            c,
            TopicConfig {
                num_partitions: 3,
                retention_ms: -1,
                ..TopicConfig::default()
            }
        );
    }

    #[test]
    fn a_bad_config_value_is_an_error_naming_the_topic() {
        for (name, value) in [
            (SEGMENT_BYTES, "-5"),
            (MAX_MESSAGE_BYTES, "big"),
            (FSYNC, "sometimes"),
            (SEGMENT_MS, ""),
        ] {
            let mut m = BTreeMap::new();
            m.insert(name.to_string(), value.to_string());
            let e = config_from_map("orders", 1, 1, &m).err();
            let e = e.unwrap_or_else(|| panic!("{name}={value} accepted"));
            assert!(e.contains("orders") && e.contains(name), "{e}");
        }
    }

    #[test]
    fn an_unknown_record_version_is_an_error() {
        let mut payload = TopicRecord::Delete { name: "t".into() }
            .encode()
            .unwrap_or_else(|e| panic!("{e}"));
        payload[0] = 2;
        let e = TopicRecord::decode(&payload).err();
        assert!(e.is_some_and(|e| e.contains("version 2")));
    }
}
