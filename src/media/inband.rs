//! In-band DTMF detection (Goertzel filters over 8 kHz linear audio), for calls where the peer
//! did not negotiate telephone-event and sends key presses as tones inside the audio.
//!
//! The audio is cut into fixed blocks. Each block is judged on its own ("does this look like
//! exactly one DTMF key?"), and a key press is reported once two consecutive blocks agree, which
//! is what keeps speech and noise from producing digits.

use super::SAMPLE_RATE;

/// 102 samples (12.75 ms) per block.
///
/// - Frequency resolution is fs/N = 78 Hz, which is about the spacing of neighbouring DTMF
///   frequencies (73-156 Hz): each filter's first null lands near its neighbours, so adjacent
///   tones are told apart, while the main lobe stays wide enough to accept the ±1.5 % frequency
///   error that senders are allowed.
/// - Two blocks (25.5 ms) are needed to confirm a key. A tone of 40 ms, the shortest a receiver
///   must accept, covers two whole blocks at any alignment (3 × 102 − 1 samples = 38 ms), and a
///   tone of 20 ms never can. The classic 205-sample block would need up to 77 ms of tone.
///   Because the blocks at a tone's edges only count when nearly full (see `MIN_STEADINESS`),
///   every alignment confirms from about 35 ms and none below about 22 ms.
const BLOCK: usize = 102;

const ROWS: [f32; 4] = [697.0, 770.0, 852.0, 941.0];
const COLS: [f32; 4] = [1209.0, 1336.0, 1477.0, 1633.0];
const KEYS: [[char; 4]; 4] = [
    ['1', '2', '3', 'A'],
    ['4', '5', '6', 'B'],
    ['7', '8', '9', 'C'],
    ['*', '0', '#', 'D'],
];

/// Power (mean square, full scale = 1.0) of a 0 dBm0 sine: peak 22 600 of 32 768 in G.711's
/// 16-bit reconstruction (the digital milliwatt).
const DBM0_POWER: f32 = 0.2378;
/// Each tone must be at least -33 dBm0: below the -25 dBm0 that a receiver must accept with
/// margin for line loss, and well above idle-channel noise.
const MIN_TONE_POWER: f32 = DBM0_POWER * 5.0e-4;
/// The high-group tone may be up to 8 dB louder than the low one ("normal" twist, which senders
/// use to pre-compensate line loss), but at most 4 dB quieter ("reverse" twist).
const NORMAL_TWIST: f32 = 6.31;
const REVERSE_TWIST: f32 = 2.51;
/// The runner-up in each group must be this far (8 dB) below the winner, or the block holds
/// more than one key's worth of tones (chords, music, a key change mid-block).
const GROUP_MARGIN: f32 = 6.31;
/// The two tones must carry this share of the block's energy. This is what rejects speech,
/// which spreads its energy over many harmonics, and noise.
const MIN_TONE_SHARE: f32 = 0.75;
/// Once a key is confirmed, a block only has to show the same two tones as the strongest ones
/// with this share of the energy to keep it held. Without this hysteresis, speech or noise over
/// a long tone can spoil two blocks in a row and split one press into two.
const HOLD_SHARE: f32 = 0.3;
/// Every quarter of the block must hold at least this fraction of the loudest quarter's mean
/// power, so that only blocks (nearly) filled by a steady signal count: a tone must cover about
/// 85 % of a block for it to pass, which is what makes a 20 ms burst too short to confirm
/// at any alignment. Quarters are long enough (≥ 0.85 of a period of the slowest beat between a
/// row and a column tone, 268 Hz) that the beating of the pair itself moves each quarter by at
/// most about ±17 %.
const MIN_STEADINESS: f32 = 0.4;

/// How many of a block's samples fall in each quarter (26, 25, 26, 25).
const QUARTER_LEN: [usize; 4] = {
    let mut len = [0; 4];
    let mut n = 0;
    while n < BLOCK {
        len[n * 4 / BLOCK] += 1;
        n += 1;
    }
    len
};

