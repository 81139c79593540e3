//! How `mqtt sub` and `mqtt rr` print a received message: the payload alone, `-v` (topic and
//! payload), `-F` (a mosquitto_sub format string) or `--format json`.
//!
//! A `-F` string is parsed once, before connecting ([`Template::parse`]), so a mistake in it
//! is reported at once; rendering a message ([`Printer::render`]) takes the time as an input,
//! which keeps it a pure function of its arguments. Times are printed in UTC.
//!
//! `-F` sequences, as mosquitto_sub 2.0 has them:
//!
//! - `%t` topic, `%p` payload, `%x`/`%X` payload in lower/upper case hex, `%l` payload length,
//!   `%q` QoS, `%r` retain (0/1), `%m` packet identifier (0 for QoS 0);
//! - 5.0 properties, blank when absent: `%A` topic alias, `%C` content type, `%D` correlation
//!   data, `%E` message expiry interval, `%F` payload format indicator, `%P` user properties
//!   (`name:value`, space separated), `%R` response topic, `%S` subscription identifier;
//! - `%I` ISO-8601 time, `%U` Unix time with nanoseconds, `%j` JSON of the message with the
//!   payload as a string (or an array of bytes when it is not printable ASCII), `%J` the same
//!   with the payload inserted as JSON (it must be JSON);
//! - flags, width and precision between `%` and the letter: `%-10t`, `%05l`, `%.8t`;
//! - `@` followed by a `strftime` letter (`@Y-@m-@dT@H:@M:@S`, `@s`, `@N` nanoseconds, `@@`);
//! - escapes `\n`, `\t`, `\r`, `\v`, `\a`, `\e`, `\0`, `\\`; and `%%`.

use core::fmt;
use std::io::Write as _;
use std::time::{SystemTime, UNIX_EPOCH};

use clap::{Args, ValueEnum};
use mqtt_core::packet::PublishProperties;
use mqtt_core::Publish;
use serde::Serialize;

/// The output flags of `mqtt sub` and `mqtt rr`.
#[derive(Debug, Clone, Args)]
pub struct OutputArgs {
    /// Print the topic before the payload
    #[arg(short = 'v', long = "verbose", help_heading = "Output")]
    pub verbose: bool,
    /// No newline after each message
    #[arg(short = 'N', help_heading = "Output")]
    pub no_eol: bool,
    /// mosquitto_sub format string: %t topic, %p payload, %x hex, %j JSON... (see README)
    #[arg(
        short = 'F',
        value_name = "FORMAT",
        conflicts_with = "verbose",
        help_heading = "Output"
    )]
    pub template: Option<String>,
    /// `json`: one JSON object per message (topic, qos, retain, payload or payload_hex,
    /// properties)
    #[arg(long, value_enum, value_name = "FORMAT", conflicts_with_all = ["verbose", "template"],
          help_heading = "Output")]
    pub format: Option<Style>,
}

/// The values of `--format`.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Style {
    /// The payload (or what -v and -F say)
    Text,
    /// One JSON object per line
    Json,
}

impl OutputArgs {
    /// The printer these flags ask for; a bad `-F` string is refused here.
    pub fn printer(&self) -> Result<Printer, FormatError> {
        let output = match (&self.template, self.format, self.verbose) {
            (Some(t), _, _) => Output::Format(Template::parse(t)?),
            (None, Some(Style::Json), _) => Output::Json,
            (None, _, true) => Output::Verbose,
            (None, _, false) => Output::Payload,
        };
        Ok(Printer {
            output,
            eol: !self.no_eol,
        })
    }
}

/// What a received message is printed as.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Output {
    /// The payload alone; an empty payload prints nothing (mosquitto_sub's default).
    Payload,
    /// `-v`: the topic, a space, the payload; `topic (null)` for an empty payload.
    Verbose,
    /// `-F`: a format string.
    Format(Template),
    /// `--format json`: one JSON object per message.
    Json,
}

/// Prints messages: an [`Output`] and whether each message ends with a newline (`-N` turns
/// it off).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Printer {
    /// The shape of each message.
    pub output: Output,
    /// Whether a newline follows each message.
    pub eol: bool,
}

