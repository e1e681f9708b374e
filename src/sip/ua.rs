//! The user agent core: INVITE sessions on top of the transaction layer, for both sides (the
//! server answers callers; the load generator and test client place calls). Sans-IO: the
//! caller feeds datagrams and time, issues commands, and drains transmits and events.

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use super::SipError;
use super::dialog::{Dialog, contact_for};
use super::digest::{DigestAuth, Verdict};
use super::endpoint::{ALLOW, Endpoint, EndpointEvent, Peer, Transmit, TransportKind, TxnId};
use super::message::{self, MessageExt, Method, Request, RequestSpec, Response, ResponseSpec};
use super::registrar::{Account, Contact, Ping, Registrar, RegistrarConfig};
use super::transaction::TimerConfig;
use super::validate;

/// An in-dialog REFER the engine has not answered by then gets 500 from the UA.
pub const REFER_ANSWER_TIMEOUT: Duration = Duration::from_secs(4);
/// Allow for a REFER outside a dialog (we only take REFER inside one).
const ALLOW_OUT_OF_DIALOG: &str = "INVITE, ACK, BYE, CANCEL, OPTIONS, INFO, REGISTER";

/// RFC 3891 Replaces, from a Refer-To URI's `?Replaces=` header (attended transfer).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Replaces {
    pub call_id: String,
    pub to_tag: String,
    pub from_tag: String,
}

pub const SDP: &str = "application/sdp";
const ACCEPT: &str = "application/sdp, application/dtmf-relay, application/dtmf";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CallRef(pub u64);

