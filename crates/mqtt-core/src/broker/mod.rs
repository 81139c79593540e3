//! The broker state machine: every server behaviour of MQTT 3.1, 3.1.1 and 5.0, with no I/O.
//!
//! One [`Broker`] owns all broker state. The adapter tells it what happened, each input
//! carrying `now` and the [`ConnId`] that [`Broker::accept`] chose:
//!
//! - [`Broker::accept`]: a socket was accepted;
//! - [`Broker::handle_bytes`] (or [`Broker::handle_packet`] for packets decoded elsewhere):
//!   bytes arrived;
//! - [`Broker::handle_written`]: bytes of earlier transmits were written;
//! - [`Broker::handle_closed`]: the socket closed;
//! - [`Broker::handle_timeout`]: the instant from [`Broker::poll_timeout`] came;
//! - [`Broker::handle_auth`]: the answer to a [`BrokerEvent::Authenticate`];
//! - [`Broker::handle_stored`]: the store made a [`BrokerEvent::Store`] batch durable (only
//!   with [`BrokerConfig::persistence`]; see [`store`]);
//! - [`Broker::shutdown`]: the broker is stopping.
//!
//! After **every** input, drain [`Broker::poll_transmit`] and [`Broker::poll_event`] until
//! they return `None`, then sleep until [`Broker::poll_timeout`] or the next input.
//! A transmit is addressed to a connection; [`BrokerEvent::Close`] says when to close one
//! (after writing what was drained for it before the event).
//!
//! ```
//! use std::time::Instant;
//! use bytes::BytesMut;
//! use mqtt_core::broker::{Broker, BrokerConfig, PeerInfo};
//!
//! let mut broker = Broker::new(BrokerConfig::default());
//! let now = Instant::now();
//! let conn = broker.accept(now, PeerInfo { addr: None, tls: false });
//! // A v3.1.1 CONNECT for client "c", clean session, keep alive 60.
//! let mut rx = BytesMut::from(&b"\x10\x0d\x00\x04MQTT\x04\x02\x00\x3c\x00\x01c"[..]);
//! broker.handle_bytes(now, conn, &mut rx);
//! let t = broker.poll_transmit().unwrap();
//! assert_eq!(&t.bytes[..], b"\x20\x02\x00\x00"); // CONNACK, accepted
//! ```

mod config;
mod connect;
mod connection;
mod event;
mod flow;
mod lifecycle;
mod outbox;
mod persist;
mod retained;
mod route;
mod session;
pub mod store;
mod subscribe;
mod subscriptions;
mod sys;
mod will;

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::Instant;

use bytes::BytesMut;
use bytestring::ByteString;

pub use config::{BrokerConfig, Limits, QueueFullPolicy};
pub use event::{
    AuthDecision, AuthRequest, BrokerEvent, BuildConnHasher, CloseReason, ConnHasher, ConnId,
    ConnMap, PeerInfo, Transmit,
};

use crate::codec::{self, DecodeError, DecodeLimits};
use crate::packet::*;
use crate::timer::TimerQueue;
use crate::topic::TopicFilter;
use connection::{Connection, OutAliases, Phase};
use outbox::Outbox;
use retained::Retained;
use route::{Delivery, Message};
use session::{OutState, Session};
use store::{StoreOp, StoredFlow};
use subscriptions::{Route, SubEntry, Subscriptions};

/// What a timer entry is for; each is re-checked when it fires.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum Timer {
    ConnectTimeout(ConnId),
    KeepAlive(ConnId),
    SessionExpiry(ByteString),
    WillDelay(ByteString),
    Sys,
}

/// Counters behind `$SYS`.
#[derive(Debug, Default, Clone)]
struct Stats {
    messages_received: u64,
    messages_sent: u64,
    bytes_received: u64,
    bytes_sent: u64,
    dropped: u64,
}

/// A small seeded generator (SplitMix64): assigned client ids and shared-subscription picks
/// are reproducible from `BrokerConfig::seed`.
#[derive(Debug)]
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
}

