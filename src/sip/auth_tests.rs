//! Registrar, digest authentication, OPTIONS keep-alive, REFER and outbound failures: real
//! SIP text through `handle_input`, on a virtual clock.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use super::digest::{self, Algorithm, Verdict};
use super::endpoint::{Peer, TransportKind};
use super::registrar::{Account, Contact, Credentials, RegistrarConfig};
use super::transaction::TimerConfig;
use super::ua::{CallRef, Replaces, UaConfig, UaEvent, UserAgent};

const REALM: &str = "hotline";

fn account(user: &str, password: &str) -> Account {
    Account {
        user: user.into(),
        credentials: Credentials {
            ha1_md5: Some(digest::ha1(Algorithm::Md5, user, REALM, password)),
            ha1_sha256: Some(digest::ha1(Algorithm::Sha256, user, REALM, password)),
        },
    }
}

fn udp(addr: &str) -> Peer {
    Peer {
        addr: addr.parse().unwrap(),
        transport: TransportKind::Udp,
    }
}

struct Srv {
    ua: UserAgent,
    now: Instant,
    /// Everything sent, as (destination, text).
    sent: Vec<(SocketAddr, String)>,
    events: Vec<UaEvent>,
    branch: u64,
}

impl Srv {
    fn new() -> Self {
        let mut ua = UserAgent::new(UaConfig {
            timers: TimerConfig::default(),
            advertised: "10.0.0.1:5060".into(),
            advertise_request_host: false,
            user: "hotline".into(),
            seed: 1,
            nonce_secret: [1; 32],
            tls_port: None,
        });
        ua.set_auth_seed(7);
        ua.set_accounts(vec![account("201", "secret"), account("202", "pw2")]);
        Srv {
            ua,
            now: Instant::now(),
            sent: Vec::new(),
            events: Vec::new(),
            branch: 0,
        }
    }

    fn without_keepalive(mut self) -> Self {
        self.ua.set_registrar_config(RegistrarConfig {
            keepalive: None,
            ..RegistrarConfig::default()
        });
        self
    }

    fn pump(&mut self) -> Vec<(SocketAddr, String)> {
        let mut out = Vec::new();
        while let Some(t) = self.ua.poll_transmit() {
            out.push((t.to.addr, String::from_utf8(t.data).unwrap()));
        }
        while let Some(e) = self.ua.poll_event() {
            self.events.push(e);
        }
        self.sent.extend(out.iter().cloned());
        out
    }

    /// Feed one message; the messages sent in reply.
    fn input(&mut self, from: Peer, text: &str) -> Vec<(SocketAddr, String)> {
        self.ua.handle_input(self.now, from, text.as_bytes());
        self.pump()
    }

    /// The one response to a request.
    fn ask(&mut self, from: Peer, text: &str) -> String {
        let out = self.input(from, text);
        out.into_iter()
            .map(|(_, t)| t)
            .find(|t| t.starts_with("SIP/2.0") && !t.starts_with("SIP/2.0 100"))
            .unwrap_or_else(|| panic!("no final response to\n{text}"))
    }

    /// Run the clock forward, firing every timer on the way.
    fn advance(&mut self, d: Duration) -> Vec<(SocketAddr, String)> {
        let end = self.now + d;
        let mut out = Vec::new();
        while let Some(t) = self.ua.poll_timeout().filter(|t| *t <= end) {
            self.now = self.now.max(t);
            self.ua.handle_timeout(self.now);
            out.extend(self.pump());
        }
        self.now = end;
        out
    }

    fn next_branch(&mut self) -> String {
        self.branch += 1;
        format!("z9hG4bKt{}", self.branch)
    }

    fn take_events(&mut self) -> Vec<UaEvent> {
        std::mem::take(&mut self.events)
    }

    #[allow(clippy::too_many_arguments)]
    fn register_text(
        &mut self,
        user: &str,
        via: &str,
        contacts: &[&str],
        call_id: &str,
        cseq: u32,
        expires: Option<u64>,
        auth: Option<&str>,
    ) -> String {
        let branch = self.next_branch();
        let mut t = format!(
            "REGISTER sip:hotline SIP/2.0\r\nVia: SIP/2.0/UDP {via};branch={branch};rport\r\nMax-Forwards: 70\r\nFrom: <sip:{user}@hotline>;tag=f{cseq}\r\nTo: <sip:{user}@hotline>\r\nCall-ID: {call_id}\r\nCSeq: {cseq} REGISTER\r\n"
        );
        for c in contacts {
            t.push_str(&format!("Contact: {c}\r\n"));
        }
        if let Some(e) = expires {
            t.push_str(&format!("Expires: {e}\r\n"));
        }
        if let Some(a) = auth {
            t.push_str(&format!("Authorization: {a}\r\n"));
        }
        t.push_str("Content-Length: 0\r\n\r\n");
        t
    }

    /// REGISTER, answer the challenge with `password` and `algorithm`; the final response.
    #[allow(clippy::too_many_arguments)]
    fn register(
        &mut self,
        from: Peer,
        user: &str,
        password: &str,
        algorithm: Algorithm,
        contacts: &[&str],
        expires: Option<u64>,
        call_id: &str,
    ) -> String {
        let via = from.addr.to_string();
        let first = self.register_text(user, &via, contacts, call_id, 1, expires, None);
        let challenge = self.ask(from, &first);
        if !challenge.starts_with("SIP/2.0 401") {
            return challenge;
        }
        let (nonce, opaque) = pick_challenge(&challenge, "WWW-Authenticate", algorithm);
        let auth = digest::client_response(
            algorithm,
            user,
            REALM,
            password,
            "REGISTER",
            "sip:hotline",
            &nonce,
            1,
            "abcdef",
            Some(&opaque),
        );
        let second = self.register_text(user, &via, contacts, call_id, 2, expires, Some(&auth));
        self.ask(from, &second)
    }
}

fn header_values(text: &str, name: &str) -> Vec<String> {
    text.lines()
        .filter_map(|l| {
            let (n, v) = l.split_once(':')?;
            n.trim()
                .eq_ignore_ascii_case(name)
                .then(|| v.trim().to_string())
        })
        .collect()
}

