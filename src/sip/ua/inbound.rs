//! What arrives: datagrams and timers through the transaction layer, requests inside and
//! outside dialogs (INVITE, re-INVITE, ACK, CANCEL, BYE, INFO, REFER, OPTIONS, REGISTER) and
//! responses to what this side sent.

use super::*;

impl UserAgent {
    pub fn handle_input(&mut self, now: Instant, source: Peer, data: &[u8]) {
        self.last_now = Some(now);
        self.endpoint.handle_input(now, source, data);
        self.drain_endpoint(now);
        self.drain_registrar();
    }

    pub fn handle_timeout(&mut self, now: Instant) {
        self.last_now = Some(now);
        self.endpoint.handle_timeout(now);
        self.drain_endpoint(now);
        if self.registrar.poll_timeout().is_some_and(|t| t <= now) {
            for ping in self.registrar.handle_timeout(now) {
                self.send_ping(now, ping);
            }
        }
        while let Some(&(at, call_ref, txn)) = self.refer_deadlines.first() {
            if at > now {
                break;
            }
            self.refer_deadlines.pop_first();
            if let Some(call) = self.calls.get_mut(&call_ref)
                && call.refer == Some(txn)
            {
                call.refer = None;
            }
            // A no-op if the REFER has been answered meanwhile.
            self.endpoint.respond(now, txn, &ResponseSpec::new(500));
        }
        while let Some(&(at, call_ref, txn)) = self.cancel_deadlines.first() {
            if at > now {
                break;
            }
            self.cancel_deadlines.pop_first();
            let pending = self
                .calls
                .get(&call_ref)
                .is_some_and(|c| c.state == State::Calling && c.invite_txn == txn);
            if pending {
                self.endpoint.abandon_client(txn);
                self.forget(call_ref);
                self.events.push_back(UaEvent::Failed {
                    call: call_ref,
                    code: 408,
                });
            }
        }
        self.drain_endpoint(now);
        self.drain_registrar();
    }

    pub(super) fn drain_endpoint(&mut self, now: Instant) {
        while let Some(ev) = self.endpoint.poll_event() {
            match ev {
                EndpointEvent::Request {
                    txn,
                    request,
                    source,
                } => self.on_request(now, txn, request, source),
                EndpointEvent::Cancel { invite } => self.on_cancel(now, invite),
                EndpointEvent::Ack { request, .. } => self.on_ack(now, request),
                EndpointEvent::Response { txn, response } => self.on_response(now, txn, response),
                EndpointEvent::StrayInviteOk { response, source } => {
                    self.on_stray_ok(response, source)
                }
                EndpointEvent::Timeout { txn } => self.on_timeout(now, txn),
            }
        }
    }

