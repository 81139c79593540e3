//! Sessions: what outlives a connection. Subscriptions, messages in flight and queued,
//! the QoS 2 packet ids received and not yet released, expiry, and a pending delayed will.

use std::collections::{HashMap, HashSet, VecDeque};
use std::time::Instant;

use bytestring::ByteString;

use super::config::{Limits, QueueFullPolicy};
use super::event::ConnId;
use super::route::Delivery;
use super::subscriptions::SubEntry;
use crate::packet::{PacketId, ProtocolVersion, Will};

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

/// One outgoing QoS 1/2 message in flight.
#[derive(Debug, Clone)]
pub(crate) struct InFlight {
    pub(crate) id: PacketId,
    pub(crate) state: OutState,
    pub(crate) delivery: Delivery,
    /// Whether it went out on the current connection (for a released one: its PUBREL).
    /// A resumed session resends the others as the in-flight window allows.
    pub(crate) sent: bool,
}

/// A session, keyed by client identifier.
#[derive(Debug)]
pub(crate) struct Session {
    /// The connection using it, if any.
    pub(crate) conn: Option<ConnId>,
    /// Protocol version of the last connection: queued messages are coded for it.
    pub(crate) version: ProtocolVersion,
    /// Session Expiry Interval in seconds; `u32::MAX` never expires.
    pub(crate) expiry_interval: u32,
    /// When an offline session ends.
    pub(crate) expires_at: Option<Instant>,
    /// Filter string to subscription, mirrored in the broker's trie.
    pub(crate) subscriptions: HashMap<ByteString, SubEntry>,
    /// Outgoing QoS 1/2 messages sent and not completed, in send order.
    pub(crate) inflight: VecDeque<InFlight>,
    /// Messages waiting for room in the in-flight window or for the client to come back.
    pub(crate) queue: VecDeque<Delivery>,
    pub(crate) queued_bytes: usize,
    /// Incoming QoS 2 packet ids received and not yet released by PUBREL.
    pub(crate) incoming_qos2: HashSet<PacketId>,
    /// The packet id handed out last.
    next_id: u16,
    /// An id in flight may be above `next_id` (ids wrapped past 65,535, or one was put in
    /// flight out of order): only then can the id after `next_id` be taken.
    ids_wrapped: bool,
    /// The number the next queued delivery gets.
    next_seq: u64,
    /// A will waiting for its Will Delay Interval.
    /// Boxed: rare, and large beside the rest.
    pub(crate) pending_will: Option<Box<(Instant, Will)>>,
    /// Messages dropped because the queue was full.
    pub(crate) dropped: u64,
    /// A record of it was sent to the store (and not deleted since).
    pub(crate) stored: bool,
    /// Some of `inflight` may still wait to be sent again on this connection (set when a
    /// session resumes): until then `pump` need not look for them on every call.
    pub(crate) resending: bool,
}

impl Session {
    pub(crate) fn new(version: ProtocolVersion) -> Self {
        Self {
            conn: None,
            version,
            expiry_interval: 0,
            expires_at: None,
            subscriptions: HashMap::new(),
            inflight: VecDeque::new(),
            queue: VecDeque::new(),
            queued_bytes: 0,
            incoming_qos2: HashSet::new(),
            next_id: 0,
            ids_wrapped: false,
            next_seq: 1,
            pending_will: None,
            dropped: 0,
            stored: false,
            resending: false,
        }
    }

    /// The next packet id not in flight. `None` only if all 65,535 are, which the in-flight
    /// limit (at most 65,535) rules out.
    pub(crate) fn next_packet_id(&mut self) -> Option<PacketId> {
        // Ids go out in increasing order: while none in flight is above the last one, the
        // next is free without a look at the window (a scan of up to the whole window per
        // message otherwise).
        if !self.ids_wrapped && self.next_id < u16::MAX {
            self.next_id += 1;
            return PacketId::new(self.next_id);
        }
        for _ in 0..u16::MAX {
            self.next_id = match self.next_id.checked_add(1) {
                Some(next) => next,
                None => {
                    self.ids_wrapped = true;
                    1
                }
            };
            let id = PacketId::new(self.next_id)?;
            if !self.inflight.iter().any(|f| f.id == id) {
                if self.inflight.iter().all(|f| f.id < id) {
                    self.ids_wrapped = false;
                }
                return Some(id);
            }
        }
        None
    }

    /// Puts a message in flight: its id comes from [`Session::next_packet_id`], or from a
    /// stored or resumed flow.
    pub(crate) fn push_inflight(&mut self, f: InFlight) {
        if f.id.get() > self.next_id {
            self.ids_wrapped = true;
        }
        self.inflight.push_back(f);
    }

    /// Queues a delivery under the session's limits, numbered; returns its number, or `None`
    /// if it was dropped. Deliveries dropped to make room are numbered in
    /// `gone`.
    pub(crate) fn enqueue(
        &mut self,
        mut d: Delivery,
        limits: &Limits,
        gone: &mut Vec<u64>,
    ) -> Option<u64> {
        let size = d.msg.payload.len();
        let full = |s: &Self| {
            s.queue.len() >= limits.max_queued_messages
                || s.queued_bytes + size > limits.max_queued_bytes
        };
        if full(self) {
            match limits.queue_full {
                QueueFullPolicy::DropNewest => {
                    self.dropped += 1;
                    return None;
                }
                QueueFullPolicy::DropOldest => {
                    while full(self) {
                        let Some(old) = self.queue.pop_front() else {
                            // Even an empty queue cannot take it: too large on its own.
                            self.dropped += 1;
                            return None;
                        };
                        self.queued_bytes -= old.msg.payload.len();
                        self.dropped += 1;
                        gone.push(old.seq);
                    }
                }
            }
        }
        self.queued_bytes += size;
        d.seq = self.next_seq;
        self.next_seq += 1;
        self.queue.push_back(d);
        Some(self.next_seq - 1)
    }

