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
    /// Reserve a port pair for a call whose media is bridged to `beside`'s: both streams
    /// must live where the relay can hand frames from one to the other.
    fn open_beside(&mut self, call: CallRef, beside: CallRef) -> Result<u16, MediaOpenError> {
        let _ = beside;
        self.open(call)
    }
    /// Our address on the route towards `peer`, for SDP when nothing else names one.
    fn local_ip_towards(&mut self, peer: std::net::IpAddr) -> Option<std::net::IpAddr> {
        let _ = peer;
        None
    }
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
    /// Relay audio both ways between `call` and `with` (a transfer): each stream sends what
    /// the other receives, re-encoded for its own codec. Closing either ends the bridge.
    Bridge {
        call: CallRef,
        with: CallRef,
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
}

impl MediaEvent {
    pub fn call(&self) -> CallRef {
        match *self {
            MediaEvent::Digit { call, .. }
            | MediaEvent::PlayDone { call, .. }
            | MediaEvent::RtpTimeout { call }
            | MediaEvent::Recorded { call, .. } => call,
        }
    }
}
