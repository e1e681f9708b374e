//! Header values the UA reads: Refer-To with its Replaces (RFC 3515, RFC 3891) and the DTMF
//! bodies of INFO (RFC 2976).

use super::*;

/// A Refer-To value: the target URI (without its `?headers`) and a Replaces header in it.
pub fn parse_refer_to(value: &str) -> Option<(String, Option<Replaces>)> {
    if value.len() > 2048 {
        return None;
    }
    let uri = match (value.find('<'), value.rfind('>')) {
        (Some(open), Some(close)) if open < close => &value[open + 1..close],
        (None, None) => value.split(';').next()?,
        _ => return None,
    };
    let uri = uri.trim();
    let (target, headers) = match uri.split_once('?') {
        Some((t, h)) => (t, Some(h)),
        None => (uri, None),
    };
    // RFC 3966 tel: URIs name numbers (a phone's transfer key often sends them); the
    // parser behind us knows only sip: and sips:.
    let scheme = target.split_once(':')?.0.to_ascii_lowercase();
    match scheme.as_str() {
        "tel" => {}
        "sip" | "sips" => {
            rsip::Uri::try_from(target).ok()?;
        }
        _ => return None,
    }
    let replaces = headers.and_then(|h| {
        h.split('&').find_map(|kv| {
            let (k, v) = kv.split_once('=')?;
            k.eq_ignore_ascii_case("Replaces")
                .then(|| parse_replaces(&percent_decode(v)))?
        })
    });
    Some((target.to_string(), replaces))
}

/// RFC 3891: `call-id;to-tag=…;from-tag=…` (other parameters ignored).
pub fn parse_replaces(value: &str) -> Option<Replaces> {
    let mut parts = value.split(';');
    let call_id = parts.next()?.trim().to_string();
    let (mut to_tag, mut from_tag) = (None, None);
    for p in parts {
        let Some((k, v)) = p.split_once('=') else {
            continue;
        };
        match k.trim().to_ascii_lowercase().as_str() {
            "to-tag" => to_tag = Some(v.trim().to_string()),
            "from-tag" => from_tag = Some(v.trim().to_string()),
            _ => {}
        }
    }
    (!call_id.is_empty()).then_some(())?;
    Some(Replaces {
        call_id,
        to_tag: to_tag?,
        from_tag: from_tag?,
    })
}

pub(super) fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && let Some(b) = s
                .get(i + 1..i + 3)
                .and_then(|h| u8::from_str_radix(h, 16).ok())
        {
            out.push(b);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// RFC 2976 INFO carrying DTMF: application/dtmf-relay ("Signal=5") or application/dtmf ("5").
/// Ok(None) for an empty INFO (a keep-alive some phones send); Err(415) for other bodies.
pub(super) fn parse_dtmf_info(req: &Request) -> Result<Option<char>, u16> {
    if req.body.is_empty() {
        return Ok(None);
    }
    let body = String::from_utf8_lossy(&req.body);
    let content_type = req.content_type().unwrap_or_default();
    let value = match content_type.split(';').next().map(str::trim) {
        Some("application/dtmf-relay") => body.lines().find_map(|line| {
            let (k, v) = line.split_once('=')?;
            k.trim()
                .eq_ignore_ascii_case("signal")
                .then(|| v.trim().to_string())
        }),
        Some("application/dtmf") => Some(body.trim().to_string()),
        _ => return Err(415),
    };
    let digit = value.and_then(|v| match v.as_str() {
        "10" => Some('*'),
        "11" => Some('#'),
        v if v.len() == 1 => v
            .chars()
            .next()
            .filter(|c| c.is_ascii_digit() || "*#ABCDabcd".contains(*c))
            .map(|c| c.to_ascii_uppercase()),
        _ => None,
    });
    digit.map(Some).ok_or(400)
}
