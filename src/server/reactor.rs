//! The reactor: one thread, one mio `Poll`. Accepts, reads and frames, hands complete
//! requests to the workers (a job of a connection's consecutive requests at a time, acks=all
//! Produce pipelined; see connection.rs), writes replies back.
//! Everything here is non-blocking; framing and request handling are calls out of the loop.
//!
//! Tokens: `WAKER` is 0, listener `i` (its index in `ServerConfig::listeners`) is `1 + i`, and
//! connections take the tokens after the listeners. A connection accepted on a TLS listener
//! gets a rustls transport (`transport.rs`) whose handshake runs from the same readiness
//! events as its requests.

use std::cmp::Reverse;
use std::collections::{BTreeSet, BinaryHeap, HashMap};
use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use crossbeam_channel::{Receiver, Sender, TrySendError};
use mio::net::TcpListener;
use mio::{Events, Interest, Poll, Token, Waker};

use super::ServerConfig;
use super::connection::{Connection, ReadOutcome, read_chunk_bytes};
use super::encode::{Reply, ReplyMsg};
use super::handlers::Ctx;
use super::session::ConnSession;
use super::transport::Transport;
use super::worker::{self, Job};
use crate::broker::Broker;
use crate::broker::wait::Scope;
use crate::error::{Error, Result};

const WAKER: Token = Token(0);
const FIRST_LISTENER_TOKEN: usize = 1;
use crate::limits::SHUTDOWN_DRAIN_MS;

use crate::limits::ACCEPT_RETRY_MS;

pub struct Reactor {
    poll: Poll,
    /// In `ServerConfig::listeners` order.
    listeners: Vec<TcpListener>,
    /// The TLS settings of the SSL and SASL_SSL listeners (`Some` if there is one).
    tls: Option<Arc<rustls::ServerConfig>>,
    waker: Arc<Waker>,
    conns: HashMap<usize, Connection>,
    next_token: usize,
    job_tx: Option<Sender<Job>>,
    reply_rx: Receiver<ReplyMsg>,
    /// Connections with a request that could not be queued (job queue full).
    backlog: BTreeSet<usize>,
    workers: Vec<std::thread::JoinHandle<()>>,
    broker: Arc<Broker>,
    /// This server's scope in the broker's wait set.
    scope: Scope,
    config: ServerConfig,
    stop: Arc<AtomicBool>,
    queued_bytes: Arc<AtomicUsize>,
    per_ip: HashMap<IpAddr, usize>,
    next_idle_check: Instant,
    /// Set when `accept` failed for want of a descriptor (EMFILE/ENFILE) or memory: the
    /// refused connections wait in the kernel's backlog, and the listener, edge-triggered,
    /// will not report them again. Accepting is retried at this time or when a connection
    /// closes, whichever is first.
    accept_retry_at: Option<Instant>,
    /// SASL deadlines, earliest first: a connection's authentication deadline
    /// (`authentication_timeout_ms` after accept) and a failed login's held answer. An entry
    /// of a connection gone since is skipped (tokens are never reused).
    sasl_deadlines: BinaryHeap<Reverse<(Instant, usize)>>,
}

