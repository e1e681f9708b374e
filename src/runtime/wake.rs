//! How a media thread waits between ticks: on one epoll set holding a timer for the next
//! tick and the RTP sockets of its bridged legs, so a packet from one leg goes out on the
//! other as soon as it arrives instead of at the next receive pass (a pass every 5 ms left
//! forwarded packets 0 to 5 ms late, and that spread was the bridged calls' jitter). Legs
//! that are not bridged are still read once per tick: nothing of theirs is urgent.

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::time::{Duration, Instant};

/// The token of the tick timer; sockets are registered with their call's number, which is
/// never this.
const TIMER: u64 = u64::MAX;
const MAX_EVENTS: usize = 64;

pub(crate) struct Waker {
    epoll: OwnedFd,
    timer: OwnedFd,
    events: [libc::epoll_event; MAX_EVENTS],
    /// The timer fired together with sockets: they were handed out first, and the next
    /// `wait` reports the deadline at once.
    deadline_due: bool,
}

/// What woke the thread.
pub(crate) enum Woken<'a> {
    /// The deadline has come.
    Deadline,
    /// These registered sockets (by token) have packets.
    Readable(&'a [libc::epoll_event]),
}

impl Waker {
    pub(crate) fn new() -> std::io::Result<Waker> {
        // SAFETY: plain descriptor-creating syscalls; each result is checked before it is
        // wrapped in an OwnedFd, which then owns it.
        unsafe {
            let epoll = libc::epoll_create1(libc::EPOLL_CLOEXEC);
            if epoll < 0 {
                return Err(std::io::Error::last_os_error());
            }
            let epoll = OwnedFd::from_raw_fd(epoll);
            let timer = libc::timerfd_create(
                libc::CLOCK_MONOTONIC,
                libc::TFD_NONBLOCK | libc::TFD_CLOEXEC,
            );
            if timer < 0 {
                return Err(std::io::Error::last_os_error());
            }
            let timer = OwnedFd::from_raw_fd(timer);
            let waker = Waker {
                epoll,
                timer,
                events: [libc::epoll_event { events: 0, u64: 0 }; MAX_EVENTS],
                deadline_due: false,
            };
            waker.control(libc::EPOLL_CTL_ADD, waker.timer.as_raw_fd(), TIMER)?;
            Ok(waker)
        }
    }

    /// Wake when `fd` has a packet, with `token`. False if the kernel refused.
    pub(crate) fn watch(&self, fd: RawFd, token: u64) -> bool {
        match self.control(libc::EPOLL_CTL_ADD, fd, token) {
            Ok(()) => true,
            Err(error) => {
                tracing::warn!(%error, "cannot watch a socket for packets");
                false
            }
        }
    }

    pub(crate) fn unwatch(&self, fd: RawFd) {
        // Fails only for a socket that was not watched, which is harmless.
        let _ = self.control(libc::EPOLL_CTL_DEL, fd, 0);
    }

    fn control(&self, op: i32, fd: RawFd, token: u64) -> std::io::Result<()> {
        let mut event = libc::epoll_event {
            events: libc::EPOLLIN as u32,
            u64: token,
        };
        // SAFETY: a valid epoll descriptor and a live event struct for the call.
        if unsafe { libc::epoll_ctl(self.epoll.as_raw_fd(), op, fd, &mut event) } != 0 {
            return Err(std::io::Error::last_os_error());
        }
        Ok(())
    }

    /// Arms the timer for `deadline` (relative to now: the kernel's clock is the same
    /// monotonic one `Instant` reads).
    pub(crate) fn arm(&mut self, deadline: Instant) {
        self.deadline_due = false;
        let wait = deadline
            .saturating_duration_since(Instant::now())
            .max(Duration::from_nanos(1));
        let spec = libc::itimerspec {
            it_interval: libc::timespec {
                tv_sec: 0,
                tv_nsec: 0,
            },
            it_value: libc::timespec {
                tv_sec: wait.as_secs() as libc::time_t,
                tv_nsec: wait.subsec_nanos() as libc::c_long,
            },
        };
        // SAFETY: a valid timerfd and a fully initialised itimerspec.
        unsafe {
            libc::timerfd_settime(self.timer.as_raw_fd(), 0, &spec, std::ptr::null_mut());
        }
    }

