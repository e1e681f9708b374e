//! What a supervisor does to a caller who is still waiting: move them to another queue, or
//! to a named agent (offered to that agent first, then to the queue). Asked for through the
//! API; the CDR keeps the move as a transfer row by `supervisor:NAME`, which the transfer
//! indicator (agents' transfers of answered calls) leaves out.

use std::time::Instant;

use super::agent_transfer::{COLLEAGUE_FIRST, TRANSFER_MAX_WAIT};
use super::queue::caller_id;
use super::{Engine, InteractionId, MediaBackend};
use crate::acd::AcdEvent;
use crate::cdr::{TransferKind, TransferRow, TransferTargetKind};

/// Most waiting callers listed in a snapshot.
pub const MAX_LISTED: usize = 500;

/// Where a waiting caller is sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MoveTarget {
    Queue(String),
    Agent(String),
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MoveError {
    #[error("no caller {0:?} waiting in a queue")]
    NotWaiting(String),
    #[error("no queue {0:?}")]
    NoSuchQueue(String),
    #[error("no agent {0:?}")]
    NoSuchAgent(String),
    /// Logged out, not ready, unreachable or not serving the caller's queue: they would
    /// not free up for the caller.
    #[error(
        "agent {0:?} cannot take this caller now (logged out, not ready, unreachable, or not in their queue)"
    )]
    AgentUnavailable(String),
    #[error("the caller cannot wait in {queue:?}: {why}")]
    Refused { queue: String, why: &'static str },
    #[error("an agent's phone is ringing for the caller; try again if they do not answer")]
    Ringing,
    #[error("the caller is already in {0:?}")]
    SameQueue(String),
}

/// One caller waiting now, for supervisors' lists.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct WaitingCaller {
    /// hotline's call id (the CDR's).
    pub call: String,
    pub queue: String,
    pub caller: String,
    pub waited_ms: i64,
    pub priority: u8,
    /// An agent's phone is ringing for them.
    pub ringing: bool,
}

impl<M: MediaBackend> Engine<M> {
    /// Every caller waiting in a queue (not yet answered), longest first.
    pub fn waiting_callers(&self, now: Instant) -> Vec<WaitingCaller> {
        let wall = self.wall_ms(now);
        let mut out: Vec<WaitingCaller> = self
            .calls
            .iter()
            .filter_map(|(id, call)| {
                let visit = call.queue.as_ref()?;
                let priority = self.acd.caller_priority(caller_id(*id))?;
                visit.answered.is_none().then(|| WaitingCaller {
                    call: call.record_id.clone(),
                    queue: visit.queue.clone(),
                    caller: call.caller.clone(),
                    waited_ms: wall - visit.entered_ms,
                    priority,
                    ringing: self.acd.is_offered(caller_id(*id)),
                })
            })
            .collect();
        out.sort_by(|a, b| b.waited_ms.cmp(&a.waited_ms).then(a.call.cmp(&b.call)));
        // A wallboard's list, published every second: the longest waiters are the ones
        // that matter, and a flood of callers must not make every snapshot huge.
        out.truncate(MAX_LISTED);
        out
    }

    /// Moves a waiting caller (by CDR id) to another queue or to an agent; agents ringing
    /// for them stop. `by` names the supervisor for the CDR.
    pub fn move_caller(
        &mut self,
        now: Instant,
        call: &str,
        target: MoveTarget,
        by: &str,
    ) -> Result<(), MoveError> {
        let not_waiting = || MoveError::NotWaiting(call.to_string());
        let id: InteractionId = self
            .calls
            .iter()
            .find(|(_, c)| {
                c.record_id == call && c.queue.as_ref().is_some_and(|v| v.answered.is_none())
            })
            .map(|(id, _)| *id)
            .ok_or_else(not_waiting)?;
        let caller = caller_id(id);
        let priority = self.acd.caller_priority(caller).ok_or_else(not_waiting)?;
        let current = self.calls[&id]
            .queue
            .as_ref()
            .map(|v| v.queue.clone())
            .ok_or_else(not_waiting)?;
        if self.acd.is_offered(caller) {
            return Err(MoveError::Ringing);
        }
        // The live ACD decides, not the catalog the call started with.
        let (queue, sticky, kind, text) = match target {
            MoveTarget::Queue(q) => {
                if q == current {
                    return Err(MoveError::SameQueue(q));
                }
                self.acd.accepts(&q).map_err(|why| match why {
                    "no such queue" => MoveError::NoSuchQueue(q.clone()),
                    why => MoveError::Refused {
                        queue: q.clone(),
                        why,
                    },
                })?;
                (q.clone(), None, TransferTargetKind::Queue, q)
            }
            MoveTarget::Agent(a) => {
                let acd = &self.calls[&id].catalog.acd;
                let def = acd
                    .agent(&a)
                    .or_else(|| acd.agent_by_extension(&a))
                    .ok_or(MoveError::NoSuchAgent(a))?;
                let agent = self.acd.agent_id(&def.id);
                let state = agent.and_then(|agent| self.acd.agent_state(agent));
                let free_up = agent.is_some_and(|agent| self.acd.serves(agent, &current))
                    && !matches!(
                        state,
                        None | Some(crate::acd::AgentState::LoggedOut)
                            | Some(crate::acd::AgentState::NotReady { .. })
                    );
                if !free_up {
                    return Err(MoveError::AgentUnavailable(def.id.clone()));
                }
                (
                    current.clone(),
                    Some(def.id.clone()),
                    TransferTargetKind::Agent,
                    def.id.clone(),
                )
            }
        };
        let wall = self.wall_ms(now);
        tracing::info!(call, %by, from = %current, to = %text, "waiting caller moved by a supervisor");
        self.acd.handle(now, AcdEvent::CallerGone { caller });
        // Still the same wait: it counts from when the caller first queued, in the queue
        // they end up in, so moving the longest waiters cannot flatter the service level.
        if let Some(c) = self.calls.get_mut(&id)
            && let Some(visit) = c.queue.as_mut()
        {
            visit.queue = queue.clone();
            c.transfers.push(TransferRow {
                at_ms: wall,
                kind: TransferKind::Blind,
                target: text,
                target_kind: kind,
                by: format!("supervisor:{by}"),
                reason: Some("moved while waiting".into()),
            });
        }
        self.acd.handle(
            now,
            AcdEvent::Enqueue {
                caller,
                queue,
                priority,
                skills: Vec::new(),
                sticky_for: sticky.as_ref().map(|_| COLLEAGUE_FIRST),
                sticky,
                max_wait: TRANSFER_MAX_WAIT,
            },
        );
        self.start_music(id);
        self.drain_acd(now);
        Ok(())
    }
}
