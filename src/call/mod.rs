//! Call orchestration, sans-IO: the SIP user agent, each call's flow interpreter, the ACD and
//! the media commands meet here, and every customer call leaves exactly one CDR behind. The
//! runtime feeds it datagrams, media events and time; it answers with transmits, media
//! commands and records.
//!
//! The model: an *interaction* is one customer call (`Call`, keyed by `InteractionId`). It
//! owns its caller's dialog and every other leg placed for it (`Leg`, keyed by `LegId`: an
//! agent being offered the call, a transfer target), the media topology between them (which
//! leg is bridged to the caller) and the facts its CDR is made of. Each SIP dialog
//! (`CallRef`) belongs to exactly one party, found through `dialogs`.
//!
//! caller.rs: the caller's dialog from INVITE to the end (answer, ACK, re-INVITE, finish and
//! the CDR). legs.rs: outbound legs, their states and timers. transfer.rs: the flow's
//! transfer node on a leg. queue.rs: the queue node on the ACD (offers on agent legs,
//! bridging, hold, the CDR's agent facts); agents.rs: registrations, feature codes and the
//! agent-state history; sticky.rs: who served a caller last; announce.rs: position and
//! wait announcements. recording.rs: messages on their way to disk and the CDRs that wait
//! for them.

pub mod agent_api;
mod agent_transfer;
mod agents;
mod announce;
mod caller;
mod catalog;
mod consult;
mod desk_consult;
pub mod events;
mod legs;
mod lookup;
mod media;
mod queue;
mod queue_consult;
mod recording;
pub mod snapshot;
mod sticky;
pub mod supervise;
mod transfer;

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, VecDeque};
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

pub use catalog::{Catalog, CatalogError, CatalogReport};
pub use lookup::LookupJob;
pub use media::{MediaBackend, MediaCommand, MediaEvent, MediaOpenError, MediaTotals};
pub use queue::WrapNote;
pub use recording::RecordingJob;

use crate::acd::Acd;
use crate::cdr::{AgentStateRecord, CdrRecord, Disposition, HangupBy};
use crate::flow::{FlowAction, FlowId, Interpreter, LookupRequest, LookupResult, Switches};
use crate::media::stream::StreamParams;
use crate::sdp::{LocalMedia, Negotiated, SessionDescription, SrtpPolicy};
use crate::sip::transaction::TimerConfig;
use crate::sip::{CallRef, Peer, Transmit, UaConfig, UaEvent, UserAgent};

use legs::Leg;
use queue::{AgentFacts, QueueVisit};
use recording::{HeldRecord, PendingRecording};
use sticky::StickyMemory;

/// One customer call, from its INVITE to its CDR. Allocated by the engine, never reused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct InteractionId(pub u64);

/// A dialog hotline placed on behalf of an interaction (an agent offer, a transfer target).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct LegId(pub u64);

/// Who a SIP dialog belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Party {
    Caller(InteractionId),
    Leg(LegId),
    /// A feature-code call from an agent's phone: answered and hung up at once.
    Service,
}

/// What a deadline in the engine's heap is for; stale entries are skipped when popped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Timer {
    Call(InteractionId),
    Leg(LegId),
    Acd,
}

/// An agent's wrap-up after a conversation: whose CDR its length goes into.
#[derive(Debug, Clone)]
struct Wrap {
    interaction: InteractionId,
    since_ms: i64,
    /// What the agent records during the wrap-up, put into the CDR when it ends.
    note: queue::WrapNote,
}

/// How long a finished call's CDR waits for the wrap-up of the agent who served it; wrap-up
/// ends by the queue's timer long before, this only bounds a lost event.
const WRAP_HOLD: Duration = Duration::from_secs(15 * 60);

/// After the shutdown grace, how long the BYEs and CANCELs sent to end the last calls get to
/// be answered before the process exits anyway.
const BYE_WAIT: Duration = Duration::from_secs(2);

