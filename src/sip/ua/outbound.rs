//! What the engine (or a client) asks of a call: ringing, answering, rejecting, hanging up,
//! keys as INFO, new INVITEs, requests inside a dialog, REFER.

use super::*;

impl UserAgent {
    pub fn ring(&mut self, now: Instant, call_ref: CallRef) {
        let Some(call) = self
            .calls
            .get(&call_ref)
            .filter(|c| c.state == State::Incoming)
        else {
            return;
        };
        let (txn, tag) = (call.invite_txn, call.dialog.local_tag.clone());
        // RFC 3261 §12.1.1: a response that creates an (early) dialog carries a Contact.
        let mut spec = ResponseSpec::new(180);
        spec.contact = Some(call.dialog.local_contact.clone());
        self.respond_invite(now, txn, &tag, spec);
    }

    pub fn answer(&mut self, now: Instant, call_ref: CallRef, sdp: Vec<u8>) {
        let Some(call) = self
            .calls
            .get_mut(&call_ref)
            .filter(|c| c.state == State::Incoming)
        else {
            return;
        };
        call.state = State::Answered;
        let (txn, tag, contact) = (
            call.invite_txn,
            call.dialog.local_tag.clone(),
            call.dialog.local_contact.clone(),
        );
        let mut spec = ResponseSpec::new(200).header("Allow", ALLOW);
        spec.contact = Some(contact);
        spec.body = Some((SDP.to_string(), sdp));
        self.respond_invite(now, txn, &tag, spec);
    }

    /// Refuse an unanswered call with a final error response (extra headers like Retry-After).
    pub fn reject(&mut self, now: Instant, call_ref: CallRef, code: u16, extra: &[(&str, String)]) {
        let Some(call) = self
            .calls
            .get(&call_ref)
            .filter(|c| c.state == State::Incoming)
        else {
            return;
        };
        let (txn, tag) = (call.invite_txn, call.dialog.local_tag.clone());
        let mut spec = ResponseSpec::new(code);
        for (name, value) in extra {
            spec = spec.header(name, value.clone());
        }
        self.respond_invite(now, txn, &tag, spec);
        self.forget(call_ref);
    }

    pub fn answer_reinvite(&mut self, now: Instant, call_ref: CallRef, sdp: Vec<u8>) {
        let Some(call) = self.calls.get(&call_ref) else {
            return;
        };
        let Some(txn) = call.reinvite else { return };
        let (tag, contact) = (
            call.dialog.local_tag.clone(),
            call.dialog.local_contact.clone(),
        );
        let mut spec = ResponseSpec::new(200).header("Allow", ALLOW);
        spec.contact = Some(contact);
        spec.body = Some((SDP.to_string(), sdp));
        self.respond_invite(now, txn, &tag, spec);
    }

    pub fn reject_reinvite(&mut self, now: Instant, call_ref: CallRef, code: u16) {
        let Some(call) = self.calls.get_mut(&call_ref) else {
            return;
        };
        let Some(txn) = call.reinvite.take() else {
            return;
        };
        let tag = call.dialog.local_tag.clone();
        self.by_txn.remove(&txn);
        self.respond_invite(now, txn, &tag, ResponseSpec::new(code));
    }

    pub(super) fn respond_invite(
        &mut self,
        now: Instant,
        txn: TxnId,
        tag: &str,
        mut spec: ResponseSpec,
    ) {
        spec.to_tag = Some(tag.to_string());
        self.endpoint.respond(now, txn, &spec);
    }

    // ---- commands for both sides ----

    /// End the call: BYE once there is a dialog, CANCEL (client) or 480 (server) before that.
    pub fn hangup(&mut self, now: Instant, call_ref: CallRef) {
        let Some(call) = self.calls.get_mut(&call_ref) else {
            return;
        };
        match call.state {
            State::Incoming => self.reject(now, call_ref, 480, &[]),
            State::Calling => {
                call.cancel_requested = true;
                if call.provisional {
                    self.send_cancel(now, call_ref);
                }
            }
            State::Answered => call.bye_after_ack = true,
            State::Confirmed => {
                let Ok(bye) =
                    call.dialog
                        .request(&mut self.rng, Method::Bye, &call.advertised, None)
                else {
                    return;
                };
                call.state = State::Terminating;
                let peer = call.dialog.peer;
                let txn = self.endpoint.send_request(now, peer, bye);
                if let Some(call) = self.calls.get_mut(&call_ref) {
                    call.bye_txn = Some(txn);
                }
                self.by_txn.insert(txn, call_ref);
            }
            State::Terminating => {}
        }
    }

