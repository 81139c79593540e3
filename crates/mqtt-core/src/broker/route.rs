//! Fan-out: match a message against the subscriptions, deliver one copy per client at the
//! QoS it may have, and encode each copy for its connection sharing the payload `Bytes`.

use core::num::NonZeroU32;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use bytestring::ByteString;

use super::event::{ConnId, Transmit};
use super::session::{InFlight, OutState};

use super::connection::Connection;
use super::outbox::Outbox;
use super::store::StoredFlow;
use super::{Broker, Stats};
use crate::codec::encode_publish_header;
use crate::packet::{
    PacketId, ProtocolVersion, Publish, PublishProperties, PublishPropertiesBox, QoS,
};
use crate::topic::TopicName;

/// An application message as the broker holds it: what every copy shares.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Message {
    pub(crate) topic: TopicName,
    pub(crate) payload: Bytes,
    pub(crate) qos: QoS,
    pub(crate) retain: bool,
    /// v5 properties to forward; Topic Alias and Subscription Identifiers are per hop and
    /// are never kept here. Out of line: most messages have none, and a queued message
    /// then costs 152 bytes fewer (160 inline, 8 for the pointer).
    pub(crate) properties: PublishPropertiesBox,
    /// When the Message Expiry Interval runs out.
    pub(crate) expires_at: Option<Instant>,
    /// The publishing client, for No Local.
    pub(crate) origin: Option<ByteString>,
}

impl Message {
    pub(crate) fn is_expired(&self, now: Instant) -> bool {
        self.expires_at.is_some_and(|t| t <= now)
    }
}

/// One copy of a message for one session.
#[derive(Debug, Clone)]
pub(crate) struct Delivery {
    /// Shared by every copy: a fan-out or a queue holds one message, not one per session.
    pub(crate) msg: Arc<Message>,
    pub(crate) qos: QoS,
    pub(crate) retain: bool,
    pub(crate) sub_ids: Vec<NonZeroU32>,
    /// Its number in the session's order (given when queued): the store's key.
    pub(crate) seq: u64,
}

impl Broker {
    /// Routes a message to every matching subscription.
    pub(crate) fn route(&mut self, now: Instant, msg: &Arc<Message>) -> usize {
        let mut routes = core::mem::take(&mut self.routes);
        routes.clear();
        let sessions = &self.sessions;
        let conns = &self.conns;
        let rng = &mut self.rng;
        self.subs.route(
            &msg.topic,
            msg.origin.as_ref(),
            &mut |members: &[ByteString]| {
                // A shared group prefers members that are online; among them, a seeded pick.
                // Counted twice rather than collected: this runs for every message a shared
                // group takes, and must not allocate.
                let is_online = |m: &ByteString| {
                    sessions
                        .get(m)
                        .and_then(|s| s.conn)
                        .is_some_and(|c| conns.contains_key(&c))
                };
                let r = rng.next() as usize;
                let online = members.iter().filter(|m| is_online(m)).count();
                if online == 0 {
                    r % members.len().max(1)
                } else {
                    let nth = r % online;
                    members
                        .iter()
                        .enumerate()
                        .filter(|(_, m)| is_online(m))
                        .nth(nth)
                        .map_or(usize::MAX, |(i, _)| i)
                }
            },
            &mut routes,
        );
        let count = routes.len();
        self.wire_forms.clear();
        self.in_fanout = true;
        for r in routes.drain(..) {
            let qos = msg.qos.min(r.qos).min(self.config.maximum_qos);
            let d = Delivery {
                msg: msg.clone(),
                qos,
                // [MQTT-3.3.1-12] [MQTT-3.3.1-13] live messages keep RETAIN only with
                // Retain As Published.
                retain: msg.retain && r.retain_as_published,
                sub_ids: r.sub_ids,
                seq: 0,
            };
            self.deliver(now, &r.client, d);
        }
        self.in_fanout = false;
        self.wire_forms.clear();
        self.routes = routes;
        count
    }

