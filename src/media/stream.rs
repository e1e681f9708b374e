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
use super::recorder::{Recorder, Recording, StereoRecorder, StereoRecording};
use super::rfc4733::{self, DigitDeduper};
use super::rtp::{self, RtpHeader};
use super::{Codec, SAMPLE_RATE, SAMPLES_PER_FRAME};

/// One RTP packet of 20 ms G.711: 12 bytes of header and 160 of payload.
pub const PACKET_LEN: usize = rtp::HEADER_LEN + SAMPLES_PER_FRAME;

/// Valid RTP packets in a row, from one address and with one SSRC, before we latch to a
/// source whose IP the SDP did not announce (a phone behind NAT announces its private
/// address). One stray or spoofed packet must not take the call's media; a real stream sends
/// this many in 60 ms.
pub const FOREIGN_LATCH_PACKETS: u8 = 3;

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
    /// Where to send until we latch to where the caller's RTP really comes from; its IP is
    /// also the one trusted to latch with a single packet.
    pub remote: Option<SocketAddr>,
    pub send: bool,
    pub receive: bool,
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
    /// The address the caller's RTP comes from; once known, we send there (symmetric RTP)
    /// and hear nobody else.
    latched: Option<SocketAddr>,
    /// A source off the SDP address working its way to `FOREIGN_LATCH_PACKETS`.
    candidate: Option<Candidate>,
    /// Ticks since the last packet from the caller.
    silent_ticks: u32,
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
}

#[derive(Debug, Clone, Copy)]
struct Candidate {
    from: SocketAddr,
    ssrc: u32,
    count: u8,
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
            latched: None,
            candidate: None,
            silent_ticks: 0,
            recorder: None,
            stereo: None,
            ptime: 0,
            socket_peer: None,
            watch_seq: 0,
            idle_ticks: 0,
        };
        s.publish();
        s
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
        if params.remote != self.params.remote {
            self.latched = None;
            self.candidate = None;
        }
        if params.event_pt.is_none() && self.inband.is_none() {
            self.inband = Some(Box::new(DtmfDetector::new()));
        }
        if params.event_pt.is_some() {
            self.inband = None;
        }
        self.params = params;
        self.silent_ticks = 0;
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
        self.latched.or(self.params.remote)
    }

    pub fn is_latched(&self) -> bool {
        self.latched.is_some()
    }

    /// The source we latched to, if any.
    pub fn latched(&self) -> Option<SocketAddr> {
        self.latched
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
        if self.forward.is_some()
            && let Some(d) = self.egress.take_digit()
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

    /// Classify one received datagram in place. Until we latch, only the packet that latches
    /// counts; afterwards only the latched source's do (packets from others that were queued
    /// before the socket was connected are ignored). While linked to a partner, its audio and
    /// events are rewritten in place for the partner and handed to `send` with the partner's
    /// destination (`data` is changed then).
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
        let Some((h, payload)) = rtp::parse(data) else {
            return out;
        };
        let payload_at = payload.as_ptr() as usize - data.as_ptr() as usize;
        let payload_len = payload.len();
        match self.latched {
            Some(addr) if addr == from => {}
            Some(_) => return out,
            None => {
                if !self.latch_candidate(from, h.ssrc) {
                    return out;
                }
                self.latched = Some(from);
                out.latched = Some(from);
                self.publish();
            }
        }
        self.silent_ticks = 0;
        let payload = &data[payload_at..payload_at + payload_len];
        if Some(h.payload_type) == self.params.event_pt {
            if let Some(ev) = rfc4733::parse(payload) {
                out.digit = self.deduper.on_event(h.timestamp, &ev);
            }
            if let Some(fwd) = self.forward.as_deref_mut()
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
            if let Some(fwd) = self.forward.as_deref_mut() {
                fwd.audio(data, &h, payload_at, payload_len, self.params.codec, send);
            }
        }
        out
    }

    /// Whether a valid RTP packet from `from` latches the stream: at once from the IP the SDP
    /// announced, else after `FOREIGN_LATCH_PACKETS` in a row from one address with one SSRC.
    fn latch_candidate(&mut self, from: SocketAddr, ssrc: u32) -> bool {
        let announced = self.params.remote.map(|r| r.ip().to_canonical());
        if announced == Some(from.ip().to_canonical()) {
            self.candidate = None;
            return true;
        }
        let count = match self.candidate.as_mut() {
            Some(c) if c.from == from && c.ssrc == ssrc => {
                c.count = c.count.saturating_add(1);
                c.count
            }
            _ => {
                self.candidate = Some(Candidate {
                    from,
                    ssrc,
                    count: 1,
                });
                1
            }
        };
        if count >= FOREIGN_LATCH_PACKETS {
            self.candidate = None;
            return true;
        }
        false
    }

    /// Count a tick without a packet; true once the silence reaches `limit` ticks (reported
    /// once). Streams we don't receive on (the caller holds) never time out.
    pub fn tick_silence(&mut self, limit: u32) -> bool {
        if !self.params.receive {
            self.silent_ticks = 0;
            return false;
        }
        self.silent_ticks = self.silent_ticks.saturating_add(1);
        self.silent_ticks == limit
    }
}

