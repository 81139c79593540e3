//! PINGREQ, PINGRESP, DISCONNECT and AUTH: the packets that carry at most a reason code and
//! properties.

use bytes::{BufMut, BytesMut};

use super::error::{DecodeError, EncodeError};
use super::primitives::{Cursor, Reader};
use super::properties::{self, PropertySet};
use crate::packet::{Auth, Disconnect, ProtocolVersion, ReasonCode};

/// DISCONNECT: empty before 5.0; in 5.0 a Remaining Length of 0 means Normal disconnection,
/// and one of 1 means a reason code without properties (spec 3.14.2.1, 3.14.2.2.1).
pub(super) fn decode_disconnect(
    r: &mut Reader,
    version: ProtocolVersion,
) -> Result<Disconnect, DecodeError> {
    let mut d = Disconnect::default();
    if version.is_v5() {
        (d.reason_code, d.properties) = reason_and_properties(r, disconnect_allows)?;
    }
    Ok(d)
}

/// AUTH: the same optional tail as DISCONNECT (spec 3.15.2.1, 3.15.2.2.1).
pub(super) fn decode_auth(r: &mut Reader) -> Result<Auth, DecodeError> {
    let (reason_code, properties) = reason_and_properties(r, auth_allows)?;
    Ok(Auth {
        reason_code,
        properties,
    })
}

/// The longest DISCONNECT or AUTH body that is read in place: a reason code alone.
pub(super) const FIXED_LEN: usize = 1;

/// DISCONNECT of at most [`FIXED_LEN`] bytes, read in place: no properties.
pub(super) fn decode_disconnect_fixed(
    c: &mut Cursor,
    version: ProtocolVersion,
) -> Result<Disconnect, DecodeError> {
    let mut d = Disconnect::default();
    if version.is_v5() {
        d.reason_code = reason(c, disconnect_allows)?;
    }
    Ok(d)
}

/// AUTH of at most [`FIXED_LEN`] bytes, read in place: no properties.
pub(super) fn decode_auth_fixed(c: &mut Cursor) -> Result<Auth, DecodeError> {
    Ok(Auth {
        reason_code: reason(c, auth_allows)?,
        properties: Default::default(),
    })
}

fn reason_and_properties<P: PropertySet>(
    r: &mut Reader,
    allows: fn(ReasonCode) -> bool,
) -> Result<(ReasonCode, P), DecodeError> {
    let reason = reason(r, allows)?;
    let props = if r.is_empty() {
        P::default()
    } else {
        properties::decode(r)?
    };
    Ok((reason, props))
}

/// The reason code, `Success` when the body ends before it.
fn reason(c: &mut Cursor, allows: fn(ReasonCode) -> bool) -> Result<ReasonCode, DecodeError> {
    if c.is_empty() {
        return Ok(ReasonCode::Success);
    }
    let code = c.u8()?;
    ReasonCode::from_u8(code)
        .filter(|c| allows(*c))
        .ok_or(DecodeError::InvalidReasonCode(code))
}

/// Remaining Length and property length of a DISCONNECT or AUTH body in 5.0: the shortest
/// form that says everything.
pub(super) fn measure_tail<P: PropertySet + PartialEq>(
    reason: ReasonCode,
    props: &P,
) -> Result<(usize, usize), EncodeError> {
    if *props == P::default() {
        let len = usize::from(reason != ReasonCode::Success);
        return Ok((len, 0));
    }
    let inner = properties::measure(props)?;
    Ok((1 + properties::wire_len(inner), inner))
}

pub(super) fn write_tail<P: PropertySet>(
    reason: ReasonCode,
    props: &P,
    remaining: usize,
    inner: usize,
    out: &mut BytesMut,
) {
    if remaining > 0 {
        out.put_u8(reason.as_u8());
    }
    if remaining > 1 {
        properties::write(props, inner, out);
    }
}

/// Disconnect Reason Codes, spec 3.14.2.1.
pub(super) fn disconnect_allows(code: ReasonCode) -> bool {
    use ReasonCode::*;
    matches!(
        code,
        Success
            | DisconnectWithWill
            | UnspecifiedError
            | MalformedPacket
            | ProtocolError
            | ImplementationSpecificError
            | NotAuthorized
            | ServerBusy
            | ServerShuttingDown
            | KeepAliveTimeout
            | SessionTakenOver
            | TopicFilterInvalid
            | TopicNameInvalid
            | ReceiveMaximumExceeded
            | TopicAliasInvalid
            | PacketTooLarge
            | MessageRateTooHigh
            | QuotaExceeded
            | AdministrativeAction
            | PayloadFormatInvalid
            | RetainNotSupported
            | QoSNotSupported
            | UseAnotherServer
            | ServerMoved
            | SharedSubscriptionsNotSupported
            | ConnectionRateExceeded
            | MaximumConnectTime
            | SubscriptionIdentifiersNotSupported
            | WildcardSubscriptionsNotSupported
    )
}

/// Authenticate Reason Codes, spec 3.15.2.1.
pub(super) fn auth_allows(code: ReasonCode) -> bool {
    matches!(
        code,
        ReasonCode::Success | ReasonCode::ContinueAuthentication | ReasonCode::ReAuthenticate
    )
}
