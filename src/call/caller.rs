//! The caller's dialog, from the INVITE to the CDR: admission, answer, the ACK that starts
//! the flow, re-INVITEs, and `finish`, the one place an interaction ends.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Instant;

use super::queue::AgentFacts;
use super::{
    Call, Engine, InteractionId, MediaBackend, MediaCommand, Party, Phase, new_record_id,
    recording::HeldRecord, recording::RECORDING_HOLD, stream_params,
};
use crate::cdr::{CallLabel, CdrRecord, Disposition, HangupBy};
use crate::flow::{CallInfo, Interpreter};
use crate::media::stream::StreamParams;
use crate::sdp::{self, Direction, LocalMedia, SessionDescription};
use crate::sip::{CallRef, UaEvent};

impl<M: MediaBackend> Engine<M> {
    pub(super) fn caller_event(&mut self, now: Instant, id: InteractionId, event: UaEvent) {
        match event {
            UaEvent::Cancelled { .. } => self.finish(
                now,
                id,
                Disposition::CallerHangup,
                HangupBy::Caller,
                487,
                "cancel",
            ),
            UaEvent::RemoteBye { .. } => self.finish(
                now,
                id,
                Disposition::CallerHangup,
                HangupBy::Caller,
                200,
                "bye",
            ),
            UaEvent::Acked { answer, .. } => self.on_ack(now, id, answer),
            UaEvent::ReInvite { offer, .. } => self.on_reinvite(now, id, offer),
            UaEvent::Dtmf { digit, .. } => {
                if self.queue_digit(now, id, digit, true) {
                    return;
                }
                if let Some(c) = self.calls.get_mut(&id) {
                    c.interpreter.on_digit(now, digit);
                    self.run_flow(now, id);
                }
            }
            UaEvent::Ended { code: 408, .. } => self.finish(
                now,
                id,
                Disposition::Failed,
                HangupBy::Hotline,
                200,
                "no_ack",
            ),
            _ => {}
        }
    }

