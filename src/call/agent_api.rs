//! Agent state changes asked for through the CTI API. They drive the same ACD state machine
//! as the phone's feature codes, so the phone and the desktop can never disagree about an
//! agent: there is one state, the ACD's.

use std::time::Instant;

use serde::Serialize;

use super::agents::state_kind;
use super::{Engine, MediaBackend};
use crate::acd::{AcdEvent, AgentState};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AgentCommand {
    Login,
    Logout,
    Ready,
    /// A reason by its name or its code (`ivr-flows/acd/agents.toml`'s reasons).
    NotReady {
        reason: String,
    },
    /// After-call work is over: ready again (or whatever was asked for during the call).
    EndWrapUp,
    /// The caller of the agent's current call hears music, or is back. `call` (the CDR id),
    /// when given, must be the agent's current call: a late click never acts on the next.
    Hold {
        held: bool,
        call: Option<String>,
    },
    /// The agent's current call ends for them, as if their phone hung up: the caller goes
    /// on in the flow (a survey, say), the agent to wrap-up.
    HangUp {
        call: Option<String>,
    },
    /// A blind transfer of the agent's current call to a colleague (id or extension), a
    /// queue or a number, with the reason for the CDR. `by`: who asked, when not the agent
    /// themselves (a supervisor), for the CDR's transfer row.
    Transfer {
        target: String,
        reason: Option<String>,
        call: Option<String>,
        by: Option<String>,
        /// A supervisor's command: a colleague named as target must be in these teams.
        teams: Option<Vec<String>>,
    },
    /// Attended transfer, first step: the caller waits on hold while the agent's call is
    /// put through to a colleague (id or extension), a number, or whoever a queue offers
    /// the consultation to.
    Consult {
        target: String,
        call: Option<String>,
        /// As for `Transfer`.
        teams: Option<Vec<String>>,
    },
    /// The consulted party takes the caller over; the agent goes to wrap-up.
    CompleteConsult {
        reason: Option<String>,
        call: Option<String>,
        by: Option<String>,
    },
    /// The consultation ends; the agent is back with the caller.
    CancelConsult {
        call: Option<String>,
    },
}

/// Longest transfer reason kept.
pub const MAX_REASON: usize = 64;

/// An agent as the API shows them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AgentView {
    pub id: String,
    pub name: String,
    pub team: Option<String>,
    /// `logged_out`, `available`, `ringing`, `on_call`, `on_hold`, `wrap_up`, `not_ready`.
    pub state: &'static str,
    /// The not-ready reason.
    pub reason: Option<String>,
    /// What was asked for during a call, applied after its wrap-up: `not_ready` (with
    /// `pending_reason`) or `logged_out`.
    pub pending: Option<&'static str>,
    pub pending_reason: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AgentCommandError {
    #[error("no agent {0:?}")]
    UnknownAgent(String),
    #[error("no not-ready reason {given:?} (reasons: {known})")]
    UnknownReason { given: String, known: String },
    #[error("no disposition {given:?} (dispositions: {known})")]
    UnknownDisposition { given: String, known: String },
    #[error("agent {0:?} is not in wrap-up")]
    NotInWrapUp(String),
    #[error("agent {0:?} is not talking to a caller")]
    NotOnCall(String),
    #[error("no agent, queue or dialable number {0:?} to transfer to")]
    NoSuchTarget(String),
    #[error("agent {0:?} is on another call now")]
    OtherCall(String),
    #[error("agent {0:?}'s phone holds the call: resume it on the phone")]
    PhoneHolds(String),
    #[error("agent {0:?} is consulting: complete or cancel the consultation first")]
    Consulting(String),
    #[error("agent {0:?} has no consultation going on")]
    NotConsulting(String),
    #[error("agent {0:?}'s consultation has not been answered yet: wait, or cancel it")]
    ConsultRinging(String),
    #[error("{target:?} cannot take a consultation now: {why}")]
    Unavailable { target: String, why: String },
    #[error("agent {0:?} is not in your teams")]
    NotYourTeam(String),
}

/// A transfer reason as the CDR keeps it: one short line, or none.
fn clean_reason(reason: Option<String>) -> Option<String> {
    reason
        .map(|r| clean_notes(&r, MAX_REASON).replace('\n', " "))
        .filter(|r| !r.trim().is_empty())
}

/// Longest wrap-up notes kept.
pub const MAX_NOTES: usize = 2000;

/// Formatting characters that change how text reads without showing themselves.
fn invisible(c: char) -> bool {
    matches!(c,
        '\u{200B}'..='\u{200F}' | '\u{2028}'..='\u{202E}' | '\u{2060}'..='\u{2069}' | '\u{FEFF}')
}

