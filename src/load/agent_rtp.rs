//! The agents' media: one thread, woken by the RTP sockets of the agents in a call, sends
//! each audio packet straight back as it arrives (same payload; the agent's own SSRC,
//! sequence and timestamp; the payload type it came with), so the callers measure hotline's
//! timing and not this loop's. Received frames are read for the callers' signature: the
//! caller → agent direction is checked here (loss by the signature's frame counter, and
//! frames of a caller other than the first one heard on this call), the way back by the
//! callers. Telephone-event and other non-audio packets are not echoed (an echoed key press
//! would reach hotline as the agent's). No allocation per packet: one buffer, reused.
//!
//! The agents also measure the gap deviation of what they hear (kernel receive times, by
//! hotline's RTP sequence), between frames of their caller's signature only: the callers'
//! paced audio after one pass through hotline, the path a listener's audio takes. The
//! callers' figure holds two passes and this echo. The thread runs real-time and answers
//! each packet on arrival (it has no tick of its own).

use std::net::{SocketAddr, UdpSocket};
use std::os::fd::AsRawFd;
use std::sync::mpsc::{Receiver, TryRecvError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::hist::Histogram;
use super::net::{self, BATCH, RECV_BUF, RecvBatch, TICK_NS};
use super::seq::RxTracker;
use super::signature::SigDecoder;
use crate::media::rtp::{self, RtpHeader};
use crate::media::{Codec, SAMPLES_PER_FRAME};
use crate::runtime::realtime::Priority;
use crate::runtime::wake::{Waker, Woken};

pub(crate) enum EchoCommand {
    /// Agent `agent`'s call is up (or its remote moved): echo to `remote`.
    Start {
        agent: u32,
        remote: SocketAddr,
    },
    /// The call is over: stop echoing, count what was received.
    Stop {
        agent: u32,
    },
    Shutdown,
}

#[derive(Debug, Clone)]
pub(crate) struct EchoCounters {
    /// Agent calls that carried media.
    pub calls: u64,
    pub echoed: u64,
    pub send_errors: u64,
    /// Telephone-event and other non-audio packets received (not echoed).
    pub not_echoed: u64,
    /// Caller → agent, by signature frame counter: expected and received frames.
    pub expected: u64,
    pub received: u64,
    /// Frames with a different caller's signature than the first one heard on the call.
    pub wrong_audio: u64,
    /// Audio frames without a signature (echoed too).
    pub unsigned: u64,
    pub skipped_ticks: u64,
    /// |inter-arrival gap − 20 ms| between consecutive frames of the agent's caller
    /// (consecutive sequence numbers of hotline's stream, both signed by that caller).
    pub gap_deviation: Histogram,
    /// The thread ran real-time (`runtime::realtime`).
    pub real_time: bool,
}

impl EchoCounters {
    fn new() -> Self {
        EchoCounters {
            calls: 0,
            echoed: 0,
            send_errors: 0,
            not_echoed: 0,
            expected: 0,
            received: 0,
            wrong_audio: 0,
            unsigned: 0,
            skipped_ticks: 0,
            gap_deviation: Histogram::for_gaps(),
            real_time: false,
        }
    }
}

struct Echo {
    socket: UdpSocket,
    active: bool,
    ssrc: u32,
    seq: u16,
    ts: u32,
    caller: Option<u32>,
    /// By the caller's signature counter: loss on the way to the agent.
    rx: RxTracker,
    /// By hotline's RTP header: the gaps.
    heard: RxTracker,
}

/// How often the thread looks for commands when no packet wakes it.
const COMMAND_CHECK: Duration = Duration::from_millis(5);

pub(crate) fn spawn(
    sockets: Vec<UdpSocket>,
    commands: Receiver<EchoCommand>,
    max_duration: Duration,
) -> std::io::Result<JoinHandle<EchoCounters>> {
    for s in &sockets {
        net::enable_rx_timestamps(s)?;
    }
    let waker = Waker::new()?;
    std::thread::Builder::new()
        .name("load-agent-rtp".into())
        .spawn(move || run(sockets, waker, commands, max_duration))
}

fn run(
    sockets: Vec<UdpSocket>,
    mut waker: Waker,
    commands: Receiver<EchoCommand>,
    max_duration: Duration,
) -> EchoCounters {
    let mut agents: Vec<Echo> = sockets
        .into_iter()
        .map(|socket| Echo {
            socket,
            active: false,
            ssrc: 0,
            seq: 0,
            ts: 0,
            caller: None,
            rx: RxTracker::default(),
            heard: RxTracker::default(),
        })
        .collect();
    let mut c = EchoCounters::new();
    // The agents' phones would not share the server's CPU either.
    c.real_time = crate::runtime::realtime::raise_priority() == Priority::RealTime;
    let mut batch = RecvBatch::new(true);
    let dec = SigDecoder::new();
    let mut out = [0u8; RECV_BUF];
    let end = Instant::now() + max_duration;
    let mut ready = [0u64; 64];
    'run: loop {
        loop {
            match commands.try_recv() {
                Ok(EchoCommand::Start { agent, remote }) => {
                    let Some(a) = agents.get_mut(agent as usize) else {
                        continue;
                    };
                    if a.socket.connect(remote).is_err() {
                        continue;
                    }
                    if !a.active {
                        // Whatever the previous call left queued is not this call's.
                        while batch.recv(a.socket.as_raw_fd()) == BATCH {}
                        a.active = true;
                        a.ssrc = fastrand::u32(..);
                        a.seq = fastrand::u16(..);
                        a.ts = fastrand::u32(..);
                        a.caller = None;
                        a.rx = RxTracker::default();
                        a.heard = RxTracker::default();
                        if !waker.watch(a.socket.as_raw_fd(), u64::from(agent)) {
                            c.send_errors += 1;
                        }
                        c.calls += 1;
                    }
                }
                Ok(EchoCommand::Stop { agent }) => {
                    if let Some(a) = agents.get_mut(agent as usize)
                        && a.active
                    {
                        a.active = false;
                        waker.unwatch(a.socket.as_raw_fd());
                        c.expected += a.rx.expected();
                        c.received += a.rx.received();
                    }
                }
                Ok(EchoCommand::Shutdown) | Err(TryRecvError::Disconnected) => break 'run,
                Err(TryRecvError::Empty) => break,
            }
        }
        let due = Instant::now() + COMMAND_CHECK;
        if due >= end {
            break;
        }
        waker.arm(due);
        loop {
            let n = match waker.wait() {
                Woken::Deadline => break,
                Woken::Readable(events) => {
                    for (r, e) in ready.iter_mut().zip(events) {
                        *r = e.u64;
                    }
                    events.len().min(ready.len())
                }
            };
            for &i in &ready[..n] {
                if let Some(a) = agents.get_mut(i as usize) {
                    echo_all(a, &mut batch, &dec, &mut out, &mut c);
                }
            }
        }
        let late = Instant::now().saturating_duration_since(due);
        if late >= 2 * TICK {
            c.skipped_ticks += (late.as_nanos() / TICK.as_nanos()) as u64;
        }
    }
    for a in agents.iter().filter(|a| a.active) {
        c.expected += a.rx.expected();
        c.received += a.rx.received();
    }
    c
}

