//! 5.0 enhanced authentication: AUTH exchanges as events and commands.

use bytes::Bytes;
use mqtt_core::client::{ClientEvent, ClientOptions, CommandError, DisconnectReason};
use mqtt_core::packet::{Auth, AuthProperties, ConnAck, ConnAckProperties};
use mqtt_core::{Packet, ProtocolVersion, ReasonCode};

use crate::peer::Scripted;

fn scram_options() -> ClientOptions {
    let mut o = ClientOptions::new("c");
    o.connect_properties.authentication_method = Some("SCRAM-SHA-1".into());
    o.connect_properties.authentication_data = Some(Bytes::from_static(b"client-first"));
    o
}

fn auth(code: ReasonCode, data: &'static [u8]) -> Packet {
    Packet::Auth(Box::new(Auth {
        reason_code: code,
        properties: AuthProperties {
            authentication_method: Some("SCRAM-SHA-1".into()),
            authentication_data: Some(Bytes::from_static(data)),
            ..Default::default()
        },
    }))
}

#[test]
fn connect_auth_exchange_then_reauthentication() {
    let mut s = Scripted::new(scram_options());
    let connect = s.open();
    assert_eq!(
        connect.properties.authentication_method.as_deref(),
        Some("SCRAM-SHA-1")
    );
    assert_eq!(
        connect.properties.authentication_data.as_deref(),
        Some(&b"client-first"[..])
    );

    // The server's challenge is an event; the answer a command.
    s.send(auth(ReasonCode::ContinueAuthentication, b"server-first"));
    let events = s.events();
    assert_eq!(
        events,
        vec![ClientEvent::Auth {
            reason_code: ReasonCode::ContinueAuthentication,
            properties: AuthProperties {
                authentication_method: Some("SCRAM-SHA-1".into()),
                authentication_data: Some(Bytes::from_static(b"server-first")),
                ..Default::default()
            }
        }]
    );
    s.client
        .auth(
            s.now,
            AuthProperties {
                authentication_data: Some(Bytes::from_static(b"client-final")),
                ..Default::default()
            },
            ReasonCode::ContinueAuthentication,
        )
        .unwrap();
    s.drain();
    // The method is filled in [MQTT-4.12.0-5].
    assert_eq!(
        s.sent(),
        vec![auth(ReasonCode::ContinueAuthentication, b"client-final")]
    );
    // Re-authentication needs a connection first.
    assert_eq!(
        s.client
            .auth(s.now, AuthProperties::default(), ReasonCode::ReAuthenticate),
        Err(CommandError::ReasonCodeNotAllowed(
            ReasonCode::ReAuthenticate
        ))
    );

    s.send(Packet::ConnAck(Box::new(ConnAck {
        session_present: false,
        reason_code: ReasonCode::Success,
        properties: ConnAckProperties {
            authentication_method: Some("SCRAM-SHA-1".into()),
            authentication_data: Some(Bytes::from_static(b"server-final")),
            ..Default::default()
        },
    })));
    assert!(matches!(
        s.events().as_slice(),
        [ClientEvent::Connected { connack, .. }]
            if connack.properties.authentication_data.as_deref() == Some(&b"server-final"[..])
    ));

    // Re-authentication: 0x19 from the client, then 0x00 from the server.
    s.client
        .auth(s.now, AuthProperties::default(), ReasonCode::ReAuthenticate)
        .unwrap();
    s.drain();
    assert!(matches!(s.sent().as_slice(), [Packet::Auth(a)]
        if a.reason_code == ReasonCode::ReAuthenticate
            && a.properties.authentication_method.as_deref() == Some("SCRAM-SHA-1")));
    s.send(auth(ReasonCode::Success, b"ok"));
    assert!(matches!(
        s.events().as_slice(),
        [ClientEvent::Auth {
            reason_code: ReasonCode::Success,
            ..
        }]
    ));
    assert!(s.client.is_connected());
}

#[test]
fn auth_commands_need_a_method_and_5_0() {
    let mut s = Scripted::connected(ClientOptions::new("c"));
    assert_eq!(
        s.client
            .auth(s.now, AuthProperties::default(), ReasonCode::ReAuthenticate),
        Err(CommandError::NoAuthenticationMethod)
    );
    let mut o = scram_options();
    o.version = ProtocolVersion::V311;
    let mut s = Scripted::connected(o);
    assert_eq!(
        s.client
            .auth(s.now, AuthProperties::default(), ReasonCode::ReAuthenticate),
        Err(CommandError::NotV5)
    );
}

#[test]
fn auth_from_a_server_not_asked_is_a_protocol_error() {
    let mut s = Scripted::connected(ClientOptions::new("c"));
    s.send(auth(ReasonCode::ContinueAuthentication, b"?"));
    assert_eq!(
        s.events(),
        vec![ClientEvent::Disconnected {
            reason: DisconnectReason::ProtocolError(ReasonCode::ProtocolError)
        }]
    );
}

#[test]
fn connack_with_another_method_is_a_protocol_error() {
    let mut s = Scripted::new(scram_options());
    s.open();
    s.send(Packet::ConnAck(Box::new(ConnAck {
        session_present: false,
        reason_code: ReasonCode::Success,
        properties: ConnAckProperties::default(),
    })));
    assert_eq!(
        s.events(),
        vec![ClientEvent::Disconnected {
            reason: DisconnectReason::ProtocolError(ReasonCode::ProtocolError)
        }]
    );
}
