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

mod calls;
mod values;

pub use values::yes_no;
use values::{header_name_ok, is_dtmf};

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
}
