#![allow(clippy::unwrap_used, clippy::expect_used)]
//! The log cleaner's broker settings over the wire, as Kafka's: `log.cleaner.backoff.ms`,
//! `log.cleaner.dedupe.buffer.size` and `log.cleaner.io.max.bytes.per.second` are set with
//! IncrementalAlterConfigs on the BROKER resource and are in force from the cleaner's next
//! pass, without a restart; DescribeConfigs on the broker lists them with their sources;
//! `log.cleaner.enable` is static (read-only, refused by AlterConfigs).

mod common;

use std::io::Write;
use std::net::TcpStream;
use std::sync::Arc;
use std::time::Duration;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::describe_configs_request::DescribeConfigsResource;
use kafka_protocol::messages::describe_configs_response::DescribeConfigsResourceResult;
use kafka_protocol::messages::incremental_alter_configs_request::{
    AlterConfigsResource, AlterableConfig,
};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use thorstream::{FsyncPolicy, Producer, Record, TopicConfig};

use common::wait_until;
use common::wire::{request, response};

const BROKER: i8 = 4;
const DYNAMIC_DEFAULT_BROKER: i8 = 3;
const STATIC_BROKER: i8 = 4;
const DEFAULT: i8 = 5;

fn s(v: &str) -> StrBytes {
    StrBytes::from_string(v.to_string())
}

/// IncrementalAlterConfigs SET of `configs` on broker resource `name`: (code, message).
fn alter(s_: &mut TcpStream, name: &str, configs: &[(&str, &str)]) -> (i16, Option<String>) {
    let req = IncrementalAlterConfigsRequest::default().with_resources(vec![
        AlterConfigsResource::default()
            .with_resource_type(BROKER)
            .with_resource_name(s(name))
            .with_configs(
                configs
                    .iter()
                    .map(|(k, v)| {
                        AlterableConfig::default()
                            .with_name(s(k))
                            .with_config_operation(0)
                            .with_value(Some(s(v)))
                    })
                    .collect(),
            ),
    ]);
    s_.write_all(&request(ApiKey::IncrementalAlterConfigs, 1, 3, &req))
        .unwrap();
    let (_, resp): (i32, IncrementalAlterConfigsResponse) = response(
        s_,
        ApiKey::IncrementalAlterConfigs.response_header_version(1),
        1,
    );
    let r = &resp.responses[0];
    (
        r.error_code,
        r.error_message.as_ref().map(|m| m.to_string()),
    )
}

/// DescribeConfigs of broker resource `name`, with synonyms.
fn describe(s_: &mut TcpStream, name: &str) -> Vec<DescribeConfigsResourceResult> {
    let req = DescribeConfigsRequest::default()
        .with_include_synonyms(true)
        .with_resources(vec![
            DescribeConfigsResource::default()
                .with_resource_type(BROKER)
                .with_resource_name(s(name))
                .with_configuration_keys(None),
        ]);
    s_.write_all(&request(ApiKey::DescribeConfigs, 4, 4, &req))
        .unwrap();
    let (_, mut resp): (i32, DescribeConfigsResponse) =
        response(s_, ApiKey::DescribeConfigs.response_header_version(4), 4);
    let r = resp.results.remove(0);
    assert_eq!(r.error_code, 0);
    r.configs
}

fn entry<'a>(
    all: &'a [DescribeConfigsResourceResult],
    name: &str,
) -> &'a DescribeConfigsResourceResult {
    all.iter()
        .find(|c| &*c.name == name)
        .unwrap_or_else(|| panic!("{name} not described"))
}

/// Writes `n` overwrites of one key, one batch each; tiny segments put each in its own.
fn overwrite(producer: &Producer, n: usize) {
    for i in 0..n {
        let r = Record::new(format!("v{i}").into_bytes()).key("k");
        producer.send_batch("c", vec![r], Some(0)).unwrap();
    }
}

