//! Criterion benches of the codec hot path, each workload run through our codec and through
//! the fastest other Rust MQTT codecs (`rumqttc` 0.25's `mqttbytes` modules and the
//! `mqttbytes` 0.6 crate) in the same binary, next to floors that no codec can beat.
//!
//! Groups are `decode/*`, `encode/*` and `topic/match`; functions are `ours`, `rumqttc`,
//! `mqttbytes` and the floors (`memcpy_floor`, `header_walk_floor`, `minimal`). Every codec
//! workload handles [`BATCH`] packets per iteration (`Throughput::Elements`), so criterion's
//! time per element is the time per packet.
//!
//! # How the decode workloads are timed
//!
//! Each iteration gets its own input: the setup (not timed) copies the prepared wire bytes
//! into a read buffer that is reused from one iteration to the next, as a connection reuses
//! its read buffer, so the copy costs neither an allocation nor page faults. The routine
//! decodes until the buffer is empty, consuming and dropping each packet as a real consumer
//! does, then hands the buffer back for the next iteration. `BatchSize::PerIteration` keeps
//! the cache state the same for every iteration (the input was just written, as socket data
//! is), whatever the iteration count; the timer's own cost is under 0.1% of a batch.
//!
//! Before any timing, each routine is run once and must take exactly [`BATCH`] packets off
//! the buffer, and each encoder must write the same number of bytes as ours, so no function
//! can quietly measure nothing.

#![forbid(unsafe_code)]

use std::cell::Cell;
use std::hint::black_box;

use bytes::{Bytes, BytesMut};
use criterion::measurement::WallTime;
use criterion::{
    criterion_group, criterion_main, BatchSize, BenchmarkGroup, Criterion, SamplingMode, Throughput,
};
use mqtt_benches::{
    header_walk, memcpy, minimal_encode, mixed, payload, publish, publish_with_properties, topics,
    wire, RawPublish, BATCH, CONTENT_TYPE, EXPIRY, FILTERS, PAYLOADS, USER_PROPERTIES,
};
use mqtt_core::codec::{decode, encode, DecodeLimits};
use mqtt_core::{Packet, ProtocolVersion, Publish};

const V4: ProtocolVersion = ProtocolVersion::V311;
const V5: ProtocolVersion = ProtocolVersion::V5;

criterion_group!(benches, decode_benches, encode_benches, topic_benches);
criterion_main!(benches);

fn decode_benches(c: &mut Criterion) {
    for (size_name, size) in PAYLOADS {
        let body = payload(size);
        let packets: Vec<Packet> = (0..BATCH)
            .map(|i| Packet::Publish(publish(i, &body)))
            .collect();
        for (v, version) in [("v4", V4), ("v5", V5)] {
            let wire = wire(&packets, version);
            decode_group(
                c,
                &format!("decode/{v}_publish_{size_name}"),
                version,
                &wire,
            );
        }
    }

    let body = payload(64);
    let packets: Vec<Packet> = (0..BATCH)
        .map(|i| Packet::Publish(publish_with_properties(i, &body)))
        .collect();
    decode_group(c, "decode/v5_publish_props", V5, &wire(&packets, V5));

    let packets: Vec<Packet> = (0..BATCH).map(|i| mixed(i, &body)).collect();
    for (v, version) in [("v4", V4), ("v5", V5)] {
        decode_group(
            c,
            &format!("decode/mixed_{v}"),
            version,
            &wire(&packets, version),
        );
    }
}

