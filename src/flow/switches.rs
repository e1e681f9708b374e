//! Announcement switches: `<flows>/announcements/NAME.on` exists while the notice named NAME
//! is on. The file may hold a window, `from` and/or `until`, so a notice can be put up ahead
//! of planned work and come down by itself; an empty file means on with no end.
//!
//! Read by the reloader (the only file access); the engine hands each call the snapshot it
//! started with, and `is_on` takes the moment to judge, so the rules are tested without a
//! clock.

use std::collections::BTreeMap;
use std::path::Path;

use jiff::Timestamp;
use jiff::civil::DateTime;
use jiff::tz::TimeZone;

/// Announcement switches live beside the flows, so an admin (or `hotline announce`) flips one
/// without editing a flow.
pub const ANNOUNCEMENT_DIR: &str = "announcements";

/// More switch files than this are not read: the directory is admin-controlled, but a script
/// run wild should not make every reload read a million files.
const MAX_SWITCHES: usize = 10_000;
/// A window is two short lines; anything larger is not one.
const MAX_FILE_BYTES: u64 = 4096;

/// When a switch that is on plays: from `from` (inclusive) until `until` (exclusive).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Window {
    pub from: Option<Timestamp>,
    pub until: Option<Timestamp>,
}

impl Window {
    pub fn covers(&self, at: Timestamp) -> bool {
        self.from.is_none_or(|f| at >= f) && self.until.is_none_or(|u| at < u)
    }

    /// The file's text: TOML with RFC 3339 times in `tz`'s offset, readable and unambiguous.
    pub fn to_file(&self, tz: &TimeZone) -> String {
        let mut out = String::new();
        for (key, at) in [("from", self.from), ("until", self.until)] {
            if let Some(at) = at {
                out.push_str(&format!("{key} = \"{}\"\n", show(at, tz)));
            }
        }
        out
    }

    /// "on", "on from 2026-12-10 22:00 until 2026-12-11 06:00 (not yet)" and the like.
    pub fn describe(&self, at: Timestamp, tz: &TimeZone) -> String {
        let mut out = "on".to_string();
        if let Some(f) = self.from {
            out.push_str(&format!(" from {}", show(f, tz)));
        }
        if let Some(u) = self.until {
            out.push_str(&format!(" until {}", show(u, tz)));
        }
        if self.from.is_some_and(|f| at < f) {
            out.push_str(" (not yet playing)");
        } else if self.until.is_some_and(|u| at >= u) {
            out.push_str(" (ended: no longer playing)");
        }
        out
    }
}

fn show(at: Timestamp, tz: &TimeZone) -> String {
    let offset = tz.to_offset(at);
    at.display_with_offset(offset).to_string()
}

/// A time for a window: RFC 3339 with an offset (`2026-12-10T22:00:00+08:00`), or a civil
/// time in `tz` (`2026-12-10 22:00`, `2026-12-10T22:00`).
pub fn parse_time(text: &str, tz: &TimeZone) -> Result<Timestamp, String> {
    let text = text.trim();
    if let Ok(at) = text.parse::<Timestamp>() {
        return Ok(at);
    }
    let civil = text
        .parse::<DateTime>()
        .map_err(|_| format!("{text:?} is not a time like \"2026-12-10 22:00\""))?;
    tz.to_zoned_datetime(civil)
        .map(|z| z.timestamp())
        .map_err(|e| format!("{text:?}: {e}"))
}

/// A switch file's text to its window.
pub fn parse_file(text: &str, tz: &TimeZone) -> Result<Window, String> {
    #[derive(serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    struct File {
        from: Option<toml::Value>,
        until: Option<toml::Value>,
    }
    let file: File = toml::from_str(text).map_err(|e| e.message().to_string())?;
    let time = |v: Option<toml::Value>| -> Result<Option<Timestamp>, String> {
        match v {
            None => Ok(None),
            Some(toml::Value::String(s)) => parse_time(&s, tz).map(Some),
            Some(toml::Value::Datetime(d)) => parse_time(&d.to_string(), tz).map(Some),
            Some(other) => Err(format!("{other} is not a time")),
        }
    };
    let window = Window {
        from: time(file.from)?,
        until: time(file.until)?,
    };
    if let (Some(f), Some(u)) = (window.from, window.until)
        && u <= f
    {
        return Err("`until` is not after `from`".into());
    }
    Ok(window)
}

