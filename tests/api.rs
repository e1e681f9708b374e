//! The CTI API as a client meets it, over real TCP on 127.0.0.1: health without a login,
//! users and roles, sessions that expire, login throttling, bad input answered with a clear
//! 4xx, connection caps, and the metrics of a live call (issue 11).

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use common::*;
use hotline::api::auth::hash_password;
use hotline::config::ApiSettings;

struct Reply {
    status: u16,
    headers: Vec<(String, String)>,
    body: String,
}

impl Reply {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
    fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("{e}: {}", self.body))
    }
}

/// One request on its own connection, as a plain HTTP/1.1 client sends it.
fn http(addr: SocketAddr, method: &str, path: &str, headers: &[(&str, &str)], body: &str) -> Reply {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut req = format!("{method} {path} HTTP/1.1\r\nHost: hotline\r\nConnection: close\r\n");
    for (n, v) in headers {
        req.push_str(&format!("{n}: {v}\r\n"));
    }
    if !body.is_empty() || method == "POST" {
        req.push_str(&format!(
            "Content-Type: application/json\r\nContent-Length: {}\r\n",
            body.len()
        ));
    }
    req.push_str("\r\n");
    req.push_str(body);
    s.write_all(req.as_bytes()).unwrap();
    let mut raw = Vec::new();
    let _ = s.read_to_end(&mut raw);
    let text = String::from_utf8_lossy(&raw).to_string();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_string(), v.trim().to_string()))
        .collect();
    Reply {
        status,
        headers,
        body: body.to_string(),
    }
}

const PASSWORD: &str = "correct horse";

fn users_file(site: &Site) -> std::path::PathBuf {
    let hash = hash_password(PASSWORD).unwrap();
    let path = site.dir.path().join("users.toml");
    std::fs::write(
        &path,
        format!(
            "[[user]]\nname = \"li\"\nrole = \"agent\"\nagent = \"1001\"\npassword = \"{hash}\"\n\
             [[user]]\nname = \"wang\"\nrole = \"supervisor\"\nteams = [\"billing\"]\npassword = \"{hash}\"\n"
        ),
    )
    .unwrap();
    path
}

fn serve(flow: &str, tune: impl FnOnce(&mut ApiSettings)) -> (Site, Running, SocketAddr) {
    let mut site = site(flow);
    let mut api = ApiSettings {
        bind: "127.0.0.1:0".parse().unwrap(),
        users: users_file(&site),
        tls: None,
        session_idle: Duration::from_secs(1800),
        session_max: Duration::from_secs(3600),
        max_connections: 64,
        max_connections_per_address: 16,
        request_timeout: Duration::from_secs(15),
    };
    tune(&mut api);
    site.config.api = Some(api);
    let running = start(site.config.clone());
    let addr = running.server.as_ref().unwrap().api_addr.unwrap();
    (site, running, addr)
}

fn login(addr: SocketAddr, user: &str, password: &str) -> Reply {
    http(
        addr,
        "POST",
        "/api/v1/session",
        &[],
        &serde_json::json!({ "user": user, "password": password }).to_string(),
    )
}

fn bearer(token: &str) -> String {
    format!("Bearer {token}")
}

/// Adds the admin "boss" to the running server's users file (a second later, so the
/// file's modification time changes and the server reloads it).
fn add_admin(site: &Site) {
    let hash = hash_password(PASSWORD).unwrap();
    let users = site.dir.path().join("users.toml");
    let mut text = std::fs::read_to_string(&users).unwrap();
    text.push_str(&format!(
        "[[user]]\nname = \"boss\"\nrole = \"admin\"\npassword = \"{hash}\"\n"
    ));
    std::thread::sleep(Duration::from_millis(1100));
    std::fs::write(&users, text).unwrap();
}

