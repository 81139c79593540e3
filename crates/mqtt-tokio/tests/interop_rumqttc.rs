//! Interop with a client nobody here wrote: rumqttc 0.25, its 3.1.1 client (`rumqttc::AsyncClient`)
//! and its 5.0 client (`rumqttc::v5::AsyncClient`), against the tokio broker on 127.0.0.1:0.
//!
//! Each behaviour is written once and run in both versions: QoS 0, 1 and 2 (payloads arrive and
//! both acknowledgement flows complete), retained messages (set, late subscriber, clear), wills
//! (sent when the socket drops, not after DISCONNECT), session resume (messages queued while
//! offline), shared subscriptions (each message to exactly one member), and in 5.0 publish
//! properties and a topic alias from the client.
//!
//! Each rumqttc event loop runs on its own task and forwards its events, reduced to [`Ev`], to
//! the test; every wait is bounded by [`WAIT`] and nothing sleeps a fixed time. A client "dies"
//! by aborting that task: the event loop and its socket are dropped without DISCONNECT.

use std::collections::VecDeque;
use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use mqtt_core::broker::BrokerConfig;
use mqtt_tokio::broker::{RunningServer, Server};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio::time::timeout;

/// Every wait in these tests ends by this.
const WAIT: Duration = Duration::from_secs(10);

async fn within<T>(what: &str, f: impl Future<Output = T>) -> T {
    timeout(WAIT, f)
        .await
        .unwrap_or_else(|_| panic!("timed out: {what}"))
}

async fn start() -> RunningServer {
    let server = Server::new(BrokerConfig::default()).listen_tcp(([127, 0, 0, 1], 0).into());
    within("start", server.start()).await.unwrap()
}

async fn stop(server: RunningServer) {
    within("shutdown", server.shutdown()).await.unwrap();
}

/// Which rumqttc client speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Version {
    /// `rumqttc::AsyncClient`: MQTT 3.1.1.
    V311,
    /// `rumqttc::v5::AsyncClient`: MQTT 5.0.
    V5,
}

impl Version {
    /// A name to keep client ids and topics of the two versions apart.
    fn tag(self) -> &'static str {
        match self {
            Self::V311 => "v311",
            Self::V5 => "v5",
        }
    }
}

/// What a peer connects with.
#[derive(Debug, Clone)]
struct Opts {
    id: String,
    /// 3.1.1 Clean Session / 5.0 Clean Start.
    clean: bool,
    /// 5.0 Session Expiry Interval (3.1.1 keeps a non-clean session without one).
    session_expiry: Option<u32>,
    /// Will topic, payload and QoS.
    will: Option<(String, &'static str, u8)>,
}

impl Opts {
    fn new(id: impl Into<String>) -> Self {
        Self {
            id: id.into(),
            clean: true,
            session_expiry: None,
            will: None,
        }
    }
}

/// A PUBLISH as either client received it.
#[derive(Debug, Clone, PartialEq)]
struct Msg {
    topic: String,
    payload: Bytes,
    qos: u8,
    retain: bool,
    /// 5.0 only; `None` in 3.1.1.
    props: Option<rumqttc::v5::mqttbytes::v5::PublishProperties>,
}

/// One event of either client's loop, reduced to what these tests look at.
#[derive(Debug)]
enum Ev {
    ConnAck {
        session_present: bool,
    },
    /// The granted QoS of each filter, `None` for a refused one.
    SubAck(Vec<Option<u8>>),
    Publish(Msg),
    /// PUBACK, PUBREC, PUBCOMP from the broker, with the 5.0 reason code (`Success` in 3.1.1).
    PubAck(String),
    PubRec(String),
    PubComp(String),
    PubRel,
    SentPublish,
    SentPubAck,
    SentPubComp,
    SentDisconnect,
    Other,
    /// The loop failed and stopped (connection refused, lost, protocol error).
    Failed(String),
}

/// Either version's command handle.
#[derive(Clone)]
enum Client {
    V311(rumqttc::AsyncClient),
    V5(rumqttc::v5::AsyncClient),
}

/// The client calls only queue a request for the event loop (a bounded channel): each is still
/// bounded by [`WAIT`].
impl Client {
    async fn publish(&self, topic: &str, qos: u8, retain: bool, payload: Bytes) {
        let sent = within("queue a PUBLISH", async {
            match self {
                Self::V311(c) => c
                    .publish(topic, qos_v4(qos), retain, payload.to_vec())
                    .await
                    .map_err(|e| e.to_string()),
                Self::V5(c) => c
                    .publish(topic, qos_v5(qos), retain, payload)
                    .await
                    .map_err(|e| e.to_string()),
            }
        })
        .await;
        sent.unwrap_or_else(|e| panic!("publish to {topic}: {e}"));
    }

