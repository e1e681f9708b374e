//! Configuration: a TOML file (every key optional, documented in hotline.example.toml) and
//! command-line overrides, checked into a typed `Config` once at start-up.

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::core::duration::parse_duration;

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
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct SipSection {
    bind: Option<String>,
    advertised_host: Option<String>,
    tcp: Option<bool>,
    max_calls: Option<u32>,
    retry_after: Option<String>,
    answer_delay: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct MediaSection {
    rtp_ports: Option<String>,
    address: Option<String>,
    rtp_timeout: Option<String>,
    threads: Option<usize>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FlowsSection {
    dir: Option<PathBuf>,
    prompts: Option<PathBuf>,
    language: Option<String>,
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
struct ReloadSection {
    watch: Option<bool>,
    poll: Option<String>,
}

/// Checked configuration.
#[derive(Debug, Clone)]
pub struct Config {
    pub sip_bind: SocketAddr,
    /// Host (and optional port) written into Contact and Via; None: derived per call.
    pub advertised_host: Option<String>,
    pub sip_tcp: bool,
    pub max_calls: u32,
    pub retry_after: Duration,
    pub answer_delay: Duration,
    pub rtp_ports: (u16, u16),
    /// The address put in SDP; None: the address the caller reached us on.
    pub media_address: Option<IpAddr>,
    pub rtp_timeout: Duration,
    /// Media (RTP pacing) threads; each stream lives on one of them.
    pub media_threads: usize,
    pub flows_dir: PathBuf,
    pub prompts_dir: PathBuf,
    pub language: String,
    pub database: String,
    pub cdr_spool: PathBuf,
    pub shutdown_grace: Duration,
    /// Reload flows and prompts when their files change (SIGHUP reloads either way).
    pub reload_watch: bool,
    /// How often the flow and prompt directories are checked for changes.
    pub reload_poll: Duration,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            sip_bind: "0.0.0.0:5060".parse().expect("literal"),
            advertised_host: None,
            sip_tcp: true,
            max_calls: 2000,
            retry_after: Duration::from_secs(5),
            answer_delay: Duration::ZERO,
            rtp_ports: (20000, 29999),
            media_address: None,
            rtp_timeout: Duration::from_secs(30),
            media_threads: std::thread::available_parallelism().map_or(1, |n| n.get().min(4)),
            flows_dir: PathBuf::from("./ivr-flows"),
            prompts_dir: PathBuf::from("./prompts"),
            language: "en".into(),
            database: "sqlite://hotline.db".into(),
            cdr_spool: PathBuf::from("hotline-cdr.spool.jsonl"),
            shutdown_grace: Duration::from_secs(30),
            reload_watch: true,
            reload_poll: Duration::from_millis(500),
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
                toml::from_str(&text).map_err(|e| {
                    let at = e.span().map_or(0, |s| s.start).min(text.len());
                    let line = text[..at].matches('\n').count() + 1;
                    let column = at - text[..at].rfind('\n').map_or(0, |i| i + 1) + 1;
                    ConfigError::Syntax {
                        path: path.to_path_buf(),
                        line,
                        column,
                        message: e.message().to_string(),
                    }
                })?
            }
        };
        let mut c = Config::default();
        let dur =
            |key: &'static str, v: &Option<String>, d: Duration| -> Result<Duration, ConfigError> {
                v.as_deref().map_or(Ok(d), |s| {
                    parse_duration(s).map_err(|message| ConfigError::Invalid { key, message })
                })
            };
        let bind = overrides.sip_bind.clone().or(parsed.sip.bind);
        if let Some(b) = bind {
            c.sip_bind = b.parse().map_err(|_| ConfigError::Invalid {
                key: "sip.bind",
                message: format!("{b:?} is not an address:port"),
            })?;
        }
        c.advertised_host = parsed.sip.advertised_host.filter(|h| !h.is_empty());
        c.sip_tcp = parsed.sip.tcp.unwrap_or(c.sip_tcp);
        c.max_calls = parsed.sip.max_calls.unwrap_or(c.max_calls);
        if c.max_calls == 0 {
            return Err(ConfigError::Invalid {
                key: "sip.max_calls",
                message: "must be at least 1".into(),
            });
        }
        c.retry_after = dur("sip.retry_after", &parsed.sip.retry_after, c.retry_after)?;
        c.answer_delay = dur("sip.answer_delay", &parsed.sip.answer_delay, c.answer_delay)?;
        if let Some(range) = overrides.rtp_ports.clone().or(parsed.media.rtp_ports) {
            c.rtp_ports = parse_port_range(&range).map_err(|message| ConfigError::Invalid {
                key: "media.rtp_ports",
                message,
            })?;
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
        c.language = parsed.flows.language.unwrap_or(c.language);
        c.database = overrides
            .database
            .clone()
            .or(parsed.cdr.database)
            .unwrap_or(c.database);
        c.cdr_spool = parsed.cdr.spool.unwrap_or(c.cdr_spool);
        c.shutdown_grace = dur("shutdown.grace", &parsed.shutdown.grace, c.shutdown_grace)?;
        c.reload_watch = parsed.reload.watch.unwrap_or(c.reload_watch);
        c.reload_poll = dur("reload.poll", &parsed.reload.poll, c.reload_poll)?;
        // Each poll stats every flow and prompt file; below this it is a busy loop.
        if c.reload_poll < Duration::from_millis(50) {
            return Err(ConfigError::Invalid {
                key: "reload.poll",
                message: "must be at least 50ms".into(),
            });
        }
        Ok(c)
    }
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
    Ok((a + (a % 2), b))
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
    }

    #[test]
    fn file_values_and_overrides() {
        let c = load_text("[sip]\nbind = \"127.0.0.1:5080\"\nmax_calls = 10\n[media]\nrtp_ports = \"30001-30100\"\nrtp_timeout = \"10s\"\n").unwrap();
        assert_eq!(c.sip_bind.port(), 5080);
        assert_eq!(c.max_calls, 10);
        assert_eq!(c.rtp_ports, (30002, 30100), "RTP starts on an even port");
        assert_eq!(c.rtp_timeout, Duration::from_secs(10));
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
    fn example_file_is_valid_and_complete() {
        let text = include_str!("../../hotline.example.toml");
        let c = load_text(text).unwrap();
        assert_eq!(c.sip_bind.port(), 5060);
    }
}
