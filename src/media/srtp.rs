//! SRTP (RFC 3711) for streams whose SDP negotiated SDES keys (RFC 4568). The transform is
//! webrtc-srtp's; this module names the suites SDP speaks of, keeps keys out of logs, and
//! bounds what packets from the network can make a receiving context remember.

use std::fmt;
use std::sync::Arc;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use webrtc_srtp::context::Context;
use webrtc_srtp::option::srtp_replay_protection;
use webrtc_srtp::protection_profile::ProtectionProfile;

/// Master key and salt of the AES-CM suites: 16 + 14 bytes, one base64 `inline:` value.
pub const KEY_LEN: usize = 30;
const AES_KEY_LEN: usize = 16;
/// Packets within this many sequence numbers of the newest are checked for replays.
const REPLAY_WINDOW: usize = 128;
/// Unknown SSRCs a receiving context tries before it starts afresh: every SSRC tried leaves
/// state in a context, and anyone who knows the port can send packets with new ones.
const PROBES: u8 = 4;

/// The SDES crypto suites hotline speaks (RFC 4568 §6.2), in its order of preference.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Suite {
    Aes128CmHmacSha1_80,
    Aes128CmHmacSha1_32,
}

impl Suite {
    pub const ALL: [Suite; 2] = [Suite::Aes128CmHmacSha1_80, Suite::Aes128CmHmacSha1_32];

    pub fn name(self) -> &'static str {
        match self {
            Suite::Aes128CmHmacSha1_80 => "AES_CM_128_HMAC_SHA1_80",
            Suite::Aes128CmHmacSha1_32 => "AES_CM_128_HMAC_SHA1_32",
        }
    }

    pub fn from_name(name: &str) -> Option<Suite> {
        Suite::ALL
            .into_iter()
            .find(|s| s.name().eq_ignore_ascii_case(name))
    }

    fn profile(self) -> ProtectionProfile {
        match self {
            Suite::Aes128CmHmacSha1_80 => ProtectionProfile::Aes128CmHmacSha1_80,
            Suite::Aes128CmHmacSha1_32 => ProtectionProfile::Aes128CmHmacSha1_32,
        }
    }
}

/// A master key with its salt. Never printed: whoever has it hears the call.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct MasterKey(pub [u8; KEY_LEN]);

impl fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("MasterKey(..)")
    }
}

impl MasterKey {
    /// The `inline:` form of SDP (base64 of key and salt).
    pub fn to_inline(&self) -> String {
        STANDARD.encode(self.0)
    }

    /// From an `inline:` value; None unless it is exactly a key and a salt. Some peers leave
    /// off the base64 padding.
    pub fn from_inline(text: &str) -> Option<MasterKey> {
        let text = text.trim_end_matches('=');
        let bytes = base64::engine::general_purpose::STANDARD_NO_PAD
            .decode(text)
            .ok()?;
        Some(MasterKey(bytes.try_into().ok()?))
    }

    fn context(&self, suite: Suite) -> Option<Context> {
        let (key, salt) = self.0.split_at(AES_KEY_LEN);
        Context::new(
            key,
            salt,
            suite.profile(),
            Some(srtp_replay_protection(REPLAY_WINDOW)),
            None,
        )
        .ok()
    }
}

/// Where master keys come from: the OS's randomness in the server (`os`), a fixed sequence
/// in tests, so the engine itself draws nothing. None: no key could be had (the call goes
/// without SRTP, or is refused where SRTP is required).
#[derive(Clone)]
pub struct KeySource(Arc<dyn Fn() -> Option<MasterKey> + Send + Sync>);

impl KeySource {
    pub fn new(draw: impl Fn() -> Option<MasterKey> + Send + Sync + 'static) -> KeySource {
        KeySource(Arc::new(draw))
    }

