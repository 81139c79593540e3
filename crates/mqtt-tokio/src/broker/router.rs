//! The router task: the one owner of the broker (through `mqtt_adapter::broker::Router`), fed
//! by every connection and a timer.

use mqtt_adapter::broker::{
    close_store, Mailbox, MailboxSink, Report, Router as Core, Wakes, SHUTDOWN_GRACE,
};
use mqtt_core::broker::PeerInfo;
use mqtt_store::StoreAnswer;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinSet;
use tokio::time::{sleep, sleep_until, Instant};
use tracing::warn;

use super::connection::Connection;
use crate::transport::Incoming;

/// The most inputs the router takes in one turn of its loop.
const BURST: usize = 64;

/// What the listeners and connection tasks tell the router, over one bounded channel.
#[derive(Debug)]
pub(super) enum Input {
    /// A listener accepted a socket.
    Accept(Incoming),
    /// A connection task's report.
    Report(Report),
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
    tasks: JoinSet<()>,
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
            tasks: JoinSet::new(),
        }
    }

    /// The loop: one input (a connection's, the store's answer, or the timer), then drain the
    /// broker's output; connection inputs come up to [`BURST`] at a time, each drained.
    /// Returns once `stop` fires (or its sender is dropped), after shutting down gracefully.
    pub(super) async fn run(mut self, mut stop: oneshot::Receiver<()>) {
        // One timer, moved only when the broker's deadline moves: registering a new one on
        // every turn cost as much as handling a PUBACK.
        let timer = sleep_until(Instant::now());
        tokio::pin!(timer);
        let mut armed: Option<std::time::Instant> = None;
        loop {
            let timeout = self.core.poll_timeout();
            if timeout != armed {
                if let Some(at) = timeout {
                    timer.as_mut().reset(Instant::from_std(at));
                }
                armed = timeout;
            }
            tokio::select! {
                Some(input) = self.inbox.recv() => {
                    let now = now();
                    self.handle(now, input);
                    // What else is queued is taken here, each input drained as the broker
                    // expects, without a trip through `select!` per input; bounded, so that
                    // timers and the store's answers get their turn.
                    for _ in 1..BURST {
                        let Ok(input) = self.inbox.try_recv() else {
                            break;
                        };
                        self.core.drain_in_burst(now);
                        self.handle(now, input);
                    }
                }
                Some(answer) = self.answers.recv() => self.core.answer(now(), answer),
                () = &mut timer, if armed.is_some() => {
                    armed = None;
                    self.core.handle_timeout(now());
                }
                Some(joined) = self.tasks.join_next(), if !self.tasks.is_empty() => {
                    if let Err(e) = joined {
                        warn!(error = %e, "a connection task failed");
                    }
                }
                _ = &mut stop => break,
            }
            self.core.drain(now());
            self.wakes.wake_last_first();
        }
        self.shutdown().await;
    }

    fn handle(&mut self, now: std::time::Instant, input: Input) {
        match input {
            Input::Accept(incoming) => {
                let peer = PeerInfo {
                    addr: Some(incoming.addr),
                    tls: incoming.tls.is_some(),
                };
                let (mailbox, sink) = Mailbox::new(&self.wakes);
                let conn = self.core.accept(now, peer, |_| sink);
                let config = self.core.broker().config();
                let task = Connection::new(
                    conn,
                    self.core.broker().decode_limits(),
                    config.limits.max_pending_write_bytes,
                    mailbox,
                    self.inbox_tx.clone(),
                );
                self.tasks.spawn(task.run(incoming, config.connect_timeout));
            }
            Input::Report(report) => self.core.handle(now, report),
        }
    }

    /// Disconnects every client, then gives their tasks a bounded time to write it.
    async fn shutdown(mut self) {
        self.core.shutdown(now());
        self.wakes.wake_last_first();
        let grace = sleep(SHUTDOWN_GRACE);
        tokio::pin!(grace);
        loop {
            tokio::select! {
                joined = self.tasks.join_next() => if joined.is_none() { break },
                // Keep connection tasks from waiting on a full inbox; a late accept is closed.
                _ = self.inbox.recv() => {}
                () = &mut grace => {
                    warn!(left = self.tasks.len(), "connections still writing at shutdown: dropped");
                    break;
                }
            }
        }
        // The last batches (sessions gone offline) are written and synced before we stop,
        // off the runtime's threads.
        let store = self.core.take_store();
        let _ = tokio::task::spawn_blocking(move || close_store(store)).await;
        // Dropping the `JoinSet` aborts whatever is left.
    }
}

/// The time given to the broker: tokio's clock, so that tests may pause it.
pub(super) fn now() -> std::time::Instant {
    Instant::now().into_std()
}
