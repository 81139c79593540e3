//! The router thread: the one owner of the broker (through `mqtt_adapter::broker::Router`), fed
//! by every connection through one bounded inbox, its timer the inbox's `recv_timeout`.

use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender, SyncSender};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread;
use std::time::Instant;

use bytes::Bytes;
use mqtt_adapter::broker::{
    close_store, ConnCommand, ConnSink, Report, Router as Core, SHUTDOWN_GRACE,
};
use mqtt_core::broker::PeerInfo;
use mqtt_store::StoreAnswer;
use tracing::warn;

use super::connection::{Connection, Io};
use crate::transport::Incoming;

/// What the listeners and connection threads tell the router, over one bounded channel.
#[derive(Debug)]
pub(super) enum Input {
    /// A listener accepted a socket.
    Accept(Incoming),
    /// A connection thread's report.
    Report(Report),
    /// A connection thread ended.
    Exited,
    /// The store answered (the answers wait in [`Answers`]).
    Stored,
    /// The server is stopping.
    Stop,
}

/// A connection thread's channel. Dropping it (the broker forgot the connection, or the
/// router ended) tells the thread that no more commands will come.
pub(super) struct Sink(Sender<Io>);

impl ConnSink for Sink {
    fn write(&self, bytes: Bytes, payload: Bytes) {
        // A send fails only when the thread has ended; its `Closed` is on its way.
        let _ = self
            .0
            .send(Io::Command(ConnCommand::Write { bytes, payload }));
    }

    fn close(&self) {
        let _ = self.0.send(Io::Command(ConnCommand::Close));
    }
}

impl Drop for Sink {
    fn drop(&mut self) {
        let _ = self.0.send(Io::Gone);
    }
}

/// The store's answers, from its writer thread. They wait here rather than in the bounded
/// inbox, so that the writer never blocks on it (closing the store waits for the writer).
pub(super) type Answers = Arc<Mutex<Vec<StoreAnswer>>>;

/// The store's callback: queue the answer, then wake the router if the inbox has room (if it
/// has none, the router is busy and looks at the answers after every input anyway).
pub(super) fn answer_to(answers: Answers, inbox: SyncSender<Input>) -> impl FnMut(StoreAnswer) {
    move |answer| {
        answers
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(answer);
        let _ = inbox.try_send(Input::Stored);
    }
}

/// The router: the shared core, the inbox, and the count of connection threads.
pub(super) struct Router {
    core: Core<Sink>,
    answers: Answers,
    inbox: Receiver<Input>,
    /// Handed to each connection thread.
    inbox_tx: SyncSender<Input>,
    /// Connection threads started and not yet `Exited`.
    live: usize,
}

impl Router {
    pub(super) fn new(
        core: Core<Sink>,
        answers: Answers,
        inbox: Receiver<Input>,
        inbox_tx: SyncSender<Input>,
    ) -> Self {
        Self {
            core,
            answers,
            inbox,
            inbox_tx,
            live: 0,
        }
    }

    /// The loop: one input (or the timer), the timers if due, then drain the broker's output.
    /// Returns on `Input::Stop`, after shutting down gracefully.
    pub(super) fn run(mut self) {
        loop {
            let input = match self.core.poll_timeout() {
                Some(at) => self
                    .inbox
                    .recv_timeout(at.saturating_duration_since(Instant::now())),
                // The router holds a sender: `recv` ends with an input.
                None => self
                    .inbox
                    .recv()
                    .map_err(|_| RecvTimeoutError::Disconnected),
            };
            match input {
                Ok(Input::Stop) | Err(RecvTimeoutError::Disconnected) => break,
                Ok(input) => self.handle(input),
                Err(RecvTimeoutError::Timeout) => {}
            }
            let now = Instant::now();
            let answers =
                std::mem::take(&mut *self.answers.lock().unwrap_or_else(PoisonError::into_inner));
            for answer in answers {
                self.core.answer(now, answer);
            }
            // Also under a steady stream of inputs, which `recv_timeout` returns first.
            if self.core.poll_timeout().is_some_and(|at| at <= now) {
                self.core.handle_timeout(now);
            }
            self.core.drain(now);
        }
        self.shutdown();
    }

    fn handle(&mut self, input: Input) {
        let now = Instant::now();
        match input {
            Input::Accept(incoming) => {
                let peer = PeerInfo {
                    addr: Some(incoming.addr),
                    tls: incoming.tls.is_some(),
                };
                let (tx, rx) = mpsc::channel();
                let reader_tx = tx.clone();
                let conn = self.core.accept(now, peer, |_| Sink(tx));
                let config = self.core.broker().config();
                let connection = Connection::new(
                    conn,
                    self.core.broker().decode_limits(),
                    config.limits.max_pending_write_bytes,
                    rx,
                    reader_tx,
                    self.inbox_tx.clone(),
                );
                let handshake = config.connect_timeout;
                let spawned = thread::Builder::new()
                    .name("mqtt-conn".into())
                    .spawn(move || connection.run(incoming, handshake));
                match spawned {
                    Ok(_) => self.live += 1,
                    Err(e) => {
                        warn!(%conn, error = %e, "cannot start a connection thread");
                        self.core.handle(now, Report::Closed(conn));
                    }
                }
            }
            Input::Report(report) => self.core.handle(now, report),
            Input::Exited => self.live = self.live.saturating_sub(1),
            Input::Stored | Input::Stop => {}
        }
    }

    /// Disconnects every client, then gives their threads a bounded time to write it; those
    /// still writing are left to end on their own (by their close linger).
    fn shutdown(mut self) {
        self.core.shutdown(Instant::now());
        let grace = Instant::now() + SHUTDOWN_GRACE;
        while self.live > 0 {
            let left = grace.saturating_duration_since(Instant::now());
            match self.inbox.recv_timeout(left) {
                Ok(Input::Exited) => self.live -= 1,
                // Keep connection threads from waiting on a full inbox; a late accept is
                // dropped, which closes its socket.
                Ok(_) => {}
                Err(_) => {
                    warn!(
                        left = self.live,
                        "connections still writing at shutdown: detached"
                    );
                    break;
                }
            }
        }
        // The last batches (sessions gone offline) are written and synced before we stop.
        close_store(self.core.take_store());
    }
}
