//! `hotline load`: a load generator that behaves like a crowd of phones. It places N calls
//! at R calls per second to a hotline on loopback, holds each for a while with RTP flowing
//! both ways (and keys pressed with RFC 4733), hangs up, and reports what the callers saw
//! (setup latency, loss, jitter, audio) and what it cost the server (CPU per call-minute,
//! peak RSS), optionally against the floor: the CPU plain UDP sockets need for the same
//! streams on this machine.
//!
//! Threads: the SIP side runs on the calling thread (`sip_side`), the media of every call on
//! one paced thread (`rtp_side`); they talk through a bounded channel. The floor runs in a
//! child process (`floor`), before the server test.
//!
//! Agents (`--agents N`, for the ACD): N phones, each with its own SIP and RTP socket, on
//! two more threads: `agent_sip` registers them with digest authentication (`digest`),
//! refreshes, answers offered calls after `--agent-answer-delay` (or never, or declines),
//! and de-registers at the end; `agent_rtp` echoes every audio packet back. The callers then
//! send a per-call signature (`signature`: caller id and frame counter, robust to G.711
//! transcoding and re-chunking) instead of silence, so the callers' media thread can tell
//! their own audio coming back through the bridge from prompts, music and other calls'
//! audio; the time to bridge, losses each way and wrong audio come from it. The callers
//! start once every agent has registered (or failed to, bounded).
//!
//! Wiring for the CLI: `hotline load TARGET` fills a `LoadOptions` (start from
//! `LoadOptions::new(target)`; `--calls`, `--cps`, `--hold`, `--server-pid`, `--floor`,
//! `--number`, `--digits`, `--digit-interval`, `--codec` via `Codec::from_encoding_name`,
//! `--local-ip`, `--caller-audio silence|speech`, and the agents' `AgentOptions` from
//! `--agents`, `--agent-*`), calls `run`, and prints `format_table` or `format_json`
//! (`--print-agents-toml QUEUE` prints `agents_toml` instead). `--floor` re-executes this binary as `hotline floor-server --streams N
//! --local-ip IP --max-secs S --pt PT` (`FLOOR_SUBCOMMAND`), which must be routed, hidden,
//! to `run_floor_server(FloorServerArgs::from_args(<the arguments after floor-server>)?)`
//! with stdin and stdout left alone (they carry the port exchange).

mod agent_rtp;
mod agent_sip;
mod agents;
mod caller;
mod desktops;
mod digest;
mod floor;
mod hist;
mod net;
mod procstat;
mod rtp_side;
mod sdp;
mod seq;
mod signature;
mod sip_side;

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde::Serialize;
use thiserror::Error;

use crate::media::{Codec, rfc4733};
pub use agents::{
    AgentCredential, AgentOptions, MAX_AGENTS, REALM, agent_credentials, agents_toml, floor_streams,
};
use caller::{DtmfPlan, PayloadBank};
pub use desktops::{DesktopOptions, DesktopReport, MAX_DESKTOPS};
pub use digest::DigestPreference;
pub use floor::{FLOOR_SUBCOMMAND, FloorServerArgs, run_floor_server};
use rtp_side::{RtpCommand, RtpConfig, RtpOutcome};

/// After the last INVITE, how long answers may take: timer B (64·T1 = 32 s) plus slack.
const SETUP_LIMIT: Duration = Duration::from_secs(40);
/// After the last hang-up is due, how long BYE transactions may take (timer F plus slack).
const TEARDOWN_LIMIT: Duration = Duration::from_secs(40);
/// File descriptors kept free beyond one per call.
const FD_HEADROOM: u64 = 64;
/// How long the agents may take to register (and make their login calls) before the
/// callers start anyway, beyond their spread-out start.
const AGENTS_READY_LIMIT: Duration = Duration::from_secs(75);

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum CallerAudio {
    /// G.711 silence, like a muted phone.
    Silence,
    /// A voiced, syllable-paced signal: for servers that listen (barge-in, VAD).
    Speech,
}

impl std::str::FromStr for CallerAudio {
    type Err = LoadError;
    fn from_str(s: &str) -> Result<Self, LoadError> {
        match s.to_ascii_lowercase().as_str() {
            "silence" => Ok(CallerAudio::Silence),
            "speech" => Ok(CallerAudio::Speech),
            _ => Err(LoadError::Invalid(format!(
                "caller audio {s:?}: expected silence or speech"
            ))),
        }
    }
}

#[derive(Debug, Clone)]
pub struct LoadOptions {
    /// The server's SIP UDP address; must be on loopback.
    pub target: SocketAddr,
    /// Calls placed, and held concurrently once all are up.
    pub calls: u32,
    /// Calls placed per second.
    pub cps: f64,
    /// How long each call stays up after it is answered.
    pub hold: Duration,
    /// The server process, for CPU and peak RSS.
    pub server_pid: Option<u32>,
    /// Measure the floor first (adds one hold time to the run).
    pub floor: bool,
    /// The number dialled (request URI user).
    pub number: String,
    /// Keys pressed, in order, every `digit_interval` (0-9, *, #, A-D); empty for none.
    pub digits: String,
    pub digit_interval: Duration,
    pub codec: Codec,
    /// Where the callers' SIP and RTP sockets live; must be on loopback.
    pub local_ip: IpAddr,
    /// Ignored with agents: callers then send their signature (`signature.rs`).
    pub caller_audio: CallerAudio,
    /// Agents that register to the server and answer the calls it offers (count 0: none).
    pub agents: AgentOptions,
    /// Agent desktops on the CTI event stream, connected before the callers start.
    pub desktops: DesktopOptions,
}

