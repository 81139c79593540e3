//! What behaviours are written with: [`Ctx`] (one broker and the adapters to reach it),
//! [`Client`] (a connected adapter client with bounded expectations), the severable link
//! [`Cut`], and the default configurations.

use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use bytes::Bytes;
use mqtt_core::broker::BrokerConfig;
use mqtt_core::client::{ClientOptions, PublishRequest};
use mqtt_core::packet::{
    ConnAck, Connect, PublishProperties, SubscribeProperties, Subscription, SubscriptionOptions,
};
use mqtt_core::{ProtocolVersion, Publish, QoS, ReasonCode};

use crate::raw::{filter_of, topic_of, RawPeer};
use crate::{
    BrokerAdapter, ClientAdapter, ClientHandle, ConnectError, Event, Failure, RunningBroker,
};

/// How long anything that must happen may take.
pub const WAIT: Duration = Duration::from_secs(5);
/// How long a behaviour listens to show that something does not happen, when no marker
/// message can show it sooner.
pub const QUIET: Duration = Duration::from_millis(300);

/// The broker configuration behaviours start from: the defaults, without `$SYS` traffic.
pub fn config() -> BrokerConfig {
    BrokerConfig {
        sys_interval: None,
        ..BrokerConfig::default()
    }
}

/// Client options for `client_id` in `version`: clean start, keep alive 60 s.
pub fn options(client_id: &str, version: ProtocolVersion) -> ClientOptions {
    let mut o = ClientOptions::new(client_id);
    o.version = version;
    o.connect_timeout = WAIT;
    o.backoff_jitter = 0.0;
    o
}

/// Options whose session outlives the connection: Clean Session 0 in 3.1.1; in 5.0 a
/// Session Expiry Interval of 300 s and Clean Start 0.
pub fn persistent(client_id: &str, version: ProtocolVersion) -> ClientOptions {
    let mut o = options(client_id, version);
    o.clean_start = false;
    if version.is_v5() {
        o.connect_properties.session_expiry_interval = Some(300);
    }
    o
}

/// A message to publish.
#[track_caller]
pub fn msg(topic: &str, payload: impl Into<Bytes>, qos: QoS) -> Result<PublishRequest, Failure> {
    Ok(PublishRequest::new(topic_of(topic)?, payload).with_qos(qos))
}

/// A subscription to `filter` at `qos` with default options.
#[track_caller]
pub fn sub(filter: &str, qos: QoS) -> Result<Subscription, Failure> {
    Ok(Subscription {
        filter: filter_of(filter)?,
        options: SubscriptionOptions {
            qos,
            ..SubscriptionOptions::default()
        },
    })
}

/// The SUBACK code that grants `qos`.
pub fn granted(qos: QoS) -> ReasonCode {
    match qos {
        QoS::AtMostOnce => ReasonCode::Success,
        QoS::AtLeastOnce => ReasonCode::GrantedQoS1,
        QoS::ExactlyOnce => ReasonCode::GrantedQoS2,
    }
}

/// One broker started for one behaviour, and the client adapter to reach it with.
///
/// Dropping it stops the broker at once; [`Ctx::finish`] stops it gracefully and reports a
/// failure to stop.
pub struct Ctx<'a> {
    broker: Option<Box<dyn RunningBroker>>,
    addr: SocketAddr,
    clients: &'a dyn ClientAdapter,
}

impl<'a> Ctx<'a> {
    /// Starts a broker from `broker` with `config`.
    pub fn start(
        broker: &dyn BrokerAdapter,
        clients: &'a dyn ClientAdapter,
        config: BrokerConfig,
    ) -> Result<Self, Failure> {
        let running = broker
            .start(config)
            .map_err(|f| f.context(format!("starting the {} broker", broker.name())))?;
        Ok(Self {
            addr: running.addr(),
            broker: Some(running),
            clients,
        })
    }

    /// The broker's address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// A client through the adapter, which must be accepted.
    #[track_caller]
    pub fn client(&self, options: ClientOptions) -> Result<Client, Failure> {
        let id = options.client_id.to_string();
        match self.try_client(options)? {
            Ok(c) => Ok(c),
            Err(e) => Err(Failure::new(format!(
                "client {id:?} could not connect: {e}"
            ))),
        }
    }

    /// A client through the adapter, or the broker's refusal.
    pub fn try_client(
        &self,
        options: ClientOptions,
    ) -> Result<Result<Client, ConnectError>, Failure> {
        self.connect_to(self.addr, options, None)
    }

