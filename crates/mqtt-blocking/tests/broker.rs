//! The blocking broker over real sockets on 127.0.0.1:0: rumqttc's blocking client (a peer
//! nobody here wrote) for QoS 0/1/2 and retained messages, and a raw peer speaking
//! `mqtt_core::codec` for large payloads, undecodable bytes, and shutdown.
//!
//! Every wait is bounded by [`WAIT`]; nothing sleeps a fixed time to wait for something.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use mqtt_blocking::broker::{RunningServer, Server};
use mqtt_core::broker::BrokerConfig;
use mqtt_core::codec::{decode, encode, DecodeLimits};
use mqtt_core::packet::{
    Connect, Subscribe, SubscribeProperties, Subscription, SubscriptionOptions,
};
use mqtt_core::topic::{TopicFilter, TopicName};
use mqtt_core::{Packet, PacketId, ProtocolVersion, Publish, ReasonCode};
use rumqttc::{Event, MqttOptions, Packet as Rp};

/// Every wait in these tests ends by this.
const WAIT: Duration = Duration::from_secs(10);

fn start() -> RunningServer {
    Server::new(BrokerConfig::default())
        .listen_tcp(([127, 0, 0, 1], 0).into())
        .start()
        .unwrap()
}

/// Stops `server`, which must not take much longer than its 2 s grace.
fn stop(server: RunningServer) {
    let began = Instant::now();
    server.shutdown().unwrap();
    assert!(
        began.elapsed() < WAIT,
        "shutdown took {:?}",
        began.elapsed()
    );
}

/// A rumqttc blocking client (MQTT 3.1.1) whose event loop runs on a thread of its own and
/// forwards every event; the thread ends at the first error or when the client is dropped.
struct Rumqtt {
    client: rumqttc::Client,
    events: mpsc::Receiver<Result<Event, rumqttc::ConnectionError>>,
}

impl Rumqtt {
    fn connect(addr: SocketAddr, id: &str) -> Self {
        let mut options = MqttOptions::new(id, addr.ip().to_string(), addr.port());
        options.set_keep_alive(Duration::from_secs(30));
        let (client, mut connection) = rumqttc::Client::new(options, 16);
        let (tx, events) = mpsc::channel();
        thread::spawn(move || {
            for event in connection.iter() {
                let failed = event.is_err();
                if tx.send(event).is_err() || failed {
                    return;
                }
            }
        });
        let peer = Self { client, events };
        peer.expect("CONNACK", |p| matches!(p, Rp::ConnAck(_)));
        peer
    }

    /// The next incoming packet `want` accepts, skipping others; panics on an error or after
    /// [`WAIT`].
    fn expect(&self, what: &str, mut want: impl FnMut(&Rp) -> bool) -> Rp {
        let deadline = Instant::now() + WAIT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.events.recv_timeout(left) {
                Ok(Ok(Event::Incoming(p))) if want(&p) => return p,
                Ok(Ok(_)) => {}
                other => panic!("waiting for {what}: {other:?}"),
            }
        }
    }

    fn subscribe(&self, filter: &str, qos: rumqttc::QoS) {
        self.client.subscribe(filter, qos).unwrap();
        self.expect("SUBACK", |p| matches!(p, Rp::SubAck(_)));
    }

    fn publish(&self, topic: &str, qos: rumqttc::QoS, retain: bool, payload: &str) {
        self.client
            .publish(topic, qos, retain, payload.as_bytes().to_vec())
            .unwrap();
        match qos {
            rumqttc::QoS::AtMostOnce => {}
            rumqttc::QoS::AtLeastOnce => {
                self.expect("PUBACK", |p| matches!(p, Rp::PubAck(_)));
            }
            rumqttc::QoS::ExactlyOnce => {
                self.expect("PUBCOMP", |p| matches!(p, Rp::PubComp(_)));
            }
        }
    }

    fn message(&self) -> rumqttc::Publish {
        match self.expect("PUBLISH", |p| matches!(p, Rp::Publish(_))) {
            Rp::Publish(p) => p,
            _ => unreachable!(),
        }
    }
}