/// What the engine needs to know that is not a flow: limits and timers.
#[derive(Debug, Clone)]
pub struct EngineConfig {
    pub max_calls: u32,
    /// Calls one source address may have at once (0: no limit); trusted networks of
    /// `admission` are exempt.
    pub source_max_calls: u32,
    /// New calls per source and second, answered at the front door.
    pub admission: crate::sip::admission::AdmissionConfig,
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
    /// How `outbound` is reached (a trunk may require TLS).
    pub outbound_transport: crate::sip::TransportKind,
    /// The calling number transfers present.
    pub outbound_caller_id: crate::config::OutboundCallerId,
    /// Agents' phones' registrations.
    pub registrar: crate::sip::RegistrarConfig,
    /// The engine's only randomness (record ids, SDP session ids, and the UA's seed), so a
    /// recorded input sequence replays to the same output. The runtime draws it at start.
    pub seed: u64,
    /// See `UaConfig::nonce_secret`.
    pub nonce_secret: [u8; 32],
    /// See `UaConfig::tls_port`.
    pub tls_port: Option<u16>,
    pub srtp: crate::config::SrtpMode,
    /// SRTP master keys: an input like `seed`, but never from a seeded generator.
    pub srtp_keys: crate::media::srtp::KeySource,
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

/// An interaction: the caller's dialog, the flow walking it, and what its CDR will say.
struct Call {
    /// The caller's dialog, which is also the key of the caller's media stream.
    dialog: CallRef,
    /// Where the INVITE came from (for the per-source limit).
    source: IpAddr,
    /// The CDR's id (32 hex chars).
    record_id: String,
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
    /// The leg whose audio is bridged with the caller's, if any.
    bridged: Option<LegId>,
    /// The queue the caller waits in or was answered from, while the queue node runs.
    queue: Option<QueueVisit>,
    /// Queue visits that are over, for the CDR.
    past_queues: Vec<QueueVisit>,
    facts: AgentFacts,
    /// Transfers made by agents, for the CDR.
    transfers: Vec<crate::cdr::TransferRow>,
    /// Conversations recorded so far (numbers their files).
    bridge_recordings: u32,
}

pub struct Engine<M: MediaBackend> {
    cfg: EngineConfig,
    ua: UserAgent,
    media: M,
    catalog: Arc<Catalog>,
    /// The announcement switches as their files last said; each call keeps the ones it
    /// started with.
    switches: Arc<Switches>,
    /// Calls counted as their records leave, for the metrics.
    totals: snapshot::Totals,
    /// For the CTI: drained by the signalling loop each turn.
    events: VecDeque<events::EngineEvent>,
    calls: HashMap<InteractionId, Call>,
    /// Callers' calls by the address their INVITE came from (see `source_max_calls`).
    calls_by_source: HashMap<IpAddr, u32>,
    legs: HashMap<LegId, Leg>,
    /// Every live dialog's owner: the one place a SIP or media event is routed by.
    dialogs: HashMap<CallRef, Party>,
    next_id: u64,
    deadlines: BinaryHeap<Reverse<(Instant, Timer)>>,
    records: VecDeque<CdrRecord>,
    /// Calls just admitted, for the CDR journal (see `poll_opened`).
    opened: VecDeque<CdrRecord>,
    lookups: lookup::Lookups,
    epoch: (Instant, i64),
    shutdown_at: Option<Instant>,
    /// Shutdown: the grace is over and every call was ended; after `BYE_WAIT` more, requests
    /// still unanswered (an INVITE to a phone that is gone runs 32 s) no longer hold the exit.
    ended_all: bool,
    stop_waiting: bool,
    jobs: VecDeque<RecordingJob>,
    held: HashMap<InteractionId, HeldRecord>,
    /// The one authority for agent and waiting-caller state.
    acd: Acd,
    acd_scheduled: Option<Instant>,
    sticky: StickyMemory,
    agent_states: VecDeque<AgentStateRecord>,
    /// Logged-in agents' time per state, rolled up per quarter hour for the indicators.
    agent_time: crate::cdr::agent_time::AgentTimeTracker,
    /// Agents in wrap-up, and the interaction each wrap-up belongs to.
    wrapping: HashMap<crate::acd::AgentId, Wrap>,
    /// Desk consultations waiting in (or answered from) a queue, by the caller's interaction.
    queue_consults: HashMap<InteractionId, queue_consult::QueueConsult>,
    /// CDRs of finished calls waiting for their agent's wrap-up to end.
    wrap_held: HashMap<InteractionId, (CdrRecord, Instant)>,
    /// Seeded from `EngineConfig::seed`; never the global generator.
    rng: fastrand::Rng,
}

impl<M: MediaBackend> Engine<M> {
    /// `epoch` pairs a monotonic instant with the wall clock (Unix ms) at that instant, so CDR
    /// times are derived from the same `now` every input carries.
    pub fn new(cfg: EngineConfig, catalog: Arc<Catalog>, media: M, epoch: (Instant, i64)) -> Self {
        let mut rng = fastrand::Rng::with_seed(cfg.seed);
        let mut ua = UserAgent::new(UaConfig {
            timers: cfg.timers,
            advertised: cfg.advertised.clone(),
            advertise_request_host: cfg.advertise_request_host,
            user: "hotline".into(),
            // Drawn, not `cfg.seed` itself, so the UA's stream is not the engine's.
            seed: rng.u64(..),
            nonce_secret: cfg.nonce_secret,
            tls_port: cfg.tls_port,
        });
        ua.set_registrar_config(cfg.registrar.clone());
        ua.set_admission(cfg.admission.clone());
        let mut engine = Engine {
            cfg,
            ua,
            media,
            calls: HashMap::new(),
            calls_by_source: HashMap::new(),
            legs: HashMap::new(),
            dialogs: HashMap::new(),
            next_id: 0,
            deadlines: BinaryHeap::new(),
            records: VecDeque::new(),
            opened: VecDeque::new(),
            lookups: lookup::Lookups::default(),
            epoch,
            shutdown_at: None,
            ended_all: false,
            stop_waiting: false,
            jobs: VecDeque::new(),
            held: HashMap::new(),
            acd: Acd::new(Arc::clone(&catalog.acd)),
            acd_scheduled: None,
            sticky: StickyMemory::default(),
            agent_states: VecDeque::new(),
            agent_time: Default::default(),
            wrapping: HashMap::new(),
            queue_consults: HashMap::new(),
            wrap_held: HashMap::new(),
            catalog,
            switches: Arc::default(),
            totals: snapshot::Totals::default(),
            events: VecDeque::new(),
            rng,
        };
        engine.apply_agents(epoch.0);
        engine
    }

