//! Prompt loading: any common WAV file becomes 8 kHz mono linear audio, then G.711 frames ready
//! to send. This runs once per prompt at start-up or reload, never per packet, so it favours
//! quality and clear errors over speed.

use std::f64::consts::PI;
use std::fs::File;
use std::io::BufReader;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::g711::{alaw_encode, ulaw_encode};
use super::{Codec, SAMPLE_RATE, SAMPLES_PER_FRAME};

/// Every message names the file, because an operator reading the log has to find which of many
/// prompts is broken.
#[derive(Debug, thiserror::Error)]
pub enum PromptError {
    #[error("prompt {path}: cannot open: {error}")]
    Open {
        path: PathBuf,
        error: std::io::Error,
    },
    #[error("prompt {path}: not a WAV file: {reason}")]
    NotWav { path: PathBuf, reason: String },
    #[error("prompt {path}: unsupported format: {detail}")]
    Unsupported { path: PathBuf, detail: String },
    #[error("prompt {path}: cannot read: {error}")]
    Read {
        path: PathBuf,
        error: std::io::Error,
    },
    #[error("prompt {path}: truncated: the file ends before the length its header gives")]
    Truncated { path: PathBuf },
    #[error("prompt {path} is empty")]
    Empty { path: PathBuf },
}

/// Reads a WAV file (8/16/24/32-bit integer or 32-bit float PCM, any rate, any number of
/// channels) and returns it as 8 kHz mono. Channels are averaged; other rates are resampled.
pub fn load_wav(path: &Path) -> Result<Vec<i16>, PromptError> {
    // Opening separately from parsing tells "no such file" apart from "not a WAV".
    let file = File::open(path).map_err(|error| PromptError::Open {
        path: path.to_path_buf(),
        error,
    })?;
    read_wav(BufReader::new(file), path)
}

/// [`load_wav`] on any byte source; `path` only names it in errors.
pub fn read_wav(source: impl std::io::Read, path: &Path) -> Result<Vec<i16>, PromptError> {
    let owned = || path.to_path_buf();
    let mut reader = hound::WavReader::new(source).map_err(|e| match e {
        hound::Error::IoError(error) if !is_short_read(&error) => PromptError::Read {
            path: owned(),
            error,
        },
        hound::Error::Unsupported => PromptError::Unsupported {
            path: owned(),
            detail: "only integer PCM (8, 16, 24 or 32 bits) and 32-bit float are supported".into(),
        },
        other => PromptError::NotWav {
            path: owned(),
            reason: header_problem(&other),
        },
    })?;

    let spec = reader.spec();
    let unsupported = |detail: String| PromptError::Unsupported {
        path: owned(),
        detail,
    };
    if !RATES.contains(&spec.sample_rate) {
        return Err(unsupported(format!(
            "sample rate {} Hz (supported: {} to {} Hz)",
            spec.sample_rate,
            RATES.start(),
            RATES.end()
        )));
    }
    let channels = usize::from(spec.channels.max(1));
    let read_error = |e: hound::Error| match e {
        hound::Error::IoError(error) if is_short_read(&error) => {
            PromptError::Truncated { path: owned() }
        }
        hound::Error::IoError(error) => PromptError::Read {
            path: owned(),
            error,
        },
        _ => PromptError::Unsupported {
            path: owned(),
            detail: format!(
                "{}-bit {:?} samples",
                spec.bits_per_sample, spec.sample_format
            ),
        },
    };

    let mono = match (spec.sample_format, spec.bits_per_sample) {
        (hound::SampleFormat::Int, bits @ (8 | 16 | 24 | 32)) => {
            let scale = 1.0 / f64::from(1u32 << (bits - 1));
            let samples = reader
                .samples::<i32>()
                .map(|s| s.map(|v| f64::from(v) * scale));
            mix_down(samples, channels).map_err(read_error)?
        }
        (hound::SampleFormat::Float, 32) => {
            let samples = reader.samples::<f32>().map(|s| s.map(f64::from));
            mix_down(samples, channels).map_err(read_error)?
        }
        (format, bits) => {
            return Err(unsupported(format!("{bits}-bit {format:?} samples")));
        }
    };
    if mono.is_empty() {
        return Err(PromptError::Empty { path: owned() });
    }

    let at_8k = if spec.sample_rate == SAMPLE_RATE {
        mono
    } else {
        resample(&mono, spec.sample_rate, SAMPLE_RATE)
    };
    Ok(at_8k.iter().map(|&x| to_i16(x)).collect())
}

