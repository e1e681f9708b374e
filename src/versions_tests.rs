use super::*;

struct Site {
    root: PathBuf,
    flows: PathBuf,
    prompts: PathBuf,
    history: History,
}

impl Site {
    fn new() -> Site {
        let root = std::env::temp_dir().join(format!("hotline-versions-{}", fastrand::u64(..)));
        let flows = root.join("flows");
        let prompts = root.join("prompts");
        std::fs::create_dir_all(&flows).unwrap();
        std::fs::create_dir_all(prompts.join("en")).unwrap();
        Site {
            history: History::new(root.join("history")),
            root,
            flows,
            prompts,
        }
    }

    fn write(&self, rel: &str, text: &str) {
        let path = self.root.join(rel);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }

    fn read(&self, rel: &str) -> Option<String> {
        std::fs::read_to_string(self.root.join(rel)).ok()
    }

    fn prompt_files(&self) -> Vec<PathBuf> {
        vec![self.prompts.join("en/welcome.wav")]
    }

    fn current(&self) -> String {
        current(&self.flows, &self.prompts, &self.prompt_files())
            .unwrap()
            .0
    }

    fn store(&self, at_ms: i64) -> Manifest {
        let (m, _) = self
            .history
            .store(
                &self.flows,
                &self.prompts,
                &self.prompt_files(),
                "applied",
                at_ms,
            )
            .unwrap();
        self.history.record_applied(&m.id, at_ms).unwrap();
        m
    }
}

impl Drop for Site {
    fn drop(&mut self) {
        std::fs::remove_dir_all(&self.root).ok();
    }
}

#[test]
fn the_version_follows_content_not_switches_or_scratch_files() {
    let site = Site::new();
    site.write("flows/a.toml", "[flow]\n");
    site.write("flows/calendars/cn.toml", "holidays = []\n");
    site.write("prompts/en/welcome.wav", "RIFF1");
    site.write("prompts/en/unused.wav", "RIFF2");
    let v1 = site.current();
    assert_eq!(v1.len(), 12);
    site.write("flows/announcements/outage.on", "");
    site.write("flows/.a.toml.swp", "x");
    site.write("flows/a.toml~", "x");
    site.write("prompts/en/unused.wav", "RIFF3");
    assert_eq!(
        site.current(),
        v1,
        "switches, scratch files, unused prompts"
    );
    site.write("flows/calendars/cn.toml", "holidays = [\"2026-10-01\"]\n");
    let v2 = site.current();
    assert_ne!(v2, v1, "a calendar is content");
    site.write("prompts/en/welcome.wav", "RIFF9");
    assert_ne!(site.current(), v2, "a prompt the flows use is content");
    // Moving a file is a change even with the same bytes.
    site.write("prompts/en/welcome.wav", "RIFF1");
    site.write("flows/calendars/cn.toml", "holidays = []\n");
    assert_eq!(site.current(), v1);
    std::fs::rename(site.flows.join("a.toml"), site.flows.join("b.toml")).unwrap();
    assert_ne!(site.current(), v1);
}

#[test]
fn rollback_restores_the_previous_version_and_keeps_what_it_replaced() {
    let site = Site::new();
    site.write("flows/a.toml", "one");
    site.write("flows/calendars/cn.toml", "cal one");
    site.write("prompts/en/welcome.wav", "hello one");
    let v1 = site.store(1_000);
    assert_eq!(v1.id, site.current());
    // Storing the same files again adds nothing.
    assert_eq!(site.store(1_500).id, v1.id);

    site.write("flows/a.toml", "two");
    site.write("flows/b.toml", "new flow");
    site.write("prompts/en/welcome.wav", "hello two");
    site.write("flows/announcements/outage.on", "");
    let v2 = site.store(2_000);
    assert_ne!(v2.id, v1.id);
    assert_eq!(site.history.previous().unwrap().id, v1.id);

    // An edit that never loaded is on disk when the admin rolls back.
    site.write("flows/a.toml", "broken [");
    let saved = site
        .history
        .restore(
            &site.history.previous().unwrap(),
            &site.flows,
            &site.prompts,
            3_000,
        )
        .unwrap();
    assert_eq!(saved.kind, "replaced");
    assert_eq!(site.read("flows/a.toml").as_deref(), Some("one"));
    assert_eq!(
        site.read("flows/b.toml"),
        None,
        "a file v1 did not have is gone"
    );
    assert_eq!(
        site.read("flows/calendars/cn.toml").as_deref(),
        Some("cal one")
    );
    assert_eq!(
        site.read("prompts/en/welcome.wav").as_deref(),
        Some("hello one")
    );
    assert!(
        site.flows.join("announcements/outage.on").is_file(),
        "switches are state, not content"
    );
    assert_eq!(site.current(), v1.id);

    // The broken edit can be had back.
    site.history
        .restore(
            &site.history.resolve(&saved.id[..6]).unwrap(),
            &site.flows,
            &site.prompts,
            4_000,
        )
        .unwrap();
    assert_eq!(site.read("flows/a.toml").as_deref(), Some("broken ["));
    assert_eq!(site.read("flows/b.toml").as_deref(), Some("new flow"));
}

#[test]
fn previous_needs_two_applied_versions() {
    let site = Site::new();
    site.write("flows/a.toml", "one");
    site.write("prompts/en/welcome.wav", "hello");
    let err = site.history.previous().unwrap_err().to_string();
    assert!(err.contains("no version has been applied"), "{err}");
    let v1 = site.store(1);
    let err = site.history.previous().unwrap_err().to_string();
    assert!(err.contains(&v1.id) && err.contains("only one"), "{err}");
    site.write("flows/a.toml", "two");
    site.store(2);
    site.write("flows/a.toml", "one");
    site.store(3);
    // Running v1 again: the one before it is the second version.
    assert_ne!(site.history.previous().unwrap().id, v1.id);
}

