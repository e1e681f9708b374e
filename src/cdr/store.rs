//! The database side: one `AnyPool`, so the same code runs on SQLite (a single box) and
//! PostgreSQL (a shared reporting database) chosen by URL at run time.
//!
//! The schema is kept by sqlx's own migrator over migrations embedded at build time (so the
//! binary runs from any directory): it records each applied migration's SHA-384 in
//! `_sqlx_migrations` and refuses to start against a database whose applied migrations differ
//! from the binary's. Databases made by hotline's earlier hand-written runner (its
//! `hotline_migrations` table) are adopted on first contact.

use std::borrow::Cow;
use std::collections::HashMap;
use std::fmt;
use std::sync::OnceLock;
use std::time::Duration;

use sqlx::AnyConnection;
use sqlx::any::{AnyArguments, AnyConnectOptions, AnyPoolOptions, AnyRow};
use sqlx::migrate::{Migrate, MigrateError, Migration, MigrationType, Migrator};
use sqlx::query::Query;
use sqlx::{Any, AnyPool, ConnectOptions, Decode, Row, Type};

mod read;
mod url;
mod write;

use url::parse_target;
pub use url::redact_url;

use super::CdrError;
use super::record::{
    AgentStateRecord, AgentTimeRecord, CallLabel, CdrRecord, OfferOutcome, OfferRow, TransferRow,
};

/// The migrations, embedded. sqlx's naming: `<version>_<description>.sql`, the description's
/// underscores read as spaces. A file is never edited once released (the migrator would
/// refuse every database that applied it), only followed by a new one. The SQL is portable,
/// so both backends share the one directory; a test checks every file in it is listed here.
const MIGRATION_FILES: &[(i64, &str, &str)] = &[
    (1, "cdr", include_str!("../../migrations/0001_cdr.sql")),
    (
        2,
        "cdr flow details",
        include_str!("../../migrations/0002_cdr_flow_details.sql"),
    ),
    (
        3,
        "cdr agents queues",
        include_str!("../../migrations/0003_cdr_agents_queues.sql"),
    ),
    (
        4,
        "cdr labels version",
        include_str!("../../migrations/0004_cdr_labels_version.sql"),
    ),
    (
        5,
        "cdr wrap up",
        include_str!("../../migrations/0005_cdr_wrap_up.sql"),
    ),
    (
        6,
        "cdr caller index",
        include_str!("../../migrations/0006_cdr_caller_index.sql"),
    ),
    (
        7,
        "indicators",
        include_str!("../../migrations/0007_indicators.sql"),
    ),
];

/// sqlx's migrator over [`MIGRATION_FILES`]. Its own locking is off because `migrate` holds a
/// stronger lock of its own (the whole run is one transaction, see there).
fn migrator() -> &'static Migrator {
    static MIGRATOR: OnceLock<Migrator> = OnceLock::new();
    MIGRATOR.get_or_init(|| {
        let migrations = MIGRATION_FILES
            .iter()
            .map(|&(version, description, sql)| {
                Migration::new(
                    version,
                    Cow::Borrowed(description),
                    MigrationType::Simple,
                    Cow::Borrowed(sql),
                    false,
                )
            })
            .collect::<Vec<_>>();
        Migrator {
            migrations: Cow::Owned(migrations),
            locking: false,
            ..Migrator::DEFAULT
        }
    })
}

/// The bookkeeping table of hotline's hand-written runner before sqlx's migrator: its
/// versions 1 and 2 are the same SQL as the migrator's 1 and 2.
const LEGACY_MIGRATIONS_TABLE: &str = "hotline_migrations";

/// Any constant works as long as nothing else in the database uses it: "hotline" in ASCII.
const MIGRATION_LOCK_KEY: i64 = 0x0068_6f74_6c69_6e65;

/// Short, so a locked database fails the batch within a second and the writer goes back to
/// receiving, instead of SQLite's driver default of 5 s.
const SQLITE_BUSY_TIMEOUT_MS: u32 = 1_000;

/// Bounds how long an attempt waits for a connection (including sqlx's own reconnect retries),
/// so an unreachable server shows up as a failed attempt rather than a stall.
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(3);

/// Bind parameters per statement: the 999 that SQLite builds before 3.32 allow. Multi-row
/// inserts are chunked to stay under it, and so are `IN` lists.
const MAX_PARAMS: usize = 999;

