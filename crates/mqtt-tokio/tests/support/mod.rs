//! What the socket tests share: a TCP proxy they control.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// Every wait on the proxy ends by this.
pub(crate) const WAIT: Duration = Duration::from_secs(10);

/// A TCP proxy in front of the broker: it can hold the bytes of either direction, count the
/// bytes it read from clients, and kill every connection.
pub(crate) struct Proxy {
    pub(crate) addr: SocketAddr,
    hold_up: watch::Sender<bool>,
    hold_down: watch::Sender<bool>,
    /// Bytes read from clients (forwarded or held).
    from_clients: watch::Receiver<usize>,
    conns: Arc<Mutex<Vec<JoinHandle<()>>>>,
    accept: JoinHandle<()>,
}

impl Proxy {
    pub(crate) async fn start(upstream: SocketAddr) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (hold_up, up_rx) = watch::channel(false);
        let (hold_down, down_rx) = watch::channel(false);
        let (count_tx, from_clients) = watch::channel(0);
        let count_tx = Arc::new(count_tx);
        let conns: Arc<Mutex<Vec<JoinHandle<()>>>> = Arc::default();
        let tasks = conns.clone();
        let accept = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let (up_rx, down_rx, count) = (up_rx.clone(), down_rx.clone(), count_tx.clone());
                let conn = tokio::spawn(async move {
                    let Ok(server) = TcpStream::connect(upstream).await else {
                        return;
                    };
                    let (cr, cw) = client.into_split();
                    let (sr, sw) = server.into_split();
                    tokio::select! {
                        () = pipe(cr, sw, up_rx, Some(count)) => {}
                        () = pipe(sr, cw, down_rx, None) => {}
                    }
                });
                tasks.lock().unwrap().push(conn);
            }
        });
        Self {
            addr,
            hold_up,
            hold_down,
            from_clients,
            conns,
            accept,
        }
    }

    /// Holds (or releases) what clients send.
    pub(crate) fn hold_up(&self, hold: bool) {
        self.hold_up.send_replace(hold);
    }

    /// Holds (or releases) what the server sends.
    pub(crate) fn hold_down(&self, hold: bool) {
        self.hold_down.send_replace(hold);
    }

    /// Closes every connection, both ways, dropping what was held; returns once they are
    /// closed, so that releasing a hold afterwards cannot forward anything.
    pub(crate) async fn kill(&self) {
        let conns: Vec<_> = self.conns.lock().unwrap().drain(..).collect();
        for conn in &conns {
            conn.abort();
        }
        for conn in conns {
            let _ = tokio::time::timeout(WAIT, conn)
                .await
                .expect("timed out: kill");
        }
    }

    /// Waits until clients have sent more than `bytes` in all.
    pub(crate) async fn wait_from_clients(&self, bytes: usize) {
        let mut rx = self.from_clients.clone();
        tokio::time::timeout(WAIT, rx.wait_for(|n| *n > bytes))
            .await
            .expect("timed out: bytes at the proxy")
            .unwrap();
    }

    pub(crate) fn bytes_from_clients(&self) -> usize {
        *self.from_clients.borrow()
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.accept.abort();
        for conn in self.conns.lock().unwrap().iter() {
            conn.abort();
        }
    }
}

/// Copies `from` to `to`, waiting while `hold` is set; counts what it reads.
async fn pipe(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    mut hold: watch::Receiver<bool>,
    count: Option<Arc<watch::Sender<usize>>>,
) {
    let mut buf = vec![0; 16 * 1024];
    loop {
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        if let Some(count) = &count {
            count.send_modify(|c| *c += n);
        }
        if hold.wait_for(|held| !*held).await.is_err() {
            return;
        }
        if to.write_all(&buf[..n]).await.is_err() {
            return;
        }
    }
}
