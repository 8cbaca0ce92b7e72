//! Listeners: where the server accepts connections and how each protects them (Kafka's
//! `listeners` / `advertised.listeners`: `NAME://host:port`, the name being the security
//! protocol unless mapped).
//!
//! (Parsing of `--listeners` / `--advertised-listeners` and binding several listeners are
//! filled in by the TLS/listeners work.)

use std::net::SocketAddr;

use crate::security::SecurityProtocol;

/// One listener: a bound address, its security protocol, and the address Metadata gives the
/// clients that connect to it (Kafka answers each client with the endpoints of the listener it
/// came in on).
#[derive(Debug, Clone, PartialEq)]
pub struct ListenerConfig {
    /// Kafka's listener name (`PLAINTEXT`, `SASL_SSL`, …); unique among the listeners.
    pub name: String,
    pub protocol: SecurityProtocol,
    pub addr: SocketAddr,
    pub advertised_host: String,
    /// 0: the port actually bound (for `addr` with port 0).
    pub advertised_port: u16,
}

impl ListenerConfig {
    /// A listener named after its protocol, advertised at its own address (or the host name
    /// when bound to 0.0.0.0).
    pub fn new(protocol: SecurityProtocol, addr: SocketAddr) -> ListenerConfig {
        let advertised_host = if addr.ip().is_unspecified() {
            super::hostname().unwrap_or_else(|| "localhost".to_string())
        } else {
            addr.ip().to_string()
        };
        ListenerConfig {
            name: protocol.name().to_string(),
            protocol,
            addr,
            advertised_host,
            advertised_port: addr.port(),
        }
    }
}
