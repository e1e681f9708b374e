//! Consulting a queue from the desk (attended transfer to a queue), on the virtual clock:
//! the consultation waits in the queue as a contact of its own, the ACD rings its agents,
//! and whoever answers takes the caller over on completion.

use super::desk_consult_tests::B;
use super::*;
use crate::call::agent_api::{AgentCommand, AgentCommandError};
use crate::call::events::EngineEvent;

impl Net {
    /// An agent's state change, as their phone or desk would ask for it.
    fn agent_event(&mut self, event: crate::acd::AcdEvent) {
        self.engine.acd.handle(self.now, event);
        self.engine.drain_acd(self.now);
        self.pump();
        self.advance(Duration::from_millis(50));
    }

    fn ready(&mut self, id: &str) {
        let agent = self.agent(id);
        self.agent_event(crate::acd::AcdEvent::Ready { agent });
    }

    fn events(&mut self) -> Vec<EngineEvent> {
        std::iter::from_fn(|| self.engine.poll_event()).collect()
    }
}

/// What the desk heard of the consultation: (state, colleague).
fn said(events: &[EngineEvent]) -> Vec<(&'static str, Option<String>)> {
    events
        .iter()
        .filter_map(|e| match e {
            EngineEvent::Consult(u) => {
                assert_eq!(u.target, "help");
                Some((u.state, u.colleague.clone()))
            }
            _ => None,
        })
        .collect()
}

#[test]
fn a_consultation_waits_in_the_queue_ahead_of_callers_and_its_agent_takes_the_caller_over() {
    let mut n = ready_net("longest-idle", "");
    n.talking_to_a1();
    let a1 = n.a1_dialog();
    let caller = n.caller_dialog();
    let record_id = n.engine.calls.values().next().unwrap().record_id.clone();
    n.advance(Duration::from_secs(20));
    n.events();
    // 1002 is not ready: the consultation waits, the caller on hold.
    n.consult("help").unwrap();
    assert_eq!(n.state("1001"), AgentState::OnHold);
    assert!(n.incoming(B).is_empty());
    assert_eq!(n.engine.acd.waiting("help"), 1);
    assert_eq!(
        n.complete(None),
        Err(AgentCommandError::ConsultRinging("1001".into()))
    );
    let held = n.command(
        "1001",
        AgentCommand::Hold {
            held: false,
            call: None,
        },
    );
    assert_eq!(held, Err(AgentCommandError::Consulting("1001".into())));
    assert_eq!(
        n.consult("1002"),
        Err(AgentCommandError::Consulting("1001".into()))
    );
    // A caller arrives meanwhile; when 1002 is ready, the consultation goes first.
    n.call(CALLER, "100");
    n.advance(Duration::from_secs(5));
    n.ready("1002");
    assert_eq!(n.incoming(B).len(), 1, "1002 rings once");
    let invite = n.phones[B]
        .wire
        .iter()
        .find(|m| m.starts_with("INVITE "))
        .unwrap();
    assert!(invite.contains("consult: Agent 1001"), "{invite}");
    let events = n.events();
    assert_eq!(
        said(&events),
        [("queued", None), ("ringing", Some("1002".into()))]
    );
    let pop = events
        .iter()
        .find_map(|e| match e {
            EngineEvent::Offer(pop) => Some(pop),
            _ => None,
        })
        .expect("1002's desk shows the caller");
    assert_eq!(
        (pop.agent.as_str(), pop.call.as_str()),
        ("1002", record_id.as_str())
    );
    assert_eq!(pop.priority, 100, "the consultation's own place");
    assert!((5_000..5_400).contains(&pop.waited_ms), "{}", pop.waited_ms);
    assert_eq!(n.state("1002"), AgentState::Ringing);
    // 1002 answers and talks to 1001 on 1001's own call.
    n.answer(B, n.incoming(B)[0]);
    let b_dialog = n
        .engine
        .legs
        .values()
        .find(|l| l.dialog != a1)
        .unwrap()
        .dialog;
    assert_eq!(n.bridges().last(), Some(&(a1, b_dialog)));
    assert_eq!(n.state("1002"), AgentState::OnCall);
    assert_eq!(said(&n.events()), [("talking", Some("1002".into()))]);
    n.advance(Duration::from_secs(10));
    n.complete(Some("billing")).unwrap();
    assert_eq!(n.bridges().last(), Some(&(caller, b_dialog)));
    assert_eq!(n.state("1002"), AgentState::OnCall);
    assert_eq!(n.state("1001"), AgentState::WrapUp);
    assert_eq!(said(&n.events()), [("completed", Some("1002".into()))]);
    let id = n
        .engine
        .calls
        .iter()
        .find(|(_, c)| c.dialog == caller)
        .unwrap()
        .0;
    assert_eq!(
        n.engine.acd.talking_to(super::super::queue::caller_id(*id)),
        Some(n.agent("1002"))
    );
    assert_eq!(
        n.engine.acd.waiting("help"),
        1,
        "the other caller still waits"
    );
    assert!(n.engine.queue_consults.is_empty());
    // 1002 talks and hangs up; after both wrap-ups the CDR names the queue.
    n.advance(Duration::from_secs(30));
    let b_call = n.incoming(B)[0];
    n.phones[B].ua.hangup(n.now, b_call);
    n.pump();
    n.advance(Duration::from_millis(50));
    n.plays_done();
    n.advance(Duration::from_secs(25));
    let r = n
        .records()
        .into_iter()
        .find(|r| r.id == record_id)
        .expect("the CDR");
    assert_eq!(r.agent.as_deref(), Some("1002"));
    let t = &r.transfers[0];
    assert_eq!(
        (
            t.kind,
            t.target.as_str(),
            t.target_kind,
            t.reason.as_deref()
        ),
        (
            crate::cdr::TransferKind::Attended,
            "help",
            crate::cdr::TransferTargetKind::Queue,
            Some("billing")
        )
    );
    // 20 s with 1001, 5 + 10 s on hold meanwhile, 30 s with 1002.
    assert!((14_900..15_600).contains(&r.hold_ms.unwrap()), "{r:?}");
}

