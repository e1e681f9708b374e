//! The callers' signalling: one thread driving the sans-IO user agent over one non-blocking
//! UDP socket, placing calls on a fixed schedule, hanging each up after the hold time, and
//! handing media sockets to the RTP thread when calls are answered.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap, HashMap};
use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::os::fd::AsRawFd;
use std::sync::Arc;
use std::sync::mpsc::SyncSender;
use std::time::{Duration, Instant};

use super::agents::{self, Gauge};
use super::hist::Histogram;
use super::rtp_side::RtpCommand;
use super::{LoadError, io_err, net, procstat, sdp};
use crate::media::Codec;
use crate::sip::endpoint::{Peer, TransportKind};
use crate::sip::transaction::TimerConfig;
use crate::sip::ua::{CallRef, UaConfig, UaEvent, UserAgent};

pub(crate) struct SipPlan {
    pub target: SocketAddr,
    pub local_ip: IpAddr,
    pub calls: u32,
    pub cps: f64,
    pub hold: Duration,
    pub number: String,
    pub codec: Codec,
    pub server_pid: Option<u32>,
    /// After the last INVITE, how long answers may still take (timer B is 64·T1 = 32 s).
    pub setup_limit: Duration,
    /// After the last hang-up is due, how long BYE responses may still take.
    pub teardown_limit: Duration,
    /// With agents: the agent calls up over time (kept by the agents' thread), read at both
    /// ends of the steady window.
    pub agent_calls_up: Option<Arc<Gauge>>,
}

impl SipPlan {
    pub(crate) fn spacing(&self) -> Duration {
        Duration::from_secs_f64(1.0 / self.cps)
    }

    /// The longest the SIP side can run: it gives up on whatever is left after this.
    pub(crate) fn limit(&self) -> Duration {
        self.spacing() * self.calls.saturating_sub(1)
            + self.setup_limit
            + self.hold
            + self.teardown_limit
    }
}

#[derive(Debug, Default, Clone)]
pub(crate) struct Tally {
    pub attempted: u32,
    pub answered: u32,
    pub failed: u32,
    pub failure_codes: BTreeMap<u16, u32>,
    /// Answered, but with SDP the tool cannot send to (hung up at once).
    pub bad_answers: u32,
    pub server_hangups: u32,
    pub bye_ok: u32,
    pub bye_failure_codes: BTreeMap<u16, u32>,
    /// Still in progress when the time limit ran out.
    pub unfinished: u32,
    /// Transmits the user agent aimed off loopback, which were not sent.
    pub refused_sends: u32,
}

/// From the moment the last call was established to the first hang-up.
#[derive(Debug, Clone)]
pub(crate) struct Window {
    pub length: Duration,
    pub calls: u32,
    /// The mean number of agent calls up over the window (0 without agents).
    pub agent_calls: f64,
    pub server_cpu_seconds: Option<f64>,
    pub tool_cpu: Duration,
}

pub(crate) struct SipOutcome {
    pub tally: Tally,
    pub setup: Histogram,
    pub window: Option<Window>,
    /// Per call id: our BYE was answered 2xx.
    pub bye_ok: Vec<bool>,
    /// Why there is no window, when there is none.
    pub window_note: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Calling,
    Up,
    HangingUp,
    Done,
}

struct Slot {
    call: CallRef,
    invite_at: Instant,
    /// The same moment on `net::mono_ns`, for the media thread.
    invite_ns: u64,
    rtp_port: u16,
    /// Held here until the call is answered, then owned by the RTP thread.
    socket: Option<UdpSocket>,
    phase: Phase,
}

struct WindowStart {
    at: Instant,
    calls: u32,
    /// Agent stream-seconds so far.
    agent_area: f64,
    server_cpu: Option<f64>,
    tool_cpu: Duration,
}

struct Driver<'a> {
    plan: &'a SipPlan,
    rtp: &'a SyncSender<RtpCommand>,
    ua: UserAgent,
    sock: UdpSocket,
    peer: Peer,
    slots: Vec<Slot>,
    by_ref: HashMap<CallRef, u32>,
    hangups: BinaryHeap<Reverse<(Instant, u32)>>,
    tally: Tally,
    setup: Histogram,
    bye_ok: Vec<bool>,
    /// INVITEs with an outcome (answered or failed).
    resolved: u32,
    /// Calls answered and carrying media now.
    active: u32,
    done: u32,
    window_start: Option<WindowStart>,
    window: Option<Window>,
    hung_up: bool,
}

