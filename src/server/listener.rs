//! Listeners: where the server accepts connections and how each protects them (Kafka's
//! `listeners` / `advertised.listeners` / `listener.security.protocol.map`).
//!
//! Form, as Kafka's: a comma-separated list of `NAME://host:port`. `host` may be a name, an
//! IPv4 address or a bracketed IPv6 address (`[::1]`); empty means every interface. `NAME` is
//! a security protocol (`PLAINTEXT`, `SSL`, `SASL_PLAINTEXT`, `SASL_SSL`) unless the protocol
//! map names it (`INTERNAL:SSL,EXTERNAL:SASL_SSL`). Names are compared case-insensitively and
//! kept in upper case.
//!
//! Invariants of a parsed list: at least one listener, names unique. An advertised listener
//! names a listener of the list; a listener not named in `--advertised-listeners` is advertised
//! at its own address. An advertised host is never the unspecified address (clients cannot
//! connect to 0.0.0.0; Kafka refuses it too). Port 0 (bind) means "any free port", and an
//! advertised port 0 means "the port actually bound".

use std::net::{SocketAddr, ToSocketAddrs};

use crate::error::{Error, Result};
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

fn bad(what: &str, detail: impl std::fmt::Display) -> Error {
    Error::InvalidConfig(format!("{what}: {detail}"))
}

/// One `NAME://host:port` entry, split (the host without brackets; empty if none given).
fn split_entry<'a>(what: &str, entry: &'a str) -> Result<(String, &'a str, u16)> {
    let entry = entry.trim();
    let (name, rest) = entry.split_once("://").ok_or_else(|| {
        bad(
            what,
            format!("{entry:?} is not of the form NAME://host:port"),
        )
    })?;
    if name.is_empty() {
        return Err(bad(what, format!("{entry:?} has no listener name")));
    }
    let (host, port) = rest
        .rsplit_once(':')
        .ok_or_else(|| bad(what, format!("{entry:?} has no port")))?;
    let port: u16 = port
        .parse()
        .map_err(|_| bad(what, format!("bad port in {entry:?}")))?;
    let host = match host.strip_prefix('[') {
        Some(v6) => v6
            .strip_suffix(']')
            .ok_or_else(|| bad(what, format!("unclosed [ in {entry:?}")))?,
        None if host.contains(':') => {
            return Err(bad(
                what,
                format!("IPv6 host in {entry:?} must be in [brackets]"),
            ));
        }
        None => host,
    };
    Ok((name.to_ascii_uppercase(), host, port))
}

/// `listener.security.protocol.map`: `NAME:PROTOCOL,...`.
pub fn parse_protocol_map(spec: &str) -> Result<Vec<(String, SecurityProtocol)>> {
    const WHAT: &str = "--listener-security-protocol-map";
    spec.split(',')
        .map(str::trim)
        .filter(|e| !e.is_empty())
        .map(|e| {
            let (name, proto) = e
                .split_once(':')
                .ok_or_else(|| bad(WHAT, format!("{e:?} is not NAME:PROTOCOL")))?;
            let proto: SecurityProtocol = proto.trim().parse().map_err(|e| bad(WHAT, e))?;
            Ok((name.trim().to_ascii_uppercase(), proto))
        })
        .collect()
}

