//! Unit tests of the ACD core's rules on a virtual clock.

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::acd::model::{
    AcdConfig, AgentDef, AgentEndpoint, Credentials, EmptyRule, QueueDef, Skill, Strategy,
};
use crate::acd::{
    Acd, AcdAction, AcdEvent, AgentId, AgentState, CallerId, OfferFailure, OfferOutcome, QueueLeave,
};

pub(super) fn agent(id: &str, skills: &[(&str, u8)], team: Option<&str>) -> AgentDef {
    AgentDef {
        id: id.into(),
        name: id.into(),
        extension: id.into(),
        credentials: Credentials::default(),
        pin_sha256: None,
        endpoint: AgentEndpoint::Registered,
        skills: skills
            .iter()
            .map(|&(n, l)| Skill {
                name: n.into(),
                level: l,
            })
            .collect(),
        team: team.map(Into::into),
        wrap_up: None,
        auto_login: false,
    }
}

pub(super) fn queue(name: &str, strategy: Strategy) -> QueueDef {
    QueueDef {
        name: name.into(),
        strategy,
        skills: Vec::new(),
        widening: Vec::new(),
        agents: Vec::new(),
        teams: Vec::new(),
        ring_timeout: Duration::from_secs(20),
        max_wait: Duration::from_secs(600),
        max_length: None,
        wrap_up: Duration::from_secs(10),
        weight: 1,
        when_empty: EmptyRule::Wait,
        max_misses: 3,
        busy_rest: Duration::from_secs(30),
        sticky_wait: Duration::ZERO,
        sticky_days: 0,
        music: None,
        announcements: None,
        record: false,
    }
}

pub(super) const S: fn(u64) -> Duration = Duration::from_secs;

pub(super) struct T {
    pub(super) acd: Acd,
    pub(super) t0: Instant,
    pub(super) now: Instant,
}

impl T {
    pub(super) fn new(agents: Vec<AgentDef>, queues: Vec<QueueDef>) -> T {
        let config = AcdConfig {
            agents,
            queues,
            reasons: Vec::new(),
            dispositions: Vec::new(),
        };
        let t0 = Instant::now();
        T {
            acd: Acd::new(Arc::new(config)),
            t0,
            now: t0,
        }
    }

    pub(super) fn id(&self, a: &str) -> AgentId {
        self.acd.agent_id(a).unwrap()
    }

    pub(super) fn ev(&mut self, e: AcdEvent) -> Vec<AcdAction> {
        self.acd.handle(self.now, e);
        self.out()
    }

    pub(super) fn out(&mut self) -> Vec<AcdAction> {
        self.acd.check_invariants().unwrap();
        std::iter::from_fn(|| self.acd.poll_action()).collect()
    }

    /// Advances the clock to `secs` after the start, firing timers in order.
    pub(super) fn at(&mut self, secs: u64) -> Vec<AcdAction> {
        let end = self.t0 + S(secs);
        let mut out = Vec::new();
        while let Some(t) = self.acd.poll_timeout().filter(|&t| t <= end) {
            self.now = t.max(self.now);
            self.acd.handle_timeout(self.now);
            out.extend(self.out());
        }
        self.now = end;
        out
    }

    pub(super) fn login(&mut self, a: &str) -> Vec<AcdAction> {
        let agent = self.id(a);
        self.ev(AcdEvent::Login { agent })
    }

    pub(super) fn enqueue(&mut self, c: u64, q: &str, priority: u8) -> Vec<AcdAction> {
        self.enqueue_with(c, q, priority, &[], None)
    }

    pub(super) fn enqueue_with(
        &mut self,
        c: u64,
        q: &str,
        priority: u8,
        skills: &[&str],
        sticky: Option<&str>,
    ) -> Vec<AcdAction> {
        self.ev(AcdEvent::Enqueue {
            caller: CallerId(c),
            queue: q.into(),
            priority,
            skills: skills.iter().map(|s| s.to_string()).collect(),
            sticky: sticky.map(Into::into),
            sticky_for: None,
            max_wait: S(3600),
        })
    }

