//! Callers reach agents over real UDP: an agent's phone (hotline's own user agent on its own
//! sockets) registers with digest authentication, a caller dials a queue, the agent's phone
//! rings and answers, and each side hears the other, checked by the tone each sends. A
//! caller who hangs up while the agent rings cancels the ring. The agent's hold (re-INVITE
//! sendonly) gives the caller the queue's music until the agent takes them back; an agent
//! consults a colleague (an authenticated INVITE to the extension) and hands the caller
//! over by REFER with Replaces; an agent whose registration is gone is not rung until the
//! phone registers again. The CDR, its offer and transfer rows and the agent-state history
//! are read back from the real SQLite file.

mod common;

use std::net::{SocketAddr, UdpSocket};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use common::*;
use hotline::cdr::{AgentStateKind, OfferOutcome, TransferKind};
use hotline::sdp::Direction;
use hotline::sip::digest::{self, Algorithm};
use hotline::sip::message::Method;
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
    /// When each INVITE that opens a call reached the phone's socket.
    invites_at: Vec<Instant>,
    /// The final status of each re-INVITE the phone sent.
    reinvited: Vec<u16>,
    /// The final status of each REFER the phone sent.
    refer_answers: Vec<u16>,
    /// The body (sipfrag) of each NOTIFY that reached the phone.
    notified: Vec<String>,
    /// Whether the consultation call (`Ctl::Consult`) got a BYE from hotline.
    consult_bye: bool,
}

/// What the test tells a running agent phone to do.
enum Ctl {
    /// Put the caller on hold: re-INVITE with `a=sendonly`.
    Hold,
    /// Take them back: re-INVITE with `a=sendrecv`.
    Resume,
    /// REGISTER again with this Expires (0 removes the contact); whether it got 200 goes
    /// back on the channel.
    Register(u32, mpsc::Sender<bool>),
    /// With the caller on hold, dial this extension through hotline (INVITE, 407, INVITE
    /// with Proxy-Authorization); the final status goes back on the channel.
    Consult(&'static str, mpsc::Sender<u16>),
    /// Hand the caller to the consulted colleague: REFER on the caller's dialog with a
    /// Refer-To naming this extension and, in Replaces, the consultation dialog.
    Transfer(&'static str),
}

/// A consultation call placed by hand over the agent phone's SIP socket (the phone's user
/// agent has no digest client): its own Call-ID, tags and CSeq, and an RTP port nobody
/// reads.
struct Consult {
    server: SocketAddr,
    me: SocketAddr,
    user: String,
    uri: String,
    call_id: String,
    from_tag: String,
    /// The To header of the latest response (with hotline's tag once there is one).
    to: String,
    cseq: u32,
    branch: String,
    rtp: UdpSocket,
    /// Where the final status goes; taken once it is known.
    done: Option<mpsc::Sender<u16>>,
    got_bye: bool,
}

/// The value of header `name` (or its compact form `short`) in a SIP message.
fn header<'a>(m: &'a str, name: &str, short: &str) -> Option<&'a str> {
    m.lines().find_map(|l| {
        let (n, v) = l.split_once(':')?;
        let n = n.trim();
        (n.eq_ignore_ascii_case(name) || n.eq_ignore_ascii_case(short)).then_some(v.trim())
    })
}

impl Consult {
    fn start(
        sip: &UdpSocket,
        server: SocketAddr,
        user: &str,
        ext: &str,
        done: mpsc::Sender<u16>,
    ) -> Consult {
        let n = fastrand::u32(..);
        let me = sip.local_addr().unwrap();
        let c = Consult {
            server,
            me,
            user: user.into(),
            uri: format!("sip:{ext}@{server}"),
            call_id: format!("consult-{user}-{n}"),
            from_tag: format!("ct{n}"),
            to: format!("<sip:{ext}@{server}>"),
            cseq: 1,
            branch: format!("z9hG4bKct{n}x1"),
            rtp: UdpSocket::bind("127.0.0.1:0").unwrap(),
            done: Some(done),
            got_bye: false,
        };
        c.invite(sip, None);
        c
    }

