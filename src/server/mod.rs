//! The Kafka wire server: one mio reactor thread and a fixed worker pool in front of a shared
//! `Broker`, whose wait set holds the requests that must wait.
//!
//! Data flow: reactor reads (decrypting TLS connections, `transport.rs`) and frames →
//! `Job::Requests` (a connection's consecutive requests) on the bounded job channel → a worker
//! decodes each, runs the handler against the broker, encodes → `Reply` on the reply channel + `mio::Waker` → reactor writes (encrypting). A request that must wait (long-poll Fetch, acks=all produce)
//! is parked in the broker's wait set and re-run by a worker when a watched partition's high
//! watermark moves, its group changes, or its deadline passes; no worker ever sleeps on it.
//!
//! Invariant: at most one request per connection is being handled at any time, so responses
//! leave in request order and one producer's batches reach a partition in the order sent.

pub(crate) mod connection;
pub(crate) mod encode;
pub(crate) mod handlers;
pub mod listener;
pub(crate) mod out_chunk;
pub(crate) mod reactor;
pub mod session;
pub mod tls;
pub(crate) mod transport;
pub(crate) mod worker;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;

use crate::broker::Broker;
use crate::error::{Error, Result};
pub use crate::security::{Principal, SaslMechanism, SecurityProtocol};
pub use listener::ListenerConfig;

/// Settings of the network face.
#[derive(Debug, Clone, PartialEq)]
pub struct ServerConfig {
    /// Where to accept connections, and how each listener protects them; at least one. The
    /// first is the one `ServerHandle::local_addr` names.
    pub listeners: Vec<ListenerConfig>,
    /// Certificate and key for the SSL and SASL_SSL listeners (and the CA that turns on mTLS).
    pub tls: Option<TlsFiles>,
    /// The mechanisms SASL listeners offer (Kafka's `sasl.enabled.mechanisms`).
    pub sasl_mechanisms: Vec<SaslMechanism>,
    /// ACL authorization (`--authorizer acl`); `None`: everyone may do everything.
    pub authorizer: Option<AuthorizerConfig>,
    /// A SASL session's lifetime; past it the client must re-authenticate (KIP-368) or the
    /// connection is closed at its next request. 0: no limit (Kafka's
    /// `connections.max.reauth.ms`, default 0).
    pub connections_max_reauth_ms: u64,
    /// A failed authentication is answered, and the connection closed, this long after it
    /// (Kafka's `connection.failed.authentication.delay.ms`, 100).
    pub failed_authentication_delay_ms: u64,
    /// A connection on a SASL listener must authenticate within this long of being accepted
    /// (TLS handshake included) or it is closed. Kafka has no such bound.
    pub authentication_timeout_ms: u64,
    /// Largest frame accepted before authentication (Kafka's `sasl.server.max.receive.size`,
    /// 524288).
    pub unauthenticated_request_bytes_max: usize,
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
    /// One PLAINTEXT listener on `listen`, no TLS, SASL or ACLs.
    pub fn new(listen: SocketAddr) -> Self {
        ServerConfig {
            listeners: vec![ListenerConfig::new(SecurityProtocol::Plaintext, listen)],
            tls: None,
            sasl_mechanisms: SaslMechanism::ALL.to_vec(),
            authorizer: None,
            connections_max_reauth_ms: 0,
            failed_authentication_delay_ms: 100,
            authentication_timeout_ms: 10_000,
            unauthenticated_request_bytes_max: 524_288,
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

/// PEM files of the TLS listeners.
#[derive(Debug, Clone, PartialEq)]
pub struct TlsFiles {
    /// The certificate chain, leaf first.
    pub cert: PathBuf,
    pub key: PathBuf,
    /// CA certificates client certificates must chain to; `Some` requires a client certificate
    /// on every TLS listener (mTLS), whose subject CN becomes the principal `User:<CN>`.
    pub client_ca: Option<PathBuf>,
}

/// ACL authorization settings (Kafka's StandardAuthorizer).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct AuthorizerConfig {
    /// Principals allowed everything (Kafka's `super.users`).
    pub super_users: Vec<Principal>,
    /// Allow a request on a resource no ACL matches (Kafka's
    /// `allow.everyone.if.no.acl.found`, default false).
    pub allow_everyone_if_no_acl_found: bool,
}

pub(crate) fn hostname() -> Option<String> {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
}

/// A running server. `shutdown` stops accepting, lets in-flight requests finish, and joins.
pub struct ServerHandle {
    /// The first listener's bound address.
    pub local_addr: SocketAddr,
    /// Every listener's bound address, in `ServerConfig::listeners` order.
    pub local_addrs: Vec<SocketAddr>,
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

/// Binds the listeners and starts the reactor and workers. Fails if a listener cannot be
/// bound, or a TLS listener has no (loadable) certificate and key.
pub fn start(broker: Arc<Broker>, config: ServerConfig) -> Result<ServerHandle> {
    encode::init_file_stand_ins();
    let mut config = config;
    if config.listeners.is_empty() {
        return Err(Error::InvalidConfig("no listener configured".into()));
    }
    let tls = match (
        config.listeners.iter().find(|l| l.protocol.uses_tls()),
        &config.tls,
    ) {
        (None, _) => None,
        (Some(_), Some(files)) => Some(tls::server_config(files)?),
        (Some(l), None) => {
            return Err(Error::InvalidConfig(format!(
                "listener {} ({}) needs --ssl-cert and --ssl-key",
                l.name, l.protocol
            )));
        }
    };
    let mut listeners = Vec::with_capacity(config.listeners.len());
    let mut local_addrs = Vec::with_capacity(config.listeners.len());
    for l in &mut config.listeners {
        let listener = mio::net::TcpListener::bind(l.addr).map_err(|e| {
            Error::InvalidConfig(format!("cannot listen on {} ({}): {e}", l.addr, l.name))
        })?;
        let local_addr = listener
            .local_addr()
            .map_err(|e| Error::InvalidConfig(format!("listener address: {e}")))?;
        if l.advertised_port == 0 {
            l.advertised_port = local_addr.port();
        }
        listeners.push(listener);
        local_addrs.push(local_addr);
    }
    let stop = Arc::new(AtomicBool::new(false));
    let reactor = reactor::Reactor::new(listeners, tls, broker, config, Arc::clone(&stop))?;
    let waker = reactor.waker();
    let handle = std::thread::Builder::new()
        .name("thorstream-reactor".into())
        .spawn(move || reactor.run())
        .map_err(|e| Error::InvalidConfig(format!("cannot start reactor: {e}")))?;
    Ok(ServerHandle {
        local_addr: local_addrs[0],
        local_addrs,
        stop,
        waker,
        reactor: Some(handle),
    })
}
