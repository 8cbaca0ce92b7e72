//! ListOffsets: earliest (-2), latest (-1, the high watermark) and by timestamp.

use kafka_protocol::messages::list_offsets_response::{
    ListOffsetsPartitionResponse, ListOffsetsTopicResponse,
};
use kafka_protocol::messages::{ListOffsetsRequest, ListOffsetsResponse, ResponseKind};

use super::Ctx;
use super::Outcome;
use crate::error::Error;

const LATEST: i64 = -1;
const EARLIEST: i64 = -2;

pub fn handle(ctx: &Ctx, _version: i16, req: ListOffsetsRequest) -> Outcome {
    let topics = req
        .topics
        .into_iter()
        .map(|t| {
            let name = t.name.0.to_string();
            let partitions = t
                .partitions
                .iter()
                .map(|p| {
                    let base = ListOffsetsPartitionResponse::default()
                        .with_partition_index(p.partition_index)
                        .with_leader_epoch(-1);
                    match lookup(ctx, &name, p.partition_index, p.timestamp) {
                        Ok((offset, ts)) => base.with_offset(offset).with_timestamp(ts),
                        Err(e) => base
                            .with_error_code(e.kafka_code())
                            .with_offset(-1)
                            .with_timestamp(-1),
                    }
                })
                .collect();
            ListOffsetsTopicResponse::default()
                .with_name(t.name)
                .with_partitions(partitions)
        })
        .collect();
    Outcome::Respond(ResponseKind::ListOffsets(
        ListOffsetsResponse::default().with_topics(topics),
    ))
}

fn lookup(ctx: &Ctx, topic: &str, partition: i32, timestamp: i64) -> Result<(i64, i64), Error> {
    let offsets = ctx.broker.offsets(topic, partition)?;
    match timestamp {
        LATEST => Ok((offsets.high_watermark, -1)),
        EARLIEST => Ok((offsets.log_start_offset, -1)),
        ts if ts >= 0 => Ok(ctx
            .broker
            .offset_for_timestamp(topic, partition, ts)?
            .unwrap_or((-1, -1))),
        other => Err(Error::InvalidConfig(format!(
            "unsupported timestamp {other}"
        ))),
    }
}
