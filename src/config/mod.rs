//! Configuration: a TOML file (every key optional, documented in hotline.example.toml) and
//! command-line overrides, checked into a typed `Config` once at start-up.

use std::net::{IpAddr, SocketAddr};
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use toml::de::{DeTable, DeValue};

use crate::core::duration::parse_duration;
use crate::sip::admission::TrustedNets;

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

/// The file as written. Every field is optional; defaults live in `Config::default`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    #[serde(default)]
    sip: SipSection,
    #[serde(default)]
    media: MediaSection,
    #[serde(default)]
    flows: FlowsSection,
    #[serde(default)]
    cdr: CdrSection,
    #[serde(default)]
    shutdown: ShutdownSection,
    #[serde(default)]
    reload: ReloadSection,
    #[serde(default)]
    registrar: RegistrarSection,
    #[serde(default)]
    api: ApiSection,
    #[serde(default)]
    report: crate::report::ReportSection,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RegistrarSection {
    min_expires: Option<String>,
    max_expires: Option<String>,
    keepalive: Option<String>,
    max_contacts: Option<usize>,
    fail_limit: Option<u32>,
    fail_window: Option<String>,
    block_for: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct SipSection {
    bind: Option<String>,
    advertised_host: Option<String>,
    outbound: Option<String>,
    outbound_caller_id: Option<String>,
    outbound_transport: Option<String>,
    tcp: Option<bool>,
    tcp_connections: Option<usize>,
    tcp_per_ip: Option<usize>,
    tcp_message_timeout: Option<String>,
    max_calls: Option<u32>,
    retry_after: Option<String>,
    answer_delay: Option<String>,
    source_call_rate: Option<u32>,
    source_max_calls: Option<u32>,
    trusted: Option<Vec<String>>,
    ack_timeout: Option<String>,
    tls_port: Option<u16>,
    tls_certificate: Option<PathBuf>,
    tls_key: Option<PathBuf>,
    tls_ca: Option<PathBuf>,
    outbound_tls_name: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct MediaSection {
    rtp_ports: Option<String>,
    address: Option<String>,
    rtp_timeout: Option<String>,
    first_packet_timeout: Option<String>,
    threads: Option<usize>,
    srtp: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FlowsSection {
    dir: Option<PathBuf>,
    prompts: Option<PathBuf>,
    recordings: Option<PathBuf>,
    language: Option<String>,
    lookup_ca: Option<PathBuf>,
    history: Option<PathBuf>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct CdrSection {
    database: Option<String>,
    spool: Option<PathBuf>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ShutdownSection {
    grace: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ApiSection {
    bind: Option<String>,
    users: Option<PathBuf>,
    tls_certificate: Option<PathBuf>,
    tls_key: Option<PathBuf>,
    session_idle: Option<String>,
    session_max: Option<String>,
    max_connections: Option<usize>,
    max_connections_per_address: Option<usize>,
    request_timeout: Option<String>,
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

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ReloadSection {
    watch: Option<bool>,
    poll: Option<String>,
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

/// A file the types refuse: the position, the dotted key it is about when the span points
/// at one, and serde's wording with Rust type names put in words an admin knows.
fn syntax_error(path: &Path, text: &str, e: &toml::de::Error) -> ConfigError {
    let span = e.span();
    let at = span.as_ref().map_or(0, |s| s.start).min(text.len());
    let line = text[..at].matches('\n').count() + 1;
    let column = at - text[..at].rfind('\n').map_or(0, |i| i + 1) + 1;
    let message = plain_expected(e.message());
    let message = match span.and_then(|s| key_at(text, &s)) {
        Some(key) => format!("{key}: {message}"),
        None => message,
    };
    ConfigError::Syntax {
        path: path.to_path_buf(),
        line,
        column,
        message,
    }
}

/// The dotted key whose name or value `span` lies in, the deepest one when tables nest.
/// serde's errors carry only a span; the spanned document maps it back to a key. Table values
/// are spanned by their `[header]` only, so every entry is visited, not just enclosing ones.
fn key_at(text: &str, span: &Range<usize>) -> Option<String> {
    #[derive(Default)]
    struct Found {
        /// Depth and key of the deepest entry the span points into.
        hit: Option<(usize, String)>,
        /// Start and path of the last `[header]` before the span: the table in force there.
        header: Option<(usize, String)>,
    }
    fn walk<'a>(
        text: &str,
        table: &'a DeTable<'a>,
        path: &mut Vec<&'a str>,
        span: &Range<usize>,
        found: &mut Found,
    ) {
        for (key, value) in table.iter() {
            path.push(key.get_ref());
            let v = value.span();
            let dotted = || {
                let keys: Vec<String> = path.iter().map(|k| quote_key(k)).collect();
                keys.join(".")
            };
            let hit =
                key.span().contains(&span.start) || (v.start <= span.start && span.end <= v.end);
            if hit
                && found
                    .hit
                    .as_ref()
                    .is_none_or(|(depth, _)| path.len() > *depth)
            {
                found.hit = Some((path.len(), dotted()));
            }
            let is_header = text.get(v.start..).is_some_and(|t| t.starts_with('['));
            if matches!(value.get_ref(), DeValue::Table(_))
                && is_header
                && v.start <= span.start
                && found.header.as_ref().is_none_or(|(at, _)| v.start > *at)
            {
                found.header = Some((v.start, dotted()));
            }
            match value.get_ref() {
                DeValue::Table(t) => walk(text, t, path, span, found),
                DeValue::Array(items) => {
                    for item in items.iter() {
                        if let DeValue::Table(t) = item.get_ref() {
                            walk(text, t, path, span, found);
                        }
                    }
                }
                _ => {}
            }
            path.pop();
        }
    }
    // Recoverable, so a key is found even where the document itself is malformed further on.
    let (doc, _) = DeTable::parse_recoverable(text);
    let mut found = Found::default();
    walk(text, doc.get_ref(), &mut Vec::new(), span, &mut found);
    if let Some((_, key)) = found.hit {
        return Some(key);
    }
    // A key the document does not hold (a duplicate is dropped from it): name it from the
    // text under the span, in the table in force there.
    let written = text.get(span.clone())?.trim();
    let plausible = !written.is_empty()
        && written
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'));
    if !plausible {
        return None;
    }
    Some(match found.header {
        Some((_, table)) => format!("{table}.{written}"),
        None => written.to_string(),
    })
}

fn quote_key(key: &str) -> String {
    let bare = !key.is_empty()
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    if bare {
        key.to_string()
    } else {
        format!("{key:?}")
    }
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

/// serde names the Rust type it wanted ("expected u32", "expected struct SipSection"); the
/// admin wrote TOML, so say what to write instead.
fn plain_expected(message: &str) -> String {
    let Some((what, expected)) = message.rsplit_once(", expected ") else {
        return message.to_string();
    };
    let plain = match expected {
        "u16" | "u32" | "u64" | "usize" => "a whole number",
        "path string" => "a string",
        e if e.starts_with("struct ") => "a table",
        _ => return message.to_string(),
    };
    format!("{what}, expected {plain}")
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
mod tests {
    use super::*;

    fn load_text(text: &str) -> Result<Config, ConfigError> {
        let path = std::env::temp_dir().join(format!("hotline-config-{}.toml", fastrand::u64(..)));
        std::fs::write(&path, text).unwrap();
        let r = Config::load(Some(&path), &Overrides::default());
        std::fs::remove_file(path).ok();
        r
    }

    #[test]
    fn defaults_without_file() {
        let c = Config::load(None, &Overrides::default()).unwrap();
        assert_eq!(c.sip_bind, "0.0.0.0:5060".parse().unwrap());
        assert_eq!(c.rtp_ports, (20000, 29999));
        assert_eq!(c.database, "sqlite://hotline.db");
        assert_eq!(c.flows_dir, PathBuf::from("./ivr-flows"));
        assert_eq!(c.recordings_dir, PathBuf::from("./recordings"));
    }

    #[test]
    fn per_source_limits_and_trusted_networks() {
        let c = load_text("[sip]\nmax_calls = 300\n").unwrap();
        assert_eq!(
            (c.source_call_rate, c.source_max_calls, c.ack_timeout),
            (50, 150, Duration::from_secs(10)),
            "half of max_calls by default"
        );
        assert!(c.trusted.is_empty());
        let c = load_text(
            "[sip]\nsource_call_rate = 0\nsource_max_calls = 7\nack_timeout = \"4s\"\n\
             trusted = [\"192.0.2.0/24\", \"2001:db8::5\"]\n",
        )
        .unwrap();
        assert_eq!((c.source_call_rate, c.source_max_calls), (0, 7));
        assert_eq!(c.ack_timeout, Duration::from_secs(4));
        assert!(c.trusted.contains("192.0.2.77".parse().unwrap()));
        assert!(c.trusted.contains("2001:db8::5".parse().unwrap()));
        assert!(!c.trusted.contains("192.0.3.1".parse().unwrap()));
        for (text, key) in [
            ("[sip]\ntrusted = [\"trunk.example.com\"]\n", "sip.trusted"),
            ("[sip]\ntrusted = [\"10.0.0.0/40\"]\n", "sip.trusted"),
            ("[sip]\nack_timeout = \"200ms\"\n", "sip.ack_timeout"),
        ] {
            let e = load_text(text).unwrap_err().to_string();
            assert!(e.contains(key), "{text}: {e}");
        }
    }

    #[test]
    fn recordings_directory_from_the_file() {
        let c = load_text("[flows]\nrecordings = \"/var/spool/hotline/messages\"\n").unwrap();
        assert_eq!(
            c.recordings_dir,
            PathBuf::from("/var/spool/hotline/messages")
        );
        let e = load_text("[flows]\nrecordings = 3\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("flows.recordings"), "{e}");
    }

    #[test]
    fn file_values_and_overrides() {
        let c = load_text("[sip]\nbind = \"127.0.0.1:5080\"\nmax_calls = 10\n[media]\nrtp_ports = \"30001-30100\"\nrtp_timeout = \"10s\"\n").unwrap();
        assert_eq!(c.sip_bind.port(), 5080);
        assert_eq!(c.max_calls, 10);
        assert_eq!(c.rtp_ports, (30002, 30100), "RTP starts on an even port");
        assert_eq!(c.rtp_timeout, Duration::from_secs(10));
        assert_eq!(
            c.first_packet_timeout,
            Duration::from_secs(10),
            "the default"
        );
        let c = load_text("[media]\nfirst_packet_timeout = \"0s\"\n").unwrap();
        assert_eq!(c.first_packet_timeout, Duration::ZERO, "off");
        let e = load_text("[media]\nfirst_packet_timeout = \"soon\"\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("media.first_packet_timeout"), "{e}");
        let o = Overrides {
            sip_bind: Some("127.0.0.1:6000".into()),
            ..Default::default()
        };
        assert_eq!(Config::load(None, &o).unwrap().sip_bind.port(), 6000);
    }

    #[test]
    fn errors_name_the_key() {
        let e = load_text("[sip]\nbind = \"nowhere\"\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("sip.bind"), "{e}");
        let e = load_text("[media]\nrtp_timeout = \"10\"\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("media.rtp_timeout"), "{e}");
        let e = load_text("[sip]\nbnid = \"x\"\n").unwrap_err().to_string();
        assert!(e.contains(":2:1:") && e.contains("bnid"), "{e}");
        let e = load_text("[media]\nrtp_ports = \"9-3\"\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("media.rtp_ports"), "{e}");
        let e = load_text("[reload]\npoll = \"0ms\"\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("reload.poll"), "{e}");
    }

    #[test]
    fn reload_keys() {
        let c = Config::load(None, &Overrides::default()).unwrap();
        assert!(c.reload_watch, "watching is on by default");
        assert_eq!(c.reload_poll, Duration::from_millis(500));
        let c = load_text("[reload]\nwatch = false\npoll = \"2s\"\n").unwrap();
        assert!(!c.reload_watch);
        assert_eq!(c.reload_poll, Duration::from_secs(2));
    }

    #[test]
    fn type_errors_name_the_dotted_key_in_plain_words() {
        let cases = [
            (
                "[sip]\nmax_calls = \"ten\"\n",
                ":2:13: sip.max_calls: invalid type: string \"ten\", expected a whole number",
            ),
            (
                "sip = \"x\"\n",
                ":1:7: sip: invalid type: string \"x\", expected a table",
            ),
            // serde reads an array as a struct's fields in order, hence its odd wording here.
            ("[[media]]\nthreads = 2\n", ":1:1: media: invalid type"),
            (
                "[media]\nthreads = 1.5\n",
                ":2:11: media.threads: invalid type: floating point `1.5`, expected a whole number",
            ),
            (
                "[flows]\ndir = 3\n",
                ":2:7: flows.dir: invalid type: integer `3`, expected a string",
            ),
            (
                "[sip.bind]\nport = 1\n",
                ":1:1: sip.bind: invalid type: map, expected a string",
            ),
            (
                "sip = { tcp = \"yes\" }\n",
                ":1:15: sip.tcp: invalid type: string \"yes\", expected a boolean",
            ),
            (
                "[sip]\nbnid = \"x\"\n",
                ":2:1: sip.bnid: unknown field `bnid`",
            ),
            ("[sipp]\n", ":1:2: sipp: unknown field `sipp`"),
            (
                "[sip]\nmax_calls = 1\nmax_calls = 2\n",
                ":3:1: sip.max_calls: duplicate key",
            ),
            ("[cdr]\ndatabase = \n", ":2:12: cdr.database: "),
        ];
        for (text, want) in cases {
            let e = load_text(text).unwrap_err().to_string();
            assert!(e.contains(want), "{text:?}: {e}");
        }
    }

    #[test]
    fn a_port_range_without_a_pair_is_refused() {
        let e = load_text("[media]\nrtp_ports = \"46001-46002\"\n")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("media.rtp_ports") && e.contains("no RTP/RTCP pair"),
            "{e}"
        );
        let o = Overrides {
            rtp_ports: Some("46001-46002".into()),
            ..Default::default()
        };
        let e = Config::load(None, &o).unwrap_err().to_string();
        assert!(
            e.contains("--rtp-ports") && e.contains("media.rtp_ports"),
            "{e}"
        );
        assert_eq!(parse_port_range("46000-46001"), Ok((46000, 46001)));
        assert_eq!(parse_port_range("46001-46003"), Ok((46002, 46003)));
        assert!(parse_port_range("65533-65534").is_err());
    }

    #[test]
    fn database_urls_of_other_schemes_are_refused() {
        for bad in [
            "mysql://hotline:secret@db/cdr",
            "postgres:hotline@db/cdr",
            " ",
        ] {
            let text = format!("[cdr]\ndatabase = {bad:?}\n");
            let e = load_text(&text).unwrap_err().to_string();
            assert!(e.contains("cdr.database"), "{bad}: {e}");
            assert!(!e.contains("secret"), "no password in messages: {e}");
        }
        for good in [
            "sqlite://cdr.db",
            "sqlite:cdr.db?mode=rwc",
            "SQLite:///var/lib/hotline/cdr.db",
            "postgres://u:p@localhost/cdr",
            "postgresql://localhost/cdr",
            "./cdr.db",
        ] {
            let text = format!("[cdr]\ndatabase = {good:?}\n");
            assert_eq!(load_text(&text).unwrap().database, good);
        }
        let o = Overrides {
            database: Some("mongodb://db/cdr".into()),
            ..Default::default()
        };
        let e = Config::load(None, &o).unwrap_err().to_string();
        assert!(
            e.contains("--database") && e.contains("cdr.database"),
            "{e}"
        );
    }

    #[test]
    fn tls_needs_both_files_and_srtp_takes_three_modes() {
        let c = load_text("").unwrap();
        assert_eq!((c.tls, c.srtp), (None, SrtpMode::Optional));
        let c = load_text("[sip]\ntls_certificate = \"c.pem\"\ntls_key = \"k.pem\"\n").unwrap();
        assert_eq!(
            c.tls,
            Some(TlsConfig {
                port: 5061,
                certificate: "c.pem".into(),
                key: "k.pem".into()
            })
        );
        for half in [
            "[sip]\ntls_certificate = \"c.pem\"\n",
            "[sip]\ntls_key = \"k.pem\"\n",
            "[sip]\ntls_port = 5071\n",
        ] {
            let e = load_text(half).unwrap_err().to_string();
            assert!(e.contains("sip.tls_"), "{half}: {e}");
        }
        for (text, mode) in [
            ("off", SrtpMode::Off),
            ("optional", SrtpMode::Optional),
            ("required", SrtpMode::Required),
        ] {
            let c = load_text(&format!("[media]\nsrtp = \"{text}\"\n")).unwrap();
            assert_eq!(c.srtp, mode);
        }
        let e = load_text("[media]\nsrtp = \"always\"\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("media.srtp"), "{e}");
        let c = load_text(
            "[sip]\noutbound = \"192.0.2.10:5061\"\noutbound_transport = \"TLS\"\noutbound_tls_name = \"trunk.example.net\"\ntls_ca = \"ca.pem\"\ntls_certificate = \"c.pem\"\ntls_key = \"k.pem\"\n",
        )
        .unwrap();
        assert_eq!(c.outbound_transport, crate::sip::TransportKind::Tls);
        assert_eq!(c.outbound_tls_name.as_deref(), Some("trunk.example.net"));
        assert_eq!(c.tls_ca, Some(PathBuf::from("ca.pem")));
        let e = load_text("[sip]\noutbound_transport = \"tls\"\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("tls_certificate"), "{e}");
        let e = load_text("[sip]\noutbound_transport = \"sctp\"\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("sip.outbound_transport"), "{e}");
    }

    #[test]
    fn example_file_is_valid_and_complete() {
        let text = include_str!("../../hotline.example.toml");
        let c = load_text(text).unwrap();
        assert_eq!(c.sip_bind.port(), 5060);
    }

    #[test]
    fn the_registrar_section_is_read_and_checked() {
        let load = |text: &str| {
            let path = std::env::temp_dir().join(format!("hotline-reg-{}.toml", fastrand::u64(..)));
            std::fs::write(&path, text).unwrap();
            let c = Config::load(Some(&path), &Overrides::default());
            std::fs::remove_file(&path).ok();
            c
        };
        let c = load("[registrar]\nmin_expires = \"10s\"\nmax_expires = \"10m\"\nkeepalive = \"off\"\nmax_contacts = 2\nblock_for = \"1m\"\n").unwrap();
        let r = &c.registrar;
        assert_eq!(
            (
                r.min_expires,
                r.max_expires,
                r.keepalive,
                r.max_contacts,
                r.block_for
            ),
            (
                Duration::from_secs(10),
                Duration::from_secs(600),
                None,
                2,
                Duration::from_secs(60)
            )
        );
        assert_eq!(
            r.default_expires,
            Duration::from_secs(600),
            "kept within the bounds"
        );
        let c = load("[registrar]\nkeepalive = \"15s\"\n").unwrap();
        assert_eq!(c.registrar.keepalive, Some(Duration::from_secs(15)));
        for (bad, key) in [
            ("min_expires = \"0s\"", "registrar.min_expires"),
            (
                "min_expires = \"2m\"\nmax_expires = \"1m\"",
                "registrar.max_expires",
            ),
            ("keepalive = \"soon\"", "registrar.keepalive"),
            ("max_contacts = 0", "registrar.max_contacts"),
            ("fail_limit = 0", "registrar.fail_limit"),
        ] {
            let err = load(&format!("[registrar]\n{bad}\n")).unwrap_err();
            assert!(err.to_string().contains(key), "{bad}: {err}");
        }
    }

    #[test]
    fn the_api_is_off_unless_bound() {
        assert_eq!(load_text("").unwrap().api, None);
        let c = load_text("[api]\nbind = \"127.0.0.1:8080\"\nsession_idle = \"10m\"\n").unwrap();
        let api = c.api.unwrap();
        assert_eq!(api.bind, "127.0.0.1:8080".parse().unwrap());
        assert_eq!(api.users, PathBuf::from("./users.toml"));
        assert_eq!(api.session_idle, Duration::from_secs(600));
        assert_eq!(api.session_max, Duration::from_secs(12 * 3600));
        assert_eq!(api.tls, None);
        let e = load_text("[api]\nbind = \"localhost\"\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("api.bind"), "{e}");
        let e = load_text("[api]\nbind = \"127.0.0.1:8080\"\ntls_key = \"k.pem\"\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("api.tls_certificate"), "{e}");
        let e = load_text("[api]\nbind = \"127.0.0.1:8080\"\nmax_connections_per_address = 0\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("api.max_connections_per_address"), "{e}");
        let e = load_text("[api]\nbind = \"127.0.0.1:8080\"\nsession_idle = \"0s\"\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("api.session_idle"), "{e}");
        let e = load_text("[api]\nbind = \"127.0.0.1:8080\"\nusers_file = \"u\"\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("users_file"), "{e}");
    }
}
