//! The indicators on a scripted call mix whose every expected value is worked out by hand
//! below, on SQLite (always) and PostgreSQL (interop, HOTLINE_TEST_POSTGRES_URL), which must
//! give the same report. Agents' time comes from the real roll-up fed state changes on a
//! virtual clock.
//!
//! The mix, in Asia/Shanghai, from 09:00 (t = 0 s) to 10:00, two half hours. Service level
//! 20 s, short abandon 20 s, redial window 10 min, repeat 30 days, FCR 7 days. Agent a1
//! (team red, shift 09:00-10:00), a2 (team blue, shift 09:00-09:30).
//!
//! | call | caller | t (s) | what happened |
//! |---|---|---|---|
//! | c1 | A | 0 | billing, waits 10, rings a1 4, talk 120, hold 30, wrap 60, resolved |
//! | c2 | B | 60 | billing, waits 40, rings a2 6, talk 200, wrap 40, a2 transfers it ("expert") |
//! | c3 | C | 120 | billing, gives up after 10 (short abandon) |
//! | c4 | D | 180 | tech, gives up after 50 |
//! | c5 | E | 240 | blocked (503) |
//! | c6 | E | 300 | redial: tech, waits 5, rings a1 2, talk 60, wrap 20, resolved |
//! | c7 | F | 400 | IVR only, ended by the flow |
//! | c8 | G | 500 | IVR only, caller hangs up after being answered |
//! | c9 | E | 1900 | IVR, the flow transfers it to a number (E again: a repeat) |
//! | c10 | H | 2000 | tech, waits 25, rings a1 5, talk 100, hold 20, wrap 30, resolved |
//! | c11 | anonymous | 2100 | tech, gives up after 30 |
//! | c12 | I | 2200 | blocked, no redial |
//! | c13 | J | 2300 | failed before answer |
//! | c14 | K | 2400 | IVR only; K called two days before (a repeat) |
//!
//! QA: c1 scored 90, c10 scored 70.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use hotline::cdr::agent_time::AgentTimeTracker;
use hotline::cdr::{
    AgentStateKind, AgentTimeRecord, CdrRecord, CdrStore, Disposition, HangupBy, OfferOutcome,
    OfferRow, TransferKind, TransferRow, TransferTargetKind,
};
use hotline::flow::schedule::parse_span;
use hotline::report::{
    self, Directory, GroupBy, Indicators, Interval, Report, ReportRequest, ReportSettings, Shift,
};

const S: i64 = 1000;

struct Mix {
    run: String,
    /// Epoch ms of 09:00 local.
    base: i64,
    calls: Vec<CdrRecord>,
    times: Vec<AgentTimeRecord>,
}

#[derive(Default, Clone, Copy)]
struct Queued {
    wait: i64,
    /// (agent, ring seconds, talk, hold, wrap, resolved)
    agent: Option<(&'static str, i64, i64, i64, i64, bool)>,
}

impl Mix {
    fn new() -> Mix {
        static N: AtomicU64 = AtomicU64::new(0);
        // Its own day per run (and per mix within a run), so runs sharing a PostgreSQL
        // database do not see each other's calls.
        let seed = fastrand::u64(0..15_000) + N.fetch_add(1, Ordering::Relaxed) * 61;
        let tz = jiff::tz::TimeZone::get("Asia/Shanghai").unwrap();
        let day = jiff::civil::date(2031, 1, 1)
            .checked_add(jiff::Span::new().days(seed as i64 % 20_000))
            .unwrap();
        let base = day
            .at(9, 0, 0, 0)
            .to_zoned_datetime(tz)
            .unwrap()
            .timestamp()
            .as_millisecond();
        Mix {
            run: format!("{:x}{seed:x}", std::process::id()),
            base,
            calls: Vec::new(),
            times: Vec::new(),
        }
    }

    fn caller(&self, who: &str) -> String {
        if who == "anonymous" {
            who.into()
        } else {
            format!("{who}-{}", self.run)
        }
    }

