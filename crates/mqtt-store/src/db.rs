//! The redb file: its tables, opening it, loading everything, and applying store operations
//! with exactly the semantics of [`StoredState::apply`].

use std::collections::{BTreeMap, HashMap};
use std::panic::{self, AssertUnwindSafe};
use std::path::{Path, PathBuf};

use bytes::Bytes;
use bytestring::ByteString;
use mqtt_core::broker::store::{SessionState, StoreOp, StoredState};
use mqtt_core::PacketId;
use redb::{
    Database, ReadableDatabase, ReadableTable, ReadableTableMetadata, TableDefinition,
    WriteTransaction,
};

use crate::delivery_log::{self, DeliveryLog, DELIVERIES, DELIVERY_LOG};
use crate::error::StoreError;
use crate::format::{self, Clock, Malformed};
use crate::log_index::{self, Index, Logged};

/// Client id -> session record.
const SESSIONS: TableDefinition<&[u8], &[u8]> = TableDefinition::new("sessions");
/// (client id, packet id) of received QoS 2 messages not yet released.
const INCOMING_QOS2: TableDefinition<(&[u8], u16), ()> = TableDefinition::new("incoming_qos2");
/// Topic -> retained message record.
const RETAINED: TableDefinition<&[u8], &[u8]> = TableDefinition::new("retained");
/// `"format"` -> [`FORMAT_VERSION`].
const META: TableDefinition<&str, u64> = TableDefinition::new("meta");

/// The version of the file layout (tables and keys); records carry their own version byte.
/// 2 added the `delivery_log` table.
pub(crate) const FORMAT_VERSION: u64 = 2;

/// Older layouts this one reads as they are: a version 1 file is a version 2 file with an
/// empty delivery log.
const UPGRADABLE: &[u64] = &[1];

/// The name of the file in the data directory.
pub(crate) const FILE_NAME: &str = "mqtt.redb";

/// Opens (creating if missing) the file, checks every page, and loads the state, with the
/// delivery log's index as loading found it (so the writer need not read the log again).
pub(crate) fn open(
    path: &Path,
    clock: Clock,
) -> Result<(Database, StoredState, DeliveryLog), StoreError> {
    // A file altered behind redb's back may make redb itself panic on a path it believes
    // unreachable (a debug assertion): an operator must get an error naming the file instead.
    guard(path, || {
        let db = open_database(path)?;
        init(&db, path)?;
        let (state, log) = load(&db, path, clock)?;
        Ok((db, state, log))
    })
}

/// Opens the database only (after a write failure: redb must be closed and opened again).
pub(crate) fn open_database(path: &Path) -> Result<Database, StoreError> {
    guard(path, || {
        redb::Builder::new()
            // Check the checksum of every page at every open, not only after a crash: a
            // damaged file is an error here, not a panic or a wrong answer later.
            .set_check_integrity_on_open(true)
            .set_cache_size(64 * 1024 * 1024)
            .create(path)
            .map_err(|e| StoreError::from_redb(path.to_owned(), e.into()))
    })
}

fn guard<T>(path: &Path, f: impl FnOnce() -> Result<T, StoreError>) -> Result<T, StoreError> {
    panic::catch_unwind(AssertUnwindSafe(f)).unwrap_or_else(|_| {
        Err(StoreError::Damaged {
            path: path.to_owned(),
            reason: "the database engine failed while reading it".into(),
        })
    })
}

