//! IVR flows: TOML files compiled once into an index graph (every name resolved, every
//! expression parsed), checked for mistakes an admin would otherwise hear on a call, and a
//! sans-IO interpreter that walks one call through the graph.
//!
//! Dependency order inside: schema (spanned TOML reading, diagnostics) -> expr, schedule, say
//! (pure parts) -> compile + nodes (files to a FlowSet) -> check (graph analysis) ->
//! interpreter.

pub mod calendar;
mod check;
mod compile;
pub mod diagram;
pub mod dryrun;
pub mod expr;
pub mod flowtest;
mod interpreter;
mod nodes;
pub mod say;
pub mod schedule;
pub(crate) mod schema;
pub mod switches;

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Duration;

pub use compile::load_dir;
pub use expr::{Expr, Template};
pub use interpreter::{
    CallInfo, FlowAction, Interpreter, LookupRequest, LookupResult, PlayId, RecordOutcome, TaskId,
    json_path,
};
pub use say::SayAs;
pub use schema::{Diagnostics, FlowError, Located, Warning};
pub use switches::{ANNOUNCEMENT_DIR, Switches};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct NodeId(pub u32);

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PromptId(pub u32);

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct FlowId(pub u32);

/// Every flow of a directory, with the routing table and the prompts they use. Built whole
/// and swapped whole, so a call never sees half of one version and half of another.
#[derive(Debug, Default)]
pub struct FlowSet {
    pub flows: Vec<Flow>,
    pub by_number: HashMap<String, FlowId>,
    pub default: Option<FlowId>,
    /// Prompt names in PromptId order; spoken-value words are named `say/<word>`.
    pub prompts: Vec<String>,
    /// Where each prompt is first used, for error messages.
    pub prompt_sites: Vec<Located>,
    /// Prompt name to id: spoken values look their words up on every play.
    pub prompt_index: HashMap<String, PromptId>,
    /// Every distinct `switch` the announcement nodes name, as written: a name, or a
    /// template such as `outage-{area}` (whether one is on is not the flows' business: see
    /// [`Switches`]).
    pub switches: Vec<(String, Template)>,
    /// Languages named by `language` nodes and flow headers, where first named.
    pub languages: Vec<(String, Located)>,
}

impl FlowSet {
    pub fn route(&self, dialled: &str) -> Option<FlowId> {
        self.by_number.get(dialled).copied().or(self.default)
    }

    /// The flow that lists `dialled` among its numbers (the default flow does not count).
    pub fn route_exact(&self, dialled: &str) -> Option<FlowId> {
        self.by_number.get(dialled).copied()
    }

    pub fn flow(&self, id: FlowId) -> &Flow {
        &self.flows[id.0 as usize]
    }

    pub fn flow_by_name(&self, name: &str) -> Option<FlowId> {
        self.flows
            .iter()
            .position(|f| f.name == name)
            .map(|i| FlowId(i as u32))
    }

    pub fn prompt_name(&self, id: PromptId) -> &str {
        &self.prompts[id.0 as usize]
    }

    pub fn prompt_id(&self, name: &str) -> Option<PromptId> {
        self.prompt_index.get(name).copied()
    }

    /// Register a prompt used outside the flows (a queue's music), so the catalog loads and
    /// checks it like the flows' own.
    pub fn add_prompt(&mut self, name: &str, at: Located) -> PromptId {
        if let Some(id) = self.prompt_index.get(name) {
            return *id;
        }
        let id = PromptId(self.prompts.len() as u32);
        self.prompts.push(name.to_string());
        self.prompt_sites.push(at);
        self.prompt_index.insert(name.to_string(), id);
        id
    }

    /// Whether some announcement node can name the switch `name`.
    pub fn uses_switch(&self, name: &str) -> bool {
        self.switches.iter().any(|(_, t)| t.could_render(name))
    }
}

#[derive(Debug)]
pub struct Flow {
    pub name: String,
    pub file: PathBuf,
    /// The numbers it answers, as its header lists them.
    pub numbers: Vec<String>,
    pub start: NodeId,
    /// The language calls start in; the server's default when absent.
    pub language: Option<String>,
    pub nodes: Vec<Node>,
}

#[derive(Debug)]
pub struct Node {
    pub name: String,
    pub at: Located,
    pub kind: NodeKind,
}

