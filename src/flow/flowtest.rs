//! Flow tests: walks an admin keeps beside the flows (`ivr-flows/tests/*.toml`), each a list
//! of keys to press and the nodes the call must pass, run by `hotline check --tests`.
//!
//! ```toml
//! [[test]]
//! name = "a caller presses 1 for opening hours"
//! flow = "hotline"                 # or number = "100"
//! caller = "13800000001"
//! at = "2026-12-01T10:00:00+08:00" # the wall clock the call starts at
//! press = ["2", "1", "12345678#"]
//! lookups = { who = '{"name": "Li"}', balance = "timeout" }
//! queue = "no_agents"              # how every queue node ends
//! transfer = "fail"                # or "answer"
//! switches = ["outage-north"]      # announcement switches on (none otherwise)
//! expect = ["main_menu", "account", "goodbye"]   # in this order, others may come between
//! expect_not = ["complaints"]      # never visited
//! expect_prompts = ["balance_is"]
//! expect_vars = { name = "Li", case = false }     # false: not set
//! expect_labels = { call_type = "balance" }        # false: not labelled
//! ```

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use jiff::Timestamp;
use jiff::tz::TimeZone;
use toml::de::{DeTable, DeValue};

use super::dryrun::{self, Outside, Step, Walk};
use super::interpreter::{CallInfo, LookupRequest, LookupResult, RecordOutcome};
use super::schema::{Diagnostics, Located, Sink, Source, Table, kind_of};
use super::{FlowId, FlowSet, QueueExit, Switches};

/// One test's result, located at its `[[test]]` table.
#[derive(Debug)]
pub struct Outcome {
    pub name: String,
    pub at: Located,
    /// None: passed.
    pub failure: Option<String>,
    pub walk_summary: String,
}

pub struct TestCase {
    name: String,
    at: Located,
    flow: FlowId,
    caller: String,
    number: String,
    wall: Timestamp,
    press: Vec<String>,
    answers: Answers,
    expect: Vec<String>,
    /// Nodes the call must never visit (a VIP never hears the menu).
    expect_not: Vec<String>,
    expect_prompts: Vec<String>,
    /// None: the variable must not be set.
    expect_vars: Vec<(String, Option<String>)>,
    /// CDR labels; None: the call must not get that label.
    expect_labels: Vec<(String, Option<String>)>,
    /// The announcement switches on during the walk: a test does not depend on the switch
    /// files of the day it runs.
    switches: Arc<Switches>,
}

/// Canned answers from the outside world.
#[derive(Debug, Clone, Default)]
pub struct Answers {
    pub lookups: HashMap<String, LookupResult>,
    pub queue: Option<QueueExit>,
    pub transfer_answers: bool,
}

impl Outside for Answers {
    fn lookup(&mut self, node: &str, _request: &LookupRequest) -> LookupResult {
        self.lookups.get(node).cloned().unwrap_or_else(|| {
            LookupResult::Failed(format!("no answer given for lookup node {node:?}"))
        })
    }
    fn queue(&mut self, _node: &str, _queue: &str) -> QueueExit {
        self.queue.unwrap_or(QueueExit::NoAgents)
    }
    fn transfer(&mut self, _node: &str, _target: &str) -> bool {
        self.transfer_answers
    }
    fn record(&mut self, node: &str) -> RecordOutcome {
        RecordOutcome::Saved {
            path: format!("(dry run: message at {node})"),
            duration_ms: 5000,
        }
    }
}

/// "timeout", "fail", "not_found" or a JSON document.
pub fn parse_answer(text: &str) -> Result<LookupResult, String> {
    match text.trim() {
        "timeout" => Ok(LookupResult::Failed("no answer in time (given)".into())),
        "fail" | "failed" => Ok(LookupResult::Failed("failure (given)".into())),
        "not_found" | "404" => Ok(LookupResult::NotFound),
        json => serde_json::from_str(json)
            .map(LookupResult::Ok)
            .map_err(|e| format!("a lookup answer is timeout, fail, not_found or JSON: {e}")),
    }
}

pub fn parse_queue_exit(text: &str) -> Result<QueueExit, String> {
    match text {
        "answered" => Ok(QueueExit::Answered),
        "timeout" => Ok(QueueExit::Timeout),
        "full" => Ok(QueueExit::Full),
        "no_agents" => Ok(QueueExit::NoAgents),
        other => {
            let key = other.strip_prefix("key:").and_then(|k| {
                let mut chars = k.chars();
                match (chars.next(), chars.next()) {
                    (Some(c), None) if c.is_ascii_digit() || matches!(c, '*' | '#' | 'A'..='D') => {
                        Some(c)
                    }
                    _ => None,
                }
            });
            key.map(QueueExit::Key).ok_or_else(|| {
                format!(
                    "queue exit {other:?} is answered, timeout, full, no_agents or key:K (the caller presses K while waiting)"
                )
            })
        }
    }
}

