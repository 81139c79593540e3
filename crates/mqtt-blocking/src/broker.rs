//! The broker server: listener threads, one router thread owning `mqtt_core::broker::Broker`,
//! and two threads per connection (a reader and the connection's own).
//!
//! ```text
//! Server::new(config).listen_tcp(a).listen_tls(b, tls) ──start()──► RunningServer
//!                                                                    ├─ local_addrs()
//!                                                                    └─ shutdown()
//! ```
//!
//! `start` binds every listener before it returns, so a listener on port 0 already knows its
//! port; `run_until` is `start`, then a graceful shutdown when the given function returns.
//! A listener thread blocks in `accept`; stopping wakes it with a connection of its own.

mod connection;
mod router;

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, SyncSender};
use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::Duration;

use mqtt_adapter::broker::{Router as Core, ACCEPT_BACKOFF, INBOX_CAPACITY};
use tracing::{info, warn};

use crate::transport::Incoming;
use crate::Error;
use router::{Input, Router};

/// How long stopping waits to wake a listener blocked in `accept`.
const WAKE_TIMEOUT: Duration = Duration::from_secs(1);

mqtt_adapter::server_builder!();

impl Server {
    /// Loads the TLS files, binds every listener and starts serving on new threads.
    pub fn start(self) -> Result<RunningServer, Error> {
        let (inbox_tx, inbox) = mpsc::sync_channel(INBOX_CAPACITY);
        let mut bound = Vec::with_capacity(self.listeners.len());
        for (addr, tls) in &self.listeners {
            let config = match tls {
                Some(tls) => Some(tls.server_config()?),
                None => None,
            };
            let bind_error = |source| Error::Bind {
                addr: *addr,
                source,
            };
            let listener = TcpListener::bind(addr).map_err(bind_error)?;
            let local = listener.local_addr().map_err(bind_error)?;
            bound.push((listener, local, config));
        }
        let stop = Arc::new(AtomicBool::new(false));
        let answers = router::Answers::default();
        let answer = router::answer_to(answers.clone(), inbox_tx.clone());
        let core = Core::open(self.config, self.store, std::time::Instant::now(), answer)?;
        let router = Router::new(core, answers, inbox, inbox_tx.clone());
        let router = thread::Builder::new()
            .name("mqtt-router".into())
            .spawn(move || router.run())
            .map_err(Error::Spawn)?;
        let mut server = RunningServer {
            local_addrs: Vec::with_capacity(bound.len()),
            listeners: Vec::with_capacity(bound.len()),
            stop,
            inbox: inbox_tx,
            router: Some(router),
        };
        for (listener, addr, tls) in bound {
            let scheme = if tls.is_some() { "mqtts" } else { "mqtt" };
            info!("listening on {scheme}://{addr}");
            server.local_addrs.push(ListenAddr {
                addr,
                tls: tls.is_some(),
            });
            let (inbox, stop) = (server.inbox.clone(), server.stop.clone());
            let accept = thread::Builder::new()
                .name("mqtt-listen".into())
                .spawn(move || accept_loop(&listener, tls, &inbox, &stop))
                .map_err(Error::Spawn)?;
            server.listeners.push(accept);
        }
        Ok(server)
    }

    /// Starts, serves until `signal` returns (it blocks this thread, e.g. waiting for Ctrl-C),
    /// then shuts down gracefully.
    pub fn run_until(self, signal: impl FnOnce()) -> Result<(), Error> {
        let server = self.start()?;
        signal();
        server.shutdown()
    }
}

/// A listening address of a running server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ListenAddr {
    /// The bound address (with the actual port when port 0 was asked for).
    pub addr: SocketAddr,
    /// Whether this listener speaks TLS.
    pub tls: bool,
}

/// A started server. [`RunningServer::shutdown`] stops gracefully and waits; dropping it
/// starts the same graceful stop without waiting for it.
#[derive(Debug)]
pub struct RunningServer {
    local_addrs: Vec<ListenAddr>,
    listeners: Vec<JoinHandle<()>>,
    stop: Arc<AtomicBool>,
    /// For `Input::Stop`.
    inbox: SyncSender<Input>,
    router: Option<JoinHandle<()>>,
}

impl RunningServer {
    /// Every listener's bound address, in the order they were added.
    pub fn local_addrs(&self) -> &[ListenAddr] {
        &self.local_addrs
    }

    /// The first plain TCP listener's address.
    pub fn tcp_addr(&self) -> Option<SocketAddr> {
        self.local_addrs.iter().find(|l| !l.tls).map(|l| l.addr)
    }

    /// The first TLS listener's address.
    pub fn tls_addr(&self) -> Option<SocketAddr> {
        self.local_addrs.iter().find(|l| l.tls).map(|l| l.addr)
    }

    /// Stops accepting, disconnects every client (5.0 clients hear DISCONNECT 0x8B, wills
    /// are published), waits up to 2 s for the last bytes to be written, then stops.
    pub fn shutdown(mut self) -> Result<(), Error> {
        let woken = self.stop();
        for (listener, woken) in std::mem::take(&mut self.listeners).into_iter().zip(woken) {
            // A listener that could not be woken is left to end with the process.
            if woken {
                let _ = listener.join();
            }
        }
        if let Some(router) = self.router.take() {
            router.join().map_err(|panic| {
                let message = panic
                    .downcast_ref::<&str>()
                    .map(|s| s.to_string())
                    .or_else(|| panic.downcast_ref::<String>().cloned());
                Error::Router(message.unwrap_or_else(|| "panic".into()))
            })?;
        }
        info!("stopped");
        Ok(())
    }

    /// Tells the listeners and the router to stop, once; returns which listeners were woken.
    fn stop(&mut self) -> Vec<bool> {
        if self.stop.swap(true, Ordering::AcqRel) {
            return Vec::new();
        }
        let _ = self.inbox.send(Input::Stop);
        let mut woken = Vec::with_capacity(self.local_addrs.len());
        for listener in &self.local_addrs {
            let mut addr = listener.addr;
            if addr.ip().is_unspecified() {
                addr.set_ip(match addr {
                    SocketAddr::V4(_) => [127, 0, 0, 1].into(),
                    SocketAddr::V6(_) => std::net::Ipv6Addr::LOCALHOST.into(),
                });
            }
            woken.push(TcpStream::connect_timeout(&addr, WAKE_TIMEOUT).is_ok());
        }
        woken
    }
}

impl Drop for RunningServer {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Accepts sockets and hands them to the router; the TLS handshake happens on the
/// connection's own thread. Ends once `stop` is set (and a connection wakes it).
fn accept_loop(
    listener: &TcpListener,
    tls: Option<Arc<rustls::ServerConfig>>,
    inbox: &SyncSender<Input>,
    stop: &AtomicBool,
) {
    loop {
        let accepted = listener.accept();
        if stop.load(Ordering::Acquire) {
            return;
        }
        let (tcp, addr) = match accepted {
            Ok(accepted) => accepted,
            Err(e) => {
                warn!(error = %e, "accept failed");
                thread::sleep(ACCEPT_BACKOFF);
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
        if inbox.send(Input::Accept(incoming)).is_err() {
            return;
        }
    }
}
