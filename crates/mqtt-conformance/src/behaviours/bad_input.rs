//! Bad input closes only the offender: whatever one connection sends, a 5.0 sender first
//! hears DISCONNECT with the spec's reason code, a 3.1.1 one just sees its socket close,
//! and every other client goes on being served.

use super::prelude::*;

/// Two adapter clients that must not notice anything: a subscriber to `ctl/#` and a
/// publisher.
struct Control {
    sub: Client,
    publisher: Client,
    round: usize,
}

impl Control {
    fn new(cx: &Ctx<'_>) -> Result<Self, Failure> {
        let mut sub = cx.client(options("ctl-sub", V311))?;
        sub.subscribe("ctl/#", QoS::AtLeastOnce)?;
        let publisher = cx.client(options("ctl-pub", V5))?;
        Ok(Self {
            sub,
            publisher,
            round: 0,
        })
    }

    /// A QoS 1 message from the control publisher reaches the control subscriber.
    fn still_served(&mut self, when: &str) -> Outcome {
        self.round += 1;
        let payload = format!("{when} #{}", self.round);
        self.publisher
            .send("ctl/check", payload.clone(), QoS::AtLeastOnce)
            .map_err(|f| f.context(format!("control publisher {when}")))?;
        self.sub
            .expect_message("ctl/check", &payload)
            .map_err(|f| f.context(format!("control subscriber {when}")))?;
        Ok(())
    }
}

/// A connected client of `version` sends `bytes`: it is refused with `code` (5.0) or
/// closed (3.1.1); the control pair is served before and after.
fn offender(
    b: &dyn BrokerAdapter,
    c: &dyn ClientAdapter,
    version: ProtocolVersion,
    bytes: &[u8],
    code: ReasonCode,
) -> Outcome {
    let cx = Ctx::start(b, c, config())?;
    let mut control = Control::new(&cx)?;
    control.still_served("before")?;
    let mut bad = cx.raw_as(version, "bad")?;
    bad.send_bytes(bytes)?;
    bad.expect_refusal(code)
        .map_err(|f| f.context(format!("{version} offender sent {bytes:02x?}")))?;
    control.still_served("after the offender was closed")?;
    cx.finish()
}

/// PUBLISH with QoS 3 is malformed [MQTT-3.3.1-4]: DISCONNECT 0x81, only for the sender.
pub fn malformed_packet_closes_only_its_sender_v5(
    b: &dyn BrokerAdapter,
    c: &dyn ClientAdapter,
) -> Outcome {
    let mut body = raw::text("a");
    body.extend([0, 1, 0]);
    offender(
        b,
        c,
        V5,
        &raw::frame(0x36, &body),
        ReasonCode::MalformedPacket,
    )
}

/// The same in 3.1.1: the sender's socket closes, nobody else notices.
pub fn malformed_packet_closes_only_its_sender_v311(
    b: &dyn BrokerAdapter,
    c: &dyn ClientAdapter,
) -> Outcome {
    let mut body = raw::text("a");
    body.extend([0, 1]);
    offender(
        b,
        c,
        V311,
        &raw::frame(0x36, &body),
        ReasonCode::MalformedPacket,
    )
}

/// A wildcard in a PUBLISH topic name [MQTT-3.3.2-2]: DISCONNECT 0x90 (Topic Name invalid).
pub fn wildcard_in_a_topic_name_is_0x90(b: &dyn BrokerAdapter, c: &dyn ClientAdapter) -> Outcome {
    let mut body = raw::text("a/+");
    body.push(0);
    offender(
        b,
        c,
        V5,
        &raw::frame(0x30, &body),
        ReasonCode::TopicNameInvalid,
    )
}

/// Reserved fixed-header flags [MQTT-2.2.2-2]: PUBREL must carry 0b0010 [MQTT-3.6.1-1].
pub fn reserved_flags_are_malformed(b: &dyn BrokerAdapter, c: &dyn ClientAdapter) -> Outcome {
    offender(
        b,
        c,
        V5,
        &[0x60, 0x02, 0x00, 0x01],
        ReasonCode::MalformedPacket,
    )
}

