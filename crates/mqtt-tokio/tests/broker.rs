//! The tokio broker over real sockets on 127.0.0.1:0, spoken to byte by byte with `mqtt_core::codec`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use mqtt_core::broker::BrokerConfig;
use mqtt_core::codec::{decode, encode, DecodeLimits};
use mqtt_core::packet::{
    Ack, Connect, Subscribe, SubscribeProperties, Subscription, SubscriptionOptions,
};
use mqtt_core::topic::{TopicFilter, TopicName};
use mqtt_core::{Packet, PacketId, ProtocolVersion, Publish, QoS, ReasonCode};
use mqtt_tokio::broker::{RunningServer, Server};
use mqtt_tokio::TlsConfig;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::timeout;

/// Every wait in these tests ends by this.
const WAIT: Duration = Duration::from_secs(10);

async fn within<T>(what: &str, f: impl std::future::Future<Output = T>) -> T {
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

/// A raw MQTT peer over any byte stream.
struct Peer<S> {
    stream: S,
    rx: BytesMut,
    version: ProtocolVersion,
}

impl Peer<TcpStream> {
    async fn tcp(addr: SocketAddr, version: ProtocolVersion) -> Self {
        let stream = within("connect", TcpStream::connect(addr)).await.unwrap();
        Self::new(stream, version)
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> Peer<S> {
    fn new(stream: S, version: ProtocolVersion) -> Self {
        Self {
            stream,
            rx: BytesMut::new(),
            version,
        }
    }

    async fn send(&mut self, packet: Packet) {
        let mut buf = BytesMut::new();
        encode(&packet, self.version, &mut buf).unwrap();
        within("write", self.stream.write_all(&buf)).await.unwrap();
    }

    /// The next packet, or `None` at end of stream.
    async fn next(&mut self) -> Option<Packet> {
        loop {
            if let Some(p) = decode(&mut self.rx, self.version, &DecodeLimits::default()).unwrap() {
                return Some(p);
            }
            let n = within("read", self.stream.read_buf(&mut self.rx))
                .await
                .unwrap_or(0);
            if n == 0 {
                return None;
            }
        }
    }

    async fn recv(&mut self) -> Packet {
        self.next().await.expect("connection closed")
    }

    /// CONNECT as `client_id` and expect a successful CONNACK.
    async fn connect(&mut self, client_id: &str) {
        self.send(connect(self.version, client_id)).await;
        match self.recv().await {
            Packet::ConnAck(ack) => assert_eq!(ack.reason_code, ReasonCode::Success),
            other => panic!("expected CONNACK, got {other:?}"),
        }
    }

    async fn subscribe(&mut self, filter: &str, qos: QoS) {
        let sub = Subscribe {
            packet_id: pid(1),
            subscriptions: vec![Subscription {
                filter: TopicFilter::new(filter).unwrap(),
                options: SubscriptionOptions {
                    qos,
                    ..Default::default()
                },
            }],
            properties: SubscribeProperties::default(),
        };
        self.send(Packet::Subscribe(sub)).await;
        match self.recv().await {
            Packet::SubAck(ack) => assert_eq!(ack.reason_codes.len(), 1),
            other => panic!("expected SUBACK, got {other:?}"),
        }
    }
}

fn connect(version: ProtocolVersion, client_id: &str) -> Packet {
    Packet::Connect(Box::new(Connect::new(version, client_id)))
}

fn pid(n: u16) -> PacketId {
    PacketId::new(n).unwrap()
}

fn publish(topic: &str, payload: impl Into<Bytes>, qos: QoS, id: u16) -> Packet {
    let mut p = Publish::new(TopicName::new(topic).unwrap(), payload);
    p.qos = qos;
    p.packet_id = (qos != QoS::AtMostOnce).then(|| pid(id));
    Packet::Publish(p)
}

#[tokio::test]
async fn connect_gets_connack_in_each_version() {
    let server = start(BrokerConfig::default()).await;
    let addr = server.tcp_addr().unwrap();
    for (i, version) in [
        ProtocolVersion::V31,
        ProtocolVersion::V311,
        ProtocolVersion::V5,
    ]
    .into_iter()
    .enumerate()
    {
        let mut peer = Peer::tcp(addr, version).await;
        peer.connect(&format!("client-{i}")).await;
        peer.send(Packet::PingReq).await;
        assert_eq!(peer.recv().await, Packet::PingResp);
    }
    stop(server).await;
}

/// A publisher and a subscriber on two sockets, one QoS at a time, both flows complete.
async fn pub_sub(qos: QoS, version: ProtocolVersion) {
    let server = start(BrokerConfig::default()).await;
    let addr = server.tcp_addr().unwrap();
    let mut sub = Peer::tcp(addr, version).await;
    sub.connect("sub").await;
    sub.subscribe("a/+", qos).await;
    let mut publisher = Peer::tcp(addr, version).await;
    publisher.connect("pub").await;

    publisher.send(publish("a/b", "hello", qos, 7)).await;
    match qos {
        QoS::AtMostOnce => {}
        QoS::AtLeastOnce => {
            assert!(matches!(publisher.recv().await, Packet::PubAck(a) if a.packet_id == pid(7)))
        }
        QoS::ExactlyOnce => {
            assert!(matches!(publisher.recv().await, Packet::PubRec(a) if a.packet_id == pid(7)));
            publisher.send(Packet::PubRel(Ack::new(pid(7)))).await;
            assert!(matches!(publisher.recv().await, Packet::PubComp(a) if a.packet_id == pid(7)));
        }
    }

    let Packet::Publish(got) = sub.recv().await else {
        panic!("expected PUBLISH");
    };
    assert_eq!(
        (got.topic.as_str(), &got.payload[..], got.qos),
        ("a/b", &b"hello"[..], qos)
    );
    match (qos, got.packet_id) {
        (QoS::AtMostOnce, None) => {}
        (QoS::AtLeastOnce, Some(id)) => sub.send(Packet::PubAck(Ack::new(id))).await,
        (QoS::ExactlyOnce, Some(id)) => {
            sub.send(Packet::PubRec(Ack::new(id))).await;
            assert!(matches!(sub.recv().await, Packet::PubRel(a) if a.packet_id == id));
            sub.send(Packet::PubComp(Ack::new(id))).await;
        }
        other => panic!("packet id {other:?} for QoS {qos:?}"),
    }
    // The flows are closed: a ping round trip shows nothing else is on its way.
    sub.send(Packet::PingReq).await;
    assert_eq!(sub.recv().await, Packet::PingResp);
    stop(server).await;
}

#[tokio::test]
async fn pub_sub_qos0() {
    pub_sub(QoS::AtMostOnce, ProtocolVersion::V311).await;
}

#[tokio::test]
async fn pub_sub_qos1() {
    pub_sub(QoS::AtLeastOnce, ProtocolVersion::V5).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pub_sub_qos2() {
    pub_sub(QoS::ExactlyOnce, ProtocolVersion::V5).await;
    pub_sub(QoS::ExactlyOnce, ProtocolVersion::V311).await;
}

#[tokio::test]
async fn large_payload_reaches_every_subscriber() {
    let server = start(BrokerConfig::default()).await;
    let addr = server.tcp_addr().unwrap();
    let mut subs = Vec::new();
    for i in 0..3 {
        let mut sub = Peer::tcp(addr, ProtocolVersion::V5).await;
        sub.connect(&format!("sub-{i}")).await;
        sub.subscribe("big", QoS::AtMostOnce).await;
        subs.push(sub);
    }
    let payload: Bytes = (0..900_000u32).map(|i| i as u8).collect::<Vec<_>>().into();
    let mut publisher = Peer::tcp(addr, ProtocolVersion::V5).await;
    publisher.connect("pub").await;
    publisher
        .send(publish("big", payload.clone(), QoS::AtMostOnce, 0))
        .await;
    for sub in &mut subs {
        let Packet::Publish(got) = sub.recv().await else {
            panic!("expected PUBLISH");
        };
        assert_eq!(got.payload, payload);
    }
    stop(server).await;
}

#[tokio::test]
async fn undecodable_bytes_close_the_connection() {
    let server = start(BrokerConfig::default()).await;
    let mut peer = Peer::tcp(server.tcp_addr().unwrap(), ProtocolVersion::V311).await;
    peer.connect("bad").await;
    // A PUBLISH whose flags ask for QoS 3.
    within("write", peer.stream.write_all(b"\x36\x05\x00\x01a\x00\x01"))
        .await
        .unwrap();
    assert_eq!(peer.next().await, None);
    stop(server).await;
}

#[tokio::test]
async fn silent_socket_is_closed_after_connect_timeout() {
    let config = BrokerConfig {
        connect_timeout: Duration::from_millis(100),
        ..BrokerConfig::default()
    };
    let server = start(config).await;
    let mut peer = Peer::tcp(server.tcp_addr().unwrap(), ProtocolVersion::V311).await;
    assert_eq!(peer.next().await, None);
    stop(server).await;
}

#[tokio::test]
async fn shutdown_sends_v5_disconnect_0x8b() {
    let server = start(BrokerConfig::default()).await;
    let addr = server.tcp_addr().unwrap();
    let mut v5 = Peer::tcp(addr, ProtocolVersion::V5).await;
    v5.connect("five").await;
    let mut v311 = Peer::tcp(addr, ProtocolVersion::V311).await;
    v311.connect("three").await;
    stop(server).await;
    match v5.recv().await {
        Packet::Disconnect(d) => assert_eq!(d.reason_code, ReasonCode::ServerShuttingDown),
        other => panic!("expected DISCONNECT, got {other:?}"),
    }
    assert_eq!(v5.next().await, None);
    // 3.1.1 has no server DISCONNECT: the socket just closes.
    assert_eq!(v311.next().await, None);
}

/// A self-signed certificate for "localhost" in a fresh directory; removed on drop.
struct TempCert {
    dir: PathBuf,
    der: rustls_pki_types::CertificateDer<'static>,
}

impl TempCert {
    fn new(name: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("mqtt-tokio-{name}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let rcgen::CertifiedKey { cert, signing_key } =
            rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
        std::fs::write(dir.join("cert.pem"), cert.pem()).unwrap();
        std::fs::write(dir.join("key.pem"), signing_key.serialize_pem()).unwrap();
        Self {
            dir,
            der: cert.der().clone(),
        }
    }

    fn config(&self) -> TlsConfig {
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
async fn tls_connection_with_a_self_signed_certificate() {
    let cert = TempCert::new("tls");
    let server = Server::new(BrokerConfig::default())
        .listen_tcp(([127, 0, 0, 1], 0).into())
        .listen_tls(([127, 0, 0, 1], 0).into(), cert.config());
    let server = within("start", server.start()).await.unwrap();
    let (tcp_addr, tls_addr) = (server.tcp_addr().unwrap(), server.tls_addr().unwrap());
    assert_ne!(tcp_addr, tls_addr);

    let mut roots = rustls::RootCertStore::empty();
    roots.add(cert.der.clone()).unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let client = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(client));
    let tcp = within("connect", TcpStream::connect(tls_addr))
        .await
        .unwrap();
    let name = rustls_pki_types::ServerName::try_from("localhost").unwrap();
    let tls = within("handshake", connector.connect(name, tcp))
        .await
        .unwrap();

    // A TLS subscriber gets a message from a plain TCP publisher, and the other way round.
    let mut secure = Peer::new(tls, ProtocolVersion::V5);
    secure.connect("secure").await;
    secure.subscribe("t/#", QoS::AtLeastOnce).await;
    let mut plain = Peer::tcp(tcp_addr, ProtocolVersion::V311).await;
    plain.connect("plain").await;
    plain.subscribe("back", QoS::AtMostOnce).await;

    let payload: Bytes = vec![0x5a; 200_000].into();
    plain
        .send(publish("t/1", payload.clone(), QoS::AtLeastOnce, 1))
        .await;
    assert!(matches!(plain.recv().await, Packet::PubAck(_)));
    let Packet::Publish(got) = secure.recv().await else {
        panic!("expected PUBLISH over TLS");
    };
    assert_eq!(got.payload, payload);
    secure
        .send(Packet::PubAck(Ack::new(got.packet_id.unwrap())))
        .await;
    secure.send(publish("back", "hi", QoS::AtMostOnce, 0)).await;
    let Packet::Publish(got) = plain.recv().await else {
        panic!("expected PUBLISH from the TLS client");
    };
    assert_eq!(&got.payload[..], b"hi");
    stop(server).await;
}

#[tokio::test]
async fn bad_tls_files_fail_start_naming_the_file() {
    let missing = TlsConfig {
        cert_path: "/nonexistent/cert.pem".into(),
        key_path: "/nonexistent/key.pem".into(),
    };
    let server =
        Server::new(BrokerConfig::default()).listen_tls(([127, 0, 0, 1], 0).into(), missing);
    let err = within("start", server.start()).await.unwrap_err();
    assert!(err.to_string().contains("/nonexistent/cert.pem"), "{err}");
}
