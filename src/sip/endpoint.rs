//! The transaction layer (RFC 3261 §17): matches incoming messages to transactions, keeps the
//! bytes to retransmit, runs every transaction timer from one deadline queue, and hands the
//! transaction user what is new. Sans-IO: datagrams and `now` in, transmits and events out.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, VecDeque};
use std::net::SocketAddr;
use std::time::Instant;

use super::SipError;
use super::admission::{Admission, AdmissionConfig, AdmissionStats, Verdict};
use super::message::{self, MessageExt, Method, Parsed, Request, Response, ResponseSpec};
use super::transaction::{
    ClientInvite, ClientNonInvite, Fired, RequestVerdict, ServerInvite, ServerNonInvite,
    TimerConfig,
};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TransportKind {
    Udp,
    Tcp,
    /// TCP under TLS (RFC 3261 §26.2.1): on its own port, `transport=tls` in our URIs.
    Tls,
}

impl TransportKind {
    pub fn reliable(self) -> bool {
        self != TransportKind::Udp
    }
    pub fn via_name(self) -> &'static str {
        match self {
            TransportKind::Udp => "UDP",
            TransportKind::Tcp => "TCP",
            TransportKind::Tls => "TLS",
        }
    }
}

impl TransportKind {
    /// The transport a URI asks for (RFC 3261 §19.1.1, RFC 5630): `sips:` or
    /// `transport=tls` is TLS, `transport=tcp` TCP, anything else UDP.
    pub fn of_uri(uri: &str) -> TransportKind {
        let uri = uri.trim().trim_start_matches('<');
        if uri
            .get(..5)
            .is_some_and(|s| s.eq_ignore_ascii_case("sips:"))
        {
            return TransportKind::Tls;
        }
        let params = uri.split('>').next().unwrap_or(uri);
        for param in params.split(';').skip(1) {
            let (name, value) = param.split_once('=').unwrap_or((param, ""));
            if name.trim().eq_ignore_ascii_case("transport") {
                let value = value.trim();
                if value.eq_ignore_ascii_case("tls") {
                    return TransportKind::Tls;
                }
                if value.eq_ignore_ascii_case("tcp") {
                    return TransportKind::Tcp;
                }
            }
        }
        TransportKind::Udp
    }

    /// The port a URI without one means (RFC 3261 §19.1.2): 5061 for TLS.
    pub fn default_port(self) -> u16 {
        match self {
            TransportKind::Tls => 5061,
            _ => 5060,
        }
    }
}

/// The far end of one hop: where a message came from or goes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Peer {
    pub addr: SocketAddr,
    pub transport: TransportKind,
}

#[derive(Debug, Clone)]
pub struct Transmit {
    pub to: Peer,
    pub data: Vec<u8>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TxnId(u64);

#[derive(Debug)]
pub enum EndpointEvent {
    /// A new request (not ACK, not CANCEL) opened a server transaction.
    Request {
        txn: TxnId,
        request: Request,
        source: Peer,
    },
    /// A CANCEL matched a server INVITE transaction that has not answered yet; the CANCEL
    /// itself has been answered 200 (RFC 3261 §9.2).
    Cancel {
        invite: TxnId,
    },
    /// An ACK that belongs to no transaction: the ACK for a 2xx, for the dialog layer.
    Ack {
        request: Request,
        source: Peer,
    },
    Response {
        txn: TxnId,
        response: Response,
    },
    /// A 2xx to an INVITE whose client transaction is gone: a retransmission the dialog
    /// layer must ACK again (RFC 3261 §13.2.2.4).
    StrayInviteOk {
        response: Response,
        source: Peer,
    },
    /// Client: no final response in time. Server INVITE: no ACK for our final response.
    Timeout {
        txn: TxnId,
    },
}

enum ServerMachine {
    Invite(ServerInvite),
    NonInvite(ServerNonInvite),
}

struct ServerTxn {
    machine: ServerMachine,
    key: ServerKey,
    /// Set for requests without a To tag, to find merged requests (RFC 3261 §8.2.2.2).
    merge: Option<MergeKey>,
    /// Another transaction already had this request's From tag, Call-ID and CSeq.
    merged: bool,
    request: Request,
    peer: Peer,
    last_response: Option<Vec<u8>>,
    scheduled: Option<Instant>,
}

enum ClientMachine {
    Invite(ClientInvite),
    NonInvite(ClientNonInvite),
}

struct ClientTxn {
    machine: ClientMachine,
    key: ClientKey,
    request: Request,
    bytes: Vec<u8>,
    peer: Peer,
    scheduled: Option<Instant>,
}

/// RFC 3261 §17.2.3: branch, sent-by and method (ACK matches as INVITE).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct ServerKey {
    branch: String,
    sent_by: String,
    invite: bool,
    cancel: bool,
}

