use super::*;

struct Dir(PathBuf);

impl Drop for Dir {
    fn drop(&mut self) {
        std::fs::remove_dir_all(&self.0).ok();
    }
}

/// A flows directory with the two ACD files (None: the file is absent).
fn site(agents: Option<&str>, queues: Option<&str>) -> Dir {
    let root = std::env::temp_dir().join(format!("hotline-acd-{}", fastrand::u64(..)));
    std::fs::create_dir_all(root.join(ACD_DIR)).unwrap();
    if let Some(a) = agents {
        std::fs::write(root.join(ACD_DIR).join(AGENTS_FILE), a).unwrap();
    }
    if let Some(q) = queues {
        std::fs::write(root.join(ACD_DIR).join(QUEUES_FILE), q).unwrap();
    }
    Dir(root)
}

/// Errors and warnings as `file:line:col: message`, the file named without its folder.
fn messages(diags: &Diagnostics) -> (Vec<String>, Vec<String>) {
    let short = |at: &Located, m: &str| {
        format!(
            "{}:{}:{}: {m}",
            at.file.file_name().unwrap().to_string_lossy(),
            at.line,
            at.column
        )
    };
    let errors = diags
        .errors
        .iter()
        .map(|e| match e {
            FlowError::At { at, message } => short(at, message),
            other => other.to_string(),
        })
        .collect();
    let warnings = diags
        .warnings
        .iter()
        .map(|w| short(&w.at, &w.message))
        .collect();
    (errors, warnings)
}

fn load_errors(agents: &str, queues: &str) -> (Vec<String>, Vec<String>) {
    let dir = site(Some(agents), Some(queues));
    let (files, diags) = load(&dir.0);
    let (errors, warnings) = messages(&diags);
    assert_eq!(files.is_some(), errors.is_empty());
    (errors, warnings)
}

const AGENTS: &str = r#"
[agents.1001]
name = "Li Na"
ha1_md5 = "0809f3e5963e8d5a3d19b15141b5885d"
skills = { billing = 7, zh = 9 }
team = "billing"

[agents.1002]
name = "Sam Wu"
extension = "2002"
ha1_sha256 = "DAD74C70F71A7017676A8013DCC4451DE285001C6AEC0CB0C8343B47E6380160"
pin_sha256 = "1bc5218ee72a75f70d19bdff436b706e4c1f3ea09c2fb0715461c89a6acac61d"
endpoint = "sip:2002@192.0.2.10:5070"
skills = { billing = 3, en = 9 }
wrap_up = "10s"

[reasons]
1 = "Break"
2 = "Lunch"
"#;

