//! Server-side HTTP digest for SIP (RFC 7616, RFC 8760 SHA-256, RFC 2617/3261 compatible):
//! challenges, a robust `Authorization` parser and response verification against stored HA1.
//!
//! Nonces are stateless: `hex(issued_ms ‖ serial) ‖ hex(HMAC-SHA256(secret, that)[..16])`, so a
//! flood of challenges costs no memory. Replay protection keeps, for nonces that have already
//! authenticated a request, the last nonce count (`nc`) in a bounded table; when that table
//! must drop an entry, every nonce issued up to the dropped one (by serial) stops being
//! accepted (the client is re-challenged with `stale=true`), so eviction can never reopen a
//! replay.
//! Sans-IO: `now` is passed in; the secret and the random part come from a seeded generator.

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

use hmac::{Hmac, Mac};
use md5::Md5;
use sha2::{Digest as _, Sha256};

use crate::acd::model::Credentials;

/// Longest header value we parse; real ones are a few hundred bytes.
pub const MAX_HEADER_LEN: usize = 4096;
const MAX_PARAMS: usize = 32;
/// Nonces that authenticated a request, with their last `nc`.
pub const MAX_NONCE_COUNTS: usize = 10_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Algorithm {
    Md5,
    Sha256,
}

impl Algorithm {
    pub fn name(self) -> &'static str {
        match self {
            Algorithm::Md5 => "MD5",
            Algorithm::Sha256 => "SHA-256",
        }
    }

    fn parse(s: &str) -> Option<Algorithm> {
        if s.eq_ignore_ascii_case("MD5") {
            Some(Algorithm::Md5)
        } else if s.eq_ignore_ascii_case("SHA-256") {
            Some(Algorithm::Sha256)
        } else {
            None
        }
    }

    /// Lower-case hex of H(data).
    pub fn hash_hex(self, data: &str) -> String {
        match self {
            Algorithm::Md5 => hex(&Md5::digest(data.as_bytes())),
            Algorithm::Sha256 => hex(&Sha256::digest(data.as_bytes())),
        }
    }

    fn ha1(self, creds: &Credentials) -> Option<&str> {
        match self {
            Algorithm::Md5 => creds.ha1_md5.as_deref(),
            Algorithm::Sha256 => creds.ha1_sha256.as_deref(),
        }
    }
}

/// HA1 = H(user ":" realm ":" password), as stored in `Credentials`.
pub fn ha1(algorithm: Algorithm, user: &str, realm: &str, password: &str) -> String {
    algorithm.hash_hex(&format!("{user}:{realm}:{password}"))
}

pub fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.push(DIGITS[(b >> 4) as usize] as char);
        out.push(DIGITS[(b & 15) as usize] as char);
    }
    out
}

fn unhex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

/// The parameters of a `Digest` credentials header. Names are matched case-insensitively.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DigestResponse {
    pub username: String,
    pub realm: String,
    pub nonce: String,
    pub uri: String,
    pub response: String,
    pub algorithm: Option<String>,
    pub cnonce: Option<String>,
    pub opaque: Option<String>,
    pub qop: Option<String>,
    pub nc: Option<String>,
}

