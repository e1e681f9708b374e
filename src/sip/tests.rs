//! Two user agents talking to each other on a virtual clock, through a lossless or lossy wire.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use super::endpoint::{Peer, TransportKind};
use super::message::Method;
use super::transaction::TimerConfig;
use super::ua::{CallRef, UaConfig, UaEvent, UserAgent};

fn ua(advertised: &str, user: &str) -> UserAgent {
    UserAgent::new(ua_config(advertised, user))
}

fn ua_config(advertised: &str, user: &str) -> UaConfig {
    UaConfig {
        advertise_request_host: false,
        timers: TimerConfig::default(),
        advertised: advertised.into(),
        user: user.into(),
        // Fixed, so runs repeat, and apart for each side, so the two never draw the same tags
        // (a local tag taken for the remote one would go unseen).
        seed: advertised
            .bytes()
            .fold(0, |h: u64, b| h.wrapping_mul(31).wrapping_add(u64::from(b))),
        nonce_secret: [1; 32],
        tls_port: None,
    }
}

struct Pair {
    now: Instant,
    a: UserAgent,
    b: UserAgent,
    a_addr: SocketAddr,
    b_addr: SocketAddr,
    a_events: Vec<UaEvent>,
    b_events: Vec<UaEvent>,
    /// Drop every n-th datagram (0: none).
    drop_every: usize,
    sent: usize,
}

impl Pair {
    fn new() -> Self {
        let a_addr: SocketAddr = "127.0.0.1:5070".parse().unwrap();
        let b_addr: SocketAddr = "127.0.0.1:5060".parse().unwrap();
        let ua = |addr: SocketAddr, user: &str| ua(&addr.to_string(), user);
        Pair {
            now: Instant::now(),
            a: ua(a_addr, "caller"),
            b: ua(b_addr, "hotline"),
            a_addr,
            b_addr,
            a_events: Vec::new(),
            b_events: Vec::new(),
            drop_every: 0,
            sent: 0,
        }
    }

    fn b_peer(&self) -> Peer {
        Peer {
            addr: self.b_addr,
            transport: TransportKind::Udp,
        }
    }

    /// Deliver everything in flight, then advance time to the next timer, until quiet or `until`.
    fn progress(&mut self, until: Duration) {
        let end = self.now + until;
        loop {
            let mut moved = false;
            while let Some(t) = self.a.poll_transmit() {
                moved = true;
                self.sent += 1;
                if self.drop_every > 0 && self.sent.is_multiple_of(self.drop_every) {
                    continue;
                }
                assert_eq!(t.to.addr, self.b_addr);
                let src = Peer {
                    addr: self.a_addr,
                    transport: TransportKind::Udp,
                };
                self.b.handle_input(self.now, src, &t.data);
            }
            while let Some(t) = self.b.poll_transmit() {
                moved = true;
                self.sent += 1;
                if self.drop_every > 0 && self.sent.is_multiple_of(self.drop_every) {
                    continue;
                }
                assert_eq!(t.to.addr, self.a_addr, "responses go back to the caller");
                let src = Peer {
                    addr: self.b_addr,
                    transport: TransportKind::Udp,
                };
                self.a.handle_input(self.now, src, &t.data);
            }
            while let Some(e) = self.a.poll_event() {
                self.a_events.push(e);
            }
            while let Some(e) = self.b.poll_event() {
                self.b_events.push(e);
            }
            if moved {
                continue;
            }
            let next = [self.a.poll_timeout(), self.b.poll_timeout()]
                .into_iter()
                .flatten()
                .min();
            match next {
                Some(t) if t <= end => {
                    self.now = self.now.max(t);
                    self.a.handle_timeout(self.now);
                    self.b.handle_timeout(self.now);
                }
                _ => break,
            }
        }
        self.now = self.now.max(end);
    }

    fn incoming(&self) -> CallRef {
        self.b_events
            .iter()
            .find_map(|e| match e {
                UaEvent::Incoming { call, .. } => Some(*call),
                _ => None,
            })
            .expect("an incoming call")
    }
}

