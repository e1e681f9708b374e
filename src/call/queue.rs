//! The flow's `queue` node on the ACD: a caller waits (music, announcements), agents are
//! offered the call on legs of their own, the first to answer is bridged, and every way out
//! of the queue is an exit back into the flow. The ACD decides who rings for whom; this file
//! only carries its decisions out and reports what the phones did.

use std::time::{Duration, Instant};

use super::legs::{LegEnd, Role};
use super::{Engine, InteractionId, LegId, MediaBackend, MediaCommand};
use crate::acd::model::AgentEndpoint;
use crate::acd::{AcdAction, AcdEvent, AgentId, CallerId, OfferFailure, OfferOutcome, QueueLeave};
use crate::flow::{QueueExit, TaskId};
use crate::sip::{Peer, TransportKind};

/// A caller's stay in a queue, from the queue node to the exit it takes.
#[derive(Debug, Clone)]
pub(super) struct QueueVisit {
    pub task: TaskId,
    pub queue: String,
    /// Keys that take the caller out of the queue while they wait (the node's `keys`).
    pub keys: Vec<char>,
    pub entered_ms: i64,
    pub left_ms: Option<i64>,
    /// The agent who answered, their leg, and when (after an attended transfer: the
    /// colleague who took over, and when).
    pub answered: Option<(AgentId, LegId, i64)>,
    /// When an agent first answered in this visit: the end of the caller's wait, which a
    /// hand-over to a colleague does not move.
    pub first_answer_ms: Option<i64>,
    /// The caller hung up before anyone answered.
    pub abandoned: bool,
    /// The flow's say on recording this caller's conversations; None: the queue's.
    pub record: Option<bool>,
}

impl QueueVisit {
    /// The same caller waiting again (a transfer), in `queue` from `wall` on.
    pub fn again_in(&self, queue: String, wall: i64) -> QueueVisit {
        QueueVisit {
            task: self.task,
            queue,
            keys: self.keys.clone(),
            entered_ms: wall,
            left_ms: None,
            answered: None,
            first_answer_ms: None,
            abandoned: false,
            record: self.record,
        }
    }
}

/// What the flow's queue node asked for, evaluated.
pub(super) struct QueueEntry {
    pub task: TaskId,
    pub queue: String,
    pub priority: u8,
    pub skills: Vec<String>,
    pub timeout: Duration,
    pub keys: Vec<char>,
    pub record: Option<bool>,
}

/// One agent offer, for the CDR's offer rows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct OfferRecord {
    pub agent: String,
    pub queue: String,
    pub ring_start_ms: i64,
    pub ring_end_ms: Option<i64>,
    pub outcome: Option<crate::cdr::OfferOutcome>,
    pub sip_code: Option<u16>,
}

/// The talk, hold and agent facts of an interaction, summed over its agent conversations.
#[derive(Debug, Clone, Default)]
pub(super) struct AgentFacts {
    pub agent: Option<String>,
    pub team: Option<String>,
    pub talk_ms: i64,
    pub hold_ms: i64,
    pub hold_since: Option<i64>,
    /// Set once the answering agent's wrap-up for this call ended.
    pub wrap_up_ms: Option<i64>,
    /// What the agent recorded in wrap-up.
    pub wrap_note: WrapNote,
    pub offers: Vec<OfferRecord>,
}

/// What an agent records about a call in wrap-up.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WrapNote {
    pub disposition: Option<String>,
    pub notes: Option<String>,
    pub resolved: Option<bool>,
}

impl WrapNote {
    /// Later values win; what is not given stays.
    pub fn merge(&mut self, newer: WrapNote) {
        if newer.disposition.is_some() {
            self.disposition = newer.disposition;
        }
        if newer.notes.is_some() {
            self.notes = newer.notes;
        }
        if newer.resolved.is_some() {
            self.resolved = newer.resolved;
        }
    }

    /// Onto a record that may carry notes already (from an earlier wrap-up of the call).
    pub(super) fn merge_into(self, record: &mut crate::cdr::CdrRecord) {
        let mut note = WrapNote {
            disposition: record.wrap_disposition.take(),
            notes: record.wrap_notes.take(),
            resolved: record.resolved,
        };
        note.merge(self);
        note.fill(record);
    }