/// One item of a prompt list: a recording, or a value spoken with the language's words.
#[derive(Debug, Clone, PartialEq)]
pub enum PromptItem {
    Prompt(PromptId),
    Say(SayAs, Expr),
}

#[derive(Debug)]
pub enum NodeKind {
    Play {
        prompts: Vec<PromptItem>,
        barge_in: bool,
        next: NodeId,
    },
    Menu(Box<Menu>),
    Collect(Box<Collect>),
    Set {
        vars: Vec<(String, Expr)>,
        next: NodeId,
    },
    /// Labels for the CDR: (name, value template).
    Label {
        labels: Vec<(String, Template)>,
        next: NodeId,
    },
    Branch {
        cases: Vec<(Expr, NodeId)>,
        otherwise: NodeId,
        /// Where each case's `when` is written, for messages about its expression.
        when_sites: Vec<Located>,
    },
    Goto {
        next: NodeId,
    },
    Subflow {
        flow: FlowId,
        next: NodeId,
    },
    Return,
    Schedule {
        schedule: Box<schedule::Schedule>,
        open: NodeId,
        closed: NodeId,
        holiday: NodeId,
    },
    Announcement {
        /// The switch's name, or a template that makes one from variables (per area).
        switch: Template,
        prompts: Vec<PromptItem>,
        barge_in: bool,
        next: NodeId,
    },
    Language {
        language: String,
        next: NodeId,
    },
    Lookup(Box<Lookup>),
    Record(Box<Record>),
    Survey(Box<Survey>),
    Transfer(Box<Transfer>),
    Queue(Box<Queue>),
    Hangup,
}

#[derive(Debug)]
pub struct Menu {
    pub prompts: Vec<PromptItem>,
    /// Played instead of `prompts` when the menu is offered again after a mistake.
    pub short_prompts: Option<Vec<PromptItem>>,
    pub choices: Vec<(String, NodeId)>,
    pub invalid_prompts: Vec<PromptItem>,
    pub timeout_prompts: Vec<PromptItem>,
    pub timeout: Duration,
    pub inter_digit_timeout: Duration,
    pub max_failures: u32,
    pub on_failure: Option<NodeId>,
    /// Where a caller who presses nothing goes, instead of being asked again.
    pub default: Option<NodeId>,
}

#[derive(Debug)]
pub struct Collect {
    pub prompts: Vec<PromptItem>,
    pub variable: String,
    pub min_digits: u32,
    pub max_digits: u32,
    pub terminator: Option<char>,
    pub first_digit_timeout: Duration,
    pub inter_digit_timeout: Duration,
    /// An optional limit on the whole entry, counted from when listening starts.
    pub total_timeout: Option<Duration>,
    pub pattern: Option<regex_lite::Regex>,
    pub max_attempts: u32,
    pub invalid_prompts: Vec<PromptItem>,
    pub timeout_prompts: Vec<PromptItem>,
    pub confirm: Option<Confirm>,
    /// A card number, a PIN: Some(how many trailing digits may be shown). The keys are masked
    /// in the CDR and the variable's value wherever it is shown (dry runs, flow tests).
    pub sensitive: Option<u32>,
    pub next: NodeId,
    pub on_failure: Option<NodeId>,
}

/// A sensitive value as it may be shown: every character masked but the last `keep_last`.
pub fn masked(value: &str, keep_last: u32) -> String {
    let n = value.chars().count();
    let keep = (keep_last as usize).min(n);
    let mut out = "x".repeat(n - keep);
    out.extend(value.chars().skip(n - keep));
    out
}

/// "You entered 1 2 3 4, press 1 to confirm": prompts, the digits read back, more prompts.
#[derive(Debug)]
pub struct Confirm {
    pub before: Vec<PromptItem>,
    pub after: Vec<PromptItem>,
    pub yes: char,
    pub no: char,
    pub timeout: Duration,
}

