//! Consultation asked for from the agent desktop (the API): an agent talking to a caller
//! speaks to a colleague or an outside number first, then hands the caller over or goes back
//! to them. hotline holds the caller (their queue's music, hold time in the CDR), rings the
//! consulted party on a leg of the same interaction and, once they answer, bridges the
//! agent's own call to them, so the agent's phone needs no second line.
//!
//! Ways out: the agent completes (the colleague takes the conversation over in the ACD, or
//! the number is bridged to the caller; the agent goes to wrap-up) or cancels (back to the
//! caller). When the consulted party declines, does not answer or hangs up, the agent is back
//! with the caller at once. When the agent hangs up while the colleague is on the line the
//! transfer completes, as on a desk phone; while the colleague still rings, it is cancelled.
//! A consultation the phone itself dials (a second line and REFER with Replaces) is in
//! consult.rs; one that waits in a queue for its next agent, in queue_consult.rs.

use std::time::{Duration, Instant};

use super::agent_api::AgentCommandError;
use super::agent_transfer::{OUTSIDE_RING, Target};
use super::events::{ConsultUpdate, EngineEvent};
use super::legs::{Leg, LegEnd, LegState, Role};
use super::{Engine, InteractionId, LegId, MediaBackend, MediaCommand};
use crate::acd::{AcdEvent, AgentId, AgentState};
use crate::cdr::{TransferKind, TransferRow, TransferTargetKind};

/// How long a colleague's phone rings for a consultation.
pub(super) const CONSULT_RING: Duration = Duration::from_secs(30);

/// Whom a desk consultation rings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Consulted {
    Agent(AgentId),
    Number(String),
    /// The agent a queue offered the consultation to.
    Queue {
        queue: String,
        agent: AgentId,
    },
}

impl<M: MediaBackend> Engine<M> {
    /// The leg of the consultation asked for from the desk on interaction `id`, and who asked.
    pub(super) fn desk_consult(&self, id: InteractionId) -> Option<(LegId, AgentId)> {
        self.legs.values().find_map(|l| match l.role {
            Role::DeskConsult { by, .. } if l.interaction == id => Some((l.id, by)),
            _ => None,
        })
    }

    /// Who consults from the desk on interaction `id`, ringing or talking to someone or
    /// waiting in a queue.
    pub(super) fn desk_consulting(&self, id: InteractionId) -> Option<AgentId> {
        self.queue_consults
            .get(&id)
            .map(|c| c.by)
            .or_else(|| self.desk_consult(id).map(|(_, by)| by))
    }

    /// The consultation `agent` answered as the colleague consulted from a desk.
    pub(super) fn consulted_leg(&self, agent: AgentId) -> Option<LegId> {
        self.legs.values().find_map(|l| match &l.role {
            Role::DeskConsult {
                target: Consulted::Agent(a) | Consulted::Queue { agent: a, .. },
                ..
            } if *a == agent && l.state == LegState::Up => Some(l.id),
            _ => None,
        })
    }

    /// Whether any leg of ours is on `agent`'s phone now (a call, an offer, a consultation).
    pub(super) fn phone_in_use(&self, agent: AgentId) -> bool {
        self.legs.values().any(|l| match &l.role {
            Role::Agent { agent: a } | Role::ConsultTarget { agent: a, .. } => *a == agent,
            Role::DeskConsult {
                target: Consulted::Agent(a) | Consulted::Queue { agent: a, .. },
                ..
            } => *a == agent,
            _ => false,
        })
    }

