//! The flow's `record` node over real calls: a caller's message goes to a WAV file named in
//! the CDR, whether it ends on silence, on the terminator key or with the caller hanging up;
//! a caller who says nothing takes the failure exit and leaves no file.

mod common;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::*;
use hotline::cdr::{CdrRecord, Disposition};
use hotline::sip::UaEvent;

const S: fn(u64) -> Duration = Duration::from_millis;

const FLOW: &str = r##"
[flow]
name = "test"
numbers = ["100"]
start = "message"

[nodes.message]
type = "record"
prompts = ["welcome"]
terminator = "#"
max_length = "20s"
silence = "2s"
variable = "message"
next = "goodbye"
on_failure = "sorry"

[nodes.goodbye]
type = "play"
prompts = ["goodbye"]
next = "end"

[nodes.sorry]
type = "play"
prompts = ["invalid"]
next = "end"

[nodes.end]
type = "hangup"
"##;

fn record_site() -> Site {
    let mut site = site(FLOW);
    site.config.recordings_dir = site.dir.path().join("recordings");
    site
}

/// The caller's voice: a 440 Hz tone at a speaking level.
fn voice(millis: u32) -> Vec<i16> {
    sine(440.0, millis, 6000.0)
}

/// The one recording in the call's CDR: its samples, after checking the format.
fn the_recording(cdr: &CdrRecord) -> (PathBuf, Vec<i16>) {
    assert_eq!(cdr.recordings.len(), 1, "{cdr:?}");
    let path = PathBuf::from(&cdr.recordings[0]);
    let mut reader =
        hound::WavReader::open(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let spec = reader.spec();
    assert_eq!(
        (spec.sample_rate, spec.channels, spec.bits_per_sample),
        (8000, 1, 16),
        "8 kHz mono 16-bit"
    );
    assert_eq!(spec.sample_format, hound::SampleFormat::Int);
    let samples = reader.samples::<i16>().map(Result::unwrap).collect();
    (path, samples)
}

fn seconds(samples: &[i16]) -> f64 {
    samples.len() as f64 / 8000.0
}

/// Goertzel power at `freq`, per sample.
fn power_at(samples: &[i16], freq: f64) -> f64 {
    let coeff = 2.0 * (std::f64::consts::TAU * freq / 8000.0).cos();
    let (mut s1, mut s2) = (0.0f64, 0.0f64);
    for x in samples {
        let s0 = f64::from(*x) + coeff * s1 - s2;
        s2 = s1;
        s1 = s0;
    }
    (s1 * s1 + s2 * s2 - coeff * s1 * s2) / samples.len() as f64
}

/// The recording carries the tone that was sent: 440 Hz dominates, and one second of it
/// crosses zero about 880 times.
fn assert_is_the_tone(samples: &[i16]) {
    let p440 = power_at(samples, 440.0);
    for other in [300.0, 600.0, 1000.0, 2000.0] {
        let p = power_at(samples, other);
        assert!(p440 > 100.0 * p, "440 Hz {p440:.0} vs {other} Hz {p:.0}");
    }
    let start = samples
        .iter()
        .position(|s| s.unsigned_abs() > 2000)
        .expect("sound in the recording");
    let second = &samples[start..(start + 8000).min(samples.len())];
    let crossings = second
        .windows(2)
        .filter(|w| (w[0] < 0) != (w[1] < 0))
        .count() as f64
        * 8000.0
        / second.len() as f64;
    assert!(
        (840.0..920.0).contains(&crossings),
        "{crossings} zero crossings a second"
    );
}

fn wav_files(dir: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut dirs = vec![dir.to_path_buf()];
    while let Some(d) = dirs.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                dirs.push(p);
            } else {
                found.push(p);
            }
        }
    }
    found
}