#[derive(Debug)]
pub enum UaEvent {
    /// A new INVITE. `local_ip` is the address the caller used to reach us, when it names one.
    Incoming {
        call: CallRef,
        call_id: String,
        from_user: String,
        to_user: String,
        offer: Option<Vec<u8>>,
        source: Peer,
        local_ip: Option<IpAddr>,
        /// The account user when the INVITE carried valid Proxy-Authorization for a nonce
        /// of ours; None otherwise.
        authenticated: Option<String>,
    },
    /// An AOR became reachable (first live contact) or unreachable (last one expired,
    /// removed or dead).
    Reachability {
        user: String,
        reachable: bool,
    },
    /// REFER inside a dialog (RFC 3515): answer it with `answer_refer` (within
    /// `REFER_ANSWER_TIMEOUT`, else the UA sends 500), then report with `notify_refer`.
    /// `replaces` from a Replaces parameter in the Refer-To URI (RFC 3891).
    Refer {
        call: CallRef,
        target: String,
        replaces: Option<Replaces>,
        referred_by: Option<String>,
    },
    /// The caller cancelled before we answered; 487 has been sent.
    Cancelled {
        call: CallRef,
    },
    /// The ACK for our 2xx arrived (with the SDP answer when the INVITE had no offer).
    Acked {
        call: CallRef,
        answer: Option<Vec<u8>>,
    },
    /// The peer ended the call; its BYE has been answered.
    RemoteBye {
        call: CallRef,
    },
    /// A re-INVITE (hold, unhold, refresh): answer it with `answer_reinvite`.
    ReInvite {
        call: CallRef,
        offer: Option<Vec<u8>>,
    },
    Dtmf {
        call: CallRef,
        digit: char,
    },
    /// Our side: provisional response to our INVITE.
    Progress {
        call: CallRef,
        code: u16,
    },
    /// Our INVITE was answered; the ACK has been sent.
    Answered {
        call: CallRef,
        answer: Option<Vec<u8>>,
    },
    /// Our INVITE failed (final non-2xx, or 408 for no answer at all).
    Failed {
        call: CallRef,
        code: u16,
    },
    /// The call is over and forgotten: our BYE completed (code), or we never got an ACK (408).
    Ended {
        call: CallRef,
        code: u16,
    },
    /// Our re-INVITE got its final response (a 2xx has been ACKed).
    Reinvited {
        call: CallRef,
        code: u16,
        answer: Option<Vec<u8>>,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// UAS: INVITE received, no final response yet.
    Incoming,
    /// UAS: 2xx sent, waiting for ACK.
    Answered,
    /// UAC: INVITE sent.
    Calling,
    Confirmed,
    /// BYE sent, waiting for its response.
    Terminating,
}

struct Call {
    state: State,
    dialog: Dialog,
    invite_txn: TxnId,
    invite_seq: u32,
    reinvite: Option<TxnId>,
    bye_txn: Option<TxnId>,
    /// A re-INVITE we sent, and its CSeq number for the ACK.
    reinvite_out: Option<(TxnId, u32)>,
    /// UAC: a hang-up asked for while only provisional responses had arrived.
    cancel_requested: bool,
    /// UAC: a provisional response has arrived (a CANCEL may go out).
    provisional: bool,
    /// UAC: the CANCEL is out (once).
    cancel_sent: bool,
    /// UAC with a late offer: the SDP answer to put in the ACK.
    ack_body: Option<Vec<u8>>,
    /// UAS: hang-up asked for before the ACK arrived; RFC 3261 §15 wants the BYE after it.
    bye_after_ack: bool,
    /// host:port for Via and Contact in this dialog.
    advertised: String,
    /// An in-dialog REFER waiting for `answer_refer`.
    refer: Option<TxnId>,
    /// UAS: the INVITE's credentials were right but their nonce stale (challenge says so).
    auth_stale: bool,
}

impl Call {
    fn new(
        state: State,
        dialog: Dialog,
        invite_txn: TxnId,
        invite_seq: u32,
        advertised: String,
    ) -> Call {
        Call {
            advertised,
            state,
            dialog,
            invite_txn,
            invite_seq,
            reinvite: None,
            bye_txn: None,
            reinvite_out: None,
            cancel_requested: false,
            provisional: false,
            cancel_sent: false,
            bye_after_ack: false,
            ack_body: None,
            refer: None,
            auth_stale: false,
        }
    }
}

pub struct UaConfig {
    pub timers: TimerConfig,
    /// host:port written into Via and Contact.
    pub advertised: String,
    /// Bound to every address (0.0.0.0) with no address configured: a dialog we accept
    /// names the host the caller dialled (the Request-URI's), with our port, so a phone on
    /// another machine sends its ACK and BYE back to an address that reaches us.
    pub advertise_request_host: bool,
    pub user: String,
    /// Seeds the generator every tag, branch, Call-ID and first CSeq comes from, so the same
    /// inputs replay to the same bytes. Not secret: what it draws is on the wire.
    pub seed: u64,
    /// Keys the registrar's nonce HMAC. Kept apart from `seed` because the seed may be
    /// logged to replay a session and its draws are visible, while this must stay
    /// unguessable: the runtime fills it from the OS.
    pub nonce_secret: [u8; 32],
    /// The port SIP over TLS listens on, if it does: Via and Contact of what goes over TLS
    /// name it.
    pub tls_port: Option<u16>,
}

pub struct UserAgent {
    cfg: UaConfig,
    endpoint: Endpoint,
    calls: HashMap<CallRef, Call>,
    by_dialog: HashMap<(String, String), CallRef>,
    by_txn: HashMap<TxnId, CallRef>,
    events: VecDeque<UaEvent>,
    next_call: u64,
    registrar: Registrar,
    /// OPTIONS keep-alives in flight: (user, binding).
    pings: HashMap<TxnId, (String, u64)>,
    /// Unanswered in-dialog REFERs, by the time the UA answers them itself.
    refer_deadlines: BTreeSet<(Instant, CallRef, TxnId)>,
    /// Cancelled INVITEs, by when they are given up if no final response comes.
    cancel_deadlines: BTreeSet<(Instant, CallRef, TxnId)>,
    last_now: Option<Instant>,
    /// The UA's only source of randomness (see `UaConfig::seed`).
    rng: fastrand::Rng,
}

impl UserAgent {
    /// host:port for a dialog whose INVITE was sent to `host`.
    fn advertised_for(&self, host: &rsip::Host) -> String {
        let port = self
            .cfg
            .advertised
            .rsplit_once(':')
            .map_or("5060", |(_, p)| p);
        match message::host_ip(host) {
            _ if !self.cfg.advertise_request_host => self.cfg.advertised.clone(),
            Some(ip) if ip.is_unspecified() => self.cfg.advertised.clone(),
            Some(ip) => std::net::SocketAddr::new(ip, port.parse().unwrap_or(5060)).to_string(),
            None => format!("{host}:{port}"),
        }
    }

