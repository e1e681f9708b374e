//! The admin commands around flows: `check` (with flow tests), `try` (a dry run), `graph`
//! (a picture of a flow) and `announce` (the announcement switches).

/// `println!` for output that may go into a pipe (`hotline try ... | head`): once the reader
/// has gone there is nobody to tell, so the command ends quietly with success, as `hotline
/// cdr` does.
macro_rules! out {
    ($($arg:tt)*) => {
        $crate::commands::emit(format_args!($($arg)*))
    };
}

pub fn emit(args: std::fmt::Arguments<'_>) {
    use std::io::Write;
    if let Err(e) = writeln!(std::io::stdout().lock(), "{args}")
        && e.kind() == std::io::ErrorKind::BrokenPipe
    {
        std::process::exit(0);
    }
}

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Instant;

use anyhow::{Context, bail};

use hotline::call::{Catalog, CatalogReport};
use hotline::config::Config;
use hotline::flow::dryrun::{self, Step};
use hotline::flow::flowtest::{self, Answers};
use hotline::flow::switches::{self, Window};
use hotline::flow::{
    ANNOUNCEMENT_DIR, CallInfo, FlowId, FlowSet, LookupRequest, LookupResult, Switches,
};
use hotline::versions::History;

fn local_zone() -> jiff::tz::TimeZone {
    jiff::tz::TimeZone::try_system().unwrap_or(jiff::tz::TimeZone::UTC)
}

fn print_report(report: &CatalogReport) {
    for line in report.errors.iter().chain(report.warnings.iter()) {
        eprintln!("{line}");
    }
}

pub fn check(config: &Config, tests: bool) -> anyhow::Result<ExitCode> {
    let report = Catalog::check(&config.flows_dir, &config.prompts_dir, &config.language)?;
    print_report(&report);
    let Some(catalog) = report.catalog else {
        eprintln!(
            "{}: {} error(s), {} warning(s)",
            config.flows_dir.display(),
            report.errors.len(),
            report.warnings.len()
        );
        return Ok(ExitCode::from(1));
    };
    let acd = if catalog.acd.agents.is_empty() && catalog.acd.queues.is_empty() {
        String::new()
    } else {
        format!(
            "{} agent(s), {} queue(s), ",
            catalog.acd.agents.len(),
            catalog.acd.queues.len()
        )
    };
    out!(
        "{}: {} flow(s), {acd}{} prompt file(s) in {} language(s), {} warning(s): OK",
        config.flows_dir.display(),
        catalog.flows.flows.len(),
        catalog.files.len(),
        catalog.languages().len(),
        report.warnings.len()
    );
    out!("version {}", catalog.version);
    if !tests {
        return Ok(ExitCode::SUCCESS);
    }
    let dir = config.flows_dir.join("tests");
    let mut diags = hotline::flow::Diagnostics::default();
    let cases = flowtest::load_tests(&dir, &catalog.flows, &mut diags);
    for e in &diags.errors {
        eprintln!("{e}");
    }
    let tz = local_zone();
    let mut failed = 0;
    for case in &cases {
        let outcome = flowtest::run(case, &catalog.flows, catalog.default_language(), &tz);
        match &outcome.failure {
            None => out!("ok    {}", outcome.name),
            Some(why) => {
                failed += 1;
                out!("FAIL  {}\n      {}: {why}", outcome.name, outcome.at);
            }
        }
    }
    let passed = cases.len() - failed;
    out!("flow tests: {passed} passed, {failed} failed");
    if failed > 0 || !diags.errors.is_empty() || cases.is_empty() && dir.is_dir() {
        return Ok(ExitCode::from(1));
    }
    Ok(ExitCode::SUCCESS)
}