/// RFC 3261 §8.2.2.2: a request without a To tag is the same request as another if From tag,
/// Call-ID and CSeq match; arriving in a different transaction it was forked and merged.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct MergeKey {
    from_tag: String,
    call_id: String,
    seq: u32,
    method: String,
}

/// RFC 3261 §17.1.3: branch and CSeq method.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct ClientKey {
    branch: String,
    method: String,
}

pub const ALLOW: &str = "INVITE, ACK, BYE, CANCEL, OPTIONS, INFO, REGISTER, REFER";

pub struct Endpoint {
    timers: TimerConfig,
    next_id: u64,
    servers: HashMap<TxnId, ServerTxn>,
    server_index: HashMap<ServerKey, TxnId>,
    merge_index: HashMap<MergeKey, TxnId>,
    clients: HashMap<TxnId, ClientTxn>,
    client_index: HashMap<ClientKey, TxnId>,
    deadlines: BinaryHeap<Reverse<(Instant, TxnId)>>,
    transmits: VecDeque<Transmit>,
    events: VecDeque<EndpointEvent>,
    /// Server transactions linger for Timer J (32 s over UDP) to absorb retransmissions;
    /// a flood of new requests must not grow memory without bound.
    max_server_transactions: usize,
    refused_for_capacity: u64,
    /// Who may start calls how fast (see `admission`).
    admission: Admission,
}

/// Far above any real load (2,000 calls make a few thousand transactions), low enough that
/// a flood stays within tens of megabytes.
pub const MAX_SERVER_TRANSACTIONS: usize = 50_000;

impl Endpoint {
    /// For tests: a smaller transaction limit.
    pub fn with_transaction_limit(mut self, limit: usize) -> Self {
        self.max_server_transactions = limit;
        self
    }

    pub fn new(timers: TimerConfig) -> Self {
        Endpoint {
            timers,
            next_id: 1,
            servers: HashMap::new(),
            server_index: HashMap::new(),
            merge_index: HashMap::new(),
            clients: HashMap::new(),
            client_index: HashMap::new(),
            deadlines: BinaryHeap::new(),
            transmits: VecDeque::new(),
            events: VecDeque::new(),
            max_server_transactions: MAX_SERVER_TRANSACTIONS,
            refused_for_capacity: 0,
            admission: Admission::new(AdmissionConfig::unlimited()),
        }
    }

    /// Limits on new calls per source (none until set).
    pub fn set_admission(&mut self, cfg: AdmissionConfig) {
        self.admission = Admission::new(cfg);
    }

