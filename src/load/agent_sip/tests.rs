//! The agent's own client transactions, driven by hand: the test plays the registrar's
//! side message by message on a loopback socket (no server runs), so each step of the
//! digest exchange, the refresh, the retransmissions and the de-registration is checked.

use super::*;
use crate::load::agents::Gauge;
use std::sync::mpsc;

struct Rig {
    registrar: UdpSocket,
    plan: AgentSipPlan,
    echo: SyncSender<EchoCommand>,
    gauge: Gauge,
    t0: Instant,
}

fn rig(opts: AgentOptions) -> Rig {
    let registrar = UdpSocket::bind("127.0.0.1:0").unwrap();
    registrar
        .set_read_timeout(Some(Duration::from_secs(2)))
        .unwrap();
    let (echo, rx) = mpsc::sync_channel(8);
    std::mem::forget(rx);
    Rig {
        plan: AgentSipPlan {
            target: registrar.local_addr().unwrap(),
            local_ip: "127.0.0.1".parse().unwrap(),
            rtp_ports: vec![40000; opts.count as usize],
            opts,
            max_duration: Duration::from_secs(10),
        },
        registrar,
        echo,
        gauge: Gauge::new(Instant::now()),
        t0: Instant::now(),
    }
}

impl Rig {
    fn agent(&self, i: u32) -> Agent {
        let sock = net::bind_udp("127.0.0.1".parse().unwrap()).unwrap();
        Agent::new(i, sock, &self.plan, self.t0)
    }

    fn recv(&self) -> String {
        let mut buf = [0u8; 4096];
        let n = self.registrar.recv(&mut buf).expect("a request");
        String::from_utf8(buf[..n].to_vec()).unwrap()
    }

    fn nothing_sent(&self) -> bool {
        self.registrar.set_nonblocking(true).unwrap();
        let mut buf = [0u8; 4096];
        let none = self.registrar.recv(&mut buf).is_err();
        self.registrar.set_nonblocking(false).unwrap();
        none
    }
}

fn header<'a>(req: &'a str, name: &str) -> Option<&'a str> {
    req.split("\r\n").find_map(|l| {
        let (k, v) = l.split_once(':')?;
        k.eq_ignore_ascii_case(name).then_some(v.trim())
    })
}

fn param<'a>(auth: &'a str, name: &str) -> &'a str {
    let at = auth.find(&format!("{name}=")).unwrap() + name.len() + 1;
    let rest = &auth[at..];
    if let Some(q) = rest.strip_prefix('"') {
        &q[..q.find('"').unwrap()]
    } else {
        rest.split(',').next().unwrap().trim()
    }
}

fn response(req: &str, status: &str, extra: &str) -> Vec<u8> {
    format!(
        "SIP/2.0 {status}\r\nVia: {}\r\nFrom: {}\r\nTo: {};tag=srv\r\nCall-ID: {}\r\nCSeq: {}\r\n{extra}Content-Length: 0\r\n\r\n",
        header(req, "Via").unwrap(),
        header(req, "From").unwrap(),
        header(req, "To").unwrap(),
        header(req, "Call-ID").unwrap(),
        header(req, "CSeq").unwrap(),
    )
    .into_bytes()
}

const CHALLENGES: &str = "WWW-Authenticate: Digest realm=\"hotline\", nonce=\"n,1\", qop=\"auth\", algorithm=MD5\r\nWWW-Authenticate: Digest realm=\"hotline\", nonce=\"n,1\", qop=\"auth\", algorithm=SHA-256\r\n";

/// The response value the registrar would compute for `req`.
fn check_digest(req: &str, password: &str) -> (String, String) {
    let auth = header(req, "Authorization").expect("credentials");
    let alg = digest::Algorithm::from_token(Some(param(auth, "algorithm"))).unwrap();
    let c = Challenge {
        realm: param(auth, "realm").into(),
        nonce: param(auth, "nonce").into(),
        opaque: None,
        algorithm: alg,
        qop_auth: true,
        stale: false,
    };
    let nc = u32::from_str_radix(param(auth, "nc"), 16).unwrap();
    let want = digest::response(
        &c,
        &Credentials {
            username: param(auth, "username"),
            password,
            method: "REGISTER",
            uri: param(auth, "uri"),
        },
        nc,
        param(auth, "cnonce"),
    );
    assert_eq!(param(auth, "response"), want, "{auth}");
    (param(auth, "nc").to_string(), c.nonce)
}

