//! Bridged streams, stream by stream (no sockets): forwarding, numbering across switches,
//! transcoding, re-packetizing, keys across the bridge, music, stereo recording, allocation.

use std::cell::Cell;
use std::net::SocketAddr;
use std::sync::Arc;

use super::*;
use crate::media::bridge::Dest;
use crate::media::inband::DtmfDetector;

const A_PHONE: &str = "127.0.0.1:4000";
const B_PHONE: &str = "127.0.0.2:4002";

fn leg(codec: Codec, event_pt: Option<u8>, remote: &str, ssrc: u32, seq: u16, ts: u32) -> Stream {
    Stream::new(
        StreamParams {
            codec,
            audio_pt: codec.payload_type(),
            event_pt,
            remote: Some(remote.parse().unwrap()),
            send: true,
            receive: true,
            srtp: None,
        },
        ssrc,
        seq,
        ts,
    )
}

fn packet(pt: u8, seq: u16, ts: u32, payload: &[u8]) -> Vec<u8> {
    let mut p = vec![0u8; rtp::HEADER_LEN + payload.len()];
    rtp::write_header(
        &RtpHeader {
            marker: false,
            payload_type: pt,
            sequence: seq,
            timestamp: ts,
            ssrc: 0x77,
        },
        (&mut p[..rtp::HEADER_LEN]).try_into().unwrap(),
    );
    p[rtp::HEADER_LEN..].copy_from_slice(payload);
    p
}

type Sent = Vec<(Vec<u8>, SocketAddr)>;

fn recv(s: &mut Stream, pkt: &[u8], from: &str) -> (Received, Sent) {
    let mut buf = pkt.to_vec();
    let mut out = Vec::new();
    let r = s.receive(&mut buf, from.parse().unwrap(), &mut |p, d| {
        out.push((p.to_vec(), d.addr))
    });
    (r, out)
}

fn tick(s: &mut Stream) -> Option<(RtpHeader, Vec<u8>)> {
    let mut b = [0u8; PACKET_LEN];
    let (len, _) = s.next_packet(&mut b);
    (len > 0).then(|| {
        let (h, p) = rtp::parse(&b[..len]).unwrap();
        (h, p.to_vec())
    })
}

fn header(sent: &(Vec<u8>, SocketAddr)) -> (RtpHeader, Vec<u8>) {
    let (h, p) = rtp::parse(&sent.0).unwrap();
    (h, p.to_vec())
}

fn bridge(a: &mut Stream, b: &mut Stream) {
    a.link(b.egress().clone());
    b.link(a.egress().clone());
}

/// `b` strictly after `a`, modulo 2^32.
fn after(a: u32, b: u32) -> bool {
    (b.wrapping_sub(a) as i32) > 0
}

fn sine(freq: f32, n: usize, amplitude: f32) -> Vec<i16> {
    (0..n)
        .map(|i| (amplitude * (std::f32::consts::TAU * freq * i as f32 / 8000.0).sin()) as i16)
        .collect()
}

