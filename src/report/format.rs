//! A report as a table for people, CSV for spreadsheets and JSON for programs.

use serde_json::{Value, json};

use super::intervals::local_label;
use super::{Indicators, Report};

/// (CSV header, table header, value). The table's headers are short so a row fits a wide
/// terminal; CSV and JSON use the full names.
fn columns(i: &Indicators) -> Vec<(&'static str, &'static str, Option<f64>, Unit)> {
    use Unit::*;
    let n = |v: i64| Some(v as f64);
    vec![
        ("total_calls", "calls", n(i.total_calls), Count),
        ("offered", "offer", n(i.offered), Count),
        ("answered", "answ", n(i.answered), Count),
        ("answered_pct", "answ%", i.answered_pct, Pct),
        ("service_level_pct", "SL%", i.service_level_pct, Pct),
        ("asa_s", "ASA", i.asa_s, Secs),
        ("abandoned", "aband", n(i.abandoned), Count),
        ("abandon_pct", "aband%", i.abandon_pct, Pct),
        ("short_abandons", "short", n(i.short_abandons), Count),
        (
            "avg_time_to_abandon_s",
            "TTA",
            i.avg_time_to_abandon_s,
            Secs,
        ),
        ("avg_queue_time_s", "queue", i.avg_queue_time_s, Secs),
        ("avg_talk_s", "talk", i.avg_talk_s, Secs),
        ("avg_hold_s", "hold", i.avg_hold_s, Secs),
        (
            "avg_after_call_work_s",
            "ACW",
            i.avg_after_call_work_s,
            Secs,
        ),
        ("aht_s", "AHT", i.aht_s, Secs),
        ("occupancy_pct", "occ%", i.occupancy_pct, Pct),
        ("adherence_pct", "adh%", i.adherence_pct, Pct),
        ("calls_per_agent_hour", "c/h", i.calls_per_agent_hour, Ratio),
        ("blocked", "blk", n(i.blocked), Count),
        ("blocked_pct", "blk%", i.blocked_pct, Pct),
        ("queue_placement_pct", "queued%", i.queue_placement_pct, Pct),
        ("transferred", "xfer", n(i.transferred), Count),
        ("transfer_pct", "xfer%", i.transfer_pct, Pct),
        ("fcr_pct", "FCR%", i.fcr_pct, Pct),
        ("repeat_calls", "rept", n(i.repeat_calls), Count),
        ("repeat_pct", "rept%", i.repeat_pct, Pct),
        ("ivr_containment_pct", "IVR%", i.ivr_containment_pct, Pct),
        ("qa_scored", "QA n", n(i.qa_scored), Count),
        ("qa_score", "QA", i.qa_score, Ratio),
        ("ring_time_s", "ring", i.ring_time_s, Secs),
    ]
}

#[derive(Clone, Copy)]
enum Unit {
    Count,
    Pct,
    Secs,
    Ratio,
}

fn cell(v: Option<f64>, unit: Unit) -> String {
    match (v, unit) {
        (None, _) => "-".into(),
        (Some(v), Unit::Count) => format!("{v:.0}"),
        (Some(v), Unit::Pct | Unit::Ratio | Unit::Secs) => format!("{v:.1}"),
    }
}

fn interval_label(report: &Report, start: i64) -> String {
    local_label(start, &tz(report))
}

fn tz(report: &Report) -> jiff::tz::TimeZone {
    report.tz.clone()
}

fn group_label(report: &Report, group: &Option<String>) -> String {
    match (group, report.by) {
        (Some(g), _) => g.clone(),
        (None, super::GroupBy::All) => "all".into(),
        (None, _) => "(none)".into(),
    }
}

