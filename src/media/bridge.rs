//! Bridging two RTP streams that may live on different media threads.
//!
//! **Who numbers a leg's packets.** Each stream has an [`Egress`]: the one word that says who may
//! number its outgoing packets next, with the sequence number and timestamp to continue from.
//! Two parties can write it: the stream's own thread (the *home*: prompts, music, digits,
//! silence) and the thread of the bridged partner, which forwards the partner's received
//! packets straight out of this leg's socket in its receive pass (the *forwarder*). Exactly
//! one of them owns the numbering at a time, and only the home moves ownership:
//! - the home hands over (`hand_over`: a release store of its next sequence number and
//!   timestamp with the `FORWARDED` bit and a new epoch) when it has nothing of its own to send
//!   and the partner's audio is what this leg should hear;
//! - the forwarder numbers each packet by a compare-and-swap that only succeeds while the bit is
//!   set, so every (sequence, timestamp) pair is claimed exactly once and never reused;
//! - the home takes numbering back (`take_back`: an atomic `fetch_and` clearing the bit, which
//!   returns the latest numbers) whenever it must send itself (a prompt, music, a digit, the
//!   end of the bridge); from then on every forwarder CAS fails and the packet is dropped.
//!
//! The home's own timestamp clock keeps running while it has handed over and is published every
//! tick (`clock`), so a new forwarding epoch starts no earlier than real time and the home,
//! taking back, continues from the later of its clock and the forwarder's last timestamp:
//! sequence numbers never jump and timestamps never go backwards across switches.
//!
//! What the forwarder must know about the leg it sends on (SSRC, payload types, codec, packet
//! time, destination, whether it may send at all, a stereo recording's tap) is published by
//! the home under a mutex with a version counter; the forwarder reads one atomic per packet and
//! takes the lock only when the version changed (a re-INVITE, a latch, a recording starting).
//!
//! Nothing here opens a socket: the forwarder hands each finished packet and its destination
//! to a closure; `runtime::media` sends it on the partner's (shared) socket.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicI16, AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, LazyLock, Mutex, MutexGuard};

use super::g711::{alaw_decode, alaw_encode, ulaw_decode, ulaw_encode};
use super::relay::PcmFifo;
use super::rtp::{self, RtpHeader};
use super::srtp::Protector;
use super::{Codec, SAMPLES_PER_FRAME};

/// The longest packet we build when re-packetizing (60 ms); longer packet times are cut to this.
pub const MAX_REPACKET: usize = 480;

const FORWARDED: u64 = 1 << 56;

fn pack(seq: u16, ts: u32, epoch: u8, forwarded: bool) -> u64 {
    u64::from(seq)
        | (u64::from(ts) << 16)
        | (u64::from(epoch) << 48)
        | if forwarded { FORWARDED } else { 0 }
}

fn unpack(w: u64) -> (u16, u32, u8, bool) {
    (
        w as u16,
        (w >> 16) as u32,
        (w >> 48) as u8,
        w & FORWARDED != 0,
    )
}

/// The later of two RTP timestamps (modulo 2^32).
pub fn later(a: u32, b: u32) -> u32 {
    if (b.wrapping_sub(a) as i32) > 0 { b } else { a }
}

/// What a forwarder must know about the leg it sends on.
#[derive(Debug, Clone)]
pub struct PeerInfo {
    pub ssrc: u32,
    pub codec: Codec,
    pub audio_pt: u8,
    pub event_pt: Option<u8>,
    /// False while the leg must not send (we are on hold towards it, or it is closing).
    pub send: bool,
    pub dest: Option<SocketAddr>,
    /// The leg's socket is connect()ed to `dest`: a plain send() reaches it (cheaper than
    /// sendto).
    pub connected: bool,
    /// The packet size (samples) this leg's phone sends us, taken as the one it wants; 0 until
    /// its first audio packet (then any size passes whole).
    pub ptime: u16,
    /// A stereo recording on this leg: where the forwarder puts what it forwards (decoded).
    pub tap: Option<Arc<Tap>>,
}