#[test]
fn a_valid_pair_loads_with_the_documented_defaults() {
    let dir = site(
        Some(AGENTS),
        Some(
            r#"
[queues.billing]
skills = { billing = 5 }
widening = [{ after = "30s", min_level = 3 }, { after = "1m", min_level = 1 }]

[queues.english]
strategy = "ring-all"
skills = ["en"]
agents = ["1002"]
teams = ["billing"]
ring_timeout = "20s"
max_wait = "5m"
max_length = 10
wrap_up = "0s"
weight = 3
when_empty = "wait"
max_misses = 1
busy_rest = "1m"
sticky_wait = "20s"
sticky_days = 7
music = "hold/jazz"
announcements = { every = "45s", wait = true }
record = true
"#,
        ),
    );
    let (files, diags) = load(&dir.0);
    let (errors, warnings) = messages(&diags);
    assert!(
        errors.is_empty() && warnings.is_empty(),
        "{errors:?} {warnings:?}"
    );
    let files = files.unwrap();
    assert!(files.present);
    let c = &files.config;
    let li = c.agent("1001").unwrap();
    assert_eq!(li.extension, "1001", "the id by default");
    assert_eq!(li.endpoint, AgentEndpoint::Registered);
    assert_eq!(li.skill_level("zh"), Some(9));
    assert_eq!(li.team.as_deref(), Some("billing"));
    assert_eq!(li.wrap_up, None);
    assert_eq!(li.pin_sha256, None);
    let sam = c.agent_by_extension("2002").unwrap();
    assert_eq!(sam.id, "1002");
    assert_eq!(
        sam.credentials.ha1_sha256.as_deref(),
        Some("dad74c70f71a7017676a8013dcc4451de285001c6aec0cb0c8343b47e6380160"),
        "kept in lower case"
    );
    assert_eq!(
        sam.endpoint,
        AgentEndpoint::Fixed("sip:2002@192.0.2.10:5070".into())
    );
    assert_eq!(sam.wrap_up, Some(Duration::from_secs(10)));
    assert_eq!(
        c.reasons,
        [
            ReasonCode {
                code: "1".into(),
                name: "Break".into()
            },
            ReasonCode {
                code: "2".into(),
                name: "Lunch".into()
            },
        ]
    );
    let b = c.queue("billing").unwrap();
    assert_eq!(
        *b,
        QueueDef {
            name: "billing".into(),
            strategy: Strategy::LongestIdle,
            skills: vec![SkillNeed {
                skill: "billing".into(),
                min_level: 5
            }],
            widening: vec![
                Widening {
                    after: Duration::from_secs(30),
                    min_level: 3
                },
                Widening {
                    after: Duration::from_secs(60),
                    min_level: 1
                },
            ],
            agents: vec![],
            teams: vec![],
            ring_timeout: Duration::from_secs(15),
            max_wait: Duration::from_secs(600),
            max_length: None,
            wrap_up: Duration::from_secs(30),
            weight: 1,
            when_empty: EmptyRule::RefuseNew,
            max_misses: 3,
            busy_rest: Duration::from_secs(30),
            sticky_wait: Duration::ZERO,
            sticky_days: 30,
            music: None,
            announcements: None,
            record: false,
        }
    );
    let e = c.queue("english").unwrap();
    assert_eq!(e.strategy, Strategy::RingAll);
    assert_eq!(
        e.skills,
        [SkillNeed {
            skill: "en".into(),
            min_level: 1
        }]
    );
    assert_eq!(
        (e.agents.as_slice(), e.teams.as_slice()),
        (&["1002".to_string()][..], &["billing".to_string()][..])
    );
    assert_eq!(e.ring_timeout, Duration::from_secs(20));
    assert_eq!(e.max_wait, Duration::from_secs(300));
    assert_eq!(e.max_length, Some(10));
    assert_eq!(e.wrap_up, Duration::ZERO);
    assert_eq!(e.weight, 3);
    assert_eq!(e.when_empty, EmptyRule::Wait);
    assert_eq!(e.max_misses, 1);
    assert_eq!(e.busy_rest, Duration::from_secs(60));
    assert_eq!(e.sticky_wait, Duration::from_secs(20));
    assert_eq!(e.sticky_days, 7);
    assert_eq!(e.music.as_deref(), Some("hold/jazz"));
    assert_eq!(
        e.announcements,
        Some(Announcements {
            every: Duration::from_secs(45),
            position: true,
            wait: true
        })
    );
    assert!(e.record);
    assert_eq!(files.music.len(), 1);
    assert_eq!(files.music[0].0, "hold/jazz");
    assert_eq!((files.music[0].1.line, files.music[0].1.column), (21, 9));
}

#[test]
fn no_acd_folder_is_an_empty_config_and_missing_files_are_empty_halves() {
    let root = std::env::temp_dir().join(format!("hotline-acd-none-{}", fastrand::u64(..)));
    std::fs::create_dir_all(&root).unwrap();
    let (config, diags) = load_dir(&root);
    assert_eq!(config, Some(AcdConfig::default()));
    assert!(diags.errors.is_empty() && diags.warnings.is_empty());
    let (files, _) = load(&root);
    assert!(!files.unwrap().present);
    std::fs::remove_dir_all(&root).ok();
    let dir = site(Some(AGENTS), None);
    let (files, diags) = load(&dir.0);
    assert!(diags.errors.is_empty());
    let files = files.unwrap();
    assert!(files.present);
    assert_eq!(files.config.agents.len(), 2);
    assert!(files.config.queues.is_empty());
}

