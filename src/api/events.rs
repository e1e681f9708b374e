//! The event stream: `GET /api/v1/events` upgraded to a WebSocket. A hub task turns what the
//! engine tells (agent state changes, screen pops) and the queue snapshot into JSON once, adds
//! the caller's history to a screen pop (from the CDR database, with a deadline), and
//! broadcasts; each connection sends on what its user may see.
//!
//! Slow consumers are dropped, never buffered: the broadcast keeps a bounded backlog, and a
//! connection that falls behind it, or whose send does not finish in time, is closed with a
//! reason (the client reconnects and gets a fresh picture).

use std::sync::Arc;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::json;
use tokio::sync::{broadcast, mpsc, watch};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, Role as WsRole, WebSocketConfig};

use super::auth::{Role, Session};
use crate::call::agent_api::AgentView;
use crate::call::events::EngineEvent;
use crate::call::snapshot::Snapshot;
use std::collections::HashMap;

/// Events kept for connections that are behind; past this a connection is dropped.
const BACKLOG: usize = 1024;
/// A send to one client must finish within this.
const SEND_DEADLINE: Duration = Duration::from_secs(5);
/// How often a connection checks that its session is still live.
const SESSION_RECHECK: Duration = Duration::from_secs(15);
/// A caller's past calls shown in the screen pop.
const HISTORY: u32 = 5;
/// The history look-up's deadline: the pop goes out without it rather than late.
const HISTORY_DEADLINE: Duration = Duration::from_secs(1);
/// Clients only send pings and closes: no message of theirs is larger.
const MAX_CLIENT_MESSAGE: usize = 4096;

/// One event, rendered once, with who may see it.
#[derive(Debug)]
pub struct Outgoing {
    /// None: everyone; Some: about this agent (of this team).
    pub about: Option<(String, Option<String>)>,
    pub text: String,
    /// After this message the stream closes: the client must start afresh.
    pub close: bool,
}

/// History look-ups running at once; a pop past this goes out with `history: null`.
const HISTORY_LOOKUPS: usize = 4;
/// After the database failed, how long before the hub tries it again.
const HISTORY_BACKOFF: Duration = Duration::from_secs(30);
/// A stream is pinged this often, and closed when the client has said nothing for
/// three times as long (a desktop that went away without closing).
const PING_EVERY: Duration = Duration::from_secs(30);

/// Every agent's latest state as the hub last heard it.
pub type LatestAgents = Arc<std::sync::Mutex<HashMap<String, AgentView>>>;

pub fn channel() -> broadcast::Sender<Arc<Outgoing>> {
    broadcast::channel(BACKLOG).0
}

/// Whether a session may see an event about `agent` of `team`.
pub fn may_see(s: &Session, agent: &str, team: Option<&str>) -> bool {
    match s.role {
        Role::Admin => true,
        Role::Supervisor => team.is_some_and(|t| s.teams.iter().any(|x| x == t)),
        Role::Agent => s.agent.as_deref() == Some(agent),
    }
}

/// The queues as the API shows them (`GET /api/v1/queues` and the stream).
pub fn queues_json(snapshot: &Snapshot) -> serde_json::Value {
    snapshot
        .queues
        .iter()
        .map(|q| {
            json!({
                "name": q.name,
                "waiting": q.waiting,
                "longest_wait_s": q.longest_wait.as_secs_f64(),
                "agents_logged_in": q.agents_logged_in,
            })
        })
        .collect()
}

