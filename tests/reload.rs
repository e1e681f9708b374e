//! Hot reload while serving: edits to flows and prompts reach new calls through the file
//! watcher (or a reload request, what SIGHUP does), invalid edits are refused, and calls in
//! progress finish on the version they started with, under load, without losing one.

mod common;

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use common::*;
use hotline::cdr::{CdrRecord, Disposition, HangupBy};
use hotline::media::Codec;
use hotline::sip::{CallRef, UaEvent};

const S: fn(u64) -> Duration = Duration::from_millis;
/// For anything the watcher must notice: it needs two polls of 500 ms, this is generous.
const RELOAD_WAIT: Duration = Duration::from_secs(10);

/// One version of the flow on number 100: a prompt, a menu (key 1 goes on), a last prompt,
/// hang-up. Node names carry the tag, so a CDR's path tells which version the call ran.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Version {
    tag: &'static str,
    prompts: [&'static str; 3],
}

const A: Version = Version {
    tag: "a",
    prompts: ["welcome", "menu", "goodbye"],
};
const B: Version = Version {
    tag: "b",
    prompts: ["option1", "invalid", "goodbye"],
};

impl Version {
    fn flow(&self) -> String {
        self.flow_with_choice(&format!("{}_bye", self.tag))
    }

    /// The same flow with key 1 pointing at a node that does not exist.
    fn broken(&self) -> String {
        self.flow_with_choice("nowhere")
    }

    fn flow_with_choice(&self, choice: &str) -> String {
        let t = self.tag;
        let [p1, p2, p3] = self.prompts;
        format!(
            r#"
[flow]
name = "line"
numbers = ["100"]
start = "{t}_hello"

[nodes.{t}_hello]
type = "play"
prompts = ["{p1}"]
next = "{t}_menu"

[nodes.{t}_menu]
type = "menu"
prompts = ["{p2}"]
choices = {{ "1" = "{choice}" }}
invalid_prompts = ["{p2}"]
timeout_prompts = ["{p2}"]
timeout = "20s"
max_failures = 1
on_failure = "{t}_bye"

[nodes.{t}_bye]
type = "play"
prompts = ["{p3}"]
next = "{t}_end"

[nodes.{t}_end]
type = "hangup"
"#
        )
    }

    fn path(&self) -> Vec<String> {
        ["hello", "menu", "bye", "end"]
            .iter()
            .map(|n| format!("{}_{n}", self.tag))
            .collect()
    }

    fn of_path(path: &[String]) -> Option<Version> {
        [A, B].into_iter().find(|v| v.path() == path)
    }
}

fn write_flow(site: &Site, text: &str) {
    std::fs::write(site.config.flows_dir.join("test.toml"), text).unwrap();
}

/// The menu prompts of every version: a caller presses 1 once it hears one of them.
fn menu_frames(prompts: &[(&str, Vec<u8>)], menus: &[&str]) -> HashSet<Vec<u8>> {
    prompts
        .iter()
        .filter(|(n, _)| menus.contains(n))
        .flat_map(|(_, bytes)| bytes.chunks(160).map(<[u8]>::to_vec))
        .collect()
}

/// One call driven without blocking, so one loop can run dozens at once.
struct Caller {
    phone: Phone,
    call: CallRef,
    call_id: String,
    answered: bool,
    pressed: bool,
    /// Held in the menu (not pressing 1) until the test lets it go.
    hold: bool,
    scanned: usize,
    placed: Instant,
    /// Reload bookkeeping of the load test, copied into the outcome.
    tag: CallTag,
}

#[derive(Debug, Clone, Copy, Default)]
struct CallTag {
    /// Edits written when the call was dialled, and whether each had been seen applied or
    /// refused by then.
    writes_at_dial: usize,
    settled_at_dial: bool,
    /// Edits written when the answer arrived.
    writes_at_answer: Option<usize>,
    /// Held in its menu through an edit until hotline had applied or refused it: it started
    /// before that and ended after.
    held_across_edit: bool,
}

