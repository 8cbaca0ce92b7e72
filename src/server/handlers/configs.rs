//! Config APIs: DescribeConfigs (v1–4), AlterConfigs (v0–2) and IncrementalAlterConfigs
//! (v0–1), for topics (resource type 2) and the broker (type 4: its node id, or "" for the
//! cluster-wide default).
//!
//! The request's form is checked here as Kafka's `ConfigAdminManager` checks it (each resource
//! once, no duplicate keys, no null value outside DELETE, known operations, APPEND/SUBTRACT
//! only on list configs), then the whole new set goes to the broker (`alter_topic_configs`,
//! `alter_broker_configs`), which validates it as at creation. AlterConfigs replaces the whole
//! set; IncrementalAlterConfigs applies its operations to the current one.
//!
//! Authorization (Kafka's `ConfigHelper`, `KafkaApis`): DescribeConfigs needs DescribeConfigs,
//! the alters AlterConfigs, on the topic (else TOPIC_AUTHORIZATION_FAILED) or, for a broker,
//! the cluster (CLUSTER_AUTHORIZATION_FAILED), per resource (`authz::config_refusal`).

use std::collections::{BTreeMap, HashSet};

use kafka_protocol::messages::alter_configs_response::AlterConfigsResourceResponse as AlterResult;
use kafka_protocol::messages::describe_configs_response::{
    DescribeConfigsResourceResult, DescribeConfigsResult, DescribeConfigsSynonym,
};
use kafka_protocol::messages::incremental_alter_configs_response::AlterConfigsResourceResponse as IncrementalResult;
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;

use super::{Outcome, authz, message};
use crate::config::broker_dynamic::{self, BrokerScope, Described};
use crate::config::table::{self, Kind};
use crate::error::Error;
use crate::security::acl::AclOperation;
use crate::server::session::Caller;
use crate::server::worker::Ctx;

const RESOURCE_TOPIC: i8 = 2;
const RESOURCE_BROKER: i8 = 4;

const OP_SET: i8 = 0;
const OP_DELETE: i8 = 1;
const OP_APPEND: i8 = 2;
const OP_SUBTRACT: i8 = 3;

fn s(v: impl Into<String>) -> StrBytes {
    StrBytes::from_string(v.into())
}

/// The configs a resource reports, or why not.
fn described(ctx: &Ctx, resource_type: i8, name: &str) -> Result<Vec<Described>, Error> {
    let broker = &ctx.broker;
    let static_default = &broker.config().default_topic_config;
    let dynamic = broker.dynamic_configs();
    match resource_type {
        RESOURCE_TOPIC => {
            let d = broker.describe(name)?;
            Ok(broker_dynamic::describe_topic(
                &d.config,
                static_default,
                &dynamic,
                broker.config().fsync,
            ))
        }
        RESOURCE_BROKER => {
            let scope = BrokerScope::of_resource(name, broker.node_id())?;
            let c = broker.config();
            let node = broker.node_id().to_string();
            let statics = [
                (
                    "auto.create.topics.enable",
                    c.auto_create_topics.to_string(),
                    Kind::Boolean as i8,
                ),
                ("broker.id", node.clone(), Kind::Int as i8),
                (
                    "log.dirs",
                    c.data_dir.display().to_string(),
                    Kind::String as i8,
                ),
                ("node.id", node, Kind::Int as i8),
                (
                    "num.partitions",
                    c.default_topic_config.num_partitions.to_string(),
                    Kind::Int as i8,
                ),
                (
                    "offsets.retention.minutes",
                    c.offsets_retention_minutes.to_string(),
                    Kind::Int as i8,
                ),
                (
                    "producer.id.expiration.ms",
                    c.producer_id_expiration_ms.to_string(),
                    Kind::Int as i8,
                ),
                (
                    "socket.request.max.bytes",
                    ctx.config.request_bytes_max.to_string(),
                    Kind::Int as i8,
                ),
                ("thorstream.fsync", c.fsync.to_string(), Kind::String as i8),
            ];
            let mut out =
                broker_dynamic::describe_broker(scope, static_default, &dynamic, &statics);
            out.extend(crate::config::cleaner::describe(
                scope == BrokerScope::Node,
                c,
                &dynamic,
            ));
            Ok(out)
        }
        other => Err(Error::InvalidRequest(format!(
            "Unsupported resource type {other}"
        ))),
    }
}

