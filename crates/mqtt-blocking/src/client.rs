//! The blocking MQTT client: a [`Client`] handle whose methods send commands to one driver
//! thread and block until it answers, and the [`Events`] that thread reports, as an iterator.
//!
//! ```text
//!  Client (Clone) ── bounded command channel ──► driver thread ◄── reader thread ◄── socket
//!   publish() blocks ◄── oneshot: completion ───┘  owns mqtt_adapter::client::Supervisor,    │
//!  Events (Iterator) ◄── bounded event channel ──┘  the read and write buffers ──── write ───┘
//!   └─ each handle nudges the driver's wake-up channel: a command sent, an event taken
//!      from a full channel, a handle dropped
//! ```
//!
//! Every protocol rule (QoS flows, session resume, keep alive, flow control, backoff numbers)
//! lives in [`mqtt_core::client::Client`]; every decision besides moving bytes (replies,
//! reconnecting, a graceful disconnect) in [`mqtt_adapter::client::Supervisor`], shared with
//! the tokio and smol adapters. The driver (`client/driver.rs`) only moves bytes, commands,
//! events and time. The options, events and errors are [`mqtt_adapter::client`]'s, as are the
//! back-pressure and lifetime rules written there.
//!
//! Every method blocks the calling thread: never call one from inside an async task.
//!
//! ```no_run
//! # fn run() -> Result<(), Box<dyn std::error::Error>> {
//! use mqtt_core::client::{ClientOptions, PublishRequest};
//! use mqtt_core::topic::TopicName;
//! use mqtt_core::QoS;
//! use mqtt_blocking::client::{Client, ConnectOptions, Event};
//!
//! let options = ConnectOptions::new("mqtt://127.0.0.1", ClientOptions::new("sensor-1"));
//! let (client, events) = Client::connect(options)?;
//! let message = PublishRequest::new(TopicName::new("sensors/1/temp")?, "21.5")
//!     .with_qos(QoS::AtLeastOnce);
//! client.publish(message)?;
//! for event in events {
//!     if let Event::Message { publish, .. } = event {
//!         println!("{}: {:?}", publish.topic, publish.payload);
//!     }
//! }
//! # Ok(()) }
//! ```

mod driver;

use std::sync::mpsc::{RecvTimeoutError, Sender, TryRecvError};
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};
use std::thread::{self, Thread};
use std::time::{Duration, Instant};

use mqtt_adapter::client::{Command, Supervisor};
use mqtt_adapter::endpoint::Endpoint;
use mqtt_core::client::{AckToken, PublishRequest};
use mqtt_core::packet::{AuthProperties, SubscribeProperties, Subscription, UnsubscribeProperties};
use mqtt_core::topic::TopicFilter;
use mqtt_core::ReasonCode;
use tokio::sync::{mpsc, oneshot};

pub use mqtt_adapter::client::{ConnectOptions, Error, Event, TlsOptions};

use driver::{Driver, Input};

/// A handle to one connection. Clones share it; each method is a command to the driver
/// thread, and blocks until the driver answers.
#[derive(Clone)]
pub struct Client {
    // Dropped before `nudge`, so the nudge finds the channel closed when this was the last.
    commands: mpsc::Sender<Command>,
    nudge: Nudge,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client").finish_non_exhaustive()
    }
}

impl Client {
    /// Connects and waits for the first CONNACK. `Ok` once the server accepted (the
    /// [`Event::Connected`] is also the first event); `Err` when it refused, the transport
    /// failed, or `connect_timeout` passed.
    pub fn connect(options: ConnectOptions) -> Result<(Self, Events), Error> {
        let endpoint = Endpoint::parse(&options.url, &options.tls)?;
        let (commands_tx, commands) = mpsc::channel(options.request_queue.max(1));
        let (events_tx, events) = mpsc::channel(options.event_queue.max(1));
        let (ready_tx, ready) = oneshot::channel();
        let supervisor = Supervisor::new(options, endpoint, events_tx, ready_tx);
        let (inbox_tx, inbox) = std::sync::mpsc::channel();
        let driver = Driver::new(supervisor, commands, inbox, inbox_tx.clone());
        thread::Builder::new()
            .name("mqtt-client".into())
            .spawn(move || driver.run())?;
        ready.blocking_recv().map_err(|_| Error::Closed)??;
        let client = Self {
            commands: commands_tx,
            nudge: Nudge(inbox_tx.clone()),
        };
        let events = Events {
            rx: events,
            nudge: Nudge(inbox_tx),
        };
        Ok((client, events))
    }