impl Printer {
    /// Appends `publish`, received at `now`, to `out`. Returns a warning for stderr when part
    /// of it could not be printed (a `%J` payload that is not JSON).
    pub fn render(&self, publish: &Publish, now: SystemTime, out: &mut Vec<u8>) -> Option<String> {
        let payload = &publish.payload[..];
        let mut warning = None;
        match &self.output {
            Output::Payload => {
                if payload.is_empty() {
                    return None;
                }
                out.extend_from_slice(payload);
            }
            Output::Verbose => {
                if payload.is_empty() && !self.eol {
                    return None;
                }
                out.extend_from_slice(publish.topic.as_str().as_bytes());
                if payload.is_empty() {
                    out.extend_from_slice(b" (null)");
                } else {
                    out.push(b' ');
                    out.extend_from_slice(payload);
                }
            }
            Output::Format(template) => warning = template.render(publish, now, out),
            Output::Json => write_json(publish, out),
        }
        if self.eol {
            out.push(b'\n');
        }
        warning
    }
}

/// A parsed `-F` format string.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template(Vec<Piece>);

#[derive(Debug, Clone, PartialEq, Eq)]
enum Piece {
    Literal(Vec<u8>),
    Field(Spec, Field),
    /// `@X`: a strftime letter, or `N` for nanoseconds.
    Time(u8),
}

/// Flags, width and precision of a `%` sequence.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Spec {
    left: bool,
    zero: bool,
    width: usize,
    precision: Option<usize>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Field {
    TopicAlias,
    ContentType,
    CorrelationData,
    ExpiryInterval,
    FormatIndicator,
    Iso8601,
    Json,
    JsonPayload,
    Length,
    MessageId,
    UserProperties,
    Payload,
    Qos,
    ResponseTopic,
    Retain,
    SubscriptionId,
    Topic,
    UnixTime,
    Hex,
    HexUpper,
}

impl Field {
    fn parse(c: char) -> Option<Self> {
        Some(match c {
            'A' => Self::TopicAlias,
            'C' => Self::ContentType,
            'D' => Self::CorrelationData,
            'E' => Self::ExpiryInterval,
            'F' => Self::FormatIndicator,
            'I' => Self::Iso8601,
            'j' => Self::Json,
            'J' => Self::JsonPayload,
            'l' => Self::Length,
            'm' => Self::MessageId,
            'P' => Self::UserProperties,
            'p' => Self::Payload,
            'q' => Self::Qos,
            'R' => Self::ResponseTopic,
            'r' => Self::Retain,
            'S' => Self::SubscriptionId,
            't' => Self::Topic,
            'U' => Self::UnixTime,
            'x' => Self::Hex,
            'X' => Self::HexUpper,
            _ => return None,
        })
    }
}

/// Why a `-F` string was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FormatError(String);

impl fmt::Display for FormatError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for FormatError {}

/// The `@` letters supported (a portable subset of strftime), plus `N`.
const TIME_LETTERS: &str = "aAbBdeFHIjmMNpsSTyYzZ";

