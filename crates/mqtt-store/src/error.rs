//! What can go wrong with the store file: every message names the file and says what to do.

use std::path::PathBuf;
use std::time::Duration;

/// An error of the store. Each message names the file and says what an operator can do.
#[non_exhaustive]
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The data directory or the file could not be created, opened, read or written.
    #[error(
        "cannot use the store file {path}: {source}; check that the directory exists, is \
         writable and that the disk has space"
    )]
    Io {
        /// The file.
        path: PathBuf,
        /// What the operating system said.
        #[source]
        source: std::io::Error,
    },
    /// Another process (a broker still running?) has the file open.
    #[error(
        "the store file {path} is in use by another process: stop the other broker, or give \
         this one another data directory"
    )]
    Locked {
        /// The file.
        path: PathBuf,
    },
    /// The file is not a store, or the database inside it is damaged (truncated, overwritten).
    #[error(
        "the store file {path} is damaged or is not a store ({reason}): move it aside to start \
         empty, or restore a backup"
    )]
    Damaged {
        /// The file.
        path: PathBuf,
        /// What the database engine found.
        reason: String,
    },
    /// A record in the file cannot be decoded.
    #[error(
        "the store file {path} is corrupt: table `{table}`, key {key}: {reason}; move it aside \
         to start empty, or restore a backup"
    )]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// The table holding the record.
        table: &'static str,
        /// The record's key, printable.
        key: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The file was written in a format this build does not know (a newer version).
    #[error(
        "the store file {path} has format {found}, this build reads format {supported}: run the \
         version that wrote it, or move the file aside to start empty"
    )]
    UnsupportedFormat {
        /// The file.
        path: PathBuf,
        /// The format version found in the file.
        found: u64,
        /// The format version this build reads and writes.
        supported: u64,
    },
    /// The database engine failed for another reason.
    #[error("the store file {path} cannot be used: {reason}; check the disk and the logs")]
    Storage {
        /// The file.
        path: PathBuf,
        /// What the database engine said.
        reason: String,
    },
    /// The writer thread did not finish in time when the store was closed.
    #[error(
        "the writer of the store file {path} did not finish within {waited:?}: the last \
         batches may not be durable; check the disk (a stalled or full device?)"
    )]
    CloseTimeout {
        /// The file.
        path: PathBuf,
        /// How long `close` waited.
        waited: Duration,
    },
    /// The writer thread panicked (a bug).
    #[error(
        "the writer of the store file {path} stopped unexpectedly: the last batches may not be \
         durable; please report this with the logs"
    )]
    WriterPanicked {
        /// The file.
        path: PathBuf,
    },
    /// The writer thread could not be started.
    #[error("cannot start the writer thread of the store file {path}: {source}")]
    Spawn {
        /// The file.
        path: PathBuf,
        /// What the operating system said.
        #[source]
        source: std::io::Error,
    },
}

impl StoreError {
    /// Maps an error of the database engine met while opening or loading `path`.
    pub(crate) fn from_redb(path: PathBuf, err: redb::Error) -> Self {
        match err {
            redb::Error::DatabaseAlreadyOpen => Self::Locked { path },
            redb::Error::Corrupted(reason) => Self::Damaged { path, reason },
            redb::Error::Io(source) if source.kind() == std::io::ErrorKind::InvalidData => {
                Self::Damaged {
                    path,
                    reason: source.to_string(),
                }
            }
            redb::Error::Io(source) => Self::Io { path, source },
            redb::Error::RepairAborted => Self::Damaged {
                path,
                reason: "the repair after a crash did not complete".into(),
            },
            redb::Error::UpgradeRequired(v) => Self::Damaged {
                path,
                reason: format!("an old database file format ({v})"),
            },
            other => Self::Storage {
                path,
                reason: other.to_string(),
            },
        }
    }
}
