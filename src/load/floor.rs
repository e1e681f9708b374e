//! The floor: the least CPU plain UDP sockets need on this machine to carry the same RTP
//! streams as a test call, so the server's figure has something to be compared with.
//!
//! A separate process (this executable's hidden `floor-server` subcommand) opens one socket
//! per stream, connected to one of the load tool's caller sockets, and on one thread with
//! absolute 20 ms deadlines sends one 172-byte packet per socket, then drains each socket.
//! Nothing else: no parsing, no statistics, no allocation after start.
//!
//! Child protocol. argv: `floor-server --streams N --local-ip IP --max-secs S --pt PT`.
//! stdin: N lines, each the UDP port of one caller socket on IP; then it stays open, and the
//! child stops when it closes (or after S seconds, whichever comes first).
//! stdout: N lines `floor-port P` (the child's socket for the same stream, in order), then
//! `floor-ready`. Lines without the `floor-` prefix are ignored by the parent.

use std::io::{BufRead, Write};
use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::os::fd::AsRawFd;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::caller::{DtmfPlan, PACKET_LEN, PayloadBank};
use super::net::{self, BATCH, RecvBatch, TICK_NS};
use super::rtp_side::{self, RtpCommand, RtpConfig, RtpOutcome};
use super::{LoadError, io_err, procstat};
use crate::media::Codec;
use crate::media::rtp::{self, RtpHeader};

/// The hidden subcommand main.rs routes to `run_floor_server`.
pub const FLOOR_SUBCOMMAND: &str = "floor-server";

/// How long the parent waits for the child to report its ports.
const STARTUP_LIMIT: Duration = Duration::from_secs(20);
/// How long the child may outlive the measurement before it is killed.
const EXIT_LIMIT: Duration = Duration::from_secs(5);

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FloorServerArgs {
    pub streams: u32,
    pub local_ip: IpAddr,
    /// The child stops after this long even if its stdin never closes.
    pub max_duration: Duration,
    pub payload_type: u8,
}

impl FloorServerArgs {
    /// The arguments after the subcommand name.
    pub fn to_args(&self) -> Vec<String> {
        vec![
            "--streams".into(),
            self.streams.to_string(),
            "--local-ip".into(),
            self.local_ip.to_string(),
            "--max-secs".into(),
            self.max_duration.as_secs().max(1).to_string(),
            "--pt".into(),
            self.payload_type.to_string(),
        ]
    }

    /// Parse the arguments after the subcommand name (the inverse of `to_args`).
    pub fn from_args<I, S>(args: I) -> Result<Self, LoadError>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let bad = |m: String| LoadError::Invalid(format!("floor-server: {m}"));
        let mut streams = None;
        let mut local_ip = None;
        let mut max_secs = None;
        let mut pt = 0u8;
        let mut it = args.into_iter();
        while let Some(flag) = it.next() {
            let flag = flag.as_ref().to_string();
            let value = it
                .next()
                .ok_or_else(|| bad(format!("{flag} needs a value")))?;
            let value = value.as_ref();
            match flag.as_str() {
                "--streams" => {
                    streams = Some(
                        value
                            .parse::<u32>()
                            .map_err(|e| bad(format!("--streams {value}: {e}")))?,
                    )
                }
                "--local-ip" => {
                    local_ip = Some(
                        value
                            .parse::<IpAddr>()
                            .map_err(|e| bad(format!("--local-ip {value}: {e}")))?,
                    )
                }
                "--max-secs" => {
                    max_secs = Some(
                        value
                            .parse::<u64>()
                            .map_err(|e| bad(format!("--max-secs {value}: {e}")))?,
                    )
                }
                "--pt" => {
                    pt = value
                        .parse()
                        .map_err(|e| bad(format!("--pt {value}: {e}")))?
                }
                _ => return Err(bad(format!("unknown argument {flag}"))),
            }
        }
        let local_ip = local_ip.ok_or_else(|| bad("--local-ip is required".into()))?;
        if !local_ip.is_loopback() {
            return Err(LoadError::NotLoopback(local_ip));
        }
        Ok(FloorServerArgs {
            streams: streams
                .filter(|&n| n > 0)
                .ok_or_else(|| bad("--streams must be at least 1".into()))?,
            local_ip,
            max_duration: Duration::from_secs(
                max_secs.ok_or_else(|| bad("--max-secs is required".into()))?,
            ),
            payload_type: pt,
        })
    }
}

