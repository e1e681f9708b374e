//! Reading one value of an agent or queue table: skill levels, durations with a floor,
//! counts and keywords, each checked where it is written.

use super::*;

/// A skill level: a whole number from 1 to 10.
pub(super) fn level_value(sink: &mut Sink, skill: &str, v: &Value) -> Option<u8> {
    match v.get_ref() {
        DeValue::Integer(i) => match i.as_str().parse::<i64>() {
            Ok(n) if (1..=10).contains(&n) => Some(n as u8),
            _ => {
                sink.error(
                    &v.span(),
                    format!("skill {skill:?}: a level is 1 (novice) to 10 (expert)"),
                );
                None
            }
        },
        other => {
            sink.error(
                &v.span(),
                format!(
                    "skill {skill:?}: a level is a whole number from 1 to 10, not {}",
                    kind_of(other)
                ),
            );
            None
        }
    }
}

/// A duration key: text with a unit. A bare number gets the string form suggested.
pub(super) fn duration_opt(
    sink: &mut Sink,
    t: &Table,
    key: &'static str,
    min: Duration,
) -> Option<Duration> {
    let v = t.get(key)?;
    let d = match v.get_ref() {
        DeValue::String(s) => match parse_duration(s) {
            Ok(d) => d,
            Err(msg) => {
                sink.error(&v.span(), msg);
                return None;
            }
        },
        DeValue::Integer(n) => {
            sink.error(
                &v.span(),
                format!(
                    "`{key}` is a duration with a unit, in quotes: write \"{}s\"",
                    n.as_str()
                ),
            );
            return None;
        }
        DeValue::Float(n) => {
            sink.error(
                &v.span(),
                format!(
                    "`{key}` is a duration with a unit, in quotes: write \"{}s\"",
                    n.as_str()
                ),
            );
            return None;
        }
        other => {
            sink.error(
                &v.span(),
                format!("`{key}` is a duration like \"30s\", not {}", kind_of(other)),
            );
            return None;
        }
    };
    if d < min {
        sink.error(
            &v.span(),
            format!("`{key}` is too short: at least {}", show(min)),
        );
        return None;
    }
    Some(d)
}

pub(super) fn show(d: Duration) -> String {
    if d.subsec_millis() == 0 {
        format!("{} s", d.as_secs())
    } else {
        format!("{} ms", d.as_millis())
    }
}

pub(super) fn count(sink: &mut Sink, t: &Table, key: &'static str, max: i64, default: u32) -> u32 {
    t.int(key, 1..=max, sink).map_or(default, |n| n.v as u32)
}

/// A keyword value (`strategy`, `when_empty`) with a suggestion when it is close to one.
pub(super) fn keyword<T: Copy>(
    sink: &mut Sink,
    t: &Table,
    key: &'static str,
    table: &[(&'static str, T)],
) -> Option<T> {
    let v = t.str(key, sink)?;
    match table.iter().find(|(name, _)| *name == v.v) {
        Some((_, x)) => Some(*x),
        None => {
            let names: Vec<&str> = table.iter().map(|(n, _)| *n).collect();
            sink.error(
                &v.span,
                format!(
                    "unknown {key} {:?}{} (one of: {})",
                    v.v,
                    suggest(&v.v, names.iter().copied()),
                    names.join(", ")
                ),
            );
            None
        }
    }
}

// --- queues.toml ---