    fn invite(&self, sip: &UdpSocket, auth: Option<String>) {
        let port = self.rtp.local_addr().unwrap().port();
        let body = format!(
            "v=0\r\no={u} 1 1 IN IP4 127.0.0.1\r\ns=consult\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio {port} RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\na=ptime:20\r\na=sendrecv\r\n",
            u = self.user
        );
        let mut t = format!(
            "INVITE {uri} SIP/2.0\r\nVia: SIP/2.0/UDP {me};branch={b};rport\r\nMax-Forwards: 70\r\nFrom: <sip:{u}@{server}>;tag={ft}\r\nTo: <{uri}>\r\nCall-ID: {cid}\r\nCSeq: {cseq} INVITE\r\nContact: <sip:{u}@{me}>\r\nContent-Type: application/sdp\r\n",
            uri = self.uri,
            me = self.me,
            b = self.branch,
            u = self.user,
            server = self.server,
            ft = self.from_tag,
            cid = self.call_id,
            cseq = self.cseq,
        );
        if let Some(a) = auth {
            t.push_str(&format!("Proxy-Authorization: {a}\r\n"));
        }
        t.push_str(&format!("Content-Length: {}\r\n\r\n{body}", body.len()));
        sip.send_to(t.as_bytes(), self.server).unwrap();
    }

    /// ACK a final response: a non-2xx in the INVITE's transaction (its branch), a 2xx as a
    /// request of its own to `target`.
    fn ack(&self, sip: &UdpSocket, target: &str, branch: &str) {
        let t = format!(
            "ACK {target} SIP/2.0\r\nVia: SIP/2.0/UDP {me};branch={branch};rport\r\nMax-Forwards: 70\r\nFrom: <sip:{u}@{server}>;tag={ft}\r\nTo: {to}\r\nCall-ID: {cid}\r\nCSeq: {cseq} ACK\r\nContent-Length: 0\r\n\r\n",
            me = self.me,
            u = self.user,
            server = self.server,
            ft = self.from_tag,
            to = self.to,
            cid = self.call_id,
            cseq = self.cseq,
        );
        sip.send_to(t.as_bytes(), self.server).unwrap();
    }

    /// Take `m` if it belongs to the consultation call.
    fn handle(&mut self, sip: &UdpSocket, m: &str) -> bool {
        if header(m, "Call-ID", "i") != Some(self.call_id.as_str()) {
            return false;
        }
        if let Some(status) = m.strip_prefix("SIP/2.0 ") {
            let code: u16 = status[..3].parse().unwrap();
            let cseq = header(m, "CSeq", "").unwrap_or_default();
            if code < 200 || cseq != format!("{} INVITE", self.cseq) {
                return true;
            }
            self.to = header(m, "To", "t").unwrap().to_string();
            if code == 407 && self.cseq == 1 {
                self.ack(sip, &self.uri, &self.branch);
                let params = m
                    .lines()
                    .filter_map(|l| l.strip_prefix("Proxy-Authenticate: "))
                    .filter_map(digest::parse_challenge)
                    .find(|p| p.get("algorithm").map(String::as_str) == Some("MD5"))
                    .expect("an MD5 challenge");
                let auth = digest::client_response(
                    Algorithm::Md5,
                    &self.user,
                    "hotline",
                    &format!("pw{}", self.user),
                    "INVITE",
                    &self.uri,
                    &params["nonce"],
                    1,
                    "beef",
                    params.get("opaque").map(String::as_str),
                );
                self.cseq = 2;
                self.branch = format!("z9hG4bK{}x2", self.from_tag);
                self.to = format!("<{}>", self.uri);
                self.invite(sip, Some(auth));
                return true;
            }
            if (200..300).contains(&code) {
                let target = header(m, "Contact", "m")
                    .and_then(|c| c.split('<').nth(1))
                    .and_then(|c| c.split('>').next())
                    .unwrap_or(&self.uri)
                    .to_string();
                self.ack(sip, &target, &format!("z9hG4bK{}ack", self.from_tag));
            } else {
                self.ack(sip, &self.uri, &self.branch);
            }
            if let Some(done) = self.done.take() {
                let _ = done.send(code);
            }
            return true;
        }
        if m.starts_with("BYE ") {
            let mut ok = String::from("SIP/2.0 200 OK\r\n");
            for l in m.lines() {
                let name = l
                    .split(':')
                    .next()
                    .unwrap_or_default()
                    .trim()
                    .to_ascii_lowercase();
                if ["via", "v", "from", "f", "to", "t", "call-id", "i", "cseq"]
                    .contains(&name.as_str())
                {
                    ok.push_str(l);
                    ok.push_str("\r\n");
                }
            }
            ok.push_str("Content-Length: 0\r\n\r\n");
            sip.send_to(ok.as_bytes(), self.server).unwrap();
            self.got_bye = true;
        }
        true
    }

