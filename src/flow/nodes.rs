//! One flow's nodes, from their TOML tables to `NodeKind`s: each node type reads exactly the
//! keys it knows (the rest are reported as unknown), every node name, flow name, prompt,
//! expression, pattern, time and duration is resolved or parsed here, once.

use std::collections::HashMap;
use std::time::Duration;

use toml::de::DeValue;

use super::calendar::{self, Calendar};
use super::compile::node_tables;
use super::expr::{self, Expr, Template};
use super::say::{Grammar, SayAs};
use super::schedule::{self, Schedule, Span};
use super::schema::{Diagnostics, Located, Sink, Sp, Table, Value, Warning, kind_of, suggest};
use super::*;
use crate::core::duration::parse_duration;

/// A timer that fires at once would let a flow spin without waiting.
const MIN_TIMEOUT: Duration = Duration::from_millis(100);

pub const NODE_TYPES: [&str; 18] = [
    "play",
    "menu",
    "collect",
    "set",
    "label",
    "branch",
    "goto",
    "subflow",
    "return",
    "schedule",
    "announcement",
    "language",
    "lookup",
    "record",
    "survey",
    "transfer",
    "queue",
    "hangup",
];

/// What all flows of one load share: the prompt table, switches and languages.
pub struct Shared {
    prompts: Vec<String>,
    sites: Vec<Located>,
    ids: HashMap<String, PromptId>,
    switches: Vec<(String, Template)>,
    languages: Vec<(String, Located)>,
    say_site: Option<Located>,
    /// The calendars of `<flows>/calendars/`, and which schedules named.
    calendars: HashMap<String, Calendar>,
    calendars_used: Vec<String>,
}

impl Shared {
    pub fn new(calendars: HashMap<String, Calendar>) -> Shared {
        Shared {
            prompts: Vec::new(),
            sites: Vec::new(),
            ids: HashMap::new(),
            switches: Vec::new(),
            languages: Vec::new(),
            say_site: None,
            calendars,
            calendars_used: Vec::new(),
        }
    }

    fn prompt(&mut self, name: &str, at: Located) -> PromptId {
        if let Some(id) = self.ids.get(name) {
            return *id;
        }
        let id = PromptId(self.prompts.len() as u32);
        self.prompts.push(name.to_string());
        self.sites.push(at);
        self.ids.insert(name.to_string(), id);
        id
    }

    pub fn language(&mut self, lang: &str, at: Located, sink: &mut Sink) {
        if !valid_name(lang) {
            sink.out.errors.push(FlowError::At {
                message: format!(
                    "{lang:?} is not a language folder name (letters, digits, - and _)"
                ),
                at,
            });
            return;
        }
        if !self.languages.iter().any(|(l, _)| l == lang) {
            self.languages.push((lang.to_string(), at));
        }
    }

    fn switch(&mut self, text: &str, template: &Template) {
        if !self.switches.iter().any(|(t, _)| t == text) {
            self.switches.push((text.to_string(), template.clone()));
        }
    }

    /// Hand the shared tables to the set; spoken values register every word of every grammar
    /// as `say/<word>` prompts (the catalog asks each language only for its own words).
    pub fn finish(mut self, set: &mut FlowSet, diags: &mut Diagnostics) {
        let mut unused: Vec<(&String, &Calendar)> = self
            .calendars
            .iter()
            .filter(|(name, _)| !self.calendars_used.contains(name))
            .collect();
        unused.sort_by(|a, b| a.0.cmp(b.0));
        for (name, c) in unused {
            diags.warnings.push(Warning {
                message: format!(
                    "calendar {name:?} is named by no schedule (add calendar = {name:?} to one)"
                ),
                at: c.at.clone(),
            });
        }
        if let Some(at) = self.say_site.take() {
            for g in [Grammar::English, Grammar::Chinese] {
                for w in g.words() {
                    self.prompt(&format!("say/{w}"), at.clone());
                }
            }
        }
        set.prompts = self.prompts;
        set.prompt_sites = self.sites;
        set.prompt_index = self.ids;
        set.switches = self.switches;
        set.languages = self.languages;
    }
}

/// Outside its `{holes}`, a switch template holds only what a switch name may.
fn switch_template_ok(text: &str) -> bool {
    let mut depth = 0;
    !text.is_empty()
        && text.chars().all(|c| match c {
            '{' => {
                depth += 1;
                true
            }
            '}' => {
                depth -= 1;
                true
            }
            c => depth > 0 || c.is_ascii_alphanumeric() || c == '_' || c == '-',
        })
}

/// Label names are column-like: reports and SQL name them.
pub const MAX_LABEL_NAME: usize = 32;

