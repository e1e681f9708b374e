//! `hotline report` and the API's reports: the call-center indicators per queue, agent, team
//! and interval, computed from the CDR, agent-time and QA rows. Sums happen in the database
//! (one scan per table, the same SQL on SQLite and PostgreSQL, so both give the same numbers);
//! the indicators follow from the sums in [`indicators`], their one definition.

pub mod format;
pub mod indicators;
pub mod intervals;
pub mod settings;

use std::collections::{BTreeMap, HashMap};

use serde::Serialize;
use tokio::sync::Semaphore;

use crate::cdr::CdrStore;
use crate::cdr::agent_time::CELL_MS;
pub use indicators::{AgentTally, CallTally, Indicators, Sums};
pub use intervals::Interval;
pub use settings::{ReportSection, ReportSettings, Shift};

#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    #[error(transparent)]
    Database(#[from] crate::cdr::CdrError),
    #[error("{0}")]
    Request(String),
}

/// What the rows are per.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum GroupBy {
    /// One row per interval, over everything.
    All,
    Queue,
    Agent,
    Team,
}

impl GroupBy {
    pub fn parse(text: &str) -> Result<GroupBy, String> {
        Ok(match text {
            "all" | "none" => GroupBy::All,
            "queue" => GroupBy::Queue,
            "agent" => GroupBy::Agent,
            "team" => GroupBy::Team,
            _ => {
                return Err(format!(
                    "unknown grouping {text:?} (use queue, agent, team or all)"
                ));
            }
        })
    }

    /// The call row's column for the group.
    fn call_key(self) -> &'static str {
        match self {
            GroupBy::All => "CAST(NULL AS TEXT)",
            GroupBy::Queue => "c.queue",
            GroupBy::Agent => "c.agent",
            GroupBy::Team => "c.team",
        }
    }

    /// The call row's column the quarter-hour indexes have after the quarter hour.
    fn cell_index_column(self) -> Option<&'static str> {
        match self {
            GroupBy::All => None,
            GroupBy::Queue => Some("queue"),
            GroupBy::Agent => Some("agent"),
            GroupBy::Team => Some("team"),
        }
    }

    /// The agent-time row's column; None: agents' time does not split by this (an agent
    /// serves several queues at once).
    fn agent_key(self) -> Option<&'static str> {
        match self {
            GroupBy::All => Some("CAST(NULL AS TEXT)"),
            GroupBy::Queue => None,
            GroupBy::Agent => Some("a.agent"),
            GroupBy::Team => Some("a.team"),
        }
    }
}

#[derive(Debug, Clone)]
pub struct ReportRequest {
    pub from_ms: i64,
    pub to_ms: i64,
    pub interval: Interval,
    pub by: GroupBy,
}

/// Who belongs to which team, for shifts given by team (from the agents file).
#[derive(Debug, Clone, Default)]
pub struct Directory {
    pub teams: HashMap<String, Option<String>>,
}

impl Directory {
    pub fn from_acd(acd: &crate::acd::model::AcdConfig) -> Directory {
        Directory {
            teams: acd
                .agents
                .iter()
                .map(|a| (a.id.clone(), a.team.clone()))
                .collect(),
        }
    }

