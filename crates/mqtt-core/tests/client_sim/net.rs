//! Clients wired to the real broker in memory, on a virtual clock.
//!
//! Every input is followed by a full drain of both sides until nothing moves: the client's
//! transmits go to the broker's `handle_bytes`, the broker's to the client's, a `Close` from
//! the broker or a `Disconnected` from the client closes the link both ways. The packets on
//! each link are decoded and logged for the tests to look at.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use mqtt_core::broker::{Broker, BrokerConfig, BrokerEvent, ConnId, PeerInfo};
use mqtt_core::client::{Client, ClientEvent, ClientOptions};
use mqtt_core::codec::{self, DecodeLimits};
use mqtt_core::{Packet, ProtocolVersion};

/// More rounds than this in one drain means the two sides loop.
const MAX_ROUNDS: usize = 100_000;
/// More timer firings than this in one `advance` means a timer re-arms without progress.
const MAX_FIRINGS: usize = 100_000;

/// One client and its link.
pub(crate) struct Node {
    pub(crate) client: Client,
    version: ProtocolVersion,
    conn: Option<ConnId>,
    /// Events not yet looked at.
    pub(crate) events: VecDeque<ClientEvent>,
    /// Packets the client sent, decoded.
    pub(crate) sent: Vec<Packet>,
    /// Packets the broker sent the client, decoded.
    pub(crate) received: Vec<Packet>,
    sent_raw: BytesMut,
    received_raw: BytesMut,
    /// While set, what the client sends stays in `uplink` (a stalled relay): lost if the
    /// link drops, delivered once it is cleared.
    pub(crate) stall: bool,
    uplink: BytesMut,
}

/// The broker, its clients and the clock.
pub(crate) struct Net {
    pub(crate) broker: Broker,
    pub(crate) now: Instant,
    base: Instant,
    pub(crate) nodes: Vec<Node>,
}

impl Net {
    /// A broker with `config` and no clients.
    pub(crate) fn new(config: BrokerConfig) -> Self {
        // The one real instant of the simulation: a base the virtual clock counts from.
        // Only offsets from it matter, so every run is the same.
        #[allow(clippy::disallowed_methods)]
        let base = Instant::now();
        Self {
            broker: Broker::new(config),
            now: base,
            base,
            nodes: Vec::new(),
        }
    }

    /// Virtual time since the start.
    pub(crate) fn elapsed(&self) -> Duration {
        self.now - self.base
    }

    /// Adds a client; returns its index.
    pub(crate) fn add(&mut self, options: ClientOptions) -> usize {
        self.nodes.push(Node {
            version: options.version,
            client: Client::new(options),
            conn: None,
            events: VecDeque::new(),
            sent: Vec::new(),
            received: Vec::new(),
            sent_raw: BytesMut::new(),
            received_raw: BytesMut::new(),
            stall: false,
            uplink: BytesMut::new(),
        });
        self.nodes.len() - 1
    }

    /// Opens a link for client `i` and connects it.
    pub(crate) fn open(&mut self, i: usize) {
        let conn = self.broker.accept(
            self.now,
            PeerInfo {
                addr: None,
                tls: false,
            },
        );
        self.nodes[i].conn = Some(conn);
        self.nodes[i].client.connect(self.now).expect("connect");
        self.settle();
    }

    /// Adds a client and connects it; the `Connected` event must come.
    #[track_caller]
    pub(crate) fn connect(&mut self, options: ClientOptions) -> usize {
        let i = self.add(options);
        self.open(i);
        let events = self.events(i);
        assert!(
            matches!(events.first(), Some(ClientEvent::Connected { .. })),
            "{events:?}"
        );
        i
    }

    /// Client `i`'s link goes down without a word: both sides hear the transport closed.
    pub(crate) fn drop_link(&mut self, i: usize) {
        self.nodes[i].uplink.clear();
        if let Some(conn) = self.nodes[i].conn.take() {
            self.broker.handle_closed(self.now, conn);
            self.nodes[i].client.handle_disconnect(self.now);
        }
        self.settle();
    }

    /// Whether client `i` has a link.
    pub(crate) fn is_linked(&self, i: usize) -> bool {
        self.nodes[i].conn.is_some()
    }

