//! The driver task: one loop owning the sans-IO `mqtt_core::client::Client`, the socket, the
//! read buffer and the pending write buffer, moving bytes, commands, events and time between
//! them. It holds no protocol rule: the core decides, the driver carries out.
//!
//! Each turn: take care of deadlines (open a transport when a reconnect is due, close one that
//! ended, give up a first connection or a drain that took too long), drain the core
//! (`poll_transmit` into the write buffer, `poll_event` to replies and events), then `select!`
//! on cancel-safe operations only: `read_buf` into a field, `write_buf` from a field (a lost
//! race writes nothing), `recv` of a command, `reserve` of an event slot, `sleep_until` the
//! next deadline. Nothing that matters lives in a future.

use std::collections::{HashMap, VecDeque};
use std::io;
use std::time::Duration;

use bytes::BytesMut;
use mqtt_core::client::{
    AckToken, Client as Core, ClientEvent, CommandError, DisconnectReason, PublishError, PublishId,
    PublishRequest, RequestError, SubscribeId,
};
use mqtt_core::packet::{AuthProperties, SubscribeProperties, Subscription, UnsubscribeProperties};
use mqtt_core::topic::TopicFilter;
use mqtt_core::ReasonCode;
use tokio::io::{AsyncReadExt, AsyncWriteExt, ReadHalf, WriteHalf};
use tokio::sync::mpsc::error::TrySendError;
use tokio::sync::{mpsc, oneshot};
use tokio::time::{sleep_until, timeout, timeout_at, Instant};
use tracing::{debug, warn};

use super::{ConnectOptions, Error, Event};
use crate::transport::{Endpoint, Stream};

/// Where the driver answers one command.
pub(super) type Reply<T> = oneshot::Sender<Result<T, Error>>;

/// What a [`super::Client`] asks of the driver.
#[derive(Debug)]
pub(super) enum Command {
    Publish {
        request: PublishRequest,
        /// `None` for `try_publish`.
        done: Option<Reply<ReasonCode>>,
    },
    Subscribe {
        subscriptions: Vec<Subscription>,
        properties: SubscribeProperties,
        done: Reply<Vec<ReasonCode>>,
    },
    Unsubscribe {
        filters: Vec<TopicFilter>,
        properties: UnsubscribeProperties,
        done: Reply<Vec<ReasonCode>>,
    },
    Ack {
        token: AckToken,
        done: Reply<()>,
    },
    Auth {
        properties: AuthProperties,
        reason_code: ReasonCode,
        done: Reply<()>,
    },
    Disconnect {
        reason_code: ReasonCode,
        session_expiry: Option<u32>,
        /// `None` when every handle was dropped.
        done: Option<Reply<()>>,
    },
}

/// Room kept free in the read buffer before each read.
const READ_CHUNK: usize = 8 * 1024;
/// Above this many bytes waiting to be written, the driver takes no command and reads nothing.
const MAX_PENDING_WRITE: usize = 256 * 1024;
/// How long an ended connection may take to write its last bytes (a DISCONNECT).
const LINGER: Duration = Duration::from_secs(5);

/// A graceful disconnect under way.
struct Closing {
    reason_code: ReasonCode,
    session_expiry: Option<u32>,
    /// When to stop waiting for the messages in flight.
    deadline: Instant,
    done: Option<Reply<()>>,
    /// DISCONNECT was handed to the core.
    sent: bool,
}

/// The driver's state: see the module docs.
pub(super) struct Driver {
    core: Core,
    endpoint: Endpoint,
    reconnect: bool,
    connect_timeout: Duration,
    drain_timeout: Duration,
    commands: mpsc::Receiver<Command>,
    /// Some handle is left.
    commands_open: bool,
    events: mpsc::Sender<Event>,
    /// Events the channel had no room for; nothing is read while any wait.
    outbox: VecDeque<Event>,
    reader: Option<ReadHalf<Stream>>,
    writer: Option<WriteHalf<Stream>>,
    rx: BytesMut,
    /// The pending write buffer: a field, so a lost `select!` race loses nothing.
    tx: BytesMut,
    /// Written but perhaps still buffered (TLS): flush before waiting.
    unflushed: bool,
    /// The connection ended: write what is left, then close, by this instant.
    link_end: Option<Instant>,
    /// When to open the next transport.
    reconnect_at: Option<Instant>,
    /// Failed attempts since the last CONNACK: the core's backoff input.
    attempt: u32,
    /// The answer `Client::connect` waits for, until the first CONNACK.
    ready: Option<Reply<()>>,
    first_deadline: Instant,
    /// A command the core had no room for: retried when a completion makes room. No other
    /// command is taken meanwhile: that is the back-pressure.
    parked: Option<Command>,
    room: bool,
    publishes: HashMap<PublishId, Reply<ReasonCode>>,
    requests: HashMap<SubscribeId, Reply<Vec<ReasonCode>>>,
    closing: Option<Closing>,
    /// No reconnection: the driver ends once the transport is closed.
    stop: bool,
}