#[cfg(test)]
#[path = "stream_bridge_tests.rs"]
mod bridge_tests;

#[cfg(test)]
mod tests {
    use super::*;

    fn params() -> StreamParams {
        StreamParams {
            codec: Codec::Pcmu,
            audio_pt: 0,
            event_pt: Some(101),
            remote: Some("127.0.0.1:4000".parse().unwrap()),
            send: true,
            receive: true,
        }
    }

    #[test]
    fn prompts_play_frame_by_frame_with_continuous_seq_and_timestamps() {
        let mut s = Stream::new(params(), 0x1234, 65534, u32::MAX - 159);
        let prompt: Arc<[u8]> = (0..480)
            .map(|i| (i % 200) as u8)
            .collect::<Vec<u8>>()
            .into();
        s.play(7, [prompt.clone()]);
        let mut buf = [0u8; PACKET_LEN];
        let mut seen = Vec::new();
        for _ in 0..5 {
            let (len, done) = s.next_packet(&mut buf);
            assert_eq!(len, PACKET_LEN);
            let (h, payload) = rtp::parse(&buf).unwrap();
            seen.push((h.sequence, h.timestamp, h.marker, payload[0], done));
        }
        assert_eq!(seen[0], (65534, u32::MAX - 159, true, 0, None));
        assert_eq!(seen[1], (65535, 0, false, 160, None));
        assert_eq!(
            seen[2],
            (0, 160, false, 120, Some(7)),
            "done with the last frame"
        );
        assert_eq!(seen[3].3, 0xFF, "silence after the prompt");
        assert!(!seen[3].2);
        s.play(8, [prompt]);
        let (_, _) = s.next_packet(&mut buf);
        assert!(
            rtp::parse(&buf).unwrap().0.marker,
            "marker at each talkspurt"
        );
    }

    #[test]
    fn hold_sends_nothing_but_time_runs_and_marker_follows() {
        let mut s = Stream::new(params(), 1, 0, 0);
        let mut buf = [0u8; PACKET_LEN];
        s.next_packet(&mut buf);
        s.update(StreamParams {
            send: false,
            ..params()
        });
        assert_eq!(s.next_packet(&mut buf).0, 0);
        s.update(params());
        assert_eq!(s.next_packet(&mut buf).0, PACKET_LEN);
        let (h, _) = rtp::parse(&buf).unwrap();
        assert_eq!((h.sequence, h.timestamp, h.marker), (1, 320, true));
    }