/// hound reports running out of bytes as a custom `Other` error rather than `UnexpectedEof`.
fn is_short_read(e: &std::io::Error) -> bool {
    matches!(
        e.kind(),
        std::io::ErrorKind::UnexpectedEof | std::io::ErrorKind::Other
    )
}

fn header_problem(e: &hound::Error) -> String {
    match e {
        hound::Error::FormatError(reason) => (*reason).to_string(),
        hound::Error::IoError(_) => "the file ends inside the header".into(),
        other => other.to_string(),
    }
}

/// Averages each frame of interleaved samples; a trailing partial frame is dropped.
fn mix_down(
    samples: impl Iterator<Item = Result<f64, hound::Error>>,
    channels: usize,
) -> Result<Vec<f32>, hound::Error> {
    // The hint comes from the header's data length, which a damaged file can inflate far
    // beyond the bytes really there, so at most 4 Mi samples (16 MiB) are reserved up front.
    let (lower, _) = samples.size_hint();
    let mut mono = Vec::with_capacity((lower / channels).min(1 << 22));
    let mut sum = 0.0;
    let mut in_frame = 0;
    for s in samples {
        sum += s?;
        in_frame += 1;
        if in_frame == channels {
            mono.push((sum / channels as f64) as f32);
            sum = 0.0;
            in_frame = 0;
        }
    }
    Ok(mono)
}

fn to_i16(x: f32) -> i16 {
    // Full scale is ±1.0 with the same 1/32768 step the integer formats use, so 16-bit input at
    // 8 kHz comes back bit-exact; float input beyond ±1.0 clips.
    (x * 32768.0).round().clamp(-32768.0, 32767.0) as i16
}

/// Zero crossings of the sinc on each side of the kernel's centre. With the Kaiser window below
/// this gives a transition band of about 600 Hz around the cutoff at an 8 kHz output: flat to
/// 3.5 kHz, -6 dB at 3.8 kHz and 80 dB down from about 4.1 kHz.
const ZERO_CROSSINGS: usize = 32;
/// Kernel table points per zero crossing; linear interpolation between them is accurate to
/// about -90 dB, below the stopband.
const TABLE_RESOLUTION: usize = 256;
/// Kaiser window shape for about 80 dB of stopband attenuation (β = 0.1102 (A − 8.7)).
const KAISER_BETA: f64 = 7.857;
/// Cutoff as a fraction of the lower of the two rates: just under Nyquist, leaving room for
/// the transition band so that little above 4 kHz folds back into the 8 kHz output.
const CUTOFF: f64 = 0.475;
/// The largest filter bank (phases × taps) worth precomputing, 4 MiB of weights. Usual rates
/// need far less (one phase from 48 kHz, 80 from 44.1 kHz); odd ones such as 44 101 Hz, whose
/// ratio to 8 kHz has thousands of phases, compute each output's weights as they go instead.
const MAX_BANK: usize = 1 << 20;
/// Input rates accepted. Beyond these the filter or the output would be absurdly large, and no
/// real prompt is recorded that way.
const RATES: std::ops::RangeInclusive<u32> = 1_000..=384_000;

