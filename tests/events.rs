//! The CTI event stream over a real WebSocket: an agent's desktop gets their state changes and
//! the screen pop when their phone rings (who calls, what they did in the IVR, their past
//! calls from the CDR database); a supervisor sees their team and the queues; nobody sees
//! what is not theirs, and the stream needs a login from this server's pages (issue 11).

mod common;

use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use common::agent_phone::*;
use common::*;
use hotline::api::auth::hash_password;
use hotline::cdr::{CdrRecord, TransferKind, TransferTargetKind};
use hotline::config::ApiSettings;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::{self, Message, WebSocket};

const PASSWORD: &str = "correct horse";
const CALLER: &str = "13800000001";

/// One request on a connection of its own: the status and the body.
fn request(
    api: SocketAddr,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: &str,
) -> (u16, String) {
    use std::io::{Read, Write};
    let mut s = TcpStream::connect(api).unwrap();
    let auth = token.map_or(String::new(), |t| format!("Authorization: Bearer {t}\r\n"));
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n{auth}Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut text = String::new();
    s.read_to_string(&mut text).unwrap();
    let status = text[9..12]
        .parse()
        .unwrap_or_else(|e| panic!("{e}: {text}"));
    (status, text.split_once("\r\n\r\n").unwrap().1.to_string())
}

fn login(api: SocketAddr, user: &str) -> String {
    let body = serde_json::json!({ "user": user, "password": PASSWORD }).to_string();
    let (_, text) = request(api, "POST", "/api/v1/session", None, &body);
    let v: serde_json::Value =
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}: {text}"));
    v["token"]
        .as_str()
        .unwrap_or_else(|| panic!("{text}"))
        .to_string()
}

type Ws = WebSocket<TcpStream>;

fn connect(
    api: SocketAddr,
    auth: Option<&str>,
    origin: Option<&str>,
) -> Result<Ws, tungstenite::Error> {
    let mut req = format!("ws://{api}/api/v1/events")
        .into_client_request()
        .unwrap();
    if let Some(token) = auth {
        req.headers_mut()
            .insert("Authorization", format!("Bearer {token}").parse().unwrap());
    }
    if let Some(origin) = origin {
        req.headers_mut().insert("Origin", origin.parse().unwrap());
    }
    let stream = TcpStream::connect(api).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    tungstenite::client::client(req, stream)
        .map(|(ws, _)| ws)
        .map_err(|e| match e {
            tungstenite::HandshakeError::Failure(e) => e,
            tungstenite::HandshakeError::Interrupted(_) => tungstenite::Error::ConnectionClosed,
        })
}

/// Every message until `until` matches one (returned last) or the time is up.
fn read_until(
    ws: &mut Ws,
    within: Duration,
    until: impl Fn(&serde_json::Value) -> bool,
) -> Vec<serde_json::Value> {
    let deadline = Instant::now() + within;
    let mut seen = Vec::new();
    while Instant::now() < deadline {
        match ws.read() {
            Ok(Message::Text(t)) => {
                let v: serde_json::Value = serde_json::from_str(&t).unwrap();
                let done = until(&v);
                seen.push(v);
                if done {
                    return seen;
                }
            }
            Ok(_) => {}
            Err(tungstenite::Error::Io(e))
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(e) => panic!("{e}: after {seen:?}"),
        }
    }
    panic!("nothing matched within {within:?}: {seen:#?}")
}

/// The API on, with agent li (1001) and supervisors wang (team support) and zhao (sales).
fn with_users(site: &mut Site) {
    let hash = hash_password(PASSWORD).unwrap();
    let users = site.dir.path().join("users.toml");
    std::fs::write(
        &users,
        format!(
            "[[user]]\nname = \"li\"\nrole = \"agent\"\nagent = \"1001\"\npassword = \"{hash}\"\n\
             [[user]]\nname = \"wang\"\nrole = \"supervisor\"\nteams = [\"support\"]\npassword = \"{hash}\"\n\
             [[user]]\nname = \"zhao\"\nrole = \"supervisor\"\nteams = [\"sales\"]\npassword = \"{hash}\"\n"
        ),
    )
    .unwrap();
    site.config.api = Some(ApiSettings {
        bind: "127.0.0.1:0".parse().unwrap(),
        users,
        tls: None,
        session_idle: Duration::from_secs(600),
        session_max: Duration::from_secs(3600),
        max_connections: 64,
        max_connections_per_address: 32,
        request_timeout: Duration::from_secs(15),
    });
}

