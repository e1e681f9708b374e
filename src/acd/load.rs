//! The admin-edited ACD files, `<flows>/acd/agents.toml` and `<flows>/acd/queues.toml`, to a
//! checked `AcdConfig`. They are read like flow files (the spanned TOML tree through the
//! key-tracking `Table`), so every message has the file, line, column and source line, and
//! unknown keys get a "did you mean". `check_flows` then holds the flows' queue nodes against
//! the queues defined. See docs/agents.md for the format.

use std::path::{Path, PathBuf};
use std::time::Duration;

use toml::de::{DeTable, DeValue};

use super::model::{
    AcdConfig, AgentDef, AgentEndpoint, Announcements, Credentials, EmptyRule, QueueDef,
    ReasonCode, Skill, SkillNeed, Strategy, Widening,
};
use crate::core::duration::parse_duration;
use crate::flow::schema::{Sink, Source, Sp, Table, Value, kind_of, suggest};
use crate::flow::{Diagnostics, FlowError, FlowSet, Located, NodeKind, Warning};

/// The folder inside the flows directory that holds the ACD files. The flow loader reads only
/// `*.toml` directly in the flows directory, so these are never taken for flows, and the
/// reload watch (which walks the whole tree) sees their edits.
pub const ACD_DIR: &str = "acd";
pub const AGENTS_FILE: &str = "agents.toml";
pub const QUEUES_FILE: &str = "queues.toml";

/// The digest realm agents' HA1 values are made for and the server challenges with.
pub const DEFAULT_REALM: &str = "hotline";

pub const STRATEGIES: [(&str, Strategy); 5] = [
    ("ring-all", Strategy::RingAll),
    ("longest-idle", Strategy::LongestIdle),
    ("round-robin", Strategy::RoundRobin),
    ("fewest-calls", Strategy::FewestCalls),
    ("skill-weighted", Strategy::SkillWeighted),
];

pub const EMPTY_RULES: [(&str, EmptyRule); 3] = [
    ("wait", EmptyRule::Wait),
    ("refuse-new", EmptyRule::RefuseNew),
    ("refuse-and-leave", EmptyRule::RefuseAndLeave),
];

pub const DEFAULT_RING_TIMEOUT: Duration = Duration::from_secs(15);
pub const DEFAULT_MAX_WAIT: Duration = Duration::from_secs(600);
pub const DEFAULT_WRAP_UP: Duration = Duration::from_secs(30);
pub const DEFAULT_BUSY_REST: Duration = Duration::from_secs(30);
pub const DEFAULT_MAX_MISSES: u32 = 3;
pub const DEFAULT_STICKY_DAYS: u32 = 30;

/// A loaded ACD directory: the config, and what `check_flows` and the catalog need besides.
#[derive(Debug, Default)]
pub struct AcdFiles {
    pub config: AcdConfig,
    /// `<flows>/acd/` exists: queue nodes must then name a defined queue.
    pub present: bool,
    /// Each queue's music prompt and where it is named, for the prompt checks.
    pub music: Vec<(String, Located)>,
    /// Where a queue switches position announcements on: their prompts (and the spoken
    /// numbers) must then exist in every language.
    pub announce: Vec<Located>,
}

/// Load and check the ACD files of `flows_dir`; an empty config when `<flows>/acd/` does not
/// exist. The config comes back only when there is no error.
pub fn load_dir(flows_dir: &Path) -> (Option<AcdConfig>, Diagnostics) {
    let (files, diags) = load(flows_dir);
    (files.map(|f| f.config), diags)
}

