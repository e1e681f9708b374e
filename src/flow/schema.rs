//! Reading flow files with every position kept: the TOML document is parsed into toml's spanned
//! tree, and each table is read through a `Table` view that remembers which keys the compiler
//! asked for. Whatever was not asked for is an unknown key, reported with the closest known one.
//! This replaces serde derive on purpose: serde loses positions inside tagged enums and can
//! only say "unknown field", never "did you mean".

use std::cell::RefCell;
use std::fmt;
use std::ops::Range;
use std::path::{Path, PathBuf};

use toml::Spanned;
use toml::de::{DeTable, DeValue};

/// A place in a flow file, for messages an admin can act on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Located {
    pub file: PathBuf,
    pub line: usize,
    pub column: usize,
    pub snippet: String,
}

impl fmt::Display for Located {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}", self.file.display(), self.line, self.column)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum FlowError {
    #[error("{dir}: cannot read flow directory: {source}")]
    ReadDir {
        dir: PathBuf,
        source: std::io::Error,
    },
    #[error("{file}: cannot read: {source}")]
    ReadFile {
        file: PathBuf,
        source: std::io::Error,
    },
    #[error("{at}: {message}\n    {snippet}", snippet = at.snippet)]
    At { at: Located, message: String },
    #[error("{dir}: no flow files (*.toml) found")]
    Empty { dir: PathBuf },
}

/// Something that works but is probably a mistake: an unreachable node, a prompt missing in one
/// language. Reported by `check` and at every load; never refuses a flow.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Warning {
    pub at: Located,
    pub message: String,
}

impl fmt::Display for Warning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}: warning: {}\n    {}",
            self.at, self.message, self.at.snippet
        )
    }
}

/// One flow file's text, to turn byte spans into lines and columns.
pub struct Source<'a> {
    pub file: &'a Path,
    pub text: &'a str,
}

impl Source<'_> {
    pub fn locate(&self, span: &Range<usize>) -> Located {
        let mut start = span.start.min(self.text.len());
        while !self.text.is_char_boundary(start) {
            start -= 1;
        }
        let before = &self.text[..start];
        let line = before.matches('\n').count() + 1;
        let line_start = before.rfind('\n').map_or(0, |i| i + 1);
        let column = self.text[line_start..start].chars().count() + 1;
        let snippet = self.text[line_start..]
            .lines()
            .next()
            .unwrap_or("")
            .trim_end()
            .to_string();
        Located {
            file: self.file.to_path_buf(),
            line,
            column,
            snippet,
        }
    }
}

/// Errors and warnings of one load, in the order found.
#[derive(Debug, Default)]
pub struct Diagnostics {
    pub errors: Vec<FlowError>,
    pub warnings: Vec<Warning>,
}

/// The diagnostics sink bound to one file.
pub struct Sink<'s, 'a> {
    pub src: &'s Source<'a>,
    pub out: &'s mut Diagnostics,
}

impl Sink<'_, '_> {
    pub fn error(&mut self, span: &Range<usize>, message: impl Into<String>) {
        self.out.errors.push(FlowError::At {
            at: self.src.locate(span),
            message: message.into(),
        });
    }

    pub fn error_count(&self) -> usize {
        self.out.errors.len()
    }
}

/// A value with the byte range it came from.
#[derive(Debug, Clone, PartialEq)]
pub struct Sp<T> {
    pub v: T,
    pub span: Range<usize>,
}

impl<T> Sp<T> {
    pub fn new(v: T, span: Range<usize>) -> Self {
        Sp { v, span }
    }
}

pub type Value<'i> = Spanned<DeValue<'i>>;

/// A view of one TOML table that records the keys read, so `finish` can name the rest.
pub struct Table<'t, 'i> {
    table: &'t DeTable<'i>,
    pub span: Range<usize>,
    /// What the table is, for messages: "a menu node", "the [flow] table".
    what: RefCell<String>,
    asked: RefCell<Vec<&'static str>>,
    accept_everything: std::cell::Cell<bool>,
}

impl<'t, 'i> Table<'t, 'i> {
    pub fn new(table: &'t DeTable<'i>, span: Range<usize>, what: impl Into<String>) -> Self {
        Table {
            table,
            span,
            what: RefCell::new(what.into()),
            asked: RefCell::new(Vec::new()),
            accept_everything: std::cell::Cell::new(false),
        }
    }

    pub fn relabel(self, what: &str) -> Self {
        self.set_what(what);
        self
    }

    /// Name the table once its kind is known ("a menu node"), for later messages.
    pub fn set_what(&self, what: &str) {
        *self.what.borrow_mut() = what.to_string();
    }

    /// Count every key as read: when a table cannot be judged (an unknown node type), its
    /// keys are not reported one by one as unknown.
    pub fn accept_all(&self) {
        self.accept_everything.set(true);
    }

