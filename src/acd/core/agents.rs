//! The agent state machine and the pool: what agents do and what the phone reports.

use std::time::{Duration, Instant};

use tracing::debug;

use super::{Acd, Pending, TimerKind};
use crate::acd::{AcdAction, AgentId, AgentState, CallerId, OfferFailure, OfferOutcome};

impl Acd {
    pub(super) fn agent_mut(&mut self, agent: AgentId) -> Option<&mut super::Agent> {
        let a = self.agents.get_mut(agent.0 as usize);
        if a.is_none() {
            debug!(?agent, "ACD: unknown agent ignored");
        }
        a
    }

    pub(super) fn is_free(&self, agent: AgentId) -> bool {
        let a = &self.agents[agent.0 as usize];
        !a.removed && a.state == AgentState::Available && a.reachable && !a.phone_busy && !a.resting
    }

    /// Every state change goes through here: one `AgentChanged`, the logged-in counts the
    /// join rules read, and the pool.
    pub(super) fn set_state(&mut self, now: Instant, agent: AgentId, state: AgentState, why: &str) {
        let a = &mut self.agents[agent.0 as usize];
        let was_out = a.state == AgentState::LoggedOut;
        let is_out = state == AgentState::LoggedOut;
        a.state = state.clone();
        self.actions.push_back(AcdAction::AgentChanged {
            agent,
            state,
            reason: why.to_string(),
        });
        if was_out != is_out {
            let queues = self.agents[agent.0 as usize].queues.clone();
            for q in queues {
                let queue = &mut self.queues[q.0 as usize];
                if is_out {
                    queue.logged_in = queue.logged_in.saturating_sub(1);
                    if queue.logged_in == 0 {
                        self.refuse_and_leave(now, q);
                    }
                } else {
                    queue.logged_in += 1;
                }
            }
        }
        if is_out
            || matches!(
                self.agents[agent.0 as usize].state,
                AgentState::NotReady { .. }
            )
        {
            self.release_sticky(agent);
        }
        self.pool_sync(agent);
    }

    /// Callers kept for `agent` (sticky) need not wait out their window when the agent will
    /// not take calls soon (logged out, not ready, phone gone): they go to the whole queue
    /// now. Rare enough events for a scan of the waiting callers.
    pub(super) fn release_sticky(&mut self, agent: AgentId) {
        for (&id, c) in self.callers.iter_mut() {
            if c.sticky == Some(agent) {
                c.sticky = None;
                self.dirty_callers.push_back(id);
            }
        }
    }

    /// A pool exit or return that is not an ACD state change, recorded with the state as is.
    pub(super) fn note(&mut self, agent: AgentId, why: &str) {
        let state = self.agents[agent.0 as usize].state.clone();
        if state != AgentState::LoggedOut {
            self.actions.push_back(AcdAction::AgentChanged {
                agent,
                state,
                reason: why.to_string(),
            });
        }
    }

    /// Puts the agent in or takes them out of the free sets of their queues.
    pub(super) fn pool_sync(&mut self, agent: AgentId) {
        let free = self.is_free(agent);
        if free == self.agents[agent.0 as usize].in_pool {
            return;
        }
        if free {
            // The free keys never read `queues`; taking it avoids a clone on the hot path.
            let queues = std::mem::take(&mut self.agents[agent.0 as usize].queues);
            let mut keys = std::mem::take(&mut self.agents[agent.0 as usize].pool_keys);
            keys.clear();
            for &q in &queues {
                let key = self.free_key(q, agent);
                self.queues[q.0 as usize].free.insert(key);
                keys.push((q, key));
            }
            let a = &mut self.agents[agent.0 as usize];
            a.queues = queues;
            a.pool_keys = keys;
            a.in_pool = true;
            self.dirty_agents.push_back(agent);
        } else {
            let a = &mut self.agents[agent.0 as usize];
            a.in_pool = false;
            for &(q, key) in &a.pool_keys {
                self.queues[q.0 as usize].free.remove(&key);
            }
            a.pool_keys.clear();
        }
    }

    pub(super) fn login(&mut self, now: Instant, agent: AgentId) {
        let Some(a) = self.agent_mut(agent) else {
            return;
        };
        if a.removed || a.state != AgentState::LoggedOut {
            debug!(?agent, "ACD: login ignored (removed or logged in)");
            return;
        }
        a.misses = 0;
        a.answered = 0;
        a.pending = None;
        a.idle_since = Some(now);
        self.set_state(now, agent, AgentState::Available, "login");
    }

    pub(super) fn logout(&mut self, now: Instant, agent: AgentId) {
        self.leave_service(now, agent, Pending::Logout);
    }

