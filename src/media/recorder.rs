//! Recording the caller (the flow's `record` node), sans-IO: one buffer allocated when the
//! recording starts, filled with each audio packet's decoded samples, ended by silence, by its
//! length limit or by the caller's key. Only `write_wav` touches the file system, and the
//! runtime calls it off the media threads.

use std::path::Path;
use std::time::Duration;

use std::sync::Arc;

use super::bridge::Tap;
use super::pacing::TICK;
use super::relay::{FIFO_SAMPLES, PcmFifo};
use super::{SAMPLE_RATE, SAMPLES_PER_FRAME};

/// A packet whose mean absolute sample stays below this (about -40 dBFS) is quiet. G.711
/// silence decodes to 0 (PCMU) or 8 (PCMA), and a phone's line or comfort noise stays well
/// under 100; a packet of speech at telephone level averages 1000 or more. Packets between
/// syllables may dip below, but only `silence` of quiet in a row ends a message.
pub const QUIET_LEVEL: u32 = 300;

/// Silence kept after the last loud packet, so a message does not end mid-syllable.
pub const KEEP_AFTER_SOUND: usize = SAMPLE_RATE as usize * 3 / 10;

/// The longest recording a stream takes, whatever the flow asks: the buffer is allocated in
/// full when recording starts, and an hour of audio (57 MB) per call must not be possible.
pub const MAX_RECORDING: Duration = Duration::from_secs(10 * 60);

/// A recording that ended: the samples (8 kHz mono, trailing silence trimmed) and whether
/// anything louder than silence was heard at all.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recording {
    pub id: u32,
    pub samples: Vec<i16>,
    pub heard: bool,
}

/// One recording in progress. Time is counted in pacing ticks, not in packets, so a caller
/// whose phone stops sending (mute, silence suppression) is as quiet as one sending silence.
#[derive(Debug)]
pub struct Recorder {
    id: u32,
    samples: Vec<i16>,
    /// `samples` never grows past this, so it never reallocates.
    limit: usize,
    limit_ticks: u32,
    silence_ticks: u32,
    ticks: u32,
    /// Whole ticks without a loud packet since the last one, or since the start.
    quiet_ticks: u32,
    loud_this_tick: bool,
    heard: bool,
    /// How many samples there were after the last loud packet.
    sound_end: usize,
}

impl Recorder {
    pub fn new(id: u32, max_length: Duration, silence: Duration) -> Self {
        let max_length = max_length.min(MAX_RECORDING);
        let limit = (max_length.as_millis() as usize * SAMPLE_RATE as usize / 1000).max(1);
        Recorder {
            id,
            samples: Vec::with_capacity(limit),
            limit,
            limit_ticks: ticks(max_length),
            silence_ticks: ticks(silence),
            ticks: 0,
            quiet_ticks: 0,
            loud_this_tick: false,
            heard: false,
            sound_end: 0,
        }
    }

    pub fn id(&self) -> u32 {
        self.id
    }

    /// Append one packet's decoded audio, as much of it as the limit leaves room for.
    pub fn push(&mut self, pcm: &[i16]) {
        if pcm.is_empty() {
            return;
        }
        let room = self.limit - self.samples.len();
        self.samples.extend_from_slice(&pcm[..pcm.len().min(room)]);
        let sum: u32 = pcm.iter().map(|s| u32::from(s.unsigned_abs())).sum();
        if sum / pcm.len() as u32 >= QUIET_LEVEL {
            self.heard = true;
            self.loud_this_tick = true;
            self.sound_end = self.samples.len();
        }
    }

    /// Count one pacing tick; true once the recording must end (silence after speech, a
    /// caller silent from the start, the length limit reached).
    pub fn tick(&mut self) -> bool {
        self.ticks = self.ticks.saturating_add(1);
        if std::mem::take(&mut self.loud_this_tick) {
            self.quiet_ticks = 0;
        } else {
            self.quiet_ticks = self.quiet_ticks.saturating_add(1);
        }
        self.samples.len() >= self.limit
            || self.ticks >= self.limit_ticks
            || self.quiet_ticks >= self.silence_ticks
    }