impl Template {
    /// Parses a `-F` format string.
    pub fn parse(format: &str) -> Result<Self, FormatError> {
        let mut pieces = Vec::new();
        let mut literal = Vec::new();
        let mut chars = format.chars().peekable();
        let incomplete = || FormatError("-F: incomplete format specifier at the end".to_owned());
        while let Some(c) = chars.next() {
            match c {
                '%' => {
                    let mut spec = Spec::default();
                    if chars.peek() == Some(&'-') {
                        spec.left = true;
                        chars.next();
                    }
                    if chars.peek() == Some(&'0') {
                        spec.zero = true;
                        chars.next();
                    }
                    spec.width = digits(&mut chars);
                    if chars.peek() == Some(&'.') {
                        chars.next();
                        spec.precision = Some(digits(&mut chars));
                    }
                    let letter = chars.next().ok_or_else(incomplete)?;
                    if letter == '%' {
                        literal.push(b'%');
                        continue;
                    }
                    let field = Field::parse(letter).ok_or_else(|| {
                        FormatError(format!("-F: invalid format specifier '%{letter}'"))
                    })?;
                    flush(&mut literal, &mut pieces);
                    pieces.push(Piece::Field(spec, field));
                }
                '@' => {
                    let letter = chars.next().ok_or_else(incomplete)?;
                    if letter == '@' {
                        literal.push(b'@');
                    } else if letter.is_ascii() && TIME_LETTERS.contains(letter) {
                        flush(&mut literal, &mut pieces);
                        pieces.push(Piece::Time(letter as u8));
                    } else {
                        return Err(FormatError(format!(
                            "-F: unsupported time field '@{letter}' (supported: @{})",
                            TIME_LETTERS
                                .chars()
                                .map(String::from)
                                .collect::<Vec<_>>()
                                .join(" @")
                        )));
                    }
                }
                '\\' => {
                    let letter = chars.next().ok_or_else(|| {
                        FormatError("-F: incomplete escape at the end".to_owned())
                    })?;
                    literal.push(match letter {
                        '\\' => b'\\',
                        '0' => 0,
                        'a' => 0x07,
                        'e' => 0x1b,
                        'n' => b'\n',
                        'r' => b'\r',
                        't' => b'\t',
                        'v' => 0x0b,
                        _ => return Err(FormatError(format!("-F: invalid escape '\\{letter}'"))),
                    });
                }
                _ => {
                    let mut buf = [0; 4];
                    literal.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
                }
            }
        }
        flush(&mut literal, &mut pieces);
        Ok(Self(pieces))
    }

    /// Appends `publish` as this template says; returns a warning for what could not be
    /// printed.
    fn render(&self, publish: &Publish, now: SystemTime, out: &mut Vec<u8>) -> Option<String> {
        let time = Time::new(now);
        let props = &publish.properties;
        let mut warning = None;
        for piece in &self.0 {
            match piece {
                Piece::Literal(bytes) => out.extend_from_slice(bytes),
                Piece::Time(letter) => time.strftime(*letter, out),
                Piece::Field(spec, field) => match field {
                    Field::TopicAlias => {
                        spec.int(props.topic_alias.map(|a| u64::from(a.get())), out)
                    }
                    Field::ContentType => spec.str(props.content_type.as_deref(), out),
                    Field::CorrelationData => {
                        if let Some(data) = &props.correlation_data {
                            out.extend_from_slice(data);
                        }
                    }
                    Field::ExpiryInterval => {
                        spec.int(props.message_expiry_interval.map(u64::from), out)
                    }
                    Field::FormatIndicator => {
                        spec.int(props.payload_format_indicator.map(u64::from), out)
                    }
                    Field::Iso8601 => spec.str(Some(&time.iso8601()), out),
                    Field::Json => {
                        write_mosquitto_json(publish, &time, false, out);
                    }
                    Field::JsonPayload => {
                        if !write_mosquitto_json(publish, &time, true, out) {
                            warning = Some(format!(
                                "message payload is not valid JSON on topic {}",
                                publish.topic
                            ));
                        }
                    }
                    Field::Length => spec.int(Some(publish.payload.len() as u64), out),
                    Field::MessageId => spec.int(
                        Some(publish.packet_id.map_or(0, |id| u64::from(id.get()))),
                        out,
                    ),
                    Field::UserProperties => {
                        for (i, p) in props.user_properties.iter().enumerate() {
                            if i > 0 {
                                out.push(b' ');
                            }
                            out.extend_from_slice(p.name.as_bytes());
                            out.push(b':');
                            out.extend_from_slice(p.value.as_bytes());
                        }
                    }
                    Field::Payload => spec.bytes(&publish.payload, out),
                    Field::Qos => out.push(b'0' + publish.qos.as_u8()),
                    Field::ResponseTopic => {
                        if let Some(topic) = &props.response_topic {
                            spec.str(Some(topic.as_str()), out);
                        }
                    }
                    Field::Retain => out.push(if publish.retain { b'1' } else { b'0' }),
                    Field::SubscriptionId => spec.int(
                        props
                            .subscription_identifiers
                            .first()
                            .map(|id| u64::from(id.get())),
                        out,
                    ),
                    Field::Topic => spec.str(Some(publish.topic.as_str()), out),
                    Field::UnixTime => {
                        let _ = write!(out, "{}.{:09}", time.secs, time.nanos);
                    }
                    Field::Hex => spec.bytes(hex::encode(&publish.payload).as_bytes(), out),
                    Field::HexUpper => {
                        spec.bytes(hex::encode_upper(&publish.payload).as_bytes(), out)
                    }
                },
            }
        }
        warning
    }
}

