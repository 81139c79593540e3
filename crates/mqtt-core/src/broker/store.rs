//! Persistence as outputs: the broker emits [`StoreOp`]s in numbered batches
//! ([`BrokerEvent::Store`](super::BrokerEvent::Store)) and is told with
//! [`Broker::handle_stored`](super::Broker::handle_stored) when a batch is durable. What a
//! restart must bring back is exactly what these operations describe; [`MemoryStore`] applies
//! them in memory (tests, and the reference for a store on disk) and gives the
//! [`StoredState`] that [`Broker::recover`](super::Broker::recover) starts from.
//!
//! Only persistent sessions (Session Expiry Interval above 0, or 3.x Clean Session 0) and
//! retained messages are stored: clean-session traffic emits nothing and waits for nothing.
//!
//! Times are the broker's `Instant`s. A store on disk turns them into wall-clock times when
//! it writes and back when it loads (the process that reads them has another clock origin).

use std::collections::BTreeMap;
use std::num::NonZeroU32;
use std::time::Instant;

use bytes::Bytes;
use bytestring::ByteString;

use crate::packet::{PacketId, ProtocolVersion, PublishProperties, QoS, SubscriptionOptions, Will};
use crate::topic::TopicName;

/// The number of one batch of store operations. Batches become durable in order: answering
/// ticket `n` also answers every ticket before it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct StoreTicket(pub u64);

/// A message as stored: what is needed to deliver it again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredMessage {
    /// Topic Name.
    pub topic: TopicName,
    /// Payload.
    pub payload: Bytes,
    /// QoS it was published with.
    pub qos: QoS,
    /// RETAIN as published.
    pub retain: bool,
    /// 5.0 properties to forward (no Topic Alias, no Subscription Identifiers, no Message
    /// Expiry Interval: see `expires_at`).
    pub properties: PublishProperties,
    /// When its Message Expiry Interval runs out.
    pub expires_at: Option<Instant>,
    /// The publishing client, for No Local.
    pub origin: Option<ByteString>,
}

/// Where an outgoing QoS 1/2 message in flight stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoredFlow {
    /// PUBLISH sent (QoS 1: waiting for PUBACK; QoS 2: for PUBREC).
    Published,
    /// QoS 2: PUBREL sent, waiting for PUBCOMP.
    Released,
}

/// One copy of a message for one persistent session: queued, or in flight.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredDelivery {
    /// The message.
    pub message: StoredMessage,
    /// QoS it goes out with (at most the subscription's).
    pub qos: QoS,
    /// RETAIN it goes out with.
    pub retain: bool,
    /// Subscription Identifiers of the matching subscriptions (5.0).
    pub sub_ids: Vec<NonZeroU32>,
    /// In flight: its packet id and where its flow stands. `None`: queued.
    pub inflight: Option<(PacketId, StoredFlow)>,
}

/// One subscription of a persistent session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredSubscription {
    /// The filter as subscribed (with its `$share/group/` prefix if shared).
    pub filter: ByteString,
    /// Its options, QoS already capped by the broker.
    pub options: SubscriptionOptions,
    /// Its Subscription Identifier (5.0).
    pub id: Option<NonZeroU32>,
}

/// A persistent session, without its messages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredSession {
    /// Protocol version of its last connection.
    pub version: ProtocolVersion,
    /// Session Expiry Interval in seconds (`u32::MAX`: never).
    pub expiry_interval: u32,
    /// When it ends, if it is offline; `None` while a client is connected (a restart then
    /// starts the interval anew, as from a disconnection).
    pub expires_at: Option<Instant>,
    /// Its subscriptions.
    pub subscriptions: Vec<StoredSubscription>,
    /// A will waiting for its Will Delay Interval, and when it is due.
    pub pending_will: Option<(Instant, Will)>,
}