    #[test]
    fn latching_rfc4733_and_rtcp() {
        let mut s = Stream::new(params(), 1, 0, 0);
        let from: SocketAddr = "127.0.0.1:5555".parse().unwrap();
        let mut pkt = [0u8; 16];
        rtp::write_header(
            &RtpHeader {
                marker: true,
                payload_type: 101,
                sequence: 1,
                timestamp: 800,
                ssrc: 9,
            },
            (&mut pkt[..12]).try_into().unwrap(),
        );
        rfc4733::write(
            &rfc4733::TelephoneEvent {
                event: 5,
                end: false,
                volume: 10,
                duration: 160,
            },
            (&mut pkt[12..]).try_into().unwrap(),
        );
        let r = s.on_packet(&pkt, from);
        assert_eq!(
            r,
            Received {
                digit: Some('5'),
                latched: Some(from),
            }
        );
        assert_eq!(s.destination(), Some(from));
        assert_eq!(
            s.on_packet(&pkt, from),
            Received::default(),
            "same event again: no new digit"
        );
        let rtcp = [0x80u8, 200, 0, 6, 0, 0, 0, 1];
        assert_eq!(
            s.on_packet(&rtcp, "127.0.0.1:9".parse().unwrap()),
            Received::default()
        );
        assert_eq!(s.on_packet(b"garbage!!!!!!!!!!", from), Received::default());
    }

    /// A telephone-event packet (key 5, not yet ended) from `ssrc`.
    fn key5(ssrc: u32, sequence: u16) -> [u8; 16] {
        let mut pkt = [0u8; 16];
        rtp::write_header(
            &RtpHeader {
                marker: sequence == 0,
                payload_type: 101,
                sequence,
                timestamp: 800,
                ssrc,
            },
            (&mut pkt[..12]).try_into().unwrap(),
        );
        rfc4733::write(
            &rfc4733::TelephoneEvent {
                event: 5,
                end: false,
                volume: 10,
                duration: 160 * (sequence + 1),
            },
            (&mut pkt[12..]).try_into().unwrap(),
        );
        pkt
    }

    fn params_from(remote: &str) -> StreamParams {
        StreamParams {
            remote: Some(remote.parse().unwrap()),
            ..params()
        }
    }

    #[test]
    fn a_stray_packet_from_elsewhere_neither_latches_nor_counts() {
        let sdp: SocketAddr = "192.0.2.10:4000".parse().unwrap();
        let mut s = Stream::new(params_from("192.0.2.10:4000"), 1, 0, 0);
        let stray: SocketAddr = "198.51.100.7:5000".parse().unwrap();
        assert!(!(0..9).any(|_| s.tick_silence(10)));
        assert_eq!(s.on_packet(&key5(66, 0), stray), Received::default());
        assert_eq!(
            s.destination(),
            Some(sdp),
            "still sending to the SDP address"
        );
        assert!(!s.is_latched());
        assert!(
            s.tick_silence(10),
            "a stranger does not keep the call alive"
        );
        // The announced IP latches with one packet, from whatever port, and its key counts.
        let caller: SocketAddr = "192.0.2.10:4002".parse().unwrap();
        assert_eq!(
            s.on_packet(&key5(9, 0), caller),
            Received {
                digit: Some('5'),
                latched: Some(caller),
            }
        );
        assert_eq!(s.destination(), Some(caller));
        // Once latched, nobody else is heard, however often they send.
        for seq in 0..5 {
            assert_eq!(s.on_packet(&key5(66, seq), stray), Received::default());
        }
        assert_eq!(s.latched(), Some(caller));
    }

