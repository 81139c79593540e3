//! The blocking client over real sockets on 127.0.0.1:0: against the blocking broker (QoS
//! 0/1/2 completions and delivery, the iterator, `try_recv`, reconnect with session resume
//! through a proxy the test controls, wills and graceful disconnects, `mqtts://`), against
//! the tokio broker, and against rumqttd (a broker nobody here wrote).
//!
//! Every wait is bounded by [`WAIT`]; nothing sleeps a fixed time to wait for something
//! (`try_recv` is polled with a short pause, within [`WAIT`]).

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, TryRecvError};
use std::sync::{Arc, Mutex, OnceLock};
use std::thread;
use std::time::{Duration, Instant};

use mqtt_blocking::broker::{RunningServer, Server};
use mqtt_blocking::client::{Client, ConnectOptions, Error, Event, Events, TlsOptions};
use mqtt_blocking::TlsConfig;
use mqtt_core::broker::BrokerConfig;
use mqtt_core::client::{ClientOptions, PublishRequest};
use mqtt_core::packet::{
    SubscribeProperties, Subscription, SubscriptionOptions, Will, WillProperties,
};
use mqtt_core::topic::{TopicFilter, TopicName};
use mqtt_core::{ProtocolVersion, Publish, QoS, ReasonCode};

/// Every wait in these tests ends by this.
const WAIT: Duration = Duration::from_secs(10);

fn start() -> RunningServer {
    Server::new(BrokerConfig::default())
        .listen_tcp(([127, 0, 0, 1], 0).into())
        .start()
        .unwrap()
}

fn url(addr: SocketAddr) -> String {
    format!("mqtt://{addr}")
}

/// Options with a fast, jitter-free backoff so reconnects happen within milliseconds.
fn options(url: &str, id: &str, version: ProtocolVersion) -> ConnectOptions {
    let mut client = ClientOptions::new(id);
    client.version = version;
    client.backoff_initial = Duration::from_millis(10);
    client.backoff_max = Duration::from_millis(200);
    client.backoff_jitter = 0.0;
    let mut options = ConnectOptions::new(url, client);
    options.connect_timeout = WAIT;
    options
}

/// Options whose session outlives a connection: resumed after a reconnect.
fn persistent(url: &str, id: &str, version: ProtocolVersion) -> ConnectOptions {
    let mut o = options(url, id, version);
    if version.is_v5() {
        o.client.connect_properties.session_expiry_interval = Some(300);
    } else {
        o.client.clean_start = false;
    }
    o
}

fn connect(options: ConnectOptions) -> (Client, Events) {
    let (client, mut events) = Client::connect(options).unwrap();
    assert!(matches!(next(&mut events), Event::Connected { .. }));
    (client, events)
}

fn next(events: &mut Events) -> Event {
    events.recv_timeout(WAIT).expect("no event")
}

/// The next message, skipping nothing: any other event fails the test.
fn message(events: &mut Events) -> Publish {
    match next(events) {
        Event::Message { publish, .. } => publish,
        other => panic!("expected a message, got {other:?}"),
    }
}

fn sub(filter: &str, qos: QoS) -> Subscription {
    Subscription {
        filter: TopicFilter::new(filter).unwrap(),
        options: SubscriptionOptions {
            qos,
            ..Default::default()
        },
    }
}

fn subscribe(client: &Client, filter: &str, qos: QoS) -> Vec<ReasonCode> {
    client
        .subscribe(vec![sub(filter, qos)], SubscribeProperties::default())
        .unwrap()
}

fn msg(topic: &str, payload: impl Into<bytes::Bytes>, qos: QoS) -> PublishRequest {
    PublishRequest::new(TopicName::new(topic).unwrap(), payload).with_qos(qos)
}

