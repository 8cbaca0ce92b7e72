//! The SASL state machine, fed messages and `now`: handshake, PLAIN, SCRAM, re-authentication,
//! expiry, out-of-order requests.

use super::*;
use crate::security::sasl::ScramCredential;

struct Store;

impl ScramEnv for Store {
    fn credential(&self, username: &str, hash: ScramHash) -> Option<ScramCredential> {
        (username == "alice")
            .then(|| ScramCredential::from_password(hash, b"pw", b"salt".to_vec(), 4096))
    }
    fn server_nonce(&self) -> String {
        "S".into()
    }
    fn unknown_user_salt(&self, _: &str) -> Vec<u8> {
        b"fake".to_vec()
    }
}

impl SaslCredentials for Store {
    fn plain_password_ok(&self, user: &str, password: &str) -> bool {
        user == "alice" && password == "pw"
    }
}

const ALL: [SaslMechanism; 3] = SaslMechanism::ALL;

#[test]
fn plain_then_reauth_keeps_the_principal_and_expires() {
    let t0 = Instant::now();
    let mut s = SaslState::default();
    assert_eq!(s.handshake("PLAIN", &ALL), HandshakeOutcome::Accepted);
    let done = s.authenticate(b"\0alice\0pw", &Store, 1000, t0);
    assert!(
        matches!(
            done,
            AuthOutcome::Done {
                session_lifetime_ms: 1000,
                ..
            }
        ),
        "{done:?}"
    );
    assert!(!s.expired(t0 + Duration::from_millis(999)));
    assert!(s.expired(t0 + Duration::from_millis(1000)));
    // Re-authentication: same mechanism, same user, a new lifetime.
    let t1 = t0 + Duration::from_millis(900);
    assert_eq!(s.handshake("PLAIN", &ALL), HandshakeOutcome::Accepted);
    assert!(matches!(
        s.authenticate(b"\0alice\0pw", &Store, 1000, t1),
        AuthOutcome::Done { .. }
    ));
    assert!(!s.expired(t0 + Duration::from_millis(1500)));
    // Another mechanism on re-authentication fails at its SaslAuthenticate.
    assert_eq!(
        s.handshake("SCRAM-SHA-256", &ALL),
        HandshakeOutcome::Accepted
    );
    assert!(matches!(
        s.authenticate(b"n,,n=alice,r=x", &Store, 1000, t1),
        AuthOutcome::Failed(m) if m.contains("re-authentication of mechanism 'PLAIN'")
    ));
}

#[test]
fn failures_and_out_of_order_requests() {
    let now = Instant::now();
    let mut s = SaslState::default();
    assert!(matches!(
        s.authenticate(b"\0alice\0pw", &Store, 0, now),
        AuthOutcome::IllegalState(_)
    ));
    assert_eq!(s.handshake("GSSAPI", &ALL), HandshakeOutcome::Unsupported);
    assert_eq!(
        s.handshake("PLAIN", &[SaslMechanism::ScramSha512]),
        HandshakeOutcome::Unsupported
    );
    assert_eq!(s.handshake("PLAIN", &ALL), HandshakeOutcome::Accepted);
    assert_eq!(s.handshake("PLAIN", &ALL), HandshakeOutcome::IllegalState);
    assert_eq!(
        s.authenticate(b"\0alice\0nope", &Store, 0, now),
        AuthOutcome::Failed("Authentication failed: Invalid username or password".into())
    );
    let mut s = SaslState::default();
    s.handshake("SCRAM-SHA-512", &ALL);
    assert!(matches!(
        s.authenticate(b"n,,n=bob,r=C", &Store, 0, now),
        AuthOutcome::Continue(_)
    ));
    assert_eq!(
        s.authenticate(b"c=biws,r=CS,p=AAAA", &Store, 0, now),
        AuthOutcome::Failed(
            "Authentication failed during authentication due to invalid credentials with SASL mechanism SCRAM-SHA-512".into()
        )
    );
    assert!(!s.expired(now + Duration::from_secs(3600)));
}

#[test]
fn gate_before_and_after_authentication() {
    let now = Instant::now();
    let plain = ConnSession::new(0, SecurityProtocol::Plaintext);
    assert_eq!(plain.gate(ApiKey::Produce, now), Gate::Pass);
    let sasl = ConnSession::new(0, SecurityProtocol::SaslPlaintext);
    for api in [
        ApiKey::ApiVersions,
        ApiKey::SaslHandshake,
        ApiKey::SaslAuthenticate,
    ] {
        assert_eq!(sasl.gate(api, now), Gate::Pass);
    }
    assert!(matches!(sasl.gate(ApiKey::Metadata, now), Gate::Close(_)));
    sasl.with_sasl(|s| {
        s.handshake("PLAIN", &ALL);
        s.authenticate(b"\0alice\0pw", &Store, 10, now)
    });
    sasl.authenticate(Principal::user("alice"));
    assert_eq!(sasl.gate(ApiKey::Metadata, now), Gate::Pass);
    let later = now + Duration::from_millis(10);
    assert!(matches!(sasl.gate(ApiKey::Metadata, later), Gate::Close(_)));
    assert_eq!(sasl.gate(ApiKey::SaslHandshake, later), Gate::Pass);
}