    /// Puts back a delivery a store kept: in flight (to be sent again) or queued.
    pub(crate) fn restore(
        &mut self,
        d: Delivery,
        inflight: Option<(PacketId, crate::broker::store::StoredFlow)>,
    ) {
        use crate::broker::store::StoredFlow;
        self.next_seq = self.next_seq.max(d.seq + 1);
        match inflight {
            Some((id, flow)) => {
                let state = match (flow, d.qos) {
                    (StoredFlow::Released, _) => OutState::Qos2Released,
                    (StoredFlow::Published, crate::packet::QoS::ExactlyOnce) => OutState::Qos2Sent,
                    _ => OutState::Qos1Sent,
                };
                self.next_id = self.next_id.max(id.get());
                // A released one is resumed with its PUBREL, never its PUBLISH again.
                let sent = state == OutState::Qos2Released;
                self.push_inflight(InFlight {
                    id,
                    state,
                    delivery: d,
                    sent,
                });
            }
            None => {
                self.queued_bytes += d.msg.payload.len();
                self.queue.push_back(d);
            }
        }
    }

    pub(crate) fn dequeue(&mut self) -> Option<Delivery> {
        let d = self.queue.pop_front()?;
        self.queued_bytes -= d.msg.payload.len();
        Some(d)
    }

    pub(crate) fn inflight_position(&self, id: PacketId) -> Option<usize> {
        self.inflight.iter().position(|f| f.id == id)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use proptest::prelude::Just;

    use super::*;
    use crate::broker::route::Message;
    use crate::packet::QoS;
    use crate::topic::TopicName;

    fn in_flight(id: u16) -> InFlight {
        let msg = Message {
            topic: TopicName::new("t").expect("valid"),
            payload: bytes::Bytes::new(),
            qos: QoS::AtLeastOnce,
            retain: false,
            properties: Default::default(),
            expires_at: None,
            origin: None,
        };
        InFlight {
            id: PacketId::new(id).expect("non-zero"),
            state: OutState::Qos1Sent,
            delivery: Delivery {
                msg: Arc::new(msg),
                qos: QoS::AtLeastOnce,
                retain: false,
                sub_ids: Vec::new(),
                seq: u64::from(id),
            },
            sent: true,
        }
    }

    fn next(s: &mut Session) -> u16 {
        s.next_packet_id().expect("a free id").get()
    }

    #[test]
    fn packet_ids_skip_those_in_flight_wrap_past_65535_and_come_free_when_removed() {
        let mut s = Session::new(ProtocolVersion::V311);
        assert_eq!(next(&mut s), 1);
        s.push_inflight(in_flight(3));
        assert_eq!(next(&mut s), 2);
        assert_eq!(next(&mut s), 4, "3 is in flight");
        s.next_id = u16::MAX - 1;
        s.push_inflight(in_flight(1));
        assert_eq!(next(&mut s), u16::MAX);
        assert_eq!(
            next(&mut s),
            2,
            "after 65,535 comes 1, which is in flight, and never 0"
        );
        assert!(s.inflight.remove(1).is_some_and(|f| f.id.get() == 1));
        s.next_id = 0;
        assert_eq!(next(&mut s), 1, "removed, 1 is free again");
        assert_eq!(next(&mut s), 2);
        assert_eq!(next(&mut s), 4, "3 is still in flight");
    }

    /// The packet ids the scan of the whole window would give.
    fn scanned(next_id: &mut u16, inflight: &VecDeque<InFlight>) -> u16 {
        loop {
            *next_id = next_id.checked_add(1).unwrap_or(1);
            if !inflight.iter().any(|f| f.id.get() == *next_id) {
                return *next_id;
            }
        }
    }

    proptest::proptest! {
        /// Taking ids without a scan while none in flight is above the last gives what a
        /// scan gives, across wraps past 65,535 and completions in any order.
        #[test]
        fn packet_ids_are_those_a_scan_of_the_window_gives(
            start in proptest::prop_oneof![Just(0u16), (u16::MAX - 400)..=u16::MAX],
            ops in proptest::collection::vec(proptest::num::u16::ANY, 1..2000),
        ) {
            let mut s = Session::new(ProtocolVersion::V311);
            s.next_id = start;
            let mut model = start;
            for op in ops {
                if op % 3 != 0 || s.inflight.is_empty() {
                    let want = scanned(&mut model, &s.inflight);
                    let got = next(&mut s);
                    proptest::prop_assert_eq!(got, want);
                    s.push_inflight(in_flight(got));
                } else {
                    // Mostly the oldest (acknowledgements in order), sometimes any.
                    let i = if op % 2 == 0 { 0 } else { usize::from(op) % s.inflight.len() };
                    s.inflight.remove(i);
                }
            }
        }
    }
}
