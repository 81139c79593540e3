//! Packets a scripted peer sends, built in a line: `v5("a").clean(false).expiry(60)`,
//! `publish("t", "x").qos1(7).retain()`, `subscribe(1, &[("a/+", 1)])`.

use bytes::Bytes;
use core::num::{NonZeroU16, NonZeroU32};
use mqtt_core::broker::{BrokerConfig, Limits};
use mqtt_core::packet::{
    Ack, Connect, ConnectProperties, Disconnect, RetainHandling, Subscribe, SubscribeProperties,
    Subscription, SubscriptionOptions, Unsubscribe, UnsubscribeProperties, UserProperty, Will,
    WillProperties,
};
use mqtt_core::topic::{TopicFilter, TopicName};
use mqtt_core::{Packet, PacketId, ProtocolVersion, Publish, QoS, ReasonCode};

/// A broker configuration for tests: defaults, no `$SYS` noise unless a test asks.
pub(crate) fn config() -> BrokerConfig {
    BrokerConfig {
        sys_interval: None,
        ..BrokerConfig::default()
    }
}

/// [`config`] with limits changed by `f`.
pub(crate) fn config_with(f: impl FnOnce(&mut Limits)) -> BrokerConfig {
    let mut c = config();
    f(&mut c.limits);
    c
}

pub(crate) fn pid(id: u16) -> PacketId {
    PacketId::new(id).expect("test packet ids are not zero")
}

pub(crate) fn topic(s: &str) -> TopicName {
    if s.is_empty() {
        TopicName::empty()
    } else {
        TopicName::new(s).expect("test topic names are valid")
    }
}

pub(crate) fn filter(s: &str) -> TopicFilter {
    TopicFilter::new(s).expect("test topic filters are valid")
}

pub(crate) fn qos(q: u8) -> QoS {
    QoS::from_u8(q).expect("test QoS is 0, 1 or 2")
}

// ---- CONNECT ----

/// A CONNECT being built. Starts clean, with keep alive off.
#[derive(Debug, Clone)]
pub(crate) struct ConnectB(Connect);

fn connect(version: ProtocolVersion, id: &str) -> ConnectB {
    ConnectB(Connect {
        protocol_version: version,
        clean_start: true,
        keep_alive: 0,
        client_id: id.into(),
        will: None,
        username: None,
        password: None,
        properties: ConnectProperties::default(),
    })
}

pub(crate) fn v31(id: &str) -> ConnectB {
    connect(ProtocolVersion::V31, id)
}

pub(crate) fn v311(id: &str) -> ConnectB {
    connect(ProtocolVersion::V311, id)
}

pub(crate) fn v5(id: &str) -> ConnectB {
    connect(ProtocolVersion::V5, id)
}

impl ConnectB {
    pub(crate) fn clean(mut self, clean: bool) -> Self {
        self.0.clean_start = clean;
        self
    }

    pub(crate) fn keep_alive(mut self, secs: u16) -> Self {
        self.0.keep_alive = secs;
        self
    }

    /// Session Expiry Interval (5.0).
    pub(crate) fn expiry(mut self, secs: u32) -> Self {
        self.0.properties.session_expiry_interval = Some(secs);
        self
    }

    /// Receive Maximum (5.0).
    pub(crate) fn receive_max(mut self, n: u16) -> Self {
        self.0.properties.receive_maximum = NonZeroU16::new(n);
        self
    }

    /// Maximum Packet Size (5.0).
    pub(crate) fn max_packet(mut self, n: u32) -> Self {
        self.0.properties.maximum_packet_size = NonZeroU32::new(n);
        self
    }

    /// Topic Alias Maximum (5.0).
    pub(crate) fn alias_max(mut self, n: u16) -> Self {
        self.0.properties.topic_alias_maximum = Some(n);
        self
    }

    pub(crate) fn will(mut self, will: WillB) -> Self {
        self.0.will = Some(will.0);
        self
    }
}

