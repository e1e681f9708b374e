//! The only place with sockets, tasks and clocks. The signalling loop owns the call engine and
//! feeds it SIP datagrams, media events and timer wake-ups; the media thread paces RTP; the CDR
//! writer stores records. Shutdown: a watch channel, then a drain.

mod http;
mod media;
mod tcp;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use tokio::net::UdpSocket;
use tokio::sync::{mpsc, watch};

pub use media::MediaHandle;

use crate::call::{Catalog, CatalogError, Engine, EngineConfig, MediaEvent};
use crate::cdr::writer::{self, CdrWriterConfig};
use crate::config::Config;
use crate::sip::transaction::TimerConfig;
use crate::sip::{Peer, TransportKind};

#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    #[error(transparent)]
    Catalog(#[from] CatalogError),
    #[error("cannot bind SIP on {addr}: {source}")]
    BindSip {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("cannot start the media thread: {0}")]
    Media(std::io::Error),
    #[error("CDR writer: {0}")]
    Cdr(#[from] crate::cdr::CdrError),
}

/// A running server: its addresses, and the way to stop it.
pub struct Server {
    pub sip_addr: SocketAddr,
    shutdown: watch::Sender<Signal>,
    done: tokio::task::JoinHandle<Result<(), RuntimeError>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Signal {
    Run,
    Reload(u64),
    Shutdown,
}

impl Server {
    /// Ask for a graceful shutdown (what SIGTERM does).
    pub fn shutdown(&self) {
        let _ = self.shutdown.send(Signal::Shutdown);
    }

    /// Reload flows and prompts (what SIGHUP does).
    pub fn reload(&self) {
        self.shutdown.send_modify(|s| {
            if let Signal::Reload(n) = s {
                *s = Signal::Reload(*n + 1)
            } else if *s == Signal::Run {
                *s = Signal::Reload(1)
            }
        });
    }

    /// Wait until the server has drained every call and flushed every record.
    pub async fn wait(self) -> Result<(), RuntimeError> {
        match self.done.await {
            Ok(r) => r,
            Err(e) => panic!("server task panicked: {e}"),
        }
    }
}

/// Bind everything and start serving. Returns once the server takes calls.
pub async fn start(config: Config) -> Result<Server, RuntimeError> {
    let catalog = Arc::new(Catalog::load(
        &config.flows_dir,
        &config.prompts_dir,
        &config.language,
    )?);
    tracing::info!(
        flows = catalog.flows.flows.len(),
        prompts = catalog.files.len(),
        "flows and prompts loaded"
    );
    let udp = UdpSocket::bind(config.sip_bind)
        .await
        .map_err(|source| RuntimeError::BindSip {
            addr: config.sip_bind,
            source,
        })?;
    let sip_addr = udp.local_addr().map_err(|source| RuntimeError::BindSip {
        addr: config.sip_bind,
        source,
    })?;
    let (tcp_tx, tcp_rx) = mpsc::channel(4096);
    let tcp = if config.sip_tcp {
        let listener = tokio::net::TcpListener::bind(sip_addr)
            .await
            .map_err(|source| RuntimeError::BindSip {
                addr: sip_addr,
                source,
            })?;
        Some(tcp::Connections::start(listener, tcp_tx))
    } else {
        None
    };
    let (media_tx, media_rx) = mpsc::channel(64 * 1024);
    let media = MediaHandle::start(
        config.media_threads,
        config.rtp_ports,
        config.rtp_timeout,
        media_tx,
    )
    .map_err(RuntimeError::Media)?;
    prepare_database(&config.database).await;
    let (sink, writer) = writer::spawn(CdrWriterConfig::new(
        config.database.clone(),
        config.cdr_spool.clone(),
    ));
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
    let engine_cfg = EngineConfig {
        max_calls: config.max_calls,
        retry_after: config.retry_after,
        answer_delay: config.answer_delay,
        media_address: config.media_address,
        fallback_address,
        advertised,
        shutdown_grace: config.shutdown_grace,
        timers: TimerConfig::default(),
        timezone: jiff::tz::TimeZone::try_system().unwrap_or(jiff::tz::TimeZone::UTC),
    };
    let epoch = (
        Instant::now(),
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as i64),
    );
    let engine = Engine::new(engine_cfg, catalog, media, epoch);
    let (shutdown, signal_rx) = watch::channel(Signal::Run);
    tracing::info!(sip = %sip_addr, tcp = config.sip_tcp, rtp = ?config.rtp_ports, database = %crate::cdr::store::redact_url(&config.database), "hotline is taking calls");
    let reload_dirs = (
        config.flows_dir.clone(),
        config.prompts_dir.clone(),
        config.language.clone(),
    );
    let done = tokio::spawn(async move {
        let mut sink = sink;
        let result = signalling_loop(
            engine,
            udp,
            tcp_rx,
            tcp.as_ref(),
            media_rx,
            signal_rx,
            &mut sink,
            reload_dirs,
        )
        .await;
        if let Some(tcp) = tcp {
            tcp.stop();
        }
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
        shutdown,
        done,
    })
}

#[allow(clippy::too_many_arguments)]
async fn signalling_loop(
    mut engine: Engine<MediaHandle>,
    udp: UdpSocket,
    mut tcp_rx: mpsc::Receiver<(SocketAddr, Vec<u8>)>,
    tcp: Option<&tcp::Connections>,
    mut media_rx: mpsc::Receiver<MediaEvent>,
    mut signals: watch::Receiver<Signal>,
    sink: &mut writer::CdrSink,
    reload_dirs: (PathBuf, PathBuf, String),
) -> Result<(), RuntimeError> {
    let mut buf = vec![0u8; 65_536];
    let (lookup_tx, mut lookup_rx) = mpsc::channel(MAX_LOOKUPS);
    let lookup_slots = Arc::new(tokio::sync::Semaphore::new(MAX_LOOKUPS));
    let mut last_reload = 0;
    let mut signals_open = true;
    loop {
        let wake = engine.poll_timeout();
        // Biased, signals first: a shutdown asked for before an INVITE arrives must refuse
        // that INVITE, whatever else is ready in the same turn.
        tokio::select! {
            biased;
            changed = signals.changed(), if signals_open => {
                let signal = *signals.borrow_and_update();
                // A dropped sender stays "changed" for ever: stop listening, or this biased
                // branch would starve every other one.
                signals_open = changed.is_ok();
                match (changed, signal) {
                    (Err(_), _) | (_, Signal::Shutdown) => engine.begin_shutdown(Instant::now()),
                    (_, Signal::Reload(n)) if n != last_reload => {
                        last_reload = n;
                        reload(&mut engine, &reload_dirs);
                    }
                    _ => {}
                }
            }
            received = udp.recv_from(&mut buf) => match received {
                Ok((n, from)) => engine.handle_sip(Instant::now(), Peer { addr: from, transport: TransportKind::Udp }, &buf[..n]),
                // ICMP port unreachable from a vanished peer surfaces here on Linux; keep going.
                Err(e) => tracing::debug!(error = %e, "SIP UDP receive error"),
            },
            Some((from, data)) = tcp_rx.recv() => engine.handle_sip(Instant::now(), Peer { addr: from, transport: TransportKind::Tcp }, &data),
            Some(event) = media_rx.recv() => {
                let now = Instant::now();
                engine.handle_media(now, event);
                // Media events come in bursts (one per tick): take what is queued in one go.
                while let Ok(event) = media_rx.try_recv() {
                    engine.handle_media(now, event);
                }
            }
            Some((request, result)) = lookup_rx.recv() => engine.handle_lookup(Instant::now(), request, result),
            _ = sleep_until(wake) => engine.handle_timeout(Instant::now()),
        }
        while let Some(job) = engine.poll_lookup() {
            start_lookup(job, &lookup_slots, &lookup_tx, &mut engine);
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
                TransportKind::Tcp => {
                    if let Some(tcp) = tcp {
                        tcp.send(t.to.addr, t.data);
                    }
                }
            }
        }
        while let Some(record) = engine.poll_record() {
            sink.submit(record);
        }
        engine.media().flush();
        if engine.drained() {
            sink.pump();
            engine.media().stop();
            return Ok(());
        }
    }
}

