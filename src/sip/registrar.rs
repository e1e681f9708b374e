//! RFC 3261 §10 registrar, sans-IO, owned by the `UserAgent`: accounts and their bindings,
//! digest-authenticated REGISTER, per-IP throttling of failures, binding expiry and OPTIONS
//! keep-alive bookkeeping (the UA sends the OPTIONS this asks for and reports the outcome).

use std::collections::{HashMap, HashSet, VecDeque};
use std::net::IpAddr;
use std::time::{Duration, Instant};

use super::digest::{self, Algorithm, DigestAuth, Verdict};
use super::endpoint::Peer;
use super::message::{MessageExt, Request, ResponseSpec};

pub use crate::acd::model::Credentials;

/// One account that may register: the agent's extension and its digest HA1s.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Account {
    pub user: String,
    pub credentials: Credentials,
}

/// A live registered contact: the URI to put in the Request-URI, and where to send (the
/// REGISTER's source address and transport, which gets through NAT).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Contact {
    pub uri: String,
    pub peer: Peer,
}

#[derive(Debug, Clone)]
pub struct RegistrarConfig {
    /// Below this a REGISTER gets 423 Interval Too Brief (with Min-Expires).
    pub min_expires: Duration,
    /// Longer requests are cut to this.
    pub max_expires: Duration,
    /// When neither the contact nor the request names an expiry.
    pub default_expires: Duration,
    /// Contacts per AOR; a new one beyond this replaces the one closest to expiry.
    pub max_contacts: usize,
    /// OPTIONS to every contact this often; None: no keep-alive.
    pub keepalive: Option<Duration>,
    /// This many failed authentications from one IP within `fail_window`...
    pub fail_limit: u32,
    pub fail_window: Duration,
    /// ...and REGISTERs from that IP get 403 unchecked for this long.
    pub block_for: Duration,
    /// Source IPs tracked for failures; the oldest is dropped beyond this.
    pub max_tracked_ips: usize,
}

impl Default for RegistrarConfig {
    fn default() -> Self {
        RegistrarConfig {
            min_expires: Duration::from_secs(60),
            max_expires: Duration::from_secs(3600),
            default_expires: Duration::from_secs(3600),
            max_contacts: 10,
            keepalive: Some(Duration::from_secs(30)),
            fail_limit: 5,
            fail_window: Duration::from_secs(60),
            block_for: Duration::from_secs(300),
            max_tracked_ips: 4096,
        }
    }
}

struct Binding {
    id: u64,
    uri: String,
    peer: Peer,
    expires_at: Instant,
    call_id: String,
    cseq: u32,
    alive: bool,
    /// When the next OPTIONS goes out (None while one is in flight).
    next_ping: Option<Instant>,
}

struct Failures {
    count: u32,
    window_start: Instant,
    blocked_until: Option<Instant>,
}

/// A keep-alive the UA should send.
#[derive(Debug, Clone)]
pub struct Ping {
    pub user: String,
    pub binding: u64,
    pub uri: String,
    pub peer: Peer,
}

pub struct Registrar {
    pub cfg: RegistrarConfig,
    pub realm: String,
    pub(crate) auth: DigestAuth,
    accounts: HashMap<String, Credentials>,
    bindings: HashMap<String, Vec<Binding>>,
    reachable: HashSet<String>,
    changes: VecDeque<(String, bool)>,
    failures: HashMap<IpAddr, Failures>,
    failure_order: VecDeque<IpAddr>,
    next_binding: u64,
    deadline: Option<Instant>,
}

/// What to answer a REGISTER with.
pub struct RegisterOutcome {
    pub response: ResponseSpec,
    /// A failed authentication (counted against the source IP).
    pub failed: bool,
}

impl Registrar {
    pub fn new(auth: DigestAuth) -> Self {
        Registrar {
            cfg: RegistrarConfig::default(),
            realm: "hotline".into(),
            auth,
            accounts: HashMap::new(),
            bindings: HashMap::new(),
            reachable: HashSet::new(),
            changes: VecDeque::new(),
            failures: HashMap::new(),
            failure_order: VecDeque::new(),
            next_binding: 0,
            deadline: None,
        }
    }

