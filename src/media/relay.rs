//! Linear audio on its way between two packet sizes: a fixed ring of samples, so a leg that
//! sends 30 ms packets can be re-packetized into its partner's 20 ms (or the reverse), and a
//! stereo recording can line both sides up per 20 ms tick. Allocated once when it is set up;
//! pushing and popping never allocate.

/// 128 ms of 8 kHz audio: three times the longest packet we re-packetize (40 ms) and more than
/// ordinary jitter; what does not fit pushes the oldest samples out, so the delay stays bounded.
/// A power of two, so positions wrap with a mask.
pub const FIFO_SAMPLES: usize = 1024;
const MASK: usize = FIFO_SAMPLES - 1;

pub struct PcmFifo {
    buf: [i16; FIFO_SAMPLES],
    head: usize,
    len: usize,
}

impl Default for PcmFifo {
    fn default() -> Self {
        PcmFifo {
            buf: [0; FIFO_SAMPLES],
            head: 0,
            len: 0,
        }
    }
}

impl PcmFifo {
    /// Append samples (any count); when full, the oldest go.
    pub fn push(&mut self, pcm: &[i16]) {
        let pcm = &pcm[pcm.len().saturating_sub(FIFO_SAMPLES)..];
        let over = (self.len + pcm.len()).saturating_sub(FIFO_SAMPLES);
        self.head = (self.head + over) & MASK;
        self.len -= over;
        let at = (self.head + self.len) & MASK;
        let first = pcm.len().min(FIFO_SAMPLES - at);
        self.buf[at..at + first].copy_from_slice(&pcm[..first]);
        self.buf[..pcm.len() - first].copy_from_slice(&pcm[first..]);
        self.len += pcm.len();
    }

    /// Take exactly `out.len()` samples if that many wait; else take nothing.
    pub fn pop_exact(&mut self, out: &mut [i16]) -> bool {
        if self.len < out.len() {
            return false;
        }
        self.pop_padded(out);
        true
    }

    /// Take up to `out.len()` samples, silence for the rest; returns how many were real.
    pub fn pop_padded(&mut self, out: &mut [i16]) -> usize {
        let n = out.len().min(self.len);
        let first = n.min(FIFO_SAMPLES - self.head);
        out[..first].copy_from_slice(&self.buf[self.head..self.head + first]);
        out[first..n].copy_from_slice(&self.buf[..n - first]);
        out[n..].fill(0);
        self.head = (self.head + n) & MASK;
        self.len -= n;
        n
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn clear(&mut self) {
        self.len = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn samples_come_out_in_order_across_packet_sizes() {
        let mut f = PcmFifo::default();
        let a: Vec<i16> = (0..240).collect();
        f.push(&a);
        let mut out = [0i16; 160];
        assert!(f.pop_exact(&mut out));
        assert_eq!((out[0], out[159]), (0, 159));
        assert!(!f.pop_exact(&mut out), "80 left: not a whole packet");
        f.push(&(240..480).collect::<Vec<i16>>());
        assert!(f.pop_exact(&mut out));
        assert_eq!((out[0], out[159]), (160, 319));
        assert_eq!(f.len(), 160);
    }

    #[test]
    fn a_burst_drops_the_oldest_and_keeps_the_delay_bounded() {
        let mut f = PcmFifo::default();
        for v in 0..10 {
            f.push(&[v; 160]);
        }
        assert_eq!(f.len(), FIFO_SAMPLES);
        let mut out = [0i16; 160];
        f.pop_exact(&mut out);
        assert_eq!(
            (out[0], out[63], out[64]),
            (3, 3, 4),
            "1600 in, the oldest 576 gone"
        );
        // Wrapping around the end of the ring keeps the order.
        let mut g = PcmFifo::default();
        let mut next = 0i16;
        let mut want = 0i16;
        for _ in 0..40 {
            let chunk: Vec<i16> = (next..next + 240).collect();
            next += 240;
            g.push(&chunk);
            while g.pop_exact(&mut out) {
                assert!(out.iter().all(|s| {
                    let ok = *s == want;
                    want += 1;
                    ok
                }));
            }
        }
    }

    #[test]
    fn padding_fills_with_silence() {
        let mut f = PcmFifo::default();
        f.push(&[5; 80]);
        let mut out = [9i16; 160];
        assert_eq!(f.pop_padded(&mut out), 80);
        assert_eq!((out[79], out[80]), (5, 0));
        assert!(f.is_empty());
    }
}
