//! One RTP stream's state, sans-IO: what the pacing loop sends each tick and what it makes of
//! each packet received. Kept compact because the pacing loop walks every stream every 20 ms.
//!
//! What a stream sends, in order of precedence: a key it was asked to send (`send_digit`), a
//! prompt (`play`), then its background: silence, music (`music`, looping), or, while bridged,
//! nothing of its own: the partner's thread forwards the partner's packets out of this leg
//! (see `media::bridge` for who numbers the packets when). A prompt or a key over music or a
//! bridge interrupts it, and the background comes back when they end.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use super::bridge::{Dest, Egress, Forward, MAX_REPACKET, PeerInfo, later};
use super::inband::{self, DtmfDetector};
use super::latch::{Latch, Verdict};
use super::loss::LossCount;
use super::recorder::{Recorder, Recording, StereoRecorder, StereoRecording};
use super::rfc4733::{self, DigitDeduper};
use super::rtp::{self, RtpHeader};
use super::srtp::{Protector, SrtpKeys, Unprotector};
use super::{Codec, SAMPLE_RATE, SAMPLES_PER_FRAME};

/// One RTP packet of 20 ms G.711: 12 bytes of header and 160 of payload.
pub const PACKET_LEN: usize = rtp::HEADER_LEN + SAMPLES_PER_FRAME;

/// A key sent as RFC 4733: 100 ms of event (five packets, durations 160..800), the last of
/// them with the end bit and sent three times in all.
const EVENT_TICKS: u8 = 5;
const EVENT_END_REPEATS: u8 = 3;
/// A key sent in-band: 100 ms of the tone pair, then 60 ms of silence so that the same key
/// twice is heard twice.
const TONE_TICKS: u8 = 5;
const TONE_GAP_TICKS: u8 = 3;
/// Ticks without a forwarded packet before a bridged leg's home sends silence itself (and
/// keeps doing so each tick until the partner's packets come again).
const KEEPALIVE_TICKS: u8 = 10;
/// Peak of each of the two tones (about -9 dBm0 each).
const TONE_AMPLITUDE: f32 = 7000.0;

/// The parameters negotiated in SDP for one stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StreamParams {
    pub codec: Codec,
    pub audio_pt: u8,
    pub event_pt: Option<u8>,
    /// Where to send until we latch to where the caller's RTP really comes from; also the
    /// one source trusted to latch with a single packet (see `media::latch`).
    pub remote: Option<SocketAddr>,
    /// Whether we may send. The engine starts a caller's stream with `false` and sets it on
    /// the ACK: before that, the SDP address is only the INVITE's word, and sending to it
    /// would let one unacknowledged INVITE aim our RTP at a third party (issue 9).
    pub send: bool,
    pub receive: bool,
    /// SDES-SRTP keys when the SDP negotiated them: everything sent is sealed, and what is
    /// received must authenticate before anything else looks at it.
    pub srtp: Option<SrtpKeys>,
}

/// Something the stream noticed that the call must hear about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StreamEvent {
    Digit(char),
    PlayDone(u32),
}

/// A queued prompt: the codec's encoded bytes and how far we got.
struct Segment {
    data: Arc<[u8]>,
    pos: usize,
}

/// Waiting music: prompts played in a loop, paused (not restarted) while a prompt or a key
/// goes out.
struct Music {
    prompts: Vec<Arc<[u8]>>,
    index: usize,
    pos: usize,
}

impl Music {
    /// The next 20 ms, or None when every prompt is empty.
    fn next_frame(&mut self) -> Option<&[u8]> {
        for _ in 0..=self.prompts.len() {
            let p = &self.prompts[self.index];
            if self.pos + SAMPLES_PER_FRAME <= p.len() {
                let at = self.pos;
                self.pos += SAMPLES_PER_FRAME;
                return Some(&self.prompts[self.index][at..at + SAMPLES_PER_FRAME]);
            }
            self.index = (self.index + 1) % self.prompts.len();
            self.pos = 0;
        }
        None
    }
}

/// Keys to send, and how far the current one got.
struct DigitOut {
    queue: VecDeque<char>,
    current: Option<char>,
    tick: u8,
    start_ts: u32,
}

