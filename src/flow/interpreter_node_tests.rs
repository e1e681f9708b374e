//! One test (or a few) per node type and exit, on a virtual clock and an injected wall clock.

use std::time::Duration;

use super::T;
use crate::flow::interpreter::MAX_LABEL_VALUE;
use crate::flow::{LookupResult, QueueExit, RecordOutcome, TaskId};

fn flow(nodes: &str) -> String {
    format!(
        "[flow]\nname = \"t\"\nnumbers = [\"100\"]\nstart = \"a\"\n{nodes}\n[nodes.end]\ntype = \"hangup\"\n"
    )
}

fn task_id(t: &mut T) -> TaskId {
    // Task ids count from 1 per call; tests start one task at a time.
    let _ = t;
    TaskId(1)
}

#[test]
fn menu_plays_the_short_greeting_on_retries() {
    let mut t = T::new(&flow(
        r#"
[nodes.a]
type = "menu"
prompts = ["long"]
short_prompts = ["short"]
invalid_prompts = ["invalid"]
choices = { "1" = "end" }
"#,
    ));
    assert_eq!(t.settle(), ["long"]);
    t.press("5");
    assert_eq!(t.settle(), ["invalid", "short"]);
}

#[test]
fn menu_default_takes_a_caller_who_presses_nothing() {
    let mut t = T::new(&flow(
        r#"
[nodes.a]
type = "menu"
prompts = ["m"]
choices = { "1" = "end" }
default = "op"
timeout = "4s"
[nodes.op]
type = "play"
prompts = ["operator"]
next = "end"
"#,
    ));
    t.settle();
    t.wait(Duration::from_secs(4));
    assert_eq!(t.settle(), ["operator", "<hangup>"]);
}

const COLLECT: &str = r##"
[nodes.a]
type = "collect"
prompts = ["enter"]
variable = "acct"
min_digits = 4
max_digits = 8
terminator = "#"
pattern = "[1-9][0-9]*"
invalid_prompts = ["invalid"]
max_attempts = 3
confirm = { prompts = ["you_entered"], after = ["press1"], yes = "1", no = "2" }
next = "ok"
on_failure = "end"
[nodes.ok]
type = "play"
prompts = ["thanks"]
next = "end"
"##;

#[test]
fn collect_pattern_refuses_and_confirm_reads_back() {
    let mut t = T::new(&flow(COLLECT));
    assert_eq!(t.settle(), ["enter"]);
    t.press("0123#");
    assert_eq!(
        t.settle(),
        ["invalid", "enter"],
        "pattern wants no leading zero"
    );
    t.press("1234#");
    assert_eq!(
        t.settle(),
        ["you_entered", "say/1", "say/2", "say/3", "say/4", "press1"]
    );
    assert_eq!(t.it.var("acct"), None, "not stored before confirmation");
    t.press("2");
    assert_eq!(t.settle(), ["enter"], "2: enter it again");
    t.press("5678#");
    t.settle();
    t.press("1");
    assert_eq!(t.settle(), ["thanks", "<hangup>"]);
    assert_eq!(t.it.var("acct"), Some("5678"));
}

#[test]
fn confirm_timeout_repeats_the_read_back_then_gives_up() {
    let mut t = T::new(&flow(COLLECT));
    t.settle();
    t.press("1234#");
    t.settle();
    t.wait(Duration::from_secs(5));
    assert_eq!(t.settle()[0], "you_entered");
    t.wait(Duration::from_secs(5));
    t.settle();
    t.wait(Duration::from_secs(5));
    assert_eq!(t.settle(), ["<hangup>"], "third failure takes on_failure");
}

/// A card number of fixed length whose prompt says "then press #": the `#` that follows the
/// sixteenth digit belongs to the entry, not to the read-back that has begun (issue 10).
#[test]
fn a_terminator_after_a_full_entry_belongs_to_the_entry() {
    let card = COLLECT
        .replace("min_digits = 4", "min_digits = 16")
        .replace("max_digits = 8", "max_digits = 16");
    let mut t = T::new(&flow(&card));
    t.settle();
    t.press("4111111111111111#");
    let heard = t.settle();
    assert_eq!(
        heard.first().map(String::as_str),
        Some("you_entered"),
        "{heard:?}"
    );
    assert!(!heard.contains(&"invalid".to_string()), "{heard:?}");
    t.press("1");
    assert_eq!(t.settle(), ["thanks", "<hangup>"]);
    assert_eq!(t.it.var("acct"), Some("4111111111111111"));
    // Without the terminator it is the same; a second # is a wrong key at the read-back.
    let mut t = T::new(&flow(&card));
    t.settle();
    t.press("4111111111111111##");
    let heard = t.settle();
    assert!(heard.contains(&"invalid".to_string()), "{heard:?}");
}

