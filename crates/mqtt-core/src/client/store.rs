//! The client's persistence as outputs, the twin of the broker's
//! ([`crate::broker::store`]): with [`ClientOptions::persistence`](super::ClientOptions::persistence)
//! on and a persistent session, the client emits [`ClientStoreOp`]s in numbered batches
//! ([`ClientEvent::Store`](super::ClientEvent::Store)) and is told with
//! [`Client::handle_stored`](super::Client::handle_stored) when a batch is durable.
//! [`ClientMemoryStore`] applies them in memory (tests, and the reference for a store on
//! disk) and gives the [`ClientStoredState`] that [`Client::recover`](super::Client::recover)
//! starts a restarted process from.
//!
//! What is stored is the client's half of the session: outgoing QoS 1/2 messages from the
//! moment `publish` accepts them (queued, or in flight with their packet id and QoS 2 stage),
//! received QoS 2 packet ids not yet released, and the client identifier in use. Subscriptions
//! are the server's business; QoS 0 messages and clean sessions are never stored.
//!
//! Tickets are the broker's [`StoreTicket`]: batches become durable in order, and answering
//! ticket `n` answers every ticket before it.

use std::collections::{BTreeMap, BTreeSet};

use bytes::Bytes;
use bytestring::ByteString;

pub use crate::broker::store::{StoreTicket, StoredFlow};
use crate::packet::{PacketId, PublishProperties, QoS};
use crate::topic::TopicName;

/// The session as a whole: what a restarted process needs besides its messages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientStoredSession {
    /// The client identifier in use: the options' one, or the one the server assigned. A
    /// restart connects with it and asks to resume the session.
    pub client_id: ByteString,
}

/// One outgoing QoS 1/2 message, from `publish` to its completion.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredOutgoing {
    /// Topic Name.
    pub topic: TopicName,
    /// Payload.
    pub payload: Bytes,
    /// QoS 1 or 2.
    pub qos: QoS,
    /// RETAIN.
    pub retain: bool,
    /// 5.0 properties (no Topic Alias: aliases belong to one connection).
    pub properties: PublishProperties,
    /// In flight: its packet id and where its flow stands. `None`: queued, never sent.
    pub inflight: Option<(PacketId, StoredFlow)>,
}

/// One change to what a restarted client process must bring back.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq)]
// Ops are built once and moved in their batch's Vec: boxing the message would only add an
// allocation per message.
#[allow(clippy::large_enum_variant)]
pub enum ClientStoreOp {
    /// Everything stored for this client is gone: the batch rewrites it from scratch (after a
    /// failed batch, whose effects are unknown).
    Clear,
    /// The session exists on the server (a CONNACK accepted it), under this identifier.
    PutSession {
        /// The record.
        session: ClientStoredSession,
    },
    /// An outgoing message was accepted, sent or released (replaces the record under `seq`).
    PutOutgoing {
        /// Its number: the [`PublishId`](super::PublishId) `publish` returned; messages go
        /// out in this order.
        seq: u64,
        /// The record.
        message: StoredOutgoing,
    },
    /// An outgoing message completed, failed or was dropped.
    DeleteOutgoing {
        /// Its number.
        seq: u64,
    },
    /// A QoS 2 PUBLISH was received (before PUBREC goes out and the application hears of it:
    /// a restart never delivers it twice [MQTT-4.3.3-10]).
    PutIncomingQos2 {
        /// Its packet id.
        packet_id: PacketId,
    },
    /// PUBREL released a received QoS 2 packet id (or the server did not keep the session).
    DeleteIncomingQos2 {
        /// Its packet id.
        packet_id: PacketId,
    },
}

/// Everything a restarted client process brings back.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClientStoredState {
    /// The session record, once a CONNACK accepted the session.
    pub session: Option<ClientStoredSession>,
    /// Outgoing messages by number (send order).
    pub outgoing: BTreeMap<u64, StoredOutgoing>,
    /// QoS 2 packet ids received and not yet released.
    pub incoming_qos2: BTreeSet<PacketId>,
}

impl ClientStoredState {
    /// Applies one operation.
    pub fn apply(&mut self, op: ClientStoreOp) {
        match op {
            ClientStoreOp::Clear => *self = Self::default(),
            ClientStoreOp::PutSession { session } => self.session = Some(session),
            ClientStoreOp::PutOutgoing { seq, message } => {
                self.outgoing.insert(seq, message);
            }
            ClientStoreOp::DeleteOutgoing { seq } => {
                self.outgoing.remove(&seq);
            }
            ClientStoreOp::PutIncomingQos2 { packet_id } => {
                self.incoming_qos2.insert(packet_id);
            }
            ClientStoreOp::DeleteIncomingQos2 { packet_id } => {
                self.incoming_qos2.remove(&packet_id);
            }
        }
    }

    /// Whether nothing is stored.
    pub fn is_empty(&self) -> bool {
        self.session.is_none() && self.outgoing.is_empty() && self.incoming_qos2.is_empty()
    }
}

/// The client store that keeps everything in memory: it survives nothing but a
/// [`Client::recover`](super::Client::recover) in the same process. The reference semantics
/// for stores on disk.
#[derive(Debug, Clone, Default)]
pub struct ClientMemoryStore {
    state: ClientStoredState,
}

impl ClientMemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// Applies one operation.
    pub fn apply(&mut self, op: ClientStoreOp) {
        self.state.apply(op);
    }

    /// What a restart would load.
    pub fn state(&self) -> &ClientStoredState {
        &self.state
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(inflight: Option<(PacketId, StoredFlow)>) -> StoredOutgoing {
        StoredOutgoing {
            topic: TopicName::new("t").unwrap(),
            payload: Bytes::from_static(b"x"),
            qos: QoS::ExactlyOnce,
            retain: false,
            properties: PublishProperties::default(),
            inflight,
        }
    }

    #[test]
    fn apply_puts_replaces_deletes_and_clears() {
        let id = PacketId::new(7).unwrap();
        let mut store = ClientMemoryStore::new();
        store.apply(ClientStoreOp::PutOutgoing {
            seq: 1,
            message: message(None),
        });
        store.apply(ClientStoreOp::PutOutgoing {
            seq: 1,
            message: message(Some((id, StoredFlow::Released))),
        });
        store.apply(ClientStoreOp::PutIncomingQos2 { packet_id: id });
        store.apply(ClientStoreOp::PutIncomingQos2 { packet_id: id });
        assert_eq!(store.state().outgoing.len(), 1);
        assert_eq!(
            store.state().outgoing[&1].inflight,
            Some((id, StoredFlow::Released))
        );
        assert_eq!(store.state().incoming_qos2.len(), 1);
        store.apply(ClientStoreOp::DeleteOutgoing { seq: 1 });
        store.apply(ClientStoreOp::DeleteIncomingQos2 { packet_id: id });
        assert!(store.state().is_empty());
        store.apply(ClientStoreOp::PutSession {
            session: ClientStoredSession {
                client_id: "c".into(),
            },
        });
        assert!(!store.state().is_empty());
        store.apply(ClientStoreOp::Clear);
        assert!(store.state().is_empty());
    }
}
