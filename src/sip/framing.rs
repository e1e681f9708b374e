//! The tolerant front door for SIP bytes. rsip's tokenizer is strict where RFC 3261 is lenient
//! (folded header lines, compact header names, LF-only line ends, comma-joined Via values), and it
//! does not enforce Content-Length. This layer checks sizes and the body length, and rewrites the
//! head into the one canonical shape rsip accepts, so every valid form reaches the parser.

use thiserror::Error;

/// Beyond this a datagram or a stream message is refused: no legitimate signalling needs it,
/// and a cap keeps a hostile peer from making us buffer without end.
pub const MAX_MESSAGE: usize = 64 * 1024;
/// A single header line (after unfolding) longer than this is refused.
pub const MAX_HEADER_LINE: usize = 8 * 1024;
pub const MAX_HEADERS: usize = 128;

#[derive(Debug, Error, PartialEq, Eq)]
pub enum FramingError {
    #[error("message is {0} bytes, more than the {MAX_MESSAGE}-byte limit")]
    TooLarge(usize),
    #[error("message has no end of headers")]
    NoHeaderEnd,
    #[error("a header line is longer than {MAX_HEADER_LINE} bytes")]
    HeaderTooLong,
    #[error("more than {MAX_HEADERS} header lines")]
    TooManyHeaders,
    #[error("header line without a colon: {0:?}")]
    BadHeaderLine(String),
    #[error("Content-Length {declared} but {available} bytes of body")]
    ShortBody { declared: usize, available: usize },
    #[error("Content-Length is not a number: {0:?}")]
    BadContentLength(String),
    #[error("{0} appears more than once")]
    Duplicate(&'static str),
    #[error("{0} has an unterminated quoted string")]
    Unterminated(&'static str),
    #[error("{0} has a display name that is neither a token nor quoted")]
    BadDisplayName(&'static str),
    #[error("Via has an empty value or parameter")]
    EmptyViaPart,
    #[error("message head is not UTF-8")]
    NotUtf8,
    #[error("empty message")]
    Empty,
}

/// A message rewritten into canonical form: CRLF line ends, one header per line, full header
/// names, the body cut to Content-Length, and a Content-Length header that matches it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Framed {
    pub bytes: Vec<u8>,
}

/// Keep-alive pings (RFC 5626 §3.5.1: CRLF or CRLFCRLF) are not messages.
pub fn is_keepalive(data: &[u8]) -> bool {
    !data.is_empty() && data.iter().all(|b| *b == b'\r' || *b == b'\n')
}

/// The start line of a request or response, for replying when rsip rejects a message.
pub fn start_line(data: &[u8]) -> Option<&str> {
    let end = data.iter().position(|b| *b == b'\n').unwrap_or(data.len());
    std::str::from_utf8(&data[..end])
        .ok()
        .map(|s| s.trim_end_matches('\r'))
}

/// For streams (TCP): how many bytes the first complete message occupies, if it is all there.
/// Leading CRLFs (keep-alives) count as a message of their own.
pub fn stream_message_len(buf: &[u8]) -> Result<Option<usize>, FramingError> {
    let lead = buf
        .iter()
        .take_while(|b| **b == b'\r' || **b == b'\n')
        .count();
    if lead > 0 {
        return Ok(Some(lead));
    }
    let Some((head_end, body_start)) = find_head_end(buf) else {
        if buf.len() > MAX_MESSAGE {
            return Err(FramingError::TooLarge(buf.len()));
        }
        return Ok(None);
    };
    let head = std::str::from_utf8(&buf[..head_end]).map_err(|_| FramingError::NotUtf8)?;
    // On a stream Content-Length is mandatory (RFC 3261 §18.3); absent means no body.
    let declared = content_length_of(head)?.unwrap_or(0);
    let total = body_start
        .checked_add(declared)
        .filter(|t| *t <= MAX_MESSAGE)
        .ok_or(FramingError::TooLarge(declared))?;
    Ok((buf.len() >= total).then_some(total))
}

/// Frame one datagram (or one message cut from a stream by `stream_message_len`).
pub fn frame(data: &[u8]) -> Result<Framed, FramingError> {
    if data.len() > MAX_MESSAGE {
        return Err(FramingError::TooLarge(data.len()));
    }
    let start = data
        .iter()
        .take_while(|b| **b == b'\r' || **b == b'\n')
        .count();
    let data = &data[start..];
    if data.is_empty() {
        return Err(FramingError::Empty);
    }
    let (head_end, body_start) = match find_head_end(data) {
        Some(found) => found,
        // A datagram whose head ends with a single line break and no body is still complete.
        None if data.ends_with(b"\n") => (data.len(), data.len()),
        None => return Err(FramingError::NoHeaderEnd),
    };
    let head = std::str::from_utf8(&data[..head_end]).map_err(|_| FramingError::NotUtf8)?;
    let available = data.len() - body_start;
    // RFC 3261 §18.3: on UDP a missing Content-Length means the body runs to the end of the
    // datagram; bytes beyond a declared length are discarded; fewer bytes than declared is an
    // error (the datagram was truncated).
    let body_len = match content_length_of(head)? {
        Some(declared) if declared > available => {
            return Err(FramingError::ShortBody {
                declared,
                available,
            });
        }
        Some(declared) => declared,
        None => available,
    };
    let body = &data[body_start..body_start + body_len];

    let mut out = Vec::with_capacity(head.len() + body.len() + 64);
    let mut lines = unfold(head)?;
    if lines.is_empty() {
        return Err(FramingError::Empty);
    }
    let start_line = lines.remove(0);
    out.extend_from_slice(escape_user_semicolons(start_line.trim_end()).as_bytes());
    out.extend_from_slice(b"\r\n");
    if lines.len() > MAX_HEADERS {
        return Err(FramingError::TooManyHeaders);
    }
    let mut seen = [false; SINGLE.len()];
    for line in &lines {
        let (name, value) = line
            .split_once(':')
            .ok_or_else(|| FramingError::BadHeaderLine(truncate_for_log(line)))?;
        let name = expand_compact(name.trim());
        if name.is_empty() || name.contains(char::is_whitespace) {
            return Err(FramingError::BadHeaderLine(truncate_for_log(line)));
        }
        // RFC 3261 §7.3.1: these may appear once; two of them leave no way to tell which one
        // the sender meant (RFC 4475 §3.3.8, §3.3.9 want a 400).
        if let Some(i) = SINGLE.iter().position(|s| s.eq_ignore_ascii_case(name)) {
            if seen[i] {
                return Err(FramingError::Duplicate(SINGLE[i]));
            }
            seen[i] = true;
        }
        if name.eq_ignore_ascii_case("Content-Length") {
            continue;
        }
        let value = value.trim();
        if name.eq_ignore_ascii_case("Via") {
            for part in split_top_level_commas(value) {
                let part = tidy(part, true).ok_or(FramingError::Unterminated("Via"))?;
                if part.split(';').any(|p| p.trim().is_empty()) {
                    return Err(FramingError::EmptyViaPart);
                }
                push_header(&mut out, "Via", &part);
            }
        } else if let Some(&known) = ADDRESS.iter().find(|a| a.eq_ignore_ascii_case(name)) {
            let value = tidy(value, false).ok_or(FramingError::Unterminated(known))?;
            if matches!(known, "To" | "From" | "Contact") && !display_name_ok(&value) {
                return Err(FramingError::BadDisplayName(known));
            }
            push_header(&mut out, name, &value);
        } else {
            push_header(&mut out, name, value);
        }
    }
    push_header(&mut out, "Content-Length", &body.len().to_string());
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(body);
    Ok(Framed { bytes: out })
}

fn push_header(out: &mut Vec<u8>, name: &str, value: &str) {
    out.extend_from_slice(name.as_bytes());
    out.extend_from_slice(b": ");
    out.extend_from_slice(value.as_bytes());
    out.extend_from_slice(b"\r\n");
}

/// Where the head ends and where the body begins, accepting CRLFCRLF or LFLF.
fn find_head_end(data: &[u8]) -> Option<(usize, usize)> {
    let mut i = 0;
    while i < data.len() {
        if data[i] == b'\n' {
            if data.get(i + 1) == Some(&b'\n') {
                return Some((i + 1, i + 2));
            }
            if data.get(i + 1) == Some(&b'\r') && data.get(i + 2) == Some(&b'\n') {
                return Some((i + 1, i + 3));
            }
        }
        i += 1;
    }
    None
}

/// Split the head into logical lines: a line starting with space or tab continues the previous
/// one (RFC 3261 §7.3.1), and is joined with a single space.
fn unfold(head: &str) -> Result<Vec<String>, FramingError> {
    let mut lines: Vec<String> = Vec::new();
    for raw in head.split('\n') {
        let raw = raw.strip_suffix('\r').unwrap_or(raw);
        if raw.is_empty() {
            continue;
        }
        if raw.starts_with([' ', '\t']) {
            let continues_header = lines.len() > 1;
            if let Some(last) = lines.last_mut().filter(|_| continues_header) {
                last.push(' ');
                last.push_str(raw.trim());
                if last.len() > MAX_HEADER_LINE {
                    return Err(FramingError::HeaderTooLong);
                }
                continue;
            }
            return Err(FramingError::BadHeaderLine(truncate_for_log(raw)));
        }
        if raw.len() > MAX_HEADER_LINE {
            return Err(FramingError::HeaderTooLong);
        }
        lines.push(raw.to_string());
        if lines.len() > MAX_HEADERS + 1 {
            return Err(FramingError::TooManyHeaders);
        }
    }
    Ok(lines)
}

fn content_length_of(head: &str) -> Result<Option<usize>, FramingError> {
    let mut found = None;
    for line in head.split('\n') {
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        let name = name.trim();
        if name.eq_ignore_ascii_case("Content-Length") || name.eq_ignore_ascii_case("l") {
            // Two lengths make the body's end unknowable, on a stream the next message's
            // start too (RFC 4475 §3.3.9).
            if found.is_some() {
                return Err(FramingError::Duplicate("Content-Length"));
            }
            let value = value.trim();
            found = Some(
                value
                    .parse::<usize>()
                    .map_err(|_| FramingError::BadContentLength(truncate_for_log(value)))?,
            );
        }
    }
    Ok(found)
}

/// Headers RFC 3261 allows once (by full name; compact forms are expanded first).
const SINGLE: &[&str] = &[
    "To",
    "From",
    "Call-ID",
    "CSeq",
    "Max-Forwards",
    "Content-Length",
    "Content-Type",
];

/// Headers whose values are name-addr or addr-spec with parameters, and so get `tidy`.
const ADDRESS: &[&str] = &[
    "To",
    "From",
    "Contact",
    "Route",
    "Record-Route",
    "Reply-To",
    "Refer-To",
    "Referred-By",
];

/// RFC 3261 §25.1 allows linear whitespace around `;`, `=` (and in Via around `/`), which
/// rsip does not: drop it there and collapse other runs to one space, leaving quoted strings
/// and `<...>` alone. None if a quoted string is not closed (RFC 4475 §3.1.2.6).
fn tidy(value: &str, via: bool) -> Option<String> {
    let mut out = String::with_capacity(value.len());
    let (mut quoted, mut escaped, mut angle, mut space) = (false, false, false, false);
    for c in value.chars() {
        if quoted {
            out.push(c);
            match c {
                _ if escaped => escaped = false,
                '\\' => escaped = true,
                '"' => quoted = false,
                _ => {}
            }
            continue;
        }
        if angle {
            out.push(c);
            angle = c != '>';
            continue;
        }
        let tight = c == ';' || c == '=' || (via && c == '/');
        if c == ' ' || c == '\t' {
            space = true;
            continue;
        }
        let last_tight = out
            .chars()
            .last()
            .is_some_and(|l| l == ';' || l == '=' || (via && l == '/'));
        if space && !tight && !last_tight && !out.is_empty() {
            out.push(' ');
        }
        space = false;
        out.push(c);
        quoted = c == '"';
        angle = c == '<';
    }
    (!quoted).then_some(out)
}

/// RFC 3261 §25.1: a display name is a quoted string or tokens separated by whitespace
/// (RFC 4475 §3.1.2.15: `Bell, Alexander <sip:...>` is neither).
fn display_name_ok(value: &str) -> bool {
    if value.starts_with('"') {
        return true;
    }
    let Some(lt) = value.find('<') else {
        return true;
    };
    // Non-ASCII is let through: phones that send an unquoted UTF-8 name mean no harm, and
    // the check is for separators that change how the header splits.
    value[..lt]
        .chars()
        .all(|c| c.is_alphanumeric() || c == ' ' || c == '\t' || "-.!%*_+`'~".contains(c))
}

/// RFC 3261 §19.1.1 lets a user part hold `;` (RFC 4475 §3.1.1.9), which rsip's tokenizer
/// takes for the start of URI parameters. Escaped it means the same (§19.1.4 compares user
/// parts unescaped), so the Request-URI's user part gets `%3B`.
fn escape_user_semicolons(start_line: &str) -> std::borrow::Cow<'_, str> {
    let mut parts = start_line.splitn(3, ' ');
    let (Some(method), Some(uri), Some(rest)) = (parts.next(), parts.next(), parts.next()) else {
        return start_line.into();
    };
    let Some((scheme, tail)) = uri.split_once(':') else {
        return start_line.into();
    };
    let Some(at) = tail.find('@') else {
        return start_line.into();
    };
    if method.starts_with("SIP/") || !tail[..at].contains(';') {
        return start_line.into();
    }
    let user = tail[..at].replace(';', "%3B");
    format!("{method} {scheme}:{user}{} {rest}", &tail[at..]).into()
}

/// RFC 3261 §7.3.3 compact forms, plus the common ones from later RFCs.
fn expand_compact(name: &str) -> &str {
    if name.len() != 1 {
        return name;
    }
    match name.as_bytes()[0].to_ascii_lowercase() {
        b'i' => "Call-ID",
        b'm' => "Contact",
        b'e' => "Content-Encoding",
        b'l' => "Content-Length",
        b'c' => "Content-Type",
        b'f' => "From",
        b's' => "Subject",
        b'k' => "Supported",
        b't' => "To",
        b'v' => "Via",
        b'o' => "Event",
        b'r' => "Refer-To",
        b'u' => "Allow-Events",
        _ => name,
    }
}

/// Split a header value at commas that are not inside quotes or angle brackets.
fn split_top_level_commas(value: &str) -> impl Iterator<Item = &str> {
    let mut parts = Vec::new();
    let (mut quoted, mut angle, mut start) = (false, false, 0);
    let bytes = value.as_bytes();
    for (i, b) in bytes.iter().enumerate() {
        match b {
            b'"' => quoted = !quoted,
            b'<' if !quoted => angle = true,
            b'>' if !quoted => angle = false,
            b',' if !quoted && !angle => {
                parts.push(value[start..i].trim());
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(value[start..].trim());
    parts.into_iter().filter(|p| !p.is_empty())
}

fn truncate_for_log(s: &str) -> String {
    s.chars().take(80).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(f: Framed) -> String {
        String::from_utf8(f.bytes).unwrap()
    }

    #[test]
    fn folded_compact_and_lf_only_become_canonical() {
        let raw = "OPTIONS sip:100@h SIP/2.0\nv: SIP/2.0/UDP a;branch=z9hG4bK1,\n SIP/2.0/UDP b;branch=z9hG4bK2\ni: x@y\nSubject: I know you're there,\n\tpick up the phone\nl: 0\n\n";
        let out = text(frame(raw.as_bytes()).unwrap());
        assert!(out.starts_with("OPTIONS sip:100@h SIP/2.0\r\n"));
        assert!(out.contains(
            "Via: SIP/2.0/UDP a;branch=z9hG4bK1\r\nVia: SIP/2.0/UDP b;branch=z9hG4bK2\r\n"
        ));
        assert!(out.contains("Call-ID: x@y\r\n"));
        assert!(out.contains("Subject: I know you're there, pick up the phone\r\n"));
        assert!(out.ends_with("Content-Length: 0\r\n\r\n"));
    }

    #[test]
    fn body_is_cut_to_content_length_and_short_body_is_refused() {
        let raw = b"MESSAGE sip:a SIP/2.0\r\nContent-Length: 3\r\n\r\nabcdef";
        assert!(text(frame(raw).unwrap()).ends_with("\r\n\r\nabc"));
        let short = b"MESSAGE sip:a SIP/2.0\r\nContent-Length: 30\r\n\r\nabc";
        assert_eq!(
            frame(short),
            Err(FramingError::ShortBody {
                declared: 30,
                available: 3
            })
        );
        let bad = b"MESSAGE sip:a SIP/2.0\r\nContent-Length: x\r\n\r\n";
        assert!(matches!(frame(bad), Err(FramingError::BadContentLength(_))));
    }

    #[test]
    fn missing_content_length_on_udp_takes_the_rest() {
        let raw = b"INFO sip:a SIP/2.0\r\nCall-ID: 1\r\n\r\nSignal=5\r\n";
        assert!(text(frame(raw).unwrap()).ends_with("Content-Length: 10\r\n\r\nSignal=5\r\n"));
    }

    #[test]
    fn limits_and_garbage() {
        assert_eq!(
            frame(&vec![b'a'; MAX_MESSAGE + 1]),
            Err(FramingError::TooLarge(MAX_MESSAGE + 1))
        );
        let long = format!(
            "X sip:a SIP/2.0\r\nSubject: {}\r\n\r\n",
            "a".repeat(MAX_HEADER_LINE)
        );
        assert_eq!(frame(long.as_bytes()), Err(FramingError::HeaderTooLong));
        assert!(frame(b"garbage").is_err());
        assert!(frame(b"X sip:a SIP/2.0\r\nno colon here\r\n\r\n").is_err());
        assert!(is_keepalive(b"\r\n\r\n"));
        assert_eq!(frame(b"\r\n"), Err(FramingError::Empty));
    }

    #[test]
    fn whitespace_around_separators_is_dropped() {
        assert_eq!(
            tidy("SIP / 2.0 / UDP  host ; branch = z9hG4bK1", true).unwrap(),
            "SIP/2.0/UDP host;branch=z9hG4bK1"
        );
        assert_eq!(
            tidy(r#""J \\\"R\"" <sip:a@b> ;  tag = 9"#, false).unwrap(),
            r#""J \\\"R\"" <sip:a@b>;tag=9"#
        );
        assert_eq!(
            tidy("<sip:a@b> , <sip:c@d>", false).unwrap(),
            "<sip:a@b> , <sip:c@d>"
        );
        assert_eq!(tidy(r#""Mr. J. User <sip:j@b>"#, false), None);
    }

    #[test]
    fn display_names() {
        assert!(display_name_ok("caller<sip:a@b>"));
        assert!(display_name_ok("A. Bell <sip:a@b>"));
        assert!(display_name_ok(r#""Bell, Alexander" <sip:a@b>"#));
        assert!(display_name_ok("sip:a@b;tag=1"));
        assert!(!display_name_ok("Bell, Alexander <sip:a@b>"));
    }

    #[test]
    fn singletons_twice_and_empty_via_parts_are_refused() {
        let two_cl = b"OPTIONS sip:a SIP/2.0\r\nContent-Length: 0\r\nl: 0\r\n\r\n";
        assert_eq!(
            frame(two_cl),
            Err(FramingError::Duplicate("Content-Length"))
        );
        assert!(matches!(
            stream_message_len(two_cl),
            Err(FramingError::Duplicate(_))
        ));
        let two_to = b"OPTIONS sip:a SIP/2.0\r\nTo: <sip:a>\r\nt: <sip:b>\r\n\r\n";
        assert_eq!(frame(two_to), Err(FramingError::Duplicate("To")));
        let empty = b"OPTIONS sip:a SIP/2.0\r\nVia: SIP/2.0/UDP h;;,;\r\n\r\n";
        assert_eq!(frame(empty), Err(FramingError::EmptyViaPart));
    }

    #[test]
    fn semicolons_in_the_request_uri_user_are_escaped() {
        assert_eq!(
            escape_user_semicolons("OPTIONS sip:user;par=u%40e.net@example.com SIP/2.0"),
            "OPTIONS sip:user%3Bpar=u%40e.net@example.com SIP/2.0"
        );
        let plain = "INVITE sip:100@h;transport=udp SIP/2.0";
        assert_eq!(escape_user_semicolons(plain), plain);
    }

    #[test]
    fn stream_lengths() {
        let msg = b"BYE sip:a SIP/2.0\r\nContent-Length: 2\r\n\r\nhi";
        assert_eq!(stream_message_len(&msg[..10]), Ok(None));
        assert_eq!(stream_message_len(&msg[..msg.len() - 1]), Ok(None));
        assert_eq!(stream_message_len(msg), Ok(Some(msg.len())));
        assert_eq!(stream_message_len(b"\r\n\r\nBYE"), Ok(Some(4)));
        let huge = b"OPTIONS sip:a SIP/2.0\r\nContent-Length: 18446744073709551553\r\n\r\n";
        assert!(
            matches!(stream_message_len(huge), Err(FramingError::TooLarge(_))),
            "no overflow to a zero length"
        );
    }

    #[test]
    fn never_panics_on_random_bytes() {
        let mut rng = fastrand::Rng::with_seed(7);
        let seed = b"INVITE sip:100@h SIP/2.0\r\nVia: SIP/2.0/UDP a;branch=z9hG4bK1\r\nl: 4\r\n\r\nv=0\r\n";
        for _ in 0..20_000 {
            let mut data = seed.to_vec();
            for _ in 0..rng.usize(1..8) {
                let i = rng.usize(..data.len());
                match rng.u8(..3) {
                    0 => data[i] = rng.u8(..),
                    1 => {
                        data.remove(i);
                    }
                    _ => data.insert(i, rng.u8(..)),
                }
            }
            let _ = frame(&data);
            let _ = stream_message_len(&data);
        }
    }
}
