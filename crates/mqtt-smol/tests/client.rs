//! The smol client over real sockets on 127.0.0.1:0: against the smol broker (QoS 0/1/2,
//! SUBACK/UNSUBACK codes, reconnect with session resume through a proxy the test controls, the
//! graceful disconnect, `mqtts://` with rcgen-made certificates), against the tokio broker, and
//! against rumqttd (a broker nobody here wrote, in-process).
//!
//! A focused set: the full behaviour matrix runs in `mqtt-conformance` against every adapter.
//! Every wait is bounded by [`WAIT`]; nothing sleeps a fixed time to wait for something, and
//! every server started is stopped.

use std::collections::HashMap;
use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use async_io::Timer;
use async_net::{TcpListener, TcpStream};
use futures_lite::FutureExt;
use mqtt_core::broker::BrokerConfig;
use mqtt_core::client::{ClientOptions, PublishRequest};
use mqtt_core::packet::{SubscribeProperties, Subscription, SubscriptionOptions};
use mqtt_core::topic::{TopicFilter, TopicName};
use mqtt_core::{ProtocolVersion, Publish, QoS, ReasonCode};
use mqtt_smol::broker::{RunningServer, Server};
use mqtt_smol::client::{Client, ConnectOptions, Error, Event, Events, TlsOptions};
use mqtt_smol::TlsConfig;
use smol::Task;

/// Every wait in these tests ends by this.
const WAIT: Duration = Duration::from_secs(10);

/// `f`'s output, or a panic naming `what` after [`WAIT`]. Works under any executor.
async fn within<T>(what: &str, f: impl Future<Output = T>) -> T {
    let expired = async {
        Timer::after(WAIT).await;
        None
    };
    async { Some(f.await) }
        .or(expired)
        .await
        .unwrap_or_else(|| panic!("timed out: {what}"))
}

async fn start(config: BrokerConfig) -> RunningServer {
    let server = Server::new(config).listen_tcp(([127, 0, 0, 1], 0).into());
    within("start", server.start()).await.unwrap()
}

async fn stop(server: RunningServer) {
    within("shutdown", server.shutdown()).await.unwrap();
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
    ConnectOptions::new(url, client)
}

/// Options whose session outlives a connection: resumed after a reconnect.
fn persistent(url: &str, id: &str, version: ProtocolVersion) -> ConnectOptions {
    let mut o = options(url, id, version);
    o.client.clean_start = false;
    if version.is_v5() {
        o.client.connect_properties.session_expiry_interval = Some(300);
    }
    o
}

async fn connect(options: ConnectOptions) -> (Client, Events) {
    let (client, mut events) = within("connect", Client::connect(options)).await.unwrap();
    assert!(matches!(next(&mut events).await, Event::Connected { .. }));
    (client, events)
}

async fn next(events: &mut Events) -> Event {
    within("event", events.recv()).await.expect("events ended")
}

