//! The four transaction state machines of RFC 3261 §17, one type each. They know nothing of
//! messages beyond status codes: the endpoint keeps the bytes to retransmit and asks the
//! machine what to do. Time is an input; nothing here reads a clock.

use std::time::{Duration, Instant};

/// RFC 3261 §17.1.1.1 timer base values.
#[derive(Debug, Clone, Copy)]
pub struct TimerConfig {
    pub t1: Duration,
    pub t2: Duration,
    pub t4: Duration,
    /// How long a 2xx to an INVITE waits for its ACK before the session is given up (RFC
    /// 3261 §13.3.1.4 says 64*T1; a public server ends never-acknowledged calls sooner).
    pub ack_wait: Duration,
}

impl Default for TimerConfig {
    fn default() -> Self {
        TimerConfig {
            t1: Duration::from_millis(500),
            t2: Duration::from_secs(4),
            t4: Duration::from_secs(5),
            ack_wait: Duration::from_secs(32),
        }
    }
}

impl TimerConfig {
    fn timeout_64t1(&self) -> Duration {
        self.t1 * 64
    }
}

/// What a timer firing asks the endpoint to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fired {
    Nothing,
    /// Send the stored message again.
    Retransmit,
    /// The transaction timed out (Timer B, F or H): tell the transaction user.
    TimedOut,
    /// The transaction is over: forget it.
    Terminated,
}

/// A resend schedule: starts at T1 and doubles, capped (Timers A, E, G).
#[derive(Debug, Clone, Copy)]
struct Backoff {
    next: Instant,
    interval: Duration,
    cap: Option<Duration>,
}

impl Backoff {
    fn start(now: Instant, t1: Duration, cap: Option<Duration>) -> Self {
        Backoff {
            next: now + t1,
            interval: t1,
            cap,
        }
    }
    fn advance(&mut self, now: Instant) {
        self.interval *= 2;
        if let Some(cap) = self.cap {
            self.interval = self.interval.min(cap);
        }
        self.next = now + self.interval;
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientInviteState {
    Calling,
    Proceeding,
    Completed,
    Terminated,
}

/// RFC 3261 §17.1.1: the INVITE client transaction.
#[derive(Debug)]
pub struct ClientInvite {
    state: ClientInviteState,
    resend: Option<Backoff>,
    timeout_b: Instant,
    timer_d: Option<Instant>,
    reliable: bool,
}

/// What to do with a response that reached a client transaction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ResponseVerdict {
    pub pass_to_tu: bool,
    /// INVITE only: send (or resend) the ACK for a non-2xx final response.
    pub send_ack: bool,
}

impl ClientInvite {
    pub fn new(now: Instant, cfg: TimerConfig, reliable: bool) -> Self {
        ClientInvite {
            state: ClientInviteState::Calling,
            resend: (!reliable).then(|| Backoff::start(now, cfg.t1, None)),
            timeout_b: now + cfg.timeout_64t1(),
            timer_d: None,
            reliable,
        }
    }

    pub fn state(&self) -> ClientInviteState {
        self.state
    }

    pub fn on_response(&mut self, now: Instant, code: u16) -> ResponseVerdict {
        use ClientInviteState::*;
        let pass = |send_ack| ResponseVerdict {
            pass_to_tu: true,
            send_ack,
        };
        match (self.state, code) {
            (Calling | Proceeding, 100..=199) => {
                self.state = Proceeding;
                self.resend = None;
                pass(false)
            }
            // RFC 6026 §7.2 would keep the transaction to absorb 2xx retransmissions; the
            // dialog layer matches those itself, so the transaction can end here.
            (Calling | Proceeding, 200..=299) => {
                self.state = Terminated;
                pass(false)
            }
            (Calling | Proceeding, _) => {
                self.state = Completed;
                self.resend = None;
                let wait = if self.reliable {
                    Duration::ZERO
                } else {
                    Duration::from_secs(32)
                };
                self.timer_d = Some(now + wait);
                pass(true)
            }
            (Completed, 300..) => ResponseVerdict {
                pass_to_tu: false,
                send_ack: true,
            },
            _ => ResponseVerdict {
                pass_to_tu: false,
                send_ack: false,
            },
        }
    }

