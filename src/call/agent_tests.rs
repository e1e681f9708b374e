//! Callers reaching agents, on the virtual clock: agents' phones register with digest
//! authentication, callers queue, the ACD's offers become real INVITEs to the phones, and
//! every outcome (answer, refusal, no answer, hang-ups on either side, hold, transfer) is
//! checked in the SIP the phones saw, the media commands and the CDR.

use std::time::Duration;

use super::leg_tests::{Net, peer, sdp_answer};
use super::*;
use crate::acd::AgentState;
use crate::cdr::{AgentStateKind, OfferOutcome};
use crate::sip::digest::{self, Algorithm};
use crate::sip::{CallRef, UaEvent};

const FLOW: &str = r#"
[flow]
name = "main"
numbers = ["100"]
start = "agent"

[nodes.agent]
type = "queue"
queue = "help"
timeout = "5m"
keys = { "9" = "voicemail" }
answered = "survey"
no_agents = "sorry"
on_timeout = "sorry"
full = "sorry"

[nodes.survey]
type = "play"
prompts = ["thanks"]
next = "bye"

[nodes.voicemail]
type = "play"
prompts = ["leave_message"]
next = "bye"

[nodes.sorry]
type = "play"
prompts = ["sorry"]
next = "bye"

[nodes.bye]
type = "hangup"
"#;

const CALLER: usize = 0;
const A1: usize = 1;
const A2: usize = 2;
const ADDRS: [&str; 3] = ["127.0.0.1:5070", "127.0.0.1:5081", "127.0.0.1:5082"];

fn agents_toml() -> String {
    let mut t = String::new();
    for (id, pw) in [("1001", "pw1001"), ("1002", "pw1002")] {
        t.push_str(&format!(
            "[agents.{id}]\nname = \"Agent {id}\"\nha1_md5 = \"{}\"\nha1_sha256 = \"{}\"\npin_sha256 = \"{}\"\nskills = {{ help = 5 }}\nteam = \"t\"\n\n",
            crate::acd::load::ha1_md5(id, "hotline", pw),
            crate::acd::load::ha1_sha256(id, "hotline", pw),
            crate::acd::load::pin_sha256(id, "1234"),
        ));
    }
    t.push_str("[reasons]\n2 = \"Lunch\"\n");
    t.push_str("[dispositions]\nresolved = \"Resolved\"\ncallback = \"Callback needed\"\n");
    t
}

fn queues_toml(strategy: &str, extra: &str) -> String {
    format!(
        "[queues.help]\nstrategy = \"{strategy}\"\nskills = {{ help = 1 }}\nring_timeout = \"10s\"\nwrap_up = \"20s\"\nwhen_empty = \"wait\"\nmax_misses = 2\nbusy_rest = \"30s\"\n{extra}\n"
    )
}

fn net(strategy: &str, extra: &str) -> Net {
    Net::with_acd(
        FLOW,
        Some((&agents_toml(), &queues_toml(strategy, extra))),
        &ADDRS,
    )
}

impl Net {
    /// Phone `i` registers as `user` with digest; the final status code.
    fn register(&mut self, i: usize, user: &str, password: &str, expires: u32) -> u16 {
        let addr = self.phones[i].addr;
        let transport = self.phones[i].transport;
        let from = Peer { addr, transport };
        let via = transport.via_name();
        let text = |cseq: u32, auth: Option<String>| {
            let mut t = format!(
                "REGISTER sip:127.0.0.1:5060 SIP/2.0\r\nVia: SIP/2.0/{via} {addr};branch=z9hG4bKreg{i}{cseq}{expires};rport\r\nMax-Forwards: 70\r\nFrom: <sip:{user}@127.0.0.1>;tag=r{i}\r\nTo: <sip:{user}@127.0.0.1>\r\nCall-ID: reg-{i}-{user}\r\nCSeq: {cseq} REGISTER\r\nContact: <sip:{user}@{addr}>\r\nExpires: {expires}\r\n"
            );
            if let Some(a) = auth {
                t.push_str(&format!("Authorization: {a}\r\n"));
            }
            t.push_str("Content-Length: 0\r\n\r\n");
            t
        };
        static CSEQ: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(1);
        let cseq = CSEQ.fetch_add(2, std::sync::atomic::Ordering::Relaxed);
        self.phones[i].wire.clear();
        self.engine
            .handle_sip(self.now, from, text(cseq, None).as_bytes());
        self.pump();
        let challenge = self.phones[i].wire.last().cloned().unwrap_or_default();
        assert!(challenge.starts_with("SIP/2.0 401"), "{challenge}");
        let params = digest::challenge_in(&challenge, "WWW-Authenticate", Algorithm::Md5)
            .expect("an MD5 challenge");
        let auth = digest::client_response(
            Algorithm::Md5,
            user,
            "hotline",
            password,
            "REGISTER",
            "sip:127.0.0.1:5060",
            &params["nonce"],
            1,
            "c0ffee",
            params.get("opaque").map(String::as_str),
        );
        self.engine
            .handle_sip(self.now, from, text(cseq + 1, Some(auth)).as_bytes());
        self.pump();
        let last = self.phones[i]
            .wire
            .iter()
            .rev()
            .find(|m| m.starts_with("SIP/2.0") && m.contains(" REGISTER\r\n"))
            .cloned()
            .unwrap_or_default();
        last.get(8..11)
            .and_then(|c| c.parse().ok())
            .unwrap_or_else(|| panic!("no final response to REGISTER: {:?}", self.phones[i].wire))
    }

    fn agent(&self, id: &str) -> crate::acd::AgentId {
        self.engine.acd.agent_id(id).unwrap()
    }

    fn state(&self, id: &str) -> AgentState {
        self.engine.acd.agent_state(self.agent(id)).unwrap().clone()
    }

    fn login(&mut self, id: &str) {
        let agent = self.agent(id);
        self.engine
            .acd
            .handle(self.now, crate::acd::AcdEvent::Login { agent });
        self.engine.drain_acd(self.now);
        self.pump();
    }

