//! Agent desktops for `hotline load --desktops N`: N clients of the CTI event stream, each
//! logged in as agent user `base + i` (as the agents' own desktops would be), connected before
//! the callers start and reading every message until the run ends. The latency of each
//! agent-state event is its arrival time here minus the `at_ms` the engine stamped when the
//! state changed (to the microsecond); both clocks are this machine's wall clock.
//!
//! One thread with a single-threaded tokio runtime carries every connection: a desktop's
//! work is a read and a JSON parse per message.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use futures_util::StreamExt;
use serde::Serialize;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

use super::hist::Histogram;
use super::{LoadError, io_err};

/// The most desktops one run may have.
pub const MAX_DESKTOPS: u32 = 5000;
/// Logins in flight at once (each is a password hash on the server).
const LOGINS_AT_ONCE: usize = 8;
/// A login or a connection that takes longer than this failed.
const CONNECT_LIMIT: Duration = Duration::from_secs(30);

#[derive(Debug, Clone)]
pub struct DesktopOptions {
    /// The server's API address (loopback); None: no desktops.
    pub api: Option<SocketAddr>,
    pub count: u32,
    /// Desktop i logs in as user `base + i`.
    pub base: u32,
    pub password: String,
}

impl Default for DesktopOptions {
    fn default() -> Self {
        DesktopOptions {
            api: None,
            count: 0,
            base: 2000,
            password: "secret-desk".into(),
        }
    }
}

impl DesktopOptions {
    pub(crate) fn validate(&self) -> Result<(), LoadError> {
        if self.count > MAX_DESKTOPS {
            return Err(LoadError::Invalid(format!(
                "--desktops {} is above {MAX_DESKTOPS}",
                self.count
            )));
        }
        match self.api {
            None if self.count > 0 => Err(LoadError::Invalid(
                "--desktops needs --api (the server's API address)".into(),
            )),
            Some(a) if !a.ip().is_loopback() => Err(LoadError::NotLoopback(a.ip())),
            _ => Ok(()),
        }
    }
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct DesktopReport {
    pub desktops: u32,
    pub connected: u32,
    pub login_failures: u32,
    pub connect_failures: u32,
    /// Seconds from the first login to the last stream open.
    pub connect_s: f64,
    /// Streams the server closed while the run went on (a slow client is dropped).
    pub closed_by_server: u32,
    /// Agent-state events received, and their latency from the state change.
    pub agent_events: u64,
    pub latency_ms_p50: Option<f64>,
    pub latency_ms_p99: Option<f64>,
    pub latency_ms_max: Option<f64>,
    /// Every other message (hello, queues, offers, ...).
    pub other_messages: u64,
    /// The slowest agent events: latency ms, seconds into the run (from the first
    /// desktop's login), and the state the agent went to.
    pub slowest: Vec<(f64, f64, String)>,
}

/// The slowest events kept for the report.
const SLOWEST: usize = 10;

/// The desktops' thread while the callers run.
pub(crate) struct RunningDesktops {
    thread: std::thread::JoinHandle<DesktopReport>,
    stop: Arc<AtomicBool>,
}

impl RunningDesktops {
    pub(crate) fn finish(self) -> Result<DesktopReport, LoadError> {
        self.stop.store(true, Ordering::Relaxed);
        self.thread
            .join()
            .map_err(|_| LoadError::Panicked("desktops"))
    }
}

/// Log every desktop in and open its stream; returns once all are connected (or failed).
pub(crate) fn start(opts: &DesktopOptions) -> Result<RunningDesktops, LoadError> {
    let Some(api) = opts.api else {
        return Err(LoadError::Invalid("no API address".into()));
    };
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    let stop = Arc::new(AtomicBool::new(false));
    let (count, base, password) = (opts.count, opts.base, opts.password.clone());
    let stopping = Arc::clone(&stop);
    let thread = std::thread::Builder::new()
        .name("load-desktops".into())
        .spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("a tokio runtime for the desktops");
            rt.block_on(run(api, count, base, password, ready_tx, stopping))
        })
        .map_err(io_err("spawning the desktops' thread"))?;
    // The thread says when every desktop is in (or gave up).
    let _ = ready_rx.recv();
    Ok(RunningDesktops { thread, stop })
}