/// `load_dir` with the music prompt sites and whether the directory exists.
pub fn load(flows_dir: &Path) -> (Option<AcdFiles>, Diagnostics) {
    let mut diags = Diagnostics::default();
    let dir = flows_dir.join(ACD_DIR);
    if !dir.is_dir() {
        return (Some(AcdFiles::default()), diags);
    }
    let mut files = AcdFiles {
        present: true,
        ..Default::default()
    };
    let agents_path = dir.join(AGENTS_FILE);
    let queues_path = dir.join(QUEUES_FILE);
    // When agents.toml is not even TOML, queues cannot be judged by their members.
    let mut agents_read = true;
    if let Some(text) = read(&agents_path, &mut diags) {
        let src = Source {
            file: &agents_path,
            text: &text,
        };
        let mut sink = Sink {
            src: &src,
            out: &mut diags,
        };
        agents_read = read_agents(&mut sink, &mut files.config);
    }
    if let Some(text) = read(&queues_path, &mut diags) {
        let src = Source {
            file: &queues_path,
            text: &text,
        };
        let mut sink = Sink {
            src: &src,
            out: &mut diags,
        };
        read_queues(&mut sink, &mut files, agents_read);
    }
    if diags.errors.is_empty() {
        (Some(files), diags)
    } else {
        (None, diags)
    }
}

/// Hold the flows' queue nodes against the queues: with `<flows>/acd/`, a literal queue name
/// that is not defined is an error at its `queue` line; a literal skill no agent has is a
/// warning.
pub fn check_flows(acd: &AcdFiles, set: &FlowSet, diags: &mut Diagnostics) {
    if !acd.present {
        return;
    }
    let config = &acd.config;
    for agent in &config.agents {
        if let Some(flow) = set.route_exact(&agent.extension) {
            let flow = set.flow(flow);
            diags.warnings.push(Warning {
                // The flow's file; its `numbers` line is not kept after loading.
                at: crate::flow::Located {
                    file: flow.file.clone(),
                    line: 1,
                    column: 1,
                    snippet: String::new(),
                },
                message: format!(
                    "flow {:?} answers {:?}, which is also agent {:?}'s extension: colleagues dialling it reach the flow, not the agent",
                    flow.name, agent.extension, agent.id
                ),
            });
        }
    }
    for node in set.flows.iter().flat_map(|f| f.nodes.iter()) {
        let NodeKind::Queue(q) = &node.kind else {
            continue;
        };
        if let Some(name) = q.queue.literal()
            && config.queue(&name).is_none()
        {
            let hint = suggest(&name, config.queues.iter().map(|q| q.name.as_str()));
            diags.errors.push(FlowError::At {
                at: q.queue.at.clone(),
                message: format!(
                    "queue {name:?} is not defined in {}/{QUEUES_FILE}{hint}",
                    ACD_DIR
                ),
            });
        }
        for skill in &q.skills {
            let Some(text) = skill.literal() else {
                continue;
            };
            for name in text.split(|c: char| c == ',' || c.is_whitespace()) {
                if !name.is_empty() && !config.agents.iter().any(|a| a.skill_level(name).is_some())
                {
                    diags.warnings.push(Warning {
                        at: skill.at.clone(),
                        message: format!(
                            "no agent has the skill {name:?}: callers from here wait until they time out{}",
                            suggest(name, all_skills(config).into_iter())
                        ),
                    });
                }
            }
        }
    }
}

fn all_skills(config: &AcdConfig) -> Vec<&str> {
    let mut out: Vec<&str> = Vec::new();
    for s in config.agents.iter().flat_map(|a| a.skills.iter()) {
        if !out.contains(&s.name.as_str()) {
            out.push(&s.name);
        }
    }
    out
}

fn read(path: &Path, diags: &mut Diagnostics) -> Option<String> {
    if !path.exists() {
        return None;
    }
    match std::fs::read_to_string(path) {
        Ok(t) => Some(t),
        Err(source) => {
            diags.errors.push(FlowError::ReadFile {
                file: PathBuf::from(path),
                source,
            });
            None
        }
    }
}

fn parse<'i>(sink: &mut Sink, text: &'i str) -> Option<toml::Spanned<DeTable<'i>>> {
    match DeTable::parse(text) {
        Ok(doc) => Some(doc),
        Err(e) => {
            let span = e.span().unwrap_or(0..0);
            sink.error(&span, e.message().to_string());
            None
        }
    }
}

fn valid_name(s: &str) -> bool {
    !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-' || c == '.')
}

fn is_hex(s: &str, len: usize) -> bool {
    s.len() == len && s.chars().all(|c| c.is_ascii_hexdigit())
}

// --- agents.toml ---