/// Parse `Digest username="…", realm="…", …`. None for anything malformed or oversized; never
/// panics. Quoted strings may hold commas and backslash escapes.
pub fn parse_authorization(value: &str) -> Option<DigestResponse> {
    if value.len() > MAX_HEADER_LEN {
        return None;
    }
    let value = value.trim_start();
    let (scheme, rest) = value.split_at(value.find(|c: char| c.is_ascii_whitespace())?);
    if !scheme.eq_ignore_ascii_case("Digest") {
        return None;
    }
    let mut out = DigestResponse::default();
    let mut seen = 0usize;
    let mut chars = rest.char_indices().peekable();
    let bytes = rest;
    loop {
        // Skip separators.
        while matches!(chars.peek(), Some((_, c)) if c.is_ascii_whitespace() || *c == ',') {
            chars.next();
        }
        let Some(&(start, _)) = chars.peek() else {
            break;
        };
        seen += 1;
        if seen > MAX_PARAMS {
            return None;
        }
        let mut end = start;
        while let Some(&(i, c)) = chars.peek() {
            if c == '=' || c.is_ascii_whitespace() || c == ',' {
                break;
            }
            end = i + c.len_utf8();
            chars.next();
        }
        let name = &bytes[start..end];
        if name.is_empty() {
            return None;
        }
        while matches!(chars.peek(), Some((_, c)) if c.is_ascii_whitespace()) {
            chars.next();
        }
        if !matches!(chars.next(), Some((_, '='))) {
            return None;
        }
        while matches!(chars.peek(), Some((_, c)) if c.is_ascii_whitespace()) {
            chars.next();
        }
        let mut val = String::new();
        if matches!(chars.peek(), Some((_, '"'))) {
            chars.next();
            let mut closed = false;
            while let Some((_, c)) = chars.next() {
                match c {
                    '\\' => val.push(chars.next()?.1),
                    '"' => {
                        closed = true;
                        break;
                    }
                    c => val.push(c),
                }
            }
            if !closed {
                return None;
            }
        } else {
            while let Some(&(_, c)) = chars.peek() {
                if c == ',' || c.is_ascii_whitespace() {
                    break;
                }
                val.push(c);
                chars.next();
            }
        }
        let slot = match name.to_ascii_lowercase().as_str() {
            "username" => &mut out.username,
            "realm" => &mut out.realm,
            "nonce" => &mut out.nonce,
            "uri" => &mut out.uri,
            "response" => &mut out.response,
            "algorithm" => out.algorithm.get_or_insert_with(String::new),
            "cnonce" => out.cnonce.get_or_insert_with(String::new),
            "opaque" => out.opaque.get_or_insert_with(String::new),
            "qop" => out.qop.get_or_insert_with(String::new),
            "nc" => out.nc.get_or_insert_with(String::new),
            _ => continue,
        };
        *slot = val;
    }
    let required = [&out.username, &out.nonce, &out.uri, &out.response];
    if required.iter().any(|v| v.is_empty()) {
        return None;
    }
    Some(out)
}

/// What the credentials in a request amount to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Authenticated as this user.
    Ok(String),
    /// Right password, but the nonce has expired (or was retired): challenge with stale=true.
    Stale,
    /// Not a nonce of ours, an algorithm or qop we did not offer: challenge again.
    Rechallenge,
    /// A nonce count that did not increase: a replay (or a confused client). Re-challenged
    /// with stale=true, so a real phone recovers and a replayer gets nowhere.
    Replay,
    /// Wrong password, wrong realm, unknown user: 403 and a failure counted.
    Forbidden,
}

pub struct DigestAuth {
    secret: [u8; 32],
    pub nonce_lifetime: Duration,
    epoch: Option<Instant>,
    /// nonce -> (issued ms, serial, last nc), for nonces that authenticated something.
    counts: HashMap<String, (u64, u64, u32)>,
    /// Serial number of the next nonce (starts random, so restarts do not repeat nonces).
    next_serial: u64,
    order: VecDeque<String>,
    max_counts: usize,
    /// Nonces with a serial at or below this are no longer accepted (their counts were
    /// dropped to keep the table bounded).
    retired_up_to: Option<u64>,
}

impl DigestAuth {
    /// `seed` drives the secret and the nonces' random part (tests pass a fixed one).
    pub fn new(seed: u64) -> Self {
        let mut rng = fastrand::Rng::with_seed(seed);
        let mut secret = [0u8; 32];
        rng.fill(&mut secret);
        Self::with_secret(secret, rng.u64(..u64::MAX / 2))
    }

    /// `secret` keys the nonces' HMAC and must be unguessable (the UA is given one drawn
    /// from the OS); `first_serial` is public, in every nonce, and need only differ between
    /// restarts.
    pub fn with_secret(secret: [u8; 32], first_serial: u64) -> Self {
        DigestAuth {
            secret,
            nonce_lifetime: Duration::from_secs(300),
            epoch: None,
            next_serial: first_serial,
            counts: HashMap::new(),
            order: VecDeque::new(),
            max_counts: MAX_NONCE_COUNTS,
            retired_up_to: None,
        }
    }

    pub fn with_max_counts(mut self, max: usize) -> Self {
        self.max_counts = max.max(1);
        self
    }

    pub fn nonce_counts(&self) -> usize {
        self.counts.len()
    }

    fn ms(&mut self, now: Instant) -> u64 {
        let epoch = *self.epoch.get_or_insert(now);
        now.saturating_duration_since(epoch).as_millis() as u64
    }

