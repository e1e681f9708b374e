//! Unit tests of queues: join and leave rules, strategies, widening, fairness across
//! queues, sticky agents, announcements and reload.

use std::sync::Arc;
use std::time::Duration;

use super::tests::{S, T, agent, ends, leaves, offers, one, queue, reasons};
use crate::acd::model::{AcdConfig, Announcements, EmptyRule, SkillNeed, Strategy, Widening};
use crate::acd::{
    AcdAction, AcdEvent, AgentId, AgentState, CallerId, OfferFailure, OfferOutcome, QueueLeave,
};

#[test]
fn join_rules_when_empty() {
    let mut qs = vec![
        queue("wait", Strategy::LongestIdle),
        queue("refuse", Strategy::LongestIdle),
        queue("leave", Strategy::LongestIdle),
    ];
    qs[1].when_empty = EmptyRule::RefuseNew;
    qs[2].when_empty = EmptyRule::RefuseAndLeave;
    let mut t = T::new(vec![agent("a1", &[], None)], qs);
    let a1 = t.id("a1");
    assert!(leaves(&t.enqueue(1, "wait", 0)).is_empty());
    assert_eq!(
        leaves(&t.enqueue(2, "refuse", 0)),
        [(2, QueueLeave::NoAgents)]
    );
    assert_eq!(
        leaves(&t.enqueue(3, "leave", 0)),
        [(3, QueueLeave::NoAgents)]
    );
    assert_eq!(
        leaves(&t.enqueue(4, "nowhere", 0)),
        [(4, QueueLeave::NoAgents)]
    );
    t.login("a1");
    t.ev(AcdEvent::NotReady {
        agent: a1,
        reason: "x".into(),
    });
    // Not ready still counts as logged in.
    assert!(leaves(&t.enqueue(5, "refuse", 0)).is_empty());
    assert!(leaves(&t.enqueue(6, "leave", 0)).is_empty());
    let out = t.ev(AcdEvent::Logout { agent: a1 });
    assert_eq!(
        leaves(&out),
        [(6, QueueLeave::NoAgents)],
        "refuse-new callers stay"
    );
    assert_eq!(t.acd.waiting("refuse"), 1);
    assert_eq!(t.acd.waiting("wait"), 1);
}

#[test]
fn max_length_and_max_wait() {
    let mut q = queue("q", Strategy::LongestIdle);
    q.max_length = Some(2);
    q.max_wait = S(100);
    let mut t = T::new(vec![agent("a1", &[], None)], vec![q]);
    t.enqueue(1, "q", 0);
    t.ev(AcdEvent::Enqueue {
        caller: CallerId(2),
        queue: "q".into(),
        priority: 0,
        skills: vec![],
        sticky: None,
        sticky_for: None,
        max_wait: S(30),
    });
    assert_eq!(leaves(&t.enqueue(3, "q", 0)), [(3, QueueLeave::Full)]);
    assert_eq!(leaves(&t.at(29)), []);
    assert_eq!(
        leaves(&t.at(30)),
        [(2, QueueLeave::Timeout)],
        "the node's shorter timeout"
    );
    assert_eq!(t.acd.queue_of(CallerId(1)), Some("q"));
    assert_eq!(
        leaves(&t.at(100)),
        [(1, QueueLeave::Timeout)],
        "the queue's max_wait"
    );
    assert_eq!(t.acd.waiting("q"), 0);
}

#[test]
fn caller_gone_cancels_every_ringing_agent() {
    let mut t = one(Strategy::RingAll, 3);
    for a in ["a1", "a2", "a3"] {
        t.login(a);
    }
    assert_eq!(offers(&t.enqueue(1, "q", 0)).len(), 3);
    let out = t.ev(AcdEvent::CallerGone {
        caller: CallerId(1),
    });
    assert_eq!(ends(&out).len(), 3);
    assert!(ends(&out).iter().all(|e| e.2 == OfferOutcome::Cancelled));
    assert!(leaves(&out).is_empty());
    assert_eq!(t.state("a2"), AgentState::Available);
}

#[test]
fn priority_goes_ahead_of_arrival() {
    let mut t = one(Strategy::LongestIdle, 1);
    let a1 = t.id("a1");
    t.enqueue(1, "q", 0);
    t.at(5);
    t.enqueue(2, "q", 50);
    t.enqueue(3, "q", 50);
    let out = t.login("a1");
    assert_eq!(offers(&out), [(2, a1.0)]);
}

