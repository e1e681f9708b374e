//! Real calls through the demo hotline (ivr-flows/hotline.toml) with its real prompts in both
//! languages and its demo back end: a known caller's balance read back in English and in
//! Mandarin, and a back end too slow to answer.

mod common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use common::*;
use hotline::cdr::CdrRecord;
use hotline::sip::UaEvent;

const S: fn(u64) -> Duration = Duration::from_millis;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The demo flow in a scratch site, pointed at a demo back end of its own, with opening
/// hours replaced by `hours` so the path does not depend on when the test runs.
fn demo_site(hours: &str) -> (Site, std::net::SocketAddr) {
    let backend = hotline::demo::spawn("127.0.0.1:0".parse().unwrap()).expect("demo back end");
    let mut site = site("");
    let flows = site.config.flows_dir.clone();
    std::fs::remove_file(flows.join("test.toml")).unwrap();
    let text = std::fs::read_to_string(repo().join("ivr-flows/hotline.toml")).unwrap();
    let mut out = String::new();
    for line in text.lines() {
        let line = line.replace("127.0.0.1:8090", &backend.to_string());
        if line.starts_with("hours = ") {
            out.push_str(&format!("hours = {hours}\n"));
        } else if line.starts_with("holidays = ")
            || line.starts_with("special = ")
            || line.starts_with("calendar = ")
        {
            continue;
        } else {
            out.push_str(&line);
            out.push('\n');
        }
    }
    std::fs::write(flows.join("hotline.toml"), out).unwrap();
    site.config.prompts_dir = repo().join("prompts");
    (site, backend)
}

const OPEN: &str = "{ daily = \"00:00-24:00\" }";

fn hang_up_by_hotline(phone: &mut Phone, within: Duration) {
    phone
        .wait_for(within, |e| matches!(e, UaEvent::RemoteBye { .. }))
        .expect("hotline hangs up at the end of the flow");
}

fn one_cdr(database: &str) -> CdrRecord {
    let cdrs = read_cdrs(database);
    assert_eq!(cdrs.len(), 1, "{cdrs:?}");
    cdrs.into_iter().next().unwrap()
}

fn contains_in_order(path: &[String], expected: &[&str]) -> bool {
    let mut rest = path.iter();
    expected.iter().all(|e| rest.any(|p| p == e))
}

fn heard_in_order(phone: &Phone, prompts_dir: &Path, language: &str, expected: &[&str]) {
    let prompts: Vec<(&str, Vec<u8>)> = expected
        .iter()
        .map(|name| {
            let file = prompts_dir.join(language).join(format!("{name}.wav"));
            (*name, encoded_prompt(&file, phone.codec))
        })
        .collect();
    let heard = phone.heard(&prompts);
    let heard: Vec<&str> = heard.iter().map(String::as_str).collect();
    let mut rest = heard.iter();
    for e in expected {
        assert!(
            rest.any(|h| h == e),
            "expected to hear {e} (in order); heard {heard:?}"
        );
    }
}

#[test]
fn an_english_vip_caller_hears_the_balance_read_back() {
    let (site, _backend) = demo_site(OPEN);
    let mut server = start(site.config.clone());
    let mut phone = Phone::calling_from(server.sip, "13800000001");
    phone.call("100");
    phone.talk(S(500));
    phone.press("2", S(1200)); // English; the look-up greets a VIP
    phone.press("1", S(800)); // barge into the main menu: account balance
    phone.press("12345678#", S(1500));
    phone.press("1", S(14_000)); // confirm; the balance is read back
    phone.press("9", S(500)); // no more questions
    hang_up_by_hotline(&mut phone, S(8000));
    server.stop();
    let c = one_cdr(&site.config.database);
    assert!(
        contains_in_order(
            &c.ivr_path,
            &[
                "choose_language",
                "english",
                "who_is_calling",
                "vip_greeting",
                "main_menu",
                "account",
                "balance",
                "say_balance",
                "anything_else",
                "goodbye"
            ]
        ),
        "{:?}",
        c.ivr_path
    );
    assert_eq!(c.language.as_deref(), Some("en"));
    assert_eq!(c.digits, "2112345678#19");
    heard_in_order(
        &phone,
        &site.config.prompts_dir,
        "en",
        &[
            "vip_greeting",
            "you_entered",
            "confirm_entry",
            "balance_is",
            "due_date_is",
            "goodbye",
        ],
    );
}