/// A session token for `user`, retrying while the server has not loaded them yet. Each
/// refused try counts as a failed login (five per user close the door for five minutes),
/// so tries are spaced by the server's one-second recheck of the file: a busy machine
/// that takes a few seconds to see the change must not run out of tries.
fn token_once_loaded(addr: SocketAddr, user: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let r = login(addr, user, PASSWORD);
        if r.status == 200 {
            break bearer(r.json()["token"].as_str().unwrap());
        }
        assert!(
            Instant::now() < deadline && r.status != 429,
            "{user}: {} {}",
            r.status,
            r.body
        );
        std::thread::sleep(Duration::from_millis(1100));
    }
}

#[test]
fn only_the_health_check_answers_without_a_login() {
    let (_site, mut server, addr) = serve(TEST_FLOW, |_| {});
    let health = http(addr, "GET", "/api/v1/health", &[], "");
    assert_eq!(health.status, 200, "{}", health.body);
    assert_eq!(health.json()["status"], "ok");
    for (method, path) in [
        ("GET", "/api/v1/me"),
        ("GET", "/metrics"),
        ("DELETE", "/api/v1/session"),
    ] {
        let r = http(addr, method, path, &[], "");
        assert_eq!(r.status, 401, "{method} {path}: {}", r.body);
        assert!(r.json()["error"].is_string());
    }
    let r = http(addr, "GET", "/api/v1/nothing", &[], "");
    assert_eq!(r.status, 404);
    let r = http(addr, "PUT", "/api/v1/session", &[], "");
    assert_eq!(r.status, 405);
    assert_eq!(r.header("allow"), Some("POST, DELETE"));
    server.stop();
}

#[test]
fn a_user_logs_in_and_out_and_sees_who_they_are() {
    let (_site, mut server, addr) = serve(TEST_FLOW, |_| {});
    let wrong = login(addr, "li", "wrong");
    assert_eq!(wrong.status, 401);
    assert_eq!(wrong.json()["error"], "wrong user name or password");
    let nobody = login(addr, "nobody", PASSWORD);
    assert_eq!(
        nobody.status, 401,
        "an unknown name reads like a wrong password"
    );
    let ok = login(addr, "li", PASSWORD);
    assert_eq!(ok.status, 200, "{}", ok.body);
    let body = ok.json();
    assert_eq!(body["role"], "agent");
    assert_eq!(body["agent"], "1001");
    let token = body["token"].as_str().unwrap().to_string();
    assert_eq!(token.len(), 64);
    let cookie = ok.header("set-cookie").unwrap();
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"),
        "{cookie}"
    );
    let me = http(
        addr,
        "GET",
        "/api/v1/me",
        &[("Authorization", &bearer(&token))],
        "",
    );
    assert_eq!(me.status, 200);
    assert_eq!(me.json()["user"], "li");
    let by_cookie = format!("other=1; hotline_session={token}");
    let me = http(addr, "GET", "/api/v1/me", &[("Cookie", &by_cookie)], "");
    assert_eq!(me.status, 200, "the browser's cookie works too");
    // An agent has no business with the metrics.
    let m = http(
        addr,
        "GET",
        "/metrics",
        &[("Authorization", &bearer(&token))],
        "",
    );
    assert_eq!(m.status, 403);
    let out = http(
        addr,
        "DELETE",
        "/api/v1/session",
        &[("Authorization", &bearer(&token))],
        "",
    );
    assert_eq!(out.status, 200);
    let me = http(
        addr,
        "GET",
        "/api/v1/me",
        &[("Authorization", &bearer(&token))],
        "",
    );
    assert_eq!(me.status, 401, "ended");
    server.stop();
}