pub fn describe_configs(
    ctx: &Ctx,
    version: i16,
    req: DescribeConfigsRequest,
    caller: &Caller,
) -> Outcome {
    let refusals: Vec<_> = {
        let checks = authz::checks(ctx, caller);
        req.resources
            .iter()
            .map(|r| {
                let op = AclOperation::DescribeConfigs;
                authz::config_refusal(&checks, op, r.resource_type, &r.resource_name)
            })
            .collect()
    };
    let results = req
        .resources
        .iter()
        .zip(refusals)
        .map(|(r, refusal)| {
            let base = DescribeConfigsResult::default()
                .with_resource_type(r.resource_type)
                .with_resource_name(r.resource_name.clone());
            if let Some(e) = refusal {
                return base.with_error_code(e.code());
            }
            match described(ctx, r.resource_type, &r.resource_name) {
                Ok(entries) => base.with_configs(
                    entries
                        .into_iter()
                        .filter(|e| {
                            r.configuration_keys
                                .as_ref()
                                .is_none_or(|keys| keys.iter().any(|k| **k == *e.name))
                        })
                        .map(|e| {
                            entry(
                                e,
                                req.include_synonyms,
                                version >= 3 && req.include_documentation,
                            )
                        })
                        .collect(),
                ),
                Err(e) => base
                    .with_error_code(e.kafka_code())
                    .with_error_message(message(&e)),
            }
        })
        .collect();
    Outcome::Respond(ResponseKind::DescribeConfigs(
        DescribeConfigsResponse::default().with_results(results),
    ))
}

fn entry(e: Described, synonyms: bool, documentation: bool) -> DescribeConfigsResourceResult {
    let mut out = DescribeConfigsResourceResult::default()
        .with_name(s(e.name))
        .with_value(e.value.map(s))
        .with_read_only(e.read_only)
        .with_config_source(e.source)
        .with_is_sensitive(false)
        .with_config_type(e.config_type);
    if synonyms {
        out = out.with_synonyms(
            e.synonyms
                .into_iter()
                .map(|(n, v, src)| {
                    DescribeConfigsSynonym::default()
                        .with_name(s(n))
                        .with_value(Some(s(v)))
                        .with_source(src)
                })
                .collect(),
        );
    }
    if documentation {
        out = out.with_documentation(Some(s(e.doc)));
    }
    out
}

/// One requested change: name, operation (SET for AlterConfigs), value.
struct Change<'a> {
    name: &'a str,
    op: i8,
    value: Option<&'a str>,
}