    /// A client through the adapter over a link the behaviour can cut with
    /// [`Client::kill`]: the broker then sees the connection lost, without DISCONNECT.
    #[track_caller]
    pub fn severable(&self, options: ClientOptions) -> Result<Client, Failure> {
        let id = options.client_id.to_string();
        let cut = Cut::start(self.addr)?;
        match self.connect_to(cut.addr, options, Some(cut))? {
            Ok(c) => Ok(c),
            Err(e) => Err(Failure::new(format!(
                "client {id:?} could not connect: {e}"
            ))),
        }
    }

    fn connect_to(
        &self,
        addr: SocketAddr,
        options: ClientOptions,
        cut: Option<Cut>,
    ) -> Result<Result<Client, ConnectError>, Failure> {
        let id = options.client_id.to_string();
        Ok(self.clients.connect(addr, options).map(|c| Client {
            id,
            handle: Some(c.client),
            session_present: c.session_present,
            cut,
        }))
    }

    /// A raw peer, connected (CONNACK 0x00 expected) with `connect`.
    #[track_caller]
    pub fn raw(&self, connect: Connect) -> Result<(RawPeer, ConnAck), Failure> {
        RawPeer::connect(self.addr, connect)
    }

    /// A raw peer, connected as `client_id` in `version` with the default CONNECT.
    #[track_caller]
    pub fn raw_as(&self, version: ProtocolVersion, client_id: &str) -> Result<RawPeer, Failure> {
        Ok(RawPeer::connect(self.addr, Connect::new(version, client_id))?.0)
    }

    /// A raw TCP connection that has sent nothing yet.
    pub fn raw_open(&self, version: ProtocolVersion) -> Result<RawPeer, Failure> {
        RawPeer::open(self.addr, version)
    }

    /// Stops the broker gracefully.
    pub fn finish(mut self) -> Result<(), Failure> {
        match self.broker.take() {
            Some(b) => b.stop().map_err(|f| f.context("stopping the broker")),
            None => Ok(()),
        }
    }
}

/// A connected client: an adapter's handle with bounded expectations on its events.
pub struct Client {
    id: String,
    handle: Option<Box<dyn ClientHandle>>,
    /// The CONNACK's Session Present.
    pub session_present: bool,
    cut: Option<Cut>,
}

impl Client {
    fn handle(&mut self) -> Result<&mut Box<dyn ClientHandle>, Failure> {
        let id = &self.id;
        self.handle
            .as_mut()
            .ok_or_else(|| Failure::new(format!("client {id:?} was already closed")))
    }

    /// Publishes and returns the final reason code.
    #[track_caller]
    pub fn publish_request(&mut self, request: PublishRequest) -> Result<ReasonCode, Failure> {
        let id = self.id.clone();
        self.handle()?
            .publish(request)
            .map_err(|f| f.context(format!("client {id:?}")))
    }

    /// Publishes `payload` to `topic` at `qos`; returns the final reason code.
    #[track_caller]
    pub fn publish(
        &mut self,
        topic: &str,
        payload: impl Into<Bytes>,
        qos: QoS,
    ) -> Result<ReasonCode, Failure> {
        self.publish_request(msg(topic, payload, qos)?)
    }

    /// Publishes and expects the flow to end in `Success` (or 0x10, which is also success).
    #[track_caller]
    pub fn send(
        &mut self,
        topic: &str,
        payload: impl Into<Bytes>,
        qos: QoS,
    ) -> Result<(), Failure> {
        let code = self.publish(topic, payload, qos)?;
        if code.is_error() {
            return Err(Failure::new(format!(
                "client {:?}: publish to {topic:?} ended with {code}",
                self.id
            )));
        }
        Ok(())
    }

    /// Publishes a retained message and expects success.
    #[track_caller]
    pub fn retain(
        &mut self,
        topic: &str,
        payload: impl Into<Bytes>,
        qos: QoS,
    ) -> Result<(), Failure> {
        let code = self.publish_request(msg(topic, payload, qos)?.with_retain(true))?;
        if code.is_error() {
            return Err(Failure::new(format!(
                "client {:?}: retained publish to {topic:?} ended with {code}",
                self.id
            )));
        }
        Ok(())
    }

    /// Publishes with 5.0 properties; returns the final reason code.
    #[track_caller]
    pub fn publish_with(
        &mut self,
        topic: &str,
        payload: impl Into<Bytes>,
        qos: QoS,
        properties: PublishProperties,
    ) -> Result<ReasonCode, Failure> {
        self.publish_request(msg(topic, payload, qos)?.with_properties(properties))
    }

    /// Subscribes to `filter` at `qos` and expects it granted as asked.
    #[track_caller]
    pub fn subscribe(&mut self, filter: &str, qos: QoS) -> Result<(), Failure> {
        let codes = self.subscribe_with(vec![sub(filter, qos)?], SubscribeProperties::default())?;
        if codes != [granted(qos)] {
            return Err(Failure::new(format!(
                "client {:?}: SUBACK {codes:?} for {filter:?} at {qos:?}",
                self.id
            )));
        }
        Ok(())
    }

