//! The durable store of an `mqtt-core` broker on disk, shared by every runtime adapter; and
//! of a client's session ([`ClientStore`]), the same way.
//!
//! With [`BrokerConfig::persistence`](mqtt_core::broker::BrokerConfig::persistence) on, the
//! broker emits, after each input, one numbered batch of
//! [`StoreOp`](mqtt_core::broker::store::StoreOp)s
//! ([`BrokerEvent::Store`](mqtt_core::broker::BrokerEvent::Store)) and holds the
//! acknowledgements that promise durability until it is told the batch is durable. This crate
//! writes those batches to one [redb] file, `<dir>/mqtt.redb`, and answers; at start it loads
//! the [`StoredState`] that [`Broker::recover`](mqtt_core::broker::Broker::recover) starts
//! from. What is on disk after any sequence of operations equals what
//! [`StoredState::apply`](mqtt_core::broker::store::StoredState::apply) gives in memory.
//!
//! # Data flow
//!
//! ```text
//!  broker task                          writer thread ("mqtt-store")
//!  -----------                          ----------------------------
//!  Store { ticket: 7, ops } --submit--> [7] ┐ blocks for the first batch,
//!  Store { ticket: 8, ops } --submit--> [8] ├ then takes all already queued:
//!  Store { ticket: 9, ops } --submit--> [9] ┘ ONE write transaction, ONE fsync
//!                                            │
//!  handle_stored(now, 9)  <--answer-- Durable(9)   (answers 7 and 8 too)
//!  handle_store_failed(now, t) <----- Failed { ticket: t, .. } for each of 7, 8, 9
//!                                            if the commit failed (disk full)
//! ```
//!
//! There is no fixed delay: under light load each batch is its own transaction; under heavy
//! load the batches that queue up while one fsync runs share the next one, so the number of
//! fsyncs per second stays bounded by the disk while throughput grows with load.
//!
//! # Durability modes
//!
//! ```text
//!  Durability::Sync                 receive ─ write ─ fsync ─ answer Durable
//!  Durability::Periodic{interval}   receive ─ answer Durable ─ write (no fsync)
//!                                   ... an fsync at least every `interval`, and at close
//! ```
//!
//! - [`Durability::Sync`]: an answer means the batch is on disk. A crash loses nothing that
//!   was acknowledged.
//! - [`Durability::Periodic`]: the answer comes on receipt, before anything is written. A
//!   crash of the process or the machine loses what was answered in the last `interval`
//!   (the documented window of loss); a clean [`StoreHandle::close`] loses nothing. In
//!   exchange no acknowledgement waits for a disk.
//! - Memory only (no durability at all) is no `Store`: leave persistence off, or answer from
//!   a [`MemoryStore`](mqtt_core::broker::store::MemoryStore).
//!
//! # Failures
//!
//! - A truncated, overwritten or foreign file is a [`StoreError`] from [`Store::open`] that
//!   names the file and says what to do; it never panics and never starts empty silently.
//!   Every page is checked against its checksum at every open.
//! - A write that fails (a full disk) makes the writer answer [`StoreAnswer::Failed`] for
//!   every batch of that transaction (give each to
//!   [`Broker::handle_store_failed`](mqtt_core::broker::Broker::handle_store_failed): the
//!   broker refuses what it could not store and goes on serving). The writer closes the file,
//!   opens it again for the next batch, and goes on: later batches succeed once there is
//!   space again. With [`Durability::Periodic`] the failed batches were already answered:
//!   the failure is logged, and they are lost if the broker stops before a later write
//!   brings their effects back.
//!
//! # Times
//!
//! An `Instant` means nothing to another process, so times (expiries, will delays) are stored
//! as wall-clock milliseconds since the UNIX epoch, through an anchor pair taken at
//! [`Store::open`]: the caller's `now` and `SystemTime::now()`. At load a stored time becomes
//! `now` plus or minus its distance from the wall clock's now (`now.checked_sub(..)` for a
//! time in the past); one that lies before what the platform's `Instant` can represent is
//! clamped to `now`: every stored time is a deadline, and such a deadline is simply due. Precision is one
//! millisecond; a wall clock set back or forward between two runs shifts every deadline by
//! as much.
//!
//! # Example
//!
//! ```
//! use std::sync::mpsc;
//! use std::time::Instant;
//!
//! use mqtt_core::broker::store::{StoreOp, StoreTicket, StoredMessage};
//! use mqtt_core::packet::PublishProperties;
//! use mqtt_core::topic::TopicName;
//! use mqtt_core::QoS;
//! use mqtt_store::{Durability, Store, StoreAnswer, StoreOptions};
//!
//! # let dir = std::env::temp_dir().join(format!("mqtt-store-doc-{}", std::process::id()));
//! # let _ = std::fs::remove_dir_all(&dir);
//! let options = StoreOptions { dir: dir.clone(), durability: Durability::Sync };
//! let (store, state) = Store::open(options, Instant::now())?;
//! assert!(state.sessions.is_empty()); // give `state` to `Broker::recover`
//!
//! // The adapter forwards answers to the task that owns the broker.
//! let (tx, answers) = mpsc::channel();
//! let handle = store.start(move |answer| {
//!     let _ = tx.send(answer);
//! });
//! let message = StoredMessage {
//!     topic: TopicName::new("sensors/1")?,
//!     payload: "21.5".into(),
//!     qos: QoS::AtLeastOnce,
//!     retain: true,
//!     properties: PublishProperties::default(),
//!     expires_at: None,
//!     origin: None,
//! };
//! let op = StoreOp::PutRetained {
//!     message: Box::new(message),
//! };
//! handle.submit(StoreTicket(1), vec![op]);
//! // ... the broker's loop calls `broker.handle_stored(now, ticket)` on this:
//! assert!(matches!(answers.recv()?, StoreAnswer::Durable(StoreTicket(1))));
//! handle.close()?;
//!
//! let (_, state) = Store::open(StoreOptions::new(&dir), Instant::now())?;
//! assert_eq!(state.retained["sensors/1"].payload, "21.5");
//! # std::fs::remove_dir_all(&dir)?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # Layout
//!
//! - `lib.rs`: the API: [`Store`], [`StoreOptions`], [`Durability`], [`StoreAnswer`].
//! - `writer.rs`: the writer thread and [`StoreHandle`]: group commit, the durability modes,
//!   recovery after a failed write.
//! - `db.rs`: the tables, open and load, and the operations applied to a transaction.
//! - `delivery_log.rs`: how deliveries are written: one log entry per commit, moved into the
//!   `deliveries` table only when they stay long.
//! - `log_index.rs`: what the log holds, as a replay of its entries leaves it.
//! - `format.rs`: the versioned binary records and the `Instant` <-> wall-clock conversion.
//! - `error.rs`: [`StoreError`].
//! - `client.rs`: a client's store ([`ClientStore`]): its own file and tables, the same
//!   writer thread over the client's operations.
//!
//! # The file
//!
//! Tables: `sessions` (client id -> session record), `delivery_log` (entry number -> the
//! delivery operations of one commit), `deliveries` ((client id, sequence number) ->
//! delivery record, for deliveries that outlived 64 MiB of log), `incoming_qos2` ((client id,
//! packet id) -> ()), `retained` (topic -> message record), `meta` (`"format"` -> 2; a
//! version 1 file, without the log, is upgraded in place). Keys are the UTF-8 bytes of the
//! ids and topics; records are described in `format.rs`. QoS 2 ids load in ascending order
//! (the broker keeps them as a set).
//!
//! [redb]: https://docs.rs/redb

