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

use std::collections::{BTreeMap, BTreeSet};
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
/// it on every reload should not be what finds out.
const MAX_FLOW_FILES: usize = 10_000;
/// Symlinked directories could loop; real flow trees are a few levels deep.
const MAX_DEPTH: usize = 8;

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

/// Every file of the flows directory that belongs to a version, relative and sorted.
fn flow_files(flows_dir: &Path) -> Result<Vec<String>, VersionError> {
    let mut out = Vec::new();
    let mut stack = vec![(flows_dir.to_path_buf(), String::new(), 0usize)];
    while let Some((dir, prefix, depth)) = stack.pop() {
        for entry in std::fs::read_dir(&dir).map_err(io(&dir))? {
            let entry = entry.map_err(io(&dir))?;
            let name = entry.file_name().to_string_lossy().to_string();
            if is_scratch_name(&name) || (depth == 0 && name == ANNOUNCEMENT_DIR) {
                continue;
            }
            let rel = format!("{prefix}{name}");
            let path = entry.path();
            if path.is_dir() {
                if depth + 1 < MAX_DEPTH {
                    stack.push((path, format!("{rel}/"), depth + 1));
                }
            } else if path.is_file() {
                out.push(rel);
                if out.len() > MAX_FLOW_FILES {
                    return Err(VersionError::Invalid(format!(
                        "{}: more than {MAX_FLOW_FILES} files",
                        flows_dir.display()
                    )));
                }
            }
        }
    }
    out.sort();
    Ok(out)
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
/// history stores them there), and returns the entries.
fn read_entries(
    flows_dir: &Path,
    prompts_dir: &Path,
    prompt_files: &[PathBuf],
    mut keep: impl FnMut(&str, &[u8]) -> Result<(), VersionError>,
) -> Result<Vec<Entry>, VersionError> {
    let mut entries = Vec::new();
    let mut read = |root: Root, dir: &Path, rel: String| -> Result<(), VersionError> {
        let path = dir.join(&rel);
        let bytes = std::fs::read(&path).map_err(io(&path))?;
        let sha256 = sha256(&bytes);
        keep(&sha256, &bytes)?;
        entries.push(Entry {
            root,
            path: rel,
            sha256,
        });
        Ok(())
    };
    for rel in flow_files(flows_dir)? {
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
    Ok(entries)
}

/// The version of the files as they are now: `prompt_files` are the prompts a catalog loaded.
pub fn current(
    flows_dir: &Path,
    prompts_dir: &Path,
    prompt_files: &[PathBuf],
) -> Result<String, VersionError> {
    let entries = read_entries(flows_dir, prompts_dir, prompt_files, |_, _| Ok(()))?;
    Ok(version_id(&entries))
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

    /// Reads the files as they are now, stores any content not stored yet, and keeps the
    /// manifest; returns the version's id. Storing is idempotent: an unchanged set adds
    /// nothing.
    pub fn store(
        &self,
        flows_dir: &Path,
        prompts_dir: &Path,
        prompt_files: &[PathBuf],
        kind: &str,
        now_ms: i64,
    ) -> Result<Manifest, VersionError> {
        let objects = self.dir.join("objects");
        std::fs::create_dir_all(&objects).map_err(io(&objects))?;
        let entries = read_entries(flows_dir, prompts_dir, prompt_files, |sha, bytes| {
            let path = self.object(sha);
            if !path.exists() {
                write_atomic(&path, bytes)?;
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
            return Ok(existing);
        }
        let text = serde_json::to_vec_pretty(&manifest)
            .map_err(|e| VersionError::Invalid(e.to_string()))?;
        let path = self.manifest_path(&manifest.id);
        std::fs::create_dir_all(self.dir.join("versions")).map_err(io(&self.dir))?;
        write_atomic(&path, &text)?;
        self.prune()?;
        Ok(manifest)
    }

    /// A server started serving version `id` at `at_ms`.
    pub fn record_applied(&self, id: &str, at_ms: i64) -> Result<(), VersionError> {
        let path = self.dir.join("applied.log");
        std::fs::create_dir_all(&self.dir).map_err(io(&self.dir))?;
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .map_err(io(&path))?;
        // One short write: lines of concurrent appenders do not interleave.
        file.write_all(format!("{at_ms} {id}\n").as_bytes())
            .map_err(io(&path))
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
        serde_json::from_slice(&text)
            .map(Some)
            .map_err(|e| VersionError::Invalid(format!("{}: {e}", path.display())))
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
            if let Some(id) = name.strip_suffix(".json")
                && let Some(m) = self.manifest(id)?
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
        let prompt_files: Vec<PathBuf> = manifest
            .entries
            .iter()
            .filter(|e| e.root == Root::Prompts && prompts_dir.join(&e.path).is_file())
            .map(|e| prompts_dir.join(&e.path))
            .collect();
        let saved = self.store(flows_dir, prompts_dir, &prompt_files, "replaced", now_ms)?;
        let wanted: BTreeMap<&str, &Entry> = manifest
            .entries
            .iter()
            .filter(|e| e.root == Root::Flows)
            .map(|e| (e.path.as_str(), e))
            .collect();
        for rel in flow_files(flows_dir)? {
            if !wanted.contains_key(rel.as_str()) {
                let path = flows_dir.join(&rel);
                std::fs::remove_file(&path).map_err(io(&path))?;
            }
        }
        for e in &manifest.entries {
            let dir = match e.root {
                Root::Flows => flows_dir,
                Root::Prompts => prompts_dir,
            };
            let path = dir.join(&e.path);
            let same = std::fs::read(&path).is_ok_and(|b| sha256(&b) == e.sha256);
            if !same {
                let bytes = std::fs::read(self.object(&e.sha256)).map_err(io(&path))?;
                write_atomic(&path, &bytes)?;
            }
        }
        Ok(saved)
    }

    /// Keeps the newest KEEP_VERSIONS manifests (and whatever the log names last), then the
    /// objects they use.
    fn prune(&self) -> Result<(), VersionError> {
        let all = self.manifests()?;
        if all.len() <= KEEP_VERSIONS {
            return Ok(());
        }
        let running = self.applied()?.last().map(|a| a.id.clone());
        let cut = all.len() - KEEP_VERSIONS;
        for m in &all[..cut] {
            if Some(&m.id) != running.as_ref() {
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

/// Written aside and renamed, so a reader (the file watch, a crash) never sees half a file.
fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), VersionError> {
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(io(dir))?;
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().to_string())
        .unwrap_or_default();
    // A dot name: the reload watch ignores it while it is being written.
    let scratch = dir.join(format!(".{name}.{}.tmp", std::process::id()));
    std::fs::write(&scratch, bytes).map_err(io(&scratch))?;
    std::fs::rename(&scratch, path).map_err(io(path))
}

#[cfg(test)]
#[path = "versions_tests.rs"]
mod tests;
