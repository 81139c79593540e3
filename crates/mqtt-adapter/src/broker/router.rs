//! The router: the one owner of the sans-IO broker, fed by every connection and a timer, and
//! the writer handle of each connection its output goes to.

use std::time::{Duration, Instant};

use bytes::Bytes;
use mqtt_core::broker::store::{StoreOp, StoreTicket};
use mqtt_core::broker::{
    AuthDecision, Broker, BrokerConfig, BrokerEvent, ConnId, ConnMap, PeerInfo,
};
use mqtt_core::codec::DecodeError;
use mqtt_core::Packet;
use mqtt_store::{Store, StoreAnswer, StoreError, StoreHandle, StoreOptions, StoreStats};
use tracing::{debug, info, warn};

/// How long shutting down waits for connections to write their last bytes.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(2);

/// Writes and syncs what the store still holds, stops its writer, and logs a failure (there
/// is nobody left to tell). Blocks for as long as the last commit takes.
pub fn close_store(store: Option<StoreHandle>) {
    if let Some(Err(e)) = store.map(StoreHandle::close) {
        warn!(error = %e, "closing the store");
    }
}

/// What a connection task or thread tells the router.
// Packets move by value: boxing would cost an allocation per packet on the hot path.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
pub enum Report {
    /// A connection decoded a packet of this many bytes on the wire.
    Packet(ConnId, Packet, usize),
    /// A connection received bytes that do not decode; it reads no more.
    DecodeError(ConnId, DecodeError),
    /// A connection wrote this many bytes of what it was sent.
    Written(ConnId, usize),
    /// A connection's socket ended or failed.
    Closed(ConnId),
}

/// How the router reaches one connection's writer (a channel of the adapter's choice).
pub trait ConnSink {
    /// Queues `bytes` then `payload` (often empty) for writing. A connection that has ended
    /// drops them: its `Closed` report is on its way.
    fn write(&self, bytes: Bytes, payload: Bytes);
    /// Write what was queued, then close: the broker has forgotten this connection.
    fn close(&self);
}

/// The broker, the writer of each of its connections, and the store's writer thread.
#[derive(Debug)]
pub struct Router<S> {
    broker: Broker,
    conns: ConnMap<S>,
    store: Option<StoreHandle>,
    /// The store's batches of a burst of inputs, merged: sent as one by [`Router::drain`].
    pending: Option<PendingBatch>,
}

/// Store batches merged for one submission: the last ticket answers them all (tickets are
/// answered in order), and something waits for it if anything waited for one of them.
#[derive(Debug)]
struct PendingBatch {
    ticket: StoreTicket,
    ops: Vec<StoreOp>,
    urgent: bool,
}

impl<S: ConnSink> Router<S> {
    /// A router for `broker`, with no connection yet and no store: a broker with
    /// persistence on gets every batch answered at once (memory only).
    pub fn new(broker: Broker) -> Self {
        Self {
            broker,
            conns: ConnMap::default(),
            store: None,
            pending: None,
        }
    }

    /// A router whose broker starts from what the store in `store` kept (created if missing)
    /// and goes on storing into it: persistence is turned on. The store's writer thread calls
    /// `answer` when batches are durable (or failed); hand each answer to
    /// [`Router::answer`] on the router's own loop. Without `store`, a plain broker.
    pub fn open(
        mut config: BrokerConfig,
        store: Option<StoreOptions>,
        now: Instant,
        answer: impl FnMut(StoreAnswer) + Send + 'static,
    ) -> Result<Self, StoreError> {
        let Some(options) = store else {
            return Ok(Self::new(Broker::new(config)));
        };
        config.persistence = true;
        let (store, state) = Store::open(options, now)?;
        info!(
            sessions = state.sessions.len(),
            retained = state.retained.len(),
            "recovered from the store"
        );
        let broker = Broker::recover(config, state, now);
        Ok(Self {
            broker,
            conns: ConnMap::default(),
            store: Some(store.start(answer)),
            pending: None,
        })
    }

    /// The store's answer about a batch; then call [`Router::drain`].
    pub fn answer(&mut self, now: Instant, answer: StoreAnswer) {
        match answer {
            StoreAnswer::Durable(ticket) => self.broker.handle_stored(now, ticket),
            StoreAnswer::Failed { ticket, error } => {
                warn!(%error, "the store could not write: refusing what it held");
                self.broker.handle_store_failed(now, ticket);
            }
            other => warn!(answer = ?other, "unknown answer of the store"),
        }
    }

    /// After [`Router::shutdown`]: the store's writer, to be closed with [`close_store`]. A
    /// blocking call (it waits for the last fsync): an async adapter runs it off its executor.
    pub fn take_store(&mut self) -> Option<StoreHandle> {
        self.submit_pending();
        self.store.take()
    }

