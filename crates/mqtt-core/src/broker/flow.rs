//! Inbound PUBLISH and the QoS 1/2 acknowledgement flows in both directions.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytestring::ByteString;

use super::*;

impl Broker {
    pub(super) fn on_publish(&mut self, now: Instant, conn: ConnId, mut p: Publish) {
        let Some(c) = self.conns.get_mut(&conn) else {
            return;
        };
        let version = c.version;
        // Topic Alias from the client: [MQTT-3.3.2-9] [MQTT-3.3.2-10] within what we
        // announced, and an empty topic must name a known alias.
        if let Some(alias) = p.properties.get_mut().and_then(|p| p.topic_alias.take()) {
            if alias.get() > self.config.limits.topic_alias_maximum {
                return self.protocol_error(now, conn, ReasonCode::TopicAliasInvalid);
            }
            if p.topic.is_empty() {
                match c.aliases_in.get(&alias.get()) {
                    Some(t) => p.topic = t.clone(),
                    None => return self.protocol_error(now, conn, ReasonCode::ProtocolError),
                }
            } else {
                c.aliases_in.insert(alias.get(), p.topic.clone());
            }
        }
        if p.topic.levels().count() > self.config.limits.max_topic_levels {
            return self.protocol_error(now, conn, ReasonCode::TopicNameInvalid);
        }
        // [MQTT-3.2.2-11] a QoS above Maximum QoS; [MQTT-3.3.1-?] RETAIN when not available.
        if p.qos > self.config.maximum_qos {
            return self.protocol_error(now, conn, ReasonCode::QoSNotSupported);
        }
        if p.retain && !self.config.retain_available {
            return self.protocol_error(now, conn, ReasonCode::RetainNotSupported);
        }
        let Some(client) = c.session.clone() else {
            return;
        };
        let receive_max = usize::from(self.config.limits.receive_maximum);
        let Some(session) = self.sessions.get_mut(&client) else {
            return;
        };
        if p.qos == QoS::ExactlyOnce {
            let Some(id) = p.packet_id else {
                return;
            };
            if session.incoming_qos2.contains(&id) {
                // [MQTT-4.3.3-?] a PUBLISH repeated before PUBREL is not delivered again.
                return self.send_ack(conn, PacketType::PubRec, Ack::new(id));
            }
            // [MQTT-3.3.4-7] more unacknowledged QoS 2 than Receive Maximum.
            if session.incoming_qos2.len() >= receive_max {
                return self.protocol_error(now, conn, ReasonCode::ReceiveMaximumExceeded);
            }
            session.incoming_qos2.insert(id);
            if self.persists(&client) {
                // Durable before the message goes anywhere: after a restart the client's
                // resent PUBLISH is known, and not forwarded twice.
                self.out.hold_all = true;
                self.store(StoreOp::PutIncomingQos2 {
                    client_id: client.clone(),
                    packet_id: id,
                });
            }
        }
        self.stats.messages_received += 1;
        let (qos, packet_id) = (p.qos, p.packet_id);
        let routed = self.publish_message(now, p, Some(client), version);
        let code = if routed == 0 && version.is_v5() {
            ReasonCode::NoMatchingSubscribers
        } else {
            ReasonCode::Success
        };
        match (qos, packet_id) {
            (QoS::AtLeastOnce, Some(id)) => self.send_ack(conn, PacketType::PubAck, ack(id, code)),
            (QoS::ExactlyOnce, Some(id)) => self.send_ack(conn, PacketType::PubRec, ack(id, code)),
            _ => {}
        }
    }

