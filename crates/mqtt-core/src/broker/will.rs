//! Wills: published when a connection ends without a normal DISCONNECT, at once or after
//! the v5 Will Delay Interval, and never later than the end of the session.

use std::time::{Duration, Instant};

use bytestring::ByteString;

use super::{Broker, Timer};
use crate::packet::{Publish, Will};

impl Broker {
    /// The connection of `client` ended abnormally: publish its will now, or arm the delay.
    /// [MQTT-3.1.3-9] the will waits for the Will Delay Interval or the end of the session,
    /// whichever comes first; a new connection for the session cancels it.
    pub(super) fn schedule_will(
        &mut self,
        now: Instant,
        client: &ByteString,
        will: Will,
        expiry: u32,
    ) {
        let delay = will.properties.will_delay_interval.unwrap_or(0);
        if delay == 0 || expiry == 0 {
            self.publish_will(now, will);
            return;
        }
        let wait = Duration::from_secs(u64::from(delay.min(expiry)));
        let at = now + wait;
        if let Some(session) = self.sessions.get_mut(client) {
            session.pending_will = Some(Box::new((at, will)));
            self.timers.insert(at, Timer::WillDelay(client.clone()));
            self.touch(client);
        }
    }

    pub(super) fn check_will_delay(&mut self, now: Instant, client: &ByteString) {
        let Some(session) = self.sessions.get_mut(client) else {
            return;
        };
        if session.conn.is_some() || session.pending_will.as_ref().is_none_or(|w| w.0 > now) {
            return;
        }
        if let Some((_, will)) = session.pending_will.take().map(|b| *b) {
            self.touch(client);
            self.publish_will(now, will);
        }
    }

    /// Publishes a will as if its client had sent it [MQTT-3.1.2-8]: retained if it asks to be.
    pub(super) fn publish_will(&mut self, now: Instant, will: Will) {
        // A will is a client's message: like its PUBLISHes it may not go into $SYS.
        if will.topic.starts_with("$SYS") {
            return;
        }
        let p = Publish {
            dup: false,
            qos: will.qos,
            retain: will.retain,
            topic: will.topic,
            packet_id: None,
            properties: crate::packet::PublishProperties {
                payload_format_indicator: will.properties.payload_format_indicator,
                message_expiry_interval: will.properties.message_expiry_interval,
                topic_alias: None,
                response_topic: will.properties.response_topic,
                correlation_data: will.properties.correlation_data,
                user_properties: will.properties.user_properties,
                subscription_identifiers: Vec::new(),
                content_type: will.properties.content_type,
            }
            .into(),
            payload: will.payload,
        };
        self.stats.messages_received += 1;
        // The will's origin is its client, but No Local does not apply: that client is gone.
        self.publish_message(now, p, None, crate::packet::ProtocolVersion::V5);
    }
}
