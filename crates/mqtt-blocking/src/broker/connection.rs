//! One connection's threads. The connection thread owns the socket's writing side, the TLS
//! state and the `mqtt_adapter::broker::ConnState`, and waits on one channel for both the
//! router's commands and what its reader thread read. The reader thread only reads raw bytes,
//! one read per credit the connection thread gives it while it wants to read: the blocking
//! counterpart of `read_buf` in a `select!`, so a write never waits for the peer to speak and
//! a peer that sends without reading is paused (`ConnState::reading`).

use std::io::{self, IoSlice};
use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender, SyncSender, TryRecvError};
use std::time::{Duration, Instant};

use bytes::Bytes;
use mqtt_adapter::broker::{ConnCommand, ConnState, Report, Wrote, MAX_SLICES};
use mqtt_core::broker::ConnId;
use mqtt_core::codec::DecodeLimits;
use tracing::debug;

use super::router::Input;
use crate::transport::{stalled, Incoming, Link};

/// What reaches a connection thread, in order.
#[derive(Debug)]
pub(crate) enum Io {
    /// The router's command.
    Command(ConnCommand),
    /// The router dropped this connection's channel: no more commands will come.
    Gone,
    /// What the reader thread read (the end of the stream is `UnexpectedEof`).
    Read(io::Result<Bytes>),
}

/// One connection thread: its state and its channels.
pub(super) struct Connection {
    state: ConnState,
    io: Receiver<Io>,
    /// Handed to the reader thread.
    io_tx: Sender<Io>,
    inbox: SyncSender<Input>,
    /// A credit is out: the reader thread is reading.
    reading: bool,
    /// Bytes read while reading was paused, decoded once it resumes.
    stash: Option<Bytes>,
}

impl Connection {
    pub(super) fn new(
        conn: ConnId,
        limits: DecodeLimits,
        max_pending: usize,
        io: Receiver<Io>,
        io_tx: Sender<Io>,
        inbox: SyncSender<Input>,
    ) -> Self {
        Self {
            state: ConnState::new(conn, limits, max_pending),
            io,
            io_tx,
            inbox,
            reading: false,
            stash: None,
        }
    }

    /// Runs the connection to its end: TLS handshake (within `handshake`), the reader thread,
    /// then the loop; tells the router when the thread ends.
    pub(super) fn run(mut self, incoming: Incoming, handshake: Duration) {
        let conn = self.state.conn();
        let started = incoming.establish(handshake).and_then(|link| {
            let credit = link.spawn_reader(self.io_tx.clone(), Io::Read)?;
            Ok((link, credit))
        });
        match started {
            Ok((mut link, credit)) => {
                // Plaintext that came with the end of the TLS handshake.
                if !self.received(&mut link, Ok(Bytes::new())) {
                    self.drive(link, &credit);
                }
            }
            Err(e) => {
                debug!(%conn, error = %e, "handshake failed");
                self.report(Report::Closed(conn));
            }
        }
        let _ = self.inbox.send(Input::Exited);
    }

    /// The loop: write what waits (each write waits at most `WRITE_STALL`), then take one
    /// input; wait for one only when nothing is left to write.
    fn drive(&mut self, mut link: Link, credit: &SyncSender<()>) {
        loop {
            if self.state.reading() {
                if let Some(bytes) = self.stash.take() {
                    if self.received(&mut link, Ok(bytes)) {
                        return;
                    }
                    continue;
                }
                if !self.reading {
                    self.reading = credit.try_send(()).is_ok();
                }
            }
            let writing = self.state.out.writing() || link.wants_flush();
            if writing && self.write(&mut link) {
                return;
            }
            let closing = self.state.closing();
            let input = match (writing, closing) {
                (true, _) => self.io.try_recv().map_err(|e| match e {
                    TryRecvError::Empty => RecvTimeoutError::Timeout,
                    TryRecvError::Disconnected => RecvTimeoutError::Disconnected,
                }),
                (false, Some(by)) => self
                    .io
                    .recv_timeout(by.saturating_duration_since(Instant::now())),
                // The connection holds a sender for its reader: `recv` ends with an input.
                (false, None) => self.io.recv().map_err(|_| RecvTimeoutError::Disconnected),
            };
            // Take what else is queued (a bounded batch), so that one write carries it all.
            let mut next = Some(input);
            for _ in 0..MAX_SLICES {
                let Some(input) = next.take() else { break };
                if self.take(&mut link, input, closing) {
                    return;
                }
                next = self.io.try_recv().ok().map(Ok);
            }
            if let Some(input) = next {
                if self.take(&mut link, input, closing) {
                    return;
                }
            }
            if let (true, Some(by)) = (self.state.closed(), self.state.closing()) {
                link.close(by);
                return;
            }
        }
    }

    /// One input of the loop. Returns whether the connection is done.
    fn take(
        &mut self,
        link: &mut Link,
        input: Result<Io, RecvTimeoutError>,
        closing: Option<Instant>,
    ) -> bool {
        match input {
            Ok(Io::Command(cmd)) => {
                self.state.push(Instant::now(), cmd);
                false
            }
            // The router is gone (server stopped) or has forgotten this connection; after
            // `Close` the last bytes are still written.
            Ok(Io::Gone) => self.state.closing().is_none(),
            Ok(Io::Read(read)) => {
                self.reading = false;
                match read {
                    Ok(bytes) => {
                        self.stash = Some(bytes);
                        false
                    }
                    Err(e) => self.received(link, Err(e)),
                }
            }
            Err(RecvTimeoutError::Timeout) => closing.is_some_and(|by| Instant::now() >= by),
            Err(RecvTimeoutError::Disconnected) => true,
        }
    }

    /// Writes the first queued chunks with one vectored write, or flushes. Returns whether the
    /// connection is done.
    fn write(&mut self, link: &mut Link) -> bool {
        let written = {
            let mut slices = [IoSlice::new(&[]); MAX_SLICES];
            let n = self.state.out.slices(&mut slices);
            link.write(&slices[..n])
        };
        match written {
            Ok(n) => match self.state.wrote(n) {
                Wrote::Nothing => false,
                Wrote::Written(n) => !self.report(Report::Written(self.state.conn(), n)),
                Wrote::Lost => self.lost("write", &"wrote zero bytes"),
            },
            Err(e) if stalled(&e) => false,
            Err(e) => self.lost("write", &e),
        }
    }

    /// Decrypts what was read and hands every complete packet to the router. Returns whether
    /// the connection is done.
    fn received(&mut self, link: &mut Link, read: io::Result<Bytes>) -> bool {
        let closed = match read.and_then(|bytes| link.received(&bytes, &mut self.state.rx)) {
            Ok(closed) => closed,
            Err(e) => return self.lost("read", &e),
        };
        while let Some(report) = self.state.decode() {
            if !self.report(report) {
                return true;
            }
        }
        closed && self.lost("read", &"TLS close_notify")
    }

    /// The socket failed or ended: tell the router, unless it already closed this connection.
    fn lost(&mut self, op: &str, error: &dyn std::fmt::Display) -> bool {
        if let Some(report) = self.state.lost(op, error) {
            self.report(report);
        }
        true
    }

    /// Sends to the router, waiting for room; `false` if the router is gone.
    fn report(&self, report: Report) -> bool {
        self.inbox.send(Input::Report(report)).is_ok()
    }
}
