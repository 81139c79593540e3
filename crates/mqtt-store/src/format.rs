//! The record format: a small hand-written binary encoding of the stored types, and the
//! conversion of `Instant`s to wall-clock milliseconds and back.
//!
//! Every record starts with a version byte ([`RECORD_VERSION`]). Then its fields, in the
//! order of the struct: integers big-endian, `bool` as one byte (0 or 1), strings and byte
//! strings as a `u32` length and the bytes, lists as a `u32` count and the items, `Option`s as
//! a tag byte (0: none, 1: some) and the value. Times are `i64` milliseconds since the UNIX
//! epoch. Decoding checks every length against what is left before it takes anything, so a
//! corrupt record is an error, never a panic or a huge allocation.

use std::num::{NonZeroU16, NonZeroU32};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::{Buf, Bytes};
use bytestring::ByteString;
use mqtt_core::broker::store::{
    StoredDelivery, StoredFlow, StoredMessage, StoredSession, StoredSubscription,
};
use mqtt_core::packet::{
    PublishProperties, RetainHandling, SubscriptionOptions, UserProperty, Will, WillProperties,
};
use mqtt_core::topic::TopicName;
use mqtt_core::{PacketId, ProtocolVersion, QoS};

/// The version byte every record starts with.
pub(crate) const RECORD_VERSION: u8 = 1;

/// The tags of the items of a delivery-log entry.
const LOG_PUT: u8 = 1;
const LOG_DELETE: u8 = 2;
const LOG_DELETE_SESSION: u8 = 3;
const LOG_FLOW: u8 = 4;

/// Where an outgoing message in flight stands, as a delivery stores it.
pub(crate) type Inflight = Option<(PacketId, StoredFlow)>;

/// One item of a delivery-log entry (a record of the `delivery_log` table: the version byte,
/// then items, each a tag byte and its fields).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum LogItem {
    /// `(client, seq)` is now the delivery in `record` (a whole delivery record).
    Put {
        client: ByteString,
        seq: u64,
        record: Bytes,
    },
    /// `(client, seq)` was deleted.
    Delete { client: ByteString, seq: u64 },
    /// Every delivery of `client` logged before this item is gone.
    DeleteSession { client: ByteString },
    /// `(client, seq)`, if logged, is now in flight as `inflight` says.
    Flow {
        client: ByteString,
        seq: u64,
        inflight: Inflight,
    },
}

/// Why a record cannot be decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Malformed(pub(crate) String);

impl Malformed {
    fn new(what: impl Into<String>) -> Self {
        Self(what.into())
    }
}

type Result<T> = std::result::Result<T, Malformed>;

/// The pair of clocks that turns the process's `Instant`s into wall-clock times and back.
///
/// An `Instant` only means something inside the process that made it, so a time is stored
/// as the wall-clock time it stood for when it was written, and loaded as the `Instant` that
/// stands for that wall-clock time in the new process: `now.checked_sub(..)` for a time in
/// the past, and when the platform's `Instant` cannot go back that far, the anchor `now`
/// itself: every stored time is a deadline (an expiry, a will delay), and one that far in the
/// past is simply due.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Clock {
    now: Instant,
    /// Nanoseconds since the UNIX epoch at `now` (negative before it).
    wall_nanos: i128,
}

impl Clock {
    pub(crate) fn new(now: Instant, wall: SystemTime) -> Self {
        let wall_nanos = match wall.duration_since(UNIX_EPOCH) {
            Ok(d) => d.as_nanos() as i128,
            Err(e) => -(e.duration().as_nanos() as i128),
        };
        Self { now, wall_nanos }
    }

    /// Milliseconds since the UNIX epoch at `t` (rounded down).
    pub(crate) fn to_wall_millis(self, t: Instant) -> i64 {
        let offset = if t >= self.now {
            (t - self.now).as_nanos() as i128
        } else {
            -((self.now - t).as_nanos() as i128)
        };
        let ms = (self.wall_nanos + offset).div_euclid(1_000_000);
        ms.clamp(i128::from(i64::MIN), i128::from(i64::MAX)) as i64
    }

