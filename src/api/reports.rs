//! `GET /api/v1/reports` (the indicators, as `hotline report --format json` prints them) and
//! `POST /api/v1/calls/{id}/qa` (a supervisor's score of a call). Both read or write the CDR
//! database through a connection pool of their own, opened on first use; reports run two
//! at a time at most (each on up to `report::LANES` connections), since one can take a
//! second or two of the database's time.

use std::sync::Arc;
use std::time::Duration;

use hyper::StatusCode;
use serde::Deserialize;
use serde_json::json;
use tokio::sync::Semaphore;

use super::auth::{Role, Session};
use super::{Reply, error, reply};
use crate::cdr::CdrStore;
use crate::report::{self, Directory, GroupBy, Interval, ReportRequest, ReportSettings};

const REPORTS_AT_ONCE: usize = 2;
/// How long a report waits for its turn before the client is told to come back.
const REPORT_WAIT: Duration = Duration::from_secs(2);
/// A report that takes longer is cut off (the database is in trouble).
const REPORT_DEADLINE: Duration = Duration::from_secs(30);
const MAX_QA_NOTES: usize = 2000;
/// Calls listed for quality monitoring.
const QA_LIST: u32 = 100;
/// Largest recording served (an hour of stereo 8 kHz 16-bit audio is about 115 MB).
const MAX_RECORDING: u64 = 256 * 1024 * 1024;

pub struct Reports {
    database: String,
    settings: ReportSettings,
    store: tokio::sync::Mutex<Option<CdrStore>>,
    turns: Arc<Semaphore>,
}

impl Reports {
    pub fn new(database: String, settings: ReportSettings) -> Reports {
        Reports {
            database,
            settings,
            store: tokio::sync::Mutex::new(None),
            turns: Arc::new(Semaphore::new(REPORTS_AT_ONCE)),
        }
    }

    async fn store(&self) -> Result<CdrStore, Reply> {
        let mut slot = self.store.lock().await;
        if let Some(store) = slot.as_ref() {
            return Ok(store.clone());
        }
        match tokio::time::timeout(Duration::from_secs(5), CdrStore::connect(&self.database)).await
        {
            Ok(Ok(store)) => {
                *slot = Some(store.clone());
                Ok(store)
            }
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "API: CDR database unavailable");
                Err(error(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "the CDR database is unavailable",
                ))
            }
            Err(_) => Err(error(
                StatusCode::SERVICE_UNAVAILABLE,
                "the CDR database did not answer",
            )),
        }
    }
}

/// `?from=2026-12-01&to=2026-12-08&interval=day&by=queue`, every key optional: today per
/// day over everything. Agents see their own row only; supervisors' agent and team rows are
/// their teams'.
pub async fn report(
    reports: &Reports,
    session: &Session,
    query: Option<&str>,
    directory: Directory,
) -> Reply {
    let settings = &reports.settings;
    let tz = &settings.time_zone;
    let mut from = None;
    let mut to = None;
    let mut interval = Interval::Day;
    let mut by = match session.role {
        Role::Agent => GroupBy::Agent,
        _ => GroupBy::All,
    };
    for (key, value) in form_urlencoded::parse(query.unwrap_or("").as_bytes()).take(16) {
        let bad = |e: String| error(StatusCode::BAD_REQUEST, format!("{key}: {e}"));
        match key.as_ref() {
            "from" => match report::intervals::parse_local(&value, tz) {
                Ok(ms) => from = Some(ms),
                Err(e) => return bad(e),
            },
            "to" => match report::intervals::parse_local(&value, tz) {
                Ok(ms) => to = Some(ms),
                Err(e) => return bad(e),
            },
            "interval" => match Interval::parse(&value) {
                Ok(i) => interval = i,
                Err(e) => return bad(e),
            },
            "by" => match GroupBy::parse(&value) {
                Ok(b) => by = b,
                Err(e) => return bad(e),
            },
            other => {
                return error(
                    StatusCode::BAD_REQUEST,
                    format!("unknown parameter {other:?} (from, to, interval, by)"),
                );
            }
        }
    }
    if session.role == Role::Agent && by != GroupBy::Agent {
        return error(
            StatusCode::FORBIDDEN,
            "agents see their own figures only (by=agent)",
        );
    }
    let now = jiff::Timestamp::now();
    let from = from.unwrap_or_else(|| {
        now.to_zoned_datetime(tz.clone())
            .start_of_day()
            .map(|z| z.timestamp().as_millisecond())
            .unwrap_or(now.as_millisecond())
    });
    let request = ReportRequest {
        from_ms: from,
        to_ms: to.unwrap_or(now.as_millisecond()),
        interval,
        by,
    };
    let Ok(Ok(_turn)) =
        tokio::time::timeout(REPORT_WAIT, Arc::clone(&reports.turns).acquire_owned()).await
    else {
        let mut r = error(
            StatusCode::SERVICE_UNAVAILABLE,
            "reports are busy; try again shortly",
        );
        r.headers_mut().insert(
            hyper::header::RETRY_AFTER,
            hyper::header::HeaderValue::from_static("2"),
        );
        return r;
    };
    let store = match reports.store().await {
        Ok(s) => s,
        Err(r) => return r,
    };
    let run = report::run(&store, settings, &directory, &request);
    let mut report = match tokio::time::timeout(REPORT_DEADLINE, run).await {
        Ok(Ok(r)) => r,
        Ok(Err(report::ReportError::Request(e))) => return error(StatusCode::BAD_REQUEST, e),
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "API report failed");
            return error(StatusCode::SERVICE_UNAVAILABLE, "the CDR database failed");
        }
        Err(_) => return error(StatusCode::SERVICE_UNAVAILABLE, "the report took too long"),
    };
    report
        .rows
        .retain(|row| visible(session, by, row.group.as_deref(), &directory));
    reply(StatusCode::OK, report::format::json(&report))
}