    pub fn os() -> KeySource {
        let rng = ring::rand::SystemRandom::new();
        KeySource::new(move || {
            let mut key = [0u8; KEY_LEN];
            ring::rand::SecureRandom::fill(&rng, &mut key).ok()?;
            Some(MasterKey(key))
        })
    }

    pub fn draw(&self) -> Option<MasterKey> {
        (self.0)()
    }
}

impl fmt::Debug for KeySource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("KeySource")
    }
}

/// What one stream negotiated: the suite, the key we encrypt with (ours, in our SDP) and the
/// one we decrypt with (the peer's).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SrtpKeys {
    pub suite: Suite,
    pub send: MasterKey,
    pub receive: MasterKey,
}

/// Encrypts what a stream sends. Every packet on one leg carries that leg's SSRC, so the
/// context keeps state for one SSRC.
pub struct Protector {
    ctx: Context,
}

impl fmt::Debug for Protector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Protector(..)")
    }
}

impl Protector {
    pub fn new(keys: &SrtpKeys) -> Option<Protector> {
        Some(Protector {
            ctx: keys.send.context(keys.suite)?,
        })
    }

    /// The SRTP packet for an RTP packet; None if it is not RTP (or the key is used up).
    /// The one allocation per packet is webrtc-srtp's API.
    pub fn protect(
        &mut self,
        packet: &[u8],
    ) -> Option<impl std::ops::Deref<Target = [u8]> + use<>> {
        // A forwarded packet carries whatever header its sender wrote.
        if !header_is_sound(packet) {
            return None;
        }
        self.ctx.encrypt_rtp(packet).ok()
    }
}

/// Decrypts and authenticates what a stream receives. A packet that fails authentication
/// changes nothing; packets with an SSRC other than the one already authenticated are tried
/// on a separate context that is thrown away after a few SSRCs, so forged packets cannot
/// grow memory, and a peer that really changes its SSRC is followed.
pub struct Unprotector {
    keys: SrtpKeys,
    current: Option<(u32, Context)>,
    probe: Option<Context>,
    probed: u8,
}

impl Unprotector {
    pub fn new(keys: &SrtpKeys) -> Option<Unprotector> {
        // Build once now so a bad key is found at set-up, not on the first packet.
        let probe = keys.receive.context(keys.suite)?;
        Some(Unprotector {
            keys: *keys,
            current: None,
            probe: Some(probe),
            probed: 0,
        })
    }

    pub fn keys(&self) -> &SrtpKeys {
        &self.keys
    }

    /// Decrypts `packet` in place and returns the RTP packet's length, or None when it is
    /// not authentic (forged, damaged, replayed, or under another key).
    pub fn unprotect(&mut self, packet: &mut [u8]) -> Option<usize> {
        if !header_is_sound(packet) {
            return None;
        }
        let ssrc = u32::from_be_bytes(packet.get(8..12)?.try_into().ok()?);
        let plain = match &mut self.current {
            Some((known, ctx)) if *known == ssrc => ctx.decrypt_rtp(packet).ok()?,
            _ => {
                if self.probed >= PROBES {
                    self.probe = None;
                    self.probed = 0;
                }
                if self.probe.is_none() {
                    self.probe = self.keys.receive.context(self.keys.suite);
                }
                self.probed += 1;
                let plain = self.probe.as_mut()?.decrypt_rtp(packet).ok()?;
                // Authentic: this SSRC is the peer's now.
                self.current = self.probe.take().map(|ctx| (ssrc, ctx));
                self.probed = 0;
                plain
            }
        };
        let n = plain.len();
        packet.get_mut(..n)?.copy_from_slice(&plain);
        Some(n)
    }
}

