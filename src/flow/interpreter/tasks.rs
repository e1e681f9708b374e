//! The tasks a node hands to the engine and waits for (a look-up, a recording, a transfer,
//! a queue): starting them with their limits, and what each result leads to.

use super::*;

impl Interpreter {
    /// The answer to a `Lookup` action.
    pub fn on_lookup(&mut self, now: Instant, id: TaskId, result: LookupResult) {
        if !self.waiting_for(id, TaskKind::Lookup) {
            return;
        }
        self.steps = 0;
        let set = Arc::clone(&self.set);
        let NodeKind::Lookup(l) = &set.flow(self.flow).nodes[self.node.0 as usize].kind else {
            return;
        };
        match result {
            LookupResult::Ok(json) => {
                for (var, path) in &l.result {
                    let value = json_path(&json, path).unwrap_or_default();
                    self.vars.insert(var.clone(), value);
                    if l.sensitive.contains(var) {
                        self.sensitive.insert(var.clone(), 0);
                    } else {
                        self.sensitive.remove(var);
                    }
                }
                self.enter(now, l.next);
            }
            LookupResult::NotFound if let Some(target) = l.on_not_found => self.enter(now, target),
            LookupResult::NotFound | LookupResult::Failed(_) => {
                self.task_failed(now, TaskKind::Lookup)
            }
        }
    }

    pub fn on_record_done(&mut self, now: Instant, id: TaskId, outcome: RecordOutcome) {
        if !self.waiting_for(id, TaskKind::Record) {
            return;
        }
        self.steps = 0;
        let set = Arc::clone(&self.set);
        let NodeKind::Record(r) = &set.flow(self.flow).nodes[self.node.0 as usize].kind else {
            return;
        };
        match outcome {
            RecordOutcome::Saved { path, .. } => {
                if let Some(var) = &r.variable {
                    self.vars.insert(var.clone(), path.clone());
                }
                self.recordings.push(path);
                self.enter(now, r.next);
            }
            RecordOutcome::Nothing => self.task_failed(now, TaskKind::Record),
        }
    }

    /// The transfer target answered: the caller is now talking to it, and the flow waits
    /// until the call ends.
    pub fn on_transfer_connected(&mut self, id: TaskId) {
        if self.waiting_for(id, TaskKind::Transfer) {
            self.wait = Wait::Task {
                id,
                kind: TaskKind::Bridged,
                deadline: None,
            };
        }
    }

    /// The connected target hung up: true when the flow goes on at the transfer node's
    /// `answered` exit (the caller is back in the flow, e.g. for a survey), false when the
    /// call ends with it.
    pub fn on_transfer_ended(&mut self, now: Instant, id: TaskId) -> bool {
        if !self.waiting_for(id, TaskKind::Bridged) {
            return false;
        }
        let set = Arc::clone(&self.set);
        let NodeKind::Transfer(t) = &set.flow(self.flow).nodes[self.node.0 as usize].kind else {
            return false;
        };
        let Some(next) = t.answered else {
            return false;
        };
        self.steps = 0;
        self.enter(now, next);
        true
    }

    pub fn on_transfer_failed(&mut self, now: Instant, id: TaskId, reason: &str) {
        if self.waiting_for(id, TaskKind::Transfer) {
            tracing::info!(
                flow = self.flow_name(),
                node = self.node_name(),
                reason,
                "transfer failed"
            );
            self.steps = 0;
            self.task_failed(now, TaskKind::Transfer);
        }
    }

    pub fn on_queue_exit(&mut self, now: Instant, id: TaskId, exit: QueueExit) {
        if !self.waiting_for(id, TaskKind::Queue) {
            return;
        }
        self.steps = 0;
        let set = Arc::clone(&self.set);
        let NodeKind::Queue(q) = &set.flow(self.flow).nodes[self.node.0 as usize].kind else {
            return;
        };
        let target = match exit {
            QueueExit::Answered => q.answered,
            QueueExit::Timeout => q.on_timeout,
            QueueExit::Full => q.full,
            QueueExit::NoAgents => q.no_agents,
            QueueExit::Key(k) => match q.keys.iter().find(|(c, _)| *c == k) {
                Some((_, node)) => Some(*node),
                // Not one of this node's keys: the caller is still waiting.
                None => return,
            },
        };
        match target {
            Some(t) => self.enter(now, t),
            None => self.finish(),
        }
    }

