//! CONNECT and CONNACK: acceptance in each version, what CONNACK announces, client
//! identifiers, refusals, what may come before and after CONNECT, and client-id takeover.

use super::prelude::*;

/// A 3.1.1 and a 5.0 client are accepted; a new session is not "present" [MQTT-3.2.2-3]
/// [MQTT-3.2.0-1]; each can publish to itself.
pub fn connect_accepted_in_each_version(b: &dyn BrokerAdapter, c: &dyn ClientAdapter) -> Outcome {
    let cx = Ctx::start(b, c, config())?;
    for version in [V311, V5] {
        let mut client = cx.client(options(&format!("c-{version}"), version))?;
        ensure!(
            !client.session_present,
            "{version}: Session Present on a first connection"
        );
        client.subscribe("echo", QoS::AtMostOnce)?;
        client.send("echo", "hi", QoS::AtMostOnce)?;
        client.expect_message("echo", "hi")?;
        client.disconnect()?;
    }
    cx.finish()
}

/// A 5.0 CONNACK announces the broker's limits: Receive Maximum, Maximum Packet Size,
/// Topic Alias Maximum (spec 3.2.2.3).
pub fn connack_announces_the_broker_limits(
    b: &dyn BrokerAdapter,
    c: &dyn ClientAdapter,
) -> Outcome {
    let mut cfg = config();
    cfg.limits.receive_maximum = 10;
    cfg.limits.max_packet_size = 4096;
    cfg.limits.topic_alias_maximum = 8;
    let cx = Ctx::start(b, c, cfg)?;
    let (peer, ack) = cx.raw(raw::connect(V5, "c"))?;
    let p = &ack.properties;
    ensure_eq!(
        p.receive_maximum.map(|r| r.get()),
        Some(10),
        "Receive Maximum"
    );
    ensure_eq!(
        p.maximum_packet_size.map(|m| m.get()),
        Some(4096),
        "Maximum Packet Size"
    );
    ensure_eq!(p.topic_alias_maximum, Some(8), "Topic Alias Maximum");
    ensure_eq!(
        p.assigned_client_identifier,
        None,
        "Assigned Client Identifier for a client that named itself"
    );
    peer.disconnect()?;
    cx.finish()
}

/// A 5.0 client with an empty identifier is given one in CONNACK [MQTT-3.2.2-16], and two
/// such clients get different ones; an adapter client without an identifier works.
pub fn empty_client_id_is_assigned_one_v5(b: &dyn BrokerAdapter, c: &dyn ClientAdapter) -> Outcome {
    let cx = Ctx::start(b, c, config())?;
    let (a, ack_a) = cx.raw(raw::connect(V5, ""))?;
    let (b2, ack_b) = cx.raw(raw::connect(V5, ""))?;
    let id_a = ack_a.properties.assigned_client_identifier.clone();
    let id_b = ack_b.properties.assigned_client_identifier.clone();
    ensure!(
        id_a.as_ref().is_some_and(|i| !i.is_empty()),
        "no Assigned Client Identifier: {ack_a:?}"
    );
    ensure!(
        id_a != id_b,
        "two clients were assigned the same id {id_a:?}"
    );
    a.disconnect()?;
    b2.disconnect()?;
    let mut anon = cx.client(options("", V5))?;
    anon.subscribe("anon", QoS::AtLeastOnce)?;
    anon.send("anon", "x", QoS::AtLeastOnce)?;
    anon.expect_message("anon", "x")?;
    anon.disconnect()?;
    cx.finish()
}

/// 3.1.1: an empty client identifier needs Clean Session 1: without it, CONNACK return code
/// 0x02 (identifier rejected) and the close [MQTT-3.1.3-8]; with it, accepted [MQTT-3.1.3-6].
pub fn empty_client_id_needs_a_clean_session_v311(
    b: &dyn BrokerAdapter,
    c: &dyn ClientAdapter,
) -> Outcome {
    let cx = Ctx::start(b, c, config())?;
    let mut peer = cx.raw_open(V311)?;
    let mut connect = raw::connect(V311, "");
    connect.clean_start = false;
    let ack = peer.connect_with(connect)?;
    ensure_eq!(
        ack.reason_code,
        ReasonCode::ClientIdentifierNotValid,
        "CONNACK for an empty id without Clean Session"
    );
    ensure!(
        !ack.session_present,
        "Session Present on a refusal [MQTT-3.2.2-4]"
    );
    peer.expect_closed()?;
    let ok = cx.raw_as(V311, "")?;
    ok.disconnect()?;
    match cx.try_client(persistent("", V311))? {
        Err(ConnectError::Refused(ReasonCode::ClientIdentifierNotValid)) => {}
        Err(other) => fail!("adapter client: expected refusal 0x85, got {other}"),
        Ok(_) => fail!("adapter client with an empty id and Clean Session 0 was accepted"),
    }
    cx.finish()
}

