//! Random event orders against the invariants (peer ACDs lost agents and callers to orders
//! nobody tried): after every step `check_invariants` holds and the emitted actions agree
//! with the state (offers opened and closed once, agent states as announced, positions).

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use proptest::prelude::*;

use super::tests::{agent, queue};
use crate::acd::model::{AcdConfig, Announcements, EmptyRule, SkillNeed, Strategy as By, Widening};
use crate::acd::{Acd, AcdAction, AcdEvent, AgentId, AgentState, CallerId, OfferFailure};

const AGENTS: usize = 4;
const QUEUES: usize = 5;

fn config(drop_agent: Option<usize>, drop_queue: Option<usize>) -> AcdConfig {
    let s = Duration::from_secs;
    let mut agents = vec![
        agent("a0", &[("en", 5)], None),
        agent("a1", &[("en", 2), ("vip", 1)], None),
        agent("a2", &[("en", 5), ("fr", 3)], Some("t1")),
        agent("a3", &[("fr", 5)], Some("t1")),
    ];
    agents[3].wrap_up = Some(s(2));
    let mut q0 = queue("q0", By::RingAll);
    q0.ring_timeout = s(10);
    q0.wrap_up = s(5);
    q0.max_misses = 2;
    q0.busy_rest = s(7);
    q0.announcements = Some(Announcements {
        every: s(15),
        position: true,
        wait: true,
    });
    let mut q1 = queue("q1", By::LongestIdle);
    q1.skills = vec![SkillNeed {
        skill: "en".into(),
        min_level: 4,
    }];
    q1.widening = vec![Widening {
        after: s(20),
        min_level: 2,
    }];
    q1.weight = 2;
    q1.sticky_wait = s(15);
    q1.max_length = Some(3);
    q1.announcements = q0.announcements.clone();
    let mut q2 = queue("q2", By::RoundRobin);
    q2.teams = vec!["t1".into()];
    q2.when_empty = EmptyRule::RefuseAndLeave;
    q2.max_wait = s(90);
    q2.busy_rest = Duration::ZERO;
    let mut q3 = queue("q3", By::FewestCalls);
    q3.when_empty = EmptyRule::RefuseNew;
    q3.agents = vec!["a0".into(), "a1".into()];
    q3.wrap_up = Duration::ZERO;
    let mut q4 = queue("q4", By::SkillWeighted);
    q4.skills = vec![SkillNeed {
        skill: "fr".into(),
        min_level: 1,
    }];
    q4.max_misses = 0;
    let mut queues = vec![q0, q1, q2, q3, q4];
    if let Some(a) = drop_agent {
        agents.remove(a);
    }
    if let Some(q) = drop_queue {
        queues.remove(q);
    }
    AcdConfig {
        agents,
        queues,
        reasons: Vec::new(),
        dispositions: Vec::new(),
    }
}

#[derive(Debug, Clone)]
enum Op {
    Enqueue {
        caller: u64,
        queue: usize,
        priority: u8,
        extra: bool,
        sticky: Option<usize>,
    },
    Gone(u64),
    /// A caller ends as a consultation that led nowhere (see `AcdEvent::ConsultationOver`).
    ConsultationOver(u64),
    AnswerCurrent(usize),
    AnswerStale(u64, usize),
    FailCurrent(usize, OfferFailure),
    FailStale(u64, usize, OfferFailure),
    Agent(usize, u8),
    Reachable(usize, bool),
    Busy(usize, bool),
    /// From, to, and a caller `to` may talk to as the consultation (see `AcdEvent::TakeOver`).
    TakeOver(usize, usize, Option<u64>),
    Advance(u64),
    NextTimer,
    Reload(Option<usize>, Option<usize>),
}

fn failure() -> impl Strategy<Value = OfferFailure> {
    prop_oneof![
        Just(OfferFailure::Busy),
        Just(OfferFailure::Declined),
        Just(OfferFailure::Redirected),
        Just(OfferFailure::Unreachable),
    ]
}