    #[allow(clippy::too_many_arguments)]
    pub(super) fn on_incoming(
        &mut self,
        now: Instant,
        dialog: CallRef,
        sip_call_id: String,
        caller: String,
        dialled: String,
        offer: Option<Vec<u8>>,
        local_ip: Option<IpAddr>,
        source: IpAddr,
        over_tls: bool,
    ) {
        let start_ms = self.wall_ms(now);
        let refuse = |engine: &mut Self,
                      code: u16,
                      disposition: Disposition,
                      reason: &str,
                      flow: Option<String>| {
            let mut extra = Vec::new();
            if code == 503 {
                extra.push((
                    "Retry-After",
                    engine.cfg.retry_after.as_secs().max(1).to_string(),
                ));
            }
            engine.ua.reject(now, dialog, code, &extra);
            tracing::info!(%sip_call_id, %caller, %dialled, code, reason, "call refused");
            // Refused after routing (no media port, no SRTP): that version chose the flow.
            let flow_version = flow.is_some().then(|| engine.catalog.version.clone());
            engine.records.push_back(CdrRecord {
                id: new_record_id(&mut engine.rng),
                sip_call_id: sip_call_id.clone(),
                caller: caller.clone(),
                dialled: dialled.clone(),
                start_ms,
                answer_ms: None,
                end_ms: start_ms,
                flow,
                ivr_path: Vec::new(),
                digits: String::new(),
                disposition,
                hangup_by: HangupBy::None,
                sip_code: code,
                end_reason: reason.to_string(),
                language: None,
                survey: Vec::new(),
                recordings: Vec::new(),
                flow_version,
                ..Default::default()
            });
        };
        if self.shutdown_at.is_some() {
            return refuse(self, 503, Disposition::Blocked, "shutdown", None);
        }
        if self.calls.len() >= self.cfg.max_calls as usize {
            return refuse(self, 503, Disposition::Blocked, "overload", None);
        }
        if self.cfg.source_max_calls > 0
            && self.calls_by_source.get(&source).copied().unwrap_or(0) >= self.cfg.source_max_calls
            && !self.cfg.admission.trusted.contains(source)
        {
            return refuse(self, 503, Disposition::Blocked, "source_limit", None);
        }
        let catalog = Arc::clone(&self.catalog);
        let Some(flow) = catalog.flows.route(&dialled) else {
            return refuse(self, 404, Disposition::Failed, "no_route", None);
        };
        let flow_name = catalog.flows.flow(flow).name.clone();
        let address = self
            .cfg
            .media_address
            .or(local_ip)
            .unwrap_or(self.cfg.fallback_address);
        let mut local = LocalMedia::new(address, 0, self.rng.u64(1..1 << 40));
        local.srtp = self.srtp_policy(offer.is_none(), over_tls);
        let parsed_offer = match offer.as_deref().map(SessionDescription::parse_bytes) {
            None => None,
            Some(Ok(o)) => Some(o),
            Some(Err(e)) => {
                tracing::debug!(error = %e, "unusable SDP offer");
                return refuse(self, 488, Disposition::Failed, "bad_sdp", Some(flow_name));
            }
        };
        let negotiated = match &parsed_offer {
            None => None,
            Some(o) => match sdp::negotiate(o, &local) {
                Ok(n) => Some(n),
                Err(e) => {
                    tracing::debug!(error = %e, "no common media");
                    let reason = match e {
                        sdp::NegotiationError::SecureOnly | sdp::NegotiationError::SrtpRequired => {
                            "no_srtp"
                        }
                        _ => "no_codec",
                    };
                    return refuse(self, 488, Disposition::Failed, reason, Some(flow_name));
                }
            },
        };
        match self.media.open(dialog) {
            Ok(port) => local.port = port,
            Err(e) => {
                tracing::warn!(error = %e, "no RTP port for a new call");
                return refuse(
                    self,
                    503,
                    Disposition::Failed,
                    "no_media_port",
                    Some(flow_name),
                );
            }
        }
        tracing::info!(%sip_call_id, %caller, %dialled, flow = %flow_name, "incoming call");
        let interpreter = Interpreter::new(
            Arc::clone(&catalog.flows),
            flow,
            CallInfo {
                caller: caller.clone(),
                dialled: dialled.clone(),
                wall: jiff::Timestamp::from_millisecond(start_ms)
                    .unwrap_or(jiff::Timestamp::UNIX_EPOCH),
                started: now,
                tz: self.cfg.timezone.clone(),
                language: catalog.default_language().to_string(),
                switches: Arc::clone(&self.switches),
            },
        );
        let id = InteractionId(self.allocate());
        self.dialogs.insert(dialog, Party::Caller(id));
        *self.calls_by_source.entry(source).or_default() += 1;
        self.calls.insert(
            id,
            Call {
                dialog,
                source,
                record_id: new_record_id(&mut self.rng),
                sip_call_id,
                caller,
                dialled,
                start_ms,
                answer_ms: None,
                catalog,
                flow,
                interpreter,
                phase: Phase::Ringing,
                local,
                offer: parsed_offer,
                negotiated,
                answer_at: None,
                scheduled: None,
                recordings: Vec::new(),
                late_recordings: Vec::new(),
                bridged: None,
                queue: None,
                past_queues: Vec::new(),
                facts: AgentFacts::default(),
                transfers: Vec::new(),
                bridge_recordings: 0,
            },
        );
        if let Some(call) = self.calls.get(&id) {
            // What the CDR would say if the server died now; the journal keeps it until the
            // call's real record supersedes it.
            self.opened.push_back(CdrRecord {
                id: call.record_id.clone(),
                sip_call_id: call.sip_call_id.clone(),
                caller: call.caller.clone(),
                dialled: call.dialled.clone(),
                start_ms,
                end_ms: start_ms,
                flow: Some(flow_name.clone()),
                disposition: Disposition::Failed,
                hangup_by: HangupBy::None,
                end_reason: crate::cdr::writer::CRASH_END_REASON.into(),
                ..Default::default()
            });
        }
        if self.cfg.answer_delay.is_zero() {
            self.answer(now, id);
        } else {
            self.ua.ring(now, dialog);
            if let Some(call) = self.calls.get_mut(&id) {
                call.answer_at = Some(now + self.cfg.answer_delay);
            }
            self.reschedule(id);
        }
    }

