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

pub mod auth;
mod calls;
pub mod events;
mod hashers;
pub mod metrics;
mod pages;
mod reports;

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

/// Binds and serves. A missing users file is no error (nobody can log in until one is
/// written, which the log says); a broken one is.
pub async fn start(
    config: ApiConfig,
    tls: Option<TlsAcceptor>,
    feeds: Feeds,
    engine_events: tokio::sync::mpsc::Receiver<crate::call::events::EngineEvent>,
    database: String,
) -> Result<ApiServer, ApiError> {
    let (users, modified) = read_users(&config.users_file)?;
    if users.is_empty() {
        tracing::warn!(
            file = %config.users_file.display(),
            "no API users: nobody can log in (add one with `hotline user-password NAME`)"
        );
    }
    let listener = TcpListener::bind(config.bind)
        .await
        .map_err(|source| ApiError::Bind {
            addr: config.bind,
            source,
        })?;
    let addr = listener.local_addr().map_err(|source| ApiError::Bind {
        addr: config.bind,
        source,
    })?;
    let decoy_hash = auth::hash_password("decoy").unwrap_or_default();
    let decoy = Users::parse(
        &format!("[[user]]\nname = \"decoy\"\nrole = \"admin\"\npassword = \"{decoy_hash}\"\n"),
        "decoy",
    )
    .ok()
    .and_then(|u| u.get("decoy").cloned());
    let (stop, stopped) = watch::channel(false);
    // Hashing is CPU work: leave a core to the calls.
    let hash_slots = std::thread::available_parallelism()
        .map_or(1, |n| n.get().saturating_sub(1))
        .max(1);
    let api = Arc::new(Api {
        tls: tls.is_some(),
        users: Mutex::new(Arc::new(users)),
        auth: Mutex::new(AuthState {
            sessions: Sessions::new(config.session_idle, config.session_max, 10_000),
            throttle: Throttle::new(Duration::from_secs(300), 5, 30, 10_000),
            basic: HashMap::new(),
        }),
        hashing: Arc::new(Semaphore::new(hash_slots)),
        hashers: hashers::Hashers::start(hash_slots),
        decoy,
        connections: Mutex::new(HashMap::new()),
        streams: Mutex::new(HashMap::new()),
        stopping: stopped.clone(),
        sessions_ended: watch::Sender::new(0),
        events: Arc::default(),
        latest_agents: Arc::default(),
        reports: reports::Reports::new(database.clone(), config.report.clone()),
        feeds,
        config,
    });
    tokio::spawn(events::hub(
        engine_events,
        api.feeds.snapshot.clone(),
        Arc::clone(&api.events),
        Arc::clone(&api.latest_agents),
        database,
    ));
    tracing::info!(%addr, tls = api.tls, "CTI API listening");
    tokio::spawn(watch_users(Arc::downgrade(&api), modified));
    let task = tokio::spawn(accept_loop(listener, tls, api, stopped));
    Ok(ApiServer { addr, stop, task })
}

/// Re-reads the users file when it changes, off the async threads, and swaps it in: a user
/// removed, or whose role, agent, teams or password changed, is logged out. A file an edit
/// broke is refused with the reason, and the previous users stay. Ends with the API.
async fn watch_users(api: std::sync::Weak<Api>, mut modified: Option<SystemTime>) {
    let mut tick = tokio::time::interval(USERS_RECHECK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let Some(path) = api.upgrade().map(|a| a.config.users_file.clone()) else {
            return;
        };
        let seen = modified;
        let read = tokio::task::spawn_blocking(move || {
            let now = std::fs::metadata(&path).and_then(|m| m.modified()).ok();
            (now != seen).then(|| (now, read_users(&path)))
        })
        .await;
        let Ok(Some((now, result))) = read else {
            continue;
        };
        modified = now;
        let Some(api) = api.upgrade() else {
            return;
        };
        match result {
            Ok((users, _)) => {
                tracing::info!(users = users.len(), "API users reloaded");
                let mut auth = api.lock_auth();
                auth.sessions.retain_users(&users);
                auth.basic.clear();
                drop(auth);
                api.sessions_ended.send_modify(|n| *n += 1);
                *api.users.lock().unwrap_or_else(|e| e.into_inner()) = Arc::new(users);
            }
            Err(e) => {
                tracing::error!(error = %e, "API users file refused; the previous users stay")
            }
        }
    }
}