    /// `agent`, talking to a caller, asks to consult `target`: a colleague's id or extension,
    /// a number through the gateway, or a queue (whoever it offers the consultation to).
    pub(super) fn start_desk_consult(
        &mut self,
        now: Instant,
        agent: AgentId,
        agent_name: &str,
        target: &str,
    ) -> Result<(), AgentCommandError> {
        let (id, agent_leg) = self
            .talking_leg(agent)
            .ok_or_else(|| AgentCommandError::NotOnCall(agent_name.to_string()))?;
        if self.desk_consulting(id).is_some() || self.consult_legs(id).iter().any(Option::is_some) {
            return Err(AgentCommandError::Consulting(agent_name.to_string()));
        }
        // The consultation is heard on the phone's own call: a phone that holds that call
        // would not hear the colleague.
        if self.legs.get(&agent_leg).is_some_and(|l| l.held) {
            return Err(AgentCommandError::PhoneHolds(agent_name.to_string()));
        }
        let unavailable = |why: &str| AgentCommandError::Unavailable {
            target: target.to_string(),
            why: why.to_string(),
        };
        let consulted = match self.transfer_target(id, &format!("sip:{target}@hotline")) {
            None => return Err(AgentCommandError::NoSuchTarget(target.to_string())),
            Some(Target::Queue(q)) => return self.start_queue_consult(now, id, agent, q),
            Some(Target::Number(number)) => Consulted::Number(number),
            Some(Target::Agent { id: to, .. }) => {
                let to = self
                    .acd
                    .agent_id(&to)
                    .ok_or_else(|| AgentCommandError::NoSuchTarget(target.to_string()))?;
                if to == agent {
                    return Err(unavailable("that is the consulting agent"));
                }
                match self.acd.agent_state(to) {
                    None | Some(AgentState::LoggedOut) => return Err(unavailable("logged out")),
                    Some(AgentState::Ringing | AgentState::OnCall | AgentState::OnHold) => {
                        return Err(unavailable("on a call"));
                    }
                    Some(_) if self.phone_in_use(to) => return Err(unavailable("on a call")),
                    Some(_) => {}
                }
                Consulted::Agent(to)
            }
        };
        let placed = match &consulted {
            Consulted::Agent(to) => self
                .ring_colleague(now, id, agent, consulted.clone(), *to)
                .inspect(|leg| self.set_leg_deadline(*leg, Some(now + CONSULT_RING))),
            Consulted::Number(number) => self.ring_number(now, id, agent, number),
            Consulted::Queue { .. } => Err("a queue is consulted through its offers".into()),
        };
        let leg = placed.map_err(|why| {
            tracing::warn!(agent = agent_name, target, why, "consultation not placed");
            unavailable("their phone cannot be reached")
        })?;
        tracing::info!(
            agent = agent_name,
            target,
            ?leg,
            "consultation from the desk: ringing"
        );
        if let Consulted::Agent(to) = &consulted {
            let to = *to;
            // Out of the pool while a colleague's call is on their phone.
            self.acd.handle(
                now,
                AcdEvent::PhoneBusy {
                    agent: to,
                    busy: true,
                },
            );
            self.drain_acd(now);
        }
        // The caller waits on hold (already, if the desk held them).
        if self.acd.agent_state(agent) == Some(&AgentState::OnCall) {
            self.agent_hold(now, id, agent, true);
        }
        self.consult_update(now, id, agent, &consulted, "ringing");
        Ok(())
    }

    /// A leg to colleague `to`'s phone for the consultation `target`.
    pub(super) fn ring_colleague(
        &mut self,
        now: Instant,
        id: InteractionId,
        by: AgentId,
        target: Consulted,
        to: AgentId,
    ) -> Result<LegId, String> {
        let to_def = self.acd.agent_def(to).cloned().ok_or("no such agent")?;
        let contact = self.agent_contact(&to_def).ok_or("no registered phone")?;
        let (from_user, display) = self.acd.agent_def(by).map_or_else(
            || (String::from("hotline"), None),
            |d| (d.extension.clone(), Some(format!("consult: {}", d.name))),
        );
        self.place_leg(
            id,
            Role::DeskConsult { by, target },
            contact.peer.transport == crate::sip::TransportKind::Tls,
            |ua, d, offer| {
                ua.invite_contact(
                    now,
                    d,
                    &contact,
                    &from_user,
                    display.as_deref(),
                    &to_def.extension,
                    Some(offer),
                )
                .map_err(|e| format!("INVITE not sent: {e}"))
            },
        )
    }

    fn ring_number(
        &mut self,
        now: Instant,
        id: InteractionId,
        by: AgentId,
        number: &str,
    ) -> Result<LegId, String> {
        let gateway = self.cfg.outbound.ok_or("no outbound gateway")?;
        let call = self.calls.get(&id).ok_or("the call is over")?;
        let caller = self
            .cfg
            .outbound_caller_id
            .present(&call.caller, &call.dialled)
            .to_string();
        let peer = crate::sip::Peer {
            addr: gateway,
            transport: self.cfg.outbound_transport,
        };
        let leg = self.place_leg(
            id,
            Role::DeskConsult {
                by,
                target: Consulted::Number(number.to_string()),
            },
            peer.transport == crate::sip::TransportKind::Tls,
            |ua, d, offer| {
                ua.invite_as(now, d, peer, &caller, number, Some(offer))
                    .map_err(|e| format!("INVITE not sent: {e}"))
            },
        )?;
        self.set_leg_deadline(leg, Some(now + OUTSIDE_RING));
        Ok(leg)
    }

