//! The simulated world: one [`Broker`], raw peers wired to it in memory, and a virtual clock.
//!
//! Every input the world gives the broker is followed by a full drain of its outputs, as the
//! drain contract asks: transmits are decoded into the inbox of the peer they are addressed
//! to, `Close` events are recorded on that peer. While draining, the world checks what any
//! adapter could rely on: every transmit holds whole packets that decode in the peer's
//! version, nothing is sent after `Close`, no packet is larger than the peer's Maximum Packet
//! Size, and the broker never has more unacknowledged QoS 1/2 messages out to a peer than
//! min(`max_inflight`, the peer's Receive Maximum).
//!
//! Bytes from a peer reach the broker in chunks of seeded random sizes, so every scenario
//! also exercises partial reads. Nothing sleeps and every loop is bounded.

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::fmt::Write as _;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use mqtt_core::broker::store::{MemoryStore, StoreOp, StoreTicket};
use mqtt_core::broker::{Broker, BrokerConfig, BrokerEvent, CloseReason, ConnId, PeerInfo};
use mqtt_core::codec::{self, DecodeLimits};
use mqtt_core::packet::{Ack, ConnAck, Connect, Disconnect, SubAck, UnsubAck};
use mqtt_core::{Packet, ProtocolVersion, Publish, QoS, ReasonCode};

/// More outputs than this from one input means the broker is looping.
const MAX_OUTPUTS_PER_INPUT: usize = 1_000_000;
/// More timer firings than this in one `advance` means a timer re-arms without progress.
const MAX_TIMER_FIRINGS: usize = 1_000_000;

/// A handle on one simulated client connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Peer(usize);

/// One packet the broker sent a peer, as decoded and as it came on the wire.
#[derive(Debug, Clone)]
pub(crate) struct Received {
    pub(crate) packet: Packet,
    pub(crate) raw: Bytes,
}

/// What the world knows about one peer.
#[derive(Debug)]
pub(crate) struct PeerState {
    /// The broker's name for the connection.
    pub(crate) conn: ConnId,
    /// The version packets are coded in both ways (from the CONNECT the peer sent).
    pub(crate) version: ProtocolVersion,
    /// A name for failure messages: the client id of its CONNECT.
    name: String,
    /// Packets from the broker not yet looked at by the test.
    pub(crate) inbox: VecDeque<Received>,
    /// Every `Close` event the broker gave for this connection.
    pub(crate) closes: Vec<CloseReason>,
    /// Whether the peer's own link went down (`drop_link`).
    link_dropped: bool,
    /// Bytes from the broker not yet decoded: a partial packet at most, between transmits.
    from_broker: BytesMut,
    /// Bytes sent to the broker and not yet consumed by it (a partial packet).
    to_broker: BytesMut,
    /// Packet ids of QoS 1/2 PUBLISHes received and not yet acknowledged.
    unacked: BTreeSet<u16>,
    /// The in-flight window the broker must respect towards this peer.
    window: usize,
    /// The peer's Maximum Packet Size.
    max_packet: u32,
    /// Whether writes to the peer are held back (not reported with `handle_written`).
    stalled: bool,
    /// Bytes sent to the peer while stalled.
    unreported: usize,
}

/// The broker, its peers and the virtual clock.
pub(crate) struct World {
    pub(crate) broker: Broker,
    /// The virtual time: `base` plus the time advanced so far.
    pub(crate) now: Instant,
    base: Instant,
    peers: Vec<PeerState>,
    by_conn: HashMap<ConnId, usize>,
    /// Drives chunk sizes; `None` sends each packet whole.
    rng: Option<Rng>,
    max_inflight: usize,
    config: BrokerConfig,
    /// With persistence: what the store made durable.
    pub(crate) store: MemoryStore,
    /// Batches the store has not answered yet (while `store_paused`).
    pending: VecDeque<(StoreTicket, Vec<StoreOp>)>,
    store_paused: bool,
}

impl World {
    /// A broker with `config`, bytes sent in random chunks from a fixed seed.
    pub(crate) fn new(config: BrokerConfig) -> Self {
        Self::seeded(config, 0x5EED)
    }

    /// A broker with `config`, bytes sent in random chunks drawn from `seed`.
    pub(crate) fn seeded(config: BrokerConfig, seed: u64) -> Self {
        let mut w = Self::whole(config);
        w.rng = Some(Rng(seed));
        w
    }