    /// `advertised` (host:port) with the port a peer on `transport` reaches us at.
    fn over(&self, advertised: &str, transport: TransportKind) -> String {
        match (transport, self.cfg.tls_port) {
            (TransportKind::Tls, Some(port)) => match advertised.rsplit_once(':') {
                Some((host, _)) => format!("{host}:{port}"),
                None => format!("{advertised}:{port}"),
            },
            _ => advertised.to_string(),
        }
    }

    pub fn new(cfg: UaConfig) -> Self {
        let mut rng = fastrand::Rng::with_seed(cfg.seed);
        let auth = DigestAuth::with_secret(cfg.nonce_secret, rng.u64(..u64::MAX / 2));
        UserAgent {
            endpoint: Endpoint::new(cfg.timers),
            cfg,
            calls: HashMap::new(),
            by_dialog: HashMap::new(),
            by_txn: HashMap::new(),
            events: VecDeque::new(),
            next_call: 0,
            registrar: Registrar::new(auth),
            pings: HashMap::new(),
            refer_deadlines: BTreeSet::new(),
            cancel_deadlines: BTreeSet::new(),
            last_now: None,
            rng,
        }
    }

    // ---- registrar and authentication ----

    /// The accounts that may register (replacing the previous set); bindings of users no
    /// longer present are dropped and reported unreachable.
    pub fn set_accounts(&mut self, accounts: Vec<Account>) {
        self.registrar.set_accounts(self.last_now, accounts);
        self.drain_registrar();
    }

    /// The digest realm (default "hotline"); HA1s must have been made with it.
    pub fn set_realm(&mut self, realm: String) {
        self.registrar.realm = realm;
    }

    pub fn set_registrar_config(&mut self, cfg: RegistrarConfig) {
        self.registrar.cfg = cfg;
    }

    /// Limits on new calls per source address (none until set).
    pub fn set_admission(&mut self, cfg: super::admission::AdmissionConfig) {
        self.endpoint.set_admission(cfg);
    }

    pub fn admission_stats(&self) -> super::admission::AdmissionStats {
        self.endpoint.admission_stats()
    }

    /// Seed the nonce secret and serials (tests; otherwise they come from `UaConfig`).
    pub fn set_auth_seed(&mut self, seed: u64) {
        let lifetime = self.registrar.auth.nonce_lifetime;
        self.registrar.auth = DigestAuth::new(seed);
        self.registrar.auth.nonce_lifetime = lifetime;
    }

    pub fn registrar(&self) -> &Registrar {
        &self.registrar
    }

    pub fn registrar_mut(&mut self) -> &mut Registrar {
        &mut self.registrar
    }

    /// A user's live, unexpired contacts.
    pub fn contacts(&self, user: &str) -> Vec<Contact> {
        self.registrar.contacts(self.last_now, user)
    }

    fn drain_registrar(&mut self) {
        while let Some((user, reachable)) = self.registrar.poll_reachability() {
            self.events
                .push_back(UaEvent::Reachability { user, reachable });
        }
    }