/// False when the file is not TOML.
fn read_agents(sink: &mut Sink, config: &mut AcdConfig) -> bool {
    let Some(doc) = parse(sink, sink.src.text) else {
        return false;
    };
    let top = Table::new(doc.get_ref(), doc.span(), "agents.toml");
    let agents = top.table("agents", sink);
    let reasons = top.table("reasons", sink);
    let dispositions = top.table("dispositions", sink);
    top.finish(sink);
    let mut extensions: Vec<(String, Located)> = Vec::new();
    if let Some(agents) = agents {
        for (id, value) in agents.entries() {
            if !valid_name(&id.v) {
                sink.error(
                    &id.span,
                    format!("agent id {:?} must be letters, digits, -, _ and .", id.v),
                );
            }
            let DeValue::Table(t) = value.get_ref() else {
                sink.error(
                    &value.span(),
                    format!(
                        "agent {:?} must be a table, not {}",
                        id.v,
                        kind_of(value.get_ref())
                    ),
                );
                continue;
            };
            let t = Table::new(t, value.span(), format!("agent {:?}", id.v));
            let agent = read_agent(sink, &id, &t);
            t.finish(sink);
            let at = sink.src.locate(&agent.1);
            if let Some((_, first)) = extensions.iter().find(|(e, _)| *e == agent.0.extension) {
                sink.error(
                    &agent.1,
                    format!(
                        "extension {:?} is already agent {:?}'s (at {first})",
                        agent.0.extension,
                        config
                            .agents
                            .iter()
                            .find(|a| a.extension == agent.0.extension)
                            .map_or("", |a| a.id.as_str())
                    ),
                );
            } else {
                extensions.push((agent.0.extension.clone(), at));
            }
            config.agents.push(agent.0);
        }
    }
    if let Some(reasons) = reasons {
        for (code, value) in reasons.entries() {
            if code.v.is_empty() || code.v.len() > 4 || !code.v.chars().all(|c| c.is_ascii_digit())
            {
                sink.error(
                    &code.span,
                    format!(
                        "reason code {:?} must be 1 to 4 digits (agents dial *14<code>)",
                        code.v
                    ),
                );
                continue;
            }
            match value.get_ref() {
                DeValue::String(name) => config.reasons.push(ReasonCode {
                    code: code.v,
                    name: name.to_string(),
                }),
                other => sink.error(
                    &value.span(),
                    format!(
                        "reason {:?} is a name like \"Lunch\", not {}",
                        code.v,
                        kind_of(other)
                    ),
                ),
            }
        }
    }
    if let Some(dispositions) = dispositions {
        for (code, value) in dispositions.entries() {
            let code_ok = !code.v.is_empty()
                && code.v.len() <= 32
                && code
                    .v
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_');
            if !code_ok {
                sink.error(
                    &code.span,
                    format!(
                        "disposition code {:?} must be 1 to 32 letters, digits and _ (e.g. resolved)",
                        code.v
                    ),
                );
                continue;
            }
            match value.get_ref() {
                DeValue::String(label) => {
                    config.dispositions.push(crate::acd::model::Disposition {
                        code: code.v,
                        label: label.to_string(),
                    })
                }
                other => sink.error(
                    &value.span(),
                    format!(
                        "disposition {:?} is a label like \"Resolved\", not {}",
                        code.v,
                        kind_of(other)
                    ),
                ),
            }
        }
    }
    true
}