#[test]
fn ring_all_first_answer_wins_and_freed_agents_join() {
    let mut t = one(Strategy::RingAll, 3);
    let (a1, a2, a3) = (t.id("a1"), t.id("a2"), t.id("a3"));
    t.login("a1");
    t.login("a2");
    assert_eq!(offers(&t.enqueue(1, "q", 0)), [(1, a1.0), (1, a2.0)]);
    assert_eq!(
        offers(&t.login("a3")),
        [(1, a3.0)],
        "a freed agent joins the ringing"
    );
    let out = t.answer(1, "a2");
    let mut e = ends(&out);
    e.sort_by_key(|e| e.1);
    assert_eq!(
        e,
        [
            (1, a1.0, OfferOutcome::Cancelled),
            (1, a3.0, OfferOutcome::Cancelled)
        ]
    );
    let out = t.answer(1, "a1");
    assert_eq!(
        ends(&out),
        [(1, a1.0, OfferOutcome::Cancelled)],
        "too late: hang that leg up"
    );
    assert_eq!(t.state("a2"), AgentState::OnCall);
}

#[test]
fn longest_idle_picks_the_agent_free_longest() {
    let mut t = one(Strategy::LongestIdle, 3);
    t.login("a2");
    t.at(1);
    t.login("a3");
    t.at(2);
    t.login("a1");
    t.enqueue(1, "q", 0);
    assert_eq!(t.offer_of("a2"), Some(1));
    t.answer(1, "a2");
    t.hangup("a2");
    t.at(20);
    t.enqueue(2, "q", 0);
    assert_eq!(t.offer_of("a3"), Some(2));
}

#[test]
fn round_robin_continues_after_the_last_offered() {
    let mut t = one(Strategy::RoundRobin, 3);
    for a in ["a1", "a2", "a3"] {
        t.login(a);
    }
    let mut order = Vec::new();
    for c in 1..=4u64 {
        let out = t.enqueue(c, "q", 0);
        let (_, a) = offers(&out)[0];
        order.push(a);
        let agent = AgentId(a);
        t.ev(AcdEvent::OfferAnswered {
            caller: CallerId(c),
            agent,
        });
        t.ev(AcdEvent::ConversationEnded { agent });
        t.ev(AcdEvent::EndWrapUp { agent });
    }
    let ids: Vec<u32> = ["a1", "a2", "a3", "a1"].iter().map(|a| t.id(a).0).collect();
    assert_eq!(order, ids);
}

#[test]
fn fewest_calls_then_longest_idle() {
    let mut t = one(Strategy::FewestCalls, 2);
    t.login("a1");
    t.at(1);
    t.login("a2");
    t.enqueue(1, "q", 0);
    assert_eq!(t.offer_of("a1"), Some(1));
    t.answer(1, "a1");
    t.hangup("a1");
    t.ev(AcdEvent::EndWrapUp { agent: t.id("a1") });
    t.at(50);
    t.enqueue(2, "q", 0);
    assert_eq!(t.offer_of("a2"), Some(2), "a2 has answered none");
}

#[test]
fn skill_weighted_prefers_the_best_level() {
    let mut q = queue("q", Strategy::SkillWeighted);
    q.skills = vec![SkillNeed {
        skill: "en".into(),
        min_level: 1,
    }];
    let agents = vec![
        agent("a1", &[("en", 3)], None),
        agent("a2", &[("en", 9)], None),
        agent("a3", &[("fr", 9)], None),
    ];
    let mut t = T::new(agents, vec![q]);
    for a in ["a1", "a2", "a3"] {
        t.login(a);
    }
    t.enqueue(1, "q", 0);
    assert_eq!(t.offer_of("a2"), Some(1));
    t.enqueue(2, "q", 0);
    assert_eq!(t.offer_of("a1"), Some(2));
    t.enqueue(3, "q", 0);
    assert_eq!(t.offer_of("a3"), None, "lacks the skill");
}