    /// The Replaces value naming this dialog, escaped for a Refer-To URI (RFC 3891).
    fn replaces(&self) -> String {
        let to_tag = self.to.split("tag=").nth(1).unwrap_or_default();
        let to_tag = to_tag.split(';').next().unwrap_or_default();
        format!(
            "{}%3Bto-tag%3D{}%3Bfrom-tag%3D{}",
            self.call_id, to_tag, self.from_tag
        )
    }
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
    agent_site_with(FLOW, QUEUES)
}

fn agent_site_with(flow: &str, queues: &str) -> Site {
    let site = site(flow);
    let acd = site.config.flows_dir.join("acd");
    std::fs::create_dir_all(&acd).unwrap();
    let ha1 = hotline::acd::load::ha1_md5("1001", "hotline", "pw1001");
    let ha2 = hotline::acd::load::ha1_md5("1002", "hotline", "pw1002");
    let agents = AGENTS.replace("HA1MD5", &ha1).replace("HA2MD5", &ha2);
    std::fs::write(acd.join("agents.toml"), agents).unwrap();
    std::fs::write(acd.join("queues.toml"), queues).unwrap();
    site
}

/// REGISTER with digest over the phone's own SIP socket (CSeq `cseq`, then `cseq + 1` with
/// credentials) asking for `expires` seconds; 0 removes the contact. Blocks on the socket;
/// anything else that arrives meanwhile is kept in `other` for the phone's user agent.
fn register_for(
    sip: &UdpSocket,
    server: SocketAddr,
    user: &str,
    expires: u32,
    cseq: u32,
    other: &mut Vec<(Vec<u8>, SocketAddr)>,
) -> bool {
    let me = sip.local_addr().unwrap();
    let text = |cseq: u32, auth: Option<&str>| {
        let mut t = format!(
            "REGISTER sip:{server} SIP/2.0\r\nVia: SIP/2.0/UDP {me};branch=z9hG4bKagent{user}{cseq}x{expires};rport\r\nMax-Forwards: 70\r\nFrom: <sip:{user}@{server}>;tag=a1\r\nTo: <sip:{user}@{server}>\r\nCall-ID: agent-reg-{user}\r\nCSeq: {cseq} REGISTER\r\nContact: <sip:{user}@{me}>\r\nExpires: {expires}\r\n"
        );
        if let Some(a) = auth {
            t.push_str(&format!("Authorization: {a}\r\n"));
        }
        t.push_str("Content-Length: 0\r\n\r\n");
        t
    };
    let mut buf = [0u8; 65536];
    let mut ask = |t: String| -> String {
        sip.send_to(t.as_bytes(), server).unwrap();
        sip.set_read_timeout(Some(S(2000))).unwrap();
        loop {
            let (n, from) = sip.recv_from(&mut buf).expect("an answer to REGISTER");
            let m = String::from_utf8_lossy(&buf[..n]).into_owned();
            if !m.starts_with("SIP/2.0 ") || !m.contains(" REGISTER\r\n") {
                other.push((buf[..n].to_vec(), from));
                continue;
            }
            if !m.starts_with("SIP/2.0 100") {
                return m;
            }
        }
    };
    let challenge = ask(text(cseq, None));
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
    ask(text(cseq + 1, Some(&auth))).starts_with("SIP/2.0 200")
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
    run_agent_ctl(server, user, freq, 300, behaviour, for_how_long, None)
}

