//! The broker's output queue, with the transmits that wait for durability.
//!
//! Store operations collect in a batch during one input; the first `poll_*` after it closes
//! the batch into a [`BrokerEvent::Store`](super::BrokerEvent::Store) with the next ticket.
//! Transmits that promise durability (the acknowledgements sent to the connection whose input
//! made the operations, and anything a QoS 2 flow sends while its operations are pending) are
//! held until [`Outbox::stored`] reports their ticket durable. Once a connection has a
//! transmit held, its later transmits wait behind it: each connection's bytes stay in order.

use std::collections::VecDeque;

use super::event::{ConnId, Transmit};
use super::store::{StoreOp, StoreTicket};
use crate::packet::{PacketId, PacketType, ProtocolVersion};

/// A held PUBACK or PUBREC: what it acknowledges, so that a failed store can refuse it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct AckIntent {
    pub(crate) kind: PacketType,
    pub(crate) id: PacketId,
    pub(crate) version: ProtocolVersion,
}

/// A transmit waiting for the ticket it is tagged with.
#[derive(Debug)]
struct Held {
    tag: u64,
    transmit: Transmit,
    ack: Option<AckIntent>,
    /// After a failed store: the refusal to send instead (`Some(None)`: nothing).
    refused: Option<Option<Transmit>>,
}

#[derive(Debug, Default)]
pub(crate) struct Outbox {
    ready: VecDeque<Transmit>,
    held: VecDeque<Held>,
    held_per_conn: super::event::ConnMap<usize>,
    /// Operations of the batch being built.
    pub(crate) ops: Vec<StoreOp>,
    /// Operations will be added when the batch closes (sessions marked changed).
    pub(crate) marked: bool,
    /// The ticket the batch being built will get (tickets start at 1).
    next_ticket: u64,
    /// The last ticket reported durable.
    durable: u64,
    /// The connection whose input is being handled: its acknowledgements wait.
    pub(crate) hold_conn: Option<ConnId>,
    /// Everything sent while this batch has operations waits (QoS 2 flows).
    pub(crate) hold_all: bool,
    /// Set by the broker just before it pushes a PUBACK or PUBREC.
    pub(crate) ack: Option<AckIntent>,
}

impl Outbox {
    pub(crate) fn new() -> Self {
        Self {
            next_ticket: 1,
            ..Self::default()
        }
    }

    pub(crate) fn push(&mut self, t: Transmit) {
        let promises = self.hold_conn == Some(t.conn);
        self.push_held_if(t, promises);
    }

    /// Queues a PUBLISH. Sending one promises nothing about what the input stored, so unlike
    /// an acknowledgement it waits only where a QoS 2 flow needs it, or behind what its
    /// connection already has held: a subscriber's next QoS 1 message need not wait for the
    /// commit that deletes the one it just acknowledged (a crash before that commit only
    /// redelivers, which QoS 1 allows).
    pub(crate) fn push_publish(&mut self, t: Transmit) {
        self.push_held_if(t, false);
    }

    fn push_held_if(&mut self, t: Transmit, promises: bool) {
        let pending = self.marked || !self.ops.is_empty();
        let must_wait = pending && (self.hold_all || promises);
        // Without persistence nothing is ever held: no lookup per transmit.
        let behind = !self.held.is_empty() && self.held_per_conn.contains_key(&t.conn);
        if must_wait || behind {
            *self.held_per_conn.entry(t.conn).or_default() += 1;
            self.held.push_back(Held {
                tag: self.next_ticket,
                transmit: t,
                ack: self.ack.take(),
                refused: None,
            });
        } else {
            self.ack = None;
            self.ready.push_back(t);
        }
    }

    pub(crate) fn pop(&mut self) -> Option<Transmit> {
        self.ready.pop_front()
    }

    /// Closes the batch of the last input: its ticket, its operations, and whether a transmit
    /// waits for it; `None` if it has no operation.
    pub(crate) fn finish_batch(&mut self) -> Option<(StoreTicket, Vec<StoreOp>, bool)> {
        self.hold_conn = None;
        self.hold_all = false;
        self.marked = false;
        if self.ops.is_empty() && self.held.is_empty() {
            // Every poll of a broker without persistence comes here.
            return None;
        }
        if self.ops.is_empty() {
            // Held only to keep a connection's order: they wait for the ticket before.
            let before = self.next_ticket - 1;
            for h in self.held.iter_mut().rev() {
                if h.tag != self.next_ticket {
                    break;
                }
                h.tag = before;
            }
            self.release();
            return None;
        }
        let ticket = self.next_ticket;
        self.next_ticket += 1;
        // Transmits held for this batch are the last ones held.
        let urgent = self.held.back().is_some_and(|h| h.tag == ticket);
        Some((StoreTicket(ticket), std::mem::take(&mut self.ops), urgent))
    }

    /// Every batch up to `ticket` is durable: what waited for them goes out.
    pub(crate) fn stored(&mut self, ticket: StoreTicket) {
        self.durable = self.durable.max(ticket.0);
        self.release();
    }

    /// The store could not make the batch `ticket` durable: what waited for it goes out,
    /// except its acknowledgements, which `refuse` turns into refusals (or nothing).
    pub(crate) fn failed(
        &mut self,
        ticket: StoreTicket,
        refuse: &mut dyn FnMut(AckIntent, ConnId) -> Option<Transmit>,
    ) {
        for h in &mut self.held {
            if h.tag > ticket.0 {
                break;
            }
            if let Some(intent) = h.ack.take() {
                h.refused = Some(refuse(intent, h.transmit.conn));
            }
        }
        self.stored(ticket);
    }

    fn release(&mut self) {
        while self.held.front().is_some_and(|h| h.tag <= self.durable) {
            let Some(h) = self.held.pop_front() else {
                break;
            };
            let conn = h.transmit.conn;
            if let Some(n) = self.held_per_conn.get_mut(&conn) {
                *n -= 1;
                if *n == 0 {
                    self.held_per_conn.remove(&conn);
                }
            }
            match h.refused {
                None => self.ready.push_back(h.transmit),
                Some(Some(refusal)) => self.ready.push_back(refusal),
                Some(None) => {}
            }
        }
    }

    /// Transmits waiting for durability.
    pub(crate) fn held(&self) -> usize {
        self.held.len()
    }
}