    /// Subscribes and returns the SUBACK's codes.
    #[track_caller]
    pub fn subscribe_with(
        &mut self,
        subscriptions: Vec<Subscription>,
        properties: SubscribeProperties,
    ) -> Result<Vec<ReasonCode>, Failure> {
        let id = self.id.clone();
        self.handle()?
            .subscribe(subscriptions, properties)
            .map_err(|f| f.context(format!("client {id:?}")))
    }

    /// Unsubscribes and returns the UNSUBACK's codes.
    #[track_caller]
    pub fn unsubscribe(&mut self, filters: &[&str]) -> Result<Vec<ReasonCode>, Failure> {
        let filters = filters
            .iter()
            .map(|f| filter_of(f))
            .collect::<Result<Vec<_>, _>>()?;
        let id = self.id.clone();
        self.handle()?
            .unsubscribe(filters)
            .map_err(|f| f.context(format!("client {id:?}")))
    }

    /// The next event within `timeout`, if any.
    pub fn next_event(&mut self, timeout: Duration) -> Result<Option<Event>, Failure> {
        self.handle()?.next_event(timeout)
    }

    /// The next event, which must be a message; returns it.
    #[track_caller]
    pub fn expect_publish(&mut self) -> Result<Publish, Failure> {
        match self.next_event(WAIT)? {
            Some(Event::Message(p)) => Ok(p),
            Some(other) => Err(Failure::new(format!(
                "client {:?}: expected a message, got {other:?}",
                self.id
            ))),
            None => Err(Failure::new(format!(
                "client {:?}: expected a message, none came within {WAIT:?}",
                self.id
            ))),
        }
    }

    /// The next event must be a message on `topic` with `payload`; returns it.
    #[track_caller]
    pub fn expect_message(&mut self, topic: &str, payload: &str) -> Result<Publish, Failure> {
        let p = self.expect_publish()?;
        if p.topic.as_str() != topic || p.payload != payload.as_bytes() {
            return Err(Failure::new(format!(
                "client {:?}: expected {topic:?} {payload:?}, got {:?} {:?}",
                self.id,
                p.topic.as_str(),
                String::from_utf8_lossy(&p.payload)
            )));
        }
        Ok(p)
    }

    /// The payloads of the next `n` messages, in order.
    #[track_caller]
    pub fn payloads(&mut self, n: usize) -> Result<Vec<String>, Failure> {
        (0..n)
            .map(|_| {
                self.expect_publish()
                    .map(|p| String::from_utf8_lossy(&p.payload).into_owned())
            })
            .collect()
    }

    /// No event at all for `quiet`.
    #[track_caller]
    pub fn expect_quiet(&mut self, quiet: Duration) -> Result<(), Failure> {
        match self.next_event(quiet)? {
            None => Ok(()),
            Some(e) => Err(Failure::new(format!(
                "client {:?}: expected nothing for {quiet:?}, got {e:?}",
                self.id
            ))),
        }
    }

    /// The connection ends: a `Disconnected` event within [`WAIT`] (messages before it are
    /// a failure); returns its reason.
    #[track_caller]
    pub fn expect_disconnected(&mut self) -> Result<String, Failure> {
        match self.next_event(WAIT)? {
            Some(Event::Disconnected { reason }) => Ok(reason),
            Some(Event::Closed) => Ok("closed".to_string()),
            Some(other) => Err(Failure::new(format!(
                "client {:?}: expected the connection to end, got {other:?}",
                self.id
            ))),
            None => Err(Failure::new(format!(
                "client {:?}: expected the connection to end within {WAIT:?}",
                self.id
            ))),
        }
    }

    /// Disconnects normally.
    pub fn disconnect(self) -> Result<(), Failure> {
        self.disconnect_with(ReasonCode::Success, None)
    }

    /// Disconnects with `reason_code` and, if given, a new Session Expiry Interval.
    pub fn disconnect_with(
        mut self,
        reason_code: ReasonCode,
        session_expiry: Option<u32>,
    ) -> Result<(), Failure> {
        let id = self.id.clone();
        match self.handle.take() {
            Some(h) => h
                .disconnect(reason_code, session_expiry)
                .map_err(|f| f.context(format!("client {id:?} disconnect"))),
            None => Ok(()),
        }
    }