    async fn subscribe(&self, filter: &str, qos: u8) {
        let sent = within("queue a SUBSCRIBE", async {
            match self {
                Self::V311(c) => c
                    .subscribe(filter, qos_v4(qos))
                    .await
                    .map_err(|e| e.to_string()),
                Self::V5(c) => c
                    .subscribe(filter, qos_v5(qos))
                    .await
                    .map_err(|e| e.to_string()),
            }
        })
        .await;
        sent.unwrap_or_else(|e| panic!("subscribe to {filter}: {e}"));
    }

    async fn disconnect(&self) {
        let sent = within("queue a DISCONNECT", async {
            match self {
                Self::V311(c) => c.disconnect().await.map_err(|e| e.to_string()),
                Self::V5(c) => c.disconnect().await.map_err(|e| e.to_string()),
            }
        })
        .await;
        sent.unwrap_or_else(|e| panic!("disconnect: {e}"));
    }

    fn v5(&self) -> &rumqttc::v5::AsyncClient {
        match self {
            Self::V5(c) => c,
            Self::V311(_) => panic!("a 5.0 client was expected"),
        }
    }
}

/// A connected rumqttc client: its command handle and the events of its loop's task.
struct Peer {
    client: Client,
    session_present: bool,
    events: mpsc::UnboundedReceiver<Ev>,
    /// Messages that arrived while waiting for something else, for [`Peer::recv`].
    stash: VecDeque<Msg>,
    task: JoinHandle<()>,
}

impl Peer {
    /// Connects and waits for a successful CONNACK.
    async fn connect(version: Version, addr: SocketAddr, opts: Opts) -> Self {
        let (tx, events) = mpsc::unbounded_channel();
        let host = addr.ip().to_string();
        let (client, task) = match version {
            Version::V311 => {
                let mut o = rumqttc::MqttOptions::new(&opts.id, host, addr.port());
                o.set_clean_session(opts.clean);
                if let Some((topic, payload, qos)) = &opts.will {
                    o.set_last_will(rumqttc::LastWill::new(topic, *payload, qos_v4(*qos), false));
                }
                let (client, eventloop) = rumqttc::AsyncClient::new(o, 64);
                (Client::V311(client), tokio::spawn(drive_v4(eventloop, tx)))
            }
            Version::V5 => {
                let mut o = rumqttc::v5::MqttOptions::new(&opts.id, host, addr.port());
                o.set_clean_start(opts.clean);
                o.set_session_expiry_interval(opts.session_expiry);
                if let Some((topic, payload, qos)) = &opts.will {
                    o.set_last_will(rumqttc::v5::mqttbytes::v5::LastWill::new(
                        topic,
                        *payload,
                        qos_v5(*qos),
                        false,
                        None,
                    ));
                }
                let (client, eventloop) = rumqttc::v5::AsyncClient::new(o, 64);
                (Client::V5(client), tokio::spawn(drive_v5(eventloop, tx)))
            }
        };
        let mut peer = Self {
            client,
            session_present: false,
            events,
            stash: VecDeque::new(),
            task,
        };
        peer.session_present = peer
            .expect(&format!("CONNACK for {}", opts.id), |ev| match ev {
                Ev::ConnAck { session_present } => Some(*session_present),
                _ => None,
            })
            .await;
        peer
    }

