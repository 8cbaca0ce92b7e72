//! The server side of one SCRAM exchange (RFC 5802 §5), sans-IO: client-first → server-first,
//! client-final → server-final, as Kafka's `ScramSaslServer`.
//!
//! Invariants:
//! - the exchange succeeds only if the client's proof matches the stored key (constant-time),
//!   the nonce is the one the server issued, and the channel binding is the gs2 header the
//!   client first sent;
//! - an unknown user gets a server-first like a known one (a salt derived from its name by
//!   `ScramEnv::unknown_user_salt`, the minimum iterations) and fails at the proof, so the
//!   exchange does not tell which users exist;
//! - once failed or done, every further message is refused.

use super::SaslError;
use super::credential::{ScramCredential, ScramHash, constant_time_eq};
use super::scram_messages::{parse_client_final, parse_client_first, server_final, server_first};
use crate::limits::SCRAM_ITERATIONS_MIN;

/// What the exchange needs from the outside: the credential store and randomness.
pub trait ScramEnv {
    fn credential(&self, username: &str, hash: ScramHash) -> Option<ScramCredential>;
    /// A fresh, unpredictable nonce part (printable, no comma).
    fn server_nonce(&self) -> String;
    /// The salt shown to a client naming a user without a credential: the same for the same
    /// name, unpredictable without the server's secret.
    fn unknown_user_salt(&self, username: &str) -> Vec<u8>;
}

/// What the server answers to a step that did not fail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ScramStep {
    /// server-first-message; the exchange continues.
    Challenge(Vec<u8>),
    /// server-final-message; `username` is authenticated.
    Success {
        username: String,
        server_final: Vec<u8>,
    },
}

#[derive(Debug)]
enum State {
    ClientFirst,
    ClientFinal {
        username: String,
        gs2_header: String,
        nonce: String,
        /// client-first-bare "," server-first ",": the AuthMessage's start.
        auth_prefix: String,
        /// `None` for an unknown user: the proof is then refused.
        credential: Option<ScramCredential>,
    },
    Finished,
}

#[derive(Debug)]
pub struct ScramServer {
    hash: ScramHash,
    state: State,
}

impl ScramServer {
    pub fn new(hash: ScramHash) -> ScramServer {
        ScramServer {
            hash,
            state: State::ClientFirst,
        }
    }

    /// Feeds the client's next message.
    pub fn step(&mut self, msg: &[u8], env: &dyn ScramEnv) -> Result<ScramStep, SaslError> {
        match std::mem::replace(&mut self.state, State::Finished) {
            State::ClientFirst => self.client_first(msg, env),
            State::ClientFinal {
                username,
                gs2_header,
                nonce,
                auth_prefix,
                credential,
            } => {
                let f = parse_client_final(msg)?;
                if f.channel_binding != gs2_header.as_bytes() {
                    return Err(SaslError::Rejected("channel binding mismatch".into()));
                }
                if f.nonce != nonce {
                    return Err(SaslError::Rejected(
                        "Invalid client nonce in the final client message.".into(),
                    ));
                }
                let Some(cred) = credential else {
                    return Err(SaslError::Rejected(format!("unknown user {username:?}")));
                };
                let auth_message = format!("{auth_prefix}{}", f.without_proof);
                let signature = self.hash.hmac(&cred.stored_key, auth_message.as_bytes());
                if f.proof.len() != signature.len() {
                    return Err(SaslError::Rejected("proof of the wrong length".into()));
                }
                let client_key: Vec<u8> =
                    f.proof.iter().zip(&signature).map(|(p, s)| p ^ s).collect();
                if !constant_time_eq(&self.hash.hash(&client_key), &cred.stored_key) {
                    return Err(SaslError::Rejected("Invalid client credentials".into()));
                }
                let server_signature = self.hash.hmac(&cred.server_key, auth_message.as_bytes());
                Ok(ScramStep::Success {
                    username,
                    server_final: server_final(&server_signature).into_bytes(),
                })
            }
            State::Finished => Err(SaslError::Rejected(
                "message after the exchange ended".into(),
            )),
        }
    }