#[test]
fn dispositions_are_read_and_checked() {
    let dir = site(
        Some(&format!(
            "{AGENTS}\n[dispositions]\nresolved = \"Resolved\"\ncomplaint_major = \"Complaint (major)\"\n"
        )),
        None,
    );
    let (files, diags) = load(&dir.0);
    assert!(diags.errors.is_empty(), "{:?}", diags.errors);
    let codes: Vec<(String, String)> = files
        .unwrap()
        .config
        .dispositions
        .into_iter()
        .map(|d| (d.code, d.label))
        .collect();
    assert_eq!(
        codes,
        [
            ("resolved".to_string(), "Resolved".to_string()),
            (
                "complaint_major".to_string(),
                "Complaint (major)".to_string()
            )
        ]
    );
    let (errors, _) = load_errors(
        &format!("{AGENTS}\n[dispositions]\n\"call back\" = \"Callback\"\nfixed = 3\n"),
        "",
    );
    let joined = errors.join("\n");
    assert!(
        joined.contains("disposition code \"call back\" must be"),
        "{joined}"
    );
    assert!(
        joined.contains("disposition \"fixed\" is a label"),
        "{joined}"
    );
}

#[test]
fn agent_errors_point_at_the_value() {
    let (mut errors, _) = load_errors(
        r#"[agents.1001]
name = "A"
ha1_md5 = "0809f3e5963e8d5a3d19b15141b5885"
skills = { billing = 11, zh = "high" }
team = "billing"
wrapup = "30s"

[agents.1002]
extension = "1001"
ha1_sha256 = "zz"
pin_sha256 = "1234"
endpoint = "192.0.2.10"
wrap_up = 30

[agents."x y"]
endpoint = "sip:"

[reasons]
lunch = "Lunch"
2 = 5
"#,
        "",
    );
    // The first extension's place is named with its whole path.
    for e in &mut errors {
        if let Some(i) = e.find("(at /") {
            let tail = e[i..]
                .rsplit_once("/acd/")
                .map(|t| t.1.to_string())
                .unwrap();
            e.replace_range(i.., &format!("(at acd/{tail}"));
        }
    }
    assert_eq!(
        errors,
        [
            "agents.toml:3:11: `ha1_md5` must be 32 hex characters (make it with `hotline agent-password 1001`)",
            "agents.toml:4:22: skill \"billing\": a level is 1 (novice) to 10 (expert)",
            "agents.toml:4:31: skill \"zh\": a level is a whole number from 1 to 10, not a string",
            "agents.toml:6:1: unknown key `wrapup` in agent \"1001\" (did you mean \"wrap_up\"?)",
            "agents.toml:10:14: `ha1_sha256` must be 64 hex characters (make it with `hotline agent-password 1002`)",
            "agents.toml:11:14: `pin_sha256` must be 64 hex characters (make it with `hotline agent-password 1002`)",
            "agents.toml:12:12: `endpoint` is \"registered\" or a SIP URI like \"sip:1001@192.0.2.10:5060\", not \"192.0.2.10\"",
            "agents.toml:13:11: `wrap_up` is a duration with a unit, in quotes: write \"30s\"",
            "agents.toml:9:13: extension \"1001\" is already agent \"1001\"'s (at acd/agents.toml:1:9)",
            "agents.toml:15:9: agent id \"x y\" must be letters, digits, -, _ and .",
            "agents.toml:15:9: extension \"x y\" must be a SIP user name: letters, digits, -, _, . and +",
            "agents.toml:16:12: `endpoint` is \"registered\" or a SIP URI like \"sip:1001@192.0.2.10:5060\", not \"sip:\"",
            "agents.toml:19:1: reason code \"lunch\" must be 1 to 4 digits (agents dial *14<code>)",
            "agents.toml:20:5: reason \"2\" is a name like \"Lunch\", not a number",
        ]
        .map(String::from)
    );
}

#[test]
fn a_second_agent_with_the_same_id_is_a_toml_error() {
    let (errors, warnings) = load_errors(
        "[agents.1001]\nname = \"A\"\n[agents.1001]\nname = \"B\"\n",
        "[queues.q]\nagents = [\"1001\"]\nteams = [\"t\"]\n",
    );
    assert_eq!(
        errors.len(),
        1,
        "queues are not judged by members: {errors:?}"
    );
    assert!(warnings.is_empty(), "{warnings:?}");
    assert!(errors[0].starts_with("agents.toml:3:"), "{errors:?}");
}