/// The next message, skipping nothing: any other event fails the test.
async fn message(events: &mut Events) -> Publish {
    match next(events).await {
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

async fn subscribe(client: &Client, filter: &str, qos: QoS) -> Vec<ReasonCode> {
    let subscription = client.subscribe(vec![sub(filter, qos)], SubscribeProperties::default());
    within("subscribe", subscription).await.unwrap()
}

fn msg(topic: &str, payload: impl Into<bytes::Bytes>, qos: QoS) -> PublishRequest {
    PublishRequest::new(TopicName::new(topic).unwrap(), payload).with_qos(qos)
}

async fn publish(client: &Client, request: PublishRequest) -> ReasonCode {
    within("publish", client.publish(request)).await.unwrap()
}

/// Subscribes at QoS 2 under `tag/`, publishes at QoS 0, 1 and 2 from a second client, checks
/// each completion and delivery, then unsubscribes and disconnects both.
async fn qos_flows(url: &str, version: ProtocolVersion, tag: &str, downgrades: bool) {
    let (subscriber, mut inbox) = connect(options(url, &format!("{tag}-sub"), version)).await;
    let codes = subscribe(&subscriber, &format!("{tag}/#"), QoS::ExactlyOnce).await;
    assert_eq!(codes, [ReasonCode::GrantedQoS2]);
    let (publisher, _events) = connect(options(url, &format!("{tag}-pub"), version)).await;
    let topic = format!("{tag}/x");
    for qos in [QoS::AtMostOnce, QoS::AtLeastOnce, QoS::ExactlyOnce] {
        let payload = format!("{tag} qos {}", qos as u8);
        let code = publish(&publisher, msg(&topic, payload.clone(), qos)).await;
        assert_eq!(code, ReasonCode::Success, "{tag} {qos:?}");
        let got = message(&mut inbox).await;
        assert_eq!(got.topic.as_str(), topic);
        assert_eq!(got.payload, payload.as_bytes());
        if downgrades {
            assert_eq!(got.qos, qos);
        }
    }
    let filters = vec![TopicFilter::new(format!("{tag}/#")).unwrap()];
    let codes = within("unsubscribe", subscriber.unsubscribe(filters)).await;
    assert_eq!(codes.unwrap(), [ReasonCode::Success]);
    within("disconnect", publisher.disconnect()).await.unwrap();
    within("disconnect", subscriber.disconnect()).await.unwrap();
}

#[test]
fn qos_0_1_2_with_the_smol_broker() {
    smol::block_on(async {
        let server = start(BrokerConfig::default()).await;
        let addr = url(server.tcp_addr().unwrap());
        qos_flows(&addr, ProtocolVersion::V311, "v311", true).await;
        qos_flows(&addr, ProtocolVersion::V5, "v5", true).await;
        stop(server).await;
    });
}

#[test]
fn reason_codes_and_caller_faults() {
    smol::block_on(async {
        let server = start(BrokerConfig::default()).await;
        let addr = url(server.tcp_addr().unwrap());
        let (client, _events) = connect(options(&addr, "codes", ProtocolVersion::V5)).await;
        let filters = vec![TopicFilter::new("z").unwrap()];
        let codes = within("unsubscribe", client.unsubscribe(filters)).await;
        assert_eq!(codes.unwrap(), [ReasonCode::NoSubscriptionExisted]);
        // A 5.0 server says when nobody was listening.
        let code = publish(&client, msg("nobody/here", "x", QoS::AtLeastOnce)).await;
        assert_eq!(code, ReasonCode::NoMatchingSubscribers);
        // A caller fault comes back from the core as an error, and the connection goes on.
        let empty = client.subscribe(Vec::new(), SubscribeProperties::default());
        let err = within("subscribe", empty).await.unwrap_err();
        assert!(matches!(err, Error::Request(_)), "{err:?}");
        within("disconnect", client.disconnect()).await.unwrap();
        stop(server).await;
    });
}

/// A TCP proxy in front of the broker that can kill every connection through it.
struct Proxy {
    addr: SocketAddr,
    conns: Arc<Mutex<Vec<Task<()>>>>,
    _accept: Task<()>,
}

impl Proxy {
    async fn start(upstream: SocketAddr) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let conns: Arc<Mutex<Vec<Task<()>>>> = Arc::default();
        let tasks = conns.clone();
        let accept = smol::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let conn = smol::spawn(async move {
                    let Ok(server) = TcpStream::connect(upstream).await else {
                        return;
                    };
                    let up = futures_lite::io::copy(client.clone(), server.clone());
                    let down = futures_lite::io::copy(server, client);
                    let _ = up.or(down).await;
                });
                tasks.lock().unwrap().push(conn);
            }
        });
        Self {
            addr,
            conns,
            _accept: accept,
        }
    }

    /// Closes every connection, both ways; returns once they are closed.
    async fn kill(&self) {
        let conns: Vec<_> = self.conns.lock().unwrap().drain(..).collect();
        for conn in conns {
            within("kill", conn.cancel()).await;
        }
    }
}

