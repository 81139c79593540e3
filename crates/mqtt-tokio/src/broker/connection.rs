//! One connection's I/O task: read and decode packets for the router, write what it sends back.

use std::collections::VecDeque;
use std::io::IoSlice;
use std::time::Duration;

use bytes::{Buf, Bytes, BytesMut};
use mqtt_core::broker::ConnId;
use mqtt_core::codec::{self, DecodeLimits};
use mqtt_core::{Packet, ProtocolVersion};
use tokio::io::{AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadHalf, WriteHalf};
use tokio::sync::mpsc;
use tokio::time::{sleep_until, Instant};
use tracing::debug;

use super::router::Input;
use crate::transport::{Incoming, Stream};

/// What the router tells a connection task.
#[derive(Debug)]
pub(super) enum Command {
    /// Write `bytes`, then `payload` (often empty).
    Write { bytes: Bytes, payload: Bytes },
    /// Write what was sent before, then close: the broker has forgotten this connection.
    Close,
}

/// Chunks handed to one `write_vectored` call.
const MAX_SLICES: usize = 64;
/// Written bytes are reported when the buffer empties, or at least every this many.
const REPORT_EVERY: usize = 64 * 1024;
/// Room kept free in the read buffer before each read.
const READ_CHUNK: usize = 8 * 1024;
/// How long a closing connection may take to write its last bytes.
const CLOSE_LINGER: Duration = Duration::from_secs(5);

/// The state of one connection task. The pending write buffer lives here, not in a future, so
/// that nothing is lost when a `select!` branch loses.
pub(super) struct Connection {
    conn: ConnId,
    /// The version to decode in: 3.1.1 until this connection's CONNECT names its own.
    version: ProtocolVersion,
    seen_connect: bool,
    limits: DecodeLimits,
    /// Reading pauses while this many bytes wait to be written: back-pressure on a peer that
    /// sends but does not read.
    max_pending: usize,
    rx: BytesMut,
    /// Chunks to write, in order (headers and shared payloads), and their total length.
    pending: VecDeque<Bytes>,
    pending_len: usize,
    /// Written but not yet reported to the router.
    unreported: usize,
    /// Written but perhaps still buffered (TLS): flush before waiting.
    unflushed: bool,
    /// Reading stopped: the peer broke the protocol and the router's `Close` is on its way.
    read_stopped: bool,
    /// Set by `Close`: the instant after which the last bytes are given up on.
    closing: Option<Instant>,
    commands: mpsc::UnboundedReceiver<Command>,
    inbox: mpsc::Sender<Input>,
}

/// What one turn of the loop saw.
enum Step {
    Command(Option<Command>),
    Wrote(std::io::Result<usize>),
    Read(std::io::Result<usize>),
    Linger,
}

impl Connection {
    pub(super) fn new(
        conn: ConnId,
        limits: DecodeLimits,
        max_pending: usize,
        commands: mpsc::UnboundedReceiver<Command>,
        inbox: mpsc::Sender<Input>,
    ) -> Self {
        Self {
            conn,
            version: ProtocolVersion::V311,
            seen_connect: false,
            limits,
            max_pending: max_pending.max(1),
            rx: BytesMut::with_capacity(READ_CHUNK),
            pending: VecDeque::new(),
            pending_len: 0,
            unreported: 0,
            unflushed: false,
            read_stopped: false,
            closing: None,
            commands,
            inbox,
        }
    }

    /// Runs the connection to its end: TLS handshake (within `handshake`), then the loop.
    pub(super) async fn run(mut self, incoming: Incoming, handshake: Duration) {
        match incoming.establish(handshake).await {
            Ok(stream) => {
                let (reader, writer) = tokio::io::split(stream);
                self.drive(reader, writer).await;
            }
            Err(e) => {
                debug!(conn = %self.conn, error = %e, "handshake failed");
                self.report(Input::Closed(self.conn)).await;
            }
        }
    }

