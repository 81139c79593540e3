//! The stamp at the front of every benchmark payload: which run, which publisher, which
//! message, and when it was (meant to be) sent. Subscribers read it back to count losses,
//! duplicates and reordering, and to measure latency against the same clock.
//!
//! Layout, little-endian, [`Stamp::LEN`] bytes: magic `b"MQB1"`, run id (u32), publisher
//! (u32), sequence number (u64), send time (u64 nanoseconds since the run's start
//! `Instant`). The rest of the payload is zeros.

use bytes::{BufMut as _, Bytes, BytesMut};

/// What a payload says about itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stamp {
    /// Random per process: a message from another run (another `mqtt bench`) is not ours.
    pub run: u32,
    /// The publisher's index.
    pub publisher: u32,
    /// 0, 1, 2... per publisher.
    pub seq: u64,
    /// Nanoseconds from the run's start to the send time (the intended one in open loop).
    pub sent_ns: u64,
}

const MAGIC: &[u8; 4] = b"MQB1";

impl Stamp {
    /// Bytes a stamp takes: the smallest payload `-s` accepts.
    pub const LEN: usize = 28;

    /// Reads the stamp at the front of `payload`; `None` if there is none (too short, or
    /// not our magic). The payload comes from the network: nothing here can panic.
    pub fn parse(payload: &[u8]) -> Option<Self> {
        let (magic, rest) = payload.split_first_chunk::<4>()?;
        if magic != MAGIC {
            return None;
        }
        let (run, rest) = rest.split_first_chunk::<4>()?;
        let (publisher, rest) = rest.split_first_chunk::<4>()?;
        let (seq, rest) = rest.split_first_chunk::<8>()?;
        let (sent_ns, _) = rest.split_first_chunk::<8>()?;
        Some(Self {
            run: u32::from_le_bytes(*run),
            publisher: u32::from_le_bytes(*publisher),
            seq: u64::from_le_bytes(*seq),
            sent_ns: u64::from_le_bytes(*sent_ns),
        })
    }

    fn write(&self, out: &mut BytesMut) {
        out.put_slice(MAGIC);
        out.put_u32_le(self.run);
        out.put_u32_le(self.publisher);
        out.put_u64_le(self.seq);
        out.put_u64_le(self.sent_ns);
    }
}

/// Makes payloads of one size, carving them out of a shared arena so that a message costs
/// no allocation of its own (one per [`Payloads::ARENA`] bytes instead).
#[derive(Debug)]
pub struct Payloads {
    size: usize,
    arena: BytesMut,
}

impl Payloads {
    /// Bytes allocated at a time.
    const ARENA: usize = 256 * 1024;

    /// Payloads of `size` bytes, at least [`Stamp::LEN`] (smaller sizes are raised to it).
    pub fn new(size: usize) -> Self {
        Self {
            size: size.max(Stamp::LEN),
            arena: BytesMut::new(),
        }
    }

    /// A payload that starts with `stamp`.
    pub fn make(&mut self, stamp: &Stamp) -> Bytes {
        if self.arena.capacity() - self.arena.len() < self.size {
            // The old arena lives on in the payloads cut from it until they are dropped.
            self.arena = BytesMut::with_capacity(Self::ARENA.max(self.size));
        }
        stamp.write(&mut self.arena);
        self.arena.put_bytes(0, self.size - Stamp::LEN);
        self.arena.split().freeze()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stamp_reads_back() {
        let stamp = Stamp {
            run: 7,
            publisher: 3,
            seq: u64::MAX - 1,
            sent_ns: 123_456_789,
        };
        let mut payloads = Payloads::new(64);
        let a = payloads.make(&stamp);
        let b = payloads.make(&Stamp { seq: 1, ..stamp });
        assert_eq!(a.len(), 64);
        assert_eq!(Stamp::parse(&a), Some(stamp));
        assert_eq!(Stamp::parse(&b).map(|s| s.seq), Some(1));
        assert_eq!(Payloads::new(3).make(&stamp).len(), Stamp::LEN);
    }

    #[test]
    fn foreign_payloads_have_no_stamp() {
        assert_eq!(Stamp::parse(b""), None);
        assert_eq!(Stamp::parse(b"hello"), None);
        assert_eq!(Stamp::parse(&[0; 64]), None);
        let mut short = BytesMut::new();
        Stamp {
            run: 1,
            publisher: 1,
            seq: 1,
            sent_ns: 1,
        }
        .write(&mut short);
        assert!(Stamp::parse(&short[..Stamp::LEN - 1]).is_none());
    }

    #[test]
    fn arenas_are_replaced_when_full() {
        let mut payloads = Payloads::new(100_000);
        let stamp = Stamp {
            run: 1,
            publisher: 0,
            seq: 0,
            sent_ns: 0,
        };
        for seq in 0..10 {
            let p = payloads.make(&Stamp { seq, ..stamp });
            assert_eq!(p.len(), 100_000);
            assert_eq!(Stamp::parse(&p).map(|s| s.seq), Some(seq));
        }
    }
}