pub struct Stream {
    params: StreamParams,
    ssrc: u32,
    seq: u16,
    timestamp: u32,
    marker: bool,
    playing: Vec<Segment>,
    play_id: Option<u32>,
    music: Option<Box<Music>>,
    /// While bridged the partner's audio is this stream's background.
    bridged: bool,
    /// While linked: this stream's received packets go out on the partner's egress.
    forward: Option<Box<Forward>>,
    /// Who numbers this stream's packets (shared with the partner's forwarder).
    egress: Arc<Egress>,
    /// Whether numbering is with the partner's forwarder right now.
    handed_over: bool,
    digits: Option<Box<DigitOut>>,
    deduper: DigitDeduper,
    inband: Option<Box<DtmfDetector>>,
    /// Which source is the caller's: once latched, we send there (symmetric RTP) and hear
    /// nobody else; it counts what it drops.
    latch: Latch,
    /// Ticks since the last packet from the caller (or since the start, until one came).
    silent_ticks: u32,
    /// Ticks since the stream started: the clock the digit deduper tells presses apart by.
    ticks: u32,
    /// Boxed: most streams never record, and the pacing loop walks every stream each tick.
    recorder: Option<Box<Recorder>>,
    stereo: Option<Box<StereoRecorder>>,
    /// The payload size (samples) of the audio the phone sends: its packet time.
    ptime: u16,
    /// Where the runtime connect()ed this stream's socket, if it did.
    socket_peer: Option<SocketAddr>,
    /// While handed over: the forwarder's sequence number at the last tick, and how many
    /// ticks it has not moved.
    watch_seq: u16,
    idle_ticks: u8,
    /// Opens what an SRTP peer sends (boxed: most streams are plain).
    unprotect: Option<Box<Unprotector>>,
    /// Packets that did not authenticate under the SRTP key.
    unauthentic: u64,
    /// Loss of what the latched source sent.
    loss: LossCount,
}

/// What a stream counted over its life, for the log line at its close.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct StreamStats {
    /// Valid RTP packets dropped for their source: another sender's, or the first packets
    /// of a learnt (NAT) source's run. Once the runtime connect()s the socket to the latched
    /// source, the kernel drops other senders' packets before they are counted.
    pub foreign: u64,
    /// Whether any packet from the caller was heard.
    pub heard: bool,
    /// Packets refused by SRTP authentication (forged, replayed, damaged, or plain).
    pub unauthentic: u64,
    /// Packets received from the latched source, and lost on the way (by their sequence
    /// numbers).
    pub received: u64,
    pub lost: u64,
}

/// What one received datagram meant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Received {
    pub digit: Option<char>,
    /// Set when this packet latched the stream to its source address.
    pub latched: Option<SocketAddr>,
}

impl Stream {
    /// `ssrc` and `initial` (sequence and timestamp seeds) are random inputs: RFC 3550 §5.1
    /// and §8 want them unpredictable and different for every stream.
    pub fn new(params: StreamParams, ssrc: u32, initial_seq: u16, initial_ts: u32) -> Self {
        Self::with_egress(
            params,
            ssrc,
            initial_seq,
            initial_ts,
            Arc::new(Egress::new()),
        )
    }

    /// A stream whose numbering is shared through `egress` (created with its socket, so a
    /// partner on another thread can be linked to it before or after it starts).
    pub fn with_egress(
        params: StreamParams,
        ssrc: u32,
        initial_seq: u16,
        initial_ts: u32,
        egress: Arc<Egress>,
    ) -> Self {
        // A stream this one replaces may have handed numbering over: it is ours now.
        egress.take_back();
        let s = Stream {
            params,
            ssrc,
            seq: initial_seq,
            timestamp: initial_ts,
            marker: true,
            playing: Vec::new(),
            play_id: None,
            music: None,
            bridged: false,
            forward: None,
            egress,
            handed_over: false,
            digits: None,
            deduper: DigitDeduper::default(),
            inband: params
                .event_pt
                .is_none()
                .then(|| Box::new(DtmfDetector::new())),
            latch: Latch::new(params.remote),
            silent_ticks: 0,
            ticks: 0,
            recorder: None,
            stereo: None,
            ptime: 0,
            socket_peer: None,
            watch_seq: 0,
            idle_ticks: 0,
            unprotect: None,
            unauthentic: 0,
            loss: LossCount::default(),
        };
        let mut s = s;
        s.rekey(None);
        s.publish();
        s
    }

