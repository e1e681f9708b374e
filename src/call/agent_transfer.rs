//! Blind transfers an agent makes from their phone: a REFER on the agent's leg names a
//! colleague (agent id or extension), a queue, or an outside number (through the
//! configured outbound gateway). hotline keeps the caller (back to back): for a colleague
//! or a queue it puts them back in a queue (offered to the colleague first); for a number
//! it calls the number and bridges it, or puts the caller back in their queue when nobody
//! answers. The agent's leg ends and the agent goes to wrap-up. The transfer is a row of
//! the call's CDR, not a new call. Attended transfers (Replaces) are in consult.rs.

use std::time::{Duration, Instant};

use super::legs::{LegEnd, Role};
use super::queue::caller_id;
use super::{Engine, InteractionId, LegId, MediaBackend, MediaCommand};
use crate::acd::{AcdEvent, AgentId};
use crate::cdr::{TransferKind, TransferRow, TransferTargetKind};
use crate::sip::Replaces;

/// How long a caller transferred to a colleague is offered to that colleague alone before
/// the rest of the queue may take them.
pub(super) const COLLEAGUE_FIRST: Duration = Duration::from_secs(60);
/// A transferred caller's longest wait in the new queue (the queue's own `max_wait` applies
/// when shorter); the flow's queue node timeout was for the first queue.
pub(super) const TRANSFER_MAX_WAIT: Duration = Duration::from_secs(3600);
/// How long an outside number rings before the caller goes back to their queue.
pub(super) const OUTSIDE_RING: Duration = Duration::from_secs(45);

/// Why a call command from the API could not be carried out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum ApiCallError {
    NotOnCall,
    NoSuchTarget,
}

/// What a REFER's target names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Target {
    Agent { id: String, queue: String },
    Queue(String),
    Number(String),
}

/// The user part of a `sip:` or `tel:` URI (`<sip:1002@host;transport=udp>` -> `1002`).
fn uri_user(uri: &str) -> Option<&str> {
    let uri = uri.trim().trim_start_matches('<').trim_end_matches('>');
    let rest = uri
        .strip_prefix("sip:")
        .or_else(|| uri.strip_prefix("sips:"))
        .or_else(|| uri.strip_prefix("tel:"))?;
    let user = rest.split(['@', ';', '?']).next()?;
    (!user.is_empty()).then_some(user)
}

impl<M: MediaBackend> Engine<M> {
    /// A REFER on one of our dialogs. Only an agent talking to a caller may transfer; the
    /// caller's own phone may not move hotline's side of the call anywhere (no relay).
    pub(super) fn on_refer(
        &mut self,
        now: Instant,
        leg: Option<LegId>,
        dialog: crate::sip::CallRef,
        target: &str,
        replaces: Option<Replaces>,
    ) {
        if let Some(replaces) = replaces {
            return self.attended_transfer(now, leg, dialog, &replaces);
        }
        let Some((id, agent)) = leg.and_then(|leg| self.bridged_agent(leg)) else {
            tracing::info!(target, "REFER from a party that may not transfer; refused");
            return self.ua.answer_refer(now, dialog, 403);
        };
        let Some(target) = self.transfer_target(id, target) else {
            tracing::info!(
                target,
                "REFER to nowhere: no such agent, queue or dialable number"
            );
            return self.ua.answer_refer(now, dialog, 404);
        };
        self.ua.answer_refer(now, dialog, 202);
        self.ua.notify_refer(now, dialog, 200, true);
        // The phone's own transfer wins over a consultation the desk started: it ends without
        // taking the caller off hold, and the colleague is free only once the caller is
        // queued (so a transfer to that very colleague finds them first).
        let colleague = self.drop_desk_consult(now, id, "cancelled");
        self.blind_transfer(now, id, agent, target, None);
        if let Some(colleague) = colleague {
            self.acd.handle(
                now,
                crate::acd::AcdEvent::PhoneBusy {
                    agent: colleague,
                    busy: false,
                },
            );
            self.drain_acd(now);
        }
    }

    /// A blind transfer asked for through the API, with its reason: the target as the agent
    /// would dial it (a colleague's id or extension, a queue, a number). Err: not on a call,
    /// or no such target.
    pub(super) fn api_transfer(
        &mut self,
        now: Instant,
        agent: AgentId,
        target: &str,
        reason: Option<String>,
        by: Option<String>,
    ) -> Result<(), ApiCallError> {
        let (id, _) = self.talking_leg(agent).ok_or(ApiCallError::NotOnCall)?;
        let target = self
            .transfer_target(id, &format!("sip:{target}@hotline"))
            .ok_or(ApiCallError::NoSuchTarget)?;
        self.blind_transfer(now, id, agent, target, reason);
        // Asked for by a supervisor: the row says so, and it is not the agent's transfer.
        if let (Some(by), Some(call)) = (by, self.calls.get_mut(&id))
            && let Some(row) = call.transfers.last_mut()
        {
            row.by = format!("supervisor:{by}");
        }
        Ok(())
    }