/// Parses `--listeners` (see the module doc); `protocol_map` from
/// `--listener-security-protocol-map`, empty if not given.
pub fn parse_listeners(
    spec: &str,
    protocol_map: &[(String, SecurityProtocol)],
) -> Result<Vec<ListenerConfig>> {
    const WHAT: &str = "--listeners";
    let mut out: Vec<ListenerConfig> = Vec::new();
    for entry in spec.split(',').filter(|e| !e.trim().is_empty()) {
        let (name, host, port) = split_entry(WHAT, entry)?;
        let protocol = match protocol_map.iter().find(|(n, _)| *n == name) {
            Some((_, p)) => *p,
            None => name.parse().map_err(|_| {
                bad(
                    WHAT,
                    format!(
                        "listener {name} is neither a security protocol nor in \
                         --listener-security-protocol-map"
                    ),
                )
            })?,
        };
        let host = if host.is_empty() { "0.0.0.0" } else { host };
        let addr = (host, port)
            .to_socket_addrs()
            .map_err(|e| bad(WHAT, format!("cannot resolve {host:?}: {e}")))?
            .next()
            .ok_or_else(|| bad(WHAT, format!("{host:?} resolves to nothing")))?;
        if out.iter().any(|l| l.name == name) {
            return Err(bad(WHAT, format!("listener {name} is given twice")));
        }
        let mut listener = ListenerConfig::new(protocol, addr);
        listener.name = name;
        out.push(listener);
    }
    if out.is_empty() {
        return Err(bad(WHAT, "no listener given"));
    }
    Ok(out)
}