#[derive(clap::Args)]
pub struct TryArgs {
    /// The flow to walk: its name, or a number it answers.
    flow: String,
    /// The caller's number.
    #[arg(long, default_value = "10000")]
    caller: String,
    /// The number dialled (default: the flow's first number).
    #[arg(long)]
    number: Option<String>,
    /// When the call happens, e.g. 2026-12-01T10:00:00+08:00 (default: now).
    #[arg(long)]
    at: Option<String>,
    /// Keys to press each time the flow listens, in order: --press 1 --press 1234#.
    #[arg(long)]
    press: Vec<String>,
    /// Answer a lookup node instead of asking its back end: NODE=JSON, NODE=timeout,
    /// NODE=fail or NODE=not_found.
    #[arg(long)]
    lookup: Vec<String>,
    /// How queue nodes end: answered, timeout, full, no_agents or key:K (the caller presses
    /// K while waiting).
    #[arg(long, default_value = "no_agents")]
    queue: String,
    /// Let transfers be answered (the walk ends there) instead of failing.
    #[arg(long)]
    transfer_answers: bool,
    /// Take this announcement switch as on, besides those whose files are there now.
    #[arg(long)]
    switch: Vec<String>,
}

/// Answers from the command line; lookups without one go to the real back end.
struct TryOutside {
    given: Answers,
    lookup_ca: Option<PathBuf>,
}

impl dryrun::Outside for TryOutside {
    fn lookup(&mut self, node: &str, request: &LookupRequest) -> LookupResult {
        match self.given.lookups.get(node) {
            Some(r) => r.clone(),
            None => hotline::runtime::fetch_blocking(request, self.lookup_ca.as_deref()),
        }
    }
    fn queue(&mut self, node: &str, queue: &str) -> hotline::flow::QueueExit {
        self.given.queue(node, queue)
    }
    fn transfer(&mut self, node: &str, target: &str) -> bool {
        self.given.transfer(node, target)
    }
    fn record(&mut self, node: &str) -> hotline::flow::RecordOutcome {
        self.given.record(node)
    }
}

/// A flow by its name, a number it answers, or its file (admins tab-complete paths).
fn find_flow(set: &FlowSet, name: &str) -> anyhow::Result<FlowId> {
    let by_file = || {
        let wanted = std::fs::canonicalize(name).ok()?;
        set.flows
            .iter()
            .position(|f| std::fs::canonicalize(&f.file).ok().as_ref() == Some(&wanted))
            .map(|i| FlowId(i as u32))
    };
    set.flow_by_name(name)
        .or_else(|| set.by_number.get(name).copied())
        .or_else(by_file)
        .with_context(|| {
            let names: Vec<&str> = set.flows.iter().map(|f| f.name.as_str()).collect();
            format!(
                "no flow named or answering {name:?} (flows: {})",
                names.join(", ")
            )
        })
}

pub fn dry_run(config: &Config, args: TryArgs) -> anyhow::Result<ExitCode> {
    let report = Catalog::check(&config.flows_dir, &config.prompts_dir, &config.language)?;
    print_report(&report);
    let Some(catalog) = report.catalog else {
        bail!("the flows do not load; fix the errors above first");
    };
    let set = Arc::clone(&catalog.flows);
    let flow = find_flow(&set, &args.flow)?;
    let mut given = Answers {
        queue: Some(flowtest::parse_queue_exit(&args.queue).map_err(anyhow::Error::msg)?),
        transfer_answers: args.transfer_answers,
        ..Default::default()
    };
    for keys in &args.press {
        if let Some(bad) = keys
            .chars()
            .find(|&c| hotline::media::rfc4733::digit_event(c).is_none())
        {
            bail!("--press {keys:?}: {bad:?} is not a key (0-9, *, #, A-D)");
        }
    }
    for l in &args.lookup {
        let (node, answer) = l
            .split_once('=')
            .with_context(|| format!("--lookup {l:?}: write NODE=ANSWER"))?;
        let lookups: Vec<&str> = set
            .flows
            .iter()
            .flat_map(|f| &f.nodes)
            .filter(|n| matches!(n.kind, hotline::flow::NodeKind::Lookup(_)))
            .map(|n| n.name.as_str())
            .collect();
        if !lookups.contains(&node) {
            bail!(
                "--lookup {l:?}: no lookup node is named {node:?} (lookup nodes: {})",
                lookups.join(", ")
            );
        }
        let result = flowtest::parse_answer(answer).map_err(anyhow::Error::msg)?;
        given.lookups.insert(node.to_string(), result);
    }
    let wall = match &args.at {
        Some(at) => flowtest::parse_time(at).map_err(anyhow::Error::msg)?,
        None => jiff::Timestamp::now(),
    };
    let number = args
        .number
        .clone()
        .or_else(|| set.flow(flow).numbers.first().cloned())
        .unwrap_or_default();
    let f = set.flow(flow);
    out!(
        "flow {:?} ({}), caller {} dialling {number:?}, at {wall}",
        f.name,
        f.file.display(),
        args.caller
    );
    let (mut switches, problems) = Switches::read(&config.flows_dir, &local_zone());
    for problem in problems {
        eprintln!("warning: {problem}");
    }
    for name in &args.switch {
        if !switches::valid_name(name) {
            bail!("--switch {name:?}: a switch name is letters, digits, - and _");
        }
        switches.insert(name, Window::default());
    }
    let info = CallInfo {
        caller: args.caller.clone(),
        dialled: number,
        wall,
        started: Instant::now(),
        tz: local_zone(),
        language: catalog.default_language().to_string(),
        switches: std::sync::Arc::new(switches),
    };
    let mut outside = TryOutside {
        given,
        lookup_ca: config.lookup_ca.clone(),
    };
    let walk = dryrun::walk(&set, flow, info, &args.press, &mut outside);
    let mut texts = Transcripts::new(&config.prompts_dir);
    for step in &walk.steps {
        print_step(step, &catalog, &mut texts);
    }
    if !walk.shown_vars.is_empty() {
        let vars: Vec<String> = walk
            .shown_vars
            .iter()
            .map(|(k, v)| format!("{k}={v:?}"))
            .collect();
        out!("variables: {}", vars.join(" "));
    }
    if !walk.survey.is_empty() {
        let answers: Vec<String> = walk
            .survey
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        out!("survey: {}", answers.join(" "));
    }
    if !walk.labels.is_empty() {
        let labels: Vec<String> = walk
            .labels
            .iter()
            .map(|(k, v)| format!("{k}={v:?}"))
            .collect();
        out!("labels: {}", labels.join(" "));
    }
    Ok(ExitCode::SUCCESS)
}