pub(crate) fn run(plan: &SipPlan, rtp: &SyncSender<RtpCommand>) -> Result<SipOutcome, LoadError> {
    let sock = net::bind_udp(plan.local_ip).map_err(io_err("binding the SIP socket"))?;
    let local = sock.local_addr().map_err(io_err("SIP socket address"))?;
    let ua = UserAgent::new(UaConfig {
        advertise_request_host: false,
        timers: TimerConfig::default(),
        advertised: local.to_string(),
        user: "load".into(),
        // The load tool is an IO edge: its UAs need distinct tokens, not replay, and the
        // registrar they carry is not one anyone registers with.
        seed: fastrand::u64(..),
        nonce_secret: std::array::from_fn(|_| fastrand::u8(..)),
        tls_port: None,
    });
    let mut d = Driver {
        plan,
        rtp,
        ua,
        sock,
        peer: Peer {
            addr: plan.target,
            transport: TransportKind::Udp,
        },
        slots: Vec::with_capacity(plan.calls as usize),
        by_ref: HashMap::with_capacity(plan.calls as usize),
        hangups: BinaryHeap::with_capacity(plan.calls as usize),
        tally: Tally::default(),
        setup: Histogram::for_setup(),
        bye_ok: vec![false; plan.calls as usize],
        resolved: 0,
        active: 0,
        done: 0,
        window_start: None,
        window: None,
        hung_up: false,
    };
    let result = d.drive();
    d.abandon();
    result?;
    let window_note = match (&d.window, &d.window_start) {
        (Some(_), _) => None,
        (None, None) if d.tally.answered > 0 => {
            Some("no steady window: the first hang-up came before every call was set up (hold shorter than calls/cps?)".into())
        }
        (None, None) => Some("no steady window: no call was answered".into()),
        (None, Some(_)) => Some("no steady window: no call hung up before the time limit".into()),
    };
    Ok(SipOutcome {
        tally: d.tally,
        setup: d.setup,
        window: d.window,
        bye_ok: d.bye_ok,
        window_note,
    })
}