#[test]
fn bad_input_gets_a_clear_4xx() {
    let (_site, mut server, addr) = serve(TEST_FLOW, |_| {});
    let r = http(addr, "POST", "/api/v1/session", &[], "{\"user\": ");
    assert_eq!(r.status, 400);
    assert!(
        r.json()["error"].as_str().unwrap().starts_with("bad JSON"),
        "{}",
        r.body
    );
    let r = http(
        addr,
        "POST",
        "/api/v1/session",
        &[],
        "{\"user\":\"li\",\"password\":\"x\",\"admin\":true}",
    );
    assert_eq!(r.status, 400);
    assert!(r.body.contains("unknown field"), "{}", r.body);
    let big = format!(
        "{{\"user\":\"li\",\"password\":\"{}\"}}",
        "x".repeat(20_000)
    );
    let r = http(addr, "POST", "/api/v1/session", &[], &big);
    assert_eq!(r.status, 413);
    let r = http(
        addr,
        "GET",
        "/api/v1/me",
        &[("Authorization", "Bearer not-a-session")],
        "",
    );
    assert_eq!(r.status, 401);
    // Garbage instead of HTTP: the connection is closed, the server carries on.
    let mut s = TcpStream::connect(addr).unwrap();
    s.write_all(b"\x16\x03\x01garbage\r\n\r\n").unwrap();
    let mut buf = Vec::new();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let _ = s.read_to_end(&mut buf);
    assert_eq!(http(addr, "GET", "/api/v1/health", &[], "").status, 200);
    server.stop();
}

#[test]
fn failed_logins_are_throttled_per_user() {
    let (_site, mut server, addr) = serve(TEST_FLOW, |_| {});
    for _ in 0..5 {
        assert_eq!(login(addr, "wang", "guess").status, 401);
    }
    let locked = login(addr, "wang", PASSWORD);
    assert_eq!(
        locked.status, 429,
        "even the right password waits: {}",
        locked.body
    );
    let wait: u64 = locked.header("retry-after").unwrap().parse().unwrap();
    assert!(wait > 200 && wait <= 300, "{wait}");
    assert_eq!(
        login(addr, "li", PASSWORD).status,
        200,
        "another user is not locked"
    );
    server.stop();
}

#[test]
fn sessions_expire_when_idle() {
    let (_site, mut server, addr) = serve(TEST_FLOW, |a| a.session_idle = Duration::from_secs(2));
    let token = login(addr, "li", PASSWORD).json()["token"]
        .as_str()
        .unwrap()
        .to_string();
    let auth = bearer(&token);
    for _ in 0..2 {
        std::thread::sleep(Duration::from_millis(1200));
        let r = http(addr, "GET", "/api/v1/me", &[("Authorization", &auth)], "");
        assert_eq!(r.status, 200, "kept alive by use");
    }
    std::thread::sleep(Duration::from_millis(2500));
    let r = http(addr, "GET", "/api/v1/me", &[("Authorization", &auth)], "");
    assert_eq!(r.status, 401, "idle too long");
    server.stop();
}

#[test]
fn removing_a_user_from_the_file_ends_their_sessions() {
    let (site, mut server, addr) = serve(TEST_FLOW, |_| {});
    let token = login(addr, "li", PASSWORD).json()["token"]
        .as_str()
        .unwrap()
        .to_string();
    let auth = bearer(&token);
    assert_eq!(
        http(addr, "GET", "/api/v1/me", &[("Authorization", &auth)], "").status,
        200
    );
    let path = site.dir.path().join("users.toml");
    let text = std::fs::read_to_string(&path).unwrap();
    let without_li = text
        .split("[[user]]")
        .filter(|u| !u.contains("\"li\""))
        .collect::<Vec<_>>()
        .join("[[user]]");
    std::thread::sleep(Duration::from_millis(1100));
    std::fs::write(&path, without_li).unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let r = http(addr, "GET", "/api/v1/me", &[("Authorization", &auth)], "");
        if r.status == 401 {
            break;
        }
        assert!(Instant::now() < deadline, "the session outlived its user");
        std::thread::sleep(Duration::from_millis(200));
    }
    assert_eq!(login(addr, "wang", PASSWORD).status, 200);
    server.stop();
}

