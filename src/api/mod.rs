//! The CTI API: JSON over HTTP (hyper on the server's tokio runtime), plain or over TLS.
//! Everything but the health check needs a session (or, for `/metrics`, a supervisor's or
//! admin's name and password). This module only reads what the engine publishes (a snapshot
//! a second); it never reaches into the call platform, so a flood of API clients cannot slow a
//! call.
//!
//! Bounds: connections in total and per address, a deadline for each request's headers, a
//! cap on body size, argon2 checks two at a time, login throttling per user and per address.

pub mod auth;
pub mod metrics;

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
    ("GET", "/metrics"),
];

/// Request bodies are small JSON objects.
const MAX_BODY: usize = 16 * 1024;
const HEADER_TIMEOUT: Duration = Duration::from_secs(10);
/// Argon2 takes tens of milliseconds and memory: this many at once, the rest wait.
const CONCURRENT_HASHES: usize = 2;
const SESSION_COOKIE: &str = "hotline_session";
/// The users file is looked at for changes at most this often.
const USERS_RECHECK: Duration = Duration::from_secs(1);

#[derive(Debug, Clone)]
pub struct ApiConfig {
    pub bind: SocketAddr,
    pub users_file: PathBuf,
    pub session_idle: Duration,
    pub session_max: Duration,
    pub max_connections: usize,
    pub max_connections_per_address: usize,
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

/// What the engine and the CDR writer last published.
#[derive(Clone)]
pub struct Feeds {
    pub snapshot: watch::Receiver<Snapshot>,
    pub cdr: watch::Receiver<WriterStats>,
}

struct UsersCell {
    users: Arc<Users>,
    modified: Option<SystemTime>,
    checked: Instant,
}

struct AuthState {
    sessions: Sessions,
    throttle: Throttle,
}

/// Shared by the connection tasks. The two locks are held only for map look-ups, never across
/// an await or a hash.
pub struct Api {
    config: ApiConfig,
    tls: bool,
    users: Mutex<UsersCell>,
    auth: Mutex<AuthState>,
    hashing: Semaphore,
    /// A hash to check unknown names against, so a wrong name takes as long as a wrong
    /// password (None only if the OS gave no randomness at start).
    decoy: Option<User>,
    connections: Mutex<HashMap<IpAddr, usize>>,
    feeds: Feeds,
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
    let api = Arc::new(Api {
        tls: tls.is_some(),
        users: Mutex::new(UsersCell {
            users: Arc::new(users),
            modified,
            checked: Instant::now(),
        }),
        auth: Mutex::new(AuthState {
            sessions: Sessions::new(config.session_idle, config.session_max, 10_000),
            throttle: Throttle::new(Duration::from_secs(300), 5, 30, 10_000),
        }),
        hashing: Semaphore::new(CONCURRENT_HASHES),
        decoy,
        connections: Mutex::new(HashMap::new()),
        feeds,
        config,
    });
    tracing::info!(%addr, tls = api.tls, "CTI API listening");
    let (stop, stopped) = watch::channel(false);
    let task = tokio::spawn(accept_loop(listener, tls, api, stopped));
    Ok(ApiServer { addr, stop, task })
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
        let Some(slot) = ConnectionSlot::take(&api, peer.ip()) else {
            // Over the caps: closed at once, costing nothing more.
            drop(stream);
            continue;
        };
        let api = Arc::clone(&api);
        let tls = tls.clone();
        tokio::spawn(async move {
            let _slot = slot;
            let service = hyper::service::service_fn(move |req| {
                let api = Arc::clone(&api);
                async move { Ok::<_, Infallible>(handle(&api, peer.ip(), req).await) }
            });
            let mut http = hyper::server::conn::http1::Builder::new();
            http.timer(TokioTimer::new())
                .header_read_timeout(HEADER_TIMEOUT);
            match tls {
                Some(acceptor) => {
                    let Ok(Ok(stream)) =
                        tokio::time::timeout(HEADER_TIMEOUT, acceptor.accept(stream)).await
                    else {
                        return;
                    };
                    let _ = http.serve_connection(TokioIo::new(stream), service).await;
                }
                None => {
                    let _ = http.serve_connection(TokioIo::new(stream), service).await;
                }
            }
        });
    }
}

/// One connection's place under the caps, given back when the connection ends.
struct ConnectionSlot {
    api: Arc<Api>,
    ip: IpAddr,
}

impl ConnectionSlot {
    fn take(api: &Arc<Api>, ip: IpAddr) -> Option<ConnectionSlot> {
        let mut map = api.connections.lock().unwrap_or_else(|e| e.into_inner());
        let total: usize = map.values().sum();
        let mine = map.get(&ip).copied().unwrap_or(0);
        if total >= api.config.max_connections || mine >= api.config.max_connections_per_address {
            return None;
        }
        *map.entry(ip).or_default() += 1;
        Some(ConnectionSlot {
            api: Arc::clone(api),
            ip,
        })
    }
}

