//! One ordered deadline queue: the broker's timers, kept in a `BTreeSet` so the next one is a
//! look at the front and firing is in deadline order.
//!
//! Entries are checked when they fire, not cancelled when their reason goes away: whoever
//! pops an entry re-checks the state it refers to (a keep alive that was refreshed, a session
//! that came back) and re-arms it if it is not due yet. That keeps every input O(1) for timers.

use std::collections::BTreeSet;
use std::time::Instant;

/// A deadline queue of `T`s.
#[derive(Debug)]
pub(crate) struct TimerQueue<T: Ord> {
    entries: BTreeSet<(Instant, u64, T)>,
    seq: u64,
}

impl<T: Ord> TimerQueue<T> {
    pub(crate) fn new() -> Self {
        Self {
            entries: BTreeSet::new(),
            seq: 0,
        }
    }

    /// Arms `what` for `at`; the same `what` may be armed several times.
    pub(crate) fn insert(&mut self, at: Instant, what: T) {
        // The sequence number keeps equal deadlines in insertion order.
        self.seq += 1;
        self.entries.insert((at, self.seq, what));
    }

    /// The earliest deadline.
    pub(crate) fn next(&self) -> Option<Instant> {
        self.entries.first().map(|(at, _, _)| *at)
    }

    /// Takes the earliest entry if it is due at `now`.
    pub(crate) fn pop_due(&mut self, now: Instant) -> Option<T> {
        if self.next()? <= now {
            self.entries.pop_first().map(|(_, _, what)| what)
        } else {
            None
        }
    }

    /// Number of armed entries.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    // A base instant for a virtual clock: only offsets from it matter.
    #[allow(clippy::disallowed_methods)]
    fn fires_in_deadline_then_insertion_order() {
        let t0 = Instant::now();
        let mut q = TimerQueue::new();
        q.insert(t0 + Duration::from_secs(2), "b");
        q.insert(t0 + Duration::from_secs(1), "a");
        q.insert(t0 + Duration::from_secs(2), "c");
        assert_eq!(q.next(), Some(t0 + Duration::from_secs(1)));
        assert_eq!(q.pop_due(t0), None);
        assert_eq!(q.pop_due(t0 + Duration::from_secs(5)), Some("a"));
        assert_eq!(q.pop_due(t0 + Duration::from_secs(5)), Some("b"));
        assert_eq!(q.pop_due(t0 + Duration::from_secs(5)), Some("c"));
        assert_eq!(q.len(), 0);
    }
}