    /// The loop: `select!` on the cancel-safe `recv`, `write_vectored`/`flush` and `read_buf`.
    async fn drive(&mut self, mut reader: ReadHalf<Stream>, mut writer: WriteHalf<Stream>) {
        loop {
            let reading =
                !self.read_stopped && self.closing.is_none() && self.pending_len < self.max_pending;
            if reading && self.rx.capacity() - self.rx.len() < READ_CHUNK {
                self.rx.reserve(READ_CHUNK);
            }
            let linger = self.closing.unwrap_or_else(Instant::now);
            let step = {
                let mut slices = [IoSlice::new(&[]); MAX_SLICES];
                let n = fill_slices(&self.pending, &mut slices);
                let writing = n > 0 || self.unflushed;
                tokio::select! {
                    cmd = self.commands.recv(), if self.closing.is_none() => Step::Command(cmd),
                    r = write_or_flush(&mut writer, &slices[..n]), if writing => Step::Wrote(r),
                    r = reader.read_buf(&mut self.rx), if reading => Step::Read(r),
                    () = sleep_until(linger), if self.closing.is_some() => Step::Linger,
                }
            };
            let done = match step {
                Step::Command(Some(cmd)) => {
                    self.push(cmd);
                    // Take what else is queued, so that one write carries it all.
                    while let Ok(cmd) = self.commands.try_recv() {
                        self.push(cmd);
                    }
                    false
                }
                // The router is gone (server stopped) or has forgotten this connection.
                Step::Command(None) => true,
                Step::Wrote(Ok(n)) => self.wrote(n).await,
                Step::Wrote(Err(e)) => self.lost("write", &e).await,
                Step::Read(Ok(0)) => self.lost("read", &"end of stream").await,
                Step::Read(Ok(_)) => self.decode().await,
                Step::Read(Err(e)) => self.lost("read", &e).await,
                Step::Linger => true,
            };
            if done {
                break;
            }
            if self.closing.is_some() && self.pending.is_empty() && !self.unflushed {
                let linger = self.closing.unwrap_or_else(Instant::now);
                let _ = tokio::time::timeout_at(linger, writer.shutdown()).await;
                break;
            }
        }
    }

    fn push(&mut self, cmd: Command) {
        match cmd {
            Command::Write { bytes, payload } => {
                for chunk in [bytes, payload] {
                    if !chunk.is_empty() {
                        self.pending_len += chunk.len();
                        self.pending.push_back(chunk);
                    }
                }
            }
            Command::Close => self.closing = Some(Instant::now() + CLOSE_LINGER),
        }
    }

    /// `n` bytes were written (0: a flush finished). Returns whether the task is done.
    async fn wrote(&mut self, n: usize) -> bool {
        if n == 0 && !self.pending.is_empty() {
            return self.lost("write", &"wrote zero bytes").await;
        }
        if n == 0 {
            self.unflushed = false;
            return false;
        }
        self.unflushed = true;
        self.pending_len -= n;
        let mut left = n;
        while left > 0 {
            let Some(front) = self.pending.front_mut() else {
                break;
            };
            if front.len() > left {
                front.advance(left);
                break;
            }
            left -= front.len();
            self.pending.pop_front();
        }
        self.unreported += n;
        if self.closing.is_none() && (self.pending.is_empty() || self.unreported >= REPORT_EVERY) {
            let n = std::mem::take(&mut self.unreported);
            return !self.report(Input::Written(self.conn, n)).await;
        }
        false
    }

    /// Hands every complete packet in the read buffer to the router. Returns whether the task
    /// is done.
    async fn decode(&mut self) -> bool {
        loop {
            let before = self.rx.len();
            match codec::decode(&mut self.rx, self.version, &self.limits) {
                Ok(Some(packet)) => {
                    let wire_len = before - self.rx.len();
                    if let (Packet::Connect(c), false) = (&packet, self.seen_connect) {
                        self.version = c.protocol_version;
                        self.seen_connect = true;
                    }
                    if !self
                        .report(Input::Packet(self.conn, packet, wire_len))
                        .await
                    {
                        return true;
                    }
                }
                Ok(None) => return false,
                Err(e) => {
                    debug!(conn = %self.conn, error = %e, "undecodable packet");
                    self.read_stopped = true;
                    self.rx = BytesMut::new();
                    return !self.report(Input::DecodeError(self.conn, e)).await;
                }
            }
        }
    }

    /// The socket failed or ended: tell the router, unless it already closed this connection.
    async fn lost(&mut self, op: &str, error: &(dyn std::fmt::Display + Sync)) -> bool {
        debug!(conn = %self.conn, %error, "{op} ended the connection");
        if self.closing.is_none() {
            self.report(Input::Closed(self.conn)).await;
        }
        true
    }

    /// Sends to the router, waiting for room; `false` if the router is gone.
    async fn report(&self, input: Input) -> bool {
        self.inbox.send(input).await.is_ok()
    }
}

/// Points `slices` at the first chunks of `pending`; returns how many.
fn fill_slices<'a>(pending: &'a VecDeque<Bytes>, slices: &mut [IoSlice<'a>]) -> usize {
    let mut n = 0;
    for (slot, chunk) in slices.iter_mut().zip(pending) {
        *slot = IoSlice::new(chunk);
        n += 1;
    }
    n
}

/// Writes `slices` (returns the count written), or with none, flushes (returns 0). Both are
/// cancel safe: a lost race writes nothing, and an interrupted flush resumes on the next call.
async fn write_or_flush<W: AsyncWrite + Unpin>(
    writer: &mut W,
    slices: &[IoSlice<'_>],
) -> std::io::Result<usize> {
    if slices.is_empty() {
        writer.flush().await.map(|()| 0)
    } else {
        writer.write_vectored(slices).await
    }
}
