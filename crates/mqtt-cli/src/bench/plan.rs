//! Everything a run will do, checked: what `mqtt bench`'s flags resolve to.

use std::time::Duration;

use mqtt_core::QoS;

use super::scenario::{Scenario, TopicPattern};
use crate::connect::Settings;

/// How publishers pace themselves.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Load {
    /// As fast as the broker takes them, with at most `inflight` QoS 1/2 messages
    /// unacknowledged per publisher.
    Closed {
        /// The window of each publisher.
        inflight: u16,
    },
    /// `rate` messages per second in all, on a fixed schedule; latency counts from each
    /// message's scheduled time, so a stall delays every message behind it in the figures
    /// too (no coordinated omission).
    Open {
        /// Messages per second, all publishers together.
        rate: f64,
    },
}

/// One run of `mqtt bench`.
#[derive(Debug, Clone)]
pub struct Plan {
    /// What to run.
    pub scenario: Scenario,
    /// Where and how each client connects (its client id is replaced per client).
    pub settings: Settings,
    /// The beginning of every client id.
    pub id_prefix: String,
    /// QoS of publications and subscriptions.
    pub qos: QoS,
    /// Payload bytes, at least the stamp's.
    pub size: usize,
    /// Topic of each publisher.
    pub topic: TopicPattern,
    /// Publishers (`pub`, `fan-in`, `shared`).
    pub publishers: usize,
    /// Subscribers (`sub`, `fan-out`, `shared`).
    pub subscribers: usize,
    /// Pairs (`pairs`), or connections (`conn`).
    pub clients: usize,
    /// Messages per publisher (`sub`: per subscriber).
    pub count: u64,
    /// The pace.
    pub load: Load,
    /// The longest the publishing (or, in `conn`, connecting) may last.
    pub duration: Duration,
    /// Once publishers are done, how long to wait for one more message before the rest are
    /// counted lost (the wait ends anyway after `duration`).
    pub grace: Duration,
    /// `conn`: new connections per second (`None`: as fast as they complete, a window at
    /// a time).
    pub conn_rate: Option<f64>,
    /// `conn`: how long to hold the connections open once all are up.
    pub hold: Duration,
    /// `conn`: the broker's process, whose resident memory is read before and after.
    pub broker_pid: Option<u32>,
    /// Show a progress bar (on a terminal, without `--quiet`).
    pub progress: bool,
    /// Subscribers keep persistent sessions.
    pub persistent_subscribers: bool,
}

impl Plan {
    /// The label of the load in reports: `closed (inflight 100)` or `open (1000 msg/s)`.
    pub fn load_label(&self) -> String {
        match self.load {
            Load::Closed { inflight } => format!("closed loop, window {inflight}"),
            Load::Open { rate } => format!("open loop, {rate} msg/s"),
        }
    }
}