impl Reactor {
    pub fn new(
        mut listeners: Vec<TcpListener>,
        tls: Option<Arc<rustls::ServerConfig>>,
        broker: Arc<Broker>,
        config: ServerConfig,
        stop: Arc<AtomicBool>,
    ) -> Result<Reactor> {
        let io = |e: std::io::Error| Error::InvalidConfig(format!("reactor setup: {e}"));
        let poll = Poll::new().map_err(io)?;
        for (i, listener) in listeners.iter_mut().enumerate() {
            poll.registry()
                .register(
                    listener,
                    Token(FIRST_LISTENER_TOKEN + i),
                    Interest::READABLE,
                )
                .map_err(io)?;
        }
        let waker = Arc::new(Waker::new(poll.registry(), WAKER).map_err(io)?);
        let (job_tx, job_rx) = crossbeam_channel::bounded(config.job_queue_len_max.max(1));
        // Unbounded channels, bounded by construction rather than by the channel (a bounded
        // crossbeam channel allocates its whole capacity up front): a connection has at most
        // `PIPELINED_MAX` requests outstanding, each answered once (plus one `Parked` notice),
        // and a parked request comes back through `retry` exactly once.
        let (reply_tx, reply_rx) = crossbeam_channel::unbounded();
        let (retry_tx, retry_rx) = crossbeam_channel::unbounded();
        let scope = broker.waits().new_scope();
        let queued_bytes = Arc::new(AtomicUsize::new(0));
        let ctx = Arc::new(Ctx {
            broker: Arc::clone(&broker),
            config: config.clone(),
            scope,
            retry_tx,
            queued_bytes: Arc::clone(&queued_bytes),
        });
        let workers = worker::spawn_pool(
            config.workers.max(1),
            ctx,
            job_rx,
            retry_rx,
            reply_tx,
            Arc::clone(&waker),
        )?;
        Ok(Reactor {
            poll,
            next_token: FIRST_LISTENER_TOKEN + listeners.len(),
            listeners,
            tls,
            waker,
            conns: HashMap::new(),
            job_tx: Some(job_tx),
            reply_rx,
            backlog: BTreeSet::new(),
            workers,
            broker,
            scope,
            next_idle_check: Instant::now() + idle_check_interval(&config),
            config,
            stop,
            queued_bytes,
            per_ip: HashMap::new(),
            accept_retry_at: None,
            sasl_deadlines: BinaryHeap::new(),
        })
    }

    pub fn waker(&self) -> Arc<Waker> {
        Arc::clone(&self.waker)
    }

    pub fn run(mut self) {
        let mut events = Events::with_capacity(1024);
        let mut scratch = vec![0u8; read_chunk_bytes()];
        let mut draining_since: Option<Instant> = None;
        loop {
            let until_idle_check = self
                .next_idle_check
                .saturating_duration_since(Instant::now());
            let timeout = if self.backlog.is_empty() {
                Some(until_idle_check)
            } else {
                Some(Duration::from_millis(2).min(until_idle_check))
            };
            let timeout = match (draining_since, self.accept_retry_at) {
                (Some(_), _) => Some(Duration::from_millis(50)),
                (None, Some(at)) => {
                    timeout.map(|t| t.min(at.saturating_duration_since(Instant::now())))
                }
                (None, None) => timeout,
            };
            let timeout = match self.sasl_deadlines.peek() {
                Some(Reverse((at, _))) => {
                    timeout.map(|t| t.min(at.saturating_duration_since(Instant::now())))
                }
                None => timeout,
            };
            if let Err(e) = self.poll.poll(&mut events, timeout)
                && e.kind() != std::io::ErrorKind::Interrupted
            {
                log::error!("reactor poll failed: {e}");
                break;
            }
            for ev in events.iter() {
                match ev.token() {
                    WAKER => {}
                    Token(t) if t < FIRST_LISTENER_TOKEN + self.listeners.len() => {
                        if draining_since.is_none() && self.accept(t - FIRST_LISTENER_TOKEN) {
                            self.accept_retry_at =
                                Some(Instant::now() + Duration::from_millis(ACCEPT_RETRY_MS));
                        }
                    }
                    Token(t) => {
                        if ev.is_readable() || ev.is_read_closed() {
                            self.on_readable(t, &mut scratch);
                        }
                        if ev.is_writable() {
                            self.on_writable(t);
                        }
                    }
                }
            }
            self.drain_replies(&mut scratch);
            self.fire_sasl_deadlines();
            if let Some(at) = self.accept_retry_at
                && draining_since.is_none()
                && Instant::now() >= at
            {
                let mut stalled = false;
                for i in 0..self.listeners.len() {
                    stalled |= self.accept(i);
                }
                if stalled {
                    self.accept_retry_at =
                        Some(Instant::now() + Duration::from_millis(ACCEPT_RETRY_MS));
                } else {
                    self.accept_retry_at = None;
                    log::info!("accepting connections again");
                }
            }
            if Instant::now() >= self.next_idle_check {
                self.close_idle();
            }
            let backlog: Vec<usize> = std::mem::take(&mut self.backlog).into_iter().collect();
            for t in backlog {
                self.dispatch(t, &mut scratch);
            }
            if self.stop.load(Ordering::Acquire) && draining_since.is_none() {
                log::info!("server stopping: no new connections; finishing in-flight requests");
                for listener in &mut self.listeners {
                    let _ = self.poll.registry().deregister(listener);
                }
                for c in self.conns.values_mut() {
                    c.read_closed = true;
                    c.stop_requests();
                }
                // Parked requests answer now with what they have.
                self.broker.waits().shutdown(self.scope);
                draining_since = Some(Instant::now());
            }
            if let Some(since) = draining_since {
                let busy = self
                    .conns
                    .values()
                    .any(|c| c.in_flight() || c.has_pending_write());
                if !busy || since.elapsed() > Duration::from_millis(SHUTDOWN_DRAIN_MS) {
                    break;
                }
            }
        }
        self.job_tx = None;
        for w in self.workers.drain(..) {
            let _ = w.join();
        }
        log::info!("server stopped");
    }

