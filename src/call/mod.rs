//! Call orchestration, sans-IO: the SIP user agent, each call's flow interpreter and media
//! commands meet here, and every call leaves exactly one CDR behind. The runtime feeds it
//! datagrams, media events and time; it answers with transmits, media commands and records.

mod catalog;
mod lookup;
mod media;
mod transfer;

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, VecDeque};
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

pub use catalog::{Catalog, CatalogError, CatalogReport};
pub use lookup::LookupJob;
pub use media::{MediaBackend, MediaCommand, MediaEvent, MediaOpenError};

use crate::cdr::{CdrRecord, Disposition, HangupBy};
use crate::flow::{
    CallInfo, FlowAction, FlowId, Interpreter, LookupRequest, LookupResult, QueueExit,
    RecordOutcome, TaskId,
};
use crate::media::stream::StreamParams;
use crate::sdp::{self, Direction, LocalMedia, Negotiated, SessionDescription};
use crate::sip::transaction::TimerConfig;
use crate::sip::{CallRef, Peer, Transmit, UaConfig, UaEvent, UserAgent};

/// What the engine needs to know that is not a flow: limits and timers.
#[derive(Debug, Clone)]
pub struct EngineConfig {
    pub max_calls: u32,
    pub retry_after: Duration,
    pub answer_delay: Duration,
    pub media_address: Option<IpAddr>,
    /// Used in SDP when neither `media_address` nor the caller's Request-URI names an address.
    pub fallback_address: IpAddr,
    pub advertised: String,
    /// See `UaConfig::advertise_request_host`.
    pub advertise_request_host: bool,
    pub shutdown_grace: Duration,
    pub timers: TimerConfig,
    /// The zone flows read `hour`, `weekday` and `date` in (schedules name their own).
    pub timezone: jiff::tz::TimeZone,
    /// Callers' messages go to `<recordings_dir>/<YYYY-MM-DD>/<call id>-<task>.wav`.
    pub recordings_dir: PathBuf,
    /// Where transfers to a number are sent (a gateway or trunk).
    pub outbound: Option<std::net::SocketAddr>,
}

/// How long a finished call's CDR waits for a recording still on its way (from the media
/// thread, then to disk) so the CDR can list it. Both take milliseconds; this only bounds a
/// lost media thread or a hung file system.
const RECORDING_HOLD: Duration = Duration::from_secs(10);

/// A caller's message to write to disk (8 kHz mono 16-bit WAV). The runtime reports the
/// outcome back through `Engine::handle_recording_written`.
#[derive(Debug)]
pub struct RecordingJob {
    pub call: CallRef,
    pub task: TaskId,
    pub path: PathBuf,
    pub samples: Vec<i16>,
}

/// A recording asked of the media and not yet written or given up. Its path is fixed when it
/// starts, so it is known wherever the call is by the time the samples arrive.
#[derive(Debug)]
struct PendingRecording {
    task: TaskId,
    path: PathBuf,
    /// Set once the samples came with sound: the file is being written.
    duration_ms: Option<u64>,
}

/// The CDR of a call that ended while one of its recordings was on the way.
struct HeldRecord {
    record: CdrRecord,
    pending: Vec<PendingRecording>,
    until: Instant,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Ringing until the answer delay ends.
    Ringing,
    /// 200 OK sent; the flow starts with the ACK.
    Answered,
    /// The flow runs.
    Active,
}

struct Call {
    id: String,
    sip_call_id: String,
    caller: String,
    dialled: String,
    start_ms: i64,
    answer_ms: Option<i64>,
    catalog: Arc<Catalog>,
    flow: FlowId,
    interpreter: Interpreter,
    phase: Phase,
    local: LocalMedia,
    offer: Option<SessionDescription>,
    negotiated: Option<Negotiated>,
    answer_at: Option<Instant>,
    scheduled: Option<Instant>,
    recordings: Vec<PendingRecording>,
    /// Files written after the flow stopped waiting for them (its task timed out): still the
    /// caller's message, so still in the CDR.
    late_recordings: Vec<String>,
    /// A transfer's outbound call, while it rings or is bridged.
    leg: Option<transfer::Leg>,
}

