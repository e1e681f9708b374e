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
    if let Some(text) = read(&agents_path, &mut diags) {
        let src = Source {
            file: &agents_path,
            text: &text,
        };
        let mut sink = Sink {
            src: &src,
            out: &mut diags,
        };
        read_agents(&mut sink, &mut files.config);
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
        read_queues(&mut sink, &mut files);
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

fn read_agents(sink: &mut Sink, config: &mut AcdConfig) {
    let Some(doc) = parse(sink, sink.src.text) else {
        return;
    };
    let top = Table::new(doc.get_ref(), doc.span(), "agents.toml");
    let agents = top.table("agents", sink);
    let reasons = top.table("reasons", sink);
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
        },
        span,
    )
}

/// `sip:user@host[:port]` (or `sip:host`), with nothing a SIP URI cannot hold.
fn fixed_uri_ok(uri: &str) -> bool {
    let Some(rest) = uri.strip_prefix("sip:") else {
        return false;
    };
    let host =
        rest.rsplit_once('@')
            .map_or(rest, |(user, host)| if user.is_empty() { "" } else { host });
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
    if d.as_millis() % 1000 == 0 {
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

fn read_queues(sink: &mut Sink, files: &mut AcdFiles) {
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
        let queue = read_queue(sink, &name, &t, files);
        t.finish(sink);
        if sink.error_count() == errors_before && !servable(&queue, &files.config) {
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

fn read_queue(sink: &mut Sink, name: &Sp<String>, t: &Table, files: &mut AcdFiles) -> QueueDef {
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
    for a in &agents {
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
    for team in &teams {
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