/// The broker. See the [module docs](self) for the input/output contract.
#[derive(Debug)]
pub struct Broker {
    config: BrokerConfig,
    decode_limits: DecodeLimits,
    next_conn: u64,
    conns: ConnMap<Connection>,
    sessions: HashMap<ByteString, Session, ahash::RandomState>,
    subs: Subscriptions,
    retained: Retained<Arc<Message>>,
    timers: TimerQueue<Timer>,
    out: Outbox,
    /// Sessions whose record changed during this input (persistence only).
    dirty: Vec<ByteString>,
    events: VecDeque<BrokerEvent>,
    rng: Rng,
    stats: Stats,
    started: Option<Instant>,
    /// Scratch space every outgoing packet is encoded into, then split off as `Bytes`.
    buf: BytesMut,
    routes: Vec<Route>,
    /// During one fan-out: the PUBLISH headers already encoded, by (version, RETAIN), for
    /// copies that can share them.
    /// Kept between fan-outs so its memory is reused; only read while `in_fanout`.
    wire_forms: Vec<(ProtocolVersion, bool, bytes::Bytes)>,
    in_fanout: bool,
}

/// How many packets a client may pipeline behind its CONNECT while authentication runs.
const MAX_PENDING_BEFORE_CONNACK: usize = 256;

impl Broker {
    /// A broker with no connections or sessions.
    pub fn new(config: BrokerConfig) -> Self {
        Self {
            decode_limits: DecodeLimits {
                max_packet_size: config.limits.max_packet_size,
            },
            rng: Rng(config.seed),
            retained: Retained::new(config.limits.max_retained_messages),
            config,
            next_conn: 0,
            conns: ConnMap::default(),
            sessions: HashMap::default(),
            subs: Subscriptions::new(),
            timers: TimerQueue::new(),
            out: Outbox::new(),
            dirty: Vec::new(),
            events: VecDeque::new(),
            stats: Stats::default(),
            started: None,
            buf: BytesMut::with_capacity(64 * 1024),
            routes: Vec::new(),
            wire_forms: Vec::new(),
            in_fanout: false,
        }
    }

    /// The configuration in force.
    pub fn config(&self) -> &BrokerConfig {
        &self.config
    }

    /// Number of open connections.
    pub fn connections(&self) -> usize {
        self.conns.len()
    }

    /// Number of sessions held, online or not.
    pub fn sessions(&self) -> usize {
        self.sessions.len()
    }

    /// Number of retained messages held.
    pub fn retained_messages(&self) -> usize {
        self.retained.len()
    }

    /// The payload retained for `topic`, if any.
    pub fn retained_payload(&self, topic: &str) -> Option<bytes::Bytes> {
        self.retained.get(topic).map(|m| m.payload.clone())
    }

    /// Messages queued for `client_id`'s session, if it exists.
    pub fn queued_messages(&self, client_id: &str) -> Option<usize> {
        self.sessions.get(client_id).map(|s| s.queue.len())
    }

    /// The limits to decode packets of `conn` with, for adapters that decode elsewhere.
    pub fn decode_limits(&self) -> DecodeLimits {
        self.decode_limits
    }

    /// The protocol version `conn` speaks (3.1.1 until its CONNECT says otherwise).
    pub fn version_of(&self, conn: ConnId) -> Option<ProtocolVersion> {
        self.conns.get(&conn).map(|c| c.version)
    }

    /// A socket was accepted: call before anything else about it.
    pub fn accept(&mut self, now: Instant, peer: PeerInfo) -> ConnId {
        self.start(now);
        self.next_conn += 1;
        let id = ConnId(self.next_conn);
        self.conns.insert(id, Connection::new(peer, now));
        // [MQTT-3.1.4-?] a socket that never sends CONNECT is closed after a while.
        self.timers
            .insert(now + self.config.connect_timeout, Timer::ConnectTimeout(id));
        id
    }