/// The nonce and opaque of the challenge for `algorithm`.
fn pick_challenge(text: &str, header: &str, algorithm: Algorithm) -> (String, String) {
    digest::challenge_in(text, header, algorithm)
        .map(|p| (p["nonce"].clone(), p["opaque"].clone()))
        .unwrap_or_else(|| panic!("no {} challenge in\n{text}", algorithm.name()))
}

fn reachability(events: &[UaEvent]) -> Vec<(String, bool)> {
    events
        .iter()
        .filter_map(|e| match e {
            UaEvent::Reachability { user, reachable } => Some((user.clone(), *reachable)),
            _ => None,
        })
        .collect()
}

// ---------------------------------------------------------------- digest

#[test]
fn rfc7616_section_3_9_1_vectors() {
    let args = |alg| {
        digest::client_response(
            alg,
            "Mufasa",
            "http-auth@example.org",
            "Circle of Life",
            "GET",
            "/dir/index.html",
            "7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v",
            1,
            "f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ",
            None,
        )
    };
    let sha = digest::parse_authorization(&args(Algorithm::Sha256)).unwrap();
    assert_eq!(
        sha.response,
        "753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1"
    );
    let md5 = digest::parse_authorization(&args(Algorithm::Md5)).unwrap();
    assert_eq!(md5.response, "8ca523f5e9506fed4657c9700eebdbec");
}

#[test]
fn authorization_parser_handles_quotes_commas_and_case() {
    let v = r#"digest USERNAME="a\"b", Realm="x,y", nonce=abc ,uri="sip:h;p=1,2", response="r", qop=auth, nc=00000001, cnonce="c", Algorithm=SHA-256, extra="z""#;
    let p = digest::parse_authorization(v).unwrap();
    assert_eq!(p.username, "a\"b");
    assert_eq!(p.realm, "x,y");
    assert_eq!(p.nonce, "abc");
    assert_eq!(p.uri, "sip:h;p=1,2");
    assert_eq!(p.algorithm.as_deref(), Some("SHA-256"));
    assert_eq!(p.nc.as_deref(), Some("00000001"));
    for bad in [
        "",
        "Digest",
        "Basic abc",
        "Digest username=\"unterminated",
        "Digest =x",
        "Digest username",
        "Digest username=a, nonce=b, uri=c",
        &format!("Digest username=\"{}\"", "x".repeat(5000)),
        &format!("Digest {}", "a=b,".repeat(100)),
    ] {
        assert!(digest::parse_authorization(bad).is_none(), "{bad}");
    }
}

#[test]
fn malformed_authorization_headers_never_panic() {
    let mut s = Srv::new();
    let from = udp("192.0.2.10:5062");
    let first = s.register_text(
        "201",
        "192.0.2.10:5062",
        &["<sip:201@192.0.2.10:5062>"],
        "fz",
        1,
        None,
        None,
    );
    let challenge = s.ask(from, &first);
    let (nonce, opaque) = pick_challenge(&challenge, "WWW-Authenticate", Algorithm::Md5);
    let good = digest::client_response(
        Algorithm::Md5,
        "201",
        REALM,
        "secret",
        "REGISTER",
        "sip:hotline",
        &nonce,
        1,
        "cn",
        Some(&opaque),
    );
    let mut rng = fastrand::Rng::with_seed(5);
    // Raise the throttle so the loop exercises the parser, not the block list.
    s.ua.set_registrar_config(RegistrarConfig {
        fail_limit: u32::MAX,
        keepalive: None,
        ..RegistrarConfig::default()
    });
    for i in 0..1_500u32 {
        let mut h = good.clone().into_bytes();
        for _ in 0..rng.usize(1..5) {
            if h.is_empty() {
                break;
            }
            let at = rng.usize(..h.len());
            match rng.u8(..4) {
                0 => h[at] = b"\",=\\ \tx0"[rng.usize(..8)],
                1 => {
                    h.remove(at);
                }
                2 => h.insert(at, b"\",=\\ "[rng.usize(..5)]),
                _ => h.truncate(at),
            }
        }
        let h = String::from_utf8_lossy(&h).replace(['\r', '\n'], " ");
        let _ = digest::parse_authorization(&h);
        let text = s.register_text(
            "201",
            "192.0.2.10:5062",
            &["<sip:201@192.0.2.10:5062>"],
            "fz",
            2 + i,
            None,
            Some(&h),
        );
        for (_, t) in s.input(from, &text) {
            assert!(
                [
                    "SIP/2.0 401",
                    "SIP/2.0 403",
                    "SIP/2.0 200",
                    "SIP/2.0 400",
                    "SIP/2.0 500"
                ]
                .iter()
                .any(|p| t.starts_with(p)),
                "{t}"
            );
        }
    }
}

#[test]
fn wrong_password_and_unknown_user_get_the_same_403() {
    let mut s = Srv::new();
    let from = udp("192.0.2.10:5062");
    let c = ["<sip:201@192.0.2.10:5062>"];
    let wrong = s.register(from, "201", "nope", Algorithm::Sha256, &c, None, "w1");
    assert!(wrong.starts_with("SIP/2.0 403"), "{wrong}");
    let c9 = ["<sip:999@192.0.2.10:5062>"];
    let first = s.register_text("999", "192.0.2.10:5062", &c9, "w2", 1, None, None);
    let challenge = s.ask(from, &first);
    assert!(
        challenge.starts_with("SIP/2.0 401"),
        "unknown users are challenged too"
    );
    assert_eq!(header_values(&challenge, "WWW-Authenticate").len(), 2);
    let unknown = s.register(from, "999", "x", Algorithm::Sha256, &c9, None, "w3");
    assert!(unknown.starts_with("SIP/2.0 403"), "{unknown}");
    assert_eq!(s.ua.registrar().tracked_ips(), 1);
    // Someone else's credentials for this AOR: 403 too.
    let via = "192.0.2.10:5062";
    let first = s.register_text("201", via, &c, "w4", 1, None, None);
    let ch = s.ask(from, &first);
    let (nonce, opaque) = pick_challenge(&ch, "WWW-Authenticate", Algorithm::Md5);
    let auth = digest::client_response(
        Algorithm::Md5,
        "202",
        REALM,
        "pw2",
        "REGISTER",
        "sip:hotline",
        &nonce,
        1,
        "x",
        Some(&opaque),
    );
    let t = s.register_text("201", via, &c, "w4", 2, None, Some(&auth));
    assert!(s.ask(from, &t).starts_with("SIP/2.0 403"));
    assert!(s.ua.contacts("201").is_empty());
}