    /// Accepts what listener `index` has queued. Returns true if accepting stopped for want
    /// of descriptors or memory (EMFILE/ENFILE/ENOMEM): the caller schedules a retry, since
    /// the edge-triggered listener will not report the connections left queued again.
    fn accept(&mut self, index: usize) -> bool {
        let Some(protocol) = self.config.listeners.get(index).map(|l| l.protocol) else {
            return false;
        };
        loop {
            let Some(listener) = self.listeners.get(index) else {
                return false;
            };
            match listener.accept() {
                Ok((mut stream, peer)) => {
                    if self.conns.len() >= self.config.connections_max {
                        log::warn!("refusing connection from {peer}: {} open", self.conns.len());
                        continue;
                    }
                    let from_ip = self.per_ip.get(&peer.ip()).copied().unwrap_or(0);
                    if from_ip >= self.config.connections_per_ip_max {
                        log::warn!(
                            "refusing connection from {peer}: {from_ip} open from that address"
                        );
                        continue;
                    }
                    let _ = stream.set_nodelay(true);
                    let token = self.next_token;
                    if let Err(e) = self.poll.registry().register(
                        &mut stream,
                        Token(token),
                        Interest::READABLE | Interest::WRITABLE,
                    ) {
                        log::warn!("cannot register connection from {peer}: {e}");
                        continue;
                    }
                    let transport = match (protocol.uses_tls(), &self.tls) {
                        (false, _) => Transport::Plain(stream),
                        (true, Some(tls)) => match Transport::tls(stream, tls) {
                            Ok(t) => t,
                            Err(e) => {
                                log::warn!("cannot start TLS with {peer}: {e}");
                                continue;
                            }
                        },
                        // `server::start` refuses a TLS listener without TLS settings.
                        (true, None) => continue,
                    };
                    self.next_token += 1;
                    log::debug!("accepted {peer} on listener {index} as connection {token}");
                    *self.per_ip.entry(peer.ip()).or_insert(0) += 1;
                    // Before authentication: a small frame limit and a deadline.
                    let frame_bytes_max = if protocol.uses_sasl() {
                        let at = Instant::now()
                            + Duration::from_millis(self.config.authentication_timeout_ms);
                        self.sasl_deadlines.push(Reverse((at, token)));
                        self.config
                            .unauthenticated_request_bytes_max
                            .min(self.config.request_bytes_max)
                    } else {
                        self.config.request_bytes_max
                    };
                    self.conns.insert(
                        token,
                        Connection::new(
                            transport,
                            peer,
                            Arc::new(ConnSession::new(index, protocol)),
                            frame_bytes_max,
                        ),
                    );
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return false,
                // A queued connection the client reset: skip it, take the next one.
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::Interrupted | std::io::ErrorKind::ConnectionAborted
                    ) =>
                {
                    continue;
                }
                Err(e) => {
                    // Out of descriptors or memory: stop for now, keep serving the open
                    // connections, and come back to the backlog soon; nothing else would wake
                    // us for connections already queued.
                    if self.accept_retry_at.is_none() {
                        log::warn!(
                            "accept failed with {} connections open: {e}; retrying",
                            self.conns.len()
                        );
                    }
                    return true;
                }
            }
        }
    }