    /// Start SRTP, change keys or end it, after the SDP changed from `before` (None: a new
    /// stream). Each direction's context is kept while its own suite and key are, so the
    /// rollover count it tracks goes on (a fresh context under the same key would count from
    /// zero again and repeat the keystream).
    fn rekey(&mut self, before: Option<Option<SrtpKeys>>) {
        let now = self.params.srtp;
        let sending = |k: Option<SrtpKeys>| k.map(|k| (k.suite, k.send));
        let receiving = |k: Option<SrtpKeys>| k.map(|k| (k.suite, k.receive));
        if before.is_none_or(|b| sending(b) != sending(now)) {
            self.egress
                .protect_with(now.as_ref().and_then(Protector::new));
        }
        if before.is_none_or(|b| receiving(b) != receiving(now)) {
            self.unprotect = now.as_ref().and_then(Unprotector::new).map(Box::new);
        }
    }

    pub fn params(&self) -> &StreamParams {
        &self.params
    }

    pub fn egress(&self) -> &Arc<Egress> {
        &self.egress
    }

    /// Tell forwarders what they need to send on this stream.
    fn publish(&self) {
        self.egress.publish(PeerInfo {
            ssrc: self.ssrc,
            codec: self.params.codec,
            audio_pt: self.params.audio_pt,
            event_pt: self.params.event_pt,
            send: self.params.send,
            dest: self.destination(),
            connected: self.socket_peer.is_some() && self.socket_peer == self.destination(),
            ptime: self.ptime,
            tap: self.stereo.as_ref().map(|s| s.tap().clone()),
        });
    }

    /// A re-INVITE changed the media: keep SSRC and sequence running (RFC 3264 §8 keeps the
    /// stream; only its parameters change).
    pub fn update(&mut self, params: StreamParams) {
        // Only a change in what we expect to hear restarts the silence count: the Update
        // that turns sending on at the ACK must not give a silent source more time.
        if params.remote != self.params.remote || params.receive != self.params.receive {
            self.silent_ticks = 0;
        }
        self.latch.retarget(params.remote);
        if params.event_pt.is_none() && self.inband.is_none() {
            self.inband = Some(Box::new(DtmfDetector::new()));
        }
        if params.event_pt.is_some() {
            self.inband = None;
        }
        let before = self.params.srtp;
        self.params = params;
        self.rekey(Some(before));
        self.publish();
    }

    /// The runtime connect()ed this stream's socket to `peer` (or dissolved it: None), so a
    /// forwarder may use a plain send() when that is where the stream sends.
    pub fn socket_connected(&mut self, peer: Option<SocketAddr>) {
        if self.socket_peer != peer {
            self.socket_peer = peer;
            self.publish();
        }
    }

    /// The stream is closing: a forwarder must not send on it any more.
    pub fn retire(&mut self) {
        self.egress.take_back();
        self.handed_over = false;
        self.params.send = false;
        self.publish();
    }

    /// Where packets go now: the latched source, else the SDP address.
    pub fn destination(&self) -> Option<SocketAddr> {
        self.latch.source().or(self.params.remote)
    }

    pub fn is_latched(&self) -> bool {
        self.latch.source().is_some()
    }

    /// The source we latched to, if any.
    pub fn latched(&self) -> Option<SocketAddr> {
        self.latch.source()
    }

    pub fn stats(&self) -> StreamStats {
        StreamStats {
            foreign: self.latch.dropped(),
            heard: self.is_latched(),
            unauthentic: self.unauthentic,
            received: self.loss.received(),
            lost: self.loss.lost(),
        }
    }

    /// Replace whatever plays with these prompts; the first packet carries the marker bit.
    /// Music or a bridge underneath pauses and comes back when they end.
    pub fn play(&mut self, id: u32, prompts: impl IntoIterator<Item = Arc<[u8]>>) {
        self.playing.clear();
        self.playing.extend(
            prompts
                .into_iter()
                .filter(|p| !p.is_empty())
                .map(|data| Segment { data, pos: 0 }),
        );
        self.playing.reverse();
        self.play_id = Some(id);
        self.marker = true;
    }

