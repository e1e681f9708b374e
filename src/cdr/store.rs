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

    /// Inserts call records, with their offer and transfer rows, and agent-state records, all
    /// in one transaction. Rows whose key is already stored (a call's id, a child's (call id,
    /// sequence), an agent state's id) are skipped, which is what makes retrying a batch after
    /// an ambiguous failure (a timeout during commit, a crash before the spool was removed)
    /// safe, and fills in child rows a call row may be missing.
    pub async fn write_batch(
        &self,
        calls: &[CdrRecord],
        agent_states: &[AgentStateRecord],
    ) -> Result<(), CdrError> {
        self.write_rows(calls, agent_states, &[]).await
    }

    /// Like [`CdrStore::write_batch`], with agents' time rows too.
    pub async fn write_rows(
        &self,
        calls: &[CdrRecord],
        agent_states: &[AgentStateRecord],
        agent_time: &[AgentTimeRecord],
    ) -> Result<(), CdrError> {
        if calls.is_empty() && agent_states.is_empty() && agent_time.is_empty() {
            return Ok(());
        }
        let failed = |error| CdrError::Query {
            operation: "insert batch",
            error,
        };
        let mut tx = self.pool.begin().await.map_err(failed)?;
        insert_rows(&mut tx, &CDR, calls, bind_call)
            .await
            .map_err(failed)?;
        let offers = children(calls, |rec| &rec.offers);
        insert_rows(&mut tx, &OFFERS, &offers, bind_offer)
            .await
            .map_err(failed)?;
        let transfers = children(calls, |rec| &rec.transfers);
        insert_rows(&mut tx, &TRANSFERS, &transfers, bind_transfer)
            .await
            .map_err(failed)?;
        let labels = children(calls, |rec| &rec.labels);
        insert_rows(&mut tx, &LABELS, &labels, bind_label)
            .await
            .map_err(failed)?;
        for rec in calls
            .iter()
            .filter(|r| super::record::has_number(&r.caller))
        {
            link_caller(&mut tx, rec).await.map_err(failed)?;
        }
        insert_rows(&mut tx, &AGENT_STATES, agent_states, bind_agent_state)
            .await
            .map_err(failed)?;
        insert_rows(&mut tx, &AGENT_TIME, agent_time, bind_agent_time)
            .await
            .map_err(failed)?;
        tx.commit().await.map_err(failed)
    }

    /// Call records only; see [`CdrStore::write_batch`].
    pub async fn insert_batch(&self, records: &[CdrRecord]) -> Result<(), CdrError> {
        self.write_batch(records, &[]).await
    }

    /// Agent-state records only; see [`CdrStore::write_batch`].
    pub async fn insert_agent_states(&self, states: &[AgentStateRecord]) -> Result<(), CdrError> {
        self.write_batch(&[], states).await
    }

    /// The rows of a grouping query whose first `keys` columns are text (NULL: None) and the
    /// rest integers (NULL: 0), for reports that sum in the database. The SQL must be the
    /// same on both backends and its integers BIGINT (PostgreSQL's SUM of a BIGINT is
    /// NUMERIC: cast it).
    pub async fn aggregate(
        &self,
        sql: &str,
        params: &[i64],
        keys: usize,
    ) -> Result<Vec<(Vec<Option<String>>, Vec<i64>)>, CdrError> {
        let mut query = sqlx::query(sql);
        for p in params {
            query = query.bind(*p);
        }
        let rows = query
            .fetch_all(&self.pool)
            .await
            .map_err(|error| CdrError::Query {
                operation: "sum for a report",
                error,
            })?;
        rows.iter()
            .map(|row| {
                let failed = |error| CdrError::Query {
                    operation: "read a report row",
                    error,
                };
                let mut texts = Vec::with_capacity(keys);
                for i in 0..keys {
                    texts.push(row.try_get::<Option<String>, _>(i).map_err(failed)?);
                }
                let mut numbers = Vec::with_capacity(row.len().saturating_sub(keys));
                for i in keys..row.len() {
                    numbers.push(
                        row.try_get::<Option<i64>, _>(i)
                            .map_err(failed)?
                            .unwrap_or(0),
                    );
                }
                Ok((texts, numbers))
            })
            .collect()
    }

    /// Stores a supervisor's QA score of a call (0-100), replacing their earlier one.
    pub async fn score_call(
        &self,
        call_id: &str,
        scorer: &str,
        score: u8,
        notes: Option<&str>,
        scored_ms: i64,
    ) -> Result<(), CdrError> {
        let failed = |error| CdrError::Query {
            operation: "store a QA score",
            error,
        };
        sqlx::query(
            "INSERT INTO qa_scores (call_id, scorer, score, scored_ms, notes) \
             VALUES ($1, $2, $3, $4, $5) ON CONFLICT (call_id, scorer) DO UPDATE SET \
             score = excluded.score, scored_ms = excluded.scored_ms, notes = excluded.notes",
        )
        .bind(call_id)
        .bind(scorer)
        .bind(i32::from(score))
        .bind(scored_ms)
        .bind(notes)
        .execute(&self.pool)
        .await
        .map_err(failed)?;
        Ok(())
    }

    /// Calls grouped by the value of one label (a call type, a VIP tier), most calls first;
    /// calls without the label form the group `None`. The same SQL on both backends.
    pub async fn by_label(&self, name: &str) -> Result<Vec<LabelGroup>, CdrError> {
        let failed = |error| CdrError::Query {
            operation: "group calls by label",
            error,
        };
        // SUM over BIGINT is NUMERIC on PostgreSQL, which the Any driver does not read.
        let totals = "COUNT(*) AS calls, \
             CAST(SUM(CASE WHEN c.agent IS NOT NULL THEN 1 ELSE 0 END) AS BIGINT) AS answered, \
             CAST(SUM(c.abandoned) AS BIGINT) AS abandoned, \
             CAST(SUM(c.end_ms - c.start_ms) AS BIGINT) AS total_ms";
        let labelled = format!(
            "SELECT l.value AS value, {totals} FROM cdr_labels l JOIN cdr c ON c.id = l.call_id \
             WHERE l.name = $1 GROUP BY l.value ORDER BY calls DESC, value"
        );
        let unlabelled = format!(
            "SELECT {totals} FROM cdr c WHERE NOT EXISTS \
             (SELECT 1 FROM cdr_labels l WHERE l.call_id = c.id AND l.name = $1)"
        );
        let group = |row: &AnyRow, value: Option<String>| -> Result<LabelGroup, CdrError> {
            Ok(LabelGroup {
                value,
                calls: column(row, "calls")?,
                answered: column::<Option<i64>>(row, "answered")?.unwrap_or(0),
                abandoned: column::<Option<i64>>(row, "abandoned")?.unwrap_or(0),
                total_ms: column::<Option<i64>>(row, "total_ms")?.unwrap_or(0),
            })
        };
        let mut out = Vec::new();
        for row in sqlx::query(&labelled)
            .bind(name)
            .fetch_all(&self.pool)
            .await
            .map_err(failed)?
        {
            let value: String = column(&row, "value")?;
            out.push(group(&row, Some(value))?);
        }
        let row = sqlx::query(&unlabelled)
            .bind(name)
            .fetch_one(&self.pool)
            .await
            .map_err(failed)?;
        let rest = group(&row, None)?;
        if rest.calls > 0 {
            out.push(rest);
        }
        Ok(out)
    }

    /// The latest calls an agent answered that have recordings, newest first (the QA list).
    pub async fn recorded(&self, n: u32) -> Result<Vec<CdrRecord>, CdrError> {
        self.newest(
            "WHERE agent IS NOT NULL AND recordings IS NOT NULL AND recordings <> '[]'",
            n,
            "read recorded calls",
        )
        .await
    }

    /// The `n` most recent calls by start time, newest first.
    pub async fn last(&self, n: u32) -> Result<Vec<CdrRecord>, CdrError> {
        self.newest("", n, "read last records").await
    }

    /// The `n` most recent calls that `filter` (a fixed WHERE clause) keeps.
    async fn newest(
        &self,
        filter: &str,
        n: u32,
        operation: &'static str,
    ) -> Result<Vec<CdrRecord>, CdrError> {
        let sql = format!(
            "SELECT {} FROM cdr {filter} ORDER BY start_ms DESC, id DESC LIMIT $1",
            CDR.columns.join(", ")
        );
        let rows = sqlx::query(&sql)
            .bind(i64::from(n))
            .fetch_all(&self.pool)
            .await
            .map_err(|error| CdrError::Query { operation, error })?;
        self.records(&rows).await
    }

    pub async fn count(&self) -> Result<i64, CdrError> {
        self.count_rows("cdr").await
    }

    /// Rows in `cdr_offers`, `cdr_transfers` or `agent_states` (or `cdr`).
    pub async fn count_rows(&self, table: &'static str) -> Result<i64, CdrError> {
        debug_assert!(
            ["cdr", OFFERS.name, TRANSFERS.name, AGENT_STATES.name].contains(&table),
            "{table}"
        );
        sqlx::query_scalar(&format!("SELECT COUNT(*) FROM {table}"))
            .fetch_one(&self.pool)
            .await
            .map_err(|error| CdrError::Query {
                operation: "count records",
                error,
            })
    }

    /// Every record for one SIP Call-ID, oldest first. Usually one; more if a UA reused the id.
    pub async fn by_sip_call_id(&self, sip_call_id: &str) -> Result<Vec<CdrRecord>, CdrError> {
        let sql = format!(
            "SELECT {} FROM cdr WHERE sip_call_id = $1 ORDER BY start_ms, id",
            CDR.columns.join(", ")
        );
        let rows = sqlx::query(&sql)
            .bind(sip_call_id)
            .fetch_all(&self.pool)
            .await
            .map_err(|error| CdrError::Query {
                operation: "read records by SIP Call-ID",
                error,
            })?;
        self.records(&rows).await
    }

    /// A caller's `n` most recent calls, newest first (for the agent's screen pop).
    pub async fn by_caller(&self, caller: &str, n: u32) -> Result<Vec<CdrRecord>, CdrError> {
        let sql = format!(
            "SELECT {} FROM cdr WHERE caller = $1 ORDER BY start_ms DESC, id DESC LIMIT $2",
            CDR.columns.join(", ")
        );
        let rows = sqlx::query(&sql)
            .bind(caller)
            .bind(i64::from(n))
            .fetch_all(&self.pool)
            .await
            .map_err(|error| CdrError::Query {
                operation: "read a caller's calls",
                error,
            })?;
        self.records(&rows).await
    }

    /// One call by hotline's call id, or else every call with that SIP Call-ID.
    pub async fn find(&self, call: &str) -> Result<Vec<CdrRecord>, CdrError> {
        match self.by_id(call).await? {
            Some(rec) => Ok(vec![rec]),
            None => self.by_sip_call_id(call).await,
        }
    }

    /// One call by hotline's call id.
    pub async fn by_id(&self, id: &str) -> Result<Option<CdrRecord>, CdrError> {
        let sql = format!("SELECT {} FROM cdr WHERE id = $1", CDR.columns.join(", "));
        let rows = sqlx::query(&sql)
            .bind(id)
            .fetch_all(&self.pool)
            .await
            .map_err(|error| CdrError::Query {
                operation: "read a record by id",
                error,
            })?;
        Ok(self.records(&rows).await?.pop())
    }

    /// Agent-state records in time order, of one agent or of all.
    /// For sticky routing at start: each caller's most recent answering agent among calls
    /// that ended at or after `since_ms`, newest first, at most `limit` callers.
    pub async fn last_agents(
        &self,
        since_ms: i64,
        limit: usize,
    ) -> Result<Vec<(String, String, i64)>, CdrError> {
        let rows = sqlx::query(
            "SELECT caller, agent, end_ms FROM cdr WHERE agent IS NOT NULL AND end_ms >= $1 \
             ORDER BY end_ms DESC LIMIT $2",
        )
        .bind(since_ms)
        .bind(limit.saturating_mul(4).min(i64::MAX as usize) as i64)
        .fetch_all(&self.pool)
        .await
        .map_err(|error| CdrError::Query {
            operation: "read last agents",
            error,
        })?;
        let mut seen = std::collections::HashSet::new();
        let mut out = Vec::new();
        for row in rows {
            let caller: String = row.try_get("caller").unwrap_or_default();
            let agent: String = row.try_get("agent").unwrap_or_default();
            let end_ms: i64 = row.try_get("end_ms").unwrap_or_default();
            if !caller.is_empty() && !agent.is_empty() && seen.insert(caller.clone()) {
                out.push((caller, agent, end_ms));
                if out.len() >= limit {
                    break;
                }
            }
        }
        Ok(out)
    }

    pub async fn agent_states(
        &self,
        agent: Option<&str>,
    ) -> Result<Vec<AgentStateRecord>, CdrError> {
        let columns = AGENT_STATES.columns.join(", ");
        let query_failed = |error| CdrError::Query {
            operation: "read agent states",
            error,
        };
        let rows = match agent {
            Some(agent) => {
                let sql = format!(
                    "SELECT {columns} FROM agent_states WHERE agent = $1 ORDER BY start_ms, id"
                );
                sqlx::query(&sql)
                    .bind(agent)
                    .fetch_all(&self.pool)
                    .await
                    .map_err(query_failed)?
            }
            None => {
                let sql =
                    format!("SELECT {columns} FROM agent_states ORDER BY start_ms, agent, id");
                sqlx::query(&sql)
                    .fetch_all(&self.pool)
                    .await
                    .map_err(query_failed)?
            }
        };
        rows.iter().map(agent_state_from_row).collect()
    }

    /// Call rows to records, with their offers and transfers.
    async fn records(&self, rows: &[AnyRow]) -> Result<Vec<CdrRecord>, CdrError> {
        let mut records = rows
            .iter()
            .map(record_from_row)
            .collect::<Result<Vec<_>, _>>()?;
        if records.is_empty() {
            return Ok(records);
        }
        let ids: Vec<&str> = records.iter().map(|r| r.id.as_str()).collect();
        let mut offers: HashMap<String, Vec<OfferRow>> = HashMap::new();
        for row in self.child_rows(&OFFERS, &ids).await? {
            let call_id: String = column(&row, "call_id")?;
            let offer = offer_from_row(&row, &call_id)?;
            offers.entry(call_id).or_default().push(offer);
        }
        let mut transfers: HashMap<String, Vec<TransferRow>> = HashMap::new();
        for row in self.child_rows(&TRANSFERS, &ids).await? {
            let call_id: String = column(&row, "call_id")?;
            let transfer = transfer_from_row(&row, &call_id)?;
            transfers.entry(call_id).or_default().push(transfer);
        }
        let mut labels: HashMap<String, Vec<CallLabel>> = HashMap::new();
        for row in self.child_rows(&LABELS, &ids).await? {
            let call_id: String = column(&row, "call_id")?;
            labels.entry(call_id).or_default().push(CallLabel {
                name: column(&row, "name")?,
                value: column(&row, "value")?,
            });
        }
        for rec in &mut records {
            rec.offers = offers.remove(&rec.id).unwrap_or_default();
            rec.transfers = transfers.remove(&rec.id).unwrap_or_default();
            rec.labels = labels.remove(&rec.id).unwrap_or_default();
        }
        Ok(records)
    }

    /// The child rows of these calls, in (call, sequence) order.
    async fn child_rows(&self, table: &Table, ids: &[&str]) -> Result<Vec<AnyRow>, CdrError> {
        let mut out = Vec::new();
        for chunk in ids.chunks(MAX_PARAMS) {
            let placeholders: Vec<String> = (1..=chunk.len()).map(|i| format!("${i}")).collect();
            let sql = format!(
                "SELECT {} FROM {} WHERE call_id IN ({}) ORDER BY call_id, seq",
                table.columns.join(", "),
                table.name,
                placeholders.join(", ")
            );
            let mut query = sqlx::query(&sql);
            for id in chunk {
                query = query.bind(*id);
            }
            out.extend(
                query
                    .fetch_all(&self.pool)
                    .await
                    .map_err(|error| CdrError::Query {
                        operation: "read offers, transfers and labels",
                        error,
                    })?,
            );
        }
        Ok(out)
    }
}

