//! The event stream: `GET /api/v1/events` upgraded to a WebSocket. A hub task turns what the
//! engine tells (agent state changes, screen pops) and the queue snapshot into JSON once, adds
//! the caller's history to a screen pop (from the CDR database, with a deadline), and
//! broadcasts; each connection sends on what its user may see.
//!
//! Messages are routed, not offered to every connection: what is about an agent goes to that
//! agent's own streams and to the supervisors' and admins' feed; what is for everyone (the
//! queues) to all. An agent's desktop is woken only for its own events, so thousands of
//! desktops cost each event no more than the few that see it.
//!
//! Slow consumers are dropped, never buffered: each route keeps a bounded backlog, and a
//! connection that falls behind it, or whose send does not finish in time, is closed with a
//! reason (the client reconnects and gets a fresh picture).

use std::sync::Arc;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::json;
use tokio::sync::{broadcast, mpsc, watch};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, Role as WsRole, WebSocketConfig};
use tokio_tungstenite::tungstenite::{Message, Utf8Bytes};

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
    /// Shared, not copied, by every stream that sends it.
    pub text: Utf8Bytes,
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

/// Where the hub's messages go: everyone's feed, the staff's feed (every message about an
/// agent; supervisors keep their teams'), and each agent's own streams.
pub struct Routes {
    /// Messages for every stream (a resync).
    everyone: broadcast::Sender<Arc<Outgoing>>,
    /// The queues, for streams that asked for them.
    queues: broadcast::Sender<Arc<Outgoing>>,
    staff: broadcast::Sender<Arc<Outgoing>>,
    /// The streams of agent users, by agent id. A closed or full one is dropped as the next
    /// message for its agent finds it.
    agents: std::sync::Mutex<HashMap<String, Vec<mpsc::Sender<Arc<Outgoing>>>>>,
}

/// A stream's feeds: everyone's, the queues' if asked for, and the staff's or its agent's
/// own.
pub struct Subscription {
    everyone: broadcast::Receiver<Arc<Outgoing>>,
    queues: Option<broadcast::Receiver<Arc<Outgoing>>>,
    feed: Feed,
}

enum Feed {
    Staff(broadcast::Receiver<Arc<Outgoing>>),
    Agent(mpsc::Receiver<Arc<Outgoing>>),
    /// An agent user who names no agent: nothing is about them.
    Nothing,
}

impl Default for Routes {
    fn default() -> Self {
        Routes {
            everyone: broadcast::channel(BACKLOG).0,
            queues: broadcast::channel(BACKLOG).0,
            staff: broadcast::channel(BACKLOG).0,
            agents: std::sync::Mutex::new(HashMap::new()),
        }
    }
}

impl Routes {
    /// Subscribe before reading what is current: a message sent meanwhile is then heard,
    /// at worst twice. `queues`: whether the stream wants the queues' changes (a desktop
    /// that shows none spares the server thousands of sends a second).
    pub fn subscribe(&self, session: &Session, queues: bool) -> Subscription {
        let feed = match (session.role, &session.agent) {
            (Role::Agent, Some(agent)) => {
                let (tx, rx) = mpsc::channel(BACKLOG);
                let mut agents = self.lock_agents();
                let streams = agents.entry(agent.clone()).or_default();
                // Streams that went away since this agent's last message go now: an agent
                // whose desktop keeps reconnecting does not grow the list.
                streams.retain(|tx| !tx.is_closed());
                streams.push(tx);
                Feed::Agent(rx)
            }
            (Role::Agent, None) => Feed::Nothing,
            (Role::Supervisor | Role::Admin, _) => Feed::Staff(self.staff.subscribe()),
        };
        Subscription {
            everyone: self.everyone.subscribe(),
            queues: queues.then(|| self.queues.subscribe()),
            feed,
        }
    }

    fn publish(&self, message: Outgoing) {
        let message = Arc::new(message);
        let Some((agent, _)) = &message.about else {
            let _ = self.everyone.send(message);
            return;
        };
        let mut agents = self.lock_agents();
        if let Some(streams) = agents.get_mut(agent) {
            // Full: that client is too slow; its stream sees the feed end and closes.
            streams.retain(|tx| tx.try_send(Arc::clone(&message)).is_ok());
            if streams.is_empty() {
                agents.remove(agent);
            }
        }
        drop(agents);
        let _ = self.staff.send(message);
    }

    fn publish_queues(&self, message: Outgoing) {
        let _ = self.queues.send(Arc::new(message));
    }

    /// Whether any stream listens at all (else a history look-up is not worth its query).
    fn listened(&self) -> bool {
        self.everyone.receiver_count() > 0
    }

    /// Streams that asked for the queues.
    fn queue_listeners(&self) -> usize {
        self.queues.receiver_count()
    }