    /// Play these prompts in a loop, under any `play`, until `stop`, a bridge or close.
    pub fn music(&mut self, prompts: impl IntoIterator<Item = Arc<[u8]>>) {
        let prompts: Vec<Arc<[u8]>> = prompts.into_iter().filter(|p| !p.is_empty()).collect();
        self.music = (!prompts.is_empty()).then(|| {
            Box::new(Music {
                prompts,
                index: 0,
                pos: 0,
            })
        });
        // Music is what this leg hears now, not the partner (hold).
        self.bridged = false;
        self.marker = true;
    }

    pub fn is_playing_music(&self) -> bool {
        self.music.is_some()
    }

    /// End the prompt and the music (a bridge stays).
    pub fn stop(&mut self) {
        self.playing.clear();
        self.play_id = None;
        self.music = None;
    }

    /// Send a key: RFC 4733 when the stream negotiated telephone-event, else the tone pair
    /// in its codec. Keys queue; audio of its own or the partner's pauses meanwhile.
    pub fn send_digit(&mut self, digit: char) {
        if inband::frequencies(digit).is_none() {
            return;
        }
        let d = self.digits.get_or_insert_with(|| {
            Box::new(DigitOut {
                queue: VecDeque::with_capacity(8),
                current: None,
                tick: 0,
                start_ts: 0,
            })
        });
        d.queue.push_back(digit);
    }

    fn digit_busy(&self) -> bool {
        self.digits
            .as_deref()
            .is_some_and(|d| d.current.is_some() || !d.queue.is_empty())
    }

    /// Start recording the caller, with silence going out meanwhile. The whole buffer is
    /// allocated here, so packets only ever copy into it. A recording still running (its
    /// result not yet seen by the engine) is ended and handed back rather than lost.
    pub fn record(
        &mut self,
        id: u32,
        max_length: Duration,
        silence: Duration,
    ) -> Option<Recording> {
        self.stop();
        let previous = self.take_recording();
        self.recorder = Some(Box::new(Recorder::new(id, max_length, silence)));
        previous
    }

    /// The caller pressed the record node's terminator: end recording `id` now.
    pub fn stop_recording(&mut self, id: u32) -> Option<Recording> {
        if self.recorder.as_ref().is_some_and(|r| r.id() == id) {
            self.take_recording()
        } else {
            None
        }
    }

    /// End whatever is being recorded (the call is closing: a message left before hanging up
    /// is still a message).
    pub fn take_recording(&mut self) -> Option<Recording> {
        self.recorder.take().map(|r| r.finish())
    }

    pub fn is_recording(&self) -> bool {
        self.recorder.is_some()
    }

    /// Count a tick of recording; the recording once silence, a silent caller or the length
    /// limit ends it.
    pub fn tick_recording(&mut self) -> Option<Recording> {
        if self.recorder.as_deref_mut()?.tick() {
            self.take_recording()
        } else {
            None
        }
    }

    /// Record both sides of the bridge in stereo: left what this leg's phone sends, right what
    /// the partner sends. A stereo recording still running is ended and handed back.
    pub fn record_bridge(&mut self, id: u32) -> Option<StereoRecording> {
        let previous = self.take_stereo();
        self.stereo = Some(Box::new(StereoRecorder::new(id)));
        self.publish();
        previous
    }

    /// End stereo recording `id`.
    pub fn stop_stereo(&mut self, id: u32) -> Option<StereoRecording> {
        if self.stereo.as_ref().is_some_and(|r| r.id() == id) {
            self.take_stereo()
        } else {
            None
        }
    }

    pub fn take_stereo(&mut self) -> Option<StereoRecording> {
        let rec = self.stereo.take()?.finish();
        self.publish();
        Some(rec)
    }

    pub fn is_recording_bridge(&self) -> bool {
        self.stereo.is_some()
    }

    /// A tick of the stereo recording: both sides' frames in; the recording if it reached
    /// its length limit.
    pub fn tick_stereo(&mut self) -> Option<StereoRecording> {
        if self.stereo.as_deref_mut()?.tick() {
            self.take_stereo()
        } else {
            None
        }
    }

    /// Bridge to the leg whose egress is `partner`: this stream's received packets go out on
    /// it, and (unless it holds with music) this stream hears the partner through its own
    /// egress. Ends music and cuts a prompt short.
    pub fn link(&mut self, partner: Arc<Egress>) {
        self.forward = Some(Box::new(Forward::new(partner)));
        self.bridged = true;
        self.music = None;
        // A prompt still playing is cut short (its PlayDone comes on the next tick): the
        // partner is what this leg must hear now.
        self.playing.clear();
    }

