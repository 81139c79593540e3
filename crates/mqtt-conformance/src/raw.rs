//! A raw MQTT peer over `std::net::TcpStream` and `mqtt_core::codec`: it sends any packet or
//! any bytes, and decodes what the broker answers. For behaviours a well-behaved client
//! cannot show: bad input, exact reason codes and flags, silence, duplicates.
//!
//! Every read is bounded: by [`WAIT`] for what must come, by the given timeout otherwise. A
//! broker's bytes that do not decode are a [`Failure`], never a panic.

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use mqtt_core::codec::{decode, encode, DecodeLimits};
use mqtt_core::packet::{
    Ack, ConnAck, Connect, Subscribe, SubscribeProperties, Subscription, SubscriptionOptions,
};
use mqtt_core::topic::{TopicFilter, TopicName};
use mqtt_core::{Packet, PacketId, ProtocolVersion, Publish, QoS, ReasonCode};

use crate::harness::WAIT;
use crate::Failure;

/// A raw MQTT connection to the broker.
#[derive(Debug)]
pub struct RawPeer {
    stream: TcpStream,
    rx: BytesMut,
    /// The version packets are coded in.
    pub version: ProtocolVersion,
    closed: bool,
}

impl RawPeer {
    /// Opens a TCP connection; nothing is sent yet.
    pub fn open(addr: SocketAddr, version: ProtocolVersion) -> Result<Self, Failure> {
        let stream = TcpStream::connect_timeout(&addr, WAIT)
            .map_err(|e| Failure::new(format!("raw peer: cannot connect to {addr}: {e}")))?;
        let _ = stream.set_nodelay(true);
        stream
            .set_write_timeout(Some(WAIT))
            .map_err(|e| Failure::new(format!("raw peer: {e}")))?;
        Ok(Self {
            stream,
            rx: BytesMut::with_capacity(4096),
            version,
            closed: false,
        })
    }

    /// Opens a connection, sends `connect` and expects CONNACK 0x00; returns the CONNACK.
    #[track_caller]
    pub fn connect(addr: SocketAddr, connect: Connect) -> Result<(Self, ConnAck), Failure> {
        let mut peer = Self::open(addr, connect.protocol_version)?;
        let id = connect.client_id.clone();
        let ack = peer.connect_with(connect)?;
        if ack.reason_code != ReasonCode::Success {
            return Err(Failure::new(format!(
                "raw peer {id:?}: CONNECT refused with {}",
                ack.reason_code
            )));
        }
        Ok((peer, ack))
    }

    /// Sends `connect` and returns the CONNACK, whatever its code.
    #[track_caller]
    pub fn connect_with(&mut self, connect: Connect) -> Result<ConnAck, Failure> {
        self.send(&Packet::Connect(Box::new(connect)))?;
        match self.recv()? {
            Packet::ConnAck(ack) => Ok(*ack),
            other => Err(Failure::new(format!("expected CONNACK, got {other:?}"))),
        }
    }

    /// Encodes and sends `packet`.
    #[track_caller]
    pub fn send(&mut self, packet: &Packet) -> Result<(), Failure> {
        let mut wire = BytesMut::new();
        encode(packet, self.version, &mut wire)
            .map_err(|e| Failure::new(format!("raw peer: cannot encode {packet:?}: {e}")))?;
        self.send_bytes(&wire)
    }

    /// Sends `bytes` as they are.
    #[track_caller]
    pub fn send_bytes(&mut self, bytes: &[u8]) -> Result<(), Failure> {
        self.stream
            .write_all(bytes)
            .map_err(|e| Failure::new(format!("raw peer: write failed: {e}")))
    }

    /// Sends `bytes`, tolerating a broker that already closed the socket.
    pub fn send_bytes_lossy(&mut self, bytes: &[u8]) {
        let _ = self.stream.write_all(bytes);
    }

