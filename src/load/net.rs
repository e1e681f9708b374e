//! The few raw socket and clock calls the load tool needs beyond std: kernel receive
//! timestamps, non-blocking sends, absolute-deadline sleep, the fd limit (batched receive
//! is the server's, `runtime::udp`).

use std::io;
use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::os::fd::{AsRawFd, RawFd};

pub(crate) const TICK_NS: u64 = 20_000_000;
#[cfg(test)]
use crate::runtime::udp::socket_addr;
pub(crate) use crate::runtime::udp::{BATCH, RECV_BUF, RecvBatch};

/// A non-blocking UDP socket on an ephemeral port of `ip`.
pub(crate) fn bind_udp(ip: IpAddr) -> io::Result<UdpSocket> {
    let s = UdpSocket::bind(SocketAddr::new(ip, 0))?;
    s.set_nonblocking(true)?;
    Ok(s)
}

/// Ask the kernel to stamp every datagram with its arrival time (CLOCK_REALTIME, ns).
pub(crate) fn enable_rx_timestamps(sock: &UdpSocket) -> io::Result<()> {
    let one: libc::c_int = 1;
    // SAFETY: a valid socket fd and a c_int option value of the stated size.
    let rc = unsafe {
        libc::setsockopt(
            sock.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_TIMESTAMPNS,
            (&one as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Send one datagram on a connected socket without blocking. Errors are reported, not
/// retried: a full buffer or an ICMP-refused peer costs that one packet.
#[inline]
pub(crate) fn send(fd: RawFd, data: &[u8]) -> bool {
    // SAFETY: the pointer and length describe `data`, which outlives the call.
    let rc = unsafe { libc::send(fd, data.as_ptr().cast(), data.len(), libc::MSG_DONTWAIT) };
    rc >= 0
}

/// A peer's address in the kernel's form, built once per stream, so that sending to an
/// unconnected socket costs no conversion per packet.
#[derive(Clone, Copy)]
pub(crate) struct PeerAddr {
    storage: libc::sockaddr_storage,
    len: libc::socklen_t,
}

impl PeerAddr {
    pub(crate) fn new(addr: SocketAddr) -> PeerAddr {
        // SAFETY: all-zero is a valid sockaddr_storage; the casts below write a sockaddr_in or
        // sockaddr_in6, both no larger than the storage and suitably aligned within it.
        let mut storage: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
        let len = match addr {
            SocketAddr::V4(a) => {
                let sin = libc::sockaddr_in {
                    sin_family: libc::AF_INET as libc::sa_family_t,
                    sin_port: a.port().to_be(),
                    sin_addr: libc::in_addr {
                        s_addr: u32::from(*a.ip()).to_be(),
                    },
                    sin_zero: [0; 8],
                };
                unsafe {
                    std::ptr::write((&mut storage as *mut libc::sockaddr_storage).cast(), sin)
                };
                std::mem::size_of::<libc::sockaddr_in>()
            }
            SocketAddr::V6(a) => {
                let sin6 = libc::sockaddr_in6 {
                    sin6_family: libc::AF_INET6 as libc::sa_family_t,
                    sin6_port: a.port().to_be(),
                    sin6_flowinfo: a.flowinfo(),
                    sin6_addr: libc::in6_addr {
                        s6_addr: a.ip().octets(),
                    },
                    sin6_scope_id: a.scope_id(),
                };
                unsafe {
                    std::ptr::write((&mut storage as *mut libc::sockaddr_storage).cast(), sin6)
                };
                std::mem::size_of::<libc::sockaddr_in6>()
            }
        };
        PeerAddr {
            storage,
            len: len as libc::socklen_t,
        }
    }
}

/// Send one datagram to `to` without blocking (the socket stays unconnected so that the
/// receive side sees, and counts, datagrams from anyone else). Errors cost that one packet.
#[inline]
pub(crate) fn send_to(fd: RawFd, data: &[u8], to: &PeerAddr) -> bool {
    // SAFETY: the pointers and lengths describe `data` and `to.storage`, which outlive the
    // call.
    let rc = unsafe {
        libc::sendto(
            fd,
            data.as_ptr().cast(),
            data.len(),
            libc::MSG_DONTWAIT,
            (&to.storage as *const libc::sockaddr_storage).cast(),
            to.len,
        )
    };
    rc >= 0
}

/// CLOCK_MONOTONIC in ns: the pacing clock, paired with `sleep_until_ns`.
#[inline]
pub(crate) fn mono_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes one timespec.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// CLOCK_REALTIME in ns: the clock of kernel receive timestamps.
pub(crate) fn real_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes one timespec.
    unsafe { libc::clock_gettime(libc::CLOCK_REALTIME, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// Sleep to an absolute CLOCK_MONOTONIC deadline, so lateness in one tick never shifts the
/// next one (a relative sleep would accumulate it).
pub(crate) fn sleep_until_ns(deadline: u64) {
    let ts = libc::timespec {
        tv_sec: (deadline / 1_000_000_000) as _,
        tv_nsec: (deadline % 1_000_000_000) as _,
    };
    loop {
        // SAFETY: a valid timespec; the remainder pointer may be null with TIMER_ABSTIME.
        let rc = unsafe {
            libc::clock_nanosleep(
                libc::CLOCK_MONOTONIC,
                libc::TIMER_ABSTIME,
                &ts,
                std::ptr::null_mut(),
            )
        };
        if rc != libc::EINTR {
            return;
        }
    }
}

/// Raise the soft open-file limit to the hard one: each call holds an RTP socket.
/// Returns the soft limit now in force.
pub(crate) fn raise_nofile_limit() -> io::Result<u64> {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit read and write one rlimit struct.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) != 0 {
            return Err(io::Error::last_os_error());
        }
        if lim.rlim_cur < lim.rlim_max {
            let raised = libc::rlimit {
                rlim_cur: lim.rlim_max,
                rlim_max: lim.rlim_max,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &raised) != 0 {
                return Err(io::Error::last_os_error());
            }
            lim = raised;
        }
    }
    Ok(lim.rlim_cur)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batch_receive_with_kernel_timestamps() {
        let ip: IpAddr = "127.0.0.1".parse().unwrap();
        let a = bind_udp(ip).unwrap();
        let b = bind_udp(ip).unwrap();
        enable_rx_timestamps(&b).unwrap();
        a.connect(b.local_addr().unwrap()).unwrap();
        b.connect(a.local_addr().unwrap()).unwrap();
        let mut batch = RecvBatch::new(true);
        assert_eq!(batch.recv(b.as_raw_fd()), 0, "empty socket");
        for i in 0..3u8 {
            assert!(send(a.as_raw_fd(), &[i; 172]));
        }
        // Loopback delivery is synchronous with send, but allow the scheduler a moment.
        let mut got = Vec::new();
        for _ in 0..100 {
            let n = batch.recv(b.as_raw_fd());
            for i in 0..n {
                let d = batch.get(i);
                got.push((d.data.len(), d.data[0], d.ns, d.truncated));
            }
            if got.len() == 3 {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
        assert_eq!(got.len(), 3);
        for (i, (len, first, ns, truncated)) in got.iter().enumerate() {
            assert_eq!((*len, *first as usize, *truncated), (172, i, false));
            assert!(*ns > 1_600_000_000u64 * 1_000_000_000, "a kernel timestamp");
        }
        assert!(got[0].2 <= got[2].2);
    }

    #[test]
    fn unconnected_send_and_the_source_of_each_datagram() {
        let ip: IpAddr = "127.0.0.1".parse().unwrap();
        let (a, b, c) = (
            bind_udp(ip).unwrap(),
            bind_udp(ip).unwrap(),
            bind_udp(ip).unwrap(),
        );
        let to_b = PeerAddr::new(b.local_addr().unwrap());
        assert!(send_to(a.as_raw_fd(), &[1; 20], &to_b));
        assert!(send_to(c.as_raw_fd(), &[2; 20], &to_b));
        let mut batch = RecvBatch::new(false);
        let mut got = Vec::new();
        for _ in 0..100 {
            let n = batch.recv(b.as_raw_fd());
            for i in 0..n {
                let d = batch.get(i);
                got.push((d.data[0], d.from));
            }
            if got.len() == 2 {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
        got.sort_by_key(|g| g.0);
        assert_eq!(
            got,
            [(1, a.local_addr().ok()), (2, c.local_addr().ok())],
            "each datagram with its sender"
        );
        let v6 = "[::1]:5004".parse().unwrap();
        let p = PeerAddr::new(v6);
        assert_eq!(socket_addr(&p.storage, p.len), Some(v6));
    }

    #[test]
    fn absolute_sleep_reaches_its_deadline() {
        let target = mono_ns() + 2_000_000;
        sleep_until_ns(target);
        assert!(mono_ns() >= target);
        sleep_until_ns(target - 1_000_000);
    }

    #[test]
    fn nofile_limit_is_raised_to_hard() {
        let soft = raise_nofile_limit().unwrap();
        let mut lim = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) };
        assert_eq!(soft, lim.rlim_cur);
        assert_eq!(lim.rlim_cur, lim.rlim_max);
    }
}
