//! The addresses a broker server listens on once bound: the same in every adapter.

use std::fmt;
use std::net::SocketAddr;

/// A listening address of a running server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ListenAddr {
    /// The bound address (with the actual port when port 0 was asked for).
    pub addr: SocketAddr,
    /// Whether this listener speaks TLS.
    pub tls: bool,
}

impl ListenAddr {
    /// The URL scheme this listener speaks: `mqtt` or `mqtts`.
    pub fn scheme(&self) -> &'static str {
        if self.tls {
            "mqtts"
        } else {
            "mqtt"
        }
    }

    /// The address of the first listener in `addrs` that speaks TLS (`tls`) or plain TCP.
    pub fn first(addrs: &[Self], tls: bool) -> Option<SocketAddr> {
        addrs.iter().find(|l| l.tls == tls).map(|l| l.addr)
    }
}

/// `mqtt://addr` or `mqtts://addr`.
impl fmt::Display for ListenAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}://{}", self.scheme(), self.addr)
    }
}
