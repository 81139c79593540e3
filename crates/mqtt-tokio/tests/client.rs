//! The tokio client against the tokio broker over real sockets on 127.0.0.1:0: QoS 0/1/2
//! completions and delivery, SUBACK/UNSUBACK codes, back-pressure, cancel safety, reconnect
//! with session resume (through a proxy the test controls, and to a restarted server), the
//! graceful disconnect's drain, and `mqtts://` with a self-signed certificate.
//!
//! Every wait is bounded by [`WAIT`]; nothing sleeps a fixed time to wait for something. The
//! proxy holds bytes in one direction (to keep an acknowledgement from arriving, or a PUBLISH
//! from leaving) and kills connections (to make the client reconnect).

use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use mqtt_core::broker::BrokerConfig;
use mqtt_core::client::{ClientOptions, PublishRequest};
use mqtt_core::packet::{
    SubscribeProperties, Subscription, SubscriptionOptions, Will, WillProperties,
};
use mqtt_core::topic::{TopicFilter, TopicName};
use mqtt_core::{ProtocolVersion, Publish, QoS, ReasonCode};
use mqtt_tokio::broker::{RunningServer, Server};
use mqtt_tokio::client::{Client, ConnectOptions, Error, Event, Events, TlsOptions};
use mqtt_tokio::TlsConfig;
use tokio::net::TcpListener;
use tokio::time::timeout;

use support::Proxy;

mod support;

/// Every wait in these tests ends by this.
const WAIT: Duration = Duration::from_secs(10);

async fn within<T>(what: &str, f: impl Future<Output = T>) -> T {
    timeout(WAIT, f)
        .await
        .unwrap_or_else(|_| panic!("timed out: {what}"))
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
    if version.is_v5() {
        o.client.connect_properties.session_expiry_interval = Some(300);
    } else {
        o.client.clean_start = false;
    }
    o
}