#[test]
fn rumqttc_qos_0_1_2_round_trip() {
    let server = start();
    let addr = server.tcp_addr().unwrap();
    let sub = Rumqtt::connect(addr, "sub");
    sub.subscribe("t/#", rumqttc::QoS::ExactlyOnce);
    let publisher = Rumqtt::connect(addr, "pub");
    for qos in [
        rumqttc::QoS::AtMostOnce,
        rumqttc::QoS::AtLeastOnce,
        rumqttc::QoS::ExactlyOnce,
    ] {
        let payload = format!("qos {}", qos as u8);
        publisher.publish("t/x", qos, false, &payload);
        let got = sub.message();
        assert_eq!(
            (got.topic.as_str(), &got.payload[..], got.qos),
            ("t/x", payload.as_bytes(), qos)
        );
    }
    drop((sub, publisher));
    stop(server);
}

#[test]
fn retained_messages_reach_late_subscribers_until_cleared() {
    let server = start();
    let addr = server.tcp_addr().unwrap();
    let publisher = Rumqtt::connect(addr, "retainer");
    publisher.publish("r/1", rumqttc::QoS::AtLeastOnce, true, "kept");

    let late = Rumqtt::connect(addr, "late");
    late.subscribe("r/#", rumqttc::QoS::AtLeastOnce);
    let got = late.message();
    assert_eq!(
        (got.topic.as_str(), &got.payload[..]),
        ("r/1", &b"kept"[..])
    );
    assert!(got.retain);

    // An empty retained payload clears it: the next subscriber's first message is a marker.
    publisher.publish("r/1", rumqttc::QoS::AtLeastOnce, true, "");
    let later = Rumqtt::connect(addr, "later");
    later.subscribe("r/#", rumqttc::QoS::AtLeastOnce);
    publisher.publish("r/marker", rumqttc::QoS::AtLeastOnce, false, "m");
    let got = later.message();
    assert_eq!((got.topic.as_str(), got.retain), ("r/marker", false));
    drop((publisher, late, later));
    stop(server);
}

/// A raw MQTT peer over a std socket.
struct Peer {
    stream: TcpStream,
    rx: BytesMut,
    version: ProtocolVersion,
}

impl Peer {
    fn connect(addr: SocketAddr, version: ProtocolVersion, client_id: &str) -> Self {
        let stream = TcpStream::connect(addr).unwrap();
        stream.set_read_timeout(Some(WAIT)).unwrap();
        let mut peer = Self {
            stream,
            rx: BytesMut::new(),
            version,
        };
        peer.send(Packet::Connect(Box::new(Connect::new(version, client_id))));
        match peer.recv() {
            Packet::ConnAck(ack) => assert_eq!(ack.reason_code, ReasonCode::Success),
            other => panic!("expected CONNACK, got {other:?}"),
        }
        peer
    }

    fn send(&mut self, packet: Packet) {
        let mut buf = BytesMut::new();
        encode(&packet, self.version, &mut buf).unwrap();
        self.stream.write_all(&buf).unwrap();
    }

    /// The next packet, or `None` at end of stream (a read timeout fails the test).
    fn next(&mut self) -> Option<Packet> {
        let mut chunk = [0; 16 * 1024];
        loop {
            if let Some(p) = decode(&mut self.rx, self.version, &DecodeLimits::default()).unwrap() {
                return Some(p);
            }
            match self.stream.read(&mut chunk) {
                Ok(0) => return None,
                Ok(n) => self.rx.extend_from_slice(&chunk[..n]),
                Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return None,
                Err(e) => panic!("read: {e}"),
            }
        }
    }

    fn recv(&mut self) -> Packet {
        self.next().expect("connection closed")
    }

