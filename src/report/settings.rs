//! `[report]`: the thresholds and windows the indicators use, the time zone intervals are
//! cut in, and the shift schedule adherence is measured against.

use std::time::Duration;

use jiff::tz::TimeZone;
use serde::Deserialize;

use crate::core::duration::parse_duration;
use crate::flow::schedule::{Span, parse_days, parse_span, parse_tz};

/// `[report]` as written; every key optional.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReportSection {
    time_zone: Option<String>,
    service_level: Option<String>,
    service_level_target: Option<u8>,
    short_abandon: Option<String>,
    redial_window: Option<String>,
    repeat_days: Option<u32>,
    fcr_days: Option<u32>,
    #[serde(default)]
    shift: Vec<ShiftSection>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ShiftSection {
    #[serde(default)]
    agents: Vec<String>,
    team: Option<String>,
    days: String,
    hours: String,
}

#[derive(Debug, Clone)]
pub struct ReportSettings {
    /// Intervals (half hours, days, weeks, months) are cut in this zone.
    pub time_zone: TimeZone,
    /// Answered within this counts towards the service level.
    pub service_level: Duration,
    /// The service level aimed at, in percent (the wallboard's line).
    pub service_level_target: u8,
    /// Callers who give up within this are short abandons: counted apart, not as abandons.
    pub short_abandon: Duration,
    /// A blocked call followed by another from the same number within this was redialled:
    /// the later call carries the demand.
    pub redial_window: Duration,
    /// A call from a number that called within this many days before is a repeat call.
    pub repeat_days: u32,
    /// A call resolved in wrap-up counts as first-call resolution if the number does not call
    /// again within this many days.
    pub fcr_days: u32,
    pub shifts: Vec<Shift>,
}

/// Who is expected to be logged in and ready when: the agents named and every agent of the
/// team, on the days given, for the hours given (quarter hours; past midnight allowed).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Shift {
    pub agents: Vec<String>,
    pub team: Option<String>,
    /// Monday 0.
    pub days: Vec<usize>,
    pub hours: Span,
}

impl Default for ReportSettings {
    fn default() -> Self {
        ReportSettings {
            time_zone: TimeZone::try_system().unwrap_or(TimeZone::UTC),
            service_level: Duration::from_secs(20),
            service_level_target: 80,
            short_abandon: Duration::from_secs(20),
            redial_window: Duration::from_secs(600),
            repeat_days: 30,
            fcr_days: 7,
            shifts: Vec::new(),
        }
    }
}

impl ReportSettings {
    /// The settings from the section; an error names the key.
    pub fn from_section(section: ReportSection) -> Result<ReportSettings, (&'static str, String)> {
        let d = ReportSettings::default();
        let dur = |key: &'static str, v: Option<String>, default: Duration| {
            v.map_or(Ok(default), |s| parse_duration(&s).map_err(|m| (key, m)))
        };
        let time_zone = match section.time_zone {
            Some(name) => parse_tz(&name).map_err(|m| ("report.time_zone", m))?,
            None => d.time_zone,
        };
        let target = section
            .service_level_target
            .unwrap_or(d.service_level_target);
        if !(1..=100).contains(&target) {
            return Err((
                "report.service_level_target",
                format!("{target} is not a percentage from 1 to 100"),
            ));
        }
        let days = |key: &'static str, v: Option<u32>, default: u32| match v {
            Some(0) => Err((key, "must be at least 1 day".to_owned())),
            Some(n) if n > 366 => Err((key, format!("{n} days is more than a year"))),
            Some(n) => Ok(n),
            None => Ok(default),
        };
        let shifts = section
            .shift
            .into_iter()
            .enumerate()
            .map(|(i, s)| shift(i, s))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(ReportSettings {
            time_zone,
            service_level: dur(
                "report.service_level",
                section.service_level,
                d.service_level,
            )?,
            service_level_target: target,
            short_abandon: dur(
                "report.short_abandon",
                section.short_abandon,
                d.short_abandon,
            )?,
            redial_window: dur(
                "report.redial_window",
                section.redial_window,
                d.redial_window,
            )?,
            repeat_days: days("report.repeat_days", section.repeat_days, d.repeat_days)?,
            fcr_days: days("report.fcr_days", section.fcr_days, d.fcr_days)?,
            shifts,
        })
    }
}