/// Turns engine events and queue snapshots into broadcast messages. Never waits on the
/// database: a screen pop goes out at once, and the caller's history follows in a message of
/// its own when a look-up (a few at a time, with a deadline) finds it. Ends when the engine's
/// side closes.
pub async fn hub(
    mut events: mpsc::Receiver<EngineEvent>,
    mut snapshots: watch::Receiver<Snapshot>,
    out: broadcast::Sender<Arc<Outgoing>>,
    latest: LatestAgents,
    database: String,
) {
    let mut store: Option<crate::cdr::CdrStore> = None;
    let mut retry_at = tokio::time::Instant::now();
    let lookups = Arc::new(tokio::sync::Semaphore::new(HISTORY_LOOKUPS));
    let mut last_queues = serde_json::Value::Null;
    loop {
        tokio::select! {
            event = events.recv() => {
                let Some(event) = event else { return };
                match event {
                    EngineEvent::Agent { view, at_ms } => {
                        let text = json!({ "type": "agent", "agent": view, "at_ms": at_ms }).to_string();
                        let about = Some((view.id.clone(), view.team.clone()));
                        // The map first: a stream that reads it after subscribing misses
                        // nothing, at worst it hears of this change twice.
                        latest
                            .lock()
                            .unwrap_or_else(|e| e.into_inner())
                            .insert(view.id.clone(), view);
                        let _ = out.send(Arc::new(Outgoing { about, text, close: false }));
                    }
                    EngineEvent::Offer(pop) => {
                        let about = Some((pop.agent.clone(), pop.team.clone()));
                        let text = json!({ "type": "offer", "offer": pop, "history": null })
                            .to_string();
                        let _ = out.send(Arc::new(Outgoing { about: about.clone(), text, close: false }));
                        if out.receiver_count() == 0 || !crate::cdr::record::has_number(&pop.caller) {
                            continue;
                        }
                        if store.is_none() && tokio::time::Instant::now() >= retry_at {
                            let connect = crate::cdr::CdrStore::connect(&database);
                            match tokio::time::timeout(HISTORY_DEADLINE, connect).await {
                                Ok(Ok(s)) => store = Some(s),
                                _ => retry_at = tokio::time::Instant::now() + HISTORY_BACKOFF,
                            }
                        }
                        let (Some(s), Ok(permit)) = (store.clone(), Arc::clone(&lookups).try_acquire_owned()) else {
                            continue;
                        };
                        let out = out.clone();
                        tokio::spawn(async move {
                            let _permit = permit;
                            let found = tokio::time::timeout(
                                HISTORY_DEADLINE,
                                s.by_caller(&pop.caller, HISTORY),
                            )
                            .await;
                            let Ok(Ok(calls)) = found else { return };
                            let text = json!({
                                "type": "history",
                                "call": pop.call,
                                "caller": pop.caller,
                                "history": history_json(&calls),
                            })
                            .to_string();
                            let _ = out.send(Arc::new(Outgoing { about, text, close: false }));
                        });
                    }
                    EngineEvent::Consult(update) => {
                        let about = Some((update.agent.clone(), update.team.clone()));
                        let text = json!({ "type": "consult", "consult": update }).to_string();
                        let _ = out.send(Arc::new(Outgoing { about, text, close: false }));
                    }
                    EngineEvent::Lost => {
                        latest.lock().unwrap_or_else(|e| e.into_inner()).clear();
                        let text = json!({ "type": "resync" }).to_string();
                        let _ = out.send(Arc::new(Outgoing { about: None, text, close: true }));
                    }
                }
            }
            changed = snapshots.changed() => {
                if changed.is_err() {
                    return;
                }
                let queues = queues_json(&snapshots.borrow_and_update());
                if queues != last_queues {
                    let text = json!({ "type": "queues", "queues": queues }).to_string();
                    last_queues = queues;
                    let _ = out.send(Arc::new(Outgoing { about: None, text, close: false }));
                }
            }
        }
    }
}

fn history_json(calls: &[crate::cdr::CdrRecord]) -> serde_json::Value {
    calls
        .iter()
        .map(|c| {
            json!({
                "call": c.id,
                "start": crate::cdr::iso8601_utc(c.start_ms),
                "dialled": c.dialled,
                "queue": c.queue,
                "agent": c.agent,
                "disposition": c.wrap_disposition,
                "resolved": c.resolved,
                "abandoned": c.abandoned,
            })
        })
        .collect()
}

