//! The `hotline` command as an admin meets it: start-up errors, check, cdr, and signals.

mod common;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::TempDir;

fn hotline() -> Command {
    Command::new(env!("CARGO_BIN_EXE_hotline"))
}

#[test]
fn bad_config_exits_non_zero_and_names_the_key() {
    let dir = TempDir::new("cli-config");
    let cfg = dir.path().join("bad.toml");
    std::fs::write(&cfg, "[media]\nrtp_ports = \"30000\"\n").unwrap();
    let out = hotline()
        .args(["serve", "--config"])
        .arg(&cfg)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("media.rtp_ports"), "{err}");
    std::fs::write(&cfg, "[sip]\nmax_cals = 3\n").unwrap();
    let out = hotline()
        .args(["serve", "--config"])
        .arg(&cfg)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("bad.toml:2:1") && err.contains("max_cals"),
        "{err}"
    );
}

#[test]
fn config_errors_name_the_key_or_the_flag() {
    let dir = TempDir::new("cli-keys");
    let cfg = dir.path().join("hotline.toml");
    std::fs::write(&cfg, "[sip]\nmax_calls = \"ten\"\n").unwrap();
    let out = hotline()
        .args(["serve", "--config"])
        .arg(&cfg)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(
            "hotline.toml:2:13: sip.max_calls: invalid type: string \"ten\", expected a whole number"
        ),
        "{err}"
    );
    // Each is refused before anything is bound or opened.
    for (args, names) in [
        (
            ["--rtp-ports", "46001-46002"],
            ["--rtp-ports", "media.rtp_ports"],
        ),
        (
            ["--database", "mysql://cdr:secret@127.0.0.1/cdr"],
            ["--database", "cdr.database"],
        ),
    ] {
        let out = hotline()
            .args(["serve", "--sip-bind", "127.0.0.1:0"])
            .args(args)
            .current_dir(dir.path())
            .output()
            .unwrap();
        assert!(!out.status.success(), "{args:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(names.iter().all(|n| err.contains(n)), "{args:?}: {err}");
        assert!(!err.contains("secret"), "{err}");
    }
    std::fs::write(&cfg, "[cdr]\ndatabase = \"mysql://127.0.0.1/cdr\"\n").unwrap();
    let out = hotline()
        .args(["serve", "--sip-bind", "127.0.0.1:0", "--config"])
        .arg(&cfg)
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("cdr.database"), "{err}");
}

#[test]
fn missing_prompt_is_an_error_naming_the_file_before_any_call() {
    let site = common::site(common::TEST_FLOW);
    std::fs::remove_file(site.config.prompts_dir.join("goodbye.wav")).unwrap();
    let out = hotline()
        .args(["serve", "--sip-bind", "127.0.0.1:0", "--flows"])
        .arg(&site.config.flows_dir)
        .arg("--prompts")
        .arg(&site.config.prompts_dir)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("goodbye") && err.contains("goodbye.wav"),
        "{err}"
    );
    assert!(
        err.contains("test.toml:") && err.contains("prompts = [\"goodbye\"]"),
        "the flow line that uses it: {err}"
    );
}

#[test]
fn check_accepts_the_shipped_demo_and_rejects_a_broken_flow() {
    let repo = env!("CARGO_MANIFEST_DIR");
    let out = hotline()
        .current_dir(repo)
        .args(["check"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("1 flow(s), 2 agent(s), 3 queue(s), "),
        "the demo's agents and queues are checked with it: {stdout}"
    );
    let site = common::site(&common::TEST_FLOW.replace("next = \"menu\"", "next = \"mneu\""));
    let out = hotline()
        .arg("check")
        .arg(&site.config.flows_dir)
        .arg("--prompts")
        .arg(&site.config.prompts_dir)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("test.toml:") && err.contains("did you mean \"menu\""),
        "{err}"
    );
}

