//! Generators of valid packets from unstructured bytes, for the fuzz targets and the property
//! tests (which feed them proptest's bytes, so both share one generator). Not public API:
//! behind the private `_arbitrary` feature.

use core::num::{NonZeroU16, NonZeroU32};

use arbitrary::{Result, Unstructured};
use bytes::Bytes;
use bytestring::ByteString;

use crate::codec::reason_code_allowed;
use crate::packet::*;
use crate::topic::{TopicFilter, TopicName};

/// A protocol version and a packet that is valid in it.
pub fn packet(u: &mut Unstructured<'_>) -> Result<(ProtocolVersion, Packet)> {
    let version = *u.choose(&[
        ProtocolVersion::V31,
        ProtocolVersion::V311,
        ProtocolVersion::V5,
    ])?;
    Ok((version, packet_for(u, version)?))
}

/// A packet that is valid in `version`, of any type that version has.
pub fn packet_for(u: &mut Unstructured<'_>, v: ProtocolVersion) -> Result<Packet> {
    let types = if v.is_v5() { 15 } else { 14 };
    let p5 = v.is_v5();
    Ok(match u.choose_index(types)? + 1 {
        1 => Packet::Connect(Box::new(connect(u, v)?)),
        2 => {
            let reason_code = reason(u, v, PacketType::ConnAck)?;
            Packet::ConnAck(Box::new(ConnAck {
                // 3.1 has no Session Present bit, and a refusal never has a session.
                session_present: v != ProtocolVersion::V31
                    && !reason_code.is_error()
                    && u.arbitrary()?,
                reason_code,
                properties: if p5 {
                    connack_props(u)?
                } else {
                    Default::default()
                },
            }))
        }
        3 => Packet::Publish(publish(u, v)?),
        4 => Packet::PubAck(ack(u, v, PacketType::PubAck)?),
        5 => Packet::PubRec(ack(u, v, PacketType::PubRec)?),
        6 => Packet::PubRel(ack(u, v, PacketType::PubRel)?),
        7 => Packet::PubComp(ack(u, v, PacketType::PubComp)?),
        8 => Packet::Subscribe(subscribe(u, v)?),
        9 => Packet::SubAck(SubAck {
            packet_id: packet_id(u)?,
            reason_codes: vec_of(u, 1, 4, |u| reason(u, v, PacketType::SubAck))?,
            properties: if p5 {
                ack_props(u)?
            } else {
                Default::default()
            },
        }),
        10 => Packet::Unsubscribe(Unsubscribe {
            packet_id: packet_id(u)?,
            filters: vec_of(u, 1, 4, |u| filter(u, v))?,
            properties: UnsubscribeProperties {
                user_properties: if p5 { users(u)? } else { Vec::new() },
            },
        }),
        11 => Packet::UnsubAck(UnsubAck {
            packet_id: packet_id(u)?,
            reason_codes: if p5 {
                vec_of(u, 1, 4, |u| reason(u, v, PacketType::UnsubAck))?
            } else {
                Vec::new()
            },
            properties: if p5 {
                ack_props(u)?
            } else {
                Default::default()
            },
        }),
        12 => Packet::PingReq,
        13 => Packet::PingResp,
        14 => Packet::Disconnect(if p5 {
            Box::new(Disconnect {
                reason_code: reason(u, v, PacketType::Disconnect)?,
                properties: DisconnectProperties {
                    session_expiry_interval: u.arbitrary()?,
                    reason_string: opt(u, text)?,
                    user_properties: users(u)?,
                    server_reference: opt(u, text)?,
                },
            })
        } else {
            Box::default()
        }),
        _ => Packet::Auth(Box::new(Auth {
            reason_code: reason(u, v, PacketType::Auth)?,
            properties: AuthProperties {
                authentication_method: opt(u, text)?,
                authentication_data: opt(u, binary)?,
                reason_string: opt(u, text)?,
                user_properties: users(u)?,
            },
        })),
    })
}

fn connect(u: &mut Unstructured<'_>, v: ProtocolVersion) -> Result<Connect> {
    let p5 = v.is_v5();
    let username = opt(u, text)?;
    // Before 5.0 a password needs a user name [MQTT-3.1.2-22].
    let password = if p5 || username.is_some() {
        opt(u, binary)?
    } else {
        None
    };
    let will = if u.arbitrary()? {
        Some(Will {
            topic: topic_name(u)?,
            payload: binary(u)?,
            qos: qos(u)?,
            retain: u.arbitrary()?,
            properties: if p5 {
                WillProperties {
                    will_delay_interval: u.arbitrary()?,
                    payload_format_indicator: u.arbitrary()?,
                    message_expiry_interval: u.arbitrary()?,
                    content_type: opt(u, text)?,
                    response_topic: opt(u, topic_name)?,
                    correlation_data: opt(u, binary)?,
                    user_properties: users(u)?,
                }
            } else {
                Default::default()
            },
        })
    } else {
        None
    };
    Ok(Connect {
        protocol_version: v,
        clean_start: u.arbitrary()?,
        keep_alive: u.arbitrary()?,
        client_id: text(u)?,
        will,
        username,
        password,
        properties: if p5 {
            ConnectProperties {
                session_expiry_interval: u.arbitrary()?,
                receive_maximum: opt(u, |u| Ok(NonZeroU16::new(u.arbitrary::<u16>()?.max(1))))?
                    .flatten(),
                maximum_packet_size: opt(u, |u| Ok(NonZeroU32::new(u.arbitrary::<u32>()?.max(1))))?
                    .flatten(),
                topic_alias_maximum: u.arbitrary()?,
                request_response_information: u.arbitrary()?,
                request_problem_information: u.arbitrary()?,
                authentication_method: opt(u, text)?,
                authentication_data: opt(u, binary)?,
                user_properties: users(u)?,
            }
        } else {
            Default::default()
        },
    })
}

