//! The one table of topic configs: every name Kafka 4.x accepts on a topic, with its type, its
//! default, its valid values, its broker synonyms (Kafka's `ServerTopicConfigSynonyms`, in
//! priority order) and what Thorstream does with it.
//!
//! Invariants:
//! - a name is accepted on a topic iff it is in `TOPIC_CONFIGS`; any other one is refused with
//!   Kafka's message (`Unknown topic config name: x`);
//! - `check` is the one validation of a value; its messages are Kafka's `ConfigException`
//!   ones (`Invalid value v for configuration n: why`), and it returns the value in the
//!   canonical form that is stored and reported (trimmed; lists without blanks);
//! - every default parses and passes its own check (unit test);
//! - `Effect::Reported` configs are stored and described but change nothing: the README's
//!   configuration table lists them with the reason.

use crate::error::Error;

/// Kafka's `ConfigDef.Type`, with the code DescribeConfigs v3+ reports (`config_type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Boolean = 1,
    String = 2,
    Int = 3,
    Long = 5,
    Double = 6,
    List = 7,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Boolean => "BOOLEAN",
            Kind::String => "STRING",
            Kind::Int => "INT",
            Kind::Long => "LONG",
            Kind::Double => "DOUBLE",
            Kind::List => "LIST",
        }
    }
}

/// Valid values beyond the type (Kafka's validators).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Valid {
    Any,
    AtLeast(i64),
    Between(i64, i64),
    /// A double in [0, 1].
    Ratio,
    OneOf(&'static [&'static str]),
    /// A list whose every element is one of these.
    ListOf(&'static [&'static str]),
    /// 1..=9 or -1 (gzip's levels).
    GzipLevel,
    /// `always`, `never` or `<N>ms` (Thorstream's fsync policy).
    Fsync,
    /// `true` refused with Kafka's message for a broker without tiered storage.
    RemoteStorage,
}

/// How a broker config maps to the topic value (Kafka's `ConfigSynonym` converters).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unit {
    Same,
    HoursToMs,
    MinutesToMs,
}

/// What Thorstream does with a config.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Effect {
    /// Applied to the partitions (see the field of the same name in `TopicConfig`).
    Honoured,
    /// Stored and reported, changes nothing; the reason is in the README.
    Reported,
}

/// One topic config.
#[derive(Debug, Clone, Copy)]
pub struct ConfigDef {
    pub name: &'static str,
    pub kind: Kind,
    /// Kafka's default, as DescribeConfigs reports it with source DEFAULT_CONFIG.
    pub default: &'static str,
    pub valid: Valid,
    /// Broker configs that supply the topic's default, highest priority first. The first one
    /// is the one that can be changed dynamically (as Kafka).
    pub synonyms: &'static [(&'static str, Unit)],
    pub effect: Effect,
    pub doc: &'static str,
}

const CLEANUP: &[&str] = &["compact", "delete"];
const COMPRESSION: &[&str] = &["uncompressed", "zstd", "lz4", "snappy", "gzip", "producer"];
const TIMESTAMP_TYPES: &[&str] = &["CreateTime", "LogAppendTime"];
/// `i64::MAX` as Kafka prints `Long.MAX_VALUE`.
const LONG_MAX: &str = "9223372036854775807";

use Effect::{Honoured, Reported};
use Kind::{Boolean, Double, Int, List, Long};
use Unit::{HoursToMs, MinutesToMs, Same};

macro_rules! def {
    ($name:literal, $kind:expr, $default:expr, $valid:expr, [$(($syn:literal, $unit:expr)),*], $effect:expr, $doc:literal) => {
        ConfigDef {
            name: $name,
            kind: $kind,
            default: $default,
            valid: $valid,
            synonyms: &[$(($syn, $unit)),*],
            effect: $effect,
            doc: $doc,
        }
    };
}

