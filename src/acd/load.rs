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

mod agents;
mod queues;
mod values;

use agents::read_agents;
use queues::read_queues;
use values::*;

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
mod tests;