impl Driver {
    pub(super) fn new(
        options: ConnectOptions,
        endpoint: Endpoint,
        commands: mpsc::Receiver<Command>,
        events: mpsc::Sender<Event>,
        ready: Reply<()>,
    ) -> Self {
        let now = Instant::now();
        Self {
            core: Core::new(options.client),
            endpoint,
            reconnect: options.reconnect,
            connect_timeout: options.connect_timeout,
            drain_timeout: options.drain_timeout,
            commands,
            commands_open: true,
            events,
            outbox: VecDeque::new(),
            reader: None,
            writer: None,
            rx: BytesMut::with_capacity(READ_CHUNK),
            tx: BytesMut::new(),
            unflushed: false,
            link_end: None,
            reconnect_at: Some(now),
            attempt: 0,
            ready: Some(ready),
            first_deadline: now + options.connect_timeout,
            parked: None,
            room: false,
            publishes: HashMap::new(),
            requests: HashMap::new(),
            closing: None,
            stop: false,
        }
    }

    /// The loop, until the connection is over for good.
    pub(super) async fn run(mut self) {
        loop {
            let now = Instant::now();
            self.drain(now);
            if self.housekeeping(now).await {
                continue;
            }
            if self.stop && self.writer.is_none() {
                break;
            }
            let deadline = self.deadline();
            let reading = self.reader.is_some()
                && self.link_end.is_none()
                && self.outbox.is_empty()
                && self.tx.len() < MAX_PENDING_WRITE;
            if reading && self.rx.capacity() - self.rx.len() < READ_CHUNK {
                self.rx.reserve(READ_CHUNK);
            }
            let writing = self.writer.is_some() && (!self.tx.is_empty() || self.unflushed);
            let taking = self.commands_open
                && self.parked.is_none()
                && self.closing.is_none()
                && self.tx.len() < MAX_PENDING_WRITE;
            let abandoned = !self.commands_open && self.closing.is_none() && !self.stop;
            tokio::select! {
                r = read(self.reader.as_mut(), &mut self.rx), if reading => match r {
                    Ok(0) => self.lost(io::ErrorKind::UnexpectedEof.into()),
                    Ok(_) => self.core.handle_bytes(Instant::now().into_std(), &mut self.rx),
                    Err(e) => self.lost(e),
                },
                r = write(self.writer.as_mut(), &mut self.tx), if writing => match r {
                    Ok(0) => self.unflushed = !self.tx.is_empty(),
                    Ok(_) => self.unflushed = true,
                    Err(e) => self.lost(e),
                },
                command = self.commands.recv(), if taking => match command {
                    Some(command) => self.execute(command),
                    None => self.commands_open = false,
                },
                () = deliver(&self.events, &mut self.outbox), if !self.outbox.is_empty() => {}
                // Every handle and the events are gone: nobody is left to hear anything.
                () = self.events.closed(), if abandoned => {
                    self.begin_closing(ReasonCode::Success, None, None);
                }
                () = sleep_until(deadline.unwrap_or(now)), if deadline.is_some() => {
                    self.core.handle_timeout(Instant::now().into_std());
                }
            }
        }
        self.flush_outbox();
        if let Some(done) = self.closing.take().and_then(|c| c.done) {
            let _ = done.send(Ok(()));
        }
        // Dropping `self` drops every reply still pending: their callers get `Error::Closed`.
    }

    /// Acts on what is due; returns whether it did anything (the core may have output).
    async fn housekeeping(&mut self, now: Instant) -> bool {
        if self.ready.is_some() && now >= self.first_deadline {
            self.fail_first(now, Error::Timeout);
            return true;
        }
        if let Some(c) = self.closing.as_mut().filter(|c| !c.sent) {
            let drained =
                self.parked.is_none() && self.core.inflight() == 0 && self.core.queued() == 0;
            let hopeless = self.writer.is_none() && (self.reconnect_at.is_none() || self.stop);
            if drained || hopeless || now >= c.deadline {
                c.sent = true;
                let (reason_code, expiry) = (c.reason_code, c.session_expiry);
                match self.core.disconnect(now.into_std(), reason_code, expiry) {
                    // `Disconnected { Local }` follows as an event.
                    Ok(()) => {}
                    Err(CommandError::NotConnected) => {
                        self.stop = true;
                        self.end_link(now);
                    }
                    // A caller fault: nothing changes.
                    Err(e) => {
                        if let Some(done) = self.closing.take().and_then(|c| c.done) {
                            let _ = done.send(Err(e.into()));
                        }
                    }
                }
                return true;
            }
        }
        if let Some(end) = self.link_end {
            if now >= end || (self.tx.is_empty() && !self.unflushed) {
                if let Some(mut writer) = self.writer.take() {
                    let _ = timeout_at(end, writer.shutdown()).await;
                }
                self.link_closed(now);
                return true;
            }
        }
        if self.writer.is_none() && !self.stop && self.reconnect_at.is_some_and(|t| now >= t) {
            self.open().await;
            return true;
        }
        false
    }

