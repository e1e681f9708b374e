//! Loader and validator: every kind of mistake, with the exact file:line:col it is reported at.

use std::path::PathBuf;

use super::*;

fn dir_with(files: &[(&str, &str)]) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("hotline-flowtest-{}", fastrand::u64(..)));
    std::fs::create_dir_all(&dir).unwrap();
    for (name, text) in files {
        let path = dir.join(name);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }
    dir
}

/// (errors, warnings) as printed.
fn report(files: &[(&str, &str)]) -> (Vec<String>, Vec<String>) {
    let dir = dir_with(files);
    let (_, diags) = load_dir(&dir);
    std::fs::remove_dir_all(dir).ok();
    let strip = |s: String| s.replace(&std::env::temp_dir().display().to_string(), "");
    (
        diags.errors.iter().map(|e| strip(e.to_string())).collect(),
        diags
            .warnings
            .iter()
            .map(|w| strip(w.to_string()))
            .collect(),
    )
}

fn errors(files: &[(&str, &str)]) -> Vec<String> {
    report(files).0
}

/// The one error expected, as `file:line:col: message` (the snippet line is checked apart).
fn only_error(text: &str) -> String {
    let errs = errors(&[("a.toml", text)]);
    assert_eq!(errs.len(), 1, "{errs:#?}");
    let first = errs[0].lines().next().unwrap().to_string();
    first[first.find("a.toml").unwrap()..].to_string()
}

const GOOD: &str = r#"[flow]
name = "demo"
numbers = ["100"]
default = true
start = "hello"

[nodes.hello]
type = "play"
prompts = ["welcome"]
next = "menu"

[nodes.menu]
type = "menu"
prompts = ["main"]
choices = { "1" = "bye", "22" = "bye" }
timeout = "4s"

[nodes.bye]
type = "hangup"
"#;

#[test]
fn compiles_and_routes() {
    let dir = dir_with(&[("a.toml", GOOD)]);
    let (set, diags) = load_dir(&dir);
    std::fs::remove_dir_all(&dir).ok();
    let set = set.unwrap();
    assert!(diags.warnings.is_empty(), "{:?}", diags.warnings);
    assert_eq!(set.route("100"), Some(FlowId(0)));
    assert_eq!(set.route("555"), Some(FlowId(0)), "default route");
    assert_eq!(set.prompts, vec!["welcome", "main"]);
    let flow = set.flow(FlowId(0));
    assert_eq!(flow.nodes[flow.start.0 as usize].name, "hello");
}

#[test]
fn unknown_node_with_suggestion_and_snippet() {
    let errs = errors(&[(
        "a.toml",
        &GOOD.replace("next = \"menu\"", "next = \"mneu\""),
    )]);
    assert_eq!(errs.len(), 1, "{errs:?}");
    assert!(
        errs[0].ends_with(
            "a.toml:10:8: unknown node \"mneu\" (did you mean \"menu\"?)\n    next = \"mneu\""
        ),
        "{}",
        errs[0]
    );
}

#[test]
fn unknown_keys_get_a_did_you_mean() {
    assert_eq!(
        only_error(&GOOD.replace("timeout = \"4s\"", "timeuot = \"4s\"")),
        "a.toml:16:1: unknown key `timeuot` in a menu node (did you mean \"timeout\"?)"
    );
    assert_eq!(
        only_error(&GOOD.replace("default = true", "defualt = true")),
        "a.toml:4:1: unknown key `defualt` in the [flow] table (did you mean \"default\"?)"
    );
    // A key of another node type is unknown here, and named as such.
    assert_eq!(
        only_error(&GOOD.replace("type = \"hangup\"", "type = \"hangup\"\nnext = \"menu\"")),
        "a.toml:20:1: unknown key `next` in a hangup node"
    );
}

#[test]
fn unknown_node_type_and_syntax_errors() {
    assert_eq!(
        only_error(&GOOD.replace("type = \"menu\"", "type = \"mneu\"")),
        "a.toml:13:8: unknown node type \"mneu\" (did you mean \"menu\"?)"
    );
    let errs = errors(&[("b.toml", "[flow\nname=")]);
    assert!(errs[0].contains("b.toml:1:"), "{errs:?}");
}

