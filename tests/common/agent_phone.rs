//! The agent's phone for the ACD tests: hotline's own user agent on its own UDP sockets,
//! registering with digest authentication, ringing and answering (or only ringing), sending
//! a tone, and doing what the test tells it (hold, resume, register again, consult a
//! colleague, transfer). Also the agent site (two agents, the help queue, a queue flow) and
//! readers of the agent-state history.

use std::net::{SocketAddr, UdpSocket};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use super::*;
use hotline::cdr::AgentStateKind;
use hotline::sdp::Direction;
use hotline::sip::digest::{self, Algorithm};
use hotline::sip::message::Method;
use hotline::sip::{CallRef, Peer, TransportKind, UaConfig, UaEvent, UserAgent};

pub const S: fn(u64) -> Duration = Duration::from_millis;

#[derive(Clone, Copy, PartialEq)]
pub enum Behaviour {
    Answer,
    RingForever,
    /// Answer, then after a second hand the caller to this agent id or queue by REFER.
    AnswerThenRefer(&'static str),
    /// Answer every call until the time is up (the others stop once their call ends), so
    /// a phone that should not have rung still answers, and a test that goes wrong fails
    /// at its assertions, not while a server waits out an INVITE to a closed socket.
    AnswerEach,
}

#[derive(Default)]
pub struct Seen {
    pub registered: bool,
    pub rung: usize,
    pub audio: Vec<i16>,
    pub got_bye: bool,
    pub got_cancel: bool,
    pub referred: bool,
    /// When each INVITE that opens a call reached the phone's socket.
    pub invites_at: Vec<Instant>,
    /// The final status of each re-INVITE the phone sent.
    pub reinvited: Vec<u16>,
    /// The final status of each REFER the phone sent.
    pub refer_answers: Vec<u16>,
    /// The body (sipfrag) of each NOTIFY that reached the phone.
    pub notified: Vec<String>,
    /// Whether the consultation call (`Ctl::Consult`) got a BYE from hotline.
    pub consult_bye: bool,
}

/// What the test tells a running agent phone to do.
pub enum Ctl {
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
pub struct Consult {
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
pub fn header<'a>(m: &'a str, name: &str, short: &str) -> Option<&'a str> {
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
                let params = digest::challenge_in(m, "Proxy-Authenticate", Algorithm::Md5)
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

pub const AGENTS: &str = r#"
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

pub const QUEUES: &str = r#"
[queues.help]
strategy = "longest-idle"
skills = { help = 1 }
ring_timeout = "20s"
wrap_up = "1s"
"#;

pub const FLOW: &str = r#"
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

pub fn agent_site() -> Site {
    agent_site_with(FLOW, QUEUES)
}

pub fn agent_site_with(flow: &str, queues: &str) -> Site {
    let site = site(flow);
    let acd = site.config.flows_dir.join("acd");
    std::fs::create_dir_all(&acd).unwrap();
    write_agents(&site, AGENTS);
    std::fs::write(acd.join("queues.toml"), queues).unwrap();
    site
}

/// (Re)write the site's agents file from `agents` (like `AGENTS`, with the HA1MD5 and
/// HA2MD5 placeholders for the passwords of 1001 and 1002).
pub fn write_agents(site: &Site, agents: &str) {
    let acd = site.config.flows_dir.join("acd");
    let ha1 = hotline::acd::load::ha1_md5("1001", "hotline", "pw1001");
    let ha2 = hotline::acd::load::ha1_md5("1002", "hotline", "pw1002");
    let agents = agents.replace("HA1MD5", &ha1).replace("HA2MD5", &ha2);
    std::fs::write(acd.join("agents.toml"), agents).unwrap();
}

/// REGISTER with digest over the phone's own SIP socket (CSeq `cseq`, then `cseq + 1` with
/// credentials) asking for `expires` seconds; 0 removes the contact. Blocks on the socket;
/// anything else that arrives meanwhile is kept in `other` for the phone's user agent.
pub fn register_for(
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
    let params = digest::challenge_in(&challenge, "WWW-Authenticate", Algorithm::Md5)
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
pub fn run_agent(server: SocketAddr, behaviour: Behaviour, for_how_long: Duration) -> Seen {
    run_agent_as(server, "1001", 1500.0, behaviour, for_how_long)
}

/// Agent `user` (password "pw" + user) saying a tone of `freq`.
pub fn run_agent_as(
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
pub fn run_agent_ctl(
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
        tls_port: None,
    });
    let mut media = ToneMedia::new(rtp_sock, freq, 0xA6E);
    let mut refer_at: Option<(Instant, CallRef)> = None;
    let mut consult: Option<Consult> = None;
    let end = Instant::now() + for_how_long;
    let mut buf = [0u8; 65536];
    let done = |seen: &Seen, consult: &Option<Consult>| {
        behaviour != Behaviour::AnswerEach
            && seen.got_bye
            && consult.as_ref().is_none_or(|c| c.got_bye)
    };
    while Instant::now() < end && !done(&seen, &consult) {
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
pub fn is_in_dialog(data: &[u8]) -> bool {
    String::from_utf8_lossy(data).lines().any(|l| {
        let l = l.to_ascii_lowercase();
        (l.starts_with("to:") || l.starts_with("t:")) && l.contains(";tag=")
    })
}

pub fn agent_states(database: &str) -> Vec<(String, AgentStateKind)> {
    agent_state_rows(database)
        .into_iter()
        .map(|(agent, state, _)| (agent, state))
        .collect()
}

/// The agent-state history with each row's reason.
pub fn agent_state_rows(database: &str) -> Vec<(String, AgentStateKind, Option<String>)> {
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

/// The share of loud samples (|s| > 1000) in the last half second of `pcm`: about 0.9 for
/// a tone, 0 for silence.
pub fn loud_share(pcm: &[i16]) -> f64 {
    let tail = &pcm[pcm.len().saturating_sub(4000)..];
    tail.iter().filter(|s| s.unsigned_abs() > 1000).count() as f64 / tail.len().max(1) as f64
}

/// What the phone heard in `packets` (indices into its received packets), decoded.
pub fn heard_in(phone: &Phone, packets: std::ops::Range<usize>) -> Vec<i16> {
    let mut pcm = Vec::new();
    for (_, payload) in &phone.received[packets] {
        let mut frame = vec![0i16; payload.len()];
        phone.codec.decode_into(payload, &mut frame);
        pcm.extend(frame);
    }
    pcm
}