    fn answer(&mut self, i: usize, call: CallRef) {
        self.phones[i]
            .ua
            .answer(self.now, call, sdp_answer(7000, "sendrecv"));
        self.pump();
        self.advance(Duration::from_millis(50));
    }

    /// The media finished every prompt it was asked to play (the recorder plays nothing).
    fn plays_done(&mut self) {
        let plays: Vec<(CallRef, u32)> = self
            .engine
            .media
            .commands
            .drain(..)
            .filter_map(|c| match c {
                MediaCommand::Play { call, id, .. } => Some((call, id)),
                _ => None,
            })
            .collect();
        for (call, id) in plays {
            self.engine
                .handle_media(self.now, MediaEvent::PlayDone { call, id });
        }
        self.pump();
    }

    /// The agent phone that was offered the caller (the ACD picked one of two) and its id.
    fn rung(&self) -> (usize, &'static str) {
        if self.incoming(A1).is_empty() {
            (A2, "1002")
        } else {
            (A1, "1001")
        }
    }

    /// The caller's phone hangs up its latest answered call; then `settle` passes.
    fn caller_hangs_up(&mut self, settle: Duration) {
        let phone_call = self.phones[CALLER]
            .events
            .iter()
            .rev()
            .find_map(|e| match e {
                UaEvent::Answered { call, .. } => Some(*call),
                _ => None,
            })
            .expect("an answered call");
        self.phones[CALLER].ua.hangup(self.now, phone_call);
        self.pump();
        self.advance(settle);
    }

    /// A reload whose queues file defines no queue. Calls keep the catalog they started
    /// with; agents and queues change at once.
    fn remove_queues(&mut self) {
        let mut catalog = Catalog::from_parts(crate::flow::FlowSet::default(), Vec::new());
        catalog.flows = Arc::clone(&self.engine.catalog.flows);
        let mut acd = (*self.engine.catalog.acd).clone();
        acd.queues.clear();
        catalog.acd = Arc::new(acd);
        self.engine.set_catalog(self.now, Arc::new(catalog));
        self.pump();
    }

    fn caller_path(&self) -> Vec<String> {
        self.engine
            .calls
            .values()
            .next()
            .map(|c| c.interpreter.path().to_vec())
            .unwrap_or_default()
    }

    fn agent_states(&mut self) -> Vec<(String, AgentStateKind)> {
        std::iter::from_fn(|| self.engine.poll_agent_state())
            .map(|s| (s.agent, s.state))
            .collect()
    }
}

fn ready_net(strategy: &str, extra: &str) -> Net {
    let mut n = net(strategy, extra);
    assert_eq!(n.register(A1, "1001", "pw1001", 300), 200);
    assert_eq!(n.register(A2, "1002", "pw1002", 300), 200);
    n.login("1001");
    n.login("1002");
    n
}

fn queued_caller(n: &mut Net) -> CallRef {
    let c = n.call(CALLER, "100");
    n.advance(Duration::from_millis(50));
    c
}

#[test]
fn a_registered_agent_is_rung_answers_is_bridged_and_the_caller_goes_on_to_the_survey() {
    let mut n = ready_net("longest-idle", "");
    n.agent_states();
    let caller = queued_caller(&mut n);
    // Exactly one agent rings, with an INVITE to the contact it registered.
    let rung: Vec<usize> = [A1, A2]
        .into_iter()
        .filter(|&i| !n.incoming(i).is_empty())
        .collect();
    assert_eq!(rung.len(), 1, "one agent rings");
    let agent_phone = rung[0];
    let offered = n.incoming(agent_phone)[0];
    n.answer(agent_phone, offered);
    let bridges = n.bridges();
    assert_eq!(bridges.len(), 1, "caller and agent are bridged");
    let caller_dialog = n.engine.calls.values().next().unwrap().dialog;
    assert_eq!(bridges[0].0, caller_dialog);
    let id = if agent_phone == A1 { "1001" } else { "1002" };
    assert_eq!(n.state(id), AgentState::OnCall);
    // They talk for a minute; the agent hangs up; the caller hears the survey.
    n.advance(Duration::from_secs(60));
    n.phones[agent_phone].ua.hangup(n.now, offered);
    n.pump();
    n.advance(Duration::from_millis(50));
    assert_eq!(n.state(id), AgentState::WrapUp);
    assert!(
        n.caller_path().iter().any(|p| p == "survey"),
        "{:?}",
        n.caller_path()
    );
    // The flow hangs up after the survey; the CDR waits for the agent's wrap-up.
    n.plays_done();
    n.advance(Duration::from_secs(2));
    assert!(n.has_event(
        CALLER,
        |e| matches!(e, UaEvent::RemoteBye { call } if *call == caller)
    ));
    assert!(n.records().is_empty(), "the CDR waits for the wrap-up");
    n.advance(Duration::from_secs(20));
    assert_eq!(n.state(id), AgentState::Available);
    let records = n.records();
    assert_eq!(records.len(), 1, "one CDR for the call");
    let r = &records[0];
    assert_eq!(r.queue.as_deref(), Some("help"));
    assert_eq!(r.agent.as_deref(), Some(id));
    assert_eq!(r.team.as_deref(), Some("t"));
    assert!(
        r.talk_ms.unwrap() >= 60_000 && r.talk_ms.unwrap() < 61_000,
        "{r:?}"
    );
    assert!((19_000..=21_000).contains(&r.wrap_up_ms.unwrap()), "{r:?}");
    assert!(r.wait_ms.unwrap() < 1000);
    assert!(!r.abandoned);
    assert_eq!(r.offers.len(), 1);
    assert_eq!(r.offers[0].outcome, OfferOutcome::Answered);
    assert_eq!(r.offers[0].agent, id);
    assert!(r.ivr_path.iter().any(|p| p == "survey"));
    let states: Vec<AgentStateKind> = n
        .agent_states()
        .into_iter()
        .filter(|(a, _)| a == id)
        .map(|(_, s)| s)
        .collect();
    assert_eq!(
        states,
        [
            AgentStateKind::Ringing,
            AgentStateKind::OnCall,
            AgentStateKind::WrapUp,
            AgentStateKind::Available
        ]
    );
    assert!(n.engine.legs.is_empty() && n.engine.dialogs.is_empty());
}