impl Driver<'_> {
    fn drive(&mut self) -> Result<(), LoadError> {
        let t0 = Instant::now();
        let spacing = self.plan.spacing();
        let hard_end = t0 + self.plan.limit();
        let mut buf = vec![0u8; 65_536];
        loop {
            let now = Instant::now();
            if now >= hard_end {
                return Ok(());
            }
            while self.tally.attempted < self.plan.calls
                && t0 + spacing * self.tally.attempted <= now
            {
                self.place(now)?;
            }
            while let Some(&Reverse((at, id))) = self.hangups.peek() {
                if at > now {
                    break;
                }
                self.hangups.pop();
                self.hang_up(now, id);
            }
            if self.ua.poll_timeout().is_some_and(|t| t <= now) {
                self.ua.handle_timeout(now);
            }
            self.pump(now)?;
            if self.tally.attempted == self.plan.calls && self.done == self.plan.calls {
                return Ok(());
            }
            let mut wake = hard_end;
            if self.tally.attempted < self.plan.calls {
                wake = wake.min(t0 + spacing * self.tally.attempted);
            }
            if let Some(Reverse((at, _))) = self.hangups.peek() {
                wake = wake.min(*at);
            }
            if let Some(t) = self.ua.poll_timeout() {
                wake = wake.min(t);
            }
            wait_readable(&self.sock, wake.saturating_duration_since(Instant::now()));
            loop {
                match self.sock.recv_from(&mut buf) {
                    Ok((n, from)) => {
                        let now = Instant::now();
                        self.ua.handle_input(
                            now,
                            Peer {
                                addr: from,
                                transport: TransportKind::Udp,
                            },
                            &buf[..n],
                        );
                        self.pump(now)?;
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                    // ICMP errors from an unreachable target surface here; the UA's timers
                    // turn them into 408s.
                    Err(_) => break,
                }
            }
        }
    }

    fn place(&mut self, now: Instant) -> Result<(), LoadError> {
        let id = self.tally.attempted;
        let socket = net::bind_udp(self.plan.local_ip).map_err(io_err("binding an RTP socket"))?;
        net::enable_rx_timestamps(&socket).map_err(io_err("enabling receive timestamps"))?;
        let rtp_port = socket
            .local_addr()
            .map_err(io_err("RTP socket address"))?
            .port();
        let offer = sdp::offer(self.plan.local_ip, rtp_port, self.plan.codec, id as u64 + 1);
        let call = self
            .ua
            .invite(
                now,
                self.peer,
                &format!("load{id}"),
                &self.plan.number,
                Some(offer.into_bytes()),
            )
            .map_err(|e| LoadError::Sip(e.to_string()))?;
        self.slots.push(Slot {
            call,
            invite_at: now,
            invite_ns: net::mono_ns(),
            rtp_port,
            socket: Some(socket),
            phase: Phase::Calling,
        });
        self.by_ref.insert(call, id);
        self.tally.attempted += 1;
        Ok(())
    }

    fn hang_up(&mut self, now: Instant, id: u32) {
        let slot = &mut self.slots[id as usize];
        if slot.phase != Phase::Up {
            return;
        }
        slot.phase = Phase::HangingUp;
        let call = slot.call;
        self.first_hangup(now);
        self.active -= 1;
        let _ = self.rtp.send(RtpCommand::Stop { id });
        self.ua.hangup(now, call);
    }

    /// Send what the user agent queued and act on its events, until both are empty.
    fn pump(&mut self, now: Instant) -> Result<(), LoadError> {
        loop {
            let mut moved = false;
            while let Some(t) = self.ua.poll_transmit() {
                moved = true;
                if !t.to.addr.ip().is_loopback() {
                    self.tally.refused_sends += 1;
                    continue;
                }
                let _ = self.sock.send_to(&t.data, t.to.addr);
            }
            while let Some(ev) = self.ua.poll_event() {
                moved = true;
                self.on_event(now, ev)?;
            }
            if !moved {
                return Ok(());
            }
        }
    }

    fn on_event(&mut self, now: Instant, ev: UaEvent) -> Result<(), LoadError> {
        match ev {
            UaEvent::Answered { call, answer } => self.on_answered(now, call, answer)?,
            UaEvent::Failed { call, code } => {
                let Some(id) = self.id_of(call) else {
                    return Ok(());
                };
                let slot = &mut self.slots[id as usize];
                if slot.phase == Phase::Calling {
                    self.resolved += 1;
                }
                if slot.phase != Phase::Done {
                    slot.phase = Phase::Done;
                    slot.socket = None;
                    self.done += 1;
                    self.tally.failed += 1;
                    *self.tally.failure_codes.entry(code).or_default() += 1;
                }
                self.maybe_open_window(now);
            }
            UaEvent::RemoteBye { call } => {
                let Some(id) = self.id_of(call) else {
                    return Ok(());
                };
                let phase = self.slots[id as usize].phase;
                if phase == Phase::Done {
                    return Ok(());
                }
                self.tally.server_hangups += 1;
                if phase == Phase::Up {
                    self.first_hangup(now);
                    self.active -= 1;
                    let _ = self.rtp.send(RtpCommand::Stop { id });
                }
                self.slots[id as usize].phase = Phase::Done;
                self.done += 1;
            }
            UaEvent::Ended { call, code } => {
                let Some(id) = self.id_of(call) else {
                    return Ok(());
                };
                let phase = self.slots[id as usize].phase;
                if phase == Phase::Done {
                    return Ok(());
                }
                if (200..300).contains(&code) {
                    self.tally.bye_ok += 1;
                    self.bye_ok[id as usize] = true;
                } else {
                    *self.tally.bye_failure_codes.entry(code).or_default() += 1;
                }
                if phase == Phase::Up {
                    self.active -= 1;
                    let _ = self.rtp.send(RtpCommand::Stop { id });
                }
                self.slots[id as usize].phase = Phase::Done;
                self.done += 1;
            }
            UaEvent::ReInvite { call, .. } => {
                // Re-offer the same media so a server refreshing the session keeps it.
                if let Some(id) = self.id_of(call) {
                    let port = self.slots[id as usize].rtp_port;
                    let sdp = sdp::offer(self.plan.local_ip, port, self.plan.codec, id as u64 + 1);
                    self.ua.answer_reinvite(now, call, sdp.into_bytes());
                }
            }
            UaEvent::Incoming { call, .. } => self.ua.reject(now, call, 603, &[]),
            // Progress, DTMF from the server, and whatever else the user agent reports
            // change nothing for a caller that only places, holds and ends calls.
            _ => {}
        }
        Ok(())
    }

    fn on_answered(
        &mut self,
        now: Instant,
        call: CallRef,
        answer: Option<Vec<u8>>,
    ) -> Result<(), LoadError> {
        let Some(id) = self.id_of(call) else {
            return Ok(());
        };
        let slot = &mut self.slots[id as usize];
        if slot.phase != Phase::Calling {
            return Ok(());
        }
        self.resolved += 1;
        self.tally.answered += 1;
        self.setup.record(now - slot.invite_at);
        let (local_ip, rtp_port, codec) = (self.plan.local_ip, slot.rtp_port, self.plan.codec);
        let invite_ns = slot.invite_ns;
        let usable = answer
            .as_deref()
            .and_then(|a| sdp::read_answer(local_ip, rtp_port, codec, a))
            .filter(|a| {
                a.remote.ip().is_loopback() && Codec::from_payload_type(a.audio_pt).is_some()
            });
        let socket = slot.socket.take();
        match (usable, socket) {
            (Some(a), Some(socket)) => {
                slot.phase = Phase::Up;
                self.active += 1;
                self.rtp
                    .send(RtpCommand::Start {
                        id,
                        socket,
                        remote: a.remote,
                        audio_pt: a.audio_pt,
                        event_pt: a.event_pt,
                        invite_ns,
                    })
                    .map_err(|_| LoadError::Panicked("RTP"))?;
                self.hangups.push(Reverse((now + self.plan.hold, id)));
            }
            _ => {
                self.tally.bad_answers += 1;
                slot.phase = Phase::HangingUp;
                self.ua.hangup(now, call);
            }
        }
        self.maybe_open_window(now);
        Ok(())
    }

    fn id_of(&self, call: CallRef) -> Option<u32> {
        self.by_ref.get(&call).copied()
    }

    fn maybe_open_window(&mut self, now: Instant) {
        if self.window_start.is_some()
            || self.hung_up
            || self.resolved < self.plan.calls
            || self.active == 0
        {
            return;
        }
        self.window_start = Some(WindowStart {
            at: now,
            calls: self.active,
            agent_area: self.agent_area(now),
            server_cpu: self.plan.server_pid.and_then(procstat::pid_cpu_seconds),
            tool_cpu: procstat::self_cpu(),
        });
    }

    fn agent_area(&self, now: Instant) -> f64 {
        self.plan
            .agent_calls_up
            .as_ref()
            .map_or(0.0, |g| g.area_at(now))
    }

    /// The first hang-up either side makes closes the steady window; sampled before the BYE
    /// goes out so tear-down work is not in it.
    fn first_hangup(&mut self, now: Instant) {
        if self.hung_up {
            return;
        }
        self.hung_up = true;
        let Some(start) = &self.window_start else {
            return;
        };
        let server_end = self.plan.server_pid.and_then(procstat::pid_cpu_seconds);
        self.window = Some(Window {
            length: now.saturating_duration_since(start.at),
            calls: start.calls,
            agent_calls: agents::mean_streams(
                start.agent_area,
                self.agent_area(now),
                now.saturating_duration_since(start.at),
            ),
            server_cpu_seconds: start
                .server_cpu
                .zip(server_end)
                .map(|(a, b)| (b - a).max(0.0)),
            tool_cpu: procstat::self_cpu().saturating_sub(start.tool_cpu),
        });
    }

    /// At the time limit: count what is left, and hang up what is still up so the server
    /// is not left holding calls.
    fn abandon(&mut self) {
        let now = Instant::now();
        for id in 0..self.slots.len() {
            let slot = &mut self.slots[id];
            if slot.phase == Phase::Done {
                continue;
            }
            self.tally.unfinished += 1;
            if slot.phase == Phase::Up {
                let _ = self.rtp.send(RtpCommand::Stop { id: id as u32 });
            }
            let call = slot.call;
            slot.phase = Phase::Done;
            self.ua.hangup(now, call);
        }
        while let Some(t) = self.ua.poll_transmit() {
            if t.to.addr.ip().is_loopback() {
                let _ = self.sock.send_to(&t.data, t.to.addr);
            }
        }
    }
}

/// Block until the socket is readable or `timeout` passes.
fn wait_readable(sock: &UdpSocket, timeout: Duration) {
    let mut pfd = libc::pollfd {
        fd: sock.as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    };
    let ts = libc::timespec {
        tv_sec: timeout.as_secs() as _,
        tv_nsec: timeout.subsec_nanos() as _,
    };
    // SAFETY: one valid pollfd and a valid timespec; no signal mask change.
    unsafe { libc::ppoll(&mut pfd, 1, &ts, std::ptr::null()) };
}
