//! Keys: prompting for input, the first-digit, inter-digit and total timeouts, collecting
//! digits, confirmations and survey answers, retries and giving up, and what of the entry may
//! be shown (sensitive entries never).

use super::*;

impl Interpreter {
    /// Play an input node's prompt, unless the caller already typed ahead.
    pub(super) fn prompt_for_input(&mut self, now: Instant, prompts: &[PromptItem]) {
        if !self.typeahead.is_empty() {
            // Typed ahead into a sensitive entry: those keys, the last ones recorded, were
            // recorded before anyone knew.
            if let NodeKind::Collect(c) = self.kind()
                && c.sensitive.is_some()
            {
                let terminator = c.terminator;
                let n = self.typeahead.chars().count();
                let from = self.digits.len().saturating_sub(n);
                self.digits = self.digits[..from]
                    .chars()
                    .chain(
                        self.digits[from..]
                            .chars()
                            .map(|d| if Some(d) == terminator { d } else { 'x' }),
                    )
                    .collect();
            }
            self.listen(now, false);
            // One key at a time: a key that moves the call on leaves the rest for the nodes
            // after, as if the caller had typed them there.
            while matches!(self.wait, Wait::Digits { .. }) && !self.typeahead.is_empty() {
                let k = self.typeahead.remove(0);
                self.input(now, k);
            }
            return;
        }
        if prompts.is_empty() {
            return self.listen(now, true);
        }
        self.play_items(prompts, AfterPlay::Listen, true);
    }

    pub(super) fn listen(&mut self, now: Instant, fresh: bool) {
        if fresh {
            self.buffer.clear();
        }
        let (timeout, total) = match self.kind() {
            NodeKind::Menu(m) => (m.timeout, None),
            NodeKind::Collect(c) => (c.first_digit_timeout, c.total_timeout),
            _ => return,
        };
        self.wait = Wait::Digits {
            deadline: now + timeout,
            total: total.map(|t| now + t),
        };
    }

    pub(super) fn restart_inter_digit(&mut self, now: Instant, timeout: Duration) {
        let total = match self.wait {
            Wait::Digits { total, .. } => total,
            _ => None,
        };
        self.wait = Wait::Digits {
            deadline: now + timeout,
            total,
        };
    }