fn migrate_error(error: MigrateError) -> CdrError {
    match error {
        MigrateError::VersionMismatch(version) => CdrError::MigrationChanged { version },
        error => CdrError::Migrate { error },
    }
}

/// Inserts `rows` into `table` in as few statements as the parameter limit allows.
async fn insert_rows<R>(
    conn: &mut AnyConnection,
    table: &Table,
    rows: &[R],
    bind: for<'q> fn(AnyQuery<'q>, &'q R) -> AnyQuery<'q>,
) -> Result<(), sqlx::Error> {
    let per_statement = MAX_PARAMS / table.columns.len();
    for chunk in rows.chunks(per_statement) {
        let sql = insert_sql(table, chunk.len());
        let mut query = sqlx::query(&sql);
        for row in chunk {
            query = bind(query, row);
        }
        query.execute(&mut *conn).await?;
    }
    Ok(())
}

/// `$n` placeholders: PostgreSQL's native form, and SQLite accepts `$NNN` as numbered
/// parameters too (sqlx binds them by number), so one statement text serves both.
fn insert_sql(table: &Table, rows: usize) -> String {
    let width = table.columns.len();
    let mut sql = String::with_capacity(100 + rows * width * 5);
    sql.push_str("INSERT INTO ");
    sql.push_str(table.name);
    sql.push_str(" (");
    sql.push_str(&table.columns.join(", "));
    sql.push_str(") VALUES ");
    for row in 0..rows {
        if row > 0 {
            sql.push_str(", ");
        }
        sql.push('(');
        for col in 0..width {
            if col > 0 {
                sql.push_str(", ");
            }
            sql.push('$');
            sql.push_str(&(row * width + col + 1).to_string());
        }
        sql.push(')');
    }
    sql.push_str(" ON CONFLICT (");
    sql.push_str(table.key);
    sql.push_str(") DO NOTHING");
    sql
}

