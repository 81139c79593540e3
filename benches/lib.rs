//! Shared workloads for the criterion benches in this folder: the packets, their wire bytes,
//! the floors that no codec can beat, and the topic sets for matching.
//!
//! Everything here runs outside the timed loops. `codec.rs` builds its inputs from these
//! functions once per group and times only the decoding, encoding or matching.
//!
//! # Layout
//!
//! - Packets: [`publish`], [`publish_with_properties`] and [`mixed`], the values every
//!   workload starts from, and [`wire`], their bytes as our encoder writes them (every peer
//!   is checked to decode those bytes to the same count of packets before it is timed).
//! - Floors: [`minimal_encode`] (a hand-written encoder for exactly the benchmarked PUBLISH
//!   shapes), [`header_walk`] (framing without decoding) and [`memcpy`] (touching every byte).
//! - Topics: [`FILTERS`] and [`topics`] for the matching benchmark.

#![forbid(unsafe_code)]

use bytes::{BufMut, Bytes, BytesMut};
use mqtt_core::codec::encode;
use mqtt_core::packet::{
    Ack, PublishProperties, Subscribe, Subscription, SubscriptionOptions, UserProperty,
};
use mqtt_core::topic::{TopicFilter, TopicName};
use mqtt_core::{Packet, PacketId, ProtocolVersion, Publish, QoS};

/// Packets per batch: every codec workload decodes or encodes this many per iteration.
pub const BATCH: usize = 10_000;

/// The payload sizes of the PUBLISH workloads, with the names their group ids use.
pub const PAYLOADS: [(&str, usize); 3] = [("64B", 64), ("1KiB", 1024), ("16KiB", 16 * 1024)];

/// The 16-byte topic of message `i`: `sensors/abc/0000` to `sensors/abc/9999`.
pub fn topic(i: usize) -> String {
    format!("sensors/abc/{:04}", i % 10_000)
}

/// The packet identifier of message `i`: 1 to 65535, never 0.
pub fn packet_id(i: usize) -> u16 {
    // Truncation cannot happen: the remainder is below 65535.
    (i % usize::from(u16::MAX)) as u16 + 1
}

/// `len` bytes of printable, non-repeating-looking payload.
pub fn payload(len: usize) -> Bytes {
    (0..len)
        .map(|i| b'a' + (i * 7 % 26) as u8)
        .collect::<Vec<u8>>()
        .into()
}

/// Message `i`: a QoS 1 PUBLISH without properties, sharing `payload`.
pub fn publish(i: usize, payload: &Bytes) -> Publish {
    let mut p = Publish::new(
        TopicName::new(topic(i)).expect("the topic is valid"),
        payload.clone(),
    );
    p.qos = QoS::AtLeastOnce;
    p.packet_id = PacketId::new(packet_id(i));
    p
}

/// The Message Expiry Interval of [`publish_with_properties`].
pub const EXPIRY: u32 = 3_600;
/// The Content Type of [`publish_with_properties`].
pub const CONTENT_TYPE: &str = "application/json";
/// The two User Properties of [`publish_with_properties`].
pub const USER_PROPERTIES: [(&str, &str); 2] = [("app", "bench"), ("trace-id", "4bf92f3577b34da6")];

/// Message `i` as a 5.0 QoS 1 PUBLISH with a Message Expiry Interval, a Content Type and
/// two User Properties.
pub fn publish_with_properties(i: usize, payload: &Bytes) -> Publish {
    let mut p = publish(i, payload);
    p.properties = PublishProperties {
        message_expiry_interval: Some(EXPIRY),
        content_type: Some(CONTENT_TYPE.into()),
        user_properties: USER_PROPERTIES
            .iter()
            .map(|(k, v)| UserProperty::new(*k, *v))
            .collect(),
        ..PublishProperties::default()
    }
    .into();
    p
}

/// The two filters of each SUBSCRIBE in [`mixed`].
pub const SUBSCRIBE_FILTERS: [(&str, QoS); 2] = [
    ("sensors/+/temperature", QoS::AtLeastOnce),
    ("alerts/#", QoS::ExactlyOnce),
];

