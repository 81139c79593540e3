//! The client's side of a session: what outlives a connection. Packet ids in use, outgoing
//! QoS 1/2 messages in flight and the queue behind them, incoming QoS 2 ids not yet
//! released, acknowledgements the application still holds, and the subscriptions granted.
//!
//! Subscriptions are recorded, not restored: a resumed session keeps them on the server, and
//! a session the server did not keep (Session Present 0) loses them there too. The spec does
//! not resubscribe on its own, and neither does the client; after `Connected` with
//! `session_present: false` the application subscribes again, [`super::Client::subscriptions`]
//! listing what it had.

use std::collections::{BTreeMap, HashSet, VecDeque};

use super::event::{PublishId, SubscribeId};
use crate::packet::{Packet, PacketId, Publish, QoS, SubscriptionOptions};
use crate::topic::TopicFilter;

/// Where an outgoing QoS 1/2 message stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum OutState {
    /// QoS 1 sent, waiting for PUBACK.
    Qos1Sent,
    /// QoS 2 sent, waiting for PUBREC.
    Qos2Sent,
    /// PUBREL sent, waiting for PUBCOMP.
    Qos2Released,
}

/// One outgoing QoS 1/2 message holding a packet id.
#[derive(Debug, Clone)]
pub(crate) struct InFlight {
    pub(crate) id: PublishId,
    /// The message with its packet id and full topic (aliases are per connection).
    pub(crate) publish: Publish,
    pub(crate) state: OutState,
    /// Whether it went out on the current connection; a resumed session resends the others
    /// as the window allows.
    pub(crate) sent: bool,
}

impl InFlight {
    pub(crate) fn packet_id(&self) -> Option<PacketId> {
        self.publish.packet_id
    }
}

/// A message waiting for a window slot or a connection; it holds no packet id yet.
#[derive(Debug, Clone)]
pub(crate) struct Queued {
    pub(crate) id: PublishId,
    pub(crate) publish: Publish,
}

/// A received QoS 1/2 message whose acknowledgement waits for the application (manual-ack
/// mode), or for the ones received before it [MQTT-4.6.0-2] [MQTT-4.6.0-3].
#[derive(Debug, Clone, Copy)]
pub(crate) struct PendingAck {
    /// The token's number: increasing in receive order.
    pub(crate) seq: u64,
    pub(crate) packet_id: PacketId,
    pub(crate) qos: QoS,
    /// The application handed the token back.
    pub(crate) acked: bool,
}

/// A SUBSCRIBE or UNSUBSCRIBE waiting for its acknowledgement; sent again after a reconnect.
#[derive(Debug, Clone)]
pub(crate) struct Request {
    pub(crate) id: SubscribeId,
    pub(crate) packet_id: PacketId,
    pub(crate) packet: Packet,
}

/// The session state. See the module docs.
#[derive(Debug, Default)]
pub(crate) struct Session {
    next_id: u16,
    /// Packet ids held by `inflight` and `requests`.
    in_use: HashSet<PacketId>,
    /// Outgoing QoS 1/2 messages, in the order first sent [MQTT-4.6.0-1].
    pub(crate) inflight: VecDeque<InFlight>,
    /// Some of `inflight` may not have been sent on this connection (after a reconnect or a
    /// restore): until `pump` finds them all sent, it and the window checks look at each.
    /// Otherwise every one is sent, and neither scans the window per message.
    pub(crate) resending: bool,
    /// Messages waiting to be sent, in `publish` order.
    pub(crate) queue: VecDeque<Queued>,
    /// SUBSCRIBE / UNSUBSCRIBE waiting for SUBACK / UNSUBACK.
    pub(crate) requests: VecDeque<Request>,
    /// Incoming QoS 2 ids received and not yet released by PUBREL: a repeated PUBLISH is
    /// not delivered again [MQTT-4.3.3-10].
    pub(crate) incoming_qos2: HashSet<PacketId>,
    /// Manual acknowledgements, in receive order.
    pub(crate) pending_acks: VecDeque<PendingAck>,
    /// QoS 1 entries of `pending_acks`: counted against the client's Receive Maximum.
    pub(crate) pending_qos1: usize,
    /// Subscriptions the server granted, by filter.
    pub(crate) subscriptions: BTreeMap<TopicFilter, SubscriptionOptions>,
}

