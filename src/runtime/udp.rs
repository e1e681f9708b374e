//! Batched non-blocking UDP receive (recvmmsg): one system call reads what a socket holds,
//! where reading datagram by datagram costs a second call to find it empty. The media
//! threads read their streams' sockets this way each tick, and the load tool its own.

use std::net::SocketAddr;
use std::os::fd::RawFd;

/// Largest datagram kept whole; RTP is a few hundred bytes, anything longer is cut and
/// flagged (the media threads drop it, the load tool counts it).
pub(crate) const RECV_BUF: usize = 2048;
/// Datagrams fetched per receive call: at 20 ms pacing a socket rarely holds more than two.
pub(crate) const BATCH: usize = 8;
/// Room for one SCM_TIMESTAMPNS control message (CMSG_SPACE(16) is 32 on 64-bit Linux).
const CTRL_LEN: usize = 64;

/// The socket address the kernel wrote into a receive header, if it is IPv4 or IPv6.
pub(crate) fn socket_addr(
    storage: &libc::sockaddr_storage,
    len: libc::socklen_t,
) -> Option<SocketAddr> {
    let len = len as usize;
    match i32::from(storage.ss_family) {
        libc::AF_INET if len >= std::mem::size_of::<libc::sockaddr_in>() => {
            // SAFETY: the kernel wrote a sockaddr_in (family AF_INET, length checked).
            let sin: libc::sockaddr_in =
                unsafe { std::ptr::read((storage as *const libc::sockaddr_storage).cast()) };
            Some(SocketAddr::from((
                std::net::Ipv4Addr::from(u32::from_be(sin.sin_addr.s_addr)),
                u16::from_be(sin.sin_port),
            )))
        }
        libc::AF_INET6 if len >= std::mem::size_of::<libc::sockaddr_in6>() => {
            // SAFETY: as above, for AF_INET6.
            let sin6: libc::sockaddr_in6 =
                unsafe { std::ptr::read((storage as *const libc::sockaddr_storage).cast()) };
            Some(SocketAddr::V6(std::net::SocketAddrV6::new(
                sin6.sin6_addr.s6_addr.into(),
                u16::from_be(sin6.sin6_port),
                sin6.sin6_flowinfo,
                sin6.sin6_scope_id,
            )))
        }
        _ => None,
    }
}

/// Reusable buffers for recvmmsg: one allocation per thread, none per packet.
pub(crate) struct RecvBatch {
    bufs: Box<[[u8; RECV_BUF]; BATCH]>,
    /// Each datagram's source address.
    names: Box<[libc::sockaddr_storage; BATCH]>,
    ctrl: Box<[[u64; CTRL_LEN / 8]; BATCH]>,
    iov: Box<[libc::iovec; BATCH]>,
    hdrs: Box<[libc::mmsghdr; BATCH]>,
    want_ts: bool,
}

pub(crate) struct Datagram<'a> {
    pub data: &'a [u8],
    /// Kernel receive time in ns since the epoch; 0 when the kernel gave none.
    pub ns: u64,
    pub truncated: bool,
    /// Where it came from (None only for an address family we do not speak).
    pub from: Option<SocketAddr>,
}

impl RecvBatch {
    pub(crate) fn new(want_ts: bool) -> Self {
        // SAFETY: iovec and mmsghdr are plain C structs for which all-zero is a valid value.
        let zero_iov: libc::iovec = unsafe { std::mem::zeroed() };
        let zero_hdr: libc::mmsghdr = unsafe { std::mem::zeroed() };
        // SAFETY: as above, for sockaddr_storage.
        let zero_name: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
        RecvBatch {
            bufs: Box::new([[0; RECV_BUF]; BATCH]),
            names: Box::new([zero_name; BATCH]),
            ctrl: Box::new([[0; CTRL_LEN / 8]; BATCH]),
            iov: Box::new([zero_iov; BATCH]),
            hdrs: Box::new([zero_hdr; BATCH]),
            want_ts,
        }
    }

    /// One recvmmsg(MSG_DONTWAIT) on `fd` for up to `BATCH` datagrams: see `recv_up_to`.
    #[inline]
    pub(crate) fn recv(&mut self, fd: RawFd) -> usize {
        self.recv_up_to(fd, BATCH)
    }

    /// One recvmmsg(MSG_DONTWAIT) on `fd` for at most `most` (≤ `BATCH`) datagrams: the
    /// number now readable through `get`, 0 when the socket was empty. Other errors (an
    /// ICMP error queued on a connected socket) also read as 0; the caller's next tick
    /// tries again. Fewer than asked for means the socket is empty now.
    #[inline]
    pub(crate) fn recv_up_to(&mut self, fd: RawFd, most: usize) -> usize {
        let most = most.min(BATCH);
        if most == 0 {
            return 0;
        }
        // The pointers are re-aimed on every call so the struct itself may move freely.
        for i in 0..most {
            self.iov[i].iov_base = self.bufs[i].as_mut_ptr().cast();
            self.iov[i].iov_len = RECV_BUF;
            let h = &mut self.hdrs[i].msg_hdr;
            h.msg_name = (&mut self.names[i] as *mut libc::sockaddr_storage).cast();
            h.msg_namelen = std::mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;
            h.msg_iov = &mut self.iov[i];
            h.msg_iovlen = 1;
            if self.want_ts {
                h.msg_control = self.ctrl[i].as_mut_ptr().cast();
                h.msg_controllen = CTRL_LEN as _;
            } else {
                h.msg_control = std::ptr::null_mut();
                h.msg_controllen = 0;
            }
            h.msg_flags = 0;
            self.hdrs[i].msg_len = 0;
        }
        // SAFETY: every header points at buffers owned by self that live across the call,
        // with lengths matching their sizes.
        let n = unsafe {
            libc::recvmmsg(
                fd,
                self.hdrs.as_mut_ptr(),
                most as libc::c_uint,
                libc::MSG_DONTWAIT,
                std::ptr::null_mut(),
            )
        };
        if n <= 0 { 0 } else { n as usize }
    }