/// What an agent records in wrap-up through the API (disposition, notes, first-call
/// resolution) reaches the call's CDR, and "done" ends the wrap-up at once.
#[test]
fn a_wrap_up_recorded_through_the_api_goes_into_the_cdr() {
    use crate::call::agent_api::AgentCommandError;
    let mut n = ready_net("longest-idle", "");
    let _caller = queued_caller(&mut n);
    let agent_phone = [A1, A2]
        .into_iter()
        .find(|&i| !n.incoming(i).is_empty())
        .unwrap();
    let id = if agent_phone == A1 { "1001" } else { "1002" };
    let offered = n.incoming(agent_phone)[0];
    let not_yet = n.engine.wrap_up(n.now, id, WrapNote::default(), false);
    assert_eq!(not_yet, Err(AgentCommandError::NotInWrapUp(id.into())));
    n.answer(agent_phone, offered);
    n.advance(Duration::from_secs(30));
    n.phones[agent_phone].ua.hangup(n.now, offered);
    n.pump();
    n.advance(Duration::from_millis(50));
    assert_eq!(n.state(id), AgentState::WrapUp);
    let note = |d: Option<&str>, notes: Option<&str>, resolved: Option<bool>| WrapNote {
        disposition: d.map(str::to_string),
        notes: notes.map(str::to_string),
        resolved,
    };
    let bad = n
        .engine
        .wrap_up(n.now, id, note(Some("fixed"), None, None), false);
    assert!(
        matches!(bad, Err(AgentCommandError::UnknownDisposition { .. })),
        "{bad:?}"
    );
    let view = n
        .engine
        .wrap_up(
            n.now,
            id,
            note(
                Some("callback"),
                Some("ring back\u{7} tomor\u{202E}row"),
                Some(false),
            ),
            false,
        )
        .unwrap();
    assert_eq!(view.state, "wrap_up");
    // The caller finishes the survey and hangs up: the record waits for the wrap-up.
    n.plays_done();
    n.advance(Duration::from_secs(2));
    assert!(n.records().is_empty());
    // A second entry overrides what it gives and keeps the rest; done ends the wrap-up.
    let view = n
        .engine
        .wrap_up(n.now, id, note(None, None, Some(true)), true)
        .unwrap();
    assert_eq!(view.state, "available");
    let records = n.records();
    assert_eq!(records.len(), 1);
    let r = &records[0];
    assert_eq!(r.wrap_disposition.as_deref(), Some("callback"));
    assert_eq!(
        r.wrap_notes.as_deref(),
        Some("ring back tomorrow"),
        "control characters gone"
    );
    assert_eq!(r.resolved, Some(true));
    assert!(
        r.wrap_up_ms.unwrap() < 5_000,
        "ended by the agent, not the 20 s timer"
    );
}

/// An agent whose phone registered over TLS is offered SRTP (RTP/SAVP with our key); one on
/// UDP plain RTP. The answer's key becomes the agent leg's receiving key.
#[test]
fn an_agent_registered_over_tls_is_offered_srtp_and_one_over_udp_plain_rtp() {
    let mut n = net("ring-all", "");
    n.phones[A1].transport = crate::sip::TransportKind::Tls;
    assert_eq!(n.register(A1, "1001", "pw1001", 300), 200);
    assert_eq!(n.register(A2, "1002", "pw1002", 300), 200);
    n.login("1001");
    n.login("1002");
    queued_caller(&mut n);
    let invite = |n: &Net, i: usize| {
        n.phones[i]
            .wire
            .iter()
            .find(|m| m.starts_with("INVITE "))
            .cloned()
            .unwrap_or_default()
    };
    let secure = invite(&n, A1);
    assert!(
        secure.contains("m=audio ")
            && secure.contains(" RTP/SAVP ")
            && secure.contains("a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:"),
        "{secure}"
    );
    assert!(
        secure.contains(";transport=tls>"),
        "Contact over TLS: {secure}"
    );
    let plain = invite(&n, A2);
    assert!(
        plain.contains(" RTP/AVP ") && !plain.contains("a=crypto"),
        "{plain}"
    );
    let phone_key = crate::media::srtp::MasterKey([9; 30]);
    let answer = format!(
        "v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 7000 RTP/SAVP 0 101\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:101 telephone-event/8000\r\na=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:{}\r\n",
        phone_key.to_inline()
    );
    let offered = n.incoming(A1)[0];
    n.engine.media.commands.clear();
    n.phones[A1].ua.answer(n.now, offered, answer.into_bytes());
    n.pump();
    n.advance(Duration::from_millis(50));
    let keys = n
        .engine
        .media
        .commands
        .iter()
        .find_map(|c| match c {
            MediaCommand::Start { params, .. } => params.srtp,
            _ => None,
        })
        .expect("the agent leg starts with SRTP keys");
    assert_eq!(keys.receive, phone_key);
    assert_ne!(keys.send, phone_key);
}

#[test]
fn ring_all_cancels_the_others_and_writes_offers_not_calls() {
    let mut n = ready_net("ring-all", "");
    queued_caller(&mut n);
    let (c1, c2) = (n.incoming(A1), n.incoming(A2));
    assert_eq!((c1.len(), c2.len()), (1, 1), "both agents ring");
    n.phones[A1].ua.ring(n.now, c1[0]);
    n.phones[A2].ua.ring(n.now, c2[0]);
    n.pump();
    n.answer(A2, c2[0]);
    assert_eq!(
        n.requests(A1, "CANCEL"),
        1,
        "the other agent's phone stops ringing"
    );
    assert_eq!(n.state("1001"), AgentState::Available);
    assert_eq!(n.state("1002"), AgentState::OnCall);
    let caller = n.engine.calls.values().next().unwrap().dialog;
    // The caller hangs up while talking: the agent gets BYE and goes to wrap-up.
    n.caller_hangs_up(Duration::from_millis(50));
    assert_eq!(n.requests(A2, "BYE"), 1);
    assert_eq!(n.state("1002"), AgentState::WrapUp);
    n.advance(Duration::from_secs(21));
    let records = n.records();
    assert_eq!(records.len(), 1, "ring-all writes one call");
    let outcomes: Vec<_> = records[0]
        .offers
        .iter()
        .map(|o| (o.agent.clone(), o.outcome))
        .collect();
    assert_eq!(outcomes.len(), 2);
    assert!(outcomes.contains(&("1001".into(), OfferOutcome::Cancelled)));
    assert!(outcomes.contains(&("1002".into(), OfferOutcome::Answered)));
    let _ = caller;
}