#[test]
fn the_shipped_flow_tests_and_documented_examples_pass_and_a_wrong_expectation_fails() {
    let repo = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    for dir in ["ivr-flows", "docs/examples/ivr-flows", "tests/interop"] {
        let out = hotline()
            .current_dir(repo)
            .args(["check", dir, "--prompts", "prompts", "--tests"])
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{dir}: {stdout}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(stdout.contains(", 0 warning(s): OK"), "{dir}: {stdout}");
    }
    // A copy of the demo whose test expects a node the walk never reaches.
    let site = common::site("");
    let flows = &site.config.flows_dir;
    std::fs::remove_file(flows.join("test.toml")).unwrap();
    std::fs::copy(
        repo.join("ivr-flows/hotline.toml"),
        flows.join("hotline.toml"),
    )
    .unwrap();
    std::fs::create_dir_all(flows.join("calendars")).unwrap();
    std::fs::copy(
        repo.join("ivr-flows/calendars/cn-public.toml"),
        flows.join("calendars/cn-public.toml"),
    )
    .unwrap();
    std::fs::create_dir_all(flows.join("tests")).unwrap();
    std::fs::write(
        flows.join("tests/t.toml"),
        "[[test]]\nname = \"wrong\"\nflow = \"hotline\"\nat = \"2026-12-01T22:00:00+08:00\"\npress = [\"2\"]\nexpect = [\"main_menu\"]\n",
    )
    .unwrap();
    let out = hotline()
        .args(["check", flows.to_str().unwrap(), "--tests", "--prompts"])
        .arg(repo.join("prompts"))
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(!out.status.success(), "{stdout}");
    assert!(stdout.contains("FAIL  wrong"), "{stdout}");
    assert!(
        stdout.contains("t.toml:1:1: expected node \"main_menu\""),
        "{stdout}"
    );
}

#[test]
fn try_walks_a_flow_and_graph_draws_it() {
    let repo = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let out = hotline()
        .current_dir(repo)
        .args([
            "try",
            "100",
            "--at",
            "2026-12-01T22:30:00+08:00",
            "--press",
            "2",
            "--press",
            "1",
        ])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}");
    assert!(
        stdout.contains("-> after_hours [menu]  (by \"closed\")"),
        "{stdout}"
    );
    assert!(
        stdout.contains("prompts/en/leave_message.wav  \"Please leave your message"),
        "{stdout}"
    );
    for format in ["svg", "dot", "mermaid"] {
        let out = hotline()
            .current_dir(repo)
            .args(["graph", "hotline", "--format", format])
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success() && text.contains("main_menu"),
            "{format}: {text}"
        );
    }
}

#[test]
fn sigterm_drains_flushes_cdrs_and_exits_zero_then_cdr_prints_them() {
    let site = common::site(common::TEST_FLOW);
    let port = common::free_udp_port();
    let log = site.dir.path().join("serve.log");
    let mut child = common::serve_command(&site, port, "47000-47200", None, &log)
        .spawn()
        .unwrap();
    common::wait_until_serving(&log);
    let mut phone = common::Phone::new(format!("127.0.0.1:{port}").parse().unwrap());
    phone.call("100");
    phone.talk(Duration::from_millis(300));
    phone.hangup();
    phone.pump(Duration::from_millis(200));
    // SAFETY: signalling our own child.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let status = child.wait().unwrap();
    assert!(status.success(), "{status}");
    let out = hotline()
        .args([
            "cdr",
            "--database",
            &site.config.database,
            "--last",
            "5",
            "--format",
            "json",
        ])
        .output()
        .unwrap();
    assert!(out.status.success());
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json.as_array().map(Vec::len), Some(1), "{json}");
    assert_eq!(json[0]["disposition"], "caller_hangup");
    let out = hotline()
        .args(["cdr", "--database", &site.config.database])
        .output()
        .unwrap();
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(
        table.contains("caller_hangup") && table.contains("welcome"),
        "{table}"
    );
}

