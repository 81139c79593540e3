//! SUBSCRIBE and UNSUBSCRIBE: options, limits, retained messages on subscribe.

use core::num::NonZeroU32;
use std::sync::Arc;
use std::time::Instant;

use bytestring::ByteString;

use super::*;

impl Broker {
    pub(super) fn on_subscribe(&mut self, now: Instant, conn: ConnId, s: Subscribe) {
        let Some(version) = self.conns.get(&conn).map(|c| c.version) else {
            return;
        };
        if s.properties.subscription_identifier.is_some() && !self.config.subscription_identifiers {
            return self.protocol_error(now, conn, ReasonCode::SubscriptionIdentifiersNotSupported);
        }
        let Some(client) = self.conns.get(&conn).and_then(|c| c.session.clone()) else {
            return;
        };
        let mut codes = Vec::with_capacity(s.subscriptions.len());
        let mut retained = Vec::new();
        for sub in &s.subscriptions {
            let code = self.subscribe_one(
                &client,
                sub,
                s.properties.subscription_identifier,
                &mut retained,
            );
            codes.push(code);
        }
        // Stored before SUBACK goes out: SUBACK waits for it.
        self.touch(&client);
        // [MQTT-3.8.4-1] SUBACK, with one code per filter in order [MQTT-3.8.4-6].
        let suback = SubAck {
            packet_id: s.packet_id,
            reason_codes: codes,
            properties: AckProperties::default(),
        };
        self.send(conn, version, &Packet::SubAck(suback));
        // Retained messages follow the SUBACK [MQTT-3.3.1-9]: with RETAIN set.
        for d in retained {
            if !d.msg.is_expired(now) {
                self.deliver(now, &client, d);
            }
        }
    }

    pub(super) fn subscribe_one(
        &mut self,
        client: &ByteString,
        sub: &Subscription,
        id: Option<NonZeroU32>,
        retained: &mut Vec<Delivery>,
    ) -> ReasonCode {
        let filter = &sub.filter;
        let shared = filter.shared().is_some();
        if shared && !self.config.shared_subscriptions {
            return ReasonCode::SharedSubscriptionsNotSupported;
        }
        if filter.has_wildcards() && !self.config.wildcard_subscriptions {
            return ReasonCode::WildcardSubscriptionsNotSupported;
        }
        if filter.matching_filter().split('/').count() > self.config.limits.max_topic_levels {
            return ReasonCode::TopicFilterInvalid;
        }
        let Some(session) = self.sessions.get_mut(client) else {
            return ReasonCode::UnspecifiedError;
        };
        let key = filter.as_bytestring().clone();
        if !session.subscriptions.contains_key(&key)
            && session.subscriptions.len() >= self.config.limits.max_subscriptions_per_client
        {
            return ReasonCode::QuotaExceeded;
        }
        let mut options = sub.options;
        options.qos = options.qos.min(self.config.maximum_qos);
        let entry = SubEntry { options, id };
        session.subscriptions.insert(key, entry.clone());
        let existed = self.subs.insert(client, filter, entry).is_some();
        // Retained messages: Retain Handling 0 always, 1 only for a new subscription, 2 never
        // [MQTT-3.3.1-9] [MQTT-3.3.1-10] [MQTT-3.3.1-11]; never for shared subscriptions.
        let send = match options.retain_handling {
            RetainHandling::SendAtSubscribe => true,
            RetainHandling::SendIfNew => !existed,
            RetainHandling::DoNotSend => false,
        };
        if send && !shared && self.config.retain_available {
            self.retained
                .for_each_match(filter, &mut |_, m: &Arc<Message>| {
                    retained.push(Delivery {
                        msg: m.clone(),
                        qos: m.qos.min(options.qos),
                        retain: true,
                        sub_ids: id.into_iter().collect(),
                        seq: 0,
                    });
                });
        }
        match options.qos {
            QoS::AtMostOnce => ReasonCode::Success,
            QoS::AtLeastOnce => ReasonCode::GrantedQoS1,
            QoS::ExactlyOnce => ReasonCode::GrantedQoS2,
        }
    }

    pub(super) fn on_unsubscribe(&mut self, conn: ConnId, u: Unsubscribe) {
        let Some(c) = self.conns.get(&conn) else {
            return;
        };
        let version = c.version;
        let Some(client) = c.session.clone() else {
            return;
        };
        let mut codes = Vec::with_capacity(u.filters.len());
        for f in &u.filters {
            if f.matching_filter().split('/').count() > self.config.limits.max_topic_levels {
                // Deeper than any subscription can be: nothing to remove.
                codes.push(ReasonCode::NoSubscriptionExisted);
                continue;
            }
            let removed = self
                .sessions
                .get_mut(&client)
                .and_then(|s| s.subscriptions.remove(f.as_bytestring()))
                .is_some();
            self.subs.remove(&client, f);
            codes.push(if removed {
                ReasonCode::Success
            } else {
                ReasonCode::NoSubscriptionExisted
            });
        }
        self.touch(&client);
        // [MQTT-3.10.4-4] [MQTT-3.10.4-5] UNSUBACK even when nothing matched.
        let ack = UnsubAck {
            packet_id: u.packet_id,
            reason_codes: codes,
            properties: AckProperties::default(),
        };
        self.send(conn, version, &Packet::UnsubAck(ack));
    }
}