/// How many digits [`DtmfDetector::process`] can hold when one call completes more of them than
/// it can return. Each digit needs at least two blocks, so this covers 3 264 samples per call.
const QUEUE: usize = 16;

/// A streaming DTMF detector. Feed it consecutive audio of one call; the state is a few hundred
/// bytes and nothing is allocated after construction.
#[derive(Debug, Clone)]
pub struct DtmfDetector {
    /// Goertzel coefficients 2cos(2πf/fs), rows then columns.
    coeff: [f32; 8],
    s1: [f32; 8],
    s2: [f32; 8],
    /// Sum of squares in each quarter of the block so far.
    energy: [f32; 4],
    filled: usize,
    /// The previous block's verdict, as a key index 0..16.
    previous: Option<u8>,
    /// The confirmed state: the key being held, or `None` between presses.
    held: Option<u8>,
    queue: [char; QUEUE],
    queue_start: usize,
    queue_len: usize,
}

impl Default for DtmfDetector {
    fn default() -> Self {
        Self::new()
    }
}

impl DtmfDetector {
    pub fn new() -> Self {
        let mut coeff = [0.0; 8];
        for (c, f) in coeff.iter_mut().zip(ROWS.iter().chain(COLS.iter())) {
            *c = 2.0 * (std::f32::consts::TAU * f / SAMPLE_RATE as f32).cos();
        }
        DtmfDetector {
            coeff,
            s1: [0.0; 8],
            s2: [0.0; 8],
            energy: [0.0; 4],
            filled: 0,
            previous: None,
            held: None,
            queue: ['\0'; QUEUE],
            queue_start: 0,
            queue_len: 0,
        }
    }

    /// Feeds the next stretch of audio (any length; normally one 20 ms frame) and returns a key
    /// whose press was confirmed. If one call confirms several keys (only possible with slices
    /// much longer than a frame) the rest come out of later calls or [`DtmfDetector::next_digit`].
    pub fn process(&mut self, samples: &[i16]) -> Option<char> {
        self.feed(samples, |d, c| d.push(c));
        self.next_digit()
    }

    /// Feeds audio and hands every confirmed key to `on_digit` as it is found; for callers
    /// with long buffers that would rather not go through the queue.
    pub fn process_each(&mut self, samples: &[i16], mut on_digit: impl FnMut(char)) {
        self.feed(samples, |_, c| on_digit(c));
    }

    /// A key confirmed earlier but not yet returned by [`DtmfDetector::process`].
    pub fn next_digit(&mut self) -> Option<char> {
        if self.queue_len == 0 {
            return None;
        }
        let c = self.queue[self.queue_start];
        self.queue_start = (self.queue_start + 1) % QUEUE;
        self.queue_len -= 1;
        Some(c)
    }

    /// Forgets everything, as for a new call.
    pub fn reset(&mut self) {
        *self = Self::new();
    }

    fn push(&mut self, c: char) {
        // On overflow the newest key is dropped; the caller is not draining, and the keys it
        // has not read yet are the ones a menu expects first.
        if self.queue_len < QUEUE {
            self.queue[(self.queue_start + self.queue_len) % QUEUE] = c;
            self.queue_len += 1;
        }
    }

    fn feed(&mut self, samples: &[i16], mut on_digit: impl FnMut(&mut Self, char)) {
        for &s in samples {
            let x = f32::from(s) / 32768.0;
            self.energy[self.filled * 4 / BLOCK] += x * x;
            for k in 0..8 {
                let s0 = self.coeff[k] * self.s1[k] - self.s2[k] + x;
                self.s2[k] = self.s1[k];
                self.s1[k] = s0;
            }
            self.filled += 1;
            if self.filled == BLOCK {
                let verdict = self.classify_block();
                self.s1 = [0.0; 8];
                self.s2 = [0.0; 8];
                self.energy = [0.0; 4];
                self.filled = 0;
                if let Some(c) = self.confirm(verdict) {
                    on_digit(self, c);
                }
            }
        }
    }

