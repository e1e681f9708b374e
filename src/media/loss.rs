//! Packet loss of a received RTP stream from its sequence numbers, in the manner of RFC 3550
//! appendix A.3: expected packets are the span of extended sequence numbers seen, lost ones
//! the expected minus the received. Reordered and duplicated packets are counted as received
//! (a duplicate can make the loss of a span negative, which reads as none). A jump too large
//! to be loss, or a new SSRC (the phone restarted its stream, a transfer), starts a new run
//! whose counts add to the finished runs'.

/// A gap of up to this many packets ahead is loss; a larger jump starts a new run.
const MAX_DROPOUT: u16 = 3000;
/// Packets up to this many behind the highest are late arrivals of the same run.
const MAX_MISORDER: u16 = 100;

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LossCount {
    run: Option<Run>,
    /// Expected and received packets of the finished runs.
    done_expected: u64,
    done_received: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Run {
    ssrc: u32,
    base: u64,
    /// The highest extended sequence number so far (cycles of 2^16 above the 16 bits).
    max: u64,
    received: u64,
}

impl Run {
    fn start(ssrc: u32, seq: u16) -> Run {
        Run {
            ssrc,
            base: u64::from(seq),
            max: u64::from(seq),
            received: 1,
        }
    }

    fn expected(&self) -> u64 {
        self.max - self.base + 1
    }
}

impl LossCount {
    /// One packet of the stream, as received (after the source check).
    pub fn on_packet(&mut self, ssrc: u32, seq: u16) {
        let Some(run) = self.run.as_mut().filter(|r| r.ssrc == ssrc) else {
            return self.new_run(ssrc, seq);
        };
        let highest = run.max as u16;
        let ahead = seq.wrapping_sub(highest);
        if ahead == 0 {
            // A duplicate of the highest.
            run.received += 1;
        } else if ahead < MAX_DROPOUT {
            run.max += u64::from(ahead);
            run.received += 1;
        } else if highest.wrapping_sub(seq) <= MAX_MISORDER {
            run.received += 1;
        } else {
            self.new_run(ssrc, seq);
        }
    }

    fn new_run(&mut self, ssrc: u32, seq: u16) {
        if let Some(old) = self.run.take() {
            self.done_expected += old.expected();
            self.done_received += old.received;
        }
        self.run = Some(Run::start(ssrc, seq));
    }

    pub fn expected(&self) -> u64 {
        self.done_expected + self.run.map_or(0, |r| r.expected())
    }

    pub fn received(&self) -> u64 {
        self.done_received + self.run.map_or(0, |r| r.received)
    }

    pub fn lost(&self) -> u64 {
        self.expected().saturating_sub(self.received())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn count(seqs: impl IntoIterator<Item = u16>) -> LossCount {
        let mut c = LossCount::default();
        for s in seqs {
            c.on_packet(7, s);
        }
        c
    }

    #[test]
    fn a_clean_stream_loses_nothing_across_the_wrap() {
        let c = count((65_000..=65_535).chain(0..500));
        assert_eq!((c.expected(), c.received(), c.lost()), (1036, 1036, 0));
    }

    #[test]
    fn gaps_are_lost_packets_and_late_ones_fill_them() {
        let c = count([10, 11, 14, 15, 20]);
        assert_eq!((c.expected(), c.lost()), (11, 6));
        let c = count([10, 11, 14, 12, 13, 15]);
        assert_eq!(c.lost(), 0, "reordered, not lost");
        let c = count([65_534, 1, 65_535, 0]);
        assert_eq!(
            (c.expected(), c.lost()),
            (4, 0),
            "reordered across the wrap"
        );
    }

    #[test]
    fn duplicates_never_make_loss_negative() {
        let c = count([1, 2, 2, 3, 3, 3]);
        assert_eq!(c.lost(), 0);
        assert_eq!(c.received(), 6);
    }

    #[test]
    fn a_jump_or_a_new_ssrc_starts_a_new_run() {
        // A restart far ahead is not 30,000 lost packets.
        let c = count([100, 101, 102, 30_000, 30_001, 30_003]);
        assert_eq!((c.expected(), c.lost()), (7, 1));
        let mut c = count([100, 102]);
        c.on_packet(8, 5000);
        c.on_packet(8, 5001);
        assert_eq!((c.expected(), c.received(), c.lost()), (5, 4, 1));
    }
}
