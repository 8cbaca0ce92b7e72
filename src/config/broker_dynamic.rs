//! The broker's dynamic settings (AlterConfigs on resource type BROKER) and how topics inherit
//! them, with the sources and synonyms DescribeConfigs reports.
//!
//! As Kafka: a broker config can be set for the whole cluster (resource name "") or for one
//! node (its id); the node's value wins, then the cluster default, then the static config
//! (flags, config file), then Kafka's default. The dynamic names are the first broker synonym
//! of each topic config (`log.retention.ms`, `log.segment.bytes`, `message.max.bytes`, …);
//! the other synonyms (`log.retention.hours`) and the broker's own settings are static, but
//! for the cleaner's dynamic settings (`config::cleaner`, which checks them).
//!
//! Invariants: every dynamic value passed the topic config's check under its broker name; a
//! topic's effective config is `TopicConfig::resolve(topic_defaults(..), overrides)`, so a
//! change of a broker default reaches exactly the topics that do not set that config.

use std::collections::BTreeMap;

use super::table::{self, ConfigDef, Unit};
use super::{FsyncPolicy, TopicConfig};
use crate::error::Error;

/// DescribeConfigs' `config_source` codes.
pub const SOURCE_DYNAMIC_TOPIC: i8 = 1;
pub const SOURCE_DYNAMIC_BROKER: i8 = 2;
pub const SOURCE_DYNAMIC_DEFAULT_BROKER: i8 = 3;
pub const SOURCE_STATIC_BROKER: i8 = 4;
pub const SOURCE_DEFAULT: i8 = 5;

/// Broker configs this build knows but cannot change while running (refused by AlterConfigs
/// with Kafka's "Cannot update these configs dynamically").
pub const STATIC_BROKER_CONFIGS: &[&str] = &[
    "auto.create.topics.enable",
    "broker.id",
    "log.dir",
    "log.dirs",
    "node.id",
    "num.partitions",
    "offsets.retention.minutes",
    "producer.id.expiration.ms",
    "socket.request.max.bytes",
    "thorstream.fsync",
];

/// Dynamic broker configs by broker name, canonical values.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct DynamicBrokerConfigs {
    /// Set for every broker (resource name "").
    pub cluster: BTreeMap<String, String>,
    /// Set for this node (resource name = its id).
    pub node: BTreeMap<String, String>,
}

/// Which dynamic map a BROKER resource name addresses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BrokerScope {
    Cluster,
    Node,
}

impl BrokerScope {
    /// The scope of resource `name` on node `node_id`: "" or the node's own id (Kafka's
    /// messages for anything else, INVALID_REQUEST).
    pub fn of_resource(name: &str, node_id: i32) -> Result<BrokerScope, Error> {
        if name.is_empty() {
            return Ok(BrokerScope::Cluster);
        }
        match name.parse::<i32>() {
            Ok(id) if id == node_id => Ok(BrokerScope::Node),
            Ok(id) => Err(Error::InvalidRequest(format!(
                "Unexpected broker id, expected {node_id}, but received {id}"
            ))),
            Err(_) => Err(Error::InvalidRequest(format!(
                "Node id must be an integer, but it is: {name}"
            ))),
        }
    }

    /// The scope as stored in the metadata record.
    pub fn key(self, node_id: i32) -> String {
        match self {
            BrokerScope::Cluster => String::new(),
            BrokerScope::Node => node_id.to_string(),
        }
    }
}

impl DynamicBrokerConfigs {
    pub fn map(&self, scope: BrokerScope) -> &BTreeMap<String, String> {
        match scope {
            BrokerScope::Cluster => &self.cluster,
            BrokerScope::Node => &self.node,
        }
    }

    pub fn map_mut(&mut self, scope: BrokerScope) -> &mut BTreeMap<String, String> {
        match scope {
            BrokerScope::Cluster => &mut self.cluster,
            BrokerScope::Node => &mut self.node,
        }
    }
}

