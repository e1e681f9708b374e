//! RTP fixed header (RFC 3550 §5.1) and the RTP/RTCP split for rtcp-mux (RFC 5761 §4).
//!
//! Parsing never trusts a length field: every count read from the packet is checked against the
//! bytes actually present, because RTP arrives from whoever knows our port.

/// The fixed header without CSRCs or extension: all hotline ever writes.
pub const HEADER_LEN: usize = 12;

const VERSION: u8 = 2;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RtpHeader {
    pub marker: bool,
    pub payload_type: u8,
    pub sequence: u16,
    pub timestamp: u32,
    pub ssrc: u32,
}

/// Splits an RTP packet into its header and payload. CSRCs and the header extension are skipped
/// rather than returned: an IVR endpoint has no use for mixer contributors or extensions it did
/// not negotiate. Padding is stripped from the payload.
pub fn parse(packet: &[u8]) -> Option<(RtpHeader, &[u8])> {
    let fixed = packet.get(..HEADER_LEN)?;
    if fixed[0] >> 6 != VERSION {
        return None;
    }
    let has_padding = fixed[0] & 0x20 != 0;
    let has_extension = fixed[0] & 0x10 != 0;
    let csrc_count = usize::from(fixed[0] & 0x0F);

    let header = RtpHeader {
        marker: fixed[1] & 0x80 != 0,
        payload_type: fixed[1] & 0x7F,
        sequence: u16::from_be_bytes([fixed[2], fixed[3]]),
        timestamp: u32::from_be_bytes([fixed[4], fixed[5], fixed[6], fixed[7]]),
        ssrc: u32::from_be_bytes([fixed[8], fixed[9], fixed[10], fixed[11]]),
    };

    let mut offset = HEADER_LEN + 4 * csrc_count;
    if has_extension {
        // 16 bits of profile-defined id, then the extension length in 32-bit words, not
        // counting this 4-byte preamble.
        let preamble = packet.get(offset..offset + 4)?;
        let words = usize::from(u16::from_be_bytes([preamble[2], preamble[3]]));
        offset += 4 + 4 * words;
    }
    let mut end = packet.len();
    if offset > end {
        return None;
    }
    if has_padding {
        // The last byte counts the padding including itself, so zero is malformed, and the
        // padding may not reach back into the header (RFC 3550 §5.1, A.1).
        let pad = usize::from(packet[end - 1]);
        if pad == 0 || pad > end - offset {
            return None;
        }
        end -= pad;
    }
    Some((header, &packet[offset..end]))
}

/// True for an RTCP packet sharing the RTP port. RFC 5761 §4 relies on the second byte: RTCP
/// packet types 192..=223 would be RTP payload types 64..=95 with the marker set, a range that
/// must stay unused when multiplexing. Anything else (including garbage) is left to [`parse`].
pub fn is_rtcp(packet: &[u8]) -> bool {
    // Four bytes is the RTCP common header; anything shorter is neither protocol.
    packet.len() >= 4 && packet[0] >> 6 == VERSION && (192..=223).contains(&packet[1])
}

