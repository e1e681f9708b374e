//! Whole-tool tests on 127.0.0.1: the callers' RTP side against an in-process floor, and a
//! full run (SIP and RTP) against a small in-process server that answers and echoes media.

use std::net::{SocketAddr, UdpSocket};
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::*;
use crate::sip::endpoint::{Peer, TransportKind};
use crate::sip::transaction::TimerConfig;
use crate::sip::ua::{UaConfig, UaEvent, UserAgent};

fn loopback() -> IpAddr {
    IpAddr::V4(Ipv4Addr::LOCALHOST)
}

#[test]
fn floor_in_process_carries_every_packet() {
    let mut opts = LoadOptions::new(SocketAddr::new(loopback(), 0));
    opts.calls = 20;
    opts.hold = Duration::from_secs(2);
    opts.digits = "1#".into();
    opts.digit_interval = Duration::from_millis(500);
    let f = run_floor(&opts, floor::FloorHost::Thread).unwrap();
    let r = &f.rtp;
    assert_eq!(f.streams, 20);
    assert_eq!(r.streams, 20);
    // About 100 ticks in 2 s; counts, not times, are what is checked.
    assert!(r.packets_sent >= 20 * 50, "sent {}", r.packets_sent);
    assert!(
        r.packets_received >= 20 * 50,
        "received {}",
        r.packets_received
    );
    assert_eq!(r.packets_lost, 0, "{r:?}");
    assert_eq!(
        r.duplicates + r.late_packets + r.foreign_packets + r.send_errors,
        0,
        "{r:?}"
    );
    assert_eq!(
        r.audio_packets, r.packets_received,
        "the floor sends a voiced frame"
    );
    assert!(
        r.gap_samples >= r.packets_received - 2 * 20,
        "gaps between nearly all packets: {r:?}"
    );
    assert!(r.gap_dev_ms_p50.is_some() && r.gap_dev_ms_max >= r.gap_dev_ms_p99);
    // Two keys per press, a press every 25 ticks: at least two presses per stream.
    assert!(r.dtmf_digits_sent >= 20 * 2 * 2, "{r:?}");
    // Eight packets per key; each stream may stop in the middle of one.
    assert!(
        r.dtmf_packets_sent <= r.dtmf_digits_sent * 8
            && r.dtmf_packets_sent > (r.dtmf_digits_sent - 20) * 8,
        "{r:?}"
    );
    assert!(f.window_s > 1.0);
    assert!(
        f.cpu_s_per_call_min.is_some(),
        "the floor thread's CPU is read from /proc"
    );
}

#[test]
fn refuses_targets_off_loopback() {
    let opts = LoadOptions::new("10.1.2.3:5060".parse().unwrap());
    assert!(matches!(run(opts), Err(LoadError::NotLoopback(_))));
    let mut opts = LoadOptions::new("[::1]:5060".parse().unwrap());
    opts.local_ip = "192.168.1.1".parse().unwrap();
    assert!(matches!(run(opts), Err(LoadError::NotLoopback(_))));
    let mut opts = LoadOptions::new("127.0.0.1:5060".parse().unwrap());
    opts.digits = "1x".into();
    assert!(matches!(dtmf_plan(&opts), Err(LoadError::Invalid(_))));
    opts.digits = "1".into();
    opts.cps = 0.0;
    assert!(matches!(run(opts), Err(LoadError::Invalid(_))));
}

#[test]
fn floor_args_round_trip() {
    let a = FloorServerArgs {
        streams: 1000,
        local_ip: loopback(),
        max_duration: Duration::from_secs(90),
        payload_type: 8,
    };
    assert_eq!(FloorServerArgs::from_args(a.to_args()).unwrap(), a);
    assert!(
        FloorServerArgs::from_args([
            "--streams",
            "0",
            "--local-ip",
            "127.0.0.1",
            "--max-secs",
            "5"
        ])
        .is_err()
    );
    assert!(matches!(
        FloorServerArgs::from_args([
            "--streams",
            "1",
            "--local-ip",
            "10.0.0.1",
            "--max-secs",
            "5"
        ]),
        Err(LoadError::NotLoopback(_))
    ));
    assert!(FloorServerArgs::from_args(["--bogus", "1"]).is_err());
}

