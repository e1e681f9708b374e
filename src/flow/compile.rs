//! Flow files to a `FlowSet`: parse with spans, resolve every name to an index, and report
//! each problem with its file, line, column and the offending text.

use std::collections::HashMap;
use std::fmt;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::time::Duration;

use toml::Spanned;

use super::model::FlowFile;
use super::*;
use crate::core::duration::parse_duration;

const MIN_TIMEOUT: Duration = Duration::from_millis(100);

/// A place in a flow file, for error messages an admin can act on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Located {
    pub file: PathBuf,
    pub line: usize,
    pub column: usize,
    pub snippet: String,
}

impl fmt::Display for Located {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}", self.file.display(), self.line, self.column)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum FlowError {
    #[error("{dir}: cannot read flow directory: {source}")]
    ReadDir {
        dir: PathBuf,
        source: std::io::Error,
    },
    #[error("{file}: cannot read: {source}")]
    ReadFile {
        file: PathBuf,
        source: std::io::Error,
    },
    #[error("{at}: {message}\n    {snippet}", snippet = at.snippet)]
    At { at: Located, message: String },
    #[error("{dir}: no flow files (*.toml) found")]
    Empty { dir: PathBuf },
}

/// Load and compile every `*.toml` in `dir`. All errors are collected, not just the first.
pub fn load_dir(dir: &Path) -> Result<FlowSet, Vec<FlowError>> {
    let entries = std::fs::read_dir(dir).map_err(|source| {
        vec![FlowError::ReadDir {
            dir: dir.to_path_buf(),
            source,
        }]
    })?;
    let mut files: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        .collect();
    files.sort();
    if files.is_empty() {
        return Err(vec![FlowError::Empty {
            dir: dir.to_path_buf(),
        }]);
    }
    let mut set = FlowSet::default();
    let mut errors = Vec::new();
    let mut prompt_ids: HashMap<String, PromptId> = HashMap::new();
    let mut number_sites: HashMap<String, Located> = HashMap::new();
    let mut default_site: Option<Located> = None;
    for file in files {
        let text = match std::fs::read_to_string(&file) {
            Ok(t) => t,
            Err(source) => {
                errors.push(FlowError::ReadFile { file, source });
                continue;
            }
        };
        let ctx = Ctx {
            file: &file,
            text: &text,
        };
        let parsed: FlowFile = match toml::from_str(&text) {
            Ok(p) => p,
            Err(e) => {
                let span = e.span().unwrap_or(0..0);
                errors.push(ctx.error(span, e.message().to_string()));
                continue;
            }
        };
        let id = FlowId(set.flows.len() as u32);
        match compile_flow(
            &ctx,
            &parsed,
            &mut prompt_ids,
            &mut set.prompts,
            &mut set.prompt_sites,
        ) {
            Ok(flow) => {
                for number in &parsed.flow.numbers {
                    let at = ctx.locate(number.span());
                    if let Some(first) = number_sites.get(number.get_ref()) {
                        errors.push(FlowError::At {
                            message: format!(
                                "number {:?} is already routed by {first}",
                                number.get_ref()
                            ),
                            at,
                        });
                        continue;
                    }
                    number_sites.insert(number.get_ref().clone(), at);
                    set.by_number.insert(number.get_ref().clone(), id);
                }
                if parsed.flow.default {
                    let at = ctx.locate(parsed.flow.name.span());
                    match &default_site {
                        Some(first) => errors.push(FlowError::At {
                            message: format!("a second default flow (the first is at {first})"),
                            at,
                        }),
                        None => {
                            default_site = Some(at);
                            set.default = Some(id);
                        }
                    }
                }
                set.flows.push(flow);
            }
            Err(mut e) => errors.append(&mut e),
        }
    }
    if errors.is_empty() {
        Ok(set)
    } else {
        Err(errors)
    }
}

struct Ctx<'a> {
    file: &'a Path,
    text: &'a str,
}

impl Ctx<'_> {
    fn locate(&self, span: Range<usize>) -> Located {
        let start = span.start.min(self.text.len());
        let before = &self.text[..start];
        let line = before.matches('\n').count() + 1;
        let line_start = before.rfind('\n').map_or(0, |i| i + 1);
        let column = self.text[line_start..start].chars().count() + 1;
        let snippet = self.text[line_start..]
            .lines()
            .next()
            .unwrap_or("")
            .trim_end()
            .to_string();
        Located {
            file: self.file.to_path_buf(),
            line,
            column,
            snippet,
        }
    }

    fn error(&self, span: Range<usize>, message: impl Into<String>) -> FlowError {
        FlowError::At {
            at: self.locate(span),
            message: message.into(),
        }
    }
}