impl Session {
    /// A packet id not in use [MQTT-2.2.1-3], now taken; `None` if all 65,535 are.
    pub(crate) fn take_packet_id(&mut self) -> Option<PacketId> {
        for _ in 0..u16::MAX {
            self.next_id = self.next_id.checked_add(1).unwrap_or(1);
            let id = PacketId::new(self.next_id)?;
            if self.in_use.insert(id) {
                return Some(id);
            }
        }
        None
    }

    /// Whether `id` is held by no flow.
    pub(crate) fn packet_id_free(&self, id: PacketId) -> bool {
        !self.in_use.contains(&id)
    }

    /// Puts back a message that was in flight when a process stopped, its packet id (free:
    /// [`Session::packet_id_free`]) taken again.
    pub(crate) fn restore_inflight(
        &mut self,
        id: PublishId,
        mut publish: Publish,
        packet_id: PacketId,
        state: OutState,
    ) {
        self.in_use.insert(packet_id);
        self.next_id = self.next_id.max(packet_id.get());
        self.resending = true;
        publish.packet_id = Some(packet_id);
        self.inflight.push_back(InFlight {
            id,
            publish,
            state,
            sent: false,
        });
    }

    /// Frees a packet id once its flow is complete.
    pub(crate) fn release_packet_id(&mut self, id: PacketId) {
        self.in_use.remove(&id);
    }

    /// Incoming QoS 1/2 messages not yet completely acknowledged: what the server's window
    /// towards the client holds [MQTT-3.3.4-9].
    pub(crate) fn incoming_unacked(&self) -> usize {
        self.pending_qos1 + self.incoming_qos2.len()
    }

    /// Whether a manual acknowledgement for `id` is still held.
    pub(crate) fn ack_pending_for(&self, id: PacketId) -> bool {
        self.pending_acks.iter().any(|p| p.packet_id == id)
    }

    /// The in-flight entry for `id`.
    pub(crate) fn inflight_position(&self, id: PacketId) -> Option<usize> {
        self.inflight.iter().position(|f| f.packet_id() == Some(id))
    }

    /// Messages sent on the current connection and not complete: the used part of the window.
    pub(crate) fn inflight_sent(&self) -> usize {
        self.inflight.iter().filter(|f| f.sent).count()
    }

    /// The server did not keep the session [MQTT-3.2.2-5]: incoming state and subscriptions
    /// are forgotten, and outgoing messages start over. Those whose PUBLISH the server may
    /// not have taken go back to the front of the queue, in order, to be sent as new
    /// messages; those it acknowledged with PUBREC are its own now, and are returned to be
    /// reported complete.
    pub(crate) fn discard(&mut self) -> Vec<PublishId> {
        let mut received = Vec::new();
        let mut restart = Vec::new();
        for f in self.inflight.drain(..) {
            if let Some(id) = f.publish.packet_id {
                self.in_use.remove(&id);
            }
            if f.state == OutState::Qos2Released {
                received.push(f.id);
            } else {
                let mut publish = f.publish;
                publish.packet_id = None;
                publish.dup = false;
                restart.push(Queued { id: f.id, publish });
            }
        }
        for q in restart.into_iter().rev() {
            self.queue.push_front(q);
        }
        self.incoming_qos2.clear();
        self.pending_acks.clear();
        self.pending_qos1 = 0;
        self.subscriptions.clear();
        received
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn packet_ids_skip_those_in_use_and_wrap() {
        let mut s = Session::default();
        let first = s.take_packet_id().unwrap();
        assert_eq!(first.get(), 1);
        s.next_id = u16::MAX - 1;
        assert_eq!(s.take_packet_id().unwrap().get(), u16::MAX);
        // Wraps past 0, and 1 is still taken.
        assert_eq!(s.take_packet_id().unwrap().get(), 2);
        s.release_packet_id(first);
        s.next_id = 0;
        assert_eq!(s.take_packet_id().unwrap().get(), 1);
    }

    #[test]
    fn no_packet_id_when_all_are_in_use() {
        let mut s = Session::default();
        for _ in 0..u16::MAX {
            assert!(s.take_packet_id().is_some());
        }
        assert_eq!(s.take_packet_id(), None);
    }
}
