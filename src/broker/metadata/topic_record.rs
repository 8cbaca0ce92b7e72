//! `__topics.meta` records: the broker's `TopicRecord` and its private on-disk forms.
//!
//! Topic configs are stored as Kafka's name → value map, so a new config needs no format
//! change. Version 2 (written now) stores only the configs set on the topic (its
//! `overrides`); everything else follows the broker's defaults, which may change while it
//! runs. Version 1 stored every value; read, its values equal to Kafka's default are taken as
//! inherited, the others as set on the topic. Version 2 also records the broker's dynamic
//! configs (AlterConfigs on the broker resource), one record per scope.
//!
//! `config_to_map` / `config_from_map` are the one place that maps `TopicConfig` to and from
//! those names. A name this build does not know is kept (written back on the next rewrite,
//! never applied: a newer build may have written it); a known name whose value fails Kafka's
//! check fails the decode naming the topic. `Broker::new` re-resolves every topic against
//! the broker's real defaults and validates it.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::record_log::MetaRecord;
use super::{decode_body, encode_versioned, legacy};
use crate::broker::TopicMeta;
use crate::config::{FsyncPolicy, TopicConfig};

/// The header's file-kind byte of `__topics.meta`.
pub(crate) const TOPICS_FILE_KIND: u8 = 1;
/// Version byte of the first topic record layout (`TopicRecordV1`), still read.
const TOPIC_RECORD_V1: u8 = 1;
/// Version byte of the current layout (`TopicRecordV2`).
const TOPIC_RECORD_V2: u8 = 2;

/// Thorstream's own per-topic fsync policy (absent: the broker's).
pub(crate) const FSYNC: &str = "thorstream.fsync";

/// One record of `__topics.meta`, as the broker replays it.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum TopicRecord {
    Upsert(TopicMeta),
    Delete {
        name: String,
    },
    /// The dynamic broker configs of one scope ("" = cluster default, else a node id), by
    /// broker name; replaces that scope's earlier record.
    BrokerConfigs {
        scope: String,
        configs: BTreeMap<String, String>,
    },
}

/// Version 1 on disk (bincode, see `metadata`'s docs for the bytes). Never change it.
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

/// Version 2 on disk: the same two variants (configs now only those set on the topic), and
/// the broker's dynamic configs. Never change it: add a `TopicRecordV3` instead.
#[derive(Debug, Serialize, Deserialize)]
enum TopicRecordV2 {
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
    BrokerConfigs {
        scope: String,
        configs: BTreeMap<String, String>,
    },
}

/// What is stored of a topic's config: the configs set on it.
pub(crate) fn config_to_map(c: &TopicConfig) -> BTreeMap<String, String> {
    c.overrides.clone()
}

/// The inverse of `config_to_map`, resolved against Kafka's defaults (the broker re-resolves
/// against its own at start-up). A value that fails its check is an error naming the topic.
pub(crate) fn config_from_map(
    topic: &str,
    partitions: u32,
    replication_factor: u16,
    configs: &BTreeMap<String, String>,
) -> Result<TopicConfig, String> {
    for name in configs.keys() {
        if crate::config::table::lookup(name).is_none() {
            log::warn!(
                "topic {topic}: keeping stored config {name}, unknown to this version (not applied)"
            );
        }
    }
    TopicConfig::resolve(
        &TopicConfig::default(),
        partitions,
        replication_factor,
        configs,
    )
    .map_err(|e| format!("topic {topic}: stored config: {e}"))
}

/// A version 1 map (every value stored) as overrides: what differs from Kafka's default.
/// A negative `retention.ms` other than -1 (accepted by earlier builds) means forever, as -1.
fn v1_overrides(configs: &BTreeMap<String, String>) -> BTreeMap<String, String> {
    let defaults = TopicConfig::default();
    configs
        .iter()
        .map(|(k, v)| match (k.as_str(), v.parse::<i64>()) {
            ("retention.ms", Ok(n)) if n < -1 => (k.clone(), "-1".to_string()),
            _ => (k.clone(), v.clone()),
        })
        .filter(|(k, v)| k == FSYNC || defaults.get(k).as_deref() != Some(v.as_str()))
        .collect()
}