async fn run(
    api: SocketAddr,
    count: u32,
    base: u32,
    password: String,
    ready: std::sync::mpsc::Sender<()>,
    stop: Arc<AtomicBool>,
) -> DesktopReport {
    let mut report = DesktopReport {
        desktops: count,
        ..DesktopReport::default()
    };
    let began = std::time::Instant::now();
    let logins = Arc::new(tokio::sync::Semaphore::new(LOGINS_AT_ONCE));
    // Each desktop reads from the moment its stream opens: a message that waited in the
    // socket for the others to connect would be timed late.
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let (opened_tx, mut opened_rx) = tokio::sync::mpsc::unbounded_channel();
    let mut desktops = tokio::task::JoinSet::new();
    for i in 0..count {
        let (logins, password) = (Arc::clone(&logins), password.clone());
        let (tx, opened, stop) = (tx.clone(), opened_tx.clone(), Arc::clone(&stop));
        desktops.spawn(async move {
            let user = (base + i).to_string();
            let token = {
                let _turn = logins.acquire().await;
                tokio::time::timeout(CONNECT_LIMIT, login(api, &user, &password)).await
            };
            let Ok(Some(token)) = token else {
                let _ = opened.send(Opened::LoginFailed);
                return;
            };
            match tokio::time::timeout(CONNECT_LIMIT, open_stream(api, &token)).await {
                Ok(Some(ws)) => {
                    let _ = opened.send(Opened::Connected);
                    read_stream(ws, tx, stop).await;
                    // As a desktop that closes: the server keeps no session per run.
                    let _ = tokio::time::timeout(CONNECT_LIMIT, logout(api, &token)).await;
                }
                _ => {
                    let _ = opened.send(Opened::ConnectFailed);
                }
            }
        });
    }
    drop((tx, opened_tx));
    for _ in 0..count {
        match opened_rx.recv().await {
            Some(Opened::Connected) => report.connected += 1,
            Some(Opened::LoginFailed) => report.login_failures += 1,
            Some(Opened::ConnectFailed) | None => report.connect_failures += 1,
        }
    }
    report.connect_s = began.elapsed().as_secs_f64();
    let _ = ready.send(());
    // Nanosecond latencies at 10 µs resolution up to a second; beyond, the maximum.
    let mut latency = Histogram::new(Duration::from_micros(10), 100_000);
    while let Some(seen) = rx.recv().await {
        match seen {
            Seen::AgentEvent(ns, state) => {
                latency.record_ns(ns);
                let at = began.elapsed().as_secs_f64();
                let ms = ns as f64 / 1e6;
                if report.slowest.len() < SLOWEST || report.slowest.last().is_some_and(|s| s.0 < ms)
                {
                    report.slowest.push((ms, at, state));
                    report.slowest.sort_by(|a, b| b.0.total_cmp(&a.0));
                    report.slowest.truncate(SLOWEST);
                }
            }
            Seen::Other => report.other_messages += 1,
            Seen::ClosedByServer => report.closed_by_server += 1,
        }
    }
    while desktops.join_next().await.is_some() {}
    report.agent_events = latency.count();
    report.latency_ms_p50 = latency.quantile_ms(0.5);
    report.latency_ms_p99 = latency.quantile_ms(0.99);
    report.latency_ms_max = latency.max_ms();
    report
}

enum Opened {
    Connected,
    LoginFailed,
    ConnectFailed,
}

enum Seen {
    /// Nanoseconds from the state change to the message's arrival, and the new state.
    AgentEvent(u64, String),
    Other,
    ClosedByServer,
}

type Ws = tokio_tungstenite::WebSocketStream<TcpStream>;

/// Read until the run stops (checked every 100 ms) or the server closes the stream.
async fn read_stream(
    mut ws: Ws,
    tx: tokio::sync::mpsc::UnboundedSender<Seen>,
    stop: Arc<AtomicBool>,
) {
    let mut check = tokio::time::interval(Duration::from_millis(100));
    loop {
        tokio::select! {
            message = ws.next() => match message {
                Some(Ok(Message::Text(text))) => {
                    let arrived = SystemTime::now()
                        .duration_since(UNIX_EPOCH)
                        .map_or(0, |d| d.as_nanos() as u64);
                    let _ = tx.send(classify(&text, arrived));
                }
                Some(Ok(_)) => {}
                Some(Err(_)) | None => {
                    if !stop.load(Ordering::Relaxed) {
                        let _ = tx.send(Seen::ClosedByServer);
                    }
                    return;
                }
            },
            _ = check.tick() => {
                if stop.load(Ordering::Relaxed) {
                    let _ = ws.close(None).await;
                    return;
                }
            }
        }
    }
}