    /// The next packet within `timeout`: `Ok(Some)` a packet, `Ok(None)` the broker closed
    /// the connection; a timeout or undecodable bytes are failures.
    #[track_caller]
    pub fn next_within(&mut self, timeout: Duration) -> Result<Option<Packet>, Failure> {
        match self.poll(timeout)? {
            Poll::Packet(p) => Ok(Some(p)),
            Poll::Closed => Ok(None),
            Poll::Timeout => Err(Failure::new(format!(
                "raw peer: nothing from the broker within {timeout:?}"
            ))),
        }
    }

    /// The next packet within [`WAIT`], or `None` if the broker closed the connection.
    #[track_caller]
    pub fn next_packet(&mut self) -> Result<Option<Packet>, Failure> {
        self.next_within(WAIT)
    }

    /// The next packet within [`WAIT`]; a close is a failure.
    #[track_caller]
    pub fn recv(&mut self) -> Result<Packet, Failure> {
        match self.next_packet()? {
            Some(p) => Ok(p),
            None => Err(Failure::new("raw peer: the broker closed the connection")),
        }
    }

    /// Waits up to `timeout` for a packet or the close, returning which (or a timeout).
    #[track_caller]
    pub fn poll(&mut self, timeout: Duration) -> Result<Poll, Failure> {
        let deadline = Instant::now() + timeout;
        let limits = DecodeLimits::default();
        let mut chunk = [0u8; 16 * 1024];
        loop {
            match decode(&mut self.rx, self.version, &limits) {
                Ok(Some(p)) => return Ok(Poll::Packet(p)),
                Ok(None) => {}
                Err(e) => {
                    return Err(Failure::new(format!(
                        "raw peer: the broker sent bytes that do not decode: {e}"
                    )))
                }
            }
            if self.closed {
                if self.rx.is_empty() {
                    return Ok(Poll::Closed);
                }
                return Err(Failure::new(format!(
                    "raw peer: the broker closed the connection inside a packet ({} bytes left)",
                    self.rx.len()
                )));
            }
            let now = Instant::now();
            if now >= deadline {
                return Ok(Poll::Timeout);
            }
            let left = (deadline - now).max(Duration::from_millis(1));
            self.stream
                .set_read_timeout(Some(left))
                .map_err(|e| Failure::new(format!("raw peer: {e}")))?;
            match self.stream.read(&mut chunk) {
                Ok(0) => self.closed = true,
                Ok(n) => self
                    .rx
                    .extend_from_slice(chunk.get(..n).unwrap_or_default()),
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                // A reset is the broker closing too (it may not have read all we sent).
                Err(_) => self.closed = true,
            }
        }
    }

    /// Expects no packet and no close for `quiet`.
    #[track_caller]
    pub fn expect_silence(&mut self, quiet: Duration) -> Result<(), Failure> {
        match self.poll(quiet)? {
            Poll::Timeout => Ok(()),
            Poll::Packet(p) => Err(Failure::new(format!(
                "expected silence for {quiet:?}, got {p:?}"
            ))),
            Poll::Closed => Err(Failure::new(format!(
                "expected the connection to stay open for {quiet:?}, but the broker closed it"
            ))),
        }
    }

    /// Expects the broker to close the connection, with nothing (more) sent.
    #[track_caller]
    pub fn expect_closed(&mut self) -> Result<(), Failure> {
        match self.next_packet()? {
            None => Ok(()),
            Some(p) => Err(Failure::new(format!(
                "expected the broker to close the connection, got {p:?}"
            ))),
        }
    }

    /// Expects DISCONNECT with `code`, then the close.
    #[track_caller]
    pub fn expect_disconnect(&mut self, code: ReasonCode) -> Result<(), Failure> {
        match self.next_packet()? {
            Some(Packet::Disconnect(d)) if d.reason_code == code => self.expect_closed(),
            Some(Packet::Disconnect(d)) => Err(Failure::new(format!(
                "expected DISCONNECT {code}, got DISCONNECT {}",
                d.reason_code
            ))),
            Some(p) => Err(Failure::new(format!(
                "expected DISCONNECT {code}, got {p:?}"
            ))),
            None => Err(Failure::new(format!(
                "expected DISCONNECT {code}, but the connection closed without it"
            ))),
        }
    }

