//! The seam between a call and its media: commands the engine issues, events it receives.
//! The runtime implements `MediaBackend` with real sockets and the pacing thread.

use std::sync::Arc;
use std::time::Duration;

use crate::media::stream::StreamParams;
use crate::sip::CallRef;

#[derive(Debug, thiserror::Error)]
pub enum MediaOpenError {
    #[error("no free RTP port pair in the configured range")]
    NoPorts,
    #[error("media engine is not running")]
    Closed,
}

pub trait MediaBackend {
    /// Reserve an RTP port pair for a call; returns the RTP port.
    fn open(&mut self, call: CallRef) -> Result<u16, MediaOpenError>;
    fn command(&mut self, cmd: MediaCommand);
    /// Reserve a port pair for a call whose media will be bridged to `beside`'s, on the same
    /// media thread if the backend has several. Optional: `Bridge` works across threads.
    fn open_beside(&mut self, call: CallRef, beside: CallRef) -> Result<u16, MediaOpenError> {
        let _ = beside;
        self.open(call)
    }
    /// Our address on the route towards `peer`, for SDP when nothing else names one.
    fn local_ip_towards(&mut self, peer: std::net::IpAddr) -> Option<std::net::IpAddr> {
        let _ = peer;
        None
    }
    /// The media threads' counters since start (for metrics); zeros without threads.
    fn totals(&self) -> MediaTotals {
        MediaTotals::default()
    }
}

/// What the media threads counted since start, as they last published it (once a second).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MediaTotals {
    /// RTP packets received from the phones, and lost on the way (by their sequence numbers;
    /// never decreasing).
    pub rtp_received: u64,
    pub rtp_lost: u64,
    /// Pacing ticks whose sends began over `media::pacing::LATE` after their deadline, and
    /// ticks skipped after a stall.
    pub late_ticks: u64,
    pub skipped_ticks: u64,
}

#[derive(Debug, Clone)]
pub enum MediaCommand {
    Start {
        call: CallRef,
        params: StreamParams,
    },
    Update {
        call: CallRef,
        params: StreamParams,
    },
    Play {
        call: CallRef,
        id: u32,
        prompts: Vec<Arc<[u8]>>,
    },
    Stop {
        call: CallRef,
    },
    /// Record the caller until `silence` after speech, `max_length`, or `StopRecording`; the
    /// result comes back as `MediaEvent::Recorded`, also when the call closes first.
    Record {
        call: CallRef,
        /// The flow's `TaskId`.
        id: u32,
        max_length: Duration,
        silence: Duration,
    },
    StopRecording {
        call: CallRef,
        id: u32,
    },
    /// Bridge `call` and `with` both ways (a transfer, an agent call); the two streams may live
    /// on different media threads. Each received packet goes out on the other leg in the
    /// receive pass, its header rewritten (the other leg's SSRC, payload type, and its own
    /// running sequence numbers and timestamps, marker on the first packet after a switch):
    /// whole, whatever its packet time, when both legs use the same codec and packet time;
    /// transcoded per packet between PCMU and PCMA; re-packetized to the receiving leg's packet
    /// time (the size its phone sends) when those differ. RFC 4733 keys cross as events when
    /// both legs negotiated telephone-event, else the receiving leg plays them in-band itself
    /// (the engine need not send `SendDigit` for them; `Digit` events still come from the leg
    /// that received them). A `Play` or `SendDigit` on a bridged leg interrupts what it hears
    /// from the other, which resumes after. While the other sends nothing for 200 ms, a leg
    /// gets silence (its RTP never stops). Ends music on both legs and cuts a prompt still
    /// playing short (its `PlayDone` comes). A bridge of either leg to a third ends first;
    /// `Bridge` again on a pair already bridged (back from hold) only resumes it. Closing
    /// either leg or `Unbridge` ends the bridge.
    Bridge {
        call: CallRef,
        with: CallRef,
    },
    /// End the bridge `call` is in, both ways: each leg goes back to sending its own
    /// (silence, or what it is told next). Ends a `RecordBridge` (its `RecordedStereo` comes).
    Unbridge {
        call: CallRef,
    },
    /// Waiting music: play `prompts` in a loop until `Stop`, `Bridge` or `Close`. A `Play`
    /// during the music interrupts it (with its `PlayDone` as ever) and the music then resumes
    /// where it paused, so position announcements are just `Play`s. On a bridged leg this is
    /// hold until the next `Bridge`: the leg hears music instead of its partner, and nothing
    /// of its own (audio or keys) reaches the partner, whose home sends it silence. With no
    /// (non-empty) prompts: silence, and on a bridged leg still hold.
    Music {
        call: CallRef,
        prompts: Vec<Arc<[u8]>>,
    },
    /// Send a DTMF key (`0-9*#A-D`) to this leg's phone: an RFC 4733 event (100 ms, the end
    /// packet three times) if telephone-event was negotiated, else the tone pair in-band
    /// (100 ms, then 60 ms of silence). Keys queue; other keys are ignored.
    SendDigit {
        call: CallRef,
        digit: char,
    },
    /// Record both directions of the bridge `call` is in as 8 kHz stereo: left what `call`'s
    /// phone sent, right what the partner's sent, one 20 ms frame of each per tick (silence
    /// for a side that sent nothing). Ends on `StopRecording` with this id, `Unbridge`, or
    /// `Close` of `call` (or 4 hours), as `MediaEvent::RecordedStereo`; at once (empty) when
    /// `call` is not bridged.
    RecordBridge {
        call: CallRef,
        id: u32,
    },
    Close {
        call: CallRef,
    },
}

impl MediaCommand {
    pub fn call(&self) -> CallRef {
        match self {
            MediaCommand::Start { call, .. }
            | MediaCommand::Bridge { call, .. }
            | MediaCommand::Unbridge { call }
            | MediaCommand::Music { call, .. }
            | MediaCommand::SendDigit { call, .. }
            | MediaCommand::RecordBridge { call, .. }
            | MediaCommand::Update { call, .. }
            | MediaCommand::Play { call, .. }
            | MediaCommand::Record { call, .. }
            | MediaCommand::StopRecording { call, .. }
            | MediaCommand::Stop { call }
            | MediaCommand::Close { call } => *call,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MediaEvent {
    Digit {
        call: CallRef,
        digit: char,
    },
    PlayDone {
        call: CallRef,
        id: u32,
    },
    RtpTimeout {
        call: CallRef,
    },
    /// A recording ended: 8 kHz mono samples, trailing silence trimmed; `heard` is false
    /// when the caller made no sound louder than silence (and `samples` is then empty).
    Recorded {
        call: CallRef,
        id: u32,
        samples: Vec<i16>,
        heard: bool,
    },
    /// A `RecordBridge` ended: 8 kHz samples interleaved left, right (left what `call`'s phone
    /// sent, right what its partner's sent); the engine writes the WAV
    /// (`media::recorder::write_wav_channels(.., 2)`).
    RecordedStereo {
        call: CallRef,
        id: u32,
        samples: Vec<i16>,
    },
}

impl MediaEvent {
    pub fn call(&self) -> CallRef {
        match *self {
            MediaEvent::Digit { call, .. }
            | MediaEvent::PlayDone { call, .. }
            | MediaEvent::RtpTimeout { call }
            | MediaEvent::Recorded { call, .. }
            | MediaEvent::RecordedStereo { call, .. } => call,
        }
    }
}