    pub(super) fn fill(&self, record: &mut crate::cdr::CdrRecord) {
        record.wrap_disposition = self.disposition.clone();
        record.wrap_notes = self.notes.clone();
        record.resolved = self.resolved;
    }
}

pub(super) fn caller_id(id: InteractionId) -> CallerId {
    CallerId(id.0)
}

fn interaction(caller: CallerId) -> InteractionId {
    InteractionId(caller.0)
}

pub(super) fn failure_of(code: u16) -> OfferFailure {
    match code {
        300..=399 => OfferFailure::Redirected,
        486 | 600 => OfferFailure::Busy,
        603 => OfferFailure::Declined,
        _ => OfferFailure::Unreachable,
    }
}

fn outcome_row(outcome: OfferOutcome) -> crate::cdr::OfferOutcome {
    use crate::cdr::OfferOutcome as Row;
    match outcome {
        OfferOutcome::Answered => Row::Answered,
        OfferOutcome::NoAnswer => Row::NoAnswer,
        OfferOutcome::Cancelled => Row::Cancelled,
        OfferOutcome::Failed(OfferFailure::Busy) => Row::Busy,
        OfferOutcome::Failed(OfferFailure::Declined) => Row::Declined,
        OfferOutcome::Failed(OfferFailure::Redirected) => Row::Redirected,
        OfferOutcome::Failed(OfferFailure::Unreachable) => Row::Unreachable,
    }
}

impl<M: MediaBackend> Engine<M> {
    /// The flow reached a queue node.
    pub(super) fn enter_queue(&mut self, now: Instant, id: InteractionId, entry: QueueEntry) {
        let QueueEntry {
            task,
            queue,
            priority,
            skills,
            timeout,
            keys,
            record,
        } = entry;
        let wall = self.wall_ms(now);
        let Some(call) = self.calls.get_mut(&id) else {
            return;
        };
        tracing::info!(sip_call_id = %call.sip_call_id, %queue, priority, "caller queued");
        let sticky = self
            .sticky
            .last_agent(&call.caller, wall, &queue, &call.catalog.acd);
        call.queue = Some(QueueVisit {
            task,
            queue: queue.clone(),
            keys,
            entered_ms: wall,
            left_ms: None,
            answered: None,
            first_answer_ms: None,
            abandoned: false,
            record,
        });
        self.start_music(id);
        self.acd.handle(
            now,
            AcdEvent::Enqueue {
                caller: caller_id(id),
                queue,
                priority,
                skills,
                sticky,
                sticky_for: None,
                max_wait: timeout,
            },
        );
        self.drain_acd(now);
    }

    /// Waiting music for the caller, from the queue's `music` prompt; silence without one.
    pub(super) fn start_music(&mut self, id: InteractionId) {
        self.music(id, false);
    }

    /// The caller on hold hears the queue's music, or silence without one: never their
    /// agent (an empty `Music` on a bridged leg is a silent hold).
    pub(super) fn hold_music(&mut self, id: InteractionId) {
        self.music(id, true);
    }

    fn music(&mut self, id: InteractionId, even_silence: bool) {
        let Some(call) = self.calls.get(&id) else {
            return;
        };
        let (Some(visit), Some(neg)) = (&call.queue, call.negotiated) else {
            return;
        };
        let prompts = queue_music(call, &visit.queue, neg.codec);
        if !prompts.is_empty() || even_silence {
            self.media.command(MediaCommand::Music {
                call: call.dialog,
                prompts,
            });
        }
    }

