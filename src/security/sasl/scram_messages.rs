//! The SCRAM messages of RFC 5802 §7, parsed from the client and formatted for it.
//!
//! client-first-message = gs2-header client-first-message-bare, where gs2-header =
//! (`n` | `y`) `,` [`a=` saslname] `,` and client-first-message-bare = `n=` saslname `,r=` nonce
//! followed by extensions `,key=value` (Kafka sends `tokenauth=true` for delegation tokens;
//! unknown ones are ignored, as Kafka does). `p=` (channel binding) is refused: no TLS channel
//! binding is offered. A mandatory extension (`m=`) is refused, as the RFC requires.
//!
//! client-final-message = `c=` base64(gs2-header) `,r=` nonce [`,` extensions] `,p=`
//! base64(proof); the proof is the last attribute.
//!
//! Parsers borrow from the input and allocate at most its length; any bytes are safe to feed.

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;

use super::SaslError;

fn malformed(why: impl Into<String>) -> SaslError {
    SaslError::Malformed(why.into())
}

/// A parsed client-first-message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientFirst<'a> {
    /// `n,,` or `n,a=...,`: what the client-final's `c=` must carry back.
    pub gs2_header: &'a str,
    pub authzid: Option<String>,
    pub username: String,
    pub nonce: &'a str,
    /// client-first-message-bare, for the AuthMessage.
    pub bare: &'a str,
    pub extensions: Vec<(&'a str, &'a str)>,
}

/// A parsed client-final-message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientFinal<'a> {
    pub channel_binding: Vec<u8>,
    pub nonce: &'a str,
    /// client-final-message-without-proof, for the AuthMessage.
    pub without_proof: &'a str,
    pub proof: Vec<u8>,
}

/// RFC 5802 `printable`: %x21-2B / %x2D-7E (no comma).
fn is_printable(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| (0x21..=0x7e).contains(&b) && b != b',')
}

/// Decodes a saslname: `=2C` is `,`, `=3D` is `=`, any other `=` is an error; non-empty.
pub fn decode_saslname(s: &str) -> Result<String, SaslError> {
    if s.is_empty() {
        return Err(malformed("empty saslname"));
    }
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find('=') {
        out.push_str(&rest[..i]);
        match rest.get(i..i + 3) {
            Some("=2C") => out.push(','),
            Some("=3D") => out.push('='),
            _ => return Err(malformed("bad '=' escape in saslname")),
        }
        rest = &rest[i + 3..];
    }
    out.push_str(rest);
    if out.contains('\u{0}') {
        return Err(malformed("NUL in saslname"));
    }
    Ok(out)
}

/// Encodes a name as a saslname (the inverse of `decode_saslname`).
pub fn encode_saslname(name: &str) -> String {
    name.replace('=', "=3D").replace(',', "=2C")
}

/// `key=value` with a one-letter-or-more key; `None` if there is no `=` or the key is empty.
fn attr(s: &str) -> Option<(&str, &str)> {
    let (k, v) = s.split_once('=')?;
    (!k.is_empty()).then_some((k, v))
}

pub fn parse_client_first(msg: &[u8]) -> Result<ClientFirst<'_>, SaslError> {
    let text = std::str::from_utf8(msg).map_err(|_| malformed("client-first is not UTF-8"))?;
    let mut parts = text.splitn(3, ',');
    let (Some(cbind), Some(authz), Some(bare)) = (parts.next(), parts.next(), parts.next()) else {
        return Err(malformed("client-first without a gs2 header"));
    };
    match cbind {
        "n" | "y" => {}
        _ if cbind.starts_with("p=") => return Err(malformed("channel binding is not supported")),
        _ => return Err(malformed("bad gs2 channel-binding flag")),
    }
    let authzid = match authz {
        "" => None,
        a => match a.strip_prefix("a=") {
            Some(name) => Some(decode_saslname(name)?),
            None => return Err(malformed("bad gs2 authzid")),
        },
    };
    let gs2_header = &text[..cbind.len() + authz.len() + 2];
    let mut attrs = bare.split(',');
    let first = attrs.next().unwrap_or_default();
    if first.starts_with("m=") {
        return Err(malformed("mandatory extension not supported"));
    }
    let username = match first.strip_prefix("n=") {
        Some(u) => decode_saslname(u)?,
        None => return Err(malformed("client-first without a username")),
    };
    let nonce = match attrs.next().and_then(|a| a.strip_prefix("r=")) {
        Some(n) if is_printable(n) => n,
        _ => return Err(malformed("client-first without a valid nonce")),
    };
    let extensions = attrs
        .map(|a| attr(a).ok_or_else(|| malformed("bad extension in client-first")))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(ClientFirst {
        gs2_header,
        authzid,
        username,
        nonce,
        bare,
        extensions,
    })
}

