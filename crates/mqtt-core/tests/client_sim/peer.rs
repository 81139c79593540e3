//! A scripted server: the test encodes what the server says and decodes what the client
//! sent, one packet at a time, on a virtual clock.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use mqtt_core::client::{Client, ClientEvent, ClientOptions, PublishId, PublishRequest};
use mqtt_core::codec::{self, DecodeLimits};
use mqtt_core::packet::{ConnAck, ConnAckProperties, Connect};
use mqtt_core::{Packet, ProtocolVersion, Publish, QoS, ReasonCode};

/// More timer firings than this in one `advance` means a timer re-arms without progress.
const MAX_FIRINGS: usize = 10_000;

/// One client and the scripted server in front of it.
pub(crate) struct Scripted {
    pub(crate) client: Client,
    pub(crate) now: Instant,
    base: Instant,
    version: ProtocolVersion,
    /// Bytes the client sent, not yet decoded by the test.
    wire: BytesMut,
    events: VecDeque<ClientEvent>,
}

impl Scripted {
    /// A client with `options`, not connected.
    pub(crate) fn new(options: ClientOptions) -> Self {
        // The one real instant of the simulation: a base the virtual clock counts from.
        // Only offsets from it matter, so every run is the same.
        #[allow(clippy::disallowed_methods)]
        let base = Instant::now();
        Self {
            version: options.version,
            client: Client::new(options),
            now: base,
            base,
            wire: BytesMut::new(),
            events: VecDeque::new(),
        }
    }

    /// A scripted server in front of `client` (one made by `Client::recover`, say), at `now`.
    pub(crate) fn with_client(client: Client, now: Instant) -> Self {
        Self {
            version: client.options().version,
            client,
            now,
            base: now,
            wire: BytesMut::new(),
            events: VecDeque::new(),
        }
    }

    /// A client with `options`, connected by a CONNACK 0x00 with `props`; the CONNECT and
    /// the `Connected` event are consumed.
    pub(crate) fn connected_with(options: ClientOptions, props: ConnAckProperties) -> Self {
        let mut s = Self::new(options);
        s.open();
        s.send(Packet::ConnAck(Box::new(ConnAck {
            session_present: false,
            reason_code: ReasonCode::Success,
            properties: props,
        })));
        let events = s.events();
        assert!(
            matches!(events.as_slice(), [ClientEvent::Connected { .. }]),
            "{events:?}"
        );
        s
    }

    /// `connected_with` and a CONNACK without properties.
    pub(crate) fn connected(options: ClientOptions) -> Self {
        Self::connected_with(options, ConnAckProperties::default())
    }

    /// Virtual time since the start.
    pub(crate) fn elapsed(&self) -> Duration {
        self.now - self.base
    }

    /// A new transport: `connect`, and the CONNECT it sent.
    #[track_caller]
    pub(crate) fn open(&mut self) -> Connect {
        self.client.connect(self.now).expect("connect");
        self.drain();
        match self.sent().as_slice() {
            [Packet::Connect(c)] => (**c).clone(),
            other => panic!("expected one CONNECT, got {other:?}"),
        }
    }

    /// The transport is lost.
    pub(crate) fn lose_link(&mut self) {
        self.client.handle_disconnect(self.now);
        self.drain();
    }

    /// The server sends `packet`.
    #[track_caller]
    pub(crate) fn send(&mut self, packet: impl ToPacket) {
        let packet = packet.to_packet();
        let mut wire = BytesMut::new();
        codec::encode(&packet, self.version, &mut wire)
            .unwrap_or_else(|e| panic!("test bug: cannot encode {packet:?}: {e}"));
        self.send_bytes(&wire);
    }

    /// The server sends raw bytes, which arrive one byte at a time: every packet is also a
    /// partial read.
    pub(crate) fn send_bytes(&mut self, bytes: &[u8]) {
        let mut buf = BytesMut::new();
        for b in bytes {
            buf.extend_from_slice(&[*b]);
            self.client.handle_bytes(self.now, &mut buf);
            self.drain();
        }
    }

    /// A publish command.
    #[track_caller]
    pub(crate) fn publish(&mut self, t: &str, payload: &str, qos: QoS) -> PublishId {
        let id = self
            .client
            .publish(
                self.now,
                PublishRequest::new(crate::topic(t), payload.to_owned()).with_qos(qos),
            )
            .expect("publish");
        self.drain();
        id
    }

    /// Moves the clock forward by `d`, calling `handle_timeout` at every deadline on the way.
    pub(crate) fn advance(&mut self, d: Duration) {
        let target = self.now + d;
        for _ in 0..MAX_FIRINGS {
            match self.client.poll_timeout() {
                Some(at) if at <= target => {
                    self.now = self.now.max(at);
                    self.client.handle_timeout(self.now);
                    self.drain();
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

    /// After an input: drain transmits, then events, as an adapter does.
    pub(crate) fn drain(&mut self) {
        while self.client.poll_transmit(self.now, &mut self.wire) > 0 {}
        while let Some(e) = self.client.poll_event() {
            self.events.push_back(e);
        }
        assert_eq!(self.client.poll_transmit(self.now, &mut self.wire), 0);
    }

    /// Every packet the client sent since the last look.
    #[track_caller]
    pub(crate) fn sent(&mut self) -> Vec<Packet> {
        let mut out = Vec::new();
        loop {
            match codec::decode(&mut self.wire, self.version, &DecodeLimits::default()) {
                Ok(Some(p)) => out.push(p),
                Ok(None) => break,
                Err(e) => panic!("client sent bytes that do not decode: {e}"),
            }
        }
        assert!(self.wire.is_empty(), "client left a partial packet");
        out
    }

    /// Every event since the last look.
    pub(crate) fn events(&mut self) -> Vec<ClientEvent> {
        self.events.drain(..).collect()
    }
}

/// What the scripted server can send: a packet, or a PUBLISH as it is.
pub(crate) trait ToPacket {
    fn to_packet(self) -> Packet;
}

impl ToPacket for Packet {
    fn to_packet(self) -> Packet {
        self
    }
}

impl ToPacket for Publish {
    fn to_packet(self) -> Packet {
        Packet::Publish(self)
    }
}