    /// Publishes and blocks until the end of the QoS flow: QoS 0 once its bytes are handed to
    /// the transport, QoS 1 on PUBACK, QoS 2 on PUBCOMP. Returns the final reason code
    /// (`Success`, 0x10 No matching subscribers, or the server's failure code). Waits for
    /// room while the core's queue is full; survives reconnections.
    pub fn publish(&self, request: PublishRequest) -> Result<ReasonCode, Error> {
        self.request(|done| Command::Publish {
            request,
            done: Some(done),
        })
    }

    /// Queues a message without waiting for room or completion. [`Error::QueueFull`] when
    /// the request channel is full, which happens once the core's queue is full too. A
    /// refusal by the core later (a message its limits rule out) is only logged.
    pub fn try_publish(&self, request: PublishRequest) -> Result<(), Error> {
        let command = Command::Publish {
            request,
            done: None,
        };
        self.commands.try_send(command).map_err(|e| match e {
            mpsc::error::TrySendError::Full(_) => Error::QueueFull,
            mpsc::error::TrySendError::Closed(_) => Error::Closed,
        })?;
        self.nudge.wake();
        Ok(())
    }

    /// Subscribes and returns the SUBACK's reason codes, one per subscription (granted QoS
    /// or failure). Without a connection the SUBSCRIBE waits for the next one.
    pub fn subscribe(
        &self,
        subscriptions: Vec<Subscription>,
        properties: SubscribeProperties,
    ) -> Result<Vec<ReasonCode>, Error> {
        self.request(|done| Command::Subscribe {
            subscriptions,
            properties,
            done,
        })
    }

    /// Unsubscribes and returns the UNSUBACK's reason codes, one per filter (3.x: all
    /// `Success`).
    pub fn unsubscribe(&self, filters: Vec<TopicFilter>) -> Result<Vec<ReasonCode>, Error> {
        self.unsubscribe_with(filters, UnsubscribeProperties::default())
    }

    /// [`Client::unsubscribe`] with 5.0 properties.
    pub fn unsubscribe_with(
        &self,
        filters: Vec<TopicFilter>,
        properties: UnsubscribeProperties,
    ) -> Result<Vec<ReasonCode>, Error> {
        self.request(|done| Command::Unsubscribe {
            filters,
            properties,
            done,
        })
    }

    /// Acknowledges a message received with `manual_acks` (acknowledgements still go out in
    /// receive order).
    pub fn ack(&self, token: AckToken) -> Result<(), Error> {
        self.request(|done| Command::Ack { token, done })
    }

    /// Sends AUTH (5.0 enhanced authentication): 0x18 to answer an [`Event::Auth`], 0x19 to
    /// re-authenticate.
    pub fn auth(&self, properties: AuthProperties, reason_code: ReasonCode) -> Result<(), Error> {
        self.request(|done| Command::Auth {
            properties,
            reason_code,
            done,
        })
    }

    /// Disconnects gracefully with 0x00 (Normal disconnection): see
    /// [`Client::disconnect_with`].
    pub fn disconnect(&self) -> Result<(), Error> {
        self.disconnect_with(ReasonCode::Success, None)
    }

    /// Disconnects gracefully: waits up to `drain_timeout` for the messages queued and in
    /// flight to complete, sends DISCONNECT with `reason_code` (5.0; 0x04 asks the server to
    /// publish the will) and, if given, a new Session Expiry Interval, then closes. Commands
    /// sent after this one fail with [`Error::Closed`].
    pub fn disconnect_with(
        &self,
        reason_code: ReasonCode,
        session_expiry: Option<u32>,
    ) -> Result<(), Error> {
        self.request(|done| Command::Disconnect {
            reason_code,
            session_expiry,
            done: Some(done),
        })
    }