/// Band-limited resampling by a Kaiser-windowed sinc (polyphase: output sample j falls at input
/// position j·from/to, whose fractional part takes only `to / gcd` distinct values, each with
/// its own set of weights). Samples beyond either end of the input count as silence.
fn resample(input: &[f32], from: u32, to: u32) -> Vec<f32> {
    let kernel = Kernel::new();
    let g = gcd(from, to);
    let (advance, phases) = (u64::from(from / g), u64::from(to / g));
    let cutoff = CUTOFF * f64::from(from.min(to));
    // One input sample spans `step` zero crossings of the sinc; the same factor scales the
    // weights to unity gain.
    let step = 2.0 * cutoff / f64::from(from);
    let reach = (ZERO_CROSSINGS as f64 / step).ceil() as usize;
    let taps = 2 * reach + 1;
    let weights_for = |phase: u64, weights: &mut [f32]| {
        let frac = phase as f64 / phases as f64;
        for (k, w) in weights.iter_mut().enumerate() {
            // Distance from the output position to tap k, in input samples.
            let offset = k as f64 - reach as f64 - frac;
            *w = (kernel.at((offset * step).abs()) * step) as f32;
        }
    };
    let bank: Option<Vec<f32>> = (phases as usize)
        .checked_mul(taps)
        .filter(|&size| size <= MAX_BANK)
        .map(|size| {
            let mut bank = vec![0.0; size];
            for (phase, weights) in bank.chunks_exact_mut(taps).enumerate() {
                weights_for(phase as u64, weights);
            }
            bank
        });
    let mut scratch = if bank.is_some() {
        Vec::new()
    } else {
        vec![0.0; taps]
    };

    let out_len = (input.len() as u64 * u64::from(to)).div_ceil(u64::from(from));
    let mut out = Vec::with_capacity(out_len as usize);
    for j in 0..out_len {
        let position = j * advance;
        let (whole, phase) = (position / phases, position % phases);
        let weights: &[f32] = match &bank {
            Some(bank) => &bank[phase as usize * taps..][..taps],
            None => {
                weights_for(phase, &mut scratch);
                &scratch
            }
        };
        // Taps cover input samples whole - reach ..= whole + reach, clipped to the input.
        let first = whole as i64 - reach as i64;
        let lo = first.max(0) as usize;
        let hi = (whole as usize + reach + 1).min(input.len());
        let sum = if lo < hi {
            dot(
                &input[lo..hi],
                &weights[(lo as i64 - first) as usize..][..hi - lo],
            )
        } else {
            0.0
        };
        out.push(sum);
    }
    out
}

fn gcd(mut a: u32, mut b: u32) -> u32 {
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a
}

fn dot(a: &[f32], b: &[f32]) -> f32 {
    // Eight independent partial sums let the compiler use SIMD; one running sum would pin the
    // additions to a strict order.
    let mut lanes = [0.0f32; 8];
    let (a8, b8) = (a.chunks_exact(8), b.chunks_exact(8));
    let tail: f32 = a8
        .remainder()
        .iter()
        .zip(b8.remainder())
        .map(|(x, y)| x * y)
        .sum();
    for (x, y) in a8.zip(b8) {
        for k in 0..8 {
            lanes[k] += x[k] * y[k];
        }
    }
    lanes.iter().sum::<f32>() + tail
}

/// sinc(u)·kaiser(u/ZERO_CROSSINGS), tabulated over u in [0, ZERO_CROSSINGS] because direct
/// evaluation (a sine and a Bessel series per weight) would dominate for rates with many phases.
struct Kernel {
    table: Vec<f64>,
}

impl Kernel {
    fn new() -> Kernel {
        let norm = bessel_i0(KAISER_BETA);
        let table = (0..=ZERO_CROSSINGS * TABLE_RESOLUTION)
            .map(|i| {
                let u = i as f64 / TABLE_RESOLUTION as f64;
                let r = u / ZERO_CROSSINGS as f64;
                let sinc = if i == 0 {
                    1.0
                } else {
                    (PI * u).sin() / (PI * u)
                };
                sinc * bessel_i0(KAISER_BETA * (1.0 - r * r).max(0.0).sqrt()) / norm
            })
            .collect();
        Kernel { table }
    }

