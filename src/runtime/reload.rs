//! Hot reload of flows and prompts. Loading decodes and encodes every prompt, so it runs on a
//! blocking thread and only the finished catalog reaches the signalling loop, which swaps one
//! `Arc`. Two small sans-IO pieces decide when: `TreeWatch` (has the tree changed and then
//! settled?) and `ReloadGate` (one load at a time, later requests coalesced into one more).

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tokio::sync::{mpsc, watch};

use crate::call::Catalog;
use crate::flow::Switches;
use crate::versions::History;

/// What asked for a reload; it only goes into the log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Trigger {
    Signal,
    FileChange,
}

impl Trigger {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Trigger::Signal => "signal",
            Trigger::FileChange => "file change",
        }
    }
}

/// Where reloads stand, for whoever wants to know without reading logs (the tests do).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReloadStatus {
    /// The catalog new calls get: 1 is the one loaded at start, each applied reload adds one.
    pub version: u64,
    /// Reloads refused since start.
    pub refused: u64,
    /// The error lines of the last refused reload.
    pub last_errors: Vec<String>,
}

/// One regular file under a watched directory.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct FileStamp {
    /// Which watched directory (flows, prompts): the same relative path may be in both.
    pub root: usize,
    pub path: PathBuf,
    pub size: u64,
    pub modified: Option<SystemTime>,
    /// Deploys that copy with the old mtime and rename over the file (rsync -t, cp -p then mv)
    /// change neither size nor mtime; the inode still changes.
    pub inode: u64,
}

/// Every relevant file, sorted, so two scans of an unchanged tree compare equal.
pub(crate) type Snapshot = Vec<FileStamp>;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// Same tree as the one last settled.
    Unchanged,
    /// Different, and still moving (or seen for the first time): wait one more poll.
    Changing,
    /// Different from the last settled tree, and the same as the previous poll: reload.
    Settled,
}

/// Debounce over successive snapshots: a change is reported once, after the tree has stayed
/// the same for one more poll, so a file still being written is not loaded half-done.
#[derive(Debug)]
pub(crate) struct TreeWatch {
    settled: Snapshot,
    moving: Option<Snapshot>,
}

impl TreeWatch {
    /// `initial`: the tree as it was when the running catalog was loaded.
    pub(crate) fn new(initial: Snapshot) -> TreeWatch {
        TreeWatch {
            settled: initial,
            moving: None,
        }
    }

    pub(crate) fn observe(&mut self, now: Snapshot) -> Verdict {
        if now == self.settled {
            // Back to what is loaded (an edit undone before it settled): nothing to do.
            self.moving = None;
            return Verdict::Unchanged;
        }
        if self.moving.as_ref() == Some(&now) {
            self.moving = None;
            self.settled = now;
            return Verdict::Settled;
        }
        self.moving = Some(now);
        Verdict::Changing
    }
}

/// At most one load at a time. A request during a load queues exactly one more, which starts
/// when the running one ends and so reads the newest files.
#[derive(Debug, Default)]
pub(crate) struct ReloadGate {
    running: bool,
    queued: Option<Trigger>,
}

impl ReloadGate {
    /// Some: start a load now, for this trigger.
    pub(crate) fn request(&mut self, trigger: Trigger) -> Option<Trigger> {
        if self.running {
            self.queued = Some(trigger);
            None
        } else {
            self.running = true;
            Some(trigger)
        }
    }

    /// The running load ended. Some: start the queued one now.
    pub(crate) fn finished(&mut self) -> Option<Trigger> {
        self.running = self.queued.is_some();
        self.queued.take()
    }
}

/// Editors and copy tools write beside the real file; those names never hold a flow or prompt.
pub(crate) fn is_scratch_name(name: &OsStr) -> bool {
    crate::versions::is_scratch_name(&name.to_string_lossy())
}

/// Symlinked directories could loop; real flow and prompt trees are a few levels deep.
const MAX_DEPTH: usize = 8;