/// An identifier longer than the broker allows is refused: 0x85 in 5.0, return code 0x02 in
/// 3.1.1, and the connection closes.
pub fn client_id_too_long_is_refused(b: &dyn BrokerAdapter, c: &dyn ClientAdapter) -> Outcome {
    let mut cfg = config();
    cfg.limits.max_client_id_len = 8;
    let cx = Ctx::start(b, c, cfg)?;
    for version in [V311, V5] {
        match cx.try_client(options("123456789", version))? {
            Err(ConnectError::Refused(ReasonCode::ClientIdentifierNotValid)) => {}
            Err(other) => fail!("{version}: expected refusal 0x85, got {other}"),
            Ok(_) => fail!("{version}: a 9-byte identifier was accepted with a limit of 8"),
        }
        cx.client(options("12345678", version))?.disconnect()?;
    }
    cx.finish()
}

/// A protocol level nobody speaks is answered CONNACK 0x84 (Unsupported Protocol Version)
/// and the close [MQTT-3.1.2-2].
pub fn unsupported_protocol_level_is_refused(
    b: &dyn BrokerAdapter,
    c: &dyn ClientAdapter,
) -> Outcome {
    let cx = Ctx::start(b, c, config())?;
    let mut peer = cx.raw_open(V5)?;
    // "MQTT", level 6, Clean Start, keep alive 60, no properties, client id "a".
    let mut body = raw::text("MQTT");
    body.extend([6, 0x02, 0, 60, 0]);
    body.extend(raw::text("a"));
    peer.send_bytes(&raw::frame(0x10, &body))?;
    match peer.recv()? {
        Packet::ConnAck(ack) => {
            ensure_eq!(
                ack.reason_code,
                ReasonCode::UnsupportedProtocolVersion,
                "CONNACK code for level 6"
            );
        }
        other => fail!("expected CONNACK 0x84, got {other:?}"),
    }
    peer.expect_closed()?;
    cx.finish()
}

/// A first packet that is not CONNECT closes the connection without an answer
/// [MQTT-3.1.0-1].
pub fn first_packet_not_connect_is_closed(b: &dyn BrokerAdapter, c: &dyn ClientAdapter) -> Outcome {
    let cx = Ctx::start(b, c, config())?;
    for first in [
        Packet::PingReq,
        Packet::Publish(raw::publish("a", "x", QoS::AtMostOnce, 0)?),
    ] {
        let mut peer = cx.raw_open(V311)?;
        peer.send(&first)?;
        peer.expect_closed()
            .map_err(|f| f.context(format!("after {first:?} as the first packet")))?;
    }
    cx.finish()
}

/// A second CONNECT is a protocol error [MQTT-3.1.0-2]: DISCONNECT 0x82 in 5.0, the close in
/// 3.1.1.
pub fn second_connect_is_a_protocol_error(b: &dyn BrokerAdapter, c: &dyn ClientAdapter) -> Outcome {
    let cx = Ctx::start(b, c, config())?;
    for version in [V5, V311] {
        let mut peer = cx.raw_as(version, &format!("twice-{version}"))?;
        peer.send(&Packet::Connect(Box::new(raw::connect(version, "again"))))?;
        peer.expect_refusal(ReasonCode::ProtocolError)
            .map_err(|f| f.context(version))?;
    }
    cx.finish()
}

/// A socket that never sends CONNECT is closed after the broker's connect timeout.
pub fn connect_timeout_closes_a_silent_socket(
    b: &dyn BrokerAdapter,
    c: &dyn ClientAdapter,
) -> Outcome {
    const TIMEOUT: Duration = Duration::from_millis(300);
    let mut cfg = config();
    cfg.connect_timeout = TIMEOUT;
    let cx = Ctx::start(b, c, cfg)?;
    let opened = Instant::now();
    let mut silent = cx.raw_open(V311)?;
    silent.expect_closed()?;
    let elapsed = opened.elapsed();
    ensure!(
        elapsed >= TIMEOUT - Duration::from_millis(50),
        "closed after {elapsed:?}, before the connect timeout of {TIMEOUT:?}"
    );
    cx.finish()
}

