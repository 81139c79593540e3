//! SUBSCRIBE and UNSUBSCRIBE, their reason codes, and the subscriptions the client records.

use mqtt_core::client::{ClientEvent, ClientOptions, DisconnectReason, RequestError};
use mqtt_core::packet::{
    AckProperties, SubAck, SubscribeProperties, UnsubAck, UnsubscribeProperties,
};
use mqtt_core::{Packet, ProtocolVersion, QoS, ReasonCode};

use crate::peer::Scripted;
use crate::{filter, pid, sub};

fn suback(id: u16, codes: Vec<ReasonCode>) -> Packet {
    Packet::SubAck(SubAck {
        packet_id: pid(id),
        reason_codes: codes,
        properties: AckProperties::default(),
    })
}

fn unsuback(id: u16, codes: Vec<ReasonCode>) -> Packet {
    Packet::UnsubAck(UnsubAck {
        packet_id: pid(id),
        reason_codes: codes,
        properties: AckProperties::default(),
    })
}

#[test]
fn subscribe_reports_each_reason_code_and_records_the_granted() {
    let mut s = Scripted::connected(ClientOptions::new("c"));
    let id = s
        .client
        .subscribe(
            s.now,
            vec![sub("a/+", QoS::ExactlyOnce), sub("b/#", QoS::AtLeastOnce)],
            SubscribeProperties::default(),
        )
        .unwrap();
    s.drain();
    match s.sent().as_slice() {
        [Packet::Subscribe(sp)] => {
            assert_eq!(sp.packet_id, pid(1));
            assert_eq!(
                sp.subscriptions,
                vec![sub("a/+", QoS::ExactlyOnce), sub("b/#", QoS::AtLeastOnce)]
            );
        }
        other => panic!("{other:?}"),
    }
    s.send(suback(
        1,
        vec![ReasonCode::GrantedQoS1, ReasonCode::NotAuthorized],
    ));
    assert_eq!(
        s.events(),
        vec![ClientEvent::Subscribed {
            id,
            reason_codes: vec![ReasonCode::GrantedQoS1, ReasonCode::NotAuthorized]
        }]
    );
    let subs: Vec<_> = s
        .client
        .subscriptions()
        .map(|(f, o)| (f.as_str().to_owned(), o.qos))
        .collect();
    assert_eq!(subs, vec![("a/+".to_owned(), QoS::AtLeastOnce)]);
}

#[test]
fn unsubscribe_reports_each_reason_code() {
    let mut s = Scripted::connected(ClientOptions::new("c"));
    s.client
        .subscribe(s.now, vec![sub("a", QoS::AtMostOnce)], Default::default())
        .unwrap();
    s.drain();
    s.sent();
    s.send(suback(1, vec![ReasonCode::Success]));
    s.events();
    let id = s
        .client
        .unsubscribe(
            s.now,
            vec![filter("a"), filter("zzz")],
            UnsubscribeProperties::default(),
        )
        .unwrap();
    s.drain();
    assert!(
        matches!(s.sent().as_slice(), [Packet::Unsubscribe(u)] if u.packet_id == pid(2) && u.filters.len() == 2)
    );
    s.send(unsuback(
        2,
        vec![ReasonCode::Success, ReasonCode::NoSubscriptionExisted],
    ));
    assert_eq!(
        s.events(),
        vec![ClientEvent::Unsubscribed {
            id,
            reason_codes: vec![ReasonCode::Success, ReasonCode::NoSubscriptionExisted]
        }]
    );
    assert_eq!(s.client.subscriptions().count(), 0);
}

#[test]
fn v311_unsuback_reads_success_for_every_filter() {
    let mut o = ClientOptions::new("c");
    o.version = ProtocolVersion::V311;
    let mut s = Scripted::connected(o);
    let id = s
        .client
        .unsubscribe(s.now, vec![filter("a"), filter("b")], Default::default())
        .unwrap();
    s.drain();
    s.sent();
    s.send_bytes(b"\xb0\x02\x00\x01");
    assert_eq!(
        s.events(),
        vec![ClientEvent::Unsubscribed {
            id,
            reason_codes: vec![ReasonCode::Success; 2]
        }]
    );
}

#[test]
fn v311_suback_failure_is_0x80() {
    let mut o = ClientOptions::new("c");
    o.version = ProtocolVersion::V311;
    let mut s = Scripted::connected(o);
    let id = s
        .client
        .subscribe(
            s.now,
            vec![sub("a", QoS::ExactlyOnce), sub("b", QoS::AtLeastOnce)],
            Default::default(),
        )
        .unwrap();
    s.drain();
    s.sent();
    s.send_bytes(b"\x90\x04\x00\x01\x02\x80");
    assert_eq!(
        s.events(),
        vec![ClientEvent::Subscribed {
            id,
            reason_codes: vec![ReasonCode::GrantedQoS2, ReasonCode::UnspecifiedError]
        }]
    );
}

#[test]
fn suback_with_the_wrong_number_of_codes_is_a_protocol_error() {
    let mut s = Scripted::connected(ClientOptions::new("c"));
    s.client
        .subscribe(
            s.now,
            vec![sub("a", QoS::AtMostOnce), sub("b", QoS::AtMostOnce)],
            Default::default(),
        )
        .unwrap();
    s.drain();
    s.sent();
    s.send(suback(1, vec![ReasonCode::Success]));
    assert_eq!(
        s.events(),
        vec![ClientEvent::Disconnected {
            reason: DisconnectReason::ProtocolError(ReasonCode::ProtocolError)
        }]
    );
    assert!(
        matches!(s.sent().as_slice(), [Packet::Disconnect(d)] if d.reason_code == ReasonCode::ProtocolError)
    );
}

#[test]
fn requests_wait_for_a_connection_and_are_bounded() {
    let mut o = ClientOptions::new("c");
    o.max_requests = 2;
    let mut s = Scripted::new(o);
    let now = s.now;
    assert_eq!(
        s.client.subscribe(now, vec![], Default::default()),
        Err(RequestError::Empty)
    );
    let a = s
        .client
        .subscribe(now, vec![sub("a", QoS::AtMostOnce)], Default::default())
        .unwrap();
    s.client
        .unsubscribe(now, vec![filter("b")], Default::default())
        .unwrap();
    assert_eq!(
        s.client
            .subscribe(now, vec![sub("c", QoS::AtMostOnce)], Default::default()),
        Err(RequestError::TooManyRequests)
    );
    s.drain();
    assert_eq!(s.sent(), vec![]);
    s.open();
    s.send_bytes(b"\x20\x03\x00\x00\x00");
    s.events();
    let sent = s.sent();
    assert!(
        matches!(
            sent.as_slice(),
            [Packet::Subscribe(_), Packet::Unsubscribe(_)]
        ),
        "{sent:?}"
    );
    // A request unanswered when the link drops is sent again on the next connection.
    s.send(unsuback(2, vec![ReasonCode::Success]));
    s.events();
    s.lose_link();
    s.events();
    s.open();
    s.send_bytes(b"\x20\x03\x00\x00\x00");
    assert!(matches!(s.sent().as_slice(), [Packet::Subscribe(p)] if p.packet_id == pid(1)));
    s.send(suback(1, vec![ReasonCode::Success]));
    let events = s.events();
    assert_eq!(
        events.last(),
        Some(&ClientEvent::Subscribed {
            id: a,
            reason_codes: vec![ReasonCode::Success]
        })
    );
}
