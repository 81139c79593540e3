//! Deterministic simulation of the client state machine, through the public API only.
//!
//! Two harnesses, both on a virtual clock and without sockets: [`peer`] scripts the server
//! by hand (encode the server's packets, decode what the client sent, as h2's mock peer
//! does), and [`net`] wires clients to the real [`mqtt_core::broker::Broker`] in memory.
//! Both drain every output after every input, as the sans-IO contract asks. The other
//! modules are scenarios grouped by behaviour.

mod net;
mod peer;

mod auth;
mod backoff;
mod broker;
mod connect;
mod disconnect;
mod flow;
mod keepalive;
mod persist;
mod publish;
mod receive;
mod session;
mod subscribe;

use bytes::Bytes;
use mqtt_core::packet::{Ack, SubscriptionOptions};
use mqtt_core::topic::{TopicFilter, TopicName};
use mqtt_core::{PacketId, Publish, QoS};

/// A packet id from a literal.
pub(crate) fn pid(id: u16) -> PacketId {
    PacketId::new(id).expect("test ids are non-zero")
}

/// A topic name from a literal.
pub(crate) fn topic(s: &str) -> TopicName {
    TopicName::new(s).expect("test topics are valid")
}

/// A topic filter from a literal.
pub(crate) fn filter(s: &str) -> TopicFilter {
    TopicFilter::new(s).expect("test filters are valid")
}

/// A subscription at `qos`.
pub(crate) fn sub(f: &str, qos: QoS) -> mqtt_core::packet::Subscription {
    mqtt_core::packet::Subscription {
        filter: filter(f),
        options: SubscriptionOptions {
            qos,
            ..Default::default()
        },
    }
}

/// A PUBLISH as a server sends it.
pub(crate) fn server_publish(t: &str, payload: &str, qos: QoS, id: Option<u16>) -> Publish {
    let mut p = Publish::new(topic(t), Bytes::copy_from_slice(payload.as_bytes()));
    p.qos = qos;
    p.packet_id = id.map(pid);
    p
}

/// An acknowledgement with a reason code.
pub(crate) fn ack(id: u16, code: mqtt_core::ReasonCode) -> Ack {
    let mut a = Ack::new(pid(id));
    a.reason_code = code;
    a
}