#[test]
fn replayed_nonce_count_is_refused_and_a_higher_one_accepted() {
    let mut s = Srv::new().without_keepalive();
    let from = udp("192.0.2.10:5062");
    let via = "192.0.2.10:5062";
    let c = ["<sip:201@192.0.2.10:5062>"];
    let first = s.register_text("201", via, &c, "r1", 1, None, None);
    let ch = s.ask(from, &first);
    let (nonce, opaque) = pick_challenge(&ch, "WWW-Authenticate", Algorithm::Sha256);
    let auth = |nc| {
        digest::client_response(
            Algorithm::Sha256,
            "201",
            REALM,
            "secret",
            "REGISTER",
            "sip:hotline",
            &nonce,
            nc,
            "cn",
            Some(&opaque),
        )
    };
    let t = s.register_text("201", via, &c, "r1", 2, None, Some(&auth(1)));
    assert!(s.ask(from, &t).starts_with("SIP/2.0 200"));
    // The same request again (new transaction): a replay.
    let t = s.register_text("201", via, &c, "r1", 3, None, Some(&auth(1)));
    let replay = s.ask(from, &t);
    assert!(replay.starts_with("SIP/2.0 401"), "{replay}");
    assert!(replay.contains("stale=true"));
    let t = s.register_text("201", via, &c, "r1", 4, None, Some(&auth(2)));
    assert!(s.ask(from, &t).starts_with("SIP/2.0 200"));
}

#[test]
fn expired_nonce_gets_stale_true_but_a_wrong_password_still_403() {
    let mut s = Srv::new().without_keepalive();
    let from = udp("192.0.2.10:5062");
    let via = "192.0.2.10:5062";
    let c = ["<sip:201@192.0.2.10:5062>"];
    let first = s.register_text("201", via, &c, "s1", 1, None, None);
    let ch = s.ask(from, &first);
    let (nonce, opaque) = pick_challenge(&ch, "WWW-Authenticate", Algorithm::Sha256);
    s.advance(Duration::from_secs(301));
    let auth = |pw| {
        digest::client_response(
            Algorithm::Sha256,
            "201",
            REALM,
            pw,
            "REGISTER",
            "sip:hotline",
            &nonce,
            1,
            "cn",
            Some(&opaque),
        )
    };
    let t = s.register_text("201", via, &c, "s1", 2, None, Some(&auth("secret")));
    let stale = s.ask(from, &t);
    assert!(stale.starts_with("SIP/2.0 401"), "{stale}");
    assert_eq!(header_values(&stale, "WWW-Authenticate").len(), 2);
    assert!(
        header_values(&stale, "WWW-Authenticate")
            .iter()
            .all(|v| v.contains("stale=true"))
    );
    let t = s.register_text("201", via, &c, "s1", 3, None, Some(&auth("wrong")));
    assert!(s.ask(from, &t).starts_with("SIP/2.0 403"));
    // A nonce we never issued: a fresh challenge, not stale.
    let forged = digest::client_response(
        Algorithm::Sha256,
        "201",
        REALM,
        "secret",
        "REGISTER",
        "sip:hotline",
        &"ab".repeat(32),
        1,
        "cn",
        None,
    );
    let t = s.register_text("201", via, &c, "s1", 4, None, Some(&forged));
    let fresh = s.ask(from, &t);
    assert!(
        fresh.starts_with("SIP/2.0 401") && !fresh.contains("stale=true"),
        "{fresh}"
    );
}

// ---------------------------------------------------------------- registrar

#[test]
fn register_with_challenge_then_200_lists_contacts() {
    let mut s = Srv::new().without_keepalive();
    let from = udp("192.0.2.10:5062");
    let first = s.register_text(
        "201",
        "192.0.2.10:5062",
        &["<sip:201@192.0.2.10:5062>"],
        "a1",
        1,
        Some(600),
        None,
    );
    let ch = s.ask(from, &first);
    assert!(ch.starts_with("SIP/2.0 401"), "{ch}");
    let w = header_values(&ch, "WWW-Authenticate");
    assert_eq!(w.len(), 2, "{ch}");
    assert!(
        w[0].contains("algorithm=SHA-256") && w[0].contains("qop=\"auth\""),
        "{}",
        w[0]
    );
    assert!(w[1].contains("algorithm=MD5"), "{}", w[1]);
    assert!(w[0].contains("realm=\"hotline\""));
    assert!(
        ch.contains("To: <sip:201@hotline>;tag="),
        "a To tag on the 401"
    );

    let ok = s.register(
        from,
        "201",
        "secret",
        Algorithm::Sha256,
        &["<sip:201@192.0.2.10:5062>"],
        Some(600),
        "a1",
    );
    assert!(ok.starts_with("SIP/2.0 200"), "{ok}");
    assert_eq!(
        header_values(&ok, "Contact"),
        vec!["<sip:201@192.0.2.10:5062>;expires=600".to_string()]
    );
    assert_eq!(
        reachability(&s.take_events()),
        vec![("201".to_string(), true)]
    );
    assert_eq!(
        s.ua.contacts("201"),
        vec![Contact {
            uri: "sip:201@192.0.2.10:5062".into(),
            peer: from
        }]
    );
    // An MD5-only phone registers too; a query (no Contact) lists the bindings.
    let ok = s.register(
        from,
        "202",
        "pw2",
        Algorithm::Md5,
        &["<sip:202@192.0.2.10:5062>"],
        None,
        "a2",
    );
    assert!(ok.starts_with("SIP/2.0 200"), "{ok}");
    assert!(
        header_values(&ok, "Contact")[0].ends_with("expires=3600"),
        "default expiry"
    );
    let query = s.register(from, "201", "secret", Algorithm::Md5, &[], None, "a3");
    assert!(query.starts_with("SIP/2.0 200"));
    assert_eq!(header_values(&query, "Contact").len(), 1);
}