    /// Gives one copy to a session: sent now if its connection has room, else queued.
    pub(crate) fn deliver(&mut self, now: Instant, client: &ByteString, d: Delivery) {
        let Some(session) = self.sessions.get_mut(client) else {
            return;
        };
        let conn = session.conn.filter(|c| self.conns.contains_key(c));
        match (conn, d.qos) {
            (Some(conn), QoS::AtMostOnce) => {
                if self.write_room(conn) {
                    self.send_publish(now, conn, &d, None, false);
                } else {
                    self.stats.dropped += 1;
                }
            }
            // QoS 0 for offline sessions is not kept (as Mosquitto does by default).
            (None, QoS::AtMostOnce) => {}
            (_, _) => {
                let limits = &self.config.limits;
                let mut gone = Vec::new();
                let queued = session.enqueue(d, limits, &mut gone);
                if queued.is_none() {
                    self.stats.dropped += 1;
                }
                for seq in gone {
                    self.store_delivery_gone(client, seq);
                }
                if queued.is_some() && self.persists(client) {
                    let last = self.sessions.get(client).and_then(|s| s.queue.back());
                    if let Some(d) = last.cloned() {
                        self.store_delivery(client, &d);
                    }
                }
                if let Some(conn) = conn {
                    self.pump(now, conn);
                }
            }
        }
    }

    /// Moves queued messages of the session on `conn` into flight while the window and the
    /// connection's write budget allow.
    pub(crate) fn pump(&mut self, now: Instant, conn: ConnId) {
        loop {
            if !self.write_room(conn) {
                return;
            }
            let Some(c) = self.conns.get(&conn) else {
                return;
            };
            let window = usize::from(self.config.limits.max_inflight.min(c.client_receive_max));
            let Some(session) = c.session.as_ref().and_then(|s| self.sessions.get_mut(s)) else {
                return;
            };
            // [MQTT-4.4.0-1] what a resumed session had in flight goes again first, with DUP
            // and in order, but only as the window allows [MQTT-3.3.4-9].
            let unsent = match session.resending {
                true => session.inflight.iter().position(|f| !f.sent),
                false => None,
            };
            session.resending = unsent.is_some();
            if let Some(i) = unsent {
                if session.inflight.iter().filter(|f| f.sent).count() >= window {
                    return;
                }
                let Some(f) = session.inflight.get(i).cloned() else {
                    return;
                };
                let sent = self.send_publish(now, conn, &f.delivery, Some(f.id), true);
                if let Some(session) = self.session_of(conn) {
                    if sent {
                        if let Some(f) = session.inflight.get_mut(i) {
                            f.sent = true;
                        }
                    } else {
                        // Expired, or too large for this connection's Maximum Packet Size:
                        // discarded as if its delivery had completed [MQTT-3.1.2-25].
                        session.inflight.remove(i);
                        self.delivery_gone_on(conn, f.delivery.seq);
                    }
                }
                continue;
            }
            if session.inflight.len() >= window {
                return;
            }
            let Some(d) = session.dequeue() else {
                return;
            };
            if d.msg.is_expired(now) {
                self.delivery_gone_on(conn, d.seq);
                continue;
            }
            if d.qos == QoS::AtMostOnce {
                self.send_publish(now, conn, &d, None, false);
                self.delivery_gone_on(conn, d.seq);
                continue;
            }
            let Some(id) = session.next_packet_id() else {
                return;
            };
            let state = if d.qos == QoS::AtLeastOnce {
                OutState::Qos1Sent
            } else {
                OutState::Qos2Sent
            };
            // Stored before it is sent: a QoS 2 PUBLISH waits for its packet id to be durable.
            let client = self.conns.get(&conn).and_then(|c| c.session.clone());
            if let Some(client) = &client {
                self.store_flow(client, &d, Some((id, StoredFlow::Published)));
            }
            if self.send_publish(now, conn, &d, Some(id), false) {
                if let Some(session) = self.session_of(conn) {
                    session.push_inflight(InFlight {
                        id,
                        state,
                        delivery: d,
                        sent: true,
                    });
                }
            } else {
                self.delivery_gone_on(conn, d.seq);
            }
        }
    }

