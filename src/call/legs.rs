//! Legs: the dialogs hotline places on behalf of an interaction (a transfer target now, agent
//! offers with the ACD). One `Leg` type for every role, with its own state and timer; the
//! role decides only what its answer, failure and hang-up mean for the interaction.

use std::cmp::Reverse;
use std::time::Instant;

use super::{
    Engine, InteractionId, LegId, MediaBackend, MediaCommand, MediaEvent, Party, Timer,
    stream_params,
};
use crate::acd::AgentId;
use crate::flow::TaskId;
use crate::sdp::{self, Direction, LocalMedia, Negotiated, SessionDescription};
use crate::sip::{CallRef, UaEvent};

/// What a leg is for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Role {
    /// The target of the flow's `transfer` node.
    TransferTarget { task: TaskId, target: String },
    /// An agent offered the caller by the ACD (or who took them over from a colleague).
    Agent { agent: AgentId },
    /// An agent's own call to a colleague about this caller (inbound: hotline answers it).
    ConsultCaller { agent: AgentId },
    /// The colleague rung for that consultation.
    ConsultTarget { agent: AgentId, by: AgentId },
    /// A colleague or number an agent consults from the desk, on their call's own leg.
    DeskConsult {
        by: AgentId,
        target: super::desk_consult::Consulted,
    },
    /// An outside number an agent transferred the caller to.
    Outside { number: String },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum LegState {
    /// INVITE sent, nothing back yet.
    Calling,
    /// A provisional response came: the phone rings.
    Ringing,
    /// Answered: media runs.
    Up,
}

pub(super) struct Leg {
    pub id: LegId,
    pub interaction: InteractionId,
    /// The leg's dialog, which is also the key of its media stream.
    pub dialog: CallRef,
    pub role: Role,
    pub state: LegState,
    pub local: LocalMedia,
    pub negotiated: Option<Negotiated>,
    /// The far end put us on hold (re-INVITE sendonly or inactive).
    pub held: bool,
    /// The leg's own timer: give up ringing at this instant.
    pub ring_deadline: Option<Instant>,
    /// An inbound leg's SDP answer, sent when it is answered.
    pub answer: Option<Vec<u8>>,
}

/// Why a leg did not (or no longer does) carry a conversation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum LegEnd {
    /// A final non-2xx (its code), or 408 when nothing answered at all.
    Failed(u16),
    /// The leg's own ring timer ran out.
    NoAnswer,
    /// It answered without SDP we can use.
    NoMedia,
    /// The far end hung up after answering.
    RemoteBye,
    /// No RTP from the far end for the media's timeout.
    RtpTimeout,
}

impl<M: MediaBackend> Engine<M> {
    /// Place a leg for `interaction`: a port beside the caller's stream, an offer, the INVITE.
    /// On failure nothing is left behind and the reason comes back. `invite` sends the
    /// INVITE for the reserved dialog with the offer.
    pub(super) fn place_leg(
        &mut self,
        interaction: InteractionId,
        role: Role,
        over_tls: bool,
        invite: impl FnOnce(&mut crate::sip::UserAgent, CallRef, Vec<u8>) -> Result<(), String>,
    ) -> Result<LegId, String> {
        let Some(call) = self.calls.get(&interaction) else {
            return Err("the call is over".into());
        };
        let (caller_dialog, address) = (call.dialog, call.local.addr);
        let dialog = self.ua.reserve_call();
        let port = self
            .media
            .open_beside(dialog, caller_dialog)
            .map_err(|e| format!("no media port: {e}"))?;
        let mut local = LocalMedia::new(address, port, self.rng.u64(1..1 << 40));
        local.srtp = self.srtp_policy(true, over_tls);
        let offer = sdp::build_offer(&local, Direction::SendRecv);
        if let Err(e) = invite(&mut self.ua, dialog, offer.into_bytes()) {
            self.media.command(MediaCommand::Close { call: dialog });
            return Err(e);
        }
        let id = LegId(self.allocate());
        self.dialogs.insert(dialog, Party::Leg(id));
        self.legs.insert(
            id,
            Leg {
                id,
                interaction,
                dialog,
                role,
                state: LegState::Calling,
                local,
                negotiated: None,
                held: false,
                ring_deadline: None,
                answer: None,
            },
        );
        Ok(id)
    }

    pub(super) fn set_leg_deadline(&mut self, leg: LegId, at: Option<Instant>) {
        if let Some(l) = self.legs.get_mut(&leg) {
            l.ring_deadline = at;
            if let Some(at) = at {
                self.deadlines.push(Reverse((at, Timer::Leg(leg))));
            }
        }
    }

    pub(super) fn leg_timer(&mut self, now: Instant, leg: LegId, at: Instant) {
        let Some(l) = self.legs.get(&leg) else {
            return;
        };
        if l.ring_deadline != Some(at) || l.state == LegState::Up {
            return;
        }
        let snap = leg_snapshot(l);
        self.drop_leg(now, leg);
        self.leg_ended(now, snap, LegEnd::NoAnswer);
    }