const TICK: Duration = Duration::from_nanos(TICK_NS);

/// Reads what `a`'s socket holds and sends each audio packet back.
fn echo_all(
    a: &mut Echo,
    batch: &mut RecvBatch,
    dec: &SigDecoder,
    out: &mut [u8; RECV_BUF],
    c: &mut EchoCounters,
) {
    loop {
        let n = batch.recv(a.socket.as_raw_fd());
        for k in 0..n {
            let d = batch.get(k);
            let Some((h, payload)) = (!d.truncated).then(|| rtp::parse(d.data)).flatten() else {
                c.not_echoed += 1;
                continue;
            };
            let Some(codec) = Codec::from_payload_type(h.payload_type) else {
                // Still seen by the gap tracker, so no gap spans it.
                a.heard.on_packet(h.ssrc, h.sequence, d.ns, false);
                c.not_echoed += 1;
                continue;
            };
            let callers = match dec.read(codec, payload) {
                Some((id, counter)) => match a.caller {
                    None => {
                        a.caller = Some(id);
                        a.rx.on_packet(id, counter, 0, false);
                        true
                    }
                    Some(first) if first == id => {
                        a.rx.on_packet(id, counter, 0, false);
                        true
                    }
                    Some(_) => {
                        c.wrong_audio += 1;
                        false
                    }
                },
                None => {
                    c.unsigned += 1;
                    false
                }
            };
            // Only the caller's own frames, so hotline's packets before the hand-over are
            // not counted as the caller's audio.
            let (_, gap) = a
                .heard
                .on_packet(h.ssrc, h.sequence, d.ns, callers && !h.marker);
            if let Some(gap) = gap {
                c.gap_deviation.record_ns(gap.abs_diff(TICK_NS));
            }
            let len = echo_packet(a, h.payload_type, payload, out);
            if net::send(a.socket.as_raw_fd(), &out[..len]) {
                c.echoed += 1;
            } else {
                c.send_errors += 1;
            }
        }
        if n < BATCH {
            break;
        }
    }
}