#[test]
fn forwarding_rewrites_the_header_in_place_and_numbering_runs_on_across_music_bridge_music() {
    let mut a = leg(Codec::Pcmu, Some(101), A_PHONE, 0xA, 1, 1);
    let mut b = leg(Codec::Pcmu, Some(101), B_PHONE, 0xB, 100, 1000);
    b.music([Arc::from(vec![0x11u8; 480])]);
    for n in 0..3u16 {
        let (h, p) = tick(&mut b).unwrap();
        assert_eq!(
            (h.sequence, h.timestamp, p[0]),
            (100 + n, 1000 + 160 * u32::from(n), 0x11)
        );
    }
    bridge(&mut a, &mut b);
    assert!(!b.is_playing_music(), "a bridge ends the music");
    assert!(tick(&mut b).is_none(), "numbering is with the forwarder");
    let (_, out) = recv(&mut a, &packet(0, 500, 9000, &[0x22; 160]), A_PHONE);
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].1, B_PHONE.parse().unwrap());
    let (h, p) = header(&out[0]);
    assert_eq!(
        (h.sequence, h.timestamp, h.ssrc, h.payload_type, h.marker),
        (103, 1640, 0xB, 0, true),
        "B's own numbering, from B's running clock, marker after the switch"
    );
    assert_eq!(p, [0x22; 160]);
    let (_, out) = recv(&mut a, &packet(0, 501, 9160, &[0x23; 160]), A_PHONE);
    let (h, _) = header(&out[0]);
    assert_eq!((h.sequence, h.timestamp, h.marker), (104, 1800, false));
    assert!(tick(&mut b).is_none());
    // Hold: B hears music; its numbering comes back and runs on.
    b.music([Arc::from(vec![0x33u8; 480])]);
    let (h, p) = tick(&mut b).unwrap();
    assert_eq!((h.sequence, h.ssrc, h.marker, p[0]), (105, 0xB, true, 0x33));
    assert!(after(1800, h.timestamp));
    let music_ts = h.timestamp;
    let (_, out) = recv(&mut a, &packet(0, 502, 9320, &[0x24; 160]), A_PHONE);
    assert!(out.is_empty(), "A's audio does not reach B on hold");
    assert!(
        tick(&mut a).is_none(),
        "A's numbering is with B's forwarder"
    );
    let (_, out) = recv(&mut b, &packet(0, 8, 60, &[0x45; 160]), B_PHONE);
    assert!(
        out.is_empty(),
        "nor B's A: whoever holds does not listen in"
    );
    let (_, out) = recv(&mut b, &packet(101, 9, 220, &[5, 0x80, 0, 160]), B_PHONE);
    assert!(out.is_empty(), "B's keys stay on B's side too");
    // Back from hold.
    b.link(a.egress().clone());
    assert!(tick(&mut b).is_none());
    let (_, out) = recv(&mut a, &packet(0, 503, 9480, &[0x25; 160]), A_PHONE);
    let (h, _) = header(&out[0]);
    assert_eq!((h.sequence, h.marker), (106, true));
    assert!(after(music_ts, h.timestamp));
    // And the other way: B's phone is heard by A with A's numbering.
    assert!(tick(&mut a).is_none());
    let (_, out) = recv(&mut b, &packet(0, 7, 70, &[0x44; 160]), B_PHONE);
    let (h, _) = header(&out[0]);
    assert_eq!((h.ssrc, h.payload_type), (0xA, 0));
    assert_eq!(out[0].1, A_PHONE.parse().unwrap());
    // Unbridged: each sends its own again, numbering continuing.
    assert!(a.unlink().is_none());
    b.unlink();
    let (h, _) = tick(&mut b).unwrap();
    assert_eq!((h.sequence, h.marker), (107, true));
}

#[test]
fn a_bridge_cuts_a_prompt_short_and_a_play_interrupts_it() {
    let mut a = leg(Codec::Pcmu, Some(101), A_PHONE, 0xA, 1, 1);
    let mut b = leg(Codec::Pcmu, Some(101), B_PHONE, 0xB, 1, 1);
    b.play(3, [Arc::from(vec![9u8; 1600])]);
    tick(&mut b);
    bridge(&mut a, &mut b);
    let mut buf = [0u8; PACKET_LEN];
    assert_eq!(
        b.next_packet(&mut buf),
        (0, Some(3)),
        "cut short, reported done"
    );
    // A prompt on a bridged leg (a whisper) goes out over the partner, which comes back after.
    b.play(4, [Arc::from(vec![8u8; 160])]);
    let (len, done) = b.next_packet(&mut buf);
    assert_eq!((len, done, buf[12]), (PACKET_LEN, Some(4), 8));
    let (_, out) = recv(&mut a, &packet(0, 1, 0, &[0x22; 160]), A_PHONE);
    assert!(out.is_empty(), "the prompt owns B's numbering this tick");
    assert!(tick(&mut b).is_none());
    let (_, out) = recv(&mut a, &packet(0, 2, 160, &[0x22; 160]), A_PHONE);
    let (h, _) = header(&out[0]);
    let (h_prompt, _) = rtp::parse(&buf).unwrap();
    assert_eq!(h.sequence, h_prompt.sequence.wrapping_add(1));
    assert!(h.marker);
}

