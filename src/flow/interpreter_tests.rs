use std::sync::Arc;
use std::time::{Duration, Instant};

use super::*;
use crate::flow::{FlowId, FlowSet, load_dir};

#[path = "interpreter_node_tests.rs"]
mod nodes;

const FLOW: &str = r##"
[flow]
name = "t"
numbers = ["100"]
start = "welcome"

[nodes.welcome]
type = "play"
prompts = ["welcome"]
barge_in = true
next = "menu"

[nodes.menu]
type = "menu"
prompts = ["menu"]
choices = { "1" = "one", "2" = "account", "42" = "answer", "0" = "bye" }
invalid_prompts = ["invalid"]
timeout_prompts = ["timeout"]
timeout = "5s"
inter_digit_timeout = "2s"
max_failures = 3
on_failure = "bye"

[nodes.one]
type = "play"
prompts = ["option1"]
next = "menu"

[nodes.answer]
type = "play"
prompts = ["option42"]
next = "bye"

[nodes.account]
type = "collect"
prompts = ["enter"]
variable = "account"
min_digits = 4
max_digits = 6
terminator = "#"
first_digit_timeout = "5s"
inter_digit_timeout = "3s"
max_attempts = 2
invalid_prompts = ["invalid"]
next = "thanks"
on_failure = "bye"

[nodes.thanks]
type = "goto"
next = "bye"

[nodes.bye]
type = "play"
prompts = ["goodbye"]
next = "end"

[nodes.end]
type = "hangup"
"##;

pub(super) struct T {
    pub now: Instant,
    pub it: Interpreter,
    pub set: Arc<FlowSet>,
}

/// Compile flow files from text; panics with every message when they do not load.
pub(super) fn compile(files: &[(&str, &str)]) -> Arc<FlowSet> {
    let dir = std::env::temp_dir().join(format!("hotline-interp-{}", fastrand::u64(..)));
    std::fs::create_dir_all(&dir).unwrap();
    for (name, text) in files {
        let path = dir.join(name);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }
    let (set, diags) = load_dir(&dir);
    std::fs::remove_dir_all(&dir).ok();
    match set {
        Some(s) => Arc::new(s),
        None => panic!(
            "{}",
            diags
                .errors
                .iter()
                .map(|e| e.to_string())
                .collect::<Vec<_>>()
                .join("\n")
        ),
    }
}

impl T {
    pub fn new(text: &str) -> Self {
        T::with(&[("t.toml", text)], "2026-12-01T10:00:00Z")
    }

    /// Several files; the call enters the first flow, at `wall` (UTC, RFC 3339). Files named
    /// `announcements/NAME.on` are the switches the call starts with.
    pub fn with(files: &[(&str, &str)], wall: &str) -> Self {
        let mut switches = crate::flow::Switches::default();
        let mut flows = Vec::new();
        for (name, text) in files {
            match name
                .strip_prefix("announcements/")
                .and_then(|n| n.strip_suffix(".on"))
            {
                Some(switch) => switches.insert(
                    switch,
                    crate::flow::switches::parse_file(text, &jiff::tz::TimeZone::UTC).unwrap(),
                ),
                None => flows.push((*name, *text)),
            }
        }
        let set = compile(&flows);
        let now = Instant::now();
        let info = CallInfo {
            caller: "8613800000001".into(),
            dialled: "100".into(),
            wall: wall.parse().unwrap(),
            started: now,
            tz: jiff::tz::TimeZone::UTC,
            language: "en".into(),
            switches: Arc::new(switches),
        };
        let mut it = Interpreter::new(Arc::clone(&set), FlowId(0), info);
        it.start(now);
        T { now, it, set }
    }

    /// Drain actions, naming played prompts and tasks; returns them and the last play id.
    pub fn actions(&mut self) -> (Vec<String>, Option<PlayId>) {
        let mut out = Vec::new();
        let mut last = None;
        while let Some(a) = self.it.poll_action() {
            match a {
                FlowAction::Play { id, prompts, .. } => {
                    last = Some(id);
                    out.extend(prompts.iter().map(|p| self.set.prompt_name(*p).to_string()));
                }
                FlowAction::StopPlayback => out.push("<stop>".into()),
                FlowAction::Hangup => out.push("<hangup>".into()),
                FlowAction::Lookup { request, .. } => out.push(format!("<lookup {}>", request.url)),
                FlowAction::Record { .. } => out.push("<record>".into()),
                FlowAction::StopRecording { .. } => out.push("<stop recording>".into()),
                FlowAction::Transfer { target, .. } => out.push(format!("<transfer {target}>")),
                FlowAction::Queue { queue, .. } => out.push(format!("<queue {queue}>")),
            }
        }
        (out, last)
    }

