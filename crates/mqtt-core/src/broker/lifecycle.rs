//! How connections and sessions end: DISCONNECT, protocol errors, keep alive, session expiry.

use std::time::{Duration, Instant};

use bytestring::ByteString;

use super::*;

impl Broker {
    pub(super) fn on_disconnect(&mut self, now: Instant, conn: ConnId, d: &Disconnect) {
        let Some(c) = self.conns.get_mut(&conn) else {
            return;
        };
        if let Some(expiry) = d.properties.session_expiry_interval {
            // [MQTT-3.14.2-2] a session that was to end with the connection cannot be
            // given an expiry on the way out.
            if c.connect_expiry == 0 && expiry != 0 {
                return self.protocol_error(now, conn, ReasonCode::ProtocolError);
            }
            if let Some(s) = c.session.as_ref().and_then(|s| self.sessions.get_mut(s)) {
                s.expiry_interval = expiry.min(self.config.max_session_expiry);
            }
        }
        // [MQTT-3.14.4-3] a normal DISCONNECT deletes the will; 0x04 asks for it to be sent.
        let send_will = d.reason_code == ReasonCode::DisconnectWithWill;
        if !send_will {
            c.will = None;
        }
        self.events.push_back(BrokerEvent::Close {
            conn,
            reason: CloseReason::ClientDisconnected,
        });
        self.drop_conn(now, conn, send_will);
    }

    /// Closes `conn` for a protocol violation: DISCONNECT with the reason code for 5.0, and
    /// the will is published [MQTT-3.1.2-8].
    pub(super) fn protocol_error(&mut self, now: Instant, conn: ConnId, code: ReasonCode) {
        let connected = self.conns.get(&conn).is_some_and(|c| c.is_connected());
        self.close(
            now,
            conn,
            CloseReason::ProtocolViolation(code),
            connected.then_some(code),
        );
    }

    /// Closes `conn` from the broker's side: a DISCONNECT first when `disconnect` is given
    /// and the client speaks 5.0, then the Close event.
    pub(super) fn close(
        &mut self,
        now: Instant,
        conn: ConnId,
        reason: CloseReason,
        disconnect: Option<ReasonCode>,
    ) {
        let Some(c) = self.conns.get(&conn) else {
            return;
        };
        if let (Some(code), ProtocolVersion::V5) = (disconnect, c.version) {
            // Some errors have a code DISCONNECT cannot carry (a second CONNECT asking for an
            // unsupported version decodes as 0x84): a second CONNECT is a Protocol Error
            // [MQTT-3.1.0-2], and so is anything else without a DISCONNECT code of its own.
            let code = if codec::reason_code_allowed(PacketType::Disconnect, code) {
                code
            } else {
                ReasonCode::ProtocolError
            };
            // A Reason String says what went wrong; DISCONNECT may carry one whatever Request
            // Problem Information says [MQTT-3.1.2-29]; `send` leaves it out if it would
            // not fit the client's Maximum Packet Size [MQTT-3.1.2-24].
            let d = Disconnect {
                reason_code: code,
                properties: DisconnectProperties {
                    reason_string: Some(ByteString::from(reason.to_string())),
                    ..Default::default()
                },
            };
            self.send(conn, ProtocolVersion::V5, &Packet::Disconnect(Box::new(d)));
        }
        self.events.push_back(BrokerEvent::Close { conn, reason });
        self.drop_conn(now, conn, true);
    }

    /// Forgets `conn`; its session goes offline, and the will is handled if `will` is set.
    pub(super) fn drop_conn(&mut self, now: Instant, conn: ConnId, will: bool) {
        let Some(c) = self.conns.remove(&conn) else {
            return;
        };
        let Some(client) = c.session else {
            return;
        };
        let Some(session) = self.sessions.get_mut(&client) else {
            return;
        };
        if session.conn != Some(conn) {
            // Taken over: the session lives on with its new connection.
            if will {
                if let Some(w) = c.will {
                    self.publish_will(now, *w);
                }
            }
            return;
        }
        session.conn = None;
        let expiry = session.expiry_interval;
        if will {
            if let Some(w) = c.will {
                self.schedule_will(now, &client, *w, expiry);
            }
        }
        self.session_went_offline(now, &client);
    }

    pub(super) fn session_went_offline(&mut self, now: Instant, client: &ByteString) {
        self.touch(client);
        let Some(session) = self.sessions.get_mut(client) else {
            return;
        };
        match session.expiry_interval {
            0 => self.end_session(now, client),
            u32::MAX => {}
            secs => {
                let at = now + Duration::from_secs(u64::from(secs));
                session.expires_at = Some(at);
                self.timers.insert(at, Timer::SessionExpiry(client.clone()));
            }
        }
    }

    /// A session ends: its subscriptions go, and a will still waiting is sent now
    /// [MQTT-3.1.3-9].
    pub(super) fn end_session(&mut self, now: Instant, client: &ByteString) {
        let Some(session) = self.sessions.remove(client) else {
            return;
        };
        if session.stored {
            self.store(StoreOp::DeleteSession {
                client_id: client.clone(),
            });
        }
        for filter in session.subscriptions.keys() {
            if let Ok(f) = TopicFilter::try_from(filter.clone()) {
                self.subs.remove(client, &f);
            }
        }
        if let Some((_, w)) = session.pending_will.map(|b| *b) {
            self.publish_will(now, w);
        }
    }

    /// Drops a session without sending its will (Clean Start on a new connection).
    pub(super) fn discard_session(&mut self, client: &ByteString) {
        if let Some(session) = self.sessions.remove(client) {
            if session.stored {
                self.store(StoreOp::DeleteSession {
                    client_id: client.clone(),
                });
            }
            for filter in session.subscriptions.keys() {
                if let Ok(f) = TopicFilter::try_from(filter.clone()) {
                    self.subs.remove(client, &f);
                }
            }
        }
    }

    pub(super) fn check_keep_alive(&mut self, now: Instant, conn: ConnId) {
        let Some(deadline) = self.conns.get(&conn).and_then(|c| c.keep_alive_deadline()) else {
            return;
        };
        if deadline <= now {
            // [MQTT-3.1.2-24] v5 clients are told 0x8D first.
            self.close(
                now,
                conn,
                CloseReason::KeepAliveTimeout,
                Some(ReasonCode::KeepAliveTimeout),
            );
        } else {
            self.timers.insert(deadline, Timer::KeepAlive(conn));
        }
    }

    pub(super) fn check_session_expiry(&mut self, now: Instant, client: &ByteString) {
        let due = self
            .sessions
            .get(client)
            .is_some_and(|s| s.conn.is_none() && s.expires_at.is_some_and(|t| t <= now));
        if due {
            self.end_session(now, client);
        }
    }
}