#[test]
fn a_message_ends_on_silence_and_is_saved_where_the_cdr_says() {
    let site = record_site();
    let mut server = start(site.config.clone());
    let mut phone = Phone::new(server.sip);
    phone.call("100");
    phone.talk(S(600)); // the intro
    phone.send_audio(&voice(2000), S(2700));
    phone
        .wait_for(S(3000), |e| matches!(e, UaEvent::RemoteBye { .. }))
        .expect("after the message, goodbye and hang-up");
    let prompts = encoded_prompts(&site, phone.codec);
    assert_eq!(phone.heard(&prompts), ["welcome", "goodbye"]);
    server.stop();
    let cdr = &read_cdrs(&site.config.database)[0];
    assert_eq!(cdr.ivr_path, ["message", "goodbye", "end"]);
    assert_eq!(cdr.disposition, Disposition::Completed);
    let (path, samples) = the_recording(cdr);
    assert!(path.starts_with(&site.config.recordings_dir));
    let name = path.file_name().unwrap().to_string_lossy();
    assert!(
        name.starts_with(&cdr.id) && name.ends_with(".wav"),
        "{name}"
    );
    let day = path
        .parent()
        .unwrap()
        .file_name()
        .unwrap()
        .to_string_lossy();
    assert!(
        day.len() == 10 && day.as_bytes()[4] == b'-' && day.as_bytes()[7] == b'-',
        "a directory a day: {day}"
    );
    let length = seconds(&samples);
    assert!((1.5..=4.0).contains(&length), "{length} s");
    assert!(length < 2.9, "the trailing silence is trimmed: {length} s");
    assert_is_the_tone(&samples);
}

#[test]
fn the_terminator_key_ends_the_message_early() {
    let site = record_site();
    let mut server = start(site.config.clone());
    let mut phone = Phone::new(server.sip);
    phone.call("100");
    phone.talk(S(600));
    phone.send_audio(&voice(1000), S(0));
    phone.press("#", S(0));
    // Two seconds of silence would end it too; the key is quicker than that.
    let pressed = Instant::now();
    phone
        .wait_for(S(1500), |e| matches!(e, UaEvent::RemoteBye { .. }))
        .expect("the key ends the recording at once");
    assert!(pressed.elapsed() < S(1500));
    server.stop();
    let cdr = &read_cdrs(&site.config.database)[0];
    assert_eq!(cdr.ivr_path, ["message", "goodbye", "end"]);
    assert_eq!(cdr.digits, "#");
    let (_, samples) = the_recording(cdr);
    let length = seconds(&samples);
    assert!((0.8..=1.7).contains(&length), "{length} s");
    assert_is_the_tone(&samples);
}

#[test]
fn a_silent_caller_gets_the_failure_exit_and_no_file() {
    let site = record_site();
    let mut server = start(site.config.clone());
    let mut phone = Phone::new(server.sip);
    phone.call("100");
    phone.talk(S(3000));
    phone
        .wait_for(S(2000), |e| matches!(e, UaEvent::RemoteBye { .. }))
        .expect("the failure exit ends in a hang-up");
    let prompts = encoded_prompts(&site, phone.codec);
    assert_eq!(phone.heard(&prompts), ["welcome", "invalid"]);
    server.stop();
    let cdr = &read_cdrs(&site.config.database)[0];
    assert_eq!(cdr.ivr_path, ["message", "sorry", "end"]);
    assert!(cdr.recordings.is_empty());
    assert_eq!(
        wav_files(&site.config.recordings_dir),
        Vec::<PathBuf>::new()
    );
}

#[test]
fn a_caller_who_hangs_up_mid_message_leaves_it() {
    let site = record_site();
    let mut server = start(site.config.clone());
    let mut phone = Phone::new(server.sip);
    phone.call("100");
    phone.talk(S(600));
    phone.send_audio(&voice(1500), S(0));
    phone.hangup();
    phone
        .wait_for(S(2000), |e| matches!(e, UaEvent::Ended { .. }))
        .expect("BYE answered");
    server.stop();
    let cdr = &read_cdrs(&site.config.database)[0];
    assert_eq!(cdr.disposition, Disposition::CallerHangup);
    assert_eq!(cdr.ivr_path, ["message"]);
    let (_, samples) = the_recording(cdr);
    let length = seconds(&samples);
    assert!((1.2..=2.2).contains(&length), "{length} s");
    assert_is_the_tone(&samples);
}
