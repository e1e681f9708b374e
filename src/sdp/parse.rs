//! Tolerant in what it skips (unknown lines and attributes, LF or CRLF, stray whitespace,
//! malformed attributes) and strict only where a mistake would send audio to the wrong place or
//! misread the stream list: `v=`, `o=`, `c=` and `m=`.

use std::net::IpAddr;
use std::str::FromStr;

use super::{Crypto, Direction, Format, MediaDescription, Origin, RtpMap, SessionDescription};
use crate::media::srtp::{MasterKey, Suite};

/// Why an SDP body cannot be used. Line numbers count from 1 over every line, blank ones too.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SdpError {
    #[error("SDP body is empty")]
    Empty,
    #[error("line {line}: SDP must begin with v=0")]
    MissingVersion { line: usize },
    #[error("line {line}: unsupported SDP version")]
    UnsupportedVersion { line: usize },
    #[error("line {line}: malformed o= line")]
    BadOrigin { line: usize },
    #[error("line {line}: c= line is not IN IP4/IP6 with an IP address")]
    BadConnection { line: usize },
    #[error("line {line}: malformed m= line")]
    BadMedia { line: usize },
    #[error("line {line}: audio stream has no connection address")]
    MissingConnection { line: usize },
}

impl SessionDescription {
    pub fn parse(text: &str) -> Result<SessionDescription, SdpError> {
        let mut lines = text
            .split('\n')
            .enumerate()
            .map(|(i, line)| (i + 1, line.trim()))
            .filter(|(_, line)| !line.is_empty());

        let Some((first_no, first)) = lines.next() else {
            return Err(SdpError::Empty);
        };
        match first.split_once('=') {
            Some(("v", version)) if version.trim() == "0" => {}
            Some(("v", _)) => return Err(SdpError::UnsupportedVersion { line: first_no }),
            _ => return Err(SdpError::MissingVersion { line: first_no }),
        }

        let mut sd = SessionDescription::default();
        let mut media_lines = Vec::new();
        let mut session_fingerprint = false;
        for (no, line) in lines {
            let Some((kind, value)) = line.split_once('=') else {
                continue;
            };
            let value = value.trim();
            if kind == "m" {
                sd.media
                    .push(parse_media(value).ok_or(SdpError::BadMedia { line: no })?);
                media_lines.push(no);
                continue;
            }
            match (kind, sd.media.last_mut()) {
                ("o", None) => {
                    sd.origin = Some(parse_origin(value).ok_or(SdpError::BadOrigin { line: no })?);
                }
                ("c", current) => {
                    let addr =
                        parse_connection(value).ok_or(SdpError::BadConnection { line: no })?;
                    match current {
                        Some(media) => media.connection = Some(addr),
                        None => sd.connection = Some(addr),
                    }
                }
                ("a", None) => {
                    let (name, _) = split_attribute(value);
                    if let Some(direction) = Direction::from_attr(&name) {
                        sd.direction = Some(direction);
                    } else if name == "fingerprint" {
                        session_fingerprint = true;
                    }
                }
                ("a", Some(media)) => media_attribute(media, value),
                _ => {}
            }
        }

        for (media, &no) in sd.media.iter_mut().zip(&media_lines) {
            media.fingerprint |= session_fingerprint;
            if media.is_audio() && media.port != 0 && media.connection.or(sd.connection).is_none() {
                return Err(SdpError::MissingConnection { line: no });
            }
        }
        Ok(sd)
    }

    /// For a body straight off the wire: bytes that are not UTF-8 can only sit in free text
    /// (`s=`, `i=`, attribute values), so they are replaced rather than refused.
    pub fn parse_bytes(bytes: &[u8]) -> Result<SessionDescription, SdpError> {
        SessionDescription::parse(&String::from_utf8_lossy(bytes))
    }
}

impl FromStr for SessionDescription {
    type Err = SdpError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        SessionDescription::parse(s)
    }
}

/// Attribute names are case-sensitive in RFC 4566, but lowercasing costs nothing and some
/// stacks have been seen to shout.
fn split_attribute(value: &str) -> (String, Option<&str>) {
    match value.split_once(':') {
        Some((name, rest)) => (name.trim().to_ascii_lowercase(), Some(rest.trim())),
        None => (value.to_ascii_lowercase(), None),
    }
}

