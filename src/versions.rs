//! Versions of the flow set: what a call was served by, and how an admin goes back.
//!
//! A version is named by a content hash over every file of the flows directory (flows,
//! calendars, agents and queues, tests; not the announcement switches, which are state
//! rather than content) and every prompt file the catalog loaded. The CDR names the version
//! that served each call.
//!
//! A running server keeps each version it applies in a history directory: file contents
//! stored once by their hash (`objects/`), one manifest per version (`versions/ID.json`),
//! and a log of what was applied when (`applied.log`). `hotline rollback` writes an earlier
//! version's files back into the flows and prompts directories, and the file watch does the
//! rest, so the files on disk stay the one truth about what runs.

use std::collections::BTreeSet;
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::flow::ANNOUNCEMENT_DIR;

/// Hex digits of the hash shown and stored as a version's name: enough to tell thousands of
/// versions apart, short enough to type.
const ID_LEN: usize = 12;
/// Manifests kept; older ones (and objects only they used) are removed.
const KEEP_VERSIONS: usize = 50;
/// A flows directory is text an admin writes: more files than this is a mistake, and hashing
/// it on every reload should not be what finds out. Past it, the rest are left out of the
/// version (with a warning), never the load refused.
const MAX_FLOW_FILES: usize = 10_000;
/// Larger files are left out of the version, with a warning: no flow or prompt is this big.
const MAX_FILE_BYTES: u64 = 64 << 20;
/// Symlinked directories could loop; real flow trees are a few levels deep. The same depth
/// as the reload watch's.
pub const MAX_DEPTH: usize = 8;
/// `applied.log` is trimmed to this many lines when it grows past twice as many.
const KEEP_LOG_LINES: usize = 1000;

#[derive(Debug, thiserror::Error)]
pub enum VersionError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{0}")]
    Invalid(String),
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> VersionError + '_ {
    move |source| VersionError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Which directory a file belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Root {
    Flows,
    Prompts,
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Entry {
    pub root: Root,
    /// Relative, `/`-separated.
    pub path: String,
    /// SHA-256 of the contents, hex.
    pub sha256: String,
}

/// The files of one version and its name.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    pub id: String,
    /// Unix epoch ms when this manifest was first stored.
    pub created_ms: i64,
    /// "applied" for versions a server ran; "replaced" for files a rollback overwrote
    /// without their ever being applied (an edit that did not load), kept so that a
    /// rollback can be undone.
    pub kind: String,
    pub entries: Vec<Entry>,
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn sha256(bytes: &[u8]) -> String {
    hex(&Sha256::digest(bytes))
}

/// The version's name: a hash over the sorted entries, so it depends on the contents and
/// where they are, not on the order files were read in.
fn version_id(entries: &[Entry]) -> String {
    let mut h = Sha256::new();
    for e in entries {
        let root = match e.root {
            Root::Flows => "flows",
            Root::Prompts => "prompts",
        };
        h.update(root.as_bytes());
        h.update([0]);
        h.update(e.path.as_bytes());
        h.update([0]);
        h.update(e.sha256.as_bytes());
        h.update(b"\n");
    }
    let mut id = hex(&h.finalize());
    id.truncate(ID_LEN);
    id
}

/// Editors and copy tools write beside the real file; those names never hold a flow.
pub fn is_scratch_name(name: &str) -> bool {
    name.starts_with('.')
        || name.ends_with('~')
        || name.ends_with(".swp")
        || name.ends_with(".swx")
        || name.ends_with(".tmp")
}

/// Every file of the flows directory that belongs to a version, relative and sorted, and what
/// had to be left out. Only the top directory must be readable.
fn flow_files(flows_dir: &Path) -> Result<(Vec<String>, Vec<String>), VersionError> {
    let mut out = Vec::new();
    let mut skipped = Vec::new();
    let mut stack = vec![(flows_dir.to_path_buf(), String::new(), 0usize)];
    while let Some((dir, prefix, depth)) = stack.pop() {
        let entries = match std::fs::read_dir(&dir) {
            Ok(e) => e,
            Err(e) if depth == 0 => return Err(io(&dir)(e)),
            Err(e) => {
                skipped.push(format!("{}: {e}", dir.display()));
                continue;
            }
        };
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().to_string();
            if is_scratch_name(&name) || (depth == 0 && name == ANNOUNCEMENT_DIR) {
                continue;
            }
            let rel = format!("{prefix}{name}");
            let path = entry.path();
            if path.is_dir() {
                if depth < MAX_DEPTH {
                    stack.push((path, format!("{rel}/"), depth + 1));
                }
            } else if path.is_file() {
                out.push(rel);
            }
        }
    }
    out.sort();
    if out.len() > MAX_FLOW_FILES {
        skipped.push(format!(
            "{}: more than {MAX_FLOW_FILES} files; the rest are not part of the version",
            flows_dir.display()
        ));
        out.truncate(MAX_FLOW_FILES);
    }
    Ok((out, skipped))
}

