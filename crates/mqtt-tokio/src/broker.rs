//! The broker server: listeners, one router task owning `mqtt_core::broker::Broker`, and one I/O
//! task per connection.
//!
//! ```text
//! Server::new(config).listen_tcp(a).listen_tls(b, tls) ──start()──► RunningServer
//!                                                                    ├─ local_addrs()
//!                                                                    └─ shutdown().await
//! ```
//!
//! `start` binds every listener before it returns, so a listener on port 0 already knows its
//! port; `run_until` is `start`, then a graceful shutdown when the given future completes.

mod connection;
mod router;

use std::future::Future;
use std::net::SocketAddr;

pub use mqtt_adapter::broker::ListenAddr;
use mqtt_adapter::broker::{Router as Core, ACCEPT_BACKOFF, INBOX_CAPACITY};
use tokio::net::TcpListener;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use tokio_rustls::TlsAcceptor;
use tracing::{info, warn};

use crate::transport::Incoming;
use crate::Error;
use router::{now, Input, Router};

mqtt_adapter::server_builder!();

impl Server {
    /// Loads the TLS files and the store, binds every listener and starts serving.
    pub async fn start(self) -> Result<RunningServer, Error> {
        let (inbox_tx, inbox) = mpsc::channel(INBOX_CAPACITY);
        let (answers_tx, answers) = mpsc::unbounded_channel();
        let core = Core::open(self.config, self.store, now(), move |answer| {
            let _ = answers_tx.send(answer);
        })?;
        let mut bound = Vec::with_capacity(self.listeners.len());
        for (addr, tls) in &self.listeners {
            let acceptor = match tls {
                Some(tls) => Some(TlsAcceptor::from(tls.server_config()?)),
                None => None,
            };
            let listener = TcpListener::bind(addr)
                .await
                .map_err(|source| Error::Bind {
                    addr: *addr,
                    source,
                })?;
            let local = listener.local_addr().map_err(|source| Error::Bind {
                addr: *addr,
                source,
            })?;
            bound.push((listener, local, acceptor));
        }
        let mut local_addrs = Vec::with_capacity(bound.len());
        let mut listeners = Vec::with_capacity(bound.len());
        for (listener, addr, tls) in bound {
            let scheme = if tls.is_some() { "mqtts" } else { "mqtt" };
            info!("listening on {scheme}://{addr}");
            local_addrs.push(ListenAddr {
                addr,
                tls: tls.is_some(),
            });
            listeners.push(tokio::spawn(accept_loop(listener, tls, inbox_tx.clone())));
        }
        let (stop, stop_rx) = oneshot::channel();
        let router = Router::new(core, inbox, inbox_tx, answers);
        Ok(RunningServer {
            local_addrs,
            listeners,
            stop: Some(stop),
            router: tokio::spawn(router.run(stop_rx)),
        })
    }

    /// Starts, serves until `signal` completes, then shuts down gracefully.
    pub async fn run_until(self, signal: impl Future<Output = ()>) -> Result<(), Error> {
        let mut server = self.start().await?;
        tokio::select! {
            () = signal => server.shutdown().await,
            // The router ends on its own only by failing.
            joined = &mut server.router => {
                joined.map_err(|e| Error::Router(e.to_string()))?;
                Ok(())
            }
        }
    }
}

/// A started server. Dropping it stops everything at once; [`RunningServer::shutdown`] stops
/// gracefully.
#[derive(Debug)]
pub struct RunningServer {
    local_addrs: Vec<ListenAddr>,
    listeners: Vec<JoinHandle<()>>,
    stop: Option<oneshot::Sender<()>>,
    router: JoinHandle<()>,
}

impl RunningServer {
    /// Every listener's bound address, in the order they were added.
    pub fn local_addrs(&self) -> &[ListenAddr] {
        &self.local_addrs
    }

    /// The first plain TCP listener's address.
    pub fn tcp_addr(&self) -> Option<SocketAddr> {
        ListenAddr::first(&self.local_addrs, false)
    }

    /// The first TLS listener's address.
    pub fn tls_addr(&self) -> Option<SocketAddr> {
        ListenAddr::first(&self.local_addrs, true)
    }

    /// Stops accepting, disconnects every client (5.0 clients hear DISCONNECT 0x8B, wills
    /// are published), waits up to 2 s for the last bytes to be written, then stops.
    pub async fn shutdown(mut self) -> Result<(), Error> {
        for listener in &self.listeners {
            listener.abort();
        }
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        (&mut self.router)
            .await
            .map_err(|e| Error::Router(e.to_string()))?;
        info!("stopped");
        Ok(())
    }
}

impl Drop for RunningServer {
    fn drop(&mut self) {
        for listener in &self.listeners {
            listener.abort();
        }
        // Aborting the router drops its connection tasks, which aborts them.
        self.router.abort();
    }
}

/// Accepts sockets and hands them to the router; the TLS handshake happens on the
/// connection's own task.
async fn accept_loop(listener: TcpListener, tls: Option<TlsAcceptor>, inbox: mpsc::Sender<Input>) {
    loop {
        let (tcp, addr) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(e) => {
                warn!(error = %e, "accept failed");
                tokio::time::sleep(ACCEPT_BACKOFF).await;
                continue;
            }
        };
        // MQTT packets are small and latency matters: no Nagle delay.
        let _ = tcp.set_nodelay(true);
        let incoming = Incoming {
            tcp,
            addr,
            tls: tls.clone(),
        };
        if inbox.send(Input::Accept(incoming)).await.is_err() {
            return;
        }
    }
}