fn read_users(path: &std::path::Path) -> Result<(Users, Option<SystemTime>), auth::UsersError> {
    match std::fs::metadata(path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok((Users::default(), None)),
        _ => {
            let modified = std::fs::metadata(path).and_then(|m| m.modified()).ok();
            Ok((Users::load(path)?, modified))
        }
    }
}

async fn accept_loop(
    listener: TcpListener,
    tls: Option<TlsAcceptor>,
    api: Arc<Api>,
    mut stopped: watch::Receiver<bool>,
) {
    loop {
        let accepted = tokio::select! {
            a = listener.accept() => a,
            _ = stopped.changed() => return,
        };
        let (stream, peer) = match accepted {
            Ok(a) => a,
            Err(e) => {
                // Out of descriptors, most likely: back off rather than spin.
                tracing::warn!(error = %e, "CTI API accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        // Events are small messages, often several at once (wrap-up, available, ringing):
        // with Nagle's algorithm each one after the first would wait for the client's
        // delayed ACK, 40 ms.
        let _ = stream.set_nodelay(true);
        let Some(slot) = ConnectionSlot::take(&api, auth::address_key(peer.ip())) else {
            // Over the caps: told so in one write that never waits (plain HTTP reads it;
            // a TLS client just sees the close), then closed.
            let _ = stream.try_write(
                b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\n\
                  Content-Length: 41\r\nConnection: close\r\nRetry-After: 5\r\n\r\n\
                  {\"error\": \"too many connections; later\"}",
            );
            drop(stream);
            continue;
        };
        let api = Arc::clone(&api);
        let tls = tls.clone();
        tokio::spawn(async move {
            let _slot = slot;
            let service = hyper::service::service_fn(move |req| {
                let api = Arc::clone(&api);
                async move {
                    let limit = api.config.request_timeout;
                    let answer = tokio::time::timeout(limit, handle(&api, peer.ip(), req)).await;
                    Ok::<_, Infallible>(answer.unwrap_or_else(|_| {
                        let mut r = error(
                            StatusCode::REQUEST_TIMEOUT,
                            "the request took too long to arrive",
                        );
                        r.headers_mut()
                            .insert(header::CONNECTION, HeaderValue::from_static("close"));
                        r
                    }))
                }
            });
            let mut http = hyper::server::conn::http1::Builder::new();
            http.timer(TokioTimer::new())
                .header_read_timeout(HEADER_TIMEOUT)
                .max_buf_size(MAX_READ_BUFFER)
                .max_headers(64);
            let serve = async {
                match tls {
                    Some(acceptor) => {
                        let Ok(Ok(stream)) =
                            tokio::time::timeout(HEADER_TIMEOUT, acceptor.accept(stream)).await
                        else {
                            return;
                        };
                        let _ = http
                            .serve_connection(TokioIo::new(stream), service)
                            .with_upgrades()
                            .await;
                    }
                    None => {
                        let _ = http
                            .serve_connection(TokioIo::new(stream), service)
                            .with_upgrades()
                            .await;
                    }
                }
            };
            let _ = tokio::time::timeout(CONNECTION_LIFETIME, serve).await;
        });
    }
}

/// One connection's place under the caps, given back when the connection ends. Event
/// streams have caps of their own (the same numbers), so the HTTP connection a stream is
/// upgraded from does not count it twice while it hands over.
struct ConnectionSlot {
    api: Arc<Api>,
    ip: IpAddr,
    stream: bool,
}

impl ConnectionSlot {
    fn take(api: &Arc<Api>, ip: IpAddr) -> Option<ConnectionSlot> {
        ConnectionSlot::take_in(api, ip, false)
    }

    fn take_stream(api: &Arc<Api>, ip: IpAddr) -> Option<ConnectionSlot> {
        ConnectionSlot::take_in(api, ip, true)
    }

    fn map(api: &Api, stream: bool) -> std::sync::MutexGuard<'_, HashMap<IpAddr, usize>> {
        let map = if stream {
            &api.streams
        } else {
            &api.connections
        };
        map.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn take_in(api: &Arc<Api>, ip: IpAddr, stream: bool) -> Option<ConnectionSlot> {
        let mut map = ConnectionSlot::map(api, stream);
        let total: usize = map.values().sum();
        let mine = map.get(&ip).copied().unwrap_or(0);
        if total >= api.config.max_connections || mine >= api.config.max_connections_per_address {
            return None;
        }
        *map.entry(ip).or_default() += 1;
        Some(ConnectionSlot {
            api: Arc::clone(api),
            ip,
            stream,
        })
    }
}

impl Drop for ConnectionSlot {
    fn drop(&mut self) {
        let mut map = ConnectionSlot::map(&self.api, self.stream);
        if let Some(n) = map.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                map.remove(&self.ip);
            }
        }
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

/// `Authorization: Bearer TOKEN`, or the session cookie the login set.
fn token(req: &Request<Incoming>) -> Option<String> {
    let headers = req.headers();
    let found = match headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| credentials(v, "bearer"))
    {
        Some(t) => Some(t.to_string()),
        None => headers
            .get_all(header::COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(';'))
            .find_map(|c| {
                c.trim()
                    .strip_prefix(SESSION_COOKIE)
                    .and_then(|rest| rest.strip_prefix('='))
                    .map(str::to_string)
            }),
    };
    found.filter(|t| !t.is_empty() && t.len() <= MAX_TOKEN)
}

/// The credentials of an Authorization header of `scheme` (matched without regard to case,
/// as RFC 9110 says).
fn credentials<'a>(header: &'a str, scheme: &str) -> Option<&'a str> {
    let (given, rest) = header.trim().split_once(' ')?;
    given.eq_ignore_ascii_case(scheme).then(|| rest.trim())
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

async fn login(api: &Api, from: IpAddr, req: Request<Incoming>) -> Reply {
    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Login {
        user: String,
        password: String,
    }
    let login: Login = match read_json(req).await {
        Ok(l) => l,
        Err(r) => return r,
    };
    let user = match api.authenticate(from, &login.user, &login.password).await {
        Ok(u) => u,
        Err(r) => return r,
    };
    let Some(token) = auth::new_token() else {
        return error(
            StatusCode::SERVICE_UNAVAILABLE,
            "no randomness for a session",
        );
    };
    // The users file may have changed while the password was being checked.
    if api.users().get(&user.name) != Some(&user) {
        return error(StatusCode::UNAUTHORIZED, "wrong user name or password");
    }
    let created = api
        .lock_auth()
        .sessions
        .create(&user, token.clone(), Instant::now());
    if let Err(full) = created {
        return error(StatusCode::SERVICE_UNAVAILABLE, full.to_string());
    }
    tracing::info!(user = %user.name, role = user.role.as_str(), %from, "API login");
    let mut r = reply(
        StatusCode::OK,
        json!({
            "token": token,
            "user": user.name,
            "role": user.role.as_str(),
            "agent": user.agent,
            "idle_timeout_s": api.config.session_idle.as_secs(),
            "max_age_s": api.config.session_max.as_secs(),
        }),
    );
    let secure = if api.tls { "; Secure" } else { "" };
    let cookie = format!("{SESSION_COOKIE}={token}; Path=/; HttpOnly; SameSite=Strict{secure}");
    if let Ok(v) = HeaderValue::from_str(&cookie) {
        r.headers_mut().insert(header::SET_COOKIE, v);
    }
    r
}

/// `GET /api/v1/events`: the WebSocket handshake (RFC 6455), then the stream on a task of
/// its own, holding a connection slot like any connection.
fn events_upgrade(api: &Arc<Api>, from: IpAddr, mut req: Request<Incoming>) -> Reply {
    let Some(token) = token(&req) else {
        return error(
            StatusCode::UNAUTHORIZED,
            "log in first (POST /api/v1/session)",
        );
    };
    let Some(session) = api.session(&req) else {
        return error(
            StatusCode::UNAUTHORIZED,
            "log in first (POST /api/v1/session)",
        );
    };
    let headers = req.headers();
    let text = |name: header::HeaderName| {
        headers
            .get(name)
            .map(|v| v.to_str().map(|t| t.trim().to_string()).map_err(|_| ()))
    };
    let upgrade =
        matches!(text(header::UPGRADE), Some(Ok(v)) if v.eq_ignore_ascii_case("websocket"));
    let connection = matches!(text(header::CONNECTION), Some(Ok(v))
        if v.split(',').any(|t| t.trim().eq_ignore_ascii_case("upgrade")));
    let key = match text(header::SEC_WEBSOCKET_KEY) {
        Some(Ok(k))
            if base64::engine::general_purpose::STANDARD
                .decode(&k)
                .is_ok_and(|b| b.len() == 16) =>
        {
            Some(k)
        }
        _ => None,
    };
    let (true, true, Some(key), hyper::Version::HTTP_11) =
        (upgrade, connection, key, req.version())
    else {
        return error(
            StatusCode::BAD_REQUEST,
            "a WebSocket upgrade (HTTP/1.1, RFC 6455) is expected here",
        );
    };
    if !matches!(text(header::SEC_WEBSOCKET_VERSION), Some(Ok(v)) if v == "13") {
        let mut r = error(StatusCode::UPGRADE_REQUIRED, "WebSocket version 13, please");
        r.headers_mut().insert(
            header::SEC_WEBSOCKET_VERSION,
            HeaderValue::from_static("13"),
        );
        return r;
    }
    // A page of another site must not open the stream with the user's cookie: a browser says
    // where the page came from, and it must be this server (scheme, host and port).
    match text(header::ORIGIN) {
        None => {}
        Some(Err(())) => return error(StatusCode::FORBIDDEN, "an Origin that does not read"),
        Some(Ok(origin)) => {
            let host = match text(header::HOST) {
                Some(Ok(h)) => h,
                _ => return error(StatusCode::FORBIDDEN, "an Origin without a Host"),
            };
            if !same_origin(&origin, &host, api.tls) {
                return error(
                    StatusCode::FORBIDDEN,
                    format!("the event stream is not for pages of {origin}"),
                );
            }
        }
    }
    let Some(slot) = ConnectionSlot::take_stream(api, auth::address_key(from)) else {
        return error(
            StatusCode::SERVICE_UNAVAILABLE,
            "too many connections; later",
        );
    };
    let accept = tokio_tungstenite::tungstenite::handshake::derive_accept_key(key.as_bytes());
    // `?queues=false`: a desktop that shows no queues is not sent their changes.
    let queues = !req
        .uri()
        .query()
        .is_some_and(|q| q.split('&').any(|kv| kv == "queues=false"));
    let receiver = api.events.subscribe(&session, queues);
    let stream_api = Arc::clone(api);
    tokio::spawn(async move {
        let _slot = slot;
        if let Ok(upgraded) = hyper::upgrade::on(&mut req).await {
            events::serve(TokioIo::new(upgraded), stream_api, token, session, receiver).await;
        }
    });
    let mut r = Response::new(Full::new(Bytes::new()));
    *r.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    let h = r.headers_mut();
    h.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
    h.insert(header::CONNECTION, HeaderValue::from_static("Upgrade"));
    if let Ok(v) = HeaderValue::from_str(&accept) {
        h.insert(header::SEC_WEBSOCKET_ACCEPT, v);
    }
    r
}

/// Whether a browser's `Origin` is this server as the request reached it: the same scheme,
/// host and port (default ports written or not).
fn same_origin(origin: &str, host: &str, tls: bool) -> bool {
    let scheme = if tls { "https" } else { "http" };
    let default = if tls { 443 } else { 80 };
    let Some((given_scheme, rest)) = origin.split_once("://") else {
        return false;
    };
    let split = |hp: &str| -> Option<(String, u16)> {
        let hp = hp.trim().to_ascii_lowercase();
        // [v6]:port, host:port, or either without a port.
        let (h, p) = match hp.rsplit_once(':') {
            Some((h, p))
                if !p.is_empty()
                    && p.chars().all(|c| c.is_ascii_digit())
                    && (!h.contains(':') || h.ends_with(']')) =>
            {
                (h.to_string(), p.parse().ok()?)
            }
            _ => (hp.clone(), default),
        };
        Some((h, p))
    };
    given_scheme.eq_ignore_ascii_case(scheme) && split(rest).is_some() && split(rest) == split(host)
}

/// Agents see themselves, supervisors their teams' agents, admins everyone.
fn may_see(s: &Session, agent: &crate::call::agent_api::AgentView) -> bool {
    events::may_see(s, &agent.id, agent.team.as_deref())
}

/// The session of a user who may steer agent `id`, or the answer saying why not.
fn steering(api: &Api, id: &str, req: &Request<Incoming>) -> Result<Session, Reply> {
    let Some(session) = api.session(req) else {
        return Err(error(
            StatusCode::UNAUTHORIZED,
            "log in first (POST /api/v1/session)",
        ));
    };
    // Decided on the latest snapshot: an agent's team changes only with the agents file.
    let known = api
        .feeds
        .snapshot
        .borrow()
        .agent_list
        .iter()
        .find(|a| a.id == id)
        .cloned();
    match &known {
        Some(a) if may_see(&session, a) => Ok(session),
        Some(_) => Err(error(
            StatusCode::FORBIDDEN,
            format!("{} may not change agent {id:?}", session.user),
        )),
        None if session.role == Role::Admin => Ok(session),
        None => Err(error(StatusCode::NOT_FOUND, format!("no agent {id:?}"))),
    }
}

type EngineReply =
    Result<crate::call::agent_api::AgentView, crate::call::agent_api::AgentCommandError>;

/// Hands a request to the signalling loop and waits for its answer.
async fn ask_engine(
    api: &Api,
    request: impl FnOnce(tokio::sync::oneshot::Sender<EngineReply>) -> ApiRequest,
) -> Result<crate::call::agent_api::AgentView, Reply> {
    use crate::call::agent_api::AgentCommandError as E;
    let (reply_tx, reply_rx) = tokio::sync::oneshot::channel();
    if api.feeds.commands.try_send(request(reply_tx)).is_err() {
        return Err(error(
            StatusCode::SERVICE_UNAVAILABLE,
            "the server is busy; try again",
        ));
    }
    match tokio::time::timeout(COMMAND_WAIT, reply_rx).await {
        Ok(Ok(Ok(view))) => Ok(view),
        Ok(Ok(Err(e @ E::UnknownAgent(_)))) => Err(error(StatusCode::NOT_FOUND, e.to_string())),
        Ok(Ok(Err(e @ E::NotInWrapUp(_)))) => Err(error(StatusCode::CONFLICT, e.to_string())),
        Ok(Ok(Err(
            e @ (E::NotOnCall(_)
            | E::OtherCall(_)
            | E::PhoneHolds(_)
            | E::Consulting(_)
            | E::NotConsulting(_)
            | E::ConsultRinging(_)
            | E::Unavailable { .. }),
        ))) => Err(error(StatusCode::CONFLICT, e.to_string())),
        Ok(Ok(Err(e @ E::NoSuchTarget(_)))) => Err(error(StatusCode::NOT_FOUND, e.to_string())),
        Ok(Ok(Err(e @ E::NotYourTeam(_)))) => Err(error(StatusCode::FORBIDDEN, e.to_string())),
        Ok(Ok(Err(e))) => Err(error(StatusCode::BAD_REQUEST, e.to_string())),
        _ => Err(error(
            StatusCode::SERVICE_UNAVAILABLE,
            "the server did not answer in time",
        )),
    }
}

/// `POST /api/v1/agents/{id}/wrap-up` with `{"disposition": "resolved", "notes": "...",
/// "resolved": true, "done": true}`: every field optional.
async fn wrap_up(api: &Api, id: String, req: Request<Incoming>) -> Reply {
    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Body {
        disposition: Option<String>,
        notes: Option<String>,
        resolved: Option<bool>,
        #[serde(default)]
        done: bool,
    }
    let session = match steering(api, &id, &req) {
        Ok(s) => s,
        Err(r) => return r,
    };
    let body: Body = match read_json(req).await {
        Ok(b) => b,
        Err(r) => return r,
    };
    let note = crate::call::WrapNote {
        disposition: body.disposition,
        notes: body.notes,
        resolved: body.resolved,
    };
    let done = body.done;
    match ask_engine(api, |reply| ApiRequest::WrapUp {
        id: id.clone(),
        note,
        done,
        reply,
    })
    .await
    {
        Ok(view) => {
            tracing::info!(user = %session.user, agent = %id, done, "wrap-up recorded through the API");
            reply(StatusCode::OK, json!(view))
        }
        Err(r) => r,
    }
}

/// `POST /api/v1/agents/{id}/state` with `{"state": "ready"}`, `{"state": "not_ready",
/// "reason": "lunch"}`, `logged_in`, `logged_out` or `wrap_up_done`.
async fn set_agent_state(api: &Api, id: String, req: Request<Incoming>) -> Reply {
    use crate::call::agent_api::AgentCommand;
    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Body {
        state: String,
        reason: Option<String>,
    }
    let session = match steering(api, &id, &req) {
        Ok(s) => s,
        Err(r) => return r,
    };
    let body: Body = match read_json(req).await {
        Ok(b) => b,
        Err(r) => return r,
    };
    let command = match (body.state.as_str(), body.reason) {
        ("ready", None) => AgentCommand::Ready,
        ("not_ready", Some(reason)) => AgentCommand::NotReady { reason },
        ("not_ready", None) => {
            return error(StatusCode::BAD_REQUEST, "not_ready needs a reason");
        }
        ("logged_in", None) => AgentCommand::Login,
        ("logged_out", None) => AgentCommand::Logout,
        ("wrap_up_done", None) => AgentCommand::EndWrapUp,
        (state @ ("ready" | "logged_in" | "logged_out" | "wrap_up_done"), Some(_)) => {
            return error(StatusCode::BAD_REQUEST, format!("{state} takes no reason"));
        }
        (other, _) => {
            return error(
                StatusCode::BAD_REQUEST,
                format!(
                    "unknown state {other:?} (ready, not_ready, logged_in, logged_out, wrap_up_done)"
                ),
            );
        }
    };
    match ask_engine(api, |reply| ApiRequest::Agent {
        id: id.clone(),
        command,
        reply,
    })
    .await
    {
        Ok(view) => {
            tracing::info!(user = %session.user, agent = %id, state = view.state, "agent state set through the API");
            reply(StatusCode::OK, json!(view))
        }
        Err(r) => r,
    }
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