/// A card number marked sensitive: the variable has it, the record of keys and anything shown
/// keep only the last four digits.
#[test]
fn a_sensitive_entry_is_masked_in_the_record_and_when_shown() {
    let card = COLLECT
        .replace("min_digits = 4", "min_digits = 16")
        .replace("max_digits = 8", "max_digits = 16")
        .replace(
            "max_attempts = 3",
            "max_attempts = 3\nsensitive = true\nkeep_last = 4",
        );
    let mut t = T::new(&flow(&card));
    t.settle();
    t.press("4111111111111234#");
    t.settle();
    t.press("1");
    assert_eq!(t.settle(), ["thanks", "<hangup>"]);
    assert_eq!(t.it.var("acct"), Some("4111111111111234"));
    assert_eq!(t.it.digits(), "xxxxxxxxxxxx1234#1");
    let shown: Vec<(String, String)> = t.it.shown_vars().map(|(k, v)| (k.to_string(), v)).collect();
    assert_eq!(
        shown,
        [("acct".to_string(), "xxxxxxxxxxxx1234".to_string())]
    );
    // Without keep_last nothing of it shows; a wrong entry stays masked too.
    let pin = card.replace("\nkeep_last = 4", "");
    let mut t = T::new(&flow(&pin));
    t.settle();
    t.press("0123#");
    t.settle();
    t.press("4111111111111234");
    t.settle();
    t.press("1");
    t.settle();
    assert_eq!(t.it.digits(), format!("xxxx#{}1", "x".repeat(16)));
}

/// A six-digit PIN with a 3 s inter-digit and a 5 s total timeout.
const TOTAL_TIMEOUT_PIN: &str = r#"
[nodes.a]
type = "collect"
prompts = ["enter"]
variable = "pin"
min_digits = 6
max_digits = 6
inter_digit_timeout = "3s"
total_timeout = "5s"
max_attempts = 1
next = "end"
"#;

#[test]
fn collect_total_timeout_is_not_restarted_by_digits() {
    let mut t = T::new(&flow(TOTAL_TIMEOUT_PIN));
    t.settle();
    t.press("1");
    t.wait(Duration::from_secs(2));
    t.press("2");
    t.wait(Duration::from_secs(2));
    t.press("3");
    assert!(!t.it.is_finished());
    t.wait(Duration::from_secs(1));
    assert_eq!(t.settle(), ["<hangup>"], "5 s after listening began");
    assert_eq!(t.it.var("pin"), None);
}

#[test]
fn set_and_branch_over_variables_caller_and_time() {
    let text = flow(
        r#"
[nodes.a]
type = "set"
vars = { tries = "tries + 1", tier = "'gold'" }
next = "b"
[nodes.b]
type = "branch"
cases = [
  { when = "tier == 'gold' and starts_with(caller, '86')", next = "vip" },
  { when = "hour >= 9", next = "day" },
]
else = "end"
[nodes.vip]
type = "play"
prompts = ["vip"]
next = "c"
[nodes.c]
type = "branch"
cases = [{ when = "hour < 9", next = "night" }]
else = "day"
[nodes.night]
type = "play"
prompts = ["night"]
next = "end"
[nodes.day]
type = "play"
prompts = ["day"]
next = "end"
"#,
    );
    let mut t = T::with(&[("t.toml", &text)], "2026-12-01T07:30:00Z");
    assert_eq!(t.settle(), ["vip", "night", "<hangup>"]);
    assert_eq!(t.it.var("tries"), Some("1"));
    let mut t = T::with(&[("t.toml", &text)], "2026-12-01T09:00:00Z");
    assert_eq!(t.settle(), ["vip", "day", "<hangup>"]);
}

#[test]
fn subflow_runs_a_shared_menu_and_returns() {
    let main = flow(
        r#"
[nodes.a]
type = "subflow"
flow = "shared"
next = "after"
[nodes.after]
type = "play"
prompts = ["back"]
next = "end"
"#,
    );
    let shared = r#"
[flow]
name = "shared"
start = "m"
[nodes.m]
type = "menu"
prompts = ["shared_menu"]
choices = { "1" = "done", "9" = "bye" }
[nodes.done]
type = "return"
[nodes.bye]
type = "hangup"
"#;
    let mut t = T::with(
        &[("a.toml", &main), ("b.toml", shared)],
        "2026-12-01T10:00:00Z",
    );
    assert_eq!(t.settle(), ["shared_menu"]);
    assert_eq!(t.it.flow_name(), "shared");
    assert_eq!(t.it.entry_flow_name(), "t");
    t.press("1");
    assert_eq!(t.settle(), ["back", "<hangup>"]);
    assert_eq!(
        t.it.path(),
        ["a", "shared:m", "shared:done", "after", "end"]
    );
}

const SCHEDULE: &str = r#"
[nodes.a]
type = "schedule"
timezone = "Asia/Shanghai"
hours = { "mon-fri" = "08:00-20:00", "sat" = ["09:00-12:00"] }
holidays = ["2026-10-01..2026-10-07"]
special = { "2026-10-10" = "09:00-17:00" }
open = "open"
closed = "closed"
holiday = "holiday"
[nodes.open]
type = "play"
prompts = ["open"]
next = "end"
[nodes.closed]
type = "play"
prompts = ["closed"]
next = "end"
[nodes.holiday]
type = "play"
prompts = ["holiday"]
next = "end"
"#;