#[test]
fn a_caller_who_hangs_up_while_agents_ring_cancels_every_ring_and_is_an_abandon() {
    let mut n = ready_net("ring-all", "");
    let caller = queued_caller(&mut n);
    for i in [A1, A2] {
        let c = n.incoming(i)[0];
        n.phones[i].ua.ring(n.now, c);
    }
    n.pump();
    n.advance(Duration::from_secs(3));
    n.phones[CALLER].ua.hangup(n.now, caller);
    n.pump();
    n.advance(Duration::from_millis(100));
    assert_eq!((n.requests(A1, "CANCEL"), n.requests(A2, "CANCEL")), (1, 1));
    assert_eq!(n.state("1001"), AgentState::Available);
    assert_eq!(n.state("1002"), AgentState::Available);
    let r = n.records().pop().unwrap();
    assert!(r.abandoned);
    assert!((2_900..=3_200).contains(&r.wait_ms.unwrap()), "{r:?}");
    assert!(
        r.offers
            .iter()
            .all(|o| o.outcome == OfferOutcome::Cancelled)
    );
    assert!(n.engine.legs.is_empty());
}

#[test]
fn no_answer_rings_the_next_agent_and_repeated_misses_make_an_agent_not_ready() {
    let mut n = ready_net("round-robin", "");
    queued_caller(&mut n);
    let first = if n.incoming(A1).is_empty() { A2 } else { A1 };
    let second = if first == A1 { A2 } else { A1 };
    let c = n.incoming(first)[0];
    n.phones[first].ua.ring(n.now, c);
    n.pump();
    n.advance(Duration::from_secs(11));
    assert_eq!(n.requests(first, "CANCEL"), 1, "ring timeout cancels");
    assert_eq!(n.incoming(second).len(), 1, "the next agent rings");
    let c2 = n.incoming(second)[0];
    n.phones[second].ua.reject(n.now, c2, 486, &[]);
    n.pump();
    n.advance(Duration::from_millis(100));
    // The first agent rings again (the busy one rests); a second miss: not ready.
    assert_eq!(n.incoming(first).len(), 2);
    let c3 = n.incoming(first)[1];
    n.phones[first].ua.ring(n.now, c3);
    n.pump();
    n.advance(Duration::from_secs(11));
    let id = if first == A1 { "1001" } else { "1002" };
    assert_eq!(
        n.state(id),
        AgentState::NotReady {
            reason: "no answer".into()
        }
    );
    let call = n.engine.calls.values().next().unwrap();
    let outcomes: Vec<_> = call.facts.offers.iter().map(|o| o.outcome).collect();
    assert_eq!(
        outcomes,
        [
            Some(OfferOutcome::NoAnswer),
            Some(OfferOutcome::Busy),
            Some(OfferOutcome::NoAnswer)
        ]
    );
}

#[test]
fn a_redirecting_phone_is_never_followed() {
    let mut n = ready_net("longest-idle", "");
    queued_caller(&mut n);
    let first = if n.incoming(A1).is_empty() { A2 } else { A1 };
    let c = n.incoming(first)[0];
    n.phones[first].ua.reject(
        n.now,
        c,
        302,
        &[("Contact", "<sip:loop@127.0.0.1:5060>".to_string())],
    );
    n.pump();
    n.advance(Duration::from_millis(100));
    let call = n.engine.calls.values().next().unwrap();
    assert_eq!(call.facts.offers[0].outcome, Some(OfferOutcome::Redirected));
    // Only registered phones were ever called: nothing went to the Contact of the 302.
    let other = if first == A1 { A2 } else { A1 };
    assert_eq!(n.incoming(other).len(), 1, "the other agent rings instead");
}

#[test]
fn registration_expiry_takes_the_agent_out_of_the_pool() {
    let mut n = net("longest-idle", "");
    assert_eq!(n.register(A1, "1001", "pw1001", 60), 200);
    n.login("1001");
    n.advance(Duration::from_secs(61));
    queued_caller(&mut n);
    assert!(n.incoming(A1).is_empty(), "an expired phone is not rung");
    // It registers again: back in the pool, and the waiting caller is offered to it.
    assert_eq!(n.register(A1, "1001", "pw1001", 300), 200);
    n.advance(Duration::from_millis(100));
    assert_eq!(n.incoming(A1).len(), 1);
}

#[test]
fn a_wrong_password_is_refused() {
    let mut n = net("longest-idle", "");
    assert_eq!(n.register(A1, "1001", "nope", 300), 403);
}

#[test]
fn a_waiting_caller_leaves_by_a_key_of_the_node() {
    let mut n = net("longest-idle", "");
    queued_caller(&mut n);
    let id = *n.engine.calls.keys().next().unwrap();
    n.engine.queue_digit(n.now, id, '5', true);
    assert!(
        n.engine.calls[&id].queue.is_some(),
        "other keys change nothing"
    );
    n.engine.queue_digit(n.now, id, '9', true);
    n.pump();
    assert!(n.caller_path().iter().any(|p| p == "voicemail"));
    assert!(n.engine.acd.queue_of(queue::caller_id(id)).is_none());
}

