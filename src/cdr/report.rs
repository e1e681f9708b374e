//! Human and machine renderings of stored records, for the `cdr` command-line views.

use serde_json::{Map, Value};

use super::record::CdrRecord;
use super::store::LabelGroup;

/// A UTC calendar time, from epoch milliseconds. Computed by hand because this is all the
/// calendar arithmetic hotline needs and a date crate would be a dependency for two functions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct UtcTime {
    year: i64,
    month: u32,
    day: u32,
    hour: u32,
    minute: u32,
    second: u32,
    millis: u32,
}

const MS_PER_DAY: i64 = 86_400_000;

impl UtcTime {
    fn from_epoch_ms(ms: i64) -> UtcTime {
        // Euclidean division so instants before 1970 land on the previous day, not "day 0
        // minus a bit".
        let days = ms.div_euclid(MS_PER_DAY);
        let in_day = ms.rem_euclid(MS_PER_DAY);
        let (year, month, day) = civil_from_days(days);
        // in_day < 86_400_000, so every part fits in u32.
        let in_day = in_day as u32;
        UtcTime {
            year,
            month,
            day,
            hour: in_day / 3_600_000,
            minute: in_day / 60_000 % 60,
            second: in_day / 1_000 % 60,
            millis: in_day % 1_000,
        }
    }
}

/// Days since 1970-01-01 to (year, month, day) in the proleptic Gregorian calendar.
///
/// Counts in 400-year eras starting on 1 March, so the leap day is the last day of the
/// shifted year and the century rules fall out of the era arithmetic (after H. Hinnant's
/// `civil_from_days`).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    const DAYS_PER_ERA: i64 = 146_097;
    // 1970-01-01 is day 719_468 counted from 0000-03-01.
    let z = days + 719_468;
    let era = z.div_euclid(DAYS_PER_ERA);
    let day_of_era = z.rem_euclid(DAYS_PER_ERA);
    let year_of_era =
        (day_of_era - day_of_era / 1_460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_from_march = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * month_from_march + 2) / 5 + 1;
    let month = if month_from_march < 10 {
        month_from_march + 3
    } else {
        month_from_march - 9
    };
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    // Both are small and positive by construction (1..=31, 1..=12).
    (year, month as u32, day as u32)
}

/// `YYYY-MM-DD HH:MM:SS`, UTC.
pub fn table_time_utc(epoch_ms: i64) -> String {
    let t = UtcTime::from_epoch_ms(epoch_ms);
    format!(
        "{:04}-{:02}-{:02} {:02}:{:02}:{:02}",
        t.year, t.month, t.day, t.hour, t.minute, t.second
    )
}

/// ISO 8601 / RFC 3339 in UTC with milliseconds: `YYYY-MM-DDTHH:MM:SS.mmmZ`.
pub fn iso8601_utc(epoch_ms: i64) -> String {
    let t = UtcTime::from_epoch_ms(epoch_ms);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z",
        t.year, t.month, t.day, t.hour, t.minute, t.second, t.millis
    )
}

fn format_duration(ms: Option<i64>) -> String {
    let Some(ms) = ms else {
        return "?".to_owned();
    };
    let secs = ms / 1_000;
    let (h, m, s) = (secs / 3_600, secs / 60 % 60, secs % 60);
    if h > 0 {
        format!("{h}:{m:02}:{s:02}")
    } else {
        format!("{m}:{s:02}")
    }
}