impl CallTag {
    /// Dialled after the last edit was seen, and answered before the next one was written:
    /// hotline chose its version while no reload was pending, so it is known for certain.
    fn certain(&self) -> bool {
        self.settled_at_dial && self.writes_at_answer == Some(self.writes_at_dial)
    }
}

#[derive(Debug)]
struct Finished {
    call_id: String,
    heard: Vec<String>,
    tag: CallTag,
}

impl Caller {
    fn dial(server: SocketAddr, tag: CallTag) -> Caller {
        let mut phone = Phone::new(server);
        let offer = phone.offer(&[Codec::Pcmu], true);
        let call = phone.dial("100", Some(offer));
        let call_id = phone.ua.call_id(call).expect("call id").to_string();
        Caller {
            phone,
            call,
            call_id,
            answered: false,
            pressed: false,
            hold: false,
            scanned: 0,
            placed: Instant::now(),
            tag,
        }
    }

    /// Ok(true): hotline said goodbye and hung up. Err: the call went wrong.
    fn step(
        &mut self,
        menus: &HashSet<Vec<u8>>,
        prompts: &[(&str, Vec<u8>)],
        writes: usize,
    ) -> Result<bool, String> {
        self.phone.poll();
        while let Some(e) = self.phone.events.pop_front() {
            match e {
                UaEvent::Answered { .. } => {
                    self.answered = true;
                    self.tag.writes_at_answer = Some(writes);
                }
                UaEvent::Progress { .. } => {}
                UaEvent::RemoteBye { .. } if self.pressed => return Ok(true),
                other => {
                    return Err(format!(
                        "{}: unexpected {other:?}; heard {:?}",
                        self.call_id,
                        self.phone.heard(prompts)
                    ));
                }
            }
        }
        if self.answered && !self.pressed && !self.hold {
            let fresh = &self.phone.received[self.scanned..];
            self.scanned = self.phone.received.len();
            if fresh.iter().any(|(_, p)| menus.contains(p)) {
                // INFO, not RFC 4733 packets: it needs no pacing, so no phone waits for another.
                self.phone
                    .ua
                    .send_info_digit(Instant::now(), self.call, '1');
                self.pressed = true;
            }
        }
        if self.placed.elapsed() > Duration::from_secs(25) {
            return Err(format!("{}: not over after 25 s", self.call_id));
        }
        Ok(false)
    }

    fn finish(self, prompts: &[(&str, Vec<u8>)]) -> Finished {
        Finished {
            heard: self.phone.heard(prompts),
            call_id: self.call_id,
            tag: self.tag,
        }
    }
}

/// One call from dial to hotline's BYE: which prompts it heard.
fn call_once(server: &Running, prompts: &[(&str, Vec<u8>)], menus: &[&str]) -> Finished {
    let menus = menu_frames(prompts, menus);
    let mut c = Caller::dial(server.sip, CallTag::default());
    loop {
        match c.step(&menus, prompts, 0) {
            Ok(true) => return c.finish(prompts),
            Ok(false) => std::thread::sleep(S(2)),
            Err(e) => panic!("{e}"),
        }
    }
}

fn assert_completed_on(c: &CdrRecord, v: Version) {
    assert_eq!(
        (c.disposition, c.hangup_by, c.sip_code, c.digits.as_str()),
        (Disposition::Completed, HangupBy::Hotline, 200, "1"),
        "{c:?}"
    );
    assert_eq!(c.ivr_path, v.path(), "{c:?}");
}