#[test]
fn hold_plays_music_to_the_caller_and_counts_in_the_cdr() {
    let mut n = ready_net("longest-idle", "");
    let caller = queued_caller(&mut n);
    let (i, id) = n.rung();
    let c = n.incoming(i)[0];
    n.answer(i, c);
    let reinvite = |n: &mut Net, dir: &str| {
        n.phones[i].ua.send_in_dialog(
            n.now,
            c,
            crate::sip::message::Method::Invite,
            Some(("application/sdp".into(), sdp_answer(7000, dir))),
        );
        n.pump();
        n.advance(Duration::from_millis(10));
    };
    let agent_leg = n.bridges()[0].1;
    let key = |n: &mut Net| {
        n.phones[CALLER].ua.send_info_digit(n.now, caller, '5');
        n.pump();
        n.advance(Duration::from_millis(10));
        n.engine
            .media
            .commands
            .iter()
            .filter(|c| matches!(c, MediaCommand::SendDigit { call, .. } if *call == agent_leg))
            .count()
    };
    n.advance(Duration::from_secs(10));
    assert_eq!(key(&mut n), 1, "an INFO key crosses the bridge");
    reinvite(&mut n, "sendonly");
    assert_eq!(n.state(id), AgentState::OnHold);
    assert_eq!(key(&mut n), 1, "a held caller's keys stay on their side");
    n.advance(Duration::from_secs(30));
    reinvite(&mut n, "sendrecv");
    assert_eq!(n.state(id), AgentState::OnCall);
    assert_eq!(n.bridges().len(), 2, "bridged again after hold");
    assert_eq!(key(&mut n), 2, "and cross again after it");
    n.advance(Duration::from_secs(10));
    n.phones[CALLER].ua.hangup(n.now, caller);
    n.pump();
    n.advance(Duration::from_secs(25));
    let r = n.records().pop().unwrap();
    assert!((29_900..=30_200).contains(&r.hold_ms.unwrap()), "{r:?}");
    assert!((19_900..=20_300).contains(&r.talk_ms.unwrap()), "{r:?}");
}

#[test]
fn an_agent_transfers_the_caller_to_a_colleague_by_refer() {
    let mut n = ready_net("longest-idle", "sticky_days = 30");
    queued_caller(&mut n);
    let (i, _) = n.rung();
    let other = if i == A1 { A2 } else { A1 };
    let (me, colleague) = if i == A1 {
        ("1001", "1002")
    } else {
        ("1002", "1001")
    };
    let c = n.incoming(i)[0];
    n.answer(i, c);
    n.advance(Duration::from_secs(5));
    let refer = n.phones[i]
        .ua
        .refer(n.now, c, &format!("<sip:{colleague}@127.0.0.1>"));
    assert!(refer.is_some());
    n.pump();
    n.advance(Duration::from_millis(100));
    assert!(
        n.phones[i]
            .wire
            .iter()
            .any(|m| m.starts_with("SIP/2.0 202")),
        "REFER accepted"
    );
    assert_eq!(n.state(me), AgentState::WrapUp);
    assert_eq!(n.incoming(other).len(), 1, "the colleague rings");
    let c2 = n.incoming(other)[0];
    n.answer(other, c2);
    assert_eq!(n.state(colleague), AgentState::OnCall);
    let call = n.engine.calls.values().next().unwrap();
    assert_eq!(call.transfers.len(), 1);
    assert_eq!(call.transfers[0].target, colleague);
    assert_eq!(call.transfers[0].by, me);
}

impl Net {
    /// Phone `i` dials a feature code as `user`, answering the 407 with its password: the
    /// final status, and whether hotline hung the call up after the ACK.
    fn feature(&mut self, i: usize, user: &str, password: &str, code: &str) -> (u16, bool) {
        static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(1);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let addr = self.phones[i].addr;
        let uri = format!("sip:{code}@127.0.0.1:5060");
        let body = super::leg_tests::sdp_offer(7100);
        let invite = |cseq: u32, auth: Option<String>| {
            let mut t = format!(
                "INVITE {uri} SIP/2.0\r\nVia: SIP/2.0/UDP {addr};branch=z9hG4bKfc{n}x{cseq};rport\r\nMax-Forwards: 70\r\nFrom: <sip:{user}@127.0.0.1>;tag=fc{n}\r\nTo: <{uri}>\r\nCall-ID: fc-{n}\r\nCSeq: {cseq} INVITE\r\nContact: <sip:{user}@{addr}>\r\nContent-Type: application/sdp\r\n"
            );
            if let Some(a) = auth {
                t.push_str(&format!("Proxy-Authorization: {a}\r\n"));
            }
            t.push_str(&format!("Content-Length: {}\r\n\r\n", body.len()));
            let mut bytes = t.into_bytes();
            bytes.extend_from_slice(&body);
            bytes
        };
        let from = peer(&addr.to_string());
        self.phones[i].wire.clear();
        self.engine.handle_sip(self.now, from, &invite(1, None));
        self.pump();
        let challenge = self.phones[i]
            .wire
            .iter()
            .find(|m| m.starts_with("SIP/2.0 407"))
            .cloned()
            .unwrap_or_else(|| panic!("a 407 challenge: {:?}", self.phones[i].wire));
        let ack = |to: &str, cseq: u32| {
            format!(
                "ACK {uri} SIP/2.0\r\nVia: SIP/2.0/UDP {addr};branch=z9hG4bKfc{n}x{cseq};rport\r\nMax-Forwards: 70\r\nFrom: <sip:{user}@127.0.0.1>;tag=fc{n}\r\nTo: {to}\r\nCall-ID: fc-{n}\r\nCSeq: {cseq} ACK\r\nContent-Length: 0\r\n\r\n"
            )
        };
        let to_of = |m: &str| {
            m.lines()
                .find_map(|l| l.strip_prefix("To: "))
                .unwrap_or_default()
                .to_string()
        };
        self.engine
            .handle_sip(self.now, from, ack(&to_of(&challenge), 1).as_bytes());
        let params = digest::challenge_in(&challenge, "Proxy-Authenticate", Algorithm::Md5)
            .expect("an MD5 challenge");
        let auth = digest::client_response(
            Algorithm::Md5,
            user,
            "hotline",
            password,
            "INVITE",
            &uri,
            &params["nonce"],
            1,
            "feed",
            params.get("opaque").map(String::as_str),
        );
        self.engine
            .handle_sip(self.now, from, &invite(2, Some(auth)));
        self.pump();
        let last = self.phones[i]
            .wire
            .iter()
            .rev()
            .find(|m| m.starts_with("SIP/2.0") && m.contains("CSeq: 2 INVITE"))
            .cloned()
            .expect("a final response");
        let code: u16 = last[8..11].parse().unwrap();
        if code == 200 {
            self.engine
                .handle_sip(self.now, from, ack(&to_of(&last), 2).as_bytes());
            self.pump();
        }
        let bye = self.phones[i].wire.iter().any(|m| m.starts_with("BYE "));
        (code, bye)
    }
}