#[test]
fn two_contacts_expire_on_the_virtual_clock() {
    let mut s = Srv::new().without_keepalive();
    let desk = udp("192.0.2.10:5062");
    let mobile = udp("198.51.100.7:5060");
    let ok = s.register(
        desk,
        "201",
        "secret",
        Algorithm::Sha256,
        &["<sip:201@192.0.2.10:5062>;expires=60"],
        None,
        "d",
    );
    assert!(ok.starts_with("SIP/2.0 200"), "{ok}");
    let ok = s.register(
        mobile,
        "201",
        "secret",
        Algorithm::Sha256,
        &["<sip:201@198.51.100.7>"],
        Some(120),
        "m",
    );
    assert_eq!(header_values(&ok, "Contact").len(), 2, "{ok}");
    assert_eq!(s.ua.contacts("201").len(), 2);
    assert_eq!(
        reachability(&s.take_events()),
        vec![("201".to_string(), true)]
    );
    s.advance(Duration::from_secs(61));
    assert_eq!(s.ua.contacts("201").len(), 1);
    assert!(
        reachability(&s.take_events()).is_empty(),
        "one contact left"
    );
    s.advance(Duration::from_secs(60));
    assert!(s.ua.contacts("201").is_empty());
    assert_eq!(
        reachability(&s.take_events()),
        vec![("201".to_string(), false)]
    );
    assert_eq!(
        s.ua.poll_timeout(),
        None,
        "no timer left for expired bindings"
    );
}

#[test]
fn comma_joined_contacts_and_the_per_aor_limit() {
    let mut s = Srv::new().without_keepalive();
    let from = udp("192.0.2.10:5062");
    let joined = r#"<sip:201@h:1>, <sip:201@h:2>;expires=120, "Desk, left" <sip:201@h:3>"#;
    let ok = s.register(
        from,
        "201",
        "secret",
        Algorithm::Sha256,
        &[joined],
        None,
        "j",
    );
    assert_eq!(header_values(&ok, "Contact").len(), 3, "{ok}");
    for port in 4..=11 {
        let c = format!("<sip:201@h:{port}>");
        s.register(
            from,
            "201",
            "secret",
            Algorithm::Sha256,
            &[&c],
            None,
            &format!("j{port}"),
        );
    }
    let uris: Vec<String> = s.ua.contacts("201").into_iter().map(|c| c.uri).collect();
    assert_eq!(uris.len(), 10);
    assert!(
        !uris.contains(&"sip:201@h:2".to_string()),
        "the one closest to expiry made room"
    );
    assert!(uris.contains(&"sip:201@h:11".to_string()));
    let bad = s.register(
        from,
        "201",
        "secret",
        Algorithm::Sha256,
        &["<sip:201@h:1"],
        None,
        "jb",
    );
    assert!(bad.starts_with("SIP/2.0 400"), "{bad}");
}

#[test]
fn contact_star_and_expires_zero_remove_bindings() {
    let mut s = Srv::new().without_keepalive();
    let from = udp("192.0.2.10:5062");
    let both = ["<sip:201@192.0.2.10:5062>", "<sip:201@192.0.2.10:5064>"];
    s.register(from, "201", "secret", Algorithm::Sha256, &both, None, "x");
    assert_eq!(s.ua.contacts("201").len(), 2);
    let ok = s.register(
        from,
        "201",
        "secret",
        Algorithm::Sha256,
        &["<sip:201@192.0.2.10:5064>;expires=0"],
        None,
        "x2",
    );
    assert_eq!(header_values(&ok, "Contact").len(), 1, "{ok}");
    let bad = s.register(from, "201", "secret", Algorithm::Sha256, &["*"], None, "x3");
    assert!(bad.starts_with("SIP/2.0 400"), "* needs Expires: 0: {bad}");
    s.take_events();
    let ok = s.register(
        from,
        "201",
        "secret",
        Algorithm::Sha256,
        &["*"],
        Some(0),
        "x4",
    );
    assert!(
        ok.starts_with("SIP/2.0 200") && header_values(&ok, "Contact").is_empty(),
        "{ok}"
    );
    assert!(s.ua.contacts("201").is_empty());
    assert_eq!(
        reachability(&s.take_events()),
        vec![("201".to_string(), false)]
    );
}

#[test]
fn too_brief_gets_423_and_long_is_capped() {
    let mut s = Srv::new().without_keepalive();
    let from = udp("192.0.2.10:5062");
    let c = ["<sip:201@192.0.2.10:5062>"];
    let brief = s.register(from, "201", "secret", Algorithm::Sha256, &c, Some(30), "b");
    assert!(brief.starts_with("SIP/2.0 423"), "{brief}");
    assert_eq!(header_values(&brief, "Min-Expires"), vec!["60".to_string()]);
    assert!(s.ua.contacts("201").is_empty());
    let long = s.register(
        from,
        "201",
        "secret",
        Algorithm::Sha256,
        &c,
        Some(86_400),
        "b2",
    );
    assert_eq!(
        header_values(&long, "Contact"),
        vec!["<sip:201@192.0.2.10:5062>;expires=3600".to_string()]
    );
}

#[test]
fn repeated_failures_block_one_ip_while_another_registers() {
    let mut s = Srv::new().without_keepalive();
    let bad = udp("203.0.113.66:5060");
    let good = udp("192.0.2.10:5062");
    for i in 0..5 {
        let r = s.register(
            bad,
            "201",
            "guess",
            Algorithm::Sha256,
            &["<sip:201@203.0.113.66>"],
            None,
            &format!("g{i}"),
        );
        assert!(r.starts_with("SIP/2.0 403"), "{r}");
    }
    // Blocked: 403 at once, even with the right password and without a challenge.
    let t = s.register_text(
        "201",
        "203.0.113.66:5060",
        &["<sip:201@203.0.113.66>"],
        "g9",
        1,
        None,
        None,
    );
    assert!(s.ask(bad, &t).starts_with("SIP/2.0 403"));
    let ok = s.register(
        good,
        "201",
        "secret",
        Algorithm::Sha256,
        &["<sip:201@192.0.2.10:5062>"],
        None,
        "ok",
    );
    assert!(ok.starts_with("SIP/2.0 200"), "{ok}");
    s.advance(Duration::from_secs(301));
    let ok = s.register(
        bad,
        "201",
        "secret",
        Algorithm::Sha256,
        &["<sip:201@203.0.113.66>"],
        None,
        "later",
    );
    assert!(ok.starts_with("SIP/2.0 200"), "the block ends: {ok}");
}