    pub(super) fn input(&mut self, now: Instant, digit: char) {
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
                    (_, true) => self.restart_inter_digit(now, menu.inter_digit_timeout),
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
                    self.late_terminator = c.terminator.map(|t| (t, now + c.inter_digit_timeout));
                    self.collect_done(now);
                } else {
                    self.restart_inter_digit(now, c.inter_digit_timeout);
                }
            }
            _ => {}
        }
    }

    pub(super) fn digits_timeout(&mut self, now: Instant) {
        let set = Arc::clone(&self.set);
        match &set.flow(self.flow).nodes[self.node.0 as usize].kind {
            NodeKind::Menu(menu) => {
                let exact = menu
                    .choices
                    .iter()
                    .find(|(k, _)| *k == self.buffer)
                    .map(|c| c.1);
                match (self.buffer.is_empty(), exact, menu.default) {
                    (true, _, Some(default)) => self.enter(now, default),
                    (true, _, None) => self.fail(now, true),
                    (false, Some(target), _) => self.enter(now, target),
                    (false, None, _) => self.fail(now, false),
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

    pub(super) fn collect_done(&mut self, now: Instant) {
        let set = Arc::clone(&self.set);
        let NodeKind::Collect(c) = &set.flow(self.flow).nodes[self.node.0 as usize].kind else {
            return;
        };
        let value = std::mem::take(&mut self.buffer);
        if let Some(p) = &c.pattern
            && !p.is_match(&value)
        {
            return self.fail(now, false);
        }
        match &c.confirm {
            None => {
                self.store_entry(c, value);
                self.enter(now, c.next)
            }
            Some(k) => {
                let mut items = k.before.clone();
                items.push(PromptItem::Say(
                    SayAs::Digits,
                    Expr::Lit(Value::Text(value.clone())),
                ));
                items.extend(k.after.iter().cloned());
                self.pending = Some(value);
                self.play_items(&items, AfterPlay::Confirm, true);
            }
        }
    }

    /// A collect's entry becomes its variable. A sensitive one is marked so, and the record
    /// of keys shows the trailing digits the flow allows (the rest stay masked).
    pub(super) fn store_entry(&mut self, c: &crate::flow::Collect, value: String) {
        match c.sensitive {
            Some(keep_last) => {
                let mut reveal: Vec<char> = value.chars().rev().take(keep_last as usize).collect();
                let mut digits: Vec<char> = self.digits.chars().collect();
                for d in digits.iter_mut().rev() {
                    if reveal.is_empty() {
                        break;
                    }
                    if *d == 'x' {
                        *d = reveal.remove(0);
                    }
                }
                self.digits = digits.into_iter().collect();
                self.sensitive.insert(c.variable.clone(), keep_last);
            }
            None => {
                self.sensitive.remove(&c.variable);
            }
        }
        self.vars.insert(c.variable.clone(), value);
    }

    /// Variables as they may be shown: sensitive values masked.
    pub fn shown_vars(&self) -> impl Iterator<Item = (&str, String)> {
        self.vars.iter().map(|(k, v)| {
            let shown = match self.sensitive.get(k) {
                Some(&keep) => crate::flow::masked(v, keep),
                None => v.clone(),
            };
            (k.as_str(), shown)
        })
    }

    /// Whether the flow is taking a sensitive entry now: keys pressed are the secret.
    pub fn in_sensitive_entry(&self) -> bool {
        matches!(
            self.wait,
            Wait::Digits { .. }
                | Wait::Playing {
                    after: AfterPlay::Listen,
                    ..
                }
        ) && matches!(self.kind(), NodeKind::Collect(c) if c.sensitive.is_some())
    }

    /// Whether a variable holds a sensitive value.
    pub fn is_sensitive(&self, name: &str) -> bool {
        self.sensitive.contains_key(name)
    }

    /// A key (or None: the time ran out) while a read-back waits for yes or no.
    pub(super) fn confirm_key(&mut self, now: Instant, key: Option<char>) {
        let set = Arc::clone(&self.set);
        let NodeKind::Collect(c) = &set.flow(self.flow).nodes[self.node.0 as usize].kind else {
            return;
        };
        let Some(k) = &c.confirm else { return };
        match key {
            Some(d) if d == k.yes => {
                let value = self.pending.take().unwrap_or_default();
                self.store_entry(c, value);
                self.enter(now, c.next)
            }
            Some(d) if d == k.no => {
                self.pending = None;
                self.failures += 1;
                if self.failures >= c.max_attempts {
                    return self.give_up(now, c.on_failure);
                }
                self.play_items(&c.prompts, AfterPlay::Listen, true)
            }
            _ => {
                self.failures += 1;
                if self.failures >= c.max_attempts {
                    return self.give_up(now, c.on_failure);
                }
                let value = self.pending.clone().unwrap_or_default();
                let mut items = if key.is_some() {
                    c.invalid_prompts.clone()
                } else {
                    Vec::new()
                };
                items.extend(k.before.iter().cloned());
                items.push(PromptItem::Say(
                    SayAs::Digits,
                    Expr::Lit(Value::Text(value)),
                ));
                items.extend(k.after.iter().cloned());
                self.play_items(&items, AfterPlay::Confirm, true)
            }
        }
    }

    /// A key (or None on timeout) for the current survey question.
    pub(super) fn answer_key(&mut self, now: Instant, key: Option<char>) {
        let set = Arc::clone(&self.set);
        let NodeKind::Survey(s) = &set.flow(self.flow).nodes[self.node.0 as usize].kind else {
            return;
        };
        let Some(q) = s.questions.get(self.question) else {
            return self.enter(now, s.next);
        };
        let valid = key.filter(|k| q.answers.contains(k));
        if valid.is_none() {
            self.failures += 1;
            if self.failures < s.max_attempts {
                let mut items = if key.is_some() {
                    s.invalid_prompts.clone()
                } else {
                    Vec::new()
                };
                items.extend(q.prompts.iter().cloned());
                return self.play_items(&items, AfterPlay::Answer, true);
            }
        }
        if let Some(k) = valid {
            self.survey.push((q.id.clone(), k.to_string()));
            self.vars.insert(q.id.clone(), k.to_string());
        }
        self.failures = 0;
        self.question += 1;
        match s.questions.get(self.question) {
            Some(next) => self.play_items(&next.prompts, AfterPlay::Answer, true),
            None => self.enter(now, s.next),
        }
    }

    /// Wrong or missing input: retry with the error prompt, or take the failure exit.
    pub(super) fn fail(&mut self, now: Instant, timed_out: bool) {
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
                    m.short_prompts.as_ref().unwrap_or(&m.prompts),
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
            return self.give_up(now, on_failure);
        }
        let mut replay = error_prompts.clone();
        replay.extend(prompts.iter().cloned());
        if replay.is_empty() {
            return self.listen(now, true);
        }
        self.play_items(&replay, AfterPlay::Listen, true);
    }

    pub(super) fn give_up(&mut self, now: Instant, on_failure: Option<NodeId>) {
        match on_failure {
            Some(target) => self.enter(now, target),
            None => self.finish(),
        }
    }
}
