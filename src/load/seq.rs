//! Per-stream receive accounting: loss from RTP sequence numbers (RFC 3550 A.1/A.3 style
//! extended sequence numbers, so wraparound at 65535 is invisible), tolerant of reordering and
//! duplicates, plus the inter-arrival gap between consecutive sequence numbers.

/// A jump further than this is a restarted stream, not 60 s of loss (RFC 3550 MAX_DROPOUT).
const MAX_JUMP: i64 = 3000;
/// How far back a reordered packet is still told apart from a duplicate.
const WINDOW: i64 = 64;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Arrival {
    New,
    Duplicate,
    /// Older than the duplicate window: already counted lost, and left that way.
    Late,
}

#[derive(Debug, Default, Clone)]
pub(crate) struct RxTracker {
    started: bool,
    ssrc: u32,
    base: i64,
    max: i64,
    /// Bit i set: sequence `max - i` has arrived.
    window: u64,
    unique: u64,
    duplicates: u64,
    late: u64,
    /// Counts from earlier incarnations of the stream (new SSRC, or a jump past MAX_JUMP).
    folded_expected: u64,
    folded_unique: u64,
    resyncs: u64,
    /// The last packet that arrived, for the gap: its extended sequence and kernel time.
    last_ext: i64,
    last_ns: u64,
    last_counts_for_gap: bool,
}

impl RxTracker {
    /// Account one packet. `gap_ok` says the packet may anchor or close a gap measurement
    /// (an audio packet without a marker); `ns` is its kernel receive time, 0 when unknown.
    /// Returns the arrival kind and, when this packet directly follows the previous arrival
    /// in sequence, the time since that arrival.
    #[inline]
    pub(crate) fn on_packet(
        &mut self,
        ssrc: u32,
        seq: u16,
        ns: u64,
        gap_ok: bool,
    ) -> (Arrival, Option<u64>) {
        if !self.started || ssrc != self.ssrc {
            self.restart(ssrc, seq);
            self.remember(seq as i64, ns, gap_ok);
            return (Arrival::New, None);
        }
        let delta = seq.wrapping_sub(self.max as u16) as i16 as i64;
        let ext = self.max + delta;
        if !(-MAX_JUMP..=MAX_JUMP).contains(&delta) {
            self.resyncs += 1;
            self.restart(ssrc, seq);
            self.remember(seq as i64, ns, gap_ok);
            return (Arrival::New, None);
        }
        if ext > self.max {
            let shift = ext - self.max;
            self.window = if shift >= WINDOW {
                0
            } else {
                self.window << shift
            };
            self.window |= 1;
            self.max = ext;
        } else {
            let back = self.max - ext;
            if back >= WINDOW {
                self.late += 1;
                return (Arrival::Late, None);
            }
            let bit = 1u64 << back;
            if self.window & bit != 0 {
                self.duplicates += 1;
                return (Arrival::Duplicate, None);
            }
            self.window |= bit;
            self.base = self.base.min(ext);
        }
        self.unique += 1;
        let gap = (gap_ok
            && self.last_counts_for_gap
            && ext == self.last_ext + 1
            && ns != 0
            && self.last_ns != 0
            && ns >= self.last_ns)
            .then(|| ns - self.last_ns);
        self.remember(ext, ns, gap_ok);
        (Arrival::New, gap)
    }

    fn remember(&mut self, ext: i64, ns: u64, gap_ok: bool) {
        self.last_ext = ext;
        self.last_ns = ns;
        self.last_counts_for_gap = gap_ok;
    }

    fn restart(&mut self, ssrc: u32, seq: u16) {
        if self.started {
            self.folded_expected += self.current_expected();
            self.folded_unique += self.unique;
        }
        self.started = true;
        self.ssrc = ssrc;
        self.base = seq as i64;
        self.max = seq as i64;
        self.window = 1;
        self.unique = 1;
    }

    fn current_expected(&self) -> u64 {
        if self.started {
            (self.max - self.base + 1) as u64
        } else {
            0
        }
    }

    pub(crate) fn expected(&self) -> u64 {
        self.folded_expected + self.current_expected()
    }

    /// Distinct packets received (duplicates and late packets not included).
    pub(crate) fn received(&self) -> u64 {
        self.folded_unique + self.unique
    }

    #[cfg(test)]
    pub(crate) fn lost(&self) -> u64 {
        self.expected().saturating_sub(self.received())
    }

    pub(crate) fn duplicates(&self) -> u64 {
        self.duplicates
    }

    pub(crate) fn late(&self) -> u64 {
        self.late
    }

