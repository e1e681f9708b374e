//! RFC 3264 offer/answer for hotline's one audio stream. Usually we answer; we offer when an
//! INVITE comes without SDP and when the load generator or test client places a call.

use std::fmt::Write;
use std::net::{IpAddr, SocketAddr};

use super::{Direction, MediaDescription, SessionDescription};
use crate::media::Codec;
use crate::media::srtp::{MasterKey, SrtpKeys, Suite};

/// The tag of the one `a=crypto` line our offers carry.
const OFFER_TAG: u32 = 1;

/// The packet time hotline sends, and assumes of a peer that does not say.
pub const DEFAULT_PTIME: u32 = 20;

/// What we put into SDP about ourselves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalMedia {
    pub addr: IpAddr,
    pub port: u16,
    pub session_id: u64,
    /// Must grow each time a changed SDP is sent in the same session (RFC 3264 §8).
    pub session_version: u64,
    /// Preference order, used when we offer. When answering, the offerer's order wins.
    pub codecs: Vec<Codec>,
    /// Offered only if it is in the dynamic range 96..=127.
    pub telephone_event_pt: u8,
    /// SRTP with SDES keys: None for plain RTP only.
    pub srtp: Option<SrtpPolicy>,
}

/// This stream's side of SDES (RFC 4568): our master key, and whether plain RTP is refused.
/// With a policy, an offer we make is RTP/SAVP; an offer we answer gets SRTP when it carries a
/// usable key, on RTP/SAVP or (opportunistically, RFC 8643) on RTP/AVP.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SrtpPolicy {
    pub key: MasterKey,
    pub required: bool,
    /// The suite our offers name: the mandatory one, or the one a call already uses (a new
    /// suite under the same key would repeat its keystream).
    pub suite: Suite,
}

impl SrtpPolicy {
    pub fn new(key: MasterKey, required: bool) -> SrtpPolicy {
        SrtpPolicy {
            key,
            required,
            suite: Suite::Aes128CmHmacSha1_80,
        }
    }
}

/// SRTP as negotiated: the tag of the `a=crypto` line chosen, and the keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sdes {
    pub tag: u32,
    pub keys: SrtpKeys,
}

impl LocalMedia {
    pub const DEFAULT_TELEPHONE_EVENT_PT: u8 = 101;

    /// PCMU then PCMA, telephone-event on 101, version equal to the id (as RFC 4566
    /// suggests for a new session).
    pub fn new(addr: IpAddr, port: u16, session_id: u64) -> LocalMedia {
        LocalMedia {
            addr,
            port,
            session_id,
            session_version: session_id,
            codecs: vec![Codec::Pcmu, Codec::Pcma],
            telephone_event_pt: LocalMedia::DEFAULT_TELEPHONE_EVENT_PT,
            srtp: None,
        }
    }

    /// A static number here would clash with a codec on the wire.
    fn offered_event_pt(&self) -> Option<u8> {
        Some(self.telephone_event_pt).filter(|pt| (96..=127).contains(pt))
    }
}

/// The outcome of offer/answer: everything the media path needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Negotiated {
    pub codec: Codec,
    /// Payload type to put on the audio we send (the peer's numbering).
    pub audio_pt: u8,
    /// Payload type of RFC 4733 events, if the peer does them at 8 kHz.
    pub event_pt: Option<u8>,
    /// Where to send RTP; None while the peer holds with an unspecified address.
    pub remote: Option<SocketAddr>,
    pub remote_rtcp_mux: bool,
    /// Our direction: the peer's mirrored.
    pub direction: Direction,
    /// The peer's preferred packet time. Informational: hotline always sends 20 ms.
    pub ptime: u32,
    /// Which `m=` section of the peer's SDP carries the audio.
    pub media_index: usize,
    /// SRTP, when both sides gave keys.
    pub srtp: Option<Sdes>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum NegotiationError {
    #[error("no audio stream with a non-zero port")]
    NoAudio,
    #[error("audio is offered only over transports other than RTP/AVP or RTP/AVPF")]
    UnsupportedProtocol,
    #[error(
        "audio is offered only over SRTP with no SDES key hotline can use (DTLS-SRTP, an unknown suite, or SRTP switched off)"
    )]
    SecureOnly,
    #[error("SRTP is required and the audio is offered without a usable SDES key")]
    SrtpRequired,
    #[error("no codec in common (hotline speaks PCMU and PCMA)")]
    NoCommonCodec,
}

