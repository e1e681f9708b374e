//! The ACD core: the one owner of agent state and waiting callers (peer systems lose track
//! when threads and database rows share that job). Sans-IO: `handle`/`handle_timeout` take
//! `now`, actions come out of `poll_action`, one deadline out of `poll_timeout`.
//!
//! # Fairness across queues
//! When an agent becomes free, the caller they get is chosen among ALL queues the agent
//! serves, by, in this order:
//! 1. the highest caller priority;
//! 2. the largest weighted wait, `(now - arrival) × queue.weight`;
//! 3. the earliest arrival;
//! 4. the lowest `CallerId`.
//!
//! Never by the order queues are scanned. Within one queue the same rule reduces to
//! (priority, arrival, id), which is the order of the queue's waiting set, so each queue
//! contributes its first caller this agent can take and the best of those wins. When a caller
//! arrives (or becomes free to offer again), they go to the best free agent by their queue's
//! strategy; ties always break by agent id.
//!
//! # Pool
//! An agent is *free* (in the pool) when Available, not removed, reachable, not busy with a
//! call the ACD did not give them and not resting after a busy/declined/redirected offer.
//! A caller is *offerable* while waiting with no live offer, or at any time in a ring-all
//! queue. The core keeps this invariant after every input (`check_invariants`, "no stall"):
//! no free agent is eligible for an offerable caller.
//!
//! # Agent history
//! Every state change is one `AgentChanged` with a short reason: login, logout, ready,
//! not ready, offer, answered, hold, resume, hangup, transferred (the caller was queued
//! again), consultation over (a consultation from a queue ended without a transfer),
//! wrap_up_end, no answer (ring timeout; also the RONA not-ready), cancelled (ring-all
//! loser, caller left, agent logged out while ringing), phone busy, declined, redirected,
//! unreachable (an offer failed: the phone rests for the queue's `busy_rest`), registration
//! lost, removed (reload). Pool exits and returns that keep the ACD state are
//! `AgentChanged` with the unchanged state and reason registration lost / registration back /
//! phone busy / phone free / rest end.
//!
//! State that only changes at a time (wrap-up end, ring timeout, rest end, widening steps,
//! sticky window end, max wait, announcements) changes in `handle_timeout`, from a deadline
//! heap with lazy deletion (each entry carries a token the live state must still hold).

mod agents;
mod check;
mod queues;
mod reload;
mod select;

#[cfg(test)]
mod proptests;
#[cfg(test)]
mod queue_tests;
#[cfg(test)]
mod tests;