    pub fn get(&self, key: &'static str) -> Option<&'t Value<'i>> {
        self.asked.borrow_mut().push(key);
        self.table
            .iter()
            .find(|(k, _)| k.get_ref().as_ref() == key)
            .map(|(_, v)| v)
    }

    pub fn has(&self, key: &'static str) -> bool {
        self.get(key).is_some()
    }

    /// The key's own span (for "needs" messages that point at the table otherwise).
    pub fn key_span(&self, key: &str) -> Option<Range<usize>> {
        self.table
            .iter()
            .find(|(k, _)| k.get_ref().as_ref() == key)
            .map(|(k, _)| k.span())
    }

    pub fn str(&self, key: &'static str, sink: &mut Sink) -> Option<Sp<String>> {
        let v = self.get(key)?;
        match v.get_ref() {
            DeValue::String(s) => Some(Sp::new(s.to_string(), v.span())),
            other => {
                sink.error(
                    &v.span(),
                    format!("`{key}` must be a string, not {}", kind_of(other)),
                );
                None
            }
        }
    }

    pub fn req_str(&self, key: &'static str, sink: &mut Sink) -> Option<Sp<String>> {
        let v = self.str(key, sink);
        if v.is_none() && !self.has(key) {
            sink.error(&self.span, format!("{} needs `{key}`", self.what.borrow()));
        }
        v
    }

    pub fn bool(&self, key: &'static str, sink: &mut Sink) -> Option<Sp<bool>> {
        let v = self.get(key)?;
        match v.get_ref() {
            DeValue::Boolean(b) => Some(Sp::new(*b, v.span())),
            other => {
                sink.error(
                    &v.span(),
                    format!("`{key}` must be true or false, not {}", kind_of(other)),
                );
                None
            }
        }
    }

    /// A whole number within `range`.
    pub fn int(
        &self,
        key: &'static str,
        range: std::ops::RangeInclusive<i64>,
        sink: &mut Sink,
    ) -> Option<Sp<i64>> {
        let v = self.get(key)?;
        let parsed = match v.get_ref() {
            DeValue::Integer(i) => {
                let digits: String = i.as_str().chars().filter(|c| *c != '_').collect();
                let (neg, digits) = match digits.strip_prefix('-') {
                    Some(d) => (true, d.to_string()),
                    None => (false, digits.trim_start_matches('+').to_string()),
                };
                let digits = digits
                    .trim_start_matches("0x")
                    .trim_start_matches("0o")
                    .trim_start_matches("0b");
                i64::from_str_radix(digits, i.radix())
                    .ok()
                    .map(|n| if neg { -n } else { n })
            }
            other => {
                sink.error(
                    &v.span(),
                    format!("`{key}` must be a whole number, not {}", kind_of(other)),
                );
                return None;
            }
        };
        match parsed {
            Some(n) if range.contains(&n) => Some(Sp::new(n, v.span())),
            _ => {
                sink.error(
                    &v.span(),
                    format!(
                        "`{key}` must be between {} and {}",
                        range.start(),
                        range.end()
                    ),
                );
                None
            }
        }
    }

    pub fn table(&self, key: &'static str, sink: &mut Sink) -> Option<Table<'t, 'i>> {
        let v = self.get(key)?;
        match v.get_ref() {
            DeValue::Table(t) => Some(Table::new(t, v.span(), format!("`{key}`"))),
            other => {
                sink.error(
                    &v.span(),
                    format!("`{key}` must be a table, not {}", kind_of(other)),
                );
                None
            }
        }
    }

    pub fn array(&self, key: &'static str, sink: &mut Sink) -> Option<&'t [Value<'i>]> {
        let v = self.get(key)?;
        match v.get_ref() {
            DeValue::Array(a) => Some(&a[..]),
            other => {
                sink.error(
                    &v.span(),
                    format!("`{key}` must be a list [...], not {}", kind_of(other)),
                );
                None
            }
        }
    }

    /// A list of strings; a single string is taken as a list of one.
    pub fn strings(&self, key: &'static str, sink: &mut Sink) -> Option<Vec<Sp<String>>> {
        let v = self.get(key)?;
        match v.get_ref() {
            DeValue::String(s) => Some(vec![Sp::new(s.to_string(), v.span())]),
            DeValue::Array(items) => {
                let mut out = Vec::new();
                for item in items {
                    match item.get_ref() {
                        DeValue::String(s) => out.push(Sp::new(s.to_string(), item.span())),
                        other => sink.error(
                            &item.span(),
                            format!("`{key}` lists strings, not {}", kind_of(other)),
                        ),
                    }
                }
                Some(out)
            }
            other => {
                sink.error(
                    &v.span(),
                    format!("`{key}` must be a list of strings, not {}", kind_of(other)),
                );
                None
            }
        }
    }

    /// Every entry, for tables whose keys are data (menu choices, variables to set).
    pub fn entries(&self) -> impl Iterator<Item = (Sp<String>, &'t Value<'i>)> {
        self.table
            .iter()
            .map(|(k, v)| (Sp::new(k.get_ref().to_string(), k.span()), v))
    }

    /// Report every key nobody asked for, with the nearest known key as a hint.
    pub fn finish(self, sink: &mut Sink) {
        if self.accept_everything.get() {
            return;
        }
        let asked = self.asked.into_inner();
        for (key, _) in self.table.iter() {
            let name = key.get_ref().as_ref();
            if !asked.contains(&name) {
                sink.error(
                    &key.span(),
                    format!(
                        "unknown key `{name}` in {}{}",
                        self.what.borrow(),
                        suggest(name, asked.iter().copied())
                    ),
                );
            }
        }
    }
}

pub fn kind_of(v: &DeValue) -> &'static str {
    match v {
        DeValue::String(_) => "a string",
        DeValue::Integer(_) => "a number",
        DeValue::Float(_) => "a number",
        DeValue::Boolean(_) => "true/false",
        DeValue::Datetime(_) => "a date/time",
        DeValue::Array(_) => "a list",
        DeValue::Table(_) => "a table",
    }
}

