//! The router task: the one owner of the sans-IO broker, fed by every connection and a timer.

use std::collections::HashMap;
use std::time::Duration;

use mqtt_core::broker::{AuthDecision, Broker, BrokerEvent, ConnId, PeerInfo};
use mqtt_core::codec::DecodeError;
use mqtt_core::Packet;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinSet;
use tokio::time::{sleep, sleep_until, Instant};
use tracing::{debug, info, warn};

use super::connection::{Command, Connection};
use crate::transport::Incoming;

/// What the listeners and connection tasks tell the router, over one bounded channel.
#[derive(Debug)]
pub(super) enum Input {
    /// A listener accepted a socket.
    Accept(Incoming),
    /// A connection decoded a packet.
    Packet(ConnId, Packet, usize),
    /// A connection received bytes that do not decode; it reads no more.
    DecodeError(ConnId, DecodeError),
    /// A connection wrote this many bytes of what it was sent.
    Written(ConnId, usize),
    /// A connection's socket ended or failed.
    Closed(ConnId),
}

/// How long shutting down waits for connections to write their last bytes.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(2);

/// The router: the broker, the writer channel of each connection, and the connection tasks.
pub(super) struct Router {
    broker: Broker,
    inbox: mpsc::Receiver<Input>,
    /// Handed to each connection task.
    inbox_tx: mpsc::Sender<Input>,
    conns: HashMap<ConnId, mpsc::UnboundedSender<Command>>,
    tasks: JoinSet<()>,
}

impl Router {
    pub(super) fn new(
        broker: Broker,
        inbox: mpsc::Receiver<Input>,
        inbox_tx: mpsc::Sender<Input>,
    ) -> Self {
        Self {
            broker,
            inbox,
            inbox_tx,
            conns: HashMap::new(),
            tasks: JoinSet::new(),
        }
    }

    /// The loop: one input (a connection's, or the timer), then drain the broker's output.
    /// Returns once `stop` fires (or its sender is dropped), after shutting down gracefully.
    pub(super) async fn run(mut self, mut stop: oneshot::Receiver<()>) {
        loop {
            let timeout = self.broker.poll_timeout();
            let deadline = timeout.map_or_else(Instant::now, Instant::from_std);
            tokio::select! {
                Some(input) = self.inbox.recv() => self.handle(input),
                () = sleep_until(deadline), if timeout.is_some() => {
                    self.broker.handle_timeout(now());
                }
                Some(joined) = self.tasks.join_next(), if !self.tasks.is_empty() => {
                    if let Err(e) = joined {
                        warn!(error = %e, "a connection task failed");
                    }
                }
                _ = &mut stop => break,
            }
            self.drain();
        }
        self.shutdown().await;
    }

    fn handle(&mut self, input: Input) {
        let now = now();
        match input {
            Input::Accept(incoming) => {
                let peer = PeerInfo {
                    addr: Some(incoming.addr),
                    tls: incoming.tls.is_some(),
                };
                let conn = self.broker.accept(now, peer);
                debug!(%conn, addr = %incoming.addr, tls = incoming.tls.is_some(), "accepted");
                let (tx, rx) = mpsc::unbounded_channel();
                self.conns.insert(conn, tx);
                let config = self.broker.config();
                let task = Connection::new(
                    conn,
                    self.broker.decode_limits(),
                    config.limits.max_pending_write_bytes,
                    rx,
                    self.inbox_tx.clone(),
                );
                self.tasks.spawn(task.run(incoming, config.connect_timeout));
            }
            Input::Packet(conn, packet, len) => self.broker.handle_packet(now, conn, packet, len),
            Input::DecodeError(conn, e) => self.broker.handle_decode_error(now, conn, &e),
            Input::Written(conn, n) => self.broker.handle_written(now, conn, n),
            Input::Closed(conn) => {
                if self.conns.remove(&conn).is_some() {
                    debug!(%conn, "connection lost");
                }
                self.broker.handle_closed(now, conn);
            }
        }
    }

    /// Drains the broker's transmits and events to `None` (the sans-IO contract).
    fn drain(&mut self) {
        loop {
            let mut idle = true;
            while let Some(t) = self.broker.poll_transmit() {
                idle = false;
                if let Some(tx) = self.conns.get(&t.conn) {
                    // A send fails only when the task has ended; its `Closed` is on its way.
                    let _ = tx.send(Command::Write {
                        bytes: t.bytes,
                        payload: t.payload,
                    });
                }
            }
            while let Some(event) = self.broker.poll_event() {
                idle = false;
                self.event(event);
            }
            if idle {
                return;
            }
        }
    }

    fn event(&mut self, event: BrokerEvent) {
        match event {
            BrokerEvent::Connected {
                conn,
                client_id,
                version,
                session_present,
            } => debug!(%conn, %client_id, ?version, session_present, "connected"),
            BrokerEvent::Close { conn, reason } => {
                debug!(%conn, %reason, "closing");
                if let Some(tx) = self.conns.remove(&conn) {
                    let _ = tx.send(Command::Close);
                }
            }
            BrokerEvent::Authenticate { conn, request } => {
                // This adapter has no authenticator yet: everyone is let in.
                debug!(%conn, client_id = %request.client_id, "authenticate: allowed");
                self.broker.handle_auth(now(), conn, AuthDecision::Allow);
            }
            other => debug!(event = ?other, "unhandled broker event"),
        }
    }

    /// Disconnects every client, then gives their tasks a bounded time to write it.
    async fn shutdown(mut self) {
        info!(connections = self.conns.len(), "shutting down");
        self.broker.shutdown(now());
        self.drain();
        self.conns.clear();
        let grace = sleep(SHUTDOWN_GRACE);
        tokio::pin!(grace);
        loop {
            tokio::select! {
                joined = self.tasks.join_next() => if joined.is_none() { break },
                // Keep connection tasks from waiting on a full inbox; a late accept is closed.
                _ = self.inbox.recv() => {}
                () = &mut grace => {
                    warn!(left = self.tasks.len(), "connections still writing at shutdown: dropped");
                    break;
                }
            }
        }
        // Dropping the `JoinSet` aborts whatever is left.
    }
}

/// The time given to the broker: tokio's clock, so that tests may pause it.
fn now() -> std::time::Instant {
    Instant::now().into_std()
}
