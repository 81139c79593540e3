//! The `mqtt` command's subcommands and configuration file, as a library for its binary,
//! examples and tests.
//!
//! # Layout
//!
//! - `src/main.rs`: the entry point: argument parsing, logging, exit code.
//! - [`cmd`]: one module per subcommand; [`cmd::broker`] runs a broker.
//! - [`config`]: the TOML file of `mqtt broker --config` (documented in `docs/configuration.md`).

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod cmd;
pub mod config;