/// The calls of one value of a label, for reports "by call type".
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct LabelGroup {
    /// None: the calls that never got the label.
    pub value: Option<String>,
    pub calls: i64,
    /// Answered by an agent.
    pub answered: i64,
    /// Abandoned while waiting in a queue.
    pub abandoned: i64,
    /// Total call time, INVITE to end.
    pub total_ms: i64,
}

/// A table written by multi-row `INSERT ... ON CONFLICT (key) DO NOTHING`.
struct Table {
    name: &'static str,
    columns: &'static [&'static str],
    key: &'static str,
}

const CDR: Table = Table {
    name: "cdr",
    columns: &[
        "id",
        "sip_call_id",
        "caller",
        "dialled",
        "start_ms",
        "answer_ms",
        "end_ms",
        "flow",
        "ivr_path",
        "digits",
        "disposition",
        "hangup_by",
        "sip_code",
        "end_reason",
        "language",
        "survey",
        "recordings",
        "queue",
        "queue_enter_ms",
        "queue_leave_ms",
        "wait_ms",
        "agent",
        "team",
        "talk_ms",
        "hold_ms",
        "wrap_up_ms",
        "abandoned",
        "flow_version",
        "wrap_disposition",
        "wrap_notes",
        "resolved",
        "ring_ms",
        "transfer_count",
    ],
    key: "id",
};

const LABELS: Table = Table {
    name: "cdr_labels",
    columns: &["call_id", "seq", "name", "value"],
    key: "call_id, seq",
};

const OFFERS: Table = Table {
    name: "cdr_offers",
    columns: &[
        "call_id",
        "seq",
        "agent",
        "queue",
        "ring_start_ms",
        "ring_end_ms",
        "outcome",
        "sip_code",
    ],
    key: "call_id, seq",
};

const TRANSFERS: Table = Table {
    name: "cdr_transfers",
    columns: &[
        "call_id",
        "seq",
        "at_ms",
        "kind",
        "target",
        "target_kind",
        "transferred_by",
        "reason",
    ],
    key: "call_id, seq",
};

const AGENT_STATES: Table = Table {
    name: "agent_states",
    columns: &["id", "agent", "state", "reason", "start_ms"],
    key: "id",
};

const AGENT_TIME: Table = Table {
    name: "agent_time",
    columns: &[
        "id",
        "agent",
        "team",
        "cell_ms",
        "available_ms",
        "ringing_ms",
        "on_call_ms",
        "on_hold_ms",
        "wrap_up_ms",
        "not_ready_ms",
    ],
    key: "id",
};

type AnyQuery<'q> = Query<'q, Any, AnyArguments<'q>>;

/// A child row with its call's id and its 1-based position.
struct Child<'a, T> {
    call_id: &'a str,
    seq: i32,
    row: &'a T,
}

fn children<'a, T>(
    records: &'a [CdrRecord],
    rows: impl Fn(&'a CdrRecord) -> &'a [T],
) -> Vec<Child<'a, T>> {
    records
        .iter()
        .flat_map(|rec| {
            rows(rec).iter().enumerate().map(move |(i, row)| Child {
                call_id: rec.id.as_str(),
                // A call with more than 2^31 offers is not a call.
                seq: i32::try_from(i + 1).unwrap_or(i32::MAX),
                row,
            })
        })
        .collect()
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Backend {
    Sqlite,
    Postgres,
}

/// The CDR table behind a connection pool. Cheap to clone: clones share the pool.
#[derive(Clone)]
pub struct CdrStore {
    pool: AnyPool,
    backend: Backend,
    /// Already redacted: this is only ever used in messages.
    url: String,
}

impl fmt::Debug for CdrStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CdrStore")
            .field("backend", &self.backend)
            .field("url", &self.url)
            .finish_non_exhaustive()
    }
}

