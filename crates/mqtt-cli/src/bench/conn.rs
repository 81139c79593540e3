//! The `conn` scenario: open many connections, at a set rate or a window at a time, hold them
//! idle, and report how fast they came up and what they cost the broker in memory.

use std::sync::Arc;
use std::time::Duration;

use mqtt_tokio::client::{Client, Events};
use serde::Serialize;
use tokio::task::JoinSet;
use tokio::time::Instant;

use super::counters::Counters;
use super::dial::{self, Role};
use super::plan::Plan;
use super::rss;

/// Connections being opened at once when no rate is given.
const WINDOW: usize = 64;

/// What `conn` measured.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ConnReport {
    /// Connections asked for.
    pub requested: u64,
    /// Connections the server accepted.
    pub connected: u64,
    /// Attempts that failed.
    pub failed: u64,
    /// Seconds from the first attempt to the last acceptance.
    pub connect_s: f64,
    /// Connections accepted per second.
    pub connect_rate: f64,
    /// The broker's resident memory before the first connection (`--broker-pid`), KiB.
    pub broker_rss_before_kib: Option<u64>,
    /// ... and with every connection up, after the hold, KiB.
    pub broker_rss_after_kib: Option<u64>,
    /// The difference per connection, KiB.
    pub rss_per_connection_kib: Option<f64>,
}

/// Runs `conn`; the report and the errors met (the first few).
pub async fn run(plan: Arc<Plan>, counters: Arc<Counters>) -> (ConnReport, Vec<String>) {
    let mut errors = Vec::new();
    let rss = |errors: &mut Vec<String>| {
        let pid = plan.broker_pid?;
        rss::vm_rss_kib(pid)
            .map_err(|e| errors.push(format!("{e:#}")))
            .ok()
    };
    let before = rss(&mut errors);

    let start = Instant::now();
    let deadline = start + plan.duration;
    let requested = plan.clients;
    let mut open: Vec<(Client, Events)> = Vec::with_capacity(requested);
    let mut failed = 0u64;
    let mut last_up = start;
    let mut pending = JoinSet::new();
    let mut launched = 0;
    loop {
        // Launch what the pace allows.
        while launched < requested && Instant::now() < deadline {
            match plan.conn_rate {
                Some(rate) => {
                    let due = start + Duration::from_secs_f64(launched as f64 / rate);
                    if due > Instant::now() {
                        break;
                    }
                }
                None if pending.len() >= WINDOW => break,
                None => {}
            }
            let plan = plan.clone();
            let index = launched;
            pending.spawn(async move { dial::connect(&plan, Role::Idle, index).await });
            launched += 1;
        }
        if pending.is_empty() && (launched >= requested || Instant::now() >= deadline) {
            break;
        }
        let next_due = match plan.conn_rate {
            Some(rate) if launched < requested => {
                start + Duration::from_secs_f64(launched as f64 / rate)
            }
            _ => deadline,
        };
        tokio::select! {
            done = pending.join_next(), if !pending.is_empty() => match done {
                Some(Ok(Ok(client))) => {
                    open.push(client);
                    last_up = Instant::now();
                    counters.sent[0].set(open.len() as u64);
                }
                Some(Ok(Err(e))) => {
                    failed += 1;
                    if errors.len() < 5 {
                        errors.push(format!("{e:#}"));
                    }
                }
                Some(Err(e)) => {
                    failed += 1;
                    errors.push(format!("connect task: {e}"));
                }
                None => {}
            },
            () = tokio::time::sleep_until(next_due.min(deadline)) => {
                if Instant::now() >= deadline {
                    // Out of time: what is still connecting is abandoned.
                    failed += pending.len() as u64;
                    pending.abort_all();
                    break;
                }
            }
        }
    }
    let connect_s = (last_up - start).as_secs_f64();
    let connected = open.len() as u64;
    if failed > 0 {
        errors.push(format!(
            "{failed} of {requested} connections failed (for thousands, raise `ulimit -n` on both sides)"
        ));
    }

    tokio::time::sleep(plan.hold).await;
    let after = rss(&mut errors);

    // Close them all, concurrently and within bounds.
    let mut closing = JoinSet::new();
    for (client, events) in open {
        closing.spawn(async move {
            let _ = client.disconnect().await;
            drop(events);
        });
    }
    let _ = tokio::time::timeout(Duration::from_secs(10), async {
        while closing.join_next().await.is_some() {}
    })
    .await;

    let per_connection = match (before, after) {
        (Some(b), Some(a)) if connected > 0 => Some((a as f64 - b as f64) / connected as f64),
        _ => None,
    };
    let report = ConnReport {
        requested: requested as u64,
        connected,
        failed,
        connect_s,
        connect_rate: if connect_s > 0.0 {
            connected as f64 / connect_s
        } else {
            0.0
        },
        broker_rss_before_kib: before,
        broker_rss_after_kib: after,
        rss_per_connection_kib: per_connection,
    };
    (report, errors)
}