    /// The `Instant` at `ms` milliseconds since the UNIX epoch.
    pub(crate) fn to_instant(self, ms: i64) -> Instant {
        let offset = i128::from(ms) * 1_000_000 - self.wall_nanos;
        let d = nanos(offset.unsigned_abs());
        if offset >= 0 {
            // Beyond what an Instant holds (centuries away): as far as it goes.
            self.now
                .checked_add(d)
                .or_else(|| {
                    self.now
                        .checked_add(Duration::from_secs(u64::from(u32::MAX)))
                })
                .unwrap_or(self.now)
        } else {
            self.now.checked_sub(d).unwrap_or(self.now)
        }
    }
}

fn nanos(n: u128) -> Duration {
    let secs = u64::try_from(n / 1_000_000_000).unwrap_or(u64::MAX);
    Duration::new(secs, (n % 1_000_000_000) as u32)
}

/// Builds one record.
pub(crate) struct Writer {
    buf: Vec<u8>,
    clock: Clock,
}

impl Writer {
    pub(crate) fn new(clock: Clock) -> Self {
        Self::reusing(Vec::with_capacity(64), clock)
    }

    /// A writer into `buf`, emptied first; its allocation is kept.
    fn reusing(mut buf: Vec<u8>, clock: Clock) -> Self {
        buf.clear();
        buf.push(RECORD_VERSION);
        Self { buf, clock }
    }

    pub(crate) fn finish(self) -> Vec<u8> {
        self.buf
    }

    /// Empties the record, keeping the allocation.
    pub(crate) fn clear(&mut self) {
        self.buf.clear();
        self.buf.push(RECORD_VERSION);
    }

    /// The record so far.
    pub(crate) fn as_slice(&self) -> &[u8] {
        &self.buf
    }

    /// Whether nothing but the version byte was written.
    pub(crate) fn is_empty(&self) -> bool {
        self.buf.len() <= 1
    }

    /// A delivery-log item: `(client id, seq)` is now `d`. The delivery goes in as a whole
    /// record (length-prefixed, with its version byte), so that moving it into the
    /// `deliveries` table is a copy of its bytes.
    pub(crate) fn log_put(&mut self, client: &str, seq: u64, d: &StoredDelivery) {
        self.u8(LOG_PUT);
        self.str(client);
        self.u64(seq);
        let at = self.buf.len();
        self.u32(0);
        self.u8(RECORD_VERSION);
        self.delivery(d);
        let n = self.buf.len() - at - 4;
        // invariant: a delivery record is far below 4 GiB (a packet is at most 256 MiB).
        let n = u32::try_from(n).unwrap_or(u32::MAX).to_be_bytes();
        if let Some(len) = self.buf.get_mut(at..at + 4) {
            len.copy_from_slice(&n);
        }
    }

    /// A delivery-log item: `(client id, seq)` was deleted.
    pub(crate) fn log_delete(&mut self, client: &str, seq: u64) {
        self.u8(LOG_DELETE);
        self.str(client);
        self.u64(seq);
    }

    /// A delivery-log item: every delivery of `client` logged before is gone.
    pub(crate) fn log_delete_session(&mut self, client: &str) {
        self.u8(LOG_DELETE_SESSION);
        self.str(client);
    }

    fn u8(&mut self, v: u8) {
        self.buf.push(v);
    }

    fn u16(&mut self, v: u16) {
        self.buf.extend_from_slice(&v.to_be_bytes());
    }

    fn u32(&mut self, v: u32) {
        self.buf.extend_from_slice(&v.to_be_bytes());
    }

    fn i64(&mut self, v: i64) {
        self.buf.extend_from_slice(&v.to_be_bytes());
    }

    fn u64(&mut self, v: u64) {
        self.buf.extend_from_slice(&v.to_be_bytes());
    }

    fn bool(&mut self, v: bool) {
        self.u8(u8::from(v));
    }

    fn len(&mut self, n: usize) {
        // invariant: MQTT strings, payloads and lists are far below 4 GiB (a packet is at
        // most 256 MiB); saturating keeps the record decodable-as-corrupt if it ever is not.
        self.u32(u32::try_from(n).unwrap_or(u32::MAX));
    }

    fn bytes(&mut self, v: &[u8]) {
        self.len(v.len());
        self.buf.extend_from_slice(v);
    }

    fn str(&mut self, v: &str) {
        self.bytes(v.as_bytes());
    }

    fn time(&mut self, t: Instant) {
        let ms = self.clock.to_wall_millis(t);
        self.i64(ms);
    }