/// Kafka's form checks of one resource's changes (before anything is looked up).
fn check_form(changes: &[Change<'_>]) -> Result<(), Error> {
    let mut seen = HashSet::new();
    if !changes.iter().all(|c| seen.insert(c.name)) {
        return Err(Error::InvalidRequest(
            "Error due to duplicate config keys".into(),
        ));
    }
    let nulls: Vec<&str> = changes
        .iter()
        .filter(|c| c.op != OP_DELETE && c.value.is_none())
        .map(|c| c.name)
        .collect();
    if !nulls.is_empty() {
        return Err(Error::InvalidRequest(format!(
            "Null value not supported for : {}",
            nulls.join(", ")
        )));
    }
    if let Some(c) = changes
        .iter()
        .find(|c| !(OP_SET..=OP_SUBTRACT).contains(&c.op))
    {
        return Err(Error::InvalidRequest(format!(
            "Unknown operations type {}",
            c.op
        )));
    }
    Ok(())
}

/// `current` with `changes` applied (Kafka's `prepareIncrementalConfigs`); `kind_of` gives a
/// config's type and default, or `None` for a name the resource does not know.
fn apply_changes(
    mut current: BTreeMap<String, String>,
    changes: &[Change<'_>],
    kind_of: impl Fn(&str) -> Option<(Kind, &'static str)>,
) -> Result<BTreeMap<String, String>, Error> {
    for c in changes {
        let value = c.value.unwrap_or_default();
        match c.op {
            OP_SET => {
                current.insert(c.name.to_string(), value.to_string());
            }
            OP_DELETE => {
                current.remove(c.name);
            }
            op => {
                let (kind, default) = kind_of(c.name).ok_or_else(|| {
                    Error::InvalidConfig(format!("Unknown config name: {}", c.name))
                })?;
                if kind != Kind::List {
                    let what = if op == OP_APPEND {
                        "append"
                    } else {
                        "subtract"
                    };
                    return Err(Error::InvalidConfig(format!(
                        "Config value {what} is not allowed for config key: {}",
                        c.name
                    )));
                }
                let old = current.get(c.name).map_or(default, String::as_str);
                let mut list: Vec<String> = old
                    .split(',')
                    .filter(|x| !x.is_empty())
                    .map(str::to_string)
                    .collect();
                let given: Vec<&str> = value.split(',').collect();
                if op == OP_APPEND {
                    for v in given {
                        if !list.iter().any(|x| x == v) {
                            list.push(v.to_string());
                        }
                    }
                } else {
                    list.retain(|x| !given.contains(&x.as_str()));
                }
                current.insert(c.name.to_string(), list.join(","));
            }
        }
    }
    Ok(current)
}

/// Applies one resource's changes; `replace` for AlterConfigs (the set becomes exactly the
/// request's).
fn alter(
    ctx: &Ctx,
    resource_type: i8,
    name: &str,
    changes: &[Change<'_>],
    replace: bool,
    validate_only: bool,
) -> Result<(), Error> {
    check_form(changes)?;
    let broker = &ctx.broker;
    match resource_type {
        RESOURCE_TOPIC => {
            let current = if replace {
                BTreeMap::new()
            } else {
                broker.describe(name)?.config.overrides
            };
            let next = apply_changes(current, changes, |n| {
                table::lookup(n).map(|d| (d.kind, d.default))
            })?;
            broker.alter_topic_configs(name, &next, validate_only)
        }
        RESOURCE_BROKER => {
            let scope = BrokerScope::of_resource(name, broker.node_id())?;
            let current = if replace {
                BTreeMap::new()
            } else {
                broker.dynamic_configs().map(scope).clone()
            };
            let next = apply_changes(current, changes, |n| {
                table::topic_config_of_broker_name(n).map(|(d, _, _)| (d.kind, d.default))
            })?;
            broker.alter_broker_configs(scope, &next, validate_only)
        }
        other => Err(Error::InvalidRequest(format!(
            "Unknown resource type {other}"
        ))),
    }
}

/// The resources named more than once (Kafka refuses each of them).
fn repeated<'a>(keys: impl Iterator<Item = (i8, &'a str)>) -> HashSet<(i8, &'a str)> {
    let mut seen = HashSet::new();
    let mut twice = HashSet::new();
    for k in keys {
        if !seen.insert(k) {
            twice.insert(k);
        }
    }
    twice
}

fn result_of(r: Result<(), Error>) -> (i16, Option<StrBytes>) {
    match r {
        Ok(()) => (0, None),
        Err(e) => {
            log::debug!("alter configs: {e}");
            (e.kafka_code(), message(&e))
        }
    }
}

fn once_error() -> Error {
    Error::InvalidRequest("Each resource must appear at most once.".into())
}

/// One resource of an alter request: its type, its name and the changes asked for it.
struct AlterResource<'a> {
    resource_type: i8,
    name: &'a StrBytes,
    changes: Vec<Change<'a>>,
}

/// Applies each resource's changes (the whole set replaced when `replace`, as AlterConfigs)
/// and answers, per resource, its type, name, error code and message. A resource named more
/// than once is refused each time, as Kafka.
fn alter_each(
    ctx: &Ctx,
    resources: Vec<AlterResource<'_>>,
    replace: bool,
    validate_only: bool,
) -> Vec<(i8, StrBytes, i16, Option<StrBytes>)> {
    let twice = repeated(resources.iter().map(|r| (r.resource_type, &**r.name)));
    resources
        .iter()
        .map(|r| {
            let result = if twice.contains(&(r.resource_type, &**r.name)) {
                Err(once_error())
            } else {
                alter(
                    ctx,
                    r.resource_type,
                    r.name,
                    &r.changes,
                    replace,
                    validate_only,
                )
            };
            let (code, msg) = result_of(result);
            (r.resource_type, r.name.clone(), code, msg)
        })
        .collect()
}

/// `alter_each` over the resources the caller may alter; the others answer their
/// authorization error. In request order.
fn alter_authorized(
    ctx: &Ctx,
    caller: &Caller,
    resources: Vec<AlterResource<'_>>,
    replace: bool,
    validate_only: bool,
) -> Vec<(i8, StrBytes, i16, Option<StrBytes>)> {
    let refusals: Vec<_> = {
        let checks = authz::checks(ctx, caller);
        resources
            .iter()
            .map(|r| {
                let refusal = authz::config_refusal(
                    &checks,
                    AclOperation::AlterConfigs,
                    r.resource_type,
                    r.name,
                );
                (r.resource_type, r.name.clone(), refusal)
            })
            .collect()
    };
    let allowed = resources
        .into_iter()
        .zip(&refusals)
        .filter(|(_, (_, _, refusal))| refusal.is_none())
        .map(|(r, _)| r)
        .collect();
    let mut done = alter_each(ctx, allowed, replace, validate_only).into_iter();
    refusals
        .into_iter()
        .filter_map(|(resource_type, name, refusal)| match refusal {
            Some(e) => Some((resource_type, name, e.code(), None)),
            None => done.next(),
        })
        .collect()
}

pub fn incremental_alter_configs(
    ctx: &Ctx,
    req: IncrementalAlterConfigsRequest,
    caller: &Caller,
) -> Outcome {
    let resources = req
        .resources
        .iter()
        .map(|r| AlterResource {
            resource_type: r.resource_type,
            name: &r.resource_name,
            changes: r
                .configs
                .iter()
                .map(|c| Change {
                    name: &c.name,
                    op: c.config_operation,
                    value: c.value.as_deref(),
                })
                .collect(),
        })
        .collect();
    let responses = alter_authorized(ctx, caller, resources, false, req.validate_only)
        .into_iter()
        .map(|(resource_type, name, code, msg)| {
            IncrementalResult::default()
                .with_error_code(code)
                .with_error_message(msg)
                .with_resource_type(resource_type)
                .with_resource_name(name)
        })
        .collect();
    Outcome::Respond(ResponseKind::IncrementalAlterConfigs(
        IncrementalAlterConfigsResponse::default().with_responses(responses),
    ))
}

pub fn alter_configs(ctx: &Ctx, req: AlterConfigsRequest, caller: &Caller) -> Outcome {
    let resources = req
        .resources
        .iter()
        .map(|r| AlterResource {
            resource_type: r.resource_type,
            name: &r.resource_name,
            changes: r
                .configs
                .iter()
                .map(|c| Change {
                    name: &c.name,
                    op: OP_SET,
                    value: c.value.as_deref(),
                })
                .collect(),
        })
        .collect();
    let responses = alter_authorized(ctx, caller, resources, true, req.validate_only)
        .into_iter()
        .map(|(resource_type, name, code, msg)| {
            AlterResult::default()
                .with_error_code(code)
                .with_error_message(msg)
                .with_resource_type(resource_type)
                .with_resource_name(name)
        })
        .collect();
    Outcome::Respond(ResponseKind::AlterConfigs(
        AlterConfigsResponse::default().with_responses(responses),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ch(name: &'static str, op: i8, value: Option<&'static str>) -> Change<'static> {
        Change { name, op, value }
    }

    fn topic_kind(n: &str) -> Option<(Kind, &'static str)> {
        table::lookup(n).map(|d| (d.kind, d.default))
    }

    #[test]
    fn append_and_subtract_work_on_lists_from_the_default() {
        let m = apply_changes(
            BTreeMap::new(),
            &[ch("cleanup.policy", OP_APPEND, Some("compact"))],
            topic_kind,
        )
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            m.get("cleanup.policy").map(String::as_str),
            Some("delete,compact")
        );
        let m = apply_changes(
            m,
            &[ch("cleanup.policy", OP_SUBTRACT, Some("delete"))],
            topic_kind,
        )
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(m.get("cleanup.policy").map(String::as_str), Some("compact"));
        let m = apply_changes(m, &[ch("cleanup.policy", OP_DELETE, None)], topic_kind)
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(m.is_empty());
    }

    #[test]
    fn append_to_a_non_list_and_unknown_names_are_refused_as_kafka() {
        let e = apply_changes(
            BTreeMap::new(),
            &[ch("retention.ms", OP_APPEND, Some("1"))],
            topic_kind,
        );
        assert!(
            matches!(e, Err(Error::InvalidConfig(m)) if m == "Config value append is not allowed for config key: retention.ms")
        );
        let e = apply_changes(
            BTreeMap::new(),
            &[ch("nope", OP_SUBTRACT, Some("1"))],
            topic_kind,
        );
        assert!(matches!(e, Err(Error::InvalidConfig(m)) if m == "Unknown config name: nope"));
    }

    #[test]
    fn form_checks_follow_kafka() {
        let dup = [ch("a", OP_SET, Some("1")), ch("a", OP_SET, Some("2"))];
        assert!(
            matches!(check_form(&dup), Err(Error::InvalidRequest(m)) if m.contains("duplicate"))
        );
        let null = [ch("a", OP_SET, None), ch("b", OP_DELETE, None)];
        assert!(
            matches!(check_form(&null), Err(Error::InvalidRequest(m)) if m == "Null value not supported for : a")
        );
        let op = [ch("a", 9, Some("1"))];
        assert!(
            matches!(check_form(&op), Err(Error::InvalidRequest(m)) if m == "Unknown operations type 9")
        );
    }
}
