//! Consultation and attended transfer. An agent talking to a caller (usually with the caller
//! on hold) dials a colleague's extension from their phone: hotline rings the colleague on a
//! leg of the same interaction and, once they answer, bridges the two agents. The agent
//! then completes the transfer from the phone (a REFER whose Replaces names the other of
//! its two dialogs): the caller is bridged to the colleague, who takes the conversation
//! over in the ACD, and the first agent goes to wrap-up. Hanging up the consultation
//! instead leaves everything as it was. The consultation is part of the customer's call (a
//! transfer row of its CDR), never a call of its own.

use std::net::IpAddr;
use std::time::Instant;

use super::desk_consult::CONSULT_RING;
use super::legs::{Leg, LegEnd, LegState, Role};
use super::{Engine, InteractionId, LegId, MediaBackend, MediaCommand, Party, stream_params};
use crate::acd::{AcdEvent, AgentId, AgentState};
use crate::cdr::{TransferKind, TransferRow, TransferTargetKind};
use crate::sdp::{self, LocalMedia, SessionDescription};
use crate::sip::{CallRef, Replaces};

/// A call dialled from a phone to an agent's extension.
pub(super) struct ConsultRequest {
    pub dialog: CallRef,
    pub dialled: String,
    pub authenticated: Option<String>,
    pub offer: Option<Vec<u8>>,
    pub local_ip: Option<IpAddr>,
}

impl<M: MediaBackend> Engine<M> {
    /// True when `dialled` names an agent (extension or id) and no flow lists it as one of
    /// its numbers (a default flow does not catch extensions): such a call is a consultation
    /// between agents, never a route for outsiders.
    pub(super) fn dials_an_agent(&self, dialled: &str) -> bool {
        let acd = &self.catalog.acd;
        self.catalog.flows.route_exact(dialled).is_none()
            && (acd.agent_by_extension(dialled).is_some() || acd.agent(dialled).is_some())
    }