    fn option<T>(&mut self, v: Option<T>, f: impl FnOnce(&mut Self, T)) {
        match v {
            None => self.u8(0),
            Some(v) => {
                self.u8(1);
                f(self, v);
            }
        }
    }

    fn list<T>(&mut self, items: &[T], mut f: impl FnMut(&mut Self, &T)) {
        self.len(items.len());
        for item in items {
            f(self, item);
        }
    }

    fn user_properties(&mut self, props: &[UserProperty]) {
        self.list(props, |w, p| {
            w.str(&p.name);
            w.str(&p.value);
        });
    }

    pub(crate) fn message(&mut self, m: &StoredMessage) {
        self.str(m.topic.as_str());
        self.bytes(&m.payload);
        self.u8(m.qos.as_u8());
        self.bool(m.retain);
        let p = &m.properties;
        self.option(p.payload_format_indicator, Self::bool);
        self.option(p.message_expiry_interval, Self::u32);
        self.option(p.topic_alias, |w, a| w.u16(a.get()));
        self.option(p.response_topic.as_ref(), |w, t| w.str(t.as_str()));
        self.option(p.correlation_data.as_ref(), |w, d| w.bytes(d));
        self.user_properties(&p.user_properties);
        self.list(&p.subscription_identifiers, |w, id| w.u32(id.get()));
        self.option(p.content_type.as_ref(), |w, c| w.str(c));
        self.option(m.expires_at, Self::time);
        self.option(m.origin.as_ref(), |w, o| w.str(o));
    }

    pub(crate) fn delivery(&mut self, d: &StoredDelivery) {
        self.message(&d.message);
        self.u8(d.qos.as_u8());
        self.bool(d.retain);
        self.list(&d.sub_ids, |w, id| w.u32(id.get()));
        self.inflight(d.inflight);
    }

    fn inflight(&mut self, inflight: Inflight) {
        self.option(inflight, |w, (id, flow)| {
            w.u16(id.get());
            w.u8(match flow {
                StoredFlow::Published => 0,
                StoredFlow::Released => 1,
            });
        });
    }

    /// A delivery-log item: `(client id, seq)` is now in flight as `inflight` says.
    pub(crate) fn log_flow(&mut self, client: &str, seq: u64, inflight: Inflight) {
        self.u8(LOG_FLOW);
        self.str(client);
        self.u64(seq);
        self.inflight(inflight);
    }

    pub(crate) fn session(&mut self, s: &StoredSession) {
        self.u8(s.version.level());
        self.u32(s.expiry_interval);
        self.option(s.expires_at, Self::time);
        self.list(&s.subscriptions, |w, sub| {
            w.str(&sub.filter);
            w.u8(sub.options.qos.as_u8());
            w.bool(sub.options.no_local);
            w.bool(sub.options.retain_as_published);
            w.u8(sub.options.retain_handling as u8);
            w.option(sub.id, |w, id| w.u32(id.get()));
        });
        self.option(s.pending_will.as_ref(), |w, (at, will)| {
            w.time(*at);
            w.will(will);
        });
    }

    fn will(&mut self, will: &Will) {
        self.str(will.topic.as_str());
        self.bytes(&will.payload);
        self.u8(will.qos.as_u8());
        self.bool(will.retain);
        let p = &will.properties;
        self.option(p.will_delay_interval, Self::u32);
        self.option(p.payload_format_indicator, Self::bool);
        self.option(p.message_expiry_interval, Self::u32);
        self.option(p.content_type.as_ref(), |w, c| w.str(c));
        self.option(p.response_topic.as_ref(), |w, t| w.str(t.as_str()));
        self.option(p.correlation_data.as_ref(), |w, d| w.bytes(d));
        self.user_properties(&p.user_properties);
    }
}

/// Reads one record. The strings and byte strings it returns share the record's buffer.
pub(crate) struct Reader {
    buf: Bytes,
    clock: Clock,
}

impl Reader {
    /// Checks the version byte of `record`.
    pub(crate) fn new(record: Bytes, clock: Clock) -> Result<Self> {
        let mut r = Self { buf: record, clock };
        match r.u8()? {
            RECORD_VERSION => Ok(r),
            v => Err(Malformed(format!("unknown record version {v}"))),
        }
    }

