//! Waiting callers: joining, leaving, widening, sticky windows and announcements.

use std::cmp::Reverse;
use std::time::{Duration, Instant};

use tracing::debug;

use super::{Acd, Caller, TimerKind};
use crate::acd::model::EmptyRule;
use crate::acd::{AcdAction, AgentState, CallerId, OfferOutcome, QueueId, QueueLeave};

impl Acd {
    #[allow(clippy::too_many_arguments)]
    pub(super) fn enqueue(
        &mut self,
        now: Instant,
        caller: CallerId,
        queue: &str,
        priority: u8,
        skills: &[String],
        sticky: Option<String>,
        sticky_for: Option<Duration>,
        max_wait: Duration,
    ) {
        if self.callers.contains_key(&caller) {
            debug!(?caller, "ACD: caller already waiting, enqueue ignored");
            return;
        }
        // A caller transferred from an agent back into a queue: that conversation is over.
        if let Some(agent) = self.talking.remove(&caller) {
            self.agents[agent.0 as usize].talking = None;
            self.start_wrap(now, agent, "transferred");
        }
        let leave = |acd: &mut Acd, why| acd.actions.push_back(AcdAction::Leave { caller, why });
        let Some(q) = self.queue_ids.get(queue).copied() else {
            debug!(queue, "ACD: unknown queue");
            return leave(self, QueueLeave::NoAgents);
        };
        let qu = &self.queues[q.0 as usize];
        if qu.removed {
            return leave(self, QueueLeave::NoAgents);
        }
        if qu.def.when_empty != EmptyRule::Wait && qu.logged_in == 0 {
            return leave(self, QueueLeave::NoAgents);
        }
        if qu
            .def
            .max_length
            .is_some_and(|max| qu.all.len() >= max as usize)
        {
            return leave(self, QueueLeave::Full);
        }
        let max_wait = max_wait.min(qu.def.max_wait);
        let sticky_wait = sticky_for.unwrap_or(qu.def.sticky_wait);
        let first_widen = qu.def.widening.first().map(|w| w.after);
        let announce = qu
            .def
            .announcements
            .as_ref()
            .map(|a| a.every.max(super::MIN_ANNOUNCE));
        let sticky = sticky
            .filter(|_| !sticky_wait.is_zero())
            .and_then(|id| self.agent_ids.get(&id).copied())
            .filter(|&a| {
                // Kept only for an agent who may free up within the window: on a call or in
                // wrap-up yes; logged out, not ready or with no phone, no.
                let ag = &self.agents[a.0 as usize];
                !ag.removed
                    && ag.reachable
                    && !matches!(
                        ag.state,
                        AgentState::LoggedOut | AgentState::NotReady { .. }
                    )
                    && ag.queues.contains(&q)
            });
        let extra = skills
            .iter()
            .map(|s| self.skill_ids.get(s).copied().unwrap_or(u32::MAX))
            .collect();
        let token = self.next_serial();
        let key = (Reverse(priority.min(100)), now, caller);
        let qu = &mut self.queues[q.0 as usize];
        qu.all.insert(key);
        qu.offerable.insert(key);
        self.callers.insert(
            caller,
            Caller {
                queue: q,
                key,
                token,
                extra,
                widen: 0,
                sticky,
                offers: Vec::new(),
                skip: None,
                announced: None,
            },
        );
        self.schedule(now + max_wait, TimerKind::MaxWait { caller, token });
        if let Some(after) = first_widen {
            let kind = TimerKind::Widen {
                caller,
                token,
                step: 0,
            };
            self.schedule(now + after, kind);
        }
        if sticky.is_some() {
            self.schedule(now + sticky_wait, TimerKind::StickyEnd { caller, token });
        }
        if let Some(every) = announce {
            self.schedule(now + every, TimerKind::Announce { caller, token });
        }
        self.dirty_callers.push_back(caller);
    }

    pub(super) fn caller_gone(&mut self, now: Instant, caller: CallerId) {
        if self.callers.contains_key(&caller) {
            self.remove_caller(now, caller, None);
        } else {
            // Answered callers end with ConversationEnded from the agent's side.
            debug!(?caller, "ACD: caller gone, not waiting");
        }
    }

