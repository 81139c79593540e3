//! The client state machine: every client behaviour of MQTT 3.1, 3.1.1 and 5.0, with no I/O.
//!
//! One [`Client`] owns the session (packet ids, QoS 1/2 messages in flight both ways,
//! subscriptions granted), the keep alive and 5.0 flow control. It survives the loss of a
//! connection: [`Client::connect`] again on a new transport resumes the session.
//!
//! The caller tells it what happened, each input carrying `now`:
//!
//! - [`Client::connect`]: a transport is open; CONNECT is queued;
//! - [`Client::handle_bytes`]: bytes arrived;
//! - [`Client::handle_timeout`]: the instant from [`Client::poll_timeout`] came;
//! - [`Client::handle_disconnect`]: the transport closed;
//! - commands: [`Client::publish`], [`Client::subscribe`], [`Client::unsubscribe`],
//!   [`Client::ack`], [`Client::auth`], [`Client::disconnect`].
//! - [`Client::handle_stored`] / [`Client::handle_store_failed`]: the answer about a
//!   [`ClientEvent::Store`] batch, with [`ClientOptions::persistence`] (see [`store`]; a
//!   restarted process starts from [`Client::recover`]).
//!
//! After **every** input, drain [`Client::poll_transmit`] (bytes to write) and
//! [`Client::poll_event`] until both are empty, then sleep until [`Client::poll_timeout`] or
//! the next input. `poll_transmit` can itself add events (a QoS 0 message completes when its
//! bytes are handed out), so drain transmits before events. Nothing inside reads a clock,
//! draws a random number, locks or calls back.
//!
//! After [`ClientEvent::Disconnected`] or [`ClientEvent::ConnectionRefused`], write what
//! `poll_transmit` still gives and close the transport; to reconnect, open a new one after
//! [`ClientOptions::backoff`] and call `connect` again.
//!
//! # Bounds
//!
//! Outgoing messages wait in a queue of `max_queued` ([`PublishError::QueueFull`] beyond
//! it); requests in one of `max_requests`. The server can make the client hold at most its
//! Receive Maximum of unacknowledged incoming messages (more is answered with DISCONNECT
//! 0x93) and its Topic Alias Maximum of aliases. Events and output bytes come from inputs,
//! at most a few per packet received or command given, and are the caller's to drain.
//!
//! # Example
//!
//! ```
//! use std::time::Instant;
//! use bytes::BytesMut;
//! use mqtt_core::client::{Client, ClientEvent, ClientOptions, PublishRequest};
//! use mqtt_core::topic::TopicName;
//! use mqtt_core::{ProtocolVersion, QoS, ReasonCode};
//!
//! let mut options = ClientOptions::new("sensor-1");
//! options.version = ProtocolVersion::V311;
//! let mut client = Client::new(options);
//! let now = Instant::now();
//!
//! // A transport is open: CONNECT goes out.
//! client.connect(now)?;
//! let mut tx = BytesMut::new();
//! client.poll_transmit(now, &mut tx);
//! assert_eq!(tx[0], 0x10);
//!
//! // The server accepts (CONNACK 0x00).
//! let mut rx = BytesMut::from(&b"\x20\x02\x00\x00"[..]);
//! client.handle_bytes(now, &mut rx);
//! assert!(matches!(client.poll_event(), Some(ClientEvent::Connected { .. })));
//!
//! // A QoS 1 message: PUBLISH with packet id 1, complete on PUBACK 1.
//! let request = PublishRequest::new(TopicName::new("sensors/1")?, "21.5")
//!     .with_qos(QoS::AtLeastOnce);
//! let id = client.publish(now, request)?;
//! tx.clear();
//! client.poll_transmit(now, &mut tx);
//! assert_eq!(tx[0], 0x32);
//! rx.extend_from_slice(b"\x40\x02\x00\x01");
//! client.handle_bytes(now, &mut rx);
//! assert_eq!(
//!     client.poll_event(),
//!     Some(ClientEvent::Published { id, reason_code: ReasonCode::Success })
//! );
//! assert_eq!(client.poll_event(), None);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod error;
mod event;
mod flow;
mod options;
mod persist;
mod session;
pub mod store;

use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use bytestring::ByteString;

pub use error::{AckError, CommandError, PublishError, RequestError};
pub use event::{AckToken, ClientEvent, DisconnectReason, PublishId, SubscribeId};
pub use options::ClientOptions;

use crate::codec::{self, EncodeError};
use crate::packet::*;
use crate::topic::{TopicFilter, TopicName};
use flow::Flow;
use persist::{EventQueue, Persist};
use session::{InFlight, OutState, PendingAck, Queued, Request, Session};
use store::{ClientStoreOp, StoredFlow};

/// A message to publish: what [`Client::publish`] takes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublishRequest {
    /// Topic Name.
    pub topic: TopicName,
    /// The application message.
    pub payload: Bytes,
    /// QoS.
    pub qos: QoS,
    /// RETAIN.
    pub retain: bool,
    /// Properties (5.0). The Topic Alias is the client's to choose: one given here is
    /// ignored.
    pub properties: PublishProperties,
}

impl PublishRequest {
    /// A QoS 0, non-retained message without properties.
    pub fn new(topic: TopicName, payload: impl Into<Bytes>) -> Self {
        Self {
            topic,
            payload: payload.into(),
            qos: QoS::AtMostOnce,
            retain: false,
            properties: PublishProperties::default(),
        }
    }

    /// The same message at `qos`.
    pub fn with_qos(mut self, qos: QoS) -> Self {
        self.qos = qos;
        self
    }

    /// The same message, retained or not.
    pub fn with_retain(mut self, retain: bool) -> Self {
        self.retain = retain;
        self
    }

    /// The same message with `properties`.
    pub fn with_properties(mut self, properties: PublishProperties) -> Self {
        self.properties = properties;
        self
    }
}

/// Where the connection is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// No connection (never connected, or it ended).
    Disconnected,
    /// CONNECT queued, waiting for CONNACK (and AUTH exchanges) until the deadline (none
    /// for a timeout too long to be an instant).
    Connecting { deadline: Option<Instant> },
    /// CONNACK 0x00 received.
    Connected,
}