#[test]
fn cdr_on_a_missing_sqlite_file_says_so_and_creates_nothing() {
    let dir = TempDir::new("cli-cdr-missing");
    let file = dir.path().join("nope.db");
    for url in [
        format!("sqlite://{}", file.display()),
        format!("sqlite:{}?mode=rwc", file.display()),
        file.display().to_string(),
    ] {
        let out = hotline()
            .args(["cdr", "--database", &url])
            .output()
            .unwrap();
        assert!(!out.status.success(), "{url}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains(&format!("no CDR database at {}", file.display())),
            "{url}: {err}"
        );
        assert!(!file.exists(), "{url} created the file");
    }
    // The default URL, relative to where the command runs.
    let out = hotline()
        .arg("cdr")
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("no CDR database at hotline.db"), "{err}");
    assert!(!dir.path().join("hotline.db").exists());
}

#[test]
fn cdr_into_a_closed_pipe_exits_quietly() {
    use std::io::BufRead;
    let dir = TempDir::new("cli-cdr-pipe");
    let url = format!("sqlite://{}", dir.path().join("cdr.db").display());
    // Far more than a pipe buffer holds, so the command is still writing when the reader goes.
    let records: Vec<hotline::cdr::CdrRecord> = (0..2000)
        .map(|n| hotline::cdr::CdrRecord {
            id: format!("{n:032x}"),
            sip_call_id: format!("pipe-{n}@127.0.0.1"),
            caller: "5550100".into(),
            dialled: "100".into(),
            start_ms: 1_700_000_000_000 + n,
            answer_ms: Some(1_700_000_000_100 + n),
            end_ms: 1_700_000_030_000 + n,
            flow: Some("test".into()),
            ivr_path: vec!["welcome".into(), "menu".into()],
            digits: "9".into(),
            disposition: hotline::cdr::Disposition::Completed,
            hangup_by: hotline::cdr::HangupBy::Hotline,
            sip_code: 200,
            end_reason: "flow_hangup".into(),
            language: Some("en".into()),
            survey: Vec::new(),
            recordings: Vec::new(),
            ..Default::default()
        })
        .collect();
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(async {
            let store = hotline::cdr::store::CdrStore::connect(&url).await.unwrap();
            store.migrate().await.unwrap();
            store.insert_batch(&records).await.unwrap();
            store.close().await;
        });
    // What `hotline cdr | head -1` does to it.
    let mut child = hotline()
        .args(["cdr", "--database", &url, "--last", "2000"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut first = String::new();
    std::io::BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut first)
        .unwrap();
    assert!(!first.is_empty());
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{}: {err}", out.status);
    assert!(
        !err.contains("panicked") && !err.to_lowercase().contains("broken pipe"),
        "{err}"
    );
}

#[test]
fn check_holds_queue_nodes_against_the_queues_file() {
    let flow = common::TEST_FLOW.replace(
        "[nodes.goodbye]",
        "[nodes.agent]\ntype = \"queue\"\nqueue = \"sales\"\nno_agents = \"goodbye\"\non_timeout = \"goodbye\"\nfull = \"goodbye\"\n\n[nodes.goodbye]",
    ).replace("\"9\" = \"goodbye\"", "\"9\" = \"goodbye\", \"0\" = \"agent\"");
    let site = common::site(&flow);
    let check = || {
        let out = hotline()
            .arg("check")
            .arg(&site.config.flows_dir)
            .arg("--prompts")
            .arg(&site.config.prompts_dir)
            .output()
            .unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).to_string(),
            String::from_utf8_lossy(&out.stderr).to_string(),
        )
    };
    // No acd folder: queue names are not checked (the server answers no_agents).
    let (ok, stdout, stderr) = check();
    assert!(ok, "{stderr}");
    assert!(stdout.contains("0 warning(s): OK"), "{stdout}");
    let acd = site.config.flows_dir.join("acd");
    std::fs::create_dir_all(&acd).unwrap();
    std::fs::write(
        acd.join("agents.toml"),
        "[agents.1001]\nha1_md5 = \"0809f3e5963e8d5a3d19b15141b5885d\"\nskills = { sales = 5 }\n",
    )
    .unwrap();
    std::fs::write(
        acd.join("queues.toml"),
        "[queues.sale]\nskills = { sales = 3 }\n",
    )
    .unwrap();
    let (ok, _, stderr) = check();
    assert!(!ok);
    let line = flow.lines().position(|l| l == "queue = \"sales\"").unwrap() + 1;
    assert!(
        stderr.contains(&format!(
            "test.toml:{line}:9: queue \"sales\" is not defined in acd/queues.toml (did you mean \"sale\"?)\n    queue = \"sales\""
        )),
        "{stderr}"
    );
    assert!(stderr.contains("1 error(s), 0 warning(s)"), "{stderr}");
    std::fs::write(
        acd.join("queues.toml"),
        "[queues.sales]\nskills = { sales = 3 }\n",
    )
    .unwrap();
    let (ok, stdout, stderr) = check();
    assert!(ok, "{stderr}");
    assert!(
        stdout.contains("1 flow(s), 1 agent(s), 1 queue(s), 5 prompt file(s)"),
        "{stdout}"
    );
}

