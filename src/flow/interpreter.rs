//! One call's walk through a flow: a sans-IO state machine. Events in (`start`, `on_digit`,
//! `on_play_done`, `on_timeout`, and the results of the tasks it asked for), all with `now`;
//! actions out (`poll_action`), and the one deadline it waits for (`poll_timeout`). Wall-clock
//! time (for schedules and `hour`) is derived from the call's start, so it is an input too.
//!
//! The timer model, one rule each, all unit-tested on a virtual clock:
//! - an input node's first-digit timeout starts when its prompt ends or is interrupted;
//! - each digit restarts the inter-digit timeout; an optional total timeout runs from the
//!   moment listening starts and is not restarted by digits;
//! - prompts of menus, collects, confirmations and survey questions can always be
//!   interrupted by a key, and that key counts as input; a `play` or `announcement` node is
//!   interrupted only with `barge_in`, and the key then carries over to the next input node;
//! - keys pressed during a prompt that cannot be interrupted are ignored; keys pressed while
//!   a back-end look-up runs are kept for the next input node.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use jiff::Timestamp;
use jiff::tz::TimeZone;

use super::expr::{Builtin, Scope, Value};
use super::say::{self, Grammar, SayAs};
use super::schedule::State;
use super::*;

mod input;
mod tasks;

/// Names one playback request, so a late "done" for an earlier one is told apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct PlayId(pub u32);

/// Names one lookup, recording, transfer or queue hand-off, for the same reason.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TaskId(pub u32);