impl NegotiationError {
    /// When several audio sections fail, report the one that got furthest: it tells the
    /// operator the most about what the peer would have needed.
    fn rank(self) -> u8 {
        match self {
            NegotiationError::NoAudio => 0,
            NegotiationError::UnsupportedProtocol => 1,
            NegotiationError::SecureOnly | NegotiationError::SrtpRequired => 2,
            NegotiationError::NoCommonCodec => 3,
        }
    }

    fn worst(self, other: NegotiationError) -> NegotiationError {
        if other.rank() > self.rank() {
            other
        } else {
            self
        }
    }
}

/// Answer an offer. RFC 3264 §6 leaves the choice of stream to the answerer: this takes the
/// first usable audio section, so a leading audio section in a codec we lack does not sink the
/// call if a later one works. Within it, the offerer's order decides the codec (§6.1).
pub fn negotiate(
    offer: &SessionDescription,
    local: &LocalMedia,
) -> Result<Negotiated, NegotiationError> {
    let mut error = NegotiationError::NoAudio;
    for (index, media) in offer.media.iter().enumerate() {
        match usable_audio(offer, media, index, local) {
            Ok(negotiated) => return Ok(negotiated),
            Err(e) => error = error.worst(e),
        }
    }
    Err(error)
}

/// Take the answer to our own offer. The answerer must pick from what we offered; its payload
/// type numbers are what it expects to receive, so they are the ones we send with.
pub fn accept_answer(
    answer: &SessionDescription,
    local: &LocalMedia,
) -> Result<Negotiated, NegotiationError> {
    // We offer a single audio section, so the answer's first audio section is its reply to it.
    let (index, media) = answer
        .media
        .iter()
        .enumerate()
        .find(|(_, media)| media.is_audio())
        .ok_or(NegotiationError::NoAudio)?;
    let mut negotiated = usable_audio(answer, media, index, local)?;
    // RFC 4568 §7.1.3 and RFC 3264: the answer takes the one line we offered, on our profile.
    if let Some(ours) = local.srtp {
        let answered = negotiated.srtp.is_some_and(|s| {
            s.tag == OFFER_TAG && s.keys.suite == ours.suite && s.keys.receive != ours.key
        });
        if !answered || !media.protocol.to_ascii_uppercase().starts_with("RTP/SAVP") {
            return Err(NegotiationError::SecureOnly);
        }
    }
    if local.offered_event_pt().is_none() {
        negotiated.event_pt = None;
    }
    Ok(negotiated)
}

fn usable_audio(
    sd: &SessionDescription,
    media: &MediaDescription,
    index: usize,
    local: &LocalMedia,
) -> Result<Negotiated, NegotiationError> {
    if !media.is_audio() || media.port == 0 {
        return Err(NegotiationError::NoAudio);
    }
    // SDES rides on RTP/SAVP(F), or opportunistically (RFC 8643) on RTP/AVP; an answerer
    // without SRTP answers the latter plain, as that RFC expects.
    let sdes_profile = media.protocol.eq_ignore_ascii_case("RTP/SAVP")
        || media.protocol.eq_ignore_ascii_case("RTP/SAVPF");
    if !media.is_plain_rtp() && !sdes_profile {
        return Err(if media.is_secure() {
            NegotiationError::SecureOnly
        } else {
            NegotiationError::UnsupportedProtocol
        });
    }
    let srtp = match (local.srtp, media.crypto.first()) {
        (Some(ours), Some(theirs)) => Some(Sdes {
            tag: theirs.tag,
            keys: SrtpKeys {
                suite: theirs.suite,
                send: ours.key,
                receive: theirs.key,
            },
        }),
        _ => None,
    };
    if srtp.is_none() {
        if sdes_profile {
            return Err(NegotiationError::SecureOnly);
        }
        if local.srtp.is_some_and(|p| p.required) {
            return Err(NegotiationError::SrtpRequired);
        }
    }
    let (codec, audio_pt) = media
        .formats
        .iter()
        .filter_map(|format| format.payload_type())
        .find_map(|pt| {
            let codec = media.codec_of(pt)?;
            local.codecs.contains(&codec).then_some((codec, pt))
        })
        .ok_or(NegotiationError::NoCommonCodec)?;
    let remote = sd
        .connection_of(media)
        .filter(|ip| !ip.is_unspecified())
        .map(|ip| SocketAddr::new(ip, media.port));
    Ok(Negotiated {
        codec,
        audio_pt,
        event_pt: media.telephone_event_pt(),
        remote,
        remote_rtcp_mux: media.rtcp_mux,
        direction: sd.direction_of(media).mirror(),
        ptime: media.ptime.unwrap_or(DEFAULT_PTIME),
        media_index: index,
        srtp,
    })
}

