//! An agent hands a caller on over real UDP: a blind transfer (REFER to a colleague's
//! extension) and an attended one (the caller on hold, a consultation call to the
//! colleague, then REFER with Replaces). The agents' phones are tests/common/agent_phone.rs;
//! the CDR with its transfer rows is read back from the real SQLite file.

mod common;

use std::sync::mpsc;

use common::agent_phone::*;
use common::*;
use hotline::cdr::TransferKind;

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
    phone.say(1000.0, 1200); // the intro, then 1001's phone rings and answers
    let talking = phone.received.len();
    phone.say(1000.0, 600);
    let before = heard_in(&phone, talking..phone.received.len());
    ctl.send(Ctl::Hold).unwrap();
    phone.say(1000.0, 300);
    let (done, consulted) = mpsc::channel();
    ctl.send(Ctl::Consult("1002", done)).unwrap();
    let mut consult_code = None;
    for _ in 0..30 {
        phone.say(1000.0, 100);
        if let Ok(code) = consulted.try_recv() {
            consult_code = Some(code);
            break;
        }
    }
    assert_eq!(consult_code, Some(200), "the consulting agent is answered");
    phone.say(1000.0, 500); // the agents talk
    ctl.send(Ctl::Transfer("1002")).unwrap();
    let transferred = phone.received.len();
    phone.say(1000.0, 1500);
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
