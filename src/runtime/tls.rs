//! SIP over TLS (RFC 3261 §26.2.1; RFC 5630 for `sips:`): the server's certificate and key
//! from PEM files, and the acceptor each TLS connection's handshake runs through. Connections
//! themselves are `tcp.rs`'s, with the same limits.

use std::path::Path;
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::TlsAcceptor;

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("{path}: cannot read a PEM certificate chain: {message}")]
    Certificate { path: String, message: String },
    #[error("{path}: cannot read a PEM private key: {message}")]
    Key { path: String, message: String },
    #[error("the certificate and key do not make a TLS server: {0}")]
    Config(String),
}

/// The acceptor for the configured certificate chain (leaf first) and its private key.
/// Phones offer TLS 1.2 as often as 1.3, so both are allowed.
pub fn acceptor(certificate: &Path, key: &Path) -> Result<TlsAcceptor, TlsError> {
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(certificate)
        .and_then(|certs| certs.collect::<Result<_, _>>())
        .map_err(|e| TlsError::Certificate {
            path: certificate.display().to_string(),
            message: e.to_string(),
        })?;
    if chain.is_empty() {
        return Err(TlsError::Certificate {
            path: certificate.display().to_string(),
            message: "no CERTIFICATE block".into(),
        });
    }
    let key = PrivateKeyDer::from_pem_file(key).map_err(|e| TlsError::Key {
        path: key.display().to_string(),
        message: e.to_string(),
    })?;
    // ring rather than aws-lc-rs: aws-lc builds a C library, which would take a clean build
    // past its budget; what ring lacks (post-quantum key exchange) no SIP phone offers today.
    #[allow(deprecated)]
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(|e| TlsError::Config(e.to_string()))?
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .map_err(|e| TlsError::Config(e.to_string()))?;
    Ok(TlsAcceptor::from(Arc::new(config)))
}

/// The connector for connections hotline opens over TLS, trusting the authorities in `ca`
/// (PEM), or the system's bundle when none is configured.
pub fn connector(ca: Option<&Path>) -> Result<tokio_rustls::TlsConnector, TlsError> {
    const SYSTEM_BUNDLE: &str = "/etc/ssl/certs/ca-certificates.crt";
    let path = ca.unwrap_or(Path::new(SYSTEM_BUNDLE));
    let mut roots = rustls::RootCertStore::empty();
    let certs = CertificateDer::pem_file_iter(path).and_then(|c| c.collect::<Result<Vec<_>, _>>());
    match certs {
        Ok(certs) => {
            roots.add_parsable_certificates(certs);
        }
        Err(e) if ca.is_some() => {
            return Err(TlsError::Certificate {
                path: path.display().to_string(),
                message: e.to_string(),
            });
        }
        Err(e) => {
            tracing::warn!(path = SYSTEM_BUNDLE, error = %e, "no system certificate authorities: TLS to trunks will fail until sip.tls_ca names some")
        }
    }
    #[allow(deprecated)]
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(|e| TlsError::Config(e.to_string()))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(tokio_rustls::TlsConnector::from(Arc::new(config)))
}