impl TopicRecord {
    fn to_v2(&self) -> TopicRecordV2 {
        match self {
            TopicRecord::Upsert(m) => TopicRecordV2::Upsert {
                name: m.name.clone(),
                id: m.id,
                partitions: m.config.num_partitions,
                replication_factor: m.config.replication_factor,
                configs: config_to_map(&m.config),
            },
            TopicRecord::Delete { name } => TopicRecordV2::Delete { name: name.clone() },
            TopicRecord::BrokerConfigs { scope, configs } => TopicRecordV2::BrokerConfigs {
                scope: scope.clone(),
                configs: configs.clone(),
            },
        }
    }

    fn upsert(
        name: String,
        id: [u8; 16],
        partitions: u32,
        replication_factor: u16,
        configs: &BTreeMap<String, String>,
    ) -> Result<TopicRecord, String> {
        let config = config_from_map(&name, partitions, replication_factor, configs)?;
        Ok(TopicRecord::Upsert(TopicMeta { name, id, config }))
    }

    fn from_v1(r: TopicRecordV1) -> Result<TopicRecord, String> {
        Ok(match r {
            TopicRecordV1::Upsert {
                name,
                id,
                partitions,
                replication_factor,
                configs,
            } => TopicRecord::upsert(
                name,
                id,
                partitions,
                replication_factor,
                &v1_overrides(&configs),
            )?,
            TopicRecordV1::Delete { name } => TopicRecord::Delete { name },
        })
    }

    fn from_v2(r: TopicRecordV2) -> Result<TopicRecord, String> {
        Ok(match r {
            TopicRecordV2::Upsert {
                name,
                id,
                partitions,
                replication_factor,
                configs,
            } => TopicRecord::upsert(name, id, partitions, replication_factor, &configs)?,
            TopicRecordV2::Delete { name } => TopicRecord::Delete { name },
            TopicRecordV2::BrokerConfigs { scope, configs } => {
                TopicRecord::BrokerConfigs { scope, configs }
            }
        })
    }
}

impl MetaRecord for TopicRecord {
    const FILE_KIND: u8 = TOPICS_FILE_KIND;

    fn encode(&self) -> Result<Vec<u8>, String> {
        encode_versioned(TOPIC_RECORD_V2, &self.to_v2())
    }

    fn decode(payload: &[u8]) -> Result<Self, String> {
        match payload.split_first() {
            Some((&TOPIC_RECORD_V2, body)) => TopicRecord::from_v2(decode_body(body)?),
            Some((&TOPIC_RECORD_V1, body)) => TopicRecord::from_v1(decode_body(body)?),
            Some((v, _)) => Err(format!("unknown topic record version {v}")),
            None => Err("empty topic record".into()),
        }
    }