/// A path from a manifest: relative, `/`-separated, nothing that climbs out or hides.
fn safe_rel_path(path: &str) -> bool {
    !path.is_empty()
        && path.len() <= 1024
        && !path.contains(['\\', '\0'])
        && path
            .split('/')
            .all(|c| !c.is_empty() && c != "." && c != "..")
}

fn valid_sha(sha: &str) -> bool {
    sha.len() == 64
        && sha
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

fn rel_path(path: &Path, root: &Path) -> Option<String> {
    let rel = path.strip_prefix(root).ok()?;
    let parts: Vec<String> = rel
        .components()
        .map(|c| c.as_os_str().to_string_lossy().to_string())
        .collect();
    Some(parts.join("/"))
}

/// Reads every file of a version once, calling `keep` with each one's bytes and hash (the
/// history stores them there). Returns the entries, and the files left out (unreadable or
/// too large), for a warning: the version is best effort, a load never fails for it.
fn read_entries(
    flows_dir: &Path,
    prompts_dir: &Path,
    prompt_files: &[PathBuf],
    mut keep: impl FnMut(&str, &[u8]) -> Result<(), VersionError>,
) -> Result<(Vec<Entry>, Vec<String>), VersionError> {
    let mut entries = Vec::new();
    let (flows, mut skipped) = flow_files(flows_dir)?;
    let mut read = |root: Root, dir: &Path, rel: String| -> Result<(), VersionError> {
        let path = dir.join(&rel);
        let bytes = match std::fs::metadata(&path) {
            Ok(m) if m.len() > MAX_FILE_BYTES => Err(format!("larger than {MAX_FILE_BYTES} bytes")),
            Ok(_) => std::fs::read(&path).map_err(|e| e.to_string()),
            Err(e) => Err(e.to_string()),
        };
        let bytes = match bytes {
            Ok(b) => b,
            Err(e) => {
                skipped.push(format!("{}: {e}", path.display()));
                return Ok(());
            }
        };
        let sha256 = sha256(&bytes);
        keep(&sha256, &bytes)?;
        entries.push(Entry {
            root,
            path: rel,
            sha256,
        });
        Ok(())
    };
    for rel in flows {
        read(Root::Flows, flows_dir, rel)?;
    }
    let prompts: BTreeSet<String> = prompt_files
        .iter()
        .filter_map(|p| rel_path(p, prompts_dir))
        .collect();
    for rel in prompts {
        read(Root::Prompts, prompts_dir, rel)?;
    }
    entries.sort();
    Ok((entries, skipped))
}

/// The version of the files as they are now (`prompt_files` are the prompts a catalog
/// loaded), and the files left out of it.
pub fn current(
    flows_dir: &Path,
    prompts_dir: &Path,
    prompt_files: &[PathBuf],
) -> Result<(String, Vec<String>), VersionError> {
    let (entries, skipped) = read_entries(flows_dir, prompts_dir, prompt_files, |_, _| Ok(()))?;
    Ok((version_id(&entries), skipped))
}

/// One line of `applied.log`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Applied {
    pub at_ms: i64,
    pub id: String,
}

/// The history directory.
#[derive(Debug, Clone)]
pub struct History {
    dir: PathBuf,
}

