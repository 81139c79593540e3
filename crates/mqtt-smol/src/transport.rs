//! The byte streams under MQTT over smol: plain TCP, or TLS over TCP with rustls
//! (`futures-rustls`), for the broker's listeners and the client's `mqtt://` and `mqtts://`
//! URLs. The configurations come from `mqtt_adapter::tls`. Also the bounded wait the loops use.

use std::future::Future;
use std::io::{self, IoSlice};
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use async_io::Timer;
use async_net::TcpStream;
use bytes::{Buf, BytesMut};
use futures_lite::io::{AsyncRead, AsyncWrite};
use futures_rustls::{TlsAcceptor, TlsConnector};
use mqtt_adapter::broker::READ_CHUNK;
use mqtt_adapter::endpoint::Endpoint;
use mqtt_adapter::tls::handshake_error;
pub use mqtt_adapter::tls::TlsConfig;
use std::cell::RefCell;

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
        match timeout_at(Instant::now() + limit, Box::pin(acceptor.accept(self.tcp))).await {
            Some(stream) => Ok(Stream::Tls(Box::new(stream?))),
            None => Err(io::ErrorKind::TimedOut.into()),
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

/// `future`'s output, or `None` once `deadline` has passed.
pub(crate) async fn timeout_at<T>(deadline: Instant, future: impl Future<Output = T>) -> Option<T> {
    let expired = async {
        Timer::at(deadline).await;
        None
    };
    futures_lite::future::or(async { Some(future.await) }, expired).await
}

/// An established byte stream: TCP, or TLS as the server or the client.
pub(crate) enum Stream {
    Tcp(TcpStream),
    Tls(Box<futures_rustls::server::TlsStream<TcpStream>>),
    ClientTls(Box<futures_rustls::client::TlsStream<TcpStream>>),
}

impl Stream {
    /// Reads as many bytes as `buf` has spare room for (the caller reserved it; at most
    /// [`READ_CHUNK`]) onto its end. One non-blocking attempt, so it can lose a race without
    /// losing bytes. Safe code cannot read into uninitialized memory: the bytes go through a
    /// per-thread buffer zeroed once, and only what came is copied.
    pub(crate) fn poll_read_buf(
        &mut self,
        cx: &mut Context<'_>,
        buf: &mut BytesMut,
    ) -> Poll<io::Result<usize>> {
        thread_local! {
            static SCRATCH: RefCell<Vec<u8>> = RefCell::new(vec![0; READ_CHUNK]);
        }
        let room = (buf.capacity() - buf.len()).clamp(1, READ_CHUNK);
        SCRATCH.with_borrow_mut(|scratch| {
            let polled = Pin::new(&mut *self).poll_read(cx, &mut scratch[..room]);
            if let Poll::Ready(Ok(n)) = &polled {
                buf.extend_from_slice(&scratch[..*n]);
            }
            polled
        })
    }

    /// Writes from the front of `buf` and advances it, or with nothing left flushes (0).
    /// Writing zero bytes of a non-empty buffer is `WriteZero`.
    pub(crate) fn poll_write_buf(
        &mut self,
        cx: &mut Context<'_>,
        buf: &mut BytesMut,
    ) -> Poll<io::Result<usize>> {
        if buf.is_empty() {
            return Pin::new(self).poll_flush(cx).map_ok(|()| 0);
        }
        Pin::new(self)
            .poll_write(cx, buf)
            .map(|written| match written? {
                0 => Err(io::ErrorKind::WriteZero.into()),
                n => {
                    buf.advance(n);
                    Ok(n)
                }
            })
    }

    /// Writes `slices` (returns the count written), or with none, flushes (returns 0).
    pub(crate) fn poll_write_or_flush(
        &mut self,
        cx: &mut Context<'_>,
        slices: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        if slices.is_empty() {
            Pin::new(self).poll_flush(cx).map_ok(|()| 0)
        } else {
            Pin::new(self).poll_write_vectored(cx, slices)
        }
    }
}

impl AsyncRead for Stream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
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

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Self::Tcp(s) => Pin::new(s).poll_flush(cx),
            Self::Tls(s) => Pin::new(s).poll_flush(cx),
            Self::ClientTls(s) => Pin::new(s).poll_flush(cx),
        }
    }

    fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Self::Tcp(s) => Pin::new(s).poll_close(cx),
            Self::Tls(s) => Pin::new(s).poll_close(cx),
            Self::ClientTls(s) => Pin::new(s).poll_close(cx),
        }
    }
}
