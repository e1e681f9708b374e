//! The indicators over a month of data: 1,000,000 calls (2 % blocked, 40 % IVR only, the rest
//! queued in 5 queues, 1 in 17 of those abandoned, 1 in 100 answered calls transferred),
//! 200 agents in 20 teams working 8-hour days (their quarter-hour time rows), 1,000 QA
//! scores. Times every report of a month per half hour (over everything and per queue), per
//! day per agent and per team, and the floor: one plain scan summing one column of the same
//! call rows, the least any report over them costs.
//!
//! `cargo bench --bench report` on SQLite (a temporary file);
//! `HOTLINE_BENCH_POSTGRES_URL=postgres://... cargo bench --bench report` on PostgreSQL too
//! (an empty database is filled; one that has calls is measured as it is);
//! `HOTLINE_BENCH_SQLITE=path` keeps the SQLite file in the same way.

use std::time::{Duration, Instant};

use hotline::cdr::CdrStore;
use hotline::report::{self, Directory, GroupBy, Interval, ReportRequest, ReportSettings};

const CALLS: i64 = 1_000_000;
const AGENTS: i64 = 200;
/// 2026-11-01 00:00 UTC.
const BASE: i64 = 1_793_491_200_000;
const MONTH_MS: i64 = 30 * 86_400_000;
const RUNS: usize = 5;

/// A recursive count from 0 to n-1, the same on both databases.
fn numbers(n: i64) -> String {
    format!(
        "WITH RECURSIVE n(k) AS (SELECT CAST(0 AS BIGINT) UNION ALL SELECT k + 1 FROM n WHERE k < {})",
        n - 1
    )
}