#[test]
fn agent_password_prints_the_lines_to_paste() {
    let run = |args: &[&str], input: &str| {
        let mut child = hotline()
            .arg("agent-password")
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        use std::io::Write;
        child
            .stdin
            .take()
            .unwrap()
            .write_all(input.as_bytes())
            .unwrap();
        child.wait_with_output().unwrap()
    };
    // Expected values: printf '1001:hotline:secret1001' | md5sum (and sha256sum), and
    // printf '1001:1234' | sha256sum.
    let out = run(&["1001", "--pin"], "secret1001\n1234\n");
    assert!(out.status.success());
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "ha1_md5 = \"0809f3e5963e8d5a3d19b15141b5885d\"\n\
         ha1_sha256 = \"dad74c70f71a7017676a8013dcc4451de285001c6aec0cb0c8343b47e6380160\"\n\
         pin_sha256 = \"1bc5218ee72a75f70d19bdff436b706e4c1f3ea09c2fb0715461c89a6acac61d\"\n"
    );
    // Another realm and the extension as the digest user: printf '2002:pbx:pw' | md5sum.
    let out = run(&["1002", "--extension", "2002", "--realm", "pbx"], "pw\r\n");
    assert!(out.status.success());
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.starts_with("ha1_md5 = \"698cedbc265fafa9861bb925378a21f8\"\n"),
        "{stdout}"
    );
    assert_eq!(stdout.lines().count(), 2, "no PIN asked: {stdout}");
    let out = run(&["1001", "--pin"], "secret1001\n12a4\n");
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("a PIN is digits only"));
    let out = run(&["1001"], "");
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("no password on standard input"));
}