#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod client;
mod db;
mod delivery_log;
mod error;
mod format;
mod log_index;
mod writer;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

use mqtt_core::broker::store::{StoreTicket, StoredState};
use redb::Database;

pub use client::{ClientStore, ClientStoreHandle, ClientStoreOptions, CLIENT_FILE_NAME};
pub use error::StoreError;
pub use writer::{StoreHandle, StoreStats};

use format::Clock;

/// When an answer says "durable".
#[non_exhaustive]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Durability {
    /// Each group of batches is written and synced (fsync) before it is answered.
    #[default]
    Sync,
    /// Batches are answered on receipt and synced at least every `interval`: a crash loses
    /// what was answered in the last `interval`.
    Periodic {
        /// The longest time between a write and its sync.
        interval: Duration,
    },
}

/// Where the store lives and how durable its answers are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreOptions {
    /// The data directory (created if missing); the file is `mqtt.redb` in it.
    pub dir: PathBuf,
    /// When an answer says "durable".
    pub durability: Durability,
}

impl StoreOptions {
    /// A store in `dir` with [`Durability::Sync`].
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self {
            dir: dir.into(),
            durability: Durability::Sync,
        }
    }
}

/// The writer's answer about one batch, from the writer thread.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreAnswer {
    /// This batch and every earlier one are durable: call
    /// [`Broker::handle_stored`](mqtt_core::broker::Broker::handle_stored) with it.
    Durable(StoreTicket),
    /// This batch could not be written: call
    /// [`Broker::handle_store_failed`](mqtt_core::broker::Broker::handle_store_failed) with
    /// it. The writer goes on with later batches.
    Failed {
        /// The batch.
        ticket: StoreTicket,
        /// Why, for logs (names the file).
        error: String,
    },
}

