//! The callers' audio signature: what a caller sends when agents echo, so that what comes
//! back can be told apart from prompts, music and other calls' audio.
//!
//! Every audio frame is five copies of one 32-sample block. Each sample is one of four
//! levels (−8000, −2000, +2000, +8000: two bits); a block is 64 bits: a fixed sync byte,
//! the caller's 24-bit id, a 16-bit frame counter (audio frames sent so far, so RFC 4733
//! packets leave no hole) and a 16-bit check over both. The levels survive G.711 re-encoding
//! and PCMU↔PCMA transcoding in a bridge (the error there is a few percent, the decision
//! bands are ±25 %), and because the block repeats, any 63 consecutive samples of a frame
//! hold a whole block: a bridge that re-chunks audio across frame boundaries still yields a readable
//! signature. Decoding tries the frame-aligned offset first, then scans; a sample outside
//! every band ends a candidate at once, so audio that is not a signature costs about one
//! table look-up per offset.

use crate::media::Codec;

pub(crate) const BLOCK: usize = 32;
const SYNC: [u8; 4] = [3, 0, 3, 0];
const LEVELS: [i16; 4] = [-8000, -2000, 2000, 8000];
const INVALID: u8 = 0xFF;
/// Ids are 24 bits.
pub(crate) const ID_MASK: u32 = 0x00FF_FFFF;

fn check(id: u32, counter: u16) -> u16 {
    let h = ((id as u64) << 16 | counter as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    (h >> 48) as u16 ^ 0x5AC3
}

/// The four levels encoded in one codec: a frame is built by table look-up.
#[derive(Debug, Clone, Copy)]
pub(crate) struct SigEncoder {
    level: [u8; 4],
}

impl SigEncoder {
    pub(crate) fn new(codec: Codec) -> Self {
        SigEncoder {
            level: LEVELS.map(|l| codec.encode(l)),
        }
    }

    /// Fill `out` (a frame; its length need not be a multiple of the block) with the
    /// signature of (`id`, `counter`).
    #[inline]
    pub(crate) fn write(&self, id: u32, counter: u16, out: &mut [u8]) {
        let mut block = [0u8; BLOCK];
        let mut bits: u64 = ((id & ID_MASK) as u64) << 32
            | (counter as u64) << 16
            | check(id & ID_MASK, counter) as u64;
        for (i, s) in SYNC.iter().enumerate() {
            block[i] = self.level[*s as usize];
        }
        // 56 payload bits, most significant first, two per sample.
        for slot in block[SYNC.len()..].iter_mut().rev() {
            *slot = self.level[(bits & 3) as usize];
            bits >>= 2;
        }
        for chunk in out.chunks_mut(BLOCK) {
            chunk.copy_from_slice(&block[..chunk.len()]);
        }
    }
}

/// Byte → level symbol for both G.711 laws (INVALID outside every band).
pub(crate) struct SigDecoder {
    pcmu: [u8; 256],
    pcma: [u8; 256],
}

impl SigDecoder {
    pub(crate) fn new() -> Self {
        let classify = |v: i16| -> u8 {
            let a = (v as i32).abs();
            let big = (6000..=10000).contains(&a);
            let small = (1500..=2500).contains(&a);
            match (v < 0, big, small) {
                (true, true, _) => 0,
                (true, _, true) => 1,
                (false, _, true) => 2,
                (false, true, _) => 3,
                _ => INVALID,
            }
        };
        let mut d = SigDecoder {
            pcmu: [INVALID; 256],
            pcma: [INVALID; 256],
        };
        for b in 0..=255u8 {
            d.pcmu[b as usize] = classify(Codec::Pcmu.decode(b));
            d.pcma[b as usize] = classify(Codec::Pcma.decode(b));
        }
        d
    }

    /// The (id, counter) a frame carries, if any.
    #[inline]
    pub(crate) fn read(&self, codec: Codec, payload: &[u8]) -> Option<(u32, u16)> {
        let table = match codec {
            Codec::Pcmu => &self.pcmu,
            Codec::Pcma => &self.pcma,
        };
        if payload.len() < BLOCK {
            return None;
        }
        if let Some(v) = Self::block_at(table, payload, 0) {
            return Some(v);
        }
        (1..=payload.len() - BLOCK).find_map(|o| Self::block_at(table, payload, o))
    }

    #[inline]
    fn block_at(table: &[u8; 256], p: &[u8], o: usize) -> Option<(u32, u16)> {
        for (i, s) in SYNC.iter().enumerate() {
            if table[p[o + i] as usize] != *s {
                return None;
            }
        }
        let mut bits: u64 = 0;
        for &b in &p[o + SYNC.len()..o + BLOCK] {
            let s = table[b as usize];
            if s == INVALID {
                return None;
            }
            bits = bits << 2 | s as u64;
        }
        let id = (bits >> 32) as u32 & ID_MASK;
        let counter = (bits >> 16) as u16;
        (bits as u16 == check(id, counter)).then_some((id, counter))
    }
}

/// What one received audio frame is, as seen by a caller whose own id is `own`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Heard {
    /// Its own signature came back: frame `counter` went caller → agent → caller.
    Own(u16),
    /// Another caller's signature: audio crossed between calls.
    Foreign,
    /// No signature: prompts, music, silence.
    Unsigned,
}

