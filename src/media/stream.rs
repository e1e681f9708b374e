//! One RTP stream's state, sans-IO: what the pacing loop sends each tick and what it makes of
//! each packet received. Kept compact because the pacing loop walks every stream every 20 ms.

use std::net::SocketAddr;
use std::sync::Arc;

use super::inband::DtmfDetector;
use super::rfc4733::{self, DigitDeduper};
use super::rtp::{self, RtpHeader};
use super::{Codec, SAMPLES_PER_FRAME};

/// One RTP packet of 20 ms G.711: 12 bytes of header and 160 of payload.
pub const PACKET_LEN: usize = rtp::HEADER_LEN + SAMPLES_PER_FRAME;

/// Valid RTP packets in a row, from one address and with one SSRC, before we latch to a
/// source whose IP the SDP did not announce (a phone behind NAT announces its private
/// address). One stray or spoofed packet must not take the call's media; a real stream sends
/// this many in 60 ms.
pub const FOREIGN_LATCH_PACKETS: u8 = 3;

/// The parameters negotiated in SDP for one stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StreamParams {
    pub codec: Codec,
    pub audio_pt: u8,
    pub event_pt: Option<u8>,
    /// Where to send until we latch to where the caller's RTP really comes from; its IP is
    /// also the one trusted to latch with a single packet.
    pub remote: Option<SocketAddr>,
    pub send: bool,
    pub receive: bool,
}

/// Something the stream noticed that the call must hear about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StreamEvent {
    Digit(char),
    PlayDone(u32),
}

/// A queued prompt: the codec's encoded bytes and how far we got.
struct Segment {
    data: Arc<[u8]>,
    pos: usize,
}

pub struct Stream {
    params: StreamParams,
    ssrc: u32,
    seq: u16,
    timestamp: u32,
    marker: bool,
    playing: Vec<Segment>,
    play_id: Option<u32>,
    deduper: DigitDeduper,
    inband: Option<Box<DtmfDetector>>,
    /// The address the caller's RTP comes from; once known, we send there (symmetric RTP)
    /// and hear nobody else.
    latched: Option<SocketAddr>,
    /// A source off the SDP address working its way to `FOREIGN_LATCH_PACKETS`.
    candidate: Option<Candidate>,
    /// Ticks since the last packet from the caller.
    silent_ticks: u32,
}

#[derive(Debug, Clone, Copy)]
struct Candidate {
    from: SocketAddr,
    ssrc: u32,
    count: u8,
}

/// What one received datagram meant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Received {
    pub digit: Option<char>,
    /// Set when this packet latched the stream to its source address.
    pub latched: Option<SocketAddr>,
}

impl Stream {
    /// `ssrc` and `initial` (sequence and timestamp seeds) are random inputs: RFC 3550 §5.1
    /// and §8 want them unpredictable and different for every stream.
    pub fn new(params: StreamParams, ssrc: u32, initial_seq: u16, initial_ts: u32) -> Self {
        Stream {
            params,
            ssrc,
            seq: initial_seq,
            timestamp: initial_ts,
            marker: true,
            playing: Vec::new(),
            play_id: None,
            deduper: DigitDeduper::default(),
            inband: params
                .event_pt
                .is_none()
                .then(|| Box::new(DtmfDetector::new())),
            latched: None,
            candidate: None,
            silent_ticks: 0,
        }
    }

    pub fn params(&self) -> &StreamParams {
        &self.params
    }

    /// A re-INVITE changed the media: keep SSRC and sequence running (RFC 3264 §8 keeps the
    /// stream; only its parameters change).
    pub fn update(&mut self, params: StreamParams) {
        if params.remote != self.params.remote {
            self.latched = None;
            self.candidate = None;
        }
        if params.event_pt.is_none() && self.inband.is_none() {
            self.inband = Some(Box::new(DtmfDetector::new()));
        }
        if params.event_pt.is_some() {
            self.inband = None;
        }
        self.params = params;
        self.silent_ticks = 0;
    }

    /// Where packets go now: the latched source, else the SDP address.
    pub fn destination(&self) -> Option<SocketAddr> {
        self.latched.or(self.params.remote)
    }

    pub fn is_latched(&self) -> bool {
        self.latched.is_some()
    }

    /// The source we latched to, if any.
    pub fn latched(&self) -> Option<SocketAddr> {
        self.latched
    }

    /// Replace whatever plays with these prompts; the first packet carries the marker bit.
    pub fn play(&mut self, id: u32, prompts: impl IntoIterator<Item = Arc<[u8]>>) {
        self.playing.clear();
        self.playing.extend(
            prompts
                .into_iter()
                .filter(|p| !p.is_empty())
                .map(|data| Segment { data, pos: 0 }),
        );
        self.playing.reverse();
        self.play_id = Some(id);
        self.marker = true;
    }