/// The echo of `payload` in `out`, under the agent's own header; its length.
#[inline]
fn echo_packet(a: &mut Echo, pt: u8, payload: &[u8], out: &mut [u8; RECV_BUF]) -> usize {
    let len = (rtp::HEADER_LEN + payload.len()).min(RECV_BUF);
    let header = RtpHeader {
        marker: false,
        payload_type: pt,
        sequence: a.seq,
        timestamp: a.ts,
        ssrc: a.ssrc,
    };
    a.seq = a.seq.wrapping_add(1);
    a.ts =
        a.ts.wrapping_add(payload.len().max(SAMPLES_PER_FRAME) as u32);
    let (head, rest) = out.split_at_mut(rtp::HEADER_LEN);
    rtp::write_header(&header, head.try_into().expect("header length"));
    rest[..len - rtp::HEADER_LEN].copy_from_slice(&payload[..len - rtp::HEADER_LEN]);
    len
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::load::signature::SigEncoder;
    use std::net::{IpAddr, Ipv4Addr};
    use std::sync::mpsc;

    /// The echo thread on loopback, fed by a plain socket standing in for hotline's bridge:
    /// audio comes back with the same payload under a new header; events do not; the
    /// caller → agent counts and the wrong-caller count come from the signatures.
    #[test]
    fn echoes_audio_and_reads_signatures() {
        let ip = IpAddr::V4(Ipv4Addr::LOCALHOST);
        let agent = net::bind_udp(ip).unwrap();
        let agent_addr = agent.local_addr().unwrap();
        let bridge = UdpSocket::bind(SocketAddr::new(ip, 0)).unwrap();
        bridge
            .set_read_timeout(Some(Duration::from_millis(500)))
            .unwrap();
        bridge.connect(agent_addr).unwrap();
        let (tx, rx) = mpsc::sync_channel(8);
        let h = spawn(vec![agent], rx, Duration::from_secs(10)).unwrap();
        tx.send(EchoCommand::Start {
            agent: 0,
            remote: bridge.local_addr().unwrap(),
        })
        .unwrap();
        std::thread::sleep(Duration::from_millis(60));
        let enc = SigEncoder::new(Codec::Pcmu);
        let dec = SigDecoder::new();
        let mut pkt = [0u8; 172];
        let send = |pkt: &mut [u8; 172], pt: u8, seq: u16, sig: Option<(u32, u16)>| {
            let hdr = RtpHeader {
                marker: false,
                payload_type: pt,
                sequence: seq,
                timestamp: seq as u32 * 160,
                ssrc: 99,
            };
            rtp::write_header(&hdr, (&mut pkt[..12]).try_into().unwrap());
            match sig {
                Some((id, c)) => enc.write(id, c, &mut pkt[12..]),
                None => pkt[12..].fill(0xFF),
            }
            bridge.send(pkt).unwrap();
        };
        // Frames 0..10 of caller 7 with 4 missing, one event, one of caller 8, one unsigned.
        for c in (0..10u16).filter(|&c| c != 4) {
            send(&mut pkt, 0, c, Some((7, c)));
        }
        send(&mut pkt, 101, 100, None);
        send(&mut pkt, 0, 101, Some((8, 50)));
        send(&mut pkt, 0, 102, None);
        let mut back = Vec::new();
        let mut buf = [0u8; 2048];
        while back.len() < 11 {
            let n = bridge.recv(&mut buf).expect("an echo");
            let (h, payload) = rtp::parse(&buf[..n]).unwrap();
            back.push((
                h.ssrc,
                h.sequence,
                h.payload_type,
                dec.read(Codec::Pcmu, payload),
            ));
        }
        assert!(
            back.iter()
                .all(|b| b.0 == back[0].0 && b.0 != 99 && b.2 == 0)
        );
        for w in back.windows(2) {
            assert_eq!(w[1].1, w[0].1.wrapping_add(1), "the agent's own sequence");
        }
        let sigs: Vec<_> = back.iter().map(|b| b.3).collect();
        assert_eq!(sigs[0], Some((7, 0)));
        assert_eq!(sigs[8], Some((7, 9)));
        assert_eq!(sigs[9], Some((8, 50)), "echoed, but counted as wrong");
        assert_eq!(sigs[10], None);
        tx.send(EchoCommand::Stop { agent: 0 }).unwrap();
        tx.send(EchoCommand::Shutdown).unwrap();
        let c = h.join().unwrap();
        assert_eq!((c.calls, c.echoed, c.not_echoed), (1, 11, 1), "{c:?}");
        assert_eq!((c.expected, c.received), (10, 9), "{c:?}");
        assert_eq!(
            (c.wrong_audio, c.unsigned, c.send_errors),
            (1, 1, 0),
            "{c:?}"
        );
        // Gaps between consecutive sequence numbers of the caller's frames: 0-3 and 5-9
        // (events, other callers' and unsigned frames neither open nor close one). Sent
        // back to back: each about 20 ms short.
        assert_eq!(c.gap_deviation.count(), 7, "{c:?}");
        assert!(c.gap_deviation.quantile_ms(0.5).unwrap() > 15.0, "{c:?}");
    }
}