#[test]
fn call_answer_ack_and_bye_from_caller() {
    let mut p = Pair::new();
    let peer = p.b_peer();
    let a_call =
        p.a.invite(p.now, peer, "alice", "100", Some(b"v=0\r\n".to_vec()))
            .unwrap();
    p.progress(Duration::from_millis(1));
    let b_call = p.incoming();
    assert!(
        matches!(&p.b_events[0], UaEvent::Incoming { to_user, from_user, offer: Some(_), .. } if to_user == "100" && from_user == "alice")
    );
    assert!(
        p.a_events
            .iter()
            .any(|e| matches!(e, UaEvent::Progress { code: 100, .. }))
    );
    p.b.answer(p.now, b_call, b"v=0\r\nanswer".to_vec());
    p.progress(Duration::from_millis(1));
    assert!(p.a_events.iter().any(|e| matches!(
        e,
        UaEvent::Answered {
            answer: Some(_),
            ..
        }
    )));
    assert!(
        p.b_events
            .iter()
            .any(|e| matches!(e, UaEvent::Acked { .. }))
    );
    p.a.hangup(p.now, a_call);
    p.progress(Duration::from_secs(40));
    assert!(
        p.b_events
            .iter()
            .any(|e| matches!(e, UaEvent::RemoteBye { .. }))
    );
    assert!(
        p.a_events
            .iter()
            .any(|e| matches!(e, UaEvent::Ended { code: 200, .. }))
    );
    assert_eq!(p.a.calls() + p.b.calls(), 0);
    assert_eq!(
        p.a.transactions() + p.b.transactions(),
        0,
        "every transaction ends"
    );
}

#[test]
fn bye_from_server_and_info_dtmf() {
    let mut p = Pair::new();
    let peer = p.b_peer();
    let a_call = p.a.invite(p.now, peer, "alice", "100", None).unwrap();
    p.progress(Duration::from_millis(1));
    let b_call = p.incoming();
    p.b.answer(p.now, b_call, b"offer".to_vec());
    p.progress(Duration::from_millis(1));
    p.a.send_info_digit(p.now, a_call, '7');
    p.progress(Duration::from_millis(1));
    assert!(
        p.b_events
            .iter()
            .any(|e| matches!(e, UaEvent::Dtmf { digit: '7', .. }))
    );
    p.b.hangup(p.now, b_call);
    p.progress(Duration::from_secs(1));
    assert!(
        p.a_events
            .iter()
            .any(|e| matches!(e, UaEvent::RemoteBye { .. }))
    );
    assert!(
        p.b_events
            .iter()
            .any(|e| matches!(e, UaEvent::Ended { code: 200, .. }))
    );
}

#[test]
fn cancel_before_answer_gets_487() {
    let mut p = Pair::new();
    let peer = p.b_peer();
    let a_call = p.a.invite(p.now, peer, "alice", "100", None).unwrap();
    p.progress(Duration::from_millis(1));
    let b_call = p.incoming();
    p.b.ring(p.now, b_call);
    p.progress(Duration::from_millis(1));
    p.a.hangup(p.now, a_call);
    p.progress(Duration::from_secs(40));
    assert!(
        p.b_events
            .iter()
            .any(|e| matches!(e, UaEvent::Cancelled { .. }))
    );
    assert!(
        p.a_events
            .iter()
            .any(|e| matches!(e, UaEvent::Failed { code: 487, .. }))
    );
    assert_eq!(p.a.transactions() + p.b.transactions(), 0);
}

#[test]
fn reject_with_retry_after() {
    let mut p = Pair::new();
    let peer = p.b_peer();
    p.a.invite(p.now, peer, "alice", "100", None).unwrap();
    p.progress(Duration::from_millis(1));
    let b_call = p.incoming();
    p.b.reject(p.now, b_call, 503, &[("Retry-After", "5".into())]);
    p.progress(Duration::from_secs(40));
    assert!(
        p.a_events
            .iter()
            .any(|e| matches!(e, UaEvent::Failed { code: 503, .. }))
    );
    assert_eq!(
        p.a.transactions() + p.b.transactions(),
        0,
        "ACK for the 503 ends both sides"
    );
}