    /// Hang the leg up (CANCEL while it rings, BYE once up) and forget it: later events of
    /// its dialog find no owner and are absorbed by the UA.
    pub(super) fn drop_leg(&mut self, now: Instant, leg: LegId) -> Option<Leg> {
        let l = self.legs.remove(&leg)?;
        self.dialogs.remove(&l.dialog);
        self.ua.hangup(now, l.dialog);
        self.media.command(MediaCommand::Close { call: l.dialog });
        if let Some(call) = self.calls.get_mut(&l.interaction)
            && call.bridged == Some(leg)
        {
            call.bridged = None;
        }
        Some(l)
    }

    /// Every leg an interaction placed ends with it.
    pub(super) fn end_legs_of(&mut self, now: Instant, interaction: InteractionId) {
        if let Some(agent) = self.drop_desk_consult(now, interaction, "ended") {
            self.acd
                .handle(now, crate::acd::AcdEvent::PhoneBusy { agent, busy: false });
            self.drain_acd(now);
        }
        let mine: Vec<LegId> = self
            .legs
            .values()
            .filter(|l| l.interaction == interaction)
            .map(|l| l.id)
            .collect();
        for leg in mine {
            if let Some(Leg {
                role: Role::ConsultTarget { agent, .. },
                ..
            }) = self.drop_leg(now, leg)
            {
                self.acd
                    .handle(now, crate::acd::AcdEvent::PhoneBusy { agent, busy: false });
                self.drain_acd(now);
            }
        }
    }

    pub(super) fn leg_event(&mut self, now: Instant, leg: LegId, event: UaEvent) {
        let Some(l) = self.legs.get_mut(&leg) else {
            return;
        };
        match event {
            UaEvent::Progress { .. } if l.state == LegState::Calling => {
                l.state = LegState::Ringing;
            }
            UaEvent::Answered { answer, .. } => {
                let negotiated = answer
                    .as_deref()
                    .and_then(|a| SessionDescription::parse_bytes(a).ok())
                    .and_then(|a| sdp::accept_answer(&a, &l.local).ok());
                let Some(neg) = negotiated else {
                    let snap = leg_snapshot(l);
                    self.drop_leg(now, leg);
                    return self.leg_ended(now, snap, LegEnd::NoMedia);
                };
                l.state = LegState::Up;
                l.negotiated = Some(neg);
                l.ring_deadline = None;
                let dialog = l.dialog;
                self.media.command(MediaCommand::Start {
                    call: dialog,
                    params: stream_params(&neg),
                });
                self.leg_answered(now, leg);
            }
            UaEvent::Failed { code, .. } => {
                let snap = leg_snapshot(l);
                self.legs.remove(&leg);
                self.dialogs.remove(&snap.dialog);
                self.media
                    .command(MediaCommand::Close { call: snap.dialog });
                self.unbridge_if(snap.interaction, leg);
                self.leg_ended(now, snap, LegEnd::Failed(code));
            }
            UaEvent::RemoteBye { .. } | UaEvent::Ended { .. } | UaEvent::Cancelled { .. } => {
                let snap = leg_snapshot(l);
                self.legs.remove(&leg);
                self.dialogs.remove(&snap.dialog);
                self.media
                    .command(MediaCommand::Close { call: snap.dialog });
                self.unbridge_if(snap.interaction, leg);
                self.leg_ended(now, snap, LegEnd::RemoteBye);
            }
            UaEvent::ReInvite { offer, .. } => self.leg_reinvite(now, leg, offer),
            UaEvent::Dtmf { digit, .. } => {
                tracing::debug!(?leg, %digit, "a key from a leg (INFO)");
            }
            _ => {}
        }
    }

    pub(super) fn leg_media(&mut self, now: Instant, leg: LegId, event: MediaEvent) {
        let Some(l) = self.legs.get(&leg) else {
            return;
        };
        match event {
            MediaEvent::RtpTimeout { .. } => {
                tracing::info!(?leg, "no RTP from a leg; hanging it up");
                let snap = leg_snapshot(l);
                self.drop_leg(now, leg);
                self.leg_ended(now, snap, LegEnd::RtpTimeout);
            }
            MediaEvent::Digit { digit, .. } => {
                tracing::debug!(?leg, %digit, "a key from a leg");
            }
            MediaEvent::PlayDone { .. }
            | MediaEvent::Recorded { .. }
            | MediaEvent::RecordedStereo { .. } => {}
        }
    }