/// Packet `i` of the mixed stream, which cycles PUBLISH (QoS 1, 64 B payload), PUBACK,
/// PINGREQ and SUBSCRIBE (two filters).
pub fn mixed(i: usize, payload: &Bytes) -> Packet {
    let id = PacketId::new(packet_id(i)).expect("packet_id is never zero");
    match i % 4 {
        0 => Packet::Publish(publish(i, payload)),
        1 => Packet::PubAck(Ack::new(id)),
        2 => Packet::PingReq,
        _ => Packet::Subscribe(Subscribe {
            packet_id: id,
            subscriptions: SUBSCRIBE_FILTERS
                .iter()
                .map(|(f, qos)| Subscription {
                    filter: TopicFilter::new(*f).expect("the filter is valid"),
                    options: SubscriptionOptions {
                        qos: *qos,
                        ..SubscriptionOptions::default()
                    },
                })
                .collect(),
            properties: Default::default(),
        }),
    }
}

/// `packets` encoded for `version`, back to back.
pub fn wire(packets: &[Packet], version: ProtocolVersion) -> Vec<u8> {
    let mut out = BytesMut::new();
    for p in packets {
        encode(p, version, &mut out).expect("the workload packets are valid");
    }
    out.to_vec()
}

/// A QoS 1 PUBLISH as the minimal encoder takes it: the fields and nothing else.
#[derive(Debug, Clone)]
pub struct RawPublish {
    /// Topic Name, already valid.
    pub topic: Bytes,
    /// Packet Identifier, not zero.
    pub packet_id: u16,
    /// The properties of [`publish_with_properties`], if this is that shape.
    pub properties: Option<RawProperties>,
    /// Payload.
    pub payload: Bytes,
}

/// The property values of [`publish_with_properties`], for the minimal encoder.
#[derive(Debug, Clone)]
pub struct RawProperties {
    /// Message Expiry Interval.
    pub expiry: u32,
    /// Content Type.
    pub content_type: Bytes,
    /// Two User Properties.
    pub user: [(Bytes, Bytes); 2],
}

impl RawPublish {
    /// The raw fields of one of our PUBLISH values.
    pub fn from_publish(p: &Publish) -> Self {
        let properties = (!p.properties.is_empty()).then(|| RawProperties {
            expiry: p.properties.message_expiry_interval.unwrap_or_default(),
            content_type: p
                .properties
                .content_type
                .as_ref()
                .map(|c| c.as_bytes().clone())
                .unwrap_or_default(),
            user: [0, 1].map(|i| {
                let u = &p.properties.user_properties[i];
                (u.name.as_bytes().clone(), u.value.as_bytes().clone())
            }),
        });
        Self {
            topic: p.topic.as_bytestring().as_bytes().clone(),
            packet_id: p.packet_id.map_or(0, PacketId::get),
            properties,
            payload: p.payload.clone(),
        }
    }
}

/// The floor for encoding: writes exactly the QoS 1 PUBLISH shapes of the workloads (fixed
/// header, Remaining Length, topic, packet id, in 5.0 the properties, payload) with one
/// reservation and no checks, as a hand-written encoder for one shape would.
#[inline]
pub fn minimal_encode(p: &RawPublish, v5: bool, out: &mut BytesMut) {
    let props = match &p.properties {
        Some(props) if v5 => {
            5 + 3
                + props.content_type.len()
                + props
                    .user
                    .iter()
                    .map(|(k, v)| 5 + k.len() + v.len())
                    .sum::<usize>()
        }
        _ => 0,
    };
    let mut remaining = 2 + p.topic.len() + 2 + p.payload.len();
    if v5 {
        remaining += varint_len(props) + props;
    }
    out.reserve(1 + varint_len(remaining) + remaining);
    out.put_u8(0x32);
    put_varint(out, remaining);
    // Truncation cannot happen: the workload topics are 16 bytes.
    out.put_u16(p.topic.len() as u16);
    out.put_slice(&p.topic);
    out.put_u16(p.packet_id);
    if v5 {
        put_varint(out, props);
        if let (Some(props), true) = (&p.properties, props > 0) {
            out.put_u8(0x02);
            out.put_u32(props.expiry);
            out.put_u8(0x03);
            out.put_u16(props.content_type.len() as u16);
            out.put_slice(&props.content_type);
            for (k, v) in &props.user {
                out.put_u8(0x26);
                out.put_u16(k.len() as u16);
                out.put_slice(k);
                out.put_u16(v.len() as u16);
                out.put_slice(v);
            }
        }
    }
    out.put_slice(&p.payload);
}

