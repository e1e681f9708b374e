//! The engine on a virtual clock, called by a second user agent, with a media backend that
//! records commands (the real media path is covered by the integration tests).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::*;
use crate::flow::{TaskId, load_dir};
use crate::media::prompt::EncodedPrompt;
use crate::sip::{UaConfig, UaEvent, UserAgent};
use recording::RECORDING_HOLD;

// A child of this module, so the replay tests drive the same harness.
#[path = "replay_tests.rs"]
mod replay;

#[derive(Default)]
struct Recorder {
    commands: Vec<MediaCommand>,
    opened: u32,
    refuse: bool,
}

impl MediaBackend for Recorder {
    fn open(&mut self, _call: CallRef) -> Result<u16, MediaOpenError> {
        if self.refuse {
            return Err(MediaOpenError::NoPorts);
        }
        self.opened += 1;
        Ok(20000 + 2 * self.opened as u16)
    }
    fn command(&mut self, cmd: MediaCommand) {
        self.commands.push(cmd);
    }
}

const FLOW: &str = r#"
[flow]
name = "main"
numbers = ["100"]
start = "welcome"

[nodes.welcome]
type = "play"
prompts = ["welcome"]
next = "menu"

[nodes.menu]
type = "menu"
prompts = ["menu"]
choices = { "1" = "bye" }
timeout = "3s"
max_failures = 1

[nodes.bye]
type = "hangup"
"#;

const OFFER: &str = "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 4000 RTP/AVP 8 101\r\na=rtpmap:8 PCMA/8000\r\na=rtpmap:101 telephone-event/8000\r\n";

struct T {
    now: Instant,
    engine: Engine<Recorder>,
    phone: UserAgent,
    events: Vec<UaEvent>,
    /// Everything the engine sent, as text: the phone's events carry only status codes.
    wire: Vec<String>,
    /// The phone's side of the call `recording` placed.
    phone_call: Option<CallRef>,
}

fn phone_peer() -> Peer {
    Peer {
        addr: "127.0.0.1:5070".parse().unwrap(),
        transport: crate::sip::TransportKind::Udp,
    }
}

fn server_peer() -> Peer {
    Peer {
        addr: "127.0.0.1:5060".parse().unwrap(),
        transport: crate::sip::TransportKind::Udp,
    }
}

impl T {
    fn new(max_calls: u32) -> T {
        T::with_flow(max_calls, FLOW)
    }

    fn with_flow(max_calls: u32, flow: &str) -> T {
        T::with_config(max_calls, flow, |_| {})
    }

    fn with_config(max_calls: u32, flow: &str, adjust: impl FnOnce(&mut EngineConfig)) -> T {
        let dir = std::env::temp_dir().join(format!("hotline-engine-{}", fastrand::u64(..)));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("main.toml"), flow).unwrap();
        let flows = load_dir(&dir).0.unwrap();
        std::fs::remove_dir_all(&dir).ok();
        let prompts = flows
            .prompts
            .iter()
            .map(|_| EncodedPrompt::encode(&[100i16; 480]))
            .collect();
        let catalog = Arc::new(Catalog::from_parts(flows, prompts));
        let now = Instant::now();
        let cfg = EngineConfig {
            max_calls,
            source_max_calls: 0,
            admission: crate::sip::admission::AdmissionConfig::unlimited(),
            retry_after: Duration::from_secs(7),
            answer_delay: Duration::ZERO,
            media_address: None,
            fallback_address: "127.0.0.1".parse().unwrap(),
            advertised: "127.0.0.1:5060".into(),
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
        let mut cfg = cfg;
        adjust(&mut cfg);
        let engine = Engine::new(cfg, catalog, Recorder::default(), (now, 1_700_000_000_000));
        let phone = UserAgent::new(UaConfig {
            advertise_request_host: false,
            timers: Default::default(),
            advertised: "127.0.0.1:5070".into(),
            user: "phone".into(),
            seed: 2,
            nonce_secret: [2; 32],
            tls_port: None,
        });
        T {
            now,
            engine,
            phone,
            events: Vec::new(),
            wire: Vec::new(),
            phone_call: None,
        }
    }

