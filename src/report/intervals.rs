//! Report intervals: half hours, hours, days, weeks (Monday first) and months, cut in the
//! report's time zone, daylight saving included. Pure: a range in, boundaries out.

use jiff::civil::Date;
use jiff::tz::TimeZone;
use jiff::{Timestamp, ToSpan, ZonedDateTime as Zoned};

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Interval {
    HalfHour,
    Hour,
    Day,
    Week,
    Month,
    /// The whole range as one interval.
    All,
}

impl Interval {
    pub fn parse(text: &str) -> Result<Interval, String> {
        Ok(match text {
            "30m" | "half-hour" | "half_hour" => Interval::HalfHour,
            "hour" | "1h" => Interval::Hour,
            "day" => Interval::Day,
            "week" => Interval::Week,
            "month" => Interval::Month,
            "all" | "none" => Interval::All,
            _ => {
                return Err(format!(
                    "unknown interval {text:?} (use 30m, hour, day, week, month or all)"
                ));
            }
        })
    }
}

/// Every interval's start from the one containing `from_ms` to the first at or after
/// `to_ms`, in epoch ms: n + 1 boundaries for n intervals. For `All`, the range widened to
/// whole quarter hours. Every boundary is a whole quarter hour of UTC.
pub fn boundaries(interval: Interval, tz: &TimeZone, from_ms: i64, to_ms: i64) -> Vec<i64> {
    if interval == Interval::All || to_ms <= from_ms {
        // Whole quarter hours, like every other interval in every time zone.
        let cell = crate::cdr::agent_time::CELL_MS;
        let from = from_ms.div_euclid(cell) * cell;
        let to = to_ms.max(from_ms).div_euclid(cell) * cell;
        let to = if to < to_ms.max(from_ms) {
            to + cell
        } else {
            to
        };
        return vec![from, to.max(from + cell)];
    }
    let Some(mut at) = align(interval, tz, from_ms) else {
        return vec![from_ms, to_ms];
    };
    let mut out = vec![at.timestamp().as_millisecond()];
    // Bounded whatever the range: the caller refuses more intervals than this anyway.
    while *out.last().unwrap_or(&to_ms) < to_ms && out.len() <= super::MAX_INTERVALS + 1 {
        let Some(next) = step(interval, tz, &at) else {
            out.push(to_ms);
            break;
        };
        out.push(next.timestamp().as_millisecond());
        at = next;
    }
    out
}

/// The start of the interval containing `ms`.
fn align(interval: Interval, tz: &TimeZone, ms: i64) -> Option<Zoned> {
    let z = Timestamp::from_millisecond(ms)
        .ok()?
        .to_zoned_datetime(tz.clone());
    match interval {
        Interval::HalfHour | Interval::Hour => {
            let minutes = if interval == Interval::HalfHour {
                30
            } else {
                60
            };
            let floor = i64::from(z.minute()) % minutes;
            let back = floor
                .minutes()
                .seconds(z.second())
                .milliseconds(z.millisecond());
            z.checked_sub(back).ok()
        }
        Interval::Day => z.start_of_day().ok(),
        Interval::Week => {
            let monday = z
                .date()
                .checked_sub(i64::from(z.weekday().to_monday_zero_offset()).days())
                .ok()?;
            start_of(monday, tz)
        }
        Interval::Month => start_of(z.date().first_of_month(), tz),
        Interval::All => Some(z),
    }
}

fn step(interval: Interval, tz: &TimeZone, at: &Zoned) -> Option<Zoned> {
    match interval {
        // Absolute steps: a half hour is 30 minutes even across a change of clocks.
        Interval::HalfHour => at.checked_add(30.minutes()).ok(),
        Interval::Hour => at.checked_add(1.hour()).ok(),
        Interval::Day => start_of(at.date().checked_add(1.day()).ok()?, tz),
        Interval::Week => start_of(at.date().checked_add(1.week()).ok()?, tz),
        Interval::Month => start_of(at.date().checked_add(1.month()).ok()?, tz),
        Interval::All => None,
    }
}

fn start_of(date: Date, tz: &TimeZone) -> Option<Zoned> {
    date.to_zoned_datetime(tz.clone()).ok()?.start_of_day().ok()
}

/// A local date (and optional time) in the zone, to epoch ms: `2026-12-01` or
/// `2026-12-01 08:30`.
pub fn parse_local(text: &str, tz: &TimeZone) -> Result<i64, String> {
    let bad = || format!("{text:?} is not a date like 2026-12-01 or 2026-12-01 08:30");
    let t = text.trim();
    let civil = if t.len() <= 10 {
        t.parse::<Date>().map_err(|_| bad())?.at(0, 0, 0, 0)
    } else {
        t.replace(' ', "T")
            .parse::<jiff::civil::DateTime>()
            .map_err(|_| bad())?
    };
    civil
        .to_zoned_datetime(tz.clone())
        .map(|z| z.timestamp().as_millisecond())
        .map_err(|e| format!("{text:?}: {e}"))
}