    pub fn poll_timeout(&self) -> Option<Instant> {
        match self.state {
            ClientInviteState::Calling => Some(
                self.resend
                    .map_or(self.timeout_b, |r| r.next.min(self.timeout_b)),
            ),
            ClientInviteState::Proceeding => None,
            ClientInviteState::Completed => self.timer_d,
            ClientInviteState::Terminated => None,
        }
    }

    pub fn handle_timeout(&mut self, now: Instant) -> Fired {
        match self.state {
            ClientInviteState::Calling if now >= self.timeout_b => {
                self.state = ClientInviteState::Terminated;
                Fired::TimedOut
            }
            ClientInviteState::Calling => match &mut self.resend {
                Some(r) if now >= r.next => {
                    r.advance(now);
                    Fired::Retransmit
                }
                _ => Fired::Nothing,
            },
            ClientInviteState::Completed if self.timer_d.is_some_and(|d| now >= d) => {
                self.state = ClientInviteState::Terminated;
                Fired::Terminated
            }
            _ => Fired::Nothing,
        }
    }

    pub fn is_terminated(&self) -> bool {
        self.state == ClientInviteState::Terminated
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientNonInviteState {
    Trying,
    Proceeding,
    Completed,
    Terminated,
}

/// RFC 3261 §17.1.2: the non-INVITE client transaction.
#[derive(Debug)]
pub struct ClientNonInvite {
    state: ClientNonInviteState,
    resend: Option<Backoff>,
    timeout_f: Instant,
    timer_k: Option<Instant>,
    cfg: TimerConfig,
    reliable: bool,
}

impl ClientNonInvite {
    pub fn new(now: Instant, cfg: TimerConfig, reliable: bool) -> Self {
        ClientNonInvite {
            state: ClientNonInviteState::Trying,
            resend: (!reliable).then(|| Backoff::start(now, cfg.t1, Some(cfg.t2))),
            timeout_f: now + cfg.timeout_64t1(),
            timer_k: None,
            cfg,
            reliable,
        }
    }

    pub fn state(&self) -> ClientNonInviteState {
        self.state
    }

    pub fn on_response(&mut self, now: Instant, code: u16) -> ResponseVerdict {
        use ClientNonInviteState::*;
        match (self.state, code) {
            (Trying | Proceeding, 100..=199) => {
                self.state = Proceeding;
                // Timer E keeps firing in Proceeding, but at T2 (§17.1.2.2).
                if let Some(r) = &mut self.resend {
                    r.interval = self.cfg.t2;
                }
                ResponseVerdict {
                    pass_to_tu: true,
                    send_ack: false,
                }
            }
            (Trying | Proceeding, _) => {
                self.state = Completed;
                self.resend = None;
                let wait = if self.reliable {
                    Duration::ZERO
                } else {
                    self.cfg.t4
                };
                self.timer_k = Some(now + wait);
                ResponseVerdict {
                    pass_to_tu: true,
                    send_ack: false,
                }
            }
            _ => ResponseVerdict {
                pass_to_tu: false,
                send_ack: false,
            },
        }
    }

    pub fn poll_timeout(&self) -> Option<Instant> {
        match self.state {
            ClientNonInviteState::Trying | ClientNonInviteState::Proceeding => Some(
                self.resend
                    .map_or(self.timeout_f, |r| r.next.min(self.timeout_f)),
            ),
            ClientNonInviteState::Completed => self.timer_k,
            ClientNonInviteState::Terminated => None,
        }
    }

    pub fn handle_timeout(&mut self, now: Instant) -> Fired {
        use ClientNonInviteState::*;
        match self.state {
            Trying | Proceeding if now >= self.timeout_f => {
                self.state = Terminated;
                Fired::TimedOut
            }
            Trying | Proceeding => match &mut self.resend {
                Some(r) if now >= r.next => {
                    r.advance(now);
                    Fired::Retransmit
                }
                _ => Fired::Nothing,
            },
            Completed if self.timer_k.is_some_and(|k| now >= k) => {
                self.state = Terminated;
                Fired::Terminated
            }
            _ => Fired::Nothing,
        }
    }

    pub fn is_terminated(&self) -> bool {
        self.state == ClientNonInviteState::Terminated
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ServerInviteState {
    Proceeding,
    /// RFC 6026 §7.1: a 2xx was sent; retransmit it until the ACK arrives.
    Accepted,
    Completed,
    Confirmed,
    Terminated,
}

/// RFC 3261 §17.2.1 with the RFC 6026 Accepted state: the INVITE server transaction. In
/// Accepted, the 2xx is resent on the Timer G schedule until the dialog's ACK is matched to it
/// (RFC 3261 §13.3.1.4 puts that duty on the UAS core; keeping it here keeps it in one place).
#[derive(Debug)]
pub struct ServerInvite {
    state: ServerInviteState,
    resend: Option<Backoff>,
    /// Timer H in Completed, Timer L (64*T1) in Accepted.
    give_up: Option<Instant>,
    timer_i: Option<Instant>,
    /// Accepted: the ACK for our 2xx arrived (tracked apart from the resend schedule, which
    /// a reliable transport never has).
    acked: bool,
    cfg: TimerConfig,
    reliable: bool,
}

/// What to do with a request that matched an existing server transaction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RequestVerdict {
    /// A retransmission: resend the last response, if any.
    ResendLast,
    /// The ACK for our final response: pass it up if it acknowledged a 2xx.
    Ack {
        pass_to_tu: bool,
    },
    Absorb,
}

impl ServerInvite {
    pub fn new(cfg: TimerConfig, reliable: bool) -> Self {
        ServerInvite {
            state: ServerInviteState::Proceeding,
            resend: None,
            give_up: None,
            timer_i: None,
            acked: false,
            cfg,
            reliable,
        }
    }

    pub fn state(&self) -> ServerInviteState {
        self.state
    }

    /// The TU sends a response; returns false if the state no longer allows one.
    pub fn on_send_response(&mut self, now: Instant, code: u16) -> bool {
        use ServerInviteState::*;
        match (self.state, code) {
            (Proceeding, 100..=199) => true,
            (Proceeding, 200..=299) => {
                self.state = Accepted;
                self.resend =
                    (!self.reliable).then(|| Backoff::start(now, self.cfg.t1, Some(self.cfg.t2)));
                self.give_up = Some(now + self.cfg.ack_wait);
                true
            }
            (Proceeding, _) => {
                self.state = Completed;
                self.resend =
                    (!self.reliable).then(|| Backoff::start(now, self.cfg.t1, Some(self.cfg.t2)));
                self.give_up = Some(now + self.cfg.timeout_64t1());
                true
            }
            // RFC 6026 §8.1: further 2xx for the same INVITE are sent by the TU unchanged.
            (Accepted, 200..=299) => true,
            _ => false,
        }
    }

    pub fn on_request(&mut self, now: Instant, is_ack: bool) -> RequestVerdict {
        use ServerInviteState::*;
        match (self.state, is_ack) {
            (Proceeding | Completed, false) => RequestVerdict::ResendLast,
            (Accepted, false) => RequestVerdict::Absorb,
            (Completed, true) => {
                self.state = Confirmed;
                self.resend = None;
                self.give_up = None;
                let wait = if self.reliable {
                    Duration::ZERO
                } else {
                    self.cfg.t4
                };
                self.timer_i = Some(now + wait);
                RequestVerdict::Ack { pass_to_tu: false }
            }
            (Accepted, true) => {
                // Stop resending the 2xx; stay to absorb INVITE retransmissions until Timer L.
                self.resend = None;
                self.acked = true;
                RequestVerdict::Ack { pass_to_tu: true }
            }
            _ => RequestVerdict::Absorb,
        }
    }

    pub fn poll_timeout(&self) -> Option<Instant> {
        match self.state {
            ServerInviteState::Accepted | ServerInviteState::Completed => {
                let resend = self.resend.map(|r| r.next);
                match (resend, self.give_up) {
                    (Some(a), Some(b)) => Some(a.min(b)),
                    (a, b) => a.or(b),
                }
            }
            ServerInviteState::Confirmed => self.timer_i,
            _ => None,
        }
    }

    /// True when the 2xx has been acknowledged.
    pub fn acked(&self) -> bool {
        self.acked
    }

    pub fn handle_timeout(&mut self, now: Instant) -> Fired {
        use ServerInviteState::*;
        match self.state {
            Accepted | Completed if self.give_up.is_some_and(|g| now >= g) => {
                let timed_out = self.state == Completed || !self.acked;
                self.state = Terminated;
                if timed_out {
                    Fired::TimedOut
                } else {
                    Fired::Terminated
                }
            }
            Accepted | Completed => match &mut self.resend {
                Some(r) if now >= r.next => {
                    r.advance(now);
                    Fired::Retransmit
                }
                _ => Fired::Nothing,
            },
            Confirmed if self.timer_i.is_some_and(|i| now >= i) => {
                self.state = Terminated;
                Fired::Terminated
            }
            _ => Fired::Nothing,
        }
    }

    pub fn is_terminated(&self) -> bool {
        self.state == ServerInviteState::Terminated
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ServerNonInviteState {
    Trying,
    Proceeding,
    Completed,
    Terminated,
}

/// RFC 3261 §17.2.2: the non-INVITE server transaction.
#[derive(Debug)]
pub struct ServerNonInvite {
    state: ServerNonInviteState,
    timer_j: Option<Instant>,
    cfg: TimerConfig,
    reliable: bool,
}

impl ServerNonInvite {
    pub fn new(cfg: TimerConfig, reliable: bool) -> Self {
        ServerNonInvite {
            state: ServerNonInviteState::Trying,
            timer_j: None,
            cfg,
            reliable,
        }
    }

    pub fn state(&self) -> ServerNonInviteState {
        self.state
    }

    pub fn on_send_response(&mut self, now: Instant, code: u16) -> bool {
        use ServerNonInviteState::*;
        match (self.state, code) {
            (Trying | Proceeding, 100..=199) => {
                self.state = Proceeding;
                true
            }
            (Trying | Proceeding, _) => {
                self.state = Completed;
                let wait = if self.reliable {
                    Duration::ZERO
                } else {
                    self.cfg.timeout_64t1()
                };
                self.timer_j = Some(now + wait);
                true
            }
            _ => false,
        }
    }

    pub fn on_request(&mut self) -> RequestVerdict {
        match self.state {
            ServerNonInviteState::Proceeding | ServerNonInviteState::Completed => {
                RequestVerdict::ResendLast
            }
            _ => RequestVerdict::Absorb,
        }
    }

    pub fn poll_timeout(&self) -> Option<Instant> {
        (self.state == ServerNonInviteState::Completed)
            .then_some(self.timer_j)
            .flatten()
    }

    pub fn handle_timeout(&mut self, now: Instant) -> Fired {
        if self.state == ServerNonInviteState::Completed && self.timer_j.is_some_and(|j| now >= j) {
            self.state = ServerNonInviteState::Terminated;
            return Fired::Terminated;
        }
        Fired::Nothing
    }

    pub fn is_terminated(&self) -> bool {
        self.state == ServerNonInviteState::Terminated
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    /// Run the machine's timers up to `until`, returning when each Retransmit fired.
    fn drive<F: FnMut(Instant) -> Fired, P: Fn() -> Option<Instant>>(
        start: Instant,
        until: Instant,
        poll: P,
        mut fire: F,
    ) -> (Vec<Duration>, Option<(Fired, Duration)>) {
        let mut resends = Vec::new();
        while let Some(t) = poll() {
            if t > until {
                break;
            }
            match fire(t) {
                Fired::Retransmit => resends.push(t - start),
                Fired::Nothing => {}
                other => return (resends, Some((other, t - start))),
            }
        }
        (resends, None)
    }

    #[test]
    fn invite_client_timer_a_doubles_and_timer_b_times_out() {
        let t0 = Instant::now();
        let txn = std::cell::RefCell::new(ClientInvite::new(t0, TimerConfig::default(), false));
        let (resends, end) = drive(
            t0,
            t0 + Duration::from_secs(60),
            || txn.borrow().poll_timeout(),
            |t| txn.borrow_mut().handle_timeout(t),
        );
        assert_eq!(&resends[..4], &[ms(500), ms(1500), ms(3500), ms(7500)]);
        assert_eq!(end, Some((Fired::TimedOut, ms(32_000))));
    }

    #[test]
    fn invite_client_provisional_stops_resends_and_failure_acks_then_timer_d() {
        let t0 = Instant::now();
        let mut txn = ClientInvite::new(t0, TimerConfig::default(), false);
        assert!(txn.on_response(t0, 100).pass_to_tu);
        assert_eq!(txn.poll_timeout(), None);
        let v = txn.on_response(t0 + ms(10), 486);
        assert_eq!(
            v,
            ResponseVerdict {
                pass_to_tu: true,
                send_ack: true
            }
        );
        // A retransmitted final response is ACKed again but not passed up.
        assert_eq!(
            txn.on_response(t0 + ms(20), 486),
            ResponseVerdict {
                pass_to_tu: false,
                send_ack: true
            }
        );
        assert_eq!(
            txn.poll_timeout(),
            Some(t0 + ms(10) + Duration::from_secs(32))
        );
        assert_eq!(
            txn.handle_timeout(t0 + Duration::from_secs(33)),
            Fired::Terminated
        );
    }

    #[test]
    fn invite_client_2xx_terminates_and_reliable_has_no_timer_a() {
        let t0 = Instant::now();
        let mut txn = ClientInvite::new(t0, TimerConfig::default(), true);
        assert_eq!(txn.poll_timeout(), Some(t0 + ms(32_000)));
        assert!(txn.on_response(t0, 200).pass_to_tu);
        assert!(txn.is_terminated());
    }

    #[test]
    fn non_invite_client_timer_e_caps_at_t2_and_f_times_out() {
        let t0 = Instant::now();
        let txn = std::cell::RefCell::new(ClientNonInvite::new(t0, TimerConfig::default(), false));
        let (resends, end) = drive(
            t0,
            t0 + Duration::from_secs(60),
            || txn.borrow().poll_timeout(),
            |t| txn.borrow_mut().handle_timeout(t),
        );
        assert_eq!(
            &resends[..5],
            &[ms(500), ms(1500), ms(3500), ms(7500), ms(11500)]
        );
        assert_eq!(end.map(|e| e.0), Some(Fired::TimedOut));
        assert_eq!(end.map(|e| e.1), Some(ms(32_000)));
    }

    #[test]
    fn non_invite_client_completed_waits_t4() {
        let t0 = Instant::now();
        let mut txn = ClientNonInvite::new(t0, TimerConfig::default(), false);
        assert!(txn.on_response(t0 + ms(5), 200).pass_to_tu);
        assert!(!txn.on_response(t0 + ms(6), 200).pass_to_tu);
        assert_eq!(txn.poll_timeout(), Some(t0 + ms(5005)));
        assert_eq!(txn.handle_timeout(t0 + ms(5005)), Fired::Terminated);
    }

    #[test]
    fn invite_server_failure_resends_until_ack_then_timer_i() {
        let t0 = Instant::now();
        let mut txn = ServerInvite::new(TimerConfig::default(), false);
        assert_eq!(txn.on_request(t0, false), RequestVerdict::ResendLast);
        assert!(txn.on_send_response(t0, 486));
        assert_eq!(txn.poll_timeout(), Some(t0 + ms(500)));
        assert_eq!(txn.handle_timeout(t0 + ms(500)), Fired::Retransmit);
        assert_eq!(txn.poll_timeout(), Some(t0 + ms(1500)));
        assert_eq!(
            txn.on_request(t0 + ms(600), true),
            RequestVerdict::Ack { pass_to_tu: false }
        );
        assert_eq!(txn.state(), ServerInviteState::Confirmed);
        assert_eq!(txn.handle_timeout(t0 + ms(5600)), Fired::Terminated);
    }

    #[test]
    fn invite_server_failure_without_ack_times_out_at_h() {
        let t0 = Instant::now();
        let txn = std::cell::RefCell::new(ServerInvite::new(TimerConfig::default(), false));
        txn.borrow_mut().on_send_response(t0, 404);
        let (resends, end) = drive(
            t0,
            t0 + Duration::from_secs(60),
            || txn.borrow().poll_timeout(),
            |t| txn.borrow_mut().handle_timeout(t),
        );
        assert_eq!(&resends[..4], &[ms(500), ms(1500), ms(3500), ms(7500)]);
        assert_eq!(end, Some((Fired::TimedOut, ms(32_000))));
    }

    #[test]
    fn invite_server_2xx_resends_until_ack_and_absorbs_retransmitted_invites() {
        let t0 = Instant::now();
        let mut txn = ServerInvite::new(TimerConfig::default(), false);
        assert!(txn.on_send_response(t0, 200));
        assert_eq!(txn.on_request(t0, false), RequestVerdict::Absorb);
        assert_eq!(txn.handle_timeout(t0 + ms(500)), Fired::Retransmit);
        assert_eq!(
            txn.on_request(t0 + ms(700), true),
            RequestVerdict::Ack { pass_to_tu: true }
        );
        assert!(txn.acked());
        assert_eq!(txn.poll_timeout(), Some(t0 + ms(32_000)));
        assert_eq!(txn.handle_timeout(t0 + ms(32_000)), Fired::Terminated);
    }

    #[test]
    fn invite_server_2xx_never_acked_times_out() {
        let t0 = Instant::now();
        let mut txn = ServerInvite::new(TimerConfig::default(), false);
        txn.on_send_response(t0, 200);
        assert_eq!(txn.handle_timeout(t0 + ms(32_000)), Fired::TimedOut);
        assert!(!txn.on_send_response(t0, 200));
    }

    /// A public server gives an unacknowledged 2xx `ack_wait`, not 64*T1: a flood of
    /// INVITEs that never ACK holds each call that long. A non-2xx keeps Timer H.
    #[test]
    fn invite_server_2xx_waits_ack_wait_for_its_ack() {
        let t0 = Instant::now();
        let cfg = TimerConfig {
            ack_wait: Duration::from_secs(10),
            ..TimerConfig::default()
        };
        let txn = std::cell::RefCell::new(ServerInvite::new(cfg, false));
        txn.borrow_mut().on_send_response(t0, 200);
        let (resends, end) = drive(
            t0,
            t0 + Duration::from_secs(60),
            || txn.borrow().poll_timeout(),
            |t| txn.borrow_mut().handle_timeout(t),
        );
        assert_eq!(resends, [ms(500), ms(1500), ms(3500), ms(7500)]);
        assert_eq!(end, Some((Fired::TimedOut, ms(10_000))));
        let mut failure = ServerInvite::new(cfg, false);
        failure.on_send_response(t0, 486);
        assert_ne!(failure.handle_timeout(t0 + ms(10_000)), Fired::TimedOut);
        assert_eq!(failure.handle_timeout(t0 + ms(32_000)), Fired::TimedOut);
    }

    #[test]
    fn invite_server_2xx_never_acked_over_tcp_still_times_out() {
        let t0 = Instant::now();
        let mut txn = ServerInvite::new(TimerConfig::default(), true);
        txn.on_send_response(t0, 200);
        assert_eq!(txn.poll_timeout(), Some(t0 + ms(32_000)));
        assert_eq!(txn.handle_timeout(t0 + ms(32_000)), Fired::TimedOut);
        let mut acked = ServerInvite::new(TimerConfig::default(), true);
        acked.on_send_response(t0, 200);
        acked.on_request(t0, true);
        assert_eq!(acked.handle_timeout(t0 + ms(32_000)), Fired::Terminated);
    }

    #[test]
    fn non_invite_server_resends_final_and_ends_after_j() {
        let t0 = Instant::now();
        let mut txn = ServerNonInvite::new(TimerConfig::default(), false);
        assert_eq!(txn.on_request(), RequestVerdict::Absorb);
        assert!(txn.on_send_response(t0, 200));
        assert!(!txn.on_send_response(t0, 500));
        assert_eq!(txn.on_request(), RequestVerdict::ResendLast);
        assert_eq!(txn.poll_timeout(), Some(t0 + ms(32_000)));
        assert_eq!(txn.handle_timeout(t0 + ms(32_000)), Fired::Terminated);
        let mut tcp = ServerNonInvite::new(TimerConfig::default(), true);
        tcp.on_send_response(t0, 200);
        assert_eq!(tcp.handle_timeout(t0), Fired::Terminated);
    }
}
