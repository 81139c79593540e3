//! CONNECT and CONNACK, for all three protocol levels.

use bytes::{BufMut, BytesMut};

use super::error::{DecodeError, EncodeError};
use super::primitives::{field_len, put_binary, Reader};
use super::properties;
use crate::packet::{ConnAck, Connect, ProtocolVersion, QoS, ReasonCode, Will};
use crate::topic::TopicName;

const USERNAME: u8 = 0x80;
const PASSWORD: u8 = 0x40;
const WILL_RETAIN: u8 = 0x20;
const WILL_QOS: u8 = 0x18;
const WILL: u8 = 0x04;
const CLEAN: u8 = 0x02;
const RESERVED: u8 = 0x01;

pub(super) fn decode_connect(r: &mut Reader) -> Result<Connect, DecodeError> {
    let name = r.binary()?;
    let level = r.u8()?;
    // [MQTT-3.1.2-1] the protocol name must be "MQTT" ("MQIsdp" for 3.1); [MQTT-3.1.2-2] a
    // level we do not speak is answered with "unsupported protocol version".
    let version = match (&name[..], ProtocolVersion::from_level(level)) {
        (b"MQIsdp", Some(v @ ProtocolVersion::V31)) => v,
        (b"MQTT", Some(v @ (ProtocolVersion::V311 | ProtocolVersion::V5))) => v,
        (b"MQTT" | b"MQIsdp", _) => return Err(DecodeError::UnsupportedProtocolVersion(level)),
        _ => return Err(DecodeError::InvalidProtocolName),
    };
    let flags = r.u8()?;
    // [MQTT-3.1.2-3] the reserved flag must be zero.
    if flags & RESERVED != 0 {
        return Err(DecodeError::InvalidConnectFlags("reserved bit set"));
    }
    let will_qos = QoS::from_u8((flags & WILL_QOS) >> 3)
        // [MQTT-3.1.2-14] Will QoS 3 is malformed.
        .ok_or(DecodeError::InvalidConnectFlags("will QoS 3"))?;
    let has_will = flags & WILL != 0;
    let will_retain = flags & WILL_RETAIN != 0;
    // [MQTT-3.1.2-13] [MQTT-3.1.2-15] without a will, Will QoS and Will Retain must be 0.
    if !has_will && (will_qos != QoS::AtMostOnce || will_retain) {
        return Err(DecodeError::InvalidConnectFlags(
            "will QoS or retain without will",
        ));
    }
    let has_username = flags & USERNAME != 0;
    let has_password = flags & PASSWORD != 0;
    // [MQTT-3.1.2-22] before 5.0 a password needs a user name.
    if !version.is_v5() && has_password && !has_username {
        return Err(DecodeError::InvalidConnectFlags(
            "password without user name",
        ));
    }
    let keep_alive = r.u16()?;
    let props = if version.is_v5() {
        properties::decode(r)?
    } else {
        Default::default()
    };
    let client_id = r.string()?;
    let will = if has_will {
        let will_props = if version.is_v5() {
            properties::decode(r)?
        } else {
            Default::default()
        };
        // [MQTT-3.1.3-11] the Will Topic is a UTF-8 string, and as a Topic Name it is not
        // empty [MQTT-4.7.3-1] and has no wildcards [MQTT-4.7.0-1].
        let topic = TopicName::try_from(r.string()?).map_err(DecodeError::InvalidTopicName)?;
        Some(Will {
            topic,
            payload: r.binary()?,
            qos: will_qos,
            retain: will_retain,
            properties: will_props,
        })
    } else {
        None
    };
    let username = has_username.then(|| r.string()).transpose()?;
    let password = has_password.then(|| r.binary()).transpose()?;
    Ok(Connect {
        protocol_version: version,
        clean_start: flags & CLEAN != 0,
        keep_alive,
        client_id,
        will,
        username,
        password,
        properties: props,
    })
}

/// Sizes of the parts of a CONNECT, measured once and used to write it.
pub(super) struct ConnectLen {
    props: usize,
    will_props: usize,
    pub(super) remaining: usize,
}

pub(super) fn measure_connect(c: &Connect) -> Result<ConnectLen, EncodeError> {
    let v5 = c.protocol_version.is_v5();
    let mut len = field_len(c.protocol_version.protocol_name().len())? + 1 + 1 + 2;
    let props = if v5 {
        let p = properties::measure(&c.properties)?;
        len += properties::wire_len(p);
        p
    } else {
        0
    };
    len += field_len(c.client_id.len())?;
    let mut will_props = 0;
    if let Some(will) = &c.will {
        if v5 {
            will_props = properties::measure(&will.properties)?;
            len += properties::wire_len(will_props);
        }
        len += field_len(will.topic.len())? + field_len(will.payload.len())?;
    }
    if let Some(u) = &c.username {
        len += field_len(u.len())?;
    }
    if let Some(p) = &c.password {
        len += field_len(p.len())?;
    }
    Ok(ConnectLen {
        props,
        will_props,
        remaining: len,
    })
}

