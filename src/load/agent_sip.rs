//! The agents' signalling: one thread, one SIP socket per agent. Each agent REGISTERs with
//! digest authentication (its own small client transaction: `agents::build_request`,
//! `digest`), refreshes at half the granted time, optionally calls a login feature code
//! once, and answers the calls hotline offers through the sans-IO user agent (as the
//! callers' side does): 180 at once, 200 with an SDP answer after the answer delay, or 486 /
//! 603, or ringing until CANCEL. Media goes to `agent_rtp` over a bounded channel.
//!
//! Everything is bounded: registration has a deadline per transaction (timer F, 32 s), the
//! thread stops when told (after the callers are done) or at its own time limit, and the
//! stop (hang-ups and de-registration) is itself bounded.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::os::fd::AsRawFd;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Sender, SyncSender};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::agent_rtp::EchoCommand;
use super::agents::{
    AgentOptions, Behaviour, Gauge, RawRequest, RawResponse, behaviour, build_request,
    parse_response, token,
};
use super::digest::{self, Challenge, Credentials};
use super::{LoadError, io_err, net};
use crate::sdp::{self, LocalMedia, SessionDescription};
use crate::sip::endpoint::{Peer, TransportKind};
use crate::sip::transaction::TimerConfig;
use crate::sip::ua::{CallRef, UaConfig, UaEvent, UserAgent};

mod register;

const T1: Duration = Duration::from_millis(500);
const T2: Duration = Duration::from_secs(4);
/// Timer F / B: a transaction without a final response gives up after 64·T1.
const TXN_LIMIT: Duration = Duration::from_secs(32);
/// REGISTERs start this far apart (500 per second), so a thousand agents do not arrive at
/// once.
const REGISTER_SPACING: Duration = Duration::from_millis(2);
/// At the end: how long hang-ups and de-registrations may take.
const STOP_LIMIT: Duration = Duration::from_secs(5);
/// The longest the thread sleeps between looks at the stop flag.
const MAX_WAIT: Duration = Duration::from_millis(50);

pub(crate) struct AgentSipPlan {
    pub target: SocketAddr,
    pub local_ip: IpAddr,
    pub opts: AgentOptions,
    /// Each agent's RTP port (the socket lives on the echo thread).
    pub rtp_ports: Vec<u16>,
    /// The thread stops by itself after this long.
    pub max_duration: Duration,
}

/// Sent once, when every agent has registered or failed to (and made its login call).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Ready {
    pub registered: u32,
    pub failed: u32,
}

#[derive(Debug, Clone, Default)]
pub(crate) struct AgentTally {
    /// From an agent hanging up (free again: the benchmark queue has no wrap-up) to the next
    /// offer reaching its phone, while callers wait.
    pub free_to_ring: Option<super::hist::Histogram>,
    pub registered: u32,
    /// First registrations that failed, by final code (408: no answer).
    pub register_failures: BTreeMap<u16, u32>,
    /// The algorithm each agent's first registration was accepted with.
    pub algorithms: BTreeMap<&'static str, u32>,
    pub refreshes: u32,
    pub refresh_failures: u32,
    pub unregistered: u32,
    /// Login feature-code calls by final code.
    pub login_results: BTreeMap<u16, u32>,
    pub offered: u32,
    pub answered: u32,
    pub declined: u32,
    /// Offers to an agent already in a call (486).
    pub busy: u32,
    /// Offers cancelled before the agent answered (ring timeout, caller gone).
    pub cancelled: u32,
    /// Offers without usable SDP (488).
    pub bad_offers: u32,
    /// Calls the agents ended (`--agent-talk`).
    pub agent_hangups: u32,
    /// Calls hotline ended with BYE.
    pub remote_byes: u32,
    pub refused_sends: u32,
}

/// A request of ours waiting for its final response.
struct Txn {
    data: Vec<u8>,
    cseq: u32,
    next_retx: Instant,
    interval: Duration,
    give_up: Instant,
    /// INVITE: stop retransmitting once anything came back.
    invite: bool,
    answered: bool,
}

