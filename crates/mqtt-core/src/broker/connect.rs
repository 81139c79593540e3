//! CONNECT: refusals, takeover, clean start and session expiry, the CONNACK, resuming a session.

use core::num::{NonZeroU16, NonZeroU32};
use std::time::{Duration, Instant};

use bytestring::ByteString;

use super::*;

impl Broker {
    pub(super) fn on_connect(&mut self, now: Instant, conn: ConnId, connect: Box<Connect>) {
        let version = connect.protocol_version;
        if let Some(c) = self.conns.get_mut(&conn) {
            c.version = version;
        }
        let limits = &self.config.limits;
        let refusal = if self.conns.len() > limits.max_connections {
            Some(ReasonCode::ServerBusy)
        } else if connect.client_id.len() > limits.max_client_id_len {
            Some(ReasonCode::ClientIdentifierNotValid)
        } else if connect.client_id.is_empty()
            && (version == ProtocolVersion::V31
                || version == ProtocolVersion::V311 && !connect.clean_start)
        {
            // [MQTT-3.1.3-8] an empty id needs a clean session in 3.1.1; 3.1 requires an id.
            Some(ReasonCode::ClientIdentifierNotValid)
        } else if connect
            .will
            .as_ref()
            .is_some_and(|w| w.topic.levels().count() > limits.max_topic_levels)
        {
            Some(ReasonCode::TopicNameInvalid)
        } else if connect.properties.authentication_method.is_some() {
            // Enhanced authentication methods are not offered [MQTT-3.2.2-?]: refuse.
            Some(ReasonCode::BadAuthenticationMethod)
        } else if let Some(w) = connect
            .will
            .as_ref()
            .filter(|w| w.qos > self.config.maximum_qos && version.is_v5())
        {
            // [MQTT-3.2.2-12] a will QoS above Maximum QoS is refused with 0x9B.
            let _ = w;
            Some(ReasonCode::QoSNotSupported)
        } else if connect
            .will
            .as_ref()
            .is_some_and(|w| w.retain && !self.config.retain_available && version.is_v5())
        {
            // [MQTT-3.2.2-13]
            Some(ReasonCode::RetainNotSupported)
        } else {
            None
        };
        if let Some(code) = refusal {
            self.refuse(now, conn, version, code);
            return;
        }
        if self.config.authenticate {
            let peer = self.conns.get(&conn).map(|c| c.peer.clone());
            let request = AuthRequest {
                client_id: connect.client_id.clone(),
                username: connect.username.clone(),
                password: connect.password.clone(),
                version,
                peer: peer.unwrap_or(PeerInfo {
                    addr: None,
                    tls: false,
                }),
            };
            if let Some(c) = self.conns.get_mut(&conn) {
                c.phase = Phase::AwaitingAuth(connect);
            }
            self.events
                .push_back(BrokerEvent::Authenticate { conn, request });
            return;
        }
        self.complete_connect(now, conn, connect);
    }

    pub(super) fn refuse(
        &mut self,
        now: Instant,
        conn: ConnId,
        version: ProtocolVersion,
        code: ReasonCode,
    ) {
        // [MQTT-3.2.2-6] a refusal carries Session Present 0 and closes the connection.
        self.send_connack(conn, version, false, code, Default::default());
        self.close(now, conn, CloseReason::ConnectRefused(code), None);
    }

