//! `$SYS/broker/...`: the broker's own statistics, published as retained messages every
//! `BrokerConfig::sys_interval`.

use std::time::Instant;

use bytes::Bytes;

use super::{Broker, Timer};
use crate::packet::{Publish, QoS};
use crate::topic::TopicName;

impl Broker {
    pub(super) fn publish_sys(&mut self, now: Instant) {
        let Some(every) = self.config.sys_interval else {
            return;
        };
        self.timers.insert(now + every, Timer::Sys);
        // Expired retained messages are skipped on delivery; this frees their memory.
        self.retained.retain(&mut |_, m| !m.is_expired(now));
        let uptime = self.started.map_or(0, |s| now.duration_since(s).as_secs());
        let connected = self.conns.values().filter(|c| c.is_connected()).count();
        let values: [(&str, String); 12] = [
            ("$SYS/broker/version", self.config.version.clone()),
            ("$SYS/broker/uptime", format!("{uptime} seconds")),
            ("$SYS/broker/clients/connected", connected.to_string()),
            ("$SYS/broker/clients/total", self.sessions.len().to_string()),
            (
                "$SYS/broker/messages/received",
                self.stats.messages_received.to_string(),
            ),
            (
                "$SYS/broker/messages/sent",
                self.stats.messages_sent.to_string(),
            ),
            (
                "$SYS/broker/messages/dropped",
                self.stats.dropped.to_string(),
            ),
            (
                "$SYS/broker/bytes/received",
                self.stats.bytes_received.to_string(),
            ),
            ("$SYS/broker/bytes/sent", self.stats.bytes_sent.to_string()),
            (
                "$SYS/broker/subscriptions/count",
                self.subs.len().to_string(),
            ),
            (
                "$SYS/broker/retained messages/count",
                self.retained.len().to_string(),
            ),
            (
                "$SYS/broker/connections/count",
                self.conns.len().to_string(),
            ),
        ];
        for (topic, value) in values {
            let Ok(topic) = TopicName::new(topic) else {
                continue;
            };
            let mut p = Publish::new(topic, Bytes::from(value));
            p.qos = QoS::AtMostOnce;
            p.retain = true;
            self.publish_message(now, p, None, crate::packet::ProtocolVersion::V311);
        }
    }
}
