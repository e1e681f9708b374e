//! The interop suite: hotline's release binary against real peers from Debian (SIPp, baresip)
//! and a real PostgreSQL server. `.ci/run` installs them and runs these with `--ignored`; a
//! missing tool fails the test, never skips it.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::TempDir;
use hotline::cdr::{CdrRecord, Disposition, HangupBy};

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn need(tool: &str) -> PathBuf {
    let found = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|p| p.join(tool))
            .find(|p| p.is_file())
    });
    found.unwrap_or_else(|| panic!("interop test needs `{tool}` on PATH (Debian: see .ci/run)"))
}

fn free_port() -> u16 {
    let s = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let port = s.local_addr().unwrap().port();
    // Make sure the TCP side is free too.
    if std::net::TcpListener::bind(("127.0.0.1", port)).is_err() {
        return free_port();
    }
    port
}

struct Hotline {
    child: Child,
    port: u16,
    database: String,
}

impl Hotline {
    fn start(dir: &Path, flows: &Path, database: Option<String>) -> Hotline {
        let port = free_port();
        let rtp = 44000 + 2 * (fastrand::u16(..2000));
        let database =
            database.unwrap_or_else(|| format!("sqlite://{}", dir.join("cdr.db").display()));
        let child = Command::new(env!("CARGO_BIN_EXE_hotline"))
            .args([
                "serve",
                "--sip-bind",
                &format!("127.0.0.1:{port}"),
                "--rtp-ports",
                &format!("{rtp}-{}", rtp + 200),
            ])
            .args(["--database", &database, "--flows"])
            .arg(flows)
            .arg("--prompts")
            .arg(repo().join("prompts"))
            .current_dir(dir)
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.join("hotline.log")).unwrap())
            .spawn()
            .expect("start hotline");
        let h = Hotline {
            child,
            port,
            database,
        };
        h.wait_ready(dir);
        h
    }

    fn wait_ready(&self, dir: &Path) {
        let end = Instant::now() + Duration::from_secs(10);
        while Instant::now() < end {
            if std::fs::read_to_string(dir.join("hotline.log"))
                .unwrap_or_default()
                .contains("taking calls")
            {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!(
            "hotline did not start: {}",
            std::fs::read_to_string(dir.join("hotline.log")).unwrap_or_default()
        );
    }

    /// SIGTERM, then wait for the clean exit that flushes every CDR.
    fn stop(mut self) -> Vec<CdrRecord> {
        // SAFETY: sending a signal to our own child process.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let status = self.child.wait().unwrap();
        assert!(status.success(), "hotline exits 0 after SIGTERM: {status}");
        common::read_cdrs(&self.database)
    }
}

#[test]
#[ignore = "interop: needs sipp (Debian sip-tester)"]
fn sipp_caller_with_pcma_and_rfc2833_digits_walks_the_menu() {
    let sipp = need("sipp");
    let pcap = Path::new("/usr/share/sip-tester/dtmf_2833_1.pcap");
    assert!(
        pcap.is_file(),
        "SIPp's RTP/DTMF pcaps are missing: install sip-tester"
    );
    let dir = TempDir::new("sipp");
    let hotline = Hotline::start(dir.path(), &repo().join("tests/interop"), None);
    let media_port = 46000 + 2 * fastrand::u16(..500);
    let status = Command::new(sipp)
        .arg("-sf")
        .arg(repo().join("tests/interop/sipp-dtmf.xml"))
        .args([
            "-s",
            "100",
            &format!("127.0.0.1:{}", hotline.port),
            "-i",
            "127.0.0.1",
        ])
        .args([
            "-mp",
            &media_port.to_string(),
            "-m",
            "1",
            "-timeout",
            "60s",
            "-timeout_error",
            "-nostdin",
            "-trace_err",
        ])
        .current_dir(dir.path())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .status()
        .expect("run sipp");
    assert!(
        status.success(),
        "the SIPp scenario passed (see *_errors.log in {})",
        dir.path().display()
    );
    let cdrs = hotline.stop();
    assert_eq!(cdrs.len(), 1, "{cdrs:?}");
    let c = &cdrs[0];
    assert_eq!(c.caller, "sipp");
    assert_eq!(c.digits, "13", "the RFC 2833 pcaps pressed 1 then 3");
    assert_eq!(
        c.ivr_path,
        [
            "welcome",
            "main_menu",
            "opening_hours",
            "main_menu",
            "report_problem",
            "goodbye",
            "hang_up"
        ]
    );
    assert_eq!(
        (c.disposition, c.hangup_by),
        (Disposition::Completed, HangupBy::Hotline)
    );
}

#[test]
#[ignore = "interop: needs baresip"]
fn baresip_places_a_call_that_completes() {
    let baresip = need("baresip");
    let dir = TempDir::new("baresip");
    let flows = dir.path().join("flows");
    std::fs::create_dir_all(&flows).unwrap();
    std::fs::copy(
        repo().join("tests/interop/short-flow.toml"),
        flows.join("short.toml"),
    )
    .unwrap();
    let hotline = Hotline::start(dir.path(), &flows, None);
    let conf = dir.path().join("baresip");
    std::fs::create_dir_all(&conf).unwrap();
    common::write_tone(&conf.join("talk.wav"), 300.0, 15_000);
    let sip_port = free_port();
    std::fs::write(conf.join("config"), format!(
        "poll_method epoll\nsip_listen 127.0.0.1:{sip_port}\nnet_interface 127.0.0.1\naudio_source aufile,{0}/talk.wav\naudio_alert aufile,/dev/null\nmodule_path /usr/lib/baresip/modules\nmodule g711.so\nmodule aufile.so\nmodule sndfile.so\nsnd_path {0}\nmodule_app account.so\nmodule_app menu.so\n",
        conf.display()
    )).unwrap();
    std::fs::write(conf.join("accounts"), "<sip:baresip@127.0.0.1>;regint=0\n").unwrap();
    let out = Command::new(baresip)
        .arg("-f")
        .arg(&conf)
        .args([
            "-e",
            &format!("/dial sip:200@127.0.0.1:{}", hotline.port),
            "-t",
            "15",
        ])
        .stdin(Stdio::null())
        .output()
        .expect("run baresip");
    let text =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    assert!(text.contains("Call established"), "{text}");
    assert!(
        text.contains("terminated"),
        "hotline ended the call: {text}"
    );
    let cdrs = hotline.stop();
    assert_eq!(cdrs.len(), 1, "{cdrs:?}");
    assert_eq!(
        (
            cdrs[0].caller.as_str(),
            cdrs[0].disposition,
            cdrs[0].hangup_by
        ),
        ("baresip", Disposition::Completed, HangupBy::Hotline)
    );
    assert_eq!(cdrs[0].ivr_path, ["welcome", "end"]);
    // What baresip heard (its sndfile module writes the decoded audio): the prompts, not
    // silence.
    let heard = std::fs::read_dir(&conf)
        .unwrap()
        .filter_map(|e| e.ok().map(|e| e.path()))
        .find(|p| p.to_string_lossy().ends_with("-dec.wav"))
        .unwrap_or_else(|| panic!("baresip wrote what it heard into {}", conf.display()));
    let mut wav = hound::WavReader::open(&heard).unwrap();
    let samples: Vec<i32> = wav
        .samples::<i16>()
        .map(|s| i32::from(s.unwrap()))
        .collect();
    let loud = samples.iter().filter(|s| s.abs() > 2000).count();
    assert!(
        loud > 8000,
        "baresip heard hotline's prompts ({loud} loud samples of {})",
        samples.len()
    );
}

#[test]
#[ignore = "interop: needs PostgreSQL (HOTLINE_TEST_POSTGRES_URL)"]
fn cdrs_reach_postgresql() {
    let url = std::env::var("HOTLINE_TEST_POSTGRES_URL")
        .expect("HOTLINE_TEST_POSTGRES_URL must name a PostgreSQL database for the interop suite");
    let dir = TempDir::new("pg");
    let hotline = Hotline::start(dir.path(), &repo().join("tests/interop"), Some(url));
    let sip = std::net::SocketAddr::from(([127, 0, 0, 1], hotline.port));
    let mut phone = common::Phone::new(sip);
    phone.call("100");
    phone.talk(Duration::from_millis(300));
    let call_id = phone.ua.call_id(phone.call.unwrap()).unwrap().to_string();
    phone.hangup();
    phone.pump(Duration::from_millis(300));
    let cdrs = hotline.stop();
    let mine: Vec<&CdrRecord> = cdrs.iter().filter(|c| c.sip_call_id == call_id).collect();
    assert_eq!(mine.len(), 1);
    assert_eq!(mine[0].disposition, Disposition::CallerHangup);
}