#[test]
fn editing_a_flow_changes_what_new_calls_hear_by_file_watch_alone() {
    let site = site(&A.flow());
    let mut server = start(site.config.clone());
    let prompts = encoded_prompts(&site, Codec::Pcmu);
    let menus = ["menu", "invalid"];
    assert_eq!(call_once(&server, &prompts, &menus).heard, A.prompts);
    write_flow(&site, &B.flow());
    let status = server.wait_reload(RELOAD_WAIT, |s| s.version == 2);
    assert_eq!(status.refused, 0);
    assert_eq!(call_once(&server, &prompts, &menus).heard, B.prompts);
    server.stop();
    let cdrs = read_cdrs(&site.config.database);
    assert_eq!(cdrs.len(), 2);
    assert_completed_on(&cdrs[0], A);
    assert_completed_on(&cdrs[1], B);
}

#[test]
fn an_invalid_edit_is_refused_and_new_calls_keep_the_previous_version() {
    let site = site(&A.flow());
    let mut server = start(site.config.clone());
    let prompts = encoded_prompts(&site, Codec::Pcmu);
    let menus = ["menu", "invalid"];
    write_flow(&site, &B.broken());
    let status = server.wait_reload(RELOAD_WAIT, |s| s.refused == 1);
    assert_eq!(status.version, 1, "the running version stays");
    assert!(
        status.last_errors.join("\n").contains("nowhere"),
        "the errors name the problem: {:?}",
        status.last_errors
    );
    assert_eq!(call_once(&server, &prompts, &menus).heard, A.prompts);
    // A refusal does not stop the watcher: the fixed file is picked up.
    write_flow(&site, &B.flow());
    server.wait_reload(RELOAD_WAIT, |s| s.version == 2);
    assert_eq!(call_once(&server, &prompts, &menus).heard, B.prompts);
    server.stop();
    let cdrs = read_cdrs(&site.config.database);
    assert_eq!(cdrs.len(), 2);
    assert_completed_on(&cdrs[0], A);
    assert_completed_on(&cdrs[1], B);
}

#[test]
fn a_missing_prompt_is_refused_until_its_wav_appears_under_the_language_dir() {
    let site = site(&A.flow());
    let mut server = start(site.config.clone());
    let extra = Version {
        tag: "a",
        prompts: ["extra", "menu", "goodbye"],
    };
    write_flow(&site, &extra.flow());
    let status = server.wait_reload(RELOAD_WAIT, |s| s.refused == 1);
    assert!(
        status.last_errors.join("\n").contains("extra"),
        "{:?}",
        status.last_errors
    );
    let lang = site.config.prompts_dir.join(&site.config.language);
    std::fs::create_dir_all(&lang).unwrap();
    // Written under a scratch name and renamed, as deploy tools do; the scratch file alone
    // must not count as a change.
    let scratch = lang.join("extra.wav.tmp");
    write_tone(&scratch, 1000.0, 400);
    std::fs::rename(&scratch, lang.join("extra.wav")).unwrap();
    server.wait_reload(RELOAD_WAIT, |s| s.version == 2);
    let mut prompts = encoded_prompts(&site, Codec::Pcmu);
    prompts.push((
        "extra",
        encoded_prompt(&lang.join("extra.wav"), Codec::Pcmu),
    ));
    assert_eq!(call_once(&server, &prompts, &["menu"]).heard, extra.prompts);
    server.stop();
}

#[test]
fn with_watching_off_only_a_reload_request_applies_an_edit() {
    let mut site = site(&A.flow());
    site.config.reload_watch = false;
    let mut server = start(site.config.clone());
    let prompts = encoded_prompts(&site, Codec::Pcmu);
    let menus = ["menu", "invalid"];
    write_flow(&site, &B.flow());
    // Several poll periods: nothing may happen without the request.
    std::thread::sleep(S(1500));
    assert_eq!(server.reload_status().version, 1);
    assert_eq!(call_once(&server, &prompts, &menus).heard, A.prompts);
    server.server.as_ref().unwrap().reload();
    server.wait_reload(RELOAD_WAIT, |s| s.version == 2);
    assert_eq!(call_once(&server, &prompts, &menus).heard, B.prompts);
    server.stop();
}

