//! `-D COMMAND PROPERTY VALUE`: MQTT 5.0 properties per packet, with mosquitto's names.
//!
//! Each `-D` names the packet (`connect`, `publish`, `subscribe`, `unsubscribe`, `disconnect`,
//! `will`), the property as the spec spells it with `-` between words (`content-type`,
//! `message-expiry-interval`, `user-property`...) and its value; `user-property` takes a name
//! and a value. [`Properties::add`] parses one `-D` into the typed property sets of
//! `mqtt-core`, so a property can only land on a packet that may carry it. Properties of
//! PUBACK, PUBREC, PUBREL, PUBCOMP and AUTH, and the `topic-alias` and DISCONNECT
//! `reason-string`/`user-property` that mosquitto also takes, are refused: the client sets
//! those itself or has no way to send them.

use core::fmt;
use core::num::{NonZeroU16, NonZeroU32};

use mqtt_core::packet::{
    ConnectProperties, PublishProperties, SubscribeProperties, UnsubscribeProperties, UserProperty,
    WillProperties,
};
use mqtt_core::topic::TopicName;

use PacketKind as Kind;

/// The largest Variable Byte Integer, and so the largest Subscription Identifier.
const MAX_SUBSCRIPTION_IDENTIFIER: u32 = 268_435_455;

/// The packets `-D` can name, as mosquitto spells them.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PacketKind {
    /// CONNECT.
    Connect,
    /// PUBLISH.
    Publish,
    /// SUBSCRIBE.
    Subscribe,
    /// UNSUBSCRIBE.
    Unsubscribe,
    /// DISCONNECT.
    Disconnect,
    /// The will message inside CONNECT.
    Will,
    /// PUBACK.
    PubAck,
    /// PUBREC.
    PubRec,
    /// PUBREL.
    PubRel,
    /// PUBCOMP.
    PubComp,
    /// AUTH.
    Auth,
}

impl PacketKind {
    /// The kind for a `-D` command name, in any case.
    pub fn parse(name: &str) -> Option<Self> {
        Some(match name.to_ascii_lowercase().as_str() {
            "connect" => Self::Connect,
            "publish" => Self::Publish,
            "subscribe" => Self::Subscribe,
            "unsubscribe" => Self::Unsubscribe,
            "disconnect" => Self::Disconnect,
            "will" => Self::Will,
            "puback" => Self::PubAck,
            "pubrec" => Self::PubRec,
            "pubrel" => Self::PubRel,
            "pubcomp" => Self::PubComp,
            "auth" => Self::Auth,
            _ => return None,
        })
    }

    /// The name `-D` takes.
    pub fn name(self) -> &'static str {
        match self {
            Self::Connect => "connect",
            Self::Publish => "publish",
            Self::Subscribe => "subscribe",
            Self::Unsubscribe => "unsubscribe",
            Self::Disconnect => "disconnect",
            Self::Will => "will",
            Self::PubAck => "puback",
            Self::PubRec => "pubrec",
            Self::PubRel => "pubrel",
            Self::PubComp => "pubcomp",
            Self::Auth => "auth",
        }
    }
}

/// Why a `-D` was refused; the message names the command and property.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PropertyError(String);

impl fmt::Display for PropertyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for PropertyError {}

/// Every property given with `-D`, by packet.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Properties {
    /// CONNECT properties.
    pub connect: ConnectProperties,
    /// PUBLISH properties (of every message published).
    pub publish: PublishProperties,
    /// SUBSCRIBE properties.
    pub subscribe: SubscribeProperties,
    /// UNSUBSCRIBE properties.
    pub unsubscribe: UnsubscribeProperties,
    /// Will properties.
    pub will: WillProperties,
    /// The Session Expiry Interval of DISCONNECT.
    pub disconnect_session_expiry: Option<u32>,
    /// Whether any `-D` was given (it asks for MQTT 5.0).
    pub any: bool,
}

impl Properties {
    /// Parses every `-D` (each `[COMMAND, PROPERTY, VALUE]` or, for `user-property`,
    /// `[COMMAND, user-property, NAME, VALUE]`); `sends` lists the packets the command
    /// sends, and a property of any other packet is refused.
    pub fn parse(given: &[Vec<String>], sends: &[PacketKind]) -> Result<Self, PropertyError> {
        let mut props = Self::default();
        for d in given {
            props.add(d, sends)?;
        }
        Ok(props)
    }

