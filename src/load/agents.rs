//! Agents for `hotline load --agents N`: the pure pieces (options, which agent does what,
//! the credentials a benchmark gives the server, the floor's stream count, and the few SIP
//! messages agents write and read themselves). The agents' threads are `agent_sip`
//! (REGISTER with digest, answering offered calls through the sans-IO user agent) and
//! `agent_rtp` (echo).

use std::fmt::Write as _;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::LoadError;
use super::digest::{self, Algorithm, DigestPreference};

/// The most agents one run may have (each holds two sockets).
pub const MAX_AGENTS: u32 = 5000;

#[derive(Debug, Clone)]
pub struct AgentOptions {
    /// Agents (0: no agents, the plain IVR load of before).
    pub count: u32,
    /// The first extension; agent i is `base + i`, its SIP user name.
    pub base: u32,
    pub password: String,
    /// From an offered INVITE (180 Ringing at once) to the 200.
    pub answer_delay: Duration,
    /// This share of the agents never answers: they ring until CANCEL.
    pub no_answer_share: f64,
    /// This share answers every offer at once with 486 or 603 (alternating by agent).
    pub decline_share: f64,
    /// Agents hang up this long after answering; None: they wait for the caller's side.
    pub talk: Option<Duration>,
    /// Expires asked for in REGISTER; refreshed at half the granted time.
    pub register_expires: u32,
    pub digest: DigestPreference,
    /// A feature code each agent calls once after registering (e.g. `*13`); None: none.
    pub login_code: Option<String>,
}

impl Default for AgentOptions {
    fn default() -> Self {
        AgentOptions {
            count: 0,
            base: 2000,
            password: "secret".into(),
            answer_delay: Duration::from_secs(1),
            no_answer_share: 0.0,
            decline_share: 0.0,
            talk: None,
            register_expires: 300,
            digest: DigestPreference::Auto,
            login_code: None,
        }
    }
}