    /// An agent dials a colleague. Only an authenticated agent who is talking to a caller
    /// may; the colleague must be logged in and free of other calls.
    pub(super) fn on_consult_invite(&mut self, now: Instant, req: ConsultRequest) {
        let dialog = req.dialog;
        // Authentication first: an outsider learns nothing about who the agents are.
        let Some(user) = req.authenticated else {
            return self.ua.challenge(now, dialog);
        };
        let acd = std::sync::Arc::clone(&self.catalog.acd);
        let from = acd
            .agent_by_extension(&user)
            .and_then(|d| self.acd.agent_id(&d.id));
        let to_def = acd
            .agent_by_extension(&req.dialled)
            .or_else(|| acd.agent(&req.dialled));
        let (Some(from), Some(to_def)) = (from, to_def) else {
            return self.ua.reject(now, dialog, 403, &[]);
        };
        let Some(to) = self.acd.agent_id(&to_def.id) else {
            return self.ua.reject(now, dialog, 404, &[]);
        };
        let Some((id, agent_leg)) = self.talking_leg(from) else {
            tracing::info!(agent = %user, "a call to a colleague outside a customer call; refused");
            return self.ua.reject(now, dialog, 403, &[]);
        };
        if self.consult_legs(id).iter().any(Option::is_some) || self.desk_consulting(id).is_some() {
            return self.ua.reject(now, dialog, 486, &[]);
        }
        match self.acd.agent_state(to) {
            None | Some(AgentState::LoggedOut) => return self.ua.reject(now, dialog, 480, &[]),
            Some(AgentState::Ringing | AgentState::OnCall | AgentState::OnHold) => {
                return self.ua.reject(now, dialog, 486, &[]);
            }
            Some(_) if self.phone_in_use(to) => return self.ua.reject(now, dialog, 486, &[]),
            Some(_) => {}
        }
        let Some(contact) = self.agent_contact(to_def) else {
            return self.ua.reject(now, dialog, 480, &[]);
        };
        // Our side of the agent's consultation dialog answers the offer their INVITE made.
        let Some(call) = self.calls.get(&id) else {
            return self.ua.reject(now, dialog, 480, &[]);
        };
        let address = self
            .cfg
            .media_address
            .or(req.local_ip)
            .unwrap_or(call.local.addr);
        let caller_dialog = call.dialog;
        let offer = req
            .offer
            .as_deref()
            .and_then(|o| SessionDescription::parse_bytes(o).ok());
        let Some(offer) = offer else {
            return self.ua.reject(now, dialog, 488, &[]);
        };
        let port = match self.media.open_beside(dialog, caller_dialog) {
            Ok(port) => port,
            Err(e) => {
                tracing::warn!(error = %e, "no media port for a consultation");
                return self.ua.reject(now, dialog, 503, &[]);
            }
        };
        let mut local = LocalMedia::new(address, port, self.rng.u64(1..1 << 40));
        local.srtp = self.srtp_policy(false, false);
        let Ok(negotiated) = sdp::negotiate(&offer, &local) else {
            self.media.command(MediaCommand::Close { call: dialog });
            return self.ua.reject(now, dialog, 488, &[]);
        };
        let answer = sdp::build_answer(&offer, &local, &negotiated).into_bytes();
        let in_leg = LegId(self.allocate());
        self.dialogs.insert(dialog, Party::Leg(in_leg));
        self.legs.insert(
            in_leg,
            Leg {
                id: in_leg,
                interaction: id,
                dialog,
                role: Role::ConsultCaller { agent: from },
                state: LegState::Ringing,
                local,
                negotiated: Some(negotiated),
                held: false,
                ring_deadline: None,
                answer: Some(answer),
            },
        );
        self.ua.ring(now, dialog);
        let from_def = self.acd.agent_def(from).cloned();
        let (from_user, display) = from_def.map_or((user.clone(), None), |d| {
            (d.extension.clone(), Some(format!("consult: {}", d.name)))
        });
        let to_extension = to_def.extension.clone();
        let placed = self.place_leg(
            id,
            Role::ConsultTarget {
                agent: to,
                by: from,
            },
            contact.peer.transport == crate::sip::TransportKind::Tls,
            |ua, d, offer| {
                ua.invite_contact(
                    now,
                    d,
                    &contact,
                    &from_user,
                    display.as_deref(),
                    &to_extension,
                    Some(offer),
                )
                .map_err(|e| format!("INVITE not sent: {e}"))
            },
        );
        match placed {
            Ok(leg) => {
                tracing::info!(from = %user, to = %to_def.id, ?agent_leg, "consultation: ringing the colleague");
                self.set_leg_deadline(leg, Some(now + CONSULT_RING));
                // Out of the pool while they talk to a colleague, as on any call of their own.
                self.acd.handle(
                    now,
                    AcdEvent::PhoneBusy {
                        agent: to,
                        busy: true,
                    },
                );
                self.drain_acd(now);
            }
            Err(why) => {
                tracing::warn!(to = %to_def.id, why, "consultation not placed");
                self.legs.remove(&in_leg);
                self.dialogs.remove(&dialog);
                self.media.command(MediaCommand::Close { call: dialog });
                self.ua.reject(now, dialog, 480, &[]);
            }
        }
    }

    /// The interaction and leg of the conversation `agent` has with a caller.
    pub(super) fn talking_leg(&self, agent: AgentId) -> Option<(InteractionId, LegId)> {
        self.legs.values().find_map(|l| {
            (l.role == Role::Agent { agent }
                && self
                    .calls
                    .get(&l.interaction)
                    .is_some_and(|c| c.bridged == Some(l.id)))
            .then_some((l.interaction, l.id))
        })
    }

    /// The consultation's two legs on an interaction: the consulting agent's, the colleague's.
    pub(super) fn consult_legs(&self, id: InteractionId) -> [Option<LegId>; 2] {
        let mut found = [None, None];
        for l in self.legs.values().filter(|l| l.interaction == id) {
            match l.role {
                Role::ConsultCaller { .. } => found[0] = Some(l.id),
                Role::ConsultTarget { .. } => found[1] = Some(l.id),
                _ => {}
            }
        }
        found
    }

