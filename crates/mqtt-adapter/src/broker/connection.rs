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
/// Written bytes are reported at least every this many, and when the queue empties with at
/// least a quarter of `max_pending` (at most this much) unreported.
///
/// The router counts a connection's bytes written against its `max_pending_write_bytes`; it
/// needs the count back only to lift that limit, and at most a quarter of it is held back
/// here. Reporting every emptied queue would wake the router after each write: on a quiet
/// connection that is one more task run between a PUBACK and the delivery after it.
///
/// Why nothing stalls: the router stops sending only with `max_pending` bytes counted, and
/// once this queue is empty every counted byte is either unreported here or still on its way
/// in a command (which empties the queue again later); so an empty queue then holds at
/// least `max_pending`, more than the threshold, unreported, and reports it.
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
    /// Report on an empty queue from this many unreported bytes (see [`REPORT_EVERY`]).
    report_at: usize,
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
            report_at: (max_pending / 4).clamp(1, REPORT_EVERY),
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
                self.out.push(bytes);
                self.out.push(payload);
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
        if n == 0 && self.out.len > 0 {
            return Wrote::Lost;
        }
        if n == 0 {
            self.out.unflushed = false;
            return Wrote::Nothing;
        }
        self.out.unflushed = true;
        self.out.consume(n);
        self.unreported += n;
        let due = self.unreported >= REPORT_EVERY
            || (self.out.len == 0 && self.unreported >= self.report_at);
        if self.closing.is_none() && due {
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

/// Chunks no longer than this are copied together instead of queued one by one: a small
/// message's header and payload (two chunks of 20 and 64 bytes, say) cost less to copy than
/// to hand the kernel as two more slices, and a window of them then goes out in one write.
const COPY_AT_MOST: usize = 512;
/// A copy buffer that held more than this is let go once written out, so that a connection
/// that once took a burst does not keep its memory while idle.
const KEEP_STAGED: usize = 1024;

/// Bytes to write, in order: shared chunks (large payloads) and, after them, small chunks
/// copied together.
#[derive(Debug, Default)]
pub struct WriteQueue {
    chunks: VecDeque<Bytes>,
    /// Small chunks pushed after `chunks`, copied together: written after them.
    staged: BytesMut,
    /// The most `staged` held since it was last empty. Its allocation cannot be read back
    /// once written out (`advance` moves the start, and `capacity` counts from there).
    staged_peak: usize,
    /// The total length of both.
    len: usize,
    /// Written but perhaps still buffered (TLS): flush before waiting.
    unflushed: bool,
}

impl WriteQueue {
    /// Whether there is something to write or flush.
    pub fn writing(&self) -> bool {
        self.len > 0 || self.unflushed
    }

    /// Points `slices` at the first chunks to write; returns how many (0: flush instead).
    pub fn slices<'a>(&'a self, slices: &mut [IoSlice<'a>]) -> usize {
        let mut n = 0;
        let staged = (!self.staged.is_empty()).then_some(&self.staged[..]);
        let pending = self.chunks.iter().map(|c| &c[..]).chain(staged);
        for (slot, chunk) in slices.iter_mut().zip(pending) {
            *slot = IoSlice::new(chunk);
            n += 1;
        }
        n
    }

    fn push(&mut self, chunk: Bytes) {
        if chunk.is_empty() {
            return;
        }
        self.len += chunk.len();
        if chunk.len() <= COPY_AT_MOST {
            self.staged.extend_from_slice(&chunk);
            self.staged_peak = self.staged_peak.max(self.staged.len());
            return;
        }
        if !self.staged.is_empty() {
            self.chunks.push_back(self.staged.split().freeze());
        }
        self.chunks.push_back(chunk);
    }

    /// `n` bytes of the front were written.
    fn consume(&mut self, n: usize) {
        self.len -= n;
        let mut left = n;
        while left > 0 {
            let Some(front) = self.chunks.front_mut() else {
                break;
            };
            if front.len() > left {
                front.advance(left);
                return;
            }
            left -= front.len();
            self.chunks.pop_front();
        }
        self.staged.advance(left);
        if self.staged.is_empty() {
            if self.staged_peak > KEEP_STAGED {
                self.staged = BytesMut::new();
            }
            self.staged_peak = 0;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One write of at most `step` bytes through `slices`/`consume`.
    fn write_once(q: &mut WriteQueue, step: usize) -> Vec<u8> {
        let mut written = Vec::new();
        let mut slices = [IoSlice::new(&[]); MAX_SLICES];
        let n = q.slices(&mut slices);
        assert!(n > 0, "bytes are queued: there is a slice");
        for s in &slices[..n] {
            let part = &s[..s.len().min(step - written.len())];
            written.extend_from_slice(part);
            if written.len() == step {
                break;
            }
        }
        q.consume(written.len());
        written
    }

    /// Writes everything queued, at most `step` bytes per write.
    fn write_out(q: &mut WriteQueue, step: usize) -> Vec<u8> {
        let mut written = Vec::new();
        for _ in 0..100_000 {
            if q.len == 0 {
                break;
            }
            written.extend(write_once(q, step));
        }
        written
    }

    #[test]
    fn small_and_large_chunks_come_out_in_order_whatever_each_write_takes() {
        let sizes = [20, 64, 0, 700, 3, 512, 513, 1, 2000, 90, 90, 4000, 7];
        let chunks: Vec<Bytes> = sizes
            .iter()
            .enumerate()
            .map(|(i, &n)| Bytes::from((0..n).map(|j| (i * 31 + j) as u8).collect::<Vec<_>>()))
            .collect();
        let expected: Vec<u8> = chunks.iter().flat_map(|c| c.iter().copied()).collect();
        for step in [1, 5, 64, 100, 511, 4096, usize::MAX / 2] {
            let mut q = WriteQueue::default();
            // Part of what is queued goes out before the rest is queued.
            let (first, rest) = chunks.split_at(5);
            for c in first {
                q.push(c.clone());
            }
            let mut written = write_once(&mut q, step.min(300));
            for c in rest {
                q.push(c.clone());
            }
            assert_eq!(q.len, expected.len() - written.len());
            written.extend(write_out(&mut q, step));
            assert_eq!(written, expected, "write step {step}");
            assert!(!q.writing() || q.unflushed);
        }
    }

    #[test]
    fn a_copy_buffer_grown_by_a_burst_is_let_go_once_written() {
        let mut q = WriteQueue::default();
        for _ in 0..100 {
            q.push(Bytes::from_static(&[7; 84]));
        }
        write_out(&mut q, 4096);
        // One more message: a buffer kept from the burst would be reused, 8,400 bytes large.
        q.push(Bytes::from_static(&[7; 84]));
        assert!(q.staged.capacity() < KEEP_STAGED, "{}", q.staged.capacity());
        // A small buffer is kept and reused.
        write_out(&mut q, 4096);
        q.push(Bytes::from_static(&[7; 84]));
        assert!(q.staged.capacity() >= 84);
    }

    #[test]
    fn a_window_of_small_messages_is_one_slice() {
        let mut q = WriteQueue::default();
        for _ in 0..100 {
            q.push(Bytes::from_static(&[0x32; 20]));
            q.push(Bytes::from_static(&[7; 64]));
        }
        let mut slices = [IoSlice::new(&[]); MAX_SLICES];
        assert_eq!(q.slices(&mut slices), 1);
        assert_eq!(slices[0].len(), 100 * 84);
    }

    /// The router's side of [`ConnState::wrote`]: it counts the bytes it sends a connection
    /// and sends only while the count is under `max_pending`; each report lowers the count.
    #[test]
    fn written_bytes_come_back_before_the_router_would_stall_and_not_after_every_write() {
        let mut broker = mqtt_core::broker::Broker::new(Default::default());
        let peer = mqtt_core::broker::PeerInfo {
            addr: None,
            tls: false,
        };
        let now = Instant::now();
        for max_pending in [1, 13, 100, 4096, 1 << 20, 16 << 20] {
            for size in [4, 84, 1000, 70_000] {
                let conn = broker.accept(now, peer.clone());
                let mut c = ConnState::new(conn, DecodeLimits::default(), max_pending);
                let (mut counted, mut writes, mut reports) = (0usize, 0, 0);
                for round in 0..500 {
                    // The router sends one or two messages a round, while it may.
                    for _ in 0..(round % 2 + 1) {
                        if counted < max_pending {
                            let bytes = Bytes::from(vec![0x30; size]);
                            c.push(
                                now,
                                ConnCommand::Write {
                                    bytes,
                                    payload: Bytes::new(),
                                },
                            );
                            counted += size;
                        }
                    }
                    // The connection writes it all out, up to 3,000 bytes a write.
                    while c.out.len > 0 {
                        writes += 1;
                        if let Wrote::Written(n) = c.wrote(c.out.len.min(3000)) {
                            counted -= n;
                            reports += 1;
                        }
                    }
                    assert!(
                        counted < max_pending,
                        "the router would wait for a report that never comes: \
                         max_pending {max_pending}, size {size}, round {round}"
                    );
                }
                if max_pending >= 1 << 20 && size <= 84 {
                    assert!(
                        reports * 100 < writes,
                        "{reports} reports for {writes} writes"
                    );
                }
            }
        }
    }
}
