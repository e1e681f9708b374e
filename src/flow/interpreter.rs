//! One call's walk through a flow: a sans-IO state machine. Events in (`start`, `on_digit`,
//! `on_play_done`, `on_timeout`, all with `now`), actions out (`poll_action`), and the one
//! deadline it waits for (`poll_timeout`).
//!
//! The timer model, one rule each, all unit-tested on a virtual clock:
//! - an input node's first-digit timeout starts when its prompt ends or is interrupted;
//! - each digit restarts the inter-digit timeout;
//! - prompts of menus and collects, and their retry prompts, can always be interrupted by a
//!   key, and that key counts as input; a `play` node is interrupted only with `barge_in`,
//!   and the key then carries over to the next input node;
//! - keys pressed during a prompt that cannot be interrupted are ignored.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::Instant;

use super::{FlowId, FlowSet, NodeId, NodeKind, PromptId};

/// Names one playback request, so a late "done" for an earlier one is told apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct PlayId(pub u32);

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FlowAction {
    Play {
        id: PlayId,
        prompts: Vec<PromptId>,
        barge_in: bool,
    },
    StopPlayback,
    Hangup,
}

/// A flow that moves this many times without waiting for the caller or a prompt is stuck in
/// a loop; the call is ended rather than spinning.
const MAX_STEPS_WITHOUT_WAIT: u32 = 64;
/// What a call keeps of its path and keys for the CDR; a caller looping in a menu for hours
/// must not grow memory without end.
const MAX_PATH: usize = 500;
const MAX_DIGITS: usize = 256;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum AfterPlay {
    /// A play node finished: go on.
    Next(NodeId),
    /// An input node's prompt finished: start listening.
    Listen,
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
    },
    Finished,
}

pub struct Interpreter {
    set: Arc<FlowSet>,
    flow: FlowId,
    node: NodeId,
    wait: Wait,
    buffer: String,
    typeahead: String,
    failures: u32,
    steps: u32,
    next_play: u32,
    actions: VecDeque<FlowAction>,
    path: Vec<String>,
    digits: String,
    vars: HashMap<String, String>,
    stuck: bool,
}

impl Interpreter {
    pub fn new(set: Arc<FlowSet>, flow: FlowId) -> Self {
        let start = set.flow(flow).start;
        Interpreter {
            set,
            flow,
            node: start,
            wait: Wait::Nothing,
            buffer: String::new(),
            typeahead: String::new(),
            failures: 0,
            steps: 0,
            next_play: 0,
            actions: VecDeque::new(),
            path: Vec::new(),
            digits: String::new(),
            vars: HashMap::new(),
            stuck: false,
        }
    }

