//! What the broker tells its store, and how it starts again from what the store kept.
//!
//! Session records are written once per batch for every session an input changed
//! ([`Broker::touch`]); deliveries, QoS 2 packet ids and retained messages as they change.
//! Nothing is emitted unless [`BrokerConfig::persistence`] is on, and only for persistent
//! sessions (a Session Expiry Interval above 0; 3.x Clean Session 0).

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytestring::ByteString;

use super::store::{
    SessionState, StoreOp, StoreTicket, StoredDelivery, StoredFlow, StoredMessage, StoredSession,
    StoredState, StoredSubscription,
};
use super::*;

impl Broker {
    /// Whether `client`'s session is written to the store.
    pub(super) fn persists(&self, client: &ByteString) -> bool {
        self.config.persistence
            && self
                .sessions
                .get(client)
                .is_some_and(|s| s.expiry_interval > 0)
    }

    /// `client`'s session record changed: it is written when the batch closes (or deleted, if
    /// it no longer persists).
    pub(super) fn touch(&mut self, client: &ByteString) {
        if !self.config.persistence {
            return;
        }
        let concerned = self
            .sessions
            .get(client)
            .is_some_and(|s| s.expiry_interval > 0 || s.stored);
        if concerned {
            self.out.marked = true;
            // A new record is written at once, so that what follows in this batch (its
            // deliveries, its QoS 2 ids) finds it; later changes wait for the batch's end.
            if let Some(s) = self.sessions.get_mut(client) {
                if s.expiry_interval > 0 && !s.stored {
                    s.stored = true;
                    let op = StoreOp::PutSession {
                        client_id: client.clone(),
                        session: Box::new(stored_session(s)),
                    };
                    self.out.ops.push(op);
                }
            }
            if !self.dirty.contains(client) {
                self.dirty.push(client.clone());
            }
        }
    }

    pub(super) fn store(&mut self, op: StoreOp) {
        if self.config.persistence {
            self.out.ops.push(op);
        }
    }

    /// The flow of a stored delivery advanced: `inflight` is its new state. The delivery is
    /// stored: a session persists from its creation on or never (one that ends with its
    /// connection is gone when another connection takes the client id over), so every
    /// delivery of a persistent session was stored whole when it was queued.
    pub(super) fn store_flow(
        &mut self,
        client: &ByteString,
        d: &Delivery,
        inflight: Option<(PacketId, StoredFlow)>,
    ) {
        if self.persists(client) {
            if inflight.is_some_and(|_| d.qos == QoS::ExactlyOnce) {
                // A QoS 2 packet id must be durable before the PUBLISH that carries it
                // leaves: a restart resends the same id, never a new copy.
                self.out.hold_all = true;
            }
            self.out.ops.push(StoreOp::SetFlow {
                client_id: client.clone(),
                seq: d.seq,
                inflight,
            });
        }
    }

    /// A delivery of a persistent session was queued: stored whole, not yet in flight.
    pub(super) fn store_delivery(&mut self, client: &ByteString, d: &Delivery) {
        if self.persists(client) {
            let op = StoreOp::PutDelivery {
                client_id: client.clone(),
                seq: d.seq,
                delivery: Box::new(StoredDelivery {
                    message: stored_message(&d.msg),
                    qos: d.qos,
                    retain: d.retain,
                    sub_ids: d.sub_ids.clone(),
                    inflight: None,
                }),
            };
            self.out.ops.push(op);
        }
    }

    /// A delivery of a persistent session completed or was dropped.
    pub(super) fn store_delivery_gone(&mut self, client: &ByteString, seq: u64) {
        if self.persists(client) {
            self.out.ops.push(StoreOp::DeleteDelivery {
                client_id: client.clone(),
                seq,
            });
        }
    }

    /// [`Broker::store_delivery_gone`] for the session on `conn`.
    pub(super) fn delivery_gone_on(&mut self, conn: ConnId, seq: u64) {
        if let Some(client) = self.conns.get(&conn).and_then(|c| c.session.clone()) {
            self.store_delivery_gone(&client, seq);
        }
    }

    /// Closes the batch of the last input: session records first, then the event.
    pub(super) fn finish_batch(&mut self) {
        if self.out.marked {
            for client in std::mem::take(&mut self.dirty) {
                let op = match self.sessions.get_mut(&client) {
                    Some(s) if s.expiry_interval > 0 => {
                        s.stored = true;
                        StoreOp::PutSession {
                            session: Box::new(stored_session(s)),
                            client_id: client,
                        }
                    }
                    Some(s) if s.stored => {
                        s.stored = false;
                        StoreOp::DeleteSession { client_id: client }
                    }
                    // Ended in this batch: its deletion is already in it.
                    _ => continue,
                };
                self.out.ops.push(op);
            }
        }
        if let Some((ticket, ops, urgent)) = self.out.finish_batch() {
            self.events.push_back(BrokerEvent::Store {
                ticket,
                ops,
                urgent,
            });
        }
    }

    /// The store made every batch up to `ticket` durable: acknowledgements that waited for
    /// it go out (drain `poll_transmit`).
    pub fn handle_stored(&mut self, _now: Instant, ticket: StoreTicket) {
        self.finish_batch();
        self.out.stored(ticket);
    }