/// As `run_agent_as`, registering for `expires` seconds (and never refreshing), and doing
/// what `ctl` says as it comes.
fn run_agent_ctl(
    server: SocketAddr,
    user: &str,
    freq: f32,
    expires: u32,
    behaviour: Behaviour,
    for_how_long: Duration,
    ctl: Option<mpsc::Receiver<Ctl>>,
) -> Seen {
    let sip = UdpSocket::bind("127.0.0.1:0").unwrap();
    let rtp_sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    let mut other = Vec::new();
    let mut seen = Seen {
        registered: register_for(&sip, server, user, expires, 1, &mut other),
        ..Seen::default()
    };
    let mut cseq = 3;
    let mut current: Option<CallRef> = None;
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
    let mut consult: Option<Consult> = None;
    let end = Instant::now() + for_how_long;
    let mut buf = [0u8; 65536];
    while Instant::now() < end && !(seen.got_bye && consult.as_ref().is_none_or(|c| c.got_bye)) {
        while let Some(t) = ua.poll_transmit() {
            sip.send_to(&t.data, t.to.addr).unwrap();
        }
        while let Some(c) = ctl.as_ref().and_then(|r| r.try_recv().ok()) {
            match c {
                Ctl::Hold | Ctl::Resume => {
                    let direction = if matches!(c, Ctl::Hold) {
                        Direction::SendOnly
                    } else {
                        Direction::SendRecv
                    };
                    let call = current.expect("a call to hold or resume");
                    let offer = media.reoffer(direction);
                    ua.send_in_dialog(
                        Instant::now(),
                        call,
                        Method::Invite,
                        Some(("application/sdp".into(), offer)),
                    )
                    .expect("a re-INVITE goes out");
                }
                Ctl::Register(expires, done) => {
                    sip.set_nonblocking(false).unwrap();
                    let ok = register_for(&sip, server, user, expires, cseq, &mut other);
                    sip.set_nonblocking(true).unwrap();
                    cseq += 2;
                    let _ = done.send(ok);
                }
                Ctl::Consult(ext, done) => {
                    consult = Some(Consult::start(&sip, server, user, ext, done));
                }
                Ctl::Transfer(ext) => {
                    let call = current.expect("a call to transfer");
                    let replaces = consult.as_ref().expect("a consultation").replaces();
                    ua.refer(
                        Instant::now(),
                        call,
                        &format!("<sip:{ext}@{server}?Replaces={replaces}>"),
                    )
                    .expect("a REFER goes out");
                    seen.referred = true;
                }
            }
        }
        while let Ok((n, from)) = sip.recv_from(&mut buf) {
            other.push((buf[..n].to_vec(), from));
        }
        for (data, from) in other.drain(..) {
            let text = String::from_utf8_lossy(&data);
            if let Some(c) = consult.as_mut()
                && c.handle(&sip, &text)
            {
                continue;
            }
            if let Some(status) = text.strip_prefix("SIP/2.0 ")
                && header(&text, "CSeq", "").is_some_and(|c| c.ends_with(" REFER"))
                && let Ok(code) = status[..3].parse::<u16>()
                && code >= 200
            {
                seen.refer_answers.push(code);
            }
            if text.starts_with("NOTIFY ") {
                let body = text.split_once("\r\n\r\n").map_or("", |(_, b)| b);
                seen.notified.push(body.to_string());
            }
            if data.starts_with(b"INVITE ") && !is_in_dialog(&data) {
                seen.invites_at.push(Instant::now());
            }
            let peer = Peer {
                addr: from,
                transport: TransportKind::Udp,
            };
            ua.handle_input(Instant::now(), peer, &data);
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
                        current = Some(call);
                        if let Behaviour::AnswerThenRefer(_) = behaviour {
                            refer_at = Some((Instant::now() + S(1000), call));
                        }
                    }
                }
                UaEvent::RemoteBye { .. } => seen.got_bye = true,
                UaEvent::Reinvited { code, .. } => seen.reinvited.push(code),
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
    seen.consult_bye = consult.is_some_and(|c| c.got_bye);
    ua.handle_timeout(Instant::now());
    while let Some(t) = ua.poll_transmit() {
        sip.send_to(&t.data, t.to.addr).unwrap();
    }
    seen
}

