//! What a load run reports (calls, RTP both ways, the floor, agents, desktops) and how it is
//! printed: JSON for scripts, a table for people.

use super::*;

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
    /// The tool's own send jitter: how much a stream's send time moved from one tick to
    /// the next. What the receivers measure holds this too.
    pub tool_send_jitter_samples: u64,
    pub tool_send_jitter_ms_p99: Option<f64>,
    pub tool_send_jitter_ms_max: Option<f64>,
    pub tool_late_ticks: u64,
    pub tool_skipped_ticks: u64,
}

impl RtpReport {
    pub(super) fn from_outcome(o: &RtpOutcome) -> Self {
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
            tool_send_jitter_samples: o.send_jitter.count(),
            tool_send_jitter_ms_p99: o.send_jitter.quantile_ms(0.99),
            tool_send_jitter_ms_max: o.send_jitter.max_ms(),
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
    /// Caller → agent audio as the agents hear it (one pass through hotline from the
    /// callers' paced sender): |inter-arrival gap − 20 ms|, kernel receive times.
    pub agent_gap_samples: u64,
    pub agent_gap_dev_ms_p50: Option<f64>,
    pub agent_gap_dev_ms_p99: Option<f64>,
    pub agent_gap_dev_ms_max: Option<f64>,
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

pub(super) fn agent_rows(s: &mut String, a: &AgentReport) {
    let ms = |v: Option<f64>| v.map_or("-".to_string(), |v| format!("{v:.1}"));
    let fine = |v: Option<f64>| v.map_or("-".to_string(), |v| format!("{v:.3}"));
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
    row(
        "gap dev at agents",
        format!(
            "{} / {} / {} ms p50/p99/max, one pass ({} gaps)",
            fine(a.agent_gap_dev_ms_p50),
            fine(a.agent_gap_dev_ms_p99),
            fine(a.agent_gap_dev_ms_max),
            a.agent_gap_samples
        ),
    );
}

pub(super) fn rtp_rows(s: &mut String, prefix: &str, r: &RtpReport) {
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
        "{:<26} p99 {} / max {} ms late, send jitter p99 {} / max {} ms, {} late, {} skipped ticks",
        format!("{prefix}tool pacing"),
        ms(r.tool_wake_late_ms_p99),
        ms(r.tool_wake_late_ms_max),
        ms(r.tool_send_jitter_ms_p99),
        ms(r.tool_send_jitter_ms_max),
        r.tool_late_ticks,
        r.tool_skipped_ticks
    );
}