#[test]
fn bad_values_point_at_the_value() {
    assert_eq!(
        only_error(&GOOD.replace("\"4s\"", "\"4 parsecs\"")),
        "a.toml:16:11: unknown duration unit \"parsecs\" in \"4 parsecs\": use ms, s, m or h"
    );
    assert_eq!(
        only_error(&GOOD.replace("\"22\"", "\"2x\"")),
        "a.toml:15:26: menu choice \"2x\" is not a key sequence (0-9, *, #, A-D)"
    );
    assert_eq!(
        only_error(&GOOD.replace("\"4s\"", "\"50ms\"")),
        "a.toml:16:1: `timeout` is too short: at least 100 ms"
    );
    assert_eq!(
        only_error(&GOOD.replace("prompts = [\"main\"]", "prompts = [\"../etc/passwd\"]")),
        "a.toml:14:12: bad prompt name \"../etc/passwd\""
    );
    assert_eq!(
        only_error(&GOOD.replace("prompts = [\"main\"]", "prompts = 7")),
        "a.toml:14:11: `prompts` is a list of prompt names, not a number"
    );
}

#[test]
fn duplicate_numbers_names_and_defaults_across_files() {
    let other = GOOD.replace("demo", "other");
    let errs = errors(&[("a.toml", GOOD), ("b.toml", &other)]);
    assert!(
        errs.iter().any(
            |e| e.contains("b.toml:3:12: number \"100\" is already routed by")
                && e.contains("a.toml:3:12")
        ),
        "{errs:?}"
    );
    assert!(
        errs.iter()
            .any(|e| e.contains("b.toml:2:8: a second default flow")),
        "{errs:?}"
    );
    let errs = errors(&[
        ("a.toml", GOOD),
        (
            "b.toml",
            &GOOD
                .replace("\"100\"", "\"101\"")
                .replace("default = true", ""),
        ),
    ]);
    assert!(
        errs.iter()
            .any(|e| e.contains("b.toml:2:8: a second flow named \"demo\"")),
        "{errs:?}"
    );
}

const NODES: &str = r#"[flow]
name = "n"
start = "a"
"#;

fn with_nodes(nodes: &str) -> String {
    format!("{NODES}{nodes}\n[nodes.end]\ntype = \"hangup\"\n")
}

#[test]
fn bad_times_dates_zones_and_patterns() {
    let sched = |hours: &str, extra: &str| {
        with_nodes(&format!(
            "[nodes.a]\ntype = \"schedule\"\ntimezone = \"Asia/Shanghai\"\nhours = {hours}\n{extra}open = \"end\"\nclosed = \"end\"\n"
        ))
    };
    assert_eq!(
        only_error(&sched("{ \"mon-fri\" = \"8-18\" }", "")),
        "a.toml:7:23: \"8-18\" is not a time range like \"08:00-18:00\""
    );
    assert_eq!(
        only_error(&sched("{ \"funday\" = \"08:00-18:00\" }", "")),
        "a.toml:7:11: unknown day \"funday\" (use mon, tue, ... sun, a range like mon-fri, or daily)"
    );
    assert_eq!(
        only_error(&sched(
            "{ daily = \"08:00-18:00\" }",
            "holidays = [\"2026-02-30\"]\n"
        )),
        "a.toml:8:13: \"2026-02-30\" is not a date like \"2026-10-01\""
    );
    assert_eq!(
        only_error(&sched("{ daily = \"08:00-18:00\" }", "").replace("Asia/Shanghai", "Mars/Base")),
        "a.toml:6:12: unknown time zone \"Mars/Base\" (use a name like \"Asia/Shanghai\" or \"UTC\")"
    );
    let collect = with_nodes(
        "[nodes.a]\ntype = \"collect\"\nvariable = \"x\"\nmax_digits = 4\npattern = \"[0-9\"\nnext = \"end\"\n",
    );
    let e = only_error(&collect);
    assert!(e.starts_with("a.toml:8:11: bad pattern \"[0-9\""), "{e}");
}

#[test]
fn expressions_are_checked_where_they_are_written() {
    let text = with_nodes(
        "[nodes.a]\ntype = \"branch\"\ncases = [{ when = \"tier = 'gold'\", next = \"end\" }]\nelse = \"end\"\n",
    );
    assert_eq!(
        only_error(&text),
        "a.toml:6:25: in \"tier = 'gold'\": use `==` to compare"
    );
    let text =
        with_nodes("[nodes.a]\ntype = \"set\"\nvars = { caller = \"'x'\" }\nnext = \"end\"\n");
    assert_eq!(
        only_error(&text),
        "a.toml:6:10: \"caller\" is a built-in name and cannot be set"
    );
}