/// The clock readings of one connection, for the keep alive.
#[derive(Debug, Clone, Copy)]
struct Link {
    /// The keep alive in force (the server's, if it said one); zero is off.
    keep_alive: Duration,
    last_sent: Instant,
    last_received: Instant,
    /// When the unanswered PINGREQ went out.
    ping_sent: Option<Instant>,
}

/// The MQTT client. See the [module docs](self) for the input/output contract.
#[derive(Debug)]
pub struct Client {
    options: ClientOptions,
    state: State,
    link: Option<Link>,
    session: Session,
    flow: Flow,
    /// The identifier in use: the server's Assigned Client Identifier once it sent one.
    client_id: ByteString,
    /// Whether a CONNACK was ever accepted: a 5.0 reconnect then asks to resume.
    had_session: bool,
    /// Clean Start of the CONNECT on the current connection.
    clean_start_sent: bool,
    /// Encoded packets not yet handed to `poll_transmit`.
    out: BytesMut,
    /// QoS 0 messages encoded in `out`, with the offset their bytes end at: complete once
    /// handed out.
    unwritten_qos0: Vec<(usize, PublishId)>,
    /// Room to measure packets in.
    scratch: BytesMut,
    events: EventQueue,
    /// Store operations, and the output that waits for them.
    persist: Persist,
    next_publish: u64,
    next_request: u64,
    next_token: u64,
}

impl Client {
    /// A client with no connection yet.
    pub fn new(options: ClientOptions) -> Self {
        Self {
            flow: Flow::new(&options),
            persist: Persist::new(&options),
            client_id: options.client_id.clone(),
            options,
            state: State::Disconnected,
            link: None,
            session: Session::default(),
            had_session: false,
            clean_start_sent: false,
            out: BytesMut::new(),
            unwritten_qos0: Vec::new(),
            scratch: BytesMut::new(),
            events: EventQueue::default(),
            next_publish: 0,
            next_request: 0,
            next_token: 0,
        }
    }

    /// The options the client was made with.
    pub fn options(&self) -> &ClientOptions {
        &self.options
    }

    /// The client identifier in use: the one of the options, or the one the server
    /// assigned.
    pub fn client_id(&self) -> &ByteString {
        &self.client_id
    }

    /// Whether CONNACK accepted the current connection.
    pub fn is_connected(&self) -> bool {
        self.state == State::Connected
    }

    /// The subscriptions the server granted in this session, by filter: what to subscribe
    /// to again after a `Connected` with `session_present: false`.
    pub fn subscriptions(&self) -> impl Iterator<Item = (&TopicFilter, &SubscriptionOptions)> {
        self.session.subscriptions.iter()
    }

    /// Messages waiting for a window slot or a connection.
    pub fn queued(&self) -> usize {
        self.session.queue.len()
    }

    /// Outgoing QoS 1/2 messages in flight (sent or waiting to be resent).
    pub fn inflight(&self) -> usize {
        self.session.inflight.len()
    }

    // ---- inputs ----

    /// A transport to the server is open: queues CONNECT. Call once per transport, first.
    ///
    /// The first CONNECT carries `clean_start` from the options; later 5.0 ones ask to resume
    /// the session (Clean Start 0). When the CONNACK says the session is present, messages
    /// in flight are sent again, PUBLISH with DUP set and PUBREL as they were
    /// [MQTT-4.4.0-1]; when not, the session state is discarded and unfinished messages
    /// start over from the queue [MQTT-3.2.2-5].
    pub fn connect(&mut self, now: Instant) -> Result<(), CommandError> {
        if self.state != State::Disconnected {
            return Err(CommandError::AlreadyConnected);
        }
        let version = self.options.version;
        let clean_start = if version.is_v5() && self.had_session {
            false
        } else {
            self.options.clean_start
        };
        let connect = Connect {
            protocol_version: version,
            clean_start,
            keep_alive: self.options.keep_alive_secs(),
            client_id: self.client_id.clone(),
            will: self.options.will.clone(),
            username: self.options.username.clone(),
            password: self.options.password.clone(),
            properties: self.options.connect_properties.clone(),
        };
        self.clear_out();
        codec::encode(&Packet::Connect(Box::new(connect)), version, &mut self.out)?;
        self.clean_start_sent = clean_start;
        self.flow.reset_connection();
        self.link = Some(Link {
            keep_alive: Duration::from_secs(u64::from(self.options.keep_alive_secs())),
            last_sent: now,
            last_received: now,
            ping_sent: None,
        });
        self.state = State::Connecting {
            deadline: now.checked_add(self.options.connect_timeout),
        };
        Ok(())
    }

    /// Bytes arrived from the server: every complete packet is taken off the front of `buf`
    /// and handled; a partial packet stays for the next call. Bytes after the connection
    /// ended are discarded.
    pub fn handle_bytes(&mut self, now: Instant, buf: &mut BytesMut) {
        loop {
            if self.state == State::Disconnected {
                buf.clear();
                return;
            }
            match codec::decode(buf, self.options.version, &self.flow.decode_limits) {
                Ok(Some(packet)) => {
                    if let Some(link) = &mut self.link {
                        // Any packet shows the link is alive.
                        link.last_received = now;
                        link.ping_sent = None;
                    }
                    self.on_packet(now, packet);
                }
                Ok(None) => return,
                Err(e) => {
                    // A packet over the client's Maximum Packet Size is 0x95 [MQTT-3.1.2-24];
                    // anything malformed its own code [MQTT-4.13.1-1].
                    self.protocol_error(e.reason_code());
                    buf.clear();
                    return;
                }
            }
        }
    }