#[test]
fn tables_stay_bounded_under_a_flood_of_users_and_ips() {
    let mut s = Srv::new().without_keepalive();
    s.ua.set_registrar_config(RegistrarConfig {
        keepalive: None,
        max_tracked_ips: 100,
        ..RegistrarConfig::default()
    });
    let first = s.register_text("201", "192.0.2.1:5060", &[], "fl", 1, None, None);
    let ch = s.ask(udp("192.0.2.1:5060"), &first);
    let (nonce, opaque) = pick_challenge(&ch, "WWW-Authenticate", Algorithm::Md5);
    let mut rng = fastrand::Rng::with_seed(3);
    for i in 0..2_000u32 {
        let ip = format!("10.{}.{}.{}:5060", rng.u8(..), rng.u8(..), rng.u8(1..));
        let user = format!("u{}", rng.u32(..));
        let auth = digest::client_response(
            Algorithm::Md5,
            &user,
            REALM,
            "x",
            "REGISTER",
            "sip:hotline",
            &nonce,
            1,
            "c",
            Some(&opaque),
        );
        let t = s.register_text(
            &user,
            &ip,
            &[&format!("<sip:{user}@{ip}>")],
            &format!("fl{i}"),
            1,
            None,
            Some(&auth),
        );
        let r = s.ask(udp(&ip), &t);
        assert!(r.starts_with("SIP/2.0 403"), "{r}");
        assert!(s.ua.registrar().tracked_ips() <= 100);
    }
    assert!(s.ua.contacts("201").is_empty());

    // The nonce-count table: bounded, and a nonce whose count was dropped is not accepted
    // again (stale), so eviction cannot reopen a replay.
    let from = udp("192.0.2.10:5062");
    s.ua.registrar_mut().auth = digest::DigestAuth::new(9).with_max_counts(8);
    let mut issued = Vec::new();
    for i in 0..20u32 {
        let ok = s.register(
            from,
            "201",
            "secret",
            Algorithm::Sha256,
            &["<sip:201@192.0.2.10:5062>"],
            None,
            &format!("n{i}"),
        );
        assert!(ok.starts_with("SIP/2.0 200"), "{ok}");
        let reg = s
            .sent
            .iter()
            .rev()
            .find(|(_, t)| t.contains("WWW-Authenticate"))
            .unwrap()
            .1
            .clone();
        issued.push(pick_challenge(&reg, "WWW-Authenticate", Algorithm::Sha256));
        assert!(s.ua.registrar().auth.nonce_counts() <= 8);
    }
    let (nonce, opaque) = &issued[0];
    let auth = digest::client_response(
        Algorithm::Sha256,
        "201",
        REALM,
        "secret",
        "REGISTER",
        "sip:hotline",
        nonce,
        2,
        "cn",
        Some(opaque),
    );
    let t = s.register_text(
        "201",
        "192.0.2.10:5062",
        &["<sip:201@192.0.2.10:5062>"],
        "n0",
        9,
        None,
        Some(&auth),
    );
    let r = s.ask(from, &t);
    assert!(
        r.starts_with("SIP/2.0 401") && r.contains("stale=true"),
        "{r}"
    );
}

#[test]
fn keepalive_options_keep_a_contact_and_silence_makes_it_unreachable() {
    let mut s = Srv::new();
    // Behind NAT: the phone says 192.168.1.10, the packets come from 203.0.113.5:40000.
    let nat = udp("203.0.113.5:40000");
    let first = s.register_text(
        "201",
        "192.168.1.10:5062",
        &["<sip:201@192.168.1.10:5062>"],
        "k",
        1,
        Some(300),
        None,
    );
    let ch = s.ask(nat, &first);
    let (nonce, opaque) = pick_challenge(&ch, "WWW-Authenticate", Algorithm::Sha256);
    let auth = digest::client_response(
        Algorithm::Sha256,
        "201",
        REALM,
        "secret",
        "REGISTER",
        "sip:hotline",
        &nonce,
        1,
        "cn",
        Some(&opaque),
    );
    let t = s.register_text(
        "201",
        "192.168.1.10:5062",
        &["<sip:201@192.168.1.10:5062>"],
        "k",
        2,
        Some(300),
        Some(&auth),
    );
    let ok = s.ask(nat, &t);
    assert!(ok.starts_with("SIP/2.0 200"), "{ok}");
    assert_eq!(
        s.ua.contacts("201")[0].peer,
        nat,
        "the source address, not the Contact's"
    );
    s.take_events();

    let out = s.advance(Duration::from_secs(30));
    let options: Vec<_> = out
        .iter()
        .filter(|(_, t)| t.starts_with("OPTIONS "))
        .collect();
    assert_eq!(options.len(), 1, "{out:?}");
    assert_eq!(options[0].0, nat.addr);
    assert!(
        options[0]
            .1
            .starts_with("OPTIONS sip:201@192.168.1.10:5062 SIP/2.0")
    );
    // The phone answers.
    let reply = response_to(&options[0].1, 200);
    s.input(nat, &reply);
    s.advance(Duration::from_secs(29));
    assert_eq!(s.ua.contacts("201").len(), 1);
    assert!(reachability(&s.take_events()).is_empty());

    // The next one goes unanswered (retransmitted by the transaction, then Timer F).
    let out = s.advance(Duration::from_secs(2));
    assert!(out.iter().any(|(_, t)| t.starts_with("OPTIONS ")));
    s.advance(Duration::from_secs(33));
    assert!(s.ua.contacts("201").is_empty());
    assert_eq!(
        reachability(&s.take_events()),
        vec![("201".to_string(), false)]
    );
    // A later OPTIONS that is answered brings it back.
    let out = s.advance(Duration::from_secs(30));
    let opt = out
        .iter()
        .find(|(_, t)| t.starts_with("OPTIONS "))
        .expect("pinging continues");
    s.input(nat, &response_to(&opt.1, 404));
    assert_eq!(s.ua.contacts("201").len(), 1);
    assert_eq!(
        reachability(&s.take_events()),
        vec![("201".to_string(), true)]
    );
}