    pub(super) fn answer(&mut self, c: u64, a: &str) -> Vec<AcdAction> {
        let agent = self.id(a);
        self.ev(AcdEvent::OfferAnswered {
            caller: CallerId(c),
            agent,
        })
    }

    pub(super) fn hangup(&mut self, a: &str) -> Vec<AcdAction> {
        let agent = self.id(a);
        self.ev(AcdEvent::ConversationEnded { agent })
    }

    pub(super) fn state(&self, a: &str) -> AgentState {
        self.acd.agent_state(self.id(a)).unwrap().clone()
    }

    pub(super) fn offer_of(&self, a: &str) -> Option<u64> {
        self.acd.offered_to(self.id(a)).map(|c| c.0)
    }
}

pub(super) fn offers(out: &[AcdAction]) -> Vec<(u64, u32)> {
    out.iter()
        .filter_map(|a| match a {
            AcdAction::Offer { caller, agent } => Some((caller.0, agent.0)),
            _ => None,
        })
        .collect()
}

pub(super) fn ends(out: &[AcdAction]) -> Vec<(u64, u32, OfferOutcome)> {
    out.iter()
        .filter_map(|a| match a {
            AcdAction::EndOffer {
                caller,
                agent,
                outcome,
            } => Some((caller.0, agent.0, *outcome)),
            _ => None,
        })
        .collect()
}

pub(super) fn leaves(out: &[AcdAction]) -> Vec<(u64, QueueLeave)> {
    out.iter()
        .filter_map(|a| match a {
            AcdAction::Leave { caller, why } => Some((caller.0, *why)),
            _ => None,
        })
        .collect()
}

pub(super) fn reasons(out: &[AcdAction]) -> Vec<String> {
    out.iter()
        .filter_map(|a| match a {
            AcdAction::AgentChanged { reason, .. } => Some(reason.clone()),
            _ => None,
        })
        .collect()
}

pub(super) fn not_ready(reason: &str) -> AgentState {
    AgentState::NotReady {
        reason: reason.into(),
    }
}

pub(super) fn one(strategy: Strategy, n: usize) -> T {
    let agents = (1..=n)
        .map(|i| agent(&format!("a{i}"), &[], None))
        .collect();
    T::new(agents, vec![queue("q", strategy)])
}

#[test]
fn agent_state_machine_login_ready_not_ready_logout() {
    let mut t = one(Strategy::LongestIdle, 1);
    assert_eq!(t.state("a1"), AgentState::LoggedOut);
    let a1 = t.id("a1");
    assert!(
        t.ev(AcdEvent::Ready { agent: a1 }).is_empty(),
        "ready needs a login"
    );
    assert_eq!(reasons(&t.login("a1")), ["login"]);
    assert_eq!(t.state("a1"), AgentState::Available);
    t.ev(AcdEvent::NotReady {
        agent: a1,
        reason: "lunch".into(),
    });
    assert_eq!(t.state("a1"), not_ready("lunch"));
    assert_eq!(reasons(&t.ev(AcdEvent::Ready { agent: a1 })), ["ready"]);
    t.ev(AcdEvent::Logout { agent: a1 });
    assert_eq!(t.state("a1"), AgentState::LoggedOut);
    // Unknown ids are ignored, never a panic.
    t.ev(AcdEvent::Login { agent: AgentId(99) });
    t.ev(AcdEvent::ConversationEnded { agent: AgentId(99) });
}

