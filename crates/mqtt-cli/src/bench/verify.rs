//! What subscribers check: every stamped message is counted once per publisher, and anything
//! seen twice, seen after a later one, or never seen is counted too.
//!
//! Each subscriber keeps a [`Received`]; at the end the subscribers that share the same
//! stream of messages (one subscriber, or every member of a `$share` group) are merged into a
//! [`Verdict`] per group with [`Verdict::of_group`].

use super::stamp::Stamp;

/// A sequence number this far past what a publisher could send is not believed: it would
/// make the bitmap grow without bound.
const MAX_SEQ: u64 = 1 << 32;

/// What one subscriber saw of one publisher.
#[derive(Debug, Clone, Default)]
pub struct Seen {
    /// One bit per sequence number.
    bits: Vec<u64>,
    /// Distinct messages.
    distinct: u64,
    duplicates: u64,
    out_of_order: u64,
    /// The highest sequence number seen plus one (0: none yet).
    next: u64,
}

impl Seen {
    /// Marks `seq` seen; `true` if it is new.
    fn mark(&mut self, seq: u64) -> bool {
        let word = (seq / 64) as usize;
        let bit = 1u64 << (seq % 64);
        if word >= self.bits.len() {
            self.bits.resize((word + 1).next_power_of_two(), 0);
        }
        let fresh = match self.bits.get_mut(word) {
            Some(w) if *w & bit == 0 => {
                *w |= bit;
                true
            }
            _ => false,
        };
        if !fresh {
            self.duplicates += 1;
            return false;
        }
        self.distinct += 1;
        if seq < self.next {
            self.out_of_order += 1;
        } else {
            self.next = seq + 1;
        }
        true
    }
}

/// What one subscriber received.
#[derive(Debug, Clone, Default)]
pub struct Received {
    run: u32,
    /// By publisher index.
    publishers: Vec<Seen>,
    /// Messages without a stamp of this run (another run's, or not `mqtt bench`'s).
    pub foreign: u64,
    /// Every message, stamped or not.
    pub total: u64,
}

impl Received {
    /// A subscriber of run `run` expecting `publishers` publishers (more may show up).
    pub fn new(run: u32, publishers: usize) -> Self {
        Self {
            run,
            publishers: vec![Seen::default(); publishers],
            foreign: 0,
            total: 0,
        }
    }

    /// Counts one message; its stamp if it is one of this run's and new (not a duplicate).
    pub fn record(&mut self, payload: &[u8]) -> Option<Stamp> {
        self.total += 1;
        let stamp = Stamp::parse(payload).filter(|s| s.run == self.run && s.seq < MAX_SEQ);
        let Some(stamp) = stamp else {
            self.foreign += 1;
            return None;
        };
        let index = stamp.publisher as usize;
        if index >= self.publishers.len() {
            // Publisher indices are small and dense; an absurd one is counted as foreign.
            if index >= 1 << 20 {
                self.foreign += 1;
                return None;
            }
            self.publishers.resize(index + 1, Seen::default());
        }
        let seen = self.publishers.get_mut(index)?;
        seen.mark(stamp.seq).then_some(stamp)
    }
}

/// The counts of one group of subscribers (or of the whole run, summed).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Verdict {
    /// Messages the group should have had.
    pub expected: u64,
    /// Distinct stamped messages it had.
    pub distinct: u64,
    /// Expected but never received.
    pub lost: u64,
    /// Received more than once (within one subscriber, or by two members of a group).
    pub duplicates: u64,
    /// Received after a later message of the same publisher, by the same subscriber.
    pub out_of_order: u64,
    /// Messages without one of this run's stamps.
    pub foreign: u64,
}