    /// A broker with `config`; every packet reaches it in one piece.
    pub(crate) fn whole(config: BrokerConfig) -> Self {
        // The one real instant of the simulation: a base the virtual clock counts from.
        // Only offsets from it matter, so the run is the same whenever it happens.
        #[allow(clippy::disallowed_methods)]
        let base = Instant::now();
        let mut config = config;
        // The whole suite runs again with persistence on (and a store answering at once):
        // nothing a client sees may change but timing.
        if std::env::var_os("MQTT_SIM_PERSISTENCE").is_some() {
            config.persistence = true;
        }
        Self {
            config: config.clone(),
            store: MemoryStore::new(),
            pending: VecDeque::new(),
            store_paused: false,
            max_inflight: usize::from(config.limits.max_inflight),
            broker: Broker::new(config),
            now: base,
            base,
            peers: Vec::new(),
            by_conn: HashMap::new(),
            rng: None,
        }
    }

    /// A broker with `config` and persistence on, every packet in one piece.
    pub(crate) fn persistent(mut config: BrokerConfig) -> Self {
        config.persistence = true;
        Self::whole(config)
    }

    /// From now on the store answers nothing until [`World::resume_store`].
    pub(crate) fn pause_store(&mut self) {
        self.store_paused = true;
    }

    /// The store makes everything pending durable and answers.
    pub(crate) fn resume_store(&mut self) {
        self.store_paused = false;
        let mut last = None;
        while let Some((ticket, ops)) = self.pending.pop_front() {
            for op in ops {
                self.store.apply(op);
            }
            last = Some(ticket);
        }
        if let Some(ticket) = last {
            self.broker.handle_stored(self.now, ticket);
            self.drain();
        }
    }

    /// The store cannot write what is pending (a full disk): it answers each batch failed.
    pub(crate) fn fail_store(&mut self) {
        self.store_paused = false;
        while let Some((ticket, _)) = self.pending.pop_front() {
            self.broker.handle_store_failed(self.now, ticket);
            self.drain();
        }
    }

    /// Batches the store holds without having answered.
    pub(crate) fn store_pending(&self) -> usize {
        self.pending.len()
    }

    /// The broker process dies (nothing is sent to anyone; what the store has not made
    /// durable is lost) and starts again from the store. Every peer's link is gone.
    pub(crate) fn crash_and_restart(&mut self) {
        self.pending.clear();
        self.store_paused = false;
        for peer in &mut self.peers {
            peer.link_dropped = true;
        }
        self.by_conn.clear();
        self.broker = Broker::recover(self.config.clone(), self.store.state().clone(), self.now);
        self.drain();
    }

    /// Virtual time since the world began.
    pub(crate) fn elapsed(&self) -> Duration {
        self.now - self.base
    }

    // ---- connections ----

    /// Opens a socket to the broker without sending anything. `version` is the version the
    /// peer decodes what the broker says in until it sends a CONNECT.
    pub(crate) fn open(&mut self, version: ProtocolVersion) -> Peer {
        let conn = self.broker.accept(
            self.now,
            PeerInfo {
                addr: None,
                tls: false,
            },
        );
        self.drain();
        let id = self.peers.len();
        let previous = self.by_conn.insert(conn, id);
        assert!(previous.is_none(), "broker reused {conn}");
        self.peers.push(PeerState {
            conn,
            version,
            name: format!("{conn}"),
            inbox: VecDeque::new(),
            closes: Vec::new(),
            link_dropped: false,
            from_broker: BytesMut::new(),
            to_broker: BytesMut::new(),
            unacked: BTreeSet::new(),
            window: self.max_inflight,
            max_packet: u32::MAX,
            stalled: false,
            unreported: 0,
        });
        Peer(id)
    }

    /// Opens a socket, sends `connect` and takes the CONNACK, whatever it says.
    #[track_caller]
    pub(crate) fn connect_ack(&mut self, connect: impl Into<Connect>) -> (Peer, ConnAck) {
        let connect = connect.into();
        let p = self.open(connect.protocol_version);
        self.send(p, Packet::Connect(Box::new(connect)));
        let ack = self.expect_connack(p);
        (p, ack)
    }