    /// Let the current prompt run to its end.
    pub fn finish_prompt(&mut self, id: PlayId) {
        self.now += Duration::from_secs(1);
        self.it.on_play_done(self.now, id);
    }

    pub fn wait(&mut self, d: Duration) {
        self.now += d;
        if self.it.poll_timeout().is_some_and(|t| t <= self.now) {
            self.it.on_timeout(self.now);
        }
    }

    pub fn press(&mut self, keys: &str) {
        for k in keys.chars() {
            self.it.on_digit(self.now, k);
        }
    }

    /// Play out prompts until the interpreter waits for input or a task, or finishes.
    pub fn settle(&mut self) -> Vec<String> {
        let mut heard = Vec::new();
        loop {
            let (names, last) = self.actions();
            let task = names
                .iter()
                .any(|n| n.starts_with("<") && n != "<stop>" && n != "<hangup>");
            heard.extend(names);
            match last {
                Some(id) if !task && !self.it.is_finished() && self.it.poll_timeout().is_none() => {
                    self.finish_prompt(id)
                }
                _ => return heard,
            }
        }
    }
}

#[test]
fn menu_choice_leads_to_its_node_and_back() {
    let mut t = T::new(FLOW);
    assert_eq!(t.settle(), ["welcome", "menu"]);
    assert_eq!(
        t.it.poll_timeout(),
        Some(t.now + Duration::from_secs(5)),
        "first-digit timer starts at prompt end"
    );
    t.press("1");
    assert_eq!(t.settle(), ["option1", "menu"]);
    assert_eq!(t.it.path(), ["welcome", "menu", "one", "menu"]);
    assert_eq!(t.it.digits(), "1");
}

#[test]
fn timeouts_replay_with_timeout_prompt_then_failure_exit() {
    let mut t = T::new(FLOW);
    t.settle();
    t.wait(Duration::from_millis(4999));
    assert!(t.settle().is_empty(), "no timeout before 5 s");
    t.wait(Duration::from_millis(1));
    assert_eq!(t.settle(), ["timeout", "menu"]);
    t.wait(Duration::from_secs(5));
    assert_eq!(t.settle(), ["timeout", "menu"]);
    t.wait(Duration::from_secs(5));
    assert_eq!(
        t.settle(),
        ["goodbye", "<hangup>"],
        "third failure takes on_failure"
    );
    assert!(t.it.is_finished());
}

#[test]
fn invalid_digit_plays_invalid_prompt_and_counts() {
    let mut t = T::new(FLOW);
    t.settle();
    t.press("9");
    assert_eq!(t.settle(), ["invalid", "menu"]);
    t.press("1");
    assert_eq!(t.settle(), ["option1", "menu"]);
}

#[test]
fn multi_digit_choice_waits_inter_digit_timeout() {
    let mut t = T::new(FLOW);
    t.settle();
    t.press("4");
    assert_eq!(t.it.poll_timeout(), Some(t.now + Duration::from_secs(2)));
    t.press("2");
    assert_eq!(t.settle(), ["option42", "goodbye", "<hangup>"]);
    let mut t = T::new(FLOW);
    t.settle();
    t.press("4");
    t.wait(Duration::from_secs(2));
    assert_eq!(t.settle(), ["invalid", "menu"], "a lone 4 is not a choice");
}

#[test]
fn barge_in_stops_prompt_and_key_counts() {
    let mut t = T::new(FLOW);
    let (heard, _) = t.actions();
    assert_eq!(heard, ["welcome"]);
    t.press("1");
    let (heard, _) = t.actions();
    assert_eq!(
        heard,
        ["<stop>", "option1"],
        "welcome interrupted, the key reaches the menu"
    );
    assert_eq!(t.it.path(), ["welcome", "menu", "one"]);
}