    /// RFC 3261 §9.1: no CANCEL before a provisional response (`hangup` waits for one), one
    /// CANCEL only, and an INVITE that gets no final response 64*T1 after it is over.
    pub(super) fn send_cancel(&mut self, now: Instant, call_ref: CallRef) {
        let Some(call) = self.calls.get_mut(&call_ref) else {
            return;
        };
        if call.cancel_sent {
            return;
        }
        let txn = call.invite_txn;
        let Some((invite, peer)) = self.endpoint.client_request(txn) else {
            return;
        };
        call.cancel_sent = true;
        let cancel = message::build_cancel(invite);
        self.endpoint.send_request(now, peer, cancel);
        self.cancel_deadlines
            .insert((now + self.cfg.timers.t1 * 64, call_ref, txn));
    }

    /// Send one DTMF digit by SIP INFO (application/dtmf-relay).
    pub fn send_info_digit(&mut self, now: Instant, call_ref: CallRef, digit: char) {
        let Some(call) = self
            .calls
            .get_mut(&call_ref)
            .filter(|c| c.state == State::Confirmed)
        else {
            return;
        };
        let body = format!("Signal={digit}\r\nDuration=160\r\n").into_bytes();
        let Ok(info) = call.dialog.request(
            &mut self.rng,
            Method::Info,
            &call.advertised,
            Some(("application/dtmf-relay".into(), body)),
        ) else {
            return;
        };
        let peer = call.dialog.peer;
        self.endpoint.send_request(now, peer, info);
    }

    // ---- commands for the client side ----

    pub fn invite(
        &mut self,
        now: Instant,
        to: Peer,
        from_user: &str,
        to_user: &str,
        sdp: Option<Vec<u8>>,
    ) -> Result<CallRef, SipError> {
        let call_ref = self.reserve_call();
        self.invite_as(now, call_ref, to, from_user, to_user, sdp)?;
        Ok(call_ref)
    }

    /// A call reference for an outgoing call whose offer needs it first (its RTP port is
    /// opened under that reference); pass it to `invite_as`.
    pub fn reserve_call(&mut self) -> CallRef {
        self.next_call += 1;
        CallRef(self.next_call)
    }

    pub fn invite_as(
        &mut self,
        now: Instant,
        call_ref: CallRef,
        to: Peer,
        from_user: &str,
        to_user: &str,
        sdp: Option<Vec<u8>>,
    ) -> Result<(), SipError> {
        self.invite_as_with(now, call_ref, to, from_user, to_user, sdp, Vec::new())
    }

    /// `invite_as` with extra headers (a transfer's call data for the target).
    #[allow(clippy::too_many_arguments)]
    pub fn invite_as_with(
        &mut self,
        now: Instant,
        call_ref: CallRef,
        to: Peer,
        from_user: &str,
        to_user: &str,
        sdp: Option<Vec<u8>>,
        extra: Vec<(String, String)>,
    ) -> Result<(), SipError> {
        let host = to.addr.to_string();
        let target = match to.transport {
            TransportKind::Udp => format!("sip:{to_user}@{host}"),
            TransportKind::Tcp => format!("sip:{to_user}@{host};transport=tcp"),
            TransportKind::Tls => format!("sip:{to_user}@{host};transport=tls"),
        };
        let to_uri = format!("<{target}>");
        self.start_invite(
            now, call_ref, to, target, to_uri, from_user, None, sdp, extra,
        )
    }

    /// Like `invite_as`, to a registered contact: the Request-URI is the contact's URI and
    /// the INVITE goes to the address the REGISTER came from. `call` from `reserve_call`.
    #[allow(clippy::too_many_arguments)]
    pub fn invite_contact(
        &mut self,
        now: Instant,
        call: CallRef,
        contact: &Contact,
        from_user: &str,
        from_display: Option<&str>,
        to_user: &str,
        sdp: Option<Vec<u8>>,
    ) -> Result<(), SipError> {
        let uri = rsip::Uri::try_from(contact.uri.as_str())
            .map_err(|e| SipError::Parse(format!("bad contact URI {:?}: {e}", contact.uri)))?;
        let to_uri = format!("<sip:{to_user}@{}>", uri.host_with_port);
        self.start_invite(
            now,
            call,
            contact.peer,
            contact.uri.clone(),
            to_uri,
            from_user,
            from_display,
            sdp,
            Vec::new(),
        )
    }

