//! Who rings for whom: eligibility, the strategies' orders and the cross-queue rule.

use std::cmp::Reverse;
use std::time::Instant;

use super::{Acd, Caller, FreeKey, TimerKind};
use crate::acd::model::Strategy;
use crate::acd::{AcdAction, AgentId, AgentState, CallerId, QueueId};

impl Acd {
    /// The agent's place in the queue's free set: lower first.
    pub(super) fn free_key(&self, q: QueueId, agent: AgentId) -> FreeKey {
        let a = &self.agents[agent.0 as usize];
        let queue = &self.queues[q.0 as usize];
        match queue.def.strategy {
            Strategy::LongestIdle => (0, a.idle_since, agent),
            Strategy::FewestCalls => (u64::from(a.answered), a.idle_since, agent),
            Strategy::SkillWeighted => {
                let score: u64 = queue
                    .needs
                    .iter()
                    .map(|&(s, _)| u64::from(level(&a.skills, s)))
                    .sum();
                (u64::MAX - score, a.idle_since, agent)
            }
            // Round robin walks by id from the last one offered; ring-all takes them all.
            Strategy::RoundRobin | Strategy::RingAll => (0, None, agent),
        }
    }

    /// The skills part of eligibility: the queue's needs at the caller's widened minimum,
    /// and the caller's extra skills at level 1 or better.
    pub(super) fn skills_fit(&self, agent: AgentId, c: &Caller) -> bool {
        let a = &self.agents[agent.0 as usize];
        let q = &self.queues[c.queue.0 as usize];
        let cap = c
            .widen
            .checked_sub(1)
            .and_then(|i| q.def.widening.get(i))
            .map_or(u8::MAX, |w| w.min_level);
        q.needs
            .iter()
            .all(|&(s, min)| level(&a.skills, s) >= min.min(cap))
            && c.extra.iter().all(|&s| level(&a.skills, s) >= 1)
    }

    /// May this (free, member) agent be offered this caller now?
    pub(super) fn eligible(&self, agent: AgentId, c: &Caller) -> bool {
        c.sticky.is_none_or(|s| s == agent) && self.skills_fit(agent, c)
    }

    /// A caller who may be offered: to the best free agent by the queue's strategy, or to
    /// every eligible free agent in a ring-all queue.
    pub(super) fn dispatch_caller(&mut self, now: Instant, caller: CallerId) {
        let Some(c) = self.callers.get_mut(&caller) else {
            return;
        };
        let skip = c.skip.take();
        let c = &self.callers[&caller];
        let q = c.queue;
        let queue = &self.queues[q.0 as usize];
        let ring_all = queue.def.strategy == Strategy::RingAll;
        if !ring_all && !c.offers.is_empty() {
            return;
        }
        if let Some(s) = c.sticky {
            let ok = self.agents[s.0 as usize].in_pool
                && self.agents[s.0 as usize].queues.contains(&q)
                && self.eligible(s, c);
            if ok {
                self.offer(now, caller, s);
            }
            return;
        }
        if ring_all {
            let agents: Vec<AgentId> = queue
                .free
                .iter()
                .map(|k| k.2)
                .filter(|&a| self.eligible(a, c))
                .collect();
            for a in agents {
                self.offer(now, caller, a);
            }
            return;
        }
        let (chosen, fallback) = {
            let next = |last: AgentId| (0, None, AgentId(last.0.saturating_add(1)));
            let order: Box<dyn Iterator<Item = &FreeKey>> =
                match (queue.def.strategy, queue.rr_last) {
                    (Strategy::RoundRobin, Some(last)) => Box::new(
                        queue
                            .free
                            .range(next(last)..)
                            .chain(queue.free.range(..next(last))),
                    ),
                    _ => Box::new(queue.free.iter()),
                };
            let mut fallback = None;
            let mut chosen = None;
            for &(_, _, a) in order {
                if !self.eligible(a, c) {
                    continue;
                }
                if Some(a) == skip {
                    fallback = Some(a);
                    continue;
                }
                chosen = Some(a);
                break;
            }
            (chosen, fallback)
        };
        if let Some(a) = chosen.or(fallback) {
            self.offer(now, caller, a);
        }
    }

    /// A free agent: the best caller among all their queues by the fairness rule (module
    /// doc). Each queue's offerable set is in (priority, arrival, id) order, so the first
    /// caller this agent can take is that queue's best.
    pub(super) fn dispatch_agent(&mut self, now: Instant, agent: AgentId) {
        if !self.agents[agent.0 as usize].in_pool {
            return;
        }
        type Rank = (Reverse<u8>, Reverse<u128>, Instant, CallerId);
        let mut best: Option<Rank> = None;
        for &q in &self.agents[agent.0 as usize].queues {
            let queue = &self.queues[q.0 as usize];
            let found = queue.offerable.iter().find(|k| {
                self.callers
                    .get(&k.2)
                    .is_some_and(|c| !c.offers.contains(&agent) && self.eligible(agent, c))
            });
            if let Some(&(prio, arrival, caller)) = found {
                let wait = now.saturating_duration_since(arrival).as_nanos();
                let rank = (
                    prio,
                    Reverse(wait * u128::from(queue.def.weight)),
                    arrival,
                    caller,
                );
                if best.is_none_or(|b| rank < b) {
                    best = Some(rank);
                }
            }
        }
        let Some((_, _, _, caller)) = best else {
            return;
        };
        if self.callers[&caller].skip == Some(agent) {
            // The caller this agent just missed: another free agent first, if there is one
            // (clears `skip`); then this agent looks again, once.
            self.dispatch_caller(now, caller);
            self.dispatch_agent(now, agent);
        } else {
            self.offer(now, caller, agent);
        }
    }

    pub(super) fn offer(&mut self, now: Instant, caller: CallerId, agent: AgentId) {
        let token = self.next_serial();
        let Some(c) = self.callers.get_mut(&caller) else {
            return;
        };
        c.offers.push(agent);
        let queue = &mut self.queues[c.queue.0 as usize];
        if queue.def.strategy != Strategy::RingAll {
            queue.offerable.remove(&c.key);
        }
        if queue.def.strategy == Strategy::RoundRobin {
            queue.rr_last = Some(agent);
        }
        let ring = queue.def.ring_timeout.max(super::MIN_RING);
        let a = &mut self.agents[agent.0 as usize];
        a.ringing = Some(caller);
        a.ring_token = token;
        self.actions.push_back(AcdAction::Offer { caller, agent });
        self.set_state(now, agent, AgentState::Ringing, "offer");
        self.schedule(now + ring, TimerKind::Ring { agent, token });
    }
}

/// The agent's level in an interned skill, 0 without it.
pub(super) fn level(skills: &[(u32, u8)], skill: u32) -> u8 {
    skills
        .iter()
        .find(|&&(s, _)| s == skill)
        .map_or(0, |&(_, l)| l)
}