impl Txn {
    fn new(now: Instant, data: Vec<u8>, cseq: u32, invite: bool) -> Txn {
        Txn {
            data,
            cseq,
            next_retx: now + T1,
            interval: T1,
            give_up: now + TXN_LIMIT,
            invite,
            answered: false,
        }
    }

    fn deadline(&self) -> Instant {
        if self.invite && self.answered {
            self.give_up
        } else {
            self.next_retx.min(self.give_up)
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum RegPhase {
    Waiting(Instant),
    InFlight,
    Registered,
    Failed,
    /// De-registration sent, or not needed: nothing more to do.
    Done,
}

struct Reg {
    call_id: String,
    from_tag: String,
    cseq: u32,
    phase: RegPhase,
    txn: Option<Txn>,
    challenge: Option<(Challenge, bool)>,
    nc: u32,
    /// Challenges answered since the last success: a second one in a row for the same
    /// request is a wrong password, not a stale nonce.
    auth_tries: u8,
    refresh_at: Option<Instant>,
    ever: bool,
    asked: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum LoginPhase {
    Inviting,
    ByeSent,
    Done,
}

struct Login {
    call_id: String,
    from_tag: String,
    cseq: u32,
    branch: String,
    to: String,
    phase: LoginPhase,
    txn: Option<Txn>,
    auth_tries: u8,
}

struct ACall {
    call: CallRef,
    /// The 200 is due then; None: never (a no-answer agent) or already sent.
    answer_at: Option<Instant>,
    hangup_at: Option<Instant>,
    answer_sdp: Vec<u8>,
    remote: Option<SocketAddr>,
    media_on: bool,
    /// The 200 went out.
    answered: bool,
    /// Our BYE is out; the call is forgotten at Ended.
    ending: bool,
}

struct Agent {
    idx: u32,
    ext: String,
    sock: UdpSocket,
    local: String,
    contact_uri: String,
    rtp_port: u16,
    behaviour: Behaviour,
    ua: UserAgent,
    reg: Reg,
    login: Option<Login>,
    login_done: bool,
    call: Option<ACall>,
    session: u64,
    /// When this agent last hung up a call, until the next offer reaches it.
    freed_at: Option<Instant>,
}

struct Ctx<'a> {
    plan: &'a AgentSipPlan,
    ruri: String,
    aor_host: String,
    echo: &'a SyncSender<EchoCommand>,
    calls_up: &'a Gauge,
    tally: AgentTally,
    stopping: bool,
}

pub(crate) fn spawn(
    plan: AgentSipPlan,
    echo: SyncSender<EchoCommand>,
    calls_up: Arc<Gauge>,
    ready: Sender<Ready>,
    stop: Arc<AtomicBool>,
) -> Result<JoinHandle<AgentTally>, LoadError> {
    let n = plan.opts.count;
    let mut socks = Vec::with_capacity(n as usize);
    for _ in 0..n {
        socks.push(net::bind_udp(plan.local_ip).map_err(io_err("binding an agent SIP socket"))?);
    }
    std::thread::Builder::new()
        .name("load-agents".into())
        .spawn(move || run(plan, socks, echo, calls_up, ready, stop))
        .map_err(io_err("spawning the agents' thread"))
}

fn run(
    plan: AgentSipPlan,
    socks: Vec<UdpSocket>,
    echo: SyncSender<EchoCommand>,
    calls_up: Arc<Gauge>,
    ready: Sender<Ready>,
    stop: Arc<AtomicBool>,
) -> AgentTally {
    let t0 = Instant::now();
    let hard_end = t0 + plan.max_duration;
    let mut agents: Vec<Agent> = socks
        .into_iter()
        .enumerate()
        .map(|(i, sock)| Agent::new(i as u32, sock, &plan, t0 + REGISTER_SPACING * i as u32))
        .collect();
    let mut ctx = Ctx::new(&plan, &echo, &calls_up);
    let mut pfds: Vec<libc::pollfd> = agents
        .iter()
        .map(|a| libc::pollfd {
            fd: a.sock.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        })
        .collect();
    let mut buf = vec![0u8; 65_536];
    let mut reported = false;
    let mut stop_deadline = None;
    loop {
        let now = Instant::now();
        if now >= hard_end {
            break;
        }
        if !ctx.stopping && stop.load(Ordering::Relaxed) {
            ctx.stopping = true;
            stop_deadline = Some(now + STOP_LIMIT);
            for a in &mut agents {
                a.begin_stop(now, &mut ctx);
            }
        }
        if stop_deadline.is_some_and(|d| now >= d)
            || (ctx.stopping && agents.iter().all(Agent::stopped))
        {
            break;
        }
        let mut wake = now + MAX_WAIT;
        for a in &mut agents {
            if let Some(t) = a.on_timers(now, &mut ctx) {
                wake = wake.min(t);
            }
        }
        if !reported && agents.iter().all(Agent::resolved) {
            reported = true;
            let registered = agents.iter().filter(|a| a.reg.ever).count() as u32;
            let _ = ready.send(Ready {
                registered,
                failed: agents.len() as u32 - registered,
            });
        }
        for p in &mut pfds {
            p.revents = 0;
        }
        let timeout = wake.saturating_duration_since(Instant::now());
        let ts = libc::timespec {
            tv_sec: timeout.as_secs() as _,
            tv_nsec: timeout.subsec_nanos() as _,
        };
        // SAFETY: a valid array of pollfds with its length, and a valid timespec.
        let n = unsafe {
            libc::ppoll(
                pfds.as_mut_ptr(),
                pfds.len() as libc::nfds_t,
                &ts,
                std::ptr::null(),
            )
        };
        if n <= 0 {
            continue;
        }
        for (a, p) in agents.iter_mut().zip(&pfds) {
            if p.revents == 0 {
                continue;
            }
            while let Ok((len, from)) = a.sock.recv_from(&mut buf) {
                a.on_datagram(Instant::now(), from, &buf[..len], &mut ctx);
            }
        }
    }
    let now = Instant::now();
    for a in &mut agents {
        a.media_off(&mut ctx);
        if let Some(c) = a.call.take() {
            a.ua.hangup(now, c.call);
            a.flush(&mut ctx);
        }
    }
    ctx.tally
}

impl<'a> Ctx<'a> {
    fn new(plan: &'a AgentSipPlan, echo: &'a SyncSender<EchoCommand>, calls_up: &'a Gauge) -> Self {
        Ctx {
            ruri: format!("sip:{}", plan.target),
            aor_host: plan.target.to_string(),
            plan,
            echo,
            calls_up,
            tally: AgentTally::default(),
            stopping: false,
        }
    }
}

impl Agent {
    /// Agent `i` on `sock`, registering first at `register_at`.
    fn new(i: u32, sock: UdpSocket, plan: &AgentSipPlan, register_at: Instant) -> Agent {
        let o = &plan.opts;
        let local = sock.local_addr().map(|a| a.to_string()).unwrap_or_default();
        let ext = o.extension(i);
        Agent {
            idx: i,
            contact_uri: format!("sip:{ext}@{local}"),
            ua: UserAgent::new(UaConfig {
                timers: TimerConfig::default(),
                advertised: local.clone(),
                advertise_request_host: false,
                user: ext.clone(),
                // The load tool is an IO edge: its UAs need distinct tokens, not replay, and the
                // registrar they carry is not one anyone registers with.
                seed: fastrand::u64(..),
                nonce_secret: std::array::from_fn(|_| fastrand::u8(..)),
                tls_port: None,
            }),
            ext,
            sock,
            local,
            rtp_port: plan.rtp_ports[i as usize],
            behaviour: behaviour(i, o.no_answer_share, o.decline_share),
            reg: Reg {
                call_id: format!("{}@hotline-load", token(20)),
                from_tag: token(10),
                cseq: 0,
                phase: RegPhase::Waiting(register_at),
                txn: None,
                challenge: None,
                nc: 0,
                auth_tries: 0,
                refresh_at: None,
                ever: false,
                asked: o.register_expires,
            },
            login: None,
            login_done: o.login_code.is_none(),
            call: None,
            session: u64::from(i) * 1000 + 1,
            freed_at: None,
        }
    }

    fn resolved(&self) -> bool {
        matches!(
            self.reg.phase,
            RegPhase::Registered | RegPhase::Failed | RegPhase::Done
        ) && (self.login_done || !self.reg.ever)
    }

    fn stopped(&self) -> bool {
        matches!(self.reg.phase, RegPhase::Failed | RegPhase::Done)
            && self.call.is_none()
            && self.reg.txn.is_none()
    }

    fn send(&self, data: &[u8], ctx: &mut Ctx<'_>) {
        if ctx.plan.target.ip().is_loopback() {
            let _ = self.sock.send_to(data, ctx.plan.target);
        } else {
            ctx.tally.refused_sends += 1;
        }
    }

    /// Send what the user agent queued and act on its events.
    fn flush(&mut self, ctx: &mut Ctx<'_>) {
        while let Some(t) = self.ua.poll_transmit() {
            if t.to.addr.ip().is_loopback() {
                let _ = self.sock.send_to(&t.data, t.to.addr);
            } else {
                ctx.tally.refused_sends += 1;
            }
        }
    }

    fn pump(&mut self, now: Instant, ctx: &mut Ctx<'_>) {
        loop {
            self.flush(ctx);
            let Some(ev) = self.ua.poll_event() else {
                return;
            };
            self.on_event(now, ev, ctx);
        }
    }

    /// Run what is due; the next time something will be.
    fn on_timers(&mut self, now: Instant, ctx: &mut Ctx<'_>) -> Option<Instant> {
        // Registration.
        match self.reg.phase {
            RegPhase::Waiting(at) if at <= now && !ctx.stopping => self.send_register(now, ctx),
            RegPhase::Registered if self.reg.refresh_at.is_some_and(|t| t <= now) => {
                self.reg.refresh_at = None;
                self.send_register(now, ctx);
            }
            _ => {}
        }
        if let Some(t) = &mut self.reg.txn
            && let Some(gave_up) = retransmit(t, now)
        {
            if gave_up {
                self.reg.txn = None;
                self.reg_failed(408, ctx);
            } else {
                let data = t.data.clone();
                self.send(&data, ctx);
            }
        }
        if let Some(l) = &mut self.login
            && let Some(t) = &mut l.txn
            && let Some(gave_up) = retransmit(t, now)
        {
            if gave_up {
                l.txn = None;
                if l.phase == LoginPhase::Inviting {
                    *ctx.tally.login_results.entry(408).or_default() += 1;
                }
                l.phase = LoginPhase::Done;
                self.login_done = true;
            } else {
                let data = t.data.clone();
                self.send(&data, ctx);
            }
        }
        // The offered call.
        if let Some(c) = &mut self.call {
            if c.answer_at.is_some_and(|t| t <= now) {
                c.answer_at = None;
                c.answered = true;
                self.ua.answer(now, c.call, c.answer_sdp.clone());
                ctx.tally.answered += 1;
                c.hangup_at = ctx.plan.opts.talk.map(|t| now + t);
                self.media_on(ctx);
            } else if c.hangup_at.is_some_and(|t| t <= now) {
                c.hangup_at = None;
                c.ending = true;
                let call = c.call;
                ctx.tally.agent_hangups += 1;
                self.freed_at = Some(now);
                self.media_off(ctx);
                self.ua.hangup(now, call);
            }
        }
        if self.ua.poll_timeout().is_some_and(|t| t <= now) {
            self.ua.handle_timeout(now);
        }
        self.pump(now, ctx);
        // When to look again.
        let mut next: Option<Instant> = None;
        let mut at = |t: Option<Instant>| {
            if let Some(t) = t {
                next = Some(next.map_or(t, |n: Instant| n.min(t)));
            }
        };
        if let RegPhase::Waiting(t) = self.reg.phase {
            at(Some(t));
        }
        at(self.reg.refresh_at);
        at(self.reg.txn.as_ref().map(Txn::deadline));
        at(self
            .login
            .as_ref()
            .and_then(|l| l.txn.as_ref())
            .map(Txn::deadline));
        if let Some(c) = &self.call {
            at(c.answer_at);
            at(c.hangup_at);
        }
        at(self.ua.poll_timeout());
        next
    }

    fn on_datagram(&mut self, now: Instant, from: SocketAddr, data: &[u8], ctx: &mut Ctx<'_>) {
        if data.starts_with(b"SIP/2.0 ")
            && let Some(r) = parse_response(data)
        {
            if r.call_id == self.reg.call_id {
                return self.on_register_response(now, r, ctx);
            }
            if self.login.as_ref().is_some_and(|l| l.call_id == r.call_id) {
                return self.on_login_response(now, r, ctx);
            }
        }
        self.ua.handle_input(
            now,
            Peer {
                addr: from,
                transport: TransportKind::Udp,
            },
            data,
        );
        self.pump(now, ctx);
    }

    fn on_event(&mut self, now: Instant, ev: UaEvent, ctx: &mut Ctx<'_>) {
        let ours = |c: &Option<ACall>, call: CallRef| c.as_ref().is_some_and(|a| a.call == call);
        match ev {
            UaEvent::Incoming { call, offer, .. } => self.on_offer(now, call, offer, ctx),
            UaEvent::Cancelled { call } if ours(&self.call, call) => {
                ctx.tally.cancelled += 1;
                self.media_off(ctx);
                self.call = None;
            }
            UaEvent::RemoteBye { call } if ours(&self.call, call) => {
                ctx.tally.remote_byes += 1;
                self.media_off(ctx);
                self.call = None;
            }
            UaEvent::Ended { call, .. } if ours(&self.call, call) => {
                self.media_off(ctx);
                self.call = None;
            }
            UaEvent::ReInvite { call, offer } if ours(&self.call, call) => {
                match offer.as_deref().and_then(|o| self.negotiate(ctx, o)) {
                    Some((sdp, remote)) => {
                        self.ua.answer_reinvite(now, call, sdp.clone());
                        if let Some(c) = &mut self.call {
                            c.answer_sdp = sdp;
                            c.remote = remote;
                            if c.media_on
                                && let Some(remote) = remote
                            {
                                let _ = ctx.echo.send(EchoCommand::Start {
                                    agent: self.idx,
                                    remote,
                                });
                            }
                        }
                    }
                    None => self.ua.reject_reinvite(now, call, 488),
                }
            }
            _ => {}
        }
    }

    /// (answer SDP, where to send) for an offer. The codec is the offer's first one we
    /// speak (PCMU or PCMA); the echo keeps whatever payload type arrives.
    fn negotiate(&self, ctx: &Ctx<'_>, offer: &[u8]) -> Option<(Vec<u8>, Option<SocketAddr>)> {
        let parsed = SessionDescription::parse_bytes(offer).ok()?;
        let local = LocalMedia::new(ctx.plan.local_ip, self.rtp_port, self.session);
        let n = sdp::negotiate(&parsed, &local).ok()?;
        let remote = n.remote.filter(|r| r.ip().is_loopback());
        Some((sdp::build_answer(&parsed, &local, &n).into_bytes(), remote))
    }

    fn on_offer(&mut self, now: Instant, call: CallRef, offer: Option<Vec<u8>>, ctx: &mut Ctx<'_>) {
        if self.call.is_some() || ctx.stopping {
            ctx.tally.busy += 1;
            return self.ua.reject(now, call, 486, &[]);
        }
        ctx.tally.offered += 1;
        if let Some(freed) = self.freed_at.take() {
            ctx.tally
                .free_to_ring
                .get_or_insert_with(super::hist::Histogram::for_setup)
                .record(now.saturating_duration_since(freed));
        }
        if let Behaviour::Decline(code) = self.behaviour {
            ctx.tally.declined += 1;
            return self.ua.reject(now, call, code, &[]);
        }
        self.session += 1;
        let Some((answer_sdp, remote)) = offer.as_deref().and_then(|o| self.negotiate(ctx, o))
        else {
            ctx.tally.bad_offers += 1;
            return self.ua.reject(now, call, 488, &[]);
        };
        self.ua.ring(now, call);
        let answer_at =
            (self.behaviour == Behaviour::Answer).then(|| now + ctx.plan.opts.answer_delay);
        self.call = Some(ACall {
            call,
            answer_at,
            hangup_at: None,
            answer_sdp,
            remote,
            media_on: false,
            answered: false,
            ending: false,
        });
    }

    fn media_on(&mut self, ctx: &mut Ctx<'_>) {
        let Some(c) = &mut self.call else { return };
        if c.media_on {
            return;
        }
        c.media_on = true;
        ctx.calls_up.change(Instant::now(), true);
        if let Some(remote) = c.remote {
            let _ = ctx.echo.send(EchoCommand::Start {
                agent: self.idx,
                remote,
            });
        }
    }

    fn media_off(&mut self, ctx: &mut Ctx<'_>) {
        let Some(c) = &mut self.call else { return };
        if !c.media_on {
            return;
        }
        c.media_on = false;
        ctx.calls_up.change(Instant::now(), false);
        let _ = ctx.echo.send(EchoCommand::Stop { agent: self.idx });
    }

    /// The callers are done: hang up, and de-register what registered.
    fn begin_stop(&mut self, now: Instant, ctx: &mut Ctx<'_>) {
        if let Some(c) = &mut self.call
            && !c.ending
        {
            c.ending = true;
            c.answer_at = None;
            c.hangup_at = None;
            let (call, answered) = (c.call, c.answered);
            self.media_off(ctx);
            self.ua.hangup(now, call);
            if !answered {
                // Refused with 480 and forgotten by the user agent: no Ended follows.
                self.call = None;
            }
            self.pump(now, ctx);
        }
        match self.reg.phase {
            RegPhase::Registered | RegPhase::InFlight
                if self.reg.ever || self.reg.txn.is_some() =>
            {
                self.reg.asked = 0;
                self.reg.refresh_at = None;
                self.reg.auth_tries = 0;
                self.send_register(now, ctx);
            }
            RegPhase::Failed => {}
            _ => {
                self.reg.txn = None;
                self.reg.phase = RegPhase::Done;
            }
        }
    }
}

fn clone_login(l: &Login) -> Login {
    Login {
        call_id: l.call_id.clone(),
        from_tag: l.from_tag.clone(),
        cseq: l.cseq,
        branch: l.branch.clone(),
        to: l.to.clone(),
        phase: l.phase,
        txn: None,
        auth_tries: l.auth_tries,
    }
}

/// Some(false): retransmit now; Some(true): the transaction gave up; None: nothing due.
fn retransmit(t: &mut Txn, now: Instant) -> Option<bool> {
    if now >= t.give_up {
        return Some(true);
    }
    if (t.invite && t.answered) || now < t.next_retx {
        return None;
    }
    t.interval = if t.invite {
        t.interval * 2
    } else {
        (t.interval * 2).min(T2)
    };
    t.next_retx = now + t.interval;
    Some(false)
}

#[cfg(test)]
mod tests;