    fn pump(&mut self) {
        loop {
            let mut moved = false;
            while let Some(t) = self.phone.poll_transmit() {
                moved = true;
                self.engine.handle_sip(self.now, phone_peer(), &t.data);
            }
            while let Some(t) = self.engine.poll_transmit() {
                moved = true;
                assert_eq!(t.to.addr, phone_peer().addr);
                self.wire
                    .push(String::from_utf8_lossy(&t.data).into_owned());
                self.phone.handle_input(self.now, server_peer(), &t.data);
            }
            while let Some(e) = self.phone.poll_event() {
                self.events.push(e);
            }
            if !moved {
                return;
            }
        }
    }

    fn advance(&mut self, d: Duration) {
        let end = self.now + d;
        loop {
            let next = [self.engine.poll_timeout(), self.phone.poll_timeout()]
                .into_iter()
                .flatten()
                .min();
            match next {
                Some(t) if t <= end => {
                    self.now = self.now.max(t);
                    self.engine.handle_timeout(self.now);
                    self.phone.handle_timeout(self.now);
                    self.pump();
                }
                _ => break,
            }
        }
        self.now = end;
    }

    fn call(&mut self, number: &str, offer: Option<&str>) -> CallRef {
        let c = self
            .phone
            .invite(
                self.now,
                server_peer(),
                "5551234",
                number,
                offer.map(|o| o.as_bytes().to_vec()),
            )
            .unwrap();
        self.pump();
        c
    }

    /// The values of header `name` in every response with status `code` the engine sent.
    fn response_headers(&self, code: u16, name: &str) -> Vec<String> {
        let status = format!("SIP/2.0 {code} ");
        self.wire
            .iter()
            .filter(|m| m.starts_with(&status))
            .flat_map(|m| {
                let head = m.split("\r\n\r\n").next().unwrap_or_default();
                head.split("\r\n")
                    .skip(1)
                    .filter_map(|line| line.split_once(':'))
                    .filter(|(n, _)| n.trim().eq_ignore_ascii_case(name))
                    .map(|(_, v)| v.trim().to_string())
                    .collect::<Vec<_>>()
            })
            .collect()
    }

    fn records(&mut self) -> Vec<CdrRecord> {
        std::iter::from_fn(|| self.engine.poll_record()).collect()
    }

    fn last_play(&self) -> Option<(CallRef, u32)> {
        self.engine
            .media
            .commands
            .iter()
            .rev()
            .find_map(|c| match c {
                MediaCommand::Play { call, id, .. } => Some((*call, *id)),
                _ => None,
            })
    }
}

#[test]
fn answered_call_runs_the_flow_and_the_flow_hangs_up() {
    let mut t = T::new(10);
    t.call("100", Some(OFFER));
    assert!(t.events.iter().any(|e| matches!(e, UaEvent::Answered { answer: Some(a), .. } if String::from_utf8_lossy(a).contains("m=audio 20002 RTP/AVP 8 101"))));
    let started = t.engine.media.commands.iter().find_map(|c| match c {
        MediaCommand::Start { params, .. } => Some(*params),
        _ => None,
    });
    assert_eq!(
        started.map(|p| (p.codec, p.event_pt)),
        Some((crate::media::Codec::Pcma, Some(101)))
    );
    let (call, play) = t.last_play().expect("welcome plays after the ACK");
    t.engine
        .handle_media(t.now, MediaEvent::PlayDone { call, id: play });
    let (_, menu) = t.last_play().unwrap();
    t.engine
        .handle_media(t.now, MediaEvent::PlayDone { call, id: menu });
    t.engine
        .handle_media(t.now, MediaEvent::Digit { call, digit: '1' });
    t.pump();
    assert!(
        t.events
            .iter()
            .any(|e| matches!(e, UaEvent::RemoteBye { .. })),
        "hotline sent BYE"
    );
    let records = t.records();
    assert_eq!(records.len(), 1);
    let r = &records[0];
    assert_eq!(
        (r.disposition, r.hangup_by, r.sip_code),
        (Disposition::Completed, HangupBy::Hotline, 200)
    );
    assert_eq!(r.ivr_path, ["welcome", "menu", "bye"]);
    assert_eq!(r.digits, "1");
    assert_eq!(
        (r.caller.as_str(), r.dialled.as_str(), r.flow.as_deref()),
        ("5551234", "100", Some("main"))
    );
    assert_eq!(r.start_ms, 1_700_000_000_000);
    assert!(
        t.engine
            .media
            .commands
            .iter()
            .any(|c| matches!(c, MediaCommand::Close { .. }))
    );
}