    /// Whether the connection is over for good (the driver ended).
    pub fn is_closed(&self) -> bool {
        self.commands.is_closed()
    }

    /// Sends the command `make` builds around a reply channel, wakes the driver, and blocks
    /// until the reply (or until the driver ends, dropping it).
    fn request<T>(
        &self,
        make: impl FnOnce(oneshot::Sender<Result<T, Error>>) -> Command,
    ) -> Result<T, Error> {
        let (done, answer) = oneshot::channel();
        self.commands
            .blocking_send(make(done))
            .map_err(|_| Error::Closed)?;
        self.nudge.wake();
        answer.blocking_recv().map_err(|_| Error::Closed)?
    }
}

/// The events of one connection, from a bounded channel: an iterator that blocks for the
/// next one and ends once the connection is over for good. Read them, or drop this: while
/// the channel is full the driver reads nothing from the server (not even CONNACK or
/// PINGRESP).
pub struct Events {
    // Dropped before `nudge`, so the nudge finds the channel closed.
    rx: mpsc::Receiver<Event>,
    nudge: Nudge,
}

impl std::fmt::Debug for Events {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Events").finish_non_exhaustive()
    }
}

impl Events {
    /// The next event, blocking; `None` once the connection is over for good and every event
    /// was read.
    pub fn recv(&mut self) -> Option<Event> {
        let event = self.rx.blocking_recv();
        self.took();
        event
    }

    /// The next event, blocking at most `timeout`.
    pub fn recv_timeout(&mut self, timeout: Duration) -> Result<Event, RecvTimeoutError> {
        let Some(deadline) = Instant::now().checked_add(timeout) else {
            return self.recv().ok_or(RecvTimeoutError::Disconnected);
        };
        let waker = Waker::from(Arc::new(Unpark(thread::current())));
        let mut cx = Context::from_waker(&waker);
        loop {
            match self.rx.poll_recv(&mut cx) {
                Poll::Ready(Some(event)) => {
                    self.took();
                    return Ok(event);
                }
                Poll::Ready(None) => return Err(RecvTimeoutError::Disconnected),
                Poll::Pending => {}
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(RecvTimeoutError::Timeout);
            }
            // Spurious wake-ups just poll again.
            thread::park_timeout(left);
        }
    }

    /// The next event if one is waiting, without blocking.
    pub fn try_recv(&mut self) -> Result<Event, TryRecvError> {
        let event = self.rx.try_recv().map_err(|e| match e {
            mpsc::error::TryRecvError::Empty => TryRecvError::Empty,
            mpsc::error::TryRecvError::Disconnected => TryRecvError::Disconnected,
        })?;
        self.took();
        Ok(event)
    }

    /// An event was taken: if the channel was full, the driver may be holding more (and
    /// reading nothing) until it hears there is room.
    fn took(&self) {
        if self.rx.len() + 1 >= self.rx.max_capacity() {
            self.nudge.wake();
        }
    }
}

impl Iterator for Events {
    type Item = Event;

    fn next(&mut self) -> Option<Event> {
        self.recv()
    }
}

/// Wakes the driver thread: after a command, after room was made for events, and when
/// dropped (a handle gone may be the last one).
#[derive(Clone)]
struct Nudge(Sender<Input>);

impl Nudge {
    fn wake(&self) {
        // Fails only once the driver has ended.
        let _ = self.0.send(Input::Nudge);
    }
}

impl Drop for Nudge {
    fn drop(&mut self) {
        self.wake();
    }
}

/// Unparks the thread blocked in [`Events::recv_timeout`] when an event arrives.
struct Unpark(Thread);

impl Wake for Unpark {
    fn wake(self: Arc<Self>) {
        self.0.unpark();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.0.unpark();
    }
}
