//! One publisher: stamps and sends its messages, closed loop (as fast as its client takes
//! them) or open loop (on a fixed schedule), then disconnects once they are through.
//!
//! How messages are sent without a reply each, in order, within a window: [`super::window`].

use std::sync::Arc;
use std::time::Duration;

use mqtt_core::client::PublishRequest;
use mqtt_core::topic::TopicName;
use mqtt_core::QoS;
use mqtt_tokio::client::{Client, Error};
use tokio::runtime::Handle;
use tokio::task::JoinHandle;
use tokio::time::Instant;

use super::counters::Counters;
use super::plan::Load;
use super::stamp::{Payloads, Stamp};
use super::window::{Sizes, Window};

/// What a publisher needs to run.
#[derive(Debug)]
pub struct Publisher {
    /// Its index: the stamp's publisher field.
    pub index: usize,
    /// Publishers in the run (the open-loop schedule interleaves them).
    pub of: usize,
    /// Its connection.
    pub client: Client,
    /// Where it publishes.
    pub topic: TopicName,
    /// At which QoS.
    pub qos: QoS,
    /// Payload size.
    pub size: usize,
    /// How many messages at most.
    pub count: u64,
    /// Its pace.
    pub load: Load,
    /// The run's id, for the stamps.
    pub run: u32,
    /// The run's start: stamps count from it.
    pub t0: Instant,
    /// No message is sent (or scheduled) after this.
    pub deadline: Instant,
    /// Where it reports progress.
    pub counters: Arc<Counters>,
}

/// What a publisher did.
#[derive(Debug, Clone, Default)]
pub struct Sent {
    /// Messages handed to the client.
    pub sent: u64,
    /// When the last one was handed over, in nanoseconds from the start.
    pub last_ns: u64,
    /// What went wrong, if anything.
    pub error: Option<String>,
}

impl Publisher {
    /// Starts [`Publisher::run`]: as a task in closed loop, on a thread of its own in open
    /// loop (its pacing sleeps block).
    pub fn spawn(self) -> JoinHandle<Sent> {
        match self.load {
            Load::Closed { .. } => tokio::spawn(self.run()),
            Load::Open { .. } => {
                let runtime = Handle::current();
                tokio::task::spawn_blocking(move || runtime.block_on(self.run()))
            }
        }
    }

    /// Sends everything, then disconnects (waiting for the messages in flight).
    pub async fn run(self) -> Sent {
        let mut out = Sent::default();
        if let Err(e) = self.send_all(&mut out).await {
            out.error = Some(format!("publisher {}: {e}", self.index));
        }
        if let Err(e) = self.client.disconnect().await {
            out.error
                .get_or_insert_with(|| format!("publisher {}: disconnect: {e}", self.index));
        }
        out
    }

    async fn send_all(&self, out: &mut Sent) -> Result<(), Error> {
        let mut payloads = Payloads::new(self.size);
        let mut window = Window::new(self.client.clone(), Sizes::for_load(self.load));
        let slot = &self.counters.sent[self.index];
        // Open loop: message `seq` of publisher `i` is due at (i + seq * of) / rate seconds,
        // spreading all publishers evenly over time.
        let schedule = match self.load {
            Load::Open { rate } => Some(1e9 / rate),
            Load::Closed { .. } => None,
        };
        for seq in 0..self.count {
            let now = Instant::now();
            let due = match schedule {
                Some(ns_per_msg) => {
                    let at = (self.index as f64 + seq as f64 * self.of as f64) * ns_per_msg;
                    let due = self.t0 + Duration::from_nanos(at as u64);
                    if due > self.deadline {
                        break;
                    }
                    if due > now {
                        // A thread sleep, precise to a tenth of a millisecond, where tokio's
                        // timer wakes up to a millisecond late, which would count as
                        // latency. Open-loop publishers have a thread each: see `spawn`.
                        std::thread::sleep(due - now);
                    }
                    due
                }
                None if now >= self.deadline => break,
                None => now,
            };
            let stamp = Stamp {
                run: self.run,
                publisher: self.index as u32,
                seq,
                sent_ns: nanos(due - self.t0),
            };
            window
                .send(seq, || {
                    PublishRequest::new(self.topic.clone(), payloads.make(&stamp))
                        .with_qos(self.qos)
                })
                .await?;
            out.sent = seq + 1;
            out.last_ns = stamp.sent_ns;
            slot.set(out.sent);
        }
        window.drain().await?;
        if let Some(code) = window.refused {
            out.error = Some(format!(
                "publisher {}: the server refused messages: {code}",
                self.index
            ));
        }
        Ok(())
    }
}

/// A duration in nanoseconds (saturating: a run is not 584 years long).
pub fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}