    /// Opens a socket and connects; the CONNACK must say Success.
    #[track_caller]
    pub(crate) fn connect(&mut self, connect: impl Into<Connect>) -> Peer {
        let (p, ack) = self.connect_ack(connect);
        assert_eq!(
            ack.reason_code,
            ReasonCode::Success,
            "{}: CONNACK refused: {ack:?}",
            self.name(p)
        );
        p
    }

    /// The peer's link goes down without a DISCONNECT: `handle_closed`.
    #[track_caller]
    pub(crate) fn drop_link(&mut self, p: Peer) {
        self.assert_can_send(p);
        let conn = self.peers[p.0].conn;
        self.peers[p.0].link_dropped = true;
        self.broker.handle_closed(self.now, conn);
        self.drain();
    }

    // ---- input ----

    /// Sends one packet from `p`, coded in the peer's version.
    #[track_caller]
    pub(crate) fn send(&mut self, p: Peer, packet: impl Into<Packet>) {
        let packet = packet.into();
        let peer = &mut self.peers[p.0];
        match &packet {
            Packet::Connect(c) => {
                peer.version = c.protocol_version;
                peer.name = format!("{} {:?}", peer.conn, c.client_id);
                peer.window = self.max_inflight.min(
                    c.properties
                        .receive_maximum
                        .map_or(65_535, |r| r.get().into()),
                );
                peer.max_packet = c
                    .properties
                    .maximum_packet_size
                    .map_or(u32::MAX, |m| m.get());
            }
            // What releases a slot of the broker's in-flight window towards this peer.
            Packet::PubAck(a) | Packet::PubComp(a) => {
                peer.unacked.remove(&a.packet_id.get());
            }
            Packet::PubRec(a) if a.reason_code.is_error() => {
                peer.unacked.remove(&a.packet_id.get());
            }
            _ => {}
        }
        let mut wire = BytesMut::new();
        codec::encode(&packet, peer.version, &mut wire)
            .unwrap_or_else(|e| panic!("test bug: cannot encode {packet:?}: {e}"));
        self.send_bytes(p, &wire);
    }

    /// Sends raw bytes from `p`, in chunks of random sizes when the world is seeded.
    #[track_caller]
    pub(crate) fn send_bytes(&mut self, p: Peer, bytes: &[u8]) {
        self.assert_can_send(p);
        let mut rest = bytes;
        while !rest.is_empty() && self.is_open(p) {
            let n = match &mut self.rng {
                Some(rng) => 1 + (rng.next() as usize) % rest.len(),
                None => rest.len(),
            };
            let (chunk, tail) = rest.split_at(n);
            rest = tail;
            let peer = &mut self.peers[p.0];
            peer.to_broker.extend_from_slice(chunk);
            let conn = peer.conn;
            let mut buf = std::mem::take(&mut peer.to_broker);
            self.broker.handle_bytes(self.now, conn, &mut buf);
            self.peers[p.0].to_broker = buf;
            self.drain();
        }
    }

    /// Moves the clock forward by `d`, firing every timer that comes due on the way at its
    /// own instant, in order.
    pub(crate) fn advance(&mut self, d: Duration) {
        let target = self.now + d;
        for _ in 0..MAX_TIMER_FIRINGS {
            match self.broker.poll_timeout() {
                Some(at) if at <= target => {
                    self.now = self.now.max(at);
                    self.broker.handle_timeout(self.now);
                    self.drain();
                }
                _ => {
                    self.now = target;
                    return;
                }
            }
        }
        panic!("more than {MAX_TIMER_FIRINGS} timer firings in {d:?}");
    }

    /// `advance` by whole seconds.
    pub(crate) fn advance_secs(&mut self, secs: u64) {
        self.advance(Duration::from_secs(secs));
    }

    // ---- output ----