fn classify(text: &str, arrived_ns: u64) -> Seen {
    let Ok(v) = serde_json::from_str::<serde_json::Value>(text) else {
        return Seen::Other;
    };
    match (v["type"].as_str(), v["at_ms"].as_f64()) {
        (Some("agent"), Some(at_ms)) if at_ms >= 0.0 => {
            let at_ns = (at_ms * 1e6) as u64;
            let state = v["agent"]["state"].as_str().unwrap_or_default().to_string();
            Seen::AgentEvent(arrived_ns.saturating_sub(at_ns), state)
        }
        _ => Seen::Other,
    }
}

/// `POST /api/v1/session`; the session token.
async fn login(api: SocketAddr, user: &str, password: &str) -> Option<String> {
    let body = serde_json::json!({ "user": user, "password": password }).to_string();
    let mut s = TcpStream::connect(api).await.ok()?;
    let request = format!(
        "POST /api/v1/session HTTP/1.1\r\nHost: {api}\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    s.write_all(request.as_bytes()).await.ok()?;
    let mut answer = Vec::new();
    s.take(64 * 1024).read_to_end(&mut answer).await.ok()?;
    let text = String::from_utf8_lossy(&answer);
    let json = text.split_once("\r\n\r\n")?.1;
    let v: serde_json::Value = serde_json::from_str(json).ok()?;
    v["token"].as_str().map(str::to_string)
}

/// `DELETE /api/v1/session`.
async fn logout(api: SocketAddr, token: &str) {
    let Ok(mut s) = TcpStream::connect(api).await else {
        return;
    };
    let request = format!(
        "DELETE /api/v1/session HTTP/1.1\r\nHost: {api}\r\nConnection: close\r\nAuthorization: Bearer {token}\r\nContent-Length: 0\r\n\r\n"
    );
    if s.write_all(request.as_bytes()).await.is_ok() {
        let mut answer = Vec::new();
        let _ = s.take(64 * 1024).read_to_end(&mut answer).await;
    }
}

async fn open_stream(api: SocketAddr, token: &str) -> Option<Ws> {
    // As the desktop page does: it shows no queues, so it does not ask for their changes.
    let mut request = format!("ws://{api}/api/v1/events?queues=false")
        .into_client_request()
        .ok()?;
    request
        .headers_mut()
        .insert("Authorization", format!("Bearer {token}").parse().ok()?);
    let stream = TcpStream::connect(api).await.ok()?;
    let _ = stream.set_nodelay(true);
    let config = tokio_tungstenite::tungstenite::protocol::WebSocketConfig::default()
        .read_buffer_size(16 * 1024);
    let (ws, _) = tokio_tungstenite::client_async_with_config(request, stream, Some(config))
        .await
        .ok()?;
    Some(ws)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn agent_events_are_timed_from_their_stamp() {
        let text = r#"{"type":"agent","agent":{"id":"2000"},"at_ms":1700000000000.25}"#;
        match classify(text, 1_700_000_000_004_500_000) {
            Seen::AgentEvent(ns, _) => assert!((4_249_000..=4_251_000).contains(&ns), "{ns}"),
            _ => panic!("an agent event"),
        }
        assert!(matches!(
            classify(r#"{"type":"queues","queues":[]}"#, 0),
            Seen::Other
        ));
        assert!(matches!(classify("not json", 0), Seen::Other));
    }

    #[test]
    fn desktops_need_a_loopback_api() {
        let mut o = DesktopOptions {
            count: 10,
            ..DesktopOptions::default()
        };
        assert!(o.validate().is_err(), "no API address");
        o.api = Some("192.0.2.1:8080".parse().unwrap());
        assert!(matches!(o.validate(), Err(LoadError::NotLoopback(_))));
        o.api = Some("127.0.0.1:8080".parse().unwrap());
        assert!(o.validate().is_ok());
    }
}
