//! SaslHandshake (v1) and SaslAuthenticate (v0-2): the connection's SASL exchange, run on its
//! `ConnSession` (so the worker calls these directly, not through the API table, whose
//! entries only advertise the versions).
//!
//! Versions: every current client (librdkafka 2.x, kafka-python 2.3, aiokafka 0.14, kafkajs,
//! the Java 4.x client) sends SaslHandshake v1 followed by SaslAuthenticate requests when the
//! broker advertises them. SaslHandshake v0 is advertised too, as Kafka does: librdkafka
//! before 2.11 (Debian's kcat) uses SASL only if the advertised range starts at 0. After a v0
//! handshake the client sends raw tokens, size-prefixed without a request header, and gets raw
//! tokens back (`raw_token`); a failure closes the connection after the delay, with no answer
//! (there is no error field in a raw token).
//!
//! Failures are answered as Kafka's `SaslServerAuthenticator` answers them (codes and
//! messages), held for `failed_authentication_delay_ms`, then the connection is closed.

use std::time::Instant;

use base64::Engine;
use kafka_protocol::messages::{
    ResponseKind, SaslAuthenticateRequest, SaslAuthenticateResponse, SaslHandshakeRequest,
    SaslHandshakeResponse,
};
use kafka_protocol::protocol::StrBytes;

use super::{Ctx, Outcome};
use crate::broker::security::users::{UserStore, random_bytes};
use crate::error::{Error, NO_ERROR_CODE};
use crate::security::sasl::{ScramCredential, ScramEnv, ScramHash};
use crate::server::session::{AuthOutcome, ConnSession, HandshakeOutcome, SaslCredentials};

/// The broker's credential store as a SASL exchange uses it.
struct Credentials<'a>(&'a UserStore);

impl ScramEnv for Credentials<'_> {
    fn credential(&self, username: &str, hash: ScramHash) -> Option<ScramCredential> {
        self.0.credential(username, hash)
    }

    fn server_nonce(&self) -> String {
        // 24 bytes: 192 bits, printable once in URL-safe base64 (no comma).
        let bytes = random_bytes(24).unwrap_or_else(|_| vec![0; 24]);
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
    }

    fn unknown_user_salt(&self, username: &str) -> Vec<u8> {
        self.0.unknown_user_salt(username)
    }
}

impl SaslCredentials for Credentials<'_> {
    /// Against the user's SCRAM-SHA-512 credential, else its SCRAM-SHA-256 one. A user
    /// without either costs the same PBKDF2 (against a fake credential), so timing does not
    /// tell which users exist.
    fn plain_password_ok(&self, user: &str, password: &str) -> bool {
        for hash in [ScramHash::Sha512, ScramHash::Sha256] {
            if let Some(c) = self.0.credential(user, hash) {
                return c.verifies_password(hash, password.as_bytes());
            }
        }
        let fake = ScramCredential {
            salt: self.0.unknown_user_salt(user),
            iterations: crate::limits::SCRAM_ITERATIONS_MIN,
            stored_key: Vec::new(),
            server_key: Vec::new(),
        };
        let _ = fake.verifies_password(ScramHash::Sha512, password.as_bytes());
        false
    }
}

fn mechanisms(ctx: &Ctx) -> Vec<StrBytes> {
    ctx.config
        .sasl_mechanisms
        .iter()
        .map(|m| StrBytes::from_static_str(m.name()))
        .collect()
}

fn fail(ctx: &Ctx, body: ResponseKind) -> Outcome {
    Outcome::RespondThenClose {
        body,
        delay_ms: ctx.config.failed_authentication_delay_ms,
    }
}