/// Stat every relevant file under `roots`. Blocking. A directory that cannot be read counts as
/// empty: the reload that follows reports why the flows or prompts are missing.
pub(crate) fn scan(roots: &[PathBuf]) -> Snapshot {
    let mut out = Vec::new();
    for (root, dir) in roots.iter().enumerate() {
        scan_dir(root, dir, Path::new(""), 0, &mut out);
    }
    out.sort();
    out
}

fn scan_dir(root: usize, base: &Path, rel: &Path, depth: usize, out: &mut Snapshot) {
    let Ok(entries) = std::fs::read_dir(base.join(rel)) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        if is_scratch_name(&name) {
            continue;
        }
        // Follows symlinks: a linked prompt counts as the file it points to.
        let Ok(meta) = std::fs::metadata(entry.path()) else {
            continue;
        };
        let path = rel.join(&name);
        if meta.is_dir() {
            if depth < MAX_DEPTH {
                scan_dir(root, base, &path, depth + 1, out);
            }
        } else if meta.is_file() {
            use std::os::unix::fs::MetadataExt;
            out.push(FileStamp {
                root,
                path,
                size: meta.len(),
                modified: meta.modified().ok(),
                inode: meta.ino(),
            });
        }
    }
}

/// Poll the trees every `poll` and ask for a reload when a change has settled. Ends when the
/// signalling loop has gone.
pub(crate) async fn watch_files(
    roots: Vec<PathBuf>,
    poll: Duration,
    mut tree: TreeWatch,
    requests: mpsc::Sender<Trigger>,
) {
    let roots = Arc::new(roots);
    let mut ticks = tokio::time::interval(poll);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    ticks.tick().await;
    loop {
        tokio::select! {
            _ = ticks.tick() => {}
            _ = requests.closed() => return,
        }
        let roots = Arc::clone(&roots);
        let Ok(snapshot) = tokio::task::spawn_blocking(move || scan(&roots)).await else {
            return;
        };
        if tree.observe(snapshot) == Verdict::Settled {
            tracing::debug!("flow or prompt files changed");
            match requests.try_send(Trigger::FileChange) {
                // Full: a request is already waiting, and the load it starts reads these files.
                Ok(()) | Err(mpsc::error::TrySendError::Full(_)) => {}
                Err(mpsc::error::TrySendError::Closed(_)) => return,
            }
        }
    }
}

/// What to load: the directories and language of the configuration.
#[derive(Debug, Clone)]
pub(crate) struct Sources {
    pub flows: PathBuf,
    pub prompts: PathBuf,
    pub language: String,
    /// For the times in announcement switch files that name no offset.
    pub timezone: jiff::tz::TimeZone,
    /// Where each applied version is kept for `hotline rollback`.
    pub history: History,
}

/// Keeps the version a load produced in the history and logs it as applied (the loop applies
/// every load that succeeds). A history that cannot be written costs only the rollback to
/// this version, never the load.
pub(crate) fn keep_version(sources: &Sources, catalog: &Catalog) {
    let now_ms = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64);
    let kept = sources.history.store(
        &sources.flows,
        &sources.prompts,
        &catalog.files,
        "applied",
        now_ms,
    );
    match kept {
        Ok((m, _)) if m.id == catalog.version => {
            if let Err(e) = sources.history.record_applied(&m.id, now_ms) {
                tracing::warn!(error = %e, "could not log the applied flow-set version");
            }
        }
        // Edited between the load and now: the next reload (already on its way, the watch
        // saw the edit) keeps the newer files.
        Ok(_) => tracing::warn!(
            version = catalog.version,
            "flow files changed while loading; this version is not kept for rollback"
        ),
        Err(e) => tracing::warn!(
            error = %e,
            dir = %sources.history.dir().display(),
            "could not keep this flow-set version; `hotline rollback` will not offer it"
        ),
    }
}

/// A finished load, as it comes back to the signalling loop.
pub(crate) struct Loaded {
    pub trigger: Trigger,
    pub result: Result<Catalog, Vec<String>>,
    /// The announcement switches, read whatever became of the load.
    pub switches: Switches,
}

