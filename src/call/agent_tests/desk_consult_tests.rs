//! Consultation and attended transfer asked for from the desk (the API), on the virtual
//! clock: the agent's phone keeps its one call; the colleague's phone and the caller are
//! real user agents.

use super::consult_tests::{GATEWAY, gateway_net};
use super::*;
use crate::call::agent_api::{AgentCommand, AgentCommandError};
use crate::call::events::EngineEvent;

pub(super) const B: usize = 2;

impl Net {
    pub(super) fn command(
        &mut self,
        agent: &str,
        command: AgentCommand,
    ) -> Result<(), AgentCommandError> {
        let result = self.engine.agent_command(self.now, agent, command);
        self.pump();
        self.advance(Duration::from_millis(50));
        result.map(|_| ())
    }

    pub(super) fn consult(&mut self, target: &str) -> Result<(), AgentCommandError> {
        self.command(
            "1001",
            AgentCommand::Consult {
                target: target.into(),
                call: None,
                teams: None,
            },
        )
    }

    pub(super) fn complete(&mut self, reason: Option<&str>) -> Result<(), AgentCommandError> {
        self.command(
            "1001",
            AgentCommand::CompleteConsult {
                reason: reason.map(Into::into),
                call: None,
                by: None,
            },
        )
    }

    pub(super) fn cancel(&mut self) -> Result<(), AgentCommandError> {
        self.command("1001", AgentCommand::CancelConsult { call: None })
    }

    /// The states the desk was told of since the last look.
    pub(super) fn consult_states(&mut self) -> Vec<&'static str> {
        std::iter::from_fn(|| self.engine.poll_event())
            .filter_map(|e| match e {
                EngineEvent::Consult(u) => Some(u.state),
                _ => None,
            })
            .collect()
    }

    /// The dialog of agent 1001's leg with the caller.
    pub(super) fn a1_dialog(&self) -> CallRef {
        let a1 = self.agent("1001");
        self.engine
            .legs
            .values()
            .find(|l| l.role == super::super::legs::Role::Agent { agent: a1 })
            .expect("1001's leg")
            .dialog
    }

    pub(super) fn caller_dialog(&self) -> CallRef {
        self.engine.calls.values().next().expect("the call").dialog
    }
}

#[test]
fn the_desk_consults_a_colleague_and_completes_the_transfer() {
    let mut n = ready_net("longest-idle", "");
    n.talking_to_a1();
    let a1 = n.a1_dialog();
    n.advance(Duration::from_secs(20));
    n.consult_states();
    n.consult("1002").unwrap();
    assert_eq!(
        n.state("1001"),
        AgentState::OnHold,
        "the caller waits on hold"
    );
    assert_eq!(n.incoming(B).len(), 1, "the colleague's phone rings");
    assert!(
        n.phones[B]
            .wire
            .iter()
            .any(|m| m.starts_with("INVITE ") && m.contains("consult: ")),
        "the colleague sees who consults them"
    );
    assert_eq!(
        n.complete(None),
        Err(AgentCommandError::ConsultRinging("1001".into()))
    );
    n.answer(B, n.incoming(B)[0]);
    let b = n
        .engine
        .desk_consult(*n.engine.calls.keys().next().unwrap());
    let b_dialog = n.engine.legs[&b.expect("the consultation").0].dialog;
    assert_eq!(
        n.bridges().last(),
        Some(&(a1, b_dialog)),
        "the agent's own call is put through to the colleague"
    );
    assert_eq!(n.consult_states(), ["ringing", "talking"]);
    // Nothing else while consulting.
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
    n.advance(Duration::from_secs(15));
    n.complete(Some("billing\nquestion")).unwrap();
    assert_eq!(
        n.bridges().last(),
        Some(&(n.caller_dialog(), b_dialog)),
        "the caller is bridged to the colleague"
    );
    assert_eq!(n.state("1002"), AgentState::OnCall);
    assert_eq!(n.state("1001"), AgentState::WrapUp);
    assert!(n.has_event(
        A1,
        |e| matches!(e, UaEvent::RemoteBye { call } if *call == n.incoming(A1)[0])
    ));
    assert_eq!(n.consult_states(), ["completed"]);
    // The colleague talks and hangs up; the caller goes on to the survey, then the CDR.
    n.advance(Duration::from_secs(40));
    let b_call = n.incoming(B)[0];
    n.phones[B].ua.hangup(n.now, b_call);
    n.pump();
    n.advance(Duration::from_millis(50));
    assert!(n.caller_path().iter().any(|p| p == "survey"));
    n.plays_done();
    n.advance(Duration::from_secs(25));
    let r = n.records().pop().expect("one CDR after both wrap-ups");
    assert_eq!(r.agent.as_deref(), Some("1002"));
    assert_eq!(r.transfers.len(), 1);
    let t = &r.transfers[0];
    assert_eq!(
        (
            t.kind,
            t.target.as_str(),
            t.by.as_str(),
            t.reason.as_deref()
        ),
        (
            crate::cdr::TransferKind::Attended,
            "1002",
            "1001",
            Some("billing question")
        )
    );
    // 20 s talk, 15 s on hold while consulting, 40 s with the colleague.
    assert!((14_900..15_500).contains(&r.hold_ms.unwrap()), "{r:?}");
    assert!(
        (74_000..76_500).contains(&(r.talk_ms.unwrap() + r.hold_ms.unwrap())),
        "{r:?}"
    );
    assert!(n.engine.legs.is_empty(), "no leg left behind");
}

