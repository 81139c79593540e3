//! 5.0 flow control, both ways: Receive Maximum, topic aliases and Maximum Packet Size.
//!
//! The server's limits come from its CONNACK and hold until the next one; aliases are reset
//! with every connection [MQTT-3.3.2-7]. The client's own limits come from its options.

use core::num::NonZeroU16;
use std::collections::HashMap;

use super::options::ClientOptions;
use crate::codec::DecodeLimits;
use crate::packet::{ConnAckProperties, Publish, QoS, ReasonCode};
use crate::topic::TopicName;

/// Flow-control state of the client.
#[derive(Debug)]
pub(crate) struct Flow {
    /// Outgoing QoS 1/2 messages in flight at once: `max_inflight`, capped by the server's
    /// Receive Maximum [MQTT-3.3.4-7].
    pub(crate) window: usize,
    /// The server's Maximum Packet Size [MQTT-3.2.2-15].
    pub(crate) server_max_packet: u32,
    /// The server's Maximum QoS [MQTT-3.2.2-11].
    pub(crate) max_qos: QoS,
    /// The server's Retain Available [MQTT-3.2.2-14].
    pub(crate) retain_available: bool,
    /// Topic aliases the client assigns.
    pub(crate) aliases_out: AliasesOut,
    /// The client's Receive Maximum: incoming QoS 1/2 messages it lets the server have
    /// unacknowledged.
    pub(crate) receive_max: usize,
    /// The client's Topic Alias Maximum.
    alias_max_in: u16,
    /// Topic aliases the server assigned on this connection; at most `alias_max_in`.
    aliases_in: HashMap<u16, TopicName>,
    /// Limits to decode with: the client's Maximum Packet Size.
    pub(crate) decode_limits: DecodeLimits,
    max_inflight: usize,
    alias_max_out: u16,
}

impl Flow {
    pub(crate) fn new(options: &ClientOptions) -> Self {
        let props = &options.connect_properties;
        let v5 = options.version.is_v5();
        let max_inflight = usize::from(options.max_inflight.max(1));
        Self {
            window: max_inflight,
            server_max_packet: DecodeLimits::PROTOCOL_MAX,
            max_qos: QoS::ExactlyOnce,
            retain_available: true,
            aliases_out: AliasesOut::new(0),
            receive_max: props
                .receive_maximum
                .map_or(usize::from(u16::MAX), |r| usize::from(r.get())),
            alias_max_in: if v5 {
                props.topic_alias_maximum.unwrap_or(0)
            } else {
                0
            },
            aliases_in: HashMap::new(),
            decode_limits: DecodeLimits {
                max_packet_size: props
                    .maximum_packet_size
                    .map_or(DecodeLimits::PROTOCOL_MAX, |m| m.get()),
            },
            max_inflight,
            alias_max_out: if v5 {
                options.topic_alias_maximum_out
            } else {
                0
            },
        }
    }

    /// A new connection: no alias carries over [MQTT-3.3.2-7].
    pub(crate) fn reset_connection(&mut self) {
        self.aliases_in.clear();
        self.aliases_out = AliasesOut::new(0);
    }

    /// The server's limits from a successful CONNACK (absent properties mean "no limit").
    pub(crate) fn apply_connack(&mut self, props: &ConnAckProperties) {
        let server_receive = props
            .receive_maximum
            .map_or(usize::from(u16::MAX), |r| usize::from(r.get()));
        self.window = self.max_inflight.min(server_receive);
        self.server_max_packet = props
            .maximum_packet_size
            .map_or(DecodeLimits::PROTOCOL_MAX, |m| m.get());
        self.max_qos = props.maximum_qos.unwrap_or(QoS::ExactlyOnce);
        self.retain_available = props.retain_available.unwrap_or(true);
        // [MQTT-3.2.2-17] [MQTT-3.2.2-18] never more aliases than the server accepts.
        let server_aliases = props.topic_alias_maximum.unwrap_or(0);
        self.aliases_out = AliasesOut::new(self.alias_max_out.min(server_aliases));
    }

    /// Puts the topic back into a PUBLISH from the server that used a Topic Alias, and
    /// records a new mapping. `Err` is the reason code to disconnect with.
    pub(crate) fn resolve_alias(&mut self, publish: &mut Publish) -> Result<(), ReasonCode> {
        let Some(alias) = publish.properties.topic_alias else {
            return Ok(());
        };
        // [MQTT-3.3.2-10] [MQTT-3.3.2-11] aliases up to the maximum the client announced.
        if alias.get() > self.alias_max_in {
            return Err(ReasonCode::TopicAliasInvalid);
        }
        if publish.topic.is_empty() {
            match self.aliases_in.get(&alias.get()) {
                Some(topic) => publish.topic = topic.clone(),
                // An alias never mapped on this connection: a Protocol Error (spec 3.3.2.3.4).
                None => return Err(ReasonCode::ProtocolError),
            }
        } else {
            self.aliases_in.insert(alias.get(), publish.topic.clone());
        }
        Ok(())
    }
}

/// Topic aliases the client assigns, first come first served, up to the table size. Once
/// the table is full, other topics are sent in full.
#[derive(Debug)]
pub(crate) struct AliasesOut {
    max: u16,
    map: HashMap<TopicName, NonZeroU16>,
}

impl AliasesOut {
    pub(crate) fn new(max: u16) -> Self {
        Self {
            max,
            map: HashMap::new(),
        }
    }

    /// The alias for `topic` and whether the server already knows it (then the topic can be
    /// left out); `None` when aliases are off or the table is full.
    pub(crate) fn alias_for(&mut self, topic: &TopicName) -> Option<(NonZeroU16, bool)> {
        if let Some(alias) = self.map.get(topic) {
            return Some((*alias, true));
        }
        let next = u16::try_from(self.map.len()).ok()?.checked_add(1)?;
        if next > self.max {
            return None;
        }
        // [MQTT-3.3.2-8] never 0: `next` starts at 1.
        let alias = NonZeroU16::new(next)?;
        self.map.insert(topic.clone(), alias);
        Some((alias, false))
    }

    /// Forgets the alias just assigned to `topic`, which was never sent after all. Only
    /// for the latest assignment: aliases are numbered by the size of the table.
    pub(crate) fn forget(&mut self, topic: &TopicName) {
        self.map.remove(topic);
    }
}
