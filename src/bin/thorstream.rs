//! The `thorstream` server binary: a Kafka-protocol broker.
//!
//! Settings precedence: command-line flags, then environment (`THORSTREAM_ADDR`,
//! `THORSTREAM_DATA_DIR`), then the `--config` TOML file, then defaults.

/// mimalloc keeps freed memory for reuse: the reply and read buffers of large Fetch and Produce
/// requests are megabytes each, and glibc's malloc returns such blocks to the OS on free, so
/// every request paid page faults and page zeroing again (a third of the broker's CPU on the
/// consume benchmark). The library leaves the allocator to the embedding program.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::net::{SocketAddr, ToSocketAddrs};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use clap::{Parser, Subcommand};
use serde::Deserialize;
use thorstream::internals::security::{
    ScramCredential, ScramHash, UserChange, UserStore, check_credential, new_salt,
};
use thorstream::server::{self, AuthorizerConfig, Principal, SaslMechanism, ServerConfig};
use thorstream::{Broker, BrokerConfig, FsyncPolicy, LogIo};

/// Thorstream: a Kafka-compatible event streaming broker.
#[derive(Parser, Debug)]
#[command(version, about)]
struct Args {
    /// Address of the one PLAINTEXT listener (shorthand for --listeners PLAINTEXT://ADDR)
    /// [env: THORSTREAM_ADDR] [default: 0.0.0.0:9092]
    #[arg(long)]
    listen: Option<String>,
    /// Data directory [env: THORSTREAM_DATA_DIR] [default: ./data]
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// HOST:PORT returned to clients in Metadata [default: the listen address, or the host
    /// name when listening on 0.0.0.0]
    #[arg(long)]
    advertised_addr: Option<String>,
    /// Listeners, as Kafka's `listeners`: NAME://host:port[,...], NAME a security protocol
    /// (PLAINTEXT, SSL, SASL_PLAINTEXT, SASL_SSL) or mapped by --listener-security-protocol-map;
    /// an empty host binds every interface. Replaces --listen
    #[arg(long)]
    listeners: Option<String>,
    /// The addresses given to clients of each listener, as Kafka's `advertised.listeners`
    /// (NAME://host:port[,...]) [default: each listener's own address]
    #[arg(long)]
    advertised_listeners: Option<String>,
    /// Security protocols of listeners not named after one: NAME:PROTOCOL[,...]
    #[arg(long)]
    listener_security_protocol_map: Option<String>,
    /// Certificate chain (PEM, leaf first) of the SSL and SASL_SSL listeners
    #[arg(long)]
    ssl_cert: Option<PathBuf>,
    /// Private key (PEM: PKCS#8, PKCS#1 or SEC1) of --ssl-cert
    #[arg(long)]
    ssl_key: Option<PathBuf>,
    /// CA certificates (PEM) that client certificates must chain to: turns on mTLS (a client
    /// certificate is required on every TLS listener; principal User:<subject CN>)
    #[arg(long)]
    ssl_client_ca: Option<PathBuf>,
    /// Worker threads handling requests [default: number of cores]
    #[arg(long)]
    workers: Option<usize>,
    /// When to fsync appends: always | never | <N>ms [default: always]
    #[arg(long)]
    fsync: Option<String>,
    /// Segment I/O: buffered (through the page cache) | direct (O_DIRECT, around it) [default: buffered]
    #[arg(long)]
    log_io: Option<String>,
    /// Partitions of auto-created topics and of CreateTopics without a count [default: 1]
    #[arg(long)]
    num_partitions: Option<u32>,
    /// Create topics named in Metadata requests (as Kafka's auto.create.topics.enable) [default: true]
    #[arg(long)]
    auto_create_topics: Option<bool>,
    /// Largest request frame in bytes [default: 104857600]
    #[arg(long)]
    request_bytes_max: Option<usize>,
    /// Most open connections in total [default: 10000]
    #[arg(long)]
    connections_max: Option<usize>,
    /// Most open connections from one IP address [default: unlimited, as Kafka]
    #[arg(long)]
    connections_per_ip_max: Option<usize>,
    /// Close connections idle this long, in ms [default: 600000, as Kafka]
    #[arg(long)]
    connection_idle_ms: Option<u64>,
    /// Close a connection whose request has not fully arrived this long after its first byte,
    /// in ms [default: 60000]
    #[arg(long)]
    request_read_timeout_ms: Option<u64>,
    /// Forget an idempotent producer idle this long, in ms (Kafka's producer.id.expiration.ms)
    /// [default: 86400000]
    #[arg(long)]
    producer_id_expiration_ms: Option<u64>,
    /// The longest transaction timeout a transactional producer may ask for, in ms (Kafka's
    /// transaction.max.timeout.ms) [default: 900000]
    #[arg(long)]
    transaction_max_timeout_ms: Option<u32>,
    /// Forget a transactional id with no transaction this long, in ms (Kafka's
    /// transactional.id.expiration.ms) [default: 604800000]
    #[arg(long)]
    transactional_id_expiration_ms: Option<u64>,
    /// Most partitions, all topics together, this broker will create (each keeps ~4 open files
    /// per segment: raise `ulimit -n` with it) [default: 4096]
    #[arg(long)]
    max_partitions: Option<u32>,
    /// Pause of the log cleaner between passes, in ms (Kafka's log.cleaner.backoff.ms)
    /// [default: 15000]
    #[arg(long)]
    log_cleaner_backoff_ms: Option<u64>,
    /// Run the log cleaner (Kafka's log.cleaner.enable; false: compacted topics are not
    /// compacted) [default: true]
    #[arg(long)]
    log_cleaner_enable: Option<bool>,
    /// Memory of the log cleaner's key map, in bytes (Kafka's log.cleaner.dedupe.buffer.size)
    /// [default: 16777216]
    #[arg(long)]
    log_cleaner_dedupe_buffer_size: Option<usize>,
    /// Bound on the log cleaner's read + write bytes per second (Kafka's
    /// log.cleaner.io.max.bytes.per.second) [default: unbounded]
    #[arg(long)]
    log_cleaner_io_max_bytes_per_second: Option<f64>,
    /// The first rebalance of an empty consumer group waits this long for more members, in ms
    /// (Kafka's group.initial.rebalance.delay.ms) [default: 3000]
    #[arg(long)]
    group_initial_rebalance_delay_ms: Option<u64>,
    /// SASL mechanisms the SASL listeners offer, comma-separated (Kafka's
    /// sasl.enabled.mechanisms) [default: SCRAM-SHA-256,SCRAM-SHA-512,PLAIN]
    #[arg(long)]
    sasl_mechanisms: Option<String>,
    /// A SASL session's lifetime in ms: the client must re-authenticate (KIP-368) before it
    /// ends or is disconnected (Kafka's connections.max.reauth.ms; 0 = no limit) [default: 0]
    #[arg(long)]
    connections_max_reauth_ms: Option<u64>,
    /// Authorization: none (everyone may do everything) | acl (Kafka's StandardAuthorizer over
    /// the ACLs managed with CreateAcls/DeleteAcls, e.g. kafka-acls) [default: none]
    #[arg(long)]
    authorizer: Option<String>,
    /// Principals allowed everything with --authorizer acl, ';'-separated (Kafka's
    /// super.users), e.g. 'User:admin;User:ops'
    #[arg(long)]
    super_users: Option<String>,
    /// With --authorizer acl, allow a request on a resource no ACL names (Kafka's
    /// allow.everyone.if.no.acl.found) [default: false]
    #[arg(long)]
    allow_everyone_if_no_acl_found: bool,
    /// TOML config file with any of the keys above (snake_case, e.g. data_dir = "/var/lib/ts")
    #[arg(long)]
    config: Option<PathBuf>,
    /// Without a subcommand the broker runs.
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Manage SCRAM users in a stopped broker's data directory (the first admin exists before
    /// the first start, as with `kafka-storage format --add-scram`). Stop the broker first:
    /// a running broker does not see the change and may overwrite it when it compacts the
    /// file; to change users of a running broker use AlterUserScramCredentials
    /// (`kafka-configs --alter --entity-type users`).
    Users {
        #[command(subcommand)]
        action: UsersAction,
    },
}

