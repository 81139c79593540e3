//! A publisher's window: how many of its messages may be unfinished at once, and how it
//! learns that they finished, without a reply channel per message.
//!
//! Most messages go out with `try_publish` (no reply). Every [`Window::every`]-th is a
//! *marker*, sent with `publish` and kept: when a marker completes (QoS 0: written; QoS 1:
//! PUBACK; QoS 2: PUBCOMP), the messages before it have too, as acknowledgements come in
//! order. The publisher sends while fewer than [`Sizes::local`] messages are unfinished and
//! otherwise waits for the oldest marker, so the pipe never runs dry (waiting for the last
//! message sent instead would drain it, and a broker that delays small writes, Nagle-style,
//! then stalls for a delayed-ACK timeout at each refill).
//!
//! Why the order holds: the client's request channel and queue are sized above the window
//! ([`Sizes`]), so a command always finds room: a marker's first poll enqueues it, and
//! `try_publish` never finds the channel full. Were it full all the same, `try_publish`
//! would say so and the publisher would wait for the oldest marker and try again; a marker
//! that had to wait for room could then be overtaken, which the subscribers would count as
//! out of order.

use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::task::Poll;

use mqtt_core::client::PublishRequest;
use mqtt_core::ReasonCode;
use mqtt_tokio::client::{Client, Error};

use super::plan::Load;

/// The sizes of one publisher's window and of its client's queues.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sizes {
    /// QoS 1/2 messages on the wire unacknowledged: the client core's `max_inflight`.
    pub wire: u16,
    /// Messages handed to the client and not finished.
    pub local: u64,
    /// A marker every this many messages.
    pub every: u64,
}

impl Sizes {
    /// Room the client's queues keep above `local`, for acknowledgements out of order.
    pub const SLACK: usize = 64;

    /// The sizes for `load`: in closed loop the wire window is `--inflight`, with half as
    /// much again (at least 32) queued behind it so it stays full; in open loop the
    /// schedule sets the pace and the window is as wide as the client allows.
    pub fn for_load(load: Load) -> Self {
        let wire = match load {
            Load::Closed { inflight } => inflight,
            Load::Open { .. } => u16::MAX,
        };
        let local = u64::from(wire) + (u64::from(wire) / 2).max(32);
        Self {
            wire,
            local,
            every: (local / 4).max(1),
        }
    }

    /// The client's request channel and the core's queue: never full while the window holds.
    pub fn queue(&self) -> usize {
        usize::try_from(self.local).unwrap_or(usize::MAX) + Self::SLACK
    }
}

type Marker = Pin<Box<dyn Future<Output = Result<ReasonCode, Error>> + Send>>;

/// The unfinished messages of one publisher.
pub struct Window {
    sizes: Sizes,
    client: Client,
    /// Markers not known to be finished, oldest first, with their sequence numbers.
    markers: VecDeque<(u64, Marker)>,
    /// Every message below this sequence number is finished.
    done: u64,
    /// The first failure code the server answered a marker with.
    pub refused: Option<ReasonCode>,
}

impl Window {
    /// An empty window over `client`.
    pub fn new(client: Client, sizes: Sizes) -> Self {
        Self {
            sizes,
            client,
            markers: VecDeque::new(),
            done: 0,
            refused: None,
        }
    }

    /// Sends message `seq` (the next in order), built by `make`, once the window has room.
    pub async fn send(
        &mut self,
        seq: u64,
        mut make: impl FnMut() -> PublishRequest,
    ) -> Result<(), Error> {
        while seq - self.done >= self.sizes.local {
            self.wait_oldest().await?;
        }
        if seq.is_multiple_of(self.sizes.every) {
            let client = self.client.clone();
            let request = make();
            let mut marker: Marker = Box::pin(async move { client.publish(request).await });
            // Unconstrained: the task's cooperative budget must not make this first poll
            // return before the command is queued.
            match tokio::task::unconstrained(poll_once(&mut marker)).await {
                Some(outcome) => self.finished(seq, outcome)?,
                None => self.markers.push_back((seq, marker)),
            }
            return Ok(());
        }
        loop {
            match self.client.try_publish(make()) {
                Ok(()) => return Ok(()),
                Err(Error::QueueFull) if !self.markers.is_empty() => self.wait_oldest().await?,
                // Nothing to wait for: yield, and let the driver make room.
                Err(Error::QueueFull) => tokio::task::yield_now().await,
                Err(e) => return Err(e),
            }
        }
    }

    /// Waits for every marker sent (the messages after the last marker are not waited for:
    /// the graceful disconnect does that).
    pub async fn drain(&mut self) -> Result<(), Error> {
        while !self.markers.is_empty() {
            self.wait_oldest().await?;
        }
        Ok(())
    }

    async fn wait_oldest(&mut self) -> Result<(), Error> {
        if let Some((seq, marker)) = self.markers.pop_front() {
            let outcome = marker.await;
            self.finished(seq, outcome)?;
        }
        Ok(())
    }

    fn finished(&mut self, seq: u64, outcome: Result<ReasonCode, Error>) -> Result<(), Error> {
        let code = outcome?;
        if code.is_error() {
            self.refused.get_or_insert(code);
        }
        self.done = self.done.max(seq + 1);
        Ok(())
    }
}

/// Polls `f` once: its output if it is ready.
async fn poll_once<F: Future + Unpin>(f: &mut F) -> Option<F::Output> {
    std::future::poll_fn(|cx| match Pin::new(&mut *f).poll(cx) {
        Poll::Ready(v) => Poll::Ready(Some(v)),
        Poll::Pending => Poll::Ready(None),
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_keep_the_wire_window_full_and_the_queues_above_it() {
        let closed = Sizes::for_load(Load::Closed { inflight: 100 });
        assert_eq!((closed.wire, closed.local, closed.every), (100, 150, 37));
        assert_eq!(closed.queue(), 214);
        let tiny = Sizes::for_load(Load::Closed { inflight: 1 });
        assert_eq!((tiny.wire, tiny.local, tiny.every), (1, 33, 8));
        let open = Sizes::for_load(Load::Open { rate: 10.0 });
        assert_eq!(open.wire, u16::MAX);
        assert!(open.queue() as u64 > open.local);
    }
}