    fn send_ping(&mut self, now: Instant, ping: Ping) {
        let adv = self.over(&self.cfg.advertised, ping.peer.transport);
        let spec = RequestSpec {
            method: Method::Options,
            uri: ping.uri.clone(),
            via_host: adv.clone(),
            transport: ping.peer.transport.via_name(),
            branch: message::new_branch(&mut self.rng),
            from: format!(
                "<sip:{}@{adv}>;tag={}",
                self.cfg.user,
                message::random_token(&mut self.rng, 10)
            ),
            to: format!("<{}>", ping.uri),
            call_id: format!("{}@{adv}", message::random_token(&mut self.rng, 20)),
            cseq: 1,
            routes: Vec::new(),
            contact: None,
            body: None,
            extra: Vec::new(),
        };
        match message::build_request(&spec) {
            Ok(req) => {
                let txn = self.endpoint.send_request(now, ping.peer, req);
                self.pings.insert(txn, (ping.user, ping.binding));
            }
            Err(_) => self
                .registrar
                .ping_result(now, &ping.user, ping.binding, false),
        }
    }

    fn on_register(&mut self, now: Instant, txn: TxnId, req: Request, source: Peer) {
        let outcome = self.registrar.register(now, &req, source);
        if outcome.failed {
            self.registrar.record_failure(now, source.addr.ip());
        }
        self.respond_out_of_dialog(now, txn, outcome.response);
    }

    /// Answer an unanswered incoming INVITE with 407 and Proxy-Authenticate (SHA-256, then
    /// MD5); the call is over for the UA. The retry with credentials is a new `Incoming`.
    pub fn challenge(&mut self, now: Instant, call_ref: CallRef) {
        let Some(call) = self
            .calls
            .get(&call_ref)
            .filter(|c| c.state == State::Incoming)
        else {
            return;
        };
        let (txn, tag, stale) = (
            call.invite_txn,
            call.dialog.local_tag.clone(),
            call.auth_stale,
        );
        let user = self
            .endpoint
            .server_request(txn)
            .map(|r| r.sender_user())
            .filter(|u| !u.is_empty());
        let mut spec = ResponseSpec::new(407);
        for value in self
            .registrar
            .challenge_headers(now, user.as_deref(), stale)
        {
            spec = spec.header("Proxy-Authenticate", value);
        }
        self.respond_invite(now, txn, &tag, spec);
        self.forget(call_ref);
    }

    // ---- REFER (RFC 3515) ----

    fn on_refer(&mut self, now: Instant, txn: TxnId, req: &Request, call_ref: CallRef) {
        let Some(call) = self.calls.get_mut(&call_ref) else {
            return;
        };
        if !matches!(call.state, State::Confirmed | State::Answered) {
            return self.endpoint.respond(now, txn, &ResponseSpec::new(403));
        }
        if call.refer.is_some() {
            return self.endpoint.respond(
                now,
                txn,
                &ResponseSpec::new(491).header("Retry-After", "1"),
            );
        }
        let refer_to = req.header_values("Refer-To");
        let parsed = match refer_to.as_slice() {
            [one] => parse_refer_to(one),
            _ => None,
        };
        let Some((target, replaces)) = parsed else {
            return self.endpoint.respond(now, txn, &ResponseSpec::new(400));
        };
        let referred_by = req
            .header_values("Referred-By")
            .into_iter()
            .chain(req.header_values("b"))
            .next();
        call.refer = Some(txn);
        self.refer_deadlines
            .insert((now + REFER_ANSWER_TIMEOUT, call_ref, txn));
        self.events.push_back(UaEvent::Refer {
            call: call_ref,
            target,
            replaces,
            referred_by,
        });
    }

    /// Answer the pending REFER of a call: 202 Accepted, or an error code.
    pub fn answer_refer(&mut self, now: Instant, call_ref: CallRef, code: u16) {
        let Some(call) = self.calls.get_mut(&call_ref) else {
            return;
        };
        let Some(txn) = call.refer.take() else { return };
        self.refer_deadlines.retain(|(_, _, t)| *t != txn);
        let mut spec = ResponseSpec::new(code);
        if (200..300).contains(&code) {
            spec.contact = Some(call.dialog.local_contact.clone());
        }
        self.endpoint.respond(now, txn, &spec);
    }