    /// Checks that nothing is left over.
    pub(crate) fn finish(self) -> Result<()> {
        if self.buf.is_empty() {
            Ok(())
        } else {
            Err(Malformed(format!(
                "{} bytes left over after the record",
                self.buf.len()
            )))
        }
    }

    fn need(&self, n: usize) -> Result<()> {
        if self.buf.remaining() < n {
            Err(Malformed::new("the record ends too early"))
        } else {
            Ok(())
        }
    }

    fn u8(&mut self) -> Result<u8> {
        self.need(1)?;
        Ok(self.buf.get_u8())
    }

    fn u16(&mut self) -> Result<u16> {
        self.need(2)?;
        Ok(self.buf.get_u16())
    }

    fn u32(&mut self) -> Result<u32> {
        self.need(4)?;
        Ok(self.buf.get_u32())
    }

    fn i64(&mut self) -> Result<i64> {
        self.need(8)?;
        Ok(self.buf.get_i64())
    }

    fn u64(&mut self) -> Result<u64> {
        self.need(8)?;
        Ok(self.buf.get_u64())
    }

    /// The next item of a delivery-log entry, `None` after the last.
    pub(crate) fn log_item(&mut self) -> Result<Option<LogItem>> {
        if self.buf.is_empty() {
            return Ok(None);
        }
        let item = match self.u8()? {
            LOG_PUT => LogItem::Put {
                client: self.str()?,
                seq: self.u64()?,
                record: self.bytes()?,
            },
            LOG_DELETE => LogItem::Delete {
                client: self.str()?,
                seq: self.u64()?,
            },
            LOG_DELETE_SESSION => LogItem::DeleteSession {
                client: self.str()?,
            },
            LOG_FLOW => LogItem::Flow {
                client: self.str()?,
                seq: self.u64()?,
                inflight: self.inflight()?,
            },
            tag => return Err(Malformed(format!("unknown delivery-log item {tag}"))),
        };
        Ok(Some(item))
    }

    fn bool(&mut self) -> Result<bool> {
        match self.u8()? {
            0 => Ok(false),
            1 => Ok(true),
            v => Err(Malformed(format!("{v} is not a boolean"))),
        }
    }

    fn bytes(&mut self) -> Result<Bytes> {
        let n = self.u32()? as usize;
        self.need(n)?;
        Ok(self.buf.split_to(n))
    }

    fn str(&mut self) -> Result<ByteString> {
        ByteString::try_from(self.bytes()?).map_err(|_| Malformed::new("a string is not UTF-8"))
    }

    fn topic(&mut self) -> Result<TopicName> {
        let s = self.str()?;
        if s.is_empty() {
            return Ok(TopicName::empty());
        }
        TopicName::new(s).map_err(|e| Malformed(format!("invalid topic name: {e}")))
    }

    fn qos(&mut self) -> Result<QoS> {
        let v = self.u8()?;
        QoS::from_u8(v).ok_or_else(|| Malformed(format!("{v} is not a QoS")))
    }

    fn time(&mut self) -> Result<Instant> {
        let ms = self.i64()?;
        Ok(self.clock.to_instant(ms))
    }

    fn non_zero_u32(&mut self) -> Result<NonZeroU32> {
        NonZeroU32::new(self.u32()?).ok_or_else(|| Malformed::new("an identifier is 0"))
    }

    fn option<T>(&mut self, f: impl FnOnce(&mut Self) -> Result<T>) -> Result<Option<T>> {
        match self.u8()? {
            0 => Ok(None),
            1 => f(self).map(Some),
            v => Err(Malformed(format!("{v} is not an option tag"))),
        }
    }

    fn list<T>(&mut self, mut f: impl FnMut(&mut Self) -> Result<T>) -> Result<Vec<T>> {
        let n = self.u32()? as usize;
        // Every item takes at least one byte: a count above what is left is corrupt, and
        // checking it first keeps a corrupt count from reserving gigabytes.
        self.need(n)?;
        let mut items = Vec::with_capacity(n);
        for _ in 0..n {
            items.push(f(self)?);
        }
        Ok(items)
    }

    fn user_properties(&mut self) -> Result<Vec<UserProperty>> {
        self.list(|r| {
            Ok(UserProperty {
                name: r.str()?,
                value: r.str()?,
            })
        })
    }