    /// Datagram `i` of the last receive, writable (a forwarded packet's header is rewritten
    /// in place), with its source; None for an address family we do not speak.
    #[inline]
    pub(crate) fn get_mut(&mut self, i: usize) -> Option<(&mut [u8], SocketAddr, bool)> {
        let h = &self.hdrs[i];
        let len = (h.msg_len as usize).min(RECV_BUF);
        let truncated = h.msg_hdr.msg_flags & libc::MSG_TRUNC != 0;
        let from = socket_addr(&self.names[i], h.msg_hdr.msg_namelen)?;
        Some((&mut self.bufs[i][..len], from, truncated))
    }

    #[inline]
    pub(crate) fn get(&self, i: usize) -> Datagram<'_> {
        let h = &self.hdrs[i];
        let len = (h.msg_len as usize).min(RECV_BUF);
        Datagram {
            data: &self.bufs[i][..len],
            ns: if self.want_ts {
                timestamp_ns(&h.msg_hdr)
            } else {
                0
            },
            truncated: h.msg_hdr.msg_flags & libc::MSG_TRUNC != 0,
            from: socket_addr(&self.names[i], h.msg_hdr.msg_namelen),
        }
    }
}

fn timestamp_ns(msg: &libc::msghdr) -> u64 {
    // SAFETY: msg was filled in by the kernel; the CMSG macros walk its control buffer
    // within msg_controllen, and the payload of SCM_TIMESTAMPNS is a timespec.
    unsafe {
        let mut c = libc::CMSG_FIRSTHDR(msg);
        while !c.is_null() {
            if (*c).cmsg_level == libc::SOL_SOCKET && (*c).cmsg_type == libc::SCM_TIMESTAMPNS {
                let ts: libc::timespec = std::ptr::read_unaligned(libc::CMSG_DATA(c).cast());
                return ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64;
            }
            c = libc::CMSG_NXTHDR(msg, c);
        }
    }
    0
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::UdpSocket;
    use std::os::fd::AsRawFd;

    fn pair() -> (UdpSocket, UdpSocket) {
        let a = UdpSocket::bind("127.0.0.1:0").unwrap();
        let b = UdpSocket::bind("127.0.0.1:0").unwrap();
        b.set_nonblocking(true).unwrap();
        a.connect(b.local_addr().unwrap()).unwrap();
        (a, b)
    }

    /// Loopback delivers at send, but give the scheduler a moment before reading.
    fn settle() {
        std::thread::sleep(std::time::Duration::from_millis(5));
    }

    #[test]
    fn a_receive_takes_no_more_than_asked_and_fewer_means_empty() {
        let (a, b) = pair();
        let mut batch = RecvBatch::new(false);
        assert_eq!(batch.recv_up_to(b.as_raw_fd(), 4), 0, "empty socket");
        for i in 0..5u8 {
            a.send(&[i; 172]).unwrap();
        }
        settle();
        assert_eq!(batch.recv_up_to(b.as_raw_fd(), 2), 2);
        let (data, from, truncated) = batch.get_mut(1).unwrap();
        assert_eq!((data.len(), data[0], truncated), (172, 1, false));
        assert_eq!(from, a.local_addr().unwrap());
        data[0] = 9;
        assert_eq!(batch.get(1).data[0], 9, "written in place");
        assert_eq!(
            batch.recv_up_to(b.as_raw_fd(), 0),
            0,
            "nothing asked, nothing read"
        );
        assert_eq!(
            batch.recv_up_to(b.as_raw_fd(), 100),
            3,
            "the rest, capped at BATCH"
        );
        assert_eq!(batch.get(2).data[0], 4);
        assert_eq!(batch.recv(b.as_raw_fd()), 0);
    }

    #[test]
    fn a_datagram_longer_than_the_buffer_is_flagged() {
        let (a, b) = pair();
        a.send(&[7; RECV_BUF + 100]).unwrap();
        a.send(&[8; 20]).unwrap();
        settle();
        let mut batch = RecvBatch::new(false);
        assert_eq!(batch.recv(b.as_raw_fd()), 2);
        let (data, _, truncated) = batch.get_mut(0).unwrap();
        assert_eq!((data.len(), truncated), (RECV_BUF, true));
        let (data, _, truncated) = batch.get_mut(1).unwrap();
        assert_eq!((data.len(), truncated), (20, false));
    }
}
