//! Configuration: a TOML file (every key optional, documented in hotline.example.toml) and
//! command-line overrides, checked into a typed `Config` once at start-up.

use std::net::{IpAddr, SocketAddr};
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::time::Duration;

use toml::de::{DeTable, DeValue};

use crate::core::duration::parse_duration;
use crate::sip::admission::TrustedNets;

mod diagnostics;
mod file;

use diagnostics::syntax_error;
use file::*;

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{path}: cannot read config: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}:{line}:{column}: {message}")]
    Syntax {
        path: PathBuf,
        line: usize,
        column: usize,
        message: String,
    },
    #[error("config key `{key}`: {message}")]
    Invalid { key: &'static str, message: String },
    /// A command-line value that overrides `key`: the flag is what the admin typed.
    #[error("{flag} (config key `{key}`): {message}")]
    Flag {
        flag: &'static str,
        key: &'static str,
        message: String,
    },
}

impl ConfigError {
    /// Blame the flag when the value came from the command line, the key when from the file.
    fn of(key: &'static str, flag: Option<&'static str>, message: String) -> ConfigError {
        match flag {
            Some(flag) => ConfigError::Flag { flag, key, message },
            None => ConfigError::Invalid { key, message },
        }
    }
}

/// The CTI API, when `[api] bind` is set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiSettings {
    pub bind: std::net::SocketAddr,
    pub users: PathBuf,
    /// Certificate and key (PEM) for HTTPS.
    pub tls: Option<(PathBuf, PathBuf)>,
    pub session_idle: Duration,
    pub session_max: Duration,
    pub max_connections: usize,
    pub max_connections_per_address: usize,
    /// A whole request, body included, must arrive within this.
    pub request_timeout: Duration,
}

/// What a call hotline places on a caller's behalf (a transfer, to a number or a URI)
/// presents as the calling number. The caller's own number is whatever their From said,
/// SIP over TLS: where to listen (the SIP address's IP) and the server's certificate chain and
/// private key, PEM files read at start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsConfig {
    pub port: u16,
    pub certificate: PathBuf,
    pub key: PathBuf,
}

/// Whether calls' audio is encrypted (SRTP with SDES keys, RFC 4568).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SrtpMode {
    /// Plain RTP only; an offer of SRTP alone is refused.
    Off,
    /// SRTP when the caller offers it; hotline offers it to phones it calls over TLS.
    #[default]
    Optional,
    /// Every call's audio is encrypted: plain offers are refused, hotline offers only SRTP.
    Required,
}

impl SrtpMode {
    pub fn parse(text: &str) -> Option<SrtpMode> {
        match text.trim() {
            "off" => Some(SrtpMode::Off),
            "optional" => Some(SrtpMode::Optional),
            "required" => Some(SrtpMode::Required),
            _ => None,
        }
    }
}

/// unauthenticated: passing it to a trunk lets anyone dialling in present any number
/// onwards, so the default is the hotline number they dialled, which is ours.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OutboundCallerId {
    Dialled,
    /// Pass the caller's number through (a trunk that checks or wants it).
    Caller,
    Fixed(String),
}

impl OutboundCallerId {
    pub fn parse(text: &str) -> Option<OutboundCallerId> {
        match text.trim() {
            "dialled" | "dialed" => Some(OutboundCallerId::Dialled),
            "caller" => Some(OutboundCallerId::Caller),
            n if !n.is_empty()
                && n.len() <= 32
                && n.trim_start_matches('+')
                    .chars()
                    .all(|c| c.is_ascii_digit())
                && n.chars().any(|c| c.is_ascii_digit()) =>
            {
                Some(OutboundCallerId::Fixed(n.to_string()))
            }
            _ => None,
        }
    }

    /// The number to present for a call from `caller` who dialled `dialled`.
    pub fn present<'a>(&'a self, caller: &'a str, dialled: &'a str) -> &'a str {
        match self {
            OutboundCallerId::Dialled => dialled,
            OutboundCallerId::Caller => caller,
            OutboundCallerId::Fixed(n) => n,
        }
    }
}