    /// New calls use this catalog from now on; calls in progress keep the one they started
    /// with. Agents and queues change at once: the ACD lets a removed agent finish their call
    /// and sends callers of a removed queue back into their flows.
    pub fn set_catalog(&mut self, now: Instant, catalog: Arc<Catalog>) {
        self.catalog = catalog;
        self.apply_agents(now);
    }

    /// The announcement switches as their files say now (read by the reloader, whether or
    /// not the flows themselves loaded).
    pub fn refresh_switches(&mut self, now: Instant, switches: Switches) {
        let wall = jiff::Timestamp::from_millisecond(self.wall_ms(now))
            .unwrap_or(jiff::Timestamp::UNIX_EPOCH);
        for (name, window) in self.switches.changes(&switches) {
            match window {
                Some(w) => tracing::info!(
                    switch = name,
                    state = w.describe(wall, &self.cfg.timezone),
                    "announcement switch on; new calls hear the change"
                ),
                None => tracing::info!(switch = name, "announcement switch off"),
            }
        }
        self.switches = Arc::new(switches);
    }

    /// The agent who last served `caller` (from stored CDRs at start), for sticky routing.
    pub fn remember_agent(&mut self, caller: &str, agent: &str, wall_ms: i64) {
        self.sticky.remember(caller, agent, wall_ms);
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
        let record = self.records.pop_front()?;
        self.totals.count(&record);
        Some(record)
    }

    /// The next thing to tell the CTI.
    pub fn poll_event(&mut self) -> Option<events::EngineEvent> {
        self.events.pop_front()
    }

    /// A call just admitted, as its record would read if the server died before it ended:
    /// the writer journals it (`CdrItem::Open`) until `poll_record` gives the real one.
    /// Take these before the records of the same turn.
    pub fn poll_opened(&mut self) -> Option<CdrRecord> {
        self.opened.pop_front()
    }

    /// A back-end request to make for a call; its answer comes back through `handle_lookup`.
    pub fn poll_lookup(&mut self) -> Option<LookupJob> {
        self.lookups.poll_job()
    }