#[test]
fn queue_errors_point_at_the_value_with_suggestions() {
    let (errors, _) = load_errors(
        AGENTS,
        r#"[queues.billing]
strategy = "longest_idle"
skills = { billing = 0 }
agents = ["1001", "1003", "100"]
teams = ["biling"]
ring_timeout = 15
max_wait = "10"
when_empty = "refuse_new"
weight = 0
music = "../x"
annoucements = { every = "1m" }

[queues.en]
skills = { en = 5 }
widening = [
  { after = "30s", min_level = 3 },
  { after = "20s", min_level = 4 },
  { after = "1m", min_level = 0 },
  { after = "2m" },
]
announcements = { every = "1s", place = true }
"#,
    );
    assert_eq!(
        errors,
        [
            "queues.toml:2:12: unknown strategy \"longest_idle\" (did you mean \"longest-idle\"?) (one of: ring-all, longest-idle, round-robin, fewest-calls, skill-weighted)",
            "queues.toml:3:22: skill \"billing\": a level is 1 (novice) to 10 (expert)",
            "queues.toml:4:19: unknown agent \"1003\" (did you mean \"1001\"?)",
            "queues.toml:4:27: unknown agent \"100\" (did you mean \"1001\"?)",
            "queues.toml:5:10: unknown team \"biling\": no agent has it (did you mean \"billing\"?)",
            "queues.toml:6:16: `ring_timeout` is a duration with a unit, in quotes: write \"15s\"",
            "queues.toml:7:12: duration \"10\" needs a unit: ms, s, m or h",
            "queues.toml:9:10: `weight` must be between 1 and 100",
            "queues.toml:8:14: unknown when_empty \"refuse_new\" (did you mean \"refuse-new\"?) (one of: wait, refuse-new, refuse-and-leave)",
            "queues.toml:10:9: bad prompt name \"../x\"",
            "queues.toml:11:1: unknown key `annoucements` in queue \"billing\" (did you mean \"announcements\"?)",
            "queues.toml:17:3: widening steps come in order: each `after` later than the one before",
            "queues.toml:17:32: a widening step lowers the level: 4 is not below the step before (3)",
            "queues.toml:18:31: `min_level` must be between 1 and 10",
            "queues.toml:19:3: a widening step needs `min_level`",
            "queues.toml:21:27: `every` is too short: at least 10 s",
            "queues.toml:21:33: unknown key `place` in the `announcements` table",
        ]
        .map(String::from)
    );
}

#[test]
fn a_first_widening_step_must_lower_the_queue_level() {
    let (errors, _) = load_errors(
        AGENTS,
        "[queues.b]\nskills = { billing = 3 }\nwidening = [{ after = \"30s\", min_level = 3 }]\n",
    );
    assert_eq!(
        errors,
        [
            "queues.toml:3:42: a widening step lowers the level: 3 is not below the queue's skill levels (at most 3)"
        ]
    );
}

#[test]
fn warnings_for_a_queue_nobody_can_serve_and_an_agent_who_cannot_register() {
    let (errors, warnings) = load_errors(
        "[agents.1001]\nskills = { billing = 4 }\n",
        r#"[queues.expert]
skills = { billing = 5 }

[queues.widened]
skills = { billing = 5 }
widening = [{ after = "1m", min_level = 4 }]

[queues.french]
skills = ["fr"]

[queues.nobody_in_team]
agents = []

[queues.plain]
"#,
    );
    assert!(errors.is_empty(), "{errors:?}");
    assert_eq!(
        warnings,
        [
            "agents.toml:1:9: agent \"1001\" has no ha1_md5 or ha1_sha256: their phone cannot register (make them with `hotline agent-password 1001`)",
            "queues.toml:1:9: no agent can serve queue \"expert\" (none is a member with the skills it needs): its callers wait until they time out",
            "queues.toml:8:9: no agent can serve queue \"french\" (none is a member with the skills it needs): its callers wait until they time out",
        ]
        .map(String::from)
    );
}

fn flows(dir: &Path, nodes: &str) {
    std::fs::write(
        dir.join("f.toml"),
        format!("[flow]\nname = \"f\"\nnumbers = [\"1\"]\nstart = \"q\"\n{nodes}\n[nodes.end]\ntype = \"hangup\"\n"),
    )
    .unwrap();
}

const QUEUE_NODES: &str = r#"[nodes.q]
type = "queue"
queue = "biling"
skills = ["zh", "klingon", "{extra}"]
no_agents = "q2"
on_timeout = "end"
full = "end"
[nodes.q2]
type = "queue"
queue = "{vip_queue}"
no_agents = "end"
on_timeout = "end"
full = "end"
"#;