/// Reads the decimal digits at the front of `chars`.
fn digits(chars: &mut core::iter::Peekable<core::str::Chars<'_>>) -> usize {
    let mut n: usize = 0;
    while let Some(d) = chars.peek().and_then(|c| c.to_digit(10)) {
        n = n.saturating_mul(10).saturating_add(d as usize);
        chars.next();
    }
    n
}

fn flush(literal: &mut Vec<u8>, pieces: &mut Vec<Piece>) {
    if !literal.is_empty() {
        pieces.push(Piece::Literal(core::mem::take(literal)));
    }
}

impl Spec {
    /// A number, or blanks of the field width when absent.
    fn int(&self, value: Option<u64>, out: &mut Vec<u8>) {
        let text = value.map(|v| v.to_string()).unwrap_or_default();
        let pad = if self.zero && !self.left && value.is_some() {
            b'0'
        } else {
            b' '
        };
        self.pad(text.as_bytes(), text.len(), pad, out);
    }

    /// A string cut to the precision (in characters), padded to the width with spaces.
    fn str(&self, value: Option<&str>, out: &mut Vec<u8>) {
        let value = value.unwrap_or("");
        let cut = match self.precision {
            Some(p) => value
                .char_indices()
                .nth(p)
                .map_or(value, |(i, _)| &value[..i]),
            None => value,
        };
        self.pad(cut.as_bytes(), cut.chars().count(), b' ', out);
    }

    /// Bytes padded to the width (with `0` under the `0` flag).
    fn bytes(&self, value: &[u8], out: &mut Vec<u8>) {
        let pad = if self.zero && !self.left { b'0' } else { b' ' };
        self.pad(value, value.len(), pad, out);
    }

    fn pad(&self, value: &[u8], len: usize, pad: u8, out: &mut Vec<u8>) {
        let fill = self.width.saturating_sub(len);
        if !self.left {
            out.extend(core::iter::repeat_n(pad, fill));
        }
        out.extend_from_slice(value);
        if self.left {
            out.extend(core::iter::repeat_n(b' ', fill));
        }
    }
}

/// `%j` and `%J`: mosquitto_sub's JSON object. With `raw_payload` (`%J`) the payload is
/// inserted as JSON; returns `false`, having written nothing, if it is not JSON.
fn write_mosquitto_json(
    publish: &Publish,
    time: &Time,
    raw_payload: bool,
    out: &mut Vec<u8>,
) -> bool {
    let payload = &publish.payload[..];
    let raw = if raw_payload && !payload.is_empty() {
        if serde_json::from_slice::<serde::de::IgnoredAny>(payload).is_err() {
            return false;
        }
        Some(payload.trim_ascii())
    } else {
        None
    };
    out.extend_from_slice(b"{\"tst\":");
    json_str(&time.iso8601_micros(), out);
    out.extend_from_slice(b",\"topic\":");
    json_str(publish.topic.as_str(), out);
    let _ = write!(
        out,
        ",\"qos\":{},\"retain\":{},\"payloadlen\":{}",
        publish.qos.as_u8(),
        u8::from(publish.retain),
        payload.len()
    );
    if let Some(id) = publish.packet_id {
        let _ = write!(out, ",\"mid\":{id}");
    }
    if !publish.properties.is_empty() {
        out.extend_from_slice(b",\"properties\":");
        mosquitto_properties(&publish.properties, out);
    }
    out.extend_from_slice(b",\"payload\":");
    if let Some(raw) = raw {
        out.extend_from_slice(raw);
    } else if payload.is_empty() {
        out.extend_from_slice(b"null");
    } else if payload.iter().all(|b| (0x20..0x7f).contains(b)) {
        // invariant: printable ASCII is UTF-8.
        json_str(core::str::from_utf8(payload).unwrap_or_default(), out);
    } else {
        out.push(b'[');
        for (i, b) in payload.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            let _ = write!(out, "{b}");
        }
        out.push(b']');
    }
    out.push(b'}');
    true
}