    pub(super) fn on_request(&mut self, now: Instant, txn: TxnId, req: Request, source: Peer) {
        // RFC 3261 §8.2: turn away what we cannot handle before anything is set up.
        if let Err(rejection) = validate::check_request(&req, self.endpoint.is_merged(txn)) {
            tracing::debug!(from = %source.addr, %rejection, "request rejected");
            let spec = rejection.response();
            return match req.to_tag() {
                Some(_) => self.endpoint.respond(now, txn, &spec),
                None => self.respond_out_of_dialog(now, txn, spec),
            };
        }
        if req.method == Method::Register {
            // RFC 3261 §10.2: REGISTER To has no tag; take one that has anyway.
            return self.on_register(now, txn, req, source);
        }
        let to_tag = req.to_tag();
        let Some(local_tag) = to_tag else {
            return self.on_out_of_dialog(now, txn, req, source);
        };
        let key = (req.call_id().to_string(), local_tag);
        let Some(&call_ref) = self.by_dialog.get(&key) else {
            // RFC 3261 §12.2.2: a request for a dialog we don't know.
            return self.endpoint.respond(now, txn, &ResponseSpec::new(481));
        };
        let Some(call) = self.calls.get_mut(&call_ref) else {
            return;
        };
        let (seq, _) = req.cseq();
        if !call.dialog.accept_remote_seq(seq) {
            return self.endpoint.respond(
                now,
                txn,
                &ResponseSpec::new(500).header("Retry-After", "1"),
            );
        }
        match req.method {
            Method::Bye if call.state == State::Incoming => {
                // A BYE on an early dialog (after our tagged 180): the INVITE still needs its
                // final response, and for the call this is an abandon before answer.
                let (invite, tag) = (call.invite_txn, call.dialog.local_tag.clone());
                self.endpoint.respond(now, txn, &ResponseSpec::new(200));
                self.respond_invite(now, invite, &tag, ResponseSpec::new(487));
                self.forget(call_ref);
                self.events.push_back(UaEvent::Cancelled { call: call_ref });
            }
            Method::Bye => {
                self.endpoint.respond(now, txn, &ResponseSpec::new(200));
                self.forget(call_ref);
                self.events.push_back(UaEvent::RemoteBye { call: call_ref });
            }
            Method::Invite => {
                if call.reinvite.is_some() || call.state != State::Confirmed {
                    // RFC 3261 §14.2: an INVITE while one is pending gets 491 (or 500).
                    let code = if call.reinvite.is_some() { 491 } else { 500 };
                    return self.endpoint.respond(
                        now,
                        txn,
                        &ResponseSpec::new(code).header("Retry-After", "1"),
                    );
                }
                if let Some(target) = req.contact_uri() {
                    call.dialog.remote_target = target.to_string();
                }
                call.reinvite = Some(txn);
                call.invite_seq = seq;
                self.by_txn.insert(txn, call_ref);
                let offer = (!req.body.is_empty()).then(|| req.body.clone());
                self.events.push_back(UaEvent::ReInvite {
                    call: call_ref,
                    offer,
                });
            }
            Method::Info => match parse_dtmf_info(&req) {
                Ok(Some(digit)) => {
                    self.endpoint.respond(now, txn, &ResponseSpec::new(200));
                    self.events.push_back(UaEvent::Dtmf {
                        call: call_ref,
                        digit,
                    });
                }
                Ok(None) => self.endpoint.respond(now, txn, &ResponseSpec::new(200)),
                Err(code) => self.endpoint.respond(
                    now,
                    txn,
                    &ResponseSpec::new(code).header("Accept", ACCEPT),
                ),
            },
            Method::Options => self.respond_options(now, txn),
            Method::Refer => self.on_refer(now, txn, &req, call_ref),
            Method::Update
            | Method::Message
            | Method::Notify
            | Method::Subscribe
            | Method::PRack
            | Method::Publish
            | Method::Register => {
                self.endpoint
                    .respond(now, txn, &ResponseSpec::new(405).header("Allow", ALLOW))
            }
            Method::Ack | Method::Cancel => {}
        }
    }

    pub(super) fn on_out_of_dialog(
        &mut self,
        now: Instant,
        txn: TxnId,
        req: Request,
        source: Peer,
    ) {
        match req.method {
            Method::Invite => {
                self.next_call += 1;
                let call_ref = CallRef(self.next_call);
                let local_tag = message::random_token(&mut self.rng, 10);
                let (seq, _) = req.cseq();
                let to_value = req.to_text();
                let from_value = req.sender_text();
                let local_ip = message::host_ip(&req.uri.host_with_port.host)
                    .filter(|ip| !ip.is_unspecified());
                let advertised = self.over(
                    &self.advertised_for(&req.uri.host_with_port.host),
                    source.transport,
                );
                let dialog = Dialog {
                    call_id: req.call_id().to_string(),
                    local_uri: format!("{};tag={local_tag}", to_value.unwrap_or_default()),
                    local_tag: local_tag.clone(),
                    remote_tag: req.sender_tag().unwrap_or_default(),
                    remote_uri: from_value.unwrap_or_default(),
                    local_seq: self.rng.u32(1..10_000),
                    remote_seq: Some(seq),
                    remote_target: req
                        .contact_uri()
                        .map(|u| u.to_string())
                        .unwrap_or_else(|| req.uri.to_string()),
                    // RFC 3261 §12.1.1: the UAS keeps Record-Route in order.
                    route_set: req.record_routes(),
                    peer: source,
                    local_contact: contact_for(
                        &self.cfg.user,
                        &advertised,
                        source.transport,
                        source.transport == TransportKind::Tls
                            && req.uri.scheme == Some(rsip::Scheme::Sips),
                    ),
                };
                self.by_dialog
                    .insert((dialog.call_id.clone(), local_tag), call_ref);
                self.by_txn.insert(txn, call_ref);
                let offer = (!req.body.is_empty()).then(|| req.body.clone());
                // Credentials from an IP blocked for failures are not even checked, and a
                // wrong password counts against the IP as it does for REGISTER.
                let ip = source.addr.ip();
                let credentials = self
                    .registrar
                    .pick_credentials(req.header_values("Proxy-Authorization"));
                let (authenticated, auth_stale) = match credentials {
                    Some(_) if self.registrar.is_blocked(now, ip) => (None, false),
                    Some(h) => match self.registrar.verify(now, "INVITE", None, &h) {
                        Verdict::Ok(user) => (Some(user), false),
                        Verdict::Stale | Verdict::Replay => (None, true),
                        Verdict::Rechallenge => (None, false),
                        Verdict::Forbidden => {
                            self.registrar.record_failure(now, ip);
                            (None, false)
                        }
                    },
                    None => (None, false),
                };
                let event = UaEvent::Incoming {
                    call: call_ref,
                    call_id: dialog.call_id.clone(),
                    from_user: req.sender_user(),
                    to_user: req.uri.user().unwrap_or_default().to_string(),
                    offer,
                    source,
                    local_ip,
                    authenticated,
                };
                let mut call = Call::new(State::Incoming, dialog, txn, seq, advertised);
                call.auth_stale = auth_stale;
                self.calls.insert(call_ref, call);
                // RFC 3261 §8.2.6.1 / §17.2.1: 100 Trying at once so the caller stops resending.
                self.endpoint.respond(now, txn, &ResponseSpec::new(100));
                self.events.push_back(event);
            }
            Method::Options => self.respond_options(now, txn),
            Method::Register => self.on_register(now, txn, req, source),
            Method::Bye | Method::Info | Method::Update | Method::Notify | Method::PRack => {
                self.respond_out_of_dialog(now, txn, ResponseSpec::new(481))
            }
            // RFC 3515 lets REFER open a dialog; we take it only inside one.
            Method::Subscribe | Method::Message | Method::Refer | Method::Publish => self
                .respond_out_of_dialog(
                    now,
                    txn,
                    ResponseSpec::new(405).header("Allow", ALLOW_OUT_OF_DIALOG),
                ),
            Method::Ack | Method::Cancel => {}
        }
    }