fn op() -> impl Strategy<Value = Op> {
    let a = 0..AGENTS;
    let c = 0..8u64;
    prop_oneof![
        4 => (c.clone(), 0..QUEUES + 1, prop_oneof![Just(0u8), Just(50), Just(100)], any::<bool>(),
              proptest::option::of(0..AGENTS))
            .prop_map(|(caller, queue, priority, extra, sticky)| Op::Enqueue {
                caller, queue, priority, extra, sticky
            }),
        1 => c.clone().prop_map(Op::Gone),
        1 => c.clone().prop_map(Op::ConsultationOver),
        5 => a.clone().prop_map(Op::AnswerCurrent),
        1 => (c.clone(), a.clone()).prop_map(|(c, a)| Op::AnswerStale(c, a)),
        1 => (a.clone(), failure()).prop_map(|(a, f)| Op::FailCurrent(a, f)),
        1 => (c, a.clone(), failure()).prop_map(|(c, a, f)| Op::FailStale(c, a, f)),
        6 => (a.clone(), 0..8u8).prop_map(|(a, k)| Op::Agent(a, k)),
        1 => (a.clone(), any::<bool>()).prop_map(|(a, r)| Op::Reachable(a, r)),
        1 => (a.clone(), any::<bool>()).prop_map(|(a, b)| Op::Busy(a, b)),
        2 => (a.clone(), a, proptest::option::of(0..8u64))
            .prop_map(|(a, b, c)| Op::TakeOver(a, b, c)),
        3 => (0..30u64).prop_map(Op::Advance),
        3 => Just(Op::NextTimer),
        1 => (proptest::option::of(0..AGENTS), proptest::option::of(0..QUEUES))
            .prop_map(|(a, q)| Op::Reload(a, q)),
    ]
}

struct Harness {
    acd: Acd,
    now: Instant,
    /// Offers emitted and not yet ended or answered.
    open: HashSet<(CallerId, AgentId)>,
    /// The last state announced per agent.
    states: HashMap<AgentId, AgentState>,
    positions: HashMap<CallerId, u32>,
}

impl Harness {
    fn agent(&self, i: usize) -> AgentId {
        self.acd
            .agent_id(&format!("a{i}"))
            .expect("agents are never forgotten")
    }

    fn step(&mut self, op: &Op) -> Result<(), String> {
        let now = self.now;
        let mut stale_answer = None;
        let mut answered = None;
        match *op {
            Op::Enqueue {
                caller,
                queue,
                priority,
                extra,
                sticky,
            } => {
                self.positions.remove(&CallerId(caller));
                let event = AcdEvent::Enqueue {
                    caller: CallerId(caller),
                    queue: format!("q{queue}"),
                    priority,
                    skills: if extra { vec!["vip".into()] } else { vec![] },
                    sticky: sticky.map(|a| format!("a{a}")),
                    sticky_for: None,
                    max_wait: Duration::from_secs(120),
                };
                self.acd.handle(now, event);
            }
            Op::Gone(c) => self.acd.handle(
                now,
                AcdEvent::CallerGone {
                    caller: CallerId(c),
                },
            ),
            Op::ConsultationOver(c) => self.acd.handle(
                now,
                AcdEvent::ConsultationOver {
                    caller: CallerId(c),
                },
            ),
            Op::AnswerCurrent(a) => {
                let agent = self.agent(a);
                if let Some(caller) = self.acd.offered_to(agent) {
                    answered = Some((caller, agent));
                    self.acd
                        .handle(now, AcdEvent::OfferAnswered { caller, agent });
                }
            }
            Op::AnswerStale(c, a) => {
                let (caller, agent) = (CallerId(c), self.agent(a));
                if self.acd.offered_to(agent) == Some(caller) {
                    answered = Some((caller, agent));
                } else {
                    stale_answer = Some((caller, agent));
                }
                self.acd
                    .handle(now, AcdEvent::OfferAnswered { caller, agent });
            }
            Op::FailCurrent(a, why) => {
                let agent = self.agent(a);
                if let Some(caller) = self.acd.offered_to(agent) {
                    self.acd
                        .handle(now, AcdEvent::OfferFailed { caller, agent, why });
                }
            }
            Op::FailStale(c, a, why) => {
                let (caller, agent) = (CallerId(c), self.agent(a));
                self.acd
                    .handle(now, AcdEvent::OfferFailed { caller, agent, why });
            }
            Op::Agent(a, k) => {
                let agent = self.agent(a);
                let event = match k {
                    0 => AcdEvent::Login { agent },
                    1 => AcdEvent::Logout { agent },
                    2 => AcdEvent::Ready { agent },
                    3 => AcdEvent::NotReady {
                        agent,
                        reason: "break".into(),
                    },
                    4 => AcdEvent::ConversationEnded { agent },
                    5 => AcdEvent::Hold { agent },
                    6 => AcdEvent::Resume { agent },
                    _ => AcdEvent::EndWrapUp { agent },
                };
                self.acd.handle(now, event);
            }
            Op::Reachable(a, reachable) => {
                let agent = self.agent(a);
                self.acd
                    .handle(now, AcdEvent::Reachable { agent, reachable });
            }
            Op::Busy(a, busy) => {
                let agent = self.agent(a);
                self.acd.handle(now, AcdEvent::PhoneBusy { agent, busy });
            }
            Op::TakeOver(from, to, consultation) => {
                let (from, to) = (self.agent(from), self.agent(to));
                let consultation = consultation.map(CallerId);
                self.acd.handle(
                    now,
                    AcdEvent::TakeOver {
                        from,
                        to,
                        consultation,
                    },
                );
            }
            Op::Advance(secs) => {
                self.now += Duration::from_secs(secs);
                self.acd.handle_timeout(self.now);
            }
            Op::NextTimer => {
                if let Some(t) = self.acd.poll_timeout() {
                    self.now = self.now.max(t);
                    self.acd.handle_timeout(self.now);
                }
            }
            Op::Reload(a, q) => self.acd.reload(now, Arc::new(config(a, q))),
        }
        self.acd.check_invariants()?;
        self.actions(stale_answer, answered)
    }

