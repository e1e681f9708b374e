//! SIP signalling, sans-IO: the tolerant framing layer, rsip behind `message`, the RFC 3261
//! §17 transaction machines, the transaction layer (`endpoint`), dialogs (§12) and the user
//! agent core (`ua`) that the call layer and the load generator drive.

pub mod admission;
pub mod dialog;
pub mod digest;
pub mod endpoint;
pub mod framing;
pub mod message;
pub mod registrar;
pub mod transaction;
pub mod ua;
pub mod validate;

use thiserror::Error;

#[derive(Debug, Error)]
pub enum SipError {
    #[error("framing: {0}")]
    Framing(#[from] framing::FramingError),
    #[error("request line: {0}")]
    RequestLine(#[from] validate::RequestLineError),
    #[error("parse: {0}")]
    Parse(String),
}

pub use endpoint::{Peer, Transmit, TransportKind};
pub use registrar::{Account, Contact, Credentials, RegistrarConfig};
pub use ua::{CallRef, Replaces, UaConfig, UaEvent, UserAgent};

#[cfg(test)]
mod auth_tests;
#[cfg(test)]
mod rfc5118_tests;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod torture_tests;