impl From<ConnectB> for Connect {
    fn from(c: ConnectB) -> Self {
        c.0
    }
}

impl From<ConnectB> for Packet {
    fn from(c: ConnectB) -> Self {
        Self::Connect(Box::new(c.0))
    }
}

/// A will being built: QoS 0, not retained, no delay.
#[derive(Debug, Clone)]
pub(crate) struct WillB(Will);

pub(crate) fn will(t: &str, payload: &str) -> WillB {
    WillB(Will {
        topic: topic(t),
        payload: Bytes::copy_from_slice(payload.as_bytes()),
        qos: QoS::AtMostOnce,
        retain: false,
        properties: WillProperties::default(),
    })
}

impl WillB {
    pub(crate) fn qos(mut self, q: u8) -> Self {
        self.0.qos = qos(q);
        self
    }

    pub(crate) fn retain(mut self) -> Self {
        self.0.retain = true;
        self
    }

    /// Will Delay Interval (5.0).
    pub(crate) fn delay(mut self, secs: u32) -> Self {
        self.0.properties.will_delay_interval = Some(secs);
        self
    }
}

// ---- PUBLISH ----

/// A PUBLISH being built: QoS 0, no flags, no properties.
#[derive(Debug, Clone)]
pub(crate) struct PublishB(Publish);

/// A PUBLISH; an empty `t` is the empty topic of a 5.0 alias reuse.
pub(crate) fn publish(t: &str, payload: impl AsRef<[u8]>) -> PublishB {
    PublishB(Publish::new(
        topic(t),
        Bytes::copy_from_slice(payload.as_ref()),
    ))
}

impl PublishB {
    pub(crate) fn qos1(mut self, id: u16) -> Self {
        self.0.qos = QoS::AtLeastOnce;
        self.0.packet_id = Some(pid(id));
        self
    }

    pub(crate) fn qos2(mut self, id: u16) -> Self {
        self.0.qos = QoS::ExactlyOnce;
        self.0.packet_id = Some(pid(id));
        self
    }

    /// QoS `q`, with packet id `id` unless `q` is 0.
    pub(crate) fn qos(self, q: u8, id: u16) -> Self {
        match q {
            0 => self,
            1 => self.qos1(id),
            _ => self.qos2(id),
        }
    }

    pub(crate) fn retain(mut self) -> Self {
        self.0.retain = true;
        self
    }

    pub(crate) fn dup(mut self) -> Self {
        self.0.dup = true;
        self
    }

    /// Topic Alias (5.0).
    pub(crate) fn alias(mut self, a: u16) -> Self {
        self.0.properties.topic_alias = NonZeroU16::new(a);
        self
    }

    /// Message Expiry Interval (5.0).
    pub(crate) fn expiry(mut self, secs: u32) -> Self {
        self.0.properties.message_expiry_interval = Some(secs);
        self
    }

    /// One more User Property (5.0).
    pub(crate) fn user(mut self, name: &str, value: &str) -> Self {
        self.0
            .properties
            .user_properties
            .push(UserProperty::new(name, value));
        self
    }

    pub(crate) fn build(self) -> Publish {
        self.0
    }
}

impl From<PublishB> for Packet {
    fn from(p: PublishB) -> Self {
        Self::Publish(p.0)
    }
}

impl From<Publish> for PublishB {
    fn from(p: Publish) -> Self {
        Self(p)
    }
}

// ---- SUBSCRIBE / UNSUBSCRIBE ----

/// One subscription being built: QoS 0, default options.
#[derive(Debug, Clone)]
pub(crate) struct SubB(Subscription);

pub(crate) fn sub(f: &str) -> SubB {
    SubB(Subscription {
        filter: filter(f),
        options: SubscriptionOptions::default(),
    })
}

impl SubB {
    pub(crate) fn qos(mut self, q: u8) -> Self {
        self.0.options.qos = qos(q);
        self
    }