#[test]
fn old_versions_and_their_contents_are_pruned() {
    let site = Site::new();
    site.write("prompts/en/welcome.wav", "hello");
    let mut first = None;
    for n in 0..(KEEP_VERSIONS + 5) {
        site.write("flows/a.toml", &format!("version {n}"));
        let m = site.store(n as i64);
        first.get_or_insert(m);
    }
    let all = site.history.manifests().unwrap();
    assert_eq!(all.len(), KEEP_VERSIONS);
    let first = first.unwrap();
    assert!(site.history.manifest(&first.id).unwrap().is_none());
    let flow_object = first
        .entries
        .iter()
        .find(|e| e.path == "a.toml")
        .unwrap()
        .sha256
        .clone();
    assert!(!site.history.object(&flow_object).exists());
    let prompt_object = &first
        .entries
        .iter()
        .find(|e| e.path == "en/welcome.wav")
        .unwrap()
        .sha256;
    assert!(site.history.object(prompt_object).exists(), "still used");
    // Ambiguous and unknown prefixes are refused with the reason.
    assert!(
        site.history
            .resolve("")
            .unwrap_err()
            .to_string()
            .contains("versions")
    );
    assert!(
        site.history
            .resolve("zz")
            .unwrap_err()
            .to_string()
            .contains("no stored version")
    );
    assert!(site.history.manifest("../../etc/passwd").unwrap().is_none());
}

/// A rollback to the oldest kept version while a new edit is on disk: storing the edit must
/// not prune the very version being restored.
#[test]
fn restoring_the_oldest_version_does_not_prune_it_first() {
    let site = Site::new();
    site.write("prompts/en/welcome.wav", "hello");
    for n in 0..KEEP_VERSIONS {
        site.write("flows/a.toml", &format!("version {n}"));
        site.store(n as i64 * 10);
    }
    let all = site.history.manifests().unwrap();
    assert_eq!(all.len(), KEEP_VERSIONS);
    let oldest = all[0].clone();
    site.write("flows/a.toml", "an edit never applied");
    site.history
        .restore(&oldest, &site.flows, &site.prompts, 10_000)
        .unwrap();
    assert_eq!(site.read("flows/a.toml").as_deref(), Some("version 0"));
    assert!(site.history.manifest(&oldest.id).unwrap().is_some());
}

#[test]
fn a_tampered_manifest_is_refused() {
    let site = Site::new();
    site.write("flows/a.toml", "one");
    site.write("prompts/en/welcome.wav", "hello");
    let m = site.store(1);
    let path = site.history.manifest_path(&m.id);
    let text = std::fs::read_to_string(&path).unwrap();
    for (from, to) in [
        ("\"a.toml\"", "\"../../escape\""),
        ("\"a.toml\"", "\"/etc/x\""),
    ] {
        std::fs::write(&path, text.replace(from, to)).unwrap();
        let err = site.history.manifest(&m.id).unwrap_err().to_string();
        assert!(err.contains("not a version hotline wrote"), "{err}");
    }
    let mut bad_sha = m.clone();
    bad_sha.entries[0].sha256 = "../../../etc/passwd".into();
    std::fs::write(&path, serde_json::to_vec(&bad_sha).unwrap()).unwrap();
    assert!(site.history.manifest(&m.id).is_err());
    // Left out of the listing rather than breaking it.
    assert!(site.history.manifests().unwrap().is_empty());
}

#[test]
fn permissions_are_kept_and_the_history_is_private() {
    use std::os::unix::fs::PermissionsExt;
    let site = Site::new();
    site.write("flows/acd/agents.toml", "secret one");
    site.write("prompts/en/welcome.wav", "hello");
    let agents = site.flows.join("acd/agents.toml");
    std::fs::set_permissions(&agents, std::fs::Permissions::from_mode(0o600)).unwrap();
    let v1 = site.store(1);
    site.write("flows/acd/agents.toml", "secret two");
    site.store(2);
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(site.history.dir()), 0o700);
    let object = &v1
        .entries
        .iter()
        .find(|e| e.path == "acd/agents.toml")
        .unwrap()
        .sha256;
    assert_eq!(mode(&site.history.object(object)), 0o600);
    site.history
        .restore(&v1, &site.flows, &site.prompts, 3)
        .unwrap();
    assert_eq!(
        site.read("flows/acd/agents.toml").as_deref(),
        Some("secret one")
    );
    assert_eq!(mode(&agents), 0o600, "the restored file keeps its mode");
}

#[test]
fn an_unreadable_file_is_left_out_not_fatal() {
    let site = Site::new();
    site.write("flows/a.toml", "one");
    site.write("prompts/en/welcome.wav", "hello");
    // A dangling symlink cannot be read.
    std::os::unix::fs::symlink(site.root.join("nowhere"), site.flows.join("stray.bak")).unwrap();
    let (_, skipped) = current(&site.flows, &site.prompts, &site.prompt_files()).unwrap();
    assert!(
        skipped.is_empty(),
        "a dangling link is no file: {skipped:?}"
    );
    let big = site.flows.join("huge.bin");
    std::fs::File::create(&big)
        .unwrap()
        .set_len(MAX_FILE_BYTES + 1)
        .unwrap();
    let (id, skipped) = current(&site.flows, &site.prompts, &site.prompt_files()).unwrap();
    assert_eq!(id.len(), 12);
    assert!(
        skipped.iter().any(|s| s.contains("huge.bin")),
        "{skipped:?}"
    );
    // A restore does not delete what it could not keep.
    let m = site.store(1);
    site.history
        .restore(&m, &site.flows, &site.prompts, 2)
        .unwrap();
    assert!(big.exists());
}