/// The switches whose files exist, with their windows.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Switches {
    on: BTreeMap<String, Window>,
}

impl Switches {
    /// Every `<flows>/announcements/*.on`. A file whose window does not read is on with no
    /// window (the file existing is what "on" means) and reported in the second value.
    pub fn read(flows_dir: &Path, tz: &TimeZone) -> (Switches, Vec<String>) {
        let mut switches = Switches::default();
        let mut problems = Vec::new();
        let dir = flows_dir.join(ANNOUNCEMENT_DIR);
        let Ok(entries) = std::fs::read_dir(&dir) else {
            return (switches, problems);
        };
        for entry in entries.flatten() {
            let file_name = entry.file_name().to_string_lossy().to_string();
            let Some(name) = file_name.strip_suffix(".on") else {
                continue;
            };
            if !valid_name(name) {
                continue;
            }
            if switches.on.len() >= MAX_SWITCHES {
                problems.push(format!(
                    "{}: more than {MAX_SWITCHES} switch files; the rest are ignored",
                    dir.display()
                ));
                break;
            }
            let path = entry.path();
            let window = match std::fs::metadata(&path) {
                Ok(m) if m.len() == 0 => Ok(Window::default()),
                Ok(m) if m.len() > MAX_FILE_BYTES => Err(format!(
                    "larger than {MAX_FILE_BYTES} bytes; a switch file holds at most `from` and `until`"
                )),
                Ok(_) => read_bounded(&path).and_then(|text| parse_file(&text, tz)),
                // Deleted between the listing and now: off.
                Err(_) => continue,
            };
            let window = window.unwrap_or_else(|e| {
                problems.push(format!(
                    "{}: {e}; the switch is on with no window",
                    path.display()
                ));
                Window::default()
            });
            switches.on.insert(name.to_string(), window);
        }
        (switches, problems)
    }

    pub fn is_on(&self, name: &str, at: Timestamp) -> bool {
        self.on.get(name).is_some_and(|w| w.covers(at))
    }

    pub fn window(&self, name: &str) -> Option<&Window> {
        self.on.get(name)
    }

    /// In name order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &Window)> {
        self.on.iter().map(|(n, w)| (n.as_str(), w))
    }

    pub fn insert(&mut self, name: &str, window: Window) {
        self.on.insert(name.to_string(), window);
    }

    /// The switches that differ between `self` and `newer`: (name, the newer window or None
    /// when switched off).
    pub fn changes(&self, newer: &Switches) -> Vec<(String, Option<Window>)> {
        let mut out = Vec::new();
        for (name, window) in &newer.on {
            if self.on.get(name) != Some(window) {
                out.push((name.clone(), Some(*window)));
            }
        }
        for name in self.on.keys() {
            if !newer.on.contains_key(name) {
                out.push((name.clone(), None));
            }
        }
        out
    }
}

/// At most MAX_FILE_BYTES, whatever the file grew to since its size was looked at.
fn read_bounded(path: &Path) -> Result<String, String> {
    use std::io::Read;
    let mut text = String::new();
    std::fs::File::open(path)
        .and_then(|f| f.take(MAX_FILE_BYTES + 1).read_to_string(&mut text))
        .map_err(|e| e.to_string())?;
    if text.len() as u64 > MAX_FILE_BYTES {
        return Err(format!("larger than {MAX_FILE_BYTES} bytes"));
    }
    Ok(text)
}

