//! One connection's I/O task: read and decode packets for the router, write what it sends back.
//! The state (`mqtt_adapter::broker::ConnState`) lives outside every future, so nothing is
//! lost when a `select!` branch loses.

use std::future::Future;
use std::io::IoSlice;
use std::pin::Pin;
use std::time::Duration;

use std::sync::Arc;

use mqtt_adapter::broker::{
    ConnCommand, ConnState, Mailbox, Report, WriteQueue, Wrote, MAX_SLICES,
};
use mqtt_core::broker::ConnId;
use mqtt_core::codec::DecodeLimits;
use tokio::io::{AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadHalf, WriteHalf};
use tokio::sync::mpsc;
use tokio::time::{sleep_until, Instant, Sleep};
use tracing::debug;

use super::router::Input;
use crate::transport::{Incoming, Stream};

/// One connection task: its state and its two channels.
pub(super) struct Connection {
    state: ConnState,
    commands: Arc<Mailbox>,
    inbox: mpsc::Sender<Input>,
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
                debug!(conn = %self.state.conn(), error = %e, "handshake failed");
                self.report(Report::Closed(self.state.conn())).await;
            }
        }
    }

    /// The loop: `select!` on the cancel-safe `recv`, `write_vectored`/`flush` and `read_buf`.
    async fn drive(&mut self, mut reader: ReadHalf<Stream>, mut writer: WriteHalf<Stream>) {
        // Only a closing connection lingers: its timer is boxed, so that every idle task
        // does not carry one.
        let mut linger: Option<Pin<Box<Sleep>>> = None;
        loop {
            let reading = self.state.reading();
            let closing = self.state.closing().map(Instant::from_std);
            let step = {
                let writing = self.state.out.writing();
                tokio::select! {
                    cmd = self.commands.recv(), if closing.is_none() => Step::Command(cmd),
                    r = write_or_flush(&mut writer, &self.state.out), if writing => Step::Wrote(r),
                    r = reader.read_buf(&mut self.state.rx), if reading => Step::Read(r),
                    () = expire(&mut linger, closing), if closing.is_some() => Step::Linger,
                }
            };
            let done = match step {
                Step::Command(Some(cmd)) => {
                    self.state
                        .push_queued(Instant::now().into_std(), cmd, &self.commands);
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
                let shutdown = tokio::time::timeout_at(Instant::from_std(by), writer.shutdown());
                let _ = Box::pin(shutdown).await;
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

    /// Sends to the router, waiting for room; `false` if the router is gone. Only the wait
    /// for room is a future, and boxed: it is rare, and a packet held across an `.await`
    /// would size every connection task for it.
    fn report(&self, report: Report) -> Reported<'_> {
        match self.inbox.try_send(Input::Report(report)) {
            Ok(()) => Reported::Done(true),
            Err(mpsc::error::TrySendError::Full(input)) => Reported::Waiting(Box::pin(
                async move { self.inbox.send(input).await.is_ok() },
            )),
            Err(mpsc::error::TrySendError::Closed(_)) => Reported::Done(false),
        }
    }
}

/// Writes the first chunks of `out` with one vectored write (returns the count written), or
/// with none, flushes (returns 0). Both are cancel safe: a lost race writes nothing, and an
/// interrupted flush resumes on the next call. The slices live only during each poll, not in
/// the task: an idle connection does not carry them.
async fn write_or_flush<W: AsyncWrite + Unpin>(
    writer: &mut W,
    out: &WriteQueue,
) -> std::io::Result<usize> {
    std::future::poll_fn(|cx| {
        let mut slices = [IoSlice::new(&[]); MAX_SLICES];
        match out.slices(&mut slices) {
            0 => Pin::new(&mut *writer).poll_flush(cx).map_ok(|()| 0),
            n => Pin::new(&mut *writer).poll_write_vectored(cx, &slices[..n]),
        }
    })
    .await
}

/// Completes at `at`, with the timer made (boxed) on first use.
async fn expire(timer: &mut Option<Pin<Box<Sleep>>>, at: Option<Instant>) {
    let at = at.unwrap_or_else(Instant::now);
    timer.get_or_insert_with(|| Box::pin(sleep_until(at))).await;
}

/// A report handed to the router: at once (the common case, no allocation), or boxed while
/// the inbox is full.
enum Reported<'a> {
    Done(bool),
    Waiting(Pin<Box<dyn Future<Output = bool> + Send + 'a>>),
}

impl Future for Reported<'_> {
    type Output = bool;

    fn poll(self: Pin<&mut Self>, cx: &mut std::task::Context<'_>) -> std::task::Poll<bool> {
        match self.get_mut() {
            Self::Done(sent) => std::task::Poll::Ready(*sent),
            Self::Waiting(wait) => wait.as_mut().poll(cx),
        }
    }
}