    pub fn set_accounts(&mut self, now: Option<Instant>, accounts: Vec<Account>) {
        self.accounts = accounts
            .into_iter()
            .map(|a| (a.user, a.credentials))
            .collect();
        let gone: Vec<String> = self
            .bindings
            .keys()
            .filter(|u| !self.accounts.contains_key(*u))
            .cloned()
            .collect();
        for user in gone {
            self.bindings.remove(&user);
            self.update_reachability(now, &user);
        }
        self.recompute_deadline();
    }

    pub fn credentials(&self, user: &str) -> Option<Credentials> {
        self.accounts.get(user).cloned()
    }

    /// The algorithms to offer a user: those it has HA1 for (both for an unknown user, so
    /// the challenge does not tell who exists).
    pub fn algorithms_for(&self, user: Option<&str>) -> Vec<Algorithm> {
        let creds = user.and_then(|u| self.accounts.get(u));
        let mut algs = Vec::new();
        if creds.is_none_or(|c| c.ha1_sha256.is_some()) {
            algs.push(Algorithm::Sha256);
        }
        if creds.is_none_or(|c| c.ha1_md5.is_some()) {
            algs.push(Algorithm::Md5);
        }
        if algs.is_empty() {
            algs = vec![Algorithm::Sha256, Algorithm::Md5];
        }
        algs
    }

    pub fn challenge_headers(
        &mut self,
        now: Instant,
        user: Option<&str>,
        stale: bool,
    ) -> Vec<String> {
        let algs = self.algorithms_for(user);
        let realm = self.realm.clone();
        self.auth.challenges(now, &realm, &algs, stale)
    }

    /// Check a request's credentials header value (Authorization or Proxy-Authorization).
    pub fn verify(
        &mut self,
        now: Instant,
        method: &str,
        expected_user: Option<&str>,
        header: &str,
    ) -> Verdict {
        let Some(parsed) = digest::parse_authorization(header) else {
            return Verdict::Rechallenge;
        };
        let accounts = &self.accounts;
        self.auth
            .verify(now, method, &self.realm, expected_user, &parsed, |u| {
                accounts.get(u).cloned()
            })
    }

    /// Of several credentials headers (one per realm a phone knows), the one for our realm,
    /// else the first.
    pub fn pick_credentials(&self, values: Vec<String>) -> Option<String> {
        let ours = values
            .iter()
            .position(|v| digest::parse_authorization(v).is_some_and(|p| p.realm == self.realm));
        values.into_iter().nth(ours.unwrap_or(0))
    }

    pub fn is_blocked(&self, now: Instant, ip: IpAddr) -> bool {
        self.failures
            .get(&ip)
            .and_then(|f| f.blocked_until)
            .is_some_and(|until| now < until)
    }

    pub fn tracked_ips(&self) -> usize {
        self.failures.len()
    }

    pub fn record_failure(&mut self, now: Instant, ip: IpAddr) {
        let cfg = &self.cfg;
        if let Some(f) = self.failures.get_mut(&ip) {
            if now.saturating_duration_since(f.window_start) > cfg.fail_window {
                f.count = 0;
                f.window_start = now;
            }
            f.count += 1;
            if f.count >= cfg.fail_limit {
                f.blocked_until = Some(now + cfg.block_for);
                f.count = 0;
                f.window_start = now;
            }
            return;
        }
        while self.failures.len() >= cfg.max_tracked_ips.max(1) {
            let Some(old) = self.failure_order.pop_front() else {
                break;
            };
            self.failures.remove(&old);
        }
        let blocked_until = (cfg.fail_limit <= 1).then(|| now + cfg.block_for);
        self.failures.insert(
            ip,
            Failures {
                count: 1,
                window_start: now,
                blocked_until,
            },
        );
        self.failure_order.push_back(ip);
    }

    /// Handle an authenticated-or-not REGISTER.
    pub fn register(&mut self, now: Instant, req: &Request, source: Peer) -> RegisterOutcome {
        let plain = |response: ResponseSpec| RegisterOutcome {
            response,
            failed: false,
        };
        if self.is_blocked(now, source.addr.ip()) {
            return plain(ResponseSpec::new(403));
        }
        let aor = req.to_header_uri_user().unwrap_or_default();
        let Some(header) = self.pick_credentials(req.header_values("Authorization")) else {
            return plain(self.challenge_response(now, 401, Some(&aor), false));
        };
        match self.verify(now, "REGISTER", Some(&aor), &header) {
            Verdict::Ok(_) => {}
            Verdict::Rechallenge => {
                return plain(self.challenge_response(now, 401, Some(&aor), false));
            }
            Verdict::Stale | Verdict::Replay => {
                return plain(self.challenge_response(now, 401, Some(&aor), true));
            }
            Verdict::Forbidden => {
                return RegisterOutcome {
                    response: ResponseSpec::new(403),
                    failed: true,
                };
            }
        }
        let response = match self.update_bindings(now, req, source, &aor) {
            Ok(()) => self.ok_response(now, &aor),
            Err(spec) => *spec,
        };
        self.update_reachability(Some(now), &aor);
        self.recompute_deadline();
        plain(response)
    }

