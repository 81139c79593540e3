//! One connection's I/O task: read and decode packets for the router, write what it sends back.
//! The state (`mqtt_adapter::broker::ConnState`) lives outside every future, and each turn
//! waits in one `poll_fn` of single non-blocking attempts, so nothing is lost when an outcome
//! loses the turn.

use std::future::poll_fn;
use std::io::IoSlice;
use std::task::Poll;
use std::time::{Duration, Instant};

use async_io::Timer;
use futures_lite::{AsyncWriteExt, FutureExt};
use std::sync::Arc;

use mqtt_adapter::broker::{ConnCommand, ConnState, Mailbox, Report, Wrote, MAX_SLICES};
use mqtt_core::broker::ConnId;
use mqtt_core::codec::DecodeLimits;
use tokio::sync::mpsc;
use tracing::debug;

use super::router::Input;
use crate::transport::{timeout_at, Incoming, Stream};

/// One connection task: its state and its two channels.
pub(super) struct Connection {
    state: ConnState,
    commands: Arc<Mailbox>,
    inbox: mpsc::Sender<Input>,
    /// Which operation is tried first this turn, in rotation: a busy one starves no other.
    turn: usize,
}

/// What one turn of the loop saw.
enum Step {
    Command(Option<ConnCommand>),
    Wrote(std::io::Result<usize>),
    Read(std::io::Result<usize>),
    Linger,
}

impl Connection {
    pub(super) fn new(
        conn: ConnId,
        limits: DecodeLimits,
        max_pending: usize,
        commands: Arc<Mailbox>,
        inbox: mpsc::Sender<Input>,
    ) -> Self {
        Self {
            state: ConnState::new(conn, limits, max_pending),
            commands,
            inbox,
            turn: 0,
        }
    }

    /// Runs the connection to its end: TLS handshake (within `handshake`), then the loop.
    pub(super) async fn run(mut self, incoming: Incoming, handshake: Duration) {
        match incoming.establish(handshake).await {
            Ok(stream) => self.drive(stream).await,
            Err(e) => {
                debug!(conn = %self.state.conn(), error = %e, "handshake failed");
                self.report(Report::Closed(self.state.conn())).await;
            }
        }
    }

    /// The loop: wait for a command (`poll_recv`), a write or flush, a read, or the linger
    /// timer after `Close`; then act on it.
    async fn drive(&mut self, mut stream: Stream) {
        let mut linger: Option<Timer> = None;
        loop {
            let reading = self.state.reading();
            let closing = self.state.closing();
            if let (Some(by), None) = (closing, &linger) {
                linger = Some(Timer::at(by));
            }
            self.turn = (self.turn + 1) % 4;
            let step = poll_fn(|cx| {
                for i in 0..4 {
                    let polled = match ((self.turn + i) % 4, linger.as_mut()) {
                        (0, _) if closing.is_none() => {
                            self.commands.poll_recv(cx).map(Step::Command)
                        }
                        (1, _) if self.state.out.writing() => {
                            let mut slices = [IoSlice::new(&[]); MAX_SLICES];
                            let n = self.state.out.slices(&mut slices);
                            stream
                                .poll_write_or_flush(cx, &slices[..n])
                                .map(Step::Wrote)
                        }
                        (2, _) if reading => {
                            stream.poll_read_buf(cx, &mut self.state.rx).map(Step::Read)
                        }
                        (3, Some(timer)) => timer.poll(cx).map(|_| Step::Linger),
                        _ => Poll::Pending,
                    };
                    if polled.is_ready() {
                        return polled;
                    }
                }
                Poll::Pending
            })
            .await;
            let done = match step {
                Step::Command(Some(cmd)) => {
                    self.state.push_queued(Instant::now(), cmd, &self.commands);
                    false
                }
                // The router is gone (server stopped) or has forgotten this connection.
                Step::Command(None) => true,
                Step::Wrote(Ok(n)) => match self.state.wrote(n) {
                    Wrote::Nothing => false,
                    Wrote::Written(n) => !self.report(Report::Written(self.state.conn(), n)).await,
                    Wrote::Lost => self.lost("write", &"wrote zero bytes").await,
                },
                Step::Wrote(Err(e)) => self.lost("write", &e).await,
                Step::Read(Ok(0)) => self.lost("read", &"end of stream").await,
                Step::Read(Ok(_)) => self.decode().await,
                Step::Read(Err(e)) => self.lost("read", &e).await,
                Step::Linger => true,
            };
            if done {
                break;
            }
            if let (true, Some(by)) = (self.state.closed(), self.state.closing()) {
                let _ = timeout_at(by, stream.close()).await;
                break;
            }
        }
    }

    /// Hands every complete packet in the read buffer to the router. Returns whether the task
    /// is done.
    async fn decode(&mut self) -> bool {
        while let Some(report) = self.state.decode() {
            if !self.report(report).await {
                return true;
            }
        }
        false
    }

    /// The socket failed or ended: tell the router, unless it already closed this connection.
    async fn lost(&mut self, op: &str, error: &(dyn std::fmt::Display + Sync)) -> bool {
        if let Some(report) = self.state.lost(op, error) {
            self.report(report).await;
        }
        true
    }

    /// Sends to the router, waiting for room; `false` if the router is gone.
    async fn report(&self, report: Report) -> bool {
        self.inbox.send(Input::Report(report)).await.is_ok()
    }
}
