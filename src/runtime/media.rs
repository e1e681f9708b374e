//! The media threads: OS threads away from the signalling runtime (one per core by default),
//! each waking on absolute 20 ms deadlines to send every one of its streams' next frame and
//! drain their sockets. One timer per thread for all its streams; no allocation, lock or
//! extra syscall per packet.

use std::collections::{HashMap, VecDeque};
use std::io::ErrorKind;
use std::net::{IpAddr, Ipv4Addr, SocketAddr, UdpSocket};
use std::os::fd::AsRawFd;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, TrySendError, sync_channel};

use std::thread::JoinHandle;
use std::time::{Duration, Instant};
use tokio::sync::mpsc::error::TrySendError as EventSendError;

use crate::call::{MediaBackend, MediaCommand, MediaEvent, MediaOpenError, MediaTotals};
use crate::media::bridge::{Dest, Egress};
use crate::media::pacing::{Pacer, TICK};
use crate::media::recorder::{Recording, StereoRecording};
use crate::media::stream::{PACKET_LEN, Stream};
use crate::sip::CallRef;

use super::realtime::Priority;
use super::udp::{BATCH, RecvBatch};
use super::wake::{Waker, Woken};

#[path = "media_loop.rs"]
mod media_loop;
use media_loop::*;

/// Each RTCP socket is read (one batch; its packets ignored) once in this many ticks.
const RTCP_DRAIN_TICKS: u64 = 50;
const COMMAND_QUEUE: usize = 16 * 1024;
/// A caller sends one packet per tick; a few more is reordering or DTMF bursts.
/// (The most read from one RTP socket per tick.)
const MAX_RECV_PER_TICK: usize = 16;
/// Shortest time between two wake-ups for bridged packets (see `MediaLoop::forward_until`).
const FORWARD_COALESCE: Duration = Duration::from_micros(500);

enum Command {
    Add {
        call: CallRef,
        rtp: Arc<UdpSocket>,
        rtcp: UdpSocket,
        egress: Arc<Egress>,
    },
    /// One direction of a bridge: `call`'s received packets go out on `partner`'s socket,
    /// numbered through its egress (the partner may live on another thread).
    Link {
        call: CallRef,
        partner: Partner,
    },
    Call(MediaCommand),
    Stop,
}

/// The other leg of a bridge, as the forwarding thread needs it: the OS socket is safe to send
/// on from any thread, and the egress says whether (and with which numbers) we may.
#[derive(Clone)]
struct Partner {
    call: CallRef,
    rtp: Arc<UdpSocket>,
    egress: Arc<Egress>,
}

/// Where a stream lives, and what a partner on another thread needs to send on it.
struct Owned {
    lane: usize,
    rtp: Arc<UdpSocket>,
    egress: Arc<Egress>,
}

/// What one media thread counted, published by it once a second for the metrics.
#[derive(Default)]
pub(super) struct LaneCounters {
    pub(super) rtp_received: AtomicU64,
    pub(super) rtp_lost: AtomicU64,
    pub(super) late_ticks: AtomicU64,
    pub(super) skipped_ticks: AtomicU64,
}

/// One media thread and the commands on their way to it.
struct Lane {
    tx: SyncSender<Command>,
    counters: Arc<LaneCounters>,
    /// Commands the full queue could not take yet, in order. Dropping one (a Close above all)
    /// would leave a stream running for ever, and the engine must never block.
    waiting: VecDeque<Command>,
    thread: Option<JoinHandle<()>>,
    streams: usize,
}

impl Lane {
    /// Hand queued commands to the thread, oldest first, as far as the queue takes them.
    fn flush(&mut self) -> Result<(), MediaOpenError> {
        while let Some(cmd) = self.waiting.pop_front() {
            match self.tx.try_send(cmd) {
                Ok(()) => {}
                Err(TrySendError::Full(cmd)) => {
                    self.waiting.push_front(cmd);
                    return Ok(());
                }
                Err(TrySendError::Disconnected(_)) => {
                    self.waiting.clear();
                    tracing::error!("media thread is gone");
                    return Err(MediaOpenError::Closed);
                }
            }
        }
        Ok(())
    }

    fn post(&mut self, cmd: Command) -> Result<(), MediaOpenError> {
        if self.waiting.len() == 1024 {
            tracing::warn!("media command queue is full; commands wait in order");
        }
        self.waiting.push_back(cmd);
        self.flush()
    }
}