    /// A 5.0 peer expects DISCONNECT `code` then the close; an earlier version just the
    /// close (3.x has no server DISCONNECT).
    #[track_caller]
    pub fn expect_refusal(&mut self, code: ReasonCode) -> Result<(), Failure> {
        if self.version.is_v5() {
            self.expect_disconnect(code)
        } else {
            self.expect_closed()
        }
    }

    /// Sends PINGREQ and expects PINGRESP as the very next packet: everything the broker
    /// had queued for this connection before it read the PINGREQ has arrived, and nothing
    /// else was.
    #[track_caller]
    pub fn ping(&mut self) -> Result<(), Failure> {
        self.send(&Packet::PingReq)?;
        match self.recv()? {
            Packet::PingResp => Ok(()),
            other => Err(Failure::new(format!(
                "expected PINGRESP (nothing else pending), got {other:?}"
            ))),
        }
    }

    /// Subscribes to one filter with `options` and returns the SUBACK's one reason code.
    #[track_caller]
    pub fn subscribe_with(
        &mut self,
        packet_id: u16,
        filter: &str,
        options: SubscriptionOptions,
        properties: SubscribeProperties,
    ) -> Result<ReasonCode, Failure> {
        let subscription = Subscription {
            filter: filter_of(filter)?,
            options,
        };
        self.send(&Packet::Subscribe(Subscribe {
            packet_id: pid(packet_id)?,
            subscriptions: vec![subscription],
            properties,
        }))?;
        match self.recv()? {
            Packet::SubAck(ack) => match ack.reason_codes.as_slice() {
                [code] => Ok(*code),
                codes => Err(Failure::new(format!(
                    "SUBACK with {codes:?} for one filter"
                ))),
            },
            other => Err(Failure::new(format!("expected SUBACK, got {other:?}"))),
        }
    }

    /// Subscribes to `filter` at `qos` and expects it granted.
    #[track_caller]
    pub fn subscribe(&mut self, filter: &str, qos: QoS) -> Result<(), Failure> {
        let options = SubscriptionOptions {
            qos,
            ..SubscriptionOptions::default()
        };
        let code = self.subscribe_with(1, filter, options, SubscribeProperties::default())?;
        let granted = ReasonCode::from_u8(qos.as_u8()).unwrap_or(ReasonCode::Success);
        if code != granted {
            return Err(Failure::new(format!(
                "SUBACK {code} for {filter:?} at {qos:?}"
            )));
        }
        Ok(())
    }

    /// Expects a PUBLISH next.
    #[track_caller]
    pub fn expect_publish(&mut self) -> Result<Publish, Failure> {
        match self.recv()? {
            Packet::Publish(p) => Ok(p),
            other => Err(Failure::new(format!("expected PUBLISH, got {other:?}"))),
        }
    }

    /// Expects an acknowledgement of `kind` ("PUBACK", "PUBREC", "PUBREL" or "PUBCOMP") for
    /// `packet_id` next, and returns it.
    #[track_caller]
    pub fn expect_ack(&mut self, kind: &str, packet_id: u16) -> Result<Ack, Failure> {
        let packet = self.recv()?;
        let ack = match (kind, packet) {
            ("PUBACK", Packet::PubAck(a))
            | ("PUBREC", Packet::PubRec(a))
            | ("PUBREL", Packet::PubRel(a))
            | ("PUBCOMP", Packet::PubComp(a)) => a,
            (_, other) => {
                return Err(Failure::new(format!(
                    "expected {kind} {packet_id}, got {other:?}"
                )))
            }
        };
        if ack.packet_id.get() != packet_id {
            return Err(Failure::new(format!(
                "expected {kind} for packet id {packet_id}, got it for {}",
                ack.packet_id
            )));
        }
        Ok(ack)
    }