    fn lock_agents(
        &self,
    ) -> std::sync::MutexGuard<'_, HashMap<String, Vec<mpsc::Sender<Arc<Outgoing>>>>> {
        self.agents.lock().unwrap_or_else(|e| e.into_inner())
    }
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
    out: Arc<Routes>,
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
                        out.publish(Outgoing { about, text: text.into(), close: false });
                    }
                    EngineEvent::Offer(pop) => {
                        let about = Some((pop.agent.clone(), pop.team.clone()));
                        let text = json!({ "type": "offer", "offer": pop, "history": null })
                            .to_string();
                        out.publish(Outgoing { about: about.clone(), text: text.into(), close: false });
                        if !out.listened() || !crate::cdr::record::has_number(&pop.caller) {
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
                        let out = Arc::clone(&out);
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
                            out.publish(Outgoing { about, text: text.into(), close: false });
                        });
                    }
                    EngineEvent::Consult(update) => {
                        let about = Some((update.agent.clone(), update.team.clone()));
                        let text = json!({ "type": "consult", "consult": update }).to_string();
                        out.publish(Outgoing { about, text: text.into(), close: false });
                    }
                    EngineEvent::Lost => {
                        latest.lock().unwrap_or_else(|e| e.into_inner()).clear();
                        let text = json!({ "type": "resync" }).to_string();
                        out.publish(Outgoing { about: None, text: text.into(), close: true });
                    }
                }
            }
            changed = snapshots.changed() => {
                if changed.is_err() {
                    return;
                }
                if out.queue_listeners() == 0 {
                    snapshots.borrow_and_update();
                    last_queues = serde_json::Value::Null;
                    continue;
                }
                let queues = queues_json(&snapshots.borrow_and_update());
                if queues != last_queues {
                    let text = json!({ "type": "queues", "queues": queues }).to_string();
                    last_queues = queues;
                    out.publish_queues(Outgoing { about: None, text: text.into(), close: false });
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
    subscription: Subscription,
) where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    // Clients send only pings and closes: a small read buffer (eagerly allocated, 128 KiB by
    // default) keeps thousands of desktops cheap.
    let config = WebSocketConfig::default()
        .read_buffer_size(MAX_CLIENT_MESSAGE)
        .max_message_size(Some(MAX_CLIENT_MESSAGE))
        .max_frame_size(Some(MAX_CLIENT_MESSAGE));
    let mut ws = WebSocketStream::from_raw_socket(io, WsRole::Server, Some(config)).await;
    // Before the hello: a logout from here on ends this stream at once.
    let mut sessions_ended = api.sessions_ended.subscribe();
    let hello = {
        // Only what this user sees is copied out of the snapshot (one agent for an agent's
        // desktop, not the whole snapshot each time); the borrow ends before any await, so
        // the signalling loop's next publish waits for no client.
        let (visible, queues) = {
            let snapshot = api.feeds.snapshot.borrow();
            let visible: Vec<AgentView> = snapshot
                .agent_list
                .iter()
                .filter(|a| may_see(&session, &a.id, a.team.as_deref()))
                .cloned()
                .collect();
            (visible, queues_json(&snapshot))
        };
        // The snapshot may be a second old; an agent's latest event is newer.
        let agents: Vec<AgentView> = {
            let latest = api.latest_agents.lock().unwrap_or_else(|e| e.into_inner());
            visible
                .into_iter()
                .map(|a| latest.get(&a.id).cloned().unwrap_or(a))
                .collect()
        };
        json!({
            "type": "hello",
            "user": session.user,
            "role": session.role.as_str(),
            "agents": agents,
            "queues": queues,
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
    let Subscription {
        mut everyone,
        mut queues,
        mut feed,
    } = subscription;
    loop {
        let got = tokio::select! {
            event = everyone.recv() => event.map_err(|e| match e {
                broadcast::error::RecvError::Lagged(_) => FeedEnd::TooSlow,
                broadcast::error::RecvError::Closed => FeedEnd::Closed,
            }),
            event = feed.recv() => event,
            event = async {
                match queues.as_mut() {
                    Some(rx) => rx.recv().await,
                    None => std::future::pending().await,
                }
            } => event.map_err(|e| match e {
                broadcast::error::RecvError::Lagged(_) => FeedEnd::TooSlow,
                broadcast::error::RecvError::Closed => FeedEnd::Closed,
            }),
            incoming = ws.next() => match incoming {
                // Pings are answered by the library as they are read; other messages carry
                // nothing the server needs, but show the client is there.
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => return,
                Some(Ok(_)) => {
                    heard = tokio::time::Instant::now();
                    continue;
                }
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
                continue;
            }
            _ = stopping.changed() => {
                close(&mut ws, CloseCode::Away, "server shutting down").await;
                return;
            }
            _ = async {
                tokio::select! {
                    _ = recheck.tick() => {}
                    // A logout ends this stream now, not at the next check.
                    Ok(()) = sessions_ended.changed() => {}
                }
            } => {
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
                continue;
            }
        };
        match got {
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
            Err(FeedEnd::TooSlow) => {
                tracing::info!(user = %session.user, "event stream client too slow; dropped");
                close(
                    &mut ws,
                    CloseCode::Policy,
                    "too slow: events were missed; reconnect",
                )
                .await;
                return;
            }
            Err(FeedEnd::Closed) => {
                close(&mut ws, CloseCode::Away, "server shutting down").await;
                return;
            }
        }
    }
}

/// Why a stream's feed ended.
enum FeedEnd {
    /// The client fell too far behind (its backlog overflowed).
    TooSlow,
    Closed,
}

impl Feed {
    async fn recv(&mut self) -> Result<Arc<Outgoing>, FeedEnd> {
        match self {
            Feed::Staff(rx) => rx.recv().await.map_err(|e| match e {
                broadcast::error::RecvError::Lagged(_) => FeedEnd::TooSlow,
                broadcast::error::RecvError::Closed => FeedEnd::Closed,
            }),
            // The hub drops a mailbox it cannot fill: close at once rather than send what
            // is left of a backlog already too old.
            Feed::Agent(rx) if rx.is_closed() => Err(FeedEnd::TooSlow),
            Feed::Agent(rx) => rx.recv().await.ok_or(FeedEnd::TooSlow),
            Feed::Nothing => std::future::pending().await,
        }
    }
}

async fn send<S>(ws: &mut WebSocketStream<S>, text: impl Into<Utf8Bytes>) -> Result<(), ()>
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
