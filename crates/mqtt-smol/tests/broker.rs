//! The smol broker over real sockets on 127.0.0.1:0, spoken to by rumqttc 0.25 (a client
//! nobody here wrote, 3.1.1): QoS 0/1/2 round trips, retained messages, and the ways a server
//! stops (`shutdown`, `run_until`, drop).
//!
//! A focused set: the full behaviour matrix runs in `mqtt-conformance` against every adapter.
//! rumqttc needs a tokio runtime, so these tests run on one; the broker runs on smol's
//! executor beside it. Every wait is bounded by [`WAIT`]; every server started is stopped.

use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use async_io::Timer;
use bytes::Bytes;
use futures_lite::FutureExt;
use mqtt_core::broker::BrokerConfig;
use mqtt_smol::broker::{RunningServer, Server};
use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

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

async fn start() -> RunningServer {
    let server = Server::new(BrokerConfig::default()).listen_tcp(([127, 0, 0, 1], 0).into());
    within("start", server.start()).await.unwrap()
}

async fn stop(server: RunningServer) {
    within("shutdown", server.shutdown()).await.unwrap();
}

/// One event of a rumqttc loop: a packet received or sent, or the loop's failure.
#[derive(Debug)]
enum Ev {
    In(Packet),
    Sent(rumqttc::Outgoing),
    Failed(String),
}

/// A connected rumqttc 3.1.1 client and the events its loop (a tokio task) forwards.
struct Peer {
    client: AsyncClient,
    events: mpsc::UnboundedReceiver<Ev>,
    task: JoinHandle<()>,
}

impl Peer {
    /// Connects with a clean session and waits for CONNACK.
    async fn connect(addr: SocketAddr, id: &str) -> Self {
        let options = MqttOptions::new(id, addr.ip().to_string(), addr.port());
        let (client, mut eventloop) = AsyncClient::new(options, 64);
        let (tx, events) = mpsc::unbounded_channel();
        let task = tokio::spawn(async move {
            loop {
                let ev = match eventloop.poll().await {
                    Ok(Event::Incoming(packet)) => Ev::In(packet),
                    Ok(Event::Outgoing(out)) => Ev::Sent(out),
                    Err(e) => Ev::Failed(e.to_string()),
                };
                let last = matches!(ev, Ev::Failed(_));
                if tx.send(ev).is_err() || last {
                    return;
                }
            }
        });
        let mut peer = Self {
            client,
            events,
            task,
        };
        peer.expect("CONNACK", |ev| {
            matches!(ev, Ev::In(Packet::ConnAck(_))).then_some(())
        })
        .await;
        peer
    }

    /// Waits for the first event `pick` accepts, skipping others; a failed loop panics unless
    /// `pick` takes it.
    async fn expect<T>(&mut self, what: &str, mut pick: impl FnMut(&Ev) -> Option<T>) -> T {
        let events = &mut self.events;
        within(what, async {
            loop {
                let ev = events
                    .recv()
                    .await
                    .unwrap_or_else(|| panic!("{what}: loop ended"));
                if let Some(t) = pick(&ev) {
                    return t;
                }
                if let Ev::Failed(e) = ev {
                    panic!("{what}: the connection failed: {e}");
                }
            }
        })
        .await
    }

    async fn subscribe(&mut self, filter: &str, qos: QoS) {
        within("queue SUBSCRIBE", self.client.subscribe(filter, qos))
            .await
            .unwrap();
        let what = format!("SUBACK for {filter}");
        self.expect(&what, |ev| {
            matches!(ev, Ev::In(Packet::SubAck(_))).then_some(())
        })
        .await;
    }

    /// Publishes and waits for the end of the flow: written, PUBACK, or PUBCOMP.
    async fn publish(&mut self, topic: &str, qos: QoS, retain: bool, payload: &'static str) {
        within(
            "queue PUBLISH",
            self.client.publish(topic, qos, retain, payload),
        )
        .await
        .unwrap();
        self.expect(&format!("{qos:?} flow to {topic}"), |ev| match (qos, ev) {
            (QoS::AtMostOnce, Ev::Sent(rumqttc::Outgoing::Publish(_)))
            | (QoS::AtLeastOnce, Ev::In(Packet::PubAck(_)))
            | (QoS::ExactlyOnce, Ev::In(Packet::PubComp(_))) => Some(()),
            _ => None,
        })
        .await;
    }

    /// The next PUBLISH received: topic, payload, QoS and retain flag.
    async fn recv(&mut self) -> (String, Bytes, QoS, bool) {
        self.expect("PUBLISH", |ev| match ev {
            Ev::In(Packet::Publish(p)) => {
                Some((p.topic.clone(), p.payload.clone(), p.qos, p.retain))
            }
            _ => None,
        })
        .await
    }