pub fn table(report: &Report) -> String {
    let mut lines: Vec<Vec<String>> = Vec::new();
    let mut header = vec!["interval".to_owned(), "group".to_owned()];
    let Some(first) = report.rows.first() else {
        return "no data\n".into();
    };
    header.extend(columns(&first.indicators).iter().map(|c| c.1.to_owned()));
    lines.push(header);
    for row in &report.rows {
        let mut line = vec![
            interval_label(report, row.start_ms),
            group_label(report, &row.group),
        ];
        line.extend(columns(&row.indicators).iter().map(|c| cell(c.2, c.3)));
        lines.push(line);
    }
    let widths: Vec<usize> = (0..lines[0].len())
        .map(|i| {
            lines
                .iter()
                .map(|l| l[i].chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut out = format!(
        "{} to {} ({}), service level {}s, target {}%\n",
        interval_label(report, report.from_ms),
        interval_label(report, report.to_ms),
        report.time_zone,
        report.service_level_s,
        report.service_level_target_pct
    );
    for line in &lines {
        let cells: Vec<String> = line
            .iter()
            .zip(&widths)
            .enumerate()
            .map(|(i, (c, w))| {
                if i < 2 {
                    format!("{c:<w$}")
                } else {
                    format!("{c:>w$}")
                }
            })
            .collect();
        out.push_str(cells.join("  ").trim_end());
        out.push('\n');
    }
    let reasons: Vec<String> = report
        .rows
        .iter()
        .filter(|r| !r.indicators.transfer_reasons.is_empty())
        .map(|r| {
            let list: Vec<String> = r
                .indicators
                .transfer_reasons
                .iter()
                .map(|(reason, n)| {
                    let reason = if reason.is_empty() { "(none)" } else { reason };
                    format!("{reason} {n}")
                })
                .collect();
            format!(
                "  {} {}: {}",
                interval_label(report, r.start_ms),
                group_label(report, &r.group),
                list.join(", ")
            )
        })
        .collect();
    if !reasons.is_empty() {
        out.push_str("transfer reasons:\n");
        out.push_str(&reasons.join("\n"));
        out.push('\n');
    }
    out
}

fn csv_field(s: &str) -> String {
    // A leading = + - @ would make a spreadsheet run the cell as a formula.
    let s = if s.starts_with(['=', '+', '-', '@']) {
        format!("'{s}")
    } else {
        s.to_owned()
    };
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s
    }
}

pub fn csv(report: &Report) -> String {
    let mut out = String::from("interval_start,interval_end,group");
    let names = columns(&super::Indicators::from_sums(&Default::default()));
    for c in &names {
        out.push(',');
        out.push_str(c.0);
    }
    out.push_str(",transfer_reasons\n");
    let tz = tz(report);
    for row in &report.rows {
        let mut fields = vec![
            local_label(row.start_ms, &tz),
            local_label(row.end_ms, &tz),
            csv_field(row.group.as_deref().unwrap_or("")),
        ];
        for c in columns(&row.indicators) {
            fields.push(match c.2 {
                None => String::new(),
                Some(v) => match c.3 {
                    Unit::Count => format!("{v:.0}"),
                    _ => format!("{v:.2}"),
                },
            });
        }
        let reasons: Vec<String> = row
            .indicators
            .transfer_reasons
            .iter()
            .map(|(r, n)| format!("{r}={n}"))
            .collect();
        fields.push(csv_field(&reasons.join(";")));
        out.push_str(&fields.join(","));
        out.push('\n');
    }
    out
}

/// The report with each interval's local start and end added, values rounded to 0.01.
pub fn json(report: &Report) -> Value {
    let tz = tz(report);
    let rows: Vec<Value> = report
        .rows
        .iter()
        .map(|row| {
            let mut indicators = serde_json::Map::new();
            for c in columns(&row.indicators) {
                indicators.insert(
                    c.0.to_owned(),
                    match (c.2, c.3) {
                        (None, _) => Value::Null,
                        (Some(v), Unit::Count) => json!(v as i64),
                        (Some(v), _) => json!((v * 100.0).round() / 100.0),
                    },
                );
            }
            let reasons: serde_json::Map<String, Value> = row
                .indicators
                .transfer_reasons
                .iter()
                .map(|(r, n)| (r.clone(), json!(n)))
                .collect();
            indicators.insert("transfer_reasons".into(), Value::Object(reasons));
            json!({
                "start": local_label(row.start_ms, &tz),
                "end": local_label(row.end_ms, &tz),
                "start_ms": row.start_ms,
                "end_ms": row.end_ms,
                "group": row.group,
                "indicators": indicators,
            })
        })
        .collect();
    json!({
        "from_ms": report.from_ms,
        "to_ms": report.to_ms,
        "interval": report.interval,
        "by": report.by,
        "time_zone": report.time_zone,
        "service_level_s": report.service_level_s,
        "service_level_target_pct": report.service_level_target_pct,
        "rows": rows,
    })
}
