//! The worker pool: decode a request, run its handler against the broker, encode the reply.
//! Workers never block on data, fsync or other clients: anything that must wait is parked in
//! the purgatory and comes back as a `DelayedOp`.

use std::sync::Arc;
use std::time::Instant;

use bytes::{BufMut, Bytes, BytesMut};
use crossbeam_channel::{Receiver, Sender};
use kafka_protocol::messages::{ApiKey, RequestHeader, ResponseHeader, ResponseKind};
use kafka_protocol::protocol::Encodable;
use mio::Waker;

use super::ServerConfig;
use super::handlers::{self, Outcome};
use super::purgatory::Purgatory;
use crate::broker::Broker;
use crate::error::{Error, Result};
use crate::protocol::request::{DecodeError, DecodedRequest, decode_request};

/// Shared, read-only context of every handler.
pub struct Ctx {
    pub broker: Arc<Broker>,
    pub config: ServerConfig,
    pub purgatory: Arc<Purgatory>,
    /// Bytes of request frames queued for workers (reactor adds, workers subtract).
    pub queued_bytes: Arc<std::sync::atomic::AtomicUsize>,
}

pub enum Job {
    /// `seq` numbers the connection's requests; replies are written in `seq` order.
    Request { conn: usize, seq: u64, frame: Bytes },
}

pub enum Reply {
    /// A complete response frame, size prefix included.
    Frame(Bytes),
    /// The request gets no response (Produce with acks=0).
    NoResponse,
    /// Close the connection (undecodable request); the reason is logged.
    Close(String),
    /// The request is handled and only waits for durability (acks=all Produce): the
    /// connection may hand its next request to a worker; this request's response follows
    /// later under the same sequence number. Appends stay in request order because the next
    /// request starts only after this one's append.
    Parked,
}

/// A reply for connection `.0`, request sequence number `.1`.
pub type ReplyMsg = (usize, u64, Reply);

/// A parked request, re-evaluated when an event or its deadline arrives.
pub struct DelayedOp {
    pub conn: usize,
    pub seq: u64,
    pub api_version: i16,
    pub header: RequestHeader,
    pub deadline: Instant,
    pub kind: handlers::Delayed,
}

pub fn spawn_pool(
    n: usize,
    ctx: Arc<Ctx>,
    jobs: Receiver<Job>,
    retries: Receiver<DelayedOp>,
    replies: Sender<ReplyMsg>,
    waker: Arc<Waker>,
) -> Result<Vec<std::thread::JoinHandle<()>>> {
    (0..n)
        .map(|i| {
            let (ctx, jobs, retries, replies, waker) = (
                Arc::clone(&ctx),
                jobs.clone(),
                retries.clone(),
                replies.clone(),
                Arc::clone(&waker),
            );
            std::thread::Builder::new()
                .name(format!("thorstream-worker-{i}"))
                .spawn(move || worker_loop(&ctx, &jobs, &retries, &replies, &waker))
                .map_err(|e| Error::InvalidConfig(format!("cannot start worker: {e}")))
        })
        .collect()
}

fn worker_loop(
    ctx: &Ctx,
    jobs: &Receiver<Job>,
    retries: &Receiver<DelayedOp>,
    replies: &Sender<ReplyMsg>,
    waker: &Waker,
) {
    loop {
        let (conn, seq, reply) = crossbeam_channel::select! {
            recv(jobs) -> job => match job {
                Ok(Job::Request { conn, seq, frame }) => {
                    ctx.queued_bytes.fetch_sub(frame.len(), std::sync::atomic::Ordering::AcqRel);
                    (conn, seq, handle_frame(ctx, conn, seq, frame))
                }
                Err(_) => return,
            },
            recv(retries) -> op => match op {
                Ok(op) => {
                    let (conn, seq) = (op.conn, op.seq);
                    (conn, seq, handle_delayed(ctx, op))
                }
                Err(_) => return,
            },
        };
        let Some(reply) = reply else { continue };
        if replies.send((conn, seq, reply)).is_err() {
            return;
        }
        let _ = waker.wake();
    }
}