/// The agent, and the span its extension is written at (or its id, when it has none).
fn read_agent(sink: &mut Sink, id: &Sp<String>, t: &Table) -> (AgentDef, std::ops::Range<usize>) {
    let name = t.str("name", sink).map_or_else(|| id.v.clone(), |n| n.v);
    let extension = match t.get("extension") {
        Some(v) => match v.get_ref() {
            DeValue::String(s) => Sp::new(s.to_string(), v.span()),
            DeValue::Integer(i) => Sp::new(i.as_str().to_string(), v.span()),
            other => {
                sink.error(
                    &v.span(),
                    format!("`extension` must be a string, not {}", kind_of(other)),
                );
                id.clone()
            }
        },
        None => id.clone(),
    };
    if extension.v.is_empty()
        || !extension
            .v
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '+'))
    {
        sink.error(
            &extension.span,
            format!(
                "extension {:?} must be a SIP user name: letters, digits, -, _, . and +",
                extension.v
            ),
        );
    }
    let mut hex_key = |key: &'static str, len: usize| -> Option<String> {
        let v = t.str(key, sink)?;
        if is_hex(&v.v, len) {
            Some(v.v.to_ascii_lowercase())
        } else {
            sink.error(
                &v.span,
                format!(
                    "`{key}` must be {len} hex characters (make it with `hotline agent-password {}`)",
                    id.v
                ),
            );
            None
        }
    };
    let credentials = Credentials {
        ha1_md5: hex_key("ha1_md5", 32),
        ha1_sha256: hex_key("ha1_sha256", 64),
    };
    let pin_sha256 = hex_key("pin_sha256", 64);
    let endpoint = match t.str("endpoint", sink) {
        None => AgentEndpoint::Registered,
        Some(e) if e.v == "registered" => AgentEndpoint::Registered,
        Some(e) => {
            if !fixed_uri_ok(&e.v) {
                sink.error(
                    &e.span,
                    format!(
                        "`endpoint` is \"registered\" or a SIP URI like \"sip:1001@192.0.2.10:5060\", not {:?}",
                        e.v
                    ),
                );
            }
            AgentEndpoint::Fixed(e.v)
        }
    };
    if endpoint == AgentEndpoint::Registered
        && credentials.ha1_md5.is_none()
        && credentials.ha1_sha256.is_none()
        && !t.has("ha1_md5")
        && !t.has("ha1_sha256")
    {
        sink.out.warnings.push(Warning {
            at: sink.src.locate(&id.span),
            message: format!(
                "agent {:?} has no ha1_md5 or ha1_sha256: their phone cannot register (make them with `hotline agent-password {}`)",
                id.v, id.v
            ),
        });
    }
    let mut skills = Vec::new();
    if let Some(s) = t.table("skills", sink) {
        for (skill, level) in s.entries() {
            if !valid_name(&skill.v) {
                sink.error(
                    &skill.span,
                    format!(
                        "skill name {:?} must be letters, digits, -, _ and .",
                        skill.v
                    ),
                );
            }
            if let Some(level) = level_value(sink, &skill.v, level) {
                skills.push(Skill {
                    name: skill.v,
                    level,
                });
            }
        }
    }
    let team = t.str("team", sink).map(|team| {
        if !valid_name(&team.v) {
            sink.error(
                &team.span,
                format!("team name {:?} must be letters, digits, -, _ and .", team.v),
            );
        }
        team.v
    });
    let wrap_up = duration_opt(sink, t, "wrap_up", Duration::ZERO);
    let auto_login = t.bool("auto_login", sink).is_some_and(|b| b.v);
    let span = extension.span.clone();
    (
        AgentDef {
            id: id.v.clone(),
            name,
            extension: extension.v,
            credentials,
            pin_sha256,
            endpoint,
            skills,
            team,
            wrap_up,
            auto_login,
        },
        span,
    )
}

/// `sip:user@host[:port]` (or `sip:host`), with nothing a SIP URI cannot hold.
fn fixed_uri_ok(uri: &str) -> bool {
    let Some(rest) = uri
        .strip_prefix("sip:")
        .or_else(|| uri.strip_prefix("sips:"))
    else {
        return false;
    };
    let host = match rest.rsplit_once('@') {
        Some(("", _)) => "",
        Some((_, host)) => host,
        None => rest,
    };
    let host = host.split(';').next().unwrap_or("");
    !host.is_empty()
        && !rest
            .chars()
            .any(|c| c.is_whitespace() || c == '<' || c == '>')
        && host
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | ':' | '[' | ']'))
}

/// A skill level: a whole number from 1 to 10.
fn level_value(sink: &mut Sink, skill: &str, v: &Value) -> Option<u8> {
    match v.get_ref() {
        DeValue::Integer(i) => match i.as_str().parse::<i64>() {
            Ok(n) if (1..=10).contains(&n) => Some(n as u8),
            _ => {
                sink.error(
                    &v.span(),
                    format!("skill {skill:?}: a level is 1 (novice) to 10 (expert)"),
                );
                None
            }
        },
        other => {
            sink.error(
                &v.span(),
                format!(
                    "skill {skill:?}: a level is a whole number from 1 to 10, not {}",
                    kind_of(other)
                ),
            );
            None
        }
    }
}