    /// Retains (if asked) and routes one message; returns how many subscribers it reached.
    pub(super) fn publish_message(
        &mut self,
        now: Instant,
        p: Publish,
        origin: Option<ByteString>,
        version: ProtocolVersion,
    ) -> usize {
        // The message takes the packet's parts as they are: nothing is copied.
        let mut properties = p.properties;
        let expiry = properties.get_mut().and_then(|props| {
            props.subscription_identifiers.clear();
            props.topic_alias = None;
            props.message_expiry_interval.take()
        });
        let expires_at = expiry
            .filter(|_| version.is_v5())
            .map(|s| now + Duration::from_secs(u64::from(s)));
        let msg = Arc::new(Message {
            topic: p.topic,
            payload: p.payload,
            qos: p.qos,
            retain: p.retain,
            properties,
            expires_at,
            origin,
        });
        // Clients may not publish into $SYS: it is the broker's (spec 4.7.2 "SHOULD prevent"),
        // neither live nor by replacing what the broker retained there.
        if msg.topic.starts_with("$SYS") && msg.origin.is_some() {
            return 0;
        }
        if msg.retain {
            if msg.payload.is_empty() {
                // [MQTT-3.3.1-6] [MQTT-3.3.1-7] an empty retained message clears the topic
                // and is not itself retained.
                self.retained.clear(&msg.topic);
                if msg.origin.is_some() {
                    self.store(StoreOp::DeleteRetained {
                        topic: msg.topic.clone(),
                    });
                }
            } else {
                let kept = self.retained.set(&msg.topic, msg.clone()) || {
                    // [MQTT-3.3.1-5] replaces what was retained for the topic. Full: expired
                    // messages (swept otherwise only with $SYS) make room first.
                    self.retained.retain(&mut |_, m| !m.is_expired(now));
                    self.retained.set(&msg.topic, msg.clone())
                };
                // $SYS is the broker's own, published anew after a restart.
                if kept && !msg.topic.starts_with("$SYS") {
                    self.store(StoreOp::PutRetained {
                        message: Box::new(persist::stored_message(&msg)),
                    });
                }
            }
        }
        self.route(now, &msg)
    }

    pub(super) fn on_puback(&mut self, now: Instant, conn: ConnId, a: &Ack) {
        if let Some(session) = self.session_of(conn) {
            if let Some(i) = session.inflight_position(a.packet_id) {
                if session.inflight.get(i).map(|f| f.state) == Some(OutState::Qos1Sent) {
                    if let Some(f) = session.inflight.remove(i) {
                        self.delivery_gone_on(conn, f.delivery.seq);
                    }
                }
            }
        }
        self.pump(now, conn);
    }

    pub(super) fn on_pubrec(&mut self, now: Instant, conn: ConnId, a: &Ack) {
        let persisting = self.config.persistence;
        let Some(session) = self.session_of(conn) else {
            return;
        };
        let Some(i) = session.inflight_position(a.packet_id) else {
            // Unknown id: answer PUBREL "not found" so the client's flow can end.
            let mut rel = Ack::new(a.packet_id);
            rel.reason_code = ReasonCode::PacketIdentifierNotFound;
            return self.send_ack(conn, PacketType::PubRel, rel);
        };
        if a.reason_code.is_error() {
            // [MQTT-4.3.3-?] a failed PUBREC ends the flow.
            if let Some(f) = session.inflight.remove(i) {
                self.delivery_gone_on(conn, f.delivery.seq);
            }
            return self.pump(now, conn);
        }
        let mut released = None;
        if let Some(f) = session.inflight.get_mut(i) {
            f.state = OutState::Qos2Released;
            // The PUBREL goes out now, even if the PUBLISH was not resent on this connection.
            f.sent = true;
            released = persisting.then(|| f.delivery.clone());
        }
        let client = self.conns.get(&conn).and_then(|c| c.session.clone());
        if let (Some(d), Some(client)) = (released, client) {
            if self.persists(&client) {
                let flow = Some((a.packet_id, StoredFlow::Released));
                self.store_flow(&client, &d, flow);
            }
        }
        self.send_ack(conn, PacketType::PubRel, Ack::new(a.packet_id));
    }

    pub(super) fn on_pubrel(&mut self, conn: ConnId, a: &Ack) {
        let Some(session) = self.session_of(conn) else {
            return;
        };
        let mut comp = Ack::new(a.packet_id);
        // [MQTT-4.3.3-?] the id is released; PUBCOMP either way, "not found" if unknown.
        if !session.incoming_qos2.remove(&a.packet_id) {
            comp.reason_code = ReasonCode::PacketIdentifierNotFound;
        } else if let Some(client) = self.conns.get(&conn).and_then(|c| c.session.clone()) {
            if self.persists(&client) {
                self.store(StoreOp::DeleteIncomingQos2 {
                    client_id: client,
                    packet_id: a.packet_id,
                });
            }
        }
        self.send_ack(conn, PacketType::PubComp, comp);
    }

    pub(super) fn on_pubcomp(&mut self, now: Instant, conn: ConnId, a: &Ack) {
        if let Some(session) = self.session_of(conn) {
            if let Some(i) = session.inflight_position(a.packet_id) {
                if session.inflight.get(i).map(|f| f.state) == Some(OutState::Qos2Released) {
                    if let Some(f) = session.inflight.remove(i) {
                        self.delivery_gone_on(conn, f.delivery.seq);
                    }
                }
            }
        }
        self.pump(now, conn);
    }
}
