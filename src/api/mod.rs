//! The CTI API: JSON over HTTP (hyper on the server's tokio runtime), plain or over TLS.
//! Everything but the health check needs a session (or, for `/metrics`, a supervisor's or
//! admin's name and password). This module only reads what the engine publishes (a snapshot
//! a second); it never reaches into the call platform, so a flood of API clients cannot slow a
//! call.
//!
//! Bounds: connections in total and per address (IPv6 by /64), within the server's
//! descriptor budget; a deadline for each request's headers, for each whole request and for a
//! connection's life; a cap on header and body sizes; argon2 checks a few at a time, with a
//! short wait for a turn; login attempts per user and per address.

mod agents;
pub mod auth;
mod calls;
mod connections;
pub mod events;
mod hashers;
mod login;
pub mod metrics;
mod pages;
mod reports;

use agents::{EngineReply, ask_engine, may_see, set_agent_state, steering, wrap_up};
use connections::ConnectionSlot;
pub use connections::start;
use login::{credentials, events_upgrade, login, token};

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use base64::Engine as _;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::{Bytes, Incoming};
use hyper::header::{self, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use serde::Deserialize;
use serde_json::json;
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, watch};
use tokio_rustls::TlsAcceptor;

use crate::call::snapshot::Snapshot;
use crate::cdr::WriterStats;
use auth::{Role, Session, Sessions, Throttle, User, Users};

/// Every route, for the 404/405 answers and for the check that `docs/openapi.json` lists
/// exactly these (so the document cannot drift from the code).
pub const ROUTES: &[(&str, &str)] = &[
    ("GET", "/api/v1/health"),
    ("POST", "/api/v1/session"),
    ("DELETE", "/api/v1/session"),
    ("GET", "/api/v1/me"),
    ("GET", "/api/v1/agents"),
    ("POST", "/api/v1/agents/{id}/state"),
    ("POST", "/api/v1/agents/{id}/wrap-up"),
    ("POST", "/api/v1/agents/{id}/hold"),
    ("POST", "/api/v1/agents/{id}/hang-up"),
    ("POST", "/api/v1/agents/{id}/transfer"),
    ("POST", "/api/v1/agents/{id}/consult"),
    ("POST", "/api/v1/agents/{id}/consult/complete"),
    ("POST", "/api/v1/agents/{id}/consult/cancel"),
    ("GET", "/api/v1/queues"),
    ("GET", "/api/v1/events"),
    ("GET", "/api/v1/reports"),
    ("POST", "/api/v1/calls/{id}/qa"),
    ("POST", "/api/v1/calls/{id}/move"),
    ("GET", "/api/v1/calls"),
    ("GET", "/api/v1/calls/{id}/recordings/{n}"),
    ("GET", "/metrics"),
];

/// Whether `path` fits a route's pattern (`{name}` matches one path segment).
fn fits(pattern: &str, path: &str) -> bool {
    let (mut p, mut q) = (pattern.split('/'), path.split('/'));
    loop {
        match (p.next(), q.next()) {
            (None, None) => return true,
            (Some(a), Some(b)) if a.starts_with('{') && !b.is_empty() => {}
            (Some(a), Some(b)) if a == b => {}
            _ => return false,
        }
    }
}

/// What the API asks of the signalling loop. The loop answers at once; the API waits
/// [`COMMAND_WAIT`] at most.
#[derive(Debug)]
pub enum ApiRequest {
    /// A supervisor moves a waiting caller (by CDR id).
    Move {
        call: String,
        target: crate::call::supervise::MoveTarget,
        by: String,
        reply: tokio::sync::oneshot::Sender<Result<(), crate::call::supervise::MoveError>>,
    },
    Agent {
        id: String,
        command: crate::call::agent_api::AgentCommand,
        reply: tokio::sync::oneshot::Sender<EngineReply>,
    },
    WrapUp {
        id: String,
        note: crate::call::WrapNote,
        done: bool,
        reply: tokio::sync::oneshot::Sender<EngineReply>,
    },
}

/// Requests waiting for the signalling loop; past this the API answers 503.
pub const COMMAND_QUEUE: usize = 256;
/// Engine events waiting for the hub; past this they are dropped (the snapshot still holds
/// every state).
pub const EVENT_QUEUE: usize = 4096;
const COMMAND_WAIT: Duration = Duration::from_secs(5);

