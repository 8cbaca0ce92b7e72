//! RecordBatch encoding and decoding for the embedded API, through the `kafka-protocol` crate.
//! The broker itself never decodes records on the produce or fetch path; only the embedded
//! producer (to build batches), the embedded consumer (to read them) and timestamp lookups do.

use bytes::{Bytes, BytesMut};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::records::{
    Compression, NO_PARTITION_LEADER_EPOCH, NO_PRODUCER_EPOCH, NO_PRODUCER_ID, NO_SEQUENCE,
    Record as KRecord, RecordBatchDecoder, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
};

use crate::error::Error;
use crate::storage::batch::BatchIter;
use crate::types::{Record, StoredRecord};

/// Encodes `records` as one uncompressed v2 batch with base offset 0.
pub fn encode_batch(records: &[Record], now_ms: i64) -> Result<Vec<u8>, Error> {
    encode_batch_with(records, now_ms, Compression::None)
}

/// Encodes `records` as one v2 batch with the given compression.
pub fn encode_batch_with(
    records: &[Record],
    now_ms: i64,
    compression: Compression,
) -> Result<Vec<u8>, Error> {
    encode(records, now_ms, compression, None)
}

/// The producer of a transactional batch: id, epoch and the batch's base sequence.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TxnProducer {
    pub producer_id: i64,
    pub producer_epoch: i16,
    pub base_sequence: i32,
}

/// Encodes `records` as one uncompressed transactional v2 batch (attributes bit 0x10) of
/// `producer`, base offset 0.
pub fn encode_transactional_batch(
    records: &[Record],
    now_ms: i64,
    producer: TxnProducer,
) -> Result<Vec<u8>, Error> {
    encode(records, now_ms, Compression::None, Some(producer))
}

fn encode(
    records: &[Record],
    now_ms: i64,
    compression: Compression,
    producer: Option<TxnProducer>,
) -> Result<Vec<u8>, Error> {
    // The encoder batches records whose offset - sequence is constant; with base sequence -1
    // (no idempotence) that means sequence = offset - 1.
    let (producer_id, producer_epoch, base_sequence) = producer
        .map_or((NO_PRODUCER_ID, NO_PRODUCER_EPOCH, NO_SEQUENCE), |p| {
            (p.producer_id, p.producer_epoch, p.base_sequence)
        });
    let krecords: Vec<KRecord> = records
        .iter()
        .enumerate()
        .map(|(i, r)| KRecord {
            transactional: producer.is_some(),
            control: false,
            delete_horizon: false,
            partition_leader_epoch: NO_PARTITION_LEADER_EPOCH,
            producer_id,
            producer_epoch,
            timestamp_type: TimestampType::Creation,
            offset: i as i64,
            sequence: base_sequence.wrapping_add(i as i32),
            timestamp: r.timestamp.unwrap_or(now_ms),
            key: r.key.as_ref().map(|k| Bytes::copy_from_slice(k)),
            value: r.value.as_ref().map(|v| Bytes::copy_from_slice(v)),
            headers: r
                .headers
                .iter()
                .map(|(k, v)| {
                    (
                        StrBytes::from_string(k.clone()),
                        v.as_ref().map(|v| Bytes::copy_from_slice(v)),
                    )
                })
                .collect(),
        })
        .collect();
    // Sized up front so the encoder never regrows (and glibc never faults a fresh copy in):
    // payload plus a generous per-record overhead for varints and attributes.
    let estimate = 61
        + records
            .iter()
            .map(|r| {
                32 + r.key.as_ref().map_or(0, Vec::len)
                    + r.value.as_ref().map_or(0, Vec::len)
                    + r.headers
                        .iter()
                        .map(|(k, v)| 10 + k.len() + v.as_ref().map_or(0, Vec::len))
                        .sum::<usize>()
            })
            .sum::<usize>();
    let mut buf = BytesMut::with_capacity(estimate);
    RecordBatchEncoder::encode(
        &mut buf,
        krecords.iter(),
        &RecordEncodeOptions {
            version: 2,
            compression,
        },
    )
    .map_err(|e| Error::InvalidRecord(format!("cannot encode batch: {e}")))?;
    Ok(Vec::from(buf))
}

/// The batch attribute bit of timestamp type LogAppendTime.
const LOG_APPEND_TIME_BIT: i16 = 0x08;