    fn call(&mut self, n: u32, who: &str, t: i64) -> &mut CdrRecord {
        let start = self.base + t * S;
        self.calls.push(CdrRecord {
            id: format!("{}-c{n}", self.run),
            sip_call_id: format!("{}-c{n}@mix", self.run),
            caller: self.caller(who),
            dialled: "95598".into(),
            start_ms: start,
            answer_ms: Some(start + 500),
            end_ms: start + 600 * S,
            flow: Some("main".into()),
            disposition: Disposition::CallerHangup,
            hangup_by: HangupBy::Caller,
            sip_code: 200,
            end_reason: "bye".into(),
            ..Default::default()
        });
        self.calls.last_mut().unwrap()
    }

    fn queued(&mut self, n: u32, who: &str, t: i64, queue: &str, q: Queued) {
        let rec = self.call(n, who, t);
        let enter = rec.start_ms;
        rec.queue = Some(queue.into());
        rec.queue_enter_ms = Some(enter);
        rec.queue_leave_ms = Some(enter + q.wait * S);
        rec.wait_ms = Some(q.wait * S);
        match q.agent {
            Some((agent, ring, talk, hold, wrap, resolved)) => {
                rec.agent = Some(agent.into());
                rec.team = Some(if agent == "a1" { "red" } else { "blue" }.into());
                rec.talk_ms = Some(talk * S);
                rec.hold_ms = Some(hold * S);
                rec.wrap_up_ms = Some(wrap * S);
                rec.resolved = Some(resolved);
                let answer = enter + q.wait * S;
                rec.offers = vec![OfferRow {
                    agent: agent.into(),
                    queue: Some(queue.into()),
                    ring_start_ms: answer - ring * S,
                    ring_end_ms: answer,
                    outcome: OfferOutcome::Answered,
                    sip_code: Some(200),
                }];
            }
            None => rec.abandoned = true,
        }
    }

    /// The mix of the table above.
    fn build() -> Mix {
        let mut m = Mix::new();
        let ans = |agent, ring, talk, hold, wrap, resolved| {
            Some((agent, ring, talk, hold, wrap, resolved))
        };
        m.queued(
            1,
            "A",
            0,
            "billing",
            Queued {
                wait: 10,
                agent: ans("a1", 4, 120, 30, 60, true),
            },
        );
        m.queued(
            2,
            "B",
            60,
            "billing",
            Queued {
                wait: 40,
                agent: ans("a2", 6, 200, 0, 40, false),
            },
        );
        m.calls.last_mut().unwrap().transfers = vec![TransferRow {
            at_ms: m.base + 300 * S,
            kind: TransferKind::Blind,
            target: "tech".into(),
            target_kind: TransferTargetKind::Queue,
            by: "a2".into(),
            reason: Some("expert".into()),
        }];
        m.queued(
            3,
            "C",
            120,
            "billing",
            Queued {
                wait: 10,
                agent: None,
            },
        );
        m.queued(
            4,
            "D",
            180,
            "tech",
            Queued {
                wait: 50,
                agent: None,
            },
        );
        let blocked = m.call(5, "E", 240);
        blocked.disposition = Disposition::Blocked;
        blocked.answer_ms = None;
        blocked.sip_code = 503;
        blocked.end_ms = blocked.start_ms;
        m.queued(
            6,
            "E",
            300,
            "tech",
            Queued {
                wait: 5,
                agent: ans("a1", 2, 60, 0, 20, true),
            },
        );
        m.call(7, "F", 400).disposition = Disposition::Completed;
        m.call(8, "G", 500);
        let transferred = m.call(9, "E", 1900);
        transferred.disposition = Disposition::Completed;
        transferred.transfers = vec![TransferRow {
            at_ms: transferred.start_ms + 30 * S,
            kind: TransferKind::Blind,
            target: "4001".into(),
            target_kind: TransferTargetKind::Number,
            by: "flow".into(),
            reason: None,
        }];
        m.queued(
            10,
            "H",
            2000,
            "tech",
            Queued {
                wait: 25,
                agent: ans("a1", 5, 100, 20, 30, true),
            },
        );
        m.queued(
            11,
            "anonymous",
            2100,
            "tech",
            Queued {
                wait: 30,
                agent: None,
            },
        );
        let blocked = m.call(12, "I", 2200);
        blocked.disposition = Disposition::Blocked;
        blocked.answer_ms = None;
        blocked.sip_code = 503;
        let failed = m.call(13, "J", 2300);
        failed.disposition = Disposition::Failed;
        failed.answer_ms = None;
        failed.sip_code = 404;
        m.call(14, "K", 2400).disposition = Disposition::Completed;
        m.call(15, "K", -2 * 86_400).disposition = Disposition::Completed;

        // The agents, on the virtual clock.
        use AgentStateKind::*;
        let mut tracker = AgentTimeTracker::default();
        let a1 = [
            (0, Available),
            (6, Ringing),
            (10, OnCall),
            (130, OnHold),
            (160, WrapUp),
            (220, Available),
            (303, Ringing),
            (305, OnCall),
            (365, WrapUp),
            (385, Available),
            (900, NotReady),
            (1800, Available),
            (2020, Ringing),
            (2025, OnCall),
            (2125, OnHold),
            (2145, WrapUp),
            (2175, Available),
            (3600, LoggedOut),
        ];
        let a2 = [
            (0, Available),
            (94, Ringing),
            (100, OnCall),
            (300, WrapUp),
            (340, Available),
            (1500, LoggedOut),
        ];
        let mut changes: Vec<(i64, &str, &str, AgentStateKind)> = a1
            .iter()
            .map(|&(t, s)| (t, "a1", "red", s))
            .chain(a2.iter().map(|&(t, s)| (t, "a2", "blue", s)))
            .collect();
        changes.sort_by_key(|c| c.0);
        for (t, agent, team, state) in changes {
            let now = m.base + t * S;
            tracker.tick(now);
            tracker.change(agent, Some(team), state, now);
        }
        tracker.tick(m.base + 4000 * S);
        let mut n = 0;
        while let Some(mut row) = tracker.poll() {
            n += 1;
            row.id = format!("{}-t{n}", m.run);
            m.times.push(row);
        }
        m
    }