    fn tag(&self, data: &[u8]) -> Hmac<Sha256> {
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.secret).expect("HMAC takes any key");
        mac.update(data);
        mac
    }

    pub fn new_nonce(&mut self, now: Instant) -> String {
        let mut data = [0u8; 16];
        data[..8].copy_from_slice(&self.ms(now).to_be_bytes());
        data[8..].copy_from_slice(&self.next_serial.to_be_bytes());
        self.next_serial += 1;
        let tag = self.tag(&data).finalize().into_bytes();
        format!("{}{}", hex(&data), hex(&tag[..16]))
    }

    /// The issue time (ms since epoch) and serial of a nonce we made, None for anything else.
    fn nonce_time(&self, nonce: &str) -> Option<(u64, u64)> {
        if nonce.len() != 64 {
            return None;
        }
        let data = unhex(nonce.get(..32)?)?;
        let tag = unhex(nonce.get(32..)?)?;
        self.tag(&data).verify_truncated_left(&tag).ok()?;
        Some((
            u64::from_be_bytes(data[..8].try_into().ok()?),
            u64::from_be_bytes(data[8..16].try_into().ok()?),
        ))
    }

    fn opaque(&self) -> String {
        hex(&self.tag(b"opaque").finalize().into_bytes()[..8])
    }

    /// Challenge header values (for WWW-Authenticate or Proxy-Authenticate), one per
    /// algorithm, in order of preference (SHA-256 first).
    pub fn challenges(
        &mut self,
        now: Instant,
        realm: &str,
        algorithms: &[Algorithm],
        stale: bool,
    ) -> Vec<String> {
        let opaque = self.opaque();
        algorithms
            .iter()
            .map(|alg| {
                let nonce = self.new_nonce(now);
                let mut v = format!(
                    "Digest realm=\"{}\", nonce=\"{nonce}\", opaque=\"{opaque}\", algorithm={}, qop=\"auth\"",
                    quote_escape(realm),
                    alg.name()
                );
                if stale {
                    v.push_str(", stale=true");
                }
                v
            })
            .collect()
    }

    /// Check credentials for `method`. `expected_user` (the AOR for REGISTER) must equal the
    /// digest user name when given; `lookup` finds the account's credentials.
    pub fn verify(
        &mut self,
        now: Instant,
        method: &str,
        realm: &str,
        expected_user: Option<&str>,
        auth: &DigestResponse,
        lookup: impl Fn(&str) -> Option<Credentials>,
    ) -> Verdict {
        let Some(algorithm) = Algorithm::parse(auth.algorithm.as_deref().unwrap_or("MD5")) else {
            return Verdict::Rechallenge;
        };
        if !auth
            .qop
            .as_deref()
            .is_some_and(|q| q.eq_ignore_ascii_case("auth"))
        {
            return Verdict::Rechallenge;
        }
        let (Some(cnonce), Some(nc_text)) = (&auth.cnonce, &auth.nc) else {
            return Verdict::Rechallenge;
        };
        let Some(nc) = (nc_text.len() == 8)
            .then(|| u32::from_str_radix(nc_text, 16).ok())
            .flatten()
            .filter(|&n| n > 0)
        else {
            return Verdict::Rechallenge;
        };
        let Some((issued, serial)) = self.nonce_time(&auth.nonce) else {
            return Verdict::Rechallenge;
        };
        let creds = lookup(&auth.username);
        let user_ok = expected_user.is_none_or(|u| u == auth.username);
        let ha1 = creds
            .as_ref()
            .and_then(|c| algorithm.ha1(c))
            .map(str::to_ascii_lowercase);
        // Unknown users cost the same hashing as known ones.
        let ha1 = ha1.unwrap_or_else(|| algorithm.hash_hex(&auth.username));
        let ha2 = algorithm.hash_hex(&format!("{method}:{}", auth.uri));
        let expected = algorithm.hash_hex(&format!(
            "{ha1}:{}:{nc_text}:{cnonce}:auth:{ha2}",
            auth.nonce
        ));
        let matches = constant_time_eq(
            expected.as_bytes(),
            auth.response.to_ascii_lowercase().as_bytes(),
        );
        let has_ha1 = creds.as_ref().is_some_and(|c| algorithm.ha1(c).is_some());
        if !matches || !has_ha1 || !user_ok || auth.realm != realm {
            return Verdict::Forbidden;
        }
        let now_ms = self.ms(now);
        let expired = now_ms.saturating_sub(issued) > self.nonce_lifetime.as_millis() as u64;
        let retired = self.retired_up_to.is_some_and(|r| serial <= r);
        match self.counts.get_mut(&auth.nonce) {
            _ if expired => Verdict::Stale,
            Some((_, _, last)) if nc <= *last => Verdict::Replay,
            Some((_, _, last)) => {
                *last = nc;
                Verdict::Ok(auth.username.clone())
            }
            None if retired => Verdict::Stale,
            None => {
                self.remember(now_ms, (issued, serial), auth.nonce.clone(), nc);
                Verdict::Ok(auth.username.clone())
            }
        }
    }

    fn remember(&mut self, now_ms: u64, (issued, serial): (u64, u64), nonce: String, nc: u32) {
        let lifetime = self.nonce_lifetime.as_millis() as u64;
        // Expired nonces need no count: they are refused as stale anyway.
        while let Some(front) = self.order.front() {
            let old = self
                .counts
                .get(front)
                .is_none_or(|(t, _, _)| now_ms.saturating_sub(*t) > lifetime);
            if !old && self.counts.len() < self.max_counts {
                break;
            }
            let front = self.order.pop_front().unwrap_or_default();
            if let Some((t, old_serial, _)) = self.counts.remove(&front)
                && now_ms.saturating_sub(t) <= lifetime
            {
                self.retired_up_to = Some(self.retired_up_to.unwrap_or(0).max(old_serial));
            }
        }
        self.counts.insert(nonce.clone(), (issued, serial, nc));
        self.order.push_back(nonce);
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn quote_escape(s: &str) -> String {
    s.replace('\\', "\\\\").replace('"', "\\\"")
}

/// Parse the parameters of a challenge (`WWW-Authenticate`), for tests and the client side.
/// The challenge for `algorithm` among the `header` lines (WWW-Authenticate or
/// Proxy-Authenticate) of a message's text: what a client picks out of a 401 or 407.
pub fn challenge_in(
    message: &str,
    header: &str,
    algorithm: Algorithm,
) -> Option<HashMap<String, String>> {
    message
        .lines()
        .take_while(|l| !l.is_empty())
        .filter_map(|l| l.split_once(':'))
        .filter(|(name, _)| name.trim().eq_ignore_ascii_case(header))
        .filter_map(|(_, value)| parse_challenge(value.trim()))
        .find(|p| p.get("algorithm").map(String::as_str) == Some(algorithm.name()))
}

pub fn parse_challenge(value: &str) -> Option<HashMap<String, String>> {
    // The same grammar as credentials; reuse the tokenizer by faking the required fields.
    if value.len() > MAX_HEADER_LEN {
        return None;
    }
    let rest = value.trim_start().strip_prefix("Digest")?;
    let mut out = HashMap::new();
    for part in split_params(rest) {
        let (k, v) = part.split_once('=')?;
        let v = v.trim();
        let v = v
            .strip_prefix('"')
            .and_then(|v| v.strip_suffix('"'))
            .unwrap_or(v);
        out.insert(k.trim().to_ascii_lowercase(), v.to_string());
    }
    Some(out)
}

/// Split on commas outside quoted strings.
pub fn split_params(s: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let (mut start, mut quoted, mut escaped) = (0, false, false);
    for (i, c) in s.char_indices() {
        match c {
            _ if escaped => escaped = false,
            '\\' if quoted => escaped = true,
            '"' => quoted = !quoted,
            ',' if !quoted => {
                out.push(s[start..i].trim());
                start = i + 1;
            }
            _ => {}
        }
    }
    out.push(s[start..].trim());
    out.retain(|p| !p.is_empty());
    out
}

/// Client side (tests, load generator): the `Authorization` value answering a challenge.
#[allow(clippy::too_many_arguments)]
pub fn client_response(
    algorithm: Algorithm,
    user: &str,
    realm: &str,
    password: &str,
    method: &str,
    uri: &str,
    nonce: &str,
    nc: u32,
    cnonce: &str,
    opaque: Option<&str>,
) -> String {
    let ha1 = ha1(algorithm, user, realm, password);
    let ha2 = algorithm.hash_hex(&format!("{method}:{uri}"));
    let nc = format!("{nc:08x}");
    let response = algorithm.hash_hex(&format!("{ha1}:{nonce}:{nc}:{cnonce}:auth:{ha2}"));
    let mut v = format!(
        "Digest username=\"{user}\", realm=\"{realm}\", nonce=\"{nonce}\", uri=\"{uri}\", response=\"{response}\", algorithm={}, cnonce=\"{cnonce}\", qop=auth, nc={nc}",
        algorithm.name()
    );
    if let Some(o) = opaque {
        v.push_str(&format!(", opaque=\"{o}\""));
    }
    v
}
