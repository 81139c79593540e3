//! The durable store of an `mqtt-core` client: its session in its own redb file, written by
//! the same group-commit writer thread as the broker's ([`StoreHandle`], here over
//! [`ClientStoreOp`]s).
//!
//! With [`ClientOptions::persistence`](mqtt_core::client::ClientOptions::persistence) on and a
//! persistent session, the client emits batches of [`ClientStoreOp`]s
//! ([`ClientEvent::Store`](mqtt_core::client::ClientEvent::Store)) and holds what promises
//! durability until it is told the batch is durable. [`ClientStore::open`] loads the
//! [`ClientStoredState`] that [`Client::recover`](mqtt_core::client::Client::recover) starts a
//! restarted process from; what is on disk after any sequence of operations equals what
//! [`ClientStoredState::apply`] gives in memory.
//!
//! # The file
//!
//! `<dir>/mqtt-client.redb`, or the file named, if the path given ends in `.redb`. Tables,
//! each keyed by the client identifier of the options (so one file may keep the sessions of
//! several client identifiers, used one process at a time): `client_sessions` (client id ->
//! session record: a `u8` version and the identifier in use as a string),
//! `client_outgoing` ((client id, message number) -> message record: the broker's delivery
//! record, with no expiry, origin or subscription identifiers), `client_incoming_qos2`
//! ((client id, packet id) -> ()), `meta` (`"client_format"` -> 1).

use std::path::{Path, PathBuf};
use std::time::{Instant, SystemTime};

use bytes::Bytes;
use bytestring::ByteString;
use mqtt_core::broker::store::{StoredDelivery, StoredMessage};
use mqtt_core::client::store::{
    ClientStoreOp, ClientStoredSession, ClientStoredState, StoredOutgoing,
};
use mqtt_core::{PacketId, QoS};
use redb::{Database, ReadableDatabase, ReadableTableMetadata, TableDefinition, WriteTransaction};

use crate::error::StoreError;
use crate::format::{self, Clock, Malformed, RECORD_VERSION};
use crate::writer::Apply;
use crate::{db, Durability, StoreAnswer, StoreHandle};

/// Client id -> session record.
const SESSIONS: TableDefinition<&[u8], &[u8]> = TableDefinition::new("client_sessions");
/// (client id, message number) -> message record.
const OUTGOING: TableDefinition<(&[u8], u64), &[u8]> = TableDefinition::new("client_outgoing");
/// (client id, packet id) of received QoS 2 messages not yet released.
const INCOMING_QOS2: TableDefinition<(&[u8], u16), ()> =
    TableDefinition::new("client_incoming_qos2");
/// The version of the client tables' layout, under `"client_format"` in the meta table.
const FORMAT_VERSION: u64 = 1;

/// The file's name in a directory.
pub const CLIENT_FILE_NAME: &str = "mqtt-client.redb";

/// Where a client's store lives and how durable its answers are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientStoreOptions {
    /// A directory (created if missing), the file being [`CLIENT_FILE_NAME`] in it; or a
    /// file ending in `.redb`.
    pub path: PathBuf,
    /// When an answer says "durable".
    pub durability: Durability,
}

impl ClientStoreOptions {
    /// A store at `path` with [`Durability::Sync`].
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Self {
            path: path.into(),
            durability: Durability::Sync,
        }
    }

    /// The file.
    pub fn file(&self) -> PathBuf {
        if self.path.extension().is_some_and(|e| e == "redb") {
            self.path.clone()
        } else {
            self.path.join(CLIENT_FILE_NAME)
        }
    }
}

/// The writer of a client's store: submit each
/// [`ClientEvent::Store`](mqtt_core::client::ClientEvent::Store) batch to it.
pub type ClientStoreHandle = StoreHandle<ClientStoreOp>;

/// A client's store file, open and loaded, before its writer thread starts.
#[derive(Debug)]
pub struct ClientStore {
    db: Database,
    path: PathBuf,
    client_id: ByteString,
    clock: Clock,
    durability: Durability,
}

