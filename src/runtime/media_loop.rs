//! One media thread's loop (see `media.rs` for the threads and how streams reach them): the
//! tick that sends every stream's next frame and drains its sockets, the wait between ticks
//! in which bridged legs are forwarded as their packets arrive, and the commands that change
//! a thread's streams.

use super::*;

pub(super) struct Slot {
    pub(super) call: CallRef,
    /// Shared with a bridged partner's thread, which sends forwarded packets on it.
    pub(super) rtp: Arc<UdpSocket>,
    pub(super) rtcp: UdpSocket,
    /// Who numbers this leg's packets (this thread, or a bridged partner's forwarder).
    pub(super) egress: Arc<Egress>,
    pub(super) stream: Option<Stream>,
    /// The peer the RTP socket is connect()ed to, which makes each send a plain send().
    pub(super) connected: Option<SocketAddr>,
    /// The other leg of a bridged call: where this slot's received packets go.
    pub(super) partner: Option<Partner>,
    /// The RTP socket is in the waker's set: read when it wakes the thread, not at the tick.
    pub(super) watched: bool,
    /// Packets this slot may still read before the next tick: a flooded port costs the
    /// same bounded work whether it is read once per tick or woken on many times.
    pub(super) budget: usize,
}

pub(super) struct MediaLoop {
    pub(super) rx: Receiver<Command>,
    pub(super) events: tokio::sync::mpsc::Sender<MediaEvent>,
    pub(super) timeout_ticks: u32,
    pub(super) first_ticks: u32,
    pub(super) slots: Vec<Slot>,
    pub(super) index: HashMap<CallRef, usize>,
    pub(super) outbox: Outbox,
    /// Waits between ticks, woken early by bridged legs' packets; None if the kernel would
    /// not give us one (then bridged packets are forwarded once per tick).
    pub(super) waker: Option<Waker>,
    /// RTP received and lost by the streams already closed on this thread.
    pub(super) closed_rtp: (u64, u64),
    /// The loss last published: a counter never goes back, though a late packet can fill a
    /// gap that was counted.
    pub(super) published_lost: u64,
    /// The tick at which the counters are published next.
    pub(super) publish_at: u64,
}

/// The thread publishes its counters this often (in ticks): a second.
const PUBLISH_TICKS: u64 = 50;

/// Events on their way to the engine. The channel is bounded and this thread must never
/// block, so what does not fit waits here, in order, for the next tick: a lost PlayDone
/// would leave its flow waiting for ever.
#[derive(Default)]
pub(super) struct Outbox {
    pub(super) queue: VecDeque<MediaEvent>,
    /// Set while events wait, so a backlog is logged once rather than on every tick.
    pub(super) backed_up: bool,
}

impl Outbox {
    pub(super) fn push(&mut self, event: MediaEvent) {
        self.queue.push_back(event);
    }