    /// The consulted party answered: the agent's call is bridged to them (which takes it
    /// from the caller, who hears the hold music meanwhile).
    pub(super) fn desk_consult_answered(&mut self, now: Instant, leg: LegId, id: InteractionId) {
        let Some(Leg {
            role: Role::DeskConsult { by, target },
            dialog,
            ..
        }) = self.legs.get(&leg)
        else {
            return;
        };
        let (by, target, dialog) = (*by, target.clone(), *dialog);
        if let Consulted::Queue { agent: to, .. } = target {
            // The queue's offer was answered: the ACD hangs up on a late answer.
            self.queue_consult_answered(now, id, to);
            if !self.legs.contains_key(&leg) {
                return;
            }
        }
        let Some((_, agent_leg)) = self.talking_leg(by).filter(|(i, _)| *i == id) else {
            // The agent's call ended in the meantime.
            return self.end_desk_consult(now, leg, None);
        };
        let Some(agent_dialog) = self.legs.get(&agent_leg).map(|l| l.dialog) else {
            return;
        };
        self.media.command(MediaCommand::Bridge {
            call: agent_dialog,
            with: dialog,
        });
        self.hold_music(id);
        self.consult_update(now, id, by, &target, "talking");
    }

    /// `agent` hands the caller to whom they consulted. `by`: a supervisor who asked.
    pub(super) fn complete_desk_consult(
        &mut self,
        now: Instant,
        agent: AgentId,
        agent_name: &str,
        reason: Option<String>,
        by: Option<String>,
    ) -> Result<(), AgentCommandError> {
        if self.queue_consult_waits(agent) {
            return Err(AgentCommandError::ConsultRinging(agent_name.to_string()));
        }
        let (id, agent_leg, leg) = self.own_desk_consult(agent, agent_name)?;
        let Some(l) = self.legs.get(&leg) else {
            return Err(AgentCommandError::NotConsulting(agent_name.to_string()));
        };
        if l.state != LegState::Up {
            return Err(AgentCommandError::ConsultRinging(agent_name.to_string()));
        }
        let Role::DeskConsult { target, .. } = l.role.clone() else {
            return Err(AgentCommandError::NotConsulting(agent_name.to_string()));
        };
        let consultation = self.queue_consults.get(&id).map(|c| c.contact);
        match target.clone() {
            Consulted::Agent(to) | Consulted::Queue { agent: to, .. } => {
                // A colleague's phone stays busy (no queue caller offered meanwhile) until
                // the take-over, which clears it.
                if !self.acd.can_take_over(agent, to, consultation) {
                    return Err(AgentCommandError::Unavailable {
                        target: self
                            .acd
                            .agent_def(to)
                            .map(|d| d.id.clone())
                            .unwrap_or_default(),
                        why: "they cannot take the call over now".into(),
                    });
                }
                self.consult_update(now, id, agent, &target, "completed");
                self.queue_consults.remove(&id);
                self.hand_over(now, id, agent, &[agent_leg], to, leg, reason, consultation);
                if let Consulted::Queue { queue, .. } = target {
                    self.transferred_to_queue(id, queue);
                }
            }
            Consulted::Number(number) => {
                self.consult_update(now, id, agent, &target, "completed");
                self.hand_over_to_number(now, id, agent, Some(agent_leg), leg, number, reason);
            }
        }
        // Asked for by a supervisor: the row says so.
        if let (Some(by), Some(call)) = (by, self.calls.get_mut(&id))
            && let Some(row) = call.transfers.last_mut()
        {
            row.by = format!("supervisor:{by}");
        }
        Ok(())
    }

    /// `agent` goes back to the caller; the consulted party's call ends.
    pub(super) fn cancel_desk_consult(
        &mut self,
        now: Instant,
        agent: AgentId,
        agent_name: &str,
    ) -> Result<(), AgentCommandError> {
        if self.queue_consult_waits(agent) {
            self.cancel_waiting_queue_consult(now, agent);
            return Ok(());
        }
        let (_, _, leg) = self.own_desk_consult(agent, agent_name)?;
        self.end_desk_consult(now, leg, Some("cancelled"));
        Ok(())
    }