impl Verdict {
    /// Merges the subscribers of one group, which should have had, from publisher `p`,
    /// `sent[p]` messages for each `p` in `from` (sequence numbers `0..sent[p]`).
    pub fn of_group(members: &[Received], from: &[usize], sent: &[u64]) -> Self {
        let mut v = Self::default();
        for m in members {
            v.foreign += m.foreign;
            for seen in &m.publishers {
                v.duplicates += seen.duplicates;
                v.out_of_order += seen.out_of_order;
            }
        }
        let publishers = members
            .iter()
            .map(|m| m.publishers.len())
            .max()
            .unwrap_or(0);
        for p in 0..publishers {
            let expected = if from.contains(&p) {
                sent.get(p).copied().unwrap_or(0)
            } else {
                0
            };
            v.expected += expected;
            let seen: Vec<&Seen> = members.iter().filter_map(|m| m.publishers.get(p)).collect();
            let words = seen.iter().map(|s| s.bits.len()).max().unwrap_or(0);
            let mut distinct = 0;
            let mut within = 0;
            for w in 0..words {
                let mut union = 0u64;
                for s in &seen {
                    let bits = s.bits.get(w).copied().unwrap_or(0);
                    // Bits two members both have: the same message delivered twice.
                    v.duplicates += u64::from((union & bits).count_ones());
                    union |= bits;
                }
                distinct += u64::from(union.count_ones());
                let first = (w as u64) * 64;
                within += u64::from((union & window_mask(first, expected)).count_ones());
            }
            v.distinct += distinct;
            v.lost += expected - within.min(expected);
        }
        // Expected publishers nobody heard from at all.
        for &p in from.iter().filter(|&&p| p >= publishers) {
            let expected = sent.get(p).copied().unwrap_or(0);
            v.expected += expected;
            v.lost += expected;
        }
        v
    }

    /// Adds up the verdicts of several groups.
    pub fn add(&mut self, other: &Self) {
        self.expected += other.expected;
        self.distinct += other.distinct;
        self.lost += other.lost;
        self.duplicates += other.duplicates;
        self.out_of_order += other.out_of_order;
        self.foreign += other.foreign;
    }
}

/// The bits of the word starting at sequence number `first` that are below `end`.
fn window_mask(first: u64, end: u64) -> u64 {
    match end.saturating_sub(first) {
        0 => 0,
        n if n >= 64 => u64::MAX,
        n => (1u64 << n) - 1,
    }
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;

    use super::super::stamp::Payloads;
    use super::*;

    fn payload(run: u32, publisher: u32, seq: u64) -> Bytes {
        Payloads::new(32).make(&Stamp {
            run,
            publisher,
            seq,
            sent_ns: 0,
        })
    }

    #[test]
    fn counts_duplicates_reordering_and_losses() {
        let mut r = Received::new(9, 2);
        for seq in [0, 1, 3, 2, 2, 5] {
            r.record(&payload(9, 0, seq));
        }
        r.record(&payload(9, 1, 0));
        r.record(&payload(8, 0, 4)); // another run's
        r.record(b"not a stamp");
        let v = Verdict::of_group(&[r], &[0, 1], &[6, 2]);
        assert_eq!(
            v,
            Verdict {
                expected: 8,
                distinct: 6,
                lost: 2, // publisher 0's 4, publisher 1's 1
                duplicates: 1,
                out_of_order: 1,
                foreign: 2,
            }
        );
    }

    #[test]
    fn a_group_shares_its_messages() {
        let mut a = Received::new(1, 1);
        let mut b = Received::new(1, 1);
        for seq in 0..100 {
            let member = if seq % 3 == 0 { &mut a } else { &mut b };
            member.record(&payload(1, 0, seq));
        }
        b.record(&payload(1, 0, 0)); // also went to a
        let v = Verdict::of_group(&[a, b], &[0], &[100]);
        assert_eq!((v.expected, v.distinct, v.lost), (100, 100, 0));
        assert_eq!(v.duplicates, 1);
        assert_eq!(v.out_of_order, 1); // b saw 0 after 98
    }

    #[test]
    fn silent_publishers_are_lost_and_strangers_are_not_counted() {
        let mut r = Received::new(1, 0);
        r.record(&payload(1, 5, 0)); // a publisher this group does not expect
        r.record(&payload(1, u32::MAX, 0));
        let v = Verdict::of_group(&[r], &[7], &[0, 0, 0, 0, 0, 0, 0, 10]);
        assert_eq!((v.expected, v.lost, v.distinct, v.foreign), (10, 10, 1, 1));
    }
}
