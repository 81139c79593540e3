//! Feed arbitrary bytes, closes and clock jumps into a broker from several connections: it must
//! never panic, and must keep answering a well-behaved client afterwards.
//!
//! Each step takes one control byte: the low two bits pick a connection, the next two an action
//! (bytes of a length from the following byte, a socket close, a clock jump, a fresh accept).

#![no_main]
#![forbid(unsafe_code)]

use std::time::{Duration, Instant};

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use mqtt_core::broker::{Broker, BrokerConfig, ConnId, PeerInfo};

fn peer() -> PeerInfo {
    PeerInfo {
        addr: None,
        tls: false,
    }
}

fuzz_target!(|data: &[u8]| {
    let mut config = BrokerConfig::default();
    config.limits.max_queued_messages = 8;
    config.limits.max_inflight = 4;
    config.limits.receive_maximum = 4;
    config.limits.max_packet_size = 4096;
    config.sys_interval = Some(Duration::from_secs(5));
    let mut broker = Broker::new(config);
    let mut now = Instant::now();
    let mut conns: Vec<(ConnId, BytesMut)> = (0..4)
        .map(|_| (broker.accept(now, peer()), BytesMut::new()))
        .collect();
    let mut rest = data;
    while let Some((&ctl, tail)) = rest.split_first() {
        rest = tail;
        let i = usize::from(ctl & 3);
        match (ctl >> 2) & 3 {
            0 => {
                let Some((&len, tail)) = rest.split_first() else {
                    break;
                };
                let n = usize::from(len).min(tail.len());
                let (chunk, tail) = tail.split_at(n);
                rest = tail;
                if let Some((id, buf)) = conns.get_mut(i) {
                    buf.extend_from_slice(chunk);
                    broker.handle_bytes(now, *id, buf);
                }
            }
            1 => {
                if let Some((id, _)) = conns.get(i) {
                    broker.handle_closed(now, *id);
                }
            }
            2 => {
                now += Duration::from_millis(u64::from(ctl) * 250);
                broker.handle_timeout(now);
            }
            _ => {
                if let Some(slot) = conns.get_mut(i) {
                    *slot = (broker.accept(now, peer()), BytesMut::new());
                }
            }
        }
        while let Some(t) = broker.poll_transmit() {
            broker.handle_written(now, t.conn, t.len());
        }
        while broker.poll_event().is_some() {}
    }
    // Still serving: a fresh client is accepted.
    let conn = broker.accept(now, peer());
    let mut connect = BytesMut::from(&b"\x10\x0d\x00\x04MQTT\x04\x02\x00\x3c\x00\x01z"[..]);
    broker.handle_bytes(now, conn, &mut connect);
    let mut acked = false;
    while let Some(t) = broker.poll_transmit() {
        acked |= t.conn == conn && t.bytes.starts_with(&[0x20, 0x02]);
    }
    assert!(acked, "no CONNACK for a well-behaved client");
});