/// "2026-12-01T10:00:00+08:00" or "2026-12-01T10:00[Asia/Shanghai]".
pub fn parse_time(text: &str) -> Result<Timestamp, String> {
    text.parse::<Timestamp>()
        .or_else(|_| text.parse::<jiff::ZonedDateTime>().map(|z| z.timestamp()))
        .map_err(|_| format!("{text:?} is not a time like \"2026-12-01T10:00:00+08:00\""))
}

/// Read every `*.toml` in `dir` (the tests folder). Problems are reported like flow errors.
pub fn load_tests(dir: &Path, set: &FlowSet, diags: &mut Diagnostics) -> Vec<TestCase> {
    let mut files: Vec<PathBuf> = match std::fs::read_dir(dir) {
        Ok(entries) => entries
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "toml"))
            .collect(),
        Err(_) => return Vec::new(),
    };
    files.sort();
    let mut cases = Vec::new();
    for file in files {
        let Ok(text) = std::fs::read_to_string(&file) else {
            continue;
        };
        let src = Source {
            file: &file,
            text: &text,
        };
        let mut sink = Sink {
            src: &src,
            out: diags,
        };
        let doc = match DeTable::parse(&text) {
            Ok(d) => d,
            Err(e) => {
                let (span, message) =
                    super::schema::syntax_error(&text, e.span().unwrap_or(0..0), e.message());
                sink.error(&span, message);
                continue;
            }
        };
        let top = Table::new(doc.get_ref(), doc.span(), "a flow test file");
        let tests = top.array("test", &mut sink).unwrap_or_default();
        top.finish(&mut sink);
        for item in tests {
            let DeValue::Table(t) = item.get_ref() else {
                sink.error(
                    &item.span(),
                    format!("a [[test]] is a table, not {}", kind_of(item.get_ref())),
                );
                continue;
            };
            let t = Table::new(t, item.span(), "a flow test");
            if let Some(case) = read_case(&t, set, &mut sink) {
                cases.push(case);
            }
            t.finish(&mut sink);
        }
    }
    cases
}