fn print_step(step: &Step, catalog: &Catalog, texts: &mut Transcripts) {
    match step {
        Step::Node { name, kind, exit } if exit.is_empty() => out!("-> {name} [{kind}]"),
        Step::Node { name, kind, exit } => out!("-> {name} [{kind}]  (by {exit:?})"),
        Step::Play { prompts, language } => {
            // Spoken values come as runs of single words: print each run as one line.
            let mut words: Vec<String> = Vec::new();
            let flush = |words: &mut Vec<String>| {
                if !words.is_empty() {
                    out!(
                        "     says  {:?}  (prompts/{language}/say/)",
                        words.join(" ")
                    );
                    words.clear();
                }
            };
            for name in prompts {
                if let Some(word) = name.strip_prefix("say/") {
                    words.push(
                        texts
                            .text(language, name)
                            .unwrap_or_else(|| word.to_string()),
                    );
                    continue;
                }
                flush(&mut words);
                let id = catalog.flows.prompt_id(name);
                let file = id
                    .and_then(|id| catalog.prompt_file(language, id))
                    .map_or_else(|| "(no file)".to_string(), |p| p.display().to_string());
                match texts.text(language, name) {
                    Some(t) => out!("     plays {file}  {t:?}"),
                    None => out!("     plays {file}"),
                }
            }
            flush(&mut words);
        }
        Step::Keys(k) => out!("     caller presses {k}"),
        Step::Timeout(d) => out!("     no key: timeout after {:.1} s", d.as_secs_f64()),
        Step::Lookup { url, result } => out!("     lookup {url} -> {}", describe(result)),
        Step::Record(r) => match r {
            hotline::flow::RecordOutcome::Saved { .. } => {
                out!("     records the caller: a message (dry run)")
            }
            hotline::flow::RecordOutcome::Nothing => out!("     records the caller: nothing"),
        },
        Step::Transfer { target, connected } => out!(
            "     transfers to {target}: {}",
            if *connected {
                "answered, the call is connected there"
            } else {
                "not answered"
            }
        ),
        Step::Queue { queue, exit } => {
            let exit = match exit {
                hotline::flow::QueueExit::Answered => "answered".to_string(),
                hotline::flow::QueueExit::Timeout => "timeout".to_string(),
                hotline::flow::QueueExit::Full => "full".to_string(),
                hotline::flow::QueueExit::NoAgents => "no agents".to_string(),
                hotline::flow::QueueExit::Key(k) => format!("the caller pressed {k}"),
            };
            out!("     queue {queue}: {exit}")
        }
        Step::Hangup => out!("     hangs up"),
        Step::Stopped(why) => out!("     (walk stopped: {why})"),
    }
}