#[inline]
pub(crate) fn classify(dec: &SigDecoder, codec: Codec, payload: &[u8], own: u32) -> Heard {
    match dec.read(codec, payload) {
        Some((id, counter)) if id == own & ID_MASK => Heard::Own(counter),
        Some(_) => Heard::Foreign,
        None => Heard::Unsigned,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::load::caller::PayloadBank;

    fn frame(codec: Codec, id: u32, counter: u16) -> [u8; 160] {
        let mut f = [0u8; 160];
        SigEncoder::new(codec).write(id, counter, &mut f);
        f
    }

    #[test]
    fn round_trip_both_laws() {
        let dec = SigDecoder::new();
        for codec in [Codec::Pcmu, Codec::Pcma] {
            for (id, counter) in [(0, 0), (1, 65535), (ID_MASK, 12345), (999, 7)] {
                let f = frame(codec, id, counter);
                assert_eq!(dec.read(codec, &f), Some((id, counter)), "{codec:?}");
                assert_eq!(classify(&dec, codec, &f, id), Heard::Own(counter));
                assert_eq!(classify(&dec, codec, &f, id + 1), Heard::Foreign);
            }
        }
    }

    /// What a bridge does to the audio: decode, maybe transcode to the other law, re-encode.
    #[test]
    fn survives_transcoding() {
        let dec = SigDecoder::new();
        for (from, to) in [
            (Codec::Pcmu, Codec::Pcma),
            (Codec::Pcma, Codec::Pcmu),
            (Codec::Pcmu, Codec::Pcmu),
            (Codec::Pcma, Codec::Pcma),
        ] {
            let f = frame(from, 4242, 31337);
            let there: Vec<u8> = f.iter().map(|&b| to.encode(from.decode(b))).collect();
            assert_eq!(dec.read(to, &there), Some((4242, 31337)), "{from:?}→{to:?}");
            let back: Vec<u8> = there.iter().map(|&b| from.encode(to.decode(b))).collect();
            assert_eq!(dec.read(from, &back), Some((4242, 31337)));
        }
    }

    /// A bridge that re-chunks: the tail of frame k and the head of frame k+1 in one packet.
    #[test]
    fn readable_across_a_frame_boundary() {
        let dec = SigDecoder::new();
        let (a, b) = (frame(Codec::Pcmu, 77, 10), frame(Codec::Pcmu, 77, 11));
        for split in [1, 17, 63, 80, 97, 159] {
            let mut mixed = [0u8; 160];
            mixed[..160 - split].copy_from_slice(&a[split..]);
            mixed[160 - split..].copy_from_slice(&b[..split]);
            let got = dec.read(Codec::Pcmu, &mixed);
            assert!(
                got == Some((77, 10)) || got == Some((77, 11)),
                "split {split}: {got:?}"
            );
        }
    }

    #[test]
    fn prompts_silence_and_damage_are_unsigned() {
        let dec = SigDecoder::new();
        for codec in [Codec::Pcmu, Codec::Pcma] {
            let speech = PayloadBank::speech(codec);
            for n in 0..100 {
                assert_eq!(dec.read(codec, speech.frame(n)), None);
            }
            assert_eq!(dec.read(codec, PayloadBank::silence(codec).frame(0)), None);
            // A tone at a signature level is not a signature either.
            let tone: Vec<u8> = (0..160)
                .map(|n| codec.encode((8000.0 * (n as f64 * 0.3).sin()) as i16))
                .collect();
            assert_eq!(dec.read(codec, &tone), None);
        }
        // One flipped symbol in every copy breaks the check; one copy intact still reads.
        let mut f = frame(Codec::Pcmu, 5, 6);
        let enc = SigEncoder::new(Codec::Pcmu);
        for k in 0..5 {
            let i = k * BLOCK + 20;
            f[i] = if f[i] == enc.level[0] {
                enc.level[1]
            } else {
                enc.level[0]
            };
        }
        assert_eq!(dec.read(Codec::Pcmu, &f), None);
        let mut g = frame(Codec::Pcmu, 5, 6);
        g[..128].copy_from_slice(&[0xFF; 128]);
        assert_eq!(
            dec.read(Codec::Pcmu, &g),
            Some((5, 6)),
            "the last copy is whole"
        );
        assert_eq!(dec.read(Codec::Pcmu, &g[..20]), None, "too short");
    }
}
