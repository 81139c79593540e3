//! The delivery log: how the deliveries of persistent sessions are written.
//!
//! Most deliveries live for milliseconds: queued, sent, acknowledged. As one row each in the
//! `deliveries` B-tree, every one cost an insert and a delete, and a commit of a few hundred
//! dirtied tens of pages. Instead each commit appends ONE row to the `delivery_log` table
//! (an entry): every delivery operation of the commit, as items: put (the whole delivery),
//! flow (it went out with a packet id, or its PUBREL did: a few bytes), delete, delete
//! session.
//! An entry is deleted as soon as nothing in it is needed, which under steady traffic is a
//! commit or two later. Entries go from the front only, so one delivery that stays (a queue
//! building up, a subscriber offline) keeps every later entry: when the log has grown past
//! its limit in bytes (64 MiB), the deliveries still live in its oldest entry move into the
//! `deliveries` table, where they wait as before, and the entry goes.
//!
//! The invariants that make loading equal to
//! [`StoredState::apply`](mqtt_core::broker::store::StoredState::apply):
//! - A delivery is in the log (resident: its latest put is in a live entry, with its latest
//!   flow item after it, if any) or in the table,
//!   never both. `table_max` bounds, per client, the sequence numbers the table may hold: a
//!   put above it is new and goes to the log; one at or below it that is not resident goes to
//!   the table, as does a delete.
//! - Entries are deleted from the front only. A delete or flow item in entry M refers to a
//!   put in an entry at or before M; once every entry before M is gone it refers to nothing.
//!   So when loading, delete, delete-session and flow items apply to the puts of the log
//!   only; the table already holds its own truth (a delivery moved into it took its flow
//!   along).
//! - The index lives in memory and follows every commit; after a failed commit (the file is
//!   opened again) it is read again from the file.

use std::collections::{HashMap, VecDeque};

use bytes::Bytes;
use bytestring::ByteString;
use mqtt_core::broker::store::StoredDelivery;
use redb::{ReadableTable, Table, TableDefinition, WriteTransaction};

use crate::db::key;
use crate::format::{self, Clock, Inflight, LogItem, Malformed, Reader, Writer};
use crate::log_index::{self, Index};

/// Entry number -> the delivery operations of one commit.
pub(crate) const DELIVERY_LOG: TableDefinition<u64, &[u8]> = TableDefinition::new("delivery_log");

/// (client id, sequence number) -> delivery record.
pub(crate) const DELIVERIES: TableDefinition<(&[u8], u64), &[u8]> =
    TableDefinition::new("deliveries");

/// How many bytes of entries the log holds before its oldest one's live deliveries move into
/// the table: a delivery that is acknowledged before this much more traffic is logged never
/// touches the table. It bounds the file's growth and the time a restart takes to read the
/// log back (tens of milliseconds per MiB).
pub(crate) const LOG_LIMIT: usize = 64 << 20;

type Deliveries<'t> = Table<'t, (&'static [u8], u64), &'static [u8]>;
type Log<'t> = Table<'t, u64, &'static [u8]>;

/// The writer's index of the log, and the entry of the commit being written.
pub(crate) struct DeliveryLog {
    /// False until read from the file, and after a failed commit.
    built: bool,
    /// The entries, the last being the one written now.
    index: Index<()>,
    /// Per entry but the one being written: its size in bytes.
    sizes: VecDeque<usize>,
    /// The sum of `sizes`.
    bytes: usize,
    /// Per client, the highest sequence number the `deliveries` table may hold.
    table_max: HashMap<ByteString, u64>,
    limit: usize,
    clock: Clock,
    /// The entry being written.
    entry: Writer,
    /// A record for the table.
    record: Vec<u8>,
}

impl std::fmt::Debug for DeliveryLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DeliveryLog")
            .field("first", &self.index.first)
            .field("entries", &self.sizes.len())
            .field("bytes", &self.bytes)
            .field("limit", &self.limit)
            .finish_non_exhaustive()
    }
}

impl DeliveryLog {
    /// The index as loading the file found it: the log's entries (`index`, `sizes`) and the
    /// highest sequence number of each client in the table.
    pub(crate) fn loaded(
        clock: Clock,
        index: Index<()>,
        sizes: VecDeque<usize>,
        table_max: HashMap<ByteString, u64>,
    ) -> Self {
        Self {
            built: true,
            index,
            bytes: sizes.iter().sum(),
            sizes,
            table_max,
            limit: LOG_LIMIT,
            clock,
            entry: Writer::new(clock),
            record: Vec::new(),
        }
    }

