//! Fetch: stored batches returned as stored (never re-encoded), bounded by `max_bytes` and
//! `partition_max_bytes`, with at least one whole batch from the first partition that has data
//! (KIP-74). Below `min_bytes` the request parks until a watched partition's high watermark
//! moves or `max_wait_ms` passes. Sessions (KIP-227) are not kept: session id 0 tells the
//! client to send full requests.

use std::time::{Duration, Instant};

use bytes::Bytes;
use kafka_protocol::messages::fetch_response::{FetchableTopicResponse, PartitionData};
use kafka_protocol::messages::{FetchRequest, FetchResponse, ResponseKind};

use super::{Delayed, Outcome};
use crate::error::Error;
use crate::server::worker::Ctx;

pub fn handle(
    ctx: &Ctx,
    _version: i16,
    req: Box<FetchRequest>,
    deadline: Option<Instant>,
) -> Outcome {
    let deadline = deadline
        .unwrap_or_else(|| Instant::now() + Duration::from_millis(req.max_wait_ms.max(0) as u64));
    let keys: Vec<(String, i32)> = req
        .topics
        .iter()
        .flat_map(|t| {
            t.partitions
                .iter()
                .map(move |p| (t.topic.0.to_string(), p.partition))
        })
        .collect();
    let seen = ctx.purgatory.counters(&keys);
    let mut budget = if req.max_bytes <= 0 {
        i32::MAX as usize
    } else {
        req.max_bytes as usize
    };
    let mut total = 0usize;
    let mut any_error = false;
    let mut responses = Vec::with_capacity(req.topics.len());
    for topic in &req.topics {
        let name = topic.topic.0.to_string();
        let mut parts = Vec::with_capacity(topic.partitions.len());
        for p in &topic.partitions {
            let limit = (p.partition_max_bytes.max(0) as usize).min(budget);
            let data = read(ctx, &name, p.partition, p.fetch_offset, limit, total == 0);
            let resp = match data {
                Ok((bytes, offsets)) => {
                    total += bytes.len();
                    budget = budget.saturating_sub(bytes.len());
                    PartitionData::default()
                        .with_partition_index(p.partition)
                        .with_high_watermark(offsets.high_watermark)
                        .with_last_stable_offset(offsets.high_watermark)
                        .with_log_start_offset(offsets.log_start_offset)
                        .with_aborted_transactions(Some(Vec::new()))
                        .with_records(Some(Bytes::from(bytes)))
                }
                Err((e, offsets)) => {
                    any_error = true;
                    PartitionData::default()
                        .with_partition_index(p.partition)
                        .with_error_code(e.kafka_code())
                        .with_high_watermark(offsets.map_or(-1, |o| o.high_watermark))
                        .with_last_stable_offset(offsets.map_or(-1, |o| o.high_watermark))
                        .with_log_start_offset(offsets.map_or(-1, |o| o.log_start_offset))
                        .with_records(Some(Bytes::new()))
                }
            };
            parts.push(resp);
        }
        responses.push(
            FetchableTopicResponse::default()
                .with_topic(topic.topic.clone())
                .with_topic_id(topic.topic_id)
                .with_partitions(parts),
        );
    }
    let enough = total >= req.min_bytes.max(0) as usize && total > 0;
    if enough || any_error || req.min_bytes <= 0 || keys.is_empty() || Instant::now() >= deadline {
        let response = FetchResponse::default()
            .with_session_id(0)
            .with_responses(responses);
        return Outcome::Respond(ResponseKind::Fetch(response));
    }
    Outcome::Park {
        kind: Delayed::Fetch(req),
        deadline,
        keys,
        seen,
    }
}

type ReadResult =
    Result<(Vec<u8>, crate::storage::LogOffsets), (Error, Option<crate::storage::LogOffsets>)>;

fn read(
    ctx: &Ctx,
    topic: &str,
    partition: i32,
    offset: i64,
    max_bytes: usize,
    min_one: bool,
) -> ReadResult {
    let p = ctx
        .broker
        .partition(topic, partition)
        .map_err(|e| (e, None))?;
    let view = {
        let log = p.log().map_err(|e| (e, None))?;
        let offsets = log.offsets();
        log.read_view(offset)
            .map_err(|e| (Error::from(e), Some(offsets)))?
    };
    let mut out = Vec::new();
    view.read_into(&mut out, max_bytes, min_one)
        .map_err(|e| (Error::from(e), Some(view.offsets)))?;
    Ok((out, view.offsets))
}