    /// The colleague answered: answer the consulting agent and bridge the two.
    pub(super) fn consult_answered(&mut self, now: Instant, leg: LegId, id: InteractionId) {
        let [Some(in_leg), _] = self.consult_legs(id) else {
            // The consulting agent gave up in the meantime.
            return self.end_consult_target(now, leg);
        };
        let Some(l) = self.legs.get_mut(&in_leg) else {
            return;
        };
        l.state = LegState::Up;
        let (dialog, answer, negotiated) = (l.dialog, l.answer.take(), l.negotiated);
        if let Some(neg) = negotiated {
            self.media.command(MediaCommand::Start {
                call: dialog,
                params: stream_params(&neg),
            });
        }
        self.ua.answer(now, dialog, answer.unwrap_or_default());
        if let Some(target) = self.legs.get(&leg) {
            self.media.command(MediaCommand::Bridge {
                call: dialog,
                with: target.dialog,
            });
        }
        tracing::info!(?id, "consultation: the agents talk");
    }

    /// One side of a consultation is gone: the other ends too (the colleague's failure code
    /// goes back to the consulting phone), and the colleague is free for the queue again.
    pub(super) fn consult_leg_ended(
        &mut self,
        now: Instant,
        id: InteractionId,
        role: &Role,
        how: LegEnd,
    ) {
        let [in_leg, target] = self.consult_legs(id);
        match role {
            Role::ConsultTarget { agent, .. } => {
                if let Some(in_leg) = in_leg {
                    let unanswered = self
                        .legs
                        .get(&in_leg)
                        .is_some_and(|l| l.state != LegState::Up);
                    if unanswered && let Some(l) = self.legs.get(&in_leg) {
                        let code = match how {
                            LegEnd::Failed(code) if (400..700).contains(&code) => code,
                            LegEnd::NoMedia => 488,
                            _ => 480,
                        };
                        self.ua.reject(now, l.dialog, code, &[]);
                    }
                    self.drop_leg(now, in_leg);
                }
                self.colleague_free(now, *agent);
            }
            Role::ConsultCaller { .. } => {
                if let Some(target) = target {
                    self.end_consult_target(now, target);
                }
            }
            _ => {}
        }
    }

    fn end_consult_target(&mut self, now: Instant, leg: LegId) {
        if let Some(Leg {
            role: Role::ConsultTarget { agent, .. },
            ..
        }) = self.drop_leg(now, leg)
        {
            self.colleague_free(now, agent);
        }
    }

    fn colleague_free(&mut self, now: Instant, agent: AgentId) {
        self.acd
            .handle(now, AcdEvent::PhoneBusy { agent, busy: false });
        self.drain_acd(now);
    }

    /// A REFER with Replaces: the agent joins the caller and the colleague they consulted.
    /// The REFER comes on one of the agent's two dialogs (with the caller, or with the
    /// colleague) and its Replaces names the other one.
    pub(super) fn attended_transfer(
        &mut self,
        now: Instant,
        refer_leg: Option<LegId>,
        refer_dialog: CallRef,
        replaces: &Replaces,
    ) {
        let Some(named) = self.ua.find_replaced(replaces) else {
            tracing::info!(call_id = %replaces.call_id, "attended transfer names no dialog of ours");
            return self.ua.answer_refer(now, refer_dialog, 481);
        };
        let named_leg = match self.dialogs.get(&named) {
            Some(Party::Leg(leg)) => Some(*leg),
            _ => None,
        };
        let (Some(a), Some(b)) = (refer_leg, named_leg) else {
            return self.ua.answer_refer(now, refer_dialog, 403);
        };
        let Some((id, agent_leg, from)) = self.agent_and_consult(a, b) else {
            tracing::info!(
                "attended transfer between dialogs that are not one agent's call and consultation"
            );
            return self.ua.answer_refer(now, refer_dialog, 403);
        };
        let [Some(in_leg), Some(target)] = self.consult_legs(id) else {
            return self.ua.answer_refer(now, refer_dialog, 403);
        };
        let to = match self.legs.get(&target) {
            Some(Leg {
                role: Role::ConsultTarget { agent, .. },
                state: LegState::Up,
                ..
            }) => *agent,
            // The colleague has not answered yet: RFC 3891 lets the phone replace an early
            // dialog, but the colleague would take a caller they never spoke to.
            _ => return self.ua.answer_refer(now, refer_dialog, 488),
        };
        // The colleague's phone stays busy (no queue caller offered meanwhile) until the
        // take-over, which clears it.
        if !self.acd.can_take_over(from, to, None) {
            return self.ua.answer_refer(now, refer_dialog, 403);
        }
        self.ua.answer_refer(now, refer_dialog, 202);
        self.ua.notify_refer(now, refer_dialog, 200, true);
        self.hand_over(now, id, from, &[in_leg, agent_leg], to, target, None, None);
    }