impl LoadOptions {
    /// The defaults of the CLI: 10 calls at 5 per second, held 30 s, dialling 100 and
    /// pressing 1 every 3 s, PCMU, from 127.0.0.1, callers silent.
    pub fn new(target: SocketAddr) -> Self {
        LoadOptions {
            target,
            calls: 10,
            cps: 5.0,
            hold: Duration::from_secs(30),
            server_pid: None,
            floor: false,
            number: "100".into(),
            digits: "1".into(),
            digit_interval: Duration::from_secs(3),
            codec: Codec::Pcmu,
            local_ip: IpAddr::V4(Ipv4Addr::LOCALHOST),
            caller_audio: CallerAudio::Silence,
            agents: AgentOptions::default(),
            desktops: DesktopOptions::default(),
        }
    }
}

#[derive(Debug, Error)]
pub enum LoadError {
    #[error("{0} is not a loopback address: the load tool only sends to 127.0.0.0/8 or ::1")]
    NotLoopback(IpAddr),
    #[error("invalid option: {0}")]
    Invalid(String),
    #[error("{context}: {source}")]
    Io {
        context: String,
        source: std::io::Error,
    },
    #[error("SIP: {0}")]
    Sip(String),
    #[error("floor server: {0}")]
    Floor(String),
    #[error("the {0} thread panicked")]
    Panicked(&'static str),
}

pub(crate) fn io_err(context: &str) -> impl FnOnce(std::io::Error) -> LoadError + '_ {
    move |source| LoadError::Io {
        context: context.to_string(),
        source,
    }
}

/// What the callers' media side saw and did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct RtpReport {
    pub streams: u64,
    pub packets_sent: u64,
    pub send_errors: u64,
    pub dtmf_digits_sent: u64,
    pub dtmf_packets_sent: u64,
    pub packets_received: u64,
    pub packets_expected: u64,
    pub packets_lost: u64,
    pub loss_percent: f64,
    pub duplicates: u64,
    pub late_packets: u64,
    /// Received G.711 packets whose decoded level is above about −50 dBFS.
    pub audio_packets: u64,
    /// Datagrams that were not RTP (or were longer than 1500 bytes).
    pub foreign_packets: u64,
    /// Datagrams from anywhere but the server's SDP address and port (not counted as
    /// received): someone else's media reached the callers.
    pub foreign_source_packets: u64,
    /// Of `packets_lost`: the server's packets missing at the end of calls (it went quiet
    /// while the caller kept sending, as when its stream latched elsewhere: a hijack).
    pub tail_lost: u64,
    /// Gaps measured (consecutive sequence numbers, kernel receive timestamps).
    pub gap_samples: u64,
    pub gap_dev_ms_p50: Option<f64>,
    pub gap_dev_ms_p99: Option<f64>,
    pub gap_dev_ms_max: Option<f64>,
    /// The tool's own pacing: how late its 20 ms ticks woke.
    pub tool_wake_late_ms_p99: Option<f64>,
    pub tool_wake_late_ms_max: Option<f64>,
    pub tool_late_ticks: u64,
    pub tool_skipped_ticks: u64,
}