#[test]
fn removed_accounts_lose_their_bindings() {
    let mut s = Srv::new().without_keepalive();
    let from = udp("192.0.2.10:5062");
    s.register(
        from,
        "201",
        "secret",
        Algorithm::Sha256,
        &["<sip:201@192.0.2.10:5062>"],
        None,
        "r",
    );
    s.take_events();
    s.ua.set_accounts(vec![account("202", "pw2")]);
    s.pump();
    assert!(s.ua.contacts("201").is_empty());
    assert_eq!(
        reachability(&s.take_events()),
        vec![("201".to_string(), false)]
    );
}

/// A response to a request we sent, as the far end would write it.
fn response_to(request: &str, code: u16) -> String {
    let mut out = format!("SIP/2.0 {code} Whatever\r\n");
    for line in request.lines() {
        let lower = line.to_ascii_lowercase();
        if lower.starts_with("via:")
            || lower.starts_with("from:")
            || lower.starts_with("call-id:")
            || lower.starts_with("cseq:")
        {
            out.push_str(line);
            out.push_str("\r\n");
        } else if lower.starts_with("to:") {
            out.push_str(line);
            if !lower.contains("tag=") {
                out.push_str(";tag=far");
            }
            out.push_str("\r\n");
        }
    }
    out.push_str("Content-Length: 0\r\n\r\n");
    out
}

// ---------------------------------------------------------------- INVITE auth

fn invite_text(branch: &str, cseq: u32, auth: Option<&str>) -> String {
    let mut t = format!(
        "INVITE sip:500@10.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 192.0.2.10:5062;branch={branch}\r\nMax-Forwards: 70\r\nFrom: <sip:201@hotline>;tag=caller1\r\nTo: <sip:500@10.0.0.1>\r\nCall-ID: inv-1\r\nCSeq: {cseq} INVITE\r\nContact: <sip:201@192.0.2.10:5062>\r\n"
    );
    if let Some(a) = auth {
        t.push_str(&format!("Proxy-Authorization: {a}\r\n"));
    }
    t.push_str("Content-Length: 0\r\n\r\n");
    t
}

fn incoming(events: &[UaEvent]) -> Vec<(CallRef, Option<String>)> {
    events
        .iter()
        .filter_map(|e| match e {
            UaEvent::Incoming {
                call,
                authenticated,
                ..
            } => Some((*call, authenticated.clone())),
            _ => None,
        })
        .collect()
}

#[test]
fn invite_challenged_with_407_then_authenticated() {
    let mut s = Srv::new();
    let phone = udp("192.0.2.10:5062");
    s.input(phone, &invite_text("z9hG4bKi1", 1, None));
    let first = incoming(&s.take_events());
    assert_eq!(first.len(), 1);
    assert_eq!(first[0].1, None);
    s.ua.challenge(s.now, first[0].0);
    let out = s.pump();
    let resp = &out
        .iter()
        .find(|(_, t)| t.starts_with("SIP/2.0 407"))
        .expect("407")
        .1;
    let pa = header_values(resp, "Proxy-Authenticate");
    assert_eq!(pa.len(), 2, "{resp}");
    assert!(pa[0].contains("SHA-256") && pa[1].contains("MD5"));
    assert_eq!(s.ua.calls(), 0, "the challenged call is over for the UA");
    // The ACK for the 407 (same transaction), then the retry: same Call-ID, new CSeq.
    let to_tag = resp
        .lines()
        .find(|l| l.starts_with("To:"))
        .unwrap()
        .split("tag=")
        .nth(1)
        .unwrap()
        .trim()
        .to_string();
    let ack = format!(
        "ACK sip:500@10.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 192.0.2.10:5062;branch=z9hG4bKi1\r\nFrom: <sip:201@hotline>;tag=caller1\r\nTo: <sip:500@10.0.0.1>;tag={to_tag}\r\nCall-ID: inv-1\r\nCSeq: 1 ACK\r\nContent-Length: 0\r\n\r\n"
    );
    s.input(phone, &ack);
    let (nonce, opaque) = pick_challenge(resp, "Proxy-Authenticate", Algorithm::Sha256);
    let auth = digest::client_response(
        Algorithm::Sha256,
        "201",
        REALM,
        "secret",
        "INVITE",
        "sip:500@10.0.0.1",
        &nonce,
        1,
        "cn",
        Some(&opaque),
    );
    s.input(phone, &invite_text("z9hG4bKi2", 2, Some(&auth)));
    let second = incoming(&s.take_events());
    assert_eq!(second.len(), 1, "the retry is a new incoming call");
    assert_ne!(second[0].0, first[0].0);
    assert_eq!(second[0].1.as_deref(), Some("201"));
    // Wrong password: not authenticated.
    s.ua.hangup(s.now, second[0].0);
    s.pump();
    let bad = digest::client_response(
        Algorithm::Sha256,
        "201",
        REALM,
        "nope",
        "INVITE",
        "sip:500@10.0.0.1",
        &nonce,
        2,
        "cn",
        Some(&opaque),
    );
    s.input(phone, &invite_text("z9hG4bKi3", 3, Some(&bad)));
    assert_eq!(incoming(&s.take_events())[0].1, None);
    // Guessing by INVITE counts against the IP like REGISTER: once blocked, even the right
    // password is not checked.
    for i in 4..8 {
        let call = incoming(&s.take_events()).first().map(|c| c.0);
        if let Some(c) = call {
            s.ua.hangup(s.now, c);
        }
        s.input(phone, &invite_text(&format!("z9hG4bKi{i}"), i, Some(&bad)));
    }
    let good = digest::client_response(
        Algorithm::Sha256,
        "201",
        REALM,
        "secret",
        "INVITE",
        "sip:500@10.0.0.1",
        &nonce,
        9,
        "cn",
        Some(&opaque),
    );
    s.input(phone, &invite_text("z9hG4bKi9", 9, Some(&good)));
    assert_eq!(incoming(&s.take_events()).last().unwrap().1, None);
}

