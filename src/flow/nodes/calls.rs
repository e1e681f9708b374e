//! The nodes that hand the call to something outside the flow and come back: look-ups,
//! surveys, transfers and queues.

use super::*;

impl Ctx<'_, '_, '_> {
    pub(super) fn lookup(&mut self, t: &Table) -> NodeKind {
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

    pub(super) fn survey(&mut self, t: &Table) -> NodeKind {
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

    pub(super) fn transfer(&mut self, t: &Table) -> NodeKind {
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

    pub(super) fn queue(&mut self, t: &Table) -> NodeKind {
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
}