/// An INVITE with a To tag is a re-INVITE in a dialog, not a new call.
fn is_in_dialog(data: &[u8]) -> bool {
    String::from_utf8_lossy(data).lines().any(|l| {
        let l = l.to_ascii_lowercase();
        (l.starts_with("to:") || l.starts_with("t:")) && l.contains(";tag=")
    })
}

fn agent_states(database: &str) -> Vec<(String, AgentStateKind)> {
    agent_state_rows(database)
        .into_iter()
        .map(|(agent, state, _)| (agent, state))
        .collect()
}

/// The agent-state history with each row's reason.
fn agent_state_rows(database: &str) -> Vec<(String, AgentStateKind, Option<String>)> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let store = hotline::cdr::store::CdrStore::connect(database)
            .await
            .unwrap();
        let rows = store.agent_states(None).await.unwrap();
        rows.into_iter()
            .map(|r| (r.agent, r.state, r.reason))
            .collect()
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

#[test]
fn an_agent_consults_a_colleague_and_hands_the_caller_over_by_attended_transfer() {
    let site = agent_site();
    let mut server = start(site.config.clone());
    let sip = server.sip;
    // 1001 registers first: the longest idle, it takes the caller; 1002 is consulted.
    let (ctl, rx) = mpsc::channel();
    let first = std::thread::spawn(move || {
        run_agent_ctl(
            sip,
            "1001",
            1500.0,
            300,
            Behaviour::Answer,
            S(8000),
            Some(rx),
        )
    });
    std::thread::sleep(S(300));
    let second =
        std::thread::spawn(move || run_agent_as(sip, "1002", 2000.0, Behaviour::Answer, S(9000)));
    std::thread::sleep(S(500));
    let mut phone = Phone::new(server.sip);
    phone.call("400");
    let caller_tone = sine(1000.0, 20, 8000.0);
    let say = |phone: &mut Phone, millis: u64| {
        let tone: Vec<i16> = caller_tone
            .iter()
            .copied()
            .cycle()
            .take(millis as usize * 8)
            .collect();
        phone.send_audio(&tone, S(0));
    };
    say(&mut phone, 1200); // the intro, then 1001's phone rings and answers
    let talking = phone.received.len();
    say(&mut phone, 600);
    let before = heard_in(&phone, talking..phone.received.len());
    ctl.send(Ctl::Hold).unwrap();
    say(&mut phone, 300);
    let (done, consulted) = mpsc::channel();
    ctl.send(Ctl::Consult("1002", done)).unwrap();
    let mut consult_code = None;
    for _ in 0..30 {
        say(&mut phone, 100);
        if let Ok(code) = consulted.try_recv() {
            consult_code = Some(code);
            break;
        }
    }
    assert_eq!(consult_code, Some(200), "the consulting agent is answered");
    say(&mut phone, 500); // the agents talk
    ctl.send(Ctl::Transfer("1002")).unwrap();
    let transferred = phone.received.len();
    say(&mut phone, 1500);
    let after = heard_in(&phone, transferred..phone.received.len());
    phone.hangup();
    phone.pump(S(500));
    let (a, b) = (first.join().unwrap(), second.join().unwrap());
    server.stop();
    assert!(a.registered && b.registered);
    assert_eq!(a.rung, 1, "1001 was offered the caller");
    assert_eq!(a.reinvited, [200], "the hold is accepted");
    assert_eq!(a.refer_answers, [202], "the REFER is accepted");
    assert!(
        a.notified.iter().any(|n| n.starts_with("SIP/2.0 200")),
        "a NOTIFY reports the transfer done: {:?}",
        a.notified
    );
    assert!(
        a.got_bye && a.consult_bye,
        "hotline ends both of 1001's calls (caller's: {}, consultation: {})",
        a.got_bye,
        a.consult_bye
    );
    assert_eq!(
        b.rung, 1,
        "the colleague is rung once, for the consultation"
    );
    let rate = crossings_per_second(&before);
    assert!(
        (2800.0..3200.0).contains(&rate),
        "before the transfer the caller hears 1001's 1.5 kHz: {rate}"
    );
    let rate = crossings_per_second(&after);
    assert!(
        (3800.0..4200.0).contains(&rate),
        "after it the caller hears 1002's 2 kHz: {rate}"
    );
    let rate = crossings_per_second(&b.audio);
    assert!(
        (1800.0..2200.0).contains(&rate),
        "1002 hears the caller's 1 kHz: {rate}"
    );
    let cdrs = read_cdrs(&site.config.database);
    assert_eq!(cdrs.len(), 1, "{cdrs:?}");
    let c = &cdrs[0];
    assert_eq!(c.agent.as_deref(), Some("1002"), "{c:?}");
    assert_eq!(c.transfers.len(), 1, "{c:?}");
    let t = &c.transfers[0];
    assert_eq!(
        (t.kind, t.by.as_str(), t.target.as_str()),
        (TransferKind::Attended, "1001", "1002")
    );
}