    /// Bytes arrived on `conn`: every complete packet is taken off the front of `buf` and
    /// handled; a partial packet stays for the next call. Bytes for a connection the broker
    /// already closed are discarded.
    pub fn handle_bytes(&mut self, now: Instant, conn: ConnId, buf: &mut BytesMut) {
        loop {
            let Some(c) = self.conns.get(&conn) else {
                buf.clear();
                return;
            };
            let before = buf.len();
            match codec::decode(buf, c.version, &self.decode_limits) {
                Ok(Some(packet)) => {
                    self.handle_packet(now, conn, packet, before - buf.len());
                }
                Ok(None) => return,
                Err(e) => {
                    self.handle_decode_error(now, conn, &e);
                    buf.clear();
                    return;
                }
            }
        }
    }

    /// A packet decoded by the adapter arrived on `conn` (decode it with the version from
    /// [`Broker::version_of`] and the limits from [`Broker::decode_limits`]); `wire_len` is
    /// the bytes it took on the wire, for the statistics.
    pub fn handle_packet(&mut self, now: Instant, conn: ConnId, packet: Packet, wire_len: usize) {
        self.stats.bytes_received += wire_len as u64;
        // Acknowledgements of this packet wait for what it makes the broker store.
        self.out.hold_conn = Some(conn);
        self.dispatch(now, conn, packet);
    }

    fn dispatch(&mut self, now: Instant, conn: ConnId, packet: Packet) {
        self.start(now);
        let Some(c) = self.conns.get_mut(&conn) else {
            return;
        };
        c.last_seen = now;
        match &mut c.phase {
            Phase::AwaitingConnect => match packet {
                Packet::Connect(connect) => self.on_connect(now, conn, connect),
                // [MQTT-3.1.0-1] the first packet must be CONNECT.
                _ => self.close(
                    now,
                    conn,
                    CloseReason::ProtocolViolation(ReasonCode::ProtocolError),
                    None,
                ),
            },
            Phase::AwaitingAuth(_) => {
                if c.pending.len() >= MAX_PENDING_BEFORE_CONNACK
                    || matches!(packet, Packet::Connect(_))
                {
                    self.close(
                        now,
                        conn,
                        CloseReason::ProtocolViolation(ReasonCode::ProtocolError),
                        None,
                    );
                } else {
                    c.pending.push_back(packet);
                }
            }
            Phase::Connected => self.on_packet(now, conn, packet),
        }
    }

    /// Reports a packet from `conn` that failed to decode: the connection is closed with the
    /// error's reason code (sent first to 5.0 clients), and its will is published.
    pub fn handle_decode_error(&mut self, now: Instant, conn: ConnId, err: &DecodeError) {
        let Some(c) = self.conns.get(&conn) else {
            return;
        };
        if c.is_connected() {
            self.protocol_error(now, conn, err.reason_code());
            return;
        }
        // Before CONNECT is accepted there is no version to answer in, except for the one
        // case the spec asks an answer for: [MQTT-3.1.2-2] an unsupported protocol level.
        if let DecodeError::UnsupportedProtocolVersion(level) = err {
            let version = if *level >= 5 {
                ProtocolVersion::V5
            } else {
                ProtocolVersion::V311
            };
            self.send_connack(
                conn,
                version,
                false,
                ReasonCode::UnsupportedProtocolVersion,
                Default::default(),
            );
            self.close(
                now,
                conn,
                CloseReason::ConnectRefused(ReasonCode::UnsupportedProtocolVersion),
                None,
            );
            return;
        }
        self.close(
            now,
            conn,
            CloseReason::ProtocolViolation(err.reason_code()),
            None,
        );
    }

    /// `n` bytes of transmits for `conn` were written to its socket: room for more.
    pub fn handle_written(&mut self, now: Instant, conn: ConnId, n: usize) {
        let Some(c) = self.conns.get_mut(&conn) else {
            return;
        };
        let was_full = c.pending_write >= self.config.limits.max_pending_write_bytes;
        c.pending_write = c.pending_write.saturating_sub(n);
        if was_full && c.is_connected() {
            self.pump(now, conn);
        }
    }