async fn resume(version: ProtocolVersion) {
    let server = start(BrokerConfig::default()).await;
    let direct = url(server.tcp_addr().unwrap());
    let proxy = Proxy::start(server.tcp_addr().unwrap()).await;
    let (subscriber, mut inbox) = connect(persistent(&url(proxy.addr), "sub", version)).await;
    subscribe(&subscriber, "r", QoS::AtLeastOnce).await;
    let (publisher, _events) = connect(options(&direct, "pub", version)).await;

    proxy.kill().await;
    match next(&mut inbox).await {
        Event::Disconnected { will_reconnect, .. } => assert!(will_reconnect),
        other => panic!("expected Disconnected, got {other:?}"),
    }
    // Published while the subscriber is away (or its old link is dying): the session keeps it.
    let code = publish(&publisher, msg("r", "while away", QoS::AtLeastOnce)).await;
    assert_eq!(code, ReasonCode::Success);
    match next(&mut inbox).await {
        Event::Connected { session_present } => assert!(session_present, "{version:?}"),
        other => panic!("expected Connected, got {other:?}"),
    }
    // Delivered on the resumed session, and its subscription still holds: nobody subscribed
    // again.
    assert_eq!(message(&mut inbox).await.payload, "while away".as_bytes());
    publish(&publisher, msg("r", "after", QoS::AtLeastOnce)).await;
    assert_eq!(message(&mut inbox).await.payload, "after".as_bytes());
    within("disconnect", subscriber.disconnect()).await.unwrap();
    within("disconnect", publisher.disconnect()).await.unwrap();
    stop(server).await;
}

#[test]
fn reconnect_resumes_the_session_v311() {
    smol::block_on(resume(ProtocolVersion::V311));
}

#[test]
fn reconnect_resumes_the_session_v5() {
    smol::block_on(resume(ProtocolVersion::V5));
}

#[test]
fn disconnect_ends_the_connection_for_good() {
    smol::block_on(async {
        let server = start(BrokerConfig::default()).await;
        let addr = url(server.tcp_addr().unwrap());
        let (client, mut events) = connect(options(&addr, "bye", ProtocolVersion::V5)).await;
        within("disconnect", client.disconnect()).await.unwrap();
        match next(&mut events).await {
            Event::Disconnected { will_reconnect, .. } => assert!(!will_reconnect),
            other => panic!("expected Disconnected, got {other:?}"),
        }
        assert!(within("end of events", events.recv()).await.is_none());
        within("closed", client.closed()).await;
        let late = client.publish(msg("t", "late", QoS::AtMostOnce)).await;
        assert!(matches!(late, Err(Error::Closed)), "{late:?}");
        stop(server).await;
    });
}

#[test]
fn a_server_shutdown_is_heard_and_the_client_reconnects() {
    smol::block_on(async {
        let server = start(BrokerConfig::default()).await;
        let addr = server.tcp_addr().unwrap();
        let (client, mut events) =
            connect(options(&url(addr), "phoenix", ProtocolVersion::V5)).await;
        stop(server).await;
        match next(&mut events).await {
            Event::Disconnected {
                reason,
                will_reconnect,
            } => {
                assert!(will_reconnect);
                assert!(reason.contains("server"), "{reason}");
            }
            other => panic!("expected Disconnected, got {other:?}"),
        }
        // The listener was closed by `shutdown`: a new server can take the same port.
        let server = Server::new(BrokerConfig::default()).listen_tcp(addr);
        let server = within("restart", server.start()).await.unwrap();
        match next(&mut events).await {
            Event::Connected { session_present } => assert!(!session_present),
            other => panic!("expected Connected, got {other:?}"),
        }
        within("disconnect", client.disconnect()).await.unwrap();
        stop(server).await;
    });
}

#[tokio::test]
async fn qos_0_1_2_with_the_tokio_broker() {
    let server = mqtt_tokio::broker::Server::new(BrokerConfig::default())
        .listen_tcp(([127, 0, 0, 1], 0).into());
    let server = within("start", server.start()).await.unwrap();
    let addr = url(server.tcp_addr().unwrap());
    qos_flows(&addr, ProtocolVersion::V311, "v311", true).await;
    qos_flows(&addr, ProtocolVersion::V5, "v5", true).await;
    within("shutdown", server.shutdown()).await.unwrap();
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
        let addr = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap();
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
        std::thread::spawn(move || {
            if let Err(e) = broker.start() {
                eprintln!("rumqttd did not start: {e}");
            }
        });
        addr
    })
}