#[test]
fn widening_lowers_the_level_when_it_is_due() {
    let mut q = queue("q", Strategy::LongestIdle);
    q.skills = vec![SkillNeed {
        skill: "en".into(),
        min_level: 5,
    }];
    q.widening = vec![
        Widening {
            after: S(30),
            min_level: 3,
        },
        Widening {
            after: S(60),
            min_level: 1,
        },
    ];
    let agents = vec![
        agent("a1", &[("en", 3)], None),
        agent("a2", &[("en", 1)], None),
    ];
    let mut t = T::new(agents, vec![q]);
    t.login("a2");
    t.login("a1");
    t.enqueue(1, "q", 0);
    assert_eq!(offers(&t.at(29)), []);
    assert_eq!(
        offers(&t.at(30)),
        [(1, t.id("a1").0)],
        "at the time, not on the next event"
    );
    t.ev(AcdEvent::OfferFailed {
        caller: CallerId(1),
        agent: t.id("a1"),
        why: OfferFailure::Declined,
    });
    assert_eq!(offers(&t.at(59)), []);
    assert_eq!(offers(&t.at(60)), [(1, t.id("a2").0)]);
}

#[test]
fn caller_extra_skills_are_needed() {
    let agents = vec![agent("a1", &[], None), agent("a2", &[("vip", 1)], None)];
    let mut t = T::new(agents, vec![queue("q", Strategy::LongestIdle)]);
    t.login("a1");
    t.login("a2");
    t.enqueue_with(1, "q", 0, &["vip"], None);
    assert_eq!(t.offer_of("a2"), Some(1));
    t.enqueue_with(2, "q", 0, &["unknown"], None);
    assert_eq!(t.offer_of("a1"), None);
    t.enqueue(3, "q", 0);
    assert_eq!(
        t.offer_of("a1"),
        Some(3),
        "a skipped caller does not block the next"
    );
}

#[test]
fn fairness_across_queues_by_weighted_wait() {
    let mut heavy = queue("heavy", Strategy::LongestIdle);
    heavy.weight = 4;
    let light = queue("light", Strategy::LongestIdle);
    let mut t = T::new(vec![agent("a1", &[], None)], vec![light, heavy]);
    let a1 = t.id("a1");
    t.enqueue(1, "light", 0);
    t.at(30);
    t.enqueue(2, "heavy", 0);
    t.at(40);
    // light waited 40 × 1, heavy 10 × 4: tie on weighted wait, earliest arrival wins.
    assert_eq!(offers(&t.login("a1")), [(1, a1.0)]);
    t.answer(1, "a1");
    t.enqueue(3, "light", 0);
    t.at(50);
    t.hangup("a1");
    // heavy 20 × 4 = 80 beats light 10 × 1, whatever order the queues are in.
    assert_eq!(offers(&t.at(60)), [(2, a1.0)]);
    t.answer(2, "a1");
    t.enqueue(4, "heavy", 9);
    t.hangup("a1");
    assert_eq!(
        offers(&t.at(70)),
        [(4, a1.0)],
        "priority before weighted wait"
    );
}

#[test]
fn sticky_agent_then_the_whole_queue() {
    let mut q = queue("q", Strategy::LongestIdle);
    q.sticky_wait = S(20);
    let mut t = T::new(
        vec![agent("a1", &[], None), agent("a2", &[], None)],
        vec![q],
    );
    let a1 = t.id("a1");
    t.login("a1");
    t.login("a2");
    t.enqueue(1, "q", 0);
    t.answer(1, "a1");
    t.enqueue_with(2, "q", 0, &[], Some("a1"));
    assert_eq!(t.offer_of("a2"), None, "kept for a1");
    t.hangup("a1");
    let out = t.ev(AcdEvent::EndWrapUp { agent: a1 });
    assert_eq!(offers(&out), [(2, a1.0)]);
    t.ev(AcdEvent::OfferFailed {
        caller: CallerId(2),
        agent: a1,
        why: OfferFailure::Busy,
    });
    assert_eq!(t.offer_of("a2"), None);
    assert_eq!(offers(&t.at(20)), [(2, t.id("a2").0)], "the window ended");
    // The sticky agent logging out releases their callers at once.
    t.answer(2, "a2");
    t.enqueue_with(5, "q", 0, &[], Some("a1"));
    t.ev(AcdEvent::Logout { agent: a1 });
    t.hangup("a2");
    t.ev(AcdEvent::EndWrapUp { agent: t.id("a2") });
    assert_eq!(t.offer_of("a2"), Some(5));
    t.answer(5, "a2");
    t.hangup("a2");
    t.ev(AcdEvent::EndWrapUp { agent: t.id("a2") });
    t.login("a1");
    // A logged-out or unknown sticky agent: straight to the queue.
    t.ev(AcdEvent::Logout { agent: t.id("a2") });
    t.login("a2");
    t.ev(AcdEvent::Logout { agent: a1 });
    t.enqueue_with(3, "q", 0, &[], Some("a1"));
    t.enqueue_with(4, "q", 0, &[], Some("nobody"));
    assert!(t.offer_of("a2").is_some());
}

