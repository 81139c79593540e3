//! The broker side every runtime shares: the [`Router`] that owns the sans-IO
//! [`Broker`](mqtt_core::broker::Broker) and addresses its output to connections, and the
//! [`ConnState`] of one connection (decoding, the queue of chunks to write, what to report).
//! An adapter adds only the sockets, the tasks or threads, and the clock.

mod connection;
mod error;
mod listen;
mod mailbox;
mod router;
mod server;

pub use connection::{
    ConnCommand, ConnState, WriteQueue, Wrote, CLOSE_LINGER, MAX_SLICES, READ_CHUNK,
};
pub use error::ServerError;
pub use listen::ListenAddr;
pub use mailbox::{Mailbox, MailboxSink, Wakes};
pub use mqtt_store::{Durability, StoreOptions};
pub use router::{close_store, ConnSink, Report, Router, SHUTDOWN_GRACE};

/// Inputs that may wait for the router before connection tasks stop reading their sockets.
pub const INBOX_CAPACITY: usize = 1024;
/// Pause after a failed `accept` (e.g. out of file descriptors) before trying again.
pub const ACCEPT_BACKOFF: std::time::Duration = std::time::Duration::from_millis(100);