/// Publishes at each QoS, each call blocking until its flow completes, and reads each back.
/// `same_qos`: whether the broker forwards at the published QoS (rumqttd does not).
fn qos_flows(url: &str, tag: &str, version: ProtocolVersion, same_qos: bool) {
    let (subscriber, mut inbox) = connect(options(url, &format!("{tag}-sub"), version));
    let filter = format!("{tag}/qos/#");
    assert_eq!(
        subscribe(&subscriber, &filter, QoS::ExactlyOnce),
        [ReasonCode::GrantedQoS2]
    );
    let (publisher, _events) = connect(options(url, &format!("{tag}-pub"), version));
    let topic = format!("{tag}/qos/t");
    for qos in [QoS::AtMostOnce, QoS::AtLeastOnce, QoS::ExactlyOnce] {
        let payload = format!("{tag} qos {}", qos as u8);
        let code = publisher
            .publish(msg(&topic, payload.clone(), qos))
            .unwrap();
        assert_eq!(code, ReasonCode::Success, "{version:?} {qos:?}");
        let got = message(&mut inbox);
        assert_eq!(got.topic.as_str(), topic);
        assert_eq!(got.payload, payload.as_bytes());
        if same_qos {
            assert_eq!(got.qos, qos);
        }
    }
    let filters = vec![TopicFilter::new(filter).unwrap()];
    assert_eq!(
        subscriber.unsubscribe(filters).unwrap(),
        [ReasonCode::Success]
    );
    publisher.disconnect().unwrap();
    subscriber.disconnect().unwrap();
}

#[test]
fn qos_0_1_2_complete_and_arrive_v311() {
    let server = start();
    qos_flows(
        &url(server.tcp_addr().unwrap()),
        "b",
        ProtocolVersion::V311,
        true,
    );
    server.shutdown().unwrap();
}

#[test]
fn qos_0_1_2_complete_and_arrive_v5() {
    let server = start();
    qos_flows(
        &url(server.tcp_addr().unwrap()),
        "b",
        ProtocolVersion::V5,
        true,
    );
    server.shutdown().unwrap();
}

#[test]
fn events_iterate_and_try_recv_does_not_block() {
    let server = start();
    let addr = url(server.tcp_addr().unwrap());
    let (subscriber, mut events) = connect(options(&addr, "iter", ProtocolVersion::V5));
    assert!(matches!(events.try_recv(), Err(TryRecvError::Empty)));
    subscribe(&subscriber, "i/#", QoS::AtLeastOnce);
    let (publisher, _events) = connect(options(&addr, "iter-pub", ProtocolVersion::V5));
    for i in 0..5 {
        publisher
            .publish(msg("i/n", format!("{i}"), QoS::AtLeastOnce))
            .unwrap();
    }

    // `try_recv`, polled: the first message.
    let deadline = Instant::now() + WAIT;
    let first = loop {
        match events.try_recv() {
            Ok(Event::Message { publish, .. }) => break publish,
            Ok(other) => panic!("expected a message, got {other:?}"),
            Err(TryRecvError::Empty) if Instant::now() < deadline => {
                thread::sleep(Duration::from_millis(1));
            }
            Err(e) => panic!("try_recv: {e:?}"),
        }
    };
    assert_eq!(first.payload, "0".as_bytes());

    // The iterator, on a thread of its own so that the test can give up on it.
    let (done, got) = mpsc::channel();
    thread::spawn(move || {
        let payloads: Vec<_> = (&mut events)
            .filter_map(|e| match e {
                Event::Message { publish, .. } => Some(publish.payload),
                _ => None,
            })
            .take(4)
            .collect();
        let _ = done.send((payloads, events));
    });
    let (payloads, mut events) = got.recv_timeout(WAIT).expect("iterator stuck");
    assert_eq!(payloads, ["1", "2", "3", "4"].map(bytes::Bytes::from));

    // After a disconnect the iterator ends.
    subscriber.disconnect().unwrap();
    match next(&mut events) {
        Event::Disconnected {
            will_reconnect: false,
            ..
        } => {}
        other => panic!("expected Disconnected, got {other:?}"),
    }
    assert!(matches!(
        events.recv_timeout(WAIT),
        Err(mpsc::RecvTimeoutError::Disconnected)
    ));
    assert!(events.next().is_none());
    assert!(subscriber.is_closed());
    assert!(matches!(
        subscriber.publish(msg("i/n", "late", QoS::AtMostOnce)),
        Err(Error::Closed)
    ));
    publisher.disconnect().unwrap();
    server.shutdown().unwrap();
}