#[test]
fn logout_and_not_ready_during_a_call_wait_for_wrap_up_end() {
    let mut t = one(Strategy::LongestIdle, 1);
    let a1 = t.id("a1");
    t.login("a1");
    assert_eq!(offers(&t.enqueue(1, "q", 0)), [(1, a1.0)]);
    t.answer(1, "a1");
    assert_eq!(t.state("a1"), AgentState::OnCall);
    t.ev(AcdEvent::Hold { agent: a1 });
    assert_eq!(t.state("a1"), AgentState::OnHold);
    t.ev(AcdEvent::NotReady {
        agent: a1,
        reason: "break".into(),
    });
    assert_eq!(t.state("a1"), AgentState::OnHold, "a call is never cut");
    t.ev(AcdEvent::Resume { agent: a1 });
    t.hangup("a1");
    assert_eq!(t.state("a1"), AgentState::WrapUp);
    t.at(10);
    assert_eq!(t.state("a1"), not_ready("break"));

    t.ev(AcdEvent::Ready { agent: a1 });
    t.enqueue(2, "q", 0);
    t.answer(2, "a1");
    t.ev(AcdEvent::Logout { agent: a1 });
    assert_eq!(t.state("a1"), AgentState::OnCall);
    t.hangup("a1");
    t.ev(AcdEvent::EndWrapUp { agent: a1 });
    assert_eq!(t.state("a1"), AgentState::LoggedOut);
}

#[test]
fn wrap_up_agent_override_and_early_end() {
    let mut a = agent("a1", &[], None);
    a.wrap_up = Some(S(60));
    let mut t = T::new(vec![a], vec![queue("q", Strategy::LongestIdle)]);
    let a1 = t.id("a1");
    t.login("a1");
    t.enqueue(1, "q", 0);
    t.answer(1, "a1");
    t.hangup("a1");
    t.enqueue(2, "q", 0);
    t.at(30);
    assert_eq!(
        t.state("a1"),
        AgentState::WrapUp,
        "the agent's 60 s beat the queue's 10 s"
    );
    assert_eq!(
        t.offer_of("a1"),
        None,
        "a waiting caller never cuts a wrap-up"
    );
    let out = t.ev(AcdEvent::EndWrapUp { agent: a1 });
    assert_eq!(reasons(&out), ["wrap_up_end", "offer"]);
    assert_eq!(offers(&out), [(2, a1.0)]);
}

#[test]
fn wrap_up_belongs_to_the_agent_through_transfers() {
    let mut t = one(Strategy::LongestIdle, 2);
    t.login("a1");
    t.login("a2");
    t.enqueue(1, "q", 0);
    t.enqueue(2, "q", 0);
    let (c1, c2) = (t.offer_of("a1").unwrap(), t.offer_of("a2").unwrap());
    t.answer(c1, "a1");
    t.answer(c2, "a2");
    t.at(5);
    t.hangup("a1");
    t.at(8);
    // a2 transfers their caller back into the queue: only a2's call ends.
    let out = t.enqueue(c2, "q", 0);
    assert_eq!(t.state("a2"), AgentState::WrapUp);
    assert_eq!(reasons(&out), ["transferred"]);
    t.at(15);
    assert_eq!(
        t.state("a1"),
        AgentState::Ringing,
        "a1's wrap-up ran its own 10 s"
    );
    assert_eq!(t.offer_of("a1"), Some(c2));
    assert_eq!(t.state("a2"), AgentState::WrapUp);
    t.at(18);
    assert_eq!(t.state("a2"), AgentState::Available);
}

