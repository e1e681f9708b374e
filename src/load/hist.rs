//! Fixed-bucket histograms: recording is a division and an increment, so the receive path
//! never allocates, and percentiles come from walking the buckets once at the end.

use std::time::Duration;

#[derive(Debug, Clone)]
pub(crate) struct Histogram {
    width_ns: u64,
    buckets: Box<[u64]>,
    overflow: u64,
    count: u64,
    max_ns: u64,
}

impl Histogram {
    pub(crate) fn new(width: Duration, buckets: usize) -> Self {
        let width_ns = (width.as_nanos() as u64).max(1);
        Histogram {
            width_ns,
            buckets: vec![0; buckets.max(1)].into_boxed_slice(),
            overflow: 0,
            count: 0,
            max_ns: 0,
        }
    }

    /// Gap deviations: 1 µs resolution up to 100 ms.
    pub(crate) fn for_gaps() -> Self {
        Histogram::new(Duration::from_micros(1), 100_000)
    }

    /// Setup latency: 100 µs resolution up to 10 s (INVITE retransmissions land in range).
    pub(crate) fn for_setup() -> Self {
        Histogram::new(Duration::from_micros(100), 100_000)
    }

    /// Time from INVITE to the first echoed frame (queueing, ringing, answer delay): 1 ms
    /// resolution up to 10 minutes.
    pub(crate) fn for_bridge() -> Self {
        Histogram::new(Duration::from_millis(1), 600_000)
    }

    #[inline]
    pub(crate) fn record_ns(&mut self, ns: u64) {
        match self.buckets.get_mut((ns / self.width_ns) as usize) {
            Some(b) => *b += 1,
            None => self.overflow += 1,
        }
        self.count += 1;
        self.max_ns = self.max_ns.max(ns);
    }

    pub(crate) fn record(&mut self, d: Duration) {
        self.record_ns(d.as_nanos().min(u64::MAX as u128) as u64);
    }

    pub(crate) fn count(&self) -> u64 {
        self.count
    }

    pub(crate) fn max_ns(&self) -> Option<u64> {
        (self.count > 0).then_some(self.max_ns)
    }

    /// Nearest-rank quantile, reported as the upper edge of its bucket (never above the
    /// maximum seen), so the figure errs on the pessimistic side by at most one bucket.
    /// A rank that falls in the overflow gives the maximum.
    pub(crate) fn quantile_ns(&self, q: f64) -> Option<u64> {
        if self.count == 0 {
            return None;
        }
        let rank = ((q.clamp(0.0, 1.0) * self.count as f64).ceil() as u64).clamp(1, self.count);
        let mut seen = 0u64;
        for (i, &b) in self.buckets.iter().enumerate() {
            seen += b;
            if seen >= rank {
                return Some(((i as u64 + 1) * self.width_ns).min(self.max_ns));
            }
        }
        Some(self.max_ns)
    }

    pub(crate) fn quantile_ms(&self, q: f64) -> Option<f64> {
        self.quantile_ns(q).map(ns_to_ms)
    }

    pub(crate) fn max_ms(&self) -> Option<f64> {
        self.max_ns().map(ns_to_ms)
    }
}

pub(crate) fn ns_to_ms(ns: u64) -> f64 {
    ns as f64 / 1e6
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_has_no_percentiles() {
        let h = Histogram::for_gaps();
        assert_eq!(h.quantile_ns(0.5), None);
        assert_eq!(h.max_ns(), None);
        assert_eq!(h.count(), 0);
    }

    #[test]
    fn percentiles_are_bucket_upper_edges() {
        let mut h = Histogram::new(Duration::from_micros(1), 1000);
        // 1..=100 µs, each once, recorded in the middle of its bucket.
        for us in 1..=100u64 {
            h.record_ns(us * 1000 + 500);
        }
        assert_eq!(h.count(), 100);
        assert_eq!(h.quantile_ns(0.5), Some(51_000));
        assert_eq!(h.quantile_ns(0.99), Some(100_000));
        assert_eq!(h.quantile_ns(1.0), Some(100_500), "never above the maximum");
        assert_eq!(
            h.quantile_ns(0.0),
            Some(2_000),
            "rank 1 is the smallest sample"
        );
        assert_eq!(h.max_ns(), Some(100_500));
    }

    #[test]
    fn skewed_distribution() {
        let mut h = Histogram::for_gaps();
        for _ in 0..990 {
            h.record(Duration::from_micros(10));
        }
        for _ in 0..10 {
            h.record(Duration::from_millis(5));
        }
        assert_eq!(h.quantile_ns(0.5), Some(11_000));
        assert_eq!(
            h.quantile_ns(0.99),
            Some(11_000),
            "990 of 1000 are at 10 µs"
        );
        assert_eq!(h.quantile_ns(0.995), Some(5_000_000));
        assert_eq!(h.max_ms(), Some(5.0));
    }

    #[test]
    fn overflow_reports_the_maximum() {
        let mut h = Histogram::new(Duration::from_micros(1), 100);
        h.record(Duration::from_micros(5));
        h.record(Duration::from_millis(3));
        h.record(Duration::from_millis(7));
        assert_eq!(h.quantile_ns(0.33), Some(6_000));
        assert_eq!(h.quantile_ns(0.5), Some(7_000_000));
        assert_eq!(h.quantile_ns(0.99), Some(7_000_000));
    }
}