    pub(crate) fn no_local(mut self) -> Self {
        self.0.options.no_local = true;
        self
    }

    /// Retain As Published.
    pub(crate) fn rap(mut self) -> Self {
        self.0.options.retain_as_published = true;
        self
    }

    /// Retain Handling 0, 1 or 2.
    pub(crate) fn rh(mut self, rh: u8) -> Self {
        self.0.options.retain_handling =
            RetainHandling::from_u8(rh).expect("test retain handling is 0, 1 or 2");
        self
    }
}

/// A SUBSCRIBE being built.
#[derive(Debug, Clone)]
pub(crate) struct SubscribeB(Subscribe);

/// SUBSCRIBE to each `(filter, qos)`.
pub(crate) fn subscribe(id: u16, filters: &[(&str, u8)]) -> SubscribeB {
    subscribe_with(id, filters.iter().map(|(f, q)| sub(f).qos(*q)).collect())
}

/// SUBSCRIBE with each subscription's options spelled out.
pub(crate) fn subscribe_with(id: u16, subs: Vec<SubB>) -> SubscribeB {
    SubscribeB(Subscribe {
        packet_id: pid(id),
        subscriptions: subs.into_iter().map(|s| s.0).collect(),
        properties: SubscribeProperties::default(),
    })
}

impl SubscribeB {
    /// Subscription Identifier (5.0).
    pub(crate) fn sub_id(mut self, id: u32) -> Self {
        self.0.properties.subscription_identifier = NonZeroU32::new(id);
        self
    }
}

impl From<SubscribeB> for Packet {
    fn from(s: SubscribeB) -> Self {
        Self::Subscribe(s.0)
    }
}

pub(crate) fn unsubscribe(id: u16, filters: &[&str]) -> Packet {
    Packet::Unsubscribe(Unsubscribe {
        packet_id: pid(id),
        filters: filters.iter().map(|f| filter(f)).collect(),
        properties: UnsubscribeProperties::default(),
    })
}

// ---- acknowledgements and control ----

pub(crate) fn puback(id: u16) -> Packet {
    Packet::PubAck(Ack::new(pid(id)))
}

pub(crate) fn pubrec(id: u16) -> Packet {
    Packet::PubRec(Ack::new(pid(id)))
}

pub(crate) fn pubrel(id: u16) -> Packet {
    Packet::PubRel(Ack::new(pid(id)))
}

pub(crate) fn pubcomp(id: u16) -> Packet {
    Packet::PubComp(Ack::new(pid(id)))
}

pub(crate) fn pingreq() -> Packet {
    Packet::PingReq
}

/// A normal DISCONNECT.
pub(crate) fn disconnect() -> Packet {
    Packet::Disconnect(Box::default())
}

/// DISCONNECT with a reason code (5.0).
pub(crate) fn disconnect_code(code: ReasonCode) -> Packet {
    Packet::Disconnect(Box::new(Disconnect {
        reason_code: code,
        ..Disconnect::default()
    }))
}

/// A normal DISCONNECT that sets the Session Expiry Interval (5.0).
pub(crate) fn disconnect_expiry(secs: u32) -> Packet {
    let mut d = Disconnect::default();
    d.properties.session_expiry_interval = Some(secs);
    Packet::Disconnect(Box::new(d))
}

/// A packet from its first byte and body; the Remaining Length is computed.
pub(crate) fn raw(first: u8, body: &[u8]) -> Vec<u8> {
    let mut out = vec![first];
    let mut len = body.len();
    loop {
        let byte = (len % 128) as u8;
        len /= 128;
        out.push(if len > 0 { byte | 0x80 } else { byte });
        if len == 0 {
            break;
        }
    }
    out.extend_from_slice(body);
    out
}

/// A UTF-8 string field: two length bytes, then the bytes.
pub(crate) fn text(s: &str) -> Vec<u8> {
    let mut out = (s.len() as u16).to_be_bytes().to_vec();
    out.extend_from_slice(s.as_bytes());
    out
}