/// SIGKILL while the database is down: at the next start (the database back) every call
/// that had finished is written once, and each call that was up gets a failed record that
/// names the crash.
#[test]
fn sigkill_during_a_database_outage_loses_no_record() {
    let site = common::site(common::TEST_FLOW);
    let port = common::free_udp_port();
    let serve = |database: &str, log: &std::path::Path| {
        let child =
            common::serve_command_with_database(&site, database, port, "47400-47600", None, log)
                .spawn()
                .unwrap();
        let child = common::ChildGuard(Some(child));
        common::wait_until_serving(log);
        child
    };
    // Nothing listens on port 1: every connection is refused at once.
    let mut child = serve(
        "postgres://hotline:secret@127.0.0.1:1/cdr",
        &site.dir.path().join("down.log"),
    );
    let server = format!("127.0.0.1:{port}").parse().unwrap();
    for _ in 0..3 {
        let mut phone = common::Phone::new(server);
        phone.call("100");
        phone.talk(Duration::from_millis(200));
        phone.hangup();
        phone.pump(Duration::from_millis(100));
    }
    let mut up: Vec<common::Phone> = (0..2).map(|_| common::Phone::new(server)).collect();
    for phone in &mut up {
        phone.call("100");
        phone.talk(Duration::from_millis(200));
    }
    // The journal syncs within milliseconds; give it a moment, then kill without warning.
    std::thread::sleep(Duration::from_millis(300));
    // SAFETY: signalling our own child.
    unsafe { libc::kill(child.id() as i32, libc::SIGKILL) };
    child.take().wait().unwrap();
    drop(up);

    let mut child = serve(&site.config.database, &site.dir.path().join("up.log"));
    let end = Instant::now() + Duration::from_secs(10);
    let rows = loop {
        let out = hotline()
            .args([
                "cdr",
                "--database",
                &site.config.database,
                "--last",
                "50",
                "--format",
                "json",
            ])
            .output()
            .unwrap();
        let json: serde_json::Value =
            serde_json::from_slice(&out.stdout).unwrap_or(serde_json::Value::Null);
        let rows = json.as_array().cloned().unwrap_or_default();
        if rows.len() >= 5 || Instant::now() > end {
            break rows;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    // SAFETY: signalling our own child.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    assert!(child.take().wait().unwrap().success());
    assert_eq!(rows.len(), 5, "{rows:#?}");
    let finished = rows
        .iter()
        .filter(|r| r["disposition"] == "caller_hangup")
        .count();
    let cut: Vec<_> = rows
        .iter()
        .filter(|r| r["end_reason"] == "server_crash")
        .collect();
    assert_eq!(finished, 3, "{rows:#?}");
    assert_eq!(cut.len(), 2, "{rows:#?}");
    assert!(cut.iter().all(|r| r["disposition"] == "failed"), "{cut:#?}");
    let mut ids: Vec<&str> = rows
        .iter()
        .filter_map(|r| r["sip_call_id"].as_str())
        .collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 5, "one row per call");
}

/// `hotline try` shows a sensitive entry as the flow allows: keys and variable masked.
#[test]
fn try_masks_a_sensitive_entry() {
    let flow = r##"
[flow]
name = "card"
numbers = ["100"]
start = "card"
[nodes.card]
type = "collect"
prompts = ["welcome"]
variable = "card"
min_digits = 16
max_digits = 16
terminator = "#"
sensitive = true
keep_last = 4
next = "end"
[nodes.end]
type = "hangup"
"##;
    let site = common::site(flow);
    let out = hotline()
        .args(["try", "100", "--flows"])
        .arg(&site.config.flows_dir)
        .arg("--prompts")
        .arg(&site.config.prompts_dir)
        .args(["--press", "4111111111111234#"])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}");
    assert!(!stdout.contains("41111111"), "{stdout}");
    assert!(stdout.contains("card=\"xxxxxxxxxxxx1234\""), "{stdout}");
}