/// Whether a report row may be shown to the session's user.
fn visible(s: &Session, by: GroupBy, group: Option<&str>, directory: &Directory) -> bool {
    match (s.role, by) {
        (Role::Admin, _) => true,
        (Role::Supervisor, GroupBy::All | GroupBy::Queue) => true,
        (Role::Supervisor, GroupBy::Team) => group.is_some_and(|t| s.teams.iter().any(|x| x == t)),
        (Role::Supervisor, GroupBy::Agent) => group.is_some_and(|a| {
            let team = directory.teams.get(a).cloned().flatten();
            team.is_some_and(|t| s.teams.contains(&t))
        }),
        (Role::Agent, GroupBy::Agent) => group.is_some() && group == s.agent.as_deref(),
        (Role::Agent, _) => false,
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScoreBody {
    score: u8,
    notes: Option<String>,
}

/// A supervisor scores a stored call of one of their teams (admins: any call).
pub async fn score(reports: &Reports, session: &Session, call: &str, body: ScoreBody) -> Reply {
    if session.role == Role::Agent {
        return error(
            StatusCode::FORBIDDEN,
            "only supervisors and admins score calls",
        );
    }
    if body.score > 100 {
        return error(StatusCode::BAD_REQUEST, "score is 0 to 100");
    }
    let notes = body
        .notes
        .map(|n| crate::call::agent_api::clean_notes(&n, MAX_QA_NOTES))
        .filter(|n| !n.is_empty());
    if call.len() > 64 || call.is_empty() {
        return error(StatusCode::NOT_FOUND, "no such call");
    }
    let store = match reports.store().await {
        Ok(s) => s,
        Err(r) => return r,
    };
    let record = match store.by_id(call).await {
        Ok(Some(r)) => r,
        Ok(None) => return error(StatusCode::NOT_FOUND, format!("no call {call:?}")),
        Err(e) => {
            tracing::warn!(error = %e, "API: reading a call failed");
            return error(StatusCode::SERVICE_UNAVAILABLE, "the CDR database failed");
        }
    };
    let own_team = record
        .team
        .as_ref()
        .is_some_and(|t| session.teams.contains(t));
    if session.role == Role::Supervisor && !own_team {
        return error(
            StatusCode::FORBIDDEN,
            "that call was not answered by one of your teams",
        );
    }
    let now = jiff::Timestamp::now().as_millisecond();
    match store
        .score_call(&record.id, &session.user, body.score, notes.as_deref(), now)
        .await
    {
        Ok(()) => reply(
            StatusCode::OK,
            json!({ "call": record.id, "scorer": session.user, "score": body.score }),
        ),
        Err(e) => {
            tracing::warn!(error = %e, "API: storing a QA score failed");
            error(StatusCode::SERVICE_UNAVAILABLE, "the CDR database failed")
        }
    }
}

/// Whether the session may see (and score) a call an agent of `team` answered.
fn may_monitor(session: &Session, team: Option<&str>) -> bool {
    match session.role {
        Role::Admin => true,
        Role::Supervisor => team.is_some_and(|t| session.teams.iter().any(|x| x == t)),
        Role::Agent => false,
    }
}

/// The CDR store for call monitoring, which is for supervisors and admins only.
async fn monitoring_store(reports: &Reports, session: &Session) -> Result<CdrStore, Reply> {
    if session.role == Role::Agent {
        return Err(error(
            StatusCode::FORBIDDEN,
            "only supervisors and admins monitor calls",
        ));
    }
    reports.store().await
}

/// `GET /api/v1/calls`: the latest recorded calls of the supervisor's teams (admins: all),
/// for the QA page.
pub async fn recorded_calls(reports: &Reports, session: &Session) -> Reply {
    let store = match monitoring_store(reports, session).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    let calls = match store.recorded(QA_LIST).await {
        Ok(c) => c,
        Err(e) => {
            tracing::warn!(error = %e, "API: reading recorded calls failed");
            return error(StatusCode::SERVICE_UNAVAILABLE, "the CDR database failed");
        }
    };
    let list: Vec<_> = calls
        .iter()
        .filter(|c| may_monitor(session, c.team.as_deref()))
        .map(|c| {
            json!({
                "call": c.id,
                "start_ms": c.start_ms,
                "caller": c.caller,
                "queue": c.queue,
                "agent": c.agent,
                "team": c.team,
                "talk_s": c.talk_ms.map(|t| t as f64 / 1000.0),
                "disposition": c.wrap_disposition,
                "recordings": c.recordings.len(),
            })
        })
        .collect();
    reply(StatusCode::OK, json!({ "calls": list }))
}

/// `GET /api/v1/calls/{id}/recordings/{n}`: the call's n-th recording (WAV), for those who
/// may monitor the call. Only a file the CDR lists and that lies in the recordings
/// directory is read.
pub async fn recording(
    reports: &Reports,
    session: &Session,
    call: &str,
    n: usize,
    dir: &std::path::Path,
) -> Reply {
    let store = match monitoring_store(reports, session).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    let record = match store.by_id(call).await {
        Ok(Some(r)) => r,
        Ok(None) => return error(StatusCode::NOT_FOUND, "no such call"),
        Err(e) => {
            tracing::warn!(error = %e, "API: reading a call failed");
            return error(StatusCode::SERVICE_UNAVAILABLE, "the CDR database failed");
        }
    };
    if !may_monitor(session, record.team.as_deref()) {
        return error(
            StatusCode::FORBIDDEN,
            "that call was not answered by one of your teams",
        );
    }
    let Some(path) = record.recordings.get(n) else {
        return error(StatusCode::NOT_FOUND, "no such recording");
    };
    let (Ok(root), Ok(file)) = (
        tokio::fs::canonicalize(dir).await,
        tokio::fs::canonicalize(path).await,
    ) else {
        return error(StatusCode::NOT_FOUND, "the recording is not on disk");
    };
    if !file.starts_with(&root) {
        tracing::warn!(call, path = %file.display(), "a CDR names a recording outside the recordings directory; not served");
        return error(StatusCode::NOT_FOUND, "no such recording");
    }
    let Ok(_turn) = Arc::clone(&reports.turns).try_acquire_owned() else {
        return error(StatusCode::SERVICE_UNAVAILABLE, "busy; try again shortly");
    };
    match tokio::fs::metadata(&file).await {
        Ok(m) if m.len() <= MAX_RECORDING => {}
        _ => {
            return error(
                StatusCode::NOT_FOUND,
                "the recording is not on disk or too large",
            );
        }
    }
    match tokio::fs::read(&file).await {
        Ok(bytes) => {
            tracing::info!(user = %session.user, call, n, "recording played");
            let mut r =
                hyper::Response::new(http_body_util::Full::new(hyper::body::Bytes::from(bytes)));
            let h = r.headers_mut();
            h.insert(
                hyper::header::CONTENT_TYPE,
                hyper::header::HeaderValue::from_static("audio/wav"),
            );
            h.insert(
                hyper::header::CACHE_CONTROL,
                hyper::header::HeaderValue::from_static("no-store"),
            );
            r
        }
        Err(_) => error(StatusCode::NOT_FOUND, "the recording is not on disk"),
    }
}
