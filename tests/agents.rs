//! Callers reach agents over real UDP: an agent's phone (hotline's own user agent on its own
//! sockets) registers with digest authentication, a caller dials a queue, the agent's phone
//! rings and answers, and each side hears the other, checked by the tone each sends. A
//! caller who hangs up while the agent rings cancels the ring. The CDR, its offer rows and
//! the agent-state history are read back from the real SQLite file.

mod common;

use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

use common::*;
use hotline::cdr::{AgentStateKind, OfferOutcome};
use hotline::sip::digest::{self, Algorithm};
use hotline::sip::{CallRef, Peer, TransportKind, UaConfig, UaEvent, UserAgent};

const S: fn(u64) -> Duration = Duration::from_millis;

#[derive(Clone, Copy, PartialEq)]
enum Behaviour {
    Answer,
    RingForever,
    /// Answer, then after a second hand the caller to this agent id or queue by REFER.
    AnswerThenRefer(&'static str),
}

#[derive(Default)]
struct Seen {
    registered: bool,
    rung: usize,
    audio: Vec<i16>,
    got_bye: bool,
    got_cancel: bool,
    referred: bool,
}

const AGENTS: &str = r#"
[agents.1001]
name = "Li Na"
ha1_md5 = "HA1MD5"
skills = { help = 5 }
team = "support"
auto_login = true

[agents.1002]
name = "Sam Wu"
ha1_md5 = "HA2MD5"
skills = { help = 1 }
team = "support"
auto_login = true
"#;

const QUEUES: &str = r#"
[queues.help]
strategy = "longest-idle"
skills = { help = 1 }
ring_timeout = "20s"
wrap_up = "1s"
"#;

const FLOW: &str = r#"
[flow]
name = "q"
numbers = ["400"]
start = "agent"

[nodes.agent]
type = "queue"
queue = "help"
prompts = ["welcome"]
timeout = "1m"
answered = "goodbye"
no_agents = "goodbye"
on_timeout = "goodbye"
full = "goodbye"

[nodes.goodbye]
type = "play"
prompts = ["goodbye"]
next = "end"

[nodes.end]
type = "hangup"
"#;

fn agent_site() -> Site {
    let site = site(FLOW);
    let acd = site.config.flows_dir.join("acd");
    std::fs::create_dir_all(&acd).unwrap();
    let ha1 = hotline::acd::load::ha1_md5("1001", "hotline", "pw1001");
    let ha2 = hotline::acd::load::ha1_md5("1002", "hotline", "pw1002");
    let agents = AGENTS.replace("HA1MD5", &ha1).replace("HA2MD5", &ha2);
    std::fs::write(acd.join("agents.toml"), agents).unwrap();
    std::fs::write(acd.join("queues.toml"), QUEUES).unwrap();
    site
}

/// REGISTER with digest over the phone's own SIP socket, before its user agent takes over.
fn register(sip: &UdpSocket, server: SocketAddr, user: &str) -> bool {
    let me = sip.local_addr().unwrap();
    let text = |cseq: u32, auth: Option<&str>| {
        let mut t = format!(
            "REGISTER sip:{server} SIP/2.0\r\nVia: SIP/2.0/UDP {me};branch=z9hG4bKagent{user}{cseq};rport\r\nMax-Forwards: 70\r\nFrom: <sip:{user}@{server}>;tag=a1\r\nTo: <sip:{user}@{server}>\r\nCall-ID: agent-reg-{user}\r\nCSeq: {cseq} REGISTER\r\nContact: <sip:{user}@{me}>\r\nExpires: 300\r\n"
        );
        if let Some(a) = auth {
            t.push_str(&format!("Authorization: {a}\r\n"));
        }
        t.push_str("Content-Length: 0\r\n\r\n");
        t
    };
    let mut buf = [0u8; 65536];
    let ask = |t: String, buf: &mut [u8]| -> String {
        sip.send_to(t.as_bytes(), server).unwrap();
        sip.set_read_timeout(Some(S(2000))).unwrap();
        loop {
            let (n, _) = sip.recv_from(buf).expect("an answer to REGISTER");
            let m = String::from_utf8_lossy(&buf[..n]).into_owned();
            if !m.starts_with("SIP/2.0 100") {
                return m;
            }
        }
    };
    let challenge = ask(text(1, None), &mut buf);
    let params = challenge
        .lines()
        .filter_map(|l| l.strip_prefix("WWW-Authenticate: "))
        .filter_map(digest::parse_challenge)
        .find(|p| p.get("algorithm").map(String::as_str) == Some("MD5"))
        .expect("an MD5 challenge");
    let auth = digest::client_response(
        Algorithm::Md5,
        user,
        "hotline",
        &format!("pw{user}"),
        "REGISTER",
        &format!("sip:{server}"),
        &params["nonce"],
        1,
        "abc",
        params.get("opaque").map(String::as_str),
    );
    ask(text(2, Some(&auth)), &mut buf).starts_with("SIP/2.0 200")
}

/// The agent's phone: registers, then answers (or only rings) and sends a 1500 Hz tone.
fn run_agent(server: SocketAddr, behaviour: Behaviour, for_how_long: Duration) -> Seen {
    run_agent_as(server, "1001", 1500.0, behaviour, for_how_long)
}

/// Agent `user` (password "pw" + user) saying a tone of `freq`.
fn run_agent_as(
    server: SocketAddr,
    user: &str,
    freq: f32,
    behaviour: Behaviour,
    for_how_long: Duration,
) -> Seen {
    let sip = UdpSocket::bind("127.0.0.1:0").unwrap();
    let rtp_sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    let mut seen = Seen {
        registered: register(&sip, server, user),
        ..Seen::default()
    };
    sip.set_nonblocking(true).unwrap();
    let mut ua = UserAgent::new(UaConfig {
        timers: Default::default(),
        advertised: sip.local_addr().unwrap().to_string(),
        advertise_request_host: false,
        user: user.into(),
        // Real sockets: any distinct seed will do; these phones challenge nobody.
        seed: fastrand::u64(..),
        nonce_secret: [0; 32],
    });
    let mut media = ToneMedia::new(rtp_sock, freq, 0xA6E);
    let mut refer_at: Option<(Instant, CallRef)> = None;
    let end = Instant::now() + for_how_long;
    let mut buf = [0u8; 65536];
    while Instant::now() < end && !seen.got_bye {
        while let Some(t) = ua.poll_transmit() {
            sip.send_to(&t.data, t.to.addr).unwrap();
        }
        while let Ok((n, from)) = sip.recv_from(&mut buf) {
            let peer = Peer {
                addr: from,
                transport: TransportKind::Udp,
            };
            ua.handle_input(Instant::now(), peer, &buf[..n]);
        }
        ua.handle_timeout(Instant::now());
        while let Some(event) = ua.poll_event() {
            match event {
                UaEvent::Incoming { call, offer, .. } => {
                    seen.rung += 1;
                    ua.ring(Instant::now(), call);
                    if behaviour != Behaviour::RingForever {
                        let answer = media.answer(&offer.expect("an offer"));
                        ua.answer(Instant::now(), call, answer);
                        if let Behaviour::AnswerThenRefer(_) = behaviour {
                            refer_at = Some((Instant::now() + S(1000), call));
                        }
                    }
                }
                UaEvent::RemoteBye { .. } => seen.got_bye = true,
                UaEvent::Cancelled { .. } => {
                    seen.got_cancel = true;
                    seen.got_bye = true;
                }
                _ => {}
            }
        }
        if let (Some((at, call)), Behaviour::AnswerThenRefer(to)) = (refer_at, behaviour)
            && Instant::now() >= at
        {
            refer_at = None;
            ua.refer(Instant::now(), call, &format!("<sip:{to}@{server}>"));
            seen.referred = true;
        }
        media.poll();
        std::thread::sleep(S(2));
    }
    seen.audio = std::mem::take(&mut media.audio);
    ua.handle_timeout(Instant::now());
    while let Some(t) = ua.poll_transmit() {
        sip.send_to(&t.data, t.to.addr).unwrap();
    }
    seen
}

fn agent_states(database: &str) -> Vec<(String, AgentStateKind)> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let store = hotline::cdr::store::CdrStore::connect(database)
            .await
            .unwrap();
        let rows = store.agent_states(None).await.unwrap();
        rows.into_iter().map(|r| (r.agent, r.state)).collect()
    })
}