/// Writes a version-2 header with no padding, extension or CSRCs.
pub fn write_header(h: &RtpHeader, out: &mut [u8; HEADER_LEN]) {
    out[0] = VERSION << 6;
    out[1] = (u8::from(h.marker) << 7) | (h.payload_type & 0x7F);
    out[2..4].copy_from_slice(&h.sequence.to_be_bytes());
    out[4..8].copy_from_slice(&h.timestamp.to_be_bytes());
    out[8..12].copy_from_slice(&h.ssrc.to_be_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const HDR: RtpHeader = RtpHeader {
        marker: true,
        payload_type: 8,
        sequence: 0xBEEF,
        timestamp: 0x0102_0304,
        ssrc: 0xDEAD_BEEF,
    };

    fn packet(first_byte: u8, tail: &[u8]) -> Vec<u8> {
        let mut fixed = [0u8; HEADER_LEN];
        write_header(&HDR, &mut fixed);
        fixed[0] = first_byte;
        let mut p = fixed.to_vec();
        p.extend_from_slice(tail);
        p
    }

    #[test]
    fn writes_the_wire_layout() {
        let mut out = [0u8; HEADER_LEN];
        write_header(&HDR, &mut out);
        assert_eq!(
            out,
            [
                0x80, 0x88, 0xBE, 0xEF, 0x01, 0x02, 0x03, 0x04, 0xDE, 0xAD, 0xBE, 0xEF
            ]
        );
        // A payload type that does not fit in 7 bits must not leak into the marker.
        let mut h = HDR;
        h.marker = false;
        h.payload_type = 0xFF;
        write_header(&h, &mut out);
        assert_eq!(out[1], 0x7F);
    }

    #[test]
    fn plain_packet() {
        let p = packet(0x80, &[1, 2, 3]);
        assert_eq!(parse(&p), Some((HDR, &[1u8, 2, 3][..])));
        let bare = packet(0x80, &[]);
        assert_eq!(parse(&bare), Some((HDR, &[][..])));
    }

    #[test]
    fn rejects_wrong_version_and_short_packets() {
        for v in [0x00, 0x40, 0xC0] {
            assert_eq!(parse(&packet(v, &[1, 2])), None);
        }
        let p = packet(0x80, &[]);
        for len in 0..HEADER_LEN {
            assert_eq!(parse(&p[..len]), None, "{len} bytes");
        }
    }

    #[test]
    fn skips_csrcs() {
        let mut tail = vec![0xAA; 8];
        tail.extend_from_slice(&[9, 9]);
        assert_eq!(
            parse(&packet(0x82, &tail)).map(|(_, p)| p),
            Some(&[9u8, 9][..])
        );
        // Declared CSRCs that are not there.
        assert_eq!(parse(&packet(0x83, &tail[..8])), None);
        assert_eq!(parse(&packet(0x8F, &[0; 59])), None);
        assert!(parse(&packet(0x8F, &[0; 60])).is_some());
    }

    #[test]
    fn skips_header_extension() {
        // One CSRC, then profile 0xBEDE with 2 words of extension.
        let mut tail = vec![0xAA; 4];
        tail.extend_from_slice(&[0xBE, 0xDE, 0x00, 0x02]);
        tail.extend_from_slice(&[0x11; 8]);
        tail.extend_from_slice(&[7, 8, 9]);
        assert_eq!(
            parse(&packet(0x91, &tail)).map(|(_, p)| p),
            Some(&[7u8, 8, 9][..])
        );
        // An extension running past the end of the packet.
        assert_eq!(parse(&packet(0x91, &tail[..15])), None);
        // The X bit set but no room for the extension preamble.
        assert_eq!(parse(&packet(0x90, &[0xBE, 0xDE])), None);
        // An empty extension exactly filling the packet.
        assert_eq!(
            parse(&packet(0x90, &[0, 0, 0, 0])).map(|(_, p)| p.len()),
            Some(0)
        );
    }

    #[test]
    fn strips_padding() {
        assert_eq!(
            parse(&packet(0xA0, &[5, 6, 0, 0, 4])).map(|(_, p)| p),
            Some(&[5u8][..])
        );
        // Padding that eats the whole payload is legal.
        assert_eq!(
            parse(&packet(0xA0, &[0, 0, 3])).map(|(_, p)| p.len()),
            Some(0)
        );
        // A zero count, a count reaching into the header, and no byte to hold the count.
        assert_eq!(parse(&packet(0xA0, &[5, 6, 0])), None);
        assert_eq!(parse(&packet(0xA0, &[5, 6, 4])), None);
        assert_eq!(parse(&packet(0xA0, &[])), None);
        // With an extension, padding may not reach back into it.
        assert_eq!(parse(&packet(0xB0, &[0, 0, 0, 0, 1, 3])), None);
        assert!(parse(&packet(0xB0, &[0, 0, 0, 0, 1, 2, 2])).is_some());
    }

    #[test]
    fn tells_rtcp_from_rtp() {
        // Sender report, receiver report, SDES, BYE, APP, RTPFB, PSFB, XR.
        for pt in [200u8, 201, 202, 203, 204, 205, 206, 207] {
            assert!(is_rtcp(&[0x81, pt, 0x00, 0x06]), "{pt}");
        }
        assert!(is_rtcp(&[0x80, 192, 0, 0]));
        assert!(is_rtcp(&[0x80, 223, 0, 0]));
        assert!(!is_rtcp(&[0x80, 191, 0, 0]));
        assert!(!is_rtcp(&[0x80, 224, 0, 0]));
        // PCMU, PCMA and a dynamic payload type, with and without the marker.
        for b1 in [0x00u8, 0x80, 0x08, 0x88, 0x65, 0xE5] {
            let mut p = packet(0x80, &[0; 160]);
            p[1] = b1;
            assert!(!is_rtcp(&p), "{b1:#04x}");
        }
        assert!(!is_rtcp(&[0x40, 200, 0, 0]));
        assert!(!is_rtcp(&[0x80, 200]));
        assert!(!is_rtcp(&[]));
    }

    proptest! {
        #[test]
        fn parse_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            if let Some((_, payload)) = parse(&bytes) {
                // The payload is always a subslice of the input, after the fixed header.
                let start = payload.as_ptr() as usize - bytes.as_ptr() as usize;
                prop_assert!(start >= HEADER_LEN);
                prop_assert!(start + payload.len() <= bytes.len());
            }
            let _ = is_rtcp(&bytes);
        }

        #[test]
        fn write_then_parse_round_trips(
            marker in any::<bool>(),
            payload_type in 0u8..128,
            sequence in any::<u16>(),
            timestamp in any::<u32>(),
            ssrc in any::<u32>(),
            payload in proptest::collection::vec(any::<u8>(), 0..400),
        ) {
            let h = RtpHeader { marker, payload_type, sequence, timestamp, ssrc };
            let mut buf = vec![0u8; HEADER_LEN];
            write_header(&h, (&mut buf[..]).try_into().unwrap());
            buf.extend_from_slice(&payload);
            prop_assert_eq!(parse(&buf), Some((h, &payload[..])));
        }
    }
}
