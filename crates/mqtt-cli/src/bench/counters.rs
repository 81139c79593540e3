//! Live counts the load tasks publish and the coordinator and progress bar read: one slot per
//! task, each written by its task alone (a plain store, no read-modify-write) and padded to a
//! cache line so that two tasks on two cores never share one.

use std::sync::atomic::{AtomicU64, Ordering};

/// One counter on a cache line of its own.
#[derive(Debug, Default)]
#[repr(align(64))]
pub struct Slot(AtomicU64);

impl Slot {
    /// Sets the count (only the owning task writes).
    pub fn set(&self, n: u64) {
        self.0.store(n, Ordering::Relaxed);
    }

    /// Reads the count.
    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// The counts of one run.
#[derive(Debug)]
pub struct Counters {
    /// Messages handed to the client, per publisher (or connections made, in `conn`).
    pub sent: Box<[Slot]>,
    /// Messages received, per subscriber.
    pub received: Box<[Slot]>,
    /// Messages of this run received for the first time, per subscriber.
    pub fresh: Box<[Slot]>,
}

impl Counters {
    /// Zeroed counters for `publishers` and `subscribers`.
    pub fn new(publishers: usize, subscribers: usize) -> Self {
        let slots = |n: usize| (0..n).map(|_| Slot::default()).collect();
        Self {
            sent: slots(publishers),
            received: slots(subscribers),
            fresh: slots(subscribers),
        }
    }

    /// The sum of `slots`.
    pub fn total(slots: &[Slot]) -> u64 {
        slots.iter().map(Slot::get).sum()
    }
}
