//! The API's listener: binding, the users file watched and swapped in, and each accepted
//! connection served under the caps (in total and per address) until its lifetime ends.

use super::*;

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
pub(super) async fn watch_users(api: std::sync::Weak<Api>, mut modified: Option<SystemTime>) {
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

pub(super) fn read_users(
    path: &std::path::Path,
) -> Result<(Users, Option<SystemTime>), auth::UsersError> {
    match std::fs::metadata(path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok((Users::default(), None)),
        _ => {
            let modified = std::fs::metadata(path).and_then(|m| m.modified()).ok();
            Ok((Users::load(path)?, modified))
        }
    }
}

pub(super) async fn accept_loop(
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
pub(super) struct ConnectionSlot {
    api: Arc<Api>,
    ip: IpAddr,
    stream: bool,
}

impl ConnectionSlot {
    fn take(api: &Arc<Api>, ip: IpAddr) -> Option<ConnectionSlot> {
        ConnectionSlot::take_in(api, ip, false)
    }

    pub(super) fn take_stream(api: &Arc<Api>, ip: IpAddr) -> Option<ConnectionSlot> {
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
