//! The media threads: OS threads away from the signalling runtime (one per core by default),
//! each waking on absolute 20 ms deadlines to send every one of its streams' next frame and
//! drain their sockets. One timer per thread for all its streams; no allocation, lock or
//! extra syscall per packet.

use std::collections::{HashMap, VecDeque};
use std::io::ErrorKind;
use std::net::{IpAddr, Ipv4Addr, SocketAddr, UdpSocket};
use std::os::fd::AsRawFd;
use std::sync::Arc;
use std::sync::mpsc::{Receiver, SyncSender, TrySendError, sync_channel};

use std::thread::JoinHandle;
use std::time::{Duration, Instant};
use tokio::sync::mpsc::error::TrySendError as EventSendError;

use crate::call::{MediaBackend, MediaCommand, MediaEvent, MediaOpenError};
use crate::media::bridge::{Dest, Egress};
use crate::media::pacing::{Pacer, TICK};
use crate::media::recorder::{Recording, StereoRecording};
use crate::media::stream::{PACKET_LEN, Stream};
use crate::sip::CallRef;

/// RTCP sockets are only drained (and their packets ignored) this often.
const RTCP_DRAIN_TICKS: u64 = 50;
const COMMAND_QUEUE: usize = 16 * 1024;
/// A caller sends one packet per tick; a few more is reordering or DTMF bursts.
const MAX_RECV_PER_TICK: usize = 16;
/// Receive passes per tick for bridged legs (see `MediaLoop::run`).
const FORWARD_PASSES: u32 = 4;

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