fn read_case(t: &Table, set: &FlowSet, sink: &mut Sink) -> Option<TestCase> {
    let errors = sink.error_count();
    let name = t.req_str("name", sink).map(|n| n.v).unwrap_or_default();
    let flow_name = t.str("flow", sink);
    let number = t.str("number", sink);
    let flow = match (&flow_name, &number) {
        (Some(f), _) => set.flow_by_name(&f.v).or_else(|| {
            sink.error(&f.span, format!("no flow named {:?}", f.v));
            None
        }),
        (None, Some(n)) => set.route(&n.v).or_else(|| {
            sink.error(&n.span, format!("no flow answers {:?}", n.v));
            None
        }),
        (None, None) => {
            sink.error(
                &t.span,
                "a flow test names its `flow` or the `number` dialled",
            );
            None
        }
    };
    // The flow's first number, as its header lists them.
    let number = number.map(|n| n.v).unwrap_or_else(|| {
        flow.and_then(|f| set.flow(f).numbers.first().cloned())
            .unwrap_or_default()
    });
    let caller = t
        .str("caller", sink)
        .map_or_else(|| "10000".to_string(), |c| c.v);
    // A bad time is reported and the rest of the table still read, so its keys are not
    // taken for unknown ones.
    let wall = match t.str("at", sink) {
        Some(at) => parse_time(&at.v).unwrap_or_else(|e| {
            sink.error(&at.span, e);
            Timestamp::UNIX_EPOCH
        }),
        None => Timestamp::now(),
    };
    let list = |key: &'static str, sink: &mut Sink| -> Vec<String> {
        t.strings(key, sink)
            .unwrap_or_default()
            .into_iter()
            .map(|s| s.v)
            .collect()
    };
    let press = t.strings("press", sink).unwrap_or_default();
    for keys in &press {
        if let Some(bad) = keys
            .v
            .chars()
            .find(|&c| crate::media::rfc4733::digit_event(c).is_none())
        {
            sink.error(&keys.span, format!("{bad:?} is not a key (0-9, *, #, A-D)"));
        }
    }
    let press: Vec<String> = press.into_iter().map(|k| k.v).collect();
    let expect = list("expect", sink);
    let expect_prompts = list("expect_prompts", sink);
    let mut answers = Answers::default();
    if let Some(l) = t.table("lookups", sink) {
        for (node, value) in l.entries() {
            let is_lookup =
                set.flows.iter().flat_map(|f| &f.nodes).any(|n| {
                    n.name == node.v && matches!(n.kind, crate::flow::NodeKind::Lookup(_))
                });
            if !is_lookup {
                sink.error(&node.span, format!("no lookup node is named {:?}", node.v));
            }
            match value.get_ref() {
                DeValue::String(s) => match parse_answer(s) {
                    Ok(r) => {
                        answers.lookups.insert(node.v, r);
                    }
                    Err(e) => sink.error(&value.span(), e),
                },
                other => sink.error(
                    &value.span(),
                    format!("a lookup answer is a string, not {}", kind_of(other)),
                ),
            }
        }
    }
    if let Some(q) = t.str("queue", sink) {
        match parse_queue_exit(&q.v) {
            Ok(e) => answers.queue = Some(e),
            Err(e) => sink.error(&q.span, e),
        }
    }
    if let Some(tr) = t.str("transfer", sink) {
        match tr.v.as_str() {
            "answer" => answers.transfer_answers = true,
            "fail" => {}
            _ => sink.error(&tr.span, "transfer is \"answer\" or \"fail\""),
        }
    }
    let expect_vars = expected_values(t, "expect_vars", sink);
    let expect_labels = expected_values(t, "expect_labels", sink);
    let expect_not = list("expect_not", sink);
    let mut switches = Switches::default();
    for name in t.strings("switches", sink).unwrap_or_default() {
        if !super::switches::valid_name(&name.v) {
            sink.error(&name.span, "a switch name is letters, digits, - and _");
        } else if !set.uses_switch(&name.v) {
            sink.error(
                &name.span,
                format!("no announcement node can name the switch {:?}", name.v),
            );
        }
        switches.insert(&name.v, Default::default());
    }
    if sink.error_count() > errors {
        return None;
    }
    Some(TestCase {
        name,
        at: sink.src.locate(&t.span),
        flow: flow?,
        caller,
        number,
        wall,
        press,
        answers,
        expect,
        expect_not,
        expect_prompts,
        expect_vars,
        expect_labels,
        switches: Arc::new(switches),
    })
}

/// `{ name = "value", other = false }`: values as strings, `false` for "not set".
fn expected_values(t: &Table, key: &'static str, sink: &mut Sink) -> Vec<(String, Option<String>)> {
    let mut out = Vec::new();
    if let Some(v) = t.table(key, sink) {
        for (name, value) in v.entries() {
            match value.get_ref() {
                DeValue::String(s) => out.push((name.v, Some(s.to_string()))),
                // TOML has no null: `false` says "not set at all".
                DeValue::Boolean(false) => out.push((name.v, None)),
                other => sink.error(
                    &value.span(),
                    format!(
                        "an expected value is a string, or false for \"not set\"; not {}",
                        kind_of(other)
                    ),
                ),
            }
        }
    }
    out
}

pub fn run(case: &TestCase, set: &Arc<FlowSet>, language: &str, tz: &TimeZone) -> Outcome {
    let info = CallInfo {
        caller: case.caller.clone(),
        dialled: case.number.clone(),
        wall: case.wall,
        started: Instant::now(),
        tz: tz.clone(),
        language: language.to_string(),
        switches: Arc::clone(&case.switches),
    };
    let mut answers = case.answers.clone();
    let walk = dryrun::walk(set, case.flow, info, &case.press, &mut answers);
    let failure = judge(case, &walk);
    Outcome {
        name: case.name.clone(),
        at: case.at.clone(),
        failure,
        walk_summary: walk.path.join(" > "),
    }
}