#[test]
fn caller_bye_is_caller_hangup() {
    let mut t = T::new(10);
    let c = t.call("100", Some(OFFER));
    t.advance(Duration::from_secs(2));
    t.phone.hangup(t.now, c);
    t.pump();
    let r = t.records();
    assert_eq!(r.len(), 1);
    assert_eq!(
        (r[0].disposition, r[0].hangup_by, r[0].end_reason.as_str()),
        (Disposition::CallerHangup, HangupBy::Caller, "bye")
    );
    assert_eq!(r[0].end_ms - r[0].start_ms, 2000);
}

#[test]
fn unknown_number_is_404_and_no_codec_is_488() {
    let mut t = T::new(10);
    t.call("999", Some(OFFER));
    assert!(
        t.events
            .iter()
            .any(|e| matches!(e, UaEvent::Failed { code: 404, .. }))
    );
    let g729 = OFFER
        .replace("RTP/AVP 8 101", "RTP/AVP 18")
        .replace("a=rtpmap:8 PCMA/8000\r\n", "");
    t.call("100", Some(&g729));
    assert!(
        t.events
            .iter()
            .any(|e| matches!(e, UaEvent::Failed { code: 488, .. }))
    );
    let r = t.records();
    assert_eq!(r.len(), 2);
    assert_eq!(
        (r[0].disposition, r[0].sip_code, r[0].end_reason.as_str()),
        (Disposition::Failed, 404, "no_route")
    );
    assert_eq!(
        (r[1].disposition, r[1].sip_code, r[1].end_reason.as_str()),
        (Disposition::Failed, 488, "no_codec")
    );
    assert_eq!(t.engine.active_calls(), 0);
}

#[test]
fn beyond_the_limit_is_503_with_retry_after_and_blocked() {
    let mut t = T::new(1);
    t.call("100", Some(OFFER));
    t.call("100", Some(OFFER));
    assert!(
        t.events
            .iter()
            .any(|e| matches!(e, UaEvent::Failed { code: 503, .. }))
    );
    assert_eq!(
        t.response_headers(503, "Retry-After"),
        ["7"],
        "one 503, with the configured retry_after in seconds"
    );
    let r = t.records();
    assert_eq!(r.len(), 1);
    assert_eq!(
        (r[0].disposition, r[0].sip_code, r[0].end_reason.as_str()),
        (Disposition::Blocked, 503, "overload")
    );
}