    /// Drains every transmit and event, as an adapter must after each input, then reports
    /// what was written (`handle_written`) as an adapter does once its socket takes the bytes,
    /// and drains again, until the broker has nothing more to say.
    fn drain(&mut self) {
        let mut outputs = 0;
        loop {
            let mut written: Vec<(ConnId, usize)> = Vec::new();
            let mut touched = BTreeSet::new();
            while let Some(t) = self.broker.poll_transmit() {
                outputs += 1;
                assert!(outputs < MAX_OUTPUTS_PER_INPUT, "broker output never ends");
                let Some(&i) = self.by_conn.get(&t.conn) else {
                    panic!("transmit to {}, which was never accepted", t.conn);
                };
                let peer = &mut self.peers[i];
                assert!(
                    peer.closes.is_empty(),
                    "{}: broker sent {} bytes after closing it ({:?})",
                    peer.name,
                    t.len(),
                    peer.closes
                );
                if peer.stalled {
                    peer.unreported += t.len();
                } else {
                    match written.iter_mut().find(|(c, _)| *c == t.conn) {
                        Some((_, n)) => *n += t.len(),
                        None => written.push((t.conn, t.len())),
                    }
                }
                peer.from_broker.extend_from_slice(&t.bytes);
                peer.from_broker.extend_from_slice(&t.payload);
                touched.insert(i);
                self.decode_from_broker(i);
            }
            for i in touched {
                let peer = &self.peers[i];
                assert!(
                    peer.from_broker.is_empty(),
                    "{}: broker left a partial packet: {:02x?}",
                    peer.name,
                    &peer.from_broker[..]
                );
            }
            let mut stored = None;
            while let Some(e) = self.broker.poll_event() {
                outputs += 1;
                assert!(outputs < MAX_OUTPUTS_PER_INPUT, "broker output never ends");
                if let BrokerEvent::Store { ticket, ops, .. } = e {
                    assert!(self.config.persistence, "Store event without persistence");
                    if self.store_paused {
                        self.pending.push_back((ticket, ops));
                    } else {
                        for op in ops {
                            self.store.apply(op);
                        }
                        stored = Some(ticket);
                    }
                    continue;
                }
                if let BrokerEvent::Close { conn, reason } = e {
                    let Some(&i) = self.by_conn.get(&conn) else {
                        panic!("Close for {conn}, which was never accepted");
                    };
                    let peer = &mut self.peers[i];
                    assert!(
                        peer.closes.is_empty(),
                        "{}: closed twice: {:?} then {reason:?}",
                        peer.name,
                        peer.closes
                    );
                    peer.closes.push(reason);
                    // The adapter closes the socket and reports it: a no-op for the broker.
                    self.broker.handle_closed(self.now, conn);
                    assert!(
                        self.broker.poll_transmit().is_none(),
                        "handle_closed after Close produced output"
                    );
                }
            }
            if let Some(ticket) = stored {
                self.broker.handle_stored(self.now, ticket);
                continue;
            }
            if written.is_empty() {
                return;
            }
            for (conn, n) in written {
                self.broker.handle_written(self.now, conn, n);
            }
        }
    }

    /// From now on the bytes the broker sends `p` are not reported written: a slow reader.
    pub(crate) fn stall(&mut self, p: Peer) {
        self.peers[p.0].stalled = true;
    }

    /// Reports everything sent to `p` while stalled as written, and stops stalling it.
    pub(crate) fn unstall(&mut self, p: Peer) {
        let peer = &mut self.peers[p.0];
        peer.stalled = false;
        let n = std::mem::take(&mut peer.unreported);
        let conn = peer.conn;
        self.broker.handle_written(self.now, conn, n);
        self.drain();
    }

    fn decode_from_broker(&mut self, i: usize) {
        let peer = &mut self.peers[i];
        loop {
            let before = peer.from_broker.clone();
            let packet = match codec::decode(
                &mut peer.from_broker,
                peer.version,
                &DecodeLimits::default(),
            ) {
                Ok(Some(p)) => p,
                Ok(None) => return,
                Err(e) => panic!(
                    "{}: broker sent bytes that do not decode in {}: {e}: {:02x?}",
                    peer.name,
                    peer.version,
                    &before[..]
                ),
            };
            let len = before.len() - peer.from_broker.len();
            let raw = before.freeze().slice(..len);
            assert!(
                raw.len() as u64 <= u64::from(peer.max_packet),
                "{}: broker sent a {}-byte packet over the Maximum Packet Size {} [MQTT-3.1.2-24]",
                peer.name,
                raw.len(),
                peer.max_packet
            );
            if let Packet::Publish(p) = &packet {
                if let Some(id) = p.packet_id {
                    peer.unacked.insert(id.get());
                    assert!(
                        peer.unacked.len() <= peer.window,
                        "{}: broker has {} unacknowledged messages out ({:?}), window {}",
                        peer.name,
                        peer.unacked.len(),
                        peer.unacked,
                        peer.window
                    );
                }
            }
            peer.inbox.push_back(Received { packet, raw });
        }
    }

