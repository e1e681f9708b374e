//! Legs on the virtual clock: the engine with several user agents around it (a caller, a
//! transfer target, later agents' phones), each reached by its own address, so every SIP
//! message between them is real text through real transaction layers.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::*;
use crate::flow::load_dir;
use crate::media::prompt::EncodedPrompt;
use crate::sip::{TransportKind, UaConfig, UaEvent, UserAgent};

#[derive(Default)]
pub(super) struct Recorder {
    pub commands: Vec<MediaCommand>,
    opened: u32,
}

impl MediaBackend for Recorder {
    fn open(&mut self, _call: CallRef) -> Result<u16, MediaOpenError> {
        self.opened += 1;
        Ok(20000 + 2 * self.opened as u16)
    }
    fn command(&mut self, cmd: MediaCommand) {
        self.commands.push(cmd);
    }
}

pub(super) const SERVER: &str = "127.0.0.1:5060";

pub(super) fn peer(addr: &str) -> Peer {
    Peer {
        addr: addr.parse().unwrap(),
        transport: TransportKind::Udp,
    }
}

pub(super) fn sdp_offer(port: u16) -> Vec<u8> {
    format!(
        "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio {port} RTP/AVP 8 101\r\na=rtpmap:8 PCMA/8000\r\na=rtpmap:101 telephone-event/8000\r\n"
    )
    .into_bytes()
}

pub(super) fn sdp_answer(port: u16, direction: &str) -> Vec<u8> {
    format!(
        "v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio {port} RTP/AVP 8 101\r\na=rtpmap:8 PCMA/8000\r\na=rtpmap:101 telephone-event/8000\r\na={direction}\r\n"
    )
    .into_bytes()
}

/// A user agent at its own address, with what it received.
pub(super) struct Phone {
    pub addr: SocketAddr,
    /// How the phone reaches the server (its messages arrive over this).
    pub transport: TransportKind,
    pub ua: UserAgent,
    pub events: Vec<UaEvent>,
    pub wire: Vec<String>,
}

pub(super) struct Net {
    pub now: Instant,
    pub engine: Engine<Recorder>,
    pub phones: Vec<Phone>,
    /// Phones that are gone: what the engine sends them is lost.
    pub dead: Vec<SocketAddr>,
}

impl Net {
    pub fn new(flow: &str, addrs: &[&str]) -> Net {
        Net::with_acd(flow, None, addrs)
    }