    fn write_room(&self, conn: ConnId) -> bool {
        self.conns
            .get(&conn)
            .is_some_and(|c| c.pending_write < self.config.limits.max_pending_write_bytes)
    }

    /// Encodes and queues one PUBLISH for `conn`. Returns false if the message was dropped
    /// for this subscriber (too large for its Maximum Packet Size [MQTT-3.1.2-25], expired).
    pub(crate) fn send_publish(
        &mut self,
        now: Instant,
        conn: ConnId,
        d: &Delivery,
        packet_id: Option<PacketId>,
        dup: bool,
    ) -> bool {
        let Some(c) = self.conns.get_mut(&conn) else {
            return false;
        };
        let version = c.version;
        // Copies that differ in nothing but their connection share one encoded header as
        // well as the payload: QoS 0, no Subscription Identifier, no alias (one fan-out has
        // one `now`, so one remaining expiry).
        let shareable = packet_id.is_none()
            && d.sub_ids.is_empty()
            && (version != ProtocolVersion::V5 || !c.aliases_out.is_enabled());
        if shareable {
            let cached = self
                .wire_forms
                .iter()
                .find(|(v, r, _)| self.in_fanout && *v == version && *r == d.retain)
                .map(|(_, _, h)| h.clone());
            if let Some(header) = cached {
                if d.msg.is_expired(now) {
                    return false;
                }
                let t = Transmit {
                    conn,
                    bytes: header,
                    payload: d.msg.payload.clone(),
                };
                return queue_publish(c, &mut self.stats, &mut self.out, t, &d.msg.topic);
            }
        }
        let mut publish = Publish {
            dup,
            qos: d.qos,
            retain: d.retain,
            topic: d.msg.topic.clone(),
            packet_id,
            properties: Default::default(),
            payload: d.msg.payload.clone(),
        };
        if version == ProtocolVersion::V5 {
            let mut props = PublishProperties::clone(&d.msg.properties);
            if let Some(at) = d.msg.expires_at {
                // [MQTT-3.3.2-6] forward the expiry that is left.
                let Some(left) = at.checked_duration_since(now).filter(|l| !l.is_zero()) else {
                    return false;
                };
                props.message_expiry_interval = Some(ceil_secs(left));
            }
            props.subscription_identifiers = d.sub_ids.clone();
            props.topic_alias = None;
            if let Some((alias, known)) = c.aliases_out.alias_for(&publish.topic) {
                props.topic_alias = Some(alias);
                if known {
                    publish.topic = TopicName::empty();
                }
            }
            publish.properties = props.into();
        } else if d.msg.is_expired(now) {
            return false;
        }
        let mark = self.buf.len();
        if encode_publish_header(&publish, version, &mut self.buf).is_err() {
            self.buf.truncate(mark);
            return false;
        }
        let header = self.buf.split().freeze();
        if shareable && self.in_fanout {
            self.wire_forms.push((version, d.retain, header.clone()));
        }
        let t = Transmit {
            conn,
            bytes: header,
            payload: publish.payload,
        };
        queue_publish(c, &mut self.stats, &mut self.out, t, &d.msg.topic)
    }
}

/// Queues an encoded PUBLISH unless it is larger than the client's Maximum Packet Size
/// [MQTT-3.1.2-25]: then the message is dropped for this client only, and an alias made
/// for it is forgotten so the client is never sent one it was not told.
fn queue_publish(
    c: &mut Connection,
    stats: &mut Stats,
    out: &mut Outbox,
    t: Transmit,
    topic: &TopicName,
) -> bool {
    let size = t.len();
    if size > c.client_max_packet as usize {
        c.aliases_out.forget(topic);
        stats.dropped += 1;
        return false;
    }
    c.pending_write += size;
    stats.messages_sent += 1;
    stats.bytes_sent += size as u64;
    out.push_publish(t);
    true
}

fn ceil_secs(d: Duration) -> u32 {
    let secs = d.as_secs() + u64::from(d.subsec_nanos() > 0);
    u32::try_from(secs).unwrap_or(u32::MAX)
}