/// One address may hold `source_max_calls` calls; its next is refused (503, blocked,
/// `source_limit`) until one ends. A trusted trunk is not limited.
#[test]
fn one_source_holds_no_more_than_its_share_of_calls() {
    let mut t = T::with_config(10, FLOW, |c| c.source_max_calls = 2);
    for _ in 0..3 {
        t.call("100", Some(OFFER));
    }
    assert_eq!(t.engine.active_calls(), 2);
    let r = t.records();
    assert_eq!(
        (r[0].disposition, r[0].sip_code, r[0].end_reason.as_str()),
        (Disposition::Blocked, 503, "source_limit")
    );
    let first = t
        .events
        .iter()
        .find_map(|e| match e {
            UaEvent::Answered { call, .. } => Some(*call),
            _ => None,
        })
        .unwrap();
    t.phone.hangup(t.now, first);
    t.pump();
    assert_eq!(t.engine.active_calls(), 1);
    t.call("100", Some(OFFER));
    assert_eq!(t.engine.active_calls(), 2, "room again after a hang-up");

    let mut t = T::with_config(10, FLOW, |c| {
        c.source_max_calls = 2;
        c.admission.trusted = crate::sip::admission::TrustedNets::parse(&["127.0.0.0/8"]).unwrap();
    });
    for _ in 0..4 {
        t.call("100", Some(OFFER));
    }
    assert_eq!(
        t.engine.active_calls(),
        4,
        "a trusted source is not limited"
    );
}

#[test]
fn late_offer_without_answer_in_ack_fails_the_call() {
    let mut t = T::new(10);
    t.call("100", None);
    assert!(
        t.events.iter().any(|e| matches!(
            e,
            UaEvent::Answered {
                answer: Some(_),
                ..
            }
        )),
        "hotline offers in the 200"
    );
    assert!(
        !t.engine
            .media
            .commands
            .iter()
            .any(|c| matches!(c, MediaCommand::Start { .. })),
        "no media without an answer"
    );
    let r = t.records();
    assert_eq!(r.len(), 1, "{r:?}");
    assert_eq!(
        (r[0].disposition, r[0].end_reason.as_str()),
        (Disposition::Failed, "no_codec")
    );
}

/// Issue 9: an INVITE's SDP may name anybody. Until the ACK confirms the dialog the
/// caller's stream receives but never sends, so an INVITE nobody acknowledges cannot aim
/// RTP at a third party.
#[test]
fn no_media_is_sent_before_the_ack() {
    let mut t = T::new(10);
    t.phone
        .invite(
            t.now,
            server_peer(),
            "5551234",
            "100",
            Some(OFFER.as_bytes().to_vec()),
        )
        .unwrap();
    // The INVITE reaches the engine; its 200 is held back from the phone, so no ACK.
    while let Some(tx) = t.phone.poll_transmit() {
        t.engine.handle_sip(t.now, phone_peer(), &tx.data);
    }
    let answers: Vec<_> = std::iter::from_fn(|| t.engine.poll_transmit()).collect();
    assert!(
        answers.iter().any(|a| a.data.starts_with(b"SIP/2.0 200 ")),
        "answered"
    );
    let sending = |c: &MediaCommand| match c {
        MediaCommand::Start { params, .. } | MediaCommand::Update { params, .. } => params.send,
        _ => false,
    };
    let commands = &t.engine.media.commands;
    assert!(
        matches!(commands.as_slice(), [MediaCommand::Start { params, .. }] if params.receive),
        "the stream opens to receive: {commands:?}"
    );
    assert!(
        !commands.iter().any(sending),
        "nothing may send: {commands:?}"
    );
    // The ACK comes: sending goes on, then the flow plays.
    for a in answers {
        t.phone.handle_input(t.now, server_peer(), &a.data);
    }
    t.pump();
    let commands = &t.engine.media.commands;
    let first_send = commands
        .iter()
        .position(sending)
        .expect("sends after the ACK");
    assert!(matches!(
        commands[first_send],
        MediaCommand::Update { params, .. } if params.send && params.remote == "127.0.0.1:4000".parse().ok()
    ));
    let first_play = commands
        .iter()
        .position(|c| matches!(c, MediaCommand::Play { .. }))
        .expect("the flow starts");
    assert!(first_send < first_play);
}