    /// Time passed: sends PINGREQ once the keep alive has gone by without a packet sent or
    /// received [MQTT-3.1.2-20], and gives the connection up when a PINGREQ stays
    /// unanswered for another keep alive (a dead link), or CONNACK does not come within
    /// `connect_timeout`. Calling it early is a no-op.
    pub fn handle_timeout(&mut self, now: Instant) {
        match self.state {
            State::Disconnected => {}
            State::Connecting { deadline } => {
                if deadline.is_some_and(|d| now >= d) {
                    self.close(DisconnectReason::ConnectTimeout, None);
                }
            }
            State::Connected => {
                let Some(link) = &mut self.link else {
                    return;
                };
                if link.keep_alive.is_zero() {
                    return;
                }
                match link.ping_sent {
                    Some(sent) if now >= sent + link.keep_alive => {
                        self.close(DisconnectReason::KeepAliveTimeout, None);
                    }
                    Some(_) => {}
                    None => {
                        let idle_since = link.last_sent.min(link.last_received);
                        if now >= idle_since + link.keep_alive {
                            link.ping_sent = Some(now);
                            self.send(&Packet::PingReq);
                        }
                    }
                }
            }
        }
    }

    /// The transport closed, or failed. The session stays for the next [`Client::connect`];
    /// reports [`DisconnectReason::TransportClosed`] unless the connection had already
    /// ended.
    pub fn handle_disconnect(&mut self, now: Instant) {
        let _ = now;
        if self.state == State::Disconnected {
            self.clear_out();
            return;
        }
        self.close(DisconnectReason::TransportClosed, None);
    }

    // ---- commands ----

    /// Publishes a message; its completion comes as [`ClientEvent::Published`] with the
    /// returned id.
    ///
    /// Messages go out in the order given. QoS 1/2 messages take a slot of the in-flight
    /// window (`max_inflight`, capped by the server's Receive Maximum [MQTT-3.3.4-7]); when
    /// none is free, or there is no connection, they wait in the queue, and so does anything
    /// published behind them.
    ///
    /// # Errors
    ///
    /// [`PublishError::QueueFull`] when the message would wait and `max_queued` already do;
    /// a message the server's last CONNACK rules out (too large, QoS or RETAIN it does not
    /// support); an empty topic or subscription identifiers.
    pub fn publish(
        &mut self,
        now: Instant,
        request: PublishRequest,
    ) -> Result<PublishId, PublishError> {
        let PublishRequest {
            topic,
            payload,
            qos,
            retain,
            mut properties,
        } = request;
        if topic.is_empty() {
            return Err(PublishError::EmptyTopic);
        }
        // [MQTT-3.3.4-6] a client PUBLISH carries no Subscription Identifier.
        if !properties.subscription_identifiers.is_empty() {
            return Err(PublishError::SubscriptionIdentifier);
        }
        properties.topic_alias = None;
        let publish = Publish {
            dup: false,
            qos,
            retain,
            topic,
            packet_id: None,
            properties: properties.into(),
            payload,
        };
        if let Some(err) = self.refusal(&publish) {
            return Err(err);
        }
        let can_send_now = self.state == State::Connected
            && self.session.queue.is_empty()
            && (qos == QoS::AtMostOnce || self.has_window_slot());
        if !can_send_now && self.session.queue.len() >= self.options.max_queued {
            return Err(PublishError::QueueFull);
        }
        self.next_publish += 1;
        let id = PublishId(self.next_publish);
        // Stored from the moment it is accepted: a restart sends it still.
        self.store_outgoing(id, &publish, None);
        self.session.queue.push_back(Queued { id, publish });
        self.pump(now);
        Ok(id)
    }

    /// Subscribes; the answer comes as [`ClientEvent::Subscribed`] with the returned id.
    /// Without a connection the SUBSCRIBE waits for the next CONNACK; one unanswered when
    /// the connection is lost is sent again on the next.
    ///
    /// # Errors
    ///
    /// No subscriptions, `max_requests` requests already waiting, or a packet larger than
    /// the server's Maximum Packet Size.
    pub fn subscribe(
        &mut self,
        now: Instant,
        subscriptions: Vec<Subscription>,
        properties: SubscribeProperties,
    ) -> Result<SubscribeId, RequestError> {
        // [MQTT-3.8.3-2] at least one subscription.
        if subscriptions.is_empty() {
            return Err(RequestError::Empty);
        }
        self.request(now, |packet_id| {
            Packet::Subscribe(Subscribe {
                packet_id,
                subscriptions,
                properties,
            })
        })
    }

    /// Unsubscribes; the answer comes as [`ClientEvent::Unsubscribed`] with the returned
    /// id. Waits for a connection like [`Client::subscribe`].
    ///
    /// # Errors
    ///
    /// As [`Client::subscribe`].
    pub fn unsubscribe(
        &mut self,
        now: Instant,
        filters: Vec<TopicFilter>,
        properties: UnsubscribeProperties,
    ) -> Result<SubscribeId, RequestError> {
        // [MQTT-3.10.3-2] at least one filter.
        if filters.is_empty() {
            return Err(RequestError::Empty);
        }
        self.request(now, |packet_id| {
            Packet::Unsubscribe(Unsubscribe {
                packet_id,
                filters,
                properties,
            })
        })
    }

    /// Acknowledges a message received in manual-ack mode. PUBACK and PUBREC go out in the
    /// order the messages were received [MQTT-4.6.0-2] [MQTT-4.6.0-3]: a token handed back
    /// early is held until those before it are acknowledged too. Without a connection the
    /// acknowledgement goes out once the session is resumed.
    ///
    /// # Errors
    ///
    /// [`AckError::NotPending`] for a token of another client, or of a session the server
    /// did not keep.
    pub fn ack(&mut self, now: Instant, token: AckToken) -> Result<(), AckError> {
        let _ = now;
        let i = self
            .session
            .pending_acks
            .binary_search_by_key(&token.0, |p| p.seq)
            .map_err(|_| AckError::NotPending)?;
        if let Some(p) = self.session.pending_acks.get_mut(i) {
            p.acked = true;
        }
        self.flush_acks();
        Ok(())
    }