fn valid_label(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= MAX_LABEL_NAME
        && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

fn valid_name(s: &str) -> bool {
    !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

struct Ctx<'a, 's, 'f> {
    sink: &'a mut Sink<'s, 'f>,
    index: HashMap<String, NodeId>,
    flows: &'a HashMap<String, FlowId>,
    shared: &'a mut Shared,
}

pub fn compile_flow(
    sink: &mut Sink,
    name: &Sp<String>,
    start: Option<&Sp<String>>,
    language: Option<String>,
    nodes: Option<&Table>,
    flows: &HashMap<String, FlowId>,
    shared: &mut Shared,
) -> Option<Flow> {
    let errors_before = sink.error_count();
    let entries = nodes.map(node_tables).unwrap_or_default();
    if entries.is_empty() {
        sink.error(
            &name.span,
            format!("flow {:?} has no [nodes.*] tables", name.v),
        );
        return None;
    }
    let index = entries
        .iter()
        .enumerate()
        .map(|(i, (n, _))| (n.v.clone(), NodeId(i as u32)))
        .collect();
    let mut cx = Ctx {
        sink,
        index,
        flows,
        shared,
    };
    let mut compiled = Vec::with_capacity(entries.len());
    for (node_name, value) in &entries {
        let at = cx.sink.src.locate(&node_name.span);
        if !valid_name(&node_name.v) {
            cx.sink.error(
                &node_name.span,
                format!(
                    "node name {:?} must be letters, digits, - and _",
                    node_name.v
                ),
            );
        }
        let DeValue::Table(t) = value.get_ref() else {
            cx.sink.error(
                &value.span(),
                format!(
                    "node {:?} must be a table, not {}",
                    node_name.v,
                    kind_of(value.get_ref())
                ),
            );
            continue;
        };
        let table = Table::new(t, value.span(), format!("node {:?}", node_name.v));
        let kind = cx.node(&table);
        table.finish(cx.sink);
        compiled.push(Node {
            name: node_name.v.clone(),
            at,
            kind: kind.unwrap_or(NodeKind::Hangup),
        });
    }
    let start = match start {
        Some(s) => cx.node_ref(s),
        None => NodeId(0),
    };
    if cx.sink.error_count() > errors_before {
        return None;
    }
    Some(Flow {
        name: name.v.clone(),
        file: cx.sink.src.file.to_path_buf(),
        numbers: Vec::new(),
        start,
        language,
        nodes: compiled,
    })
}

impl Ctx<'_, '_, '_> {
    fn node(&mut self, t: &Table) -> Option<NodeKind> {
        let kind = t.req_str("type", self.sink)?;
        if !NODE_TYPES.contains(&kind.v.as_str()) {
            self.sink.error(
                &kind.span,
                format!(
                    "unknown node type {:?}{}",
                    kind.v,
                    suggest(&kind.v, NODE_TYPES.into_iter())
                ),
            );
            // The keys cannot be judged without a type; do not report them as unknown.
            t.accept_all();
            return None;
        }
        t.set_what(&format!("a {} node", kind.v));
        Some(match kind.v.as_str() {
            "play" => NodeKind::Play {
                prompts: self.prompts(t, "prompts"),
                barge_in: self.flag(t, "barge_in"),
                next: self.req_node(t, "next"),
            },
            "menu" => self.menu(t),
            "collect" => self.collect(t),
            "set" => {
                let mut vars = Vec::new();
                match t.table("vars", self.sink) {
                    Some(v) => {
                        for (key, value) in v.entries() {
                            self.variable_name(&key);
                            if let Some(e) = self.expr_value(value) {
                                vars.push((key.v, e));
                            }
                        }
                    }
                    None if !t.has("vars") => self.sink.error(
                        &t.span,
                        "a set node needs `vars`, e.g. vars = { tries = \"tries + 1\" }",
                    ),
                    None => {}
                }
                NodeKind::Set {
                    vars,
                    next: self.req_node(t, "next"),
                }
            }
            "label" => self.label(t),
            "branch" => self.branch(t),
            "goto" => NodeKind::Goto {
                next: self.req_node(t, "next"),
            },
            "subflow" => {
                let flow = match t.req_str("flow", self.sink) {
                    Some(f) => match self.flows.get(&f.v) {
                        Some(id) => *id,
                        None => {
                            let hint = suggest(&f.v, self.flows.keys().map(String::as_str));
                            self.sink
                                .error(&f.span, format!("unknown flow {:?}{hint}", f.v));
                            FlowId(0)
                        }
                    },
                    None => FlowId(0),
                };
                NodeKind::Subflow {
                    flow,
                    next: self.req_node(t, "next"),
                }
            }
            "return" => NodeKind::Return,
            "schedule" => self.schedule(t),
            "announcement" => {
                let switch = t
                    .req_str("switch", self.sink)
                    .and_then(|s| {
                        let template = self.template(&s)?;
                        if !switch_template_ok(&s.v) {
                            self.sink.error(
                                &s.span,
                                "a switch name is letters, digits, - and _ \
                                 (with {variable} parts for a switch per area)",
                            );
                            return None;
                        }
                        self.shared.switch(&s.v, &template);
                        Some(template)
                    })
                    .unwrap_or_default();
                NodeKind::Announcement {
                    switch,
                    prompts: self.prompts(t, "prompts"),
                    barge_in: self.flag(t, "barge_in"),
                    next: self.req_node(t, "next"),
                }
            }
            "language" => {
                let language = t.req_str("language", self.sink);
                if let Some(l) = &language {
                    let at = self.sink.src.locate(&l.span);
                    self.shared.language(&l.v, at, self.sink);
                }
                NodeKind::Language {
                    language: language.map(|l| l.v).unwrap_or_default(),
                    next: self.req_node(t, "next"),
                }
            }
            "lookup" => self.lookup(t),
            "record" => NodeKind::Record(Box::new(Record {
                prompts: self.prompts(t, "prompts"),
                max_length: self.duration(t, "max_length", Duration::from_secs(120)),
                silence: self.duration(t, "silence", Duration::from_secs(5)),
                terminator: self.key(t, "terminator").or(Some('#')),
                variable: t.str("variable", self.sink).map(|v| {
                    self.variable_name(&v);
                    v.v
                }),
                next: self.req_node(t, "next"),
                on_failure: self.opt_node(t, "on_failure"),
            })),
            "survey" => self.survey(t),
            "transfer" => self.transfer(t),
            "queue" => self.queue(t),
            _ => NodeKind::Hangup,
        })
    }

    fn menu(&mut self, t: &Table) -> NodeKind {
        let mut choices = Vec::new();
        match t.table("choices", self.sink) {
            Some(c) => {
                for (key, target) in c.entries() {
                    if key.v.is_empty() || !key.v.chars().all(is_dtmf) {
                        self.sink.error(
                            &key.span,
                            format!(
                                "menu choice {:?} is not a key sequence (0-9, *, #, A-D)",
                                key.v
                            ),
                        );
                    }
                    if let Some(target) = self.string_value(target, "a menu choice") {
                        choices.push((key.v, self.node_ref(&target)));
                    }
                }
            }
            None if !t.has("choices") => self.sink.error(
                &t.span,
                "a menu needs `choices`, e.g. choices = { \"1\" = \"sales\" }",
            ),
            None => {}
        }
        let short = t
            .has("short_prompts")
            .then(|| self.prompts(t, "short_prompts"));
        NodeKind::Menu(Box::new(Menu {
            prompts: self.prompts(t, "prompts"),
            short_prompts: short,
            choices,
            invalid_prompts: self.prompts(t, "invalid_prompts"),
            timeout_prompts: self.prompts(t, "timeout_prompts"),
            timeout: self.duration(t, "timeout", DEFAULT_MENU_TIMEOUT),
            inter_digit_timeout: self.duration(t, "inter_digit_timeout", DEFAULT_INTER_DIGIT),
            max_failures: self.count(t, "max_failures", DEFAULT_MAX_FAILURES),
            on_failure: self.opt_node(t, "on_failure"),
            default: self.opt_node(t, "default"),
        }))
    }

    fn collect(&mut self, t: &Table) -> NodeKind {
        let max = t.int("max_digits", 1..=64, self.sink);
        if max.is_none() && !t.has("max_digits") {
            self.sink
                .error(&t.span, "a collect node needs `max_digits`");
        }
        let max_digits = max.map_or(64, |m| m.v as u32);
        let min_digits = t.int("min_digits", 0..=64, self.sink).map_or(1, |m| {
            if m.v as u32 > max_digits {
                self.sink.error(
                    &m.span,
                    format!("min_digits {} is more than max_digits {max_digits}", m.v),
                );
            }
            m.v as u32
        });
        let variable = match t.req_str("variable", self.sink) {
            Some(v) => {
                self.variable_name(&v);
                v.v
            }
            None => String::new(),
        };
        let pattern = t.str("pattern", self.sink).and_then(|p| {
            // Anchored: a pattern describes the whole entry, not a part of it.
            match regex_lite::Regex::new(&format!("^(?:{})$", p.v)) {
                Ok(r) => Some(r),
                Err(e) => {
                    let msg = e.to_string();
                    let first = msg.lines().last().unwrap_or("").trim().to_string();
                    self.sink
                        .error(&p.span, format!("bad pattern {:?}: {first}", p.v));
                    None
                }
            }
        });
        let confirm = t.table("confirm", self.sink).map(|c| {
            let c = c.relabel("the `confirm` table");
            let confirm = Confirm {
                before: self.prompts(&c, "prompts"),
                after: self.prompts(&c, "after"),
                yes: self.key(&c, "yes").unwrap_or('1'),
                no: self.key(&c, "no").unwrap_or('2'),
                timeout: self.duration(&c, "timeout", DEFAULT_MENU_TIMEOUT),
            };
            // The read-back speaks the digits: the words must be loaded.
            if self.shared.say_site.is_none() {
                self.shared.say_site = Some(self.sink.src.locate(&c.span));
            }
            if confirm.yes == confirm.no {
                self.sink
                    .error(&c.span, "`yes` and `no` must be different keys");
            }
            c.finish(self.sink);
            confirm
        });
        let total_timeout = t
            .has("total_timeout")
            .then(|| self.duration(t, "total_timeout", DEFAULT_MENU_TIMEOUT));
        let sensitive = t.bool("sensitive", self.sink).is_some_and(|b| b.v);
        let keep_last = t.int("keep_last", 0..=64, self.sink);
        if let Some(k) = &keep_last
            && !sensitive
        {
            self.sink.error(
                &k.span,
                "`keep_last` says what a sensitive entry may show: add `sensitive = true`",
            );
        }
        let sensitive = sensitive.then(|| keep_last.map_or(0, |k| k.v as u32));
        NodeKind::Collect(Box::new(Collect {
            prompts: self.prompts(t, "prompts"),
            variable,
            min_digits,
            max_digits,
            terminator: self.key(t, "terminator"),
            first_digit_timeout: self.duration(t, "first_digit_timeout", DEFAULT_MENU_TIMEOUT),
            inter_digit_timeout: self.duration(t, "inter_digit_timeout", DEFAULT_INTER_DIGIT),
            total_timeout,
            pattern,
            max_attempts: self.count(t, "max_attempts", DEFAULT_MAX_FAILURES),
            invalid_prompts: self.prompts(t, "invalid_prompts"),
            timeout_prompts: self.prompts(t, "timeout_prompts"),
            confirm,
            sensitive,
            next: self.req_node(t, "next"),
            on_failure: self.opt_node(t, "on_failure"),
        }))
    }

    fn branch(&mut self, t: &Table) -> NodeKind {
        let mut cases = Vec::new();
        let mut when_sites = Vec::new();
        match t.array("cases", self.sink) {
            Some(items) => {
                for item in items {
                    let DeValue::Table(c) = item.get_ref() else {
                        self.sink.error(
                            &item.span(),
                            "each case is a table: { when = \"...\", next = \"...\" }",
                        );
                        continue;
                    };
                    let c = Table::new(c, item.span(), "a branch case");
                    let when_text = c.req_str("when", self.sink);
                    let site = when_text
                        .as_ref()
                        .map(|w| self.sink.src.locate(&w.span));
                    let when = when_text.and_then(|w| self.expr(&w));
                    let next = self.req_node(&c, "next");
                    c.finish(self.sink);
                    if let (Some(when), Some(site)) = (when, site) {
                        cases.push((when, next));
                        when_sites.push(site);
                    }
                }
            }
            None if !t.has("cases") => self.sink.error(
                &t.span,
                "a branch needs `cases`, e.g. cases = [{ when = \"tier == 'gold'\", next = \"vip\" }]",
            ),
            None => {}
        }
        NodeKind::Branch {
            cases,
            otherwise: self.req_node(t, "else"),
            when_sites,
        }
    }

    fn label(&mut self, t: &Table) -> NodeKind {
        let mut labels = Vec::new();
        match t.table("labels", self.sink) {
            Some(l) => {
                for (name, value) in l.entries() {
                    if !valid_label(&name.v) {
                        self.sink.error(
                            &name.span,
                            format!(
                                "{:?} is not a label name (letters, digits and _, up to {MAX_LABEL_NAME} characters, e.g. call_type)",
                                name.v
                            ),
                        );
                        continue;
                    }
                    let Some(text) = self.string_value(value, "a label's value") else {
                        continue;
                    };
                    if let Some(template) = self.template(&text) {
                        labels.push((name.v, template));
                    }
                }
                if l.entries().next().is_none() {
                    self.sink.error(&t.span, "`labels` is empty");
                }
            }
            None if !t.has("labels") => self.sink.error(
                &t.span,
                "a label node needs `labels`, e.g. labels = { call_type = \"outage\" }",
            ),
            None => {}
        }
        NodeKind::Label {
            labels,
            next: self.req_node(t, "next"),
        }
    }

    fn schedule(&mut self, t: &Table) -> NodeKind {
        let tz = match t.req_str("timezone", self.sink) {
            Some(z) => schedule::parse_tz(&z.v).unwrap_or_else(|e| {
                self.sink.error(&z.span, e);
                jiff::tz::TimeZone::UTC
            }),
            None => jiff::tz::TimeZone::UTC,
        };
        let mut weekly: [Vec<Span>; 7] = Default::default();
        match t.table("hours", self.sink) {
            Some(h) => {
                for (days, value) in h.entries() {
                    let spans = calendar::spans(value, self.sink);
                    match schedule::parse_days(&days.v) {
                        Ok(list) => {
                            for d in list {
                                weekly[d].extend(spans.iter().copied());
                            }
                        }
                        Err(e) => self.sink.error(&days.span, e),
                    }
                }
            }
            None if !t.has("hours") => self.sink.error(
                &t.span,
                "a schedule needs `hours`, e.g. hours = { \"mon-fri\" = \"08:00-20:00\" }",
            ),
            None => {}
        }
        // The node's own holidays and special days first: they decide over its calendars'.
        let mut layers = vec![schedule::Layer {
            holidays: calendar::holidays(t, self.sink),
            special: calendar::special_days(t, self.sink),
        }];
        for name in t.strings("calendar", self.sink).unwrap_or_default() {
            match self.shared.calendars.get(&name.v) {
                Some(c) => {
                    layers.push(schedule::Layer {
                        holidays: c.holidays.clone(),
                        special: c.special.clone(),
                    });
                    if !self.shared.calendars_used.contains(&name.v) {
                        self.shared.calendars_used.push(name.v.clone());
                    }
                }
                None => {
                    let hint = suggest(&name.v, self.shared.calendars.keys().map(String::as_str));
                    let message = if self.shared.calendars.is_empty() {
                        format!(
                            "unknown calendar {:?} (calendars are files in {}/, none there)",
                            name.v,
                            calendar::CALENDAR_DIR
                        )
                    } else {
                        format!("unknown calendar {:?}{hint}", name.v)
                    };
                    self.sink.error(&name.span, message);
                }
            }
        }
        let closed = self.req_node(t, "closed");
        NodeKind::Schedule {
            schedule: Box::new(Schedule { tz, weekly, layers }),
            open: self.req_node(t, "open"),
            holiday: self.opt_node(t, "holiday").unwrap_or(closed),
            closed,
        }
    }

    fn lookup(&mut self, t: &Table) -> NodeKind {
        let url = t
            .req_str("url", self.sink)
            .and_then(|u| {
                if !u.v.starts_with("http://") && !u.v.starts_with("https://") {
                    self.sink
                        .error(&u.span, "a lookup url starts with http:// or https://");
                }
                self.template(&u)
            })
            .unwrap_or_default();
        let method = match t.str("method", self.sink) {
            None => Method::Get,
            Some(m) => match m.v.to_ascii_uppercase().as_str() {
                "GET" => Method::Get,
                "POST" => Method::Post,
                _ => {
                    self.sink.error(&m.span, "method is GET or POST");
                    Method::Get
                }
            },
        };
        let mut body = Vec::new();
        if let Some(b) = t.table("body", self.sink) {
            for (key, value) in b.entries() {
                if let Some(e) = self.expr_value(value) {
                    body.push((key.v, e));
                }
            }
        }
        if !body.is_empty()
            && method == Method::Get
            && let Some(span) = t.key_span("body")
        {
            self.sink.error(&span, "a `body` needs method = \"POST\"");
        }
        let mut result = Vec::new();
        if let Some(r) = t.table("result", self.sink) {
            for (var, path) in r.entries() {
                self.variable_name(&var);
                if let Some(p) = self.string_value(path, "a result path") {
                    result.push((var.v, p.v));
                }
            }
        }
        let mut sensitive = Vec::new();
        for name in t.strings("sensitive", self.sink).unwrap_or_default() {
            if !result.iter().any(|(var, _)| *var == name.v) {
                self.sink.error(
                    &name.span,
                    format!(
                        "{:?} is not one of this lookup's `result` variables",
                        name.v
                    ),
                );
            }
            sensitive.push(name.v);
        }
        NodeKind::Lookup(Box::new(Lookup {
            method,
            url,
            body,
            timeout: self.duration(t, "timeout", Duration::from_secs(3)),
            cache: t
                .has("cache")
                .then(|| self.duration_any(t, "cache"))
                .flatten()
                .unwrap_or(Duration::ZERO),
            result,
            sensitive,
            next: self.req_node(t, "next"),
            on_failure: self.opt_node(t, "on_failure"),
            on_not_found: self.opt_node(t, "on_not_found"),
        }))
    }

    fn survey(&mut self, t: &Table) -> NodeKind {
        let mut questions = Vec::new();
        match t.array("questions", self.sink) {
            Some(items) => {
                for item in items {
                    let DeValue::Table(q) = item.get_ref() else {
                        self.sink.error(
                            &item.span(),
                            "each question is a table: { id, prompts, answers }",
                        );
                        continue;
                    };
                    let q = Table::new(q, item.span(), "a survey question");
                    let id = q.req_str("id", self.sink);
                    // The answer is kept as a variable of that name, so it must be one.
                    if let Some(id) = &id {
                        self.variable_name(id);
                    }
                    if let Some(id) = &id
                        && questions.iter().any(|x: &Question| x.id == id.v)
                    {
                        self.sink
                            .error(&id.span, format!("a second question with id {:?}", id.v));
                    }
                    let answers: Vec<char> = match q.req_str("answers", self.sink) {
                        Some(a) => {
                            if a.v.is_empty() || !a.v.chars().all(is_dtmf) {
                                self.sink
                                    .error(&a.span, "answers are the keys allowed, e.g. \"12345\"");
                            }
                            a.v.chars().collect()
                        }
                        None => Vec::new(),
                    };
                    let prompts = self.prompts(&q, "prompts");
                    q.finish(self.sink);
                    if let Some(id) = id {
                        questions.push(Question {
                            id: id.v,
                            prompts,
                            answers,
                        });
                    }
                }
            }
            None if !t.has("questions") => self.sink.error(&t.span, "a survey needs `questions`"),
            None => {}
        }
        NodeKind::Survey(Box::new(Survey {
            prompts: self.prompts(t, "prompts"),
            questions,
            timeout: self.duration(t, "timeout", DEFAULT_MENU_TIMEOUT),
            max_attempts: self.count(t, "max_attempts", 2),
            invalid_prompts: self.prompts(t, "invalid_prompts"),
            next: self.req_node(t, "next"),
        }))
    }

    fn transfer(&mut self, t: &Table) -> NodeKind {
        let uri = t.str("to", self.sink);
        let number = t.str("number", self.sink);
        let target = match (uri, number) {
            (Some(u), None) => {
                if !u.v.starts_with("sip:") && !u.v.starts_with("sips:") {
                    self.sink.error(
                        &u.span,
                        "`to` is a SIP URI (sip:user@host); use `number` for a phone number",
                    );
                }
                self.template(&u).map(TransferTarget::Uri)
            }
            (None, Some(n)) => self.template(&n).map(TransferTarget::Number),
            (Some(u), Some(_)) => {
                self.sink.error(
                    &u.span,
                    "give either `to` (a SIP URI) or `number`, not both",
                );
                None
            }
            (None, None) => {
                self.sink
                    .error(&t.span, "a transfer needs `to` (a SIP URI) or `number`");
                None
            }
        };
        let mut headers = Vec::new();
        if let Some(h) = t.table("headers", self.sink) {
            for (name, value) in h.entries() {
                if !header_name_ok(&name.v) {
                    self.sink.error(
                        &name.span,
                        format!(
                            "{:?} cannot be set by a flow: a header name is letters, digits and -, and not one SIP itself needs (Via, From, To, Call-ID, CSeq, Contact, Route, Max-Forwards, Content-*, ...)",
                            name.v
                        ),
                    );
                    continue;
                }
                if let Some(v) = self.string_value(value, "a header value")
                    && let Some(template) = self.template(&v)
                {
                    headers.push((name.v, template));
                }
            }
        }
        NodeKind::Transfer(Box::new(Transfer {
            prompts: self.prompts(t, "prompts"),
            target: target.unwrap_or(TransferTarget::Number(Template::default())),
            ring_timeout: self.duration(t, "ring_timeout", Duration::from_secs(30)),
            on_failure: self.opt_node(t, "on_failure"),
            answered: self.opt_node(t, "answered"),
            headers,
        }))
    }

    fn queue(&mut self, t: &Table) -> NodeKind {
        let queue = match t.req_str("queue", self.sink) {
            Some(q) => {
                let param = self.queue_param(&q);
                if let Some(name) = param.as_ref().and_then(QueueParam::literal)
                    && !valid_name(&name)
                {
                    self.sink.error(
                        &q.span,
                        "a queue name is letters, digits, - and _ (or a template like \"{vip_queue}\")",
                    );
                }
                param
            }
            None => None,
        };
        let priority = match t.get("priority") {
            None => None,
            Some(v) => match v.get_ref() {
                DeValue::Integer(_) => t.int("priority", 0..=100, self.sink).map(|p| QueueParam {
                    text: p.v.to_string(),
                    template: Template::parse(&p.v.to_string()).unwrap_or_default(),
                    at: self.sink.src.locate(&p.span),
                }),
                DeValue::String(s) => {
                    let text = Sp::new(s.to_string(), v.span());
                    let param = self.queue_param(&text);
                    if let Some(lit) = param.as_ref().and_then(QueueParam::literal)
                        && !lit.trim().parse::<u8>().is_ok_and(|p| p <= 100)
                    {
                        self.sink.error(
                            &v.span(),
                            "`priority` must be between 0 and 100 (or a template like \"{tier_priority}\")",
                        );
                    }
                    param
                }
                other => {
                    self.sink.error(
                        &v.span(),
                        format!(
                            "`priority` must be a whole number or a template, not {}",
                            kind_of(other)
                        ),
                    );
                    None
                }
            },
        };
        let record = match t.get("record") {
            None => None,
            Some(v) => match v.get_ref() {
                DeValue::Boolean(b) => Some(QueueParam {
                    text: b.to_string(),
                    template: Template::parse(&b.to_string()).unwrap_or_default(),
                    at: self.sink.src.locate(&v.span()),
                }),
                DeValue::String(s) => {
                    let text = Sp::new(s.to_string(), v.span());
                    let param = self.queue_param(&text);
                    if let Some(lit) = param.as_ref().and_then(QueueParam::literal)
                        && yes_no(&lit).is_none()
                    {
                        self.sink.error(
                            &v.span(),
                            "`record` is true or false (or a template like \"{consented}\")",
                        );
                    }
                    param
                }
                other => {
                    self.sink.error(
                        &v.span(),
                        format!(
                            "`record` must be true, false or a template, not {}",
                            kind_of(other)
                        ),
                    );
                    None
                }
            },
        };
        let skills = t
            .strings("skills", self.sink)
            .unwrap_or_default()
            .iter()
            .filter_map(|s| self.queue_param(s))
            .collect();
        let mut keys = Vec::new();
        if let Some(k) = t.table("keys", self.sink) {
            for (key, target) in k.entries() {
                let mut chars = key.v.chars();
                let c = match (chars.next(), chars.next()) {
                    (Some(c), None) if is_dtmf(c) => c,
                    _ => {
                        self.sink.error(
                            &key.span,
                            format!("queue key {:?} is not one key (0-9, *, #, A-D)", key.v),
                        );
                        continue;
                    }
                };
                if let Some(target) = self.string_value(target, "a queue key's node") {
                    keys.push((c, self.node_ref(&target)));
                }
            }
        }
        let unset = |cx: &mut Self| QueueParam {
            text: String::new(),
            template: Template::default(),
            at: cx.sink.src.locate(&t.span),
        };
        NodeKind::Queue(Box::new(Queue {
            queue: queue.unwrap_or_else(|| unset(self)),
            priority: priority.unwrap_or_else(|| QueueParam {
                text: "0".into(),
                template: Template::parse("0").unwrap_or_default(),
                at: self.sink.src.locate(&t.span),
            }),
            skills,
            prompts: self.prompts(t, "prompts"),
            timeout: self.duration(t, "timeout", Duration::from_secs(600)),
            record,
            keys,
            answered: self.opt_node(t, "answered"),
            on_timeout: self.opt_node(t, "on_timeout"),
            full: self.opt_node(t, "full"),
            no_agents: self.opt_node(t, "no_agents"),
        }))
    }

    fn queue_param(&mut self, s: &Sp<String>) -> Option<QueueParam> {
        let template = self.template(s)?;
        Some(QueueParam {
            text: s.v.clone(),
            template,
            at: self.sink.src.locate(&s.span),
        })
    }

    // --- shared readers ---

    fn node_ref(&mut self, name: &Sp<String>) -> NodeId {
        match self.index.get(&name.v) {
            Some(id) => *id,
            None => {
                let hint = suggest(&name.v, self.index.keys().map(String::as_str));
                self.sink
                    .error(&name.span, format!("unknown node {:?}{hint}", name.v));
                NodeId(0)
            }
        }
    }

    fn req_node(&mut self, t: &Table, key: &'static str) -> NodeId {
        match t.req_str(key, self.sink) {
            Some(n) => self.node_ref(&n),
            None => NodeId(0),
        }
    }

    fn opt_node(&mut self, t: &Table, key: &'static str) -> Option<NodeId> {
        t.str(key, self.sink).map(|n| self.node_ref(&n))
    }

    fn flag(&mut self, t: &Table, key: &'static str) -> bool {
        t.bool(key, self.sink).is_some_and(|b| b.v)
    }

    fn count(&mut self, t: &Table, key: &'static str, default: u32) -> u32 {
        t.int(key, 1..=100, self.sink)
            .map_or(default, |n| n.v as u32)
    }

    fn duration(&mut self, t: &Table, key: &'static str, default: Duration) -> Duration {
        match self.duration_any(t, key) {
            Some(d) if d < MIN_TIMEOUT => {
                let span = t.key_span(key).unwrap_or(t.span.clone());
                self.sink.error(
                    &span,
                    format!(
                        "`{key}` is too short: at least {} ms",
                        MIN_TIMEOUT.as_millis()
                    ),
                );
                default
            }
            Some(d) => d,
            None => default,
        }
    }

    fn duration_any(&mut self, t: &Table, key: &'static str) -> Option<Duration> {
        // A bare number has no unit: say how to write it rather than "must be a string".
        if let Some(v) = t.get(key)
            && let DeValue::Integer(_) | DeValue::Float(_) = v.get_ref()
        {
            let number = &self.sink.src.text[v.span()];
            self.sink.error(
                &v.span(),
                format!("`{key}` is a duration with a unit: write \"{number}s\" (or ms, m)"),
            );
            return None;
        }
        let s = t.str(key, self.sink)?;
        match parse_duration(&s.v) {
            Ok(d) => Some(d),
            Err(msg) => {
                self.sink.error(&s.span, msg);
                None
            }
        }
    }

    fn key(&mut self, t: &Table, key: &'static str) -> Option<char> {
        let s = t.str(key, self.sink)?;
        let mut chars = s.v.chars();
        match (chars.next(), chars.next()) {
            (Some(c), None) if is_dtmf(c) => Some(c),
            _ => {
                self.sink
                    .error(&s.span, format!("`{key}` must be one key: 0-9, *, #, A-D"));
                None
            }
        }
    }

    fn variable_name(&mut self, v: &Sp<String>) {
        let builtin = expr::Builtin::ALL.iter().any(|(n, _)| *n == v.v);
        if !valid_variable(&v.v) || builtin {
            self.sink.error(
                &v.span,
                if builtin {
                    format!("{:?} is a built-in name and cannot be set", v.v)
                } else {
                    format!("variable name {:?} must be letters, digits and _", v.v)
                },
            );
        }
    }

    fn string_value(&mut self, v: &Value, what: &str) -> Option<Sp<String>> {
        match v.get_ref() {
            DeValue::String(s) => Some(Sp::new(s.to_string(), v.span())),
            other => {
                self.sink.error(
                    &v.span(),
                    format!("{what} must be a string, not {}", kind_of(other)),
                );
                None
            }
        }
    }

    /// An expression from a TOML value: strings are parsed, numbers and booleans are literals.
    fn expr_value(&mut self, v: &Value) -> Option<Expr> {
        match v.get_ref() {
            DeValue::String(s) => self.expr(&Sp::new(s.to_string(), v.span())),
            DeValue::Integer(i) => Some(Expr::Lit(expr::Value::Text(i.as_str().to_string()))),
            DeValue::Float(f) => Some(Expr::Lit(expr::Value::Text(f.as_str().to_string()))),
            DeValue::Boolean(b) => Some(Expr::Lit(expr::Value::Bool(*b))),
            other => {
                self.sink.error(
                    &v.span(),
                    format!("an expression must be a string, not {}", kind_of(other)),
                );
                None
            }
        }
    }

    fn expr(&mut self, s: &Sp<String>) -> Option<Expr> {
        match expr::parse(&s.v) {
            Ok(e) => Some(e),
            Err(e) => {
                self.sink.error(
                    &inner_span(s, e.offset),
                    format!("in {:?}: {}", s.v, e.message),
                );
                None
            }
        }
    }

    fn template(&mut self, s: &Sp<String>) -> Option<Template> {
        match Template::parse(&s.v) {
            Ok(t) => Some(t),
            Err(e) => {
                self.sink.error(
                    &inner_span(s, e.offset),
                    format!("in {:?}: {}", s.v, e.message),
                );
                None
            }
        }
    }

    /// A prompt list: names, and spoken values `{ amount = "balance" }`.
    fn prompts(&mut self, t: &Table, key: &'static str) -> Vec<PromptItem> {
        let Some(v) = t.get(key) else {
            return Vec::new();
        };
        let items: Vec<&Value> = match v.get_ref() {
            DeValue::String(_) => vec![v],
            DeValue::Array(a) => a.iter().collect(),
            other => {
                self.sink.error(
                    &v.span(),
                    format!("`{key}` is a list of prompt names, not {}", kind_of(other)),
                );
                return Vec::new();
            }
        };
        let mut out = Vec::new();
        for item in items {
            match item.get_ref() {
                DeValue::String(name) => {
                    if name.is_empty()
                        || name.contains("..")
                        || name.starts_with('/')
                        || name.contains('\\')
                    {
                        self.sink
                            .error(&item.span(), format!("bad prompt name {name:?}"));
                        continue;
                    }
                    let at = self.sink.src.locate(&item.span());
                    out.push(PromptItem::Prompt(self.shared.prompt(name, at)));
                }
                DeValue::Table(say) => {
                    let say = Table::new(say, item.span(), "a spoken value");
                    let mut found = None;
                    for (name, how) in SayAs::ALL {
                        if let Some(v) = say.str(name, self.sink) {
                            if found.is_some() {
                                self.sink.error(
                                    &item.span(),
                                    "a spoken value says one thing: digits, number, amount or date",
                                );
                            }
                            found = Some((how, v));
                        }
                    }
                    say.finish(self.sink);
                    match found {
                        Some((how, v)) => {
                            if let Some(e) = self.expr(&v) {
                                if self.shared.say_site.is_none() {
                                    self.shared.say_site = Some(self.sink.src.locate(&item.span()));
                                }
                                out.push(PromptItem::Say(how, e));
                            }
                        }
                        None => self.sink.error(
                            &item.span(),
                            "a spoken value is { digits | number | amount | date = \"expression\" }",
                        ),
                    }
                }
                other => self.sink.error(
                    &item.span(),
                    format!(
                        "a prompt is a name or a spoken value, not {}",
                        kind_of(other)
                    ),
                ),
            }
        }
        out
    }
}