/// A server in a thread: answers INVITEs (rejecting number 486 with 486) with SDP that
/// points at one socket reflecting every RTP packet back to its sender.
struct EchoServer {
    sip: SocketAddr,
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<()>>,
}

impl EchoServer {
    fn start() -> EchoServer {
        EchoServer::start_with(None)
    }

    /// `hijack_after`: after that many packets from a caller, its echo stops (the media went
    /// elsewhere) and a stranger's socket sends the caller a packet now and then.
    fn start_with(hijack_after: Option<u32>) -> EchoServer {
        let stop = Arc::new(AtomicBool::new(false));
        let sip = UdpSocket::bind("127.0.0.1:0").unwrap();
        let media = UdpSocket::bind("127.0.0.1:0").unwrap();
        sip.set_read_timeout(Some(Duration::from_millis(5)))
            .unwrap();
        media
            .set_read_timeout(Some(Duration::from_millis(20)))
            .unwrap();
        let sip_addr = sip.local_addr().unwrap();
        let media_port = media.local_addr().unwrap().port();
        let mut threads = Vec::new();
        let s = stop.clone();
        threads.push(std::thread::spawn(move || {
            let mut buf = [0u8; 2048];
            let stranger = UdpSocket::bind("127.0.0.1:0").unwrap();
            let mut seen = std::collections::HashMap::<SocketAddr, u32>::new();
            while !s.load(Ordering::Relaxed) {
                if let Ok((n, from)) = media.recv_from(&mut buf) {
                    let count = seen.entry(from).or_default();
                    *count += 1;
                    match hijack_after {
                        Some(after) if *count > after => {
                            if count.is_multiple_of(10) {
                                let _ = stranger.send_to(&buf[..n], from);
                            }
                        }
                        _ => {
                            let _ = media.send_to(&buf[..n], from);
                        }
                    }
                }
            }
        }));
        let s = stop.clone();
        threads.push(std::thread::spawn(move || {
            let mut ua = UserAgent::new(UaConfig { timers: TimerConfig::default(), advertised: sip_addr.to_string(), advertise_request_host: false, user: "hotline".into(), seed: 1, nonce_secret: [1; 32], tls_port: None });
            let answer = format!(
                "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio {media_port} RTP/AVP 0 101\r\na=rtpmap:101 telephone-event/8000\r\n"
            );
            let mut buf = [0u8; 65536];
            while !s.load(Ordering::Relaxed) {
                let now = Instant::now();
                if let Ok((n, from)) = sip.recv_from(&mut buf) {
                    ua.handle_input(now, Peer { addr: from, transport: TransportKind::Udp }, &buf[..n]);
                }
                if ua.poll_timeout().is_some_and(|t| t <= now) {
                    ua.handle_timeout(now);
                }
                while let Some(ev) = ua.poll_event() {
                    if let UaEvent::Incoming { call, to_user, .. } = ev {
                        if to_user == "486" {
                            ua.reject(now, call, 486, &[]);
                        } else {
                            ua.answer(now, call, answer.clone().into_bytes());
                        }
                    }
                }
                while let Some(t) = ua.poll_transmit() {
                    let _ = sip.send_to(&t.data, t.to.addr);
                }
            }
        }));
        EchoServer {
            sip: sip_addr,
            stop,
            threads,
        }
    }
}

impl Drop for EchoServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