#[test]
fn lossy_wire_still_completes_calls() {
    for drop_every in [2, 3, 4, 5] {
        let mut p = Pair::new();
        p.drop_every = drop_every;
        let peer = p.b_peer();
        let a_call = p.a.invite(p.now, peer, "alice", "100", None).unwrap();
        p.progress(Duration::from_secs(3));
        let b_call = p.incoming();
        p.b.answer(p.now, b_call, b"sdp".to_vec());
        p.progress(Duration::from_secs(3));
        assert!(
            p.a_events
                .iter()
                .any(|e| matches!(e, UaEvent::Answered { .. })),
            "drop 1/{drop_every}"
        );
        p.a.hangup(p.now, a_call);
        p.progress(Duration::from_secs(3));
        assert!(
            p.b_events
                .iter()
                .any(|e| matches!(e, UaEvent::RemoteBye { .. })),
            "drop 1/{drop_every}"
        );
        assert_eq!(
            p.b_events
                .iter()
                .filter(|e| matches!(e, UaEvent::Incoming { .. }))
                .count(),
            1
        );
    }
}

#[test]
fn no_ack_ends_the_call_with_408() {
    let mut p = Pair::new();
    let peer = p.b_peer();
    p.a.invite(p.now, peer, "alice", "100", None).unwrap();
    p.progress(Duration::from_millis(1));
    let b_call = p.incoming();
    p.drop_every = 1; // the wire goes dead
    p.b.answer(p.now, b_call, b"sdp".to_vec());
    p.progress(Duration::from_secs(40));
    assert!(
        p.b_events
            .iter()
            .any(|e| matches!(e, UaEvent::Ended { code: 408, .. }))
    );
}

#[test]
fn server_answers_options_and_refuses_others() {
    let mut b = ua("127.0.0.1:5060", "hotline");
    let now = Instant::now();
    let src = Peer {
        addr: "127.0.0.1:5999".parse().unwrap(),
        transport: TransportKind::Udp,
    };
    let req = |method: &str| {
        format!(
            "{method} sip:100@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5999;branch=z9hG4bK{method}\r\nFrom: <sip:a@x>;tag=1\r\nTo: <sip:100@y>\r\nCall-ID: c-{method}\r\nCSeq: 1 {method}\r\nContent-Length: 0\r\n\r\n"
        )
    };
    let mut reply = |method: &str| {
        b.handle_input(now, src, req(method).as_bytes());
        String::from_utf8(b.poll_transmit().expect("a reply").data).unwrap()
    };
    let options = reply("OPTIONS");
    assert!(options.starts_with("SIP/2.0 200"), "{options}");
    assert!(options.contains("Allow: INVITE, ACK, BYE, CANCEL, OPTIONS, INFO"));
    assert!(options.contains("Accept: application/sdp"));
    // REGISTER is the registrar's now: a challenge, even for a user nobody knows.
    assert!(reply("REGISTER").starts_with("SIP/2.0 401"));
    assert!(reply("SUBSCRIBE").starts_with("SIP/2.0 405"));
    assert!(reply("BYE").starts_with("SIP/2.0 481"));
    assert!(reply("FOO").starts_with("SIP/2.0 501"));
    b.handle_input(now, src, b"INVITE sip:100@h SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5999;branch=z9hG4bKx\r\nContent-Length: 0\r\n\r\n");
    let bad = String::from_utf8(b.poll_transmit().expect("a 400").data).unwrap();
    assert!(bad.starts_with("SIP/2.0 400"), "{bad}");
}

#[test]
fn rport_and_received_route_the_response() {
    let mut b = ua("127.0.0.1:5060", "hotline");
    let now = Instant::now();
    let src = Peer {
        addr: "127.0.0.9:40000".parse().unwrap(),
        transport: TransportKind::Udp,
    };
    let msg = "OPTIONS sip:100@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 10.0.0.5:5060;rport;branch=z9hG4bKr\r\nFrom: <sip:a@x>;tag=1\r\nTo: <sip:100@y>\r\nCall-ID: r\r\nCSeq: 1 OPTIONS\r\n\r\n";
    b.handle_input(now, src, msg.as_bytes());
    let t = b.poll_transmit().unwrap();
    assert_eq!(t.to.addr, src.addr);
    let text = String::from_utf8(t.data).unwrap();
    assert!(text.contains("received=127.0.0.9"), "{text}");
    assert!(text.contains("rport=40000"), "{text}");
}