/// The `properties` object of `%j`, named as mosquitto names them.
fn mosquitto_properties(p: &PublishProperties, out: &mut Vec<u8>) {
    let mut first = true;
    let mut key = |name: &str, out: &mut Vec<u8>| {
        if !first {
            out.push(b',');
        }
        first = false;
        json_str(name, out);
        out.push(b':');
    };
    out.push(b'{');
    if let Some(v) = p.payload_format_indicator {
        key("payload-format-indicator", out);
        let _ = write!(out, "{}", u8::from(v));
    }
    if let Some(v) = p.message_expiry_interval {
        key("message-expiry-interval", out);
        let _ = write!(out, "{v}");
    }
    if let Some(v) = p.topic_alias {
        key("topic-alias", out);
        let _ = write!(out, "{v}");
    }
    if let Some(v) = &p.response_topic {
        key("response-topic", out);
        json_str(v.as_str(), out);
    }
    if let Some(v) = &p.correlation_data {
        key("correlation-data", out);
        json_str(&String::from_utf8_lossy(v), out);
    }
    if !p.user_properties.is_empty() {
        key("user-properties", out);
        out.push(b'{');
        for (i, up) in p.user_properties.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            json_str(&up.name, out);
            out.push(b':');
            json_str(&up.value, out);
        }
        out.push(b'}');
    }
    for id in &p.subscription_identifiers {
        key("subscription-identifier", out);
        let _ = write!(out, "{id}");
    }
    if let Some(v) = &p.content_type {
        key("content-type", out);
        json_str(v, out);
    }
    out.push(b'}');
}

fn json_str(s: &str, out: &mut Vec<u8>) {
    // invariant: serialising a str into a Vec cannot fail.
    let _ = serde_json::to_writer(&mut *out, s);
}

/// `--format json`: one object per message.
#[derive(Serialize)]
struct JsonMessage<'a> {
    topic: &'a str,
    qos: u8,
    retain: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    payload: Option<&'a str>,
    /// Set instead of `payload` when the payload is not UTF-8.
    #[serde(skip_serializing_if = "Option::is_none")]
    payload_hex: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    properties: Option<JsonProperties<'a>>,
}

#[derive(Serialize)]
#[serde(rename_all = "kebab-case")]
struct JsonProperties<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    payload_format_indicator: Option<u8>,
    #[serde(skip_serializing_if = "Option::is_none")]
    message_expiry_interval: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    topic_alias: Option<u16>,
    #[serde(skip_serializing_if = "Option::is_none")]
    response_topic: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    correlation_data: Option<&'a str>,
    /// Set instead of `correlation-data` when it is not UTF-8.
    #[serde(skip_serializing_if = "Option::is_none")]
    correlation_data_hex: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    user_properties: Vec<(&'a str, &'a str)>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    subscription_identifiers: Vec<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    content_type: Option<&'a str>,
}

fn write_json(publish: &Publish, out: &mut Vec<u8>) {
    let text = core::str::from_utf8(&publish.payload).ok();
    let p = &publish.properties;
    let correlation = p
        .correlation_data
        .as_ref()
        .map(|d| core::str::from_utf8(d).map_err(|_| hex::encode(d)));
    let properties = (!p.is_empty()).then(|| JsonProperties {
        payload_format_indicator: p.payload_format_indicator.map(u8::from),
        message_expiry_interval: p.message_expiry_interval,
        topic_alias: p.topic_alias.map(|a| a.get()),
        response_topic: p.response_topic.as_ref().map(|t| t.as_str()),
        correlation_data: correlation.clone().and_then(Result::ok),
        correlation_data_hex: correlation.and_then(Result::err),
        user_properties: p
            .user_properties
            .iter()
            .map(|u| (&*u.name, &*u.value))
            .collect(),
        subscription_identifiers: p.subscription_identifiers.iter().map(|i| i.get()).collect(),
        content_type: p.content_type.as_deref(),
    });
    let message = JsonMessage {
        topic: publish.topic.as_str(),
        qos: publish.qos.as_u8(),
        retain: publish.retain,
        payload: text,
        payload_hex: text.is_none().then(|| hex::encode(&publish.payload)),
        properties,
    };
    // invariant: these structs always serialise.
    let _ = serde_json::to_writer(&mut *out, &message);
}

