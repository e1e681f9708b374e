//! Packet loss of a received RTP stream from its sequence numbers, in the manner of RFC 3550
//! appendices A.1 and A.3: expected packets are the span of extended sequence numbers seen,
//! lost ones the expected minus the received. Reordered and duplicated packets count as
//! received (a duplicate can make the loss of a span negative, which reads as none). A jump
//! too large to be loss starts a new run once the next packet follows it (a lone wild packet
//! is ignored), as does a new SSRC (the phone restarted its stream, a transfer); the finished
//! runs' losses, each at least zero, add up.

/// A gap of up to this many packets ahead is loss; a larger jump starts a new run.
const MAX_DROPOUT: u16 = 3000;
/// Packets up to this many behind the highest are late arrivals of the same run.
const MAX_MISORDER: u16 = 100;

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LossCount {
    run: Option<Run>,
    /// After a large jump: the sequence number that confirms it (A.1's `bad_seq`).
    bad_seq: Option<u16>,
    /// Received and lost packets of the finished runs.
    done_received: u64,
    done_lost: u64,
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

    fn lost(&self) -> u64 {
        (self.max - self.base + 1).saturating_sub(self.received)
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
        } else if self.bad_seq == Some(seq) {
            // Two in a row after the jump: the sender restarted its numbering.
            self.new_run(ssrc, seq);
        } else {
            self.bad_seq = Some(seq.wrapping_add(1));
        }
    }

    fn new_run(&mut self, ssrc: u32, seq: u16) {
        if let Some(old) = self.run.take() {
            self.done_received += old.received;
            self.done_lost += old.lost();
        }
        self.bad_seq = None;
        self.run = Some(Run::start(ssrc, seq));
    }

    pub fn received(&self) -> u64 {
        self.done_received + self.run.map_or(0, |r| r.received)
    }

    /// Never below zero, but may fall while late packets fill the current run's gaps.
    pub fn lost(&self) -> u64 {
        self.done_lost + self.run.map_or(0, |r| r.lost())
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
        assert_eq!((c.received(), c.lost()), (1036, 0));
    }

    #[test]
    fn gaps_are_lost_packets_and_late_ones_fill_them() {
        let c = count([10, 11, 14, 15, 20]);
        assert_eq!(c.lost(), 6);
        let c = count([10, 11, 14, 12, 13, 15]);
        assert_eq!(c.lost(), 0, "reordered, not lost");
        let c = count([65_534, 1, 65_535, 0]);
        assert_eq!(c.lost(), 0, "reordered across the wrap");
    }

    #[test]
    fn duplicates_never_make_loss_negative() {
        let c = count([1, 2, 2, 3, 3, 3]);
        assert_eq!(c.lost(), 0);
        assert_eq!(c.received(), 6);
    }

    #[test]
    fn a_jump_or_a_new_ssrc_starts_a_new_run() {
        // A restart far ahead is not 30,000 lost packets: the first packet after the jump
        // marks it, the second confirms it and starts the new run.
        let c = count([100, 101, 102, 30_000, 30_001, 30_003]);
        assert_eq!((c.received(), c.lost()), (5, 1));
        let mut c = count([100, 102]);
        c.on_packet(8, 5000);
        c.on_packet(8, 5001);
        assert_eq!((c.received(), c.lost()), (4, 1));
    }

    #[test]
    fn a_lone_wild_packet_is_ignored() {
        let c = count([100, 101, 40_000, 102, 103]);
        assert_eq!((c.received(), c.lost()), (4, 0));
    }

    #[test]
    fn duplicates_of_one_run_do_not_cancel_the_loss_of_another() {
        let mut c = count([1, 1, 1, 1, 2]);
        c.on_packet(9, 500);
        c.on_packet(9, 502);
        assert_eq!(c.lost(), 1);
    }
}