#[test]
fn a_desk_consultation_declined_unanswered_or_cancelled_returns_the_agent_to_the_caller() {
    let mut n = ready_net("longest-idle", "");
    assert_eq!(
        n.consult("1002"),
        Err(AgentCommandError::NotOnCall("1001".into()))
    );
    n.talking_to_a1();
    let a1 = n.a1_dialog();
    let caller = n.caller_dialog();
    // Targets that cannot be consulted.
    assert!(matches!(
        n.consult("1001"),
        Err(AgentCommandError::Unavailable { .. })
    ));
    assert_eq!(
        n.consult("nobody"),
        Err(AgentCommandError::NoSuchTarget("nobody".into()))
    );
    assert_eq!(
        n.complete(None),
        Err(AgentCommandError::NotConsulting("1001".into()))
    );
    assert_eq!(n.state("1001"), AgentState::OnCall, "nothing happened");
    // The colleague declines: back with the caller at once.
    n.consult("1002").unwrap();
    let offered = n.incoming(B)[0];
    n.phones[B].ua.reject(n.now, offered, 603, &[]);
    n.pump();
    n.advance(Duration::from_millis(50));
    assert_eq!(n.state("1001"), AgentState::OnCall);
    assert_eq!(n.bridges().last(), Some(&(caller, a1)));
    n.consult_states();
    // Nobody answers within the ring time.
    n.consult("1002").unwrap();
    n.advance(Duration::from_secs(31));
    assert_eq!(n.consult_states(), ["ringing", "no_answer"]);
    assert_eq!(n.state("1001"), AgentState::OnCall);
    // The colleague, ready now, is offered no queue caller while they take a consultation.
    let b = n.agent("1002");
    n.engine
        .acd
        .handle(n.now, crate::acd::AcdEvent::Ready { agent: b });
    n.engine.drain_acd(n.now);
    n.consult("1002").unwrap();
    let consult_call = *n.incoming(B).last().unwrap();
    n.answer(B, consult_call);
    let before = n.incoming(B).len();
    n.call(CALLER, "100");
    n.advance(Duration::from_secs(2));
    assert_eq!(n.incoming(B).len(), before, "not offered while consulted");
    // Cancelled: the colleague's call ends, the agent is back, the colleague free.
    n.cancel().unwrap();
    assert!(n.has_event(
        B,
        |e| matches!(e, UaEvent::RemoteBye { call } if *call == consult_call)
    ));
    assert_eq!(n.state("1001"), AgentState::OnCall);
    assert_eq!(n.bridges().last().map(|b| b.1), Some(a1));
    assert!(
        n.engine.calls.values().all(|c| c.transfers.is_empty()),
        "no transfer"
    );
    n.advance(Duration::from_millis(100));
    assert_eq!(
        n.incoming(B).len(),
        before + 1,
        "the colleague is offered the waiting caller now"
    );
}