#[derive(Debug)]
pub struct Lookup {
    pub method: Method,
    pub url: Template,
    /// JSON body fields for POST (each value an expression).
    pub body: Vec<(String, Expr)>,
    pub timeout: Duration,
    /// How long a result may be reused for the same request; zero: never cached.
    pub cache: Duration,
    /// Variable <- dotted path into the JSON answer ("customer.tier", "cases.0.id").
    pub result: Vec<(String, String)>,
    /// Result variables that hold sensitive values (never shown, never stored in clear).
    pub sensitive: Vec<String>,
    pub next: NodeId,
    pub on_failure: Option<NodeId>,
    pub on_not_found: Option<NodeId>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Method {
    Get,
    Post,
}

#[derive(Debug)]
pub struct Record {
    pub prompts: Vec<PromptItem>,
    pub max_length: Duration,
    /// Recording ends after this much silence.
    pub silence: Duration,
    pub terminator: Option<char>,
    pub variable: Option<String>,
    pub next: NodeId,
    pub on_failure: Option<NodeId>,
}

#[derive(Debug)]
pub struct Survey {
    pub prompts: Vec<PromptItem>,
    pub questions: Vec<Question>,
    pub timeout: Duration,
    pub max_attempts: u32,
    pub invalid_prompts: Vec<PromptItem>,
    pub next: NodeId,
}

#[derive(Debug)]
pub struct Question {
    pub id: String,
    pub prompts: Vec<PromptItem>,
    pub answers: Vec<char>,
}

#[derive(Debug)]
pub struct Transfer {
    pub prompts: Vec<PromptItem>,
    pub target: TransferTarget,
    pub ring_timeout: Duration,
    pub on_failure: Option<NodeId>,
    /// Where the caller goes on when the connected target hangs up (a survey); None: the
    /// call ends with the target's hang-up.
    pub answered: Option<NodeId>,
    /// SIP headers the INVITE to the target carries, filled from the call's data
    /// (`X-Customer = "{name}"`): sensitive values go masked.
    pub headers: Vec<(String, Template)>,
}

#[derive(Debug)]
pub enum TransferTarget {
    /// A full SIP URI.
    Uri(Template),
    /// A number dialled through the configured outbound target.
    Number(Template),
}

/// A queue node's text parameter: a literal, or a template with `{expression}` holes that
/// is filled in when the node runs.
#[derive(Debug)]
pub struct QueueParam {
    /// As written, for diagrams and messages.
    pub text: String,
    pub template: Template,
    /// Where it is written, for `hotline check` against the queues file.
    pub at: Located,
}

impl QueueParam {
    /// The text when it has no holes.
    pub fn literal(&self) -> Option<String> {
        self.template.literal()
    }
}

#[derive(Debug)]
pub struct Queue {
    /// The queue's name; a name computed at run time that no queue has leaves by `no_agents`.
    pub queue: QueueParam,
    /// 0-100; a computed value that is not a whole number counts as 0, above 100 as 100.
    pub priority: QueueParam,
    /// Skills the agent needs on top of the queue's; a computed value may name several,
    /// separated by commas or spaces.
    pub skills: Vec<QueueParam>,
    pub prompts: Vec<PromptItem>,
    pub timeout: Duration,
    /// Whether this caller's conversations are recorded (`true`/`false`, or a template
    /// such as "{consented}" read as yes/no when the node runs); None: the queue decides.
    pub record: Option<QueueParam>,
    /// Keys that take a waiting caller out of the queue to a node.
    pub keys: Vec<(char, NodeId)>,
    pub answered: Option<NodeId>,
    pub on_timeout: Option<NodeId>,
    pub full: Option<NodeId>,
    pub no_agents: Option<NodeId>,
}

/// How a queue hand-off ended, as the ACD reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QueueExit {
    Answered,
    Timeout,
    Full,
    NoAgents,
    /// The caller pressed one of the node's `keys` while waiting (not while talking).
    Key(char),
}