    pub(crate) fn resyncs(&self) -> u64 {
        self.resyncs
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn feed(t: &mut RxTracker, seqs: &[u16]) -> Vec<Arrival> {
        seqs.iter().map(|&s| t.on_packet(7, s, 0, true).0).collect()
    }

    #[test]
    fn in_order_no_loss() {
        let mut t = RxTracker::default();
        feed(&mut t, &(100..200).collect::<Vec<_>>());
        assert_eq!((t.expected(), t.received(), t.lost()), (100, 100, 0));
    }

    #[test]
    fn gaps_count_as_loss() {
        let mut t = RxTracker::default();
        feed(&mut t, &[1, 2, 5, 6, 10]);
        assert_eq!(t.expected(), 10);
        assert_eq!(t.received(), 5);
        assert_eq!(t.lost(), 5);
    }

    #[test]
    fn wraparound_is_continuous() {
        let mut t = RxTracker::default();
        let seqs: Vec<u16> = (65530..=65535).chain(0..6).collect();
        feed(&mut t, &seqs);
        assert_eq!((t.expected(), t.received(), t.lost()), (12, 12, 0));
        let mut t = RxTracker::default();
        feed(&mut t, &[65533, 65534, 65535, 1, 2]);
        assert_eq!(t.lost(), 1, "sequence 0 is missing across the wrap");
        assert_eq!(t.expected(), 5 + 1);
        // Several wraps in a row.
        let mut t = RxTracker::default();
        let mut s = 60_000u16;
        for _ in 0..200_000 {
            t.on_packet(7, s, 0, true);
            s = s.wrapping_add(1);
        }
        assert_eq!((t.expected(), t.lost()), (200_000, 0));
    }

    #[test]
    fn reorder_and_duplicates_tolerated() {
        let mut t = RxTracker::default();
        let kinds = feed(&mut t, &[10, 12, 11, 13, 13, 12, 14]);
        assert_eq!(kinds[2], Arrival::New, "late 11 fills its hole");
        assert_eq!(kinds[4], Arrival::Duplicate);
        assert_eq!(kinds[5], Arrival::Duplicate);
        assert_eq!(
            (t.expected(), t.received(), t.lost(), t.duplicates()),
            (5, 5, 0, 2)
        );
        // Reordering around the wrap.
        let mut t = RxTracker::default();
        feed(&mut t, &[65534, 0, 65535, 1]);
        assert_eq!((t.expected(), t.lost(), t.duplicates()), (4, 0, 0));
        // A packet from before the first one extends the stream backwards.
        let mut t = RxTracker::default();
        feed(&mut t, &[5, 4, 6]);
        assert_eq!((t.expected(), t.lost()), (3, 0));
    }

    #[test]
    fn very_late_packets_stay_lost() {
        let mut t = RxTracker::default();
        let mut seqs: Vec<u16> = (0..100).filter(|&s| s != 3).collect();
        seqs.push(3);
        let kinds = feed(&mut t, &seqs);
        assert_eq!(*kinds.last().unwrap(), Arrival::Late);
        assert_eq!((t.lost(), t.late()), (1, 1));
    }

    #[test]
    fn new_ssrc_or_huge_jump_restarts() {
        let mut t = RxTracker::default();
        feed(&mut t, &[1, 2, 3]);
        t.on_packet(8, 40_000, 0, true);
        t.on_packet(8, 40_001, 0, true);
        assert_eq!((t.expected(), t.received(), t.lost()), (5, 5, 0));
        t.on_packet(8, 50_000, 0, true);
        assert_eq!((t.expected(), t.lost(), t.resyncs()), (6, 0, 1));
    }

    #[test]
    fn gap_only_between_consecutive_arrivals() {
        let mut t = RxTracker::default();
        let ms = 1_000_000u64;
        assert_eq!(t.on_packet(1, 10, 100 * ms, true).1, None, "first packet");
        assert_eq!(t.on_packet(1, 11, 120 * ms, true).1, Some(20 * ms));
        assert_eq!(t.on_packet(1, 13, 160 * ms, true).1, None, "12 missing");
        assert_eq!(t.on_packet(1, 12, 161 * ms, true).1, None, "out of order");
        assert_eq!(
            t.on_packet(1, 14, 180 * ms, true).1,
            None,
            "previous arrival was 12, not 13"
        );
        assert_eq!(
            t.on_packet(1, 15, 200 * ms, false).1,
            None,
            "marker or event packet"
        );
        assert_eq!(
            t.on_packet(1, 16, 220 * ms, true).1,
            None,
            "previous was not audio"
        );
        assert_eq!(t.on_packet(1, 17, 241 * ms, true).1, Some(21 * ms));
        assert_eq!(t.on_packet(1, 18, 0, true).1, None, "no kernel timestamp");
    }
}