#[derive(Subcommand, Debug)]
enum UsersAction {
    /// Add a user's credential for one mechanism (replacing it if present). The password is
    /// read from standard input (one line).
    Add {
        name: String,
        /// SCRAM-SHA-256 or SCRAM-SHA-512 (PLAIN logins are checked against either)
        #[arg(long)]
        mechanism: String,
        /// Read the password from standard input (the only way: never on the command line)
        #[arg(long)]
        password_stdin: bool,
        /// PBKDF2 iterations, 4096..=16384 [default: 4096]
        #[arg(long)]
        iterations: Option<u32>,
        #[arg(long)]
        data_dir: PathBuf,
    },
    /// List users and their mechanisms (never a key).
    List {
        #[arg(long)]
        data_dir: PathBuf,
    },
    /// Remove a user's credential for one mechanism, or for all.
    Remove {
        name: String,
        #[arg(long)]
        mechanism: Option<String>,
        #[arg(long)]
        data_dir: PathBuf,
    },
}

/// Kafka's default `group.initial.rebalance.delay.ms` (the library's `BrokerConfig` has 0).
const GROUP_INITIAL_REBALANCE_DELAY_MS_DEFAULT: u64 = 3_000;

/// Iterations of a credential `thorstream users add` makes (Kafka's `kafka-configs` default).
const DEFAULT_SCRAM_ITERATIONS: u32 = 4096;