    pub(super) fn answer(&mut self, now: Instant, id: InteractionId) {
        let wall = self.wall_ms(now);
        let Some(call) = self.calls.get_mut(&id) else {
            return;
        };
        let body = match (&call.offer, &call.negotiated) {
            (Some(offer), Some(neg)) => sdp::build_answer(offer, &call.local, neg),
            _ => sdp::build_offer(&call.local, Direction::SendRecv),
        };
        call.phase = Phase::Answered;
        call.answer_ms = Some(wall);
        if let Some(neg) = call.negotiated {
            // Receive from now on, send only once the ACK confirms the dialog (`on_ack`): the
            // offer's address is only the INVITE's word until the caller answers our 200, and
            // one unacknowledged INVITE must not aim RTP at a third party (issue 9).
            self.media.command(MediaCommand::Start {
                call: call.dialog,
                params: StreamParams {
                    send: false,
                    ..stream_params(&neg)
                },
            });
        }
        self.ua.answer(now, call.dialog, body.into_bytes());
    }

    fn on_ack(&mut self, now: Instant, id: InteractionId, answer: Option<Vec<u8>>) {
        let Some(call) = self.calls.get_mut(&id) else {
            return;
        };
        // The offer came in the INVITE: `answer` started the stream without sending.
        let started_quiet = call.phase == Phase::Answered && call.negotiated.is_some();
        if call.negotiated.is_none() || (call.phase == Phase::Active && answer.is_some()) {
            // We offered (late offer in the INVITE, or a re-INVITE without SDP): the ACK answers.
            let accepted = answer
                .as_deref()
                .and_then(|a| SessionDescription::parse_bytes(a).ok())
                .and_then(|a| {
                    sdp::accept_answer(&a, &super::reoffer(&call.local, call.negotiated.as_ref()))
                        .ok()
                });
            match accepted {
                Some(neg) => {
                    let first = call.negotiated.is_none();
                    call.negotiated = Some(neg);
                    let params = stream_params(&neg);
                    let dialog = call.dialog;
                    self.media.command(if first {
                        MediaCommand::Start {
                            call: dialog,
                            params,
                        }
                    } else {
                        MediaCommand::Update {
                            call: dialog,
                            params,
                        }
                    });
                }
                None if call.negotiated.is_none() => {
                    tracing::info!(sip_call_id = %call.sip_call_id, "ACK carried no usable SDP answer; ending the call");
                    return self.end_by_hotline(now, id, "no_codec");
                }
                None => {}
            }
        }
        let Some(call) = self.calls.get_mut(&id) else {
            return;
        };
        if call.phase == Phase::Answered {
            if let Some(neg) = call.negotiated.filter(|_| started_quiet) {
                // The ACK confirms the dialog: now the stream may send.
                self.media.command(MediaCommand::Update {
                    call: call.dialog,
                    params: stream_params(&neg),
                });
            }
            call.phase = Phase::Active;
            call.interpreter.start(now);
            self.run_flow(now, id);
        }
    }

    fn on_reinvite(&mut self, now: Instant, id: InteractionId, offer: Option<Vec<u8>>) {
        let Some(call) = self.calls.get_mut(&id) else {
            return;
        };
        let dialog = call.dialog;
        call.local.session_version += 1;
        let Some(offer) = offer else {
            // RFC 3264 §8: a re-INVITE without SDP asks us to offer; the ACK answers.
            let dir = call.negotiated.map_or(Direction::SendRecv, |n| n.direction);
            let body = sdp::build_offer(
                &super::reoffer(&call.local, call.negotiated.as_ref()),
                if dir == Direction::Inactive {
                    Direction::SendRecv
                } else {
                    dir
                },
            );
            return self.ua.answer_reinvite(now, dialog, body.into_bytes());
        };
        let parsed = SessionDescription::parse_bytes(&offer).ok();
        let neg = parsed
            .as_ref()
            .and_then(|o| sdp::negotiate(o, &call.local).ok())
            .filter(|n| super::srtp_change_allowed(call.negotiated.as_ref(), n));
        match (parsed, neg) {
            (Some(o), Some(n)) => {
                let body = sdp::build_answer(&o, &call.local, &n);
                tracing::info!(sip_call_id = %call.sip_call_id, direction = n.direction.as_attr(), "re-INVITE");
                call.negotiated = Some(n);
                call.offer = Some(o);
                // Still no ACK for the first 200: keep quiet until it comes (see `answer`).
                let send = call.phase != Phase::Answered;
                self.media.command(MediaCommand::Update {
                    call: dialog,
                    params: StreamParams {
                        send: send && n.direction.sends(),
                        ..stream_params(&n)
                    },
                });
                self.ua.answer_reinvite(now, dialog, body.into_bytes());
            }
            _ => self.ua.reject_reinvite(now, dialog, 488),
        }
    }

