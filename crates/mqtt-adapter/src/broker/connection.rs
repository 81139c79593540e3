//! One connection's state, whatever drives its socket: the decoder (in the version its CONNECT
//! names), the chunks waiting to be written, and the written bytes not yet reported.
//!
//! The adapter's loop: read into [`ConnState::rx`] then [`ConnState::decode`]; take
//! [`ConnCommand`]s with [`ConnState::push`]; write [`ConnState::slices`] with vectored I/O
//! and tell [`ConnState::wrote`]; forward every [`Report`] to the router.

use std::collections::VecDeque;
use std::io::IoSlice;
use std::time::{Duration, Instant};

use bytes::{Buf, Bytes, BytesMut};
use mqtt_core::broker::ConnId;
use mqtt_core::codec::{self, DecodeLimits};
use mqtt_core::{Packet, ProtocolVersion};
use tracing::debug;

use super::Report;

/// What the router tells a connection.
#[derive(Debug)]
pub enum ConnCommand {
    /// Write `bytes`, then `payload` (often empty).
    Write {
        /// Usually an encoded packet or header.
        bytes: Bytes,
        /// A PUBLISH payload shared with other subscribers, or empty.
        payload: Bytes,
    },
    /// Write what was sent before, then close: the broker has forgotten this connection.
    Close,
}

/// Chunks handed to one `write_vectored` call.
pub const MAX_SLICES: usize = 64;
/// Room kept free in the read buffer before each read, at most: a connection starts with
/// [`FIRST_READ_CHUNK`] and doubles it whenever a read brings at least half of it, so that an
/// idle connection holds a few hundred bytes and a busy one reads in large chunks.
pub const READ_CHUNK: usize = 64 * 1024;
/// The read room of a new connection: most CONNECTs fit.
const FIRST_READ_CHUNK: usize = 256;
/// How long a closing connection may take to write its last bytes.
pub const CLOSE_LINGER: Duration = Duration::from_secs(5);
/// Written bytes are reported when the queue empties, or at least every this many.
const REPORT_EVERY: usize = 64 * 1024;

/// What [`ConnState::wrote`] concluded.
#[derive(Debug)]
pub enum Wrote {
    /// Nothing to tell anyone.
    Nothing,
    /// Tell the router: `Report::Written(conn, n)`.
    Written(usize),
    /// The socket wrote nothing though bytes wait: the connection is lost.
    Lost,
}

/// The state of one connection: see the module docs.
#[derive(Debug)]
pub struct ConnState {
    conn: ConnId,
    /// The version to decode in: 3.1.1 until this connection's CONNECT names its own.
    version: ProtocolVersion,
    seen_connect: bool,
    limits: DecodeLimits,
    /// Reading pauses while this many bytes wait to be written: back-pressure on a peer that
    /// sends but does not read.
    max_pending: usize,
    /// The read buffer: read into it, then call [`ConnState::decode`].
    pub rx: BytesMut,
    /// The room reserved before each read (see [`READ_CHUNK`]).
    chunk: usize,
    /// `rx` was just filled by a read: `decode` looks at how much came.
    fresh: bool,
    /// What waits to be written: borrow it apart from `rx` in one `select!`.
    pub out: WriteQueue,
    /// Written but not yet reported to the router.
    unreported: usize,
    /// Reading stopped: the peer broke the protocol and the router's `Close` is on its way.
    read_stopped: bool,
    /// Set by `Close`: the instant after which the last bytes are given up on.
    closing: Option<Instant>,
}

impl ConnState {
    /// A connection the router numbered `conn`, decoding within `limits`.
    pub fn new(conn: ConnId, limits: DecodeLimits, max_pending: usize) -> Self {
        Self {
            conn,
            version: ProtocolVersion::V311,
            seen_connect: false,
            limits,
            max_pending: max_pending.max(1),
            rx: BytesMut::new(),
            chunk: FIRST_READ_CHUNK,
            fresh: false,
            out: WriteQueue::default(),
            unreported: 0,
            read_stopped: false,
            closing: None,
        }
    }

    /// The broker's number for this connection.
    pub fn conn(&self) -> ConnId {
        self.conn
    }

    /// Whether to read now; if so, the read buffer has room for the next read.
    pub fn reading(&mut self) -> bool {
        let reading =
            !self.read_stopped && self.closing.is_none() && self.out.len < self.max_pending;
        if reading && self.rx.capacity() - self.rx.len() < self.chunk {
            self.rx.reserve(self.chunk);
        }
        self.fresh = true;
        reading
    }