#[test]
fn packets_of_30_and_40_ms_pass_whole() {
    let mut a = leg(Codec::Pcmu, Some(101), A_PHONE, 0xA, 1, 1);
    let mut b = leg(Codec::Pcmu, Some(101), B_PHONE, 0xB, 1, 1);
    bridge(&mut a, &mut b);
    tick(&mut a);
    tick(&mut b);
    // B's phone sends 30 ms too: that is its packet time.
    let (_, out) = recv(&mut b, &packet(0, 1, 0, &[0x55; 240]), B_PHONE);
    assert_eq!(out[0].0.len(), 12 + 240);
    let (_, out) = recv(&mut a, &packet(0, 1, 0, &[0x66; 240]), A_PHONE);
    assert_eq!(out[0].0.len(), 12 + 240);
    let (h0, _) = header(&out[0]);
    let (_, out) = recv(&mut a, &packet(0, 2, 240, &[0x66; 240]), A_PHONE);
    let (h1, p) = header(&out[0]);
    assert_eq!(p.len(), 240);
    assert_eq!(
        (h1.sequence, h1.timestamp),
        (h0.sequence + 1, h0.timestamp + 240)
    );
    // A leg whose phone has not sent audio yet takes whatever comes, whole.
    let mut c = leg(Codec::Pcmu, Some(101), A_PHONE, 0xC, 1, 1);
    let mut d = leg(Codec::Pcmu, Some(101), B_PHONE, 0xD, 1, 1);
    bridge(&mut c, &mut d);
    tick(&mut d);
    let (_, out) = recv(&mut c, &packet(0, 1, 0, &[0x66; 320]), A_PHONE);
    assert_eq!(out[0].0.len(), 12 + 320);
}

#[test]
fn different_packet_times_are_repacketized_at_the_receivers_own() {
    let mut a = leg(Codec::Pcmu, Some(101), A_PHONE, 0xA, 1, 1);
    let mut b = leg(Codec::Pcmu, Some(101), B_PHONE, 0xB, 1, 1);
    bridge(&mut a, &mut b);
    tick(&mut a);
    tick(&mut b);
    recv(&mut b, &packet(0, 1, 0, &[0xFF; 160]), B_PHONE);
    let voice: Vec<i16> = sine(700.0, 480, 6000.0);
    let mut sent = Vec::new();
    for (n, chunk) in voice.chunks(240).enumerate() {
        let mut payload = vec![0u8; 240];
        Codec::Pcmu.encode_into(chunk, &mut payload);
        let (_, out) = recv(
            &mut a,
            &packet(0, n as u16, 240 * n as u32, &payload),
            A_PHONE,
        );
        assert_eq!(
            out.len(),
            n + 1,
            "240 then 480 samples: one packet, then two"
        );
        sent.extend(out);
    }
    let mut heard = Vec::new();
    for (i, s) in sent.iter().enumerate() {
        let (h, p) = header(s);
        let (h0, _) = header(&sent[0]);
        assert_eq!(p.len(), 160);
        assert_eq!(
            (h.sequence, h.timestamp),
            (h0.sequence + i as u16, h0.timestamp + 160 * i as u32)
        );
        let mut pcm = [0i16; 160];
        Codec::Pcmu.decode_into(&p, &mut pcm);
        heard.extend(pcm);
    }
    let mut want = vec![0i16; 480];
    let mut enc = vec![0u8; 480];
    Codec::Pcmu.encode_into(&voice, &mut enc);
    Codec::Pcmu.decode_into(&enc, &mut want);
    assert_eq!(heard, want, "every sample, in order");
}

#[test]
fn pcmu_and_pcma_are_transcoded_per_packet() {
    let mut a = leg(Codec::Pcmu, Some(101), A_PHONE, 0xA, 1, 1);
    let mut b = leg(Codec::Pcma, Some(101), B_PHONE, 0xB, 1, 1);
    bridge(&mut a, &mut b);
    tick(&mut a);
    tick(&mut b);
    let voice = sine(1000.0, 160, 8000.0);
    let mut payload = [0u8; 160];
    Codec::Pcmu.encode_into(&voice, &mut payload);
    let (_, out) = recv(&mut a, &packet(0, 1, 0, &payload), A_PHONE);
    let (h, p) = header(&out[0]);
    assert_eq!((h.payload_type, p.len()), (8, 160));
    let mut pcm = [0i16; 160];
    Codec::Pcma.decode_into(&p, &mut pcm);
    for (got, want) in pcm.iter().zip(&voice) {
        let tolerance = i32::from(want.unsigned_abs()) / 8 + 48;
        assert!(
            (i32::from(*got) - i32::from(*want)).abs() <= tolerance,
            "{got} vs {want}"
        );
    }
    // And back: A-law in, µ-law out.
    let mut payload = [0u8; 160];
    Codec::Pcma.encode_into(&voice, &mut payload);
    let (_, out) = recv(&mut b, &packet(8, 1, 0, &payload), B_PHONE);
    let (h, p) = header(&out[0]);
    assert_eq!(h.payload_type, 0);
    Codec::Pcmu.decode_into(&p, &mut pcm);
    for (got, want) in pcm.iter().zip(&voice) {
        let tolerance = i32::from(want.unsigned_abs()) / 8 + 48;
        assert!(
            (i32::from(*got) - i32::from(*want)).abs() <= tolerance,
            "{got} vs {want}"
        );
    }
}