    /// Waits for the first event `pick` accepts. Messages received meanwhile are kept for
    /// [`Peer::recv`]; a failed connection panics.
    async fn expect<T>(&mut self, what: &str, mut pick: impl FnMut(&Ev) -> Option<T>) -> T {
        let events = &mut self.events;
        let stash = &mut self.stash;
        within(what, async {
            loop {
                let ev = events
                    .recv()
                    .await
                    .unwrap_or_else(|| panic!("{what}: the event loop ended"));
                if let Some(t) = pick(&ev) {
                    return t;
                }
                match ev {
                    Ev::Publish(m) => stash.push_back(m),
                    Ev::Failed(e) => panic!("{what}: the connection failed: {e}"),
                    _ => {}
                }
            }
        })
        .await
    }

    /// Subscribes to one filter and returns the QoS granted in SUBACK.
    async fn subscribe(&mut self, filter: &str, qos: u8) -> u8 {
        self.client.subscribe(filter, qos).await;
        let granted = self
            .expect(&format!("SUBACK for {filter}"), |ev| match ev {
                Ev::SubAck(codes) => Some(codes.clone()),
                _ => None,
            })
            .await;
        assert_eq!(granted.len(), 1, "SUBACK for {filter}: {granted:?}");
        granted[0].unwrap_or_else(|| panic!("SUBACK for {filter}: refused"))
    }

    /// Publishes and waits for the flow to complete: written (QoS 0), PUBACK (QoS 1), or
    /// PUBREC then PUBCOMP (QoS 2), each with a success reason code.
    async fn publish(&mut self, topic: &str, qos: u8, retain: bool, payload: impl Into<Bytes>) {
        self.client
            .publish(topic, qos, retain, payload.into())
            .await;
        self.complete(topic, qos).await;
    }

    async fn complete(&mut self, topic: &str, qos: u8) {
        let ok = |r: &str| matches!(r, "Success" | "NoMatchingSubscribers");
        match qos {
            0 => {
                self.expect(&format!("QoS 0 PUBLISH to {topic} written"), |ev| {
                    matches!(ev, Ev::SentPublish).then_some(())
                })
                .await
            }
            1 => {
                let r = self
                    .expect(&format!("PUBACK for {topic}"), |ev| match ev {
                        Ev::PubAck(r) => Some(r.clone()),
                        _ => None,
                    })
                    .await;
                assert!(ok(&r), "PUBACK for {topic}: {r}");
            }
            _ => {
                let r = self
                    .expect(&format!("PUBREC for {topic}"), |ev| match ev {
                        Ev::PubRec(r) => Some(r.clone()),
                        _ => None,
                    })
                    .await;
                assert!(ok(&r), "PUBREC for {topic}: {r}");
                let r = self
                    .expect(&format!("PUBCOMP for {topic}"), |ev| match ev {
                        Ev::PubComp(r) => Some(r.clone()),
                        _ => None,
                    })
                    .await;
                assert_eq!(r, "Success", "PUBCOMP for {topic}");
            }
        }
    }

    /// The next message received.
    async fn recv(&mut self) -> Msg {
        if let Some(m) = self.stash.pop_front() {
            return m;
        }
        self.expect("a PUBLISH", |ev| match ev {
            Ev::Publish(m) => Some(m.clone()),
            _ => None,
        })
        .await
    }

    /// Sends DISCONNECT and waits until it is written and the loop's task has ended.
    async fn disconnect(mut self) {
        self.client.disconnect().await;
        self.expect("DISCONNECT written", |ev| {
            matches!(ev, Ev::SentDisconnect).then_some(())
        })
        .await;
        within("the event loop to end", self.task).await.unwrap();
    }

