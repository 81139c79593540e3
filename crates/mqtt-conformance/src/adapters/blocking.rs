//! The blocking adapter: `mqtt_blocking`'s broker and client over `std::net` and threads,
//! called directly (its client blocks until each flow completes).

use std::net::SocketAddr;
use std::sync::mpsc::RecvTimeoutError;
use std::time::{Duration, Instant};

use mqtt_blocking::broker::{RunningServer, Server};
use mqtt_blocking::client::{self, Client, ConnectOptions, Events};
use mqtt_core::broker::BrokerConfig;
use mqtt_core::client::{ClientOptions, PublishRequest};
use mqtt_core::packet::{SubscribeProperties, Subscription};
use mqtt_core::topic::TopicFilter;
use mqtt_core::ReasonCode;

use crate::harness::WAIT;
use crate::{
    BrokerAdapter, ClientAdapter, ClientHandle, ConnectError, Connection, Event, Failure,
    RunningBroker,
};

/// The blocking broker, `mqtt_blocking::broker::Server`.
#[derive(Debug, Clone, Copy)]
pub struct BlockingBroker;

/// The blocking client, `mqtt_blocking::client::Client`.
#[derive(Debug, Clone, Copy)]
pub struct BlockingClient;

impl BrokerAdapter for BlockingBroker {
    fn name(&self) -> &'static str {
        "blocking"
    }

    fn start(&self, config: BrokerConfig) -> Result<Box<dyn RunningBroker>, Failure> {
        let running = Server::new(config)
            .listen_tcp(([127, 0, 0, 1], 0).into())
            .start()
            .map_err(|e| Failure::new(format!("blocking broker start: {e}")))?;
        let addr = running
            .tcp_addr()
            .ok_or_else(|| Failure::new("blocking broker: no TCP listener"))?;
        Ok(Box::new(BlockingRunning { running, addr }))
    }
}

struct BlockingRunning {
    running: RunningServer,
    addr: SocketAddr,
}

impl RunningBroker for BlockingRunning {
    fn addr(&self) -> SocketAddr {
        self.addr
    }

    fn stop(self: Box<Self>) -> Result<(), Failure> {
        self.running
            .shutdown()
            .map_err(|e| Failure::new(format!("blocking broker shutdown: {e}")))
    }
}

impl ClientAdapter for BlockingClient {
    fn name(&self) -> &'static str {
        "blocking"
    }

    fn connect(
        &self,
        addr: SocketAddr,
        options: ClientOptions,
    ) -> Result<Connection, ConnectError> {
        let mut connect = ConnectOptions::new(format!("mqtt://{addr}"), options);
        connect.reconnect = false;
        connect.connect_timeout = WAIT;
        connect.drain_timeout = WAIT;
        // Deep enough that a behaviour reading its events late loses nothing.
        connect.event_queue = 1024;
        let (client, mut events) = Client::connect(connect).map_err(|e| match e {
            client::Error::Refused(code) => ConnectError::Refused(code),
            other => ConnectError::Other(other.to_string()),
        })?;
        let session_present = match events.recv_timeout(WAIT) {
            Ok(client::Event::Connected { session_present }) => session_present,
            other => {
                return Err(ConnectError::Other(format!(
                    "expected Connected as the first event, got {other:?}"
                )))
            }
        };
        Ok(Connection {
            client: Box::new(BlockingHandle { client, events }),
            session_present,
        })
    }
}

struct BlockingHandle {
    client: Client,
    events: Events,
}

/// Runs one blocking call of the client on a thread of its own and waits for it at most
/// `WAIT`: the client's calls wait as long as the broker makes them (that is their contract),
/// but a behaviour must give up. A call that never returns ends with the client.
fn limited<T: Send + 'static>(
    what: &'static str,
    limit: Duration,
    call: impl FnOnce() -> Result<T, client::Error> + Send + 'static,
) -> Result<T, Failure> {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::Builder::new()
        .name(format!("conformance-{what}"))
        .spawn(move || {
            let _ = tx.send(call());
        })
        .map_err(|e| Failure::new(format!("blocking {what}: cannot start a thread: {e}")))?;
    match rx.recv_timeout(limit) {
        Ok(result) => result.map_err(|e| Failure::new(format!("blocking {what}: {e}"))),
        Err(_) => Err(Failure::new(format!(
            "blocking: {what} did not complete within {limit:?}"
        ))),
    }
}

impl ClientHandle for BlockingHandle {
    fn publish(&mut self, request: PublishRequest) -> Result<ReasonCode, Failure> {
        let client = self.client.clone();
        limited("publish", WAIT, move || client.publish(request))
    }

    fn subscribe(
        &mut self,
        subscriptions: Vec<Subscription>,
        properties: SubscribeProperties,
    ) -> Result<Vec<ReasonCode>, Failure> {
        let client = self.client.clone();
        limited("subscribe", WAIT, move || {
            client.subscribe(subscriptions, properties)
        })
    }

    fn unsubscribe(&mut self, filters: Vec<TopicFilter>) -> Result<Vec<ReasonCode>, Failure> {
        let client = self.client.clone();
        limited("unsubscribe", WAIT, move || client.unsubscribe(filters))
    }

    fn next_event(&mut self, timeout: Duration) -> Result<Option<Event>, Failure> {
        Ok(match self.events.recv_timeout(timeout) {
            Err(RecvTimeoutError::Timeout) => None,
            Err(RecvTimeoutError::Disconnected) => Some(Event::Closed),
            Ok(client::Event::Connected { session_present }) => {
                Some(Event::Connected { session_present })
            }
            Ok(client::Event::Message { publish, .. }) => Some(Event::Message(publish)),
            Ok(client::Event::Disconnected { reason, .. }) => Some(Event::Disconnected { reason }),
            Ok(other) => Some(Event::Other(format!("{other:?}"))),
        })
    }

    fn disconnect(
        self: Box<Self>,
        reason_code: ReasonCode,
        session_expiry: Option<u32>,
    ) -> Result<(), Failure> {
        let Self { client, events } = *self;
        let closing = client.clone();
        // As for the async clients: the drain may take its whole `drain_timeout` (WAIT) first.
        limited("disconnect", WAIT * 2, move || {
            closing.disconnect_with(reason_code, session_expiry)
        })?;
        drop(events);
        let deadline = Instant::now() + WAIT;
        while !client.is_closed() {
            if Instant::now() >= deadline {
                return Err(Failure::new(format!(
                    "blocking: the connection did not end within {WAIT:?}"
                )));
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        Ok(())
    }
}