fn key(event: u8, end: bool, duration: u16) -> [u8; 4] {
    let mut p = [0u8; 4];
    rfc4733::write(
        &rfc4733::TelephoneEvent {
            event,
            end,
            volume: 10,
            duration,
        },
        &mut p,
    );
    p
}

#[test]
fn telephone_events_cross_with_the_payload_type_mapped() {
    let mut a = leg(Codec::Pcmu, Some(101), A_PHONE, 0xA, 1, 1);
    let mut b = leg(Codec::Pcmu, Some(96), B_PHONE, 0xB, 1, 1);
    bridge(&mut a, &mut b);
    tick(&mut a);
    tick(&mut b);
    let ev = key(5, false, 160);
    let (got, out) = recv(&mut a, &packet(101, 1, 800, &ev), A_PHONE);
    assert_eq!(got.digit, Some('5'), "the key is still reported for A");
    let (h, p) = header(&out[0]);
    assert_eq!((h.payload_type, h.ssrc), (96, 0xB));
    assert_eq!(p, ev);
    let (_, out) = recv(&mut a, &packet(101, 2, 800, &key(5, true, 320)), A_PHONE);
    let (h2, _) = header(&out[0]);
    assert_eq!(h2.timestamp, h.timestamp, "one event, one timestamp");
    assert_eq!(h2.sequence, h.sequence + 1);
}

/// Decode `packets` and run them through the project's Goertzel detector.
fn detect(codec: Codec, packets: &[(RtpHeader, Vec<u8>)]) -> String {
    let mut det = DtmfDetector::new();
    let mut keys = String::new();
    for (_, p) in packets {
        let mut pcm = [0i16; 160];
        codec.decode_into(p, &mut pcm);
        det.process_each(&pcm, |c| keys.push(c));
    }
    for _ in 0..3 {
        det.process_each(&[0i16; 160], |c| keys.push(c));
    }
    keys
}

#[test]
fn a_key_reaches_a_leg_without_telephone_event_in_band() {
    let mut a = leg(Codec::Pcmu, Some(101), A_PHONE, 0xA, 1, 1);
    let mut b = leg(Codec::Pcma, None, B_PHONE, 0xB, 1, 1);
    bridge(&mut a, &mut b);
    tick(&mut a);
    tick(&mut b);
    let (got, out) = recv(&mut a, &packet(101, 1, 800, &key(9, false, 160)), A_PHONE);
    assert_eq!(got.digit, Some('9'));
    assert!(out.is_empty(), "no event for a leg that cannot take one");
    recv(&mut a, &packet(101, 2, 800, &key(9, true, 320)), A_PHONE);
    let packets: Vec<_> = (0..8)
        .map(|_| tick(&mut b).expect("B plays the key"))
        .collect();
    assert!(
        packets
            .iter()
            .all(|(h, _)| h.payload_type == 8 && h.ssrc == 0xB)
    );
    assert_eq!(detect(Codec::Pcma, &packets), "9");
    assert!(tick(&mut b).is_none(), "then B hears A again");
}

#[test]
fn a_held_leg_does_not_play_its_partners_keys() {
    let mut a = leg(Codec::Pcmu, Some(101), A_PHONE, 0xA, 1, 1);
    let mut b = leg(Codec::Pcma, None, B_PHONE, 0xB, 1, 1);
    bridge(&mut a, &mut b);
    tick(&mut a);
    tick(&mut b);
    b.music([Arc::from(vec![0xD5u8; 480])]);
    let (got, _) = recv(&mut a, &packet(101, 1, 800, &key(9, false, 160)), A_PHONE);
    assert_eq!(got.digit, Some('9'), "the key is still reported for A");
    recv(&mut a, &packet(101, 2, 800, &key(9, true, 320)), A_PHONE);
    let packets: Vec<_> = (0..8)
        .map(|_| tick(&mut b).expect("B hears its music"))
        .collect();
    assert_eq!(
        detect(Codec::Pcma, &packets),
        "",
        "held, B does not hear A's key"
    );
}