/// The engine's side: binds sockets at call set-up and posts commands to the media threads.
/// Each stream lives on one thread (the one with the fewest streams when it was opened), so
/// a tick's sending is spread over the cores and finishes sooner after the deadline.
pub struct MediaHandle {
    lanes: Vec<Lane>,
    owner: HashMap<CallRef, Owned>,
    /// Bridged pairs, both ways, so closing or re-bridging one leg tells the other's thread.
    partners: HashMap<CallRef, CallRef>,
    bind_ip: IpAddr,
    ports: (u16, u16),
    cursor: u16,
}

impl MediaHandle {
    /// `bind_ip`: where RTP sockets are bound (unspecified: every address).
    pub fn start(
        threads: usize,
        ports: (u16, u16),
        bind_ip: IpAddr,
        timeouts: MediaTimeouts,
        events: tokio::sync::mpsc::Sender<MediaEvent>,
    ) -> std::io::Result<MediaHandle> {
        let ticks = |d: Duration| (d.as_millis() / TICK.as_millis()).min(u32::MAX as u128) as u32;
        let timeout_ticks = ticks(timeouts.rtp).max(1);
        // 0 turns the first-packet limit off; anything shorter than a tick is one tick.
        let first_ticks = if timeouts.first_packet.is_zero() {
            0
        } else {
            ticks(timeouts.first_packet).max(1)
        };
        let mut lanes = Vec::new();
        for n in 0..threads.max(1) {
            let (tx, rx) = sync_channel(COMMAND_QUEUE);
            let events = events.clone();
            let counters = Arc::new(LaneCounters::default());
            let published = Arc::clone(&counters);
            let thread = std::thread::Builder::new()
                .name(format!("hotline-media-{n}"))
                .spawn(move || {
                    MediaLoop::new(rx, events, timeout_ticks, first_ticks).run(&published)
                })?;
            lanes.push(Lane {
                tx,
                counters,
                waiting: VecDeque::new(),
                thread: Some(thread),
                streams: 0,
            });
        }
        Ok(MediaHandle {
            lanes,
            owner: HashMap::new(),
            partners: HashMap::new(),
            bind_ip,
            ports,
            cursor: ports.0,
        })
    }

    /// Stop the threads and wait for them; every socket is closed.
    pub fn stop(&mut self) {
        for lane in &mut self.lanes {
            let _ = lane.tx.send(Command::Stop);
        }
        for lane in &mut self.lanes {
            if let Some(t) = lane.thread.take() {
                let _ = t.join();
            }
        }
    }

    /// Hand over commands that were waiting for room in a queue.
    pub fn flush(&mut self) {
        for lane in &mut self.lanes {
            let _ = lane.flush();
        }
    }

    fn bind_pair(&mut self) -> Option<(u16, UdpSocket, UdpSocket)> {
        let (low, high) = self.ports;
        let pairs = ((high - low) / 2).max(1);
        for _ in 0..pairs {
            let port = self.cursor;
            // u32: the pair above 65534 must wrap to the start, not overflow.
            let next = u32::from(self.cursor) + 2;
            self.cursor = if next + 1 > u32::from(high) {
                low
            } else {
                next as u16
            };
            if u32::from(port) + 1 > u32::from(high) {
                continue;
            }
            let Ok(rtp) = UdpSocket::bind(SocketAddr::new(self.bind_ip, port)) else {
                continue;
            };
            let Ok(rtcp) = UdpSocket::bind(SocketAddr::new(self.bind_ip, port + 1)) else {
                continue;
            };
            if rtp.set_nonblocking(true).is_err() || rtcp.set_nonblocking(true).is_err() {
                continue;
            }
            return Some((port, rtp, rtcp));
        }
        None
    }
}

impl MediaHandle {
    fn open_on(&mut self, call: CallRef, n: usize) -> Result<u16, MediaOpenError> {
        let (port, rtp, rtcp) = self.bind_pair().ok_or(MediaOpenError::NoPorts)?;
        let rtp = Arc::new(rtp);
        let egress = Arc::new(Egress::new());
        let lane = &mut self.lanes[n];
        lane.post(Command::Add {
            call,
            rtp: rtp.clone(),
            rtcp,
            egress: egress.clone(),
        })?;
        lane.streams += 1;
        self.owner.insert(
            call,
            Owned {
                lane: n,
                rtp,
                egress,
            },
        );
        Ok(port)
    }

    fn post(&mut self, call: CallRef, cmd: MediaCommand) {
        if let Some(n) = self.owner.get(&call).map(|o| o.lane) {
            let _ = self.lanes[n].post(Command::Call(cmd));
        }
    }