impl Default for PeerInfo {
    fn default() -> Self {
        PeerInfo {
            ssrc: 0,
            codec: Codec::Pcmu,
            audio_pt: 0,
            event_pt: None,
            send: false,
            dest: None,
            connected: false,
            ptime: 0,
            tap: None,
        }
    }
}

/// One stream's outgoing numbering and what a forwarder needs to send on it; shared (in an
/// `Arc`) between the stream's home thread and the partner's.
#[derive(Debug, Default)]
pub struct Egress {
    /// seq (bits 0..16) | next timestamp (16..48) | epoch (48..56) | FORWARDED (56).
    word: AtomicU64,
    /// The home's running timestamp, published every tick while it has handed over.
    clock: AtomicU32,
    /// A key the partner received as RFC 4733 which this leg cannot take as an event: the home
    /// plays it in-band (0: none).
    digit: AtomicU32,
    version: AtomicU32,
    info: Mutex<PeerInfo>,
    /// Set while `protector` holds a key, so a plain leg's sends never take the lock.
    protected: AtomicBool,
    /// The leg's SRTP encryption: whoever sends on the leg (home or forwarder) seals with it,
    /// so one context sees every packet of the leg's one SSRC in order.
    protector: Mutex<Option<Protector>>,
}

impl Egress {
    pub fn new() -> Self {
        Self::default()
    }

    fn info(&self) -> MutexGuard<'_, PeerInfo> {
        self.info.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Home: from now on the forwarder numbers this leg's packets, continuing from these.
    pub fn hand_over(&self, seq: u16, next_ts: u32) {
        let (_, _, epoch, _) = unpack(self.word.load(Ordering::Relaxed));
        self.clock.store(next_ts, Ordering::Relaxed);
        self.word.store(
            pack(seq, next_ts, epoch.wrapping_add(1), true),
            Ordering::Release,
        );
    }

    /// Home: numbering comes back; the forwarder's next claim fails. Returns the sequence
    /// number and timestamp to continue from if it had been handed over.
    pub fn take_back(&self) -> Option<(u16, u32)> {
        let (seq, ts, _, forwarded) = unpack(self.word.fetch_and(!FORWARDED, Ordering::AcqRel));
        forwarded.then_some((seq, ts))
    }

    /// The next sequence number (whoever numbers), to see whether a forwarder is sending.
    pub fn sequence(&self) -> u16 {
        self.word.load(Ordering::Relaxed) as u16
    }

    pub fn is_handed_over(&self) -> bool {
        self.word.load(Ordering::Acquire) & FORWARDED != 0
    }

    /// Home, every tick while handed over: where its own clock is.
    pub fn set_clock(&self, ts: u32) {
        self.clock.store(ts, Ordering::Relaxed);
    }

    /// Home: new parameters for forwarders.
    pub fn publish(&self, info: PeerInfo) {
        *self.info() = info;
        self.version.fetch_add(1, Ordering::Release);
    }

    /// Home: encrypt what goes out on this leg from now on (None: send plain).
    pub fn protect_with(&self, protector: Option<Protector>) {
        let mut guard = self.protector.lock().unwrap_or_else(|e| e.into_inner());
        self.protected.store(protector.is_some(), Ordering::Release);
        *guard = protector;
    }

    /// Send one RTP packet on this leg through `send`: as it is, or sealed with SRTP when
    /// the leg negotiated it. The lock is released before the send.
    pub fn seal(
        &self,
        packet: &[u8],
        send: impl FnOnce(&[u8]) -> std::io::Result<usize>,
    ) -> std::io::Result<usize> {
        if !self.protected.load(Ordering::Acquire) {
            return send(packet);
        }
        let sealed = self
            .protector
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .as_mut()
            .and_then(|p| p.protect(packet));
        match sealed {
            Some(sealed) => send(&sealed),
            None => Ok(0),
        }
    }

    /// Forwarder: a key for this leg to play itself.
    pub fn post_digit(&self, digit: char) {
        self.digit.store(digit as u32, Ordering::Release);
    }

