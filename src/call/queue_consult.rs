//! Consulting a queue from the desk (attended transfer to a queue): the agent does not name
//! a colleague but a queue, and talks first to whichever of its agents the queue offers the
//! consultation to.
//!
//! The consultation waits in the ACD as a contact of its own (a `CallerId` that is no
//! interaction), so its agents are picked and rung by the queue's own strategy, skills, ring
//! timeout and missed-offer rule, and an agent never rings for it and for a caller at once.
//! It waits at the highest priority a flow gives (100; callers at 100 who came first stay
//! ahead): the customer behind it has been answered already and waits on hold, with an
//! agent tied up beside them. The agent who answers talks to the consulting agent on that
//! agent's own call, as for a colleague (desk_consult.rs), and on completion takes the
//! caller over in the ACD (`TakeOver` with the consultation). Agents rung for a
//! consultation see the caller's screen pop. A consultation that ends without a transfer
//! is no call for its agent to wrap up (`ConsultationOver`).

use std::time::{Duration, Instant};

use super::agent_api::AgentCommandError;
use super::desk_consult::Consulted;
use super::legs::{LegEnd, Role};
use super::{Engine, InteractionId, LegId, MediaBackend, MediaCommand};
use crate::acd::{AcdEvent, AgentId, CallerId, OfferFailure, QueueLeave};
use crate::cdr::TransferTargetKind;

/// The queue priority a consultation waits at: the highest a flow gives (0-100).
const CONSULT_PRIORITY: u8 = 100;

/// A desk consultation in a queue, from the moment it is asked for until it is over.
pub(super) struct QueueConsult {
    pub by: AgentId,
    pub queue: String,
    /// What the ACD knows the consultation as.
    pub contact: CallerId,
    /// When it joined the queue (Unix epoch ms).
    pub queued_ms: i64,
}

impl<M: MediaBackend> Engine<M> {
    /// The interaction a queued consultation is about.
    pub(super) fn queue_consult_of(&self, contact: CallerId) -> Option<InteractionId> {
        self.queue_consults
            .iter()
            .find_map(|(id, c)| (c.contact == contact).then_some(*id))
    }

    /// `agent`, talking to the caller of `id`, consults `queue`; the caller goes on hold.
    pub(super) fn start_queue_consult(
        &mut self,
        now: Instant,
        id: InteractionId,
        agent: AgentId,
        queue: String,
    ) -> Result<(), AgentCommandError> {
        self.acd
            .accepts(&queue)
            .map_err(|why| AgentCommandError::Unavailable {
                target: queue.clone(),
                why: why.to_string(),
            })?;
        let contact = CallerId(self.allocate());
        let queued_ms = self.wall_ms(now);
        tracing::info!(?agent, %queue, ?contact, "consultation from the desk: queued");
        self.queue_consults.insert(
            id,
            QueueConsult {
                by: agent,
                queue: queue.clone(),
                contact,
                queued_ms,
            },
        );
        if self.acd.agent_state(agent) == Some(&crate::acd::AgentState::OnCall) {
            self.agent_hold(now, id, agent, true);
        }
        self.waiting_music(id, agent, &queue);
        self.consult_said(now, id, agent, queue.clone(), None, "queued");
        self.acd.handle(
            now,
            AcdEvent::Enqueue {
                caller: contact,
                queue,
                priority: CONSULT_PRIORITY,
                skills: Vec::new(),
                sticky: None,
                sticky_for: None,
                // The queue's own longest wait applies.
                max_wait: Duration::MAX,
            },
        );
        self.drain_acd(now);
        Ok(())
    }

