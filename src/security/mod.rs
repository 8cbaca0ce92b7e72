//! Security vocabulary and pure logic, below the broker and the server: who a client is
//! (`Principal`), how its listener protects the connection (`SecurityProtocol`), SASL
//! mechanisms (`sasl/`: PLAIN and SCRAM message parsers and the server side of each exchange,
//! sans-IO) and ACLs (`acl/`: Kafka's resource, pattern, operation and permission types and the
//! StandardAuthorizer's decision, sans-IO).
//!
//! Layering: this module uses neither `broker` nor `server` (`tests/layering.rs`). The stores
//! that persist credentials and ACLs in the data directory live in `broker/security/`; the
//! per-connection session (TLS principal, SASL exchange, re-authentication) in
//! `server/session.rs`.

pub mod acl;
pub mod sasl;

use std::fmt;
use std::str::FromStr;

/// A client's identity as Kafka names it: `User:alice`. `User:ANONYMOUS` on PLAINTEXT and
/// on SSL without a client certificate (Kafka's default principal builder).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Principal {
    /// Kafka's principal type: `User` for every authenticated client.
    pub kind: String,
    pub name: String,
}

impl Principal {
    pub const USER_TYPE: &'static str = "User";
    pub const ANONYMOUS_NAME: &'static str = "ANONYMOUS";

    pub fn user(name: impl Into<String>) -> Principal {
        Principal {
            kind: Self::USER_TYPE.to_string(),
            name: name.into(),
        }
    }

    /// `User:ANONYMOUS`, the principal of an unauthenticated connection.
    pub fn anonymous() -> Principal {
        Principal::user(Self::ANONYMOUS_NAME)
    }

    pub fn is_anonymous(&self) -> bool {
        self.kind == Self::USER_TYPE && self.name == Self::ANONYMOUS_NAME
    }
}

impl fmt::Display for Principal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.kind, self.name)
    }
}

/// Why a principal string (`Type:name`) was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("principal {0:?} is not of the form Type:name (e.g. User:alice)")]
pub struct BadPrincipal(pub String);

impl FromStr for Principal {
    type Err = BadPrincipal;

    /// `User:alice` → kind `User`, name `alice` (the name may itself contain `:`).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.split_once(':') {
            Some((kind, name)) if !kind.is_empty() && !name.is_empty() => Ok(Principal {
                kind: kind.to_string(),
                name: name.to_string(),
            }),
            _ => Err(BadPrincipal(s.to_string())),
        }
    }
}

/// Kafka's listener security protocols.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SecurityProtocol {
    Plaintext,
    Ssl,
    SaslPlaintext,
    SaslSsl,
}

impl SecurityProtocol {
    /// TLS on the connection (SSL, SASL_SSL).
    pub fn uses_tls(self) -> bool {
        matches!(self, SecurityProtocol::Ssl | SecurityProtocol::SaslSsl)
    }

    /// A SASL exchange before any other request (SASL_PLAINTEXT, SASL_SSL).
    pub fn uses_sasl(self) -> bool {
        matches!(
            self,
            SecurityProtocol::SaslPlaintext | SecurityProtocol::SaslSsl
        )
    }

    pub fn name(self) -> &'static str {
        match self {
            SecurityProtocol::Plaintext => "PLAINTEXT",
            SecurityProtocol::Ssl => "SSL",
            SecurityProtocol::SaslPlaintext => "SASL_PLAINTEXT",
            SecurityProtocol::SaslSsl => "SASL_SSL",
        }
    }
}

impl fmt::Display for SecurityProtocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Why a security protocol name was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown security protocol {0:?} (PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL)")]
pub struct BadSecurityProtocol(pub String);

impl FromStr for SecurityProtocol {
    type Err = BadSecurityProtocol;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_uppercase().as_str() {
            "PLAINTEXT" => Ok(SecurityProtocol::Plaintext),
            "SSL" => Ok(SecurityProtocol::Ssl),
            "SASL_PLAINTEXT" => Ok(SecurityProtocol::SaslPlaintext),
            "SASL_SSL" => Ok(SecurityProtocol::SaslSsl),
            _ => Err(BadSecurityProtocol(s.to_string())),
        }
    }
}

/// The SASL mechanisms the broker implements.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum SaslMechanism {
    Plain,
    ScramSha256,
    ScramSha512,
}

impl SaslMechanism {
    pub const ALL: [SaslMechanism; 3] = [
        SaslMechanism::ScramSha256,
        SaslMechanism::ScramSha512,
        SaslMechanism::Plain,
    ];

    /// The name clients send in SaslHandshake.
    pub fn name(self) -> &'static str {
        match self {
            SaslMechanism::Plain => "PLAIN",
            SaslMechanism::ScramSha256 => "SCRAM-SHA-256",
            SaslMechanism::ScramSha512 => "SCRAM-SHA-512",
        }
    }
}

impl fmt::Display for SaslMechanism {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Why a SASL mechanism name was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown SASL mechanism {0:?} (PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512)")]
pub struct BadSaslMechanism(pub String);

impl FromStr for SaslMechanism {
    type Err = BadSaslMechanism;

    /// Exact, as Kafka: mechanism names are case-sensitive.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        SaslMechanism::ALL
            .into_iter()
            .find(|m| m.name() == s)
            .ok_or_else(|| BadSaslMechanism(s.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn principals_parse_and_print_as_kafka_names_them() {
        let p: Principal = "User:alice".parse().unwrap();
        assert_eq!(p, Principal::user("alice"));
        assert_eq!(p.to_string(), "User:alice");
        assert_eq!("User:a:b".parse::<Principal>().unwrap().name, "a:b");
        assert!("alice".parse::<Principal>().is_err());
        assert!(":alice".parse::<Principal>().is_err());
        assert!(Principal::anonymous().is_anonymous());
    }

    #[test]
    fn protocols_and_mechanisms_round_trip() {
        for p in ["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] {
            assert_eq!(p.parse::<SecurityProtocol>().unwrap().name(), p);
        }
        assert!("TLS".parse::<SecurityProtocol>().is_err());
        for m in SaslMechanism::ALL {
            assert_eq!(m.name().parse::<SaslMechanism>().unwrap(), m);
        }
        assert!("scram-sha-256".parse::<SaslMechanism>().is_err());
    }
}