/// Checked configuration.
#[derive(Debug, Clone)]
pub struct Config {
    pub sip_bind: SocketAddr,
    /// Host (and optional port) written into Contact and Via; None: derived per call.
    pub advertised_host: Option<String>,
    /// Where transfers to a number go (a SIP gateway or trunk): IP address and port.
    pub outbound: Option<SocketAddr>,
    /// The number calls placed towards others present as theirs (From).
    pub outbound_caller_id: OutboundCallerId,
    /// How the outbound gateway is reached: UDP, or a connection hotline opens (TCP, TLS).
    pub outbound_transport: crate::sip::TransportKind,
    /// Certificates of the authorities trusted for connections hotline opens over TLS (a trunk,
    /// an agent at a fixed `sips:` URI); None: the system's bundle.
    pub tls_ca: Option<PathBuf>,
    /// The name the outbound gateway's certificate must carry; None: its IP address.
    pub outbound_tls_name: Option<String>,
    pub sip_tcp: bool,
    /// SIP over TLS, when a certificate and key are configured.
    pub tls: Option<TlsConfig>,
    /// TCP connections in all (fewer if the open-file limit leaves less) and per address.
    pub tcp_connections: usize,
    pub tcp_per_ip: usize,
    /// A TCP connection must deliver each whole message within this (slow senders go).
    pub tcp_message_timeout: Duration,
    pub max_calls: u32,
    pub retry_after: Duration,
    pub answer_delay: Duration,
    /// New calls per second one source address may start (twice as many in a burst); 0: no
    /// limit. Sources in `trusted` are exempt.
    pub source_call_rate: u32,
    /// Calls one source address may have at once; 0: no limit.
    pub source_max_calls: u32,
    /// Trunks and gateways: never limited per source. The outbound gateway is added.
    pub trusted: TrustedNets,
    /// An answered call whose ACK has not come within this is ended.
    pub ack_timeout: Duration,
    pub rtp_ports: (u16, u16),
    /// The address put in SDP; None: the address the caller reached us on.
    pub media_address: Option<IpAddr>,
    pub rtp_timeout: Duration,
    /// A stream that has heard nothing at all from its caller for this long is ended (an SDP
    /// naming a third party, or a dead call); zero: only `rtp_timeout` applies.
    pub first_packet_timeout: Duration,
    /// Media (RTP pacing) threads; each stream lives on one of them.
    pub media_threads: usize,
    pub srtp: SrtpMode,
    pub flows_dir: PathBuf,
    pub prompts_dir: PathBuf,
    /// Where `record` nodes save callers' messages (one subdirectory a day).
    pub recordings_dir: PathBuf,
    /// Where the server keeps each flow-set version it applies, for `hotline rollback`.
    pub flow_history_dir: PathBuf,
    pub language: String,
    /// Authorities trusted for https:// look-up back ends (PEM); None: the system's.
    pub lookup_ca: Option<PathBuf>,
    pub database: String,
    pub cdr_spool: PathBuf,
    pub shutdown_grace: Duration,
    /// Reload flows and prompts when their files change (SIGHUP reloads either way).
    pub reload_watch: bool,
    /// How often the flow and prompt directories are checked for changes.
    pub reload_poll: Duration,
    /// Agents' phones: registration lengths, keep-alive, failed-login throttling.
    pub registrar: crate::sip::RegistrarConfig,
    /// The CTI API (HTTP), off unless `[api] bind` is set.
    pub api: Option<ApiSettings>,
    /// Indicator thresholds, the report time zone and the shift schedule.
    pub report: crate::report::ReportSettings,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            sip_bind: "0.0.0.0:5060".parse().expect("literal"),
            advertised_host: None,
            outbound: None,
            outbound_caller_id: OutboundCallerId::Dialled,
            outbound_transport: crate::sip::TransportKind::Udp,
            tls_ca: None,
            outbound_tls_name: None,
            sip_tcp: true,
            tls: None,
            tcp_connections: 4096,
            tcp_per_ip: 64,
            tcp_message_timeout: Duration::from_secs(10),
            max_calls: 2000,
            retry_after: Duration::from_secs(5),
            source_call_rate: 50,
            source_max_calls: 1000,
            trusted: TrustedNets::default(),
            ack_timeout: Duration::from_secs(10),
            answer_delay: Duration::ZERO,
            rtp_ports: (20000, 29999),
            media_address: None,
            rtp_timeout: Duration::from_secs(30),
            // Long enough for a phone with silence suppression that sends nothing until the
            // caller speaks or presses a key during the greeting; short enough that a call
            // whose media never comes (or an SDP naming a third party) goes in a third of
            // the RTP timeout. Sending waits for the ACK anyway (issue 9).
            first_packet_timeout: Duration::from_secs(10),
            media_threads: std::thread::available_parallelism().map_or(1, |n| n.get().min(4)),
            srtp: SrtpMode::Optional,
            flows_dir: PathBuf::from("./ivr-flows"),
            prompts_dir: PathBuf::from("./prompts"),
            recordings_dir: PathBuf::from("./recordings"),
            flow_history_dir: PathBuf::from("./flow-history"),
            language: "en".into(),
            lookup_ca: None,
            database: "sqlite://hotline.db".into(),
            cdr_spool: PathBuf::from("hotline-cdr.spool.jsonl"),
            shutdown_grace: Duration::from_secs(30),
            reload_watch: true,
            reload_poll: Duration::from_millis(500),
            api: None,
            report: Default::default(),
            registrar: crate::sip::RegistrarConfig::default(),
        }
    }
}