#[test]
fn feature_codes_need_digest_and_change_the_agent_state() {
    let mut n = net("longest-idle", "");
    assert_eq!(n.register(A1, "1001", "pw1001", 300), 200);
    assert_eq!(
        n.feature(A1, "1001", "pw1001", "*111111"),
        (403, false),
        "wrong PIN"
    );
    assert_eq!(n.state("1001"), AgentState::LoggedOut);
    assert_eq!(n.feature(A1, "1001", "pw1001", "*111234"), (200, true));
    assert_eq!(n.state("1001"), AgentState::Available);
    assert_eq!(n.feature(A1, "1001", "pw1001", "*142"), (200, true));
    assert_eq!(
        n.state("1001"),
        AgentState::NotReady {
            reason: "Lunch".into()
        }
    );
    assert_eq!(
        n.feature(A1, "1001", "pw1001", "*149"),
        (404, false),
        "unknown reason"
    );
    assert_eq!(n.feature(A1, "1001", "pw1001", "*13"), (200, true));
    assert_eq!(n.state("1001"), AgentState::Available);
    // Wrong credentials are challenged again (and counted against the address).
    assert_eq!(n.feature(A1, "1001", "wrong", "*12"), (407, false));
    assert_eq!(n.state("1001"), AgentState::Available);
    assert_eq!(n.feature(A1, "1001", "pw1001", "*12"), (200, true));
    assert_eq!(n.state("1001"), AgentState::LoggedOut);
    assert_eq!(
        n.feature(A1, "1001", "pw1001", "*77"),
        (404, false),
        "not a code"
    );
    assert!(
        n.engine.dialogs.is_empty(),
        "service calls leave nothing behind"
    );
    assert!(
        n.records().is_empty(),
        "feature codes are not customer calls"
    );
}

#[test]
fn reload_removing_the_queue_sends_its_callers_back_into_the_flow() {
    let mut n = net("longest-idle", "");
    queued_caller(&mut n);
    n.remove_queues();
    assert!(
        n.caller_path().iter().any(|p| p == "sorry"),
        "{:?}",
        n.caller_path()
    );
}

#[test]
fn waiting_callers_hear_music_and_their_position_but_not_while_an_agent_rings() {
    let mut n = net(
        "longest-idle",
        "announcements = { every = \"10s\", position = true, wait = true }\nmusic = \"sorry\"",
    );
    queued_caller(&mut n);
    let caller = n.engine.calls.values().next().unwrap().dialog;
    assert!(
        n.engine
            .media
            .commands
            .iter()
            .any(|c| matches!(c, MediaCommand::Music { call, .. } if *call == caller)),
        "the queue's music plays"
    );
    let plays = |n: &Net| {
        n.engine
            .media
            .commands
            .iter()
            .filter_map(|c| match c {
                MediaCommand::Play { call, prompts, .. } if *call == caller => Some(prompts.len()),
                _ => None,
            })
            .collect::<Vec<_>>()
    };
    n.advance(Duration::from_secs(11));
    // "You are number one in the queue." (no agent logged in: no estimate)
    assert_eq!(plays(&n), [3]);
    assert_eq!(n.register(A1, "1001", "pw1001", 300), 200);
    n.login("1001");
    let c = n.incoming(A1)[0];
    n.phones[A1].ua.ring(n.now, c);
    n.pump();
    n.advance(Duration::from_secs(9));
    assert_eq!(
        plays(&n).len(),
        1,
        "nothing is announced while an agent rings"
    );
}

#[test]
fn a_recorded_queue_writes_each_conversation_as_stereo_and_the_cdr_names_it() {
    let mut n = ready_net("longest-idle", "record = true");
    let caller = queued_caller(&mut n);
    let (i, _) = n.rung();
    let c = n.incoming(i)[0];
    n.answer(i, c);
    let (dialog, id) = n
        .engine
        .media
        .commands
        .iter()
        .find_map(|cmd| match cmd {
            MediaCommand::RecordBridge { call, id } => Some((*call, *id)),
            _ => None,
        })
        .expect("the bridge is recorded");
    n.advance(Duration::from_secs(5));
    n.phones[CALLER].ua.hangup(n.now, caller);
    n.pump();
    // The media hands the recording over when the call closes.
    n.engine.handle_media(
        n.now,
        MediaEvent::RecordedStereo {
            call: dialog,
            id,
            samples: vec![7; 2 * 8000 * 5],
        },
    );
    let job = n.engine.poll_recording().expect("a file to write");
    assert_eq!(job.channels, 2);
    assert!(
        job.path.to_string_lossy().ends_with("-agent-1.wav"),
        "{:?}",
        job.path
    );
    n.engine
        .handle_recording_written(n.now, job.call, job.task, Ok(job.path.clone()));
    n.advance(Duration::from_secs(25));
    let r = n.records().pop().expect("the CDR after wrap-up");
    assert_eq!(r.recordings, [job.path.to_string_lossy().to_string()]);
}

#[test]
fn a_refer_to_nowhere_is_refused_and_the_conversation_goes_on() {
    let mut n = ready_net("longest-idle", "");
    queued_caller(&mut n);
    let (i, id) = n.rung();
    let c = n.incoming(i)[0];
    n.answer(i, c);
    n.phones[i].ua.refer(n.now, c, "<sip:nobody@127.0.0.1>");
    n.pump();
    n.advance(Duration::from_millis(100));
    assert!(
        n.phones[i]
            .wire
            .iter()
            .any(|m| m.starts_with("SIP/2.0 404"))
    );
    assert_eq!(n.state(id), AgentState::OnCall, "still talking");
    let call = n.engine.calls.values().next().unwrap();
    assert!(call.transfers.is_empty() && call.bridged.is_some());
}