#[test]
fn send_digit_emits_rfc4733_with_three_end_packets() {
    let mut s = leg(Codec::Pcmu, Some(101), A_PHONE, 0xA, 10, 0);
    tick(&mut s);
    s.send_digit('7');
    let packets: Vec<_> = (0..7).map(|_| tick(&mut s).unwrap()).collect();
    for (i, (h, p)) in packets.iter().enumerate() {
        assert_eq!(
            (h.payload_type, h.sequence, h.timestamp, h.marker),
            (101, 11 + i as u16, 160, i == 0)
        );
        let ev = rfc4733::parse(p).unwrap();
        assert_eq!(p.len(), 4);
        assert_eq!(ev.event, 7);
        assert_eq!(ev.duration, 160 * (i.min(4) as u16 + 1));
        assert_eq!(ev.end, i >= 4, "packet {i}");
    }
    let (h, _) = tick(&mut s).unwrap();
    assert_eq!(
        (h.payload_type, h.sequence, h.timestamp, h.marker),
        (0, 18, 160 * 8, true)
    );
}

#[test]
fn send_digit_without_telephone_event_is_a_tone_pair_the_detector_hears() {
    for codec in [Codec::Pcmu, Codec::Pcma] {
        let mut s = leg(codec, None, A_PHONE, 0xA, 10, 0);
        s.send_digit('#');
        s.send_digit('#');
        s.send_digit('1');
        s.send_digit('x');
        let packets: Vec<_> = (0..24).map(|_| tick(&mut s).unwrap()).collect();
        assert!(
            packets
                .iter()
                .all(|(h, p)| h.payload_type == codec.payload_type() && p.len() == 160)
        );
        assert_eq!(detect(codec, &packets), "##1");
        let (_, p) = tick(&mut s).unwrap();
        assert!(p.iter().all(|b| *b == codec.silence_byte()));
    }
}

#[test]
fn music_loops_and_resumes_after_a_play() {
    let mut s = leg(Codec::Pcmu, Some(101), A_PHONE, 0xA, 0, 0);
    s.music([Arc::from(vec![1u8; 320]), Arc::from(vec![2u8; 160])]);
    let mut frames = Vec::new();
    let mut b = [0u8; PACKET_LEN];
    let mut step = |s: &mut Stream| {
        let (len, done) = s.next_packet(&mut b);
        assert_eq!(len, PACKET_LEN);
        (b[12], done)
    };
    for _ in 0..4 {
        frames.push(step(&mut s));
    }
    s.play(9, [Arc::from(vec![7u8; 320])]);
    for _ in 0..5 {
        frames.push(step(&mut s));
    }
    assert_eq!(
        frames,
        [
            (1, None),
            (1, None),
            (2, None),
            (1, None),
            (7, None),
            (7, Some(9)),
            (1, None),
            (2, None),
            (1, None)
        ]
    );
    s.stop();
    assert_eq!(step(&mut s).0, 0xFF, "stop ends the music");
}

#[test]
fn a_stereo_recording_has_each_side_on_its_own_channel() {
    let mut a = leg(Codec::Pcmu, Some(101), A_PHONE, 0xA, 1, 1);
    let mut b = leg(Codec::Pcma, Some(101), B_PHONE, 0xB, 1, 1);
    bridge(&mut a, &mut b);
    assert!(a.record_bridge(4).is_none());
    let caller = packet(0, 1, 0, &[Codec::Pcmu.encode(1000); 160]);
    let agent = packet(8, 1, 0, &[Codec::Pcma.encode(-3000); 160]);
    for n in 0..3 {
        tick(&mut a);
        tick(&mut b);
        recv(&mut a, &caller, A_PHONE);
        if n < 2 {
            recv(&mut b, &agent, B_PHONE);
        }
        assert!(a.tick_stereo().is_none());
    }
    let rec = a
        .unlink()
        .expect("the end of the bridge ends the recording");
    assert_eq!((rec.id, rec.samples.len()), (4, 3 * 320));
    let (left, right): (Vec<i16>, Vec<i16>) = rec.samples.chunks(2).map(|p| (p[0], p[1])).unzip();
    assert!(left.iter().all(|s| (s - 1000).abs() < 40), "caller left");
    assert!(
        right[..320].iter().all(|s| (s + 3000).abs() < 100),
        "agent right"
    );
    assert!(
        right[320..].iter().all(|s| *s == 0),
        "silence where the agent sent nothing"
    );
    assert!(!a.is_recording_bridge());
}

