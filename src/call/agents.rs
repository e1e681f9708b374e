//! Agents as the engine sees them: their phones' registrations feed the ACD, the feature
//! codes they dial change their state, and every state change becomes a history row. The
//! state itself lives in the ACD alone.

use std::sync::Arc;
use std::time::Instant;

use sha2::{Digest, Sha256};

use super::{Engine, MediaBackend, Party};
use crate::acd::model::AgentEndpoint;
use crate::acd::{AcdEvent, AgentId, AgentState};
use crate::cdr::{AgentStateKind, AgentStateRecord};
use crate::sip::{Account, CallRef, UaEvent};

/// What a feature code asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum FeatureCode {
    Login { pin: String },
    Logout,
    Ready,
    NotReady { code: String },
    EndWrapUp,
}

/// `*11<PIN>`, `*12`, `*13`, `*14<reason code>`, `*15` (docs/agents.md).
pub(super) fn parse_feature_code(dialled: &str) -> Option<FeatureCode> {
    let rest = dialled.strip_prefix('*')?;
    let (code, arg) = rest.split_at(rest.len().min(2));
    let digits = |s: &str| s.chars().all(|c| c.is_ascii_digit());
    if !digits(code) || !digits(arg) || arg.len() > 16 {
        return None;
    }
    match (code, arg.is_empty()) {
        ("11", _) => Some(FeatureCode::Login { pin: arg.into() }),
        ("12", true) => Some(FeatureCode::Logout),
        ("13", true) => Some(FeatureCode::Ready),
        ("14", false) => Some(FeatureCode::NotReady { code: arg.into() }),
        ("15", true) => Some(FeatureCode::EndWrapUp),
        _ => None,
    }
}

pub(super) fn state_kind(state: &AgentState) -> AgentStateKind {
    match state {
        AgentState::LoggedOut => AgentStateKind::LoggedOut,
        AgentState::Available => AgentStateKind::Available,
        AgentState::Ringing => AgentStateKind::Ringing,
        AgentState::OnCall => AgentStateKind::OnCall,
        AgentState::OnHold => AgentStateKind::OnHold,
        AgentState::WrapUp => AgentStateKind::WrapUp,
        AgentState::NotReady { .. } => AgentStateKind::NotReady,
    }
}

fn pin_matches(agent_id: &str, pin: &str, expected: &str) -> bool {
    let digest = Sha256::digest(format!("{agent_id}:{pin}").as_bytes());
    let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    // Not secret-dependent timing worth guarding: PIN attempts are authenticated by the
    // phone's digest first and every try is logged.
    hex.eq_ignore_ascii_case(expected)
}

impl<M: MediaBackend> Engine<M> {
    /// The registrar's accounts and the ACD follow the catalog's agents file.
    pub(super) fn apply_agents(&mut self, now: Instant) {
        let acd = Arc::clone(&self.catalog.acd);
        self.ua.set_accounts(
            acd.agents
                .iter()
                .map(|a| Account {
                    user: a.extension.clone(),
                    credentials: a.credentials.clone(),
                })
                .collect(),
        );
        self.acd.reload(now, Arc::clone(&acd));
        // A fixed endpoint has no registration to wait for: `auto_login` applies at once.
        for def in acd.agents.iter().filter(|a| a.auto_login) {
            if let (AgentEndpoint::Fixed(_), Some(agent)) =
                (&def.endpoint, self.acd.agent_id(&def.id))
                && self.acd.agent_state(agent) == Some(&AgentState::LoggedOut)
            {
                self.acd.handle(now, AcdEvent::Login { agent });
            }
        }
        self.drain_acd(now);
    }