    pub(super) fn task(&mut self, now: Instant, kind: TaskKind, limit: Option<Duration>) -> TaskId {
        self.next_task += 1;
        let id = TaskId(self.next_task);
        self.wait = Wait::Task {
            id,
            kind,
            deadline: limit.map(|l| now + l),
        };
        id
    }

    pub(super) fn start_task(&mut self, now: Instant) {
        let set = Arc::clone(&self.set);
        match &set.flow(self.flow).nodes[self.node.0 as usize].kind {
            NodeKind::Record(r) => {
                let id = self.task(now, TaskKind::Record, Some(r.max_length + TASK_GRACE));
                self.actions.push_back(FlowAction::Record {
                    id,
                    max_length: r.max_length,
                    silence: r.silence,
                });
            }
            NodeKind::Transfer(t) => {
                let (target, is_number) = match &t.target {
                    TransferTarget::Uri(u) => (u.render(&*self, |s| s.to_string()), false),
                    TransferTarget::Number(n) => (n.render(&*self, |s| s.to_string()), true),
                };
                let id = self.task(now, TaskKind::Transfer, Some(t.ring_timeout + TASK_GRACE));
                let shown = Shown::of(self);
                let headers = t
                    .headers
                    .iter()
                    .map(|(name, value)| {
                        let v: String = value
                            .render(&shown, |s| s.to_string())
                            .chars()
                            .filter(|c| !c.is_control())
                            .collect();
                        (name.clone(), v)
                    })
                    .collect();
                self.actions.push_back(FlowAction::Transfer {
                    id,
                    target,
                    is_number,
                    ring_timeout: t.ring_timeout,
                    headers,
                });
            }
            NodeKind::Queue(q) => {
                let plain = |s: &str| s.to_string();
                let queue = q.queue.template.render(&*self, plain).trim().to_string();
                let text = q.priority.template.render(&*self, plain);
                let priority = match text.trim().parse::<u64>() {
                    Ok(p) => p.min(100) as u8,
                    Err(_) => {
                        if !text.trim().is_empty() {
                            tracing::warn!(
                                flow = self.flow_name(),
                                node = self.node_name(),
                                priority = %text,
                                "queue priority is not a whole number; using 0"
                            );
                        }
                        0
                    }
                };
                let mut skills: Vec<String> = Vec::new();
                for s in &q.skills {
                    let text = s.template.render(&*self, plain);
                    for skill in text.split(|c: char| c == ',' || c.is_whitespace()) {
                        if !skill.is_empty() && !skills.iter().any(|x| x == skill) {
                            skills.push(skill.to_string());
                        }
                    }
                }
                let record = q.record.as_ref().and_then(|r| {
                    let text = r.template.render(&*self, plain);
                    let yes = super::nodes::yes_no(&text);
                    if yes.is_none() {
                        tracing::warn!(
                            flow = self.flow_name(),
                            node = self.node_name(),
                            record = %text,
                            "queue `record` is not yes or no; the queue decides"
                        );
                    }
                    yes
                });
                let id = self.task(now, TaskKind::Queue, None);
                self.actions.push_back(FlowAction::Queue {
                    record,
                    id,
                    queue,
                    priority,
                    skills,
                    timeout: q.timeout,
                    keys: q.keys.iter().map(|(k, _)| *k).collect(),
                });
            }
            _ => {}
        }
    }

    pub(super) fn task_failed(&mut self, now: Instant, kind: TaskKind) {
        let set = Arc::clone(&self.set);
        let target = match (&set.flow(self.flow).nodes[self.node.0 as usize].kind, kind) {
            (NodeKind::Lookup(l), _) => l.on_failure,
            (NodeKind::Record(r), _) => r.on_failure,
            (NodeKind::Transfer(t), TaskKind::Transfer) => t.on_failure,
            (NodeKind::Queue(q), _) => q.on_timeout,
            _ => None,
        };
        match target {
            Some(t) => self.enter(now, t),
            None => self.finish(),
        }
    }
}