/// Free text from a browser, bounded, without control or invisible formatting characters
/// (bidi overrides, zero-width ones) but with its line breaks.
pub fn clean_notes(text: &str, max_chars: usize) -> String {
    text.chars()
        .filter(|c| *c == '\n' || !(c.is_control() || invisible(*c)))
        .take(max_chars)
        .collect()
}

impl<M: MediaBackend> Engine<M> {
    pub fn agent_command(
        &mut self,
        now: Instant,
        agent_id: &str,
        command: AgentCommand,
    ) -> Result<AgentView, AgentCommandError> {
        let unknown = || AgentCommandError::UnknownAgent(agent_id.to_string());
        let agent = self.acd.agent_id(agent_id).ok_or_else(unknown)?;
        self.acd.agent_def(agent).ok_or_else(unknown)?;
        let call_error = |e| match e {
            super::agent_transfer::ApiCallError::NotOnCall => {
                AgentCommandError::NotOnCall(agent_id.to_string())
            }
            super::agent_transfer::ApiCallError::NoSuchTarget => {
                AgentCommandError::NoSuchTarget(String::new())
            }
        };
        // The call asked about, if named, must be the agent's current one.
        let current = |engine: &Self, call: &Option<String>| {
            let (id, leg) = engine
                .talking_leg(agent)
                .ok_or_else(|| call_error(super::agent_transfer::ApiCallError::NotOnCall))?;
            match call {
                Some(c) if engine.calls.get(&id).is_none_or(|x| &x.record_id != c) => {
                    Err(AgentCommandError::OtherCall(agent_id.to_string()))
                }
                _ => Ok((id, leg)),
            }
        };
        let consulting = |engine: &Self, id| {
            if engine.desk_consulting(id).is_some() {
                Err(AgentCommandError::Consulting(agent_id.to_string()))
            } else {
                Ok(())
            }
        };
        let event = match command {
            AgentCommand::Hold { held, call } => {
                let (id, leg) = current(self, &call)?;
                consulting(self, id)?;
                if !held && self.legs.get(&leg).is_some_and(|l| l.held) {
                    return Err(AgentCommandError::PhoneHolds(agent_id.to_string()));
                }
                tracing::info!(agent = agent_id, held, "hold through the API");
                self.agent_hold(now, id, agent, held);
                return self.agent_view(agent_id).ok_or_else(unknown);
            }
            AgentCommand::HangUp { call } => {
                // A colleague consulted from the desk hangs up on the consulting agent.
                let leg = match current(self, &call) {
                    Err(AgentCommandError::NotOnCall(_)) => self
                        .consulted_leg(agent)
                        .filter(|leg| {
                            call.as_ref().is_none_or(|c| {
                                self.legs
                                    .get(leg)
                                    .and_then(|l| self.calls.get(&l.interaction))
                                    .is_some_and(|x| &x.record_id == c)
                            })
                        })
                        .ok_or_else(|| AgentCommandError::NotOnCall(agent_id.to_string()))?,
                    found => found?.1,
                };
                tracing::info!(agent = agent_id, "hang-up through the API");
                self.hang_up_leg(now, leg);
                return self.agent_view(agent_id).ok_or_else(unknown);
            }
            AgentCommand::Transfer {
                target,
                reason,
                call,
                by,
                teams,
            } => {
                let (id, _) = current(self, &call)?;
                self.colleague_in(&target, teams.as_deref())?;
                consulting(self, id)?;
                let reason = clean_reason(reason);
                tracing::info!(agent = agent_id, %target, ?reason, ?by, "transfer through the API");
                return match self.api_transfer(now, agent, &target, reason, by) {
                    Ok(()) => self.agent_view(agent_id).ok_or_else(unknown),
                    Err(super::agent_transfer::ApiCallError::NoSuchTarget) => {
                        Err(AgentCommandError::NoSuchTarget(target))
                    }
                    Err(e) => Err(call_error(e)),
                };
            }
            AgentCommand::Consult {
                target,
                call,
                teams,
            } => {
                current(self, &call)?;
                self.colleague_in(&target, teams.as_deref())?;
                tracing::info!(agent = agent_id, %target, "consultation through the API");
                self.start_desk_consult(now, agent, agent_id, &target)?;
                return self.agent_view(agent_id).ok_or_else(unknown);
            }
            AgentCommand::CompleteConsult { reason, call, by } => {
                current(self, &call)?;
                let reason = clean_reason(reason);
                tracing::info!(
                    agent = agent_id,
                    ?reason,
                    ?by,
                    "attended transfer through the API"
                );
                self.complete_desk_consult(now, agent, agent_id, reason, by)?;
                return self.agent_view(agent_id).ok_or_else(unknown);
            }
            AgentCommand::CancelConsult { call } => {
                current(self, &call)?;
                tracing::info!(agent = agent_id, "consultation cancelled through the API");
                self.cancel_desk_consult(now, agent, agent_id)?;
                return self.agent_view(agent_id).ok_or_else(unknown);
            }
            AgentCommand::Login => AcdEvent::Login { agent },
            AgentCommand::Logout => AcdEvent::Logout { agent },
            AgentCommand::Ready => AcdEvent::Ready { agent },
            AgentCommand::EndWrapUp => AcdEvent::EndWrapUp { agent },
            AgentCommand::NotReady { reason } => {
                let reasons = &self.catalog.acd.reasons;
                let Some(found) = reasons
                    .iter()
                    .find(|r| r.name == reason || r.code == reason)
                else {
                    let known: Vec<&str> = reasons.iter().map(|r| r.name.as_str()).collect();
                    return Err(AgentCommandError::UnknownReason {
                        given: reason,
                        known: if known.is_empty() {
                            "none defined".into()
                        } else {
                            known.join(", ")
                        },
                    });
                };
                AcdEvent::NotReady {
                    agent,
                    reason: found.name.clone(),
                }
            }
        };
        tracing::info!(
            agent = agent_id,
            ?event,
            "agent state asked for through the API"
        );
        self.acd.handle(now, event);
        self.drain_acd(now);
        self.agent_view(agent_id).ok_or_else(unknown)
    }

