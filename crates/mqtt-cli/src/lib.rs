//! The `mqtt` command's subcommands and configuration file, as a library for its binary,
//! examples and tests.
//!
//! # Layout
//!
//! - `src/main.rs`: the entry point: argument parsing, logging, exit code.
//! - [`cmd`]: one module per subcommand; [`cmd::broker`] runs a broker, [`cmd::publish`],
//!   [`cmd::subscribe`] and [`cmd::rr`] are `mqtt pub`, `mqtt sub` and `mqtt rr`,
//!   [`cmd::bench`] is `mqtt bench`.
//! - [`bench`]: what `mqtt bench` runs: load clients, stamps, verification, latency, reports.
//! - [`config`]: the TOML file of `mqtt broker --config` (documented in `docs/configuration.md`).
//! - [`connect`]: the flags the client commands share (host, identity, session, will, TLS)
//!   and the connection settings they resolve to.
//! - [`props`]: `-D COMMAND PROPERTY VALUE`, MQTT 5.0 properties by mosquitto's names.
//! - [`format`](mod@format): how a received message is printed (`-v`, `-F`, `--format json`).
//! - [`run`]: what the client commands share at run time: connecting, awaiting requests
//!   while draining events, printing, exit statuses ([`run::Exit`]).

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod bench;
pub mod cmd;
pub mod config;
pub mod connect;
pub mod format;
pub mod payload;
pub mod props;
pub mod run;