    pub fn admission_stats(&self) -> AdmissionStats {
        self.admission.stats()
    }

    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.transmits.pop_front()
    }

    pub fn poll_event(&mut self) -> Option<EndpointEvent> {
        self.events.pop_front()
    }

    pub fn poll_timeout(&self) -> Option<Instant> {
        self.deadlines.peek().map(|Reverse((t, _))| *t)
    }

    pub fn transactions(&self) -> usize {
        self.servers.len() + self.clients.len()
    }

    /// Client transactions still waiting for a final response (not those lingering only to
    /// absorb retransmissions).
    pub fn pending_requests(&self) -> usize {
        self.clients
            .values()
            .filter(|t| match &t.machine {
                ClientMachine::Invite(m) => matches!(
                    m.state(),
                    super::transaction::ClientInviteState::Calling
                        | super::transaction::ClientInviteState::Proceeding
                ),
                ClientMachine::NonInvite(m) => matches!(
                    m.state(),
                    super::transaction::ClientNonInviteState::Trying
                        | super::transaction::ClientNonInviteState::Proceeding
                ),
            })
            .count()
    }

    pub fn handle_input(&mut self, now: Instant, source: Peer, data: &[u8]) {
        if super::framing::is_keepalive(data) {
            return;
        }
        if data.starts_with(b"INVITE ") && self.admission.flooding(now, source.addr.ip()) {
            return;
        }
        match message::parse(data) {
            Ok(Parsed::Request(mut req)) => {
                message::stamp_received(&mut req, source.addr);
                self.on_request(now, source, req);
            }
            Ok(Parsed::Response(resp)) => self.on_response(now, source, resp),
            Err(failure) => {
                tracing::debug!(from = %source.addr, error = %failure.error, "dropping unparsable SIP message");
                let reply = match (
                    &failure.error,
                    unknown_method(failure.start_line.as_deref()),
                ) {
                    (SipError::RequestLine(e), _) => {
                        message::bare_response(data, e.status(), &e.to_string(), &[])
                    }
                    (_, Some(_)) => {
                        message::bare_response(data, 501, "unknown method", &[("Allow", ALLOW)])
                    }
                    (e, None) => message::bare_response(data, 400, &e.to_string(), &[]),
                };
                if let Some(data) = reply {
                    self.transmits.push_back(Transmit { to: source, data });
                }
            }
        }
    }

    fn on_request(&mut self, now: Instant, source: Peer, req: Request) {
        let Some(key) = server_key(&req) else {
            // Unreachable after `parse` (it checks the top Via); kept so a request we could
            // not key is answered rather than confused with another.
            self.send_stateless(
                source,
                &req,
                &ResponseSpec::new(400).header("Warning", "399 hotline \"unusable Via\""),
            );
            return;
        };
        if let Some(&id) = self.server_index.get(&key) {
            let is_ack = req.method == Method::Ack;
            let Some(txn) = self.servers.get_mut(&id) else {
                return;
            };
            let verdict = match &mut txn.machine {
                ServerMachine::Invite(m) => m.on_request(now, is_ack),
                ServerMachine::NonInvite(m) => m.on_request(),
            };
            match verdict {
                RequestVerdict::ResendLast => {
                    if let Some(data) = txn.last_response.clone() {
                        self.transmits.push_back(Transmit { to: txn.peer, data });
                    }
                }
                RequestVerdict::Ack { pass_to_tu: true } => {
                    self.events.push_back(EndpointEvent::Ack {
                        request: req,
                        source,
                    })
                }
                RequestVerdict::Ack { .. } | RequestVerdict::Absorb => {}
            }
            self.reschedule_server(id);
            return;
        }
        if req.method == Method::Invite && req.to_tag().is_none() {
            match self.admission.new_call(now, source.addr.ip()) {
                Verdict::Admit => {}
                Verdict::Refuse => {
                    self.send_stateless(
                        source,
                        &req,
                        &ResponseSpec::new(503).header("Retry-After", "5"),
                    );
                    return;
                }
                Verdict::Drop => return,
            }
        }
        match req.method {
            Method::Ack => self.events.push_back(EndpointEvent::Ack {
                request: req,
                source,
            }),
            _ if self.servers.len() >= self.max_server_transactions => {
                self.refused_for_capacity += 1;
                if self.refused_for_capacity.is_power_of_two() {
                    tracing::warn!(
                        refused = self.refused_for_capacity,
                        limit = self.max_server_transactions,
                        "too many SIP transactions at once; new requests get 503"
                    );
                }
                self.send_stateless(
                    source,
                    &req,
                    &ResponseSpec::new(503).header("Retry-After", "5"),
                );
            }
            Method::Cancel => self.on_cancel(now, source, req, key),
            _ => {
                let id = self.new_id();
                let reliable = source.transport.reliable();
                let machine = if req.method == Method::Invite {
                    ServerMachine::Invite(ServerInvite::new(self.timers, reliable))
                } else {
                    ServerMachine::NonInvite(ServerNonInvite::new(self.timers, reliable))
                };
                self.server_index.insert(key.clone(), id);
                let merge = merge_key(&req);
                // "Being handled": the earlier one has no final response yet. One that was
                // answered is done with, and a client retrying after a 401 with the same
                // CSeq (against §22.2, but seen) is not a fork.
                let merged = merge.as_ref().is_some_and(|m| {
                    self.merge_index
                        .get(m)
                        .and_then(|other| self.servers.get(other))
                        .is_some_and(|t| awaiting_final(&t.machine))
                });
                if let Some(m) = merge.clone().filter(|_| !merged) {
                    self.merge_index.insert(m, id);
                }
                self.servers.insert(
                    id,
                    ServerTxn {
                        machine,
                        key,
                        merge,
                        merged,
                        request: req.clone(),
                        peer: source,
                        last_response: None,
                        scheduled: None,
                    },
                );
                self.events.push_back(EndpointEvent::Request {
                    txn: id,
                    request: req,
                    source,
                });
            }
        }
    }

    fn on_cancel(&mut self, now: Instant, source: Peer, cancel: Request, key: ServerKey) {
        let invite_key = ServerKey {
            cancel: false,
            invite: true,
            ..key.clone()
        };
        let invite = self.server_index.get(&invite_key).copied();
        let pending = invite.filter(|id| {
            matches!(self.servers.get(id).map(|t| &t.machine),
                Some(ServerMachine::Invite(m)) if m.state() == super::transaction::ServerInviteState::Proceeding)
        });
        // The CANCEL is a transaction of its own and always gets its own final response.
        let id = self.new_id();
        let machine = ServerMachine::NonInvite(ServerNonInvite::new(
            self.timers,
            source.transport.reliable(),
        ));
        self.server_index.insert(key.clone(), id);
        self.servers.insert(
            id,
            ServerTxn {
                machine,
                key,
                merge: None,
                merged: false,
                request: cancel,
                peer: source,
                last_response: None,
                scheduled: None,
            },
        );
        match (invite, pending) {
            (_, Some(invite)) => {
                self.respond(now, id, &ResponseSpec::new(200));
                self.events.push_back(EndpointEvent::Cancel { invite });
            }
            // Too late: the INVITE already has its final response; the CANCEL has no effect.
            (Some(_), None) => self.respond(now, id, &ResponseSpec::new(200)),
            (None, _) => self.respond(now, id, &ResponseSpec::new(481)),
        }
    }

    fn on_response(&mut self, now: Instant, source: Peer, resp: Response) {
        let code = resp.status_code.code();
        let key = resp.branch().map(|branch| ClientKey {
            branch,
            method: resp.cseq().1.to_string(),
        });
        let Some(id) = key.and_then(|k| self.client_index.get(&k).copied()) else {
            if resp.cseq().1 == Method::Invite && (200..300).contains(&code) {
                self.events.push_back(EndpointEvent::StrayInviteOk {
                    response: resp,
                    source,
                });
            } else {
                tracing::debug!(code, from = %source.addr, "response matches no transaction");
            }
            return;
        };
        let Some(txn) = self.clients.get_mut(&id) else {
            return;
        };
        let verdict = match &mut txn.machine {
            ClientMachine::Invite(m) => m.on_response(now, code),
            ClientMachine::NonInvite(m) => m.on_response(now, code),
        };
        if verdict.send_ack {
            let ack = message::build_ack_for_failure(&txn.request, &resp);
            self.transmits.push_back(Transmit {
                to: txn.peer,
                data: message::to_bytes(ack),
            });
        }
        if verdict.pass_to_tu {
            self.events.push_back(EndpointEvent::Response {
                txn: id,
                response: resp,
            });
        }
        self.reschedule_client(id);
    }

    /// Answer a server transaction. Responses after the final one are ignored.
    pub fn respond(&mut self, now: Instant, id: TxnId, spec: &ResponseSpec) {
        let Some(txn) = self.servers.get_mut(&id) else {
            return;
        };
        let allowed = match &mut txn.machine {
            ServerMachine::Invite(m) => m.on_send_response(now, spec.code),
            ServerMachine::NonInvite(m) => m.on_send_response(now, spec.code),
        };
        if !allowed {
            tracing::debug!(code = spec.code, "response after final response dropped");
            return;
        }
        let data = message::to_bytes(message::build_response(&txn.request, spec));
        let to = reply_to(&txn.request, txn.peer);
        txn.last_response = Some(data.clone());
        self.transmits.push_back(Transmit { to, data });
        self.reschedule_server(id);
    }

    /// A 2xx we sent was acknowledged (the dialog layer matched the ACK): stop resending it.
    pub fn confirm_invite(&mut self, now: Instant, id: TxnId) {
        if let Some(ServerTxn {
            machine: ServerMachine::Invite(m),
            ..
        }) = self.servers.get_mut(&id)
        {
            m.on_request(now, true);
        }
        self.reschedule_server(id);
    }

    /// RFC 3261 §8.2.2.2: this request (no To tag) repeats the From tag, Call-ID and CSeq of
    /// one still in progress under another branch; the UA core answers it 482.
    pub fn is_merged(&self, id: TxnId) -> bool {
        self.servers.get(&id).is_some_and(|t| t.merged)
    }

    /// The request a server transaction was opened for.
    pub fn server_request(&self, id: TxnId) -> Option<&Request> {
        self.servers.get(&id).map(|t| &t.request)
    }

    /// Start a client transaction. The request must carry a fresh branch.
    pub fn send_request(&mut self, now: Instant, to: Peer, request: Request) -> TxnId {
        let id = self.new_id();
        let reliable = to.transport.reliable();
        let machine = if request.method == Method::Invite {
            ClientMachine::Invite(ClientInvite::new(now, self.timers, reliable))
        } else {
            ClientMachine::NonInvite(ClientNonInvite::new(now, self.timers, reliable))
        };
        let key = ClientKey {
            branch: request.branch().unwrap_or_default(),
            method: request.method.to_string(),
        };
        let bytes = message::to_bytes(request.clone());
        self.transmits.push_back(Transmit {
            to,
            data: bytes.clone(),
        });
        self.client_index.insert(key.clone(), id);
        self.clients.insert(
            id,
            ClientTxn {
                machine,
                key,
                request,
                bytes,
                peer: to,
                scheduled: None,
            },
        );
        self.reschedule_client(id);
        id
    }

    /// Drop a client transaction that will never complete (an INVITE whose CANCEL got no
    /// final response, RFC 3261 §9.1).
    pub fn abandon_client(&mut self, id: TxnId) {
        if let Some(txn) = self.clients.remove(&id) {
            self.client_index.remove(&txn.key);
        }
    }

    /// The request a client transaction carries (to build its CANCEL, for instance).
    pub fn client_request(&self, id: TxnId) -> Option<(&Request, Peer)> {
        self.clients.get(&id).map(|t| (&t.request, t.peer))
    }

    /// Send without a transaction: ACKs for 2xx, and replies to requests we will not track.
    pub fn send_raw(&mut self, to: Peer, data: Vec<u8>) {
        self.transmits.push_back(Transmit { to, data });
    }

    fn send_stateless(&mut self, source: Peer, req: &Request, spec: &ResponseSpec) {
        if req.method == Method::Ack {
            return;
        }
        let data = message::to_bytes(message::build_response(req, spec));
        let to = reply_to(req, source);
        self.transmits.push_back(Transmit { to, data });
    }

    pub fn handle_timeout(&mut self, now: Instant) {
        while let Some(Reverse((at, id))) = self.deadlines.peek().copied() {
            if at > now {
                break;
            }
            self.deadlines.pop();
            if let Some(txn) = self.servers.get_mut(&id) {
                if txn.scheduled != Some(at) {
                    continue;
                }
                txn.scheduled = None;
                let fired = match &mut txn.machine {
                    ServerMachine::Invite(m) => m.handle_timeout(now),
                    ServerMachine::NonInvite(m) => m.handle_timeout(now),
                };
                match fired {
                    Fired::Retransmit => {
                        if let Some(data) = txn.last_response.clone() {
                            let to = reply_to(&txn.request, txn.peer);
                            self.transmits.push_back(Transmit { to, data });
                        }
                    }
                    Fired::TimedOut => self.events.push_back(EndpointEvent::Timeout { txn: id }),
                    Fired::Terminated | Fired::Nothing => {}
                }
                self.reschedule_server(id);
            } else if let Some(txn) = self.clients.get_mut(&id) {
                if txn.scheduled != Some(at) {
                    continue;
                }
                txn.scheduled = None;
                let fired = match &mut txn.machine {
                    ClientMachine::Invite(m) => m.handle_timeout(now),
                    ClientMachine::NonInvite(m) => m.handle_timeout(now),
                };
                match fired {
                    Fired::Retransmit => self.transmits.push_back(Transmit {
                        to: txn.peer,
                        data: txn.bytes.clone(),
                    }),
                    Fired::TimedOut => self.events.push_back(EndpointEvent::Timeout { txn: id }),
                    Fired::Terminated | Fired::Nothing => {}
                }
                self.reschedule_client(id);
            }
        }
    }

    fn reschedule_server(&mut self, id: TxnId) {
        let Some(txn) = self.servers.get_mut(&id) else {
            return;
        };
        let (done, next) = match &txn.machine {
            ServerMachine::Invite(m) => (m.is_terminated(), m.poll_timeout()),
            ServerMachine::NonInvite(m) => (m.is_terminated(), m.poll_timeout()),
        };
        if done {
            let key = txn.key.clone();
            let merge = txn.merge.take();
            self.servers.remove(&id);
            self.server_index.remove(&key);
            if let Some(m) = merge
                && self.merge_index.get(&m) == Some(&id)
            {
                self.merge_index.remove(&m);
            }
            return;
        }
        if next != txn.scheduled {
            txn.scheduled = next;
            if let Some(t) = next {
                self.deadlines.push(Reverse((t, id)));
            }
        }
    }

    fn reschedule_client(&mut self, id: TxnId) {
        let Some(txn) = self.clients.get_mut(&id) else {
            return;
        };
        let (done, next) = match &txn.machine {
            ClientMachine::Invite(m) => (m.is_terminated(), m.poll_timeout()),
            ClientMachine::NonInvite(m) => (m.is_terminated(), m.poll_timeout()),
        };
        if done {
            let key = txn.key.clone();
            self.clients.remove(&id);
            self.client_index.remove(&key);
            return;
        }
        if next != txn.scheduled {
            txn.scheduled = next;
            if let Some(t) = next {
                self.deadlines.push(Reverse((t, id)));
            }
        }
    }

    fn new_id(&mut self) -> TxnId {
        self.next_id += 1;
        TxnId(self.next_id)
    }
}