/// A POST with the session token; the status and the body.
fn post(api: SocketAddr, token: &str, path: &str, body: &str) -> (u16, String) {
    request(api, "POST", path, Some(token), body)
}

#[test]
fn the_agent_gets_a_screen_pop_with_the_ivr_data_and_the_callers_history() {
    let mut site = agent_site();
    // The caller called before: their last call is in the CDR database.
    let past = CdrRecord {
        id: "0123456789abcdef0123456789abcdef".into(),
        sip_call_id: "past@test".into(),
        caller: CALLER.into(),
        dialled: "400".into(),
        start_ms: 1_700_000_000_000,
        end_ms: 1_700_000_060_000,
        queue: Some("help".into()),
        agent: Some("1002".into()),
        wrap_disposition: Some("callback".into()),
        resolved: Some(false),
        ..Default::default()
    };
    let database = site.config.database.clone();
    tokio::runtime::Runtime::new().unwrap().block_on(async {
        let store = hotline::cdr::CdrStore::connect(&database).await.unwrap();
        store.migrate().await.unwrap();
        store.insert_batch(&[past]).await.unwrap();
        store.close().await;
    });
    with_users(&mut site);
    let mut server = start(site.config.clone());
    let api = server.server.as_ref().unwrap().api_addr.unwrap();

    // No login, or a page of another site: no stream.
    assert!(
        matches!(connect(api, None, None), Err(tungstenite::Error::Http(r)) if r.status() == 401)
    );
    let li = login(api, "li");
    let other_site = connect(api, Some(&li), Some("https://evil.example"));
    assert!(matches!(other_site, Err(tungstenite::Error::Http(r)) if r.status() == 403));

    let mut li_ws = connect(api, Some(&li), Some(&format!("http://{api}"))).unwrap();
    let hello = read_until(&mut li_ws, Duration::from_secs(3), |v| v["type"] == "hello");
    assert_eq!(hello.last().unwrap()["user"], "li");
    let mut wang_ws = connect(api, Some(&login(api, "wang")), None).unwrap();
    read_until(&mut wang_ws, Duration::from_secs(3), |v| {
        v["type"] == "hello"
    });
    let mut zhao_ws = connect(api, Some(&login(api, "zhao")), None).unwrap();
    read_until(&mut zhao_ws, Duration::from_secs(3), |v| {
        v["type"] == "hello"
    });

    let sip = server.sip;
    let agent = std::thread::spawn(move || run_agent(sip, Behaviour::Answer, S(6000)));
    // The phone registers and is logged in: the desktop hears it.
    let seen = read_until(&mut li_ws, Duration::from_secs(5), |v| {
        v["type"] == "agent" && v["agent"]["id"] == "1001" && v["agent"]["state"] == "available"
    });
    assert!(
        seen.iter()
            .all(|v| v["type"] != "agent" || v["agent"]["id"] == "1001"),
        "an agent hears only of themselves: {seen:?}"
    );
    let mut phone = Phone::calling_from(sip, CALLER);
    phone.call("400");
    phone.talk(S(1500));
    let seen = read_until(&mut li_ws, Duration::from_secs(5), |v| v["type"] == "offer");
    let offer = &seen.last().unwrap();
    let pop = &offer["offer"];
    assert_eq!(pop["caller"], CALLER);
    assert_eq!(pop["dialled"], "400");
    assert_eq!(pop["queue"], "help");
    assert_eq!(pop["agent"], "1001");
    assert_eq!(pop["ivr_path"], serde_json::json!(["agent"]));
    assert!(pop["waited_ms"].as_i64().unwrap() >= 0);
    assert!(
        offer["history"].is_null(),
        "the pop never waits for the database"
    );
    // The caller's past calls follow in a message of their own.
    let seen = read_until(&mut li_ws, Duration::from_secs(3), |v| {
        v["type"] == "history"
    });
    let message = seen.last().unwrap();
    assert_eq!(message["call"], pop["call"]);
    let history = message["history"]
        .as_array()
        .unwrap_or_else(|| panic!("{message}"));
    assert_eq!(history.len(), 1, "{message}");
    assert_eq!(history[0]["call"], "0123456789abcdef0123456789abcdef");
    assert_eq!(history[0]["disposition"], "callback");
    assert_eq!(history[0]["agent"], "1002");
    // The supervisor of the team sees the agent ring and the queue; another team's does not.
    read_until(&mut wang_ws, Duration::from_secs(5), |v| {
        v["type"] == "agent" && v["agent"]["state"] == "ringing"
    });
    let zhao_seen = read_until(&mut zhao_ws, Duration::from_secs(3), |v| {
        v["type"] == "queues"
    });
    assert!(
        zhao_seen
            .iter()
            .all(|v| v["type"] != "agent" && v["type"] != "offer"),
        "{zhao_seen:?}"
    );
    phone.hangup();
    phone.pump(S(300));
    let _ = agent.join();
    drop(li_ws);
    server.stop();
}

