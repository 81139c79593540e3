//! CONNECT in each version, and what the client makes of CONNACK.

use core::num::{NonZeroU16, NonZeroU32};
use std::time::Duration;

use bytes::Bytes;
use mqtt_core::client::{ClientEvent, ClientOptions, CommandError, DisconnectReason};
use mqtt_core::packet::{
    ConnAck, ConnAckProperties, ConnectProperties, UserProperty, Will, WillProperties,
};
use mqtt_core::{Packet, ProtocolVersion, QoS, ReasonCode};

use crate::peer::Scripted;
use crate::topic;

fn will() -> Will {
    Will {
        topic: topic("status/dev-1"),
        payload: Bytes::from_static(b"offline"),
        qos: QoS::AtLeastOnce,
        retain: true,
        properties: WillProperties {
            will_delay_interval: Some(30),
            payload_format_indicator: Some(true),
            message_expiry_interval: Some(600),
            content_type: Some("text/plain".into()),
            response_topic: Some(topic("status/replies")),
            correlation_data: Some(Bytes::from_static(b"\x01\x02")),
            user_properties: vec![UserProperty::new("k", "v")],
        },
    }
}

fn full_options(version: ProtocolVersion) -> ClientOptions {
    let mut o = ClientOptions::new("dev-1");
    o.version = version;
    o.clean_start = false;
    o.keep_alive = Duration::from_secs(30);
    o.username = Some("alice".into());
    o.password = Some(Bytes::from_static(b"s3cret"));
    o.will = Some(will());
    o.connect_properties = ConnectProperties {
        session_expiry_interval: Some(3600),
        receive_maximum: NonZeroU16::new(20),
        maximum_packet_size: NonZeroU32::new(4096),
        topic_alias_maximum: Some(8),
        request_response_information: Some(true),
        request_problem_information: Some(false),
        authentication_method: None,
        authentication_data: None,
        user_properties: vec![UserProperty::new("app", "sim")],
    };
    o
}

#[test]
fn v5_connect_carries_will_credentials_and_properties() {
    let options = full_options(ProtocolVersion::V5);
    let mut s = Scripted::new(options.clone());
    let c = s.open();
    assert_eq!(c.protocol_version, ProtocolVersion::V5);
    assert!(!c.clean_start);
    assert_eq!(c.keep_alive, 30);
    assert_eq!(c.client_id, "dev-1");
    assert_eq!(c.username.as_deref(), Some("alice"));
    assert_eq!(c.password.as_deref(), Some(&b"s3cret"[..]));
    assert_eq!(c.will, Some(will()));
    assert_eq!(c.properties, options.connect_properties);
}

#[test]
fn v311_and_v31_connect_are_coded_in_their_version() {
    for (version, name, level) in [
        (ProtocolVersion::V311, &b"MQTT"[..], 4),
        (ProtocolVersion::V31, &b"MQIsdp"[..], 3),
    ] {
        let mut s = Scripted::new(full_options(version));
        s.client.connect(s.now).unwrap();
        let mut raw = bytes::BytesMut::new();
        s.client.poll_transmit(s.now, &mut raw);
        // Protocol name and level right after the fixed header.
        let name_at = 2 + 2;
        assert_eq!(&raw[name_at..name_at + name.len()], name, "{version}");
        assert_eq!(raw[name_at + name.len()], level, "{version}");
        let c = match mqtt_core::codec::decode(&mut raw, version, &Default::default()) {
            Ok(Some(Packet::Connect(c))) => c,
            other => panic!("{other:?}"),
        };
        assert_eq!(c.protocol_version, version);
        assert_eq!(c.username.as_deref(), Some("alice"));
        assert_eq!(c.password.as_deref(), Some(&b"s3cret"[..]));
        // The will is there without its 5.0 properties, and so are no CONNECT properties.
        let mut expected = will();
        expected.properties = WillProperties::default();
        assert_eq!(c.will, Some(expected));
        assert_eq!(c.properties, ConnectProperties::default());
    }
}