fn compile_flow(
    ctx: &Ctx,
    file: &FlowFile,
    prompt_ids: &mut HashMap<String, PromptId>,
    prompt_names: &mut Vec<String>,
    prompt_sites: &mut Vec<Located>,
) -> Result<Flow, Vec<FlowError>> {
    let mut errors = Vec::new();
    let index: HashMap<&str, NodeId> = file
        .nodes
        .keys()
        .enumerate()
        .map(|(i, name)| (name.get_ref().as_str(), NodeId(i as u32)))
        .collect();
    let resolve = |name: &Spanned<String>, errors: &mut Vec<FlowError>| -> NodeId {
        match index.get(name.get_ref().as_str()) {
            Some(id) => *id,
            None => {
                errors.push(ctx.error(
                    name.span(),
                    format!(
                        "unknown node {:?}{}",
                        name.get_ref(),
                        suggest(name.get_ref(), index.keys().copied())
                    ),
                ));
                NodeId(0)
            }
        }
    };
    let mut prompts = |list: &[Spanned<String>], errors: &mut Vec<FlowError>| -> Vec<PromptId> {
        list.iter()
            .map(|p| {
                let name = p.get_ref();
                if name.is_empty() || name.contains("..") || name.starts_with('/') {
                    errors.push(ctx.error(p.span(), format!("bad prompt name {name:?}")));
                }
                *prompt_ids.entry(name.clone()).or_insert_with(|| {
                    prompt_names.push(name.clone());
                    prompt_sites.push(ctx.locate(p.span()));
                    PromptId(prompt_names.len() as u32 - 1)
                })
            })
            .collect()
    };
    let duration =
        |d: &Option<Spanned<String>>, default: Duration, errors: &mut Vec<FlowError>| -> Duration {
            match d {
                None => default,
                Some(s) => match parse_duration(s.get_ref()) {
                    // A timer that fires at once would let a flow spin without waiting.
                    Ok(d) if d < MIN_TIMEOUT => {
                        errors.push(ctx.error(
                            s.span(),
                            format!(
                                "{:?} is too short: timeouts must be at least {} ms",
                                s.get_ref(),
                                MIN_TIMEOUT.as_millis()
                            ),
                        ));
                        default
                    }
                    Ok(d) => d,
                    Err(msg) => {
                        errors.push(ctx.error(s.span(), msg));
                        default
                    }
                },
            }
        };
    let mut nodes = Vec::with_capacity(file.nodes.len());
    for (name, def) in &file.nodes {
        let node_span = def.span();
        let def = def.get_ref();
        let kind_name = def.kind.get_ref().as_str();
        let allowed: &[&str] = match kind_name {
            "play" => &["prompts", "barge_in", "next"],
            "menu" => &[
                "prompts",
                "choices",
                "invalid_prompts",
                "timeout_prompts",
                "timeout",
                "inter_digit_timeout",
                "max_failures",
                "on_failure",
            ],
            "collect" => &[
                "prompts",
                "variable",
                "min_digits",
                "max_digits",
                "terminator",
                "first_digit_timeout",
                "inter_digit_timeout",
                "max_attempts",
                "invalid_prompts",
                "timeout_prompts",
                "next",
                "on_failure",
            ],
            "goto" => &["next"],
            "hangup" => &[],
            other => {
                let types = ["play", "menu", "collect", "goto", "hangup"];
                errors.push(ctx.error(
                    def.kind.span(),
                    format!(
                        "unknown node type {other:?}{}",
                        suggest(other, types.into_iter())
                    ),
                ));
                continue;
            }
        };
        for (key, span) in def.present_keys() {
            if !allowed.contains(&key) {
                errors.push(ctx.error(
                    span,
                    format!("`{key}` does not apply to a {kind_name} node"),
                ));
            }
        }
        let required =
            |field: Option<&Spanned<String>>, key: &str, errors: &mut Vec<FlowError>| -> NodeId {
                match field {
                    Some(f) => resolve(f, errors),
                    None => {
                        errors.push(ctx.error(
                            node_span.clone(),
                            format!("a {kind_name} node needs `{key}`"),
                        ));
                        NodeId(0)
                    }
                }
            };
        let list = |l: &Option<Spanned<Vec<Spanned<String>>>>| -> Vec<Spanned<String>> {
            l.as_ref().map(|v| v.get_ref().clone()).unwrap_or_default()
        };
        let kind = match kind_name {
            "play" => {
                let p = list(&def.prompts);
                NodeKind::Play {
                    prompts: prompts(&p, &mut errors),
                    barge_in: def.barge_in.as_ref().is_some_and(|b| *b.get_ref()),
                    next: required(def.next.as_ref(), "next", &mut errors),
                }
            }
            "menu" => {
                let mut compiled = Vec::new();
                if let Some(choices) = &def.choices {
                    for (key, target) in choices.get_ref() {
                        let k = key.get_ref();
                        if k.is_empty() || !k.chars().all(is_dtmf) {
                            errors.push(ctx.error(
                                key.span(),
                                format!("menu choice {k:?} is not a key sequence (0-9, *, #, A-D)"),
                            ));
                        }
                        compiled.push((k.clone(), resolve(target, &mut errors)));
                    }
                }
                if compiled.is_empty() {
                    errors.push(ctx.error(
                        node_span.clone(),
                        "a menu needs at least one choice in `choices`",
                    ));
                }
                NodeKind::Menu(Menu {
                    prompts: prompts(&list(&def.prompts), &mut errors),
                    choices: compiled,
                    invalid_prompts: prompts(&list(&def.invalid_prompts), &mut errors),
                    timeout_prompts: prompts(&list(&def.timeout_prompts), &mut errors),
                    timeout: duration(&def.timeout, DEFAULT_MENU_TIMEOUT, &mut errors),
                    inter_digit_timeout: duration(
                        &def.inter_digit_timeout,
                        DEFAULT_INTER_DIGIT,
                        &mut errors,
                    ),
                    max_failures: def
                        .max_failures
                        .as_ref()
                        .map_or(DEFAULT_MAX_FAILURES, |m| *m.get_ref())
                        .max(1),
                    on_failure: def.on_failure.as_ref().map(|n| resolve(n, &mut errors)),
                })
            }
            "collect" => {
                let max = def.max_digits.as_ref().map_or(0, |m| *m.get_ref());
                let min = def.min_digits.as_ref().map_or(1, |m| *m.get_ref());
                match &def.max_digits {
                    None => errors
                        .push(ctx.error(node_span.clone(), "a collect node needs `max_digits`")),
                    Some(m) if max == 0 || max > 64 => {
                        errors.push(ctx.error(m.span(), "max_digits must be between 1 and 64"))
                    }
                    _ => {}
                }
                if min > max && max > 0 {
                    errors.push(ctx.error(
                        node_span.clone(),
                        format!("min_digits {min} is more than max_digits {max}"),
                    ));
                }
                let term =
                    match &def.terminator {
                        None => None,
                        Some(t) => {
                            let mut chars = t.get_ref().chars();
                            match (chars.next(), chars.next()) {
                                (Some(c), None) if is_dtmf(c) => Some(c),
                                _ => {
                                    errors.push(ctx.error(
                                        t.span(),
                                        "terminator must be one key: 0-9, *, #, A-D",
                                    ));
                                    None
                                }
                            }
                        }
                    };
                let var = match &def.variable {
                    Some(v) => {
                        let name = v.get_ref();
                        if name.is_empty()
                            || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
                        {
                            errors.push(ctx.error(
                                v.span(),
                                format!("variable name {name:?} must be letters, digits and _"),
                            ));
                        }
                        name.clone()
                    }
                    None => {
                        errors
                            .push(ctx.error(node_span.clone(), "a collect node needs `variable`"));
                        String::new()
                    }
                };
                NodeKind::Collect(Collect {
                    prompts: prompts(&list(&def.prompts), &mut errors),
                    variable: var,
                    min_digits: min,
                    max_digits: max,
                    terminator: term,
                    first_digit_timeout: duration(
                        &def.first_digit_timeout,
                        DEFAULT_MENU_TIMEOUT,
                        &mut errors,
                    ),
                    inter_digit_timeout: duration(
                        &def.inter_digit_timeout,
                        DEFAULT_INTER_DIGIT,
                        &mut errors,
                    ),
                    max_attempts: def
                        .max_attempts
                        .as_ref()
                        .map_or(DEFAULT_MAX_FAILURES, |m| *m.get_ref())
                        .max(1),
                    invalid_prompts: prompts(&list(&def.invalid_prompts), &mut errors),
                    timeout_prompts: prompts(&list(&def.timeout_prompts), &mut errors),
                    next: required(def.next.as_ref(), "next", &mut errors),
                    on_failure: def.on_failure.as_ref().map(|n| resolve(n, &mut errors)),
                })
            }
            "goto" => NodeKind::Goto {
                next: required(def.next.as_ref(), "next", &mut errors),
            },
            _ => NodeKind::Hangup,
        };
        nodes.push(Node {
            name: name.get_ref().clone(),
            kind,
        });
    }
    let start = resolve(&file.flow.start, &mut errors);
    if errors.is_empty() {
        Ok(Flow {
            name: file.flow.name.get_ref().clone(),
            file: ctx.file.to_path_buf(),
            start,
            nodes,
        })
    } else {
        Err(errors)
    }
}

