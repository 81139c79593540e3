//! The driver thread: one loop owning the socket's writing side, the read buffer and the
//! pending write buffer, and the `mqtt_adapter::client::Supervisor` that decides everything
//! else.
//!
//! It waits on one std channel, with `recv_timeout` until the supervisor's deadline: the
//! reader thread sends what it read there (tagged with the link it belongs to, so bytes of a
//! link already dropped are ignored), and the handles send a nudge there after each command,
//! after making room in a full event channel, and when dropped. Each turn: drain the
//! supervisor, act on what is due (open a transport, close one), give the reader a credit if
//! the supervisor wants to read, write (waiting at most `WRITE_STALL`), take a command, then
//! wait for an input (not at all while bytes are left to write).

use std::io::{self, IoSlice};
use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender, SyncSender};
use std::time::Instant;

use bytes::{Buf, Bytes, BytesMut};
use mqtt_adapter::client::READ_CHUNK;
use mqtt_adapter::client::{Command, Due, Supervisor};
use tokio::sync::mpsc;

use crate::transport::{self, stalled, Link};

/// What wakes the driver.
#[derive(Debug)]
pub(super) enum Input {
    /// What the reader thread of link number `link` read (the end of the stream is
    /// `UnexpectedEof`).
    Read { link: u64, read: io::Result<Bytes> },
    /// A handle sent a command, made room for events, or was dropped.
    Nudge,
    /// The session store's answer about a batch.
    Stored(mqtt_store::StoreAnswer),
}

/// An open transport and its reader thread's credits.
struct Open {
    link: Link,
    credit: SyncSender<()>,
    id: u64,
}

/// The driver's state: see the module docs.
pub(super) struct Driver {
    sup: Supervisor,
    commands: mpsc::Receiver<Command>,
    inbox: Receiver<Input>,
    /// Handed to each reader thread.
    inbox_tx: Sender<Input>,
    open: Option<Open>,
    /// Links opened so far: the number of the next one's reader.
    links: u64,
    rx: BytesMut,
    /// The pending write buffer.
    tx: BytesMut,
    /// A credit is out: the reader thread is reading.
    reading: bool,
    /// Bytes read while reading was paused, handed over once it resumes.
    stash: Option<Bytes>,
}

impl Driver {
    pub(super) fn new(
        mut sup: Supervisor,
        commands: mpsc::Receiver<Command>,
        inbox: Receiver<Input>,
        inbox_tx: Sender<Input>,
    ) -> Self {
        // The session store answers on a channel of its own: a thread moves each answer into
        // the one channel this driver waits on. It ends when the store is dropped.
        if let Some(mut answers) = sup.take_store_answers() {
            let inbox = inbox_tx.clone();
            let forward = move || {
                while let Some(answer) = answers.blocking_recv() {
                    if inbox.send(Input::Stored(answer)).is_err() {
                        return;
                    }
                }
            };
            if let Err(e) = std::thread::Builder::new()
                .name("mqtt-client-store".into())
                .spawn(forward)
            {
                tracing::warn!(error = %e, "cannot start the session store's answer thread");
            }
        }
        Self {
            sup,
            commands,
            inbox,
            inbox_tx,
            open: None,
            links: 0,
            rx: BytesMut::with_capacity(READ_CHUNK),
            tx: BytesMut::new(),
            reading: false,
            stash: None,
        }
    }