    fn members(&self, team: &str) -> impl Iterator<Item = &String> {
        self.teams
            .iter()
            .filter(move |(_, t)| t.as_deref() == Some(team))
            .map(|(a, _)| a)
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub from_ms: i64,
    pub to_ms: i64,
    pub interval: Interval,
    pub by: GroupBy,
    pub time_zone: String,
    #[serde(skip)]
    pub tz: jiff::tz::TimeZone,
    pub service_level_s: f64,
    pub service_level_target_pct: u8,
    pub rows: Vec<ReportRow>,
}

#[derive(Debug, Clone, Serialize)]
pub struct ReportRow {
    pub start_ms: i64,
    pub end_ms: i64,
    /// The queue, agent or team; None for the calls without one (IVR-only calls per queue)
    /// and for rows over everything.
    pub group: Option<String>,
    pub indicators: Indicators,
}

/// Most intervals one report may have.
pub(crate) const MAX_INTERVALS: usize = 20_000;
/// Longest range: a year's report by month, with room for a leap year and a few days.
const MAX_RANGE_MS: i64 = 400 * 86_400_000;

pub async fn run(
    store: &CdrStore,
    settings: &ReportSettings,
    directory: &Directory,
    request: &ReportRequest,
) -> Result<Report, ReportError> {
    if request.to_ms <= request.from_ms {
        return Err(ReportError::Request(
            "the range ends before it starts".into(),
        ));
    }
    if request.to_ms - request.from_ms > MAX_RANGE_MS {
        return Err(ReportError::Request(
            "a report covers at most 400 days: choose a shorter range".into(),
        ));
    }
    let b = intervals::boundaries(
        request.interval,
        &settings.time_zone,
        request.from_ms,
        request.to_ms,
    );
    if b.len() > MAX_INTERVALS + 1 {
        return Err(ReportError::Request(format!(
            "{} intervals is too many: choose a longer interval or a shorter range",
            b.len() - 1
        )));
    }
    let sums = collect(store, settings, directory, request.by, &b).await?;
    let mut rows = Vec::new();
    let zero = Sums {
        has_agent_time: request.by.agent_key().is_some(),
        ..Default::default()
    };
    for i in 0..b.len() - 1 {
        let groups: Vec<_> = sums.range((i, None)..(i + 1, None)).collect();
        if groups.is_empty() && request.by == GroupBy::All {
            rows.push(row(&b, i, None, &zero));
        }
        for ((_, group), s) in groups {
            rows.push(row(&b, i, group.clone(), s));
        }
    }
    Ok(Report {
        from_ms: b[0],
        to_ms: *b.last().unwrap_or(&request.to_ms),
        interval: request.interval,
        by: request.by,
        time_zone: settings
            .time_zone
            .iana_name()
            .unwrap_or("system")
            .to_owned(),
        tz: settings.time_zone.clone(),
        service_level_s: settings.service_level.as_secs_f64(),
        service_level_target_pct: settings.service_level_target,
        rows,
    })
}

fn row(b: &[i64], i: usize, group: Option<String>, s: &Sums) -> ReportRow {
    ReportRow {
        start_ms: b[i],
        end_ms: b[i + 1],
        group,
        indicators: Indicators::from_sums(s),
    }
}

type Grouped = BTreeMap<(usize, Option<String>), Sums>;
/// Rows as `CdrStore::aggregate` returns them: the group's texts, then the numbers.
type Rows = Vec<(Vec<Option<String>>, Vec<i64>)>;

/// Queries one report runs at once, each on a connection of its own (the API runs two
/// reports at a time on one store, whose pool has room for both). The call sums, most of a
/// report's time, are split into this many ranges of quarter hours summed side by side
/// (every call sum is a plain sum, so the parts add up to the whole); the smaller queries
/// follow as lanes come free.
pub(crate) const LANES: usize = 2;

/// One grouped query, once a lane is free.
async fn sum(
    store: &CdrStore,
    lanes: &Semaphore,
    sql: &str,
    params: &[i64],
    keys: usize,
) -> Result<Rows, ReportError> {
    // Never closed; were it, the query would simply run without waiting.
    let _lane = lanes.acquire().await.ok();
    Ok(store.aggregate(sql, params, keys).await?)
}

/// Runs the sums, `LANES` at a time: calls (in parts, first), transfers, QA scores and
/// agents' time, each one grouped query.
async fn collect(
    store: &CdrStore,
    settings: &ReportSettings,
    directory: &Directory,
    by: GroupBy,
    b: &[i64],
) -> Result<Grouped, ReportError> {
    let has_agent_time = by.agent_key().is_some();
    let scheduled = schedule(settings, directory, b[0], b[b.len() - 1]);
    let lanes = &Semaphore::new(LANES);
    // Polled in this order, so the call sums take the lanes first.
    let (calls, (transfers, reasons), qa, agents) = tokio::try_join!(
        call_sums(store, lanes, settings, by, b),
        transfer_sums(store, lanes, directory, by, b),
        qa_sums(store, lanes, by, b),
        agent_sums(store, lanes, by, b, &scheduled),
    )?;
    let mut out = Grouped::new();
    for (keys, values) in calls {
        if let Some(s) = slot(&mut out, b, values[0], keys[0].clone(), has_agent_time) {
            s.calls.add(&CallTally::from_values(&values[1..]));
        }
    }
    for (keys, values) in transfers {
        if let Some(s) = slot(&mut out, b, values[0], keys[0].clone(), has_agent_time) {
            s.transferred = values[1];
        }
    }
    for (keys, values) in reasons {
        if let Some(s) = slot(&mut out, b, values[0], keys[0].clone(), has_agent_time) {
            s.transfer_reasons
                .push((keys[1].clone().unwrap_or_default(), values[1]));
            s.transfer_reasons.sort();
        }
    }
    for (keys, values) in qa {
        if let Some(s) = slot(&mut out, b, values[0], keys[0].clone(), has_agent_time) {
            s.qa_score_sum = values[1];
            s.qa_scored = values[2];
        }
    }
    if has_agent_time {
        for (keys, values) in agents {
            if let Some(s) = slot(&mut out, b, values[0], keys[0].clone(), has_agent_time) {
                s.agents = AgentTally::from_values(&values[1..]);
            }
        }
        for (agent, ranges) in &scheduled {
            let group = match by {
                GroupBy::All | GroupBy::Queue => None,
                GroupBy::Agent => Some(agent.clone()),
                GroupBy::Team => directory.teams.get(agent).cloned().flatten(),
            };
            for &(start, end) in ranges {
                // The intervals the shift overlaps, found by search: b is sorted.
                let first = b.partition_point(|x| *x <= start).saturating_sub(1);
                for i in first..b.len() - 1 {
                    if b[i] >= end {
                        break;
                    }
                    let overlap = end.min(b[i + 1]) - start.max(b[i]);
                    if overlap > 0
                        && let Some(s) = slot(&mut out, b, i as i64, group.clone(), has_agent_time)
                    {
                        s.scheduled_ms += overlap;
                    }
                }
            }
        }
    }
    Ok(out)
}

/// The call rows' sums per interval and group, in `LANES` ranges summed at once.
async fn call_sums(
    store: &CdrStore,
    lanes: &Semaphore,
    settings: &ReportSettings,
    by: GroupBy,
    b: &[i64],
) -> Result<Rows, ReportError> {
    let ms = |d: std::time::Duration| i64::try_from(d.as_millis()).unwrap_or(i64::MAX);
    let day = 86_400_000i64;
    let key = by.call_key();
    // Two steps: sums per quarter hour (and group) first, read in the order of an index on
    // exactly that, so the database never sorts a million wide rows; then those sums per
    // interval. Interval boundaries are whole quarter hours (see `CELL_MS`).
    let cells: Vec<i64> = b.iter().map(|ms| ms.div_euclid(CELL_MS)).collect();
    let cell_bucket = intervals::bucket_sql("cell", &cells);
    let inner: Vec<String> = CallTally::SQL
        .iter()
        .enumerate()
        .map(|(i, s)| format!("COALESCE({s}, 0) AS v{i}"))
        .collect();
    let outer: Vec<String> = (0..CallTally::SQL.len())
        .map(|i| format!("CAST(SUM(v{i}) AS BIGINT)"))
        .collect();
    let group = match by.cell_index_column() {
        Some(column) => format!("start_ms / {CELL_MS}, {column}"),
        None => format!("start_ms / {CELL_MS}"),
    };
    let sql = format!(
        "SELECT k, CAST({cell_bucket} AS BIGINT), {} FROM (\
         SELECT start_ms / {CELL_MS} AS cell, {key} AS k, {} FROM cdr c \
         WHERE start_ms / {CELL_MS} >= $1 AND start_ms / {CELL_MS} < $2 \
         GROUP BY {group}) cells GROUP BY 1, 2",
        outer.join(", "),
        inner.join(", ")
    );
    // Boundaries are whole quarter hours, so the quarter hours are exactly the range (and
    // a filter on start_ms as well would tempt SQLite into its start_ms index and a sort).
    let (first, end) = (cells[0], cells[cells.len() - 1]);
    let parts = LANES as i64;
    let step = ((end - first) / parts).max(1);
    let ranges: Vec<(i64, i64)> = (0..parts)
        .map(|i| {
            let to = if i + 1 == parts {
                end
            } else {
                first + (i + 1) * step
            };
            ((first + i * step).min(end), to.min(end))
        })
        .filter(|(from, to)| from < to)
        .collect();
    let runs = ranges.into_iter().map(|(from, to)| {
        let params = [
            from,
            to,
            ms(settings.service_level),
            ms(settings.short_abandon),
            ms(settings.redial_window),
            i64::from(settings.repeat_days) * day,
            i64::from(settings.fcr_days) * day,
        ];
        let sql = &sql;
        async move { sum(store, lanes, sql, &params, 1).await }
    });
    let parts = futures_util::future::try_join_all(runs).await?;
    Ok(parts.into_iter().flatten().collect())
}

/// Transfers per interval and group, and per reason.
async fn transfer_sums(
    store: &CdrStore,
    lanes: &Semaphore,
    directory: &Directory,
    by: GroupBy,
    b: &[i64],
) -> Result<(Rows, Rows), ReportError> {
    let (from, to) = (b[0], b[b.len() - 1]);
    let bucket = intervals::bucket_sql("c.start_ms", b);
    let transfers = "FROM cdr_transfers t JOIN cdr c ON c.id = t.call_id \
         WHERE c.start_ms >= $1 AND c.start_ms < $2 AND c.agent IS NOT NULL \
         AND t.transferred_by <> 'flow' AND t.transferred_by NOT LIKE 'supervisor:%'";
    // A transfer is the transferring agent's (and their team's), not that of whoever
    // answered the caller last.
    let key = match by {
        GroupBy::Agent => "t.transferred_by".to_owned(),
        GroupBy::Team => team_of_sql("t.transferred_by", directory),
        GroupBy::All | GroupBy::Queue => by.call_key().to_owned(),
    };
    let counted = format!(
        "SELECT {key}, CAST({bucket} AS BIGINT), COUNT(DISTINCT t.call_id) {transfers} GROUP BY 1, 2"
    );
    let reasons = format!(
        "SELECT {key}, COALESCE(t.reason, ''), CAST({bucket} AS BIGINT), COUNT(*) {transfers} \
         GROUP BY 1, 2, 3"
    );
    let range = [from, to];
    tokio::try_join!(
        sum(store, lanes, &counted, &range, 1),
        sum(store, lanes, &reasons, &range, 2),
    )
}

/// QA scores per interval and group (the scored call's).
async fn qa_sums(
    store: &CdrStore,
    lanes: &Semaphore,
    by: GroupBy,
    b: &[i64],
) -> Result<Rows, ReportError> {
    let (from, to) = (b[0], b[b.len() - 1]);
    let bucket = intervals::bucket_sql("c.start_ms", b);
    let key = by.call_key();
    let sql = format!(
        "SELECT {key}, CAST({bucket} AS BIGINT), CAST(SUM(q.score) AS BIGINT), COUNT(*) \
         FROM qa_scores q JOIN cdr c ON c.id = q.call_id \
         WHERE c.start_ms >= $1 AND c.start_ms < $2 GROUP BY 1, 2"
    );
    sum(store, lanes, &sql, &[from, to], 1).await
}

/// Agents' time per interval and group; nothing where agents' time does not split by the
/// group.
async fn agent_sums(
    store: &CdrStore,
    lanes: &Semaphore,
    by: GroupBy,
    b: &[i64],
    scheduled: &BTreeMap<String, Vec<(i64, i64)>>,
) -> Result<Rows, ReportError> {
    let Some(agent_key) = by.agent_key() else {
        return Ok(Rows::new());
    };
    let (from, to) = (b[0], b[b.len() - 1]);
    let in_shift = in_shift_sql(scheduled);
    let bucket = intervals::bucket_sql("a.cell_ms", b);
    let sums: Vec<String> = AgentTally::SQL
        .iter()
        .map(|s| {
            format!(
                "CAST(COALESCE({}, 0) AS BIGINT)",
                s.replace("{in_shift}", &in_shift)
            )
        })
        .collect();
    let sql = format!(
        "SELECT {agent_key}, CAST({bucket} AS BIGINT), {} FROM agent_time a \
         WHERE a.cell_ms >= $1 AND a.cell_ms < $2 GROUP BY 1, 2",
        sums.join(", ")
    );
    sum(store, lanes, &sql, &[from, to], 1).await
}

fn slot<'a>(
    out: &'a mut Grouped,
    b: &[i64],
    bucket: i64,
    key: Option<String>,
    has_agent_time: bool,
) -> Option<&'a mut Sums> {
    let bucket = usize::try_from(bucket).ok().filter(|i| *i + 1 < b.len())?;
    Some(out.entry((bucket, key)).or_insert_with(|| Sums {
        has_agent_time,
        ..Default::default()
    }))
}