#[test]
fn a_queued_consultation_rings_on_after_a_miss_and_ends_by_cancel_or_the_queues_longest_wait() {
    let mut n = ready_net("longest-idle", "max_wait = \"2m\"\nmusic = \"sorry\"");
    n.talking_to_a1();
    let (a1, caller) = (n.a1_dialog(), n.caller_dialog());
    n.ready("1002");
    n.events();
    n.consult("help").unwrap();
    assert!(
        n.engine.media.commands.iter().any(|c| matches!(
            c,
            crate::call::MediaCommand::Music { call, prompts } if *call == a1 && !prompts.is_empty()
        )),
        "the consulting agent hears the queue's music while the consultation waits"
    );
    let first = n.incoming(B)[0];
    // No answer within the queue's ring timeout: the queue keeps looking.
    n.advance(Duration::from_secs(11));
    assert!(n.has_event(
        B,
        |e| matches!(e, UaEvent::Cancelled { call } if *call == first)
    ));
    assert_eq!(n.incoming(B).len(), 2, "offered again (nobody else serves)");
    // Declined: the phone rests (busy_rest), the consultation waits.
    let second = n.incoming(B)[1];
    n.phones[B].ua.reject(n.now, second, 603, &[]);
    n.pump();
    n.advance(Duration::from_millis(50));
    assert_eq!(
        said(&n.events()),
        [
            ("queued", None),
            ("ringing", Some("1002".into())),
            ("queued", None),
            ("ringing", Some("1002".into())),
            ("queued", None)
        ]
    );
    assert_eq!(n.state("1001"), AgentState::OnHold);
    // Cancelled while waiting: back with the caller, out of the queue.
    n.cancel().unwrap();
    assert_eq!(said(&n.events()), [("cancelled", None)]);
    assert_eq!(n.state("1001"), AgentState::OnCall);
    assert_eq!(n.bridges().last(), Some(&(caller, a1)));
    assert_eq!(n.engine.acd.waiting("help"), 0);
    assert!(n.engine.queue_consults.is_empty());
    n.advance(Duration::from_secs(31));
    assert_eq!(n.incoming(B).len(), 2, "nothing rings for it any more");
    // Nobody answers within the queue's longest wait: back with the caller.
    let b = n.agent("1002");
    n.agent_event(crate::acd::AcdEvent::NotReady {
        agent: b,
        reason: "Lunch".into(),
    });
    n.consult("help").unwrap();
    n.advance(Duration::from_secs(121));
    assert_eq!(said(&n.events()), [("queued", None), ("no_answer", None)]);
    assert_eq!(n.state("1001"), AgentState::OnCall);
    assert_eq!(n.bridges().last(), Some(&(caller, a1)));
    assert!(n.engine.calls.values().all(|c| c.transfers.is_empty()));
}