    /// RFC 3515 §2.4.4: NOTIFY the referrer how the referred request went, as a sipfrag
    /// status line (`SIP/2.0 200 OK`); `terminated` ends the implicit subscription.
    pub fn notify_refer(&mut self, now: Instant, call_ref: CallRef, status: u16, terminated: bool) {
        let Some(call) = self
            .calls
            .get_mut(&call_ref)
            .filter(|c| matches!(c.state, State::Confirmed | State::Answered))
        else {
            return;
        };
        let body = format!("SIP/2.0 {status} {}\r\n", message::reason_phrase(status));
        let state = if terminated {
            "terminated;reason=noresource".to_string()
        } else {
            "active;expires=60".to_string()
        };
        let extra = vec![
            ("Event".to_string(), "refer".to_string()),
            ("Subscription-State".to_string(), state),
        ];
        let Ok(req) = call.dialog.request_with(
            &mut self.rng,
            Method::Notify,
            &call.advertised,
            Some(("message/sipfrag;version=2.0".into(), body.into_bytes())),
            extra,
        ) else {
            return;
        };
        let peer = call.dialog.peer;
        self.endpoint.send_request(now, peer, req);
    }

    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.endpoint.poll_transmit()
    }
    pub fn poll_event(&mut self) -> Option<UaEvent> {
        self.events.pop_front()
    }
    pub fn poll_timeout(&self) -> Option<Instant> {
        [
            self.endpoint.poll_timeout(),
            self.registrar.poll_timeout(),
            self.refer_deadlines.first().map(|d| d.0),
            self.cancel_deadlines.first().map(|d| d.0),
        ]
        .into_iter()
        .flatten()
        .min()
    }
    pub fn calls(&self) -> usize {
        self.calls.len()
    }
    pub fn transactions(&self) -> usize {
        self.endpoint.transactions()
    }
    pub fn pending_requests(&self) -> usize {
        self.endpoint.pending_requests()
    }

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