#[test]
fn queue_nodes_must_name_a_defined_queue_once_the_acd_folder_exists() {
    let dir = site(Some(AGENTS), Some("[queues.billing]\n"));
    flows(&dir.0, QUEUE_NODES);
    let (set, _) = crate::flow::load_dir(&dir.0);
    let set = set.expect("the flow itself is fine");
    let (files, _) = load(&dir.0);
    let files = files.unwrap();
    let mut diags = Diagnostics::default();
    check_flows(&files, &set, &mut diags);
    let (errors, warnings) = messages(&diags);
    assert_eq!(
        errors,
        [
            "f.toml:7:9: queue \"biling\" is not defined in acd/queues.toml (did you mean \"billing\"?)"
        ],
        "the template in q2 is judged when the call runs"
    );
    assert_eq!(
        warnings,
        [
            "f.toml:8:17: no agent has the skill \"klingon\": callers from here wait until they time out"
        ]
    );
    // Without the folder, today's behaviour: queue names are not checked.
    std::fs::remove_dir_all(dir.0.join(ACD_DIR)).unwrap();
    let (files, _) = load(&dir.0);
    let mut diags = Diagnostics::default();
    check_flows(&files.unwrap(), &set, &mut diags);
    assert!(diags.errors.is_empty() && diags.warnings.is_empty());
}

#[test]
fn a_flow_number_that_is_an_agent_extension_is_a_warning() {
    let dir = site(Some(AGENTS), Some("[queues.billing]\n"));
    std::fs::write(
        dir.0.join("f.toml"),
        "[flow]\nname = \"f\"\nnumbers = [\"1\", \"1001\"]\nstart = \"end\"\n[nodes.end]\ntype = \"hangup\"\n",
    )
    .unwrap();
    let (set, _) = crate::flow::load_dir(&dir.0);
    let (files, _) = load(&dir.0);
    let mut diags = Diagnostics::default();
    check_flows(&files.unwrap(), &set.unwrap(), &mut diags);
    let (errors, warnings) = messages(&diags);
    assert!(errors.is_empty(), "{errors:?}");
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert!(
        warnings[0].contains(
            "f.toml:1:1: flow \"f\" answers \"1001\", which is also agent \"1001\"'s extension"
        ),
        "{warnings:?}"
    );
}

#[test]
fn hashes_match_the_digest_definition() {
    // RFC 2617 section 3.5's HA1, and the demo agent's (md5sum / sha256sum of
    // "1001:hotline:secret1001" and "1001:1234").
    assert_eq!(
        ha1_md5("Mufasa", "testrealm@host.com", "Circle Of Life"),
        "939e7578ed9e3c518a452acee763bce9"
    );
    assert_eq!(
        ha1_sha256("Mufasa", "http-auth@example.org", "Circle of Life"),
        "7987c64c30e25f1b74be53f966b49b90f2808aa92faf9a00262392d7b4794232"
    );
    assert_eq!(
        ha1_md5("1001", DEFAULT_REALM, "secret1001"),
        "0809f3e5963e8d5a3d19b15141b5885d"
    );
    assert_eq!(
        ha1_sha256("1001", DEFAULT_REALM, "secret1001"),
        "dad74c70f71a7017676a8013dcc4451de285001c6aec0cb0c8343b47e6380160"
    );
    assert_eq!(
        pin_sha256("1001", "1234"),
        "1bc5218ee72a75f70d19bdff436b706e4c1f3ea09c2fb0715461c89a6acac61d"
    );
}

#[test]
fn the_shipped_demo_files_load_and_serve_every_queue_of_the_demo_flow() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("ivr-flows");
    let (files, diags) = load(&root);
    let (errors, warnings) = messages(&diags);
    assert!(
        errors.is_empty() && warnings.is_empty(),
        "{errors:?} {warnings:?}"
    );
    let files = files.unwrap();
    let (set, _) = crate::flow::load_dir(&root);
    let mut diags = Diagnostics::default();
    check_flows(&files, &set.unwrap(), &mut diags);
    assert!(diags.errors.is_empty() && diags.warnings.is_empty());
    for id in ["1001", "1002"] {
        let a = files.config.agent(id).unwrap();
        assert_eq!(
            a.credentials.ha1_md5.as_deref(),
            Some(ha1_md5(&a.extension, DEFAULT_REALM, &format!("secret{id}")).as_str())
        );
        assert_eq!(a.pin_sha256, Some(pin_sha256(id, "1234")));
    }
}