#[test]
fn connections_are_capped_per_address() {
    let (_site, mut server, addr) = serve(TEST_FLOW, |a| a.max_connections_per_address = 2);
    let idle: Vec<TcpStream> = (0..2).map(|_| TcpStream::connect(addr).unwrap()).collect();
    std::thread::sleep(Duration::from_millis(200));
    let mut third = TcpStream::connect(addr).unwrap();
    third
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let mut answer = Vec::new();
    let started = Instant::now();
    let read = third.read_to_end(&mut answer);
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "answered at once, not left hanging"
    );
    assert!(
        read.is_ok()
            || matches!(read, Err(ref e) if e.kind() == std::io::ErrorKind::ConnectionReset),
        "{read:?}"
    );
    let text = String::from_utf8_lossy(&answer);
    assert!(text.starts_with("HTTP/1.1 503"), "{text}");
    assert!(text.contains("too many connections"), "{text}");
    drop(idle);
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(
        http(addr, "GET", "/api/v1/health", &[], "").status,
        200,
        "room again"
    );
    server.stop();
}

/// Five guesses per user, however many arrive at once: each counts as it starts.
#[test]
fn concurrent_guesses_are_throttled_too() {
    let (_site, mut server, addr) = serve(TEST_FLOW, |_| {});
    let statuses: Vec<u16> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..12)
            .map(|_| scope.spawn(move || login(addr, "wang", "guess").status))
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let refused = statuses.iter().filter(|s| **s == 401).count();
    let throttled = statuses.iter().filter(|s| **s == 429).count();
    assert_eq!(refused, 5, "{statuses:?}");
    assert_eq!(throttled, 7, "{statuses:?}");
    server.stop();
}

/// A body that never comes, and a login that is not JSON, get clear answers.
#[test]
fn slow_bodies_time_out_and_logins_must_be_json() {
    let (_site, mut server, addr) =
        serve(TEST_FLOW, |a| a.request_timeout = Duration::from_secs(1));
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s.write_all(b"POST /api/v1/session HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{")
        .unwrap();
    let mut answer = Vec::new();
    let started = Instant::now();
    let _ = s.read_to_end(&mut answer);
    let text = String::from_utf8_lossy(&answer);
    assert!(text.starts_with("HTTP/1.1 408"), "{text}");
    assert!(started.elapsed() < Duration::from_secs(4));
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let body = "user=li&password=x";
    s.write_all(
        format!(
            "POST /api/v1/session HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        )
        .as_bytes(),
    )
    .unwrap();
    let mut answer = Vec::new();
    let _ = s.read_to_end(&mut answer);
    let text = String::from_utf8_lossy(&answer);
    assert!(text.starts_with("HTTP/1.1 415"), "{text}");
    // A name far too long is refused without being remembered, and the scheme's case does
    // not matter.
    let long = "n".repeat(10_000);
    assert_eq!(login(addr, &long, PASSWORD).status, 401);
    let token = login(addr, "li", PASSWORD).json()["token"]
        .as_str()
        .unwrap()
        .to_string();
    let lower = format!("bearer {token}");
    assert_eq!(
        http(addr, "GET", "/api/v1/me", &[("Authorization", &lower)], "").status,
        200
    );
    server.stop();
}

#[test]
fn metrics_show_a_call_in_progress_to_a_supervisor() {
    let (_site, mut server, addr) = serve(TEST_FLOW, |_| {});
    let basic = |user: &str, password: &str| {
        use base64::Engine as _;
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"))
        )
    };
    let r = http(addr, "GET", "/metrics", &[], "");
    assert_eq!(r.status, 401);
    assert!(
        r.header("www-authenticate")
            .is_some_and(|v| v.starts_with("Basic"))
    );
    assert_eq!(
        http(
            addr,
            "GET",
            "/metrics",
            &[("Authorization", &basic("wang", "nope"))],
            ""
        )
        .status,
        401
    );
    assert_eq!(
        http(
            addr,
            "GET",
            "/metrics",
            &[("Authorization", &basic("li", PASSWORD))],
            ""
        )
        .status,
        403
    );
    let mut phone = Phone::new(server.sip);
    phone.call("100");
    phone.talk(Duration::from_millis(300));
    let deadline = Instant::now() + Duration::from_secs(5);
    let text = loop {
        let r = http(
            addr,
            "GET",
            "/metrics",
            &[("Authorization", &basic("wang", PASSWORD))],
            "",
        );
        assert_eq!(r.status, 200, "{}", r.body);
        assert!(
            r.header("content-type")
                .unwrap()
                .starts_with("application/openmetrics-text")
        );
        if r.body.contains("hotline_active_calls 1") {
            break r.body;
        }
        assert!(Instant::now() < deadline, "{}", r.body);
        phone.talk(Duration::from_millis(300));
    };
    assert!(text.contains("hotline_cdr_backlog"), "{text}");
    // Seven packets lost on the way show as RTP loss (the media threads publish each second).
    phone.send_audio(&sine(440.0, 400, 4000.0), Duration::ZERO);
    phone.lose_packets(7);
    phone.send_audio(&sine(440.0, 400, 4000.0), Duration::ZERO);
    let deadline = Instant::now() + Duration::from_secs(5);
    let text = loop {
        let r = http(
            addr,
            "GET",
            "/metrics",
            &[("Authorization", &basic("wang", PASSWORD))],
            "",
        );
        if r.body.contains("hotline_rtp_packets_lost_total 7\n") {
            break r.body;
        }
        assert!(Instant::now() < deadline, "{}", r.body);
        phone.talk(Duration::from_millis(300));
    };
    assert!(text.contains("hotline_media_late_ticks_total"), "{text}");
    let received: u64 = text
        .lines()
        .find_map(|l| l.strip_prefix("hotline_rtp_packets_received_total "))
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("{text}"));
    assert!(received >= 40, "{text}");
    phone.hangup();
    phone.pump(Duration::from_millis(300));
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let r = http(
            addr,
            "GET",
            "/metrics",
            &[("Authorization", &basic("wang", PASSWORD))],
            "",
        );
        if r.body.contains("hotline_active_calls 0") && r.body.contains("hotline_calls_total 1") {
            break;
        }
        assert!(Instant::now() < deadline, "{}", r.body);
        std::thread::sleep(Duration::from_millis(300));
    }
    server.stop();
}

