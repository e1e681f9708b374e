//! The CDR journal: the writer's backlog on disk. Every item the writer takes (a finished
//! call, an agent state, a call that has just started) is appended to one JSON-lines file by
//! a thread of its own, which fsyncs whatever arrived while the last fsync ran (group commit,
//! so the cost is a few fsyncs a second, never one per record). Once the database holds
//! everything, the writer has the file rewritten to the calls still in progress. So a kill at
//! any moment leaves in the file every record the database does not have yet and every call
//! that was up; the next start replays them (calls that were up get a record of their own).
//! At a clean shutdown the file keeps what the database did not take, or is removed.
//!
//! The file is also the spool of earlier versions (written only at shutdown): its lines are
//! the same, so either replays.

use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::thread::JoinHandle;

use super::CdrError;
use super::writer::CdrItem;

enum Op {
    Append(Vec<u8>),
    /// Replace the file with these lines (none: remove it).
    Rewrite(Vec<u8>),
}

/// The writer's handle on the journal thread. Appends never wait; `close` waits for the
/// thread to have written and synced everything.
pub struct Journal {
    path: PathBuf,
    tx: Option<mpsc::Sender<Op>>,
    thread: Option<JoinHandle<()>>,
}

impl Journal {
    /// Starts the thread. Nothing touches the disk until the first operation.
    pub fn start(path: PathBuf) -> Journal {
        let (tx, rx) = mpsc::channel();
        let thread_path = path.clone();
        let thread = std::thread::Builder::new()
            .name("cdr-journal".into())
            .spawn(move || run(&thread_path, rx))
            .map_err(|error| tracing::error!(%error, "cannot start the CDR journal thread"))
            .ok();
        Journal {
            path,
            tx: thread.is_some().then_some(tx),
            thread,
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Appends one item as a line.
    pub fn append(&self, item: &CdrItem) {
        match item.to_spool_line() {
            Ok(mut line) => {
                line.push('\n');
                self.send(Op::Append(line.into_bytes()));
            }
            Err(error) => tracing::error!(%error, "CDR not journaled: it does not serialise"),
        }
    }

    /// Replaces the file with exactly `items` (after every earlier append); removes it when
    /// there are none.
    pub fn rewrite<'a>(&self, items: impl IntoIterator<Item = &'a CdrItem>) {
        self.send(Op::Rewrite(lines(items)));
    }

    /// Waits until everything sent is on disk, and stops the thread.
    pub fn close(mut self) {
        self.tx = None;
        if let Some(thread) = self.thread.take()
            && thread.join().is_err()
        {
            tracing::error!("the CDR journal thread panicked");
        }
    }

    fn send(&self, op: Op) {
        let sent = self.tx.as_ref().is_some_and(|tx| tx.send(op).is_ok());
        if !sent {
            tracing::error!(path = %self.path.display(), "the CDR journal is not running; records are in memory only");
        }
    }
}

impl Drop for Journal {
    fn drop(&mut self) {
        self.tx = None;
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn lines<'a>(items: impl IntoIterator<Item = &'a CdrItem>) -> Vec<u8> {
    let mut out = Vec::new();
    for item in items {
        match item.to_spool_line() {
            Ok(line) => {
                out.extend_from_slice(line.as_bytes());
                out.push(b'\n');
            }
            Err(error) => tracing::error!(%error, "CDR not journaled: it does not serialise"),
        }
    }
    out
}

/// The thread: one owner of the file. Ops are taken in order; appends that queued up while
/// the disk was busy go out in one write and one fsync.
fn run(path: &Path, rx: mpsc::Receiver<Op>) {
    let mut file: Option<std::fs::File> = None;
    let mut failed = false;
    while let Ok(first) = rx.recv() {
        let mut next = Some(first);
        while let Some(op) = next.take() {
            match op {
                Op::Append(mut bytes) => {
                    // Gather every append already waiting behind this one.
                    loop {
                        match rx.try_recv() {
                            Ok(Op::Append(more)) => bytes.extend_from_slice(&more),
                            Ok(other) => {
                                next = Some(other);
                                break;
                            }
                            Err(_) => break,
                        }
                    }
                    let result = append(path, &mut file, &bytes);
                    report(&mut failed, path, result);
                }
                Op::Rewrite(bytes) => {
                    file = None;
                    let result = if bytes.is_empty() {
                        remove(path)
                    } else {
                        replace_synced(path, &bytes)
                    };
                    report(&mut failed, path, result);
                }
            }
        }
    }
}

/// Logs the first failure of a run of them and the recovery, not every write.
fn report(failed: &mut bool, path: &Path, result: Result<(), CdrError>) {
    match result {
        Ok(()) if *failed => {
            *failed = false;
            tracing::info!(path = %path.display(), "CDR journal writable again");
        }
        Ok(()) => {}
        Err(error) if !*failed => {
            *failed = true;
            tracing::error!(%error, "CDR journal write failed; records wait in memory only until it works again");
        }
        Err(_) => {}
    }
}

fn append(path: &Path, file: &mut Option<std::fs::File>, bytes: &[u8]) -> Result<(), CdrError> {
    let fail = |e| journal_error(path, e);
    if file.is_none() {
        *file = Some(open_for_append(path)?);
    }
    let Some(f) = file.as_mut() else {
        return Ok(());
    };
    let written = f.write_all(bytes).and_then(|()| f.sync_data());
    if let Err(error) = written {
        // Reopened next time: the handle may be on a file that is gone or broken.
        *file = None;
        return Err(fail(error));
    }
    Ok(())
}

/// Opens for appending. A file whose last line was torn by a crash gets a newline first, so
/// the torn line stays one rejected line instead of swallowing the first new record.
fn open_for_append(path: &Path) -> Result<std::fs::File, CdrError> {
    let fail = |e| journal_error(path, e);
    if let Some(dir) = parent_dir(path) {
        std::fs::create_dir_all(dir).map_err(fail)?;
    }
    let mut file = std::fs::OpenOptions::new()
        .read(true)
        .append(true)
        .create(true)
        .open(path)
        .map_err(fail)?;
    let len = file.metadata().map_err(fail)?.len();
    if len > 0 {
        let mut last = [0u8; 1];
        file.seek(SeekFrom::End(-1)).map_err(fail)?;
        file.read_exact(&mut last).map_err(fail)?;
        if last[0] != b'\n' {
            file.write_all(b"\n").map_err(fail)?;
        }
    } else {
        sync_dir(path);
    }
    Ok(file)
}

fn remove(path: &Path) -> Result<(), CdrError> {
    match std::fs::remove_file(path) {
        Ok(()) => {
            sync_dir(path);
            Ok(())
        }
        Err(error) if error.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(error) => Err(journal_error(path, error)),
    }
}

/// What a journal (or old spool) file holds.
pub struct JournalContents {
    pub records: Vec<CdrItem>,
    pub rejected: usize,
    /// When the file was last written: the latest moment the server is known to have run.
    pub modified_ms: Option<i64>,
}

pub fn rejected_path(journal: &Path) -> PathBuf {
    let mut name = journal.as_os_str().to_owned();
    name.push(".rejected");
    PathBuf::from(name)
}

pub fn journal_error(path: &Path, error: io::Error) -> CdrError {
    CdrError::Spool {
        path: path.to_owned(),
        error,
    }
}

/// None if there is no file. Lines that do not parse (a torn last line from a crash
/// mid-write, a hand edit) are copied to `<journal>.rejected` for the operator rather than
/// silently lost or allowed to block the rest; if they cannot be set aside, reading fails
/// and the file is left alone.
pub fn read(path: &Path) -> Result<Option<JournalContents>, CdrError> {
    let bytes = match std::fs::read(path) {
        Ok(bytes) => bytes,
        Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(error) => return Err(journal_error(path, error)),
    };
    let modified_ms = std::fs::metadata(path)
        .and_then(|m| m.modified())
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map(|d| d.as_millis() as i64);
    let mut records = Vec::new();
    let mut rejected: Vec<u8> = Vec::new();
    let mut rejected_count = 0;
    for (index, line) in bytes.split(|b| *b == b'\n').enumerate() {
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        match CdrItem::from_spool_line(line) {
            Ok(item) => records.push(item),
            Err(error) => {
                tracing::warn!(line = index + 1, %error, "unparseable CDR journal line");
                rejected.extend_from_slice(line);
                rejected.push(b'\n');
                rejected_count += 1;
            }
        }
    }
    if rejected_count > 0 {
        let target = rejected_path(path);
        let mut file = open_for_append(&target)?;
        file.write_all(&rejected)
            .and_then(|()| file.sync_all())
            .map_err(|e| journal_error(&target, e))?;
    }
    Ok(Some(JournalContents {
        records,
        rejected: rejected_count,
        modified_ms,
    }))
}

/// Replaces the file with `items` now (removes it when there are none), for the writer's
/// last word at shutdown, after its journal thread has finished.
pub fn replace_now(path: &Path, items: &[CdrItem]) -> Result<(), CdrError> {
    if items.is_empty() {
        return remove(path);
    }
    replace_synced(path, &lines(items))
}

/// Appends `items` to the file and syncs, for a writer that is gone (its journal with it).
pub fn append_now(path: &Path, items: &[CdrItem]) -> Result<(), CdrError> {
    let mut file = None;
    append(path, &mut file, &lines(items))
}

fn parent_dir(path: &Path) -> Option<&Path> {
    path.parent().filter(|p| !p.as_os_str().is_empty())
}

/// Write-then-rename, so a crash leaves either the old file or the new one, never half.
fn replace_synced(path: &Path, bytes: &[u8]) -> Result<(), CdrError> {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    let fail = |e| journal_error(path, e);
    if let Some(dir) = parent_dir(path) {
        std::fs::create_dir_all(dir).map_err(fail)?;
    }
    let mut file = std::fs::File::create(&tmp).map_err(fail)?;
    file.write_all(bytes).map_err(fail)?;
    file.sync_all().map_err(fail)?;
    std::fs::rename(&tmp, path).map_err(fail)?;
    sync_dir(path);
    Ok(())
}

/// Makes a new directory entry durable. Best effort: some filesystems refuse to fsync a
/// directory, and the file's own data is already synced.
fn sync_dir(path: &Path) {
    let dir = parent_dir(path).unwrap_or(Path::new("."));
    if let Err(error) = std::fs::File::open(dir).and_then(|d| d.sync_all()) {
        tracing::debug!(%error, dir = %dir.display(), "cannot fsync the journal directory");
    }
}

#[cfg(test)]
mod tests {
    use super::super::record::{AgentStateKind, AgentStateRecord, CdrRecord};
    use super::*;