impl AgentOptions {
    pub(crate) fn validate(&self) -> Result<(), LoadError> {
        let bad = |m: String| Err(LoadError::Invalid(m));
        if self.count > MAX_AGENTS {
            return bad(format!("--agents {} is above {MAX_AGENTS}", self.count));
        }
        if self.count == 0 {
            return Ok(());
        }
        if u64::from(self.base) + u64::from(self.count) > u64::from(u32::MAX) {
            return bad("--agent-base + --agents overflows".into());
        }
        for (name, v) in [
            ("--agent-no-answer-share", self.no_answer_share),
            ("--agent-decline-share", self.decline_share),
        ] {
            if !(0.0..=1.0).contains(&v) {
                return bad(format!("{name} {v} must be between 0 and 1"));
            }
        }
        if self.no_answer_share + self.decline_share > 1.0 + 1e-9 {
            return bad("--agent-no-answer-share + --agent-decline-share exceed 1".into());
        }
        if self.answer_delay > Duration::from_secs(600) {
            return bad("--agent-answer-delay is at most 600 s".into());
        }
        if self
            .talk
            .is_some_and(|t| t.is_zero() || t > Duration::from_secs(24 * 3600))
        {
            return bad("--agent-talk must be above 0 and at most a day".into());
        }
        if !(10..=86_400).contains(&self.register_expires) {
            return bad("--agent-register-expires must be 10..86400 s".into());
        }
        if self.password.is_empty() || self.password.contains(['\r', '\n']) {
            return bad("--agent-password must be one non-empty line".into());
        }
        if let Some(code) = &self.login_code
            && (code.is_empty()
                || !code
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "*#+-_.".contains(c)))
        {
            return bad(format!(
                "--agent-login-code {code:?} is not a dialable user part"
            ));
        }
        Ok(())
    }

    pub(crate) fn extension(&self, i: u32) -> String {
        (self.base + i).to_string()
    }

    /// Agents that answer (neither no-answer nor decline).
    pub fn answering(&self) -> u32 {
        (0..self.count)
            .filter(|&i| {
                behaviour(i, self.no_answer_share, self.decline_share) == Behaviour::Answer
            })
            .count() as u32
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Behaviour {
    Answer,
    NoAnswer,
    Decline(u16),
}

/// What agent `i` does with offered calls. The special agents are spread evenly over the
/// extensions (agent i is special when ⌊(i+1)·s⌋ > ⌊i·s⌋ for s = the two shares together),
/// and among them no-answer and decline are spread the same way, so every prefix of the
/// agents has about the requested shares. Decliners alternate 486 and 603.
pub(crate) fn behaviour(i: u32, no_answer: f64, decline: f64) -> Behaviour {
    let hits = |k: u32, s: f64| ((k + 1) as f64 * s + 1e-9).floor() > (k as f64 * s + 1e-9).floor();
    let special = no_answer + decline;
    if special <= 0.0 || !hits(i, special) {
        return Behaviour::Answer;
    }
    // k: how many special agents come before this one.
    let k = ((i as f64 * special) + 1e-9).floor() as u32;
    let na_part = no_answer / special;
    if hits(k, na_part) {
        Behaviour::NoAnswer
    } else {
        let d = k - ((k as f64 * na_part) + 1e-9).floor() as u32;
        Behaviour::Decline(if d.is_multiple_of(2) { 486 } else { 603 })
    }
}

/// The streams the floor carries for a run (`--floor`): each caller is one full-duplex
/// stream (caller ↔ hotline); each bridged call adds one more (hotline ↔ agent), and at most
/// min(callers, answering agents) calls are bridged at once. Without agents: the callers.
pub fn floor_streams(calls: u32, agents: &AgentOptions) -> u32 {
    calls + calls.min(agents.answering())
}

/// How many agent calls are up, and the time integral of that (stream-seconds), so the
/// steady window can count the mean number of agent streams the server carried in it. Shared
/// by the agents' thread (changes, a few per call) and the callers' (two reads per run).
#[derive(Debug)]
pub(crate) struct Gauge {
    inner: Mutex<GaugeState>,
}

#[derive(Debug)]
struct GaugeState {
    up: u32,
    since: Instant,
    area: f64,
}

impl Gauge {
    pub(crate) fn new(now: Instant) -> Self {
        Gauge {
            inner: Mutex::new(GaugeState {
                up: 0,
                since: now,
                area: 0.0,
            }),
        }
    }

    fn advance(g: &mut GaugeState, now: Instant) {
        let dt = now.saturating_duration_since(g.since).as_secs_f64();
        g.area += f64::from(g.up) * dt;
        g.since = g.since.max(now);
    }

    pub(crate) fn change(&self, now: Instant, up: bool) {
        let mut g = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        Self::advance(&mut g, now);
        g.up = if up {
            g.up.saturating_add(1)
        } else {
            g.up.saturating_sub(1)
        };
    }

    /// Stream-seconds carried from the start until `now`.
    pub(crate) fn area_at(&self, now: Instant) -> f64 {
        let mut g = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        Self::advance(&mut g, now);
        g.area
    }
}

/// The mean number of streams between two readings of `Gauge::area_at`.
pub(crate) fn mean_streams(area_start: f64, area_end: f64, window: Duration) -> f64 {
    let secs = window.as_secs_f64();
    if secs > 0.0 {
        ((area_end - area_start) / secs).max(0.0)
    } else {
        0.0
    }
}

/// One agent's credentials, for the server's agent file.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct AgentCredential {
    pub extension: String,
    pub password: String,
    /// H(extension:realm:password), MD5 and SHA-256, lower-case hex.
    pub ha1_md5: String,
    pub ha1_sha256: String,
}

pub fn agent_credentials(
    base: u32,
    count: u32,
    password: &str,
    realm: &str,
) -> Vec<AgentCredential> {
    (0..count)
        .map(|i| {
            let ext = (base + i).to_string();
            AgentCredential {
                ha1_md5: digest::ha1(Algorithm::Md5, &ext, realm, password),
                ha1_sha256: digest::ha1(Algorithm::Sha256, &ext, realm, password),
                extension: ext,
                password: password.to_string(),
            }
        })
        .collect()
}

/// The realm hotline challenges with.
pub const REALM: &str = "hotline";