    /// Sends DISCONNECT (normal) and closes the socket.
    pub fn disconnect(mut self) -> Result<(), Failure> {
        self.send(&Packet::Disconnect(Box::default()))?;
        let _ = self.stream.shutdown(std::net::Shutdown::Write);
        // The broker closes its side; read until then (bounded).
        match self.poll(WAIT)? {
            Poll::Closed => Ok(()),
            Poll::Packet(p) => Err(Failure::new(format!(
                "after DISCONNECT, expected the close, got {p:?}"
            ))),
            Poll::Timeout => Err(Failure::new(
                "after DISCONNECT the broker kept the socket open",
            )),
        }
    }

    /// Closes the socket without DISCONNECT: for the broker, the link was lost.
    pub fn drop_link(self) {
        let _ = self.stream.shutdown(std::net::Shutdown::Both);
    }
}

/// What [`RawPeer::poll`] saw.
// A short-lived value, matched at once: boxing the packet would only add an allocation.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
pub enum Poll {
    /// A packet.
    Packet(Packet),
    /// The broker closed the connection.
    Closed,
    /// Nothing within the timeout.
    Timeout,
}

/// A CONNECT for `client_id` in `version`: clean start, keep alive 60, nothing else.
pub fn connect(version: ProtocolVersion, client_id: &str) -> Connect {
    Connect::new(version, client_id)
}

/// A packet id; 0 is a failure.
#[track_caller]
pub fn pid(n: u16) -> Result<PacketId, Failure> {
    PacketId::new(n).ok_or_else(|| Failure::new("packet id 0"))
}

/// A topic name; an invalid one is a failure (of the behaviour's author).
#[track_caller]
pub fn topic_of(name: &str) -> Result<TopicName, Failure> {
    TopicName::new(name).map_err(|e| Failure::new(format!("invalid topic {name:?}: {e}")))
}

/// A topic filter; an invalid one is a failure (of the behaviour's author).
#[track_caller]
pub fn filter_of(filter: &str) -> Result<TopicFilter, Failure> {
    TopicFilter::new(filter).map_err(|e| Failure::new(format!("invalid filter {filter:?}: {e}")))
}

/// A PUBLISH packet; `packet_id` is used for QoS 1 and 2.
#[track_caller]
pub fn publish(
    topic: &str,
    payload: impl Into<Bytes>,
    qos: QoS,
    packet_id: u16,
) -> Result<Publish, Failure> {
    let mut p = Publish::new(topic_of(topic)?, payload);
    p.qos = qos;
    if qos != QoS::AtMostOnce {
        p.packet_id = Some(pid(packet_id)?);
    }
    Ok(p)
}

/// An acknowledgement packet of `kind` ("PUBACK", "PUBREC", "PUBREL", "PUBCOMP").
#[track_caller]
pub fn ack(kind: &str, packet_id: u16) -> Result<Packet, Failure> {
    let a = Ack::new(pid(packet_id)?);
    Ok(match kind {
        "PUBACK" => Packet::PubAck(a),
        "PUBREC" => Packet::PubRec(a),
        "PUBREL" => Packet::PubRel(a),
        "PUBCOMP" => Packet::PubComp(a),
        other => return Err(Failure::new(format!("no such acknowledgement {other}"))),
    })
}

/// A Variable Byte Integer.
pub fn varint(mut n: u32) -> Vec<u8> {
    let mut out = Vec::with_capacity(4);
    loop {
        let byte = (n % 128) as u8;
        n /= 128;
        out.push(if n > 0 { byte | 0x80 } else { byte });
        if n == 0 {
            return out;
        }
    }
}

/// A packet from its first byte and its body; the Remaining Length is computed.
pub fn frame(first: u8, body: &[u8]) -> Vec<u8> {
    let mut out = vec![first];
    out.extend(varint(u32::try_from(body.len()).unwrap_or(u32::MAX)));
    out.extend_from_slice(body);
    out
}

/// A UTF-8 string field (two-byte length, then the bytes).
pub fn text(s: &str) -> Vec<u8> {
    let len = u16::try_from(s.len()).unwrap_or(u16::MAX);
    let mut out = len.to_be_bytes().to_vec();
    out.extend_from_slice(s.as_bytes());
    out
}