    /// Sends AUTH (5.0 enhanced authentication): 0x18 (Continue authentication) to answer a
    /// [`ClientEvent::Auth`], or 0x19 (Re-authenticate) to start again once connected. The
    /// Authentication Method is the one of CONNECT [MQTT-4.12.0-5].
    ///
    /// # Errors
    ///
    /// Not 5.0, no Authentication Method in the options [MQTT-4.12.0-7], no connection, or
    /// another reason code.
    pub fn auth(
        &mut self,
        now: Instant,
        mut properties: AuthProperties,
        reason_code: ReasonCode,
    ) -> Result<(), CommandError> {
        let _ = now;
        if !self.options.version.is_v5() {
            return Err(CommandError::NotV5);
        }
        let Some(method) = self
            .options
            .connect_properties
            .authentication_method
            .clone()
        else {
            return Err(CommandError::NoAuthenticationMethod);
        };
        let allowed = match (reason_code, self.state) {
            (_, State::Disconnected) => return Err(CommandError::NotConnected),
            (ReasonCode::ContinueAuthentication, _) => true,
            (ReasonCode::ReAuthenticate, State::Connected) => true,
            _ => false,
        };
        if !allowed {
            return Err(CommandError::ReasonCodeNotAllowed(reason_code));
        }
        properties.authentication_method = Some(method);
        let packet = Packet::Auth(Box::new(Auth {
            reason_code,
            properties,
        }));
        let mark = self.out.len();
        codec::encode(&packet, self.options.version, &mut self.out)?;
        if self.out.len() - mark > self.flow.server_max_packet as usize {
            self.out.truncate(mark);
            return Err(CommandError::Encode(EncodeError::PacketTooLarge));
        }
        Ok(())
    }

    /// Ends the connection: DISCONNECT with `reason_code` (5.0; 0x04 asks the server to send
    /// the will) and, if given, a new Session Expiry Interval. Reports
    /// [`DisconnectReason::Local`]; write what `poll_transmit` gives, then close the
    /// transport. The session stays for a later `connect`.
    ///
    /// # Errors
    ///
    /// No connection; a reason code DISCONNECT may not carry; a non-zero expiry when
    /// CONNECT said 0 (spec 3.14.2.2.2).
    pub fn disconnect(
        &mut self,
        now: Instant,
        reason_code: ReasonCode,
        session_expiry: Option<u32>,
    ) -> Result<(), CommandError> {
        let _ = now;
        if self.state == State::Disconnected {
            return Err(CommandError::NotConnected);
        }
        let version = self.options.version;
        let mut d = Disconnect::default();
        if version.is_v5() {
            // [MQTT-3.14.2-1] one of the DISCONNECT reason codes.
            if !codec::reason_code_allowed(PacketType::Disconnect, reason_code) {
                return Err(CommandError::ReasonCodeNotAllowed(reason_code));
            }
            let connect_expiry = self
                .options
                .connect_properties
                .session_expiry_interval
                .unwrap_or(0);
            if connect_expiry == 0 && session_expiry.is_some_and(|e| e != 0) {
                return Err(CommandError::SessionExpiryWasZero);
            }
            d.reason_code = reason_code;
            d.properties.session_expiry_interval = session_expiry;
        }
        // Anything already encoded goes out first; nothing after the DISCONNECT
        // [MQTT-3.14.4-1].
        self.send(&Packet::Disconnect(Box::new(d)));
        self.state = State::Disconnected;
        self.link = None;
        self.events.push_back(ClientEvent::Disconnected {
            reason: DisconnectReason::Local { reason_code },
        });
        Ok(())
    }

    // ---- outputs ----

    /// Appends the bytes to write to `buf` and returns how many; 0 when there are none.
    /// `now` is when they are written: sending resets the keep alive.
    ///
    /// With persistence, bytes that promise durability (and those behind them) are given
    /// only once [`Client::handle_stored`] says what they promise is durable.
    pub fn poll_transmit(&mut self, now: Instant, buf: &mut BytesMut) -> usize {
        self.close_batch();
        let n = self.persist.releasable(self.out.len());
        if n == 0 {
            return 0;
        }
        if n == self.out.len() && buf.is_empty() {
            // Hand over the whole buffer rather than copy it.
            core::mem::swap(buf, &mut self.out);
        } else {
            buf.extend_from_slice(&self.out.split_to(n));
        }
        self.persist.taken(n);
        if let Some(link) = &mut self.link {
            link.last_sent = now;
        }
        let mut written = Vec::new();
        self.unwritten_qos0.retain_mut(|(end, id)| {
            if *end <= n {
                written.push(*id);
                false
            } else {
                *end -= n;
                true
            }
        });
        for id in written {
            self.events.push_back(ClientEvent::Published {
                id,
                reason_code: ReasonCode::Success,
            });
        }
        n
    }

    /// The next event for the application. [`ClientEvent::Store`] comes first, never held;
    /// with persistence, the message of a received QoS 2 PUBLISH (and the events behind it)
    /// waits for its packet id to be durable.
    pub fn poll_event(&mut self) -> Option<ClientEvent> {
        self.close_batch();
        self.events.pop_front()
    }

    /// When [`Client::handle_timeout`] must be called next; `None` when no timer runs.
    pub fn poll_timeout(&self) -> Option<Instant> {
        match self.state {
            State::Disconnected => None,
            State::Connecting { deadline } => deadline,
            State::Connected => {
                let link = self.link.as_ref()?;
                if link.keep_alive.is_zero() {
                    return None;
                }
                Some(match link.ping_sent {
                    Some(sent) => sent + link.keep_alive,
                    None => link.last_sent.min(link.last_received) + link.keep_alive,
                })
            }
        }
    }

    // ---- packets from the server ----

    fn on_packet(&mut self, now: Instant, packet: Packet) {
        match (self.state, packet) {
            (State::Disconnected, _) => {}
            (_, Packet::Disconnect(d)) => self.on_server_disconnect(*d),
            (_, Packet::Auth(a)) => self.on_auth(*a),
            (State::Connecting { .. }, Packet::ConnAck(ack)) => self.on_connack(now, *ack),
            (State::Connected, Packet::Publish(p)) => self.on_publish(p),
            (State::Connected, Packet::PubAck(a)) => self.on_puback(now, &a),
            (State::Connected, Packet::PubRec(a)) => self.on_pubrec(now, &a),
            (State::Connected, Packet::PubRel(a)) => self.on_pubrel(&a),
            (State::Connected, Packet::PubComp(a)) => self.on_pubcomp(now, &a),
            (State::Connected, Packet::SubAck(a)) => self.on_suback(a),
            (State::Connected, Packet::UnsubAck(a)) => self.on_unsuback(a),
            // Any packet already cleared the ping.
            (State::Connected, Packet::PingResp) => {}
            // [MQTT-3.2.0-1] nothing but AUTH before CONNACK; [MQTT-3.2.0-2] one CONNACK;
            // and packets only a client sends.
            _ => self.protocol_error(ReasonCode::ProtocolError),
        }
    }