#[test]
fn full_run_against_an_echoing_server() {
    let server = EchoServer::start();
    let mut opts = LoadOptions::new(server.sip);
    opts.calls = 6;
    opts.cps = 20.0;
    opts.hold = Duration::from_millis(1500);
    opts.digit_interval = Duration::from_millis(400);
    opts.caller_audio = CallerAudio::Speech;
    opts.server_pid = Some(std::process::id());
    let r = run(opts).unwrap();
    let table = format_table(&r);
    assert_eq!(
        (
            r.calls_attempted,
            r.calls_answered,
            r.calls_completed,
            r.calls_failed
        ),
        (6, 6, 6, 0),
        "{table}"
    );
    assert_eq!(
        (r.server_hangups, r.bad_answers, r.calls_unfinished),
        (0, 0, 0),
        "{table}"
    );
    assert!(r.setup_ms_p50.is_some() && r.setup_ms_p99 <= r.setup_ms_max);
    assert_eq!(r.rtp.streams, 6);
    assert!(r.rtp.packets_received > 6 * 40, "{table}");
    assert_eq!(r.rtp.packets_lost, 0, "{table}");
    assert!(
        r.rtp.audio_packets > 0 && r.rtp.audio_packets < r.rtp.packets_received,
        "speech has pauses and DTMF is not audio: {table}"
    );
    assert!(r.rtp.dtmf_digits_sent >= 6 * 2, "{table}");
    assert!(r.steady_window_s.is_some_and(|w| w > 0.5), "{table}");
    // The callers' own send jitter: one sample per send but each stream's first (and the
    // first after a skipped tick).
    let sends_after_the_first = r.rtp.packets_sent - r.rtp.streams;
    assert!(
        r.rtp.tool_send_jitter_samples <= sends_after_the_first
            && r.rtp.tool_send_jitter_samples >= sends_after_the_first * 9 / 10,
        "{} samples: {table}",
        r.rtp.tool_send_jitter_samples
    );
    assert_eq!(r.steady_calls, Some(6));
    assert!(
        r.server_cpu_s_per_call_min.is_some() && r.tool_cpu_s_per_call_min.is_some(),
        "{table}"
    );
    assert!(r.server_peak_rss_mb.is_some());
    assert!(
        table.contains(&format!("{:<26} 6\n", "calls completed")),
        "{table}"
    );
    let json: serde_json::Value = serde_json::from_str(&format_json(&r)).unwrap();
    assert_eq!(json["calls_completed"], 6);
    assert_eq!(json["completion_pct"], 100.0);
    assert_eq!(json["rtp"]["packets_lost"], 0);
}

/// Issue 9: a server whose stream is taken over sends its media elsewhere; the callers keep
/// sending and hear nothing more (loss at the end of each call) and whatever a stranger
/// sends them is counted, not received.
#[test]
fn a_hijacked_stream_shows_as_loss_and_foreign_packets() {
    let server = EchoServer::start_with(Some(20));
    let mut opts = LoadOptions::new(server.sip);
    opts.calls = 3;
    opts.cps = 20.0;
    opts.hold = Duration::from_millis(1500);
    let r = run(opts).unwrap();
    let table = format_table(&r);
    assert_eq!(r.calls_completed, 3, "{table}");
    // 75 ticks a call, 20 echoed, 15 of grace: about 40 each at the end.
    assert!(r.rtp.tail_lost >= 3 * 25, "{table}");
    assert!(r.rtp.packets_lost >= r.rtp.tail_lost, "{table}");
    assert!(r.rtp.packets_received <= 3 * 21, "{table}");
    assert!(r.rtp.foreign_source_packets >= 3, "{table}");
    assert!(table.contains("from an unexpected source"), "{table}");
    let json: serde_json::Value = serde_json::from_str(&format_json(&r)).unwrap();
    assert_eq!(json["rtp"]["tail_lost"], r.rtp.tail_lost);
}

#[test]
fn completion_percentage_in_the_table_and_the_json() {
    let report = |attempted, completed| LoadReport {
        calls_attempted: attempted,
        calls_answered: attempted,
        calls_completed: completed,
        completion_pct: completion_pct(completed, attempted),
        ..LoadReport::default()
    };
    let r = report(7, 6);
    let table = format_table(&r);
    assert!(
        table.contains(&format!("{:<26} 85.7\n", "completed %")),
        "{table}"
    );
    assert!(
        table.contains(&format!("{:<26} 6\n", "calls completed")),
        "{table}"
    );
    let json: serde_json::Value = serde_json::from_str(&format_json(&r)).unwrap();
    assert_eq!(json["completion_pct"], 85.7);
    assert_eq!(
        (&json["calls_attempted"], &json["calls_completed"]),
        (&7.into(), &6.into()),
        "existing fields stay"
    );
    assert_eq!(completion_pct(2, 3), Some(66.7));
    assert_eq!(completion_pct(1, 3), Some(33.3));
    assert!(format_table(&report(3, 3)).contains(&format!("{:<26} 100.0\n", "completed %")));
    let none = report(0, 0);
    assert!(format_table(&none).contains(&format!("{:<26} -\n", "completed %")));
    let json: serde_json::Value = serde_json::from_str(&format_json(&none)).unwrap();
    assert!(json["completion_pct"].is_null(), "{json}");
}