    pub fn stop(&mut self) {
        self.playing.clear();
        self.play_id = None;
    }

    /// Build this tick's packet into `out`. Returns its length (0 when we must not send, e.g.
    /// on hold), and the id of a playback that just finished. Time always advances.
    pub fn next_packet(&mut self, out: &mut [u8; PACKET_LEN]) -> (usize, Option<u32>) {
        let mut finished = None;
        let (header, payload) = out.split_at_mut(rtp::HEADER_LEN);
        let mut filled = false;
        while let Some(seg) = self.playing.last_mut() {
            if seg.pos + SAMPLES_PER_FRAME <= seg.data.len() {
                payload.copy_from_slice(&seg.data[seg.pos..seg.pos + SAMPLES_PER_FRAME]);
                seg.pos += SAMPLES_PER_FRAME;
                filled = true;
                if seg.pos >= seg.data.len() {
                    self.playing.pop();
                }
                break;
            }
            self.playing.pop();
        }
        if !filled {
            payload.fill(self.params.codec.silence_byte());
        }
        if self.playing.is_empty()
            && let Some(id) = self.play_id.take()
        {
            finished = Some(id);
        }
        let ts = self.timestamp;
        self.timestamp = self.timestamp.wrapping_add(SAMPLES_PER_FRAME as u32);
        if !self.params.send || self.destination().is_none() {
            // RFC 3550 §5.1: the timestamp keeps running through silence we do not send, so
            // the next talkspurt starts with the marker bit.
            self.marker = true;
            return (0, finished);
        }
        let h = RtpHeader {
            marker: self.marker,
            payload_type: self.params.audio_pt,
            sequence: self.seq,
            timestamp: ts,
            ssrc: self.ssrc,
        };
        let header: &mut [u8; rtp::HEADER_LEN] = header.try_into().expect("split at HEADER_LEN");
        rtp::write_header(&h, header);
        self.marker = false;
        self.seq = self.seq.wrapping_add(1);
        (PACKET_LEN, finished)
    }

    /// Classify one received datagram in place. Until we latch, only the packet that latches
    /// counts; afterwards only the latched source's do (packets from others that were queued
    /// before the socket was connected are ignored).
    pub fn on_packet(&mut self, data: &[u8], from: SocketAddr) -> Received {
        let mut out = Received::default();
        if rtp::is_rtcp(data) {
            return out;
        }
        let Some((h, payload)) = rtp::parse(data) else {
            return out;
        };
        match self.latched {
            Some(addr) if addr == from => {}
            Some(_) => return out,
            None => {
                if !self.latch_candidate(from, h.ssrc) {
                    return out;
                }
                self.latched = Some(from);
                out.latched = Some(from);
            }
        }
        self.silent_ticks = 0;
        if Some(h.payload_type) == self.params.event_pt {
            if let Some(ev) = rfc4733::parse(payload) {
                out.digit = self.deduper.on_event(h.timestamp, &ev);
            }
        } else if h.payload_type == self.params.audio_pt
            && let Some(detector) = self.inband.as_deref_mut()
        {
            let mut pcm = [0i16; SAMPLES_PER_FRAME];
            let n = payload.len().min(SAMPLES_PER_FRAME);
            self.params.codec.decode_into(&payload[..n], &mut pcm[..n]);
            out.digit = detector.process(&pcm[..n]);
        }
        out
    }

    /// Whether a valid RTP packet from `from` latches the stream: at once from the IP the SDP
    /// announced, else after `FOREIGN_LATCH_PACKETS` in a row from one address with one SSRC.
    fn latch_candidate(&mut self, from: SocketAddr, ssrc: u32) -> bool {
        let announced = self.params.remote.map(|r| r.ip().to_canonical());
        if announced == Some(from.ip().to_canonical()) {
            self.candidate = None;
            return true;
        }
        let count = match self.candidate.as_mut() {
            Some(c) if c.from == from && c.ssrc == ssrc => {
                c.count = c.count.saturating_add(1);
                c.count
            }
            _ => {
                self.candidate = Some(Candidate {
                    from,
                    ssrc,
                    count: 1,
                });
                1
            }
        };
        if count >= FOREIGN_LATCH_PACKETS {
            self.candidate = None;
            return true;
        }
        false
    }