/// Every topic config, sorted by name (DescribeConfigs lists them in this order).
#[rustfmt::skip]
pub const TOPIC_CONFIGS: &[ConfigDef] = &[
    def!("cleanup.policy", List, "delete", Valid::ListOf(CLEANUP), [("log.cleanup.policy", Same)], Honoured,
         "delete: old segments are deleted by retention; compact: the latest record per key is kept."),
    def!("compression.gzip.level", Int, "-1", Valid::GzipLevel, [("compression.gzip.level", Same)], Honoured,
         "Level used when the broker compresses with gzip."),
    def!("compression.lz4.level", Int, "9", Valid::Between(1, 17), [("compression.lz4.level", Same)], Honoured,
         "Level used when the broker compresses with lz4."),
    def!("compression.type", Kind::String, "producer", Valid::OneOf(COMPRESSION), [("compression.type", Same)], Honoured,
         "Codec batches are stored with; producer keeps the producer's codec, others recompress on produce."),
    def!("compression.zstd.level", Int, "3", Valid::Between(-131072, 22), [("compression.zstd.level", Same)], Honoured,
         "Level used when the broker compresses with zstd."),
    def!("delete.retention.ms", Long, "86400000", Valid::AtLeast(0), [("log.cleaner.delete.retention.ms", Same)], Honoured,
         "How long tombstones are kept after their segment was compacted."),
    def!("file.delete.delay.ms", Long, "60000", Valid::AtLeast(0), [("log.segment.delete.delay.ms", Same)], Reported,
         "Kafka's delay before deleting a file; segments are deleted at once here."),
    def!("flush.messages", Long, LONG_MAX, Valid::AtLeast(1), [("log.flush.interval.messages", Same)], Reported,
         "Kafka's fsync every N messages; durability here is thorstream.fsync."),
    def!("flush.ms", Long, LONG_MAX, Valid::AtLeast(0), [("log.flush.interval.ms", Same), ("log.flush.scheduler.interval.ms", Same)], Reported,
         "Kafka's fsync interval; durability here is thorstream.fsync."),
    def!("follower.replication.throttled.replicas", List, "", Valid::Any, [], Reported,
         "Replication throttling; one node has no followers."),
    def!("index.interval.bytes", Int, "4096", Valid::AtLeast(0), [("log.index.interval.bytes", Same)], Honoured,
         "Bytes of batches between two offset-index entries."),
    def!("leader.replication.throttled.replicas", List, "", Valid::Any, [], Reported,
         "Replication throttling; one node has no followers."),
    def!("local.retention.bytes", Long, "-2", Valid::AtLeast(-2), [("log.local.retention.bytes", Same)], Reported,
         "Tiered storage only (not supported)."),
    def!("local.retention.ms", Long, "-2", Valid::AtLeast(-2), [("log.local.retention.ms", Same)], Reported,
         "Tiered storage only (not supported)."),
    def!("max.compaction.lag.ms", Long, LONG_MAX, Valid::AtLeast(1), [("log.cleaner.max.compaction.lag.ms", Same)], Honoured,
         "A record older than this is compacted even below the dirty ratio."),
    def!("max.message.bytes", Int, "1048588", Valid::AtLeast(0), [("message.max.bytes", Same)], Honoured,
         "Largest record batch accepted (after the broker's recompression)."),
    def!("message.downconversion.enable", Boolean, "true", Valid::Any, [("log.message.downconversion.enable", Same)], Reported,
         "Deprecated; only record batch v2 is served."),
    def!("message.format.version", Kind::String, "3.0-IV1", Valid::Any, [("log.message.format.version", Same)], Reported,
         "Deprecated; only record batch v2 is stored."),
    def!("message.timestamp.after.max.ms", Long, "3600000", Valid::AtLeast(0), [("log.message.timestamp.after.max.ms", Same)], Honoured,
         "A CreateTime timestamp further than this in the future is refused."),
    def!("message.timestamp.before.max.ms", Long, LONG_MAX, Valid::AtLeast(0), [("log.message.timestamp.before.max.ms", Same)], Honoured,
         "A CreateTime timestamp further than this in the past is refused."),
    def!("message.timestamp.difference.max.ms", Long, LONG_MAX, Valid::AtLeast(0), [("log.message.timestamp.difference.max.ms", Same)], Honoured,
         "Deprecated: the before and after bounds, where they are not set."),
    def!("message.timestamp.type", Kind::String, "CreateTime", Valid::OneOf(TIMESTAMP_TYPES), [("log.message.timestamp.type", Same)], Honoured,
         "CreateTime keeps the producer's timestamps; LogAppendTime stamps batches with the broker's clock."),
    def!("min.cleanable.dirty.ratio", Double, "0.5", Valid::Ratio, [("log.cleaner.min.cleanable.ratio", Same)], Honoured,
         "Compact when the dirty part is at least this share of the log."),
    def!("min.compaction.lag.ms", Long, "0", Valid::AtLeast(0), [("log.cleaner.min.compaction.lag.ms", Same)], Honoured,
         "A record younger than this is never compacted."),
    def!("min.insync.replicas", Int, "1", Valid::AtLeast(1), [("min.insync.replicas", Same)], Reported,
         "Kafka (3.7+) caps it at the replica count, one here: acks=all is never refused for it."),
    def!("preallocate", Boolean, "false", Valid::Any, [("log.preallocate", Same)], Reported,
         "Segment files are not preallocated here."),
    def!("remote.log.copy.disable", Boolean, "false", Valid::Any, [], Reported,
         "Tiered storage only (not supported)."),
    def!("remote.log.delete.on.disable", Boolean, "false", Valid::Any, [], Reported,
         "Tiered storage only (not supported)."),
    def!("remote.storage.enable", Boolean, "false", Valid::RemoteStorage, [], Reported,
         "Tiered storage is not supported: only false is accepted."),
    def!("retention.bytes", Long, "-1", Valid::Any, [("log.retention.bytes", Same)], Honoured,
         "Delete old segments while the partition is larger than this (-1: no limit)."),
    def!("retention.ms", Long, "604800000", Valid::AtLeast(-1), [("log.retention.ms", Same), ("log.retention.minutes", MinutesToMs), ("log.retention.hours", HoursToMs)], Honoured,
         "Delete segments whose newest record is older than this (-1: keep forever)."),
    def!("segment.bytes", Int, "1073741824", Valid::AtLeast(14), [("log.segment.bytes", Same)], Honoured,
         "Roll to a new segment file at this size."),
    def!("segment.index.bytes", Int, "10485760", Valid::AtLeast(4), [("log.index.size.max.bytes", Same)], Reported,
         "Indexes grow with their segment here; nothing is preallocated."),
    def!("segment.jitter.ms", Long, "0", Valid::AtLeast(0), [("log.roll.jitter.ms", Same), ("log.roll.jitter.hours", HoursToMs)], Honoured,
         "Each segment rolls up to this much (random, chosen at its creation) before segment.ms."),
    def!("segment.ms", Long, "604800000", Valid::AtLeast(1), [("log.roll.ms", Same), ("log.roll.hours", HoursToMs)], Honoured,
         "Roll to a new segment when the active one is this old."),
    def!("thorstream.fsync", Kind::String, "always", Valid::Fsync, [("thorstream.fsync", Same)], Honoured,
         "Thorstream's fsync policy: always, never or <N>ms (default: the broker's)."),
    def!("unclean.leader.election.enable", Boolean, "false", Valid::Any, [("unclean.leader.election.enable", Same)], Reported,
         "One node: there is no other replica to elect."),
];