    /// Adds one `-D`.
    pub fn add(&mut self, d: &[String], sends: &[PacketKind]) -> Result<(), PropertyError> {
        let (command, name, values) = match d {
            [command, name, values @ ..] if !values.is_empty() => (command, name, values),
            _ => {
                return Err(PropertyError(format!(
                    "-D {}: expected COMMAND PROPERTY VALUE",
                    d.join(" ")
                )))
            }
        };
        let Some(kind) = PacketKind::parse(command) else {
            return Err(PropertyError(format!(
                "-D {command}: unknown command; use connect, publish, subscribe, unsubscribe, \
                 disconnect or will"
            )));
        };
        let name = name.to_ascii_lowercase();
        let at = Place {
            kind,
            name: &name,
            values,
        };
        if matches!(
            kind,
            Kind::PubAck | Kind::PubRec | Kind::PubRel | Kind::PubComp | Kind::Auth
        ) {
            return Err(at.unsupported());
        }
        if !sends.contains(&kind) {
            return Err(at.error(format_args!(
                "this command sends no {} packet",
                kind.name().to_ascii_uppercase()
            )));
        }
        self.any = true;
        match kind {
            Kind::Connect => self.add_connect(&at),
            Kind::Publish => self.add_publish(&at),
            Kind::Subscribe => match at.name {
                "subscription-identifier" => {
                    let id = at.u32()?;
                    let id = NonZeroU32::new(id)
                        .filter(|id| id.get() <= MAX_SUBSCRIPTION_IDENTIFIER)
                        .ok_or_else(|| at.error("must be 1 to 268435455"))?;
                    set_once(&at, &mut self.subscribe.subscription_identifier, id)
                }
                "user-property" => at.user_property(&mut self.subscribe.user_properties),
                _ => Err(at.not_allowed()),
            },
            Kind::Disconnect => match at.name {
                "session-expiry-interval" => {
                    let value = at.u32()?;
                    set_once(&at, &mut self.disconnect_session_expiry, value)
                }
                _ => Err(at.unsupported()),
            },
            Kind::Unsubscribe => match at.name {
                "user-property" => at.user_property(&mut self.unsubscribe.user_properties),
                _ => Err(at.not_allowed()),
            },
            Kind::Will => self.add_will(&at),
            Kind::PubAck | Kind::PubRec | Kind::PubRel | Kind::PubComp | Kind::Auth => {
                Err(at.unsupported())
            }
        }
    }

    fn add_connect(&mut self, at: &Place<'_>) -> Result<(), PropertyError> {
        let c = &mut self.connect;
        match at.name {
            "session-expiry-interval" => set_once(at, &mut c.session_expiry_interval, at.u32()?),
            "receive-maximum" => {
                let v = NonZeroU16::new(at.u16()?).ok_or_else(|| at.error("must not be 0"))?;
                set_once(at, &mut c.receive_maximum, v)
            }
            "maximum-packet-size" => {
                let v = NonZeroU32::new(at.u32()?).ok_or_else(|| at.error("must not be 0"))?;
                set_once(at, &mut c.maximum_packet_size, v)
            }
            "topic-alias-maximum" => set_once(at, &mut c.topic_alias_maximum, at.u16()?),
            "request-response-information" => {
                set_once(at, &mut c.request_response_information, at.flag()?)
            }
            "request-problem-information" => {
                set_once(at, &mut c.request_problem_information, at.flag()?)
            }
            "authentication-method" => {
                set_once(at, &mut c.authentication_method, at.one()?.as_str().into())
            }
            "authentication-data" => {
                set_once(at, &mut c.authentication_data, at.one()?.clone().into())
            }
            "user-property" => at.user_property(&mut c.user_properties),
            _ => Err(at.not_allowed()),
        }
    }

    fn add_publish(&mut self, at: &Place<'_>) -> Result<(), PropertyError> {
        let p = &mut self.publish;
        match at.name {
            "payload-format-indicator" => set_once(at, &mut p.payload_format_indicator, at.flag()?),
            "message-expiry-interval" => set_once(at, &mut p.message_expiry_interval, at.u32()?),
            "content-type" => set_once(at, &mut p.content_type, at.one()?.as_str().into()),
            "response-topic" => set_once(at, &mut p.response_topic, at.topic()?),
            "correlation-data" => set_once(at, &mut p.correlation_data, at.one()?.clone().into()),
            "user-property" => at.user_property(&mut p.user_properties),
            "topic-alias" => Err(at.error(
                "not supported: the client assigns topic aliases itself when the server allows",
            )),
            _ => Err(at.not_allowed()),
        }
    }