impl CdrStore {
    /// Opens a pool. Accepts `sqlite://path`, `sqlite:path`, `postgres://...`,
    /// `postgresql://...`, or a bare file path (SQLite). SQLite files are created if missing.
    pub async fn connect(url: &str) -> Result<CdrStore, CdrError> {
        // Idempotent (guarded by a `Once` inside sqlx); must precede the first Any connection.
        sqlx::any::install_default_drivers();

        let target = parse_target(url)?;
        let redacted = redact_url(url);
        // Opened as needed. The API's store needs the most: two reports at once of two
        // queries each (`report::LANES`), with two to spare for its other reads and writes.
        let mut options = AnyPoolOptions::new()
            .max_connections(6)
            .acquire_timeout(ACQUIRE_TIMEOUT);
        if target.backend == Backend::Sqlite {
            // The busy timeout is per connection, so it must be set on every new one.
            options = options.after_connect(|conn, _meta| {
                Box::pin(async move {
                    let pragma = format!("PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS}");
                    sqlx::query(&pragma).execute(conn).await?;
                    Ok(())
                })
            });
        }
        let connect_options = target
            .url
            .parse::<AnyConnectOptions>()
            .map_err(|error| CdrError::BadUrl {
                url: redacted.clone(),
                reason: error.to_string(),
            })?
            // The writer reports failures itself, once per outage; sqlx would also warn about
            // every statement that waited out the busy timeout, on every retry.
            .disable_statement_logging();
        let pool = options
            .connect_with(connect_options)
            .await
            .map_err(|error| CdrError::Connect {
                url: redacted.clone(),
                error,
            })?;

        if target.backend == Backend::Sqlite {
            // WAL lets reports read while the writer writes. It is a property of the file, so
            // setting it once per open is enough.
            let mode: Option<String> = sqlx::query_scalar("PRAGMA journal_mode = WAL")
                .fetch_optional(&pool)
                .await
                .map_err(|error| CdrError::Connect {
                    url: redacted.clone(),
                    error,
                })?;
            if !mode
                .as_deref()
                .is_some_and(|m| m.eq_ignore_ascii_case("wal"))
            {
                tracing::debug!(url = %redacted, ?mode, "CDR SQLite database is not in WAL mode");
            }
        }

        Ok(CdrStore {
            pool,
            backend: target.backend,
            url: redacted,
        })
    }

    /// "sqlite" or "postgres".
    pub fn backend_name(&self) -> &'static str {
        match self.backend {
            Backend::Sqlite => "sqlite",
            Backend::Postgres => "postgres",
        }
    }

    /// The URL with any password masked.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Closes every pooled connection; releases SQLite file handles.
    pub async fn close(&self) {
        self.pool.close().await;
    }

    /// Brings the schema up to date with sqlx's migrator, adopting a database made by the
    /// earlier hand-written runner first.
    ///
    /// The whole run is one transaction that holds the database's write lock (SQLite: `BEGIN
    /// IMMEDIATE`; PostgreSQL: a transaction-scoped advisory lock), so servers starting
    /// together take turns, each migration commits or rolls back together with its
    /// bookkeeping row, and the adoption of a legacy database is never seen half done.
    ///
    /// Fails with [`CdrError::MigrationChanged`] if a migration this database applied has
    /// different SQL in this binary.
    pub async fn migrate(&self) -> Result<(), CdrError> {
        let failed = |error: sqlx::Error| CdrError::Migrate {
            error: MigrateError::Execute(error),
        };
        let mut tx = match self.backend {
            // A deferred SQLite transaction that has read cannot wait for the write lock
            // (it fails with SQLITE_BUSY at once); IMMEDIATE waits at BEGIN instead.
            Backend::Sqlite => self.pool.begin_with("BEGIN IMMEDIATE").await,
            Backend::Postgres => self.pool.begin().await,
        }
        .map_err(failed)?;
        if self.backend == Backend::Postgres {
            // Released by commit or rollback. Selected through FROM because the Any driver
            // cannot decode a `void` column.
            sqlx::query("SELECT 1 FROM pg_advisory_xact_lock($1)")
                .bind(MIGRATION_LOCK_KEY)
                .execute(&mut *tx)
                .await
                .map_err(failed)?;
        }
        let adopted = self.adopt_legacy(&mut tx).await?;
        tx.ensure_migrations_table().await.map_err(migrate_error)?;
        let before: Vec<i64> = tx
            .list_applied_migrations()
            .await
            .map_err(migrate_error)?
            .into_iter()
            .map(|m| m.version)
            .collect();
        migrator()
            .run_direct(&mut *tx)
            .await
            .map_err(migrate_error)?;
        tx.commit().await.map_err(failed)?;
        if !adopted.is_empty() {
            tracing::info!(
                versions = ?adopted,
                url = %self.url,
                "adopted a CDR database made by the earlier migration runner"
            );
        }
        for &(version, name, _) in MIGRATION_FILES {
            if !before.contains(&version) && !adopted.contains(&version) {
                tracing::info!(version, name, url = %self.url, "applied CDR schema migration");
            }
        }
        Ok(())
    }

    /// A database the hand-written runner made has `hotline_migrations` and no
    /// `_sqlx_migrations`: record its versions in sqlx's table with the checksums of the
    /// identical embedded migrations, so the migrator takes it from there. Returns the
    /// versions adopted.
    async fn adopt_legacy(&self, conn: &mut AnyConnection) -> Result<Vec<i64>, CdrError> {
        let failed = |error: sqlx::Error| CdrError::Migrate {
            error: MigrateError::Execute(error),
        };
        if !self
            .table_exists(conn, LEGACY_MIGRATIONS_TABLE)
            .await
            .map_err(failed)?
            || self
                .table_exists(conn, "_sqlx_migrations")
                .await
                .map_err(failed)?
        {
            return Ok(Vec::new());
        }
        let versions: Vec<i64> =
            sqlx::query_scalar("SELECT version FROM hotline_migrations ORDER BY version")
                .fetch_all(&mut *conn)
                .await
                .map_err(failed)?;
        conn.ensure_migrations_table()
            .await
            .map_err(migrate_error)?;
        for &version in &versions {
            let Some(migration) = migrator().iter().find(|m| m.version == version) else {
                // A newer runner than any release made: the migrator would refuse it too.
                return Err(CdrError::Migrate {
                    error: MigrateError::VersionMissing(version),
                });
            };
            sqlx::query(
                "INSERT INTO _sqlx_migrations \
                 (version, description, success, checksum, execution_time) \
                 VALUES ($1, $2, TRUE, $3, -1)",
            )
            .bind(version)
            .bind(migration.description.to_string())
            .bind(migration.checksum.to_vec())
            .execute(&mut *conn)
            .await
            .map_err(failed)?;
        }
        Ok(versions)
    }

    async fn table_exists(
        &self,
        conn: &mut AnyConnection,
        name: &str,
    ) -> Result<bool, sqlx::Error> {
        let sql = match self.backend {
            Backend::Sqlite => {
                "SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name = $1"
            }
            Backend::Postgres => {
                "SELECT COUNT(*) FROM information_schema.tables \
                 WHERE table_schema = current_schema() AND table_name = $1"
            }
        };
        let n: i64 = sqlx::query_scalar(sql).bind(name).fetch_one(conn).await?;
        Ok(n > 0)
    }
}

