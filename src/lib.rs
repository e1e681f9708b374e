//! hotline: a SIP/RTP IVR server. See ARCHITECTURE.md for how the modules depend on each other.

pub mod acd;
pub mod api;
pub mod call;
pub mod cdr;
pub mod config;
pub mod core;
pub mod demo;
pub mod flow;
pub mod load;
pub mod media;
pub mod report;
pub mod runtime;
pub mod sdp;
pub mod sip;
pub mod versions;