    /// The store could not make the batch `ticket` durable (a full disk): what waited for it
    /// goes out, but the PUBACKs and PUBRECs it held become refusals: 0x97 (Quota exceeded)
    /// for 5.0 clients, and none at all for 3.x clients, whose acknowledgements cannot say
    /// no: they send the message again. The message itself stays in memory, delivered while
    /// the broker runs, but not promised; a refused QoS 2 packet id is forgotten, so the
    /// client's next attempt is a new flow (exactly-once degrades to at-least-once for a
    /// message whose store failed: it was never acknowledged).
    pub fn handle_store_failed(&mut self, _now: Instant, ticket: StoreTicket) {
        self.finish_batch();
        let mut buf = std::mem::take(&mut self.buf);
        let mut forget = Vec::new();
        self.out.failed(ticket, &mut |intent, conn| {
            if intent.kind == PacketType::PubRec {
                forget.push((conn, intent.id));
            }
            if intent.version != ProtocolVersion::V5 {
                return None;
            }
            let mut a = Ack::new(intent.id);
            a.reason_code = ReasonCode::QuotaExceeded;
            let packet = match intent.kind {
                PacketType::PubRec => Packet::PubRec(a),
                _ => Packet::PubAck(a),
            };
            crate::codec::encode(&packet, intent.version, &mut buf).ok()?;
            Some(Transmit {
                conn,
                bytes: buf.split().freeze(),
                payload: bytes::Bytes::new(),
            })
        });
        self.buf = buf;
        for (conn, id) in forget {
            if let Some(session) = self.session_of(conn) {
                session.incoming_qos2.remove(&id);
            }
        }
    }

    /// Transmits waiting for the store.
    pub fn waiting_for_store(&self) -> usize {
        self.out.held()
    }

    /// A broker started again from what a store kept: every session offline (its expiry
    /// counting from `now` unless it had already started), what was in flight to be sent
    /// again with DUP, delayed wills and retained messages back. `config.persistence`
    /// should be on for it to go on storing.
    pub fn recover(config: BrokerConfig, state: StoredState, now: Instant) -> Self {
        let mut broker = Self::new(config);
        for m in state.retained.into_values() {
            if m.expires_at.is_some_and(|t| t <= now) {
                continue;
            }
            let topic = m.topic.clone();
            let _ = broker.retained.set(&topic, Arc::new(message(m)));
        }
        for (client, s) in state.sessions {
            broker.restore_session(now, client, s);
        }
        broker
    }

    fn restore_session(&mut self, now: Instant, client: ByteString, state: SessionState) {
        let SessionState {
            session: stored,
            deliveries,
            incoming_qos2,
        } = state;
        let mut session = Session::new(stored.version);
        session.expiry_interval = stored.expiry_interval;
        session.stored = true;
        for sub in stored.subscriptions {
            let Ok(filter) = TopicFilter::try_from(sub.filter.clone()) else {
                continue;
            };
            let entry = SubEntry {
                options: sub.options,
                id: sub.id,
            };
            self.subs.insert(&client, &filter, entry.clone());
            session.subscriptions.insert(sub.filter, entry);
        }
        for (seq, d) in deliveries {
            let delivery = Delivery {
                msg: Arc::new(message(d.message)),
                qos: d.qos,
                retain: d.retain,
                sub_ids: d.sub_ids,
                seq,
            };
            session.restore(delivery, d.inflight);
        }
        session.incoming_qos2 = incoming_qos2.into_iter().collect::<HashSet<_>>();
        if let Some((at, will)) = stored.pending_will {
            self.timers.insert(at, Timer::WillDelay(client.clone()));
            session.pending_will = Some(Box::new((at, will)));
        }
        if session.expiry_interval != u32::MAX {
            let at = stored
                .expires_at
                .unwrap_or_else(|| now + Duration::from_secs(u64::from(session.expiry_interval)));
            session.expires_at = Some(at);
            self.timers.insert(at, Timer::SessionExpiry(client.clone()));
        }
        self.sessions.insert(client, session);
    }
}

pub(super) fn stored_message(m: &Message) -> StoredMessage {
    StoredMessage {
        topic: m.topic.clone(),
        payload: m.payload.clone(),
        qos: m.qos,
        retain: m.retain,
        properties: PublishProperties::clone(&m.properties),
        expires_at: m.expires_at,
        origin: m.origin.clone(),
    }
}

fn message(m: StoredMessage) -> Message {
    Message {
        topic: m.topic,
        payload: m.payload,
        qos: m.qos,
        retain: m.retain,
        properties: m.properties.into(),
        expires_at: m.expires_at,
        origin: m.origin,
    }
}

fn stored_session(s: &Session) -> StoredSession {
    StoredSession {
        version: s.version,
        expiry_interval: s.expiry_interval,
        expires_at: s.expires_at,
        subscriptions: s
            .subscriptions
            .iter()
            .map(|(filter, e)| StoredSubscription {
                filter: filter.clone(),
                options: e.options,
                id: e.id,
            })
            .collect(),
        pending_will: s.pending_will.as_deref().cloned(),
    }
}