impl RtpReport {
    fn from_outcome(o: &RtpOutcome) -> Self {
        let c = &o.counters;
        let lost = c.lost();
        RtpReport {
            streams: c.streams,
            packets_sent: c.sent,
            send_errors: c.send_errors,
            dtmf_digits_sent: c.digits,
            dtmf_packets_sent: c.event_packets,
            packets_received: c.received,
            packets_expected: c.expected,
            packets_lost: lost,
            loss_percent: if c.expected > 0 {
                lost as f64 * 100.0 / c.expected as f64
            } else {
                0.0
            },
            duplicates: c.duplicates,
            late_packets: c.late,
            audio_packets: c.audio_packets,
            foreign_packets: c.foreign,
            foreign_source_packets: c.foreign_source,
            tail_lost: c.tail_lost,
            gap_samples: o.gap_deviation.count(),
            gap_dev_ms_p50: o.gap_deviation.quantile_ms(0.5),
            gap_dev_ms_p99: o.gap_deviation.quantile_ms(0.99),
            gap_dev_ms_max: o.gap_deviation.max_ms(),
            tool_wake_late_ms_p99: o.wake_lateness.quantile_ms(0.99),
            tool_wake_late_ms_max: o.wake_lateness.max_ms(),
            tool_late_ticks: c.late_ticks,
            tool_skipped_ticks: c.skipped_ticks,
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct FloorReport {
    pub streams: u32,
    pub window_s: f64,
    pub cpu_s_per_call_min: Option<f64>,
    pub tool_cpu_s_per_call_min: Option<f64>,
    pub rtp: RtpReport,
}

/// With agents: what they did, and what the callers' signatures say about the bridge.
#[derive(Debug, Clone, Default, Serialize)]
pub struct AgentReport {
    pub agents: u32,
    /// Agents that answer offers (the rest ring forever or decline).
    pub answering_agents: u32,
    pub registered: u32,
    /// First registrations that failed, by final code (408: no answer).
    pub register_failures: BTreeMap<u16, u32>,
    /// The digest algorithm each agent's first registration succeeded with ("none": the
    /// server did not challenge).
    pub digest_algorithms: BTreeMap<String, u32>,
    pub refreshes: u32,
    pub refresh_failures: u32,
    /// De-registrations (Expires: 0) answered 2xx at the end.
    pub unregistered: u32,
    /// `--agent-login-code` calls by final code.
    pub login_results: BTreeMap<u16, u32>,
    /// INVITEs offered to idle agents.
    pub offered: u32,
    pub answered: u32,
    pub declined: u32,
    /// INVITEs to an agent already in a call (486).
    pub busy: u32,
    /// Offers cancelled before the agent answered.
    pub cancelled: u32,
    /// Offers without usable SDP (488).
    pub bad_offers: u32,
    /// Calls the agents ended (`--agent-talk`).
    pub agent_hangups: u32,
    /// Agent calls hotline ended.
    pub remote_byes: u32,
    /// Callers whose own signature came back (caller → hotline → agent → hotline → caller).
    pub callers_bridged: u64,
    /// callers_bridged / calls attempted × 100, to one decimal.
    pub bridged_pct: Option<f64>,
    /// From an agent hanging up to the next offer ringing its phone (callers waiting, no
    /// wrap-up): the server's distribution latency, seen from the phone.
    pub free_to_ring_ms_p50: Option<f64>,
    pub free_to_ring_ms_p99: Option<f64>,
    /// From the caller's INVITE to its first echoed frame (kernel receive time).
    pub bridge_ms_p50: Option<f64>,
    pub bridge_ms_p99: Option<f64>,
    pub bridge_ms_max: Option<f64>,
    /// Caller → agent frames (signature counters seen by the agents, from the first one).
    pub to_agent_expected: u64,
    pub to_agent_lost: u64,
    /// Caller → agent → caller frames (signature counters back at the callers, from the
    /// first echo).
    pub round_trip_expected: u64,
    pub round_trip_lost: u64,
    /// Of `round_trip_lost`: frames sent after the last one echoed that never came back
    /// (the echo stopped and nothing else came: the caller's media went astray).
    pub round_trip_tail_lost: u64,
    /// Echoes that resumed after half a second or more of other audio: callers bridged
    /// again (the frames in between are not counted as lost).
    pub rebridges: u64,
    /// Agent → caller: round-trip losses not already lost on the way to the agent.
    pub from_agent_lost: u64,
    /// Frames carrying another caller's signature: heard by callers, heard by agents.
    pub wrong_audio_callers: u64,
    pub wrong_audio_agents: u64,
    /// Audio frames without a signature: at callers after their first echo, at agents.
    pub unsigned_after_bridge: u64,
    pub agent_unsigned: u64,
    pub agent_media_calls: u64,
    pub echoed_packets: u64,
    /// Telephone-event and other non-audio packets agents received and did not echo.
    pub not_echoed_packets: u64,
    pub agent_send_errors: u64,
    pub agent_tool_skipped_ticks: u64,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct LoadReport {
    pub target: String,
    pub codec: String,
    pub cps: f64,
    pub hold_s: f64,
    pub calls_attempted: u32,
    pub calls_answered: u32,
    /// Answered, RTP received, and our BYE answered 2xx.
    pub calls_completed: u32,
    /// calls_completed / calls_attempted × 100, to one decimal; None when nothing was attempted.
    pub completion_pct: Option<f64>,
    pub calls_failed: u32,
    /// Calls the server ended with its own BYE.
    pub server_hangups: u32,
    /// Answered with SDP the tool could not use (no loopback address, no G.711).
    pub bad_answers: u32,
    /// Still in progress when the tool's time limit ran out.
    pub calls_unfinished: u32,
    /// Final INVITE responses by code (408: no response at all).
    pub failure_codes: BTreeMap<u16, u32>,
    /// BYE outcomes other than 2xx, by code.
    pub bye_failure_codes: BTreeMap<u16, u32>,
    pub setup_ms_p50: Option<f64>,
    pub setup_ms_p99: Option<f64>,
    pub setup_ms_max: Option<f64>,
    pub rtp: RtpReport,
    /// From the last call established to the first hang-up.
    pub steady_window_s: Option<f64>,
    pub steady_calls: Option<u32>,
    pub server_cpu_s_per_call_min: Option<f64>,
    pub server_peak_rss_mb: Option<f64>,
    /// This tool's own CPU over the same window.
    pub tool_cpu_s_per_call_min: Option<f64>,
    /// Full-duplex streams the server carried over the steady window: the callers, plus the
    /// mean number of agent calls up in it (time-weighted).
    pub server_streams: Option<f64>,
    pub server_cpu_s_per_stream_min: Option<f64>,
    pub floor: Option<FloorReport>,
    /// Per stream-minute: the floor carries `floor_streams` streams.
    pub floor_cpu_s_per_call_min: Option<f64>,
    /// Server CPU per stream-minute over the floor's (without agents: per call-minute, the
    /// same thing).
    pub server_to_floor_ratio: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub agents: Option<AgentReport>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub desktops: Option<DesktopReport>,
    pub duration_s: f64,
    pub notes: Vec<String>,
}

/// Place the calls, hold them, hang up, and report. Blocks for about
/// (floor ? hold : 0) + calls/cps + hold, and never longer than the SIP time limits allow.
pub fn run(opts: LoadOptions) -> Result<LoadReport, LoadError> {
    run_with(opts, floor::FloorHost::current_exe)
}

/// `run`, with the floor started by `floor_host` (tests cannot re-execute themselves as
/// `hotline floor-server`).
fn run_with(
    opts: LoadOptions,
    floor_host: impl FnOnce() -> Result<floor::FloorHost, LoadError>,
) -> Result<LoadReport, LoadError> {
    validate(&opts)?;
    let began = Instant::now();
    let fd_limit = net::raise_nofile_limit().map_err(io_err("raising the open-file limit"))?;
    let fds = opts.calls as u64
        + 2 * u64::from(opts.agents.count)
        + u64::from(opts.desktops.count)
        + FD_HEADROOM;
    if fd_limit < fds {
        return Err(LoadError::Invalid(format!(
            "{} calls and {} agents need about {fds} open files; the limit is {fd_limit}",
            opts.calls, opts.agents.count
        )));
    }
    let plan = dtmf_plan(&opts)?;
    let mut notes = Vec::new();

    let floor = if opts.floor {
        Some(run_floor(&opts, floor_host()?)?)
    } else {
        None
    };

    // Desktops first: their logins (a password hash each on the server) are over before
    // any caller is timed.
    let desktops = if opts.desktops.count > 0 {
        Some(desktops::start(&opts.desktops)?)
    } else {
        None
    };
    let agent_calls_up = Arc::new(agents::Gauge::new(Instant::now()));
    let sip_plan = sip_side::SipPlan {
        target: opts.target,
        local_ip: opts.local_ip,
        calls: opts.calls,
        cps: opts.cps,
        hold: opts.hold,
        number: opts.number.clone(),
        codec: opts.codec,
        server_pid: opts.server_pid,
        setup_limit: SETUP_LIMIT,
        teardown_limit: TEARDOWN_LIMIT,
        agent_calls_up: (opts.agents.count > 0).then(|| agent_calls_up.clone()),
    };
    let agents = if opts.agents.count > 0 {
        Some(start_agents(&opts, &sip_plan, agent_calls_up, &mut notes)?)
    } else {
        None
    };
    // Room for every Start and Stop, so the SIP side never waits on the media thread.
    let (tx, rx) = mpsc::sync_channel(2 * opts.calls as usize + 16);
    let rtp = rtp_side::spawn(
        RtpConfig {
            bank: caller_bank(&opts),
            plan,
            max_duration: sip_plan.limit() + Duration::from_secs(5),
            ids: opts.calls as usize,
            check_signature: opts.agents.count > 0,
        },
        rx,
    )
    .map_err(io_err("spawning the RTP thread"))?;
    let sip = sip_side::run(&sip_plan, &tx);
    let _ = tx.send(RtpCommand::Shutdown);
    drop(tx);
    let rtp = rtp.join().map_err(|_| LoadError::Panicked("RTP"))?;
    let agents = agents.map(RunningAgents::finish).transpose()?;
    let desktops = desktops
        .map(desktops::RunningDesktops::finish)
        .transpose()?;
    let sip = sip?;

    let completed = sip
        .bye_ok
        .iter()
        .zip(&rtp.received_by_id)
        .filter(|(ok, rx)| **ok && **rx > 0)
        .count() as u32;
    let t = &sip.tally;
    let window = sip.window.as_ref();
    if let Some(n) = &sip.window_note {
        notes.push(n.clone());
    }
    let server_cpu = window
        .and_then(|w| procstat::per_call_minute(w.server_cpu_seconds?, w.calls as u64, w.length));
    if opts.server_pid.is_none() {
        notes.push("server CPU and memory not measured: no server pid given".into());
    } else if window.is_some() && server_cpu.is_none() {
        notes.push("server CPU not measured: /proc/PID/stat unreadable".into());
    }
    let tool_cpu = window.and_then(|w| {
        procstat::per_call_minute(w.tool_cpu.as_secs_f64(), w.calls as u64, w.length)
    });
    let floor_cpu = floor.as_ref().and_then(|f| f.cpu_s_per_call_min);
    let server_streams = window.map(|w| f64::from(w.calls) + w.agent_calls);
    let server_cpu_stream = window.zip(server_streams).and_then(|(w, streams)| {
        let minutes = w.length.as_secs_f64() / 60.0;
        let cpu = w.server_cpu_seconds?;
        (streams > 0.0 && minutes > 0.0).then(|| cpu / (streams * minutes))
    });
    let ratio = server_cpu_stream
        .zip(floor_cpu)
        .and_then(|(s, f)| (f > 0.0).then(|| s / f));
    let rtp_report = RtpReport::from_outcome(&rtp);
    let agent_report = agents.map(|a| agent_report(&opts, t.attempted, &rtp, a, &mut notes));
    if rtp_report.tool_skipped_ticks > 0 {
        notes.push(format!(
            "the load tool fell behind and skipped {} ticks: its figures understate what it asked of the server",
            rtp_report.tool_skipped_ticks
        ));
    }
    if t.refused_sends > 0 {
        notes.push(format!(
            "{} SIP messages aimed off loopback were not sent",
            t.refused_sends
        ));
    }
    Ok(LoadReport {
        target: opts.target.to_string(),
        codec: opts.codec.encoding_name().to_string(),
        cps: opts.cps,
        hold_s: opts.hold.as_secs_f64(),
        calls_attempted: t.attempted,
        calls_answered: t.answered,
        calls_completed: completed,
        completion_pct: completion_pct(completed, t.attempted),
        calls_failed: t.failed,
        server_hangups: t.server_hangups,
        bad_answers: t.bad_answers,
        calls_unfinished: t.unfinished,
        failure_codes: t.failure_codes.clone(),
        bye_failure_codes: t.bye_failure_codes.clone(),
        setup_ms_p50: sip.setup.quantile_ms(0.5),
        setup_ms_p99: sip.setup.quantile_ms(0.99),
        setup_ms_max: sip.setup.max_ms(),
        rtp: rtp_report,
        steady_window_s: window.map(|w| w.length.as_secs_f64()),
        steady_calls: window.map(|w| w.calls),
        server_cpu_s_per_call_min: server_cpu,
        server_peak_rss_mb: opts.server_pid.and_then(procstat::peak_rss_mb),
        tool_cpu_s_per_call_min: tool_cpu,
        server_streams,
        server_cpu_s_per_stream_min: server_cpu_stream,
        floor_cpu_s_per_call_min: floor_cpu,
        floor,
        server_to_floor_ratio: ratio,
        agents: agent_report,
        desktops,
        duration_s: began.elapsed().as_secs_f64(),
        notes,
    })
}

/// The agents' two threads while the callers run.
struct RunningAgents {
    sip: std::thread::JoinHandle<agent_sip::AgentTally>,
    echo: std::thread::JoinHandle<agent_rtp::EchoCounters>,
    echo_tx: mpsc::SyncSender<agent_rtp::EchoCommand>,
    stop: Arc<AtomicBool>,
    ready: Option<agent_sip::Ready>,
}

struct AgentsDone {
    tally: agent_sip::AgentTally,
    echo: agent_rtp::EchoCounters,
    ready: Option<agent_sip::Ready>,
}

impl RunningAgents {
    /// Stop the agents (hang-ups, de-registration: bounded inside) and collect their counts.
    fn finish(self) -> Result<AgentsDone, LoadError> {
        self.stop.store(true, Ordering::Relaxed);
        let tally = self
            .sip
            .join()
            .map_err(|_| LoadError::Panicked("agents' SIP"))?;
        let _ = self.echo_tx.send(agent_rtp::EchoCommand::Shutdown);
        drop(self.echo_tx);
        let echo = self
            .echo
            .join()
            .map_err(|_| LoadError::Panicked("agents' RTP"))?;
        Ok(AgentsDone {
            tally,
            echo,
            ready: self.ready,
        })
    }
}

/// Open the agents' sockets, start their threads, and wait (bounded) until every agent has
/// registered or failed to.
fn start_agents(
    opts: &LoadOptions,
    sip_plan: &sip_side::SipPlan,
    calls_up: Arc<agents::Gauge>,
    notes: &mut Vec<String>,
) -> Result<RunningAgents, LoadError> {
    let a = &opts.agents;
    let mut sockets = Vec::with_capacity(a.count as usize);
    let mut ports = Vec::with_capacity(a.count as usize);
    for _ in 0..a.count {
        let s = net::bind_udp(opts.local_ip).map_err(io_err("binding an agent RTP socket"))?;
        ports.push(s.local_addr().map_err(io_err("agent RTP address"))?.port());
        sockets.push(s);
    }
    let ready_limit = AGENTS_READY_LIMIT + Duration::from_millis(2) * a.count;
    let max_duration = ready_limit + sip_plan.limit() + Duration::from_secs(15);
    let (echo_tx, echo_rx) = mpsc::sync_channel(4 * a.count as usize + 64);
    let echo = agent_rtp::spawn(sockets, echo_rx, max_duration + Duration::from_secs(5))
        .map_err(io_err("spawning the agents' RTP thread"))?;
    let stop = Arc::new(AtomicBool::new(false));
    let (ready_tx, ready_rx) = mpsc::channel();
    let sip = agent_sip::spawn(
        agent_sip::AgentSipPlan {
            target: opts.target,
            local_ip: opts.local_ip,
            opts: a.clone(),
            rtp_ports: ports,
            max_duration,
        },
        echo_tx.clone(),
        calls_up,
        ready_tx,
        stop.clone(),
    );
    let sip = match sip {
        Ok(h) => h,
        Err(e) => {
            let _ = echo_tx.send(agent_rtp::EchoCommand::Shutdown);
            return Err(e);
        }
    };
    let ready = ready_rx.recv_timeout(ready_limit).ok();
    match ready {
        None => notes.push(format!(
            "the agents had not all registered after {} s; the callers started anyway",
            ready_limit.as_secs()
        )),
        Some(r) if r.failed > 0 => notes.push(format!(
            "{} of {} agents did not register ({} did)",
            r.failed, a.count, r.registered
        )),
        Some(_) => {}
    }
    Ok(RunningAgents {
        sip,
        echo,
        echo_tx,
        stop,
        ready,
    })
}

fn agent_report(
    opts: &LoadOptions,
    attempted: u32,
    rtp: &RtpOutcome,
    done: AgentsDone,
    notes: &mut Vec<String>,
) -> AgentReport {
    let (t, e, c) = (&done.tally, &done.echo, &rtp.counters);
    let round_trip_lost = c.echo_expected.saturating_sub(c.echo_received);
    let to_agent_lost = e.expected.saturating_sub(e.received);
    if done.ready.is_none() {
        notes.push("agents: registration was still going on when the callers started".into());
    }
    if c.wrong_audio + e.wrong_audio > 0 {
        notes.push(format!(
            "audio crossed between calls: {} frames at callers, {} at agents carried another caller's signature",
            c.wrong_audio, e.wrong_audio
        ));
    }
    AgentReport {
        agents: opts.agents.count,
        answering_agents: opts.agents.answering(),
        registered: t.registered,
        register_failures: t.register_failures.clone(),
        digest_algorithms: t
            .algorithms
            .iter()
            .map(|(k, v)| (k.to_string(), *v))
            .collect(),
        refreshes: t.refreshes,
        refresh_failures: t.refresh_failures,
        unregistered: t.unregistered,
        login_results: t.login_results.clone(),
        offered: t.offered,
        answered: t.answered,
        declined: t.declined,
        busy: t.busy,
        cancelled: t.cancelled,
        bad_offers: t.bad_offers,
        agent_hangups: t.agent_hangups,
        remote_byes: t.remote_byes,
        callers_bridged: c.bridged,
        bridged_pct: (attempted > 0)
            .then(|| (c.bridged as f64 * 1000.0 / f64::from(attempted)).round() / 10.0),
        free_to_ring_ms_p50: t.free_to_ring.as_ref().and_then(|h| h.quantile_ms(0.5)),
        free_to_ring_ms_p99: t.free_to_ring.as_ref().and_then(|h| h.quantile_ms(0.99)),
        bridge_ms_p50: rtp.bridge.quantile_ms(0.5),
        bridge_ms_p99: rtp.bridge.quantile_ms(0.99),
        bridge_ms_max: rtp.bridge.max_ms(),
        to_agent_expected: e.expected,
        to_agent_lost,
        round_trip_expected: c.echo_expected,
        round_trip_lost,
        round_trip_tail_lost: c.echo_tail_lost,
        rebridges: c.rebridges,
        from_agent_lost: round_trip_lost.saturating_sub(to_agent_lost),
        wrong_audio_callers: c.wrong_audio,
        wrong_audio_agents: e.wrong_audio,
        unsigned_after_bridge: c.unsigned_after_bridge,
        agent_unsigned: e.unsigned,
        agent_media_calls: e.calls,
        echoed_packets: e.echoed,
        not_echoed_packets: e.not_echoed,
        agent_send_errors: e.send_errors,
        agent_tool_skipped_ticks: e.skipped_ticks,
    }
}

/// The floor alone: `floor_streams` streams against plain sockets for `opts.hold` (with
/// agents, the callers plus the calls that can be bridged at once).
fn run_floor(opts: &LoadOptions, host: floor::FloorHost) -> Result<FloorReport, LoadError> {
    let f = floor::run_floor_phase(
        floor::FloorPlan {
            streams: floor_streams(opts.calls, &opts.agents),
            local_ip: opts.local_ip,
            codec: opts.codec,
            hold: opts.hold,
            bank: caller_bank(opts),
            plan: dtmf_plan(opts)?,
        },
        host,
    )?;
    Ok(FloorReport {
        streams: f.streams,
        window_s: f.window.as_secs_f64(),
        cpu_s_per_call_min: f
            .cpu_seconds
            .and_then(|c| procstat::per_call_minute(c, f.streams as u64, f.window)),
        tool_cpu_s_per_call_min: procstat::per_call_minute(
            f.tool_cpu.as_secs_f64(),
            f.streams as u64,
            f.window,
        ),
        rtp: RtpReport::from_outcome(&f.rtp),
    })
}

/// The floor measurement on its own, with the floor in a child process (this executable's
/// `floor-server` subcommand). Uses calls, hold, codec, digits and local_ip from `opts`.
pub fn run_floor_only(opts: &LoadOptions) -> Result<FloorReport, LoadError> {
    let mut o = opts.clone();
    o.target = SocketAddr::new(opts.local_ip, 0);
    validate(&o)?;
    net::raise_nofile_limit().map_err(io_err("raising the open-file limit"))?;
    run_floor(opts, floor::FloorHost::current_exe()?)
}

fn validate(opts: &LoadOptions) -> Result<(), LoadError> {
    for ip in [opts.target.ip(), opts.local_ip] {
        if !ip.is_loopback() {
            return Err(LoadError::NotLoopback(ip));
        }
    }
    opts.agents.validate()?;
    opts.desktops.validate()?;
    if opts.calls == 0 {
        return Err(LoadError::Invalid("--calls must be at least 1".into()));
    }
    if !(opts.cps.is_finite() && opts.cps > 0.0 && opts.cps <= 10_000.0) {
        return Err(LoadError::Invalid(format!(
            "--cps {} must be above 0 and at most 10000",
            opts.cps
        )));
    }
    if opts.hold.is_zero() || opts.hold > Duration::from_secs(24 * 3600) {
        return Err(LoadError::Invalid(
            "--hold must be above 0 and at most a day".into(),
        ));
    }
    if opts.number.is_empty()
        || !opts
            .number
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "+-_.*#".contains(c))
    {
        return Err(LoadError::Invalid(format!(
            "--number {:?} is not a dialable user part",
            opts.number
        )));
    }
    Ok(())
}

fn dtmf_plan(opts: &LoadOptions) -> Result<DtmfPlan, LoadError> {
    let events = opts
        .digits
        .chars()
        .map(|c| {
            rfc4733::digit_event(c)
                .ok_or_else(|| LoadError::Invalid(format!("--digits: {c:?} is not a DTMF key")))
        })
        .collect::<Result<Box<[u8]>, _>>()?;
    let interval_ticks = (opts.digit_interval.as_nanos() / net::TICK_NS as u128) as u64;
    if events.is_empty() || interval_ticks == 0 {
        return Ok(DtmfPlan::none());
    }
    Ok(DtmfPlan {
        events,
        interval_ticks,
    })
}

fn caller_bank(opts: &LoadOptions) -> PayloadBank {
    if opts.agents.count > 0 {
        return PayloadBank::signature(opts.codec);
    }
    match opts.caller_audio {
        CallerAudio::Silence => PayloadBank::silence(opts.codec),
        CallerAudio::Speech => PayloadBank::speech(opts.codec),
    }
}

/// Rounded here rather than only when printed, so the JSON and the table agree.
fn completion_pct(completed: u32, attempted: u32) -> Option<f64> {
    (attempted > 0).then(|| (f64::from(completed) * 1000.0 / f64::from(attempted)).round() / 10.0)
}

pub fn format_json(report: &LoadReport) -> String {
    serde_json::to_string_pretty(report).unwrap_or_else(|e| format!("{{\"error\": \"{e}\"}}"))
}

pub fn format_table(r: &LoadReport) -> String {
    let mut s = String::new();
    let row = |s: &mut String, k: &str, v: String| {
        let _ = writeln!(s, "{k:<26} {v}");
    };
    let ms = |v: Option<f64>| v.map_or("-".to_string(), |v| format!("{v:.3} ms"));
    let num = |v: Option<f64>, unit: &str| v.map_or("-".to_string(), |v| format!("{v:.4}{unit}"));
    let codes = |m: &BTreeMap<u16, u32>| {
        if m.is_empty() {
            "none".to_string()
        } else {
            m.iter()
                .map(|(c, n)| format!("{c}×{n}"))
                .collect::<Vec<_>>()
                .join(", ")
        }
    };
    let _ = writeln!(
        s,
        "hotline load → {} ({}, {} cps, hold {} s)",
        r.target, r.codec, r.cps, r.hold_s
    );
    row(&mut s, "calls attempted", r.calls_attempted.to_string());
    row(&mut s, "calls answered", r.calls_answered.to_string());
    row(&mut s, "calls completed", r.calls_completed.to_string());
    row(
        &mut s,
        "completed %",
        r.completion_pct.map_or("-".into(), |p| format!("{p:.1}")),
    );
    row(
        &mut s,
        "calls failed",
        format!("{} ({})", r.calls_failed, codes(&r.failure_codes)),
    );
    row(&mut s, "server hang-ups", r.server_hangups.to_string());
    if r.bad_answers > 0 || r.calls_unfinished > 0 || !r.bye_failure_codes.is_empty() {
        row(&mut s, "bad SDP answers", r.bad_answers.to_string());
        row(&mut s, "unfinished", r.calls_unfinished.to_string());
        row(&mut s, "BYE failures", codes(&r.bye_failure_codes));
    }
    row(
        &mut s,
        "setup p50 / p99 / max",
        format!(
            "{} / {} / {}",
            ms(r.setup_ms_p50),
            ms(r.setup_ms_p99),
            ms(r.setup_ms_max)
        ),
    );
    rtp_rows(&mut s, "", &r.rtp);
    if let Some(a) = &r.agents {
        agent_rows(&mut s, a);
    }
    if let Some(d) = &r.desktops {
        let ms = |v: Option<f64>| v.map_or("-".to_string(), |v| format!("{v:.2}"));
        let _ = writeln!(
            s,
            "{:<26} {} of {} connected in {:.1} s (login failures {}, connect failures {}), {} closed by the server",
            "desktops",
            d.connected,
            d.desktops,
            d.connect_s,
            d.login_failures,
            d.connect_failures,
            d.closed_by_server
        );
        let _ = writeln!(
            s,
            "{:<26} {} agent events, latency p50 {} / p99 {} / max {} ms; {} other messages",
            "desktop events",
            d.agent_events,
            ms(d.latency_ms_p50),
            ms(d.latency_ms_p99),
            ms(d.latency_ms_max),
            d.other_messages
        );
    }
    row(
        &mut s,
        "steady window",
        r.steady_window_s.map_or("-".into(), |w| {
            format!("{w:.1} s with {} calls", r.steady_calls.unwrap_or(0))
        }),
    );
    row(
        &mut s,
        "server CPU",
        num(r.server_cpu_s_per_call_min, " s/call-min"),
    );
    if r.agents.is_some() {
        row(
            &mut s,
            "server streams",
            r.server_streams.map_or("-".into(), |n| {
                format!(
                    "{n:.1} (callers + agent calls up), {}",
                    num(r.server_cpu_s_per_stream_min, " s/stream-min")
                )
            }),
        );
    }
    row(
        &mut s,
        "server peak RSS",
        r.server_peak_rss_mb
            .map_or("-".into(), |m| format!("{m:.1} MB")),
    );
    row(
        &mut s,
        "load tool CPU",
        num(r.tool_cpu_s_per_call_min, " s/call-min"),
    );
    if let Some(f) = &r.floor {
        row(
            &mut s,
            "floor CPU",
            format!(
                "{} ({} streams, {:.1} s)",
                num(f.cpu_s_per_call_min, " s/call-min"),
                f.streams,
                f.window_s
            ),
        );
        rtp_rows(&mut s, "floor ", &f.rtp);
        row(
            &mut s,
            "floor load tool CPU",
            num(f.tool_cpu_s_per_call_min, " s/call-min"),
        );
    }
    row(
        &mut s,
        "server / floor",
        r.server_to_floor_ratio
            .map_or("-".into(), |x| format!("{x:.2}×")),
    );
    row(&mut s, "duration", format!("{:.1} s", r.duration_s));
    for n in &r.notes {
        let _ = writeln!(s, "note: {n}");
    }
    s
}

fn agent_rows(s: &mut String, a: &AgentReport) {
    let ms = |v: Option<f64>| v.map_or("-".to_string(), |v| format!("{v:.1}"));
    let codes = |m: &BTreeMap<u16, u32>| {
        if m.is_empty() {
            "none".to_string()
        } else {
            m.iter()
                .map(|(c, n)| format!("{c}×{n}"))
                .collect::<Vec<_>>()
                .join(", ")
        }
    };
    let mut row = |k: &str, v: String| {
        let _ = writeln!(s, "{k:<26} {v}");
    };
    row(
        "agents",
        format!(
            "{} ({} answering), {} registered ({}), failures: {}",
            a.agents,
            a.answering_agents,
            a.registered,
            a.digest_algorithms
                .iter()
                .map(|(k, n)| format!("{k}×{n}"))
                .collect::<Vec<_>>()
                .join(", "),
            codes(&a.register_failures)
        ),
    );
    row(
        "agent registrations",
        format!(
            "{} refreshes ({} failed), {} de-registered",
            a.refreshes, a.refresh_failures, a.unregistered
        ),
    );
    if !a.login_results.is_empty() {
        row("agent login calls", codes(&a.login_results));
    }
    row(
        "agent offers",
        format!(
            "{} offered, {} answered, {} declined, {} busy, {} cancelled, {} bad SDP",
            a.offered, a.answered, a.declined, a.busy, a.cancelled, a.bad_offers
        ),
    );
    row(
        "agent hang-ups",
        format!(
            "{} by agents, {} by the server",
            a.agent_hangups, a.remote_byes
        ),
    );
    row(
        "callers bridged",
        format!(
            "{} ({} %)",
            a.callers_bridged,
            a.bridged_pct.map_or("-".into(), |p| format!("{p:.1}"))
        ),
    );
    row(
        "agent free→rung p50/p99",
        format!(
            "{} / {} ms",
            ms(a.free_to_ring_ms_p50),
            ms(a.free_to_ring_ms_p99)
        ),
    );
    row(
        "INVITE→bridged p50/p99/max",
        format!(
            "{} / {} / {} ms",
            ms(a.bridge_ms_p50),
            ms(a.bridge_ms_p99),
            ms(a.bridge_ms_max)
        ),
    );
    row(
        "frames lost",
        format!(
            "caller→agent {} of {}, agent→caller {}, round trip {} of {} ({} never echoed at the end, {} re-bridged)",
            a.to_agent_lost,
            a.to_agent_expected,
            a.from_agent_lost,
            a.round_trip_lost,
            a.round_trip_expected,
            a.round_trip_tail_lost,
            a.rebridges
        ),
    );
    row(
        "wrong audio frames",
        format!(
            "{} at callers, {} at agents (unsigned: {} at callers after the bridge, {} at agents)",
            a.wrong_audio_callers, a.wrong_audio_agents, a.unsigned_after_bridge, a.agent_unsigned
        ),
    );
    row(
        "agent echo",
        format!(
            "{} packets in {} calls, {} not echoed, {} send errors, {} skipped ticks",
            a.echoed_packets,
            a.agent_media_calls,
            a.not_echoed_packets,
            a.agent_send_errors,
            a.agent_tool_skipped_ticks
        ),
    );
}

fn rtp_rows(s: &mut String, prefix: &str, r: &RtpReport) {
    let ms = |v: Option<f64>| v.map_or("-".to_string(), |v| format!("{v:.3}"));
    let _ = writeln!(
        s,
        "{:<26} {} sent ({} DTMF digits), {} received, {} lost ({:.3} %), {} audio",
        format!("{prefix}RTP packets"),
        r.packets_sent,
        r.dtmf_digits_sent,
        r.packets_received,
        r.packets_lost,
        r.loss_percent,
        r.audio_packets
    );
    let _ = writeln!(
        s,
        "{:<26} {} at the end of calls; {} not RTP, {} from an unexpected source",
        format!("{prefix}RTP lost/foreign"),
        r.tail_lost,
        r.foreign_packets,
        r.foreign_source_packets
    );
    let _ = writeln!(
        s,
        "{:<26} {} / {} / {} ms ({} gaps)",
        format!("{prefix}gap dev p50/p99/max"),
        ms(r.gap_dev_ms_p50),
        ms(r.gap_dev_ms_p99),
        ms(r.gap_dev_ms_max),
        r.gap_samples
    );
    let _ = writeln!(
        s,
        "{:<26} p99 {} / max {} ms late, {} late, {} skipped ticks",
        format!("{prefix}tool pacing"),
        ms(r.tool_wake_late_ms_p99),
        ms(r.tool_wake_late_ms_max),
        r.tool_late_ticks,
        r.tool_skipped_ticks
    );
}

#[cfg(test)]
mod tests;