#[test]
fn missing_required_keys_and_unknown_flows() {
    let text = with_nodes("[nodes.a]\ntype = \"collect\"\nvariable = \"x\"\n");
    let errs = errors(&[("a.toml", &text)]);
    assert!(
        errs.iter()
            .any(|e| e.contains("a.toml:4:1: a collect node needs `max_digits`")),
        "{errs:?}"
    );
    assert!(
        errs.iter()
            .any(|e| e.contains("a collect node needs `next`")),
        "{errs:?}"
    );
    let text = with_nodes("[nodes.a]\ntype = \"subflow\"\nflow = \"shraed\"\nnext = \"end\"\n");
    let shared = "[flow]\nname = \"shared\"\nstart = \"r\"\n[nodes.r]\ntype = \"return\"\n";
    let errs = errors(&[("a.toml", &text), ("b.toml", shared)]);
    assert!(
        errs.iter()
            .any(|e| e.contains("a.toml:6:8: unknown flow \"shraed\" (did you mean \"shared\"?)")),
        "{errs:?}"
    );
}

#[test]
fn loops_that_never_wait_are_errors() {
    let text = with_nodes(
        "[nodes.a]\ntype = \"set\"\nvars = { n = \"n + 1\" }\nnext = \"b\"\n[nodes.b]\ntype = \"branch\"\ncases = [{ when = \"n < 3\", next = \"a\" }]\nelse = \"end\"\n",
    );
    let errs = errors(&[("a.toml", &text)]);
    assert_eq!(errs.len(), 1, "{errs:?}");
    assert!(
        errs[0].contains("a.toml:4:8: a -> b -> a can loop without waiting for the caller"),
        "{errs:?}"
    );
    // The same loop through a menu waits for the caller: fine.
    let ok = text.replace(
        "next = \"b\"\n",
        "next = \"m\"\n[nodes.m]\ntype = \"menu\"\nchoices = { \"1\" = \"b\" }\n",
    );
    assert!(errors(&[("a.toml", &ok)]).is_empty());
}

#[test]
fn warnings_for_unreachable_nodes_unset_variables_and_open_exits() {
    let text = with_nodes(
        "[nodes.a]\ntype = \"branch\"\ncases = [{ when = \"teir == 'gold'\", next = \"q\" }]\nelse = \"end\"\n\
         [nodes.q]\ntype = \"queue\"\nqueue = \"sales\"\nanswered = \"end\"\n\
         [nodes.orphan]\ntype = \"play\"\nprompts = [\"x\"]\nnext = \"end\"\n\
         [nodes.s]\ntype = \"set\"\nvars = { tier = \"'gold'\" }\nnext = \"end\"\n",
    );
    let (errs, warns) = report(&[("a.toml", &text)]);
    assert!(errs.is_empty(), "{errs:?}");
    let joined = warns.join("\n");
    assert!(
        joined.contains(
            "a.toml:12:8: warning: node \"orphan\" is never reached from the start \"a\""
        ),
        "{joined}"
    );
    assert!(joined.contains("a.toml:6:19: warning: variable `teir` is never set by any flow, so it reads as empty (did you mean \"tier\"?)"), "at the when line: {joined}");
    assert!(
        joined.contains(
            "a.toml:8:8: warning: queue node \"q\" has no `no_agents`, `on_timeout`, `full`"
        ),
        "{joined}"
    );
}

