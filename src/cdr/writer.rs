//! The asynchronous CDR writer: the only path from calls to the store.
//!
//! Calls submit finished records to a [`CdrSink`] without ever waiting. One task owns the
//! receiving end, a backlog and the store; it batches and retries through outages. Every
//! item it takes is journaled to disk first (`journal`), so what the database does not have
//! survives a crash as well as a shutdown, and the next start replays it.
//!
//! A record leaves the backlog only when the transaction that holds it has committed, and the
//! store's insert ignores ids it already has. Together these give "exactly one row per call"
//! through retries, timeouts that fire during a commit, and crashes between a replay's commit
//! and the trimming of the journal.

use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::time::Duration;

use tokio::sync::mpsc::error::TrySendError;
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinHandle;
use tokio::time::{Instant, sleep_until};

use super::CdrError;
use super::journal::{self, Journal};
use super::record::{AgentStateRecord, AgentTimeRecord, CdrRecord, Disposition};
use super::store::{CdrStore, redact_url};

/// What the writer takes: a finished call's record, or an agent's state change. Both share
/// the channel, the batches (one transaction each), the backlog and the spool, in the order
/// they were submitted.
///
/// Not boxed: the channel carried whole `CdrRecord`s before agent states joined them, and a
/// box would cost an allocation per call to save space only in agent-state slots.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CdrItem {
    Call(CdrRecord),
    AgentState(AgentStateRecord),
    /// A call that has just started, as its record would read if the server died now
    /// (failed, "server_crash"). Journaled, never written to the database: its finished
    /// record supersedes it, and only a crash leaves it alone, to be replayed at the next
    /// start with the crash's time as its end.
    Open(CdrRecord),
    /// An agent's time per state within one quarter hour.
    AgentTime(AgentTimeRecord),
}

impl From<CdrRecord> for CdrItem {
    fn from(rec: CdrRecord) -> Self {
        CdrItem::Call(rec)
    }
}

impl From<AgentTimeRecord> for CdrItem {
    fn from(time: AgentTimeRecord) -> Self {
        CdrItem::AgentTime(time)
    }
}

impl From<AgentStateRecord> for CdrItem {
    fn from(state: AgentStateRecord) -> Self {
        CdrItem::AgentState(state)
    }
}

/// A spool line of an agent state: `{"agent_state": {...}}`. A call's line is the record
/// itself, as before agent states existed, so old spool files replay unchanged.
#[derive(serde::Serialize, serde::Deserialize)]
struct AgentStateLine<T> {
    agent_state: T,
}

/// A spool line of agents' time: `{"agent_time": {...}}`.
#[derive(serde::Serialize, serde::Deserialize)]
struct AgentTimeLine<T> {
    agent_time: T,
}

/// A journal line of a call in progress: `{"open": {...}}`.
#[derive(serde::Serialize, serde::Deserialize)]
struct OpenLine<T> {
    open: T,
}

/// The end reason of a call that was up when the server died.
pub const CRASH_END_REASON: &str = "server_crash";

impl CdrItem {
    /// One spool line, without the newline.
    pub fn to_spool_line(&self) -> Result<String, serde_json::Error> {
        match self {
            CdrItem::Call(rec) => serde_json::to_string(rec),
            CdrItem::AgentState(state) => {
                serde_json::to_string(&AgentStateLine { agent_state: state })
            }
            CdrItem::Open(rec) => serde_json::to_string(&OpenLine { open: rec }),
            CdrItem::AgentTime(time) => serde_json::to_string(&AgentTimeLine { agent_time: time }),
        }
    }

    /// Reads a spool line of this or an earlier version.
    pub fn from_spool_line(line: &[u8]) -> Result<CdrItem, serde_json::Error> {
        let value: serde_json::Value = serde_json::from_slice(line)?;
        if value.get("agent_state").is_some() {
            let line: AgentStateLine<AgentStateRecord> = serde_json::from_value(value)?;
            Ok(CdrItem::AgentState(line.agent_state))
        } else if value.get("agent_time").is_some() {
            let line: AgentTimeLine<AgentTimeRecord> = serde_json::from_value(value)?;
            Ok(CdrItem::AgentTime(line.agent_time))
        } else if value.get("open").is_some() {
            let line: OpenLine<CdrRecord> = serde_json::from_value(value)?;
            Ok(CdrItem::Open(line.open))
        } else {
            serde_json::from_value(value).map(CdrItem::Call)
        }
    }
}