/// A neutral TOML description of the load run's agents and their queue, for a benchmark
/// script to turn into hotline's agent files (`ivr-flows/acd/`, whose format is being
/// designed): one `[[agent]]` table per agent with its id (= extension), a name, its
/// extension, password and HA1 hashes for realm "hotline", `queue` and `auto_login = true`,
/// and one `[[queue]]` naming every member. The keys are plain facts, not hotline's schema; the integrator maps them.
pub fn agents_toml(base: u32, count: u32, password: &str, queue: &str) -> String {
    let q = toml_str(queue);
    let mut s = format!(
        "# hotline load: {count} agents, extensions {base}..{}, realm \"{REALM}\"\n",
        u64::from(base) + u64::from(count.max(1)) - 1
    );
    let creds = agent_credentials(base, count, password, REALM);
    let _ = writeln!(s, "\n[[queue]]\nname = {q}\nmembers = [");
    for c in &creds {
        let _ = writeln!(s, "  {},", toml_str(&c.extension));
    }
    s.push_str("]\n");
    for c in &creds {
        let _ = write!(
            s,
            "\n[[agent]]\nid = {}\nname = {}\nextension = {}\npassword = {}\nha1_md5 = {}\nha1_sha256 = {}\nqueue = {q}\nauto_login = true\n",
            toml_str(&c.extension),
            toml_str(&format!("Load agent {}", c.extension)),
            toml_str(&c.extension),
            toml_str(&c.password),
            toml_str(&c.ha1_md5),
            toml_str(&c.ha1_sha256),
        );
    }
    s
}

fn toml_str(v: &str) -> String {
    toml::Value::String(v.to_string()).to_string()
}

// ---- the SIP the agents write and read themselves (REGISTER, the login call) ----

/// A response, as far as the agents need it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct RawResponse {
    pub code: u16,
    pub call_id: String,
    pub cseq: u32,
    pub method: String,
    /// The To header, whole (the login call's ACK repeats it).
    pub to: String,
    /// WWW-Authenticate values, then Proxy-Authenticate values.
    pub www_authenticate: Vec<String>,
    pub proxy_authenticate: Vec<String>,
    pub expires: Option<u32>,
    /// Each Contact value (for the granted expiry of ours).
    pub contacts: Vec<String>,
}

impl RawResponse {
    /// The expiry granted to `contact_uri` (its `;expires=`, else the Expires header).
    pub(crate) fn granted(&self, contact_uri: &str) -> Option<u32> {
        let ours = self
            .contacts
            .iter()
            .flat_map(|v| split_top(v, ','))
            .find(|c| c.contains(contact_uri));
        ours.and_then(|c| {
            c.split(';').skip(1).find_map(|p| {
                let (k, v) = p.split_once('=')?;
                k.trim()
                    .eq_ignore_ascii_case("expires")
                    .then(|| v.trim().parse().ok())?
            })
        })
        .or(self.expires)
    }

    pub(crate) fn challenges(&self) -> (Vec<digest::Challenge>, bool) {
        if self.code == 407 {
            (
                digest::parse_challenges(self.proxy_authenticate.iter().map(String::as_str)),
                true,
            )
        } else {
            (
                digest::parse_challenges(self.www_authenticate.iter().map(String::as_str)),
                false,
            )
        }
    }
}

/// Split on `sep` outside quotes and angle brackets.
fn split_top(v: &str, sep: char) -> Vec<&str> {
    let (mut out, mut start, mut quoted, mut angle) = (Vec::new(), 0, false, false);
    for (i, c) in v.char_indices() {
        match c {
            '"' => quoted = !quoted,
            '<' if !quoted => angle = true,
            '>' if !quoted => angle = false,
            c if c == sep && !quoted && !angle => {
                out.push(v[start..i].trim());
                start = i + 1;
            }
            _ => {}
        }
    }
    out.push(v[start..].trim());
    out
}

