//! The seam between a call and its media: commands the engine issues, events it receives.
//! The runtime implements `MediaBackend` with real sockets and the pacing thread.

use std::sync::Arc;

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
    Close {
        call: CallRef,
    },
}

impl MediaCommand {
    pub fn call(&self) -> CallRef {
        match self {
            MediaCommand::Start { call, .. }
            | MediaCommand::Update { call, .. }
            | MediaCommand::Play { call, .. }
            | MediaCommand::Stop { call }
            | MediaCommand::Close { call } => *call,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MediaEvent {
    Digit { call: CallRef, digit: char },
    PlayDone { call: CallRef, id: u32 },
    RtpTimeout { call: CallRef },
}

impl MediaEvent {
    pub fn call(&self) -> CallRef {
        match *self {
            MediaEvent::Digit { call, .. }
            | MediaEvent::PlayDone { call, .. }
            | MediaEvent::RtpTimeout { call } => call,
        }
    }
}
