//! What one simulated phone puts on the wire each 20 ms tick: an audio packet, or during a
//! key press an RFC 4733 telephone-event packet. Pure (no sockets, no clock) so the packet
//! sequence can be checked tick by tick.

use super::signature::SigEncoder;
use crate::media::rfc4733::{self, TelephoneEvent};
use crate::media::rtp::{self, RtpHeader};
use crate::media::{Codec, SAMPLES_PER_FRAME};

pub(crate) const PAYLOAD_LEN: usize = SAMPLES_PER_FRAME;
pub(crate) const PACKET_LEN: usize = rtp::HEADER_LEN + PAYLOAD_LEN;
const SAMPLES_PER_TICK: u32 = SAMPLES_PER_FRAME as u32;

/// Event packets while the key is down: 5 × 20 ms = a 100 ms tone.
pub(crate) const TONE_TICKS: u8 = 5;
/// RFC 4733 §2.5.1.4: the end packet goes out three times, same timestamp and duration.
pub(crate) const END_PACKETS: u8 = 3;
/// Audio between two keys of one press sequence.
pub(crate) const INTERDIGIT_TICKS: u8 = 5;
const EVENT_VOLUME: u8 = 10;

/// Pre-encoded audio frames, cycled by tick, so a packet's payload is one copy.
/// With a signature encoder, every audio frame is the caller's signature instead
/// (`signature.rs`): what agents echo is then recognisable.
pub(crate) struct PayloadBank {
    frames: Box<[[u8; PAYLOAD_LEN]]>,
    signature: Option<SigEncoder>,
}

impl PayloadBank {
    pub(crate) fn silence(codec: Codec) -> Self {
        PayloadBank {
            frames: vec![[codec.silence_byte(); PAYLOAD_LEN]].into_boxed_slice(),
            signature: None,
        }
    }

    /// Each caller's own signature (its stream id and a frame counter) in every frame.
    pub(crate) fn signature(codec: Codec) -> Self {
        PayloadBank {
            signature: Some(SigEncoder::new(codec)),
            ..PayloadBank::silence(codec)
        }
    }

    /// Two seconds of a voiced, syllable-paced signal with a pause: loud enough to count as
    /// audio on the far side, varied enough not to look like a test tone.
    pub(crate) fn speech(codec: Codec) -> Self {
        const SECONDS: usize = 2;
        let total = SECONDS * 8000;
        let mut frames = vec![[0u8; PAYLOAD_LEN]; total / PAYLOAD_LEN];
        let mut phase = 0.0f64;
        for n in 0..total {
            let t = n as f64 / 8000.0;
            let f0 = 115.0 + 20.0 * (2.0 * std::f64::consts::PI * 0.8 * t).sin();
            phase += 2.0 * std::f64::consts::PI * f0 / 8000.0;
            // Harmonics weighted toward two formant regions (~700 Hz and ~1.2 kHz).
            let mut v = 0.0;
            for k in 1..=16 {
                let f = f0 * k as f64;
                let formant = (-((f - 700.0) / 250.0).powi(2)).exp()
                    + 0.6 * (-((f - 1200.0) / 300.0).powi(2)).exp();
                v += (0.15 / k as f64 + formant) * (phase * k as f64).sin();
            }
            let syllable = 0.3 + 0.7 * (2.0 * std::f64::consts::PI * 3.5 * t).sin().max(0.0).sqrt();
            let speaking = if t < 1.5 { 1.0 } else { 0.0 };
            let sample = (v * syllable * speaking * 3500.0).clamp(-32000.0, 32000.0) as i16;
            frames[n / PAYLOAD_LEN][n % PAYLOAD_LEN] = codec.encode(sample);
        }
        PayloadBank {
            frames: frames.into_boxed_slice(),
            signature: None,
        }
    }

    #[inline]
    pub(crate) fn frame(&self, n: u64) -> &[u8; PAYLOAD_LEN] {
        &self.frames[(n % self.frames.len() as u64) as usize]
    }
}

/// Which keys a caller presses, and how often (in ticks, from the start of its stream).
#[derive(Debug, Clone)]
pub(crate) struct DtmfPlan {
    pub events: Box<[u8]>,
    pub interval_ticks: u64,
}

impl DtmfPlan {
    pub(crate) fn none() -> Self {
        DtmfPlan {
            events: Box::new([]),
            interval_ticks: 0,
        }
    }
    fn active(&self) -> bool {
        !self.events.is_empty() && self.interval_ticks > 0
    }
}