    /// Carry out what the ACD decided.
    pub(super) fn drain_acd(&mut self, now: Instant) {
        while let Some(action) = self.acd.poll_action() {
            match action {
                // A consultation waiting in a queue is a caller to the ACD, not to us.
                AcdAction::Offer { caller, agent } => match self.queue_consult_of(caller) {
                    Some(id) => self.offer_queue_consult(now, id, agent),
                    None => self.offer(now, interaction(caller), agent),
                },
                AcdAction::EndOffer {
                    caller,
                    agent,
                    outcome,
                } => match self.queue_consult_of(caller) {
                    Some(id) => self.queue_consult_offer_ended(now, id, agent),
                    None => self.end_offer(now, interaction(caller), agent, outcome, None),
                },
                AcdAction::Leave { caller, why } => match self.queue_consult_of(caller) {
                    Some(id) => self.queue_consult_left(now, id, why),
                    None => {
                        let exit = match why {
                            QueueLeave::Timeout => QueueExit::Timeout,
                            QueueLeave::Full => QueueExit::Full,
                            QueueLeave::NoAgents => QueueExit::NoAgents,
                        };
                        self.leave_queue(now, interaction(caller), exit);
                    }
                },
                AcdAction::Announce {
                    caller,
                    position,
                    estimated_wait,
                } => self.announce(interaction(caller), position, estimated_wait),
                AcdAction::AgentChanged {
                    agent,
                    state,
                    reason,
                } => self.agent_changed(now, agent, state, reason),
            }
        }
        self.reschedule_acd();
    }

    /// Ring an agent for a caller: a leg to their phone, beside the caller's media.
    fn offer(&mut self, now: Instant, id: InteractionId, agent: AgentId) {
        let wall = self.wall_ms(now);
        let Some(def) = self.acd.agent_def(agent).cloned() else {
            return;
        };
        let Some(call) = self.calls.get(&id) else {
            // The caller is gone; the ACD heard it (CallerGone) or will.
            return;
        };
        let queue = call
            .queue
            .as_ref()
            .map(|v| v.queue.clone())
            .unwrap_or_default();
        let caller_number = call.caller.clone();
        let Some(contact) = self.agent_contact(&def) else {
            tracing::info!(agent = %def.id, "no reachable phone for the agent");
            self.record_offer(id, &def.id, &queue, wall);
            return self.offer_unreachable(now, id, agent);
        };
        let display = format!("{queue}: {caller_number}");
        let over_tls = contact.peer.transport == TransportKind::Tls;
        let placed = self.place_leg(id, Role::Agent { agent }, over_tls, |ua, dialog, offer| {
            ua.invite_contact(
                now,
                dialog,
                &contact,
                &caller_number,
                Some(&display),
                &def.extension,
                Some(offer),
            )
            .map_err(|e| format!("INVITE not sent: {e}"))
        });
        self.record_offer(id, &def.id, &queue, wall);
        if let Err(why) = placed {
            tracing::warn!(agent = %def.id, why, "offer not placed");
            return self.offer_unreachable(now, id, agent);
        }
        if let Some(pop) = self.screen_pop(now, id, &def, &queue) {
            self.events
                .push_back(super::events::EngineEvent::Offer(Box::new(pop)));
        }
    }

    /// Where an agent's phone is reached now: a registered contact or the fixed URI.
    pub(super) fn agent_contact(
        &self,
        def: &crate::acd::model::AgentDef,
    ) -> Option<crate::sip::Contact> {
        match &def.endpoint {
            AgentEndpoint::Registered => self.ua.contacts(&def.extension).into_iter().next(),
            AgentEndpoint::Fixed(uri) => fixed_contact(uri),
        }
    }

    /// The offer could not even be placed: the ACD ends it (its EndOffer closes the row).
    fn offer_unreachable(&mut self, now: Instant, id: InteractionId, agent: AgentId) {
        self.acd.handle(
            now,
            AcdEvent::OfferFailed {
                caller: caller_id(id),
                agent,
                why: OfferFailure::Unreachable,
            },
        );
    }

    fn record_offer(&mut self, id: InteractionId, agent: &str, queue: &str, wall: i64) {
        if let Some(call) = self.calls.get_mut(&id) {
            call.facts.offers.push(OfferRecord {
                agent: agent.to_string(),
                queue: queue.to_string(),
                ring_start_ms: wall,
                ring_end_ms: None,
                outcome: None,
                sip_code: None,
            });
        }
    }

