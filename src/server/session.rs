//! One connection's security session, shared by the reactor (which owns the connection) and
//! the worker running its current request: the listener it came in on, whether it has
//! authenticated, and as whom.
//!
//! Invariants: a connection on a SASL listener is unauthenticated until its SASL exchange
//! succeeds; until then only ApiVersions, SaslHandshake and SaslAuthenticate are served. The
//! principal is fixed before any request runs on a TLS connection (mTLS: `User:<subject CN>`)
//! and changes only by a SASL exchange (KIP-368 re-authentication keeps it the same).
//!
//! (The SASL exchange state, re-authentication and the pre-authentication deadline are filled
//! in by the SASL work.)

use std::net::IpAddr;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

use crate::security::{Principal, SecurityProtocol};

/// Who sent a request, as the handlers see it (a snapshot taken when the request starts).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    pub ip: IpAddr,
    pub principal: Principal,
    /// Index of the listener in `ServerConfig::listeners`.
    pub listener: usize,
}

/// The security state of one connection.
#[derive(Debug)]
pub struct ConnSession {
    pub listener: usize,
    pub protocol: SecurityProtocol,
    principal: Mutex<Principal>,
    authenticated: AtomicBool,
}

impl ConnSession {
    /// A new connection's session: authenticated at once unless its listener uses SASL.
    pub fn new(listener: usize, protocol: SecurityProtocol) -> ConnSession {
        ConnSession {
            listener,
            protocol,
            principal: Mutex::new(Principal::anonymous()),
            authenticated: AtomicBool::new(!protocol.uses_sasl()),
        }
    }

    pub fn is_authenticated(&self) -> bool {
        self.authenticated.load(Ordering::Acquire)
    }

    /// Marks the connection authenticated as `principal` (a SASL exchange succeeded).
    pub fn authenticate(&self, principal: Principal) {
        self.set_principal(principal);
        self.authenticated.store(true, Ordering::Release);
    }

    /// Sets the principal without changing the authentication state (mTLS, before the first
    /// request).
    pub fn set_principal(&self, principal: Principal) {
        match self.principal.lock() {
            Ok(mut p) => *p = principal,
            Err(poisoned) => *poisoned.into_inner() = principal,
        }
    }

    pub fn principal(&self) -> Principal {
        match self.principal.lock() {
            Ok(p) => p.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// The handlers' view of the request's sender.
    pub fn caller(&self, ip: IpAddr) -> Caller {
        Caller {
            ip,
            principal: self.principal(),
            listener: self.listener,
        }
    }
}
