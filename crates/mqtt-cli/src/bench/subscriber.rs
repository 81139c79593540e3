//! One subscriber: reads its events until the connection ends, checking each message's stamp
//! and timing it against the run's clock.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use mqtt_tokio::client::{Event, Events};
use tokio::time::Instant;

use super::counters::Counters;
use super::latency::Latency;
use super::publisher::nanos;
use super::verify::Received;

/// What a subscriber needs to run.
#[derive(Debug)]
pub struct Subscriber {
    /// Its index, among all subscribers.
    pub index: usize,
    /// Its events; the coordinator holds the client and disconnects it to end the run.
    pub events: Events,
    /// What it has received so far.
    pub received: Received,
    /// The run's start: stamps count from it.
    pub t0: Instant,
    /// Set before the coordinator disconnects the subscribers: the end is no error then.
    pub stopping: Arc<AtomicBool>,
    /// Where it reports progress.
    pub counters: Arc<Counters>,
}

/// What a subscriber saw.
#[derive(Debug, Clone)]
pub struct Heard {
    /// The counts by publisher.
    pub received: Received,
    /// Latency of each fresh message of this run.
    pub latency: Latency,
    /// When the last message came, in nanoseconds from the start (0: none came).
    pub last_ns: u64,
    /// What went wrong, if anything.
    pub error: Option<String>,
}

impl Subscriber {
    /// Runs until the connection is over.
    pub async fn run(mut self) -> Heard {
        let mut latency = Latency::new();
        let mut last_ns = 0;
        let mut fresh = 0;
        let mut error = None;
        let total = &self.counters.received[self.index];
        let fresh_slot = &self.counters.fresh[self.index];
        while let Some(event) = self.events.recv().await {
            match event {
                Event::Message { publish, .. } => {
                    let now = nanos(self.t0.elapsed());
                    if let Some(stamp) = self.received.record(&publish.payload) {
                        latency.record_ns(now.saturating_sub(stamp.sent_ns));
                        fresh += 1;
                        fresh_slot.set(fresh);
                    }
                    total.set(self.received.total);
                    last_ns = now;
                }
                Event::Disconnected { reason, .. } if !self.stopping.load(Ordering::Relaxed) => {
                    error = Some(format!(
                        "subscriber {}: connection lost: {reason}",
                        self.index
                    ));
                }
                _ => {}
            }
        }
        Heard {
            received: self.received,
            latency,
            last_ns,
            error,
        }
    }
}