    /// Close the open offer row of `agent` on this call.
    fn close_offer(
        &mut self,
        now: Instant,
        id: InteractionId,
        agent: AgentId,
        outcome: OfferOutcome,
        code: Option<u16>,
    ) {
        let wall = self.wall_ms(now);
        let Some(name) = self.acd.agent_def(agent).map(|d| d.id.clone()) else {
            return;
        };
        if let Some(call) = self.calls.get_mut(&id)
            && let Some(row) = call
                .facts
                .offers
                .iter_mut()
                .rev()
                .find(|o| o.agent == name && o.outcome.is_none())
        {
            row.ring_end_ms = Some(wall);
            row.outcome = Some(outcome_row(outcome));
            row.sip_code = code.or(row.sip_code);
        }
    }

    fn agent_leg(&self, id: InteractionId, agent: AgentId) -> Option<LegId> {
        self.legs
            .values()
            .find(|l| l.interaction == id && l.role == Role::Agent { agent })
            .map(|l| l.id)
    }

    /// The ACD ended an offer: hang the leg up (CANCEL or BYE) and close its row.
    fn end_offer(
        &mut self,
        now: Instant,
        id: InteractionId,
        agent: AgentId,
        outcome: OfferOutcome,
        code: Option<u16>,
    ) {
        if let Some(leg) = self.agent_leg(id, agent) {
            self.drop_leg(now, leg);
        }
        self.close_offer(now, id, agent, outcome, code);
    }

    /// An agent's phone answered: tell the ACD; if the caller is still theirs, bridge.
    pub(super) fn agent_answered(
        &mut self,
        now: Instant,
        leg: LegId,
        id: InteractionId,
        agent: AgentId,
    ) {
        self.acd.handle(
            now,
            AcdEvent::OfferAnswered {
                caller: caller_id(id),
                agent,
            },
        );
        self.drain_acd(now);
        // The ACD ends a late answer (another agent was first, the caller left) with
        // EndOffer, which dropped the leg: only a leg still here is the conversation.
        if !self.legs.contains_key(&leg) {
            return;
        }
        let wall = self.wall_ms(now);
        self.close_offer(now, id, agent, OfferOutcome::Answered, Some(200));
        let def = self.acd.agent_def(agent).cloned();
        let Some(call) = self.calls.get_mut(&id) else {
            self.drop_leg(now, leg);
            return;
        };
        if let Some(visit) = call.queue.as_mut() {
            visit.answered = Some((agent, leg, wall));
            visit.first_answer_ms.get_or_insert(wall);
            visit.left_ms = Some(wall);
        }
        if let Some(def) = def {
            tracing::info!(sip_call_id = %call.sip_call_id, agent = %def.id, "agent answered; bridging");
            call.facts.agent = Some(def.id.clone());
            call.facts.team = def.team.clone();
            self.sticky.remember(&call.caller, &def.id, wall);
        }
        self.bridge(leg);
        self.record_if_asked(now, id);
    }

    /// Record the conversation that just started if the flow asked for this caller, or
    /// else their queue records.
    pub(super) fn record_if_asked(&mut self, now: Instant, id: InteractionId) {
        let Some(call) = self.calls.get(&id) else {
            return;
        };
        let Some(visit) = call.queue.as_ref() else {
            return;
        };
        let queue_records = call
            .catalog
            .acd
            .queue(&visit.queue)
            .is_some_and(|q| q.record);
        if visit.record.unwrap_or(queue_records) {
            self.record_bridge(now, id);
        }
    }