    /// Runs `f` on client `i` at the current instant, then settles.
    pub(crate) fn with<R>(
        &mut self,
        i: usize,
        f: impl FnOnce(&mut Client, std::time::Instant) -> R,
    ) -> R {
        let now = self.now;
        let r = f(&mut self.nodes[i].client, now);
        self.settle();
        r
    }

    /// Events of client `i` since the last look.
    pub(crate) fn events(&mut self, i: usize) -> Vec<ClientEvent> {
        self.nodes[i].events.drain(..).collect()
    }

    /// Moves the clock forward by `d`, firing every timer of the broker and the clients at
    /// its own instant, in order.
    pub(crate) fn advance(&mut self, d: Duration) {
        let target = self.now + d;
        for _ in 0..MAX_FIRINGS {
            let next = self
                .nodes
                .iter()
                .filter_map(|n| n.client.poll_timeout())
                .chain(self.broker.poll_timeout())
                .min();
            match next {
                Some(at) if at <= target => {
                    self.now = self.now.max(at);
                    self.broker.handle_timeout(self.now);
                    for n in &mut self.nodes {
                        n.client.handle_timeout(self.now);
                    }
                    self.settle();
                }
                _ => {
                    self.now = target;
                    return;
                }
            }
        }
        panic!("more than {MAX_FIRINGS} timer firings in {d:?}");
    }

    /// `advance` by whole seconds.
    pub(crate) fn advance_secs(&mut self, secs: u64) {
        self.advance(Duration::from_secs(secs));
    }

    /// Moves bytes both ways until neither side has anything more to say.
    pub(crate) fn settle(&mut self) {
        for _ in 0..MAX_ROUNDS {
            let mut moved = false;
            // Clients to the broker.
            for i in 0..self.nodes.len() {
                let node = &mut self.nodes[i];
                let mut buf = BytesMut::new();
                while node.client.poll_transmit(self.now, &mut node.uplink) > 0 {}
                if !node.stall || node.conn.is_none() {
                    buf = node.uplink.split();
                }
                let mut closed = false;
                while let Some(e) = node.client.poll_event() {
                    if matches!(
                        e,
                        ClientEvent::Disconnected { .. } | ClientEvent::ConnectionRefused { .. }
                    ) {
                        closed = true;
                    }
                    node.events.push_back(e);
                }
                if !buf.is_empty() {
                    moved = true;
                    node.sent_raw.extend_from_slice(&buf);
                    log(&mut node.sent_raw, node.version, &mut node.sent);
                    if let Some(conn) = node.conn {
                        self.broker.handle_bytes(self.now, conn, &mut buf);
                    }
                }
                if closed {
                    // The adapter wrote the last bytes and closes the transport.
                    self.nodes[i].uplink.clear();
                    if let Some(conn) = self.nodes[i].conn.take() {
                        moved = true;
                        self.broker.handle_closed(self.now, conn);
                    }
                }
            }
            // The broker to the clients.
            while let Some(t) = self.broker.poll_transmit() {
                moved = true;
                let Some(node) = self.nodes.iter_mut().find(|n| n.conn == Some(t.conn)) else {
                    continue;
                };
                let mut buf = BytesMut::new();
                buf.extend_from_slice(&t.bytes);
                buf.extend_from_slice(&t.payload);
                node.received_raw.extend_from_slice(&buf);
                log(&mut node.received_raw, node.version, &mut node.received);
                node.client.handle_bytes(self.now, &mut buf);
                self.broker.handle_written(self.now, t.conn, t.len());
            }
            while let Some(e) = self.broker.poll_event() {
                if let BrokerEvent::Close { conn, .. } = e {
                    moved = true;
                    if let Some(node) = self.nodes.iter_mut().find(|n| n.conn == Some(conn)) {
                        node.conn = None;
                        node.uplink.clear();
                        node.client.handle_disconnect(self.now);
                    }
                }
            }
            if !moved {
                return;
            }
        }
        panic!("the link never settles");
    }
}

/// Decodes the whole packets of `raw` into `log`.
fn log(raw: &mut BytesMut, version: ProtocolVersion, log: &mut Vec<Packet>) {
    while let Ok(Some(p)) = codec::decode(raw, version, &DecodeLimits::default()) {
        log.push(p);
    }
}