/// `hotline try` as an admin uses it (issue 10): it dials the flow's first number, takes the
/// flow's file path, refuses keys that are not keys and look-up answers for nodes that do not
/// exist, and ends quietly when its output is cut short by `head`. Flow tests refuse the same
/// mistakes.
#[test]
fn try_dials_the_first_number_and_refuses_what_it_cannot_use() {
    let flow = r##"
[flow]
name = "desk"
numbers = ["900", "100"]
start = "who"
[nodes.who]
type = "lookup"
url = "http://127.0.0.1:9/who?n={caller}"
result = { name = "name" }
next = "menu"
on_failure = "menu"
[nodes.menu]
type = "menu"
prompts = ["menu"]
choices = { "1" = "end" }
[nodes.end]
type = "hangup"
"##;
    let site = common::site(flow);
    let try_with = |args: &[&str]| {
        let mut cmd = hotline();
        cmd.arg("try")
            .args(args)
            .arg("--flows")
            .arg(&site.config.flows_dir)
            .arg("--prompts")
            .arg(&site.config.prompts_dir);
        cmd
    };
    let out = try_with(&["desk", "--lookup", "who=fail", "--press", "1"])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}");
    assert!(
        stdout.contains("dialling \"900\""),
        "the first number: {stdout}"
    );
    let file = site.config.flows_dir.join("test.toml");
    let out = try_with(&[file.to_str().unwrap(), "--lookup", "who=fail"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for (args, says) in [
        (
            &["desk", "--lookup", "woh=fail"][..],
            "no lookup node is named \"woh\" (lookup nodes: who)",
        ),
        (&["desk", "--press", "x"][..], "'x' is not a key"),
    ] {
        let out = try_with(args).output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            !out.status.success() && stderr.contains(says),
            "{args:?}: {stderr}"
        );
    }
    // Output cut short: a flow that plays in a loop prints far more than a pipe holds, and
    // the reader goes away at once. No panic, and success.
    std::fs::write(
        site.config.flows_dir.join("loop.toml"),
        "[flow]\nname = \"loop\"\nnumbers = [\"300\"]\nstart = \"a\"\n[nodes.a]\ntype = \"play\"\nprompts = [\"menu\"]\nnext = \"b\"\n[nodes.b]\ntype = \"play\"\nprompts = [\"welcome\"]\nnext = \"a\"\n",
    )
    .unwrap();
    let mut child = try_with(&["loop"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && !stderr.contains("panicked"),
        "{}: {stderr}",
        out.status
    );
    let out = try_with(&["loop"]).output().unwrap();
    assert!(
        out.stdout.len() > 100_000,
        "the loop's walk outgrows a pipe"
    );
    std::fs::remove_file(site.config.flows_dir.join("loop.toml")).unwrap();
    // Flow tests: a misspelt look-up and a key that is not one are errors.
    let tests = site.config.flows_dir.join("tests");
    std::fs::create_dir_all(&tests).unwrap();
    std::fs::write(
        tests.join("t.toml"),
        "[[test]]\nname = \"t\"\nflow = \"desk\"\npress = [\"1x\"]\nlookups = { woh = \"fail\" }\nexpect = [\"menu\"]\n",
    )
    .unwrap();
    let out = hotline()
        .args(["check", "--tests"])
        .arg(&site.config.flows_dir)
        .arg("--prompts")
        .arg(&site.config.prompts_dir)
        .output()
        .unwrap();
    let all =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{all}");
    assert!(all.contains("no lookup node is named \"woh\""), "{all}");
    assert!(all.contains("'x' is not a key"), "{all}");
}

/// Look-ups over HTTPS (issue 10): a back end with a certificate from a private authority is
/// reached once `flows.lookup_ca` names that authority, and refused (the failure exit) when
/// only the system's authorities are trusted.
#[test]
fn a_lookup_reaches_an_https_back_end_whose_authority_is_configured() {
    use std::io::{Read, Write};
    use std::sync::Arc;
    let repo = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let server = std::thread::spawn(move || {
        use rustls::pki_types::pem::PemObject;
        let certs: Vec<_> =
            rustls::pki_types::CertificateDer::pem_file_iter(repo.join("tests/tls/cert.pem"))
                .unwrap()
                .map(Result::unwrap)
                .collect();
        let key = rustls::pki_types::PrivateKeyDer::from_pem_file(repo.join("tests/tls/key.pem"))
            .unwrap();
        #[allow(deprecated)]
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = Arc::new(
            rustls::ServerConfig::builder_with_provider(provider)
                .with_safe_default_protocol_versions()
                .unwrap()
                .with_no_client_auth()
                .with_single_cert(certs, key)
                .unwrap(),
        );
        let mut requests = Vec::new();
        // Two connections: the one that trusts our authority, and the one that does not.
        for _ in 0..2 {
            let (sock, _) = listener.accept().unwrap();
            sock.set_read_timeout(Some(std::time::Duration::from_secs(5)))
                .unwrap();
            let conn = rustls::ServerConnection::new(Arc::clone(&config)).unwrap();
            let mut tls = rustls::StreamOwned::new(conn, sock);
            let mut buf = [0u8; 4096];
            let Ok(n) = tls.read(&mut buf) else {
                continue;
            };
            let request = String::from_utf8_lossy(&buf[..n]).to_string();
            let body = "{\"customer\": {\"name\": \"Li\"}}";
            let _ = write!(
                tls,
                "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
                body.len()
            );
            let _ = tls.flush();
            requests.push(request);
        }
        requests
    });
    let flow = format!(
        r##"
[flow]
name = "who"
numbers = ["100"]
start = "who"
[nodes.who]
type = "lookup"
url = "https://127.0.0.1:{port}/customers/{{caller}}"
result = {{ name = "customer.name" }}
next = "end"
on_failure = "end"
[nodes.end]
type = "hangup"
"##
    );
    let site = common::site(&flow);
    let config = site.dir.path().join("hotline.toml");
    std::fs::write(
        &config,
        format!(
            "[flows]\nlookup_ca = \"{}\"\n",
            repo.join("tests/tls/ca.pem").display()
        ),
    )
    .unwrap();
    let try_it = |with_ca: bool| {
        let mut cmd = hotline();
        cmd.args(["try", "who", "--caller", "13800000001"]);
        if with_ca {
            cmd.arg("--config").arg(&config);
        }
        cmd.arg("--flows")
            .arg(&site.config.flows_dir)
            .arg("--prompts")
            .arg(&site.config.prompts_dir);
        let out = cmd.output().unwrap();
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr)
    };
    let trusted = try_it(true);
    assert!(trusted.contains("name=\"Li\""), "{trusted}");
    let untrusted = try_it(false);
    assert!(!untrusted.contains("name=\"Li\""), "{untrusted}");
    assert!(
        untrusted.contains("TLS"),
        "the failure says why: {untrusted}"
    );
    let requests = server.join().unwrap();
    assert_eq!(requests.len(), 1, "only the trusting client sent a request");
    assert!(
        requests[0].starts_with("GET /customers/13800000001 HTTP/1.1\r\n"),
        "{}",
        requests[0]
    );
}

