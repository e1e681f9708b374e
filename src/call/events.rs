//! What the engine tells the CTI as it happens: an agent's state changed, an agent's phone
//! started ringing for a caller (the screen pop). The signalling loop drains these each turn
//! and hands them to the API, which never reaches into the engine.

use serde::Serialize;

use std::time::Instant;

use super::agent_api::AgentView;
use super::{Engine, InteractionId, MediaBackend};

/// Everything the agent's desktop shows when their phone rings, so the caller is not asked
/// again what they told the IVR.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ScreenPop {
    /// hotline's call id (the CDR's).
    pub call: String,
    pub agent: String,
    pub team: Option<String>,
    pub queue: String,
    pub caller: String,
    pub dialled: String,
    /// Nodes the caller went through.
    pub ivr_path: Vec<String>,
    /// The flow's variables as they may be shown: sensitive values masked.
    pub variables: Vec<(String, String)>,
    /// The flow's labels (call type, VIP tier, ...).
    pub labels: Vec<(String, String)>,
    pub language: String,
    /// The caller's queue priority (0 normal; higher is served first): a VIP tier the flow
    /// set, a supervisor's or the queue's.
    pub priority: u8,
    /// Time in the queue so far.
    pub waited_ms: i64,
    /// Unix epoch ms when the phone started ringing.
    pub at_ms: i64,
}

/// How a consultation the agent started from the desk goes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ConsultUpdate {
    pub agent: String,
    pub team: Option<String>,
    /// hotline's call id (the CDR's) of the caller's call.
    pub call: String,
    /// The colleague's id, the number, or the queue.
    pub target: String,
    /// For a queue: the agent it rang or who answered.
    pub colleague: Option<String>,
    /// `queued` (a queue looks for an agent), `ringing`, `talking`, `completed`,
    /// `cancelled`, `no_answer` (also: nobody in the queue within its longest wait),
    /// `failed` (declined, unreachable, or the queue refused), `ended` (the consulted
    /// party hung up).
    pub state: &'static str,
    pub at_ms: i64,
}

#[derive(Debug, Clone, PartialEq)]
pub enum EngineEvent {
    /// An agent's state changed at `at_ms` (Unix epoch ms, to the microsecond).
    Agent {
        view: AgentView,
        at_ms: f64,
    },
    Offer(Box<ScreenPop>),
    Consult(ConsultUpdate),
    /// Events were dropped on the way (the API fell behind): clients must start afresh.
    Lost,
}

impl<M: MediaBackend> Engine<M> {
    /// What agent `def`'s desk shows of the caller of `id` as their phone rings.
    pub(super) fn screen_pop(
        &self,
        now: Instant,
        id: InteractionId,
        def: &crate::acd::model::AgentDef,
        queue: &str,
    ) -> Option<ScreenPop> {
        let wall = self.wall_ms(now);
        let call = self.calls.get(&id)?;
        Some(ScreenPop {
            call: call.record_id.clone(),
            agent: def.id.clone(),
            team: def.team.clone(),
            queue: queue.to_string(),
            caller: call.caller.clone(),
            dialled: call.dialled.clone(),
            ivr_path: call.interpreter.path().to_vec(),
            variables: {
                let mut vars: Vec<(String, String)> = call
                    .interpreter
                    .shown_vars()
                    .map(|(k, v)| (k.to_string(), v))
                    .collect();
                vars.sort();
                vars
            },
            labels: call.interpreter.labels().to_vec(),
            language: call.interpreter.language().to_string(),
            priority: self
                .acd
                .caller_priority(super::queue::caller_id(id))
                .unwrap_or(0),
            waited_ms: call.queue.as_ref().map_or(0, |v| wall - v.entered_ms),
            at_ms: wall,
        })
    }
}