pub(super) fn write_connect(c: &Connect, lens: &ConnectLen, out: &mut BytesMut) {
    let version = c.protocol_version;
    put_binary(out, version.protocol_name().as_bytes());
    out.put_u8(version.level());
    let mut flags = 0;
    if c.clean_start {
        flags |= CLEAN;
    }
    if let Some(will) = &c.will {
        flags |= WILL | (will.qos.as_u8() << 3);
        if will.retain {
            flags |= WILL_RETAIN;
        }
    }
    if c.username.is_some() {
        flags |= USERNAME;
    }
    if c.password.is_some() {
        flags |= PASSWORD;
    }
    out.put_u8(flags);
    out.put_u16(c.keep_alive);
    if version.is_v5() {
        properties::write(&c.properties, lens.props, out);
    }
    put_binary(out, c.client_id.as_bytes());
    if let Some(will) = &c.will {
        if version.is_v5() {
            properties::write(&will.properties, lens.will_props, out);
        }
        put_binary(out, will.topic.as_bytes());
        put_binary(out, &will.payload);
    }
    if let Some(u) = &c.username {
        put_binary(out, u.as_bytes());
    }
    if let Some(p) = &c.password {
        put_binary(out, p);
    }
}

pub(super) fn decode_connack(
    r: &mut Reader,
    version: ProtocolVersion,
) -> Result<ConnAck, DecodeError> {
    let flags = r.u8()?;
    // [MQTT-3.2.2-1] bits 7-1 of the acknowledge flags are reserved. MQTT 3.1 had no Session
    // Present bit and left the byte unused, so it is not checked there.
    if version != ProtocolVersion::V31 && flags & 0xFE != 0 {
        return Err(DecodeError::InvalidConnAckFlags);
    }
    let session_present = version != ProtocolVersion::V31 && flags & 0x01 != 0;
    let code = r.u8()?;
    let reason_code = if version.is_v5() {
        ReasonCode::from_u8(code)
            .filter(|c| connack_allows(*c))
            .ok_or(DecodeError::InvalidReasonCode(code))?
    } else {
        v3_return_code(code).ok_or(DecodeError::InvalidReasonCode(code))?
    };
    // [MQTT-3.2.2-4] [MQTT-3.2.2-6] a refused connection never has a session present.
    if session_present && reason_code.is_error() {
        return Err(DecodeError::InvalidConnAckFlags);
    }
    let properties = if version.is_v5() {
        properties::decode(r)?
    } else {
        Default::default()
    };
    Ok(ConnAck {
        session_present,
        reason_code,
        properties,
    })
}

pub(super) fn measure_connack(
    c: &ConnAck,
    version: ProtocolVersion,
) -> Result<(usize, usize), EncodeError> {
    if version.is_v5() {
        let props = properties::measure(&c.properties)?;
        Ok((2 + properties::wire_len(props), props))
    } else {
        Ok((2, 0))
    }
}

pub(super) fn write_connack(
    c: &ConnAck,
    version: ProtocolVersion,
    props: usize,
    out: &mut BytesMut,
) {
    // [MQTT-3.2.2-4] [MQTT-3.2.2-6] Session Present is 0 whenever the connection is refused.
    out.put_u8(u8::from(
        c.session_present && !c.reason_code.is_error() && version != ProtocolVersion::V31,
    ));
    if version.is_v5() {
        out.put_u8(c.reason_code.as_u8());
        properties::write(&c.properties, props, out);
    } else {
        out.put_u8(v3_return_code_for(c.reason_code));
    }
}

/// The Connect Reason Codes of spec 3.2.2.2.
pub(super) fn connack_allows(code: ReasonCode) -> bool {
    use ReasonCode::*;
    matches!(
        code,
        Success
            | UnspecifiedError
            | MalformedPacket
            | ProtocolError
            | ImplementationSpecificError
            | UnsupportedProtocolVersion
            | ClientIdentifierNotValid
            | BadUserNameOrPassword
            | NotAuthorized
            | ServerUnavailable
            | ServerBusy
            | Banned
            | BadAuthenticationMethod
            | TopicNameInvalid
            | PacketTooLarge
            | QuotaExceeded
            | PayloadFormatInvalid
            | RetainNotSupported
            | QoSNotSupported
            | UseAnotherServer
            | ServerMoved
            | ConnectionRateExceeded
    )
}

/// MQTT 3.x CONNACK return codes (3.1.1 table 3.1) as reason codes.
fn v3_return_code(code: u8) -> Option<ReasonCode> {
    Some(match code {
        0 => ReasonCode::Success,
        1 => ReasonCode::UnsupportedProtocolVersion,
        2 => ReasonCode::ClientIdentifierNotValid,
        3 => ReasonCode::ServerUnavailable,
        4 => ReasonCode::BadUserNameOrPassword,
        5 => ReasonCode::NotAuthorized,
        _ => return None,
    })
}

/// The closest 3.x return code for a reason code: 3.x has six, 5.0 has many.
fn v3_return_code_for(code: ReasonCode) -> u8 {
    match code {
        ReasonCode::Success => 0,
        ReasonCode::UnsupportedProtocolVersion => 1,
        ReasonCode::ClientIdentifierNotValid => 2,
        ReasonCode::BadUserNameOrPassword => 4,
        ReasonCode::NotAuthorized | ReasonCode::Banned | ReasonCode::BadAuthenticationMethod => 5,
        _ => 3,
    }
}