    /// Home: a key posted by the forwarder, once.
    pub fn take_digit(&self) -> Option<char> {
        match self.digit.swap(0, Ordering::Acquire) {
            0 => None,
            c => char::from_u32(c),
        }
    }
}

/// The right channel of a stereo recording on its way from the forwarder's thread to the
/// recording leg's: a single-producer single-consumer ring of samples (the forwarder of the
/// partner's audio is the one producer, the recording leg's home the one consumer). What does
/// not fit is dropped; the consumer pads with silence.
#[derive(Debug)]
pub struct Tap {
    buf: Box<[AtomicI16]>,
    /// Samples read so far (consumer).
    head: AtomicUsize,
    /// Samples written so far (producer).
    tail: AtomicUsize,
}

impl Tap {
    pub fn new(capacity: usize) -> Self {
        Tap {
            buf: (0..capacity.max(1)).map(|_| AtomicI16::new(0)).collect(),
            head: AtomicUsize::new(0),
            tail: AtomicUsize::new(0),
        }
    }

    pub fn push(&self, pcm: &[i16]) {
        let cap = self.buf.len();
        let tail = self.tail.load(Ordering::Relaxed);
        let head = self.head.load(Ordering::Acquire);
        let n = pcm.len().min(cap - tail.wrapping_sub(head));
        for (i, s) in pcm[..n].iter().enumerate() {
            self.buf[(tail.wrapping_add(i)) % cap].store(*s, Ordering::Relaxed);
        }
        self.tail.store(tail.wrapping_add(n), Ordering::Release);
    }

    /// Fill `out` with what waits, silence for the rest; returns how many were real.
    pub fn pop_padded(&self, out: &mut [i16]) -> usize {
        let cap = self.buf.len();
        let head = self.head.load(Ordering::Relaxed);
        let tail = self.tail.load(Ordering::Acquire);
        let n = out.len().min(tail.wrapping_sub(head));
        for (i, o) in out.iter_mut().enumerate() {
            *o = if i < n {
                self.buf[(head.wrapping_add(i)) % cap].load(Ordering::Relaxed)
            } else {
                0
            };
        }
        self.head.store(head.wrapping_add(n), Ordering::Release);
        n
    }
}

static ULAW_TO_ALAW: LazyLock<[u8; 256]> =
    LazyLock::new(|| std::array::from_fn(|b| alaw_encode(ulaw_decode(b as u8))));
static ALAW_TO_ULAW: LazyLock<[u8; 256]> =
    LazyLock::new(|| std::array::from_fn(|b| ulaw_encode(alaw_decode(b as u8))));

/// Re-encode G.711 bytes from one law to the other, in place (one table look-up a byte).
pub fn transcode_in_place(from: Codec, to: Codec, bytes: &mut [u8]) {
    let table: &[u8; 256] = match (from, to) {
        (Codec::Pcmu, Codec::Pcma) => &ULAW_TO_ALAW,
        (Codec::Pcma, Codec::Pcmu) => &ALAW_TO_ULAW,
        _ => return,
    };
    for b in bytes {
        *b = table[usize::from(*b)];
    }
}

/// Where a forwarded packet goes: `addr`, and whether the partner's socket is already
/// connect()ed there, so that a plain send() does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Dest {
    pub addr: SocketAddr,
    pub connected: bool,
}

/// The numbers a forwarded packet goes out with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Claim {
    seq: u16,
    ts: u32,
    marker: bool,
}

/// One direction of a bridge, held by the receiving stream: its received packets go out on
/// the partner's egress. Boxed in the stream; allocated when the bridge starts.
pub struct Forward {
    partner: Arc<Egress>,
    info: PeerInfo,
    version: u32,
    /// The partner's hand-over epoch our timestamp offset belongs to.
    epoch: Option<u8>,
    in_ssrc: u32,
    ts_off: u32,
    /// Audio waiting to be re-packetized when the packet times differ.
    fifo: PcmFifo,
    out: [u8; rtp::HEADER_LEN + MAX_REPACKET],
}

