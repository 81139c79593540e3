//! The router task: the one owner of the broker (through `mqtt_adapter::broker::Router`), fed
//! by every connection and a timer.

use std::collections::HashMap;
use std::future::poll_fn;
use std::panic::AssertUnwindSafe;
use std::task::Poll;
use std::time::Instant;

use async_io::Timer;
use futures_lite::FutureExt;
use mqtt_adapter::broker::{
    close_store, Mailbox, MailboxSink, Report, Router as Core, Wakes, SHUTDOWN_GRACE,
};
use mqtt_core::broker::{ConnId, PeerInfo};
use mqtt_store::StoreAnswer;
use smol::Task;
use tokio::sync::{mpsc, oneshot};
use tracing::warn;

use super::connection::Connection;
use crate::transport::{timeout_at, Incoming};

/// Inputs handled in a row before the timer and the store's answers get a look.
const BURST: usize = 64;

/// What the listeners and connection tasks tell the router, over one bounded channel.
#[derive(Debug)]
pub(super) enum Input {
    /// A listener accepted a socket.
    Accept(Incoming),
    /// A connection task's report.
    Report(Report),
    /// A connection task is over: its handle can go (smol has no `JoinSet`).
    Ended(ConnId),
}

/// The router: the shared core, the inbox, and the connection tasks.
pub(super) struct Router {
    core: Core<MailboxSink>,
    inbox: mpsc::Receiver<Input>,
    /// Handed to each connection task.
    inbox_tx: mpsc::Sender<Input>,
    /// The store's answers, from its writer thread.
    answers: mpsc::UnboundedReceiver<StoreAnswer>,
    /// The connection tasks to wake once the broker is drained.
    wakes: Wakes,
    /// Dropping a handle cancels its task.
    tasks: HashMap<ConnId, Task<()>>,
    /// Armed at the broker's `poll_timeout`, re-armed only when that moves.
    timer: Option<(Instant, Timer)>,
}

/// What one turn of the loop saw.
// Moved by value once per turn: boxing would cost an allocation per turn.
#[allow(clippy::large_enum_variant)]
enum Step {
    Stop,
    Timeout,
    Stored(StoreAnswer),
    Input(Input),
}

impl Router {
    pub(super) fn new(
        core: Core<MailboxSink>,
        inbox: mpsc::Receiver<Input>,
        inbox_tx: mpsc::Sender<Input>,
        answers: mpsc::UnboundedReceiver<StoreAnswer>,
    ) -> Self {
        Self {
            core,
            inbox,
            inbox_tx,
            answers,
            wakes: Wakes::default(),
            tasks: HashMap::new(),
            timer: None,
        }
    }

    /// The loop: one input (a connection's, or the timer), then drain the broker's output.
    /// Returns once `stop` fires (or its sender is dropped), after shutting down gracefully.
    pub(super) async fn run(mut self, mut stop: oneshot::Receiver<()>) {
        loop {
            let deadline = self.core.poll_timeout();
            if self.timer.as_ref().map(|(at, _)| *at) != deadline {
                self.timer = deadline.map(|at| (at, Timer::at(at)));
            }
            // Stop first, then a deadline that passed, then the inbox: none can starve.
            let step = poll_fn(|cx| {
                if stop.poll(cx).is_ready() {
                    return Poll::Ready(Step::Stop);
                }
                if let Some((_, timer)) = self.timer.as_mut() {
                    if timer.poll(cx).is_ready() {
                        return Poll::Ready(Step::Timeout);
                    }
                }
                if let Poll::Ready(Some(answer)) = self.answers.poll_recv(cx) {
                    return Poll::Ready(Step::Stored(answer));
                }
                // `None` never comes: the router holds a sender.
                match self.inbox.poll_recv(cx) {
                    Poll::Ready(Some(input)) => Poll::Ready(Step::Input(input)),
                    _ => Poll::Pending,
                }
            })
            .await;
            match step {
                Step::Stop => break,
                Step::Timeout => {
                    self.timer = None;
                    self.core.handle_timeout(Instant::now());
                }
                Step::Stored(answer) => self.core.answer(Instant::now(), answer),
                Step::Input(input) => {
                    self.handle(input);
                    // What is already queued, up to a burst: one store batch for all of it.
                    for _ in 1..BURST {
                        let Ok(input) = self.inbox.try_recv() else {
                            break;
                        };
                        self.core.drain_in_burst(Instant::now());
                        self.handle(input);
                    }
                }
            }
            self.core.drain(Instant::now());
            self.wakes.wake_in_order();
        }
        self.shutdown().await;
    }

    fn handle(&mut self, input: Input) {
        match input {
            Input::Accept(incoming) => {
                let peer = PeerInfo {
                    addr: Some(incoming.addr),
                    tls: incoming.tls.is_some(),
                };
                let (mailbox, sink) = Mailbox::new(&self.wakes);
                let conn = self.core.accept(Instant::now(), peer, |_| sink);
                let config = self.core.broker().config();
                let connection = Connection::new(
                    conn,
                    self.core.broker().decode_limits(),
                    config.limits.max_pending_write_bytes,
                    mailbox,
                    self.inbox_tx.clone(),
                );
                let handshake = config.connect_timeout;
                let inbox = self.inbox_tx.clone();
                let task = smol::spawn(async move {
                    let run = AssertUnwindSafe(connection.run(incoming, handshake));
                    if run.catch_unwind().await.is_err() {
                        warn!(%conn, "a connection task failed");
                    }
                    let _ = inbox.send(Input::Ended(conn)).await;
                });
                self.tasks.insert(conn, task);
            }
            Input::Report(report) => self.core.handle(Instant::now(), report),
            Input::Ended(conn) => {
                self.tasks.remove(&conn);
            }
        }
    }

    /// Disconnects every client, then gives their tasks a bounded time to write it.
    async fn shutdown(mut self) {
        self.core.shutdown(Instant::now());
        self.wakes.wake_in_order();
        let grace = Instant::now() + SHUTDOWN_GRACE;
        while !self.tasks.is_empty() {
            // Reading the inbox keeps connection tasks from waiting on it; a late accept is
            // dropped, which closes it.
            match timeout_at(grace, self.inbox.recv()).await {
                Some(Some(Input::Ended(conn))) => {
                    self.tasks.remove(&conn);
                }
                Some(_) => {}
                None => {
                    warn!(
                        left = self.tasks.len(),
                        "connections still writing at shutdown: dropped"
                    );
                    break;
                }
            }
        }
        // Cancel what is left, and wait until their sockets are closed.
        for (_, task) in self.tasks.drain() {
            task.cancel().await;
        }
        // The last batches (sessions gone offline) are written and synced before we stop,
        // off the executor's threads.
        let store = self.core.take_store();
        smol::unblock(move || close_store(store)).await;
    }
}