    fn challenge_response(
        &mut self,
        now: Instant,
        code: u16,
        user: Option<&str>,
        stale: bool,
    ) -> ResponseSpec {
        let name = if code == 407 {
            "Proxy-Authenticate"
        } else {
            "WWW-Authenticate"
        };
        let mut spec = ResponseSpec::new(code);
        for value in self.challenge_headers(now, user, stale) {
            spec = spec.header(name, value);
        }
        spec
    }

    fn update_bindings(
        &mut self,
        now: Instant,
        req: &Request,
        source: Peer,
        aor: &str,
    ) -> Result<(), Box<ResponseSpec>> {
        let contacts: Vec<String> = req
            .header_values("Contact")
            .iter()
            .flat_map(|v| split_contacts(v))
            .collect();
        if contacts.is_empty() {
            return Ok(());
        }
        let header_expires = req
            .header_values("Expires")
            .first()
            .and_then(|v| v.trim().parse::<u64>().ok());
        let call_id = req.call_id().to_string();
        let (cseq, _) = req.cseq();
        if contacts.iter().any(|c| c.trim() == "*") {
            if contacts.len() != 1 || header_expires != Some(0) {
                return Err(Box::new(ResponseSpec::new(400)));
            }
            self.bindings.remove(aor);
            return Ok(());
        }
        let mut parsed = Vec::new();
        for c in &contacts {
            let Some((uri, param_expires)) = parse_contact(c) else {
                return Err(Box::new(ResponseSpec::new(400)));
            };
            let secs = param_expires
                .or(header_expires)
                .unwrap_or(self.cfg.default_expires.as_secs());
            if secs != 0 && secs < self.cfg.min_expires.as_secs() {
                return Err(Box::new(
                    ResponseSpec::new(423)
                        .header("Min-Expires", self.cfg.min_expires.as_secs().to_string()),
                ));
            }
            parsed.push((uri, secs.min(self.cfg.max_expires.as_secs())));
        }
        let list = self.bindings.entry(aor.to_string()).or_default();
        // RFC 3261 §10.3 step 7: an older CSeq from the same Call-ID is out of order.
        if parsed.iter().any(|(uri, _)| {
            list.iter()
                .any(|b| &b.uri == uri && b.call_id == call_id && cseq <= b.cseq)
        }) {
            return Err(Box::new(ResponseSpec::new(500).header("Retry-After", "1")));
        }
        for (uri, secs) in parsed {
            let pos = list.iter().position(|b| b.uri == uri);
            if secs == 0 {
                if let Some(i) = pos {
                    list.remove(i);
                }
                continue;
            }
            let next_ping = self.cfg.keepalive.map(|k| now + k);
            let expires_at = now + Duration::from_secs(secs);
            match pos {
                Some(i) => {
                    let b = &mut list[i];
                    b.peer = source;
                    b.expires_at = expires_at;
                    b.call_id = call_id.clone();
                    b.cseq = cseq;
                    b.alive = true;
                    if b.next_ping.is_some() {
                        b.next_ping = next_ping;
                    }
                }
                None => {
                    if list.len() >= self.cfg.max_contacts.max(1)
                        && let Some(i) = (0..list.len()).min_by_key(|&i| list[i].expires_at)
                    {
                        list.remove(i);
                    }
                    self.next_binding += 1;
                    list.push(Binding {
                        id: self.next_binding,
                        uri,
                        peer: source,
                        expires_at,
                        call_id: call_id.clone(),
                        cseq,
                        alive: true,
                        next_ping,
                    });
                }
            }
        }
        if list.is_empty() {
            self.bindings.remove(aor);
        }
        Ok(())
    }

    fn ok_response(&self, now: Instant, aor: &str) -> ResponseSpec {
        let mut spec = ResponseSpec::new(200);
        for b in self.bindings.get(aor).into_iter().flatten() {
            let left = b.expires_at.saturating_duration_since(now).as_secs();
            spec = spec.header("Contact", format!("<{}>;expires={left}", b.uri));
        }
        spec
    }

