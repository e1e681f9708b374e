//! Opening hours: weekly hours, holidays and special days in one time zone. Pure: the moment
//! to judge is an input, so every rule is tested without waiting for a weekend.

use jiff::civil::{Date, Weekday};
use jiff::tz::TimeZone;
use jiff::{Timestamp, ToSpan};

/// Minutes since midnight, [start, end); `end` may be 1440 ("24:00").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Span {
    pub start: u16,
    pub end: u16,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    Open,
    Closed,
    Holiday,
}

#[derive(Debug, Clone)]
pub struct Schedule {
    pub tz: TimeZone,
    /// Monday first. A span with end < start runs past midnight into the next day.
    pub weekly: [Vec<Span>; 7],
    /// Holidays and special days: the schedule's own first, then each calendar's in the
    /// order named. The first layer that says anything about a date decides it.
    pub layers: Vec<Layer>,
}

/// One source of holidays and special days.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Layer {
    /// Inclusive date ranges.
    pub holidays: Vec<(Date, Date)>,
    /// Days whose hours replace the weekly ones and, within the layer, win over its
    /// holidays: a working Sunday, a short Christmas Eve.
    pub special: Vec<(Date, DayHours)>,
}

/// A special day's hours.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DayHours {
    /// These spans; none means closed all day.
    Spans(Vec<Span>),
    /// The schedule's own hours of this weekday (Monday 0): a calendar's make-up working
    /// Saturday "works like a Monday" in every schedule that uses it, whatever their hours.
    Like(usize),
}

impl Schedule {
    pub fn state(&self, at: Timestamp) -> State {
        let local = at.to_zoned_datetime(self.tz.clone());
        let date = local.date();
        let minute = local.hour() as u16 * 60 + local.minute() as u16;
        // Yesterday's spans that run past midnight cover the early hours of today.
        let yesterday = date.checked_sub(1.day()).ok();
        let carried = yesterday.is_some_and(|y| {
            self.day_spans(y)
                .is_some_and(|spans| spans.iter().any(|s| s.end < s.start && minute < s.end))
        });
        if carried {
            return State::Open;
        }
        match self.day_spans(date) {
            None => State::Holiday,
            Some(spans) => {
                let open = spans.iter().any(|s| {
                    if s.end < s.start {
                        minute >= s.start
                    } else {
                        minute >= s.start && minute < s.end
                    }
                });
                if open { State::Open } else { State::Closed }
            }
        }
    }

    /// The day's hours; None on a holiday.
    fn day_spans(&self, date: Date) -> Option<&[Span]> {
        for layer in &self.layers {
            if let Some((_, hours)) = layer.special.iter().find(|(d, _)| *d == date) {
                return Some(match hours {
                    DayHours::Spans(spans) => spans,
                    DayHours::Like(day) => &self.weekly[*day],
                });
            }
            if layer
                .holidays
                .iter()
                .any(|(from, to)| date >= *from && date <= *to)
            {
                return None;
            }
        }
        Some(&self.weekly[weekday_index(date.weekday())])
    }
}

pub fn weekday_index(w: Weekday) -> usize {
    w.to_monday_zero_offset() as usize
}

pub const DAY_NAMES: [&str; 7] = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];

/// "mon", "mon-fri", "sat-sun", "daily" to the days they name.
pub fn parse_days(text: &str) -> Result<Vec<usize>, String> {
    let day = |s: &str| {
        DAY_NAMES
            .iter()
            .position(|d| *d == s.trim().to_ascii_lowercase())
            .ok_or_else(|| {
                format!("unknown day {s:?} (use mon, tue, ... sun, a range like mon-fri, or daily)")
            })
    };
    if text == "daily" {
        return Ok((0..7).collect());
    }
    match text.split_once('-') {
        Some((a, b)) => {
            let (a, b) = (day(a)?, day(b)?);
            Ok(if a <= b {
                (a..=b).collect()
            } else {
                (a..7).chain(0..=b).collect()
            })
        }
        None => Ok(vec![day(text)?]),
    }
}