    fn rec(n: u32) -> CdrItem {
        CdrItem::Call(CdrRecord {
            id: format!("{n:032x}"),
            sip_call_id: format!("call-{n}@test"),
            caller: "100".into(),
            start_ms: 1_700_000_000_000 + i64::from(n),
            end_ms: 1_700_000_001_000 + i64::from(n),
            ..Default::default()
        })
    }

    fn state(n: u32) -> CdrItem {
        CdrItem::AgentState(AgentStateRecord {
            id: format!("s{n}"),
            agent: "a1001".into(),
            state: AgentStateKind::NotReady,
            reason: Some("lunch".into()),
            start_ms: 1_700_000_000_000 + i64::from(n),
        })
    }

    fn temp_dir(tag: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!(
            "hotline-journal-{tag}-{}-{}",
            std::process::id(),
            fastrand::u64(..)
        ));
        std::fs::create_dir_all(&dir).expect("temp dir");
        dir
    }

    #[test]
    fn appends_rewrites_and_torn_lines() {
        let dir = temp_dir("ops");
        let path = dir.join("sub").join("cdr.journal");
        assert!(read(&path).expect("no file is fine").is_none());
        let journal = Journal::start(path.clone());
        for item in [rec(1), state(7), rec(2)] {
            journal.append(&item);
        }
        journal.close();
        // A crash mid-append leaves a torn line without its newline...
        let mut file = std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .expect("open");
        file.write_all(br#"{"id":"torn"#).expect("tear");
        drop(file);
        // ...and the next append must not glue its first record onto it.
        let journal = Journal::start(path.clone());
        journal.append(&rec(3));
        journal.close();
        let contents = read(&path).expect("read").expect("exists");
        assert_eq!(contents.records, vec![rec(1), state(7), rec(2), rec(3)]);
        assert_eq!(contents.rejected, 1);
        assert!(contents.modified_ms.is_some());
        let rejected = std::fs::read_to_string(rejected_path(&path)).expect("rejected file");
        assert_eq!(rejected, "{\"id\":\"torn\n");
        // A rewrite keeps exactly what it is given, appends after it add to it, and an
        // empty rewrite removes the file.
        let journal = Journal::start(path.clone());
        journal.rewrite(&[rec(9)]);
        journal.append(&rec(10));
        journal.close();
        let contents = read(&path).expect("read").expect("exists");
        assert_eq!(contents.records, vec![rec(9), rec(10)]);
        assert_eq!(contents.rejected, 0);
        let journal = Journal::start(path.clone());
        journal.rewrite(&[]);
        journal.close();
        assert!(!path.exists());
        append_now(&path, &[rec(4)]).expect("append");
        assert_eq!(read(&path).unwrap().unwrap().records, vec![rec(4)]);
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn many_appends_share_few_syncs_and_all_arrive_in_order() {
        let dir = temp_dir("many");
        let path = dir.join("cdr.journal");
        let journal = Journal::start(path.clone());
        for n in 0..2000 {
            journal.append(&rec(n));
        }
        journal.close();
        let contents = read(&path).expect("read").expect("exists");
        assert_eq!(contents.records, (0..2000).map(rec).collect::<Vec<_>>());
        let _ = std::fs::remove_dir_all(dir);
    }
}