/// Values given on the command line; they win over the file.
#[derive(Debug, Default, Clone)]
pub struct Overrides {
    pub sip_bind: Option<String>,
    pub rtp_ports: Option<String>,
    pub database: Option<String>,
    pub flows: Option<PathBuf>,
    pub prompts: Option<PathBuf>,
}

impl Config {
    pub fn load(file: Option<&Path>, overrides: &Overrides) -> Result<Config, ConfigError> {
        let parsed = match file {
            None => FileConfig::default(),
            Some(path) => {
                let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
                    path: path.to_path_buf(),
                    source,
                })?;
                toml::from_str(&text).map_err(|e| syntax_error(path, &text, &e))?
            }
        };
        let mut c = Config::default();
        let dur =
            |key: &'static str, v: &Option<String>, d: Duration| -> Result<Duration, ConfigError> {
                v.as_deref().map_or(Ok(d), |s| {
                    parse_duration(s).map_err(|message| ConfigError::Invalid { key, message })
                })
            };
        let flag = |given: &Option<String>, name| given.is_some().then_some(name);
        let bind_flag = flag(&overrides.sip_bind, "--sip-bind");
        if let Some(b) = overrides.sip_bind.clone().or(parsed.sip.bind) {
            c.sip_bind = b.parse().map_err(|_| {
                ConfigError::of(
                    "sip.bind",
                    bind_flag,
                    format!("{b:?} is not an address:port"),
                )
            })?;
        }
        c.advertised_host = parsed.sip.advertised_host.filter(|h| !h.is_empty());
        c.outbound = match parsed.sip.outbound.filter(|o| !o.is_empty()) {
            None => None,
            Some(o) => Some(o.parse().map_err(|_| ConfigError::Invalid {
                key: "sip.outbound",
                message: format!("{o:?} is not an IP address:port, e.g. \"192.0.2.10:5060\""),
            })?),
        };
        if let Some(text) = parsed.sip.outbound_caller_id {
            c.outbound_caller_id =
                OutboundCallerId::parse(&text).ok_or_else(|| ConfigError::Invalid {
                    key: "sip.outbound_caller_id",
                    message: format!(
                        "{text:?} is not \"dialled\", \"caller\" or a number such as \"+861012345678\""
                    ),
                })?;
        }
        if let Some(text) = parsed.sip.outbound_transport {
            c.outbound_transport = match text.trim().to_ascii_lowercase().as_str() {
                "udp" => crate::sip::TransportKind::Udp,
                "tcp" => crate::sip::TransportKind::Tcp,
                "tls" => crate::sip::TransportKind::Tls,
                _ => {
                    return Err(ConfigError::Invalid {
                        key: "sip.outbound_transport",
                        message: format!("{text:?} is not \"udp\", \"tcp\" or \"tls\""),
                    });
                }
            };
        }
        // A trunk sends its own requests (BYE, re-INVITE) to our Contact over the same
        // transport, so the listener must be there.
        let listening = match c.outbound_transport {
            crate::sip::TransportKind::Udp => true,
            crate::sip::TransportKind::Tcp => parsed.sip.tcp.unwrap_or(c.sip_tcp),
            crate::sip::TransportKind::Tls => parsed.sip.tls_certificate.is_some(),
        };
        if !listening {
            return Err(ConfigError::Invalid {
                key: "sip.outbound_transport",
                message: "the gateway's own requests come back over this transport: set sip.tls_certificate and sip.tls_key for \"tls\", keep sip.tcp on for \"tcp\"".into(),
            });
        }
        c.tls_ca = parsed.sip.tls_ca;
        c.outbound_tls_name = parsed.sip.outbound_tls_name.filter(|n| !n.is_empty());
        c.sip_tcp = parsed.sip.tcp.unwrap_or(c.sip_tcp);
        c.tls = match (parsed.sip.tls_certificate, parsed.sip.tls_key) {
            (Some(certificate), Some(key)) => Some(TlsConfig {
                port: parsed.sip.tls_port.unwrap_or(5061),
                certificate,
                key,
            }),
            (None, None) if parsed.sip.tls_port.is_none() => None,
            (certificate, _) => {
                return Err(ConfigError::Invalid {
                    key: if certificate.is_none() {
                        "sip.tls_certificate"
                    } else {
                        "sip.tls_key"
                    },
                    message:
                        "SIP over TLS needs both sip.tls_certificate and sip.tls_key (PEM files)"
                            .into(),
                });
            }
        };
        c.report = crate::report::ReportSettings::from_section(parsed.report)
            .map_err(|(key, message)| ConfigError::Invalid { key, message })?;
        c.api = match parsed.api.bind {
            None => None,
            Some(bind) => {
                let bind = bind.parse().map_err(|_| ConfigError::Invalid {
                    key: "api.bind",
                    message: format!("{bind:?} is not an address and port like \"127.0.0.1:8080\""),
                })?;
                let tls = match (parsed.api.tls_certificate, parsed.api.tls_key) {
                    (Some(c), Some(k)) => Some((c, k)),
                    (None, None) => None,
                    (c, _) => {
                        return Err(ConfigError::Invalid {
                            key: if c.is_none() {
                                "api.tls_certificate"
                            } else {
                                "api.tls_key"
                            },
                            message:
                                "HTTPS needs both api.tls_certificate and api.tls_key (PEM files)"
                                    .into(),
                        });
                    }
                };
                let settings = ApiSettings {
                    bind,
                    users: parsed
                        .api
                        .users
                        .unwrap_or_else(|| PathBuf::from("./users.toml")),
                    tls,
                    session_idle: dur(
                        "api.session_idle",
                        &parsed.api.session_idle,
                        Duration::from_secs(30 * 60),
                    )?,
                    session_max: dur(
                        "api.session_max",
                        &parsed.api.session_max,
                        Duration::from_secs(12 * 3600),
                    )?,
                    max_connections: parsed.api.max_connections.unwrap_or(4096),
                    max_connections_per_address: parsed
                        .api
                        .max_connections_per_address
                        .unwrap_or(64),
                    request_timeout: dur(
                        "api.request_timeout",
                        &parsed.api.request_timeout,
                        Duration::from_secs(15),
                    )?,
                };
                for (key, zero) in [
                    ("api.max_connections", settings.max_connections == 0),
                    (
                        "api.max_connections_per_address",
                        settings.max_connections_per_address == 0,
                    ),
                    ("api.session_idle", settings.session_idle.is_zero()),
                    ("api.session_max", settings.session_max.is_zero()),
                    ("api.request_timeout", settings.request_timeout.is_zero()),
                ] {
                    if zero {
                        return Err(ConfigError::Invalid {
                            key,
                            message: "must be more than zero".into(),
                        });
                    }
                }
                Some(settings)
            }
        };
        c.tcp_connections = parsed.sip.tcp_connections.unwrap_or(c.tcp_connections);
        c.tcp_per_ip = parsed.sip.tcp_per_ip.unwrap_or(c.tcp_per_ip);
        if c.tcp_connections == 0 || c.tcp_per_ip == 0 {
            return Err(ConfigError::Invalid {
                key: if c.tcp_connections == 0 {
                    "sip.tcp_connections"
                } else {
                    "sip.tcp_per_ip"
                },
                message: "must be at least 1 (set sip.tcp = false to turn TCP off)".into(),
            });
        }
        c.tcp_message_timeout = dur(
            "sip.tcp_message_timeout",
            &parsed.sip.tcp_message_timeout,
            c.tcp_message_timeout,
        )?;
        if c.tcp_message_timeout < Duration::from_millis(100) {
            return Err(ConfigError::Invalid {
                key: "sip.tcp_message_timeout",
                message: "must be at least 100ms".into(),
            });
        }
        c.max_calls = parsed.sip.max_calls.unwrap_or(c.max_calls);
        if c.max_calls == 0 {
            return Err(ConfigError::Invalid {
                key: "sip.max_calls",
                message: "must be at least 1".into(),
            });
        }
        c.retry_after = dur("sip.retry_after", &parsed.sip.retry_after, c.retry_after)?;
        c.source_call_rate = parsed.sip.source_call_rate.unwrap_or(c.source_call_rate);
        // Half the server by default, so that one source, however busy, leaves room for all
        // the others; a trunk carrying everything is listed in `trusted` instead.
        c.source_max_calls = parsed
            .sip
            .source_max_calls
            .unwrap_or((c.max_calls / 2).max(1));
        if let Some(list) = &parsed.sip.trusted {
            c.trusted = TrustedNets::parse(list).map_err(|message| ConfigError::Invalid {
                key: "sip.trusted",
                message,
            })?;
        }
        c.ack_timeout = dur("sip.ack_timeout", &parsed.sip.ack_timeout, c.ack_timeout)?;
        if c.ack_timeout < Duration::from_secs(1) {
            return Err(ConfigError::Invalid {
                key: "sip.ack_timeout",
                message: "must be at least 1s (the 200 OK is resent after 0.5, 1.5 and 3.5 s)"
                    .into(),
            });
        }
        c.answer_delay = dur("sip.answer_delay", &parsed.sip.answer_delay, c.answer_delay)?;
        let ports_flag = flag(&overrides.rtp_ports, "--rtp-ports");
        if let Some(range) = overrides.rtp_ports.clone().or(parsed.media.rtp_ports) {
            c.rtp_ports = parse_port_range(&range)
                .map_err(|message| ConfigError::of("media.rtp_ports", ports_flag, message))?;
        }
        if let Some(a) = parsed.media.address.filter(|a| !a.is_empty()) {
            c.media_address = Some(a.parse().map_err(|_| ConfigError::Invalid {
                key: "media.address",
                message: format!("{a:?} is not an IP address"),
            })?);
        }
        c.rtp_timeout = dur(
            "media.rtp_timeout",
            &parsed.media.rtp_timeout,
            c.rtp_timeout,
        )?;
        c.first_packet_timeout = dur(
            "media.first_packet_timeout",
            &parsed.media.first_packet_timeout,
            c.first_packet_timeout,
        )?;
        if let Some(text) = parsed.media.srtp {
            c.srtp = SrtpMode::parse(&text).ok_or_else(|| ConfigError::Invalid {
                key: "media.srtp",
                message: format!("{text:?} is not \"off\", \"optional\" or \"required\""),
            })?;
        }
        match parsed.media.threads {
            Some(0) | Some(65..) => {
                return Err(ConfigError::Invalid {
                    key: "media.threads",
                    message: "must be between 1 and 64".into(),
                });
            }
            Some(n) => c.media_threads = n,
            None => {}
        }
        c.flows_dir = overrides
            .flows
            .clone()
            .or(parsed.flows.dir)
            .unwrap_or(c.flows_dir);
        c.prompts_dir = overrides
            .prompts
            .clone()
            .or(parsed.flows.prompts)
            .unwrap_or(c.prompts_dir);
        c.recordings_dir = parsed.flows.recordings.unwrap_or(c.recordings_dir);
        c.language = parsed.flows.language.unwrap_or(c.language);
        c.lookup_ca = parsed.flows.lookup_ca;
        c.flow_history_dir = parsed.flows.history.unwrap_or(c.flow_history_dir);
        // Inside a watched directory, keeping a version would itself be an edit to reload.
        for (watched, key) in [
            (&c.flows_dir, "flows.dir"),
            (&c.prompts_dir, "flows.prompts"),
        ] {
            if inside(&c.flow_history_dir, watched) {
                return Err(ConfigError::Invalid {
                    key: "flows.history",
                    message: format!(
                        "{} is inside {} ({key}); keep the version history beside it",
                        c.flow_history_dir.display(),
                        watched.display()
                    ),
                });
            }
        }
        let database_flag = flag(&overrides.database, "--database");
        c.database = overrides
            .database
            .clone()
            .or(parsed.cdr.database)
            .unwrap_or(c.database);
        check_database_url(&c.database)
            .map_err(|message| ConfigError::of("cdr.database", database_flag, message))?;
        c.cdr_spool = parsed.cdr.spool.unwrap_or(c.cdr_spool);
        c.shutdown_grace = dur("shutdown.grace", &parsed.shutdown.grace, c.shutdown_grace)?;
        c.reload_watch = parsed.reload.watch.unwrap_or(c.reload_watch);
        c.reload_poll = dur("reload.poll", &parsed.reload.poll, c.reload_poll)?;
        // Each poll stats every flow and prompt file; below this it is a busy loop.
        c.registrar = registrar(&parsed.registrar, c.registrar.clone(), &dur)?;
        if c.reload_poll < Duration::from_millis(50) {
            return Err(ConfigError::Invalid {
                key: "reload.poll",
                message: "must be at least 50ms".into(),
            });
        }
        Ok(c)
    }
}