#[test]
fn unreachable_and_busy_phones_leave_the_pool_and_come_back() {
    let mut t = one(Strategy::LongestIdle, 1);
    let a1 = t.id("a1");
    t.login("a1");
    t.enqueue(1, "q", 0);
    let out = t.ev(AcdEvent::Reachable {
        agent: a1,
        reachable: false,
    });
    assert_eq!(
        ends(&out),
        [(1, a1.0, OfferOutcome::Failed(OfferFailure::Unreachable))]
    );
    assert_eq!(t.state("a1"), AgentState::Available, "ACD state kept");
    assert_eq!(t.offer_of("a1"), None);
    let out = t.ev(AcdEvent::Reachable {
        agent: a1,
        reachable: true,
    });
    assert_eq!(reasons(&out), ["registration back", "offer"]);
    let out = t.ev(AcdEvent::PhoneBusy {
        agent: a1,
        busy: true,
    });
    assert_eq!(
        ends(&out),
        [(1, a1.0, OfferOutcome::Failed(OfferFailure::Busy))]
    );
    t.at(100);
    assert_eq!(t.offer_of("a1"), None);
    let out = t.ev(AcdEvent::PhoneBusy {
        agent: a1,
        busy: false,
    });
    assert_eq!(offers(&out), [(1, a1.0)]);
}

#[test]
fn refusals_go_to_the_next_agent_and_rest_the_phone() {
    for why in [
        OfferFailure::Busy,
        OfferFailure::Declined,
        OfferFailure::Redirected,
    ] {
        let mut t = one(Strategy::LongestIdle, 2);
        let (a1, a2) = (t.id("a1"), t.id("a2"));
        t.login("a1");
        t.at(1);
        t.login("a2");
        assert_eq!(offers(&t.enqueue(1, "q", 0)), [(1, a1.0)]);
        let out = t.ev(AcdEvent::OfferFailed {
            caller: CallerId(1),
            agent: a1,
            why,
        });
        assert_eq!(ends(&out), [(1, a1.0, OfferOutcome::Failed(why))]);
        assert_eq!(offers(&out), [(1, a2.0)], "at once to the next agent");
        t.ev(AcdEvent::OfferFailed {
            caller: CallerId(1),
            agent: a2,
            why,
        });
        assert_eq!(t.offer_of("a1"), None, "a 302 never loops");
        let out = t.at(31);
        assert_eq!(offers(&out), [(1, a1.0)], "back after busy_rest");
    }
}

#[test]
fn rona_after_max_misses_and_reset_on_answer_and_ready() {
    let mut t = one(Strategy::LongestIdle, 1);
    let a1 = t.id("a1");
    t.login("a1");
    t.enqueue(1, "q", 0);
    t.at(20);
    t.at(40);
    assert_eq!(t.state("a1"), AgentState::Ringing, "two misses of three");
    t.answer(1, "a1");
    t.hangup("a1");
    t.enqueue(2, "q", 0);
    t.at(60);
    let out = t.at(100);
    assert_eq!(ends(&out).len(), 2);
    assert_eq!(
        t.state("a1"),
        AgentState::Ringing,
        "the answer reset the count"
    );
    t.ev(AcdEvent::Ready { agent: a1 });
    t.at(120);
    t.at(140);
    assert_eq!(t.state("a1"), AgentState::Ringing, "ready reset the count");
    let out = t.at(160);
    assert_eq!(ends(&out), [(2, a1.0, OfferOutcome::NoAnswer)]);
    assert_eq!(t.state("a1"), not_ready("no answer"));
}

#[test]
fn stale_answers_and_failures() {
    let mut t = one(Strategy::LongestIdle, 1);
    let a1 = t.id("a1");
    t.login("a1");
    t.enqueue(1, "q", 0);
    t.at(20);
    let out = t.answer(1, "a1");
    assert_eq!(
        t.state("a1"),
        AgentState::OnCall,
        "re-offered after the miss, then answered"
    );
    assert!(ends(&out).is_empty());
    let out = t.answer(7, "a1");
    assert_eq!(ends(&out), [(7, a1.0, OfferOutcome::Cancelled)]);
    let out = t.ev(AcdEvent::OfferFailed {
        caller: CallerId(1),
        agent: a1,
        why: OfferFailure::Busy,
    });
    assert!(out.is_empty());
}

