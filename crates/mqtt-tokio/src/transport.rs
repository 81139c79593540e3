//! The byte streams under MQTT: plain TCP, or TLS over TCP with rustls (ring provider), for
//! the broker's listeners and for the client's `mqtt://` and `mqtts://` URLs.

use std::io::{self, IoSlice};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{ring, CryptoProvider};
use rustls::{DigitallySignedStruct, RootCertStore, SignatureScheme};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio_rustls::{TlsAcceptor, TlsConnector};

use crate::client::{self, TlsOptions};
use crate::Error;

/// A TLS listener's certificate chain and private key, as PEM files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsConfig {
    /// PEM file with the certificate chain, leaf first.
    pub cert_path: PathBuf,
    /// PEM file with the private key (PKCS#8, PKCS#1 or SEC1).
    pub key_path: PathBuf,
}

impl TlsConfig {
    /// Reads both files and builds the acceptor: TLS 1.2 and 1.3, no client certificates.
    pub(crate) fn acceptor(&self) -> Result<TlsAcceptor, Error> {
        let pem_error = |path: &PathBuf, e: &dyn std::fmt::Display| Error::Pem {
            path: path.clone(),
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
        Ok(TlsAcceptor::from(Arc::new(config)))
    }
}

/// A socket just accepted, before any TLS handshake.
pub(crate) struct Incoming {
    pub(crate) tcp: TcpStream,
    pub(crate) addr: SocketAddr,
    pub(crate) tls: Option<TlsAcceptor>,
}

impl std::fmt::Debug for Incoming {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Incoming")
            .field("addr", &self.addr)
            .field("tls", &self.tls.is_some())
            .finish()
    }
}

impl Incoming {
    /// The stream to speak MQTT over: after the TLS handshake, which must end within `limit`.
    pub(crate) async fn establish(self, limit: Duration) -> io::Result<Stream> {
        let Some(acceptor) = self.tls else {
            return Ok(Stream::Tcp(self.tcp));
        };
        match tokio::time::timeout(limit, acceptor.accept(self.tcp)).await {
            Ok(stream) => Ok(Stream::Tls(Box::new(stream?))),
            Err(_) => Err(io::ErrorKind::TimedOut.into()),
        }
    }
}

/// Where a client connects, parsed from its URL: `mqtt://host[:1883]` or `mqtts://host[:8883]`.
#[derive(Clone)]
pub(crate) struct Endpoint {
    host: String,
    port: u16,
    /// For `mqtts://`: the connector and the name the server's certificate must carry.
    tls: Option<(TlsConnector, ServerName<'static>)>,
}

impl std::fmt::Debug for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let scheme = if self.tls.is_some() { "mqtts" } else { "mqtt" };
        write!(f, "{scheme}://{}:{}", self.host, self.port)
    }
}

impl Endpoint {
    /// Parses `url` and, for `mqtts://`, builds the TLS client configuration from `tls`.
    pub(crate) fn parse(url: &str, tls: &TlsOptions) -> Result<Self, client::Error> {
        let invalid = |reason: &str| client::Error::InvalidUrl(format!("{url:?}: {reason}"));
        let (scheme, rest) = url
            .split_once("://")
            .ok_or_else(|| invalid("expected mqtt://host[:port] or mqtts://host[:port]"))?;
        let (secure, default_port) = match scheme.to_ascii_lowercase().as_str() {
            "mqtt" => (false, 1883),
            "mqtts" => (true, 8883),
            "ws" | "wss" => return Err(invalid("WebSocket is not supported yet")),
            _ => return Err(invalid("the scheme must be mqtt or mqtts")),
        };
        let authority = rest.strip_suffix('/').unwrap_or(rest);
        if authority.contains(['/', '?', '#', '@']) {
            return Err(invalid(
                "only scheme://host[:port]; credentials go in ClientOptions",
            ));
        }
        // `[v6]:port`, `[v6]`, `host:port` or `host`.
        let (host, port) = match authority.strip_prefix('[') {
            Some(v6) => {
                let (host, tail) = v6.split_once(']').ok_or_else(|| invalid("unclosed '['"))?;
                match tail {
                    "" => (host, None),
                    _ => (
                        host,
                        Some(
                            tail.strip_prefix(':')
                                .ok_or_else(|| invalid("junk after ']'"))?,
                        ),
                    ),
                }
            }
            None => match authority.rsplit_once(':') {
                Some((host, port)) => (host, Some(port)),
                None => (authority, None),
            },
        };
        if host.is_empty() {
            return Err(invalid("no host"));
        }
        let port = match port {
            Some(p) => p
                .parse()
                .map_err(|_| invalid("the port must be 0 to 65535"))?,
            None => default_port,
        };
        let tls = match secure {
            false => None,
            true => {
                let name = ServerName::try_from(host.to_owned())
                    .map_err(|_| invalid("the host is not a valid TLS server name"))?;
                Some((client_tls(tls)?, name))
            }
        };
        Ok(Self {
            host: host.to_owned(),
            port,
            tls,
        })
    }