    fn on_connack(&mut self, now: Instant, ack: ConnAck) {
        if ack.reason_code.is_error() {
            // [MQTT-3.2.2-7] the server closes after a refusal; so does the client.
            self.clear_out();
            self.state = State::Disconnected;
            self.link = None;
            self.events.push_back(ClientEvent::ConnectionRefused {
                reason_code: ack.reason_code,
                server_reference: ack.properties.server_reference.clone(),
            });
            return;
        }
        // [MQTT-3.2.2-4] a session present that the client asked to clean: it has no state
        // to go on with.
        if ack.session_present && self.clean_start_sent {
            return self.protocol_error(ReasonCode::ProtocolError);
        }
        // [MQTT-4.12.0-5] the same Authentication Method as CONNECT.
        let method = &self.options.connect_properties.authentication_method;
        if self.options.version.is_v5() && ack.properties.authentication_method != *method {
            return self.protocol_error(ReasonCode::ProtocolError);
        }
        let props = &ack.properties;
        if let Some(id) = &props.assigned_client_identifier {
            self.client_id = id.clone();
        }
        if let Some(link) = &mut self.link {
            // [MQTT-3.2.2-21] the server's keep alive replaces the client's.
            if let Some(secs) = props.server_keep_alive {
                link.keep_alive = Duration::from_secs(u64::from(secs));
            }
        }
        self.flow.apply_connack(props);
        self.state = State::Connected;
        self.had_session = true;
        self.store_session();
        let session_present = ack.session_present;
        self.events.push_back(ClientEvent::Connected {
            session_present,
            connack: ack,
        });
        if session_present {
            self.resume();
        } else {
            // [MQTT-3.2.2-5] the server has no session: neither does the client.
            self.store_discard();
            for id in self.session.discard() {
                self.events.push_back(ClientEvent::Published {
                    id,
                    reason_code: ReasonCode::Success,
                });
            }
        }
        // Requests unanswered on the last connection, and those made without one.
        let requests: Vec<Packet> = self
            .session
            .requests
            .iter()
            .map(|r| r.packet.clone())
            .collect();
        for packet in &requests {
            self.send(packet);
        }
        self.flush_acks();
        self.pump(now);
    }

    /// [MQTT-4.4.0-1] a resumed session: in the order first sent [MQTT-4.6.0-1], PUBREL
    /// again for released messages and PUBLISH again, DUP set, for the others, as far as the
    /// window allows; `pump` sends the rest as slots free.
    fn resume(&mut self) {
        let window = self.flow.window;
        let mut used = 0;
        let mut resend = Vec::new();
        self.session.resending = true;
        for f in &mut self.session.inflight {
            f.sent = false;
            if f.state == OutState::Qos2Released {
                f.sent = true;
                used += 1;
                if let Some(id) = f.packet_id() {
                    resend.push(Packet::PubRel(Ack::new(id)));
                }
            } else if used < window {
                f.sent = true;
                used += 1;
                let mut p = f.publish.clone();
                // [MQTT-3.3.1-1] a re-delivery carries DUP.
                p.dup = true;
                resend.push(Packet::Publish(p));
            }
        }
        if !resend.is_empty() {
            self.hold();
        }
        for packet in &resend {
            self.send(packet);
        }
    }

    fn on_publish(&mut self, mut p: Publish) {
        if let Err(code) = self.flow.resolve_alias(&mut p) {
            return self.protocol_error(code);
        }
        let Some(packet_id) = p.packet_id else {
            self.events.push_back(ClientEvent::Message {
                publish: p,
                ack: None,
            });
            return;
        };
        let manual = self.options.manual_acks;
        if p.qos == QoS::ExactlyOnce && self.session.incoming_qos2.contains(&packet_id) {
            // [MQTT-4.3.3-10] not delivered twice; PUBREC again unless the application still
            // holds it.
            if !self.session.ack_pending_for(packet_id) {
                // Its id may not be durable yet.
                self.hold();
                self.send(&Packet::PubRec(Ack::new(packet_id)));
            }
            return;
        }
        if manual && self.session.ack_pending_for(packet_id) {
            // Sent again before the application acknowledged it: it has it already.
            return;
        }
        // [MQTT-3.3.4-9] no more unacknowledged than the client's Receive Maximum.
        if self.session.incoming_unacked() >= self.flow.receive_max {
            return self.protocol_error(ReasonCode::ReceiveMaximumExceeded);
        }
        let stored_qos2 = p.qos == QoS::ExactlyOnce && self.persist.on;
        if p.qos == QoS::ExactlyOnce {
            self.session.incoming_qos2.insert(packet_id);
            // Durable before PUBREC and before the application hears of it.
            self.persist
                .push(ClientStoreOp::PutIncomingQos2 { packet_id });
        }
        let token = if manual {
            self.next_token += 1;
            self.session.pending_acks.push_back(PendingAck {
                seq: self.next_token,
                packet_id,
                qos: p.qos,
                acked: false,
            });
            if p.qos == QoS::AtLeastOnce {
                self.session.pending_qos1 += 1;
            }
            Some(AckToken(self.next_token))
        } else {
            // [MQTT-4.3.2-4] [MQTT-4.3.3-8] acknowledged as received, so in order.
            let ack = Ack::new(packet_id);
            if stored_qos2 {
                self.hold();
            }
            self.send(&if p.qos == QoS::AtLeastOnce {
                Packet::PubAck(ack)
            } else {
                Packet::PubRec(ack)
            });
            None
        };
        let wait = if stored_qos2 {
            self.persist.must_wait()
        } else {
            None
        };
        self.events.push_held(
            wait,
            ClientEvent::Message {
                publish: p,
                ack: token,
            },
        );
    }