    /// The kernel at `u` zero crossings from its centre (u ≥ 0); zero beyond its support.
    fn at(&self, u: f64) -> f64 {
        let pos = u * TABLE_RESOLUTION as f64;
        let i = pos as usize;
        match (self.table.get(i), self.table.get(i + 1)) {
            (Some(a), Some(b)) => a + (b - a) * (pos - i as f64),
            _ => 0.0,
        }
    }
}

/// The modified Bessel function of the first kind, order 0, by its power series (converges
/// quickly for the small arguments a Kaiser window uses).
fn bessel_i0(x: f64) -> f64 {
    let mut sum = 1.0;
    let mut term = 1.0;
    let quarter_x2 = x * x / 4.0;
    for k in 1..50 {
        term *= quarter_x2 / (k * k) as f64;
        sum += term;
        if term < sum * 1e-16 {
            break;
        }
    }
    sum
}

/// A prompt encoded for both codecs up front, so a call just slices out 160-byte frames.
/// The `Arc`s let every call playing the prompt share one copy.
#[derive(Debug, Clone)]
pub struct EncodedPrompt {
    pub pcmu: Arc<[u8]>,
    pub pcma: Arc<[u8]>,
}

impl EncodedPrompt {
    /// Encodes 8 kHz samples, padding the end with the codec's silence up to a whole frame so
    /// that every packet sent is a full 20 ms.
    pub fn encode(samples: &[i16]) -> EncodedPrompt {
        let padded = samples.len().div_ceil(SAMPLES_PER_FRAME) * SAMPLES_PER_FRAME;
        let encode_with = |f: fn(i16) -> u8, silence: u8| -> Arc<[u8]> {
            let mut bytes: Vec<u8> = samples.iter().map(|&s| f(s)).collect();
            bytes.resize(padded, silence);
            bytes.into()
        };
        EncodedPrompt {
            pcmu: encode_with(ulaw_encode, Codec::Pcmu.silence_byte()),
            pcma: encode_with(alaw_encode, Codec::Pcma.silence_byte()),
        }
    }

    pub fn for_codec(&self, c: Codec) -> &Arc<[u8]> {
        match c {
            Codec::Pcmu => &self.pcmu,
            Codec::Pcma => &self.pcma,
        }
    }

    /// Number of 20 ms frames.
    pub fn frames(&self) -> usize {
        self.pcmu.len() / SAMPLES_PER_FRAME
    }

    /// The `index`th 20 ms frame for a codec, or `None` past the end.
    pub fn frame(&self, c: Codec, index: usize) -> Option<&[u8]> {
        let start = index.checked_mul(SAMPLES_PER_FRAME)?;
        self.for_codec(c)
            .get(start..start.checked_add(SAMPLES_PER_FRAME)?)
    }
}

#[cfg(test)]
mod tests {
    use super::super::g711::{alaw_decode, ulaw_decode};
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// A scratch directory removed when the test ends, named per process and per test so
    /// parallel tests and concurrent runs do not collide.
    struct TempDir(PathBuf);

    impl TempDir {
        fn new(name: &str) -> TempDir {
            static COUNTER: AtomicUsize = AtomicUsize::new(0);
            let n = COUNTER.fetch_add(1, Ordering::Relaxed);
            let dir = std::env::temp_dir().join(format!(
                "hotline-prompt-{}-{}-{}",
                std::process::id(),
                n,
                name
            ));
            std::fs::create_dir_all(&dir).unwrap();
            TempDir(dir)
        }

        fn file(&self, name: &str) -> PathBuf {
            self.0.join(name)
        }
    }

    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    fn sine(freq: f64, rate: u32, seconds: f64, amplitude: f64) -> Vec<f64> {
        let n = (f64::from(rate) * seconds).round() as usize;
        (0..n)
            .map(|i| amplitude * (2.0 * PI * freq * i as f64 / f64::from(rate)).sin())
            .collect()
    }