    async fn disconnect(mut self) {
        within("queue DISCONNECT", self.client.disconnect())
            .await
            .unwrap();
        let sent = |ev: &Ev| matches!(ev, Ev::Sent(rumqttc::Outgoing::Disconnect)).then_some(());
        self.expect("DISCONNECT written", sent).await;
        self.task.abort();
    }
}

#[tokio::test]
async fn qos_0_1_2_round_trip_with_rumqttc() {
    let server = start().await;
    let addr = server.tcp_addr().unwrap();
    let mut subscriber = Peer::connect(addr, "sub").await;
    subscriber.subscribe("t/#", QoS::ExactlyOnce).await;
    let mut publisher = Peer::connect(addr, "pub").await;
    for (qos, payload) in [
        (QoS::AtMostOnce, "zero"),
        (QoS::AtLeastOnce, "one"),
        (QoS::ExactlyOnce, "two"),
    ] {
        publisher.publish("t/x", qos, false, payload).await;
        let (topic, got, got_qos, retain) = subscriber.recv().await;
        assert_eq!(
            (topic.as_str(), &got[..], got_qos, retain),
            ("t/x", payload.as_bytes(), qos, false)
        );
    }
    publisher.disconnect().await;
    subscriber.disconnect().await;
    stop(server).await;
}

#[tokio::test]
async fn retained_messages_are_kept_and_cleared() {
    let server = start().await;
    let addr = server.tcp_addr().unwrap();
    let mut publisher = Peer::connect(addr, "pub").await;
    publisher
        .publish("r/1", QoS::AtLeastOnce, true, "kept")
        .await;

    // A late subscriber gets it, flagged retained.
    let mut late = Peer::connect(addr, "late").await;
    late.subscribe("r/#", QoS::AtLeastOnce).await;
    let (topic, payload, _, retain) = late.recv().await;
    assert_eq!(
        (topic.as_str(), &payload[..], retain),
        ("r/1", &b"kept"[..], true)
    );
    // Live delivery to a subscriber is not flagged retained [MQTT-3.3.1-9].
    publisher
        .publish("r/1", QoS::AtLeastOnce, true, "kept 2")
        .await;
    let (_, payload, _, retain) = late.recv().await;
    assert_eq!((&payload[..], retain), (&b"kept 2"[..], false));

    // An empty retained message clears it: the next subscriber's first message is a live one.
    publisher.publish("r/1", QoS::AtLeastOnce, true, "").await;
    let (_, payload, _, _) = late.recv().await;
    assert!(payload.is_empty());
    let mut later = Peer::connect(addr, "later").await;
    later.subscribe("r/#", QoS::AtLeastOnce).await;
    publisher
        .publish("r/2", QoS::AtLeastOnce, false, "live")
        .await;
    let (topic, payload, _, retain) = later.recv().await;
    assert_eq!(
        (topic.as_str(), &payload[..], retain),
        ("r/2", &b"live"[..], false)
    );

    for peer in [publisher, late, later] {
        peer.disconnect().await;
    }
    stop(server).await;
}

/// Whether something accepts TCP connections at `addr`.
async fn accepts(addr: SocketAddr) -> bool {
    async_net::TcpStream::connect(addr).await.is_ok()
}

#[tokio::test]
async fn shutdown_closes_connections_and_listeners() {
    let server = start().await;
    let addr = server.tcp_addr().unwrap();
    let mut peer = Peer::connect(addr, "stays").await;
    stop(server).await;
    // The broker closes the connection: rumqttc's loop fails.
    peer.expect("the connection to end", |ev| {
        matches!(ev, Ev::Failed(_)).then_some(())
    })
    .await;
    assert!(!accepts(addr).await, "still listening after shutdown");
}

#[tokio::test]
async fn run_until_serves_until_the_signal() {
    // A listener on a port just released: `run_until` does not say which port it took.
    let addr = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let (signal, signalled) = oneshot::channel::<()>();
    let server = Server::new(BrokerConfig::default()).listen_tcp(addr);
    let serving = smol::spawn(server.run_until(async {
        let _ = signalled.await;
    }));
    within("listening", async {
        while !accepts(addr).await {
            Timer::after(Duration::from_millis(10)).await;
        }
    })
    .await;
    let peer = Peer::connect(addr, "until").await;
    peer.disconnect().await;
    signal.send(()).unwrap();
    within("run_until", serving).await.unwrap();
    assert!(!accepts(addr).await, "still listening after run_until");
}

#[tokio::test]
async fn dropping_the_server_stops_it() {
    let server = start().await;
    let addr = server.tcp_addr().unwrap();
    let mut peer = Peer::connect(addr, "dropped").await;
    drop(server);
    // Cancelled tasks are dropped by the executor, soon after: wait for it, bounded.
    peer.expect("the connection to end", |ev| {
        matches!(ev, Ev::Failed(_)).then_some(())
    })
    .await;
    within("listener closed", async {
        while accepts(addr).await {
            Timer::after(Duration::from_millis(10)).await;
        }
    })
    .await;
}