impl NodeKind {
    pub fn type_name(&self) -> &'static str {
        match self {
            NodeKind::Play { .. } => "play",
            NodeKind::Menu(_) => "menu",
            NodeKind::Collect(_) => "collect",
            NodeKind::Set { .. } => "set",
            NodeKind::Label { .. } => "label",
            NodeKind::Branch { .. } => "branch",
            NodeKind::Goto { .. } => "goto",
            NodeKind::Subflow { .. } => "subflow",
            NodeKind::Return => "return",
            NodeKind::Schedule { .. } => "schedule",
            NodeKind::Announcement { .. } => "announcement",
            NodeKind::Language { .. } => "language",
            NodeKind::Lookup(_) => "lookup",
            NodeKind::Record(_) => "record",
            NodeKind::Survey(_) => "survey",
            NodeKind::Transfer(_) => "transfer",
            NodeKind::Queue(_) => "queue",
            NodeKind::Hangup => "hangup",
        }
    }

    /// Every way out of the node, labelled: what diagrams draw and the checks walk.
    pub fn exits(&self) -> Vec<(String, NodeId)> {
        let one = |label: &str, n: NodeId| vec![(label.to_string(), n)];
        let opt = |out: &mut Vec<(String, NodeId)>, label: &str, n: Option<NodeId>| {
            if let Some(n) = n {
                out.push((label.to_string(), n));
            }
        };
        match self {
            NodeKind::Play { next, .. }
            | NodeKind::Set { next, .. }
            | NodeKind::Label { next, .. }
            | NodeKind::Goto { next }
            | NodeKind::Subflow { next, .. }
            | NodeKind::Announcement { next, .. }
            | NodeKind::Language { next, .. } => one("", *next),
            NodeKind::Menu(m) => {
                let mut out: Vec<_> = m.choices.iter().map(|(k, n)| (k.clone(), *n)).collect();
                opt(&mut out, "no key", m.default);
                opt(&mut out, "failed", m.on_failure);
                out
            }
            NodeKind::Collect(c) => {
                let mut out = one("entered", c.next);
                opt(&mut out, "failed", c.on_failure);
                out
            }
            NodeKind::Branch {
                cases, otherwise, ..
            } => {
                let mut out: Vec<_> = cases
                    .iter()
                    .enumerate()
                    .map(|(i, (_, n))| (format!("case {}", i + 1), *n))
                    .collect();
                out.push(("else".into(), *otherwise));
                out
            }
            NodeKind::Schedule {
                open,
                closed,
                holiday,
                ..
            } => vec![
                ("open".into(), *open),
                ("closed".into(), *closed),
                ("holiday".into(), *holiday),
            ],
            NodeKind::Lookup(l) => {
                let mut out = one("ok", l.next);
                opt(&mut out, "not found", l.on_not_found);
                opt(&mut out, "failed", l.on_failure);
                out
            }
            NodeKind::Record(r) => {
                let mut out = one("recorded", r.next);
                opt(&mut out, "nothing", r.on_failure);
                out
            }
            NodeKind::Survey(s) => one("", s.next),
            NodeKind::Transfer(t) => {
                let mut out = Vec::new();
                opt(&mut out, "failed", t.on_failure);
                opt(&mut out, "answered", t.answered);
                out
            }
            NodeKind::Queue(q) => {
                let mut out = Vec::new();
                opt(&mut out, "answered", q.answered);
                opt(&mut out, "timeout", q.on_timeout);
                opt(&mut out, "full", q.full);
                opt(&mut out, "no agents", q.no_agents);
                out.extend(q.keys.iter().map(|(k, n)| (format!("key {k}"), *n)));
                out
            }
            NodeKind::Return | NodeKind::Hangup => Vec::new(),
        }
    }

    /// Prompt lists the node may play, for the prompt checks and the dry run.
    pub fn prompt_lists(&self) -> Vec<&[PromptItem]> {
        match self {
            NodeKind::Play { prompts, .. } | NodeKind::Announcement { prompts, .. } => {
                vec![prompts]
            }
            NodeKind::Menu(m) => {
                let mut v: Vec<&[PromptItem]> =
                    vec![&m.prompts, &m.invalid_prompts, &m.timeout_prompts];
                if let Some(s) = &m.short_prompts {
                    v.push(s);
                }
                v
            }
            NodeKind::Collect(c) => {
                let mut v: Vec<&[PromptItem]> =
                    vec![&c.prompts, &c.invalid_prompts, &c.timeout_prompts];
                if let Some(k) = &c.confirm {
                    v.push(&k.before);
                    v.push(&k.after);
                }
                v
            }
            NodeKind::Record(r) => vec![&r.prompts],
            NodeKind::Survey(s) => {
                let mut v: Vec<&[PromptItem]> = vec![&s.prompts, &s.invalid_prompts];
                v.extend(s.questions.iter().map(|q| q.prompts.as_slice()));
                v
            }
            NodeKind::Transfer(t) => vec![&t.prompts],
            NodeKind::Queue(q) => vec![&q.prompts],
            _ => Vec::new(),
        }
    }
}

pub const DEFAULT_MENU_TIMEOUT: Duration = Duration::from_secs(5);
pub const DEFAULT_INTER_DIGIT: Duration = Duration::from_secs(3);
pub const DEFAULT_MAX_FAILURES: u32 = 3;