#[test]
fn schedule_exits_open_closed_and_holiday_in_its_time_zone() {
    let text = flow(SCHEDULE);
    let at = |utc: &str| {
        let mut t = T::with(&[("t.toml", &text)], utc);
        t.settle()[0].clone()
    };
    assert_eq!(
        at("2026-12-01T02:00:00Z"),
        "open",
        "10:00 Tuesday in Shanghai"
    );
    assert_eq!(at("2026-12-01T13:00:00Z"), "closed", "21:00 in Shanghai");
    assert_eq!(at("2026-12-05T04:30:00Z"), "closed", "Saturday 12:30");
    assert_eq!(at("2026-10-02T02:00:00Z"), "holiday");
    assert_eq!(at("2026-10-10T02:00:00Z"), "open", "a special Saturday");
}

#[test]
fn schedules_share_a_calendars_holidays_and_special_days() {
    // Two schedules with different hours, one calendar: a holiday closes both, and a
    // make-up Sunday works like a Monday in each by its own hours.
    let calendar = "holidays = [\"2026-05-01..2026-05-05\"]\nspecial = { \"2026-05-10\" = \"mon\", \"2026-05-11\" = \"closed\" }\n";
    let nodes = SCHEDULE
        .replace(
            "holidays = [\"2026-10-01..2026-10-07\"]",
            "calendar = \"cn\"",
        )
        .replace(
            "special = { \"2026-10-10\" = \"09:00-17:00\" }",
            "special = { \"2026-05-11\" = \"09:00-10:00\" }",
        );
    let text = flow(&nodes);
    let second = flow(&nodes.replace("08:00-20:00", "10:00-16:00"));
    let at = |flow_text: &str, utc: &str| {
        let files = [("t.toml", flow_text), ("calendars/cn.toml", calendar)];
        T::with(&files, utc).settle()[0].clone()
    };
    for flow_text in [&text, &second] {
        assert_eq!(
            at(flow_text, "2026-05-04T04:00:00Z"),
            "holiday",
            "a Monday in the holiday"
        );
        assert_eq!(at(flow_text, "2026-05-06T04:00:00Z"), "open", "after it");
    }
    // Sunday 2026-05-10, 09:00 in Shanghai: open by the first schedule's Monday hours only.
    assert_eq!(at(&text, "2026-05-10T01:00:00Z"), "open");
    assert_eq!(at(&second, "2026-05-10T01:00:00Z"), "closed");
    assert_eq!(at(&second, "2026-05-10T03:00:00Z"), "open", "11:00");
    // The node's own special day wins over the calendar's "closed".
    assert_eq!(at(&text, "2026-05-11T01:30:00Z"), "open", "09:30");
    assert_eq!(at(&text, "2026-05-11T03:00:00Z"), "closed", "11:00");
}

/// Labels for the CDR: set from templates, set again in place, masked where a sensitive
/// value goes in, cleaned of control characters and bounded.
#[test]
fn labels_name_the_call_for_reports() {
    let card = COLLECT
        .replace("min_digits = 4", "min_digits = 16")
        .replace("max_digits = 8", "max_digits = 16")
        .replace("max_attempts = 3", "max_attempts = 3\nsensitive = true\nkeep_last = 4")
        .replace("next = \"ok\"", "next = \"tag\"")
        .replace("[nodes.a]", "[nodes.first]\ntype = \"label\"\nlabels = { call_type = \"card\", outcome = \"started\" }\nnext = \"a\"\n[nodes.a]");
    let text = flow(&format!(
        "{card}\n[nodes.tag]\ntype = \"label\"\n\
         labels = {{ outcome = \"  done\\u0007 \", card = \"{{acct}}\", caller = \"{{caller}}{{caller}}{{caller}}{{caller}}{{caller}}{{caller}}\" }}\n\
         next = \"ok\"\n"
    ))
    .replace("start = \"a\"", "start = \"first\"");
    let mut t = T::new(&text);
    t.settle();
    assert_eq!(
        t.it.labels(),
        [
            ("call_type".to_string(), "card".to_string()),
            ("outcome".to_string(), "started".to_string())
        ]
    );
    t.press("4111111111111234#");
    t.settle();
    t.press("1");
    assert_eq!(t.settle(), ["thanks", "<hangup>"]);
    let labels = t.it.labels();
    assert_eq!(labels[0], ("call_type".to_string(), "card".to_string()));
    assert_eq!(
        labels[1],
        ("outcome".to_string(), "done".to_string()),
        "kept its place"
    );
    assert_eq!(
        labels[2],
        ("card".to_string(), "xxxxxxxxxxxx1234".to_string())
    );
    assert_eq!(labels[3].1.chars().count(), MAX_LABEL_VALUE);
}

