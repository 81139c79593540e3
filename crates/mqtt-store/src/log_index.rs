//! What the delivery log holds, as a replay of its entries in order leaves it: which
//! deliveries are resident (their latest put is in a live entry) and how many items of each
//! entry are still needed. The writer keeps one in memory and follows every commit; loading
//! replays the file into one (see `delivery_log` for the rules).

use std::collections::{BTreeMap, HashMap, VecDeque};

use bytes::Bytes;
use bytestring::ByteString;
use redb::ReadableTable;

use crate::format::{Clock, Inflight, LogItem, Malformed, Reader};

/// A resident delivery: the entry of its latest put (and what the index keeps of it, `R`),
/// and the entry and state of its latest flow item after that put.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Logged<R> {
    pub(crate) put: u64,
    pub(crate) record: R,
    pub(crate) flow: Option<(u64, Inflight)>,
}

/// The log's entries from `first` on, and its resident deliveries.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Index<R> {
    /// The number of the oldest entry.
    pub(crate) first: u64,
    /// Per entry from `first` on: how many of its items are still the latest put or flow of
    /// a resident delivery.
    pub(crate) live: VecDeque<u32>,
    /// Client -> sequence number -> delivery. Ordered, not hashed: the numbers of one session
    /// are a window sliding up, whose constant removals would leave a hash table full of
    /// tombstones to probe through.
    pub(crate) resident: HashMap<ByteString, BTreeMap<u64, Logged<R>>>,
}

impl<R> Default for Index<R> {
    fn default() -> Self {
        Self {
            first: 0,
            live: VecDeque::new(),
            resident: HashMap::new(),
        }
    }
}

impl<R> Index<R> {
    /// The entry after the last one.
    pub(crate) fn next(&self) -> u64 {
        self.first + self.live.len() as u64
    }

    fn count(&mut self, entry: u64, up: bool) {
        let i = entry.wrapping_sub(self.first);
        if let Some(n) = usize::try_from(i).ok().and_then(|i| self.live.get_mut(i)) {
            *n = if up { *n + 1 } else { n.saturating_sub(1) };
        }
    }

    /// The items of `d` are no longer needed.
    pub(crate) fn release(&mut self, d: &Logged<R>) {
        self.count(d.put, false);
        if let Some((flow, _)) = d.flow {
            self.count(flow, false);
        }
    }

    /// A put in `entry`.
    pub(crate) fn put(&mut self, entry: u64, client: ByteString, seq: u64, record: R) {
        self.count(entry, true);
        let new = Logged {
            put: entry,
            record,
            flow: None,
        };
        let old = self.resident.entry(client).or_default().insert(seq, new);
        if let Some(old) = old {
            self.release(&old);
        }
    }

    /// A flow item in `entry`; false (and nothing changes) if the delivery is not resident.
    pub(crate) fn flow(&mut self, entry: u64, client: &str, seq: u64, inflight: Inflight) -> bool {
        let logged = self.resident.get_mut(client).and_then(|m| m.get_mut(&seq));
        let Some(logged) = logged else {
            return false;
        };
        let old = logged.flow.replace((entry, inflight));
        if let Some((old, _)) = old {
            self.count(old, false);
        }
        self.count(entry, true);
        true
    }

    /// Takes a delivery out of the index (deleted, or moved into the table); its items are
    /// released.
    pub(crate) fn remove(&mut self, client: &str, seq: u64) -> Option<Logged<R>> {
        let m = self.resident.get_mut(client)?;
        let old = m.remove(&seq)?;
        if m.is_empty() {
            self.resident.remove(client);
        }
        self.release(&old);
        Some(old)
    }

    /// Takes every delivery of `client` out; false if it had none.
    pub(crate) fn remove_session(&mut self, client: &str) -> bool {
        let Some(gone) = self.resident.remove(client) else {
            return false;
        };
        for d in gone.values() {
            self.release(d);
        }
        true
    }

    /// Applies one item of `entry`.
    fn apply(&mut self, entry: u64, item: LogItem, record: impl FnOnce(Bytes) -> R) {
        match item {
            LogItem::Put {
                client,
                seq,
                record: bytes,
            } => self.put(entry, client, seq, record(bytes)),
            LogItem::Flow {
                client,
                seq,
                inflight,
            } => {
                // A flow of a delivery moved into the table: the table holds it.
                self.flow(entry, &client, seq, inflight);
            }
            LogItem::Delete { client, seq } => {
                self.remove(&client, seq);
            }
            LogItem::DeleteSession { client } => {
                self.remove_session(&client);
            }
        }
    }
}

/// Where a malformed entry is: its number and why.
pub(crate) type BadEntry = (u64, Malformed);

/// The index a replay leaves, and the size of each entry; or the first malformed entry.
pub(crate) type Replayed<R> = Result<(Index<R>, VecDeque<usize>), BadEntry>;

/// Replays every entry of `log` in order; `record` turns a put's record into what the index
/// keeps of it. Also gives each entry's size.
pub(crate) fn replay<R>(
    log: &impl ReadableTable<u64, &'static [u8]>,
    clock: Clock,
    mut record: impl FnMut(Bytes) -> R,
) -> Result<Replayed<R>, redb::Error> {
    let mut index = Index::default();
    let mut sizes = VecDeque::new();
    for row in log.iter()? {
        let (k, v) = row?;
        let entry = k.value();
        if index.live.is_empty() {
            index.first = entry;
        }
        // Entries are deleted from the front only, so they are consecutive; a gap (never
        // written so) still keeps the numbering right.
        while index.next() <= entry {
            index.live.push_back(0);
            sizes.push_back(0);
        }
        if let Some(size) = sizes.back_mut() {
            *size = v.value().len();
        }
        let mut reader = match Reader::new(Bytes::copy_from_slice(v.value()), clock) {
            Ok(r) => r,
            Err(m) => return Ok(Err((entry, m))),
        };
        loop {
            match reader.log_item() {
                Ok(Some(item)) => index.apply(entry, item, &mut record),
                Ok(None) => break,
                Err(m) => return Ok(Err((entry, m))),
            }
        }
    }
    Ok(Ok((index, sizes)))
}
