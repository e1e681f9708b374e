//! The user agent core: INVITE sessions on top of the transaction layer, for both sides (the
//! server answers callers; the load generator and test client place calls). Sans-IO: the
//! caller feeds datagrams and time, issues commands, and drains transmits and events.

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

mod inbound;
mod outbound;
mod refer_to;

use refer_to::parse_dtmf_info;
pub use refer_to::{parse_refer_to, parse_replaces};

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
}

pub fn local_addr_hint(advertised: SocketAddr) -> String {
    advertised.to_string()
}
