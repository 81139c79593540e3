//! The async client handle shared by the tokio and smol adapters: each method is a command to
//! the driver, which the adapter's [`Runtime`] spawns.

use std::marker::PhantomData;

use mqtt_core::client::{AckToken, PublishRequest};
use mqtt_core::packet::{AuthProperties, SubscribeProperties, Subscription, UnsubscribeProperties};
use mqtt_core::topic::TopicFilter;
use mqtt_core::ReasonCode;
use tokio::sync::{mpsc, oneshot};

use super::{Command, ConnectOptions, Error, Event, Supervisor};
use crate::endpoint::Endpoint;

/// What a driver is made of: it owns the supervisor, takes commands, and delivers events.
#[derive(Debug)]
pub struct DriverParts {
    /// The sans-IO client and every decision besides moving bytes.
    pub supervisor: Supervisor,
    /// Where the handles' commands arrive.
    pub commands: mpsc::Receiver<Command>,
}

/// An async runtime that can run a client's driver.
pub trait Runtime {
    /// Starts the driver loop on its own task; it runs until the connection is over for good.
    fn spawn_driver(parts: DriverParts);
}

/// A handle to one connection. Clones share it; each method is a command to its driver.
///
/// Every method is cancel safe: dropping its future before the command is queued sends
/// nothing, and dropping it after only drops the answer (the session is unaffected: a
/// message already queued is still published).
pub struct Client<R> {
    commands: mpsc::Sender<Command>,
    runtime: PhantomData<fn() -> R>,
}

impl<R> Clone for Client<R> {
    fn clone(&self) -> Self {
        Self {
            commands: self.commands.clone(),
            runtime: PhantomData,
        }
    }
}

impl<R> std::fmt::Debug for Client<R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client").finish_non_exhaustive()
    }
}

/// The events of one connection, from a bounded channel. Read them, or drop this: while the
/// channel is full the driver reads nothing from the server (not even CONNACK or PINGRESP).
#[derive(Debug)]
pub struct Events {
    rx: mpsc::Receiver<Event>,
}

impl Events {
    /// The next event; `None` once the connection is over for good and every event was read.
    pub async fn recv(&mut self) -> Option<Event> {
        self.rx.recv().await
    }

    /// The next event if one is waiting, without waiting.
    pub fn try_recv(&mut self) -> Result<Event, mpsc::error::TryRecvError> {
        self.rx.try_recv()
    }

    /// The next event, blocking the thread (not from inside an async task).
    pub fn blocking_recv(&mut self) -> Option<Event> {
        self.rx.blocking_recv()
    }
}

/// Builds the channels and the driver's parts for `options`; returns the handle's side, the
/// parts and the answer to the first connection.
#[allow(clippy::type_complexity)]
pub fn channels(
    options: ConnectOptions,
) -> Result<
    (
        mpsc::Sender<Command>,
        Events,
        DriverParts,
        oneshot::Receiver<Result<(), Error>>,
    ),
    Error,
> {
    let endpoint = Endpoint::parse(&options.url, &options.tls)?;
    let (commands_tx, commands) = mpsc::channel(options.request_queue.max(1));
    let (events_tx, events) = mpsc::channel(options.event_queue.max(1));
    let (ready_tx, ready) = oneshot::channel();
    let supervisor = Supervisor::new(options, endpoint, events_tx, ready_tx);
    let parts = DriverParts {
        supervisor,
        commands,
    };
    Ok((commands_tx, Events { rx: events }, parts, ready))
}

impl<R: Runtime> Client<R> {
    /// Connects and waits for the first CONNACK. `Ok` once the server accepted (the
    /// [`Event::Connected`] is also the first event); `Err` when it refused, the transport
    /// failed, or `connect_timeout` passed.
    pub async fn connect(options: ConnectOptions) -> Result<(Self, Events), Error> {
        let (commands, events, parts, ready) = channels(options)?;
        R::spawn_driver(parts);
        ready.await.map_err(|_| Error::Closed)??;
        Ok((
            Self {
                commands,
                runtime: PhantomData,
            },
            events,
        ))
    }
}