    fn client_first(&mut self, msg: &[u8], env: &dyn ScramEnv) -> Result<ScramStep, SaslError> {
        let f = parse_client_first(msg)?;
        if f.extensions
            .iter()
            .any(|&(k, v)| k == "tokenauth" && v.eq_ignore_ascii_case("true"))
        {
            return Err(SaslError::Rejected(
                "delegation tokens are not supported".into(),
            ));
        }
        if f.authzid.as_ref().is_some_and(|a| *a != f.username) {
            return Err(SaslError::Failed(
                "Authentication failed: Client requested an authorization id that is different from username"
                    .into(),
            ));
        }
        let credential = env.credential(&f.username, self.hash);
        let (salt, iterations) = match &credential {
            Some(c) => (c.salt.clone(), c.iterations),
            None => (env.unknown_user_salt(&f.username), SCRAM_ITERATIONS_MIN),
        };
        let nonce = format!("{}{}", f.nonce, env.server_nonce());
        let first = server_first(&nonce, &salt, iterations);
        self.state = State::ClientFinal {
            username: f.username,
            gs2_header: f.gs2_header.to_string(),
            auth_prefix: format!("{},{first},", f.bare),
            nonce,
            credential,
        };
        Ok(ScramStep::Challenge(first.into_bytes()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine;
    use base64::engine::general_purpose::STANDARD as B64;

    struct Env(Option<ScramCredential>, &'static str);

    impl ScramEnv for Env {
        fn credential(&self, username: &str, _: ScramHash) -> Option<ScramCredential> {
            (username == "user").then(|| self.0.clone()).flatten()
        }
        fn server_nonce(&self) -> String {
            self.1.to_string()
        }
        fn unknown_user_salt(&self, username: &str) -> Vec<u8> {
            username.as_bytes().to_vec()
        }
    }

    /// The client side, as a test needs it: the final message for `password`.
    fn client_final(
        hash: ScramHash,
        password: &str,
        first_bare: &str,
        server_first: &str,
    ) -> String {
        let mut parts = server_first.split(',');
        let nonce = &parts.next().unwrap()[2..];
        let salt = B64.decode(&parts.next().unwrap()[2..]).unwrap();
        let iterations: u32 = parts.next().unwrap()[2..].parse().unwrap();
        let salted = hash.salted_password(password.as_bytes(), &salt, iterations);
        let client_key = hash.client_key(&salted);
        let stored = hash.hash(&client_key);
        let without_proof = format!("c=biws,r={nonce}");
        let auth = format!("{first_bare},{server_first},{without_proof}");
        let sig = hash.hmac(&stored, auth.as_bytes());
        let proof: Vec<u8> = client_key.iter().zip(&sig).map(|(a, b)| a ^ b).collect();
        format!("{without_proof},p={}", B64.encode(proof))
    }

    /// RFC 7677 §3, byte for byte.
    #[test]
    fn rfc7677_exchange() {
        let salt = B64.decode("W22ZaJ0SNY7soEsUEjb6gQ==").unwrap();
        let cred = ScramCredential::from_password(ScramHash::Sha256, b"pencil", salt, 4096);
        let env = Env(Some(cred), "%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0");
        let mut s = ScramServer::new(ScramHash::Sha256);
        let first = s.step(b"n,,n=user,r=rOprNGfwEbeRWgbNEkqO", &env).unwrap();
        assert_eq!(
            first,
            ScramStep::Challenge(
                b"r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096".to_vec()
            )
        );
        let fin = b"c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=";
        assert_eq!(
            s.step(fin, &env).unwrap(),
            ScramStep::Success {
                username: "user".into(),
                server_final: b"v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=".to_vec()
            }
        );
        assert!(s.step(fin, &env).is_err());
    }

    #[test]
    fn wrong_password_unknown_user_and_bad_nonce_fail() {
        for hash in [ScramHash::Sha256, ScramHash::Sha512] {
            let cred = ScramCredential::from_password(hash, b"secret", b"salty".to_vec(), 4096);
            let env = Env(Some(cred), "SRV");
            for (user, pw, ok) in [
                ("user", "secret", true),
                ("user", "wrong", false),
                ("bob", "secret", false),
            ] {
                let mut s = ScramServer::new(hash);
                let bare = format!("n={user},r=CLI");
                let ScramStep::Challenge(sf) =
                    s.step(format!("n,,{bare}").as_bytes(), &env).unwrap()
                else {
                    panic!("no challenge")
                };
                let sf = String::from_utf8(sf).unwrap();
                let fin = client_final(hash, pw, &bare, &sf);
                assert_eq!(
                    s.step(fin.as_bytes(), &env).is_ok(),
                    ok,
                    "{hash:?} {user} {pw}"
                );
            }
            let mut s = ScramServer::new(hash);
            let _ = s.step(b"n,,n=user,r=CLI", &env).unwrap();
            assert!(s.step(b"c=biws,r=CLIother,p=AAAA", &env).is_err());
            let mut s = ScramServer::new(hash);
            assert!(matches!(
                s.step(b"n,a=other,n=user,r=CLI", &env),
                Err(SaslError::Failed(_))
            ));
        }
    }
}
