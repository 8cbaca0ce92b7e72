//! The log cleaner's broker settings (Kafka's `CleanerConfig`): names, types, defaults and
//! checks, what is in force given the static config and the dynamic broker configs, and how
//! DescribeConfigs reports them on the BROKER resource.
//!
//! As Kafka (`LogCleaner.ReconfigurableConfigs`): `log.cleaner.backoff.ms`,
//! `log.cleaner.dedupe.buffer.size` and `log.cleaner.io.max.bytes.per.second` are dynamic
//! (cluster default or this node; the node wins), read again by the cleaner before each pass;
//! `log.cleaner.enable` is static (read-only, refused by AlterConfigs).
//!
//! Invariants: every value in force passed `check`; `dedupe.buffer.size` takes effect within
//! `[0, CLEANER_DEDUPE_BUFFER_BYTES_MAX]` (Kafka caps it at `Int.MaxValue` bytes per thread;
//! the map keeps at least two slots), and a rate of `f64::MAX` or more means no throttle.

use super::BrokerConfig;
use super::broker_dynamic::{
    Described, DynamicBrokerConfigs, SOURCE_DEFAULT, SOURCE_DYNAMIC_BROKER,
    SOURCE_DYNAMIC_DEFAULT_BROKER, SOURCE_STATIC_BROKER,
};
use super::table::{self, ConfigDef, Effect, Kind, Valid};
use crate::error::Error;
use crate::limits::CLEANER_DEDUPE_BUFFER_BYTES_MAX;

pub const BACKOFF_MS: &str = "log.cleaner.backoff.ms";
pub const DEDUPE_BUFFER_SIZE: &str = "log.cleaner.dedupe.buffer.size";
pub const ENABLE: &str = "log.cleaner.enable";
pub const IO_MAX_BYTES_PER_SECOND: &str = "log.cleaner.io.max.bytes.per.second";

/// `Double.MAX_VALUE` as Kafka prints it (the default rate: unthrottled).
const DOUBLE_MAX: &str = "1.7976931348623157E308";

const fn def(
    name: &'static str,
    kind: Kind,
    default: &'static str,
    valid: Valid,
    doc: &'static str,
) -> ConfigDef {
    ConfigDef {
        name,
        kind,
        default,
        valid,
        synonyms: &[],
        effect: Effect::Honoured,
        doc,
    }
}

/// The cleaner's broker configs, by name; the bool says whether it is dynamic.
pub const CLEANER_CONFIGS: &[(ConfigDef, bool)] = &[
    (
        def(
            BACKOFF_MS,
            Kind::Long,
            "15000",
            Valid::AtLeast(0),
            "The amount of time to sleep when there are no logs to clean",
        ),
        true,
    ),
    (
        // Kafka's default is 128 MiB for all its threads; one thread here, 16 MiB.
        def(
            DEDUPE_BUFFER_SIZE,
            Kind::Long,
            "16777216",
            Valid::Any,
            "The memory of the cleaner's key to offset map (one cleaner thread)",
        ),
        true,
    ),
    (
        def(
            ENABLE,
            Kind::Boolean,
            "true",
            Valid::Any,
            "Enable the log cleaner process to run on the server",
        ),
        false,
    ),
    (
        def(
            IO_MAX_BYTES_PER_SECOND,
            Kind::Double,
            DOUBLE_MAX,
            Valid::Any,
            "The log cleaner will be throttled so that the sum of its read and write i/o will \
             be less than this value on average",
        ),
        true,
    ),
];

/// The cleaner config `name` and whether it is dynamic.
pub fn lookup(name: &str) -> Option<(&'static ConfigDef, bool)> {
    CLEANER_CONFIGS
        .iter()
        .find(|(d, _)| d.name == name)
        .map(|(d, dynamic)| (d, *dynamic))
}

/// Checks one broker config set dynamically (AlterConfigs on the broker, or read back from
/// the metadata store): the cleaner's own here, any other by `broker_dynamic::check_dynamic`.
pub fn check_broker_config(name: &str, value: &str) -> Result<String, Error> {
    match lookup(name) {
        Some((def, true)) => check(def, value),
        Some((_, false)) => Err(super::broker_dynamic::not_dynamic(name)),
        None => super::broker_dynamic::check_dynamic(name, value),
    }
}

