//! The only place with sockets, tasks and clocks. The signalling loop owns the call engine and
//! feeds it SIP datagrams, media events and timer wake-ups; the media thread paces RTP; the CDR
//! writer stores records. Shutdown: a watch channel, then a drain. Reloads: loaded off the
//! loop (`reload`), swapped in on it.

mod http;
mod limits;
mod media;
pub(crate) mod realtime;
mod reload;
mod tcp;
mod tls;
pub(crate) mod udp;
pub(crate) mod wake;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use tokio::net::UdpSocket;
use tokio::sync::{mpsc, watch};

pub use media::MediaHandle;
pub use reload::ReloadStatus;

use crate::call::{Catalog, CatalogError, Engine, EngineConfig, MediaEvent, RecordingJob};
use crate::cdr::writer::{self, CdrWriterConfig};
use crate::config::Config;
use crate::flow::Switches;
use crate::sip::admission::AdmissionConfig;
use crate::sip::transaction::TimerConfig;
use crate::sip::{Peer, TransportKind};
use crate::versions::History;
use reload::{Loaded, ReloadGate, Sources, Trigger};

/// 503s a second for a source over its call rate; its other INVITEs go unanswered.
const REFUSALS_PER_SECOND: u32 = 5;
/// Sources the admission table remembers at once (a few hundred kilobytes).
const MAX_SOURCES: usize = 10_000;

