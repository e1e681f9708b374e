//! SDP as hotline uses it: a tolerant RFC 4566 parser for what peers send, and RFC 3264
//! offer/answer for one audio stream of G.711 plus RFC 4733 telephone-events.
//! Pure and sans-IO. The parser reads text from the network, so no input may make it panic.

mod offer_answer;
mod parse;
#[cfg(test)]
mod tests;

use std::fmt;
use std::net::IpAddr;

use crate::media::Codec;
use crate::media::srtp::{MasterKey, Suite};

pub use offer_answer::{
    DEFAULT_PTIME, LocalMedia, Negotiated, NegotiationError, Sdes, SrtpPolicy, accept_answer,
    build_answer, build_offer, negotiate,
};
pub use parse::SdpError;

/// A stream's direction, from the point of view of whoever wrote the SDP.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Direction {
    #[default]
    SendRecv,
    SendOnly,
    RecvOnly,
    Inactive,
}

impl Direction {
    pub fn from_attr(name: &str) -> Option<Direction> {
        match name {
            "sendrecv" => Some(Direction::SendRecv),
            "sendonly" => Some(Direction::SendOnly),
            "recvonly" => Some(Direction::RecvOnly),
            "inactive" => Some(Direction::Inactive),
            _ => None,
        }
    }

    pub fn as_attr(self) -> &'static str {
        match self {
            Direction::SendRecv => "sendrecv",
            Direction::SendOnly => "sendonly",
            Direction::RecvOnly => "recvonly",
            Direction::Inactive => "inactive",
        }
    }

    /// The direction the other side takes (RFC 3264 §6.1): what one sends, the other receives.
    pub fn mirror(self) -> Direction {
        match self {
            Direction::SendOnly => Direction::RecvOnly,
            Direction::RecvOnly => Direction::SendOnly,
            other => other,
        }
    }

    pub fn sends(self) -> bool {
        matches!(self, Direction::SendRecv | Direction::SendOnly)
    }

    pub fn receives(self) -> bool {
        matches!(self, Direction::SendRecv | Direction::RecvOnly)
    }

    /// RFC 2543 hold (`c=0.0.0.0`) says "send me nothing" and says nothing about sending, so
    /// it can only take receiving away from whatever the attributes claim.
    fn without_receive(self) -> Direction {
        match self {
            Direction::SendRecv | Direction::SendOnly => Direction::SendOnly,
            Direction::RecvOnly | Direction::Inactive => Direction::Inactive,
        }
    }
}

/// The `o=` line. The session id is kept as text because it is only ever compared; the version
/// is a number because RFC 3264 §8 has it grow with every changed offer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Origin {
    pub username: String,
    pub session_id: String,
    pub session_version: u64,
    /// Usually an IP address, but RFC 4566 allows a domain name here.
    pub address: String,
}

/// One entry of an `m=` line's format list: an RTP payload type, or anything else (a
/// non-RTP transport's format, or a number outside 0..=127) kept verbatim so that a rejected
/// line can be echoed back unchanged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Format {
    Pt(u8),
    Other(String),
}

impl Format {
    pub fn payload_type(&self) -> Option<u8> {
        match self {
            Format::Pt(pt) => Some(*pt),
            Format::Other(_) => None,
        }
    }
}

impl fmt::Display for Format {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Format::Pt(pt) => write!(f, "{pt}"),
            Format::Other(s) => f.write_str(s),
        }
    }
}

/// `a=rtpmap:<pt> <name>/<clock rate>[/<channels>]`; channels defaults to 1.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RtpMap {
    pub payload_type: u8,
    pub encoding_name: String,
    pub clock_rate: u32,
    pub channels: u16,
}

/// One usable `a=crypto` line: its tag (echoed in the answer), suite and master key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Crypto {
    pub tag: u32,
    pub suite: Suite,
    pub key: MasterKey,
}

