//! 5.0 Topic Aliases both ways: from a client (set, reuse, remap, limits, scope) and from
//! the broker (only when and as far as the client allows).

use std::collections::HashMap;
use std::num::NonZeroU16;

use super::prelude::*;

/// A QoS 0 PUBLISH with Topic Alias `alias`; an empty `topic` leaves the name out.
fn aliased(topic: &str, payload: &str, alias: u16) -> Result<Packet, Failure> {
    let mut p = if topic.is_empty() {
        mqtt_core::Publish::new(mqtt_core::topic::TopicName::empty(), payload.to_string())
    } else {
        raw::publish(topic, payload.to_string(), QoS::AtMostOnce, 0)?
    };
    p.properties.topic_alias = NonZeroU16::new(alias);
    Ok(Packet::Publish(p))
}

/// A client's alias is set by a PUBLISH with topic and alias, then stands for the topic;
/// a new topic remaps it (spec 3.3.2.3.4).
pub fn topic_alias_from_the_client_is_set_then_reused(
    b: &dyn BrokerAdapter,
    c: &dyn ClientAdapter,
) -> Outcome {
    let cx = Ctx::start(b, c, config())?;
    let mut s = cx.client(options("s", V311))?;
    s.subscribe("long/topic/name", QoS::AtMostOnce)?;
    s.subscribe("other", QoS::AtMostOnce)?;
    let mut p = cx.raw_as(V5, "p")?;
    p.send(&aliased("long/topic/name", "1", 3)?)?;
    p.send(&aliased("", "2", 3)?)?;
    p.send(&aliased("other", "3", 3)?)?;
    p.send(&aliased("", "4", 3)?)?;
    p.ping()?;
    let mut got = Vec::new();
    for _ in 0..4 {
        let m = s.expect_publish()?;
        got.push(format!(
            "{} {}",
            m.topic.as_str(),
            String::from_utf8_lossy(&m.payload)
        ));
    }
    ensure_eq!(
        got,
        [
            "long/topic/name 1",
            "long/topic/name 2",
            "other 3",
            "other 4"
        ],
        "messages as delivered"
    );
    p.disconnect()?;
    cx.finish()
}

/// An alias above the Topic Alias Maximum the broker announced is refused with DISCONNECT
/// 0x94 [MQTT-3.3.2-9]; the maximum itself is fine.
pub fn topic_alias_over_the_maximum_is_0x94(
    b: &dyn BrokerAdapter,
    c: &dyn ClientAdapter,
) -> Outcome {
    let mut cfg = config();
    cfg.limits.topic_alias_maximum = 4;
    let cx = Ctx::start(b, c, cfg)?;
    let (mut p, ack) = cx.raw(raw::connect(V5, "p"))?;
    ensure_eq!(
        ack.properties.topic_alias_maximum,
        Some(4),
        "Topic Alias Maximum"
    );
    p.send(&aliased("t", "ok", 4)?)?;
    p.ping()?;
    p.send(&aliased("t", "too far", 5)?)?;
    p.expect_disconnect(ReasonCode::TopicAliasInvalid)?;
    cx.finish()
}

/// An empty topic with an alias never set is a protocol error (DISCONNECT 0x82).
pub fn unknown_topic_alias_is_a_protocol_error(
    b: &dyn BrokerAdapter,
    c: &dyn ClientAdapter,
) -> Outcome {
    let cx = Ctx::start(b, c, config())?;
    let mut p = cx.raw_as(V5, "p")?;
    p.send(&aliased("", "who?", 1)?)?;
    p.expect_disconnect(ReasonCode::ProtocolError)?;
    cx.finish()
}

/// With a Topic Alias Maximum of 0 the broker announces none and any alias is invalid
/// (0x94) [MQTT-3.2.2-18].
pub fn topic_aliases_are_off_when_the_maximum_is_0(
    b: &dyn BrokerAdapter,
    c: &dyn ClientAdapter,
) -> Outcome {
    let mut cfg = config();
    cfg.limits.topic_alias_maximum = 0;
    let cx = Ctx::start(b, c, cfg)?;
    let (mut p, ack) = cx.raw(raw::connect(V5, "p"))?;
    ensure!(
        matches!(ack.properties.topic_alias_maximum, None | Some(0)),
        "Topic Alias Maximum {:?} with aliases off",
        ack.properties.topic_alias_maximum
    );
    p.send(&aliased("t", "x", 1)?)?;
    p.expect_disconnect(ReasonCode::TopicAliasInvalid)?;
    cx.finish()
}