/// Each scheduled agent's shift times within [from, to), in epoch ms, merged.
fn schedule(
    settings: &ReportSettings,
    directory: &Directory,
    from: i64,
    to: i64,
) -> BTreeMap<String, Vec<(i64, i64)>> {
    let mut out: BTreeMap<String, Vec<(i64, i64)>> = BTreeMap::new();
    let tz = &settings.time_zone;
    let Some(first) = jiff::Timestamp::from_millisecond(from)
        .ok()
        .map(|t| t.to_zoned_datetime(tz.clone()).date())
    else {
        return out;
    };
    for shift in &settings.shifts {
        let mut agents: Vec<&String> = shift.agents.iter().collect();
        if let Some(team) = &shift.team {
            agents.extend(directory.members(team));
        }
        // From the day before: a night shift that began then may run into the range.
        let mut date = first.yesterday().unwrap_or(first);
        loop {
            let Ok(start) = date.to_zoned_datetime(tz.clone()) else {
                break;
            };
            let day_start = start.timestamp().as_millisecond();
            if day_start >= to {
                break;
            }
            let weekday = date.weekday().to_monday_zero_offset() as usize;
            if shift.days.contains(&weekday) {
                let at = |minutes: u16, next_day: bool| -> Option<i64> {
                    let mut d = if next_day {
                        date.tomorrow().ok()?
                    } else {
                        date
                    };
                    let mut minutes = minutes;
                    if minutes >= 1440 {
                        d = d.tomorrow().ok()?;
                        minutes -= 1440;
                    }
                    let civil = d.at((minutes / 60) as i8, (minutes % 60) as i8, 0, 0);
                    civil
                        .to_zoned_datetime(tz.clone())
                        .ok()
                        .map(|z| z.timestamp().as_millisecond())
                };
                let h = shift.hours;
                if let (Some(s), Some(e)) = (at(h.start, false), at(h.end, h.end <= h.start)) {
                    let (s, e) = (s.max(from), e.min(to));
                    if s < e {
                        for agent in &agents {
                            out.entry((*agent).clone()).or_default().push((s, e));
                        }
                    }
                }
            }
            match date.tomorrow() {
                Ok(d) => date = d,
                Err(_) => break,
            }
        }
    }
    for ranges in out.values_mut() {
        ranges.sort();
        let mut merged: Vec<(i64, i64)> = Vec::new();
        for (s, e) in ranges.drain(..) {
            match merged.last_mut() {
                Some(last) if s <= last.1 => last.1 = last.1.max(e),
                _ => merged.push((s, e)),
            }
        }
        *ranges = merged;
    }
    out
}

