//! The invariants the property test checks after every step (and debug builds after every
//! input on small set-ups).

use std::collections::HashSet;

use super::{Acd, TimerKind};
use crate::acd::model::Strategy;
use crate::acd::{AgentId, AgentState};

impl Acd {
    /// Checks that:
    /// - an agent is Ringing exactly when they have one live offer, and that offer's caller
    ///   waits and lists the agent among its offers (so nobody rings for two callers);
    /// - an agent is OnCall/OnHold exactly when they talk to one caller, who is no longer
    ///   waiting (no caller both waiting and talking);
    /// - a waiting caller is in exactly its own queue's set, under its own key, and only a
    ///   ring-all caller has more than one offer;
    /// - the pool (free sets) holds exactly the free agents, under their queues;
    /// - every Ringing, WrapUp and resting agent and every waiting caller has its timer (no
    ///   state that sticks);
    /// - no stall: no free agent that is a member of the queue is eligible (skills at the
    ///   caller's current widening step, sticky agent) for an offerable caller (waiting with
    ///   no offer ringing, or any waiting caller of a ring-all queue who is not already
    ///   ringing this agent).
    pub fn check_invariants(&self) -> Result<(), String> {
        let mut live = HashSet::new();
        for std::cmp::Reverse((_, _, kind)) in &self.timers {
            live.insert(*kind);
        }
        let has_timer = |k: TimerKind| live.contains(&k);

        for (i, a) in self.agents.iter().enumerate() {
            let id = AgentId(i as u32);
            let ringing = a.state == AgentState::Ringing;
            if ringing != a.ringing.is_some() {
                return Err(format!(
                    "{id:?} is {:?} with offer {:?}",
                    a.state, a.ringing
                ));
            }
            if let Some(c) = a.ringing {
                let Some(caller) = self.callers.get(&c) else {
                    return Err(format!("{id:?} rings for {c:?} who is not waiting"));
                };
                if caller.offers.iter().filter(|&&o| o == id).count() != 1 {
                    return Err(format!(
                        "{id:?} rings for {c:?} who lists {:?}",
                        caller.offers
                    ));
                }
                let token = a.ring_token;
                if !has_timer(TimerKind::Ring { agent: id, token }) {
                    return Err(format!("{id:?} rings with no ring timer"));
                }
            }
            let talking = matches!(a.state, AgentState::OnCall | AgentState::OnHold);
            if talking != a.talking.is_some() {
                return Err(format!(
                    "{id:?} is {:?} talking to {:?}",
                    a.state, a.talking
                ));
            }
            if let Some(c) = a.talking
                && (self.talking.get(&c) != Some(&id) || self.callers.contains_key(&c))
            {
                return Err(format!(
                    "{id:?} talks to {c:?}, who is waiting or elsewhere"
                ));
            }
            if a.state == AgentState::WrapUp {
                let token = a.wrap_token;
                if !has_timer(TimerKind::WrapUp { agent: id, token }) {
                    return Err(format!("{id:?} in wrap-up with no timer"));
                }
            }
            if a.resting {
                let token = a.rest_token;
                if !has_timer(TimerKind::Rest { agent: id, token }) {
                    return Err(format!("{id:?} resting with no timer"));
                }
            }
            if a.in_pool != self.is_free(id) {
                return Err(format!(
                    "{id:?} in pool: {}, free: {}",
                    a.in_pool,
                    self.is_free(id)
                ));
            }
            for q in &a.queues {
                let in_set = self.queues[q.0 as usize].free.iter().any(|k| k.2 == id);
                if in_set != a.in_pool {
                    return Err(format!("{id:?} in {q:?}'s free set: {in_set}"));
                }
            }
        }
        for (c, a) in &self.talking {
            if self.agents[a.0 as usize].talking != Some(*c) {
                return Err(format!("{c:?} recorded as talking to {a:?}, who is not"));
            }
        }

        let mut in_queues = 0;
        for (qi, q) in self.queues.iter().enumerate() {
            in_queues += q.all.len();
            for k in &q.all {
                match self.callers.get(&k.2) {
                    Some(c) if c.key == *k && c.queue.0 as usize == qi => {}
                    _ => return Err(format!("queue {qi} holds a stray caller {:?}", k.2)),
                }
            }
            if q.offerable.iter().any(|k| !q.all.contains(k)) {
                return Err(format!("queue {qi}: offerable caller not waiting"));
            }
        }
        if in_queues != self.callers.len() {
            return Err(format!(
                "{} callers, {in_queues} in queues",
                self.callers.len()
            ));
        }
        for (id, c) in &self.callers {
            let q = &self.queues[c.queue.0 as usize];
            let ring_all = q.def.strategy == Strategy::RingAll;
            if !ring_all && c.offers.len() > 1 {
                return Err(format!("{id:?} rings {:?} outside ring-all", c.offers));
            }
            for a in &c.offers {
                if self.agents[a.0 as usize].ringing != Some(*id) {
                    return Err(format!("{id:?} lists {a:?}, who does not ring for them"));
                }
            }
            let offerable = c.offers.is_empty() || ring_all;
            if q.offerable.contains(&c.key) != offerable {
                return Err(format!("{id:?} offerable set wrong ({:?})", c.offers));
            }
            let token = c.token;
            if !has_timer(TimerKind::MaxWait { caller: *id, token }) {
                return Err(format!("{id:?} waits with no max-wait timer"));
            }
            if !offerable {
                continue;
            }
            for &a in &q.members {
                if self.agents[a.0 as usize].in_pool && self.eligible(a, c) {
                    return Err(format!("stall: {a:?} is free and eligible for {id:?}"));
                }
            }
        }
        Ok(())
    }
}