/// A copy of a sensitive value, or a value made from one, is masked like it.
#[test]
fn a_value_made_from_a_sensitive_one_stays_masked() {
    let card = COLLECT
        .replace("min_digits = 4", "min_digits = 16")
        .replace("max_digits = 8", "max_digits = 16")
        .replace(
            "max_attempts = 3",
            "max_attempts = 3\nsensitive = true\nkeep_last = 4",
        )
        .replace("next = \"ok\"", "next = \"copy\"");
    let text = flow(&format!(
        "{card}\n[nodes.copy]\ntype = \"set\"\n\
         vars = {{ acct_copy = \"acct\", bin = \"substr(acct, 0, 6)\", plain = \"'x'\" }}\nnext = \"tag\"\n\
         [nodes.tag]\ntype = \"label\"\nlabels = {{ copy = \"{{acct_copy}}\", bin = \"{{bin}}\" }}\nnext = \"ok\"\n"
    ));
    let mut t = T::new(&text);
    t.settle();
    t.press("4111111111111234#");
    t.settle();
    t.press("1");
    t.settle();
    assert_eq!(t.it.var("acct_copy"), Some("4111111111111234"));
    assert!(t.it.is_sensitive("acct_copy") && t.it.is_sensitive("bin"));
    assert!(!t.it.is_sensitive("plain"));
    assert_eq!(t.it.labels()[0].1, "xxxxxxxxxxxx1234");
    assert_eq!(
        t.it.labels()[1].1,
        "xx1111",
        "keeps the strictest: the last 4 of 411111"
    );
}

#[test]
fn announcement_plays_only_while_its_switch_is_on() {
    let text = flow(
        r#"
[nodes.a]
type = "announcement"
switch = "outage"
prompts = ["outage_notice"]
next = "b"
[nodes.b]
type = "play"
prompts = ["welcome"]
next = "end"
"#,
    );
    let mut off = T::with(&[("t.toml", &text)], "2026-12-01T10:00:00Z");
    assert_eq!(off.settle(), ["welcome", "<hangup>"]);
    let mut on = T::with(
        &[("t.toml", &text), ("announcements/outage.on", "")],
        "2026-12-01T10:00:00Z",
    );
    assert_eq!(on.settle(), ["outage_notice", "welcome", "<hangup>"]);
    // A window: on only between its times.
    let window = "from = \"2026-12-01T09:00:00Z\"\nuntil = \"2026-12-01T11:00:00Z\"\n";
    let files = [
        ("t.toml", text.as_str()),
        ("announcements/outage.on", window),
    ];
    let mut inside = T::with(&files, "2026-12-01T10:59:59Z");
    assert_eq!(inside.settle(), ["outage_notice", "welcome", "<hangup>"]);
    let mut after = T::with(&files, "2026-12-01T11:00:00Z");
    assert_eq!(after.settle(), ["welcome", "<hangup>"]);
    let mut before = T::with(&files, "2026-12-01T08:59:00Z");
    assert_eq!(before.settle(), ["welcome", "<hangup>"]);
}

#[test]
fn an_announcement_per_area_is_switched_by_a_variable() {
    let text = flow(
        r#"
[nodes.a]
type = "set"
vars = { area = "substr(caller, 0, 4)" }
next = "notice"
[nodes.notice]
type = "announcement"
switch = "outage-{area}"
prompts = ["outage_notice"]
next = "b"
[nodes.b]
type = "play"
prompts = ["welcome"]
next = "end"
"#,
    );
    // The harness's caller is 8613800000001: area "8613".
    let on = [
        ("t.toml", text.as_str()),
        ("announcements/outage-8613.on", ""),
    ];
    assert_eq!(
        T::with(&on, "2026-12-01T10:00:00Z").settle(),
        ["outage_notice", "welcome", "<hangup>"]
    );
    let elsewhere = [
        ("t.toml", text.as_str()),
        ("announcements/outage-0755.on", ""),
    ];
    assert_eq!(
        T::with(&elsewhere, "2026-12-01T10:00:00Z").settle(),
        ["welcome", "<hangup>"]
    );
    // An empty area names no switch, even where a file matches the rest of the name.
    let blank = text.replace("substr(caller, 0, 4)", "substr(caller, 0, 0)");
    let files = [("t.toml", blank.as_str()), ("announcements/outage-.on", "")];
    assert_eq!(
        T::with(&files, "2026-12-01T10:00:00Z").settle(),
        ["welcome", "<hangup>"]
    );
}