    fn add_will(&mut self, at: &Place<'_>) -> Result<(), PropertyError> {
        let w = &mut self.will;
        match at.name {
            "will-delay-interval" => set_once(at, &mut w.will_delay_interval, at.u32()?),
            "payload-format-indicator" => set_once(at, &mut w.payload_format_indicator, at.flag()?),
            "message-expiry-interval" => set_once(at, &mut w.message_expiry_interval, at.u32()?),
            "content-type" => set_once(at, &mut w.content_type, at.one()?.as_str().into()),
            "response-topic" => set_once(at, &mut w.response_topic, at.topic()?),
            "correlation-data" => set_once(at, &mut w.correlation_data, at.one()?.clone().into()),
            "user-property" => at.user_property(&mut w.user_properties),
            _ => Err(at.not_allowed()),
        }
    }
}

/// One `-D` being parsed, for its values and its error messages.
struct Place<'a> {
    kind: PacketKind,
    name: &'a str,
    values: &'a [String],
}

impl Place<'_> {
    fn error(&self, why: impl fmt::Display) -> PropertyError {
        PropertyError(format!("-D {} {}: {why}", self.kind.name(), self.name))
    }

    fn not_allowed(&self) -> PropertyError {
        let known = KNOWN.contains(&self.name);
        if known {
            self.error(format_args!(
                "a {} packet cannot carry this property",
                self.kind.name().to_ascii_uppercase()
            ))
        } else {
            self.error("unknown property")
        }
    }

    fn unsupported(&self) -> PropertyError {
        self.error(format_args!(
            "not supported: the client sets no properties of its own on {}",
            self.kind.name().to_ascii_uppercase()
        ))
    }

    /// The one value of a property that takes one.
    fn one(&self) -> Result<&String, PropertyError> {
        match self.values {
            [v] => Ok(v),
            _ => Err(self.error("takes exactly one value")),
        }
    }

    fn u32(&self) -> Result<u32, PropertyError> {
        let v = self.one()?;
        v.parse()
            .map_err(|_| self.error(format_args!("`{v}` is not a number from 0 to 4294967295")))
    }

    fn u16(&self) -> Result<u16, PropertyError> {
        let v = self.one()?;
        v.parse()
            .map_err(|_| self.error(format_args!("`{v}` is not a number from 0 to 65535")))
    }

    /// A byte property that is 0 or 1.
    fn flag(&self) -> Result<bool, PropertyError> {
        match self.one()?.as_str() {
            "0" => Ok(false),
            "1" => Ok(true),
            v => Err(self.error(format_args!("`{v}` is not 0 or 1"))),
        }
    }

    fn topic(&self) -> Result<TopicName, PropertyError> {
        let v = self.one()?;
        TopicName::new(v.as_str()).map_err(|e| self.error(format_args!("`{v}`: {e}")))
    }

    fn user_property(&self, into: &mut Vec<UserProperty>) -> Result<(), PropertyError> {
        match self.values {
            [name, value] => {
                into.push(UserProperty::new(name.as_str(), value.as_str()));
                Ok(())
            }
            _ => Err(self.error("takes a name and a value")),
        }
    }
}

/// Sets a property that may appear once per packet.
fn set_once<T>(at: &Place<'_>, slot: &mut Option<T>, value: T) -> Result<(), PropertyError> {
    if slot.is_some() {
        return Err(at.error("given twice"));
    }
    *slot = Some(value);
    Ok(())
}

/// Every property name of MQTT 5.0, as `-D` spells them.
const KNOWN: &[&str] = &[
    "payload-format-indicator",
    "message-expiry-interval",
    "content-type",
    "response-topic",
    "correlation-data",
    "subscription-identifier",
    "session-expiry-interval",
    "assigned-client-identifier",
    "server-keep-alive",
    "authentication-method",
    "authentication-data",
    "request-problem-information",
    "will-delay-interval",
    "request-response-information",
    "response-information",
    "server-reference",
    "reason-string",
    "receive-maximum",
    "topic-alias-maximum",
    "topic-alias",
    "maximum-qos",
    "retain-available",
    "user-property",
    "maximum-packet-size",
    "wildcard-subscription-available",
    "subscription-identifier-available",
    "shared-subscription-available",
];

#[cfg(test)]
mod tests {
    use super::*;

    const ALL: &[PacketKind] = &[
        Kind::Connect,
        Kind::Publish,
        Kind::Subscribe,
        Kind::Unsubscribe,
        Kind::Disconnect,
        Kind::Will,
    ];

    fn d(args: &[&str]) -> Vec<String> {
        args.iter().map(|s| (*s).to_owned()).collect()
    }

    fn parse(ds: &[&[&str]]) -> Result<Properties, PropertyError> {
        let given: Vec<_> = ds.iter().map(|a| d(a)).collect();
        Properties::parse(&given, ALL)
    }