#[test]
fn late_offer_starts_media_from_the_answer_in_the_ack() {
    let mut t = T::new(10);
    let c = t
        .phone
        .invite(t.now, server_peer(), "5551234", "100", None)
        .unwrap();
    let answer = OFFER
        .replace("RTP/AVP 8 101", "RTP/AVP 0 101")
        .replace("a=rtpmap:8 PCMA/8000", "a=rtpmap:0 PCMU/8000");
    t.phone.set_ack_answer(c, answer.into_bytes());
    t.pump();
    let started = t.engine.media.commands.iter().find_map(|c| match c {
        MediaCommand::Start { params, .. } => Some(*params),
        _ => None,
    });
    assert_eq!(started.map(|p| p.codec), Some(crate::media::Codec::Pcmu));
    assert!(
        t.last_play().is_some(),
        "the flow starts once media is agreed"
    );
    assert!(t.records().is_empty());
}

#[test]
fn rtp_timeout_ends_the_call() {
    let mut t = T::new(10);
    t.call("100", Some(OFFER));
    let (call, _) = t.last_play().unwrap();
    t.engine
        .handle_media(t.now, MediaEvent::RtpTimeout { call });
    t.pump();
    let r = t.records();
    assert_eq!(
        (r[0].disposition, r[0].end_reason.as_str()),
        (Disposition::Failed, "rtp_timeout")
    );
    assert!(
        t.events
            .iter()
            .any(|e| matches!(e, UaEvent::RemoteBye { .. }))
    );
}

#[test]
fn menu_timeout_on_virtual_clock() {
    let mut t = T::new(10);
    t.call("100", Some(OFFER));
    let (call, play) = t.last_play().unwrap();
    t.engine
        .handle_media(t.now, MediaEvent::PlayDone { call, id: play });
    let (_, menu) = t.last_play().unwrap();
    t.engine
        .handle_media(t.now, MediaEvent::PlayDone { call, id: menu });
    t.advance(Duration::from_millis(2999));
    assert!(t.records().is_empty());
    t.advance(Duration::from_millis(1));
    let r = t.records();
    assert_eq!(
        r.len(),
        1,
        "max_failures = 1 with no on_failure ends the call"
    );
    assert_eq!(r[0].ivr_path, ["welcome", "menu"]);
}

#[test]
fn shutdown_refuses_new_calls_then_ends_the_rest_after_grace() {
    let mut t = T::new(10);
    t.call("100", Some(OFFER));
    t.engine.begin_shutdown(t.now);
    t.call("100", Some(OFFER));
    assert!(
        t.events
            .iter()
            .any(|e| matches!(e, UaEvent::Failed { code: 503, .. }))
    );
    assert!(!t.engine.drained());
    t.advance(Duration::from_secs(10));
    assert!(
        t.events
            .iter()
            .any(|e| matches!(e, UaEvent::RemoteBye { .. }))
    );
    t.advance(Duration::from_secs(40));
    assert!(t.engine.drained());
    let r = t.records();
    assert_eq!(r.len(), 2);
    assert!(
        r.iter()
            .any(|r| r.end_reason == "shutdown" && r.disposition == Disposition::Blocked)
    );
    assert!(r.iter().any(|r| r.end_reason == "shutdown"
        && r.disposition == Disposition::Failed
        && r.answer_ms.is_some()));
}

#[test]
fn hold_reinvite_updates_media_direction() {
    let mut t = T::new(10);
    let c = t.call("100", Some(OFFER));
    let hold = OFFER.replace("a=rtpmap:101", "a=sendonly\r\na=rtpmap:101");
    t.phone.send_in_dialog(
        t.now,
        c,
        crate::sip::message::Method::Invite,
        Some(("application/sdp".into(), hold.into_bytes())),
    );
    t.pump();
    let update = t.engine.media.commands.iter().rev().find_map(|c| match c {
        MediaCommand::Update { params, .. } => Some(*params),
        _ => None,
    });
    assert_eq!(
        update.map(|p| (p.send, p.receive)),
        Some((false, true)),
        "caller holds: we stop sending"
    );
    let _: SocketAddr = phone_peer().addr;
}