impl Drop for ConnectionSlot {
    fn drop(&mut self) {
        let mut map = self
            .api
            .connections
            .lock()
            .unwrap_or_else(|e| e.into_inner());
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

async fn handle(api: &Api, from: IpAddr, req: Request<Incoming>) -> Reply {
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
            Some(s) => reply(
                StatusCode::OK,
                json!({
                    "user": s.user,
                    "role": s.role.as_str(),
                    "agent": s.agent,
                    "teams": s.teams,
                }),
            ),
            None => error(
                StatusCode::UNAUTHORIZED,
                "log in first (POST /api/v1/session)",
            ),
        },
        (&Method::GET, "/metrics") => metrics(api, from, &req).await,
        _ => {
            let allowed: Vec<&str> = ROUTES
                .iter()
                .filter(|(_, p)| *p == path)
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

    /// The users, re-read when the file changed (at most once a second). A file broken by an
    /// edit keeps the previous users (and says so); sessions of users removed or changed end.
    fn users(&self) -> Arc<Users> {
        let mut cell = self.users.lock().unwrap_or_else(|e| e.into_inner());
        if cell.checked.elapsed() >= USERS_RECHECK {
            cell.checked = Instant::now();
            let modified = std::fs::metadata(&self.config.users_file)
                .and_then(|m| m.modified())
                .ok();
            if modified != cell.modified {
                match read_users(&self.config.users_file) {
                    Ok((users, modified)) => {
                        tracing::info!(users = users.len(), "API users reloaded");
                        self.lock_auth().sessions.retain_users(&users);
                        cell.users = Arc::new(users);
                        cell.modified = modified;
                    }
                    Err(e) => {
                        tracing::error!(error = %e, "API users file refused; the previous users stay");
                        cell.modified = modified;
                    }
                }
            }
        }
        Arc::clone(&cell.users)
    }

    fn session(&self, req: &Request<Incoming>) -> Option<Session> {
        let token = token(req)?;
        // Picks up a changed users file before trusting a session of it.
        let _ = self.users();
        self.lock_auth().sessions.check(&token, Instant::now())
    }

    /// Checks a name and password, throttled; Ok: the user.
    async fn authenticate(&self, from: IpAddr, name: &str, password: &str) -> Result<User, Reply> {
        if let Some(wait) = self.lock_auth().throttle.check(name, from, Instant::now()) {
            let mut r = error(
                StatusCode::TOO_MANY_REQUESTS,
                "too many failed logins; try again later",
            );
            if let Ok(v) = HeaderValue::from_str(&wait.as_secs().max(1).to_string()) {
                r.headers_mut().insert(header::RETRY_AFTER, v);
            }
            return Err(r);
        }
        let users = self.users();
        let user = users.get(name).cloned();
        let candidate = user.clone().or_else(|| self.decoy.clone());
        let password = password.to_string();
        let permit = self.hashing.acquire().await;
        let good = match candidate {
            Some(candidate) => {
                tokio::task::spawn_blocking(move || auth::verify(&candidate, &password))
                    .await
                    .unwrap_or(false)
            }
            None => false,
        };
        drop(permit);
        match user {
            Some(user) if good => {
                self.lock_auth().throttle.succeeded(name);
                Ok(user)
            }
            _ => {
                self.lock_auth().throttle.failed(name, from, Instant::now());
                tracing::info!(user = name, %from, "API login refused");
                Err(error(
                    StatusCode::UNAUTHORIZED,
                    "wrong user name or password",
                ))
            }
        }
    }
}

/// `Authorization: Bearer TOKEN`, or the session cookie the login set.
fn token(req: &Request<Incoming>) -> Option<String> {
    let headers = req.headers();
    if let Some(v) = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        && let Some(t) = v.strip_prefix("Bearer ")
    {
        return Some(t.trim().to_string());
    }
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .find_map(|c| {
            c.trim()
                .strip_prefix("hotline_session=")
                .map(str::to_string)
        })
}

async fn read_json<T: for<'de> Deserialize<'de>>(req: Request<Incoming>) -> Result<T, Reply> {
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
    api.lock_auth()
        .sessions
        .create(&user, token.clone(), Instant::now());
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

async fn metrics(api: &Api, from: IpAddr, req: &Request<Incoming>) -> Reply {
    // A scraper sends Basic credentials; a browser its session.
    let basic = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Basic "))
        .and_then(|b| {
            base64::engine::general_purpose::STANDARD
                .decode(b.trim())
                .ok()
        })
        .and_then(|b| String::from_utf8(b).ok());
    let role = match basic {
        Some(pair) => {
            let (name, password) = pair.split_once(':').unwrap_or((&pair, ""));
            match api.authenticate(from, name, password).await {
                Ok(u) => u.role,
                Err(r) => return r,
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
    let text = metrics::render(&api.feeds.snapshot.borrow(), &api.feeds.cdr.borrow());
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