/// Kafka's check of a cleaner config's value; returns its canonical form. A rate must also be
/// positive: Kafka takes 0 or less and its throttler then sleeps for ever.
pub fn check(def: &ConfigDef, value: &str) -> Result<String, Error> {
    let v = table::check(def, def.name, value)?;
    if def.name == IO_MAX_BYTES_PER_SECOND && rate(&v) <= 0.0 {
        return Err(table::invalid(def.name, value, "Value must be positive"));
    }
    Ok(v)
}

fn rate(v: &str) -> f64 {
    v.parse().unwrap_or(f64::MAX)
}

/// The cleaner settings in force.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CleanerSettings {
    pub enable: bool,
    pub backoff_ms: u64,
    /// Map memory, within `[0, CLEANER_DEDUPE_BUFFER_BYTES_MAX]`.
    pub dedupe_buffer_bytes: usize,
    /// `None`: unthrottled.
    pub io_max_bytes_per_sec: Option<f64>,
}

/// The static value of each cleaner config (the broker's flags / config file), canonical.
fn static_value(config: &BrokerConfig, name: &str) -> String {
    match name {
        BACKOFF_MS => config.log_cleaner_backoff_ms.to_string(),
        DEDUPE_BUFFER_SIZE => config.log_cleaner_dedupe_buffer_bytes.to_string(),
        ENABLE => config.log_cleaner_enable.to_string(),
        _ if config.log_cleaner_io_max_bytes_per_second >= f64::MAX => DOUBLE_MAX.to_string(),
        _ => config.log_cleaner_io_max_bytes_per_second.to_string(),
    }
}

/// The chain DescribeConfigs reports for `def` (name, value, source), highest priority first:
/// this node's dynamic value, the cluster default, the static value if not the default, the
/// default. Only dynamic configs have dynamic values.
fn chain(
    def: &ConfigDef,
    dynamic_ok: bool,
    config: &BrokerConfig,
    dynamic: &DynamicBrokerConfigs,
) -> Vec<(String, String, i8)> {
    let mut out = Vec::new();
    if dynamic_ok {
        if let Some(v) = dynamic.node.get(def.name) {
            out.push((def.name.to_string(), v.clone(), SOURCE_DYNAMIC_BROKER));
        }
        if let Some(v) = dynamic.cluster.get(def.name) {
            out.push((
                def.name.to_string(),
                v.clone(),
                SOURCE_DYNAMIC_DEFAULT_BROKER,
            ));
        }
    }
    let s = static_value(config, def.name);
    if s != def.default {
        out.push((def.name.to_string(), s, SOURCE_STATIC_BROKER));
    }
    out.push((
        def.name.to_string(),
        def.default.to_string(),
        SOURCE_DEFAULT,
    ));
    out
}

/// What is in force now: for each config the first of its chain.
pub fn effective(config: &BrokerConfig, dynamic: &DynamicBrokerConfigs) -> CleanerSettings {
    let value = |name: &str| {
        lookup(name)
            .map(|(def, d)| chain(def, d, config, dynamic).remove(0).1)
            .unwrap_or_default()
    };
    let dedupe = value(DEDUPE_BUFFER_SIZE)
        .parse::<i64>()
        .unwrap_or(0)
        .clamp(0, CLEANER_DEDUPE_BUFFER_BYTES_MAX as i64);
    let rate = rate(&value(IO_MAX_BYTES_PER_SECOND));
    CleanerSettings {
        enable: value(ENABLE) == "true",
        backoff_ms: value(BACKOFF_MS)
            .parse::<u64>()
            .unwrap_or(config.log_cleaner_backoff_ms),
        dedupe_buffer_bytes: dedupe as usize,
        io_max_bytes_per_sec: (rate < f64::MAX).then_some(rate),
    }
}

