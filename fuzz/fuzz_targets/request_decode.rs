//! Request decoding, as the server runs it on received bytes.
//!
//! Input: one mode byte, then bytes. Mode bit 7 set: the rest is one request frame (size prefix
//! already removed). Otherwise the rest is a TCP stream: it is cut into frames by the server's
//! `FrameDecoder`, fed in chunks of `(mode & 0x3f) + 1` bytes, and every frame is decoded.
//! Decoding is `thorstream::internals::decode_request` (= `protocol::request`, which the worker runs
//! before dispatch: header peek, API key, supported-version table, request header, body) for
//! every implemented API and version. The record batches of a decoded Produce request go
//! through `validate_batches`, as the produce handler does.
//!
//! Invariants: nothing panics or aborts (no allocation sized by an untrusted count); framing
//! does not depend on how the stream is chunked; every byte is either in a frame or buffered.
#![no_main]

use bytes::Bytes;
use kafka_protocol::messages::RequestKind;
use libfuzzer_sys::fuzz_target;
use thorstream::internals::decode_request;
use thorstream::internals::protocol::frame::FrameDecoder;
use thorstream::internals::storage::batch::validate_batches;

/// A small request limit keeps each execution fast; the limit itself is tested by the frame
/// invariants below, whatever its value.
const FRAME_BYTES_MAX: usize = 64 * 1024;
const BATCH_BYTES_MAX: usize = 1024 * 1024 + 12;

fn decode(frame: Bytes) {
    let Ok(req) = decode_request(frame) else {
        return;
    };
    assert_eq!(req.api as i16, req.header.request_api_key);
    if let RequestKind::Produce(p) = &req.request {
        for topic in &p.topic_data {
            for part in &topic.partition_data {
                if let Some(records) = &part.records {
                    let _ = validate_batches(records, BATCH_BYTES_MAX);
                }
            }
        }
    }
}

/// Cuts `stream` into frames, fed `chunk` bytes at a time. Returns the frames and whether the
/// stream was refused (the connection would be closed).
fn frames(stream: &[u8], chunk: usize) -> (Vec<Bytes>, bool) {
    let mut d = FrameDecoder::new(FRAME_BYTES_MAX);
    let mut out = Vec::new();
    let mut fed = 0usize;
    for piece in stream.chunks(chunk) {
        d.extend(piece);
        fed += piece.len();
        loop {
            match d.next_frame() {
                Ok(Some(f)) => {
                    assert!(!f.is_empty() && f.len() <= FRAME_BYTES_MAX);
                    out.push(f);
                }
                Ok(None) => break,
                Err(_) => return (out, true),
            }
        }
        let framed: usize = out.iter().map(|f| f.len() + 4).sum();
        assert_eq!(
            framed + d.buffered_bytes(),
            fed,
            "bytes lost by the frame decoder"
        );
    }
    (out, false)
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    if mode & 0x80 != 0 {
        decode(Bytes::copy_from_slice(rest));
        return;
    }
    let chunk = usize::from(mode & 0x3f) + 1;
    let (chunked, refused) = frames(rest, chunk);
    let (whole, refused_whole) = frames(rest, rest.len().max(1));
    assert_eq!(chunked, whole, "framing depends on chunking");
    assert_eq!(refused, refused_whole, "refusal depends on chunking");
    for f in chunked {
        decode(f);
    }
});
