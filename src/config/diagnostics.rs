//! Saying where a configuration file is wrong: the key path and line of a TOML error, and
//! serde's messages in plain words.

use super::*;

/// A file the types refuse: the position, the dotted key it is about when the span points
/// at one, and serde's wording with Rust type names put in words an admin knows.
pub(super) fn syntax_error(path: &Path, text: &str, e: &toml::de::Error) -> ConfigError {
    let span = e.span();
    let at = span.as_ref().map_or(0, |s| s.start).min(text.len());
    let line = text[..at].matches('\n').count() + 1;
    let column = at - text[..at].rfind('\n').map_or(0, |i| i + 1) + 1;
    let message = plain_expected(e.message());
    let message = match span.and_then(|s| key_at(text, &s)) {
        Some(key) => format!("{key}: {message}"),
        None => message,
    };
    ConfigError::Syntax {
        path: path.to_path_buf(),
        line,
        column,
        message,
    }
}

/// The dotted key whose name or value `span` lies in, the deepest one when tables nest.
/// serde's errors carry only a span; the spanned document maps it back to a key. Table values
/// are spanned by their `[header]` only, so every entry is visited, not just enclosing ones.
pub(super) fn key_at(text: &str, span: &Range<usize>) -> Option<String> {
    #[derive(Default)]
    struct Found {
        /// Depth and key of the deepest entry the span points into.
        hit: Option<(usize, String)>,
        /// Start and path of the last `[header]` before the span: the table in force there.
        header: Option<(usize, String)>,
    }
    fn walk<'a>(
        text: &str,
        table: &'a DeTable<'a>,
        path: &mut Vec<&'a str>,
        span: &Range<usize>,
        found: &mut Found,
    ) {
        for (key, value) in table.iter() {
            path.push(key.get_ref());
            let v = value.span();
            let dotted = || {
                let keys: Vec<String> = path.iter().map(|k| quote_key(k)).collect();
                keys.join(".")
            };
            let hit =
                key.span().contains(&span.start) || (v.start <= span.start && span.end <= v.end);
            if hit
                && found
                    .hit
                    .as_ref()
                    .is_none_or(|(depth, _)| path.len() > *depth)
            {
                found.hit = Some((path.len(), dotted()));
            }
            let is_header = text.get(v.start..).is_some_and(|t| t.starts_with('['));
            if matches!(value.get_ref(), DeValue::Table(_))
                && is_header
                && v.start <= span.start
                && found.header.as_ref().is_none_or(|(at, _)| v.start > *at)
            {
                found.header = Some((v.start, dotted()));
            }
            match value.get_ref() {
                DeValue::Table(t) => walk(text, t, path, span, found),
                DeValue::Array(items) => {
                    for item in items.iter() {
                        if let DeValue::Table(t) = item.get_ref() {
                            walk(text, t, path, span, found);
                        }
                    }
                }
                _ => {}
            }
            path.pop();
        }
    }
    // Recoverable, so a key is found even where the document itself is malformed further on.
    let (doc, _) = DeTable::parse_recoverable(text);
    let mut found = Found::default();
    walk(text, doc.get_ref(), &mut Vec::new(), span, &mut found);
    if let Some((_, key)) = found.hit {
        return Some(key);
    }
    // A key the document does not hold (a duplicate is dropped from it): name it from the
    // text under the span, in the table in force there.
    let written = text.get(span.clone())?.trim();
    let plausible = !written.is_empty()
        && written
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'));
    if !plausible {
        return None;
    }
    Some(match found.header {
        Some((_, table)) => format!("{table}.{written}"),
        None => written.to_string(),
    })
}

pub(super) fn quote_key(key: &str) -> String {
    let bare = !key.is_empty()
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    if bare {
        key.to_string()
    } else {
        format!("{key:?}")
    }
}

/// serde names the Rust type it wanted ("expected u32", "expected struct SipSection"); the
/// admin wrote TOML, so say what to write instead.
pub(super) fn plain_expected(message: &str) -> String {
    let Some((what, expected)) = message.rsplit_once(", expected ") else {
        return message.to_string();
    };
    let plain = match expected {
        "u16" | "u32" | "u64" | "usize" => "a whole number",
        "path string" => "a string",
        e if e.starts_with("struct ") => "a table",
        _ => return message.to_string(),
    };
    format!("{what}, expected {plain}")
}
