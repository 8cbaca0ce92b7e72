//! The worker pool: take a job (a connection's consecutive requests), and for each request
//! decode it, run its handler against the broker, encode the reply.
//! Workers never block on data, fsync or other clients: anything that must wait is parked in
//! the broker's wait set and comes back as a `DelayedOp` carrying why it was woken.
//!
//! Replies are frames made of chunks (`Reply::Frame`), encoded by `encode.rs`.

use std::net::IpAddr;
use std::sync::Arc;

use bytes::Bytes;
use crossbeam_channel::{Receiver, Sender};
use kafka_protocol::messages::{ApiKey, RequestHeader, RequestKind, ResponseKind};
use mio::Waker;

use super::encode::{Reply, ReplyMsg, encode_fetch_from_files, encode_reply};
use super::handlers::{self, Outcome};
use crate::broker::wait::Wake;
use crate::error::{Error, Result};
use crate::protocol::request::{DecodeError, DecodedRequest};
use handlers::table::decode_request;

/// Defined with the handlers (which all take it); named here too for the handler files
/// that still import it from here.
pub use super::handlers::Ctx;
use super::handlers::DelayedOp;
use super::session::{ConnSession, Gate};

pub enum Job {
    /// Requests `first_seq..first_seq + frames.len()` of a connection (its `seq` numbers them;
    /// replies are written in `seq` order), run in order by one worker.
    Requests {
        conn: usize,
        first_seq: u64,
        frames: Vec<Bytes>,
        /// The client's address (JoinGroup records it as the member's `client_host`).
        peer: IpAddr,
        /// The connection's security session (listener, principal, authentication state).
        session: Arc<ConnSession>,
    },
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
        let sent = crossbeam_channel::select! {
            recv(jobs) -> job => match job {
                Ok(Job::Requests { conn, first_seq, frames, peer, session }) => {
                    let bytes: usize = frames.iter().map(Bytes::len).sum();
                    ctx.queued_bytes.fetch_sub(bytes, std::sync::atomic::Ordering::AcqRel);
                    run_job(ctx, (conn, first_seq), frames, peer, &session, replies)
                }
                Err(_) => return,
            },
            recv(retries) -> op => match op {
                Ok(op) => {
                    let (conn, seq) = (op.conn, op.seq);
                    match handle_delayed(ctx, op) {
                        Some(reply) => replies.send(ReplyMsg::Reply { conn, seq, reply }).is_ok(),
                        None => continue,
                    }
                }
                Err(_) => return,
            },
        };
        if !sent {
            return;
        }
        // One wake-up of the reactor per job, after all of its replies.
        let _ = waker.wake();
    }
}

/// Runs a job's requests in order, sending each one's reply. Stops at a request parked holding
/// the connection, or one that closes it, and hands back the requests after it (dropped if the
/// connection is closing). Returns false if the reactor is gone.
fn run_job(
    ctx: &Ctx,
    (conn, first_seq): (usize, u64),
    frames: Vec<Bytes>,
    peer: IpAddr,
    session: &ConnSession,
    replies: &Sender<ReplyMsg>,
) -> bool {
    let job_end = first_seq + frames.len() as u64;
    let mut frames = frames.into_iter();
    let mut seq = first_seq;
    while let Some(frame) = frames.next() {
        let reply = handle_frame(ctx, conn, seq, frame, peer, session);
        let (stop, keep_rest) = match &reply {
            // Parked holding the connection: the rest waits for its answer.
            None => (true, true),
            // The connection closes: nothing after this request runs.
            Some(Reply::Close(_) | Reply::FrameThenClose { .. }) => (true, false),
            Some(_) => (false, false),
        };
        if let Some(reply) = reply
            && replies.send(ReplyMsg::Reply { conn, seq, reply }).is_err()
        {
            return false;
        }
        seq += 1;
        if stop {
            if seq == job_end {
                return true;
            }
            let frames = if keep_rest {
                frames.collect()
            } else {
                Vec::new()
            };
            return replies
                .send(ReplyMsg::Unrun {
                    conn,
                    from_seq: seq,
                    frames,
                })
                .is_ok();
        }
    }
    true
}

