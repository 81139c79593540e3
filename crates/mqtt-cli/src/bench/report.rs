//! The outcome of a run: the figures, the verdict on what arrived, and how they are shown: a
//! summary table for people, or one JSON object (`--json`) whose schema `docs/bench.md`
//! documents. Fields are only ever added to the schema; a change of meaning bumps `schema`.

use std::fmt::Write as _;

use mqtt_core::{ProtocolVersion, QoS};
use serde::Serialize;

use super::conn::ConnReport;
use super::latency::LatencySummary;
use super::plan::{Load, Plan};
use super::verify::Verdict;

/// The version of the JSON schema.
pub const SCHEMA: u32 = 1;

/// Everything a run measured and concluded.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Report {
    /// [`SCHEMA`].
    pub schema: u32,
    /// The scenario's name.
    pub scenario: &'static str,
    /// The broker's URL.
    pub url: String,
    /// `3.1`, `3.1.1` or `5.0`.
    pub protocol: &'static str,
    /// 0, 1 or 2.
    pub qos: u8,
    /// Payload bytes.
    pub size: usize,
    /// The pace.
    pub load: LoadReport,
    /// Publishing clients.
    pub publishers: usize,
    /// Subscribing clients.
    pub subscribers: usize,
    /// Messages per publisher asked for (`sub`: per subscriber).
    pub count: u64,
    /// Seconds from the start of publishing to the end of the run (grace included).
    pub elapsed_s: f64,
    /// Messages handed to the publishing clients.
    pub sent: u64,
    /// Seconds from the start to the last message handed over.
    pub send_s: f64,
    /// `sent / send_s`.
    pub send_rate: f64,
    /// Deliveries the subscribers should have had: each message once per subscriber (once
    /// per group for `shared`).
    pub expected: u64,
    /// Messages the subscribers received, duplicates included.
    pub received: u64,
    /// Seconds from the start to the last message received.
    pub receive_s: f64,
    /// `received / receive_s`.
    pub receive_rate: f64,
    /// Expected but never received.
    pub lost: u64,
    /// Received more than once.
    pub duplicates: u64,
    /// Received after a later message of the same publisher.
    pub out_of_order: u64,
    /// Received without a stamp of this run (not from this `mqtt bench`).
    pub foreign: u64,
    /// End-to-end latency of the messages of this run, in microseconds.
    pub latency_us: Option<LatencySummary>,
    /// `conn` only.
    pub conn: Option<ConnReport>,
    /// What went wrong on the way (lost connections, refusals...).
    pub errors: Vec<String>,
    /// Why the run failed (the exit status is then 1); empty when it passed.
    pub failures: Vec<String>,
    /// `failures` is empty.
    pub passed: bool,
}

/// The pace, as the report says it.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct LoadReport {
    /// `closed` or `open`.
    pub mode: &'static str,
    /// Closed loop: the window of each publisher.
    pub inflight: Option<u16>,
    /// Open loop: messages per second, all publishers together.
    pub rate: Option<f64>,
}

/// The message figures gathered by a run, before judging.
#[derive(Debug, Clone, Default)]
pub struct Figures {
    pub(super) publishers: usize,
    pub(super) subscribers: usize,
    pub(super) elapsed_s: f64,
    pub(super) sent: u64,
    pub(super) send_s: f64,
    pub(super) received: u64,
    pub(super) receive_s: f64,
    pub(super) verdict: Verdict,
    pub(super) latency: Option<LatencySummary>,
    pub(super) conn: Option<ConnReport>,
    pub(super) errors: Vec<String>,
}