#[test]
fn a_schedule_names_calendars_that_exist() {
    let node = |calendar: &str| {
        with_nodes(&format!(
            "[nodes.a]\ntype = \"schedule\"\ntimezone = \"UTC\"\nhours = {{ daily = \"08:00-18:00\" }}\n\
             calendar = {calendar}\nopen = \"end\"\nclosed = \"end\"\n"
        ))
    };
    let cal = "holidays = [\"2026-10-01\"]\n";
    let text = node("\"cn-publc\"");
    let joined = errors(&[("a.toml", &text), ("calendars/cn-public.toml", cal)]).join("\n");
    assert!(
        joined.contains("unknown calendar \"cn-publc\" (did you mean \"cn-public\"?)"),
        "{joined}"
    );
    let joined = errors(&[("a.toml", &text)]).join("\n");
    assert!(joined.contains("calendars/, none there"), "{joined}");
    // Used: no warning; a calendar nobody names is worth one.
    let text = node("[\"cn-public\"]");
    let (errs, warnings) = report(&[
        ("a.toml", &text),
        ("calendars/cn-public.toml", cal),
        ("calendars/spare.toml", cal),
    ]);
    assert!(errs.is_empty(), "{errs:?}");
    let report = warnings.join("\n");
    assert!(
        report.contains("calendar \"spare\" is named by no schedule"),
        "{report}"
    );
    assert!(!report.contains("\"cn-public\" is named by no"), "{report}");
}

#[test]
fn label_nodes_are_checked() {
    let text = with_nodes(
        "[nodes.a]\ntype = \"label\"\nlabels = { \"call type\" = \"x\", vip = 3, tier = \"{tier\" }\nnext = \"b\"\n\
         [nodes.b]\ntype = \"label\"\nlabels = {}\nnext = \"c\"\n\
         [nodes.c]\ntype = \"label\"\nnext = \"end\"\n",
    );
    let joined = errors(&[("a.toml", &text)]).join("\n");
    assert!(
        joined.contains("\"call type\" is not a label name"),
        "{joined}"
    );
    assert!(
        joined.contains("a label's value must be a string, not"),
        "{joined}"
    );
    assert!(joined.contains("is not closed"), "{joined}");
    assert!(joined.contains("`labels` is empty"), "{joined}");
    assert!(joined.contains("a label node needs `labels`"), "{joined}");
}

#[test]
fn announcement_switches_are_listed_with_their_templates() {
    let text = with_nodes(
        "[nodes.a]\ntype = \"announcement\"\nswitch = \"outage\"\nprompts = [\"n\"]\nnext = \"b\"\n\
         [nodes.b]\ntype = \"announcement\"\nswitch = \"area-{caller}-notice\"\nprompts = [\"h\"]\nnext = \"c\"\n\
         [nodes.c]\ntype = \"announcement\"\nswitch = \"outage\"\nprompts = [\"h\"]\nnext = \"end\"\n",
    );
    let dir = dir_with(&[("a.toml", &text)]);
    let (set, _) = load_dir(&dir);
    std::fs::remove_dir_all(&dir).ok();
    let set = set.unwrap();
    let texts: Vec<&str> = set.switches.iter().map(|(t, _)| t.as_str()).collect();
    assert_eq!(texts, ["outage", "area-{caller}-notice"]);
    assert!(set.uses_switch("outage"));
    assert!(set.uses_switch("area-north-notice"));
    assert!(!set.uses_switch("area-north"));
    assert!(!set.uses_switch("storm"));
    // A misspelt variable in a per-area switch would keep the notice silent: warned of.
    let text = with_nodes(
        "[nodes.a]\ntype = \"announcement\"\nswitch = \"outage-{aera}\"\nprompts = [\"n\"]\nnext = \"end\"\n",
    );
    let (errs, warnings) = report(&[("a.toml", &text)]);
    assert!(errs.is_empty(), "{errs:?}");
    assert!(
        warnings
            .iter()
            .any(|w| w.contains("variable `aera` is never set")),
        "{warnings:?}"
    );
}

#[test]
fn switch_names_outside_their_holes_are_checked() {
    let text = with_nodes(
        "[nodes.a]\ntype = \"announcement\"\nswitch = \"out age/{x}\"\nprompts = [\"n\"]\nnext = \"b\"\n\
         [nodes.b]\ntype = \"announcement\"\nswitch = \"area-{caller\"\nprompts = [\"h\"]\nnext = \"end\"\n",
    );
    let joined = errors(&[("a.toml", &text)]).join("\n");
    assert!(
        joined.contains("a switch name is letters, digits, - and _"),
        "{joined}"
    );
    assert!(joined.contains("is not closed"), "{joined}");
}