#[test]
fn hang_ups_during_a_queue_consultation_free_its_agent_or_hand_the_caller_over() {
    // The consulted agent hangs up: the consultation is no call of theirs to wrap up.
    let mut n = ready_net("longest-idle", "");
    n.talking_to_a1();
    let (a1, caller) = (n.a1_dialog(), n.caller_dialog());
    n.ready("1002");
    n.consult("help").unwrap();
    let offered = n.incoming(B)[0];
    n.answer(B, offered);
    n.events();
    n.agent_states();
    // From 1002's desk: its hang-up ends the consultation (the caller's call is named).
    let record_id = n.engine.calls.values().next().unwrap().record_id.clone();
    n.command(
        "1002",
        AgentCommand::HangUp {
            call: Some(record_id),
        },
    )
    .unwrap();
    assert!(n.has_event(
        B,
        |e| matches!(e, UaEvent::RemoteBye { call } if *call == offered)
    ));
    assert_eq!(said(&n.events()), [("ended", Some("1002".into()))]);
    assert_eq!(n.state("1002"), AgentState::Available);
    let b_states: Vec<_> = n
        .agent_states()
        .into_iter()
        .filter(|(a, _)| a == "1002")
        .map(|(_, s)| s)
        .collect();
    assert_eq!(
        b_states,
        [AgentStateKind::Available],
        "no wrap-up for a consultation"
    );
    assert_eq!(n.state("1001"), AgentState::OnCall);
    assert_eq!(n.bridges().last(), Some(&(caller, a1)));
    assert!(n.engine.queue_consults.is_empty());
    // The consulting agent hangs up with the colleague on the line: handed over.
    n.consult("help").unwrap();
    let offered = n.incoming(B)[1];
    n.answer(B, offered);
    let a1_call = n.incoming(A1)[0];
    n.phones[A1].ua.hangup(n.now, a1_call);
    n.pump();
    n.advance(Duration::from_millis(50));
    assert_eq!(n.state("1002"), AgentState::OnCall);
    assert_eq!(n.state("1001"), AgentState::WrapUp);
    let call = n.engine.calls.values().next().unwrap();
    assert_eq!(call.transfers.len(), 1);
    assert_eq!(
        call.transfers[0].target_kind,
        crate::cdr::TransferTargetKind::Queue
    );
    assert!(n.engine.queue_consults.is_empty());
    // The caller hangs up while the consultation rings: every leg ends, nothing waits.
    let mut n = ready_net("longest-idle", "");
    n.talking_to_a1();
    n.ready("1002");
    n.consult("help").unwrap();
    let offered = n.incoming(B)[0];
    let record_id = n.engine.calls.values().next().unwrap().record_id.clone();
    n.events();
    n.caller_hangs_up(Duration::from_millis(100));
    assert!(n.has_event(
        B,
        |e| matches!(e, UaEvent::Cancelled { call } if *call == offered)
    ));
    let ended: Vec<_> = n
        .events()
        .into_iter()
        .filter_map(|e| match e {
            EngineEvent::Consult(u) => Some((u.state, u.call)),
            _ => None,
        })
        .collect();
    assert_eq!(
        ended,
        [("ended", record_id)],
        "the desk hears which call ended"
    );
    assert!(n.engine.legs.is_empty());
    assert!(n.engine.queue_consults.is_empty());
    assert_eq!(n.engine.acd.waiting("help"), 0);
    assert_eq!(n.state("1002"), AgentState::Available);
    // The agent hangs up while it waits: the consultation leaves the queue with the call.
    let mut n = ready_net("longest-idle", "");
    n.talking_to_a1();
    n.consult("help").unwrap();
    n.command("1001", AgentCommand::HangUp { call: None })
        .unwrap();
    assert_eq!(n.engine.acd.waiting("help"), 0);
    assert!(n.engine.queue_consults.is_empty());
    assert_eq!(n.state("1001"), AgentState::WrapUp);
}

#[test]
fn the_phones_transfer_or_a_reload_ends_a_queue_consultation() {
    // The phone's own blind transfer wins: the consultation leaves the queue and the
    // colleague it rang is offered the caller instead.
    let mut n = ready_net("ring-all", "");
    let with_caller = n.talking_to_a1();
    n.ready("1002");
    n.consult("help").unwrap();
    let consult_call = n.incoming(B)[0];
    n.events();
    n.phones[A1]
        .ua
        .refer(n.now, with_caller, "<sip:help@127.0.0.1>");
    n.pump();
    n.advance(Duration::from_millis(100));
    assert!(n.has_event(
        B,
        |e| matches!(e, UaEvent::Cancelled { call } if *call == consult_call)
    ));
    assert_eq!(said(&n.events()), [("cancelled", None)]);
    assert!(n.engine.queue_consults.is_empty());
    assert_eq!(n.state("1001"), AgentState::WrapUp);
    assert_eq!(n.incoming(B).len(), 2, "1002 rings for the caller now");
    assert_eq!(
        n.engine.acd.waiting("help"),
        1,
        "the caller, not the consultation"
    );
    // A reload that removes the queue while a consultation waits: back with the caller.
    let mut n = ready_net("longest-idle", "");
    n.talking_to_a1();
    let (a1, caller) = (n.a1_dialog(), n.caller_dialog());
    n.consult("help").unwrap();
    n.events();
    n.remove_queues();
    assert_eq!(said(&n.events()), [("failed", None)]);
    assert!(n.engine.queue_consults.is_empty());
    assert_eq!(n.state("1001"), AgentState::OnCall);
    assert_eq!(n.bridges().last(), Some(&(caller, a1)));
}