    // ---- looking at peers ----

    /// The state of `p`.
    pub(crate) fn peer(&self, p: Peer) -> &PeerState {
        &self.peers[p.0]
    }

    /// Whether the broker still holds `p`'s connection open.
    pub(crate) fn is_open(&self, p: Peer) -> bool {
        let peer = &self.peers[p.0];
        peer.closes.is_empty() && !peer.link_dropped
    }

    fn name(&self, p: Peer) -> &str {
        &self.peers[p.0].name
    }

    #[track_caller]
    fn assert_can_send(&self, p: Peer) {
        let peer = &self.peers[p.0];
        assert!(
            !peer.link_dropped,
            "test bug: {} used after drop_link",
            peer.name
        );
        assert!(
            peer.closes.is_empty(),
            "test bug: {} used after the broker closed it ({:?})",
            peer.name,
            peer.closes
        );
    }

    /// Takes the next packet the broker sent `p`, if any.
    pub(crate) fn recv(&mut self, p: Peer) -> Option<Received> {
        self.peers[p.0].inbox.pop_front()
    }

    /// Takes the next packet, which must be `what`: `pick` returns what it holds, or gives
    /// the packet back (boxed) for the failure message.
    #[track_caller]
    pub(crate) fn expect<T>(
        &mut self,
        p: Peer,
        what: &str,
        pick: impl FnOnce(Packet) -> Result<T, Box<Packet>>,
    ) -> T {
        let got = self.recv(p);
        match got.map(|r| pick(r.packet)) {
            Some(Ok(t)) => t,
            Some(Err(other)) => self.fail(p, what, &format!("{other:?}")),
            None => self.fail(p, what, "nothing"),
        }
    }

    #[track_caller]
    fn fail(&self, p: Peer, what: &str, got: &str) -> ! {
        let peer = &self.peers[p.0];
        let mut msg = format!(
            "{} at t={:?}: expected {what}, got {got}",
            peer.name,
            self.elapsed()
        );
        if !peer.inbox.is_empty() {
            let _ = write!(msg, "\n  then in the inbox:");
            for r in &peer.inbox {
                let _ = write!(msg, "\n    {:?}", r.packet);
            }
        }
        if !peer.closes.is_empty() {
            let _ = write!(msg, "\n  closed by the broker: {:?}", peer.closes);
        }
        panic!("{msg}");
    }

    #[track_caller]
    pub(crate) fn expect_connack(&mut self, p: Peer) -> ConnAck {
        self.expect(p, "CONNACK", |pk| match pk {
            Packet::ConnAck(a) => Ok(*a),
            other => Err(Box::new(other)),
        })
    }

    #[track_caller]
    pub(crate) fn expect_publish(&mut self, p: Peer) -> Publish {
        self.expect(p, "PUBLISH", |pk| match pk {
            Packet::Publish(m) => Ok(m),
            other => Err(Box::new(other)),
        })
    }

    /// The next PUBLISH, which must be on `topic` with `payload`.
    #[track_caller]
    pub(crate) fn expect_message(&mut self, p: Peer, topic: &str, payload: &str) -> Publish {
        let m = self.expect_publish(p);
        assert_eq!(
            (m.topic.as_str(), &m.payload[..]),
            (topic, payload.as_bytes()),
            "{}: unexpected message {m:?}",
            self.name(p)
        );
        m
    }

    #[track_caller]
    pub(crate) fn expect_puback(&mut self, p: Peer) -> Ack {
        self.expect(p, "PUBACK", |pk| match pk {
            Packet::PubAck(a) => Ok(a),
            other => Err(Box::new(other)),
        })
    }

    #[track_caller]
    pub(crate) fn expect_pubrec(&mut self, p: Peer) -> Ack {
        self.expect(p, "PUBREC", |pk| match pk {
            Packet::PubRec(a) => Ok(a),
            other => Err(Box::new(other)),
        })
    }

    #[track_caller]
    pub(crate) fn expect_pubrel(&mut self, p: Peer) -> Ack {
        self.expect(p, "PUBREL", |pk| match pk {
            Packet::PubRel(a) => Ok(a),
            other => Err(Box::new(other)),
        })
    }

    #[track_caller]
    pub(crate) fn expect_pubcomp(&mut self, p: Peer) -> Ack {
        self.expect(p, "PUBCOMP", |pk| match pk {
            Packet::PubComp(a) => Ok(a),
            other => Err(Box::new(other)),
        })
    }