#[test]
fn every_node_type_of_the_reference_compiles() {
    // The shapes documented in docs/flows.md, all at once.
    let text = with_nodes(
        r##"
[nodes.a]
type = "announcement"
switch = "outage"
prompts = ["notice"]
next = "lang"
[nodes.lang]
type = "language"
language = "zh"
next = "hours"
[nodes.hours]
type = "schedule"
timezone = "Asia/Shanghai"
hours = { "mon-fri" = ["08:00-12:00", "13:00-18:00"], sat = "09:00-12:00", sun = "closed" }
holidays = ["2026-10-01..2026-10-07", 2026-05-01]
special = { "2026-09-27" = "08:00-18:00" }
open = "who"
closed = "vm"
holiday = "vm"
[nodes.who]
type = "lookup"
url = "http://127.0.0.1:8090/customers/{caller}"
cache = "5m"
result = { name = "name" }
next = "menu"
on_failure = "menu"
[nodes.menu]
type = "menu"
prompts = ["main"]
short_prompts = ["main_short"]
choices = { "1" = "acct", "2" = "op", "0" = "op", "9" = "bye" }
default = "op"
on_failure = "op"
[nodes.acct]
type = "collect"
prompts = ["enter"]
variable = "account"
min_digits = 6
max_digits = 10
terminator = "#"
pattern = "[0-9]{6,10}"
confirm = { prompts = ["you_entered"], after = ["confirm"] }
next = "bal"
on_failure = "op"
[nodes.bal]
type = "lookup"
method = "POST"
url = "http://127.0.0.1:8090/balance"
body = { account = "account" }
result = { balance = "balance", due = "due" }
next = "say"
on_not_found = "op"
on_failure = "op"
[nodes.say]
type = "play"
prompts = ["balance_is", { amount = "balance" }, "due_on", { date = "due" }]
next = "check"
[nodes.check]
type = "branch"
cases = [{ when = "balance > 1000", next = "op" }]
else = "share"
[nodes.share]
type = "subflow"
flow = "shared"
next = "bye"
[nodes.op]
type = "queue"
queue = "general"
priority = 3
skills = ["zh"]
answered = "survey"
on_timeout = "vm"
full = "vm"
no_agents = "vm"
[nodes.vm]
type = "record"
prompts = ["leave_message", "beep"]
max_length = "2m"
silence = "5s"
variable = "message"
next = "bye"
on_failure = "duty"
[nodes.duty]
type = "transfer"
number = "13800138000"
ring_timeout = "25s"
on_failure = "bye"
[nodes.survey]
type = "survey"
questions = [{ id = "score", prompts = ["q1"], answers = "12345" }]
next = "mark"
[nodes.mark]
type = "set"
vars = { surveyed = "true" }
next = "bye"
[nodes.bye]
type = "goto"
next = "end"
"##,
    );
    let shared = "[flow]\nname = \"shared\"\nstart = \"r\"\n[nodes.r]\ntype = \"return\"\n";
    let (errs, warns) = report(&[("a.toml", &text), ("b.toml", shared)]);
    assert!(errs.is_empty(), "{errs:#?}");
    assert!(warns.is_empty(), "{warns:#?}");
}

#[test]
fn no_flow_file_makes_the_loader_panic() {
    let mut rng = fastrand::Rng::with_seed(3);
    let dir = dir_with(&[]);
    let alphabet = b"\"=[]. \n#x1{},:'-";
    let sources = [
        GOOD.to_string(),
        with_nodes(
            "[nodes.a]\ntype = \"schedule\"\ntimezone = \"UTC\"\nhours = { daily = \"08:00-18:00\" }\nopen = \"end\"\nclosed = \"end\"\n",
        ),
    ];
    for i in 0..600 {
        let mut text = sources[i % 2].as_bytes().to_vec();
        for _ in 0..rng.usize(1..6) {
            let at = rng.usize(..text.len());
            text[at] = alphabet[rng.usize(..alphabet.len())];
        }
        std::fs::write(dir.join("f.toml"), &text).unwrap();
        let _ = load_dir(&dir);
    }
    std::fs::remove_dir_all(dir).ok();
}

