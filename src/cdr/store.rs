//! The database side: one `AnyPool`, so the same code runs on SQLite (a single box) and
//! PostgreSQL (a shared reporting database) chosen by URL at run time.

use std::fmt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use sqlx::any::{AnyConnectOptions, AnyPoolOptions, AnyRow};
use sqlx::{Any, AnyPool, ConnectOptions, Decode, Executor, Row, Type};

use super::CdrError;
use super::record::CdrRecord;

struct Migration {
    version: i64,
    name: &'static str,
    sql: &'static str,
}

/// Applied in order; a version is never edited once released, only followed by a new one.
const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        name: "cdr",
        sql: include_str!("../../migrations/0001_cdr.sql"),
    },
    Migration {
        version: 2,
        name: "cdr_flow_details",
        sql: include_str!("../../migrations/0002_cdr_flow_details.sql"),
    },
];

/// Any constant works as long as nothing else in the database uses it: "hotline" in ASCII.
const MIGRATION_LOCK_KEY: i64 = 0x0068_6f74_6c69_6e65;

/// Short, so a locked database fails the batch within a second and the writer goes back to
/// receiving, instead of SQLite's driver default of 5 s.
const SQLITE_BUSY_TIMEOUT_MS: u32 = 1_000;

/// Bounds how long an attempt waits for a connection (including sqlx's own reconnect retries),
/// so an unreachable server shows up as a failed attempt rather than a stall.
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(3);

/// 55 rows x 17 columns = 935 bind parameters: under the 999 that SQLite builds before 3.32
/// allow, and few enough statements that PostgreSQL round trips stay cheap.
const ROWS_PER_STATEMENT: usize = 55;

const COLUMNS: &str = "id, sip_call_id, caller, dialled, start_ms, answer_ms, end_ms, flow, \
                       ivr_path, digits, disposition, hangup_by, sip_code, end_reason, \
                       language, survey, recordings";
const COLUMN_COUNT: usize = 17;

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
        let mut options = AnyPoolOptions::new()
            .max_connections(4)
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

    /// Applies every embedded migration that is not yet recorded in `hotline_migrations`,
    /// each in its own transaction together with its bookkeeping row, so a crash leaves the
    /// schema either before or after a migration, never half way.
    pub async fn migrate(&self) -> Result<(), CdrError> {
        for migration in MIGRATIONS {
            let failed = |error| CdrError::Migrate {
                version: migration.version,
                name: migration.name,
                error,
            };
            // Servers starting together must take turns: each runner reads, then writes.
            let mut tx = match self.backend {
                // A deferred SQLite transaction that has read cannot wait for the write lock
                // (it fails with SQLITE_BUSY at once); IMMEDIATE waits at BEGIN instead.
                Backend::Sqlite => self.pool.begin_with("BEGIN IMMEDIATE").await,
                Backend::Postgres => self.pool.begin().await,
            }
            .map_err(failed)?;
            if self.backend == Backend::Postgres {
                // PostgreSQL's CREATE TABLE IF NOT EXISTS is not race-free either. Released by
                // commit or rollback. Selected through FROM because the Any driver cannot
                // decode a `void` column.
                sqlx::query("SELECT 1 FROM pg_advisory_xact_lock($1)")
                    .bind(MIGRATION_LOCK_KEY)
                    .execute(&mut *tx)
                    .await
                    .map_err(failed)?;
            }
            sqlx::query(
                "CREATE TABLE IF NOT EXISTS hotline_migrations \
                 (version BIGINT PRIMARY KEY, applied_ms BIGINT)",
            )
            .execute(&mut *tx)
            .await
            .map_err(failed)?;
            let applied = sqlx::query("SELECT version FROM hotline_migrations WHERE version = $1")
                .bind(migration.version)
                .fetch_optional(&mut *tx)
                .await
                .map_err(failed)?;
            if applied.is_some() {
                continue;
            }
            // A plain `&str` with no arguments runs as a simple query on PostgreSQL and as a
            // statement list on SQLite, so one migration file may hold several statements.
            (&mut *tx).execute(migration.sql).await.map_err(failed)?;
            sqlx::query("INSERT INTO hotline_migrations (version, applied_ms) VALUES ($1, $2)")
                .bind(migration.version)
                .bind(now_ms())
                .execute(&mut *tx)
                .await
                .map_err(failed)?;
            tx.commit().await.map_err(failed)?;
            tracing::info!(
                version = migration.version,
                name = migration.name,
                url = %self.url,
                "applied CDR schema migration"
            );
        }
        Ok(())
    }

    /// Inserts all records in one transaction. A record whose id is already stored is skipped,
    /// which is what makes retrying a batch after an ambiguous failure (a timeout during
    /// commit, a crash before the spool was removed) safe.
    pub async fn insert_batch(&self, records: &[CdrRecord]) -> Result<(), CdrError> {
        if records.is_empty() {
            return Ok(());
        }
        let failed = |error| CdrError::Query {
            operation: "insert batch",
            error,
        };
        let mut tx = self.pool.begin().await.map_err(failed)?;
        for chunk in records.chunks(ROWS_PER_STATEMENT) {
            let sql = insert_sql(chunk.len());
            let mut query = sqlx::query(&sql);
            for rec in chunk {
                query = query
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
                    .bind(encode_path(&rec.recordings));
            }
            query.execute(&mut *tx).await.map_err(failed)?;
        }
        tx.commit().await.map_err(failed)
    }

    /// The `n` most recent calls by start time, newest first.
    pub async fn last(&self, n: u32) -> Result<Vec<CdrRecord>, CdrError> {
        let sql = format!("SELECT {COLUMNS} FROM cdr ORDER BY start_ms DESC, id DESC LIMIT $1");
        let rows = sqlx::query(&sql)
            .bind(i64::from(n))
            .fetch_all(&self.pool)
            .await
            .map_err(|error| CdrError::Query {
                operation: "read last records",
                error,
            })?;
        rows.iter().map(record_from_row).collect()
    }

    pub async fn count(&self) -> Result<i64, CdrError> {
        sqlx::query_scalar("SELECT COUNT(*) FROM cdr")
            .fetch_one(&self.pool)
            .await
            .map_err(|error| CdrError::Query {
                operation: "count records",
                error,
            })
    }

    /// Every record for one SIP Call-ID, oldest first. Usually one; more if a UA reused the id.
    pub async fn by_sip_call_id(&self, sip_call_id: &str) -> Result<Vec<CdrRecord>, CdrError> {
        let sql = format!("SELECT {COLUMNS} FROM cdr WHERE sip_call_id = $1 ORDER BY start_ms, id");
        let rows = sqlx::query(&sql)
            .bind(sip_call_id)
            .fetch_all(&self.pool)
            .await
            .map_err(|error| CdrError::Query {
                operation: "read records by SIP Call-ID",
                error,
            })?;
        rows.iter().map(record_from_row).collect()
    }
}