/// The first retry waits this long; each failure doubles it up to `retry_backoff_max`.
const FIRST_BACKOFF: Duration = Duration::from_millis(100);

/// Used when the handle is dropped without `shutdown`: nobody is waiting for the answer, but
/// the backlog should still reach the database or the spool.
const ORPHAN_SHUTDOWN_DEADLINE: Duration = Duration::from_secs(5);

/// The journal is trimmed once everything is committed and this many items were added since
/// the last trim, or this long has passed.
const TRIM_AFTER_ITEMS: usize = 1_000;
const TRIM_EVERY: Duration = Duration::from_secs(10);

/// Closing the pool waits for connections to be returned; a wedged one must not hold up exit.
const POOL_CLOSE_LIMIT: Duration = Duration::from_secs(1);

#[derive(Clone)]
pub struct CdrWriterConfig {
    pub database_url: String,
    /// The journal: JSON lines, one item each, appended as items arrive and trimmed once
    /// the database has them; replayed at the next start (see `journal`).
    pub spool_path: PathBuf,
    /// Records per transaction (e.g. 200).
    pub batch_size: usize,
    /// A partial batch is written once its oldest record has waited this long (e.g. 200 ms).
    pub max_delay: Duration,
    /// Ceiling of the exponential retry backoff during an outage (e.g. 5 s).
    pub retry_backoff_max: Duration,
    /// Records the channel holds before sinks keep them in their local overflow.
    pub channel_capacity: usize,
    /// Upper bound on one connect-and-write attempt, so a server that accepts connections but
    /// never answers is treated like one that is down.
    pub attempt_timeout: Duration,
}

impl CdrWriterConfig {
    /// The defaults named in the design: batches of 200, 200 ms, backoff up to 5 s.
    pub fn new(database_url: impl Into<String>, spool_path: impl Into<PathBuf>) -> Self {
        CdrWriterConfig {
            database_url: database_url.into(),
            spool_path: spool_path.into(),
            batch_size: 200,
            max_delay: Duration::from_millis(200),
            retry_backoff_max: Duration::from_secs(5),
            channel_capacity: 4_096,
            attempt_timeout: Duration::from_secs(10),
        }
    }
}

impl fmt::Debug for CdrWriterConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CdrWriterConfig")
            .field("database_url", &redact_url(&self.database_url))
            .field("spool_path", &self.spool_path)
            .field("batch_size", &self.batch_size)
            .field("max_delay", &self.max_delay)
            .field("retry_backoff_max", &self.retry_backoff_max)
            .field("channel_capacity", &self.channel_capacity)
            .field("attempt_timeout", &self.attempt_timeout)
            .finish()
    }
}

/// A snapshot of the writer, for health checks and alarms.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WriterStats {
    /// Items (call records and agent states alike) committed since the writer started,
    /// including replayed spool records.
    pub written: u64,
    /// Items the writer holds that are not committed yet, including a batch in flight.
    pub backlog: usize,
    /// Failed attempts (connect, migrate or write) since the writer started.
    pub failures: u64,
    /// True from a failed attempt until the next successful one.
    pub outage: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ShutdownReport {
    /// Items (call records and agent states) committed over the writer's whole life.
    pub written: u64,
    /// Items left in the spool file for the next start.
    pub spooled: usize,
}