#[test]
fn a_flow_that_calls_itself_through_subflows_is_an_error() {
    let a = "[flow]\nname = \"a\"\nstart = \"s\"\n[nodes.s]\ntype = \"subflow\"\nflow = \"b\"\nnext = \"end\"\n[nodes.end]\ntype = \"hangup\"\n";
    let b = "[flow]\nname = \"b\"\nstart = \"m\"\n[nodes.m]\ntype = \"menu\"\nchoices = { \"1\" = \"again\", \"2\" = \"back\" }\n[nodes.again]\ntype = \"subflow\"\nflow = \"a\"\nnext = \"back\"\n[nodes.back]\ntype = \"return\"\n";
    let errs = errors(&[("a.toml", a), ("b.toml", b)]);
    assert!(
        errs.iter()
            .any(|e| e
                .contains("b.toml:7:8: flow \"a\" calls itself through subflows (a -> b -> a)")),
        "{errs:?}"
    );
}

#[test]
fn a_bad_test_time_does_not_make_its_other_keys_unknown() {
    let dir = dir_with(&[
        ("a.toml", GOOD),
        (
            "tests/t.toml",
            "[[test]]\nname = \"x\"\nflow = \"demo\"\nat = \"yesterday\"\npress = [\"1\"]\nexpect = [\"bye\"]\n",
        ),
    ]);
    let (set, _) = load_dir(&dir);
    let mut diags = Diagnostics::default();
    let cases = super::super::flowtest::load_tests(&dir.join("tests"), &set.unwrap(), &mut diags);
    std::fs::remove_dir_all(&dir).ok();
    assert!(cases.is_empty());
    let errs: Vec<String> = diags.errors.iter().map(|e| e.to_string()).collect();
    assert_eq!(errs.len(), 1, "{errs:?}");
    assert!(
        errs[0].contains("t.toml:4:6: \"yesterday\" is not a time"),
        "{errs:?}"
    );
}

const QUEUE_HEAD: &str = "[flow]\nname = \"q\"\nnumbers = [\"1\"]\nstart = \"q\"\n[nodes.end]\ntype = \"hangup\"\n[nodes.q]\ntype = \"queue\"\nno_agents = \"end\"\non_timeout = \"end\"\nfull = \"end\"\n";

#[test]
fn queue_node_parameters_and_keys_are_checked_where_written() {
    let q = |rest: &str| only_error(&format!("{QUEUE_HEAD}{rest}"));
    assert_eq!(
        q("queue = \"bad name\"\n"),
        "a.toml:12:9: a queue name is letters, digits, - and _ (or a template like \"{vip_queue}\")"
    );
    assert_eq!(
        q("queue = \"{tier\"\n"),
        "a.toml:12:10: in \"{tier\": `{` is not closed with `}`"
    );
    assert_eq!(
        q("queue = \"g\"\npriority = \"150\"\n"),
        "a.toml:13:12: `priority` must be between 0 and 100 (or a template like \"{tier_priority}\")"
    );
    assert_eq!(
        q("queue = \"g\"\npriority = 101\n"),
        "a.toml:13:12: `priority` must be between 0 and 100"
    );
    assert_eq!(
        q("queue = \"g\"\npriority = true\n"),
        "a.toml:13:12: `priority` must be a whole number or a template, not true/false"
    );
    assert_eq!(
        q("queue = \"g\"\nrecord = \"sometimes\"\n"),
        "a.toml:13:10: `record` is true or false (or a template like \"{consented}\")"
    );
    assert_eq!(
        q("queue = \"g\"\nrecord = 1\n"),
        "a.toml:13:10: `record` must be true, false or a template, not a number"
    );
    assert_eq!(
        q("queue = \"g\"\nkeys = { \"12\" = \"end\" }\n"),
        "a.toml:13:10: queue key \"12\" is not one key (0-9, *, #, A-D)"
    );
    assert_eq!(
        q("queue = \"g\"\nkeys = { \"1\" = \"edn\" }\n"),
        "a.toml:13:16: unknown node \"edn\" (did you mean \"end\"?)"
    );
    // Templates read variables like other nodes: an unset one is a warning.
    let (errors, warnings) = report(&[(
        "a.toml",
        &format!(
            "{QUEUE_HEAD}queue = \"{{vip_queue}}\"\nskills = \"{{lang}}\"\nkeys = {{ \"1\" = \"end\" }}\n"
        ),
    )]);
    assert!(errors.is_empty(), "{errors:?}");
    assert_eq!(warnings.len(), 2, "{warnings:?}");
    assert!(
        warnings[0].contains("variable `vip_queue` is never set"),
        "{warnings:?}"
    );
    assert!(
        warnings[1].contains("variable `lang` is never set"),
        "{warnings:?}"
    );
}