    /// End the bridge: this stream sends its own again. A stereo recording of it ends too.
    pub fn unlink(&mut self) -> Option<StereoRecording> {
        self.forward = None;
        self.bridged = false;
        self.take_stereo()
    }

    /// Whether this stream forwards to a partner.
    pub fn is_linked(&self) -> bool {
        self.forward.is_some()
    }

    /// Whether this stream hears its partner (linked, not holding with music).
    pub fn is_bridged(&self) -> bool {
        self.bridged && self.forward.is_some()
    }

    /// Build this tick's packet into `out`. Returns its length (0 when we must not send, e.g.
    /// on hold, or while the partner's forwarder numbers this stream's packets), and the id of
    /// a playback that just finished. Time always advances.
    pub fn next_packet(&mut self, out: &mut [u8; PACKET_LEN]) -> (usize, Option<u32>) {
        // A key the partner's forwarder left for this leg to play in-band; dropped while
        // this leg is held, as its audio would be.
        if self.forward.is_some()
            && let Some(d) = self.egress.take_digit()
            && self.bridged
        {
            self.send_digit(d);
        }
        let own = self.digit_busy() || !self.playing.is_empty() || !self.is_bridged();
        // A partner that sends nothing for a while (muted, silence suppression, its own hold):
        // this leg gets silence from its home meanwhile, so its phone and any NAT or SBC on
        // the way still see RTP. The forwarder's next packet starts a new epoch.
        let mut keepalive = false;
        if !own && self.handed_over {
            let seq = self.egress.sequence();
            if seq == self.watch_seq {
                self.idle_ticks = self.idle_ticks.saturating_add(1);
            } else {
                self.watch_seq = seq;
                self.idle_ticks = 0;
            }
            keepalive = self.idle_ticks >= KEEPALIVE_TICKS;
        }
        if (own || keepalive) && self.handed_over {
            if let Some((seq, ts)) = self.egress.take_back() {
                self.seq = seq;
                self.timestamp = later(self.timestamp, ts);
            }
            self.handed_over = false;
            self.marker = own || self.idle_ticks == KEEPALIVE_TICKS;
        } else if !own && !self.handed_over {
            self.hand_over();
        }
        let mut finished = None;
        if self.playing.is_empty()
            && let Some(id) = self.play_id.take()
        {
            // Only when nothing was ever queued (an empty prompt list).
            finished = Some(id);
        }
        if self.handed_over {
            self.timestamp = self.timestamp.wrapping_add(SAMPLES_PER_FRAME as u32);
            self.egress.set_clock(self.timestamp);
            return (0, finished);
        }
        let sent = self.own_packet(out, finished);
        if keepalive {
            self.hand_over();
            self.idle_ticks = KEEPALIVE_TICKS;
        }
        sent
    }

    fn hand_over(&mut self) {
        self.egress.hand_over(self.seq, self.timestamp);
        self.handed_over = true;
        self.watch_seq = self.seq;
        self.idle_ticks = 0;
    }

    /// This tick's packet from the stream itself: a key, a prompt, music or silence.
    fn own_packet(
        &mut self,
        out: &mut [u8; PACKET_LEN],
        mut finished: Option<u32>,
    ) -> (usize, Option<u32>) {
        let (header, payload) = out.split_at_mut(rtp::HEADER_LEN);
        let header: &mut [u8; rtp::HEADER_LEN] = header.try_into().expect("split at HEADER_LEN");
        let ts = self.timestamp;
        self.timestamp = self.timestamp.wrapping_add(SAMPLES_PER_FRAME as u32);
        if self.digit_busy() {
            let len = self.digit_packet(ts, header, payload);
            return (len, finished);
        }
        let mut filled = false;
        while let Some(seg) = self.playing.last_mut() {
            if seg.pos + SAMPLES_PER_FRAME <= seg.data.len() {
                payload.copy_from_slice(&seg.data[seg.pos..seg.pos + SAMPLES_PER_FRAME]);
                seg.pos += SAMPLES_PER_FRAME;
                filled = true;
                if seg.pos >= seg.data.len() {
                    self.playing.pop();
                }
                break;
            }
            self.playing.pop();
        }
        if self.playing.is_empty()
            && let Some(id) = self.play_id.take()
        {
            finished = Some(id);
        }
        if !filled && let Some(frame) = self.music.as_deref_mut().and_then(Music::next_frame) {
            payload.copy_from_slice(frame);
            filled = true;
        }
        if !filled {
            payload.fill(self.params.codec.silence_byte());
        }
        if !self.params.send || self.destination().is_none() {
            // RFC 3550 §5.1: the timestamp keeps running through silence we do not send, so
            // the next talkspurt starts with the marker bit.
            self.marker = true;
            return (0, finished);
        }
        let h = RtpHeader {
            marker: self.marker,
            payload_type: self.params.audio_pt,
            sequence: self.seq,
            timestamp: ts,
            ssrc: self.ssrc,
        };
        rtp::write_header(&h, header);
        self.marker = false;
        self.seq = self.seq.wrapping_add(1);
        (PACKET_LEN, finished)
    }

