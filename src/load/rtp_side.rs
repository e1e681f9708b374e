//! The callers' media: one thread, absolute 20 ms deadlines, and per tick one packet out for
//! every active stream, then a full drain in for each (sends first, so a stream leaves at
//! the same offset from the deadline whatever there was to read). Streams live in one Vec of small structs; the
//! SIP side adds and removes them through a bounded channel read once per tick.

use std::net::{SocketAddr, UdpSocket};
use std::os::fd::AsRawFd;
use std::sync::mpsc::{Receiver, TryRecvError};
use std::thread::JoinHandle;
use std::time::Duration;

use super::caller::{AudioMeter, DtmfPlan, PACKET_LEN, PayloadBank, Sent, TxState};
use super::hist::Histogram;
use super::net::{self, BATCH, PeerAddr, RecvBatch, TICK_NS};
use super::seq::{Arrival, RxTracker};
use super::signature::{self, Heard, SigDecoder};
use crate::media::{Codec, rtp};
use crate::runtime::realtime::{self, Priority};

pub(crate) enum RtpCommand {
    /// Start sending to `remote` on a socket with kernel timestamps on (so the first packet
    /// is measured too). The socket is not connected: datagrams from anyone but `remote`
    /// must reach us to be counted (`foreign_source`).
    Start {
        id: u32,
        socket: UdpSocket,
        remote: SocketAddr,
        audio_pt: u8,
        event_pt: Option<u8>,
        /// When the INVITE went out (`net::mono_ns`), for the time to the first echo.
        invite_ns: u64,
    },
    /// Stop sending; what is queued on the socket is still counted, then it is closed.
    Stop {
        id: u32,
    },
    Shutdown,
}

pub(crate) struct RtpConfig {
    pub bank: PayloadBank,
    pub plan: DtmfPlan,
    /// The thread stops by itself after this long, whatever the SIP side does.
    pub max_duration: Duration,
    /// Stream ids run from 0 to this (exclusive).
    pub ids: usize,
    /// Agents echo: classify every received audio frame by its signature (`signature.rs`).
    /// The bank must then write signatures.
    pub check_signature: bool,
}

#[derive(Debug, Default, Clone)]
pub(crate) struct RtpCounters {
    pub streams: u64,
    pub sent: u64,
    pub send_errors: u64,
    pub event_packets: u64,
    pub digits: u64,
    pub expected: u64,
    pub received: u64,
    pub duplicates: u64,
    pub late: u64,
    pub resyncs: u64,
    pub audio_packets: u64,
    /// Datagrams that were not RTP, or were cut at the buffer size.
    pub foreign: u64,
    /// Datagrams from anywhere but the address the server's SDP answer named: not counted
    /// as received. A server whose stream was hijacked sends its media elsewhere, which
    /// shows as `tail_lost`; one that relays a stranger's packets shows here.
    pub foreign_source: u64,
    /// The server's packets missing at the end of streams: ticks from the last packet heard
    /// to the stream's stop, less `TAIL_GRACE` (the server sends one packet a tick for as
    /// long as the call is up). Counted in `expected`, so in `lost()`.
    pub tail_lost: u64,
    pub ticks: u64,
    /// Ticks that began a whole period or more after their deadline.
    pub late_ticks: u64,
    /// Ticks dropped (not sent) because the thread fell more than one period behind.
    pub skipped_ticks: u64,
    /// With signatures: streams whose own signature came back at least once.
    pub bridged: u64,
    /// Own frames (by signature counter) expected and received back, from the first echo;
    /// expected includes `echo_tail_lost`.
    pub echo_expected: u64,
    pub echo_received: u64,
    /// Own frames sent after the last one echoed, less `TAIL_GRACE`, when nothing else came
    /// after it either (an agent who hung up leaves prompts behind, which is not loss): sent,
    /// never echoed back.
    pub echo_tail_lost: u64,
    /// Frames carrying another caller's signature, at any time.
    pub wrong_audio: u64,
    /// Audio frames without a signature after the first echo (fill, prompts after the agent
    /// left).
    pub unsigned_after_bridge: u64,
    /// Echoes that resumed after at least `REBRIDGE_RUN` unsigned frames: the caller was
    /// bridged again (another agent after the first hung up). The frames in between are
    /// not counted as lost.
    pub rebridges: u64,
}