/// Parse a SIP response; None for requests and garbage.
pub(crate) fn parse_response(data: &[u8]) -> Option<RawResponse> {
    let text = std::str::from_utf8(data).ok()?;
    let head = text.split("\r\n\r\n").next()?;
    let mut lines = head.split("\r\n").flat_map(|l| l.split('\n'));
    let status = lines.next()?.trim_end_matches('\r');
    let rest = status.strip_prefix("SIP/2.0 ")?;
    let code: u16 = rest.get(..3)?.parse().ok()?;
    let mut r = RawResponse {
        code,
        ..RawResponse::default()
    };
    // Unfold continuation lines first.
    let mut headers: Vec<String> = Vec::new();
    for l in lines {
        let l = l.trim_end_matches('\r');
        if l.starts_with([' ', '\t']) {
            if let Some(last) = headers.last_mut() {
                last.push(' ');
                last.push_str(l.trim());
            }
        } else if !l.is_empty() {
            headers.push(l.to_string());
        }
    }
    for h in &headers {
        let Some((name, value)) = h.split_once(':') else {
            continue;
        };
        let value = value.trim();
        match name.trim().to_ascii_lowercase().as_str() {
            "call-id" | "i" => r.call_id = value.to_string(),
            "cseq" => {
                let mut it = value.split_whitespace();
                r.cseq = it.next()?.parse().ok()?;
                r.method = it.next().unwrap_or_default().to_ascii_uppercase();
            }
            "to" | "t" => r.to = value.to_string(),
            "www-authenticate" => r.www_authenticate.push(value.to_string()),
            "proxy-authenticate" => r.proxy_authenticate.push(value.to_string()),
            "expires" => r.expires = value.parse().ok(),
            "contact" | "m" => r.contacts.push(value.to_string()),
            _ => {}
        }
    }
    (!r.call_id.is_empty() && r.cseq > 0).then_some(r)
}

/// What one request the agents send needs.
pub(crate) struct RawRequest<'a> {
    pub method: &'a str,
    pub ruri: &'a str,
    /// Our SIP socket, host:port.
    pub local: &'a str,
    pub branch: &'a str,
    pub from: &'a str,
    pub from_tag: &'a str,
    /// The To header value, whole.
    pub to: &'a str,
    pub call_id: &'a str,
    pub cseq: u32,
    /// The Contact header value.
    pub contact: Option<&'a str>,
    pub headers: &'a [(&'a str, String)],
    pub body: Option<&'a str>,
}

pub(crate) fn build_request(r: &RawRequest<'_>) -> String {
    let mut s = format!(
        "{} {} SIP/2.0\r\nVia: SIP/2.0/UDP {};branch={};rport\r\nMax-Forwards: 70\r\nFrom: {};tag={}\r\nTo: {}\r\nCall-ID: {}\r\nCSeq: {} {}\r\n",
        r.method, r.ruri, r.local, r.branch, r.from, r.from_tag, r.to, r.call_id, r.cseq, r.method
    );
    if let Some(c) = r.contact {
        let _ = write!(s, "Contact: {c}\r\n");
    }
    for (k, v) in r.headers {
        let _ = write!(s, "{k}: {v}\r\n");
    }
    s.push_str("User-Agent: hotline-load\r\n");
    match r.body {
        Some(b) => {
            let _ = write!(
                s,
                "Content-Type: application/sdp\r\nContent-Length: {}\r\n\r\n{b}",
                b.len()
            );
        }
        None => s.push_str("Content-Length: 0\r\n\r\n"),
    }
    s
}