impl ClientStore {
    /// Opens (creating if missing) the file of `options` and loads what it keeps for
    /// `client_id` (the identifier of the client's options, empty if the server assigns
    /// one). `now` is the caller's current `Instant`, the one it gives the client.
    ///
    /// # Errors
    ///
    /// As [`Store::open`](crate::Store::open): the file cannot be created or opened, another
    /// process has it open, it is damaged, or a record in it cannot be decoded.
    pub fn open(
        options: &ClientStoreOptions,
        client_id: impl Into<ByteString>,
        now: Instant,
    ) -> Result<(Self, ClientStoredState), StoreError> {
        let path = options.file();
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|source| StoreError::Io {
                path: path.clone(),
                source,
            })?;
        }
        let client_id = client_id.into();
        let clock = Clock::new(now, SystemTime::now());
        let db = db::open_database(&path)?;
        init(&db, &path)?;
        let state = load(&db, &path, &client_id, clock)?;
        tracing::debug!(
            file = %path.display(),
            outgoing = state.outgoing.len(),
            incoming_qos2 = state.incoming_qos2.len(),
            "client store loaded"
        );
        let store = Self {
            db,
            path,
            client_id,
            clock,
            durability: options.durability,
        };
        Ok((store, state))
    }

    /// The file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Starts the writer thread (named `mqtt-store`); `answer` is called from it as for
    /// [`Store::start`](crate::Store::start): give [`StoreAnswer::Durable`] to
    /// [`Client::handle_stored`](mqtt_core::client::Client::handle_stored) and
    /// [`StoreAnswer::Failed`] to
    /// [`Client::handle_store_failed`](mqtt_core::client::Client::handle_store_failed).
    ///
    /// # Panics
    ///
    /// If the operating system cannot start a thread (as `std::thread::spawn` does).
    pub fn start(self, answer: impl FnMut(StoreAnswer) + Send + 'static) -> ClientStoreHandle {
        let Self {
            db,
            path,
            client_id,
            clock,
            durability,
        } = self;
        let apply: Apply<ClientStoreOp> = Box::new(move |txn, group, _reopened| {
            apply(
                txn,
                &client_id,
                group.iter().flat_map(|(_, ops)| ops),
                clock,
            )
        });
        match StoreHandle::spawn(db, path, apply, durability, Box::new(answer)) {
            Ok(handle) => handle,
            // invariant: only when the OS refuses a thread, where std's spawn panics too.
            Err(e) => panic!("{e}"),
        }
    }
}

/// Creates the client tables and checks their format.
fn init(db: &Database, path: &Path) -> Result<(), StoreError> {
    let err = |e: redb::Error| StoreError::from_redb(path.to_owned(), e);
    let txn = db.begin_write().map_err(|e| err(e.into()))?;
    {
        crate::db::check_format(&txn, path, ("client_format", FORMAT_VERSION, &[]), |txn| {
            Ok(!txn.open_table(SESSIONS)?.is_empty()? || !txn.open_table(OUTGOING)?.is_empty()?)
        })?;
        txn.open_table(SESSIONS).map_err(|e| err(e.into()))?;
        txn.open_table(OUTGOING).map_err(|e| err(e.into()))?;
        txn.open_table(INCOMING_QOS2).map_err(|e| err(e.into()))?;
    }
    txn.commit().map_err(|e| err(e.into()))
}

/// Reads what the file keeps for `client_id`.
fn load(
    db: &Database,
    path: &Path,
    client_id: &str,
    clock: Clock,
) -> Result<ClientStoredState, StoreError> {
    let err = |e: redb::Error| StoreError::from_redb(path.to_owned(), e);
    let corrupt = |table, key: String, reason: String| StoreError::Corrupt {
        path: path.to_owned(),
        table,
        key,
        reason,
    };
    let id = client_id.as_bytes();
    let txn = db.begin_read().map_err(|e| err(e.into()))?;
    let mut state = ClientStoredState::default();

    let sessions = txn.open_table(SESSIONS).map_err(|e| err(e.into()))?;
    if let Some(v) = sessions.get(id).map_err(|e| err(e.into()))? {
        let session = decode_session(v.value())
            .map_err(|m| corrupt("client_sessions", format!("{client_id:?}"), m.0))?;
        state.session = Some(session);
    }

    let outgoing = txn.open_table(OUTGOING).map_err(|e| err(e.into()))?;
    for entry in outgoing
        .range((id, 0u64)..=(id, u64::MAX))
        .map_err(|e| err(e.into()))?
    {
        let (k, v) = entry.map_err(|e| err(e.into()))?;
        let (_, seq) = k.value();
        let key = format!("({client_id:?}, {seq})");
        let message = decode_outgoing(Bytes::copy_from_slice(v.value()), clock)
            .map_err(|m| corrupt("client_outgoing", key, m.0))?;
        state.outgoing.insert(seq, message);
    }

    let qos2 = txn.open_table(INCOMING_QOS2).map_err(|e| err(e.into()))?;
    for entry in qos2
        .range((id, 0u16)..=(id, u16::MAX))
        .map_err(|e| err(e.into()))?
    {
        let (k, _) = entry.map_err(|e| err(e.into()))?;
        let (_, packet_id) = k.value();
        let packet_id = PacketId::new(packet_id).ok_or_else(|| {
            corrupt(
                "client_incoming_qos2",
                format!("({client_id:?}, 0)"),
                "packet id 0".into(),
            )
        })?;
        state.incoming_qos2.insert(packet_id);
    }
    Ok(state)
}