    /// One call at a time, as the writer would: `reversed`, the last to start first, so each
    /// number's calls are linked out of order; otherwise in order, as calls mostly end.
    async fn store_into(&self, store: &CdrStore, reversed: bool) {
        let order: Vec<&CdrRecord> = if reversed {
            self.calls.iter().rev().collect()
        } else {
            self.calls.iter().collect()
        };
        for call in order {
            store
                .write_rows(std::slice::from_ref(call), &[], &[])
                .await
                .expect("write");
        }
        store
            .write_rows(&[], &[], &self.times)
            .await
            .expect("write");
        store
            .score_call(
                &format!("{}-c1", self.run),
                "sup",
                90,
                Some("good"),
                self.base,
            )
            .await
            .expect("score");
        store
            .score_call(&format!("{}-c10", self.run), "sup", 60, None, self.base)
            .await
            .expect("score");
        // Scoring again replaces the scorer's earlier score.
        store
            .score_call(&format!("{}-c10", self.run), "sup", 70, None, self.base)
            .await
            .expect("score again");
    }

    fn settings() -> ReportSettings {
        let span = |s| parse_span(s).unwrap().unwrap();
        ReportSettings {
            time_zone: jiff::tz::TimeZone::get("Asia/Shanghai").unwrap(),
            service_level: Duration::from_secs(20),
            service_level_target: 80,
            short_abandon: Duration::from_secs(20),
            redial_window: Duration::from_secs(600),
            repeat_days: 30,
            fcr_days: 7,
            shifts: vec![
                Shift {
                    agents: vec![],
                    team: Some("red".into()),
                    days: (0..7).collect(),
                    hours: span("09:00-10:00"),
                },
                Shift {
                    agents: vec!["a2".into()],
                    team: None,
                    days: (0..7).collect(),
                    hours: span("09:00-09:30"),
                },
            ],
        }
    }