/// Whether `path` is `dir` or below it, compared as absolute paths (neither need exist).
fn inside(path: &Path, dir: &Path) -> bool {
    let absolute = |p: &Path| {
        let p = if p.is_absolute() {
            p.to_path_buf()
        } else {
            std::env::current_dir().unwrap_or_default().join(p)
        };
        // Lexically: `./a/../b` and `b` are the same place.
        let mut out = PathBuf::new();
        for c in p.components() {
            match c {
                std::path::Component::CurDir => {}
                std::path::Component::ParentDir => {
                    out.pop();
                }
                c => out.push(c),
            }
        }
        out
    };
    absolute(path).starts_with(absolute(dir))
}

/// Reads a duration key (`key`, its value if set, the default).
type ReadDuration =
    dyn Fn(&'static str, &Option<String>, Duration) -> Result<Duration, ConfigError>;

/// The `[registrar]` section over the defaults, checked so a phone can always register.
fn registrar(
    r: &RegistrarSection,
    mut cfg: crate::sip::RegistrarConfig,
    dur: &ReadDuration,
) -> Result<crate::sip::RegistrarConfig, ConfigError> {
    let invalid = |key: &'static str, message: &str| ConfigError::Invalid {
        key,
        message: message.into(),
    };
    cfg.min_expires = dur("registrar.min_expires", &r.min_expires, cfg.min_expires)?;
    cfg.max_expires = dur("registrar.max_expires", &r.max_expires, cfg.max_expires)?;
    if cfg.min_expires < Duration::from_secs(1) {
        return Err(invalid("registrar.min_expires", "must be at least 1s"));
    }
    if cfg.max_expires < cfg.min_expires {
        return Err(invalid(
            "registrar.max_expires",
            "must be at least registrar.min_expires",
        ));
    }
    cfg.default_expires = cfg.default_expires.clamp(cfg.min_expires, cfg.max_expires);
    cfg.keepalive = match r.keepalive.as_deref().map(str::trim) {
        None => cfg.keepalive,
        Some("off") => None,
        Some(_) => {
            let every = dur("registrar.keepalive", &r.keepalive, Duration::ZERO)?;
            if every < Duration::from_secs(1) {
                return Err(invalid(
                    "registrar.keepalive",
                    "must be at least 1s, or \"off\"",
                ));
            }
            Some(every)
        }
    };
    cfg.max_contacts = r.max_contacts.unwrap_or(cfg.max_contacts);
    if !(1..=100).contains(&cfg.max_contacts) {
        return Err(invalid("registrar.max_contacts", "must be 1 to 100"));
    }
    cfg.fail_limit = r.fail_limit.unwrap_or(cfg.fail_limit);
    if cfg.fail_limit == 0 {
        return Err(invalid("registrar.fail_limit", "must be at least 1"));
    }
    cfg.fail_window = dur("registrar.fail_window", &r.fail_window, cfg.fail_window)?;
    cfg.block_for = dur("registrar.block_for", &r.block_for, cfg.block_for)?;
    Ok(cfg)
}

