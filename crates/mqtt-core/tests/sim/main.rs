//! Deterministic simulation of the broker: raw MQTT peers wired to one `Broker` in memory, on a
//! virtual clock, through the public API only.
//!
//! [`world`] owns the broker, the peers and the clock and checks the drain contract on every
//! input; [`script`] builds the packets peers send. The other modules are scenarios grouped
//! by behaviour; each test states the exact packets and fields it expects.

mod script;
mod world;

mod bad_input;
mod connect;
mod keepalive;
mod limits;
mod persist;
mod qos;
mod restart;
mod retain;
mod session;
mod subscribe;
mod sys;
mod takeover;
mod v5;
mod will;