#[test]
fn language_switches_the_words_of_spoken_values() {
    let text = flow(
        r#"
[nodes.a]
type = "set"
vars = { balance = "'12.50'" }
next = "b"
[nodes.b]
type = "play"
prompts = ["balance_is", { amount = "balance" }]
next = "c"
[nodes.c]
type = "language"
language = "zh"
next = "d"
[nodes.d]
type = "play"
prompts = ["balance_is", { amount = "balance" }, { date = "'2026-12-01'" }]
next = "end"
"#,
    );
    let mut t = T::new(&text);
    let heard = t.settle();
    assert_eq!(t.it.language(), "zh");
    let words = |s: &[String]| s.join(" ");
    assert_eq!(
        words(&heard),
        "balance_is say/12 say/yuan say/and say/50 say/cents \
         balance_is say/10 say/2 say/yuan say/5 say/jiao \
         say/2 say/0 say/2 say/6 say/year say/10 say/2 say/month say/1 say/day <hangup>"
    );
}

const LOOKUP: &str = r#"
[nodes.a]
type = "lookup"
url = "http://crm/customers/{caller}?n={dialled}"
timeout = "2s"
result = { name = "customer.name", tier = "customer.tier", case = "cases.0.id" }
next = "found"
on_not_found = "unknown"
on_failure = "down"
[nodes.found]
type = "play"
prompts = ["found"]
next = "end"
[nodes.unknown]
type = "play"
prompts = ["unknown"]
next = "end"
[nodes.down]
type = "play"
prompts = ["down"]
next = "end"
"#;

#[test]
fn lookup_fills_variables_from_json() {
    let mut t = T::new(&flow(LOOKUP));
    assert_eq!(
        t.settle(),
        ["<lookup http://crm/customers/8613800000001?n=100>"]
    );
    let id = task_id(&mut t);
    t.it.on_lookup(t.now, TaskId(99), LookupResult::NotFound);
    assert!(t.actions().0.is_empty(), "a stale answer is ignored");
    let json =
        serde_json::json!({"customer": {"name": "Li Wei", "tier": "gold"}, "cases": [{"id": 77}]});
    t.it.on_lookup(t.now, id, LookupResult::Ok(json));
    assert_eq!(t.settle(), ["found", "<hangup>"]);
    assert_eq!(t.it.var("name"), Some("Li Wei"));
    assert_eq!(t.it.var("case"), Some("77"));
}

#[test]
fn lookup_not_found_failure_and_lost_answer_exits() {
    let mut t = T::new(&flow(LOOKUP));
    t.settle();
    t.it.on_lookup(t.now, TaskId(1), LookupResult::NotFound);
    assert_eq!(t.settle()[0], "unknown");
    let mut t = T::new(&flow(LOOKUP));
    t.settle();
    t.it.on_lookup(
        t.now,
        TaskId(1),
        LookupResult::Failed("HTTP status 500".into()),
    );
    assert_eq!(t.settle()[0], "down");
    let mut t = T::new(&flow(LOOKUP));
    t.settle();
    t.wait(Duration::from_secs(4));
    assert_eq!(
        t.settle()[0],
        "down",
        "no answer at all: the failure exit after timeout + grace"
    );
}

#[test]
fn record_until_the_terminator_then_next() {
    let text = flow(
        r##"
[nodes.a]
type = "record"
prompts = ["leave_message", "beep"]
max_length = "60s"
variable = "message"
next = "saved"
on_failure = "nothing"
[nodes.saved]
type = "play"
prompts = ["saved"]
next = "end"
[nodes.nothing]
type = "play"
prompts = ["nothing"]
next = "end"
"##,
    );
    let mut t = T::new(&text);
    assert_eq!(t.settle(), ["leave_message", "beep", "<record>"]);
    t.press("5");
    assert!(
        t.actions().0.is_empty(),
        "only the terminator ends a recording"
    );
    t.press("#");
    assert_eq!(t.actions().0, ["<stop recording>"]);
    t.it.on_record_done(
        t.now,
        TaskId(1),
        RecordOutcome::Saved {
            path: "r/1.wav".into(),
            duration_ms: 4000,
        },
    );
    assert_eq!(t.settle(), ["saved", "<hangup>"]);
    assert_eq!(t.it.var("message"), Some("r/1.wav"));
    assert_eq!(t.it.recordings(), ["r/1.wav"]);

    let mut t = T::new(&text);
    t.settle();
    t.it.on_record_done(t.now, TaskId(1), RecordOutcome::Nothing);
    assert_eq!(t.settle()[0], "nothing");
}

#[test]
fn survey_keeps_valid_answers_and_skips_after_retries() {
    let mut t = T::new(&flow(
        r#"
[nodes.a]
type = "survey"
prompts = ["intro"]
questions = [
  { id = "satisfaction", prompts = ["q1"], answers = "12345" },
  { id = "solved", prompts = ["q2"], answers = "12" },
]
invalid_prompts = ["invalid"]
max_attempts = 2
timeout = "5s"
next = "end"
"#,
    ));
    assert_eq!(t.settle(), ["intro", "q1"]);
    t.press("9");
    assert_eq!(t.settle(), ["invalid", "q1"]);
    t.press("4");
    assert_eq!(t.settle(), ["q2"]);
    t.wait(Duration::from_secs(5));
    assert_eq!(
        t.settle(),
        ["q2"],
        "a timeout asks again without the invalid prompt"
    );
    t.wait(Duration::from_secs(5));
    assert_eq!(t.settle(), ["<hangup>"]);
    assert_eq!(
        t.it.survey_answers(),
        [("satisfaction".to_string(), "4".to_string())]
    );
}

