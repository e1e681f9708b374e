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
//! Wiring for the CLI: `hotline load TARGET` fills a `LoadOptions` (start from
//! `LoadOptions::new(target)`; `--calls`, `--cps`, `--hold`, `--server-pid`, `--floor`,
//! `--number`, `--digits`, `--digit-interval`, `--codec` via `Codec::from_encoding_name`,
//! `--local-ip`, `--caller-audio silence|speech`), calls `run`, and prints `format_table` or
//! `format_json`. `--floor` re-executes this binary as `hotline floor-server --streams N
//! --local-ip IP --max-secs S --pt PT` (`FLOOR_SUBCOMMAND`), which must be routed, hidden,
//! to `run_floor_server(FloorServerArgs::from_args(<the arguments after floor-server>)?)`
//! with stdin and stdout left alone (they carry the port exchange).

mod caller;
mod floor;
mod hist;
mod net;
mod procstat;
mod rtp_side;
mod sdp;
mod seq;
mod sip_side;

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde::Serialize;
use thiserror::Error;

use crate::media::{Codec, rfc4733};
use caller::{DtmfPlan, PayloadBank};
pub use floor::{FLOOR_SUBCOMMAND, FloorServerArgs, run_floor_server};
use rtp_side::{RtpCommand, RtpConfig, RtpOutcome};

/// After the last INVITE, how long answers may take: timer B (64·T1 = 32 s) plus slack.
const SETUP_LIMIT: Duration = Duration::from_secs(40);
/// After the last hang-up is due, how long BYE transactions may take (timer F plus slack).
const TEARDOWN_LIMIT: Duration = Duration::from_secs(40);
/// File descriptors kept free beyond one per call.
const FD_HEADROOM: u64 = 64;

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
    pub caller_audio: CallerAudio,
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
    pub floor: Option<FloorReport>,
    pub floor_cpu_s_per_call_min: Option<f64>,
    pub server_to_floor_ratio: Option<f64>,
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
    if fd_limit < opts.calls as u64 + FD_HEADROOM {
        return Err(LoadError::Invalid(format!(
            "{} calls need about {} open files; the limit is {fd_limit}",
            opts.calls,
            opts.calls as u64 + FD_HEADROOM
        )));
    }
    let plan = dtmf_plan(&opts)?;
    let mut notes = Vec::new();

    let floor = if opts.floor {
        Some(run_floor(&opts, floor_host()?)?)
    } else {
        None
    };

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
    };
    // Room for every Start and Stop, so the SIP side never waits on the media thread.
    let (tx, rx) = mpsc::sync_channel(2 * opts.calls as usize + 16);
    let rtp = rtp_side::spawn(
        RtpConfig {
            bank: caller_bank(&opts),
            plan,
            max_duration: sip_plan.limit() + Duration::from_secs(5),
            ids: opts.calls as usize,
        },
        rx,
    )
    .map_err(io_err("spawning the RTP thread"))?;
    let sip = sip_side::run(&sip_plan, &tx);
    let _ = tx.send(RtpCommand::Shutdown);
    drop(tx);
    let rtp = rtp.join().map_err(|_| LoadError::Panicked("RTP"))?;
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
    let ratio = server_cpu
        .zip(floor_cpu)
        .and_then(|(s, f)| (f > 0.0).then(|| s / f));
    let rtp_report = RtpReport::from_outcome(&rtp);
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
        floor_cpu_s_per_call_min: floor_cpu,
        floor,
        server_to_floor_ratio: ratio,
        duration_s: began.elapsed().as_secs_f64(),
        notes,
    })
}

/// The floor alone: `opts.calls` streams against plain sockets for `opts.hold`.
fn run_floor(opts: &LoadOptions, host: floor::FloorHost) -> Result<FloorReport, LoadError> {
    let f = floor::run_floor_phase(
        floor::FloorPlan {
            streams: opts.calls,
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
