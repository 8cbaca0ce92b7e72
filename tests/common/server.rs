//! The real server, in-process on a free loopback port, in front of a broker on a temp dir: the
//! fixture of the tests that speak raw Kafka frames to it.

use std::net::SocketAddr;
use std::sync::Arc;

use thorstream::server::{self, ServerConfig, ServerHandle};
use thorstream::{Broker, BrokerConfig, TopicConfig};

/// A broker on a temp dir and the server in front of it. Dropping it shuts the server down.
pub struct Fixture {
    _dir: tempfile::TempDir,
    pub broker: Arc<Broker>,
    /// `None` once a test has taken the handle to shut the server down itself.
    pub server: Option<ServerHandle>,
    pub addr: SocketAddr,
}

impl Drop for Fixture {
    fn drop(&mut self) {
        if let Some(s) = self.server.take() {
            s.shutdown();
        }
    }
}

/// Opens a broker on a fresh temp dir (its config tuned by `tune_broker`), creates `topics` and
/// serves the broker on `127.0.0.1:0` (the server config tuned by `tune_server`).
pub fn start<'a>(
    tune_broker: impl FnOnce(&mut BrokerConfig),
    topics: impl IntoIterator<Item = (&'a str, TopicConfig)>,
    tune_server: impl FnOnce(&mut ServerConfig),
) -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let mut bc = BrokerConfig::with_data_dir(dir.path());
    tune_broker(&mut bc);
    let broker = Arc::new(Broker::new(bc).unwrap());
    for (name, config) in topics {
        broker.create_topic(name, Some(config)).unwrap();
    }
    let mut sc = ServerConfig::new("127.0.0.1:0".parse().unwrap());
    tune_server(&mut sc);
    let server = server::start(Arc::clone(&broker), sc).unwrap();
    let addr = server.local_addr;
    Fixture {
        _dir: dir,
        broker,
        server: Some(server),
        addr,
    }
}

/// The setup of the malformed-input tests: topic `t` with 2 partitions and messages of at most
/// `max_message_bytes`, and requests of at most 1 MiB unless `tune_server` says otherwise.
pub fn start_wire(max_message_bytes: u32, tune_server: impl FnOnce(&mut ServerConfig)) -> Fixture {
    let mut topic = TopicConfig::with_partitions(2);
    topic.max_message_bytes = max_message_bytes;
    start(
        |_| {},
        [("t", topic)],
        |sc| {
            sc.request_bytes_max = 1024 * 1024;
            tune_server(sc);
        },
    )
}
