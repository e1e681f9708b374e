//! Consultation and attended transfer, and blind transfer to an outside number, on the
//! virtual clock: the consulting agent's second call is raw SIP with digest (as a phone
//! sends it), the colleague's phone and the caller are real user agents.

use super::*;

const B: usize = 2;

/// A call an agent's phone placed by hand (its messages are text, not a user agent's).
struct RawCall {
    i: usize,
    user: String,
    uri: String,
    call_id: String,
    from_tag: String,
    /// hotline's tag, once a response carried one.
    to: String,
    cseq: u32,
}

impl RawCall {
    fn replaces(&self) -> String {
        let tag = self.to.split("tag=").nth(1).unwrap_or_default();
        format!(
            "{}%3Bto-tag%3D{}%3Bfrom-tag%3D{}",
            self.call_id, tag, self.from_tag
        )
    }
}

impl Net {
    /// Phone `i` dials `number` as `user`, answering the 407 with `password`; the final or
    /// latest response code so far.
    fn dial_raw(&mut self, i: usize, user: &str, password: &str, number: &str) -> (u16, RawCall) {
        static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(1);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let addr = self.phones[i].addr;
        let mut call = RawCall {
            i,
            user: user.into(),
            uri: format!("sip:{number}@127.0.0.1:5060"),
            call_id: format!("consult-{n}"),
            from_tag: format!("ct{n}"),
            to: format!("<sip:{number}@127.0.0.1:5060>"),
            cseq: 1,
        };
        let body = super::super::leg_tests::sdp_offer(7200);
        let invite = |c: &RawCall, auth: Option<String>| {
            let mut t = format!(
                "INVITE {} SIP/2.0\r\nVia: SIP/2.0/UDP {addr};branch=z9hG4bKct{n}x{};rport\r\nMax-Forwards: 70\r\nFrom: <sip:{user}@127.0.0.1>;tag={}\r\nTo: <{}>\r\nCall-ID: {}\r\nCSeq: {} INVITE\r\nContact: <sip:{user}@{addr}>\r\nContent-Type: application/sdp\r\n",
                c.uri, c.cseq, c.from_tag, c.uri, c.call_id, c.cseq
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
        self.engine.handle_sip(self.now, from, &invite(&call, None));
        self.pump();
        let Some(challenge) = self.phones[i]
            .wire
            .iter()
            .find(|m| m.starts_with("SIP/2.0 4"))
            .cloned()
        else {
            panic!("a refusal or challenge: {:?}", self.phones[i].wire);
        };
        call.to = to_header(&challenge);
        self.ack_raw(&call);
        if !challenge.starts_with("SIP/2.0 407") {
            return (challenge[8..11].parse().unwrap(), call);
        }
        let params = digest::challenge_in(&challenge, "Proxy-Authenticate", Algorithm::Md5)
            .expect("an MD5 challenge");
        let auth = digest::client_response(
            Algorithm::Md5,
            user,
            "hotline",
            password,
            "INVITE",
            &call.uri,
            &params["nonce"],
            1,
            "beef",
            params.get("opaque").map(String::as_str),
        );
        call.cseq = 2;
        call.to = format!("<{}>", call.uri);
        self.engine
            .handle_sip(self.now, from, &invite(&call, Some(auth)));
        self.pump();
        let code = self.raw_status(&mut call);
        (code, call)
    }

    /// The latest response to the raw call's INVITE; ACKs a final one.
    fn raw_status(&mut self, call: &mut RawCall) -> u16 {
        let cseq = format!("CSeq: {} INVITE", call.cseq);
        let Some(last) = self.phones[call.i]
            .wire
            .iter()
            .rev()
            .find(|m| m.starts_with("SIP/2.0") && m.contains(&cseq))
            .cloned()
        else {
            return 0;
        };
        let code: u16 = last[8..11].parse().unwrap();
        call.to = to_header(&last);
        if code >= 200 {
            self.ack_raw(call);
        }
        code
    }

    fn ack_raw(&mut self, c: &RawCall) {
        let addr = self.phones[c.i].addr;
        let ack = format!(
            "ACK {} SIP/2.0\r\nVia: SIP/2.0/UDP {addr};branch=z9hG4bKack{}{};rport\r\nMax-Forwards: 70\r\nFrom: <sip:{}@127.0.0.1>;tag={}\r\nTo: {}\r\nCall-ID: {}\r\nCSeq: {} ACK\r\nContent-Length: 0\r\n\r\n",
            c.uri, c.call_id, c.cseq, c.user, c.from_tag, c.to, c.call_id, c.cseq
        );
        self.engine
            .handle_sip(self.now, peer(&addr.to_string()), ack.as_bytes());
        self.pump();
    }

    fn bye_raw(&mut self, c: &mut RawCall) {
        let addr = self.phones[c.i].addr;
        c.cseq += 1;
        let bye = format!(
            "BYE {} SIP/2.0\r\nVia: SIP/2.0/UDP {addr};branch=z9hG4bKbye{}{};rport\r\nMax-Forwards: 70\r\nFrom: <sip:{}@127.0.0.1>;tag={}\r\nTo: {}\r\nCall-ID: {}\r\nCSeq: {} BYE\r\nContent-Length: 0\r\n\r\n",
            c.uri, c.call_id, c.cseq, c.user, c.from_tag, c.to, c.call_id, c.cseq
        );
        self.engine
            .handle_sip(self.now, peer(&addr.to_string()), bye.as_bytes());
        self.pump();
    }

    /// A caller bridged to agent phone A1, with A1's dialog.
    pub(super) fn talking_to_a1(&mut self) -> CallRef {
        let b = self.agent("1002");
        self.engine.acd.handle(
            self.now,
            crate::acd::AcdEvent::NotReady {
                agent: b,
                reason: "Lunch".into(),
            },
        );
        self.engine.drain_acd(self.now);
        queued_caller(self);
        let c = self.incoming(A1)[0];
        self.answer(A1, c);
        assert_eq!(self.state("1001"), AgentState::OnCall);
        c
    }
}

fn to_header(m: &str) -> String {
    m.lines()
        .find_map(|l| l.strip_prefix("To: "))
        .unwrap_or_default()
        .to_string()
}

#[test]
fn an_agent_consults_a_colleague_and_hands_the_caller_over() {
    let mut n = ready_net("longest-idle", "");
    let with_caller = n.talking_to_a1();
    n.advance(Duration::from_secs(20));
    // Hold, then dial the colleague's extension.
    n.phones[A1].ua.send_in_dialog(
        n.now,
        with_caller,
        crate::sip::message::Method::Invite,
        Some(("application/sdp".into(), sdp_answer(7000, "sendonly"))),
    );
    n.pump();
    assert_eq!(n.state("1001"), AgentState::OnHold);
    let (code, mut consult) = n.dial_raw(A1, "1001", "pw1001", "1002");
    assert_eq!(code, 180, "the colleague rings");
    assert_eq!(n.incoming(B).len(), 1);
    assert!(
        matches!(n.state("1002"), AgentState::NotReady { .. }),
        "a consultation does not change the colleague's state"
    );
    n.answer(B, n.incoming(B)[0]);
    assert_eq!(
        n.raw_status(&mut consult),
        200,
        "the consulting agent is answered"
    );
    let [Some(in_leg), Some(target)] = n
        .engine
        .consult_legs(*n.engine.calls.keys().next().unwrap())
    else {
        panic!("both consultation legs");
    };
    let (in_dialog, target_dialog) = (n.engine.legs[&in_leg].dialog, n.engine.legs[&target].dialog);
    assert!(
        n.bridges().contains(&(in_dialog, target_dialog)),
        "the agents hear each other"
    );
    n.advance(Duration::from_secs(15));
    // Transfer: REFER on the caller's dialog, replacing the consultation.
    let refer_to = format!("<sip:1002@127.0.0.1?Replaces={}>", consult.replaces());
    assert!(
        n.phones[A1]
            .ua
            .refer(n.now, with_caller, &refer_to)
            .is_some()
    );
    n.pump();
    n.advance(Duration::from_millis(100));
    assert!(
        n.phones[A1]
            .wire
            .iter()
            .any(|m| m.starts_with("SIP/2.0 202")),
        "{:?}",
        n.phones[A1].wire
    );
    let caller_dialog = n.engine.calls.values().next().unwrap().dialog;
    assert_eq!(
        n.bridges().last(),
        Some(&(caller_dialog, target_dialog)),
        "the caller is bridged to the colleague"
    );
    assert_eq!(n.state("1002"), AgentState::OnCall);
    assert_eq!(n.state("1001"), AgentState::WrapUp);
    assert!(
        n.requests(A1, "BYE") >= 2,
        "both of the first agent's calls end"
    );
    // The colleague talks, hangs up; the caller goes on to the survey, then the CDR.
    n.advance(Duration::from_secs(40));
    let b_call = n.incoming(B)[0];
    n.phones[B].ua.hangup(n.now, b_call);
    n.pump();
    n.advance(Duration::from_millis(50));
    assert!(n.caller_path().iter().any(|p| p == "survey"));
    assert_eq!(n.state("1002"), AgentState::WrapUp);
    n.plays_done();
    n.advance(Duration::from_secs(25));
    assert_eq!(
        n.state("1002"),
        AgentState::NotReady {
            reason: "Lunch".into()
        },
        "back to where the colleague was"
    );
    let r = n.records().pop().expect("one CDR after both wrap-ups");
    assert_eq!(r.agent.as_deref(), Some("1002"));
    assert_eq!(r.transfers.len(), 1);
    let t = &r.transfers[0];
    assert_eq!(
        (t.kind, t.target.as_str(), t.by.as_str()),
        (crate::cdr::TransferKind::Attended, "1002", "1001")
    );
    // 20 s talk + 15 s on hold while consulting + 40 s with the colleague.
    assert!(
        (74_000..76_500).contains(&(r.talk_ms.unwrap() + r.hold_ms.unwrap())),
        "{r:?}"
    );
    assert!((14_900..15_500).contains(&r.hold_ms.unwrap()), "{r:?}");
    assert!(n.engine.legs.is_empty(), "no leg left behind");
    let _ = consult.cseq;
    n.bye_raw(&mut consult);
}

#[test]
fn consultations_are_for_agents_on_a_call_and_end_cleanly() {
    let mut n = ready_net("longest-idle", "");
    // An outsider dialling an extension is challenged and learns nothing more.
    let outsider = n.call(CALLER, "1002");
    n.advance(Duration::from_millis(50));
    assert!(
        n.phones[CALLER]
            .wire
            .iter()
            .any(|m| m.starts_with("SIP/2.0 407"))
    );
    assert!(n.incoming(B).is_empty());
    let _ = outsider;
    // An agent who is not on a call may not use hotline to call out.
    let (code, _) = n.dial_raw(A1, "1001", "pw1001", "1002");
    assert_eq!(code, 403);
    let with_caller = n.talking_to_a1();
    // The colleague declines: the consulting phone hears why; the colleague is back.
    let (code, _) = n.dial_raw(A1, "1001", "pw1001", "1002");
    assert_eq!(code, 180);
    let offered = n.incoming(B)[0];
    n.phones[B].ua.reject(n.now, offered, 603, &[]);
    n.pump();
    n.advance(Duration::from_millis(50));
    let last = n.phones[A1]
        .wire
        .iter()
        .rev()
        .find(|m| m.starts_with("SIP/2.0 6"))
        .cloned();
    assert!(last.is_some_and(|m| m.starts_with("SIP/2.0 603")));
    assert!(
        !n.engine
            .acd
            .agent_state(n.agent("1002"))
            .is_some_and(|s| *s == AgentState::OnCall)
    );
    // Consult again, then hang the consultation up: the caller stays with the first agent.
    let (_, mut consult) = n.dial_raw(A1, "1001", "pw1001", "1002");
    let offered = *n.incoming(B).last().unwrap();
    n.answer(B, offered);
    assert_eq!(n.raw_status(&mut consult), 200);
    n.bye_raw(&mut consult);
    n.advance(Duration::from_millis(100));
    assert!(n.has_event(
        B,
        |e| matches!(e, UaEvent::RemoteBye { call } if *call == offered)
    ));
    assert_eq!(n.state("1001"), AgentState::OnCall);
    let call = n.engine.calls.values().next().unwrap();
    assert!(call.transfers.is_empty());
    assert_eq!(n.engine.legs.len(), 1, "only the first agent's leg");
    // A REFER with a Replaces naming nothing of ours is refused.
    n.phones[A1].ua.refer(
        n.now,
        with_caller,
        "<sip:1002@127.0.0.1?Replaces=nope%3Bto-tag%3Dx%3Bfrom-tag%3Dy>",
    );
    n.pump();
    n.advance(Duration::from_millis(100));
    assert!(
        n.phones[A1]
            .wire
            .iter()
            .any(|m| m.starts_with("SIP/2.0 481"))
    );
    assert_eq!(n.state("1001"), AgentState::OnCall);
    // The caller hangs up during a consultation: every leg ends and the colleague is free.
    let (_, mut consult) = n.dial_raw(A1, "1001", "pw1001", "1002");
    let offered = *n.incoming(B).last().unwrap();
    n.answer(B, offered);
    n.raw_status(&mut consult);
    n.caller_hangs_up(Duration::from_millis(100));
    assert!(n.has_event(
        B,
        |e| matches!(e, UaEvent::RemoteBye { call } if *call == offered)
    ));
    assert!(n.engine.legs.is_empty());
    // The colleague's phone counts as free again: ready, they are offered the next caller.
    let b = n.agent("1002");
    n.engine
        .acd
        .handle(n.now, crate::acd::AcdEvent::Ready { agent: b });
    n.engine.drain_acd(n.now);
    let before = n.incoming(B).len();
    queued_caller(&mut n);
    assert_eq!(
        n.incoming(B).len(),
        before + 1,
        "the colleague rings for a queue caller"
    );
}

pub(super) const GATEWAY: usize = 3;

/// Agents as in `ready_net`, and a gateway for numbers at a fourth address.
pub(super) fn gateway_net() -> Net {
    let mut addrs = ADDRS.to_vec();
    addrs.push("127.0.0.1:5090");
    let mut n = Net::with_acd(
        FLOW,
        Some((&agents_toml(), &queues_toml("longest-idle", ""))),
        &addrs,
    );
    n.engine.cfg.outbound = Some("127.0.0.1:5090".parse().unwrap());
    assert_eq!(n.register(A1, "1001", "pw1001", 300), 200);
    n.login("1001");
    n
}

#[test]
fn an_agent_sends_the_caller_to_an_outside_number() {
    let mut n = gateway_net();
    let with_caller = n.talking_to_a1();
    n.advance(Duration::from_secs(10));
    n.phones[A1]
        .ua
        .refer(n.now, with_caller, "<sip:+8613800138000@127.0.0.1>");
    n.pump();
    n.advance(Duration::from_millis(100));
    assert!(
        n.phones[A1]
            .wire
            .iter()
            .any(|m| m.starts_with("SIP/2.0 202"))
    );
    assert_eq!(n.state("1001"), AgentState::WrapUp);
    let out = n.incoming(GATEWAY);
    assert_eq!(out.len(), 1, "the number is called through the gateway");
    let invite = n.phones[GATEWAY]
        .wire
        .iter()
        .find(|m| m.starts_with("INVITE sip:+8613800138000@"))
        .expect("the INVITE to the number");
    assert!(
        invite.contains("From: <sip:100@"),
        "the trunk sees the hotline's number, not the caller's unchecked one: {invite}"
    );
    n.answer(GATEWAY, out[0]);
    let caller_dialog = n.engine.calls.values().next().unwrap().dialog;
    let gw_dialog = n.engine.legs.values().next().unwrap().dialog;
    assert_eq!(n.bridges().last(), Some(&(caller_dialog, gw_dialog)));
    // The number hangs up after a while: the caller goes on in the flow.
    n.advance(Duration::from_secs(30));
    n.phones[GATEWAY].ua.hangup(n.now, out[0]);
    n.pump();
    n.advance(Duration::from_millis(50));
    assert!(n.caller_path().iter().any(|p| p == "survey"));
    n.plays_done();
    n.advance(Duration::from_secs(25));
    let r = n.records().pop().expect("the CDR");
    assert_eq!(r.transfers.len(), 1);
    assert_eq!(
        r.transfers[0].target_kind,
        crate::cdr::TransferTargetKind::Number
    );
    assert_eq!(r.transfers[0].target, "+8613800138000");
    assert_eq!(r.agent.as_deref(), Some("1001"));
    assert!(
        (9_900..10_500).contains(&r.talk_ms.unwrap()),
        "only the agent's talk: {r:?}"
    );
}

#[test]
fn a_number_that_does_not_answer_puts_the_caller_back_in_the_queue() {
    let mut n = gateway_net();
    n.engine.cfg.outbound_caller_id = crate::config::OutboundCallerId::Caller;
    let with_caller = n.talking_to_a1();
    n.phones[A1].ua.refer(n.now, with_caller, "<tel:95598>");
    n.pump();
    n.advance(Duration::from_millis(100));
    let out = n.incoming(GATEWAY);
    assert_eq!(out.len(), 1, "{:?}", n.phones[A1].wire);
    assert!(
        n.phones[GATEWAY].wire[0].contains("From: <sip:5551234@"),
        "passed through when configured"
    );
    n.phones[GATEWAY].ua.reject(n.now, out[0], 486, &[]);
    n.pump();
    n.advance(Duration::from_millis(100));
    let id = *n.engine.calls.keys().next().unwrap();
    assert!(
        n.engine.acd.queue_of(queue::caller_id(id)).is_some(),
        "waiting in the queue again"
    );
    // The agent's wrap-up ends; they are offered the caller again.
    n.advance(Duration::from_secs(21));
    assert_eq!(n.incoming(A1).len(), 2);
    // Without a gateway a number is nowhere: 404, and the conversation goes on.
    n.engine.cfg.outbound = None;
    let c = n.incoming(A1)[1];
    n.answer(A1, c);
    n.phones[A1]
        .ua
        .refer(n.now, c, "<sip:13800138000@127.0.0.1>");
    n.pump();
    n.advance(Duration::from_millis(100));
    assert!(
        n.phones[A1]
            .wire
            .iter()
            .any(|m| m.starts_with("SIP/2.0 404"))
    );
    assert_eq!(n.state("1001"), AgentState::OnCall);
}

#[test]
fn an_extension_is_not_caught_by_the_default_flow() {
    let flow = FLOW.replace("start = \"agent\"", "start = \"agent\"\ndefault = true");
    let mut n = Net::with_acd(
        &flow,
        Some((&agents_toml(), &queues_toml("longest-idle", ""))),
        &ADDRS,
    );
    assert_eq!(n.register(A1, "1001", "pw1001", 300), 200);
    assert_eq!(n.register(B, "1002", "pw1002", 300), 200);
    n.login("1001");
    // Any other number reaches the default flow; an extension is challenged instead.
    n.call(CALLER, "4711");
    n.advance(Duration::from_millis(50));
    assert_eq!(
        n.engine.calls.len(),
        1,
        "the default flow takes other numbers"
    );
    n.phones[CALLER].wire.clear();
    n.call(CALLER, "1002");
    n.advance(Duration::from_millis(50));
    assert!(
        n.phones[CALLER]
            .wire
            .iter()
            .any(|m| m.starts_with("SIP/2.0 407")),
        "{:?}",
        n.phones[CALLER].wire
    );
    assert_eq!(n.engine.calls.len(), 1);
}
