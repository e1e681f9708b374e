//! A call without a call: the interpreter driven on a virtual clock, prompts finishing at
//! once, keys pressed from a list when the flow waits for them, and the outside world
//! (back ends, queues, transfers, recordings) answered by an `Outside`. The same walk serves
//! `hotline try` and the admins' flow tests.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use super::interpreter::{
    CallInfo, FlowAction, Interpreter, LookupRequest, LookupResult, RecordOutcome,
};
use super::{FlowId, FlowSet, NodeKind, QueueExit};

/// How the world outside the flow answers during a walk.
pub trait Outside {
    fn lookup(&mut self, node: &str, request: &LookupRequest) -> LookupResult;
    fn queue(&mut self, node: &str, queue: &str) -> QueueExit;
    /// True: the target answers and the caller is connected (the walk ends there).
    fn transfer(&mut self, node: &str, target: &str) -> bool;
    fn record(&mut self, node: &str) -> RecordOutcome;
}

#[derive(Debug, Clone, PartialEq)]
pub enum Step {
    /// A node entered, by the exit named (empty for a plain `next`).
    Node {
        name: String,
        kind: &'static str,
        exit: String,
    },
    /// Prompts played, by name, in the call's language at that moment.
    Play {
        prompts: Vec<String>,
        language: String,
    },
    Keys(String),
    /// Nothing pressed: the flow's timer ran out after this long.
    Timeout(Duration),
    Lookup {
        url: String,
        result: LookupResult,
    },
    Record(RecordOutcome),
    Transfer {
        target: String,
        connected: bool,
    },
    Queue {
        queue: String,
        exit: QueueExit,
    },
    Hangup,
    /// The walk stopped before the call would have ended.
    Stopped(String),
}

pub struct Walk {
    pub steps: Vec<Step>,
    pub path: Vec<String>,
    pub vars: Vec<(String, String)>,
    /// The same variables as they may be shown (sensitive values masked).
    pub shown_vars: Vec<(String, String)>,
    pub survey: Vec<(String, String)>,
    pub language: String,
    /// The CDR labels the call would get (sensitive parts already masked).
    pub labels: Vec<(String, String)>,
}

/// Bounds, so a flow that never ends does not make a walk run for ever.
const MAX_STEPS: usize = 2000;
const MAX_VIRTUAL_TIME: Duration = Duration::from_secs(4 * 3600);

pub fn walk(
    set: &Arc<FlowSet>,
    flow: FlowId,
    info: CallInfo,
    presses: &[String],
    outside: &mut dyn Outside,
) -> Walk {
    let start = info.started;
    let mut now = start;
    let mut it = Interpreter::new(Arc::clone(set), flow, info);
    let mut presses: VecDeque<&String> = presses.iter().collect();
    let mut steps = Vec::new();
    let mut seen_path = 0;
    let mut playing = None;
    it.start(now);
    let mut finished = false;
    while !finished && steps.len() < MAX_STEPS {
        record_nodes(&it, set, &mut seen_path, &mut steps);
        let mut acted = false;
        while let Some(action) = it.poll_action() {
            acted = true;
            let node = it.node_name().to_string();
            match action {
                FlowAction::Play { id, prompts, .. } => {
                    steps.push(Step::Play {
                        prompts: prompts
                            .iter()
                            .map(|p| set.prompt_name(*p).to_string())
                            .collect(),
                        language: it.language().to_string(),
                    });
                    playing = Some(id);
                }
                FlowAction::StopPlayback => playing = None,
                FlowAction::Lookup { id, request } => {
                    let result = outside.lookup(&node, &request);
                    steps.push(Step::Lookup {
                        url: request.shown_url.clone(),
                        result: result.clone(),
                    });
                    it.on_lookup(now, id, result);
                }
                FlowAction::Record { id, .. } => {
                    let outcome = outside.record(&node);
                    steps.push(Step::Record(outcome.clone()));
                    it.on_record_done(now, id, outcome);
                }
                FlowAction::StopRecording { .. } => {}
                FlowAction::Transfer { id, target, .. } => {
                    let connected = outside.transfer(&node, &target);
                    steps.push(Step::Transfer {
                        target: target.clone(),
                        connected,
                    });
                    if connected {
                        it.on_transfer_connected(id);
                        finished = true;
                    } else {
                        it.on_transfer_failed(now, id, "dry run: not answered");
                    }
                }
                FlowAction::Queue {
                    id, queue, keys, ..
                } => {
                    let exit = match outside.queue(&node, &queue) {
                        // A key the node does not offer does nothing: the caller waits on.
                        QueueExit::Key(k) if !keys.contains(&k) => QueueExit::Timeout,
                        exit => exit,
                    };
                    steps.push(Step::Queue {
                        queue: queue.clone(),
                        exit,
                    });
                    it.on_queue_exit(now, id, exit);
                }
                FlowAction::Hangup => {
                    steps.push(Step::Hangup);
                    finished = true;
                }
            }
            record_nodes(&it, set, &mut seen_path, &mut steps);
        }
        if finished || it.is_finished() {
            break;
        }
        if acted {
            continue;
        }
        if now.duration_since(start) > MAX_VIRTUAL_TIME {
            steps.push(Step::Stopped("four hours of virtual time passed".into()));
            break;
        }
        // Prompts play to their end; keys are pressed when the flow listens for them.
        if let Some(id) = playing.take() {
            now += Duration::from_millis(100);
            it.on_play_done(now, id);
            continue;
        }
        match (presses.pop_front(), it.poll_timeout()) {
            (Some(keys), Some(_)) => {
                steps.push(Step::Keys(if it.in_sensitive_entry() {
                    "x".repeat(keys.chars().count())
                } else {
                    keys.clone()
                }));
                for k in keys.chars() {
                    now += Duration::from_millis(200);
                    it.on_digit(now, k);
                }
            }
            (_, Some(deadline)) => {
                steps.push(Step::Timeout(deadline.saturating_duration_since(now)));
                now = deadline;
                it.on_timeout(now);
            }
            (_, None) => {
                steps.push(Step::Stopped(
                    "the flow waits for something a dry run cannot give".into(),
                ));
                break;
            }
        }
    }
    record_nodes(&it, set, &mut seen_path, &mut steps);
    if steps.len() >= MAX_STEPS {
        steps.push(Step::Stopped(format!(
            "{MAX_STEPS} steps without the call ending"
        )));
    }
    let mut vars: Vec<(String, String)> = it
        .vars()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    vars.sort();
    let mut shown_vars: Vec<(String, String)> =
        it.shown_vars().map(|(k, v)| (k.to_string(), v)).collect();
    shown_vars.sort();
    Walk {
        steps,
        path: it.path().to_vec(),
        vars,
        shown_vars,
        survey: it.survey_answers().to_vec(),
        language: it.language().to_string(),
        labels: it.labels().to_vec(),
    }
}

