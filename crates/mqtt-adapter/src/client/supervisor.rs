//! The supervisor: everything a client driver decides besides moving bytes. It owns the sans-IO
//! [`mqtt_core::client::Client`], answers commands, hands events to the application, and plans
//! the transport's life: when to open one (first connection, reconnect backoff), when to close
//! it (refused, lost, disconnected), and how long a graceful disconnect may drain.
//!
//! A driver (tokio task, smol task or thread) owns a `Supervisor`, the socket and both byte
//! buffers, and loops:
//! 1. [`Supervisor::drain`] the core into the write buffer and the event outbox;
//! 2. act on [`Supervisor::due`]: open a transport, close one, or loop again;
//! 3. wait, as [`Supervisor::interest`] says, for one of: bytes read
//!    ([`Supervisor::received`], [`Supervisor::lost`]), bytes written, a command
//!    ([`Supervisor::execute`]), room for events ([`Supervisor::app`]), or the deadline
//!    ([`Supervisor::handle_timeout`]).

use std::collections::{HashMap, VecDeque};
use std::io;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use mqtt_core::client::{
    Client as Core, ClientEvent, CommandError, DisconnectReason, PublishError, PublishId,
    RequestError, SubscribeId,
};
use mqtt_core::ReasonCode;
use tokio::sync::mpsc;
use tokio::sync::mpsc::error::TrySendError;
use tracing::{debug, warn};

use super::{Command, ConnectOptions, Error, Event, Reply};
use crate::endpoint::Endpoint;
use mqtt_store::{ClientStore, ClientStoreHandle, StoreAnswer};

/// Room kept free in a client's read buffer before each read.
pub const READ_CHUNK: usize = 8 * 1024;
/// Above this many bytes waiting to be written, the driver takes no command and reads nothing.
const MAX_PENDING_WRITE: usize = 256 * 1024;
/// The most commands a driver takes in one turn (see [`Supervisor::take_queued_commands`]).
const COMMAND_BURST: usize = 64;

/// How long an ended connection may take to write its last bytes (a DISCONNECT).
const LINGER: Duration = Duration::from_secs(5);

/// A graceful disconnect under way.
#[derive(Debug)]
struct Closing {
    reason_code: ReasonCode,
    session_expiry: Option<u32>,
    /// When to stop waiting for the messages in flight.
    deadline: Instant,
    done: Option<Reply<()>>,
    /// DISCONNECT was handed to the core.
    sent: bool,
}

/// What [`Supervisor::due`] asks of the driver.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Due {
    /// Nothing: wait as [`Supervisor::interest`] says.
    Nothing,
    /// State changed: drain and ask again.
    Again,
    /// Shut the transport down (bounded by `by`), drop it, then call
    /// [`Supervisor::link_closed`].
    CloseLink {
        /// The instant after which the last bytes are given up on.
        by: Instant,
    },
    /// Open a transport to [`Supervisor::endpoint`] within [`Supervisor::connect_timeout`],
    /// then call [`Supervisor::opened`] or [`Supervisor::open_failed`].
    Open,
}

/// What the driver should wait for in this turn.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Interest {
    /// Read from the transport (the read buffer has room for [`READ_CHUNK`]).
    pub read: bool,
    /// Take the next command.
    pub take_commands: bool,
    /// Await [`Supervisor::app`]: events wait for room, or nobody is left to hear them.
    pub app: bool,
    /// Call [`Supervisor::handle_timeout`] at this instant.
    pub deadline: Option<Instant>,
    /// The connection is over for good: end the loop, then [`Supervisor::finish`].
    pub finished: bool,
}