/// Starts the writer task and returns the submitting end and the control handle.
///
/// Does not touch the database: the task connects (and migrates) on its first batch and
/// treats a failure like any other outage, so the server starts while the database is down.
///
/// # Panics
/// Outside a tokio runtime, like `tokio::spawn`.
pub fn spawn(config: CdrWriterConfig) -> (CdrSink, CdrWriterHandle) {
    let config = CdrWriterConfig {
        // Zero would make the channel constructor panic and the batch logic spin.
        batch_size: config.batch_size.max(1),
        channel_capacity: config.channel_capacity.max(1),
        ..config
    };
    let (tx, rx) = mpsc::channel(config.channel_capacity);
    let (shutdown_tx, shutdown_rx) = oneshot::channel();
    let (stats_tx, stats_rx) = watch::channel(WriterStats::default());
    let spool_path = config.spool_path.clone();
    let writer = Writer {
        config,
        rx,
        rx_open: true,
        store: None,
        backlog: VecDeque::new(),
        in_flight: None,
        retry_at: None,
        backoff: Duration::ZERO,
        outage_since: None,
        stats: WriterStats::default(),
        stats_tx,
        journal: Journal::start(spool_path.clone()),
        opens: HashMap::new(),
        journaled_since_trim: 0,
        last_trim: Instant::now(),
        keep_old_lines: false,
    };
    let task = tokio::spawn(writer.run(shutdown_rx));
    let sink = CdrSink {
        tx,
        overflow: VecDeque::new(),
        overflow_warned: false,
    };
    let handle = CdrWriterHandle {
        shutdown_tx,
        task,
        stats: stats_rx,
        spool_path,
    };
    (sink, handle)
}

/// The submitting end, owned by whoever finishes calls. Not `Clone` on purpose: the overflow
/// is local, and a single owner is what makes `close` able to hand every record back.
pub struct CdrSink {
    tx: mpsc::Sender<CdrItem>,
    /// Items the channel had no room for, oldest first. Unbounded because a CDR is never
    /// dropped; its length is the alarm (`pending`).
    overflow: VecDeque<CdrItem>,
    overflow_warned: bool,
}

impl CdrSink {
    /// Hands a call record (or an agent state: anything that is a [`CdrItem`]) to the writer
    /// without waiting. If the channel is full it is kept here, behind any earlier ones, and
    /// offered again on the next `submit` or `pump`.
    pub fn submit(&mut self, item: impl Into<CdrItem>) {
        self.overflow.push_back(item.into());
        self.pump();
    }

    /// Hands an agent's state change to the writer without waiting, like [`CdrSink::submit`];
    /// for the loop that drains `engine.poll_agent_state()`.
    pub fn submit_agent_state(&mut self, state: AgentStateRecord) {
        self.submit(CdrItem::AgentState(state));
    }

    /// Re-offers held records, oldest first, until the channel is full again.
    pub fn pump(&mut self) {
        while let Some(rec) = self.overflow.pop_front() {
            match self.tx.try_send(rec) {
                Ok(()) => {}
                Err(TrySendError::Full(rec) | TrySendError::Closed(rec)) => {
                    self.overflow.push_front(rec);
                    break;
                }
            }
        }
        if self.overflow.is_empty() {
            self.overflow_warned = false;
        } else if !self.overflow_warned {
            self.overflow_warned = true;
            tracing::warn!(
                held = self.overflow.len(),
                writer_running = !self.tx.is_closed(),
                "CDR channel full; holding records in the call thread until the writer catches up"
            );
        }
    }

    /// Records held here, not yet handed to the writer.
    pub fn pending(&self) -> usize {
        self.overflow.len()
    }

    /// Offers what it can one last time, then returns the rest, oldest first, for
    /// [`CdrWriterHandle::shutdown`].
    pub fn close(mut self) -> Vec<CdrItem> {
        self.pump();
        std::mem::take(&mut self.overflow).into()
    }
}

impl Drop for CdrSink {
    fn drop(&mut self) {
        if !self.overflow.is_empty() {
            tracing::error!(
                lost = self.overflow.len(),
                "CDR sink dropped while holding records; close() it and pass them to shutdown()"
            );
        }
    }
}

pub struct CdrWriterHandle {
    shutdown_tx: oneshot::Sender<ShutdownRequest>,
    task: JoinHandle<Result<ShutdownReport, CdrError>>,
    stats: watch::Receiver<WriterStats>,
    spool_path: PathBuf,
}

impl CdrWriterHandle {
    pub fn stats(&self) -> WriterStats {
        *self.stats.borrow()
    }