fn is_dtmf(c: char) -> bool {
    c.is_ascii_digit() || matches!(c, '*' | '#' | 'A'..='D')
}

/// " (did you mean \"x\"?)" when a known name is close to the unknown one.
fn suggest<'a>(unknown: &str, known: impl Iterator<Item = &'a str>) -> String {
    known
        .map(|k| (edit_distance(unknown, k), k))
        .filter(|(d, k)| *d <= 2.max(k.len() / 3))
        .min()
        .map(|(_, k)| format!(" (did you mean {k:?}?)"))
        .unwrap_or_default()
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut prev = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let cur = row[j + 1];
            row[j + 1] = (prev + usize::from(ca != *cb)).min(row[j] + 1).min(cur + 1);
            prev = cur;
        }
    }
    row[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dir_with(files: &[(&str, &str)]) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("hotline-flowtest-{}", fastrand::u64(..)));
        std::fs::create_dir_all(&dir).unwrap();
        for (name, text) in files {
            std::fs::write(dir.join(name), text).unwrap();
        }
        dir
    }

    fn errors(files: &[(&str, &str)]) -> Vec<String> {
        let dir = dir_with(files);
        let out = load_dir(&dir)
            .err()
            .unwrap_or_default()
            .iter()
            .map(|e| e.to_string())
            .collect();
        std::fs::remove_dir_all(dir).ok();
        out
    }

    const GOOD: &str = r#"
