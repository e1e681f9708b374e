//! The automatic call distributor: agents, queues and who rings for whom. Sans-IO like the
//! flow interpreter: events and `now` in, actions and one deadline out; no clock, socket,
//! randomness or file inside. The engine (`call/`) drives it from SIP, media and the flows,
//! and later the CTI API drives the same agent state machine.
//!
//! model.rs: the checked definitions (agents, queues) -> load.rs: the TOML files to a model
//! with file:line:col diagnostics -> core: the one authority for agent and waiting-caller
//! state.

mod core;
pub mod load;
pub mod model;

use std::time::Duration;

pub use self::core::Acd;
pub use model::{AcdConfig, AgentDef, QueueDef, Strategy};

/// An agent as the ACD core knows them: allocated from the agent's id the first time it is
/// seen and never reused, so it stays the same across reloads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct AgentId(pub u32);

/// A queue, allocated like `AgentId` from its name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct QueueId(pub u32);

/// A customer call waiting for or talking to an agent: the engine's interaction id; or a
/// desk consultation waiting in a queue (an id the engine allocated for it, no interaction).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CallerId(pub u64);

/// The one agent state the ACD keeps; phone (feature codes) and CTI both change it through
/// `AcdEvent`s.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum AgentState {
    LoggedOut,
    Available,
    Ringing,
    OnCall,
    OnHold,
    WrapUp,
    NotReady { reason: String },
}

/// Why an offer to an agent did not become a conversation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum OfferFailure {
    /// 486 or the phone was found busy.
    Busy,
    /// 603 or another final refusal.
    Declined,
    /// 3xx: the phone forwards; never followed.
    Redirected,
    /// No response, 408, 480, transport error, no registered contact.
    Unreachable,
}

/// How a caller leaves a queue without being answered (back into the flow).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum QueueLeave {
    Timeout,
    Full,
    NoAgents,
}

/// How an offer ended, for the offer rows of the CDR.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum OfferOutcome {
    Answered,
    /// Ring timeout.
    NoAnswer,
    Failed(OfferFailure),
    /// Another agent answered first (ring-all) or the caller left.
    Cancelled,
}

#[derive(Debug, Clone, PartialEq)]
pub enum AcdEvent {
    /// A caller enters `queue` (by name; an unknown name leaves at once with `NoAgents`).
    /// `skills` are needed on top of the queue's own. `sticky` is the agent who served this
    /// caller last, if the engine knows one within the queue's `sticky_days`. `max_wait` is
    /// the queue node's timeout (the queue's own `max_wait` applies when shorter).
    Enqueue {
        caller: CallerId,
        queue: String,
        priority: u8,
        skills: Vec<String>,
        sticky: Option<String>,
        /// How long the caller is offered to `sticky` alone; None: the queue's
        /// `sticky_wait` (an agent's transfer to a colleague names its own).
        sticky_for: Option<Duration>,
        max_wait: Duration,
    },
    /// The caller left (hung up, pressed an exit key, was moved away): gone at once,
    /// offers ringing for them are cancelled.
    CallerGone {
        caller: CallerId,
    },
    /// The agent's phone answered the offer: they talk.
    OfferAnswered {
        caller: CallerId,
        agent: AgentId,
    },
    /// The agent's phone refused or could not be reached; the caller keeps their place.
    OfferFailed {
        caller: CallerId,
        agent: AgentId,
        why: OfferFailure,
    },
    /// The conversation ended (either side hung up, or the agent transferred the caller
    /// away): the agent goes to wrap-up.
    ConversationEnded {
        agent: AgentId,
    },
    Hold {
        agent: AgentId,
    },
    Resume {
        agent: AgentId,
    },
    /// Agent commands, from feature codes now and the CTI later.
    Login {
        agent: AgentId,
    },
    Logout {
        agent: AgentId,
    },
    Ready {
        agent: AgentId,
    },
    NotReady {
        agent: AgentId,
        reason: String,
    },
    /// The agent finishes wrap-up early.
    EndWrapUp {
        agent: AgentId,
    },
    /// The phone's registration (or OPTIONS keep-alive) came or went.
    Reachable {
        agent: AgentId,
        reachable: bool,
    },
    /// The phone is busy with a call the ACD did not give it (or stopped being).
    PhoneBusy {
        agent: AgentId,
        busy: bool,
    },
    /// Attended transfer: `to`, whom `from` consulted, takes over `from`'s conversation
    /// (same caller, same queue); `from` goes to wrap-up. Ignored unless `from` talks to a
    /// caller and `to` is logged in, not ringing and not talking (`can_take_over`), except
    /// to `consultation`: a consultation that waited in a queue as a caller of its own and
    /// that `to` answered, which the caller's conversation replaces.
    TakeOver {
        from: AgentId,
        to: AgentId,
        consultation: Option<CallerId>,
    },
    /// A consultation that waited in a queue as a caller of its own ends without becoming
    /// a call: gone from the queue if it still waits (its offers cancelled); answered, its
    /// agent is free again at once (available, or what they asked for meanwhile), with no
    /// wrap-up, no handle time and no answered call counted.
    ConsultationOver {
        caller: CallerId,
    },
}

#[derive(Debug, Clone, PartialEq)]
pub enum AcdAction {
    /// Ring `agent` for `caller`; the core runs the ring timer itself.
    Offer { caller: CallerId, agent: AgentId },
    /// Stop that offer (CANCEL while ringing, BYE if it answered too late); `outcome` is
    /// how it ended, for the offer row.
    EndOffer {
        caller: CallerId,
        agent: AgentId,
        outcome: OfferOutcome,
    },
    /// The caller leaves the queue without an agent and goes back into the flow.
    Leave { caller: CallerId, why: QueueLeave },
    /// Tell the caller their place; `position` never goes up for one caller.
    Announce {
        caller: CallerId,
        position: u32,
        estimated_wait: Option<Duration>,
    },
    /// An agent's state changed, with the reason, for the agent-state history.
    AgentChanged {
        agent: AgentId,
        state: AgentState,
        reason: String,
    },
}
