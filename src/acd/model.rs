//! Agents and queues as admins define them (`ivr-flows/acd/agents.toml` and `queues.toml`,
//! read by `load.rs`). Plain data: the ACD core, the registrar and `hotline check` all read
//! the same checked definitions, and a reload swaps them whole.

use std::time::Duration;

/// A skill an agent has, 1 (novice) to 10 (expert).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Skill {
    pub name: String,
    pub level: u8,
}

/// Where an agent's calls are sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AgentEndpoint {
    /// A softphone that REGISTERs as the agent's extension (digest-authenticated); calls go
    /// to its registered contacts.
    Registered,
    /// A fixed SIP URI (`sip:user@ip[:port]`), always reachable unless OPTIONS says otherwise.
    Fixed(String),
}

/// Digest credentials kept only as HA1 = H(username ":" realm ":" password), one per
/// algorithm the phone may ask for (RFC 7616 / RFC 8760). Lower-case hex.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Credentials {
    pub ha1_md5: Option<String>,
    pub ha1_sha256: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgentDef {
    /// The agent's id: what reports, the CTI and feature codes call them. Also the digest
    /// user name unless `extension` differs.
    pub id: String,
    pub name: String,
    /// The SIP user the phone registers as and that callers' offers are sent to.
    pub extension: String,
    pub credentials: Credentials,
    /// SHA-256 (hex) of "<id>:<pin>", for login by feature code; none: no PIN asked.
    pub pin_sha256: Option<String>,
    pub endpoint: AgentEndpoint,
    pub skills: Vec<Skill>,
    pub team: Option<String>,
    /// Overrides the queue's wrap-up time for this agent.
    pub wrap_up: Option<Duration>,
    /// Logged in and ready as soon as their phone registers (unattended seats, load tests);
    /// otherwise an agent logs in with `*11`.
    pub auto_login: bool,
}

impl AgentDef {
    pub fn skill_level(&self, skill: &str) -> Option<u8> {
        self.skills
            .iter()
            .find(|s| s.name == skill)
            .map(|s| s.level)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Strategy {
    /// Every eligible free agent rings at once; the first to answer takes the caller.
    RingAll,
    /// The agent who has been free the longest.
    LongestIdle,
    /// Agents in turn, continuing after the last one offered a call in this queue.
    RoundRobin,
    /// The agent who answered the fewest calls since logging in (then longest idle).
    FewestCalls,
    /// The agent with the best level in the skills asked for (then longest idle).
    SkillWeighted,
}

/// A skill a queue (or a caller) needs, at `min_level` or better.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SkillNeed {
    pub skill: String,
    pub min_level: u8,
}

/// After a caller has waited `after`, agents down to `min_level` in the needed skills qualify.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Widening {
    pub after: Duration,
    pub min_level: u8,
}

/// What happens to callers when no agent is logged in to a queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EmptyRule {
    /// Callers join (and stay) even with nobody logged in: they wait for someone to log in.
    Wait,
    /// New callers take `no_agents` when nobody is logged in; those waiting stay.
    RefuseNew,
    /// New callers take `no_agents`, and the last agent logging out sends the waiting ones
    /// there too.
    RefuseAndLeave,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Announcements {
    /// Every `every` the caller hears their position and the estimated wait; the first one
    /// comes `every` after joining.
    pub every: Duration,
    pub position: bool,
    pub wait: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub struct QueueDef {
    pub name: String,
    pub strategy: Strategy,
    /// Skills every agent of this queue needs.
    pub skills: Vec<SkillNeed>,
    /// Ordered by `after`.
    pub widening: Vec<Widening>,
    /// Agents named here (by id) serve the queue; with `teams`, every agent of those teams too;
    /// with neither, every agent who has the skills.
    pub agents: Vec<String>,
    pub teams: Vec<String>,
    pub ring_timeout: Duration,
    /// The longest a caller waits before the queue node's `on_timeout` exit; the node's own
    /// `timeout` is used when shorter.
    pub max_wait: Duration,
    /// Callers beyond this take `full`; none: no limit.
    pub max_length: Option<u32>,
    pub wrap_up: Duration,
    /// Relative weight of this queue's waiting time when an agent serving several queues
    /// becomes free (see the ACD core's fairness rule).
    pub weight: u32,
    pub when_empty: EmptyRule,
    /// Missed offers in a row after which an agent goes not ready with reason "no answer".
    pub max_misses: u32,
    /// A phone that was busy, declined or redirected is left out for this long.
    pub busy_rest: Duration,
    /// A returning caller (within `sticky_days`) is offered to their last agent alone for
    /// this long before the rest of the queue; zero: no sticky routing.
    pub sticky_wait: Duration,
    pub sticky_days: u32,
    /// Prompt played (looped) while callers wait.
    pub music: Option<String>,
    pub announcements: Option<Announcements>,
    /// Record bridged calls (stereo WAV, caller left, agent right).
    pub record: bool,
}

/// A not-ready reason agents can give from the phone (`*22<code>`) and later the CTI.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReasonCode {
    pub code: String,
    pub name: String,
}

/// Everything the agents and queues files say, checked. Shared read-only (`Arc`) between
/// the engine and the ACD core; swapped whole on reload.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct AcdConfig {
    pub agents: Vec<AgentDef>,
    pub queues: Vec<QueueDef>,
    pub reasons: Vec<ReasonCode>,
    /// Wrap-up disposition codes (`[dispositions]`): what agents record about a call.
    pub dispositions: Vec<Disposition>,
}

/// A wrap-up disposition: its code (what the CDR stores) and its label (what agents read).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Disposition {
    pub code: String,
    pub label: String,
}

impl AcdConfig {
    pub fn agent(&self, id: &str) -> Option<&AgentDef> {
        self.agents.iter().find(|a| a.id == id)
    }

    pub fn agent_by_extension(&self, extension: &str) -> Option<&AgentDef> {
        self.agents.iter().find(|a| a.extension == extension)
    }

    pub fn queue(&self, name: &str) -> Option<&QueueDef> {
        self.queues.iter().find(|q| q.name == name)
    }
}