    #[test]
    fn a_source_off_the_sdp_address_latches_after_three_in_a_row_with_one_ssrc() {
        let mut s = Stream::new(params_from("10.0.0.5:4000"), 1, 0, 0);
        let nat: SocketAddr = "203.0.113.5:6000".parse().unwrap();
        let other: SocketAddr = "198.51.100.7:5000".parse().unwrap();
        let rtcp = [0x80u8, 200, 0, 6, 0, 0, 0, 1];
        assert_eq!(s.on_packet(&key5(9, 0), nat), Received::default());
        assert_eq!(s.on_packet(&key5(9, 1), nat), Received::default());
        // Another source breaks the run, and so does another SSRC from the same address.
        assert_eq!(s.on_packet(&key5(66, 0), other), Received::default());
        assert_eq!(s.on_packet(&key5(9, 2), nat), Received::default());
        assert_eq!(s.on_packet(&key5(10, 3), nat), Received::default());
        assert_eq!(s.on_packet(&key5(9, 4), nat), Received::default());
        assert_eq!(s.on_packet(&key5(9, 5), nat), Received::default());
        // What is not valid RTP does not count either way.
        s.on_packet(&rtcp, other);
        s.on_packet(b"garbage!!!!!!!!!!", other);
        assert!(!s.is_latched());
        assert_eq!(
            s.on_packet(&key5(9, 6), nat),
            Received {
                digit: Some('5'),
                latched: Some(nat),
            },
            "third in a row"
        );
        assert_eq!(s.destination(), Some(nat));
        assert_eq!(s.on_packet(&key5(9, 7), nat), Received::default());
    }

    #[test]
    fn new_sdp_address_starts_latching_over() {
        let mut s = Stream::new(params_from("192.0.2.10:4000"), 1, 0, 0);
        let nat: SocketAddr = "203.0.113.5:6000".parse().unwrap();
        s.on_packet(&key5(7, 0), nat);
        s.on_packet(&key5(7, 1), nat);
        s.update(params_from("192.0.2.20:4000"));
        assert_eq!(
            s.on_packet(&key5(7, 2), nat),
            Received::default(),
            "the run before the update does not carry over"
        );
        let caller: SocketAddr = "192.0.2.20:4000".parse().unwrap();
        assert_eq!(s.on_packet(&key5(9, 0), caller).latched, Some(caller));
        s.update(params_from("192.0.2.20:4000"));
        assert_eq!(s.latched(), Some(caller), "same address: latch kept");
        s.update(params_from("192.0.2.30:4000"));
        assert_eq!(s.latched(), None);
        assert_eq!(s.destination(), "192.0.2.30:4000".parse().ok());
    }

    #[test]
    fn silence_timeout_fires_once_and_not_on_hold() {
        let mut s = Stream::new(params(), 1, 0, 0);
        assert!(!(0..9).any(|_| s.tick_silence(10)));
        assert!(s.tick_silence(10));
        assert!(!s.tick_silence(10));
        s.update(StreamParams {
            receive: false,
            ..params()
        });
        assert!(!(0..100).any(|_| s.tick_silence(10)));
    }

    /// A PCMU packet from the caller carrying `samples`.
    fn audio(sequence: u16, samples: &[i16; SAMPLES_PER_FRAME]) -> [u8; PACKET_LEN] {
        let mut pkt = [0u8; PACKET_LEN];
        rtp::write_header(
            &RtpHeader {
                marker: false,
                payload_type: 0,
                sequence,
                timestamp: u32::from(sequence) * 160,
                ssrc: 9,
            },
            (&mut pkt[..12]).try_into().unwrap(),
        );
        Codec::Pcmu.encode_into(samples, &mut pkt[12..]);
        pkt
    }

    fn tone(phase: usize) -> [i16; SAMPLES_PER_FRAME] {
        std::array::from_fn(|i| {
            let t = (phase * SAMPLES_PER_FRAME + i) as f32 / 8000.0;
            ((t * 440.0 * std::f32::consts::TAU).sin() * 8000.0) as i16
        })
    }

    const CALLER: &str = "127.0.0.1:5555";

    /// One pacing tick of a recording stream: a packet out, `packet` in (if any), the tick
    /// counted.
    fn tick(s: &mut Stream, packet: Option<&[u8]>) -> Option<Recording> {
        let mut out = [0u8; PACKET_LEN];
        s.next_packet(&mut out);
        if let Some(p) = packet {
            s.on_packet(p, CALLER.parse().unwrap());
        }
        s.tick_recording()
    }