/// The table entry of topic config `name`.
pub fn lookup(name: &str) -> Option<&'static ConfigDef> {
    TOPIC_CONFIGS.iter().find(|d| d.name == name)
}

/// `lookup`, or Kafka's error for a name it does not know.
pub fn lookup_or_refuse(name: &str) -> Result<&'static ConfigDef, Error> {
    lookup(name).ok_or_else(|| Error::InvalidConfig(format!("Unknown topic config name: {name}")))
}

/// Kafka's `ConfigException(name, value, why)` message.
pub fn invalid(name: &str, value: &str, why: impl std::fmt::Display) -> Error {
    Error::InvalidConfig(format!(
        "Invalid value {value} for configuration {name}: {why}"
    ))
}

/// Parses `value` as `def`'s type under the name `name` (a topic config or one of its broker
/// synonyms) and checks its valid values. Returns the canonical form.
pub fn check(def: &ConfigDef, name: &str, value: &str) -> Result<String, Error> {
    let v = value.trim();
    let not_a = || {
        invalid(
            name,
            value,
            format!("Not a number of type {}", def.kind.name()),
        )
    };
    let canonical = match def.kind {
        Kind::Boolean => match v.to_ascii_lowercase().as_str() {
            "true" => "true".to_string(),
            "false" => "false".to_string(),
            _ => {
                return Err(invalid(
                    name,
                    value,
                    "Expected value to be either true or false",
                ));
            }
        },
        Kind::Int => v.parse::<i32>().map_err(|_| not_a())?.to_string(),
        Kind::Long => v.parse::<i64>().map_err(|_| not_a())?.to_string(),
        Kind::Double => {
            let d = v.parse::<f64>().map_err(|_| not_a())?;
            if !d.is_finite() {
                return Err(not_a());
            }
            v.to_string()
        }
        Kind::String => v.to_string(),
        Kind::List => v
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .collect::<Vec<_>>()
            .join(","),
    };
    let number = || canonical.parse::<i64>().unwrap_or(0);
    match def.valid {
        Valid::Any => {}
        Valid::AtLeast(min) if number() < min => {
            return Err(invalid(
                name,
                value,
                format!("Value must be at least {min}"),
            ));
        }
        Valid::Between(min, _) if number() < min => {
            return Err(invalid(
                name,
                value,
                format!("Value must be at least {min}"),
            ));
        }
        Valid::Between(_, max) if number() > max => {
            return Err(invalid(
                name,
                value,
                format!("Value must be no more than {max}"),
            ));
        }
        Valid::AtLeast(_) | Valid::Between(..) => {}
        Valid::Ratio => {
            let d = canonical.parse::<f64>().unwrap_or(-1.0);
            if d < 0.0 {
                return Err(invalid(name, value, "Value must be at least 0"));
            }
            if d > 1.0 {
                return Err(invalid(name, value, "Value must be no more than 1"));
            }
        }
        Valid::OneOf(options) if !options.contains(&canonical.as_str()) => {
            return Err(invalid(
                name,
                value,
                format!("String must be one of: {}", options.join(", ")),
            ));
        }
        Valid::OneOf(_) => {}
        Valid::ListOf(options) => {
            // Kafka lower-cases cleanup.policy entries before using them, but validates as sent.
            if let Some(bad) = canonical.split(',').find(|s| !options.contains(s)) {
                return Err(invalid(
                    name,
                    bad,
                    format!("String must be one of: {}", options.join(", ")),
                ));
            }
        }
        Valid::GzipLevel => {
            let n = number();
            if n > 9 || (n < 1 && n != -1) {
                return Err(invalid(
                    name,
                    value,
                    "Value must be between 1 and 9 or equal to -1",
                ));
            }
        }
        Valid::Fsync => {
            canonical
                .parse::<super::FsyncPolicy>()
                .map_err(|_| invalid(name, value, "Expected always, never or <N>ms"))?;
        }
        Valid::RemoteStorage if canonical == "true" => {
            return Err(Error::InvalidConfig(
                "Tiered Storage functionality is disabled in the broker. Topic cannot be \
                 configured with remote log storage."
                    .into(),
            ));
        }
        Valid::RemoteStorage => {}
    }
    Ok(canonical)
}