fn describe(r: &LookupResult) -> String {
    match r {
        LookupResult::Ok(v) => v.to_string(),
        LookupResult::NotFound => "not found (404)".into(),
        LookupResult::Failed(why) => format!("failed: {why}"),
    }
}

/// What each prompt says, from `texts.toml` beside the recordings (the text they were made
/// from), per language, then language-neutral.
struct Transcripts {
    dir: PathBuf,
    loaded: HashMap<String, HashMap<String, String>>,
}

impl Transcripts {
    fn new(dir: &Path) -> Self {
        Transcripts {
            dir: dir.to_path_buf(),
            loaded: HashMap::new(),
        }
    }

    fn table(&mut self, sub: &str) -> &HashMap<String, String> {
        let path = self.dir.join(sub).join("texts.toml");
        self.loaded.entry(sub.to_string()).or_insert_with(|| {
            std::fs::read_to_string(&path)
                .ok()
                .and_then(|t| toml::from_str::<HashMap<String, String>>(&t).ok())
                .unwrap_or_default()
        })
    }

    fn text(&mut self, language: &str, name: &str) -> Option<String> {
        if let Some(t) = self.table(language).get(name) {
            return Some(t.clone());
        }
        self.table("").get(name).cloned()
    }
}

/// `hotline announce [NAME [on|off]] [--from T] [--until T]`.
pub struct AnnounceArgs {
    pub name: Option<String>,
    pub state: Option<String>,
    pub from: Option<String>,
    pub until: Option<String>,
}

pub fn announce(config: &Config, args: AnnounceArgs) -> anyhow::Result<ExitCode> {
    let tz = local_zone();
    let now = jiff::Timestamp::now();
    let dir = config.flows_dir.join(ANNOUNCEMENT_DIR);
    let (files, problems) = Switches::read(&config.flows_dir, &tz);
    for problem in &problems {
        eprintln!("warning: {problem}");
    }
    let Some(name) = args.name else {
        // Every switch the flows name, then every file no fixed name covers (switches of a
        // per-area template, or left over).
        let (set, _) = hotline::flow::load_dir(&config.flows_dir);
        let set = set.context("the flows do not load; run `hotline check`")?;
        if set.switches.is_empty() {
            out!("no announcement nodes in {}", config.flows_dir.display());
        }
        for (text, template) in &set.switches {
            match template.literal() {
                Some(name) => out!(
                    "{name}: {}",
                    files
                        .window(&name)
                        .map_or("off".to_string(), |w| w.describe(now, &tz))
                ),
                None => out!("{text}: one switch per value; those on are listed below"),
            }
        }
        for (name, window) in files.iter() {
            if set
                .switches
                .iter()
                .any(|(_, t)| t.literal().as_deref() == Some(name))
            {
                continue;
            }
            let note = if set.uses_switch(name) {
                ""
            } else {
                " (no announcement node names it)"
            };
            out!("{name}: {}{note}", window.describe(now, &tz));
        }
        return Ok(ExitCode::SUCCESS);
    };
    if !switches::valid_name(&name) {
        bail!("{name:?} is not a switch name (letters, digits, - and _)");
    }
    let file = dir.join(format!("{name}.on"));
    if let (Some(set), _) = hotline::flow::load_dir(&config.flows_dir)
        && !set.uses_switch(&name)
    {
        let known: Vec<&str> = set.switches.iter().map(|(t, _)| t.as_str()).collect();
        eprintln!(
            "warning: no announcement node uses the switch {name:?} (switches in use: {})",
            if known.is_empty() {
                "none".to_string()
            } else {
                known.join(", ")
            }
        );
    }
    let window = Window {
        from: args
            .from
            .as_deref()
            .map(|t| switches::parse_time(t, &tz))
            .transpose()
            .map_err(|e| anyhow::anyhow!("--from {e}"))?,
        until: args
            .until
            .as_deref()
            .map(|t| switches::parse_time(t, &tz))
            .transpose()
            .map_err(|e| anyhow::anyhow!("--until {e}"))?,
    };
    if window != Window::default() && args.state.as_deref() != Some("on") {
        bail!("--from and --until go with `on`: hotline announce {name} on --from ... --until ...");
    }
    if let (Some(f), Some(u)) = (window.from, window.until)
        && u <= f
    {
        bail!("--until is not after --from");
    }
    match args.state.as_deref() {
        Some("on") => {
            std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
            // Written aside and renamed, so the watcher never reads half a window.
            let scratch = dir.join(format!(".{name}.on.{}.tmp", std::process::id()));
            std::fs::write(&scratch, window.to_file(&tz))
                .with_context(|| format!("writing {}", scratch.display()))?;
            std::fs::rename(&scratch, &file)
                .with_context(|| format!("writing {}", file.display()))?;
            let when = if window.until.is_some_and(|u| u <= now) {
                "its window is over, so no call hears it"
            } else if window.from.is_some_and(|f| f > now) {
                "new calls hear it once the window opens"
            } else {
                "new calls hear it; a running hotline picks it up by itself"
            };
            out!("{name}: {} ({when})", window.describe(now, &tz));
        }
        Some("off") => {
            match std::fs::remove_file(&file) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(e).with_context(|| format!("removing {}", file.display())),
            }
            out!("{name}: off");
        }
        None => out!(
            "{name}: {}",
            files
                .window(&name)
                .map_or("off".to_string(), |w| w.describe(now, &tz))
        ),
        Some(other) => bail!("{other:?}: say on or off"),
    }
    Ok(ExitCode::SUCCESS)
}