#[test]
fn a_registered_agent_answers_a_queued_caller_and_each_hears_the_other() {
    let site = agent_site();
    let mut server = start(site.config.clone());
    let sip = server.sip;
    let agent = std::thread::spawn(move || run_agent(sip, Behaviour::Answer, S(9000)));
    std::thread::sleep(S(500)); // the phone registers and logs in
    let mut phone = Phone::new(server.sip);
    phone.call("400");
    phone.talk(S(1200)); // the intro, then the agent's phone rings and answers
    phone.send_audio(&sine(1000.0, 2000, 8000.0), S(300));
    phone.hangup();
    phone.pump(S(500));
    let seen = agent.join().unwrap();
    server.stop();
    assert!(seen.registered, "the phone registered with its password");
    assert_eq!(seen.rung, 1);
    assert!(seen.got_bye, "the caller's hang-up ends the agent's call");
    let to_agent = crossings_per_second(&seen.audio);
    assert!(
        (1800.0..2200.0).contains(&to_agent),
        "the agent hears the caller's 1 kHz: {to_agent}"
    );
    let to_caller = crossings_per_second(&phone.heard_pcm());
    assert!(
        (2800.0..3200.0).contains(&to_caller),
        "the caller hears the agent's 1.5 kHz: {to_caller}"
    );
    let cdrs = read_cdrs(&site.config.database);
    assert_eq!(cdrs.len(), 1, "one CDR: {cdrs:?}");
    let c = &cdrs[0];
    assert_eq!(c.queue.as_deref(), Some("help"));
    assert_eq!(c.agent.as_deref(), Some("1001"));
    assert_eq!(c.team.as_deref(), Some("support"));
    assert!(c.talk_ms.unwrap() > 1500, "{c:?}");
    assert_eq!(c.offers.len(), 1);
    assert_eq!(c.offers[0].outcome, OfferOutcome::Answered);
    assert!(!c.abandoned);
    let states: Vec<AgentStateKind> = agent_states(&site.config.database)
        .into_iter()
        .map(|(_, s)| s)
        .collect();
    assert_eq!(
        states[..4],
        [
            AgentStateKind::Available,
            AgentStateKind::Ringing,
            AgentStateKind::OnCall,
            AgentStateKind::WrapUp,
        ],
        "{states:?}"
    );
}