/// The CDR store reads `sqlite:...`, `postgres://...` and `postgresql://...`, and takes
/// anything else without a scheme as a SQLite file path. Another scheme is a typo or a database
/// hotline cannot write to; refused here, it would otherwise only show as a failing writer.
fn check_database_url(url: &str) -> Result<(), String> {
    let url = url.trim();
    let lower = url.to_ascii_lowercase();
    if url.is_empty() {
        return Err("is empty; use sqlite://FILE or postgres://USER:PASS@HOST/DB".into());
    }
    if lower.starts_with("sqlite:")
        || lower.starts_with("postgres://")
        || lower.starts_with("postgresql://")
    {
        return Ok(());
    }
    // Without "//" the store would read this as the name of a SQLite file.
    if lower.starts_with("postgres:") || lower.starts_with("postgresql:") {
        return Err("a PostgreSQL URL is written postgres://USER:PASS@HOST/DB".into());
    }
    if let Some((scheme, _)) = url.split_once("://")
        && !scheme.is_empty()
        && scheme
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'))
    {
        // Only the scheme: the rest may hold a password.
        return Err(format!(
            "unsupported scheme {scheme:?}; use sqlite://FILE or postgres://USER:PASS@HOST/DB"
        ));
    }
    Ok(())
}

/// "20000-29999": an even start (RTP takes even ports, RTCP the odd one above) and room for
/// at least one pair.
pub fn parse_port_range(text: &str) -> Result<(u16, u16), String> {
    let (a, b) = text
        .split_once('-')
        .ok_or_else(|| format!("{text:?} is not a range like 20000-29999"))?;
    let a: u16 = a
        .trim()
        .parse()
        .map_err(|_| format!("{a:?} is not a port"))?;
    let b: u16 = b
        .trim()
        .parse()
        .map_err(|_| format!("{b:?} is not a port"))?;
    if a == 0 || b <= a {
        return Err(format!(
            "{text:?}: the range must be low-high with at least two ports"
        ));
    }
    // b > a, so a <= 65534 and the even start still fits.
    let start = a + (a % 2);
    if u32::from(start) + 1 > u32::from(b) {
        return Err(format!(
            "{text:?} holds no RTP/RTCP pair (an even port and the odd one above it)"
        ));
    }
    Ok((start, b))
}

#[cfg(test)]
mod tests;
