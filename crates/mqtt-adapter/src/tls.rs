//! rustls configurations (ring provider, TLS 1.2 and 1.3) from PEM files: the broker's
//! listeners and the client's `mqtts://` connections. Each runtime wraps them in its own
//! acceptor or connector.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{ring, CryptoProvider};
use rustls::{DigitallySignedStruct, RootCertStore, SignatureScheme};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};

use crate::client::{Error as ClientError, TlsOptions};

/// A TLS listener's certificate chain and private key, as PEM files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsConfig {
    /// PEM file with the certificate chain, leaf first.
    pub cert_path: PathBuf,
    /// PEM file with the private key (PKCS#8, PKCS#1 or SEC1).
    pub key_path: PathBuf,
}

/// Why a listener's TLS configuration could not be built.
#[non_exhaustive]
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A certificate or key file could not be read or holds no usable PEM item.
    #[error("{}: {reason}", path.display())]
    Pem {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// rustls refused the certificate and key.
    #[error("TLS configuration: {0}")]
    Rustls(#[from] rustls::Error),
}

impl TlsConfig {
    /// Reads both files and builds the server configuration: no client certificates.
    pub fn server_config(&self) -> Result<Arc<rustls::ServerConfig>, TlsError> {
        let pem_error = |path: &Path, e: &dyn std::fmt::Display| TlsError::Pem {
            path: path.to_owned(),
            reason: e.to_string(),
        };
        let certs = CertificateDer::pem_file_iter(&self.cert_path)
            .and_then(Iterator::collect::<Result<Vec<_>, _>>)
            .map_err(|e| pem_error(&self.cert_path, &e))?;
        if certs.is_empty() {
            return Err(pem_error(&self.cert_path, &"no CERTIFICATE in the file"));
        }
        let key = PrivateKeyDer::from_pem_file(&self.key_path)
            .map_err(|e| pem_error(&self.key_path, &e))?;
        let config =
            rustls::ServerConfig::builder_with_provider(Arc::new(ring::default_provider()))
                .with_safe_default_protocol_versions()?
                .with_no_client_auth()
                .with_single_cert(certs, key)?;
        Ok(Arc::new(config))
    }
}

/// The client side: the server is checked against `ca_file` (else the system's roots), or not
/// at all when `insecure`; `cert_file` and `key_file` make a client certificate.
pub(crate) fn client_config(
    options: &TlsOptions,
) -> Result<Arc<rustls::ClientConfig>, ClientError> {
    let tls_error = |e: &dyn std::fmt::Display| ClientError::Tls(e.to_string());
    let file_error = |path: &Path, e: &dyn std::fmt::Display| {
        ClientError::Tls(format!("{}: {e}", path.display()))
    };
    let provider = Arc::new(ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| tls_error(&e))?;
    let builder = if options.insecure {
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(NoServerVerification(provider)))
    } else {
        let mut roots = RootCertStore::empty();
        match &options.ca_file {
            Some(path) => {
                for cert in CertificateDer::pem_file_iter(path).map_err(|e| file_error(path, &e))? {
                    let cert = cert.map_err(|e| file_error(path, &e))?;
                    roots.add(cert).map_err(|e| file_error(path, &e))?;
                }
                if roots.is_empty() {
                    return Err(file_error(path, &"no CERTIFICATE in the file"));
                }
            }
            None => {
                let found = rustls_native_certs::load_native_certs();
                roots.add_parsable_certificates(found.certs);
                if roots.is_empty() {
                    return Err(tls_error(
                        &"no CA certificate in the system store: give ca_file",
                    ));
                }
            }
        }
        builder.with_root_certificates(roots)
    };
    let config = match (&options.cert_file, &options.key_file) {
        (None, None) => builder.with_no_client_auth(),
        (Some(cert), Some(key)) => {
            let chain = CertificateDer::pem_file_iter(cert)
                .and_then(Iterator::collect::<Result<Vec<_>, _>>)
                .map_err(|e| file_error(cert, &e))?;
            let key = PrivateKeyDer::from_pem_file(key).map_err(|e| file_error(key, &e))?;
            builder
                .with_client_auth_cert(chain, key)
                .map_err(|e| tls_error(&e))?
        }
        _ => return Err(tls_error(&"cert_file and key_file go together")),
    };
    Ok(Arc::new(config))
}

/// `TlsOptions::insecure`: any server certificate is accepted, for tests only. The handshake
/// signatures are still checked, so the peer holds the key of the certificate it showed.
#[derive(Debug)]
struct NoServerVerification(Arc<CryptoProvider>);

impl ServerCertVerifier for NoServerVerification {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        let algorithms = &self.0.signature_verification_algorithms;
        rustls::crypto::verify_tls12_signature(message, cert, dss, algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        let algorithms = &self.0.signature_verification_algorithms;
        rustls::crypto::verify_tls13_signature(message, cert, dss, algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// The error a TLS wrapper's I/O error stands for: rustls' own, or the I/O error itself.
/// (tokio-rustls and futures-rustls report handshake failures as I/O errors wrapping it.)
pub fn handshake_error(e: std::io::Error) -> ClientError {
    match e
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<rustls::Error>())
    {
        Some(tls) => ClientError::Tls(tls.to_string()),
        None => e.into(),
    }
}