/// Back-end requests in flight at once; beyond that a look-up fails at once rather than
/// queueing behind a back end that is already too slow.
const MAX_LOOKUPS: usize = 256;

fn start_lookup(
    job: crate::call::LookupJob,
    slots: &Arc<tokio::sync::Semaphore>,
    results: &mpsc::Sender<(crate::flow::LookupRequest, crate::flow::LookupResult)>,
    engine: &mut Engine<MediaHandle>,
) {
    let Ok(permit) = Arc::clone(slots).try_acquire_owned() else {
        tracing::warn!(url = %job.request.url, "too many back-end look-ups in flight; failing this one");
        let result = crate::flow::LookupResult::Failed("too many look-ups in flight".into());
        return engine.handle_lookup(Instant::now(), job.request, result);
    };
    let results = results.clone();
    tokio::spawn(async move {
        let result = http::fetch(&job.request).await;
        if let crate::flow::LookupResult::Failed(reason) = &result {
            tracing::warn!(url = %job.request.url, %reason, "back-end look-up failed");
        }
        // The permit bounds the channel too: at most MAX_LOOKUPS results can be waiting.
        let _ = results.send((job.request, result)).await;
        drop(permit);
    });
}

fn reload(engine: &mut Engine<MediaHandle>, dirs: &(PathBuf, PathBuf, String)) {
    match Catalog::load(&dirs.0, &dirs.1, &dirs.2) {
        Ok(catalog) => {
            tracing::info!(
                flows = catalog.flows.flows.len(),
                "flows reloaded; new calls use them"
            );
            engine.set_catalog(Arc::new(catalog));
        }
        Err(e) => tracing::error!("reload refused, the previous flows stay live: {e}"),
    }
}

/// Create and migrate the CDR database before taking calls, so a fresh install has its schema
/// at once. A database that is down is not fatal: the writer keeps records until it is back.
async fn prepare_database(url: &str) {
    let attempt = async {
        let store = crate::cdr::store::CdrStore::connect(url).await?;
        store.migrate().await?;
        store.close().await;
        Ok::<_, crate::cdr::CdrError>(())
    };
    match tokio::time::timeout(std::time::Duration::from_secs(5), attempt).await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "CDR database unavailable at start; records will wait for it")
        }
        Err(_) => tracing::warn!("CDR database did not answer at start; records will wait for it"),
    }
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
    let watcher = tokio::spawn(async move {
        loop {
            tokio::select! {
                _ = int.recv() => break,
                _ = term.recv() => break,
                _ = hup.recv() => {
                    stopper.send_modify(|s| *s = match s { Signal::Reload(n) => Signal::Reload(*n + 1), _ => Signal::Reload(1) });
                }
            }
        }
        let _ = stopper.send(Signal::Shutdown);
    });
    let result = server.wait().await;
    watcher.abort();
    result
}