fn migrate_error(error: MigrateError) -> CdrError {
    match error {
        MigrateError::VersionMismatch(version) => CdrError::MigrationChanged { version },
        error => CdrError::Migrate { error },
    }
}

#[cfg(test)]
mod tests {
    use super::write::{encode_path, insert_sql};
    use super::*;

    #[test]
    fn placeholders_are_numbered_across_rows() {
        let sql = insert_sql(&AGENT_STATES, 2);
        assert_eq!(
            sql,
            "INSERT INTO agent_states (id, agent, state, reason, start_ms) VALUES \
             ($1, $2, $3, $4, $5), ($6, $7, $8, $9, $10) ON CONFLICT (id) DO NOTHING"
        );
        let sql = insert_sql(&OFFERS, 1);
        assert!(
            sql.ends_with("($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT (call_id, seq) DO NOTHING")
        );
        let sql = insert_sql(&CDR, 2);
        assert!(sql.starts_with("INSERT INTO cdr (id, sip_call_id,"));
        assert!(sql.contains("$66)"));
        assert!(!sql.contains("$67"));
        for table in [
            &CDR,
            &OFFERS,
            &TRANSFERS,
            &LABELS,
            &AGENT_STATES,
            &AGENT_TIME,
        ] {
            assert!(MAX_PARAMS / table.columns.len() >= 30, "{}", table.name);
        }
    }