#[test]
fn garbage_never_panics_the_user_agent() {
    let mut b = ua("127.0.0.1:5060", "hotline");
    let now = Instant::now();
    let src = Peer {
        addr: "127.0.0.1:5999".parse().unwrap(),
        transport: TransportKind::Udp,
    };
    let seed = "INVITE sip:100@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5999;branch=z9hG4bKq\r\nFrom: \"A\" <sip:a@x>;tag=1\r\nTo: <sip:100@y>\r\nCall-ID: q\r\nCSeq: 1 INVITE\r\nContact: <sip:a@127.0.0.1:5999>\r\nContent-Type: application/sdp\r\nContent-Length: 4\r\n\r\nv=0\n";
    let mut rng = fastrand::Rng::with_seed(11);
    for _ in 0..5_000 {
        let mut data = seed.as_bytes().to_vec();
        for _ in 0..rng.usize(1..6) {
            let i = rng.usize(..data.len());
            match rng.u8(..3) {
                0 => data[i] = rng.u8(..),
                1 => {
                    data.remove(i);
                }
                _ => data.insert(i, b":;<>@ ,\r\n="[rng.usize(..10)]),
            }
        }
        b.handle_input(now, src, &data);
        while b.poll_transmit().is_some() {}
        while b.poll_event().is_some() {}
    }
}

#[test]
fn info_dtmf_bodies_both_content_types_and_refusals() {
    let mut b = ua("127.0.0.1:5060", "hotline");
    let mut a = ua("127.0.0.1:5070", "caller");
    let now = Instant::now();
    let a_peer = Peer {
        addr: "127.0.0.1:5070".parse().unwrap(),
        transport: TransportKind::Udp,
    };
    let b_peer = Peer {
        addr: "127.0.0.1:5060".parse().unwrap(),
        transport: TransportKind::Udp,
    };
    let exchange = |a: &mut UserAgent, b: &mut UserAgent| {
        for _ in 0..4 {
            while let Some(t) = a.poll_transmit() {
                b.handle_input(now, a_peer, &t.data);
            }
            while let Some(t) = b.poll_transmit() {
                a.handle_input(now, b_peer, &t.data);
            }
        }
    };
    let call = a.invite(now, b_peer, "alice", "100", None).unwrap();
    exchange(&mut a, &mut b);
    let incoming = std::iter::from_fn(|| b.poll_event()).find_map(|e| match e {
        UaEvent::Incoming { call, .. } => Some(call),
        _ => None,
    });
    b.answer(now, incoming.unwrap(), b"sdp".to_vec());
    exchange(&mut a, &mut b);
    let bodies = [
        (
            "application/dtmf-relay",
            "Signal=#\r\nDuration=160\r\n",
            Some('#'),
        ),
        ("application/dtmf-relay", "Signal=11\r\n", Some('#')),
        ("application/dtmf", "5", Some('5')),
        ("text/plain", "5", None),
        ("application/dtmf", "x", None),
    ];
    for (content_type, body, expected) in bodies {
        a.send_in_dialog(
            now,
            call,
            Method::Info,
            Some((content_type.into(), body.as_bytes().to_vec())),
        );
        exchange(&mut a, &mut b);
        let digit = std::iter::from_fn(|| b.poll_event()).find_map(|e| match e {
            UaEvent::Dtmf { digit, .. } => Some(digit),
            _ => None,
        });
        assert_eq!(digit, expected, "{content_type}: {body:?}");
    }
}