    #[track_caller]
    pub(crate) fn expect_suback(&mut self, p: Peer) -> SubAck {
        self.expect(p, "SUBACK", |pk| match pk {
            Packet::SubAck(a) => Ok(a),
            other => Err(Box::new(other)),
        })
    }

    #[track_caller]
    pub(crate) fn expect_unsuback(&mut self, p: Peer) -> UnsubAck {
        self.expect(p, "UNSUBACK", |pk| match pk {
            Packet::UnsubAck(a) => Ok(a),
            other => Err(Box::new(other)),
        })
    }

    #[track_caller]
    pub(crate) fn expect_pingresp(&mut self, p: Peer) {
        self.expect(p, "PINGRESP", |pk| match pk {
            Packet::PingResp => Ok(()),
            other => Err(Box::new(other)),
        });
    }

    #[track_caller]
    pub(crate) fn expect_disconnect(&mut self, p: Peer) -> Disconnect {
        self.expect(p, "DISCONNECT", |pk| match pk {
            Packet::Disconnect(d) => Ok(*d),
            other => Err(Box::new(other)),
        })
    }

    /// The broker sent `p` nothing more.
    #[track_caller]
    pub(crate) fn expect_nothing(&mut self, p: Peer) {
        if let Some(r) = self.recv(p) {
            self.fail(p, "nothing", &format!("{:?}", r.packet));
        }
    }

    /// The broker closed `p` (a `Close` event) and sent nothing more; returns why.
    #[track_caller]
    pub(crate) fn expect_closed(&mut self, p: Peer) -> CloseReason {
        self.expect_nothing(p);
        match self.peers[p.0].closes.first() {
            Some(reason) => reason.clone(),
            None => self.fail(p, "a Close event", "an open connection"),
        }
    }

    /// The connection of `p` is still open and nothing is waiting in its inbox.
    #[track_caller]
    pub(crate) fn expect_idle(&mut self, p: Peer) {
        self.expect_nothing(p);
        let peer = &self.peers[p.0];
        assert!(
            peer.closes.is_empty(),
            "{}: closed by the broker: {:?}",
            peer.name,
            peer.closes
        );
    }

    /// Takes every packet waiting for `p`; each must be a PUBLISH.
    #[track_caller]
    pub(crate) fn publishes(&mut self, p: Peer) -> Vec<Publish> {
        let mut out = Vec::new();
        while !self.peers[p.0].inbox.is_empty() {
            out.push(self.expect_publish(p));
        }
        out
    }

    /// Takes every PUBLISH waiting for `p` and returns their payloads as strings.
    #[track_caller]
    pub(crate) fn payloads(&mut self, p: Peer) -> Vec<String> {
        self.publishes(p)
            .iter()
            .map(|m| String::from_utf8_lossy(&m.payload).into_owned())
            .collect()
    }

    /// Acknowledges every QoS 1/2 PUBLISH waiting for `p` (PUBACK, or PUBREC then PUBCOMP
    /// for the PUBREL) and returns the payloads of all messages taken, in order.
    #[track_caller]
    pub(crate) fn take_and_ack(&mut self, p: Peer) -> Vec<String> {
        let mut out = Vec::new();
        for _ in 0..MAX_OUTPUTS_PER_INPUT {
            let Some(r) = self.recv(p) else {
                return out;
            };
            match r.packet {
                Packet::Publish(m) => {
                    match (m.qos, m.packet_id) {
                        (QoS::AtLeastOnce, Some(id)) => self.send(p, Packet::PubAck(Ack::new(id))),
                        (QoS::ExactlyOnce, Some(id)) => self.send(p, Packet::PubRec(Ack::new(id))),
                        _ => {}
                    }
                    out.push(String::from_utf8_lossy(&m.payload).into_owned());
                }
                Packet::PubRel(a) => self.send(p, Packet::PubComp(Ack::new(a.packet_id))),
                other => self.fail(p, "PUBLISH or PUBREL", &format!("{other:?}")),
            }
        }
        panic!("take_and_ack never ends");
    }
}

/// SplitMix64: the world's own seeded randomness (chunk sizes).
#[derive(Debug, Clone)]
pub(crate) struct Rng(pub(crate) u64);

impl Rng {
    pub(crate) fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
}