/// The URL of rumqttd's listener for `version`, once it accepts connections (it gives no
/// signal when it listens: poll with a short pause, bounded by [`WAIT`]).
async fn rumqttd_url(version: ProtocolVersion) -> String {
    let addr = rumqttd(version);
    within("rumqttd listening", async {
        while TcpStream::connect(addr).await.is_err() {
            Timer::after(Duration::from_millis(10)).await;
        }
    })
    .await;
    url(addr)
}

// rumqttd gap: it forwards at the subscription's QoS instead of the lower of the published and
// granted QoS, so the QoS received is not checked there.
#[test]
fn qos_0_1_2_with_rumqttd_v311() {
    smol::block_on(async {
        let url = rumqttd_url(ProtocolVersion::V311).await;
        qos_flows(&url, ProtocolVersion::V311, "rv311", false).await;
    });
}

#[test]
fn qos_0_1_2_with_rumqttd_v5() {
    smol::block_on(async {
        let url = rumqttd_url(ProtocolVersion::V5).await;
        qos_flows(&url, ProtocolVersion::V5, "rv5", false).await;
    });
}

/// A self-signed certificate for "localhost" made by rcgen in a fresh directory; removed on
/// drop.
struct TempCert {
    dir: PathBuf,
}

impl TempCert {
    fn new(name: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("mqtt-smol-{name}-{}", std::process::id()));
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
    smol::block_on(async {
        let cert = TempCert::new("tls");
        let server = Server::new(BrokerConfig::default())
            .listen_tcp(([127, 0, 0, 1], 0).into())
            .listen_tls(([127, 0, 0, 1], 0).into(), cert.server());
        let server = within("start", server.start()).await.unwrap();
        assert_ne!(server.tcp_addr(), server.tls_addr());
        let tls_url = format!("mqtts://localhost:{}", server.tls_addr().unwrap().port());

        // Checked against the certificate as its own CA.
        let mut o = options(&tls_url, "verified", ProtocolVersion::V5);
        o.tls.ca_file = Some(cert.dir.join("cert.pem"));
        let (verified, mut inbox) = connect(o).await;
        subscribe(&verified, "s/#", QoS::ExactlyOnce).await;

        // Not checked at all; large payloads cross TLS records both ways.
        let mut o = options(&tls_url, "insecure", ProtocolVersion::V311);
        o.tls = TlsOptions {
            insecure: true,
            ..TlsOptions::default()
        };
        let (insecure, _events) = connect(o).await;
        let payload = vec![0xa5; 100_000];
        for qos in [QoS::AtMostOnce, QoS::AtLeastOnce, QoS::ExactlyOnce] {
            let code = publish(&insecure, msg("s/1", payload.clone(), qos)).await;
            assert_eq!(code, ReasonCode::Success);
            let got = message(&mut inbox).await;
            assert_eq!((got.payload.len(), got.qos), (payload.len(), qos));
        }
        // A plain TCP publisher reaches the TLS subscriber.
        let plain = url(server.tcp_addr().unwrap());
        let (plain, _events) = connect(options(&plain, "plain", ProtocolVersion::V5)).await;
        publish(&plain, msg("s/2", "plain", QoS::AtLeastOnce)).await;
        assert_eq!(message(&mut inbox).await.payload, "plain".as_bytes());

        // Without the CA, the self-signed certificate is refused.
        let unknown = Client::connect(options(&tls_url, "unknown", ProtocolVersion::V5));
        let unknown = within("connect", unknown).await;
        assert!(matches!(unknown, Err(Error::Tls(_))), "{unknown:?}");

        within("disconnect", plain.disconnect()).await.unwrap();
        within("disconnect", insecure.disconnect()).await.unwrap();
        within("disconnect", verified.disconnect()).await.unwrap();
        stop(server).await;
    });
}