#[test]
fn registers_with_digest_refreshes_and_deregisters() {
    let r = rig(AgentOptions {
        count: 1,
        register_expires: 60,
        ..AgentOptions::default()
    });
    let from = r.registrar.local_addr().unwrap();
    let mut ctx = Ctx::new(&r.plan, &r.echo, &r.gauge);
    let mut a = r.agent(0);
    let t0 = r.t0;
    a.on_timers(t0, &mut ctx);
    let req = r.recv();
    assert!(
        req.starts_with(&format!("REGISTER sip:{from} SIP/2.0\r\n")),
        "{req}"
    );
    assert_eq!(header(&req, "Expires"), Some("60"));
    assert_eq!(
        header(&req, "Contact"),
        Some(format!("<{}>", a.contact_uri).as_str())
    );
    assert!(a.contact_uri.starts_with("sip:2000@127.0.0.1:"));
    assert_eq!(header(&req, "Authorization"), None);
    assert!(!a.resolved());

    a.on_datagram(
        t0,
        from,
        &response(&req, "401 Unauthorized", CHALLENGES),
        &mut ctx,
    );
    let req = r.recv();
    assert!(header(&req, "CSeq").unwrap().starts_with("2 "));
    let (nc, nonce) = check_digest(&req, "secret");
    assert_eq!((nc.as_str(), nonce.as_str()), ("00000001", "n,1"));
    assert!(
        header(&req, "Authorization")
            .unwrap()
            .contains("algorithm=SHA-256")
    );

    let ok = format!("Contact: <{}>;expires=40\r\n", a.contact_uri);
    a.on_datagram(t0, from, &response(&req, "200 OK", &ok), &mut ctx);
    assert_eq!(ctx.tally.registered, 1);
    assert_eq!(ctx.tally.algorithms.get("SHA-256"), Some(&1));
    assert!(a.resolved());

    // Refresh at half the granted 40 s, with the same nonce and the next nc.
    a.on_timers(t0 + Duration::from_secs(19), &mut ctx);
    assert!(r.nothing_sent());
    a.on_timers(t0 + Duration::from_secs(21), &mut ctx);
    let req = r.recv();
    assert_eq!(
        check_digest(&req, "secret"),
        ("00000002".into(), "n,1".into())
    );
    // A stale nonce: answered again with the new one, nc back to 1.
    let stale = "WWW-Authenticate: Digest realm=\"hotline\", nonce=\"n2\", qop=\"auth\", algorithm=SHA-256, stale=true\r\n";
    let t = t0 + Duration::from_secs(21);
    a.on_datagram(
        t,
        from,
        &response(&req, "401 Unauthorized", stale),
        &mut ctx,
    );
    let req = r.recv();
    assert_eq!(
        check_digest(&req, "secret"),
        ("00000001".into(), "n2".into())
    );
    a.on_datagram(
        t,
        from,
        &response(&req, "200 OK", "Expires: 30\r\n"),
        &mut ctx,
    );
    assert_eq!((ctx.tally.refreshes, ctx.tally.refresh_failures), (1, 0));

    // The end: Expires 0 with credentials, and done once answered.
    ctx.stopping = true;
    a.begin_stop(t, &mut ctx);
    let req = r.recv();
    assert_eq!(header(&req, "Expires"), Some("0"));
    check_digest(&req, "secret");
    assert!(!a.stopped());
    a.on_datagram(t, from, &response(&req, "200 OK", ""), &mut ctx);
    assert!(a.stopped());
    assert_eq!(ctx.tally.unregistered, 1);
}