impl Report {
    /// Judges `figures` of a run of `plan`: QoS 1/2 losses, QoS 2 duplicates, connections
    /// that failed and errors fail the run; QoS 0 losses are only reported.
    pub fn new(plan: &Plan, figures: Figures) -> Self {
        let v = figures.verdict;
        let mut failures = Vec::new();
        if plan.qos != QoS::AtMostOnce && v.lost > 0 {
            failures.push(format!(
                "{} of {} QoS {} deliveries lost",
                v.lost,
                v.expected,
                plan.qos.as_u8()
            ));
        }
        if plan.qos == QoS::ExactlyOnce && v.duplicates > 0 {
            failures.push(format!("{} QoS 2 deliveries duplicated", v.duplicates));
        }
        if let Some(c) = &figures.conn {
            if c.connected < c.requested {
                failures.push(format!(
                    "{} of {} connections made",
                    c.connected, c.requested
                ));
            }
        }
        if !figures.errors.is_empty() {
            failures.push(format!("{} errors", figures.errors.len()));
        }
        let rate = |n: u64, s: f64| if s > 0.0 { n as f64 / s } else { 0.0 };
        Self {
            schema: SCHEMA,
            scenario: plan.scenario.name(),
            url: plan.settings.url.clone(),
            protocol: match plan.settings.client.version {
                ProtocolVersion::V31 => "3.1",
                ProtocolVersion::V311 => "3.1.1",
                ProtocolVersion::V5 => "5.0",
            },
            qos: plan.qos.as_u8(),
            size: plan.size,
            load: match plan.load {
                Load::Closed { inflight } => LoadReport {
                    mode: "closed",
                    inflight: Some(inflight),
                    rate: None,
                },
                Load::Open { rate } => LoadReport {
                    mode: "open",
                    inflight: None,
                    rate: Some(rate),
                },
            },
            publishers: figures.publishers,
            subscribers: figures.subscribers,
            count: plan.count,
            elapsed_s: figures.elapsed_s,
            sent: figures.sent,
            send_s: figures.send_s,
            send_rate: rate(figures.sent, figures.send_s),
            expected: v.expected,
            received: figures.received,
            receive_s: figures.receive_s,
            receive_rate: rate(figures.received, figures.receive_s),
            lost: v.lost,
            duplicates: v.duplicates,
            out_of_order: v.out_of_order,
            foreign: v.foreign,
            latency_us: figures.latency,
            conn: figures.conn,
            errors: figures.errors,
            passed: failures.is_empty(),
            failures,
        }
    }

    /// One line of JSON.
    pub fn to_json(&self) -> String {
        // invariant: every field is a number, a string, a bool or made of those.
        serde_json::to_string(self).unwrap_or_else(|e| unreachable!("report as JSON: {e}"))
    }

    /// The summary table.
    pub fn to_table(&self) -> String {
        let mut s = String::new();
        let load = match (self.load.inflight, self.load.rate) {
            (Some(window), _) => format!("closed loop, window {window}"),
            (_, Some(rate)) => format!("open loop, {rate} msg/s"),
            _ => String::new(),
        };
        match &self.conn {
            Some(c) => {
                let _ = writeln!(
                    s,
                    "mqtt bench conn: {} connections, MQTT {}, {}",
                    c.requested, self.protocol, self.url
                );
            }
            None => {
                let _ = writeln!(
                    s,
                    "mqtt bench {}: {}, {}, QoS {}, {} B, MQTT {}, {load}, {}",
                    self.scenario,
                    plural(self.publishers, "publisher"),
                    plural(self.subscribers, "subscriber"),
                    self.qos,
                    self.size,
                    self.protocol,
                    self.url
                );
            }
        }
        if let Some(c) = &self.conn {
            let _ = writeln!(
                s,
                "  connections  {:>10} of {} in {:.2} s   {:>10.0} conn/s   ({} failed)",
                c.connected, c.requested, c.connect_s, c.connect_rate, c.failed
            );
            if let (Some(b), Some(a)) = (c.broker_rss_before_kib, c.broker_rss_after_kib) {
                let per = c.rss_per_connection_kib.unwrap_or(0.0);
                let _ = writeln!(
                    s,
                    "  broker RSS   {b} KiB -> {a} KiB   {per:.2} KiB per connection"
                );
            }
        }
        if self.conn.is_none() {
            let _ = writeln!(
                s,
                "  sent         {:>10} in {:>7.2} s   {:>10.0} msg/s",
                self.sent, self.send_s, self.send_rate
            );
            if self.subscribers > 0 {
                let _ = writeln!(
                    s,
                    "  received     {:>10} in {:>7.2} s   {:>10.0} msg/s   (expected {})",
                    self.received, self.receive_s, self.receive_rate, self.expected
                );
                let _ = writeln!(
                    s,
                    "  lost {}   duplicates {}   out of order {}   foreign {}",
                    self.lost, self.duplicates, self.out_of_order, self.foreign
                );
            }
        }
        if let Some(l) = &self.latency_us {
            let _ = writeln!(
                s,
                "  latency µs   p50 {}   p90 {}   p99 {}   p99.9 {}   max {}   (min {}, mean {:.0}, {} samples)",
                l.p50, l.p90, l.p99, l.p999, l.max, l.min, l.mean, l.count
            );
        }
        for e in &self.errors {
            let _ = writeln!(s, "  error: {e}");
        }
        if self.passed {
            let _ = writeln!(s, "  result: ok");
        } else {
            let _ = writeln!(s, "  result: FAILED: {}", self.failures.join("; "));
        }
        s
    }
}

/// `1 publisher`, `2 publishers`.
fn plural(n: usize, what: &str) -> String {
    if n == 1 {
        format!("1 {what}")
    } else {
        format!("{n} {what}s")
    }
}
