//! The tokio adapter: `mqtt_tokio`'s async broker and client, driven synchronously on one
//! shared multi-thread runtime with `Runtime::block_on`.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::OnceLock;
use std::time::Duration;

use mqtt_core::broker::BrokerConfig;
use mqtt_core::client::{ClientOptions, PublishRequest};
use mqtt_core::packet::{SubscribeProperties, Subscription};
use mqtt_core::topic::TopicFilter;
use mqtt_core::ReasonCode;
use mqtt_tokio::broker::{RunningServer, Server};
use mqtt_tokio::client::{self, Client, ConnectOptions, Events};
use tokio::runtime::Runtime;

use crate::harness::WAIT;
use crate::{
    BrokerAdapter, ClientAdapter, ClientHandle, ConnectError, Connection, Event, Failure,
    RunningBroker,
};

/// The tokio broker, `mqtt_tokio::broker::Server`.
#[derive(Debug, Clone, Copy)]
pub struct TokioBroker;

/// The tokio client, `mqtt_tokio::client::Client`.
#[derive(Debug, Clone, Copy)]
pub struct TokioClient;

/// The runtime every tokio broker and client of the process runs on.
fn runtime() -> Result<&'static Runtime, Failure> {
    static RUNTIME: OnceLock<Result<Runtime, String>> = OnceLock::new();
    RUNTIME
        .get_or_init(|| {
            tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .thread_name("conformance-tokio")
                .enable_all()
                .build()
                .map_err(|e| e.to_string())
        })
        .as_ref()
        .map_err(|e| Failure::new(format!("cannot build the tokio runtime: {e}")))
}

/// Runs `future` on the shared runtime, for at most `limit`.
#[track_caller]
fn block_on<T>(what: &str, limit: Duration, future: impl Future<Output = T>) -> Result<T, Failure> {
    let location = std::panic::Location::caller();
    runtime()?
        .block_on(async { tokio::time::timeout(limit, future).await })
        .map_err(|_| {
            Failure::new(format!(
                "tokio: {what} did not complete within {limit:?} (called at {location})"
            ))
        })
}

impl BrokerAdapter for TokioBroker {
    fn name(&self) -> &'static str {
        "tokio"
    }

    fn start(&self, config: BrokerConfig) -> Result<Box<dyn RunningBroker>, Failure> {
        let server = Server::new(config).listen_tcp(([127, 0, 0, 1], 0).into());
        let running = block_on("broker start", WAIT, server.start())?
            .map_err(|e| Failure::new(format!("tokio broker start: {e}")))?;
        let addr = running
            .tcp_addr()
            .ok_or_else(|| Failure::new("tokio broker: no TCP listener"))?;
        Ok(Box::new(TokioRunning { running, addr }))
    }
}

struct TokioRunning {
    running: RunningServer,
    addr: SocketAddr,
}

impl RunningBroker for TokioRunning {
    fn addr(&self) -> SocketAddr {
        self.addr
    }

    fn stop(self: Box<Self>) -> Result<(), Failure> {
        block_on("broker shutdown", WAIT, self.running.shutdown())?
            .map_err(|e| Failure::new(format!("tokio broker shutdown: {e}")))
    }
}

impl ClientAdapter for TokioClient {
    fn name(&self) -> &'static str {
        "tokio"
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
        let (client, mut events) = block_on("connect", WAIT * 2, Client::connect(connect))
            .map_err(|f| ConnectError::Other(f.to_string()))?
            .map_err(|e| match e {
                client::Error::Refused(code) => ConnectError::Refused(code),
                other => ConnectError::Other(other.to_string()),
            })?;
        let first = block_on("the Connected event", WAIT, events.recv())
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
            client: Box::new(TokioHandle { client, events }),
            session_present,
        })
    }
}

struct TokioHandle {
    client: Client,
    events: Events,
}

impl ClientHandle for TokioHandle {
    fn publish(&mut self, request: PublishRequest) -> Result<ReasonCode, Failure> {
        block_on("publish", WAIT, self.client.publish(request))?
            .map_err(|e| Failure::new(format!("tokio publish: {e}")))
    }

    fn subscribe(
        &mut self,
        subscriptions: Vec<Subscription>,
        properties: SubscribeProperties,
    ) -> Result<Vec<ReasonCode>, Failure> {
        block_on(
            "subscribe",
            WAIT,
            self.client.subscribe(subscriptions, properties),
        )?
        .map_err(|e| Failure::new(format!("tokio subscribe: {e}")))
    }

    fn unsubscribe(&mut self, filters: Vec<TopicFilter>) -> Result<Vec<ReasonCode>, Failure> {
        block_on("unsubscribe", WAIT, self.client.unsubscribe(filters))?
            .map_err(|e| Failure::new(format!("tokio unsubscribe: {e}")))
    }

    fn next_event(&mut self, timeout: Duration) -> Result<Option<Event>, Failure> {
        let received =
            runtime()?.block_on(async { tokio::time::timeout(timeout, self.events.recv()).await });
        Ok(match received {
            Err(_) => None,
            Ok(None) => Some(Event::Closed),
            Ok(Some(event)) => Some(match event {
                client::Event::Connected { session_present } => {
                    Event::Connected { session_present }
                }
                client::Event::Message { publish, .. } => Event::Message(publish),
                client::Event::Disconnected { reason, .. } => Event::Disconnected { reason },
                other => Event::Other(format!("{other:?}")),
            }),
        })
    }

    fn disconnect(
        self: Box<Self>,
        reason_code: ReasonCode,
        session_expiry: Option<u32>,
    ) -> Result<(), Failure> {
        let Self { client, events } = *self;
        block_on(
            "disconnect",
            WAIT * 2,
            client.disconnect_with(reason_code, session_expiry),
        )?
        .map_err(|e| Failure::new(format!("tokio disconnect: {e}")))?;
        drop(events);
        block_on("the end of the connection", WAIT, client.closed())
    }
}