/// The desktop steers the same agent state as the phone's feature codes: an agent sets their
/// own, a supervisor their team's, an admin anyone's; lists show only what each may see.
#[test]
fn agents_and_supervisors_set_agent_state_through_the_api() {
    let (site, mut server, addr) = serve(TEST_FLOW, |_| {});
    // Agents at fixed endpoints (no phone needed to log them in), added before the start
    // would be simpler; adding them now also shows a reload reaching the API's lists.
    let acd = site.config.flows_dir.join("acd");
    std::fs::create_dir_all(&acd).unwrap();
    std::fs::write(
        acd.join("agents.toml"),
        "[agents.1001]\nname = \"Li Na\"\nendpoint = \"sip:1001@127.0.0.1:9\"\nteam = \"billing\"\n\
         [agents.1002]\nname = \"Sam Wu\"\nendpoint = \"sip:1002@127.0.0.1:9\"\nteam = \"repairs\"\n\
         [reasons]\n2 = \"Lunch\"\n",
    )
    .unwrap();
    add_admin(&site);
    let token = |user: &str| token_once_loaded(addr, user);
    let (li, wang, boss) = (token("li"), token("wang"), token("boss"));
    let agents = |auth: &str| {
        let r = http(
            addr,
            "GET",
            "/api/v1/agents",
            &[("Authorization", auth)],
            "",
        );
        assert_eq!(r.status, 200, "{}", r.body);
        r.json()["agents"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a["id"].as_str().unwrap().to_string())
            .collect::<Vec<_>>()
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    while agents(&boss).len() < 2 {
        assert!(
            Instant::now() < deadline,
            "the agents file was not reloaded"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    assert_eq!(agents(&li), ["1001"]);
    assert_eq!(agents(&wang), ["1001"], "the billing team only");
    assert_eq!(agents(&boss), ["1001", "1002"]);

    let set = |auth: &str, agent: &str, body: &str| {
        http(
            addr,
            "POST",
            &format!("/api/v1/agents/{agent}/state"),
            &[("Authorization", auth)],
            body,
        )
    };
    let r = set(&li, "1001", "{\"state\": \"logged_in\"}");
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["state"], "available");
    let r = set(&li, "1001", "{\"state\": \"not_ready\", \"reason\": \"2\"}");
    assert_eq!(r.json()["state"], "not_ready");
    assert_eq!(r.json()["reason"], "Lunch", "by code or by name");
    let r = set(
        &li,
        "1001",
        "{\"state\": \"not_ready\", \"reason\": \"Nap\"}",
    );
    assert_eq!(r.status, 400);
    assert!(r.body.contains("Lunch"), "lists the reasons: {}", r.body);
    assert_eq!(set(&li, "1001", "{\"state\": \"not_ready\"}").status, 400);
    assert_eq!(set(&li, "1001", "{\"state\": \"asleep\"}").status, 400);
    assert_eq!(
        set(&li, "1001", "{\"state\": \"ready\", \"extra\": 1}").status,
        400
    );
    assert_eq!(
        set(&li, "1002", "{\"state\": \"ready\"}").status,
        403,
        "not their own"
    );
    let r = set(&wang, "1001", "{\"state\": \"ready\"}");
    assert_eq!(r.status, 200, "a supervisor steers their team: {}", r.body);
    assert_eq!(r.json()["state"], "available");
    assert_eq!(set(&wang, "1002", "{\"state\": \"logged_in\"}").status, 403);
    assert_eq!(
        set(&boss, "1002", "{\"state\": \"logged_in\"}").json()["state"],
        "available"
    );
    assert_eq!(set(&boss, "9999", "{\"state\": \"ready\"}").status, 404);
    assert_eq!(
        set("Bearer nope", "1001", "{\"state\": \"ready\"}").status,
        401
    );

    let r = http(addr, "GET", "/api/v1/queues", &[("Authorization", &li)], "");
    assert_eq!(r.status, 200);
    assert!(r.json()["queues"].is_array());
    let basic = {
        use base64::Engine as _;
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(format!("boss:{PASSWORD}"))
        )
    };
    // The snapshot the metrics read is published at least once a second.
    let deadline = Instant::now() + Duration::from_secs(3);
    loop {
        let m = http(addr, "GET", "/metrics", &[("Authorization", &basic)], "");
        if m.body.contains("hotline_agents{state=\"available\"} 2") {
            break;
        }
        assert!(Instant::now() < deadline, "{}", m.body);
        std::thread::sleep(Duration::from_millis(200));
    }
    // Wrap-up notes need a wrap-up: the engine says so.
    let wrap = |auth: &str, agent: &str, body: &str| {
        http(
            addr,
            "POST",
            &format!("/api/v1/agents/{agent}/wrap-up"),
            &[("Authorization", auth)],
            body,
        )
    };
    let r = wrap(
        &li,
        "1001",
        "{\"disposition\": \"resolved\", \"done\": true}",
    );
    assert_eq!(r.status, 409, "{}", r.body);
    assert!(r.body.contains("not in wrap-up"), "{}", r.body);
    assert_eq!(wrap(&li, "1001", "{\"mood\": \"good\"}").status, 400);
    assert_eq!(wrap(&li, "1002", "{\"done\": true}").status, 403);
    let r = set(&li, "1001", "{\"state\": \"logged_out\"}");
    assert_eq!(r.json()["state"], "logged_out");
    server.stop();
}

#[test]
fn reports_and_qa_scores_by_role() {
    use hotline::cdr::{CdrRecord, CdrStore, Disposition, HangupBy};
    let (site, _server, addr) = serve(TEST_FLOW, |_| {});
    let acd = site.config.flows_dir.join("acd");
    std::fs::create_dir_all(&acd).unwrap();
    std::fs::write(
        acd.join("agents.toml"),
        "[agents.1001]\nname = \"Li Na\"\nendpoint = \"sip:1001@127.0.0.1:9\"\nteam = \"billing\"\n\
         [agents.1002]\nname = \"Sam Wu\"\nendpoint = \"sip:1002@127.0.0.1:9\"\nteam = \"repairs\"\n",
    )
    .unwrap();
    add_admin(&site);

    // Two answered calls on a past day, in the report's (the server's) time zone.
    let tz = hotline::report::ReportSettings::default().time_zone;
    let ten = hotline::report::intervals::parse_local("2026-01-05 10:00", &tz).unwrap();
    let call = |n: i64, agent: &str, team: &str| CdrRecord {
        id: format!("call{n}"),
        sip_call_id: format!("call{n}@api"),
        caller: format!("1380000000{n}"),
        dialled: "100".into(),
        start_ms: ten + n * 60_000,
        answer_ms: Some(ten + n * 60_000 + 100),
        end_ms: ten + n * 60_000 + 50_000,
        disposition: Disposition::CallerHangup,
        hangup_by: HangupBy::Caller,
        sip_code: 200,
        end_reason: "bye".into(),
        queue: Some("help".into()),
        queue_enter_ms: Some(ten + n * 60_000 + 1_000),
        queue_leave_ms: Some(ten + n * 60_000 + 6_000),
        wait_ms: Some(5_000),
        agent: Some(agent.into()),
        team: Some(team.into()),
        talk_ms: Some(40_000),
        ..Default::default()
    };
    let url = site.config.database.clone();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    // A recorded call, and one whose record names a file outside the recordings directory.
    std::fs::create_dir_all(&site.config.recordings_dir).unwrap();
    let wav = site.config.recordings_dir.join("call3-1.wav");
    std::fs::write(&wav, b"RIFF....WAVEfmt ").unwrap();
    let recorded = CdrRecord {
        recordings: vec![wav.display().to_string()],
        ..call(3, "1001", "billing")
    };
    let outside = CdrRecord {
        recordings: vec!["/etc/passwd".into()],
        ..call(4, "1001", "billing")
    };
    runtime.block_on(async {
        let store = CdrStore::connect(&url).await.unwrap();
        store.migrate().await.unwrap();
        store
            .insert_batch(&[
                call(1, "1001", "billing"),
                call(2, "1002", "repairs"),
                recorded,
                outside,
            ])
            .await
            .unwrap();
    });

    let token = |user: &str| token_once_loaded(addr, user);
    let (li, wang, boss) = (token("li"), token("wang"), token("boss"));
    // The agents file reached the API (supervisors' rows are filtered by it).
    let deadline = Instant::now() + Duration::from_secs(10);
    while http(
        addr,
        "GET",
        "/api/v1/agents",
        &[("Authorization", &boss)],
        "",
    )
    .json()["agents"]
        .as_array()
        .unwrap()
        .len()
        < 2
    {
        assert!(
            Instant::now() < deadline,
            "the agents file was not reloaded"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let report = |auth: &str, query: &str| {
        http(
            addr,
            "GET",
            &format!("/api/v1/reports?from=2026-01-05&to=2026-01-06&interval=day{query}"),
            &[("Authorization", auth)],
            "",
        )
    };
    let groups = |r: &Reply| -> Vec<String> {
        assert_eq!(r.status, 200, "{}", r.body);
        r.json()["rows"]
            .as_array()
            .unwrap()
            .iter()
            .map(|row| row["group"].as_str().unwrap_or("-").to_string())
            .collect()
    };
    assert_eq!(groups(&report(&boss, "&by=agent")), ["1001", "1002"]);
    assert_eq!(
        groups(&report(&wang, "&by=agent")),
        ["1001"],
        "a supervisor's own teams"
    );
    assert_eq!(groups(&report(&wang, "&by=team")), ["billing"]);
    assert_eq!(groups(&report(&wang, "&by=queue")), ["help"]);
    assert_eq!(groups(&report(&li, "")), ["1001"], "an agent's own figures");
    let mine = report(&li, "").json();
    assert_eq!(mine["rows"][0]["indicators"]["answered"], 3);
    assert_eq!(mine["rows"][0]["indicators"]["service_level_pct"], 100.0);
    assert_eq!(report(&li, "&by=queue").status, 403);
    let all = report(&boss, "").json();
    assert_eq!(all["rows"][0]["indicators"]["total_calls"], 4);
    assert_eq!(all["rows"][0]["indicators"]["avg_talk_s"], 40.0);
    assert_eq!(report(&boss, "&interval=fortnight").status, 400);
    assert_eq!(report(&boss, "&colour=red").status, 400);
    let r = http(
        addr,
        "GET",
        "/api/v1/reports?from=2026-13-45",
        &[("Authorization", &boss)],
        "",
    );
    assert_eq!(r.status, 400, "{}", r.body);
    assert_eq!(http(addr, "GET", "/api/v1/reports", &[], "").status, 401);
    let r = http(
        addr,
        "GET",
        "/api/v1/reports?from=2000-01-01&to=2026-01-01&interval=30m",
        &[("Authorization", &li)],
        "",
    );
    assert_eq!(r.status, 400, "a range too long is refused: {}", r.body);

    // Recorded calls for quality monitoring: supervisors their teams', never agents.
    let get = |auth: &str, path: &str| http(addr, "GET", path, &[("Authorization", auth)], "");
    assert_eq!(get(&li, "/api/v1/calls").status, 403);
    let listed = get(&wang, "/api/v1/calls").json();
    let ids: Vec<&str> = listed["calls"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["call"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["call4", "call3"], "recorded calls, newest first");
    let r = get(&wang, "/api/v1/calls/call3/recordings/0");
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.header("content-type"), Some("audio/wav"));
    assert!(r.body.starts_with("RIFF"));
    assert_eq!(get(&wang, "/api/v1/calls/call3/recordings/1").status, 404);
    assert_eq!(
        get(&wang, "/api/v1/calls/call4/recordings/0").status,
        404,
        "a file outside the recordings directory is never served"
    );
    assert_eq!(get(&li, "/api/v1/calls/call3/recordings/0").status, 403);
    assert_eq!(get(&wang, "/api/v1/calls/call3/recordings/x").status, 404);

    // Who is waiting is for supervisors and admins; moving a caller too.
    let queues = |auth: &str| {
        http(
            addr,
            "GET",
            "/api/v1/queues",
            &[("Authorization", auth)],
            "",
        )
        .json()
    };
    assert!(queues(&wang)["waiting"].is_array());
    assert!(queues(&li).get("waiting").is_none());
    let mv = |auth: &str, body: &str| {
        http(
            addr,
            "POST",
            "/api/v1/calls/call1/move",
            &[("Authorization", auth)],
            body,
        )
    };
    assert_eq!(mv(&li, r#"{"queue": "help"}"#).status, 403);
    assert_eq!(
        mv(&wang, r#"{"queue": "help", "agent": "1001"}"#).status,
        400
    );
    assert_eq!(mv(&wang, r#"{}"#).status, 400);
    let r = mv(&wang, r#"{"queue": "help"}"#);
    assert_eq!(r.status, 404, "call1 is over, not waiting: {}", r.body);

    // QA scores: a supervisor their teams' calls, an admin any, an agent none.
    let score = |auth: &str, call: &str, body: &str| {
        http(
            addr,
            "POST",
            &format!("/api/v1/calls/{call}/qa"),
            &[("Authorization", auth)],
            body,
        )
    };
    let r = score(
        &wang,
        "call1",
        r#"{"score": 90, "notes": "clear\u202e and kind"}"#,
    );
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(score(&wang, "call2", r#"{"score": 50}"#).status, 403);
    assert_eq!(score(&li, "call1", r#"{"score": 100}"#).status, 403);
    assert_eq!(score(&boss, "nosuchcall", r#"{"score": 50}"#).status, 404);
    assert_eq!(score(&boss, "call2", r#"{"score": 101}"#).status, 400);
    assert_eq!(
        score(&boss, "call2", r#"{"score": 70, "stars": 5}"#).status,
        400
    );
    assert_eq!(score(&boss, "call2", r#"{"score": 70}"#).status, 200);
    let all = report(&boss, "").json();
    assert_eq!(all["rows"][0]["indicators"]["qa_scored"], 2);
    assert_eq!(all["rows"][0]["indicators"]["qa_score"], 80.0);
}