/// One decode group: ours, the two peers and the two floors over the same `wire` bytes.
fn decode_group(c: &mut Criterion, name: &str, version: ProtocolVersion, wire: &[u8]) {
    let mut group = c.benchmark_group(name);
    configure(&mut group, wire.len(), true);
    let limits = DecodeLimits::default();
    bench_decode(&mut group, "ours", wire, |buf| {
        let mut n = 0;
        while let Some(packet) = decode(buf, version, &limits).expect("valid workload") {
            black_box(packet);
            n += 1;
        }
        n
    });
    if version == V4 {
        bench_decode(&mut group, "rumqttc", wire, peers::rumqttc_v4);
        bench_decode(&mut group, "mqttbytes", wire, peers::mqttbytes_v4);
    } else {
        bench_decode(&mut group, "rumqttc", wire, peers::rumqttc_v5);
        bench_decode(&mut group, "mqttbytes", wire, peers::mqttbytes_v5);
    }
    let mut copy = Vec::with_capacity(wire.len());
    bench_decode(&mut group, "memcpy_floor", wire, |buf| {
        memcpy(buf, &mut copy);
        // Leave the buffer empty like the decoders do; the packet count is the workload's.
        buf.clear();
        BATCH
    });
    bench_decode(&mut group, "header_walk_floor", wire, |buf| {
        let n = header_walk(buf);
        buf.clear();
        n
    });
    group.finish();
}

/// Times `routine` taking every packet off a read buffer holding `wire`; see the module docs.
fn bench_decode(
    group: &mut BenchmarkGroup<'_, WallTime>,
    id: &str,
    wire: &[u8],
    mut routine: impl FnMut(&mut BytesMut) -> usize,
) {
    let mut check = BytesMut::from(wire);
    assert_eq!(routine(&mut check), BATCH, "{id}: packets decoded");
    assert!(check.is_empty(), "{id}: bytes left over");
    // The read buffer, between iterations. Every packet is dropped inside the routine, so
    // the buffer is unique again when the setup refills it and `reserve` reclaims it.
    let spare = Cell::new(Some(check));
    group.bench_function(id, |b| {
        b.iter_batched(
            || {
                let mut buf = spare.take().unwrap_or_default();
                buf.clear();
                buf.reserve(wire.len());
                buf.extend_from_slice(wire);
                buf
            },
            |mut buf| {
                let n = routine(&mut buf);
                spare.set(Some(buf));
                n
            },
            BatchSize::PerIteration,
        );
    });
}

/// The peers' decoders, each taking every packet off `buf` and dropping it.
mod peers {
    use super::*;

    pub(super) fn rumqttc_v4(buf: &mut BytesMut) -> usize {
        let mut n = 0;
        while !buf.is_empty() {
            let p = rumqttc::mqttbytes::v4::Packet::read(buf, usize::MAX).expect("rumqttc v4");
            black_box(p);
            n += 1;
        }
        n
    }

    pub(super) fn rumqttc_v5(buf: &mut BytesMut) -> usize {
        let mut n = 0;
        while !buf.is_empty() {
            let p = rumqttc::v5::mqttbytes::v5::Packet::read(buf, None).expect("rumqttc v5");
            black_box(p);
            n += 1;
        }
        n
    }

    pub(super) fn mqttbytes_v4(buf: &mut BytesMut) -> usize {
        let mut n = 0;
        while !buf.is_empty() {
            let p = mqttbytes::v4::read(buf, usize::MAX).expect("mqttbytes v4");
            black_box(p);
            n += 1;
        }
        n
    }

    pub(super) fn mqttbytes_v5(buf: &mut BytesMut) -> usize {
        let mut n = 0;
        while !buf.is_empty() {
            let p = mqttbytes::v5::read(buf, usize::MAX).expect("mqttbytes v5");
            black_box(p);
            n += 1;
        }
        n
    }
}

fn encode_benches(c: &mut Criterion) {
    for (size_name, size) in PAYLOADS {
        // One payload shared by every message, as one `Bytes` (each library's own type).
        let body = payload(size);
        let ours: Vec<Publish> = (0..BATCH).map(|i| publish(i, &body)).collect();
        for (v, version) in [("v4", V4), ("v5", V5)] {
            encode_group(
                c,
                &format!("encode/{v}_publish_{size_name}"),
                version,
                &ours,
            );
        }
    }
    let body = payload(64);
    let ours: Vec<Publish> = (0..BATCH)
        .map(|i| publish_with_properties(i, &body))
        .collect();
    encode_group(c, "encode/v5_publish_props", V5, &ours);
}

