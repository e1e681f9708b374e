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
        Hotline::start_with(dir, flows, database, "")
    }

    /// With `config` as the TOML configuration file's text.
    fn start_with(dir: &Path, flows: &Path, database: Option<String>, config: &str) -> Hotline {
        let config_file = dir.join("hotline.toml");
        std::fs::write(&config_file, config).unwrap();
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
            .arg("--config")
            .arg(&config_file)
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

    /// SIGTERM, then wait for the clean exit that flushes every CDR. (A test that fails
    /// before this kills the server when its `Hotline` is dropped.)
    fn stop(mut self) -> Vec<CdrRecord> {
        // SAFETY: sending a signal to our own child process.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let status = self.child.wait().unwrap();
        assert!(status.success(), "hotline exits 0 after SIGTERM: {status}");
        common::read_cdrs(&self.database)
    }
}

impl Drop for Hotline {
    fn drop(&mut self) {
        // Already exited after `stop`; otherwise the test failed and the server must not
        // outlive it.
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Run one SIPp caller scenario from `tests/interop` against `hotline`, dialling `service`;
/// asserts that the scenario passed.
fn sipp_call(dir: &Path, hotline: &Hotline, scenario: &str, service: &str, timeout: &str) {
    let media_port = 46000 + 2 * fastrand::u16(..500);
    let status = Command::new(need("sipp"))
        .arg("-sf")
        .arg(repo().join("tests/interop").join(scenario))
        .args([
            "-s",
            service,
            &format!("127.0.0.1:{}", hotline.port),
            "-i",
            "127.0.0.1",
            "-mp",
            &media_port.to_string(),
            "-m",
            "1",
            "-timeout",
            timeout,
            "-timeout_error",
            "-nostdin",
            "-trace_err",
        ])
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .status()
        .expect("run sipp");
    assert!(
        status.success(),
        "the SIPp scenario passed (see *_errors.log in {})",
        dir.display()
    );
}

#[test]
#[ignore = "interop: needs sipp (Debian sip-tester)"]
fn sipp_caller_with_pcma_and_rfc2833_digits_walks_the_menu() {
    let pcap = Path::new("/usr/share/sip-tester/dtmf_2833_1.pcap");
    assert!(
        pcap.is_file(),
        "SIPp's RTP/DTMF pcaps are missing: install sip-tester"
    );
    let dir = TempDir::new("sipp");
    let hotline = Hotline::start(dir.path(), &repo().join("tests/interop"), None);
    sipp_call(dir.path(), &hotline, "sipp-dtmf.xml", "100", "60s");
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

/// The same key twice from one RFC 2833 capture: both presses carry the same RTP timestamp
/// (only their sequence numbers run on), and both count.
#[test]
#[ignore = "interop: needs sipp (Debian sip-tester)"]
fn sipp_pressing_the_same_key_twice_from_one_capture_counts_twice() {
    let dir = TempDir::new("sipp-repeat");
    let hotline = Hotline::start(dir.path(), &repo().join("tests/interop"), None);
    sipp_call(dir.path(), &hotline, "sipp-repeat.xml", "300", "60s");
    let cdrs = hotline.stop();
    assert_eq!(cdrs.len(), 1, "{cdrs:?}");
    assert_eq!(cdrs[0].digits, "11", "{:?}", cdrs[0]);
    assert_eq!(cdrs[0].ivr_path, ["code", "bye", "end"], "{:?}", cdrs[0]);
}

/// A 16-digit card number followed by `#`, as the prompt asks: the `#` belongs to the entry,
/// the read-back follows, and 1 confirms it (with one attempt, a `#` taken as a wrong key would
/// end the call at "sorry"). The number repeats digits, each from the same capture.
#[test]
#[ignore = "interop: needs sipp (Debian sip-tester)"]
fn sipp_card_number_then_the_terminator_is_confirmed_not_refused() {
    let dir = TempDir::new("sipp-card");
    let hotline = Hotline::start(dir.path(), &repo().join("tests/interop"), None);
    sipp_call(dir.path(), &hotline, "sipp-card.xml", "400", "90s");
    let cdrs = hotline.stop();
    assert_eq!(cdrs.len(), 1, "{cdrs:?}");
    assert_eq!(cdrs[0].digits, "4532015112830366#1", "{:?}", cdrs[0]);
    assert_eq!(cdrs[0].ivr_path, ["card", "ok", "end"], "{:?}", cdrs[0]);
}

/// baresip calls over SIP over TLS and will take only SRTP (`mediaenc=srtp-mand`, an
/// RTP/SAVP offer with SDES keys): the call is answered, baresip hears the prompts through
/// SRTP, and hotline ends it as the flow says.
#[test]
#[ignore = "interop: needs baresip"]
fn baresip_calls_over_tls_with_mandatory_srtp_and_hears_the_prompts() {
    let baresip = need("baresip");
    let dir = TempDir::new("baresip-tls");
    let flows = dir.path().join("flows");
    std::fs::create_dir_all(&flows).unwrap();
    std::fs::copy(
        repo().join("tests/interop/short-flow.toml"),
        flows.join("short.toml"),
    )
    .unwrap();
    let tls_port = free_port();
    let hotline = Hotline::start_with(
        dir.path(),
        &flows,
        None,
        &format!(
            "[sip]\ntls_port = {tls_port}\ntls_certificate = \"{0}/tests/tls/cert.pem\"\n\
             tls_key = \"{0}/tests/tls/key.pem\"\n[media]\nsrtp = \"required\"\n",
            repo().display()
        ),
    );
    let conf = dir.path().join("baresip");
    std::fs::create_dir_all(&conf).unwrap();
    common::write_tone(&conf.join("talk.wav"), 300.0, 15_000);
    let sip_port = free_port();
    std::fs::write(conf.join("config"), format!(
        "poll_method epoll\nsip_listen 127.0.0.1:{sip_port}\nsip_cafile {1}/tests/tls/ca.pem\nnet_interface 127.0.0.1\naudio_source aufile,{0}/talk.wav\naudio_alert aufile,/dev/null\nmodule_path /usr/lib/baresip/modules\nmodule g711.so\nmodule aufile.so\nmodule sndfile.so\nmodule srtp.so\nsnd_path {0}\nmodule_app account.so\nmodule_app menu.so\n",
        conf.display(),
        repo().display()
    )).unwrap();
    std::fs::write(
        conf.join("accounts"),
        "<sip:baresip@127.0.0.1;transport=tls>;regint=0;mediaenc=srtp-mand\n",
    )
    .unwrap();
    let out = Command::new(baresip)
        .arg("-f")
        .arg(&conf)
        .args([
            "-v",
            "-e",
            &format!("/dial sip:200@127.0.0.1:{tls_port};transport=tls"),
            "-t",
            "15",
        ])
        .stdin(Stdio::null())
        .output()
        .expect("run baresip");
    let text =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    let log = std::fs::read_to_string(dir.path().join("hotline.log")).unwrap_or_default();
    assert!(text.contains("Call established"), "{text}\n{log}");
    assert!(
        text.contains("terminated"),
        "hotline ended the call: {text}"
    );
    let cdrs = hotline.stop();
    assert_eq!(cdrs.len(), 1, "{cdrs:?}");
    assert_eq!(
        (cdrs[0].disposition, cdrs[0].hangup_by),
        (Disposition::Completed, HangupBy::Hotline),
        "{:?}",
        cdrs[0]
    );
    assert_eq!(cdrs[0].ivr_path, ["welcome", "end"]);
    let heard = std::fs::read_dir(&conf)
        .unwrap()
        .filter_map(|e| e.ok().map(|e| e.path()))
        .find(|p| p.to_string_lossy().ends_with("-dec.wav"))
        .unwrap_or_else(|| panic!("baresip wrote what it heard into {}", conf.display()));
    let mut wav = hound::WavReader::open(&heard).unwrap();
    let loud = wav
        .samples::<i16>()
        .filter(|s| s.as_ref().is_ok_and(|s| s.abs() > 2000))
        .count();
    assert!(
        loud > 8000,
        "baresip heard hotline's prompts through SRTP ({loud} loud samples)\n{text}"
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

/// Start SIPp as an agent phone at a fixed address, running one of the agent scenarios.
fn sipp_agent(dir: &Path, scenario: &str, port: u16) -> Child {
    Command::new(need("sipp"))
        .arg("-sf")
        .arg(repo().join("tests/interop/agents").join(scenario))
        .args(["-i", "127.0.0.1", "-p", &port.to_string(), "-m", "1"])
        .args([
            "-timeout",
            "40s",
            "-timeout_error",
            "-nostdin",
            "-trace_err",
        ])
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start sipp")
}

#[test]
#[ignore = "interop: needs baresip and sipp"]
fn baresip_agent_carries_a_bridged_call_from_a_sipp_caller_while_sipp_agents_refuse() {
    let baresip = need("baresip");
    let sipp = need("sipp");
    let dir = TempDir::new("agents");
    let flows = dir.path().join("flows");
    std::fs::create_dir_all(flows.join("acd")).unwrap();
    std::fs::write(
        flows.join("queue.toml"),
        r#"
[flow]
name = "queue"
numbers = ["400"]
start = "agent"

[nodes.agent]
type = "queue"
queue = "help"
timeout = "1m"
answered = "end"
no_agents = "end"
on_timeout = "end"
full = "end"

[nodes.end]
type = "hangup"
"#,
    )
    .unwrap();
    let (decline, redirect, silent) = (free_port(), free_port(), free_port());
    let ha1 = hotline::acd::load::ha1_md5("1001", "hotline", "pw1001");
    std::fs::write(
        flows.join("acd/agents.toml"),
        format!(
            r#"
[agents.1001]
name = "baresip"
ha1_md5 = "{ha1}"
skills = {{ help = 5 }}
auto_login = true

[agents.2001]
endpoint = "sip:2001@127.0.0.1:{decline}"
skills = {{ help = 9 }}
auto_login = true

[agents.2002]
endpoint = "sip:2002@127.0.0.1:{redirect}"
skills = {{ help = 8 }}
auto_login = true

[agents.2003]
endpoint = "sip:2003@127.0.0.1:{silent}"
skills = {{ help = 7 }}
auto_login = true
"#
        ),
    )
    .unwrap();
    std::fs::write(
        flows.join("acd/queues.toml"),
        // Best level first: the SIPp agents are offered the call one after the other before
        // baresip, so each refusal is seen on its own.
        "[queues.help]\nstrategy = \"skill-weighted\"\nskills = { help = 1 }\nring_timeout = \"3s\"\nwrap_up = \"1s\"\n",
    )
    .unwrap();
    let hotline = Hotline::start(dir.path(), &flows, None);
    let agents = [
        sipp_agent(dir.path(), "sipp-decline.xml", decline),
        sipp_agent(dir.path(), "sipp-redirect.xml", redirect),
        sipp_agent(dir.path(), "sipp-noanswer.xml", silent),
    ];
    // baresip registers as 1001 with its password and answers by itself; it says a 1500 Hz
    // tone and records what it hears.
    let conf = dir.path().join("baresip");
    std::fs::create_dir_all(&conf).unwrap();
    common::write_tone(&conf.join("talk.wav"), 1500.0, 30_000);
    let sip_port = free_port();
    std::fs::write(conf.join("config"), format!(
        "poll_method epoll\nsip_listen 127.0.0.1:{sip_port}\nnet_interface 127.0.0.1\naudio_source aufile,{0}/talk.wav\naudio_alert aufile,/dev/null\nmodule_path /usr/lib/baresip/modules\nmodule g711.so\nmodule aufile.so\nmodule sndfile.so\nsnd_path {0}\nmodule_app account.so\nmodule_app menu.so\n",
        conf.display()
    )).unwrap();
    std::fs::write(
        conf.join("accounts"),
        format!(
            "<sip:1001@127.0.0.1:{}>;auth_pass=pw1001;regint=120;answermode=auto\n",
            hotline.port
        ),
    )
    .unwrap();
    let agent = Command::new(baresip)
        .arg("-f")
        .arg(&conf)
        .args(["-t", "25"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run baresip");
    std::thread::sleep(Duration::from_secs(3)); // baresip registers
    // The caller: SIPp's built-in UAC, echoing back every RTP packet it receives. What the
    // agent hears is then its own voice after a trip through the bridge both ways.
    let media_port = 47000 + 2 * fastrand::u16(..500);
    let status = Command::new(sipp)
        .args([
            "-sn",
            "uac",
            "-s",
            "400",
            &format!("127.0.0.1:{}", hotline.port),
        ])
        .args([
            "-i",
            "127.0.0.1",
            "-mp",
            &media_port.to_string(),
            "-rtp_echo",
        ])
        .args(["-m", "1", "-d", "8000", "-timeout", "40s", "-timeout_error"])
        .args(["-nostdin", "-trace_err"])
        .current_dir(dir.path())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .status()
        .expect("run sipp");
    assert!(
        status.success(),
        "the SIPp caller's scenario passed (see *_errors.log in {})",
        dir.path().display()
    );
    let out = agent.wait_with_output().unwrap();
    let text =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    for mut a in agents {
        let status = a.wait().unwrap();
        assert!(
            status.success(),
            "each SIPp agent saw the INVITE it expected, and only one ({})",
            dir.path().display()
        );
    }
    let cdrs = hotline.stop();
    assert_eq!(
        cdrs.len(),
        1,
        "one CDR, no call followed a redirect: {cdrs:?}"
    );
    let c = &cdrs[0];
    assert_eq!(c.agent.as_deref(), Some("1001"), "{text}");
    let mut outcomes: Vec<(String, hotline::cdr::OfferOutcome)> = c
        .offers
        .iter()
        .map(|o| (o.agent.clone(), o.outcome))
        .collect();
    outcomes.sort_by(|a, b| a.0.cmp(&b.0));
    use hotline::cdr::OfferOutcome::*;
    assert_eq!(
        outcomes,
        [
            ("1001".to_string(), Answered),
            ("2001".to_string(), Declined),
            ("2002".to_string(), Redirected),
            ("2003".to_string(), NoAnswer),
        ]
    );
    let heard = std::fs::read_dir(&conf)
        .unwrap()
        .filter_map(|e| e.ok().map(|e| e.path()))
        .find(|p| p.to_string_lossy().ends_with("-dec.wav"))
        .unwrap_or_else(|| {
            panic!(
                "baresip wrote what it heard into {}: {text}",
                conf.display()
            )
        });
    let mut wav = hound::WavReader::open(&heard).unwrap();
    let samples: Vec<i16> = wav.samples::<i16>().map(|s| s.unwrap()).collect();
    let loud = samples.iter().filter(|s| s.unsigned_abs() > 1000).count();
    assert!(loud > 8000, "baresip heard the call: {loud} loud samples");
    // Half a second from the middle of what it heard.
    let first = samples
        .iter()
        .position(|s| s.unsigned_abs() > 1000)
        .unwrap();
    let last = samples
        .iter()
        .rposition(|s| s.unsigned_abs() > 1000)
        .unwrap();
    let mid = (first + last) / 2;
    let window = &samples[mid.saturating_sub(2000)..(mid + 2000).min(samples.len())];
    let crossings = window
        .windows(2)
        .filter(|w| (w[0] < 0) != (w[1] < 0))
        .count() as f64
        * 8000.0
        / window.len() as f64;
    assert!(
        (2700.0..3300.0).contains(&crossings),
        "baresip heard its own 1500 Hz back through caller and bridge: {crossings} crossings/s"
    );
}