    pub fn flow_name(&self) -> &str {
        &self.set.flow(self.flow).name
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
            Wait::Digits { deadline } => Some(deadline),
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
            self.digits.push(digit);
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
            Wait::Playing {
                after: AfterPlay::Listen,
                ..
            } => {
                self.actions.push_back(FlowAction::StopPlayback);
                self.input(now, digit);
            }
            Wait::Digits { .. } => self.input(now, digit),
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
        }
    }

    pub fn on_timeout(&mut self, now: Instant) {
        let Wait::Digits { deadline } = self.wait else {
            return;
        };
        if now < deadline {
            return;
        }
        self.steps = 0;
        let node = self.node;
        match &self.set.flow(self.flow).nodes[node.0 as usize].kind {
            NodeKind::Menu(menu) => {
                let exact = menu
                    .choices
                    .iter()
                    .find(|(k, _)| *k == self.buffer)
                    .map(|c| c.1);
                match (self.buffer.is_empty(), exact) {
                    (true, _) => self.fail(now, true),
                    (false, Some(target)) => self.enter(now, target),
                    (false, None) => self.fail(now, false),
                }
            }
            NodeKind::Collect(c) => {
                let len = self.buffer.chars().count() as u32;
                if len == 0 && c.min_digits > 0 {
                    self.fail(now, true);
                } else if len >= c.min_digits {
                    self.collect_done(now);
                } else {
                    self.fail(now, false);
                }
            }
            _ => {}
        }
    }

    fn enter(&mut self, now: Instant, node: NodeId) {
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
            self.path.push(n.name.clone());
        }
        self.buffer.clear();
        self.failures = 0;
        match &n.kind {
            NodeKind::Play {
                prompts,
                barge_in,
                next,
            } => {
                if !*barge_in {
                    self.typeahead.clear();
                }
                if prompts.is_empty() {
                    return self.enter(now, *next);
                }
                if *barge_in && !self.typeahead.is_empty() {
                    return self.enter(now, *next);
                }
                self.play(prompts.clone(), AfterPlay::Next(*next), *barge_in);
            }
            NodeKind::Menu(m) => self.prompt_for_input(now, m.prompts.clone()),
            NodeKind::Collect(c) => self.prompt_for_input(now, c.prompts.clone()),
            NodeKind::Goto { next } => self.enter(now, *next),
            NodeKind::Hangup => self.finish(),
        }
    }

    /// Play an input node's prompt, unless the caller already typed ahead.
    fn prompt_for_input(&mut self, now: Instant, prompts: Vec<PromptId>) {
        if !self.typeahead.is_empty() {
            let keys: Vec<char> = std::mem::take(&mut self.typeahead).chars().collect();
            self.listen(now, false);
            for k in keys {
                if !matches!(self.wait, Wait::Digits { .. }) {
                    break;
                }
                self.input(now, k);
            }
            return;
        }
        if prompts.is_empty() {
            return self.listen(now, true);
        }
        self.play(prompts, AfterPlay::Listen, true);
    }

    fn play(&mut self, prompts: Vec<PromptId>, after: AfterPlay, barge_in: bool) {
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

    fn listen(&mut self, now: Instant, fresh: bool) {
        if fresh {
            self.buffer.clear();
        }
        let timeout = match &self.set.flow(self.flow).nodes[self.node.0 as usize].kind {
            NodeKind::Menu(m) => m.timeout,
            NodeKind::Collect(c) => c.first_digit_timeout,
            _ => return,
        };
        self.wait = Wait::Digits {
            deadline: now + timeout,
        };
    }

    fn input(&mut self, now: Instant, digit: char) {
        let set = Arc::clone(&self.set);
        match &set.flow(self.flow).nodes[self.node.0 as usize].kind {
            NodeKind::Menu(menu) => {
                self.buffer.push(digit);
                let exact = menu
                    .choices
                    .iter()
                    .find(|(k, _)| *k == self.buffer)
                    .map(|c| c.1);
                let longer = menu
                    .choices
                    .iter()
                    .any(|(k, _)| k.len() > self.buffer.len() && k.starts_with(&self.buffer));
                match (exact, longer) {
                    (Some(target), false) => self.enter(now, target),
                    (_, true) => {
                        self.wait = Wait::Digits {
                            deadline: now + menu.inter_digit_timeout,
                        }
                    }
                    (None, false) => self.fail(now, false),
                }
            }
            NodeKind::Collect(c) => {
                if Some(digit) == c.terminator {
                    if self.buffer.chars().count() as u32 >= c.min_digits {
                        self.collect_done(now);
                    } else {
                        self.fail(now, false);
                    }
                    return;
                }
                self.buffer.push(digit);
                if self.buffer.chars().count() as u32 >= c.max_digits {
                    self.collect_done(now);
                } else {
                    self.wait = Wait::Digits {
                        deadline: now + c.inter_digit_timeout,
                    };
                }
            }
            _ => {}
        }
    }

    fn collect_done(&mut self, now: Instant) {
        let set = Arc::clone(&self.set);
        if let NodeKind::Collect(c) = &set.flow(self.flow).nodes[self.node.0 as usize].kind {
            self.vars
                .insert(c.variable.clone(), std::mem::take(&mut self.buffer));
            self.enter(now, c.next);
        }
    }

    /// Wrong or missing input: retry with the error prompt, or take the failure exit.
    fn fail(&mut self, now: Instant, timed_out: bool) {
        let set = Arc::clone(&self.set);
        let (limit, on_failure, error_prompts, prompts) =
            match &set.flow(self.flow).nodes[self.node.0 as usize].kind {
                NodeKind::Menu(m) => (
                    m.max_failures,
                    m.on_failure,
                    if timed_out {
                        &m.timeout_prompts
                    } else {
                        &m.invalid_prompts
                    },
                    &m.prompts,
                ),
                NodeKind::Collect(c) => (
                    c.max_attempts,
                    c.on_failure,
                    if timed_out {
                        &c.timeout_prompts
                    } else {
                        &c.invalid_prompts
                    },
                    &c.prompts,
                ),
                _ => return,
            };
        self.failures += 1;
        self.buffer.clear();
        if self.failures >= limit {
            return match on_failure {
                Some(target) => self.enter(now, target),
                None => self.finish(),
            };
        }
        let mut replay = error_prompts.clone();
        replay.extend_from_slice(prompts);
        if replay.is_empty() {
            return self.listen(now, true);
        }
        self.play(replay, AfterPlay::Listen, true);
    }

    fn finish(&mut self) {
        self.wait = Wait::Finished;
        self.actions.push_back(FlowAction::Hangup);
    }
}

#[cfg(test)]
#[path = "interpreter_tests.rs"]
mod tests;
