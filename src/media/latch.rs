//! Which source a stream hears, sans-IO: the first decision each received RTP packet meets.
//!
//! Anyone can send UDP to our RTP port, so a packet's source decides whether it is the
//! caller's media. The rule (issue 9):
//!
//! - The address AND port the SDP names are accepted at once: the stream latches to them.
//! - When that source never comes (a NAT rewrote it), a source is learnt from a run of
//!   `LEARN_RUN` valid RTP packets in a row from one address, with one SSRC and consecutive
//!   sequence numbers, as a real phone sends in 80 ms and a sprayer of random packets does
//!   not. Which addresses may be learnt:
//!   - the SDP's IP with another port (a NAT that keeps the address but rewrites the port,
//!     or a phone that sends from another port than it receives on): always;
//!   - another IP only when the SDP's IP is one the caller cannot be reached at from here
//!     (private, CGNAT, link-local, loopback, unspecified: a phone behind NAT announcing
//!     192.168.x). When the SDP names a routable address, media from any other IP is a
//!     third party, never the caller.
//!   - any address when the SDP named none.
//! - Once latched (to the SDP's source or a learnt one) the stream never moves: every packet
//!   from elsewhere is dropped and counted, its digits never reach the engine. Only a new SDP
//!   address (a re-INVITE) starts over.
//!
//! What this cannot stop: a sender who spoofs the exact source address, or who completes a
//! learning run before the caller's first packet arrives; the run only makes that deliberate.

use std::net::{IpAddr, SocketAddr};

/// Valid RTP packets in a row (one address, one SSRC, consecutive sequence numbers) before
/// a source off the SDP address is learnt. A phone sends this many in 80 ms; the packets of
/// the run itself are dropped (the caller's first 80 ms, before any prompt ends).
pub const LEARN_RUN: u8 = 4;

/// What to do with one valid RTP packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// From the latched source: the caller's media.
    Accept,
    /// This packet latched the stream to its source (and is the caller's media too).
    Latched,
    /// From anyone else, or part of a run not yet long enough: dropped.
    Drop,
}

#[derive(Debug, Clone, Copy)]
struct Run {
    from: SocketAddr,
    ssrc: u32,
    last_seq: u16,
    count: u8,
}

/// The latching state of one stream. Small and `Copy`-sized: no allocation, ever.
#[derive(Debug, Clone, Default)]
pub struct Latch {
    /// Where the SDP says the caller's RTP comes from (we assume symmetric RTP).
    expected: Option<SocketAddr>,
    /// Whether a source off the SDP's IP may be learnt (see the module comment).
    any_ip: bool,
    source: Option<SocketAddr>,
    run: Option<Run>,
    /// Valid RTP packets dropped for their source (including those of a learning run).
    dropped: u64,
}

impl Latch {
    pub fn new(expected: Option<SocketAddr>) -> Latch {
        Latch {
            expected: expected.map(canonical),
            any_ip: expected.is_none_or(|e| !routable(e.ip())),
            ..Latch::default()
        }
    }

    /// A new SDP address: latch anew (a re-INVITE moved the media). The same address keeps
    /// the latch and the count.
    pub fn retarget(&mut self, expected: Option<SocketAddr>) {
        if expected.map(canonical) != self.expected {
            let dropped = self.dropped;
            *self = Latch::new(expected);
            self.dropped = dropped;
        }
    }

    pub fn source(&self) -> Option<SocketAddr> {
        self.source
    }

    /// Valid RTP packets dropped so far because of where they came from.
    pub fn dropped(&self) -> u64 {
        self.dropped
    }

    /// Judge one valid RTP packet (RTCP and garbage never get here) by its source, SSRC and
    /// sequence number.
    pub fn judge(&mut self, from: SocketAddr, ssrc: u32, seq: u16) -> Verdict {
        if let Some(source) = self.source {
            if source == from || canonical(from) == canonical(source) {
                return Verdict::Accept;
            }
            self.dropped += 1;
            return Verdict::Drop;
        }
        // The source is kept as it came (the runtime connect()s the socket to it); the
        // comparisons are on the canonical form.
        let raw = from;
        let from = canonical(from);
        if Some(from) == self.expected {
            return self.latch(raw);
        }
        let same_ip = self.expected.is_some_and(|e| e.ip() == from.ip());
        if !same_ip && !self.any_ip {
            self.dropped += 1;
            return Verdict::Drop;
        }
        let count = match self.run.as_mut() {
            Some(r) if r.from == from && r.ssrc == ssrc && seq == r.last_seq.wrapping_add(1) => {
                r.last_seq = seq;
                r.count = r.count.saturating_add(1);
                r.count
            }
            // A run from another source, with another SSRC or out of sequence starts over:
            // two sprayers, or one with random headers, never complete one.
            _ => {
                self.run = Some(Run {
                    from,
                    ssrc,
                    last_seq: seq,
                    count: 1,
                });
                1
            }
        };
        if count >= LEARN_RUN {
            return self.latch(raw);
        }
        self.dropped += 1;
        Verdict::Drop
    }