#[test]
fn agents_ringing_or_talking_are_never_offered() {
    let mut t = one(Strategy::LongestIdle, 2);
    t.login("a1");
    t.login("a2");
    t.enqueue(1, "q", 0);
    t.enqueue(2, "q", 0);
    let c = t.offer_of("a1").unwrap();
    t.answer(c, "a1");
    // a1 talks, a2 rings: the next callers wait.
    assert!(offers(&t.enqueue(3, "q", 100)).is_empty());
    assert!(offers(&t.enqueue(4, "q", 0)).is_empty());
    assert_eq!(t.acd.waiting("q"), 3);
    t.at(10);
    // a2's miss at 20 s: caller 2 goes back; a2, the only free agent, gets the best caller.
    let out = t.at(20);
    assert_eq!(ends(&out).len(), 1);
    assert_eq!(t.offer_of("a2"), Some(3), "priority 100 first");
}

#[test]
fn a_missed_caller_goes_to_another_free_agent_first() {
    let mut t = one(Strategy::LongestIdle, 2);
    t.login("a1");
    t.enqueue(1, "q", 0);
    t.at(5);
    t.login("a2");
    assert_eq!(t.offer_of("a2"), None, "nobody else waits");
    let out = t.at(20);
    assert_eq!(offers(&out), [(1, t.id("a2").0)]);
    assert_eq!(t.state("a1"), AgentState::Available);
}

#[test]
fn attended_transfer_hands_the_conversation_over() {
    let mut t = one(Strategy::LongestIdle, 3);
    for a in ["a1", "a2", "a3"] {
        t.login(a);
    }
    t.enqueue(1, "q", 0);
    let c = t
        .offer_of("a1")
        .or(t.offer_of("a2"))
        .or(t.offer_of("a3"))
        .unwrap();
    let first = ["a1", "a2", "a3"]
        .into_iter()
        .find(|a| t.offer_of(a) == Some(c))
        .unwrap();
    let other = if first == "a1" { "a2" } else { "a1" };
    t.answer(c, first);
    let (from, to) = (t.id(first), t.id(other));
    // The colleague is on the phone with the first agent: out of the pool meanwhile.
    t.ev(AcdEvent::PhoneBusy {
        agent: to,
        busy: true,
    });
    t.ev(AcdEvent::NotReady {
        agent: to,
        reason: "meeting".into(),
    });
    assert!(t.acd.can_take_over(from, to, None));
    assert!(
        !t.acd.can_take_over(to, from, None),
        "the colleague has no caller"
    );
    assert!(!t.acd.can_take_over(from, from, None));
    t.at(5);
    let out = t.ev(AcdEvent::TakeOver {
        from,
        to,
        consultation: None,
    });
    assert_eq!(t.state(other), AgentState::OnCall);
    assert_eq!(t.state(first), AgentState::WrapUp);
    assert_eq!(reasons(&out), ["transfer", "transferred"]);
    // A second take-over of the same conversation by its old agent is refused.
    assert!(!t.acd.can_take_over(from, to, None));
    // The new agent's call ends in their own wrap-up, then they return to not ready.
    t.hangup(other);
    assert_eq!(t.state(other), AgentState::WrapUp);
    t.at(30);
    assert_eq!(t.state(other), not_ready("meeting"));
    assert_eq!(t.state(first), AgentState::Available);
    // Nobody who is logged out can take a call over.
    let spare = ["a1", "a2", "a3"]
        .into_iter()
        .find(|a| *a != first && *a != other)
        .unwrap();
    let spare_id = t.id(spare);
    t.ev(AcdEvent::Logout { agent: spare_id });
    t.enqueue(2, "q", 0);
    let c2 = t.offer_of(first).unwrap();
    t.answer(c2, first);
    assert!(!t.acd.can_take_over(from, spare_id, None));
    t.ev(AcdEvent::TakeOver {
        from,
        to: spare_id,
        consultation: None,
    });
    assert_eq!(
        t.state(first),
        AgentState::OnCall,
        "refused: nothing changed"
    );
}