#[test]
fn an_agent_phone_that_answers_and_sends_no_media_ends_that_conversation_only() {
    let mut n = ready_net("longest-idle", "");
    queued_caller(&mut n);
    let (i, id) = n.rung();
    let c = n.incoming(i)[0];
    n.answer(i, c);
    let leg = *n.engine.legs.values().next().map(|l| &l.dialog).unwrap();
    // The media thread reports the agent's stream silent for the RTP timeout.
    n.engine
        .handle_media(n.now, MediaEvent::RtpTimeout { call: leg });
    n.pump();
    n.advance(Duration::from_millis(100));
    assert_eq!(n.requests(i, "BYE"), 1, "the dead leg is hung up");
    assert_eq!(n.state(id), AgentState::WrapUp);
    assert!(
        n.caller_path().iter().any(|p| p == "survey"),
        "the caller is not lost: the flow goes on"
    );
}

#[cfg(test)]
mod consult_tests;

#[cfg(test)]
mod desk_consult_tests;

#[cfg(test)]
mod queue_consult_tests;

#[cfg(test)]
mod recording_tests;

#[cfg(test)]
mod shutdown_tests;

#[test]
fn agents_time_comes_out_per_quarter_hour_and_adds_up_to_the_time_logged_in() {
    let mut n = ready_net("longest-idle", "");
    let logged_in: Vec<(String, i64)> = std::iter::from_fn(|| n.engine.poll_agent_state())
        .filter(|s| s.state == AgentStateKind::Available)
        .map(|s| (s.agent, s.start_ms))
        .collect();
    assert_eq!(logged_in.len(), 2);
    let caller = queued_caller(&mut n);
    let phone = [A1, A2]
        .into_iter()
        .find(|&i| !n.incoming(i).is_empty())
        .expect("an agent rings");
    let offered = n.incoming(phone)[0];
    n.answer(phone, offered);
    n.advance(Duration::from_secs(60));
    n.phones[phone].ua.hangup(n.now, offered);
    n.pump();
    n.advance(Duration::from_secs(40 * 60));
    let _ = caller;
    // Quarter hours that ended came out on their own; the rest at shutdown.
    let before: Vec<_> = std::iter::from_fn(|| n.engine.poll_agent_time()).collect();
    assert!(
        before.len() >= 4,
        "two agents, at least two quarter hours each: {before:?}"
    );
    let end = n.engine.wall_ms(n.now);
    n.engine.begin_shutdown(n.now);
    let rows: Vec<_> = before
        .into_iter()
        .chain(std::iter::from_fn(|| n.engine.poll_agent_time()))
        .collect();
    let mut ids: Vec<&str> = rows.iter().map(|r| r.id.as_str()).collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), rows.len(), "every row has its own id");
    assert!(
        rows.iter()
            .all(|r| r.cell_ms % crate::cdr::agent_time::CELL_MS == 0)
    );
    assert!(rows.iter().all(|r| r.team.as_deref() == Some("t")));
    for (agent, since) in &logged_in {
        let mine: Vec<_> = rows.iter().filter(|r| &r.agent == agent).collect();
        let total: i64 = mine
            .iter()
            .map(|r| {
                r.available_ms
                    + r.ringing_ms
                    + r.on_call_ms
                    + r.on_hold_ms
                    + r.wrap_up_ms
                    + r.not_ready_ms
            })
            .sum();
        assert_eq!(
            total,
            end - since,
            "{agent}: every millisecond logged in, once"
        );
    }
    let answering = if phone == A1 { "1001" } else { "1002" };
    let on_call: i64 = rows
        .iter()
        .filter(|r| r.agent == answering)
        .map(|r| r.on_call_ms)
        .sum();
    assert!((59_000..=61_000).contains(&on_call), "on call {on_call} ms");
}

#[test]
fn the_api_holds_transfers_and_hangs_up_the_agents_call() {
    use super::agent_api::{AgentCommand, AgentCommandError};
    let mut n = ready_net("longest-idle", "");
    // Nothing to act on before a call.
    let err = n
        .engine
        .agent_command(
            n.now,
            "1001",
            AgentCommand::Hold {
                held: true,
                call: None,
            },
        )
        .unwrap_err();
    assert_eq!(err, AgentCommandError::NotOnCall("1001".into()));
    let caller = queued_caller(&mut n);
    let (i, id) = n.rung();
    let c = n.incoming(i)[0];
    n.answer(i, c);
    n.advance(Duration::from_secs(10));
    let err = n
        .engine
        .agent_command(
            n.now,
            id,
            AgentCommand::Hold {
                held: true,
                call: Some("an-earlier-call".into()),
            },
        )
        .unwrap_err();
    assert_eq!(err, AgentCommandError::OtherCall(id.into()), "a late click");
    let view = n
        .engine
        .agent_command(
            n.now,
            id,
            AgentCommand::Hold {
                held: true,
                call: None,
            },
        )
        .unwrap();
    assert_eq!(view.state, "on_hold");
    n.advance(Duration::from_secs(20));
    n.engine
        .agent_command(
            n.now,
            id,
            AgentCommand::Hold {
                held: false,
                call: None,
            },
        )
        .unwrap();
    assert_eq!(n.state(id), AgentState::OnCall);
    // A transfer to nowhere changes nothing.
    let err = n
        .engine
        .agent_command(
            n.now,
            id,
            AgentCommand::Transfer {
                target: "nobody".into(),
                reason: None,
                call: None,
                by: None,
                teams: None,
            },
        )
        .unwrap_err();
    assert_eq!(err, AgentCommandError::NoSuchTarget("nobody".into()));
    assert_eq!(n.state(id), AgentState::OnCall);
    // To the queue again, with a reason: the agent goes to wrap-up, the caller waits again
    // and the other agent rings.
    n.engine
        .agent_command(
            n.now,
            id,
            AgentCommand::Transfer {
                target: "help".into(),
                reason: Some("needs\u{202e} billing".into()),
                call: None,
                by: None,
                teams: None,
            },
        )
        .unwrap();
    n.pump();
    n.advance(Duration::from_millis(100));
    assert_eq!(n.state(id), AgentState::WrapUp);
    assert!(
        n.phones[i].wire.iter().any(|m| m.starts_with("BYE ")),
        "the agent's phone is hung up"
    );
    let other = if i == A1 { A2 } else { A1 };
    let other_id = if i == A1 { "1002" } else { "1001" };
    assert_eq!(n.incoming(other).len(), 1, "the caller is offered again");
    let call = n.engine.calls.values().next().unwrap();
    assert_eq!(call.transfers[0].reason.as_deref(), Some("needs billing"));
    assert_eq!(call.transfers[0].by, id);
    let c2 = n.incoming(other)[0];
    n.answer(other, c2);
    n.advance(Duration::from_secs(5));
    // The colleague hangs up from the browser: the caller goes on to the survey.
    n.engine
        .agent_command(n.now, other_id, AgentCommand::HangUp { call: None })
        .unwrap();
    n.pump();
    n.advance(Duration::from_millis(100));
    assert_eq!(n.state(other_id), AgentState::WrapUp);
    assert!(n.phones[other].wire.iter().any(|m| m.starts_with("BYE ")));
    assert!(
        n.caller_path().iter().any(|p| p == "survey"),
        "{:?}",
        n.caller_path()
    );
    n.plays_done();
    n.advance(Duration::from_secs(40));
    let _ = caller;
    let r = n.records().pop().expect("a CDR");
    assert!((19_900..=20_300).contains(&r.hold_ms.unwrap()), "{r:?}");
    assert_eq!(r.transfers.len(), 1);
    assert_eq!(r.agent.as_deref(), Some(other_id));
}