/// One change to what a restart must bring back. The records are boxed: an operation is a
/// few words, so that the many small ones (flows, deletions) do not each take the room of a
/// whole delivery in the batches that carry them to the store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreOp {
    /// A persistent session was created or changed (replaces the record).
    PutSession {
        /// Client identifier.
        client_id: ByteString,
        /// The record.
        session: Box<StoredSession>,
    },
    /// A session ended (expired, cleaned, or no longer persistent): with its deliveries and
    /// QoS 2 packet ids.
    DeleteSession {
        /// Client identifier.
        client_id: ByteString,
    },
    /// A delivery was queued or its flow advanced (replaces the record under `seq`).
    PutDelivery {
        /// Client identifier.
        client_id: ByteString,
        /// Its number in the session: deliveries go out in this order.
        seq: u64,
        /// The record.
        delivery: Box<StoredDelivery>,
    },
    /// A stored delivery's flow advanced (it went out with a packet id, or its PUBREL did):
    /// the message is the one stored, only `inflight` changes. A store writes a few bytes
    /// instead of the message again. Ignored if the delivery is not stored.
    SetFlow {
        /// Client identifier.
        client_id: ByteString,
        /// Its number in the session.
        seq: u64,
        /// Its packet id and where its flow stands (`None`: queued).
        inflight: Option<(PacketId, StoredFlow)>,
    },
    /// A delivery completed, expired or was dropped.
    DeleteDelivery {
        /// Client identifier.
        client_id: ByteString,
        /// Its number in the session.
        seq: u64,
    },
    /// A QoS 2 PUBLISH was received (before it is forwarded: a restart never forwards it
    /// twice).
    PutIncomingQos2 {
        /// Client identifier.
        client_id: ByteString,
        /// Its packet id.
        packet_id: PacketId,
    },
    /// PUBREL released a received QoS 2 packet id.
    DeleteIncomingQos2 {
        /// Client identifier.
        client_id: ByteString,
        /// Its packet id.
        packet_id: PacketId,
    },
    /// A message was retained (replaces what the topic held).
    PutRetained {
        /// The message.
        message: Box<StoredMessage>,
    },
    /// A retained message was cleared or expired.
    DeleteRetained {
        /// Its topic.
        topic: TopicName,
    },
}

/// Everything a restart brings back.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StoredState {
    /// Persistent sessions by client identifier.
    pub sessions: BTreeMap<ByteString, SessionState>,
    /// Retained messages by topic.
    pub retained: BTreeMap<ByteString, StoredMessage>,
}

/// One stored session with its deliveries and received QoS 2 packet ids.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionState {
    /// The session record.
    pub session: StoredSession,
    /// Its deliveries by number (send order).
    pub deliveries: BTreeMap<u64, StoredDelivery>,
    /// QoS 2 packet ids received and not yet released.
    pub incoming_qos2: Vec<PacketId>,
}

/// The store that keeps everything in memory: it answers at once and survives nothing but a
/// [`Broker::recover`](super::Broker::recover) in the same process. The reference semantics
/// for stores on disk.
#[derive(Debug, Clone, Default)]
pub struct MemoryStore {
    state: StoredState,
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// Applies one operation.
    pub fn apply(&mut self, op: StoreOp) {
        self.state.apply(op);
    }

    /// What a restart would load.
    pub fn state(&self) -> &StoredState {
        &self.state
    }
}

impl StoredState {
    /// Applies one operation. Deliveries and packet ids of a session that is not stored are
    /// ignored: the session's deletion is what counts.
    pub fn apply(&mut self, op: StoreOp) {
        match op {
            StoreOp::PutSession { client_id, session } => match self.sessions.get_mut(&client_id) {
                Some(s) => s.session = *session,
                None => {
                    self.sessions.insert(
                        client_id,
                        SessionState {
                            session: *session,
                            deliveries: BTreeMap::new(),
                            incoming_qos2: Vec::new(),
                        },
                    );
                }
            },
            StoreOp::DeleteSession { client_id } => {
                self.sessions.remove(&client_id);
            }
            StoreOp::PutDelivery {
                client_id,
                seq,
                delivery,
            } => {
                if let Some(s) = self.sessions.get_mut(&client_id) {
                    s.deliveries.insert(seq, *delivery);
                }
            }
            StoreOp::SetFlow {
                client_id,
                seq,
                inflight,
            } => {
                let stored = self.sessions.get_mut(&client_id);
                if let Some(d) = stored.and_then(|s| s.deliveries.get_mut(&seq)) {
                    d.inflight = inflight;
                }
            }
            StoreOp::DeleteDelivery { client_id, seq } => {
                if let Some(s) = self.sessions.get_mut(&client_id) {
                    s.deliveries.remove(&seq);
                }
            }
            StoreOp::PutIncomingQos2 {
                client_id,
                packet_id,
            } => {
                if let Some(s) = self.sessions.get_mut(&client_id) {
                    if !s.incoming_qos2.contains(&packet_id) {
                        s.incoming_qos2.push(packet_id);
                    }
                }
            }
            StoreOp::DeleteIncomingQos2 {
                client_id,
                packet_id,
            } => {
                if let Some(s) = self.sessions.get_mut(&client_id) {
                    s.incoming_qos2.retain(|&id| id != packet_id);
                }
            }
            StoreOp::PutRetained { message } => {
                self.retained
                    .insert(message.topic.as_bytestring().clone(), *message);
            }
            StoreOp::DeleteRetained { topic } => {
                self.retained.remove(topic.as_str());
            }
        }
    }
}