    fn latch(&mut self, from: SocketAddr) -> Verdict {
        self.source = Some(from);
        self.run = None;
        Verdict::Latched
    }
}

/// IPv4-mapped IPv6 sources (a dual-stack socket) compare equal to the IPv4 the SDP names.
fn canonical(a: SocketAddr) -> SocketAddr {
    SocketAddr::new(a.ip().to_canonical(), a.port())
}

/// Whether a phone that announces `ip` can be reached at it from elsewhere. Private, shared
/// (CGNAT), link-local, loopback and unspecified addresses cannot: a phone announcing one is
/// behind NAT (or misconfigured), and its media comes from some other IP we must learn.
/// Documentation ranges count as routable (tests use them as public addresses).
pub fn routable(ip: IpAddr) -> bool {
    match ip.to_canonical() {
        IpAddr::V4(v4) => {
            let [a, b, ..] = v4.octets();
            let cgnat = a == 100 && (64..128).contains(&b);
            !(v4.is_private()
                || v4.is_loopback()
                || v4.is_link_local()
                || v4.is_unspecified()
                || v4.is_broadcast()
                || cgnat)
        }
        IpAddr::V6(v6) => {
            let first = v6.segments()[0];
            let unique_local = first & 0xfe00 == 0xfc00;
            let link_local = first & 0xffc0 == 0xfe80;
            !(v6.is_loopback() || v6.is_unspecified() || unique_local || link_local)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn a(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    /// `n` packets of one well-formed run from `from`, starting at `seq`.
    fn run(l: &mut Latch, from: &str, ssrc: u32, seq: u16, n: u16) -> Vec<Verdict> {
        (0..n)
            .map(|i| l.judge(a(from), ssrc, seq.wrapping_add(i)))
            .collect()
    }

    #[test]
    fn the_sdp_address_and_port_latch_at_once_and_nobody_moves_it() {
        let mut l = Latch::new(Some(a("192.0.2.10:4000")));
        assert_eq!(l.judge(a("192.0.2.10:4000"), 9, 100), Verdict::Latched);
        assert_eq!(l.judge(a("192.0.2.10:4000"), 9, 101), Verdict::Accept);
        // A sprayer on the caller's own IP, another port, however well it numbers.
        assert!(
            run(&mut l, "192.0.2.10:4002", 66, 0, 20)
                .iter()
                .all(|v| *v == Verdict::Drop)
        );
        assert!(
            run(&mut l, "198.51.100.7:4000", 9, 102, 20)
                .iter()
                .all(|v| *v == Verdict::Drop)
        );
        assert_eq!(l.source(), Some(a("192.0.2.10:4000")));
        assert_eq!(l.dropped(), 40);
        assert_eq!(l.judge(a("192.0.2.10:4000"), 9, 102), Verdict::Accept);
    }

    #[test]
    fn a_sprayer_on_the_sdp_ip_before_media_does_not_latch_and_real_media_wins() {
        let mut l = Latch::new(Some(a("192.0.2.10:4000")));
        // Random SSRCs and sequence numbers, as a sprayer sends: never a run.
        for i in 0..50u32 {
            let v = l.judge(a("192.0.2.10:4002"), i * 7919, (i * 31337) as u16);
            assert_eq!(v, Verdict::Drop, "packet {i}");
        }
        assert_eq!(l.source(), None);
        assert_eq!(l.judge(a("192.0.2.10:4000"), 9, 0), Verdict::Latched);
        assert_eq!(l.dropped(), 50);
    }

    #[test]
    fn nat_port_rewrite_is_learnt_from_a_run_of_consecutive_packets() {
        let mut l = Latch::new(Some(a("192.0.2.10:4000")));
        let nat = "192.0.2.10:61000";
        assert_eq!(
            run(&mut l, nat, 9, 65534, 3),
            [Verdict::Drop; 3],
            "the run wraps the sequence"
        );
        // A gap restarts the run; another SSRC too.
        assert_eq!(l.judge(a(nat), 9, 3), Verdict::Drop);
        assert_eq!(l.judge(a(nat), 10, 4), Verdict::Drop);
        assert_eq!(run(&mut l, nat, 10, 5, 2), [Verdict::Drop; 2]);
        assert_eq!(l.judge(a(nat), 10, 7), Verdict::Latched, "fourth in a row");
        assert_eq!(l.source(), Some(a(nat)));
        // Learnt is latched: the SDP address itself now comes too late.
        assert_eq!(l.judge(a("192.0.2.10:4000"), 10, 8), Verdict::Drop);
        assert_eq!(
            l.judge(a(nat), 10, 200),
            Verdict::Accept,
            "any seq once latched"
        );
    }

    #[test]
    fn another_ip_is_learnt_only_when_the_sdp_names_an_unroutable_one() {
        // Routable SDP address: a well-formed run from another IP is a third party.
        let mut l = Latch::new(Some(a("192.0.2.10:4000")));
        assert!(
            run(&mut l, "203.0.113.5:6000", 9, 0, 50)
                .iter()
                .all(|v| *v == Verdict::Drop)
        );
        assert_eq!(l.source(), None);
        // A phone behind NAT announcing its private address.
        for sdp in [
            "192.168.1.20:4000",
            "10.0.0.5:4000",
            "100.64.3.4:4000",
            "[fd00::5]:4000",
        ] {
            let mut l = Latch::new(Some(a(sdp)));
            let mut got = run(&mut l, "203.0.113.5:6000", 9, 0, 4);
            assert_eq!(got.pop(), Some(Verdict::Latched), "{sdp}");
            assert_eq!(got, [Verdict::Drop; 3], "{sdp}");
            // Runs interleaved from two sources break each other.
            let mut l = Latch::new(Some(a(sdp)));
            for seq in 0..10 {
                assert_eq!(l.judge(a("203.0.113.5:6000"), 9, seq), Verdict::Drop);
                assert_eq!(l.judge(a("198.51.100.7:5000"), 7, seq), Verdict::Drop);
            }
        }
        // No SDP address at all: anyone may be learnt, but only by a run.
        let mut l = Latch::new(None);
        assert_eq!(
            run(&mut l, "203.0.113.5:6000", 9, 0, 4)[3],
            Verdict::Latched
        );
    }

    #[test]
    fn a_new_sdp_address_starts_over_the_same_keeps_the_latch() {
        let mut l = Latch::new(Some(a("10.0.0.5:4000")));
        run(&mut l, "203.0.113.5:6000", 9, 0, 2);
        l.retarget(Some(a("192.0.2.20:4000")));
        assert_eq!(
            run(&mut l, "203.0.113.5:6000", 9, 2, 4),
            [Verdict::Drop; 4],
            "routable now: the old run does not carry over and another IP is not learnt"
        );
        assert_eq!(l.judge(a("192.0.2.20:4000"), 1, 0), Verdict::Latched);
        l.retarget(Some(a("192.0.2.20:4000")));
        assert_eq!(l.source(), Some(a("192.0.2.20:4000")));
        l.retarget(Some(a("192.0.2.30:4000")));
        assert_eq!(l.source(), None);
        assert_eq!(l.dropped(), 6, "the count runs for the stream's life");
    }

    #[test]
    fn ipv4_mapped_sources_match_the_sdp_address() {
        let mut l = Latch::new(Some(a("192.0.2.10:4000")));
        assert_eq!(
            l.judge(a("[::ffff:192.0.2.10]:4000"), 1, 0),
            Verdict::Latched
        );
        assert_eq!(
            l.judge(a("[::ffff:192.0.2.10]:4000"), 1, 1),
            Verdict::Accept
        );
        assert_eq!(l.judge(a("192.0.2.10:4000"), 1, 2), Verdict::Accept);
    }

    #[test]
    fn routable_addresses() {
        for ip in [
            "192.0.2.1",
            "8.8.8.8",
            "100.128.0.1",
            "2001:db8::1",
            "::ffff:8.8.8.8",
        ] {
            assert!(routable(ip.parse().unwrap()), "{ip}");
        }
        for ip in [
            "10.1.2.3",
            "172.16.0.1",
            "192.168.0.1",
            "100.64.0.1",
            "169.254.1.1",
            "127.0.0.1",
            "0.0.0.0",
            "::1",
            "fe80::1",
            "fc00::1",
            "::ffff:192.168.1.1",
        ] {
            assert!(!routable(ip.parse().unwrap()), "{ip}");
        }
    }
}