#[test]
fn a_caller_answered_then_hanging_up_in_the_next_queue_did_not_abandon() {
    use super::agent_api::AgentCommand;
    let mut n = ready_net("longest-idle", "");
    let caller = queued_caller(&mut n);
    n.advance(Duration::from_secs(3));
    let (i, id) = n.rung();
    let c = n.incoming(i)[0];
    n.answer(i, c);
    n.advance(Duration::from_secs(30));
    n.engine
        .agent_command(
            n.now,
            id,
            AgentCommand::Transfer {
                target: "help".into(),
                reason: None,
                call: None,
                by: None,
                teams: None,
            },
        )
        .unwrap();
    n.pump();
    n.advance(Duration::from_secs(2));
    // The caller gives up while the colleague's phone rings.
    n.phones[CALLER].ua.hangup(n.now, caller);
    n.pump();
    n.advance(Duration::from_secs(40));
    let r = n.records().pop().expect("a CDR");
    assert!(!r.abandoned, "{r:?}");
    assert_eq!(r.agent.as_deref(), Some(id));
    let wait = r.wait_ms.unwrap();
    assert!(
        wait < 4_000,
        "the wait before the first answer, not the whole call: {wait}"
    );
}

#[test]
fn a_supervisor_moves_a_waiting_caller_to_an_agent_who_gets_them_first() {
    use super::agent_api::AgentCommand;
    use super::supervise::{MoveError, MoveTarget};
    let mut n = ready_net("longest-idle", "");
    // One agent takes a first caller; the other goes to lunch.
    let _first = queued_caller(&mut n);
    let (busy_phone, busy) = n.rung();
    let c = n.incoming(busy_phone)[0];
    n.answer(busy_phone, c);
    let (free_phone, free) = if busy == "1001" {
        (A2, "1002")
    } else {
        (A1, "1001")
    };
    n.engine
        .agent_command(
            n.now,
            free,
            AgentCommand::NotReady {
                reason: "Lunch".into(),
            },
        )
        .unwrap();
    let second = n.call(CALLER, "100");
    n.advance(Duration::from_secs(5));
    let waiting = n.engine.waiting_callers(n.now);
    assert_eq!(waiting.len(), 1, "{waiting:?}");
    assert_eq!(waiting[0].queue, "help");
    assert!(
        (4_900..=5_200).contains(&waiting[0].waited_ms),
        "{waiting:?}"
    );
    assert!(!waiting[0].ringing);
    let call = waiting[0].call.clone();
    assert_eq!(
        n.engine.move_caller(
            n.now,
            "nosuchcall",
            MoveTarget::Queue("help".into()),
            "wang"
        ),
        Err(MoveError::NotWaiting("nosuchcall".into()))
    );
    assert_eq!(
        n.engine
            .move_caller(n.now, &call, MoveTarget::Queue("nowhere".into()), "wang"),
        Err(MoveError::NoSuchQueue("nowhere".into()))
    );
    assert_eq!(
        n.engine
            .move_caller(n.now, &call, MoveTarget::Queue("help".into()), "wang"),
        Err(MoveError::SameQueue("help".into()))
    );
    assert_eq!(
        n.engine
            .move_caller(n.now, &call, MoveTarget::Agent(free.into()), "wang"),
        Err(MoveError::AgentUnavailable(free.into())),
        "an agent at lunch would not free up"
    );
    n.engine
        .move_caller(n.now, &call, MoveTarget::Agent(busy.into()), "wang")
        .unwrap();
    // The other agent is back first, but the caller is the busy agent's for now.
    n.engine
        .agent_command(n.now, free, AgentCommand::Ready)
        .unwrap();
    n.pump();
    n.advance(Duration::from_millis(100));
    assert!(
        n.incoming(free_phone).is_empty(),
        "the caller waits for the agent named"
    );
    // The busy agent hangs up and wraps up (20 s); then their phone rings for the caller.
    n.phones[busy_phone].ua.hangup(n.now, c);
    n.pump();
    n.advance(Duration::from_secs(21));
    assert_eq!(n.incoming(busy_phone).len(), 2, "the agent named rings");
    let _ = second;
    let c2 = n
        .engine
        .calls
        .values()
        .find(|c| c.record_id == call)
        .unwrap();
    let row = c2.transfers.last().unwrap();
    assert_eq!(
        (row.by.as_str(), row.target.as_str()),
        ("supervisor:wang", busy)
    );
}
