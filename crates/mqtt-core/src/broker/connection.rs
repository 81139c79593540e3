//! Per-connection state: the protocol phase, what the client asked for in CONNECT (keep
//! alive, its limits), topic aliases both ways, and bytes waiting to be written.

use core::num::NonZeroU16;
use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

use bytestring::ByteString;

use super::event::PeerInfo;
use crate::packet::{Connect, Packet, ProtocolVersion, Will};
use crate::topic::TopicName;

/// Where a connection is in its life.
#[derive(Debug)]
pub(crate) enum Phase {
    /// Socket open, no CONNECT yet.
    AwaitingConnect,
    /// CONNECT received, waiting for the application's authentication answer; packets the
    /// client pipelines meanwhile wait in `pending`.
    AwaitingAuth(Box<Connect>),
    /// CONNACK sent.
    Connected,
}

#[derive(Debug)]
pub(crate) struct Connection {
    pub(crate) peer: PeerInfo,
    pub(crate) phase: Phase,
    pub(crate) version: ProtocolVersion,
    /// The session (client identifier) in use once connected.
    pub(crate) session: Option<ByteString>,
    pub(crate) keep_alive: Duration,
    pub(crate) last_seen: Instant,
    /// Limits the client declared (v5); defaults are "no limit".
    pub(crate) client_receive_max: u16,
    pub(crate) client_max_packet: u32,
    pub(crate) request_problem_info: bool,
    pub(crate) aliases_in: HashMap<u16, TopicName>,
    pub(crate) aliases_out: OutAliases,
    /// Boxed: most connections have none, and it is large beside the rest.
    pub(crate) will: Option<Box<Will>>,
    /// Session Expiry Interval the CONNECT asked for; DISCONNECT may change it, but not
    /// from zero [MQTT-3.14.2-2].
    pub(crate) connect_expiry: u32,
    /// Bytes handed out in transmits and not yet reported written.
    pub(crate) pending_write: usize,
    /// Packets received while waiting for the authentication answer.
    pub(crate) pending: VecDeque<Packet>,
}

impl Connection {
    pub(crate) fn new(peer: PeerInfo, now: Instant) -> Self {
        Self {
            peer,
            phase: Phase::AwaitingConnect,
            version: ProtocolVersion::V311,
            session: None,
            keep_alive: Duration::ZERO,
            last_seen: now,
            client_receive_max: u16::MAX,
            client_max_packet: u32::MAX,
            request_problem_info: true,
            aliases_in: HashMap::new(),
            aliases_out: OutAliases::new(0),
            will: None,
            connect_expiry: 0,
            pending_write: 0,
            pending: VecDeque::new(),
        }
    }

    pub(crate) fn is_connected(&self) -> bool {
        matches!(self.phase, Phase::Connected)
    }

    /// When the keep alive runs out: one and a half times the interval without a packet
    /// [MQTT-3.1.2-24]. `None` when keep alive is off.
    pub(crate) fn keep_alive_deadline(&self) -> Option<Instant> {
        if self.keep_alive.is_zero() {
            None
        } else {
            Some(self.last_seen + self.keep_alive * 3 / 2)
        }
    }
}

/// Topic aliases the broker assigns towards one client, up to the client's Topic Alias
/// Maximum. Once all are used, further topics go without an alias.
#[derive(Debug)]
pub(crate) struct OutAliases {
    max: u16,
    next: u16,
    map: HashMap<TopicName, NonZeroU16>,
}

impl OutAliases {
    pub(crate) fn new(max: u16) -> Self {
        Self {
            max,
            next: 0,
            map: HashMap::new(),
        }
    }

    /// Whether the client accepts aliases at all.
    pub(crate) fn is_enabled(&self) -> bool {
        self.max > 0
    }

    /// The alias to use for `topic`, and whether the client already knows it (then the topic
    /// name can be left empty).
    pub(crate) fn alias_for(&mut self, topic: &TopicName) -> Option<(NonZeroU16, bool)> {
        if self.max == 0 {
            return None;
        }
        if let Some(a) = self.map.get(topic) {
            return Some((*a, true));
        }
        if self.next >= self.max {
            return None;
        }
        self.next += 1;
        let alias = NonZeroU16::new(self.next)?;
        self.map.insert(topic.clone(), alias);
        Some((alias, false))
    }

    /// Forgets the alias of a message that was not sent after all, so the client is never
    /// sent an alias it was not told.
    pub(crate) fn forget(&mut self, topic: &TopicName) {
        self.map.remove(topic);
    }
}
