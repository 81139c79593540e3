//! The writer thread: group commit, the two durability modes, and recovery from write
//! failures. Generic over the operations it applies: the broker's [`StoreOp`]s, or a
//! client's ([`ClientStoreOp`](mqtt_core::client::store::ClientStoreOp)); how a group of
//! batches is written in a transaction is the [`Apply`] it is started with.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender, TryRecvError};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use mqtt_core::broker::store::{StoreOp, StoreTicket};
use redb::{Database, WriteTransaction};

use crate::db;
use crate::error::StoreError;
use crate::{Durability, StoreAnswer};

/// Writes every batch of a group, in order, inside one transaction. The flag is true for the
/// first transaction after the file was opened again (a commit failed): state the function
/// keeps about the file may be ahead of it.
pub(crate) type Apply<O> = Box<
    dyn FnMut(&WriteTransaction, &[(StoreTicket, Vec<O>)], bool) -> Result<(), redb::Error> + Send,
>;

/// The most batches one transaction takes: under a constant stream of batches the writer
/// still commits, and answers, regularly.
const MAX_GROUP: usize = 4096;

/// The longest a batch nothing waits for is kept back for company (a session gone offline, a
/// completed delivery's deletion): it is written by then even if no other batch comes.
const DEFER_LIMIT: Duration = Duration::from_millis(50);

/// How long [`StoreHandle::close`] waits for the writer to write what is queued.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(30);

pub(crate) enum Msg<O> {
    /// A batch; `true` when something waits for it to be durable.
    Batch(StoreTicket, Vec<O>, bool),
    Close,
}

/// Counters of the writer thread, for metrics and tests.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct StoreStats {
    /// Batches submitted.
    pub batches: u64,
    /// Write transactions committed (each holds one or more batches).
    pub commits: u64,
    /// Commits that were synced to disk (`Durability::Immediate`): with
    /// [`Durability::Sync`] every commit, with [`Durability::Periodic`] one per interval.
    pub syncs: u64,
    /// Batches whose transaction failed.
    pub failed_batches: u64,
}

#[derive(Debug, Default)]
pub(crate) struct Counters {
    batches: AtomicU64,
    commits: AtomicU64,
    syncs: AtomicU64,
    failed_batches: AtomicU64,
}

impl Counters {
    fn snapshot(&self) -> StoreStats {
        StoreStats {
            batches: self.batches.load(Ordering::Relaxed),
            commits: self.commits.load(Ordering::Relaxed),
            syncs: self.syncs.load(Ordering::Relaxed),
            failed_batches: self.failed_batches.load(Ordering::Relaxed),
        }
    }
}

/// The running store: submit batches, then close it. Answers come through the callback
/// given to [`Store::start`](crate::Store::start) (or
/// [`ClientStore::start`](crate::ClientStore::start): a client's store is a
/// `StoreHandle<ClientStoreOp>`).
///
/// Dropping it without [`StoreHandle::close`] still makes the writer write what is queued and
/// stop, but nobody waits for it.
#[derive(Debug)]
pub struct StoreHandle<O = StoreOp> {
    tx: Sender<Msg<O>>,
    done: Receiver<()>,
    thread: Option<JoinHandle<Result<(), StoreError>>>,
    counters: Arc<Counters>,
    path: PathBuf,
}