    /// Drains the core: bytes to the write buffer (first: that completes QoS 0 messages),
    /// events to replies and the application; retries a parked command once there is room.
    fn drain(&mut self, now: Instant) {
        loop {
            self.core.poll_transmit(now.into_std(), &mut self.tx);
            if let Some(event) = self.core.poll_event() {
                self.dispatch(now, event);
                continue;
            }
            if !std::mem::take(&mut self.room) {
                break;
            }
            match self.parked.take() {
                Some(command) => self.execute(command),
                None => break,
            }
        }
        if self.writer.is_none() {
            self.tx.clear();
        }
        self.flush_outbox();
    }

    fn dispatch(&mut self, now: Instant, event: ClientEvent) {
        match event {
            ClientEvent::Connected {
                session_present, ..
            } => {
                self.attempt = 0;
                self.room = true;
                if let Some(ready) = self.ready.take() {
                    let _ = ready.send(Ok(()));
                }
                self.outbox.push_back(Event::Connected { session_present });
            }
            ClientEvent::ConnectionRefused { reason_code, .. } => {
                self.fail_first(now, Error::Refused(reason_code));
                self.end_link(now);
                self.outbox
                    .push_back(Event::ConnectionRefused { reason_code });
            }
            ClientEvent::Message { publish, ack } => {
                self.outbox.push_back(Event::Message { publish, ack });
            }
            ClientEvent::Published { id, reason_code } => {
                self.room = true;
                if let Some(done) = self.publishes.remove(&id) {
                    let _ = done.send(Ok(reason_code));
                }
            }
            ClientEvent::Subscribed { id, reason_codes }
            | ClientEvent::Unsubscribed { id, reason_codes } => {
                self.room = true;
                if let Some(done) = self.requests.remove(&id) {
                    let _ = done.send(Ok(reason_codes));
                }
            }
            ClientEvent::Auth {
                reason_code,
                properties,
            } => self.outbox.push_back(Event::Auth {
                reason_code,
                properties,
            }),
            ClientEvent::Disconnected { reason } => {
                let error = match reason {
                    DisconnectReason::ConnectTimeout => Error::Timeout,
                    _ => Error::Disconnected(reason.to_string()),
                };
                self.fail_first(now, error);
                let local = matches!(reason, DisconnectReason::Local { .. });
                let will_reconnect = self.reconnect && !local && !self.stop;
                self.stop |= !will_reconnect;
                self.end_link(now);
                self.outbox.push_back(Event::Disconnected {
                    reason: reason.to_string(),
                    will_reconnect,
                });
            }
            other => debug!(event = ?other, "client event not handled"),
        }
    }

    /// Hands a command to the core; one it has no room for is parked.
    fn execute(&mut self, command: Command) {
        let now = Instant::now().into_std();
        match command {
            Command::Publish { request, done } => match self.core.publish(now, request.clone()) {
                Ok(id) => {
                    if let Some(done) = done {
                        self.publishes.insert(id, done);
                    }
                }
                Err(PublishError::QueueFull) => {
                    self.parked = Some(Command::Publish { request, done });
                }
                Err(e) => match done {
                    Some(done) => {
                        let _ = done.send(Err(e.into()));
                    }
                    None => warn!(error = %e, topic = ?request.topic, "message refused"),
                },
            },
            Command::Subscribe {
                subscriptions,
                properties,
                done,
            } => match self
                .core
                .subscribe(now, subscriptions.clone(), properties.clone())
            {
                Ok(id) => {
                    self.requests.insert(id, done);
                }
                Err(RequestError::TooManyRequests) => {
                    self.parked = Some(Command::Subscribe {
                        subscriptions,
                        properties,
                        done,
                    });
                }
                Err(e) => {
                    let _ = done.send(Err(e.into()));
                }
            },
            Command::Unsubscribe {
                filters,
                properties,
                done,
            } => match self
                .core
                .unsubscribe(now, filters.clone(), properties.clone())
            {
                Ok(id) => {
                    self.requests.insert(id, done);
                }
                Err(RequestError::TooManyRequests) => {
                    self.parked = Some(Command::Unsubscribe {
                        filters,
                        properties,
                        done,
                    });
                }
                Err(e) => {
                    let _ = done.send(Err(e.into()));
                }
            },
            Command::Ack { token, done } => {
                let _ = done.send(self.core.ack(now, token).map_err(Error::from));
            }
            Command::Auth {
                properties,
                reason_code,
                done,
            } => {
                let result = self.core.auth(now, properties, reason_code);
                let _ = done.send(result.map_err(Error::from));
            }
            Command::Disconnect {
                reason_code,
                session_expiry,
                done,
            } => self.begin_closing(reason_code, session_expiry, done),
        }
    }