/// Request bodies are small JSON objects.
const MAX_BODY: usize = 16 * 1024;
/// hyper's read buffer per connection (headers and pipelined requests).
const MAX_READ_BUFFER: usize = 32 * 1024;
const HEADER_TIMEOUT: Duration = Duration::from_secs(10);
/// A connection is closed after this long, whatever it does: one that stops reading its
/// answers cannot hold its place for ever.
const CONNECTION_LIFETIME: Duration = Duration::from_secs(120);
/// How long a login waits for a turn at hashing before being told to come back.
const HASH_WAIT: Duration = Duration::from_secs(3);
/// Longest session token looked at (ours are 64 hex characters).
const MAX_TOKEN: usize = 128;
const SESSION_COOKIE: &str = "hotline_session";
/// The users file is looked at for changes this often.
const USERS_RECHECK: Duration = Duration::from_secs(1);
/// A scraper's Basic credentials, once checked, are trusted this long without hashing again.
const BASIC_CACHE_FOR: Duration = Duration::from_secs(60);

#[derive(Debug, Clone)]
pub struct ApiConfig {
    pub bind: SocketAddr,
    pub users_file: PathBuf,
    pub session_idle: Duration,
    pub session_max: Duration,
    pub max_connections: usize,
    pub max_connections_per_address: usize,
    pub request_timeout: Duration,
    /// Indicator settings for `GET /api/v1/reports`.
    pub report: crate::report::ReportSettings,
    /// Where recordings are: the only place `GET /api/v1/calls/{id}/recordings/{n}` reads.
    pub recordings_dir: PathBuf,
}

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("api.bind {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error(transparent)]
    Users(#[from] auth::UsersError),
}

/// What the engine and the CDR writer last published, and the way to the engine.
#[derive(Clone)]
pub struct Feeds {
    pub snapshot: watch::Receiver<Snapshot>,
    pub cdr: watch::Receiver<WriterStats>,
    pub commands: tokio::sync::mpsc::Sender<ApiRequest>,
}

struct AuthState {
    sessions: Sessions,
    throttle: Throttle,
    /// Scrapers' Basic credentials already checked: SHA-256 of "name\0password" to the
    /// user's role and when it was checked. A few entries; emptied when the users change.
    basic: HashMap<[u8; 32], (Role, Instant)>,
}

/// Shared by the connection tasks. The locks are held only to look up or swap, never across
/// an await, a file read or a hash.
pub struct Api {
    config: ApiConfig,
    tls: bool,
    /// Swapped whole by the users-file watch.
    users: Mutex<Arc<Users>>,
    auth: Mutex<AuthState>,
    hashing: Arc<Semaphore>,
    hashers: hashers::Hashers,
    /// A hash to check unknown names against, so a wrong name takes as long as a wrong
    /// password (None only if the OS gave no randomness at start).
    decoy: Option<User>,
    connections: Mutex<HashMap<IpAddr, usize>>,
    /// Event streams by address, capped like connections.
    streams: Mutex<HashMap<IpAddr, usize>>,
    /// True once the API is stopping: streams close.
    stopping: watch::Receiver<bool>,
    /// Bumped when sessions end (a logout, users changed): streams check theirs at once.
    sessions_ended: watch::Sender<u64>,
    feeds: Feeds,
    /// The event stream's messages, rendered once by the hub, and where they go.
    events: Arc<events::Routes>,
    /// Every agent as their latest event showed them (the hub's), for a new stream's hello.
    latest_agents: Arc<Mutex<HashMap<String, crate::call::agent_api::AgentView>>>,
    reports: reports::Reports,
}

/// The running API: its address, and the task to stop.
pub struct ApiServer {
    pub addr: SocketAddr,
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

impl ApiServer {
    pub async fn stop(self) {
        let _ = self.stop.send(true);
        let _ = self.task.await;
    }
}

type Reply = Response<Full<Bytes>>;

fn reply(status: StatusCode, body: serde_json::Value) -> Reply {
    let mut r = Response::new(Full::new(Bytes::from(body.to_string())));
    *r.status_mut() = status;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    r.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

fn error(status: StatusCode, message: impl Into<String>) -> Reply {
    reply(status, json!({ "error": message.into() }))
}

async fn handle(api: &Arc<Api>, from: IpAddr, req: Request<Incoming>) -> Reply {
    let path = req.uri().path().to_string();
    let method = req.method().clone();
    match (&method, path.as_str()) {
        (&Method::GET, "/api/v1/health") => reply(
            StatusCode::OK,
            json!({ "status": "ok", "version": env!("CARGO_PKG_VERSION") }),
        ),
        (&Method::POST, "/api/v1/session") => login(api, from, req).await,
        (&Method::DELETE, "/api/v1/session") => {
            let Some(token) = token(&req) else {
                return error(StatusCode::UNAUTHORIZED, "no session");
            };
            let ended = api.lock_auth().sessions.end(&token);
            if ended {
                api.sessions_ended.send_modify(|n| *n += 1);
                let mut r = reply(StatusCode::OK, json!({ "ended": true }));
                r.headers_mut().insert(
                    header::SET_COOKIE,
                    HeaderValue::from_static(
                        "hotline_session=; Path=/; Max-Age=0; HttpOnly; SameSite=Strict",
                    ),
                );
                r
            } else {
                error(
                    StatusCode::UNAUTHORIZED,
                    "no such session (expired or ended)",
                )
            }
        }
        (&Method::GET, "/api/v1/me") => match api.session(&req) {
            Some(s) => {
                let snapshot = api.feeds.snapshot.borrow();
                let dispositions: Vec<_> = snapshot
                    .dispositions
                    .iter()
                    .map(|(code, label)| json!({ "code": code, "label": label }))
                    .collect();
                reply(
                    StatusCode::OK,
                    json!({
                        "user": s.user,
                        "role": s.role.as_str(),
                        "agent": s.agent,
                        "teams": s.teams,
                        "reasons": snapshot.reasons,
                        "dispositions": dispositions,
                    }),
                )
            }
            None => error(
                StatusCode::UNAUTHORIZED,
                "log in first (POST /api/v1/session)",
            ),
        },
        (&Method::GET, "/metrics") => metrics(api, from, &req).await,
        (&Method::GET, "/api/v1/events") => events_upgrade(api, from, req),
        (&Method::GET, "/api/v1/agents") => match api.session(&req) {
            Some(s) => {
                let list: Vec<_> = api
                    .feeds
                    .snapshot
                    .borrow()
                    .agent_list
                    .iter()
                    .filter(|a| may_see(&s, a))
                    .cloned()
                    .collect();
                reply(StatusCode::OK, json!({ "agents": list }))
            }
            None => error(
                StatusCode::UNAUTHORIZED,
                "log in first (POST /api/v1/session)",
            ),
        },
        (&Method::GET, "/api/v1/queues") => match api.session(&req) {
            Some(s) => {
                // Copied out at once: the loop publishes the next snapshot meanwhile.
                let (queues, waiting) = {
                    let snapshot = api.feeds.snapshot.borrow();
                    (events::queues_json(&snapshot), snapshot.waiting.clone())
                };
                // Who is waiting is for those who may move them.
                if s.role == auth::Role::Agent {
                    reply(StatusCode::OK, json!({ "queues": queues }))
                } else {
                    reply(
                        StatusCode::OK,
                        json!({ "queues": queues, "waiting": waiting }),
                    )
                }
            }
            None => error(
                StatusCode::UNAUTHORIZED,
                "log in first (POST /api/v1/session)",
            ),
        },
        (&Method::GET, "/api/v1/reports") => match api.session(&req) {
            Some(s) => {
                // Who is in which team, as the agents file says now.
                let directory = crate::report::Directory {
                    teams: api
                        .feeds
                        .snapshot
                        .borrow()
                        .agent_list
                        .iter()
                        .map(|a| (a.id.clone(), a.team.clone()))
                        .collect(),
                };
                reports::report(&api.reports, &s, req.uri().query(), directory).await
            }
            None => error(
                StatusCode::UNAUTHORIZED,
                "log in first (POST /api/v1/session)",
            ),
        },
        (&Method::GET, "/api/v1/calls") => match api.session(&req) {
            Some(s) => reports::recorded_calls(&api.reports, &s).await,
            None => error(
                StatusCode::UNAUTHORIZED,
                "log in first (POST /api/v1/session)",
            ),
        },
        (&Method::GET, p) if fits("/api/v1/calls/{id}/recordings/{n}", p) => {
            let Some(s) = api.session(&req) else {
                return error(
                    StatusCode::UNAUTHORIZED,
                    "log in first (POST /api/v1/session)",
                );
            };
            let mut parts = p.split('/').skip(4);
            let id = parts.next().unwrap_or_default().to_string();
            let n = parts.nth(1).and_then(|n| n.parse::<usize>().ok());
            match n {
                Some(n) => {
                    reports::recording(&api.reports, &s, &id, n, &api.config.recordings_dir).await
                }
                None => error(StatusCode::NOT_FOUND, "no such recording"),
            }
        }
        (&Method::POST, p) if fits("/api/v1/calls/{id}/move", p) => {
            let id = p.split('/').nth(4).unwrap_or_default().to_string();
            calls::move_caller(api, id, req).await
        }
        (&Method::POST, p) if fits("/api/v1/calls/{id}/qa", p) => {
            let Some(s) = api.session(&req) else {
                return error(
                    StatusCode::UNAUTHORIZED,
                    "log in first (POST /api/v1/session)",
                );
            };
            let id = p.split('/').nth(4).unwrap_or_default().to_string();
            match read_json(req).await {
                Ok(body) => reports::score(&api.reports, &s, &id, body).await,
                Err(r) => r,
            }
        }
        (&Method::POST, p) if fits("/api/v1/agents/{id}/state", p) => {
            let id = p.split('/').nth(4).unwrap_or_default().to_string();
            set_agent_state(api, id, req).await
        }
        (&Method::POST, p)
            if fits("/api/v1/agents/{id}/hold", p)
                || fits("/api/v1/agents/{id}/hang-up", p)
                || fits("/api/v1/agents/{id}/transfer", p)
                || fits("/api/v1/agents/{id}/consult", p)
                || fits("/api/v1/agents/{id}/consult/complete", p)
                || fits("/api/v1/agents/{id}/consult/cancel", p) =>
        {
            let id = p.split('/').nth(4).unwrap_or_default().to_string();
            let action = match p.split('/').skip(5).collect::<Vec<_>>()[..] {
                ["hold"] => calls::Action::Hold,
                ["hang-up"] => calls::Action::HangUp,
                ["consult"] => calls::Action::Consult,
                ["consult", "complete"] => calls::Action::CompleteConsult,
                ["consult", "cancel"] => calls::Action::CancelConsult,
                _ => calls::Action::Transfer,
            };
            calls::command(api, id, action, req).await
        }
        (&Method::POST, p) if fits("/api/v1/agents/{id}/wrap-up", p) => {
            let id = p.split('/').nth(4).unwrap_or_default().to_string();
            wrap_up(api, id, req).await
        }
        (&Method::GET, p) if pages::is_page(p) => {
            pages::serve(p).unwrap_or_else(|| error(StatusCode::NOT_FOUND, "no such page"))
        }
        _ => {
            let allowed: Vec<&str> = ROUTES
                .iter()
                .filter(|(_, p)| fits(p, &path))
                .map(|(m, _)| *m)
                .collect();
            if allowed.is_empty() {
                error(StatusCode::NOT_FOUND, format!("no such endpoint: {path}"))
            } else {
                let mut r = error(
                    StatusCode::METHOD_NOT_ALLOWED,
                    format!("{path} takes {}", allowed.join(", ")),
                );
                if let Ok(v) = HeaderValue::from_str(&allowed.join(", ")) {
                    r.headers_mut().insert(header::ALLOW, v);
                }
                r
            }
        }
    }
}

impl Api {
    fn lock_auth(&self) -> std::sync::MutexGuard<'_, AuthState> {
        self.auth.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn users(&self) -> Arc<Users> {
        Arc::clone(&self.users.lock().unwrap_or_else(|e| e.into_inner()))
    }

    fn session(&self, req: &Request<Incoming>) -> Option<Session> {
        let token = token(req)?;
        self.lock_auth().sessions.check(&token, Instant::now())
    }

    /// Checks a name and password, throttled; Ok: the user.
    async fn authenticate(&self, from: IpAddr, name: &str, password: &str) -> Result<User, Reply> {
        let wrong = || error(StatusCode::UNAUTHORIZED, "wrong user name or password");
        // Too long to be anyone's: counted against the address, never remembered or hashed.
        let plausible = name.len() <= auth::MAX_NAME && password.len() <= auth::MAX_PASSWORD;
        let counted =
            self.lock_auth()
                .throttle
                .begin(plausible.then_some(name), from, Instant::now());
        if let Err(wait) = counted {
            let mut r = error(
                StatusCode::TOO_MANY_REQUESTS,
                "too many failed logins; try again later",
            );
            if let Ok(v) = HeaderValue::from_str(&wait.as_secs().max(1).to_string()) {
                r.headers_mut().insert(header::RETRY_AFTER, v);
            }
            return Err(r);
        }
        if !plausible {
            return Err(wrong());
        }
        let users = self.users();
        let user = users.get(name).cloned();
        let Some(candidate) = user.clone().or_else(|| self.decoy.clone()) else {
            return Err(wrong());
        };
        // The permit travels with the hash: a client that hangs up cannot free its turn
        // while the hash still runs.
        let permit = match tokio::time::timeout(
            HASH_WAIT,
            Arc::clone(&self.hashing).acquire_owned(),
        )
        .await
        {
            Ok(Ok(p)) => p,
            _ => {
                let mut r = error(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "too many logins at once; try again shortly",
                );
                r.headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from_static("2"));
                return Err(r);
            }
        };
        let good = self
            .hashers
            .verify(candidate, password.to_string(), permit)
            .await;
        match user {
            Some(user) if good => {
                self.lock_auth().throttle.succeeded(name, from);
                Ok(user)
            }
            _ => {
                tracing::info!(user = %name.escape_debug(), %from, "API login refused");
                Err(wrong())
            }
        }
    }
}

async fn read_json<T: for<'de> Deserialize<'de>>(req: Request<Incoming>) -> Result<T, Reply> {
    // A page of another site (or of another port of this host: SameSite does not tell them
    // apart) cannot send this content type without the browser asking the server first.
    let json = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.trim()
                .to_ascii_lowercase()
                .starts_with("application/json")
        });
    if !json {
        return Err(error(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "send JSON (Content-Type: application/json)",
        ));
    }
    let body = Limited::new(req.into_body(), MAX_BODY)
        .collect()
        .await
        .map_err(|e| {
            if e.is::<http_body_util::LengthLimitError>() {
                error(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    format!("the body is over {MAX_BODY} bytes"),
                )
            } else {
                error(StatusCode::BAD_REQUEST, "the body did not arrive whole")
            }
        })?
        .to_bytes();
    serde_json::from_slice(&body)
        .map_err(|e| error(StatusCode::BAD_REQUEST, format!("bad JSON: {e}")))
}