#[derive(Deserialize, Default, Debug)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    listen: Option<String>,
    data_dir: Option<PathBuf>,
    advertised_addr: Option<String>,
    listeners: Option<String>,
    advertised_listeners: Option<String>,
    listener_security_protocol_map: Option<String>,
    ssl_cert: Option<PathBuf>,
    ssl_key: Option<PathBuf>,
    ssl_client_ca: Option<PathBuf>,
    workers: Option<usize>,
    fsync: Option<String>,
    log_io: Option<String>,
    num_partitions: Option<u32>,
    auto_create_topics: Option<bool>,
    request_bytes_max: Option<usize>,
    connections_max: Option<usize>,
    connections_per_ip_max: Option<usize>,
    connection_idle_ms: Option<u64>,
    request_read_timeout_ms: Option<u64>,
    producer_id_expiration_ms: Option<u64>,
    transaction_max_timeout_ms: Option<u32>,
    transactional_id_expiration_ms: Option<u64>,
    max_partitions: Option<u32>,
    log_cleaner_backoff_ms: Option<u64>,
    log_cleaner_enable: Option<bool>,
    log_cleaner_dedupe_buffer_size: Option<usize>,
    log_cleaner_io_max_bytes_per_second: Option<f64>,
    group_initial_rebalance_delay_ms: Option<u64>,
    sasl_mechanisms: Option<String>,
    connections_max_reauth_ms: Option<u64>,
    authorizer: Option<String>,
    super_users: Option<String>,
    allow_everyone_if_no_acl_found: Option<bool>,
    segment_bytes: Option<u64>,
    retention_ms: Option<i64>,
    retention_bytes: Option<i64>,
}