fn judge(case: &TestCase, walk: &Walk) -> Option<String> {
    let node_names: Vec<&str> = walk.path.iter().map(String::as_str).collect();
    if let Some(missing) = first_missing(&case.expect, &node_names) {
        return Some(format!(
            "expected node {missing:?} (in order), the call went {}",
            walk.path.join(" > ")
        ));
    }
    if let Some(visited) = case
        .expect_not
        .iter()
        .find(|n| node_names.contains(&n.as_str()))
    {
        return Some(format!(
            "the call visited {visited:?}, which it must not: {}",
            walk.path.join(" > ")
        ));
    }
    let played: Vec<&str> = walk
        .steps
        .iter()
        .filter_map(|s| match s {
            Step::Play { prompts, .. } => Some(prompts.iter().map(String::as_str)),
            _ => None,
        })
        .flatten()
        .collect();
    if let Some(missing) = first_missing(&case.expect_prompts, &played) {
        return Some(format!(
            "expected prompt {missing:?} (in order), the call heard {}",
            played.join(", ")
        ));
    }
    for (var, want) in &case.expect_vars {
        let got = walk
            .vars
            .iter()
            .find(|(k, _)| k == var)
            .map(|(_, v)| v.as_str());
        if got != want.as_deref() {
            // A sensitive value is not printed, even to the test's author.
            let shown = walk
                .shown_vars
                .iter()
                .find(|(k, _)| k == var)
                .map(|(_, v)| v.as_str());
            return Some(match want {
                Some(want) => format!("expected {var} = {want:?}, it is {shown:?}"),
                None => format!("expected {var} not to be set, it is {shown:?}"),
            });
        }
    }
    for (label, want) in &case.expect_labels {
        let got = walk
            .labels
            .iter()
            .find(|(k, _)| k == label)
            .map(|(_, v)| v.as_str());
        if got != want.as_deref() {
            return Some(match want {
                Some(want) => format!("expected label {label} = {want:?}, it is {got:?}"),
                None => format!("expected no label {label}, it is {got:?}"),
            });
        }
    }
    if let Some(Step::Stopped(why)) = walk.steps.last() {
        return Some(format!("the walk stopped: {why}"));
    }
    None
}