impl Forward {
    pub fn new(partner: Arc<Egress>) -> Self {
        let info = partner.info().clone();
        let version = partner.version.load(Ordering::Acquire);
        Forward {
            partner,
            info,
            version,
            epoch: None,
            in_ssrc: 0,
            ts_off: 0,
            fifo: PcmFifo::default(),
            out: [0; rtp::HEADER_LEN + MAX_REPACKET],
        }
    }

    pub fn partner(&self) -> &Arc<Egress> {
        &self.partner
    }

    /// One atomic load per packet; the lock only when the partner published something new.
    fn refresh(&mut self) {
        let v = self.partner.version.load(Ordering::Acquire);
        if v != self.version {
            self.info = self.partner.info().clone();
            self.version = v;
        }
    }

    /// Number one packet of `samples` samples: mapped from the source's timestamp `in_ts`
    /// (None: re-packetized, so timestamps simply run on). None while the partner's home owns
    /// its numbering.
    fn claim(&mut self, in_ssrc: u32, in_ts: Option<u32>, samples: u32) -> Option<Claim> {
        let egress = &self.partner;
        let mut w = egress.word.load(Ordering::Acquire);
        loop {
            let (seq, next_ts, epoch, forwarded) = unpack(w);
            if !forwarded {
                self.epoch = None;
                return None;
            }
            let fresh = self.epoch != Some(epoch) || self.in_ssrc != in_ssrc;
            let (ts, off, marker) = match in_ts {
                _ if fresh => {
                    let base = later(next_ts, egress.clock.load(Ordering::Relaxed));
                    (base, in_ts.map_or(0, |t| base.wrapping_sub(t)), true)
                }
                Some(t) => {
                    let ts = t.wrapping_add(self.ts_off);
                    // A source that jumps (a new timestamp base without a new SSRC) is
                    // re-anchored rather than followed backwards or far ahead.
                    let ahead = ts.wrapping_sub(next_ts) as i32;
                    if !(-8000..=80_000).contains(&ahead) {
                        (next_ts, next_ts.wrapping_sub(t), true)
                    } else {
                        (ts, self.ts_off, false)
                    }
                }
                None => (next_ts, 0, false),
            };
            let new = pack(
                seq.wrapping_add(1),
                later(next_ts, ts.wrapping_add(samples)),
                epoch,
                true,
            );
            match egress
                .word
                .compare_exchange_weak(w, new, Ordering::AcqRel, Ordering::Acquire)
            {
                Ok(_) => {
                    self.epoch = Some(epoch);
                    self.in_ssrc = in_ssrc;
                    self.ts_off = off;
                    return Some(Claim { seq, ts, marker });
                }
                Err(current) => w = current,
            }
        }
    }

    fn dest(&self) -> Option<Dest> {
        let addr = self.info.dest.filter(|_| self.info.send)?;
        Some(Dest {
            addr,
            connected: self.info.connected,
        })
    }

    fn header(&self, c: Claim, source_marker: bool, pt: u8) -> RtpHeader {
        RtpHeader {
            marker: c.marker || source_marker,
            payload_type: pt,
            sequence: c.seq,
            timestamp: c.ts,
            ssrc: self.info.ssrc,
        }
    }