#[test]
fn transfer_fails_over_or_stays_bridged() {
    let text = flow(
        r#"
[nodes.a]
type = "transfer"
number = "1380013{dialled}"
prompts = ["connecting"]
ring_timeout = "20s"
on_failure = "vm"
[nodes.vm]
type = "play"
prompts = ["voicemail"]
next = "end"
"#,
    );
    let mut t = T::new(&text);
    assert_eq!(t.settle(), ["connecting", "<transfer 1380013100>"]);
    t.it.on_transfer_failed(t.now, TaskId(1), "486 Busy Here");
    assert_eq!(t.settle()[0], "voicemail");

    let mut t = T::new(&text);
    t.settle();
    t.it.on_transfer_connected(TaskId(1));
    t.wait(Duration::from_secs(3600));
    assert!(t.settle().is_empty(), "a bridged call has no flow timer");
    assert!(!t.it.is_finished());
}

#[test]
fn queue_exits() {
    let text = flow(
        r#"
[nodes.a]
type = "queue"
queue = "repairs"
priority = 5
skills = ["zh"]
answered = "survey"
on_timeout = "busy"
full = "busy"
no_agents = "none"
[nodes.survey]
type = "play"
prompts = ["survey"]
next = "end"
[nodes.busy]
type = "play"
prompts = ["busy"]
next = "end"
[nodes.none]
type = "play"
prompts = ["none"]
next = "end"
"#,
    );
    for (exit, heard) in [
        (QueueExit::Answered, "survey"),
        (QueueExit::Timeout, "busy"),
        (QueueExit::Full, "busy"),
        (QueueExit::NoAgents, "none"),
    ] {
        let mut t = T::new(&text);
        assert_eq!(t.settle(), ["<queue repairs>"]);
        t.it.on_queue_exit(t.now, TaskId(1), exit);
        assert_eq!(t.settle()[0], heard, "{exit:?}");
    }
}

/// The one queue hand-off a call asks for at once (no intro), with the caller's variables.
fn queue_action(nodes: &str) -> crate::flow::FlowAction {
    let mut t = T::new(&flow(nodes));
    let mut found = None;
    while let Some(a) = t.it.poll_action() {
        if matches!(a, crate::flow::FlowAction::Queue { .. }) {
            found = Some(a);
        }
    }
    found.expect("a queue action")
}

#[test]
fn queue_name_priority_and_skills_come_from_variables_when_the_node_runs() {
    let action = queue_action(
        r##"
[nodes.a]
type = "set"
vars = { tier = "'gold'", tier_priority = "40 + 2", lang = "'zh'", extra = "'billing, vip'" }
next = "q"
[nodes.q]
type = "queue"
queue = "{tier}_line"
priority = "{tier_priority}"
skills = ["{lang}", "{extra}", "zh"]
timeout = "90s"
keys = { "1" = "end", "#" = "end" }
"##,
    );
    assert_eq!(
        action,
        crate::flow::FlowAction::Queue {
            id: TaskId(1),
            queue: "gold_line".into(),
            priority: 42,
            skills: vec!["zh".into(), "billing".into(), "vip".into()],
            timeout: Duration::from_secs(90),
            keys: vec!['1', '#'],
            record: None,
        }
    );
}

#[test]
fn the_flow_decides_per_caller_whether_a_conversation_is_recorded() {
    for (value, expected) in [
        ("'yes'", Some(true)),
        ("true", Some(true)),
        ("'no'", Some(false)),
        ("''", Some(false)),
        ("'maybe'", None),
    ] {
        let action = queue_action(&format!(
            r#"
[nodes.a]
type = "set"
vars = {{ consented = "{value}" }}
next = "q"
[nodes.q]
type = "queue"
queue = "general"
record = "{{consented}}"
"#
        ));
        let crate::flow::FlowAction::Queue { record, .. } = action else {
            unreachable!()
        };
        assert_eq!(record, expected, "{value}");
    }
    let action = queue_action("[nodes.a]\ntype = \"queue\"\nqueue = \"general\"\nrecord = false\n");
    assert!(matches!(
        action,
        crate::flow::FlowAction::Queue {
            record: Some(false),
            ..
        }
    ));
}

#[test]
fn a_computed_priority_that_is_not_a_number_is_0_and_above_100_is_100() {
    for (value, expected) in [("'high'", 0), ("250", 100), ("''", 0), ("7", 7)] {
        let action = queue_action(&format!(
            r#"
[nodes.a]
type = "set"
vars = {{ p = "{value}" }}
next = "q"
[nodes.q]
type = "queue"
queue = "general"
priority = "{{p}}"
"#
        ));
        let crate::flow::FlowAction::Queue {
            priority,
            queue,
            skills,
            timeout,
            keys,
            ..
        } = action
        else {
            unreachable!()
        };
        assert_eq!(priority, expected, "{value}");
        assert_eq!(
            (queue.as_str(), skills.len(), timeout, keys.len()),
            ("general", 0, Duration::from_secs(600), 0),
            "defaults"
        );
    }
}