    #[test]
    fn recording_appends_the_decoded_audio_of_each_packet() {
        let mut s = Stream::new(params(), 1, 0, 0);
        assert!(
            s.record(3, Duration::from_secs(10), Duration::from_secs(2))
                .is_none()
        );
        let mut want = Vec::new();
        for n in 0..5 {
            let frame = tone(n);
            let pkt = audio(n as u16, &frame);
            want.extend(pkt[12..].iter().map(|b| Codec::Pcmu.decode(*b)));
            assert!(tick(&mut s, Some(&pkt)).is_none());
        }
        let rec = s.stop_recording(3).expect("the key ends it");
        assert_eq!((rec.id, rec.heard), (3, true));
        assert_eq!(rec.samples, want);
        assert!(!s.is_recording());
    }

    #[test]
    fn recording_ends_on_silence_after_speech_with_the_tail_trimmed() {
        let mut s = Stream::new(params(), 1, 0, 0);
        s.record(1, Duration::from_secs(30), Duration::from_millis(400));
        for n in 0..25 {
            assert!(tick(&mut s, Some(&audio(n, &tone(n.into())))).is_none());
        }
        let quiet = audio(0, &[0; SAMPLES_PER_FRAME]);
        let mut ended = None;
        for n in 1..=30 {
            if let Some(rec) = tick(&mut s, Some(&quiet)) {
                ended = Some((n, rec));
                break;
            }
        }
        let (after, rec) = ended.expect("silence ends the recording");
        assert_eq!(after, 20, "400 ms of quiet ticks");
        assert!(rec.heard);
        assert_eq!(
            rec.samples.len(),
            25 * 160 + crate::media::recorder::KEEP_AFTER_SOUND,
            "0.3 s of the silence kept"
        );
    }

    #[test]
    fn a_caller_who_sends_nothing_is_heard_after_the_silence_limit_as_nothing() {
        let mut s = Stream::new(params(), 1, 0, 0);
        s.record(1, Duration::from_secs(30), Duration::from_millis(200));
        let ended = (1..=20).find_map(|n| tick(&mut s, None).map(|r| (n, r)));
        let (n, rec) = ended.expect("ends");
        assert_eq!(n, 10);
        assert!(!rec.heard);
        assert!(rec.samples.is_empty());
        // Sending silence is the same as sending nothing.
        s.record(2, Duration::from_secs(30), Duration::from_millis(200));
        let quiet = audio(0, &[0; SAMPLES_PER_FRAME]);
        let rec = (0..20).find_map(|_| tick(&mut s, Some(&quiet))).unwrap();
        assert_eq!((rec.id, rec.heard), (2, false));
    }

    #[test]
    fn recording_ends_at_max_length_even_while_the_caller_talks() {
        let mut s = Stream::new(params(), 1, 0, 0);
        s.record(1, Duration::from_millis(200), Duration::from_secs(5));
        let ended =
            (0..20u16).find_map(|n| tick(&mut s, Some(&audio(n, &tone(n.into())))).map(|r| (n, r)));
        let (n, rec) = ended.expect("ends");
        assert_eq!(n, 9, "the tenth tick");
        assert_eq!(rec.samples.len(), 1600);
        // Ticks count too: packets that stop coming do not stretch the limit.
        s.record(2, Duration::from_millis(200), Duration::from_secs(5));
        tick(&mut s, Some(&audio(0, &tone(0))));
        let n = (2..=20).find(|_| tick(&mut s, None).is_some());
        assert_eq!(n, Some(10));
    }

    #[test]
    fn stop_recording_ends_only_the_recording_it_names() {
        let mut s = Stream::new(params(), 1, 0, 0);
        s.record(4, Duration::from_secs(10), Duration::from_secs(2));
        tick(&mut s, Some(&audio(0, &tone(0))));
        assert!(s.stop_recording(3).is_none(), "a late key for an older one");
        assert!(s.is_recording());
        let rec = s.stop_recording(4).unwrap();
        assert_eq!(rec.samples.len(), 160);
        assert!(s.stop_recording(4).is_none());
        assert!(tick(&mut s, None).is_none());
    }