async fn metrics(api: &Api, from: IpAddr, req: &Request<Incoming>) -> Reply {
    // A scraper sends Basic credentials; a browser its session.
    let basic = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| credentials(v, "basic"))
        .filter(|b| b.len() <= 4 * (auth::MAX_NAME + auth::MAX_PASSWORD))
        .and_then(|b| base64::engine::general_purpose::STANDARD.decode(b).ok())
        .and_then(|b| String::from_utf8(b).ok());
    let role = match basic {
        Some(pair) => {
            let (name, password) = pair.split_once(':').unwrap_or((&pair, ""));
            let key: [u8; 32] = {
                use sha2::Digest;
                sha2::Sha256::digest(format!("{name}\0{password}")).into()
            };
            let cached = {
                let mut auth = api.lock_auth();
                auth.basic
                    .retain(|_, (_, at)| at.elapsed() < BASIC_CACHE_FOR);
                auth.basic.get(&key).map(|(role, _)| *role)
            };
            match cached {
                Some(role) => role,
                None => match api.authenticate(from, name, password).await {
                    Ok(u) => {
                        let mut auth = api.lock_auth();
                        if auth.basic.len() < 16 {
                            auth.basic.insert(key, (u.role, Instant::now()));
                        }
                        u.role
                    }
                    Err(r) => return r,
                },
            }
        }
        None => match api.session(req) {
            Some(s) => s.role,
            None => {
                let mut r = error(
                    StatusCode::UNAUTHORIZED,
                    "metrics need a supervisor's or admin's login",
                );
                r.headers_mut().insert(
                    header::WWW_AUTHENTICATE,
                    HeaderValue::from_static("Basic realm=\"hotline\""),
                );
                return r;
            }
        },
    };
    if role < Role::Supervisor {
        return error(
            StatusCode::FORBIDDEN,
            "metrics are for supervisors and admins",
        );
    }
    // Copied out first: the signalling loop's next publish never waits on a render.
    let snapshot = api.feeds.snapshot.borrow().clone();
    let cdr = *api.feeds.cdr.borrow();
    let text = metrics::render(&snapshot, &cdr);
    let mut r = Response::new(Full::new(Bytes::from(text)));
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(metrics::CONTENT_TYPE),
    );
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `docs/openapi.json` documents exactly the routes the server has.
    #[test]
    fn the_openapi_document_lists_every_route_and_no_other() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/openapi.json");
        let doc: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
        let mut documented: Vec<(String, String)> = Vec::new();
        for (path, item) in doc["paths"].as_object().unwrap() {
            for method in item.as_object().unwrap().keys() {
                if ["get", "post", "put", "patch", "delete"].contains(&method.as_str()) {
                    documented.push((method.to_uppercase(), path.clone()));
                }
            }
        }
        documented.sort();
        let mut routes: Vec<(String, String)> = ROUTES
            .iter()
            .map(|(m, p)| (m.to_string(), p.to_string()))
            .collect();
        routes.sort();
        assert_eq!(documented, routes);
    }
}