    #[test]
    fn every_migration_file_is_embedded_in_order() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("migrations");
        let mut files: Vec<String> = std::fs::read_dir(&dir)
            .expect("migrations directory")
            .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
            .filter(|name| name.ends_with(".sql"))
            .collect();
        files.sort();
        let embedded: Vec<String> = MIGRATION_FILES
            .iter()
            .map(|(version, description, _)| {
                format!("{version:04}_{}.sql", description.replace(' ', "_"))
            })
            .collect();
        assert_eq!(files, embedded);
        for (name, (_, _, sql)) in files.iter().zip(MIGRATION_FILES) {
            let on_disk = std::fs::read_to_string(dir.join(name)).expect("read");
            assert_eq!(&on_disk, sql, "{name}");
        }
        let versions: Vec<i64> = migrator().iter().map(|m| m.version).collect();
        assert_eq!(versions, vec![1, 2, 3, 4, 5, 6, 7]);
    }

    #[test]
    fn path_is_stored_as_a_json_array() {
        assert_eq!(encode_path(&[]), "[]");
        let path = vec![
            "menu".to_owned(),
            "say \"hi\"".to_owned(),
            "menu".to_owned(),
        ];
        let text = encode_path(&path);
        assert_eq!(text, r#"["menu","say \"hi\"","menu"]"#);
        let back: Vec<String> = serde_json::from_str(&text).expect("valid JSON");
        assert_eq!(back, path);
    }

    fn target(url: &str) -> (Backend, String) {
        let t = parse_target(url).expect("accepted");
        (t.backend, t.url)
    }

    #[test]
    fn sqlite_forms_are_normalised_and_created_if_missing() {
        assert_eq!(
            target("sqlite:///var/lib/hotline/cdr.db"),
            (
                Backend::Sqlite,
                "sqlite:/var/lib/hotline/cdr.db?mode=rwc".into()
            )
        );
        assert_eq!(
            target("sqlite://data/cdr.db"),
            (Backend::Sqlite, "sqlite:data/cdr.db?mode=rwc".into())
        );
        assert_eq!(
            target("sqlite:data/cdr.db"),
            (Backend::Sqlite, "sqlite:data/cdr.db?mode=rwc".into())
        );
        assert_eq!(
            target("SQLite:////tmp/x.db?mode=ro"),
            (Backend::Sqlite, "sqlite:/tmp/x.db?mode=ro".into())
        );
        assert_eq!(
            target("sqlite:x.db?cache=shared"),
            (Backend::Sqlite, "sqlite:x.db?cache=shared&mode=rwc".into())
        );
    }

    #[test]
    fn bare_paths_mean_sqlite_and_are_escaped() {
        assert_eq!(
            target("/var/lib/hotline/cdr.db"),
            (
                Backend::Sqlite,
                "sqlite:/var/lib/hotline/cdr.db?mode=rwc".into()
            )
        );
        assert_eq!(
            target("cdr 100%?#.db"),
            (
                Backend::Sqlite,
                "sqlite:cdr%20100%25%3F%23.db?mode=rwc".into()
            )
        );
    }

    #[test]
    fn postgres_urls_pass_through() {
        for url in [
            "postgres://u:p@db:5432/hotline",
            "postgresql://db/hotline?sslmode=require",
        ] {
            assert_eq!(target(url), (Backend::Postgres, url.to_owned()));
        }
    }

    #[test]
    fn unusable_urls_are_rejected_without_leaking_passwords() {
        for url in ["", "   ", "sqlite://", "sqlite:?mode=rwc"] {
            assert!(
                matches!(parse_target(url), Err(CdrError::BadUrl { .. })),
                "{url:?}"
            );
        }
        let err = parse_target("mysql://root:hunter2@db/cdr")
            .err()
            .expect("mysql is not supported");
        let message = err.to_string();
        assert!(message.contains("unsupported scheme"), "{message}");
        assert!(!message.contains("hunter2"), "{message}");
    }

    #[test]
    fn redaction_masks_passwords_only() {
        assert_eq!(
            redact_url("postgres://hotline:s3cr@t@db.local:5432/cdr?sslmode=require"),
            "postgres://hotline:***@db.local:5432/cdr?sslmode=require"
        );
        assert_eq!(
            redact_url("postgres://db/cdr?user=x&password=pw&sslpassword=k"),
            "postgres://db/cdr?user=x&password=***&sslpassword=***"
        );
        assert_eq!(
            redact_url("postgres://hotline@db/cdr"),
            "postgres://hotline@db/cdr"
        );
        assert_eq!(redact_url("sqlite:///tmp/a.db"), "sqlite:///tmp/a.db");
        assert_eq!(redact_url("/tmp/a.db"), "/tmp/a.db");
        assert_eq!(
            redact_url("postgres://u:pa/ss@db/cdr"),
            "postgres://u:***@db/cdr"
        );
    }
}