    /// An agent leg is gone: before the answer it is a failed offer; after, the conversation
    /// is over and the caller goes on in the flow at the queue node's `answered` exit.
    pub(super) fn agent_leg_ended(
        &mut self,
        now: Instant,
        id: InteractionId,
        agent: AgentId,
        how: LegEnd,
    ) {
        let answered = self
            .calls
            .get(&id)
            .and_then(|c| c.queue.as_ref())
            .and_then(|v| v.answered)
            .filter(|(a, _, _)| *a == agent)
            .map(|(_, _, at)| at);
        let Some(answered_ms) = answered else {
            let (why, code) = match how {
                LegEnd::Failed(code) => (failure_of(code), Some(code)),
                LegEnd::NoAnswer | LegEnd::NoMedia | LegEnd::RemoteBye | LegEnd::RtpTimeout => {
                    (OfferFailure::Unreachable, None)
                }
            };
            self.close_offer(now, id, agent, OfferOutcome::Failed(why), code);
            self.acd.handle(
                now,
                AcdEvent::OfferFailed {
                    caller: caller_id(id),
                    agent,
                    why,
                },
            );
            return self.drain_acd(now);
        };
        if self.agent_gone_while_consulting(now, id, agent) {
            return;
        }
        self.conversation_over(now, id, agent, answered_ms);
        let Some(call) = self.calls.get_mut(&id) else {
            return;
        };
        let Some(visit) = call.queue.take() else {
            return;
        };
        tracing::info!(sip_call_id = %call.sip_call_id, "the agent hung up; back to the flow");
        // Hold music (or a silent hold) must not play on under what the flow does next.
        self.media.command(MediaCommand::Stop { call: call.dialog });
        call.past_queues.push(visit.clone());
        call.interpreter
            .on_queue_exit(now, visit.task, QueueExit::Answered);
        self.run_flow(now, id);
    }

    /// Talk time ends and the agent goes to wrap-up, which this interaction's CDR waits for.
    pub(super) fn conversation_over(
        &mut self,
        now: Instant,
        id: InteractionId,
        agent: AgentId,
        answered_ms: i64,
    ) {
        self.conversation_facts_over(now, id, agent, answered_ms);
        self.acd.handle(now, AcdEvent::ConversationEnded { agent });
        self.drain_acd(now);
    }

    /// The interaction's part of a conversation's end: talk and hold time, and the wrap-up
    /// that its CDR waits for (the ACD hears of the end separately).
    pub(super) fn conversation_facts_over(
        &mut self,
        now: Instant,
        id: InteractionId,
        agent: AgentId,
        answered_ms: i64,
    ) {
        let wall = self.wall_ms(now);
        if let Some(call) = self.calls.get_mut(&id) {
            call.facts.talk_ms += wall - answered_ms;
            if let Some(since) = call.facts.hold_since.take() {
                call.facts.hold_ms += wall - since;
            }
        }
        self.wrapping.insert(
            agent,
            super::Wrap {
                interaction: id,
                since_ms: wall,
                note: WrapNote::default(),
            },
        );
    }

    /// A key from a caller in a queue: one of the node's keys takes a waiting caller out;
    /// once they talk to an agent, keys go across to the agent (the media forwards those in
    /// the audio path itself; a key by SIP INFO, `by_info`, is sent across here). False when
    /// the caller is not in a queue (the flow hears the key).
    pub(super) fn queue_digit(
        &mut self,
        now: Instant,
        id: InteractionId,
        digit: char,
        by_info: bool,
    ) -> bool {
        let Some(visit) = self.calls.get(&id).and_then(|c| c.queue.as_ref()) else {
            return false;
        };
        if visit.answered.is_none() {
            if visit.keys.contains(&digit) {
                self.acd.handle(
                    now,
                    AcdEvent::CallerGone {
                        caller: caller_id(id),
                    },
                );
                self.drain_acd(now);
                self.leave_queue(now, id, QueueExit::Key(digit));
            }
            return true;
        }
        // A held caller's keys stay on their side, as their audio does (`Stream::receive`).
        if by_info
            && let Some(leg) = self
                .calls
                .get(&id)
                .filter(|c| c.facts.hold_since.is_none())
                .and_then(|c| c.bridged)
            && let Some(l) = self.legs.get(&leg)
        {
            self.media.command(MediaCommand::SendDigit {
                call: l.dialog,
                digit,
            });
        }
        true
    }