    pub(super) fn not_ready(&mut self, now: Instant, agent: AgentId, reason: String) {
        self.leave_service(now, agent, Pending::NotReady(reason));
    }

    /// Logout or not ready: at once, except during a call (applied after its wrap-up).
    fn leave_service(&mut self, now: Instant, agent: AgentId, to: Pending) {
        let Some(a) = self.agent_mut(agent) else {
            return;
        };
        let (state, why) = match &to {
            Pending::Logout => (AgentState::LoggedOut, "logout"),
            Pending::NotReady(reason) => (
                AgentState::NotReady {
                    reason: reason.clone(),
                },
                "not ready",
            ),
        };
        match a.state {
            AgentState::LoggedOut => debug!(?agent, "ACD: agent not logged in"),
            AgentState::OnCall | AgentState::OnHold => {
                a.pending = Some(to);
                // They will not take another call after this one.
                self.release_sticky(agent);
            }
            AgentState::Ringing => {
                a.misses = 0;
                if let Some(c) = a.ringing {
                    self.end_offer(c, agent, OfferOutcome::Cancelled);
                }
                self.set_state(now, agent, state, why);
            }
            AgentState::WrapUp => {
                self.record_handle_time(now, agent);
                self.set_state(now, agent, state, why);
            }
            AgentState::Available | AgentState::NotReady { .. } => {
                a.misses = 0;
                self.set_state(now, agent, state, why);
            }
        }
    }

    pub(super) fn ready(&mut self, now: Instant, agent: AgentId) {
        let Some(a) = self.agent_mut(agent) else {
            return;
        };
        match a.state {
            AgentState::LoggedOut => debug!(?agent, "ACD: ready ignored, not logged in"),
            AgentState::OnCall | AgentState::OnHold => a.pending = None,
            AgentState::Ringing | AgentState::Available => a.misses = 0,
            AgentState::WrapUp => {
                a.misses = 0;
                a.pending = None;
                self.finish_wrap(now, agent, "ready");
            }
            AgentState::NotReady { .. } => {
                a.misses = 0;
                a.idle_since = Some(now);
                self.set_state(now, agent, AgentState::Available, "ready");
            }
        }
    }

    pub(super) fn end_wrap_up(&mut self, now: Instant, agent: AgentId) {
        let Some(a) = self.agent_mut(agent) else {
            return;
        };
        if a.state == AgentState::WrapUp {
            self.finish_wrap(now, agent, "wrap_up_end");
        }
    }

    pub(super) fn hold(&mut self, agent: AgentId, hold: bool) {
        let Some(a) = self.agent_mut(agent) else {
            return;
        };
        let (from, to, why) = if hold {
            (AgentState::OnCall, AgentState::OnHold, "hold")
        } else {
            (AgentState::OnHold, AgentState::OnCall, "resume")
        };
        if a.state == from {
            // Neither state is in the pool, so `now` (only used by logouts) is irrelevant.
            a.state = to.clone();
            self.actions.push_back(AcdAction::AgentChanged {
                agent,
                state: to,
                reason: why.to_string(),
            });
        }
    }

    pub(super) fn reachable(&mut self, now: Instant, agent: AgentId, reachable: bool) {
        let Some(a) = self.agent_mut(agent) else {
            return;
        };
        if a.reachable == reachable {
            return;
        }
        a.reachable = reachable;
        if !reachable {
            self.release_sticky(agent);
        }
        let why = if reachable {
            "registration back"
        } else {
            "registration lost"
        };
        self.phone_changed(now, agent, !reachable, OfferFailure::Unreachable, why);
    }

    pub(super) fn phone_busy(&mut self, now: Instant, agent: AgentId, busy: bool) {
        let Some(a) = self.agent_mut(agent) else {
            return;
        };
        if a.phone_busy == busy {
            return;
        }
        a.phone_busy = busy;
        let why = if busy { "phone busy" } else { "phone free" };
        self.phone_changed(now, agent, busy, OfferFailure::Busy, why);
    }

    fn phone_changed(
        &mut self,
        now: Instant,
        agent: AgentId,
        out: bool,
        f: OfferFailure,
        why: &str,
    ) {
        let a = &self.agents[agent.0 as usize];
        match (out, a.ringing) {
            (true, Some(c)) => {
                self.end_offer(c, agent, OfferOutcome::Failed(f));
                self.set_state(now, agent, AgentState::Available, why);
            }
            _ => {
                self.note(agent, why);
                self.pool_sync(agent);
            }
        }
    }

