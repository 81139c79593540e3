//! What the client asks for when it connects, the limits it keeps, and its reconnect backoff.

use core::time::Duration;

use bytes::Bytes;
use bytestring::ByteString;

use crate::packet::{ConnectProperties, ProtocolVersion, Will};

/// Client behaviour and limits. [`ClientOptions::new`] gives sensible defaults; change the
/// public fields to taste before handing the options to [`super::Client::new`].
///
/// Every queue the client keeps is bounded by a field here, each with a defined behaviour
/// when it is full.
#[derive(Debug, Clone, PartialEq)]
pub struct ClientOptions {
    /// The protocol version spoken; every packet is coded in it.
    pub version: ProtocolVersion,
    /// Client Identifier. Empty asks the server to assign one (5.0 reports it in CONNACK, and
    /// the client keeps it for reconnects).
    pub client_id: ByteString,
    /// Clean Start (5.0) / Clean Session (3.x) of the first CONNECT.
    ///
    /// In 3.x every CONNECT carries it. In 5.0 only the first does: once a session exists,
    /// reconnects ask to resume it (Clean Start 0), and the server's Session Present says
    /// whether it could. Whether a session outlives a connection at all is the Session
    /// Expiry Interval's business (`connect_properties`).
    pub clean_start: bool,
    /// Keep Alive, in whole seconds (at most 65,535); zero turns it off. A 5.0 server may
    /// replace it with its Server Keep Alive.
    pub keep_alive: Duration,
    /// How long to wait for CONNACK after CONNECT before giving the connection up.
    pub connect_timeout: Duration,
    /// User Name.
    pub username: Option<ByteString>,
    /// Password.
    pub password: Option<Bytes>,
    /// The will message, with its 5.0 properties.
    pub will: Option<Will>,
    /// CONNECT properties (5.0; ignored on the wire by 3.x). Some are also the client's own
    /// limits, enforced in every version:
    /// - `receive_maximum`: QoS 1/2 messages the server may have unacknowledged towards the
    ///   client (default 65,535). More: DISCONNECT 0x93.
    /// - `maximum_packet_size`: the largest packet accepted. Larger: DISCONNECT 0x95.
    /// - `topic_alias_maximum`: aliases the server may use (default 0). Above: 0x94.
    /// - `authentication_method` / `authentication_data`: enhanced authentication.
    pub connect_properties: ConnectProperties,
    /// Outgoing QoS 1/2 messages in flight at once, further capped by the server's Receive
    /// Maximum. Messages beyond the window wait in the queue.
    pub max_inflight: u16,
    /// Messages waiting for a window slot (or for a connection). Beyond it `publish` returns
    /// [`super::PublishError::QueueFull`]: back-pressure, not growth.
    pub max_queued: usize,
    /// SUBSCRIBE and UNSUBSCRIBE requests waiting for their acknowledgement. Beyond it
    /// `subscribe` and `unsubscribe` return [`super::RequestError::TooManyRequests`].
    pub max_requests: usize,
    /// Size of the table of outgoing topic aliases the client assigns by itself (5.0),
    /// further capped by the server's Topic Alias Maximum. 0 sends no aliases.
    pub topic_alias_maximum_out: u16,
    /// When `true`, incoming QoS 1/2 messages carry an [`super::AckToken`] and are
    /// acknowledged only when the application hands it back to [`super::Client::ack`];
    /// when `false` they are acknowledged as they are received.
    pub manual_acks: bool,
    /// The first reconnect delay.
    pub backoff_initial: Duration,
    /// The longest reconnect delay.
    pub backoff_max: Duration,
    /// Each failed attempt multiplies the delay by this (at least 1).
    pub backoff_multiplier: f64,
    /// Fraction of each delay, 0 to 1, that is taken off at random (seeded).
    pub backoff_jitter: f64,
    /// Seed of the backoff jitter: the same seed gives the same delays.
    pub seed: u64,
    /// Emit the session's state as store operations ([`super::ClientEvent::Store`]) and
    /// hold what promises durability until [`super::Client::handle_stored`] says it is
    /// durable (default `false`). Only a persistent session is stored: Clean Start 0, or a
    /// 5.0 Session Expiry Interval above 0. See [`super::store`].
    pub persistence: bool,
}

impl ClientOptions {
    /// MQTT 5.0, `client_id`, Clean Start, a 60 s keep alive, 100 messages in flight, 1,000
    /// queued, no topic aliases, automatic acknowledgements, reconnects from 1 s doubling up
    /// to 60 s with 20 % jitter, no persistence.
    pub fn new(client_id: impl Into<ByteString>) -> Self {
        Self {
            version: ProtocolVersion::V5,
            client_id: client_id.into(),
            clean_start: true,
            keep_alive: Duration::from_secs(60),
            connect_timeout: Duration::from_secs(30),
            username: None,
            password: None,
            will: None,
            connect_properties: ConnectProperties::default(),
            max_inflight: 100,
            max_queued: 1000,
            max_requests: 64,
            topic_alias_maximum_out: 0,
            manual_acks: false,
            backoff_initial: Duration::from_secs(1),
            backoff_max: Duration::from_secs(60),
            backoff_multiplier: 2.0,
            backoff_jitter: 0.2,
            seed: 0,
            persistence: false,
        }
    }

    /// How long to wait before reconnect attempt `attempt` (0 for the first after a loss).
    ///
    /// `backoff_initial` times `backoff_multiplier` to the power `attempt`, capped at
    /// `backoff_max`, less a seeded random fraction of at most `backoff_jitter`. The same
    /// options and attempt always give the same delay, and it never exceeds `backoff_max`.
    pub fn backoff(&self, attempt: u32) -> Duration {
        let max = self.backoff_max.as_secs_f64();
        let multiplier = if self.backoff_multiplier.is_finite() {
            self.backoff_multiplier.max(1.0)
        } else {
            1.0
        };
        let exponent = i32::try_from(attempt).unwrap_or(i32::MAX);
        let base = (self.backoff_initial.as_secs_f64() * multiplier.powi(exponent)).min(max);
        let jitter = if self.backoff_jitter.is_finite() {
            self.backoff_jitter.clamp(0.0, 1.0)
        } else {
            0.0
        };
        // 53 random bits make a uniform fraction in [0, 1).
        let r = (splitmix(self.seed ^ u64::from(attempt)) >> 11) as f64 / (1u64 << 53) as f64;
        let secs = (base * (1.0 - jitter * r)).clamp(0.0, max);
        Duration::try_from_secs_f64(secs).unwrap_or(self.backoff_max)
    }

    /// The Keep Alive field of CONNECT: whole seconds, saturating at 65,535.
    pub(crate) fn keep_alive_secs(&self) -> u16 {
        u16::try_from(self.keep_alive.as_secs()).unwrap_or(u16::MAX)
    }
}

/// SplitMix64: one step, as a hash of `x`.
fn splitmix(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}