impl History {
    pub fn new(dir: impl Into<PathBuf>) -> History {
        History { dir: dir.into() }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn object(&self, sha: &str) -> PathBuf {
        self.dir.join("objects").join(sha)
    }

    fn manifest_path(&self, id: &str) -> PathBuf {
        self.dir.join("versions").join(format!("{id}.json"))
    }

    /// The history's directories, private to the server's user: agents' credentials are
    /// among the files kept.
    fn create_dirs(&self) -> Result<(), VersionError> {
        use std::os::unix::fs::DirBuilderExt;
        for dir in [
            self.dir.clone(),
            self.dir.join("objects"),
            self.dir.join("versions"),
        ] {
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(&dir)
                .map_err(io(&dir))?;
        }
        Ok(())
    }

    /// Reads the files as they are now, stores any content not stored yet, and keeps the
    /// manifest; returns it and the files left out of it. Storing is idempotent: an
    /// unchanged set adds nothing.
    pub fn store(
        &self,
        flows_dir: &Path,
        prompts_dir: &Path,
        prompt_files: &[PathBuf],
        kind: &str,
        now_ms: i64,
    ) -> Result<(Manifest, Vec<String>), VersionError> {
        self.store_keeping(flows_dir, prompts_dir, prompt_files, kind, now_ms, &[])
    }

    /// As `store`, never pruning the versions in `keep`.
    fn store_keeping(
        &self,
        flows_dir: &Path,
        prompts_dir: &Path,
        prompt_files: &[PathBuf],
        kind: &str,
        now_ms: i64,
        keep: &[&str],
    ) -> Result<(Manifest, Vec<String>), VersionError> {
        self.create_dirs()?;
        let (entries, skipped) =
            read_entries(flows_dir, prompts_dir, prompt_files, |sha, bytes| {
                let path = self.object(sha);
                if !path.exists() {
                    write_atomic(&path, bytes, Some(0o600))?;
                }
                Ok(())
            })?;
        let manifest = Manifest {
            id: version_id(&entries),
            created_ms: now_ms,
            kind: kind.to_string(),
            entries,
        };
        if let Some(existing) = self.manifest(&manifest.id)? {
            return Ok((existing, skipped));
        }
        let text = serde_json::to_vec_pretty(&manifest)
            .map_err(|e| VersionError::Invalid(e.to_string()))?;
        write_atomic(&self.manifest_path(&manifest.id), &text, Some(0o600))?;
        let mut keep = keep.to_vec();
        keep.push(&manifest.id);
        self.prune(&keep)?;
        Ok((manifest, skipped))
    }

    /// A server started serving version `id` at `at_ms`. A reload that changed nothing
    /// (an announcement switch, a SIGHUP) adds no line.
    pub fn record_applied(&self, id: &str, at_ms: i64) -> Result<(), VersionError> {
        if self.applied()?.last().is_some_and(|a| a.id == id) {
            return Ok(());
        }
        self.create_dirs()?;
        let path = self.dir.join("applied.log");
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .map_err(io(&path))?;
        // One short write: lines of concurrent appenders do not interleave.
        file.write_all(format!("{at_ms} {id}\n").as_bytes())
            .map_err(io(&path))?;
        let applied = self.applied()?;
        if applied.len() > 2 * KEEP_LOG_LINES {
            let text: String = applied[applied.len() - KEEP_LOG_LINES..]
                .iter()
                .map(|a| format!("{} {}\n", a.at_ms, a.id))
                .collect();
            write_atomic(&path, text.as_bytes(), Some(0o600))?;
        }
        Ok(())
    }

    pub fn applied(&self) -> Result<Vec<Applied>, VersionError> {
        let path = self.dir.join("applied.log");
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(io(&path)(e)),
        };
        Ok(text
            .lines()
            .filter_map(|line| {
                let (at, id) = line.split_once(' ')?;
                Some(Applied {
                    at_ms: at.parse().ok()?,
                    id: id.trim().to_string(),
                })
            })
            .collect())
    }

    pub fn manifest(&self, id: &str) -> Result<Option<Manifest>, VersionError> {
        if !valid_id(id) {
            return Ok(None);
        }
        let path = self.manifest_path(id);
        let text = match std::fs::read(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(io(&path)(e)),
        };
        let manifest: Manifest = serde_json::from_slice(&text)
            .map_err(|e| VersionError::Invalid(format!("{}: {e}", path.display())))?;
        // A damaged or hand-edited manifest must not make a restore write, read or delete
        // outside the flows, prompts and history directories.
        let bad = manifest.id != id
            || manifest
                .entries
                .iter()
                .any(|e| !safe_rel_path(&e.path) || !valid_sha(&e.sha256));
        if bad {
            return Err(VersionError::Invalid(format!(
                "{}: not a version hotline wrote (an id or path that does not fit)",
                path.display()
            )));
        }
        Ok(Some(manifest))
    }