    /// A supervisor sends calls to their own teams' agents only (queues and numbers are
    /// anyone's): Err when `target` names an agent outside `teams`.
    fn colleague_in(
        &self,
        target: &str,
        teams: Option<&[String]>,
    ) -> Result<(), AgentCommandError> {
        let Some(teams) = teams else {
            return Ok(());
        };
        let acd = &self.catalog.acd;
        match acd.agent(target).or_else(|| acd.agent_by_extension(target)) {
            Some(def) if !def.team.as_ref().is_some_and(|t| teams.contains(t)) => {
                Err(AgentCommandError::NotYourTeam(target.to_string()))
            }
            _ => Ok(()),
        }
    }

    /// What the agent records about the call they are wrapping up (disposition, notes,
    /// first-call resolution), kept for its CDR; `done` ends the wrap-up.
    pub fn wrap_up(
        &mut self,
        now: Instant,
        agent_id: &str,
        mut note: super::WrapNote,
        done: bool,
    ) -> Result<AgentView, AgentCommandError> {
        let unknown = || AgentCommandError::UnknownAgent(agent_id.to_string());
        let agent = self.acd.agent_id(agent_id).ok_or_else(unknown)?;
        if !self.wrapping.contains_key(&agent) {
            return Err(AgentCommandError::NotInWrapUp(agent_id.to_string()));
        }
        if let Some(code) = &note.disposition {
            let dispositions = &self.catalog.acd.dispositions;
            if !dispositions.iter().any(|d| &d.code == code) {
                let known: Vec<&str> = dispositions.iter().map(|d| d.code.as_str()).collect();
                return Err(AgentCommandError::UnknownDisposition {
                    given: code.clone(),
                    known: if known.is_empty() {
                        "none defined".into()
                    } else {
                        known.join(", ")
                    },
                });
            }
        }
        note.notes = note.notes.map(|n| clean_notes(&n, MAX_NOTES));
        let wrap = self
            .wrapping
            .get_mut(&agent)
            .ok_or_else(|| AgentCommandError::NotInWrapUp(agent_id.to_string()))?;
        wrap.note.merge(note);
        if done {
            self.acd.handle(now, AcdEvent::EndWrapUp { agent });
            self.drain_acd(now);
        }
        self.agent_view(agent_id).ok_or_else(unknown)
    }

    pub fn agent_view(&self, agent_id: &str) -> Option<AgentView> {
        let agent = self.acd.agent_id(agent_id)?;
        let def = self.acd.agent_def(agent)?;
        let state = self.acd.agent_state(agent)?;
        let pending = self.acd.agent_pending(agent);
        Some(AgentView {
            id: def.id.clone(),
            name: def.name.clone(),
            team: def.team.clone(),
            state: state_kind(state).as_str(),
            reason: match state {
                AgentState::NotReady { reason } => Some(reason.clone()),
                _ => None,
            },
            pending: pending.map(|p| p.0),
            pending_reason: pending.and_then(|p| p.1.map(str::to_string)),
        })
    }

    /// Every agent the ACD knows, in the agents file's order.
    pub fn agent_views(&self) -> Vec<AgentView> {
        self.catalog
            .acd
            .agents
            .iter()
            .filter_map(|a| self.agent_view(&a.id))
            .collect()
    }
}