    /// The agent's call with a caller and its desk consultation.
    fn own_desk_consult(
        &self,
        agent: AgentId,
        agent_name: &str,
    ) -> Result<(InteractionId, LegId, LegId), AgentCommandError> {
        let not = || AgentCommandError::NotConsulting(agent_name.to_string());
        let (id, agent_leg) = self.talking_leg(agent).ok_or_else(not)?;
        match self.desk_consult(id) {
            Some((leg, by)) if by == agent => Ok((id, agent_leg, leg)),
            _ => Err(not()),
        }
    }

    /// The consultation on `id` ends without the caller coming off hold (the call goes on
    /// elsewhere); the colleague it rang, still marked busy, for the caller to free.
    pub(super) fn drop_desk_consult(
        &mut self,
        now: Instant,
        id: InteractionId,
        state: &'static str,
    ) -> Option<AgentId> {
        if self.queue_consults.contains_key(&id) {
            self.drop_queue_consult(now, id, state);
            return None;
        }
        let (leg, _) = self.desk_consult(id)?;
        let Leg {
            role: Role::DeskConsult { by, target },
            ..
        } = self.drop_leg(now, leg)?
        else {
            return None;
        };
        self.consult_update(now, id, by, &target, state);
        match target {
            Consulted::Agent(colleague) => Some(colleague),
            Consulted::Number(_) | Consulted::Queue { .. } => None,
        }
    }

    /// Hang the consultation up (CANCEL or BYE), then as if it had ended by itself.
    fn end_desk_consult(&mut self, now: Instant, leg: LegId, state: Option<&'static str>) {
        if let Some(l) = self.drop_leg(now, leg) {
            self.desk_consult_over(now, l.interaction, &l.role, state);
        }
    }

    /// The consulted party declined, did not answer or hung up: the colleague is free, the
    /// agent back with the caller.
    pub(super) fn desk_consult_leg_ended(
        &mut self,
        now: Instant,
        id: InteractionId,
        role: &Role,
        how: LegEnd,
    ) {
        if let Role::DeskConsult {
            target: Consulted::Queue { agent, .. },
            ..
        } = role
            && self.queue_offer_failed(now, id, *agent, how)
        {
            return;
        }
        let state = match how {
            LegEnd::RemoteBye | LegEnd::RtpTimeout => "ended",
            LegEnd::NoAnswer => "no_answer",
            LegEnd::Failed(_) | LegEnd::NoMedia => "failed",
        };
        self.desk_consult_over(now, id, role, Some(state));
    }

    fn desk_consult_over(
        &mut self,
        now: Instant,
        id: InteractionId,
        role: &Role,
        state: Option<&'static str>,
    ) {
        let Role::DeskConsult { by, target } = role else {
            return;
        };
        match target {
            Consulted::Agent(to) => {
                self.acd.handle(
                    now,
                    AcdEvent::PhoneBusy {
                        agent: *to,
                        busy: false,
                    },
                );
                self.drain_acd(now);
            }
            Consulted::Queue { .. } => self.finish_queue_contact(now, id),
            Consulted::Number(_) => {}
        }
        if let Some(state) = state {
            self.consult_update(now, id, *by, target, state);
        }
        self.back_to_caller(now, id, *by);
    }

    /// The agent's consultation is over: they talk to the caller again.
    pub(super) fn back_to_caller(&mut self, now: Instant, id: InteractionId, by: AgentId) {
        let Some((i, agent_leg)) = self.talking_leg(by) else {
            return;
        };
        if i != id {
            return;
        }
        // Back to the caller; if the phone put its call on hold meanwhile, the caller stays
        // on hold (music on the bridge) until the phone resumes. A conversation that was
        // recorded goes on in a recording of its own.
        let phone_holds = self.legs.get(&agent_leg).is_some_and(|l| l.held);
        if phone_holds {
            self.bridge(agent_leg);
            self.hold_music(id);
        } else {
            self.agent_hold(now, id, by, false);
        }
        self.record_if_asked(now, id);
    }