#[test]
fn a_mandarin_caller_hears_the_amount_in_chinese() {
    let (site, _backend) = demo_site(OPEN);
    let mut server = start(site.config.clone());
    let mut phone = Phone::calling_from(server.sip, "13800000002");
    phone.call("95598");
    phone.talk(S(500));
    phone.press("1", S(1200));
    phone.press("1", S(800));
    phone.press("87654321#", S(1500));
    phone.press("1", S(12_000));
    phone.press("9", S(500));
    hang_up_by_hotline(&mut phone, S(8000));
    server.stop();
    let c = one_cdr(&site.config.database);
    assert!(
        contains_in_order(
            &c.ivr_path,
            &[
                "mandarin",
                "welcome_back",
                "main_menu",
                "say_balance",
                "goodbye"
            ]
        ),
        "{:?}",
        c.ivr_path
    );
    assert_eq!(c.language.as_deref(), Some("zh"));
    // 0.35 in Chinese is "three jiao five fen", after the balance prompt.
    heard_in_order(
        &phone,
        &site.config.prompts_dir,
        "zh",
        &[
            "balance_is",
            "say/3",
            "say/jiao",
            "say/5",
            "say/fen",
            "due_date_is",
            "goodbye",
        ],
    );
}

#[test]
fn a_back_end_that_does_not_answer_in_time_takes_the_failure_exit() {
    let (site, _backend) = demo_site(OPEN);
    let mut server = start(site.config.clone());
    let mut phone = Phone::calling_from(server.sip, "13900000000");
    phone.call("100");
    phone.talk(S(500));
    phone.press("2", S(1500)); // an unknown caller: straight to the menu
    phone.press("1", S(800));
    // The demo back end sits on this account for 10 s; the flow allows 3 s.
    phone.press("99999999#", S(1500));
    phone.press("1", S(3500));
    phone.talk(S(6000));
    server.stop();
    let c = one_cdr(&site.config.database);
    assert!(
        contains_in_order(
            &c.ivr_path,
            &[
                "who_is_calling",
                "main_menu",
                "account",
                "balance",
                "backend_down"
            ]
        ),
        "{:?}",
        c.ivr_path
    );
    assert!(!c.ivr_path.iter().any(|n| n == "say_balance"));
}

#[test]
fn after_hours_a_caller_leaves_a_message_and_the_wav_holds_it() {
    let (mut site, _backend) = demo_site("{ daily = \"closed\" }");
    site.config.recordings_dir = site.dir.path().join("recordings");
    let mut server = start(site.config.clone());
    let mut phone = Phone::calling_from(server.sip, "13800000002");
    phone.call("100");
    phone.talk(S(500));
    phone.press("2", S(1500)); // English; closed: the after-hours menu
    phone.press("1", S(9000)); // leave a message: the prompt and the beep play out
    phone.send_audio(&sine(440.0, 2000, 6000.0), S(200));
    phone.press("#", S(6000)); // done; "your message has been recorded", goodbye
    hang_up_by_hotline(&mut phone, S(8000));
    server.stop();
    let c = one_cdr(&site.config.database);
    assert!(
        contains_in_order(
            &c.ivr_path,
            &[
                "english",
                "hours",
                "after_hours",
                "voicemail",
                "message_saved",
                "goodbye"
            ]
        ),
        "{:?}",
        c.ivr_path
    );
    assert_eq!(c.recordings.len(), 1, "{c:?}");
    let mut wav = hound::WavReader::open(&c.recordings[0]).expect("the recording exists");
    let spec = wav.spec();
    assert_eq!(
        (spec.sample_rate, spec.channels, spec.bits_per_sample),
        (8000, 1, 16)
    );
    let samples: Vec<i16> = wav.samples::<i16>().map(Result::unwrap).collect();
    // Recording starts at the beep, so the silence before the caller speaks is kept; the
    // message itself is the two seconds of tone.
    let first = samples
        .iter()
        .position(|s| s.unsigned_abs() > 2000)
        .expect("sound");
    let last = samples
        .iter()
        .rposition(|s| s.unsigned_abs() > 2000)
        .expect("sound");
    let spoken = (last - first) as f64 / 8000.0;
    assert!((1.8..2.3).contains(&spoken), "{spoken} s of message");
    assert!(samples.len() as f64 / 8000.0 < 15.0);
    // The tone that was sent: about 880 zero crossings a second where it is loud.
    let loud: Vec<i16> = samples
        .iter()
        .copied()
        .skip_while(|s| s.unsigned_abs() < 2000)
        .take(8000)
        .collect();
    let crossings = loud.windows(2).filter(|w| (w[0] < 0) != (w[1] < 0)).count() as f64 * 8000.0
        / loud.len() as f64;
    assert!(
        (820.0..940.0).contains(&crossings),
        "{crossings} crossings/s"
    );
}