/// The supervisor's state: see the module docs.
#[derive(Debug)]
pub struct Supervisor {
    core: Core,
    endpoint: Endpoint,
    reconnect: bool,
    connect_timeout: Duration,
    drain_timeout: Duration,
    /// Some handle is left.
    commands_open: bool,
    events: mpsc::Sender<Event>,
    /// Events the channel had no room for; nothing is read while any wait.
    outbox: VecDeque<Event>,
    /// A transport is open.
    linked: bool,
    /// The connection ended: write what is left, then close, by this instant.
    link_end: Option<Instant>,
    /// When to open the next transport.
    reconnect_at: Option<Instant>,
    /// Failed attempts since the last CONNACK: the core's backoff input.
    attempt: u32,
    /// The answer `connect` waits for, until the first CONNACK.
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
    /// The session's store, if the options gave one: `ClientEvent::Store` batches go to it.
    store: Option<ClientStoreHandle>,
    /// Its answers, until the driver takes them ([`Supervisor::take_store_answers`]).
    store_answers: Option<mpsc::UnboundedReceiver<StoreAnswer>>,
}

impl Supervisor {
    /// A supervisor that opens its first transport at once; `ready` hears how that ends, and
    /// the application's events go to `events`.
    pub fn new(
        options: ConnectOptions,
        endpoint: Endpoint,
        events: mpsc::Sender<Event>,
        ready: Reply<()>,
    ) -> Self {
        let now = Instant::now();
        let (core, store, store_answers, store_error) = open_store(&options, now);
        let mut sup = Self {
            core,
            endpoint,
            reconnect: options.reconnect,
            connect_timeout: options.connect_timeout,
            drain_timeout: options.drain_timeout,
            commands_open: true,
            events,
            outbox: VecDeque::new(),
            linked: false,
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
            store,
            store_answers,
        };
        if let Some(e) = store_error {
            sup.fail_first(now, e);
        }
        sup
    }

    /// The store's answers: the driver waits on them with the rest and hands each to
    /// [`Supervisor::stored`]. `None` without a store, or once taken.
    pub fn take_store_answers(&mut self) -> Option<mpsc::UnboundedReceiver<StoreAnswer>> {
        self.store_answers.take()
    }

    /// The store's answer about a batch.
    pub fn stored(&mut self, now: Instant, answer: StoreAnswer) {
        match answer {
            StoreAnswer::Durable(ticket) => self.core.handle_stored(now, ticket),
            StoreAnswer::Failed { ticket, error } => {
                warn!(%error, "the session store could not write: it is written again");
                self.core.handle_store_failed(now, ticket);
            }
            other => warn!(answer = ?other, "unknown answer of the store"),
        }
    }

    /// Where to connect.
    pub fn endpoint(&self) -> &Endpoint {
        &self.endpoint
    }

    /// How long opening a transport may take.
    pub fn connect_timeout(&self) -> Duration {
        self.connect_timeout
    }

    /// Drains the core: bytes into `tx` (first: that completes QoS 0 messages), events to
    /// replies and the outbox; retries a parked command once there is room.
    pub fn drain(&mut self, now: Instant, tx: &mut BytesMut) {
        loop {
            self.core.poll_transmit(now, tx);
            if let Some(event) = self.core.poll_event() {
                self.dispatch(now, event);
                continue;
            }
            if !std::mem::take(&mut self.room) {
                break;
            }
            match self.parked.take() {
                Some(command) => self.execute(now, command),
                None => break,
            }
        }
        if !self.linked {
            tx.clear();
        }
        self.flush_outbox();
    }