    fn begin_closing(
        &mut self,
        reason_code: ReasonCode,
        session_expiry: Option<u32>,
        done: Option<Reply<()>>,
    ) {
        self.closing = Some(Closing {
            reason_code,
            session_expiry,
            deadline: Instant::now() + self.drain_timeout,
            done,
            sent: false,
        });
    }

    /// Opens a transport and queues CONNECT; on failure plans the next attempt.
    async fn open(&mut self) {
        self.reconnect_at = None;
        let opened = match timeout(self.connect_timeout, self.endpoint.open()).await {
            Ok(opened) => opened,
            Err(_) => Err(Error::Timeout),
        };
        let now = Instant::now();
        match opened {
            Ok(stream) => {
                let (reader, writer) = tokio::io::split(stream);
                self.reader = Some(reader);
                self.writer = Some(writer);
                self.rx.clear();
                // Only options too long to encode fail here: no attempt can do better.
                if let Err(e) = self.core.connect(now.into_std()) {
                    self.fail_first(now, e.into());
                    self.stop = true;
                    self.end_link(now);
                }
            }
            Err(e) => {
                debug!(endpoint = ?self.endpoint, error = %e, "connecting failed");
                self.fail_first(now, e);
                self.link_closed(now);
            }
        }
    }

    /// The transport failed: the core hears of it, and it is dropped.
    fn lost(&mut self, error: io::Error) {
        let now = Instant::now();
        debug!(endpoint = ?self.endpoint, %error, "connection lost");
        self.fail_first(now, error.into());
        self.link_closed(now);
        self.core.handle_disconnect(now.into_std());
    }

    /// The connection is over: stop reading, write what is left (within `LINGER`), close.
    fn end_link(&mut self, now: Instant) {
        if self.writer.is_some() && self.link_end.is_none() {
            self.link_end = Some(now + LINGER);
        }
    }

    /// The transport is gone; plans the next one after the core's backoff unless stopping.
    fn link_closed(&mut self, now: Instant) {
        self.reader = None;
        self.writer = None;
        self.tx.clear();
        self.unflushed = false;
        self.link_end = None;
        if self.reconnect && !self.stop {
            let delay = self.core.options().backoff(self.attempt);
            self.attempt = self.attempt.saturating_add(1);
            self.reconnect_at = Some(now + delay);
        }
    }

    /// Before the first CONNACK any failure is `Client::connect`'s error, and the end.
    fn fail_first(&mut self, now: Instant, error: Error) {
        if let Some(ready) = self.ready.take() {
            let _ = ready.send(Err(error));
            self.stop = true;
            self.end_link(now);
        }
    }

    /// The next instant something is due.
    fn deadline(&self) -> Option<Instant> {
        let core = self.core.poll_timeout().map(Instant::from_std);
        let reconnect = self.reconnect_at.filter(|_| self.writer.is_none());
        let closing = self
            .closing
            .as_ref()
            .filter(|c| !c.sent)
            .map(|c| c.deadline);
        let first = self.ready.as_ref().map(|_| self.first_deadline);
        [core, reconnect, closing, first, self.link_end]
            .into_iter()
            .flatten()
            .min()
    }

    /// Moves waiting events into the channel while it has room; drops them if nobody listens.
    fn flush_outbox(&mut self) {
        while let Some(event) = self.outbox.pop_front() {
            match self.events.try_send(event) {
                Ok(()) => {}
                Err(TrySendError::Full(event)) => return self.outbox.push_front(event),
                Err(TrySendError::Closed(_)) => return self.outbox.clear(),
            }
        }
    }
}

/// Waits for room in the event channel, then moves the first waiting event into it (cancel
/// safe: the event leaves `outbox` in the poll that sends it). Drops them all if nobody listens.
async fn deliver(events: &mpsc::Sender<Event>, outbox: &mut VecDeque<Event>) {
    match events.reserve().await {
        Ok(permit) => {
            if let Some(event) = outbox.pop_front() {
                permit.send(event);
            }
        }
        Err(_) => outbox.clear(),
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
