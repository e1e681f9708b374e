//! hotline: a SIP/RTP IVR server. See ARCHITECTURE.md for how the modules depend on each other.

pub mod flow;

pub mod sip;