    /// Writes `frames` (each value a full-scale fraction) to every channel, channel k scaled
    /// by `gains[k]`.
    fn write_wav(path: &Path, spec: hound::WavSpec, frames: &[f64], gains: &[f64]) {
        assert_eq!(usize::from(spec.channels), gains.len());
        let mut w = hound::WavWriter::create(path, spec).unwrap();
        for &v in frames {
            for g in gains {
                let x = v * g;
                match spec.sample_format {
                    hound::SampleFormat::Float => w.write_sample(x as f32).unwrap(),
                    hound::SampleFormat::Int => {
                        let full = f64::from(1u32 << (spec.bits_per_sample - 1));
                        let q = (x * full).round().clamp(-full, full - 1.0) as i32;
                        w.write_sample(q).unwrap()
                    }
                }
            }
        }
        w.finalize().unwrap();
    }

    fn spec(rate: u32, channels: u16, bits: u16, float: bool) -> hound::WavSpec {
        hound::WavSpec {
            channels,
            sample_rate: rate,
            bits_per_sample: bits,
            sample_format: if float {
                hound::SampleFormat::Float
            } else {
                hound::SampleFormat::Int
            },
        }
    }

    /// Amplitude of the `freq` component of 8 kHz audio, by a Goertzel filter over the middle
    /// part (away from the filter's edge effects).
    fn amplitude_at(samples: &[i16], freq: f64) -> f64 {
        let body = &samples[samples.len() / 8..samples.len() * 7 / 8];
        let w = 2.0 * PI * freq / f64::from(SAMPLE_RATE);
        let (mut s1, mut s2) = (0.0f64, 0.0f64);
        for &x in body {
            let s0 = 2.0 * w.cos() * s1 - s2 + f64::from(x);
            s2 = s1;
            s1 = s0;
        }
        let mag2 = s1 * s1 + s2 * s2 - 2.0 * w.cos() * s1 * s2;
        2.0 * mag2.sqrt() / body.len() as f64
    }

    fn rms(samples: &[i16]) -> f64 {
        let body = &samples[samples.len() / 8..samples.len() * 7 / 8];
        (body.iter().map(|&x| f64::from(x).powi(2)).sum::<f64>() / body.len() as f64).sqrt()
    }

    fn zero_crossings(samples: &[i16]) -> usize {
        samples
            .windows(2)
            .filter(|w| (w[0] < 0) != (w[1] < 0))
            .count()
    }

    #[test]
    fn eight_khz_16_bit_mono_passes_through_exactly() {
        let dir = TempDir::new("exact");
        let path = dir.file("a.wav");
        let samples: Vec<i16> = (0..4000)
            .map(|i: i32| ((i * 7919) % 65536 - 32768) as i16)
            .chain([i16::MIN, i16::MAX, 0, -1, 1])
            .collect();
        let mut w = hound::WavWriter::create(&path, spec(8000, 1, 16, false)).unwrap();
        for &s in &samples {
            w.write_sample(s).unwrap();
        }
        w.finalize().unwrap();
        assert_eq!(load_wav(&path).unwrap(), samples);
    }

    /// Loads a 440 Hz sine of one second written in the given format and checks rate, length,
    /// pitch and level.
    fn check_sine(rate: u32, channels: u16, bits: u16, float: bool) {
        let dir = TempDir::new("sine");
        let path = dir.file("sine.wav");
        // Channels at different levels: the mix-down is their average.
        let gains: Vec<f64> = (0..channels).map(|k| 1.0 - 0.2 * f64::from(k)).collect();
        let mean_gain = gains.iter().sum::<f64>() / gains.len() as f64;
        write_wav(
            &path,
            spec(rate, channels, bits, float),
            &sine(440.0, rate, 1.0, 0.5),
            &gains,
        );
        let out = load_wav(&path).unwrap();
        let what = format!("{rate} Hz, {channels} ch, {bits}-bit, float={float}");
        assert!(
            out.len().abs_diff(8000) <= SAMPLES_PER_FRAME,
            "{what}: {}",
            out.len()
        );
        // 440 Hz over one second: 880 crossings (a few lost at the faded edges).
        let zc = zero_crossings(&out);
        assert!((875..=882).contains(&zc), "{what}: {zc} zero crossings");
        let want = 0.5 * mean_gain * 32768.0;
        let got = amplitude_at(&out, 440.0);
        assert!(
            (got - want).abs() < want * 0.02,
            "{what}: amplitude {got}, want {want}"
        );
        // Nothing but the sine: the residue is tiny.
        let total = rms(&out);
        assert!(
            (total - want / 2f64.sqrt()).abs() < want * 0.02,
            "{what}: rms {total}"
        );
    }

