//! The pacing clock of the media thread: absolute 20 ms deadlines counted from one start
//! instant, so sleeping never accumulates drift, and a stall skips ticks instead of bursting.

use std::time::{Duration, Instant};

pub const TICK: Duration = Duration::from_millis(20);
/// A tick whose sends begin more than this after its deadline is late: every stream on the
/// thread sent that much later than its rhythm (the listener's jitter buffer absorbs a
/// little; this is the part to watch).
pub const LATE: Duration = Duration::from_millis(5);

#[derive(Debug, Clone, Copy)]
pub struct Pacer {
    start: Instant,
    tick: u64,
    late: u64,
    skipped: u64,
}

impl Pacer {
    pub fn new(start: Instant) -> Pacer {
        Pacer {
            start,
            tick: 0,
            late: 0,
            skipped: 0,
        }
    }

    /// The current tick begins at `now`: counted late when `now` is past its deadline by
    /// more than `LATE`.
    pub fn begin(&mut self, now: Instant) {
        if now > self.at(self.tick) + LATE {
            self.late += 1;
        }
    }

    /// Ticks begun late, and ticks skipped after a stall, so far.
    pub fn late_and_skipped(&self) -> (u64, u64) {
        (self.late, self.skipped)
    }

    /// Ticks begun so far (the first is 0).
    pub fn tick(&self) -> u64 {
        self.tick
    }

    /// Finish the current tick: the deadline to sleep until before the next one. If `now` is
    /// more than a whole tick past that deadline, the missed ticks are skipped: sending them
    /// late in a burst would only turn lateness into jitter for the listener.
    pub fn next_deadline(&mut self, now: Instant) -> Instant {
        self.tick += 1;
        let deadline = self.at(self.tick);
        if now > deadline + TICK {
            let elapsed = now.saturating_duration_since(self.start);
            let next = (elapsed.as_nanos() / TICK.as_nanos()) as u64 + 1;
            self.skipped += next - self.tick;
            self.tick = next;
            return self.at(self.tick);
        }
        deadline
    }

    fn at(&self, tick: u64) -> Instant {
        self.start + Duration::from_nanos(tick * TICK.as_nanos() as u64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deadlines_are_absolute_and_do_not_drift() {
        let t0 = Instant::now();
        let mut p = Pacer::new(t0);
        // Waking 3 ms late every time does not push later deadlines back.
        let mut now = t0;
        for n in 1..=1000u64 {
            let d = p.next_deadline(now);
            assert_eq!(d, t0 + TICK * n as u32);
            now = d + Duration::from_millis(3);
        }
    }

    #[test]
    fn a_short_stall_catches_up_without_skipping() {
        let t0 = Instant::now();
        let mut p = Pacer::new(t0);
        let d = p.next_deadline(t0 + Duration::from_millis(35));
        assert_eq!(
            d,
            t0 + TICK,
            "15 ms behind: run the next tick at once, no skip"
        );
        assert_eq!(p.tick(), 1);
    }

    #[test]
    fn a_long_stall_skips_ticks() {
        let t0 = Instant::now();
        let mut p = Pacer::new(t0);
        let d = p.next_deadline(t0 + Duration::from_millis(107));
        assert_eq!(p.tick(), 6);
        assert_eq!(d, t0 + Duration::from_millis(120));
        assert_eq!(p.late_and_skipped(), (0, 5), "ticks 1 to 5 never ran");
    }

    #[test]
    fn ticks_that_begin_over_five_ms_late_are_counted() {
        let t0 = Instant::now();
        let mut p = Pacer::new(t0);
        p.begin(t0 + Duration::from_millis(1));
        let d = p.next_deadline(t0 + Duration::from_millis(2));
        p.begin(d + Duration::from_millis(4));
        assert_eq!(p.late_and_skipped(), (0, 0), "within 5 ms is on time");
        let d = p.next_deadline(d + Duration::from_millis(5));
        p.begin(d + Duration::from_millis(6));
        assert_eq!(p.late_and_skipped(), (1, 0));
    }
}