/// The span of character `offset` inside a quoted TOML string starting at `s.span.start`.
fn inner_span(s: &Sp<String>, offset: usize) -> std::ops::Range<usize> {
    let bytes: usize = s.v.chars().take(offset).map(char::len_utf8).sum();
    let at = s.span.start + 1 + bytes;
    at..at + 1
}

fn is_dtmf(c: char) -> bool {
    c.is_ascii_digit() || matches!(c, '*' | '#' | 'A'..='D')
}

fn valid_variable(s: &str) -> bool {
    !s.is_empty()
        && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        && !s.starts_with(|c: char| c.is_ascii_digit())
}

/// A yes/no value as flows write it (and as variables hold it at run time).
pub fn yes_no(text: &str) -> Option<bool> {
    match text.trim().to_ascii_lowercase().as_str() {
        "true" | "yes" | "1" | "on" => Some(true),
        "false" | "no" | "0" | "off" | "" => Some(false),
        _ => None,
    }
}

/// A header a flow may add to a transfer's INVITE: a token name, and none that SIP routing,
/// the dialog or the body depend on.
fn header_name_ok(name: &str) -> bool {
    const RESERVED: [&str; 20] = [
        "via",
        "from",
        "to",
        "call-id",
        "cseq",
        "contact",
        "route",
        "record-route",
        "max-forwards",
        "content-length",
        "content-type",
        "content-encoding",
        "allow",
        "supported",
        "require",
        "proxy-require",
        "authorization",
        "proxy-authorization",
        "expires",
        "refer-to",
    ];
    !name.is_empty()
        && name.len() <= 64
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        && !RESERVED.contains(&name.to_ascii_lowercase().as_str())
        && !name.to_ascii_lowercase().starts_with("content-")
}