/// In the order of `CDR.columns`.
fn bind_call<'q>(query: AnyQuery<'q>, rec: &'q CdrRecord) -> AnyQuery<'q> {
    query
        .bind(rec.id.as_str())
        .bind(rec.sip_call_id.as_str())
        .bind(rec.caller.as_str())
        .bind(rec.dialled.as_str())
        .bind(rec.start_ms)
        .bind(rec.answer_ms)
        .bind(rec.end_ms)
        .bind(rec.flow.as_deref())
        .bind(encode_path(&rec.ivr_path))
        .bind(rec.digits.as_str())
        .bind(rec.disposition.as_str())
        .bind(rec.hangup_by.as_str())
        // The Any driver has no unsigned types.
        .bind(i32::from(rec.sip_code))
        .bind(rec.end_reason.as_str())
        .bind(rec.language.as_deref())
        .bind(encode_pairs(&rec.survey))
        .bind(encode_path(&rec.recordings))
        .bind(rec.queue.as_deref())
        .bind(rec.queue_enter_ms)
        .bind(rec.queue_leave_ms)
        .bind(rec.wait_ms)
        .bind(rec.agent.as_deref())
        .bind(rec.team.as_deref())
        .bind(rec.talk_ms)
        .bind(rec.hold_ms)
        .bind(rec.wrap_up_ms)
        .bind(i32::from(rec.abandoned))
        .bind(rec.flow_version.as_deref())
        .bind(rec.wrap_disposition.as_deref())
        .bind(rec.wrap_notes.as_deref())
        .bind(rec.resolved.map(i32::from))
        .bind(answer_ring_ms(rec))
        .bind(i32::try_from(rec.transfers.len()).unwrap_or(i32::MAX))
}