    /// Hand over events, oldest first, as far as the channel takes them.
    pub(super) fn flush(&mut self, tx: &tokio::sync::mpsc::Sender<MediaEvent>) {
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
    pub(super) fn new(
        rx: Receiver<Command>,
        events: tokio::sync::mpsc::Sender<MediaEvent>,
        timeout_ticks: u32,
        first_ticks: u32,
    ) -> Self {
        MediaLoop {
            rx,
            events,
            timeout_ticks,
            first_ticks,
            slots: Vec::new(),
            index: HashMap::new(),
            waker: Waker::new()
                .map_err(|error| {
                    tracing::warn!(%error, "no epoll for a media thread; bridged packets wait for the tick")
                })
                .ok(),
            outbox: Outbox {
                queue: VecDeque::with_capacity(256),
                backed_up: false,
            },
            closed_rtp: (0, 0),
            published_lost: 0,
            publish_at: 0,
        }
    }

    pub(super) fn run(mut self, counters: &LaneCounters) {
        match crate::runtime::realtime::raise_priority() {
            Priority::RealTime => {
                tracing::info!("media thread runs with real-time priority (SCHED_FIFO 10)")
            }
            p => tracing::info!(
                reniced = p == Priority::Reniced,
                "media thread runs without real-time priority (not permitted)"
            ),
        }
        let mut pacer = Pacer::new(Instant::now());
        let mut packet = [0u8; PACKET_LEN];
        let mut batch = RecvBatch::new(false);
        loop {
            pacer.begin(Instant::now());
            if !self.apply_commands() {
                return;
            }
            // At or past: a stall may skip the very tick.
            if pacer.tick() >= self.publish_at {
                self.publish_at = pacer.tick() + PUBLISH_TICKS;
                self.publish(&pacer, counters);
            }
            // Sends first, in the same order every tick, so each stream leaves at the same
            // offset from the deadline whatever the receive side has to do this tick.
            for slot in &mut self.slots {
                let Some(stream) = slot.stream.as_mut() else {
                    continue;
                };
                let (len, finished) = stream.next_packet(&mut packet);
                if len > 0 {
                    let rtp = &slot.rtp;
                    let sent = match (slot.connected, stream.destination()) {
                        (Some(_), _) => slot.egress.seal(&packet[..len], |p| rtp.send(p)),
                        (None, Some(dest)) => {
                            slot.egress.seal(&packet[..len], |p| rtp.send_to(p, dest))
                        }
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
            // The slots' RTCP spread over the ticks of the period (slot i in tick i mod the
            // period), so no tick pays for all of them at once.
            let rtcp_turn = pacer.tick() % RTCP_DRAIN_TICKS;
            for (i, slot) in self.slots.iter_mut().enumerate() {
                slot.budget = MAX_RECV_PER_TICK;
                // A watched (bridged) leg is read when its packets wake the thread; reading
                // it here too would mostly find nothing, at a syscall each.
                if !slot.watched {
                    drain(slot, &mut batch, &mut self.outbox, usize::MAX);
                }
                let Slot {
                    call, rtcp, stream, ..
                } = slot;
                let Some(stream) = stream.as_mut() else {
                    continue;
                };
                if i as u64 % RTCP_DRAIN_TICKS == rtcp_turn {
                    drain_rtcp(rtcp, &mut batch);
                }
                if stream.tick_silence(self.timeout_ticks, self.first_ticks) {
                    if !stream.is_latched() {
                        tracing::info!(
                            ?call,
                            foreign = stream.stats().foreign,
                            "no RTP from the caller since the stream started"
                        );
                    }
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
            self.forward_until(deadline, &mut batch);
        }
    }

    /// Sums are over the streams on the thread now and those closed; a few hundred
    /// additions once a second.
    fn publish(&mut self, pacer: &Pacer, counters: &LaneCounters) {
        let (mut received, mut lost) = self.closed_rtp;
        for stream in self.slots.iter().filter_map(|s| s.stream.as_ref()) {
            let stats = stream.stats();
            received += stats.received;
            lost += stats.lost;
        }
        self.published_lost = self.published_lost.max(lost);
        let (late, skipped) = pacer.late_and_skipped();
        counters.rtp_received.store(received, Ordering::Relaxed);
        counters
            .rtp_lost
            .store(self.published_lost, Ordering::Relaxed);
        counters.late_ticks.store(late, Ordering::Relaxed);
        counters.skipped_ticks.store(skipped, Ordering::Relaxed);
    }

    /// Waits for the next tick; meanwhile a bridged leg's packets go out on its partner soon
    /// after they arrive. Soon, not at once: after each wake-up the thread sleeps
    /// `FORWARD_COALESCE` before it waits again, so at most a couple of thousand wake-ups a
    /// second serve any number of legs (waking on every packet cost 2.8x the floor's CPU at
    /// 200 bridged calls), while forwarding within half a millisecond keeps the bridged
    /// calls' jitter under a millisecond (a receive pass every 5 ms gave them 5 ms).
    pub(super) fn forward_until(&mut self, deadline: Instant, batch: &mut RecvBatch) {
        let Some(waker) = self.waker.as_mut() else {
            if let Some(wait) = deadline.checked_duration_since(Instant::now()) {
                std::thread::sleep(wait);
            }
            return;
        };
        waker.arm(deadline);
        let mut tokens = [0u64; 64];
        loop {
            let n = match waker.wait() {
                Woken::Deadline => return,
                Woken::Readable(ready) => {
                    for (t, e) in tokens.iter_mut().zip(ready) {
                        *t = e.u64;
                    }
                    ready.len().min(tokens.len())
                }
            };
            let woke = Instant::now();
            for &token in &tokens[..n] {
                // One datagram per wake-up: the set is level-triggered, so a socket that
                // holds more wakes the thread again, and no receive is spent on finding
                // it empty.
                if let Some(&i) = self.index.get(&CallRef(token)) {
                    drain(&mut self.slots[i], batch, &mut self.outbox, 1);
                }
            }
            self.outbox.flush(&self.events);
            let next = woke + FORWARD_COALESCE;
            if next >= deadline {
                if let Some(wait) = deadline.checked_duration_since(Instant::now()) {
                    std::thread::sleep(wait);
                }
                return;
            }
            if let Some(wait) = next.checked_duration_since(Instant::now()) {
                std::thread::sleep(wait);
            }
        }
    }

    /// Apply queued commands; false when the thread must stop.
    pub(super) fn apply_commands(&mut self) -> bool {
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
                        watched: false,
                        budget: MAX_RECV_PER_TICK,
                    });
                }
                Command::Link { call, partner } => self.link(call, partner),
                Command::Call(cmd) => self.apply(cmd),
            }
        }
    }

    pub(super) fn apply(&mut self, cmd: MediaCommand) {
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
                    // Once per stream, and only when someone else sent to its port (a
                    // hijack or digit-injection attempt); a NAT phone's learning run drops
                    // fewer than LEARN_RUN and is not worth a line.
                    let stats = stream.stats();
                    self.closed_rtp.0 += stats.received;
                    self.closed_rtp.1 += stats.lost;
                    if stats.foreign >= u64::from(crate::media::latch::LEARN_RUN)
                        || stats.unauthentic > 0
                    {
                        tracing::info!(
                            ?call,
                            foreign = stats.foreign,
                            unauthentic = stats.unauthentic,
                            heard = stats.heard,
                            latched = ?stream.latched(),
                            "RTP from unexpected sources dropped"
                        );
                    }
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
    pub(super) fn partner_of(&self, i: usize) -> Partner {
        let s = &self.slots[i];
        Partner {
            call: s.call,
            rtp: s.rtp.clone(),
            egress: s.egress.clone(),
        }
    }

    /// `call`'s received packets go out on `partner` from now on.
    pub(super) fn link(&mut self, call: CallRef, partner: Partner) {
        let Some(&i) = self.index.get(&call) else {
            return;
        };
        let slot = &mut self.slots[i];
        if let Some(stream) = slot.stream.as_mut() {
            stream.link(partner.egress.clone());
        }
        if !slot.watched
            && let Some(w) = &self.waker
        {
            slot.watched = w.watch(slot.rtp.as_raw_fd(), call.0);
        }
        slot.partner = Some(partner);
    }

    pub(super) fn unlink(&mut self, i: usize) {
        let slot = &mut self.slots[i];
        // Watched exactly while bridged: the socket may outlive the slot in a partner's
        // hands, and must not wake this thread after it.
        slot.partner = None;
        if slot.watched
            && let Some(w) = &self.waker
        {
            w.unwatch(slot.rtp.as_raw_fd());
            slot.watched = false;
        }
        if let Some(rec) = slot.stream.as_mut().and_then(Stream::unlink) {
            let call = slot.call;
            self.outbox.push(recorded_stereo(call, rec));
        }
    }
}

pub(super) fn recorded_stereo(call: CallRef, rec: StereoRecording) -> MediaEvent {
    MediaEvent::RecordedStereo {
        call,
        id: rec.id,
        samples: rec.samples,
    }
}

/// Receive what waits on a slot's RTP socket (bounded, so one flooded port cannot hold up
/// every other stream's tick); a bridged packet goes out on the partner's socket at once.
/// Reads up to `most` datagrams (and at most the slot's budget) from a slot's RTP socket
/// into its stream, forwarding to a bridged partner as they come: one receive call per
/// `BATCH`, so an idle or lightly used socket costs one call per tick, not a second one to
/// find it empty.
pub(super) fn drain(slot: &mut Slot, batch: &mut RecvBatch, outbox: &mut Outbox, most: usize) {
    let Slot {
        call,
        rtp,
        stream,
        connected,
        partner,
        budget,
        ..
    } = slot;
    let fd = rtp.as_raw_fd();
    let mut left = most.min(*budget);
    let mut forward = |packet: &[u8], dest: Dest| {
        let Some(p) = partner.as_ref() else {
            return;
        };
        let sent = if dest.connected {
            p.egress.seal(packet, |b| p.rtp.send(b))
        } else {
            p.egress.seal(packet, |b| p.rtp.send_to(b, dest.addr))
        };
        if let Err(e) = sent
            && e.kind() != ErrorKind::WouldBlock
        {
            tracing::trace!(error = %e, "forwarded RTP send failed");
        }
    };
    while left > 0 {
        let want = left.min(BATCH);
        // Empty, or an ICMP error queued on a connected socket (the peer may come back):
        // either way nothing more this time.
        let got = batch.recv_up_to(fd, want);
        *budget -= got;
        left -= got;
        // Without a stream (a leg bridged before its stream starts) there is nothing to
        // play them into: read and dropped, so a watched socket does not keep waking the
        // thread.
        if let Some(stream) = stream.as_mut() {
            for i in 0..got {
                let Some((packet, from, truncated)) = batch.get_mut(i) else {
                    continue;
                };
                // Longer than any RTP we take: dropped whole rather than read cut short.
                if truncated {
                    continue;
                }
                let heard = stream.receive(packet, from, &mut forward);
                if let Some(addr) = heard.latched {
                    relatch(fd, rtp, connected, addr);
                    stream.socket_connected(*connected);
                }
                if let Some(digit) = heard.digit {
                    outbox.push(MediaEvent::Digit { call: *call, digit });
                }
            }
        }
        if got < want {
            break;
        }
    }
}

/// RTCP is read only to keep its socket from filling, and ignored: one receive call, so a
/// flooded RTCP port costs a media thread no more than a quiet one (what does not fit waits
/// in the kernel, which drops it when the buffer is full). A phone sends a report every few
/// seconds, far fewer than a batch per drain period.
pub(super) fn drain_rtcp(rtcp: &UdpSocket, batch: &mut RecvBatch) -> usize {
    batch.recv(rtcp.as_raw_fd())
}

pub(super) fn recorded(call: CallRef, rec: Recording) -> MediaEvent {
    MediaEvent::Recorded {
        call,
        id: rec.id,
        samples: rec.samples,
        heard: rec.heard,
    }
}

/// Point the socket at the caller's real address (symmetric RTP) once the stream has latched
/// to it. A connected UDP socket only accepts that peer's packets and sends without naming the
/// address each time, which is why the stream must not latch to just any sender.
pub(super) fn relatch(
    fd: i32,
    socket: &UdpSocket,
    connected: &mut Option<SocketAddr>,
    addr: SocketAddr,
) {
    if *connected == Some(addr) {
        return;
    }
    if connected.is_some() {
        disconnect(fd);
    }
    *connected = socket.connect(addr).ok().map(|_| addr);
}

/// connect() to AF_UNSPEC dissolves a UDP socket's association (connect(2)).
pub(super) fn disconnect(fd: i32) {
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