#[test]
fn hanging_up_during_a_desk_consultation_hands_the_caller_over_or_ends_it() {
    let mut n = ready_net("longest-idle", "");
    n.talking_to_a1();
    // Still ringing: the agent's hang-up ends the consultation with their call.
    n.consult("1002").unwrap();
    let first = n.incoming(B)[0];
    n.command("1001", AgentCommand::HangUp { call: None })
        .unwrap();
    assert!(n.has_event(
        B,
        |e| matches!(e, UaEvent::Cancelled { call } | UaEvent::RemoteBye { call } if *call == first)
    ));
    assert_eq!(n.state("1001"), AgentState::WrapUp);
    assert!(n.engine.legs.is_empty());
    n.plays_done();
    n.advance(Duration::from_secs(25));
    // Answered: the agent's phone hanging up hands the caller to the colleague.
    let mut n = ready_net("longest-idle", "");
    n.talking_to_a1();
    n.consult("1002").unwrap();
    n.answer(B, n.incoming(B)[0]);
    let a1_call = n.incoming(A1)[0];
    n.phones[A1].ua.hangup(n.now, a1_call);
    n.pump();
    n.advance(Duration::from_millis(50));
    assert_eq!(n.state("1002"), AgentState::OnCall);
    assert_eq!(n.state("1001"), AgentState::WrapUp);
    let b_dialog = n.engine.legs.values().next().unwrap().dialog;
    assert_eq!(n.bridges().last(), Some(&(n.caller_dialog(), b_dialog)));
    let call = n.engine.calls.values().next().unwrap();
    assert_eq!(call.transfers.len(), 1);
    assert_eq!(call.transfers[0].kind, crate::cdr::TransferKind::Attended);
    // The caller hangs up during a consultation: every leg ends, the colleague is free.
    let mut n = ready_net("longest-idle", "");
    n.talking_to_a1();
    n.consult("1002").unwrap();
    let consult_call = n.incoming(B)[0];
    n.answer(B, consult_call);
    n.caller_hangs_up(Duration::from_millis(100));
    assert!(n.has_event(
        B,
        |e| matches!(e, UaEvent::RemoteBye { call } if *call == consult_call)
    ));
    assert!(n.engine.legs.is_empty());
    let b = n.agent("1002");
    n.engine
        .acd
        .handle(n.now, crate::acd::AcdEvent::Ready { agent: b });
    n.engine.drain_acd(n.now);
    queued_caller(&mut n);
    assert_eq!(
        n.incoming(B).len(),
        2,
        "the colleague takes queue callers again"
    );
}

#[test]
fn the_desk_consults_a_number_and_hands_the_caller_to_it() {
    let mut n = gateway_net();
    n.talking_to_a1();
    let a1 = n.a1_dialog();
    n.advance(Duration::from_secs(10));
    n.consult("+8613800138000").unwrap();
    let out = n.incoming(GATEWAY);
    assert_eq!(out.len(), 1, "the number is called through the gateway");
    n.answer(GATEWAY, out[0]);
    let gw = n
        .engine
        .legs
        .values()
        .find(|l| l.dialog != a1)
        .unwrap()
        .dialog;
    assert_eq!(n.bridges().last(), Some(&(a1, gw)));
    n.advance(Duration::from_secs(5));
    n.complete(None).unwrap();
    assert_eq!(n.bridges().last(), Some(&(n.caller_dialog(), gw)));
    assert_eq!(n.state("1001"), AgentState::WrapUp);
    // The number hangs up: the caller goes on in the flow.
    n.advance(Duration::from_secs(30));
    n.phones[GATEWAY].ua.hangup(n.now, out[0]);
    n.pump();
    n.advance(Duration::from_millis(50));
    assert!(n.caller_path().iter().any(|p| p == "survey"));
    n.plays_done();
    n.advance(Duration::from_secs(25));
    let r = n.records().pop().expect("the CDR");
    assert_eq!(r.transfers.len(), 1);
    let t = &r.transfers[0];
    assert_eq!(
        (t.kind, t.target_kind, t.target.as_str()),
        (
            crate::cdr::TransferKind::Attended,
            crate::cdr::TransferTargetKind::Number,
            "+8613800138000"
        )
    );
    assert!((4_900..5_500).contains(&r.hold_ms.unwrap()), "{r:?}");
}

impl Net {
    /// Agent 1001's phone puts its call on hold (`sendonly`) or takes it back (`sendrecv`).
    fn a1_reinvite(&mut self, direction: &str) {
        let call = self.incoming(A1)[0];
        self.phones[A1].ua.send_in_dialog(
            self.now,
            call,
            crate::sip::message::Method::Invite,
            Some(("application/sdp".into(), sdp_answer(7000, direction))),
        );
        self.pump();
        self.advance(Duration::from_millis(20));
    }
}