[flow]
name = "demo"
numbers = ["100"]
default = true
start = "hello"

[nodes.hello]
type = "play"
prompts = ["welcome"]
next = "menu"

[nodes.menu]
type = "menu"
prompts = ["main"]
choices = { "1" = "bye", "22" = "bye" }
timeout = "4s"

[nodes.bye]
type = "hangup"
"#;

    #[test]
    fn compiles_and_routes() {
        let dir = dir_with(&[("a.toml", GOOD)]);
        let set = load_dir(&dir).unwrap();
        assert_eq!(set.route("100"), Some(FlowId(0)));
        assert_eq!(set.route("555"), Some(FlowId(0)), "default route");
        assert_eq!(set.prompts, vec!["welcome", "main"]);
        let flow = set.flow(FlowId(0));
        assert_eq!(flow.nodes[flow.start.0 as usize].name, "hello");
        std::fs::remove_dir_all(dir).ok();
    }

    #[test]
    fn unknown_node_reports_file_line_column_and_suggestion() {
        let bad = GOOD.replace("next = \"menu\"", "next = \"mneu\"");
        let errs = errors(&[("a.toml", &bad)]);
        assert_eq!(errs.len(), 1, "{errs:?}");
        assert!(
            errs[0].contains("a.toml:11:8: unknown node \"mneu\" (did you mean \"menu\"?)"),
            "{}",
            errs[0]
        );
        assert!(errs[0].contains("next = \"mneu\""));
    }

    #[test]
    fn unknown_key_and_syntax_errors_have_positions() {
        let bad = GOOD.replace("timeout = \"4s\"", "timeuot = \"4s\"");
        let errs = errors(&[("a.toml", &bad)]);
        assert!(errs[0].contains("a.toml:"), "{errs:?}");
        assert!(errs[0].contains("timeuot"), "{errs:?}");
        let errs = errors(&[("b.toml", "[flow\nname=")]);
        assert!(errs[0].contains("b.toml:1:"), "{errs:?}");
    }

    #[test]
    fn bad_durations_choices_and_duplicates() {
        let bad = GOOD
            .replace("\"4s\"", "\"4 parsecs\"")
            .replace("\"22\"", "\"2x\"");
        let errs = errors(&[("a.toml", &bad)]);
        assert!(
            errs.iter().any(|e| e.contains("unknown duration unit")),
            "{errs:?}"
        );
        assert!(
            errs.iter().any(|e| e.contains("menu choice \"2x\"")),
            "{errs:?}"
        );
        let errs = errors(&[("a.toml", GOOD), ("b.toml", &GOOD.replace("demo", "other"))]);
        assert!(
            errs.iter()
                .any(|e| e.contains("b.toml:4:12: number \"100\" is already routed by")),
            "{errs:?}"
        );
        assert!(
            errs.iter().any(|e| e.contains("second default flow")),
            "{errs:?}"
        );
    }

    #[test]
    fn loader_never_panics_on_mangled_files() {
        let mut rng = fastrand::Rng::with_seed(3);
        let dir = dir_with(&[]);
        for _ in 0..300 {
            let mut text = GOOD.as_bytes().to_vec();
            for _ in 0..rng.usize(1..5) {
                let i = rng.usize(..text.len());
                text[i] = b"\"=[]. \n#x1{}"[rng.usize(..12)];
            }
            std::fs::write(dir.join("f.toml"), &text).unwrap();
            let _ = load_dir(&dir);
        }
        std::fs::remove_dir_all(dir).ok();
    }
}