/// A TCP proxy in front of a broker: it can drop what clients send (and say how much it
/// dropped), kill every connection, and says when a client closed its side.
struct Proxy {
    addr: SocketAddr,
    hold: Arc<AtomicBool>,
    held: mpsc::Receiver<usize>,
    closed: mpsc::Receiver<()>,
    sockets: Arc<Mutex<Vec<TcpStream>>>,
    stop: Arc<AtomicBool>,
}

impl Proxy {
    fn start(upstream: SocketAddr) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let hold = Arc::new(AtomicBool::new(false));
        let stop = Arc::new(AtomicBool::new(false));
        let sockets: Arc<Mutex<Vec<TcpStream>>> = Arc::default();
        let (held_tx, held) = mpsc::channel();
        let (closed_tx, closed) = mpsc::channel();
        let (h, st, so) = (hold.clone(), stop.clone(), sockets.clone());
        thread::spawn(move || {
            for client in listener.incoming() {
                if st.load(Ordering::Acquire) {
                    return;
                }
                let (Ok(client), Ok(server)) = (client, TcpStream::connect(upstream)) else {
                    continue;
                };
                so.lock()
                    .unwrap()
                    .extend([client.try_clone().unwrap(), server.try_clone().unwrap()]);
                let (cr, sw) = (client.try_clone().unwrap(), server.try_clone().unwrap());
                let (h, held_tx, closed_tx) = (h.clone(), held_tx.clone(), closed_tx.clone());
                thread::spawn(move || {
                    pipe(cr, sw, Some((h, held_tx)));
                    let _ = closed_tx.send(());
                });
                thread::spawn(move || pipe(server, client, None));
            }
        });
        Self {
            addr,
            hold,
            held,
            closed,
            sockets,
            stop,
        }
    }

    fn kill(&self) {
        for socket in self.sockets.lock().unwrap().drain(..) {
            let _ = socket.shutdown(Shutdown::Both);
        }
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
        self.kill();
        let _ = TcpStream::connect(self.addr);
    }
}

/// Copies `from` to `to` until either ends; while `hold` is set, drops what it reads instead
/// and reports how much.
fn pipe(
    mut from: TcpStream,
    mut to: TcpStream,
    hold: Option<(Arc<AtomicBool>, mpsc::Sender<usize>)>,
) {
    let mut buf = [0; 16 * 1024];
    while let Ok(n @ 1..) = from.read(&mut buf) {
        if let Some((hold, held)) = &hold {
            if hold.load(Ordering::Acquire) {
                let _ = held.send(n);
                continue;
            }
        }
        if to.write_all(&buf[..n]).is_err() {
            break;
        }
    }
    let _ = to.shutdown(Shutdown::Write);
}