fn media_attribute(media: &mut MediaDescription, value: &str) {
    let (name, rest) = split_attribute(value);
    match (name.as_str(), rest) {
        ("rtpmap", Some(rest)) => {
            if let Some(map) = parse_rtpmap(rest) {
                media.rtpmaps.push(map);
            }
        }
        ("fmtp", Some(rest)) => {
            let (pt, params) = rest.split_once(char::is_whitespace).unwrap_or((rest, ""));
            if let Some(pt) = parse_pt(pt) {
                media.fmtps.push((pt, params.trim().to_string()));
            }
        }
        // Some stacks write "20.0"; anything below a millisecond is meaningless.
        ("ptime", Some(rest)) => {
            let whole = rest.split('.').next().unwrap_or(rest);
            media.ptime = whole.parse::<u32>().ok().filter(|&ms| ms > 0);
        }
        ("rtcp-mux", _) => media.rtcp_mux = true,
        ("crypto", rest) => {
            media.any_crypto = true;
            if let Some(c) = rest.and_then(parse_crypto) {
                media.crypto.push(c);
            }
        }
        ("fingerprint", _) => media.fingerprint = true,
        (name, _) => {
            if let Some(direction) = Direction::from_attr(name) {
                media.direction = Some(direction);
            }
        }
    }
}

/// `<tag> <suite> inline:<key>[|<lifetime>][|<mki>:<length>] [<session params>]` (RFC 4568
/// §9.1). Only what changes nothing about the transform is accepted: an MKI would put bytes
/// into every packet that hotline does not write, and the session parameters switch parts of
/// SRTP off or change key derivation (WSH, a replay window size, is the harmless one).
fn parse_crypto(rest: &str) -> Option<Crypto> {
    let mut fields = rest.split_whitespace();
    let tag = fields
        .next()?
        .parse::<u32>()
        .ok()
        .filter(|&t| t < 1_000_000_000)?;
    let suite = Suite::from_name(fields.next()?)?;
    // Several keys (separated by ';') come only with MKIs.
    let key_params = fields.next()?;
    if key_params.contains(';') {
        return None;
    }
    let inline = key_params.strip_prefix("inline:")?;
    let mut parts = inline.split('|');
    let key = MasterKey::from_inline(parts.next()?)?;
    for part in parts {
        if part.contains(':') {
            return None;
        }
    }
    if fields.any(|p| !p.starts_with("WSH=")) {
        return None;
    }
    Some(Crypto { tag, suite, key })
}

/// RTP payload types are 7 bits (RFC 3550 §5.1).
fn parse_pt(token: &str) -> Option<u8> {
    token.trim().parse::<u8>().ok().filter(|&pt| pt <= 127)
}

fn parse_origin(value: &str) -> Option<Origin> {
    let mut fields = value.split_whitespace();
    let username = fields.next()?;
    let session_id = fields.next()?;
    let session_version = fields.next()?.parse::<u64>().ok()?;
    let (_net_type, _addr_type) = (fields.next()?, fields.next()?);
    let address = fields.next()?;
    Some(Origin {
        username: username.to_string(),
        session_id: session_id.to_string(),
        session_version,
        address: address.to_string(),
    })
}

/// The address type is not checked against the address: the address itself is unambiguous,
/// and a mislabelled one is still the right place to send audio.
fn parse_connection(value: &str) -> Option<IpAddr> {
    let mut fields = value.split_whitespace();
    let net_type = fields.next()?;
    let addr_type = fields.next()?;
    if !net_type.eq_ignore_ascii_case("IN")
        || !(addr_type.eq_ignore_ascii_case("IP4") || addr_type.eq_ignore_ascii_case("IP6"))
    {
        return None;
    }
    // A multicast address carries "/ttl[/count]"; the address is what comes before.
    let address = fields.next()?.split('/').next()?;
    address.parse().ok()
}

fn parse_media(value: &str) -> Option<MediaDescription> {
    let mut fields = value.split_whitespace();
    let media = fields.next()?;
    // "<port>/<count>" asks for consecutive ports; hotline only ever uses the first.
    let port = fields.next()?.split('/').next()?.parse::<u16>().ok()?;
    let protocol = fields.next()?;
    let formats: Vec<Format> = fields
        .map(|token| match parse_pt(token) {
            Some(pt) => Format::Pt(pt),
            None => Format::Other(token.to_string()),
        })
        .collect();
    if formats.is_empty() {
        return None;
    }
    Some(MediaDescription {
        media: media.to_string(),
        port,
        protocol: protocol.to_string(),
        formats,
        ..MediaDescription::default()
    })
}

fn parse_rtpmap(value: &str) -> Option<RtpMap> {
    let (pt, encoding) = value.split_once(char::is_whitespace)?;
    let mut parts = encoding.trim().split('/');
    let encoding_name = parts.next().filter(|name| !name.is_empty())?;
    let clock_rate = parts.next()?.trim().parse::<u32>().ok()?;
    let channels = match parts.next() {
        Some(channels) => channels.trim().parse::<u16>().ok()?,
        None => 1,
    };
    Some(RtpMap {
        payload_type: parse_pt(pt)?,
        encoding_name: encoding_name.to_string(),
        clock_rate,
        channels,
    })
}
