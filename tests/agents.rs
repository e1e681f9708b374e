//! Callers reach agents over real UDP: an agent's phone (hotline's own user agent on its own
//! sockets, tests/common/agent_phone.rs) registers with digest authentication, a caller
//! dials a queue, the agent's phone rings and answers, and each side hears the other,
//! checked by the tone each sends. A caller who hangs up while the agent rings cancels the
//! ring. The agent's hold (re-INVITE sendonly) gives the caller the queue's music until the
//! agent takes them back; an agent whose registration is gone is not rung until the phone
//! registers again. A returning caller is offered to the agent who served them last, also
//! after a restart (the memory is seeded from the CDRs). The CDR, its offer rows and the
//! agent-state history are read back from the real SQLite file. Transfers are in
//! agent_transfers.rs.

mod common;

use std::net::SocketAddr;
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use common::agent_phone::*;
use common::*;
use hotline::cdr::{AgentStateKind, OfferOutcome};
use hotline::sip::UaEvent;

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

/// The help queue with sticky routing: a caller who talked with an agent in the last 30 days
/// is offered to that agent alone for up to 20 s. Skill-weighted, so the strategy's pick is
/// set by the agents' skills alone and not by who talked last (as it would be with
/// longest-idle), and no wrap-up, so each call's CDR is written as soon as it ends.
const STICKY_QUEUES: &str = r#"
[queues.help]
strategy = "skill-weighted"
skills = { help = 1 }
ring_timeout = "20s"
wrap_up = "0s"
sticky_wait = "20s"
sticky_days = 30
"#;

/// The tone each agent's phone sends.
fn tone_of(agent: &str) -> f32 {
    if agent == "1001" { 1500.0 } else { 2000.0 }
}

/// Both agents' phones (each answers every call with its own tone), registered and logged
/// in when this returns: the second REGISTER's answer comes only after the first one's.
fn both_agents(server: SocketAddr, for_how_long: Duration) -> Vec<JoinHandle<Seen>> {
    ["1001", "1002"]
        .into_iter()
        .map(|user| {
            let (ctl, rx) = mpsc::channel();
            let phone = std::thread::spawn(move || {
                let freq = tone_of(user);
                run_agent_ctl(
                    server,
                    user,
                    freq,
                    300,
                    Behaviour::AnswerEach,
                    for_how_long,
                    Some(rx),
                )
            });
            let (done, ok) = mpsc::channel();
            ctl.send(Ctl::Register(300, done)).unwrap();
            assert_eq!(ok.recv_timeout(S(5000)), Ok(true), "{user} registered");
            phone
        })
        .collect()
}

/// A call to the queue from `number`: past the intro an agent answers, the caller listens a
/// while and hangs up. What they heard, decoded.
fn call_queue(server: SocketAddr, number: &str) -> Vec<i16> {
    let mut phone = Phone::calling_from(server, number);
    phone.call("400");
    phone.talk(S(2000)); // the intro, then an agent's phone rings, answers and sends its tone
    phone.hangup();
    phone.pump(S(300));
    phone.heard_pcm()
}

/// The first-responder rule survives a restart: the server seeds its memory of who served
/// each caller from the CDRs. A caller is served by agent A; the server stops and a new one
/// starts on the same database with the agents' skills changed so that the strategy now
/// prefers the other agent, B. The caller calls again and A's phone rings, not B's; a new
/// caller (the control) goes to B, so the strategy alone would not have picked A.
#[test]
fn a_returning_caller_is_offered_to_their_last_agent_even_after_a_restart() {
    const X: &str = "5550111";
    const Y: &str = "5550222";
    let site = agent_site_with(FLOW, STICKY_QUEUES);

    let mut server = start(site.config.clone());
    let phones = both_agents(server.sip, S(3500));
    call_queue(server.sip, X);
    server.stop();
    let seen: Vec<Seen> = phones.into_iter().map(|p| p.join().unwrap()).collect();
    let rung: Vec<usize> = seen.iter().map(|s| s.rung).collect();
    let (a, b) = match rung[..] {
        [1, 0] => ("1001", "1002"),
        [0, 1] => ("1002", "1001"),
        _ => panic!("one agent rings for the first call: {rung:?}"),
    };
    let cdrs = read_cdrs(&site.config.database);
    assert_eq!(cdrs.len(), 1, "{cdrs:?}");
    assert_eq!(
        (cdrs[0].caller.as_str(), cdrs[0].agent.as_deref()),
        (X, Some(a)),
        "the stopped server wrote who served the caller"
    );

    // Overnight B's skill goes up and A's down: B is now the skill-weighted queue's pick.
    let swapped = AGENTS
        .replace("help = 5", "help = HIGH")
        .replace("help = 1", "help = 5")
        .replace("help = HIGH", "help = 1");
    write_agents(&site, if b == "1001" { AGENTS } else { &swapped });
    let mut server = start(site.config.clone());
    let phones = both_agents(server.sip, S(7000));
    let to_x = call_queue(server.sip, X);
    let then = Instant::now();
    let to_y = call_queue(server.sip, Y);
    server.stop();
    let seen: Vec<Seen> = phones.into_iter().map(|p| p.join().unwrap()).collect();
    let of = |agent: &str| &seen[usize::from(agent == "1002")];
    let (seen_a, seen_b) = (of(a), of(b));

    assert_eq!(seen_a.invites_at.len(), 1, "A rang once");
    assert!(
        seen_a.invites_at[0] < then,
        "A rang for the returning caller"
    );
    assert_eq!(seen_b.invites_at.len(), 1, "B rang once");
    assert!(
        seen_b.invites_at[0] >= then,
        "B's phone did not ring for the returning caller, only for the new one"
    );
    let heard = crossings_per_second(&to_x);
    let want = 2.0 * f64::from(tone_of(a));
    assert!(
        (want - 200.0..want + 200.0).contains(&heard),
        "the returning caller talks with A: {heard} crossings/s, A's tone gives {want}"
    );
    let heard = crossings_per_second(&to_y);
    let want = 2.0 * f64::from(tone_of(b));
    assert!(
        (want - 200.0..want + 200.0).contains(&heard),
        "the new caller talks with B: {heard} crossings/s, B's tone gives {want}"
    );
    let cdrs = read_cdrs(&site.config.database);
    assert_eq!(cdrs.len(), 3, "{cdrs:?}");
    let offered: Vec<(&str, Vec<&str>, Option<&str>)> = cdrs[1..]
        .iter()
        .map(|c| {
            let offers = c.offers.iter().map(|o| o.agent.as_str()).collect();
            (c.caller.as_str(), offers, c.agent.as_deref())
        })
        .collect();
    assert_eq!(
        offered,
        [(X, vec![a], Some(a)), (Y, vec![b], Some(b))],
        "after the restart each caller was offered to one agent only, who answered"
    );
}