impl RtpCounters {
    pub(crate) fn lost(&self) -> u64 {
        self.expected.saturating_sub(self.received)
    }
}

pub(crate) struct RtpOutcome {
    pub counters: RtpCounters,
    /// |inter-arrival gap − 20 ms| between consecutive sequence numbers, kernel timestamps.
    pub gap_deviation: Histogram,
    /// How late each tick woke: the tool's own pacing, to tell its jitter from the server's.
    pub wake_lateness: Histogram,
    /// |change in a stream's send time from one tick to the next| (offset from the
    /// deadline): the jitter the callers put in before hotline adds any.
    pub send_jitter: Histogram,
    /// The sending thread ran real-time, as hotline's media threads do (`runtime::realtime`).
    pub real_time: bool,
    /// Distinct packets received per stream id.
    pub received_by_id: Vec<u64>,
    /// With signatures: from the INVITE to the first echoed frame (kernel receive time).
    pub bridge: Histogram,
}

struct Stream {
    socket: UdpSocket,
    remote: SocketAddr,
    peer: PeerAddr,
    id: u32,
    /// The tick it started, and the tick its last packet from `remote` arrived in.
    start_tick: u64,
    last_rx_tick: Option<u64>,
    /// The tick of the last send and its offset from that tick's deadline (ns).
    last_send: Option<(u64, u64)>,
    /// The highest own signature counter echoed back (valid once `bridged`).
    last_echo: u16,
    tx: TxState,
    rx: RxTracker,
    /// Signature accounting: the INVITE time, whether an echo came, and the echoed frames.
    invite_ns: u64,
    bridged: bool,
    echo: RxTracker,
    /// Unsigned frames since the last echoed one, and the echo segment (one per bridge).
    unsigned_run: u32,
    segment: u32,
}

const NO_SLOT: u32 = u32::MAX;
/// Ticks of quiet at a stream's end that are not loss: packets in flight, the BYE's way, a
/// key press the agent does not echo (eight ticks of events).
const TAIL_GRACE: u64 = 15;
/// Unsigned frames in a row (0.5 s) after which a resumed echo is a new bridge, not loss.
const REBRIDGE_RUN: u32 = 25;

pub(crate) fn spawn(
    cfg: RtpConfig,
    commands: Receiver<RtpCommand>,
) -> std::io::Result<JoinHandle<RtpOutcome>> {
    std::thread::Builder::new()
        .name("load-rtp".into())
        .spawn(move || run(cfg, commands))
}

struct Media {
    cfg: RtpConfig,
    streams: Vec<Stream>,
    slot: Vec<u32>,
    batch: RecvBatch,
    meter: AudioMeter,
    sig: Option<SigDecoder>,
    /// CLOCK_REALTIME − CLOCK_MONOTONIC at start, to put kernel timestamps on the
    /// monotonic clock of `invite_ns`.
    real_minus_mono: u64,
    out: RtpOutcome,
}

