//! Calendars: holidays and special days written once, in `<flows>/calendars/NAME.toml`, and
//! used by every schedule that names them (`calendar = "cn-public"`), so a new year's public
//! holidays are entered in one place rather than in every flow.
//!
//! ```toml
//! description = "Public holidays, mainland China"
//! holidays = ["2026-10-01..2026-10-07", "2026-05-01"]
//! special = { "2026-09-27" = "mon", "2026-12-24" = "08:00-12:00" }
//! ```
//!
//! Also the readers of hours, holidays and special days that schedule nodes share.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use jiff::civil::Date;
use toml::de::{DeTable, DeValue};

use super::schedule::{self, DAY_NAMES, DayHours, Span};
use super::schema::{Diagnostics, FlowError, Located, Sink, Source, Table, Value, kind_of};

pub const CALENDAR_DIR: &str = "calendars";

#[derive(Debug, Clone)]
pub struct Calendar {
    pub holidays: Vec<(Date, Date)>,
    pub special: Vec<(Date, DayHours)>,
    /// Its file, for "unknown calendar" hints and unused-calendar warnings.
    pub at: Located,
}

/// Every `<flows>/calendars/*.toml` by name (the file's stem). A folder that is not there is
/// no calendars; every problem goes to `diags` with its file, line and column.
pub fn load_dir(flows_dir: &Path, diags: &mut Diagnostics) -> HashMap<String, Calendar> {
    let dir = flows_dir.join(CALENDAR_DIR);
    let mut out = HashMap::new();
    let Ok(entries) = std::fs::read_dir(&dir) else {
        return out;
    };
    let mut files: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_file() && p.extension().is_some_and(|x| x == "toml"))
        .collect();
    files.sort();
    for file in files {
        let text = match std::fs::read_to_string(&file) {
            Ok(t) => t,
            Err(source) => {
                diags.errors.push(FlowError::ReadFile { file, source });
                continue;
            }
        };
        let src = Source {
            file: &file,
            text: &text,
        };
        let mut sink = Sink {
            src: &src,
            out: diags,
        };
        let name = file
            .file_stem()
            .map(|s| s.to_string_lossy().to_string())
            .unwrap_or_default();
        if !super::switches::valid_name(&name) {
            sink.error(
                &(0..0),
                "a calendar's file name is its name: letters, digits, - and _",
            );
            continue;
        }
        let doc = match DeTable::parse(&text) {
            Ok(doc) => doc,
            Err(e) => {
                let (span, message) =
                    super::schema::syntax_error(&text, e.span().unwrap_or(0..0), e.message());
                sink.error(&span, message);
                continue;
            }
        };
        let top = Table::new(doc.get_ref(), doc.span(), "a calendar file");
        let _ = top.str("description", &mut sink);
        let holidays = holidays(&top, &mut sink);
        let special = special_days(&top, &mut sink);
        top.finish(&mut sink);
        out.insert(
            name,
            Calendar {
                holidays,
                special,
                at: src.locate(&(0..0)),
            },
        );
    }
    out
}

/// `holidays = ["2026-10-01..2026-10-07", 2026-05-01]`.
pub(super) fn holidays(t: &Table, sink: &mut Sink) -> Vec<(Date, Date)> {
    let mut out = Vec::new();
    for item in t.array("holidays", sink).unwrap_or_default() {
        let text = match item.get_ref() {
            DeValue::String(s) => s.to_string(),
            DeValue::Datetime(d) => d.to_string(),
            other => {
                sink.error(
                    &item.span(),
                    format!(
                        "a holiday is \"2026-10-01\" or \"2026-10-01..2026-10-07\", not {}",
                        kind_of(other)
                    ),
                );
                continue;
            }
        };
        match schedule::parse_date_range(&text) {
            Ok(r) => out.push(r),
            Err(e) => sink.error(&item.span(), e),
        }
    }
    out
}

