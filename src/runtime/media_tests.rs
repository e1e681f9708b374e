//! Tests of the media threads: the event outbox, closing, and real sockets on loopback
//! (bridges across threads).

use super::*;

fn timeouts() -> MediaTimeouts {
    MediaTimeouts {
        rtp: Duration::from_secs(60),
        first_packet: Duration::from_secs(60),
    }
}

fn done(id: u32) -> MediaEvent {
    MediaEvent::PlayDone {
        call: CallRef(1),
        id,
    }
}

#[test]
fn events_that_do_not_fit_wait_in_order_for_the_next_flush() {
    let (tx, mut rx) = tokio::sync::mpsc::channel(2);
    let mut outbox = Outbox::default();
    for id in 0..5 {
        outbox.push(done(id));
    }
    outbox.flush(&tx);
    assert_eq!(outbox.queue.len(), 3);
    assert!(outbox.backed_up);
    assert_eq!(rx.try_recv().ok(), Some(done(0)));
    outbox.push(done(5));
    outbox.flush(&tx);
    let mut got = Vec::new();
    while !outbox.queue.is_empty() || !rx.is_empty() {
        while let Ok(e) = rx.try_recv() {
            got.push(e);
        }
        outbox.flush(&tx);
    }
    assert_eq!(got, (1..6).map(done).collect::<Vec<_>>());
    assert!(!outbox.backed_up, "backlog gone");
}

