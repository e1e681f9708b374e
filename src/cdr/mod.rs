//! Call detail records: one row per call, written off the call path.
//!
//! Calls hand finished records to a [`CdrSink`], which never blocks; a single writer task
//! batches them into the database through [`CdrStore`], rides out database outages with an
//! in-memory backlog, and journals every record to a JSON-lines file first, so what the
//! database does not have survives a shutdown or a crash and the next start replays it. Inserts are idempotent on the record id, so a batch that is
//! retried or replayed can never produce a second row for the same call.
//!
//! Agent-state records (one row per agent state change) take the same path: the sink takes
//! both kinds ([`CdrItem`]), and the writer puts both in the same transactions, backlog and
//! journal. A call in progress is journaled too (`CdrItem::Open`), so one cut short by a
//! crash still gets its record.

pub mod agent_time;
pub mod journal;
pub mod record;
pub mod report;
pub mod store;
pub mod writer;

use std::path::PathBuf;
use std::time::Duration;

pub use record::{
    AgentStateKind, AgentStateRecord, AgentTimeRecord, CallLabel, CdrRecord, Disposition, HangupBy,
    OfferOutcome, OfferRow, ParseEnumError, TransferKind, TransferRow, TransferTargetKind,
};
pub use report::{
    format_json, format_offers_json, format_offers_table, format_table, iso8601_utc, table_time_utc,
};
pub use store::{CdrStore, redact_url};
pub use writer::{
    CdrItem, CdrSink, CdrWriterConfig, CdrWriterHandle, ShutdownReport, WriterStats, spawn,
};

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

    #[error("CDR schema migration failed: {error}")]
    Migrate { error: sqlx::migrate::MigrateError },

    /// Not an outage: retrying cannot help, the binary and the database disagree.
    #[error(
        "CDR schema migration {version} was changed after this database applied it (its \
         checksum in _sqlx_migrations differs from the migration built into this hotline); \
         run the release that applied it, or repair the database by hand"
    )]
    MigrationChanged { version: i64 },

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

impl CdrError {
    /// True for errors that waiting cannot fix (the schema in the database is not the one
    /// this binary was built with): a server should refuse to start on these rather than
    /// treat them as an outage.
    pub fn is_schema_conflict(&self) -> bool {
        matches!(
            self,
            CdrError::MigrationChanged { .. }
                | CdrError::Migrate {
                    error: sqlx::migrate::MigrateError::VersionMissing(_)
                        | sqlx::migrate::MigrateError::Dirty(_)
                }
        )
    }
}
