//! The progress bar on stderr: messages sent (or connections made) against the total, and
//! what has been received, redrawn a few times a second from the live counters. Hidden when
//! not asked for (`--quiet`, stdout not a terminal).

use std::sync::Arc;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use tokio::task::JoinHandle;
use tokio::time::Instant;

use super::counters::Counters;

/// A bar being redrawn, or nothing.
#[derive(Debug)]
pub struct Progress {
    shown: Option<(ProgressBar, JoinHandle<()>)>,
}

/// What the bar counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unit {
    /// Messages sent by the publishers.
    Sent,
    /// Messages received by the subscribers (`sub`).
    Received,
    /// Connections made (`conn`, kept in the first `sent` slot).
    Connections,
}

impl Progress {
    /// How often the bar is redrawn.
    const TICK: Duration = Duration::from_millis(200);

    /// Starts redrawing a bar of `len` units if `enabled`.
    pub fn start(enabled: bool, unit: Unit, len: u64, counters: Arc<Counters>) -> Self {
        if !enabled {
            return Self { shown: None };
        }
        let bar = ProgressBar::with_draw_target(Some(len), ProgressDrawTarget::stderr());
        let template = "{elapsed_precise} [{bar:30}] {pos}/{len} {msg}";
        if let Ok(style) = ProgressStyle::with_template(template) {
            bar.set_style(style.progress_chars("=> "));
        }
        let drawn = bar.clone();
        let task = tokio::spawn(async move {
            let start = Instant::now();
            let mut ticks = tokio::time::interval(Self::TICK);
            loop {
                ticks.tick().await;
                let sent = Counters::total(&counters.sent);
                let received = Counters::total(&counters.received);
                let secs = start.elapsed().as_secs_f64().max(1e-3);
                let (pos, msg) = match unit {
                    Unit::Sent => (
                        sent,
                        format!(
                            "sent ({:.0}/s), {received} received ({:.0}/s)",
                            sent as f64 / secs,
                            received as f64 / secs
                        ),
                    ),
                    Unit::Received => (
                        received,
                        format!("received ({:.0}/s)", received as f64 / secs),
                    ),
                    Unit::Connections => (sent, format!("connected ({:.0}/s)", sent as f64 / secs)),
                };
                drawn.set_position(pos);
                drawn.set_message(msg);
            }
        });
        Self {
            shown: Some((bar, task)),
        }
    }

    /// Stops redrawing and clears the bar.
    pub fn finish(self) {
        if let Some((bar, task)) = self.shown {
            task.abort();
            bar.finish_and_clear();
        }
    }
}