    /// Blocks until the armed deadline or a watched socket's packet.
    pub(crate) fn wait(&mut self) -> Woken<'_> {
        if std::mem::take(&mut self.deadline_due) {
            return Woken::Deadline;
        }
        loop {
            // SAFETY: the buffer holds MAX_EVENTS events and outlives the call.
            let n = unsafe {
                libc::epoll_wait(
                    self.epoll.as_raw_fd(),
                    self.events.as_mut_ptr(),
                    MAX_EVENTS as i32,
                    -1,
                )
            };
            if n < 0 {
                if std::io::Error::last_os_error().kind() == std::io::ErrorKind::Interrupted {
                    continue;
                }
                // Should not happen; the tick still comes, late rather than never.
                std::thread::sleep(Duration::from_millis(1));
                return Woken::Deadline;
            }
            let n = n as usize;
            let Some(timer) = self.events[..n].iter().position(|e| e.u64 == TIMER) else {
                return Woken::Readable(&self.events[..n]);
            };
            let mut expirations = [0u8; 8];
            // SAFETY: reads 8 bytes into a local buffer from our own timerfd.
            unsafe {
                libc::read(
                    self.timer.as_raw_fd(),
                    expirations.as_mut_ptr().cast(),
                    expirations.len(),
                );
            }
            if n == 1 {
                return Woken::Deadline;
            }
            // Sockets that became readable with the deadline are served before it: a thread
            // running late would otherwise find the deadline every time and never read them.
            self.events.swap(timer, n - 1);
            self.deadline_due = true;
            return Woken::Readable(&self.events[..n - 1]);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::UdpSocket;

    #[test]
    fn wakes_for_a_packet_at_once_and_for_the_deadline_on_time() {
        let mut w = Waker::new().unwrap();
        let leg = UdpSocket::bind("127.0.0.1:0").unwrap();
        leg.set_nonblocking(true).unwrap();
        let sender = UdpSocket::bind("127.0.0.1:0").unwrap();
        assert!(w.watch(leg.as_raw_fd(), 7));
        let start = Instant::now();
        w.arm(start + Duration::from_millis(200));
        sender.send_to(b"x", leg.local_addr().unwrap()).unwrap();
        match w.wait() {
            Woken::Readable(ready) => {
                assert_eq!(ready.len(), 1);
                // epoll_event is packed: read the field by value.
                let token = ready[0].u64;
                assert_eq!(token, 7);
            }
            Woken::Deadline => panic!("the packet should wake it first"),
        }
        assert!(start.elapsed() < Duration::from_millis(100));
        let mut buf = [0u8; 16];
        leg.recv(&mut buf).unwrap();
        // Nothing more to read: the deadline wakes it, not before.
        w.unwatch(leg.as_raw_fd());
        sender.send_to(b"y", leg.local_addr().unwrap()).unwrap();
        let deadline = start + Duration::from_millis(60);
        w.arm(deadline);
        assert!(
            matches!(w.wait(), Woken::Deadline),
            "an unwatched socket does not wake it"
        );
        let now = Instant::now();
        assert!(now >= deadline, "{:?} early", deadline - now);
    }

    /// A thread running late arms deadlines already past; sockets ready at the same moment
    /// are still served, before the deadline is reported.
    #[test]
    fn sockets_ready_with_a_past_deadline_are_served_first() {
        let mut w = Waker::new().unwrap();
        let leg = UdpSocket::bind("127.0.0.1:0").unwrap();
        let sender = UdpSocket::bind("127.0.0.1:0").unwrap();
        assert!(w.watch(leg.as_raw_fd(), 7));
        sender.send_to(b"x", leg.local_addr().unwrap()).unwrap();
        std::thread::sleep(Duration::from_millis(20));
        w.arm(Instant::now() - Duration::from_millis(5));
        std::thread::sleep(Duration::from_millis(5));
        match w.wait() {
            Woken::Readable(ready) => {
                let tokens: Vec<u64> = ready.iter().map(|e| e.u64).collect();
                assert_eq!(tokens, [7]);
            }
            Woken::Deadline => panic!("the socket was starved by the deadline"),
        }
        assert!(matches!(w.wait(), Woken::Deadline));
    }
}