impl<O: Send + 'static> StoreHandle<O> {
    pub(crate) fn spawn(
        db: Database,
        path: PathBuf,
        apply: Apply<O>,
        durability: Durability,
        answer: Box<dyn FnMut(StoreAnswer) + Send>,
    ) -> Result<Self, StoreError> {
        let (tx, rx) = mpsc::channel();
        let (done_tx, done) = mpsc::channel();
        let counters = Arc::new(Counters::default());
        let mut writer = Writer {
            db: Some(db),
            reopened: false,
            path: path.clone(),
            apply,
            answer,
            counters: counters.clone(),
        };
        let thread = std::thread::Builder::new()
            .name("mqtt-store".into())
            .spawn(move || {
                let result = match durability {
                    Durability::Sync => writer.run_sync(&rx),
                    Durability::Periodic { interval } => writer.run_periodic(&rx, interval),
                };
                let _ = done_tx.send(());
                result
            })
            .map_err(|source| StoreError::Spawn {
                path: path.clone(),
                source,
            })?;
        Ok(Self {
            tx,
            done,
            thread: Some(thread),
            counters,
            path,
        })
    }

    /// Queues one batch, as the broker emitted it in
    /// [`BrokerEvent::Store`](mqtt_core::broker::BrokerEvent::Store). Never blocks: the
    /// queue is unbounded, and the broker bounds what it emits (it waits for answers).
    ///
    /// The answer ([`StoreAnswer::Durable`] for this ticket or a later one, or
    /// [`StoreAnswer::Failed`]) comes from the writer thread.
    pub fn submit(&self, ticket: StoreTicket, ops: Vec<O>) {
        self.send(ticket, ops, true);
    }

    /// Queues a batch nothing waits for (a completed delivery's deletion, say): with
    /// [`Durability::Sync`] it rides along with the next batch that is waited for instead of
    /// costing a commit of its own, and is answered with it.
    pub fn submit_deferrable(&self, ticket: StoreTicket, ops: Vec<O>) {
        self.send(ticket, ops, false);
    }

    fn send(&self, ticket: StoreTicket, ops: Vec<O>, urgent: bool) {
        self.counters.batches.fetch_add(1, Ordering::Relaxed);
        if self.tx.send(Msg::Batch(ticket, ops, urgent)).is_err() {
            // Only after the writer panicked: `close` reports it.
            tracing::error!(file = %self.path.display(), ?ticket, "store writer is gone");
        }
    }

    /// What the writer has done so far.
    pub fn stats(&self) -> StoreStats {
        self.counters.snapshot()
    }

    /// Writes and syncs everything queued, stops the writer thread and waits for it (at most
    /// 30 seconds). Batches submitted before are answered before this returns.
    pub fn close(mut self) -> Result<(), StoreError> {
        let _ = self.tx.send(Msg::Close);
        match self.done.recv_timeout(CLOSE_TIMEOUT) {
            Ok(()) | Err(RecvTimeoutError::Disconnected) => {}
            Err(RecvTimeoutError::Timeout) => {
                return Err(StoreError::CloseTimeout {
                    path: self.path.clone(),
                    waited: CLOSE_TIMEOUT,
                })
            }
        }
        match self.thread.take().map(JoinHandle::join) {
            Some(Ok(result)) => result,
            Some(Err(_)) => Err(StoreError::WriterPanicked {
                path: self.path.clone(),
            }),
            None => Ok(()),
        }
    }
}

impl<O> Drop for StoreHandle<O> {
    fn drop(&mut self) {
        if self.thread.is_some() {
            let _ = self.tx.send(Msg::Close);
        }
    }
}

struct Writer<O> {
    /// `None` after a failure, until it is opened again.
    db: Option<Database>,
    /// Opened again since the last transaction was applied.
    reopened: bool,
    path: PathBuf,
    apply: Apply<O>,
    answer: Box<dyn FnMut(StoreAnswer) + Send>,
    counters: Arc<Counters>,
}

impl<O> Writer<O> {
    /// [`Durability::Sync`]: one transaction per group of queued batches, synced, then the
    /// answer for the whole group.
    fn run_sync(&mut self, rx: &Receiver<Msg<O>>) -> Result<(), StoreError> {
        // Batches nothing waits for, kept for the next commit (at most `DEFER_LIMIT`).
        let mut deferred: Vec<(StoreTicket, Vec<O>)> = Vec::new();
        loop {
            let next = match deferred.is_empty() {
                true => rx.recv().map_err(|_| RecvTimeoutError::Disconnected),
                false => rx.recv_timeout(DEFER_LIMIT),
            };
            let (group, closing, urgent) = match next {
                Ok(first) => gather(first, rx),
                Err(RecvTimeoutError::Timeout) => (Vec::new(), false, true),
                // Every handle is gone without `close`: what was deferred is written still.
                Err(RecvTimeoutError::Disconnected) => (Vec::new(), true, true),
            };
            deferred.extend(group);
            if !urgent && !closing && deferred.len() < MAX_GROUP {
                continue;
            }
            let group = std::mem::take(&mut deferred);
            if let Some(last) = group.last().map(|(t, _)| *t) {
                match self.commit(&group, redb::Durability::Immediate) {
                    Ok(()) => (self.answer)(StoreAnswer::Durable(last)),
                    Err(error) => self.failed(&group, &error),
                }
            }
            if closing {
                return self.finish(false);
            }
        }
    }

    /// [`Durability::Periodic`]: answer on receipt, commit without syncing, sync at least
    /// every `interval` after the first unsynced commit.
    fn run_periodic(
        &mut self,
        rx: &Receiver<Msg<O>>,
        interval: Duration,
    ) -> Result<(), StoreError> {
        // When the oldest commit not yet synced was made.
        let mut unsynced: Option<Instant> = None;
        loop {
            let first = match unsynced {
                None => match rx.recv() {
                    Ok(m) => m,
                    Err(_) => return self.finish(false),
                },
                Some(since) => {
                    let wait = (since + interval).saturating_duration_since(Instant::now());
                    match rx.recv_timeout(wait) {
                        Ok(m) => m,
                        Err(RecvTimeoutError::Timeout) => {
                            self.sync();
                            unsynced = None;
                            continue;
                        }
                        Err(RecvTimeoutError::Disconnected) => return self.finish(true),
                    }
                }
            };
            let (group, closing, _) = gather(first, rx);
            if let Some(last) = group.last().map(|(t, _)| *t) {
                // The documented window of loss: durable "enough" on receipt.
                (self.answer)(StoreAnswer::Durable(last));
                match self.commit(&group, redb::Durability::None) {
                    Ok(()) => {
                        unsynced.get_or_insert_with(Instant::now);
                    }
                    Err(error) => {
                        self.counters
                            .failed_batches
                            .fetch_add(group.len() as u64, Ordering::Relaxed);
                        tracing::error!(
                            file = %self.path.display(),
                            %error,
                            batches = group.len(),
                            "store write failed after the batches were answered: they are lost \
                             if the broker stops"
                        );
                    }
                }
            }
            if unsynced.is_some_and(|since| since.elapsed() >= interval) {
                self.sync();
                unsynced = None;
            }
            if closing {
                return self.finish(unsynced.is_some());
            }
        }
    }

