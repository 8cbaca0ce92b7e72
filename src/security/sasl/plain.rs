//! The PLAIN mechanism's one client message (RFC 4616 §2): `[authzid] NUL authcid NUL passwd`,
//! UTF-8, no NUL inside a field.
//!
//! As Kafka's `PlainSaslServer`: exactly three fields, a non-empty username and password, and
//! an authorization id that is empty or the username.

use super::SaslError;

/// A parsed PLAIN message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlainMessage<'a> {
    pub authzid: &'a str,
    pub username: &'a str,
    pub password: &'a str,
}

fn failed(why: &str) -> SaslError {
    SaslError::Failed(format!("Authentication failed: {why}"))
}

/// Parses and checks a PLAIN message (Kafka's messages for each refusal).
pub fn parse_plain(msg: &[u8]) -> Result<PlainMessage<'_>, SaslError> {
    let text = std::str::from_utf8(msg)
        .map_err(|_| SaslError::Malformed("SASL/PLAIN message is not UTF-8".into()))?;
    let mut fields = text.split('\u{0}');
    let (Some(authzid), Some(username), Some(password), None) =
        (fields.next(), fields.next(), fields.next(), fields.next())
    else {
        let n = text.split('\u{0}').count();
        return Err(SaslError::Failed(format!(
            "Invalid SASL/PLAIN response: expected 3 tokens, got {n}"
        )));
    };
    if username.is_empty() {
        return Err(failed("username not specified"));
    }
    if password.is_empty() {
        return Err(failed("password not specified"));
    }
    if !authzid.is_empty() && authzid != username {
        return Err(failed(
            "Client requested an authorization id that is different from username",
        ));
    }
    Ok(PlainMessage {
        authzid,
        username,
        password,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn rfc4616_forms() {
        let m = parse_plain(b"\0tim\0tanstaaftanstaaf").unwrap();
        assert_eq!(
            (m.authzid, m.username, m.password),
            ("", "tim", "tanstaaftanstaaf")
        );
        let m = parse_plain(b"Ursel\0Ursel\0pw").unwrap();
        assert_eq!(m.authzid, "Ursel");
        assert!(parse_plain(b"Kurt\0Ursel\0pw").is_err());
        assert!(parse_plain(b"\0\0pw").is_err());
        assert!(parse_plain(b"\0u\0").is_err());
        assert!(parse_plain(b"\0u\0p\0").is_err());
        assert!(parse_plain(b"u\0p").is_err());
        assert!(parse_plain(b"\0u\0\xff").is_err());
    }

    proptest! {
        /// Any bytes: no panic; a message built from fields without NUL round-trips.
        #[test]
        fn any_bytes_and_round_trip(bytes in proptest::collection::vec(any::<u8>(), 0..64),
                                    user in "[^\u{0}]{1,12}", pw in "[^\u{0}]{1,12}") {
            let _ = parse_plain(&bytes);
            let msg = format!("\0{user}\0{pw}");
            let m = parse_plain(msg.as_bytes()).unwrap();
            prop_assert_eq!(m.username, user.as_str());
            prop_assert_eq!(m.password, pw.as_str());
        }
    }
}