    /// The one place an interaction ends: every leg it placed goes with it, and its CDR is
    /// written here and only here.
    pub(super) fn finish(
        &mut self,
        now: Instant,
        id: InteractionId,
        disposition: Disposition,
        hangup_by: HangupBy,
        sip_code: u16,
        reason: &str,
    ) {
        // The ACD hears first: offers ringing for this caller are cancelled and an agent
        // talking to them goes to wrap-up.
        self.queue_caller_gone(now, id);
        let Some(mut call) = self.calls.remove(&id) else {
            return;
        };
        if let Some(n) = self.calls_by_source.get_mut(&call.source) {
            *n -= 1;
            if *n == 0 {
                self.calls_by_source.remove(&call.source);
            }
        }
        self.dialogs.remove(&call.dialog);
        let said_before = self.events.len();
        self.end_legs_of(now, id);
        // A consultation's last word names the call, which is no longer in `calls`.
        for event in self.events.iter_mut().skip(said_before) {
            if let super::events::EngineEvent::Consult(update) = event
                && update.call.is_empty()
            {
                update.call = call.record_id.clone();
            }
        }
        // Close also hands over a recording in progress (MediaEvent::Recorded), so a caller
        // who speaks and hangs up leaves a message; see `on_recorded`.
        self.media
            .command(MediaCommand::Close { call: call.dialog });
        let sip_code = if call.answer_ms.is_some() {
            200
        } else {
            sip_code
        };
        tracing::info!(sip_call_id = %call.sip_call_id, ?disposition, ?hangup_by, reason, path = ?call.interpreter.path(), "call ended");
        let mut recordings = call.interpreter.recordings().to_vec();
        recordings.append(&mut call.late_recordings);
        let mut record = CdrRecord {
            id: call.record_id,
            sip_call_id: call.sip_call_id,
            caller: call.caller,
            dialled: call.dialled,
            start_ms: call.start_ms,
            answer_ms: call.answer_ms,
            end_ms: self.wall_ms(now),
            flow: Some(call.catalog.flows.flow(call.flow).name.clone()),
            ivr_path: call.interpreter.path().to_vec(),
            digits: call.interpreter.digits().to_string(),
            disposition,
            hangup_by,
            sip_code,
            end_reason: reason.to_string(),
            language: Some(call.interpreter.language().to_string()),
            survey: call.interpreter.survey_answers().to_vec(),
            recordings,
            flow_version: Some(call.catalog.version.clone()),
            labels: call
                .interpreter
                .labels()
                .iter()
                .map(|(name, value)| CallLabel {
                    name: name.clone(),
                    value: value.clone(),
                })
                .collect(),
            ..Default::default()
        };
        super::queue::fill_record(&mut record, &call.past_queues, &call.facts);
        record.transfers = call.transfers;
        // The record is complete but for recordings still on their way; it waits for them
        // (or RECORDING_HOLD) so that it lists exactly the messages that reached the disk.
        if call.recordings.is_empty() {
            self.release_record(now, id, record);
        } else {
            self.held.insert(
                id,
                HeldRecord {
                    dialog: call.dialog,
                    record,
                    pending: call.recordings,
                    until: now + RECORDING_HOLD,
                },
            );
        }
    }
}
