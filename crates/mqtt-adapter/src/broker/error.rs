//! What can go wrong starting or stopping a broker server, the same in every adapter.

use std::io;

/// What can go wrong starting or stopping a server. Peers' faults are never errors here: the
/// broker answers them on the wire and closes their connection.
#[non_exhaustive]
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// A listener could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address asked for.
        addr: std::net::SocketAddr,
        /// Why.
        source: io::Error,
    },
    /// The TLS configuration could not be built.
    #[error(transparent)]
    TlsConfig(#[from] crate::tls::TlsError),
    /// The store could not be opened (or closed).
    #[error(transparent)]
    Store(#[from] mqtt_store::StoreError),
    /// A thread could not be started.
    #[error("cannot start a thread: {0}")]
    Spawn(#[source] io::Error),
    /// The task or thread that owns the broker stopped on its own: a bug (it panicked, with
    /// this message).
    #[error("the broker's router failed: {0}")]
    Router(String),
}