    /// Sets the limit in bytes (tests set it low to move deliveries all the time).
    pub(crate) fn set_limit(&mut self, bytes: usize) {
        self.limit = bytes.max(1);
    }

    /// The file was opened again after a failed commit: what the index says may not be on
    /// disk.
    pub(crate) fn forget(&mut self) {
        self.built = false;
    }

    /// Starts the entry of a commit.
    pub(crate) fn begin(&mut self, txn: &WriteTransaction) -> Result<(), redb::Error> {
        if !self.built {
            self.rebuild(txn)?;
        }
        self.entry.clear();
        self.index.live.push_back(0);
        Ok(())
    }

    fn current(&self) -> u64 {
        self.index.next() - 1
    }

    /// Whether the table may hold `(client, seq)`.
    fn in_table(&self, client: &str, seq: u64) -> bool {
        self.table_max.get(client).is_some_and(|&max| seq <= max)
    }

    fn resident(&self, client: &str, seq: u64) -> bool {
        self.index
            .resident
            .get(client)
            .is_some_and(|m| m.contains_key(&seq))
    }

    /// `(client, seq)` is now `d` (its session is stored).
    pub(crate) fn put(
        &mut self,
        deliveries: &mut Deliveries<'_>,
        client: &ByteString,
        seq: u64,
        d: &StoredDelivery,
    ) -> Result<(), redb::Error> {
        // `in_table` first: it is false for almost every put, and spares the second lookup.
        if self.in_table(client, seq) && !self.resident(client, seq) {
            format::encode_delivery_into(&mut self.record, d, self.clock);
            deliveries.insert((key(client), seq), self.record.as_slice())?;
            return Ok(());
        }
        self.entry.log_put(client, seq, d);
        let current = self.current();
        self.index.put(current, client.clone(), seq, ());
        Ok(())
    }

    /// `(client, seq)`, if stored, is now in flight as `inflight` says.
    pub(crate) fn flow(
        &mut self,
        deliveries: &mut Deliveries<'_>,
        client: &ByteString,
        seq: u64,
        inflight: Inflight,
    ) -> Result<(), redb::Error> {
        let current = self.current();
        if self.index.flow(current, client, seq, inflight) {
            self.entry.log_flow(client, seq, inflight);
        } else if self.in_table(client, seq) {
            let row = deliveries.get((key(client), seq))?;
            let Some(row) = row.map(|v| Bytes::copy_from_slice(v.value())) else {
                return Ok(());
            };
            let what = || format!("delivery ({client:?}, {seq})");
            let record = self.with_flow(row, inflight, what)?;
            deliveries.insert((key(client), seq), record)?;
        }
        Ok(())
    }

    /// `(client, seq)` was deleted.
    pub(crate) fn delete(
        &mut self,
        deliveries: &mut Deliveries<'_>,
        client: &ByteString,
        seq: u64,
    ) -> Result<(), redb::Error> {
        if self.index.remove(client, seq).is_some() {
            self.entry.log_delete(client, seq);
        } else if self.in_table(client, seq) {
            deliveries.remove((key(client), seq))?;
        }
        Ok(())
    }

    /// The session of `client` was deleted (the caller deletes its rows of the table).
    pub(crate) fn delete_session(&mut self, client: &ByteString) {
        self.table_max.remove(&**client);
        if self.index.remove_session(client) {
            self.entry.log_delete_session(client);
        }
    }

    /// Writes the entry of this commit, deletes the entries nothing needs any more, and moves
    /// the live deliveries of the oldest into the table while the log is over its limit.
    pub(crate) fn finish(
        &mut self,
        log: &mut Log<'_>,
        deliveries: &mut Deliveries<'_>,
    ) -> Result<(), redb::Error> {
        // The dead prefix before this commit's entry.
        self.remove_dead_front(log)?;
        let alone_and_dead = self.sizes.is_empty() && self.index.live.front() == Some(&0);
        if self.entry.is_empty() || alone_and_dead {
            // Nothing, or deletes of puts whose entries are all gone: nothing to write.
            self.index.live.pop_back();
        } else {
            log.insert(self.current(), self.entry.as_slice())?;
            self.sizes.push_back(self.entry.as_slice().len());
            self.bytes += self.entry.as_slice().len();
        }
        // The entry just written stays: it is what the next commits' deletes refer to.
        while self.bytes > self.limit && self.sizes.len() > 1 {
            self.move_front(log, deliveries)?;
            self.remove_dead_front(log)?;
        }
        Ok(())
    }

