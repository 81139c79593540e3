//! The byte streams under MQTT over tokio: plain TCP, or TLS over TCP with rustls, for the
//! broker's listeners and the client's `mqtt://` and `mqtts://` URLs. The configurations come
//! from `mqtt_adapter::tls`.

use std::io::{self, IoSlice};
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use mqtt_adapter::endpoint::Endpoint;
use mqtt_adapter::tls::handshake_error;
pub use mqtt_adapter::tls::TlsConfig;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio_rustls::{TlsAcceptor, TlsConnector};

use crate::client;

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
        // Boxed: the handshake's state is large, and would otherwise size every connection task.
        match Box::pin(tokio::time::timeout(limit, acceptor.accept(self.tcp))).await {
            Ok(stream) => Ok(Stream::Tls(Box::new(stream?))),
            Err(_) => Err(io::ErrorKind::TimedOut.into()),
        }
    }
}

/// Opens the TCP connection to `endpoint` and, for `mqtts://`, completes the TLS handshake.
pub(crate) async fn open(endpoint: &Endpoint) -> Result<Stream, client::Error> {
    let tcp = TcpStream::connect((endpoint.host.as_str(), endpoint.port)).await?;
    // MQTT packets are small and latency matters: no Nagle delay.
    let _ = tcp.set_nodelay(true);
    let Some((config, name)) = &endpoint.tls else {
        return Ok(Stream::Tcp(tcp));
    };
    match TlsConnector::from(config.clone())
        .connect(name.clone(), tcp)
        .await
    {
        Ok(tls) => Ok(Stream::ClientTls(Box::new(tls))),
        Err(e) => Err(handshake_error(e)),
    }
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