/// The share of loud samples (|s| > 1000) in the last half second of `pcm`: about 0.9 for
/// a tone, 0 for silence.
fn loud_share(pcm: &[i16]) -> f64 {
    let tail = &pcm[pcm.len().saturating_sub(4000)..];
    tail.iter().filter(|s| s.unsigned_abs() > 1000).count() as f64 / tail.len().max(1) as f64
}

/// What the phone heard in `packets` (indices into its received packets), decoded.
fn heard_in(phone: &Phone, packets: std::ops::Range<usize>) -> Vec<i16> {
    let mut pcm = Vec::new();
    for (_, payload) in &phone.received[packets] {
        let mut frame = vec![0i16; payload.len()];
        phone.codec.decode_into(payload, &mut frame);
        pcm.extend(frame);
    }
    pcm
}

/// The help queue with music: a 300 Hz tone, far from the agent's 1.5 kHz.
const QUEUES_WITH_MUSIC: &str = r#"
[queues.help]
strategy = "longest-idle"
skills = { help = 1 }
ring_timeout = "20s"
wrap_up = "1s"
music = "hold_music"
"#;

#[test]
fn an_agent_on_hold_gives_the_caller_the_queue_music_and_taking_them_back_resumes_the_talk() {
    let site = agent_site_with(FLOW, QUEUES_WITH_MUSIC);
    write_tone(&site.config.prompts_dir.join("hold_music.wav"), 300.0, 400);
    let mut server = start(site.config.clone());
    let sip = server.sip;
    let (ctl, rx) = mpsc::channel();
    let agent = std::thread::spawn(move || {
        run_agent_ctl(
            sip,
            "1001",
            1500.0,
            300,
            Behaviour::Answer,
            S(9000),
            Some(rx),
        )
    });
    std::thread::sleep(S(500)); // the phone registers and logs in
    let mut phone = Phone::new(server.sip);
    phone.call("400");
    phone.talk(S(1200)); // the intro, then the agent's phone rings and answers
    // Each phase is judged on its last half second, well after the re-INVITE.
    let talking = phone.received.len();
    phone.talk(S(1000));
    let held = phone.received.len();
    ctl.send(Ctl::Hold).unwrap();
    phone.talk(S(1200));
    let resumed = phone.received.len();
    ctl.send(Ctl::Resume).unwrap();
    phone.talk(S(1200));
    let before = heard_in(&phone, talking..held);
    let on_hold = heard_in(&phone, held..resumed);
    let talk_after = heard_in(&phone, resumed..phone.received.len());
    phone.hangup();
    phone.pump(S(500));
    let seen = agent.join().unwrap();
    server.stop();
    assert!(seen.registered && seen.rung == 1);
    assert_eq!(seen.reinvited, [200, 200], "hold and resume are accepted");
    let rate = crossings_per_second(&before);
    assert!(
        (2800.0..3200.0).contains(&rate),
        "before hold the caller hears the agent's 1.5 kHz: {rate}"
    );
    assert!(
        loud_share(&on_hold) > 0.5,
        "on hold the caller hears something, not silence: {}",
        loud_share(&on_hold)
    );
    let rate = crossings_per_second(&on_hold);
    assert!(
        (500.0..700.0).contains(&rate),
        "on hold the caller hears the 300 Hz music, not the agent: {rate}"
    );
    let rate = crossings_per_second(&talk_after);
    assert!(
        (2800.0..3200.0).contains(&rate),
        "taken back, the caller hears the agent again: {rate}"
    );
    let cdrs = read_cdrs(&site.config.database);
    assert_eq!(cdrs.len(), 1, "{cdrs:?}");
    let c = &cdrs[0];
    assert_eq!(c.agent.as_deref(), Some("1001"));
    let hold = c.hold_ms.expect("a hold time");
    assert!((900..=2000).contains(&hold), "about 1.2 s on hold: {c:?}");
    let rows: Vec<(AgentStateKind, Option<String>)> = agent_state_rows(&site.config.database)
        .into_iter()
        .map(|(_, s, r)| (s, r))
        .collect();
    let states: Vec<AgentStateKind> = rows.iter().map(|(s, _)| *s).collect();
    assert_eq!(
        states[..6],
        [
            AgentStateKind::Available,
            AgentStateKind::Ringing,
            AgentStateKind::OnCall,
            AgentStateKind::OnHold,
            AgentStateKind::OnCall,
            AgentStateKind::WrapUp,
        ],
        "{rows:?}"
    );
    assert_eq!(rows[3].1.as_deref(), Some("hold"), "{rows:?}");
    assert_eq!(rows[4].1.as_deref(), Some("resume"), "{rows:?}");
}