    /// Deletes the written entries at the front that nothing needs.
    fn remove_dead_front(&mut self, log: &mut Log<'_>) -> Result<(), redb::Error> {
        while !self.sizes.is_empty() && self.index.live.front() == Some(&0) {
            log.remove(self.index.first)?;
            self.index.live.pop_front();
            self.bytes -= self.sizes.pop_front().unwrap_or(0);
            self.index.first += 1;
        }
        Ok(())
    }

    /// Moves the live deliveries of the oldest entry into the table, with their latest flow.
    fn move_front(
        &mut self,
        log: &mut Log<'_>,
        deliveries: &mut Deliveries<'_>,
    ) -> Result<(), redb::Error> {
        let first = self.index.first;
        let bytes = log.get(first)?.map(|v| Bytes::copy_from_slice(v.value()));
        // The last put of a delivery in the entry is its latest.
        let mut latest: HashMap<(ByteString, u64), Bytes> = HashMap::new();
        if let Some(bytes) = bytes {
            let mut reader = Reader::new(bytes, self.clock).map_err(|m| corrupted(first, &m))?;
            while let Some(item) = reader.log_item().map_err(|m| corrupted(first, &m))? {
                if let LogItem::Put {
                    client,
                    seq,
                    record,
                } = item
                {
                    latest.insert((client, seq), record);
                }
            }
        }
        for ((client, seq), record) in latest {
            let resident = self.index.resident.get(&client).and_then(|m| m.get(&seq));
            if resident.is_none_or(|d| d.put != first) {
                continue;
            }
            let Some(logged) = self.index.remove(&client, seq) else {
                continue;
            };
            match logged.flow {
                None => deliveries.insert((key(&client), seq), &*record)?,
                Some((_, inflight)) => {
                    let what = || format!("delivery log entry {first}");
                    let record = self.with_flow(record, inflight, what)?;
                    deliveries.insert((key(&client), seq), record)?
                }
            };
            raise(&mut self.table_max, client, seq);
        }
        // Every live put of the entry is in the table now, and its flows were theirs.
        if let Some(n) = self.index.live.front_mut() {
            *n = 0;
        }
        Ok(())
    }

    /// `record` (a whole delivery record) with its flow set to `inflight`, in `self.record`;
    /// `what` names it in the error if it cannot be decoded.
    fn with_flow(
        &mut self,
        record: Bytes,
        inflight: Inflight,
        what: impl FnOnce() -> String,
    ) -> Result<&[u8], redb::Error> {
        let mut d = format::decode_delivery(record, self.clock)
            .map_err(|m| redb::Error::Corrupted(format!("{}: {}", what(), m.0)))?;
        d.inflight = inflight;
        format::encode_delivery_into(&mut self.record, &d, self.clock);
        Ok(&self.record)
    }

    /// Reads the index from the file: the log's entries, and the highest sequence number of
    /// each client in the table.
    fn rebuild(&mut self, txn: &WriteTransaction) -> Result<(), redb::Error> {
        let mut table_max = HashMap::new();
        let deliveries = txn.open_table(DELIVERIES)?;
        for row in deliveries.iter()? {
            let (k, _) = row?;
            let (id, seq) = k.value();
            let id = ByteString::try_from(id)
                .map_err(|_| redb::Error::Corrupted("a delivery key is not UTF-8".into()))?;
            raise(&mut table_max, id, seq);
        }
        let log = txn.open_table(DELIVERY_LOG)?;
        let (index, sizes) =
            log_index::replay(&log, self.clock, |_| ())?.map_err(|(e, m)| corrupted(e, &m))?;
        let limit = self.limit;
        *self = Self::loaded(self.clock, index, sizes, table_max);
        self.limit = limit;
        Ok(())
    }
}