/// Handles one request frame. `None` means the request was parked.
pub fn handle_frame(
    ctx: &Ctx,
    conn: usize,
    seq: u64,
    frame: Bytes,
    peer: IpAddr,
    session: &ConnSession,
) -> Option<Reply> {
    if session.raw_tokens() {
        return Some(raw_sasl_token(ctx, &frame, session));
    }
    let DecodedRequest {
        api,
        header,
        request,
    } = match decode_request(frame) {
        Ok(r) => r,
        Err(DecodeError::UnsupportedApiVersions { correlation_id }) => {
            // As Kafka: answer v0 with UNSUPPORTED_VERSION and our ranges so the client retries.
            let body = handlers::api_versions::response(
                kafka_protocol::error::ResponseError::UnsupportedVersion.code(),
                handlers::table::supported_apis(),
            );
            return Some(encode_reply(
                correlation_id,
                0,
                &ResponseKind::ApiVersions(body),
                0,
            ));
        }
        Err(DecodeError::Close(why)) => return Some(Reply::Close(why)),
    };
    // The pre-authentication gate, then the SASL APIs on the session, the rest by the table.
    let now = std::time::Instant::now();
    if let Gate::Close(why) = session.gate(api, now) {
        return Some(Reply::Close(why));
    }
    let outcome = match request {
        RequestKind::SaslHandshake(r) => {
            handlers::sasl::handshake(ctx, header.request_api_version, r, session)
        }
        RequestKind::SaslAuthenticate(r) => handlers::sasl::authenticate(ctx, r, session, now),
        request => handlers::dispatch(ctx, &header, request, &session.caller(peer)),
    };
    finish(ctx, (conn, seq), api, header, outcome, true)
}

/// A frame after a SaslHandshake v0: a raw SASL token, answered with a raw token (its size
/// prefix, no response header), or the connection closed after the failure delay.
fn raw_sasl_token(ctx: &Ctx, token: &[u8], session: &ConnSession) -> Reply {
    match handlers::sasl::raw_token(ctx, token, session, std::time::Instant::now()) {
        handlers::sasl::RawToken::Reply(bytes) => match u32::try_from(bytes.len()) {
            Ok(len) => {
                let mut frame = Vec::with_capacity(4 + bytes.len());
                frame.extend_from_slice(&len.to_be_bytes());
                frame.extend_from_slice(&bytes);
                Reply::Frame(vec![Bytes::from(frame)])
            }
            Err(_) => Reply::Close("SASL token too large".into()),
        },
        handlers::sasl::RawToken::Fail { delay_ms, .. } => Reply::FrameThenClose {
            chunks: Vec::new(),
            delay_ms,
        },
    }
}

fn handle_delayed(ctx: &Ctx, op: DelayedOp) -> Option<Reply> {
    let api = ApiKey::try_from(op.header.request_api_key).ok()?;
    let DelayedOp {
        conn,
        seq,
        header,
        deadline,
        kind,
        woke,
        ..
    } = op;
    let outcome = handlers::retry(ctx, &header, kind, deadline, woke);
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
        Outcome::RespondFetch { body, files } => Some(encode_fetch_from_files(
            header.correlation_id,
            api.response_header_version(version),
            &body,
            version,
            files,
        )),
        Outcome::NoResponse => Some(Reply::NoResponse),
        Outcome::Close(why) => Some(Reply::Close(why)),
        Outcome::RespondThenClose { body, delay_ms } => Some(
            match encode_reply(
                header.correlation_id,
                api.response_header_version(version),
                &body,
                version,
            ) {
                Reply::Frame(chunks) => Reply::FrameThenClose { chunks, delay_ms },
                other => other,
            },
        ),
        Outcome::Park {
            kind,
            deadline,
            keys,
            seen,
        } => {
            // Only a Produce waiting for durability frees its connection for the next request:
            // a parked Fetch or group request holds it, as in Kafka.
            let pipelined = first && matches!(kind, handlers::Delayed::Produce(_));
            let mut op = DelayedOp {
                conn,
                seq,
                header,
                deadline,
                kind,
                woke: Wake::Event,
            };
            let tx = ctx.retry_tx.clone();
            let wake = Box::new(move |why| {
                op.woke = why;
                // The workers only stop after the reactor, which shuts this scope down first.
                let _ = tx.send(op);
            });
            ctx.broker
                .waits()
                .park(keys, &seen, deadline, ctx.scope, wake);
            pipelined.then_some(Reply::Parked)
        }
    }
}