    /// Every stored manifest, oldest first.
    pub fn manifests(&self) -> Result<Vec<Manifest>, VersionError> {
        let dir = self.dir.join("versions");
        let entries = match std::fs::read_dir(&dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(io(&dir)(e)),
        };
        let mut out = Vec::new();
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().to_string();
            // A damaged manifest is left out of the list; naming it gives the reason.
            if let Some(id) = name.strip_suffix(".json")
                && let Ok(Some(m)) = self.manifest(id)
            {
                out.push(m);
            }
        }
        out.sort_by(|a, b| (a.created_ms, &a.id).cmp(&(b.created_ms, &b.id)));
        Ok(out)
    }

    /// A version id an admin typed: a whole id or an unambiguous start of one.
    pub fn resolve(&self, prefix: &str) -> Result<Manifest, VersionError> {
        let all = self.manifests()?;
        let found: Vec<&Manifest> = all.iter().filter(|m| m.id.starts_with(prefix)).collect();
        match found.as_slice() {
            [one] => Ok((*one).clone()),
            [] => Err(VersionError::Invalid(format!(
                "no stored version starts with {prefix:?} (`hotline versions` lists them)"
            ))),
            _ => Err(VersionError::Invalid(format!(
                "{prefix:?} is the start of {} versions; give more of it",
                found.len()
            ))),
        }
    }

    /// The version applied before the running one (the newest log entry): what
    /// `hotline rollback` goes back to.
    pub fn previous(&self) -> Result<Manifest, VersionError> {
        let applied = self.applied()?;
        let Some(current) = applied.last() else {
            return Err(VersionError::Invalid(
                "no version has been applied yet: start hotline once".into(),
            ));
        };
        let before = applied
            .iter()
            .rev()
            .find(|a| a.id != current.id)
            .ok_or_else(|| {
                VersionError::Invalid(format!(
                    "version {} is the only one applied so far: nothing to go back to",
                    current.id
                ))
            })?;
        self.manifest(&before.id)?.ok_or_else(|| {
            VersionError::Invalid(format!(
                "version {} is no longer stored (only the last {KEEP_VERSIONS} are kept)",
                before.id
            ))
        })
    }

    /// The version applied before the running one, if any, and the running one.
    fn running_and_previous(&self) -> Result<(Option<String>, Option<String>), VersionError> {
        let applied = self.applied()?;
        let running = applied.last().map(|a| a.id.clone());
        let previous = applied
            .iter()
            .rev()
            .find(|a| Some(&a.id) != running.as_ref())
            .map(|a| a.id.clone());
        Ok((running, previous))
    }

    /// Writes `manifest`'s files back: the flows directory becomes exactly that version
    /// (files it did not have are removed; announcement switches are left alone), and its
    /// prompt files get their contents back (other prompt files are left). What is
    /// overwritten is stored first, as a "replaced" version, so nothing is lost.
    /// Returns that saved version.
    pub fn restore(
        &self,
        manifest: &Manifest,
        flows_dir: &Path,
        prompts_dir: &Path,
        now_ms: i64,
    ) -> Result<Manifest, VersionError> {
        // Every object is there before anything is touched.
        for e in &manifest.entries {
            if !self.object(&e.sha256).is_file() {
                return Err(VersionError::Invalid(format!(
                    "version {} is incomplete: the contents of {} are missing from {}",
                    manifest.id,
                    e.path,
                    self.dir.display()
                )));
            }
        }
        // The files as they are: the flows, and the prompts of both the target and the
        // running version, so that the running version is recognised as itself and a
        // rollback of the rollback gets every prompt back.
        let (running, _) = self.running_and_previous()?;
        let mut prompt_entries: Vec<Entry> = manifest.entries.clone();
        if let Some(id) = &running
            && let Ok(Some(m)) = self.manifest(id)
        {
            prompt_entries.extend(m.entries);
        }
        let prompt_files: Vec<PathBuf> = prompt_entries
            .iter()
            .filter(|e| e.root == Root::Prompts)
            .map(|e| prompts_dir.join(&e.path))
            .filter(|p| p.is_file())
            .collect();
        let (saved, _) = self.store_keeping(
            flows_dir,
            prompts_dir,
            &prompt_files,
            "replaced",
            now_ms,
            &[&manifest.id],
        )?;
        // New contents first, removals last: a reload that looks in between sees the
        // target's files, at worst with an extra one.
        for e in &manifest.entries {
            let dir = match e.root {
                Root::Flows => flows_dir,
                Root::Prompts => prompts_dir,
            };
            let path = dir.join(&e.path);
            let same = std::fs::read(&path).is_ok_and(|b| sha256(&b) == e.sha256);
            if !same {
                let object = self.object(&e.sha256);
                let bytes = std::fs::read(&object).map_err(io(&object))?;
                write_atomic(&path, &bytes, None)?;
            }
        }
        let wanted: BTreeSet<&str> = manifest
            .entries
            .iter()
            .filter(|e| e.root == Root::Flows)
            .map(|e| e.path.as_str())
            .collect();
        for rel in flow_files(flows_dir)?.0 {
            let path = flows_dir.join(&rel);
            // Only what the saved version holds is removed: a file too large or unreadable
            // to keep stays where it is.
            let kept = std::fs::metadata(&path).is_ok_and(|m| m.len() <= MAX_FILE_BYTES)
                && std::fs::File::open(&path).is_ok();
            if !wanted.contains(rel.as_str()) && kept {
                std::fs::remove_file(&path).map_err(io(&path))?;
            }
        }
        Ok(saved)
    }

    /// Keeps the KEEP_VERSIONS most recently used manifests, the running and the previous
    /// version, and `keep`; then the objects they use.
    fn prune(&self, keep: &[&str]) -> Result<(), VersionError> {
        let mut all = self.manifests()?;
        if all.len() <= KEEP_VERSIONS {
            return Ok(());
        }
        let applied = self.applied()?;
        let last_use = |m: &Manifest| {
            applied
                .iter()
                .rev()
                .find(|a| a.id == m.id)
                .map_or(m.created_ms, |a| a.at_ms.max(m.created_ms))
        };
        all.sort_by_key(|m| std::cmp::Reverse(last_use(m)));
        let (running, previous) = self.running_and_previous()?;
        let protected = |id: &str| {
            keep.contains(&id) || running.as_deref() == Some(id) || previous.as_deref() == Some(id)
        };
        for m in &all[KEEP_VERSIONS..] {
            if !protected(&m.id) {
                let path = self.manifest_path(&m.id);
                std::fs::remove_file(&path).map_err(io(&path))?;
            }
        }
        let used: BTreeSet<String> = self
            .manifests()?
            .into_iter()
            .flat_map(|m| m.entries.into_iter().map(|e| e.sha256))
            .collect();
        let objects = self.dir.join("objects");
        for entry in std::fs::read_dir(&objects).map_err(io(&objects))?.flatten() {
            let name = entry.file_name().to_string_lossy().to_string();
            if !used.contains(&name) && !name.starts_with('.') {
                std::fs::remove_file(entry.path()).map_err(io(&entry.path()))?;
            }
        }
        Ok(())
    }
}

