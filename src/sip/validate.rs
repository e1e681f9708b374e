//! RFC 3261 §8.2 request checks a UAS makes before acting on a request, in two layers:
//!
//! - `request_line`: the start line, checked before anything is parsed, because what it gets
//!   wrong (a version we don't speak, a URI scheme we can't route) is answered with its own
//!   code (505, 416) and rsip would only report a generic parse failure for it;
//! - `check_request`: a parsed request, checked by the UA core before it sets up anything:
//!   a merged request (482, §8.2.2.2), an unknown `Require` (420, §8.2.2.3), a body we cannot
//!   read (415, §8.2.3) or an `Accept` that rules out the SDP we would answer with (406).
//!
//! RFC 4475 exercises each of these (badvers, unkscm, novelsc, bext01, invut, sdp01).

use thiserror::Error;

use super::message::{MessageExt, Method, Request, ResponseSpec};

/// Request-URI schemes we can act on. `tel` arrives from gateways and in Refer-To.
const SCHEMES: &[&str] = &["sip", "sips", "tel"];

/// Option tags (RFC 3261 §19.2) we implement, for `Require`: Replaces (RFC 3891) is read on
/// INVITE for attended transfer.
pub const SUPPORTED: &[&str] = &["replaces"];

/// Body types an INVITE may carry: the SDP offer.
pub const INVITE_ACCEPT: &str = "application/sdp";

#[derive(Debug, Error, PartialEq, Eq)]
pub enum RequestLineError {
    #[error("request line is not Method SP Request-URI SP SIP-Version")]
    Malformed,
    #[error("SIP version {0:?} is not SIP/2.0")]
    Version(String),
    #[error("Request-URI scheme {0:?} is not supported")]
    Scheme(String),
}

impl RequestLineError {
    pub fn status(&self) -> u16 {
        match self {
            RequestLineError::Malformed => 400,
            RequestLineError::Version(_) => 505,
            RequestLineError::Scheme(_) => 416,
        }
    }
}

/// Check a request's start line (a response's is left alone). `line` is the first line
/// without its line end; trailing whitespace is tolerated (RFC 4475 §3.1.2.10 lets an
/// element be liberal there), runs of spaces inside are not.
pub fn request_line(line: &str) -> Result<(), RequestLineError> {
    if line.starts_with("SIP/") {
        return Ok(());
    }
    let mut parts = line.trim_end().split(' ');
    let (Some(method), Some(uri), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(RequestLineError::Malformed);
    };
    if method.is_empty() || uri.is_empty() {
        return Err(RequestLineError::Malformed);
    }
    let scheme = uri.split_once(':').map(|(s, _)| s).unwrap_or("");
    let scheme_ok = scheme.starts_with(|c: char| c.is_ascii_alphabetic())
        && scheme
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"+-.".contains(&b));
    if !scheme_ok {
        return Err(RequestLineError::Malformed);
    }
    // RFC 3261 §8.2.2.1 and §21.5.6: a version we don't speak gets 505, but only if it is a
    // SIP version at all; anything else is not a request line.
    if !version.eq_ignore_ascii_case("SIP/2.0") {
        // By bytes: the version may hold anything, and a slice inside a multi-byte
        // character would panic (found by fuzzing).
        let v = version.as_bytes();
        let is_version = v.len() > 4
            && v[..4].eq_ignore_ascii_case(b"SIP/")
            && v[4..].iter().all(|b| b.is_ascii_digit() || *b == b'.');
        return Err(if is_version {
            RequestLineError::Version(version.to_string())
        } else {
            RequestLineError::Malformed
        });
    }
    if !SCHEMES.iter().any(|s| s.eq_ignore_ascii_case(scheme)) {
        return Err(RequestLineError::Scheme(scheme.to_string()));
    }
    Ok(())
}

/// Why the UA core turns a parsed request away, and the response that says so.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum Rejection {
    #[error("merged request: already handling this From tag, Call-ID and CSeq")]
    Merged,
    #[error("unsupported extensions required: {0:?}")]
    BadExtension(Vec<String>),
    #[error("body of type {0:?} is not understood")]
    MediaType(String),
    #[error("Accept rules out application/sdp")]
    NotAcceptable,
}

