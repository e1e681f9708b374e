//! The `hotline` command: serve, check flows, print CDRs, and generate load.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand, ValueEnum};

use hotline::config::{Config, Overrides};

mod commands;

#[derive(Parser)]
#[command(
    name = "hotline",
    version,
    about = "A SIP/RTP IVR server for service hotlines"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Answer calls and run the IVR flows (Ctrl-C or SIGTERM drains calls and stops;
    /// SIGHUP reloads flows and prompts).
    Serve {
        /// TOML configuration file (see hotline.example.toml); every key is optional.
        #[arg(long)]
        config: Option<PathBuf>,
        /// SIP address, e.g. 0.0.0.0:5060.
        #[arg(long)]
        sip_bind: Option<String>,
        /// RTP port range, e.g. 20000-29999.
        #[arg(long)]
        rtp_ports: Option<String>,
        /// CDR database URL: sqlite://FILE or postgres://USER:PASS@HOST/DB.
        #[arg(long)]
        database: Option<String>,
        #[arg(long)]
        flows: Option<PathBuf>,
        #[arg(long)]
        prompts: Option<PathBuf>,
    },
    /// Check flows and prompts without serving; exits non-zero on any error.
    Check {
        /// Flow directory (default ./ivr-flows).
        dir: Option<PathBuf>,
        #[arg(long)]
        prompts: Option<PathBuf>,
        #[arg(long)]
        config: Option<PathBuf>,
        /// Also run the flow tests in DIR/tests/*.toml.
        #[arg(long)]
        tests: bool,
    },
    /// Walk a flow without a call: every node, prompt (file and text) and branch, with keys
    /// pressed from --press and look-ups answered by the back end or by --lookup.
    Try {
        #[command(flatten)]
        args: commands::TryArgs,
        #[arg(long)]
        flows: Option<PathBuf>,
        #[arg(long)]
        prompts: Option<PathBuf>,
        #[arg(long)]
        config: Option<PathBuf>,
    },
    /// Draw a flow: nodes, key-labelled arrows and exits, as SVG (no other program needed),
    /// Graphviz DOT or Mermaid.
    Graph {
        /// The flow: its name, or a number it answers.
        flow: String,
        #[arg(long, value_enum, default_value_t = commands::GraphFormat::Svg)]
        format: commands::GraphFormat,
        /// Write to this file instead of standard output.
        #[arg(long, short)]
        output: Option<PathBuf>,
        #[arg(long)]
        flows: Option<PathBuf>,
        #[arg(long)]
        config: Option<PathBuf>,
    },
    /// Serve the demo flow's stand-in CRM and billing back end (customers and accounts).
    DemoBackend {
        #[arg(long, default_value = "127.0.0.1:8090")]
        bind: std::net::SocketAddr,
    },
    /// Turn an announcement switch on or off (no arguments: list them).
    Announce {
        name: Option<String>,
        /// on or off (none: show the switch).
        state: Option<String>,
        /// With `on`: the notice starts playing then (e.g. "2026-12-10 22:00", local time,
        /// or with an offset).
        #[arg(long)]
        from: Option<String>,
        /// With `on`: the notice stops playing then, by itself.
        #[arg(long)]
        until: Option<String>,
        #[arg(long)]
        flows: Option<PathBuf>,
        #[arg(long)]
        config: Option<PathBuf>,
    },
    /// List the versions of the flows and prompts a running server has kept (newest first).
    Versions {
        #[arg(long)]
        flows: Option<PathBuf>,
        #[arg(long)]
        prompts: Option<PathBuf>,
        #[arg(long)]
        config: Option<PathBuf>,
    },
    /// Put an earlier version of the flows and prompts back (default: the one applied before
    /// the running one); a running server picks the files up by itself.
    Rollback {
        /// A version from `hotline versions` (its first characters will do).
        version: Option<String>,
        /// How long to wait for a running server to apply it (0: do not wait).
        #[arg(long, default_value_t = 10)]
        wait: u64,
        #[arg(long)]
        flows: Option<PathBuf>,
        #[arg(long)]
        prompts: Option<PathBuf>,
        #[arg(long)]
        config: Option<PathBuf>,
    },
    /// Make an agent's digest credentials for ivr-flows/acd/agents.toml: reads the password
    /// (and with --pin the login PIN) from standard input, one line each, and prints the
    /// lines to paste.
    AgentPassword {
        /// The agent's id.
        id: String,
        /// The digest user name: the agent's extension (default: the id).
        #[arg(long)]
        extension: Option<String>,
        /// The digest realm the server challenges with.
        #[arg(long, default_value = hotline::acd::load::DEFAULT_REALM)]
        realm: String,
        /// Also read a PIN (the second line) for feature-code login.
        #[arg(long)]
        pin: bool,
    },
    /// Make a CTI API user: reads the password from standard input and prints the [[user]]
    /// table to paste into the users file ([api] users).
    UserPassword {
        /// The login name.
        name: String,
        /// agent, supervisor or admin.
        #[arg(long)]
        role: String,
        /// The agent id an agent user is (from ivr-flows/acd/agents.toml).
        #[arg(long)]
        agent: Option<String>,
        /// A team a supervisor sees (repeatable).
        #[arg(long)]
        team: Vec<String>,
    },
    /// Print recent call detail records.
    Cdr {
        #[arg(long, default_value = "sqlite://hotline.db")]
        database: String,
        #[arg(long, default_value_t = 20)]
        last: u32,
        #[arg(long, value_enum, default_value_t = Format::Table)]
        format: Format,
        /// Only this call: hotline's call id or the SIP Call-ID.
        #[arg(long)]
        call: Option<String>,
        /// List the agent offers (rings) of the calls instead of the calls.
        #[arg(long)]
        offers: bool,
        /// Count every stored call by the value of this label (e.g. call_type), instead of
        /// listing calls.
        #[arg(long, value_name = "LABEL", conflicts_with_all = ["call", "offers", "last"])]
        by: Option<String>,
    },
    /// The call-center indicators (service level, ASA, abandon rate, AHT, occupancy, ...) per
    /// interval and per queue, agent or team, from the CDR database; definitions in
    /// docs/indicators.md.
    Report {
        #[arg(long)]
        config: Option<PathBuf>,
        /// The CDR database (default: the config's).
        #[arg(long)]
        database: Option<String>,
        /// Where the agents file is, for shifts given by team (default: the config's).
        #[arg(long)]
        flows: Option<PathBuf>,
        /// First day (or "YYYY-MM-DD HH:MM") in the report's time zone; default: today.
        #[arg(long)]
        from: Option<String>,
        /// End, exclusive; default: now.
        #[arg(long)]
        to: Option<String>,
        /// 30m, hour, day, week, month or all.
        #[arg(long, default_value = "day")]
        interval: String,
        /// queue, agent, team, or all (one row per interval).
        #[arg(long, default_value = "all")]
        by: String,
        #[arg(long, value_enum, default_value_t = ReportFormat::Table)]
        format: ReportFormat,
    },
    /// Place concurrent test calls against a hotline on this machine (loopback only) and
    /// report completion, setup latency, RTP loss and jitter, and server CPU and memory.
    Load(LoadArgs),
    #[command(name = "floor-server", hide = true)]
    FloorServer {
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
}

#[derive(clap::Args)]
struct LoadArgs {
    /// The hotline's SIP address, e.g. 127.0.0.1:5060.
    target: std::net::SocketAddr,
    #[arg(long, default_value_t = 10)]
    calls: u32,
    /// New calls per second.
    #[arg(long, default_value_t = 5.0)]
    cps: f64,
    /// Seconds each call stays up.
    #[arg(long, default_value_t = 30.0)]
    hold: f64,
    /// The server's process id, to measure its CPU time and peak memory.
    #[arg(long)]
    server_pid: Option<u32>,
    /// Also measure the floor: the least CPU plain UDP sockets need for the same streams.
    #[arg(long)]
    floor: bool,
    #[arg(long, default_value = "100")]
    number: String,
    /// Keys pressed (RFC 4733) every --digit-interval seconds.
    #[arg(long, default_value = "1")]
    digits: String,
    #[arg(long, default_value_t = 3.0)]
    digit_interval: f64,
    /// pcmu or pcma.
    #[arg(long, default_value = "pcmu")]
    codec: String,
    #[arg(long, default_value = "127.0.0.1")]
    local_ip: std::net::IpAddr,
    /// What callers send: silence or speech (with --agents: always their signature).
    #[arg(long, default_value = "silence")]
    caller_audio: String,
    /// Agents: SIP phones that REGISTER (digest) and answer, echoing the audio they get.
    #[arg(long, default_value_t = 0)]
    agents: u32,
    /// The first agent's extension (its SIP user name); the others follow.
    #[arg(long, default_value_t = 2000)]
    agent_base: u32,
    #[arg(long, default_value = "secret")]
    agent_password: String,
    /// Seconds from an offered INVITE to the agent's 200.
    #[arg(long, default_value_t = 1.0)]
    agent_answer_delay: f64,
    /// Share of agents (0..1) that never answer: they ring until CANCEL.
    #[arg(long, default_value_t = 0.0)]
    agent_no_answer_share: f64,
    /// Share of agents (0..1) that refuse every offer at once (486 or 603).
    #[arg(long, default_value_t = 0.0)]
    agent_decline_share: f64,
    /// Seconds after answering that agents hang up (default: they wait for the caller).
    #[arg(long)]
    agent_talk: Option<f64>,
    /// Expires the agents ask for; they refresh at half the granted time.
    #[arg(long, default_value_t = 300)]
    agent_register_expires: u32,
    /// Digest algorithm when offered several: auto (SHA-256 first), sha256 or md5.
    #[arg(long, default_value = "auto")]
    agent_digest: String,
    /// A feature code each agent calls once after registering (e.g. "*13").
    #[arg(long)]
    agent_login_code: Option<String>,
    /// Print a neutral TOML description of the agents (extension, password, HA1 hashes)
    /// in the named queue, and exit without placing calls.
    #[arg(long, value_name = "QUEUE")]
    print_agents_toml: Option<String>,
    /// Agent desktops on the CTI event stream (WebSocket), connected before the callers:
    /// desktop i logs in as API user `desktop-base + i`. Reports each agent-state event's
    /// latency from the state change.
    #[arg(long, default_value_t = 0)]
    desktops: u32,
    /// The server's API address (loopback), for the desktops.
    #[arg(long)]
    api: Option<std::net::SocketAddr>,
    #[arg(long, default_value_t = 2000)]
    desktop_base: u32,
    #[arg(long, default_value = "secret-desk")]
    desktop_password: String,
    #[arg(long, value_enum, default_value_t = Format::Table)]
    format: Format,
}

#[derive(Clone, Copy, ValueEnum)]
enum Format {
    Table,
    Json,
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum ReportFormat {
    Table,
    Csv,
    Json,
}

fn write_stdout(text: &str) -> anyhow::Result<ExitCode> {
    let mut out = std::io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        // `hotline cdr | head`: the reader has all it wanted.
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => {}
        r => r.context("writing CDRs to stdout")?,
    }
    Ok(ExitCode::SUCCESS)
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| {
                // The admin commands print their own findings; only problems go to the log.
                match cli.command {
                    // PostgreSQL's notices ("relation already exists, skipping" from the
                    // idempotent migrations) come through sqlx at INFO on every start.
                    Command::Serve { .. } | Command::Load(_) | Command::DemoBackend { .. } => {
                        "info,sqlx::postgres::notice=warn"
                    }
                    _ => "warn",
                }
                .into()
            }),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    match run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("hotline: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// The configuration the flow commands read: the file if given, with the directories the
/// command line names.
fn flow_config(
    file: Option<PathBuf>,
    flows: Option<PathBuf>,
    prompts: Option<PathBuf>,
) -> anyhow::Result<Config> {
    let overrides = Overrides {
        flows,
        prompts,
        ..Default::default()
    };
    Ok(Config::load(file.as_deref(), &overrides)?)
}

fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Serve {
            config,
            sip_bind,
            rtp_ports,
            database,
            flows,
            prompts,
        } => {
            let overrides = Overrides {
                sip_bind,
                rtp_ports,
                database,
                flows,
                prompts,
            };
            let config = Config::load(config.as_deref(), &overrides)?;
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()?;
            runtime.block_on(hotline::runtime::serve(config))?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Check {
            dir,
            prompts,
            config,
            tests,
        } => commands::check(&flow_config(config, dir, prompts)?, tests),
        Command::Try {
            args,
            flows,
            prompts,
            config,
        } => commands::dry_run(&flow_config(config, flows, prompts)?, args),
        Command::Graph {
            flow,
            format,
            output,
            flows,
            config,
        } => commands::graph(&flow_config(config, flows, None)?, &flow, format, output),
        Command::DemoBackend { bind } => {
            hotline::demo::run(bind)?;
            Ok(ExitCode::SUCCESS)
        }
        Command::UserPassword {
            name,
            role,
            agent,
            team,
        } => commands::user_password(&name, &role, agent.as_deref(), &team),
        Command::AgentPassword {
            id,
            extension,
            realm,
            pin,
        } => commands::agent_password(&id, extension.as_deref(), &realm, pin),
        Command::Report {
            config,
            database,
            flows,
            from,
            to,
            interval,
            by,
            format,
        } => {
            let overrides = Overrides {
                flows,
                database,
                ..Default::default()
            };
            let config = Config::load(config.as_deref(), &overrides)?;
            if let Some(path) = sqlite_file(&config.database)
                && !path.exists()
            {
                anyhow::bail!("no CDR database at {}", path.display());
            }
            let text = commands::report(
                &config,
                commands::ReportArgs {
                    from,
                    to,
                    interval,
                    by,
                },
                match format {
                    ReportFormat::Table => hotline::report::format::table,
                    ReportFormat::Csv => hotline::report::format::csv,
                    ReportFormat::Json => |r: &hotline::report::Report| {
                        hotline::report::format::json(r).to_string() + "\n"
                    },
                },
            )?;
            write_stdout(&text)
        }
        Command::Versions {
            flows,
            prompts,
            config,
        } => commands::versions(&flow_config(config, flows, prompts)?),
        Command::Rollback {
            version,
            wait,
            flows,
            prompts,
            config,
        } => commands::rollback(
            &flow_config(config, flows, prompts)?,
            version,
            std::time::Duration::from_secs(wait),
        ),
        Command::Announce {
            name,
            state,
            from,
            until,
            flows,
            config,
        } => {
            let config = flow_config(config, flows, None)?;
            let args = commands::AnnounceArgs {
                name,
                state,
                from,
                until,
            };
            commands::announce(&config, args)
        }
        Command::Cdr {
            database,
            last,
            format,
            call,
            offers,
            by,
        } => {
            // The store creates a missing SQLite file, which suits the server; a report on a
            // mistyped path would print an empty table and leave a stray database behind.
            if let Some(path) = sqlite_file(&database)
                && !path.exists()
            {
                anyhow::bail!("no CDR database at {}", path.display());
            }
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            if let Some(label) = by {
                let groups = runtime
                    .block_on(async {
                        let store = hotline::cdr::store::CdrStore::connect(&database).await?;
                        store.migrate().await?;
                        store.by_label(&label).await
                    })
                    .with_context(|| {
                        format!(
                            "reading CDRs from {}",
                            hotline::cdr::store::redact_url(&database)
                        )
                    })?;
                use hotline::cdr::report;
                let text = match format {
                    Format::Table => report::format_label_groups(&label, &groups),
                    Format::Json => report::format_label_groups_json(&groups) + "\n",
                };
                return write_stdout(&text);
            }
            let records = runtime
                .block_on(async {
                    let store = hotline::cdr::store::CdrStore::connect(&database).await?;
                    store.migrate().await?;
                    match &call {
                        Some(call) => store.find(call).await,
                        None => store.last(last).await,
                    }
                })
                .with_context(|| {
                    format!(
                        "reading CDRs from {}",
                        hotline::cdr::store::redact_url(&database)
                    )
                })?;
            if let Some(call) = &call
                && records.is_empty()
            {
                anyhow::bail!(
                    "no call {call:?} in {}",
                    hotline::cdr::store::redact_url(&database)
                );
            }
            use hotline::cdr::report;
            let text = match (format, offers) {
                (Format::Table, false) => report::format_table(&records),
                (Format::Json, false) => report::format_json(&records) + "\n",
                (Format::Table, true) => report::format_offers_table(&records),
                (Format::Json, true) => report::format_offers_json(&records) + "\n",
            };
            write_stdout(&text)
        }
        Command::Load(a) => {
            let mut opts = hotline::load::LoadOptions::new(a.target);
            opts.calls = a.calls;
            opts.cps = a.cps;
            opts.hold = std::time::Duration::from_secs_f64(a.hold);
            opts.server_pid = a.server_pid;
            opts.floor = a.floor;
            opts.number = a.number;
            opts.digits = a.digits;
            opts.digit_interval = std::time::Duration::from_secs_f64(a.digit_interval);
            opts.codec = hotline::media::Codec::from_encoding_name(&a.codec)
                .with_context(|| format!("--codec {}: use pcmu or pcma", a.codec))?;
            opts.local_ip = a.local_ip;
            opts.caller_audio = a
                .caller_audio
                .parse()
                .map_err(|e| anyhow::anyhow!("--caller-audio: {e}"))?;
            if let Some(queue) = &a.print_agents_toml {
                print!(
                    "{}",
                    hotline::load::agents_toml(a.agent_base, a.agents, &a.agent_password, queue)
                );
                return Ok(ExitCode::SUCCESS);
            }
            let secs = |name: &str, v: f64| {
                (v.is_finite() && v >= 0.0)
                    .then(|| std::time::Duration::from_secs_f64(v))
                    .with_context(|| format!("{name} {v}: seconds, 0 or more"))
            };
            opts.agents = hotline::load::AgentOptions {
                count: a.agents,
                base: a.agent_base,
                password: a.agent_password,
                answer_delay: secs("--agent-answer-delay", a.agent_answer_delay)?,
                no_answer_share: a.agent_no_answer_share,
                decline_share: a.agent_decline_share,
                talk: a.agent_talk.map(|t| secs("--agent-talk", t)).transpose()?,
                register_expires: a.agent_register_expires,
                digest: a
                    .agent_digest
                    .parse()
                    .map_err(|e| anyhow::anyhow!("--agent-digest: {e}"))?,
                login_code: a.agent_login_code,
            };
            opts.desktops = hotline::load::DesktopOptions {
                api: a.api,
                count: a.desktops,
                base: a.desktop_base,
                password: a.desktop_password,
            };
            let report = hotline::load::run(opts)?;
            match a.format {
                Format::Table => print!("{}", hotline::load::format_table(&report)),
                Format::Json => println!("{}", hotline::load::format_json(&report)),
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::FloorServer { args } => {
            hotline::load::run_floor_server(hotline::load::FloorServerArgs::from_args(args)?)?;
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// The file a SQLite CDR URL names, read as the store reads it (`sqlite://PATH`, `sqlite:PATH`
/// or a bare path, each maybe with `?options`); None for PostgreSQL and in-memory databases.
fn sqlite_file(url: &str) -> Option<PathBuf> {
    let url = url.trim();
    let lower = url.to_ascii_lowercase();
    let (rest, encoded) = if lower.starts_with("sqlite://") {
        (&url["sqlite://".len()..], true)
    } else if lower.starts_with("sqlite:") {
        (&url["sqlite:".len()..], true)
    } else if url.contains("://") {
        return None;
    } else {
        (url, false)
    };
    let (path, query) = if encoded {
        rest.split_once('?').unwrap_or((rest, ""))
    } else {
        (rest, "")
    };
    if path.is_empty() || path == ":memory:" || query.split('&').any(|p| p == "mode=memory") {
        return None;
    }
    Some(PathBuf::from(if encoded {
        percent_decode(path)
    } else {
        path.to_string()
    }))
}

/// URL paths may carry %XX escapes (a space, a '?'); the file system needs the bytes.
fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes
            .get(i + 1..i + 3)
            .filter(|h| h.iter().all(u8::is_ascii_hexdigit))
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match (bytes[i], hex) {
            (b'%', Some(b)) => {
                out.push(b);
                i += 3;
            }
            (b, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}