/// A fresh token for branches, tags, Call-IDs and cnonces.
pub(crate) fn token(len: usize) -> String {
    const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
    (0..len)
        .map(|_| ALPHABET[fastrand::usize(..ALPHABET.len())] as char)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn behaviour_shares_are_spread_and_exact() {
        let n = 200;
        let count = |na: f64, dc: f64| {
            let (mut a, mut no, mut d486, mut d603) = (0, 0, 0, 0);
            for i in 0..n {
                match behaviour(i, na, dc) {
                    Behaviour::Answer => a += 1,
                    Behaviour::NoAnswer => no += 1,
                    Behaviour::Decline(486) => d486 += 1,
                    Behaviour::Decline(603) => d603 += 1,
                    b => panic!("{b:?}"),
                }
            }
            (a, no, d486, d603)
        };
        assert_eq!(count(0.0, 0.0), (200, 0, 0, 0));
        assert_eq!(count(0.1, 0.0), (180, 20, 0, 0));
        assert_eq!(count(0.0, 0.1), (180, 0, 10, 10));
        assert_eq!(count(0.1, 0.05), (170, 20, 5, 5));
        assert_eq!(count(0.5, 0.5), (0, 100, 50, 50));
        assert_eq!(count(1.0, 0.0), (0, 200, 0, 0));
        // Spread: every block of 20 agents has its two no-answer agents at 10 %.
        for block in 0..10 {
            let no = (block * 20..block * 20 + 20)
                .filter(|&i| behaviour(i, 0.1, 0.0) == Behaviour::NoAnswer)
                .count();
            assert_eq!(no, 2, "block {block}");
        }
        let opts = AgentOptions {
            count: 200,
            no_answer_share: 0.1,
            decline_share: 0.05,
            ..AgentOptions::default()
        };
        assert_eq!(opts.answering(), 170);
    }

    /// The floor carries every caller plus every call that can be bridged at once.
    #[test]
    fn floor_stream_count() {
        let none = AgentOptions::default();
        assert_eq!(floor_streams(100, &none), 100, "no agents: the callers");
        let mut a = AgentOptions {
            count: 200,
            ..AgentOptions::default()
        };
        assert_eq!(
            floor_streams(1000, &a),
            1200,
            "200 agents bridge 200 of 1000 callers"
        );
        assert_eq!(floor_streams(100, &a), 200, "100 callers, all bridged");
        a.no_answer_share = 0.25;
        a.decline_share = 0.25;
        assert_eq!(
            floor_streams(1000, &a),
            1100,
            "only answering agents bridge"
        );
    }

    #[test]
    fn gauge_integrates_agent_streams() {
        let t0 = Instant::now();
        let s = Duration::from_secs;
        let g = Gauge::new(t0);
        g.change(t0 + s(1), true);
        g.change(t0 + s(2), true);
        let a = g.area_at(t0 + s(2));
        assert!((a - 1.0).abs() < 1e-9, "{a}");
        g.change(t0 + s(4), false);
        let b = g.area_at(t0 + s(6));
        assert!((b - 7.0).abs() < 1e-9, "1 + 2·2 + 1·2: {b}");
        assert!((mean_streams(a, b, s(4)) - 1.5).abs() < 1e-9);
        assert_eq!(mean_streams(1.0, 2.0, Duration::ZERO), 0.0);
        g.change(t0 + s(7), false);
        g.change(t0 + s(8), false);
        assert!(
            (g.area_at(t0 + s(9)) - 8.0).abs() < 1e-9,
            "never below zero"
        );
    }

    #[test]
    fn options_are_checked() {
        let ok = AgentOptions {
            count: 10,
            login_code: Some("*13".into()),
            ..AgentOptions::default()
        };
        assert!(ok.validate().is_ok());
        let bad = [
            AgentOptions {
                no_answer_share: 0.7,
                decline_share: 0.4,
                ..ok.clone()
            },
            AgentOptions {
                decline_share: -0.1,
                ..ok.clone()
            },
            AgentOptions {
                count: MAX_AGENTS + 1,
                ..ok.clone()
            },
            AgentOptions {
                password: "a\r\nb".into(),
                ..ok.clone()
            },
            AgentOptions {
                login_code: Some("*1 3".into()),
                ..ok.clone()
            },
            AgentOptions {
                talk: Some(Duration::ZERO),
                ..ok.clone()
            },
            AgentOptions {
                register_expires: 5,
                ..ok.clone()
            },
        ];
        for b in bad {
            assert!(b.validate().is_err(), "{b:?}");
        }
    }

    #[test]
    fn credentials_and_neutral_toml() {
        let c = agent_credentials(2000, 2, "secret", REALM);
        assert_eq!(c[0].extension, "2000");
        assert_eq!(c[1].extension, "2001");
        assert_eq!(c[0].ha1_md5, "f3f65ccb6461e230f422edf4beacb70e");
        assert_eq!(
            c[0].ha1_sha256,
            "fe16918522d0e3c0957e96132c204b0d18093d2119565e83fc043ff581616128"
        );
        let text = agents_toml(2000, 2, "se\"cret", "sales");
        let v: toml::Value = toml::from_str(&text).unwrap();
        let agents = v["agent"].as_array().unwrap();
        assert_eq!(agents.len(), 2);
        assert_eq!(agents[1]["extension"].as_str(), Some("2001"));
        assert_eq!(agents[1]["id"].as_str(), Some("2001"));
        assert_eq!(agents[1]["name"].as_str(), Some("Load agent 2001"));
        assert_eq!(agents[1]["password"].as_str(), Some("se\"cret"));
        assert_eq!(agents[0]["queue"].as_str(), Some("sales"));
        assert_eq!(agents[0]["auto_login"].as_bool(), Some(true));
        assert_eq!(
            agents[0]["ha1_md5"].as_str().unwrap(),
            digest::ha1(Algorithm::Md5, "2000", REALM, "se\"cret")
        );
        assert_eq!(v["queue"][0]["name"].as_str(), Some("sales"));
        assert_eq!(v["queue"][0]["members"].as_array().unwrap().len(), 2);
    }

    #[test]
    fn reads_a_challenge_response() {
        let msg = "SIP/2.0 401 Unauthorized\r\nVia: SIP/2.0/UDP 127.0.0.1:4000;branch=z9hG4bKx\r\nFrom: <sip:2000@127.0.0.1>;tag=a\r\nTo: <sip:2000@127.0.0.1>;tag=b\r\ni: abc@127.0.0.1\r\nCSeq: 7 REGISTER\r\nWWW-Authenticate: Digest realm=\"hotline\", nonce=\"n,1\", qop=\"auth\",\r\n  algorithm=SHA-256\r\nWWW-Authenticate: Digest realm=\"hotline\", nonce=\"n,1\", qop=\"auth\", algorithm=MD5\r\nContent-Length: 0\r\n\r\n";
        let r = parse_response(msg.as_bytes()).unwrap();
        assert_eq!(
            (r.code, r.call_id.as_str(), r.cseq, r.method.as_str()),
            (401, "abc@127.0.0.1", 7, "REGISTER")
        );
        assert_eq!(r.to, "<sip:2000@127.0.0.1>;tag=b");
        let (cs, proxy) = r.challenges();
        assert!(!proxy);
        assert_eq!(cs.len(), 2, "the folded line is one header");
        assert_eq!(
            (cs[0].algorithm, cs[0].nonce.as_str()),
            (Algorithm::Sha256, "n,1")
        );
        assert_eq!(cs[1].algorithm, Algorithm::Md5);
        assert!(parse_response(b"REGISTER sip:x SIP/2.0\r\n\r\n").is_none());
        assert!(
            parse_response(b"SIP/2.0 200 OK\r\n\r\n").is_none(),
            "no Call-ID"
        );
    }

    #[test]
    fn granted_expiry() {
        let ok = "SIP/2.0 200 OK\r\nCall-ID: x\r\nCSeq: 2 REGISTER\r\nContact: <sip:2001@127.0.0.1:4001>;expires=60, <sip:2000@127.0.0.1:4000;transport=udp>;q=0.5;expires=120\r\nExpires: 300\r\n\r\n";
        let r = parse_response(ok.as_bytes()).unwrap();
        assert_eq!(r.granted("sip:2000@127.0.0.1:4000"), Some(120));
        assert_eq!(r.granted("sip:2001@127.0.0.1:4001"), Some(60));
        assert_eq!(r.granted("sip:9@127.0.0.1:1"), Some(300), "else the header");
    }

    #[test]
    fn request_text() {
        let h = [("Expires", "300".to_string())];
        let s = build_request(&RawRequest {
            method: "REGISTER",
            ruri: "sip:127.0.0.1:5060",
            local: "127.0.0.1:4000",
            branch: "z9hG4bKabc",
            from: "<sip:2000@127.0.0.1:5060>",
            from_tag: "t1",
            to: "<sip:2000@127.0.0.1:5060>",
            call_id: "c1@127.0.0.1",
            cseq: 3,
            contact: Some("<sip:2000@127.0.0.1:4000>"),
            headers: &h,
            body: None,
        });
        assert!(s.starts_with("REGISTER sip:127.0.0.1:5060 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:4000;branch=z9hG4bKabc;rport\r\n"), "{s}");
        assert!(s.contains("\r\nCSeq: 3 REGISTER\r\n") && s.contains("\r\nExpires: 300\r\n"));
        assert!(s.ends_with("Content-Length: 0\r\n\r\n"));
    }
}