/// A wall-clock instant broken down in UTC.
struct Time {
    secs: u64,
    nanos: u32,
    year: i64,
    month: u32,
    day: u32,
    hour: u32,
    minute: u32,
    second: u32,
    /// Days since 1970-01-01.
    days: i64,
}

impl Time {
    fn new(now: SystemTime) -> Self {
        let since = now.duration_since(UNIX_EPOCH).unwrap_or_default();
        let secs = since.as_secs();
        let days = (secs / 86_400) as i64;
        let of_day = (secs % 86_400) as u32;
        let (year, month, day) = civil_from_days(days);
        Self {
            secs,
            nanos: since.subsec_nanos(),
            year,
            month,
            day,
            hour: of_day / 3600,
            minute: of_day / 60 % 60,
            second: of_day % 60,
            days,
        }
    }

    /// `2016-08-10T09:47:38+0000`, as `%I`.
    fn iso8601(&self) -> String {
        format!(
            "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}+0000",
            self.year, self.month, self.day, self.hour, self.minute, self.second
        )
    }

    /// `2016-08-10T09:47:38.123456Z`, the `tst` of `%j`.
    fn iso8601_micros(&self) -> String {
        format!(
            "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:06}Z",
            self.year,
            self.month,
            self.day,
            self.hour,
            self.minute,
            self.second,
            self.nanos / 1000
        )
    }

    /// One `@` letter.
    fn strftime(&self, letter: u8, out: &mut Vec<u8>) {
        const DAYS: [&str; 7] = [
            "Thursday",
            "Friday",
            "Saturday",
            "Sunday",
            "Monday",
            "Tuesday",
            "Wednesday",
        ];
        const MONTHS: [&str; 12] = [
            "January",
            "February",
            "March",
            "April",
            "May",
            "June",
            "July",
            "August",
            "September",
            "October",
            "November",
            "December",
        ];
        let weekday = DAYS[self.days.rem_euclid(7) as usize];
        let month = MONTHS[(self.month as usize).saturating_sub(1) % 12];
        let _ = match letter {
            b'a' => write!(out, "{}", &weekday[..3]),
            b'A' => write!(out, "{weekday}"),
            b'b' => write!(out, "{}", &month[..3]),
            b'B' => write!(out, "{month}"),
            b'd' => write!(out, "{:02}", self.day),
            b'e' => write!(out, "{:2}", self.day),
            b'F' => write!(out, "{:04}-{:02}-{:02}", self.year, self.month, self.day),
            b'H' => write!(out, "{:02}", self.hour),
            b'I' => write!(out, "{:02}", (self.hour + 11) % 12 + 1),
            b'j' => write!(out, "{:03}", self.day_of_year()),
            b'm' => write!(out, "{:02}", self.month),
            b'M' => write!(out, "{:02}", self.minute),
            b'N' => write!(out, "{:09}", self.nanos),
            b'p' => write!(out, "{}", if self.hour < 12 { "AM" } else { "PM" }),
            b's' => write!(out, "{}", self.secs),
            b'S' => write!(out, "{:02}", self.second),
            b'T' => write!(
                out,
                "{:02}:{:02}:{:02}",
                self.hour, self.minute, self.second
            ),
            b'y' => write!(out, "{:02}", self.year.rem_euclid(100)),
            b'Y' => write!(out, "{}", self.year),
            b'z' => write!(out, "+0000"),
            b'Z' => write!(out, "UTC"),
            _ => Ok(()),
        };
    }

    fn day_of_year(&self) -> i64 {
        self.days - days_from_civil(self.year, 1, 1) + 1
    }
}

/// The proleptic Gregorian date of a day count since 1970-01-01 (Howard Hinnant's
/// `civil_from_days`).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