    /// End the recording; the buffer moves out with it, so the media thread does not free it.
    pub fn finish(mut self) -> Recording {
        if self.heard {
            let keep = (self.sound_end + KEEP_AFTER_SOUND).min(self.samples.len());
            self.samples.truncate(keep);
        } else {
            self.samples.clear();
        }
        Recording {
            id: self.id,
            samples: self.samples,
            heard: self.heard,
        }
    }

    #[cfg(test)]
    pub(super) fn capacity(&self) -> usize {
        self.samples.capacity()
    }

    /// Where the buffer lives: it must not move while packets arrive.
    #[cfg(test)]
    pub(super) fn buffer_at(&self) -> *const i16 {
        self.samples.as_ptr()
    }
}

/// The longest stereo recording of a bridged call; past it the recording ends and is handed
/// over (about 220 MB of samples).
pub const MAX_STEREO: Duration = Duration::from_secs(4 * 60 * 60);

/// A bridged call's recording that ended: 8 kHz, interleaved left (the leg it was started on,
/// what its phone sent) and right (what the bridged partner sent), one pair per sample.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StereoRecording {
    pub id: u32,
    pub samples: Vec<i16>,
}

/// Both sides of a bridge, lined up per 20 ms tick: each tick takes one frame from each side
/// (silence for a side that sent nothing). The left side comes from this stream's receive
/// pass; the right side through a [`Tap`] the partner's forwarder fills, possibly on another
/// thread. Allocates when it starts and as the buffer grows (amortized), never per packet.
pub struct StereoRecorder {
    id: u32,
    samples: Vec<i16>,
    left: Box<PcmFifo>,
    right: Arc<Tap>,
    ticks: u32,
    limit_ticks: u32,
}

impl StereoRecorder {
    pub fn new(id: u32) -> Self {
        StereoRecorder {
            id,
            // A minute to start with; a Vec doubles from there.
            samples: Vec::with_capacity(2 * SAMPLE_RATE as usize * 60),
            left: Box::default(),
            right: Arc::new(Tap::new(FIFO_SAMPLES)),
            ticks: 0,
            limit_ticks: ticks(MAX_STEREO),
        }
    }

    pub fn id(&self) -> u32 {
        self.id
    }

    /// Where the partner's forwarder puts the right channel.
    pub fn tap(&self) -> &Arc<Tap> {
        &self.right
    }

    /// Audio this leg's phone sent.
    pub fn push_left(&mut self, pcm: &[i16]) {
        self.left.push(pcm);
    }

    /// One tick: a frame of each side into the recording; true once it must end.
    pub fn tick(&mut self) -> bool {
        let mut l = [0i16; SAMPLES_PER_FRAME];
        let mut r = [0i16; SAMPLES_PER_FRAME];
        self.left.pop_padded(&mut l);
        self.right.pop_padded(&mut r);
        self.samples
            .extend(l.iter().zip(&r).flat_map(|(a, b)| [*a, *b]));
        self.ticks = self.ticks.saturating_add(1);
        self.ticks >= self.limit_ticks
    }

    pub fn finish(self) -> StereoRecording {
        StereoRecording {
            id: self.id,
            samples: self.samples,
        }
    }
}

fn ticks(d: Duration) -> u32 {
    d.as_millis()
        .div_ceil(TICK.as_millis())
        .clamp(1, u128::from(u32::MAX)) as u32
}

/// Write 8 kHz mono 16-bit WAV, creating the directories on the way. The data goes to a
/// `.part` file renamed at the end, so whoever reads the path from a CDR never finds half
/// a file.
pub fn write_wav(path: &Path, samples: &[i16]) -> Result<(), String> {
    write_wav_channels(path, samples, 1)
}