    /// The socket of `conn` closed, or failed. Without a DISCONNECT first, its will is
    /// published [MQTT-3.1.2-8]. A no-op for a connection the broker closed itself.
    pub fn handle_closed(&mut self, now: Instant, conn: ConnId) {
        if self.conns.contains_key(&conn) {
            self.drop_conn(now, conn, true);
        }
    }

    /// The answer to [`BrokerEvent::Authenticate`] for `conn`.
    pub fn handle_auth(&mut self, now: Instant, conn: ConnId, decision: AuthDecision) {
        self.out.hold_conn = Some(conn);
        let Some(c) = self.conns.get_mut(&conn) else {
            return;
        };
        let Phase::AwaitingAuth(_) = &c.phase else {
            return;
        };
        let Phase::AwaitingAuth(connect) = core::mem::replace(&mut c.phase, Phase::AwaitingConnect)
        else {
            return;
        };
        match decision {
            AuthDecision::Allow => self.complete_connect(now, conn, connect),
            AuthDecision::Deny(code) => self.refuse(now, conn, connect.protocol_version, code),
        }
    }

    /// Time passed: fires every timer due at `now`. Calling it early is harmless.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.start(now);
        while let Some(timer) = self.timers.pop_due(now) {
            match timer {
                Timer::ConnectTimeout(conn) => {
                    if self.conns.get(&conn).is_some_and(|c| !c.is_connected()) {
                        self.close(now, conn, CloseReason::ConnectTimeout, None);
                    }
                }
                Timer::KeepAlive(conn) => self.check_keep_alive(now, conn),
                Timer::SessionExpiry(client) => self.check_session_expiry(now, &client),
                Timer::WillDelay(client) => self.check_will_delay(now, &client),
                Timer::Sys => self.publish_sys(now),
            }
        }
    }

    /// The broker is stopping: every client is disconnected (5.0 clients with DISCONNECT
    /// 0x8B), their wills are published as the spec asks for a connection the server closes.
    pub fn shutdown(&mut self, now: Instant) {
        let conns: Vec<ConnId> = self.conns.keys().copied().collect();
        for conn in conns {
            let Some(c) = self.conns.get(&conn) else {
                continue;
            };
            let code = c.is_connected().then_some(ReasonCode::ServerShuttingDown);
            self.close(now, conn, CloseReason::ServerShuttingDown, code);
        }
    }

    /// The next packet to write, addressed to its connection.
    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.finish_batch();
        self.out.pop()
    }

    /// The next event for the application.
    pub fn poll_event(&mut self) -> Option<BrokerEvent> {
        self.finish_batch();
        self.events.pop_front()
    }

    /// When [`Broker::handle_timeout`] must be called next.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.timers.next()
    }

    fn start(&mut self, now: Instant) {
        if self.started.is_none() {
            self.started = Some(now);
            // $SYS is published at once, retained, and then every interval: a client that
            // subscribes right after start finds the values there.
            if self.config.sys_interval.is_some() {
                self.timers.insert(now, Timer::Sys);
            }
        }
    }

    // ---- packets of a connected client ----

    fn on_packet(&mut self, now: Instant, conn: ConnId, packet: Packet) {
        match packet {
            Packet::Publish(p) => self.on_publish(now, conn, p),
            Packet::PubAck(a) => self.on_puback(now, conn, &a),
            Packet::PubRec(a) => self.on_pubrec(now, conn, &a),
            Packet::PubRel(a) => self.on_pubrel(conn, &a),
            Packet::PubComp(a) => self.on_pubcomp(now, conn, &a),
            Packet::Subscribe(s) => self.on_subscribe(now, conn, s),
            Packet::Unsubscribe(u) => self.on_unsubscribe(conn, u),
            // [MQTT-3.12.4-1]
            Packet::PingReq => self.send_packet(conn, &Packet::PingResp),
            Packet::Disconnect(d) => self.on_disconnect(now, conn, &d),
            // [MQTT-3.1.0-2] a second CONNECT; server-only packets; AUTH without an
            // authentication method in CONNECT [MQTT-4.12.0-1].
            Packet::Connect(_)
            | Packet::ConnAck(_)
            | Packet::SubAck(_)
            | Packet::UnsubAck(_)
            | Packet::PingResp
            | Packet::Auth(_) => self.protocol_error(now, conn, ReasonCode::ProtocolError),
        }
    }

    // ---- output helpers ----

    fn session_of(&mut self, conn: ConnId) -> Option<&mut Session> {
        let client = self.conns.get(&conn)?.session.as_ref()?;
        self.sessions.get_mut(client)
    }

    fn send_ack(&mut self, conn: ConnId, kind: PacketType, a: Ack) {
        if matches!(kind, PacketType::PubAck | PacketType::PubRec) {
            if let Some(version) = self.conns.get(&conn).map(|c| c.version) {
                self.out.ack = Some(outbox::AckIntent {
                    kind,
                    id: a.packet_id,
                    version,
                });
            }
        }
        let packet = match kind {
            PacketType::PubAck => Packet::PubAck(a),
            PacketType::PubRec => Packet::PubRec(a),
            PacketType::PubRel => Packet::PubRel(a),
            _ => Packet::PubComp(a),
        };
        self.send_packet(conn, &packet);
    }

    fn send_packet(&mut self, conn: ConnId, packet: &Packet) {
        if let Some(version) = self.conns.get(&conn).map(|c| c.version) {
            self.send(conn, version, packet);
        }
    }

    /// Encodes `packet` for `conn` into the scratch buffer and queues it.
    fn send(&mut self, conn: ConnId, version: ProtocolVersion, packet: &Packet) {
        let mark = self.buf.len();
        if codec::encode(packet, version, &mut self.buf).is_err() {
            // invariant: the broker only builds packets valid in the connection's version.
            self.buf.truncate(mark);
            return;
        }
        let bytes = self.buf.split().freeze();
        let max = self
            .conns
            .get(&conn)
            .map_or(u32::MAX, |c| c.client_max_packet);
        if bytes.len() > max as usize {
            // [MQTT-3.1.2-24] nothing larger than the client's Maximum Packet Size: leave out
            // the optional properties and try again.
            if let Some(smaller) = without_optional_properties(packet) {
                return self.send(conn, version, &smaller);
            }
        }
        if let Some(c) = self.conns.get_mut(&conn) {
            c.pending_write += bytes.len();
        }
        self.stats.bytes_sent += bytes.len() as u64;
        self.out.push(Transmit {
            conn,
            bytes,
            payload: bytes::Bytes::new(),
        });
    }
}

/// The packet with only the properties the client cannot do without, or `None` if it has
/// nothing left to leave out.
fn without_optional_properties(packet: &Packet) -> Option<Packet> {
    match packet {
        Packet::ConnAck(c) => {
            // The client needs its assigned identifier and the keep alive it must use.
            let essential = ConnAckProperties {
                assigned_client_identifier: c.properties.assigned_client_identifier.clone(),
                server_keep_alive: c.properties.server_keep_alive,
                ..Default::default()
            };
            let next = if c.properties == essential {
                if essential == ConnAckProperties::default() {
                    return None;
                }
                ConnAckProperties::default()
            } else {
                essential
            };
            Some(Packet::ConnAck(Box::new(ConnAck {
                properties: next,
                ..(**c).clone()
            })))
        }
        Packet::Disconnect(d) if d.properties != DisconnectProperties::default() => {
            Some(Packet::Disconnect(Box::new(Disconnect {
                reason_code: d.reason_code,
                properties: DisconnectProperties::default(),
            })))
        }
        _ => None,
    }
}

fn ack(id: PacketId, code: ReasonCode) -> Ack {
    let mut a = Ack::new(id);
    a.reason_code = code;
    a
}