/// The broker config `name` that is a synonym of a topic config: the topic config and the
/// synonym's unit. `thorstream.fsync` is not one: the broker's fsync policy is static.
pub fn topic_config_of_broker_name(name: &str) -> Option<(&'static ConfigDef, Unit, bool)> {
    TOPIC_CONFIGS
        .iter()
        .filter(|d| d.name != "thorstream.fsync")
        .find_map(|d| {
            d.synonyms
                .iter()
                .position(|(s, _)| *s == name)
                .map(|i| (d, d.synonyms[i].1, i == 0))
        })
}

/// Converts a broker synonym's value to the topic config's unit (e.g. hours to ms).
pub fn to_topic_unit(unit: Unit, value: &str) -> String {
    let factor = match unit {
        Unit::Same => return value.to_string(),
        Unit::HoursToMs => 3_600_000i64,
        Unit::MinutesToMs => 60_000,
    };
    value
        .trim()
        .parse::<i64>()
        .map(|n| n.saturating_mul(factor).to_string())
        .unwrap_or_else(|_| value.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(name: &str, value: &str) -> String {
        match lookup(name).map(|d| check(d, name, value)) {
            Some(Err(Error::InvalidConfig(m))) => m,
            other => panic!("{name}={value}: {other:?}"),
        }
    }

    fn ok(name: &str, value: &str) -> String {
        match lookup(name).map(|d| check(d, name, value)) {
            Some(Ok(v)) => v,
            other => panic!("{name}={value}: {other:?}"),
        }
    }

    #[test]
    fn names_are_sorted_and_unique() {
        for w in TOPIC_CONFIGS.windows(2) {
            assert!(w[0].name < w[1].name, "{} / {}", w[0].name, w[1].name);
        }
    }

    #[test]
    fn every_default_passes_its_own_check() {
        for d in TOPIC_CONFIGS {
            let v = check(d, d.name, d.default).unwrap_or_else(|e| panic!("{}: {e}", d.name));
            assert_eq!(v, d.default, "{} is not canonical", d.name);
        }
    }

    #[test]
    fn every_config_refuses_a_value_of_the_wrong_type_with_kafkas_message() {
        for d in TOPIC_CONFIGS {
            let bad = match (d.kind, d.valid) {
                (Kind::Boolean, _) => "maybe",
                (Kind::Int | Kind::Long | Kind::Double, _) => "x1",
                (Kind::String, Valid::OneOf(_) | Valid::Fsync) => "bogus",
                (Kind::List, Valid::ListOf(_)) => "bogus",
                // Free-form strings and lists (message.format.version, throttled replicas).
                (Kind::String | Kind::List, _) => continue,
            };
            match check(d, d.name, bad) {
                Err(Error::InvalidConfig(m)) => assert!(
                    m.starts_with(&format!(
                        "Invalid value {bad} for configuration {}: ",
                        d.name
                    )),
                    "{m}"
                ),
                other => panic!("{}={bad}: {other:?}", d.name),
            }
        }
    }

    #[test]
    fn unknown_names_get_kafkas_message() {
        match lookup_or_refuse("retention.mss") {
            Err(Error::InvalidConfig(m)) => {
                assert_eq!(m, "Unknown topic config name: retention.mss")
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn numbers_are_checked_by_type_and_range_with_kafkas_messages() {
        assert_eq!(
            err("retention.ms", "soon"),
            "Invalid value soon for configuration retention.ms: Not a number of type LONG"
        );
        assert_eq!(
            err("retention.ms", "-2"),
            "Invalid value -2 for configuration retention.ms: Value must be at least -1"
        );
        assert_eq!(ok("retention.ms", " -1 "), "-1");
        assert_eq!(
            err("segment.bytes", "3000000000"),
            "Invalid value 3000000000 for configuration segment.bytes: Not a number of type INT"
        );
        assert_eq!(
            err("segment.bytes", "13"),
            "Invalid value 13 for configuration segment.bytes: Value must be at least 14"
        );
        assert_eq!(ok("retention.bytes", "-5"), "-5");
        assert_eq!(
            err("segment.ms", "0"),
            "Invalid value 0 for configuration segment.ms: Value must be at least 1"
        );
        assert_eq!(
            err("min.insync.replicas", "0"),
            "Invalid value 0 for configuration min.insync.replicas: Value must be at least 1"
        );
        assert_eq!(
            err("max.compaction.lag.ms", "0"),
            "Invalid value 0 for configuration max.compaction.lag.ms: Value must be at least 1"
        );
        for (name, low) in [
            ("delete.retention.ms", "-1"),
            ("min.compaction.lag.ms", "-1"),
            ("file.delete.delay.ms", "-1"),
            ("flush.ms", "-1"),
            ("flush.messages", "0"),
            ("index.interval.bytes", "-1"),
            ("segment.index.bytes", "3"),
            ("segment.jitter.ms", "-1"),
            ("max.message.bytes", "-1"),
            ("message.timestamp.before.max.ms", "-1"),
            ("message.timestamp.after.max.ms", "-1"),
            ("message.timestamp.difference.max.ms", "-1"),
            ("local.retention.ms", "-3"),
            ("local.retention.bytes", "-3"),
        ] {
            assert!(err(name, low).contains("Value must be at least"), "{name}");
            assert!(err(name, "x").contains("Not a number of type"), "{name}");
        }
    }

    #[test]
    fn levels_follow_each_codec() {
        assert_eq!(ok("compression.gzip.level", "-1"), "-1");
        assert_eq!(ok("compression.gzip.level", "9"), "9");
        assert_eq!(
            err("compression.gzip.level", "0"),
            "Invalid value 0 for configuration compression.gzip.level: Value must be between 1 \
             and 9 or equal to -1"
        );
        assert!(err("compression.lz4.level", "18").contains("Value must be no more than 17"));
        assert!(err("compression.lz4.level", "0").contains("Value must be at least 1"));
        assert_eq!(ok("compression.zstd.level", "-131072"), "-131072");
        assert!(err("compression.zstd.level", "23").contains("no more than 22"));
    }

    #[test]
    fn strings_lists_booleans_and_ratios() {
        assert_eq!(ok("cleanup.policy", "compact, delete"), "compact,delete");
        assert_eq!(ok("cleanup.policy", "compact"), "compact");
        assert_eq!(
            err("cleanup.policy", "compact,forever"),
            "Invalid value forever for configuration cleanup.policy: String must be one of: \
             compact, delete"
        );
        assert_eq!(ok("compression.type", "zstd"), "zstd");
        assert_eq!(
            err("compression.type", "brotli"),
            "Invalid value brotli for configuration compression.type: String must be one of: \
             uncompressed, zstd, lz4, snappy, gzip, producer"
        );
        assert_eq!(
            ok("message.timestamp.type", "LogAppendTime"),
            "LogAppendTime"
        );
        assert!(err("message.timestamp.type", "logappendtime").contains("String must be one of"));
        assert_eq!(ok("preallocate", "TRUE"), "true");
        assert_eq!(
            err("preallocate", "yes"),
            "Invalid value yes for configuration preallocate: Expected value to be either true \
             or false"
        );
        assert_eq!(ok("min.cleanable.dirty.ratio", "0.1"), "0.1");
        assert!(err("min.cleanable.dirty.ratio", "1.5").contains("no more than 1"));
        assert!(err("min.cleanable.dirty.ratio", "-0.1").contains("at least 0"));
        assert!(err("min.cleanable.dirty.ratio", "NaN").contains("Not a number"));
        assert_eq!(ok("thorstream.fsync", "100ms"), "100ms");
        assert!(err("thorstream.fsync", "sometimes").contains("thorstream.fsync"));
        assert_eq!(ok("remote.storage.enable", "false"), "false");
        assert!(err("remote.storage.enable", "true").contains("Tiered Storage"));
        assert_eq!(ok("unclean.leader.election.enable", "true"), "true");
        assert_eq!(ok("leader.replication.throttled.replicas", "*"), "*");
    }

    #[test]
    fn broker_synonyms_map_to_topic_configs_in_their_units() {
        let (d, unit, dynamic) = topic_config_of_broker_name("log.retention.hours")
            .unwrap_or_else(|| panic!("log.retention.hours"));
        assert_eq!((d.name, dynamic), ("retention.ms", false));
        assert_eq!(to_topic_unit(unit, "2"), "7200000");
        let (d, _, dynamic) = topic_config_of_broker_name("message.max.bytes")
            .unwrap_or_else(|| panic!("message.max.bytes"));
        assert_eq!((d.name, dynamic), ("max.message.bytes", true));
        assert!(topic_config_of_broker_name("thorstream.fsync").is_none());
        assert!(topic_config_of_broker_name("retention.ms").is_none());
    }
}