pub fn parse_client_final(msg: &[u8]) -> Result<ClientFinal<'_>, SaslError> {
    let text = std::str::from_utf8(msg).map_err(|_| malformed("client-final is not UTF-8"))?;
    let (without_proof, proof) = text
        .rsplit_once(",p=")
        .ok_or_else(|| malformed("client-final without a proof"))?;
    let mut attrs = without_proof.split(',');
    let channel_binding = match attrs.next().and_then(|a| a.strip_prefix("c=")) {
        Some(c) => B64
            .decode(c)
            .map_err(|_| malformed("channel binding is not base64"))?,
        None => return Err(malformed("client-final without channel binding")),
    };
    let nonce = match attrs.next().and_then(|a| a.strip_prefix("r=")) {
        Some(n) if is_printable(n) => n,
        _ => return Err(malformed("client-final without a valid nonce")),
    };
    for a in attrs {
        attr(a).ok_or_else(|| malformed("bad extension in client-final"))?;
    }
    let proof = B64
        .decode(proof)
        .map_err(|_| malformed("proof is not base64"))?;
    Ok(ClientFinal {
        channel_binding,
        nonce,
        without_proof,
        proof,
    })
}

/// server-first-message: `r=<nonce>,s=<base64 salt>,i=<iterations>`.
pub fn server_first(nonce: &str, salt: &[u8], iterations: u32) -> String {
    format!("r={nonce},s={},i={iterations}", B64.encode(salt))
}

/// server-final-message: `v=<base64 ServerSignature>`.
pub fn server_final(signature: &[u8]) -> String {
    format!("v={}", B64.encode(signature))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn rfc5802_client_messages() {
        let f = parse_client_first(b"n,,n=user,r=fyko+d2lbbFgONRv9qkxdawL").unwrap();
        assert_eq!(f.gs2_header, "n,,");
        assert_eq!(f.username, "user");
        assert_eq!(f.nonce, "fyko+d2lbbFgONRv9qkxdawL");
        assert_eq!(f.bare, "n=user,r=fyko+d2lbbFgONRv9qkxdawL");
        let f = parse_client_first(b"n,a=a=3Db,n=a=3Db=2Cc,r=x,tokenauth=true").unwrap();
        assert_eq!(f.gs2_header, "n,a=a=3Db,");
        assert_eq!(f.authzid.as_deref(), Some("a=b"));
        assert_eq!(f.username, "a=b,c");
        assert_eq!(f.extensions, vec![("tokenauth", "true")]);
        let c = parse_client_final(b"c=biws,r=abc,p=dj1yTlZ3").unwrap();
        assert_eq!(c.channel_binding, b"n,,");
        assert_eq!(c.without_proof, "c=biws,r=abc");
        assert_eq!(c.proof, b"v=rNVw");
    }

    #[test]
    fn refusals() {
        for bad in [
            &b""[..],
            b"n,,",
            b"n,,n=,r=x",
            b"n,,n=u",
            b"n,,n=u,r=",
            b"n,,n=u,r=a b",
            b"n,,n=a=2,r=x",
            b"p=tls-unique,,n=u,r=x",
            b"x,,n=u,r=x",
            b"n,b=u,n=u,r=x",
            b"n,,m=ext,n=u,r=x",
            b"n,,n=u,r=x,noequals",
            b"n,,n=u\xff,r=x",
        ] {
            assert!(
                parse_client_first(bad).is_err(),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
        for bad in [
            &b""[..],
            b"c=biws,r=x",
            b"c=bi!s,r=x,p=AAAA",
            b"r=x,p=AAAA",
            b"c=biws,p=AAAA",
            b"c=biws,r=x,p=!!",
        ] {
            assert!(
                parse_client_final(bad).is_err(),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
    }

    proptest! {
        #[test]
        fn saslname_round_trips(name in "[^\u{0}]{1,16}") {
            prop_assert_eq!(decode_saslname(&encode_saslname(&name)).unwrap(), name);
        }

        #[test]
        fn any_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..96)) {
            let _ = parse_client_first(&bytes);
            let _ = parse_client_final(&bytes);
        }

        /// A well-formed client-first built from any name and nonce parses back to them.
        #[test]
        fn client_first_round_trips(name in "[^\u{0}]{1,16}", nonce in "[!-+\\--~]{1,32}") {
            let msg = format!("n,,n={},r={nonce}", encode_saslname(&name));
            let f = parse_client_first(msg.as_bytes()).unwrap();
            prop_assert_eq!(f.username, name);
            prop_assert_eq!(f.nonce, nonce.as_str());
        }
    }
}