/// "08:00-12:00" to minutes; "closed" is no span at all.
pub fn parse_span(text: &str) -> Result<Option<Span>, String> {
    if text.trim() == "closed" {
        return Ok(None);
    }
    let (a, b) = text
        .split_once('-')
        .ok_or_else(|| format!("{text:?} is not a time range like \"08:00-18:00\""))?;
    let whole = |_| format!("{text:?} is not a time range like \"08:00-18:00\"");
    let (start, end) = (
        parse_clock(a).map_err(whole)?,
        parse_clock(b).map_err(whole)?,
    );
    if start == end {
        return Err(format!("{text:?} is empty: start and end are the same"));
    }
    if start == 1440 {
        return Err(format!("{text:?} starts at 24:00"));
    }
    Ok(Some(Span { start, end }))
}

fn parse_clock(text: &str) -> Result<u16, String> {
    let bad = || format!("{:?} is not a time of day like \"08:30\"", text.trim());
    let (h, m) = text.trim().split_once(':').ok_or_else(bad)?;
    let h: u16 = h.parse().map_err(|_| bad())?;
    let m: u16 = m.parse().map_err(|_| bad())?;
    if m > 59 || h > 24 || (h == 24 && m != 0) || h.to_string().len() > 2 {
        return Err(bad());
    }
    Ok(h * 60 + m)
}

/// "2026-10-01" or "2026-10-01..2026-10-07".
pub fn parse_date_range(text: &str) -> Result<(Date, Date), String> {
    let date = |s: &str| {
        s.trim()
            .parse::<Date>()
            .map_err(|_| format!("{:?} is not a date like \"2026-10-01\"", s.trim()))
    };
    match text.split_once("..") {
        Some((a, b)) => {
            let (a, b) = (date(a)?, date(b)?);
            if b < a {
                return Err(format!("{text:?} ends before it starts"));
            }
            Ok((a, b))
        }
        None => {
            let d = date(text)?;
            Ok((d, d))
        }
    }
}

