//! The byte streams under MQTT over `std::net`: plain TCP, or TLS over TCP, for the broker's
//! listeners and the client's `mqtt://` and `mqtts://` URLs. The configurations come from
//! `mqtt_adapter::tls` and `mqtt_adapter::endpoint`.
//!
//! A `Link` is owned by one thread (a broker connection's, or the client's driver), which
//! writes to it and feeds it what its reader thread read. TLS is a `rustls::Connection` driven
//! by hand rather than a `rustls::StreamOwned`: a `StreamOwned` cannot be split into a reading
//! and a writing half, so one thread blocked reading it could not write (a subscriber's
//! messages would wait for the subscriber to speak), and sharing it would need a `Mutex`. Here
//! the reader thread moves only ciphertext off a `TcpStream::try_clone`, and the owning thread
//! decrypts, encrypts and writes: no lock, and the same loop for TCP and TLS.

use std::io::{self, IoSlice, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream, ToSocketAddrs};
use std::sync::mpsc::{self, Sender, SyncSender};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use mqtt_adapter::endpoint::Endpoint;
use mqtt_adapter::tls::handshake_error;
pub use mqtt_adapter::tls::TlsConfig;

use crate::client;

/// How long one write may wait for the peer to read before the loop looks at its other
/// inputs (deadlines, commands); the write is tried again on the next turn.
pub(crate) const WRITE_STALL: Duration = Duration::from_millis(100);
/// A reader thread only reads and forwards: a small stack is enough.
/// The most one read of the reader thread takes (it hands each read over as it is).
const READ_SIZE: usize = 16 * 1024;
const READER_STACK: usize = 128 * 1024;

/// A socket just accepted, before any TLS handshake.
pub(crate) struct Incoming {
    pub(crate) tcp: TcpStream,
    pub(crate) addr: SocketAddr,
    pub(crate) tls: Option<Arc<rustls::ServerConfig>>,
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
    /// The link to speak MQTT over: after the TLS handshake, which must end within `limit`.
    pub(crate) fn establish(self, limit: Duration) -> io::Result<Link> {
        let tls = match self.tls {
            Some(config) => {
                let conn = rustls::ServerConnection::new(config).map_err(io::Error::other)?;
                Some(Box::new(rustls::Connection::Server(conn)))
            }
            None => None,
        };
        Link::new(self.tcp, tls, Instant::now() + limit)
    }
}

/// Opens the TCP connection to `endpoint` and, for `mqtts://`, completes the TLS handshake,
/// all within `limit`.
pub(crate) fn open(endpoint: &Endpoint, limit: Duration) -> Result<Link, client::Error> {
    let deadline = Instant::now() + limit;
    let mut last = io::Error::new(io::ErrorKind::NotFound, "the host has no address");
    let mut tcp = None;
    for addr in (endpoint.host.as_str(), endpoint.port).to_socket_addrs()? {
        let left = remaining(deadline).map_err(|_| client::Error::Timeout)?;
        match TcpStream::connect_timeout(&addr, left) {
            Ok(stream) => {
                tcp = Some(stream);
                break;
            }
            Err(e) => last = e,
        }
    }
    let tcp = match tcp {
        Some(tcp) => tcp,
        None if last.kind() == io::ErrorKind::TimedOut => return Err(client::Error::Timeout),
        None => return Err(last.into()),
    };
    // MQTT packets are small and latency matters: no Nagle delay.
    let _ = tcp.set_nodelay(true);
    let tls = match &endpoint.tls {
        Some((config, name)) => {
            let conn = rustls::ClientConnection::new(config.clone(), name.clone())
                .map_err(|e| client::Error::Tls(e.to_string()))?;
            Some(Box::new(rustls::Connection::Client(conn)))
        }
        None => None,
    };
    Link::new(tcp, tls, deadline).map_err(|e| match e.kind() {
        io::ErrorKind::TimedOut => client::Error::Timeout,
        _ => handshake_error(e),
    })
}

/// An established byte stream: TCP, or TLS (as the server or the client) over TCP. Dropping
/// it shuts the socket down, which ends its reader thread.
pub(crate) struct Link {
    tcp: TcpStream,
    tls: Option<Box<rustls::Connection>>,
}

impl Link {
    /// Completes the TLS handshake (if any) by `deadline`, then readies the socket for the
    /// loop: reads block (on the reader thread), writes wait at most [`WRITE_STALL`].
    fn new(
        mut tcp: TcpStream,
        mut tls: Option<Box<rustls::Connection>>,
        deadline: Instant,
    ) -> io::Result<Self> {
        if let Some(conn) = tls.as_deref_mut() {
            while conn.is_handshaking() {
                let left = remaining(deadline)?;
                tcp.set_read_timeout(Some(left))?;
                tcp.set_write_timeout(Some(left))?;
                match conn.complete_io(&mut tcp) {
                    Ok(_) => {}
                    Err(e) if stalled(&e) => {}
                    Err(e) => return Err(e),
                }
            }
        }
        tcp.set_read_timeout(None)?;
        tcp.set_write_timeout(Some(WRITE_STALL))?;
        Ok(Self { tcp, tls })
    }