/// Checks that the format version stored under `key` in the meta table is `version`, and
/// writes it into a new file. A file without it whose tables already hold records
/// (`holds_records`) lost its meta table: corrupt, never silently reused.
pub(crate) fn check_format(
    txn: &WriteTransaction,
    path: &Path,
    (key, version, upgradable): (&'static str, u64, &[u64]),
    holds_records: impl FnOnce(&WriteTransaction) -> Result<bool, redb::Error>,
) -> Result<(), StoreError> {
    let err = |e: redb::Error| StoreError::from_redb(path.to_owned(), e);
    let mut meta = txn.open_table(META).map_err(|e| err(e.into()))?;
    let found = meta.get(key).map_err(|e| err(e.into()))?.map(|v| v.value());
    match found {
        Some(found) if found == version => Ok(()),
        Some(found) if upgradable.contains(&found) => {
            tracing::info!(file = %path.display(), from = found, to = version, "store format upgraded");
            meta.insert(key, version).map_err(|e| err(e.into()))?;
            Ok(())
        }
        Some(found) => Err(StoreError::UnsupportedFormat {
            path: path.to_owned(),
            found,
            supported: version,
        }),
        None if holds_records(txn).map_err(err)? => Err(StoreError::Corrupt {
            path: path.to_owned(),
            table: "meta",
            key: format!("{key:?}"),
            reason: "missing, but the file holds records".into(),
        }),
        None => {
            meta.insert(key, version).map_err(|e| err(e.into()))?;
            Ok(())
        }
    }
}

/// Creates the tables of a new file and checks the format of an existing one.
fn init(db: &Database, path: &Path) -> Result<(), StoreError> {
    let err = |e: redb::Error| StoreError::from_redb(path.to_owned(), e);
    let txn = db.begin_write().map_err(|e| err(e.into()))?;
    {
        check_format(&txn, path, ("format", FORMAT_VERSION, UPGRADABLE), |txn| {
            Ok(!txn.open_table(SESSIONS)?.is_empty()? || !txn.open_table(RETAINED)?.is_empty()?)
        })?;
        txn.open_table(SESSIONS).map_err(|e| err(e.into()))?;
        txn.open_table(DELIVERIES).map_err(|e| err(e.into()))?;
        txn.open_table(DELIVERY_LOG).map_err(|e| err(e.into()))?;
        txn.open_table(INCOMING_QOS2).map_err(|e| err(e.into()))?;
        txn.open_table(RETAINED).map_err(|e| err(e.into()))?;
    }
    txn.commit().map_err(|e| err(e.into()))
}

/// Reads everything a restart brings back.
fn load(
    db: &Database,
    path: &Path,
    clock: Clock,
) -> Result<(StoredState, DeliveryLog), StoreError> {
    let err = |e: redb::Error| StoreError::from_redb(path.to_owned(), e);
    let corrupt = |table, key: String, reason: String| StoreError::Corrupt {
        path: path.to_owned(),
        table,
        key,
        reason,
    };
    let txn = db.begin_read().map_err(|e| err(e.into()))?;
    let mut state = StoredState::default();

    let sessions = txn.open_table(SESSIONS).map_err(|e| err(e.into()))?;
    for entry in sessions.iter().map_err(|e| err(e.into()))? {
        let (k, v) = entry.map_err(|e| err(e.into()))?;
        let client = client_id(k.value()).map_err(|m| corrupt("sessions", show(k.value()), m.0))?;
        let session = format::decode_session(Bytes::copy_from_slice(v.value()), clock)
            .map_err(|m| corrupt("sessions", show(k.value()), m.0))?;
        state.sessions.insert(
            client,
            SessionState {
                session,
                deliveries: BTreeMap::new(),
                incoming_qos2: Vec::new(),
            },
        );
    }

    // Per client, the highest sequence number in the table: the writer's `table_max`.
    let mut table_max: HashMap<ByteString, u64> = HashMap::new();
    let deliveries = txn.open_table(DELIVERIES).map_err(|e| err(e.into()))?;
    for entry in deliveries.iter().map_err(|e| err(e.into()))? {
        let (k, v) = entry.map_err(|e| err(e.into()))?;
        let (id, seq) = k.value();
        let key = || format!("({}, {seq})", show(id));
        let client = client_id(id).map_err(|m| corrupt("deliveries", key(), m.0))?;
        let delivery = format::decode_delivery(Bytes::copy_from_slice(v.value()), clock)
            .map_err(|m| corrupt("deliveries", key(), m.0))?;
        delivery_log::raise(&mut table_max, client.clone(), seq);
        match state.sessions.get_mut(&client) {
            Some(s) => {
                s.deliveries.insert(seq, delivery);
            }
            // Never written (see `apply`); ignored as `StoredState::apply` would.
            None => {
                tracing::warn!(file = %path.display(), key = key(), "delivery without a session")
            }
        }
    }

    // The log after the table: its puts are newer than any row (see `delivery_log`).
    let log = txn.open_table(DELIVERY_LOG).map_err(|e| err(e.into()))?;
    let (replayed, sizes) = log_index::replay(&log, clock, |record| record)
        .map_err(err)?
        .map_err(|(entry, m)| corrupt("delivery_log", entry.to_string(), m.0))?;
    let mut index = Index {
        first: replayed.first,
        live: replayed.live,
        resident: HashMap::new(),
    };
    for (client, resident) in replayed.resident {
        let mut kept = BTreeMap::new();
        for (seq, logged) in resident {
            let key = || {
                format!(
                    "({}, {seq}) in entry {}",
                    show(client.as_bytes()),
                    logged.put
                )
            };
            let mut delivery = format::decode_delivery(logged.record.clone(), clock)
                .map_err(|m| corrupt("delivery_log", key(), m.0))?;
            if let Some((_, inflight)) = logged.flow {
                delivery.inflight = inflight;
            }
            match state.sessions.get_mut(&client) {
                Some(s) => {
                    s.deliveries.insert(seq, delivery);
                }
                None => {
                    tracing::warn!(file = %path.display(), key = key(), "delivery without a session")
                }
            }
            let (put, flow) = (logged.put, logged.flow);
            kept.insert(
                seq,
                Logged {
                    put,
                    record: (),
                    flow,
                },
            );
        }
        index.resident.insert(client, kept);
    }
    let log = DeliveryLog::loaded(clock, index, sizes, table_max);

    let qos2 = txn.open_table(INCOMING_QOS2).map_err(|e| err(e.into()))?;
    for entry in qos2.iter().map_err(|e| err(e.into()))? {
        let (k, _) = entry.map_err(|e| err(e.into()))?;
        let (id, packet_id) = k.value();
        let key = format!("({}, {packet_id})", show(id));
        let client = client_id(id).map_err(|m| corrupt("incoming_qos2", key.clone(), m.0))?;
        let packet_id = PacketId::new(packet_id)
            .ok_or_else(|| corrupt("incoming_qos2", key.clone(), "packet id 0".into()))?;
        match state.sessions.get_mut(&client) {
            Some(s) => s.incoming_qos2.push(packet_id),
            None => tracing::warn!(file = %path.display(), %key, "QoS 2 id without a session"),
        }
    }

    let retained = txn.open_table(RETAINED).map_err(|e| err(e.into()))?;
    for entry in retained.iter().map_err(|e| err(e.into()))? {
        let (k, v) = entry.map_err(|e| err(e.into()))?;
        let topic = client_id(k.value()).map_err(|m| corrupt("retained", show(k.value()), m.0))?;
        let message = format::decode_message(Bytes::copy_from_slice(v.value()), clock)
            .map_err(|m| corrupt("retained", show(k.value()), m.0))?;
        if message.topic.as_bytestring() != &topic {
            return Err(corrupt(
                "retained",
                show(k.value()),
                format!(
                    "the record is for another topic, {:?}",
                    message.topic.as_str()
                ),
            ));
        }
        state.retained.insert(topic, message);
    }
    Ok((state, log))
}

/// The key of a client id.
pub(crate) fn key(client_id: &str) -> &[u8] {
    client_id.as_bytes()
}

/// A key as UTF-8.
fn client_id(key: &[u8]) -> Result<ByteString, Malformed> {
    ByteString::try_from(key).map_err(|_| Malformed("the key is not UTF-8".into()))
}

/// A key for an error message.
fn show(key: &[u8]) -> String {
    format!("{:?}", String::from_utf8_lossy(key))
}

/// Applies groups of operations to the file: the writer thread's state across commits (the
/// delivery log's index).
pub(crate) struct Applier {
    clock: Clock,
    log: DeliveryLog,
}

impl Applier {
    pub(crate) fn new(clock: Clock, log: DeliveryLog) -> Self {
        Self { clock, log }
    }

    /// Applies `ops` in order inside `txn`, with the semantics of [`StoredState::apply`]:
    /// deliveries and QoS 2 ids of a session that is not stored are ignored, and deleting a
    /// session deletes its deliveries and QoS 2 ids. `reopened`: the file was opened again
    /// since the last call (a commit failed), so what the index says may not be on disk.
    pub(crate) fn apply<'a>(
        &mut self,
        txn: &WriteTransaction,
        ops: impl IntoIterator<Item = &'a StoreOp>,
        reopened: bool,
    ) -> Result<(), redb::Error> {
        if reopened {
            self.log.forget();
        }
        let clock = self.clock;
        // First: it may read the tables to build its index.
        self.log.begin(txn)?;
        let mut sessions = txn.open_table(SESSIONS)?;
        let mut deliveries = txn.open_table(DELIVERIES)?;
        let mut log = txn.open_table(DELIVERY_LOG)?;
        let mut qos2 = txn.open_table(INCOMING_QOS2)?;
        let mut retained = txn.open_table(RETAINED)?;
        let mut known = KnownSession(None);
        for op in ops {
            match op {
                StoreOp::PutSession { client_id, session } => {
                    known.0 = None;
                    let record = format::encode_session(session, clock);
                    sessions.insert(key(client_id), record.as_slice())?;
                }
                StoreOp::DeleteSession { client_id } => {
                    known.0 = None;
                    let id = key(client_id);
                    sessions.remove(id)?;
                    deliveries.retain_in((id, 0u64)..=(id, u64::MAX), |_, _| false)?;
                    qos2.retain_in((id, 0u16)..=(id, u16::MAX), |_, _| false)?;
                    self.log.delete_session(client_id);
                }
                StoreOp::PutDelivery {
                    client_id,
                    seq,
                    delivery,
                } => {
                    if known.is_stored(key(client_id), &sessions)? {
                        self.log.put(&mut deliveries, client_id, *seq, delivery)?;
                    }
                }
                StoreOp::SetFlow {
                    client_id,
                    seq,
                    inflight,
                } => {
                    self.log.flow(&mut deliveries, client_id, *seq, *inflight)?;
                }
                StoreOp::DeleteDelivery { client_id, seq } => {
                    self.log.delete(&mut deliveries, client_id, *seq)?;
                }
                StoreOp::PutIncomingQos2 {
                    client_id,
                    packet_id,
                } => {
                    let id = key(client_id);
                    if known.is_stored(id, &sessions)? {
                        qos2.insert((id, packet_id.get()), ())?;
                    }
                }
                StoreOp::DeleteIncomingQos2 {
                    client_id,
                    packet_id,
                } => {
                    qos2.remove((key(client_id), packet_id.get()))?;
                }
                StoreOp::PutRetained { message } => {
                    let record = format::encode_message(message, clock);
                    retained.insert(message.topic.as_str().as_bytes(), record.as_slice())?;
                }
                StoreOp::DeleteRetained { topic } => {
                    retained.remove(topic.as_str().as_bytes())?;
                }
            }
        }
        self.log.finish(&mut log, &mut deliveries)
    }
}

/// Whether the session of the last delivery or QoS 2 id looked up is stored: the operations of
/// a group are mostly one session's (a fan-in), so most lookups are saved. It must be
/// forgotten at every session operation.
struct KnownSession<'a>(Option<(&'a [u8], bool)>);

impl<'a> KnownSession<'a> {
    fn is_stored(
        &mut self,
        id: &'a [u8],
        sessions: &redb::Table<&[u8], &[u8]>,
    ) -> Result<bool, redb::Error> {
        match self.0 {
            Some((known, stored)) if known == id => Ok(stored),
            _ => {
                let stored = sessions.get(id)?.is_some();
                self.0 = Some((id, stored));
                Ok(stored)
            }
        }
    }
}

/// The file in `dir`.
pub(crate) fn file_in(dir: &Path) -> PathBuf {
    dir.join(FILE_NAME)
}