    fn on_puback(&mut self, now: Instant, a: &Ack) {
        let Some(i) = self.session.inflight_position(a.packet_id) else {
            return;
        };
        if self.session.inflight.get(i).map(|f| f.state) != Some(OutState::Qos1Sent) {
            return;
        }
        self.complete(i, a.reason_code);
        self.pump(now);
    }

    fn on_pubrec(&mut self, now: Instant, a: &Ack) {
        let Some(i) = self.session.inflight_position(a.packet_id) else {
            // Unknown id: PUBREL "not found" so the server's flow can end.
            let mut rel = Ack::new(a.packet_id);
            rel.reason_code = ReasonCode::PacketIdentifierNotFound;
            return self.send(&Packet::PubRel(rel));
        };
        let state = self.session.inflight.get(i).map(|f| f.state);
        match state {
            Some(OutState::Qos2Sent) if a.reason_code.is_error() => {
                // [MQTT-4.4.0-2] a failed PUBREC ends the flow: no PUBREL, no resend.
                self.complete(i, a.reason_code);
                self.pump(now);
            }
            Some(OutState::Qos2Sent | OutState::Qos2Released) => {
                let mut advanced = None;
                if let Some(f) = self.session.inflight.get_mut(i) {
                    if f.state == OutState::Qos2Sent {
                        advanced = Some((f.id, f.publish.clone()));
                    }
                    f.state = OutState::Qos2Released;
                    // [MQTT-4.3.3-6] never the PUBLISH again once PUBREL is sent.
                    f.sent = true;
                }
                if let Some((id, publish)) = advanced {
                    // A restart must know: PUBREL waits for the record.
                    let flow = Some((a.packet_id, StoredFlow::Released));
                    self.store_outgoing(id, &publish, flow);
                }
                self.hold();
                // [MQTT-4.3.3-4] PUBREL with the same packet id.
                self.send(&Packet::PubRel(Ack::new(a.packet_id)));
            }
            _ => {}
        }
    }

    fn on_pubrel(&mut self, a: &Ack) {
        if self.session.ack_pending_for(a.packet_id) {
            // PUBREL before the client sent PUBREC.
            return self.protocol_error(ReasonCode::ProtocolError);
        }
        let mut comp = Ack::new(a.packet_id);
        // [MQTT-4.3.3-11] PUBCOMP either way; "not found" for an id not held.
        if self.session.incoming_qos2.remove(&a.packet_id) {
            self.persist.push(ClientStoreOp::DeleteIncomingQos2 {
                packet_id: a.packet_id,
            });
        } else {
            comp.reason_code = ReasonCode::PacketIdentifierNotFound;
        }
        self.send(&Packet::PubComp(comp));
    }

    fn on_pubcomp(&mut self, now: Instant, a: &Ack) {
        let Some(i) = self.session.inflight_position(a.packet_id) else {
            return;
        };
        if self.session.inflight.get(i).map(|f| f.state) != Some(OutState::Qos2Released) {
            return;
        }
        self.complete(i, a.reason_code);
        self.pump(now);
    }

    fn on_suback(&mut self, ack: SubAck) {
        let Some((i, Packet::Subscribe(s))) = self.request_for(ack.packet_id) else {
            return;
        };
        // [MQTT-3.8.4-6] one reason code per subscription.
        if ack.reason_codes.len() != s.subscriptions.len() {
            return self.protocol_error(ReasonCode::ProtocolError);
        }
        for (sub, code) in s.subscriptions.iter().zip(&ack.reason_codes) {
            if !code.is_error() {
                let mut options = sub.options;
                options.qos = QoS::from_u8(code.as_u8()).unwrap_or(options.qos);
                self.session
                    .subscriptions
                    .insert(sub.filter.clone(), options);
            }
        }
        self.finish_request(i, ack.packet_id, |id| ClientEvent::Subscribed {
            id,
            reason_codes: ack.reason_codes,
        });
    }

    fn on_unsuback(&mut self, ack: UnsubAck) {
        let Some((i, Packet::Unsubscribe(u))) = self.request_for(ack.packet_id) else {
            return;
        };
        let reason_codes = if self.options.version.is_v5() {
            // [MQTT-3.11.3-1] one reason code per filter, in order.
            if ack.reason_codes.len() != u.filters.len() {
                return self.protocol_error(ReasonCode::ProtocolError);
            }
            ack.reason_codes
        } else {
            vec![ReasonCode::Success; u.filters.len()]
        };
        for filter in &u.filters {
            self.session.subscriptions.remove(filter);
        }
        self.finish_request(i, ack.packet_id, |id| ClientEvent::Unsubscribed {
            id,
            reason_codes,
        });
    }

    fn on_server_disconnect(&mut self, d: Disconnect) {
        let reason = DisconnectReason::Server {
            reason_code: d.reason_code,
            server_reference: d.properties.server_reference,
            reason_string: d.properties.reason_string,
        };
        self.close(reason, None);
    }

    fn on_auth(&mut self, a: Auth) {
        let method = &self.options.connect_properties.authentication_method;
        // [MQTT-4.12.0-6] no AUTH unless CONNECT named a method; [MQTT-4.12.0-5] the same
        // method throughout; [MQTT-4.12.0-2] 0x18 while connecting.
        if method.is_none()
            || a.properties.authentication_method != *method
            || (matches!(self.state, State::Connecting { .. })
                && a.reason_code != ReasonCode::ContinueAuthentication)
        {
            return self.protocol_error(ReasonCode::ProtocolError);
        }
        self.events.push_back(ClientEvent::Auth {
            reason_code: a.reason_code,
            properties: a.properties,
        });
    }

    // ---- helpers ----