/// Caller and dialled numbers come straight from SIP headers: escape control characters so a
/// crafted From user part cannot drive the operator's terminal.
fn cell(text: &str) -> String {
    if text.is_empty() {
        return "-".to_owned();
    }
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if c.is_control() {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out
}

/// The columns of the call table, and whether each is right-aligned (magnitudes line up).
const COLUMNS: [(&str, bool); 10] = [
    ("start (UTC)", false),
    ("caller", false),
    ("dialled", false),
    ("flow", false),
    ("duration", true),
    ("disposition", false),
    ("hangup_by", false),
    ("code", true),
    ("digits", false),
    ("path", false),
];

/// Shown after `flow` only if some call in the table reached a queue, so a table of IVR-only
/// calls reads as it always did.
const QUEUE_COLUMNS: [(&str, bool); 4] = [
    ("queue", false),
    ("agent", false),
    ("wait", true),
    ("talk", true),
];

fn reached_a_queue(r: &CdrRecord) -> bool {
    r.queue.is_some() || r.agent.is_some() || r.wait_ms.is_some() || r.talk_ms.is_some()
}

/// `-` for a call that never waited or talked, rather than the `?` of an unknown duration.
fn format_optional_duration(ms: Option<i64>) -> String {
    ms.map_or_else(|| "-".to_owned(), |ms| format_duration(Some(ms)))
}

/// A fixed-width table, one call per line, in the order given. If any call reached a queue,
/// `queue`, `agent`, `wait` and `talk` columns follow `flow`.
pub fn format_table(records: &[CdrRecord]) -> String {
    let with_queue = records.iter().any(reached_a_queue);
    let mut columns: Vec<(&str, bool)> = COLUMNS[..4].to_vec();
    if with_queue {
        columns.extend(QUEUE_COLUMNS);
    }
    columns.extend(&COLUMNS[4..]);
    let with_labels = records.iter().any(|r| !r.labels.is_empty());
    if with_labels {
        columns.push(("labels", false));
    }
    let rows: Vec<Vec<String>> = records
        .iter()
        .map(|r| {
            let mut row = vec![
                table_time_utc(r.start_ms),
                cell(&r.caller),
                cell(&r.dialled),
                cell(r.flow.as_deref().unwrap_or("")),
            ];
            if with_queue {
                row.extend([
                    cell(r.queue.as_deref().unwrap_or("")),
                    cell(r.agent.as_deref().unwrap_or("")),
                    format_optional_duration(r.wait_ms),
                    format_optional_duration(r.talk_ms),
                ]);
            }
            row.extend([
                format_duration(r.duration_ms()),
                r.disposition.as_str().to_owned(),
                r.hangup_by.as_str().to_owned(),
                r.sip_code.to_string(),
                cell(&r.digits),
                cell(&r.ivr_path.join(">")),
            ]);
            if with_labels {
                let labels: Vec<String> = r
                    .labels
                    .iter()
                    .map(|l| format!("{}={}", l.name, l.value))
                    .collect();
                row.push(cell(&labels.join(" ")));
            }
            row
        })
        .collect();
    render(&columns, &rows)
}

/// The offers of the given calls, one line per ring, calls in the order given and rings in
/// sequence: who was rung, from when, for how long, and how it ended.
pub fn format_offers_table(records: &[CdrRecord]) -> String {
    const OFFER_COLUMNS: [(&str, bool); 8] = [
        ("call", false),
        ("seq", true),
        ("ring start (UTC)", false),
        ("ring", true),
        ("agent", false),
        ("queue", false),
        ("outcome", false),
        ("code", true),
    ];
    let rows: Vec<Vec<String>> = records
        .iter()
        .flat_map(|r| {
            r.offers.iter().enumerate().map(|(i, o)| {
                vec![
                    r.id.clone(),
                    (i + 1).to_string(),
                    table_time_utc(o.ring_start_ms),
                    format_duration(
                        o.ring_end_ms
                            .checked_sub(o.ring_start_ms)
                            .filter(|ms| *ms >= 0),
                    ),
                    cell(&o.agent),
                    cell(o.queue.as_deref().unwrap_or("")),
                    o.outcome.as_str().to_owned(),
                    o.sip_code.map_or_else(|| "-".to_owned(), |c| c.to_string()),
                ]
            })
        })
        .collect();
    render(&OFFER_COLUMNS, &rows)
}

/// Calls by the value of the label `name`: how many, answered by an agent, abandoned in a
/// queue, and the average call length.
pub fn format_label_groups(name: &str, groups: &[LabelGroup]) -> String {
    let columns = [
        (name, false),
        ("calls", true),
        ("answered", true),
        ("abandoned", true),
        ("avg duration", true),
    ];
    let rows: Vec<Vec<String>> = groups
        .iter()
        .map(|g| {
            vec![
                g.value
                    .as_deref()
                    .map_or_else(|| "(none)".to_string(), cell),
                g.calls.to_string(),
                g.answered.to_string(),
                g.abandoned.to_string(),
                format_duration((g.calls > 0).then(|| g.total_ms / g.calls)),
            ]
        })
        .collect();
    render(&columns, &rows)
}

pub fn format_label_groups_json(groups: &[LabelGroup]) -> String {
    Value::Array(
        groups
            .iter()
            .map(|g| serde_json::to_value(g).unwrap_or(Value::Null))
            .collect(),
    )
    .to_string()
}

fn render(columns: &[(&str, bool)], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = columns.iter().map(|(h, _)| h.chars().count()).collect();
    for row in rows {
        for (width, text) in widths.iter_mut().zip(row) {
            *width = (*width).max(text.chars().count());
        }
    }

    let mut out = String::new();
    let header: Vec<String> = columns.iter().map(|(h, _)| (*h).to_owned()).collect();
    for row in std::iter::once(&header).chain(rows) {
        let mut line = String::new();
        for (i, text) in row.iter().enumerate() {
            if i > 0 {
                line.push_str("  ");
            }
            let pad = widths[i].saturating_sub(text.chars().count());
            if columns[i].1 {
                line.extend(std::iter::repeat_n(' ', pad));
                line.push_str(text);
            } else {
                line.push_str(text);
                line.extend(std::iter::repeat_n(' ', pad));
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

/// A pretty-printed JSON array: every field of the record as serde names it, plus `start`,
/// `answer` (null if never answered) and `end` as ISO 8601 UTC strings for readers that do
/// not want to convert epoch milliseconds. Like the record's serde form, the queue and agent
/// fields (and `offers`, `transfers`) appear only for calls that have them, so the output
/// for IVR-only calls is as it was.
pub fn format_json(records: &[CdrRecord]) -> String {
    let array: Vec<Value> = records.iter().map(record_json).collect();
    // `Value`'s Display cannot fail, unlike `serde_json::to_string`.
    format!("{:#}", Value::Array(array))
}

fn record_json(r: &CdrRecord) -> Value {
    let mut m = Map::new();
    m.insert("id".into(), r.id.clone().into());
    m.insert("sip_call_id".into(), r.sip_call_id.clone().into());
    m.insert("caller".into(), r.caller.clone().into());
    m.insert("dialled".into(), r.dialled.clone().into());
    m.insert("start_ms".into(), r.start_ms.into());
    m.insert("answer_ms".into(), r.answer_ms.into());
    m.insert("end_ms".into(), r.end_ms.into());
    m.insert("flow".into(), r.flow.clone().into());
    m.insert("ivr_path".into(), r.ivr_path.clone().into());
    m.insert("digits".into(), r.digits.clone().into());
    m.insert("disposition".into(), r.disposition.as_str().into());
    m.insert("hangup_by".into(), r.hangup_by.as_str().into());
    m.insert("sip_code".into(), r.sip_code.into());
    m.insert("end_reason".into(), r.end_reason.clone().into());
    m.insert("language".into(), r.language.clone().into());
    m.insert(
        "survey".into(),
        Value::Array(
            r.survey
                .iter()
                .map(|(q, a)| Value::Array(vec![q.clone().into(), a.clone().into()]))
                .collect(),
        ),
    );
    m.insert("recordings".into(), r.recordings.clone().into());
    let optional = [
        ("queue", r.queue.clone().map(Value::from)),
        ("queue_enter_ms", r.queue_enter_ms.map(Value::from)),
        ("queue_leave_ms", r.queue_leave_ms.map(Value::from)),
        ("wait_ms", r.wait_ms.map(Value::from)),
        ("agent", r.agent.clone().map(Value::from)),
        ("team", r.team.clone().map(Value::from)),
        ("talk_ms", r.talk_ms.map(Value::from)),
        ("hold_ms", r.hold_ms.map(Value::from)),
        ("wrap_up_ms", r.wrap_up_ms.map(Value::from)),
        ("abandoned", r.abandoned.then_some(Value::Bool(true))),
        ("flow_version", r.flow_version.clone().map(Value::from)),
        (
            "wrap_disposition",
            r.wrap_disposition.clone().map(Value::from),
        ),
        ("wrap_notes", r.wrap_notes.clone().map(Value::from)),
        ("resolved", r.resolved.map(Value::from)),
        (
            "labels",
            (!r.labels.is_empty()).then(|| {
                Value::Object(
                    r.labels
                        .iter()
                        .map(|l| (l.name.clone(), Value::from(l.value.clone())))
                        .collect(),
                )
            }),
        ),
        (
            "offers",
            (!r.offers.is_empty()).then(|| Value::Array(offers_json(r))),
        ),
        (
            "transfers",
            (!r.transfers.is_empty()).then(|| {
                Value::Array(
                    r.transfers
                        .iter()
                        .enumerate()
                        .map(|(i, t)| {
                            let mut m = Map::new();
                            m.insert("seq".into(), (i + 1).into());
                            m.insert("at_ms".into(), t.at_ms.into());
                            m.insert("at".into(), iso8601_utc(t.at_ms).into());
                            m.insert("kind".into(), t.kind.as_str().into());
                            m.insert("target".into(), t.target.clone().into());
                            m.insert("target_kind".into(), t.target_kind.as_str().into());
                            m.insert("by".into(), t.by.clone().into());
                            m.insert("reason".into(), t.reason.clone().into());
                            Value::Object(m)
                        })
                        .collect(),
                )
            }),
        ),
    ];
    for (key, value) in optional {
        if let Some(value) = value {
            m.insert(key.into(), value);
        }
    }
    m.insert("start".into(), iso8601_utc(r.start_ms).into());
    m.insert("answer".into(), r.answer_ms.map(iso8601_utc).into());
    m.insert("end".into(), iso8601_utc(r.end_ms).into());
    Value::Object(m)
}

/// One object per ring, with its 1-based `seq` and ISO 8601 ring times.
fn offers_json(r: &CdrRecord) -> Vec<Value> {
    r.offers
        .iter()
        .enumerate()
        .map(|(i, o)| {
            let mut m = Map::new();
            m.insert("call_id".into(), r.id.clone().into());
            m.insert("seq".into(), (i + 1).into());
            m.insert("agent".into(), o.agent.clone().into());
            m.insert("queue".into(), o.queue.clone().into());
            m.insert("ring_start_ms".into(), o.ring_start_ms.into());
            m.insert("ring_end_ms".into(), o.ring_end_ms.into());
            m.insert("ring_start".into(), iso8601_utc(o.ring_start_ms).into());
            m.insert("ring_end".into(), iso8601_utc(o.ring_end_ms).into());
            m.insert("outcome".into(), o.outcome.as_str().into());
            m.insert("sip_code".into(), o.sip_code.into());
            Value::Object(m)
        })
        .collect()
}

/// The offers of the given calls as one pretty-printed JSON array (see `format_json` for
/// the fields of each).
pub fn format_offers_json(records: &[CdrRecord]) -> String {
    let array: Vec<Value> = records.iter().flat_map(offers_json).collect();
    format!("{:#}", Value::Array(array))
}

#[cfg(test)]
mod tests {
    use super::super::record::{Disposition, HangupBy, OfferOutcome, OfferRow};
    use super::*;

    fn leap(y: i64) -> bool {
        (y % 4 == 0 && y % 100 != 0) || y % 400 == 0
    }

    fn month_len(y: i64, m: u32) -> u32 {
        match m {
            2 if leap(y) => 29,
            2 => 28,
            4 | 6 | 9 | 11 => 30,
            _ => 31,
        }
    }

    /// Days since the epoch, counted the slow way, as an independent check.
    fn days_by_counting(year: i64, month: u32, day: u32) -> i64 {
        let year_len = |y: i64| if leap(y) { 366 } else { 365 };
        let mut days: i64 = if year >= 1970 {
            (1970..year).map(year_len).sum()
        } else {
            -(year..1970).map(year_len).sum::<i64>()
        };
        days += (1..month)
            .map(|m| i64::from(month_len(year, m)))
            .sum::<i64>();
        days + i64::from(day) - 1
    }

    fn ms(year: i64, month: u32, day: u32, h: i64, m: i64, s: i64, milli: i64) -> i64 {
        days_by_counting(year, month, day) * MS_PER_DAY + ((h * 60 + m) * 60 + s) * 1_000 + milli
    }

    #[test]
    fn epoch_and_known_instants() {
        assert_eq!(table_time_utc(0), "1970-01-01 00:00:00");
        assert_eq!(iso8601_utc(0), "1970-01-01T00:00:00.000Z");
        // `date -u -d @1700000000`
        assert_eq!(table_time_utc(1_700_000_000_000), "2023-11-14 22:13:20");
        assert_eq!(iso8601_utc(1_700_000_000_123), "2023-11-14T22:13:20.123Z");
        // The 32-bit time_t rollover.
        assert_eq!(table_time_utc(2_147_483_647_000), "2038-01-19 03:14:07");
    }

    #[test]
    fn leap_years_follow_the_gregorian_century_rules() {
        // 2024: divisible by 4.
        assert_eq!(
            table_time_utc(ms(2024, 2, 29, 23, 59, 59, 0)),
            "2024-02-29 23:59:59"
        );
        assert_eq!(
            table_time_utc(ms(2024, 2, 29, 23, 59, 59, 0) + 1_000),
            "2024-03-01 00:00:00"
        );
        // 2000: divisible by 400, a leap year.
        assert_eq!(table_time_utc(951_782_400_000), "2000-02-29 00:00:00");
        // 2100: divisible by 100 only, not a leap year: 28 Feb is followed by 1 Mar.
        let feb28_2100 = ms(2100, 2, 28, 12, 0, 0, 0);
        assert_eq!(table_time_utc(feb28_2100), "2100-02-28 12:00:00");
        assert_eq!(
            table_time_utc(feb28_2100 + MS_PER_DAY),
            "2100-03-01 12:00:00"
        );
        // 31 December of a leap year is day 366.
        assert_eq!(
            table_time_utc(ms(2024, 1, 1, 0, 0, 0, 0) + 365 * MS_PER_DAY),
            "2024-12-31 00:00:00"
        );
    }

    #[test]
    fn instants_before_1970_round_down() {
        assert_eq!(iso8601_utc(-1), "1969-12-31T23:59:59.999Z");
        assert_eq!(table_time_utc(-MS_PER_DAY), "1969-12-31 00:00:00");
        assert_eq!(
            table_time_utc(ms(1900, 3, 1, 0, 0, 0, 0)),
            "1900-03-01 00:00:00"
        );
    }

    #[test]
    fn every_day_for_five_centuries_matches_counting() {
        // 1900..=2400 covers two non-leap centuries and two leap ones.
        let (mut y, mut m, mut d) = (1900i64, 1u32, 1u32);
        for days in days_by_counting(1900, 1, 1)..=days_by_counting(2400, 12, 31) {
            assert_eq!(civil_from_days(days), (y, m, d), "day {days}");
            d += 1;
            if d > month_len(y, m) {
                d = 1;
                m += 1;
                if m > 12 {
                    m = 1;
                    y += 1;
                }
            }
        }
    }

    #[test]
    fn durations() {
        assert_eq!(format_duration(Some(0)), "0:00");
        assert_eq!(format_duration(Some(65_999)), "1:05");
        assert_eq!(
            format_duration(Some(3_600_000 + 2 * 60_000 + 3_000)),
            "1:02:03"
        );
        assert_eq!(format_duration(None), "?");
    }

    fn record(caller: &str, digits: &str, path: &[&str]) -> CdrRecord {
        CdrRecord {
            id: "00000000000000000000000000000001".into(),
            sip_call_id: "c1@host".into(),
            caller: caller.into(),
            dialled: "95588".into(),
            start_ms: 1_700_000_000_000,
            answer_ms: Some(1_700_000_000_250),
            end_ms: 1_700_000_065_000,
            flow: Some("main".into()),
            ivr_path: path.iter().map(|s| (*s).to_owned()).collect(),
            digits: digits.into(),
            disposition: Disposition::Completed,
            hangup_by: HangupBy::Hotline,
            sip_code: 200,
            end_reason: "flow_hangup".into(),
            language: None,
            survey: Vec::new(),
            recordings: Vec::new(),
            ..Default::default()
        }
    }

    #[test]
    fn table_aligns_columns_and_joins_the_path() {
        let mut blocked = record("4155550100123", "", &[]);
        blocked.flow = None;
        blocked.answer_ms = None;
        blocked.end_ms = blocked.start_ms;
        blocked.disposition = Disposition::Blocked;
        blocked.hangup_by = HangupBy::None;
        blocked.sip_code = 503;
        blocked.end_reason = "overload".into();
        let table = format_table(&[record("100", "12#", &["welcome", "menu", "menu"]), blocked]);
        let lines: Vec<&str> = table.lines().collect();
        assert_eq!(lines.len(), 3);
        assert_eq!(
            lines[0],
            "start (UTC)          caller         dialled  flow  duration  disposition  hangup_by  code  digits  path"
        );
        assert_eq!(
            lines[1],
            "2023-11-14 22:13:20  100            95588    main      1:05  completed    hotline     200  12#     welcome>menu>menu"
        );
        assert_eq!(
            lines[2],
            "2023-11-14 22:13:20  4155550100123  95588    -         0:00  blocked      none        503  -       -"
        );
        // Every column starts at the same offset on every line.
        let offset = |line: &str, needle: &str| line.find(needle).expect("present");
        assert_eq!(offset(lines[0], "code"), offset(lines[1], " 200"));
        assert_eq!(offset(lines[0], "path"), offset(lines[1], "welcome"));
        assert!(table.ends_with('\n'));
        assert!(!lines.iter().any(|l| l.ends_with(' ')));
    }

    #[test]
    fn table_of_nothing_is_just_the_header() {
        assert_eq!(format_table(&[]).lines().count(), 1);
    }

    #[test]
    fn table_escapes_control_characters_from_sip() {
        let table = format_table(&[record("\u{1b}[2J100", "1", &["a"])]);
        assert!(!table.contains('\u{1b}'));
        assert!(table.contains("\\u{1b}[2J100"));
    }

    #[test]
    fn json_has_every_field_plus_iso_times() {
        let mut unanswered = record("200", "", &[]);
        unanswered.answer_ms = None;
        unanswered.flow = None;
        let text = format_json(&[record("100", "12#", &["welcome", "menu"]), unanswered]);
        let value: Value = serde_json::from_str(&text).expect("valid JSON");
        let rows = value.as_array().expect("an array");
        assert_eq!(rows.len(), 2);
        let first = &rows[0];
        assert_eq!(first["start"], "2023-11-14T22:13:20.000Z");
        assert_eq!(first["answer"], "2023-11-14T22:13:20.250Z");
        assert_eq!(first["end"], "2023-11-14T22:14:25.000Z");
        assert_eq!(first["ivr_path"], serde_json::json!(["welcome", "menu"]));
        assert_eq!(first["disposition"], "completed");
        assert_eq!(first["hangup_by"], "hotline");
        assert_eq!(first["sip_code"], 200);
        assert_eq!(rows[1]["answer"], Value::Null);
        assert_eq!(rows[1]["flow"], Value::Null);

        // The record's own fields deserialise back unchanged; the extra ones are ignored.
        let back: CdrRecord = serde_json::from_value(first.clone()).expect("a CdrRecord");
        assert_eq!(back, record("100", "12#", &["welcome", "menu"]));
        let struct_fields = serde_json::to_value(&back).expect("serialise");
        let struct_fields = struct_fields.as_object().expect("an object");
        let json_fields = first.as_object().expect("an object");
        assert_eq!(json_fields.len(), struct_fields.len() + 3);
        assert!(struct_fields.keys().all(|k| json_fields.contains_key(k)));
    }

    fn queued(agent: &str) -> CdrRecord {
        let ring = |agent: &str, outcome, sip_code| OfferRow {
            agent: agent.into(),
            queue: Some("sales".into()),
            ring_start_ms: 1_700_000_010_000,
            ring_end_ms: 1_700_000_014_500,
            outcome,
            sip_code,
        };
        CdrRecord {
            queue: Some("sales".into()),
            queue_enter_ms: Some(1_700_000_005_000),
            queue_leave_ms: Some(1_700_000_014_500),
            wait_ms: Some(9_500),
            agent: Some(agent.into()),
            talk_ms: Some(42_000),
            offers: vec![
                ring("a1", OfferOutcome::Cancelled, Some(487)),
                ring(agent, OfferOutcome::Answered, Some(200)),
                ring("a3", OfferOutcome::Cancelled, None),
            ],
            ..record("300", "2", &["welcome", "sales"])
        }
    }

    #[test]
    fn table_shows_queue_columns_only_when_a_call_reached_a_queue() {
        let ivr = format_table(&[record("100", "12#", &["welcome"])]);
        assert!(!ivr.contains("queue") && !ivr.contains("agent"), "{ivr}");
        let mut abandoned = record("200", "", &["welcome"]);
        abandoned.queue = Some("sales".into());
        abandoned.wait_ms = Some(61_000);
        abandoned.abandoned = true;
        let table = format_table(&[queued("a2"), abandoned, record("100", "1", &["welcome"])]);
        let lines: Vec<&str> = table.lines().collect();
        assert_eq!(
            lines[0],
            "start (UTC)          caller  dialled  flow  queue  agent  wait  talk  duration  disposition  hangup_by  code  digits  path"
        );
        assert_eq!(
            lines[1],
            "2023-11-14 22:13:20  300     95588    main  sales  a2     0:09  0:42      1:05  completed    hotline     200  2       welcome>sales"
        );
        assert_eq!(
            lines[2],
            "2023-11-14 22:13:20  200     95588    main  sales  -      1:01     -      1:05  completed    hotline     200  -       welcome"
        );
        assert!(
            lines[3].contains("  main  -      -         -     -      1:05  "),
            "{}",
            lines[3]
        );
    }

    #[test]
    fn offers_are_listed_one_ring_a_line() {
        let table = format_offers_table(&[queued("a2"), record("100", "1", &[])]);
        let lines: Vec<&str> = table.lines().collect();
        assert_eq!(lines.len(), 4, "{table}");
        assert_eq!(
            lines[0],
            "call                              seq  ring start (UTC)     ring  agent  queue  outcome    code"
        );
        assert_eq!(
            lines[2],
            "00000000000000000000000000000001    2  2023-11-14 22:13:30  0:04  a2     sales  answered    200"
        );
        assert!(
            lines[3].ends_with("a3     sales  cancelled     -"),
            "{}",
            lines[3]
        );

        let json: Value = serde_json::from_str(&format_offers_json(&[queued("a2")])).expect("JSON");
        let offers = json.as_array().expect("array");
        assert_eq!(offers.len(), 3);
        assert_eq!(offers[1]["seq"], 2);
        assert_eq!(offers[1]["outcome"], "answered");
        assert_eq!(offers[1]["ring_start"], "2023-11-14T22:13:30.000Z");
        assert_eq!(offers[2]["sip_code"], Value::Null);
        assert_eq!(format_offers_json(&[]), "[]");
    }

    #[test]
    fn json_has_queue_fields_and_offers_when_present() {
        let text = format_json(&[queued("a2")]);
        let value: Value = serde_json::from_str(&text).expect("valid JSON");
        let row = &value[0];
        assert_eq!(row["queue"], "sales");
        assert_eq!(row["agent"], "a2");
        assert_eq!(row["wait_ms"], 9_500);
        assert_eq!(row["talk_ms"], 42_000);
        assert_eq!(row["offers"].as_array().map(Vec::len), Some(3));
        assert!(row.get("abandoned").is_none() && row.get("transfers").is_none());
        assert!(row.get("team").is_none());
    }

    #[test]
    fn json_of_nothing_is_an_empty_array() {
        assert_eq!(format_json(&[]), "[]");
    }
}