/// Calls dialled per quiet phase (between one edit taking effect and the next).
const CALLS_PER_PHASE: usize = 24;
/// Calls kept in progress besides the ones held through an edit.
const CONCURRENT: usize = 20;

#[test]
fn flows_rewritten_under_load_lose_no_call() {
    let started = Instant::now();
    let site = site(&A.flow());
    let mut server = start(site.config.clone());
    let prompts = encoded_prompts(&site, Codec::Pcmu);
    let menus = menu_frames(&prompts, &["menu", "invalid"]);
    // Each edit, and the version new calls get once hotline has seen it.
    let edits: [(String, Version, bool); 4] = [
        (B.flow(), B, true),
        (B.broken(), B, false),
        (A.flow(), A, true),
        (B.flow(), B, true),
    ];
    // live_after[k]: the version live once k edits have been seen.
    let live_after = [A, B, B, A, B];

    let mut live: Vec<Caller> = Vec::new();
    let mut finished: Vec<Finished> = Vec::new();
    let mut failures: Vec<String> = Vec::new();
    let mut placed = 0usize;
    let mut writes = 0usize;
    let mut seen = 0usize;
    let mut dialled_in_phase = 0usize;
    let mut status_at_write = server.reload_status();
    let mut held_per_edit = vec![0usize; edits.len()];
    let deadline = Instant::now() + Duration::from_secs(60);

    loop {
        assert!(
            Instant::now() < deadline,
            "load test stuck: {writes} edits written, {seen} seen, {} live",
            live.len()
        );
        let settled = seen == writes;
        let dialling = !(settled && writes == edits.len() && dialled_in_phase >= CALLS_PER_PHASE);
        if !dialling && live.is_empty() {
            break;
        }
        // Keep CONCURRENT calls going that are free to finish.
        if dialling {
            while live.iter().filter(|c| !c.hold).count() < CONCURRENT {
                let tag = CallTag {
                    writes_at_dial: writes,
                    settled_at_dial: settled,
                    ..CallTag::default()
                };
                live.push(Caller::dial(server.sip, tag));
                placed += 1;
                dialled_in_phase += 1;
            }
        }
        let mut i = 0;
        while i < live.len() {
            match live[i].step(&menus, &prompts, writes) {
                Ok(false) => i += 1,
                Ok(true) => finished.push(live.swap_remove(i).finish(&prompts)),
                Err(e) => {
                    failures.push(e);
                    live.swap_remove(i);
                }
            }
        }
        if settled && writes < edits.len() && dialled_in_phase >= CALLS_PER_PHASE {
            // Hold some answered calls in their menu through the edit, so there are calls
            // that surely started before it and end after it.
            let holdable = live.iter().filter(|c| c.answered && !c.pressed).count();
            if holdable >= 5 {
                for c in live.iter_mut().filter(|c| !c.pressed) {
                    c.hold = true;
                }
                status_at_write = server.reload_status();
                write_flow(&site, &edits[writes].0);
                writes += 1;
            }
        } else if !settled {
            let s = server.reload_status();
            let (_, _, valid) = &edits[seen];
            let done = if *valid {
                s.version > status_at_write.version
            } else {
                s.refused > status_at_write.refused
            };
            assert!(
                s.refused == status_at_write.refused || !*valid,
                "edit {seen} is valid but was refused: {:?}",
                s.last_errors
            );
            if done {
                for c in live.iter_mut().filter(|c| c.hold) {
                    c.hold = false;
                    if c.tag.certain() {
                        c.tag.held_across_edit = true;
                        held_per_edit[seen] += 1;
                    }
                }
                seen += 1;
                dialled_in_phase = 0;
            }
        }
        std::thread::sleep(S(2));
    }
    server.stop();
    let cdrs = read_cdrs(&site.config.database);

    assert!(failures.is_empty(), "failed calls: {failures:#?}");
    assert_eq!(finished.len(), placed);
    assert_eq!(cdrs.len(), placed, "one CDR per call placed");
    let mut by_id: HashMap<&str, Vec<&CdrRecord>> = HashMap::new();
    for c in &cdrs {
        by_id.entry(c.sip_call_id.as_str()).or_default().push(c);
    }
    let mut per_version: HashMap<&str, usize> = HashMap::new();
    for f in &finished {
        let records = by_id.get(f.call_id.as_str()).map_or(&[][..], Vec::as_slice);
        assert_eq!(records.len(), 1, "{}: CDRs {records:?}", f.call_id);
        let cdr = records[0];
        let v = Version::of_path(&cdr.ivr_path)
            .unwrap_or_else(|| panic!("a path of no single version: {cdr:?}"));
        assert_completed_on(cdr, v);
        assert_eq!(f.heard, v.prompts, "{}: audio and CDR agree", f.call_id);
        // Held calls among these started before an edit and ended after hotline had dealt with it.
        if f.tag.certain() {
            assert_eq!(
                v, live_after[f.tag.writes_at_dial],
                "{}: started after {} edits (held across the next: {})",
                f.call_id, f.tag.writes_at_dial, f.tag.held_across_edit
            );
            *per_version.entry(v.tag).or_default() += 1;
        }
    }
    for (k, held) in held_per_edit.iter().enumerate() {
        assert!(
            *held > 0,
            "edit {k}: no call of known version was held across it"
        );
    }
    assert!(
        per_version["a"] > 0 && per_version["b"] > 0,
        "{per_version:?}"
    );
    eprintln!(
        "{placed} calls ({per_version:?} of known version), held across each edit: \
         {held_per_edit:?}; {:?}",
        started.elapsed()
    );
}

