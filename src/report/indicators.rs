//! The indicators, defined once: what is summed per group and interval (the tallies, filled
//! by SQL that is the same on SQLite and PostgreSQL) and how each indicator follows from the
//! sums. `docs/indicators.md` says the same in words; every report uses this.

use serde::Serialize;

/// A struct of integer sums, each with the SQL aggregate that fills it, in one place so the
/// columns and the fields cannot drift apart.
macro_rules! tally {
    ($(#[$meta:meta])* $name:ident { $($(#[$fmeta:meta])* $field:ident = $sql:expr,)* }) => {
        $(#[$meta])*
        #[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Serialize)]
        pub struct $name { $($(#[$fmeta])* pub $field: i64,)* }

        impl $name {
            /// The aggregates, in field order.
            pub const SQL: &'static [&'static str] = &[$($sql),*];

            pub fn from_values(values: &[i64]) -> Self {
                let mut it = values.iter().copied();
                $name { $($field: it.next().unwrap_or(0),)* }
            }

            pub fn add(&mut self, other: &Self) {
                $(self.$field += other.$field;)*
            }
        }
    };
}

// Parameters: $1 and $2 the range in quarter hours since 1970 (`start_ms / 900000`), $3
// service-level threshold, $4 short-abandon limit, $5 redial window, $6 repeat window, $7 FCR
// window (ms). `prev_ms` and `next_ms` link each call to
// the same number's previous call that got in and next call of any kind (NULL for withheld
// numbers), kept by the store as calls are written.
tally! {
    /// Sums over the call rows (`cdr c`) that started in the interval.
    CallTally {
        calls = "COUNT(*)",
        /// Blocked attempts the same number called again after, within the redial window.
        redialled = "SUM(CASE WHEN c.disposition = 'blocked' AND c.next_ms <= c.start_ms + $5 THEN 1 ELSE 0 END)",
        blocked = "SUM(CASE WHEN c.disposition = 'blocked' THEN 1 ELSE 0 END)",
        queued = "SUM(CASE WHEN c.queue_enter_ms IS NOT NULL THEN 1 ELSE 0 END)",
        answered = "SUM(CASE WHEN c.agent IS NOT NULL THEN 1 ELSE 0 END)",
        answered_in_sl = "SUM(CASE WHEN c.agent IS NOT NULL AND COALESCE(c.wait_ms, 0) <= $3 THEN 1 ELSE 0 END)",
        answer_wait_ms = "SUM(CASE WHEN c.agent IS NOT NULL THEN COALESCE(c.wait_ms, 0) ELSE 0 END)",
        abandoned_all = "SUM(CASE WHEN c.abandoned = 1 AND c.agent IS NULL THEN 1 ELSE 0 END)",
        short_abandons = "SUM(CASE WHEN c.abandoned = 1 AND c.agent IS NULL AND COALESCE(c.wait_ms, 0) <= $4 THEN 1 ELSE 0 END)",
        abandon_wait_ms = "SUM(CASE WHEN c.abandoned = 1 AND c.agent IS NULL AND COALESCE(c.wait_ms, 0) > $4 THEN c.wait_ms ELSE 0 END)",
        queue_ms = "SUM(CASE WHEN c.queue_leave_ms IS NOT NULL AND c.queue_enter_ms IS NOT NULL THEN c.queue_leave_ms - c.queue_enter_ms ELSE 0 END)",
        queue_left = "SUM(CASE WHEN c.queue_leave_ms IS NOT NULL AND c.queue_enter_ms IS NOT NULL THEN 1 ELSE 0 END)",
        talk_ms = "SUM(CASE WHEN c.agent IS NOT NULL THEN COALESCE(c.talk_ms, 0) ELSE 0 END)",
        hold_ms = "SUM(CASE WHEN c.agent IS NOT NULL THEN COALESCE(c.hold_ms, 0) ELSE 0 END)",
        wrap_up_ms = "SUM(CASE WHEN c.agent IS NOT NULL THEN COALESCE(c.wrap_up_ms, 0) ELSE 0 END)",
        ring_ms = "SUM(CASE WHEN c.agent IS NOT NULL THEN COALESCE(c.ring_ms, 0) ELSE 0 END)",
        rung = "SUM(CASE WHEN c.agent IS NOT NULL AND c.ring_ms IS NOT NULL THEN 1 ELSE 0 END)",
        /// Answered, said resolved in wrap-up, and the number did not call again (any
        /// attempt) within the FCR window (a withheld number cannot be followed, so the
        /// agent's word stands).
        first_call_resolved = "SUM(CASE WHEN c.agent IS NOT NULL AND c.resolved = 1 AND (c.next_ms IS NULL OR c.next_ms > c.start_ms + $7) THEN 1 ELSE 0 END)",
        /// The number called within the repeat window before (blocked attempts aside).
        repeat_calls = "SUM(CASE WHEN c.disposition <> 'blocked' AND c.prev_ms >= c.start_ms - $6 THEN 1 ELSE 0 END)",
        /// Answered by the IVR and finished there: no queue, no transfer, no failure.
        contained = "SUM(CASE WHEN c.answer_ms IS NOT NULL AND c.queue_enter_ms IS NULL AND c.disposition IN ('completed', 'caller_hangup') AND c.transfer_count = 0 THEN 1 ELSE 0 END)",
    }
}

tally! {
    /// Sums over the agents' time rows (`agent_time a`) whose quarter hour is in the interval.
    /// `{in_shift}` stands for "this agent was scheduled in this quarter hour".
    AgentTally {
        available_ms = "SUM(a.available_ms)",
        ringing_ms = "SUM(a.ringing_ms)",
        on_call_ms = "SUM(a.on_call_ms)",
        on_hold_ms = "SUM(a.on_hold_ms)",
        wrap_up_ms = "SUM(a.wrap_up_ms)",
        not_ready_ms = "SUM(a.not_ready_ms)",
        ready_in_shift_ms = "SUM(CASE WHEN {in_shift} THEN a.available_ms + a.ringing_ms + a.on_call_ms + a.on_hold_ms + a.wrap_up_ms ELSE 0 END)",
    }
}

/// Everything summed for one group and interval.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Sums {
    pub calls: CallTally,
    pub agents: AgentTally,
    /// Whether agents' time applies to the grouping (not per queue: agents serve several).
    pub has_agent_time: bool,
    /// Scheduled agent time (ms) in the interval, from the shifts.
    pub scheduled_ms: i64,
    /// Answered calls an agent transferred on.
    pub transferred: i64,
    /// Transfers by agents per reason ("" for none given).
    pub transfer_reasons: Vec<(String, i64)>,
    pub qa_score_sum: i64,
    pub qa_scored: i64,
}

impl Sums {
    pub fn add(&mut self, other: &Sums) {
        self.calls.add(&other.calls);
        self.agents.add(&other.agents);
        self.has_agent_time |= other.has_agent_time;
        self.scheduled_ms += other.scheduled_ms;
        self.transferred += other.transferred;
        for (reason, n) in &other.transfer_reasons {
            match self.transfer_reasons.iter_mut().find(|(r, _)| r == reason) {
                Some((_, m)) => *m += n,
                None => self.transfer_reasons.push((reason.clone(), *n)),
            }
        }
        self.transfer_reasons.sort();
        self.qa_score_sum += other.qa_score_sum;
        self.qa_scored += other.qa_scored;
    }
}

/// The 23 indicators of one group and interval. Rates are percentages; times are seconds.
/// None where the denominator is zero (no calls, no agent time): a report shows "-", not 0.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Indicators {
    /// 1. Blocked + abandoned + answered + the IVR's and the rest: every call that was new
    ///    demand (redialled blocked attempts are not).
    pub total_calls: i64,
    /// 2. Answered by an agent ÷ offered.
    pub answered_pct: Option<f64>,
    pub answered: i64,
    /// Calls that entered a queue, short abandons aside.
    pub offered: i64,
    /// 3. Answered within the threshold ÷ offered.
    pub service_level_pct: Option<f64>,
    /// 4. Average speed of answer: queue time of answered calls ÷ answered.
    pub asa_s: Option<f64>,
    /// 5. Abandoned (short abandons aside) ÷ offered.
    pub abandon_pct: Option<f64>,
    pub abandoned: i64,
    /// 6. Callers who gave up within the short-abandon limit.
    pub short_abandons: i64,
    /// 7. Mean wait of the abandoned (short abandons aside).
    pub avg_time_to_abandon_s: Option<f64>,
    /// 8. Mean time from queue entry to leaving the queue, however it was left.
    pub avg_queue_time_s: Option<f64>,
    /// 9. Talk per answered call.
    pub avg_talk_s: Option<f64>,
    /// 10. Hold per answered call.
    pub avg_hold_s: Option<f64>,
    /// 11. After-call work per answered call.
    pub avg_after_call_work_s: Option<f64>,
    /// 12. Talk + hold + after-call work per answered call.
    pub aht_s: Option<f64>,
    /// 13. (On call + on hold + wrap-up) ÷ (those + available + ringing).
    pub occupancy_pct: Option<f64>,
    /// 14. Logged-in-and-ready time within scheduled shifts ÷ scheduled time.
    pub adherence_pct: Option<f64>,
    /// 15. Answered ÷ logged-in hours.
    pub calls_per_agent_hour: Option<f64>,
    /// 16. Blocked (redials aside) ÷ total calls.
    pub blocked_pct: Option<f64>,
    pub blocked: i64,
    /// 17. Calls that entered a queue ÷ total calls.
    pub queue_placement_pct: Option<f64>,
    /// 18. Answered calls an agent transferred ÷ answered, with the reasons.
    pub transfer_pct: Option<f64>,
    pub transferred: i64,
    pub transfer_reasons: Vec<(String, i64)>,
    /// 19. First-call resolution: resolved with no call again within the window ÷ answered.
    pub fcr_pct: Option<f64>,
    /// 20. Calls from a number that called within the repeat window before ÷ total calls.
    pub repeat_pct: Option<f64>,
    pub repeat_calls: i64,
    /// 21. Calls finished in the IVR ÷ total calls.
    pub ivr_containment_pct: Option<f64>,
    /// 22. Mean QA score of the scored calls.
    pub qa_score: Option<f64>,
    pub qa_scored: i64,
    /// 23. Mean ring time of the answering agent's phone before answer.
    pub ring_time_s: Option<f64>,
}

fn pct(n: i64, d: i64) -> Option<f64> {
    (d > 0).then(|| n as f64 * 100.0 / d as f64)
}

fn secs(ms: i64, d: i64) -> Option<f64> {
    (d > 0).then(|| ms as f64 / 1000.0 / d as f64)
}

impl Indicators {
    pub fn from_sums(s: &Sums) -> Indicators {
        let c = &s.calls;
        let a = &s.agents;
        let total = c.calls - c.redialled;
        let offered = c.queued - c.short_abandons;
        let abandoned = c.abandoned_all - c.short_abandons;
        let handling = a.on_call_ms + a.on_hold_ms + a.wrap_up_ms;
        let idle = a.available_ms + a.ringing_ms;
        let logged_in = handling + idle + a.not_ready_ms;
        let agent = |v: Option<f64>| if s.has_agent_time { v } else { None };
        Indicators {
            total_calls: total,
            answered_pct: pct(c.answered, offered),
            answered: c.answered,
            offered,
            service_level_pct: pct(c.answered_in_sl, offered),
            asa_s: secs(c.answer_wait_ms, c.answered),
            abandon_pct: pct(abandoned, offered),
            abandoned,
            short_abandons: c.short_abandons,
            avg_time_to_abandon_s: secs(c.abandon_wait_ms, abandoned),
            avg_queue_time_s: secs(c.queue_ms, c.queue_left),
            avg_talk_s: secs(c.talk_ms, c.answered),
            avg_hold_s: secs(c.hold_ms, c.answered),
            avg_after_call_work_s: secs(c.wrap_up_ms, c.answered),
            aht_s: secs(c.talk_ms + c.hold_ms + c.wrap_up_ms, c.answered),
            occupancy_pct: agent(pct(handling, handling + idle)),
            adherence_pct: agent(pct(a.ready_in_shift_ms, s.scheduled_ms)),
            calls_per_agent_hour: agent(
                (logged_in > 0).then(|| c.answered as f64 * 3_600_000.0 / logged_in as f64),
            ),
            blocked_pct: pct(c.blocked - c.redialled, total),
            blocked: c.blocked - c.redialled,
            queue_placement_pct: pct(c.queued, total),
            transfer_pct: pct(s.transferred, c.answered),
            transferred: s.transferred,
            transfer_reasons: s.transfer_reasons.clone(),
            fcr_pct: pct(c.first_call_resolved, c.answered),
            repeat_pct: pct(c.repeat_calls, total),
            repeat_calls: c.repeat_calls,
            ivr_containment_pct: pct(c.contained, total),
            qa_score: (s.qa_scored > 0).then(|| s.qa_score_sum as f64 / s.qa_scored as f64),
            qa_scored: s.qa_scored,
            ring_time_s: secs(c.ring_ms, c.rung),
        }
    }
}