async fn connect(options: ConnectOptions) -> (Client, Events) {
    let (client, mut events) = within("connect", Client::connect(options)).await.unwrap();
    assert!(matches!(
        next(&mut events).await,
        Event::Connected {
            session_present: false
        }
    ));
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

async fn subscribe(client: &Client, filter: &str, qos: QoS) {
    let codes = within(
        "subscribe",
        client.subscribe(vec![sub(filter, qos)], SubscribeProperties::default()),
    )
    .await
    .unwrap();
    assert_eq!(codes, vec![ReasonCode::from_u8(qos as u8).unwrap()]);
}

fn msg(topic: &str, payload: impl Into<bytes::Bytes>, qos: QoS) -> PublishRequest {
    PublishRequest::new(TopicName::new(topic).unwrap(), payload).with_qos(qos)
}

async fn publish(client: &Client, request: PublishRequest) -> ReasonCode {
    within("publish", client.publish(request)).await.unwrap()
}

async fn qos_flows(version: ProtocolVersion) {
    let server = start(BrokerConfig::default()).await;
    let addr = url(server.tcp_addr().unwrap());
    let (subscriber, mut inbox) = connect(options(&addr, "sub", version)).await;
    subscribe(&subscriber, "t/#", QoS::ExactlyOnce).await;
    let (publisher, _events) = connect(options(&addr, "pub", version)).await;

    for qos in [QoS::AtMostOnce, QoS::AtLeastOnce, QoS::ExactlyOnce] {
        let payload = format!("qos {}", qos as u8);
        let code = publish(&publisher, msg("t/x", payload.clone(), qos)).await;
        assert_eq!(code, ReasonCode::Success, "{version:?} {qos:?}");
        let got = message(&mut inbox).await;
        assert_eq!(got.topic.as_str(), "t/x");
        assert_eq!(got.payload, payload.as_bytes());
        assert_eq!(got.qos, qos);
    }
    within("disconnect", publisher.disconnect()).await.unwrap();
    within("disconnect", subscriber.disconnect()).await.unwrap();
    stop(server).await;
}

#[tokio::test]
async fn qos_0_1_2_complete_and_arrive_v311() {
    qos_flows(ProtocolVersion::V311).await;
}

#[tokio::test]
async fn qos_0_1_2_complete_and_arrive_v5() {
    qos_flows(ProtocolVersion::V5).await;
}

#[tokio::test]
async fn subscribe_and_unsubscribe_return_reason_codes() {
    let server = start(BrokerConfig::default()).await;
    let addr = url(server.tcp_addr().unwrap());
    let (client, _events) = connect(options(&addr, "codes", ProtocolVersion::V5)).await;
    let subs = vec![
        sub("a", QoS::AtMostOnce),
        sub("b/+", QoS::AtLeastOnce),
        sub("c/#", QoS::ExactlyOnce),
    ];
    let codes = within(
        "subscribe",
        client.subscribe(subs, SubscribeProperties::default()),
    )
    .await
    .unwrap();
    assert_eq!(
        codes,
        [
            ReasonCode::Success,
            ReasonCode::GrantedQoS1,
            ReasonCode::GrantedQoS2
        ]
    );
    let filters = vec![
        TopicFilter::new("a").unwrap(),
        TopicFilter::new("z").unwrap(),
    ];
    let codes = within("unsubscribe", client.unsubscribe(filters))
        .await
        .unwrap();
    assert_eq!(
        codes,
        [ReasonCode::Success, ReasonCode::NoSubscriptionExisted]
    );
    // A 5.0 server says when nobody was listening.
    let code = publish(&client, msg("nobody/here", "x", QoS::AtLeastOnce)).await;
    assert_eq!(code, ReasonCode::NoMatchingSubscribers);
    // A caller fault comes back from the core as an error, and the connection goes on.
    let err = within(
        "subscribe",
        client.subscribe(Vec::new(), SubscribeProperties::default()),
    )
    .await
    .unwrap_err();
    assert!(matches!(err, Error::Request(_)), "{err:?}");
    assert_eq!(
        publish(&client, msg("a", "y", QoS::AtLeastOnce)).await,
        ReasonCode::NoMatchingSubscribers
    );
    within("disconnect", client.disconnect()).await.unwrap();
    stop(server).await;
}

// Single-threaded on purpose: the count below relies on the driver running at each yield.
#[tokio::test(flavor = "current_thread")]
async fn try_publish_reports_queue_full_and_publish_waits_for_room() {
    let server = start(BrokerConfig::default()).await;
    let proxy = Proxy::start(server.tcp_addr().unwrap()).await;
    let direct = url(server.tcp_addr().unwrap());
    let (subscriber, mut inbox) = connect(options(&direct, "sub", ProtocolVersion::V5)).await;
    subscribe(&subscriber, "q", QoS::AtLeastOnce).await;

    let mut o = options(&url(proxy.addr), "pub", ProtocolVersion::V5);
    o.client.max_inflight = 1;
    o.client.max_queued = 2;
    o.request_queue = 2;
    let (publisher, _events) = connect(o).await;
    // No PUBACK reaches the publisher: one message in flight, then the core's queue, the one
    // command parked, and the request channel fill up.
    proxy.hold_down(true);
    let mut queued = 0;
    let full = loop {
        match publisher.try_publish(msg("q", queued.to_string(), QoS::AtLeastOnce)) {
            Ok(()) => queued += 1,
            Err(e) => break e,
        }
        assert!(queued <= 6, "still not full after {queued}");
        // Let the driver take what it can.
        for _ in 0..10 {
            tokio::task::yield_now().await;
        }
    };
    assert!(matches!(full, Error::QueueFull), "{full:?}");
    // 1 in flight + 2 in the core's queue + 1 parked in the driver + 2 in the channel: the
    // single-threaded test runtime lets the driver take each one before the next is tried.
    assert_eq!(queued, 6);

    // Once acknowledgements flow, everything goes out in order and `publish` gets its turn.
    proxy.hold_down(false);
    let last = publish(&publisher, msg("q", "last", QoS::AtLeastOnce)).await;
    assert_eq!(last, ReasonCode::Success);
    for i in 0..queued {
        assert_eq!(message(&mut inbox).await.payload, i.to_string().as_bytes());
    }
    assert_eq!(message(&mut inbox).await.payload, "last".as_bytes());
    within("disconnect", publisher.disconnect()).await.unwrap();
    stop(server).await;
}

#[tokio::test]
async fn a_dropped_publish_future_leaves_the_session_consistent() {
    let server = start(BrokerConfig::default()).await;
    let proxy = Proxy::start(server.tcp_addr().unwrap()).await;
    let direct = url(server.tcp_addr().unwrap());
    let (subscriber, mut inbox) = connect(options(&direct, "sub", ProtocolVersion::V5)).await;
    subscribe(&subscriber, "c", QoS::ExactlyOnce).await;
    let mut o = options(&url(proxy.addr), "pub", ProtocolVersion::V5);
    // One message in flight at a time: the next can only go once the first flow is complete.
    o.client.max_inflight = 1;
    let (publisher, _events) = connect(o).await;

    // The PUBLISH reaches the broker (and the subscriber); its PUBREC is held.
    proxy.hold_down(true);
    {
        let first = publisher.publish(msg("c", "first", QoS::ExactlyOnce));
        tokio::pin!(first);
        tokio::select! {
            r = &mut first => panic!("completed while PUBREC is held: {r:?}"),
            p = message(&mut inbox) => assert_eq!(p.payload, "first".as_bytes()),
        }
        // Dropped here, mid-flight.
    }
    proxy.hold_down(false);
    assert_eq!(
        publish(&publisher, msg("c", "second", QoS::ExactlyOnce)).await,
        ReasonCode::Success
    );
    assert_eq!(
        publish(&publisher, msg("c", "third", QoS::AtLeastOnce)).await,
        ReasonCode::Success
    );
    // Nothing was delivered twice: "second" and "third" come next.
    assert_eq!(message(&mut inbox).await.payload, "second".as_bytes());
    assert_eq!(message(&mut inbox).await.payload, "third".as_bytes());
    within("disconnect", publisher.disconnect()).await.unwrap();
    stop(server).await;
}

async fn resume_through_proxy(version: ProtocolVersion) {
    let server = start(BrokerConfig::default()).await;
    let proxy = Proxy::start(server.tcp_addr().unwrap()).await;
    let direct = url(server.tcp_addr().unwrap());
    let (subscriber, mut inbox) = connect(options(&direct, "sub", version)).await;
    subscribe(&subscriber, "r", QoS::AtLeastOnce).await;
    let (publisher, mut events) = connect(persistent(&url(proxy.addr), "pub", version)).await;

    // The PUBLISH leaves the client but is held at the proxy, then the connection dies.
    proxy.hold_up(true);
    let sent = proxy.bytes_from_clients();
    let in_flight = tokio::spawn({
        let publisher = publisher.clone();
        async move {
            publisher
                .publish(msg("r", "in flight", QoS::AtLeastOnce))
                .await
        }
    });
    proxy.wait_from_clients(sent).await;
    proxy.kill().await;
    proxy.hold_up(false);

    match next(&mut events).await {
        Event::Disconnected { will_reconnect, .. } => assert!(will_reconnect),
        other => panic!("expected Disconnected, got {other:?}"),
    }
    match next(&mut events).await {
        Event::Connected { session_present } => assert!(session_present, "{version:?}"),
        other => panic!("expected Connected, got {other:?}"),
    }
    // Resent on the resumed session, delivered once, and the publish completes.
    let code = within("in-flight publish", in_flight)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(code, ReasonCode::Success);
    assert_eq!(message(&mut inbox).await.payload, "in flight".as_bytes());
    publish(&publisher, msg("r", "after", QoS::AtLeastOnce)).await;
    assert_eq!(message(&mut inbox).await.payload, "after".as_bytes());
    within("disconnect", publisher.disconnect()).await.unwrap();
    stop(server).await;
}

#[tokio::test]
async fn reconnect_resumes_the_session_and_delivers_in_flight_v311() {
    resume_through_proxy(ProtocolVersion::V311).await;
}

#[tokio::test]
async fn reconnect_resumes_the_session_and_delivers_in_flight_v5() {
    resume_through_proxy(ProtocolVersion::V5).await;
}

#[tokio::test]
async fn reconnects_to_a_server_restarted_on_the_same_port() {
    let server = start(BrokerConfig::default()).await;
    let addr = server.tcp_addr().unwrap();
    let (client, mut events) =
        connect(persistent(&url(addr), "phoenix", ProtocolVersion::V5)).await;
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
    // Messages published while the server is away wait in the session.
    let waiting = tokio::spawn({
        let client = client.clone();
        async move { client.publish(msg("p", "queued", QoS::AtLeastOnce)).await }
    });
    let server = Server::new(BrokerConfig::default()).listen_tcp(addr);
    let server = within("restart", server.start()).await.unwrap();
    // The new server knows no session; the client goes on with a fresh one.
    match next(&mut events).await {
        Event::Connected { session_present } => assert!(!session_present),
        other => panic!("expected Connected, got {other:?}"),
    }
    let code = within("queued publish", waiting).await.unwrap().unwrap();
    assert_eq!(code, ReasonCode::NoMatchingSubscribers);
    within("disconnect", client.disconnect()).await.unwrap();
    stop(server).await;
}

#[tokio::test]
async fn graceful_disconnect_waits_for_messages_in_flight() {
    let server = start(BrokerConfig::default()).await;
    let proxy = Proxy::start(server.tcp_addr().unwrap()).await;
    let direct = url(server.tcp_addr().unwrap());
    let (subscriber, mut inbox) = connect(options(&direct, "sub", ProtocolVersion::V5)).await;
    subscribe(&subscriber, "d", QoS::AtLeastOnce).await;
    let (publisher, mut events) =
        connect(options(&url(proxy.addr), "pub", ProtocolVersion::V5)).await;

    proxy.hold_down(true);
    let in_flight = tokio::spawn({
        let publisher = publisher.clone();
        async move {
            publisher
                .publish(msg("d", "drain me", QoS::AtLeastOnce))
                .await
        }
    });
    assert_eq!(message(&mut inbox).await.payload, "drain me".as_bytes());
    let disconnect = tokio::spawn({
        let publisher = publisher.clone();
        async move { publisher.disconnect().await }
    });
    // Let the driver take the DISCONNECT command while the PUBACK is still held. (Were it
    // taken later, the test would pass without showing the drain, never fail spuriously.)
    for _ in 0..20 {
        tokio::task::yield_now().await;
    }
    assert!(!disconnect.is_finished());
    proxy.hold_down(false);
    within("disconnect", disconnect).await.unwrap().unwrap();
    let code = within("in-flight publish", in_flight)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(code, ReasonCode::Success);
    match next(&mut events).await {
        Event::Disconnected { will_reconnect, .. } => assert!(!will_reconnect),
        other => panic!("expected Disconnected, got {other:?}"),
    }
    assert!(within("end of events", events.recv()).await.is_none());
    within("closed", publisher.closed()).await;
    let err = publisher.publish(msg("d", "late", QoS::AtMostOnce)).await;
    assert!(matches!(err, Err(Error::Closed)), "{err:?}");
    stop(server).await;
}

#[tokio::test]
async fn graceful_disconnect_gives_up_after_the_drain_timeout() {
    let server = start(BrokerConfig::default()).await;
    let proxy = Proxy::start(server.tcp_addr().unwrap()).await;
    let mut o = options(&url(proxy.addr), "pub", ProtocolVersion::V5);
    o.drain_timeout = Duration::from_millis(100);
    let (publisher, _events) = connect(o).await;
    proxy.hold_down(true);
    let sent = proxy.bytes_from_clients();
    let in_flight = tokio::spawn({
        let publisher = publisher.clone();
        async move { publisher.publish(msg("d", "stuck", QoS::AtLeastOnce)).await }
    });
    proxy.wait_from_clients(sent).await;
    within("disconnect", publisher.disconnect()).await.unwrap();
    let result = within("in-flight publish", in_flight).await.unwrap();
    assert!(matches!(result, Err(Error::Closed)), "{result:?}");
    stop(server).await;
}

#[tokio::test]
async fn keep_alive_detects_a_dead_link_and_reconnects() {
    let server = start(BrokerConfig::default()).await;
    let proxy = Proxy::start(server.tcp_addr().unwrap()).await;
    let mut o = persistent(&url(proxy.addr), "pinger", ProtocolVersion::V5);
    o.client.keep_alive = Duration::from_secs(1);
    let (client, mut events) = connect(o).await;
    // The server's answers stop: PINGREQ goes out after 1 s, and with no PINGRESP for another
    // second the core gives the link up.
    proxy.hold_down(true);
    match next(&mut events).await {
        Event::Disconnected {
            reason,
            will_reconnect,
        } => {
            assert!(will_reconnect);
            assert!(reason.contains("keep alive"), "{reason}");
        }
        other => panic!("expected Disconnected, got {other:?}"),
    }
    proxy.kill().await;
    proxy.hold_down(false);
    match next(&mut events).await {
        Event::Connected { session_present } => assert!(session_present),
        other => panic!("expected Connected, got {other:?}"),
    }
    within("disconnect", client.disconnect()).await.unwrap();
    stop(server).await;
}

#[tokio::test]
async fn manual_acks_hand_out_tokens() {
    let server = start(BrokerConfig::default()).await;
    let addr = url(server.tcp_addr().unwrap());
    let mut o = options(&addr, "manual", ProtocolVersion::V5);
    o.client.manual_acks = true;
    let (client, mut inbox) = connect(o).await;
    subscribe(&client, "m", QoS::AtLeastOnce).await;
    let (publisher, _events) = connect(options(&addr, "pub", ProtocolVersion::V5)).await;
    publish(&publisher, msg("m", "zero", QoS::AtMostOnce)).await;
    // The broker's PUBACK to the publisher does not wait for the subscriber's.
    publish(&publisher, msg("m", "one", QoS::AtLeastOnce)).await;
    let Event::Message { publish: p, ack } = next(&mut inbox).await else {
        panic!("expected a message");
    };
    assert_eq!((p.payload.as_ref(), ack.is_none()), (&b"zero"[..], true));
    let Event::Message { publish: p, ack } = next(&mut inbox).await else {
        panic!("expected a message");
    };
    assert_eq!(p.payload, "one".as_bytes());
    within("ack", client.ack(ack.expect("a QoS 1 token")))
        .await
        .unwrap();
    within("disconnect", client.disconnect()).await.unwrap();
    stop(server).await;
}

#[tokio::test]
async fn disconnect_with_will_and_dropping_every_handle() {
    let server = start(BrokerConfig::default()).await;
    let proxy = Proxy::start(server.tcp_addr().unwrap()).await;
    let direct = url(server.tcp_addr().unwrap());
    let (watcher, mut inbox) = connect(options(&direct, "watcher", ProtocolVersion::V5)).await;
    subscribe(&watcher, "will/#", QoS::AtLeastOnce).await;
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
    let (a, _events) = connect(with_will("a")).await;
    within(
        "disconnect",
        a.disconnect_with(ReasonCode::DisconnectWithWill, None),
    )
    .await
    .unwrap();
    assert_eq!(message(&mut inbox).await.topic.as_str(), "will/a");

    // With every handle dropped the driver disconnects normally (0x00: no will) and closes.
    let (b, events) = connect(with_will("b")).await;
    let sent = proxy.bytes_from_clients();
    drop((b, events));
    proxy.wait_from_clients(sent).await;
    // A later will shows b's did not come first.
    let (c, _events) = connect(with_will("c")).await;
    within(
        "disconnect",
        c.disconnect_with(ReasonCode::DisconnectWithWill, None),
    )
    .await
    .unwrap();
    assert_eq!(message(&mut inbox).await.topic.as_str(), "will/c");
    stop(server).await;
}

#[tokio::test]
async fn connect_errors() {
    let bad = Client::connect(options("http://x", "e", ProtocolVersion::V5)).await;
    assert!(matches!(bad, Err(Error::InvalidUrl(_))), "{bad:?}");
    let bad = Client::connect(options("mqtt://", "e", ProtocolVersion::V5)).await;
    assert!(matches!(bad, Err(Error::InvalidUrl(_))), "{bad:?}");

    // Nothing listens on a port just released.
    let port = TcpListener::bind("127.0.0.1:0")
        .await
        .unwrap()
        .local_addr()
        .unwrap();
    let refused = within(
        "connect",
        Client::connect(options(&url(port), "e", ProtocolVersion::V5)),
    )
    .await;
    assert!(matches!(refused, Err(Error::Io(_))), "{refused:?}");

    // A server that accepts and never answers.
    let silent = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let mut o = options(&url(silent.local_addr().unwrap()), "e", ProtocolVersion::V5);
    o.connect_timeout = Duration::from_millis(200);
    let timed_out = within("connect", Client::connect(o)).await;
    assert!(matches!(timed_out, Err(Error::Timeout)), "{timed_out:?}");

    // The broker refuses the client id.
    let mut config = BrokerConfig::default();
    config.limits.max_client_id_len = 4;
    let server = start(config).await;
    let o = options(
        &url(server.tcp_addr().unwrap()),
        "too-long",
        ProtocolVersion::V5,
    );
    let refused = within("connect", Client::connect(o)).await;
    assert!(
        matches!(
            refused,
            Err(Error::Refused(ReasonCode::ClientIdentifierNotValid))
        ),
        "{refused:?}"
    );
    stop(server).await;
}

/// A self-signed certificate for "localhost" in a fresh directory; removed on drop.
struct TempCert {
    dir: PathBuf,
}

impl TempCert {
    fn new(name: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("mqtt-client-{name}-{}", std::process::id()));
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

#[tokio::test]
async fn mqtts_with_a_ca_file_and_insecure() {
    let cert = TempCert::new("tls");
    let server =
        Server::new(BrokerConfig::default()).listen_tls(([127, 0, 0, 1], 0).into(), cert.server());
    let server = within("start", server.start()).await.unwrap();
    let tls_url = format!("mqtts://localhost:{}", server.tls_addr().unwrap().port());

    // Checked against the certificate as its own CA.
    let mut o = options(&tls_url, "verified", ProtocolVersion::V5);
    o.tls.ca_file = Some(cert.dir.join("cert.pem"));
    let (verified, mut inbox) = connect(o).await;
    subscribe(&verified, "s/#", QoS::ExactlyOnce).await;

    // Not checked at all.
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
        assert_eq!(got.payload, payload);
        assert_eq!(got.qos, qos);
    }

    // Without the CA, the self-signed certificate is refused.
    let unknown = Client::connect(options(&tls_url, "unknown", ProtocolVersion::V5));
    let unknown = within("connect", unknown).await;
    assert!(matches!(unknown, Err(Error::Tls(_))), "{unknown:?}");
    // A missing CA file is named.
    let mut o = options(&tls_url, "missing", ProtocolVersion::V5);
    o.tls.ca_file = Some("/nonexistent/ca.pem".into());
    let missing = within("connect", Client::connect(o)).await.unwrap_err();
    assert!(
        missing.to_string().contains("/nonexistent/ca.pem"),
        "{missing}"
    );

    within("disconnect", insecure.disconnect()).await.unwrap();
    within("disconnect", verified.disconnect()).await.unwrap();
    stop(server).await;
}