fn main() -> ExitCode {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).init();
    let mut args = Args::parse();
    let result = match args.command.take() {
        Some(Command::Users { action }) => users(action),
        None => {
            raise_open_file_limit();
            run(args)
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            log::error!("{e}");
            eprintln!("thorstream: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Raises the soft limit on open files to the hard limit. Every connection holds a descriptor
/// and every segment one (its `.log`; the indexes are opened only to write); distributions and systemd
/// start services with a soft limit of 1,024, which a broker outgrows long before memory.
/// Kafka's docs tell operators to raise it; we do it ourselves, as Go's runtime and others do,
/// and never lower it. Failure is logged, not fatal.
fn raise_open_file_limit() {
    use rustix::process::{Resource, Rlimit, getrlimit, setrlimit};
    // Linux refuses more than `fs.nr_open` (default 2^20) even when the hard limit is
    // unlimited.
    const UNLIMITED_CAP: u64 = 1 << 20;
    let limit = getrlimit(Resource::Nofile);
    let Some(current) = limit.current else {
        return;
    };
    let target = limit.maximum.unwrap_or(UNLIMITED_CAP);
    if target <= current {
        log::info!("open files limit: {current}");
        return;
    }
    match setrlimit(
        Resource::Nofile,
        Rlimit {
            current: Some(target),
            maximum: limit.maximum,
        },
    ) {
        Ok(()) => log::info!("open files limit: raised from {current} to {target}"),
        Err(e) => log::warn!("open files limit stays {current}: cannot raise it to {target}: {e}"),
    }
}

fn resolve(addr: &str) -> Result<SocketAddr, String> {
    addr.to_socket_addrs()
        .map_err(|e| format!("bad address {addr:?}: {e}"))?
        .next()
        .ok_or_else(|| format!("address {addr:?} resolves to nothing"))
}

/// The listeners: `--listeners` (or its TOML key), else the one-PLAINTEXT-listener shorthand
/// `--listen` / `THORSTREAM_ADDR` / `listen`, then the advertised addresses. Flags win over
/// the environment, which wins over the file; the two forms at the same level conflict.
fn listeners_from(
    args: &Args,
    file: &FileConfig,
    env_addr: Option<String>,
) -> Result<Vec<server::ListenerConfig>, String> {
    use server::listener::{apply_advertised, parse_listeners, parse_protocol_map};
    use server::{ListenerConfig, SecurityProtocol};
    let map = match args
        .listener_security_protocol_map
        .as_ref()
        .or(file.listener_security_protocol_map.as_ref())
    {
        Some(m) => parse_protocol_map(m).map_err(|e| e.to_string())?,
        None => Vec::new(),
    };
    let parse = |spec: &str| parse_listeners(spec, &map).map_err(|e| e.to_string());
    let plain = |addr: &str| -> Result<Vec<ListenerConfig>, String> {
        Ok(vec![ListenerConfig::new(
            SecurityProtocol::Plaintext,
            resolve(addr)?,
        )])
    };
    let mut listeners = match (&args.listeners, &args.listen) {
        (Some(_), Some(_)) => return Err("give --listeners or --listen, not both".into()),
        (Some(spec), None) => parse(spec)?,
        (None, Some(addr)) => plain(addr)?,
        (None, None) => match (env_addr, &file.listeners, &file.listen) {
            (Some(addr), _, _) => plain(&addr)?,
            (None, Some(_), Some(_)) => {
                return Err("the config file gives both listeners and listen".into());
            }
            (None, Some(spec), None) => parse(spec)?,
            (None, None, Some(addr)) => plain(addr)?,
            (None, None, None) => plain("0.0.0.0:9092")?,
        },
    };
    let advertised_listeners = args
        .advertised_listeners
        .as_ref()
        .or(file.advertised_listeners.as_ref());
    let advertised_addr = args
        .advertised_addr
        .as_ref()
        .or(file.advertised_addr.as_ref());
    match (advertised_listeners, advertised_addr) {
        (Some(_), Some(_)) => {
            return Err("give --advertised-listeners or --advertised-addr, not both".into());
        }
        (Some(spec), None) => apply_advertised(&mut listeners, spec).map_err(|e| e.to_string())?,
        (None, Some(adv)) => {
            let (host, port) = adv
                .rsplit_once(':')
                .ok_or_else(|| format!("--advertised-addr {adv:?} must be HOST:PORT"))?;
            listeners[0].advertised_host = host.to_string();
            listeners[0].advertised_port = port
                .parse()
                .map_err(|_| format!("bad port in --advertised-addr {adv:?}"))?;
        }
        (None, None) => {}
    }
    Ok(listeners)
}

/// `--ssl-cert`, `--ssl-key`, `--ssl-client-ca` (or their TOML keys); the files are read when
/// the server starts.
fn tls_from(args: &Args, file: &FileConfig) -> Result<Option<server::TlsFiles>, String> {
    let cert = args.ssl_cert.clone().or(file.ssl_cert.clone());
    let key = args.ssl_key.clone().or(file.ssl_key.clone());
    let client_ca = args.ssl_client_ca.clone().or(file.ssl_client_ca.clone());
    match (cert, key) {
        (Some(cert), Some(key)) => Ok(Some(server::TlsFiles {
            cert,
            key,
            client_ca,
        })),
        (None, None) if client_ca.is_none() => Ok(None),
        (None, None) => Err("--ssl-client-ca needs --ssl-cert and --ssl-key".into()),
        _ => Err("--ssl-cert and --ssl-key go together".into()),
    }
}

/// `--authorizer`, `--super-users` and `--allow-everyone-if-no-acl-found` as the server's
/// setting; the last two without `--authorizer acl` are refused (they would do nothing).
fn authorizer_config(
    authorizer: Option<&str>,
    super_users: Option<&str>,
    allow_everyone_if_no_acl_found: bool,
) -> Result<Option<AuthorizerConfig>, String> {
    match authorizer.unwrap_or("none") {
        "none" => {
            if super_users.is_some() || allow_everyone_if_no_acl_found {
                return Err(
                    "--super-users and --allow-everyone-if-no-acl-found need --authorizer acl"
                        .to_string(),
                );
            }
            Ok(None)
        }
        "acl" => {
            let super_users = super_users
                .unwrap_or("")
                .split(';')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(|s| {
                    s.parse::<Principal>()
                        .map_err(|e| format!("--super-users: {e}"))
                })
                .collect::<Result<Vec<_>, _>>()?;
            Ok(Some(AuthorizerConfig {
                super_users,
                allow_everyone_if_no_acl_found,
            }))
        }
        other => Err(format!("--authorizer {other:?}: none or acl")),
    }
}

fn run(args: Args) -> Result<(), String> {
    let file: FileConfig = match &args.config {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .map_err(|e| format!("cannot read config {}: {e}", path.display()))?;
            toml::from_str(&text).map_err(|e| format!("config {}: {e}", path.display()))?
        }
        None => FileConfig::default(),
    };
    let env = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
    let listeners = listeners_from(&args, &file, env("THORSTREAM_ADDR"))?;
    let tls = tls_from(&args, &file)?;
    let data_dir = args
        .data_dir
        .or_else(|| env("THORSTREAM_DATA_DIR").map(PathBuf::from))
        .or(file.data_dir)
        .unwrap_or_else(|| PathBuf::from("./data"));
    let fsync: FsyncPolicy = args
        .fsync
        .or(file.fsync)
        .unwrap_or_else(|| "always".into())
        .parse()
        .map_err(|e: thorstream::Error| e.to_string())?;

    let log_io: LogIo = args
        .log_io
        .or(file.log_io)
        .unwrap_or_else(|| "buffered".into())
        .parse()
        .map_err(|e: thorstream::Error| e.to_string())?;

    let mut broker_config = BrokerConfig::with_data_dir(&data_dir);
    broker_config.fsync = fsync;
    broker_config.log_io = log_io;
    if let Some(n) = args.num_partitions.or(file.num_partitions) {
        broker_config.default_topic_config.num_partitions = n;
    }
    if let Some(b) = args.auto_create_topics.or(file.auto_create_topics) {
        broker_config.auto_create_topics = b;
    }
    if let Some(v) = args
        .producer_id_expiration_ms
        .or(file.producer_id_expiration_ms)
    {
        broker_config.producer_id_expiration_ms = v;
    }
    if let Some(v) = args
        .transaction_max_timeout_ms
        .or(file.transaction_max_timeout_ms)
    {
        broker_config.transaction_max_timeout_ms = v;
    }
    if let Some(v) = args
        .transactional_id_expiration_ms
        .or(file.transactional_id_expiration_ms)
    {
        broker_config.transactional_id_expiration_ms = v;
    }
    if let Some(v) = args.max_partitions.or(file.max_partitions) {
        broker_config.max_partitions = v;
    }
    if let Some(v) = args.log_cleaner_backoff_ms.or(file.log_cleaner_backoff_ms) {
        broker_config.log_cleaner_backoff_ms = v;
    }
    if let Some(v) = args.log_cleaner_enable.or(file.log_cleaner_enable) {
        broker_config.log_cleaner_enable = v;
    }
    if let Some(v) = args
        .log_cleaner_dedupe_buffer_size
        .or(file.log_cleaner_dedupe_buffer_size)
    {
        broker_config.log_cleaner_dedupe_buffer_bytes = v;
    }
    if let Some(v) = args
        .log_cleaner_io_max_bytes_per_second
        .or(file.log_cleaner_io_max_bytes_per_second)
    {
        if v.is_nan() || v <= 0.0 {
            return Err(format!(
                "log.cleaner.io.max.bytes.per.second must be positive, got {v}"
            ));
        }
        broker_config.log_cleaner_io_max_bytes_per_second = v;
    }
    broker_config.group_initial_rebalance_delay_ms = args
        .group_initial_rebalance_delay_ms
        .or(file.group_initial_rebalance_delay_ms)
        .unwrap_or(GROUP_INITIAL_REBALANCE_DELAY_MS_DEFAULT);
    if let Some(v) = file.segment_bytes {
        broker_config.default_topic_config.segment_bytes = v;
    }
    if let Some(v) = file.retention_ms {
        broker_config.default_topic_config.retention_ms = v;
    }
    if let Some(v) = file.retention_bytes {
        broker_config.default_topic_config.retention_bytes = v;
    }
    broker_config
        .default_topic_config
        .validate()
        .map_err(|e| e.to_string())?;

    let mut server_config = ServerConfig::new(listeners[0].addr);
    server_config.listeners = listeners;
    server_config.tls = tls;
    if let Some(w) = args.workers.or(file.workers) {
        server_config.workers = w.max(1);
    }
    if let Some(m) = args.request_bytes_max.or(file.request_bytes_max) {
        server_config.request_bytes_max = m;
    }
    if let Some(m) = args.connections_max.or(file.connections_max) {
        server_config.connections_max = m.max(1);
    }
    if let Some(m) = args.connections_per_ip_max.or(file.connections_per_ip_max) {
        server_config.connections_per_ip_max = m.max(1);
    }
    if let Some(ms) = args.connection_idle_ms.or(file.connection_idle_ms) {
        server_config.connection_idle_ms = ms.max(1);
    }
    if let Some(ms) = args
        .request_read_timeout_ms
        .or(file.request_read_timeout_ms)
    {
        server_config.request_read_timeout_ms = ms.max(1);
    }
    server_config.authorizer = authorizer_config(
        args.authorizer.or(file.authorizer).as_deref(),
        args.super_users.or(file.super_users).as_deref(),
        args.allow_everyone_if_no_acl_found || file.allow_everyone_if_no_acl_found == Some(true),
    )?;

    if let Some(list) = args.sasl_mechanisms.or(file.sasl_mechanisms) {
        server_config.sasl_mechanisms = parse_mechanisms(&list)?;
    }
    if let Some(ms) = args
        .connections_max_reauth_ms
        .or(file.connections_max_reauth_ms)
    {
        server_config.connections_max_reauth_ms = ms;
    }

    let broker = Arc::new(Broker::new(broker_config).map_err(|e| e.to_string())?);
    let handle =
        server::start(Arc::clone(&broker), server_config.clone()).map_err(|e| e.to_string())?;
    let apis: Vec<String> = thorstream::internals::supported_apis()
        .map(|(k, min, max)| format!("{k:?} v{min}-{max}"))
        .collect();
    let listening: Vec<String> = server_config
        .listeners
        .iter()
        .zip(&handle.local_addrs)
        .map(|(l, addr)| {
            let port = match l.advertised_port {
                0 => addr.port(),
                p => p,
            };
            format!(
                "{}://{addr} (advertised {}:{port})",
                l.name, l.advertised_host
            )
        })
        .collect();
    log::info!(
        "thorstream {} listening on {}, data dir {}, fsync {}, log I/O {}, {} workers",
        env!("CARGO_PKG_VERSION"),
        listening.join(", "),
        data_dir.display(),
        fsync,
        log_io,
        server_config.workers
    );
    log::info!("API versions: {}", apis.join(", "));

    let (stop, waker) = handle.stopper();
    let mut signals = signal_hook::iterator::Signals::new([
        signal_hook::consts::SIGINT,
        signal_hook::consts::SIGTERM,
    ])
    .map_err(|e| format!("cannot install signal handlers: {e}"))?;
    std::thread::Builder::new()
        .name("thorstream-signals".into())
        .spawn(move || {
            if let Some(sig) = signals.forever().next() {
                log::info!("signal {sig} received; shutting down");
                stop.store(true, std::sync::atomic::Ordering::Release);
                let _ = waker.wake();
            }
        })
        .map_err(|e| format!("cannot start signal thread: {e}"))?;
    handle.join();
    broker.close().map_err(|e| e.to_string())?;
    Ok(())
}

fn parse_mechanisms(list: &str) -> Result<Vec<SaslMechanism>, String> {
    let mut out = Vec::new();
    for name in list.split(',').map(str::trim).filter(|n| !n.is_empty()) {
        let m: SaslMechanism = name
            .parse()
            .map_err(|e| format!("--sasl-mechanisms: {e}"))?;
        if !out.contains(&m) {
            out.push(m);
        }
    }
    if out.is_empty() {
        return Err("--sasl-mechanisms: no mechanism named".into());
    }
    Ok(out)
}

fn scram_hash(name: &str) -> Result<ScramHash, String> {
    name.parse::<SaslMechanism>()
        .ok()
        .and_then(ScramHash::of)
        .ok_or_else(|| format!("--mechanism {name:?}: SCRAM-SHA-256 or SCRAM-SHA-512"))
}

/// `thorstream users add|list|remove` on a stopped broker's data directory.
fn users(action: UsersAction) -> Result<(), String> {
    let open = |dir: &PathBuf| UserStore::open(dir).map_err(|e| e.to_string());
    match action {
        UsersAction::Add {
            name,
            mechanism,
            password_stdin,
            iterations,
            data_dir,
        } => {
            let hash = scram_hash(&mechanism)?;
            if !password_stdin {
                return Err("give the password on standard input with --password-stdin".into());
            }
            let iterations = iterations.unwrap_or(DEFAULT_SCRAM_ITERATIONS);
            check_credential(&name, iterations).map_err(|e| e.to_string())?;
            let mut line = String::new();
            std::io::stdin()
                .read_line(&mut line)
                .map_err(|e| format!("reading the password: {e}"))?;
            let password = line.trim_end_matches(['\n', '\r']);
            if password.is_empty() {
                return Err("empty password".into());
            }
            std::fs::create_dir_all(&data_dir)
                .map_err(|e| format!("{}: {e}", data_dir.display()))?;
            let store = open(&data_dir)?;
            let salt = new_salt().map_err(|e| e.to_string())?;
            let credential =
                ScramCredential::from_password(hash, password.as_bytes(), salt, iterations);
            store
                .apply(&[UserChange::Upsert {
                    name: name.clone(),
                    hash,
                    credential,
                }])
                .map_err(|e| e.to_string())?;
            println!(
                "{name}: {} credential stored ({iterations} iterations)",
                hash.mechanism()
            );
        }
        UsersAction::List { data_dir } => {
            for (name, creds) in open(&data_dir)?.list() {
                let creds: Vec<String> = creds
                    .iter()
                    .map(|(h, it)| format!("{}(iterations={it})", h.mechanism()))
                    .collect();
                println!("{name}\t{}", creds.join(","));
            }
        }
        UsersAction::Remove {
            name,
            mechanism,
            data_dir,
        } => {
            let store = open(&data_dir)?;
            let hashes = match mechanism {
                Some(m) => vec![scram_hash(&m)?],
                None => vec![ScramHash::Sha256, ScramHash::Sha512],
            };
            let changes: Vec<UserChange> = hashes
                .into_iter()
                .filter(|h| store.credential(&name, *h).is_some())
                .map(|hash| UserChange::Delete {
                    name: name.clone(),
                    hash,
                })
                .collect();
            if changes.is_empty() {
                return Err(format!("user {name:?} has no such credential"));
            }
            store.apply(&changes).map_err(|e| e.to_string())?;
            println!("{name}: {} credential(s) removed", changes.len());
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn authorizer_flags_as_kafka_names_them() {
        assert_eq!(authorizer_config(None, None, false), Ok(None));
        assert_eq!(authorizer_config(Some("none"), None, false), Ok(None));
        let c = authorizer_config(Some("acl"), Some("User:admin; User:ops;"), true)
            .unwrap()
            .unwrap();
        assert_eq!(
            c.super_users,
            [Principal::user("admin"), Principal::user("ops")]
        );
        assert!(c.allow_everyone_if_no_acl_found);
        assert!(authorizer_config(Some("acl"), Some("admin"), false).is_err());
        assert!(authorizer_config(Some("kafka"), None, false).is_err());
        assert!(authorizer_config(None, Some("User:a"), false).is_err());
        assert!(authorizer_config(None, None, true).is_err());
    }
}