    /// Why the server's last known limits rule `publish` out, if they do.
    fn refusal(&mut self, publish: &Publish) -> Option<PublishError> {
        // [MQTT-3.2.2-11]
        if publish.qos > self.flow.max_qos {
            return Some(PublishError::QoSNotSupported {
                maximum: self.flow.max_qos,
            });
        }
        // [MQTT-3.2.2-14]
        if publish.retain && !self.flow.retain_available {
            return Some(PublishError::RetainNotSupported);
        }
        match self.publish_size(publish) {
            // [MQTT-3.2.2-15]
            Ok(size) if size > self.flow.server_max_packet as usize => {
                Some(PublishError::PacketTooLarge {
                    size,
                    max: self.flow.server_max_packet,
                })
            }
            Ok(_) => None,
            Err(e) => Some(PublishError::Encode(e)),
        }
    }

    /// The encoded size of `publish` with its full topic and a packet id if it needs one.
    fn publish_size(&mut self, publish: &Publish) -> Result<usize, EncodeError> {
        let mut p = publish.clone();
        p.packet_id = if p.qos == QoS::AtMostOnce {
            None
        } else {
            PacketId::new(1)
        };
        self.scratch.clear();
        let header = codec::encode_publish_header(&p, self.options.version, &mut self.scratch)?;
        Ok(header + p.payload.len())
    }

    /// Whether a new QoS 1/2 message could go out now: nothing waits to be resent and the
    /// window has room.
    fn has_window_slot(&self) -> bool {
        self.session.inflight.len() < self.flow.window
            && (!self.session.resending || self.session.inflight.iter().all(|f| f.sent))
    }

    /// Sends again, as far as `window` allows, the messages in flight not yet sent on this
    /// connection. Returns how many are in flight then, or `None` while some still wait.
    fn resend_unsent(&mut self, window: usize) -> Option<usize> {
        if !self.session.resending {
            return Some(self.session.inflight.len());
        }
        let mut used = self.session.inflight_sent();
        let mut resend = Vec::new();
        for f in &mut self.session.inflight {
            if used >= window {
                break;
            }
            if !f.sent {
                f.sent = true;
                used += 1;
                let mut p = f.publish.clone();
                p.dup = true;
                resend.push(p);
            }
        }
        if !resend.is_empty() {
            self.hold();
        }
        for p in resend {
            self.send(&Packet::Publish(p));
        }
        if self.session.inflight.iter().any(|f| !f.sent) {
            return None;
        }
        self.session.resending = false;
        Some(used)
    }

    /// Sends what the window allows: in-flight messages not yet resent on this connection,
    /// then the queue, in order.
    fn pump(&mut self, now: Instant) {
        let _ = now;
        if self.state != State::Connected {
            return;
        }
        let window = self.flow.window;
        // A resumed session's messages beyond the window, first.
        let Some(mut used) = self.resend_unsent(window) else {
            return;
        };
        while let Some(front) = self.session.queue.front() {
            let qos = front.publish.qos;
            if qos != QoS::AtMostOnce && used >= window {
                return;
            }
            let packet_id = if qos == QoS::AtMostOnce {
                None
            } else {
                match self.session.take_packet_id() {
                    Some(id) => Some(id),
                    // Every id is taken by requests: wait for one to finish.
                    None => return,
                }
            };
            let Some(Queued { id, mut publish }) = self.session.queue.pop_front() else {
                return;
            };
            publish.packet_id = packet_id;
            // The server's limits may have changed since `publish` checked them.
            if let Some(err) = self.refusal(&publish) {
                if let Some(pid) = packet_id {
                    self.session.release_packet_id(pid);
                }
                self.store_outgoing_gone(id, qos);
                self.events.push_back(ClientEvent::Published {
                    id,
                    reason_code: refusal_code(&err),
                });
                continue;
            }
            if let Some(pid) = packet_id {
                // [MQTT-4.4.0-1] the record with its packet id is durable before the
                // PUBLISH leaves: a restart resends it with the same id.
                self.store_outgoing(id, &publish, Some((pid, StoredFlow::Published)));
                self.hold();
            }
            if let Err(code) = self.write_publish(&publish) {
                if let Some(pid) = packet_id {
                    self.session.release_packet_id(pid);
                }
                self.store_outgoing_gone(id, qos);
                self.events.push_back(ClientEvent::Published {
                    id,
                    reason_code: code,
                });
                continue;
            }
            match qos {
                QoS::AtMostOnce => self.unwritten_qos0.push((self.out.len(), id)),
                QoS::AtLeastOnce | QoS::ExactlyOnce => {
                    used += 1;
                    self.session.inflight.push_back(InFlight {
                        id,
                        publish,
                        state: if qos == QoS::AtLeastOnce {
                            OutState::Qos1Sent
                        } else {
                            OutState::Qos2Sent
                        },
                        sent: true,
                    });
                }
            }
        }
    }

    /// Encodes a first-time PUBLISH, with a topic alias when the table has one for it.
    fn write_publish(&mut self, publish: &Publish) -> Result<(), ReasonCode> {
        let version = self.options.version;
        let max = self.flow.server_max_packet as usize;
        let mut p = publish.clone();
        let mut new_alias = false;
        if version.is_v5() {
            if let Some((alias, known)) = self.flow.aliases_out.alias_for(&p.topic) {
                // [MQTT-3.2.2-17] within the server's maximum; later uses leave the topic out.
                p.properties.topic_alias = Some(alias);
                if known {
                    p.topic = TopicName::empty();
                } else {
                    new_alias = true;
                }
            }
        }
        let mark = self.out.len();
        let fits = codec::encode(&Packet::Publish(p), version, &mut self.out).is_ok()
            && self.out.len() - mark <= max;
        if fits {
            return Ok(());
        }
        self.out.truncate(mark);
        if new_alias {
            // The alias property made it too large: send it plainly, and forget the alias.
            self.flow.aliases_out.forget(&publish.topic);
            let fits = codec::encode(&Packet::Publish(publish.clone()), version, &mut self.out)
                .is_ok()
                && self.out.len() - mark <= max;
            if fits {
                return Ok(());
            }
            self.out.truncate(mark);
        }
        Err(ReasonCode::PacketTooLarge)
    }