    /// Which of two legs is `agent`'s conversation with the caller and which their side of
    /// a consultation on the same interaction.
    fn agent_and_consult(&self, a: LegId, b: LegId) -> Option<(InteractionId, LegId, AgentId)> {
        let (la, lb) = (self.legs.get(&a)?, self.legs.get(&b)?);
        let (talk, consult) = match (&la.role, &lb.role) {
            (Role::Agent { .. }, Role::ConsultCaller { .. }) => (la, lb),
            (Role::ConsultCaller { .. }, Role::Agent { .. }) => (lb, la),
            _ => return None,
        };
        let (Role::Agent { agent }, Role::ConsultCaller { agent: consulting }) =
            (&talk.role, &consult.role)
        else {
            return None;
        };
        let bridged = self
            .calls
            .get(&talk.interaction)
            .is_some_and(|c| c.bridged == Some(talk.id));
        (agent == consulting && talk.interaction == consult.interaction && bridged).then_some((
            talk.interaction,
            talk.id,
            *agent,
        ))
    }

    /// The colleague's leg becomes the caller's agent leg; the first agent's dialogs
    /// (`ending`) end.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn hand_over(
        &mut self,
        now: Instant,
        id: InteractionId,
        from: AgentId,
        ending: &[LegId],
        to: AgentId,
        target: LegId,
        reason: Option<String>,
        consultation: Option<crate::acd::CallerId>,
    ) {
        let wall = self.wall_ms(now);
        let (by, to_def) = (self.agent_name(from), self.acd.agent_def(to).cloned());
        let Some(call) = self.calls.get_mut(&id) else {
            return;
        };
        let answered_ms = call
            .queue
            .as_ref()
            .and_then(|v| v.answered)
            .map_or(wall, |(_, _, at)| at);
        tracing::info!(sip_call_id = %call.sip_call_id, %by, to = ?to_def.as_ref().map(|d| &d.id), "attended transfer");
        call.transfers.push(TransferRow {
            at_ms: wall,
            kind: TransferKind::Attended,
            target: to_def.as_ref().map(|d| d.id.clone()).unwrap_or_default(),
            target_kind: TransferTargetKind::Agent,
            by,
            reason,
        });
        if let Some(visit) = call.queue.as_mut() {
            visit.answered = Some((to, target, wall));
        }
        if let Some(def) = &to_def {
            call.facts.agent = Some(def.id.clone());
            call.facts.team = def.team.clone();
            let caller = call.caller.clone();
            self.sticky.remember(&caller, &def.id, wall);
        }
        if let Some(l) = self.legs.get_mut(&target) {
            l.role = Role::Agent { agent: to };
        }
        // The ACD moves the conversation first, so the first agent's wrap-up starts from it.
        self.acd.handle(
            now,
            AcdEvent::TakeOver {
                from,
                to,
                consultation,
            },
        );
        for leg in ending {
            self.drop_leg(now, *leg);
        }
        self.conversation_facts_over(now, id, from, answered_ms);
        self.bridge(target);
        self.drain_acd(now);
        self.record_if_asked(now, id);
    }
}