#[test]
fn no_media_port_is_503_failed() {
    let mut t = T::new(10);
    t.engine.media.refuse = true;
    t.call("100", Some(OFFER));
    let r = t.records();
    assert_eq!(
        (r[0].disposition, r[0].sip_code, r[0].end_reason.as_str()),
        (Disposition::Failed, 503, "no_media_port")
    );
}

const RECORD_FLOW: &str = r##"
[flow]
name = "main"
numbers = ["100"]
start = "message"

[nodes.message]
type = "record"
prompts = ["beep"]
terminator = "#"
max_length = "20s"
silence = "2s"
variable = "message"
next = "thanks"
on_failure = "sorry"

[nodes.thanks]
type = "play"
prompts = ["thanks"]
next = "bye"

[nodes.sorry]
type = "play"
prompts = ["sorry"]
next = "bye"

[nodes.bye]
type = "hangup"
"##;

impl T {
    /// A call to the record flow, its intro played: the engine has asked the media to record.
    fn recording(&mut self) -> (CallRef, u32) {
        self.phone_call = Some(self.call("100", Some(OFFER)));
        let (call, beep) = self.last_play().unwrap();
        self.engine
            .handle_media(self.now, MediaEvent::PlayDone { call, id: beep });
        let record = self
            .engine
            .media
            .commands
            .iter()
            .rev()
            .find_map(|c| match c {
                MediaCommand::Record {
                    call,
                    id,
                    max_length,
                    silence,
                } => Some((*call, *id, *max_length, *silence)),
                _ => None,
            });
        let (call, id, max_length, silence) = record.expect("recording starts after the intro");
        assert_eq!(
            (max_length, silence),
            (Duration::from_secs(20), Duration::from_secs(2))
        );
        (call, id)
    }

    fn recorded(&mut self, call: CallRef, id: u32, samples: usize, heard: bool) {
        let samples = vec![1000; samples];
        self.engine.handle_media(
            self.now,
            MediaEvent::Recorded {
                call,
                id,
                samples,
                heard,
            },
        );
    }

    fn plays(&self) -> usize {
        self.engine
            .media
            .commands
            .iter()
            .filter(|c| matches!(c, MediaCommand::Play { .. }))
            .count()
    }
}

#[test]
fn a_message_is_written_where_the_cdr_says_and_the_flow_goes_on() {
    let mut t = T::with_flow(10, RECORD_FLOW);
    let (call, id) = t.recording();
    t.advance(Duration::from_secs(3));
    t.recorded(call, id, 24_000, true);
    let job = t.engine.poll_recording().expect("a file to write");
    assert!(t.engine.poll_recording().is_none());
    assert_eq!((job.task, job.samples.len()), (TaskId(id), 24_000));
    // The path is fixed when recording starts: 1_700_000_000_000 ms, 2023-11-14 22:13:20 UTC.
    let dir = std::path::Path::new("/srv/messages/2023-11-14");
    assert_eq!(job.path.parent(), Some(dir));
    let plays = t.plays();
    t.engine
        .handle_recording_written(t.now, job.call, job.task, Ok(job.path.clone()));
    assert_eq!(
        t.plays(),
        plays + 1,
        "the next node plays once the file is there"
    );
    let (_, thanks) = t.last_play().unwrap();
    t.engine
        .handle_media(t.now, MediaEvent::PlayDone { call, id: thanks });
    t.pump();
    let r = t.records();
    assert_eq!(r.len(), 1);
    assert_eq!(r[0].ivr_path, ["message", "thanks", "bye"]);
    let path = job.path.to_string_lossy().into_owned();
    assert_eq!(r[0].recordings, [path]);
    assert_eq!(
        job.path.file_name().unwrap().to_string_lossy(),
        format!("{}-{id}.wav", r[0].id),
        "named after the CDR's call id and the task"
    );
}

