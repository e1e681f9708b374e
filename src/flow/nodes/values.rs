//! Reading one key of a node's table: node references, flags, counts, durations, keys,
//! variable names, expressions, templates and prompt lists, each checked where it is written.

use super::*;

impl Ctx<'_, '_, '_> {
    pub(super) fn queue_param(&mut self, s: &Sp<String>) -> Option<QueueParam> {
        let template = self.template(s)?;
        Some(QueueParam {
            text: s.v.clone(),
            template,
            at: self.sink.src.locate(&s.span),
        })
    }

    // --- shared readers ---

    pub(super) fn node_ref(&mut self, name: &Sp<String>) -> NodeId {
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

    pub(super) fn req_node(&mut self, t: &Table, key: &'static str) -> NodeId {
        match t.req_str(key, self.sink) {
            Some(n) => self.node_ref(&n),
            None => NodeId(0),
        }
    }

    pub(super) fn opt_node(&mut self, t: &Table, key: &'static str) -> Option<NodeId> {
        t.str(key, self.sink).map(|n| self.node_ref(&n))
    }

    pub(super) fn flag(&mut self, t: &Table, key: &'static str) -> bool {
        t.bool(key, self.sink).is_some_and(|b| b.v)
    }

    pub(super) fn count(&mut self, t: &Table, key: &'static str, default: u32) -> u32 {
        t.int(key, 1..=100, self.sink)
            .map_or(default, |n| n.v as u32)
    }

    pub(super) fn duration(&mut self, t: &Table, key: &'static str, default: Duration) -> Duration {
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

    pub(super) fn duration_any(&mut self, t: &Table, key: &'static str) -> Option<Duration> {
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

    pub(super) fn key(&mut self, t: &Table, key: &'static str) -> Option<char> {
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

    pub(super) fn variable_name(&mut self, v: &Sp<String>) {
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

    pub(super) fn string_value(&mut self, v: &Value, what: &str) -> Option<Sp<String>> {
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
    pub(super) fn expr_value(&mut self, v: &Value) -> Option<Expr> {
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

    pub(super) fn expr(&mut self, s: &Sp<String>) -> Option<Expr> {
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

    pub(super) fn template(&mut self, s: &Sp<String>) -> Option<Template> {
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
    pub(super) fn prompts(&mut self, t: &Table, key: &'static str) -> Vec<PromptItem> {
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

pub(super) fn is_dtmf(c: char) -> bool {
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
pub(super) fn header_name_ok(name: &str) -> bool {
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