use std::cmp::Reverse;
use std::collections::{BTreeSet, BinaryHeap, HashMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::model::{AcdConfig, AgentDef, QueueDef};
use super::{AcdAction, AcdEvent, AgentId, AgentState, CallerId, QueueId};

/// Handle times kept per queue for the estimated wait.
const HANDLE_WINDOW: usize = 20;
/// Mean handle time assumed before a queue has any (3 min: the low end of usual AHT).
const HANDLE_PRIOR: Duration = Duration::from_secs(180);
/// A zero ring timeout or announcement period would fire within the same `handle_timeout`
/// forever; these floors keep every timer strictly in the future.
const MIN_RING: Duration = Duration::from_millis(1);
const MIN_ANNOUNCE: Duration = Duration::from_secs(1);

/// Order of a queue's waiting callers: priority (high first), arrival, id.
pub(super) type CallerKey = (Reverse<u8>, Instant, CallerId);

/// Order of a queue's free agents under its strategy: (rank, idle since, id); lower first.
pub(super) type FreeKey = (u64, Option<Instant>, AgentId);

#[derive(Debug, Clone)]
pub(super) enum Pending {
    NotReady(String),
    Logout,
}

#[derive(Debug)]
pub(super) struct Agent {
    pub(super) def: AgentDef,
    pub(super) removed: bool,
    /// Interned (skill, level).
    pub(super) skills: Vec<(u32, u8)>,
    /// Queues this agent can ever serve (member, and has the skills at the widest level).
    pub(super) queues: Vec<QueueId>,
    pub(super) state: AgentState,
    /// Not ready or logout asked for during a call, applied when its wrap-up ends.
    pub(super) pending: Option<Pending>,
    pub(super) reachable: bool,
    pub(super) phone_busy: bool,
    pub(super) resting: bool,
    pub(super) rest_token: u64,
    pub(super) misses: u32,
    pub(super) answered: u32,
    /// None: never had a call or ready since the core started; sorts as longest idle.
    pub(super) idle_since: Option<Instant>,
    pub(super) ringing: Option<CallerId>,
    pub(super) ring_token: u64,
    pub(super) talking: Option<CallerId>,
    pub(super) call_queue: Option<QueueId>,
    pub(super) call_start: Option<Instant>,
    pub(super) wrap_token: u64,
    pub(super) in_pool: bool,
    /// The keys this agent was inserted under in each queue's free set.
    pub(super) pool_keys: Vec<(QueueId, FreeKey)>,
}

#[derive(Debug)]
pub(super) struct Caller {
    pub(super) queue: QueueId,
    pub(super) key: CallerKey,
    /// Set per enqueue; timers of an earlier stay of the same caller id carry another.
    pub(super) token: u64,
    /// Interned extra skills (u32::MAX: a skill nobody has).
    pub(super) extra: Vec<u32>,
    /// Widening steps applied so far.
    pub(super) widen: usize,
    pub(super) sticky: Option<AgentId>,
    pub(super) offers: Vec<AgentId>,
    /// The agent who just missed this caller: tried last on the next offer.
    pub(super) skip: Option<AgentId>,
    pub(super) announced: Option<u32>,
}

#[derive(Debug)]
pub(super) struct Queue {
    pub(super) def: QueueDef,
    pub(super) removed: bool,
    pub(super) needs: Vec<(u32, u8)>,
    pub(super) members: Vec<AgentId>,
    pub(super) all: BTreeSet<CallerKey>,
    pub(super) offerable: BTreeSet<CallerKey>,
    pub(super) free: BTreeSet<FreeKey>,
    pub(super) rr_last: Option<AgentId>,
    pub(super) logged_in: u32,
    pub(super) handle_times: VecDeque<Duration>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(super) enum TimerKind {
    Ring {
        agent: AgentId,
        token: u64,
    },
    WrapUp {
        agent: AgentId,
        token: u64,
    },
    Rest {
        agent: AgentId,
        token: u64,
    },
    MaxWait {
        caller: CallerId,
        token: u64,
    },
    Widen {
        caller: CallerId,
        token: u64,
        step: usize,
    },
    StickyEnd {
        caller: CallerId,
        token: u64,
    },
    Announce {
        caller: CallerId,
        token: u64,
    },
}

/// The automatic call distributor's state: see the module doc.
#[derive(Debug)]
pub struct Acd {
    pub(super) config: Arc<AcdConfig>,
    pub(super) skill_ids: HashMap<String, u32>,
    pub(super) agent_ids: HashMap<String, AgentId>,
    pub(super) agents: Vec<Agent>,
    pub(super) queue_ids: HashMap<String, QueueId>,
    pub(super) queues: Vec<Queue>,
    pub(super) callers: HashMap<CallerId, Caller>,
    /// Answered callers and the agent they talk to.
    pub(super) talking: HashMap<CallerId, AgentId>,
    pub(super) timers: BinaryHeap<Reverse<(Instant, u64, TimerKind)>>,
    pub(super) serial: u64,
    pub(super) actions: VecDeque<AcdAction>,
    pub(super) dirty_callers: VecDeque<CallerId>,
    pub(super) dirty_agents: VecDeque<AgentId>,
}

impl Acd {
    pub fn new(config: Arc<AcdConfig>) -> Self {
        let mut acd = Acd {
            config: Arc::new(AcdConfig::default()),
            skill_ids: HashMap::new(),
            agent_ids: HashMap::new(),
            agents: Vec::new(),
            queue_ids: HashMap::new(),
            queues: Vec::new(),
            callers: HashMap::new(),
            talking: HashMap::new(),
            timers: BinaryHeap::new(),
            serial: 0,
            actions: VecDeque::new(),
            dirty_callers: VecDeque::new(),
            dirty_agents: VecDeque::new(),
        };
        // Nobody is logged in and nobody waits, so a reload at any instant does the same.
        acd.install(config);
        acd
    }

    /// A reload: agents/queues added, changed or removed. A removed agent finishes their
    /// call (then is logged out); a removed queue's waiting callers leave with
    /// `QueueLeave::NoAgents`; ids stay stable.
    pub fn reload(&mut self, now: Instant, config: Arc<AcdConfig>) {
        self.reload_at(now, config);
        self.settle(now);
        self.debug_check();
    }

    pub fn handle(&mut self, now: Instant, event: AcdEvent) {
        match event {
            AcdEvent::Enqueue {
                caller,
                queue,
                priority,
                skills,
                sticky,
                sticky_for,
                max_wait,
            } => self.enqueue(
                now, caller, &queue, priority, &skills, sticky, sticky_for, max_wait,
            ),
            AcdEvent::CallerGone { caller } => self.caller_gone(now, caller),
            AcdEvent::OfferAnswered { caller, agent } => self.offer_answered(now, caller, agent),
            AcdEvent::OfferFailed { caller, agent, why } => {
                self.offer_failed(now, caller, agent, why)
            }
            AcdEvent::ConversationEnded { agent } => self.conversation_ended(now, agent),
            AcdEvent::Hold { agent } => self.hold(agent, true),
            AcdEvent::Resume { agent } => self.hold(agent, false),
            AcdEvent::Login { agent } => self.login(now, agent),
            AcdEvent::Logout { agent } => self.logout(now, agent),
            AcdEvent::Ready { agent } => self.ready(now, agent),
            AcdEvent::NotReady { agent, reason } => self.not_ready(now, agent, reason),
            AcdEvent::EndWrapUp { agent } => self.end_wrap_up(now, agent),
            AcdEvent::Reachable { agent, reachable } => self.reachable(now, agent, reachable),
            AcdEvent::PhoneBusy { agent, busy } => self.phone_busy(now, agent, busy),
            AcdEvent::TakeOver {
                from,
                to,
                consultation,
            } => self.take_over(now, from, to, consultation),
            AcdEvent::ConsultationOver { caller } => self.consultation_over(now, caller),
        }
        self.settle(now);
        self.debug_check();
    }

    pub fn handle_timeout(&mut self, now: Instant) {
        while let Some(Reverse((at, _, kind))) = self.timers.peek().copied() {
            if at > now {
                break;
            }
            self.timers.pop();
            if self.timer_live(kind) {
                self.fire(now, kind);
                self.settle(now);
            }
        }
        self.prune_timers();
        self.debug_check();
    }

    /// The earliest deadline; may be one that turns out stale (a spurious wake-up is harmless).
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.timers.peek().map(|Reverse((at, _, _))| *at)
    }

    pub fn poll_action(&mut self) -> Option<AcdAction> {
        self.actions.pop_front()
    }

    pub fn agent_id(&self, id: &str) -> Option<AgentId> {
        self.agent_ids.get(id).copied()
    }

    /// The agent's definition while the core knows them (a removed agent until they are
    /// logged out after their last call).
    pub fn agent_def(&self, agent: AgentId) -> Option<&AgentDef> {
        let a = self.agents.get(agent.0 as usize)?;
        (!a.removed || a.state != AgentState::LoggedOut).then_some(&a.def)
    }

    pub fn agent_state(&self, agent: AgentId) -> Option<&AgentState> {
        self.agents.get(agent.0 as usize).map(|a| &a.state)
    }

    /// What an agent will do once their call and wrap-up are over: "not_ready" (with its
    /// reason) or "logged_out"; None: come back ready.
    pub fn agent_pending(&self, agent: AgentId) -> Option<(&'static str, Option<&str>)> {
        match self.agents.get(agent.0 as usize)?.pending.as_ref()? {
            Pending::NotReady(reason) => Some(("not_ready", Some(reason.as_str()))),
            Pending::Logout => Some(("logged_out", None)),
        }
    }

    /// The agent an answered caller talks to.
    pub fn talking_to(&self, caller: CallerId) -> Option<AgentId> {
        self.talking.get(&caller).copied()
    }

    /// The caller an agent is ringing for, if any.
    pub fn offered_to(&self, agent: AgentId) -> Option<CallerId> {
        self.agents.get(agent.0 as usize)?.ringing
    }

    /// Whether a caller joining `queue` now would stay (the queue exists, someone is logged
    /// in or its rule is to wait anyway, and it is not full); Err: why they would be sent on.
    pub fn accepts(&self, queue: &str) -> Result<(), &'static str> {
        let q = self
            .queue_ids
            .get(queue)
            .map(|q| &self.queues[q.0 as usize])
            .filter(|q| !q.removed)
            .ok_or("no such queue")?;
        if q.def.when_empty != crate::acd::model::EmptyRule::Wait && q.logged_in == 0 {
            return Err("nobody is logged in to that queue");
        }
        if q.def
            .max_length
            .is_some_and(|max| q.all.len() >= max as usize)
        {
            return Err("that queue is full");
        }
        Ok(())
    }

    /// Whether `agent` serves `queue` and their phone is reachable.
    pub fn serves(&self, agent: AgentId, queue: &str) -> bool {
        let (Some(a), Some(q)) = (self.agents.get(agent.0 as usize), self.queue_ids.get(queue))
        else {
            return false;
        };
        !a.removed && a.reachable && a.queues.contains(q)
    }

    /// Whether an agent's phone is ringing for this caller.
    pub fn is_offered(&self, caller: CallerId) -> bool {
        self.callers
            .get(&caller)
            .is_some_and(|c| !c.offers.is_empty())
    }

    /// A waiting caller's priority (0 lowest).
    pub fn caller_priority(&self, caller: CallerId) -> Option<u8> {
        self.callers.get(&caller).map(|c| c.key.0.0)
    }

    /// The queue a waiting (or ringing) caller is in.
    pub fn queue_of(&self, caller: CallerId) -> Option<&str> {
        let c = self.callers.get(&caller)?;
        Some(&self.queues[c.queue.0 as usize].def.name)
    }

    /// Every queue now: (name, callers waiting, how long the longest has waited, agents
    /// logged in). For wallboards and metrics; O(callers).
    pub fn queue_stats(&self, now: Instant) -> Vec<(String, usize, Duration, u32)> {
        self.queues
            .iter()
            .filter(|q| !q.removed)
            .map(|q| {
                let longest = q
                    .all
                    .iter()
                    .map(|(_, since, _)| now.saturating_duration_since(*since))
                    .max()
                    .unwrap_or_default();
                (q.def.name.clone(), q.all.len(), longest, q.logged_in)
            })
            .collect()
    }

    /// Agents by state (not-ready reasons together), in a fixed order.
    pub fn agent_state_counts(&self) -> [(&'static str, usize); 7] {
        let mut out = [
            ("logged_out", 0),
            ("available", 0),
            ("ringing", 0),
            ("on_call", 0),
            ("on_hold", 0),
            ("wrap_up", 0),
            ("not_ready", 0),
        ];
        for a in self.agents.iter().filter(|a| !a.removed) {
            let i = match a.state {
                AgentState::LoggedOut => 0,
                AgentState::Available => 1,
                AgentState::Ringing => 2,
                AgentState::OnCall => 3,
                AgentState::OnHold => 4,
                AgentState::WrapUp => 5,
                AgentState::NotReady { .. } => 6,
            };
            out[i].1 += 1;
        }
        out
    }

    /// Callers waiting in `queue` (ringing ones included).
    pub fn waiting(&self, queue: &str) -> usize {
        self.queue_ids
            .get(queue)
            .map_or(0, |q| self.queues[q.0 as usize].all.len())
    }

    pub(super) fn next_serial(&mut self) -> u64 {
        self.serial += 1;
        self.serial
    }

    pub(super) fn schedule(&mut self, at: Instant, kind: TimerKind) {
        let serial = self.next_serial();
        self.timers.push(Reverse((at, serial, kind)));
    }

    fn timer_live(&self, kind: TimerKind) -> bool {
        let agent = |a: AgentId| &self.agents[a.0 as usize];
        let caller = |c: CallerId, token: u64| self.callers.get(&c).filter(|c| c.token == token);
        match kind {
            TimerKind::Ring { agent: a, token } => {
                agent(a).ringing.is_some() && agent(a).ring_token == token
            }
            TimerKind::WrapUp { agent: a, token } => {
                agent(a).state == AgentState::WrapUp && agent(a).wrap_token == token
            }
            TimerKind::Rest { agent: a, token } => agent(a).resting && agent(a).rest_token == token,
            TimerKind::MaxWait { caller: c, token } | TimerKind::Announce { caller: c, token } => {
                caller(c, token).is_some()
            }
            TimerKind::Widen {
                caller: c,
                token,
                step,
            } => caller(c, token).is_some_and(|c| c.widen == step),
            TimerKind::StickyEnd { caller: c, token } => {
                caller(c, token).is_some_and(|c| c.sticky.is_some())
            }
        }
    }

    fn fire(&mut self, now: Instant, kind: TimerKind) {
        match kind {
            TimerKind::Ring { agent, .. } => self.ring_timeout(now, agent),
            TimerKind::WrapUp { agent, .. } => self.finish_wrap(now, agent, "wrap_up_end"),
            TimerKind::Rest { agent, .. } => {
                self.agents[agent.0 as usize].resting = false;
                self.note(agent, "rest end");
                self.pool_sync(agent);
            }
            TimerKind::MaxWait { caller, .. } => {
                self.remove_caller(now, caller, Some(super::QueueLeave::Timeout))
            }
            TimerKind::Widen { caller, step, .. } => self.widen(now, caller, step),
            TimerKind::StickyEnd { caller, .. } => {
                if let Some(c) = self.callers.get_mut(&caller) {
                    c.sticky = None;
                    self.dirty_callers.push_back(caller);
                }
            }
            TimerKind::Announce { caller, .. } => self.announce(now, caller),
        }
    }

    /// Drops stale timers at the head so `poll_timeout` does not wake for nothing.
    fn prune_timers(&mut self) {
        while let Some(Reverse((_, _, kind))) = self.timers.peek().copied() {
            if self.timer_live(kind) {
                break;
            }
            self.timers.pop();
        }
    }

    /// Offers until no free agent is eligible for an offerable caller. Agents first, so a
    /// freed agent gets the best caller by the fairness rule (a caller they just missed goes
    /// to another free agent first: `dispatch_agent`).
    pub(super) fn settle(&mut self, now: Instant) {
        loop {
            if let Some(a) = self.dirty_agents.pop_front() {
                self.dispatch_agent(now, a);
            } else if let Some(c) = self.dirty_callers.pop_front() {
                self.dispatch_caller(now, c);
            } else {
                break;
            }
        }
        self.prune_timers();
    }

    fn debug_check(&self) {
        // The full check is quadratic; big set-ups (the benchmark) are checked by the tests.
        #[cfg(debug_assertions)]
        if self.callers.len() * self.agents.len() <= 4096
            && let Err(e) = self.check_invariants()
        {
            panic!("ACD invariant broken: {e}");
        }
    }
}