/// The cleaner configs as DescribeConfigs reports them on the BROKER resource: for the node
/// (`node` true) all four with their chains, for the cluster default only those set there.
pub fn describe(
    node: bool,
    config: &BrokerConfig,
    dynamic: &DynamicBrokerConfigs,
) -> Vec<Described> {
    CLEANER_CONFIGS
        .iter()
        .filter_map(|(def, dynamic_ok)| {
            let chain: Vec<_> = chain(def, *dynamic_ok, config, dynamic)
                .into_iter()
                .filter(|s| node || s.2 == SOURCE_DYNAMIC_DEFAULT_BROKER)
                .collect();
            let (_, value, source) = chain.first().cloned()?;
            Some(Described {
                name: def.name.to_string(),
                value: Some(value),
                source,
                read_only: !dynamic_ok,
                config_type: def.kind as i8,
                doc: def.doc,
                synonyms: chain,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_pass_their_checks_and_leave_the_cleaner_unthrottled() {
        for (def, _) in CLEANER_CONFIGS {
            assert_eq!(
                check(def, def.default).ok().as_deref(),
                Some(def.default),
                "{}",
                def.name
            );
        }
        let s = effective(&BrokerConfig::default(), &DynamicBrokerConfigs::default());
        assert_eq!(
            s,
            CleanerSettings {
                enable: true,
                backoff_ms: 15_000,
                dedupe_buffer_bytes: 16 * 1024 * 1024,
                io_max_bytes_per_sec: None,
            }
        );
    }

    #[test]
    fn kafkas_checks_and_messages() {
        let (rate, _) = lookup(IO_MAX_BYTES_PER_SECOND).unwrap_or_else(|| panic!("rate"));
        assert_eq!(check(rate, "1e6").ok().as_deref(), Some("1e6"));
        for bad in ["0", "-1"] {
            assert!(matches!(
                check(rate, bad),
                Err(Error::InvalidConfig(m)) if m == format!("Invalid value {bad} for configuration log.cleaner.io.max.bytes.per.second: Value must be positive")
            ));
        }
        let (backoff, _) = lookup(BACKOFF_MS).unwrap_or_else(|| panic!("backoff"));
        assert!(matches!(
            check(backoff, "-1"),
            Err(Error::InvalidConfig(m)) if m == "Invalid value -1 for configuration log.cleaner.backoff.ms: Value must be at least 0"
        ));
        let (dedupe, _) = lookup(DEDUPE_BUFFER_SIZE).unwrap_or_else(|| panic!("dedupe"));
        assert!(matches!(
            check(dedupe, "x"),
            Err(Error::InvalidConfig(m)) if m.ends_with("Not a number of type LONG")
        ));
        assert_eq!(lookup(ENABLE).map(|(_, d)| d), Some(false));
    }

    #[test]
    fn the_node_wins_then_the_cluster_then_static_and_the_map_is_bounded() {
        let config = BrokerConfig {
            log_cleaner_backoff_ms: 500,
            ..BrokerConfig::default()
        };
        let mut d = DynamicBrokerConfigs::default();
        d.cluster.insert(BACKOFF_MS.into(), "100".into());
        d.cluster
            .insert(IO_MAX_BYTES_PER_SECOND.into(), "1000.5".into());
        d.node.insert(BACKOFF_MS.into(), "200".into());
        d.node
            .insert(DEDUPE_BUFFER_SIZE.into(), i64::MAX.to_string());
        let s = effective(&config, &d);
        assert_eq!(s.backoff_ms, 200);
        assert_eq!(s.io_max_bytes_per_sec, Some(1000.5));
        assert_eq!(s.dedupe_buffer_bytes, CLEANER_DEDUPE_BUFFER_BYTES_MAX);
        d.node.clear();
        assert_eq!(effective(&config, &d).backoff_ms, 100);
        d.cluster.clear();
        assert_eq!(effective(&config, &d).backoff_ms, 500);

        let all = describe(true, &config, &d);
        let backoff = all
            .iter()
            .find(|x| x.name == BACKOFF_MS)
            .unwrap_or_else(|| panic!("backoff"));
        assert_eq!(
            (backoff.value.as_deref(), backoff.source, backoff.read_only),
            (Some("500"), SOURCE_STATIC_BROKER, false)
        );
        assert_eq!(backoff.synonyms.len(), 2);
        let enable = all
            .iter()
            .find(|x| x.name == ENABLE)
            .unwrap_or_else(|| panic!("enable"));
        assert_eq!((enable.source, enable.read_only), (SOURCE_DEFAULT, true));
        assert!(describe(false, &config, &d).is_empty());
    }
}