/// One media thread and the commands on their way to it.
struct Lane {
    tx: SyncSender<Command>,
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
    pub fn start(
        threads: usize,
        ports: (u16, u16),
        rtp_timeout: Duration,
        events: tokio::sync::mpsc::Sender<MediaEvent>,
    ) -> std::io::Result<MediaHandle> {
        let timeout_ticks =
            (rtp_timeout.as_millis() / TICK.as_millis()).clamp(1, u32::MAX as u128) as u32;
        let mut lanes = Vec::new();
        for n in 0..threads.max(1) {
            let (tx, rx) = sync_channel(COMMAND_QUEUE);
            let events = events.clone();
            let thread = std::thread::Builder::new()
                .name(format!("hotline-media-{n}"))
                .spawn(move || MediaLoop::new(rx, events, timeout_ticks).run())?;
            lanes.push(Lane {
                tx,
                waiting: VecDeque::new(),
                thread: Some(thread),
                streams: 0,
            });
        }
        Ok(MediaHandle {
            lanes,
            owner: HashMap::new(),
            partners: HashMap::new(),
            bind_ip: IpAddr::V4(Ipv4Addr::UNSPECIFIED),
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

struct Slot {
    call: CallRef,
    /// Shared with a bridged partner's thread, which sends forwarded packets on it.
    rtp: Arc<UdpSocket>,
    rtcp: UdpSocket,
    /// Who numbers this leg's packets (this thread, or a bridged partner's forwarder).
    egress: Arc<Egress>,
    stream: Option<Stream>,
    /// The peer the RTP socket is connect()ed to, which makes each send a plain send().
    connected: Option<SocketAddr>,
    /// The other leg of a bridged call: where this slot's received packets go.
    partner: Option<Partner>,
}

struct MediaLoop {
    rx: Receiver<Command>,
    events: tokio::sync::mpsc::Sender<MediaEvent>,
    timeout_ticks: u32,
    slots: Vec<Slot>,
    index: HashMap<CallRef, usize>,
    outbox: Outbox,
}

/// Events on their way to the engine. The channel is bounded and this thread must never
/// block, so what does not fit waits here, in order, for the next tick: a lost PlayDone
/// would leave its flow waiting for ever.
#[derive(Default)]
struct Outbox {
    queue: VecDeque<MediaEvent>,
    /// Set while events wait, so a backlog is logged once rather than on every tick.
    backed_up: bool,
}

impl Outbox {
    fn push(&mut self, event: MediaEvent) {
        self.queue.push_back(event);
    }

    /// Hand over events, oldest first, as far as the channel takes them.
    fn flush(&mut self, tx: &tokio::sync::mpsc::Sender<MediaEvent>) {
        while let Some(event) = self.queue.pop_front() {
            match tx.try_send(event) {
                Ok(()) => {}
                Err(EventSendError::Full(event)) => {
                    self.queue.push_front(event);
                    if !self.backed_up {
                        self.backed_up = true;
                        tracing::warn!(
                            waiting = self.queue.len(),
                            "media event queue to the engine is full; events wait in order"
                        );
                    }
                    return;
                }
                Err(EventSendError::Closed(_)) => {
                    // The signalling loop has ended (shutdown): nobody will read these.
                    self.queue.clear();
                    return;
                }
            }
        }
        if self.backed_up {
            self.backed_up = false;
            tracing::info!("media event backlog delivered");
        }
    }
}

impl MediaLoop {
    fn new(
        rx: Receiver<Command>,
        events: tokio::sync::mpsc::Sender<MediaEvent>,
        timeout_ticks: u32,
    ) -> Self {
        MediaLoop {
            rx,
            events,
            timeout_ticks,
            slots: Vec::new(),
            index: HashMap::new(),
            outbox: Outbox {
                queue: VecDeque::with_capacity(256),
                backed_up: false,
            },
        }
    }

    fn run(mut self) {
        raise_priority();
        let mut pacer = Pacer::new(Instant::now());
        let mut packet = [0u8; PACKET_LEN];
        let mut rx_buf = [0u8; 2048];
        loop {
            if !self.apply_commands() {
                return;
            }
            // Sends first, in the same order every tick, so each stream leaves at the same
            // offset from the deadline whatever the receive side has to do this tick.
            for slot in &mut self.slots {
                let Some(stream) = slot.stream.as_mut() else {
                    continue;
                };
                let (len, finished) = stream.next_packet(&mut packet);
                if len > 0 {
                    let sent = match (slot.connected, stream.destination()) {
                        (Some(_), _) => slot.rtp.send(&packet[..len]),
                        (None, Some(dest)) => slot.rtp.send_to(&packet[..len], dest),
                        (None, None) => Ok(0),
                    };
                    if let Err(e) = sent
                        && e.kind() != ErrorKind::WouldBlock
                    {
                        tracing::trace!(error = %e, "RTP send failed");
                    }
                }
                if let Some(id) = finished {
                    self.outbox.push(MediaEvent::PlayDone {
                        call: slot.call,
                        id,
                    });
                }
            }
            let drain_rtcp = pacer.tick().is_multiple_of(RTCP_DRAIN_TICKS);
            for slot in &mut self.slots {
                drain(slot, &mut rx_buf, &mut self.outbox);
                let Slot {
                    call, rtcp, stream, ..
                } = slot;
                let Some(stream) = stream.as_mut() else {
                    continue;
                };
                if drain_rtcp {
                    while rtcp.recv_from(&mut rx_buf).is_ok() {}
                }
                if stream.tick_silence(self.timeout_ticks) {
                    self.outbox.push(MediaEvent::RtpTimeout { call: *call });
                }
                if let Some(rec) = stream.tick_recording() {
                    self.outbox.push(recorded(*call, rec));
                }
                if let Some(rec) = stream.tick_stereo() {
                    self.outbox.push(recorded_stereo(*call, rec));
                }
            }
            self.outbox.flush(&self.events);
            let deadline = pacer.next_deadline(Instant::now());
            // Bridged legs are drained again between ticks: a forwarded packet then waits at
            // most a quarter of a tick for its pass instead of a whole one, so arrivals that
            // jitter around a pass do not leave 0 or 20 ms apart.
            if self.slots.iter().any(|s| s.partner.is_some()) {
                for k in 1..FORWARD_PASSES {
                    let at = deadline - TICK + TICK * k / FORWARD_PASSES;
                    if let Some(wait) = at.checked_duration_since(Instant::now()) {
                        std::thread::sleep(wait);
                    } else {
                        continue;
                    }
                    for slot in self.slots.iter_mut().filter(|s| s.partner.is_some()) {
                        drain(slot, &mut rx_buf, &mut self.outbox);
                    }
                    self.outbox.flush(&self.events);
                }
            }
            if let Some(wait) = deadline.checked_duration_since(Instant::now()) {
                std::thread::sleep(wait);
            }
        }
    }

    /// Apply queued commands; false when the thread must stop.
    fn apply_commands(&mut self) -> bool {
        loop {
            let cmd = match self.rx.try_recv() {
                Ok(cmd) => cmd,
                Err(std::sync::mpsc::TryRecvError::Empty) => return true,
                Err(std::sync::mpsc::TryRecvError::Disconnected) => return false,
            };
            match cmd {
                Command::Stop => return false,
                Command::Add {
                    call,
                    rtp,
                    rtcp,
                    egress,
                } => {
                    self.index.insert(call, self.slots.len());
                    self.slots.push(Slot {
                        call,
                        rtp,
                        rtcp,
                        egress,
                        stream: None,
                        connected: None,
                        partner: None,
                    });
                }
                Command::Link { call, partner } => self.link(call, partner),
                Command::Call(cmd) => self.apply(cmd),
            }
        }
    }

    fn apply(&mut self, cmd: MediaCommand) {
        let call = cmd.call();
        let Some(&i) = self.index.get(&call) else {
            return;
        };
        match cmd {
            MediaCommand::Start { params, .. } => {
                let slot = &mut self.slots[i];
                let mut stream = Stream::with_egress(
                    params,
                    fastrand::u32(..),
                    fastrand::u16(..),
                    fastrand::u32(..),
                    slot.egress.clone(),
                );
                // A leg linked before it started (or restarted) forwards from its first packet.
                if let Some(p) = slot.partner.as_ref() {
                    stream.link(p.egress.clone());
                }
                slot.stream = Some(stream);
            }
            MediaCommand::Update { params, .. } => {
                let slot = &mut self.slots[i];
                if let Some(stream) = slot.stream.as_mut() {
                    stream.update(params);
                    // A new SDP address drops the latch; the socket must hear everyone again
                    // until the stream latches anew.
                    if slot.connected.is_some() && stream.latched() != slot.connected {
                        disconnect(slot.rtp.as_raw_fd());
                        slot.connected = None;
                        stream.socket_connected(None);
                    }
                }
            }
            MediaCommand::Play { id, prompts, .. } => {
                if let Some(stream) = self.slots[i].stream.as_mut() {
                    stream.play(id, prompts);
                }
            }
            MediaCommand::Stop { .. } => {
                if let Some(stream) = self.slots[i].stream.as_mut() {
                    stream.stop();
                }
            }
            MediaCommand::Record {
                id,
                max_length,
                silence,
                ..
            } => {
                let rec = match self.slots[i].stream.as_mut() {
                    Some(stream) => stream.record(id, max_length, silence),
                    // Nothing to record from: say so now rather than let the flow wait.
                    None => Some(Recording {
                        id,
                        samples: Vec::new(),
                        heard: false,
                    }),
                };
                if let Some(rec) = rec {
                    self.outbox.push(recorded(call, rec));
                }
            }
            MediaCommand::StopRecording { id, .. } => {
                if let Some(stream) = self.slots[i].stream.as_mut() {
                    if let Some(rec) = stream.stop_recording(id) {
                        self.outbox.push(recorded(call, rec));
                    }
                    if let Some(rec) = stream.stop_stereo(id) {
                        self.outbox.push(recorded_stereo(call, rec));
                    }
                }
            }
            MediaCommand::Music { prompts, .. } => {
                if let Some(stream) = self.slots[i].stream.as_mut() {
                    stream.music(prompts);
                }
            }
            MediaCommand::SendDigit { digit, .. } => {
                if let Some(stream) = self.slots[i].stream.as_mut() {
                    stream.send_digit(digit);
                }
            }
            MediaCommand::RecordBridge { id, .. } => {
                match self.slots[i].stream.as_mut().filter(|s| s.is_linked()) {
                    Some(stream) => {
                        if let Some(rec) = stream.record_bridge(id) {
                            self.outbox.push(recorded_stereo(call, rec));
                        }
                    }
                    // Nothing to record: say so now rather than let the engine wait.
                    None => self.outbox.push(recorded_stereo(
                        call,
                        StereoRecording {
                            id,
                            samples: Vec::new(),
                        },
                    )),
                }
            }
            MediaCommand::Bridge { with, .. } => {
                // The handle turns bridges into a `Link` per direction; a bridge that reaches
                // a thread directly can only join two of its own streams.
                let Some(&j) = self.index.get(&with) else {
                    tracing::warn!(?call, ?with, "bridge to a stream on another thread or gone");
                    return;
                };
                let (a, b) = (self.partner_of(i), self.partner_of(j));
                self.link(call, b);
                self.link(with, a);
            }
            MediaCommand::Unbridge { .. } => self.unlink(i),
            MediaCommand::Close { .. } => {
                // A partner on this thread stops forwarding to this leg now; one elsewhere as
                // soon as its thread sees the Unbridge the handle sent, and until then the
                // retired egress refuses its packets.
                if let Some(p) = self.slots[i].partner.as_ref().map(|p| p.call)
                    && let Some(&j) = self.index.get(&p)
                    && self.slots[j]
                        .partner
                        .as_ref()
                        .is_some_and(|q| q.call == call)
                {
                    self.unlink(j);
                }
                self.unlink(i);
                // Before the stream goes: a caller who spoke and hung up left a message, and
                // the engine holds the call's CDR until it knows whether there is one.
                if let Some(stream) = self.slots[i].stream.as_mut() {
                    stream.retire();
                }
                if let Some(rec) = self.slots[i]
                    .stream
                    .as_mut()
                    .and_then(Stream::take_recording)
                {
                    self.outbox.push(recorded(call, rec));
                }
                self.slots.swap_remove(i);
                self.index.remove(&call);
                if let Some(moved) = self.slots.get(i) {
                    self.index.insert(moved.call, i);
                }
            }
        }
    }
}

impl MediaLoop {
    fn partner_of(&self, i: usize) -> Partner {
        let s = &self.slots[i];
        Partner {
            call: s.call,
            rtp: s.rtp.clone(),
            egress: s.egress.clone(),
        }
    }

    /// `call`'s received packets go out on `partner` from now on.
    fn link(&mut self, call: CallRef, partner: Partner) {
        let Some(&i) = self.index.get(&call) else {
            return;
        };
        let slot = &mut self.slots[i];
        if let Some(stream) = slot.stream.as_mut() {
            stream.link(partner.egress.clone());
        }
        slot.partner = Some(partner);
    }

    fn unlink(&mut self, i: usize) {
        let slot = &mut self.slots[i];
        slot.partner = None;
        if let Some(rec) = slot.stream.as_mut().and_then(Stream::unlink) {
            let call = slot.call;
            self.outbox.push(recorded_stereo(call, rec));
        }
    }
}

fn recorded_stereo(call: CallRef, rec: StereoRecording) -> MediaEvent {
    MediaEvent::RecordedStereo {
        call,
        id: rec.id,
        samples: rec.samples,
    }
}

/// Receive what waits on a slot's RTP socket (bounded, so one flooded port cannot hold up
/// every other stream's tick); a bridged packet goes out on the partner's socket at once.
fn drain(slot: &mut Slot, rx_buf: &mut [u8; 2048], outbox: &mut Outbox) {
    let Slot {
        call,
        rtp,
        stream,
        connected,
        partner,
        ..
    } = slot;
    let Some(stream) = stream.as_mut() else {
        return;
    };
    let mut forward = |packet: &[u8], dest: Dest| {
        let Some(p) = partner.as_ref() else {
            return;
        };
        let sent = if dest.connected {
            p.rtp.send(packet)
        } else {
            p.rtp.send_to(packet, dest.addr)
        };
        if let Err(e) = sent
            && e.kind() != ErrorKind::WouldBlock
        {
            tracing::trace!(error = %e, "forwarded RTP send failed");
        }
    };
    for _ in 0..MAX_RECV_PER_TICK {
        match rtp.recv_from(rx_buf) {
            Ok((n, from)) => {
                let got = stream.receive(&mut rx_buf[..n], from, &mut forward);
                if let Some(addr) = got.latched {
                    relatch(rtp.as_raw_fd(), rtp, connected, addr);
                    stream.socket_connected(*connected);
                }
                if let Some(digit) = got.digit {
                    outbox.push(MediaEvent::Digit { call: *call, digit });
                }
            }
            Err(e) if e.kind() == ErrorKind::WouldBlock => break,
            // ICMP errors surface here on connected sockets; the peer may come back.
            Err(_) => break,
        }
    }
}

fn recorded(call: CallRef, rec: Recording) -> MediaEvent {
    MediaEvent::Recorded {
        call,
        id: rec.id,
        samples: rec.samples,
        heard: rec.heard,
    }
}

/// Ask for real-time scheduling: on a busy machine the pacing thread must wake on time even
/// when signalling, the database or other programs want the CPU, or callers hear jitter. Where
/// that is not allowed (no CAP_SYS_NICE), fall back to the best ordinary priority we may have.
fn raise_priority() {
    // SAFETY: plain syscalls on the calling thread with a valid, initialised sched_param.
    let ok = unsafe {
        let param = libc::sched_param { sched_priority: 10 };
        libc::pthread_setschedparam(libc::pthread_self(), libc::SCHED_FIFO, &param) == 0
    };
    if ok {
        tracing::info!("media thread runs with real-time priority (SCHED_FIFO 10)");
    } else {
        // SAFETY: setpriority on this thread's id only lowers or raises its nice value.
        let reniced = unsafe {
            libc::setpriority(libc::PRIO_PROCESS, libc::gettid() as libc::id_t, -10) == 0
        };
        tracing::info!(
            reniced,
            "media thread runs without real-time priority (not permitted)"
        );
    }
    // Wake within microseconds of the deadline rather than the default 50 µs slack.
    // SAFETY: prctl with PR_SET_TIMERSLACK only affects this thread's timer slack.
    unsafe {
        libc::prctl(libc::PR_SET_TIMERSLACK, 1_000u64);
    }
}

/// Point the socket at the caller's real address (symmetric RTP) once the stream has latched
/// to it. A connected UDP socket only accepts that peer's packets and sends without naming the
/// address each time, which is why the stream must not latch to just any sender.
fn relatch(fd: i32, socket: &UdpSocket, connected: &mut Option<SocketAddr>, addr: SocketAddr) {
    if *connected == Some(addr) {
        return;
    }
    if connected.is_some() {
        disconnect(fd);
    }
    *connected = socket.connect(addr).ok().map(|_| addr);
}

/// connect() to AF_UNSPEC dissolves a UDP socket's association (connect(2)).
fn disconnect(fd: i32) {
    // SAFETY: a zeroed sockaddr with family AF_UNSPEC is a valid argument for connect(2) on a
    // socket we own; the call only changes the socket's peer association.
    unsafe {
        let mut addr: libc::sockaddr = std::mem::zeroed();
        addr.sa_family = libc::AF_UNSPEC as libc::sa_family_t;
        libc::connect(
            fd,
            &addr,
            std::mem::size_of::<libc::sockaddr>() as libc::socklen_t,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
        let mut media = MediaLoop::new(cmd_rx, tx, 1000);
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
        let mut media =
            MediaHandle::start(2, (base, base + 200), Duration::from_secs(60), tx).unwrap();
        media.bind_ip = IpAddr::V4(Ipv4Addr::LOCALHOST);
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
        });
    }

    #[test]
    fn a_stereo_recording_comes_back_at_unbridge_close_or_at_once_without_a_bridge() {
        use crate::media::Codec;
        let (tx, _rx) = tokio::sync::mpsc::channel(8);
        let (_cmd_tx, cmd_rx) = sync_channel(1);
        let mut media = MediaLoop::new(cmd_rx, tx, 1000);
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
}