/// Decodes every whole batch in `bytes` (a trailing partial batch is ignored, as fetch
/// responses may end with one) into records at or after `from_offset`.
pub fn decode_records(
    topic: &str,
    partition: i32,
    bytes: &[u8],
    from_offset: i64,
) -> Result<Vec<StoredRecord>, Error> {
    let mut out = Vec::new();
    for (header, batch) in BatchIter::new(bytes) {
        if header.is_control() || header.last_offset() < from_offset {
            continue;
        }
        let mut buf = Bytes::copy_from_slice(batch);
        let set = RecordBatchDecoder::decode(&mut buf)
            .map_err(|e| Error::InvalidRecord(format!("cannot decode stored batch: {e}")))?;
        for r in set.records {
            if r.offset < from_offset || r.control {
                continue;
            }
            out.push(StoredRecord {
                topic: topic.to_string(),
                partition,
                offset: r.offset,
                // A LogAppendTime batch's records all carry the broker's time, its max
                // timestamp (as Kafka's clients read it).
                timestamp: if header.attributes & LOG_APPEND_TIME_BIT != 0 {
                    header.max_timestamp
                } else {
                    r.timestamp
                },
                key: r.key.map(|k| k.to_vec()),
                value: r.value.map(|v| v.to_vec()),
                headers: r
                    .headers
                    .into_iter()
                    .map(|(k, v)| (k.to_string(), v.map(|v| v.to_vec())))
                    .collect(),
            });
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::batch::validate_batches;
    use proptest::prelude::*;

    #[test]
    fn log_append_time_batches_give_every_record_the_brokers_time() {
        let records = vec![
            Record::new(b"a".to_vec()).timestamp(5),
            Record::new(b"b".to_vec()).timestamp(6),
        ];
        let batch = encode_batch(&records, 0).unwrap_or_else(|e| panic!("{e}"));
        let rules = crate::storage::validator::ProduceRules {
            log_append_time: true,
            ..Default::default()
        };
        let stamped = crate::storage::validator::prepare(&batch, &rules, 424_242)
            .unwrap_or_else(|e| panic!("{e}"));
        let back = decode_records("t", 0, &stamped, 0).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            back.iter().map(|r| r.timestamp).collect::<Vec<_>>(),
            vec![424_242; 2]
        );
        let plain = decode_records("t", 0, &batch, 0).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            plain.iter().map(|r| r.timestamp).collect::<Vec<_>>(),
            vec![5, 6]
        );
    }

    #[test]
    fn every_codec_round_trips_and_validates() {
        let records = vec![
            Record::with_key(b"k".to_vec(), b"v".to_vec()).header("h", b"x".to_vec()),
            Record::new(vec![7; 300]).timestamp(1234),
            Record::default(),
        ];
        for c in [
            Compression::None,
            Compression::Gzip,
            Compression::Snappy,
            Compression::Lz4,
            Compression::Zstd,
        ] {
            let bytes = encode_batch_with(&records, 99, c).expect("encode");
            let headers = validate_batches(&bytes, 1 << 20).expect("valid batch");
            assert_eq!(headers[0].record_count, 3);
            let back = decode_records("t", 0, &bytes, 0).expect("decode");
            assert_eq!(back.len(), 3);
            assert_eq!(back[0].key.as_deref(), Some(&b"k"[..]));
            assert_eq!(
                back[0].headers,
                vec![("h".to_string(), Some(b"x".to_vec()))]
            );
            assert_eq!(back[0].timestamp, 99);
            assert_eq!(back[1].timestamp, 1234);
            assert_eq!(back[2].value, None);
        }
    }

    proptest! {
        #[test]
        fn encode_decode_round_trip(values in proptest::collection::vec((proptest::option::of(proptest::collection::vec(any::<u8>(), 0..20)), proptest::collection::vec(any::<u8>(), 0..100), 0i64..1_000_000_000_000), 1..20)) {
            let records: Vec<Record> = values.iter().map(|(k, v, ts)| Record { key: k.clone(), value: Some(v.clone()), headers: vec![], timestamp: Some(*ts) }).collect();
            let bytes = encode_batch(&records, 0).expect("encode");
            prop_assert!(validate_batches(&bytes, 1 << 24).is_ok());
            let back = decode_records("t", 0, &bytes, 0).expect("decode");
            prop_assert_eq!(back.len(), records.len());
            for (i, (r, b)) in records.iter().zip(&back).enumerate() {
                prop_assert_eq!(b.offset, i as i64);
                prop_assert_eq!(&b.key, &r.key);
                prop_assert_eq!(&b.value, &r.value);
                prop_assert_eq!(Some(b.timestamp), r.timestamp);
            }
        }
    }
}