#[test]
fn md5_preference_wrong_password_and_timeouts() {
    let r = rig(AgentOptions {
        count: 2,
        digest: crate::load::DigestPreference::Md5,
        ..AgentOptions::default()
    });
    let from = r.registrar.local_addr().unwrap();
    let mut ctx = Ctx::new(&r.plan, &r.echo, &r.gauge);
    let t0 = r.t0;
    // Agent 2000: the registrar keeps challenging (a wrong password): it gives up.
    let mut a = r.agent(0);
    a.on_timers(t0, &mut ctx);
    let mut req = r.recv();
    for round in 0..3 {
        a.on_datagram(
            t0,
            from,
            &response(&req, "401 Unauthorized", CHALLENGES),
            &mut ctx,
        );
        if round == 2 {
            break;
        }
        req = r.recv();
        assert!(
            header(&req, "Authorization")
                .unwrap()
                .contains("algorithm=MD5")
        );
        check_digest(&req, "secret");
    }
    assert!(r.nothing_sent(), "no endless challenge loop");
    assert_eq!(ctx.tally.register_failures.get(&401), Some(&1));
    assert!(a.resolved() && !a.reg.ever);
    // Agent 2001: no answer at all: retransmitted at 0.5, 1.5, 3.5 s..., 408 at 32 s.
    let mut b = r.agent(1);
    b.on_timers(t0, &mut ctx);
    let first = r.recv();
    assert!(first.contains("sip:2001@"));
    b.on_timers(t0 + Duration::from_millis(400), &mut ctx);
    assert!(r.nothing_sent());
    b.on_timers(t0 + Duration::from_millis(500), &mut ctx);
    assert_eq!(r.recv(), first, "the same request again");
    b.on_timers(t0 + Duration::from_millis(1400), &mut ctx);
    assert!(r.nothing_sent());
    b.on_timers(t0 + Duration::from_millis(1500), &mut ctx);
    assert_eq!(r.recv(), first);
    b.on_timers(t0 + Duration::from_secs(32), &mut ctx);
    assert_eq!(ctx.tally.register_failures.get(&408), Some(&1));
    assert!(b.resolved() && b.stopped());
}

#[test]
fn login_call_authenticates_then_hangs_up() {
    let r = rig(AgentOptions {
        count: 1,
        login_code: Some("*13".into()),
        ..AgentOptions::default()
    });
    let from = r.registrar.local_addr().unwrap();
    let mut ctx = Ctx::new(&r.plan, &r.echo, &r.gauge);
    let t0 = r.t0;
    let mut a = r.agent(0);
    a.on_timers(t0, &mut ctx);
    let req = r.recv();
    a.on_datagram(
        t0,
        from,
        &response(&req, "200 OK", "Expires: 300\r\n"),
        &mut ctx,
    );
    assert_eq!(ctx.tally.algorithms.get("none"), Some(&1), "not challenged");
    assert!(!a.resolved(), "the login call is still to be made");
    let inv = r.recv();
    assert!(
        inv.starts_with(&format!("INVITE sip:*13@{from} SIP/2.0")),
        "{inv}"
    );
    assert!(inv.contains("m=audio 40000 RTP/AVP"));
    // 407: ACK, then the INVITE again with Proxy-Authorization for method INVITE.
    let chal = "Proxy-Authenticate: Digest realm=\"hotline\", nonce=\"p\", qop=\"auth\", algorithm=SHA-256\r\n";
    a.on_datagram(
        t0,
        from,
        &response(&inv, "407 Proxy Authentication Required", chal),
        &mut ctx,
    );
    let ack = r.recv();
    assert!(ack.starts_with("ACK ") && ack.contains("CSeq: 1 ACK") && ack.contains("tag=srv"));
    assert_eq!(
        header(&ack, "Via"),
        header(&inv, "Via"),
        "same branch as the INVITE"
    );
    let inv2 = r.recv();
    assert!(inv2.contains("CSeq: 2 INVITE"));
    let auth = header(&inv2, "Proxy-Authorization").unwrap();
    assert_eq!(param(auth, "uri"), format!("sip:*13@{from}"));
    // 200: ACK and BYE; the BYE's 200 ends it.
    a.on_datagram(t0, from, &response(&inv2, "200 OK", ""), &mut ctx);
    let ack = r.recv();
    assert!(ack.contains("CSeq: 2 ACK") && header(&ack, "Via") != header(&inv2, "Via"));
    let bye = r.recv();
    assert!(bye.starts_with("BYE ") && bye.contains("CSeq: 3 BYE") && bye.contains("tag=srv"));
    assert_eq!(ctx.tally.login_results.get(&200), Some(&1));
    a.on_datagram(t0, from, &response(&bye, "200 OK", ""), &mut ctx);
    assert!(a.resolved());
}