    /// The agent's call ended during a desk consultation: with the colleague on the line the
    /// caller goes to them; still ringing, the consultation ends. True when handed over.
    pub(super) fn agent_gone_while_consulting(
        &mut self,
        now: Instant,
        id: InteractionId,
        agent: AgentId,
    ) -> bool {
        if self.queue_consult_waits(agent) {
            self.cancel_waiting_queue_consult(now, agent);
            return false;
        }
        let Some((leg, by)) = self.desk_consult(id) else {
            return false;
        };
        if by != agent {
            return false;
        }
        let up = self.legs.get(&leg).map(|l| (l.state, l.role.clone()));
        match up {
            Some((LegState::Up, Role::DeskConsult { target, .. })) => {
                let consultation = self.queue_consults.get(&id).map(|c| c.contact);
                let handed = match target.clone() {
                    Consulted::Agent(to) | Consulted::Queue { agent: to, .. } => {
                        let can = self.acd.can_take_over(agent, to, consultation);
                        if can {
                            self.consult_update(now, id, agent, &target, "completed");
                            self.queue_consults.remove(&id);
                            self.hand_over(now, id, agent, &[], to, leg, None, consultation);
                            if let Consulted::Queue { queue, .. } = target {
                                self.transferred_to_queue(id, queue);
                            }
                        }
                        can
                    }
                    Consulted::Number(number) => {
                        self.consult_update(now, id, agent, &target, "completed");
                        self.hand_over_to_number(now, id, agent, None, leg, number, None);
                        true
                    }
                };
                if !handed {
                    self.end_desk_consult(now, leg, Some("cancelled"));
                }
                handed
            }
            _ => {
                self.end_desk_consult(now, leg, Some("cancelled"));
                false
            }
        }
    }

    /// The consulted number takes the caller; the agent's conversation ends (wrap-up).
    #[allow(clippy::too_many_arguments)]
    fn hand_over_to_number(
        &mut self,
        now: Instant,
        id: InteractionId,
        agent: AgentId,
        agent_leg: Option<LegId>,
        leg: LegId,
        number: String,
        reason: Option<String>,
    ) {
        let wall = self.wall_ms(now);
        let by = self.agent_name(agent);
        let Some(call) = self.calls.get_mut(&id) else {
            return;
        };
        tracing::info!(sip_call_id = %call.sip_call_id, %by, %number, "attended transfer to a number");
        call.transfers.push(TransferRow {
            at_ms: wall,
            kind: TransferKind::Attended,
            target: number.clone(),
            target_kind: TransferTargetKind::Number,
            by,
            reason,
        });
        // As after a blind transfer out: the number's hang-up is the queue node's answered
        // exit, and the agent's conversation is over.
        let answered = call.queue.as_mut().and_then(|v| v.answered.take());
        if let Some(l) = self.legs.get_mut(&leg) {
            l.role = Role::Outside { number };
        }
        if let Some(agent_leg) = agent_leg {
            self.drop_leg(now, agent_leg);
        }
        if let Some((_, _, at)) = answered {
            self.conversation_over(now, id, agent, at);
        }
        self.bridge(leg);
    }

    /// The desk hears how its consultation goes: `queued`, `ringing`, `talking`,
    /// `completed`, `cancelled`, `no_answer`, `failed` (declined or unreachable), `ended`
    /// (hung up).
    pub(super) fn consult_update(
        &mut self,
        now: Instant,
        id: InteractionId,
        agent: AgentId,
        target: &Consulted,
        state: &'static str,
    ) {
        let name = |acd: &crate::acd::Acd, a: AgentId| {
            acd.agent_def(a).map(|d| d.id.clone()).unwrap_or_default()
        };
        let (target, colleague) = match target {
            Consulted::Agent(to) => (name(&self.acd, *to), None),
            Consulted::Number(n) => (n.clone(), None),
            Consulted::Queue { queue, agent: to } => (queue.clone(), Some(name(&self.acd, *to))),
        };
        self.consult_said(now, id, agent, target, colleague, state);
    }

    pub(super) fn consult_said(
        &mut self,
        now: Instant,
        id: InteractionId,
        agent: AgentId,
        target: String,
        colleague: Option<String>,
        state: &'static str,
    ) {
        let at_ms = self.wall_ms(now);
        let Some(def) = self.acd.agent_def(agent) else {
            return;
        };
        let update = ConsultUpdate {
            agent: def.id.clone(),
            team: def.team.clone(),
            call: self
                .calls
                .get(&id)
                .map(|c| c.record_id.clone())
                .unwrap_or_default(),
            target,
            colleague,
            state,
            at_ms,
        };
        self.events.push_back(EngineEvent::Consult(update));
    }
}