#[test]
fn a_caller_who_hangs_up_while_the_agent_rings_cancels_the_ring() {
    let site = agent_site();
    let mut server = start(site.config.clone());
    let sip = server.sip;
    let agent = std::thread::spawn(move || run_agent(sip, Behaviour::RingForever, S(6000)));
    std::thread::sleep(S(500));
    let mut phone = Phone::new(server.sip);
    phone.call("400");
    phone.talk(S(1500));
    phone.hangup();
    phone.pump(S(500));
    let seen = agent.join().unwrap();
    server.stop();
    assert_eq!(seen.rung, 1);
    assert!(seen.got_cancel, "CANCEL reached the agent's phone");
    let c = &read_cdrs(&site.config.database)[0];
    assert!(c.abandoned, "{c:?}");
    assert_eq!(c.offers[0].outcome, OfferOutcome::Cancelled);
}

#[test]
fn an_agent_transfers_the_caller_to_a_colleague_who_then_talks_with_them() {
    let site = agent_site();
    let mut server = start(site.config.clone());
    let sip = server.sip;
    // 1001 registers (and so logs in) first: the longest idle, it rings first. 1002 is only
    // offered the caller once 1001 hands them over.
    let first = std::thread::spawn(move || {
        run_agent_as(
            sip,
            "1001",
            1500.0,
            Behaviour::AnswerThenRefer("1002"),
            S(9000),
        )
    });
    std::thread::sleep(S(300));
    let second =
        std::thread::spawn(move || run_agent_as(sip, "1002", 2000.0, Behaviour::Answer, S(9000)));
    std::thread::sleep(S(500));
    let mut phone = Phone::new(server.sip);
    phone.call("400");
    phone.talk(S(4000)); // 1001 answers, transfers after a second, 1002 answers
    phone.send_audio(&sine(1000.0, 2000, 8000.0), S(300));
    phone.hangup();
    phone.pump(S(500));
    let (a, b) = (first.join().unwrap(), second.join().unwrap());
    server.stop();
    assert!(
        a.referred && a.got_bye,
        "1001 transferred and its call ended"
    );
    assert_eq!(b.rung, 1, "the colleague was offered the caller");
    let to_b = crossings_per_second(&b.audio);
    assert!(
        (1800.0..2200.0).contains(&to_b),
        "1002 hears the caller: {to_b}"
    );
    let to_caller = crossings_per_second(&phone.heard_pcm());
    assert!(
        (3800.0..4200.0).contains(&to_caller),
        "the caller ends up hearing 1002's 2 kHz: {to_caller}"
    );
    let c = &read_cdrs(&site.config.database)[0];
    assert_eq!(c.agent.as_deref(), Some("1002"));
    assert_eq!(c.transfers.len(), 1);
    assert_eq!(
        (c.transfers[0].by.as_str(), c.transfers[0].target.as_str()),
        ("1001", "1002")
    );
    let agents: Vec<&str> = c.offers.iter().map(|o| o.agent.as_str()).collect();
    assert_eq!(agents, ["1001", "1002"]);
}