    /// Applies every batch of `group` in one transaction with `durability`.
    fn commit(
        &mut self,
        group: &[(StoreTicket, Vec<O>)],
        durability: redb::Durability,
    ) -> Result<(), String> {
        let result = self.try_commit(group, durability);
        if let Err(error) = &result {
            tracing::error!(file = %self.path.display(), %error, "store commit failed");
            // After an I/O error redb must be closed and opened again: the next commit does.
            self.db = None;
        }
        result
    }

    fn try_commit(
        &mut self,
        group: &[(StoreTicket, Vec<O>)],
        durability: redb::Durability,
    ) -> Result<(), String> {
        if self.db.is_none() {
            self.db = Some(db::open_database(&self.path).map_err(|e| e.to_string())?);
            self.reopened = true;
        }
        let Some(database) = &self.db else {
            return Err("the store file is not open".into());
        };
        let storage = |e: redb::Error| e.to_string();
        let mut txn = database.begin_write().map_err(|e| storage(e.into()))?;
        txn.set_durability(durability)
            .map_err(|e| storage(e.into()))?;
        (self.apply)(&txn, group, std::mem::take(&mut self.reopened)).map_err(storage)?;
        txn.commit().map_err(|e| storage(e.into()))?;
        self.counters.commits.fetch_add(1, Ordering::Relaxed);
        if matches!(durability, redb::Durability::Immediate) {
            self.counters.syncs.fetch_add(1, Ordering::Relaxed);
        }
        Ok(())
    }

    /// Syncs the commits made without syncing (an empty synced commit makes them durable).
    fn sync(&mut self) -> bool {
        match self.commit(&[], redb::Durability::Immediate) {
            Ok(()) => true,
            Err(error) => {
                tracing::error!(
                    file = %self.path.display(),
                    %error,
                    "store sync failed: batches answered since the last sync are lost if the \
                     broker stops"
                );
                false
            }
        }
    }

    fn failed(&mut self, group: &[(StoreTicket, Vec<O>)], error: &str) {
        self.counters
            .failed_batches
            .fetch_add(group.len() as u64, Ordering::Relaxed);
        for (ticket, _) in group {
            (self.answer)(StoreAnswer::Failed {
                ticket: *ticket,
                error: format!("{error} (file {})", self.path.display()),
            });
        }
    }

    /// Syncs what is not yet synced and closes the file.
    fn finish(&mut self, unsynced: bool) -> Result<(), StoreError> {
        if unsynced && !self.sync() {
            return Err(StoreError::Storage {
                path: self.path.clone(),
                reason: "the final sync failed: the last batches are not durable".into(),
            });
        }
        let stats = self.counters.snapshot();
        tracing::info!(
            file = %self.path.display(),
            batches = stats.batches,
            commits = stats.commits,
            syncs = stats.syncs,
            failed_batches = stats.failed_batches,
            "store closed"
        );
        if let Some(db) = self.db.take() {
            if let Err(error) = db.close() {
                tracing::warn!(file = %self.path.display(), %error, "closing the store file");
            }
        }
        Ok(())
    }
}

/// A group of batches, whether a close request came, and whether anything waits for one of
/// the batches.
type Gathered<O> = (Vec<(StoreTicket, Vec<O>)>, bool, bool);

/// `first` and every batch already queued behind it (at most [`MAX_GROUP`]).
fn gather<O>(first: Msg<O>, rx: &Receiver<Msg<O>>) -> Gathered<O> {
    let mut group = Vec::new();
    let Msg::Batch(ticket, ops, mut urgent) = first else {
        return (group, true, false);
    };
    group.push((ticket, ops));
    while group.len() < MAX_GROUP {
        match rx.try_recv() {
            Ok(Msg::Batch(ticket, ops, waited)) => {
                urgent |= waited;
                group.push((ticket, ops));
            }
            Ok(Msg::Close) => return (group, true, urgent),
            Err(TryRecvError::Empty | TryRecvError::Disconnected) => break,
        }
    }
    (group, false, urgent)
}