    /// Count a tick without a packet; true once the silence reaches `limit` ticks (reported
    /// once). Streams we don't receive on (the caller holds) never time out.
    pub fn tick_silence(&mut self, limit: u32) -> bool {
        if !self.params.receive {
            self.silent_ticks = 0;
            return false;
        }
        self.silent_ticks = self.silent_ticks.saturating_add(1);
        self.silent_ticks == limit
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params() -> StreamParams {
        StreamParams {
            codec: Codec::Pcmu,
            audio_pt: 0,
            event_pt: Some(101),
            remote: Some("127.0.0.1:4000".parse().unwrap()),
            send: true,
            receive: true,
        }
    }

    #[test]
    fn prompts_play_frame_by_frame_with_continuous_seq_and_timestamps() {
        let mut s = Stream::new(params(), 0x1234, 65534, u32::MAX - 159);
        let prompt: Arc<[u8]> = (0..480)
            .map(|i| (i % 200) as u8)
            .collect::<Vec<u8>>()
            .into();
        s.play(7, [prompt.clone()]);
        let mut buf = [0u8; PACKET_LEN];
        let mut seen = Vec::new();
        for _ in 0..5 {
            let (len, done) = s.next_packet(&mut buf);
            assert_eq!(len, PACKET_LEN);
            let (h, payload) = rtp::parse(&buf).unwrap();
            seen.push((h.sequence, h.timestamp, h.marker, payload[0], done));
        }
        assert_eq!(seen[0], (65534, u32::MAX - 159, true, 0, None));
        assert_eq!(seen[1], (65535, 0, false, 160, None));
        assert_eq!(
            seen[2],
            (0, 160, false, 120, Some(7)),
            "done with the last frame"
        );
        assert_eq!(seen[3].3, 0xFF, "silence after the prompt");
        assert!(!seen[3].2);
        s.play(8, [prompt]);
        let (_, _) = s.next_packet(&mut buf);
        assert!(
            rtp::parse(&buf).unwrap().0.marker,
            "marker at each talkspurt"
        );
    }

    #[test]
    fn hold_sends_nothing_but_time_runs_and_marker_follows() {
        let mut s = Stream::new(params(), 1, 0, 0);
        let mut buf = [0u8; PACKET_LEN];
        s.next_packet(&mut buf);
        s.update(StreamParams {
            send: false,
            ..params()
        });
        assert_eq!(s.next_packet(&mut buf).0, 0);
        s.update(params());
        assert_eq!(s.next_packet(&mut buf).0, PACKET_LEN);
        let (h, _) = rtp::parse(&buf).unwrap();
        assert_eq!((h.sequence, h.timestamp, h.marker), (1, 320, true));
    }

    #[test]
    fn latching_rfc4733_and_rtcp() {
        let mut s = Stream::new(params(), 1, 0, 0);
        let from: SocketAddr = "127.0.0.1:5555".parse().unwrap();
        let mut pkt = [0u8; 16];
        rtp::write_header(
            &RtpHeader {
                marker: true,
                payload_type: 101,
                sequence: 1,
                timestamp: 800,
                ssrc: 9,
            },
            (&mut pkt[..12]).try_into().unwrap(),
        );
        rfc4733::write(
            &rfc4733::TelephoneEvent {
                event: 5,
                end: false,
                volume: 10,
                duration: 160,
            },
            (&mut pkt[12..]).try_into().unwrap(),
        );
        let r = s.on_packet(&pkt, from);
        assert_eq!(
            r,
            Received {
                digit: Some('5'),
                latched: Some(from)
            }
        );
        assert_eq!(s.destination(), Some(from));
        assert_eq!(
            s.on_packet(&pkt, from),
            Received::default(),
            "same event again: no new digit"
        );
        let rtcp = [0x80u8, 200, 0, 6, 0, 0, 0, 1];
        assert_eq!(
            s.on_packet(&rtcp, "127.0.0.1:9".parse().unwrap()),
            Received::default()
        );
        assert_eq!(s.on_packet(b"garbage!!!!!!!!!!", from), Received::default());
    }

    /// A telephone-event packet (key 5, not yet ended) from `ssrc`.
    fn key5(ssrc: u32, sequence: u16) -> [u8; 16] {
        let mut pkt = [0u8; 16];
        rtp::write_header(
            &RtpHeader {
                marker: sequence == 0,
                payload_type: 101,
                sequence,
                timestamp: 800,
                ssrc,
            },
            (&mut pkt[..12]).try_into().unwrap(),
        );
        rfc4733::write(
            &rfc4733::TelephoneEvent {
                event: 5,
                end: false,
                volume: 10,
                duration: 160 * (sequence + 1),
            },
            (&mut pkt[12..]).try_into().unwrap(),
        );
        pkt
    }

    fn params_from(remote: &str) -> StreamParams {
        StreamParams {
            remote: Some(remote.parse().unwrap()),
            ..params()
        }
    }

    #[test]
    fn a_stray_packet_from_elsewhere_neither_latches_nor_counts() {
        let sdp: SocketAddr = "192.0.2.10:4000".parse().unwrap();
        let mut s = Stream::new(params_from("192.0.2.10:4000"), 1, 0, 0);
        let stray: SocketAddr = "198.51.100.7:5000".parse().unwrap();
        assert!(!(0..9).any(|_| s.tick_silence(10)));
        assert_eq!(s.on_packet(&key5(66, 0), stray), Received::default());
        assert_eq!(
            s.destination(),
            Some(sdp),
            "still sending to the SDP address"
        );
        assert!(!s.is_latched());
        assert!(
            s.tick_silence(10),
            "a stranger does not keep the call alive"
        );
        // The announced IP latches with one packet, from whatever port, and its key counts.
        let caller: SocketAddr = "192.0.2.10:4002".parse().unwrap();
        assert_eq!(
            s.on_packet(&key5(9, 0), caller),
            Received {
                digit: Some('5'),
                latched: Some(caller)
            }
        );
        assert_eq!(s.destination(), Some(caller));
        // Once latched, nobody else is heard, however often they send.
        for seq in 0..5 {
            assert_eq!(s.on_packet(&key5(66, seq), stray), Received::default());
        }
        assert_eq!(s.latched(), Some(caller));
    }

    #[test]
    fn a_source_off_the_sdp_address_latches_after_three_in_a_row_with_one_ssrc() {
        let mut s = Stream::new(params_from("10.0.0.5:4000"), 1, 0, 0);
        let nat: SocketAddr = "203.0.113.5:6000".parse().unwrap();
        let other: SocketAddr = "198.51.100.7:5000".parse().unwrap();
        let rtcp = [0x80u8, 200, 0, 6, 0, 0, 0, 1];
        assert_eq!(s.on_packet(&key5(9, 0), nat), Received::default());
        assert_eq!(s.on_packet(&key5(9, 1), nat), Received::default());
        // Another source breaks the run, and so does another SSRC from the same address.
        assert_eq!(s.on_packet(&key5(66, 0), other), Received::default());
        assert_eq!(s.on_packet(&key5(9, 2), nat), Received::default());
        assert_eq!(s.on_packet(&key5(10, 3), nat), Received::default());
        assert_eq!(s.on_packet(&key5(9, 4), nat), Received::default());
        assert_eq!(s.on_packet(&key5(9, 5), nat), Received::default());
        // What is not valid RTP does not count either way.
        s.on_packet(&rtcp, other);
        s.on_packet(b"garbage!!!!!!!!!!", other);
        assert!(!s.is_latched());
        assert_eq!(
            s.on_packet(&key5(9, 6), nat),
            Received {
                digit: Some('5'),
                latched: Some(nat)
            },
            "third in a row"
        );
        assert_eq!(s.destination(), Some(nat));
        assert_eq!(s.on_packet(&key5(9, 7), nat), Received::default());
    }

    #[test]
    fn new_sdp_address_starts_latching_over() {
        let mut s = Stream::new(params_from("192.0.2.10:4000"), 1, 0, 0);
        let nat: SocketAddr = "203.0.113.5:6000".parse().unwrap();
        s.on_packet(&key5(7, 0), nat);
        s.on_packet(&key5(7, 1), nat);
        s.update(params_from("192.0.2.20:4000"));
        assert_eq!(
            s.on_packet(&key5(7, 2), nat),
            Received::default(),
            "the run before the update does not carry over"
        );
        let caller: SocketAddr = "192.0.2.20:4000".parse().unwrap();
        assert_eq!(s.on_packet(&key5(9, 0), caller).latched, Some(caller));
        s.update(params_from("192.0.2.20:4000"));
        assert_eq!(s.latched(), Some(caller), "same address: latch kept");
        s.update(params_from("192.0.2.30:4000"));
        assert_eq!(s.latched(), None);
        assert_eq!(s.destination(), "192.0.2.30:4000".parse().ok());
    }

    #[test]
    fn silence_timeout_fires_once_and_not_on_hold() {
        let mut s = Stream::new(params(), 1, 0, 0);
        assert!(!(0..9).any(|_| s.tick_silence(10)));
        assert!(s.tick_silence(10));
        assert!(!s.tick_silence(10));
        s.update(StreamParams {
            receive: false,
            ..params()
        });
        assert!(!(0..100).any(|_| s.tick_silence(10)));
    }
}