impl Rejection {
    pub fn response(&self) -> ResponseSpec {
        match self {
            Rejection::Merged => ResponseSpec::new(482),
            // §8.2.2.3: list exactly the tags we did not understand.
            Rejection::BadExtension(tags) => {
                ResponseSpec::new(420).header("Unsupported", tags.join(", "))
            }
            // §21.4.13: a 415 says what we accept.
            Rejection::MediaType(_) => ResponseSpec::new(415).header("Accept", INVITE_ACCEPT),
            Rejection::NotAcceptable => ResponseSpec::new(406),
        }
    }
}

/// The §8.2 checks, in the RFC's order. `merged` is the transaction layer's finding (it owns
/// the table of requests in progress). ACK and CANCEL never reach here: §8.2.2.3 exempts them
/// from `Require`, and neither has a body we'd answer.
pub fn check_request(req: &Request, merged: bool) -> Result<(), Rejection> {
    if merged {
        return Err(Rejection::Merged);
    }
    let unknown: Vec<String> = req
        .header_values("Require")
        .iter()
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .filter(|t| !t.is_empty() && !SUPPORTED.iter().any(|s| s.eq_ignore_ascii_case(t)))
        .map(str::to_string)
        .collect();
    if !unknown.is_empty() {
        return Err(Rejection::BadExtension(unknown));
    }
    if req.method != Method::Invite {
        return Ok(());
    }
    // §8.2.3: a body we cannot process, unless its Content-Disposition says it is optional.
    if !req.body.is_empty() {
        let kind = req.content_type().unwrap_or_default();
        let media = kind.split(';').next().unwrap_or("").trim();
        let optional = req
            .header_values("Content-Disposition")
            .iter()
            .any(|d| d.to_ascii_lowercase().contains("handling=optional"));
        if media != INVITE_ACCEPT && !optional {
            return Err(Rejection::MediaType(media.to_string()));
        }
    }
    // §21.4.7: our 200 carries SDP; an Accept that excludes it cannot be satisfied. An Accept
    // header with no value (§20.1) means no body is acceptable at all.
    let accept = accept_values(req);
    if let Some(types) = accept
        && !types
            .iter()
            .any(|t| matches!(t.as_str(), "application/sdp" | "application/*" | "*/*"))
    {
        return Err(Rejection::NotAcceptable);
    }
    Ok(())
}

/// The media ranges of every Accept header, lower-cased and without parameters; None if
/// there is no Accept header.
fn accept_values(req: &Request) -> Option<Vec<String>> {
    let values = req.header_values("Accept");
    (!values.is_empty()).then(|| {
        values
            .iter()
            .flat_map(|v| v.split(','))
            .map(|t| {
                t.split(';')
                    .next()
                    .unwrap_or("")
                    .trim()
                    .to_ascii_lowercase()
            })
            .filter(|t| !t.is_empty())
            .collect()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_lines() {
        assert_eq!(request_line("INVITE sip:a@b SIP/2.0"), Ok(()));
        assert_eq!(request_line("OPTIONS sip:a@b SIP/2.0  "), Ok(()));
        assert_eq!(request_line("SIP/2.0 200 OK"), Ok(()));
        assert_eq!(request_line("INVITE tel:+123 SIP/2.0"), Ok(()));
        assert_eq!(
            request_line("OPTIONS sip:a SIP/7.0"),
            Err(RequestLineError::Version("SIP/7.0".into()))
        );
        assert_eq!(
            request_line("OPTIONS soap.beep://192.0.2.103:3002 SIP/2.0"),
            Err(RequestLineError::Scheme("soap.beep".into()))
        );
        assert_eq!(
            request_line("INVITE <sip:a@b> SIP/2.0"),
            Err(RequestLineError::Malformed)
        );
        assert_eq!(
            request_line("INVITE  sip:a@b  SIP/2.0"),
            Err(RequestLineError::Malformed)
        );
        assert_eq!(
            request_line("INVITE sip:a@b"),
            Err(RequestLineError::Malformed)
        );
        assert_eq!(request_line(""), Err(RequestLineError::Malformed));
        assert_eq!(
            request_line("X sip:a HTTP/1.1"),
            Err(RequestLineError::Malformed)
        );
    }
}