#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    #[error(transparent)]
    Catalog(#[from] CatalogError),
    #[error(
        "cannot bind SIP on {addr} (is another SIP server using it? choose another with --sip-bind or `sip.bind`, or `sip.tls_port` for TLS)"
    )]
    BindSip {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("cannot start the media thread: {0}")]
    Media(std::io::Error),
    #[error("CDR writer: {0}")]
    Cdr(#[from] crate::cdr::CdrError),
    #[error("cannot read the OS's randomness for the nonce secret: {0}")]
    Entropy(std::io::Error),
    #[error("SIP over TLS: {0}")]
    Tls(#[from] tls::TlsError),
    #[error("CTI API: {0}")]
    Api(#[from] crate::api::ApiError),
    #[error("CTI API over TLS: {0}")]
    ApiTls(tls::TlsError),
}

/// A running server: its addresses, and the way to stop it.
pub struct Server {
    pub sip_addr: SocketAddr,
    /// Where SIP over TLS listens, when it is configured.
    pub tls_addr: Option<SocketAddr>,
    /// Where the CTI API listens, when it is configured.
    pub api_addr: Option<SocketAddr>,
    shutdown: watch::Sender<Signal>,
    reloads: mpsc::Sender<Trigger>,
    status: watch::Receiver<ReloadStatus>,
    done: tokio::task::JoinHandle<Result<(), RuntimeError>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Signal {
    Run,
    Shutdown,
}

impl Server {
    /// Ask for a graceful shutdown (what SIGTERM does).
    pub fn shutdown(&self) {
        let _ = self.shutdown.send(Signal::Shutdown);
    }

    /// Reload flows and prompts (what SIGHUP does). Returns at once; the outcome is logged
    /// and shows in `reload_status`.
    pub fn reload(&self) {
        request_reload(&self.reloads);
    }

    /// Which version new calls get, and how the last reloads went.
    pub fn reload_status(&self) -> ReloadStatus {
        self.status.borrow().clone()
    }

    /// Wait until the server has drained every call and flushed every record.
    pub async fn wait(self) -> Result<(), RuntimeError> {
        match self.done.await {
            Ok(r) => r,
            Err(e) => panic!("server task panicked: {e}"),
        }
    }
}

/// The registrar's nonce HMAC key, from the OS. Not from fastrand: its global generator is
/// seeded from the monotonic clock and thread id (fastrand 2 on std), which can be guessed,
/// and a guessed key lets anyone mint nonces the registrar accepts as its own.
fn os_secret() -> std::io::Result<[u8; 32]> {
    use std::io::Read;
    let mut key = [0u8; 32];
    std::fs::File::open("/dev/urandom")?.read_exact(&mut key)?;
    Ok(key)
}

/// Where RTP sockets are bound: the media address when it is one of this machine's (not a
/// NAT's public address), else the address SIP is bound to, which is every address only when
/// SIP listens on every address. Media must not be reachable where signalling is not.
fn media_bind_ip(media_address: Option<IpAddr>, sip_ip: IpAddr) -> IpAddr {
    if let Some(ip) = media_address
        && std::net::UdpSocket::bind(SocketAddr::new(ip, 0)).is_ok()
    {
        return ip;
    }
    sip_ip
}

/// The SIP sockets: UDP, and TCP on the same port. With port 0 the port is the UDP
/// socket's ephemeral one, which some TCP socket on the machine may already hold: then
/// another one is tried rather than failing the start.
async fn bind_sip(
    addr: SocketAddr,
    tcp: bool,
) -> Result<(UdpSocket, Option<tokio::net::TcpListener>), RuntimeError> {
    let fail = |addr, source| RuntimeError::BindSip { addr, source };
    let mut tries = if addr.port() == 0 { 20 } else { 1 };
    loop {
        tries -= 1;
        let udp = UdpSocket::bind(addr).await.map_err(|e| fail(addr, e))?;
        if !tcp {
            return Ok((udp, None));
        }
        let bound = udp.local_addr().map_err(|e| fail(addr, e))?;
        match tokio::net::TcpListener::bind(bound).await {
            Ok(listener) => return Ok((udp, Some(listener))),
            Err(e) if e.kind() == std::io::ErrorKind::AddrInUse && tries > 0 => continue,
            Err(e) => return Err(fail(bound, e)),
        }
    }
}

/// Bind everything and start serving. Returns once the server takes calls.
pub async fn start(config: Config) -> Result<Server, RuntimeError> {
    let roots = vec![config.flows_dir.clone(), config.prompts_dir.clone()];
    // Taken before the load, so an edit made while it runs is still seen as a change.
    let tree = config
        .reload_watch
        .then(|| reload::TreeWatch::new(reload::scan(&roots)));
    let catalog = Catalog::load(&config.flows_dir, &config.prompts_dir, &config.language)?;
    let sources = Sources {
        flows: config.flows_dir.clone(),
        prompts: config.prompts_dir.clone(),
        language: config.language.clone(),
        timezone: jiff::tz::TimeZone::try_system().unwrap_or(jiff::tz::TimeZone::UTC),
        history: History::new(&config.flow_history_dir),
    };
    reload::keep_version(&sources, &catalog);
    let catalog = Arc::new(catalog);
    let (flows, prompts) = reload::counts(&catalog);
    tracing::info!(
        flows,
        prompts,
        flow_set = catalog.version,
        "flows and prompts loaded"
    );
    let (udp, listener) = bind_sip(config.sip_bind, config.sip_tcp).await?;
    let sip_addr = udp.local_addr().map_err(|source| RuntimeError::BindSip {
        addr: config.sip_bind,
        source,
    })?;
    let fd_limit = limits::raise_fd_limit();
    // SIP's TCP and TLS connections and the CTI API's share what the calls leave; SIP first.
    let api_wanted = config.api.as_ref().map_or(0, |a| a.max_connections);
    let budget = limits::budget(
        fd_limit,
        config.max_calls,
        config.tcp_connections + api_wanted,
    );
    let sip_connections = budget.tcp_connections.min(config.tcp_connections);
    let api_connections = (budget.tcp_connections - sip_connections).min(api_wanted);
    if budget.max_calls < config.max_calls {
        tracing::warn!(
            fd_limit,
            max_calls = config.max_calls,
            fit = budget.max_calls,
            "the open-file limit leaves room for fewer calls than sip.max_calls; taking fewer (raise `ulimit -n`)"
        );
    }
    tracing::info!(
        fd_limit,
        max_calls = budget.max_calls,
        tcp_connections = sip_connections,
        api_connections,
        "descriptor budget"
    );
    let (tcp_tx, tcp_rx) = mpsc::channel(4096);
    // TCP and TLS share the descriptors budgeted for connections.
    let streams = if config.tls.is_some() { 2 } else { 1 };
    let stream_limits = tcp::TcpLimits {
        total: (sip_connections / streams).max(1),
        per_ip: config.tcp_per_ip,
        whole_message: config.tcp_message_timeout,
    };
    let tcp = tcp::Connections::start(
        listener,
        tcp_tx.clone(),
        stream_limits,
        None,
        Some(tcp::Dialer { tls: None }),
    );
    // Connections of our own over TLS (a trunk, a phone at a fixed sips: URI) are there
    // whether or not we listen for TLS ourselves.
    let mut names = std::collections::HashMap::new();
    if let (Some(gateway), Some(name)) = (config.outbound, &config.outbound_tls_name) {
        names.insert(gateway, name.clone());
    }
    let dialer = tcp::Dialer {
        tls: Some(tcp::TlsDialer {
            connector: tls::connector(config.tls_ca.as_deref())?,
            names: Arc::new(names),
        }),
    };
    let (tls_listener, tls_acceptor, tls_addr) = match &config.tls {
        None => (None, None, None),
        Some(t) => {
            let acceptor = tls::acceptor(&t.certificate, &t.key)?;
            let addr = SocketAddr::new(sip_addr.ip(), t.port);
            let listener = tokio::net::TcpListener::bind(addr)
                .await
                .map_err(|source| RuntimeError::BindSip { addr, source })?;
            let bound = listener
                .local_addr()
                .map_err(|source| RuntimeError::BindSip { addr, source })?;
            (Some(listener), Some(acceptor), Some(bound))
        }
    };
    let tls = tcp::Connections::start(
        tls_listener,
        tcp_tx.clone(),
        stream_limits,
        tls_acceptor,
        Some(dialer),
    );
    drop(tcp_tx);
    let lookups = http::Client::new(config.lookup_ca.as_deref())?;
    let (media_tx, media_rx) = mpsc::channel(64 * 1024);
    let media = MediaHandle::start(
        config.media_threads,
        config.rtp_ports,
        media_bind_ip(config.media_address, sip_addr.ip()),
        media::MediaTimeouts {
            rtp: config.rtp_timeout,
            first_packet: config.first_packet_timeout,
        },
        media_tx,
    )
    .map_err(RuntimeError::Media)?;
    prepare_database(&config.database).await?;
    let (sink, writer) = writer::spawn(CdrWriterConfig::new(
        config.database.clone(),
        config.cdr_spool.clone(),
    ));
    // What the engine shows outside itself, published by the signalling loop each second.
    let (snapshot_tx, snapshot_rx) = watch::channel(crate::call::snapshot::Snapshot::default());
    let (api_tx, api_rx) = mpsc::channel(crate::api::COMMAND_QUEUE);
    let (events_tx, events_rx) = mpsc::channel(crate::api::EVENT_QUEUE);
    let api_events = config.api.is_some().then_some(events_tx);
    let api = match &config.api {
        None => None,
        Some(a) => {
            let tls = match &a.tls {
                Some((certificate, key)) => {
                    Some(tls::acceptor(certificate, key).map_err(RuntimeError::ApiTls)?)
                }
                None => None,
            };
            let api_config = crate::api::ApiConfig {
                bind: a.bind,
                users_file: a.users.clone(),
                session_idle: a.session_idle,
                session_max: a.session_max,
                max_connections: api_connections.max(1),
                max_connections_per_address: a.max_connections_per_address,
                request_timeout: a.request_timeout,
                report: config.report.clone(),
                recordings_dir: config.recordings_dir.clone(),
            };
            if a.tls.is_none() && !a.bind.ip().is_loopback() {
                tracing::warn!(
                    bind = %a.bind,
                    "the CTI API is reachable beyond this machine without TLS: passwords and sessions cross the network in clear (set api.tls_certificate and api.tls_key)"
                );
            }
            let feeds = crate::api::Feeds {
                snapshot: snapshot_rx,
                cdr: writer.stats_feed(),
                commands: api_tx.clone(),
            };
            let database = config.database.clone();
            Some(crate::api::start(api_config, tls, feeds, events_rx, database).await?)
        }
    };
    let api_addr = api.as_ref().map(|a| a.addr);
    let advertised = config.advertised_host.clone().unwrap_or_else(|| {
        let ip = if sip_addr.ip().is_unspecified() {
            IpAddr::V4(Ipv4Addr::LOCALHOST)
        } else {
            sip_addr.ip()
        };
        SocketAddr::new(ip, sip_addr.port()).to_string()
    });
    let fallback_address = if sip_addr.ip().is_unspecified() {
        IpAddr::V4(Ipv4Addr::LOCALHOST)
    } else {
        sip_addr.ip()
    };
    let mut trusted = config.trusted.clone();
    if let Some(gateway) = config.outbound {
        trusted.add(gateway.ip());
    }
    let timezone = sources.timezone.clone();
    let engine_cfg = EngineConfig {
        max_calls: budget.max_calls,
        source_max_calls: config.source_max_calls,
        admission: AdmissionConfig {
            calls_per_second: config.source_call_rate,
            burst: config.source_call_rate.saturating_mul(2),
            refusals_per_second: REFUSALS_PER_SECOND,
            trusted,
            max_sources: MAX_SOURCES,
        },
        retry_after: config.retry_after,
        answer_delay: config.answer_delay,
        media_address: config.media_address,
        fallback_address,
        advertise_request_host: config.advertised_host.is_none() && sip_addr.ip().is_unspecified(),
        advertised,
        shutdown_grace: config.shutdown_grace,
        timers: TimerConfig {
            ack_wait: config.ack_timeout,
            ..TimerConfig::default()
        },
        timezone: timezone.clone(),
        outbound: config.outbound,
        outbound_caller_id: config.outbound_caller_id.clone(),
        outbound_transport: config.outbound_transport,
        registrar: config.registrar.clone(),
        recordings_dir: config.recordings_dir.clone(),
        // The engine is deterministic given its inputs; this is where its randomness enters.
        // Tags, Call-IDs and ids need only be unique, so the global generator will do.
        seed: fastrand::u64(..),
        nonce_secret: os_secret().map_err(RuntimeError::Entropy)?,
        tls_port: tls_addr.map(|a| a.port()),
        srtp: config.srtp,
        srtp_keys: crate::media::srtp::KeySource::os(),
    };
    // The instant the wall clock showed a whole millisecond, so wall times derived from it
    // are exact to the microsecond (an event's stamp is compared with other clocks).
    let epoch = {
        let (now, since) = (
            Instant::now(),
            SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .unwrap_or_default(),
        );
        let past_ms = Duration::from_nanos(u64::from(since.subsec_nanos() % 1_000_000));
        (
            now.checked_sub(past_ms).unwrap_or(now),
            since.as_millis() as i64,
        )
    };
    let sticky_days = catalog
        .acd
        .queues
        .iter()
        .filter(|q| !q.sticky_wait.is_zero())
        .map(|q| q.sticky_days)
        .max();
    let mut engine = Engine::new(engine_cfg, catalog, media, epoch);
    let (switches, problems) = Switches::read(&config.flows_dir, &timezone);
    for problem in problems {
        tracing::warn!("announcement switch: {problem}");
    }
    engine.refresh_switches(epoch.0, switches);
    // Who served each returning caller last, read from the CDRs once, off the loop: until
    // it arrives (or if the database is down) sticky routing just has nobody to prefer.
    let (seed_tx, seed_rx) = tokio::sync::oneshot::channel();
    if let Some(days) = sticky_days {
        let url = config.database.clone();
        let since = epoch.1 - i64::from(days) * 86_400_000;
        tokio::spawn(async move {
            let read = async {
                let store = crate::cdr::store::CdrStore::connect(&url).await?;
                let rows = store.last_agents(since, STICKY_SEED).await;
                store.close().await;
                rows
            };
            match tokio::time::timeout(std::time::Duration::from_secs(30), read).await {
                Ok(Ok(rows)) => {
                    let _ = seed_tx.send(rows);
                }
                Ok(Err(e)) => {
                    tracing::warn!(error = %e, "could not read past agents for sticky routing")
                }
                Err(_) => tracing::warn!("reading past agents for sticky routing timed out"),
            }
        });
    }
    let (shutdown, signal_rx) = watch::channel(Signal::Run);
    // One slot: a request already waiting covers any that arrive before it is taken.
    let (reloads, reload_rx) = mpsc::channel(1);
    let (status_tx, status) = watch::channel(ReloadStatus {
        version: 1,
        ..ReloadStatus::default()
    });
    let watcher = tree.map(|tree| {
        tokio::spawn(reload::watch_files(
            roots,
            config.reload_poll,
            tree,
            reloads.clone(),
        ))
    });
    tracing::info!(sip = %sip_addr, tcp = config.sip_tcp, tls = ?tls_addr, srtp = ?config.srtp, rtp = ?config.rtp_ports, database = %crate::cdr::store::redact_url(&config.database), watch = config.reload_watch, "hotline is taking calls");
    let reloading = Reloading {
        sources,
        requests: reload_rx,
        status: status_tx,
    };
    let done = tokio::spawn(async move {
        let mut sink = sink;
        let result = signalling_loop(
            engine,
            seed_rx,
            udp,
            tcp_rx,
            &tcp,
            &tls,
            media_rx,
            signal_rx,
            &mut sink,
            reloading,
            lookups,
            snapshot_tx,
            api_rx,
            api_events,
        )
        .await;
        // Held until here so the loop's command channel stays open with the API off.
        drop(api_tx);
        if let Some(api) = api {
            api.stop().await;
        }
        if let Some(watcher) = watcher {
            watcher.abort();
        }
        tcp.stop();
        tls.stop();
        let leftovers = sink.close();
        match writer
            .shutdown(leftovers, std::time::Duration::from_secs(10))
            .await
        {
            Ok(report) => tracing::info!(
                written = report.written,
                spooled = report.spooled,
                "CDR writer stopped"
            ),
            Err(e) => tracing::error!(error = %e, "CDR writer shutdown failed"),
        }
        result
    });
    Ok(Server {
        sip_addr,
        tls_addr,
        api_addr,
        shutdown,
        reloads,
        status,
        done,
    })
}

fn request_reload(reloads: &mpsc::Sender<Trigger>) {
    // Full: a request is already waiting, and the load it starts reads the newest files.
    let _ = reloads.try_send(Trigger::Signal);
}

/// The signalling loop's side of reloading: where requests come from and what to load.
struct Reloading {
    sources: Sources,
    requests: mpsc::Receiver<Trigger>,
    status: watch::Sender<ReloadStatus>,
}

/// The least time between two snapshots published for API commands.
const SNAPSHOT_SPACING: std::time::Duration = std::time::Duration::from_millis(200);

#[allow(clippy::too_many_arguments)]
async fn signalling_loop(
    mut engine: Engine<MediaHandle>,
    mut sticky_seed: tokio::sync::oneshot::Receiver<Vec<(String, String, i64)>>,
    udp: UdpSocket,
    mut tcp_rx: mpsc::Receiver<(Peer, Vec<u8>)>,
    tcp: &tcp::Connections,
    tls: &tcp::Connections,
    mut media_rx: mpsc::Receiver<MediaEvent>,
    mut signals: watch::Receiver<Signal>,
    sink: &mut writer::CdrSink,
    mut reloading: Reloading,
    lookups: http::Client,
    snapshots: watch::Sender<crate::call::snapshot::Snapshot>,
    mut api_requests: mpsc::Receiver<crate::api::ApiRequest>,
    api_events: Option<mpsc::Sender<crate::call::events::EngineEvent>>,
) -> Result<(), RuntimeError> {
    let mut events_lost = false;
    let mut published = Instant::now();
    let mut publish = tokio::time::interval(std::time::Duration::from_secs(1));
    publish.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut buf = vec![0u8; 65_536];
    let (lookup_tx, mut lookup_rx) = mpsc::channel(MAX_LOOKUPS);
    let lookup_slots = Arc::new(tokio::sync::Semaphore::new(MAX_LOOKUPS));
    let mut signals_open = true;
    let mut gate = ReloadGate::default();
    // Capacity 1 is enough: the gate lets one load run at a time.
    let (loaded_tx, mut loaded_rx) = mpsc::channel::<Loaded>(1);
    let (written_tx, mut written_rx) = mpsc::channel::<Written>(256);
    loop {
        let wake = engine.poll_timeout();
        // Biased, in this order: signals (a shutdown asked for before an INVITE arrives must
        // refuse that INVITE), then the call's own work (loads, media events, look-ups,
        // timers), and SIP input last, so a flood of requests cannot hold back the timers
        // and prompts of calls already up.
        tokio::select! {
            biased;
            changed = signals.changed(), if signals_open => {
                let signal = *signals.borrow_and_update();
                // A dropped sender stays "changed" for ever: stop listening, or this biased
                // branch would starve every other one.
                signals_open = changed.is_ok();
                if changed.is_err() || signal == Signal::Shutdown {
                    engine.begin_shutdown(Instant::now());
                }
            }
            Some(mut loaded) = loaded_rx.recv() => {
                let switches = std::mem::take(&mut loaded.switches);
                if let Some(catalog) = reload::settle(loaded, &reloading.status) {
                    engine.set_catalog(Instant::now(), Arc::new(catalog));
                }
                engine.refresh_switches(Instant::now(), switches);
                if let Some(trigger) = gate.finished() {
                    reload::spawn_load(&reloading.sources, trigger, loaded_tx.clone());
                }
            }
            Some(trigger) = reloading.requests.recv() => {
                if let Some(trigger) = gate.request(trigger) {
                    reload::spawn_load(&reloading.sources, trigger, loaded_tx.clone());
                }
            }
            Some(event) = media_rx.recv() => {
                let now = Instant::now();
                engine.handle_media(now, event);
                // Media events come in bursts (one per tick): take what is queued in one go.
                while let Ok(event) = media_rx.try_recv() {
                    engine.handle_media(now, event);
                }
            }
            Some((request, result)) = lookup_rx.recv() => engine.handle_lookup(Instant::now(), request, result),
            Some((call, task, result)) = written_rx.recv() => engine.handle_recording_written(Instant::now(), call, task, result),
            Ok(rows) = &mut sticky_seed, if !sticky_seed.is_terminated() => {
                tracing::info!(callers = rows.len(), "past agents loaded for sticky routing");
                for (caller, agent, end_ms) in rows.into_iter().rev() {
                    engine.remember_agent(&caller, &agent, end_ms);
                }
            }
            _ = sleep_until(wake) => engine.handle_timeout(Instant::now()),
            _ = publish.tick() => {
                published = Instant::now();
                snapshots.send_replace(engine.snapshot(published));
            }
            Some(request) = api_requests.recv() => match request {
                crate::api::ApiRequest::Agent { id, command, reply } => {
                    let now = Instant::now();
                    let _ = reply.send(engine.agent_command(now, &id, command));
                    // Lists read the snapshot: show the change soon, but a client sending
                    // commands in a loop cannot make the loop rebuild it more than 5 times a
                    // second.
                    if now.duration_since(published) >= SNAPSHOT_SPACING {
                        published = now;
                        snapshots.send_replace(engine.snapshot(now));
                    }
                }
                crate::api::ApiRequest::Move { call, target, by, reply } => {
                    let now = Instant::now();
                    let _ = reply.send(engine.move_caller(now, &call, target, &by));
                    if now.duration_since(published) >= SNAPSHOT_SPACING {
                        published = now;
                        snapshots.send_replace(engine.snapshot(now));
                    }
                }
                crate::api::ApiRequest::WrapUp { id, note, done, reply } => {
                    let now = Instant::now();
                    let _ = reply.send(engine.wrap_up(now, &id, note, done));
                    if now.duration_since(published) >= SNAPSHOT_SPACING {
                        published = now;
                        snapshots.send_replace(engine.snapshot(now));
                    }
                }
            },
            received = udp.recv_from(&mut buf) => match received {
                Ok((n, from)) => engine.handle_sip(Instant::now(), Peer { addr: from, transport: TransportKind::Udp }, &buf[..n]),
                // ICMP port unreachable from a vanished peer surfaces here on Linux; keep going.
                Err(e) => tracing::debug!(error = %e, "SIP UDP receive error"),
            },
            Some((from, data)) = tcp_rx.recv() => engine.handle_sip(Instant::now(), from, &data),
        }
        while let Some(job) = engine.poll_lookup() {
            start_lookup(&lookups, job, &lookup_slots, &lookup_tx, &mut engine);
        }
        while let Some(job) = engine.poll_recording() {
            save_recording(job, &written_tx);
        }
        while let Some(t) = engine.poll_transmit() {
            match t.to.transport {
                TransportKind::Udp => {
                    if let Err(e) = udp.try_send_to(&t.data, t.to.addr) {
                        if e.kind() == std::io::ErrorKind::WouldBlock {
                            let _ = udp.send_to(&t.data, t.to.addr).await;
                        } else {
                            tracing::debug!(to = %t.to.addr, error = %e, "SIP send failed");
                        }
                    }
                }
                TransportKind::Tcp => tcp.send(t.to.addr, t.data),
                TransportKind::Tls => tls.send(t.to.addr, t.data),
            }
        }
        while let Some(opened) = engine.poll_opened() {
            sink.submit(crate::cdr::CdrItem::Open(opened));
        }
        while let Some(record) = engine.poll_record() {
            sink.submit(record);
        }
        while let Some(state) = engine.poll_agent_state() {
            sink.submit_agent_state(state);
        }
        while let Some(time) = engine.poll_agent_time() {
            sink.submit(time);
        }
        while let Some(event) = engine.poll_event() {
            // Full (the API's hub is behind): the event is not worth waiting for, but the
            // clients must learn that they missed some, once there is room to say so.
            if let Some(tx) = &api_events {
                if events_lost && tx.try_send(crate::call::events::EngineEvent::Lost).is_ok() {
                    events_lost = false;
                }
                if events_lost || tx.try_send(event).is_err() {
                    events_lost = true;
                }
            }
        }
        engine.media().flush();
        if engine.drained() {
            engine.flush_agent_time(Instant::now());
            while let Some(time) = engine.poll_agent_time() {
                sink.submit(time);
            }
            sink.pump();
            engine.media().stop();
            return Ok(());
        }
    }
}

/// One back-end request outside a server (the dry run), on a runtime of its own; https://
/// back ends are checked against `ca` (PEM) or the system's authorities.
pub fn fetch_blocking(
    request: &crate::flow::LookupRequest,
    ca: Option<&std::path::Path>,
) -> crate::flow::LookupResult {
    let client = match http::Client::new(ca) {
        Ok(c) => c,
        Err(e) => return crate::flow::LookupResult::Failed(e.to_string()),
    };
    match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt.block_on(client.fetch(request)),
        Err(e) => crate::flow::LookupResult::Failed(format!("runtime: {e}")),
    }
}

/// Back-end requests in flight at once; beyond that a look-up fails at once rather than
/// queueing behind a back end that is already too slow.
const MAX_LOOKUPS: usize = 256;

fn start_lookup(
    client: &http::Client,
    job: crate::call::LookupJob,
    slots: &Arc<tokio::sync::Semaphore>,
    results: &mpsc::Sender<(crate::flow::LookupRequest, crate::flow::LookupResult)>,
    engine: &mut Engine<MediaHandle>,
) {
    let Ok(permit) = Arc::clone(slots).try_acquire_owned() else {
        tracing::warn!(url = %job.request.shown_url, "too many back-end look-ups in flight; failing this one");
        let result = crate::flow::LookupResult::Failed("too many look-ups in flight".into());
        return engine.handle_lookup(Instant::now(), job.request, result);
    };
    let results = results.clone();
    let client = client.clone();
    tokio::spawn(async move {
        let result = client.fetch(&job.request).await;
        if let crate::flow::LookupResult::Failed(reason) = &result {
            tracing::warn!(url = %job.request.shown_url, %reason, "back-end look-up failed");
        }
        // The permit bounds the channel too: at most MAX_LOOKUPS results can be waiting.
        let _ = results.send((job.request, result)).await;
        drop(permit);
    });
}

/// Callers whose last agent is read from the CDRs at start, at most (the engine keeps as many).
const STICKY_SEED: usize = 200_000;

/// A recording's outcome, on its way back to the signalling loop.
type Written = (
    crate::call::InteractionId,
    crate::flow::TaskId,
    Result<std::path::PathBuf, String>,
);

/// Write a caller's message on the blocking pool: file I/O must hold up neither the
/// signalling loop nor the media threads. The file is kept even if the call has ended.
fn save_recording(job: RecordingJob, done: &mpsc::Sender<Written>) {
    let done = done.clone();
    tokio::task::spawn_blocking(move || {
        let result =
            crate::media::recorder::write_wav_channels(&job.path, &job.samples, job.channels)
                .map(|()| job.path);
        // Blocking is fine on this pool thread; the loop drains the channel on every turn.
        let _ = done.blocking_send((job.call, job.task, result));
    });
}

/// Create and migrate the CDR database before taking calls, so a fresh install has its schema
/// at once. A database that is down is not fatal: the writer keeps records until it is back.
/// A schema that disagrees with this release (an applied migration was edited) is: records
/// written into it could not be trusted, so the server does not start.
async fn prepare_database(url: &str) -> Result<(), RuntimeError> {
    let attempt = async {
        let store = crate::cdr::store::CdrStore::connect(url).await?;
        store.migrate().await?;
        store.close().await;
        Ok::<_, crate::cdr::CdrError>(())
    };
    match tokio::time::timeout(std::time::Duration::from_secs(5), attempt).await {
        Ok(Ok(())) => {}
        Ok(Err(e)) if e.is_schema_conflict() => return Err(RuntimeError::Cdr(e)),
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "CDR database unavailable at start; records will wait for it")
        }
        Err(_) => tracing::warn!("CDR database did not answer at start; records will wait for it"),
    }
    Ok(())
}

async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(t) => tokio::time::sleep_until(t.into()).await,
        None => std::future::pending().await,
    }
}

/// Serve until SIGINT or SIGTERM, then drain; SIGHUP reloads flows and prompts.
pub async fn serve(config: Config) -> Result<(), RuntimeError> {
    use tokio::signal::unix::{SignalKind, signal};
    let server = start(config).await?;
    let (mut int, mut term, mut hup) = (
        signal(SignalKind::interrupt()).map_err(RuntimeError::Media)?,
        signal(SignalKind::terminate()).map_err(RuntimeError::Media)?,
        signal(SignalKind::hangup()).map_err(RuntimeError::Media)?,
    );
    let stopper = server.shutdown.clone();
    let reloads = server.reloads.clone();
    let watcher = tokio::spawn(async move {
        loop {
            tokio::select! {
                _ = int.recv() => break,
                _ = term.recv() => break,
                _ = hup.recv() => request_reload(&reloads),
            }
        }
        let _ = stopper.send(Signal::Shutdown);
    });
    let result = server.wait().await;
    watcher.abort();
    result
}