    #[test]
    fn resamples_common_formats() {
        check_sine(16_000, 2, 24, false);
        check_sine(44_100, 2, 32, true);
        check_sine(48_000, 2, 24, false);
        check_sine(48_000, 1, 16, false);
        check_sine(22_050, 1, 8, false);
        check_sine(11_025, 3, 32, false);
        check_sine(8_000, 2, 32, true);
    }

    #[test]
    fn odd_rates_without_a_precomputed_bank() {
        // 8000 phases × 373 taps: too many to tabulate, so weights are computed per sample.
        check_sine(44_101, 1, 16, false);
        check_sine(47_999, 2, 16, false);
    }

    #[test]
    fn upsamples_low_rates() {
        check_sine(6_000, 1, 16, false);
        check_sine(4_000, 2, 16, false);
    }

    #[test]
    fn passes_3500_hz() {
        let dir = TempDir::new("3500");
        for rate in [16_000, 44_100, 48_000] {
            let path = dir.file(&format!("{rate}.wav"));
            write_wav(
                &path,
                spec(rate, 1, 16, false),
                &sine(3500.0, rate, 1.0, 0.5),
                &[1.0],
            );
            let out = load_wav(&path).unwrap();
            let got = amplitude_at(&out, 3500.0);
            assert!(
                got > 0.5 * 32768.0 * 0.9,
                "{rate}: 3.5 kHz came out at {got}"
            );
        }
    }

    #[test]
    fn removes_what_would_alias() {
        let dir = TempDir::new("alias");
        for (rate, freq) in [(48_000, 6000.0), (44_100, 4500.0), (16_000, 7000.0)] {
            let path = dir.file(&format!("{rate}.wav"));
            write_wav(
                &path,
                spec(rate, 1, 16, false),
                &sine(freq, rate, 1.0, 0.9),
                &[1.0],
            );
            let out = load_wav(&path).unwrap();
            // Without filtering the tone would fold to 8000 - freq at full level (~29 500).
            let alias = amplitude_at(&out, 8000.0 - freq);
            let level = rms(&out);
            assert!(
                alias < 10.0 && level < 10.0,
                "{rate}: {freq} Hz leaves {alias}, rms {level}"
            );
        }
    }

    #[test]
    fn dc_is_kept() {
        let dir = TempDir::new("dc");
        let path = dir.file("dc.wav");
        write_wav(
            &path,
            spec(44_100, 1, 16, false),
            &vec![0.25; 44_100],
            &[1.0],
        );
        let out = load_wav(&path).unwrap();
        for &s in &out[100..out.len() - 100] {
            assert!((i32::from(s) - 8192).abs() <= 2, "{s}");
        }
    }

    #[test]
    fn float_beyond_full_scale_clips() {
        let dir = TempDir::new("clip");
        let path = dir.file("loud.wav");
        write_wav(
            &path,
            spec(8000, 1, 32, true),
            &[2.0, -2.0, 1.0, -1.0, f64::NAN],
            &[1.0],
        );
        assert_eq!(
            load_wav(&path).unwrap(),
            vec![32767, -32768, 32767, -32768, 0]
        );
    }