    /// The answer to a `LookupJob`: cached when the flow asked for it, then given to every
    /// call waiting for the same request.
    pub fn handle_lookup(&mut self, now: Instant, request: LookupRequest, result: LookupResult) {
        for (id, task) in self.lookups.complete(now, &request, &result) {
            if let Some(call) = self.calls.get_mut(&id) {
                call.interpreter.on_lookup(now, task, result.clone());
                self.run_flow(now, id);
            }
        }
    }

    /// A recording to write to disk; its outcome comes back through `handle_recording_written`.
    pub fn poll_recording(&mut self) -> Option<RecordingJob> {
        self.jobs.pop_front()
    }

    pub fn poll_timeout(&self) -> Option<Instant> {
        let ours = self.deadlines.peek().map(|Reverse((t, _))| *t);
        let held = self
            .held
            .values()
            .map(|h| h.until)
            .chain(self.wrap_held.values().map(|(_, until)| *until))
            .min();
        let cell = self
            .agent_time
            .next_close()
            .map(|wall| self.instant_of(wall));
        [ours, self.ua.poll_timeout(), self.shutdown_at, held, cell]
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
            && self.legs.is_empty()
            && self.held.is_empty()
            && self.wrap_held.is_empty()
            && (self.stop_waiting || (self.ua.calls() == 0 && self.ua.pending_requests() == 0))
    }

    pub fn handle_sip(&mut self, now: Instant, source: Peer, data: &[u8]) {
        self.ua.handle_input(now, source, data);
        self.drain_ua(now);
    }

    pub fn handle_media(&mut self, now: Instant, event: MediaEvent) {
        let dialog = event.call();
        let party = self.dialogs.get(&dialog).copied();
        // A recording may outlive its call (the CDR is held for it): found by its stream.
        match event {
            MediaEvent::Recorded {
                id, samples, heard, ..
            } => {
                if let Some(interaction) = self.recording_owner(dialog) {
                    self.on_recorded(now, interaction, crate::flow::TaskId(id), samples, heard);
                }
                return;
            }
            MediaEvent::RecordedStereo { id, samples, .. } => {
                if let Some(interaction) = self.recording_owner(dialog) {
                    let heard = !samples.is_empty();
                    self.on_recorded(now, interaction, crate::flow::TaskId(id), samples, heard);
                }
                return;
            }
            _ => {}
        }
        match party {
            Some(Party::Caller(id)) => self.caller_media(now, id, event),
            Some(Party::Leg(leg)) => self.leg_media(now, leg, event),
            Some(Party::Service) | None => {}
        }
    }

    fn caller_media(&mut self, now: Instant, id: InteractionId, event: MediaEvent) {
        let Some(call) = self.calls.get_mut(&id) else {
            return;
        };
        match event {
            MediaEvent::Digit { digit, .. } => {
                if self.queue_digit(now, id, digit, false) {
                    return;
                }
                let Some(call) = self.calls.get_mut(&id) else {
                    return;
                };
                call.interpreter.on_digit(now, digit)
            }
            MediaEvent::PlayDone { id: play, .. } => call
                .interpreter
                .on_play_done(now, crate::flow::PlayId(play)),
            MediaEvent::RtpTimeout { .. } => {
                tracing::info!(sip_call_id = %call.sip_call_id, "no RTP from the caller; ending the call");
                return self.end_by_hotline(now, id, "rtp_timeout");
            }
            MediaEvent::Recorded { .. } => {}
            MediaEvent::RecordedStereo { .. } => return,
        }
        self.run_flow(now, id);
    }

    pub fn handle_timeout(&mut self, now: Instant) {
        self.ua.handle_timeout(now);
        self.drain_ua(now);
        while let Some(Reverse((at, timer))) = self.deadlines.peek().copied() {
            if at > now {
                break;
            }
            self.deadlines.pop();
            match timer {
                Timer::Call(id) => self.call_timer(now, id, at),
                Timer::Leg(leg) => self.leg_timer(now, leg, at),
                Timer::Acd => self.acd_timer(now, at),
            }
        }
        self.expire_held(now);
        let wall = self.wall_ms(now);
        self.agent_time.tick(wall);
        if self.ended_all && self.shutdown_at.is_some_and(|t| t <= now) {
            if !self.stop_waiting {
                tracing::info!(
                    dialogs = self.ua.calls(),
                    requests = self.ua.pending_requests(),
                    "shutdown: not waiting longer for answers to our last requests"
                );
            }
            self.stop_waiting = true;
            self.shutdown_at = Some(now + Duration::from_secs(3600));
        } else if self.shutdown_at.is_some_and(|t| t <= now) {
            self.shutdown_at = None;
            self.end_all(now);
            // Wrap-up that is still running is cut short: its CDRs go out with what it was.
            let agents: Vec<_> = self.wrapping.keys().copied().collect();
            for agent in agents {
                self.wrap_up_ended(now, agent, wall);
            }
            self.agent_time.flush(wall);
            self.ended_all = true;
            self.shutdown_at = Some(now + BYE_WAIT);
        }
    }