/// Checks one broker config set dynamically (a topic config's synonym) and returns its
/// canonical value; `cleaner::check_broker_config` adds the cleaner's own settings.
pub fn check_dynamic(name: &str, value: &str) -> Result<String, Error> {
    match table::topic_config_of_broker_name(name) {
        Some((def, _, true)) => table::check(def, name, value),
        Some((_, _, false)) => Err(not_dynamic(name)),
        None if STATIC_BROKER_CONFIGS.contains(&name) => Err(not_dynamic(name)),
        None => Err(Error::InvalidConfig(format!(
            "Unknown broker config name: {name}"
        ))),
    }
}

pub(super) fn not_dynamic(name: &str) -> Error {
    Error::InvalidRequest(format!(
        "Cannot update these configs dynamically: Set({name})"
    ))
}

/// The defaults a topic inherits: the static default with the cluster-wide, then the node's
/// dynamic configs applied. Its `overrides` hold those dynamic values by topic name (so a
/// topic that sets only `compression.type` finds the broker's level); `TopicConfig::resolve`
/// never passes them on to a topic.
pub fn topic_defaults(static_default: &TopicConfig, dynamic: &DynamicBrokerConfigs) -> TopicConfig {
    let mut c = static_default.clone();
    for map in [&dynamic.cluster, &dynamic.node] {
        for (name, value) in map {
            if let Some((def, unit, true)) = table::topic_config_of_broker_name(name)
                && let Err(e) = c.set(def.name, &table::to_topic_unit(unit, value))
            {
                log::warn!("dynamic broker config {name}={value}: {e}");
            }
        }
    }
    c
}

/// One reported config: DescribeConfigs' entry with its synonym chain.
#[derive(Debug, Clone, PartialEq)]
pub struct Described {
    pub name: String,
    pub value: Option<String>,
    pub source: i8,
    pub read_only: bool,
    pub config_type: i8,
    pub doc: &'static str,
    /// (name, value, source), highest priority first (Kafka's `include_synonyms`).
    pub synonyms: Vec<(String, String, i8)>,
}

/// What the broker side offers for topic config `def`: its dynamic and static broker
/// synonyms and the default, highest priority first.
fn broker_chain(
    def: &ConfigDef,
    static_default: &TopicConfig,
    dynamic: &DynamicBrokerConfigs,
) -> Vec<(String, String, i8)> {
    let mut chain = Vec::new();
    let Some(&(first, _)) = def.synonyms.first() else {
        return chain;
    };
    if def.name == "thorstream.fsync" {
        return chain;
    }
    if let Some(v) = dynamic.node.get(first) {
        chain.push((first.to_string(), v.clone(), SOURCE_DYNAMIC_BROKER));
    }
    if let Some(v) = dynamic.cluster.get(first) {
        chain.push((first.to_string(), v.clone(), SOURCE_DYNAMIC_DEFAULT_BROKER));
    }
    let static_value = static_default.get(def.name);
    if static_value.as_deref().is_some_and(|v| v != def.default) {
        chain.push((
            first.to_string(),
            static_value.unwrap_or_default(),
            SOURCE_STATIC_BROKER,
        ));
    }
    // Kafka reports the default under the synonym that has one: `log.retention.hours=168`
    // for retention.ms (log.retention.ms has none).
    let default = match def
        .synonyms
        .iter()
        .rev()
        .find(|(_, u)| *u == Unit::HoursToMs)
    {
        Some((hours, _)) => (
            hours.to_string(),
            def.default
                .parse::<i64>()
                .map(|ms| (ms / 3_600_000).to_string())
                .unwrap_or_default(),
        ),
        None => (first.to_string(), def.default.to_string()),
    };
    chain.push((default.0, default.1, SOURCE_DEFAULT));
    chain
}