    /// A dialled `*` code from an agent's phone: authenticated by digest, carried out by the
    /// ACD, answered (and hung up at once) on success, refused with a reason otherwise.
    pub(super) fn on_feature_code(
        &mut self,
        now: Instant,
        dialog: CallRef,
        dialled: &str,
        authenticated: Option<String>,
        offer: bool,
    ) {
        // Authentication first: an unknown caller learns nothing, not even which codes exist.
        let Some(user) = authenticated else {
            return self.ua.challenge(now, dialog);
        };
        let Some(code) = parse_feature_code(dialled) else {
            return self.ua.reject(now, dialog, 404, &[]);
        };
        let Some(def) = self.catalog.acd.agent_by_extension(&user).cloned() else {
            return self.ua.reject(now, dialog, 403, &[]);
        };
        let Some(agent) = self.acd.agent_id(&def.id) else {
            return self.ua.reject(now, dialog, 403, &[]);
        };
        let event = match code {
            FeatureCode::Login { pin } => {
                if let Some(expected) = &def.pin_sha256
                    && !pin_matches(&def.id, &pin, expected)
                {
                    tracing::warn!(agent = %def.id, "login with a wrong PIN");
                    return self.ua.reject(now, dialog, 403, &[]);
                }
                AcdEvent::Login { agent }
            }
            FeatureCode::Logout => AcdEvent::Logout { agent },
            FeatureCode::Ready => AcdEvent::Ready { agent },
            FeatureCode::NotReady { code } => {
                let Some(reason) = self.catalog.acd.reasons.iter().find(|r| r.code == code) else {
                    tracing::info!(agent = %def.id, %code, "not-ready with an unknown reason code");
                    return self.ua.reject(now, dialog, 404, &[]);
                };
                AcdEvent::NotReady {
                    agent,
                    reason: reason.name.clone(),
                }
            }
            FeatureCode::EndWrapUp => AcdEvent::EndWrapUp { agent },
        };
        tracing::info!(agent = %def.id, ?event, "feature code");
        self.acd.handle(now, event);
        self.drain_acd(now);
        // Success is a call that connects and ends at once: the phone shows it went through.
        // The answer declines the media stream (port 0), so no RTP is ever set up for it.
        let body = if offer {
            decline_media_answer(&self.cfg.advertised)
        } else {
            Vec::new()
        };
        self.dialogs.insert(dialog, Party::Service);
        self.ua.answer(now, dialog, body);
    }

    pub(super) fn service_event(&mut self, now: Instant, dialog: CallRef, event: UaEvent) {
        match event {
            UaEvent::Acked { .. } => self.ua.hangup(now, dialog),
            UaEvent::Ended { .. } | UaEvent::RemoteBye { .. } | UaEvent::Cancelled { .. } => {
                self.dialogs.remove(&dialog);
            }
            UaEvent::ReInvite { .. } => self.ua.reject_reinvite(now, dialog, 488),
            _ => {}
        }
    }

    /// A phone came or went: the ACD takes the agent out of the pool or back. An agent set
    /// to `auto_login` is logged in and ready when their phone first registers.
    pub(super) fn on_reachability(&mut self, now: Instant, user: &str, reachable: bool) {
        let Some(def) = self.catalog.acd.agent_by_extension(user).cloned() else {
            return;
        };
        let Some(agent) = self.acd.agent_id(&def.id) else {
            return;
        };
        tracing::info!(agent = %def.id, reachable, "agent phone reachability");
        self.acd
            .handle(now, AcdEvent::Reachable { agent, reachable });
        if reachable
            && def.auto_login
            && self.acd.agent_state(agent) == Some(&AgentState::LoggedOut)
        {
            self.acd.handle(now, AcdEvent::Login { agent });
        }
        self.drain_acd(now);
    }

    /// The agent's id as the CDR and the API name them ("" for one a reload removed).
    pub(super) fn agent_name(&self, agent: AgentId) -> String {
        self.acd
            .agent_def(agent)
            .map(|d| d.id.clone())
            .unwrap_or_default()
    }

    pub(super) fn agent_changed(
        &mut self,
        now: Instant,
        agent: AgentId,
        state: AgentState,
        reason: String,
    ) {
        let Some(def) = self.acd.agent_def(agent) else {
            return;
        };
        let kind = state_kind(&state);
        tracing::info!(agent = %def.id, state = %kind, %reason, "agent state");
        let reason = match &state {
            AgentState::NotReady { reason: why } => why.clone(),
            _ => reason,
        };
        let wall = self.wall_ms(now);
        let id = def.id.clone();
        self.agent_time.change(&id, def.team.as_deref(), kind, wall);
        self.agent_states.push_back(AgentStateRecord {
            id: super::new_record_id(&mut self.rng),
            agent: id.clone(),
            state: kind,
            reason: (!reason.is_empty()).then_some(reason),
            start_ms: wall,
        });
        if kind != AgentStateKind::WrapUp {
            self.wrap_up_ended(now, agent, wall);
        }
        if let Some(view) = self.agent_view(&id) {
            self.events.push_back(super::events::EngineEvent::Agent {
                view,
                at_ms: self.wall_ms_exact(now),
            });
        }
    }