/// A queue node that gives up after 2 s: the timeout plays "invalid" (700 Hz), no agents
/// plays "option1" (600 Hz), so what the caller hears says which exit they took.
const SHORT_WAIT_FLOW: &str = r#"
[flow]
name = "q"
numbers = ["400"]
start = "agent"

[nodes.agent]
type = "queue"
queue = "help"
prompts = ["welcome"]
timeout = "2s"
answered = "goodbye"
no_agents = "nobody"
on_timeout = "gave_up"
full = "goodbye"

[nodes.gave_up]
type = "play"
prompts = ["invalid"]
next = "end"

[nodes.nobody]
type = "play"
prompts = ["option1"]
next = "end"

[nodes.goodbye]
type = "play"
prompts = ["goodbye"]
next = "end"

[nodes.end]
type = "hangup"
"#;

/// How the agent's registration goes away.
#[derive(Clone, Copy)]
enum Lapse {
    /// Registered for 3 s (the site's registrar allows 2 s) and left to expire.
    Expiry,
    /// Taken back at once (REGISTER with Expires: 0).
    Unregister,
}

/// An agent whose registration is gone is out of the pool: a caller who queues then is not
/// offered to them (their socket gets no INVITE) and leaves by the queue node's timeout.
/// Registered again, the agent is back in the pool and the next caller talks with them.
fn a_gone_registration_takes_the_agent_out_of_the_pool(lapse: Lapse) {
    let mut site = agent_site_with(SHORT_WAIT_FLOW, QUEUES);
    site.config.registrar.min_expires = S(2000);
    let mut server = start(site.config.clone());
    let sip = server.sip;
    let (ctl, rx) = mpsc::channel();
    let (expires, phone_on) = match lapse {
        Lapse::Expiry => (3, S(20_000)),
        Lapse::Unregister => (300, S(15_000)),
    };
    let agent = std::thread::spawn(move || {
        run_agent_ctl(
            sip,
            "1001",
            1500.0,
            expires,
            Behaviour::Answer,
            phone_on,
            Some(rx),
        )
    });
    std::thread::sleep(S(500)); // registered and logged in
    match lapse {
        Lapse::Expiry => std::thread::sleep(S(3_500)),
        Lapse::Unregister => {
            let (done, ok) = mpsc::channel();
            ctl.send(Ctl::Register(0, done)).unwrap();
            assert!(ok.recv_timeout(S(3000)).unwrap(), "the contact is removed");
        }
    }
    let mut first = Phone::calling_from(server.sip, "5550101");
    first.call("400");
    first.talk(S(3500)); // the intro, 2 s in the queue, the timeout's prompt
    first.pump(S(300));
    let hung_up = first
        .events
        .iter()
        .any(|e| matches!(e, UaEvent::RemoteBye { .. }));
    let back = Instant::now();
    let (done, ok) = mpsc::channel();
    ctl.send(Ctl::Register(300, done)).unwrap();
    assert!(ok.recv_timeout(S(3000)).unwrap(), "registered again");
    std::thread::sleep(S(200));
    let mut second = Phone::calling_from(server.sip, "5550102");
    second.call("400");
    second.talk(S(1500)); // the intro, then the agent answers
    second.hangup();
    second.pump(S(500));
    let seen = agent.join().unwrap();
    server.stop();
    assert!(seen.registered);
    assert!(
        seen.invites_at.iter().all(|&at| at > back),
        "no INVITE reached the phone while it was not registered"
    );
    assert_eq!(seen.rung, 1, "rung once, for the second caller");
    assert!(
        seen.got_bye,
        "the second caller's hang-up ends the agent's call"
    );
    let prompts = encoded_prompts(&site, first.codec);
    assert_eq!(
        first.heard(&prompts),
        ["welcome", "invalid"],
        "the first caller waits out the queue's timeout"
    );
    assert!(hung_up, "and the flow hangs up on them");
    let to_second = crossings_per_second(&second.heard_pcm());
    assert!(
        (2800.0..3200.0).contains(&to_second),
        "the second caller hears the agent's 1.5 kHz: {to_second}"
    );
    let cdrs = read_cdrs(&site.config.database);
    assert_eq!(cdrs.len(), 2, "{cdrs:?}");
    let one = cdrs.iter().find(|c| c.caller == "5550101").unwrap();
    assert_eq!(one.queue.as_deref(), Some("help"));
    assert_eq!(one.agent, None, "{one:?}");
    assert!(
        one.offers.is_empty(),
        "nobody was offered the caller: {one:?}"
    );
    assert!(one.ivr_path.iter().any(|p| p == "gave_up"), "{one:?}");
    let two = cdrs.iter().find(|c| c.caller == "5550102").unwrap();
    assert_eq!(two.agent.as_deref(), Some("1001"), "{two:?}");
    assert_eq!(two.offers.len(), 1);
    assert_eq!(two.offers[0].outcome, OfferOutcome::Answered);
    let rows: Vec<(AgentStateKind, Option<String>)> = agent_state_rows(&site.config.database)
        .into_iter()
        .map(|(_, s, r)| (s, r))
        .collect();
    let at = |reason: &str| {
        rows.iter()
            .position(|(_, r)| r.as_deref() == Some(reason))
            .unwrap_or_else(|| panic!("no row for {reason:?}: {rows:?}"))
    };
    let (lost, regained) = (at("registration lost"), at("registration back"));
    assert!(lost < regained, "{rows:?}");
    assert_eq!(
        rows[lost].0,
        AgentStateKind::Available,
        "the agent keeps their state, out of the pool: {rows:?}"
    );
    assert!(
        rows[lost..regained]
            .iter()
            .all(|(s, _)| *s != AgentStateKind::Ringing),
        "{rows:?}"
    );
    assert_eq!(rows[regained + 1].0, AgentStateKind::Ringing, "{rows:?}");
}

#[test]
fn an_agent_who_unregisters_is_out_of_the_pool_until_they_register_again() {
    a_gone_registration_takes_the_agent_out_of_the_pool(Lapse::Unregister);
}

#[test]
fn an_agent_whose_registration_expires_is_out_of_the_pool_until_they_register_again() {
    a_gone_registration_takes_the_agent_out_of_the_pool(Lapse::Expiry);
}