    /// Debounces block verdicts: the held state only changes when two blocks in a row agree
    /// on something else. A single odd block inside a long tone therefore neither ends the
    /// press nor starts a new one, and a key is only re-reported after two blocks without it.
    fn confirm(&mut self, verdict: Option<u8>) -> Option<char> {
        let agreed = verdict == self.previous;
        self.previous = verdict;
        if !agreed || verdict == self.held {
            return None;
        }
        self.held = verdict;
        verdict.map(|k| KEYS[usize::from(k / 4)][usize::from(k % 4)])
    }

    /// Which key, if any, this block is a clean instance of.
    fn classify_block(&self) -> Option<u8> {
        let mut power = [0.0f32; 8];
        for (k, p) in power.iter_mut().enumerate() {
            let (s1, s2) = (self.s1[k], self.s2[k]);
            let mag2 = s1 * s1 + s2 * s2 - self.coeff[k] * s1 * s2;
            // A sine of amplitude A gives |X| = A·N/2; report its mean square A²/2.
            *p = 2.0 * mag2 / (BLOCK * BLOCK) as f32;
        }
        let (row, row_power) = strongest(&power[..4])?;
        let (col, col_power) = strongest(&power[4..])?;

        if row_power < MIN_TONE_POWER || col_power < MIN_TONE_POWER {
            return None;
        }
        let key = (row * 4 + col) as u8;
        let mean_square = self.energy.iter().sum::<f32>() / BLOCK as f32;
        if self.held == Some(key) && row_power + col_power >= HOLD_SHARE * mean_square {
            return Some(key);
        }

        if col_power > row_power * NORMAL_TWIST || row_power > col_power * REVERSE_TWIST {
            return None;
        }
        for (k, p) in power.iter().enumerate() {
            let (winner, winner_power) = if k < 4 {
                (row, row_power)
            } else {
                (col + 4, col_power)
            };
            if k != winner && p * GROUP_MARGIN > winner_power {
                return None;
            }
        }
        if row_power + col_power < MIN_TONE_SHARE * mean_square {
            return None;
        }
        let mut quietest = f32::INFINITY;
        let mut loudest = 0.0f32;
        for (e, len) in self.energy.iter().zip(QUARTER_LEN) {
            let mean = e / len as f32;
            quietest = quietest.min(mean);
            loudest = loudest.max(mean);
        }
        if quietest < MIN_STEADINESS * loudest {
            return None;
        }
        Some(key)
    }
}

fn strongest(powers: &[f32]) -> Option<(usize, f32)> {
    powers
        .iter()
        .copied()
        .enumerate()
        .max_by(|a, b| a.1.total_cmp(&b.1))
}

/// The low and high frequencies of a key, or `None` for anything that is not a DTMF key.
pub fn frequencies(digit: char) -> Option<(f32, f32)> {
    let upper = digit.to_ascii_uppercase();
    KEYS.iter().enumerate().find_map(|(r, row)| {
        row.iter()
            .position(|&k| k == upper)
            .map(|c| (ROWS[r], COLS[c]))
    })
}