// ---------------------------------------------------------------- REFER

/// An answered, ACKed incoming call from the phone; its CallRef and our To tag.
fn confirmed_call(s: &mut Srv, phone: Peer) -> (CallRef, String) {
    s.input(phone, &invite_text("z9hG4bKc1", 1, None));
    let call = incoming(&s.take_events())[0].0;
    s.ua.answer(s.now, call, b"v=0\r\n".to_vec());
    let out = s.pump();
    let ok = &out
        .iter()
        .find(|(_, t)| t.starts_with("SIP/2.0 200"))
        .unwrap()
        .1;
    let tag = ok
        .lines()
        .find(|l| l.starts_with("To:"))
        .unwrap()
        .split("tag=")
        .nth(1)
        .unwrap()
        .trim()
        .to_string();
    let ack = format!(
        "ACK sip:hotline@10.0.0.1:5060 SIP/2.0\r\nVia: SIP/2.0/UDP 192.0.2.10:5062;branch=z9hG4bKa1\r\nFrom: <sip:201@hotline>;tag=caller1\r\nTo: <sip:500@10.0.0.1>;tag={tag}\r\nCall-ID: inv-1\r\nCSeq: 1 ACK\r\nContent-Length: 0\r\n\r\n"
    );
    s.input(phone, &ack);
    s.take_events();
    (call, tag)
}

fn refer_text(branch: &str, cseq: u32, to_tag: &str, refer_to: &str) -> String {
    format!(
        "REFER sip:hotline@10.0.0.1:5060 SIP/2.0\r\nVia: SIP/2.0/UDP 192.0.2.10:5062;branch={branch}\r\nFrom: <sip:201@hotline>;tag=caller1\r\nTo: <sip:500@10.0.0.1>;tag={to_tag}\r\nCall-ID: inv-1\r\nCSeq: {cseq} REFER\r\nRefer-To: {refer_to}\r\nReferred-By: <sip:201@hotline>\r\nContact: <sip:201@192.0.2.10:5062>\r\nContent-Length: 0\r\n\r\n"
    )
}

#[test]
fn refer_in_a_dialog_reports_target_and_replaces_then_202_and_notify() {
    let mut s = Srv::new();
    let phone = udp("192.0.2.10:5062");
    let (call, tag) = confirmed_call(&mut s, phone);
    let refer = refer_text(
        "z9hG4bKr1",
        2,
        &tag,
        "<sip:202@hotline?Replaces=abc%40host%3Bto-tag%3Dt1%3Bfrom-tag%3Df1>",
    );
    let out = s.input(phone, &refer);
    assert!(
        out.iter().all(|(_, t)| !t.starts_with("SIP/2.0 ")),
        "waits for the engine: {out:?}"
    );
    let events = s.take_events();
    let Some(UaEvent::Refer {
        call: c,
        target,
        replaces,
        referred_by,
    }) = events.first()
    else {
        panic!("{events:?}")
    };
    assert_eq!(*c, call);
    assert_eq!(target, "sip:202@hotline");
    assert_eq!(
        replaces.as_ref(),
        Some(&Replaces {
            call_id: "abc@host".into(),
            to_tag: "t1".into(),
            from_tag: "f1".into()
        })
    );
    assert_eq!(referred_by.as_deref(), Some("<sip:201@hotline>"));
    s.ua.answer_refer(s.now, call, 202);
    let out = s.pump();
    assert!(out[0].1.starts_with("SIP/2.0 202"), "{}", out[0].1);
    s.ua.notify_refer(s.now, call, 180, false);
    s.ua.notify_refer(s.now, call, 200, true);
    let out = s.pump();
    assert_eq!(out.len(), 2);
    let (to, notify) = &out[1];
    assert_eq!(*to, phone.addr);
    assert!(
        notify.starts_with("NOTIFY sip:201@192.0.2.10:5062 SIP/2.0"),
        "{notify}"
    );
    assert_eq!(header_values(notify, "Event"), vec!["refer".to_string()]);
    assert!(header_values(notify, "Subscription-State")[0].starts_with("terminated"));
    assert!(header_values(&out[0].1, "Subscription-State")[0].starts_with("active"));
    assert!(notify.contains("Content-Type: message/sipfrag;version=2.0"));
    assert!(notify.ends_with("\r\n\r\nSIP/2.0 200 OK\r\n"), "{notify}");
    assert!(out[0].1.ends_with("SIP/2.0 180 Ringing\r\n"));
}

#[test]
fn unanswered_refer_gets_500_and_refer_outside_a_dialog_is_refused() {
    let mut s = Srv::new();
    let phone = udp("192.0.2.10:5062");
    let (_call, tag) = confirmed_call(&mut s, phone);
    s.input(phone, &refer_text("z9hG4bKr2", 2, &tag, "sip:202@hotline"));
    assert!(matches!(
        s.take_events().first(),
        Some(UaEvent::Refer { replaces: None, .. })
    ));
    let out = s.advance(Duration::from_secs(5));
    assert!(
        out.iter().any(|(_, t)| t.starts_with("SIP/2.0 500")),
        "{out:?}"
    );
    // No Refer-To: 400. Unknown dialog: 481. No dialog at all: 405.
    let bad = refer_text("z9hG4bKr3", 3, &tag, "").replace("Refer-To: \r\n", "");
    assert!(s.ask(phone, &bad).starts_with("SIP/2.0 400"));
    assert!(
        s.ask(phone, &refer_text("z9hG4bKr4", 4, "nosuch", "sip:1@h"))
            .starts_with("SIP/2.0 481")
    );
    let outside = refer_text("z9hG4bKr5", 5, "x", "sip:1@h").replace(";tag=x", "");
    let r = s.ask(phone, &outside);
    assert!(r.starts_with("SIP/2.0 405"), "{r}");
    assert!(!header_values(&r, "Allow")[0].contains("REFER"));
}