#[test]
fn a_consultation_answered_from_a_queue_becomes_the_callers_conversation() {
    let mut t = one(Strategy::LongestIdle, 2);
    t.login("a1");
    t.enqueue(1, "q", 0);
    t.answer(1, "a1");
    // a1 consults the queue: the consultation waits as a caller of its own, first in line.
    t.enqueue(2, "q", 0);
    t.enqueue(3, "q", 100);
    t.at(3);
    t.login("a2");
    assert_eq!(t.offer_of("a2"), Some(3), "the consultation goes first");
    t.answer(3, "a2");
    let (a1, a2) = (t.id("a1"), t.id("a2"));
    assert!(!t.acd.can_take_over(a1, a2, None), "a2 talks already");
    assert!(
        !t.acd.can_take_over(a1, a2, Some(CallerId(2))),
        "not with that caller"
    );
    assert!(
        !t.acd.can_take_over(a1, a1, Some(CallerId(1))),
        "the caller is no consultation"
    );
    assert!(t.acd.can_take_over(a1, a2, Some(CallerId(3))));
    t.at(10);
    let out = t.ev(AcdEvent::TakeOver {
        from: a1,
        to: a2,
        consultation: Some(CallerId(3)),
    });
    assert_eq!(reasons(&out), ["transfer", "transferred"]);
    assert_eq!(t.acd.talking_to(CallerId(1)), Some(a2));
    assert_eq!(
        t.acd.talking_to(CallerId(3)),
        None,
        "the consultation is gone"
    );
    assert_eq!(t.state("a1"), AgentState::WrapUp);
    assert_eq!(t.state("a2"), AgentState::OnCall);
    // a2's conversation with the caller ends in their wrap-up; the other caller still waits.
    t.hangup("a2");
    assert_eq!(t.state("a2"), AgentState::WrapUp);
    assert_eq!(t.acd.waiting("q"), 1);
}

#[test]
fn a_consultation_that_leads_nowhere_frees_its_agent_at_once() {
    let mut t = one(Strategy::LongestIdle, 2);
    t.login("a1");
    t.login("a2");
    t.enqueue(1, "q", 0);
    let talker = if t.offer_of("a1") == Some(1) {
        "a1"
    } else {
        "a2"
    };
    let other = if talker == "a1" { "a2" } else { "a1" };
    t.answer(1, talker);
    t.enqueue(2, "q", 100);
    assert_eq!(t.offer_of(other), Some(2));
    t.answer(2, other);
    t.at(40);
    t.ev(AcdEvent::NotReady {
        agent: t.id(other),
        reason: "meeting".into(),
    });
    let out = t.ev(AcdEvent::ConsultationOver {
        caller: CallerId(2),
    });
    assert_eq!(reasons(&out), ["not ready"], "no wrap-up on the way");
    assert_eq!(t.state(other), not_ready("meeting"));
    assert_eq!(t.acd.talking_to(CallerId(2)), None);
    // Still waiting: it simply leaves the queue, its offer cancelled.
    t.ev(AcdEvent::Ready { agent: t.id(other) });
    t.enqueue(3, "q", 100);
    assert_eq!(t.offer_of(other), Some(3));
    let out = t.ev(AcdEvent::ConsultationOver {
        caller: CallerId(3),
    });
    assert!(matches!(out[0], AcdAction::EndOffer { .. }), "{out:?}");
    assert_eq!(t.state(other), AgentState::Available);
    assert_eq!(t.acd.waiting("q"), 0);
    // A logout asked for during an answered consultation applies as it ends.
    t.enqueue(4, "q", 100);
    t.answer(4, other);
    t.ev(AcdEvent::Logout { agent: t.id(other) });
    assert_eq!(t.state(other), AgentState::OnCall);
    t.ev(AcdEvent::ConsultationOver {
        caller: CallerId(4),
    });
    assert_eq!(t.state(other), AgentState::LoggedOut);
}