    /// With `acd` = (agents.toml, queues.toml) beside the flow.
    pub fn with_acd(flow: &str, acd: Option<(&str, &str)>, addrs: &[&str]) -> Net {
        let dir = std::env::temp_dir().join(format!("hotline-legs-{}", fastrand::u64(..)));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("main.toml"), flow).unwrap();
        if let Some((agents, queues)) = acd {
            std::fs::create_dir_all(dir.join("acd")).unwrap();
            std::fs::write(dir.join("acd/agents.toml"), agents).unwrap();
            std::fs::write(dir.join("acd/queues.toml"), queues).unwrap();
        }
        let mut flows = load_dir(&dir).0.expect("the test flow loads");
        let (acd, diags) = crate::acd::load::load_dir(&dir);
        let at = crate::flow::Located {
            file: "test".into(),
            line: 1,
            column: 1,
            snippet: String::new(),
        };
        for name in super::announce::PROMPTS {
            flows.add_prompt(name, at.clone());
        }
        for w in crate::flow::say::Grammar::English.words() {
            flows.add_prompt(&format!("say/{w}"), at.clone());
        }
        std::fs::remove_dir_all(&dir).ok();
        let acd = acd.unwrap_or_else(|| panic!("the test agents and queues load: {diags:?}"));
        let prompts = flows
            .prompts
            .iter()
            .map(|_| EncodedPrompt::encode(&[100i16; 480]))
            .collect();
        let mut catalog = Catalog::from_parts(flows, prompts);
        catalog.acd = Arc::new(acd);
        let catalog = Arc::new(catalog);
        let now = Instant::now();
        let cfg = EngineConfig {
            max_calls: 100,
            source_max_calls: 0,
            admission: crate::sip::admission::AdmissionConfig::unlimited(),
            retry_after: Duration::from_secs(7),
            answer_delay: Duration::ZERO,
            media_address: None,
            fallback_address: "127.0.0.1".parse().unwrap(),
            advertised: SERVER.into(),
            advertise_request_host: false,
            shutdown_grace: Duration::from_secs(10),
            timers: Default::default(),
            timezone: jiff::tz::TimeZone::UTC,
            recordings_dir: "/srv/messages".into(),
            outbound: None,
            outbound_caller_id: crate::config::OutboundCallerId::Dialled,
            outbound_transport: crate::sip::TransportKind::Udp,
            registrar: Default::default(),
            seed: 1,
            nonce_secret: [1; 32],
            tls_port: None,
            srtp: crate::config::SrtpMode::Optional,
            srtp_keys: crate::media::srtp::KeySource::new(|| {
                Some(crate::media::srtp::MasterKey([0x5A; 30]))
            }),
        };
        let engine = Engine::new(cfg, catalog, Recorder::default(), (now, 1_700_000_000_000));
        let phones = addrs
            .iter()
            .map(|a| Phone {
                addr: a.parse().unwrap(),
                transport: TransportKind::Udp,
                ua: UserAgent::new(UaConfig {
                    advertise_request_host: false,
                    timers: Default::default(),
                    advertised: a.to_string(),
                    user: "phone".into(),
                    // Each phone its own stream, so no two draw the same tags.
                    seed: u64::from(a.parse::<SocketAddr>().unwrap().port()),
                    nonce_secret: [2; 32],
                    tls_port: None,
                }),
                events: Vec::new(),
                wire: Vec::new(),
            })
            .collect();
        Net {
            now,
            engine,
            phones,
            dead: Vec::new(),
        }
    }

    pub fn pump(&mut self) {
        loop {
            let mut moved = false;
            for p in &mut self.phones {
                while let Some(t) = p.ua.poll_transmit() {
                    moved = true;
                    let from = Peer {
                        addr: p.addr,
                        transport: p.transport,
                    };
                    self.engine.handle_sip(self.now, from, &t.data);
                }
            }
            while let Some(t) = self.engine.poll_transmit() {
                moved = true;
                if self.dead.contains(&t.to.addr) {
                    continue;
                }
                let p = self
                    .phones
                    .iter_mut()
                    .find(|p| p.addr == t.to.addr)
                    .unwrap_or_else(|| panic!("the engine sent to {} which is nobody", t.to.addr));
                p.wire.push(String::from_utf8_lossy(&t.data).into_owned());
                p.ua.handle_input(self.now, peer(SERVER), &t.data);
            }
            for p in &mut self.phones {
                while let Some(e) = p.ua.poll_event() {
                    p.events.push(e);
                }
            }
            if !moved {
                return;
            }
        }
    }

    pub fn advance(&mut self, d: Duration) {
        let end = self.now + d;
        loop {
            let next = std::iter::once(self.engine.poll_timeout())
                .chain(self.phones.iter().map(|p| p.ua.poll_timeout()))
                .flatten()
                .min();
            match next {
                Some(t) if t <= end => {
                    self.now = self.now.max(t);
                    self.engine.handle_timeout(self.now);
                    for p in &mut self.phones {
                        p.ua.handle_timeout(self.now);
                    }
                    self.pump();
                }
                _ => break,
            }
        }
        self.now = end;
    }

    /// Phone `i` calls `number` on the server with an offer.
    pub fn call(&mut self, i: usize, number: &str) -> CallRef {
        let c = self.phones[i]
            .ua
            .invite(
                self.now,
                peer(SERVER),
                "5551234",
                number,
                Some(sdp_offer(4000)),
            )
            .unwrap();
        self.pump();
        c
    }

    /// The calls offered to phone `i` so far.
    pub fn incoming(&self, i: usize) -> Vec<CallRef> {
        self.phones[i]
            .events
            .iter()
            .filter_map(|e| match e {
                UaEvent::Incoming { call, .. } => Some(*call),
                _ => None,
            })
            .collect()
    }

    pub fn has_event(&self, i: usize, f: impl Fn(&UaEvent) -> bool) -> bool {
        self.phones[i].events.iter().any(f)
    }

    pub fn requests(&self, i: usize, method: &str) -> usize {
        let start = format!("{method} ");
        self.phones[i]
            .wire
            .iter()
            .filter(|m| m.starts_with(&start))
            .count()
    }

    pub fn records(&mut self) -> Vec<CdrRecord> {
        std::iter::from_fn(|| self.engine.poll_record()).collect()
    }

    pub fn bridges(&self) -> Vec<(CallRef, CallRef)> {
        self.engine
            .media
            .commands
            .iter()
            .filter_map(|c| match c {
                MediaCommand::Bridge { call, with } => Some((*call, *with)),
                _ => None,
            })
            .collect()
    }
}

