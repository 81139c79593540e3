//! The driver task: one loop owning the socket, the read buffer and the pending write buffer,
//! and the `mqtt_adapter::client::Supervisor` that decides everything else.
//!
//! Each turn: drain the supervisor, act on what is due (open a transport, close one), then
//! `select!` on cancel-safe operations only: `read_buf` into a field, `write_buf` from a field
//! (a lost race writes nothing), `recv` of a command, room for events, `sleep_until` the next
//! deadline. Nothing that matters lives in a future.

use std::io;

use bytes::BytesMut;
use mqtt_adapter::client::{Command, DriverParts, Due, Error, Supervisor, READ_CHUNK};
use mqtt_store::StoreAnswer;
use tokio::io::{AsyncReadExt, AsyncWriteExt, ReadHalf, WriteHalf};
use tokio::sync::mpsc;
use tokio::time::{sleep_until, timeout, timeout_at, Instant};

use crate::transport::{self, Stream};

/// The driver's state: see the module docs.
pub(super) struct Driver {
    sup: Supervisor,
    commands: mpsc::Receiver<Command>,
    reader: Option<ReadHalf<Stream>>,
    writer: Option<WriteHalf<Stream>>,
    rx: BytesMut,
    /// The pending write buffer: a field, so a lost `select!` race loses nothing.
    tx: BytesMut,
    /// Written but perhaps still buffered (TLS): flush before waiting.
    unflushed: bool,
    /// Answers of the session's store, if it has one.
    answers: Option<mpsc::UnboundedReceiver<StoreAnswer>>,
}

impl Driver {
    pub(super) fn new(parts: DriverParts) -> Self {
        let mut sup = parts.supervisor;
        Self {
            answers: sup.take_store_answers(),
            sup,
            commands: parts.commands,
            reader: None,
            writer: None,
            rx: BytesMut::with_capacity(READ_CHUNK),
            tx: BytesMut::new(),
            unflushed: false,
        }
    }

    /// The loop, until the connection is over for good.
    pub(super) async fn run(mut self) {
        loop {
            let t = now();
            self.sup.drain(t, &mut self.tx);
            match self.sup.due(t, self.tx.is_empty() && !self.unflushed) {
                Due::Nothing => {}
                Due::Again => continue,
                Due::CloseLink { by } => {
                    if let Some(mut writer) = self.writer.take() {
                        let _ = timeout_at(Instant::from_std(by), writer.shutdown()).await;
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
            let writing = self.writer.is_some() && (!self.tx.is_empty() || self.unflushed);
            let deadline = interest.deadline.map(Instant::from_std);
            tokio::select! {
                r = read(self.reader.as_mut(), &mut self.rx), if interest.read => match r {
                    Ok(0) => self.lost(io::ErrorKind::UnexpectedEof.into()),
                    Ok(_) => self.sup.received(now(), &mut self.rx),
                    Err(e) => self.lost(e),
                },
                r = write(self.writer.as_mut(), &mut self.tx), if writing => match r {
                    Ok(0) => self.unflushed = !self.tx.is_empty(),
                    Ok(_) => self.unflushed = true,
                    Err(e) => self.lost(e),
                },
                command = self.commands.recv(), if interest.take_commands => {
                    self.sup.command(now(), command, self.tx.len(), &mut self.commands);
                }
                () = self.sup.app(), if interest.app => {}
                answer = recv(self.answers.as_mut()) => match answer {
                    Some(answer) => self.sup.stored(now(), answer),
                    None => self.answers = None,
                },
                () = sleep_until(deadline.unwrap_or_else(Instant::now)), if deadline.is_some() => {
                    self.sup.handle_timeout(now());
                }
            }
        }
        self.sup.finish();
    }

    /// Opens a transport within the connect timeout; the supervisor hears how it went.
    async fn open(&mut self) {
        let opened = match timeout(
            self.sup.connect_timeout(),
            transport::open(self.sup.endpoint()),
        )
        .await
        {
            Ok(opened) => opened,
            Err(_) => Err(Error::Timeout),
        };
        match opened {
            Ok(stream) => {
                let (reader, writer) = tokio::io::split(stream);
                self.reader = Some(reader);
                self.writer = Some(writer);
                self.rx.clear();
                self.sup.opened(now());
            }
            Err(e) => self.sup.open_failed(now(), e),
        }
    }

    /// The transport failed: the supervisor hears of it, and it is dropped.
    fn lost(&mut self, error: io::Error) {
        self.drop_link();
        self.sup.lost(now(), error);
    }

    fn drop_link(&mut self) {
        self.reader = None;
        self.writer = None;
        self.tx.clear();
        self.unflushed = false;
    }
}

/// tokio's clock, so that tests may pause it.
fn now() -> std::time::Instant {
    Instant::now().into_std()
}

/// The store's next answer (cancel safe); never completes without a store.
async fn recv(answers: Option<&mut mpsc::UnboundedReceiver<StoreAnswer>>) -> Option<StoreAnswer> {
    match answers {
        Some(answers) => answers.recv().await,
        None => std::future::pending().await,
    }
}

/// Reads into `buf` (cancel safe: a lost race reads nothing); never completes without a reader.
async fn read(reader: Option<&mut ReadHalf<Stream>>, buf: &mut BytesMut) -> io::Result<usize> {
    match reader {
        Some(reader) => reader.read_buf(buf).await,
        None => std::future::pending().await,
    }
}

/// Writes from the front of `buf` and advances it, or with nothing left flushes (returns 0).
/// Cancel safe: `write_buf` advances `buf` in the same poll that writes.
async fn write(writer: Option<&mut WriteHalf<Stream>>, buf: &mut BytesMut) -> io::Result<usize> {
    match writer {
        Some(writer) if buf.is_empty() => writer.flush().await.map(|()| 0),
        Some(writer) => match writer.write_buf(buf).await? {
            0 => Err(io::ErrorKind::WriteZero.into()),
            n => Ok(n),
        },
        None => std::future::pending().await,
    }
}