    /// The ACD offers the consultation on `id` to agent `to`: ring their phone, with the
    /// caller's screen pop on their desk.
    pub(super) fn offer_queue_consult(&mut self, now: Instant, id: InteractionId, to: AgentId) {
        let Some(c) = self.queue_consults.get(&id) else {
            return;
        };
        let (by, contact, queue, queued_ms) = (c.by, c.contact, c.queue.clone(), c.queued_ms);
        let target = Consulted::Queue {
            queue: queue.clone(),
            agent: to,
        };
        // The ACD's ring timeout governs, as for a caller's offer: no timer of the leg's own.
        match self.ring_colleague(now, id, by, target.clone(), to) {
            Ok(_) => {
                if let Some(def) = self.acd.agent_def(to).cloned()
                    && let Some(mut pop) = self.screen_pop(now, id, &def, &queue)
                {
                    // What this offer is: the consultation's place and wait in the queue.
                    pop.priority = CONSULT_PRIORITY;
                    pop.waited_ms = self.wall_ms(now) - queued_ms;
                    self.events
                        .push_back(super::events::EngineEvent::Offer(Box::new(pop)));
                }
                self.consult_update(now, id, by, &target, "ringing");
            }
            Err(why) => {
                tracing::warn!(agent = ?to, why, "consultation offer not placed");
                self.acd.handle(
                    now,
                    AcdEvent::OfferFailed {
                        caller: contact,
                        agent: to,
                        why: OfferFailure::Unreachable,
                    },
                );
            }
        }
    }

    /// The ACD ended its offer of the consultation to `to` (no answer, another agent was
    /// first, the consultation is over).
    pub(super) fn queue_consult_offer_ended(
        &mut self,
        now: Instant,
        id: InteractionId,
        to: AgentId,
    ) {
        if let Some(leg) = self.queue_consult_leg(id, to) {
            self.drop_leg(now, leg);
        }
        self.still_queued(now, id);
    }

    /// The consultation left the queue unanswered: the agent is back with the caller.
    pub(super) fn queue_consult_left(&mut self, now: Instant, id: InteractionId, why: QueueLeave) {
        let Some(c) = self.queue_consults.remove(&id) else {
            return;
        };
        let state = match why {
            QueueLeave::Timeout => "no_answer",
            QueueLeave::Full | QueueLeave::NoAgents => "failed",
        };
        self.consult_said(now, id, c.by, c.queue, None, state);
        self.back_to_caller(now, id, c.by);
    }

    /// Agent `to` answered the consultation's offer (which the ACD may find too late).
    pub(super) fn queue_consult_answered(&mut self, now: Instant, id: InteractionId, to: AgentId) {
        let Some(contact) = self.queue_consults.get(&id).map(|c| c.contact) else {
            if let Some(leg) = self.queue_consult_leg(id, to) {
                self.drop_leg(now, leg);
            }
            return;
        };
        self.acd.handle(
            now,
            AcdEvent::OfferAnswered {
                caller: contact,
                agent: to,
            },
        );
        self.drain_acd(now);
    }

    /// A consultation leg to `to` ended before it was answered: the queue offers the next
    /// agent. False when it had been answered (the consultation is over).
    pub(super) fn queue_offer_failed(
        &mut self,
        now: Instant,
        id: InteractionId,
        to: AgentId,
        how: LegEnd,
    ) -> bool {
        let Some(contact) = self.queue_consults.get(&id).map(|c| c.contact) else {
            // Over already; nothing rings for it any more.
            return true;
        };
        if self.acd.offered_to(to) != Some(contact) {
            return false;
        }
        let why = match how {
            LegEnd::Failed(code) => super::queue::failure_of(code),
            LegEnd::NoAnswer | LegEnd::NoMedia | LegEnd::RemoteBye | LegEnd::RtpTimeout => {
                OfferFailure::Unreachable
            }
        };
        self.acd.handle(
            now,
            AcdEvent::OfferFailed {
                caller: contact,
                agent: to,
                why,
            },
        );
        // Its EndOffer tells the desk the queue looks further.
        self.drain_acd(now);
        true
    }

    /// Whether `agent`'s consultation waits in a queue with nobody answered yet.
    pub(super) fn queue_consult_waits(&self, agent: AgentId) -> bool {
        self.queue_consults.iter().any(|(id, c)| {
            c.by == agent
                && !self.legs.values().any(|l| {
                    l.interaction == *id
                        && matches!(l.role, Role::DeskConsult { .. })
                        && l.state == super::legs::LegState::Up
                })
        })
    }