    /// The caller leaves the queue unanswered, back into the flow.
    fn leave_queue(&mut self, now: Instant, id: InteractionId, exit: QueueExit) {
        let wall = self.wall_ms(now);
        let Some(call) = self.calls.get_mut(&id) else {
            return;
        };
        let Some(mut visit) = call.queue.take() else {
            return;
        };
        tracing::info!(sip_call_id = %call.sip_call_id, queue = %visit.queue, ?exit, "caller leaves the queue");
        visit.left_ms = Some(wall);
        let task = visit.task;
        call.past_queues.push(visit);
        self.media.command(MediaCommand::Stop { call: call.dialog });
        call.interpreter.on_queue_exit(now, task, exit);
        self.run_flow(now, id);
    }

    /// The interaction is ending while in a queue or talking to an agent: the ACD hears the
    /// caller is gone (offers are cancelled) and the agent's conversation is over.
    pub(super) fn queue_caller_gone(&mut self, now: Instant, id: InteractionId) {
        let wall = self.wall_ms(now);
        let Some(call) = self.calls.get_mut(&id) else {
            return;
        };
        let Some(mut visit) = call.queue.take() else {
            return;
        };
        visit.left_ms.get_or_insert(wall);
        let answered = visit.answered;
        visit.abandoned = answered.is_none();
        call.past_queues.push(visit);
        self.acd.handle(
            now,
            AcdEvent::CallerGone {
                caller: caller_id(id),
            },
        );
        self.drain_acd(now);
        if let Some((agent, _, at)) = answered {
            self.conversation_over(now, id, agent, at);
        }
    }

    /// The agent put the caller on hold (re-INVITE sendonly/inactive) or took them back.
    pub(super) fn agent_hold(
        &mut self,
        now: Instant,
        id: InteractionId,
        agent: AgentId,
        held: bool,
    ) {
        let wall = self.wall_ms(now);
        let Some(call) = self.calls.get_mut(&id) else {
            return;
        };
        if held {
            call.facts.hold_since.get_or_insert(wall);
        } else if let Some(since) = call.facts.hold_since.take() {
            call.facts.hold_ms += wall - since;
        }
        self.acd.handle(
            now,
            if held {
                AcdEvent::Hold { agent }
            } else {
                AcdEvent::Resume { agent }
            },
        );
        self.drain_acd(now);
        // Music on a bridged leg is hold (the bridge stays linked); Bridge again resumes.
        if held {
            self.hold_music(id);
        } else if let Some(leg) = self.calls.get(&id).and_then(|c| c.bridged) {
            self.bridge(leg);
        }
    }

    fn announce(&mut self, id: InteractionId, position: u32, wait: Option<Duration>) {
        let Some(call) = self.calls.get(&id) else {
            return;
        };
        let Some(neg) = call.negotiated else {
            return;
        };
        let says_position = call
            .queue
            .as_ref()
            .and_then(|v| call.catalog.acd.queue(&v.queue))
            .and_then(|q| q.announcements.as_ref())
            .is_none_or(|a| a.position);
        let words = super::announce::words(
            &call.catalog,
            call.interpreter.language(),
            says_position.then_some(position),
            wait,
        );
        if words.is_empty() {
            return;
        }
        let language = call.interpreter.language();
        let prompts = words
            .iter()
            .filter_map(|p| call.catalog.prompt(language, *p))
            .map(|p| p.for_codec(neg.codec).clone())
            .collect();
        self.media.command(MediaCommand::Play {
            call: call.dialog,
            id: 0,
            prompts,
        });
    }

    /// The ACD's deadline joins the engine's.
    pub(super) fn reschedule_acd(&mut self) {
        if let Some(at) = self.acd.poll_timeout()
            && self.acd_scheduled != Some(at)
        {
            self.acd_scheduled = Some(at);
            self.deadlines
                .push(std::cmp::Reverse((at, super::Timer::Acd)));
        }
    }

    pub(super) fn acd_timer(&mut self, now: Instant, at: Instant) {
        if self.acd_scheduled != Some(at) {
            return;
        }
        self.acd_scheduled = None;
        self.acd.handle_timeout(now);
        self.drain_acd(now);
    }
}