/// The child's whole life: read the caller ports, open and report its own, serve until
/// stdin closes or the time runs out.
pub fn run_floor_server(args: FloorServerArgs) -> Result<(), LoadError> {
    net::raise_nofile_limit().map_err(io_err("raising the open-file limit"))?;
    let stdin = std::io::stdin();
    let mut lines = stdin.lock().lines();
    let mut peers = Vec::with_capacity(args.streams as usize);
    while peers.len() < args.streams as usize {
        let line = lines
            .next()
            .ok_or_else(|| {
                LoadError::Floor(format!(
                    "stdin closed after {} of {} ports",
                    peers.len(),
                    args.streams
                ))
            })?
            .map_err(io_err("reading ports from stdin"))?;
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        let port: u16 = line
            .parse()
            .map_err(|_| LoadError::Floor(format!("not a port: {line:?}")))?;
        peers.push(SocketAddr::new(args.local_ip, port));
    }
    drop(lines);
    let sockets = open_connected(args.local_ip, &peers)?;
    {
        let mut out = std::io::stdout().lock();
        for s in &sockets {
            let port = s
                .local_addr()
                .map_err(io_err("floor socket address"))?
                .port();
            writeln!(out, "floor-port {port}").map_err(io_err("writing to stdout"))?;
        }
        writeln!(out, "floor-ready").map_err(io_err("writing to stdout"))?;
        out.flush().map_err(io_err("writing to stdout"))?;
    }
    let stop = Arc::new(AtomicBool::new(false));
    let watcher = {
        let stop = stop.clone();
        std::thread::Builder::new()
            .name("floor-stdin".into())
            .spawn(move || {
                let mut sink = String::new();
                let stdin = std::io::stdin();
                let mut lock = stdin.lock();
                while matches!(lock.read_line(&mut sink), Ok(n) if n > 0) {
                    sink.clear();
                }
                stop.store(true, Ordering::Relaxed);
            })
            .map_err(io_err("spawning the stdin watcher"))?
    };
    serve(&sockets, args.payload_type, &stop, args.max_duration);
    // The watcher is blocked in read() until the parent closes stdin; it is not joined so a
    // parent that keeps stdin open cannot keep the child alive past max_duration.
    drop(watcher);
    Ok(())
}

fn open_connected(ip: IpAddr, peers: &[SocketAddr]) -> Result<Vec<UdpSocket>, LoadError> {
    peers
        .iter()
        .map(|peer| {
            let s = net::bind_udp(ip).map_err(io_err("binding a floor socket"))?;
            s.connect(peer)
                .map_err(io_err("connecting a floor socket"))?;
            Ok(s)
        })
        .collect()
}

/// The floor loop. One payload is built once and only the 12-byte header changes per
/// packet: the least work that still gives the far side valid, countable RTP.
pub(crate) fn serve(sockets: &[UdpSocket], payload_type: u8, stop: &AtomicBool, max: Duration) {
    struct Out {
        seq: u16,
        ts_base: u32,
        ssrc: u32,
    }
    let mut outs: Vec<Out> = sockets
        .iter()
        .map(|_| Out {
            seq: fastrand::u16(..),
            ts_base: fastrand::u32(..),
            ssrc: fastrand::u32(..),
        })
        .collect();
    let mut pkt = [0u8; PACKET_LEN];
    let codec = Codec::from_payload_type(payload_type).unwrap_or(Codec::Pcmu);
    // A frame from the voiced part of the signal, so the load tool's meter counts it.
    pkt[rtp::HEADER_LEN..].copy_from_slice(PayloadBank::speech(codec).frame(10));
    let mut batch = RecvBatch::new(false);
    // Paced as hotline's media threads are, so the two are compared like for like.
    let _ = crate::runtime::realtime::raise_priority();
    let start = net::mono_ns();
    let end = start + max.as_nanos() as u64;
    let mut tick: u64 = 0;
    loop {
        let due = start + tick * TICK_NS;
        let mut now = net::mono_ns();
        if now < due {
            net::sleep_until_ns(due);
            now = net::mono_ns();
        }
        let late = now.saturating_sub(due);
        if late >= 2 * TICK_NS {
            tick += late / TICK_NS - 1;
        }
        if stop.load(Ordering::Relaxed) || now >= end {
            return;
        }
        let ts_offset = (tick as u32).wrapping_mul(160);
        for (s, o) in sockets.iter().zip(outs.iter_mut()) {
            let header = RtpHeader {
                marker: tick == 0,
                payload_type,
                sequence: o.seq,
                timestamp: o.ts_base.wrapping_add(ts_offset),
                ssrc: o.ssrc,
            };
            o.seq = o.seq.wrapping_add(1);
            rtp::write_header(
                &header,
                (&mut pkt[..rtp::HEADER_LEN])
                    .try_into()
                    .expect("header length"),
            );
            net::send(s.as_raw_fd(), &pkt);
        }
        // Sends first, as hotline's media threads do, so each stream leaves at the same
        // offset from the deadline whatever there is to read.
        for s in sockets {
            while batch.recv(s.as_raw_fd()) == BATCH {}
        }
        tick += 1;
    }
}