    #[test]
    fn short_files_are_not_lost() {
        let dir = TempDir::new("short");
        let path = dir.file("one.wav");
        write_wav(&path, spec(48_000, 1, 16, false), &[0.5], &[1.0]);
        assert_eq!(load_wav(&path).unwrap().len(), 1);
    }

    fn assert_names(err: &PromptError, path: &Path, what: &str) {
        let msg = err.to_string();
        assert!(msg.contains(&path.display().to_string()), "{msg}");
        assert!(msg.contains(what), "{msg}");
    }

    #[test]
    fn errors_name_the_file() {
        let dir = TempDir::new("errors");

        let missing = dir.file("missing.wav");
        let err = load_wav(&missing).unwrap_err();
        assert!(matches!(err, PromptError::Open { .. }), "{err:?}");
        assert_names(&err, &missing, "cannot open");

        let text = dir.file("notes.txt");
        std::fs::write(&text, "this is not audio\n").unwrap();
        let err = load_wav(&text).unwrap_err();
        assert!(matches!(err, PromptError::NotWav { .. }), "{err:?}");
        assert_names(&err, &text, "not a WAV file");

        let zero = dir.file("zero.wav");
        std::fs::write(&zero, b"").unwrap();
        let err = load_wav(&zero).unwrap_err();
        assert!(matches!(err, PromptError::NotWav { .. }), "{err:?}");
        assert_names(&err, &zero, "not a WAV file");

        let err = load_wav(&dir.0).unwrap_err();
        assert!(matches!(err, PromptError::Read { .. }), "{err:?}");
        assert_names(&err, &dir.0, "cannot read");

        let empty = dir.file("empty.wav");
        write_wav(&empty, spec(16_000, 2, 16, false), &[], &[1.0, 1.0]);
        let err = load_wav(&empty).unwrap_err();
        assert!(matches!(err, PromptError::Empty { .. }), "{err:?}");
        assert_names(&err, &empty, "is empty");
    }

    #[test]
    fn unsupported_encodings_are_named() {
        let dir = TempDir::new("unsupported");
        // A µ-law WAV (format tag 7), which hound does not decode.
        let mut bytes = Vec::new();
        bytes.extend_from_slice(b"RIFF");
        bytes.extend_from_slice(&(4 + 26 + 8 + 4u32).to_le_bytes());
        bytes.extend_from_slice(b"WAVEfmt ");
        bytes.extend_from_slice(&18u32.to_le_bytes());
        bytes.extend_from_slice(&7u16.to_le_bytes()); // WAVE_FORMAT_MULAW
        bytes.extend_from_slice(&1u16.to_le_bytes());
        bytes.extend_from_slice(&8000u32.to_le_bytes());
        bytes.extend_from_slice(&8000u32.to_le_bytes());
        bytes.extend_from_slice(&1u16.to_le_bytes());
        bytes.extend_from_slice(&8u16.to_le_bytes());
        bytes.extend_from_slice(&0u16.to_le_bytes());
        bytes.extend_from_slice(b"data");
        bytes.extend_from_slice(&4u32.to_le_bytes());
        bytes.extend_from_slice(&[0xFF; 4]);
        let path = dir.file("ulaw.wav");
        std::fs::write(&path, &bytes).unwrap();
        let err = load_wav(&path).unwrap_err();
        assert!(matches!(err, PromptError::Unsupported { .. }), "{err:?}");
        assert_names(&err, &path, "unsupported format");
    }

    #[test]
    fn absurd_sample_rates_are_refused() {
        let dir = TempDir::new("rates");
        for rate in [1, 999, 384_001, 10_000_000] {
            let path = dir.file(&format!("{rate}.wav"));
            write_wav(&path, spec(rate, 1, 16, false), &[0.1; 10], &[1.0]);
            let err = load_wav(&path).unwrap_err();
            assert!(matches!(err, PromptError::Unsupported { .. }), "{err:?}");
            assert_names(&err, &path, &format!("sample rate {rate} Hz"));
        }
    }