/// The real signal into the real binary, and what an admin reads in the log.
#[test]
fn sighup_reloads_the_serving_binary_and_the_log_says_what_and_why() {
    let site = site(&A.flow());
    let port = std::net::UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let config = site.dir.path().join("hotline.toml");
    // Watching off, so only the signal can have caused the reloads below.
    std::fs::write(&config, "[reload]\nwatch = false\n").unwrap();
    let log = site.dir.path().join("serve.log");
    let rtp = 47400 + 2 * fastrand::u16(..500);
    let mut child = serve_command(
        &site,
        port,
        &format!("{rtp}-{}", rtp + 100),
        Some(&config),
        &log,
    )
    .env("NO_COLOR", "1")
    .env_remove("RUST_LOG")
    .spawn()
    .unwrap();
    let wait_log = |what: &str, count: usize| {
        let end = Instant::now() + RELOAD_WAIT;
        loop {
            let text = std::fs::read_to_string(&log).unwrap_or_default();
            if text.matches(what).count() >= count {
                return text;
            }
            assert!(Instant::now() < end, "no {what:?} in the log:\n{text}");
            std::thread::sleep(S(20));
        }
    };
    let hup = |child: &std::process::Child| {
        // SAFETY: signalling our own child.
        unsafe { libc::kill(child.id() as i32, libc::SIGHUP) };
    };
    wait_log("taking calls", 1);
    write_flow(&site, &B.broken());
    hup(&child);
    let text = wait_log("reload refused", 1);
    assert!(
        text.lines()
            .any(|l| l.contains("ERROR") && l.contains("reload refused") && l.contains("nowhere")),
        "each error line is logged:\n{text}"
    );
    write_flow(&site, &B.flow());
    hup(&child);
    let text = wait_log("flows and prompts reloaded", 1);
    let line = text
        .lines()
        .find(|l| l.contains("flows and prompts reloaded"))
        .unwrap();
    assert!(
        line.contains("INFO")
            && line.contains("trigger=\"signal\"")
            && line.contains("flows=1")
            && line.contains("prompts=3"),
        "{line}"
    );
    let server = format!("127.0.0.1:{port}").parse().unwrap();
    let prompts = encoded_prompts(&site, Codec::Pcmu);
    let menus = menu_frames(&prompts, &["menu", "invalid"]);
    let mut c = Caller::dial(server, CallTag::default());
    while !c.step(&menus, &prompts, 0).unwrap() {
        std::thread::sleep(S(2));
    }
    assert_eq!(c.finish(&prompts).heard, B.prompts);
    // SAFETY: signalling our own child.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    assert!(child.wait().unwrap().success());
    let cdrs = read_cdrs(&site.config.database);
    assert_eq!(cdrs.len(), 1);
    assert_completed_on(&cdrs[0], B);
}