#[test]
fn a_silent_caller_takes_the_failure_exit_and_leaves_no_file() {
    let mut t = T::with_flow(10, RECORD_FLOW);
    let (call, id) = t.recording();
    t.recorded(call, id, 0, false);
    assert!(t.engine.poll_recording().is_none());
    let (_, sorry) = t.last_play().unwrap();
    t.engine
        .handle_media(t.now, MediaEvent::PlayDone { call, id: sorry });
    t.pump();
    let r = t.records();
    assert_eq!(r[0].ivr_path, ["message", "sorry", "bye"]);
    assert!(r[0].recordings.is_empty());
}

#[test]
fn the_terminator_key_stops_the_recording_it_belongs_to() {
    let mut t = T::with_flow(10, RECORD_FLOW);
    let (call, id) = t.recording();
    t.engine
        .handle_media(t.now, MediaEvent::Digit { call, digit: '5' });
    t.engine
        .handle_media(t.now, MediaEvent::Digit { call, digit: '#' });
    let stops: Vec<_> = t
        .engine
        .media
        .commands
        .iter()
        .filter_map(|c| match c {
            MediaCommand::StopRecording { call, id } => Some((*call, *id)),
            _ => None,
        })
        .collect();
    assert_eq!(stops, [(call, id)], "only the terminator stops it");
}

#[test]
fn a_write_failure_is_no_message() {
    let mut t = T::with_flow(10, RECORD_FLOW);
    let (call, id) = t.recording();
    t.recorded(call, id, 8000, true);
    let job = t.engine.poll_recording().unwrap();
    t.engine
        .handle_recording_written(t.now, job.call, job.task, Err("disk full".into()));
    let (_, sorry) = t.last_play().unwrap();
    t.engine
        .handle_media(t.now, MediaEvent::PlayDone { call, id: sorry });
    t.pump();
    let r = t.records();
    assert_eq!(r[0].ivr_path, ["message", "sorry", "bye"]);
    assert!(r[0].recordings.is_empty());
}

#[test]
fn hanging_up_mid_message_keeps_it_and_its_cdr_lists_it() {
    let mut t = T::with_flow(10, RECORD_FLOW);
    let (call, id) = t.recording();
    t.advance(Duration::from_secs(4));
    hang_up_phone(&mut t);
    assert!(
        t.engine
            .media
            .commands
            .iter()
            .any(|c| matches!(c, MediaCommand::Close { call: c } if *c == call))
    );
    assert!(t.records().is_empty(), "the CDR waits for the recording");
    t.engine.begin_shutdown(t.now);
    assert!(!t.engine.drained(), "and so does shutdown");
    // What the stream hands over on Close.
    t.recorded(call, id, 30_000, true);
    assert!(t.records().is_empty(), "still being written");
    let job = t.engine.poll_recording().unwrap();
    t.engine
        .handle_recording_written(t.now, job.call, job.task, Ok(job.path.clone()));
    let r = t.records();
    assert_eq!(r.len(), 1);
    assert_eq!(
        (r[0].disposition, r[0].end_reason.as_str()),
        (Disposition::CallerHangup, "bye")
    );
    assert_eq!(r[0].recordings, [job.path.to_string_lossy().into_owned()]);
    assert_eq!(
        r[0].end_ms - r[0].start_ms,
        4000,
        "ended when the caller hung up"
    );
    assert_eq!(r[0].ivr_path, ["message"]);
}

fn hang_up_phone(t: &mut T) {
    let c = t.phone_call.expect("a call");
    t.phone.hangup(t.now, c);
    t.pump();
}

