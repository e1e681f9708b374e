//! Installing a configuration: ids stay, definitions, memberships and indexes are rebuilt.

use std::collections::{BTreeSet, VecDeque};
use std::sync::Arc;
use std::time::Instant;

use super::select::level;
use super::{Acd, Agent, Queue};
use crate::acd::model::{AcdConfig, QueueDef, Strategy};
use crate::acd::{AgentId, AgentState, CallerId, OfferOutcome, QueueId, QueueLeave};

impl Acd {
    fn intern(&mut self, skill: &str) -> u32 {
        let next = self.skill_ids.len() as u32;
        *self.skill_ids.entry(skill.to_string()).or_insert(next)
    }

    /// The structural part of a reload; changes no agent or caller state.
    pub(super) fn install(&mut self, config: Arc<AcdConfig>) {
        let mut seen = vec![false; self.agents.len()];
        for def in &config.agents {
            let skills = def
                .skills
                .iter()
                .map(|s| (self.intern(&s.name), s.level))
                .collect();
            match self.agent_ids.get(&def.id).copied() {
                Some(id) => {
                    let a = &mut self.agents[id.0 as usize];
                    a.def = def.clone();
                    a.skills = skills;
                    a.removed = false;
                    seen[id.0 as usize] = true;
                }
                None => {
                    let id = AgentId(self.agents.len() as u32);
                    self.agent_ids.insert(def.id.clone(), id);
                    self.agents.push(new_agent(def.clone(), skills));
                }
            }
        }
        for (i, seen) in seen.into_iter().enumerate() {
            self.agents[i].removed |= !seen;
        }

        let mut seen = vec![false; self.queues.len()];
        for def in &config.queues {
            let needs = def
                .skills
                .iter()
                .map(|n| (self.intern(&n.skill), n.min_level))
                .collect();
            match self.queue_ids.get(&def.name).copied() {
                Some(id) => {
                    let q = &mut self.queues[id.0 as usize];
                    q.def = def.clone();
                    q.needs = needs;
                    q.removed = false;
                    seen[id.0 as usize] = true;
                }
                None => {
                    let id = QueueId(self.queues.len() as u32);
                    self.queue_ids.insert(def.name.clone(), id);
                    self.queues.push(new_queue(def.clone(), needs));
                }
            }
        }
        for (i, seen) in seen.into_iter().enumerate() {
            self.queues[i].removed |= !seen;
        }
        self.config = config;

        // Strategies and memberships may have changed: rebuild every index from scratch.
        for a in &mut self.agents {
            a.in_pool = false;
            a.pool_keys.clear();
            a.queues.clear();
        }
        for (qi, q) in self.queues.iter_mut().enumerate() {
            q.free.clear();
            q.members.clear();
            q.logged_in = 0;
            if q.removed {
                continue;
            }
            for (ai, a) in self.agents.iter_mut().enumerate() {
                if !a.removed && member(&q.def, &q.needs, a) {
                    q.members.push(AgentId(ai as u32));
                    a.queues.push(QueueId(qi as u32));
                    q.logged_in += u32::from(a.state != AgentState::LoggedOut);
                }
            }
        }
        for c in self.callers.values_mut() {
            let q = &mut self.queues[c.queue.0 as usize];
            if c.offers.is_empty() || q.def.strategy == Strategy::RingAll {
                q.offerable.insert(c.key);
            } else {
                q.offerable.remove(&c.key);
            }
            if c.sticky.is_some_and(|s| !q.members.contains(&s)) {
                c.sticky = None;
            }
        }
        for a in 0..self.agents.len() {
            self.pool_sync(AgentId(a as u32));
        }
    }

    pub(super) fn reload_at(&mut self, now: Instant, config: Arc<AcdConfig>) {
        self.install(config);
        for q in 0..self.queues.len() {
            if self.queues[q].removed {
                let callers: Vec<CallerId> = self.queues[q].all.iter().map(|k| k.2).collect();
                for c in callers {
                    self.remove_caller(now, c, Some(QueueLeave::NoAgents));
                }
            }
        }
        for i in 0..self.agents.len() {
            let agent = AgentId(i as u32);
            let a = &self.agents[i];
            if !a.removed {
                continue;
            }
            // A removed agent finishes a call in progress; anything else ends now.
            match a.state {
                AgentState::LoggedOut | AgentState::OnCall | AgentState::OnHold => {}
                AgentState::WrapUp => self.finish_wrap(now, agent, "removed"),
                AgentState::Ringing => {
                    if let Some(c) = a.ringing {
                        self.end_offer(c, agent, OfferOutcome::Cancelled);
                    }
                    self.set_state(now, agent, AgentState::LoggedOut, "removed");
                }
                AgentState::Available | AgentState::NotReady { .. } => {
                    self.set_state(now, agent, AgentState::LoggedOut, "removed")
                }
            }
        }
        for q in 0..self.queues.len() {
            if !self.queues[q].removed {
                self.refuse_and_leave(now, QueueId(q as u32));
            }
        }
        let offerable: Vec<CallerId> = self
            .queues
            .iter()
            .flat_map(|q| q.offerable.iter().map(|k| k.2))
            .collect();
        self.dirty_callers.extend(offerable);
    }
}

/// Listed (by id or team, or everyone when the queue lists nobody) and skilled enough for
/// the widest the queue ever gets; agents failing this can never take its callers.
pub(super) fn member(def: &QueueDef, needs: &[(u32, u8)], a: &Agent) -> bool {
    let listed = (def.agents.is_empty() && def.teams.is_empty())
        || def.agents.contains(&a.def.id)
        || a.def.team.as_ref().is_some_and(|t| def.teams.contains(t));
    let floor = def
        .widening
        .iter()
        .map(|w| w.min_level)
        .min()
        .unwrap_or(u8::MAX);
    listed
        && needs
            .iter()
            .all(|&(s, min)| level(&a.skills, s) >= min.min(floor))
}

fn new_agent(def: crate::acd::AgentDef, skills: Vec<(u32, u8)>) -> Agent {
    Agent {
        def,
        removed: false,
        skills,
        queues: Vec::new(),
        state: AgentState::LoggedOut,
        pending: None,
        reachable: true,
        phone_busy: false,
        resting: false,
        rest_token: 0,
        misses: 0,
        answered: 0,
        idle_since: None,
        ringing: None,
        ring_token: 0,
        talking: None,
        call_queue: None,
        call_start: None,
        wrap_token: 0,
        in_pool: false,
        pool_keys: Vec::new(),
    }
}

fn new_queue(def: QueueDef, needs: Vec<(u32, u8)>) -> Queue {
    Queue {
        def,
        removed: false,
        needs,
        members: Vec::new(),
        all: BTreeSet::new(),
        offerable: BTreeSet::new(),
        free: BTreeSet::new(),
        rr_last: None,
        logged_in: 0,
        handle_times: VecDeque::new(),
    }
}