    /// What is due now. `written` tells whether the write buffer is empty and flushed.
    pub fn due(&mut self, now: Instant, written: bool) -> Due {
        if self.ready.is_some() && now >= self.first_deadline {
            self.fail_first(now, Error::Timeout);
            return Due::Again;
        }
        if let Some(c) = self.closing.as_mut().filter(|c| !c.sent) {
            let drained =
                self.parked.is_none() && self.core.inflight() == 0 && self.core.queued() == 0;
            let hopeless = !self.linked && (self.reconnect_at.is_none() || self.stop);
            if drained || hopeless || now >= c.deadline {
                c.sent = true;
                let (reason_code, expiry) = (c.reason_code, c.session_expiry);
                match self.core.disconnect(now, reason_code, expiry) {
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
                return Due::Again;
            }
        }
        if let Some(end) = self.link_end {
            if now >= end || written {
                if self.linked {
                    return Due::CloseLink { by: end };
                }
                self.link_closed(now);
                return Due::Again;
            }
        }
        if !self.linked && !self.stop && self.reconnect_at.is_some_and(|t| now >= t) {
            self.reconnect_at = None;
            return Due::Open;
        }
        Due::Nothing
    }

    /// What to wait for, given `pending_write` bytes in the write buffer and the read buffer
    /// `rx` (reserved for the next read when reading).
    pub fn interest(&self, pending_write: usize, rx: &mut BytesMut) -> Interest {
        let read = self.linked
            && self.link_end.is_none()
            && self.outbox.is_empty()
            && pending_write < MAX_PENDING_WRITE;
        if read && rx.capacity() - rx.len() < READ_CHUNK {
            rx.reserve(READ_CHUNK);
        }
        let abandoned = !self.commands_open && self.closing.is_none() && !self.stop;
        Interest {
            read,
            take_commands: self.takes_commands(pending_write),
            app: !self.outbox.is_empty() || abandoned,
            deadline: self.deadline(),
            finished: self.stop && !self.linked,
        }
    }

    /// Takes the commands queued behind one (at most [`COMMAND_BURST`] in all, and only while
    /// [`Interest::take_commands`] would hold), so that a burst of publishes shares one write
    /// instead of a syscall each.
    fn take_queued_commands(
        &mut self,
        now: Instant,
        pending_write: usize,
        commands: &mut mpsc::Receiver<Command>,
    ) {
        for _ in 1..COMMAND_BURST {
            if !self.takes_commands(pending_write) {
                return;
            }
            let Ok(command) = commands.try_recv() else {
                return;
            };
            self.execute(now, command);
        }
    }

    fn takes_commands(&self, pending_write: usize) -> bool {
        self.commands_open
            && self.parked.is_none()
            && self.closing.is_none()
            && pending_write < MAX_PENDING_WRITE
    }

    /// Bytes arrived in `rx`.
    pub fn received(&mut self, now: Instant, rx: &mut BytesMut) {
        self.core.handle_bytes(now, rx);
    }

    /// The deadline of [`Interest`] passed.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.core.handle_timeout(now);
    }

    /// A command of a handle (`None`: every handle is gone), then those already queued behind
    /// it in `commands`, with `pending_write` bytes in the driver's write buffer.
    pub fn command(
        &mut self,
        now: Instant,
        command: Option<Command>,
        pending_write: usize,
        commands: &mut mpsc::Receiver<Command>,
    ) {
        match command {
            Some(command) => {
                self.execute(now, command);
                self.take_queued_commands(now, pending_write, commands);
            }
            None => self.commands_open = false,
        }
    }

    /// Waits for room in the event channel and moves the first waiting event into it, or, when
    /// every handle and the events are gone, for the channel to close, then disconnects
    /// gracefully. Cancel safe: an event leaves the outbox in the poll that sends it.
    pub async fn app(&mut self) {
        let events = &self.events;
        if self.outbox.is_empty() {
            events.closed().await;
            self.begin_closing(ReasonCode::Success, None, None);
            return;
        }
        match events.reserve().await {
            Ok(permit) => {
                if let Some(event) = self.outbox.pop_front() {
                    permit.send(event);
                }
            }
            Err(_) => self.outbox.clear(),
        }
    }

    /// [`Supervisor::app`] for a driver that cannot wait on a future (a thread): does at once
    /// whatever `app` would have waited for and can be done now. Moves waiting events into the
    /// channel while it has room (dropping them if nobody listens) and, when every handle and
    /// the events are gone, begins the graceful disconnect. Call it each turn, having been
    /// woken when the application takes an event or drops a handle.
    pub fn app_now(&mut self) {
        self.flush_outbox();
        let abandoned = !self.commands_open && self.closing.is_none() && !self.stop;
        if abandoned && self.outbox.is_empty() && self.events.is_closed() {
            self.begin_closing(ReasonCode::Success, None, None);
        }
    }