/// Steps for the nodes entered since last time, each with the exit it was reached by.
fn record_nodes(it: &Interpreter, set: &FlowSet, seen: &mut usize, steps: &mut Vec<Step>) {
    let path = it.path();
    while *seen < path.len() {
        let entry = &path[*seen];
        let (flow_name, node_name) = entry.split_once(':').unwrap_or(("", entry));
        let kind = lookup_kind(set, flow_name, node_name, it);
        let exit = if *seen == 0 {
            String::new()
        } else {
            let prev = &path[*seen - 1];
            let (pf, pn) = prev.split_once(':').unwrap_or(("", prev));
            exit_label(set, pf, pn, node_name, it)
        };
        steps.push(Step::Node {
            name: entry.clone(),
            kind,
            exit,
        });
        *seen += 1;
    }
}

fn find_node<'a>(
    set: &'a FlowSet,
    flow: &str,
    node: &str,
    it: &Interpreter,
) -> Option<&'a super::Node> {
    let flow_id = if flow.is_empty() {
        set.flow_by_name(it.entry_flow_name())?
    } else {
        set.flow_by_name(flow)?
    };
    set.flow(flow_id).nodes.iter().find(|n| n.name == node)
}

fn lookup_kind(set: &FlowSet, flow: &str, node: &str, it: &Interpreter) -> &'static str {
    find_node(set, flow, node, it).map_or("?", |n| n.kind.type_name())
}

fn exit_label(set: &FlowSet, flow: &str, from: &str, to: &str, it: &Interpreter) -> String {
    let Some(node) = find_node(set, flow, from, it) else {
        return String::new();
    };
    if matches!(node.kind, NodeKind::Subflow { .. } | NodeKind::Return) {
        return String::new();
    }
    let target = find_node(set, flow, to, it).map(|n| n.name.as_str());
    let flow_nodes = {
        let id = if flow.is_empty() {
            set.flow_by_name(it.entry_flow_name())
        } else {
            set.flow_by_name(flow)
        };
        id.map(|i| &set.flow(i).nodes)
    };
    let Some(nodes) = flow_nodes else {
        return String::new();
    };
    let labels: Vec<String> = node
        .kind
        .exits()
        .into_iter()
        .filter(|(_, n)| Some(nodes[n.0 as usize].name.as_str()) == target)
        .map(|(label, _)| label)
        .collect();
    if labels.len() == 1 {
        labels[0].clone()
    } else {
        String::new()
    }
}
