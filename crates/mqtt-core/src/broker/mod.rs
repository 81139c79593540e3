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
mod connection;
mod event;
mod retained;
mod route;
mod session;
mod subscriptions;
mod sys;
mod will;

use core::num::NonZeroU32;
use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

use bytes::BytesMut;
use bytestring::ByteString;

pub use config::{BrokerConfig, Limits, QueueFullPolicy};
pub use event::{AuthDecision, AuthRequest, BrokerEvent, CloseReason, ConnId, PeerInfo, Transmit};

use crate::codec::{self, DecodeError, DecodeLimits};
use crate::packet::*;
use crate::timer::TimerQueue;
use crate::topic::TopicFilter;
use connection::{Connection, OutAliases, Phase};
use retained::Retained;
use route::{Delivery, Message};
use session::{OutState, Session};
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
    conns: HashMap<ConnId, Connection>,
    sessions: HashMap<ByteString, Session>,
    subs: Subscriptions,
    retained: Retained<Message>,
    timers: TimerQueue<Timer>,
    transmits: VecDeque<Transmit>,
    events: VecDeque<BrokerEvent>,
    rng: Rng,
    stats: Stats,
    started: Option<Instant>,
    /// Scratch space every outgoing packet is encoded into, then split off as `Bytes`.
    buf: BytesMut,
    routes: Vec<Route>,
    /// During one fan-out: the PUBLISH headers already encoded, by (version, RETAIN), for
    /// copies that can share them.
    wire_forms: Option<Vec<(ProtocolVersion, bool, bytes::Bytes)>>,
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
            conns: HashMap::new(),
            sessions: HashMap::new(),
            subs: Subscriptions::new(),
            timers: TimerQueue::new(),
            transmits: VecDeque::new(),
            events: VecDeque::new(),
            stats: Stats::default(),
            started: None,
            buf: BytesMut::with_capacity(64 * 1024),
            routes: Vec::new(),
            wire_forms: None,
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
                    self.stats.bytes_received += (before - buf.len()) as u64;
                    self.handle_packet(now, conn, packet);
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
    /// [`Broker::version_of`] and the limits from [`Broker::decode_limits`]).
    pub fn handle_packet(&mut self, now: Instant, conn: ConnId, packet: Packet) {
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
        self.transmits.pop_front()
    }

    /// The next event for the application.
    pub fn poll_event(&mut self) -> Option<BrokerEvent> {
        self.events.pop_front()
    }

    /// When [`Broker::handle_timeout`] must be called next.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.timers.next()
    }

    fn start(&mut self, now: Instant) {
        if self.started.is_none() {
            self.started = Some(now);
            if let Some(every) = self.config.sys_interval {
                self.timers.insert(now + every, Timer::Sys);
            }
        }
    }

    // ---- CONNECT ----

    fn on_connect(&mut self, now: Instant, conn: ConnId, connect: Box<Connect>) {
        let version = connect.protocol_version;
        if let Some(c) = self.conns.get_mut(&conn) {
            c.version = version;
        }
        let limits = &self.config.limits;
        let refusal = if self.conns.len() > limits.max_connections {
            Some(ReasonCode::ServerBusy)
        } else if connect.client_id.len() > limits.max_client_id_len {
            Some(ReasonCode::ClientIdentifierNotValid)
        } else if connect.client_id.is_empty()
            && (version == ProtocolVersion::V31
                || version == ProtocolVersion::V311 && !connect.clean_start)
        {
            // [MQTT-3.1.3-8] an empty id needs a clean session in 3.1.1; 3.1 requires an id.
            Some(ReasonCode::ClientIdentifierNotValid)
        } else if connect
            .will
            .as_ref()
            .is_some_and(|w| w.topic.levels().count() > limits.max_topic_levels)
        {
            Some(ReasonCode::TopicNameInvalid)
        } else if connect.properties.authentication_method.is_some() {
            // Enhanced authentication methods are not offered [MQTT-3.2.2-?]: refuse.
            Some(ReasonCode::BadAuthenticationMethod)
        } else if let Some(w) = connect
            .will
            .as_ref()
            .filter(|w| w.qos > self.config.maximum_qos && version.is_v5())
        {
            // [MQTT-3.2.2-12] a will QoS above Maximum QoS is refused with 0x9B.
            let _ = w;
            Some(ReasonCode::QoSNotSupported)
        } else if connect
            .will
            .as_ref()
            .is_some_and(|w| w.retain && !self.config.retain_available && version.is_v5())
        {
            // [MQTT-3.2.2-13]
            Some(ReasonCode::RetainNotSupported)
        } else {
            None
        };
        if let Some(code) = refusal {
            self.refuse(now, conn, version, code);
            return;
        }
        if self.config.authenticate {
            let peer = self.conns.get(&conn).map(|c| c.peer.clone());
            let request = AuthRequest {
                client_id: connect.client_id.clone(),
                username: connect.username.clone(),
                password: connect.password.clone(),
                version,
                peer: peer.unwrap_or(PeerInfo {
                    addr: None,
                    tls: false,
                }),
            };
            if let Some(c) = self.conns.get_mut(&conn) {
                c.phase = Phase::AwaitingAuth(connect);
            }
            self.events
                .push_back(BrokerEvent::Authenticate { conn, request });
            return;
        }
        self.complete_connect(now, conn, connect);
    }

    fn refuse(&mut self, now: Instant, conn: ConnId, version: ProtocolVersion, code: ReasonCode) {
        // [MQTT-3.2.2-6] a refusal carries Session Present 0 and closes the connection.
        self.send_connack(conn, version, false, code, Default::default());
        self.close(now, conn, CloseReason::ConnectRefused(code), None);
    }

    fn complete_connect(&mut self, now: Instant, conn: ConnId, connect: Box<Connect>) {
        let Connect {
            protocol_version: version,
            clean_start,
            keep_alive,
            client_id,
            will,
            properties,
            ..
        } = *connect;
        let mut ack = ConnAckProperties::default();
        let client_id = if client_id.is_empty() {
            let id = ByteString::from(format!("auto-{:016x}", self.rng.next()));
            if version.is_v5() {
                // [MQTT-3.2.2-16]
                ack.assigned_client_identifier = Some(id.clone());
            }
            id
        } else {
            client_id
        };

        // Takeover: [MQTT-3.1.4-3] the connection already using this client id is closed.
        if let Some(old) = self.sessions.get(&client_id).and_then(|s| s.conn) {
            if old != conn && self.conns.contains_key(&old) {
                let code = (self.conns.get(&old).map(|c| c.version) == Some(ProtocolVersion::V5))
                    .then_some(ReasonCode::SessionTakenOver);
                self.close(now, old, CloseReason::SessionTakenOver, code);
            }
        }

        // Session expiry: 5.0 says it in CONNECT; 3.x persistent sessions never expire.
        let expiry = if version.is_v5() {
            let asked = properties.session_expiry_interval.unwrap_or(0);
            let granted = asked.min(self.config.max_session_expiry);
            if granted != asked {
                ack.session_expiry_interval = Some(granted);
            }
            granted
        } else if clean_start {
            0
        } else {
            u32::MAX
        };

        // [MQTT-3.1.2-4] Clean Start discards any existing session.
        if clean_start {
            self.discard_session(&client_id);
        }
        let session_present = self.sessions.contains_key(&client_id);
        let session = self
            .sessions
            .entry(client_id.clone())
            .or_insert_with(|| Session::new(version));
        session.conn = Some(conn);
        session.version = version;
        session.expiry_interval = expiry;
        session.expires_at = None;
        // [MQTT-3.1.3-9] a new connection before the will delay ends cancels the will.
        session.pending_will = None;

        let limits = &self.config.limits;
        let mut keep_alive = keep_alive;
        let max_ka = self.config.max_keep_alive;
        if version.is_v5() && max_ka != 0 && (keep_alive == 0 || keep_alive > max_ka) {
            // [MQTT-3.2.2-21] the client must use the Server Keep Alive.
            keep_alive = max_ka;
            ack.server_keep_alive = Some(max_ka);
        }
        if version.is_v5() {
            ack.receive_maximum = NonZeroU16::new(limits.receive_maximum);
            ack.maximum_packet_size = NonZeroU32::new(limits.max_packet_size);
            ack.topic_alias_maximum =
                (limits.topic_alias_maximum > 0).then_some(limits.topic_alias_maximum);
            if self.config.maximum_qos != QoS::ExactlyOnce {
                ack.maximum_qos = Some(self.config.maximum_qos);
            }
            if !self.config.retain_available {
                ack.retain_available = Some(false);
            }
            if !self.config.wildcard_subscriptions {
                ack.wildcard_subscription_available = Some(false);
            }
            if !self.config.subscription_identifiers {
                ack.subscription_identifiers_available = Some(false);
            }
            if !self.config.shared_subscriptions {
                ack.shared_subscription_available = Some(false);
            }
        }
        let Some(c) = self.conns.get_mut(&conn) else {
            return;
        };
        c.phase = Phase::Connected;
        c.session = Some(client_id.clone());
        c.keep_alive = Duration::from_secs(u64::from(keep_alive));
        c.client_receive_max = properties.receive_maximum.map_or(u16::MAX, |v| v.get());
        c.client_max_packet = properties.maximum_packet_size.map_or(u32::MAX, |v| v.get());
        c.request_problem_info = properties.request_problem_information.unwrap_or(true);
        c.aliases_out = OutAliases::new(properties.topic_alias_maximum.unwrap_or(0));
        c.will = will;
        c.connect_expiry = expiry;
        if let Some(deadline) = c.keep_alive_deadline() {
            self.timers.insert(deadline, Timer::KeepAlive(conn));
        }
        self.send_connack(conn, version, session_present, ReasonCode::Success, ack);
        self.events.push_back(BrokerEvent::Connected {
            conn,
            client_id: client_id.clone(),
            version,
            session_present,
        });
        self.resume(now, conn);
        // Packets pipelined behind CONNECT while authentication ran.
        while let Some(p) = self
            .conns
            .get_mut(&conn)
            .and_then(|c| c.pending.pop_front())
        {
            self.on_packet(now, conn, p);
        }
    }

    /// [MQTT-4.4.0-1] on a resumed session, PUBRELs are sent again, and unacknowledged
    /// PUBLISH packets again with DUP set, in order, as the new connection's window allows
    /// (`pump`); then queued messages follow.
    fn resume(&mut self, now: Instant, conn: ConnId) {
        let Some(session) = self.session_of(conn) else {
            return;
        };
        let mut releases = Vec::new();
        for f in &mut session.inflight {
            if f.state == OutState::Qos2Released {
                releases.push(f.id);
            } else {
                f.sent = false;
            }
        }
        for id in releases {
            self.send_ack(conn, PacketType::PubRel, Ack::new(id));
        }
        self.pump(now, conn);
    }

    fn send_connack(
        &mut self,
        conn: ConnId,
        version: ProtocolVersion,
        session_present: bool,
        reason_code: ReasonCode,
        properties: ConnAckProperties,
    ) {
        let packet = Packet::ConnAck(Box::new(ConnAck {
            session_present,
            reason_code,
            properties,
        }));
        self.send(conn, version, &packet);
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

    fn on_publish(&mut self, now: Instant, conn: ConnId, mut p: Publish) {
        let Some(c) = self.conns.get_mut(&conn) else {
            return;
        };
        let version = c.version;
        // Topic Alias from the client: [MQTT-3.3.2-9] [MQTT-3.3.2-10] within what we
        // announced, and an empty topic must name a known alias.
        if let Some(alias) = p.properties.topic_alias.take() {
            if alias.get() > self.config.limits.topic_alias_maximum {
                return self.protocol_error(now, conn, ReasonCode::TopicAliasInvalid);
            }
            if p.topic.is_empty() {
                match c.aliases_in.get(&alias.get()) {
                    Some(t) => p.topic = t.clone(),
                    None => return self.protocol_error(now, conn, ReasonCode::ProtocolError),
                }
            } else {
                c.aliases_in.insert(alias.get(), p.topic.clone());
            }
        }
        if p.topic.levels().count() > self.config.limits.max_topic_levels {
            return self.protocol_error(now, conn, ReasonCode::TopicNameInvalid);
        }
        // [MQTT-3.2.2-11] a QoS above Maximum QoS; [MQTT-3.3.1-?] RETAIN when not available.
        if p.qos > self.config.maximum_qos {
            return self.protocol_error(now, conn, ReasonCode::QoSNotSupported);
        }
        if p.retain && !self.config.retain_available {
            return self.protocol_error(now, conn, ReasonCode::RetainNotSupported);
        }
        let Some(client) = c.session.clone() else {
            return;
        };
        let receive_max = usize::from(self.config.limits.receive_maximum);
        let Some(session) = self.sessions.get_mut(&client) else {
            return;
        };
        if p.qos == QoS::ExactlyOnce {
            let Some(id) = p.packet_id else {
                return;
            };
            if session.incoming_qos2.contains(&id) {
                // [MQTT-4.3.3-?] a PUBLISH repeated before PUBREL is not delivered again.
                return self.send_ack(conn, PacketType::PubRec, Ack::new(id));
            }
            // [MQTT-3.3.4-7] more unacknowledged QoS 2 than Receive Maximum.
            if session.incoming_qos2.len() >= receive_max {
                return self.protocol_error(now, conn, ReasonCode::ReceiveMaximumExceeded);
            }
            session.incoming_qos2.insert(id);
        }
        self.stats.messages_received += 1;
        let routed = self.publish_message(now, &p, Some(client), version);
        let code = if routed == 0 && version.is_v5() {
            ReasonCode::NoMatchingSubscribers
        } else {
            ReasonCode::Success
        };
        match (p.qos, p.packet_id) {
            (QoS::AtLeastOnce, Some(id)) => self.send_ack(conn, PacketType::PubAck, ack(id, code)),
            (QoS::ExactlyOnce, Some(id)) => self.send_ack(conn, PacketType::PubRec, ack(id, code)),
            _ => {}
        }
    }

    /// Retains (if asked) and routes one message; returns how many subscribers it reached.
    fn publish_message(
        &mut self,
        now: Instant,
        p: &Publish,
        origin: Option<ByteString>,
        version: ProtocolVersion,
    ) -> usize {
        let mut properties = p.properties.clone();
        properties.subscription_identifiers.clear();
        properties.topic_alias = None;
        let expires_at = properties
            .message_expiry_interval
            .take()
            .filter(|_| version.is_v5())
            .map(|s| now + Duration::from_secs(u64::from(s)));
        let msg = Message {
            topic: p.topic.clone(),
            payload: p.payload.clone(),
            qos: p.qos,
            retain: p.retain,
            properties,
            expires_at,
            origin,
        };
        // Clients may not publish into $SYS: it is the broker's (spec 4.7.2 "SHOULD prevent"),
        // neither live nor by replacing what the broker retained there.
        if p.topic.starts_with("$SYS") && msg.origin.is_some() {
            return 0;
        }
        if p.retain {
            if p.payload.is_empty() {
                // [MQTT-3.3.1-6] [MQTT-3.3.1-7] an empty retained message clears the topic
                // and is not itself retained.
                self.retained.clear(&p.topic);
            } else if !self.retained.set(&p.topic, msg.clone()) {
                // [MQTT-3.3.1-5] replaces what was retained for the topic. Full: expired
                // messages (swept otherwise only with $SYS) make room first.
                self.retained.retain(&mut |_, m| !m.is_expired(now));
                self.retained.set(&p.topic, msg.clone());
            }
        }
        self.route(now, &msg)
    }

    fn on_puback(&mut self, now: Instant, conn: ConnId, a: &Ack) {
        if let Some(session) = self.session_of(conn) {
            if let Some(i) = session.inflight_position(a.packet_id) {
                if session.inflight.get(i).map(|f| f.state) == Some(OutState::Qos1Sent) {
                    session.inflight.remove(i);
                }
            }
        }
        self.pump(now, conn);
    }

    fn on_pubrec(&mut self, now: Instant, conn: ConnId, a: &Ack) {
        let Some(session) = self.session_of(conn) else {
            return;
        };
        let Some(i) = session.inflight_position(a.packet_id) else {
            // Unknown id: answer PUBREL "not found" so the client's flow can end.
            let mut rel = Ack::new(a.packet_id);
            rel.reason_code = ReasonCode::PacketIdentifierNotFound;
            return self.send_ack(conn, PacketType::PubRel, rel);
        };
        if a.reason_code.is_error() {
            // [MQTT-4.3.3-?] a failed PUBREC ends the flow.
            session.inflight.remove(i);
            return self.pump(now, conn);
        }
        if let Some(f) = session.inflight.get_mut(i) {
            f.state = OutState::Qos2Released;
            // The PUBREL goes out now, even if the PUBLISH was not resent on this connection.
            f.sent = true;
        }
        self.send_ack(conn, PacketType::PubRel, Ack::new(a.packet_id));
    }

    fn on_pubrel(&mut self, conn: ConnId, a: &Ack) {
        let Some(session) = self.session_of(conn) else {
            return;
        };
        let mut comp = Ack::new(a.packet_id);
        // [MQTT-4.3.3-?] the id is released; PUBCOMP either way, "not found" if unknown.
        if !session.incoming_qos2.remove(&a.packet_id) {
            comp.reason_code = ReasonCode::PacketIdentifierNotFound;
        }
        self.send_ack(conn, PacketType::PubComp, comp);
    }

    fn on_pubcomp(&mut self, now: Instant, conn: ConnId, a: &Ack) {
        if let Some(session) = self.session_of(conn) {
            if let Some(i) = session.inflight_position(a.packet_id) {
                if session.inflight.get(i).map(|f| f.state) == Some(OutState::Qos2Released) {
                    session.inflight.remove(i);
                }
            }
        }
        self.pump(now, conn);
    }

    fn on_subscribe(&mut self, now: Instant, conn: ConnId, s: Subscribe) {
        let Some(version) = self.conns.get(&conn).map(|c| c.version) else {
            return;
        };
        if s.properties.subscription_identifier.is_some() && !self.config.subscription_identifiers {
            return self.protocol_error(now, conn, ReasonCode::SubscriptionIdentifiersNotSupported);
        }
        let Some(client) = self.conns.get(&conn).and_then(|c| c.session.clone()) else {
            return;
        };
        let mut codes = Vec::with_capacity(s.subscriptions.len());
        let mut retained = Vec::new();
        for sub in &s.subscriptions {
            let code = self.subscribe_one(
                &client,
                sub,
                s.properties.subscription_identifier,
                &mut retained,
            );
            codes.push(code);
        }
        // [MQTT-3.8.4-1] SUBACK, with one code per filter in order [MQTT-3.8.4-6].
        let suback = SubAck {
            packet_id: s.packet_id,
            reason_codes: codes,
            properties: AckProperties::default(),
        };
        self.send(conn, version, &Packet::SubAck(suback));
        // Retained messages follow the SUBACK [MQTT-3.3.1-9]: with RETAIN set.
        for d in retained {
            if !d.msg.is_expired(now) {
                self.deliver(now, &client, d);
            }
        }
    }

    fn subscribe_one(
        &mut self,
        client: &ByteString,
        sub: &Subscription,
        id: Option<NonZeroU32>,
        retained: &mut Vec<Delivery>,
    ) -> ReasonCode {
        let filter = &sub.filter;
        let shared = filter.shared().is_some();
        if shared && !self.config.shared_subscriptions {
            return ReasonCode::SharedSubscriptionsNotSupported;
        }
        if filter.has_wildcards() && !self.config.wildcard_subscriptions {
            return ReasonCode::WildcardSubscriptionsNotSupported;
        }
        if filter.matching_filter().split('/').count() > self.config.limits.max_topic_levels {
            return ReasonCode::TopicFilterInvalid;
        }
        let Some(session) = self.sessions.get_mut(client) else {
            return ReasonCode::UnspecifiedError;
        };
        let key = filter.as_bytestring().clone();
        if !session.subscriptions.contains_key(&key)
            && session.subscriptions.len() >= self.config.limits.max_subscriptions_per_client
        {
            return ReasonCode::QuotaExceeded;
        }
        let mut options = sub.options;
        options.qos = options.qos.min(self.config.maximum_qos);
        let entry = SubEntry { options, id };
        session.subscriptions.insert(key, entry.clone());
        let existed = self.subs.insert(client, filter, entry).is_some();
        // Retained messages: Retain Handling 0 always, 1 only for a new subscription, 2 never
        // [MQTT-3.3.1-9] [MQTT-3.3.1-10] [MQTT-3.3.1-11]; never for shared subscriptions.
        let send = match options.retain_handling {
            RetainHandling::SendAtSubscribe => true,
            RetainHandling::SendIfNew => !existed,
            RetainHandling::DoNotSend => false,
        };
        if send && !shared && self.config.retain_available {
            self.retained.for_each_match(filter, &mut |_, m: &Message| {
                retained.push(Delivery {
                    msg: m.clone(),
                    qos: m.qos.min(options.qos),
                    retain: true,
                    sub_ids: id.into_iter().collect(),
                });
            });
        }
        match options.qos {
            QoS::AtMostOnce => ReasonCode::Success,
            QoS::AtLeastOnce => ReasonCode::GrantedQoS1,
            QoS::ExactlyOnce => ReasonCode::GrantedQoS2,
        }
    }

    fn on_unsubscribe(&mut self, conn: ConnId, u: Unsubscribe) {
        let Some(c) = self.conns.get(&conn) else {
            return;
        };
        let version = c.version;
        let Some(client) = c.session.clone() else {
            return;
        };
        let mut codes = Vec::with_capacity(u.filters.len());
        for f in &u.filters {
            if f.matching_filter().split('/').count() > self.config.limits.max_topic_levels {
                // Deeper than any subscription can be: nothing to remove.
                codes.push(ReasonCode::NoSubscriptionExisted);
                continue;
            }
            let removed = self
                .sessions
                .get_mut(&client)
                .and_then(|s| s.subscriptions.remove(f.as_bytestring()))
                .is_some();
            self.subs.remove(&client, f);
            codes.push(if removed {
                ReasonCode::Success
            } else {
                ReasonCode::NoSubscriptionExisted
            });
        }
        // [MQTT-3.10.4-4] [MQTT-3.10.4-5] UNSUBACK even when nothing matched.
        let ack = UnsubAck {
            packet_id: u.packet_id,
            reason_codes: codes,
            properties: AckProperties::default(),
        };
        self.send(conn, version, &Packet::UnsubAck(ack));
    }

    fn on_disconnect(&mut self, now: Instant, conn: ConnId, d: &Disconnect) {
        let Some(c) = self.conns.get_mut(&conn) else {
            return;
        };
        if let Some(expiry) = d.properties.session_expiry_interval {
            // [MQTT-3.14.2-2] a session that was to end with the connection cannot be
            // given an expiry on the way out.
            if c.connect_expiry == 0 && expiry != 0 {
                return self.protocol_error(now, conn, ReasonCode::ProtocolError);
            }
            if let Some(s) = c.session.as_ref().and_then(|s| self.sessions.get_mut(s)) {
                s.expiry_interval = expiry.min(self.config.max_session_expiry);
            }
        }
        // [MQTT-3.14.4-3] a normal DISCONNECT deletes the will; 0x04 asks for it to be sent.
        let send_will = d.reason_code == ReasonCode::DisconnectWithWill;
        if !send_will {
            c.will = None;
        }
        self.events.push_back(BrokerEvent::Close {
            conn,
            reason: CloseReason::ClientDisconnected,
        });
        self.drop_conn(now, conn, send_will);
    }

    // ---- closing ----

    /// Closes `conn` for a protocol violation: DISCONNECT with the reason code for 5.0, and
    /// the will is published [MQTT-3.1.2-8].
    fn protocol_error(&mut self, now: Instant, conn: ConnId, code: ReasonCode) {
        let connected = self.conns.get(&conn).is_some_and(|c| c.is_connected());
        self.close(
            now,
            conn,
            CloseReason::ProtocolViolation(code),
            connected.then_some(code),
        );
    }

    /// Closes `conn` from the broker's side: a DISCONNECT first when `disconnect` is given
    /// and the client speaks 5.0, then the Close event.
    fn close(
        &mut self,
        now: Instant,
        conn: ConnId,
        reason: CloseReason,
        disconnect: Option<ReasonCode>,
    ) {
        let Some(c) = self.conns.get(&conn) else {
            return;
        };
        if let (Some(code), ProtocolVersion::V5) = (disconnect, c.version) {
            // A Reason String says what went wrong; DISCONNECT may carry one whatever Request
            // Problem Information says [MQTT-3.1.2-29]; `send` leaves it out if it would
            // not fit the client's Maximum Packet Size [MQTT-3.1.2-24].
            let d = Disconnect {
                reason_code: code,
                properties: DisconnectProperties {
                    reason_string: Some(ByteString::from(reason.to_string())),
                    ..Default::default()
                },
            };
            self.send(conn, ProtocolVersion::V5, &Packet::Disconnect(d));
        }
        self.events.push_back(BrokerEvent::Close { conn, reason });
        self.drop_conn(now, conn, true);
    }

    /// Forgets `conn`; its session goes offline, and the will is handled if `will` is set.
    fn drop_conn(&mut self, now: Instant, conn: ConnId, will: bool) {
        let Some(c) = self.conns.remove(&conn) else {
            return;
        };
        let Some(client) = c.session else {
            return;
        };
        let Some(session) = self.sessions.get_mut(&client) else {
            return;
        };
        if session.conn != Some(conn) {
            // Taken over: the session lives on with its new connection.
            if will {
                if let Some(w) = c.will {
                    self.publish_will(now, w);
                }
            }
            return;
        }
        session.conn = None;
        let expiry = session.expiry_interval;
        if will {
            if let Some(w) = c.will {
                self.schedule_will(now, &client, w, expiry);
            }
        }
        self.session_went_offline(now, &client);
    }

    fn session_went_offline(&mut self, now: Instant, client: &ByteString) {
        let Some(session) = self.sessions.get_mut(client) else {
            return;
        };
        match session.expiry_interval {
            0 => self.end_session(now, client),
            u32::MAX => {}
            secs => {
                let at = now + Duration::from_secs(u64::from(secs));
                session.expires_at = Some(at);
                self.timers.insert(at, Timer::SessionExpiry(client.clone()));
            }
        }
    }

    /// A session ends: its subscriptions go, and a will still waiting is sent now
    /// [MQTT-3.1.3-9].
    fn end_session(&mut self, now: Instant, client: &ByteString) {
        let Some(session) = self.sessions.remove(client) else {
            return;
        };
        for filter in session.subscriptions.keys() {
            if let Ok(f) = TopicFilter::try_from(filter.clone()) {
                self.subs.remove(client, &f);
            }
        }
        if let Some((_, w)) = session.pending_will {
            self.publish_will(now, w);
        }
    }

    /// Drops a session without sending its will (Clean Start on a new connection).
    fn discard_session(&mut self, client: &ByteString) {
        if let Some(session) = self.sessions.remove(client) {
            for filter in session.subscriptions.keys() {
                if let Ok(f) = TopicFilter::try_from(filter.clone()) {
                    self.subs.remove(client, &f);
                }
            }
        }
    }

    fn check_keep_alive(&mut self, now: Instant, conn: ConnId) {
        let Some(deadline) = self.conns.get(&conn).and_then(|c| c.keep_alive_deadline()) else {
            return;
        };
        if deadline <= now {
            // [MQTT-3.1.2-24] v5 clients are told 0x8D first.
            self.close(
                now,
                conn,
                CloseReason::KeepAliveTimeout,
                Some(ReasonCode::KeepAliveTimeout),
            );
        } else {
            self.timers.insert(deadline, Timer::KeepAlive(conn));
        }
    }

    fn check_session_expiry(&mut self, now: Instant, client: &ByteString) {
        let due = self
            .sessions
            .get(client)
            .is_some_and(|s| s.conn.is_none() && s.expires_at.is_some_and(|t| t <= now));
        if due {
            self.end_session(now, client);
        }
    }

    // ---- output helpers ----

    fn session_of(&mut self, conn: ConnId) -> Option<&mut Session> {
        let client = self.conns.get(&conn)?.session.as_ref()?;
        self.sessions.get_mut(client)
    }

    fn send_ack(&mut self, conn: ConnId, kind: PacketType, a: Ack) {
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
        self.transmits.push_back(Transmit {
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
            Some(Packet::Disconnect(Disconnect {
                reason_code: d.reason_code,
                properties: DisconnectProperties::default(),
            }))
        }
        _ => None,
    }
}

fn ack(id: PacketId, code: ReasonCode) -> Ack {
    let mut a = Ack::new(id);
    a.reason_code = code;
    a
}

use core::num::NonZeroU16;