/// A topic that is not valid UTF-8 is malformed [MQTT-1.5.4-1].
pub fn invalid_utf8_topic_is_malformed(b: &dyn BrokerAdapter, c: &dyn ClientAdapter) -> Outcome {
    offender(
        b,
        c,
        V5,
        &raw::frame(0x30, &[0x00, 0x03, 0x61, 0xff, 0x62, 0x00]),
        ReasonCode::MalformedPacket,
    )
}

/// A QoS 1 PUBLISH with packet id 0 [MQTT-2.2.1-3] is a protocol error.
pub fn packet_id_zero_is_a_protocol_error(b: &dyn BrokerAdapter, c: &dyn ClientAdapter) -> Outcome {
    let mut body = raw::text("a");
    body.extend([0, 0, 0]);
    offender(
        b,
        c,
        V5,
        &raw::frame(0x32, &body),
        ReasonCode::ProtocolError,
    )
}

/// A packet only servers send (SUBACK) from a client is a protocol error.
pub fn server_only_packet_from_a_client_is_a_protocol_error(
    b: &dyn BrokerAdapter,
    c: &dyn ClientAdapter,
) -> Outcome {
    offender(
        b,
        c,
        V5,
        &raw::frame(0x90, &[0, 1, 0, 0]),
        ReasonCode::ProtocolError,
    )
}

/// Garbage before CONNECT is closed without a word [MQTT-3.1.0-1] (nothing to answer
/// in), and the broker goes on serving.
pub fn garbage_before_connect_is_closed_without_an_answer(
    b: &dyn BrokerAdapter,
    c: &dyn ClientAdapter,
) -> Outcome {
    let cx = Ctx::start(b, c, config())?;
    let mut control = Control::new(&cx)?;
    let mut bad = cx.raw_open(V311)?;
    bad.send_bytes_lossy(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n");
    bad.expect_closed()?;
    control.still_served("after garbage")?;
    cx.finish()
}

/// A CONNECT announcing more bytes than the maximum packet size is refused from its fixed
/// header, at once (not after a connect timeout).
pub fn huge_connect_is_refused_from_its_header(
    b: &dyn BrokerAdapter,
    c: &dyn ClientAdapter,
) -> Outcome {
    let mut cfg = config();
    cfg.connect_timeout = Duration::from_secs(30);
    let cx = Ctx::start(b, c, cfg)?;
    let mut control = Control::new(&cx)?;
    let mut bad = cx.raw_open(V311)?;
    let mut header = vec![0x10];
    header.extend(raw::varint(200_000_000));
    bad.send_bytes(&header)?;
    bad.expect_closed()?;
    control.still_served("after a huge CONNECT")?;
    cx.finish()
}

/// A subscriber keeps receiving, in order and without loss, while 30 connections send
/// garbage (before and after CONNECT) beside it.
pub fn subscriber_keeps_receiving_through_garbage_connections(
    b: &dyn BrokerAdapter,
    c: &dyn ClientAdapter,
) -> Outcome {
    let cx = Ctx::start(b, c, config())?;
    let mut control = Control::new(&cx)?;
    let mut seed: u64 = 0x5eed;
    for i in 0..30 {
        let mut bad = if i % 2 == 0 {
            cx.raw_open(V311)?
        } else {
            cx.raw_as(
                [V311, V5].get(i % 4 / 2).copied().unwrap_or(V5),
                &format!("bad-{i}"),
            )?
        };
        // Bytes that are never a valid packet: a reserved packet type first.
        let mut bytes = vec![0x00, 0x10];
        for _ in 0..16 {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            bytes.push(seed.to_le_bytes().first().copied().unwrap_or(0));
        }
        bad.send_bytes_lossy(&bytes);
        // What it hears (a DISCONNECT for 5.0) must decode; then the close.
        loop {
            match bad.next_packet() {
                Ok(None) => break,
                Ok(Some(Packet::Disconnect(d))) if d.reason_code.is_error() => {}
                Ok(Some(p)) => fail!("garbage connection {i} was answered {p:?}"),
                Err(f) => return Err(f.context(format!("garbage connection {i}"))),
            }
        }
        control.still_served(&format!("after garbage connection {i}"))?;
    }
    cx.finish()
}
