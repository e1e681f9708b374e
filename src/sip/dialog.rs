//! RFC 3261 §12: the state a dialog keeps, and the requests it builds.

use super::SipError;
use super::endpoint::{Peer, TransportKind};
use super::message::{self, Method, Request, RequestSpec};

#[derive(Debug, Clone)]
pub struct Dialog {
    pub call_id: String,
    pub local_tag: String,
    pub remote_tag: String,
    /// From/To header values as this side sends them (with tags).
    pub local_uri: String,
    pub remote_uri: String,
    pub local_seq: u32,
    pub remote_seq: Option<u32>,
    pub remote_target: String,
    pub route_set: Vec<String>,
    /// Where in-dialog requests go: the flow the dialog was made on. Sending to the transport
    /// source rather than the Contact keeps dialogs working through NAT.
    pub peer: Peer,
    pub local_contact: String,
}

impl Dialog {
    /// RFC 3261 §12.2.2: a request whose CSeq is lower than the last one is out of order.
    pub fn accept_remote_seq(&mut self, seq: u32) -> bool {
        match self.remote_seq {
            Some(last) if seq < last => false,
            _ => {
                self.remote_seq = Some(seq);
                true
            }
        }
    }

    /// `rng` is the UA's: it makes the branch.
    pub fn request(
        &mut self,
        rng: &mut fastrand::Rng,
        method: Method,
        via_host: &str,
        body: Option<(String, Vec<u8>)>,
    ) -> Result<Request, SipError> {
        self.request_with(rng, method, via_host, body, Vec::new())
    }

    /// `request` with extra headers (Event, Subscription-State for a NOTIFY).
    pub fn request_with(
        &mut self,
        rng: &mut fastrand::Rng,
        method: Method,
        via_host: &str,
        body: Option<(String, Vec<u8>)>,
        extra: Vec<(String, String)>,
    ) -> Result<Request, SipError> {
        if method != Method::Ack && method != Method::Cancel {
            self.local_seq += 1;
        }
        let spec = RequestSpec {
            method,
            uri: self.remote_target.clone(),
            via_host: via_host.to_string(),
            transport: self.peer.transport.via_name(),
            branch: message::new_branch(rng),
            from: self.local_uri.clone(),
            to: self.remote_uri.clone(),
            call_id: self.call_id.clone(),
            cseq: self.local_seq,
            routes: self.route_set.clone(),
            contact: Some(self.local_contact.clone()),
            body,
            extra,
        };
        message::build_request(&spec)
    }

    /// RFC 3261 §13.2.2.4: the ACK for a 2xx is a new request with the INVITE's CSeq number.
    pub fn ack(
        &self,
        rng: &mut fastrand::Rng,
        invite_seq: u32,
        via_host: &str,
        body: Option<(String, Vec<u8>)>,
    ) -> Result<Request, SipError> {
        let spec = RequestSpec {
            method: Method::Ack,
            uri: self.remote_target.clone(),
            via_host: via_host.to_string(),
            transport: self.peer.transport.via_name(),
            branch: message::new_branch(rng),
            from: self.local_uri.clone(),
            to: self.remote_uri.clone(),
            call_id: self.call_id.clone(),
            cseq: invite_seq,
            routes: self.route_set.clone(),
            contact: None,
            body,
            extra: Vec::new(),
        };
        message::build_request(&spec)
    }
}

/// Our Contact for a dialog. A `sips:` dialog (RFC 5630) gets a `sips:` Contact, which
/// implies TLS; otherwise the transport is named unless it is UDP.
pub fn contact_for(user: &str, host: &str, transport: TransportKind, sips: bool) -> String {
    if sips {
        return format!("<sips:{user}@{host}>");
    }
    match transport {
        TransportKind::Udp => format!("<sip:{user}@{host}>"),
        TransportKind::Tcp => format!("<sip:{user}@{host};transport=tcp>"),
        TransportKind::Tls => format!("<sip:{user}@{host};transport=tls>"),
    }
}