/// One `m=` section. `connection` and `direction` are what this section itself says;
/// [`SessionDescription::connection_of`] and [`SessionDescription::direction_of`] apply the
/// session-level fallbacks.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct MediaDescription {
    pub media: String,
    pub port: u16,
    pub protocol: String,
    pub formats: Vec<Format>,
    pub connection: Option<IpAddr>,
    pub rtpmaps: Vec<RtpMap>,
    /// `a=fmtp` parameters by payload type, verbatim.
    pub fmtps: Vec<(u8, String)>,
    pub ptime: Option<u32>,
    pub direction: Option<Direction>,
    pub rtcp_mux: bool,
    /// The `a=crypto` lines (SDES-SRTP, RFC 4568) hotline could use, in the offerer's order;
    /// lines with suites, MKIs or session parameters it does not do are left out.
    pub crypto: Vec<Crypto>,
    /// Some `a=crypto` line was present, usable or not.
    pub any_crypto: bool,
    /// `a=fingerprint` (DTLS-SRTP) was present here or at session level.
    pub fingerprint: bool,
}

impl MediaDescription {
    pub fn is_audio(&self) -> bool {
        self.media.eq_ignore_ascii_case("audio")
    }

    /// Plain RTP profiles hotline can answer (RTP/AVPF is RTP/AVP plus feedback we may ignore).
    pub fn is_plain_rtp(&self) -> bool {
        self.protocol.eq_ignore_ascii_case("RTP/AVP")
            || self.protocol.eq_ignore_ascii_case("RTP/AVPF")
    }

    /// SRTP profiles: RTP/SAVP, RTP/SAVPF, UDP/TLS/RTP/SAVP(F), TCP/TLS/RTP/SAVPF.
    pub fn is_secure(&self) -> bool {
        self.protocol.to_ascii_uppercase().contains("SAVP")
    }

    pub fn rtpmap(&self, pt: u8) -> Option<&RtpMap> {
        self.rtpmaps.iter().find(|r| r.payload_type == pt)
    }

    pub fn fmtp(&self, pt: u8) -> Option<&str> {
        self.fmtps
            .iter()
            .find(|(p, _)| *p == pt)
            .map(|(_, s)| s.as_str())
    }

    /// Which of our codecs a payload type carries. An rtpmap wins over the static table,
    /// because peers do renumber (PCMA as 98) and a static number remapped to something else
    /// must not be taken for G.711.
    pub fn codec_of(&self, pt: u8) -> Option<Codec> {
        match self.rtpmap(pt) {
            Some(map) if map.clock_rate == 8000 && map.channels == 1 => {
                Codec::from_encoding_name(&map.encoding_name)
            }
            Some(_) => None,
            None => Codec::from_payload_type(pt),
        }
    }

    /// The first listed telephone-event payload type at 8 kHz. Phones often offer a 48 kHz
    /// one too (for Opus), which would be wrong next to G.711.
    pub fn telephone_event_pt(&self) -> Option<u8> {
        self.formats
            .iter()
            .filter_map(Format::payload_type)
            .find(|&pt| {
                self.rtpmap(pt).is_some_and(|m| {
                    m.encoding_name.eq_ignore_ascii_case("telephone-event") && m.clock_rate == 8000
                })
            })
    }
}

/// A parsed SDP body. Only what hotline uses is kept; every other line is skipped.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SessionDescription {
    /// None when the `o=` line is missing: nothing hotline does depends on it being there.
    pub origin: Option<Origin>,
    pub connection: Option<IpAddr>,
    pub direction: Option<Direction>,
    pub media: Vec<MediaDescription>,
}

impl SessionDescription {
    /// The address a section's media goes to: its own `c=`, else the session's.
    pub fn connection_of(&self, media: &MediaDescription) -> Option<IpAddr> {
        media.connection.or(self.connection)
    }

    /// The direction in force for a section: its own attribute, else the session's, else
    /// sendrecv, with RFC 2543 hold (an unspecified `c=` address) folded in.
    pub fn direction_of(&self, media: &MediaDescription) -> Direction {
        let direction = media.direction.or(self.direction).unwrap_or_default();
        match self.connection_of(media) {
            Some(ip) if ip.is_unspecified() => direction.without_receive(),
            _ => direction,
        }
    }
}