    /// The interaction and agent of an agent leg bridged to its caller.
    fn bridged_agent(&self, leg: LegId) -> Option<(InteractionId, AgentId)> {
        let l = self.legs.get(&leg)?;
        let Role::Agent { agent } = l.role else {
            return None;
        };
        let call = self.calls.get(&l.interaction)?;
        (call.bridged == Some(leg)).then_some((l.interaction, agent))
    }

    pub(super) fn transfer_target(&self, id: InteractionId, uri: &str) -> Option<Target> {
        let user = uri_user(uri)?;
        let call = self.calls.get(&id)?;
        let acd = &call.catalog.acd;
        if let Some(a) = acd.agent(user).or_else(|| acd.agent_by_extension(user)) {
            let queue = call.queue.as_ref()?.queue.clone();
            return Some(Target::Agent {
                id: a.id.clone(),
                queue,
            });
        }
        if let Some(q) = acd.queue(user) {
            return Some(Target::Queue(q.name.clone()));
        }
        // Anything else must be a number, and numbers leave only through the gateway.
        let dialable = user.len() <= 32
            && user
                .trim_start_matches('+')
                .chars()
                .all(|c| c.is_ascii_digit())
            && user.chars().any(|c| c.is_ascii_digit());
        (dialable && self.cfg.outbound.is_some()).then(|| Target::Number(user.to_string()))
    }

    /// The agent hands the caller on: their conversation ends (wrap-up), the caller waits
    /// again, and the CDR notes who sent them where.
    fn blind_transfer(
        &mut self,
        now: Instant,
        id: InteractionId,
        agent: AgentId,
        target: Target,
        reason: Option<String>,
    ) {
        let wall = self.wall_ms(now);
        let by = self.agent_name(agent);
        let (target_kind, target_text, queue, sticky) = match target {
            Target::Agent { id: to, queue } => {
                (TransferTargetKind::Agent, to.clone(), queue, Some(to))
            }
            Target::Queue(q) => (TransferTargetKind::Queue, q.clone(), q, None),
            Target::Number(number) => return self.transfer_out(now, id, agent, number, reason),
        };
        let Some(call) = self.calls.get_mut(&id) else {
            return;
        };
        let Some(visit) = call.queue.take() else {
            return;
        };
        tracing::info!(sip_call_id = %call.sip_call_id, %by, target = %target_text, "blind transfer by the agent");
        call.transfers.push(TransferRow {
            at_ms: wall,
            kind: TransferKind::Blind,
            target: target_text,
            target_kind,
            by,
            reason,
        });
        let answered_ms = visit.answered.map_or(wall, |(_, _, at)| at);
        let leg = visit.answered.map(|(_, leg, _)| leg);
        let mut old = visit.clone();
        old.left_ms.get_or_insert(wall);
        call.past_queues.push(old);
        call.queue = Some(visit.again_in(queue.clone(), wall));
        // The caller hears the queue again while the next agent is found.
        let dialog = call.dialog;
        self.media.command(MediaCommand::Unbridge { call: dialog });
        if let Some(leg) = leg {
            self.drop_leg(now, leg);
        }
        self.conversation_over(now, id, agent, answered_ms);
        self.start_music(id);
        self.acd.handle(
            now,
            AcdEvent::Enqueue {
                caller: caller_id(id),
                queue,
                priority: 0,
                skills: Vec::new(),
                sticky_for: sticky.as_ref().map(|_| COLLEAGUE_FIRST),
                sticky,
                max_wait: TRANSFER_MAX_WAIT,
            },
        );
        self.drain_acd(now);
    }
}

