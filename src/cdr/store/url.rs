//! Database URLs: which backend, the form sqlx is given (SQLite files created if missing),
//! and the form that may be logged (no password).

use super::*;

pub(super) struct Target {
    pub(super) backend: Backend,
    /// What sqlx is given; never logged, it may hold a password.
    pub(super) url: String,
}

pub(super) fn parse_target(url: &str) -> Result<Target, CdrError> {
    let bad = |reason: &str| CdrError::BadUrl {
        url: redact_url(url),
        reason: reason.to_owned(),
    };
    let url = url.trim();
    if url.is_empty() {
        return Err(bad("it is empty"));
    }
    let lower = url.to_ascii_lowercase();
    if lower.starts_with("postgres://") || lower.starts_with("postgresql://") {
        return Ok(Target {
            backend: Backend::Postgres,
            url: url.to_owned(),
        });
    }
    if lower.starts_with("sqlite:") {
        let rest = if lower.starts_with("sqlite://") {
            &url["sqlite://".len()..]
        } else {
            &url["sqlite:".len()..]
        };
        let (path, query) = rest.split_once('?').unwrap_or((rest, ""));
        if path.is_empty() {
            return Err(bad("it names no database file"));
        }
        // Already URL syntax: the caller is responsible for its percent-encoding.
        return Ok(Target {
            backend: Backend::Sqlite,
            url: sqlite_url(path, query),
        });
    }
    if let Some((scheme, _)) = url.split_once("://")
        && !scheme.is_empty()
        && scheme
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'))
    {
        return Err(bad(
            "unsupported scheme; use sqlite:PATH, postgres://... or a plain file path",
        ));
    }
    Ok(Target {
        backend: Backend::Sqlite,
        url: sqlite_url(&percent_encode_path(url), ""),
    })
}

/// Builds the form that survives sqlx's round trip through `Url` (which would read the first
/// segment of `sqlite://dir/file` as a host) and defaults to creating the file.
pub(super) fn sqlite_url(path: &str, query: &str) -> String {
    // "//x" would become a URL authority; on POSIX it means "/x" anyway.
    let path = if path.starts_with("//") {
        format!("/{}", path.trim_start_matches('/'))
    } else {
        path.to_owned()
    };
    let has_mode = query
        .split('&')
        .any(|pair| pair.split('=').next() == Some("mode"));
    let mut url = format!("sqlite:{path}");
    let mut params: Vec<&str> = query.split('&').filter(|p| !p.is_empty()).collect();
    if !has_mode {
        params.push("mode=rwc");
    }
    url.push('?');
    url.push_str(&params.join("&"));
    url
}

/// Only the characters that would otherwise be read as URL syntax or be decoded by sqlx.
pub(super) fn percent_encode_path(path: &str) -> String {
    let mut out = String::with_capacity(path.len());
    for c in path.chars() {
        match c {
            '%' | '?' | '#' | ' ' => out.push_str(&format!("%{:02X}", c as u32)),
            c if c.is_ascii_control() => out.push_str(&format!("%{:02X}", c as u32)),
            c => out.push(c),
        }
    }
    out
}

/// Masks the password in `scheme://user:password@host` and in `password=` / `sslpassword=`
/// query parameters, for log lines and error messages.
pub fn redact_url(url: &str) -> String {
    let (before_query, query) = match url.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (url, None),
    };
    let mut out = String::with_capacity(url.len());
    match before_query.split_once("://") {
        // The last '@' ends the user info even if an unescaped '/' or '@' sits in the password:
        // masking a little too much is harmless, leaking part of a password is not.
        Some((scheme, rest)) => match rest.rsplit_once('@') {
            Some((userinfo, host_and_path)) => {
                out.push_str(scheme);
                out.push_str("://");
                match userinfo.split_once(':') {
                    Some((user, _password)) => {
                        out.push_str(user);
                        out.push_str(":***");
                    }
                    None => out.push_str(userinfo),
                }
                out.push('@');
                out.push_str(host_and_path);
            }
            None => out.push_str(before_query),
        },
        None => out.push_str(before_query),
    }
    if let Some(query) = query {
        out.push('?');
        let pairs: Vec<String> = query
            .split('&')
            .map(|pair| match pair.split_once('=') {
                Some((key, _))
                    if key.eq_ignore_ascii_case("password")
                        || key.eq_ignore_ascii_case("sslpassword") =>
                {
                    format!("{key}=***")
                }
                _ => pair.to_owned(),
            })
            .collect();
        out.push_str(&pairs.join("&"));
    }
    out
}