/// The inverse of [`civil_from_days`].
fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let m = i64::from(month);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(day) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use core::num::{NonZeroU16, NonZeroU32};
    use std::time::Duration;

    use mqtt_core::packet::UserProperty;
    use mqtt_core::topic::TopicName;
    use mqtt_core::{PacketId, QoS};

    use super::*;

    /// 2020-05-06T22:12:00.123456789Z, a Wednesday.
    fn when() -> SystemTime {
        UNIX_EPOCH + Duration::new(1_588_803_120, 123_456_789)
    }

    fn message(payload: &'static [u8]) -> Publish {
        Publish::new(TopicName::new("sensors/1").unwrap(), payload)
    }

    fn with_properties() -> Publish {
        let mut p = message(b"21.5");
        p.qos = QoS::AtLeastOnce;
        p.packet_id = PacketId::new(7);
        p.retain = true;
        let props = &mut p.properties;
        props.content_type = Some("text/plain".into());
        props.message_expiry_interval = Some(60);
        props.payload_format_indicator = Some(true);
        props.response_topic = Some(TopicName::new("reply").unwrap());
        props.correlation_data = Some("abc".into());
        props.user_properties = vec![UserProperty::new("k", "v"), UserProperty::new("a", "b")];
        props.subscription_identifiers = vec![NonZeroU32::new(5).unwrap()];
        props.topic_alias = NonZeroU16::new(3);
        p
    }

    fn render(output: Output, eol: bool, publish: &Publish) -> String {
        let mut out = Vec::new();
        Printer { output, eol }.render(publish, when(), &mut out);
        String::from_utf8(out).unwrap()
    }

    fn format(template: &str, publish: &Publish) -> String {
        render(
            Output::Format(Template::parse(template).unwrap()),
            false,
            publish,
        )
    }

    #[test]
    fn default_and_verbose_outputs_follow_mosquitto_sub() {
        let hi = message(b"hi");
        let empty = message(b"");
        assert_eq!(render(Output::Payload, true, &hi), "hi\n");
        assert_eq!(render(Output::Payload, false, &hi), "hi");
        assert_eq!(render(Output::Payload, true, &empty), "");
        assert_eq!(render(Output::Verbose, true, &hi), "sensors/1 hi\n");
        assert_eq!(render(Output::Verbose, true, &empty), "sensors/1 (null)\n");
        assert_eq!(render(Output::Verbose, false, &empty), "");
    }

    #[test]
    fn message_fields() {
        let p = with_properties();
        assert_eq!(format("%t %p %q %r %m %l", &p), "sensors/1 21.5 1 1 7 4");
        assert_eq!(format("%x|%X", &message(b"\x01\xab")), "01ab|01AB");
        assert_eq!(format("%m %q %r", &message(b"x")), "0 0 0");
        assert_eq!(format("100%% %%t", &p), "100% %t");
    }

    #[test]
    fn v5_property_fields_and_blanks_when_absent() {
        let p = with_properties();
        assert_eq!(
            format("%A|%C|%D|%E|%F|%P|%R|%S", &p),
            "3|text/plain|abc|60|1|k:v a:b|reply|5"
        );
        assert_eq!(format("%A|%C|%D|%E|%F|%P|%R|%S", &message(b"x")), "|||||||");
        assert_eq!(format("[%3E][%5C]", &message(b"x")), "[   ][     ]");
    }

    #[test]
    fn width_flags_and_precision() {
        let p = with_properties();
        assert_eq!(format("[%12t]", &p), "[   sensors/1]");
        assert_eq!(format("[%-12t]", &p), "[sensors/1   ]");
        assert_eq!(format("[%.3t]", &p), "[sen]");
        assert_eq!(format("[%5.3t]", &p), "[  sen]");
        assert_eq!(format("[%05l]", &p), "[00004]");
        assert_eq!(format("[%-05l]", &p), "[4    ]");
        assert_eq!(format("[%6p]", &p), "[  21.5]");
        assert_eq!(format("[%06x]", &message(b"\x01")), "[000001]");
    }

    #[test]
    fn escapes_and_times() {
        let p = message(b"x");
        assert_eq!(format(r"a\tb\nc\\d\0", &p), "a\tb\nc\\d\0");
        assert_eq!(format(r"\e[1m", &p), "\x1b[1m");
        assert_eq!(
            format("@Y-@m-@dT@H:@M:@S@z @@", &p),
            "2020-05-06T22:12:00+0000 @"
        );
        assert_eq!(format("@s.@N", &p), "1588803120.123456789");
        assert_eq!(
            format("@a @A @b @B @j @y @F @T @e", &p),
            "Wed Wednesday May May 127 20 2020-05-06 22:12:00  6"
        );
        assert_eq!(format("%I", &p), "2020-05-06T22:12:00+0000");
        assert_eq!(format("%U", &p), "1588803120.123456789");
    }

    #[test]
    fn json_field_is_mosquittos_object() {
        let p = with_properties();
        assert_eq!(
            format("%j", &p),
            concat!(
                r#"{"tst":"2020-05-06T22:12:00.123456Z","topic":"sensors/1","qos":1,"retain":1,"#,
                r#""payloadlen":4,"mid":7,"properties":{"payload-format-indicator":1,"#,
                r#""message-expiry-interval":60,"topic-alias":3,"response-topic":"reply","#,
                r#""correlation-data":"abc","user-properties":{"k":"v","a":"b"},"#,
                r#""subscription-identifier":5,"content-type":"text/plain"},"payload":"21.5"}"#
            )
        );
        assert_eq!(
            format("%j", &message(b"a\"b")),
            r#"{"tst":"2020-05-06T22:12:00.123456Z","topic":"sensors/1","qos":0,"retain":0,"payloadlen":3,"payload":"a\"b"}"#
        );
        assert!(format("%j", &message(b"\x00\xff")).ends_with(r#""payload":[0,255]}"#));
        assert!(format("%j", &message(b"")).ends_with(r#""payload":null}"#));
    }

    #[test]
    fn json_payload_field_inserts_json_or_warns() {
        let p = message(b" {\"t\": 27} ");
        assert!(format("%J", &p).ends_with(r#""payload":{"t": 27}}"#));
        let mut out = Vec::new();
        let printer = Printer {
            output: Output::Format(Template::parse("<%J>").unwrap()),
            eol: true,
        };
        let warning = printer.render(&message(b"not json"), when(), &mut out);
        assert_eq!(out, b"<>\n");
        assert!(warning
            .unwrap()
            .contains("not valid JSON on topic sensors/1"));
    }

    #[test]
    fn format_json_output() {
        assert_eq!(
            render(Output::Json, true, &message(b"hi")),
            "{\"topic\":\"sensors/1\",\"qos\":0,\"retain\":false,\"payload\":\"hi\"}\n"
        );
        assert_eq!(
            render(Output::Json, false, &message(b"\xff\x00")),
            r#"{"topic":"sensors/1","qos":0,"retain":false,"payload_hex":"ff00"}"#
        );
        let json = render(Output::Json, false, &with_properties());
        let v: serde_json::Value = serde_json::from_str(&json).unwrap();
        assert_eq!(v["retain"], true);
        assert_eq!(v["properties"]["content-type"], "text/plain");
        assert_eq!(v["properties"]["user-properties"][1][0], "a");
        assert_eq!(v["properties"]["subscription-identifiers"][0], 5);
        assert_eq!(v["properties"]["correlation-data"], "abc");
    }

    #[test]
    fn bad_format_strings_are_refused() {
        for (bad, needle) in [
            ("%", "incomplete"),
            ("%-0", "incomplete"),
            ("%k", "'%k'"),
            ("@", "incomplete"),
            ("@q", "'@q'"),
            ("\\", "incomplete escape"),
            ("\\z", "'\\z'"),
        ] {
            let err = Template::parse(bad).unwrap_err().to_string();
            assert!(err.contains(needle), "{bad}: {err}");
        }
    }

    #[test]
    fn calendar_round_trips() {
        for days in [-719_468, -1, 0, 59, 365, 11_016, 18_388, 2_932_896] {
            let (y, m, d) = civil_from_days(days);
            assert_eq!(days_from_civil(y, m, d), days, "{y}-{m}-{d}");
        }
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(11_016), (2000, 2, 29));
    }
}