/// " (did you mean \"x\"?)" when a known name is close to the unknown one.
pub fn suggest<'a>(unknown: &str, known: impl Iterator<Item = &'a str>) -> String {
    known
        .map(|k| (edit_distance(unknown, k), k))
        .filter(|(d, k)| *d <= 2.max(k.len() / 3))
        .min()
        .map(|(_, k)| format!(" (did you mean {k:?}?)"))
        .unwrap_or_default()
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut prev = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let cur = row[j + 1];
            row[j + 1] = (prev + usize::from(ca != *cb)).min(row[j] + 1).min(cur + 1);
            prev = cur;
        }
    }
    row[b.len()]
}

/// A TOML syntax error as an admin can act on it: where the parser stopped is not always
/// where the mistake is. A duplicate says where the first one is; a string left open (the
/// parser reads on into the next line and complains there) is reported where it opens.
pub fn syntax_error(text: &str, span: Range<usize>, message: &str) -> (Range<usize>, String) {
    let line_start = |at: usize| text[..at.min(text.len())].rfind('\n').map_or(0, |i| i + 1);
    let line_no = |at: usize| text[..at.min(text.len())].matches('\n').count() + 1;
    let start = line_start(span.start);
    if message.starts_with("duplicate key") {
        let line = text[start..].lines().next().unwrap_or("").trim();
        let key = line.split('=').next().unwrap_or("").trim();
        let what = if line.starts_with('[') {
            format!("`{line}` is defined twice")
        } else {
            format!("`{key}` is set twice in this table")
        };
        let first = if line.starts_with('[') {
            text[..start]
                .match_indices(line)
                .map(|(i, _)| i)
                .find(|&i| line_start(i) == i)
        } else {
            // A key: the same key earlier in the same table, after its header.
            let table_start = text[..start]
                .match_indices("\n[")
                .last()
                .map_or(0, |(i, _)| i + 1);
            text[table_start..start]
                .lines()
                .scan(table_start, |at, l| {
                    let here = *at;
                    *at += l.len() + 1;
                    Some((here, l))
                })
                .find(|(_, l)| {
                    l.split('=').next().is_some_and(|k| k.trim() == key) && l.contains('=')
                })
                .map(|(i, _)| i)
        };
        if let Some(first) = first {
            return (
                span,
                format!("{what}; the first one is at line {}", line_no(first)),
            );
        }
    }
    // An unterminated basic string: the previous line leaves a `"` open.
    if start > 0 {
        let prev_start = line_start(start - 1);
        let prev = &text[prev_start..start - 1];
        let mut open = None;
        let mut escaped = false;
        for (i, c) in prev.char_indices() {
            match c {
                '\\' if open.is_some() => escaped = !escaped,
                '"' if !escaped => open = if open.is_some() { None } else { Some(i) },
                '#' if open.is_none() => break,
                _ => escaped = false,
            }
            if c != '\\' {
                escaped = false;
            }
        }
        if let Some(i) = open {
            let at = prev_start + i;
            return (
                at..at + 1,
                "this string is not closed: a `\"` is missing".into(),
            );
        }
    }
    (span, message.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locate_counts_lines_and_characters() {
        let text = "a = 1\n名前 = \"x\"\n";
        let src = Source {
            file: Path::new("f.toml"),
            text,
        };
        let at = src.locate(&(text.find("\"x\"").unwrap()..0));
        assert_eq!((at.line, at.column), (2, 6));
        assert_eq!(at.snippet, "名前 = \"x\"");
        // A span inside a multi-byte character does not panic.
        let _ = src.locate(&(7..8));
    }

    #[test]
    fn suggestions_pick_the_nearest_name() {
        assert_eq!(
            suggest("timeuot", ["timeout", "next"].into_iter()),
            " (did you mean \"timeout\"?)"
        );
        assert_eq!(suggest("zzzzzz", ["next"].into_iter()), "");
    }
}