    /// Takes the caller out of their queue and the core, offers untouched.
    pub(super) fn take_caller(&mut self, caller: CallerId) -> Caller {
        let c = self.callers.remove(&caller).expect("caller present");
        let q = &mut self.queues[c.queue.0 as usize];
        q.all.remove(&c.key);
        q.offerable.remove(&c.key);
        c
    }

    /// The caller leaves unanswered: every agent ringing for them is cancelled.
    pub(super) fn remove_caller(
        &mut self,
        now: Instant,
        caller: CallerId,
        why: Option<QueueLeave>,
    ) {
        if !self.callers.contains_key(&caller) {
            return;
        }
        let c = self.take_caller(caller);
        for agent in c.offers {
            self.emit_end_offer(caller, agent, OfferOutcome::Cancelled);
            self.agents[agent.0 as usize].ringing = None;
            self.set_state(now, agent, AgentState::Available, "cancelled");
        }
        if let Some(why) = why {
            self.actions.push_back(AcdAction::Leave { caller, why });
        }
    }

    /// `RefuseAndLeave`: the last member logging out sends the waiting callers out.
    pub(super) fn refuse_and_leave(&mut self, now: Instant, q: QueueId) {
        let queue = &self.queues[q.0 as usize];
        if queue.def.when_empty != EmptyRule::RefuseAndLeave || queue.logged_in > 0 {
            return;
        }
        let callers: Vec<CallerId> = queue.all.iter().map(|k| k.2).collect();
        for c in callers {
            self.remove_caller(now, c, Some(QueueLeave::NoAgents));
        }
    }

    /// One widening step: more agents qualify now, not only at the next event.
    pub(super) fn widen(&mut self, now: Instant, caller: CallerId, step: usize) {
        let Some(c) = self.callers.get_mut(&caller) else {
            return;
        };
        c.widen = step + 1;
        let (token, arrival) = (c.token, c.key.1);
        let next = self.queues[c.queue.0 as usize]
            .def
            .widening
            .get(step + 1)
            .map(|w| w.after);
        if let Some(after) = next {
            let kind = TimerKind::Widen {
                caller,
                token,
                step: step + 1,
            };
            self.schedule((arrival + after).max(now), kind);
        }
        self.dirty_callers.push_back(caller);
    }

    /// Position and estimated wait to a caller not ringing anyone; the position is the
    /// lowest announced so far, so it never goes up (a higher-priority arrival would
    /// otherwise push it back).
    pub(super) fn announce(&mut self, now: Instant, caller: CallerId) {
        let Some(c) = self.callers.get(&caller) else {
            return;
        };
        let Some(ann) = self.queues[c.queue.0 as usize].def.announcements.clone() else {
            return;
        };
        let token = c.token;
        let every = ann.every.max(super::MIN_ANNOUNCE);
        self.schedule(now + every, TimerKind::Announce { caller, token });
        let c = &self.callers[&caller];
        let q = &self.queues[c.queue.0 as usize];
        if !c.offers.is_empty() || !(ann.position || ann.wait) {
            return;
        }
        let ahead = q.all.range(..c.key).count() as u32;
        let position = c.announced.map_or(ahead + 1, |p| p.min(ahead + 1));
        let estimated_wait = if ann.wait {
            self.estimate(caller, position)
        } else {
            None
        };
        if let Some(c) = self.callers.get_mut(&caller) {
            c.announced = Some(position);
        }
        self.actions.push_back(AcdAction::Announce {
            caller,
            position,
            estimated_wait,
        });
    }

    /// `position × mean handle time / agents who can take this caller`; None when nobody
    /// who could is logged in and ready.
    pub(super) fn estimate(&self, caller: CallerId, position: u32) -> Option<Duration> {
        let c = self.callers.get(&caller)?;
        let q = &self.queues[c.queue.0 as usize];
        let agents = q
            .members
            .iter()
            .filter(|&&a| {
                let ag = &self.agents[a.0 as usize];
                !ag.removed
                    && !matches!(
                        ag.state,
                        AgentState::LoggedOut | AgentState::NotReady { .. }
                    )
                    && self.skills_fit(a, c)
            })
            .count() as u32;
        if agents == 0 {
            return None;
        }
        let mean = if q.handle_times.is_empty() {
            super::HANDLE_PRIOR
        } else {
            q.handle_times.iter().sum::<Duration>() / q.handle_times.len() as u32
        };
        Some(mean * position / agents)
    }
}