/// `$n` placeholders: PostgreSQL's native form, and SQLite accepts `$NNN` as numbered
/// parameters too (sqlx binds them by number), so one statement text serves both.
fn insert_sql(rows: usize) -> String {
    let mut sql = String::with_capacity(100 + rows * 80);
    sql.push_str("INSERT INTO cdr (");
    sql.push_str(COLUMNS);
    sql.push_str(") VALUES ");
    for row in 0..rows {
        if row > 0 {
            sql.push_str(", ");
        }
        sql.push('(');
        for col in 0..COLUMN_COUNT {
            if col > 0 {
                sql.push_str(", ");
            }
            sql.push('$');
            sql.push_str(&(row * COLUMN_COUNT + col + 1).to_string());
        }
        sql.push(')');
    }
    sql.push_str(" ON CONFLICT (id) DO NOTHING");
    sql
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

fn record_from_row(row: &AnyRow) -> Result<CdrRecord, CdrError> {
    let id: String = column(row, "id")?;
    let corrupt = |reason: String| CdrError::CorruptRow {
        id: id.clone(),
        reason,
    };

    let path_text: String = column(row, "ivr_path")?;
    let ivr_path: Vec<String> = serde_json::from_str(&path_text)
        .map_err(|e| corrupt(format!("ivr_path is not a JSON array of strings: {e}")))?;
    let disposition = column::<String>(row, "disposition")?
        .parse()
        .map_err(|e| corrupt(format!("{e}")))?;
    let hangup_by = column::<String>(row, "hangup_by")?
        .parse()
        .map_err(|e| corrupt(format!("{e}")))?;
    let code: i64 = column(row, "sip_code")?;
    let sip_code = u16::try_from(code)
        .map_err(|_| corrupt(format!("sip_code {code} is not a SIP status code")))?;

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

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
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
        let sql = insert_sql(2);
        assert!(sql.starts_with("INSERT INTO cdr (id, sip_call_id,"));
        assert!(sql.contains(
            "($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17)"
        ));
        assert!(sql.contains(", ($18, $19,"));
        assert!(sql.contains("$34)"));
        assert!(!sql.contains("$35"));
        assert!(sql.ends_with(" ON CONFLICT (id) DO NOTHING"));
        assert_eq!(COLUMNS.split(',').count(), COLUMN_COUNT);
        const { assert!(ROWS_PER_STATEMENT * COLUMN_COUNT < 999) };
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