/// Links a stored call with the same number's calls before and after it (`prev_ms`: the
/// latest earlier call that was not blocked; `next_ms`: the earliest later call of any kind),
/// in both directions, so the links are right whatever order calls are stored in. Each
/// statement touches the new row and its neighbours only (the call just before it; the
/// calls after it up to the first that got in), found on the (caller, start_ms) index, and
/// running them again changes nothing.
async fn link_caller(
    tx: &mut sqlx::Transaction<'_, Any>,
    rec: &CdrRecord,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE cdr SET \
         prev_ms = (SELECT MAX(p.start_ms) FROM cdr p WHERE p.caller = $1 AND p.start_ms < $2 \
                    AND p.disposition <> 'blocked'), \
         next_ms = (SELECT MIN(n.start_ms) FROM cdr n WHERE n.caller = $1 AND n.start_ms > $2) \
         WHERE id = $3",
    )
    .bind(rec.caller.as_str())
    .bind(rec.start_ms)
    .bind(rec.id.as_str())
    .execute(&mut **tx)
    .await?;
    sqlx::query(
        "UPDATE cdr SET next_ms = $2 WHERE caller = $1 \
         AND start_ms = (SELECT MAX(p.start_ms) FROM cdr p WHERE p.caller = $1 AND p.start_ms < $2) \
         AND (next_ms IS NULL OR next_ms > $2)",
    )
    .bind(rec.caller.as_str())
    .bind(rec.start_ms)
    .execute(&mut **tx)
    .await?;
    if rec.disposition != super::record::Disposition::Blocked {
        sqlx::query(
            "UPDATE cdr SET prev_ms = $2 WHERE caller = $1 AND start_ms > $2 \
             AND start_ms <= COALESCE((SELECT MIN(n.start_ms) FROM cdr n WHERE n.caller = $1 \
                 AND n.start_ms > $2 AND n.disposition <> 'blocked'), 9223372036854775807) \
             AND (prev_ms IS NULL OR prev_ms < $2)",
        )
        .bind(rec.caller.as_str())
        .bind(rec.start_ms)
        .execute(&mut **tx)
        .await?;
    }
    Ok(())
}

