//! One connection's security session, shared by the reactor (which owns the connection) and
//! the worker running its current request: the listener it came in on, whether it has
//! authenticated, and as whom; on a SASL listener, where its SASL exchange is (`SaslState`).
//!
//! Invariants: a connection on a SASL listener is unauthenticated until its SASL exchange
//! succeeds; until then only ApiVersions, SaslHandshake and SaslAuthenticate are served
//! (`ConnSession::gate`). The principal is fixed before any request runs on a TLS connection
//! (mTLS: `User:<subject CN>`) and changes only by a SASL exchange; a KIP-368
//! re-authentication must keep the mechanism and the principal. With
//! `connections_max_reauth_ms` set, an authenticated session expires that long after its
//! (re-)authentication; the first request after that other than SaslHandshake /
//! SaslAuthenticate closes the connection (as Kafka).
//!
//! The SASL state machine is sans-IO: it is fed the message and `now`, and the credential
//! store through `SaslCredentials`.

use std::net::IpAddr;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use kafka_protocol::messages::ApiKey;

use crate::security::sasl::{SaslError, ScramEnv, ScramHash, ScramServer, ScramStep, parse_plain};
use crate::security::{Principal, SaslMechanism, SecurityProtocol};

/// Who sent a request, as the handlers see it (a snapshot taken when the request starts).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    pub ip: IpAddr,
    pub principal: Principal,
    /// Index of the listener in `ServerConfig::listeners`.
    pub listener: usize,
}

/// The credential store as an exchange sees it.
pub trait SaslCredentials: ScramEnv {
    /// Whether `password` is `user`'s (PLAIN, checked against the SCRAM credentials).
    fn plain_password_ok(&self, user: &str, password: &str) -> bool;
}

/// Where a SASL exchange is.
#[derive(Debug)]
enum Phase {
    /// Waiting for SaslHandshake (first or re-authentication).
    Handshake,
    /// Handshake done; SaslAuthenticate messages go to the mechanism.
    Exchange(Exchange),
    /// A re-authentication asked for another mechanism: its SaslAuthenticate fails with this.
    BadReauthMechanism(String),
}

#[derive(Debug)]
enum Exchange {
    Plain,
    Scram(ScramServer),
}

/// The SASL state of a connection.
#[derive(Debug)]
pub struct SaslState {
    phase: Phase,
    mechanism: Option<SaslMechanism>,
    /// The mechanism and principal of the last success (a re-authentication keeps both).
    authenticated: Option<(SaslMechanism, Principal)>,
    expires_at: Option<Instant>,
}

/// The answer to a SaslHandshake.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HandshakeOutcome {
    Accepted,
    /// UNSUPPORTED_SASL_MECHANISM, then the connection is closed.
    Unsupported,
    /// ILLEGAL_SASL_STATE (a second handshake in the middle of an exchange), then close.
    IllegalState,
}

/// The answer to a SaslAuthenticate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthOutcome {
    /// More to exchange: send these bytes.
    Continue(Vec<u8>),
    /// Authenticated (or re-authenticated) as `principal`; `session_lifetime_ms` 0 = no limit.
    Done {
        bytes: Vec<u8>,
        principal: Principal,
        session_lifetime_ms: i64,
    },
    /// SASL_AUTHENTICATION_FAILED with this message, then (after the delay) close.
    Failed(String),
    /// ILLEGAL_SASL_STATE: SaslAuthenticate with no handshake before it.
    IllegalState(String),
}

impl Default for SaslState {
    fn default() -> Self {
        SaslState {
            phase: Phase::Handshake,
            mechanism: None,
            authenticated: None,
            expires_at: None,
        }
    }
}

impl SaslState {
    pub fn handshake(&mut self, requested: &str, enabled: &[SaslMechanism]) -> HandshakeOutcome {
        if !matches!(self.phase, Phase::Handshake) {
            return HandshakeOutcome::IllegalState;
        }
        let Some(mechanism) = enabled.iter().copied().find(|m| m.name() == requested) else {
            return HandshakeOutcome::Unsupported;
        };
        if let Some((previous, _)) = &self.authenticated
            && *previous != mechanism
        {
            self.phase = Phase::BadReauthMechanism(format!(
                "SASL mechanism '{requested}' requested by client is not supported for re-authentication of mechanism '{previous}'"
            ));
            return HandshakeOutcome::Accepted;
        }
        self.mechanism = Some(mechanism);
        self.phase = Phase::Exchange(match ScramHash::of(mechanism) {
            Some(hash) => Exchange::Scram(ScramServer::new(hash)),
            None => Exchange::Plain,
        });
        HandshakeOutcome::Accepted
    }