    /// The agent's wrap-up is over: its length goes into the CDR of the call it was for, held
    /// until now if that call already ended.
    pub(super) fn wrap_up_ended(&mut self, now: Instant, agent: AgentId, wall: i64) {
        let Some(wrap) = self.wrapping.remove(&agent) else {
            return;
        };
        let ms = wall - wrap.since_ms;
        // The wrap-up's notes are the answering agent's: after a transfer, the agent who
        // handed the call on wraps up too, but the CDR names the last one.
        let agent_id = self.acd.agent_def(agent).map(|d| d.id.clone());
        if let Some(call) = self.calls.get_mut(&wrap.interaction) {
            call.facts.wrap_up_ms = Some(call.facts.wrap_up_ms.unwrap_or(0) + ms);
            if call.facts.agent.is_none() || call.facts.agent == agent_id {
                call.facts.wrap_note.merge(wrap.note);
            }
        } else if let Some((mut record, _)) = self.wrap_held.remove(&wrap.interaction) {
            record.wrap_up_ms = Some(record.wrap_up_ms.unwrap_or(0) + ms);
            if record.agent.is_none() || record.agent == agent_id {
                wrap.note.merge_into(&mut record);
            }
            self.release_record(now, wrap.interaction, record);
        } else if let Some(held) = self.held.get_mut(&wrap.interaction) {
            // Still waiting for its recordings.
            let record = &mut held.record;
            record.wrap_up_ms = Some(record.wrap_up_ms.unwrap_or(0) + ms);
            if record.agent.is_none() || record.agent == agent_id {
                wrap.note.merge_into(record);
            }
        }
    }

    /// Agent-state history rows for the CDR writer.
    pub fn poll_agent_state(&mut self) -> Option<AgentStateRecord> {
        self.agent_states.pop_front()
    }

    /// Everything counted of agents' time so far goes out (the server is about to exit).
    pub fn flush_agent_time(&mut self, now: Instant) {
        let wall = self.wall_ms(now);
        self.agent_time.flush(wall);
    }

    /// Agents' time per quarter hour for the CDR writer.
    pub fn poll_agent_time(&mut self) -> Option<crate::cdr::AgentTimeRecord> {
        let mut row = self.agent_time.poll()?;
        row.id = super::new_record_id(&mut self.rng);
        Some(row)
    }
}

/// An SDP answer that declines the offered audio (RFC 3264 §6: port zero).
fn decline_media_answer(advertised: &str) -> Vec<u8> {
    let host = advertised.rsplit_once(':').map_or(advertised, |(h, _)| h);
    format!(
        "v=0\r\no=hotline 1 1 IN IP4 {host}\r\ns=hotline\r\nc=IN IP4 {host}\r\nt=0 0\r\nm=audio 0 RTP/AVP 0\r\n"
    )
    .into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn feature_codes_parse_and_odd_ones_do_not() {
        assert_eq!(
            parse_feature_code("*111234"),
            Some(FeatureCode::Login { pin: "1234".into() })
        );
        assert_eq!(
            parse_feature_code("*11"),
            Some(FeatureCode::Login { pin: "".into() })
        );
        assert_eq!(parse_feature_code("*12"), Some(FeatureCode::Logout));
        assert_eq!(parse_feature_code("*13"), Some(FeatureCode::Ready));
        assert_eq!(
            parse_feature_code("*142"),
            Some(FeatureCode::NotReady { code: "2".into() })
        );
        assert_eq!(parse_feature_code("*15"), Some(FeatureCode::EndWrapUp));
        for bad in [
            "*14",
            "*129",
            "*1",
            "*",
            "*99",
            "12",
            "*1a",
            "*11123456789012345678",
        ] {
            assert_eq!(parse_feature_code(bad), None, "{bad}");
        }
    }

    #[test]
    fn pins_are_checked_against_their_hash() {
        // printf '1001:1234' | sha256sum
        let h = "1bc5218ee72a75f70d19bdff436b706e4c1f3ea09c2fb0715461c89a6acac61d";
        assert!(pin_matches("1001", "1234", h));
        assert!(pin_matches("1001", "1234", &h.to_uppercase()));
        assert!(!pin_matches("1001", "1235", h));
        assert!(!pin_matches("1002", "1234", h));
    }
}
