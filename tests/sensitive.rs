//! A card number typed into a sensitive `collect` never reaches the disk in clear: after a
//! real call the CDR shows only the last four digits, and no file the server wrote (database,
//! its journal and spool) contains the number.

mod common;

use std::path::Path;
use std::time::Duration;

use common::*;

const CARD_FLOW: &str = r##"
[flow]
name = "card"
numbers = ["100"]
start = "card"

[nodes.card]
type = "collect"
prompts = ["welcome"]
variable = "card"
min_digits = 16
max_digits = 16
terminator = "#"
sensitive = true
keep_last = 4
next = "bye"
on_failure = "bye"

[nodes.bye]
type = "play"
prompts = ["goodbye"]
next = "end"

[nodes.end]
type = "hangup"
"##;

fn files_under(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let path = entry.path();
        if path.is_dir() {
            files_under(&path, out);
        } else {
            out.push(path);
        }
    }
}

#[test]
fn a_sensitive_card_number_is_masked_in_the_cdr_and_nowhere_on_disk() {
    let site = site(CARD_FLOW);
    let mut server = start(site.config.clone());
    let mut phone = Phone::new(server.sip);
    phone.call("100");
    phone.talk(Duration::from_millis(300));
    phone.press("4111111111119876#", Duration::from_millis(1500));
    phone.wait_for(Duration::from_secs(5), |e| {
        matches!(e, hotline::sip::UaEvent::Ended { .. })
    });
    server.stop();
    let cdrs = read_cdrs(&site.config.database);
    assert_eq!(cdrs.len(), 1);
    assert_eq!(cdrs[0].digits, "xxxxxxxxxxxx9876#", "{:?}", cdrs[0]);
    assert_eq!(cdrs[0].ivr_path, ["card", "bye", "end"]);
    let mut files = Vec::new();
    files_under(site.dir.path(), &mut files);
    let written: Vec<_> = files
        .iter()
        .filter(|p| !p.extension().is_some_and(|e| e == "wav" || e == "toml"))
        .collect();
    assert!(
        written
            .iter()
            .any(|p| p.to_string_lossy().contains("cdr.db")),
        "{files:?}"
    );
    for path in written {
        // SQLite's -wal and -shm files come and go as the database is opened and closed.
        let Ok(bytes) = std::fs::read(path) else {
            continue;
        };
        let found = bytes.windows(12).any(|w| w == b"411111111111");
        assert!(!found, "{} holds the card number", path.display());
    }
}