/// Applies `--advertised-listeners` to `listeners` (see the module doc).
pub fn apply_advertised(listeners: &mut [ListenerConfig], spec: &str) -> Result<()> {
    const WHAT: &str = "--advertised-listeners";
    let mut seen: Vec<String> = Vec::new();
    for entry in spec.split(',').filter(|e| !e.trim().is_empty()) {
        let (name, host, port) = split_entry(WHAT, entry)?;
        if seen.contains(&name) {
            return Err(bad(WHAT, format!("listener {name} is given twice")));
        }
        let listener = listeners
            .iter_mut()
            .find(|l| l.name == name)
            .ok_or_else(|| bad(WHAT, format!("{name} is not one of the --listeners")))?;
        if host.is_empty() {
            return Err(bad(WHAT, format!("{entry:?} has no host")));
        }
        if host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_unspecified())
        {
            return Err(bad(
                WHAT,
                format!("{entry:?}: clients cannot connect to the unspecified address"),
            ));
        }
        listener.advertised_host = host.to_string();
        listener.advertised_port = port;
        seen.push(name);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn protocol() -> impl Strategy<Value = SecurityProtocol> {
        prop_oneof![
            Just(SecurityProtocol::Plaintext),
            Just(SecurityProtocol::Ssl),
            Just(SecurityProtocol::SaslPlaintext),
            Just(SecurityProtocol::SaslSsl),
        ]
    }

    fn addr() -> impl Strategy<Value = SocketAddr> {
        prop_oneof![
            (any::<[u8; 4]>(), any::<u16>()).prop_map(|(ip, port)| (ip, port).into()),
            (any::<[u16; 8]>(), any::<u16>()).prop_map(|(ip, port)| (
                std::net::Ipv6Addr::from(ip),
                port
            )
                .into()),
        ]
    }

    proptest! {
        /// Any list of distinct listeners, written in Kafka's form (IPv6 in brackets, names in
        /// any case), parses back to the same names, protocols and addresses, in order.
        #[test]
        fn written_listener_lists_parse_back(
            entries in proptest::collection::vec((protocol(), addr(), any::<bool>()), 1..5),
        ) {
            let mut seen = Vec::new();
            let entries: Vec<_> = entries
                .into_iter()
                .filter(|(p, _, _)| {
                    let fresh = !seen.contains(p);
                    seen.push(*p);
                    fresh
                })
                .collect();
            let spec = entries
                .iter()
                .map(|(p, a, lower)| {
                    let name = match lower {
                        true => p.name().to_ascii_lowercase(),
                        false => p.name().to_string(),
                    };
                    format!("{name}://{a}")
                })
                .collect::<Vec<_>>()
                .join(",");
            let parsed = parse_listeners(&spec, &[]).unwrap();
            prop_assert_eq!(parsed.len(), entries.len());
            for (l, (p, a, _)) in parsed.iter().zip(&entries) {
                prop_assert_eq!(&l.name, p.name());
                prop_assert_eq!(l.protocol, *p);
                prop_assert_eq!(l.addr, *a);
                prop_assert_eq!(l.advertised_port, a.port());
            }
        }

        /// Arbitrary text never panics the parsers (the entry splitter, the protocol map, the
        /// advertised list; `parse_listeners` adds name resolution, not exercised here).
        #[test]
        fn arbitrary_text_is_parsed_or_refused(spec in ".{0,80}") {
            let _ = split_entry("test", &spec);
            let _ = parse_protocol_map(&spec);
            let mut l = parse_listeners("PLAINTEXT://127.0.0.1:0,SSL://[::1]:0", &[]).unwrap();
            let _ = apply_advertised(&mut l, &spec);
        }
    }

    #[test]
    fn kafka_form_with_several_listeners() {
        let l = parse_listeners(
            "PLAINTEXT://127.0.0.1:9092, ssl://127.0.0.1:9093,SASL_SSL://[::1]:0",
            &[],
        )
        .unwrap();
        assert_eq!(l.len(), 3);
        assert_eq!(l[0].name, "PLAINTEXT");
        assert_eq!(l[0].protocol, SecurityProtocol::Plaintext);
        assert_eq!(l[0].addr, "127.0.0.1:9092".parse().unwrap());
        assert_eq!(l[1].name, "SSL");
        assert_eq!(l[1].protocol, SecurityProtocol::Ssl);
        assert_eq!(l[1].advertised_host, "127.0.0.1");
        assert_eq!(l[2].protocol, SecurityProtocol::SaslSsl);
        assert_eq!(l[2].addr, "[::1]:0".parse().unwrap());
        assert_eq!(l[2].advertised_port, 0);
    }

    #[test]
    fn empty_host_binds_every_interface() {
        let l = parse_listeners("PLAINTEXT://:9092", &[]).unwrap();
        assert!(l[0].addr.ip().is_unspecified());
        assert!(!l[0].advertised_host.is_empty());
        assert_ne!(l[0].advertised_host, "0.0.0.0");
    }

    #[test]
    fn names_are_protocols_unless_mapped() {
        assert!(parse_listeners("INTERNAL://127.0.0.1:1", &[]).is_err());
        let map = parse_protocol_map("INTERNAL:SSL, external:SASL_PLAINTEXT").unwrap();
        let l = parse_listeners("INTERNAL://127.0.0.1:1,EXTERNAL://127.0.0.1:2", &map).unwrap();
        assert_eq!(l[0].name, "INTERNAL");
        assert_eq!(l[0].protocol, SecurityProtocol::Ssl);
        assert_eq!(l[1].protocol, SecurityProtocol::SaslPlaintext);
        assert!(parse_protocol_map("INTERNAL:TLS").is_err());
        assert!(parse_protocol_map("INTERNAL").is_err());
    }

    #[test]
    fn malformed_lists_are_refused() {
        for spec in [
            "",
            "127.0.0.1:9092",
            "PLAINTEXT://127.0.0.1",
            "PLAINTEXT://127.0.0.1:70000",
            "PLAINTEXT://::1:9092",
            "PLAINTEXT://[::1:9092",
            "PLAINTEXT://127.0.0.1:1,PLAINTEXT://127.0.0.1:2",
            "://127.0.0.1:1",
        ] {
            assert!(parse_listeners(spec, &[]).is_err(), "{spec:?} accepted");
        }
    }

    #[test]
    fn advertised_listeners_override_by_name() {
        let mut l = parse_listeners("PLAINTEXT://127.0.0.1:0,SSL://0.0.0.0:0", &[]).unwrap();
        apply_advertised(&mut l, "SSL://broker.example:19093").unwrap();
        assert_eq!(l[0].advertised_host, "127.0.0.1");
        assert_eq!(l[0].advertised_port, 0);
        assert_eq!(l[1].advertised_host, "broker.example");
        assert_eq!(l[1].advertised_port, 19093);
        assert!(apply_advertised(&mut l, "SASL_SSL://h:1").is_err());
        assert!(apply_advertised(&mut l, "SSL://0.0.0.0:1").is_err());
        assert!(apply_advertised(&mut l, "SSL://:1").is_err());
        assert!(apply_advertised(&mut l, "SSL://a:1,SSL://b:2").is_err());
    }
}
