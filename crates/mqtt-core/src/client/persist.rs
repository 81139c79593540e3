//! What the client tells its store, what waits for the answer, and how a restarted process
//! starts again from what the store kept.
//!
//! Operations of one input collect in a batch; the first `poll_transmit` or `poll_event`
//! after it closes the batch into a [`ClientEvent::Store`] with the next ticket. Output that
//! promises durability waits for every batch emitted before it:
//!
//! - a PUBLISH of a QoS 1/2 message (first sent or resent): a restart must be able to send it
//!   again with DUP and the same packet id [MQTT-4.4.0-1], never as a new message;
//! - a PUBREL: once it is out the PUBLISH is never sent again [MQTT-4.3.3-6], so the restart
//!   must know the message was released;
//! - a PUBREC, and the [`ClientEvent::Message`] of a received QoS 2 message: its packet id must
//!   be durable first, or a restart would deliver the server's resent PUBLISH again
//!   [MQTT-4.3.3-10].
//!
//! Bytes keep their order: once some wait, everything after them waits too. Messages for the
//! application keep theirs the same way; other events never wait, `Store` events least of
//! all. With persistence off or a clean session nothing is
//! emitted and nothing waits.

use std::collections::VecDeque;
use std::time::Instant;

use bytestring::ByteString;

use super::event::{ClientEvent, PublishId};
use super::session::{InFlight, OutState, Queued};
use super::store::{
    ClientStoreOp, ClientStoredSession, ClientStoredState, StoreTicket, StoredFlow, StoredOutgoing,
};
use super::{Client, ClientOptions};
use crate::packet::{Publish, QoS};

/// The store side of the client: the batch being built, tickets, and the bytes that wait.
#[derive(Debug)]
pub(crate) struct Persist {
    /// Persistence is on and the session outlives a connection.
    pub(crate) on: bool,
    /// Operations of the batch being built.
    ops: Vec<ClientStoreOp>,
    /// The ticket the batch being built will get (tickets start at 1).
    next_ticket: u64,
    /// The last ticket reported durable.
    durable: u64,
    /// Bytes of the client's output from this offset on wait for this ticket; offsets and
    /// tickets increase.
    barriers: VecDeque<(usize, u64)>,
    /// Tickets below this one are rewritten by a later batch: their failure needs nothing.
    covered_below: u64,
    /// The session record as last stored.
    stored_session: Option<ByteString>,
}

impl Persist {
    pub(crate) fn new(options: &ClientOptions) -> Self {
        let expiry = options
            .connect_properties
            .session_expiry_interval
            .unwrap_or(0);
        let persistent = !options.clean_start || (options.version.is_v5() && expiry > 0);
        Self {
            on: options.persistence && persistent,
            ops: Vec::new(),
            next_ticket: 1,
            durable: 0,
            barriers: VecDeque::new(),
            covered_below: 0,
            stored_session: None,
        }
    }

    pub(crate) fn push(&mut self, op: ClientStoreOp) {
        if !self.on {
            return;
        }
        // A message accepted and sent in the same input: one record.
        if let (
            ClientStoreOp::PutOutgoing { seq, .. },
            Some(ClientStoreOp::PutOutgoing { seq: last, .. }),
        ) = (&op, self.ops.last())
        {
            if seq == last {
                self.ops.pop();
            }
        }
        self.ops.push(op);
    }

    /// The ticket after which everything emitted so far is durable.
    fn wanted(&self) -> u64 {
        if self.ops.is_empty() {
            self.next_ticket - 1
        } else {
            self.next_ticket
        }
    }

    /// What must wait, waits for this ticket; `None` when nothing must.
    pub(crate) fn must_wait(&self) -> Option<u64> {
        let wanted = self.wanted();
        (self.on && wanted > self.durable).then_some(wanted)
    }

    /// Bytes from `offset` on wait for everything emitted so far.
    pub(crate) fn hold_bytes(&mut self, offset: usize) {
        let Some(ticket) = self.must_wait() else {
            return;
        };
        if self.barriers.back().is_some_and(|&(_, t)| t >= ticket) {
            // An earlier barrier holds these bytes already, for as long.
            return;
        }
        self.barriers.push_back((offset, ticket));
    }

    /// How many bytes of an output of `len` may go out now.
    pub(crate) fn releasable(&mut self, len: usize) -> usize {
        while self
            .barriers
            .front()
            .is_some_and(|&(_, t)| t <= self.durable)
        {
            self.barriers.pop_front();
        }
        self.barriers.front().map_or(len, |&(at, _)| at.min(len))
    }

    /// `n` bytes were taken off the front of the output.
    pub(crate) fn taken(&mut self, n: usize) {
        for b in &mut self.barriers {
            b.0 = b.0.saturating_sub(n);
        }
    }

    /// The output was dropped with its connection.
    pub(crate) fn clear_barriers(&mut self) {
        self.barriers.clear();
    }

    /// Whether bytes wait for the store.
    pub(crate) fn holds_bytes(&self) -> bool {
        self.barriers.iter().any(|&(_, t)| t > self.durable)
    }