    /// A transport is open: the core queues CONNECT.
    pub fn opened(&mut self, now: Instant) {
        self.linked = true;
        // Only options too long to encode fail here: no attempt can do better.
        if let Err(e) = self.core.connect(now) {
            self.fail_first(now, e.into());
            self.stop = true;
            self.end_link(now);
        }
    }

    /// Opening a transport failed; plans the next attempt.
    pub fn open_failed(&mut self, now: Instant, error: Error) {
        debug!(endpoint = ?self.endpoint, %error, "connecting failed");
        self.fail_first(now, error);
        self.link_closed(now);
    }

    /// The transport failed or ended (a read of 0 bytes is `UnexpectedEof`): the core hears
    /// of it; drop the transport.
    pub fn lost(&mut self, now: Instant, error: io::Error) {
        debug!(endpoint = ?self.endpoint, %error, "connection lost");
        self.fail_first(now, error.into());
        self.link_closed(now);
        self.core.handle_disconnect(now);
    }

    /// The transport is gone; plans the next one after the core's backoff unless stopping.
    pub fn link_closed(&mut self, now: Instant) {
        self.linked = false;
        self.link_end = None;
        if self.reconnect && !self.stop {
            let delay = self.core.options().backoff(self.attempt);
            self.attempt = self.attempt.saturating_add(1);
            self.reconnect_at = Some(now + delay);
        }
    }

    /// The loop ended: delivers what events it can and answers a graceful disconnect.
    /// Dropping the supervisor drops every reply still pending: their callers get
    /// [`Error::Closed`].
    pub fn finish(mut self) {
        self.flush_outbox();
        if let Some(done) = self.closing.take().and_then(|c| c.done) {
            let _ = done.send(Ok(()));
        }
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
            ClientEvent::Store { ticket, ops } => match &self.store {
                Some(store) => store.submit(ticket, ops),
                None => self.core.handle_stored(now, ticket),
            },
            other => debug!(event = ?other, "client event not handled"),
        }
    }

    /// Hands a command to the core; one it has no room for is parked.
    fn execute(&mut self, now: Instant, command: Command) {
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

    /// The connection is over: stop reading, write what is left (within `LINGER`), close.
    fn end_link(&mut self, now: Instant) {
        if self.linked && self.link_end.is_none() {
            self.link_end = Some(now + LINGER);
        }
    }

    /// Before the first CONNACK any failure is `connect`'s error, and the end.
    fn fail_first(&mut self, now: Instant, error: Error) {
        if let Some(ready) = self.ready.take() {
            let _ = ready.send(Err(error));
            self.stop = true;
            self.end_link(now);
        }
    }

    /// The next instant something is due.
    fn deadline(&self) -> Option<Instant> {
        let core = self.core.poll_timeout();
        let reconnect = self.reconnect_at.filter(|_| !self.linked);
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

/// The core, from the store of `options` if it has one (and that store's writer and
/// answers), or the error opening it.
#[allow(clippy::type_complexity)]
fn open_store(
    options: &ConnectOptions,
    now: Instant,
) -> (
    Core,
    Option<ClientStoreHandle>,
    Option<mpsc::UnboundedReceiver<StoreAnswer>>,
    Option<Error>,
) {
    let Some(store_options) = &options.store else {
        return (Core::new(options.client.clone()), None, None, None);
    };
    let mut client = options.client.clone();
    client.persistence = true;
    match ClientStore::open(store_options, client.client_id.clone(), now) {
        Ok((store, state)) => {
            let (tx, rx) = mpsc::unbounded_channel();
            let handle = store.start(move |answer| {
                let _ = tx.send(answer);
            });
            (
                Core::recover(client, state, now),
                Some(handle),
                Some(rx),
                None,
            )
        }
        Err(e) => (Core::new(client), None, None, Some(e.into())),
    }
}