#[test]
fn a_caller_waiting_for_the_colleague_does_not_stop_the_hand_over() {
    let mut n = ready_net("longest-idle", "");
    n.talking_to_a1();
    let b = n.agent("1002");
    n.engine
        .acd
        .handle(n.now, crate::acd::AcdEvent::Ready { agent: b });
    n.engine.drain_acd(n.now);
    n.consult("1002").unwrap();
    n.answer(B, n.incoming(B)[0]);
    // A second caller queues: both agents are busy, so they wait.
    n.call(CALLER, "100");
    n.advance(Duration::from_secs(2));
    assert_eq!(n.incoming(B).len(), 1, "the colleague is not offered them");
    n.complete(None).unwrap();
    assert_eq!(n.state("1002"), AgentState::OnCall);
    assert_eq!(
        n.incoming(B).len(),
        1,
        "and not while taking the call over either"
    );
    assert_eq!(n.state("1001"), AgentState::WrapUp);
    let waiting = n.engine.waiting_callers(n.now);
    assert_eq!(waiting.len(), 1, "the second caller still waits");
}

#[test]
fn the_phones_own_hold_during_a_desk_consultation_leaves_it_alone() {
    let mut n = ready_net("longest-idle", "");
    n.talking_to_a1();
    let a1 = n.a1_dialog();
    // The phone holds: no consultation on a held call (the agent would not hear it).
    n.a1_reinvite("sendonly");
    assert_eq!(
        n.consult("1002"),
        Err(AgentCommandError::PhoneHolds("1001".into()))
    );
    n.a1_reinvite("sendrecv");
    n.consult("1002").unwrap();
    n.answer(B, n.incoming(B)[0]);
    let b_dialog = n.bridges().last().unwrap().1;
    // Hold and resume on the phone meanwhile: the agents stay connected, the caller on hold.
    n.a1_reinvite("sendonly");
    n.a1_reinvite("sendrecv");
    assert_eq!(n.bridges().last(), Some(&(a1, b_dialog)));
    assert_eq!(n.state("1001"), AgentState::OnHold);
    // Held on the phone when the consultation ends: the caller stays on hold until the
    // phone resumes, then the two talk again.
    n.a1_reinvite("sendonly");
    n.cancel().unwrap();
    assert_eq!(n.state("1001"), AgentState::OnHold);
    assert_eq!(n.bridges().last(), Some(&(n.caller_dialog(), a1)));
    n.a1_reinvite("sendrecv");
    assert_eq!(n.state("1001"), AgentState::OnCall);
}

#[test]
fn a_supervisor_consults_and_transfers_to_their_own_teams_agents_only() {
    let mut n = ready_net("longest-idle", "");
    n.talking_to_a1();
    let outside = n.command(
        "1001",
        AgentCommand::Consult {
            target: "1002".into(),
            call: None,
            teams: Some(vec!["other".into()]),
        },
    );
    assert_eq!(outside, Err(AgentCommandError::NotYourTeam("1002".into())));
    let outside = n.command(
        "1001",
        AgentCommand::Transfer {
            target: "1002".into(),
            reason: None,
            call: None,
            by: Some("wang".into()),
            teams: Some(vec!["other".into()]),
        },
    );
    assert_eq!(outside, Err(AgentCommandError::NotYourTeam("1002".into())));
    assert_eq!(n.state("1001"), AgentState::OnCall, "nothing happened");
    // Their own team ("t"): allowed.
    n.command(
        "1001",
        AgentCommand::Consult {
            target: "1002".into(),
            call: None,
            teams: Some(vec!["t".into()]),
        },
    )
    .unwrap();
}

#[test]
fn the_phones_transfer_during_a_desk_consultation_sends_the_caller_to_the_colleague() {
    let mut n = ready_net("longest-idle", "");
    let with_caller = n.talking_to_a1();
    let b = n.agent("1002");
    n.engine
        .acd
        .handle(n.now, crate::acd::AcdEvent::Ready { agent: b });
    n.engine.drain_acd(n.now);
    n.consult("1002").unwrap();
    let consult_call = n.incoming(B)[0];
    n.consult_states();
    n.phones[A1]
        .ua
        .refer(n.now, with_caller, "<sip:1002@127.0.0.1>");
    n.pump();
    n.advance(Duration::from_millis(100));
    assert!(n.has_event(
        B,
        |e| matches!(e, UaEvent::Cancelled { call } if *call == consult_call)
    ));
    assert_eq!(n.consult_states(), ["cancelled"]);
    assert_eq!(
        n.incoming(B).len(),
        2,
        "the colleague is offered the caller, not someone else"
    );
    assert_eq!(n.state("1001"), AgentState::WrapUp);
    let offered = n.incoming(B)[1];
    n.answer(B, offered);
    assert_eq!(n.state("1002"), AgentState::OnCall);
}