/// One encode group: the same messages as our values, each peer's values and the minimal
/// encoder's fields, encoded into one reused `BytesMut`.
fn encode_group(c: &mut Criterion, name: &str, version: ProtocolVersion, publishes: &[Publish]) {
    let packets: Vec<Packet> = publishes.iter().cloned().map(Packet::Publish).collect();
    let expected = wire(&packets, version);
    let mut group = c.benchmark_group(name);
    configure(&mut group, expected.len(), false);

    bench_encode(
        &mut group,
        "ours",
        &expected,
        version,
        &packets,
        |p, out| {
            encode(p, version, out).expect("valid workload");
        },
    );
    if version == V4 {
        let r: Vec<_> = publishes.iter().map(convert::rumqttc_v4).collect();
        bench_encode(&mut group, "rumqttc", &expected, version, &r, |p, out| {
            p.write(out).expect("rumqttc v4");
        });
        let m: Vec<_> = publishes.iter().map(convert::mqttbytes_v4).collect();
        bench_encode(&mut group, "mqttbytes", &expected, version, &m, |p, out| {
            p.write(out).expect("mqttbytes v4");
        });
    } else {
        let r: Vec<_> = publishes.iter().map(convert::rumqttc_v5).collect();
        bench_encode(&mut group, "rumqttc", &expected, version, &r, |p, out| {
            p.write(out).expect("rumqttc v5");
        });
        let m: Vec<_> = publishes.iter().map(convert::mqttbytes_v5).collect();
        bench_encode(&mut group, "mqttbytes", &expected, version, &m, |p, out| {
            p.write(out).expect("mqttbytes v5");
        });
    }
    let raw: Vec<RawPublish> = publishes.iter().map(RawPublish::from_publish).collect();
    let v5 = version == V5;
    bench_encode(&mut group, "minimal", &expected, version, &raw, |p, out| {
        minimal_encode(p, v5, out);
    });
    group.finish();
}

/// Times `write` encoding all of `items` into one reused buffer, after checking once that
/// the result is as long as our encoding (`expected`) and decodes to [`BATCH`] packets.
fn bench_encode<T>(
    group: &mut BenchmarkGroup<'_, WallTime>,
    id: &str,
    expected: &[u8],
    version: ProtocolVersion,
    items: &[T],
    mut write: impl FnMut(&T, &mut BytesMut),
) {
    let mut out = BytesMut::new();
    for item in items {
        write(item, &mut out);
    }
    // Byte-for-byte equality would be too strict: libraries may order properties
    // differently. The length and a strict decode are not.
    assert_eq!(out.len(), expected.len(), "{id}: bytes written");
    let mut check = BytesMut::from(&out[..]);
    let limits = DecodeLimits::default();
    let mut n = 0;
    while let Some(p) = decode(&mut check, version, &limits).expect("decodes") {
        assert!(matches!(p, Packet::Publish(_)));
        n += 1;
    }
    assert_eq!(n, BATCH, "{id}: packets written");
    group.bench_function(id, |b| {
        b.iter(|| {
            out.clear();
            for item in items {
                write(item, &mut out);
            }
            black_box(out.len())
        });
    });
}

/// Our PUBLISH values as each peer's.
mod convert {
    use super::*;

    fn topic(p: &Publish) -> String {
        p.topic.as_str().to_owned()
    }

    fn pkid(p: &Publish) -> u16 {
        p.packet_id.map_or(0, |id| id.get())
    }

    pub(super) fn rumqttc_v4(p: &Publish) -> rumqttc::mqttbytes::v4::Publish {
        assert!(p.properties.is_empty());
        rumqttc::mqttbytes::v4::Publish {
            dup: false,
            qos: rumqttc::mqttbytes::QoS::AtLeastOnce,
            retain: false,
            topic: topic(p),
            pkid: pkid(p),
            payload: p.payload.clone(),
        }
    }

    pub(super) fn mqttbytes_v4(p: &Publish) -> mqttbytes::v4::Publish {
        assert!(p.properties.is_empty());
        mqttbytes::v4::Publish {
            dup: false,
            qos: mqttbytes::QoS::AtLeastOnce,
            retain: false,
            topic: topic(p),
            pkid: pkid(p),
            payload: p.payload.clone(),
        }
    }

