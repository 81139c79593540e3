//! The async clients (`mqtt-tokio`, `mqtt-smol`) share one handle type,
//! `mqtt_adapter::client::Client<R>`: one wrapper serves both, each runtime bringing only how
//! it blocks on a future with a time limit ([`Exec`]).

use std::future::Future;
use std::marker::PhantomData;
use std::net::SocketAddr;
use std::time::Duration;

use mqtt_adapter::client::{self, Client, ConnectOptions, Events, Runtime};
use mqtt_core::client::{ClientOptions, PublishRequest};
use mqtt_core::packet::{SubscribeProperties, Subscription};
use mqtt_core::topic::TopicFilter;
use mqtt_core::ReasonCode;

use crate::harness::WAIT;
use crate::{ClientHandle, ConnectError, Connection, Event, Failure};

/// How a runtime runs a future to completion from a plain thread.
pub(crate) trait Exec: Send + 'static {
    /// The runtime's name, for failure messages.
    const NAME: &'static str;

    /// Runs `future` for at most `limit`; `None` if it did not complete in time.
    fn run<T>(limit: Duration, future: impl Future<Output = T>) -> Result<Option<T>, Failure>;

    /// [`Exec::run`], with running out of time a failure naming `what`.
    #[track_caller]
    fn must<T>(what: &str, limit: Duration, future: impl Future<Output = T>) -> Result<T, Failure> {
        let location = std::panic::Location::caller();
        Self::run(limit, future)?.ok_or_else(|| {
            Failure::new(format!(
                "{}: {what} did not complete within {limit:?} (called at {location})",
                Self::NAME
            ))
        })
    }
}

/// Connects an async adapter's client with reconnection off and takes its `Connected` event.
pub(crate) fn connect<R: Runtime + 'static, E: Exec>(
    addr: SocketAddr,
    options: ClientOptions,
) -> Result<Connection, ConnectError> {
    let mut connect = ConnectOptions::new(format!("mqtt://{addr}"), options);
    connect.reconnect = false;
    connect.connect_timeout = WAIT;
    connect.drain_timeout = WAIT;
    // Deep enough that a behaviour reading its events late loses nothing.
    connect.event_queue = 1024;
    let (client, mut events) = E::must("connect", WAIT * 2, Client::<R>::connect(connect))
        .map_err(|f| ConnectError::Other(f.to_string()))?
        .map_err(|e| match e {
            client::Error::Refused(code) => ConnectError::Refused(code),
            other => ConnectError::Other(other.to_string()),
        })?;
    let first = E::must("the Connected event", WAIT, events.recv())
        .map_err(|f| ConnectError::Other(f.to_string()))?;
    let session_present = match first {
        Some(client::Event::Connected { session_present }) => session_present,
        other => {
            return Err(ConnectError::Other(format!(
                "expected Connected as the first event, got {other:?}"
            )))
        }
    };
    Ok(Connection {
        client: Box::new(Handle::<R, E> {
            client,
            events,
            exec: PhantomData,
        }),
        session_present,
    })
}

struct Handle<R, E> {
    client: Client<R>,
    events: Events,
    exec: PhantomData<fn() -> E>,
}

impl<R: 'static, E: Exec> ClientHandle for Handle<R, E> {
    fn publish(&mut self, request: PublishRequest) -> Result<ReasonCode, Failure> {
        E::must("publish", WAIT, self.client.publish(request))?
            .map_err(|e| Failure::new(format!("{} publish: {e}", E::NAME)))
    }

    fn subscribe(
        &mut self,
        subscriptions: Vec<Subscription>,
        properties: SubscribeProperties,
    ) -> Result<Vec<ReasonCode>, Failure> {
        E::must(
            "subscribe",
            WAIT,
            self.client.subscribe(subscriptions, properties),
        )?
        .map_err(|e| Failure::new(format!("{} subscribe: {e}", E::NAME)))
    }

    fn unsubscribe(&mut self, filters: Vec<TopicFilter>) -> Result<Vec<ReasonCode>, Failure> {
        E::must("unsubscribe", WAIT, self.client.unsubscribe(filters))?
            .map_err(|e| Failure::new(format!("{} unsubscribe: {e}", E::NAME)))
    }

    fn next_event(&mut self, timeout: Duration) -> Result<Option<Event>, Failure> {
        Ok(
            E::run(timeout, self.events.recv())?.map(|received| match received {
                None => Event::Closed,
                Some(client::Event::Connected { session_present }) => {
                    Event::Connected { session_present }
                }
                Some(client::Event::Message { publish, .. }) => Event::Message(publish),
                Some(client::Event::Disconnected { reason, .. }) => Event::Disconnected { reason },
                Some(other) => Event::Other(format!("{other:?}")),
            }),
        )
    }

    fn disconnect(
        self: Box<Self>,
        reason_code: ReasonCode,
        session_expiry: Option<u32>,
    ) -> Result<(), Failure> {
        let Self { client, events, .. } = *self;
        E::must(
            "disconnect",
            WAIT * 2,
            client.disconnect_with(reason_code, session_expiry),
        )?
        .map_err(|e| Failure::new(format!("{} disconnect: {e}", E::NAME)))?;
        drop(events);
        E::must("the end of the connection", WAIT, client.closed())
    }
}