    pub(super) fn offer_answered(&mut self, now: Instant, caller: CallerId, agent: AgentId) {
        let current = self.agents.get(agent.0 as usize).and_then(|a| a.ringing) == Some(caller)
            && self.callers.contains_key(&caller);
        if !current {
            debug!(
                ?caller,
                ?agent,
                "ACD: answer for an offer that is not current"
            );
            self.actions.push_back(AcdAction::EndOffer {
                caller,
                agent,
                outcome: OfferOutcome::Cancelled,
            });
            return;
        }
        let c = self.take_caller(caller);
        for other in c.offers.iter().copied().filter(|&o| o != agent) {
            self.emit_end_offer(caller, other, OfferOutcome::Cancelled);
            self.agents[other.0 as usize].ringing = None;
            self.set_state(now, other, AgentState::Available, "cancelled");
        }
        self.talking.insert(caller, agent);
        let a = &mut self.agents[agent.0 as usize];
        a.ringing = None;
        a.talking = Some(caller);
        a.call_queue = Some(c.queue);
        a.call_start = Some(now);
        a.misses = 0;
        a.answered += 1;
        self.set_state(now, agent, AgentState::OnCall, "answered");
    }

    pub(super) fn offer_failed(
        &mut self,
        now: Instant,
        caller: CallerId,
        agent: AgentId,
        why: OfferFailure,
    ) {
        if self.agents.get(agent.0 as usize).and_then(|a| a.ringing) != Some(caller) {
            debug!(
                ?caller,
                ?agent,
                "ACD: failure of an offer that is not current"
            );
            return;
        }
        let rest = self.callers.get(&caller).map_or(Duration::ZERO, |c| {
            self.queues[c.queue.0 as usize].def.busy_rest
        });
        self.end_offer(caller, agent, OfferOutcome::Failed(why));
        if !rest.is_zero() {
            // A phone that forwards (302) or refuses would otherwise be offered again at once.
            let token = self.next_serial();
            let a = &mut self.agents[agent.0 as usize];
            a.resting = true;
            a.rest_token = token;
            self.schedule(now + rest, TimerKind::Rest { agent, token });
        }
        let reason = match why {
            OfferFailure::Busy => "phone busy",
            OfferFailure::Declined => "declined",
            OfferFailure::Redirected => "redirected",
            OfferFailure::Unreachable => "unreachable",
        };
        self.set_state(now, agent, AgentState::Available, reason);
    }

    pub(super) fn ring_timeout(&mut self, now: Instant, agent: AgentId) {
        let Some(caller) = self.agents[agent.0 as usize].ringing else {
            return;
        };
        let max_misses = self
            .callers
            .get(&caller)
            .map_or(0, |c| self.queues[c.queue.0 as usize].def.max_misses);
        self.end_offer(caller, agent, OfferOutcome::NoAnswer);
        if let Some(c) = self.callers.get_mut(&caller) {
            // Always dispatched next (even in ring-all with offers left), which clears it.
            c.skip = Some(agent);
            self.dirty_callers.push_back(caller);
        }
        let a = &mut self.agents[agent.0 as usize];
        a.misses += 1;
        if max_misses > 0 && a.misses >= max_misses {
            let state = AgentState::NotReady {
                reason: "no answer".to_string(),
            };
            self.set_state(now, agent, state, "no answer");
        } else {
            self.set_state(now, agent, AgentState::Available, "no answer");
        }
    }

    /// Whether `to` may take over `from`'s conversation (see `AcdEvent::TakeOver`).
    pub fn can_take_over(
        &self,
        from: AgentId,
        to: AgentId,
        consultation: Option<CallerId>,
    ) -> bool {
        let (Some(f), Some(t)) = (
            self.agents.get(from.0 as usize),
            self.agents.get(to.0 as usize),
        ) else {
            return false;
        };
        from != to
            && f.talking.is_some()
            && !t.removed
            && t.ringing.is_none()
            && (t.talking.is_none() || t.talking == consultation)
            && f.talking != consultation
            && t.state != AgentState::LoggedOut
    }

    pub(super) fn take_over(
        &mut self,
        now: Instant,
        from: AgentId,
        to: AgentId,
        consultation: Option<CallerId>,
    ) {
        if !self.can_take_over(from, to, consultation) {
            debug!(?from, ?to, "ACD: take-over between agents who cannot");
            return;
        }
        // The consultation's conversation becomes the caller's: it was counted as answered
        // already (the handle time starts again below).
        let consulted = consultation.filter(|c| self.talking.get(c) == Some(&to));
        if let Some(c) = consulted {
            self.talking.remove(&c);
            self.agents[to.0 as usize].talking = None;
        }
        let (caller, queue) = {
            let f = &mut self.agents[from.0 as usize];
            (f.talking.take(), f.call_queue)
        };
        let Some(caller) = caller else { return };
        // The one taking over may have been in wrap-up of another call (which ends here) or
        // not ready (which they return to after this call).
        if self.agents[to.0 as usize].state == AgentState::WrapUp {
            self.record_handle_time(now, to);
        }
        let t = &mut self.agents[to.0 as usize];
        if let AgentState::NotReady { reason } = &t.state {
            t.pending.get_or_insert(Pending::NotReady(reason.clone()));
        }
        t.talking = Some(caller);
        t.call_queue = queue;
        // Their handle time starts now, whatever the consultation before took.
        t.call_start = Some(now);
        t.phone_busy = false;
        t.misses = 0;
        if consulted.is_none() {
            t.answered += 1;
        }
        self.talking.insert(caller, to);
        self.set_state(now, to, AgentState::OnCall, "transfer");
        self.start_wrap(now, from, "transferred");
    }