fn valid_id(id: &str) -> bool {
    !id.is_empty() && id.len() <= 64 && id.chars().all(|c| c.is_ascii_hexdigit())
}

/// Written aside, synced and renamed, so a reader (the file watch, a crash, a power cut)
/// never sees half a file. `mode`: the new file's permissions; None keeps those of the file
/// it replaces (a private agents file stays private).
fn write_atomic(path: &Path, bytes: &[u8], mode: Option<u32>) -> Result<(), VersionError> {
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(io(dir))?;
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().to_string())
        .unwrap_or_default();
    // A dot name: the reload watch ignores it while it is being written.
    let scratch = dir.join(format!(".{name}.{}.tmp", std::process::id()));
    let mode = mode.or_else(|| {
        std::fs::metadata(path)
            .ok()
            .map(|m| m.permissions().mode() & 0o7777)
    });
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    if let Some(mode) = mode {
        options.mode(mode);
    }
    let mut file = options.open(&scratch).map_err(io(&scratch))?;
    if let Some(mode) = mode {
        // The umask may have narrowed the mode at creation.
        file.set_permissions(std::fs::Permissions::from_mode(mode))
            .map_err(io(&scratch))?;
    }
    file.write_all(bytes)
        .and_then(|()| file.sync_all())
        .map_err(io(&scratch))?;
    std::fs::rename(&scratch, path).map_err(io(path))
}

#[cfg(test)]
#[path = "versions_tests.rs"]
mod tests;