    /// Feeds one SaslAuthenticate's bytes. `reauth_ms` is `connections_max_reauth_ms`.
    pub fn authenticate(
        &mut self,
        bytes: &[u8],
        store: &dyn SaslCredentials,
        reauth_ms: u64,
        now: Instant,
    ) -> AuthOutcome {
        let reauth = self.authenticated.is_some();
        let what = if reauth {
            "re-authentication"
        } else {
            "authentication"
        };
        let phase = std::mem::replace(&mut self.phase, Phase::Handshake);
        let (mechanism, mut exchange) = match (phase, self.mechanism) {
            (Phase::Exchange(e), Some(m)) => (m, e),
            (Phase::BadReauthMechanism(msg), _) => return AuthOutcome::Failed(msg),
            _ => {
                return AuthOutcome::IllegalState(
                    "SaslAuthenticate request received before a SaslHandshake".into(),
                );
            }
        };
        let generic = || {
            format!(
                "Authentication failed during {what} due to invalid credentials with SASL mechanism {mechanism}"
            )
        };
        let step = match &mut exchange {
            Exchange::Plain => match parse_plain(bytes) {
                Ok(m) if store.plain_password_ok(m.username, m.password) => {
                    Ok(ScramStep::Success {
                        username: m.username.to_string(),
                        server_final: Vec::new(),
                    })
                }
                Ok(_) => Err(SaslError::Failed(
                    "Authentication failed: Invalid username or password".into(),
                )),
                Err(e) => Err(e),
            },
            Exchange::Scram(s) => s.step(bytes, store),
        };
        match step {
            Ok(ScramStep::Challenge(c)) => {
                self.phase = Phase::Exchange(exchange);
                AuthOutcome::Continue(c)
            }
            Ok(ScramStep::Success {
                username,
                server_final,
            }) => {
                let principal = Principal::user(username);
                if let Some((_, previous)) = &self.authenticated
                    && *previous != principal
                {
                    return AuthOutcome::Failed(format!(
                        "Cannot change principals during re-authentication from {}.{}: {}.{}",
                        previous.kind, previous.name, principal.kind, principal.name
                    ));
                }
                self.authenticated = Some((mechanism, principal.clone()));
                self.expires_at = (reauth_ms > 0).then(|| now + Duration::from_millis(reauth_ms));
                AuthOutcome::Done {
                    bytes: server_final,
                    principal,
                    session_lifetime_ms: i64::try_from(reauth_ms).unwrap_or(i64::MAX),
                }
            }
            Err(SaslError::Failed(msg)) => AuthOutcome::Failed(msg),
            Err(e) => {
                log::debug!("SASL {mechanism} {what} refused: {e}");
                AuthOutcome::Failed(generic())
            }
        }
    }

    /// Whether an authenticated session's lifetime has passed.
    pub fn expired(&self, now: Instant) -> bool {
        self.expires_at.is_some_and(|at| now >= at)
    }
}

/// What the pre-authentication gate decides for a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Gate {
    Pass,
    /// Close the connection without an answer (Kafka's reason).
    Close(String),
}

/// The security state of one connection.
#[derive(Debug)]
pub struct ConnSession {
    pub listener: usize,
    pub protocol: SecurityProtocol,
    principal: Mutex<Principal>,
    authenticated: AtomicBool,
    sasl: Mutex<SaslState>,
    /// After a SaslHandshake v0: the next frames are raw SASL tokens, not Kafka requests,
    /// until the exchange ends.
    raw_tokens: AtomicBool,
}

impl ConnSession {
    /// A new connection's session: authenticated at once unless its listener uses SASL.
    pub fn new(listener: usize, protocol: SecurityProtocol) -> ConnSession {
        ConnSession {
            listener,
            protocol,
            principal: Mutex::new(Principal::anonymous()),
            authenticated: AtomicBool::new(!protocol.uses_sasl()),
            sasl: Mutex::new(SaslState::default()),
            raw_tokens: AtomicBool::new(false),
        }
    }

    /// Whether the connection's next frame is a raw SASL token (SaslHandshake v0).
    pub fn raw_tokens(&self) -> bool {
        self.raw_tokens.load(Ordering::Acquire)
    }

    pub fn set_raw_tokens(&self, on: bool) {
        self.raw_tokens.store(on, Ordering::Release);
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

    /// Runs `f` on the SASL state (one request of a connection runs at a time, so the lock
    /// is never contended).
    pub fn with_sasl<T>(&self, f: impl FnOnce(&mut SaslState) -> T) -> T {
        match self.sasl.lock() {
            Ok(mut s) => f(&mut s),
            Err(poisoned) => f(&mut poisoned.into_inner()),
        }
    }

    /// The pre-authentication gate: before authentication only ApiVersions, SaslHandshake and
    /// SaslAuthenticate pass; after an expired session only SaslHandshake and SaslAuthenticate
    /// (the re-authentication) do.
    pub fn gate(&self, api: ApiKey, now: Instant) -> Gate {
        if !self.protocol.uses_sasl() {
            return Gate::Pass;
        }
        let sasl_api = matches!(api, ApiKey::SaslHandshake | ApiKey::SaslAuthenticate);
        if !self.is_authenticated() {
            return if sasl_api || api == ApiKey::ApiVersions {
                Gate::Pass
            } else {
                Gate::Close(format!(
                    "Unexpected Kafka request of type {api:?} during SASL handshake."
                ))
            };
        }
        if !sasl_api && self.with_sasl(|s| s.expired(now)) {
            return Gate::Close(format!(
                "the SASL session expired (connections.max.reauth.ms) before this {api:?} request and was not re-authenticated"
            ));
        }
        Gate::Pass
    }
}

#[cfg(test)]
#[path = "session_tests.rs"]
mod tests;
