//! The Kafka wire server: one mio reactor thread and a fixed worker pool in front of a shared
//! `Broker`, whose wait set holds the requests that must wait.
//!
//! Data flow: reactor reads and frames → `Job::Request` on the bounded job channel → a worker
//! decodes, runs the handler against the broker, encodes → `Reply` on the reply channel +
//! `mio::Waker` → reactor writes. A request that must wait (long-poll Fetch, acks=all produce)
//! is parked in the broker's wait set and re-run by a worker when a watched partition's high
//! watermark moves, its group changes, or its deadline passes; no worker ever sleeps on it.
//!
//! Invariant: at most one request per connection is being handled at any time, so responses
//! leave in request order and one producer's batches reach a partition in the order sent.

pub(crate) mod connection;
pub(crate) mod encode;
pub(crate) mod handlers;
pub(crate) mod reactor;
pub(crate) mod worker;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;

use crate::broker::Broker;
use crate::error::{Error, Result};

/// Settings of the network face.
#[derive(Debug, Clone, PartialEq)]
pub struct ServerConfig {
    pub listen: SocketAddr,
    /// Host and port returned in Metadata; defaults to the listen address (or the host name
    /// when listening on 0.0.0.0).
    pub advertised_host: String,
    pub advertised_port: u16,
    pub workers: usize,
    /// Largest request frame accepted (Kafka's `socket.request.max.bytes`, 100 MiB).
    pub request_bytes_max: usize,
    /// Requests waiting for a worker; past this the reactor stops reading (backpressure).
    pub job_queue_len_max: usize,
    /// Bytes of requests queued to workers; past this the reactor stops reading (Kafka's
    /// `queued.max.request.bytes`).
    pub job_queue_bytes_max: usize,
    /// Open connections in total; further ones are accepted and closed at once.
    pub connections_max: usize,
    /// Open connections per client IP (Kafka's `max.connections.per.ip`, unlimited by default).
    pub connections_per_ip_max: usize,
    /// Connections with no traffic for this long are closed (Kafka's
    /// `connections.max.idle.ms`, 10 minutes).
    pub connection_idle_ms: u64,
    /// A request must arrive whole within this long of its first byte, or the connection is
    /// closed: a client trickling a frame a byte at a time would otherwise hold its connection
    /// (and up to `request_bytes_max` of buffer) forever, since every byte resets the idle
    /// timer. Kafka has no such limit; 60 s allows 100 MiB requests at ~2 MB/s.
    pub request_read_timeout_ms: u64,
    pub cluster_id: String,
}

impl ServerConfig {
    pub fn new(listen: SocketAddr) -> Self {
        let advertised_host = if listen.ip().is_unspecified() {
            hostname().unwrap_or_else(|| "localhost".to_string())
        } else {
            listen.ip().to_string()
        };
        ServerConfig {
            listen,
            advertised_host,
            advertised_port: listen.port(),
            workers: std::thread::available_parallelism().map_or(2, |n| n.get()),
            request_bytes_max: crate::limits::DEFAULT_REQUEST_BYTES_MAX,
            job_queue_len_max: crate::limits::DEFAULT_JOB_QUEUE_LEN_MAX,
            job_queue_bytes_max: crate::limits::DEFAULT_JOB_QUEUE_BYTES_MAX,
            connections_max: 10_000,
            connections_per_ip_max: usize::MAX,
            connection_idle_ms: 600_000,
            request_read_timeout_ms: 60_000,
            cluster_id: "thorstream-cluster".to_string(),
        }
    }
}

fn hostname() -> Option<String> {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
}

/// A running server. `shutdown` stops accepting, lets in-flight requests finish, and joins.
pub struct ServerHandle {
    pub local_addr: SocketAddr,
    stop: Arc<AtomicBool>,
    waker: Arc<mio::Waker>,
    reactor: Option<JoinHandle<()>>,
}

impl ServerHandle {
    pub fn shutdown(mut self) {
        self.stop_and_join();
    }

    fn stop_and_join(&mut self) {
        self.stop.store(true, Ordering::Release);
        let _ = self.waker.wake();
        if let Some(r) = self.reactor.take() {
            let _ = r.join();
        }
    }

    /// Blocks until the reactor exits (after `shutdown` from another thread or a signal).
    pub fn join(mut self) {
        if let Some(r) = self.reactor.take() {
            let _ = r.join();
        }
    }

    /// A flag that, once set (and the waker woken), stops the server; for signal handlers.
    pub fn stopper(&self) -> (Arc<AtomicBool>, Arc<mio::Waker>) {
        (Arc::clone(&self.stop), Arc::clone(&self.waker))
    }
}

impl Drop for ServerHandle {
    fn drop(&mut self) {
        self.stop_and_join();
    }
}

/// Binds the listener and starts the reactor and workers.
pub fn start(broker: Arc<Broker>, config: ServerConfig) -> Result<ServerHandle> {
    let listener = mio::net::TcpListener::bind(config.listen)
        .map_err(|e| Error::InvalidConfig(format!("cannot listen on {}: {e}", config.listen)))?;
    let local_addr = listener
        .local_addr()
        .map_err(|e| Error::InvalidConfig(format!("listener address: {e}")))?;
    let mut config = config;
    if config.advertised_port == 0 {
        config.advertised_port = local_addr.port();
    }
    let stop = Arc::new(AtomicBool::new(false));
    let reactor = reactor::Reactor::new(listener, broker, config, Arc::clone(&stop))?;
    let waker = reactor.waker();
    let handle = std::thread::Builder::new()
        .name("thorstream-reactor".into())
        .spawn(move || reactor.run())
        .map_err(|e| Error::InvalidConfig(format!("cannot start reactor: {e}")))?;
    Ok(ServerHandle {
        local_addr,
        stop,
        waker,
        reactor: Some(handle),
    })
}