#[test]
fn bye_on_an_early_dialog_ends_the_invite_with_487() {
    let mut p = Pair::new();
    let peer = p.b_peer();
    let a_call = p.a.invite(p.now, peer, "alice", "100", None).unwrap();
    p.progress(Duration::from_millis(1));
    let b_call = p.incoming();
    p.b.ring(p.now, b_call);
    p.progress(Duration::from_millis(1));
    // The caller sends BYE inside the early dialog instead of CANCEL.
    p.a.send_in_dialog(p.now, a_call, Method::Bye, None);
    p.progress(Duration::from_secs(40));
    assert!(
        p.b_events
            .iter()
            .any(|e| matches!(e, UaEvent::Cancelled { .. }))
    );
    assert!(
        p.a_events
            .iter()
            .any(|e| matches!(e, UaEvent::Failed { code: 487, .. }))
    );
    assert_eq!(p.b.transactions(), 0, "no server transaction left behind");
}

#[test]
fn bound_to_every_address_the_dialog_names_the_host_the_caller_dialled() {
    let mut hotline = UserAgent::new(UaConfig {
        advertise_request_host: true,
        timers: TimerConfig::default(),
        advertised: "127.0.0.1:5060".into(),
        user: "hotline".into(),
        seed: 1,
        nonce_secret: [1; 32],
        tls_port: None,
    });
    let now = Instant::now();
    let invite = "INVITE sip:100@192.0.2.7:5060 SIP/2.0\r\n\
        Via: SIP/2.0/UDP 198.51.100.4:5070;branch=z9hG4bK-remote-1\r\n\
        From: <sip:alice@198.51.100.4>;tag=a1\r\n\
        To: <sip:100@192.0.2.7>\r\n\
        Call-ID: remote-advertise-1\r\n\
        CSeq: 1 INVITE\r\n\
        Contact: <sip:alice@198.51.100.4:5070>\r\n\
        Max-Forwards: 70\r\n\
        Content-Length: 0\r\n\r\n";
    let src = Peer {
        addr: "198.51.100.4:5070".parse().unwrap(),
        transport: TransportKind::Udp,
    };
    hotline.handle_input(now, src, invite.as_bytes());
    let call = loop {
        match hotline.poll_event() {
            Some(UaEvent::Incoming { call, .. }) => break call,
            Some(_) => continue,
            None => panic!("no incoming call"),
        }
    };
    hotline.answer(now, call, b"v=0\r\n".to_vec());
    let mut ok = None;
    while let Some(t) = hotline.poll_transmit() {
        let text = String::from_utf8_lossy(&t.data).to_string();
        if text.starts_with("SIP/2.0 200") {
            ok = Some(text);
        }
    }
    let ok = ok.expect("200 OK sent");
    let contact = ok
        .lines()
        .find(|l| l.to_ascii_lowercase().starts_with("contact:"))
        .unwrap();
    assert!(contact.contains("192.0.2.7:5060"), "{contact}");
    assert!(!ok.contains("127.0.0.1"), "{ok}");
}

#[test]
fn a_flood_of_new_requests_is_refused_once_the_transaction_table_is_full() {
    use super::endpoint::Endpoint;
    let mut ep = Endpoint::new(TimerConfig::default()).with_transaction_limit(3);
    let now = Instant::now();
    let src = Peer {
        addr: "127.0.0.1:5099".parse().unwrap(),
        transport: TransportKind::Udp,
    };
    let options = |n: u32| {
        format!(
            "OPTIONS sip:100@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5099;branch=z9hG4bK-flood-{n}\r\n\
             From: <sip:x@127.0.0.1>;tag=f{n}\r\nTo: <sip:100@127.0.0.1>\r\nCall-ID: flood-{n}\r\n\
             CSeq: 1 OPTIONS\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n"
        )
    };
    for n in 0..4 {
        ep.handle_input(now, src, options(n).as_bytes());
    }
    let mut requests = 0;
    while ep.poll_event().is_some() {
        requests += 1;
    }
    assert_eq!(requests, 3, "three fit; the fourth is not a transaction");
    assert_eq!(ep.transactions(), 3);
    let refusal = ep
        .poll_transmit()
        .expect("the fourth is answered statelessly");
    let text = String::from_utf8_lossy(&refusal.data);
    assert!(text.starts_with("SIP/2.0 503"), "{text}");
    assert!(text.contains("Retry-After: 5"), "{text}");
}