/// Our answer (RFC 3264 §6): one section per offered section, in order; every section but the
/// negotiated one refused with port 0 and its format list kept, as §6 requires.
pub fn build_answer(offer: &SessionDescription, local: &LocalMedia, neg: &Negotiated) -> String {
    let mut sdp = session_head(local);
    for (index, media) in offer.media.iter().enumerate() {
        if index == neg.media_index {
            let mut pts = vec![(neg.audio_pt, neg.codec.encoding_name())];
            if let Some(event_pt) = neg.event_pt {
                pts.push((event_pt, "telephone-event"));
            }
            audio_section(&mut sdp, local.port, &media.protocol, &pts, neg.direction);
            if let Some(sdes) = &neg.srtp {
                crypto_line(&mut sdp, sdes.tag, sdes.keys.suite, &sdes.keys.send);
            }
            if media.rtcp_mux {
                sdp.push_str("a=rtcp-mux\r\n");
            }
        } else {
            let _ = write!(sdp, "m={} 0 {}", media.media, media.protocol);
            for format in &media.formats {
                let _ = write!(sdp, " {format}");
            }
            sdp.push_str("\r\n");
        }
    }
    sdp
}

/// Our offer: one audio section with every local codec and telephone-event. Hold is offered
/// as `a=sendonly` (RFC 3264 §8.4), never as `c=0.0.0.0`.
pub fn build_offer(local: &LocalMedia, direction: Direction) -> String {
    let mut pts: Vec<(u8, &str)> = Vec::new();
    for codec in &local.codecs {
        if !pts.iter().any(|(pt, _)| *pt == codec.payload_type()) {
            pts.push((codec.payload_type(), codec.encoding_name()));
        }
    }
    if let Some(event_pt) = local.offered_event_pt() {
        pts.push((event_pt, "telephone-event"));
    }
    let mut sdp = session_head(local);
    match &local.srtp {
        Some(srtp) => {
            audio_section(&mut sdp, local.port, "RTP/SAVP", &pts, direction);
            crypto_line(&mut sdp, OFFER_TAG, srtp.suite, &srtp.key);
        }
        None => audio_section(&mut sdp, local.port, "RTP/AVP", &pts, direction),
    }
    sdp
}

fn crypto_line(sdp: &mut String, tag: u32, suite: Suite, key: &MasterKey) {
    let _ = write!(
        sdp,
        "a=crypto:{tag} {} inline:{}\r\n",
        suite.name(),
        key.to_inline()
    );
}

fn session_head(local: &LocalMedia) -> String {
    let addr_type = match local.addr {
        IpAddr::V4(_) => "IP4",
        IpAddr::V6(_) => "IP6",
    };
    format!(
        "v=0\r\no=hotline {} {} IN {addr_type} {addr}\r\ns=hotline\r\n\
         c=IN {addr_type} {addr}\r\nt=0 0\r\n",
        local.session_id,
        local.session_version,
        addr = local.addr,
    )
}

fn audio_section(
    sdp: &mut String,
    port: u16,
    protocol: &str,
    pts: &[(u8, &str)],
    direction: Direction,
) {
    let _ = write!(sdp, "m=audio {port} {protocol}");
    for (pt, _) in pts {
        let _ = write!(sdp, " {pt}");
    }
    sdp.push_str("\r\n");
    for (pt, name) in pts {
        let _ = write!(sdp, "a=rtpmap:{pt} {name}/8000\r\n");
    }
    for (pt, name) in pts {
        if *name == "telephone-event" {
            // 0-16: the DTMF digits and flash (RFC 4733 §3.2), all an IVR listens for.
            let _ = write!(sdp, "a=fmtp:{pt} 0-16\r\n");
        }
    }
    let _ = write!(
        sdp,
        "a=ptime:{DEFAULT_PTIME}\r\na={}\r\n",
        direction.as_attr()
    );
}