/// `hotline announce` works whatever state the flow files are in: with a broken flow file
/// beside it (every reload refused), switching a notice on still reaches new calls, and off
/// again takes it away (issue 10).
#[test]
fn an_announcement_switch_takes_effect_while_a_flow_file_is_broken() {
    let flow = r##"
[flow]
name = "notice"
numbers = ["100"]
start = "notice"
[nodes.notice]
type = "announcement"
switch = "outage"
prompts = ["option1"]
next = "bye"
[nodes.bye]
type = "play"
prompts = ["goodbye"]
next = "end"
[nodes.end]
type = "hangup"
"##;
    let site = site(flow);
    let mut server = start(site.config.clone());
    let prompts = encoded_prompts(&site, Codec::Pcmu);
    let hear = |server: &Running| {
        let mut phone = Phone::new(server.sip);
        phone.call("100");
        phone.talk(Duration::from_millis(1500));
        phone.heard(&prompts)
    };
    assert_eq!(hear(&server), ["goodbye"]);
    std::fs::write(site.config.flows_dir.join("other.toml"), "[flow\nbroken").unwrap();
    server.wait_reload(RELOAD_WAIT, |s| s.refused >= 1);
    let switches = site.config.flows_dir.join(hotline::flow::ANNOUNCEMENT_DIR);
    std::fs::create_dir_all(&switches).unwrap();
    std::fs::write(switches.join("outage.on"), b"").unwrap();
    server.wait_reload(RELOAD_WAIT, |s| s.refused >= 2);
    assert_eq!(hear(&server), ["option1", "goodbye"], "switched on");
    // A window that is over plays no more, one still open does.
    std::fs::write(
        switches.join("outage.on"),
        "from = \"2020-01-01T00:00:00Z\"\nuntil = \"2020-01-02T00:00:00Z\"\n",
    )
    .unwrap();
    server.wait_reload(RELOAD_WAIT, |s| s.refused >= 3);
    assert_eq!(hear(&server), ["goodbye"], "its window is over");
    std::fs::write(
        switches.join("outage.on"),
        "from = \"2020-01-01T00:00:00Z\"\nuntil = \"2999-01-01T00:00:00Z\"\n",
    )
    .unwrap();
    server.wait_reload(RELOAD_WAIT, |s| s.refused >= 4);
    assert_eq!(hear(&server), ["option1", "goodbye"], "inside its window");
    std::fs::remove_file(switches.join("outage.on")).unwrap();
    server.wait_reload(RELOAD_WAIT, |s| s.refused >= 5);
    assert_eq!(hear(&server), ["goodbye"], "switched off");
    server.stop();
}