/// One source over its call rate: a stateless 503 or two, then silence, and no transaction
/// either way; its in-dialog requests and other sources are untouched.
#[test]
fn new_calls_over_a_sources_rate_get_a_few_stateless_503s_then_nothing() {
    use super::admission::{AdmissionConfig, TrustedNets};
    use super::endpoint::Endpoint;
    let mut ep = Endpoint::new(TimerConfig::default());
    ep.set_admission(AdmissionConfig {
        calls_per_second: 2,
        burst: 3,
        refusals_per_second: 2,
        trusted: TrustedNets::parse(&["127.0.0.9"]).unwrap(),
        max_sources: 100,
    });
    let now = Instant::now();
    let peer = |ip: &str| Peer {
        addr: format!("{ip}:5099").parse().unwrap(),
        transport: TransportKind::Udp,
    };
    let invite = |n: u32, to_tag: &str| {
        format!(
            "INVITE sip:100@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5099;branch=z9hG4bK-fl-{n}\r\n\
             From: <sip:x@127.0.0.1>;tag=f{n}\r\nTo: <sip:100@127.0.0.1>{to_tag}\r\nCall-ID: fl-{n}\r\n\
             CSeq: 1 INVITE\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n"
        )
    };
    let outcome = |ep: &mut Endpoint, ip: &str, n: u32, to_tag: &str| {
        ep.handle_input(now, peer(ip), invite(n, to_tag).as_bytes());
        let request = std::iter::from_fn(|| ep.poll_event()).count() > 0;
        let answers: Vec<String> = std::iter::from_fn(|| ep.poll_transmit())
            .map(|t| {
                String::from_utf8_lossy(&t.data)
                    .lines()
                    .next()
                    .unwrap()
                    .to_string()
            })
            .collect();
        (request, answers)
    };
    let mut seen = Vec::new();
    for n in 0..8 {
        seen.push(outcome(&mut ep, "127.0.0.3", n, ""));
    }
    assert!(seen[..3].iter().all(|(request, _)| *request), "{seen:?}");
    for (request, answers) in &seen[3..5] {
        assert!(!request);
        assert_eq!(answers, &["SIP/2.0 503 Service Unavailable"]);
    }
    assert!(
        seen[5..].iter().all(|s| !s.0 && s.1.is_empty()),
        "then silence: {seen:?}"
    );
    assert_eq!(ep.transactions(), 3, "refused INVITEs leave nothing behind");
    assert_eq!(
        ep.admission_stats(),
        super::admission::AdmissionStats {
            refused: 2,
            dropped: 3
        }
    );
    // A re-INVITE inside a dialog is not a new call... unless its source is flooding, when
    // it is not even parsed.
    assert!(!outcome(&mut ep, "127.0.0.3", 100, ";tag=abc").0);
    assert!(outcome(&mut ep, "127.0.0.4", 101, "").0, "another source");
    for n in 200..210 {
        assert!(outcome(&mut ep, "127.0.0.9", n, "").0, "a trusted trunk");
    }
}

#[test]
fn refer_to_values_name_a_target_and_maybe_a_replaced_dialog() {
    use crate::sip::ua::parse_refer_to;
    let (target, replaces) =
        parse_refer_to("<sip:1002@10.0.0.1?Replaces=abc%40h%3Bto-tag%3D1%3Bfrom-tag%3D2>").unwrap();
    assert_eq!(target, "sip:1002@10.0.0.1");
    let r = replaces.unwrap();
    assert_eq!(
        (r.call_id.as_str(), r.to_tag.as_str(), r.from_tag.as_str()),
        ("abc@h", "1", "2")
    );
    assert_eq!(
        parse_refer_to("<tel:+8613800138000>").unwrap().0,
        "tel:+8613800138000"
    );
    assert_eq!(
        parse_refer_to("sip:billing@h;method=INVITE").unwrap().0,
        "sip:billing@h"
    );
    assert!(parse_refer_to("<sip:1002@h").is_none());
    assert!(parse_refer_to("<http://x>").is_none());
    assert!(parse_refer_to(&format!("<sip:{}@h>", "1".repeat(3000))).is_none());
}