    fn valid_wav_bytes() -> Vec<u8> {
        let mut cursor = std::io::Cursor::new(Vec::new());
        let mut w = hound::WavWriter::new(&mut cursor, spec(16_000, 2, 16, false)).unwrap();
        for i in 0..64 {
            w.write_sample(i * 100).unwrap();
        }
        w.finalize().unwrap();
        cursor.into_inner()
    }

    #[test]
    fn reads_from_memory() {
        let out = read_wav(&valid_wav_bytes()[..], Path::new("mem.wav")).unwrap();
        assert_eq!(out.len(), 16);
    }

    proptest::proptest! {
        #[test]
        fn damaged_headers_never_panic(
            edits in proptest::collection::vec((0usize..60, proptest::prelude::any::<u8>()), 1..6),
            cut in 0usize..200,
        ) {
            let mut bytes = valid_wav_bytes();
            for (at, value) in edits {
                bytes[at] = value;
            }
            bytes.truncate(bytes.len().saturating_sub(cut));
            if let Err(e) = read_wav(&bytes[..], Path::new("fuzz.wav")) {
                proptest::prop_assert!(e.to_string().contains("fuzz.wav"));
            }
        }

        #[test]
        fn garbage_never_panics(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..300)) {
            let _ = read_wav(&bytes[..], Path::new("garbage.wav"));
        }
    }

    #[test]
    fn truncated_data_is_an_error() {
        let dir = TempDir::new("truncated");
        let path = dir.file("cut.wav");
        write_wav(&path, spec(8000, 1, 16, false), &vec![0.1; 1000], &[1.0]);
        let bytes = std::fs::read(&path).unwrap();
        std::fs::write(&path, &bytes[..bytes.len() - 501]).unwrap();
        let err = load_wav(&path).unwrap_err();
        assert!(matches!(err, PromptError::Truncated { .. }), "{err:?}");
        assert_names(&err, &path, "truncated");
    }

    #[test]
    fn encoded_prompt_is_padded_to_whole_frames() {
        let samples: Vec<i16> = (0..400).map(|i| (i * 50) as i16).collect();
        let p = EncodedPrompt::encode(&samples);
        assert_eq!(p.frames(), 3);
        assert_eq!(p.pcmu.len(), 480);
        assert_eq!(p.pcma.len(), 480);
        for (i, &s) in samples.iter().enumerate() {
            assert_eq!(p.pcmu[i], ulaw_encode(s));
            assert_eq!(p.pcma[i], alaw_encode(s));
        }
        assert!(p.pcmu[400..].iter().all(|&b| b == 0xFF));
        assert!(p.pcma[400..].iter().all(|&b| b == 0xD5));
        assert_eq!(ulaw_decode(p.pcmu[479]), 0);
        assert!(alaw_decode(p.pcma[479]).abs() <= 8);

        assert!(Arc::ptr_eq(p.for_codec(Codec::Pcmu), &p.pcmu));
        assert!(Arc::ptr_eq(p.for_codec(Codec::Pcma), &p.pcma));
        assert_eq!(p.frame(Codec::Pcma, 1), Some(&p.pcma[160..320]));
        assert_eq!(p.frame(Codec::Pcmu, 3), None);
        assert_eq!(p.frame(Codec::Pcmu, usize::MAX), None);

        let exact = EncodedPrompt::encode(&[0; 320]);
        assert_eq!(exact.frames(), 2);
        let empty = EncodedPrompt::encode(&[]);
        assert_eq!(empty.frames(), 0);
        assert_eq!(empty.frame(Codec::Pcmu, 0), None);
    }

    #[test]
    fn loaded_prompt_encodes() {
        let dir = TempDir::new("encode");
        let path = dir.file("p.wav");
        write_wav(
            &path,
            spec(48_000, 2, 16, false),
            &sine(440.0, 48_000, 0.5, 0.3),
            &[1.0, 1.0],
        );
        let p = EncodedPrompt::encode(&load_wav(&path).unwrap());
        assert_eq!(p.frames(), 25);
    }
}