/// Where the floor runs.
pub(crate) enum FloorHost {
    /// A separate process, built by the closure from the floor's arguments; its CPU is
    /// read from /proc/PID/stat.
    Process(Box<dyn Fn(&FloorServerArgs) -> Command>),
    /// A thread of this process; its CPU from /proc/self/task/TID/stat. The tests use it,
    /// since the test binary has no floor-server subcommand to start.
    #[cfg_attr(not(test), allow(dead_code))]
    Thread,
}

impl FloorHost {
    /// This executable with the hidden subcommand.
    pub(crate) fn current_exe() -> Result<FloorHost, LoadError> {
        let exe = std::env::current_exe().map_err(io_err("locating this executable"))?;
        Ok(FloorHost::Process(Box::new(move |args| {
            let mut c = Command::new(&exe);
            c.arg(FLOOR_SUBCOMMAND).args(args.to_args());
            c
        })))
    }
}

enum Peer {
    Child {
        child: Child,
        stdin: Option<ChildStdin>,
    },
    Thread {
        handle: Option<JoinHandle<()>>,
        stop: Arc<AtomicBool>,
        tid: i64,
    },
}

impl Peer {
    fn cpu_seconds(&self) -> Option<f64> {
        match self {
            Peer::Child { child, .. } => procstat::pid_cpu_seconds(child.id()),
            Peer::Thread { tid, .. } => procstat::cpu_seconds(&format!("self/task/{tid}")),
        }
    }

    /// Ask the floor to stop and wait for it, bounded; a child that does not go is killed.
    fn finish(&mut self) {
        match self {
            Peer::Child { child, stdin } => {
                drop(stdin.take());
                let deadline = Instant::now() + EXIT_LIMIT;
                loop {
                    match child.try_wait() {
                        Ok(Some(_)) => return,
                        Ok(None) if Instant::now() < deadline => {
                            std::thread::sleep(Duration::from_millis(20))
                        }
                        _ => {
                            let _ = child.kill();
                            let _ = child.wait();
                            return;
                        }
                    }
                }
            }
            Peer::Thread { handle, stop, .. } => {
                stop.store(true, Ordering::Relaxed);
                if let Some(h) = handle.take() {
                    let _ = h.join();
                }
            }
        }
    }
}

impl Drop for Peer {
    fn drop(&mut self) {
        self.finish();
    }
}

pub(crate) struct FloorRun {
    pub streams: u32,
    pub window: Duration,
    pub cpu_seconds: Option<f64>,
    pub tool_cpu: Duration,
    pub rtp: RtpOutcome,
}

pub(crate) struct FloorPlan {
    pub streams: u32,
    pub local_ip: IpAddr,
    pub codec: Codec,
    pub hold: Duration,
    pub bank: PayloadBank,
    pub plan: DtmfPlan,
}

/// Run the callers' RTP side against the floor for `hold`, measuring the floor's CPU over
/// the steady part (after a short settling time, until the end of the hold).
pub(crate) fn run_floor_phase(p: FloorPlan, host: FloorHost) -> Result<FloorRun, LoadError> {
    let n = p.streams as usize;
    let mut callers = Vec::with_capacity(n);
    for _ in 0..n {
        let s = net::bind_udp(p.local_ip).map_err(io_err("binding a caller socket"))?;
        net::enable_rx_timestamps(&s).map_err(io_err("enabling receive timestamps"))?;
        callers.push(s);
    }
    let caller_addrs: Vec<SocketAddr> = callers
        .iter()
        .map(|s| s.local_addr())
        .collect::<Result<_, _>>()
        .map_err(io_err("caller socket address"))?;
    let args = FloorServerArgs {
        streams: p.streams,
        local_ip: p.local_ip,
        max_duration: p.hold + Duration::from_secs(30),
        payload_type: p.codec.payload_type(),
    };
    let (mut peer, floor_ports) = match host {
        FloorHost::Process(make) => spawn_child(make(&args), &caller_addrs, n)?,
        FloorHost::Thread => spawn_thread(&args, &caller_addrs)?,
    };
    let (tx, rx) = mpsc::sync_channel(n + 16);
    let rtp = rtp_side::spawn(
        RtpConfig {
            bank: p.bank,
            plan: p.plan,
            max_duration: p.hold + Duration::from_secs(10),
            ids: n,
            check_signature: false,
        },
        rx,
    )
    .map_err(io_err("spawning the RTP thread"))?;
    let audio_pt = p.codec.payload_type();
    for (id, (socket, port)) in callers.into_iter().zip(&floor_ports).enumerate() {
        // The channel holds every command, so this never waits on the RTP thread.
        let _ = tx.send(RtpCommand::Start {
            id: id as u32,
            socket,
            remote: SocketAddr::new(p.local_ip, *port),
            audio_pt,
            event_pt: Some(super::sdp::EVENT_PT),
            invite_ns: 0,
        });
    }
    let began = Instant::now();
    let settle = (p.hold / 4).min(Duration::from_secs(1));
    std::thread::sleep(settle);
    let (w0, cpu0, tool0) = (Instant::now(), peer.cpu_seconds(), procstat::self_cpu());
    std::thread::sleep((began + p.hold).saturating_duration_since(Instant::now()));
    let (w1, cpu1, tool1) = (Instant::now(), peer.cpu_seconds(), procstat::self_cpu());
    let _ = tx.send(RtpCommand::Shutdown);
    drop(tx);
    let rtp = rtp.join().map_err(|_| LoadError::Panicked("RTP"))?;
    peer.finish();
    Ok(FloorRun {
        streams: p.streams,
        window: w1 - w0,
        cpu_seconds: cpu0.zip(cpu1).map(|(a, b)| (b - a).max(0.0)),
        tool_cpu: tool1.saturating_sub(tool0),
        rtp,
    })
}