    fn actions(
        &mut self,
        stale_answer: Option<(CallerId, AgentId)>,
        answered: Option<(CallerId, AgentId)>,
    ) -> Result<(), String> {
        if let Some(offer) = answered
            && !self.open.remove(&offer)
        {
            return Err(format!("answered {offer:?}, which was never offered"));
        }
        let mut stale_ended = false;
        while let Some(action) = self.acd.poll_action() {
            match action {
                AcdAction::Offer { caller, agent } => {
                    if !self.open.insert((caller, agent)) {
                        return Err(format!("{caller:?} offered twice to {agent:?}"));
                    }
                }
                AcdAction::EndOffer { caller, agent, .. } => {
                    if !self.open.remove(&(caller, agent)) {
                        if stale_answer != Some((caller, agent)) || stale_ended {
                            return Err(format!("EndOffer {caller:?} {agent:?} not open"));
                        }
                        stale_ended = true;
                    }
                }
                AcdAction::Announce {
                    caller, position, ..
                } => {
                    if self.open.iter().any(|&(c, _)| c == caller) {
                        return Err(format!("{caller:?} announced while ringing"));
                    }
                    let last = self.positions.insert(caller, position);
                    if last.is_some_and(|last| position > last) {
                        return Err(format!("{caller:?} position went up to {position}"));
                    }
                }
                AcdAction::AgentChanged { agent, state, .. } => {
                    self.states.insert(agent, state);
                }
                AcdAction::Leave { .. } => {}
            }
        }
        if stale_answer.is_some() && !stale_ended {
            return Err("a stale answer was not hung up".into());
        }
        if let Some((_, agent)) = answered
            && self.acd.agent_state(agent) != Some(&AgentState::OnCall)
        {
            return Err(format!("{agent:?} answered but is not on a call"));
        }
        let ringing: HashSet<(CallerId, AgentId)> = (0..AGENTS)
            .map(|a| self.agent(a))
            .filter_map(|a| self.acd.offered_to(a).map(|c| (c, a)))
            .collect();
        if ringing != self.open {
            return Err(format!("open offers {:?}, ringing {ringing:?}", self.open));
        }
        for a in 0..AGENTS {
            let agent = self.agent(a);
            let said = self.states.get(&agent).unwrap_or(&AgentState::LoggedOut);
            if self.acd.agent_state(agent) != Some(said) {
                return Err(format!(
                    "{agent:?} is {:?}, last said {said:?}",
                    self.acd.agent_state(agent)
                ));
            }
        }
        Ok(())
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 400, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn random_event_orders_keep_the_invariants(ops in proptest::collection::vec(op(), 1..80)) {
        let mut h = Harness {
            acd: Acd::new(Arc::new(config(None, None))),
            now: Instant::now(),
            open: HashSet::new(),
            states: HashMap::new(),
            positions: HashMap::new(),
        };
        // Most runs need agents logged in to get anywhere.
        for a in 0..AGENTS {
            let agent = h.agent(a);
            h.acd.handle(h.now, AcdEvent::Login { agent });
        }
        h.actions(None, None).map_err(TestCaseError::fail)?;
        for (i, op) in ops.iter().enumerate() {
            h.step(op).map_err(|e| TestCaseError::fail(format!("step {i} {op:?}: {e}")))?;
        }
    }
}
