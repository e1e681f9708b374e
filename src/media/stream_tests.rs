//! Unit tests of one stream: sending, latching, timeouts, recording (bridges are in
//! `stream_bridge_tests.rs`).

use super::*;

fn params() -> StreamParams {
    StreamParams {
        codec: Codec::Pcmu,
        audio_pt: 0,
        event_pt: Some(101),
        remote: Some("127.0.0.1:5555".parse().unwrap()),
        send: true,
        receive: true,
        srtp: None,
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
            latched: Some(from),
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
            duration: 160u16.wrapping_mul(sequence.wrapping_add(1)),
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

/// One tick without a packet, with a long RTP timeout and a first-packet limit of 10.
fn first_limit_tick(s: &mut Stream) -> bool {
    s.tick_silence(1000, 10)
}

#[test]
fn a_sprayer_on_the_callers_ip_injects_no_digits_before_or_after_real_media() {
    let sdp: SocketAddr = "192.0.2.10:4000".parse().unwrap();
    let mut s = Stream::new(params_from("192.0.2.10:4000"), 1, 0, 0);
    let sprayer: SocketAddr = "192.0.2.10:4002".parse().unwrap();
    // Before the caller's first packet: random SSRCs and sequence numbers, keys all.
    for n in 0..20u32 {
        assert_eq!(
            s.on_packet(&key5(n * 7919, (n * 4099) as u16), sprayer),
            Received::default(),
            "packet {n}"
        );
    }
    assert!(!s.is_latched());
    assert_eq!(s.destination(), Some(sdp), "still aimed at the SDP address");
    assert!(
        (0..10).any(|_| first_limit_tick(&mut s)),
        "a stranger does not keep the call alive"
    );
    // The caller's media, from the very address and port of the SDP: latched at once,
    // and its key counts.
    let got = s.on_packet(&key5(9, 0), sdp);
    assert_eq!(
        got,
        Received {
            digit: Some('5'),
            latched: Some(sdp),
        }
    );
    // After: the sprayer may number perfectly, it is never heard nor followed.
    let mut fresh = key5(66, 0);
    fresh[12] = 7; // another key
    for seq in 0..20 {
        let mut pkt = key5(66, seq);
        pkt[12] = 7;
        assert_eq!(s.on_packet(&pkt, sprayer), Received::default());
    }
    assert_eq!(s.on_packet(&fresh, sprayer), Received::default());
    assert_eq!(s.latched(), Some(sdp));
    assert_eq!(s.destination(), Some(sdp));
    assert_eq!(
        s.stats(),
        StreamStats {
            foreign: 41,
            heard: true,
            unauthentic: 0,
            // Only the latched source's packet counts for loss, whatever the sprayer numbers.
            received: 1,
            lost: 0,
        }
    );
}

#[test]
fn another_ip_is_never_heard_when_the_sdp_names_a_routable_one() {
    let mut s = Stream::new(params_from("192.0.2.10:4000"), 1, 0, 0);
    let other: SocketAddr = "198.51.100.7:5000".parse().unwrap();
    for seq in 0..50 {
        assert_eq!(s.on_packet(&key5(66, seq), other), Received::default());
    }
    assert!(!s.is_latched());
    assert_eq!(s.stats().foreign, 50);
}

#[test]
fn a_phone_behind_nat_is_learnt_from_a_run_and_then_alone_is_heard() {
    // The phone announces its private address; its packets come from the NAT's.
    let mut s = Stream::new(params_from("192.168.1.20:4000"), 1, 0, 0);
    let nat: SocketAddr = "203.0.113.5:6000".parse().unwrap();
    let other: SocketAddr = "198.51.100.7:5000".parse().unwrap();
    let rtcp = [0x80u8, 200, 0, 6, 0, 0, 0, 1];
    assert_eq!(s.on_packet(&key5(9, 0), nat), Received::default());
    assert_eq!(s.on_packet(&key5(9, 1), nat), Received::default());
    // What is not valid RTP neither counts nor breaks the run.
    s.on_packet(&rtcp, other);
    s.on_packet(b"garbage!!!!!!!!!!", other);
    assert_eq!(s.on_packet(&key5(9, 2), nat), Received::default());
    assert_eq!(
        s.on_packet(&key5(9, 3), nat),
        Received {
            digit: Some('5'),
            latched: Some(nat),
        },
        "fourth in a row"
    );
    assert_eq!(s.destination(), Some(nat));
    for seq in 4..10 {
        assert_eq!(s.on_packet(&key5(66, seq), other), Received::default());
    }
    assert_eq!(s.latched(), Some(nat));
    assert_eq!(
        s.stats().foreign,
        3 + 6,
        "the run's first three, the stranger's six"
    );
}

#[test]
fn new_sdp_address_starts_latching_over() {
    let mut s = Stream::new(params_from("192.0.2.10:4000"), 1, 0, 0);
    let caller: SocketAddr = "192.0.2.20:4000".parse().unwrap();
    s.update(params_from("192.0.2.20:4000"));
    assert_eq!(s.on_packet(&key5(9, 0), caller).latched, Some(caller));
    s.update(params_from("192.0.2.20:4000"));
    assert_eq!(s.latched(), Some(caller), "same address: latch kept");
    s.update(params_from("192.0.2.30:4000"));
    assert_eq!(s.latched(), None);
    assert_eq!(s.destination(), "192.0.2.30:4000".parse().ok());
}

#[test]
fn a_stream_that_never_hears_its_caller_times_out_at_the_first_packet_limit() {
    let mut s = Stream::new(params(), 1, 0, 0);
    assert!(!(0..9).any(|_| first_limit_tick(&mut s)));
    assert!(first_limit_tick(&mut s), "ten ticks of nothing at all");
    assert!(
        !(0..2000).any(|_| first_limit_tick(&mut s)),
        "reported once"
    );
    // Once heard, only the RTP timeout applies.
    let mut s = Stream::new(params(), 1, 0, 0);
    s.on_packet(&key5(9, 0), CALLER.parse().unwrap());
    assert!(!(0..999).any(|_| first_limit_tick(&mut s)));
    assert!(first_limit_tick(&mut s));
    // 0: no first-packet limit; the ACK's Update (sending on) does not restart the count.
    let mut s = Stream::new(
        StreamParams {
            send: false,
            ..params()
        },
        1,
        0,
        0,
    );
    assert!(!(0..5).any(|_| first_limit_tick(&mut s)));
    s.update(params());
    assert!(!(0..4).any(|_| first_limit_tick(&mut s)));
    assert!(
        first_limit_tick(&mut s),
        "counted from the start, not the update"
    );
    let mut s = Stream::new(params(), 1, 0, 0);
    assert!(!(0..999).any(|_| s.tick_silence(1000, 0)));
    assert!(s.tick_silence(1000, 0));
}

#[test]
fn a_stream_that_may_not_send_sends_nothing_but_keeps_time() {
    let mut s = Stream::new(
        StreamParams {
            send: false,
            ..params()
        },
        1,
        0,
        0,
    );
    s.play(1, [Arc::from(vec![7u8; 1600])]);
    s.send_digit('5');
    let mut buf = [0u8; PACKET_LEN];
    assert!((0..20).all(|_| s.next_packet(&mut buf).0 == 0));
    s.update(params());
    assert!(s.next_packet(&mut buf).0 > 0, "the ACK turns sending on");
}

#[test]
fn silence_timeout_fires_once_and_not_on_hold() {
    let mut s = Stream::new(params(), 1, 0, 0);
    assert!(!(0..9).any(|_| s.tick_silence(10, 0)));
    assert!(s.tick_silence(10, 0));
    assert!(!s.tick_silence(10, 0));
    s.update(StreamParams {
        receive: false,
        ..params()
    });
    assert!(!(0..100).any(|_| s.tick_silence(10, 5)));
}

/// A PCMU packet from the caller carrying `samples`.
fn audio(sequence: u16, samples: &[i16; SAMPLES_PER_FRAME]) -> [u8; PACKET_LEN] {
    let mut pkt = [0u8; PACKET_LEN];
    rtp::write_header(
        &RtpHeader {
            marker: false,
            payload_type: 0,
            sequence,
            timestamp: u32::from(sequence) * 160,
            ssrc: 9,
        },
        (&mut pkt[..12]).try_into().unwrap(),
    );
    Codec::Pcmu.encode_into(samples, &mut pkt[12..]);
    pkt
}

fn tone(phase: usize) -> [i16; SAMPLES_PER_FRAME] {
    std::array::from_fn(|i| {
        let t = (phase * SAMPLES_PER_FRAME + i) as f32 / 8000.0;
        ((t * 440.0 * std::f32::consts::TAU).sin() * 8000.0) as i16
    })
}

const CALLER: &str = "127.0.0.1:5555";

/// One pacing tick of a recording stream: a packet out, `packet` in (if any), the tick
/// counted.
fn tick(s: &mut Stream, packet: Option<&[u8]>) -> Option<Recording> {
    let mut out = [0u8; PACKET_LEN];
    s.next_packet(&mut out);
    if let Some(p) = packet {
        s.on_packet(p, CALLER.parse().unwrap());
    }
    s.tick_recording()
}

#[test]
fn recording_appends_the_decoded_audio_of_each_packet() {
    let mut s = Stream::new(params(), 1, 0, 0);
    assert!(
        s.record(3, Duration::from_secs(10), Duration::from_secs(2))
            .is_none()
    );
    let mut want = Vec::new();
    for n in 0..5 {
        let frame = tone(n);
        let pkt = audio(n as u16, &frame);
        want.extend(pkt[12..].iter().map(|b| Codec::Pcmu.decode(*b)));
        assert!(tick(&mut s, Some(&pkt)).is_none());
    }
    let rec = s.stop_recording(3).expect("the key ends it");
    assert_eq!((rec.id, rec.heard), (3, true));
    assert_eq!(rec.samples, want);
    assert!(!s.is_recording());
}

#[test]
fn recording_ends_on_silence_after_speech_with_the_tail_trimmed() {
    let mut s = Stream::new(params(), 1, 0, 0);
    s.record(1, Duration::from_secs(30), Duration::from_millis(400));
    for n in 0..25 {
        assert!(tick(&mut s, Some(&audio(n, &tone(n.into())))).is_none());
    }
    let quiet = audio(0, &[0; SAMPLES_PER_FRAME]);
    let mut ended = None;
    for n in 1..=30 {
        if let Some(rec) = tick(&mut s, Some(&quiet)) {
            ended = Some((n, rec));
            break;
        }
    }
    let (after, rec) = ended.expect("silence ends the recording");
    assert_eq!(after, 20, "400 ms of quiet ticks");
    assert!(rec.heard);
    assert_eq!(
        rec.samples.len(),
        25 * 160 + crate::media::recorder::KEEP_AFTER_SOUND,
        "0.3 s of the silence kept"
    );
}

#[test]
fn a_caller_who_sends_nothing_is_heard_after_the_silence_limit_as_nothing() {
    let mut s = Stream::new(params(), 1, 0, 0);
    s.record(1, Duration::from_secs(30), Duration::from_millis(200));
    let ended = (1..=20).find_map(|n| tick(&mut s, None).map(|r| (n, r)));
    let (n, rec) = ended.expect("ends");
    assert_eq!(n, 10);
    assert!(!rec.heard);
    assert!(rec.samples.is_empty());
    // Sending silence is the same as sending nothing.
    s.record(2, Duration::from_secs(30), Duration::from_millis(200));
    let quiet = audio(0, &[0; SAMPLES_PER_FRAME]);
    let rec = (0..20).find_map(|_| tick(&mut s, Some(&quiet))).unwrap();
    assert_eq!((rec.id, rec.heard), (2, false));
}

#[test]
fn recording_ends_at_max_length_even_while_the_caller_talks() {
    let mut s = Stream::new(params(), 1, 0, 0);
    s.record(1, Duration::from_millis(200), Duration::from_secs(5));
    let ended =
        (0..20u16).find_map(|n| tick(&mut s, Some(&audio(n, &tone(n.into())))).map(|r| (n, r)));
    let (n, rec) = ended.expect("ends");
    assert_eq!(n, 9, "the tenth tick");
    assert_eq!(rec.samples.len(), 1600);
    // Ticks count too: packets that stop coming do not stretch the limit.
    s.record(2, Duration::from_millis(200), Duration::from_secs(5));
    tick(&mut s, Some(&audio(0, &tone(0))));
    let n = (2..=20).find(|_| tick(&mut s, None).is_some());
    assert_eq!(n, Some(10));
}

#[test]
fn stop_recording_ends_only_the_recording_it_names() {
    let mut s = Stream::new(params(), 1, 0, 0);
    s.record(4, Duration::from_secs(10), Duration::from_secs(2));
    tick(&mut s, Some(&audio(0, &tone(0))));
    assert!(s.stop_recording(3).is_none(), "a late key for an older one");
    assert!(s.is_recording());
    let rec = s.stop_recording(4).unwrap();
    assert_eq!(rec.samples.len(), 160);
    assert!(s.stop_recording(4).is_none());
    assert!(tick(&mut s, None).is_none());
}

#[test]
fn a_closing_stream_hands_over_what_it_recorded() {
    let mut s = Stream::new(params(), 1, 0, 0);
    assert!(s.take_recording().is_none());
    s.record(1, Duration::from_secs(10), Duration::from_secs(2));
    tick(&mut s, Some(&audio(0, &tone(0))));
    let rec = s.take_recording().unwrap();
    assert!(rec.heard);
    // A new recording over an unfinished one hands the old one back too.
    s.record(2, Duration::from_secs(10), Duration::from_secs(2));
    tick(&mut s, Some(&audio(1, &tone(1))));
    let old = s.record(3, Duration::from_secs(10), Duration::from_secs(2));
    assert_eq!(old.map(|r| (r.id, r.heard)), Some((2, true)));
}

#[test]
fn packets_never_allocate_or_move_the_buffer() {
    let mut s = Stream::new(params(), 1, 0, 0);
    s.record(1, Duration::from_secs(1), Duration::from_secs(5));
    let (cap, at) = {
        let r = s.recorder.as_deref().unwrap();
        (r.capacity(), r.buffer_at())
    };
    assert!(cap >= 8000);
    for n in 0..60u16 {
        s.on_packet(&audio(n, &tone(n.into())), CALLER.parse().unwrap());
        let r = s.recorder.as_deref().unwrap();
        assert_eq!((r.capacity(), r.buffer_at()), (cap, at), "packet {n}");
    }
    let rec = s.take_recording().unwrap();
    assert_eq!(rec.samples.len(), 8000, "one second, then no more");
    assert_eq!(rec.samples.as_ptr(), at, "the buffer moves out as it is");
}

#[test]
fn events_rtcp_and_other_payload_types_are_not_recorded() {
    let mut s = Stream::new(params(), 1, 0, 0);
    s.record(1, Duration::from_secs(10), Duration::from_secs(2));
    let from: SocketAddr = CALLER.parse().unwrap();
    let got = s.on_packet(&key5(9, 0), from);
    assert_eq!(got.digit, Some('5'), "keys still come through");
    s.on_packet(&key5(9, 1), from);
    s.on_packet(&[0x80u8, 200, 0, 6, 0, 0, 0, 1], from);
    let mut cn = audio(2, &tone(0));
    cn[1] = 13;
    s.on_packet(&cn, from);
    let rec = s.take_recording().unwrap();
    assert!(!rec.heard);
    assert!(rec.samples.is_empty());
}

#[test]
fn a_recording_stream_sends_silence_in_step() {
    let mut s = Stream::new(params(), 1, 10, 0);
    s.play(1, [Arc::from(vec![7u8; 1600])]);
    let mut buf = [0u8; PACKET_LEN];
    s.next_packet(&mut buf);
    s.record(1, Duration::from_secs(10), Duration::from_secs(2));
    for n in 0..3 {
        let (len, done) = s.next_packet(&mut buf);
        assert_eq!(
            (len, done),
            (PACKET_LEN, None),
            "the prompt is cut, not finished"
        );
        let (h, payload) = rtp::parse(&buf).unwrap();
        assert_eq!((h.sequence, h.timestamp), (11 + n, 160 * (1 + n as u32)));
        assert!(payload.iter().all(|b| *b == 0xFF));
    }
}

#[test]
fn packets_of_30_ms_are_recorded_whole() {
    let mut s = Stream::new(params(), 1, 0, 0);
    s.record(1, Duration::from_secs(10), Duration::from_secs(2));
    let mut pkt = [0u8; 12 + 240];
    pkt[..12].copy_from_slice(&audio(0, &tone(0))[..12]);
    pkt[12..].fill(Codec::Pcmu.encode(1000));
    s.on_packet(&pkt, CALLER.parse().unwrap());
    let rec = s.take_recording().unwrap();
    assert_eq!(rec.samples.len(), 240);
    assert!(rec.heard);
}

/// A re-INVITE that renews only the peer's key keeps the context we send with: across a
/// sequence-number rollover the phone, counting rollovers, still opens what we send. (A fresh
/// context under our unchanged key would count from zero and repeat its keystream.)
#[test]
fn a_new_peer_key_keeps_the_sending_context_and_its_rollover_count() {
    use crate::media::srtp::{MasterKey, SrtpKeys, Suite, Unprotector};
    let ours = MasterKey([3; 30]);
    let keys = |theirs: u8| SrtpKeys {
        suite: Suite::Aes128CmHmacSha1_80,
        send: ours,
        receive: MasterKey([theirs; 30]),
    };
    let mut s = Stream::new(
        StreamParams {
            srtp: Some(keys(4)),
            ..params()
        },
        0x5EC,
        65530,
        0,
    );
    let mut phone = Unprotector::new(&SrtpKeys {
        suite: Suite::Aes128CmHmacSha1_80,
        send: MasterKey([4; 30]),
        receive: ours,
    })
    .unwrap();
    let mut buf = [0u8; PACKET_LEN];
    let mut send_one = |s: &mut Stream| {
        let (len, _) = s.next_packet(&mut buf);
        let mut sealed = Vec::new();
        s.egress()
            .seal(&buf[..len], |p| {
                sealed = p.to_vec();
                Ok(p.len())
            })
            .unwrap();
        phone.unprotect(&mut sealed).is_some()
    };
    for _ in 0..10 {
        assert!(send_one(&mut s));
    }
    s.update(StreamParams {
        srtp: Some(keys(5)),
        ..params()
    });
    assert!(send_one(&mut s), "after the rollover and the new peer key");
    s.update(StreamParams {
        srtp: None,
        ..params()
    });
    let (len, _) = s.next_packet(&mut buf);
    let mut plain = Vec::new();
    s.egress()
        .seal(&buf[..len], |p| {
            plain = p.to_vec();
            Ok(p.len())
        })
        .unwrap();
    assert_eq!(plain.len(), len, "SRTP ended: plain RTP");
}
