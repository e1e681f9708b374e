//! ITU-T G.711 companding: µ-law (PCMU) and A-law (PCMA) against 16-bit linear samples.
//!
//! The arithmetic runs in the 16-bit domain rather than G.711's native 14-bit (µ-law) and 13-bit
//! (A-law) ranges, so the low bits of the input are simply quantised away. Decoding goes through
//! tables built at compile time because it runs for every received sample; encoding is a handful
//! of integer operations and needs no table.

use super::Codec;

/// µ-law adds this (in its 14-bit domain) before finding the segment, so that segment
/// boundaries fall on powers of two.
const ULAW_BIAS: i32 = 33;

pub fn ulaw_encode(s: i16) -> u8 {
    let s = i32::from(s);
    // Like the ITU-T G.191 reference, negatives are one's-complemented rather than negated, so
    // that `s` and `!s` differ only in the sign bit and the 16-to-14-bit truncation is symmetric.
    let (sign, magnitude) = if s < 0 { (0x80u8, !s) } else { (0x00u8, s) };
    let biased = ((magnitude >> 2) + ULAW_BIAS).min(0x1FFF);
    // biased is in 33..=8191, so its top set bit is bit 5..=12: the exponent is 0..=7.
    let exponent = (31 - biased.leading_zeros() as i32) - 5;
    let mantissa = (biased >> (exponent + 1)) & 0x0F;
    // The wire format inverts every bit so that silence is 0xFF, rich in transitions for old
    // T1 clock recovery.
    !(sign | ((exponent as u8) << 4) | mantissa as u8)
}

pub fn ulaw_decode(b: u8) -> i16 {
    ULAW_TO_LINEAR[usize::from(b)]
}

pub fn alaw_encode(s: i16) -> u8 {
    let s = i32::from(s);
    // A-law is sign-magnitude with one's-complement negatives: -1 shares a code with 0 and
    // -32768 with 32767, which is why the negative side is shifted by one instead of negated.
    let (mask, magnitude) = if s >= 0 {
        (0xD5u8, s)
    } else {
        (0x55u8, -s - 1)
    };
    let m = magnitude >> 3; // 0..=4095: A-law's 12-bit magnitude
    let (segment, mantissa) = if m < 32 {
        (0, (m >> 1) & 0x0F)
    } else {
        // m in 32..=4095 has its top bit at 5..=11, giving segments 1..=7.
        let segment = (31 - m.leading_zeros() as i32) - 4;
        (segment, (m >> segment) & 0x0F)
    };
    (((segment as u8) << 4) | mantissa as u8) ^ mask
}

pub fn alaw_decode(b: u8) -> i16 {
    ALAW_TO_LINEAR[usize::from(b)]
}

const fn ulaw_decode_calc(b: u8) -> i16 {
    let b = !b;
    let exponent = ((b >> 4) & 0x07) as i32;
    let mantissa = (b & 0x0F) as i32;
    // Reconstruct at the middle of the quantisation interval, then remove the encoder's bias.
    let magnitude = ((((mantissa << 1) + ULAW_BIAS) << exponent) - ULAW_BIAS) << 2;
    if b & 0x80 != 0 {
        -magnitude as i16
    } else {
        magnitude as i16
    }
}

const fn alaw_decode_calc(b: u8) -> i16 {
    let b = b ^ 0x55;
    let segment = ((b >> 4) & 0x07) as i32;
    let mantissa = (b & 0x0F) as i32;
    // The +8 (and the implicit leading one above segment 0) put the value mid-interval.
    let mut magnitude = (mantissa << 4) + 8;
    if segment != 0 {
        magnitude = (magnitude + 0x100) << (segment - 1);
    }
    // After the XOR a set top bit means positive, the opposite of µ-law.
    if b & 0x80 != 0 {
        magnitude as i16
    } else {
        -magnitude as i16
    }
}

static ULAW_TO_LINEAR: [i16; 256] = {
    let mut table = [0i16; 256];
    let mut i = 0;
    while i < 256 {
        table[i] = ulaw_decode_calc(i as u8);
        i += 1;
    }
    table
};