    /// What the store's writer has done so far, if there is a store.
    pub fn store_stats(&self) -> Option<StoreStats> {
        self.store.as_ref().map(StoreHandle::stats)
    }

    /// The broker, for its configuration and limits.
    pub fn broker(&self) -> &Broker {
        &self.broker
    }

    /// Connections with a writer.
    pub fn connections(&self) -> usize {
        self.conns.len()
    }

    /// A socket was accepted: the broker numbers it and `sink` becomes its writer.
    pub fn accept(
        &mut self,
        now: Instant,
        peer: PeerInfo,
        sink: impl FnOnce(ConnId) -> S,
    ) -> ConnId {
        let (addr, tls) = (peer.addr, peer.tls);
        let conn = self.broker.accept(now, peer);
        debug!(%conn, ?addr, tls, "accepted");
        self.conns.insert(conn, sink(conn));
        conn
    }

    /// One report of a connection; then call [`Router::drain`].
    pub fn handle(&mut self, now: Instant, report: Report) {
        match report {
            Report::Packet(conn, packet, len) => self.broker.handle_packet(now, conn, packet, len),
            Report::DecodeError(conn, e) => self.broker.handle_decode_error(now, conn, &e),
            Report::Written(conn, n) => self.broker.handle_written(now, conn, n),
            Report::Closed(conn) => {
                if self.conns.remove(&conn).is_some() {
                    debug!(%conn, "connection lost");
                }
                self.broker.handle_closed(now, conn);
            }
        }
    }

    /// The instant at which [`Router::handle_timeout`] is due.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.broker.poll_timeout()
    }

    /// The broker's timers; then call [`Router::drain`].
    pub fn handle_timeout(&mut self, now: Instant) {
        self.broker.handle_timeout(now);
    }

    /// Drains the broker's transmits and events to `None` (the sans-IO contract), and hands
    /// the store what it must write.
    pub fn drain(&mut self, now: Instant) {
        self.drain_in_burst(now);
        self.submit_pending();
    }

    /// [`Router::drain`] between the inputs of a burst, which the adapter ends with
    /// [`Router::drain`]: the store's batches are merged and submitted once for the burst.
    /// Nothing the batches hold back goes out before the submission, so holding them for a
    /// burst delays no acknowledgement by more than the burst, and saves a channel message
    /// per input, often with the store writer's wake-up, and a `Vec` freed in that thread.
    pub fn drain_in_burst(&mut self, now: Instant) {
        loop {
            let mut idle = true;
            while let Some(t) = self.broker.poll_transmit() {
                idle = false;
                if let Some(sink) = self.conns.get(&t.conn) {
                    sink.write(t.bytes, t.payload);
                }
            }
            while let Some(event) = self.broker.poll_event() {
                idle = false;
                self.event(now, event);
            }
            if idle {
                return;
            }
        }
    }

    fn submit_pending(&mut self) {
        if let (Some(store), Some(batch)) = (&self.store, self.pending.take()) {
            if batch.urgent {
                store.submit(batch.ticket, batch.ops);
            } else {
                store.submit_deferrable(batch.ticket, batch.ops);
            }
        }
    }

    fn event(&mut self, now: Instant, event: BrokerEvent) {
        match event {
            BrokerEvent::Connected {
                conn,
                client_id,
                version,
                session_present,
            } => debug!(%conn, %client_id, ?version, session_present, "connected"),
            BrokerEvent::Close { conn, reason } => {
                debug!(%conn, %reason, "closing");
                if let Some(sink) = self.conns.remove(&conn) {
                    sink.close();
                }
            }
            BrokerEvent::Store {
                ticket,
                ops,
                urgent,
            } => match (&self.store, &mut self.pending) {
                (None, _) => self.broker.handle_stored(now, ticket),
                (Some(_), Some(batch)) => {
                    batch.ticket = ticket;
                    batch.ops.extend(ops);
                    batch.urgent |= urgent;
                }
                (Some(_), pending @ None) => {
                    *pending = Some(PendingBatch {
                        ticket,
                        ops,
                        urgent,
                    })
                }
            },
            BrokerEvent::Authenticate { conn, request } => {
                // No authenticator yet: everyone is let in.
                debug!(%conn, client_id = %request.client_id, "authenticate: allowed");
                self.broker.handle_auth(now, conn, AuthDecision::Allow);
            }
            other => debug!(event = ?other, "unhandled broker event"),
        }
    }

    /// Disconnects every client (wills, DISCONNECT to 5.0 clients) and forgets the writers,
    /// which close once they have written it. The adapter then waits up to
    /// [`SHUTDOWN_GRACE`] for its connection tasks.
    pub fn shutdown(&mut self, now: Instant) {
        info!(connections = self.conns.len(), "shutting down");
        self.broker.shutdown(now);
        self.drain(now);
        self.conns.clear();
    }
}