fn resume_through_proxy(version: ProtocolVersion) {
    let server = start();
    let proxy = Proxy::start(server.tcp_addr().unwrap());
    let direct = url(server.tcp_addr().unwrap());
    let (subscriber, mut inbox) = connect(options(&direct, "sub", version));
    subscribe(&subscriber, "r", QoS::AtLeastOnce);
    let (publisher, mut events) = connect(persistent(&url(proxy.addr), "pub", version));

    // The PUBLISH leaves the client but is lost at the proxy, then the connection dies.
    proxy.hold.store(true, Ordering::Release);
    let in_flight = thread::spawn({
        let publisher = publisher.clone();
        move || publisher.publish(msg("r", "in flight", QoS::AtLeastOnce))
    });
    proxy.held.recv_timeout(WAIT).expect("nothing sent");
    proxy.kill();
    proxy.hold.store(false, Ordering::Release);

    match next(&mut events) {
        Event::Disconnected { will_reconnect, .. } => assert!(will_reconnect),
        other => panic!("expected Disconnected, got {other:?}"),
    }
    match next(&mut events) {
        Event::Connected { session_present } => assert!(session_present, "{version:?}"),
        other => panic!("expected Connected, got {other:?}"),
    }
    // Resent on the resumed session, delivered once, and the blocked publish completes.
    assert_eq!(message(&mut inbox).payload, "in flight".as_bytes());
    assert_eq!(in_flight.join().unwrap().unwrap(), ReasonCode::Success);
    publisher
        .publish(msg("r", "after", QoS::AtLeastOnce))
        .unwrap();
    assert_eq!(message(&mut inbox).payload, "after".as_bytes());
    publisher.disconnect().unwrap();
    subscriber.disconnect().unwrap();
    server.shutdown().unwrap();
}

#[test]
fn reconnect_resumes_the_session_and_delivers_in_flight_v311() {
    resume_through_proxy(ProtocolVersion::V311);
}

#[test]
fn reconnect_resumes_the_session_and_delivers_in_flight_v5() {
    resume_through_proxy(ProtocolVersion::V5);
}

#[test]
fn disconnect_with_will_and_dropping_every_handle() {
    let server = start();
    let proxy = Proxy::start(server.tcp_addr().unwrap());
    let direct = url(server.tcp_addr().unwrap());
    let (watcher, mut inbox) = connect(options(&direct, "watcher", ProtocolVersion::V5));
    subscribe(&watcher, "will/#", QoS::AtLeastOnce);
    let with_will = |id: &str| {
        let mut o = options(&url(proxy.addr), id, ProtocolVersion::V5);
        o.client.will = Some(Will {
            topic: TopicName::new(format!("will/{id}")).unwrap(),
            payload: "gone".into(),
            qos: QoS::AtLeastOnce,
            retain: false,
            properties: WillProperties::default(),
        });
        o
    };

    // 0x04 asks the server to publish the will.
    let (a, _events) = connect(with_will("a"));
    a.disconnect_with(ReasonCode::DisconnectWithWill, None)
        .unwrap();
    assert_eq!(message(&mut inbox).topic.as_str(), "will/a");
    proxy.closed.recv_timeout(WAIT).expect("a still connected");

    // With every handle dropped the driver disconnects normally (0x00: no will) and closes.
    let (b, events) = connect(with_will("b"));
    drop((b, events));
    proxy.closed.recv_timeout(WAIT).expect("b still connected");
    // A later will shows b's did not come first.
    let (c, _events) = connect(with_will("c"));
    c.disconnect_with(ReasonCode::DisconnectWithWill, None)
        .unwrap();
    assert_eq!(message(&mut inbox).topic.as_str(), "will/c");
    watcher.disconnect().unwrap();
    server.shutdown().unwrap();
}

#[test]
fn connect_errors() {
    let bad = Client::connect(options("http://x", "e", ProtocolVersion::V5));
    assert!(matches!(bad, Err(Error::InvalidUrl(_))), "{bad:?}");
    // Nobody listens on a port just freed.
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let refused = Client::connect(options(&url(port), "e", ProtocolVersion::V5));
    assert!(matches!(refused, Err(Error::Io(_))), "{refused:?}");
}

/// A self-signed certificate for "localhost" in a fresh directory; removed on drop.
struct TempCert {
    dir: PathBuf,
}