pub fn handshake(
    ctx: &Ctx,
    version: i16,
    request: SaslHandshakeRequest,
    session: &ConnSession,
) -> Outcome {
    let response = |e: Option<Error>| {
        ResponseKind::SaslHandshake(
            SaslHandshakeResponse::default()
                .with_error_code(e.map_or(NO_ERROR_CODE, |e| e.kafka_code()))
                .with_mechanisms(mechanisms(ctx)),
        )
    };
    if !session.protocol.uses_sasl() {
        // As Kafka's KafkaApis on a listener without SASL.
        return Outcome::Respond(response(Some(Error::IllegalSaslState(String::new()))));
    }
    let requested = request.mechanism.as_str();
    if version == 0 && session.is_authenticated() {
        // KIP-368 re-authentication needs SaslAuthenticate (handshake v1).
        return fail(ctx, response(Some(Error::IllegalSaslState(String::new()))));
    }
    match session.with_sasl(|s| s.handshake(requested, &ctx.config.sasl_mechanisms)) {
        HandshakeOutcome::Accepted => {
            session.set_raw_tokens(version == 0);
            Outcome::Respond(response(None))
        }
        HandshakeOutcome::Unsupported => {
            log::info!("SASL mechanism {requested:?} requested by a client is not enabled");
            fail(
                ctx,
                response(Some(Error::UnsupportedSaslMechanism(String::new()))),
            )
        }
        HandshakeOutcome::IllegalState => {
            fail(ctx, response(Some(Error::IllegalSaslState(String::new()))))
        }
    }
}

pub fn authenticate(
    ctx: &Ctx,
    request: SaslAuthenticateRequest,
    session: &ConnSession,
    now: Instant,
) -> Outcome {
    let response = |e: Option<Error>, bytes: Vec<u8>, lifetime_ms: i64| {
        ResponseKind::SaslAuthenticate(
            SaslAuthenticateResponse::default()
                .with_error_code(e.as_ref().map_or(NO_ERROR_CODE, |e| e.kafka_code()))
                .with_error_message(e.as_ref().and_then(super::message))
                .with_auth_bytes(bytes.into())
                .with_session_lifetime_ms(lifetime_ms),
        )
    };
    if !session.protocol.uses_sasl() {
        return Outcome::Respond(response(
            Some(Error::IllegalSaslState(
                "SaslAuthenticate request received after successful authentication".into(),
            )),
            Vec::new(),
            0,
        ));
    }
    let store = Credentials(ctx.broker.users());
    let reauth_ms = ctx.config.connections_max_reauth_ms;
    match session.with_sasl(|s| s.authenticate(&request.auth_bytes, &store, reauth_ms, now)) {
        AuthOutcome::Continue(bytes) => Outcome::Respond(response(None, bytes, 0)),
        AuthOutcome::Done {
            bytes,
            principal,
            session_lifetime_ms,
        } => {
            log::debug!("SASL authenticated {principal}");
            session.authenticate(principal);
            Outcome::Respond(response(None, bytes, session_lifetime_ms))
        }
        AuthOutcome::Failed(msg) => {
            log::info!("SASL authentication failed: {msg}");
            fail(
                ctx,
                response(Some(Error::SaslAuthenticationFailed(msg)), Vec::new(), 0),
            )
        }
        AuthOutcome::IllegalState(msg) => fail(
            ctx,
            response(Some(Error::IllegalSaslState(msg)), Vec::new(), 0),
        ),
    }
}

/// What to do with a raw SASL token (after SaslHandshake v0).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RawToken {
    /// Send these bytes back as a raw token (size prefix, no header).
    Reply(Vec<u8>),
    /// The exchange failed: close the connection after `delay_ms`, with no answer.
    Fail { why: String, delay_ms: u64 },
}

/// Feeds one raw token (the whole frame after a SaslHandshake v0) to the connection's
/// exchange, as SaslAuthenticate's bytes would be.
pub fn raw_token(ctx: &Ctx, token: &[u8], session: &ConnSession, now: Instant) -> RawToken {
    let delay_ms = ctx.config.failed_authentication_delay_ms;
    let store = Credentials(ctx.broker.users());
    let reauth_ms = ctx.config.connections_max_reauth_ms;
    match session.with_sasl(|s| s.authenticate(token, &store, reauth_ms, now)) {
        AuthOutcome::Continue(bytes) => RawToken::Reply(bytes),
        AuthOutcome::Done {
            bytes, principal, ..
        } => {
            log::debug!("SASL (handshake v0) authenticated {principal}");
            session.set_raw_tokens(false);
            session.authenticate(principal);
            RawToken::Reply(bytes)
        }
        AuthOutcome::Failed(why) | AuthOutcome::IllegalState(why) => {
            log::info!("SASL authentication (handshake v0) failed: {why}");
            RawToken::Fail { why, delay_ms }
        }
    }
}

/// The API table's entry for both SASL APIs: never reached (the worker runs them on the
/// connection's session), it closes rather than answer without the session.
pub fn not_through_the_table() -> Outcome {
    Outcome::Close("a SASL request reached the API table instead of the session".into())
}