    /// Hold and resume from the far end of a leg: answer with our direction mirrored.
    fn leg_reinvite(&mut self, now: Instant, leg: LegId, offer: Option<Vec<u8>>) {
        let Some(l) = self.legs.get_mut(&leg) else {
            return;
        };
        l.local.session_version += 1;
        let Some(offer) = offer else {
            let body = sdp::build_offer(
                &super::reoffer(&l.local, l.negotiated.as_ref()),
                Direction::SendRecv,
            );
            return self.ua.answer_reinvite(now, l.dialog, body.into_bytes());
        };
        let parsed = SessionDescription::parse_bytes(&offer).ok();
        let neg = parsed
            .as_ref()
            .and_then(|o| sdp::negotiate(o, &l.local).ok())
            .filter(|n| super::srtp_change_allowed(l.negotiated.as_ref(), n));
        let (Some(o), Some(n)) = (parsed, neg) else {
            return self.ua.reject_reinvite(now, l.dialog, 488);
        };
        let body = sdp::build_answer(&o, &l.local, &n);
        let held = !n.direction.receives() || !n.direction.sends();
        let was_held = l.held;
        l.held = held;
        l.negotiated = Some(n);
        let dialog = l.dialog;
        self.media.command(MediaCommand::Update {
            call: dialog,
            params: stream_params(&n),
        });
        self.ua.answer_reinvite(now, dialog, body.into_bytes());
        if held != was_held {
            tracing::info!(?leg, held, "a leg's hold changed");
            let (interaction, role) = (l.interaction, l.role.clone());
            let bridged = self
                .calls
                .get(&interaction)
                .is_some_and(|c| c.bridged == Some(leg));
            // During a consultation from the desk the caller is on hold already and the
            // phone's call carries the consultation: the phone's hold is its own business
            // (the consultation's end looks at it).
            let consulting = self
                .desk_consulting(interaction)
                .is_some_and(|by| role == Role::Agent { agent: by });
            if let (Role::Agent { agent }, true, false) = (role, bridged, consulting) {
                self.agent_hold(now, interaction, agent, held);
            }
        }
    }

    /// hotline hangs a leg up on its party's behalf (an agent's "hang up" in the browser):
    /// BYE to the phone, then everything that follows as if the phone had hung up.
    pub(super) fn hang_up_leg(&mut self, now: Instant, leg: LegId) {
        if let Some(l) = self.drop_leg(now, leg) {
            self.leg_ended(now, leg_snapshot(&l), LegEnd::RemoteBye);
        }
    }

    fn unbridge_if(&mut self, interaction: InteractionId, leg: LegId) {
        if let Some(call) = self.calls.get_mut(&interaction)
            && call.bridged == Some(leg)
        {
            call.bridged = None;
        }
    }

    /// Bridge a leg that is up with its caller.
    pub(super) fn bridge(&mut self, leg: LegId) {
        let Some(l) = self.legs.get(&leg) else {
            return;
        };
        let Some(call) = self.calls.get_mut(&l.interaction) else {
            return;
        };
        call.bridged = Some(leg);
        self.media.command(MediaCommand::Bridge {
            call: call.dialog,
            with: l.dialog,
        });
    }

    fn leg_answered(&mut self, now: Instant, leg: LegId) {
        let Some(l) = self.legs.get(&leg) else {
            return;
        };
        match l.role.clone() {
            Role::TransferTarget { task, target } => {
                self.transfer_answered(now, leg, l.interaction, task, &target)
            }
            Role::Agent { agent } => self.agent_answered(now, leg, l.interaction, agent),
            Role::ConsultTarget { .. } => self.consult_answered(now, leg, l.interaction),
            Role::DeskConsult { .. } => self.desk_consult_answered(now, leg, l.interaction),
            Role::Outside { number } => self.outside_answered(now, leg, l.interaction, &number),
            // Inbound: answered by hotline itself, never by an event.
            Role::ConsultCaller { .. } => {}
        }
    }

    /// A leg is gone (already forgotten): tell whoever placed it.
    fn leg_ended(&mut self, now: Instant, leg: EndedLeg, how: LegEnd) {
        match leg.role {
            Role::TransferTarget { task, target } => {
                self.transfer_leg_ended(now, leg.interaction, task, &target, how)
            }
            Role::Agent { agent } => self.agent_leg_ended(now, leg.interaction, agent, how),
            Role::ConsultCaller { .. } | Role::ConsultTarget { .. } => {
                self.consult_leg_ended(now, leg.interaction, &leg.role, how)
            }
            Role::DeskConsult { .. } => {
                self.desk_consult_leg_ended(now, leg.interaction, &leg.role, how)
            }
            Role::Outside { number } => self.outside_leg_ended(now, leg.interaction, &number, how),
        }
    }
}

/// What is still needed of a leg once it is forgotten.
pub(super) struct EndedLeg {
    pub interaction: InteractionId,
    pub dialog: CallRef,
    pub role: Role,
}

fn leg_snapshot(l: &Leg) -> EndedLeg {
    EndedLeg {
        interaction: l.interaction,
        dialog: l.dialog,
        role: l.role.clone(),
    }
}