/// Issue 10, item 8: every CDR names the version of the flow set that served it, and labels
/// the flow gave the call; `hotline rollback` puts the previous version back on a running
/// server in one command (and the edit it replaced can be had back); `hotline cdr --by`
/// counts calls per label value.
#[test]
fn cdrs_name_the_version_and_rollback_puts_the_previous_one_back() {
    let flow = |prompt: &str, call_type: &str| {
        format!(
            r##"
[flow]
name = "line"
numbers = ["100"]
start = "tag"
[nodes.tag]
type = "label"
labels = {{ call_type = "{call_type}", caller_tail = "{{right(caller, 4)}}" }}
next = "hello"
[nodes.hello]
type = "play"
prompts = ["{prompt}"]
next = "end"
[nodes.end]
type = "hangup"
"##
        )
    };
    let site = site(&flow("welcome", "billing"));
    let mut server = start(site.config.clone());
    let prompts = encoded_prompts(&site, Codec::Pcmu);
    let hear = |server: &Running| {
        let mut phone = Phone::new(server.sip);
        phone.call("100");
        phone.talk(Duration::from_millis(1200));
        phone.heard(&prompts)
    };
    assert_eq!(hear(&server), ["welcome"]);
    std::fs::write(
        site.config.flows_dir.join("test.toml"),
        flow("goodbye", "outage"),
    )
    .unwrap();
    server.wait_reload(RELOAD_WAIT, |s| s.version >= 2);
    assert_eq!(hear(&server), ["goodbye"]);

    let run = |args: &[&str]| {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_hotline"))
            .args(args)
            .arg("--flows")
            .arg(&site.config.flows_dir)
            .arg("--prompts")
            .arg(&site.config.prompts_dir)
            .current_dir(site.dir.path())
            .output()
            .unwrap();
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        (out.status.success(), text)
    };
    let hotline = |args: &[&str]| {
        let (ok, text) = run(args);
        assert!(ok, "{args:?}: {text}");
        text
    };
    let listing = hotline(&["versions"]);
    assert_eq!(
        listing.lines().count(),
        3,
        "a header and two versions: {listing}"
    );
    // A broken edit on disk, then the rollback: the version before the running one returns.
    std::fs::write(site.config.flows_dir.join("test.toml"), "[flow\n").unwrap();
    server.wait_reload(RELOAD_WAIT, |s| s.refused >= 1);
    let rolled = hotline(&["rollback"]);
    assert!(
        rolled.contains("a running hotline applied version"),
        "{rolled}"
    );
    assert_eq!(hear(&server), ["welcome"], "back on the first version");
    let replaced = rolled
        .split("kept as version ")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .expect("the replaced files' version")
        .to_string();
    // The broken edit was kept, and comes back on request; it still does not load, which
    // the command says (the server refuses it again and keeps serving).
    let (ok, text) = run(&["rollback", &replaced[..8], "--wait", "0"]);
    assert!(!ok && text.contains("do not load"), "{text}");
    assert_eq!(
        std::fs::read_to_string(site.config.flows_dir.join("test.toml")).unwrap(),
        "[flow\n"
    );
    server.stop();

    let cdrs = read_cdrs(&site.config.database);
    assert_eq!(cdrs.len(), 3, "{cdrs:?}");
    let versions: Vec<&str> = cdrs
        .iter()
        .map(|c| c.flow_version.as_deref().unwrap_or(""))
        .collect();
    // Newest first: the first version again, the second, the first.
    assert_eq!(versions[0], versions[2]);
    assert_ne!(versions[0], versions[1]);
    assert_eq!(versions[0].len(), 12);
    assert!(
        listing.contains(versions[1]) && listing.contains(versions[2]),
        "{listing}"
    );
    let label = |c: &CdrRecord, name: &str| {
        c.labels
            .iter()
            .find(|l| l.name == name)
            .map(|l| l.value.clone())
    };
    assert_eq!(label(&cdrs[1], "call_type").as_deref(), Some("outage"));
    assert_eq!(label(&cdrs[2], "call_type").as_deref(), Some("billing"));
    assert_eq!(label(&cdrs[2], "caller_tail").map(|t| t.len()), Some(4));
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_hotline"))
        .args([
            "cdr",
            "--by",
            "call_type",
            "--database",
            &site.config.database,
        ])
        .output()
        .unwrap();
    let report = String::from_utf8_lossy(&out.stdout);
    let billing = report
        .lines()
        .find(|l| l.starts_with("billing"))
        .unwrap_or_else(|| panic!("{report}"));
    assert_eq!(billing.split_whitespace().nth(1), Some("2"), "{report}");
    assert!(report.lines().any(|l| l.starts_with("outage")), "{report}");
}