    pub(crate) fn message(&mut self) -> Result<StoredMessage> {
        let topic = self.topic()?;
        let payload = self.bytes()?;
        let qos = self.qos()?;
        let retain = self.bool()?;
        let properties = PublishProperties {
            payload_format_indicator: self.option(Self::bool)?,
            message_expiry_interval: self.option(Self::u32)?,
            topic_alias: self.option(|r| {
                NonZeroU16::new(r.u16()?).ok_or_else(|| Malformed::new("topic alias 0"))
            })?,
            response_topic: self.option(Self::topic)?,
            correlation_data: self.option(Self::bytes)?,
            user_properties: self.user_properties()?,
            subscription_identifiers: self.list(Self::non_zero_u32)?,
            content_type: self.option(Self::str)?,
        };
        Ok(StoredMessage {
            topic,
            payload,
            qos,
            retain,
            properties,
            expires_at: self.option(Self::time)?,
            origin: self.option(Self::str)?,
        })
    }

    pub(crate) fn delivery(&mut self) -> Result<StoredDelivery> {
        Ok(StoredDelivery {
            message: self.message()?,
            qos: self.qos()?,
            retain: self.bool()?,
            sub_ids: self.list(Self::non_zero_u32)?,
            inflight: self.inflight()?,
        })
    }

    fn inflight(&mut self) -> Result<Inflight> {
        self.option(|r| {
            let id = PacketId::new(r.u16()?).ok_or_else(|| Malformed::new("packet id 0"))?;
            let flow = match r.u8()? {
                0 => StoredFlow::Published,
                1 => StoredFlow::Released,
                v => return Err(Malformed(format!("{v} is not a flow state"))),
            };
            Ok((id, flow))
        })
    }

    pub(crate) fn session(&mut self) -> Result<StoredSession> {
        let level = self.u8()?;
        let version = ProtocolVersion::from_level(level)
            .ok_or_else(|| Malformed(format!("{level} is not a protocol level")))?;
        Ok(StoredSession {
            version,
            expiry_interval: self.u32()?,
            expires_at: self.option(Self::time)?,
            subscriptions: self.list(|r| {
                let filter = r.str()?;
                let qos = r.qos()?;
                let no_local = r.bool()?;
                let retain_as_published = r.bool()?;
                let rh = r.u8()?;
                let retain_handling = RetainHandling::from_u8(rh)
                    .ok_or_else(|| Malformed(format!("{rh} is not a retain handling")))?;
                Ok(StoredSubscription {
                    filter,
                    options: SubscriptionOptions {
                        qos,
                        no_local,
                        retain_as_published,
                        retain_handling,
                    },
                    id: r.option(Self::non_zero_u32)?,
                })
            })?,
            pending_will: self.option(|r| Ok((r.time()?, r.will()?)))?,
        })
    }

    fn will(&mut self) -> Result<Will> {
        Ok(Will {
            topic: self.topic()?,
            payload: self.bytes()?,
            qos: self.qos()?,
            retain: self.bool()?,
            properties: WillProperties {
                will_delay_interval: self.option(Self::u32)?,
                payload_format_indicator: self.option(Self::bool)?,
                message_expiry_interval: self.option(Self::u32)?,
                content_type: self.option(Self::str)?,
                response_topic: self.option(Self::topic)?,
                correlation_data: self.option(Self::bytes)?,
                user_properties: self.user_properties()?,
            },
        })
    }
}

/// Encodes a session record.
pub(crate) fn encode_session(s: &StoredSession, clock: Clock) -> Vec<u8> {
    let mut w = Writer::new(clock);
    w.session(s);
    w.finish()
}

/// Encodes a delivery record.
pub(crate) fn encode_delivery(d: &StoredDelivery, clock: Clock) -> Vec<u8> {
    let mut buf = Vec::new();
    encode_delivery_into(&mut buf, d, clock);
    buf
}

/// Encodes a delivery record into `buf`, replacing what it held and keeping its allocation:
/// one buffer serves every delivery of a commit.
pub(crate) fn encode_delivery_into(buf: &mut Vec<u8>, d: &StoredDelivery, clock: Clock) {
    let mut w = Writer::reusing(std::mem::take(buf), clock);
    w.delivery(d);
    *buf = w.finish();
}