/// How long the answering agent's phone rang: the ring time before answer of the indicators.
fn answer_ring_ms(rec: &CdrRecord) -> Option<i64> {
    rec.offers
        .iter()
        .rev()
        .find(|o| o.outcome == OfferOutcome::Answered)
        .map(|o| o.ring_end_ms - o.ring_start_ms)
}

fn bind_label<'q, 'a>(query: AnyQuery<'q>, label: &'q Child<'a, CallLabel>) -> AnyQuery<'q> {
    query
        .bind(label.call_id)
        .bind(label.seq)
        .bind(label.row.name.as_str())
        .bind(label.row.value.as_str())
}

fn bind_offer<'q, 'a>(query: AnyQuery<'q>, offer: &'q Child<'a, OfferRow>) -> AnyQuery<'q> {
    let row = offer.row;
    query
        .bind(offer.call_id)
        .bind(offer.seq)
        .bind(row.agent.as_str())
        .bind(row.queue.as_deref())
        .bind(row.ring_start_ms)
        .bind(row.ring_end_ms)
        .bind(row.outcome.as_str())
        .bind(row.sip_code.map(i32::from))
}

fn bind_transfer<'q, 'a>(
    query: AnyQuery<'q>,
    transfer: &'q Child<'a, TransferRow>,
) -> AnyQuery<'q> {
    let row = transfer.row;
    query
        .bind(transfer.call_id)
        .bind(transfer.seq)
        .bind(row.at_ms)
        .bind(row.kind.as_str())
        .bind(row.target.as_str())
        .bind(row.target_kind.as_str())
        .bind(row.by.as_str())
        .bind(row.reason.as_deref())
}

fn bind_agent_time<'q>(query: AnyQuery<'q>, time: &'q AgentTimeRecord) -> AnyQuery<'q> {
    query
        .bind(time.id.as_str())
        .bind(time.agent.as_str())
        .bind(time.team.as_deref())
        .bind(time.cell_ms)
        .bind(time.available_ms)
        .bind(time.ringing_ms)
        .bind(time.on_call_ms)
        .bind(time.on_hold_ms)
        .bind(time.wrap_up_ms)
        .bind(time.not_ready_ms)
}

fn bind_agent_state<'q>(query: AnyQuery<'q>, state: &'q AgentStateRecord) -> AnyQuery<'q> {
    query
        .bind(state.id.as_str())
        .bind(state.agent.as_str())
        .bind(state.state.as_str())
        .bind(state.reason.as_deref())
        .bind(state.start_ms)
}

/// Built through `Value` rather than `serde_json::to_string`, whose error case cannot happen
/// for a list of strings but would still need handling.
fn encode_path(path: &[String]) -> String {
    serde_json::Value::Array(
        path.iter()
            .cloned()
            .map(serde_json::Value::String)
            .collect(),
    )
    .to_string()
}

fn encode_pairs(pairs: &[(String, String)]) -> String {
    serde_json::Value::Array(
        pairs
            .iter()
            .map(|(k, v)| {
                serde_json::Value::Array(vec![
                    serde_json::Value::String(k.clone()),
                    serde_json::Value::String(v.clone()),
                ])
            })
            .collect(),
    )
    .to_string()
}

fn corrupt(id: &str, reason: String) -> CdrError {
    CdrError::CorruptRow {
        id: id.to_owned(),
        reason,
    }
}

fn parsed<T: std::str::FromStr>(id: &str, text: String) -> Result<T, CdrError>
where
    T::Err: fmt::Display,
{
    text.parse().map_err(|e: T::Err| corrupt(id, e.to_string()))
}

fn record_from_row(row: &AnyRow) -> Result<CdrRecord, CdrError> {
    let id: String = column(row, "id")?;
    let corrupt = |reason: String| corrupt(&id, reason);

    let path_text: String = column(row, "ivr_path")?;
    let ivr_path: Vec<String> = serde_json::from_str(&path_text)
        .map_err(|e| corrupt(format!("ivr_path is not a JSON array of strings: {e}")))?;
    let disposition = parsed(&id, column(row, "disposition")?)?;
    let hangup_by = parsed(&id, column(row, "hangup_by")?)?;
    let code: i64 = column(row, "sip_code")?;
    let sip_code = u16::try_from(code)
        .map_err(|_| corrupt(format!("sip_code {code} is not a SIP status code")))?;
    let abandoned: i64 = column(row, "abandoned")?;

    Ok(CdrRecord {
        sip_call_id: column(row, "sip_call_id")?,
        caller: column(row, "caller")?,
        dialled: column(row, "dialled")?,
        start_ms: column(row, "start_ms")?,
        answer_ms: column(row, "answer_ms")?,
        end_ms: column(row, "end_ms")?,
        flow: column(row, "flow")?,
        ivr_path,
        digits: column(row, "digits")?,
        disposition,
        hangup_by,
        sip_code,
        end_reason: column(row, "end_reason")?,
        language: column(row, "language")?,
        survey: match column::<Option<String>>(row, "survey")? {
            None => Vec::new(),
            Some(t) => serde_json::from_str(&t)
                .map_err(|e| corrupt(format!("survey is not a JSON list of pairs: {e}")))?,
        },
        recordings: match column::<Option<String>>(row, "recordings")? {
            None => Vec::new(),
            Some(t) => serde_json::from_str(&t)
                .map_err(|e| corrupt(format!("recordings is not a JSON array: {e}")))?,
        },
        queue: column(row, "queue")?,
        queue_enter_ms: column(row, "queue_enter_ms")?,
        queue_leave_ms: column(row, "queue_leave_ms")?,
        wait_ms: column(row, "wait_ms")?,
        agent: column(row, "agent")?,
        team: column(row, "team")?,
        talk_ms: column(row, "talk_ms")?,
        hold_ms: column(row, "hold_ms")?,
        wrap_up_ms: column(row, "wrap_up_ms")?,
        abandoned: abandoned != 0,
        flow_version: column(row, "flow_version")?,
        wrap_disposition: column(row, "wrap_disposition")?,
        wrap_notes: column(row, "wrap_notes")?,
        resolved: column::<Option<i64>>(row, "resolved")?.map(|r| r != 0),
        // Filled in by `records`.
        offers: Vec::new(),
        transfers: Vec::new(),
        labels: Vec::new(),
        id,
    })
}

fn offer_from_row(row: &AnyRow, call_id: &str) -> Result<OfferRow, CdrError> {
    let sip_code = match column::<Option<i64>>(row, "sip_code")? {
        None => None,
        Some(code) => Some(u16::try_from(code).map_err(|_| {
            corrupt(
                call_id,
                format!("offer sip_code {code} is not a SIP status code"),
            )
        })?),
    };
    Ok(OfferRow {
        agent: column(row, "agent")?,
        queue: column(row, "queue")?,
        ring_start_ms: column(row, "ring_start_ms")?,
        ring_end_ms: column(row, "ring_end_ms")?,
        outcome: parsed(call_id, column(row, "outcome")?)?,
        sip_code,
    })
}

fn transfer_from_row(row: &AnyRow, call_id: &str) -> Result<TransferRow, CdrError> {
    Ok(TransferRow {
        at_ms: column(row, "at_ms")?,
        kind: parsed(call_id, column(row, "kind")?)?,
        target: column(row, "target")?,
        target_kind: parsed(call_id, column(row, "target_kind")?)?,
        by: column(row, "transferred_by")?,
        reason: column(row, "reason")?,
    })
}

fn agent_state_from_row(row: &AnyRow) -> Result<AgentStateRecord, CdrError> {
    let id: String = column(row, "id")?;
    Ok(AgentStateRecord {
        agent: column(row, "agent")?,
        state: parsed(&id, column(row, "state")?)?,
        reason: column(row, "reason")?,
        start_ms: column(row, "start_ms")?,
        id,
    })
}

fn column<'r, T>(row: &'r AnyRow, name: &'static str) -> Result<T, CdrError>
where
    T: Decode<'r, Any> + Type<Any>,
{
    row.try_get(name).map_err(|error| CdrError::Query {
        operation: "decode a cdr row",
        error,
    })
}

struct Target {
    backend: Backend,
    /// What sqlx is given; never logged, it may hold a password.
    url: String,
}

fn parse_target(url: &str) -> Result<Target, CdrError> {
    let bad = |reason: &str| CdrError::BadUrl {
        url: redact_url(url),
        reason: reason.to_owned(),
    };
    let url = url.trim();
    if url.is_empty() {
        return Err(bad("it is empty"));
    }
    let lower = url.to_ascii_lowercase();
    if lower.starts_with("postgres://") || lower.starts_with("postgresql://") {
        return Ok(Target {
            backend: Backend::Postgres,
            url: url.to_owned(),
        });
    }
    if lower.starts_with("sqlite:") {
        let rest = if lower.starts_with("sqlite://") {
            &url["sqlite://".len()..]
        } else {
            &url["sqlite:".len()..]
        };
        let (path, query) = rest.split_once('?').unwrap_or((rest, ""));
        if path.is_empty() {
            return Err(bad("it names no database file"));
        }
        // Already URL syntax: the caller is responsible for its percent-encoding.
        return Ok(Target {
            backend: Backend::Sqlite,
            url: sqlite_url(path, query),
        });
    }
    if let Some((scheme, _)) = url.split_once("://")
        && !scheme.is_empty()
        && scheme
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'))
    {
        return Err(bad(
            "unsupported scheme; use sqlite:PATH, postgres://... or a plain file path",
        ));
    }
    Ok(Target {
        backend: Backend::Sqlite,
        url: sqlite_url(&percent_encode_path(url), ""),
    })
}

/// Builds the form that survives sqlx's round trip through `Url` (which would read the first
/// segment of `sqlite://dir/file` as a host) and defaults to creating the file.
fn sqlite_url(path: &str, query: &str) -> String {
    // "//x" would become a URL authority; on POSIX it means "/x" anyway.
    let path = if path.starts_with("//") {
        format!("/{}", path.trim_start_matches('/'))
    } else {
        path.to_owned()
    };
    let has_mode = query
        .split('&')
        .any(|pair| pair.split('=').next() == Some("mode"));
    let mut url = format!("sqlite:{path}");
    let mut params: Vec<&str> = query.split('&').filter(|p| !p.is_empty()).collect();
    if !has_mode {
        params.push("mode=rwc");
    }
    url.push('?');
    url.push_str(&params.join("&"));
    url
}

/// Only the characters that would otherwise be read as URL syntax or be decoded by sqlx.
fn percent_encode_path(path: &str) -> String {
    let mut out = String::with_capacity(path.len());
    for c in path.chars() {
        match c {
            '%' | '?' | '#' | ' ' => out.push_str(&format!("%{:02X}", c as u32)),
            c if c.is_ascii_control() => out.push_str(&format!("%{:02X}", c as u32)),
            c => out.push(c),
        }
    }
    out
}

/// Masks the password in `scheme://user:password@host` and in `password=` / `sslpassword=`
/// query parameters, for log lines and error messages.
pub fn redact_url(url: &str) -> String {
    let (before_query, query) = match url.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (url, None),
    };
    let mut out = String::with_capacity(url.len());
    match before_query.split_once("://") {
        // The last '@' ends the user info even if an unescaped '/' or '@' sits in the password:
        // masking a little too much is harmless, leaking part of a password is not.
        Some((scheme, rest)) => match rest.rsplit_once('@') {
            Some((userinfo, host_and_path)) => {
                out.push_str(scheme);
                out.push_str("://");
                match userinfo.split_once(':') {
                    Some((user, _password)) => {
                        out.push_str(user);
                        out.push_str(":***");
                    }
                    None => out.push_str(userinfo),
                }
                out.push('@');
                out.push_str(host_and_path);
            }
            None => out.push_str(before_query),
        },
        None => out.push_str(before_query),
    }
    if let Some(query) = query {
        out.push('?');
        let pairs: Vec<String> = query
            .split('&')
            .map(|pair| match pair.split_once('=') {
                Some((key, _))
                    if key.eq_ignore_ascii_case("password")
                        || key.eq_ignore_ascii_case("sslpassword") =>
                {
                    format!("{key}=***")
                }
                _ => pair.to_owned(),
            })
            .collect();
        out.push_str(&pairs.join("&"));
    }
    out
}

#[cfg(test)]
mod tests {
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