/// A DTMF tone pair at 8 kHz. `amplitude` is the peak of the sum, so each tone gets half and
/// nothing clips. A character that is not a key yields silence of the same length, which keeps
/// the timing of a generated sequence intact.
pub fn generate(digit: char, duration_samples: usize, amplitude: i16) -> Vec<i16> {
    let Some((low, high)) = frequencies(digit) else {
        return vec![0; duration_samples];
    };
    let half = f64::from(amplitude.unsigned_abs().min(i16::MAX as u16)) / 2.0;
    let w_low = std::f64::consts::TAU * f64::from(low) / f64::from(SAMPLE_RATE);
    let w_high = std::f64::consts::TAU * f64::from(high) / f64::from(SAMPLE_RATE);
    (0..duration_samples)
        .map(|n| {
            let n = n as f64;
            (half * ((w_low * n).sin() + (w_high * n).sin())).round() as i16
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::super::Codec;
    use super::*;

    const ALL_KEYS: &str = "123A456B789C*0#D";

    fn silence(n: usize) -> Vec<i16> {
        vec![0; n]
    }

    /// Deterministic noise so that failures reproduce.
    struct Lcg(u64);
    impl Lcg {
        fn uniform(&mut self) -> f64 {
            self.0 = self
                .0
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (self.0 >> 11) as f64 / (1u64 << 53) as f64 * 2.0 - 1.0
        }
        /// Roughly Gaussian with unit variance (sum of 12 uniforms on [-1, 1] has variance 4).
        fn gaussian(&mut self) -> f64 {
            (0..12).map(|_| self.uniform()).sum::<f64>() / 2.0
        }
    }

    fn add_noise(samples: &mut [i16], rms: f64, seed: u64) {
        let mut rng = Lcg(seed);
        for s in samples {
            *s = (f64::from(*s) + rms * rng.gaussian()).clamp(-32768.0, 32767.0) as i16;
        }
    }

    /// Runs audio through a detector in 20 ms frames, as the media task does.
    fn detect(audio: &[i16]) -> String {
        let mut d = DtmfDetector::new();
        let mut out = String::new();
        for frame in audio.chunks(160) {
            out.extend(d.process(frame));
        }
        out.extend(std::iter::from_fn(|| d.next_digit()));
        out
    }

    fn sequence(keys: &str, tone: usize, gap: usize, amplitude: i16) -> Vec<i16> {
        let mut audio = silence(gap);
        for k in keys.chars() {
            audio.extend(generate(k, tone, amplitude));
            audio.extend(silence(gap));
        }
        audio
    }

    #[test]
    fn every_key_once() {
        let audio = sequence(ALL_KEYS, 640, 480, 16000);
        assert_eq!(detect(&audio), ALL_KEYS);
    }

    #[test]
    fn every_key_at_a_quiet_level() {
        // About -28 dBm0 per tone.
        let audio = sequence(ALL_KEYS, 640, 480, 1800);
        assert_eq!(detect(&audio), ALL_KEYS);
    }

    #[test]
    fn every_key_with_noise() {
        let mut audio = sequence(ALL_KEYS, 640, 480, 12000);
        // Each tone has RMS 6000/√2 ≈ 4240; noise at 1000 RMS is about 15 dB down.
        add_noise(&mut audio, 1000.0, 7);
        assert_eq!(detect(&audio), ALL_KEYS);
    }

    #[test]
    fn every_key_through_g711() {
        for codec in [Codec::Pcmu, Codec::Pcma] {
            let mut audio = sequence(ALL_KEYS, 640, 480, 10000);
            add_noise(&mut audio, 300.0, 11);
            for s in &mut audio {
                *s = codec.decode(codec.encode(*s));
            }
            assert_eq!(detect(&audio), ALL_KEYS, "{codec:?}");
        }
    }

    #[test]
    fn works_with_any_slice_length() {
        let audio = sequence("159#", 640, 480, 16000);
        for chunk in [1, 7, 80, 101, 102, 103, 160, 333] {
            let mut d = DtmfDetector::new();
            let mut got = String::new();
            for frame in audio.chunks(chunk) {
                got.extend(d.process(frame));
            }
            got.extend(std::iter::from_fn(|| d.next_digit()));
            assert_eq!(got, "159#", "chunks of {chunk}");
        }
        // One call with everything: the extra keys wait in the queue.
        let mut d = DtmfDetector::new();
        assert_eq!(d.process(&audio), Some('1'));
        assert_eq!(d.process(&[]), Some('5'));
        assert_eq!(d.next_digit(), Some('9'));
        assert_eq!(d.next_digit(), Some('#'));
        assert_eq!(d.next_digit(), None);
        let mut each = String::new();
        DtmfDetector::new().process_each(&audio, |c| each.push(c));
        assert_eq!(each, "159#");
    }

    #[test]
    fn same_key_twice_with_a_gap() {
        let audio = sequence("55", 640, 480, 16000);
        assert_eq!(detect(&audio), "55");
        // A 40 ms pause, the shortest inter-digit gap senders use, is still a gap.
        let audio = sequence("77", 400, 320, 16000);
        assert_eq!(detect(&audio), "77");
    }

    #[test]
    fn key_change_without_a_gap() {
        let mut audio = generate('1', 640, 16000);
        audio.extend(generate('2', 640, 16000));
        assert_eq!(detect(&audio), "12");
    }

    #[test]
    fn long_press_is_one_key() {
        let mut audio = silence(800);
        audio.extend(generate('8', 8000, 16000));
        audio.extend(silence(800));
        assert_eq!(detect(&audio), "8");
        // Also with noise, which makes single blocks flicker.
        add_noise(&mut audio, 2500.0, 3);
        assert_eq!(detect(&audio), "8");
    }

    #[test]
    fn interference_in_the_middle_of_a_press_does_not_split_it() {
        let mut audio = silence(800);
        audio.extend(generate('8', 8000, 12000));
        audio.extend(silence(800));
        // 40 ms of two loud foreign tones spoil three blocks in a row for the strict checks.
        for (n, s) in audio[4000..4320].iter_mut().enumerate() {
            let t = n as f64 / 8000.0;
            let burst = 6000.0
                * ((std::f64::consts::TAU * 440.0 * t).sin()
                    + (std::f64::consts::TAU * 2500.0 * t).sin());
            *s = (f64::from(*s) + burst) as i16;
        }
        assert_eq!(detect(&audio), "8");
    }

    #[test]
    fn forty_ms_is_enough_at_any_alignment() {
        for offset in 0..BLOCK {
            let mut audio = silence(offset);
            audio.extend(generate('6', 320, 16000));
            audio.extend(silence(400));
            assert_eq!(detect(&audio), "6", "offset {offset}");
        }
    }

    #[test]
    fn twenty_ms_is_too_short_at_any_alignment() {
        for offset in 0..BLOCK {
            let mut audio = silence(offset);
            audio.extend(generate('6', 160, 16000));
            audio.extend(silence(400));
            assert_eq!(detect(&audio), "", "offset {offset}");
        }
    }

    #[test]
    fn twist_limits() {
        let tone = |key: char, low_amp: f64, high_amp: f64| -> Vec<i16> {
            let (lo, hi) = frequencies(key).unwrap();
            let mut v = silence(400);
            v.extend((0..640).map(|n| {
                let t = n as f64 / 8000.0;
                (low_amp * (std::f64::consts::TAU * f64::from(lo) * t).sin()
                    + high_amp * (std::f64::consts::TAU * f64::from(hi) * t).sin())
                    as i16
            }));
            v.extend(silence(400));
            v
        };
        let db = |d: f64| 10f64.powf(d / 20.0);
        // High group louder by 6 dB is normal twist, accepted; by 11 dB it is not.
        assert_eq!(detect(&tone('4', 3000.0, 3000.0 * db(6.0))), "4");
        assert_eq!(detect(&tone('4', 2000.0, 2000.0 * db(11.0))), "");
        // Low group louder by 2 dB is accepted; by 7 dB it is not.
        assert_eq!(detect(&tone('4', 6000.0 * db(2.0), 6000.0)), "4");
        assert_eq!(detect(&tone('4', 6000.0 * db(7.0), 6000.0)), "");
    }

    #[test]
    fn off_nominal_frequencies_within_tolerance() {
        for (i, key) in ALL_KEYS.chars().enumerate() {
            let (lo, hi) = frequencies(key).unwrap();
            let skew = if i % 2 == 0 { 1.015 } else { 0.985 };
            let mut audio = silence(400);
            audio.extend((0..640).map(|n| {
                let t = n as f64 / 8000.0;
                (6000.0 * (std::f64::consts::TAU * f64::from(lo) * skew * t).sin()
                    + 6000.0 * (std::f64::consts::TAU * f64::from(hi) * skew * t).sin())
                    as i16
            }));
            audio.extend(silence(400));
            assert_eq!(detect(&audio), key.to_string(), "{key} skewed by {skew}");
        }
    }

    #[test]
    fn too_quiet_is_ignored() {
        // About -45 dBm0 per tone.
        assert_eq!(detect(&sequence("123", 640, 480, 250)), "");
    }

    #[test]
    fn silence_and_noise_give_nothing() {
        assert_eq!(detect(&silence(80_000)), "");
        for (rms, seed) in [(100.0, 1), (3000.0, 2), (12000.0, 3)] {
            let mut noise = silence(80_000);
            add_noise(&mut noise, rms, seed);
            assert_eq!(detect(&noise), "", "noise at {rms} RMS");
        }
    }

    #[test]
    fn single_tones_give_nothing() {
        let sine = |f: f64| -> Vec<i16> {
            (0..16_000)
                .map(|n| (12000.0 * (std::f64::consts::TAU * f * n as f64 / 8000.0).sin()) as i16)
                .collect()
        };
        assert_eq!(detect(&sine(1000.0)), "");
        for f in ROWS.iter().chain(COLS.iter()) {
            assert_eq!(detect(&sine(f64::from(*f))), "", "{f} Hz alone");
        }
    }

    #[test]
    fn chirp_gives_nothing() {
        // 300 Hz to 3400 Hz over two seconds, and back down over one.
        let mut phase = 0.0f64;
        let mut audio = Vec::new();
        for n in 0..24_000 {
            let f = if n < 16_000 {
                300.0 + 3100.0 * n as f64 / 16_000.0
            } else {
                3400.0 - 3100.0 * (n - 16_000) as f64 / 8_000.0
            };
            phase += std::f64::consts::TAU * f / 8000.0;
            audio.push((12000.0 * phase.sin()) as i16);
        }
        assert_eq!(detect(&audio), "");
    }

    #[test]
    fn harmonic_rich_voice_like_signal_gives_nothing() {
        // A buzz with falling harmonics at several pitches, including ones whose harmonics
        // land near DTMF frequencies (f0 = 232 Hz puts harmonics at 696 and 1160 Hz).
        for f0 in [100.0, 120.0, 139.4, 174.25, 232.0, 348.5] {
            let audio: Vec<i16> = (0..16_000)
                .map(|n| {
                    let t = n as f64 / 8000.0;
                    let v: f64 = (1..40)
                        .filter(|h| f64::from(*h) * f0 < 3800.0)
                        .map(|h| {
                            let h = f64::from(h);
                            (std::f64::consts::TAU * h * f0 * t).sin() / h
                        })
                        .sum();
                    (v * 5000.0) as i16
                })
                .collect();
            assert_eq!(detect(&audio), "", "f0 {f0}");
        }
    }

    #[test]
    fn two_keys_at_once_give_nothing() {
        let a = generate('1', 1600, 12000);
        let b = generate('9', 1600, 12000);
        let mixed: Vec<i16> = a.iter().zip(&b).map(|(x, y)| x / 2 + y / 2).collect();
        assert_eq!(detect(&mixed), "");
    }

    #[test]
    fn generate_shapes() {
        assert_eq!(generate('x', 50, 1000), vec![0; 50]);
        assert_eq!(generate('1', 0, 1000), Vec::<i16>::new());
        let loud = generate('D', 8000, i16::MIN);
        assert!(loud.iter().all(|s| s.unsigned_abs() <= 32767));
        assert!(loud.iter().any(|s| s.unsigned_abs() > 30_000));
        assert_eq!(generate('d', 100, 500), generate('D', 100, 500));
        assert_eq!(frequencies('#'), Some((941.0, 1477.0)));
        assert_eq!(frequencies('E'), None);
    }

    #[test]
    fn extreme_input_does_not_panic() {
        let mut d = DtmfDetector::new();
        let mut square = Vec::new();
        for n in 0..8000 {
            square.push(if n % 2 == 0 { i16::MIN } else { i16::MAX });
        }
        assert_eq!(d.process(&square), None);
        assert_eq!(d.process(&[i16::MIN; 5000]), None);
        d.reset();
        assert_eq!(d.process(&[]), None);
    }
}
