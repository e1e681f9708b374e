//! Call detail records: one row per call, written off the call path.
//!
//! Calls hand finished records to a [`CdrSink`], which never blocks; a single writer task
//! batches them into the database through [`CdrStore`], rides out database outages with an
//! in-memory backlog, and at shutdown spools whatever it could not write to a JSON-lines file
//! that the next start replays. Inserts are idempotent on the record id, so a batch that is
//! retried or replayed can never produce a second row for the same call.

pub mod record;
pub mod report;
pub mod store;
pub mod writer;

use std::path::PathBuf;
use std::time::Duration;

pub use record::{CdrRecord, Disposition, HangupBy, ParseEnumError};
pub use report::{format_json, format_table, iso8601_utc, table_time_utc};
pub use store::{CdrStore, redact_url};
pub use writer::{CdrSink, CdrWriterConfig, CdrWriterHandle, ShutdownReport, WriterStats, spawn};

/// Every failure of the CDR layer. URLs in messages are passed through [`redact_url`] first,
/// because these messages end up in logs that operators paste into tickets. The underlying
/// error is part of the message rather than a `source()`, so one `{}` in a log line carries the
/// whole story and chain printers do not repeat it.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CdrError {
    #[error("CDR database URL {url:?} is not usable: {reason}")]
    BadUrl { url: String, reason: String },

    #[error("cannot connect to the CDR database at {url}: {error}")]
    Connect { url: String, error: sqlx::Error },

    #[error("CDR schema migration {version} ({name}) failed: {error}")]
    Migrate {
        version: i64,
        name: &'static str,
        error: sqlx::Error,
    },

    #[error("CDR database {operation} failed: {error}")]
    Query {
        operation: &'static str,
        error: sqlx::Error,
    },

    #[error("CDR database {operation} did not finish within {after:?}")]
    Timeout {
        operation: &'static str,
        after: Duration,
    },

    #[error("CDR row {id:?} in the database is unreadable: {reason}")]
    CorruptRow { id: String, reason: String },

    #[error("CDR spool file {}: {error}", path.display())]
    Spool {
        path: PathBuf,
        error: std::io::Error,
    },

    #[error("the CDR writer task is gone (it panicked or was aborted); its backlog is lost")]
    WriterGone,
}