/// Handles one request frame. `None` means the request was parked.
pub fn handle_frame(ctx: &Ctx, conn: usize, seq: u64, frame: Bytes) -> Option<Reply> {
    let DecodedRequest {
        api,
        header,
        request,
    } = match decode_request(frame) {
        Ok(r) => r,
        Err(DecodeError::UnsupportedApiVersions { correlation_id }) => {
            // As Kafka: answer v0 with UNSUPPORTED_VERSION and our ranges so the client retries.
            let body = handlers::api_versions::response(35);
            return Some(encode_reply(
                correlation_id,
                0,
                &ResponseKind::ApiVersions(body),
                0,
            ));
        }
        Err(DecodeError::Close(why)) => return Some(Reply::Close(why)),
    };
    let outcome = handlers::dispatch(ctx, &header, request);
    finish(ctx, (conn, seq), api, header, outcome, true)
}

fn handle_delayed(ctx: &Ctx, op: DelayedOp) -> Option<Reply> {
    let api = ApiKey::try_from(op.header.request_api_key).ok()?;
    let DelayedOp {
        conn,
        seq,
        header,
        deadline,
        kind,
        ..
    } = op;
    let outcome = handlers::retry(ctx, &header, kind, deadline);
    finish(ctx, (conn, seq), api, header, outcome, false)
}

/// Turns a handler's outcome into the reply for request `seq` of `conn`. `first` is false when
/// re-evaluating a parked request (its `Parked` notice was already sent).
fn finish(
    ctx: &Ctx,
    (conn, seq): (usize, u64),
    api: ApiKey,
    header: RequestHeader,
    outcome: Outcome,
    first: bool,
) -> Option<Reply> {
    let version = header.request_api_version;
    match outcome {
        Outcome::Respond(body) => Some(encode_reply(
            header.correlation_id,
            api.response_header_version(version),
            &body,
            version,
        )),
        Outcome::NoResponse => Some(Reply::NoResponse),
        Outcome::Close(why) => Some(Reply::Close(why)),
        Outcome::Park {
            kind,
            deadline,
            keys,
            seen,
        } => {
            // Only a Produce waiting for durability frees its connection for the next request:
            // a parked Fetch or group request holds it, as in Kafka.
            let pipelined = first && matches!(kind, handlers::Delayed::Produce(_));
            let op = DelayedOp {
                conn,
                seq,
                api_version: version,
                header,
                deadline,
                kind,
            };
            ctx.purgatory.park(op, keys, &seen);
            pipelined.then_some(Reply::Parked)
        }
    }
}

/// Encodes a response frame: size prefix, response header, body.
pub fn encode_reply(
    correlation_id: i32,
    header_version: i16,
    body: &ResponseKind,
    version: i16,
) -> Reply {
    // Sized up front: a Fetch response is mostly stored batches, and growing a multi-megabyte
    // buffer by doubling copies it several times and touches fresh pages each time.
    let mut buf = BytesMut::with_capacity(size_hint(body));
    buf.put_i32(0);
    let header = ResponseHeader::default().with_correlation_id(correlation_id);
    if let Err(e) = header.encode(&mut buf, header_version) {
        return Reply::Close(format!("cannot encode response header: {e}"));
    }
    if let Err(e) = body.encode(&mut buf, version) {
        return Reply::Close(format!("cannot encode response: {e}"));
    }
    let len = (buf.len() - 4) as i32;
    buf[0..4].copy_from_slice(&len.to_be_bytes());
    Reply::Frame(buf.freeze())
}

/// Bytes to reserve for a response: the record data of a Fetch plus room for the fields.
fn size_hint(body: &ResponseKind) -> usize {
    const FIELDS: usize = 256;
    const PER_PARTITION: usize = 64;
    match body {
        ResponseKind::Fetch(f) => f
            .responses
            .iter()
            .flat_map(|t| t.partitions.iter())
            .map(|p| PER_PARTITION + p.records.as_ref().map_or(0, |r| r.len()))
            .sum::<usize>()
            .saturating_add(FIELDS),
        _ => FIELDS,
    }
}