/// Load on a blocking thread; the outcome comes back over `done`, always, so the gate never
/// waits for ever, even if loading panics.
pub(crate) fn spawn_load(sources: &Sources, trigger: Trigger, done: mpsc::Sender<Loaded>) {
    let sources = sources.clone();
    tokio::task::spawn_blocking(move || {
        let loaded = std::panic::catch_unwind(|| {
            Catalog::load(&sources.flows, &sources.prompts, &sources.language)
        });
        let result = match loaded {
            Ok(Ok(catalog)) => {
                keep_version(&sources, &catalog);
                Ok(catalog)
            }
            Ok(Err(e)) => Err(e.to_string().lines().map(str::to_string).collect()),
            Err(panic) => Err(vec![format!(
                "loading panicked: {}",
                panic
                    .downcast_ref::<&str>()
                    .map(|s| s.to_string())
                    .or_else(|| panic.downcast_ref::<String>().cloned())
                    .unwrap_or_default()
            )]),
        };
        let (switches, problems) = Switches::read(&sources.flows, &sources.timezone);
        for problem in problems {
            tracing::warn!("announcement switch: {problem}");
        }
        // Closed only when the signalling loop has ended, and then nobody needs it.
        let _ = done.blocking_send(Loaded {
            trigger,
            result,
            switches,
        });
    });
}

/// Flows and prompts in a catalog, for the log.
pub(crate) fn counts(catalog: &Catalog) -> (usize, usize) {
    (catalog.flows.flows.len(), catalog.files.len())
}