    #[test]
    fn publish_properties() {
        let p = parse(&[
            &["publish", "user-property", "k", "v"],
            &["publish", "user-property", "k", "w"],
            &["PUBLISH", "Content-Type", "text/plain"],
            &["publish", "message-expiry-interval", "60"],
            &["publish", "payload-format-indicator", "1"],
            &["publish", "response-topic", "reply/here"],
            &["publish", "correlation-data", "abc"],
        ])
        .unwrap();
        assert!(p.any);
        let pp = &p.publish;
        assert_eq!(
            pp.user_properties,
            [UserProperty::new("k", "v"), UserProperty::new("k", "w")]
        );
        assert_eq!(pp.content_type.as_deref(), Some("text/plain"));
        assert_eq!(pp.message_expiry_interval, Some(60));
        assert_eq!(pp.payload_format_indicator, Some(true));
        assert_eq!(
            pp.response_topic.as_ref().map(|t| t.as_str()),
            Some("reply/here")
        );
        assert_eq!(pp.correlation_data.as_deref(), Some(&b"abc"[..]));
    }

    #[test]
    fn connect_subscribe_disconnect_will() {
        let p = parse(&[
            &["connect", "session-expiry-interval", "60"],
            &["connect", "receive-maximum", "10"],
            &["connect", "maximum-packet-size", "4096"],
            &["connect", "request-problem-information", "0"],
            &["connect", "user-property", "a", "b"],
            &["subscribe", "subscription-identifier", "5"],
            &["disconnect", "session-expiry-interval", "0"],
            &["unsubscribe", "user-property", "u", "v"],
            &["will", "will-delay-interval", "3"],
            &["will", "content-type", "x"],
        ])
        .unwrap();
        assert_eq!(p.connect.session_expiry_interval, Some(60));
        assert_eq!(p.connect.receive_maximum.map(NonZeroU16::get), Some(10));
        assert_eq!(
            p.connect.maximum_packet_size.map(NonZeroU32::get),
            Some(4096)
        );
        assert_eq!(p.connect.request_problem_information, Some(false));
        assert_eq!(p.connect.user_properties.len(), 1);
        assert_eq!(
            p.subscribe.subscription_identifier.map(NonZeroU32::get),
            Some(5)
        );
        assert_eq!(p.disconnect_session_expiry, Some(0));
        assert_eq!(p.unsubscribe.user_properties, [UserProperty::new("u", "v")]);
        assert_eq!(p.will.will_delay_interval, Some(3));
        assert_eq!(p.will.content_type.as_deref(), Some("x"));
    }

    #[test]
    fn bad_properties_are_refused_with_their_name() {
        let cases: &[(&[&str], &str)] = &[
            (&["publish", "bogus", "1"], "unknown property"),
            (&["frobnicate", "content-type", "x"], "unknown command"),
            (&["publish", "session-expiry-interval", "1"], "cannot carry"),
            (
                &["publish", "message-expiry-interval", "-1"],
                "not a number",
            ),
            (
                &["publish", "message-expiry-interval", "4294967296"],
                "not a number",
            ),
            (&["publish", "payload-format-indicator", "2"], "not 0 or 1"),
            (&["publish", "response-topic", "a/#"], "wildcard"),
            (&["publish", "content-type", "a", "b"], "exactly one value"),
            (&["publish", "topic-alias", "1"], "not supported"),
            (&["connect", "receive-maximum", "0"], "must not be 0"),
            (&["connect", "receive-maximum", "65536"], "not a number"),
            (
                &["subscribe", "subscription-identifier", "0"],
                "1 to 268435455",
            ),
            (
                &["subscribe", "subscription-identifier", "268435456"],
                "1 to 268435455",
            ),
            (&["puback", "user-property", "a", "b"], "not supported"),
            (&["disconnect", "reason-string", "bye"], "not supported"),
        ];
        for (args, needle) in cases {
            let err = parse(&[args]).unwrap_err().to_string();
            assert!(err.contains(needle), "{args:?}: {err}");
            assert!(err.starts_with("-D "), "{args:?}: {err}");
        }
    }

    #[test]
    fn once_only_properties_refuse_a_second_value() {
        let err = parse(&[
            &["publish", "content-type", "a"],
            &["publish", "content-type", "b"],
        ])
        .unwrap_err();
        assert!(err.to_string().contains("given twice"), "{err}");
    }

    #[test]
    fn packets_the_command_does_not_send_are_refused() {
        let given = vec![d(&["subscribe", "subscription-identifier", "1"])];
        let err = Properties::parse(&given, &[Kind::Connect, Kind::Publish]).unwrap_err();
        assert!(err.to_string().contains("sends no SUBSCRIBE"), "{err}");
    }
}