    fn decode_legacy(payload: &[u8]) -> Result<Self, String> {
        Ok(match legacy::decode_topic_record(payload)? {
            legacy::LegacyTopicRecord::Upsert(m) => {
                let c = m.config;
                let config = TopicConfig {
                    num_partitions: c.num_partitions,
                    replication_factor: c.replication_factor,
                    fsync: c.fsync.map(|f| match f {
                        legacy::LegacyFsyncPolicy::Always => FsyncPolicy::Always,
                        legacy::LegacyFsyncPolicy::Interval(ms) => FsyncPolicy::Interval(ms),
                        legacy::LegacyFsyncPolicy::Never => FsyncPolicy::Never,
                    }),
                    segment_bytes: c.segment_bytes,
                    segment_ms: c.segment_ms,
                    retention_ms: if c.retention_ms < -1 {
                        -1
                    } else {
                        c.retention_ms
                    },
                    retention_bytes: c.retention_bytes,
                    max_message_bytes: c.max_message_bytes,
                    ..TopicConfig::default()
                }
                .with_implied_overrides(&TopicConfig::default());
                TopicRecord::Upsert(TopicMeta {
                    name: m.name,
                    id: m.id,
                    config,
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

    /// Valid (name, value) overrides, and an unknown name that must survive.
    fn overrides() -> impl Strategy<Value = BTreeMap<String, String>> {
        let one = prop_oneof![
            (14u32..=i32::MAX as u32).prop_map(|v| ("segment.bytes", v.to_string())),
            (-1i64..i64::MAX).prop_map(|v| ("retention.ms", v.to_string())),
            any::<i64>().prop_map(|v| ("retention.bytes", v.to_string())),
            (1u32..=1 << 20).prop_map(|v| ("max.message.bytes", v.to_string())),
            Just(("cleanup.policy", "compact".to_string())),
            Just(("compression.type", "zstd".to_string())),
            (-131072i32..=22).prop_map(|v| ("compression.zstd.level", v.to_string())),
            Just(("message.timestamp.type", "LogAppendTime".to_string())),
            Just(("thorstream.fsync", "never".to_string())),
            (1u64..1 << 40).prop_map(|v| ("thorstream.fsync", format!("{v}ms"))),
            Just(("preallocate", "true".to_string())),
            Just(("some.future.config", "x".to_string())),
        ];
        proptest::collection::vec(one, 0..6)
            .prop_map(|v| v.into_iter().map(|(k, v)| (k.to_string(), v)).collect())
    }

    fn meta(
        name: String,
        id: [u8; 16],
        partitions: u32,
        o: &BTreeMap<String, String>,
    ) -> TopicMeta {
        let config = TopicConfig::resolve(&TopicConfig::default(), partitions, 1, o)
            .unwrap_or_else(|e| panic!("{e}"));
        TopicMeta { name, id, config }
    }

    proptest! {
        #[test]
        fn topic_records_round_trip(name in "[a-zA-Z0-9._-]{1,40}", id in any::<[u8; 16]>(), partitions in 1u32..100, o in overrides(), kind in 0u8..3) {
            let r = match kind {
                0 => TopicRecord::Delete { name },
                1 => TopicRecord::BrokerConfigs { scope: name, configs: o },
                _ => TopicRecord::Upsert(meta(name, id, partitions, &o)),
            };
            let payload = r.encode().map_err(TestCaseError::fail)?;
            prop_assert_eq!(payload[0], TOPIC_RECORD_V2);
            prop_assert_eq!(TopicRecord::decode(&payload).map_err(TestCaseError::fail)?, r);
        }

        #[test]
        fn legacy_topic_records_decode_to_the_same_record(name in "[a-zA-Z0-9._-]{1,40}", id in any::<[u8; 16]>(), segment_bytes in 14u64..1 << 31, retention_ms in -1i64..1 << 40) {
            let config = TopicConfig { segment_bytes, retention_ms, ..TopicConfig::default() }
                .with_implied_overrides(&TopicConfig::default());
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

    fn v1_payload(configs: &[(&str, &str)]) -> Vec<u8> {
        let r = TopicRecordV1::Upsert {
            name: "orders".into(),
            id: [7; 16],
            partitions: 3,
            replication_factor: 1,
            configs: configs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        };
        encode_versioned(TOPIC_RECORD_V1, &r).unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn version_1_values_at_kafkas_default_are_inherited_the_others_set() {
        let payload = v1_payload(&[
            ("segment.bytes", "1073741824"),
            ("retention.ms", "-5"),
            ("max.message.bytes", "1048588"),
            ("thorstream.fsync", "always"),
            ("cleanup.policy", "compact"),
        ]);
        let Ok(TopicRecord::Upsert(m)) = TopicRecord::decode(&payload) else {
            panic!("not decoded");
        };
        let set: Vec<&str> = m.config.overrides.keys().map(String::as_str).collect();
        assert_eq!(
            set,
            vec!["cleanup.policy", "retention.ms", "thorstream.fsync"]
        );
        assert_eq!(m.config.retention_ms, -1);
        assert!(m.config.cleanup_compact);
        assert_eq!(m.config.fsync, Some(FsyncPolicy::Always));
        assert_eq!(m.config.num_partitions, 3);
    }

    #[test]
    fn unknown_config_names_are_kept_and_missing_ones_default() {
        let mut m = BTreeMap::new();
        m.insert("some.future.config".to_string(), "x".to_string());
        m.insert("retention.ms".to_string(), "-1".to_string());
        let c = config_from_map("t", 3, 1, &m).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!((c.num_partitions, c.retention_ms), (3, -1));
        assert_eq!(c.segment_bytes, TopicConfig::default().segment_bytes);
        assert_eq!(config_to_map(&c), m, "the unknown name is written back");
    }

    #[test]
    fn a_bad_config_value_is_an_error_naming_the_topic() {
        for (name, value) in [
            ("segment.bytes", "-5"),
            ("max.message.bytes", "big"),
            (FSYNC, "sometimes"),
            ("segment.ms", ""),
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
        payload[0] = 3;
        let e = TopicRecord::decode(&payload).err();
        assert!(e.is_some_and(|e| e.contains("version 3")));
    }
}