const TRANSFER: &str = r#"
[flow]
name = "main"
numbers = ["100"]
start = "connect"

[nodes.connect]
type = "transfer"
to = "sip:duty@127.0.0.1:5080"
ring_timeout = "20s"
on_failure = "sorry"

[nodes.sorry]
type = "play"
prompts = ["goodbye"]
next = "bye"

[nodes.bye]
type = "hangup"
"#;

const CALLER: usize = 0;
const TARGET: usize = 1;

fn transfer_net() -> Net {
    Net::new(TRANSFER, &["127.0.0.1:5070", "127.0.0.1:5080"])
}

fn ack_caller(net: &mut Net) {
    // The caller UA ACKs the 200 by itself; the flow starts and the transfer is placed.
    net.pump();
    net.advance(Duration::from_millis(10));
}

#[test]
fn an_answered_transfer_is_bridged_and_the_targets_bye_ends_the_call_with_one_cdr() {
    let mut net = transfer_net();
    let caller = net.call(CALLER, "100");
    ack_caller(&mut net);
    let offered = net.incoming(TARGET);
    assert_eq!(offered.len(), 1, "the target is called once");
    net.phones[TARGET].ua.ring(net.now, offered[0]);
    net.phones[TARGET]
        .ua
        .answer(net.now, offered[0], sdp_answer(6000, "sendrecv"));
    net.pump();
    net.advance(Duration::from_millis(100));
    let bridges = net.bridges();
    assert_eq!(bridges.len(), 1, "caller and target are bridged once");
    assert_ne!(bridges[0].0, bridges[0].1);
    assert_eq!(net.engine.legs.len(), 1);
    // The target hangs up: the caller gets a BYE, one CDR, nothing left behind.
    net.phones[TARGET].ua.hangup(net.now, offered[0]);
    net.pump();
    net.advance(Duration::from_secs(1));
    assert!(net.has_event(
        CALLER,
        |e| matches!(e, UaEvent::RemoteBye { call } if *call == caller)
    ));
    let records = net.records();
    assert_eq!(records.len(), 1);
    assert_eq!(records[0].end_reason, "transfer_target_bye");
    assert!(net.engine.legs.is_empty() && net.engine.calls.is_empty());
    assert!(net.engine.dialogs.is_empty(), "no dialog keeps an owner");
}

#[test]
fn a_busy_target_takes_the_failure_exit_and_the_caller_stays() {
    let mut net = transfer_net();
    net.call(CALLER, "100");
    ack_caller(&mut net);
    let offered = net.incoming(TARGET);
    net.phones[TARGET].ua.reject(net.now, offered[0], 486, &[]);
    net.pump();
    net.advance(Duration::from_millis(100));
    assert!(net.engine.legs.is_empty());
    let call = net
        .engine
        .calls
        .values()
        .next()
        .expect("the caller is still there");
    assert!(call.interpreter.path().iter().any(|n| n == "sorry"));
    assert!(net.bridges().is_empty());
}