impl<M: MediaBackend> Engine<M> {
    /// The agent sends the caller to an outside number: their conversation ends, the caller
    /// hears music while the number rings through the gateway.
    fn transfer_out(
        &mut self,
        now: Instant,
        id: InteractionId,
        agent: AgentId,
        number: String,
        reason: Option<String>,
    ) {
        let wall = self.wall_ms(now);
        let by = self.agent_name(agent);
        let Some(gateway) = self.cfg.outbound else {
            return;
        };
        let Some(call) = self.calls.get_mut(&id) else {
            return;
        };
        tracing::info!(sip_call_id = %call.sip_call_id, %by, %number, "blind transfer to a number");
        call.transfers.push(TransferRow {
            at_ms: wall,
            kind: TransferKind::Blind,
            target: number.clone(),
            target_kind: TransferTargetKind::Number,
            by,
            reason,
        });
        let answered = call.queue.as_mut().and_then(|v| v.answered.take());
        let caller = self
            .cfg
            .outbound_caller_id
            .present(&call.caller, &call.dialled)
            .to_string();
        let dialog = call.dialog;
        self.media.command(MediaCommand::Unbridge { call: dialog });
        if let Some((_, leg, at)) = answered {
            self.drop_leg(now, leg);
            self.conversation_over(now, id, agent, at);
        }
        self.start_music(id);
        let peer = crate::sip::Peer {
            addr: gateway,
            transport: self.cfg.outbound_transport,
        };
        let placed = self.place_leg(
            id,
            Role::Outside {
                number: number.clone(),
            },
            peer.transport == crate::sip::TransportKind::Tls,
            |ua, d, offer| {
                ua.invite_as(now, d, peer, &caller, &number, Some(offer))
                    .map_err(|e| format!("INVITE not sent: {e}"))
            },
        );
        match placed {
            Ok(leg) => self.set_leg_deadline(leg, Some(now + OUTSIDE_RING)),
            Err(why) => {
                tracing::warn!(%number, why, "transfer to a number not placed");
                self.back_to_queue(now, id);
            }
        }
    }

    pub(super) fn outside_answered(
        &mut self,
        now: Instant,
        leg: LegId,
        id: InteractionId,
        number: &str,
    ) {
        let Some(call) = self.calls.get(&id) else {
            self.drop_leg(now, leg);
            return;
        };
        tracing::info!(sip_call_id = %call.sip_call_id, %number, "the number answered; bridging");
        self.bridge(leg);
    }

    /// The outside leg is gone: after a conversation the caller goes on at the queue node's
    /// `answered` exit, as after an agent's hang-up; unanswered, they wait in their queue
    /// again rather than being lost.
    pub(super) fn outside_leg_ended(
        &mut self,
        now: Instant,
        id: InteractionId,
        number: &str,
        how: LegEnd,
    ) {
        let Some(call) = self.calls.get_mut(&id) else {
            return;
        };
        match how {
            LegEnd::RemoteBye | LegEnd::RtpTimeout => {
                tracing::info!(sip_call_id = %call.sip_call_id, %number, "the number hung up; back to the flow");
                let Some(visit) = call.queue.take() else {
                    return;
                };
                call.past_queues.push(visit.clone());
                call.interpreter
                    .on_queue_exit(now, visit.task, crate::flow::QueueExit::Answered);
                self.run_flow(now, id);
            }
            LegEnd::Failed(_) | LegEnd::NoAnswer | LegEnd::NoMedia => {
                tracing::info!(sip_call_id = %call.sip_call_id, %number, ?how, "the number did not take the call; back to the queue");
                self.back_to_queue(now, id);
            }
        }
    }

    /// The caller waits in the queue they were answered from again.
    fn back_to_queue(&mut self, now: Instant, id: InteractionId) {
        let wall = self.wall_ms(now);
        let Some(call) = self.calls.get_mut(&id) else {
            return;
        };
        let Some(visit) = call.queue.take() else {
            return;
        };
        let queue = visit.queue.clone();
        let mut old = visit.clone();
        old.left_ms.get_or_insert(wall);
        call.past_queues.push(old);
        call.queue = Some(visit.again_in(queue.clone(), wall));
        self.acd.handle(
            now,
            AcdEvent::Enqueue {
                caller: caller_id(id),
                queue,
                priority: 0,
                skills: Vec::new(),
                sticky: None,
                sticky_for: None,
                max_wait: TRANSFER_MAX_WAIT,
            },
        );
        self.drain_acd(now);
    }
}

#[cfg(test)]
mod tests {
    use super::uri_user;

    #[test]
    fn refer_targets_name_a_user() {
        assert_eq!(uri_user("<sip:1002@10.0.0.1;transport=udp>"), Some("1002"));
        assert_eq!(uri_user("sip:billing@hotline"), Some("billing"));
        assert_eq!(uri_user("tel:13800138000"), Some("13800138000"));
        assert_eq!(uri_user("sip:1002@h?Replaces=abc"), Some("1002"));
        assert_eq!(uri_user("sip:@h"), None);
        assert_eq!(uri_user("http://x"), None);
    }
}