#[test]
fn stop_recording_ends_only_its_own_stereo_recording() {
    let mut a = leg(Codec::Pcmu, Some(101), A_PHONE, 0xA, 1, 1);
    let mut b = leg(Codec::Pcmu, Some(101), B_PHONE, 0xB, 1, 1);
    bridge(&mut a, &mut b);
    a.record_bridge(2);
    a.tick_stereo();
    assert!(a.stop_stereo(1).is_none());
    let rec = a.stop_stereo(2).unwrap();
    assert_eq!(rec.samples, vec![0; 320]);
}

/// Counts this thread's allocations, so a test can check a stretch of code makes none.
struct Counting;

thread_local! {
    static ALLOCATIONS: Cell<u64> = const { Cell::new(0) };
}

// SAFETY: every call goes to the system allocator unchanged; the count is a thread-local
// `Cell` with a const initializer, which needs no allocation itself.
unsafe impl std::alloc::GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: std::alloc::Layout) -> *mut u8 {
        ALLOCATIONS.with(|c| c.set(c.get() + 1));
        // SAFETY: forwarded as is.
        unsafe { std::alloc::System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: std::alloc::Layout) {
        // SAFETY: forwarded as is.
        unsafe { std::alloc::System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: std::alloc::Layout, size: usize) -> *mut u8 {
        ALLOCATIONS.with(|c| c.set(c.get() + 1));
        // SAFETY: forwarded as is.
        unsafe { std::alloc::System.realloc(ptr, layout, size) }
    }
}

#[global_allocator]
static COUNTING: Counting = Counting;

#[test]
fn forwarding_never_allocates() {
    // Three bridges: same codec, transcoding, re-packetizing; keys both ways.
    let mut pairs = [
        (
            leg(Codec::Pcmu, Some(101), A_PHONE, 1, 1, 1),
            leg(Codec::Pcmu, Some(101), B_PHONE, 2, 1, 1),
            240,
        ),
        (
            leg(Codec::Pcmu, Some(101), A_PHONE, 3, 1, 1),
            leg(Codec::Pcma, None, B_PHONE, 4, 1, 1),
            160,
        ),
        (
            leg(Codec::Pcmu, Some(101), A_PHONE, 5, 1, 1),
            leg(Codec::Pcmu, Some(96), B_PHONE, 6, 1, 1),
            240,
        ),
    ];
    let from_a: SocketAddr = A_PHONE.parse().unwrap();
    let from_b: SocketAddr = B_PHONE.parse().unwrap();
    let mut a_pkt = [0u8; 12 + 240];
    let mut b_pkt = [0u8; 12 + 160];
    let mut sent = 0u32;
    let mut run = |pairs: &mut [(Stream, Stream, usize)], n: u16, sent: &mut u32| {
        let mut out = [0u8; PACKET_LEN];
        for (a, b, a_len) in pairs.iter_mut() {
            a.next_packet(&mut out);
            b.next_packet(&mut out);
            let a_len = *a_len;
            let h = RtpHeader {
                marker: false,
                payload_type: 0,
                sequence: n,
                timestamp: u32::from(n) * a_len as u32,
                ssrc: 9,
            };
            rtp::write_header(&h, (&mut a_pkt[..12]).try_into().unwrap());
            a_pkt[12..].fill(Codec::Pcmu.encode(500));
            let bh = RtpHeader {
                payload_type: b.params().audio_pt,
                ..h
            };
            rtp::write_header(&bh, (&mut b_pkt[..12]).try_into().unwrap());
            b_pkt[12..].fill(b.params().codec.encode(-500));
            let mut count = |_: &[u8], _: Dest| *sent += 1;
            a.receive(&mut a_pkt[..12 + a_len], from_a, &mut count);
            b.receive(&mut b_pkt, from_b, &mut count);
            if n.is_multiple_of(25) {
                let k = key(5, n.is_multiple_of(50), 160);
                let kh = RtpHeader {
                    payload_type: 101,
                    ..h
                };
                rtp::write_header(&kh, (&mut a_pkt[..12]).try_into().unwrap());
                a_pkt[12..16].copy_from_slice(&k);
                a.receive(&mut a_pkt[..16], from_a, &mut count);
            }
        }
    };
    for pair in pairs.iter_mut() {
        bridge(&mut pair.0, &mut pair.1);
    }
    // Warm up: latching, learning packet times, the first key queue.
    for n in 0..60 {
        run(&mut pairs, n, &mut sent);
    }
    let before = ALLOCATIONS.with(Cell::get);
    drop(std::hint::black_box(vec![0u8; 64]));
    assert_eq!(
        ALLOCATIONS.with(Cell::get),
        before + 1,
        "the counter counts"
    );
    let before = before + 1;
    let sent_before = sent;
    for n in 60..560 {
        run(&mut pairs, n, &mut sent);
    }
    assert_eq!(
        ALLOCATIONS.with(Cell::get) - before,
        0,
        "no allocation per packet"
    );
    assert!(
        sent - sent_before > 2000,
        "packets were forwarded: {}",
        sent - sent_before
    );
}

#[test]
fn a_partner_whose_socket_is_connected_there_is_sent_to_with_a_plain_send() {
    let mut a = leg(Codec::Pcmu, Some(101), A_PHONE, 0xA, 1, 1);
    let mut b = leg(Codec::Pcmu, Some(101), B_PHONE, 0xB, 1, 1);
    bridge(&mut a, &mut b);
    tick(&mut a);
    tick(&mut b);
    let mut dests = Vec::new();
    let from: SocketAddr = B_PHONE.parse().unwrap();
    let mut pkt = packet(0, 1, 0, &[0x22; 160]);
    b.receive(&mut pkt, from, &mut |_, d| dests.push(d));
    recv(&mut a, &packet(0, 1, 0, &[0x22; 160]), A_PHONE);
    a.socket_connected(Some(A_PHONE.parse().unwrap()));
    let mut pkt = packet(0, 2, 160, &[0x22; 160]);
    b.receive(&mut pkt, from, &mut |_, d| dests.push(d));
    a.socket_connected(None);
    let mut pkt = packet(0, 3, 320, &[0x22; 160]);
    b.receive(&mut pkt, from, &mut |_, d| dests.push(d));
    let addr: SocketAddr = A_PHONE.parse().unwrap();
    assert_eq!(
        dests,
        [false, true, false].map(|connected| Dest { addr, connected })
    );
}

#[test]
fn a_silent_partner_is_covered_with_silence_and_numbering_runs_on() {
    let mut a = leg(Codec::Pcmu, Some(101), A_PHONE, 0xA, 1, 1);
    let mut b = leg(Codec::Pcmu, Some(101), B_PHONE, 0xB, 50, 0);
    bridge(&mut a, &mut b);
    assert!(tick(&mut b).is_none());
    let (_, out) = recv(&mut a, &packet(0, 1, 0, &[0x22; 160]), A_PHONE);
    let (first, _) = header(&out[0]);
    assert_eq!(first.sequence, 50);
    // 200 ms of nothing from A: B's home sends silence, every tick, numbering running on.
    for _ in 0..10 {
        assert!(tick(&mut b).is_none());
    }
    let mut last = first;
    for n in 0..5u16 {
        let (h, p) = tick(&mut b).expect("silence while A says nothing");
        assert_eq!((h.sequence, h.ssrc), (51 + n, 0xB));
        assert!(after(last.timestamp, h.timestamp));
        assert!(p.iter().all(|x| *x == 0xFF));
        last = h;
    }
    // A talks again: forwarded at once, a new talkspurt.
    let (_, out) = recv(&mut a, &packet(0, 20, 3200, &[0x22; 160]), A_PHONE);
    let (h, _) = header(&out[0]);
    assert_eq!((h.sequence, h.marker), (56, true));
    assert!(after(last.timestamp, h.timestamp));
    assert!(tick(&mut b).is_none(), "and B's home stands back again");
}