fn connack_props(u: &mut Unstructured<'_>) -> Result<ConnAckProperties> {
    Ok(ConnAckProperties {
        session_expiry_interval: u.arbitrary()?,
        receive_maximum: opt(u, |u| Ok(NonZeroU16::new(u.arbitrary::<u16>()?.max(1))))?.flatten(),
        maximum_qos: opt(u, |u| {
            Ok(if u.arbitrary()? {
                QoS::AtLeastOnce
            } else {
                QoS::AtMostOnce
            })
        })?,
        retain_available: u.arbitrary()?,
        maximum_packet_size: opt(u, |u| Ok(NonZeroU32::new(u.arbitrary::<u32>()?.max(1))))?
            .flatten(),
        assigned_client_identifier: opt(u, text)?,
        topic_alias_maximum: u.arbitrary()?,
        reason_string: opt(u, text)?,
        user_properties: users(u)?,
        wildcard_subscription_available: u.arbitrary()?,
        subscription_identifiers_available: u.arbitrary()?,
        shared_subscription_available: u.arbitrary()?,
        server_keep_alive: u.arbitrary()?,
        response_information: opt(u, text)?,
        server_reference: opt(u, text)?,
        authentication_method: opt(u, text)?,
        authentication_data: opt(u, binary)?,
    })
}

/// A PUBLISH valid in `v`.
pub fn publish(u: &mut Unstructured<'_>, v: ProtocolVersion) -> Result<Publish> {
    let qos = qos(u)?;
    let packet_id = if qos == QoS::AtMostOnce {
        None
    } else {
        Some(packet_id(u)?)
    };
    let properties = if v.is_v5() {
        PublishProperties {
            payload_format_indicator: u.arbitrary()?,
            message_expiry_interval: u.arbitrary()?,
            topic_alias: opt(u, |u| Ok(NonZeroU16::new(u.arbitrary::<u16>()?.max(1))))?.flatten(),
            response_topic: opt(u, topic_name)?,
            correlation_data: opt(u, binary)?,
            user_properties: users(u)?,
            subscription_identifiers: vec_of(u, 0, 3, subscription_id)?,
            content_type: opt(u, text)?,
        }
    } else {
        Default::default()
    };
    // A zero-length topic name stands for an alias in 5.0.
    let topic = if properties.topic_alias.is_some() && u.arbitrary()? {
        TopicName::empty()
    } else {
        topic_name(u)?
    };
    Ok(Publish {
        dup: qos != QoS::AtMostOnce && u.arbitrary()?,
        qos,
        retain: u.arbitrary()?,
        topic,
        packet_id,
        properties: properties.into(),
        payload: binary(u)?,
    })
}

fn ack(u: &mut Unstructured<'_>, v: ProtocolVersion, kind: PacketType) -> Result<Ack> {
    Ok(Ack {
        packet_id: packet_id(u)?,
        reason_code: reason(u, v, kind)?,
        properties: if v.is_v5() {
            ack_props(u)?
        } else {
            Default::default()
        },
    })
}

fn ack_props(u: &mut Unstructured<'_>) -> Result<AckProperties> {
    Ok(AckProperties {
        reason_string: opt(u, text)?,
        user_properties: users(u)?,
    })
}

fn subscribe(u: &mut Unstructured<'_>, v: ProtocolVersion) -> Result<Subscribe> {
    let p5 = v.is_v5();
    Ok(Subscribe {
        packet_id: packet_id(u)?,
        subscriptions: vec_of(u, 1, 4, |u| {
            let filter = filter(u, v)?;
            let options = if p5 {
                SubscriptionOptions {
                    qos: qos(u)?,
                    // [MQTT-3.8.3-4] never on a shared subscription.
                    no_local: filter.shared().is_none() && u.arbitrary()?,
                    retain_as_published: u.arbitrary()?,
                    retain_handling: *u.choose(&[
                        RetainHandling::SendAtSubscribe,
                        RetainHandling::SendIfNew,
                        RetainHandling::DoNotSend,
                    ])?,
                }
            } else {
                SubscriptionOptions {
                    qos: qos(u)?,
                    ..Default::default()
                }
            };
            Ok(Subscription { filter, options })
        })?,
        properties: if p5 {
            SubscribeProperties {
                subscription_identifier: opt(u, subscription_id)?,
                user_properties: users(u)?,
            }
        } else {
            Default::default()
        },
    })
}