static ALAW_TO_LINEAR: [i16; 256] = {
    let mut table = [0i16; 256];
    let mut i = 0;
    while i < 256 {
        table[i] = alaw_decode_calc(i as u8);
        i += 1;
    }
    table
};

impl Codec {
    pub fn encode(self, s: i16) -> u8 {
        match self {
            Codec::Pcmu => ulaw_encode(s),
            Codec::Pcma => alaw_encode(s),
        }
    }

    pub fn decode(self, b: u8) -> i16 {
        match self {
            Codec::Pcmu => ulaw_decode(b),
            Codec::Pcma => alaw_decode(b),
        }
    }

    /// Decodes `min(src.len(), dst.len())` samples; a length mismatch (a short or oversized
    /// packet) must not take the media task down, so the excess on either side is left alone.
    pub fn decode_into(self, src: &[u8], dst: &mut [i16]) {
        let table = match self {
            Codec::Pcmu => &ULAW_TO_LINEAR,
            Codec::Pcma => &ALAW_TO_LINEAR,
        };
        for (d, s) in dst.iter_mut().zip(src) {
            *d = table[usize::from(*s)];
        }
    }

    /// The encoding counterpart of [`Codec::decode_into`], with the same length rule.
    pub fn encode_into(self, src: &[i16], dst: &mut [u8]) {
        for (d, s) in dst.iter_mut().zip(src) {
            *d = self.encode(*s);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all_samples() -> impl Iterator<Item = i16> {
        i16::MIN..=i16::MAX
    }

    #[test]
    fn silence_bytes_decode_to_near_zero() {
        assert_eq!(ulaw_decode(0xFF), 0);
        assert_eq!(ulaw_decode(0x7F), 0);
        assert_eq!(alaw_decode(0xD5), 8);
        assert_eq!(alaw_decode(0x55), -8);
        assert_eq!(ulaw_encode(0), 0xFF);
        assert_eq!(alaw_encode(0), 0xD5);
        assert_eq!(Codec::Pcmu.decode(Codec::Pcmu.silence_byte()), 0);
        assert!(Codec::Pcma.decode(Codec::Pcma.silence_byte()).abs() <= 8);
    }

    #[test]
    fn ulaw_reference_values() {
        // Values from the classic ulaw2linear table (first row and the extremes).
        let first_row = [
            -32124, -31100, -30076, -29052, -28028, -27004, -25980, -24956, -23932, -22908, -21884,
            -20860, -19836, -18812, -17788, -16764,
        ];
        for (i, want) in first_row.iter().enumerate() {
            assert_eq!(ulaw_decode(i as u8), *want, "byte {i:#04x}");
        }
        assert_eq!(ulaw_decode(0x10), -15996);
        assert_eq!(ulaw_decode(0x80), 32124);
        assert_eq!(ulaw_decode(0x7E), -8);
        assert_eq!(ulaw_decode(0xFE), 8);
        assert_eq!(ulaw_encode(1000), 0xCE);
        assert_eq!(ulaw_encode(-1000), 0x4E);
        assert_eq!(ulaw_encode(100), 0xF2);
        assert_eq!(ulaw_encode(i16::MAX), 0x80);
        assert_eq!(ulaw_encode(i16::MIN), 0x00);
        // The digital milliwatt (G.711 table 5): a 1 kHz, 0 dBm0 sine.
        let dmw = [0x1E, 0x0B, 0x0B, 0x1E, 0x9E, 0x8B, 0x8B, 0x9E];
        for (k, b) in dmw.iter().enumerate() {
            let phase = std::f64::consts::PI * (2.0 * k as f64 + 1.0) / 8.0;
            let v = f64::from(ulaw_decode(*b));
            let expected = -phase.sin() * 22_600.0;
            assert!((v - expected).abs() < 600.0, "dmw[{k}] = {v}, ~{expected}");
        }
    }

    #[test]
    fn alaw_reference_values() {
        // Values from the classic alaw2linear table.
        let first_row = [
            -5504, -5248, -6016, -5760, -4480, -4224, -4992, -4736, -7552, -7296, -8064, -7808,
            -6528, -6272, -7040, -6784,
        ];
        for (i, want) in first_row.iter().enumerate() {
            assert_eq!(alaw_decode(i as u8), *want, "byte {i:#04x}");
        }
        assert_eq!(alaw_decode(0x80), 5504);
        assert_eq!(alaw_decode(0xAA), 32256);
        assert_eq!(alaw_decode(0x2A), -32256);
        assert_eq!(alaw_encode(1000), 0xFA);
        assert_eq!(alaw_encode(-1000), 0x7A);
        assert_eq!(alaw_encode(100), 0xD3);
        assert_eq!(alaw_encode(i16::MAX), 0xAA);
        assert_eq!(alaw_encode(i16::MIN), 0x2A);
    }

    #[test]
    fn every_code_round_trips() {
        for b in 0..=255u8 {
            // 0x7F is µ-law's negative zero; it decodes to 0, which encodes as positive zero.
            let want = if b == 0x7F { 0xFF } else { b };
            assert_eq!(ulaw_encode(ulaw_decode(b)), want, "ulaw {b:#04x}");
            assert_eq!(alaw_encode(alaw_decode(b)), b, "alaw {b:#04x}");
        }
    }

    #[test]
    fn quantisation_error_is_within_half_a_step() {
        for s in all_samples() {
            let m = i32::from(s).abs();
            let ue = (i32::from(ulaw_decode(ulaw_encode(s))) - i32::from(s)).abs();
            let ae = (i32::from(alaw_decode(alaw_encode(s))) - i32::from(s)).abs();
            if m <= 32_000 {
                // Both laws keep about 5 bits of relative precision: half a step is 1/32 of
                // the segment's lower edge, plus the fixed step of the bottom segments.
                assert!(ue <= (m + 132) / 32 + 1, "ulaw {s}: error {ue}");
                assert!(ae <= m / 32 + 8, "alaw {s}: error {ae}");
            } else {
                // Above the top reconstruction level only clipping error remains.
                assert!(ue <= 700 && ae <= 600, "{s}: errors {ue} {ae}");
            }
        }
    }

    #[test]
    fn negatives_mirror_positives_in_ones_complement() {
        for s in 0..=i16::MAX {
            assert_eq!(ulaw_encode(!s), ulaw_encode(s) ^ 0x80, "ulaw {s}");
            assert_eq!(alaw_encode(!s), alaw_encode(s) ^ 0x80, "alaw {s}");
        }
    }

    #[test]
    fn encoding_is_monotonic() {
        let mut prev_u = i16::MIN;
        let mut prev_a = i16::MIN;
        for s in all_samples() {
            let u = ulaw_decode(ulaw_encode(s));
            let a = alaw_decode(alaw_encode(s));
            assert!(u >= prev_u && a >= prev_a, "{s}");
            prev_u = u;
            prev_a = a;
        }
    }

    #[test]
    fn codec_dispatch_and_slices() {
        let src = [0x00u8, 0x80, 0xFF, 0x55];
        let mut dst = [0i16; 3];
        Codec::Pcmu.decode_into(&src, &mut dst);
        assert_eq!(dst, [-32124, 32124, 0]);
        let mut long = [1i16; 6];
        Codec::Pcma.decode_into(&src, &mut long);
        assert_eq!(long, [-5504, 5504, alaw_decode(0xFF), -8, 1, 1]);
        Codec::Pcma.decode_into(&[], &mut long);
        assert_eq!(long[0], -5504);

        let mut enc = [0u8; 2];
        Codec::Pcma.encode_into(&[0, 1000, 7], &mut enc);
        assert_eq!(enc, [0xD5, alaw_encode(1000)]);
        assert_eq!(Codec::Pcmu.encode(1000), ulaw_encode(1000));
        assert_eq!(Codec::Pcma.decode(0x12), alaw_decode(0x12));
    }
}