/// `hotline announce` with set times and per-area switches (issue 10, item 11): the window is
/// written to the switch file and shown with whether it plays yet, a per-area template is
/// listed with the switch files it can make, and `try` hears what a call would.
#[test]
fn announce_puts_up_a_notice_for_a_window_and_per_area() {
    let flow = r##"
[flow]
name = "notice"
numbers = ["100"]
start = "area"
[nodes.area]
type = "set"
vars = { area = "'north'" }
next = "outage"
[nodes.outage]
type = "announcement"
switch = "outage-{area}"
prompts = ["option1"]
next = "works"
[nodes.works]
type = "announcement"
switch = "maintenance"
prompts = ["goodbye"]
next = "end"
[nodes.end]
type = "hangup"
"##;
    let site = common::site(flow);
    let announce = |args: &[&str]| {
        let out = hotline()
            .arg("announce")
            .args(args)
            .arg("--flows")
            .arg(&site.config.flows_dir)
            .output()
            .unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).to_string(),
            String::from_utf8_lossy(&out.stderr).to_string(),
        )
    };
    let (ok, stdout, _) = announce(&[
        "maintenance",
        "on",
        "--from",
        "2999-12-10T22:00:00+08:00",
        "--until",
        "2999-12-11T06:00:00+08:00",
    ]);
    assert!(ok, "{stdout}");
    assert!(stdout.contains("not yet playing"), "{stdout}");
    let file = site.config.flows_dir.join("announcements/maintenance.on");
    let text = std::fs::read_to_string(&file).unwrap();
    assert!(text.contains("from = \"2999-12-10T"), "{text}");
    // A window the wrong way round, and a window without `on`, are refused.
    let (ok, _, stderr) = announce(&[
        "maintenance",
        "on",
        "--from",
        "2999-12-11 06:00",
        "--until",
        "2999-12-10 22:00",
    ]);
    assert!(!ok && stderr.contains("not after"), "{stderr}");
    let (ok, _, stderr) = announce(&["maintenance", "--until", "2999-12-10 22:00"]);
    assert!(!ok && stderr.contains("go with `on`"), "{stderr}");
    let (ok, _, stderr) = announce(&["maintenance", "on", "--from", "tomorrow"]);
    assert!(!ok && stderr.contains("\"tomorrow\""), "{stderr}");

    // Per area: the template's switches are accepted without a warning, others warned of.
    let (ok, _, stderr) = announce(&["outage-north", "on"]);
    assert!(ok && stderr.is_empty(), "{stderr}");
    let (ok, _, stderr) = announce(&["storm", "on"]);
    assert!(
        ok && stderr.contains("no announcement node uses the switch \"storm\""),
        "{stderr}"
    );
    let (_, listing, _) = announce(&[]);
    assert!(
        listing.contains("maintenance: on from 2999-12-10"),
        "{listing}"
    );
    assert!(
        listing.contains("outage-{area}: one switch per value"),
        "{listing}"
    );
    assert!(listing.contains("outage-north: on\n"), "{listing}");
    assert!(
        listing.contains("storm: on (no announcement node names it)"),
        "{listing}"
    );

    // `try` hears what a call would now: the area's notice, not the future maintenance one,
    // unless told to take that switch as on.
    let walk = |extra: &[&str]| {
        let out = hotline()
            .args(["try", "notice", "--flows"])
            .arg(&site.config.flows_dir)
            .arg("--prompts")
            .arg(&site.config.prompts_dir)
            .args(extra)
            .output()
            .unwrap();
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    };
    let now = walk(&[]);
    assert!(now.contains("option1") && !now.contains("goodbye"), "{now}");
    let forced = walk(&["--switch", "maintenance"]);
    assert!(forced.contains("goodbye"), "{forced}");
    let (ok, _, _) = announce(&["outage-north", "off"]);
    assert!(ok);
    let off = walk(&[]);
    assert!(!off.contains("option1"), "{off}");
}