/// "This agent-time row's quarter hour lies in its agent's shift", as SQL over literals.
fn in_shift_sql(scheduled: &BTreeMap<String, Vec<(i64, i64)>>) -> String {
    if scheduled.is_empty() {
        return "1 = 0".into();
    }
    let quote = |s: &str| format!("'{}'", s.replace('\'', "''"));
    // Agents with the same times share one test.
    let mut by_ranges: BTreeMap<&Vec<(i64, i64)>, Vec<String>> = BTreeMap::new();
    for (agent, ranges) in scheduled {
        if settings::is_agent_id(agent) {
            by_ranges.entry(ranges).or_default().push(quote(agent));
        }
    }
    let tests: Vec<String> = by_ranges
        .iter()
        .map(|(ranges, agents)| {
            let times: Vec<String> = ranges
                .iter()
                .map(|(s, e)| {
                    // Whole quarter hours: a cell counts if it starts inside the shift.
                    let s = s.div_euclid(CELL_MS) * CELL_MS;
                    format!("(a.cell_ms >= {s} AND a.cell_ms < {e})")
                })
                .collect();
            format!(
                "(a.agent IN ({}) AND {})",
                agents.join(", "),
                any_of(&times)
            )
        })
        .collect();
    any_of(&tests)
}

/// `a OR b OR ...` as a balanced tree: SQLite limits how deep an expression nests (1000),
/// and a year of daily shifts is more terms than that.
fn any_of(terms: &[String]) -> String {
    match terms {
        [] => "1 = 0".into(),
        [one] => one.clone(),
        _ => {
            let (left, right) = terms.split_at(terms.len() / 2);
            format!("({} OR {})", any_of(left), any_of(right))
        }
    }
}

/// The team of the agent named by `column`, from the agents file, as SQL over literals.
fn team_of_sql(column: &str, directory: &Directory) -> String {
    let quote = |s: &str| format!("'{}'", s.replace('\'', "''"));
    let mut arms: Vec<String> = directory
        .teams
        .iter()
        .filter_map(|(agent, team)| {
            let team = team.as_ref()?;
            (settings::is_agent_id(agent) && settings::is_agent_id(team))
                .then(|| format!("WHEN {} THEN {}", quote(agent), quote(team)))
        })
        .collect();
    if arms.is_empty() {
        return "CAST(NULL AS TEXT)".into();
    }
    arms.sort();
    format!("CASE {column} {} END", arms.join(" "))
}

#[cfg(test)]
mod tests;