/// Every config of a topic as DescribeConfigs reports it.
pub fn describe_topic(
    topic: &TopicConfig,
    static_default: &TopicConfig,
    dynamic: &DynamicBrokerConfigs,
    broker_fsync: FsyncPolicy,
) -> Vec<Described> {
    table::TOPIC_CONFIGS
        .iter()
        .map(|def| {
            let mut synonyms = Vec::new();
            if let Some(v) = topic.overrides.get(def.name) {
                synonyms.push((def.name.to_string(), v.clone(), SOURCE_DYNAMIC_TOPIC));
            }
            if def.name == "thorstream.fsync" {
                synonyms.push((
                    def.name.to_string(),
                    broker_fsync.to_string(),
                    SOURCE_STATIC_BROKER,
                ));
            }
            synonyms.extend(broker_chain(def, static_default, dynamic));
            let source = synonyms.first().map_or(SOURCE_DEFAULT, |s| s.2);
            let value = topic
                .get(def.name)
                .unwrap_or_else(|| broker_fsync.to_string());
            Described {
                name: def.name.to_string(),
                value: Some(value),
                source,
                read_only: false,
                config_type: def.kind as i8,
                doc: def.doc,
                synonyms,
            }
        })
        .collect()
}

/// The broker's dynamic configs as DescribeConfigs reports them for resource `scope`: for the
/// node every dynamic name with its effective value, for the cluster default ("") only what
/// is set there (as Kafka). `statics` are the read-only settings (name, value, type) the
/// caller adds for the node.
pub fn describe_broker(
    scope: BrokerScope,
    static_default: &TopicConfig,
    dynamic: &DynamicBrokerConfigs,
    statics: &[(&str, String, i8)],
) -> Vec<Described> {
    let mut out = Vec::new();
    for def in table::TOPIC_CONFIGS {
        let Some(&(first, _)) = def.synonyms.first() else {
            continue;
        };
        if def.name == "thorstream.fsync" {
            continue;
        }
        let chain = broker_chain(def, static_default, dynamic);
        let chain: Vec<_> = match scope {
            BrokerScope::Node => chain,
            BrokerScope::Cluster => chain
                .into_iter()
                .filter(|s| s.2 == SOURCE_DYNAMIC_DEFAULT_BROKER)
                .collect(),
        };
        let Some((_, _, source)) = chain.first().cloned() else {
            continue;
        };
        // The value in the dynamic name's own unit (all first synonyms share the topic's).
        let value = match source {
            SOURCE_DYNAMIC_BROKER | SOURCE_DYNAMIC_DEFAULT_BROKER => chain[0].1.clone(),
            _ => static_default
                .get(def.name)
                .unwrap_or_else(|| def.default.to_string()),
        };
        out.push(Described {
            name: first.to_string(),
            value: Some(value),
            source,
            read_only: false,
            config_type: def.kind as i8,
            doc: def.doc,
            synonyms: chain,
        });
    }
    if scope == BrokerScope::Node {
        for (name, value, kind) in statics {
            out.push(Described {
                name: name.to_string(),
                value: Some(value.clone()),
                source: SOURCE_STATIC_BROKER,
                read_only: true,
                config_type: *kind,
                doc: "",
                synonyms: vec![(name.to_string(), value.clone(), SOURCE_STATIC_BROKER)],
            });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_first_synonyms_are_dynamic() {
        assert_eq!(
            check_dynamic("log.retention.ms", "1000").ok().as_deref(),
            Some("1000")
        );
        assert!(matches!(
            check_dynamic("log.retention.hours", "1"),
            Err(Error::InvalidRequest(m)) if m == "Cannot update these configs dynamically: Set(log.retention.hours)"
        ));
        assert!(matches!(
            check_dynamic("log.dirs", "/x"),
            Err(Error::InvalidRequest(_))
        ));
        assert!(matches!(
            check_dynamic("log.segment.bytes", "1"),
            Err(Error::InvalidConfig(m)) if m == "Invalid value 1 for configuration log.segment.bytes: Value must be at least 14"
        ));
        assert!(matches!(
            check_dynamic("no.such", "1"),
            Err(Error::InvalidConfig(_))
        ));
    }

    #[test]
    fn the_node_wins_over_the_cluster_default_and_topics_inherit_both() {
        let mut d = DynamicBrokerConfigs::default();
        d.cluster.insert("log.retention.ms".into(), "1000".into());
        d.cluster.insert("log.segment.bytes".into(), "4096".into());
        d.node.insert("log.retention.ms".into(), "2000".into());
        let defaults = topic_defaults(&TopicConfig::default(), &d);
        assert_eq!(
            (defaults.retention_ms, defaults.segment_bytes),
            (2000, 4096)
        );
        let topic = TopicConfig::resolve(&defaults, 1, 1, &BTreeMap::new())
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(
            topic.overrides.is_empty(),
            "inherited values are not set on the topic"
        );
        assert_eq!(topic.retention_ms, 2000);
    }

    #[test]
    fn sources_and_synonyms_follow_kafkas_chain() {
        let mut d = DynamicBrokerConfigs::default();
        d.cluster.insert("log.retention.ms".into(), "1000".into());
        let defaults = topic_defaults(&TopicConfig::default(), &d);
        let mut o = BTreeMap::new();
        o.insert("segment.bytes".to_string(), "8192".to_string());
        let topic = TopicConfig::resolve(&defaults, 1, 1, &o).unwrap_or_else(|e| panic!("{e}"));
        let all = describe_topic(&topic, &TopicConfig::default(), &d, FsyncPolicy::Always);
        let get = |n: &str| all.iter().find(|x| x.name == n).cloned();
        let r = get("retention.ms").unwrap_or_else(|| panic!("retention.ms"));
        assert_eq!(
            (r.value.as_deref(), r.source),
            (Some("1000"), SOURCE_DYNAMIC_DEFAULT_BROKER)
        );
        assert_eq!(
            r.synonyms,
            vec![
                (
                    "log.retention.ms".into(),
                    "1000".into(),
                    SOURCE_DYNAMIC_DEFAULT_BROKER
                ),
                ("log.retention.hours".into(), "168".into(), SOURCE_DEFAULT),
            ]
        );
        let s = get("segment.bytes").unwrap_or_else(|| panic!("segment.bytes"));
        assert_eq!(
            (s.value.as_deref(), s.source),
            (Some("8192"), SOURCE_DYNAMIC_TOPIC)
        );
        assert_eq!(
            s.synonyms[1],
            (
                "log.segment.bytes".into(),
                "1073741824".into(),
                SOURCE_DEFAULT
            )
        );
        let c = get("compression.type").unwrap_or_else(|| panic!("compression.type"));
        assert_eq!((c.source, c.config_type), (SOURCE_DEFAULT, 2));
        let b = describe_broker(BrokerScope::Cluster, &TopicConfig::default(), &d, &[]);
        assert_eq!(b.len(), 1);
        assert_eq!(
            (b[0].name.as_str(), b[0].source),
            ("log.retention.ms", SOURCE_DYNAMIC_DEFAULT_BROKER)
        );
    }

    #[test]
    fn a_topic_choosing_a_codec_gets_the_brokers_level_for_it() {
        let mut d = DynamicBrokerConfigs::default();
        d.cluster
            .insert("compression.gzip.level".into(), "5".into());
        let defaults = topic_defaults(&TopicConfig::default(), &d);
        let mut o = BTreeMap::new();
        o.insert("compression.type".to_string(), "gzip".to_string());
        let topic = TopicConfig::resolve(&defaults, 1, 1, &o).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            topic.compression,
            super::super::Compression::Gzip { level: 5 }
        );
    }

    #[test]
    fn broker_resource_names_are_the_node_or_empty() {
        assert_eq!(
            BrokerScope::of_resource("", 1).ok(),
            Some(BrokerScope::Cluster)
        );
        assert_eq!(
            BrokerScope::of_resource("1", 1).ok(),
            Some(BrokerScope::Node)
        );
        assert!(matches!(
            BrokerScope::of_resource("2", 1),
            Err(Error::InvalidRequest(_))
        ));
        assert!(matches!(
            BrokerScope::of_resource("x", 1),
            Err(Error::InvalidRequest(_))
        ));
    }
}