#[test]
fn connack_success_reports_connected_with_the_connack() {
    let mut s = Scripted::new(ClientOptions::new("c"));
    s.open();
    let props = ConnAckProperties {
        assigned_client_identifier: None,
        receive_maximum: NonZeroU16::new(5),
        ..Default::default()
    };
    let connack = ConnAck {
        session_present: false,
        reason_code: ReasonCode::Success,
        properties: props,
    };
    s.send(Packet::ConnAck(Box::new(connack.clone())));
    assert_eq!(
        s.events(),
        vec![ClientEvent::Connected {
            session_present: false,
            connack
        }]
    );
    assert!(s.client.is_connected());
    assert_eq!(s.client.connect(s.now), Err(CommandError::AlreadyConnected));
}

#[test]
fn refused_v5_connack_surfaces_the_server_reference() {
    let mut s = Scripted::new(ClientOptions::new("c"));
    s.open();
    s.send(Packet::ConnAck(Box::new(ConnAck {
        session_present: false,
        reason_code: ReasonCode::UseAnotherServer,
        properties: ConnAckProperties {
            server_reference: Some("other.example:1883".into()),
            ..Default::default()
        },
    })));
    assert_eq!(
        s.events(),
        vec![ClientEvent::ConnectionRefused {
            reason_code: ReasonCode::UseAnotherServer,
            server_reference: Some("other.example:1883".into()),
        }]
    );
    assert!(!s.client.is_connected());
    assert_eq!(s.client.poll_timeout(), None);
    // A new transport may try again.
    assert!(matches!(s.open(), c if c.client_id == "c"));
}

#[test]
fn refused_v311_connack_maps_the_return_code() {
    let mut o = ClientOptions::new("c");
    o.version = ProtocolVersion::V311;
    let mut s = Scripted::new(o);
    s.open();
    s.send_bytes(b"\x20\x02\x00\x05"); // return code 5: not authorized
    assert_eq!(
        s.events(),
        vec![ClientEvent::ConnectionRefused {
            reason_code: ReasonCode::NotAuthorized,
            server_reference: None,
        }]
    );
}

#[test]
fn assigned_client_id_is_kept_for_reconnects() {
    let mut o = ClientOptions::new("");
    o.connect_properties.session_expiry_interval = Some(60);
    let mut s = Scripted::connected_with(
        o,
        ConnAckProperties {
            assigned_client_identifier: Some("auto-42".into()),
            ..Default::default()
        },
    );
    assert_eq!(s.client.client_id(), "auto-42");
    s.lose_link();
    let c = s.open();
    assert_eq!(c.client_id, "auto-42");
    // Once a session exists, a 5.0 reconnect asks to resume it.
    assert!(!c.clean_start);
}

#[test]
fn v311_reconnects_keep_the_clean_session_flag() {
    let mut o = ClientOptions::new("c");
    o.version = ProtocolVersion::V311;
    let mut s = Scripted::connected(o);
    s.lose_link();
    assert!(s.open().clean_start);
}

#[test]
fn no_connack_in_time_gives_the_connection_up() {
    let mut o = ClientOptions::new("c");
    o.connect_timeout = Duration::from_secs(10);
    let mut s = Scripted::new(o);
    s.open();
    s.advance_secs(9);
    assert_eq!(s.events(), vec![]);
    s.advance_secs(1);
    assert_eq!(
        s.events(),
        vec![ClientEvent::Disconnected {
            reason: DisconnectReason::ConnectTimeout
        }]
    );
    assert_eq!(s.elapsed(), Duration::from_secs(10));
}

#[test]
fn packets_before_connack_are_a_protocol_error() {
    let mut s = Scripted::new(ClientOptions::new("c"));
    s.open();
    s.send(Packet::PingResp);
    assert_eq!(
        s.events(),
        vec![ClientEvent::Disconnected {
            reason: DisconnectReason::ProtocolError(ReasonCode::ProtocolError)
        }]
    );
    match s.sent().as_slice() {
        [Packet::Disconnect(d)] => assert_eq!(d.reason_code, ReasonCode::ProtocolError),
        other => panic!("{other:?}"),
    }
}

#[test]
fn session_present_after_clean_start_is_refused() {
    let mut s = Scripted::new(ClientOptions::new("c"));
    assert!(s.open().clean_start);
    s.send_bytes(b"\x20\x03\x01\x00\x00"); // v5 CONNACK, session present
    assert_eq!(
        s.events(),
        vec![ClientEvent::Disconnected {
            reason: DisconnectReason::ProtocolError(ReasonCode::ProtocolError)
        }]
    );
}