    /// Drops the connection without DISCONNECT: the loop's task is aborted, which drops the
    /// event loop and closes its socket.
    async fn kill(self) {
        self.task.abort();
        let joined = within("the aborted event loop to end", self.task).await;
        assert!(joined.unwrap_err().is_cancelled());
    }
}

/// Forwards a 3.1.1 event loop's events until it fails or has written DISCONNECT.
async fn drive_v4(mut eventloop: rumqttc::EventLoop, tx: mpsc::UnboundedSender<Ev>) {
    use rumqttc::{Event, Packet, SubscribeReasonCode};
    loop {
        let ev = match eventloop.poll().await {
            Ok(Event::Incoming(packet)) => match packet {
                Packet::ConnAck(ack) => Ev::ConnAck {
                    session_present: ack.session_present,
                },
                Packet::SubAck(ack) => Ev::SubAck(
                    ack.return_codes
                        .iter()
                        .map(|c| match c {
                            SubscribeReasonCode::Success(q) => Some(*q as u8),
                            SubscribeReasonCode::Failure => None,
                        })
                        .collect(),
                ),
                Packet::Publish(p) => Ev::Publish(Msg {
                    topic: p.topic,
                    payload: p.payload,
                    qos: p.qos as u8,
                    retain: p.retain,
                    props: None,
                }),
                Packet::PubAck(_) => Ev::PubAck("Success".into()),
                Packet::PubRec(_) => Ev::PubRec("Success".into()),
                Packet::PubComp(_) => Ev::PubComp("Success".into()),
                Packet::PubRel(_) => Ev::PubRel,
                _ => Ev::Other,
            },
            Ok(Event::Outgoing(out)) => outgoing(out),
            Err(e) => Ev::Failed(e.to_string()),
        };
        let last = matches!(ev, Ev::Failed(_) | Ev::SentDisconnect);
        if tx.send(ev).is_err() || last {
            return;
        }
    }
}

/// Forwards a 5.0 event loop's events until it fails or has written DISCONNECT.
async fn drive_v5(mut eventloop: rumqttc::v5::EventLoop, tx: mpsc::UnboundedSender<Ev>) {
    use rumqttc::v5::mqttbytes::v5::{Packet, SubscribeReasonCode};
    use rumqttc::v5::Event;
    loop {
        let ev = match eventloop.poll().await {
            Ok(Event::Incoming(packet)) => match packet {
                Packet::ConnAck(ack) => Ev::ConnAck {
                    session_present: ack.session_present,
                },
                Packet::SubAck(ack) => Ev::SubAck(
                    ack.return_codes
                        .iter()
                        .map(|c| match c {
                            SubscribeReasonCode::Success(q) => Some(*q as u8),
                            _ => None,
                        })
                        .collect(),
                ),
                Packet::Publish(p) => Ev::Publish(Msg {
                    topic: String::from_utf8_lossy(&p.topic).into_owned(),
                    payload: p.payload,
                    qos: p.qos as u8,
                    retain: p.retain,
                    props: p.properties,
                }),
                Packet::PubAck(a) => Ev::PubAck(format!("{:?}", a.reason)),
                Packet::PubRec(a) => Ev::PubRec(format!("{:?}", a.reason)),
                Packet::PubComp(a) => Ev::PubComp(format!("{:?}", a.reason)),
                Packet::PubRel(_) => Ev::PubRel,
                _ => Ev::Other,
            },
            Ok(Event::Outgoing(out)) => outgoing(out),
            Err(e) => Ev::Failed(e.to_string()),
        };
        let last = matches!(ev, Ev::Failed(_) | Ev::SentDisconnect);
        if tx.send(ev).is_err() || last {
            return;
        }
    }
}

/// Both clients report what they wrote with the same enum.
fn outgoing(out: rumqttc::Outgoing) -> Ev {
    use rumqttc::Outgoing;
    match out {
        Outgoing::Publish(_) => Ev::SentPublish,
        Outgoing::PubAck(_) => Ev::SentPubAck,
        Outgoing::PubComp(_) => Ev::SentPubComp,
        Outgoing::Disconnect => Ev::SentDisconnect,
        _ => Ev::Other,
    }
}

fn qos_v4(qos: u8) -> rumqttc::QoS {
    match qos {
        0 => rumqttc::QoS::AtMostOnce,
        1 => rumqttc::QoS::AtLeastOnce,
        _ => rumqttc::QoS::ExactlyOnce,
    }
}

fn qos_v5(qos: u8) -> rumqttc::v5::mqttbytes::QoS {
    use rumqttc::v5::mqttbytes::QoS;
    match qos {
        0 => QoS::AtMostOnce,
        1 => QoS::AtLeastOnce,
        _ => QoS::ExactlyOnce,
    }
}

// ---- behaviours, each run in both versions ----

/// One publisher, one subscriber, at each QoS: the payload arrives at the QoS subscribed, and
/// both the publisher's flow and the subscriber's acknowledgement complete.
async fn qos_pub_sub(version: Version) {
    let server = start().await;
    let addr = server.tcp_addr().unwrap();
    let v = version.tag();
    let mut sub = Peer::connect(version, addr, Opts::new(format!("qos-sub-{v}"))).await;
    let mut publisher = Peer::connect(version, addr, Opts::new(format!("qos-pub-{v}"))).await;
    for qos in 0..=2u8 {
        let topic = format!("qos/{v}/{qos}");
        assert_eq!(sub.subscribe(&topic, qos).await, qos);
        let payload = format!("payload at QoS {qos}");
        publisher.publish(&topic, qos, false, payload.clone()).await;

        let got = sub.recv().await;
        assert_eq!(
            (got.topic.as_str(), &got.payload[..], got.qos, got.retain),
            (topic.as_str(), payload.as_bytes(), qos, false)
        );
        // The subscriber's side of the flow: PUBACK (QoS 1), PUBREC/PUBREL/PUBCOMP (QoS 2).
        match qos {
            1 => {
                sub.expect("PUBACK written", |ev| {
                    matches!(ev, Ev::SentPubAck).then_some(())
                })
                .await
            }
            2 => {
                sub.expect("PUBREL", |ev| matches!(ev, Ev::PubRel).then_some(()))
                    .await;
                sub.expect("PUBCOMP written", |ev| {
                    matches!(ev, Ev::SentPubComp).then_some(())
                })
                .await;
            }
            _ => {}
        }
    }
    // A QoS 2 message to a QoS 1 subscription arrives at QoS 1.
    let topic = format!("qos/{v}/1");
    publisher.publish(&topic, 2, false, "downgraded").await;
    let got = sub.recv().await;
    assert_eq!((&got.payload[..], got.qos), (&b"downgraded"[..], 1));

    sub.disconnect().await;
    publisher.disconnect().await;
    stop(server).await;
}

/// A retained message reaches a later subscriber with the retain flag; an established
/// subscriber gets it without; an empty retained publish clears it.
async fn retained(version: Version) {
    let server = start().await;
    let addr = server.tcp_addr().unwrap();
    let v = version.tag();
    let topic = format!("retain/{v}/t");
    let filter = format!("retain/{v}/#");
    let mut publisher = Peer::connect(version, addr, Opts::new(format!("ret-pub-{v}"))).await;
    publisher.publish(&topic, 1, true, "kept").await;

    let mut late = Peer::connect(version, addr, Opts::new(format!("ret-late-{v}"))).await;
    late.subscribe(&filter, 1).await;
    let got = late.recv().await;
    assert_eq!(
        (got.topic.as_str(), &got.payload[..], got.retain),
        (topic.as_str(), &b"kept"[..], true),
        "a new subscription gets the retained message with RETAIN set"
    );

    // [MQTT-3.3.1-9] (5.0: Retain As Published is off): live delivery clears RETAIN.
    publisher.publish(&topic, 1, true, "replaced").await;
    let got = late.recv().await;
    assert_eq!((&got.payload[..], got.retain), (&b"replaced"[..], false));

    // Clearing: the empty retained message is delivered as usual, then nothing is kept.
    publisher.publish(&topic, 1, true, Bytes::new()).await;
    let got = late.recv().await;
    assert_eq!((got.topic.as_str(), got.payload.len()), (topic.as_str(), 0));

    let mut after = Peer::connect(version, addr, Opts::new(format!("ret-after-{v}"))).await;
    after.subscribe(&filter, 1).await;
    // Retained messages are sent on subscribing, before anything published later: the first
    // message seen must be this live one.
    publisher.publish(&topic, 1, false, "live").await;
    let got = after.recv().await;
    assert_eq!(
        (&got.payload[..], got.retain),
        (&b"live"[..], false),
        "the retained message was cleared"
    );

    for peer in [publisher, late, after] {
        peer.disconnect().await;
    }
    stop(server).await;
}

/// A client whose socket closes without DISCONNECT has its will published; one that sends
/// DISCONNECT does not [MQTT-3.14.4-3].
async fn will(version: Version) {
    let server = start().await;
    let addr = server.tcp_addr().unwrap();
    let v = version.tag();
    let topic = format!("will/{v}");
    let mut watcher = Peer::connect(version, addr, Opts::new(format!("will-watch-{v}"))).await;
    watcher.subscribe(&format!("{topic}/#"), 1).await;

    let mut opts = Opts::new(format!("will-victim-{v}"));
    opts.will = Some((format!("{topic}/gone"), "victim gone", 1));
    let victim = Peer::connect(version, addr, opts).await;
    victim.kill().await;
    let got = watcher.recv().await;
    assert_eq!(
        (got.topic.as_str(), &got.payload[..], got.qos),
        (format!("{topic}/gone").as_str(), &b"victim gone"[..], 1)
    );

    let mut opts = Opts::new(format!("will-polite-{v}"));
    opts.will = Some((format!("{topic}/polite"), "should not be sent", 1));
    Peer::connect(version, addr, opts).await.disconnect().await;
    let mut publisher = Peer::connect(version, addr, Opts::new(format!("will-pub-{v}"))).await;
    publisher
        .publish(&format!("{topic}/marker"), 1, false, "after")
        .await;
    let got = watcher.recv().await;
    assert_eq!(
        got.topic,
        format!("{topic}/marker"),
        "no will after a DISCONNECT"
    );

    watcher.disconnect().await;
    publisher.disconnect().await;
    stop(server).await;
}

/// A kept session: subscribe at QoS 1, disconnect, messages are published meanwhile; the
/// reconnect is told the session is present and receives them in order.
async fn session_resume(version: Version) {
    let server = start().await;
    let addr = server.tcp_addr().unwrap();
    let v = version.tag();
    let topic = format!("resume/{v}");
    let mut opts = Opts::new(format!("resume-{v}"));
    opts.clean = false;
    opts.session_expiry = (version == Version::V5).then_some(300);

    let mut sub = Peer::connect(version, addr, opts.clone()).await;
    assert!(!sub.session_present, "a new session on a fresh broker");
    sub.subscribe(&topic, 1).await;
    sub.disconnect().await;

    let mut publisher = Peer::connect(version, addr, Opts::new(format!("resume-pub-{v}"))).await;
    for payload in ["offline 1", "offline 2", "offline 3"] {
        publisher.publish(&topic, 1, false, payload).await;
    }

    let mut sub = Peer::connect(version, addr, opts).await;
    assert!(sub.session_present, "CONNACK session present");
    for payload in ["offline 1", "offline 2", "offline 3"] {
        let got = sub.recv().await;
        assert_eq!(
            (got.topic.as_str(), &got.payload[..], got.qos),
            (topic.as_str(), payload.as_bytes(), 1)
        );
    }
    // The resumed session still holds the subscription for new messages.
    publisher.publish(&topic, 1, false, "online").await;
    assert_eq!(&sub.recv().await.payload[..], b"online");

    sub.disconnect().await;
    publisher.disconnect().await;
    stop(server).await;
}

/// Two members of `$share/g/...`: each of N messages reaches exactly one of them.
async fn shared_subscription(version: Version) {
    const N: usize = 20;
    let server = start().await;
    let addr = server.tcp_addr().unwrap();
    let v = version.tag();
    let topic = format!("shared/{v}/t");
    let end = format!("shared/{v}/end");
    let mut members = Vec::new();
    for i in 0..2 {
        let mut m = Peer::connect(version, addr, Opts::new(format!("share-{v}-{i}"))).await;
        m.subscribe(&format!("$share/g/{topic}"), 1).await;
        // Not shared: both hear the end marker, published after the N messages.
        m.subscribe(&end, 1).await;
        members.push(m);
    }
    let mut publisher = Peer::connect(version, addr, Opts::new(format!("share-pub-{v}"))).await;
    for i in 0..N {
        publisher.publish(&topic, 1, false, i.to_string()).await;
    }
    publisher.publish(&end, 1, false, "end").await;

    // Per connection, messages arrive in the order they were routed: once a member has the
    // marker it has every shared message it was given.
    let mut seen = Vec::new();
    let mut per_member = Vec::new();
    for m in &mut members {
        let mut count = 0;
        loop {
            let got = m.recv().await;
            if got.topic == end {
                break;
            }
            assert_eq!(got.topic, topic);
            seen.push(String::from_utf8(got.payload.to_vec()).unwrap());
            count += 1;
        }
        per_member.push(count);
    }
    seen.sort_by_key(|s| s.parse::<usize>().unwrap());
    let expected: Vec<String> = (0..N).map(|i| i.to_string()).collect();
    assert_eq!(seen, expected, "each message exactly once ({per_member:?})");

    for m in members {
        m.disconnect().await;
    }
    publisher.disconnect().await;
    stop(server).await;
}

#[tokio::test]
async fn qos_0_1_2_v311() {
    qos_pub_sub(Version::V311).await;
}

#[tokio::test]
async fn qos_0_1_2_v5() {
    qos_pub_sub(Version::V5).await;
}

#[tokio::test]
async fn retained_v311() {
    retained(Version::V311).await;
}

#[tokio::test]
async fn retained_v5() {
    retained(Version::V5).await;
}

#[tokio::test]
async fn will_v311() {
    will(Version::V311).await;
}

#[tokio::test]
async fn will_v5() {
    will(Version::V5).await;
}

#[tokio::test]
async fn session_resume_v311() {
    session_resume(Version::V311).await;
}

#[tokio::test]
async fn session_resume_v5() {
    session_resume(Version::V5).await;
}

#[tokio::test]
async fn shared_subscription_v311() {
    shared_subscription(Version::V311).await;
}

#[tokio::test]
async fn shared_subscription_v5() {
    shared_subscription(Version::V5).await;
}

/// 5.0 only: publish properties reach the subscriber, and a topic alias set by the publishing
/// client is resolved by the broker (the subscriber, which allows no aliases, sees the topic).
#[tokio::test]
async fn publish_properties_and_topic_alias_v5() {
    use rumqttc::v5::mqttbytes::v5::PublishProperties;

    let server = start().await;
    let addr = server.tcp_addr().unwrap();
    let mut sub = Peer::connect(Version::V5, addr, Opts::new("props-sub")).await;
    sub.subscribe("props/#", 1).await;
    let mut publisher = Peer::connect(Version::V5, addr, Opts::new("props-pub")).await;

    let props = PublishProperties {
        payload_format_indicator: Some(1),
        message_expiry_interval: Some(60),
        response_topic: Some("props/reply".into()),
        correlation_data: Some(Bytes::from_static(b"\x00corr\xff")),
        user_properties: vec![("k".into(), "v".into()), ("k".into(), "v2".into())],
        content_type: Some("text/plain".into()),
        ..Default::default()
    };
    let client = publisher.client.v5().clone();
    within(
        "queue a PUBLISH",
        client.publish_with_properties("props/t", qos_v5(1), false, "with properties", props),
    )
    .await
    .unwrap();
    publisher.complete("props/t", 1).await;
    let got = sub.recv().await;
    assert_eq!(&got.payload[..], b"with properties");
    let p = got.props.expect("properties");
    assert_eq!(p.payload_format_indicator, Some(1));
    let expiry = p.message_expiry_interval.expect("message expiry interval");
    assert!((58..=60).contains(&expiry), "remaining expiry {expiry}");
    assert_eq!(p.response_topic.as_deref(), Some("props/reply"));
    assert_eq!(p.correlation_data.as_deref(), Some(&b"\x00corr\xff"[..]));
    assert_eq!(
        p.user_properties,
        vec![("k".into(), "v".into()), ("k".into(), "v2".into())],
        "user properties in order, duplicates kept"
    );
    assert_eq!(p.content_type.as_deref(), Some("text/plain"));
    assert_eq!(p.topic_alias, None, "the subscriber allowed no topic alias");

    // Topic alias from the client: set with the topic, then used with an empty topic.
    for (topic, payload) in [("props/aliased", "first"), ("", "second")] {
        let props = PublishProperties {
            topic_alias: Some(1),
            ..Default::default()
        };
        within(
            "queue a PUBLISH",
            client.publish_with_properties(topic, qos_v5(1), false, payload, props),
        )
        .await
        .unwrap();
        publisher.complete("props/aliased (alias 1)", 1).await;
        let got = sub.recv().await;
        assert_eq!(
            (got.topic.as_str(), &got.payload[..]),
            ("props/aliased", payload.as_bytes())
        );
    }

    sub.disconnect().await;
    publisher.disconnect().await;
    stop(server).await;
}