    fn on_readable(&mut self, token: usize, scratch: &mut [u8]) {
        let Some(conn) = self.conns.get_mut(&token) else {
            return;
        };
        match conn.read_available(scratch) {
            ReadOutcome::Open => {}
            ReadOutcome::Closed => {
                if !conn.in_flight() && conn.queued.is_empty() && !conn.has_pending_write() {
                    self.close(token, None);
                    return;
                }
            }
            ReadOutcome::Error(e) => {
                self.close(token, Some(e));
                return;
            }
        }
        self.dispatch(token, scratch);
    }

    fn on_writable(&mut self, token: usize) {
        let Some(conn) = self.conns.get_mut(&token) else {
            return;
        };
        if let Err(e) = conn.flush_writes() {
            self.close(token, Some(e));
            return;
        }
        self.maybe_close_finished(token);
    }

    fn maybe_close_finished(&mut self, token: usize) {
        let Some(conn) = self.conns.get(&token) else {
            return;
        };
        let done = !conn.in_flight()
            && !conn.has_pending_write()
            && conn.queued.is_empty()
            && conn.held_reply.is_none();
        if done && (conn.read_closed || conn.close_after_write) {
            self.close(token, None);
        }
    }

    /// Hands the connection's next request to a worker if none is in flight.
    fn dispatch(&mut self, token: usize, scratch: &mut [u8]) {
        let Some(job_tx) = &self.job_tx else { return };
        let Some(conn) = self.conns.get_mut(&token) else {
            return;
        };
        if conn.close_after_write {
            return;
        }
        let queue_full =
            self.queued_bytes.load(Ordering::Acquire) >= self.config.job_queue_bytes_max;
        if queue_full && !conn.in_flight() && !conn.queued.is_empty() {
            self.backlog.insert(token);
            return;
        }
        if let Some((first_seq, frames)) = conn.next_requests() {
            let len: usize = frames.iter().map(Bytes::len).sum();
            self.queued_bytes.fetch_add(len, Ordering::AcqRel);
            match job_tx.try_send(Job::Requests {
                conn: token,
                first_seq,
                frames,
                peer: conn.peer.ip(),
                session: Arc::clone(&conn.session),
            }) {
                Ok(()) => {}
                Err(TrySendError::Full(Job::Requests { frames, .. })) => {
                    self.queued_bytes.fetch_sub(len, Ordering::AcqRel);
                    conn.unget_requests(first_seq, frames);
                    self.backlog.insert(token);
                    return;
                }
                Err(_) => {
                    self.queued_bytes.fetch_sub(len, Ordering::AcqRel);
                    self.close(token, Some("worker pool stopped".into()));
                    return;
                }
            }
        }
        // Reading may have paused on the queue limit; resume now that the queue moved.
        if conn.read_paused
            && conn.wants_read()
            && let ReadOutcome::Error(e) = conn.read_available(scratch)
        {
            self.close(token, Some(e));
        }
    }

    fn drain_replies(&mut self, scratch: &mut [u8]) {
        while let Ok(msg) = self.reply_rx.try_recv() {
            let (token, seq, reply) = match msg {
                ReplyMsg::Reply { conn, seq, reply } => (conn, seq, reply),
                ReplyMsg::Unrun {
                    conn: token,
                    from_seq,
                    frames,
                } => {
                    let Some(conn) = self.conns.get_mut(&token) else {
                        continue;
                    };
                    conn.unrun(from_seq, frames);
                    self.dispatch(token, scratch);
                    self.maybe_close_finished(token);
                    continue;
                }
            };
            let Some(conn) = self.conns.get_mut(&token) else {
                continue;
            };
            for reply in conn.settle(seq, reply) {
                if conn.close_after_write {
                    break;
                }
                match reply {
                    Reply::Frame(chunks) => conn.queue_write(chunks),
                    Reply::FetchFrame(chunks) => {
                        if let Err(e) = conn.queue_chunks(chunks) {
                            log::warn!("closing connection from {}: {e}", conn.peer);
                            conn.close_after_write = true;
                        }
                    }
                    Reply::NoResponse | Reply::Parked => {}
                    Reply::Close(why) => {
                        log::warn!("closing connection from {}: {why}", conn.peer);
                        conn.close_after_write = true;
                    }
                    Reply::FrameThenClose { chunks, delay_ms } => {
                        let at = Instant::now() + Duration::from_millis(delay_ms);
                        conn.held_reply = Some((at, chunks));
                        conn.close_after_write = true;
                        self.sasl_deadlines.push(Reverse((at, token)));
                    }
                }
            }
            if conn.session.is_authenticated() {
                conn.decoder
                    .set_frame_bytes_max(self.config.request_bytes_max);
            }
            if let Err(e) = conn.flush_writes() {
                self.close(token, Some(e));
                continue;
            }
            self.dispatch(token, scratch);
            self.maybe_close_finished(token);
        }
    }