    fn drain_endpoint(&mut self, now: Instant) {
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

    fn on_request(&mut self, now: Instant, txn: TxnId, req: Request, source: Peer) {
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

    fn on_out_of_dialog(&mut self, now: Instant, txn: TxnId, req: Request, source: Peer) {
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

    fn respond_options(&mut self, now: Instant, txn: TxnId) {
        let spec = ResponseSpec::new(200)
            .header("Allow", ALLOW)
            .header("Accept", ACCEPT);
        self.respond_out_of_dialog(now, txn, spec);
    }

    /// RFC 3261 §8.2.6.2: a response to a request without a To tag carries one of ours (a
    /// request inside a dialog already has one, and `build_response` keeps it).
    fn respond_out_of_dialog(&mut self, now: Instant, txn: TxnId, mut spec: ResponseSpec) {
        spec.to_tag = Some(message::random_token(&mut self.rng, 10));
        self.endpoint.respond(now, txn, &spec);
    }

    fn on_cancel(&mut self, now: Instant, invite: TxnId) {
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

    fn on_ack(&mut self, now: Instant, req: Request) {
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

    fn on_timeout(&mut self, now: Instant, txn: TxnId) {
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

    fn on_response(&mut self, now: Instant, txn: TxnId, resp: Response) {
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

    fn on_stray_ok(&mut self, resp: Response, source: Peer) {
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

    // ---- commands for the server side ----

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

    fn respond_invite(&mut self, now: Instant, txn: TxnId, tag: &str, mut spec: ResponseSpec) {
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
    fn send_cancel(&mut self, now: Instant, call_ref: CallRef) {
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
    fn start_invite(
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

    fn forget(&mut self, call_ref: CallRef) {
        if let Some(call) = self.calls.remove(&call_ref) {
            self.by_dialog
                .remove(&(call.dialog.call_id.clone(), call.dialog.local_tag.clone()));
            self.by_txn.retain(|_, c| *c != call_ref);
        }
    }
}

/// A Refer-To value: the target URI (without its `?headers`) and a Replaces header in it.
pub fn parse_refer_to(value: &str) -> Option<(String, Option<Replaces>)> {
    if value.len() > 2048 {
        return None;
    }
    let uri = match (value.find('<'), value.rfind('>')) {
        (Some(open), Some(close)) if open < close => &value[open + 1..close],
        (None, None) => value.split(';').next()?,
        _ => return None,
    };
    let uri = uri.trim();
    let (target, headers) = match uri.split_once('?') {
        Some((t, h)) => (t, Some(h)),
        None => (uri, None),
    };
    // RFC 3966 tel: URIs name numbers (a phone's transfer key often sends them); the
    // parser behind us knows only sip: and sips:.
    let scheme = target.split_once(':')?.0.to_ascii_lowercase();
    match scheme.as_str() {
        "tel" => {}
        "sip" | "sips" => {
            rsip::Uri::try_from(target).ok()?;
        }
        _ => return None,
    }
    let replaces = headers.and_then(|h| {
        h.split('&').find_map(|kv| {
            let (k, v) = kv.split_once('=')?;
            k.eq_ignore_ascii_case("Replaces")
                .then(|| parse_replaces(&percent_decode(v)))?
        })
    });
    Some((target.to_string(), replaces))
}

/// RFC 3891: `call-id;to-tag=…;from-tag=…` (other parameters ignored).
pub fn parse_replaces(value: &str) -> Option<Replaces> {
    let mut parts = value.split(';');
    let call_id = parts.next()?.trim().to_string();
    let (mut to_tag, mut from_tag) = (None, None);
    for p in parts {
        let Some((k, v)) = p.split_once('=') else {
            continue;
        };
        match k.trim().to_ascii_lowercase().as_str() {
            "to-tag" => to_tag = Some(v.trim().to_string()),
            "from-tag" => from_tag = Some(v.trim().to_string()),
            _ => {}
        }
    }
    (!call_id.is_empty()).then_some(())?;
    Some(Replaces {
        call_id,
        to_tag: to_tag?,
        from_tag: from_tag?,
    })
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && let Some(b) = s
                .get(i + 1..i + 3)
                .and_then(|h| u8::from_str_radix(h, 16).ok())
        {
            out.push(b);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// RFC 2976 INFO carrying DTMF: application/dtmf-relay ("Signal=5") or application/dtmf ("5").
/// Ok(None) for an empty INFO (a keep-alive some phones send); Err(415) for other bodies.
fn parse_dtmf_info(req: &Request) -> Result<Option<char>, u16> {
    if req.body.is_empty() {
        return Ok(None);
    }
    let body = String::from_utf8_lossy(&req.body);
    let content_type = req.content_type().unwrap_or_default();
    let value = match content_type.split(';').next().map(str::trim) {
        Some("application/dtmf-relay") => body.lines().find_map(|line| {
            let (k, v) = line.split_once('=')?;
            k.trim()
                .eq_ignore_ascii_case("signal")
                .then(|| v.trim().to_string())
        }),
        Some("application/dtmf") => Some(body.trim().to_string()),
        _ => return Err(415),
    };
    let digit = value.and_then(|v| match v.as_str() {
        "10" => Some('*'),
        "11" => Some('#'),
        v if v.len() == 1 => v
            .chars()
            .next()
            .filter(|c| c.is_ascii_digit() || "*#ABCDabcd".contains(*c))
            .map(|c| c.to_ascii_uppercase()),
        _ => None,
    });
    digit.map(Some).ok_or(400)
}

pub fn local_addr_hint(advertised: SocketAddr) -> String {
    advertised.to_string()
}