#[test]
fn the_seed_alone_decides_call_ids_tags_and_branches() {
    // The UAC side's draws (the replay tests in call/ cover the UAS side's): two UAs on one
    // seed send the same INVITE bytes, and a third on another seed does not.
    let invite_from = |seed: u64| {
        let mut ua = UserAgent::new(UaConfig {
            advertise_request_host: false,
            timers: TimerConfig::default(),
            advertised: "127.0.0.1:5060".into(),
            user: "hotline".into(),
            seed,
            nonce_secret: [1; 32],
            tls_port: None,
        });
        let to = Peer {
            addr: "127.0.0.1:5070".parse().unwrap(),
            transport: TransportKind::Udp,
        };
        ua.invite(Instant::now(), to, "hotline", "201", None)
            .unwrap();
        String::from_utf8(ua.poll_transmit().unwrap().data).unwrap()
    };
    let (a, b, c) = (invite_from(5), invite_from(5), invite_from(6));
    assert_eq!(a, b);
    for name in ["call-id:", "from:", "via:"] {
        let line = |m: &str| {
            m.lines()
                .find(|l| l.to_ascii_lowercase().starts_with(name))
                .unwrap()
                .to_string()
        };
        assert_ne!(line(&a), line(&c), "{name}");
    }
}

/// Over TLS our Contact names the TLS port: `transport=tls` for a `sip:` dialog, a
/// `sips:` Contact (TLS implied) for a `sips:` one (RFC 5630).
#[test]
fn dialogs_over_tls_name_the_tls_port_and_keep_a_sips_scheme() {
    for (scheme, contact) in [
        ("sip", "Contact: <sip:hotline@127.0.0.1:5061;transport=tls>"),
        ("sips", "Contact: <sips:hotline@127.0.0.1:5061>"),
    ] {
        let mut b = UserAgent::new(UaConfig {
            tls_port: Some(5061),
            ..ua_config("127.0.0.1:5060", "hotline")
        });
        let now = Instant::now();
        let src = Peer {
            addr: "127.0.0.1:40000".parse().unwrap(),
            transport: TransportKind::Tls,
        };
        let invite = format!(
            "INVITE {scheme}:100@127.0.0.1:5061 SIP/2.0\r\nVia: SIP/2.0/TLS 127.0.0.1:40000;branch=z9hG4bKtls{scheme}\r\nMax-Forwards: 70\r\nFrom: <{scheme}:a@127.0.0.1>;tag=1\r\nTo: <{scheme}:100@127.0.0.1>\r\nCall-ID: tls-{scheme}\r\nCSeq: 1 INVITE\r\nContact: <{scheme}:a@127.0.0.1:40000;transport=tls>\r\nContent-Length: 0\r\n\r\n"
        );
        b.handle_input(now, src, invite.as_bytes());
        let call = std::iter::from_fn(|| b.poll_event())
            .find_map(|e| match e {
                UaEvent::Incoming { call, .. } => Some(call),
                _ => None,
            })
            .expect("the INVITE is taken");
        b.answer(now, call, b"v=0\r\n".to_vec());
        let sent: Vec<_> = std::iter::from_fn(|| b.poll_transmit()).collect();
        let ok = sent
            .iter()
            .map(|t| String::from_utf8_lossy(&t.data).to_string())
            .find(|m| m.starts_with("SIP/2.0 200"))
            .expect("a 200 OK");
        assert!(ok.contains(contact), "{scheme}: {ok}");
        assert!(sent.iter().all(|t| t.to == src), "back on the connection");
    }
}

#[test]
fn the_transport_a_uri_asks_for() {
    for (uri, kind) in [
        ("sip:1001@192.0.2.5", TransportKind::Udp),
        ("sip:1001@192.0.2.5:5080;transport=tcp", TransportKind::Tcp),
        ("<sip:1001@192.0.2.5;lr;Transport=TLS>", TransportKind::Tls),
        ("SIPS:1001@192.0.2.5", TransportKind::Tls),
        ("sip:1001@192.0.2.5;transport=sctp", TransportKind::Udp),
        ("<sip:a@b>;transport=tls", TransportKind::Udp),
    ] {
        assert_eq!(TransportKind::of_uri(uri), kind, "{uri}");
    }
}