fn spawn_child(
    mut cmd: Command,
    callers: &[SocketAddr],
    n: usize,
) -> Result<(Peer, Vec<u16>), LoadError> {
    cmd.stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
    let mut child = cmd.spawn().map_err(io_err("starting the floor server"))?;
    let (Some(mut stdin), Some(stdout)) = (child.stdin.take(), child.stdout.take()) else {
        let _ = child.kill();
        let _ = child.wait();
        return Err(LoadError::Floor("stdin and stdout were not piped".into()));
    };
    let ports: String = callers.iter().map(|a| format!("{}\n", a.port())).collect();
    let written = stdin
        .write_all(ports.as_bytes())
        .and_then(|_| stdin.flush());
    // From here on the Peer owns the child, so every error path stops it.
    let peer = Peer::Child {
        child,
        stdin: Some(stdin),
    };
    written.map_err(io_err("writing ports to the floor server"))?;
    let (line_tx, line_rx) = mpsc::channel::<String>();
    // Reads to EOF so the child never blocks on a full pipe, whatever it prints later.
    std::thread::Builder::new()
        .name("floor-stdout".into())
        .spawn(move || {
            for line in std::io::BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                let _ = line_tx.send(line);
            }
        })
        .map_err(io_err("spawning the floor reader"))?;
    let deadline = Instant::now() + STARTUP_LIMIT;
    let mut ports = Vec::with_capacity(n);
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let line = line_rx.recv_timeout(left).map_err(|_| {
            LoadError::Floor(format!(
                "no floor-ready within {STARTUP_LIMIT:?} ({} of {n} ports)",
                ports.len()
            ))
        })?;
        if let Some(port) = line.strip_prefix("floor-port ") {
            ports.push(
                port.trim()
                    .parse()
                    .map_err(|_| LoadError::Floor(format!("bad line {line:?}")))?,
            );
        } else if line.trim() == "floor-ready" {
            break;
        }
    }
    if ports.len() != n {
        return Err(LoadError::Floor(format!(
            "{} ports for {n} streams",
            ports.len()
        )));
    }
    Ok((peer, ports))
}

fn spawn_thread(
    args: &FloorServerArgs,
    callers: &[SocketAddr],
) -> Result<(Peer, Vec<u16>), LoadError> {
    let sockets = open_connected(args.local_ip, callers)?;
    let ports = sockets
        .iter()
        .map(|s| s.local_addr().map(|a| a.port()))
        .collect::<Result<Vec<_>, _>>()
        .map_err(io_err("floor socket address"))?;
    let stop = Arc::new(AtomicBool::new(false));
    let (tid_tx, tid_rx) = mpsc::channel();
    let (pt, max) = (args.payload_type, args.max_duration);
    let handle = {
        let stop = stop.clone();
        std::thread::Builder::new()
            .name("floor".into())
            .spawn(move || {
                let _ = tid_tx.send(procstat::thread_id());
                serve(&sockets, pt, &stop, max);
            })
            .map_err(io_err("spawning the floor thread"))?
    };
    let tid = tid_rx.recv().map_err(|_| LoadError::Panicked("floor"))?;
    Ok((
        Peer::Thread {
            handle: Some(handle),
            stop,
            tid,
        },
        ports,
    ))
}