    /// Closes the batch of the last input: its ticket and operations, if it has any.
    fn finish_batch(&mut self) -> Option<(StoreTicket, Vec<ClientStoreOp>)> {
        if self.ops.is_empty() {
            return None;
        }
        let ticket = self.next_ticket;
        self.next_ticket += 1;
        Some((StoreTicket(ticket), std::mem::take(&mut self.ops)))
    }
}

/// The events for the application. A message that waits for a ticket holds back the
/// messages behind it (the application hears them in the order received); other events
/// (connection changes, completions) never wait: a stale `Disconnected` would end the next
/// connection. `Store` events go first.
#[derive(Debug, Default)]
pub(crate) struct EventQueue {
    ready: VecDeque<ClientEvent>,
    /// Events behind one that waits, with the ticket each waits for (0: none of its own).
    held: VecDeque<(u64, ClientEvent)>,
}

impl EventQueue {
    pub(crate) fn push_back(&mut self, event: ClientEvent) {
        if self.held.is_empty() || !matches!(event, ClientEvent::Message { .. }) {
            self.ready.push_back(event);
        } else {
            self.held.push_back((0, event));
        }
    }

    /// An event that waits for `ticket` (`None`: for nothing).
    pub(crate) fn push_held(&mut self, ticket: Option<u64>, event: ClientEvent) {
        match ticket {
            Some(t) => self.held.push_back((t, event)),
            None => self.push_back(event),
        }
    }

    /// An event that waits for nothing and nobody.
    fn push_first(&mut self, event: ClientEvent) {
        self.ready.push_front(event);
    }

    pub(crate) fn pop_front(&mut self) -> Option<ClientEvent> {
        self.ready.pop_front()
    }

    /// Every ticket up to `durable` is durable: the events that waited for them are ready.
    fn release(&mut self, durable: u64) {
        while self.held.front().is_some_and(|&(t, _)| t <= durable) {
            if let Some((_, e)) = self.held.pop_front() {
                self.ready.push_back(e);
            }
        }
    }

    /// Events waiting for a ticket up to `below` wait for `ticket` instead.
    fn retag(&mut self, below: u64, ticket: u64) {
        for (t, _) in &mut self.held {
            if *t != 0 && *t <= below {
                *t = ticket;
            }
        }
    }

    fn held(&self) -> usize {
        self.held.len()
    }
}

impl Client {
    /// The store made every batch up to `ticket` durable: what waited for it goes out (drain
    /// `poll_transmit` and `poll_event`). Answers for tickets already answered are no-ops.
    pub fn handle_stored(&mut self, now: Instant, ticket: StoreTicket) {
        let _ = now;
        self.close_batch();
        self.persist.durable = self.persist.durable.max(ticket.0);
        self.events.release(self.persist.durable);
    }

    /// The store could not make the batch `ticket` durable (a full disk). What is on disk is
    /// then unknown, so the client emits a batch that rewrites its whole session
    /// ([`ClientStoreOp::Clear`] and the current records), and what waited for `ticket` or a
    /// later batch waits for that one instead. The session goes on in memory meanwhile; the
    /// promises wait until the store can keep them.
    pub fn handle_store_failed(&mut self, now: Instant, ticket: StoreTicket) {
        let _ = now;
        self.close_batch();
        if !self.persist.on || ticket.0 < self.persist.covered_below {
            return;
        }
        self.rewrite_session();
        let issued = self.persist.next_ticket - 1;
        let Some((rewrite, ops)) = self.persist.finish_batch() else {
            return;
        };
        self.persist.covered_below = rewrite.0;
        for b in &mut self.persist.barriers {
            if b.1 > self.persist.durable {
                b.1 = rewrite.0;
            }
        }
        // invariant: barriers stay in ticket order: every retagged one now has the newest.
        self.events.retag(issued, rewrite.0);
        self.events.push_first(ClientEvent::Store {
            ticket: rewrite,
            ops,
        });
    }

    /// Outputs waiting for the store: held events, and one for held bytes.
    pub fn waiting_for_store(&self) -> usize {
        self.events.held() + usize::from(self.persist.holds_bytes())
    }