    fn subscribe(&mut self, filter: &str) {
        let sub = Subscribe {
            packet_id: PacketId::new(1).unwrap(),
            subscriptions: vec![Subscription {
                filter: TopicFilter::new(filter).unwrap(),
                options: SubscriptionOptions::default(),
            }],
            properties: SubscribeProperties::default(),
        };
        self.send(Packet::Subscribe(sub));
        assert!(matches!(self.recv(), Packet::SubAck(_)));
    }
}

#[test]
fn large_payload_reaches_every_subscriber() {
    let server = start();
    let addr = server.tcp_addr().unwrap();
    let mut subs: Vec<Peer> = (0..3)
        .map(|i| {
            let mut sub = Peer::connect(addr, ProtocolVersion::V5, &format!("sub-{i}"));
            sub.subscribe("big");
            sub
        })
        .collect();
    let payload: Bytes = (0..900_000u32).map(|i| i as u8).collect::<Vec<_>>().into();
    let mut publisher = Peer::connect(addr, ProtocolVersion::V5, "pub");
    let publish = Publish::new(TopicName::new("big").unwrap(), payload.clone());
    publisher.send(Packet::Publish(publish));
    for sub in &mut subs {
        let Packet::Publish(got) = sub.recv() else {
            panic!("expected PUBLISH");
        };
        assert_eq!(got.payload, payload);
    }
    stop(server);
}

#[test]
fn undecodable_bytes_close_the_connection() {
    let server = start();
    let mut peer = Peer::connect(server.tcp_addr().unwrap(), ProtocolVersion::V311, "bad");
    // A PUBLISH whose flags ask for QoS 3.
    peer.stream.write_all(b"\x36\x05\x00\x01a\x00\x01").unwrap();
    assert_eq!(peer.next(), None);
    stop(server);
}

#[test]
fn shutdown_disconnects_clients_and_closes_listeners() {
    let server = start();
    let addr = server.tcp_addr().unwrap();
    let mut v5 = Peer::connect(addr, ProtocolVersion::V5, "five");
    let mut v311 = Peer::connect(addr, ProtocolVersion::V311, "three");
    let rumqtt = Rumqtt::connect(addr, "rumqtt");
    stop(server);
    match v5.recv() {
        Packet::Disconnect(d) => assert_eq!(d.reason_code, ReasonCode::ServerShuttingDown),
        other => panic!("expected DISCONNECT, got {other:?}"),
    }
    assert_eq!(v5.next(), None);
    assert_eq!(v311.next(), None);
    match rumqtt.events.recv_timeout(WAIT) {
        Ok(Err(_)) => {}
        other => panic!("expected the connection to end, got {other:?}"),
    }
    assert!(TcpStream::connect(addr).is_err(), "still listening");
}

#[test]
fn dropping_the_server_stops_it() {
    let server = start();
    let addr = server.tcp_addr().unwrap();
    let mut peer = Peer::connect(addr, ProtocolVersion::V5, "dropped");
    drop(server);
    match peer.recv() {
        Packet::Disconnect(d) => assert_eq!(d.reason_code, ReasonCode::ServerShuttingDown),
        other => panic!("expected DISCONNECT, got {other:?}"),
    }
    assert_eq!(peer.next(), None);
}

#[test]
fn a_burst_of_messages_arrives_whole_and_in_order() {
    let server = start();
    let addr = server.tcp_addr().unwrap();
    let mut sub = Peer::connect(addr, ProtocolVersion::V311, "burst-sub");
    sub.subscribe("burst");
    let mut publisher = Peer::connect(addr, ProtocolVersion::V311, "burst-pub");
    // Many packets in one write: many reports at once, many writes queued for the subscriber.
    let mut burst = BytesMut::new();
    for i in 0..3000u32 {
        let publish = Publish::new(TopicName::new("burst").unwrap(), i.to_string());
        encode(&Packet::Publish(publish), publisher.version, &mut burst).unwrap();
    }
    publisher.stream.write_all(&burst).unwrap();
    for i in 0..3000u32 {
        let Packet::Publish(got) = sub.recv() else {
            panic!("expected PUBLISH");
        };
        assert_eq!(got.payload, i.to_string().as_bytes());
    }
    stop(server);
}