/// A duration key: text with a unit. A bare number gets the string form suggested.
fn duration_opt(sink: &mut Sink, t: &Table, key: &'static str, min: Duration) -> Option<Duration> {
    let v = t.get(key)?;
    let d = match v.get_ref() {
        DeValue::String(s) => match parse_duration(s) {
            Ok(d) => d,
            Err(msg) => {
                sink.error(&v.span(), msg);
                return None;
            }
        },
        DeValue::Integer(n) => {
            sink.error(
                &v.span(),
                format!(
                    "`{key}` is a duration with a unit, in quotes: write \"{}s\"",
                    n.as_str()
                ),
            );
            return None;
        }
        DeValue::Float(n) => {
            sink.error(
                &v.span(),
                format!(
                    "`{key}` is a duration with a unit, in quotes: write \"{}s\"",
                    n.as_str()
                ),
            );
            return None;
        }
        other => {
            sink.error(
                &v.span(),
                format!("`{key}` is a duration like \"30s\", not {}", kind_of(other)),
            );
            return None;
        }
    };
    if d < min {
        sink.error(
            &v.span(),
            format!("`{key}` is too short: at least {}", show(min)),
        );
        return None;
    }
    Some(d)
}

fn show(d: Duration) -> String {
    if d.subsec_millis() == 0 {
        format!("{} s", d.as_secs())
    } else {
        format!("{} ms", d.as_millis())
    }
}

fn count(sink: &mut Sink, t: &Table, key: &'static str, max: i64, default: u32) -> u32 {
    t.int(key, 1..=max, sink).map_or(default, |n| n.v as u32)
}