fn reason(u: &mut Unstructured<'_>, v: ProtocolVersion, kind: PacketType) -> Result<ReasonCode> {
    let allowed: Vec<ReasonCode> = ReasonCode::ALL
        .into_iter()
        .filter(|c| {
            if v.is_v5() {
                reason_code_allowed(kind, *c)
            } else {
                v3_codes(kind).contains(c)
            }
        })
        .collect();
    Ok(*u.choose(&allowed)?)
}

/// The reason codes that survive a trip through a 3.x packet.
fn v3_codes(kind: PacketType) -> &'static [ReasonCode] {
    use ReasonCode::*;
    match kind {
        PacketType::ConnAck => &[
            Success,
            UnsupportedProtocolVersion,
            ClientIdentifierNotValid,
            ServerUnavailable,
            BadUserNameOrPassword,
            NotAuthorized,
        ],
        PacketType::SubAck => &[Success, GrantedQoS1, GrantedQoS2, UnspecifiedError],
        _ => &[Success],
    }
}

fn qos(u: &mut Unstructured<'_>) -> Result<QoS> {
    Ok(*u.choose(&[QoS::AtMostOnce, QoS::AtLeastOnce, QoS::ExactlyOnce])?)
}

fn packet_id(u: &mut Unstructured<'_>) -> Result<PacketId> {
    PacketId::new(u.int_in_range(1..=u16::MAX)?).ok_or(arbitrary::Error::IncorrectFormat)
}

fn subscription_id(u: &mut Unstructured<'_>) -> Result<NonZeroU32> {
    let id = u.int_in_range(1..=268_435_455u32)?;
    NonZeroU32::new(id).ok_or(arbitrary::Error::IncorrectFormat)
}

/// A UTF-8 string without U+0000, usually short.
fn text(u: &mut Unstructured<'_>) -> Result<ByteString> {
    let s: String = u.arbitrary()?;
    let s: String = s.chars().filter(|c| *c != '\0').take(40).collect();
    Ok(ByteString::from(s))
}

fn binary(u: &mut Unstructured<'_>) -> Result<Bytes> {
    let len = u.int_in_range(0..=64usize)?;
    Ok(Bytes::copy_from_slice(u.bytes(len.min(u.len()))?))
}

fn level(u: &mut Unstructured<'_>) -> Result<String> {
    Ok(match u.choose_index(5)? {
        0 => "a".into(),
        1 => "sensor".into(),
        2 => String::new(),
        3 => "ünï €".into(),
        _ => text(u)?
            .chars()
            .filter(|c| !matches!(c, '/' | '+' | '#'))
            .collect(),
    })
}

fn topic_name(u: &mut Unstructured<'_>) -> Result<TopicName> {
    let levels = vec_of(u, 1, 4, level)?;
    let name = levels.join("/");
    TopicName::new(name)
        .or_else(|_| TopicName::new("t"))
        .map_err(|_| arbitrary::Error::IncorrectFormat)
}

fn filter(u: &mut Unstructured<'_>, v: ProtocolVersion) -> Result<TopicFilter> {
    let mut levels = vec_of(u, 1, 4, |u| {
        Ok(if u.ratio(1, 4)? {
            "+".to_string()
        } else {
            level(u)?
        })
    })?;
    if u.ratio(1, 4)? {
        levels.push("#".into());
    }
    let mut f = levels.join("/");
    if v.is_v5() && u.ratio(1, 5)? {
        f = format!("$share/group{}/{f}", u.int_in_range(0..=9u8)?);
    }
    TopicFilter::new(f)
        .or_else(|_| TopicFilter::new("#"))
        .map_err(|_| arbitrary::Error::IncorrectFormat)
}

fn users(u: &mut Unstructured<'_>) -> Result<Vec<UserProperty>> {
    vec_of(u, 0, 3, |u| {
        Ok(UserProperty {
            name: text(u)?,
            value: text(u)?,
        })
    })
}

fn opt<T>(
    u: &mut Unstructured<'_>,
    f: impl FnOnce(&mut Unstructured<'_>) -> Result<T>,
) -> Result<Option<T>> {
    if u.arbitrary()? {
        Ok(Some(f(u)?))
    } else {
        Ok(None)
    }
}

fn vec_of<T>(
    u: &mut Unstructured<'_>,
    min: usize,
    max: usize,
    mut f: impl FnMut(&mut Unstructured<'_>) -> Result<T>,
) -> Result<Vec<T>> {
    let n = u.int_in_range(min..=max)?;
    (0..n).map(|_| f(u)).collect()
}