#[test]
fn cleaner_settings_are_dynamic_and_in_force_from_the_next_pass() {
    let mut topic = TopicConfig {
        segment_bytes: 14,
        ..TopicConfig::with_partitions(1)
    };
    topic.set("cleanup.policy", "compact").unwrap();
    topic.set("min.cleanable.dirty.ratio", "0.01").unwrap();
    let fx = common::server::start(
        |bc| {
            bc.fsync = FsyncPolicy::Always;
            // An hour: without the change below, the cleaner would not run again in this test.
            bc.log_cleaner_backoff_ms = 3_600_000;
        },
        [("c", topic)],
        |_| {},
    );
    let mut conn = TcpStream::connect(fx.addr).unwrap();
    let before = describe(&mut conn, "1");
    let b = entry(&before, "log.cleaner.backoff.ms");
    assert_eq!(
        (b.value.as_deref(), b.config_source, b.read_only),
        (Some("3600000"), STATIC_BROKER, false)
    );
    let rate = entry(&before, "log.cleaner.io.max.bytes.per.second");
    assert_eq!(
        (rate.value.as_deref(), rate.config_source),
        (Some("1.7976931348623157E308"), DEFAULT)
    );
    let enable = entry(&before, "log.cleaner.enable");
    assert_eq!(
        (
            enable.value.as_deref(),
            enable.config_source,
            enable.read_only
        ),
        (Some("true"), DEFAULT, true)
    );

    let producer = Producer::new(Arc::clone(&fx.broker));
    overwrite(&producer, 6);
    let visible = || common::read_all(&fx.broker, "c", 0).len();
    assert_eq!(visible(), 6);

    // Kafka's refusals: a static config, a rate the throttler could not keep.
    let (code, msg) = alter(&mut conn, "", &[("log.cleaner.enable", "false")]);
    assert_eq!(code, ResponseError::InvalidRequest.code());
    assert_eq!(
        msg.as_deref(),
        Some("Cannot update these configs dynamically: Set(log.cleaner.enable)")
    );
    let (code, _) = alter(
        &mut conn,
        "",
        &[("log.cleaner.io.max.bytes.per.second", "0")],
    );
    assert_eq!(code, ResponseError::InvalidConfig.code());

    let (code, msg) = alter(
        &mut conn,
        "",
        &[
            ("log.cleaner.backoff.ms", "20"),
            ("log.cleaner.dedupe.buffer.size", "1048576"),
            ("log.cleaner.io.max.bytes.per.second", "100000000"),
        ],
    );
    assert_eq!((code, msg), (0, None));
    // The change wakes the cleaner: the five inactive overwrites go down to one (the active
    // segment's record stays).
    assert!(
        wait_until(Duration::from_secs(20), || visible() == 2),
        "not cleaned after the change: {} records",
        visible()
    );
    // A pass that finds nothing waits the new backoff (20 ms, not an hour) before the next:
    // new overwrites are cleaned too.
    overwrite(&producer, 5);
    assert!(
        wait_until(Duration::from_secs(20), || visible() == 2),
        "the new backoff is not in force: {} records",
        visible()
    );

    let after = describe(&mut conn, "1");
    for (name, value) in [
        ("log.cleaner.backoff.ms", "20"),
        ("log.cleaner.dedupe.buffer.size", "1048576"),
        ("log.cleaner.io.max.bytes.per.second", "100000000"),
    ] {
        let e = entry(&after, name);
        assert_eq!(
            (e.value.as_deref(), e.config_source),
            (Some(value), DYNAMIC_DEFAULT_BROKER),
            "{name}"
        );
    }
    let b = entry(&after, "log.cleaner.backoff.ms");
    let chain: Vec<(String, i8)> = b
        .synonyms
        .iter()
        .map(|s| (s.value.as_deref().unwrap_or("").to_string(), s.source))
        .collect();
    assert_eq!(
        chain,
        vec![
            ("20".to_string(), DYNAMIC_DEFAULT_BROKER),
            ("3600000".to_string(), STATIC_BROKER),
            ("15000".to_string(), DEFAULT),
        ]
    );
    // The cluster-default resource lists only what is set there.
    let cluster = describe(&mut conn, "");
    assert!(
        cluster
            .iter()
            .all(|c| c.config_source == DYNAMIC_DEFAULT_BROKER)
    );
    assert!(cluster.iter().any(|c| &*c.name == "log.cleaner.backoff.ms"));
}

#[test]
fn log_cleaner_enable_is_static_and_reported_so() {
    let fx = common::server::start(|bc| bc.log_cleaner_enable = false, [], |_| {});
    let mut conn = TcpStream::connect(fx.addr).unwrap();
    let all = describe(&mut conn, "1");
    let e = entry(&all, "log.cleaner.enable");
    assert_eq!(
        (e.value.as_deref(), e.config_source, e.read_only),
        (Some("false"), STATIC_BROKER, true)
    );
}