    /// The stats as they change, for readers elsewhere (the metrics).
    pub fn stats_feed(&self) -> watch::Receiver<WriterStats> {
        self.stats.clone()
    }

    /// Flushes everything: records still in the channel, then `leftovers` (from
    /// [`CdrSink::close`]). Whatever is not committed when `deadline` has passed is appended
    /// to the spool file and fsynced. Call after closing the sink; records submitted later
    /// stay in that sink.
    pub async fn shutdown(
        self,
        leftovers: Vec<CdrItem>,
        deadline: Duration,
    ) -> Result<ShutdownReport, CdrError> {
        let request = ShutdownRequest {
            leftovers,
            deadline: Instant::now() + deadline,
        };
        match self.shutdown_tx.send(request) {
            Ok(()) => self.task.await.unwrap_or_else(|join_error| {
                tracing::error!(%join_error, "CDR writer task failed during shutdown");
                Err(CdrError::WriterGone)
            }),
            Err(request) => {
                // The task ended on its own, which only a panic does; its backlog is gone, but
                // these records are still ours to save.
                let spooled = request.leftovers.len();
                if spooled > 0 {
                    let path = self.spool_path.clone();
                    let items = request.leftovers;
                    tokio::task::spawn_blocking(move || journal::append_now(&path, &items))
                        .await
                        .map_err(|_| CdrError::WriterGone)??;
                }
                tracing::error!(spooled, "CDR writer task had died before shutdown");
                Err(CdrError::WriterGone)
            }
        }
    }
}

struct ShutdownRequest {
    leftovers: Vec<CdrItem>,
    deadline: Instant,
}

struct Pending {
    /// When the writer received it: a partial batch is due `max_delay` after its oldest one.
    since: Instant,
    item: CdrItem,
}

type AttemptFuture = Pin<Box<dyn Future<Output = Attempt> + Send>>;

struct InFlight {
    /// The batch is the first `len` records of the backlog; they stay there until committed.
    len: usize,
    future: AttemptFuture,
}

struct Attempt {
    /// Handed back so a pool opened by the attempt is kept for the next one.
    store: Option<CdrStore>,
    result: Result<(), CdrError>,
}

struct Writer {
    config: CdrWriterConfig,
    rx: mpsc::Receiver<CdrItem>,
    rx_open: bool,
    store: Option<CdrStore>,
    backlog: VecDeque<Pending>,
    in_flight: Option<InFlight>,
    retry_at: Option<Instant>,
    backoff: Duration,
    outage_since: Option<Instant>,
    stats: WriterStats,
    stats_tx: watch::Sender<WriterStats>,
    /// Holds every item of the backlog and every call in `opens` (and committed items until
    /// the next trim).
    journal: Journal,
    /// Calls in progress by record id, as journaled.
    opens: HashMap<String, CdrItem>,
    journaled_since_trim: usize,
    last_trim: Instant,
    /// The journal of the last run could not be read: its lines are kept (appended to,
    /// never rewritten) for the next start or an operator.
    keep_old_lines: bool,
}

impl Writer {
    async fn run(
        mut self,
        mut shutdown_rx: oneshot::Receiver<ShutdownRequest>,
    ) -> Result<ShutdownReport, CdrError> {
        self.load_journal().await;
        let mut deadline: Option<Instant> = None;
        loop {
            let now = Instant::now();
            if deadline.is_some() && self.backlog.is_empty() && self.in_flight.is_none() {
                break;
            }
            self.maybe_start_attempt(now, deadline.is_some());
            let wake = self.next_attempt_at(now, deadline.is_some());

            tokio::select! {
                // Completions first, so a finished batch frees the backlog before more arrives.
                biased;
                attempt = poll_in_flight(&mut self.in_flight), if self.in_flight.is_some() => {
                    self.finish_attempt(attempt, Instant::now()).await;
                }
                _ = sleep_until(deadline.unwrap_or(now)), if deadline.is_some() => break,
                request = &mut shutdown_rx, if deadline.is_none() => {
                    let request = request.unwrap_or_else(|_| {
                        tracing::warn!("CDR writer handle dropped without shutdown; flushing");
                        ShutdownRequest {
                            leftovers: Vec::new(),
                            deadline: Instant::now() + ORPHAN_SHUTDOWN_DEADLINE,
                        }
                    });
                    deadline = Some(request.deadline);
                    self.begin_shutdown(request.leftovers);
                }
                received = self.rx.recv(), if self.rx_open && deadline.is_none() => match received {
                    Some(item) => self.push(item, Instant::now()),
                    None => self.rx_open = false,
                },
                _ = sleep_until(wake.unwrap_or(now)), if wake.is_some() => {}
            }
        }
        self.finish().await
    }