    /// Live, unexpired contacts of a user.
    pub fn contacts(&self, now: Option<Instant>, user: &str) -> Vec<Contact> {
        self.bindings
            .get(user)
            .into_iter()
            .flatten()
            .filter(|b| b.alive && now.is_none_or(|n| b.expires_at > n))
            .map(|b| Contact {
                uri: b.uri.clone(),
                peer: b.peer,
            })
            .collect()
    }

    pub fn poll_reachability(&mut self) -> Option<(String, bool)> {
        self.changes.pop_front()
    }

    fn update_reachability(&mut self, now: Option<Instant>, user: &str) {
        let live = !self.contacts(now, user).is_empty();
        let was = self.reachable.contains(user);
        if live != was {
            if live {
                self.reachable.insert(user.to_string());
            } else {
                self.reachable.remove(user);
            }
            self.changes.push_back((user.to_string(), live));
        }
    }

    pub fn poll_timeout(&self) -> Option<Instant> {
        self.deadline
    }

    fn recompute_deadline(&mut self) {
        self.deadline = self
            .bindings
            .values()
            .flatten()
            .flat_map(|b| [Some(b.expires_at), b.next_ping])
            .flatten()
            .min();
    }

    /// Expire bindings and collect the keep-alives now due.
    pub fn handle_timeout(&mut self, now: Instant) -> Vec<Ping> {
        let mut pings = Vec::new();
        let mut touched = Vec::new();
        for (user, list) in self.bindings.iter_mut() {
            let before = list.len();
            list.retain(|b| b.expires_at > now);
            if list.len() != before {
                touched.push(user.clone());
            }
            for b in list.iter_mut() {
                if b.next_ping.is_some_and(|t| t <= now) {
                    b.next_ping = None;
                    pings.push(Ping {
                        user: user.clone(),
                        binding: b.id,
                        uri: b.uri.clone(),
                        peer: b.peer,
                    });
                }
            }
        }
        self.bindings.retain(|_, l| !l.is_empty());
        for user in touched {
            self.update_reachability(Some(now), &user);
        }
        self.recompute_deadline();
        pings
    }

    /// The outcome of a keep-alive: `alive` false for no answer (or 408/503).
    pub fn ping_result(&mut self, now: Instant, user: &str, binding: u64, alive: bool) {
        let keepalive = self.cfg.keepalive;
        if let Some(b) = self
            .bindings
            .get_mut(user)
            .and_then(|l| l.iter_mut().find(|b| b.id == binding))
        {
            b.alive = alive;
            b.next_ping = keepalive.map(|k| now + k);
        }
        self.update_reachability(Some(now), user);
        self.recompute_deadline();
    }
}

/// Split a Contact header value into its contacts (commas inside quotes or <> do not split).
pub fn split_contacts(value: &str) -> Vec<String> {
    let mut out = Vec::new();
    let (mut start, mut quoted, mut angle) = (0, false, false);
    for (i, c) in value.char_indices() {
        match c {
            '"' if !angle => quoted = !quoted,
            '<' if !quoted => angle = true,
            '>' if !quoted => angle = false,
            ',' if !quoted && !angle => {
                out.push(value[start..i].trim().to_string());
                start = i + 1;
            }
            _ => {}
        }
    }
    out.push(value[start..].trim().to_string());
    out.retain(|c| !c.is_empty());
    out
}

/// One contact: its URI (checked to parse) and its `expires` parameter.
pub fn parse_contact(contact: &str) -> Option<(String, Option<u64>)> {
    if contact.len() > 1024 {
        return None;
    }
    let (uri, params) = match (contact.find('<'), contact.rfind('>')) {
        (Some(open), Some(close)) if open < close => {
            (&contact[open + 1..close], &contact[close + 1..])
        }
        (None, None) => match contact.find(';') {
            Some(i) => (&contact[..i], &contact[i..]),
            None => (contact, ""),
        },
        _ => return None,
    };
    let uri = uri.trim();
    rsip::Uri::try_from(uri).ok()?;
    let expires = params.split(';').find_map(|p| {
        let (k, v) = p.split_once('=')?;
        k.trim()
            .eq_ignore_ascii_case("expires")
            .then(|| v.trim().trim_matches('"').parse::<u64>().ok())?
    });
    Some((uri.to_string(), expires))
}