// ---------------------------------------------------------------- outbound

#[test]
fn redirect_on_an_outbound_invite_fails_with_its_code_and_is_not_followed() {
    let mut s = Srv::new();
    let agent = Contact {
        uri: "sip:201@192.168.1.10:5062".into(),
        peer: udp("203.0.113.5:40000"),
    };
    let call = s.ua.reserve_call();
    s.ua.invite_contact(
        s.now,
        call,
        &agent,
        "caller",
        Some("Ann \"A\""),
        "201",
        Some(b"v=0\r\n".to_vec()),
    )
    .unwrap();
    let out = s.pump();
    let (to, invite) = &out[0];
    assert_eq!(*to, agent.peer.addr);
    assert!(
        invite.starts_with("INVITE sip:201@192.168.1.10:5062 SIP/2.0"),
        "{invite}"
    );
    assert!(
        invite.contains("From: \"Ann \\\"A\\\"\" <sip:caller@10.0.0.1:5060>;tag="),
        "{invite}"
    );
    assert!(invite.contains("To: <sip:201@192.168.1.10:5062>"));
    let redirect = response_to(invite, 302).replace(
        "Content-Length",
        "Contact: <sip:201@elsewhere>\r\nContent-Length",
    );
    let out = s.input(agent.peer, &redirect);
    assert!(out.iter().any(|(_, t)| t.starts_with("ACK ")), "{out:?}");
    assert!(
        out.iter().all(|(_, t)| !t.starts_with("INVITE ")),
        "never followed"
    );
    let events = s.take_events();
    assert!(
        events
            .iter()
            .any(|e| matches!(e, UaEvent::Failed { call: c, code: 302 } if *c == call)),
        "{events:?}"
    );
    assert_eq!(s.ua.calls(), 0);
}

#[test]
fn hanging_up_a_ringing_outbound_call_sends_cancel() {
    let mut s = Srv::new();
    let agent = Contact {
        uri: "sip:201@192.0.2.10:5062".into(),
        peer: udp("192.0.2.10:5062"),
    };
    let call = s.ua.reserve_call();
    s.ua.invite_contact(s.now, call, &agent, "caller", None, "201", None)
        .unwrap();
    let invite = s.pump()[0].1.clone();
    s.input(agent.peer, &response_to(&invite, 180));
    assert!(
        s.take_events()
            .iter()
            .any(|e| matches!(e, UaEvent::Progress { code: 180, .. }))
    );
    s.ua.hangup(s.now, call);
    let out = s.pump();
    let cancel = &out
        .iter()
        .find(|(_, t)| t.starts_with("CANCEL "))
        .expect("a CANCEL")
        .1;
    assert!(cancel.starts_with("CANCEL sip:201@192.0.2.10:5062 SIP/2.0"));
    assert!(cancel.contains("CSeq: 1 CANCEL"), "{cancel}");
    // One CANCEL only, even if more provisional responses come.
    s.input(agent.peer, &response_to(&invite, 183));
    assert!(
        s.sent
            .iter()
            .filter(|(_, t)| t.starts_with("CANCEL "))
            .count()
            == 1
    );
    // The callee answers the CANCEL and ends the INVITE with 487: Failed{487}.
    s.input(agent.peer, &response_to(cancel, 200));
    s.input(agent.peer, &response_to(&invite, 487));
    assert!(
        s.take_events()
            .iter()
            .any(|e| matches!(e, UaEvent::Failed { code: 487, .. }))
    );
    assert_eq!(s.ua.calls(), 0);
    s.advance(Duration::from_secs(40));
    assert!(s.take_events().is_empty(), "nothing more after the 487");
}

#[test]
fn hangup_before_any_provisional_waits_and_a_silent_callee_is_given_up() {
    let mut s = Srv::new();
    let agent = Contact {
        uri: "sip:201@192.0.2.10:5062".into(),
        peer: udp("192.0.2.10:5062"),
    };
    let call = s.ua.reserve_call();
    s.ua.invite_contact(s.now, call, &agent, "caller", None, "201", None)
        .unwrap();
    let invite = s.pump()[0].1.clone();
    s.ua.hangup(s.now, call);
    assert!(
        s.pump().is_empty(),
        "no CANCEL before a provisional response"
    );
    s.input(agent.peer, &response_to(&invite, 100));
    assert!(s.sent.iter().any(|(_, t)| t.starts_with("CANCEL ")));
    // The callee never sends a final response: 64*T1 after the CANCEL the call is over.
    s.advance(Duration::from_secs(33));
    assert!(
        s.take_events()
            .iter()
            .any(|e| matches!(e, UaEvent::Failed { call: c, code: 408 } if *c == call))
    );
    assert_eq!(s.ua.calls(), 0);
    assert_eq!(s.ua.pending_requests(), 0);
}

#[test]
fn verdicts_for_unsupported_parameters() {
    let mut auth = digest::DigestAuth::new(1);
    let now = Instant::now();
    let nonce = auth.new_nonce(now);
    let creds = account("201", "secret").credentials;
    let mut p = digest::parse_authorization(&digest::client_response(
        Algorithm::Md5,
        "201",
        REALM,
        "secret",
        "REGISTER",
        "sip:h",
        &nonce,
        1,
        "c",
        None,
    ))
    .unwrap();
    let lookup = |_: &str| Some(creds.clone());
    p.qop = None;
    assert_eq!(
        auth.verify(now, "REGISTER", REALM, None, &p, lookup),
        Verdict::Rechallenge
    );
    p.qop = Some("auth".into());
    p.algorithm = Some("MD5-sess".into());
    assert_eq!(
        auth.verify(now, "REGISTER", REALM, None, &p, lookup),
        Verdict::Rechallenge
    );
    p.algorithm = Some("md5".into());
    assert_eq!(
        auth.verify(now, "REGISTER", "other", None, &p, lookup),
        Verdict::Forbidden
    );
    assert_eq!(
        auth.verify(now, "REGISTER", REALM, Some("202"), &p, lookup),
        Verdict::Forbidden
    );
    assert_eq!(
        auth.verify(now, "REGISTER", REALM, None, &p, lookup),
        Verdict::Ok("201".into())
    );
}
