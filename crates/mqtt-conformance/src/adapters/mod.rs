//! The adapters the matrix runs: one file per runtime, one line per role in each list below.
//!
//! # Adding an adapter
//!
//! 1. Add the crate to `crates/mqtt-conformance/Cargo.toml` (`mqtt-smol.workspace = true`).
//! 2. Write `src/adapters/<name>.rs` with a unit struct implementing [`BrokerAdapter`] (and
//!    its [`crate::RunningBroker`]) and one implementing [`ClientAdapter`] (and its
//!    [`crate::ClientHandle`]); `tokio.rs` is the model; an async client over `mqtt_adapter::client::Client` needs only an `async_client::Exec`.
//! 3. Declare the module here and add one line to [`brokers`] and one to [`clients`].
//!
//! No feature flags: every adapter in the lists runs in every `cargo test`, against every
//! other adapter.

use crate::{BrokerAdapter, ClientAdapter};

mod async_client;
pub mod blocking;
pub mod smol;
pub mod tokio;

/// Every broker adapter.
pub fn brokers() -> Vec<Box<dyn BrokerAdapter>> {
    vec![
        Box::new(tokio::TokioBroker),
        Box::new(smol::SmolBroker),
        Box::new(blocking::BlockingBroker),
    ]
}

/// Every client adapter.
pub fn clients() -> Vec<Box<dyn ClientAdapter>> {
    vec![
        Box::new(tokio::TokioClient),
        Box::new(smol::SmolClient),
        Box::new(blocking::BlockingClient),
    ]
}