    pub(super) fn respond_options(&mut self, now: Instant, txn: TxnId) {
        let spec = ResponseSpec::new(200)
            .header("Allow", ALLOW)
            .header("Accept", ACCEPT);
        self.respond_out_of_dialog(now, txn, spec);
    }

    /// RFC 3261 §8.2.6.2: a response to a request without a To tag carries one of ours (a
    /// request inside a dialog already has one, and `build_response` keeps it).
    pub(super) fn respond_out_of_dialog(
        &mut self,
        now: Instant,
        txn: TxnId,
        mut spec: ResponseSpec,
    ) {
        spec.to_tag = Some(message::random_token(&mut self.rng, 10));
        self.endpoint.respond(now, txn, &spec);
    }

    pub(super) fn on_cancel(&mut self, now: Instant, invite: TxnId) {
        let Some(&call_ref) = self.by_txn.get(&invite) else {
            return;
        };
        let Some(call) = self.calls.get(&call_ref) else {
            return;
        };
        if call.state != State::Incoming {
            return;
        }
        let tag = call.dialog.local_tag.clone();
        self.respond_invite(now, invite, &tag, ResponseSpec::new(487));
        self.forget(call_ref);
        self.events.push_back(UaEvent::Cancelled { call: call_ref });
    }

    pub(super) fn on_ack(&mut self, now: Instant, req: Request) {
        let Some(tag) = req.to_tag() else { return };
        let Some(&call_ref) = self.by_dialog.get(&(req.call_id().to_string(), tag)) else {
            return;
        };
        let Some(call) = self.calls.get_mut(&call_ref) else {
            return;
        };
        let (seq, _) = req.cseq();
        if seq != call.invite_seq {
            return;
        }
        let txn = call.reinvite.take().unwrap_or(call.invite_txn);
        if call.state == State::Answered {
            call.state = State::Confirmed;
        }
        let bye_now = std::mem::take(&mut call.bye_after_ack);
        self.endpoint.confirm_invite(now, txn);
        let answer = (!req.body.is_empty()).then(|| req.body.clone());
        self.events.push_back(UaEvent::Acked {
            call: call_ref,
            answer,
        });
        if bye_now {
            self.hangup(now, call_ref);
        }
    }

    pub(super) fn on_timeout(&mut self, now: Instant, txn: TxnId) {
        if let Some((user, binding)) = self.pings.remove(&txn) {
            return self.registrar.ping_result(now, &user, binding, false);
        }
        let Some(&call_ref) = self.by_txn.get(&txn) else {
            return;
        };
        let Some(call) = self.calls.get_mut(&call_ref) else {
            return;
        };
        match call.state {
            State::Answered => {
                // RFC 3261 §13.3.1.4: no ACK for our 2xx; the session is over, so say so.
                tracing::info!(sip_call_id = %call.dialog.call_id, "no ACK for 200 OK, ending the call");
                if let Ok(bye) =
                    call.dialog
                        .request(&mut self.rng, Method::Bye, &call.advertised, None)
                {
                    let peer = call.dialog.peer;
                    self.endpoint.send_request(now, peer, bye);
                }
                self.forget(call_ref);
                self.events.push_back(UaEvent::Ended {
                    call: call_ref,
                    code: 408,
                });
            }
            State::Calling => {
                self.forget(call_ref);
                self.events.push_back(UaEvent::Failed {
                    call: call_ref,
                    code: 408,
                });
            }
            State::Terminating if call.bye_txn == Some(txn) => {
                self.forget(call_ref);
                self.events.push_back(UaEvent::Ended {
                    call: call_ref,
                    code: 408,
                });
            }
            _ => {
                if call.reinvite == Some(txn) {
                    call.reinvite = None;
                }
                self.by_txn.remove(&txn);
            }
        }
    }