/// Applies `ops` in order inside `txn`, with the semantics of [`ClientStoredState::apply`].
fn apply<'a>(
    txn: &WriteTransaction,
    client_id: &str,
    ops: impl IntoIterator<Item = &'a ClientStoreOp>,
    clock: Clock,
) -> Result<(), redb::Error> {
    let id = client_id.as_bytes();
    let mut sessions = txn.open_table(SESSIONS)?;
    let mut outgoing = txn.open_table(OUTGOING)?;
    let mut qos2 = txn.open_table(INCOMING_QOS2)?;
    for op in ops {
        match op {
            ClientStoreOp::Clear => {
                sessions.remove(id)?;
                outgoing.retain_in((id, 0u64)..=(id, u64::MAX), |_, _| false)?;
                qos2.retain_in((id, 0u16)..=(id, u16::MAX), |_, _| false)?;
            }
            ClientStoreOp::PutSession { session } => {
                sessions.insert(id, encode_session(session).as_slice())?;
            }
            ClientStoreOp::PutOutgoing { seq, message } => {
                outgoing.insert((id, *seq), encode_outgoing(message, clock).as_slice())?;
            }
            ClientStoreOp::DeleteOutgoing { seq } => {
                outgoing.remove((id, *seq))?;
            }
            ClientStoreOp::PutIncomingQos2 { packet_id } => {
                qos2.insert((id, packet_id.get()), ())?;
            }
            ClientStoreOp::DeleteIncomingQos2 { packet_id } => {
                qos2.remove((id, packet_id.get()))?;
            }
            // A newer operation this build does not store.
            other => tracing::warn!(op = ?other, "client store operation not stored"),
        }
    }
    Ok(())
}

fn encode_session(s: &ClientStoredSession) -> Vec<u8> {
    let mut record = vec![RECORD_VERSION];
    record.extend_from_slice(s.client_id.as_bytes());
    record
}

fn decode_session(record: &[u8]) -> Result<ClientStoredSession, Malformed> {
    match record.split_first() {
        Some((&RECORD_VERSION, id)) => Ok(ClientStoredSession {
            client_id: ByteString::try_from(id)
                .map_err(|_| Malformed("the client identifier is not UTF-8".into()))?,
        }),
        Some((v, _)) => Err(Malformed(format!("unknown record version {v}"))),
        None => Err(Malformed("empty record".into())),
    }
}

/// An outgoing message as the broker's delivery record: the same fields, no times.
fn encode_outgoing(m: &StoredOutgoing, clock: Clock) -> Vec<u8> {
    let delivery = StoredDelivery {
        message: StoredMessage {
            topic: m.topic.clone(),
            payload: m.payload.clone(),
            qos: m.qos,
            retain: m.retain,
            properties: m.properties.clone(),
            expires_at: None,
            origin: None,
        },
        qos: m.qos,
        retain: m.retain,
        sub_ids: Vec::new(),
        inflight: m.inflight,
    };
    format::encode_delivery(&delivery, clock)
}

fn decode_outgoing(record: Bytes, clock: Clock) -> Result<StoredOutgoing, Malformed> {
    let d = format::decode_delivery(record, clock)?;
    if d.qos == QoS::AtMostOnce {
        return Err(Malformed("a QoS 0 message is never stored".into()));
    }
    Ok(StoredOutgoing {
        topic: d.message.topic,
        payload: d.message.payload,
        qos: d.qos,
        retain: d.retain,
        properties: d.message.properties,
        inflight: d.inflight,
    })
}