/// A fixed agent endpoint (`sip:user@ip[:port]`) as a contact.
fn fixed_contact(uri: &str) -> Option<crate::sip::Contact> {
    let rest = uri
        .strip_prefix("sip:")
        .or_else(|| uri.strip_prefix("sips:"))?;
    let rest = rest.split(';').next().unwrap_or(rest);
    let (_, host) = rest.split_once('@')?;
    let transport = TransportKind::of_uri(uri);
    let addr = host.parse::<std::net::SocketAddr>().ok().or_else(|| {
        host.parse::<std::net::IpAddr>()
            .ok()
            .map(|ip| (ip, transport.default_port()).into())
    })?;
    Some(crate::sip::Contact {
        uri: uri.to_string(),
        peer: Peer { addr, transport },
    })
}

/// The queue and agent part of an interaction's CDR, from its visits and facts.
pub(super) fn fill_record(
    record: &mut crate::cdr::CdrRecord,
    visits: &[QueueVisit],
    facts: &AgentFacts,
) {
    use crate::cdr::{OfferOutcome as Row, OfferRow};
    // The visit that counts: the one an agent answered last, else the last one.
    let Some(visit) = visits
        .iter()
        .rev()
        .find(|v| v.answered.is_some())
        .or(visits.last())
    else {
        return;
    };
    record.queue = Some(visit.queue.clone());
    record.queue_enter_ms = Some(visit.entered_ms);
    record.queue_leave_ms = visit.left_ms;
    record.wait_ms = match visit.first_answer_ms {
        Some(answered) => Some(answered - visit.entered_ms),
        None => visit.left_ms.map(|left| left - visit.entered_ms),
    };
    // A caller an agent answered did not abandon, even if they hung up later while
    // waiting again after a transfer.
    record.abandoned = visit.answered.is_none() && visits.last().is_some_and(|v| v.abandoned);
    record.agent = facts.agent.clone();
    record.team = facts.team.clone();
    if facts.agent.is_some() {
        record.talk_ms = Some((facts.talk_ms - facts.hold_ms).max(0));
        record.hold_ms = Some(facts.hold_ms);
    }
    record.wrap_up_ms = facts.wrap_up_ms;
    facts.wrap_note.fill(record);
    record.offers = facts
        .offers
        .iter()
        .map(|o| OfferRow {
            agent: o.agent.clone(),
            queue: Some(o.queue.clone()),
            ring_start_ms: o.ring_start_ms,
            ring_end_ms: o.ring_end_ms.unwrap_or(record.end_ms),
            outcome: o.outcome.unwrap_or(Row::Cancelled),
            sip_code: o.sip_code,
        })
        .collect();
}

/// `queue`'s music prompt in the call's language and `codec`, from the call's catalog;
/// empty when the queue has none.
pub(super) fn queue_music(
    call: &super::Call,
    queue: &str,
    codec: crate::media::Codec,
) -> Vec<std::sync::Arc<[u8]>> {
    call.catalog
        .acd
        .queue(queue)
        .and_then(|q| q.music.as_ref())
        .and_then(|name| call.catalog.flows.prompt_index.get(name))
        .and_then(|p| call.catalog.prompt(call.interpreter.language(), *p))
        .map(|p| p.for_codec(codec).clone())
        .into_iter()
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fixed_endpoint_is_reached_over_the_transport_its_uri_names() {
        let at =
            |uri: &str| fixed_contact(uri).map(|c| (c.peer.addr.to_string(), c.peer.transport));
        assert_eq!(
            at("sip:1002@192.0.2.20"),
            Some(("192.0.2.20:5060".into(), TransportKind::Udp))
        );
        assert_eq!(
            at("sip:1002@192.0.2.20:5061;transport=tls"),
            Some(("192.0.2.20:5061".into(), TransportKind::Tls))
        );
        assert_eq!(
            at("sips:1002@192.0.2.20"),
            Some(("192.0.2.20:5061".into(), TransportKind::Tls))
        );
        assert_eq!(
            at("sip:1002@phone.example"),
            None,
            "host names are not resolved"
        );
    }
}
