//! TLS settings of the SSL and SASL_SSL listeners: the PEM files loaded once at start into one
//! shared `rustls::ServerConfig`, and the mTLS principal of a verified client certificate.
//!
//! Invariants: only the `ring` provider, TLS 1.2 and 1.3 (rustls' safe cipher suites, no
//! renegotiation, no compression). With a client CA every TLS connection must present a
//! certificate chaining to it (verified by webpki: signature, validity period, key usage for
//! client authentication), or the handshake fails; without one no certificate is asked for.
//! A verified client's principal is `User:<subject CN>` (the whole subject DN, RFC 4514, when
//! the subject has no CN); a certificate whose subject cannot be read is refused.

use std::path::Path;
use std::sync::Arc;

use rustls::RootCertStore;
use rustls::server::WebPkiClientVerifier;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

use super::TlsFiles;
use crate::error::{Error, Result};
use crate::security::Principal;

fn bad(what: &str, path: &Path, detail: impl std::fmt::Display) -> Error {
    Error::InvalidConfig(format!("{what} {}: {detail}", path.display()))
}

fn certificates(what: &str, path: &Path) -> Result<Vec<CertificateDer<'static>>> {
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| bad(what, path, e))?
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(|e| bad(what, path, e))?;
    if certs.is_empty() {
        return Err(bad(what, path, "no PEM CERTIFICATE in it"));
    }
    Ok(certs)
}

/// Loads the certificate chain, key and (for mTLS) client CA into a server config.
pub fn server_config(files: &TlsFiles) -> Result<Arc<rustls::ServerConfig>> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let chain = certificates("--ssl-cert", &files.cert)?;
    let key =
        PrivateKeyDer::from_pem_file(&files.key).map_err(|e| bad("--ssl-key", &files.key, e))?;
    let builder = rustls::ServerConfig::builder_with_provider(Arc::clone(&provider))
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(|e| Error::InvalidConfig(format!("TLS versions: {e}")))?;
    let builder = match &files.client_ca {
        None => builder.with_no_client_auth(),
        Some(ca) => {
            let mut roots = RootCertStore::empty();
            for cert in certificates("--ssl-client-ca", ca)? {
                roots.add(cert).map_err(|e| bad("--ssl-client-ca", ca, e))?;
            }
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
                .build()
                .map_err(|e| bad("--ssl-client-ca", ca, e))?;
            builder.with_client_cert_verifier(verifier)
        }
    };
    let config = builder
        .with_single_cert(chain, key)
        .map_err(|e| bad("--ssl-cert/--ssl-key", &files.cert, e))?;
    Ok(Arc::new(config))
}

/// Why a verified client certificate gives no principal.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("client certificate subject unreadable: {0}")]
pub struct BadSubject(String);

/// The principal of a client whose certificate (leaf, DER) was verified: `User:<CN>`.
pub fn principal_of(leaf: &[u8]) -> std::result::Result<Principal, BadSubject> {
    let (_, cert) =
        x509_parser::parse_x509_certificate(leaf).map_err(|e| BadSubject(e.to_string()))?;
    let subject = cert.subject();
    match subject.iter_common_name().next() {
        Some(cn) => {
            let cn = cn.as_str().map_err(|e| BadSubject(e.to_string()))?;
            if cn.is_empty() {
                return Err(BadSubject("empty common name".into()));
            }
            Ok(Principal::user(cn))
        }
        None => {
            let dn = subject.to_string();
            if dn.is_empty() {
                return Err(BadSubject("empty subject".into()));
            }
            Ok(Principal::user(dn))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn files(dir: &Path, cert: &str, key: &str) -> TlsFiles {
        std::fs::write(dir.join("c.pem"), cert).unwrap();
        std::fs::write(dir.join("k.pem"), key).unwrap();
        TlsFiles {
            cert: dir.join("c.pem"),
            key: dir.join("k.pem"),
            client_ca: None,
        }
    }

    #[test]
    fn unusable_pem_files_are_refused_naming_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let good = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
        let other = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
        let (cert, key) = (good.cert.pem(), good.signing_key.serialize_pem());
        assert!(server_config(&files(dir.path(), &cert, &key)).is_ok());
        for (c, k, named) in [
            ("not a certificate", key.as_str(), "c.pem"),
            (cert.as_str(), "not a key", "k.pem"),
            // A key that is not the certificate's.
            (cert.as_str(), &other.signing_key.serialize_pem(), "c.pem"),
        ] {
            let err = server_config(&files(dir.path(), c, k))
                .unwrap_err()
                .to_string();
            assert!(err.contains(named), "{err}");
        }
        let mut with_ca = files(dir.path(), &cert, &key);
        with_ca.client_ca = Some(dir.path().join("missing-ca.pem"));
        let err = server_config(&with_ca).unwrap_err().to_string();
        assert!(err.contains("missing-ca.pem"), "{err}");
    }
}