/// The store file, open and loaded, before its writer thread starts.
#[derive(Debug)]
pub struct Store {
    db: Database,
    path: PathBuf,
    clock: Clock,
    durability: Durability,
    /// The delivery log's index, as loading found it.
    log: delivery_log::DeliveryLog,
}

impl Store {
    /// Opens (creating if missing) `<dir>/mqtt.redb` and loads everything: the state a
    /// restarted broker starts from ([`Broker::recover`](mqtt_core::broker::Broker::recover)).
    /// `now` is the caller's current `Instant`, the one it gives the broker.
    ///
    /// Checks every page of the file: the time taken grows with its size.
    ///
    /// # Errors
    ///
    /// If the directory or file cannot be created or opened ([`StoreError::Io`]), another
    /// process has it open ([`StoreError::Locked`]), it is damaged or not a store
    /// ([`StoreError::Damaged`], [`StoreError::Corrupt`]) or of a newer format
    /// ([`StoreError::UnsupportedFormat`]).
    pub fn open(options: StoreOptions, now: Instant) -> Result<(Self, StoredState), StoreError> {
        Self::open_with_clock(options, now, SystemTime::now())
    }

    /// [`Store::open`] with the wall-clock time that stands for `now` given rather than read
    /// (tests, tools that replay a store at another time).
    ///
    /// # Errors
    ///
    /// As [`Store::open`].
    pub fn open_with_clock(
        options: StoreOptions,
        now: Instant,
        wall_now: SystemTime,
    ) -> Result<(Self, StoredState), StoreError> {
        let path = db::file_in(&options.dir);
        std::fs::create_dir_all(&options.dir).map_err(|source| StoreError::Io {
            path: path.clone(),
            source,
        })?;
        let clock = Clock::new(now, wall_now);
        let (db, state, log) = db::open(&path, clock)?;
        tracing::debug!(
            file = %path.display(),
            sessions = state.sessions.len(),
            retained = state.retained.len(),
            "store loaded"
        );
        let store = Self {
            db,
            path,
            clock,
            durability: options.durability,
            log,
        };
        Ok((store, state))
    }

    /// The file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// How many bytes the delivery log holds before the deliveries still live in its oldest
    /// entry move into the `deliveries` table (default 64 MiB). Tests set it low to make
    /// every path run; an operator has no reason to.
    #[doc(hidden)]
    pub fn with_delivery_log_limit(mut self, bytes: usize) -> Self {
        self.log.set_limit(bytes);
        self
    }

    /// Starts the writer thread (named `mqtt-store`). `answer` is called from that thread,
    /// once per group of batches ([`StoreAnswer::Durable`]) or once per failed batch
    /// ([`StoreAnswer::Failed`]): forward it to the task that owns the broker.
    ///
    /// # Panics
    ///
    /// If the operating system cannot start a thread (as `std::thread::spawn` does).
    pub fn start(self, answer: impl FnMut(StoreAnswer) + Send + 'static) -> StoreHandle {
        let Self {
            db,
            path,
            clock,
            durability,
            log,
        } = self;
        let mut applier = db::Applier::new(clock, log);
        let apply: writer::Apply<mqtt_core::broker::store::StoreOp> =
            Box::new(move |txn, group, reopened| {
                applier.apply(txn, group.iter().flat_map(|(_, ops)| ops), reopened)
            });
        match StoreHandle::spawn(db, path, apply, durability, Box::new(answer)) {
            Ok(handle) => handle,
            // invariant: only when the OS refuses a thread, where std's spawn panics too.
            Err(e) => panic!("{e}"),
        }
    }
}
