//! The test harness: hotline started in-process on loopback ephemeral ports, and a phone
//! built from hotline's own SIP user agent with real UDP sockets for SIP and RTP.

#![allow(dead_code)]

pub mod agent_phone;
pub mod browser;

use std::collections::VecDeque;
use std::net::{SocketAddr, UdpSocket};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use hotline::config::Config;
use hotline::media::{Codec, rfc4733, rtp};
use hotline::sip::{CallRef, Peer, TransportKind, UaConfig, UaEvent, UserAgent};

/// A scratch directory removed when dropped.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> TempDir {
        let p = std::env::temp_dir().join(format!(
            "hotline-{tag}-{}-{}",
            std::process::id(),
            fastrand::u64(..)
        ));
        std::fs::create_dir_all(&p).unwrap();
        TempDir(p)
    }
    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Write a 16-bit 8 kHz mono WAV: a tone whose frequency tells the prompts apart.
pub fn write_tone(path: &Path, freq: f32, millis: u32) {
    let spec = hound::WavSpec {
        channels: 1,
        sample_rate: 8000,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    let mut w = hound::WavWriter::create(path, spec).unwrap();
    for i in 0..(8 * millis) {
        let s = (i as f32 * freq * std::f32::consts::TAU / 8000.0).sin() * 8000.0;
        w.write_sample(s as i16).unwrap();
    }
    w.finalize().unwrap();
}

pub const TEST_FLOW: &str = r##"
[flow]
name = "test"
numbers = ["100"]
start = "welcome"

[nodes.welcome]
type = "play"
prompts = ["welcome"]
next = "menu"

[nodes.menu]
type = "menu"
prompts = ["menu"]
choices = { "1" = "option1", "2" = "account", "9" = "goodbye" }
invalid_prompts = ["invalid"]
timeout_prompts = ["invalid"]
timeout = "1s"
max_failures = 2
on_failure = "goodbye"

[nodes.option1]
type = "play"
prompts = ["option1"]
next = "menu"

[nodes.account]
type = "collect"
prompts = ["menu"]
variable = "account"
min_digits = 3
max_digits = 6
terminator = "#"
first_digit_timeout = "2s"
inter_digit_timeout = "1s"
next = "goodbye"
on_failure = "goodbye"

[nodes.goodbye]
type = "play"
prompts = ["goodbye"]
next = "end"

[nodes.end]
type = "hangup"
"##;

/// Prompt name -> tone frequency for the test flow; each prompt is 400 ms long.
pub const TONES: [(&str, f32); 5] = [
    ("welcome", 400.0),
    ("menu", 500.0),
    ("option1", 600.0),
    ("invalid", 700.0),
    ("goodbye", 800.0),
];

pub struct Site {
    pub dir: TempDir,
    pub config: Config,
}

/// A flow directory, prompts and a database in a scratch directory, with hotline bound to
/// loopback ephemeral ports.
pub fn site(flow: &str) -> Site {
    let dir = TempDir::new("site");
    let flows = dir.path().join("flows");
    let prompts = dir.path().join("prompts");
    std::fs::create_dir_all(&flows).unwrap();
    std::fs::create_dir_all(&prompts).unwrap();
    std::fs::write(flows.join("test.toml"), flow).unwrap();
    for (name, freq) in TONES {
        write_tone(&prompts.join(format!("{name}.wav")), freq, 400);
    }
    let base = 30000 + (fastrand::u16(..2000) * 2);
    let config = Config {
        sip_bind: "127.0.0.1:0".parse().unwrap(),
        rtp_ports: (base, base + 400),
        flows_dir: flows,
        prompts_dir: prompts,
        database: format!("sqlite://{}", dir.path().join("cdr.db").display()),
        cdr_spool: dir.path().join("spool.jsonl"),
        flow_history_dir: dir.path().join("flow-history"),
        shutdown_grace: Duration::from_secs(2),
        ..Config::default()
    };
    Site { dir, config }
}

/// hotline running in its own tokio runtime.
pub struct Running {
    pub runtime: tokio::runtime::Runtime,
    pub server: Option<hotline::runtime::Server>,
    pub sip: SocketAddr,
}

pub fn start(config: Config) -> Running {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let server = runtime
        .block_on(hotline::runtime::start(config))
        .expect("hotline starts");
    let sip = server.sip_addr;
    Running {
        runtime,
        server: Some(server),
        sip,
    }
}

impl Running {
    /// Graceful shutdown; waits until every CDR is flushed.
    pub fn stop(&mut self) {
        if let Some(server) = self.server.take() {
            server.shutdown();
            self.runtime
                .block_on(server.wait())
                .expect("clean shutdown");
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A server process that is killed if the test ends (or panics) before it stops it.
pub struct ChildGuard(pub Option<std::process::Child>);

impl ChildGuard {
    pub fn id(&self) -> u32 {
        self.0.as_ref().map_or(0, |c| c.id())
    }

    /// Hands the process back to the test, which now waits for it itself.
    pub fn take(&mut self) -> std::process::Child {
        self.0.take().expect("the child is still here")
    }
}

impl Drop for ChildGuard {
    fn drop(&mut self) {
        if let Some(child) = self.0.as_mut() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

pub fn read_cdrs(database: &str) -> Vec<hotline::cdr::CdrRecord> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let store = hotline::cdr::store::CdrStore::connect(database)
            .await
            .unwrap();
        store.migrate().await.unwrap();
        let mut r = store.last(10_000).await.unwrap();
        r.reverse();
        r
    })
}

/// A SIP phone: hotline's user agent over a real UDP socket, plus one RTP socket.
pub struct Phone {
    pub ua: UserAgent,
    /// The caller's number, sent in From.
    pub caller: String,
    sip: UdpSocket,
    server: SocketAddr,
    pub rtp: UdpSocket,
    pub events: VecDeque<UaEvent>,
    pub call: Option<CallRef>,
    pub codec: Codec,
    /// Where the server wants our RTP (from its SDP).
    pub remote_rtp: Option<SocketAddr>,
    pub event_pt: Option<u8>,
    seq: u16,
    ts: u32,
    /// Every RTP payload received, with its header.
    pub received: Vec<(rtp::RtpHeader, Vec<u8>)>,
}

impl Phone {
    pub fn new(server: SocketAddr) -> Phone {
        Phone::calling_from(server, "5550100")
    }

    /// A phone whose calls carry `user` as the caller's number (From).
    pub fn calling_from(server: SocketAddr, user: &str) -> Phone {
        let sip = UdpSocket::bind("127.0.0.1:0").unwrap();
        sip.set_nonblocking(true).unwrap();
        let rtp = UdpSocket::bind("127.0.0.1:0").unwrap();
        rtp.set_nonblocking(true).unwrap();
        let advertised = sip.local_addr().unwrap().to_string();
        let ua = UserAgent::new(UaConfig {
            timers: Default::default(),
            advertised,
            advertise_request_host: false,
            user: "phone".into(),
            // Real sockets: any distinct seed will do; these phones challenge nobody.
            seed: fastrand::u64(..),
            nonce_secret: [0; 32],
            tls_port: None,
        });
        Phone {
            caller: user.to_string(),
            ua,
            sip,
            server,
            rtp,
            events: VecDeque::new(),
            call: None,
            codec: Codec::Pcmu,
            remote_rtp: None,
            event_pt: None,
            seq: 1,
            ts: 0,
            received: Vec::new(),
        }
    }

    pub fn rtp_port(&self) -> u16 {
        self.rtp.local_addr().unwrap().port()
    }

    /// Our SDP offer: the given codecs (static types), and telephone-event/8000 as 101 if `events`.
    pub fn offer(&self, codecs: &[Codec], events: bool) -> String {
        let mut pts: Vec<String> = codecs
            .iter()
            .map(|c| c.payload_type().to_string())
            .collect();
        if events {
            pts.push("101".into());
        }
        let mut s = format!(
            "v=0\r\no=phone 1 1 IN IP4 127.0.0.1\r\ns=call\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio {} RTP/AVP {}\r\n",
            self.rtp_port(),
            pts.join(" ")
        );
        for c in codecs {
            s.push_str(&format!(
                "a=rtpmap:{} {}/8000\r\n",
                c.payload_type(),
                c.encoding_name()
            ));
        }
        if events {
            s.push_str("a=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-16\r\n");
        }
        s.push_str("a=ptime:20\r\na=sendrecv\r\n");
        s
    }

    fn peer(&self) -> Peer {
        Peer {
            addr: self.server,
            transport: TransportKind::Udp,
        }
    }

    /// Move SIP both ways and run timers, for `d`.
    pub fn pump(&mut self, d: Duration) {
        let end = Instant::now() + d;
        let mut buf = [0u8; 65536];
        loop {
            while let Some(t) = self.ua.poll_transmit() {
                self.sip.send_to(&t.data, t.to.addr).unwrap();
            }
            while let Ok((n, from)) = self.sip.recv_from(&mut buf) {
                self.ua.handle_input(
                    Instant::now(),
                    Peer {
                        addr: from,
                        transport: TransportKind::Udp,
                    },
                    &buf[..n],
                );
            }
            self.ua.handle_timeout(Instant::now());
            while let Some(t) = self.ua.poll_transmit() {
                self.sip.send_to(&t.data, t.to.addr).unwrap();
            }
            while let Some(e) = self.ua.poll_event() {
                self.note(&e);
                self.events.push_back(e);
            }
            if Instant::now() >= end {
                return;
            }
            std::thread::sleep(Duration::from_millis(2));
        }
    }

    fn note(&mut self, e: &UaEvent) {
        if let UaEvent::Answered {
            answer: Some(sdp), ..
        } = e
        {
            let text = String::from_utf8_lossy(sdp).to_string();
            let parsed = hotline::sdp::SessionDescription::parse(&text).expect("server SDP parses");
            let m = parsed.media.iter().find(|m| m.is_audio()).expect("audio");
            let ip = parsed.connection_of(m).unwrap();
            self.remote_rtp = Some(SocketAddr::new(ip, m.port));
            let first = m.formats.iter().find_map(|f| f.payload_type()).unwrap();
            if let Some(c) = m.codec_of(first) {
                self.codec = c;
            }
            self.event_pt = m.telephone_event_pt();
        }
    }

    /// Wait until an event matching `f` arrives (events before it are kept).
    pub fn wait_for(&mut self, timeout: Duration, f: impl Fn(&UaEvent) -> bool) -> Option<UaEvent> {
        let end = Instant::now() + timeout;
        loop {
            if let Some(i) = self.events.iter().position(&f) {
                return self.events.remove(i);
            }
            if Instant::now() >= end {
                return None;
            }
            self.pump(Duration::from_millis(5));
        }
    }

    pub fn dial(&mut self, number: &str, offer: Option<String>) -> CallRef {
        let caller = self.caller.clone();
        let c = self
            .ua
            .invite(
                Instant::now(),
                self.peer(),
                &caller,
                number,
                offer.map(String::into_bytes),
            )
            .unwrap();
        self.call = Some(c);
        self.pump(Duration::from_millis(1));
        c
    }

    /// Dial without an offer; `answer` goes in the ACK.
    pub fn dial_late_offer(&mut self, number: &str, answer: String) -> CallRef {
        let c = self
            .ua
            .invite(
                Instant::now(),
                self.peer(),
                &self.caller.clone(),
                number,
                None,
            )
            .unwrap();
        self.ua.set_ack_answer(c, answer.into_bytes());
        self.call = Some(c);
        self.pump(Duration::from_millis(1));
        c
    }

    /// Dial and wait for the answer; panics on failure.
    pub fn call(&mut self, number: &str) {
        let offer = self.offer(&[Codec::Pcmu, Codec::Pcma], true);
        self.dial(number, Some(offer));
        self.wait_for(Duration::from_secs(5), |e| {
            matches!(e, UaEvent::Answered { .. })
        })
        .expect("answered");
    }

    pub fn hangup(&mut self) {
        if let Some(c) = self.call {
            self.ua.hangup(Instant::now(), c);
            self.pump(Duration::from_millis(1));
        }
    }

    /// As if the next `n` packets were lost on the way: their sequence numbers are skipped.
    pub fn lose_packets(&mut self, n: u16) {
        self.seq = self.seq.wrapping_add(n);
    }

    /// Everything the phone received, decoded.
    pub fn heard_pcm(&self) -> Vec<i16> {
        let mut heard = Vec::new();
        for (_, payload) in &self.received {
            let mut pcm = vec![0i16; payload.len()];
            self.codec.decode_into(payload, &mut pcm);
            heard.extend(pcm);
        }
        heard
    }

    /// Say a steady tone of `freq` for `millis`, keeping everything received meanwhile.
    pub fn say(&mut self, freq: f32, millis: u64) {
        let tone: Vec<i16> = sine(freq, 20, 8000.0)
            .into_iter()
            .cycle()
            .take(millis as usize * 8)
            .collect();
        self.send_audio(&tone, Duration::ZERO);
    }

    /// Send our RTP for `d` (20 ms packets of silence) and keep everything received.
    pub fn talk(&mut self, d: Duration) {
        self.run_media(d, &[]);
    }

    /// Press keys with RFC 4733 events, then keep talking for `after`.
    pub fn press(&mut self, keys: &str, after: Duration) {
        let mut frames = Vec::new();
        for k in keys.chars() {
            let event = rfc4733::digit_event(k).unwrap();
            // 100 ms of event (start with marker, updates), three end packets, 60 ms of silence.
            for i in 0..5u16 {
                frames.push(Frame::Event {
                    event,
                    end: false,
                    duration: (i + 1) * 160,
                    marker: i == 0,
                });
            }
            for _ in 0..3 {
                frames.push(Frame::Event {
                    event,
                    end: true,
                    duration: 800,
                    marker: false,
                });
            }
            frames.extend(std::iter::repeat_n(Frame::Silence, 3));
        }
        let total = Duration::from_millis(20 * frames.len() as u64) + after;
        self.run_media(total, &frames);
    }

    /// Press keys as in-band tones in the audio (for calls without telephone-event).
    pub fn press_inband(&mut self, keys: &str, after: Duration) {
        let mut frames = Vec::new();
        for k in keys.chars() {
            let tone = hotline::media::inband::generate(k, 800, 6000);
            for chunk in tone.chunks(160) {
                let mut f = [0i16; 160];
                f[..chunk.len()].copy_from_slice(chunk);
                frames.push(Frame::Audio(Box::new(f)));
            }
            frames.extend(std::iter::repeat_n(Frame::Silence, 5));
        }
        let total = Duration::from_millis(20 * frames.len() as u64) + after;
        self.run_media(total, &frames);
    }

    fn run_media(&mut self, d: Duration, script: &[Frame]) {
        let start = Instant::now();
        let mut tick = 0u64;
        let mut buf = [0u8; 2048];
        let mut event_ts = self.ts;
        while start.elapsed() < d {
            let frame = script.get(tick as usize).cloned().unwrap_or(Frame::Silence);
            let mut pkt = [0u8; 172];
            let len = match frame {
                Frame::Silence | Frame::Audio(_) => {
                    let payload: Vec<u8> = match &frame {
                        Frame::Audio(samples) => {
                            samples.iter().map(|s| self.codec.encode(*s)).collect()
                        }
                        _ => vec![self.codec.silence_byte(); 160],
                    };
                    let h = rtp::RtpHeader {
                        marker: false,
                        payload_type: self.codec.payload_type(),
                        sequence: self.seq,
                        timestamp: self.ts,
                        ssrc: 0xabc,
                    };
                    rtp::write_header(&h, (&mut pkt[..12]).try_into().unwrap());
                    pkt[12..].copy_from_slice(&payload);
                    event_ts = self.ts + 160;
                    172
                }
                Frame::Event {
                    event,
                    end,
                    duration,
                    marker,
                } => {
                    let pt = self.event_pt.unwrap_or(101);
                    let h = rtp::RtpHeader {
                        marker,
                        payload_type: pt,
                        sequence: self.seq,
                        timestamp: event_ts,
                        ssrc: 0xabc,
                    };
                    rtp::write_header(&h, (&mut pkt[..12]).try_into().unwrap());
                    let ev = rfc4733::TelephoneEvent {
                        event,
                        end,
                        volume: 10,
                        duration,
                    };
                    rfc4733::write(&ev, (&mut pkt[12..16]).try_into().unwrap());
                    16
                }
            };
            if let Some(to) = self.remote_rtp {
                let _ = self.rtp.send_to(&pkt[..len], to);
            }
            self.seq = self.seq.wrapping_add(1);
            self.ts = self.ts.wrapping_add(160);
            while let Ok((n, _)) = self.rtp.recv_from(&mut buf) {
                if let Some((h, payload)) = rtp::parse(&buf[..n]) {
                    self.received.push((h, payload.to_vec()));
                }
            }
            self.pump(Duration::ZERO);
            tick += 1;
            let next = start + Duration::from_millis(20 * tick);
            if let Some(w) = next.checked_duration_since(Instant::now()) {
                std::thread::sleep(w);
            }
        }
    }

    /// Which prompts were heard, in order: a prompt is heard where received frames start to
    /// be frames of its encoding.
    pub fn heard(&self, prompts: &[(&str, Vec<u8>)]) -> Vec<String> {
        let sets: Vec<(&str, std::collections::HashSet<&[u8]>)> = prompts
            .iter()
            .map(|(n, bytes)| (*n, bytes.chunks(160).collect()))
            .collect();
        let mut out: Vec<String> = Vec::new();
        let mut current: Option<&str> = None;
        for (_, payload) in &self.received {
            let now = sets
                .iter()
                .find(|(_, frames)| frames.contains(payload.as_slice()))
                .map(|(n, _)| *n);
            if let Some(name) = now
                && now != current
            {
                out.push(name.to_string());
            }
            current = now;
        }
        out
    }
}

#[derive(Clone)]
enum Frame {
    Silence,
    Audio(Box<[i16; 160]>),
    Event {
        event: u8,
        end: bool,
        duration: u16,
        marker: bool,
    },
}

/// The test prompts, encoded as hotline encodes them, for matching what a phone hears.
pub fn encoded_prompts(site: &Site, codec: Codec) -> Vec<(&'static str, Vec<u8>)> {
    TONES
        .iter()
        .map(|(name, _)| {
            let samples = hotline::media::prompt::load_wav(
                &site.config.prompts_dir.join(format!("{name}.wav")),
            )
            .unwrap();
            let enc = hotline::media::prompt::EncodedPrompt::encode(&samples);
            (*name, enc.for_codec(codec).to_vec())
        })
        .collect()
}

impl Running {
    pub fn reload_status(&self) -> hotline::runtime::ReloadStatus {
        self.server.as_ref().expect("running").reload_status()
    }

    /// Wait until the reload status satisfies `f`; panics after `timeout`.
    pub fn wait_reload(
        &self,
        timeout: Duration,
        f: impl Fn(&hotline::runtime::ReloadStatus) -> bool,
    ) -> hotline::runtime::ReloadStatus {
        let end = Instant::now() + timeout;
        loop {
            let s = self.reload_status();
            if f(&s) {
                return s;
            }
            assert!(
                Instant::now() < end,
                "reload not seen in {timeout:?}: {s:?}"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Phone {
    /// One pass that never waits: RTP received so far, SIP both ways, timers. For driving many
    /// phones from one loop.
    pub fn poll(&mut self) {
        let mut buf = [0u8; 2048];
        while let Ok((n, _)) = self.rtp.recv_from(&mut buf) {
            if let Some((h, payload)) = rtp::parse(&buf[..n]) {
                self.received.push((h, payload.to_vec()));
            }
        }
        self.pump(Duration::ZERO);
    }
}

/// A WAV file encoded as hotline encodes it, for `Phone::heard`.
pub fn encoded_prompt(path: &Path, codec: Codec) -> Vec<u8> {
    let samples = hotline::media::prompt::load_wav(path).unwrap();
    hotline::media::prompt::EncodedPrompt::encode(&samples)
        .for_codec(codec)
        .to_vec()
}

/// A sine tone as 8 kHz samples: a caller's voice that is easy to recognise in a recording.
pub fn sine(freq: f32, millis: u32, amplitude: f32) -> Vec<i16> {
    (0..8 * millis)
        .map(|i| ((i as f32 * freq * std::f32::consts::TAU / 8000.0).sin() * amplitude) as i16)
        .collect()
}

impl Phone {
    /// Send `samples` as paced 20 ms audio packets, then silence for `after`; keep everything
    /// received meanwhile.
    pub fn send_audio(&mut self, samples: &[i16], after: Duration) {
        let frames: Vec<Frame> = samples
            .chunks(160)
            .map(|chunk| {
                let mut f = [0i16; 160];
                f[..chunk.len()].copy_from_slice(chunk);
                Frame::Audio(Box::new(f))
            })
            .collect();
        let total = Duration::from_millis(20 * frames.len() as u64) + after;
        self.run_media(total, &frames);
    }
}

/// The media of a test phone that answers calls: once it knows where to, it sends a tone
/// every 20 ms, and it decodes whatever audio comes in.
pub struct ToneMedia {
    sock: UdpSocket,
    remote: Option<SocketAddr>,
    codec: Codec,
    pt: u8,
    seq: u16,
    ts: u32,
    ssrc: u32,
    tone: Vec<i16>,
    next_send: Instant,
    /// The `o=` version of our last SDP; a re-offer raises it (RFC 3264 §8).
    sdp_version: u64,
    pub audio: Vec<i16>,
}

impl ToneMedia {
    pub fn new(sock: UdpSocket, freq: f32, ssrc: u32) -> ToneMedia {
        sock.set_nonblocking(true).unwrap();
        ToneMedia {
            sock,
            remote: None,
            codec: Codec::Pcmu,
            pt: 0,
            seq: 1,
            ts: 0,
            ssrc,
            tone: sine(freq, 20, 8000.0),
            next_send: Instant::now(),
            sdp_version: 42,
            audio: Vec::new(),
        }
    }

    /// The SDP answer to `offer`; media flows from now on.
    pub fn answer(&mut self, offer: &[u8]) -> Vec<u8> {
        use hotline::sdp::{self, LocalMedia, SessionDescription};
        let offer = SessionDescription::parse_bytes(offer).unwrap();
        let port = self.sock.local_addr().unwrap().port();
        let local = LocalMedia::new("127.0.0.1".parse().unwrap(), port, 42);
        let neg = sdp::negotiate(&offer, &local).unwrap();
        self.remote = neg.remote;
        self.codec = neg.codec;
        self.pt = neg.audio_pt;
        sdp::build_answer(&offer, &local, &neg).into_bytes()
    }

    /// A re-INVITE's offer in the same session: the codec in use, with `direction`
    /// (`SendOnly` puts the other side on hold, `SendRecv` takes it back). The tone keeps
    /// going out either way, as a phone's would while on hold.
    pub fn reoffer(&mut self, direction: hotline::sdp::Direction) -> Vec<u8> {
        use hotline::sdp::{self, LocalMedia};
        let port = self.sock.local_addr().unwrap().port();
        let mut local = LocalMedia::new("127.0.0.1".parse().unwrap(), port, 42);
        self.sdp_version += 1;
        local.session_version = self.sdp_version;
        local.codecs = vec![self.codec];
        sdp::build_offer(&local, direction).into_bytes()
    }

    /// Send the packet that is due and take in what arrived.
    pub fn poll(&mut self) {
        if let Some(to) = self.remote
            && Instant::now() >= self.next_send
        {
            self.next_send += Duration::from_millis(20);
            let mut pkt = [0u8; 172];
            let h = rtp::RtpHeader {
                marker: self.seq == 1,
                payload_type: self.pt,
                sequence: self.seq,
                timestamp: self.ts,
                ssrc: self.ssrc,
            };
            rtp::write_header(&h, (&mut pkt[..12]).try_into().unwrap());
            self.codec.encode_into(&self.tone, &mut pkt[12..]);
            let _ = self.sock.send_to(&pkt, to);
            self.seq = self.seq.wrapping_add(1);
            self.ts = self.ts.wrapping_add(160);
        }
        let mut buf = [0u8; 2048];
        while let Ok((n, _)) = self.sock.recv_from(&mut buf) {
            if let Some((h, payload)) = rtp::parse(&buf[..n])
                && h.payload_type == self.pt
            {
                let mut pcm = vec![0i16; payload.len()];
                self.codec.decode_into(payload, &mut pcm);
                self.audio.extend(pcm);
            }
        }
    }
}

/// Zero crossings per second over the last half second of sound in `pcm` (twice the
/// frequency of a pure tone).
pub fn crossings_per_second(pcm: &[i16]) -> f64 {
    let last = pcm
        .iter()
        .rposition(|s| s.unsigned_abs() > 1000)
        .expect("audio arrived");
    let tail = &pcm[last.saturating_sub(4000)..last];
    tail.windows(2).filter(|w| (w[0] < 0) != (w[1] < 0)).count() as f64 * 8000.0 / tail.len() as f64
}

/// A UDP port on 127.0.0.1 that was free a moment ago.
pub fn free_udp_port() -> u16 {
    UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// `hotline serve` as built, for `site`: SIP on 127.0.0.1:`port`, RTP on `rtp` ("A-B"), the
/// given configuration file if any, log on stderr into `log`. Add to it, spawn it, then
/// `wait_until_serving(log)`. `serve_command_with_database` for another CDR database.
pub fn serve_command(
    site: &Site,
    port: u16,
    rtp: &str,
    config: Option<&Path>,
    log: &Path,
) -> std::process::Command {
    serve_command_with_database(site, &site.config.database, port, rtp, config, log)
}

pub fn serve_command_with_database(
    site: &Site,
    database: &str,
    port: u16,
    rtp: &str,
    config: Option<&Path>,
    log: &Path,
) -> std::process::Command {
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_hotline"));
    command.arg("serve");
    if let Some(config) = config {
        command.arg("--config").arg(config);
    }
    command
        .args([
            "--sip-bind",
            &format!("127.0.0.1:{port}"),
            "--rtp-ports",
            rtp,
            "--database",
            database,
            "--flows",
        ])
        .arg(&site.config.flows_dir)
        .arg("--prompts")
        .arg(&site.config.prompts_dir)
        .current_dir(site.dir.path())
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(log).unwrap());
    command
}

/// Until the server's log says it takes calls (10 s at most).
pub fn wait_until_serving(log: &Path) {
    let end = Instant::now() + Duration::from_secs(10);
    while !std::fs::read_to_string(log)
        .unwrap_or_default()
        .contains("taking calls")
    {
        assert!(Instant::now() < end, "server did not start");
        std::thread::sleep(Duration::from_millis(50));
    }
}