    /// Forward one received audio packet (`data` is the whole datagram, `payload_at` where its
    /// payload starts, `payload_len` its length) whose audio is in `codec`. Rewrites it in
    /// place and hands it to `send`; re-packetizes through `out` when the partner's packet
    /// time differs.
    pub fn audio(
        &mut self,
        data: &mut [u8],
        h: &RtpHeader,
        payload_at: usize,
        payload_len: usize,
        codec: Codec,
        send: &mut impl FnMut(&[u8], Dest),
    ) {
        self.refresh();
        if let Some(tap) = self.info.tap.as_deref() {
            let mut pcm = [0i16; SAMPLES_PER_FRAME];
            for chunk in data[payload_at..payload_at + payload_len].chunks(SAMPLES_PER_FRAME) {
                codec.decode_into(chunk, &mut pcm);
                tap.push(&pcm[..chunk.len()]);
            }
        }
        let Some(dest) = self.dest() else {
            return;
        };
        let want = usize::from(self.info.ptime).min(MAX_REPACKET);
        if want == 0 || want == payload_len {
            let Some(c) = self.claim(h.ssrc, Some(h.timestamp), payload_len as u32) else {
                return;
            };
            if payload_at != rtp::HEADER_LEN {
                data.copy_within(payload_at..payload_at + payload_len, rtp::HEADER_LEN);
            }
            let packet = &mut data[..rtp::HEADER_LEN + payload_len];
            let (header, payload) = packet.split_at_mut(rtp::HEADER_LEN);
            transcode_in_place(codec, self.info.codec, payload);
            let hdr = self.header(c, h.marker, self.info.audio_pt);
            rtp::write_header(&hdr, header.try_into().expect("12 bytes"));
            send(packet, dest);
            return;
        }
        let mut pcm = [0i16; SAMPLES_PER_FRAME];
        for chunk in data[payload_at..payload_at + payload_len].chunks(SAMPLES_PER_FRAME) {
            codec.decode_into(chunk, &mut pcm);
            self.fifo.push(&pcm[..chunk.len()]);
        }
        let mut frame = [0i16; MAX_REPACKET];
        while self.fifo.len() >= want {
            let Some(c) = self.claim(h.ssrc, None, want as u32) else {
                self.fifo.clear();
                return;
            };
            self.fifo.pop_exact(&mut frame[..want]);
            let hdr = self.header(c, h.marker && c.marker, self.info.audio_pt);
            let (header, payload) = self.out.split_at_mut(rtp::HEADER_LEN);
            rtp::write_header(&hdr, header.try_into().expect("12 bytes"));
            self.info
                .codec
                .encode_into(&frame[..want], &mut payload[..want]);
            send(&self.out[..rtp::HEADER_LEN + want], dest);
        }
    }

    /// Forward one RFC 4733 packet with the partner's event payload type. False when the
    /// partner did not negotiate telephone-event (the key must reach it another way).
    pub fn event(
        &mut self,
        data: &mut [u8],
        h: &RtpHeader,
        payload_at: usize,
        payload_len: usize,
        send: &mut impl FnMut(&[u8], Dest),
    ) -> bool {
        self.refresh();
        let Some(pt) = self.info.event_pt else {
            return false;
        };
        let Some(dest) = self.dest() else {
            return true;
        };
        let Some(c) = self.claim(h.ssrc, Some(h.timestamp), 0) else {
            return true;
        };
        if payload_at != rtp::HEADER_LEN {
            data.copy_within(payload_at..payload_at + payload_len, rtp::HEADER_LEN);
        }
        let packet = &mut data[..rtp::HEADER_LEN + payload_len];
        let hdr = self.header(c, h.marker, pt);
        rtp::write_header(
            &hdr,
            (&mut packet[..rtp::HEADER_LEN]).try_into().expect("12"),
        );
        send(packet, dest);
        true
    }