/// `special = { "2026-09-27" = "mon", "2026-12-24" = "08:00-12:00", "2026-12-31" = "closed" }`.
pub(super) fn special_days(t: &Table, sink: &mut Sink) -> Vec<(Date, DayHours)> {
    let mut out = Vec::new();
    let Some(table) = t.table("special", sink) else {
        return out;
    };
    for (day, value) in table.entries() {
        let date = match schedule::parse_date_range(&day.v) {
            Ok((from, to)) if from == to => from,
            Ok(_) => {
                sink.error(&day.span, "a special day is one date, not a range");
                continue;
            }
            Err(e) => {
                sink.error(&day.span, e);
                continue;
            }
        };
        let like = match value.get_ref() {
            DeValue::String(s) => DAY_NAMES
                .iter()
                .position(|d| d.eq_ignore_ascii_case(s.trim())),
            _ => None,
        };
        let hours = match like {
            Some(weekday) => DayHours::Like(weekday),
            None => DayHours::Spans(spans(value, sink)),
        };
        out.push((date, hours));
    }
    out
}

/// "08:00-18:00", a list of such ranges, or "closed" (no spans).
pub(super) fn spans(v: &Value, sink: &mut Sink) -> Vec<Span> {
    let items: Vec<&Value> = match v.get_ref() {
        DeValue::String(_) => vec![v],
        DeValue::Array(a) => a.iter().collect(),
        other => {
            sink.error(
                &v.span(),
                format!(
                    "hours are \"08:00-18:00\", a list of them, \"closed\" or (for a special day) a weekday such as \"mon\"; not {}",
                    kind_of(other)
                ),
            );
            return Vec::new();
        }
    };
    let mut out = Vec::new();
    for item in items {
        let DeValue::String(text) = item.get_ref() else {
            sink.error(
                &item.span(),
                format!(
                    "a time range must be a string, not {}",
                    kind_of(item.get_ref())
                ),
            );
            continue;
        };
        match schedule::parse_span(text) {
            Ok(Some(s)) => out.push(s),
            Ok(None) => {}
            Err(e) => sink.error(&item.span(), e),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(files: &[(&str, &str)]) -> (HashMap<String, Calendar>, Vec<String>) {
        let dir = std::env::temp_dir().join(format!("hotline-calendar-{}", fastrand::u64(..)));
        std::fs::create_dir_all(dir.join(CALENDAR_DIR)).unwrap();
        for (name, text) in files {
            std::fs::write(dir.join(CALENDAR_DIR).join(name), text).unwrap();
        }
        let mut diags = Diagnostics::default();
        let calendars = load_dir(&dir, &mut diags);
        std::fs::remove_dir_all(&dir).ok();
        let errors = diags
            .errors
            .iter()
            .map(|e| e.to_string().replace(&dir.display().to_string(), ""))
            .collect();
        (calendars, errors)
    }

    #[test]
    fn a_calendar_reads_holidays_and_special_days() {
        let (calendars, errors) = load(&[(
            "cn.toml",
            "description = \"China\"\nholidays = [\"2026-10-01..2026-10-07\", 2026-05-01]\n\
             special = { \"2026-09-27\" = \"mon\", \"2026-12-24\" = \"08:00-12:00\", \"2026-12-31\" = \"closed\" }\n",
        )]);
        assert!(errors.is_empty(), "{errors:?}");
        let cn = &calendars["cn"];
        assert_eq!(cn.holidays.len(), 2);
        assert_eq!(
            cn.special,
            [
                ("2026-09-27".parse().unwrap(), DayHours::Like(0)),
                (
                    "2026-12-24".parse().unwrap(),
                    DayHours::Spans(vec![Span {
                        start: 480,
                        end: 720
                    }])
                ),
                ("2026-12-31".parse().unwrap(), DayHours::Spans(Vec::new())),
            ]
        );
    }

    #[test]
    fn mistakes_in_a_calendar_are_located() {
        let (_, errors) = load(&[(
            "cn.toml",
            "holidays = [\"2026-13-01\"]\nspecial = { \"2026-09-27..2026-09-28\" = \"mon\", \"2026-12-24\" = \"8-12\" }\nholiday = []\n",
        )]);
        let joined = errors.join("\n");
        assert!(joined.contains("cn.toml:1:13"), "{joined}");
        assert!(joined.contains("is not a date"), "{joined}");
        assert!(
            joined.contains("cn.toml:2:13: a special day is one date"),
            "{joined}"
        );
        assert!(joined.contains("\"8-12\" is not a time range"), "{joined}");
        assert!(joined.contains("holiday"), "unknown key: {joined}");
    }
}
