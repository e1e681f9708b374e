//! Who is asking: the session token from a header or the cookie, logins (throttled, hashed
//! off the async threads), and the event stream's WebSocket handshake with its origin check.

use super::*;

/// `Authorization: Bearer TOKEN`, or the session cookie the login set.
pub(super) fn token(req: &Request<Incoming>) -> Option<String> {
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
pub(super) fn credentials<'a>(header: &'a str, scheme: &str) -> Option<&'a str> {
    let (given, rest) = header.trim().split_once(' ')?;
    given.eq_ignore_ascii_case(scheme).then(|| rest.trim())
}

pub(super) async fn login(api: &Api, from: IpAddr, req: Request<Incoming>) -> Reply {
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
pub(super) fn events_upgrade(api: &Arc<Api>, from: IpAddr, mut req: Request<Incoming>) -> Reply {
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
pub(super) fn same_origin(origin: &str, host: &str, tls: bool) -> bool {
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
