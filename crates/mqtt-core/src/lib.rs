//! Sans-IO MQTT 3.1, 3.1.1 and 5.0: the protocol, with no sockets, threads, clocks or runtime.
//!
//! This crate holds everything that *is* MQTT, as pure functions over bytes and plain values.
//! Whatever touches the network, a file, a thread or the time lives in an adapter that calls
//! in here; anyone can embed it in their own event loop.
//!
//! # Data flow
//!
//! ```text
//!                    socket bytes                                   socket bytes
//!   adapter  ──► BytesMut ──► codec::decode ──► Packet ──► (state machines, later)
//!                 (caller-owned,  │  zero-copy:             │
//!                  partial reads  │  topic/payload are      ▼
//!                  stay in it)    │  slices of the input   Packet ──► codec::encode ──► BytesMut ──► socket
//!                                 ▼                                   (caller-owned, reused)
//!                        DecodeError::reason_code()
//!                        ──► DISCONNECT / CONNACK, close
//! ```
//!
//! 1. The adapter reads from its socket into a `BytesMut` it owns.
//! 2. [`codec::decode`] takes one complete packet off the front each call and leaves a partial
//!    one in place (`Ok(None)`: read more). The maximum packet size is checked on the fixed
//!    header, before the body is buffered.
//! 3. The [`Packet`] it returns borrows nothing: its topic, payload and binary properties are
//!    reference-counted slices of the bytes read, so keeping or forwarding a message copies
//!    nothing.
//! 4. Output goes the other way: [`codec::encode`] appends to a `BytesMut` the adapter writes
//!    out; [`codec::encode_publish_header`] writes a PUBLISH without its payload so that one
//!    payload serves every subscriber.
//! 5. A packet that breaks the spec is a [`codec::DecodeError`]; its
//!    [`reason_code`](codec::DecodeError::reason_code) is what a 5.0 peer is told before the
//!    connection closes.
//!
//! # Example
//!
//! ```
//! use bytes::BytesMut;
//! use mqtt_core::codec::{decode, encode, DecodeLimits};
//! use mqtt_core::topic::TopicName;
//! use mqtt_core::{Packet, ProtocolVersion, Publish};
//!
//! let publish = Publish::new(TopicName::new("sensors/1/temp")?, "21.5");
//! let mut wire = BytesMut::new();
//! encode(&Packet::Publish(publish.clone()), ProtocolVersion::V311, &mut wire)?;
//!
//! // Bytes arrive in pieces: a partial packet is "need more", not an error.
//! let mut rx = BytesMut::from(&wire[..5]);
//! assert_eq!(decode(&mut rx, ProtocolVersion::V311, &DecodeLimits::default())?, None);
//! rx.extend_from_slice(&wire[5..]);
//! let packet = decode(&mut rx, ProtocolVersion::V311, &DecodeLimits::default())?;
//! assert_eq!(packet, Some(Packet::Publish(publish)));
//! assert!(rx.is_empty());
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # Layout
//!
//! - [`packet`]: the control packets as plain values, one type for all versions (5.0 is the
//!   superset); properties typed per packet; QoS, packet ids, reason codes.
//! - [`codec`]: decode and encode. `frame` (fixed header and size limit), `primitives`
//!   (integers, Variable Byte Integers, strings, binary), `properties`, and one module per
//!   packet family: `connect`, `publish`, `ack`, `subscribe`, `control`; `error` holds
//!   `DecodeError` (with its reason code) and `EncodeError`.
//! - [`topic`]: `TopicName` and `TopicFilter` validation, wildcard matching and `$share`
//!   parsing.
//! - [`client`]: the client state machine. `options` (keep alive, limits, reconnect
//!   backoff), `session` (packet ids, messages in flight both ways), `flow` (5.0 Receive
//!   Maximum, topic aliases, Maximum Packet Size), `event` (`ClientEvent`, `PublishId`,
//!   `SubscribeId`), `error` (the commands' errors).
//!
//! - [`broker`]: the broker state machine. `config` (every limit), `event` (`Transmit`,
//!   `BrokerEvent`, `ConnId`), `connect` (CONNECT to CONNACK, takeover, resume), `flow`
//!   (inbound PUBLISH and the QoS flows), `subscribe`, `lifecycle` (how connections and
//!   sessions end), `connection`, `session`, `subscriptions` (the topic trie, shared
//!   groups), `route` (fan-out sharing payload and headers), `retained`, `will`, `sys`.
//! - `timer`: the deadline queue behind `poll_timeout`.
//!
//! Both state machines follow one contract: inputs are `handle_*(now, ...)` and commands;
//! after every input drain `poll_transmit` and `poll_event` until they return nothing, then
//! sleep until `poll_timeout`. `docs/architecture.md` in the repository draws the whole
//! workspace.

#![forbid(unsafe_code)]
#![deny(clippy::unwrap_used, clippy::expect_used)]
#![cfg_attr(not(test), deny(clippy::indexing_slicing))]

#[cfg(feature = "_arbitrary")]
#[doc(hidden)]
pub mod arbitrary;
pub mod broker;
pub mod client;
pub mod codec;
pub mod packet;
mod timer;
pub mod topic;

pub use packet::{Packet, PacketId, ProtocolVersion, Publish, QoS, ReasonCode};
