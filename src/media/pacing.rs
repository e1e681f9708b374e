//! The pacing clock of the media thread: absolute 20 ms deadlines counted from one start
//! instant, so sleeping never accumulates drift, and a stall skips ticks instead of bursting.

use std::time::{Duration, Instant};

pub const TICK: Duration = Duration::from_millis(20);

#[derive(Debug, Clone, Copy)]
pub struct Pacer {
    start: Instant,
    tick: u64,
}

impl Pacer {
    pub fn new(start: Instant) -> Pacer {
        Pacer { start, tick: 0 }
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
            self.tick = (elapsed.as_nanos() / TICK.as_nanos()) as u64 + 1;
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
    }
}