    fn call_timer(&mut self, now: Instant, id: InteractionId, at: Instant) {
        let Some(call) = self.calls.get_mut(&id) else {
            return;
        };
        if call.scheduled != Some(at) {
            return;
        }
        call.scheduled = None;
        if call.phase == Phase::Ringing && call.answer_at.is_some_and(|t| t <= now) {
            call.answer_at = None;
            self.answer(now, id);
        } else {
            call.interpreter.on_timeout(now);
            self.run_flow(now, id);
        }
        self.reschedule(id);
    }

    /// Stop taking calls (503 from now on) and give those in progress `grace` to finish.
    pub fn begin_shutdown(&mut self, now: Instant) {
        if self.shutdown_at.is_none() {
            tracing::info!(calls = self.calls.len(), grace = ?self.cfg.shutdown_grace, "shutting down: refusing new calls");
            self.shutdown_at = Some(now + self.cfg.shutdown_grace);
            // The time counted so far goes out now: a quick stop may not pass a timeout again.
            self.agent_time.flush(self.wall_ms(now));
        }
    }

    /// End every call now (BYE, or 503 if not yet answered).
    fn end_all(&mut self, now: Instant) {
        let ids: Vec<InteractionId> = self.calls.keys().copied().collect();
        for id in ids {
            let Some(call) = self.calls.get(&id) else {
                continue;
            };
            if call.phase != Phase::Ringing {
                self.end_by_hotline(now, id, "shutdown");
            } else {
                let retry = self.cfg.retry_after.as_secs().max(1).to_string();
                self.ua
                    .reject(now, call.dialog, 503, &[("Retry-After", retry)]);
                self.finish(
                    now,
                    id,
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
            if let UaEvent::Incoming {
                call,
                call_id,
                from_user,
                to_user,
                offer,
                local_ip,
                source,
                authenticated,
            } = event
            {
                if to_user.starts_with('*') {
                    self.on_feature_code(now, call, &to_user, authenticated, offer.is_some());
                    continue;
                }
                if self.dials_an_agent(&to_user) {
                    let local_ip =
                        local_ip.or_else(|| self.media.local_ip_towards(source.addr.ip()));
                    self.on_consult_invite(
                        now,
                        consult::ConsultRequest {
                            dialog: call,
                            dialled: to_user,
                            authenticated,
                            offer,
                            local_ip,
                        },
                    );
                    continue;
                }
                // A Request-URI with a host name names no address for SDP: take ours on the
                // route back to the caller.
                let local_ip = local_ip.or_else(|| self.media.local_ip_towards(source.addr.ip()));
                self.on_incoming(
                    now,
                    call,
                    call_id,
                    from_user,
                    to_user,
                    offer,
                    local_ip,
                    source.addr.ip(),
                    source.transport == crate::sip::TransportKind::Tls,
                );
                continue;
            }
            if let UaEvent::Reachability { user, reachable } = &event {
                self.on_reachability(now, user, *reachable);
                continue;
            }
            if let UaEvent::Refer {
                call,
                target,
                replaces,
                ..
            } = event
            {
                let leg = match self.dialogs.get(&call) {
                    Some(Party::Leg(leg)) => Some(*leg),
                    _ => None,
                };
                self.on_refer(now, leg, call, &target, replaces);
                continue;
            }
            let Some(dialog) = event_dialog(&event) else {
                continue;
            };
            match self.dialogs.get(&dialog).copied() {
                Some(Party::Caller(id)) => self.caller_event(now, id, event),
                Some(Party::Leg(leg)) => self.leg_event(now, leg, event),
                Some(Party::Service) => self.service_event(now, dialog, event),
                None => {
                    if let UaEvent::ReInvite { call, .. } = event {
                        self.ua.reject_reinvite(now, call, 481);
                    }
                }
            }
        }
    }

    /// Carry out what the interpreter asked for. Results that are known at once (a cached
    /// lookup, a queue with no agents) are fed back in the same turn.
    fn run_flow(&mut self, now: Instant, id: InteractionId) {
        let mut hangup = false;
        loop {
            let Some(call) = self.calls.get_mut(&id) else {
                return;
            };
            let Some(action) = call.interpreter.poll_action() else {
                break;
            };
            let codec = call.negotiated.map(|n| n.codec);
            let dialog = call.dialog;
            match action {
                FlowAction::Play {
                    id: play, prompts, ..
                } => {
                    let Some(codec) = codec else { continue };
                    let language = call.interpreter.language();
                    let data = prompts
                        .iter()
                        .filter_map(|p| call.catalog.prompt(language, *p))
                        .map(|p| p.for_codec(codec).clone())
                        .collect();
                    self.media.command(MediaCommand::Play {
                        call: dialog,
                        id: play.0,
                        prompts: data,
                    });
                }
                FlowAction::StopPlayback => self.media.command(MediaCommand::Stop { call: dialog }),
                FlowAction::Lookup { id: task, request } => {
                    if let Some(result) = self.lookups.start(now, id, task, request) {
                        call.interpreter.on_lookup(now, task, result);
                    }
                }
                FlowAction::Record {
                    id: task,
                    max_length,
                    silence,
                } => self.start_recording(now, id, task, max_length, silence),
                FlowAction::StopRecording { id: task } => {
                    self.media.command(MediaCommand::StopRecording {
                        call: dialog,
                        id: task.0,
                    })
                }
                FlowAction::Transfer {
                    id: task,
                    target,
                    is_number,
                    ring_timeout,
                    headers,
                } => self.start_transfer(now, id, task, target, is_number, ring_timeout, headers),
                FlowAction::Queue {
                    id: task,
                    queue,
                    priority,
                    skills,
                    timeout,
                    keys,
                    record,
                } => self.enter_queue(
                    now,
                    id,
                    queue::QueueEntry {
                        task,
                        queue,
                        priority,
                        skills,
                        timeout,
                        keys,
                        record,
                    },
                ),
                FlowAction::Hangup => hangup = true,
            }
        }
        if hangup {
            let Some(call) = self.calls.get_mut(&id) else {
                return;
            };
            let stuck = call.interpreter.was_stuck();
            self.ua.hangup(now, call.dialog);
            let (disposition, reason) = if stuck {
                (Disposition::Failed, "flow_loop")
            } else {
                (Disposition::Completed, "flow_hangup")
            };
            return self.finish(now, id, disposition, HangupBy::Hotline, 200, reason);
        }
        self.reschedule(id);
    }

    fn reschedule(&mut self, id: InteractionId) {
        let Some(call) = self.calls.get_mut(&id) else {
            return;
        };
        let next = [call.answer_at, call.interpreter.poll_timeout()]
            .into_iter()
            .flatten()
            .min();
        if next != call.scheduled {
            call.scheduled = next;
            if let Some(t) = next {
                self.deadlines.push(Reverse((t, Timer::Call(id))));
            }
        }
    }

    /// Hang up a call that cannot go on (no media, no RTP, shutdown): BYE and a failed CDR.
    fn end_by_hotline(&mut self, now: Instant, id: InteractionId, reason: &str) {
        if let Some(call) = self.calls.get(&id) {
            self.ua.hangup(now, call.dialog);
        }
        self.finish(now, id, Disposition::Failed, HangupBy::Hotline, 200, reason);
    }

    /// A finished call's CDR goes out, unless the wrap-up of the agent who served it still
    /// runs: then it waits for its length.
    fn release_record(&mut self, now: Instant, id: InteractionId, record: CdrRecord) {
        if self.wrapping.values().any(|w| w.interaction == id) {
            self.wrap_held.insert(id, (record, now + WRAP_HOLD));
        } else {
            self.records.push_back(record);
        }
    }

    fn allocate(&mut self) -> u64 {
        self.next_id += 1;
        self.next_id
    }

    fn wall_ms(&self, now: Instant) -> i64 {
        let (base, wall) = self.epoch;
        wall + now.saturating_duration_since(base).as_millis() as i64
    }

    /// `wall_ms` with its fraction, to the microsecond.
    fn wall_ms_exact(&self, now: Instant) -> f64 {
        let (base, wall) = self.epoch;
        wall as f64 + now.saturating_duration_since(base).as_micros() as f64 / 1000.0
    }

    /// The monotonic instant of a wall time, for timers set by the wall clock.
    fn instant_of(&self, wall_ms: i64) -> Instant {
        let (base, wall) = self.epoch;
        base + Duration::from_millis(u64::try_from(wall_ms - wall).unwrap_or(0))
    }
}

/// The dialog an event (other than `Incoming`) is about.
fn event_dialog(event: &UaEvent) -> Option<CallRef> {
    Some(match event {
        UaEvent::Cancelled { call }
        | UaEvent::Acked { call, .. }
        | UaEvent::RemoteBye { call }
        | UaEvent::ReInvite { call, .. }
        | UaEvent::Dtmf { call, .. }
        | UaEvent::Progress { call, .. }
        | UaEvent::Answered { call, .. }
        | UaEvent::Failed { call, .. }
        | UaEvent::Ended { call, .. }
        | UaEvent::Reinvited { call, .. }
        | UaEvent::Refer { call, .. } => *call,
        UaEvent::Incoming { .. } | UaEvent::Reachability { .. } => return None,
    })
}

impl<M: MediaBackend> Engine<M> {
    /// Our side of SRTP for a new stream: a fresh key whenever SRTP may be used. When we make
    /// the offer, "optional" offers SRTP only to a phone reached over TLS: an SRTP offer
    /// fails with a phone that does not do it, and SDES keys over plain SIP are readable
    /// by anyone on the path anyway.
    pub(super) fn srtp_policy(&self, offering: bool, over_tls: bool) -> Option<SrtpPolicy> {
        use crate::config::SrtpMode;
        let required = match self.cfg.srtp {
            SrtpMode::Off => return None,
            SrtpMode::Optional if offering && !over_tls => return None,
            SrtpMode::Optional => false,
            SrtpMode::Required => true,
        };
        match self.cfg.srtp_keys.draw() {
            Some(key) => Some(SrtpPolicy::new(key, required)),
            None => {
                tracing::warn!("no SRTP key could be drawn from the system's randomness");
                None
            }
        }
    }
}

/// What a re-INVITE may change about SRTP: keys may be renewed and plain calls may start
/// encrypting, but an encrypted call stays encrypted, under its suite (a new suite under our
/// unchanged key would repeat its keystream). Otherwise the re-INVITE gets 488.
fn srtp_change_allowed(before: Option<&Negotiated>, after: &Negotiated) -> bool {
    match (before.and_then(|n| n.srtp), after.srtp) {
        (Some(b), Some(a)) => b.keys.suite == a.keys.suite,
        (Some(_), None) => false,
        (None, _) => true,
    }
}

/// Our side for an offer inside a call (a re-INVITE without SDP): SRTP as the call has it.
fn reoffer(local: &LocalMedia, negotiated: Option<&Negotiated>) -> LocalMedia {
    let mut local = local.clone();
    local.srtp = match (local.srtp, negotiated.and_then(|n| n.srtp)) {
        (Some(policy), Some(now)) => Some(SrtpPolicy {
            suite: now.keys.suite,
            ..policy
        }),
        (Some(policy), None) if negotiated.is_none() => Some(policy),
        _ => None,
    };
    local
}

fn stream_params(n: &Negotiated) -> StreamParams {
    StreamParams {
        codec: n.codec,
        audio_pt: n.audio_pt,
        event_pt: n.event_pt,
        remote: n.remote,
        send: n.direction.sends(),
        receive: n.direction.receives(),
        srtp: n.srtp.map(|s| s.keys),
    }
}

fn new_record_id(rng: &mut fastrand::Rng) -> String {
    format!("{:016x}{:016x}", rng.u64(..), rng.u64(..))
}

#[cfg(test)]
mod agent_tests;
#[cfg(test)]
mod leg_tests;
#[cfg(test)]
mod tests;