/// Who is calling, where, and when: the interpreter's view of the outside world.
#[derive(Debug, Clone)]
pub struct CallInfo {
    pub caller: String,
    pub dialled: String,
    /// The wall-clock time at `started`.
    pub wall: Timestamp,
    pub started: Instant,
    /// The server's time zone, for `hour`, `weekday`, `date` and `time`.
    pub tz: TimeZone,
    /// The language a call starts in unless its flow names one.
    pub language: String,
    /// The announcement switches as they were when the call came in.
    pub switches: Arc<Switches>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum FlowAction {
    Play {
        id: PlayId,
        prompts: Vec<PromptId>,
        barge_in: bool,
    },
    StopPlayback,
    Lookup {
        id: TaskId,
        request: LookupRequest,
    },
    Record {
        id: TaskId,
        max_length: Duration,
        silence: Duration,
    },
    StopRecording {
        id: TaskId,
    },
    Transfer {
        id: TaskId,
        /// A SIP URI, or a number for the outbound target.
        target: String,
        is_number: bool,
        ring_timeout: Duration,
        /// Headers for the INVITE, filled in (sensitive values masked, line breaks removed).
        headers: Vec<(String, String)>,
    },
    /// Hand the caller to the ACD. Every value is evaluated when the node runs; a queue name
    /// no queue has is for the engine to answer with `QueueExit::NoAgents`. While the caller
    /// waits (not once they talk to an agent), a key in `keys` is answered with
    /// `QueueExit::Key` after the engine took the caller out of the queue.
    Queue {
        id: TaskId,
        queue: String,
        priority: u8,
        skills: Vec<String>,
        timeout: Duration,
        keys: Vec<char>,
        /// Record this caller's conversations; None: as the queue says.
        record: Option<bool>,
    },
    Hangup,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct LookupRequest {
    pub method: Method,
    pub url: String,
    /// The URL as logs and dry runs may show it: sensitive values masked.
    pub shown_url: String,
    pub body: Option<String>,
    pub timeout: Duration,
    pub cache: Duration,
}

#[derive(Debug, Clone, PartialEq)]
pub enum LookupResult {
    Ok(serde_json::Value),
    NotFound,
    Failed(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RecordOutcome {
    Saved { path: String, duration_ms: u64 },
    Nothing,
}

/// A flow that moves this many times without waiting for the caller or a prompt is stuck in
/// a loop the checks could not see (a subflow that returns at once); the call is ended.
const MAX_STEPS_WITHOUT_WAIT: u32 = 64;
const MAX_SUBFLOW_DEPTH: usize = 16;
/// What a call keeps of its path and keys for the CDR; a caller looping in a menu for hours
/// must not grow memory without end.
const MAX_PATH: usize = 500;
const MAX_DIGITS: usize = 256;
/// A task result later than its own timeout by this much is given up on, so a lost answer
/// can never leave a caller in silence.
const TASK_GRACE: Duration = Duration::from_secs(2);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum AfterPlay {
    Next(NodeId),
    /// An input node's prompt finished: start listening.
    Listen,
    /// A confirmation read-back finished: wait for yes or no.
    Confirm,
    /// A survey question finished: wait for the answer.
    Answer,
    /// A node's intro finished: start its task (record, transfer, queue).
    Task,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TaskKind {
    Lookup,
    Record,
    Transfer,
    Bridged,
    Queue,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Wait {
    Nothing,
    Playing {
        id: PlayId,
        after: AfterPlay,
        barge_in: bool,
    },
    Digits {
        deadline: Instant,
        total: Option<Instant>,
    },
    Confirming {
        deadline: Instant,
    },
    Answering {
        deadline: Instant,
    },
    Task {
        id: TaskId,
        kind: TaskKind,
        deadline: Option<Instant>,
    },
    Finished,
}

pub struct Interpreter {
    set: Arc<FlowSet>,
    info: CallInfo,
    flow: FlowId,
    node: NodeId,
    /// Where each subflow returns to.
    /// Subflows entered: where to return to, and the language to speak again there when the
    /// subflow's own header changed it.
    frames: Vec<(FlowId, NodeId, Option<String>)>,
    wait: Wait,
    buffer: String,
    typeahead: String,
    failures: u32,
    /// A collected entry waiting for its confirmation.
    pending: Option<String>,
    /// A collect filled to `max_digits` whose prompt asked for a terminator: the terminator
    /// the caller presses next (until the deadline) belongs to that entry, not to whatever
    /// comes after it.
    late_terminator: Option<(char, Instant)>,
    /// Variables holding sensitive values, with how many trailing characters may be shown.
    sensitive: HashMap<String, u32>,
    question: usize,
    steps: u32,
    next_play: u32,
    next_task: u32,
    actions: VecDeque<FlowAction>,
    path: Vec<String>,
    digits: String,
    vars: HashMap<String, String>,
    language: String,
    survey: Vec<(String, String)>,
    recordings: Vec<String>,
    /// CDR labels, in the order first set.
    labels: Vec<(String, String)>,
    stuck: bool,
    /// The latest event's time, so expressions read the wall clock of that moment.
    last_now: Instant,
}

impl Interpreter {
    pub fn new(set: Arc<FlowSet>, flow: FlowId, info: CallInfo) -> Self {
        let f = set.flow(flow);
        let start = f.start;
        let language = f.language.clone().unwrap_or_else(|| info.language.clone());
        let started = info.started;
        Interpreter {
            set,
            info,
            flow,
            node: start,
            frames: Vec::new(),
            wait: Wait::Nothing,
            buffer: String::new(),
            typeahead: String::new(),
            failures: 0,
            pending: None,
            late_terminator: None,
            sensitive: HashMap::new(),
            question: 0,
            steps: 0,
            next_play: 0,
            next_task: 0,
            actions: VecDeque::new(),
            path: Vec::new(),
            digits: String::new(),
            vars: HashMap::new(),
            language,
            survey: Vec::new(),
            recordings: Vec::new(),
            labels: Vec::new(),
            stuck: false,
            last_now: started,
        }
    }

    pub fn flow_name(&self) -> &str {
        &self.set.flow(self.flow).name
    }
    /// The flow the call entered by (subflows do not change it).
    pub fn entry_flow_name(&self) -> &str {
        let entry = self.frames.first().map_or(self.flow, |f| f.0);
        &self.set.flow(entry).name
    }
    pub fn node_name(&self) -> &str {
        &self.set.flow(self.flow).nodes[self.node.0 as usize].name
    }
    pub fn path(&self) -> &[String] {
        &self.path
    }
    pub fn digits(&self) -> &str {
        &self.digits
    }
    pub fn var(&self, name: &str) -> Option<&str> {
        self.vars.get(name).map(String::as_str)
    }
    pub fn vars(&self) -> impl Iterator<Item = (&str, &str)> {
        self.vars.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }
    pub fn language(&self) -> &str {
        &self.language
    }
    pub fn survey_answers(&self) -> &[(String, String)] {
        &self.survey
    }
    pub fn recordings(&self) -> &[String] {
        &self.recordings
    }
    pub fn labels(&self) -> &[(String, String)] {
        &self.labels
    }
    pub fn is_finished(&self) -> bool {
        self.wait == Wait::Finished
    }
    /// True when the flow was ended for looping without waiting.
    pub fn was_stuck(&self) -> bool {
        self.stuck
    }

    pub fn poll_action(&mut self) -> Option<FlowAction> {
        self.actions.pop_front()
    }

    pub fn poll_timeout(&self) -> Option<Instant> {
        match self.wait {
            Wait::Digits { deadline, total } => Some(total.map_or(deadline, |t| t.min(deadline))),
            Wait::Confirming { deadline } | Wait::Answering { deadline } => Some(deadline),
            Wait::Task { deadline, .. } => deadline,
            _ => None,
        }
    }

    pub fn start(&mut self, now: Instant) {
        let start = self.node;
        self.enter(now, start);
    }

    pub fn on_digit(&mut self, now: Instant, digit: char) {
        if self.wait == Wait::Finished {
            return;
        }
        if self.digits.len() < MAX_DIGITS {
            // Keys typed into a sensitive entry are kept only as "a key was pressed".
            let masked = matches!(
                self.wait,
                Wait::Digits { .. }
                    | Wait::Playing {
                        after: AfterPlay::Listen,
                        ..
                    }
            ) && matches!(self.kind(), NodeKind::Collect(c) if c.sensitive.is_some() && Some(digit) != c.terminator);
            self.digits.push(if masked { 'x' } else { digit });
        }
        if let Some((terminator, until)) = self.late_terminator.take()
            && terminator == digit
            && now <= until
        {
            return;
        }
        self.steps = 0;
        match self.wait {
            Wait::Playing {
                barge_in: false, ..
            }
            | Wait::Nothing
            | Wait::Finished => {}
            Wait::Playing {
                after: AfterPlay::Next(next),
                ..
            } => {
                self.actions.push_back(FlowAction::StopPlayback);
                self.typeahead.push(digit);
                self.enter(now, next);
            }
            Wait::Playing { after, .. } => {
                self.actions.push_back(FlowAction::StopPlayback);
                match after {
                    AfterPlay::Listen => {
                        // The first key starts the listening, total timeout included.
                        self.listen(now, false);
                        self.input(now, digit)
                    }
                    AfterPlay::Confirm => self.confirm_key(now, Some(digit)),
                    AfterPlay::Answer => self.answer_key(now, Some(digit)),
                    // Handled above, and intros of tasks never take keys (no barge-in).
                    AfterPlay::Next(_) | AfterPlay::Task => {}
                }
            }
            Wait::Digits { .. } => self.input(now, digit),
            Wait::Confirming { .. } => self.confirm_key(now, Some(digit)),
            Wait::Answering { .. } => self.answer_key(now, Some(digit)),
            Wait::Task {
                id,
                kind: TaskKind::Record,
                ..
            } => {
                if let NodeKind::Record(r) = self.kind()
                    && r.terminator == Some(digit)
                {
                    self.actions.push_back(FlowAction::StopRecording { id });
                }
            }
            // A caller who knows the menu types ahead while the back end answers.
            Wait::Task {
                kind: TaskKind::Lookup,
                ..
            } => self.typeahead.push(digit),
            Wait::Task { .. } => {}
        }
    }

    pub fn on_play_done(&mut self, now: Instant, id: PlayId) {
        let Wait::Playing {
            id: current, after, ..
        } = self.wait
        else {
            return;
        };
        if current != id {
            return;
        }
        self.steps = 0;
        match after {
            AfterPlay::Next(next) => self.enter(now, next),
            AfterPlay::Listen => self.listen(now, true),
            AfterPlay::Confirm => {
                let timeout = match self.kind() {
                    NodeKind::Collect(c) => c
                        .confirm
                        .as_ref()
                        .map_or(DEFAULT_MENU_TIMEOUT, |k| k.timeout),
                    _ => DEFAULT_MENU_TIMEOUT,
                };
                self.wait = Wait::Confirming {
                    deadline: now + timeout,
                };
            }
            AfterPlay::Answer => {
                let timeout = match self.kind() {
                    NodeKind::Survey(s) => s.timeout,
                    _ => DEFAULT_MENU_TIMEOUT,
                };
                self.wait = Wait::Answering {
                    deadline: now + timeout,
                };
            }
            AfterPlay::Task => self.start_task(now),
        }
    }

    pub fn on_timeout(&mut self, now: Instant) {
        let Some(deadline) = self.poll_timeout() else {
            return;
        };
        if now < deadline {
            return;
        }
        self.steps = 0;
        match self.wait {
            Wait::Digits { .. } => self.digits_timeout(now),
            Wait::Confirming { .. } => self.confirm_key(now, None),
            Wait::Answering { .. } => self.answer_key(now, None),
            Wait::Task { kind, .. } => {
                tracing::warn!(
                    flow = self.flow_name(),
                    node = self.node_name(),
                    ?kind,
                    "no result in time; taking the failure exit"
                );
                self.task_failed(now, kind);
            }
            _ => {}
        }
    }

    fn waiting_for(&self, id: TaskId, kind: TaskKind) -> bool {
        matches!(self.wait, Wait::Task { id: i, kind: k, .. } if i == id && k == kind)
    }

    fn kind(&self) -> &NodeKind {
        &self.set.flow(self.flow).nodes[self.node.0 as usize].kind
    }

    fn wall(&self, now: Instant) -> Timestamp {
        let elapsed = now.saturating_duration_since(self.info.started);
        self.info
            .wall
            .checked_add(jiff::SignedDuration::try_from(elapsed).unwrap_or_default())
            .unwrap_or(self.info.wall)
    }

    fn enter(&mut self, now: Instant, node: NodeId) {
        self.last_now = now;
        self.steps += 1;
        if self.steps > MAX_STEPS_WITHOUT_WAIT {
            tracing::warn!(
                flow = self.flow_name(),
                "flow loops without waiting; ending the call"
            );
            self.stuck = true;
            return self.finish();
        }
        let set = Arc::clone(&self.set);
        let n = &set.flow(self.flow).nodes[node.0 as usize];
        self.node = node;
        if self.path.len() < MAX_PATH {
            self.path.push(if self.frames.is_empty() {
                n.name.clone()
            } else {
                format!("{}:{}", self.flow_name(), n.name)
            });
        }
        self.buffer.clear();
        self.failures = 0;
        self.pending = None;
        self.question = 0;
        match &n.kind {
            NodeKind::Play {
                prompts,
                barge_in,
                next,
            } => self.play_then(now, prompts, *barge_in, *next),
            NodeKind::Announcement {
                switch,
                prompts,
                barge_in,
                next,
            } => {
                // A per-area switch whose area is unknown is off.
                let on = switch
                    .render_filled(&*self)
                    .is_some_and(|name| self.info.switches.is_on(&name, self.wall(now)));
                if on {
                    self.play_then(now, prompts, *barge_in, *next)
                } else {
                    self.enter(now, *next)
                }
            }
            NodeKind::Menu(m) => self.prompt_for_input(now, &m.prompts),
            NodeKind::Collect(c) => self.prompt_for_input(now, &c.prompts),
            NodeKind::Set { vars, next } => {
                for (name, e) in vars {
                    let v = e.eval(&*self).to_string();
                    // A value made from a sensitive one is sensitive too (the strictest
                    // `keep_last` of its sources), or a copy would show what the mask hides.
                    let mut used = Vec::new();
                    e.variables(&mut used);
                    let keep = used
                        .iter()
                        .filter_map(|u| self.sensitive.get(*u).copied())
                        .min();
                    match keep {
                        Some(keep) => self.sensitive.insert(name.clone(), keep),
                        None => self.sensitive.remove(name),
                    };
                    self.vars.insert(name.clone(), v);
                }
                self.enter(now, *next)
            }
            NodeKind::Label { labels, next } => {
                // Masked where a sensitive variable goes in: labels reach the database.
                let shown = Shown::of(self);
                let values: Vec<(String, String)> = labels
                    .iter()
                    .map(|(name, value)| {
                        (
                            name.clone(),
                            label_value(&value.render(&shown, str::to_string)),
                        )
                    })
                    .collect();
                for (name, value) in values {
                    match self.labels.iter_mut().find(|(n, _)| *n == name) {
                        Some(slot) => slot.1 = value,
                        None => self.labels.push((name, value)),
                    }
                }
                self.enter(now, *next)
            }
            NodeKind::Branch {
                cases, otherwise, ..
            } => {
                let target = cases
                    .iter()
                    .find(|(e, _)| e.eval(&*self).truthy())
                    .map_or(*otherwise, |c| c.1);
                self.enter(now, target)
            }
            NodeKind::Goto { next } => self.enter(now, *next),
            NodeKind::Subflow { flow, next } => {
                if self.frames.len() >= MAX_SUBFLOW_DEPTH {
                    tracing::warn!(
                        flow = self.flow_name(),
                        "subflows nested too deeply; ending the call"
                    );
                    self.stuck = true;
                    return self.finish();
                }
                // A subflow written for one language speaks it (issue 10), and the caller's
                // language comes back at its return.
                let restore = set
                    .flow(*flow)
                    .language
                    .clone()
                    .map(|l| std::mem::replace(&mut self.language, l));
                self.frames.push((self.flow, *next, restore));
                self.flow = *flow;
                let start = set.flow(*flow).start;
                self.enter(now, start)
            }
            NodeKind::Return => match self.frames.pop() {
                Some((flow, next, restore)) => {
                    if let Some(language) = restore {
                        self.language = language;
                    }
                    self.flow = flow;
                    self.enter(now, next)
                }
                None => self.finish(),
            },
            NodeKind::Schedule {
                schedule,
                open,
                closed,
                holiday,
            } => {
                let target = match schedule.state(self.wall(now)) {
                    State::Open => *open,
                    State::Closed => *closed,
                    State::Holiday => *holiday,
                };
                self.enter(now, target)
            }
            NodeKind::Language { language, next } => {
                self.language = language.clone();
                self.enter(now, *next)
            }
            NodeKind::Lookup(l) => {
                let request = LookupRequest {
                    method: l.method,
                    url: l.url.render(&*self, expr::url_escape),
                    shown_url: l.url.render(&Shown::of(self), expr::url_escape),
                    body: (l.method == Method::Post).then(|| {
                        let map: serde_json::Map<String, serde_json::Value> = l
                            .body
                            .iter()
                            .map(|(k, e)| {
                                (
                                    k.clone(),
                                    serde_json::Value::String(e.eval(&*self).to_string()),
                                )
                            })
                            .collect();
                        serde_json::Value::Object(map).to_string()
                    }),
                    timeout: l.timeout,
                    cache: l.cache,
                };
                let id = self.task(now, TaskKind::Lookup, Some(l.timeout + TASK_GRACE));
                self.actions.push_back(FlowAction::Lookup { id, request });
            }
            NodeKind::Record(r) => self.intro_then_task(now, &r.prompts),
            NodeKind::Transfer(t) => self.intro_then_task(now, &t.prompts),
            NodeKind::Queue(q) => self.intro_then_task(now, &q.prompts),
            NodeKind::Survey(s) => {
                // A survey asks its own questions; keys typed before it are not answers.
                self.typeahead.clear();
                let mut prompts = s.prompts.clone();
                if let Some(q) = s.questions.first() {
                    prompts.extend(q.prompts.iter().cloned());
                    self.play_items(&prompts, AfterPlay::Answer, true);
                } else {
                    self.enter(now, s.next)
                }
            }
            NodeKind::Hangup => self.finish(),
        }
    }

    fn play_then(&mut self, now: Instant, prompts: &[PromptItem], barge_in: bool, next: NodeId) {
        if !barge_in {
            self.typeahead.clear();
        }
        if prompts.is_empty() || (barge_in && !self.typeahead.is_empty()) {
            return self.enter(now, next);
        }
        self.play_items(prompts, AfterPlay::Next(next), barge_in);
    }

    fn intro_then_task(&mut self, now: Instant, prompts: &[PromptItem]) {
        self.typeahead.clear();
        if prompts.is_empty() {
            return self.start_task(now);
        }
        self.play_items(prompts, AfterPlay::Task, false);
    }

    fn play_items(&mut self, items: &[PromptItem], after: AfterPlay, barge_in: bool) {
        let prompts = self.resolve(items);
        self.next_play += 1;
        let id = PlayId(self.next_play);
        self.actions.push_back(FlowAction::Play {
            id,
            prompts,
            barge_in,
        });
        self.wait = Wait::Playing {
            id,
            after,
            barge_in,
        };
    }

    /// Prompt items to recordings: spoken values become their words in the call's language.
    fn resolve(&self, items: &[PromptItem]) -> Vec<PromptId> {
        let grammar = Grammar::for_language(&self.language);
        let mut out = Vec::new();
        for item in items {
            match item {
                PromptItem::Prompt(p) => out.push(*p),
                PromptItem::Say(how, e) => {
                    let value = e.eval(self).to_string();
                    for w in say::words(grammar, *how, &value) {
                        if let Some(id) = self.set.prompt_id(&format!("say/{w}")) {
                            out.push(id);
                        }
                    }
                }
            }
        }
        out
    }

    fn finish(&mut self) {
        self.wait = Wait::Finished;
        self.actions.push_back(FlowAction::Hangup);
    }
}

impl Scope for Interpreter {
    fn builtin(&self, b: Builtin) -> Value {
        // Expressions are evaluated as nodes are entered: that moment is "now" for them.
        let local = || {
            self.wall(self.last_now)
                .to_zoned_datetime(self.info.tz.clone())
        };
        match b {
            Builtin::Caller => Value::Text(self.info.caller.clone()),
            Builtin::Dialled => Value::Text(self.info.dialled.clone()),
            Builtin::Language => Value::Text(self.language.clone()),
            Builtin::Hour => Value::Num(local().hour() as f64),
            Builtin::Minute => Value::Num(local().minute() as f64),
            Builtin::Weekday => Value::Text(
                schedule::DAY_NAMES[schedule::weekday_index(local().weekday())].to_string(),
            ),
            Builtin::Date => Value::Text(local().date().to_string()),
            Builtin::Time => Value::Text(format!("{:02}:{:02}", local().hour(), local().minute())),
        }
    }

    fn var(&self, name: &str) -> Option<&str> {
        self.vars.get(name).map(String::as_str)
    }
}

/// Longest label value kept: a label is a category, not a document.
pub const MAX_LABEL_VALUE: usize = 64;

/// A label value as stored: no control characters, no surrounding space, bounded.
fn label_value(raw: &str) -> String {
    raw.chars()
        .filter(|c| !c.is_control())
        .collect::<String>()
        .trim()
        .chars()
        .take(MAX_LABEL_VALUE)
        .collect()
}

/// The interpreter's variables as they may be shown: sensitive values masked.
struct Shown<'a> {
    it: &'a Interpreter,
    masked: HashMap<&'a str, String>,
}

impl<'a> Shown<'a> {
    fn of(it: &'a Interpreter) -> Shown<'a> {
        let masked = it
            .sensitive
            .iter()
            .filter_map(|(k, &keep)| {
                let v = it.vars.get(k)?;
                Some((k.as_str(), crate::flow::masked(v, keep)))
            })
            .collect();
        Shown { it, masked }
    }
}

impl Scope for Shown<'_> {
    fn builtin(&self, b: Builtin) -> Value {
        self.it.builtin(b)
    }

    fn var(&self, name: &str) -> Option<&str> {
        match self.masked.get(name) {
            Some(m) => Some(m.as_str()),
            None => self.it.var(name),
        }
    }
}

/// "a.b.0.c" into a JSON value, as text: strings bare, numbers and booleans printed, null
/// and missing as nothing.
pub fn json_path(v: &serde_json::Value, path: &str) -> Option<String> {
    let mut cur = v;
    for part in path.split('.').filter(|p| !p.is_empty()) {
        cur = match cur {
            serde_json::Value::Object(m) => m.get(part)?,
            serde_json::Value::Array(a) => a.get(part.parse::<usize>().ok()?)?,
            _ => return None,
        };
    }
    match cur {
        serde_json::Value::String(s) => Some(s.clone()),
        serde_json::Value::Null => None,
        serde_json::Value::Bool(b) => Some(b.to_string()),
        serde_json::Value::Number(n) => Some(n.to_string()),
        other => Some(other.to_string()),
    }
}

#[cfg(test)]
#[path = "interpreter_tests.rs"]
mod tests;
