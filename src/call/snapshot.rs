//! What the engine shows outside itself (metrics now, wallboards later): taken on the
//! signalling loop once a second and published, so readers never reach into the engine.

use std::time::{Duration, Instant};

use super::{Engine, MediaBackend};
use crate::cdr::CdrRecord;

/// Calls counted as their records leave the engine, since start.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Totals {
    /// Every call that got a record.
    pub calls: u64,
    /// Calls that reached a queue.
    pub offered: u64,
    /// Calls an agent answered.
    pub answered: u64,
    /// Calls abandoned while waiting in a queue.
    pub abandoned: u64,
}

impl Totals {
    pub(super) fn count(&mut self, record: &CdrRecord) {
        self.calls += 1;
        self.offered += u64::from(record.queue.is_some());
        self.answered += u64::from(record.agent.is_some());
        self.abandoned += u64::from(record.abandoned);
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueSnapshot {
    pub name: String,
    pub waiting: u64,
    pub longest_wait: Duration,
    pub agents_logged_in: u64,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Snapshot {
    /// Callers' calls in progress.
    pub active_calls: u64,
    pub queues: Vec<QueueSnapshot>,
    /// Agents by state name (`available`, `on_call`, ...), every state listed.
    pub agents: Vec<(&'static str, u64)>,
    /// Every agent, for the API's lists.
    pub agent_list: Vec<super::agent_api::AgentView>,
    /// Every caller waiting in a queue, longest first, for supervisors.
    pub waiting: Vec<super::supervise::WaitingCaller>,
    /// The not-ready reasons agents choose from (the agents file's).
    pub reasons: Vec<String>,
    /// The wrap-up dispositions: (code, label).
    pub dispositions: Vec<(String, String)>,
    pub totals: Totals,
    /// The media threads' counters (RTP loss, late ticks).
    pub media: super::MediaTotals,
}

impl<M: MediaBackend> Engine<M> {
    pub fn snapshot(&self, now: Instant) -> Snapshot {
        Snapshot {
            active_calls: self.calls.len() as u64,
            queues: self
                .acd
                .queue_stats(now)
                .into_iter()
                .map(|(name, waiting, longest_wait, logged_in)| QueueSnapshot {
                    name,
                    waiting: waiting as u64,
                    longest_wait,
                    agents_logged_in: u64::from(logged_in),
                })
                .collect(),
            agents: self
                .acd
                .agent_state_counts()
                .into_iter()
                .map(|(state, n)| (state, n as u64))
                .collect(),
            agent_list: self.agent_views(),
            waiting: self.waiting_callers(now),
            reasons: self
                .catalog
                .acd
                .reasons
                .iter()
                .map(|r| r.name.clone())
                .collect(),
            dispositions: self
                .catalog
                .acd
                .dispositions
                .iter()
                .map(|d| (d.code.clone(), d.label.clone()))
                .collect(),
            totals: self.totals,
            media: self.media.totals(),
        }
    }
}