#[test]
fn a_key_exit_leaves_the_queue_to_its_node_and_other_keys_change_nothing() {
    let text = flow(
        r#"
[nodes.a]
type = "queue"
queue = "repairs"
keys = { "1" = "voicemail", "*" = "callback" }
no_agents = "end"
[nodes.voicemail]
type = "play"
prompts = ["voicemail"]
next = "end"
[nodes.callback]
type = "play"
prompts = ["callback"]
next = "end"
"#,
    );
    for (key, heard) in [('1', "voicemail"), ('*', "callback")] {
        let mut t = T::new(&text);
        assert_eq!(t.settle(), ["<queue repairs>"]);
        // The engine answers a key of the node's list while the caller waits.
        t.press(&key.to_string());
        assert!(
            t.settle().is_empty(),
            "the interpreter does not act on its own"
        );
        t.it.on_queue_exit(t.now, TaskId(1), QueueExit::Key(key));
        assert_eq!(t.settle(), [heard, "<hangup>"]);
        assert_eq!(t.it.path(), ["a", heard, "end"]);
    }
    let mut t = T::new(&text);
    t.settle();
    t.it.on_queue_exit(t.now, TaskId(1), QueueExit::Key('2'));
    assert!(
        t.settle().is_empty(),
        "not one of the node's keys: still waiting"
    );
    assert!(!t.it.is_finished());
    t.it.on_queue_exit(t.now, TaskId(1), QueueExit::NoAgents);
    assert_eq!(t.settle(), ["<hangup>"]);
}

#[test]
fn keys_pressed_during_a_lookup_count_for_the_next_menu() {
    let mut t = T::new(&flow(
        r#"
[nodes.a]
type = "lookup"
url = "http://crm/x"
next = "greet"
on_failure = "greet"
[nodes.greet]
type = "play"
prompts = ["hello"]
barge_in = true
next = "m"
[nodes.m]
type = "menu"
prompts = ["menu"]
choices = { "1" = "one" }
[nodes.one]
type = "play"
prompts = ["one"]
next = "end"
"#,
    ));
    t.settle();
    t.press("1");
    t.it.on_lookup(t.now, TaskId(1), LookupResult::Ok(serde_json::json!({})));
    assert_eq!(
        t.settle(),
        ["one", "<hangup>"],
        "the greeting and menu are skipped by type-ahead"
    );
}