    fn push(&mut self, item: CdrItem, now: Instant) {
        self.journal.append(&item);
        self.journaled_since_trim += 1;
        match item {
            CdrItem::Open(ref rec) => {
                self.opens.insert(rec.id.clone(), item);
                return;
            }
            CdrItem::Call(ref rec) => {
                self.opens.remove(&rec.id);
            }
            CdrItem::AgentState(_) | CdrItem::AgentTime(_) => {}
        }
        self.backlog.push_back(Pending { since: now, item });
        self.publish();
    }

    /// Once the database has everything, the journal needs only the calls in progress.
    /// Not after every batch: a rewrite costs a write of every open call.
    fn maybe_trim(&mut self, now: Instant) {
        if self.keep_old_lines
            || !self.backlog.is_empty()
            || self.in_flight.is_some()
            || self.journaled_since_trim == 0
            || (self.journaled_since_trim < TRIM_AFTER_ITEMS
                && now.saturating_duration_since(self.last_trim) < TRIM_EVERY)
        {
            return;
        }
        self.journal.rewrite(self.opens.values());
        self.journaled_since_trim = 0;
        self.last_trim = now;
    }

    fn begin_shutdown(&mut self, leftovers: Vec<CdrItem>) {
        // Closing first means a sink that is still alive gets `Closed` and keeps its records,
        // rather than racing this drain.
        self.rx.close();
        let now = Instant::now();
        while let Ok(item) = self.rx.try_recv() {
            self.push(item, now);
        }
        self.rx_open = false;
        // The sink's overflow is younger than anything it managed to send.
        for item in leftovers {
            self.push(item, now);
        }
        // An outage's backoff should not eat the shutdown deadline: try once straight away.
        self.retry_at = None;
        tracing::info!(
            backlog = self.backlog.len(),
            "CDR writer flushing for shutdown"
        );
        self.publish();
    }

    fn maybe_start_attempt(&mut self, now: Instant, draining: bool) {
        if self.in_flight.is_some() || self.backlog.is_empty() {
            return;
        }
        if self.next_attempt_at(now, draining).is_some() {
            return;
        }
        let len = self.backlog.len().min(self.config.batch_size);
        let batch: Vec<CdrItem> = self
            .backlog
            .iter()
            .take(len)
            .map(|p| p.item.clone())
            .collect();
        let future = attempt(
            self.store.clone(),
            self.config.database_url.clone(),
            batch,
            self.config.attempt_timeout,
        );
        self.in_flight = Some(InFlight {
            len,
            future: Box::pin(future),
        });
    }

    /// When the next attempt may start, if that is in the future; None if it may start now or
    /// there is nothing to do.
    fn next_attempt_at(&self, now: Instant, draining: bool) -> Option<Instant> {
        if self.in_flight.is_some() {
            return None;
        }
        let oldest = self.backlog.front()?;
        let ready = if draining || self.backlog.len() >= self.config.batch_size {
            now
        } else {
            oldest.since + self.config.max_delay
        };
        let at = self.retry_at.map_or(ready, |retry| retry.max(ready));
        (at > now).then_some(at)
    }