fn run(cfg: RtpConfig, commands: Receiver<RtpCommand>) -> RtpOutcome {
    let ids = cfg.ids;
    let mut m = Media {
        streams: Vec::with_capacity(ids),
        slot: vec![NO_SLOT; ids],
        batch: RecvBatch::new(true),
        meter: AudioMeter::new(),
        sig: cfg.check_signature.then(SigDecoder::new),
        real_minus_mono: net::real_ns().saturating_sub(net::mono_ns()),
        out: RtpOutcome {
            counters: RtpCounters::default(),
            gap_deviation: Histogram::for_gaps(),
            wake_lateness: Histogram::for_gaps(),
            send_jitter: Histogram::for_gaps(),
            real_time: realtime::raise_priority() == Priority::RealTime,
            received_by_id: vec![0; ids],
            bridge: Histogram::for_bridge(),
        },
        cfg,
    };
    let mut pkt = [0u8; PACKET_LEN];
    let start = net::mono_ns();
    let hard_end = start + m.cfg.max_duration.as_nanos() as u64;
    let mut tick: u64 = 0;
    'ticks: loop {
        let mut due = start + tick * TICK_NS;
        let mut now = net::mono_ns();
        if now < due {
            net::sleep_until_ns(due);
            now = net::mono_ns();
        }
        let late = now.saturating_sub(due);
        m.out.wake_lateness.record_ns(late);
        if late >= TICK_NS {
            m.out.counters.late_ticks += 1;
        }
        if late >= 2 * TICK_NS {
            // Catch up by at most one tick: the missed ones are dropped, not burst out.
            let skip = late / TICK_NS - 1;
            tick += skip;
            // The streams' send offsets are from this tick's deadline, not the missed one's.
            due = start + tick * TICK_NS;
            m.out.counters.skipped_ticks += skip;
        }
        loop {
            match commands.try_recv() {
                Ok(RtpCommand::Start {
                    id,
                    socket,
                    remote,
                    audio_pt,
                    event_pt,
                    invite_ns,
                }) => m.start(id, socket, remote, audio_pt, event_pt, invite_ns, tick),
                Ok(RtpCommand::Stop { id }) => m.stop(id, tick),
                Ok(RtpCommand::Shutdown) | Err(TryRecvError::Disconnected) => break 'ticks,
                Err(TryRecvError::Empty) => break,
            }
        }
        if now >= hard_end {
            break;
        }
        let Media {
            cfg,
            streams,
            batch,
            meter,
            sig,
            real_minus_mono,
            out,
            ..
        } = &mut m;
        let rx = Rx {
            meter,
            sig: sig.as_ref(),
            real_minus_mono: *real_minus_mono,
        };
        for s in streams.iter_mut() {
            let (len, kind) = s.tx.build(tick, &cfg.plan, &cfg.bank, &mut pkt);
            let offset = net::mono_ns().saturating_sub(due);
            if let Some((last_tick, last_offset)) = s.last_send
                && last_tick + 1 == tick
            {
                out.send_jitter.record_ns(offset.abs_diff(last_offset));
            }
            s.last_send = Some((tick, offset));
            if net::send_to(s.socket.as_raw_fd(), &pkt[..len], &s.peer) {
                out.counters.sent += 1;
                if let Sent::Event { first } = kind {
                    out.counters.event_packets += 1;
                    out.counters.digits += first as u64;
                }
            } else {
                out.counters.send_errors += 1;
            }
        }
        for s in streams.iter_mut() {
            drain(s, batch, &rx, out, tick);
        }
        out.counters.ticks += 1;
        tick += 1;
    }
    while let Some(s) = m.streams.pop() {
        m.slot[s.id as usize] = NO_SLOT;
        m.retire(s, tick);
    }
    m.out
}

impl Media {
    #[allow(clippy::too_many_arguments)]
    fn start(
        &mut self,
        id: u32,
        socket: UdpSocket,
        remote: SocketAddr,
        audio_pt: u8,
        event_pt: Option<u8>,
        invite_ns: u64,
        tick: u64,
    ) {
        let Some(slot) = self.slot.get(id as usize).copied() else {
            return;
        };
        if slot != NO_SLOT {
            return;
        }
        self.slot[id as usize] = self.streams.len() as u32;
        let tx = TxState::random(audio_pt, event_pt, tick, &self.cfg.plan).with_signature_id(id);
        self.streams.push(Stream {
            socket,
            remote,
            peer: PeerAddr::new(remote),
            id,
            start_tick: tick,
            last_rx_tick: None,
            last_send: None,
            last_echo: 0,
            tx,
            rx: RxTracker::default(),
            invite_ns,
            bridged: false,
            echo: RxTracker::default(),
            unsigned_run: 0,
            segment: 0,
        });
        self.out.counters.streams += 1;
    }

    fn stop(&mut self, id: u32, tick: u64) {
        let Some(&slot) = self.slot.get(id as usize) else {
            return;
        };
        if slot == NO_SLOT {
            return;
        }
        let mut s = self.streams.swap_remove(slot as usize);
        self.slot[id as usize] = NO_SLOT;
        if let Some(moved) = self.streams.get(slot as usize) {
            self.slot[moved.id as usize] = slot;
        }
        let rx = Rx {
            meter: &self.meter,
            sig: self.sig.as_ref(),
            real_minus_mono: self.real_minus_mono,
        };
        drain(&mut s, &mut self.batch, &rx, &mut self.out, tick);
        self.retire(s, tick);
    }