/// Whatever a caller, the clock and the back ends do, in whatever order, the interpreter
/// never panics and never waits without a way out: every flow that loads (the demo, the
/// documented examples, and mutations of them) is driven by random events.
#[test]
fn random_events_on_every_flow_that_loads_never_panic() {
    use crate::flow::{CallInfo, FlowAction, FlowId, Interpreter, PlayId};
    use std::sync::Arc;
    use std::time::Instant;

    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut sources: Vec<String> =
        vec![std::fs::read_to_string(root.join("ivr-flows/hotline.toml")).unwrap()];
    let examples = root.join("docs/examples/ivr-flows");
    if let Ok(entries) = std::fs::read_dir(&examples) {
        for e in entries.flatten() {
            if e.path().extension().is_some_and(|x| x == "toml") {
                sources.push(std::fs::read_to_string(e.path()).unwrap());
            }
        }
    }
    let mut rng = fastrand::Rng::with_seed(0x5eed);
    let dir = std::env::temp_dir().join(format!("hotline-fuzz-{}", rng.u64(..)));
    std::fs::create_dir_all(dir.join("calendars")).unwrap();
    // The demo's schedule names the shipped calendar.
    for e in std::fs::read_dir(root.join("ivr-flows/calendars"))
        .unwrap()
        .flatten()
    {
        std::fs::copy(e.path(), dir.join("calendars").join(e.file_name())).unwrap();
    }
    let mut driven = 0;
    for round in 0..120 {
        let mut text = sources[round % sources.len()].clone().into_bytes();
        // Light mutations keep most files loadable: swap a digit or a node name's letter.
        for _ in 0..rng.usize(0..3) {
            let i = rng.usize(..text.len());
            if text[i].is_ascii_digit() {
                text[i] = b'0' + rng.u8(..10);
            }
        }
        std::fs::write(dir.join("f.toml"), &text).unwrap();
        let (Some(set), _) = crate::flow::load_dir(&dir) else {
            continue;
        };
        let set = Arc::new(set);
        for flow in 0..set.flows.len() {
            driven += 1;
            let start = Instant::now();
            let info = CallInfo {
                caller: format!("1380000000{}", rng.u8(0..3)),
                dialled: "100".into(),
                wall: jiff::Timestamp::from_second(1_790_000_000 + rng.i64(0..40_000_000)).unwrap(),
                started: start,
                tz: jiff::tz::TimeZone::UTC,
                language: "en".into(),
                switches: Default::default(),
            };
            let mut it = Interpreter::new(Arc::clone(&set), FlowId(flow as u32), info);
            let mut now = start;
            it.start(now);
            let mut plays: Vec<PlayId> = Vec::new();
            let mut tasks: Vec<TaskId> = vec![TaskId(1)];
            for _ in 0..400 {
                while let Some(a) = it.poll_action() {
                    match a {
                        FlowAction::Play { id, .. } => plays.push(id),
                        FlowAction::Lookup { id, .. }
                        | FlowAction::Record { id, .. }
                        | FlowAction::Transfer { id, .. }
                        | FlowAction::Queue { id, .. } => tasks.push(id),
                        _ => {}
                    }
                }
                if it.is_finished() {
                    break;
                }
                now += std::time::Duration::from_millis(rng.u64(0..8000));
                let task = tasks[rng.usize(..tasks.len())];
                match rng.u8(0..8) {
                    0 | 1 => it.on_digit(now, b"0123456789*#"[rng.usize(..12)] as char),
                    2 => {
                        if let Some(p) = plays.get(rng.usize(..plays.len().max(1))) {
                            it.on_play_done(now, *p);
                        }
                    }
                    3 => it.on_timeout(now),
                    4 => it.on_lookup(
                        now,
                        task,
                        match rng.u8(0..3) {
                            0 => LookupResult::Ok(serde_json::json!({"name": "x", "balance": "12.5", "due": "2026-13-45", "tier": "vip"})),
                            1 => LookupResult::NotFound,
                            _ => LookupResult::Failed("x".into()),
                        },
                    ),
                    5 => it.on_record_done(now, task, if rng.bool() { RecordOutcome::Nothing } else { RecordOutcome::Saved { path: "x.wav".into(), duration_ms: 1 } }),
                    6 => it.on_queue_exit(now, task, [QueueExit::Answered, QueueExit::Timeout, QueueExit::Full, QueueExit::NoAgents][rng.usize(..4)]),
                    _ => {
                        if rng.bool() {
                            it.on_transfer_failed(now, task, "486");
                        } else {
                            it.on_transfer_connected(task);
                        }
                    }
                }
            }
        }
    }
    std::fs::remove_dir_all(&dir).ok();
    assert!(
        driven > 60,
        "most mutations still load ({driven} flows driven)"
    );
}

#[test]
fn a_key_that_interrupts_the_prompt_starts_the_total_timeout() {
    let mut t = T::new(&flow(TOTAL_TIMEOUT_PIN));
    assert_eq!(t.actions().0, ["enter"]);
    t.press("1"); // during the prompt
    t.wait(Duration::from_secs(2));
    t.press("2");
    t.wait(Duration::from_secs(2));
    t.press("3");
    t.wait(Duration::from_secs(1));
    assert_eq!(
        t.settle(),
        ["<stop>", "<hangup>"],
        "5 s after the first key, not 3 s after the last"
    );
}

#[test]
fn type_ahead_runs_through_several_menus() {
    let mut t = T::new(&flow(
        r#"
[nodes.a]
type = "lookup"
url = "http://crm/x"
next = "m1"
on_failure = "m1"
[nodes.m1]
type = "menu"
prompts = ["menu1"]
choices = { "1" = "m2" }
[nodes.m2]
type = "menu"
prompts = ["menu2"]
choices = { "2" = "two" }
[nodes.two]
type = "play"
prompts = ["two"]
next = "survey"
[nodes.survey]
type = "survey"
questions = [{ id = "q", prompts = ["q"], answers = "123" }]
next = "m3"
[nodes.m3]
type = "menu"
prompts = ["menu3"]
choices = { "3" = "end" }
"#,
    ));
    t.settle();
    t.press("123");
    t.it.on_lookup(t.now, TaskId(1), LookupResult::Failed("x".into()));
    let heard = t.settle();
    assert_eq!(
        heard,
        ["two", "q"],
        "1 and 2 went to their menus; 3 is not a survey answer"
    );
    assert!(t.it.survey_answers().is_empty());
}

/// A time of day spoken with the language's words (issue 10).
#[test]
fn a_time_of_day_is_spoken() {
    let mut t = T::new(&flow(
        r#"
[nodes.a]
type = "play"
prompts = ["opens_at", { time = "'08:30'" }, { time = "time" }]
next = "end"
"#,
    ));
    let heard = t.settle();
    assert_eq!(
        heard[..5],
        ["opens_at", "say/8", "say/30", "say/am", "say/10"],
        "{heard:?}"
    );
    assert_eq!(
        heard[5..],
        ["say/o_clock", "say/am", "<hangup>"],
        "the call's 10:00"
    );
}
