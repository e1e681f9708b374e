//! Sans-IO media: RTP framing, G.711, DTMF (RFC 4733 and in-band), prompts and the pacing math.
//! Nothing here opens a socket or reads a clock; `runtime::media` drives it.

pub mod bridge;
pub mod g711;
pub mod inband;
pub mod latch;
pub mod loss;
pub mod prompt;
pub mod recorder;
pub mod relay;
pub mod rfc4733;
pub mod rtp;
pub mod srtp;

/// 20 ms of audio at 8 kHz: the one packet size hotline sends (ptime 20).
pub const SAMPLES_PER_FRAME: usize = 160;
pub const SAMPLE_RATE: u32 = 8000;

/// The audio codecs hotline speaks. Both are 8 kHz, one byte per sample.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Codec {
    Pcmu,
    Pcma,
}

impl Codec {
    /// The static RTP payload type (RFC 3551 table 4).
    pub fn payload_type(self) -> u8 {
        match self {
            Codec::Pcmu => 0,
            Codec::Pcma => 8,
        }
    }

    pub fn from_payload_type(pt: u8) -> Option<Codec> {
        match pt {
            0 => Some(Codec::Pcmu),
            8 => Some(Codec::Pcma),
            _ => None,
        }
    }

    /// The encoding name used in SDP `a=rtpmap`.
    pub fn encoding_name(self) -> &'static str {
        match self {
            Codec::Pcmu => "PCMU",
            Codec::Pcma => "PCMA",
        }
    }

    pub fn from_encoding_name(name: &str) -> Option<Codec> {
        if name.eq_ignore_ascii_case("PCMU") {
            Some(Codec::Pcmu)
        } else if name.eq_ignore_ascii_case("PCMA") {
            Some(Codec::Pcma)
        } else {
            None
        }
    }

    /// The byte that decodes to (near) zero amplitude.
    pub fn silence_byte(self) -> u8 {
        match self {
            Codec::Pcmu => 0xFF,
            Codec::Pcma => 0xD5,
        }
    }
}
pub mod pacing;
pub mod stream;