#[test]
fn the_ring_timer_belongs_to_the_leg_and_cancels_it() {
    let mut net = transfer_net();
    net.call(CALLER, "100");
    ack_caller(&mut net);
    let offered = net.incoming(TARGET);
    net.phones[TARGET].ua.ring(net.now, offered[0]);
    net.pump();
    net.advance(Duration::from_secs(19));
    assert_eq!(net.requests(TARGET, "CANCEL"), 0);
    net.advance(Duration::from_secs(2));
    assert_eq!(
        net.requests(TARGET, "CANCEL"),
        1,
        "ringing ends with CANCEL"
    );
    assert!(net.engine.legs.is_empty());
    let call = net.engine.calls.values().next().unwrap();
    assert!(call.interpreter.path().iter().any(|n| n == "sorry"));
}

#[test]
fn a_caller_who_hangs_up_while_the_target_rings_cancels_it() {
    let mut net = transfer_net();
    let caller = net.call(CALLER, "100");
    ack_caller(&mut net);
    let offered = net.incoming(TARGET);
    net.phones[TARGET].ua.ring(net.now, offered[0]);
    net.pump();
    net.phones[CALLER].ua.hangup(net.now, caller);
    net.pump();
    net.advance(Duration::from_secs(1));
    assert_eq!(net.requests(TARGET, "CANCEL"), 1);
    assert_eq!(net.records().len(), 1);
    assert!(net.engine.legs.is_empty() && net.engine.dialogs.is_empty());
}

#[test]
fn a_leg_can_hold_and_resume_with_a_reinvite() {
    let mut net = transfer_net();
    net.call(CALLER, "100");
    ack_caller(&mut net);
    let offered = net.incoming(TARGET);
    net.phones[TARGET]
        .ua
        .answer(net.now, offered[0], sdp_answer(6000, "sendrecv"));
    net.pump();
    net.advance(Duration::from_millis(100));
    let reinvite = |net: &mut Net, direction: &str| {
        net.phones[TARGET].ua.send_in_dialog(
            net.now,
            offered[0],
            crate::sip::message::Method::Invite,
            Some(("application/sdp".into(), sdp_answer(6000, direction))),
        );
        net.pump();
        net.advance(Duration::from_millis(100));
    };
    reinvite(&mut net, "sendonly");
    let leg = net.engine.legs.values().next().unwrap();
    assert!(leg.held, "sendonly from the target is hold");
    assert!(net.has_event(TARGET, |e| matches!(
        e,
        UaEvent::Reinvited { code: 200, .. }
    )));
    reinvite(&mut net, "sendrecv");
    let leg = net.engine.legs.values().next().unwrap().dialog;
    assert!(!net.engine.legs.values().next().unwrap().held);
    // The leg's own updates (the caller's stream had one too: sending on at its ACK).
    let updates = net
        .engine
        .media
        .commands
        .iter()
        .filter(|c| matches!(c, MediaCommand::Update { call, .. } if *call == leg))
        .count();
    assert_eq!(updates, 2);
}