    /// Opens the TCP connection and, for `mqtts://`, completes the TLS handshake.
    pub(crate) async fn open(&self) -> Result<Stream, client::Error> {
        let tcp = TcpStream::connect((self.host.as_str(), self.port)).await?;
        // MQTT packets are small and latency matters: no Nagle delay.
        let _ = tcp.set_nodelay(true);
        let Some((connector, name)) = &self.tls else {
            return Ok(Stream::Tcp(tcp));
        };
        match connector.connect(name.clone(), tcp).await {
            Ok(tls) => Ok(Stream::ClientTls(Box::new(tls))),
            // tokio-rustls reports TLS failures as I/O errors that wrap a `rustls::Error`.
            Err(e) => match e
                .get_ref()
                .and_then(|inner| inner.downcast_ref::<rustls::Error>())
            {
                Some(tls) => Err(client::Error::Tls(tls.to_string())),
                None => Err(e.into()),
            },
        }
    }
}

/// The client side of TLS 1.2 and 1.3: the server is checked against `ca_file` (else the
/// system's roots), or not at all when `insecure`; `cert_file` and `key_file` make a client
/// certificate.
fn client_tls(options: &TlsOptions) -> Result<TlsConnector, client::Error> {
    let tls_error = |e: &dyn std::fmt::Display| client::Error::Tls(e.to_string());
    let file_error = |path: &PathBuf, e: &dyn std::fmt::Display| {
        client::Error::Tls(format!("{}: {e}", path.display()))
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
    Ok(TlsConnector::from(Arc::new(config)))
}

/// An established byte stream: TCP, or TLS as the server or the client.
pub(crate) enum Stream {
    Tcp(TcpStream),
    Tls(Box<tokio_rustls::server::TlsStream<TcpStream>>),
    ClientTls(Box<tokio_rustls::client::TlsStream<TcpStream>>),
}

impl AsyncRead for Stream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Self::Tcp(s) => Pin::new(s).poll_read(cx, buf),
            Self::Tls(s) => Pin::new(s).poll_read(cx, buf),
            Self::ClientTls(s) => Pin::new(s).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Stream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Self::Tcp(s) => Pin::new(s).poll_write(cx, buf),
            Self::Tls(s) => Pin::new(s).poll_write(cx, buf),
            Self::ClientTls(s) => Pin::new(s).poll_write(cx, buf),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Self::Tcp(s) => Pin::new(s).poll_write_vectored(cx, bufs),
            Self::Tls(s) => Pin::new(s).poll_write_vectored(cx, bufs),
            Self::ClientTls(s) => Pin::new(s).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match self {
            Self::Tcp(s) => s.is_write_vectored(),
            Self::Tls(s) => s.is_write_vectored(),
            Self::ClientTls(s) => s.is_write_vectored(),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Self::Tcp(s) => Pin::new(s).poll_flush(cx),
            Self::Tls(s) => Pin::new(s).poll_flush(cx),
            Self::ClientTls(s) => Pin::new(s).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Self::Tcp(s) => Pin::new(s).poll_shutdown(cx),
            Self::Tls(s) => Pin::new(s).poll_shutdown(cx),
            Self::ClientTls(s) => Pin::new(s).poll_shutdown(cx),
        }
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(url: &str) -> Result<Endpoint, client::Error> {
        let insecure = TlsOptions {
            insecure: true,
            ..TlsOptions::default()
        };
        Endpoint::parse(url, &insecure)
    }

    #[test]
    fn urls_give_host_port_and_tls() {
        for (url, host, port, tls) in [
            ("mqtt://broker", "broker", 1883, false),
            ("mqtt://broker:1999/", "broker", 1999, false),
            ("MQTTS://broker", "broker", 8883, true),
            ("mqtts://127.0.0.1:9", "127.0.0.1", 9, true),
            ("mqtt://[::1]", "::1", 1883, false),
            ("mqtts://[::1]:8884", "::1", 8884, true),
        ] {
            let e = parse(url).unwrap();
            assert_eq!(
                (e.host.as_str(), e.port, e.tls.is_some()),
                (host, port, tls),
                "{url}"
            );
        }
    }

    #[test]
    fn bad_urls_are_refused() {
        for url in [
            "broker:1883",
            "http://broker",
            "ws://broker",
            "mqtt://",
            "mqtt://:1883",
            "mqtt://broker:",
            "mqtt://broker:65536",
            "mqtt://user:pw@broker",
            "mqtt://broker/path",
            "mqtt://[::1",
            "mqtt://[::1]1883",
        ] {
            assert!(
                matches!(parse(url), Err(client::Error::InvalidUrl(_))),
                "{url}"
            );
        }
    }

    #[test]
    fn client_certificate_needs_both_files() {
        let options = TlsOptions {
            cert_file: Some("/nonexistent/cert.pem".into()),
            insecure: true,
            ..TlsOptions::default()
        };
        let err = Endpoint::parse("mqtts://broker", &options).unwrap_err();
        assert!(matches!(err, client::Error::Tls(_)), "{err:?}");
    }
}