/// Local `YYYY-MM-DD HH:MM` of an epoch ms.
pub fn local_label(ms: i64, tz: &TimeZone) -> String {
    match Timestamp::from_millisecond(ms) {
        Ok(t) => t
            .to_zoned_datetime(tz.clone())
            .strftime("%Y-%m-%d %H:%M")
            .to_string(),
        Err(_) => ms.to_string(),
    }
}

/// An SQL expression giving the index of the interval `column` falls in, for `column` within
/// [b[0], b[n]): a balanced tree of comparisons, so a row costs log2(n) of them whatever the
/// interval, time zone or clock change. Only numbers go into the text.
pub fn bucket_sql(column: &str, b: &[i64]) -> String {
    fn tree(column: &str, b: &[i64], lo: usize, hi: usize, out: &mut String) {
        if hi - lo <= 1 {
            out.push_str(&lo.to_string());
            return;
        }
        let mid = (lo + hi) / 2;
        out.push_str(&format!("CASE WHEN {column} < {} THEN ", b[mid]));
        tree(column, b, lo, mid, out);
        out.push_str(" ELSE ");
        tree(column, b, mid, hi, out);
        out.push_str(" END");
    }
    let mut out = String::new();
    tree(column, b, 0, b.len().saturating_sub(1).max(1), &mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tz(name: &str) -> TimeZone {
        TimeZone::get(name).unwrap()
    }

    fn labels(interval: Interval, zone: &str, from: &str, to: &str) -> Vec<String> {
        let z = tz(zone);
        let b = boundaries(
            interval,
            &z,
            parse_local(from, &z).unwrap(),
            parse_local(to, &z).unwrap(),
        );
        b.iter().map(|ms| local_label(*ms, &z)).collect()
    }

    #[test]
    fn half_hours_and_days_are_local() {
        assert_eq!(
            labels(
                Interval::HalfHour,
                "Asia/Shanghai",
                "2026-12-01 08:10",
                "2026-12-01 09:05"
            ),
            vec![
                "2026-12-01 08:00",
                "2026-12-01 08:30",
                "2026-12-01 09:00",
                "2026-12-01 09:30"
            ]
        );
        assert_eq!(
            labels(Interval::Day, "Asia/Shanghai", "2026-12-30", "2027-01-02"),
            vec![
                "2026-12-30 00:00",
                "2026-12-31 00:00",
                "2027-01-01 00:00",
                "2027-01-02 00:00"
            ]
        );
        assert_eq!(
            labels(Interval::Week, "UTC", "2026-12-02", "2026-12-08"),
            vec!["2026-11-30 00:00", "2026-12-07 00:00", "2026-12-14 00:00"]
        );
        assert_eq!(
            labels(Interval::Month, "UTC", "2026-11-15", "2027-01-01"),
            vec!["2026-11-01 00:00", "2026-12-01 00:00", "2027-01-01 00:00"]
        );
    }

    #[test]
    fn a_day_with_a_change_of_clocks_is_23_or_25_hours() {
        let z = tz("Europe/Berlin");
        let b = boundaries(
            Interval::Day,
            &z,
            parse_local("2026-03-29", &z).unwrap(),
            parse_local("2026-03-30", &z).unwrap(),
        );
        assert_eq!(b[1] - b[0], 23 * 3_600_000);
        let b = boundaries(
            Interval::Day,
            &z,
            parse_local("2026-10-25", &z).unwrap(),
            parse_local("2026-10-26", &z).unwrap(),
        );
        assert_eq!(b[1] - b[0], 25 * 3_600_000);
        let halves = boundaries(Interval::HalfHour, &z, b[0], b[1]);
        assert_eq!(halves.len() - 1, 50);
    }

    #[test]
    fn the_bucket_expression_finds_each_interval() {
        let b = [0, 10, 20, 30, 40, 50];
        let sql = bucket_sql("x", &b);
        // Evaluate the tree by hand with a tiny interpreter of its own shape.
        fn eval(sql: &str, x: i64) -> usize {
            let s = sql.trim();
            if let Some(rest) = s.strip_prefix("CASE WHEN x < ") {
                let (n, rest) = rest.split_once(" THEN ").unwrap();
                let n: i64 = n.parse().unwrap();
                // Split the THEN and ELSE parts at the ELSE of this level.
                let body = rest.strip_suffix(" END").unwrap();
                let mut depth = 0;
                let bytes = body.as_bytes();
                let mut split = None;
                for i in 0..bytes.len() {
                    if body[i..].starts_with("CASE ") {
                        depth += 1;
                    } else if body[i..].starts_with(" END") {
                        depth -= 1;
                    } else if depth == 0 && body[i..].starts_with(" ELSE ") {
                        split = Some(i);
                        break;
                    }
                }
                let i = split.unwrap();
                let (then, other) = (&body[..i], &body[i + 6..]);
                if x < n { eval(then, x) } else { eval(other, x) }
            } else {
                s.parse().unwrap()
            }
        }
        for x in 0..50 {
            assert_eq!(eval(&sql, x), (x / 10) as usize, "x = {x}");
        }
        assert_eq!(bucket_sql("x", &[0, 10]), "0");
    }
}