#[derive(Debug, Clone, Copy)]
struct Press {
    /// Index into the plan's events.
    key: u8,
    /// Packets sent for this key so far (tone, then end packets, then the inter-key gap).
    phase: u8,
    event_ts: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Sent {
    Audio,
    Event { first: bool },
}

/// The sending half of one caller's RTP stream.
#[derive(Debug, Clone)]
pub(crate) struct TxState {
    ssrc: u32,
    seq: u16,
    ts_base: u32,
    audio_pt: u8,
    event_pt: Option<u8>,
    start_tick: u64,
    next_press: u64,
    press: Option<Press>,
    first_audio: bool,
    /// The id written into signature frames, and the audio frames sent so far.
    sig_id: u32,
    sig_count: u16,
}

impl TxState {
    pub(crate) fn new(
        ssrc: u32,
        seq: u16,
        ts_base: u32,
        audio_pt: u8,
        event_pt: Option<u8>,
        start_tick: u64,
        plan: &DtmfPlan,
    ) -> Self {
        let next_press = if plan.active() && event_pt.is_some() {
            start_tick + plan.interval_ticks
        } else {
            u64::MAX
        };
        TxState {
            ssrc,
            seq,
            ts_base,
            audio_pt,
            event_pt,
            start_tick,
            next_press,
            press: None,
            first_audio: true,
            sig_id: 0,
            sig_count: 0,
        }
    }

    /// Signature frames sent so far: the counter the next one carries.
    pub(crate) fn signature_frames(&self) -> u16 {
        self.sig_count
    }

    /// The id this stream writes into its signature frames (banks with a signature only).
    pub(crate) fn with_signature_id(mut self, id: u32) -> Self {
        self.sig_id = id;
        self
    }

    pub(crate) fn random(
        audio_pt: u8,
        event_pt: Option<u8>,
        start_tick: u64,
        plan: &DtmfPlan,
    ) -> Self {
        TxState::new(
            fastrand::u32(..),
            fastrand::u16(..),
            fastrand::u32(..),
            audio_pt,
            event_pt,
            start_tick,
            plan,
        )
    }

    /// Write this tick's packet into `buf`; returns its length and kind. The RTP timestamp
    /// follows the tick, not the packet count, so skipped ticks keep media time honest.
    #[inline]
    pub(crate) fn build(
        &mut self,
        tick: u64,
        plan: &DtmfPlan,
        bank: &PayloadBank,
        buf: &mut [u8; PACKET_LEN],
    ) -> (usize, Sent) {
        let elapsed = tick.saturating_sub(self.start_tick);
        let ts = self
            .ts_base
            .wrapping_add((elapsed as u32).wrapping_mul(SAMPLES_PER_TICK));
        if self.press.is_none() && tick >= self.next_press {
            self.press = Some(Press {
                key: 0,
                phase: 0,
                event_ts: ts,
            });
            self.next_press = tick + plan.interval_ticks;
        }
        let seq = self.seq;
        self.seq = self.seq.wrapping_add(1);
        if let (Some(p), Some(event_pt)) = (self.press.as_mut(), self.event_pt) {
            let phase = p.phase;
            p.phase += 1;
            if phase < TONE_TICKS + END_PACKETS {
                if phase == 0 {
                    p.event_ts = ts;
                }
                let end = phase >= TONE_TICKS;
                let ev = TelephoneEvent {
                    event: plan.events[p.key as usize],
                    end,
                    volume: EVENT_VOLUME,
                    duration: (phase.min(TONE_TICKS - 1) as u16 + 1) * SAMPLES_PER_TICK as u16,
                };
                let header = RtpHeader {
                    marker: phase == 0,
                    payload_type: event_pt,
                    sequence: seq,
                    timestamp: p.event_ts,
                    ssrc: self.ssrc,
                };
                let (head, rest) = buf.split_at_mut(rtp::HEADER_LEN);
                rtp::write_header(&header, head.try_into().expect("header length"));
                rfc4733::write(&ev, (&mut rest[..4]).try_into().expect("event length"));
                let last_key = p.key as usize + 1 >= plan.events.len();
                if p.phase == TONE_TICKS + END_PACKETS && last_key {
                    self.press = None;
                }
                return (rtp::HEADER_LEN + 4, Sent::Event { first: phase == 0 });
            }
            if p.phase == TONE_TICKS + END_PACKETS + INTERDIGIT_TICKS {
                p.key += 1;
                p.phase = 0;
            }
        }
        let header = RtpHeader {
            marker: self.first_audio,
            payload_type: self.audio_pt,
            sequence: seq,
            timestamp: ts,
            ssrc: self.ssrc,
        };
        self.first_audio = false;
        let (head, rest) = buf.split_at_mut(rtp::HEADER_LEN);
        rtp::write_header(&header, head.try_into().expect("header length"));
        match &bank.signature {
            Some(sig) => {
                sig.write(self.sig_id, self.sig_count, rest);
                self.sig_count = self.sig_count.wrapping_add(1);
            }
            None => rest.copy_from_slice(bank.frame(elapsed)),
        }
        (PACKET_LEN, Sent::Audio)
    }
}

/// Decoded-sample lookup for both G.711 laws, so the energy check is a table walk.
pub(crate) struct AudioMeter {
    pcmu: [i16; 256],
    pcma: [i16; 256],
}

/// Mean square above (100/32768)² ≈ −50 dBFS counts as audio; G.711 silence and idle
/// patterns sit far below.
const AUDIBLE_MEAN_SQUARE: i64 = 100 * 100;

impl AudioMeter {
    pub(crate) fn new() -> Self {
        let mut m = AudioMeter {
            pcmu: [0; 256],
            pcma: [0; 256],
        };
        for b in 0..=255u8 {
            m.pcmu[b as usize] = Codec::Pcmu.decode(b);
            m.pcma[b as usize] = Codec::Pcma.decode(b);
        }
        m
    }