impl<R> Client<R> {
    /// Publishes and waits for the end of the QoS flow: QoS 0 once its bytes are handed to
    /// the transport, QoS 1 on PUBACK, QoS 2 on PUBCOMP. Returns the final reason code
    /// (`Success`, 0x10 No matching subscribers, or the server's failure code). Waits for
    /// room while the core's queue is full; survives reconnections.
    pub async fn publish(&self, request: PublishRequest) -> Result<ReasonCode, Error> {
        self.request(|done| Command::Publish {
            request,
            done: Some(done),
        })
        .await?
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
        })
    }

    /// Subscribes and returns the SUBACK's reason codes, one per subscription (granted QoS
    /// or failure). Without a connection the SUBSCRIBE waits for the next one.
    pub async fn subscribe(
        &self,
        subscriptions: Vec<Subscription>,
        properties: SubscribeProperties,
    ) -> Result<Vec<ReasonCode>, Error> {
        self.request(|done| Command::Subscribe {
            subscriptions,
            properties,
            done,
        })
        .await?
    }

    /// Unsubscribes and returns the UNSUBACK's reason codes, one per filter (3.x: all
    /// `Success`).
    pub async fn unsubscribe(&self, filters: Vec<TopicFilter>) -> Result<Vec<ReasonCode>, Error> {
        self.unsubscribe_with(filters, UnsubscribeProperties::default())
            .await
    }

    /// [`Client::unsubscribe`] with 5.0 properties.
    pub async fn unsubscribe_with(
        &self,
        filters: Vec<TopicFilter>,
        properties: UnsubscribeProperties,
    ) -> Result<Vec<ReasonCode>, Error> {
        self.request(|done| Command::Unsubscribe {
            filters,
            properties,
            done,
        })
        .await?
    }

    /// Acknowledges a message received with `manual_acks` (acknowledgements still go out in
    /// receive order).
    pub async fn ack(&self, token: AckToken) -> Result<(), Error> {
        self.request(|done| Command::Ack { token, done }).await?
    }

    /// Sends AUTH (5.0 enhanced authentication): 0x18 to answer an [`Event::Auth`], 0x19 to
    /// re-authenticate.
    pub async fn auth(
        &self,
        properties: AuthProperties,
        reason_code: ReasonCode,
    ) -> Result<(), Error> {
        self.request(|done| Command::Auth {
            properties,
            reason_code,
            done,
        })
        .await?
    }

    /// Disconnects gracefully with 0x00 (Normal disconnection): see
    /// [`Client::disconnect_with`].
    pub async fn disconnect(&self) -> Result<(), Error> {
        self.disconnect_with(ReasonCode::Success, None).await
    }

    /// Disconnects gracefully: waits up to `drain_timeout` for the messages queued and in
    /// flight to complete, sends DISCONNECT with `reason_code` (5.0; 0x04 asks the server to
    /// publish the will) and, if given, a new Session Expiry Interval, then closes. Commands
    /// sent after this one fail with [`Error::Closed`].
    pub async fn disconnect_with(
        &self,
        reason_code: ReasonCode,
        session_expiry: Option<u32>,
    ) -> Result<(), Error> {
        self.request(|done| Command::Disconnect {
            reason_code,
            session_expiry,
            done: Some(done),
        })
        .await?
    }

    /// Completes when the connection is over for good (the driver ended).
    pub async fn closed(&self) {
        self.commands.closed().await;
    }

    /// Sends the command `make` builds around a reply channel, and waits for the reply.
    async fn request<T>(
        &self,
        make: impl FnOnce(oneshot::Sender<Result<T, Error>>) -> Command,
    ) -> Result<Result<T, Error>, Error> {
        let (done, answer) = oneshot::channel();
        self.commands
            .send(make(done))
            .await
            .map_err(|_| Error::Closed)?;
        answer.await.map_err(|_| Error::Closed)
    }
}