#[test]
fn a_node_reached_only_by_a_queue_key_is_reachable() {
    let (errors, warnings) = report(&[(
        "a.toml",
        &format!(
            "{QUEUE_HEAD}queue = \"g\"\nkeys = {{ \"1\" = \"vm\" }}\n[nodes.vm]\ntype = \"play\"\nprompts = [\"x\"]\nnext = \"end\"\n"
        ),
    )]);
    assert!(
        errors.is_empty() && warnings.is_empty(),
        "{errors:?} {warnings:?}"
    );
}

#[test]
fn sensitive_keys_are_checked() {
    let text = with_nodes(
        "[nodes.a]\ntype = \"collect\"\nvariable = \"pin\"\nmax_digits = 4\nkeep_last = 2\nnext = \"end\"\n",
    );
    let errs = errors(&[("a.toml", &text)]);
    assert!(
        errs.iter().any(|e| e.contains("add `sensitive = true`")),
        "{errs:?}"
    );
    let text = with_nodes(
        "[nodes.a]\ntype = \"lookup\"\nurl = \"http://127.0.0.1:1/x\"\nresult = { pin = \"pin\" }\nsensitive = [\"pni\"]\nnext = \"end\"\n",
    );
    let errs = errors(&[("a.toml", &text)]);
    assert!(
        errs.iter()
            .any(|e| e.contains("\"pni\" is not one of this lookup's `result` variables")),
        "{errs:?}"
    );
}

#[test]
fn a_duration_without_a_unit_says_how_to_write_it() {
    let text = with_nodes(
        "[nodes.a]\ntype = \"menu\"\nprompts = [\"m\"]\nchoices = { \"1\" = \"end\" }\ntimeout = 5\n",
    );
    let errs = errors(&[("a.toml", &text)]);
    assert!(
        errs.iter()
            .any(|e| e.contains("`timeout` is a duration with a unit: write \"5s\"")),
        "{errs:?}"
    );
}

/// Syntax errors point where the mistake is (issue 10): a node or key defined twice names
/// the first, and a string left open is reported where it opens, not as a missing comma on
/// the next line.
#[test]
fn syntax_errors_say_where_the_mistake_is() {
    let twice = with_nodes("[nodes.a]\ntype = \"hangup\"\n[nodes.a]\ntype = \"hangup\"\n");
    let errs = errors(&[("a.toml", &twice)]);
    assert!(
        errs.iter()
            .any(|e| e.contains("`[nodes.a]` is defined twice; the first one is at line")),
        "{errs:?}"
    );
    let key = with_nodes("[nodes.a]\ntype = \"hangup\"\ntype = \"menu\"\n");
    let errs = errors(&[("a.toml", &key)]);
    assert!(
        errs.iter()
            .any(|e| e.contains("`type` is set twice in this table; the first one is at line")),
        "{errs:?}"
    );
    let open = with_nodes("[nodes.a]\ntype = \"play\"\nprompts = [\"hello]\nnext = \"end\"\n");
    let errs = errors(&[("a.toml", &open)]);
    assert!(
        errs.iter().any(|e| e.contains("this string is not closed")),
        "{errs:?}"
    );
    let line = open.lines().position(|l| l.contains("\"hello]")).unwrap() + 1;
    assert!(
        errs.iter().any(|e| e.contains(&format!("a.toml:{line}:"))),
        "reported on the line that opens it ({line}): {errs:?}"
    );
}

#[test]
fn transfer_headers_are_checked() {
    let text = with_nodes(
        "[nodes.a]\ntype = \"transfer\"\nto = \"sips:duty@192.0.2.1\"\nheaders = { Via = \"x\", X-Ok = \"{caller}\", \"X Bad\" = \"y\" }\n",
    );
    let errs = errors(&[("a.toml", &text)]);
    assert!(
        errs.iter()
            .any(|e| e.contains("\"Via\" cannot be set by a flow")),
        "{errs:?}"
    );
    assert!(
        errs.iter()
            .any(|e| e.contains("\"X Bad\" cannot be set by a flow")),
        "{errs:?}"
    );
    assert_eq!(errs.len(), 2, "X-Ok and a sips: target are fine: {errs:?}");
}
