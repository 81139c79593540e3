//! `mqtt bench`: load an MQTT broker with many clients of this process and measure it: rates,
//! end-to-end latency, and whether every message arrived once and in order.
//!
//! ```text
//!  publishers ── stamped PUBLISH ──► broker ──► subscribers ── check stamp, time it
//!   (Publisher)   run, publisher,               (Subscriber)    Received (per publisher)
//!                 seq, send time                                Latency (HDR histogram)
//!        └─ Counters (live, per task) ─► Progress bar, coordinator (runner) ◄─┘
//! ```
//!
//! All clients live in this process and share one start `Instant`, so a stamp's send time
//! and the receive time are on the same clock.
//!
//! # Layout
//!
//! - [`scenario`]: the scenarios and the topology each builds (who publishes where, who
//!   should hear whom).
//! - [`plan`]: a run's checked settings.
//! - [`stamp`]: the stamp at the front of each payload, and the payloads carrying it.
//! - [`verify`]: per-subscriber bookkeeping of what arrived; losses, duplicates, reordering.
//! - [`latency`]: HDR histograms of end-to-end latency and their percentiles.
//! - [`counters`]: the live counts tasks publish for the coordinator and the progress bar.
//! - [`dial`]: connecting a load client.
//! - [`publisher`], [`subscriber`]: the two load tasks; [`window`]: a publisher's window of
//!   unfinished messages.
//! - [`runner`]: the coordinator of the message scenarios; [`conn`]: the `conn` scenario,
//!   with [`rss`] to read the broker's memory.
//! - [`progress`]: the progress bar; [`report`]: the summary table and the JSON.

pub mod conn;
pub mod counters;
pub mod dial;
pub mod latency;
pub mod plan;
pub mod progress;
pub mod publisher;
pub mod report;
pub mod rss;
pub mod runner;
pub mod scenario;
pub mod stamp;
pub mod subscriber;
pub mod verify;
pub mod window;

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use counters::Counters;
use plan::Plan;
use progress::{Progress, Unit};
use report::{Figures, Report};
use scenario::Scenario;

/// Runs `plan` to its end (bounded by its duration and grace period) and judges it.
pub async fn run(plan: Plan) -> anyhow::Result<Report> {
    let plan = Arc::new(plan);
    let figures = match plan.scenario {
        Scenario::Conn => {
            let counters = Arc::new(Counters::new(1, 0));
            let len = plan.clients as u64;
            let progress = Progress::start(plan.progress, Unit::Connections, len, counters.clone());
            let (conn, errors) = conn::run(plan.clone(), counters).await;
            progress.finish();
            Figures {
                elapsed_s: conn.connect_s,
                conn: Some(conn),
                errors,
                ..Figures::default()
            }
        }
        _ => runner::run(plan.clone(), run_id()).await?,
    };
    Ok(Report::new(&plan, figures))
}

/// An id for this run's stamps, different from another process's.
fn run_id() -> u32 {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    nanos ^ std::process::id().rotate_left(16)
}