/// RFC 3261 §18.2.2: on a connection, responses go back on that connection; on UDP, to the
/// Via's received/rport address.
fn reply_to(req: &Request, source: Peer) -> Peer {
    if source.transport.reliable() {
        return source;
    }
    Peer {
        addr: message::response_destination(req, source.addr),
        ..source
    }
}

fn server_key(req: &Request) -> Option<ServerKey> {
    let via = req.top_via()?;
    let branch = match via.branch() {
        Some(b) if b.to_string().starts_with(message::BRANCH_COOKIE) => b.to_string(),
        // RFC 3261 §17.2.3: a request from an RFC 2543 element (no magic cookie) matches on
        // Request-URI, From tag, Call-ID, CSeq number and top Via. The To tag is left out: an
        // ACK for our error response carries the tag the INVITE lacked. The method part of
        // the match is the `invite`/`cancel` flags below. RFC 4475 §3.1.1.1 and §3.4.1.
        _ => format!(
            "rfc2543|{}|{}|{}|{}|{}",
            req.uri,
            req.sender_tag().unwrap_or_default(),
            req.call_id(),
            req.cseq().0,
            via
        ),
    };
    Some(ServerKey {
        branch,
        sent_by: via.uri.host_with_port.to_string(),
        invite: matches!(req.method, Method::Invite | Method::Ack),
        cancel: req.method == Method::Cancel,
    })
}

fn awaiting_final(machine: &ServerMachine) -> bool {
    use super::transaction::{ServerInviteState as I, ServerNonInviteState as N};
    match machine {
        ServerMachine::Invite(m) => m.state() == I::Proceeding,
        ServerMachine::NonInvite(m) => matches!(m.state(), N::Trying | N::Proceeding),
    }
}

fn merge_key(req: &Request) -> Option<MergeKey> {
    if req.to_tag().is_some() || matches!(req.method, Method::Ack | Method::Cancel) {
        return None;
    }
    let (seq, method) = req.cseq();
    Some(MergeKey {
        from_tag: req.sender_tag()?,
        call_id: req.call_id().to_string(),
        seq,
        method: method.to_string(),
    })
}

/// A start line that is a well-formed request with a method we have never heard of.
fn unknown_method(start_line: Option<&str>) -> Option<String> {
    let mut parts = start_line?.split(' ');
    let method = parts.next()?;
    let uri = parts.next()?;
    let version = parts.next()?;
    let is_token = !method.is_empty()
        && method
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-.!%*_+`'~".contains(&b));
    let known = method.parse::<Method>().is_ok();
    (is_token && !known && uri.contains(':') && version == "SIP/2.0").then(|| method.to_string())
}
