//! The broker's own metadata files, `__topics.meta` and `__consumer_offsets.meta`: framing
//! (`record_log`), their private versioned record types (`topic_record`, `offset_record`) and
//! the frozen layout of the files written before records were versioned (`legacy`).
//!
//! The public structs (`TopicMeta`, `TopicConfig`, `CommittedOffset`) are never written as
//! they are: each record type converts to and from its private on-disk form in one place, so
//! a public struct can gain a field without making old files undecodable. Topic configs are a
//! name → value map with Kafka's config names, so a new config needs no format change.
//!
//! # Byte layout (format 1)
//!
//! A file is a sequence of frames:
//!
//! | bytes | field |
//! | --- | --- |
//! | 0..4 | payload length, `u32` big-endian (at most `METADATA_RECORD_BYTES_MAX`, 16 MiB) |
//! | 4..8 | CRC-32 (IEEE, `crc32fast`) of the payload, `u32` big-endian |
//! | 8.. | payload |
//!
//! The first frame is the header frame; its 6-byte payload is `54 53 4D 44` (`"TSMD"`), the
//! format version (`u8`, 1) and the file kind (`u8`: 1 = `__topics.meta`, 2 =
//! `__consumer_offsets.meta`). Every later payload is one record: its version (`u8`: 2 for topic
//! records, 1 for offset records, 2 for transactional offset records, today), then its body
//! in bincode 1 with fixed-width little-endian integers and no trailing bytes: a string is a
//! `u64` LE byte count then UTF-8; an `Option` a `u8` 0 (none) or 1 then the value; an enum a `u32` LE variant index then its
//! fields in order; a map a `u64` LE entry count then key, value pairs in key order; `[u8; 16]`
//! 16 raw bytes.
//!
//! Topic record, version 1 (`topic_record::TopicRecordV1`):
//! - variant 0, upsert: name (string), topic id (16 bytes), partition count (`u32`),
//!   replication factor (`u16`), configs (map string → string: `segment.bytes`,
//!   `segment.ms`, `retention.ms`, `retention.bytes`, `max.message.bytes`, and
//!   `thorstream.fsync` = `always` | `never` | `<N>ms` when the topic overrides the broker's
//!   policy; values in decimal);
//! - variant 1, delete: name (string).
//!
//! Topic record, version 2 (`topic_record::TopicRecordV2`, written now; version 1 still read):
//! - variant 0, upsert: as version 1, but the configs map holds only the configs set on the
//!   topic (any Kafka topic config name, canonical values; names this build does not know are
//!   kept); the topic follows the broker's defaults for every other one. A version 1 map is
//!   read as overrides of the values that differ from Kafka's default;
//! - variant 1, delete: name (string);
//! - variant 2, broker configs: scope (string: "" for the cluster default, else a node id),
//!   configs (map string → string of dynamic broker configs by broker name). The latest
//!   record of a scope replaces the earlier ones.
//!
//! Offset record, version 1 (`offset_record::OffsetRecordV1`):
//! - variant 0, commit: group, topic (strings), partition (`i32`), offset (`i64`), leader epoch
//!   (`i32`), metadata (`Option<string>`), commit timestamp in ms (`i64`);
//! - variant 1, delete offset: group, topic, partition (`i32`);
//! - variant 2, delete group: group.
//!
//! Offset record, version 2 (`offset_record::OffsetRecordV2`: the transactional records only;
//! the plain ones above are still written as version 1):
//! - variant 0, transactional commit (TxnOffsetCommit, pending until its transaction ends):
//!   group, topic (strings), partition (`i32`), producer id (`i64`), producer epoch (`i16`),
//!   offset (`i64`), leader epoch (`i32`), metadata (`Option<string>`), commit timestamp in
//!   ms (`i64`);
//! - variant 1, transaction end: group (string), producer id (`i64`), commit (`u8`: 1 commit,
//!   0 abort). It turns that producer's pending offsets of the group into committed offsets,
//!   or drops them. Pending offsets without a later end stay pending across restarts.
//!
//! # Format 0 (legacy) and its detection
//!
//! Before format 1 the files had the same frames but no header frame and no version byte: each
//! payload was bincode of the then-public types (`legacy`). Such a payload starts with its
//! enum's `u32` LE variant index (`00`, `01` or `02`, then `00 00 00`), never with `"TSMD"`,
//! so the first intact frame tells the formats apart. A legacy file is decoded with the
//! frozen types and rewritten in format 1 at open.
//!
//! # Evolution
//!
//! A changed record layout gets a new version byte and a new private type; the decoder keeps
//! reading every older version. A new topic config is a new map entry (no version change): a
//! build that does not know a name keeps it (written back, never applied) with a warning. The header's format version
//! changes only with the framing itself; a build refuses a version it does not know.

pub(crate) mod be_codec;
pub(crate) mod legacy;
pub(crate) mod offset_record;
pub(crate) mod record_log;
pub(crate) mod topic_record;

use bincode::Options;
use serde::Serialize;
use serde::de::DeserializeOwned;

fn bincode_options() -> impl Options {
    bincode::DefaultOptions::new()
        .with_fixint_encoding()
        .with_little_endian()
}

/// A record's payload: `version`, then `body` in bincode (layout above).
fn encode_versioned<T: Serialize>(version: u8, body: &T) -> Result<Vec<u8>, String> {
    let mut out = vec![version];
    bincode_options()
        .serialize_into(&mut out, body)
        .map_err(|e| e.to_string())?;
    Ok(out)
}

/// Decodes a record body; trailing bytes are an error, allocation is bounded by its length.
fn decode_body<T: DeserializeOwned>(body: &[u8]) -> Result<T, String> {
    bincode_options()
        .reject_trailing_bytes()
        .with_limit(body.len() as u64)
        .deserialize(body)
        .map_err(|e| e.to_string())
}