pub struct Engine<M: MediaBackend> {
    cfg: EngineConfig,
    ua: UserAgent,
    media: M,
    catalog: Arc<Catalog>,
    calls: HashMap<CallRef, Call>,
    deadlines: BinaryHeap<Reverse<(Instant, CallRef)>>,
    records: VecDeque<CdrRecord>,
    lookups: lookup::Lookups,
    epoch: (Instant, i64),
    shutdown_at: Option<Instant>,
    jobs: VecDeque<RecordingJob>,
    held: HashMap<CallRef, HeldRecord>,
    /// Transfer legs to the caller's call they belong to.
    legs: HashMap<CallRef, CallRef>,
}

impl<M: MediaBackend> Engine<M> {
    /// `epoch` pairs a monotonic instant with the wall clock (Unix ms) at that instant, so CDR
    /// times are derived from the same `now` every input carries.
    pub fn new(cfg: EngineConfig, catalog: Arc<Catalog>, media: M, epoch: (Instant, i64)) -> Self {
        let ua = UserAgent::new(UaConfig {
            timers: cfg.timers,
            advertised: cfg.advertised.clone(),
            advertise_request_host: cfg.advertise_request_host,
            user: "hotline".into(),
        });
        Engine {
            cfg,
            ua,
            media,
            catalog,
            calls: HashMap::new(),
            deadlines: BinaryHeap::new(),
            records: VecDeque::new(),
            lookups: lookup::Lookups::default(),
            epoch,
            shutdown_at: None,
            jobs: VecDeque::new(),
            held: HashMap::new(),
            legs: HashMap::new(),
        }
    }

    /// New calls use this catalog from now on; calls in progress keep the one they started with.
    pub fn set_catalog(&mut self, catalog: Arc<Catalog>) {
        self.catalog = catalog;
    }

    pub fn media(&mut self) -> &mut M {
        &mut self.media
    }