    /// Cuts the link (a client from [`Ctx::severable`] only): the broker sees the
    /// connection lost without DISCONNECT. The handle is then dropped.
    #[track_caller]
    pub fn kill(mut self) -> Result<(), Failure> {
        let Some(cut) = self.cut.take() else {
            return Err(Failure::new(format!(
                "client {:?} has no severable link: connect it with Ctx::severable",
                self.id
            )));
        };
        cut.sever();
        // The adapter sees its transport close; it must not be able to say DISCONNECT.
        if let Some(mut h) = self.handle.take() {
            let deadline = Instant::now() + WAIT;
            while Instant::now() < deadline {
                if let Some(Event::Disconnected { .. } | Event::Closed) =
                    h.next_event(Duration::from_millis(100))?
                {
                    break;
                }
            }
        }
        drop(cut);
        Ok(())
    }
}

/// A TCP relay in front of the broker for one client connection, which the behaviour can
/// cut: both sockets are shut down at once, so the broker sees the link lost.
pub struct Cut {
    addr: SocketAddr,
    sockets: Arc<Mutex<Vec<TcpStream>>>,
    threads: Vec<JoinHandle<()>>,
}

impl Cut {
    /// Listens on 127.0.0.1:0 for one connection, and relays it to `upstream`.
    fn start(upstream: SocketAddr) -> Result<Self, Failure> {
        let listener = TcpListener::bind(("127.0.0.1", 0))
            .map_err(|e| Failure::new(format!("relay: cannot listen: {e}")))?;
        let addr = listener
            .local_addr()
            .map_err(|e| Failure::new(format!("relay: {e}")))?;
        listener
            .set_nonblocking(true)
            .map_err(|e| Failure::new(format!("relay: {e}")))?;
        let sockets: Arc<Mutex<Vec<TcpStream>>> = Arc::default();
        let shared = sockets.clone();
        let accept = std::thread::Builder::new()
            .name("conformance-relay".into())
            .spawn(move || relay(listener, upstream, shared))
            .map_err(|e| Failure::new(format!("relay: cannot spawn: {e}")))?;
        Ok(Self {
            addr,
            sockets,
            threads: vec![accept],
        })
    }

    /// Shuts both sockets down.
    fn sever(&self) {
        let sockets = self.sockets.lock().unwrap_or_else(PoisonError::into_inner);
        for s in sockets.iter() {
            let _ = s.shutdown(Shutdown::Both);
        }
    }
}

impl Drop for Cut {
    fn drop(&mut self) {
        self.sever();
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

/// Accepts one connection within [`WAIT`] and copies bytes both ways until either side
/// closes or the link is cut.
fn relay(listener: TcpListener, upstream: SocketAddr, sockets: Arc<Mutex<Vec<TcpStream>>>) {
    let deadline = Instant::now() + WAIT;
    let client = loop {
        match listener.accept() {
            Ok((s, _)) => break s,
            Err(e) if e.kind() == ErrorKind::WouldBlock && Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(2));
            }
            Err(_) => return,
        }
    };
    let _ = client.set_nonblocking(false);
    let Ok(server) = TcpStream::connect_timeout(&upstream, WAIT) else {
        let _ = client.shutdown(Shutdown::Both);
        return;
    };
    let _ = client.set_nodelay(true);
    let _ = server.set_nodelay(true);
    let (Ok(c2), Ok(s2), Ok(c3), Ok(s3)) = (
        client.try_clone(),
        server.try_clone(),
        client.try_clone(),
        server.try_clone(),
    ) else {
        return;
    };
    {
        let mut all = sockets.lock().unwrap_or_else(PoisonError::into_inner);
        all.push(c3);
        all.push(s3);
    }
    let up = std::thread::spawn(move || copy(client, s2));
    copy(server, c2);
    let _ = up.join();
}

fn copy(mut from: TcpStream, mut to: TcpStream) {
    let mut buf = [0u8; 16 * 1024];
    loop {
        let n = match from.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        let Some(chunk) = buf.get(..n) else { break };
        if to.write_all(chunk).is_err() {
            break;
        }
    }
    let _ = to.shutdown(Shutdown::Both);
    let _ = from.shutdown(Shutdown::Both);
}

/// The topic of marker messages: see [`marker`].
pub const MARKER: &str = "conformance/marker";

/// Shows that nothing else is on its way to `subscriber` (which must be subscribed to
/// [`MARKER`]): `publisher` sends a QoS 1 marker, and the marker must be the subscriber's
/// very next message. Messages from one publisher are delivered in order, so anything the
/// broker had sent before would come first.
#[track_caller]
pub fn marker(publisher: &mut Client, subscriber: &mut Client) -> Result<(), Failure> {
    publisher.send(MARKER, "marker", QoS::AtLeastOnce)?;
    subscriber.expect_message(MARKER, "marker").map(|_| ())
}