fn announcing() -> T {
    let mut q = queue("q", Strategy::LongestIdle);
    q.announcements = Some(Announcements {
        every: S(30),
        position: true,
        wait: true,
    });
    T::new(
        vec![agent("a1", &[], None), agent("a2", &[], None)],
        vec![q],
    )
}

fn announced(out: &[AcdAction]) -> Vec<(u64, u32, Option<Duration>)> {
    out.iter()
        .filter_map(|a| match a {
            AcdAction::Announce {
                caller,
                position,
                estimated_wait,
            } => Some((caller.0, *position, *estimated_wait)),
            _ => None,
        })
        .collect()
}

#[test]
fn announced_positions_never_go_up() {
    let mut t = announcing();
    t.enqueue(1, "q", 0);
    t.enqueue(2, "q", 0);
    assert_eq!(
        announced(&t.at(30)),
        [(1, 1, None), (2, 2, None)],
        "nobody logged in"
    );
    t.at(31);
    t.enqueue(3, "q", 90);
    // 1 and 2 are now behind 3 but are never told a higher number.
    assert_eq!(announced(&t.at(60)), [(1, 1, None), (2, 2, None)]);
    assert_eq!(announced(&t.at(61)), [(3, 1, None)]);
    t.ev(AcdEvent::CallerGone {
        caller: CallerId(3),
    });
    assert_eq!(announced(&t.at(90)), [(1, 1, None), (2, 2, None)]);
}

#[test]
fn estimated_wait_from_handle_times_and_agents() {
    let mut t = announcing();
    let a1 = t.id("a1");
    t.login("a1");
    t.enqueue(1, "q", 0);
    t.answer(1, "a1");
    t.at(50);
    t.hangup("a1"); // 50 s talk + 10 s wrap-up
    t.enqueue(2, "q", 0);
    t.enqueue(3, "q", 0);
    t.at(60);
    t.ev(AcdEvent::NotReady {
        agent: a1,
        reason: "x".into(),
    });
    t.login("a2");
    let a2 = t.id("a2");
    t.ev(AcdEvent::Reachable {
        agent: a2,
        reachable: false,
    });
    assert_eq!(t.offer_of("a2"), None);
    let out = t.at(90);
    // 60 s mean handle; a2 counts (logged in, not not-ready), a1 does not.
    assert_eq!(announced(&out), [(2, 1, Some(S(60))), (3, 2, Some(S(120)))]);
}

#[test]
fn nothing_announced_while_ringing() {
    let mut t = announcing();
    t.login("a1");
    t.enqueue(1, "q", 0);
    t.enqueue(2, "q", 0);
    assert_eq!(t.offer_of("a1"), Some(1));
    let out = t.at(30);
    // Caller 1's offer timed out at 20 s and went back to a1 (the only agent).
    assert_eq!(announced(&out).iter().map(|a| a.0).collect::<Vec<_>>(), [2]);
}