    async fn finish_attempt(&mut self, attempt: Attempt, now: Instant) {
        let len = self.in_flight.take().map_or(0, |f| f.len);
        if let Some(store) = attempt.store {
            self.store = Some(store);
        }
        match attempt.result {
            Ok(()) => {
                self.backlog.drain(..len.min(self.backlog.len()));
                self.stats.written += len as u64;
                self.stats.outage = false;
                self.backoff = Duration::ZERO;
                self.retry_at = None;
                if let Some(since) = self.outage_since.take() {
                    tracing::info!(
                        outage = ?now.saturating_duration_since(since),
                        backlog = self.backlog.len(),
                        "CDR database reachable again; writing the backlog"
                    );
                }
                self.maybe_trim(now);
            }
            Err(error) => {
                self.stats.failures += 1;
                self.stats.outage = true;
                self.backoff = if self.backoff.is_zero() {
                    FIRST_BACKOFF
                } else {
                    self.backoff.saturating_mul(2)
                }
                .min(self.config.retry_backoff_max);
                self.retry_at = Some(now + self.backoff);
                if self.outage_since.is_none() && error.is_schema_conflict() {
                    self.outage_since = Some(now);
                    // Retried all the same (an operator may repair the database), but this is
                    // not an outage that ends by itself.
                    tracing::error!(
                        %error,
                        backlog = self.backlog.len(),
                        "CDR database schema conflicts with this hotline; keeping records in \
                         memory (spooled at shutdown) until it is repaired"
                    );
                } else if self.outage_since.is_none() {
                    self.outage_since = Some(now);
                    tracing::warn!(
                        %error,
                        backlog = self.backlog.len(),
                        "CDR database unavailable; keeping records in memory and retrying"
                    );
                } else {
                    tracing::debug!(%error, retry_in = ?self.backoff, "CDR write failed again");
                }
            }
        }
        self.publish();
    }

    fn publish(&mut self) {
        self.stats.backlog = self.backlog.len();
        self.stats_tx.send_replace(self.stats);
    }

    /// Replays what the last run left: its uncommitted items go to the backlog, and each
    /// call that was up when it died gets its record, ended at the journal's last write. The
    /// journal is then rewritten to exactly the backlog.
    async fn load_journal(&mut self) {
        let path = self.config.spool_path.clone();
        let loaded = match tokio::task::spawn_blocking(move || journal::read(&path)).await {
            Ok(Ok(loaded)) => loaded,
            Ok(Err(error)) => {
                tracing::error!(%error, "cannot replay the CDR journal; keeping it for the next start");
                self.keep_old_lines = true;
                return;
            }
            Err(join_error) => {
                tracing::error!(%join_error, "CDR journal reader failed; keeping it for the next start");
                self.keep_old_lines = true;
                return;
            }
        };
        let Some(contents) = loaded else { return };
        if contents.rejected > 0 {
            tracing::warn!(
                rejected = contents.rejected,
                path = %journal::rejected_path(&self.config.spool_path).display(),
                "CDR journal lines that do not parse were set aside"
            );
        }
        let items = replay(contents.records, contents.modified_ms);
        let crashed = items
            .iter()
            .filter(|i| matches!(i, CdrItem::Call(r) if r.end_reason == CRASH_END_REASON))
            .count();
        // Due at once: they have waited since the last run already.
        let since = Instant::now()
            .checked_sub(self.config.max_delay)
            .unwrap_or_else(Instant::now);
        tracing::info!(
            records = items.len(),
            calls_cut_by_a_crash = crashed,
            path = %self.config.spool_path.display(),
            "replaying the CDR journal"
        );
        self.journal.rewrite(items.iter());
        for item in items {
            self.backlog.push_back(Pending { since, item });
        }
        self.publish();
    }