/// Whether webrtc-srtp's header parser can read `packet` without running off its end. The
/// header is read before anything is authenticated, and that parser trusts the lengths of
/// RFC 8285 extension elements, so every length here is checked against the bytes present
/// the way it will walk them.
fn header_is_sound(packet: &[u8]) -> bool {
    let Some(&b0) = packet.first() else {
        return false;
    };
    if packet.len() < 12 || b0 >> 6 != 2 {
        return false;
    }
    let mut at = 12 + 4 * usize::from(b0 & 0x0F);
    if at > packet.len() {
        return false;
    }
    if b0 & 0x10 == 0 {
        return true;
    }
    let Some(preamble) = packet.get(at..at + 4) else {
        return false;
    };
    let profile = u16::from_be_bytes([preamble[0], preamble[1]]);
    let end = at + 4 + 4 * usize::from(u16::from_be_bytes([preamble[2], preamble[3]]));
    at += 4;
    if end > packet.len() {
        return false;
    }
    match profile {
        // One-byte elements: id and length-1 in one byte; id 15 ends the list.
        0xBEDE => {
            while at < end {
                let b = packet[at];
                at += 1;
                if b == 0 {
                    continue;
                }
                if b >> 4 == 0xF {
                    break;
                }
                at += usize::from(b & 0x0F) + 1;
                if at > packet.len() {
                    return false;
                }
            }
        }
        // Two-byte elements: an id byte, then a length byte.
        0x1000 => {
            while at < end {
                let b = packet[at];
                at += 1;
                if b == 0 {
                    continue;
                }
                let Some(&len) = packet.get(at) else {
                    return false;
                };
                at += 1 + usize::from(len);
                if at > packet.len() {
                    return false;
                }
            }
        }
        _ => {}
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(send: u8, receive: u8) -> SrtpKeys {
        SrtpKeys {
            suite: Suite::Aes128CmHmacSha1_80,
            send: MasterKey([send; KEY_LEN]),
            receive: MasterKey([receive; KEY_LEN]),
        }
    }

    fn rtp(ssrc: u32, seq: u16, payload: &[u8]) -> Vec<u8> {
        let mut p = vec![0x80, 0, 0, 0, 0, 0, 0, 160, 0, 0, 0, 0];
        p[2..4].copy_from_slice(&seq.to_be_bytes());
        p[8..12].copy_from_slice(&ssrc.to_be_bytes());
        p.extend_from_slice(payload);
        p
    }

    #[test]
    fn what_one_side_protects_the_other_unprotects_once() {
        let mut alice = Protector::new(&keys(1, 2)).unwrap();
        let mut bob = Unprotector::new(&keys(2, 1)).unwrap();
        let packet = rtp(7, 100, &[0x55; 160]);
        let sent = alice.protect(&packet).unwrap();
        assert_eq!(sent.len(), packet.len() + 10, "80-bit tag");
        assert_ne!(&sent[12..172], &packet[12..], "payload encrypted");
        let mut buf = sent.to_vec();
        assert_eq!(bob.unprotect(&mut buf), Some(packet.len()));
        assert_eq!(&buf[..packet.len()], &packet[..]);
        let mut again = sent.to_vec();
        assert_eq!(bob.unprotect(&mut again), None, "a replay is refused");
    }

    #[test]
    fn forged_or_damaged_packets_are_refused_and_the_stream_goes_on() {
        let mut alice = Protector::new(&keys(1, 2)).unwrap();
        let mut bob = Unprotector::new(&keys(2, 1)).unwrap();
        let mut first = alice.protect(&rtp(7, 1, &[1; 160])).unwrap().to_vec();
        assert!(bob.unprotect(&mut first).is_some());
        // Plain RTP, another key, a flipped bit, and many invented SSRCs.
        let mut plain = rtp(7, 2, &[2; 170]);
        assert_eq!(bob.unprotect(&mut plain), None);
        let mut mallory = Protector::new(&keys(9, 9)).unwrap();
        let mut forged = mallory.protect(&rtp(7, 2, &[3; 160])).unwrap().to_vec();
        assert_eq!(bob.unprotect(&mut forged), None);
        let mut damaged = alice.protect(&rtp(7, 2, &[4; 160])).unwrap().to_vec();
        damaged[20] ^= 1;
        assert_eq!(bob.unprotect(&mut damaged), None);
        for ssrc in 100..1100 {
            let mut f = mallory.protect(&rtp(ssrc, 1, &[5; 160])).unwrap().to_vec();
            assert_eq!(bob.unprotect(&mut f), None);
        }
        let mut next = alice.protect(&rtp(7, 3, &[6; 160])).unwrap().to_vec();
        assert!(
            bob.unprotect(&mut next).is_some(),
            "the real stream is still heard"
        );
    }

    /// Extension elements whose lengths run past the packet made the header parser panic
    /// before authentication; they are refused on both sides now, and sound ones still pass.
    #[test]
    fn headers_that_would_overrun_are_refused_before_the_transform() {
        let mut bob = Unprotector::new(&keys(2, 1)).unwrap();
        let mut alice = Protector::new(&keys(1, 2)).unwrap();
        let head: &[u8] = &[0x90, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 7];
        let mut overruns = vec![
            // One-byte profile, one word, an element of 16 bytes.
            [head, &[0xBE, 0xDE, 0, 1, 0x0F, 0, 0, 0]].concat(),
            // Two-byte profile, an element of 200 bytes.
            [head, &[0x10, 0x00, 0, 1, 1, 200, 0, 0]].concat(),
            // Two-byte profile, the length byte missing.
            [head, &[0x10, 0x00, 0, 1, 0, 0, 0, 5]].concat(),
            // Fifteen CSRCs in a 20-byte packet.
            vec![
                0x8F, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 7, 1, 2, 3, 4, 5, 6, 7, 8,
            ],
            vec![0x80, 0, 0],
        ];
        for p in &mut overruns {
            assert!(alice.protect(p).is_none(), "{p:?}");
            assert_eq!(bob.unprotect(p), None, "{p:?}");
        }
        // A sound one-byte extension (id 1, two bytes) goes through both ways.
        let mut with_ext = [
            &[0x90u8, 0, 0, 9, 0, 0, 0, 0, 0, 0, 0, 7][..],
            &[0xBE, 0xDE, 0, 1, 0x11, 0xAA, 0xBB, 0],
        ]
        .concat();
        with_ext.extend_from_slice(&[0x55; 160]);
        let sealed = alice.protect(&with_ext).expect("a sound extension");
        let mut buf = sealed.to_vec();
        let n = bob.unprotect(&mut buf).expect("opens");
        assert_eq!(&buf[..n], &with_ext[..]);
    }

    #[test]
    fn a_peer_that_changes_its_ssrc_is_followed() {
        let mut alice = Protector::new(&keys(1, 2)).unwrap();
        let mut bob = Unprotector::new(&keys(2, 1)).unwrap();
        for (ssrc, seq) in [(7, 1), (7, 2), (8, 500), (8, 501)] {
            let mut p = alice.protect(&rtp(ssrc, seq, &[1; 160])).unwrap().to_vec();
            assert!(bob.unprotect(&mut p).is_some(), "ssrc {ssrc} seq {seq}");
        }
    }

    #[test]
    fn inline_keys_read_with_or_without_padding() {
        let key = MasterKey(std::array::from_fn(|i| i as u8));
        let text = key.to_inline();
        assert_eq!(MasterKey::from_inline(&text), Some(key));
        assert_eq!(
            MasterKey::from_inline(text.trim_end_matches('=')),
            Some(key)
        );
        assert_eq!(MasterKey::from_inline("c2hvcnQ="), None, "too short");
        assert_eq!(MasterKey::from_inline("!!!"), None);
        assert_eq!(format!("{key:?}"), "MasterKey(..)");
        assert_eq!(
            Suite::from_name("aes_cm_128_hmac_sha1_32"),
            Some(Suite::Aes128CmHmacSha1_32)
        );
    }
}