    /// Starts the thread that reads this socket: one read of up to [`READ_SIZE`] bytes per
    /// credit sent on the returned channel, each sent to `out` as `wrap(bytes)` (the end of
    /// the stream is `UnexpectedEof`). It ends at the first error, or once the credit sender
    /// is dropped, or the link.
    pub(crate) fn spawn_reader<T: Send + 'static>(
        &self,
        out: Sender<T>,
        wrap: impl Fn(io::Result<Bytes>) -> T + Send + 'static,
    ) -> io::Result<SyncSender<()>> {
        let mut tcp = self.tcp.try_clone()?;
        let (credit, credits) = mpsc::sync_channel::<()>(1);
        thread::Builder::new()
            .name("mqtt-reader".into())
            .stack_size(READER_STACK)
            .spawn(move || {
                let mut buf = BytesMut::new();
                while credits.recv().is_ok() {
                    buf.resize(READ_SIZE, 0);
                    let read = loop {
                        match tcp.read(&mut buf) {
                            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                            Ok(0) => break Err(io::ErrorKind::UnexpectedEof.into()),
                            Ok(n) => break Ok(n),
                            Err(e) => break Err(e),
                        }
                    };
                    let end = read.is_err();
                    let read = read.map(|n| {
                        buf.truncate(n);
                        buf.split().freeze()
                    });
                    if out.send(wrap(read)).is_err() || end {
                        return;
                    }
                }
            })?;
        Ok(credit)
    }

    /// Bytes the reader thread read: their plaintext is appended to `rx`. Returns whether the
    /// peer closed TLS (after the plaintext that came before it).
    pub(crate) fn received(&mut self, mut chunk: &[u8], rx: &mut BytesMut) -> io::Result<bool> {
        let Some(tls) = self.tls.as_deref_mut() else {
            rx.extend_from_slice(chunk);
            return Ok(false);
        };
        loop {
            if !chunk.is_empty() && tls.read_tls(&mut chunk)? == 0 {
                // After close_notify rustls takes nothing more.
                chunk = &[];
            }
            let state = tls
                .process_new_packets()
                .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
            let n = state.plaintext_bytes_to_read();
            if n > 0 {
                let start = rx.len();
                rx.resize(start + n, 0);
                tls.reader().read_exact(&mut rx[start..])?;
            }
            if chunk.is_empty() {
                return Ok(state.peer_has_closed());
            }
        }
    }

    /// Whether encrypted bytes wait to be written (TLS).
    pub(crate) fn wants_flush(&self) -> bool {
        self.tls.as_ref().is_some_and(|tls| tls.wants_write())
    }

    /// Writes from `slices` and returns how many of their bytes were taken; with none, only
    /// flushes and returns 0. A peer that reads nothing for [`WRITE_STALL`] makes it fail
    /// with an error for which [`stalled`] is true: try again later.
    pub(crate) fn write(&mut self, slices: &[IoSlice<'_>]) -> io::Result<usize> {
        let Some(tls) = self.tls.as_deref_mut() else {
            return match slices.is_empty() {
                true => Ok(0),
                false => self.tcp.write_vectored(slices),
            };
        };
        // Take no more plaintext while earlier records wait: that bounds rustls' buffer.
        flush_tls(tls, &mut self.tcp)?;
        if slices.is_empty() {
            return Ok(0);
        }
        let n = tls.writer().write_vectored(slices)?;
        match flush_tls(tls, &mut self.tcp) {
            Err(e) if !stalled(&e) => Err(e),
            _ => Ok(n),
        }
    }

    /// Ends the stream: TLS close_notify and what is left written by `by`, then the socket is
    /// shut down (by dropping the link).
    pub(crate) fn close(mut self, by: Instant) {
        if let Some(tls) = self.tls.as_deref_mut() {
            tls.send_close_notify();
            while tls.wants_write() {
                let Ok(left) = remaining(by) else { break };
                let _ = self.tcp.set_write_timeout(Some(left));
                if tls.write_tls(&mut self.tcp).is_err() {
                    break;
                }
            }
        }
        let _ = self.tcp.shutdown(Shutdown::Write);
    }
}

impl Drop for Link {
    fn drop(&mut self) {
        // Wakes the reader thread blocked in `read`.
        let _ = self.tcp.shutdown(Shutdown::Both);
    }
}

/// Writes rustls' encrypted records until none is left.
fn flush_tls(tls: &mut rustls::Connection, tcp: &mut TcpStream) -> io::Result<()> {
    while tls.wants_write() {
        if tls.write_tls(tcp)? == 0 {
            return Err(io::ErrorKind::WriteZero.into());
        }
    }
    Ok(())
}

/// Whether a write failed only because the peer read nothing for a while (the socket's write
/// timeout): nothing is lost, try again.
pub(crate) fn stalled(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut | io::ErrorKind::Interrupted
    )
}

/// The time left until `deadline`; `TimedOut` once none is.
fn remaining(deadline: Instant) -> io::Result<Duration> {
    match deadline.checked_duration_since(Instant::now()) {
        Some(left) if !left.is_zero() => Ok(left),
        _ => Err(io::ErrorKind::TimedOut.into()),
    }
}