    /// Removes in-flight entry `i` and reports it complete with `code`.
    fn complete(&mut self, i: usize, code: ReasonCode) {
        let Some(f) = self.session.inflight.remove(i) else {
            return;
        };
        if let Some(pid) = f.packet_id() {
            self.session.release_packet_id(pid);
        }
        self.store_outgoing_gone(f.id, f.publish.qos);
        self.events.push_back(ClientEvent::Published {
            id: f.id,
            reason_code: code,
        });
    }

    /// Queues a SUBSCRIBE or UNSUBSCRIBE built by `make` around a fresh packet id.
    fn request(
        &mut self,
        now: Instant,
        make: impl FnOnce(PacketId) -> Packet,
    ) -> Result<SubscribeId, RequestError> {
        let _ = now;
        if self.session.requests.len() >= self.options.max_requests {
            return Err(RequestError::TooManyRequests);
        }
        let packet_id = self
            .session
            .take_packet_id()
            .ok_or(RequestError::TooManyRequests)?;
        let packet = make(packet_id);
        self.scratch.clear();
        let size = match codec::encode(&packet, self.options.version, &mut self.scratch) {
            Ok(()) => self.scratch.len(),
            Err(e) => {
                self.session.release_packet_id(packet_id);
                return Err(RequestError::Encode(e));
            }
        };
        let max = self.flow.server_max_packet;
        if size > max as usize {
            self.session.release_packet_id(packet_id);
            return Err(RequestError::PacketTooLarge { size, max });
        }
        self.next_request += 1;
        let id = SubscribeId(self.next_request);
        if self.state == State::Connected {
            self.out.extend_from_slice(&self.scratch);
        }
        self.session.requests.push_back(Request {
            id,
            packet_id,
            packet,
        });
        Ok(id)
    }

    /// The waiting request with `packet_id`, and its position.
    fn request_for(&self, packet_id: PacketId) -> Option<(usize, Packet)> {
        let i = self
            .session
            .requests
            .iter()
            .position(|r| r.packet_id == packet_id)?;
        let r = self.session.requests.get(i)?;
        Some((i, r.packet.clone()))
    }

    fn finish_request(
        &mut self,
        i: usize,
        packet_id: PacketId,
        event: impl FnOnce(SubscribeId) -> ClientEvent,
    ) {
        if let Some(r) = self.session.requests.remove(i) {
            self.session.release_packet_id(packet_id);
            self.events.push_back(event(r.id));
        }
    }

    /// Sends the acknowledgements the application has released, in receive order.
    fn flush_acks(&mut self) {
        if self.state != State::Connected {
            return;
        }
        while self.session.pending_acks.front().is_some_and(|p| p.acked) {
            let Some(p) = self.session.pending_acks.pop_front() else {
                return;
            };
            let ack = Ack::new(p.packet_id);
            if p.qos == QoS::AtLeastOnce {
                self.session.pending_qos1 = self.session.pending_qos1.saturating_sub(1);
                self.send(&Packet::PubAck(ack));
            } else {
                // Its id may not be durable yet.
                self.hold();
                self.send(&Packet::PubRec(ack));
            }
        }
    }

    /// Encodes a packet the client built into the output.
    fn send(&mut self, packet: &Packet) {
        let mark = self.out.len();
        if codec::encode(packet, self.options.version, &mut self.out).is_err() {
            // invariant: the client only builds packets valid in its version.
            self.out.truncate(mark);
        }
    }

    /// The server broke the protocol: DISCONNECT with `code` (5.0), then close.
    fn protocol_error(&mut self, code: ReasonCode) {
        let disconnect = self.options.version.is_v5().then(|| Disconnect {
            reason_code: code,
            properties: DisconnectProperties::default(),
        });
        self.close(DisconnectReason::ProtocolError(code), disconnect);
    }

    /// Ends the connection: what was not handed out yet is dropped, `disconnect` is the last
    /// packet, and the application hears `reason`. The session stays.
    fn close(&mut self, reason: DisconnectReason, disconnect: Option<Disconnect>) {
        self.clear_out();
        if let Some(d) = disconnect {
            self.send(&Packet::Disconnect(Box::new(d)));
        }
        self.state = State::Disconnected;
        self.link = None;
        self.session.resending = true;
        for f in &mut self.session.inflight {
            f.sent = false;
        }
        self.events.push_back(ClientEvent::Disconnected { reason });
    }

    /// Drops the output not yet handed out (the connection is gone), and fails the QoS 0
    /// messages in it.
    fn clear_out(&mut self) {
        self.out.clear();
        self.persist.clear_barriers();
        self.fail_unwritten_qos0();
    }

    /// The server did not keep the session: what `Session::discard` changes, stored.
    fn store_discard(&mut self) {
        if !self.persist.on {
            return;
        }
        let inflight: Vec<(PublishId, Publish, OutState)> = self
            .session
            .inflight
            .iter()
            .map(|f| (f.id, f.publish.clone(), f.state))
            .collect();
        for (id, mut publish, state) in inflight {
            if state == OutState::Qos2Released {
                self.store_outgoing_gone(id, publish.qos);
            } else {
                publish.packet_id = None;
                self.store_outgoing(id, &publish, None);
            }
        }
        let ids: Vec<PacketId> = self.session.incoming_qos2.iter().copied().collect();
        for packet_id in ids {
            self.persist
                .push(ClientStoreOp::DeleteIncomingQos2 { packet_id });
        }
    }

    /// QoS 0 messages whose bytes were dropped before they were handed out.
    fn fail_unwritten_qos0(&mut self) {
        for (_, id) in self.unwritten_qos0.drain(..) {
            self.events.push_back(ClientEvent::Published {
                id,
                reason_code: ReasonCode::UnspecifiedError,
            });
        }
    }
}

/// The reason code reported for a queued message the server's limits rule out.
fn refusal_code(err: &PublishError) -> ReasonCode {
    match err {
        PublishError::PacketTooLarge { .. } => ReasonCode::PacketTooLarge,
        PublishError::QoSNotSupported { .. } => ReasonCode::QoSNotSupported,
        PublishError::RetainNotSupported => ReasonCode::RetainNotSupported,
        _ => ReasonCode::ImplementationSpecificError,
    }
}