    /// After `Close`: the instant by which the last bytes must be out.
    pub fn closing(&self) -> Option<Instant> {
        self.closing
    }

    /// Everything is written and flushed after `Close`: shut the socket down and end.
    pub fn closed(&self) -> bool {
        self.closing.is_some() && !self.out.writing()
    }

    /// Takes one command of the router.
    pub fn push(&mut self, now: Instant, cmd: ConnCommand) {
        match cmd {
            ConnCommand::Write { bytes, payload } => {
                for chunk in [bytes, payload] {
                    if !chunk.is_empty() {
                        self.out.len += chunk.len();
                        self.out.chunks.push_back(chunk);
                    }
                }
            }
            ConnCommand::Close => self.closing = Some(now + CLOSE_LINGER),
        }
    }

    /// Takes `first` and every other command already in `mailbox`, so that one write carries
    /// them all.
    pub fn push_queued(&mut self, now: Instant, first: ConnCommand, mailbox: &super::Mailbox) {
        self.push(now, first);
        while let Some(cmd) = mailbox.try_recv() {
            self.push(now, cmd);
        }
    }

    /// `n` bytes were written (0: a flush finished).
    pub fn wrote(&mut self, n: usize) -> Wrote {
        if n == 0 && !self.out.chunks.is_empty() {
            return Wrote::Lost;
        }
        if n == 0 {
            self.out.unflushed = false;
            return Wrote::Nothing;
        }
        self.out.unflushed = true;
        self.out.len -= n;
        let mut left = n;
        while left > 0 {
            let Some(front) = self.out.chunks.front_mut() else {
                break;
            };
            if front.len() > left {
                front.advance(left);
                break;
            }
            left -= front.len();
            self.out.chunks.pop_front();
        }
        self.unreported += n;
        if self.closing.is_none() && (self.out.chunks.is_empty() || self.unreported >= REPORT_EVERY)
        {
            let n = std::mem::take(&mut self.unreported);
            return Wrote::Written(n);
        }
        Wrote::Nothing
    }

    /// The next complete packet in the read buffer as a report, or `None` when more bytes are
    /// needed. An undecodable packet is reported once, and reading stops.
    pub fn decode(&mut self) -> Option<Report> {
        if self.read_stopped {
            return None;
        }
        if std::mem::take(&mut self.fresh) && self.rx.len() >= self.chunk / 2 {
            self.chunk = (self.chunk * 2).min(READ_CHUNK);
        }
        let before = self.rx.len();
        match codec::decode(&mut self.rx, self.version, &self.limits) {
            Ok(Some(packet)) => {
                let wire_len = before - self.rx.len();
                if let (Packet::Connect(c), false) = (&packet, self.seen_connect) {
                    self.version = c.protocol_version;
                    self.seen_connect = true;
                }
                Some(Report::Packet(self.conn, packet, wire_len))
            }
            Ok(None) => {
                // A connection that only ever sends small packets (most of them: sensors,
                // idle subscribers) holds no read buffer between its packets.
                if self.rx.is_empty() && self.chunk == FIRST_READ_CHUNK {
                    self.rx = BytesMut::new();
                }
                None
            }
            Err(e) => {
                debug!(conn = %self.conn, error = %e, "undecodable packet");
                self.read_stopped = true;
                self.rx = BytesMut::new();
                Some(Report::DecodeError(self.conn, e))
            }
        }
    }

    /// The socket failed or ended: the report for the router, unless it already closed this
    /// connection.
    pub fn lost(&self, op: &str, error: &dyn std::fmt::Display) -> Option<Report> {
        debug!(conn = %self.conn, %error, "{op} ended the connection");
        self.closing.is_none().then_some(Report::Closed(self.conn))
    }
}

/// Chunks to write, in order (headers and shared payloads).
#[derive(Debug, Default)]
pub struct WriteQueue {
    chunks: VecDeque<Bytes>,
    /// Their total length.
    len: usize,
    /// Written but perhaps still buffered (TLS): flush before waiting.
    unflushed: bool,
}

impl WriteQueue {
    /// Whether there is something to write or flush.
    pub fn writing(&self) -> bool {
        !self.chunks.is_empty() || self.unflushed
    }

    /// Points `slices` at the first chunks to write; returns how many (0: flush instead).
    pub fn slices<'a>(&'a self, slices: &mut [IoSlice<'a>]) -> usize {
        let mut n = 0;
        for (slot, chunk) in slices.iter_mut().zip(&self.chunks) {
            *slot = IoSlice::new(chunk);
            n += 1;
        }
        n
    }
}
