//! The configuration file as written: every section and key optional, unknown keys refused;
//! `Config::load` turns it into the typed `Config`.

use std::path::PathBuf;

use serde::Deserialize;

/// The file as written. Every field is optional; defaults live in `Config::default`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct FileConfig {
    #[serde(default)]
    pub(super) sip: SipSection,
    #[serde(default)]
    pub(super) media: MediaSection,
    #[serde(default)]
    pub(super) flows: FlowsSection,
    #[serde(default)]
    pub(super) cdr: CdrSection,
    #[serde(default)]
    pub(super) shutdown: ShutdownSection,
    #[serde(default)]
    pub(super) reload: ReloadSection,
    #[serde(default)]
    pub(super) registrar: RegistrarSection,
    #[serde(default)]
    pub(super) api: ApiSection,
    #[serde(default)]
    pub(super) report: crate::report::ReportSection,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RegistrarSection {
    pub(super) min_expires: Option<String>,
    pub(super) max_expires: Option<String>,
    pub(super) keepalive: Option<String>,
    pub(super) max_contacts: Option<usize>,
    pub(super) fail_limit: Option<u32>,
    pub(super) fail_window: Option<String>,
    pub(super) block_for: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct SipSection {
    pub(super) bind: Option<String>,
    pub(super) advertised_host: Option<String>,
    pub(super) outbound: Option<String>,
    pub(super) outbound_caller_id: Option<String>,
    pub(super) outbound_transport: Option<String>,
    pub(super) tcp: Option<bool>,
    pub(super) tcp_connections: Option<usize>,
    pub(super) tcp_per_ip: Option<usize>,
    pub(super) tcp_message_timeout: Option<String>,
    pub(super) max_calls: Option<u32>,
    pub(super) retry_after: Option<String>,
    pub(super) answer_delay: Option<String>,
    pub(super) source_call_rate: Option<u32>,
    pub(super) source_max_calls: Option<u32>,
    pub(super) trusted: Option<Vec<String>>,
    pub(super) ack_timeout: Option<String>,
    pub(super) tls_port: Option<u16>,
    pub(super) tls_certificate: Option<PathBuf>,
    pub(super) tls_key: Option<PathBuf>,
    pub(super) tls_ca: Option<PathBuf>,
    pub(super) outbound_tls_name: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct MediaSection {
    pub(super) rtp_ports: Option<String>,
    pub(super) address: Option<String>,
    pub(super) rtp_timeout: Option<String>,
    pub(super) first_packet_timeout: Option<String>,
    pub(super) threads: Option<usize>,
    pub(super) srtp: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct FlowsSection {
    pub(super) dir: Option<PathBuf>,
    pub(super) prompts: Option<PathBuf>,
    pub(super) recordings: Option<PathBuf>,
    pub(super) language: Option<String>,
    pub(super) lookup_ca: Option<PathBuf>,
    pub(super) history: Option<PathBuf>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct CdrSection {
    pub(super) database: Option<String>,
    pub(super) spool: Option<PathBuf>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct ShutdownSection {
    pub(super) grace: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct ApiSection {
    pub(super) bind: Option<String>,
    pub(super) users: Option<PathBuf>,
    pub(super) tls_certificate: Option<PathBuf>,
    pub(super) tls_key: Option<PathBuf>,
    pub(super) session_idle: Option<String>,
    pub(super) session_max: Option<String>,
    pub(super) max_connections: Option<usize>,
    pub(super) max_connections_per_address: Option<usize>,
    pub(super) request_timeout: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct ReloadSection {
    pub(super) watch: Option<bool>,
    pub(super) poll: Option<String>,
}