#[test]
fn hanging_up_silent_sends_the_cdr_without_a_recording() {
    let mut t = T::with_flow(10, RECORD_FLOW);
    let (call, id) = t.recording();
    hang_up_phone(&mut t);
    assert!(t.records().is_empty());
    t.recorded(call, id, 0, false);
    assert!(t.engine.poll_recording().is_none());
    let r = t.records();
    assert_eq!(r.len(), 1);
    assert!(r[0].recordings.is_empty());
}

#[test]
fn a_recording_that_never_comes_back_holds_the_cdr_only_so_long() {
    let mut t = T::with_flow(10, RECORD_FLOW);
    t.recording();
    hang_up_phone(&mut t);
    t.advance(RECORDING_HOLD - Duration::from_millis(1));
    assert!(t.records().is_empty());
    t.advance(Duration::from_millis(1));
    let r = t.records();
    assert_eq!(r.len(), 1);
    assert!(r[0].recordings.is_empty(), "no file was ever written");
}

#[test]
fn a_file_written_after_the_flow_gave_up_waiting_is_still_in_the_cdr() {
    let mut t = T::with_flow(10, RECORD_FLOW);
    let (call, id) = t.recording();
    // The flow's own limit: max_length and its grace.
    t.advance(Duration::from_secs(23));
    let (_, sorry) = t.last_play().unwrap();
    t.recorded(call, id, 8000, true);
    let job = t.engine.poll_recording().unwrap();
    t.engine
        .handle_recording_written(t.now, job.call, job.task, Ok(job.path.clone()));
    t.engine
        .handle_media(t.now, MediaEvent::PlayDone { call, id: sorry });
    t.pump();
    let r = t.records();
    assert_eq!(r[0].ivr_path, ["message", "sorry", "bye"]);
    assert_eq!(r[0].recordings, [job.path.to_string_lossy().into_owned()]);
}

/// Re-INVITEs may renew SRTP keys or start SRTP, never drop it or change its suite; an offer
/// we make inside a call follows what the call has.
#[test]
fn srtp_inside_a_call_only_stays_or_starts() {
    use crate::media::srtp::{MasterKey, SrtpKeys, Suite};
    use crate::sdp::{Sdes, SrtpPolicy};
    let plain = Negotiated {
        codec: crate::media::Codec::Pcmu,
        audio_pt: 0,
        event_pt: None,
        remote: None,
        remote_rtcp_mux: false,
        direction: crate::sdp::Direction::SendRecv,
        ptime: 20,
        media_index: 0,
        srtp: None,
    };
    let with = |suite, theirs| Negotiated {
        srtp: Some(Sdes {
            tag: 1,
            keys: SrtpKeys {
                suite,
                send: MasterKey([1; 30]),
                receive: MasterKey([theirs; 30]),
            },
        }),
        ..plain
    };
    let (s80, s32) = (Suite::Aes128CmHmacSha1_80, Suite::Aes128CmHmacSha1_32);
    assert!(super::srtp_change_allowed(None, &with(s80, 2)));
    assert!(super::srtp_change_allowed(Some(&plain), &with(s80, 2)));
    assert!(super::srtp_change_allowed(
        Some(&with(s80, 2)),
        &with(s80, 3)
    ));
    assert!(!super::srtp_change_allowed(Some(&with(s80, 2)), &plain));
    assert!(!super::srtp_change_allowed(
        Some(&with(s80, 2)),
        &with(s32, 2)
    ));

    let mut local = LocalMedia::new("127.0.0.1".parse().unwrap(), 4000, 1);
    local.srtp = Some(SrtpPolicy::new(MasterKey([1; 30]), false));
    assert_eq!(
        super::reoffer(&local, None).srtp,
        local.srtp,
        "before any answer"
    );
    assert_eq!(
        super::reoffer(&local, Some(&plain)).srtp,
        None,
        "a plain call"
    );
    assert_eq!(
        super::reoffer(&local, Some(&with(s32, 2)))
            .srtp
            .map(|p| p.suite),
        Some(s32),
        "the call's suite"
    );
}