    /// This tick's packet of the key being sent: an RFC 4733 event packet or 20 ms of the
    /// tone pair (or of the gap after it).
    fn digit_packet(
        &mut self,
        ts: u32,
        header: &mut [u8; rtp::HEADER_LEN],
        payload: &mut [u8],
    ) -> usize {
        let event_pt = self.params.event_pt;
        let codec = self.params.codec;
        let d = self.digits.as_deref_mut().expect("digit_busy");
        if d.current.is_none() {
            d.current = d.queue.pop_front();
            d.tick = 0;
            d.start_ts = ts;
        }
        let digit = d.current.unwrap_or('0');
        let tick = d.tick;
        d.tick += 1;
        let (len, pt, marker, at) = match event_pt {
            Some(pt) => {
                let end = tick + 1 >= EVENT_TICKS;
                let duration =
                    (u16::from(tick.min(EVENT_TICKS - 1)) + 1) * SAMPLES_PER_FRAME as u16;
                let ev = rfc4733::TelephoneEvent {
                    event: rfc4733::digit_event(digit).unwrap_or(0),
                    end,
                    volume: 10,
                    duration,
                };
                rfc4733::write(&ev, (&mut payload[..4]).try_into().expect("4 bytes"));
                if tick + 1 >= EVENT_TICKS + EVENT_END_REPEATS - 1 {
                    d.current = None;
                }
                (rtp::HEADER_LEN + 4, pt, tick == 0, d.start_ts)
            }
            None => {
                if tick < TONE_TICKS {
                    let (low, high) = inband::frequencies(digit).unwrap_or((0.0, 0.0));
                    let mut pcm = [0i16; SAMPLES_PER_FRAME];
                    for (i, s) in pcm.iter_mut().enumerate() {
                        let n = (usize::from(tick) * SAMPLES_PER_FRAME + i) as f32;
                        let w = std::f32::consts::TAU * n / SAMPLE_RATE as f32;
                        *s = (TONE_AMPLITUDE * ((w * low).sin() + (w * high).sin())) as i16;
                    }
                    codec.encode_into(&pcm, payload);
                } else {
                    payload.fill(codec.silence_byte());
                }
                if tick + 1 >= TONE_TICKS + TONE_GAP_TICKS {
                    d.current = None;
                }
                (PACKET_LEN, self.params.audio_pt, self.marker, ts)
            }
        };
        if !self.params.send || self.destination().is_none() {
            self.marker = true;
            return 0;
        }
        let h = RtpHeader {
            marker,
            payload_type: pt,
            sequence: self.seq,
            timestamp: at,
            ssrc: self.ssrc,
        };
        rtp::write_header(&h, header);
        self.seq = self.seq.wrapping_add(1);
        // Audio after an event starts a new talkspurt.
        self.marker = event_pt.is_some();
        len
    }

    /// Classify one received datagram (see [`Stream::receive`]) without forwarding it.
    pub fn on_packet(&mut self, data: &[u8], from: SocketAddr) -> Received {
        let mut buf = [0u8; 2048];
        let n = data.len().min(buf.len());
        buf[..n].copy_from_slice(&data[..n]);
        self.receive(&mut buf[..n], from, &mut |_, _| {})
    }