    async fn report(&self, store: &CdrStore, interval: Interval, by: GroupBy) -> Report {
        let directory = Directory {
            teams: [("a1", "red"), ("a2", "blue")]
                .into_iter()
                .map(|(a, t)| (a.to_owned(), Some(t.to_owned())))
                .collect(),
        };
        let request = ReportRequest {
            from_ms: self.base,
            to_ms: self.base + 3600 * S,
            interval,
            by,
        };
        report::run(store, &Mix::settings(), &directory, &request)
            .await
            .expect("report")
    }
}

fn close(actual: Option<f64>, expected: f64, what: &str) {
    let a = actual.unwrap_or_else(|| panic!("{what}: no value, expected {expected}"));
    assert!(
        (a - expected).abs() < 1e-9,
        "{what}: {a}, expected {expected}"
    );
}

/// The half hours, all worked out by hand from the table at the top.
fn check_half_hours(r: &Report) {
    assert_eq!(r.rows.len(), 2, "two half hours");
    let first: &Indicators = &r.rows[0].indicators;
    let second: &Indicators = &r.rows[1].indicators;

    // 09:00-09:30: c1-c8; c5 was redialled (c6), so 7 calls of demand.
    assert_eq!(first.total_calls, 7);
    assert_eq!(first.blocked, 0);
    close(first.blocked_pct, 0.0, "blocked %");
    // Queued c1 c2 c3 c4 c6; c3 is a short abandon: offered 4.
    assert_eq!((first.offered, first.short_abandons), (4, 1));
    assert_eq!(first.answered, 3);
    close(first.answered_pct, 75.0, "answered %");
    close(
        first.service_level_pct,
        50.0,
        "service level (c1 10 s, c6 5 s)",
    );
    close(first.asa_s, 55.0 / 3.0, "ASA (10 + 40 + 5) / 3");
    assert_eq!(first.abandoned, 1);
    close(first.abandon_pct, 25.0, "abandon %");
    close(first.avg_time_to_abandon_s, 50.0, "time to abandon");
    close(
        first.avg_queue_time_s,
        23.0,
        "queue time (10 + 40 + 10 + 50 + 5) / 5",
    );
    close(first.avg_talk_s, 380.0 / 3.0, "talk");
    close(first.avg_hold_s, 10.0, "hold");
    close(first.avg_after_call_work_s, 40.0, "after-call work");
    close(first.aht_s, 530.0 / 3.0, "AHT");
    close(first.ring_time_s, 4.0, "ring time (4 + 6 + 2) / 3");
    assert_eq!(first.transferred, 1);
    close(first.transfer_pct, 100.0 / 3.0, "transfer %");
    assert_eq!(first.transfer_reasons, vec![("expert".to_owned(), 1)]);
    close(
        first.fcr_pct,
        100.0 / 3.0,
        "FCR: c1 only (E called again after c6)",
    );
    assert_eq!(
        first.repeat_calls, 0,
        "c6 follows a blocked attempt: not a repeat"
    );
    close(
        first.ivr_containment_pct,
        200.0 / 7.0,
        "IVR containment (c7, c8)",
    );
    close(first.queue_placement_pct, 500.0 / 7.0, "queue placement");
    close(first.qa_score, 90.0, "QA");
    // Agents: a1 604 available, 6 ringing, 180 on call, 30 hold, 80 wrap, 900 not ready;
    // a2 1254, 6, 200, 0, 40, logged out at 09:25.
    close(first.occupancy_pct, 530.0 * 100.0 / 2400.0, "occupancy");
    close(
        first.adherence_pct,
        2400.0 * 100.0 / 3600.0,
        "adherence (900 + 1500) / 3600",
    );
    close(
        first.calls_per_agent_hour,
        3.0 / (3300.0 / 3600.0),
        "calls per agent hour",
    );

    // 09:30-10:00: c9-c14.
    assert_eq!(second.total_calls, 6);
    assert_eq!(second.blocked, 1);
    close(second.blocked_pct, 100.0 / 6.0, "blocked %");
    assert_eq!(
        (second.offered, second.short_abandons, second.answered),
        (2, 0, 1)
    );
    close(second.answered_pct, 50.0, "answered %");
    close(
        second.service_level_pct,
        0.0,
        "service level (c10 waited 25 s)",
    );
    close(second.asa_s, 25.0, "ASA");
    close(second.abandon_pct, 50.0, "abandon % (anonymous c11)");
    close(second.avg_time_to_abandon_s, 30.0, "time to abandon");
    close(second.avg_queue_time_s, 27.5, "queue time");
    close(second.aht_s, 150.0, "AHT");
    close(second.ring_time_s, 5.0, "ring time");
    assert_eq!(
        second.transferred, 0,
        "a transfer by the flow is not an agent's"
    );
    close(second.transfer_pct, 0.0, "transfer %");
    close(second.fcr_pct, 100.0, "FCR (c10)");
    assert_eq!(second.repeat_calls, 2, "c9 (E) and c14 (K)");
    close(second.repeat_pct, 200.0 / 6.0, "repeat %");
    close(
        second.ivr_containment_pct,
        100.0 / 6.0,
        "IVR containment (c14 only)",
    );
    close(second.queue_placement_pct, 200.0 / 6.0, "queue placement");
    close(second.qa_score, 70.0, "QA (the scorer's second score)");
    close(second.occupancy_pct, 150.0 * 100.0 / 1800.0, "occupancy");
    close(second.adherence_pct, 100.0, "adherence");
    close(second.calls_per_agent_hour, 2.0, "calls per agent hour");
}

fn check_groups(queues: &Report, agents: &Report, teams: &Report) {
    let by = |r: &Report, g: Option<&str>| -> Indicators {
        r.rows
            .iter()
            .find(|row| row.group.as_deref() == g)
            .unwrap_or_else(|| panic!("no group {g:?}"))
            .indicators
            .clone()
    };
    let billing = by(queues, Some("billing"));
    assert_eq!(
        (billing.total_calls, billing.offered, billing.answered),
        (3, 2, 2)
    );
    close(billing.service_level_pct, 50.0, "billing service level");
    close(billing.asa_s, 25.0, "billing ASA");
    let tech = by(queues, Some("tech"));
    assert_eq!((tech.offered, tech.answered, tech.abandoned), (4, 2, 2));
    close(tech.service_level_pct, 25.0, "tech service level");
    close(tech.avg_time_to_abandon_s, 40.0, "tech time to abandon");
    assert_eq!(tech.occupancy_pct, None, "agents' time is not per queue");
    let none = by(queues, None);
    assert_eq!(
        none.total_calls, 6,
        "13 calls of demand, 7 never queued, one redialled"
    );

    let a1 = by(agents, Some("a1"));
    assert_eq!(a1.answered, 3);
    close(a1.calls_per_agent_hour, 3.0, "a1 calls per hour");
    close(a1.occupancy_pct, 440.0 * 100.0 / 2700.0, "a1 occupancy");
    close(a1.adherence_pct, 75.0, "a1 adherence");
    let a2 = by(agents, Some("a2"));
    close(a2.calls_per_agent_hour, 2.4, "a2 calls per hour");
    close(a2.occupancy_pct, 16.0, "a2 occupancy");
    close(a2.adherence_pct, 1500.0 * 100.0 / 1800.0, "a2 adherence");
    let red = by(teams, Some("red"));
    assert_eq!(red.adherence_pct, a1.adherence_pct);
    assert_eq!(red.fcr_pct, a1.fcr_pct);
    close(
        by(teams, Some("blue")).transfer_pct,
        100.0,
        "blue transfers",
    );
}

async fn check_all(store: &CdrStore) -> Vec<serde_json::Value> {
    let mix = Mix::build();
    mix.store_into(store, true).await;
    let halves = mix.report(store, Interval::HalfHour, GroupBy::All).await;
    check_half_hours(&halves);
    let queues = mix.report(store, Interval::All, GroupBy::Queue).await;
    let agents = mix.report(store, Interval::All, GroupBy::Agent).await;
    let teams = mix.report(store, Interval::All, GroupBy::Team).await;
    check_groups(&queues, &agents, &teams);
    // The hour as one interval is the two halves added up.
    let hour = mix.report(store, Interval::Hour, GroupBy::All).await;
    assert_eq!(hour.rows.len(), 1);
    assert_eq!(hour.rows[0].indicators.total_calls, 13);
    close(hour.rows[0].indicators.qa_score, 80.0, "QA over the hour");
    close(
        hour.rows[0].indicators.adherence_pct,
        4200.0 * 100.0 / 5400.0,
        "adherence",
    );
    [halves, queues, agents, teams, hour]
        .iter()
        .map(|r| {
            let mut v = report::format::json(r);
            // Each run has its own day; the rest must match between databases.
            for key in ["from_ms", "to_ms"] {
                v[key] = serde_json::Value::Null;
            }
            for row in v["rows"].as_array_mut().unwrap() {
                for key in ["start", "end", "start_ms", "end_ms"] {
                    row[key] = serde_json::Value::Null;
                }
            }
            v
        })
        .collect()
}

fn temp_sqlite() -> (std::path::PathBuf, String) {
    let dir = std::env::temp_dir().join(format!(
        "hotline-report-{}-{}",
        std::process::id(),
        fastrand::u64(..)
    ));
    std::fs::create_dir_all(&dir).unwrap();
    let url = format!("sqlite://{}", dir.join("cdr.db").display());
    (dir, url)
}

async fn connect(url: &str) -> CdrStore {
    let store = CdrStore::connect(url).await.expect("connect");
    store.migrate().await.expect("migrate");
    store
}

#[tokio::test]
async fn every_indicator_of_the_scripted_mix_on_sqlite() {
    let (dir, url) = temp_sqlite();
    let store = connect(&url).await;
    check_all(&store).await;
    // A replayed batch (a retry after an ambiguous failure, a spool) adds nothing.
    let mix = Mix::build();
    mix.store_into(&store, false).await;
    mix.store_into(&store, true).await;
    let halves = mix.report(&store, Interval::HalfHour, GroupBy::All).await;
    check_half_hours(&halves);
    let csv = report::format::csv(&halves);
    assert!(csv.starts_with("interval_start,interval_end,group,total_calls,"));
    std::fs::remove_dir_all(dir).ok();
}

#[tokio::test]
#[ignore = "interop: needs PostgreSQL (HOTLINE_TEST_POSTGRES_URL)"]
async fn postgres_gives_the_same_report_as_sqlite() {
    let url = std::env::var("HOTLINE_TEST_POSTGRES_URL")
        .expect("HOTLINE_TEST_POSTGRES_URL is not set: the PostgreSQL interop tests need a server");
    let pg = connect(&url).await;
    assert_eq!(pg.backend_name(), "postgres");
    let from_pg = check_all(&pg).await;
    let (dir, sqlite_url) = temp_sqlite();
    let sqlite = connect(&sqlite_url).await;
    let from_sqlite = check_all(&sqlite).await;
    assert_eq!(from_pg, from_sqlite);
    std::fs::remove_dir_all(dir).ok();
}

#[tokio::test]
async fn hotline_report_prints_the_same_numbers_as_table_csv_and_json() {
    let (dir, url) = temp_sqlite();
    let store = connect(&url).await;
    let mix = Mix::build();
    mix.store_into(&store, false).await;
    let expected = mix.report(&store, Interval::HalfHour, GroupBy::All).await;
    let config = dir.join("hotline.toml");
    std::fs::write(
        &config,
        "[report]\ntime_zone = \"Asia/Shanghai\"\n\
         [[report.shift]]\nagents = [\"a1\"]\ndays = \"daily\"\nhours = \"09:00-10:00\"\n\
         [[report.shift]]\nagents = [\"a2\"]\ndays = \"daily\"\nhours = \"09:00-09:30\"\n",
    )
    .unwrap();
    let tz = jiff::tz::TimeZone::get("Asia/Shanghai").unwrap();
    let local = |ms: i64| report::intervals::local_label(ms, &tz);
    let run = |format: &str| {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_hotline"))
            .args(["report", "--config"])
            .arg(&config)
            .args(["--database", &url, "--flows"])
            .arg(dir.join("no-flows"))
            .args([
                "--from",
                &local(mix.base),
                "--to",
                &local(mix.base + 3600 * S),
            ])
            .args(["--interval", "30m", "--format", format])
            .output()
            .expect("run hotline report");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    };
    let json: serde_json::Value = serde_json::from_str(&run("json")).unwrap();
    assert_eq!(json, report::format::json(&expected));
    assert_eq!(run("csv"), report::format::csv(&expected));
    let table = run("table");
    assert!(table.contains("SL%"), "{table}");
    assert!(
        table.contains("expert 1"),
        "transfer reasons are listed: {table}"
    );
    // A bad interval is a clear error.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_hotline"))
        .args(["report", "--database", &url, "--interval", "fortnight"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown interval"));
    std::fs::remove_dir_all(dir).ok();
}