#[test]
fn reload_removes_a_queue_with_callers_and_an_agent_in_a_call() {
    let mut t = T::new(
        vec![agent("a1", &[], None), agent("a2", &[], None)],
        vec![
            queue("q", Strategy::LongestIdle),
            queue("r", Strategy::LongestIdle),
        ],
    );
    let (a1, a2) = (t.id("a1"), t.id("a2"));
    t.login("a1");
    t.login("a2");
    t.enqueue(1, "q", 0);
    t.answer(1, "a1");
    t.enqueue(2, "r", 0);
    t.enqueue(3, "r", 0);
    assert_eq!(t.offer_of("a2"), Some(2));
    let config = AcdConfig {
        agents: vec![agent("a2", &[], None), agent("a3", &[], None)],
        queues: vec![queue("q", Strategy::LongestIdle)],
        reasons: Vec::new(),
        dispositions: Vec::new(),
    };
    t.acd.reload(t.now, Arc::new(config));
    let out = t.out();
    assert_eq!(ends(&out), [(2, a2.0, OfferOutcome::Cancelled)]);
    let mut l = leaves(&out);
    l.sort_by_key(|l| l.0);
    assert_eq!(l, [(2, QueueLeave::NoAgents), (3, QueueLeave::NoAgents)]);
    assert_eq!(t.state("a1"), AgentState::OnCall, "finishes the call");
    assert_eq!(t.acd.agent_id("a1"), Some(a1), "ids stay");
    assert!(t.acd.agent_id("a3").is_some());
    let out = t.hangup("a1");
    assert_eq!(
        out.last().map(|a| reasons(std::slice::from_ref(a))),
        Some(vec!["removed".into()])
    );
    assert_eq!(t.state("a1"), AgentState::LoggedOut);
    t.login("a1");
    assert_eq!(
        t.state("a1"),
        AgentState::LoggedOut,
        "a removed agent cannot log in"
    );
    assert_eq!(leaves(&t.enqueue(4, "r", 0)), [(4, QueueLeave::NoAgents)]);
}

#[test]
fn a_sticky_agent_asking_for_not_ready_releases_their_callers() {
    let mut q = queue("q", Strategy::LongestIdle);
    q.sticky_wait = S(60);
    let mut t = T::new(
        vec![
            agent("a1", &[], None),
            agent("a2", &[], None),
            agent("a3", &[], None),
        ],
        vec![q],
    );
    for a in ["a1", "a2", "a3"] {
        t.login(a);
    }
    // a1 talks; a caller kept for a1 waits while a1 may free up...
    t.enqueue(1, "q", 0);
    let first = ["a1", "a2", "a3"]
        .into_iter()
        .find(|a| t.offer_of(a) == Some(1))
        .unwrap();
    t.answer(1, first);
    let sticky_to = first;
    let sticky_id = t.id(sticky_to);
    t.enqueue_with(2, "q", 0, &[], Some(sticky_to));
    assert!(
        ["a1", "a2", "a3"].iter().all(|a| t.offer_of(a) != Some(2)),
        "kept for the agent on the call"
    );
    // ...but their asking for not ready after the call releases the caller at once.
    t.ev(AcdEvent::NotReady {
        agent: sticky_id,
        reason: "lunch".into(),
    });
    assert!(
        ["a1", "a2", "a3"]
            .iter()
            .filter(|a| **a != sticky_to)
            .any(|a| t.offer_of(a) == Some(2)),
        "a not-ready asked for during the call releases them"
    );
}

#[test]
fn a_returning_caller_is_not_kept_for_an_agent_without_a_phone() {
    let mut q = queue("q", Strategy::LongestIdle);
    q.sticky_wait = S(60);
    let mut t = T::new(
        vec![agent("a1", &[], None), agent("a2", &[], None)],
        vec![q],
    );
    let (a1, a2) = (t.id("a1"), t.id("a2"));
    t.login("a1");
    t.login("a2");
    // a1 is on a call, so a caller for a1 waits for them...
    t.enqueue(1, "q", 0);
    let first = if t.offer_of("a1") == Some(1) {
        "a1"
    } else {
        "a2"
    };
    t.answer(1, first);
    let (sticky, other) = if first == "a1" {
        (a1, "a2")
    } else {
        (a2, "a1")
    };
    let sticky_name = first;
    t.enqueue_with(2, "q", 0, &[], Some(sticky_name));
    assert_eq!(t.offer_of(other), None, "kept while the agent may free up");
    // ...until their phone is gone: then to the rest of the queue now, not in 60 s.
    t.ev(AcdEvent::Reachable {
        agent: sticky,
        reachable: false,
    });
    assert_eq!(t.offer_of(other), Some(2));
    // A caller for an agent already without a phone, or not ready, is not kept at all.
    t.answer(2, other);
    t.hangup(other);
    t.ev(AcdEvent::EndWrapUp { agent: t.id(other) });
    t.enqueue_with(3, "q", 0, &[], Some(sticky_name));
    assert_eq!(t.offer_of(other), Some(3));
}