/// The characters agent ids and team names are made of (as the agents file allows): the
/// only ones a report writes into SQL.
pub fn is_agent_id(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
}

fn shift(index: usize, s: ShiftSection) -> Result<Shift, (&'static str, String)> {
    let key = "report.shift";
    let n = index + 1;
    if s.agents.is_empty() && s.team.is_none() {
        return Err((key, format!("shift {n} names neither agents nor a team")));
    }
    if let Some(bad) = s
        .agents
        .iter()
        .chain(s.team.as_ref())
        .find(|a| !is_agent_id(a))
    {
        return Err((
            key,
            format!("shift {n}: {bad:?} is not an agent id or team name (letters, digits, _ - .)"),
        ));
    }
    let days = parse_days(s.days.trim()).map_err(|m| (key, format!("shift {n}: {m}")))?;
    let hours = parse_span(&s.hours)
        .map_err(|m| (key, format!("shift {n}: {m}")))?
        .ok_or_else(|| (key, format!("shift {n}: hours cannot be \"closed\"")))?;
    if hours.start % 15 != 0 || hours.end % 15 != 0 {
        return Err((
            key,
            format!(
                "shift {n}: {:?} must start and end on a quarter hour (agents' time is kept per quarter hour)",
                s.hours
            ),
        ));
    }
    Ok(Shift {
        agents: s.agents,
        team: s.team,
        days,
        hours,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<ReportSettings, (&'static str, String)> {
        #[derive(Deserialize)]
        struct F {
            report: ReportSection,
        }
        let f: F = toml::from_str(text).expect("toml");
        ReportSettings::from_section(f.report)
    }

    #[test]
    fn defaults_and_a_full_section() {
        let s = parse("[report]\n").unwrap();
        assert_eq!(s.service_level, Duration::from_secs(20));
        assert_eq!(
            (s.service_level_target, s.repeat_days, s.fcr_days),
            (80, 30, 7)
        );
        let s = parse(
            "[report]\ntime_zone = \"Asia/Shanghai\"\nservice_level = \"30s\"\nservice_level_target = 90\n\
             short_abandon = \"10s\"\nredial_window = \"5m\"\nrepeat_days = 14\nfcr_days = 3\n\
             [[report.shift]]\nagents = [\"1001\"]\ndays = \"mon-fri\"\nhours = \"22:00-06:00\"\n",
        )
        .unwrap();
        assert_eq!(s.service_level, Duration::from_secs(30));
        assert_eq!(s.redial_window, Duration::from_secs(300));
        assert_eq!(s.shifts[0].days, vec![0, 1, 2, 3, 4]);
        assert_eq!(
            (s.shifts[0].hours.start, s.shifts[0].hours.end),
            (1320, 360)
        );
    }

    #[test]
    fn bad_values_name_their_key() {
        let key = |t: &str| parse(t).unwrap_err().0;
        assert_eq!(
            key("[report]\ntime_zone = \"Mars/Base\"\n"),
            "report.time_zone"
        );
        assert_eq!(
            key("[report]\nservice_level_target = 0\n"),
            "report.service_level_target"
        );
        assert_eq!(key("[report]\nrepeat_days = 0\n"), "report.repeat_days");
        assert_eq!(
            key("[report]\nshort_abandon = \"20\"\n"),
            "report.short_abandon"
        );
        let shift = "[report]\n[[report.shift]]\nagents = [\"1\"]\ndays = \"mon\"\n";
        assert_eq!(
            key(&format!("{shift}hours = \"09:10-17:00\"\n")),
            "report.shift"
        );
        assert_eq!(key(&format!("{shift}hours = \"closed\"\n")), "report.shift");
        assert_eq!(
            key(
                "[report]\n[[report.shift]]\nagents = [\"a'b\"]\ndays = \"mon\"\nhours = \"09:00-17:00\"\n"
            ),
            "report.shift"
        );
        let err = parse("[report]\n[[report.shift]]\ndays = \"mon\"\nhours = \"09:00-17:00\"\n")
            .unwrap_err();
        assert!(err.1.contains("neither agents nor a team"), "{err:?}");
    }
}