/// `hotline user-password` prints a users-file entry whose hash checks the password read from
/// standard input; a weak password or a missing agent id is refused (issue 11).
#[test]
fn user_password_prints_an_entry_for_the_users_file() {
    use std::io::Write;
    let run = |args: &[&str], input: &str| {
        let mut child = hotline()
            .arg("user-password")
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(input.as_bytes())
            .unwrap();
        let out = child.wait_with_output().unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).to_string(),
            String::from_utf8_lossy(&out.stderr).to_string(),
        )
    };
    let (ok, text, err) = run(
        &["li", "--role", "agent", "--agent", "1001"],
        "correct horse\n",
    );
    assert!(ok, "{err}");
    let users = hotline::api::auth::Users::parse(&text, "pasted").unwrap();
    let li = users.get("li").unwrap();
    let mut memory = Vec::new();
    assert!(hotline::api::auth::verify(li, "correct horse", &mut memory));
    assert!(!hotline::api::auth::verify(
        li,
        "correct horse\n",
        &mut memory
    ));
    assert!(!text.contains("correct horse"), "{text}");
    let (ok, _, err) = run(&["li", "--role", "agent"], "correct horse\n");
    assert!(!ok && err.contains("--agent"), "{err}");
    let (ok, _, err) = run(&["wang", "--role", "supervisor"], "short\n");
    assert!(!ok && err.contains("at least 8"), "{err}");
    let (ok, _, err) = run(&["wang", "--role", "boss"], "correct horse\n");
    assert!(!ok && err.contains("--role"), "{err}");
}