    /// Link both directions, each on the thread of the leg that receives.
    fn bridge(&mut self, a: CallRef, b: CallRef) {
        if a == b || !self.owner.contains_key(&a) || !self.owner.contains_key(&b) {
            tracing::warn!(?a, ?b, "bridge with a stream that is gone");
            return;
        }
        if self.partners.get(&a) == Some(&b) {
            // Already bridged (e.g. back from hold): hear each other again.
            self.relink(a, b);
            self.relink(b, a);
            return;
        }
        self.dissolve(a);
        self.dissolve(b);
        self.relink(a, b);
        self.relink(b, a);
        self.partners.insert(a, b);
        self.partners.insert(b, a);
    }

    fn relink(&mut self, call: CallRef, to: CallRef) {
        let (Some(n), Some(other)) = (self.owner.get(&call).map(|o| o.lane), self.owner.get(&to))
        else {
            return;
        };
        let partner = Partner {
            call: to,
            rtp: other.rtp.clone(),
            egress: other.egress.clone(),
        };
        let _ = self.lanes[n].post(Command::Link { call, partner });
    }

    /// End `call`'s bridge on both legs' threads.
    fn dissolve(&mut self, call: CallRef) {
        if let Some(p) = self.partners.remove(&call) {
            self.partners.remove(&p);
            self.post(call, MediaCommand::Unbridge { call });
            self.post(p, MediaCommand::Unbridge { call: p });
        }
    }
}

impl Drop for MediaHandle {
    fn drop(&mut self) {
        self.stop();
    }
}

impl MediaBackend for MediaHandle {
    fn totals(&self) -> MediaTotals {
        let mut t = MediaTotals::default();
        for lane in &self.lanes {
            let c = &lane.counters;
            t.rtp_received += c.rtp_received.load(Ordering::Relaxed);
            t.rtp_lost += c.rtp_lost.load(Ordering::Relaxed);
            t.late_ticks += c.late_ticks.load(Ordering::Relaxed);
            t.skipped_ticks += c.skipped_ticks.load(Ordering::Relaxed);
        }
        t
    }

    /// Ask the routing table which of our addresses reaches the caller: connect() on a UDP
    /// socket sends nothing, it only picks the route and the source address.
    fn local_ip_towards(&mut self, peer: IpAddr) -> Option<IpAddr> {
        if !self.bind_ip.is_unspecified() {
            return Some(self.bind_ip);
        }
        let any = match peer {
            IpAddr::V4(_) => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            IpAddr::V6(_) => IpAddr::V6(std::net::Ipv6Addr::UNSPECIFIED),
        };
        let probe = UdpSocket::bind(SocketAddr::new(any, 0)).ok()?;
        probe.connect(SocketAddr::new(peer, 9)).ok()?;
        let ip = probe.local_addr().ok()?.ip();
        (!ip.is_unspecified()).then_some(ip)
    }

    /// Bridges work across threads; this only keeps a transfer's two legs on one thread (one
    /// tick carries both, and neither socket is used from two threads).
    fn open_beside(&mut self, call: CallRef, beside: CallRef) -> Result<u16, MediaOpenError> {
        let Some(n) = self.owner.get(&beside).map(|o| o.lane) else {
            return self.open(call);
        };
        self.open_on(call, n)
    }

    fn open(&mut self, call: CallRef) -> Result<u16, MediaOpenError> {
        let n = self
            .lanes
            .iter()
            .enumerate()
            .min_by_key(|(_, l)| l.streams)
            .map(|(n, _)| n)
            .ok_or(MediaOpenError::Closed)?;
        self.open_on(call, n)
    }

    fn command(&mut self, cmd: MediaCommand) {
        let call = cmd.call();
        match cmd {
            MediaCommand::Bridge { with, .. } => return self.bridge(call, with),
            MediaCommand::Unbridge { .. } => return self.dissolve(call),
            MediaCommand::Close { .. } => {
                // The partner's thread stops sending on this leg's socket and drops it.
                if let Some(p) = self.partners.remove(&call) {
                    self.partners.remove(&p);
                    self.post(p, MediaCommand::Unbridge { call: p });
                }
            }
            _ => {}
        }
        let closing = matches!(cmd, MediaCommand::Close { .. });
        let Some(n) = self.owner.get(&call).map(|o| o.lane) else {
            return;
        };
        if closing {
            self.owner.remove(&call);
            self.lanes[n].streams -= 1;
        }
        let _ = self.lanes[n].post(Command::Call(cmd));
    }
}

/// How long a stream may go without hearing its caller before `RtpTimeout`.
#[derive(Debug, Clone, Copy)]
pub struct MediaTimeouts {
    /// Silence after the caller's media came (`media.rtp_timeout`).
    pub rtp: Duration,
    /// Nothing at all since the stream started (`media.first_packet_timeout`; zero: off).
    pub first_packet: Duration,
}

#[cfg(test)]
#[path = "media_tests.rs"]
mod tests;
