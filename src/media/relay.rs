//! The frames on their way from one leg of a bridged call to the other: a few 20 ms frames of
//! linear audio, so a burst of packets from one side is spread over the other side's ticks
//! instead of being lost or sent in a burst. Allocated once when the bridge starts.

use super::SAMPLES_PER_FRAME;

/// Four frames (80 ms): enough for ordinary jitter; more would only add delay.
const DEPTH: usize = 4;

pub struct RelayBuffer {
    frames: [[i16; SAMPLES_PER_FRAME]; DEPTH],
    head: usize,
    len: usize,
}

impl Default for RelayBuffer {
    fn default() -> Self {
        RelayBuffer {
            frames: [[0; SAMPLES_PER_FRAME]; DEPTH],
            head: 0,
            len: 0,
        }
    }
}

impl RelayBuffer {
    /// Add a frame (shorter ones are padded with silence); when full, the oldest goes, so the
    /// delay never grows past the buffer's depth.
    pub fn push(&mut self, pcm: &[i16]) {
        if self.len == DEPTH {
            self.head = (self.head + 1) % DEPTH;
            self.len -= 1;
        }
        let slot = &mut self.frames[(self.head + self.len) % DEPTH];
        let n = pcm.len().min(SAMPLES_PER_FRAME);
        slot[..n].copy_from_slice(&pcm[..n]);
        slot[n..].fill(0);
        self.len += 1;
    }

    /// The oldest frame, if any.
    pub fn pop(&mut self) -> Option<&[i16; SAMPLES_PER_FRAME]> {
        if self.len == 0 {
            return None;
        }
        let at = self.head;
        self.head = (self.head + 1) % DEPTH;
        self.len -= 1;
        Some(&self.frames[at])
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(v: i16) -> [i16; SAMPLES_PER_FRAME] {
        [v; SAMPLES_PER_FRAME]
    }

    #[test]
    fn frames_come_out_in_order() {
        let mut r = RelayBuffer::default();
        r.push(&frame(1));
        r.push(&frame(2));
        assert_eq!(r.pop().unwrap()[0], 1);
        assert_eq!(r.pop().unwrap()[0], 2);
        assert!(r.pop().is_none());
    }

    #[test]
    fn a_burst_drops_the_oldest_and_keeps_the_delay_bounded() {
        let mut r = RelayBuffer::default();
        for v in 1..=6 {
            r.push(&frame(v));
        }
        assert_eq!(r.len(), DEPTH);
        assert_eq!(r.pop().unwrap()[0], 3);
    }

    #[test]
    fn short_frames_are_padded_with_silence() {
        let mut r = RelayBuffer::default();
        r.push(&frame(9));
        r.pop();
        r.push(&[5; 80]);
        let f = r.pop().unwrap();
        assert_eq!((f[79], f[80]), (5, 0));
    }
}