#[derive(Clone, Copy, clap::ValueEnum)]
pub enum GraphFormat {
    Svg,
    Dot,
    Mermaid,
}

pub fn graph(
    config: &Config,
    flow: &str,
    format: GraphFormat,
    output: Option<PathBuf>,
) -> anyhow::Result<ExitCode> {
    let (set, diags) = hotline::flow::load_dir(&config.flows_dir);
    let Some(set) = set else {
        for e in &diags.errors {
            eprintln!("{e}");
        }
        bail!("the flows do not load; fix the errors above first");
    };
    let id = find_flow(&set, flow)?;
    let diagram = hotline::flow::diagram::of_flow(&set, id);
    let text = match format {
        GraphFormat::Svg => hotline::flow::diagram::to_svg(&diagram),
        GraphFormat::Dot => hotline::flow::diagram::to_dot(&diagram),
        GraphFormat::Mermaid => hotline::flow::diagram::to_mermaid(&diagram),
    };
    match output {
        Some(path) => {
            std::fs::write(&path, text).with_context(|| format!("writing {}", path.display()))?
        }
        None => out!("{}", text.trim_end_matches('\n')),
    }
    Ok(ExitCode::SUCCESS)
}

/// `hotline agent-password`: the password (and PIN) from standard input, one line each, to
/// the TOML lines of agents.toml. Only the HA1 hashes are printed, never the password.
pub fn agent_password(
    id: &str,
    extension: Option<&str>,
    realm: &str,
    with_pin: bool,
) -> anyhow::Result<ExitCode> {
    use hotline::acd::load;
    use std::io::BufRead;
    let mut lines = std::io::stdin().lock().lines();
    let mut line = |what: &str| -> anyhow::Result<String> {
        let l = lines
            .next()
            .with_context(|| format!("no {what} on standard input"))??;
        let l = l.trim_end_matches(['\r', '\n']).to_string();
        if l.is_empty() {
            bail!("the {what} is empty");
        }
        Ok(l)
    };
    let password = line("password")?;
    let pin = if with_pin { Some(line("PIN")?) } else { None };
    if let Some(p) = &pin
        && !p.chars().all(|c| c.is_ascii_digit())
    {
        bail!("a PIN is digits only (agents dial *11<PIN>)");
    }
    let user = extension.unwrap_or(id);
    out!("ha1_md5 = \"{}\"", load::ha1_md5(user, realm, &password));
    out!(
        "ha1_sha256 = \"{}\"",
        load::ha1_sha256(user, realm, &password)
    );
    if let Some(p) = pin {
        out!("pin_sha256 = \"{}\"", load::pin_sha256(id, &p));
    }
    Ok(ExitCode::SUCCESS)
}