#[test]
fn keys_during_uninterruptible_prompt_are_ignored() {
    let mut t = T::new(FLOW);
    t.settle();
    t.press("1");
    let (heard, id) = t.actions();
    assert_eq!(heard, ["option1"]);
    t.press("0");
    assert!(t.actions().0.is_empty());
    t.finish_prompt(id.unwrap());
    assert_eq!(t.settle(), ["menu"]);
}

#[test]
fn collect_with_terminator_max_digits_and_timeouts() {
    let mut t = T::new(FLOW);
    t.settle();
    t.press("2");
    assert_eq!(t.settle(), ["enter"]);
    t.press("1234#");
    assert_eq!(t.settle(), ["goodbye", "<hangup>"]);
    assert_eq!(t.it.var("account"), Some("1234"));
    assert_eq!(
        t.it.path(),
        ["welcome", "menu", "account", "thanks", "bye", "end"]
    );

    let mut t = T::new(FLOW);
    t.settle();
    t.press("2");
    t.settle();
    t.press("123456");
    t.settle();
    assert_eq!(
        t.it.var("account"),
        Some("123456"),
        "max_digits ends input without terminator"
    );

    let mut t = T::new(FLOW);
    t.settle();
    t.press("2");
    t.settle();
    t.press("12345");
    t.wait(Duration::from_millis(2999));
    assert_eq!(t.it.var("account"), None);
    t.press("6");
    assert_eq!(
        t.it.var("account"),
        Some("123456"),
        "each digit restarts the inter-digit timer"
    );
}

#[test]
fn collect_too_short_retries_then_fails() {
    let mut t = T::new(FLOW);
    t.settle();
    t.press("2");
    t.settle();
    t.press("12#");
    assert_eq!(t.settle(), ["invalid", "enter"]);
    t.press("12");
    t.wait(Duration::from_secs(3));
    assert_eq!(
        t.settle(),
        ["goodbye", "<hangup>"],
        "second failure of max_attempts = 2"
    );
    assert_eq!(t.it.var("account"), None);
}

#[test]
fn a_loop_the_checks_cannot_see_is_cut_at_run_time() {
    // A subflow counts as waiting for the static check; one that returns at once spins.
    let main = r#"
[flow]
name = "loop"
start = "a"
[nodes.a]
type = "subflow"
flow = "inner"
next = "a"
"#;
    let inner = r#"
[flow]
name = "inner"
start = "back"
[nodes.back]
type = "return"
"#;
    let mut t = T::with(
        &[("a.toml", main), ("b.toml", inner)],
        "2026-12-01T10:00:00Z",
    );
    assert_eq!(t.settle(), ["<hangup>"]);
    assert!(t.it.was_stuck());
}

#[test]
fn stale_play_done_is_ignored() {
    let mut t = T::new(FLOW);
    let (_, first) = t.actions();
    t.press("1");
    t.actions();
    t.it.on_play_done(t.now, first.unwrap());
    assert!(t.actions().0.is_empty());
    assert_eq!(t.it.path(), ["welcome", "menu", "one"]);
}

/// A subflow whose header names a language speaks it while it runs; the caller's language
/// comes back when it returns (issue 10).
#[test]
fn a_subflows_own_language_applies_inside_it_only() {
    let main = "[flow]\nname = \"main\"\nnumbers = [\"100\"]\nstart = \"s\"\n\
                [nodes.s]\ntype = \"subflow\"\nflow = \"zh_help\"\nnext = \"after\"\n\
                [nodes.after]\ntype = \"menu\"\nprompts = [\"m\"]\nchoices = { \"1\" = \"end\" }\n\
                [nodes.end]\ntype = \"hangup\"\n";
    let sub = "[flow]\nname = \"zh_help\"\nlanguage = \"zh\"\nstart = \"ask\"\n\
               [nodes.ask]\ntype = \"menu\"\nprompts = [\"q\"]\nchoices = { \"1\" = \"back\" }\n\
               [nodes.back]\ntype = \"return\"\n";
    let mut t = T::with(&[("a.toml", main), ("b.toml", sub)], "2026-12-01T10:00:00Z");
    assert_eq!(t.settle(), ["q"]);
    assert_eq!(t.it.language(), "zh", "inside the subflow");
    t.press("1");
    assert_eq!(t.settle(), ["m"]);
    assert_eq!(t.it.language(), "en", "back in the caller's language");
}