fn varint_len(value: usize) -> usize {
    match value {
        0..=127 => 1,
        128..=16_383 => 2,
        16_384..=2_097_151 => 3,
        _ => 4,
    }
}

fn put_varint(out: &mut BytesMut, mut value: usize) {
    loop {
        // Truncation is the point: the low seven bits.
        let byte = (value & 0x7F) as u8;
        value >>= 7;
        if value == 0 {
            out.put_u8(byte);
            return;
        }
        out.put_u8(byte | 0x80);
    }
}

/// The floor for framing: walks the fixed headers of the packets in `buf` (first byte,
/// Remaining Length) and skips each body, without looking at it. Returns the packet count.
///
/// Panics on a truncated packet: the workloads only hold whole ones.
#[inline]
pub fn header_walk(mut buf: &[u8]) -> usize {
    let mut count = 0;
    while let [_first, rest @ ..] = buf {
        let mut len = 0usize;
        let mut at = 0;
        loop {
            let byte = rest[at];
            len |= usize::from(byte & 0x7F) << (7 * at);
            at += 1;
            if byte & 0x80 == 0 {
                break;
            }
        }
        buf = &rest[at + len..];
        count += 1;
    }
    count
}

/// The floor for touching every byte: copies `buf` into `out`, whose capacity is kept.
#[inline]
pub fn memcpy(buf: &[u8], out: &mut Vec<u8>) -> usize {
    out.clear();
    out.extend_from_slice(buf);
    out.len()
}

/// The filters of the matching benchmark: literal, `+`, `#`, and `$SYS` ones.
pub const FILTERS: [&str; 20] = [
    "sensors/abc/1234",
    "sensors/+/1234",
    "sensors/abc/+",
    "sensors/#",
    "sensors/+/+",
    "+/abc/#",
    "#",
    "+/+/+",
    "home/kitchen/temperature",
    "home/+/temperature",
    "home/#",
    "home/kitchen/+",
    "$SYS/#",
    "$SYS/broker/+/count",
    "+/+",
    "a/b/c/d/e/f",
    "a/+/c/+/e/#",
    "devices/+/status",
    "devices/dev-42/#",
    "fleet/+/+/gps/#",
];

/// The 50 topics of the matching benchmark.
pub fn topics() -> Vec<String> {
    let mut t: Vec<String> = Vec::with_capacity(50);
    for i in [0, 1234, 42, 9999, 5000, 777, 1230, 1334] {
        t.push(topic(i));
    }
    t.push("sensors/xyz/1234".into());
    t.push("sensors/abc".into());
    t.push("sensors".into());
    t.push("sensors/abc/1234/extra".into());
    for room in ["kitchen", "living-room", "garage", "bedroom"] {
        for what in ["temperature", "humidity"] {
            t.push(format!("home/{room}/{what}"));
        }
    }
    t.push("home/kitchen".into());
    t.push("home".into());
    for what in [
        "$SYS/broker/clients/count",
        "$SYS/broker/messages/count",
        "$SYS/broker/uptime",
        "$SYS/broker/load/bytes/received/1min",
        "$SYS",
    ] {
        t.push(what.into());
    }
    for dev in [1, 42, 100, 4096] {
        t.push(format!("devices/dev-{dev}/status"));
        t.push(format!("devices/dev-{dev}/telemetry/battery"));
    }
    t.push("a/b/c/d/e/f".into());
    t.push("a/x/c/y/e".into());
    t.push("a/x/c/y/e/f/g/h".into());
    t.push("a/b/c/d/e/g".into());
    for truck in ["truck-7", "truck-12", "van-3"] {
        t.push(format!("fleet/{truck}/eu/gps/lat"));
        t.push(format!("fleet/{truck}/us/gps"));
    }
    t.push("x/y".into());
    t.push("x//y".into());
    t.push("/leading/slash".into());
    t.push("trailing/slash/".into());
    t.push("a".into());
    t.truncate(50);
    assert_eq!(t.len(), 50, "the topic set has 50 topics");
    t
}
