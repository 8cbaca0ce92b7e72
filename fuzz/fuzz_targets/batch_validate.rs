//! Record batch validation (`storage::batch`) and the record decoder (`protocol::records`).
//!
//! Input: one mode byte, then bytes taken as the `records` field of a Produce partition. Mode
//! bit 0: recompute every batch's CRC first (so mutations reach the checks behind it); bit 1:
//! also assign dense base offsets from 0 (as an append does). The bytes go through
//! `validate_batch`, `validate_batches` and `check_compressed_record_counts` (the produce path,
//! which inflates compressed batches as a stream), the batch walker `BatchIter`, and
//! `decode_records` (which inflates compressed batches: ListOffsets by timestamp and the
//! embedded consumer run it on stored batches, i.e. on client bytes that passed validation).
//!
//! Invariants: nothing panics; an accepted batch has magic 2, a length inside the buffer and
//! `record_count == last_offset_delta + 1 > 0`; `validate_batches` accepts exactly a sequence
//! of batches each `validate_batch` accepts, covering the buffer; `BatchIter` walks the same
//! headers; decoding never yields more records than the headers count, and exactly as many
//! once the compressed counts have been checked.
#![no_main]

use libfuzzer_sys::fuzz_target;
use thorstream::internals::protocol::records::decode_records;
use thorstream::internals::storage::batch::{
    BatchIter, check_compressed_record_counts, validate_batch, validate_batches,
};

#[path = "../common/mod.rs"]
mod common;

const BATCH_BYTES_MAX: usize = 1024 * 1024 + 12;

fuzz_target!(|data: &[u8]| {
    let Some((&mode, bytes)) = data.split_first() else {
        return;
    };
    let mut buf = bytes.to_vec();
    if mode & 1 != 0 {
        common::fix_batches(&mut buf, (mode & 2 != 0).then_some(0));
    }

    if let Ok(h) = validate_batch(&buf) {
        assert_eq!(h.magic, 2);
        assert!(h.total_bytes() <= buf.len());
        assert!(h.record_count > 0);
        assert_eq!(
            i64::from(h.record_count),
            i64::from(h.last_offset_delta) + 1
        );
    }

    match validate_batches(&buf, BATCH_BYTES_MAX) {
        Ok(headers) => {
            assert!(!headers.is_empty());
            let mut pos = 0;
            for h in &headers {
                assert_eq!(validate_batch(&buf[pos..]).as_ref(), Ok(h));
                assert!(h.total_bytes() <= BATCH_BYTES_MAX);
                pos += h.total_bytes();
            }
            assert_eq!(pos, buf.len(), "accepted batches must cover the buffer");
            let walked: Vec<_> = BatchIter::new(&buf).map(|(h, _)| h).collect();
            assert_eq!(walked, headers);
            let total: i64 = headers
                .iter()
                .filter(|h| !h.is_control())
                .map(|h| i64::from(h.record_count))
                .sum();
            let counted = check_compressed_record_counts(&buf).is_ok();
            if let Ok(records) = decode_records("t", 0, &buf, i64::MIN) {
                assert!(records.len() as i64 <= total, "more records than counted");
                if counted {
                    assert_eq!(records.len() as i64, total, "a checked count was wrong");
                }
            }
        }
        Err(_) => {
            let _ = check_compressed_record_counts(&buf);
            let _ = decode_records("t", 0, &buf, 0);
        }
    }
});