#[test]
fn closing_a_recording_stream_hands_over_the_message_first() {
    let (tx, _rx) = tokio::sync::mpsc::channel(8);
    let (_cmd_tx, cmd_rx) = sync_channel(1);
    let mut media = MediaLoop::new(cmd_rx, tx, 1000, 0);
    let call = CallRef(7);
    let socket = || UdpSocket::bind("127.0.0.1:0").unwrap();
    media.slots.push(Slot {
        call,
        rtp: Arc::new(socket()),
        rtcp: socket(),
        egress: Arc::new(Egress::new()),
        stream: None,
        connected: None,
        partner: None,
        watched: false,
        budget: MAX_RECV_PER_TICK,
    });
    media.index.insert(call, 0);
    let caller: SocketAddr = "127.0.0.1:4000".parse().unwrap();
    media.apply(MediaCommand::Start {
        call,
        params: crate::media::stream::StreamParams {
            codec: crate::media::Codec::Pcmu,
            audio_pt: 0,
            event_pt: Some(101),
            remote: Some(caller),
            send: true,
            receive: true,
            srtp: None,
        },
    });
    media.apply(MediaCommand::Record {
        call,
        id: 3,
        max_length: Duration::from_secs(60),
        silence: Duration::from_secs(5),
    });
    let mut pkt = [0u8; PACKET_LEN];
    crate::media::rtp::write_header(
        &crate::media::rtp::RtpHeader {
            marker: false,
            payload_type: 0,
            sequence: 1,
            timestamp: 0,
            ssrc: 1,
        },
        (&mut pkt[..12]).try_into().unwrap(),
    );
    pkt[12..].fill(crate::media::Codec::Pcmu.encode(4000));
    let stream = media.slots[0].stream.as_mut().unwrap();
    stream.on_packet(&pkt, caller);
    media.apply(MediaCommand::Close { call });
    assert!(media.slots.is_empty());
    match media.outbox.queue.pop_front() {
        Some(MediaEvent::Recorded {
            call: c,
            id: 3,
            samples,
            heard: true,
        }) => assert_eq!((c, samples.len()), (call, 160)),
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_closed_channel_drops_what_waits() {
    let (tx, rx) = tokio::sync::mpsc::channel(1);
    drop(rx);
    let mut outbox = Outbox::default();
    outbox.push(done(1));
    outbox.push(done(2));
    outbox.flush(&tx);
    assert!(outbox.queue.is_empty());
}

fn leg_params(
    codec: crate::media::Codec,
    event_pt: Option<u8>,
    remote: SocketAddr,
) -> crate::media::stream::StreamParams {
    crate::media::stream::StreamParams {
        codec,
        audio_pt: codec.payload_type(),
        event_pt,
        remote: Some(remote),
        send: true,
        receive: true,
        srtp: None,
    }
}

/// Every RTP packet that reaches `phone` within `wait`.
fn collect(phone: &UdpSocket, wait: Duration) -> Vec<(crate::media::rtp::RtpHeader, Vec<u8>)> {
    let end = Instant::now() + wait;
    let mut got = Vec::new();
    let mut buf = [0u8; 2048];
    while Instant::now() < end {
        if let Ok(n) = phone.recv(&mut buf)
            && let Some((h, p)) = crate::media::rtp::parse(&buf[..n])
        {
            got.push((h, p.to_vec()));
        }
    }
    got
}

fn tone_packet(codec: crate::media::Codec, seq: u16, level: i16) -> Vec<u8> {
    let mut pkt = vec![0u8; PACKET_LEN];
    crate::media::rtp::write_header(
        &crate::media::rtp::RtpHeader {
            marker: false,
            payload_type: codec.payload_type(),
            sequence: seq,
            timestamp: u32::from(seq) * 160,
            ssrc: 0xCA11,
        },
        (&mut pkt[..12]).try_into().unwrap(),
    );
    pkt[12..].fill(codec.encode(level));
    pkt
}

/// Two legs on two media threads, bridged: what one phone sends comes out at the other
/// with that leg's SSRC, payload type and sequence numbers running on from what it sent
/// before the bridge, both ways.
#[test]
fn legs_on_different_threads_are_bridged_both_ways_with_rewritten_headers() {
    use crate::media::Codec;
    let (tx, _events) = tokio::sync::mpsc::channel(256);
    let base = 30_000 + 2 * fastrand::u16(0..5_000);
    let mut media = MediaHandle::start(
        2,
        (base, base + 200),
        IpAddr::V4(Ipv4Addr::LOCALHOST),
        timeouts(),
        tx,
    )
    .unwrap();
    let (a, b) = (CallRef(1), CallRef(2));
    let port_a = media.open(a).unwrap();
    let port_b = media.open(b).unwrap();
    assert_ne!(media.owner[&a].lane, media.owner[&b].lane, "two threads");
    let phone = || {
        let s = UdpSocket::bind("127.0.0.1:0").unwrap();
        s.set_read_timeout(Some(Duration::from_millis(5))).unwrap();
        s
    };
    let (phone_a, phone_b) = (phone(), phone());
    let to_a = SocketAddr::from((Ipv4Addr::LOCALHOST, port_a));
    let to_b = SocketAddr::from((Ipv4Addr::LOCALHOST, port_b));
    media.command(MediaCommand::Start {
        call: a,
        params: leg_params(Codec::Pcmu, Some(101), phone_a.local_addr().unwrap()),
    });
    media.command(MediaCommand::Start {
        call: b,
        params: leg_params(Codec::Pcma, Some(96), phone_b.local_addr().unwrap()),
    });
    let before_a = collect(&phone_a, Duration::from_millis(100));
    let before_b = collect(&phone_b, Duration::from_millis(100));
    assert!(
        before_a.len() >= 3 && before_b.len() >= 3,
        "each leg sends its silence"
    );
    media.command(MediaCommand::Bridge { call: a, with: b });
    std::thread::sleep(Duration::from_millis(60));
    // Both phones talk for 200 ms, each its own level.
    let talk = |phone: &UdpSocket, to: SocketAddr, codec: Codec, level: i16| {
        for n in 0..10u16 {
            phone.send_to(&tone_packet(codec, n, level), to).unwrap();
            std::thread::sleep(Duration::from_millis(20));
        }
    };
    std::thread::scope(|s| {
        s.spawn(|| talk(&phone_a, to_a, Codec::Pcmu, 4000));
        s.spawn(|| talk(&phone_b, to_b, Codec::Pcma, -2000));
    });
    std::thread::sleep(Duration::from_millis(60));
    let after_a = collect(&phone_a, Duration::from_millis(300));
    let after_b = collect(&phone_b, Duration::from_millis(300));
    for (before, after, codec, level, dir) in [
        (&before_b, &after_b, Codec::Pcma, 4000i16, "A to B"),
        (&before_a, &after_a, Codec::Pcmu, -2000, "B to A"),
    ] {
        let ssrc = before[0].0.ssrc;
        let all: Vec<_> = before.iter().chain(after.iter()).collect();
        assert!(
            all.iter()
                .all(|(h, _)| h.ssrc == ssrc && h.payload_type == codec.payload_type()),
            "{dir}: one SSRC, the leg's payload type"
        );
        assert_ne!(ssrc, 0xCA11, "{dir}: not the phone's SSRC");
        for w in all.windows(2) {
            assert_eq!(
                w[1].0.sequence,
                w[0].0.sequence.wrapping_add(1),
                "{dir}: no gap, no jump"
            );
            assert!(
                (w[1].0.timestamp.wrapping_sub(w[0].0.timestamp) as i32) > 0,
                "{dir}: time runs forward"
            );
        }
        let voiced: Vec<_> = after
            .iter()
            .filter(|(_, p)| (codec.decode(p[0]) - level).abs() < level.abs() / 10)
            .collect();
        assert!(
            voiced.len() >= 8,
            "{dir}: {} of 10 packets arrived",
            voiced.len()
        );
        assert!(
            voiced[0].0.marker,
            "{dir}: marker on the first forwarded packet"
        );
    }
    media.command(MediaCommand::Close { call: a });
    media.command(MediaCommand::Close { call: b });
    media.stop();
}

fn add_slot(media: &mut MediaLoop, call: CallRef) {
    let socket = || UdpSocket::bind("127.0.0.1:0").unwrap();
    media.index.insert(call, media.slots.len());
    media.slots.push(Slot {
        call,
        rtp: Arc::new(socket()),
        rtcp: socket(),
        egress: Arc::new(Egress::new()),
        stream: None,
        connected: None,
        partner: None,
        watched: false,
        budget: MAX_RECV_PER_TICK,
    });
}

#[test]
fn a_stereo_recording_comes_back_at_unbridge_close_or_at_once_without_a_bridge() {
    use crate::media::Codec;
    let (tx, _rx) = tokio::sync::mpsc::channel(8);
    let (_cmd_tx, cmd_rx) = sync_channel(1);
    let mut media = MediaLoop::new(cmd_rx, tx, 1000, 0);
    let (a, b) = (CallRef(1), CallRef(2));
    add_slot(&mut media, a);
    add_slot(&mut media, b);
    for call in [a, b] {
        media.apply(MediaCommand::Start {
            call,
            params: leg_params(Codec::Pcmu, Some(101), "127.0.0.1:4000".parse().unwrap()),
        });
    }
    media.apply(MediaCommand::RecordBridge { call: a, id: 1 });
    assert_eq!(
        media.outbox.queue.pop_front(),
        Some(MediaEvent::RecordedStereo {
            call: a,
            id: 1,
            samples: Vec::new()
        }),
        "nothing bridged: nothing to wait for"
    );
    media.apply(MediaCommand::Bridge { call: a, with: b });
    assert!(
        media
            .slots
            .iter()
            .all(|s| s.stream.as_ref().unwrap().is_bridged())
    );
    media.apply(MediaCommand::RecordBridge { call: a, id: 2 });
    media.slots[0].stream.as_mut().unwrap().tick_stereo();
    media.apply(MediaCommand::Unbridge { call: a });
    match media.outbox.queue.pop_front() {
        Some(MediaEvent::RecordedStereo {
            call,
            id: 2,
            samples,
        }) => {
            assert_eq!((call, samples.len()), (a, 320))
        }
        other => panic!("{other:?}"),
    }
    media.apply(MediaCommand::Bridge { call: a, with: b });
    media.apply(MediaCommand::RecordBridge { call: a, id: 3 });
    media.apply(MediaCommand::Close { call: b });
    assert!(
        !media.slots[0].stream.as_ref().unwrap().is_linked(),
        "the partner's close ends the bridge"
    );
    assert!(matches!(
        media.outbox.queue.pop_front(),
        Some(MediaEvent::RecordedStereo { call, id: 3, .. }) if call == a
    ));
}

/// Bridged legs are read whenever their packets wake the thread, but a flooded port still
/// costs at most `MAX_RECV_PER_TICK` reads per tick: the rest waits in the kernel (and is
/// dropped there when the buffer fills).
#[test]
fn a_flooded_leg_is_read_no_more_per_tick_however_often_it_wakes_the_thread() {
    use crate::media::Codec;
    let (tx, _rx) = tokio::sync::mpsc::channel(64);
    let (_cmd_tx, cmd_rx) = sync_channel(1);
    let mut media = MediaLoop::new(cmd_rx, tx, 1000, 0);
    let a = CallRef(1);
    add_slot(&mut media, a);
    let flooder = UdpSocket::bind("127.0.0.1:0").unwrap();
    media.apply(MediaCommand::Start {
        call: a,
        params: leg_params(Codec::Pcmu, Some(101), flooder.local_addr().unwrap()),
    });
    let port = media.slots[0].rtp.local_addr().unwrap();
    media.slots[0].rtp.set_nonblocking(true).unwrap();
    let mut pkt = [0u8; PACKET_LEN];
    pkt[0] = 0x80;
    for seq in 0..40u16 {
        pkt[2..4].copy_from_slice(&seq.to_be_bytes());
        flooder.send_to(&pkt, port).unwrap();
    }
    std::thread::sleep(Duration::from_millis(20));
    let mut batch = RecvBatch::new(false);
    for _wake in 0..5 {
        drain(
            &mut media.slots[0],
            &mut batch,
            &mut media.outbox,
            usize::MAX,
        );
    }
    let left = |socket: &UdpSocket| {
        let mut n = 0;
        let mut buf = [0u8; 2048];
        while socket.recv(&mut buf).is_ok() {
            n += 1;
        }
        n
    };
    media.slots[0].budget = MAX_RECV_PER_TICK;
    drain(
        &mut media.slots[0],
        &mut batch,
        &mut media.outbox,
        usize::MAX,
    );
    assert_eq!(
        left(&media.slots[0].rtp),
        40 - 2 * MAX_RECV_PER_TICK,
        "one budget before the tick, one after"
    );
}

/// A flooded RTCP port is read one batch per drain, like a quiet one.
#[test]
fn a_flooded_rtcp_port_is_read_one_batch_per_drain() {
    let rtcp = UdpSocket::bind("127.0.0.1:0").unwrap();
    let flooder = UdpSocket::bind("127.0.0.1:0").unwrap();
    let sent = 2 * BATCH + 4;
    for _ in 0..sent {
        flooder
            .send_to(&[0x80, 200, 0, 1], rtcp.local_addr().unwrap())
            .unwrap();
    }
    std::thread::sleep(Duration::from_millis(20));
    let mut batch = RecvBatch::new(false);
    assert_eq!(drain_rtcp(&rtcp, &mut batch), BATCH);
    assert_eq!(drain_rtcp(&rtcp, &mut batch), BATCH);
    assert_eq!(drain_rtcp(&rtcp, &mut batch), sent - 2 * BATCH);
}

/// A leg that negotiated SRTP bridged to a plain one on another thread: its phone hears only
/// sealed packets that open under the leg's key (its silence before the bridge, the other
/// phone's voice after), the plain phone hears the SRTP phone's voice decrypted, and a plain
/// packet sent to the SRTP leg goes nowhere.
#[test]
fn an_srtp_leg_bridged_to_a_plain_leg_is_sealed_and_opened_on_its_side_only() {
    use crate::media::Codec;
    use crate::media::srtp::{MasterKey, Protector, SrtpKeys, Suite, Unprotector};
    let (tx, _events) = tokio::sync::mpsc::channel(256);
    let base = 30_000 + 2 * fastrand::u16(0..5_000);
    let mut media = MediaHandle::start(
        2,
        (base, base + 200),
        IpAddr::V4(Ipv4Addr::LOCALHOST),
        timeouts(),
        tx,
    )
    .unwrap();
    let (a, b) = (CallRef(1), CallRef(2));
    let port_a = media.open(a).unwrap();
    let port_b = media.open(b).unwrap();
    let phone = || {
        let s = UdpSocket::bind("127.0.0.1:0").unwrap();
        s.set_read_timeout(Some(Duration::from_millis(5))).unwrap();
        s
    };
    let (phone_a, phone_b) = (phone(), phone());
    let leg_keys = SrtpKeys {
        suite: Suite::Aes128CmHmacSha1_80,
        send: MasterKey([0x11; 30]),
        receive: MasterKey([0x22; 30]),
    };
    let phone_keys = SrtpKeys {
        suite: leg_keys.suite,
        send: leg_keys.receive,
        receive: leg_keys.send,
    };
    media.command(MediaCommand::Start {
        call: a,
        params: crate::media::stream::StreamParams {
            srtp: Some(leg_keys),
            ..leg_params(Codec::Pcmu, Some(101), phone_a.local_addr().unwrap())
        },
    });
    media.command(MediaCommand::Start {
        call: b,
        params: leg_params(Codec::Pcmu, Some(101), phone_b.local_addr().unwrap()),
    });
    let mut open = Unprotector::new(&phone_keys).unwrap();
    let mut heard_a = |wait: Duration| {
        let end = Instant::now() + wait;
        let (mut sealed, mut levels) = (0, Vec::new());
        let mut buf = [0u8; 2048];
        while Instant::now() < end {
            if let Ok(n) = phone_a.recv(&mut buf) {
                let n = open.unprotect(&mut buf[..n]).expect("every packet opens");
                sealed += 1;
                if let Some((_, p)) = crate::media::rtp::parse(&buf[..n]) {
                    levels.push(Codec::Pcmu.decode(p[0]));
                }
            }
        }
        (sealed, levels)
    };
    let (sealed, _) = heard_a(Duration::from_millis(100));
    assert!(sealed >= 3, "silence goes out sealed before the bridge");
    media.command(MediaCommand::Bridge { call: a, with: b });
    std::thread::sleep(Duration::from_millis(60));
    let mut seal = Protector::new(&phone_keys).unwrap();
    let to_a = SocketAddr::from((Ipv4Addr::LOCALHOST, port_a));
    let to_b = SocketAddr::from((Ipv4Addr::LOCALHOST, port_b));
    std::thread::scope(|s| {
        s.spawn(|| {
            for n in 0..10u16 {
                let sealed = seal.protect(&tone_packet(Codec::Pcmu, n, 4000)).unwrap();
                phone_a.send_to(&sealed, to_a).unwrap();
                // Plain audio at another level, as if injected: never forwarded.
                phone_a
                    .send_to(&tone_packet(Codec::Pcmu, 100 + n, 8000), to_a)
                    .unwrap();
                std::thread::sleep(Duration::from_millis(20));
            }
        });
        s.spawn(|| {
            for n in 0..10u16 {
                phone_b
                    .send_to(&tone_packet(Codec::Pcmu, n, -2000), to_b)
                    .unwrap();
                std::thread::sleep(Duration::from_millis(20));
            }
        });
    });
    let (_, levels_a) = heard_a(Duration::from_millis(300));
    let heard_b = collect(&phone_b, Duration::from_millis(300));
    let near = |x: i16, level: i16| (x - level).abs() < level.abs() / 10;
    assert!(
        levels_a.iter().filter(|&&x| near(x, -2000)).count() >= 8,
        "the SRTP phone hears the plain phone: {levels_a:?}"
    );
    let levels_b: Vec<i16> = heard_b
        .iter()
        .map(|(_, p)| Codec::Pcmu.decode(p[0]))
        .collect();
    assert!(
        levels_b.iter().filter(|&&x| near(x, 4000)).count() >= 8,
        "the plain phone hears the SRTP phone decrypted: {levels_b:?}"
    );
    assert!(
        !levels_b.iter().any(|&x| near(x, 8000)),
        "plain packets sent to the SRTP leg are not forwarded"
    );
    media.command(MediaCommand::Close { call: a });
    media.command(MediaCommand::Close { call: b });
    media.stop();
}