fn local_time(ms: i64) -> String {
    jiff::Timestamp::from_millisecond(ms)
        .map(|t| {
            t.to_zoned_datetime(local_zone())
                .strftime("%Y-%m-%d %H:%M:%S")
                .to_string()
        })
        .unwrap_or_else(|_| ms.to_string())
}

fn now_ms() -> i64 {
    jiff::Timestamp::now().as_millisecond()
}

/// `hotline versions`: the flow-set versions kept in the history, newest first.
pub fn versions(config: &Config) -> anyhow::Result<ExitCode> {
    let history = History::new(&config.flow_history_dir);
    let manifests = history.manifests()?;
    if manifests.is_empty() {
        out!(
            "no versions kept in {} yet: a running hotline keeps each version it applies",
            history.dir().display()
        );
        return Ok(ExitCode::SUCCESS);
    }
    let applied = history.applied()?;
    let running = applied.last().map(|a| a.id.clone());
    out!("version       kept                 last applied         files  note");
    for m in manifests.iter().rev() {
        let last = applied
            .iter()
            .rev()
            .find(|a| a.id == m.id)
            .map_or("-".to_string(), |a| local_time(a.at_ms));
        let note = if Some(&m.id) == running.as_ref() {
            "running (last applied)"
        } else if last == "-" && m.kind == "replaced" {
            "files a rollback replaced (never applied)"
        } else if last == "-" {
            "never applied (edited while loading)"
        } else {
            ""
        };
        out!(
            "{:<12}  {:<19}  {:<19}  {:>5}  {note}",
            m.id,
            local_time(m.created_ms),
            last,
            m.entries.len()
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// `hotline rollback [VERSION]`: writes a kept version's files back (the previous applied one
/// by default); a running server's file watch applies them.
pub fn rollback(
    config: &Config,
    version: Option<String>,
    wait: std::time::Duration,
) -> anyhow::Result<ExitCode> {
    let history = History::new(&config.flow_history_dir);
    let target = match &version {
        Some(v) => history.resolve(v)?,
        None => history.previous()?,
    };
    let started = now_ms();
    let saved = history
        .restore(&target, &config.flows_dir, &config.prompts_dir, started)
        .context("restoring the files")?;
    out!(
        "restored version {} (kept {}) into {} and {}",
        target.id,
        local_time(target.created_ms),
        config.flows_dir.display(),
        config.prompts_dir.display()
    );
    if saved.id != target.id {
        out!(
            "the files it replaced are kept as version {} (`hotline rollback {}` brings them back)",
            saved.id,
            saved.id
        );
    }
    // The restored files as the server will see them: a language folder removed since, for
    // one, would make the server refuse them. A version that ran before is put back only
    // whole: if it no longer loads, what was there returns. A version that never ran (an
    // edit a rollback replaced) is left on disk to be fixed, since that is why it was asked for.
    let report = Catalog::check(&config.flows_dir, &config.prompts_dir, &config.language)?;
    if report.catalog.is_none() {
        print_report(&report);
        let ran_before = history.applied()?.iter().any(|a| a.id == target.id);
        if ran_before && saved.id != target.id {
            history
                .restore(&saved, &config.flows_dir, &config.prompts_dir, now_ms())
                .context("putting the replaced files back")?;
            bail!(
                "version {} does not load here any more; the files that were there are back",
                target.id
            );
        }
        bail!(
            "the restored files do not load; the running server keeps its version until they are fixed"
        );
    }
    if wait.is_zero() {
        return Ok(ExitCode::SUCCESS);
    }
    let deadline = std::time::Instant::now() + wait;
    while std::time::Instant::now() < deadline {
        let applied = history.applied()?;
        if let Some(a) = applied.iter().rev().find(|a| a.at_ms >= started) {
            if a.id == target.id {
                out!(
                    "a running hotline applied version {}: new calls use it",
                    target.id
                );
            } else {
                out!(
                    "a running hotline applied version {}, not {} (the files changed again since)",
                    a.id,
                    target.id
                );
            }
            return Ok(ExitCode::SUCCESS);
        }
        if applied.last().is_some_and(|a| a.id == target.id) && saved.id == target.id {
            out!("version {} was on disk and running already", target.id);
            return Ok(ExitCode::SUCCESS);
        }
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    out!(
        "no running hotline applied it within {} s (is one running with this history, {}? \
         With [reload] watch = false, send it SIGHUP.)",
        wait.as_secs(),
        history.dir().display()
    );
    Ok(ExitCode::SUCCESS)
}

/// `hotline user-password NAME --role R`: reads a password from standard input and prints the
/// `[[user]]` table to paste into the API's users file (the password as an argon2id hash).
pub fn user_password(
    name: &str,
    role: &str,
    agent: Option<&str>,
    teams: &[String],
) -> anyhow::Result<ExitCode> {
    use std::io::BufRead;
    if !["agent", "supervisor", "admin"].contains(&role) {
        bail!("--role is agent, supervisor or admin");
    }
    if role == "agent" && agent.is_none() {
        bail!("an agent user names the agent id: --agent 1001");
    }
    let line = std::io::stdin()
        .lock()
        .lines()
        .next()
        .context("no password on standard input")??;
    let password = line.trim_end_matches(['\r', '\n']);
    if password.chars().count() < 8 {
        bail!("a password of at least 8 characters, please");
    }
    if password.len() > hotline::api::auth::MAX_PASSWORD {
        bail!(
            "a password of at most {} bytes",
            hotline::api::auth::MAX_PASSWORD
        );
    }
    let hash = hotline::api::auth::hash_password(password).map_err(anyhow::Error::msg)?;
    let quote = |s: &str| toml::Value::String(s.to_string()).to_string();
    out!("[[user]]");
    out!("name = {}", quote(name));
    out!("role = {}", quote(role));
    if let Some(a) = agent {
        out!("agent = {}", quote(a));
    }
    if !teams.is_empty() {
        let list: Vec<String> = teams.iter().map(|t| quote(t)).collect();
        out!("teams = [{}]", list.join(", "));
    }
    out!("password = {}", quote(&hash));
    Ok(ExitCode::SUCCESS)
}

pub struct ReportArgs {
    pub from: Option<String>,
    pub to: Option<String>,
    pub interval: String,
    pub by: String,
}

/// `hotline report`: the indicators from the CDR database, rendered by `render`.
pub fn report(
    config: &Config,
    args: ReportArgs,
    render: fn(&hotline::report::Report) -> String,
) -> anyhow::Result<String> {
    use hotline::report::{self, GroupBy, Interval, intervals};
    let settings = &config.report;
    let tz = &settings.time_zone;
    let now = jiff::Timestamp::now();
    let from = match &args.from {
        Some(text) => {
            intervals::parse_local(text, tz).map_err(|e| anyhow::anyhow!("--from: {e}"))?
        }
        None => now
            .to_zoned_datetime(tz.clone())
            .start_of_day()
            .map(|z| z.timestamp().as_millisecond())
            .unwrap_or(now.as_millisecond()),
    };
    let to = match &args.to {
        Some(text) => intervals::parse_local(text, tz).map_err(|e| anyhow::anyhow!("--to: {e}"))?,
        None => now.as_millisecond(),
    };
    let request = report::ReportRequest {
        from_ms: from,
        to_ms: to,
        interval: Interval::parse(&args.interval)
            .map_err(|e| anyhow::anyhow!("--interval: {e}"))?,
        by: GroupBy::parse(&args.by).map_err(|e| anyhow::anyhow!("--by: {e}"))?,
    };
    // Shifts given by team need the agents file; a report without it still runs.
    let (acd, _) = hotline::acd::load::load_dir(&config.flows_dir);
    let directory = acd
        .as_ref()
        .map(report::Directory::from_acd)
        .unwrap_or_default();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let database = &config.database;
    let result = runtime.block_on(async {
        let store = hotline::cdr::store::CdrStore::connect(database).await?;
        store.migrate().await?;
        report::run(&store, settings, &directory, &request)
            .await
            .map_err(anyhow::Error::from)
    });
    let report = result.with_context(|| {
        format!(
            "reporting from {}",
            hotline::cdr::store::redact_url(database)
        )
    })?;
    Ok(render(&report))
}