/// Encodes a retained message record.
pub(crate) fn encode_message(m: &StoredMessage, clock: Clock) -> Vec<u8> {
    let mut w = Writer::new(clock);
    w.message(m);
    w.finish()
}

/// Decodes a session record.
pub(crate) fn decode_session(record: Bytes, clock: Clock) -> Result<StoredSession> {
    let mut r = Reader::new(record, clock)?;
    let s = r.session()?;
    r.finish()?;
    Ok(s)
}

/// Decodes a delivery record.
pub(crate) fn decode_delivery(record: Bytes, clock: Clock) -> Result<StoredDelivery> {
    let mut r = Reader::new(record, clock)?;
    let d = r.delivery()?;
    r.finish()?;
    Ok(d)
}

/// Decodes a retained message record.
pub(crate) fn decode_message(record: Bytes, clock: Clock) -> Result<StoredMessage> {
    let mut r = Reader::new(record, clock)?;
    let m = r.message()?;
    r.finish()?;
    Ok(m)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    fn clock() -> (Instant, Clock) {
        let now = Instant::now();
        let wall = UNIX_EPOCH + Duration::from_millis(1_700_000_000_000);
        (now, Clock::new(now, wall))
    }

    /// A message with every field set (also for the other modules' tests).
    pub(crate) fn message(now: Instant) -> StoredMessage {
        StoredMessage {
            topic: TopicName::new("a/b").unwrap(),
            payload: Bytes::from_static(b"payload"),
            qos: QoS::ExactlyOnce,
            retain: true,
            properties: PublishProperties {
                payload_format_indicator: Some(true),
                message_expiry_interval: Some(7),
                topic_alias: NonZeroU16::new(3),
                response_topic: Some(TopicName::new("r").unwrap()),
                correlation_data: Some(Bytes::from_static(b"c")),
                user_properties: vec![UserProperty::new("k", "v")],
                subscription_identifiers: vec![NonZeroU32::new(9).unwrap()],
                content_type: Some("text/plain".into()),
            },
            expires_at: Some(now + Duration::from_secs(5)),
            origin: Some("pub".into()),
        }
    }

    #[test]
    fn a_message_comes_back_and_every_prefix_is_an_error() {
        let (now, clock) = clock();
        let m = message(now);
        let bytes = encode_message(&m, clock);
        assert_eq!(decode_message(Bytes::from(bytes.clone()), clock), Ok(m));
        for n in 0..bytes.len() {
            let cut = Bytes::copy_from_slice(&bytes[..n]);
            assert!(decode_message(cut, clock).is_err(), "prefix of {n} bytes");
        }
        let mut longer = bytes.clone();
        longer.push(0);
        assert!(decode_message(Bytes::from(longer), clock).is_err());
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        let (now, clock) = clock();
        let bytes = encode_message(&message(now), clock);
        for i in 0..bytes.len() {
            for v in [0x00, 0x01, 0x7f, 0x80, 0xff] {
                let mut b = bytes.clone();
                b[i] = v;
                let _ = decode_message(Bytes::from(b.clone()), clock);
                let _ = decode_delivery(Bytes::from(b.clone()), clock);
                let _ = decode_session(Bytes::from(b), clock);
            }
        }
    }

    #[test]
    fn times_convert_to_whole_milliseconds_and_back() {
        let (now, clock) = clock();
        for ms in [0u64, 1, 999, 86_400_000] {
            let t = now + Duration::from_millis(ms);
            assert_eq!(clock.to_instant(clock.to_wall_millis(t)), t);
        }
        // Sub-millisecond parts are dropped.
        let t = now + Duration::from_micros(1_500);
        assert_eq!(
            clock.to_instant(clock.to_wall_millis(t)),
            now + Duration::from_millis(1)
        );
        // Long before anything: in the past, whether representable or clamped to `now`.
        assert!(clock.to_instant(i64::MIN) <= now);
        assert!(clock.to_instant(i64::MAX) > now);
        // A time read by a process that started 10 s later is the same wall-clock time.
        let later = Clock::new(
            now + Duration::from_secs(10),
            UNIX_EPOCH + Duration::from_millis(1_700_000_010_000),
        );
        let t = now + Duration::from_secs(30);
        assert_eq!(later.to_instant(clock.to_wall_millis(t)), t);
    }
}