    /// Classify one received datagram in place. Only packets from the latched source count
    /// (and the one that latches it, see `media::latch`); all others are dropped before their
    /// payload is looked at, so a stranger's digits never reach the engine nor a partner.
    /// While linked to a partner, its audio and
    /// events are rewritten in place for the partner and handed to `send` with the partner's
    /// destination (`data` is changed then). Held (music on a linked leg), it reaches the
    /// partner no more than the partner reaches it: the agent who put a caller on hold does
    /// not hear them, and the partner's home sends it silence meanwhile.
    pub fn receive(
        &mut self,
        data: &mut [u8],
        from: SocketAddr,
        send: &mut impl FnMut(&[u8], Dest),
    ) -> Received {
        let mut out = Received::default();
        if rtp::is_rtcp(data) {
            return out;
        }
        // Authenticated before the latch sees it: a forged packet must not pick the source.
        let data = match self.unprotect.as_deref_mut() {
            None => data,
            Some(srtp) => match srtp.unprotect(data) {
                Some(n) => &mut data[..n],
                None => {
                    self.unauthentic += 1;
                    return out;
                }
            },
        };
        let Some((h, payload)) = rtp::parse(data) else {
            return out;
        };
        let payload_at = payload.as_ptr() as usize - data.as_ptr() as usize;
        let payload_len = payload.len();
        match self.latch.judge(from, h.ssrc, h.sequence) {
            Verdict::Accept => {}
            Verdict::Drop => return out,
            Verdict::Latched => {
                out.latched = Some(from);
                self.publish();
            }
        }
        self.silent_ticks = 0;
        self.loss.on_packet(h.ssrc, h.sequence);
        let payload = &data[payload_at..payload_at + payload_len];
        // Held: nothing of this leg's reaches the partner.
        let forwards = self.bridged;
        if Some(h.payload_type) == self.params.event_pt {
            if let Some(ev) = rfc4733::parse(payload) {
                out.digit = self
                    .deduper
                    .on_event(h.timestamp, h.sequence, h.ssrc, self.ticks, &ev);
            }
            if let Some(fwd) = self.forward.as_deref_mut().filter(|_| forwards)
                && !fwd.event(data, &h, payload_at, payload_len, send)
                && let Some(d) = out.digit
            {
                fwd.post_digit(d);
            }
        } else if h.payload_type == self.params.audio_pt {
            if payload_len != usize::from(self.ptime) && (1..=MAX_REPACKET).contains(&payload_len) {
                self.ptime = payload_len as u16;
                self.publish();
            }
            if self.inband.is_some() || self.recorder.is_some() || self.stereo.is_some() {
                // A ptime other than 20 ms brings other payload sizes; the recording takes all
                // of it, the detector (as ever) the first 20 ms.
                for (i, chunk) in payload.chunks(SAMPLES_PER_FRAME).enumerate() {
                    let mut pcm = [0i16; SAMPLES_PER_FRAME];
                    let pcm = &mut pcm[..chunk.len()];
                    self.params.codec.decode_into(chunk, pcm);
                    if let Some(recorder) = self.recorder.as_deref_mut() {
                        recorder.push(pcm);
                    }
                    if let Some(stereo) = self.stereo.as_deref_mut() {
                        stereo.push_left(pcm);
                    }
                    if i == 0
                        && let Some(detector) = self.inband.as_deref_mut()
                    {
                        out.digit = detector.process(pcm);
                    }
                }
            }
            if let Some(fwd) = self.forward.as_deref_mut().filter(|_| forwards) {
                fwd.audio(data, &h, payload_at, payload_len, self.params.codec, send);
            }
        }
        out
    }

    /// Count a tick without a packet; true once the silence reaches `limit` ticks, or
    /// `first_limit` while nothing at all was heard from the caller (reported once; 0 turns
    /// the first-packet limit off). The first limit is the shorter: a stream that never
    /// hears its caller is a dead call or an SDP naming a third party (issue 9). Streams we
    /// don't receive on (the caller holds) never time out.
    pub fn tick_silence(&mut self, limit: u32, first_limit: u32) -> bool {
        self.ticks = self.ticks.wrapping_add(1);
        if !self.params.receive {
            self.silent_ticks = 0;
            return false;
        }
        self.silent_ticks = self.silent_ticks.saturating_add(1);
        let limit = if self.is_latched() || first_limit == 0 {
            limit
        } else {
            limit.min(first_limit)
        };
        self.silent_ticks == limit
    }
}

#[cfg(test)]
#[path = "stream_bridge_tests.rs"]
mod bridge_tests;

#[cfg(test)]
#[path = "stream_tests.rs"]
mod tests;