/// One client: a hello with what they may see now, then every event they may see, until
/// they leave, their session ends, or they fall behind.
pub async fn serve<S>(
    io: S,
    api: Arc<super::Api>,
    token: String,
    mut session: Session,
    mut events: broadcast::Receiver<Arc<Outgoing>>,
) where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    let config = WebSocketConfig::default()
        .max_message_size(Some(MAX_CLIENT_MESSAGE))
        .max_frame_size(Some(MAX_CLIENT_MESSAGE));
    let mut ws = WebSocketStream::from_raw_socket(io, WsRole::Server, Some(config)).await;
    let hello = {
        // Copied out first: the signalling loop's next publish never waits on this.
        let snapshot = api.feeds.snapshot.borrow().clone();
        let latest = api
            .latest_agents
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        // The snapshot may be a second old; an agent's latest event is newer.
        let agents: Vec<AgentView> = snapshot
            .agent_list
            .iter()
            .map(|a| latest.get(&a.id).cloned().unwrap_or_else(|| a.clone()))
            .filter(|a| may_see(&session, &a.id, a.team.as_deref()))
            .collect();
        json!({
            "type": "hello",
            "user": session.user,
            "role": session.role.as_str(),
            "agents": agents,
            "queues": queues_json(&snapshot),
        })
        .to_string()
    };
    if send(&mut ws, hello).await.is_err() {
        return;
    }
    let mut recheck = tokio::time::interval(SESSION_RECHECK);
    recheck.tick().await;
    let mut ping = tokio::time::interval(PING_EVERY);
    ping.tick().await;
    let mut heard = tokio::time::Instant::now();
    let mut stopping = api.stopping.clone();
    loop {
        tokio::select! {
            event = events.recv() => match event {
                Ok(event) => {
                    let visible = match &event.about {
                        None => true,
                        Some((agent, team)) => may_see(&session, agent, team.as_deref()),
                    };
                    if event.close {
                        let _ = send(&mut ws, event.text.clone()).await;
                        close(&mut ws, CloseCode::Policy, "events were missed; reconnect").await;
                        return;
                    }
                    if visible && send(&mut ws, event.text.clone()).await.is_err() {
                        // Not taken in time: a slow client is closed, never buffered.
                        close(&mut ws, CloseCode::Policy, "too slow: reconnect").await;
                        return;
                    }
                }
                Err(broadcast::error::RecvError::Lagged(missed)) => {
                    tracing::info!(user = %session.user, missed, "event stream client too slow; dropped");
                    close(&mut ws, CloseCode::Policy, "too slow: events were missed; reconnect").await;
                    return;
                }
                Err(broadcast::error::RecvError::Closed) => {
                    close(&mut ws, CloseCode::Away, "server shutting down").await;
                    return;
                }
            },
            incoming = ws.next() => match incoming {
                // Pings are answered by the library as they are read; other messages carry
                // nothing the server needs, but show the client is there.
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => return,
                Some(Ok(_)) => heard = tokio::time::Instant::now(),
            },
            _ = ping.tick() => {
                if heard.elapsed() > 3 * PING_EVERY {
                    close(&mut ws, CloseCode::Policy, "no answer to pings").await;
                    return;
                }
                let ping = tokio::time::timeout(SEND_DEADLINE, ws.send(Message::Ping(Vec::new().into())));
                if !matches!(ping.await, Ok(Ok(()))) {
                    return;
                }
            }
            _ = stopping.changed() => {
                close(&mut ws, CloseCode::Away, "server shutting down").await;
                return;
            }
            _ = recheck.tick() => {
                // An open desktop keeps its session alive, up to the session's age.
                let live = api
                    .lock_auth()
                    .sessions
                    .check(&token, std::time::Instant::now());
                match live {
                    Some(s) => session = s,
                    None => {
                        close(&mut ws, CloseCode::Policy, "session ended; log in again").await;
                        return;
                    }
                }
            }
        }
    }
}

async fn send<S>(ws: &mut WebSocketStream<S>, text: String) -> Result<(), ()>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    match tokio::time::timeout(SEND_DEADLINE, ws.send(Message::text(text))).await {
        Ok(Ok(())) => Ok(()),
        _ => Err(()),
    }
}

async fn close<S>(ws: &mut WebSocketStream<S>, code: CloseCode, reason: &str)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    let frame = CloseFrame {
        code,
        reason: reason.to_string().into(),
    };
    let _ = tokio::time::timeout(SEND_DEADLINE, ws.close(Some(frame))).await;
}