#[test]
fn an_agent_consults_a_colleague_from_the_desk_and_hands_the_caller_over() {
    consult_and_hand_over("1002", ("1002", TransferTargetKind::Agent));
}

/// The same through a queue: the consultation waits in `help` and 1002, its free agent, is
/// rung for it.
#[test]
fn an_agent_consults_a_queue_from_the_desk_and_hands_the_caller_to_its_agent() {
    consult_and_hand_over("help", ("help", TransferTargetKind::Queue));
}

fn consult_and_hand_over(target: &str, row: (&str, TransferTargetKind)) {
    let mut site = agent_site();
    with_users(&mut site);
    let mut server = start(site.config.clone());
    let api = server.server.as_ref().unwrap().api_addr.unwrap();
    let li = login(api, "li");
    let mut li_ws = connect(api, Some(&li), None).unwrap();
    read_until(&mut li_ws, Duration::from_secs(3), |v| v["type"] == "hello");
    let sip = server.sip;
    // 1001 registers first: the longest idle, it takes the caller; 1002 is consulted.
    let first =
        std::thread::spawn(move || run_agent_as(sip, "1001", 1500.0, Behaviour::Answer, S(9000)));
    read_until(&mut li_ws, Duration::from_secs(5), |v| {
        v["type"] == "agent" && v["agent"]["state"] == "available"
    });
    let second =
        std::thread::spawn(move || run_agent_as(sip, "1002", 2000.0, Behaviour::Answer, S(9000)));
    std::thread::sleep(S(500));
    let mut phone = Phone::calling_from(sip, CALLER);
    phone.call("400");
    phone.say(1000.0, 1200);
    read_until(&mut li_ws, Duration::from_secs(3), |v| {
        v["type"] == "agent" && v["agent"]["state"] == "on_call"
    });
    let (status, body) = post(
        api,
        &li,
        "/api/v1/agents/1001/consult",
        &format!(r#"{{"target": "{target}"}}"#),
    );
    assert_eq!(status, 200, "{body}");
    let (status, body) = post(api, &li, "/api/v1/agents/1001/consult/complete", "{}");
    assert_eq!(status, 409, "not before the colleague answers: {body}");
    let mut heard_while_consulting = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(3);
    loop {
        phone.say(1000.0, 100);
        let mut done = false;
        while let Ok(Message::Text(t)) = li_ws.read() {
            let v: serde_json::Value = serde_json::from_str(&t).unwrap();
            done |= v["type"] == "consult" && v["consult"]["state"] == "talking";
        }
        if done {
            break;
        }
        assert!(Instant::now() < deadline, "the colleague answers");
    }
    let consulting = phone.received.len();
    phone.say(1000.0, 600); // the agents talk; the caller is on hold
    heard_while_consulting.extend(heard_in(&phone, consulting..phone.received.len()));
    let (status, body) = post(
        api,
        &li,
        "/api/v1/agents/1001/consult/complete",
        r#"{"reason": "billing"}"#,
    );
    assert_eq!(status, 200, "{body}");
    let handed = phone.received.len();
    phone.say(1000.0, 1500);
    let after = heard_in(&phone, handed..phone.received.len());
    phone.hangup();
    phone.pump(S(500));
    let (a, b) = (first.join().unwrap(), second.join().unwrap());
    server.stop();
    assert_eq!(
        (a.rung, b.rung),
        (1, 1),
        "one call each: no second line on 1001"
    );
    assert!(a.got_bye, "1001's call ends at the hand-over");
    assert!(
        loud_share(&heard_while_consulting) < 0.1,
        "on hold the caller hears neither agent"
    );
    let rate = crossings_per_second(&after[after.len() / 3..]);
    assert!(
        (3800.0..4200.0).contains(&rate),
        "after the hand-over the caller hears 1002's 2 kHz: {rate}"
    );
    let cdrs = read_cdrs(&site.config.database);
    let c = &cdrs[0];
    assert_eq!(c.agent.as_deref(), Some("1002"), "{c:?}");
    let t = &c.transfers[0];
    assert_eq!(
        (
            t.kind,
            t.by.as_str(),
            (t.target.as_str(), t.target_kind),
            t.reason.as_deref()
        ),
        (TransferKind::Attended, "1001", row, Some("billing"))
    );
    assert!(c.hold_ms.unwrap() >= 500, "{c:?}");
}

/// `hotline load --desktops`: the load tool's desktops log in, hold the stream open while its
/// callers queue for a real agent phone, and time the agent's state changes.
#[test]
fn the_load_tool_times_agent_events_on_its_desktops() {
    let mut site = agent_site();
    with_users(&mut site);
    let hash = hash_password(PASSWORD).unwrap();
    let users = site.dir.path().join("users.toml");
    let mut text = std::fs::read_to_string(&users).unwrap();
    for agent in ["1001", "1002"] {
        text.push_str(&format!(
            "[[user]]\nname = \"{agent}\"\nrole = \"agent\"\nagent = \"{agent}\"\npassword = \"{hash}\"\n"
        ));
    }
    std::fs::write(&users, text).unwrap();
    let mut server = start(site.config.clone());
    let api = server.server.as_ref().unwrap().api_addr.unwrap();
    let sip = server.sip;
    let agent = std::thread::spawn(move || run_agent(sip, Behaviour::AnswerEach, S(9000)));
    std::thread::sleep(S(500));
    // Desktop i is user base + i: 1001 (whose phone answers the callers) and 1002.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_hotline"))
        .args([
            "load",
            &sip.to_string(),
            "--number",
            "400",
            "--calls",
            "2",
            "--cps",
            "2",
        ])
        .args([
            "--hold",
            "2",
            "--digits",
            "",
            "--desktops",
            "2",
            "--desktop-base",
            "1001",
        ])
        .args([
            "--desktop-password",
            PASSWORD,
            "--api",
            &api.to_string(),
            "--format",
            "json",
        ])
        .output()
        .unwrap();
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "{e}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    });
    let _ = agent.join();
    server.stop();
    let d = &report["desktops"];
    assert_eq!(d["connected"], 2, "{d}");
    assert_eq!(d["login_failures"], 0, "{d}");
    assert_eq!(d["closed_by_server"], 0, "{d}");
    // 1001 rings, talks and is free again (only 1001's desktop hears of it).
    assert!(d["agent_events"].as_u64().unwrap() >= 3, "{d}");
    assert!(d["latency_ms_p99"].as_f64().unwrap() < 1000.0, "{d}");
    assert!(
        d["other_messages"].as_u64().unwrap() >= 2,
        "the hellos at least: {d}"
    );
    assert_eq!(report["calls_completed"], 2, "{report:#}");
}

#[test]
fn a_logout_closes_the_users_streams_at_once() {
    let mut site = agent_site();
    with_users(&mut site);
    let mut server = start(site.config.clone());
    let api = server.server.as_ref().unwrap().api_addr.unwrap();
    let li = login(api, "li");
    let mut ws = connect(api, Some(&li), None).unwrap();
    read_until(&mut ws, Duration::from_secs(3), |v| v["type"] == "hello");
    let mut other = connect(api, Some(&login(api, "wang")), None).unwrap();
    read_until(&mut other, Duration::from_secs(3), |v| v["type"] == "hello");
    let (status, answer) = request(api, "DELETE", "/api/v1/session", Some(&li), "");
    assert_eq!(status, 200, "{answer}");
    let logged_out = Instant::now();
    let closed = loop {
        match ws.read() {
            Ok(Message::Close(frame)) => break frame,
            Ok(_) => {}
            Err(tungstenite::Error::Io(e))
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(e) => panic!("{e}"),
        }
        assert!(
            logged_out.elapsed() < Duration::from_secs(3),
            "the stream closes at the logout, not at the next 15 s check"
        );
    };
    assert!(
        closed.is_some_and(|f| f.reason.contains("session ended")),
        "the client is told why"
    );
    // Another user's stream goes on: it answers a ping.
    other
        .send(Message::Ping(b"still?".to_vec().into()))
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(2);
    loop {
        match other.read() {
            Ok(Message::Pong(p)) if &p[..] == b"still?" => break,
            Ok(Message::Close(f)) => panic!("closed: {f:?}"),
            _ => assert!(Instant::now() < deadline, "no pong"),
        }
    }
    server.stop();
}