#[test]
fn rejected_calls_are_counted_by_code() {
    let server = EchoServer::start();
    let mut opts = LoadOptions::new(server.sip);
    opts.calls = 3;
    opts.cps = 50.0;
    opts.hold = Duration::from_millis(200);
    opts.number = "486".into();
    let r = run(opts).unwrap();
    assert_eq!(
        (r.calls_attempted, r.calls_answered, r.calls_failed),
        (3, 0, 3)
    );
    assert_eq!(r.failure_codes.get(&486), Some(&3));
    assert_eq!(r.steady_window_s, None);
    assert!(format_table(&r).contains("486×3"));
}

/// Not a test on its own: the floor child when the test binary runs itself as the floor
/// (see `floor_child_process`).
#[test]
#[ignore]
fn floor_child_entry() {
    let Ok(args) = std::env::var("HOTLINE_LOAD_FLOOR_CHILD") else {
        return;
    };
    run_floor_server(FloorServerArgs::from_args(args.split_whitespace()).unwrap()).unwrap();
}

/// The floor as a child process: this test binary running only `floor_child_entry`.
fn child_host() -> Result<floor::FloorHost, LoadError> {
    let exe = std::env::current_exe().map_err(io_err("locating the test binary"))?;
    Ok(floor::FloorHost::Process(Box::new(move |args| {
        let mut c = Command::new(&exe);
        c.args([
            "--exact",
            "load::tests::floor_child_entry",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
            "-q",
        ])
        .env("HOTLINE_LOAD_FLOOR_CHILD", args.to_args().join(" "));
        c
    })))
}

fn env_or(key: &str, default: u64) -> u64 {
    std::env::var(key)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// The floor as a real child process, for figures:
/// `HOTLINE_FLOOR_STREAMS=1000 HOTLINE_FLOOR_SECS=20 cargo test --release --lib load::tests::floor_child_process -- --ignored --nocapture`
#[test]
#[ignore]
fn floor_child_process() {
    let mut opts = LoadOptions::new(SocketAddr::new(loopback(), 0));
    opts.calls = env_or("HOTLINE_FLOOR_STREAMS", 200) as u32;
    opts.hold = Duration::from_secs(env_or("HOTLINE_FLOOR_SECS", 10));
    net::raise_nofile_limit().unwrap();
    let f = run_floor(&opts, child_host().unwrap()).unwrap();
    println!("{}", serde_json::to_string_pretty(&f).unwrap());
    assert_eq!(f.rtp.packets_lost, 0);
    assert!(f.cpu_s_per_call_min.is_some());
}

/// A whole run against a server started by hand (`hotline serve --sip-bind 127.0.0.1:5080`):
/// `HOTLINE_LOAD_TARGET=127.0.0.1:5080 HOTLINE_LOAD_PID=$(pidof hotline) HOTLINE_LOAD_CALLS=100
/// HOTLINE_LOAD_CPS=20 HOTLINE_LOAD_HOLD=20 HOTLINE_LOAD_FLOOR=1 cargo test --release --lib
/// load::tests::against_a_running_server -- --ignored --nocapture`
#[test]
#[ignore]
fn against_a_running_server() {
    let Ok(target) = std::env::var("HOTLINE_LOAD_TARGET") else {
        return;
    };
    let mut opts = LoadOptions::new(target.parse().expect("HOTLINE_LOAD_TARGET is ip:port"));
    opts.server_pid = std::env::var("HOTLINE_LOAD_PID")
        .ok()
        .and_then(|p| p.trim().parse().ok());
    opts.calls = env_or("HOTLINE_LOAD_CALLS", 20) as u32;
    opts.cps = env_or("HOTLINE_LOAD_CPS", 10) as f64;
    opts.hold = Duration::from_secs(env_or("HOTLINE_LOAD_HOLD", 10));
    opts.floor = env_or("HOTLINE_LOAD_FLOOR", 0) == 1;
    if let Ok(n) = std::env::var("HOTLINE_LOAD_NUMBER") {
        opts.number = n;
    }
    let r = run_with(opts, child_host).unwrap();
    println!("{}", format_table(&r));
    println!("{}", format_json(&r));
}