pub fn parse_tz(name: &str) -> Result<TimeZone, String> {
    TimeZone::get(name).map_err(|_| {
        format!("unknown time zone {name:?} (use a name like \"Asia/Shanghai\" or \"UTC\")")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shanghai() -> Schedule {
        let day = |s: &str| vec![parse_span(s).unwrap().unwrap()];
        Schedule {
            tz: parse_tz("Asia/Shanghai").unwrap(),
            weekly: [
                day("08:00-20:00"),
                day("08:00-20:00"),
                day("08:00-20:00"),
                day("08:00-20:00"),
                vec![
                    parse_span("08:00-12:00").unwrap().unwrap(),
                    parse_span("13:00-18:00").unwrap().unwrap(),
                ],
                day("22:00-02:00"),
                vec![],
            ],
            layers: vec![Layer {
                holidays: vec![parse_date_range("2026-10-01..2026-10-07").unwrap()],
                special: vec![(
                    "2026-10-04".parse().unwrap(),
                    DayHours::Spans(day("09:00-12:00")),
                )],
            }],
        }
    }

    fn at(local: &str) -> Timestamp {
        // Local Shanghai time, UTC+8 all year.
        format!("{local}+08:00[Asia/Shanghai]")
            .parse::<jiff::ZonedDateTime>()
            .unwrap()
            .timestamp()
    }

    #[test]
    fn weekly_hours_with_a_lunch_break() {
        let s = shanghai();
        // 2026-12-01 is a Tuesday; 2026-12-04 a Friday.
        assert_eq!(s.state(at("2026-12-01T07:59")), State::Closed);
        assert_eq!(s.state(at("2026-12-01T08:00")), State::Open);
        assert_eq!(s.state(at("2026-12-01T19:59")), State::Open);
        assert_eq!(
            s.state(at("2026-12-01T20:00")),
            State::Closed,
            "end is exclusive"
        );
        assert_eq!(s.state(at("2026-12-04T12:30")), State::Closed, "lunch");
        assert_eq!(s.state(at("2026-12-04T13:00")), State::Open);
    }

    #[test]
    fn the_time_zone_decides_not_the_server_clock() {
        let s = shanghai();
        let utc: Timestamp = "2026-12-01T01:00:00Z".parse().unwrap(); // 09:00 in Shanghai
        assert_eq!(s.state(utc), State::Open);
    }

    #[test]
    fn overnight_spans_cover_the_next_morning() {
        let s = shanghai();
        // Saturday 2026-12-05 22:00 to Sunday 02:00.
        assert_eq!(s.state(at("2026-12-05T23:30")), State::Open);
        assert_eq!(s.state(at("2026-12-06T01:59")), State::Open);
        assert_eq!(s.state(at("2026-12-06T02:00")), State::Closed);
        assert_eq!(s.state(at("2026-12-05T21:00")), State::Closed);
    }

    #[test]
    fn holidays_and_special_days() {
        let s = shanghai();
        assert_eq!(s.state(at("2026-10-02T10:00")), State::Holiday);
        assert_eq!(
            s.state(at("2026-10-07T23:00")),
            State::Holiday,
            "range is inclusive"
        );
        assert_eq!(s.state(at("2026-10-08T10:00")), State::Open);
        // A special day inside the holiday opens for the morning only.
        assert_eq!(s.state(at("2026-10-04T10:00")), State::Open);
        assert_eq!(s.state(at("2026-10-04T14:00")), State::Closed);
    }

    #[test]
    fn a_special_day_can_work_like_a_weekday() {
        let mut s = shanghai();
        // A calendar: Sunday 2026-12-06 works like a Monday (08:00-20:00 here), whatever
        // Sunday's hours, and 2026-12-07 is a holiday.
        s.layers.push(Layer {
            holidays: vec![parse_date_range("2026-12-07").unwrap()],
            special: vec![("2026-12-06".parse().unwrap(), DayHours::Like(0))],
        });
        assert_eq!(s.state(at("2026-12-06T19:00")), State::Open);
        assert_eq!(s.state(at("2026-12-06T07:00")), State::Closed);
        assert_eq!(s.state(at("2026-12-07T10:00")), State::Holiday);
        // The schedule's own layer comes first: its holiday beats the calendar's make-up
        // day, its special day the calendar's holiday.
        s.layers[0]
            .holidays
            .push(parse_date_range("2026-12-06").unwrap());
        s.layers[0]
            .special
            .push(("2026-12-07".parse().unwrap(), DayHours::Like(0)));
        assert_eq!(s.state(at("2026-12-06T19:00")), State::Holiday);
        assert_eq!(s.state(at("2026-12-07T10:00")), State::Open);
    }

    #[test]
    fn parsing_rejects_bad_times_days_and_dates() {
        assert!(parse_span("8-18").is_err());
        assert!(parse_span("08:00-25:00").is_err());
        assert!(parse_span("08:60-09:00").is_err());
        assert!(parse_span("09:00-09:00").is_err());
        assert_eq!(parse_span("closed").unwrap(), None);
        assert_eq!(
            parse_span("00:00-24:00").unwrap(),
            Some(Span {
                start: 0,
                end: 1440
            })
        );
        assert_eq!(parse_days("mon-fri").unwrap(), vec![0, 1, 2, 3, 4]);
        assert_eq!(parse_days("sat-mon").unwrap(), vec![5, 6, 0]);
        assert!(parse_days("funday").is_err());
        assert!(parse_date_range("2026-13-01").is_err());
        assert!(parse_date_range("2026-10-07..2026-10-01").is_err());
        assert!(parse_tz("Mars/Olympus").is_err());
    }
}