/// Reads `n` QoS 0 PUBLISH packets, resolving aliases as a client must; returns the topics
/// and the aliases seen, and fails on an alias over `max` or one never set.
fn resolve(peer: &mut RawPeer, n: usize, max: u16) -> Result<(Vec<String>, Vec<u16>), Failure> {
    let mut map: HashMap<u16, String> = HashMap::new();
    let (mut topics, mut aliases) = (Vec::new(), Vec::new());
    for _ in 0..n {
        let p = peer.expect_publish()?;
        let topic = match p.properties.topic_alias.map(NonZeroU16::get) {
            None => p.topic.to_string(),
            Some(a) => {
                ensure!(
                    a <= max,
                    "the broker used alias {a} over the client's maximum {max}"
                );
                aliases.push(a);
                if p.topic.is_empty() {
                    match map.get(&a) {
                        Some(t) => t.clone(),
                        None => fail!("the broker used alias {a} without setting it"),
                    }
                } else {
                    map.insert(a, p.topic.to_string());
                    p.topic.to_string()
                }
            }
        };
        topics.push(topic);
    }
    Ok((topics, aliases))
}

/// The broker sends aliases only up to the client's Topic Alias Maximum [MQTT-3.3.2-10],
/// sets each before using it, uses them to shorten repeats, and sends none to a client
/// that allowed none [MQTT-3.3.2-11].
pub fn broker_uses_only_the_aliases_the_client_allows(
    b: &dyn BrokerAdapter,
    c: &dyn ClientAdapter,
) -> Outcome {
    let cx = Ctx::start(b, c, config())?;
    let mut connect = raw::connect(V5, "allows");
    connect.properties.topic_alias_maximum = Some(2);
    let (mut allows, _) = cx.raw(connect)?;
    allows.subscribe("#", QoS::AtMostOnce)?;
    let mut none = cx.raw_as(V5, "none")?;
    none.subscribe("#", QoS::AtMostOnce)?;
    let mut publisher = cx.client(options("pub", V5))?;
    let topics = ["a", "a", "b", "c", "b", "a", "c"];
    for t in topics {
        publisher.send(t, t, QoS::AtLeastOnce)?;
    }
    let (got, aliases) = resolve(&mut allows, topics.len(), 2)?;
    ensure_eq!(got, topics, "topics resolved from aliases");
    ensure!(
        !aliases.is_empty(),
        "the broker used no alias with a client that allows two"
    );
    let (got, aliases) = resolve(&mut none, topics.len(), 0)?;
    ensure_eq!(got, topics, "topics to the client without aliases");
    ensure!(
        aliases.is_empty(),
        "aliases {aliases:?} to a client that allowed none"
    );
    cx.finish()
}

/// Aliases belong to one connection: a new connection must set them again (spec
/// 3.3.2.3.4).
pub fn topic_aliases_belong_to_one_connection(
    b: &dyn BrokerAdapter,
    c: &dyn ClientAdapter,
) -> Outcome {
    let cx = Ctx::start(b, c, config())?;
    let mut connect = raw::connect(V5, "p");
    connect.clean_start = false;
    connect.properties.session_expiry_interval = Some(60);
    let (mut p, _) = cx.raw(connect.clone())?;
    p.send(&aliased("t", "set", 1)?)?;
    p.send(&aliased("", "use", 1)?)?;
    p.ping()?;
    p.disconnect()?;
    let (mut p, _) = cx.raw(connect)?;
    p.send(&aliased("", "stale", 1)?)?;
    p.expect_disconnect(ReasonCode::ProtocolError)
        .map_err(|f| f.context("an alias from the previous connection"))?;
    cx.finish()
}

/// An adapter client that allows topic aliases hears every message on its full topic.
pub fn adapter_client_resolves_broker_aliases(
    b: &dyn BrokerAdapter,
    c: &dyn ClientAdapter,
) -> Outcome {
    let cx = Ctx::start(b, c, config())?;
    let mut o = options("s", V5);
    o.connect_properties.topic_alias_maximum = Some(2);
    let mut s = cx.client(o)?;
    s.subscribe("al/#", QoS::AtLeastOnce)?;
    let mut publisher = cx.client(options("pub", V5))?;
    let topics = ["al/a", "al/a", "al/b", "al/c", "al/b", "al/a"];
    for (i, t) in topics.iter().enumerate() {
        publisher.send(t, i.to_string(), QoS::AtLeastOnce)?;
    }
    for (i, t) in topics.iter().enumerate() {
        s.expect_message(t, &i.to_string())?;
    }
    cx.finish()
}

/// An adapter client that sends topic aliases (as the broker's maximum allows) gets its
/// messages through on their full topics.
pub fn adapter_client_sends_topic_aliases(b: &dyn BrokerAdapter, c: &dyn ClientAdapter) -> Outcome {
    let mut cfg = config();
    cfg.limits.topic_alias_maximum = 2;
    let cx = Ctx::start(b, c, cfg)?;
    let mut s = cx.client(options("s", V311))?;
    s.subscribe("al/#", QoS::AtLeastOnce)?;
    let mut o = options("pub", V5);
    o.topic_alias_maximum_out = 8;
    let mut publisher = cx.client(o)?;
    let topics = ["al/a", "al/a", "al/b", "al/c", "al/b", "al/a", "al/c"];
    for (i, t) in topics.iter().enumerate() {
        publisher.send(t, i.to_string(), QoS::AtLeastOnce)?;
    }
    for (i, t) in topics.iter().enumerate() {
        s.expect_message(t, &i.to_string())?;
    }
    cx.finish()
}
