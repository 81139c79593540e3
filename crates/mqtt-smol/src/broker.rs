//! The broker server: listeners, one router task owning `mqtt_core::broker::Broker`, and one I/O
//! task per connection, all on smol's executor.
//!
//! ```text
//! Server::new(config).listen_tcp(a).listen_tls(b, tls) ──start()──► RunningServer
//!                                                                    ├─ local_addrs()
//!                                                                    └─ shutdown().await
//! ```
//!
//! `start` binds every listener before it returns, so a listener on port 0 already knows its
//! port; `run_until` is `start`, then a graceful shutdown when the given future completes.
//! Every task is held by its `smol::Task` handle: dropping the handle cancels the task.

mod connection;
mod router;

use std::future::Future;
use std::net::SocketAddr;
use std::panic::AssertUnwindSafe;

use async_io::Timer;
use async_net::TcpListener;
use futures_lite::FutureExt;
use futures_rustls::TlsAcceptor;
use mqtt_adapter::broker::{Router as Core, ACCEPT_BACKOFF, INBOX_CAPACITY};
use smol::Task;
use tokio::sync::{mpsc, oneshot};
use tracing::{info, warn};

pub use mqtt_adapter::broker::ListenAddr;

use crate::transport::Incoming;
use crate::Error;
use router::{Input, Router};

mqtt_adapter::server_builder!();

impl Server {
    /// Loads the TLS files and the store, binds every listener and starts serving.
    pub async fn start(self) -> Result<RunningServer, Error> {
        let (inbox_tx, inbox) = mpsc::channel(INBOX_CAPACITY);
        let (answers_tx, answers) = mpsc::unbounded_channel();
        let core = Core::open(
            self.config,
            self.store,
            std::time::Instant::now(),
            move |a| {
                let _ = answers_tx.send(a);
            },
        )?;
        let mut bound = Vec::with_capacity(self.listeners.len());
        for (addr, tls) in &self.listeners {
            let acceptor = match tls {
                Some(tls) => Some(TlsAcceptor::from(tls.server_config()?)),
                None => None,
            };
            let bind_error = |source| Error::Bind {
                addr: *addr,
                source,
            };
            let listener = TcpListener::bind(addr).await.map_err(bind_error)?;
            let local = listener.local_addr().map_err(bind_error)?;
            bound.push((listener, local, acceptor));
        }
        let mut local_addrs = Vec::with_capacity(bound.len());
        let mut listeners = Vec::with_capacity(bound.len());
        for (listener, addr, tls) in bound {
            let listen = ListenAddr {
                addr,
                tls: tls.is_some(),
            };
            info!("listening on {listen}");
            local_addrs.push(listen);
            listeners.push(smol::spawn(accept_loop(listener, tls, inbox_tx.clone())));
        }
        let (stop, stop_rx) = oneshot::channel();
        let router = Router::new(core, inbox, inbox_tx, answers);
        // A panic in the router is a bug: it becomes `Error::Router` for whoever awaits.
        let router = async move {
            let ended = AssertUnwindSafe(router.run(stop_rx)).catch_unwind().await;
            ended.map_err(|panic| Error::Router(panic_message(&*panic)))
        };
        Ok(RunningServer {
            local_addrs,
            listeners,
            stop: Some(stop),
            router: smol::spawn(router),
        })
    }

    /// Starts, serves until `signal` completes, then shuts down gracefully.
    pub async fn run_until(self, signal: impl Future<Output = ()>) -> Result<(), Error> {
        let mut server = self.start().await?;
        let signalled = async {
            signal.await;
            None
        };
        // The router ends on its own only by failing.
        let failed = async { Some((&mut server.router).await) };
        match signalled.or(failed).await {
            None => server.shutdown().await,
            Some(ended) => ended,
        }
    }
}

/// A started server. Dropping it stops everything at once (dropping a `smol::Task` cancels
/// it, and the router's drop cancels its connection tasks); [`RunningServer::shutdown`] stops
/// gracefully.
#[derive(Debug)]
pub struct RunningServer {
    local_addrs: Vec<ListenAddr>,
    listeners: Vec<Task<()>>,
    stop: Option<oneshot::Sender<()>>,
    router: Task<Result<(), Error>>,
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

    /// Stops accepting (the listening sockets are closed when this returns), disconnects every
    /// client (5.0 clients hear DISCONNECT 0x8B, wills are published), waits up to 2 s for the
    /// last bytes to be written, then stops.
    pub async fn shutdown(mut self) -> Result<(), Error> {
        for listener in self.listeners.drain(..) {
            listener.cancel().await;
        }
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        (&mut self.router).await?;
        info!("stopped");
        Ok(())
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
                Timer::after(ACCEPT_BACKOFF).await;
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

/// The message of a caught panic, if it has one.
fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    match (panic.downcast_ref::<&str>(), panic.downcast_ref::<String>()) {
        (Some(s), _) => (*s).to_string(),
        (_, Some(s)) => s.clone(),
        _ => "a panic".to_string(),
    }
}
