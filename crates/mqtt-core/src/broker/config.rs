//! What the broker allows and how much it will hold: every queue bound is named here.

use core::time::Duration;

use crate::packet::QoS;

/// Broker behaviour and limits. `Default` gives the embedded defaults of `mqtt broker`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrokerConfig {
    /// Seed of the broker's randomness: assigned client ids and shared-subscription picks.
    pub seed: u64,
    /// Limits on what a client can make the broker hold.
    pub limits: Limits,
    /// Ask the application about every CONNECT ([`super::BrokerEvent::Authenticate`]);
    /// when `false` every client is accepted, anonymous or not.
    pub authenticate: bool,
    /// The largest keep alive a client may use, in seconds; a v5 client asking for more (or
    /// for 0) is told Server Keep Alive. 0 means no maximum.
    pub max_keep_alive: u16,
    /// How long a socket may stay open without sending CONNECT.
    pub connect_timeout: Duration,
    /// The largest Session Expiry Interval granted, in seconds.
    pub max_session_expiry: u32,
    /// The highest QoS the broker supports (CONNACK Maximum QoS).
    pub maximum_qos: QoS,
    /// Whether retained messages are supported.
    pub retain_available: bool,
    /// Whether wildcard subscriptions are supported.
    pub wildcard_subscriptions: bool,
    /// Whether subscription identifiers are supported.
    pub subscription_identifiers: bool,
    /// Whether shared subscriptions are supported.
    pub shared_subscriptions: bool,
    /// How often `$SYS/broker/...` topics are published; `None` turns them off.
    pub sys_interval: Option<Duration>,
    /// The version string published in `$SYS/broker/version`.
    pub version: String,
    /// Emit [`super::BrokerEvent::Store`] for persistent sessions and retained messages, and
    /// hold the acknowledgements that promise durability until the store answers.
    pub persistence: bool,
}

impl Default for BrokerConfig {
    fn default() -> Self {
        Self {
            seed: 0x6d71_7474,
            limits: Limits::default(),
            authenticate: false,
            max_keep_alive: 65_535,
            connect_timeout: Duration::from_secs(10),
            max_session_expiry: u32::MAX,
            maximum_qos: QoS::ExactlyOnce,
            retain_available: true,
            wildcard_subscriptions: true,
            subscription_identifiers: true,
            shared_subscriptions: true,
            sys_interval: Some(Duration::from_secs(10)),
            version: concat!("mqtt-core ", env!("CARGO_PKG_VERSION")).to_string(),
            persistence: false,
        }
    }
}

/// Every bound on what a client can make the broker hold, with what happens when it is hit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// Largest packet accepted, fixed header included. Larger: DISCONNECT 0x95 and close.
    pub max_packet_size: u32,
    /// QoS 1/2 messages a client may have unacknowledged towards the broker (v5 Receive
    /// Maximum). More: DISCONNECT 0x93 and close.
    pub receive_maximum: u16,
    /// QoS 1/2 messages the broker sends a client before waiting for acknowledgements (capped
    /// by the client's own Receive Maximum). More wait in the session queue.
    pub max_inflight: u16,
    /// Messages queued per session (offline, or over the in-flight window). When full, the
    /// `queue_full` policy decides.
    pub max_queued_messages: usize,
    /// Payload bytes queued per session; the same policy applies.
    pub max_queued_bytes: usize,
    /// What to drop when a session queue is full.
    pub queue_full: QueueFullPolicy,
    /// Topic Alias Maximum the broker accepts from a client; 0 disables aliases.
    pub topic_alias_maximum: u16,
    /// Levels a topic name or filter may have. More: a PUBLISH is refused (0x90) and a
    /// subscription gets SUBACK 0x8F.
    pub max_topic_levels: usize,
    /// Subscriptions per session. More: SUBACK 0x97 (Quota exceeded) for the extra filters.
    pub max_subscriptions_per_client: usize,
    /// Length of a client identifier in bytes. Longer: CONNACK 0x85 / 0x02.
    pub max_client_id_len: usize,
    /// Open connections. More: CONNACK 0x89 (Server busy) / 0x03 and close.
    pub max_connections: usize,
    /// Retained messages held. More: new retained topics are not stored (existing ones can
    /// still be replaced or cleared).
    pub max_retained_messages: usize,
    /// Bytes a connection may have waiting to be written before the broker stops sending it
    /// QoS 0 messages (they are dropped for that subscriber) and queues QoS 1/2 instead.
    pub max_pending_write_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_packet_size: 1024 * 1024,
            receive_maximum: 1024,
            max_inflight: 64,
            max_queued_messages: 1000,
            max_queued_bytes: 64 * 1024 * 1024,
            queue_full: QueueFullPolicy::DropNewest,
            topic_alias_maximum: 64,
            max_topic_levels: 64,
            max_subscriptions_per_client: 1000,
            max_client_id_len: 256,
            max_connections: 100_000,
            max_retained_messages: 100_000,
            max_pending_write_bytes: 16 * 1024 * 1024,
        }
    }
}

/// What a full session queue does with one more message.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum QueueFullPolicy {
    /// Refuse the new message (Mosquitto's behaviour).
    #[default]
    DropNewest,
    /// Drop the oldest queued message to make room.
    DropOldest,
}