/// Letters, digits, `-` and `_`: a name that is also a safe file name.
pub fn valid_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 128
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shanghai() -> TimeZone {
        TimeZone::get("Asia/Shanghai").unwrap()
    }

    fn at(text: &str) -> Timestamp {
        parse_time(text, &shanghai()).unwrap()
    }

    #[test]
    fn a_window_plays_from_its_start_until_its_end() {
        let w = parse_file(
            "from = \"2026-12-10 22:00\"\nuntil = \"2026-12-11T06:00:00+08:00\"\n",
            &shanghai(),
        )
        .unwrap();
        assert!(!w.covers(at("2026-12-10 21:59")));
        assert!(w.covers(at("2026-12-10 22:00")));
        assert!(w.covers(at("2026-12-11 05:59")));
        assert!(!w.covers(at("2026-12-11 06:00")));
        // The written form reads back to the same window.
        assert_eq!(parse_file(&w.to_file(&shanghai()), &TimeZone::UTC), Ok(w));
        assert!(w.to_file(&shanghai()).contains("2026-12-10T22:00:00+08:00"));
    }

    #[test]
    fn open_ended_windows_and_toml_datetimes() {
        let w = parse_file("until = 2026-12-11T06:00:00+08:00", &shanghai()).unwrap();
        assert!(w.covers(at("2000-01-01 00:00")));
        assert!(!w.covers(at("2026-12-11 06:00")));
        let w = parse_file("from = 2026-12-10T22:00:00", &shanghai()).unwrap();
        assert!(w.covers(at("2030-01-01 00:00")));
        assert!(!w.covers(at("2026-12-10 21:00")));
        assert_eq!(parse_file("", &shanghai()), Ok(Window::default()));
    }

    #[test]
    fn bad_windows_are_refused_with_the_reason() {
        let tz = shanghai();
        assert!(
            parse_file("from = \"tomorrow\"", &tz)
                .unwrap_err()
                .contains("tomorrow")
        );
        assert!(parse_file("form = \"2026-12-10 22:00\"", &tz).is_err());
        assert!(
            parse_file(
                "from = \"2026-12-11 06:00\"\nuntil = \"2026-12-10 22:00\"",
                &tz
            )
            .unwrap_err()
            .contains("not after")
        );
        assert!(parse_file("from = 5", &tz).is_err());
    }

    #[test]
    fn switch_files_are_read_with_their_windows() {
        let dir = std::env::temp_dir().join(format!("hotline-switches-{}", fastrand::u64(..)));
        let switches = dir.join(ANNOUNCEMENT_DIR);
        std::fs::create_dir_all(&switches).unwrap();
        std::fs::write(switches.join("outage.on"), "").unwrap();
        std::fs::write(
            switches.join("maintenance.on"),
            "from = \"2026-12-10 22:00\"\n",
        )
        .unwrap();
        std::fs::write(switches.join("broken.on"), "from = \"soon\"").unwrap();
        std::fs::write(switches.join("notes.txt"), "").unwrap();
        std::fs::write(switches.join("bad name.on"), "").unwrap();
        let (read, problems) = Switches::read(&dir, &shanghai());
        std::fs::remove_dir_all(&dir).ok();
        let names: Vec<&str> = read.iter().map(|(n, _)| n).collect();
        assert_eq!(names, ["broken", "maintenance", "outage"]);
        assert!(read.is_on("outage", at("2026-01-01 00:00")));
        assert!(!read.is_on("maintenance", at("2026-12-10 21:00")));
        assert!(read.is_on("maintenance", at("2026-12-10 22:00")));
        assert!(
            read.is_on("broken", at("2026-01-01 00:00")),
            "on, unwindowed"
        );
        assert_eq!(problems.len(), 1);
        assert!(problems[0].contains("broken.on"), "{problems:?}");
        assert!(!read.is_on("elsewhere", at("2026-01-01 00:00")));

        let mut later = read.clone();
        later.insert("storm", Window::default());
        later.on.remove("outage");
        let mut changes = read.changes(&later);
        changes.sort_by(|a, b| a.0.cmp(&b.0));
        assert_eq!(
            changes,
            [
                ("outage".to_string(), None),
                ("storm".to_string(), Some(Window::default()))
            ]
        );
    }
}