/// Over the connection limit, a 5.0 client is refused with 0x89 (Server busy); a slot frees
/// when a client leaves.
pub fn max_connections_refuses_with_server_busy(
    b: &dyn BrokerAdapter,
    c: &dyn ClientAdapter,
) -> Outcome {
    let mut cfg = config();
    cfg.limits.max_connections = 2;
    let cx = Ctx::start(b, c, cfg)?;
    let first = cx.client(options("a", V5))?;
    let _second = cx.client(options("b", V5))?;
    match cx.try_client(options("c", V5))? {
        Err(ConnectError::Refused(ReasonCode::ServerBusy)) => {}
        Err(other) => fail!("expected refusal 0x89, got {other}"),
        Ok(_) => fail!("a third connection was accepted with a limit of 2"),
    }
    first.disconnect()?;
    // The broker may see the close a moment after the client does: retry within WAIT.
    let deadline = Instant::now() + WAIT;
    loop {
        match cx.try_client(options("d", V5))? {
            Ok(d) => {
                d.disconnect()?;
                break;
            }
            Err(e) if Instant::now() >= deadline => {
                fail!("no slot after a client left: {e}")
            }
            Err(_) => std::thread::sleep(Duration::from_millis(20)),
        }
    }
    cx.finish()
}

/// A second connection with the same client id takes the session over [MQTT-3.1.4-3]; the
/// old 5.0 connection hears DISCONNECT 0x8E (Session taken over) and is closed.
pub fn takeover_tells_the_old_v5_connection_0x8e(
    b: &dyn BrokerAdapter,
    c: &dyn ClientAdapter,
) -> Outcome {
    let cx = Ctx::start(b, c, config())?;
    let mut connect = raw::connect(V5, "same");
    connect.clean_start = false;
    connect.properties.session_expiry_interval = Some(60);
    let (mut old, _) = cx.raw(connect)?;
    old.subscribe("t", QoS::AtMostOnce)?;
    let mut new = cx.client(persistent("same", V5))?;
    ensure!(
        new.session_present,
        "the taken-over session was not present"
    );
    old.expect_disconnect(ReasonCode::SessionTakenOver)?;
    let mut publisher = cx.client(options("pub", V5))?;
    publisher.send("t", "to the new one", QoS::AtMostOnce)?;
    new.expect_message("t", "to the new one")?;
    new.disconnect()?;
    cx.finish()
}

/// 3.1.1 takeover: the old socket just closes; the new connection gets the unacknowledged
/// message again with DUP and the same packet id [MQTT-4.4.0-1].
pub fn takeover_hands_the_session_over_v311(
    b: &dyn BrokerAdapter,
    c: &dyn ClientAdapter,
) -> Outcome {
    let cx = Ctx::start(b, c, config())?;
    let mut connect = raw::connect(V311, "same");
    connect.clean_start = false;
    let (mut old, _) = cx.raw(connect.clone())?;
    old.subscribe("t", QoS::AtLeastOnce)?;
    let mut publisher = cx.client(options("pub", V311))?;
    publisher.send("t", "in flight", QoS::AtLeastOnce)?;
    let first = old.expect_publish()?;
    let (mut new, ack) = cx.raw(connect)?;
    ensure!(ack.session_present, "Session Present 0 on takeover");
    old.expect_closed()?;
    let again = new.expect_publish()?;
    ensure_eq!(again.payload, first.payload, "payload resent");
    ensure!(again.dup, "resent without DUP");
    ensure_eq!(again.packet_id, first.packet_id, "packet id resent");
    cx.finish()
}

/// An adapter client whose id is taken over sees its connection end; the new adapter
/// client receives on the old subscriptions.
pub fn takeover_of_an_adapter_client(b: &dyn BrokerAdapter, c: &dyn ClientAdapter) -> Outcome {
    let cx = Ctx::start(b, c, config())?;
    for version in [V311, V5] {
        // A session of its own per round: the last round's PUBACK and DISCONNECT may still be
        // on their way through the broker when this round's CONNECT arrives on another
        // connection (nothing orders two connections), and taking that session over would
        // rightly send its unacknowledged message again, with DUP.
        let id = if version.is_v5() { "same5" } else { "same4" };
        let mut old = cx.client(persistent(id, version))?;
        old.subscribe("t", QoS::AtLeastOnce)?;
        let mut new = cx.client(persistent(id, version))?;
        ensure!(
            new.session_present,
            "{version}: Session Present 0 on takeover"
        );
        old.expect_disconnected().map_err(|f| f.context(version))?;
        let mut publisher = cx.client(options("pub", version))?;
        publisher.send("t", "after", QoS::AtLeastOnce)?;
        new.expect_message("t", "after")?;
        new.disconnect()?;
        publisher.disconnect()?;
    }
    cx.finish()
}