/// Log a finished load and publish it; Some: the catalog to swap in.
pub(crate) fn settle(loaded: Loaded, status: &watch::Sender<ReloadStatus>) -> Option<Catalog> {
    let trigger = loaded.trigger.as_str();
    match loaded.result {
        Ok(catalog) => {
            let (flows, prompts) = counts(&catalog);
            status.send_modify(|s| s.version += 1);
            let version = status.borrow().version;
            tracing::info!(
                trigger,
                flows,
                prompts,
                version,
                flow_set = catalog.version,
                "flows and prompts reloaded; new calls use them"
            );
            Some(catalog)
        }
        Err(lines) => {
            let version = status.borrow().version;
            tracing::error!(
                trigger,
                version,
                "reload refused; the running flows and prompts stay live"
            );
            for line in &lines {
                tracing::error!(trigger, "reload refused: {line}");
            }
            status.send_modify(|s| {
                s.refused += 1;
                s.last_errors = lines;
            });
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stamp(path: &str, size: u64, secs: u64) -> FileStamp {
        FileStamp {
            root: 0,
            path: PathBuf::from(path),
            size,
            modified: Some(SystemTime::UNIX_EPOCH + Duration::from_secs(secs)),
            inode: 1,
        }
    }

    fn tree() -> Snapshot {
        vec![
            stamp("main.toml", 100, 10),
            stamp("en/welcome.wav", 8000, 10),
        ]
    }

    #[test]
    fn identical_snapshots_trigger_nothing() {
        let mut w = TreeWatch::new(tree());
        for _ in 0..5 {
            assert_eq!(w.observe(tree()), Verdict::Unchanged);
        }
    }

    #[test]
    fn a_change_settles_after_one_more_identical_poll_and_is_reported_once() {
        let mut w = TreeWatch::new(tree());
        let mut edited = tree();
        edited[0] = stamp("main.toml", 120, 11);
        assert_eq!(w.observe(edited.clone()), Verdict::Changing);
        assert_eq!(w.observe(edited.clone()), Verdict::Settled);
        assert_eq!(w.observe(edited.clone()), Verdict::Unchanged);
        assert_eq!(w.observe(edited), Verdict::Unchanged);
    }

    #[test]
    fn a_file_still_growing_is_not_reported_until_it_stops() {
        let mut w = TreeWatch::new(tree());
        for (i, size) in [200, 300, 400].into_iter().enumerate() {
            let mut t = tree();
            t[1] = stamp("en/welcome.wav", size, 20 + i as u64);
            assert_eq!(w.observe(t), Verdict::Changing, "size {size}");
        }
        let mut done = tree();
        done[1] = stamp("en/welcome.wav", 400, 22);
        assert_eq!(w.observe(done), Verdict::Settled);
    }

    #[test]
    fn deleting_or_adding_a_file_counts() {
        let mut w = TreeWatch::new(tree());
        let fewer = vec![tree()[0].clone()];
        assert_eq!(w.observe(fewer.clone()), Verdict::Changing);
        assert_eq!(w.observe(fewer.clone()), Verdict::Settled);
        let mut more = fewer;
        more.push(stamp("other.toml", 10, 30));
        more.sort();
        assert_eq!(w.observe(more.clone()), Verdict::Changing);
        assert_eq!(w.observe(more), Verdict::Settled);
    }

    #[test]
    fn a_change_undone_before_it_settles_triggers_nothing() {
        let mut w = TreeWatch::new(tree());
        let mut edited = tree();
        edited[0] = stamp("main.toml", 120, 11);
        assert_eq!(w.observe(edited), Verdict::Changing);
        assert_eq!(w.observe(tree()), Verdict::Unchanged);
        assert_eq!(w.observe(tree()), Verdict::Unchanged);
    }

    #[test]
    fn same_size_and_mtime_but_a_new_inode_counts() {
        let mut w = TreeWatch::new(tree());
        let mut replaced = tree();
        replaced[0].inode = 2;
        assert_eq!(w.observe(replaced.clone()), Verdict::Changing);
        assert_eq!(w.observe(replaced), Verdict::Settled);
    }

    #[test]
    fn gate_runs_one_load_and_coalesces_requests_into_one_more() {
        let mut g = ReloadGate::default();
        assert_eq!(g.request(Trigger::Signal), Some(Trigger::Signal));
        assert_eq!(g.request(Trigger::FileChange), None);
        assert_eq!(g.request(Trigger::Signal), None);
        assert_eq!(g.request(Trigger::FileChange), None);
        assert_eq!(
            g.finished(),
            Some(Trigger::FileChange),
            "one more, the latest"
        );
        assert_eq!(g.request(Trigger::Signal), None, "the follow-up is running");
        assert_eq!(g.finished(), Some(Trigger::Signal));
        assert_eq!(g.finished(), None);
        assert_eq!(
            g.request(Trigger::Signal),
            Some(Trigger::Signal),
            "idle again"
        );
    }

    #[test]
    fn scratch_names_are_ignored() {
        for n in [
            ".main.toml.swp",
            "main.toml~",
            "x.swp",
            "welcome.wav.tmp",
            ".hidden",
        ] {
            assert!(is_scratch_name(OsStr::new(n)), "{n}");
        }
        for n in ["main.toml", "welcome.wav", "README", "say"] {
            assert!(!is_scratch_name(OsStr::new(n)), "{n}");
        }
    }

    #[test]
    fn scan_sees_nested_prompt_files_and_skips_scratch_files() {
        let dir = std::env::temp_dir().join(format!("hotline-scan-{}", fastrand::u64(..)));
        let flows = dir.join("flows");
        let prompts = dir.join("prompts");
        std::fs::create_dir_all(&flows).unwrap();
        std::fs::create_dir_all(prompts.join("en/say")).unwrap();
        std::fs::write(flows.join("main.toml"), "x").unwrap();
        std::fs::write(flows.join(".main.toml.swp"), "x").unwrap();
        std::fs::write(prompts.join("en/welcome.wav"), "xx").unwrap();
        std::fs::write(prompts.join("en/say/1.wav"), "xxx").unwrap();
        std::fs::write(prompts.join("en/say/2.wav~"), "x").unwrap();
        let snap = scan(&[flows, prompts, dir.join("missing")]);
        std::fs::remove_dir_all(&dir).ok();
        let seen: Vec<(usize, &str, u64)> = snap
            .iter()
            .map(|f| (f.root, f.path.to_str().unwrap(), f.size))
            .collect();
        assert_eq!(
            seen,
            [
                (0, "main.toml", 1),
                (1, "en/say/1.wav", 3),
                (1, "en/welcome.wav", 2)
            ]
        );
    }
}