    #[inline]
    pub(crate) fn audible(&self, codec: Codec, payload: &[u8]) -> bool {
        if payload.is_empty() {
            return false;
        }
        let table = match codec {
            Codec::Pcmu => &self.pcmu,
            Codec::Pcma => &self.pcma,
        };
        let sum: i64 = payload
            .iter()
            .map(|&b| {
                let s = table[b as usize] as i64;
                s * s
            })
            .sum();
        sum > AUDIBLE_MEAN_SQUARE * payload.len() as i64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan(digits: &str, interval_ticks: u64) -> DtmfPlan {
        DtmfPlan {
            events: digits
                .chars()
                .map(|c| rfc4733::digit_event(c).unwrap())
                .collect(),
            interval_ticks,
        }
    }

    /// (event, end, duration) of a telephone-event payload.
    type Event = (u8, bool, u16);
    /// (marker, pt, seq, ts, event) of one packet.
    type Packet = (bool, u8, u16, u32, Option<Event>);

    fn run(tx: &mut TxState, plan: &DtmfPlan, ticks: std::ops::Range<u64>) -> Vec<Packet> {
        let bank = PayloadBank::silence(Codec::Pcmu);
        let mut buf = [0u8; PACKET_LEN];
        ticks
            .map(|t| {
                let (len, kind) = tx.build(t, plan, &bank, &mut buf);
                let (h, payload) = rtp::parse(&buf[..len]).expect("valid RTP");
                let ev = match kind {
                    Sent::Audio => {
                        assert_eq!(len, PACKET_LEN);
                        assert!(payload.iter().all(|&b| b == 0xFF));
                        None
                    }
                    Sent::Event { .. } => {
                        assert_eq!(payload.len(), 4);
                        let ev = rfc4733::parse(payload).expect("an event");
                        assert_eq!(ev.volume, EVENT_VOLUME);
                        Some((ev.event, ev.end, ev.duration))
                    }
                };
                (h.marker, h.payload_type, h.sequence, h.timestamp, ev)
            })
            .collect()
    }

    #[test]
    fn digit_press_is_start_updates_and_three_ends() {
        let plan = plan("5", 50);
        let mut tx = TxState::new(0xABCD, 100, 1000, 0, Some(101), 10, &plan);
        let pkts = run(&mut tx, &plan, 10..80);
        // Audio until tick 60 (10 + 50), with a marker on the very first packet only.
        assert!(pkts[0].0 && pkts[0].4.is_none());
        assert!(
            pkts[1..50]
                .iter()
                .all(|p| !p.0 && p.1 == 0 && p.4.is_none())
        );
        let press_ts = 1000 + 50 * 160;
        let events: Vec<_> = pkts[50..58].to_vec();
        assert_eq!(
            events[0],
            (true, 101, 150, press_ts, Some((5, false, 160))),
            "start packet has the marker"
        );
        for (i, p) in events[1..5].iter().enumerate() {
            assert_eq!(
                *p,
                (
                    false,
                    101,
                    151 + i as u16,
                    press_ts,
                    Some((5, false, 160 * (i as u16 + 2)))
                )
            );
        }
        for (i, p) in events[5..8].iter().enumerate() {
            assert_eq!(
                *p,
                (false, 101, 155 + i as u16, press_ts, Some((5, true, 800))),
                "end packet {i}"
            );
        }
        // Audio resumes on the tick clock; sequence numbers never skip.
        assert_eq!(pkts[58], (false, 0, 158, 1000 + 58 * 160, None));
        for w in pkts.windows(2) {
            assert_eq!(w[1].2, w[0].2.wrapping_add(1));
        }
        // Next press one interval after the first started.
        let more = run(&mut tx, &plan, 80..120);
        assert_eq!(more[30].4, Some((5, false, 160)), "tick 110");
        assert!(more[30].0);
    }

    #[test]
    fn several_keys_with_gaps_and_timestamps_per_key() {
        let plan = plan("1#", 100);
        let mut tx = TxState::new(1, 65533, u32::MAX - 500, 8, Some(96), 0, &plan);
        let pkts = run(&mut tx, &plan, 0..140);
        // (tick, event, marker, timestamp)
        let ev: Vec<(usize, Event, bool, u32)> = pkts
            .iter()
            .enumerate()
            .filter_map(|(i, p)| p.4.map(|e| (i, e, p.0, p.3)))
            .collect();
        assert_eq!(ev.len(), 16);
        assert_eq!(ev[0].0, 100);
        assert_eq!(ev[0].1, (1, false, 160));
        assert_eq!(
            ev[8].0,
            100 + 8 + INTERDIGIT_TICKS as usize,
            "second key after the gap"
        );
        assert_eq!(ev[8].1, (11, false, 160), "# is event 11");
        assert!(ev[0].2 && ev[8].2 && ev.iter().filter(|e| e.2).count() == 2);
        assert_eq!(
            ev[8].3,
            (u32::MAX - 500).wrapping_add(113 * 160),
            "the second key's own timestamp"
        );
        assert!(ev[..8].iter().all(|e| e.3 == ev[0].3));
        assert!(ev[8..].iter().all(|e| e.3 == ev[8].3));
        assert!(pkts.iter().all(|p| p.4.is_some() || p.1 == 8));
        assert_eq!(pkts[2].2, 65535);
        assert_eq!(pkts[3].2, 0, "sequence wraps");
    }

    #[test]
    fn no_event_payload_type_means_no_presses() {
        let plan = plan("1", 5);
        let mut tx = TxState::new(1, 0, 0, 0, None, 0, &plan);
        assert!(run(&mut tx, &plan, 0..100).iter().all(|p| p.4.is_none()));
    }

    #[test]
    fn skipped_ticks_advance_the_timestamp_not_the_sequence() {
        let plan = DtmfPlan::none();
        let mut tx = TxState::new(1, 10, 0, 0, None, 0, &plan);
        let bank = PayloadBank::silence(Codec::Pcmu);
        let mut buf = [0u8; PACKET_LEN];
        tx.build(0, &plan, &bank, &mut buf);
        tx.build(5, &plan, &bank, &mut buf);
        let (h, _) = rtp::parse(&buf).unwrap();
        assert_eq!((h.sequence, h.timestamp), (11, 800));
    }

    #[test]
    fn signature_frames_count_audio_only() {
        let plan = plan("1", 20);
        let mut tx = TxState::new(1, 0, 0, 0, Some(101), 0, &plan).with_signature_id(321);
        let bank = PayloadBank::signature(Codec::Pcmu);
        let dec = crate::load::signature::SigDecoder::new();
        let mut buf = [0u8; PACKET_LEN];
        let mut counters = Vec::new();
        for t in 0..60 {
            if let (len, Sent::Audio) = tx.build(t, &plan, &bank, &mut buf) {
                let (_, payload) = rtp::parse(&buf[..len]).unwrap();
                counters.push(dec.read(Codec::Pcmu, payload).unwrap());
            }
        }
        assert!(counters.len() < 60, "some ticks carried events");
        for (i, (id, c)) in counters.iter().enumerate() {
            assert_eq!((*id, *c as usize), (321, i), "no hole for the key presses");
        }
    }

    #[test]
    fn meter_tells_speech_from_silence() {
        let meter = AudioMeter::new();
        for codec in [Codec::Pcmu, Codec::Pcma] {
            assert!(!meter.audible(codec, PayloadBank::silence(codec).frame(0)));
            let speech = PayloadBank::speech(codec);
            let audible = (0..100)
                .filter(|&n| meter.audible(codec, speech.frame(n)))
                .count();
            assert!(
                (60..=90).contains(&audible),
                "{codec:?}: {audible} of 100 frames audible"
            );
        }
    }
}