/// Raises `client`'s entry of `table_max` to `seq`.
pub(crate) fn raise(table_max: &mut HashMap<ByteString, u64>, client: ByteString, seq: u64) {
    let max = table_max.entry(client).or_insert(seq);
    *max = (*max).max(seq);
}

fn corrupted(entry: u64, m: &Malformed) -> redb::Error {
    redb::Error::Corrupted(format!("delivery log entry {entry}: {}", m.0))
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant, UNIX_EPOCH};

    use mqtt_core::broker::store::{StoreOp, StoreTicket, StoredSession};
    use mqtt_core::packet::PacketId;
    use mqtt_core::{ProtocolVersion, QoS};

    use super::*;
    use crate::{Store, StoreAnswer, StoreOptions};

    fn put(client: &str, seq: u64) -> StoreOp {
        StoreOp::PutDelivery {
            client_id: client.into(),
            seq,
            delivery: Box::new(StoredDelivery {
                message: crate::format::tests::message(Instant::now()),
                qos: QoS::AtLeastOnce,
                retain: false,
                sub_ids: Vec::new(),
                inflight: None,
            }),
        }
    }

    /// After a failed commit the writer reads the index from the file: it must be the index
    /// loading gives, whatever the log holds.
    #[test]
    fn the_index_read_back_by_the_writer_is_the_one_loading_gives() {
        let dir = std::env::temp_dir().join(format!("mqtt-store-index-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let session = StoredSession {
            version: ProtocolVersion::V5,
            expiry_interval: 60,
            expires_at: None,
            subscriptions: Vec::new(),
            pending_will: None,
        };
        let flow = |seq| StoreOp::SetFlow {
            client_id: "a".into(),
            seq,
            inflight: PacketId::new(7)
                .map(|id| (id, mqtt_core::broker::store::StoredFlow::Published)),
        };
        let delete = |seq| StoreOp::DeleteDelivery {
            client_id: "a".into(),
            seq,
        };
        let batches = vec![
            vec![StoreOp::PutSession {
                client_id: "a".into(),
                session: Box::new(session.clone()),
            }],
            vec![put("a", 1), put("a", 2), put("a", 3)],
            vec![flow(1), put("a", 4)],
            vec![delete(2), flow(3), put("a", 5)],
            vec![put("a", 6), delete(4)],
            vec![
                StoreOp::PutSession {
                    client_id: "b".into(),
                    session: Box::new(session),
                },
                put("b", 1),
            ],
            vec![flow(6), delete(1)],
        ];
        let (store, _) = Store::open(StoreOptions::new(&dir), Instant::now()).expect("open");
        // Small enough that the oldest entries move into the table as it goes.
        let (tx, rx) = std::sync::mpsc::channel();
        let handle = store.with_delivery_log_limit(400).start(move |a| {
            let _ = tx.send(a);
        });
        for (i, ops) in batches.into_iter().enumerate() {
            handle.submit(StoreTicket(i as u64 + 1), ops);
            loop {
                match rx.recv_timeout(Duration::from_secs(10)) {
                    Ok(StoreAnswer::Durable(t)) if t >= StoreTicket(i as u64 + 1) => break,
                    Ok(StoreAnswer::Durable(_)) => {}
                    other => panic!("{other:?}"),
                }
            }
        }
        handle.close().expect("close");

        let clock = Clock::new(
            Instant::now(),
            UNIX_EPOCH + Duration::from_secs(1_700_000_000),
        );
        let path = crate::db::file_in(&dir);
        let (db, _, loaded) = crate::db::open(&path, clock).expect("load");
        let mut rebuilt =
            DeliveryLog::loaded(clock, Index::default(), VecDeque::new(), HashMap::new());
        rebuilt.forget();
        let txn = db.begin_write().expect("txn");
        rebuilt.begin(&txn).expect("rebuild");
        rebuilt.index.live.pop_back();
        assert!(
            !loaded.index.resident.is_empty(),
            "the log holds deliveries"
        );
        assert!(!loaded.table_max.is_empty(), "the table holds deliveries");
        assert_eq!(rebuilt.index, loaded.index);
        assert_eq!(rebuilt.sizes, loaded.sizes);
        assert_eq!(rebuilt.table_max, loaded.table_max);
        drop(txn);
        drop(db);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