    pub(super) fn complete_connect(&mut self, now: Instant, conn: ConnId, connect: Box<Connect>) {
        let Connect {
            protocol_version: version,
            clean_start,
            keep_alive,
            client_id,
            will,
            properties,
            ..
        } = *connect;
        let mut ack = ConnAckProperties::default();
        let client_id = if client_id.is_empty() {
            let id = ByteString::from(format!("auto-{:016x}", self.rng.next()));
            if version.is_v5() {
                // [MQTT-3.2.2-16]
                ack.assigned_client_identifier = Some(id.clone());
            }
            id
        } else {
            // A copy: the id lives as long as the session, and a slice would keep the whole
            // buffer the CONNECT was read into.
            ByteString::from(&*client_id)
        };

        // Takeover: [MQTT-3.1.4-3] the connection already using this client id is closed.
        if let Some(old) = self.sessions.get(&client_id).and_then(|s| s.conn) {
            if old != conn && self.conns.contains_key(&old) {
                let code = (self.conns.get(&old).map(|c| c.version) == Some(ProtocolVersion::V5))
                    .then_some(ReasonCode::SessionTakenOver);
                self.close(now, old, CloseReason::SessionTakenOver, code);
            }
        }

        // Session expiry: 5.0 says it in CONNECT; 3.x persistent sessions never expire.
        let expiry = if version.is_v5() {
            let asked = properties.session_expiry_interval.unwrap_or(0);
            let granted = asked.min(self.config.max_session_expiry);
            if granted != asked {
                ack.session_expiry_interval = Some(granted);
            }
            granted
        } else if clean_start {
            0
        } else {
            u32::MAX
        };

        // [MQTT-3.1.2-4] Clean Start discards any existing session.
        if clean_start {
            self.discard_session(&client_id);
        }
        let session_present = self.sessions.contains_key(&client_id);
        let session = self
            .sessions
            .entry(client_id.clone())
            .or_insert_with(|| Session::new(version));
        session.conn = Some(conn);
        session.version = version;
        session.expiry_interval = expiry;
        session.expires_at = None;
        // [MQTT-3.1.3-9] a new connection before the will delay ends cancels the will.
        session.pending_will = None;
        // Stored before CONNACK goes out: CONNACK waits for it.
        self.touch(&client_id);

        let limits = &self.config.limits;
        let mut keep_alive = keep_alive;
        let max_ka = self.config.max_keep_alive;
        if version.is_v5() && max_ka != 0 && (keep_alive == 0 || keep_alive > max_ka) {
            // [MQTT-3.2.2-21] the client must use the Server Keep Alive.
            keep_alive = max_ka;
            ack.server_keep_alive = Some(max_ka);
        }
        if version.is_v5() {
            ack.receive_maximum = NonZeroU16::new(limits.receive_maximum);
            ack.maximum_packet_size = NonZeroU32::new(limits.max_packet_size);
            ack.topic_alias_maximum =
                (limits.topic_alias_maximum > 0).then_some(limits.topic_alias_maximum);
            if self.config.maximum_qos != QoS::ExactlyOnce {
                ack.maximum_qos = Some(self.config.maximum_qos);
            }
            if !self.config.retain_available {
                ack.retain_available = Some(false);
            }
            if !self.config.wildcard_subscriptions {
                ack.wildcard_subscription_available = Some(false);
            }
            if !self.config.subscription_identifiers {
                ack.subscription_identifiers_available = Some(false);
            }
            if !self.config.shared_subscriptions {
                ack.shared_subscription_available = Some(false);
            }
        }
        let Some(c) = self.conns.get_mut(&conn) else {
            return;
        };
        c.phase = Phase::Connected;
        c.session = Some(client_id.clone());
        c.keep_alive = Duration::from_secs(u64::from(keep_alive));
        c.client_receive_max = properties.receive_maximum.map_or(u16::MAX, |v| v.get());
        c.client_max_packet = properties.maximum_packet_size.map_or(u32::MAX, |v| v.get());
        c.request_problem_info = properties.request_problem_information.unwrap_or(true);
        c.aliases_out = OutAliases::new(properties.topic_alias_maximum.unwrap_or(0));
        c.will = will.map(Box::new);
        c.connect_expiry = expiry;
        if let Some(deadline) = c.keep_alive_deadline() {
            self.timers.insert(deadline, Timer::KeepAlive(conn));
        }
        self.send_connack(conn, version, session_present, ReasonCode::Success, ack);
        self.events.push_back(BrokerEvent::Connected {
            conn,
            client_id: client_id.clone(),
            version,
            session_present,
        });
        self.resume(now, conn);
        // Packets pipelined behind CONNECT while authentication ran.
        while let Some(p) = self
            .conns
            .get_mut(&conn)
            .and_then(|c| c.pending.pop_front())
        {
            self.on_packet(now, conn, p);
        }
    }

    /// [MQTT-4.4.0-1] on a resumed session, PUBRELs are sent again, and unacknowledged
    /// PUBLISH packets again with DUP set, in order, as the new connection's window allows
    /// (`pump`); then queued messages follow.
    pub(super) fn resume(&mut self, now: Instant, conn: ConnId) {
        let Some(session) = self.session_of(conn) else {
            return;
        };
        let mut releases = Vec::new();
        for f in &mut session.inflight {
            if f.state == OutState::Qos2Released {
                releases.push(f.id);
            } else {
                f.sent = false;
                session.resending = true;
            }
        }
        for id in releases {
            self.send_ack(conn, PacketType::PubRel, Ack::new(id));
        }
        self.pump(now, conn);
    }

    pub(super) fn send_connack(
        &mut self,
        conn: ConnId,
        version: ProtocolVersion,
        session_present: bool,
        reason_code: ReasonCode,
        properties: ConnAckProperties,
    ) {
        let packet = Packet::ConnAck(Box::new(ConnAck {
            session_present,
            reason_code,
            properties,
        }));
        self.send(conn, version, &packet);
    }
}