    /// `agent` gives up on a consultation nobody has answered yet.
    pub(super) fn cancel_waiting_queue_consult(&mut self, now: Instant, agent: AgentId) {
        let Some(id) = self
            .queue_consults
            .iter()
            .find_map(|(id, c)| (c.by == agent).then_some(*id))
        else {
            return;
        };
        if let Some(queue) = self.queue_consults.get(&id).map(|c| c.queue.clone()) {
            self.finish_queue_contact(now, id);
            self.consult_said(now, id, agent, queue, None, "cancelled");
            self.back_to_caller(now, id, agent);
        }
    }

    /// The queued consultation on `id` ends without the caller coming off hold (the call
    /// goes on elsewhere or is over).
    pub(super) fn drop_queue_consult(
        &mut self,
        now: Instant,
        id: InteractionId,
        state: &'static str,
    ) {
        if let Some(c) = self.queue_consults.get(&id) {
            let (by, queue) = (c.by, c.queue.clone());
            self.finish_queue_contact(now, id);
            self.consult_said(now, id, by, queue, None, state);
        }
    }

    /// Takes the consultation out of the ACD and hangs up every phone it rang: a waiting
    /// one leaves its queue; one that was answered ends, and its agent is free at once.
    pub(super) fn finish_queue_contact(&mut self, now: Instant, id: InteractionId) {
        let Some(contact) = self.queue_consults.get(&id).map(|c| c.contact) else {
            return;
        };
        let legs: Vec<LegId> = self
            .legs
            .values()
            .filter(|l| {
                l.interaction == id
                    && matches!(
                        l.role,
                        Role::DeskConsult {
                            target: Consulted::Queue { .. },
                            ..
                        }
                    )
            })
            .map(|l| l.id)
            .collect();
        for leg in legs {
            self.drop_leg(now, leg);
        }
        // Known as ours until the ACD's last word on it (EndOffers) is heard.
        self.acd
            .handle(now, AcdEvent::ConsultationOver { caller: contact });
        self.drain_acd(now);
        self.queue_consults.remove(&id);
    }

    /// The attended transfer just recorded went to a queue (through the agent it offered).
    pub(super) fn transferred_to_queue(&mut self, id: InteractionId, queue: String) {
        if let Some(row) = self
            .calls
            .get_mut(&id)
            .and_then(|call| call.transfers.last_mut())
        {
            row.target = queue;
            row.target_kind = TransferTargetKind::Queue;
        }
    }

    /// While the consultation waits, its agent hears the consulted queue's music rather than
    /// silence (nothing without one). A colleague's answer, which bridges the agent to them,
    /// or the way back to the caller ends it.
    fn waiting_music(&mut self, id: InteractionId, agent: AgentId, queue: &str) {
        let Some((_, leg)) = self.talking_leg(agent).filter(|(i, _)| *i == id) else {
            return;
        };
        let (Some(l), Some(call)) = (self.legs.get(&leg), self.calls.get(&id)) else {
            return;
        };
        let Some(neg) = l.negotiated else {
            return;
        };
        let prompts = super::queue::queue_music(call, queue, neg.codec);
        if !prompts.is_empty() {
            let dialog = l.dialog;
            self.media.command(MediaCommand::Music {
                call: dialog,
                prompts,
            });
        }
    }

    fn queue_consult_leg(&self, id: InteractionId, to: AgentId) -> Option<LegId> {
        self.legs.values().find_map(|l| match &l.role {
            Role::DeskConsult {
                target: Consulted::Queue { agent, .. },
                ..
            } if l.interaction == id && *agent == to => Some(l.id),
            _ => None,
        })
    }

    /// After an offer of a consultation that still waits ended, the desk hears who rings
    /// now, or that the queue looks further.
    fn still_queued(&mut self, now: Instant, id: InteractionId) {
        let Some(c) = self.queue_consults.get(&id) else {
            return;
        };
        if self.acd.queue_of(c.contact).is_none() {
            return;
        }
        let (by, queue) = (c.by, c.queue.clone());
        let ringing = self.legs.values().find_map(|l| match &l.role {
            Role::DeskConsult {
                target: target @ Consulted::Queue { .. },
                ..
            } if l.interaction == id => Some(target.clone()),
            _ => None,
        });
        match ringing {
            Some(target) => self.consult_update(now, id, by, &target, "ringing"),
            None => self.consult_said(now, id, by, queue, None, "queued"),
        }
    }
}