    fn retire(&mut self, s: Stream, tick: u64) {
        let c = &mut self.out.counters;
        let (tail, echo_tail) = tails(&s, tick);
        c.tail_lost += tail;
        c.expected += s.rx.expected() + tail;
        c.received += s.rx.received();
        c.duplicates += s.rx.duplicates();
        c.late += s.rx.late();
        c.resyncs += s.rx.resyncs();
        if s.bridged {
            c.bridged += 1;
            c.echo_expected += s.echo.expected() + echo_tail;
            c.echo_received += s.echo.received();
            c.echo_tail_lost += echo_tail;
        }
        self.out.received_by_id[s.id as usize] = s.rx.received();
    }
}

/// What a stream never got back at its end, as (server packets, own echoed frames): the
/// ticks since the last packet from the server, and the own frames sent after the last one
/// echoed, each less `TAIL_GRACE`. A hijacked call's media goes elsewhere, and only the
/// tail shows it: sequence-number loss counts gaps between packets that did arrive.
fn tails(s: &Stream, tick: u64) -> (u64, u64) {
    let quiet = match s.last_rx_tick {
        Some(last) => tick.saturating_sub(last + 1),
        None => tick.saturating_sub(s.start_tick),
    };
    let tail = quiet.saturating_sub(TAIL_GRACE);
    // Prompts or silence after the last echo: the agent left, the rest was not for echoing.
    let echo_tail = if s.bridged && s.unsigned_run == 0 {
        let after =
            s.tx.signature_frames()
                .wrapping_sub(s.last_echo.wrapping_add(1));
        u64::from(after).saturating_sub(TAIL_GRACE)
    } else {
        0
    };
    (tail, echo_tail)
}

/// What the receive pass reads packets with.
struct Rx<'a> {
    meter: &'a AudioMeter,
    sig: Option<&'a SigDecoder>,
    real_minus_mono: u64,
}

#[inline]
fn drain(s: &mut Stream, batch: &mut RecvBatch, rx: &Rx<'_>, out: &mut RtpOutcome, tick: u64) {
    let meter = rx.meter;
    loop {
        let n = batch.recv(s.socket.as_raw_fd());
        for i in 0..n {
            let d = batch.get(i);
            if d.from != Some(s.remote) {
                out.counters.foreign_source += 1;
                continue;
            }
            s.last_rx_tick = Some(tick);
            let parsed = if d.truncated {
                None
            } else {
                rtp::parse(d.data)
            };
            let Some((h, payload)) = parsed else {
                out.counters.foreign += 1;
                continue;
            };
            let codec = Codec::from_payload_type(h.payload_type);
            let (arrival, gap) =
                s.rx.on_packet(h.ssrc, h.sequence, d.ns, codec.is_some() && !h.marker);
            if arrival != Arrival::New {
                continue;
            }
            if let Some(gap) = gap {
                out.gap_deviation.record_ns(gap.abs_diff(TICK_NS));
            }
            if let Some(codec) = codec
                && meter.audible(codec, payload)
            {
                out.counters.audio_packets += 1;
            }
            if let (Some(codec), Some(dec)) = (codec, rx.sig) {
                match signature::classify(dec, codec, payload, s.id) {
                    Heard::Own(counter) => {
                        let first = !s.bridged;
                        if first {
                            s.bridged = true;
                            let at = if d.ns != 0 {
                                d.ns.saturating_sub(rx.real_minus_mono)
                            } else {
                                net::mono_ns()
                            };
                            out.bridge.record_ns(at.saturating_sub(s.invite_ns));
                        }
                        if s.unsigned_run >= REBRIDGE_RUN {
                            s.segment += 1;
                            out.counters.rebridges += 1;
                        }
                        s.unsigned_run = 0;
                        // Wrapping order: a counter up to half the space ahead is newer.
                        if counter.wrapping_sub(s.last_echo) < 0x8000 || first {
                            s.last_echo = counter;
                        }
                        // A new "SSRC" per segment: the tracker folds the old one, so the
                        // frames sent while the caller waited again are not loss.
                        s.echo.on_packet(s.segment, counter, 0, false);
                    }
                    Heard::Foreign => out.counters.wrong_audio += 1,
                    Heard::Unsigned if s.bridged => {
                        out.counters.unsigned_after_bridge += 1;
                        s.unsigned_run += 1;
                    }
                    Heard::Unsigned => {}
                }
            }
        }
        if n < BATCH {
            return;
        }
    }
}