    fn close(&mut self, token: usize, error: Option<String>) {
        if let Some(mut conn) = self.conns.remove(&token) {
            if let Some(n) = self.per_ip.get_mut(&conn.peer.ip()) {
                *n -= 1;
                if *n == 0 {
                    self.per_ip.remove(&conn.peer.ip());
                }
            }
            if let Some(e) = error {
                log::info!("connection from {} closed: {e}", conn.peer);
            }
            let _ = self.poll.registry().deregister(conn.transport.socket());
            // Its descriptor is free once `conn` drops here: a refused accept can go now.
            if self.accept_retry_at.is_some() {
                self.accept_retry_at = Some(Instant::now());
            }
        }
        self.backlog.remove(&token);
    }

    /// Writes the held answers of failed logins that are due (then closes), and closes SASL
    /// connections still unauthenticated at their authentication deadline.
    fn fire_sasl_deadlines(&mut self) {
        let now = Instant::now();
        while let Some(&Reverse((at, token))) = self.sasl_deadlines.peek() {
            if at > now {
                break;
            }
            self.sasl_deadlines.pop();
            let Some(conn) = self.conns.get_mut(&token) else {
                continue;
            };
            match conn.held_reply.take() {
                Some((due, chunks)) if due <= now => {
                    conn.queue_write(chunks);
                    if let Err(e) = conn.flush_writes() {
                        self.close(token, Some(e));
                        continue;
                    }
                    self.maybe_close_finished(token);
                }
                // Its own entry comes later.
                Some(held) => conn.held_reply = Some(held),
                None if !conn.session.is_authenticated() && !conn.close_after_write => {
                    self.close(
                        token,
                        Some(
                            "SASL authentication not completed within authentication_timeout_ms"
                                .into(),
                        ),
                    );
                }
                None => {}
            }
        }
    }

    /// Closes connections idle longer than `connection_idle_ms` (nothing in flight, nothing
    /// buffered, no bytes moved), and connections whose partial request has been arriving for
    /// longer than `request_read_timeout_ms` (or whose TLS handshake has been running that long).
    fn close_idle(&mut self) {
        let now = Instant::now();
        self.next_idle_check = now + idle_check_interval(&self.config);
        let idle = Duration::from_millis(self.config.connection_idle_ms);
        let read_timeout = Duration::from_millis(self.config.request_read_timeout_ms);
        let doomed: Vec<(usize, &'static str)> = self
            .conns
            .iter()
            .filter_map(|(&t, c)| {
                // Not while reading is paused by our own backpressure: then the client is
                // not the one holding the frame back.
                if c.wants_read()
                    && c.partial_since
                        .is_some_and(|since| now.duration_since(since) >= read_timeout)
                {
                    let why = match c.transport.is_handshaking() {
                        true => "TLS handshake not completed in time",
                        false => "request not received in time",
                    };
                    return Some((t, why));
                }
                let idle = !c.in_flight()
                    && c.queued.is_empty()
                    && !c.has_pending_write()
                    && now.duration_since(c.last_active) >= idle;
                idle.then_some((t, "idle timeout"))
            })
            .collect();
        for (t, why) in doomed {
            self.close(t, Some(why.into()));
        }
    }
}

/// How often idle connections are looked for: a tenth of the shorter timeout, within
/// [10 ms, 30 s].
fn idle_check_interval(config: &ServerConfig) -> Duration {
    let shortest = config
        .connection_idle_ms
        .min(config.request_read_timeout_ms);
    Duration::from_millis((shortest / 10).clamp(10, 30_000))
}
