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
mod report;
mod rtp_side;
mod sdp;
mod seq;
mod signature;
mod sip_side;

pub use report::*;

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
    let echo_real_time = agents.as_ref().is_none_or(|a| a.echo.real_time);
    let agent_report = agents.map(|a| agent_report(&opts, t.attempted, &rtp, a, &mut notes));
    if rtp_report.tool_skipped_ticks > 0 {
        notes.push(format!(
            "the load tool fell behind and skipped {} ticks: its figures understate what it asked of the server",
            rtp_report.tool_skipped_ticks
        ));
    }
    if !rtp.real_time || !echo_real_time {
        notes.push(
            "the load tool's media threads were not allowed real-time priority: their own jitter, from sharing the CPU with the server, is in the gap figures"
                .into(),
        );
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
        agent_gap_samples: e.gap_deviation.count(),
        agent_gap_dev_ms_p50: e.gap_deviation.quantile_ms(0.5),
        agent_gap_dev_ms_p99: e.gap_deviation.quantile_ms(0.99),
        agent_gap_dev_ms_max: e.gap_deviation.max_ms(),
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

#[cfg(test)]
mod tests;