/// Like [`write_wav`], with `channels` interleaved channels (2 for a bridged call's
/// `RecordedStereo`: caller left, agent right).
pub fn write_wav_channels(path: &Path, samples: &[i16], channels: u16) -> Result<(), String> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    }
    let mut part = path.as_os_str().to_owned();
    part.push(".part");
    let part = std::path::PathBuf::from(part);
    let spec = hound::WavSpec {
        channels,
        sample_rate: SAMPLE_RATE,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    let written = (|| {
        let mut w = hound::WavWriter::create(&part, spec)?;
        for s in samples {
            w.write_sample(*s)?;
        }
        w.finalize()
    })();
    if let Err(e) = written {
        let _ = std::fs::remove_file(&part);
        return Err(format!("{}: {e}", part.display()));
    }
    // Durable before it gets its name: a crash right after must not leave a CDR naming an
    // empty or half-written file.
    if let Err(e) = std::fs::File::open(&part).and_then(|f| f.sync_all()) {
        let _ = std::fs::remove_file(&part);
        return Err(format!("{}: {e}", part.display()));
    }
    std::fs::rename(&part, path).map_err(|e| {
        let _ = std::fs::remove_file(&part);
        format!("{}: {e}", path.display())
    })?;
    if let Some(dir) = path.parent() {
        // Best effort: some filesystems refuse to fsync a directory; the data is synced.
        let _ = std::fs::File::open(dir).and_then(|d| d.sync_all());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const FRAME: usize = 160;

    fn loud() -> [i16; FRAME] {
        std::array::from_fn(|i| if i % 2 == 0 { 2000 } else { -2000 })
    }

    #[test]
    fn the_level_that_counts_as_sound() {
        let mut r = Recorder::new(1, Duration::from_secs(10), Duration::from_secs(1));
        r.push(&[299; FRAME]);
        r.push(&[-299; FRAME]);
        assert!(!r.heard);
        r.push(&[300; FRAME]);
        assert!(r.heard);
    }

    #[test]
    fn trailing_silence_is_trimmed_to_keep_after_sound() {
        let mut r = Recorder::new(1, Duration::from_secs(10), Duration::from_secs(1));
        r.push(&[0; FRAME]);
        r.push(&loud());
        for _ in 0..40 {
            r.push(&[0; FRAME]);
        }
        let rec = r.finish();
        assert!(rec.heard);
        assert_eq!(rec.samples.len(), 2 * FRAME + KEEP_AFTER_SOUND);
    }

    #[test]
    fn a_short_pause_after_sound_keeps_what_there_is() {
        let mut r = Recorder::new(1, Duration::from_secs(10), Duration::from_secs(1));
        r.push(&loud());
        r.push(&[0; FRAME]);
        assert_eq!(r.finish().samples.len(), 2 * FRAME);
    }

    #[test]
    fn never_more_than_max_length_and_never_a_reallocation() {
        let mut r = Recorder::new(1, Duration::from_millis(100), Duration::from_secs(5));
        let cap = r.capacity();
        assert!(cap >= 800);
        for _ in 0..10 {
            r.push(&loud());
            assert_eq!(r.capacity(), cap);
        }
        assert!(r.tick(), "full");
        assert_eq!(r.finish().samples.len(), 800);
    }

    #[test]
    fn the_flow_cannot_ask_for_an_unbounded_buffer() {
        let r = Recorder::new(1, Duration::from_secs(24 * 3600), Duration::from_secs(5));
        assert_eq!(r.limit, MAX_RECORDING.as_secs() as usize * 8000);
    }

    #[test]
    fn wav_files_are_8khz_mono_16_bit_and_appear_whole() {
        let dir = std::env::temp_dir().join(format!("hotline-wav-{}", fastrand::u64(..)));
        let path = dir.join("2024-01-02").join("x-1.wav");
        let samples: Vec<i16> = (0..1600).map(|i| (i * 7) as i16).collect();
        write_wav(&path, &samples).unwrap();
        assert!(!path.with_extension("wav.part").exists());
        let mut reader = hound::WavReader::open(&path).unwrap();
        let spec = reader.spec();
        assert_eq!(
            (spec.sample_rate, spec.channels, spec.bits_per_sample),
            (8000, 1, 16)
        );
        let back: Vec<i16> = reader.samples::<i16>().map(Result::unwrap).collect();
        assert_eq!(back, samples);
        std::fs::remove_dir_all(&dir).ok();
    }

    #[test]
    fn an_unwritable_place_is_an_error_naming_it() {
        let dir = std::env::temp_dir().join(format!("hotline-wav-{}", fastrand::u64(..)));
        std::fs::write(&dir, b"a file, not a directory").unwrap();
        let e = write_wav(&dir.join("x.wav"), &[0; 10]).unwrap_err();
        assert!(e.contains(&dir.display().to_string()), "{e}");
        std::fs::remove_file(&dir).ok();
    }
}