async fn fill(store: &CdrStore) {
    let spacing = MONTH_MS / CALLS;
    let kind = "(k % 100)";
    let agent = format!("(k * 13 % {AGENTS})");
    let statements = [
        format!(
            "{} INSERT INTO cdr (id, sip_call_id, caller, dialled, start_ms, answer_ms, end_ms, flow, \
             ivr_path, digits, disposition, hangup_by, sip_code, end_reason, queue, queue_enter_ms, \
             queue_leave_ms, wait_ms, agent, team, talk_ms, hold_ms, wrap_up_ms, abandoned, resolved, ring_ms) \
             SELECT 'b' || k, 'sip' || k, '138' || (k * 7919 % 300000), '95598', \
             {BASE} + k * {spacing}, \
             CASE WHEN {kind} < 2 THEN NULL ELSE {BASE} + k * {spacing} + 500 END, \
             {BASE} + k * {spacing} + 200000, 'main', '[]', '', \
             CASE WHEN {kind} < 2 THEN 'blocked' WHEN {kind} < 30 THEN 'completed' ELSE 'caller_hangup' END, \
             'caller', CASE WHEN {kind} < 2 THEN 503 ELSE 200 END, 'bye', \
             CASE WHEN {kind} >= 42 THEN 'q' || (k % 5) END, \
             CASE WHEN {kind} >= 42 THEN {BASE} + k * {spacing} + 30000 END, \
             CASE WHEN {kind} >= 42 THEN {BASE} + k * {spacing} + 30000 + (k * 37 % 90000) END, \
             CASE WHEN {kind} >= 42 THEN k * 37 % 90000 END, \
             CASE WHEN {kind} >= 42 AND k % 17 <> 0 THEN 'agent' || {agent} END, \
             CASE WHEN {kind} >= 42 AND k % 17 <> 0 THEN 'team' || ({agent} % 20) END, \
             CASE WHEN {kind} >= 42 AND k % 17 <> 0 THEN k * 91 % 400000 END, \
             CASE WHEN {kind} >= 42 AND k % 17 <> 0 THEN (k % 5) * 10000 END, \
             CASE WHEN {kind} >= 42 AND k % 17 <> 0 THEN k * 7 % 60000 END, \
             CASE WHEN {kind} >= 42 AND k % 17 = 0 THEN 1 ELSE 0 END, \
             CASE WHEN {kind} >= 42 AND k % 17 <> 0 THEN (CASE WHEN k % 3 = 0 THEN 0 ELSE 1 END) END, \
             CASE WHEN {kind} >= 42 AND k % 17 <> 0 THEN k % 8000 END \
             FROM n",
            numbers(CALLS)
        ),
        format!(
            "{} INSERT INTO cdr_transfers (call_id, seq, at_ms, kind, target, target_kind, transferred_by, reason) \
             SELECT 'b' || (k * 100 + 50), 1, {BASE} + (k * 100 + 50) * {spacing} + 60000, 'blind', 'q1', 'queue', \
             'agent' || ((k * 100 + 50) * 13 % {AGENTS}), CASE WHEN k % 2 = 0 THEN 'expert' ELSE 'billing' END \
             FROM n",
            numbers(CALLS / 100)
        ),
        // 30 days x 32 quarter hours (08:00-16:00) x 200 agents.
        format!(
            "{} INSERT INTO agent_time (id, agent, team, cell_ms, available_ms, ringing_ms, on_call_ms, \
             on_hold_ms, wrap_up_ms, not_ready_ms) \
             SELECT 't' || k, 'agent' || (k % {AGENTS}), 'team' || (k % {AGENTS} % 20), \
             {BASE} + (k / {AGENTS} / 32) * 86400000 + 28800000 + (k / {AGENTS} % 32) * 900000, \
             300000, 20000, 400000, 30000, 100000, 50000 FROM n",
            numbers(AGENTS * 30 * 32)
        ),
        format!(
            "{} INSERT INTO qa_scores (call_id, scorer, score, scored_ms, notes) \
             SELECT 'b' || (k * 997 + 43), 'sup', 50 + k % 50, {BASE}, NULL FROM n \
             WHERE (k * 997 + 43) % 100 >= 42 AND (k * 997 + 43) % 17 <> 0",
            numbers(1_000)
        ),
        // What the store keeps as calls are written (the migration's backfill does the same).
        "UPDATE cdr SET transfer_count = (SELECT COUNT(*) FROM cdr_transfers t WHERE t.call_id = cdr.id) \
         WHERE id IN (SELECT call_id FROM cdr_transfers)"
            .to_owned(),
        "UPDATE cdr SET \
         prev_ms = (SELECT MAX(p.start_ms) FROM cdr p WHERE p.caller = cdr.caller \
                    AND p.start_ms < cdr.start_ms AND p.disposition <> 'blocked'), \
         next_ms = (SELECT MIN(n.start_ms) FROM cdr n WHERE n.caller = cdr.caller \
                    AND n.start_ms > cdr.start_ms)"
            .to_owned(),
    ];
    for sql in &statements {
        store.aggregate(sql, &[], 0).await.expect("fill");
    }
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

async fn measure(name: &str, url: &str) {
    let store = CdrStore::connect(url).await.expect("connect");
    store.migrate().await.expect("migrate");
    let started = Instant::now();
    let filled = store
        .aggregate("SELECT COUNT(*) FROM cdr", &[], 0)
        .await
        .expect("count")
        .first()
        .map_or(0, |(_, v)| v[0]);
    if filled == 0 {
        fill(&store).await;
        // Statistics, as a database that has been in use has them.
        store.aggregate("ANALYZE", &[], 0).await.ok();
        println!("{name}: filled in {:.1} s", started.elapsed().as_secs_f64());
    } else {
        println!("{name}: {filled} calls there already");
    }
    let settings = ReportSettings {
        time_zone: jiff::tz::TimeZone::get("Asia/Shanghai").unwrap(),
        ..Default::default()
    };
    let directory = Directory::default();
    let floor_sql = "SELECT CAST(COALESCE(SUM(wait_ms), 0) AS BIGINT) FROM cdr WHERE start_ms >= $1 AND start_ms < $2";
    let cases = [
        ("month per half hour", Interval::HalfHour, GroupBy::All),
        (
            "month per half hour per queue",
            Interval::HalfHour,
            GroupBy::Queue,
        ),
        ("month per day per agent", Interval::Day, GroupBy::Agent),
        ("month per day per team", Interval::Day, GroupBy::Team),
    ];
    let mut floor = Vec::new();
    for _ in 0..RUNS {
        let t = Instant::now();
        store
            .aggregate(floor_sql, &[BASE - 8 * 3_600_000, BASE + MONTH_MS], 0)
            .await
            .expect("floor");
        floor.push(t.elapsed());
    }
    let floor = median(floor);
    println!(
        "{name}: floor (one scan, one sum) median {:.3} s",
        floor.as_secs_f64()
    );
    for (label, interval, by) in cases {
        let request = ReportRequest {
            // Local month: from 2026-11-01 00:00 Asia/Shanghai.
            from_ms: BASE - 8 * 3_600_000,
            to_ms: BASE - 8 * 3_600_000 + MONTH_MS,
            interval,
            by,
        };
        let mut times = Vec::new();
        let mut rows = 0;
        let mut total = 0;
        for _ in 0..RUNS {
            let t = Instant::now();
            let r = report::run(&store, &settings, &directory, &request)
                .await
                .expect("report");
            times.push(t.elapsed());
            rows = r.rows.len();
            total = r.rows.iter().map(|r| r.indicators.total_calls).sum::<i64>();
        }
        let m = median(times);
        println!(
            "{name}: {label}: {rows} rows, {total} calls, median {:.3} s ({:.1}x the floor)",
            m.as_secs_f64(),
            m.as_secs_f64() / floor.as_secs_f64()
        );
    }
    store.close().await;
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        // HOTLINE_BENCH_SQLITE=path keeps the filled file for the next run.
        match std::env::var("HOTLINE_BENCH_SQLITE") {
            Ok(path) => measure("sqlite", &format!("sqlite://{path}")).await,
            Err(_) => {
                let dir = std::env::temp_dir()
                    .join(format!("hotline-report-bench-{}", std::process::id()));
                std::fs::create_dir_all(&dir).expect("temp dir");
                let url = format!("sqlite://{}", dir.join("cdr.db").display());
                measure("sqlite", &url).await;
                std::fs::remove_dir_all(&dir).ok();
            }
        }
        if let Ok(url) = std::env::var("HOTLINE_BENCH_POSTGRES_URL") {
            measure("postgres", &url).await;
        }
    });
}