    #[allow(clippy::too_many_arguments)]
    pub(super) fn start_invite(
        &mut self,
        now: Instant,
        call_ref: CallRef,
        to: Peer,
        target: String,
        to_uri: String,
        from_user: &str,
        from_display: Option<&str>,
        sdp: Option<Vec<u8>>,
        extra: Vec<(String, String)>,
    ) -> Result<(), SipError> {
        let advertised = self.over(&self.cfg.advertised, to.transport);
        let sips = to.transport == TransportKind::Tls && target.starts_with("sips:");
        let local_tag = message::random_token(&mut self.rng, 10);
        let display = from_display
            .map(|d| {
                let d: String = d.chars().filter(|c| !c.is_control()).collect();
                format!("\"{}\" ", d.replace('\\', "\\\\").replace('"', "\\\""))
            })
            .unwrap_or_default();
        let dialog_seed = Dialog {
            call_id: format!(
                "{}@{}",
                message::random_token(&mut self.rng, 20),
                advertised
            ),
            local_uri: format!("{display}<sip:{from_user}@{}>;tag={local_tag}", advertised),
            local_tag,
            remote_tag: String::new(),
            remote_uri: to_uri,
            local_seq: 0,
            remote_seq: None,
            remote_target: target,
            route_set: Vec::new(),
            peer: to,
            local_contact: contact_for(from_user, &advertised, to.transport, sips),
        };
        let mut dialog = dialog_seed;
        let body = sdp.map(|s| (SDP.to_string(), s));
        let request =
            dialog.request_with(&mut self.rng, Method::Invite, &advertised, body, extra)?;
        let invite_seq = dialog.local_seq;
        let txn = self.endpoint.send_request(now, to, request);
        self.by_txn.insert(txn, call_ref);
        self.by_dialog
            .insert((dialog.call_id.clone(), dialog.local_tag.clone()), call_ref);
        self.calls.insert(
            call_ref,
            Call::new(State::Calling, dialog, txn, invite_seq, advertised.clone()),
        );
        Ok(())
    }

    /// Send a raw request inside a call's dialog (tests use it for re-INVITE and odd methods).
    pub fn send_in_dialog(
        &mut self,
        now: Instant,
        call_ref: CallRef,
        method: Method,
        body: Option<(String, Vec<u8>)>,
    ) -> Option<TxnId> {
        let call = self.calls.get_mut(&call_ref)?;
        let req = call
            .dialog
            .request(&mut self.rng, method, &call.advertised, body)
            .ok()?;
        let seq = call.dialog.local_seq;
        let peer = call.dialog.peer;
        let txn = self.endpoint.send_request(now, peer, req);
        self.by_txn.insert(txn, call_ref);
        if method == Method::Invite
            && let Some(call) = self.calls.get_mut(&call_ref)
        {
            call.reinvite_out = Some((txn, seq));
        }
        Some(txn)
    }

    /// Ask the far end to call `refer_to` (RFC 3515 REFER in the dialog); its 202 and the
    /// NOTIFYs that follow are answered like any in-dialog request.
    pub fn refer(&mut self, now: Instant, call_ref: CallRef, refer_to: &str) -> Option<TxnId> {
        let call = self.calls.get_mut(&call_ref)?;
        let extra = vec![("Refer-To".to_string(), refer_to.to_string())];
        let req = call
            .dialog
            .request_with(&mut self.rng, Method::Refer, &call.advertised, None, extra)
            .ok()?;
        let peer = call.dialog.peer;
        let txn = self.endpoint.send_request(now, peer, req);
        self.by_txn.insert(txn, call_ref);
        Some(txn)
    }

    /// For a call placed without an offer: the SDP answer the ACK will carry.
    pub fn set_ack_answer(&mut self, call_ref: CallRef, sdp: Vec<u8>) {
        if let Some(call) = self.calls.get_mut(&call_ref) {
            call.ack_body = Some(sdp);
        }
    }

    /// The dialog a Replaces header names (RFC 3891). Phones name it from their own side,
    /// so the tags are tried both ways round.
    pub fn find_replaced(&self, r: &Replaces) -> Option<CallRef> {
        [(&r.to_tag, &r.from_tag), (&r.from_tag, &r.to_tag)]
            .into_iter()
            .find_map(|(local, remote)| {
                let call_ref = *self.by_dialog.get(&(r.call_id.clone(), local.clone()))?;
                (self.calls.get(&call_ref)?.dialog.remote_tag == *remote).then_some(call_ref)
            })
    }

    pub fn call_id(&self, call_ref: CallRef) -> Option<&str> {
        self.calls.get(&call_ref).map(|c| c.dialog.call_id.as_str())
    }

    pub(super) fn forget(&mut self, call_ref: CallRef) {
        if let Some(call) = self.calls.remove(&call_ref) {
            self.by_dialog
                .remove(&(call.dialog.call_id.clone(), call.dialog.local_tag.clone()));
            self.by_txn.retain(|_, c| *c != call_ref);
        }
    }
}