    pub(super) fn on_response(&mut self, now: Instant, txn: TxnId, resp: Response) {
        let code = resp.status_code.code();
        if code >= 200
            && let Some((user, binding)) = self.pings.remove(&txn)
        {
            // Any answer shows the phone is there; 408/503 say it is not.
            let alive = !matches!(code, 408 | 503);
            return self.registrar.ping_result(now, &user, binding, alive);
        }
        let Some(&call_ref) = self.by_txn.get(&txn) else {
            return;
        };
        let Some(call) = self.calls.get_mut(&call_ref) else {
            return;
        };
        let code = resp.status_code.code();
        if call.bye_txn == Some(txn) {
            if code >= 200 {
                self.forget(call_ref);
                self.events.push_back(UaEvent::Ended {
                    call: call_ref,
                    code,
                });
            }
            return;
        }
        if let Some((out, seq)) = call.reinvite_out.filter(|(t, _)| *t == txn) {
            if code >= 200 {
                call.reinvite_out = None;
                if (200..300).contains(&code)
                    && let Ok(ack) = call.dialog.ack(&mut self.rng, seq, &call.advertised, None)
                {
                    self.endpoint
                        .send_raw(call.dialog.peer, message::to_bytes(ack));
                }
                let answer = (!resp.body.is_empty()).then(|| resp.body.clone());
                self.by_txn.remove(&out);
                self.events.push_back(UaEvent::Reinvited {
                    call: call_ref,
                    code,
                    answer,
                });
            }
            return;
        }
        if call.state != State::Calling || txn != call.invite_txn {
            return;
        }
        match code {
            100..=199 => {
                // RFC 3261 §12.1.2: a tagged provisional response makes an early dialog.
                if let Some(tag) = resp.to_tag().filter(|_| code > 100) {
                    call.dialog.remote_tag = tag;
                    if let Some(to) = resp.to_text() {
                        call.dialog.remote_uri = to;
                    }
                }
                call.provisional = true;
                if call.cancel_requested {
                    self.send_cancel(now, call_ref);
                }
                self.events.push_back(UaEvent::Progress {
                    call: call_ref,
                    code,
                });
            }
            200..=299 => {
                let Some(call) = self.calls.get_mut(&call_ref) else {
                    return;
                };
                call.dialog.remote_tag = resp.to_tag().unwrap_or_default();
                if let Some(to) = resp.to_text() {
                    call.dialog.remote_uri = to;
                }
                if let Some(target) = resp.contact_uri() {
                    call.dialog.remote_target = target.to_string();
                }
                // RFC 3261 §12.1.2: the UAC reverses Record-Route.
                call.dialog.route_set = resp.record_routes().into_iter().rev().collect();
                let key = (call.dialog.call_id.clone(), call.dialog.local_tag.clone());
                self.by_dialog.insert(key, call_ref);
                call.state = State::Confirmed;
                let ack_body = call.ack_body.take().map(|b| (SDP.to_string(), b));
                if let Ok(ack) =
                    call.dialog
                        .ack(&mut self.rng, call.invite_seq, &call.advertised, ack_body)
                {
                    self.endpoint
                        .send_raw(call.dialog.peer, message::to_bytes(ack));
                }
                let answer = (!resp.body.is_empty()).then(|| resp.body.clone());
                let cancel = call.cancel_requested;
                self.events.push_back(UaEvent::Answered {
                    call: call_ref,
                    answer,
                });
                if cancel {
                    self.hangup(now, call_ref);
                }
            }
            _ => {
                self.forget(call_ref);
                self.events.push_back(UaEvent::Failed {
                    call: call_ref,
                    code,
                });
            }
        }
    }

    pub(super) fn on_stray_ok(&mut self, resp: Response, source: Peer) {
        let Some(tag) = resp.sender_tag() else { return };
        let Some(&call_ref) = self.by_dialog.get(&(resp.call_id().to_string(), tag)) else {
            return;
        };
        let Some(call) = self.calls.get(&call_ref) else {
            return;
        };
        if resp.cseq().0 == call.invite_seq
            && let Ok(ack) = call
                .dialog
                .ack(&mut self.rng, call.invite_seq, &call.advertised, None)
        {
            self.endpoint.send_raw(source, message::to_bytes(ack));
        }
    }
}