    pub(super) fn consultation_over(&mut self, now: Instant, caller: CallerId) {
        let Some(agent) = self.talking.remove(&caller) else {
            return self.caller_gone(now, caller);
        };
        let a = &mut self.agents[agent.0 as usize];
        a.talking = None;
        a.call_queue = None;
        a.call_start = None;
        a.answered = a.answered.saturating_sub(1);
        self.finish_wrap(now, agent, "consultation over");
    }

    pub(super) fn conversation_ended(&mut self, now: Instant, agent: AgentId) {
        let Some(a) = self.agent_mut(agent) else {
            return;
        };
        if !matches!(a.state, AgentState::OnCall | AgentState::OnHold) {
            debug!(?agent, "ACD: conversation end for an agent not in a call");
            return;
        }
        if let Some(c) = a.talking.take() {
            self.talking.remove(&c);
        }
        self.start_wrap(now, agent, "hangup");
    }

    /// Wrap-up belongs to the agent: it starts from their own call's end and only their own
    /// events (or its timer) end it.
    pub(super) fn start_wrap(&mut self, now: Instant, agent: AgentId, why: &str) {
        let a = &self.agents[agent.0 as usize];
        let queue_wrap = a
            .call_queue
            .and_then(|q| self.queues.get(q.0 as usize))
            .map_or(Duration::ZERO, |q| q.def.wrap_up);
        let wrap = a.def.wrap_up.unwrap_or(queue_wrap);
        if a.removed || wrap.is_zero() {
            self.finish_wrap(now, agent, why);
            return;
        }
        let token = self.next_serial();
        self.agents[agent.0 as usize].wrap_token = token;
        self.set_state(now, agent, AgentState::WrapUp, why);
        self.schedule(now + wrap, TimerKind::WrapUp { agent, token });
    }

    pub(super) fn finish_wrap(&mut self, now: Instant, agent: AgentId, why: &str) {
        self.record_handle_time(now, agent);
        let a = &mut self.agents[agent.0 as usize];
        a.idle_since = Some(now);
        if a.removed {
            a.pending = None;
            self.set_state(now, agent, AgentState::LoggedOut, "removed");
            return;
        }
        match a.pending.take() {
            Some(Pending::Logout) => self.set_state(now, agent, AgentState::LoggedOut, "logout"),
            Some(Pending::NotReady(reason)) => {
                self.set_state(now, agent, AgentState::NotReady { reason }, "not ready")
            }
            None => self.set_state(now, agent, AgentState::Available, why),
        }
    }

    /// Talk + hold + wrap-up of the call just finished, for the queue's estimated wait.
    pub(super) fn record_handle_time(&mut self, now: Instant, agent: AgentId) {
        let a = &mut self.agents[agent.0 as usize];
        if let (Some(q), Some(start)) = (a.call_queue.take(), a.call_start.take())
            && let Some(queue) = self.queues.get_mut(q.0 as usize)
        {
            queue
                .handle_times
                .push_back(now.saturating_duration_since(start));
            if queue.handle_times.len() > super::HANDLE_WINDOW {
                queue.handle_times.pop_front();
            }
        }
    }

    /// Ends one offer without changing the agent's state (the caller of this decides it);
    /// the caller of the offer becomes offerable again if nothing else rings for them.
    pub(super) fn end_offer(&mut self, caller: CallerId, agent: AgentId, outcome: OfferOutcome) {
        self.agents[agent.0 as usize].ringing = None;
        if let Some(c) = self.callers.get_mut(&caller) {
            c.offers.retain(|&o| o != agent);
            if c.offers.is_empty() {
                let key = c.key;
                self.queues[c.queue.0 as usize].offerable.insert(key);
                self.dirty_callers.push_back(caller);
            }
        }
        self.emit_end_offer(caller, agent, outcome);
    }

    pub(super) fn emit_end_offer(
        &mut self,
        caller: CallerId,
        agent: AgentId,
        outcome: OfferOutcome,
    ) {
        self.actions.push_back(AcdAction::EndOffer {
            caller,
            agent,
            outcome,
        });
    }
}
