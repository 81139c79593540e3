//! 5.0 shared subscriptions `$share/{group}/{filter}` (spec 4.8.2): each message to exactly
//! one member of a group, groups independent of each other and of plain subscriptions.

use std::collections::BTreeMap;

use super::prelude::*;
use crate::harness::MARKER;

/// A member of `group` on `filter` (also subscribed to the marker topic).
fn member(cx: &Ctx<'_>, id: &str, group: &str, filter: &str) -> Result<Client, Failure> {
    let mut m = cx.client(options(id, V5))?;
    m.subscribe(&format!("$share/{group}/{filter}"), QoS::AtLeastOnce)?;
    m.subscribe(MARKER, QoS::AtLeastOnce)?;
    Ok(m)
}

/// What `client` received before the marker: payloads.
fn until_marker(client: &mut Client, most: usize) -> Result<Vec<String>, Failure> {
    let mut got = Vec::new();
    for _ in 0..=most {
        let p = client.expect_publish()?;
        if p.topic.as_str() == MARKER {
            return Ok(got);
        }
        got.push(String::from_utf8_lossy(&p.payload).into_owned());
    }
    fail!("more than {most} messages before the marker")
}

/// Publishes `n` messages `jobs/{i}` (payload `i`), then the marker.
fn publish_jobs(publisher: &mut Client, n: usize) -> Outcome {
    for i in 0..n {
        publisher.send(&format!("jobs/{i}"), i.to_string(), QoS::AtLeastOnce)?;
    }
    publisher.send(MARKER, "end", QoS::AtLeastOnce)
}

/// Counts how often each payload was received across `lists`.
fn counts(lists: &[&Vec<String>]) -> BTreeMap<String, usize> {
    let mut c = BTreeMap::new();
    for l in lists {
        for p in l.iter() {
            *c.entry(p.clone()).or_insert(0) += 1;
        }
    }
    c
}

const JOBS: usize = 20;

/// Each message matching a shared subscription goes to exactly one member of the group.
pub fn shared_subscription_gives_each_message_to_one_member(
    b: &dyn BrokerAdapter,
    c: &dyn ClientAdapter,
) -> Outcome {
    let cx = Ctx::start(b, c, config())?;
    let mut m1 = member(&cx, "m1", "g", "jobs/+")?;
    let mut m2 = member(&cx, "m2", "g", "jobs/+")?;
    let mut publisher = cx.client(options("pub", V5))?;
    publish_jobs(&mut publisher, JOBS)?;
    let got1 = until_marker(&mut m1, JOBS)?;
    let got2 = until_marker(&mut m2, JOBS)?;
    let seen = counts(&[&got1, &got2]);
    ensure_eq!(seen.len(), JOBS, "distinct messages received by the group");
    ensure!(
        seen.values().all(|n| *n == 1),
        "some messages went to both members: {seen:?}"
    );
    cx.finish()
}

/// Two groups and a plain subscription on the same topics: each group gets every message
/// once, and so does the plain subscriber.
pub fn shared_groups_and_plain_subscribers_each_get_every_message(
    b: &dyn BrokerAdapter,
    c: &dyn ClientAdapter,
) -> Outcome {
    let cx = Ctx::start(b, c, config())?;
    let mut g1 = member(&cx, "g1", "g", "jobs/#")?;
    let mut g2 = member(&cx, "g2", "g", "jobs/#")?;
    let mut h = member(&cx, "h", "h", "jobs/+")?;
    let mut plain = cx.client(options("plain", V311))?;
    plain.subscribe("jobs/+", QoS::AtLeastOnce)?;
    plain.subscribe(MARKER, QoS::AtLeastOnce)?;
    let mut publisher = cx.client(options("pub", V5))?;
    publish_jobs(&mut publisher, JOBS)?;
    let (a, b2) = (until_marker(&mut g1, JOBS)?, until_marker(&mut g2, JOBS)?);
    let group_g = counts(&[&a, &b2]);
    ensure!(
        group_g.len() == JOBS && group_g.values().all(|n| *n == 1),
        "group g: {group_g:?}"
    );
    let want: Vec<String> = (0..JOBS).map(|i| i.to_string()).collect();
    ensure_eq!(until_marker(&mut h, JOBS)?, want, "group h, alone");
    ensure_eq!(
        until_marker(&mut plain, JOBS)?,
        want,
        "the plain subscriber"
    );
    cx.finish()
}

/// When a member unsubscribes, the rest of the group gets every message.
pub fn remaining_member_gets_everything_after_one_leaves(
    b: &dyn BrokerAdapter,
    c: &dyn ClientAdapter,
) -> Outcome {
    let cx = Ctx::start(b, c, config())?;
    let mut stays = member(&cx, "stays", "g", "jobs/+")?;
    let mut leaves = member(&cx, "leaves", "g", "jobs/+")?;
    let codes = leaves.unsubscribe(&["$share/g/jobs/+"])?;
    ensure_eq!(codes, [ReasonCode::Success], "UNSUBACK");
    let mut publisher = cx.client(options("pub", V5))?;
    publish_jobs(&mut publisher, 10)?;
    let want: Vec<String> = (0..10).map(|i| i.to_string()).collect();
    ensure_eq!(until_marker(&mut stays, 10)?, want, "the remaining member");
    ensure_eq!(
        until_marker(&mut leaves, 10)?,
        Vec::<String>::new(),
        "the member that left"
    );
    cx.finish()
}

/// With shared subscriptions off, CONNACK says so and SUBACK refuses with 0x9E.
pub fn shared_subscriptions_off_is_0x9e(b: &dyn BrokerAdapter, c: &dyn ClientAdapter) -> Outcome {
    let cfg = BrokerConfig {
        shared_subscriptions: false,
        ..config()
    };
    let cx = Ctx::start(b, c, cfg)?;
    let (peer, ack) = cx.raw(raw::connect(V5, "raw"))?;
    ensure_eq!(
        ack.properties.shared_subscription_available,
        Some(false),
        "Shared Subscription Available"
    );
    peer.disconnect()?;
    let mut s = cx.client(options("s", V5))?;
    let codes = s.subscribe_with(
        vec![
            sub("$share/g/t", QoS::AtLeastOnce)?,
            sub("t", QoS::AtLeastOnce)?,
        ],
        SubscribeProperties::default(),
    )?;
    ensure_eq!(
        codes,
        [
            ReasonCode::SharedSubscriptionsNotSupported,
            ReasonCode::GrantedQoS1
        ],
        "SUBACK codes"
    );
    cx.finish()
}

/// No Local on a shared subscription is a protocol error [MQTT-3.8.3-4].
pub fn no_local_on_a_shared_subscription_is_a_protocol_error(
    b: &dyn BrokerAdapter,
    c: &dyn ClientAdapter,
) -> Outcome {
    let cx = Ctx::start(b, c, config())?;
    let mut peer = cx.raw_as(V5, "p")?;
    let mut body = vec![0, 1, 0];
    body.extend(raw::text("$share/g/t"));
    // QoS 0 with No Local (bit 2).
    body.push(0x04);
    peer.send_bytes(&raw::frame(0x82, &body))?;
    peer.expect_disconnect(ReasonCode::ProtocolError)?;
    cx.finish()
}