    #[test]
    fn a_closing_stream_hands_over_what_it_recorded() {
        let mut s = Stream::new(params(), 1, 0, 0);
        assert!(s.take_recording().is_none());
        s.record(1, Duration::from_secs(10), Duration::from_secs(2));
        tick(&mut s, Some(&audio(0, &tone(0))));
        let rec = s.take_recording().unwrap();
        assert!(rec.heard);
        // A new recording over an unfinished one hands the old one back too.
        s.record(2, Duration::from_secs(10), Duration::from_secs(2));
        tick(&mut s, Some(&audio(1, &tone(1))));
        let old = s.record(3, Duration::from_secs(10), Duration::from_secs(2));
        assert_eq!(old.map(|r| (r.id, r.heard)), Some((2, true)));
    }

    #[test]
    fn packets_never_allocate_or_move_the_buffer() {
        let mut s = Stream::new(params(), 1, 0, 0);
        s.record(1, Duration::from_secs(1), Duration::from_secs(5));
        let (cap, at) = {
            let r = s.recorder.as_deref().unwrap();
            (r.capacity(), r.buffer_at())
        };
        assert!(cap >= 8000);
        for n in 0..60u16 {
            s.on_packet(&audio(n, &tone(n.into())), CALLER.parse().unwrap());
            let r = s.recorder.as_deref().unwrap();
            assert_eq!((r.capacity(), r.buffer_at()), (cap, at), "packet {n}");
        }
        let rec = s.take_recording().unwrap();
        assert_eq!(rec.samples.len(), 8000, "one second, then no more");
        assert_eq!(rec.samples.as_ptr(), at, "the buffer moves out as it is");
    }

    #[test]
    fn events_rtcp_and_other_payload_types_are_not_recorded() {
        let mut s = Stream::new(params(), 1, 0, 0);
        s.record(1, Duration::from_secs(10), Duration::from_secs(2));
        let from: SocketAddr = CALLER.parse().unwrap();
        let got = s.on_packet(&key5(9, 0), from);
        assert_eq!(got.digit, Some('5'), "keys still come through");
        s.on_packet(&key5(9, 1), from);
        s.on_packet(&[0x80u8, 200, 0, 6, 0, 0, 0, 1], from);
        let mut cn = audio(2, &tone(0));
        cn[1] = 13;
        s.on_packet(&cn, from);
        let rec = s.take_recording().unwrap();
        assert!(!rec.heard);
        assert!(rec.samples.is_empty());
    }

    #[test]
    fn a_recording_stream_sends_silence_in_step() {
        let mut s = Stream::new(params(), 1, 10, 0);
        s.play(1, [Arc::from(vec![7u8; 1600])]);
        let mut buf = [0u8; PACKET_LEN];
        s.next_packet(&mut buf);
        s.record(1, Duration::from_secs(10), Duration::from_secs(2));
        for n in 0..3 {
            let (len, done) = s.next_packet(&mut buf);
            assert_eq!(
                (len, done),
                (PACKET_LEN, None),
                "the prompt is cut, not finished"
            );
            let (h, payload) = rtp::parse(&buf).unwrap();
            assert_eq!((h.sequence, h.timestamp), (11 + n, 160 * (1 + n as u32)));
            assert!(payload.iter().all(|b| *b == 0xFF));
        }
    }

    #[test]
    fn packets_of_30_ms_are_recorded_whole() {
        let mut s = Stream::new(params(), 1, 0, 0);
        s.record(1, Duration::from_secs(10), Duration::from_secs(2));
        let mut pkt = [0u8; 12 + 240];
        pkt[..12].copy_from_slice(&audio(0, &tone(0))[..12]);
        pkt[12..].fill(Codec::Pcmu.encode(1000));
        s.on_packet(&pkt, CALLER.parse().unwrap());
        let rec = s.take_recording().unwrap();
        assert_eq!(rec.samples.len(), 240);
        assert!(rec.heard);
    }
}