    fn user_properties() -> Vec<(String, String)> {
        USER_PROPERTIES
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    pub(super) fn rumqttc_v5(p: &Publish) -> rumqttc::v5::mqttbytes::v5::Publish {
        use rumqttc::v5::mqttbytes::v5::PublishProperties;
        let properties = (!p.properties.is_empty()).then(|| PublishProperties {
            message_expiry_interval: Some(EXPIRY),
            content_type: Some(CONTENT_TYPE.to_owned()),
            user_properties: user_properties(),
            ..PublishProperties::default()
        });
        rumqttc::v5::mqttbytes::v5::Publish {
            dup: false,
            qos: rumqttc::v5::mqttbytes::QoS::AtLeastOnce,
            retain: false,
            topic: Bytes::copy_from_slice(p.topic.as_bytes()),
            pkid: pkid(p),
            payload: p.payload.clone(),
            properties,
        }
    }

    pub(super) fn mqttbytes_v5(p: &Publish) -> mqttbytes::v5::Publish {
        let properties = (!p.properties.is_empty()).then(|| mqttbytes::v5::PublishProperties {
            payload_format_indicator: None,
            message_expiry_interval: Some(EXPIRY),
            topic_alias: None,
            response_topic: None,
            correlation_data: None,
            user_properties: user_properties(),
            subscription_identifiers: Vec::new(),
            content_type: Some(CONTENT_TYPE.to_owned()),
        });
        mqttbytes::v5::Publish {
            dup: false,
            qos: mqttbytes::QoS::AtLeastOnce,
            retain: false,
            topic: topic(p),
            pkid: pkid(p),
            properties,
            payload: p.payload.clone(),
        }
    }
}

fn topic_benches(c: &mut Criterion) {
    let topics = topics();
    let calls = FILTERS.len() * topics.len();
    let count = |m: fn(&str, &str) -> bool| {
        FILTERS
            .iter()
            .flat_map(|f| topics.iter().map(move |t| (*f, t.as_str())))
            .filter(|(f, t)| m(f, t))
            .count()
    };
    // The peers take (topic, filter) and refuse every `$` topic, even for `$SYS/#`; ours
    // takes (filter, topic) and follows [MQTT-4.7.2-1]. The counts differ by exactly that.
    let ours = count(mqtt_core::topic::matches);
    let theirs = count(|f, t| rumqttc::mqttbytes::matches(t, f));
    assert!(ours > 0 && theirs > 0 && ours >= theirs);
    assert_eq!(theirs, count(|f, t| mqttbytes::matches(t, f)));

    let mut group = c.benchmark_group("topic/match");
    group.throughput(Throughput::Elements(calls as u64));
    bench_match(&mut group, "ours", &topics, mqtt_core::topic::matches);
    bench_match(&mut group, "rumqttc", &topics, |f, t| {
        rumqttc::mqttbytes::matches(t, f)
    });
    bench_match(&mut group, "mqttbytes", &topics, |f, t| {
        mqttbytes::matches(t, f)
    });
    group.finish();
}

/// Times `m(filter, topic)` over every filter and topic; generic so that each matcher is
/// inlined into its loop as it would be into a router's.
fn bench_match(
    group: &mut BenchmarkGroup<'_, WallTime>,
    id: &str,
    topics: &[String],
    m: impl Fn(&str, &str) -> bool,
) {
    group.bench_function(id, |b| {
        b.iter(|| {
            let mut n = 0usize;
            for f in FILTERS {
                for t in topics {
                    n += usize::from(m(black_box(f), black_box(t)));
                }
            }
            n
        });
    });
}

/// Throughput in packets. Flat sampling with fewer samples where an iteration is long: the
/// decode groups (each iteration has an untimed setup copy, which criterion's linear
/// sampling would repeat thousands of times) and the batches of many megabytes.
fn configure(group: &mut BenchmarkGroup<'_, WallTime>, batch_bytes: usize, setup: bool) {
    group.throughput(Throughput::Elements(BATCH as u64));
    if batch_bytes > 4 << 20 {
        group.sampling_mode(SamplingMode::Flat);
        group.sample_size(20);
    } else if setup {
        group.sampling_mode(SamplingMode::Flat);
        group.sample_size(50);
    }
}