/// A transfer carries the call's data to the target in the headers the flow names (issue
/// 10): filled from variables, a sensitive one masked, line breaks removed so nothing can
/// be injected into the message.
#[test]
fn a_transfer_carries_the_calls_data_in_its_headers() {
    let flow = r#"
[flow]
name = "main"
numbers = ["100"]
start = "who"

[nodes.who]
type = "set"
vars = { name = "'Li\r\nVia: SIP/2.0/UDP evil'", tier = "'gold'" }
next = "card"

[nodes.card]
type = "collect"
prompts = ["goodbye"]
variable = "card"
max_digits = 4
sensitive = true
keep_last = 2
next = "connect"

[nodes.connect]
type = "transfer"
to = "sip:duty@127.0.0.1:5080"
headers = { X-Customer = "{name}", X-Tier = "{tier}", X-Card = "{card}" }
ring_timeout = "20s"
on_failure = "bye"

[nodes.bye]
type = "hangup"
"#;
    let mut net = Net::new(flow, &["127.0.0.1:5070", "127.0.0.1:5080"]);
    let caller = net.call(CALLER, "100");
    ack_caller(&mut net);
    for key in "1234".chars() {
        net.engine.handle_media(
            net.now,
            MediaEvent::Digit {
                call: net.engine.calls.values().next().unwrap().dialog,
                digit: key,
            },
        );
    }
    let _ = caller;
    net.pump();
    net.advance(Duration::from_millis(10));
    let invite = net.phones[TARGET]
        .wire
        .iter()
        .find(|m| m.starts_with("INVITE "))
        .cloned()
        .unwrap_or_default();
    assert!(
        invite.contains("\r\nX-Customer: LiVia: SIP/2.0/UDP evil\r\n"),
        "{invite}"
    );
    assert_eq!(invite.matches("\r\nVia: ").count(), 1, "{invite}");
    assert!(invite.contains("\r\nX-Tier: gold\r\n"), "{invite}");
    assert!(invite.contains("\r\nX-Card: xx34\r\n"), "{invite}");
    assert!(!invite.contains("1234"), "{invite}");
}

/// With an `answered` exit, the target's hang-up sends the caller back into the flow (a
/// survey) instead of ending the call (issue 10).
#[test]
fn a_transfer_with_an_answered_exit_brings_the_caller_back_when_the_target_hangs_up() {
    let flow = TRANSFER.replace(
        "on_failure = \"sorry\"",
        "on_failure = \"sorry\"\nanswered = \"survey\"\n\n[nodes.survey]\ntype = \"play\"\nprompts = [\"goodbye\"]\nnext = \"bye\"",
    );
    let mut net = Net::new(&flow, &["127.0.0.1:5070", "127.0.0.1:5080"]);
    let caller = net.call(CALLER, "100");
    ack_caller(&mut net);
    let offered = net.incoming(TARGET);
    net.phones[TARGET]
        .ua
        .answer(net.now, offered[0], sdp_answer(6000, "sendrecv"));
    net.pump();
    net.advance(Duration::from_millis(100));
    assert_eq!(net.bridges().len(), 1);
    net.phones[TARGET].ua.hangup(net.now, offered[0]);
    net.pump();
    net.advance(Duration::from_millis(100));
    assert!(
        !net.has_event(
            CALLER,
            |e| matches!(e, UaEvent::RemoteBye { call } if *call == caller)
        ),
        "the caller stays"
    );
    assert!(net.engine.legs.is_empty(), "the target's leg is gone");
    let played_survey = net
        .engine
        .media
        .commands
        .iter()
        .any(|c| matches!(c, MediaCommand::Play { prompts, .. } if !prompts.is_empty()));
    assert!(played_survey, "the survey plays to the caller");
    // The survey's prompt ends; the flow hangs up; one CDR with the whole path.
    let plays: Vec<(CallRef, u32)> = net
        .engine
        .media
        .commands
        .iter()
        .filter_map(|c| match c {
            MediaCommand::Play { call, id, .. } => Some((*call, *id)),
            _ => None,
        })
        .collect();
    for (call, id) in plays {
        net.engine
            .handle_media(net.now, MediaEvent::PlayDone { call, id });
    }
    net.pump();
    net.advance(Duration::from_secs(1));
    let records = net.records();
    assert_eq!(records.len(), 1, "{records:?}");
    assert!(
        records[0].ivr_path.iter().any(|n| n == "survey"),
        "{:?}",
        records[0]
    );
    assert_eq!(records[0].end_reason, "flow_hangup", "{:?}", records[0]);
}