    async fn finish(mut self) -> Result<ShutdownReport, CdrError> {
        // Abandoning a batch mid-commit is safe: it stays in the journal, and replaying
        // records that did commit inserts nothing.
        self.in_flight = None;
        if let Some(store) = self.store.take()
            && tokio::time::timeout(POOL_CLOSE_LIMIT, store.close())
                .await
                .is_err()
        {
            tracing::debug!("CDR database pool did not close in time");
        }
        let written = self.stats.written;
        let mut records: Vec<CdrItem> = self.backlog.drain(..).map(|p| p.item).collect();
        let spooled = records.len();
        // Calls the engine never finished (it always does, but a crash record beats none).
        records.extend(self.opens.drain().map(|(_, item)| item));
        if spooled > 0 {
            tracing::warn!(
                records = spooled,
                path = %self.config.spool_path.display(),
                "CDR database not written in time for shutdown; kept in the journal for the next start"
            );
        }
        let journal = self.journal;
        let path = self.config.spool_path.clone();
        let keep_old_lines = self.keep_old_lines;
        let result = tokio::task::spawn_blocking(move || {
            journal.close();
            let result = if keep_old_lines {
                // What this run journaled is there already; the old lines stay as they were.
                Ok(())
            } else {
                journal::replace_now(&path, &records)
            };
            if let Err(error) = &result {
                // The last place these records exist. Losing CDRs silently is worse than
                // putting them in the log, where an operator can recover them.
                tracing::error!(%error, count = records.len(), "CDRs could not be journaled; dumping them");
                for item in &records {
                    if let Ok(line) = item.to_spool_line() {
                        tracing::error!(cdr = %line, "unjournaled CDR");
                    }
                }
            }
            result
        })
        .await
        .map_err(|_| CdrError::WriterGone)?;
        self.stats.backlog = 0;
        self.stats_tx.send_replace(self.stats);
        result.map(|()| ShutdownReport { written, spooled })
    }
}

/// A journal's items as the backlog takes them: each open call that has no finished record
/// becomes one, ended at `crashed_ms` (the journal's last write; never before it started).
fn replay(items: Vec<CdrItem>, crashed_ms: Option<i64>) -> Vec<CdrItem> {
    let finished: std::collections::HashSet<String> = items
        .iter()
        .filter_map(|i| match i {
            CdrItem::Call(r) => Some(r.id.clone()),
            _ => None,
        })
        .collect();
    let mut seen = std::collections::HashSet::new();
    let mut out = Vec::with_capacity(items.len());
    for item in items {
        match item {
            CdrItem::Open(mut rec) => {
                if finished.contains(&rec.id) || !seen.insert(rec.id.clone()) {
                    continue;
                }
                rec.end_ms = crashed_ms.unwrap_or(rec.start_ms).max(rec.start_ms);
                rec.disposition = Disposition::Failed;
                rec.end_reason = CRASH_END_REASON.into();
                out.push(CdrItem::Call(rec));
            }
            other => out.push(other),
        }
    }
    out
}

async fn poll_in_flight(slot: &mut Option<InFlight>) -> Attempt {
    match slot {
        Some(in_flight) => (&mut in_flight.future).await,
        None => std::future::pending().await,
    }
}

/// One connect-if-needed-then-insert, bounded in time as a whole.
async fn attempt(
    store: Option<CdrStore>,
    url: String,
    batch: Vec<CdrItem>,
    limit: Duration,
) -> Attempt {
    let work = async {
        let store = match store {
            Some(store) => store,
            None => match open(&url).await {
                Ok(store) => store,
                Err(error) => return (None, Err(error)),
            },
        };
        let mut calls = Vec::new();
        let mut states = Vec::new();
        let mut times = Vec::new();
        for item in batch {
            match item {
                CdrItem::Call(rec) => calls.push(rec),
                CdrItem::AgentState(state) => states.push(state),
                CdrItem::AgentTime(time) => times.push(time),
                // Never in a batch (`push` keeps them apart).
                CdrItem::Open(_) => {}
            }
        }
        let result = store.write_rows(&calls, &states, &times).await;
        (Some(store), result)
    };
    match tokio::time::timeout(limit, work).await {
        Ok((store, result)) => Attempt { store, result },
        Err(_) => Attempt {
            store: None,
            result: Err(CdrError::Timeout {
                operation: "connect and write batch",
                after: limit,
            }),
        },
    }
}

/// Migrating here, not only at server start, is what lets the writer start against a
/// database that is not there yet.
async fn open(url: &str) -> Result<CdrStore, CdrError> {
    let store = CdrStore::connect(url).await?;
    store.migrate().await?;
    tracing::info!(url = %store.url(), backend = store.backend_name(), "CDR database connected");
    Ok(store)
}

#[cfg(test)]
#[path = "writer_tests.rs"]
mod tests;