    pub fn active_calls(&self) -> usize {
        self.calls.len()
    }

    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.ua.poll_transmit()
    }

    pub fn poll_record(&mut self) -> Option<CdrRecord> {
        self.records.pop_front()
    }

    /// A back-end request to make for a call; its answer comes back through `handle_lookup`.
    pub fn poll_lookup(&mut self) -> Option<LookupJob> {
        self.lookups.poll_job()
    }

    /// The answer to a `LookupJob`: cached when the flow asked for it, then given to every
    /// call waiting for the same request.
    pub fn handle_lookup(&mut self, now: Instant, request: LookupRequest, result: LookupResult) {
        for (call_ref, id) in self.lookups.complete(now, &request, &result) {
            if let Some(call) = self.calls.get_mut(&call_ref) {
                call.interpreter.on_lookup(now, id, result.clone());
                self.run_flow(now, call_ref);
            }
        }
    }

    /// A recording to write to disk; its outcome comes back through `handle_recording_written`.
    pub fn poll_recording(&mut self) -> Option<RecordingJob> {
        self.jobs.pop_front()
    }

    pub fn poll_timeout(&self) -> Option<Instant> {
        let ours = self.deadlines.peek().map(|Reverse((t, _))| *t);
        let held = self.held.values().map(|h| h.until).min();
        [ours, self.ua.poll_timeout(), self.shutdown_at, held]
            .into_iter()
            .flatten()
            .min()
    }

    /// True once shutdown was asked for, every call is over (its CDR out, recordings
    /// included) and every request we sent (the BYEs) has its answer. Server transactions
    /// that only linger to absorb retransmissions do not hold the exit.
    pub fn drained(&self) -> bool {
        self.shutdown_at.is_some()
            && self.calls.is_empty()
            && self.held.is_empty()
            && self.ua.calls() == 0
            && self.ua.pending_requests() == 0
    }

    pub fn handle_sip(&mut self, now: Instant, source: Peer, data: &[u8]) {
        self.ua.handle_input(now, source, data);
        self.drain_ua(now);
    }

    pub fn handle_media(&mut self, now: Instant, event: MediaEvent) {
        let call_ref = event.call();
        if let MediaEvent::Recorded {
            id, samples, heard, ..
        } = event
        {
            return self.on_recorded(now, call_ref, TaskId(id), samples, heard);
        }
        let Some(call) = self.calls.get_mut(&call_ref) else {
            return;
        };
        match event {
            MediaEvent::Digit { digit, .. } => call.interpreter.on_digit(now, digit),
            MediaEvent::PlayDone { id, .. } => {
                call.interpreter.on_play_done(now, crate::flow::PlayId(id))
            }
            MediaEvent::RtpTimeout { .. } => {
                tracing::info!(sip_call_id = %call.sip_call_id, "no RTP from the caller; ending the call");
                return self.end_by_hotline(now, call_ref, "rtp_timeout");
            }
            MediaEvent::Recorded { .. } => {}
        }
        self.run_flow(now, call_ref);
    }

    /// The media ended a recording: with sound, it goes to disk; without, the flow hears
    /// there is no message. The call may have ended meanwhile; its CDR is held for this.
    fn on_recorded(
        &mut self,
        now: Instant,
        call_ref: CallRef,
        task: TaskId,
        samples: Vec<i16>,
        heard: bool,
    ) {
        let live = self.calls.contains_key(&call_ref);
        let pending = match (self.calls.get_mut(&call_ref), self.held.get_mut(&call_ref)) {
            (Some(call), _) => &mut call.recordings,
            (None, Some(held)) => &mut held.pending,
            (None, None) => return,
        };
        let Some(i) = pending
            .iter()
            .position(|p| p.task == task && p.duration_ms.is_none())
        else {
            return;
        };
        if heard {
            let p = &mut pending[i];
            p.duration_ms =
                Some(samples.len() as u64 * 1000 / u64::from(crate::media::SAMPLE_RATE));
            self.jobs.push_back(RecordingJob {
                call: call_ref,
                task,
                path: p.path.clone(),
                samples,
            });
            return;
        }
        pending.remove(i);
        if live {
            if let Some(call) = self.calls.get_mut(&call_ref) {
                tracing::info!(sip_call_id = %call.sip_call_id, "the caller left no message");
                call.interpreter
                    .on_record_done(now, task, RecordOutcome::Nothing);
            }
            self.run_flow(now, call_ref);
        } else {
            self.release_held(call_ref);
        }
    }

    /// The runtime wrote (or failed to write) a `RecordingJob`. A call still running goes on
    /// in its flow; one that ended gets the file into its held CDR. A failure is no message.
    pub fn handle_recording_written(
        &mut self,
        now: Instant,
        call_ref: CallRef,
        task: TaskId,
        result: Result<PathBuf, String>,
    ) {
        let live = self.calls.contains_key(&call_ref);
        let pending = match (self.calls.get_mut(&call_ref), self.held.get_mut(&call_ref)) {
            (Some(call), _) => Some(&mut call.recordings),
            (None, Some(held)) => Some(&mut held.pending),
            (None, None) => None,
        };
        let done = pending.and_then(|pending| {
            let i = pending
                .iter()
                .position(|p| p.task == task && p.duration_ms.is_some())?;
            Some(pending.remove(i))
        });
        let saved = match result {
            Ok(path) => {
                let duration_ms = done.as_ref().and_then(|p| p.duration_ms).unwrap_or(0);
                tracing::info!(path = %path.display(), duration_ms, live, "recording saved");
                Some((path_text(&path), duration_ms))
            }
            Err(error) => {
                let path = done.as_ref().map(|p| p.path.display().to_string());
                tracing::warn!(path, %error, "recording could not be written; no message");
                None
            }
        };
        if done.is_none() {
            // The CDR went out without waiting any longer (RECORDING_HOLD), listing the path.
            return;
        }
        if let Some(call) = self.calls.get_mut(&call_ref) {
            let outcome = match &saved {
                Some((path, duration_ms)) => RecordOutcome::Saved {
                    path: path.clone(),
                    duration_ms: *duration_ms,
                },
                None => RecordOutcome::Nothing,
            };
            call.interpreter.on_record_done(now, task, outcome);
            if let Some((path, _)) = saved
                && !call.interpreter.recordings().contains(&path)
            {
                call.late_recordings.push(path);
            }
            self.run_flow(now, call_ref);
        } else if let Some(held) = self.held.get_mut(&call_ref) {
            held.record.recordings.extend(saved.map(|(path, _)| path));
            self.release_held(call_ref);
        }
    }

    /// Send a held CDR once nothing it waits for is left.
    fn release_held(&mut self, call_ref: CallRef) {
        if self
            .held
            .get(&call_ref)
            .is_some_and(|h| h.pending.is_empty())
            && let Some(held) = self.held.remove(&call_ref)
        {
            self.records.push_back(held.record);
        }
    }

    /// Held CDRs whose recordings took too long: out they go. A file still being written is
    /// listed (it is there in all likelihood); one the media never delivered is not.
    fn expire_held(&mut self, now: Instant) {
        let expired: Vec<CallRef> = self
            .held
            .iter()
            .filter(|(_, h)| h.until <= now)
            .map(|(c, _)| *c)
            .collect();
        for call_ref in expired {
            let Some(mut held) = self.held.remove(&call_ref) else {
                continue;
            };
            for p in held.pending {
                let path = p.path.display().to_string();
                if p.duration_ms.is_some() {
                    tracing::warn!(%path, "recording still being written; listed in the CDR anyway");
                    held.record.recordings.push(path_text(&p.path));
                } else {
                    tracing::warn!(%path, "recording never came back from the media; not in the CDR");
                }
            }
            self.records.push_back(held.record);
        }
    }

    pub fn handle_timeout(&mut self, now: Instant) {
        self.ua.handle_timeout(now);
        self.drain_ua(now);
        while let Some(Reverse((at, call_ref))) = self.deadlines.peek().copied() {
            if at > now {
                break;
            }
            self.deadlines.pop();
            let Some(call) = self.calls.get_mut(&call_ref) else {
                continue;
            };
            if call.scheduled != Some(at) {
                continue;
            }
            call.scheduled = None;
            if call.phase == Phase::Ringing && call.answer_at.is_some_and(|t| t <= now) {
                call.answer_at = None;
                self.answer(now, call_ref);
            } else {
                self.check_ring_timeout(now, call_ref);
                if let Some(call) = self.calls.get_mut(&call_ref) {
                    call.interpreter.on_timeout(now);
                }
                self.run_flow(now, call_ref);
            }
            self.reschedule(call_ref);
        }
        self.expire_held(now);
        if self.shutdown_at.is_some_and(|t| t <= now) {
            self.shutdown_at = None;
            self.end_all(now);
            self.shutdown_at = Some(now + Duration::from_secs(3600));
        }
    }

    /// Stop taking calls (503 from now on) and give those in progress `grace` to finish.
    pub fn begin_shutdown(&mut self, now: Instant) {
        if self.shutdown_at.is_none() {
            tracing::info!(calls = self.calls.len(), grace = ?self.cfg.shutdown_grace, "shutting down: refusing new calls");
            self.shutdown_at = Some(now + self.cfg.shutdown_grace);
        }
    }

    /// End every call now (BYE, or 503 if not yet answered).
    fn end_all(&mut self, now: Instant) {
        let refs: Vec<CallRef> = self.calls.keys().copied().collect();
        for call_ref in refs {
            let answered = self
                .calls
                .get(&call_ref)
                .is_some_and(|c| c.phase != Phase::Ringing);
            if answered {
                self.end_by_hotline(now, call_ref, "shutdown");
            } else {
                self.ua.reject(
                    now,
                    call_ref,
                    503,
                    &[(
                        "Retry-After",
                        self.cfg.retry_after.as_secs().max(1).to_string(),
                    )],
                );
                self.finish(
                    now,
                    call_ref,
                    Disposition::Blocked,
                    HangupBy::None,
                    503,
                    "shutdown",
                );
            }
        }
    }

    fn drain_ua(&mut self, now: Instant) {
        while let Some(event) = self.ua.poll_event() {
            if self.on_leg_event(now, &event) {
                continue;
            }
            match event {
                UaEvent::Incoming {
                    call,
                    call_id,
                    from_user,
                    to_user,
                    offer,
                    local_ip,
                    source,
                    ..
                } => {
                    // A Request-URI with a host name names no address for SDP: take ours on
                    // the route back to the caller.
                    let local_ip =
                        local_ip.or_else(|| self.media.local_ip_towards(source.addr.ip()));
                    self.on_incoming(now, call, call_id, from_user, to_user, offer, local_ip)
                }
                UaEvent::Cancelled { call } => self.finish(
                    now,
                    call,
                    Disposition::CallerHangup,
                    HangupBy::Caller,
                    487,
                    "cancel",
                ),
                UaEvent::RemoteBye { call } => self.finish(
                    now,
                    call,
                    Disposition::CallerHangup,
                    HangupBy::Caller,
                    200,
                    "bye",
                ),
                UaEvent::Acked { call, answer } => self.on_ack(now, call, answer),
                UaEvent::ReInvite { call, offer } => self.on_reinvite(now, call, offer),
                UaEvent::Dtmf { call, digit } => {
                    if let Some(c) = self.calls.get_mut(&call) {
                        c.interpreter.on_digit(now, digit);
                        self.run_flow(now, call);
                    }
                }
                UaEvent::Ended { call, code: 408 } => self.finish(
                    now,
                    call,
                    Disposition::Failed,
                    HangupBy::Hotline,
                    200,
                    "no_ack",
                ),
                UaEvent::Ended { .. }
                | UaEvent::Progress { .. }
                | UaEvent::Answered { .. }
                | UaEvent::Failed { .. }
                | UaEvent::Reinvited { .. }
                | UaEvent::Reachability { .. }
                | UaEvent::Refer { .. } => {}
            }
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn on_incoming(
        &mut self,
        now: Instant,
        call_ref: CallRef,
        sip_call_id: String,
        caller: String,
        dialled: String,
        offer: Option<Vec<u8>>,
        local_ip: Option<IpAddr>,
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
            engine.ua.reject(now, call_ref, code, &extra);
            tracing::info!(%sip_call_id, %caller, %dialled, code, reason, "call refused");
            engine.records.push_back(CdrRecord {
                id: new_call_id(),
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
            });
        };
        if self.shutdown_at.is_some() {
            return refuse(self, 503, Disposition::Blocked, "shutdown", None);
        }
        if self.calls.len() >= self.cfg.max_calls as usize {
            return refuse(self, 503, Disposition::Blocked, "overload", None);
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
        let mut local = LocalMedia::new(address, 0, fastrand::u64(1..1 << 40));
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
                    return refuse(self, 488, Disposition::Failed, "no_codec", Some(flow_name));
                }
            },
        };
        match self.media.open(call_ref) {
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
            },
        );
        self.calls.insert(
            call_ref,
            Call {
                id: new_call_id(),
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
                leg: None,
            },
        );
        if self.cfg.answer_delay.is_zero() {
            self.answer(now, call_ref);
        } else {
            self.ua.ring(now, call_ref);
            if let Some(call) = self.calls.get_mut(&call_ref) {
                call.answer_at = Some(now + self.cfg.answer_delay);
            }
            self.reschedule(call_ref);
        }
    }

    fn answer(&mut self, now: Instant, call_ref: CallRef) {
        let wall = self.wall_ms(now);
        let Some(call) = self.calls.get_mut(&call_ref) else {
            return;
        };
        let body = match (&call.offer, &call.negotiated) {
            (Some(offer), Some(neg)) => sdp::build_answer(offer, &call.local, neg),
            _ => sdp::build_offer(&call.local, Direction::SendRecv),
        };
        call.phase = Phase::Answered;
        call.answer_ms = Some(wall);
        if let Some(neg) = call.negotiated {
            self.media.command(MediaCommand::Start {
                call: call_ref,
                params: stream_params(&neg),
            });
        }
        self.ua.answer(now, call_ref, body.into_bytes());
    }

    fn on_ack(&mut self, now: Instant, call_ref: CallRef, answer: Option<Vec<u8>>) {
        let Some(call) = self.calls.get_mut(&call_ref) else {
            return;
        };
        if call.negotiated.is_none() || (call.phase == Phase::Active && answer.is_some()) {
            // We offered (late offer in the INVITE, or a re-INVITE without SDP): the ACK answers.
            let accepted = answer
                .as_deref()
                .and_then(|a| SessionDescription::parse_bytes(a).ok())
                .and_then(|a| sdp::accept_answer(&a, &call.local).ok());
            match accepted {
                Some(neg) => {
                    let first = call.negotiated.is_none();
                    call.negotiated = Some(neg);
                    let params = stream_params(&neg);
                    let cmd = if first {
                        MediaCommand::Start {
                            call: call_ref,
                            params,
                        }
                    } else {
                        MediaCommand::Update {
                            call: call_ref,
                            params,
                        }
                    };
                    self.media.command(cmd);
                }
                None if call.negotiated.is_none() => {
                    tracing::info!(sip_call_id = %call.sip_call_id, "ACK carried no usable SDP answer; ending the call");
                    return self.end_by_hotline(now, call_ref, "no_codec");
                }
                None => {}
            }
        }
        let Some(call) = self.calls.get_mut(&call_ref) else {
            return;
        };
        if call.phase == Phase::Answered {
            call.phase = Phase::Active;
            call.interpreter.start(now);
            self.run_flow(now, call_ref);
        }
    }

    fn on_reinvite(&mut self, now: Instant, call_ref: CallRef, offer: Option<Vec<u8>>) {
        let Some(call) = self.calls.get_mut(&call_ref) else {
            return self.ua.reject_reinvite(now, call_ref, 481);
        };
        call.local.session_version += 1;
        let Some(offer) = offer else {
            // RFC 3264 §8: a re-INVITE without SDP asks us to offer; the ACK answers.
            let dir = call.negotiated.map_or(Direction::SendRecv, |n| n.direction);
            let body = sdp::build_offer(
                &call.local,
                if dir == Direction::Inactive {
                    Direction::SendRecv
                } else {
                    dir
                },
            );
            return self.ua.answer_reinvite(now, call_ref, body.into_bytes());
        };
        let parsed = SessionDescription::parse_bytes(&offer).ok();
        let neg = parsed
            .as_ref()
            .and_then(|o| sdp::negotiate(o, &call.local).ok());
        match (parsed, neg) {
            (Some(o), Some(n)) => {
                let body = sdp::build_answer(&o, &call.local, &n);
                tracing::info!(sip_call_id = %call.sip_call_id, direction = n.direction.as_attr(), "re-INVITE");
                call.negotiated = Some(n);
                call.offer = Some(o);
                self.media.command(MediaCommand::Update {
                    call: call_ref,
                    params: stream_params(&n),
                });
                self.ua.answer_reinvite(now, call_ref, body.into_bytes());
            }
            _ => self.ua.reject_reinvite(now, call_ref, 488),
        }
    }

    /// Carry out what the interpreter asked for. Results that are known at once (a cached
    /// lookup, a queue with no agents) are fed back in the same turn.
    fn run_flow(&mut self, now: Instant, call_ref: CallRef) {
        let mut hangup = false;
        let wall = self.wall_ms(now);
        loop {
            let Some(call) = self.calls.get_mut(&call_ref) else {
                return;
            };
            let Some(action) = call.interpreter.poll_action() else {
                break;
            };
            let codec = call.negotiated.map(|n| n.codec);
            match action {
                FlowAction::Play { id, prompts, .. } => {
                    let Some(codec) = codec else { continue };
                    let language = call.interpreter.language();
                    let data = prompts
                        .iter()
                        .filter_map(|p| call.catalog.prompt(language, *p))
                        .map(|p| p.for_codec(codec).clone())
                        .collect();
                    self.media.command(MediaCommand::Play {
                        call: call_ref,
                        id: id.0,
                        prompts: data,
                    });
                }
                FlowAction::StopPlayback => {
                    self.media.command(MediaCommand::Stop { call: call_ref })
                }
                FlowAction::Lookup { id, request } => {
                    if let Some(result) = self.lookups.start(now, call_ref, id, request) {
                        call.interpreter.on_lookup(now, id, result);
                    }
                }
                FlowAction::Record {
                    id,
                    max_length,
                    silence,
                } => {
                    if codec.is_none() {
                        tracing::info!(sip_call_id = %call.sip_call_id, "no media to record from; taking the record node's failure exit");
                        call.interpreter
                            .on_record_done(now, id, RecordOutcome::Nothing);
                        continue;
                    }
                    call.recordings.push(PendingRecording {
                        task: id,
                        path: recording_path(&self.cfg.recordings_dir, wall, &call.id, id),
                        duration_ms: None,
                    });
                    self.media.command(MediaCommand::Record {
                        call: call_ref,
                        id: id.0,
                        max_length,
                        silence,
                    });
                }
                FlowAction::StopRecording { id } => {
                    self.media.command(MediaCommand::StopRecording {
                        call: call_ref,
                        id: id.0,
                    })
                }
                FlowAction::Transfer {
                    id,
                    target,
                    is_number,
                    ring_timeout,
                } => self.start_transfer(now, call_ref, id, target, is_number, ring_timeout),
                FlowAction::Queue { id, queue, .. } => {
                    // No agent can be logged in until the ACD exists: the honest answer.
                    tracing::info!(sip_call_id = %call.sip_call_id, %queue, "no agents for the queue");
                    call.interpreter.on_queue_exit(now, id, QueueExit::NoAgents);
                }
                FlowAction::Hangup => hangup = true,
            }
        }
        if hangup {
            let Some(call) = self.calls.get_mut(&call_ref) else {
                return;
            };
            let stuck = call.interpreter.was_stuck();
            self.ua.hangup(now, call_ref);
            let (disposition, reason) = if stuck {
                (Disposition::Failed, "flow_loop")
            } else {
                (Disposition::Completed, "flow_hangup")
            };
            return self.finish(now, call_ref, disposition, HangupBy::Hotline, 200, reason);
        }
        self.reschedule(call_ref);
    }

    fn reschedule(&mut self, call_ref: CallRef) {
        let Some(call) = self.calls.get_mut(&call_ref) else {
            return;
        };
        let next = [
            call.answer_at,
            call.interpreter.poll_timeout(),
            call.leg.as_ref().and_then(|l| l.ring_deadline),
        ]
        .into_iter()
        .flatten()
        .min();
        if next != call.scheduled {
            call.scheduled = next;
            if let Some(t) = next {
                self.deadlines.push(Reverse((t, call_ref)));
            }
        }
    }

    /// Hang up a call that cannot go on (no media, no RTP, shutdown): BYE and a failed CDR.
    fn end_by_hotline(&mut self, now: Instant, call_ref: CallRef, reason: &str) {
        self.ua.hangup(now, call_ref);
        self.finish(
            now,
            call_ref,
            Disposition::Failed,
            HangupBy::Hotline,
            200,
            reason,
        );
    }

    /// The one place a call ends: its CDR is written here and only here.
    fn finish(
        &mut self,
        now: Instant,
        call_ref: CallRef,
        disposition: Disposition,
        hangup_by: HangupBy,
        sip_code: u16,
        reason: &str,
    ) {
        let Some(mut call) = self.calls.remove(&call_ref) else {
            return;
        };
        let leg = call.leg.take();
        self.end_leg(now, leg);
        // Close also hands over a recording in progress (MediaEvent::Recorded), so a caller
        // who speaks and hangs up leaves a message; see `on_recorded`.
        self.media.command(MediaCommand::Close { call: call_ref });
        let sip_code = if call.answer_ms.is_some() {
            200
        } else {
            sip_code
        };
        tracing::info!(sip_call_id = %call.sip_call_id, ?disposition, ?hangup_by, reason, path = ?call.interpreter.path(), "call ended");
        let mut recordings = call.interpreter.recordings().to_vec();
        recordings.append(&mut call.late_recordings);
        let record = CdrRecord {
            id: call.id,
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
        };
        // The record is complete but for recordings still on their way; it waits for them
        // (or RECORDING_HOLD) so that it lists exactly the messages that reached the disk.
        if call.recordings.is_empty() {
            self.records.push_back(record);
        } else {
            self.held.insert(
                call_ref,
                HeldRecord {
                    record,
                    pending: call.recordings,
                    until: now + RECORDING_HOLD,
                },
            );
        }
    }

    fn wall_ms(&self, now: Instant) -> i64 {
        let (base, wall) = self.epoch;
        wall + now.saturating_duration_since(base).as_millis() as i64
    }
}

fn stream_params(n: &Negotiated) -> StreamParams {
    StreamParams {
        codec: n.codec,
        audio_pt: n.audio_pt,
        event_pt: n.event_pt,
        remote: n.remote,
        send: n.direction.sends(),
        receive: n.direction.receives(),
    }
}

/// `<dir>/<YYYY-MM-DD>/<call id>-<task>.wav`, the date in UTC: one directory a day keeps
/// directories small, and the call id ties the file to its CDR.
fn recording_path(dir: &Path, wall_ms: i64, call_id: &str, task: TaskId) -> PathBuf {
    let date = jiff::Timestamp::from_millisecond(wall_ms)
        .unwrap_or(jiff::Timestamp::UNIX_EPOCH)
        .to_zoned_datetime(jiff::tz::TimeZone::UTC)
        .date();
    dir.join(date.to_string())
        .join(format!("{call_id}-{}.wav", task.0))
}

fn path_text(path: &Path) -> String {
    path.to_string_lossy().into_owned()
}

fn new_call_id() -> String {
    format!("{:016x}{:016x}", fastrand::u64(..), fastrand::u64(..))
}

#[cfg(test)]
mod tests;