    /// A client started again in a new process from what its store kept: queued messages
    /// wait for a connection, messages in flight are sent again by the next `connect` when
    /// the server resumes the session (PUBLISH with DUP and the same packet id, PUBREL for
    /// released ones [MQTT-4.4.0-1]), and received QoS 2 packet ids are remembered so a resent
    /// PUBLISH is not delivered twice [MQTT-4.3.3-10]. A stored session makes the first CONNECT
    /// ask to resume it (5.0: Clean Start 0), with the identifier the server assigned, if it
    /// did. Messages keep their numbers: a recovered message completes with the
    /// [`PublishId`] the first process's `publish` returned. `options.persistence` should be on
    /// for the client to go on storing.
    pub fn recover(options: ClientOptions, state: ClientStoredState, now: Instant) -> Self {
        let _ = now;
        let mut client = Self::new(options);
        let ClientStoredState {
            session,
            outgoing,
            incoming_qos2,
        } = state;
        if let Some(s) = session {
            if client.options.client_id.is_empty() {
                client.client_id = s.client_id.clone();
            }
            client.persist.stored_session = Some(s.client_id);
            client.had_session = true;
        }
        for (seq, m) in outgoing {
            client.next_publish = client.next_publish.max(seq);
            let id = PublishId(seq);
            let publish = Publish {
                dup: false,
                qos: m.qos,
                retain: m.retain,
                topic: m.topic,
                packet_id: None,
                properties: m.properties.into(),
                payload: m.payload,
            };
            let state = match (m.inflight, m.qos) {
                (Some((_, StoredFlow::Released)), QoS::ExactlyOnce) => Some(OutState::Qos2Released),
                (Some(_), QoS::ExactlyOnce) => Some(OutState::Qos2Sent),
                (Some(_), QoS::AtLeastOnce) => Some(OutState::Qos1Sent),
                _ => None,
            };
            match (state, m.inflight) {
                (Some(state), Some((packet_id, _))) if client.session.packet_id_free(packet_id) => {
                    client
                        .session
                        .restore_inflight(id, publish, packet_id, state);
                }
                // Never sent (or a packet id twice, which no client writes): a new message.
                _ => client.session.queue.push_back(Queued { id, publish }),
            }
        }
        client.session.incoming_qos2 = incoming_qos2.into_iter().collect();
        client
    }

    /// The bytes encoded from now on wait for everything emitted so far.
    pub(super) fn hold(&mut self) {
        self.persist.hold_bytes(self.out.len());
    }

    /// An outgoing message was accepted, or its flow advanced.
    pub(super) fn store_outgoing(
        &mut self,
        id: PublishId,
        publish: &Publish,
        inflight: Option<(crate::packet::PacketId, StoredFlow)>,
    ) {
        if self.persist.on && publish.qos != QoS::AtMostOnce {
            self.persist.push(ClientStoreOp::PutOutgoing {
                seq: id.0,
                message: stored(publish, inflight),
            });
        }
    }

    /// An outgoing message is gone.
    pub(super) fn store_outgoing_gone(&mut self, id: PublishId, qos: QoS) {
        if qos != QoS::AtMostOnce {
            self.persist
                .push(ClientStoreOp::DeleteOutgoing { seq: id.0 });
        }
    }

    /// The session was accepted by a CONNACK: its record, if it changed.
    pub(super) fn store_session(&mut self) {
        if self.persist.on && self.persist.stored_session.as_ref() != Some(&self.client_id) {
            self.persist.stored_session = Some(self.client_id.clone());
            self.persist.push(ClientStoreOp::PutSession {
                session: ClientStoredSession {
                    client_id: self.client_id.clone(),
                },
            });
        }
    }

    /// Closes the batch of the last input into a `Store` event.
    pub(super) fn close_batch(&mut self) {
        if let Some((ticket, ops)) = self.persist.finish_batch() {
            self.events.push_first(ClientEvent::Store { ticket, ops });
        }
    }

    /// Everything stored, from scratch.
    fn rewrite_session(&mut self) {
        self.persist.ops.clear();
        self.persist.push(ClientStoreOp::Clear);
        if let Some(client_id) = self.persist.stored_session.clone() {
            self.persist.push(ClientStoreOp::PutSession {
                session: ClientStoredSession { client_id },
            });
        }
        let inflight: Vec<(PublishId, Publish, _)> = self
            .session
            .inflight
            .iter()
            .map(|f| (f.id, f.publish.clone(), inflight_of(f)))
            .collect();
        for (id, publish, flow) in inflight {
            self.store_outgoing(id, &publish, flow);
        }
        let queued: Vec<(PublishId, Publish)> = self
            .session
            .queue
            .iter()
            .map(|q| (q.id, q.publish.clone()))
            .collect();
        for (id, publish) in queued {
            self.store_outgoing(id, &publish, None);
        }
        let mut ids: Vec<_> = self.session.incoming_qos2.iter().copied().collect();
        ids.sort_unstable();
        for packet_id in ids {
            self.persist
                .push(ClientStoreOp::PutIncomingQos2 { packet_id });
        }
    }
}

/// Where an in-flight message's flow stands, as stored.
fn inflight_of(f: &InFlight) -> Option<(crate::packet::PacketId, StoredFlow)> {
    let flow = match f.state {
        OutState::Qos2Released => StoredFlow::Released,
        OutState::Qos1Sent | OutState::Qos2Sent => StoredFlow::Published,
    };
    f.packet_id().map(|id| (id, flow))
}

fn stored(p: &Publish, inflight: Option<(crate::packet::PacketId, StoredFlow)>) -> StoredOutgoing {
    StoredOutgoing {
        topic: p.topic.clone(),
        payload: p.payload.clone(),
        qos: p.qos,
        retain: p.retain,
        properties: (*p.properties).clone(),
        inflight,
    }
}