    /// The partner cannot take events: it plays this key itself.
    pub fn post_digit(&self, digit: char) {
        self.partner.post_digit(digit);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_word_round_trips() {
        let w = pack(0xBEEF, 0xDEAD_F00D, 7, true);
        assert_eq!(unpack(w), (0xBEEF, 0xDEAD_F00D, 7, true));
        assert_eq!(unpack(w & !FORWARDED), (0xBEEF, 0xDEAD_F00D, 7, false));
    }

    #[test]
    fn a_claim_only_succeeds_while_handed_over_and_numbers_are_never_reused() {
        let egress = Arc::new(Egress::new());
        egress.publish(PeerInfo {
            ssrc: 5,
            send: true,
            dest: Some("127.0.0.1:9".parse().unwrap()),
            ..PeerInfo::default()
        });
        let mut f = Forward::new(egress.clone());
        assert_eq!(f.claim(1, Some(100), 160), None, "the home owns it");
        egress.hand_over(10, 1000);
        let a = f.claim(1, Some(100), 160).unwrap();
        assert_eq!(
            a,
            Claim {
                seq: 10,
                ts: 1000,
                marker: true
            }
        );
        let b = f.claim(1, Some(260), 160).unwrap();
        assert_eq!(
            b,
            Claim {
                seq: 11,
                ts: 1160,
                marker: false
            }
        );
        assert_eq!(egress.take_back(), Some((12, 1320)));
        assert_eq!(f.claim(1, Some(420), 160), None);
        egress.hand_over(20, 5000);
        let c = f.claim(1, Some(580), 160).unwrap();
        assert_eq!(
            c,
            Claim {
                seq: 20,
                ts: 5000,
                marker: true
            },
            "a new epoch re-anchors"
        );
    }

    /// The home hands over and takes back thousands of times while another thread claims as
    /// fast as it can: every sequence number is used exactly once, by one side or the other,
    /// and each side's timestamps never go backwards.
    #[test]
    fn two_threads_never_share_a_sequence_number() {
        let egress = Arc::new(Egress::new());
        egress.publish(PeerInfo {
            send: true,
            dest: Some("127.0.0.1:9".parse().unwrap()),
            ..PeerInfo::default()
        });
        let done = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let forwarder = {
            let (egress, done) = (egress.clone(), done.clone());
            std::thread::spawn(move || {
                let mut f = Forward::new(egress);
                let mut used = Vec::new();
                let mut in_ts = 0u32;
                while !done.load(Ordering::Relaxed) && used.len() < 40_000 {
                    in_ts = in_ts.wrapping_add(160);
                    if let Some(c) = f.claim(1, Some(in_ts), 160) {
                        used.push((c.seq, c.ts));
                    }
                }
                used
            })
        };
        let (mut seq, mut ts) = (0u16, 0u32);
        let mut home = Vec::new();
        for _ in 0..20_000 {
            home.push((seq, ts));
            seq = seq.wrapping_add(1);
            ts = ts.wrapping_add(160);
            egress.hand_over(seq, ts);
            std::hint::spin_loop();
            std::thread::yield_now();
            if let Some((s, t)) = egress.take_back() {
                seq = s;
                ts = later(ts, t);
            }
        }
        done.store(true, Ordering::Relaxed);
        let forwarded = forwarder.join().unwrap();
        assert!(!forwarded.is_empty(), "the forwarder got its turns");
        let total = home.len() + forwarded.len();
        assert!(total < 65_536, "within one sequence cycle: {total}");
        let mut all: Vec<u16> = home.iter().chain(&forwarded).map(|(s, _)| *s).collect();
        all.sort_unstable();
        all.dedup();
        assert_eq!(all.len(), total, "no sequence number used twice");
        assert_eq!(usize::from(all[total - 1]) + 1, total, "and none skipped");
        for w in forwarded.windows(2).chain(home.windows(2)) {
            assert!((w[1].1.wrapping_sub(w[0].1) as i32) >= 0, "{w:?}");
        }
    }

    #[test]
    fn the_tap_passes_samples_in_order_and_pads_with_silence() {
        let tap = Tap::new(400);
        tap.push(&[1; 300]);
        tap.push(&[2; 300]);
        let mut out = [9i16; 160];
        assert_eq!(tap.pop_padded(&mut out), 160);
        assert_eq!(tap.pop_padded(&mut out), 160);
        assert_eq!((out[139], out[140]), (1, 2));
        assert_eq!(tap.pop_padded(&mut out), 80, "what did not fit was dropped");
        assert_eq!(out[80], 0);
    }

    #[test]
    fn transcoding_keeps_the_signal() {
        for s in [-20000i16, -1000, -10, 0, 10, 1000, 20000] {
            let mut b = [ulaw_encode(s)];
            transcode_in_place(Codec::Pcmu, Codec::Pcma, &mut b);
            let back = alaw_decode(b[0]);
            assert!((i32::from(back) - i32::from(s)).abs() <= i32::from(s).abs() / 16 + 16);
        }
    }
}