    /// The loop, until the connection is over for good.
    pub(super) fn run(mut self) {
        loop {
            let t = Instant::now();
            self.sup.app_now();
            self.sup.drain(t, &mut self.tx);
            let flushing = self.open.as_ref().is_some_and(|o| o.link.wants_flush());
            match self.sup.due(t, self.tx.is_empty() && !flushing) {
                Due::Nothing => {}
                Due::Again => continue,
                Due::CloseLink { by } => {
                    if let Some(open) = self.open.take() {
                        open.link.close(by);
                    }
                    self.drop_link();
                    self.sup.link_closed(t);
                    continue;
                }
                Due::Open => {
                    self.connect();
                    continue;
                }
            }
            let interest = self.sup.interest(self.tx.len(), &mut self.rx);
            if interest.finished {
                break;
            }
            if interest.read {
                if let Some(bytes) = self.stash.take() {
                    self.received(&bytes);
                    continue;
                }
                if let (false, Some(open)) = (self.reading, &self.open) {
                    self.reading = open.credit.try_send(()).is_ok();
                }
            }
            let mut busy = self.write();
            if interest.take_commands {
                let taken = match self.commands.try_recv() {
                    Ok(command) => Some(Some(command)),
                    Err(mpsc::error::TryRecvError::Disconnected) => Some(None),
                    Err(mpsc::error::TryRecvError::Empty) => None,
                };
                if let Some(command) = taken {
                    let pending = self.tx.len();
                    self.sup
                        .command(Instant::now(), command, pending, &mut self.commands);
                    busy = true;
                }
            }
            let input = match (busy, interest.deadline) {
                (true, _) => self.inbox.try_recv().map_err(|_| RecvTimeoutError::Timeout),
                (false, Some(at)) => self
                    .inbox
                    .recv_timeout(at.saturating_duration_since(Instant::now())),
                // The driver holds a sender for its readers: `recv` ends with an input.
                (false, None) => self
                    .inbox
                    .recv()
                    .map_err(|_| RecvTimeoutError::Disconnected),
            };
            match input {
                Ok(Input::Read { link, read }) => self.read(link, read),
                Ok(Input::Stored(answer)) => self.sup.stored(Instant::now(), answer),
                Ok(Input::Nudge) | Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => break,
            }
            // Also under a steady stream of inputs, which `recv_timeout` returns first.
            let now = Instant::now();
            if interest.deadline.is_some_and(|at| at <= now) {
                self.sup.handle_timeout(now);
            }
        }
        // Handles see the connection closed by the time `disconnect` returns.
        drop(self.commands);
        self.sup.finish();
    }

    /// Opens a transport within the connect timeout and starts its reader; the supervisor
    /// hears how it went.
    fn connect(&mut self) {
        let opened = transport::open(self.sup.endpoint(), self.sup.connect_timeout());
        let id = self.links + 1;
        let started = opened.and_then(|link| {
            let read = move |read| Input::Read { link: id, read };
            let credit = link.spawn_reader(self.inbox_tx.clone(), read)?;
            Ok(Open { link, credit, id })
        });
        match started {
            Ok(open) => {
                self.links = id;
                self.open = Some(open);
                self.rx.clear();
                self.sup.opened(Instant::now());
            }
            Err(e) => self.sup.open_failed(Instant::now(), e),
        }
    }

    /// What a reader thread read: kept for when the supervisor wants it, or the link is lost.
    fn read(&mut self, link: u64, read: io::Result<Bytes>) {
        if self.open.as_ref().is_none_or(|open| open.id != link) {
            return;
        }
        self.reading = false;
        match read {
            Ok(bytes) => self.stash = Some(bytes),
            Err(e) => self.lost(e),
        }
    }

    /// Hands what was read (decrypted) to the supervisor.
    fn received(&mut self, bytes: &[u8]) {
        let Some(open) = self.open.as_mut() else {
            return;
        };
        match open.link.received(bytes, &mut self.rx) {
            Ok(closed) => {
                self.sup.received(Instant::now(), &mut self.rx);
                if closed {
                    self.lost(io::ErrorKind::UnexpectedEof.into());
                }
            }
            Err(e) => self.lost(e),
        }
    }

    /// Writes from the front of the write buffer (or flushes TLS records). Returns whether
    /// bytes are left to write.
    fn write(&mut self) -> bool {
        let Some(open) = self.open.as_mut() else {
            return false;
        };
        if self.tx.is_empty() && !open.link.wants_flush() {
            return false;
        }
        let slices = [IoSlice::new(&self.tx)];
        let n = usize::from(!self.tx.is_empty());
        match open.link.write(&slices[..n]) {
            Ok(0) if !self.tx.is_empty() => self.lost(io::ErrorKind::WriteZero.into()),
            Ok(n) => self.tx.advance(n),
            Err(e) if stalled(&e) => {}
            Err(e) => self.lost(e),
        }
        self.open
            .as_ref()
            .is_some_and(|o| !self.tx.is_empty() || o.link.wants_flush())
    }

    /// The transport failed: the supervisor hears of it, and it is dropped.
    fn lost(&mut self, error: io::Error) {
        self.drop_link();
        self.sup.lost(Instant::now(), error);
    }

    /// Drops the link (which shuts its socket down and so ends its reader thread).
    fn drop_link(&mut self) {
        self.open = None;
        self.tx.clear();
        self.reading = false;
        self.stash = None;
    }
}
