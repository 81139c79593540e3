//! The driver task: one loop owning the socket, the read buffer and the pending write buffer,
//! and the `mqtt_adapter::client::Supervisor` that decides everything else.
//!
//! Each turn: drain the supervisor, act on what is due (open a transport, close one), then wait
//! in one `poll_fn` on single non-blocking attempts only: a read into a field, a write from a
//! field (advanced in the poll that writes), `poll_recv` of a command, room for events, the
//! timer at the next deadline. Nothing that matters lives in a future.

use std::future::poll_fn;
use std::io;
use std::pin::pin;
use std::task::Poll;
use std::time::Instant;

use async_io::Timer;
use bytes::BytesMut;
use futures_lite::{AsyncWriteExt, FutureExt};
use mqtt_adapter::client::READ_CHUNK;
use mqtt_adapter::client::{Command, DriverParts, Due, Error, Interest, Supervisor};
use mqtt_store::StoreAnswer;
use tokio::sync::mpsc;

use crate::transport::{self, timeout_at, Stream};

/// The driver's state: see the module docs.
pub(super) struct Driver {
    sup: Supervisor,
    commands: mpsc::Receiver<Command>,
    stream: Option<Stream>,
    rx: BytesMut,
    /// The pending write buffer: a field, so an outcome that loses the turn loses nothing.
    tx: BytesMut,
    /// Written but perhaps still buffered (TLS): flush before waiting.
    unflushed: bool,
    /// Armed at the supervisor's deadline, re-armed only when that moves.
    timer: Option<(Instant, Timer)>,
    /// Which outcome is tried first this turn, in rotation: a busy one starves no other.
    turn: usize,
    /// Answers of the session's store, if it has one.
    answers: Option<mpsc::UnboundedReceiver<StoreAnswer>>,
}

/// What one turn of the loop saw.
// Moved by value once per turn: boxing would cost an allocation per turn.
#[allow(clippy::large_enum_variant)]
enum Step {
    Read(io::Result<usize>),
    Wrote(io::Result<usize>),
    Command(Option<Command>),
    App,
    Timeout,
    Stored(Option<StoreAnswer>),
}

impl Driver {
    pub(super) fn new(parts: DriverParts) -> Self {
        let mut sup = parts.supervisor;
        Self {
            answers: sup.take_store_answers(),
            sup,
            commands: parts.commands,
            stream: None,
            rx: BytesMut::with_capacity(READ_CHUNK),
            tx: BytesMut::new(),
            unflushed: false,
            timer: None,
            turn: 0,
        }
    }

    /// The loop, until the connection is over for good.
    pub(super) async fn run(mut self) {
        loop {
            let t = Instant::now();
            self.sup.drain(t, &mut self.tx);
            match self.sup.due(t, self.tx.is_empty() && !self.unflushed) {
                Due::Nothing => {}
                Due::Again => continue,
                Due::CloseLink { by } => {
                    if let Some(mut stream) = self.stream.take() {
                        let _ = timeout_at(by, stream.close()).await;
                    }
                    self.drop_link();
                    self.sup.link_closed(t);
                    continue;
                }
                Due::Open => {
                    self.open().await;
                    continue;
                }
            }
            let interest = self.sup.interest(self.tx.len(), &mut self.rx);
            if interest.finished {
                break;
            }
            if self.timer.as_ref().map(|(at, _)| *at) != interest.deadline {
                self.timer = interest.deadline.map(|at| (at, Timer::at(at)));
            }
            let step = self.wait(interest).await;
            let now = Instant::now();
            match step {
                Step::Read(Ok(0)) => self.lost(io::ErrorKind::UnexpectedEof.into()),
                Step::Read(Ok(_)) => self.sup.received(now, &mut self.rx),
                Step::Read(Err(e)) => self.lost(e),
                Step::Wrote(Ok(0)) => self.unflushed = !self.tx.is_empty(),
                Step::Wrote(Ok(_)) => self.unflushed = true,
                Step::Wrote(Err(e)) => self.lost(e),
                Step::Command(command) => {
                    self.sup
                        .command(now, command, self.tx.len(), &mut self.commands);
                }
                Step::App => {}
                Step::Timeout => {
                    self.timer = None;
                    self.sup.handle_timeout(now);
                }
                Step::Stored(Some(answer)) => self.sup.stored(now, answer),
                Step::Stored(None) => self.answers = None,
            }
        }
        self.sup.finish();
    }

    /// Waits for the first outcome `interest` allows: a hand-written `select!`.
    async fn wait(&mut self, interest: Interest) -> Step {
        let writing = self.stream.is_some() && (!self.tx.is_empty() || self.unflushed);
        self.turn = (self.turn + 1) % 6;
        let Self {
            sup,
            commands,
            stream,
            rx,
            tx,
            timer,
            turn,
            answers,
            ..
        } = self;
        // Cancel safe: an event leaves the outbox in the poll that sends it.
        let mut app = pin!(sup.app());
        poll_fn(|cx| {
            for i in 0..6 {
                let polled = match ((*turn + i) % 6, stream.as_mut()) {
                    (0, Some(s)) if interest.read => s.poll_read_buf(cx, rx).map(Step::Read),
                    (1, Some(s)) if writing => s.poll_write_buf(cx, tx).map(Step::Wrote),
                    (2, _) if interest.take_commands => commands.poll_recv(cx).map(Step::Command),
                    (3, _) if interest.app => app.as_mut().poll(cx).map(|()| Step::App),
                    (4, _) => match timer.as_mut() {
                        Some((_, timer)) => timer.poll(cx).map(|_| Step::Timeout),
                        None => Poll::Pending,
                    },
                    (5, _) => match answers.as_mut() {
                        Some(answers) => answers.poll_recv(cx).map(Step::Stored),
                        None => Poll::Pending,
                    },
                    _ => Poll::Pending,
                };
                if polled.is_ready() {
                    return polled;
                }
            }
            Poll::Pending
        })
        .await
    }

    /// Opens a transport within the connect timeout; the supervisor hears how it went.
    async fn open(&mut self) {
        let by = Instant::now() + self.sup.connect_timeout();
        let opened = timeout_at(by, transport::open(self.sup.endpoint())).await;
        match opened.unwrap_or(Err(Error::Timeout)) {
            Ok(stream) => {
                self.stream = Some(stream);
                self.rx.clear();
                self.sup.opened(Instant::now());
            }
            Err(e) => self.sup.open_failed(Instant::now(), e),
        }
    }

    /// The transport failed: the supervisor hears of it, and it is dropped.
    fn lost(&mut self, error: io::Error) {
        self.drop_link();
        self.sup.lost(Instant::now(), error);
    }

    fn drop_link(&mut self) {
        self.stream = None;
        self.tx.clear();
        self.unflushed = false;
    }
}