impl TempCert {
    fn new(name: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("mqtt-blocking-{name}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let rcgen::CertifiedKey { cert, signing_key } =
            rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
        std::fs::write(dir.join("cert.pem"), cert.pem()).unwrap();
        std::fs::write(dir.join("key.pem"), signing_key.serialize_pem()).unwrap();
        Self { dir }
    }

    fn server(&self) -> TlsConfig {
        TlsConfig {
            cert_path: self.dir.join("cert.pem"),
            key_path: self.dir.join("key.pem"),
        }
    }
}

impl Drop for TempCert {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

#[test]
fn mqtts_with_a_ca_file_and_insecure() {
    let cert = TempCert::new("tls");
    let server = Server::new(BrokerConfig::default())
        .listen_tls(([127, 0, 0, 1], 0).into(), cert.server())
        .start()
        .unwrap();
    let tls_url = format!("mqtts://localhost:{}", server.tls_addr().unwrap().port());

    // Checked against the certificate as its own CA.
    let mut o = options(&tls_url, "verified", ProtocolVersion::V5);
    o.tls.ca_file = Some(cert.dir.join("cert.pem"));
    let (verified, mut inbox) = connect(o);
    subscribe(&verified, "s/#", QoS::ExactlyOnce);

    // Not checked at all.
    let mut o = options(&tls_url, "insecure", ProtocolVersion::V311);
    o.tls = TlsOptions {
        insecure: true,
        ..TlsOptions::default()
    };
    let (insecure, _events) = connect(o);
    let payload = vec![0xa5; 100_000];
    for qos in [QoS::AtMostOnce, QoS::AtLeastOnce, QoS::ExactlyOnce] {
        let code = insecure.publish(msg("s/1", payload.clone(), qos)).unwrap();
        assert_eq!(code, ReasonCode::Success);
        let got = message(&mut inbox);
        assert_eq!(got.payload, payload);
        assert_eq!(got.qos, qos);
    }

    // Without the CA, the self-signed certificate is refused.
    let unknown = Client::connect(options(&tls_url, "unknown", ProtocolVersion::V5));
    assert!(matches!(unknown, Err(Error::Tls(_))), "{unknown:?}");

    insecure.disconnect().unwrap();
    verified.disconnect().unwrap();
    server.shutdown().unwrap();
}

#[test]
fn against_the_tokio_broker() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let server = mqtt_tokio::broker::Server::new(BrokerConfig::default())
        .listen_tcp(([127, 0, 0, 1], 0).into());
    let server = runtime.block_on(server.start()).unwrap();
    let addr = url(server.tcp_addr().unwrap());
    qos_flows(&addr, "tokio-v311", ProtocolVersion::V311, true);
    qos_flows(&addr, "tokio-v5", ProtocolVersion::V5, true);
    let stopped = runtime.block_on(async { tokio::time::timeout(WAIT, server.shutdown()).await });
    stopped.expect("shutdown timed out").unwrap();
}

fn free_port() -> SocketAddr {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
}

/// The listener of the rumqttd that serves `version`'s test: one rumqttd per version, each
/// with its own router, so that the two tests never share one. rumqttd 0.20 gives a new client
/// the connection id of one that just closed while a late disconnect event of the old one is
/// still on its way to its router, and that event then closes the new client (mqtt-tokio's
/// `interop_rumqttd` tells how it showed). rumqttd has no shutdown: its threads end with the
/// test process. Its config wants a fixed port: it is chosen by binding 127.0.0.1:0 first.
fn rumqttd(version: ProtocolVersion) -> SocketAddr {
    static V4: OnceLock<SocketAddr> = OnceLock::new();
    static V5: OnceLock<SocketAddr> = OnceLock::new();
    let (cell, name) = if version.is_v5() {
        (&V5, "v5")
    } else {
        (&V4, "v4")
    };
    *cell.get_or_init(|| {
        let addr = free_port();
        let connections = rumqttd::ConnectionSettings {
            connection_timeout_ms: 10_000,
            max_payload_size: 1024 * 1024,
            max_inflight_count: 100,
            auth: None,
            external_auth: None,
            dynamic_filters: true,
        };
        let settings = rumqttd::ServerSettings {
            name: name.to_string(),
            listen: addr,
            tls: None,
            next_connection_delay_ms: 1,
            connections,
        };
        let server = Some(HashMap::from([(name.to_string(), settings)]));
        let (v4, v5) = if version.is_v5() {
            (None, server)
        } else {
            (server, None)
        };
        let config = rumqttd::Config {
            router: rumqttd::RouterConfig {
                max_connections: 1000,
                max_outgoing_packet_count: 200,
                max_segment_size: 10 * 1024 * 1024,
                max_segment_count: 10,
                ..Default::default()
            },
            v4,
            v5,
            ..Default::default()
        };
        let mut broker = rumqttd::Broker::new(config);
        thread::spawn(move || {
            if let Err(e) = broker.start() {
                eprintln!("rumqttd did not start: {e}");
            }
        });
        addr
    })
}

/// The URL of rumqttd's listener for `version`, once it accepts connections (polled: rumqttd
/// gives no signal when it is listening).
fn rumqttd_url(version: ProtocolVersion) -> String {
    let addr = rumqttd(version);
    let deadline = Instant::now() + WAIT;
    while TcpStream::connect(addr).is_err() {
        assert!(Instant::now() < deadline, "rumqttd not listening");
        thread::sleep(Duration::from_millis(10));
    }
    url(addr)
}

// rumqttd gap: it forwards at the subscription's QoS instead of the lower of the published
// and granted QoS, so the received QoS is not checked.
#[test]
fn against_rumqttd_v311() {
    let url = rumqttd_url(ProtocolVersion::V311);
    qos_flows(&url, "rumqttd-v311", ProtocolVersion::V311, false);
}

#[test]
fn against_rumqttd_v5() {
    let url = rumqttd_url(ProtocolVersion::V5);
    qos_flows(&url, "rumqttd-v5", ProtocolVersion::V5, false);
}

/// A client with a session store: each QoS 1/2 message waits for its record to be durable
/// before it goes out, so publishing completes only if the store's answers reach the driver;
/// a second process on the same store resumes the session.
#[test]
fn a_client_with_a_session_store_publishes_and_resumes() {
    let server = start();
    let url = url(server.tcp_addr().unwrap());
    let dir = std::env::temp_dir().join(format!("blocking-client-store-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let (subscriber, mut inbox) = connect(options(&url, "store-sub", ProtocolVersion::V5));
    subscribe(&subscriber, "store/#", QoS::ExactlyOnce);
    let mut o = persistent(&url, "store-pub", ProtocolVersion::V5);
    o.client.persistence = true;
    o.store = Some(mqtt_store::ClientStoreOptions::new(&dir));
    let (publisher, events) = connect(o.clone());
    for qos in [QoS::AtLeastOnce, QoS::ExactlyOnce] {
        // On a thread of its own: without the store's answers it would never return.
        let (done, answer) = std::sync::mpsc::channel();
        let p = publisher.clone();
        std::thread::spawn(move || {
            let _ = done.send(p.publish(msg("store/t", "kept", qos)));
        });
        let code = answer
            .recv_timeout(WAIT)
            .expect("publish did not complete: the store's answers did not reach the driver")
            .unwrap();
        assert_eq!(code, ReasonCode::Success);
        assert_eq!(message(&mut inbox).payload, "kept".as_bytes());
    }
    publisher.disconnect().unwrap();
    drop(events);
    // The next process: the writer of the last one may still hold the file for a moment.
    let deadline = std::time::Instant::now() + WAIT;
    let (publisher, mut events) = loop {
        match Client::connect(o.clone()) {
            Ok(pair) => break pair,
            Err(e) if std::time::Instant::now() < deadline => {
                eprintln!("store not yet free: {e}");
                std::thread::sleep(Duration::from_millis(50));
            }
            Err(e) => panic!("{e}"),
        }
    };
    assert!(matches!(
        next(&mut events),
        Event::Connected {
            session_present: true
        }
    ));
    publisher.disconnect().unwrap();
    subscriber.disconnect().unwrap();
    let _ = std::fs::remove_dir_all(&dir);
}