/// The first expected item not found, in order, as a subsequence of `seen`.
fn first_missing<'a>(expected: &'a [String], seen: &[&str]) -> Option<&'a str> {
    let mut rest = seen.iter();
    expected
        .iter()
        .find(|e| !rest.any(|s| s == e))
        .map(String::as_str)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_flow_test_can_leave_a_queue_by_a_key_and_a_key_the_node_lacks_waits_to_the_timeout() {
        assert_eq!(parse_queue_exit("key:1"), Ok(QueueExit::Key('1')));
        assert_eq!(parse_queue_exit("key:#"), Ok(QueueExit::Key('#')));
        assert!(parse_queue_exit("key:12").is_err());
        assert!(parse_queue_exit("key:x").unwrap_err().contains("key:K"));
        let dir = std::env::temp_dir().join(format!("hotline-flowtest-key-{}", fastrand::u64(..)));
        std::fs::create_dir_all(dir.join("tests")).unwrap();
        std::fs::write(
            dir.join("f.toml"),
            r#"[flow]
name = "f"
numbers = ["1"]
start = "q"
[nodes.q]
type = "queue"
queue = "general"
keys = { "1" = "vm" }
on_timeout = "late"
no_agents = "end"
full = "end"
[nodes.vm]
type = "play"
prompts = ["vm"]
next = "end"
[nodes.late]
type = "play"
prompts = ["late"]
next = "end"
[nodes.end]
type = "hangup"
"#,
        )
        .unwrap();
        std::fs::write(
            dir.join("tests/t.toml"),
            "[[test]]\nname = \"one\"\nflow = \"f\"\nqueue = \"key:1\"\nexpect = [\"q\", \"vm\"]\n\
             [[test]]\nname = \"two\"\nflow = \"f\"\nqueue = \"key:2\"\nexpect = [\"q\", \"late\"]\n",
        )
        .unwrap();
        let (set, diags) = super::super::load_dir(&dir);
        assert!(diags.errors.is_empty(), "{:?}", diags.errors);
        let set = Arc::new(set.unwrap());
        let mut diags = Diagnostics::default();
        let cases = load_tests(&dir.join("tests"), &set, &mut diags);
        assert!(diags.errors.is_empty(), "{:?}", diags.errors);
        assert_eq!(cases.len(), 2);
        for case in &cases {
            let outcome = run(case, &set, "en", &TimeZone::UTC);
            assert_eq!(
                outcome.failure, None,
                "{}: {}",
                outcome.name, outcome.walk_summary
            );
        }
        std::fs::remove_dir_all(dir).ok();
    }

    /// `expect_not` fails a walk through a forbidden node; `expect_vars` with false fails a
    /// variable that is set and passes one that is not.
    #[test]
    fn expect_not_and_an_unset_variable() {
        let dir = std::env::temp_dir().join(format!("hotline-flowtest-not-{}", fastrand::u64(..)));
        std::fs::create_dir_all(dir.join("tests")).unwrap();
        std::fs::write(
            dir.join("f.toml"),
            r#"[flow]
name = "f"
numbers = ["1"]
start = "m"
[nodes.m]
type = "menu"
prompts = ["m"]
choices = { "1" = "c", "2" = "end" }
[nodes.c]
type = "collect"
prompts = ["c"]
variable = "code"
max_digits = 2
next = "end"
[nodes.end]
type = "hangup"
"#,
        )
        .unwrap();
        let case = |name: &str, press: &str, rest: &str| {
            format!("[[test]]\nname = \"{name}\"\nflow = \"f\"\npress = [{press}]\n{rest}\n")
        };
        let text = [
            case(
                "never c",
                "\"2\"",
                "expect_not = [\"c\"]\nexpect_vars = { code = false }",
            ),
            case("c after all", "\"1\", \"42\"", "expect_not = [\"c\"]"),
            case(
                "code set",
                "\"1\", \"42\"",
                "expect_vars = { code = false }",
            ),
        ]
        .concat();
        std::fs::write(dir.join("tests/t.toml"), text).unwrap();
        let (set, diags) = super::super::load_dir(&dir);
        assert!(diags.errors.is_empty(), "{:?}", diags.errors);
        let set = Arc::new(set.unwrap());
        let mut diags = Diagnostics::default();
        let cases = load_tests(&dir.join("tests"), &set, &mut diags);
        assert!(diags.errors.is_empty(), "{:?}", diags.errors);
        let failures: Vec<Option<String>> = cases
            .iter()
            .map(|c| run(c, &set, "en", &TimeZone::UTC).failure)
            .collect();
        assert_eq!(failures[0], None);
        assert!(
            failures[1]
                .as_deref()
                .is_some_and(|f| f.contains("visited \"c\"")),
            "{failures:?}"
        );
        assert!(
            failures[2]
                .as_deref()
                .is_some_and(|f| f.contains("expected code not to be set, it is Some(\"42\")")),
            "{failures:?}"
        );
        std::fs::remove_dir_all(dir).ok();
    }

    /// A test names the switches that are on; the files of the day do not count.
    #[test]
    fn tests_say_which_switches_are_on() {
        let dir = std::env::temp_dir().join(format!("hotline-flowtest-sw-{}", fastrand::u64(..)));
        std::fs::create_dir_all(dir.join("tests")).unwrap();
        std::fs::create_dir_all(dir.join("announcements")).unwrap();
        std::fs::write(dir.join("announcements/outage-north.on"), "").unwrap();
        std::fs::write(
            dir.join("f.toml"),
            r#"[flow]
name = "f"
numbers = ["1"]
start = "area"
[nodes.area]
type = "set"
vars = { area = "'north'" }
next = "tag"
[nodes.tag]
type = "label"
labels = { call_type = "outage-{area}" }
next = "notice"
[nodes.notice]
type = "announcement"
switch = "outage-{area}"
prompts = ["n"]
next = "end"
[nodes.end]
type = "hangup"
"#,
        )
        .unwrap();
        let case = |name: &str, rest: &str, expect: &str| {
            format!(
                "[[test]]\nname = \"{name}\"\nflow = \"f\"\n{rest}\nexpect_prompts = [{expect}]\n"
            )
        };
        let text = [
            case(
                "on",
                "switches = [\"outage-north\"]\nexpect_labels = { call_type = \"outage-north\", vip = false }",
                "\"n\"",
            ),
            case("off whatever the files say", "", "\"n\""),
            case("a label it does not get", "expect_labels = { vip = \"gold\" }", ""),
        ]
        .concat();
        std::fs::write(dir.join("tests/t.toml"), &text).unwrap();
        let (set, diags) = super::super::load_dir(&dir);
        assert!(diags.errors.is_empty(), "{:?}", diags.errors);
        let set = Arc::new(set.unwrap());
        let mut diags = Diagnostics::default();
        let cases = load_tests(&dir.join("tests"), &set, &mut diags);
        assert!(diags.errors.is_empty(), "{:?}", diags.errors);
        let failures: Vec<Option<String>> = cases
            .iter()
            .map(|c| run(c, &set, "en", &TimeZone::UTC).failure)
            .collect();
        assert_eq!(failures[0], None);
        assert!(
            failures[1].is_some(),
            "the switch file is not read by tests"
        );
        // A switch no node can name is a mistake in the test.
        std::fs::write(
            dir.join("tests/t.toml"),
            case("typo", "switches = [\"outgae-north\"]", ""),
        )
        .unwrap();
        let mut diags = Diagnostics::default();
        load_tests(&dir.join("tests"), &set, &mut diags);
        let joined: Vec<String> = diags.errors.iter().map(|e| e.to_string()).collect();
        assert!(
            joined
                .iter()
                .any(|e| e.contains("no announcement node can name the switch \"outgae-north\"")),
            "{joined:?}"
        );
        std::fs::remove_dir_all(dir).ok();
    }
}