/// A keyword value (`strategy`, `when_empty`) with a suggestion when it is close to one.
fn keyword<T: Copy>(
    sink: &mut Sink,
    t: &Table,
    key: &'static str,
    table: &[(&'static str, T)],
) -> Option<T> {
    let v = t.str(key, sink)?;
    match table.iter().find(|(name, _)| *name == v.v) {
        Some((_, x)) => Some(*x),
        None => {
            let names: Vec<&str> = table.iter().map(|(n, _)| *n).collect();
            sink.error(
                &v.span,
                format!(
                    "unknown {key} {:?}{} (one of: {})",
                    v.v,
                    suggest(&v.v, names.iter().copied()),
                    names.join(", ")
                ),
            );
            None
        }
    }
}

// --- queues.toml ---

fn read_queues(sink: &mut Sink, files: &mut AcdFiles, agents_read: bool) {
    let Some(doc) = parse(sink, sink.src.text) else {
        return;
    };
    let top = Table::new(doc.get_ref(), doc.span(), "queues.toml");
    let queues = top.table("queues", sink);
    top.finish(sink);
    let Some(queues) = queues else {
        return;
    };
    for (name, value) in queues.entries() {
        if !name
            .v
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
            || name.v.is_empty()
        {
            sink.error(
                &name.span,
                format!("queue name {:?} must be letters, digits, - and _", name.v),
            );
        }
        let DeValue::Table(t) = value.get_ref() else {
            sink.error(
                &value.span(),
                format!(
                    "queue {:?} must be a table, not {}",
                    name.v,
                    kind_of(value.get_ref())
                ),
            );
            continue;
        };
        let t = Table::new(t, value.span(), format!("queue {:?}", name.v));
        let errors_before = sink.error_count();
        let queue = read_queue(sink, &name, &t, files, agents_read);
        t.finish(sink);
        if agents_read && sink.error_count() == errors_before && !servable(&queue, &files.config) {
            sink.out.warnings.push(Warning {
                at: sink.src.locate(&name.span),
                message: format!(
                    "no agent can serve queue {:?} (none is a member with the skills it needs): its callers wait until they time out",
                    name.v
                ),
            });
        }
        files.config.queues.push(queue);
    }
}

fn read_queue(
    sink: &mut Sink,
    name: &Sp<String>,
    t: &Table,
    files: &mut AcdFiles,
    agents_read: bool,
) -> QueueDef {
    let config = &files.config;
    let strategy = keyword(sink, t, "strategy", &STRATEGIES).unwrap_or(Strategy::LongestIdle);
    let mut skills = Vec::new();
    if let Some(v) = t.get("skills") {
        match v.get_ref() {
            DeValue::Table(tbl) => {
                let tbl = Table::new(tbl, v.span(), "`skills`");
                for (skill, level) in tbl.entries() {
                    if let Some(min_level) = level_value(sink, &skill.v, level) {
                        skills.push(SkillNeed {
                            skill: skill.v,
                            min_level,
                        });
                    }
                }
            }
            DeValue::Array(_) | DeValue::String(_) => {
                for s in t.strings("skills", sink).unwrap_or_default() {
                    skills.push(SkillNeed {
                        skill: s.v,
                        min_level: 1,
                    });
                }
            }
            other => sink.error(
                &v.span(),
                format!(
                    "`skills` is a table of minimum levels like {{ billing = 5 }} or a list of names, not {}",
                    kind_of(other)
                ),
            ),
        }
    }
    let mut widening: Vec<Widening> = Vec::new();
    if let Some(items) = t.array("widening", sink) {
        for item in items {
            let DeValue::Table(w) = item.get_ref() else {
                sink.error(
                    &item.span(),
                    "each widening step is a table: { after = \"30s\", min_level = 2 }",
                );
                continue;
            };
            let w = Table::new(w, item.span(), "a widening step");
            let after = duration_opt(sink, &w, "after", Duration::from_secs(1));
            let level = w.int("min_level", 1..=10, sink);
            for key in ["after", "min_level"] {
                if !w.has(key) {
                    sink.error(&item.span(), format!("a widening step needs `{key}`"));
                }
            }
            w.finish(sink);
            let (Some(after), Some(level)) = (after, level) else {
                continue;
            };
            let min_level = level.v as u8;
            if let Some(prev) = widening.last() {
                if after <= prev.after {
                    sink.error(
                        &item.span(),
                        "widening steps come in order: each `after` later than the one before",
                    );
                }
                if min_level >= prev.min_level {
                    sink.error(
                        &level.span,
                        format!(
                            "a widening step lowers the level: {min_level} is not below the step before ({})",
                            prev.min_level
                        ),
                    );
                }
            } else if let Some(top) = skills.iter().map(|s| s.min_level).max()
                && min_level >= top
            {
                sink.error(
                    &level.span,
                    format!(
                        "a widening step lowers the level: {min_level} is not below the queue's skill levels (at most {top})"
                    ),
                );
            }
            widening.push(Widening { after, min_level });
        }
        if !widening.is_empty() && skills.is_empty() {
            sink.out.warnings.push(Warning {
                at: sink
                    .src
                    .locate(&t.key_span("widening").unwrap_or(t.span.clone())),
                message: format!(
                    "queue {:?} needs no skills, so `widening` has nothing to lower",
                    name.v
                ),
            });
        }
    }
    let agents = t.strings("agents", sink).unwrap_or_default();
    for a in agents.iter().filter(|_| agents_read) {
        if config.agent(&a.v).is_none() {
            let hint = suggest(&a.v, config.agents.iter().map(|a| a.id.as_str()));
            sink.error(&a.span, format!("unknown agent {:?}{hint}", a.v));
        }
    }
    let teams = t.strings("teams", sink).unwrap_or_default();
    let known_teams: Vec<&str> = config
        .agents
        .iter()
        .filter_map(|a| a.team.as_deref())
        .collect();
    for team in teams.iter().filter(|_| agents_read) {
        if !known_teams.contains(&team.v.as_str()) {
            let hint = suggest(&team.v, known_teams.iter().copied());
            sink.error(
                &team.span,
                format!("unknown team {:?}: no agent has it{hint}", team.v),
            );
        }
    }
    let one_s = Duration::from_secs(1);
    let ring_timeout = duration_opt(sink, t, "ring_timeout", one_s).unwrap_or(DEFAULT_RING_TIMEOUT);
    let max_wait = duration_opt(sink, t, "max_wait", one_s).unwrap_or(DEFAULT_MAX_WAIT);
    let max_length = t.int("max_length", 1..=100_000, sink).map(|n| n.v as u32);
    let wrap_up = duration_opt(sink, t, "wrap_up", Duration::ZERO).unwrap_or(DEFAULT_WRAP_UP);
    let weight = count(sink, t, "weight", 100, 1);
    let when_empty = keyword(sink, t, "when_empty", &EMPTY_RULES).unwrap_or(EmptyRule::RefuseNew);
    let max_misses = count(sink, t, "max_misses", 100, DEFAULT_MAX_MISSES);
    let busy_rest = duration_opt(sink, t, "busy_rest", Duration::ZERO).unwrap_or(DEFAULT_BUSY_REST);
    let sticky_wait = duration_opt(sink, t, "sticky_wait", Duration::ZERO).unwrap_or_default();
    let sticky_days = count(sink, t, "sticky_days", 3650, DEFAULT_STICKY_DAYS);
    let music = t.str("music", sink).and_then(|m| {
        if m.v.is_empty() || m.v.contains("..") || m.v.starts_with('/') || m.v.contains('\\') {
            sink.error(&m.span, format!("bad prompt name {:?}", m.v));
            return None;
        }
        files.music.push((m.v.clone(), sink.src.locate(&m.span)));
        Some(m.v)
    });
    let announcements = t.table("announcements", sink).and_then(|a| {
        files.announce.push(sink.src.locate(&a.span));
        let a = a.relabel("the `announcements` table");
        let every = duration_opt(sink, &a, "every", Duration::from_secs(10));
        if every.is_none() && !a.has("every") {
            sink.error(
                &a.span,
                "`announcements` needs `every`, e.g. every = \"60s\"",
            );
        }
        let position = a.bool("position", sink).is_none_or(|b| b.v);
        let wait = a.bool("wait", sink).is_some_and(|b| b.v);
        a.finish(sink);
        Some(Announcements {
            every: every?,
            position,
            wait,
        })
    });
    let record = t.bool("record", sink).is_some_and(|b| b.v);
    QueueDef {
        name: name.v.clone(),
        strategy,
        skills,
        widening,
        agents: agents.into_iter().map(|a| a.v).collect(),
        teams: teams.into_iter().map(|t| t.v).collect(),
        ring_timeout,
        max_wait,
        max_length,
        wrap_up,
        weight,
        when_empty,
        max_misses,
        busy_rest,
        sticky_wait,
        sticky_days,
        music,
        announcements,
        record,
    }
}

/// Whether some agent is a member of the queue with every skill it needs, at the lowest
/// level its widening reaches.
fn servable(q: &QueueDef, config: &AcdConfig) -> bool {
    let floor = q.widening.last().map(|w| w.min_level);
    config.agents.iter().any(|a| {
        let member = (q.agents.is_empty() && q.teams.is_empty())
            || q.agents.contains(&a.id)
            || a.team.as_ref().is_some_and(|t| q.teams.contains(t));
        member
            && q.skills.iter().all(|need| {
                let min = floor.map_or(need.min_level, |f| f.min(need.min_level));
                a.skill_level(&need.skill).is_some_and(|l| l >= min)
            })
    })
}

// --- passwords ---

/// HA1 = hex(H(user ":" realm ":" password)), RFC 7616 (MD5) and RFC 8760 (SHA-256).
pub fn ha1_md5(user: &str, realm: &str, password: &str) -> String {
    use md5::{Digest, Md5};
    hex(&Md5::digest(
        format!("{user}:{realm}:{password}").as_bytes(),
    ))
}

pub fn ha1_sha256(user: &str, realm: &str, password: &str) -> String {
    use sha2::{Digest, Sha256};
    hex(&Sha256::digest(
        format!("{user}:{realm}:{password}").as_bytes(),
    ))
}

/// The stored form of an agent's PIN: hex(SHA-256(id ":" pin)).
pub fn pin_sha256(id: &str, pin: &str) -> String {
    use sha2::{Digest, Sha256};
    hex(&Sha256::digest(format!("{id}:{pin}").as_bytes()))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
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
}
