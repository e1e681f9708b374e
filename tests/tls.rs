//! SIP over TLS with SRTP: a phone (hotline's own user agent, over a rustls client that trusts
//! only the test certificate) calls in on the TLS port and offers SDES keys; the answer's
//! Contact names the TLS port with `transport=tls`, the prompts arrive encrypted and open only
//! under the key of hotline's answer, a key pressed as an encrypted RFC 4733 event reaches
//! the flow, and plain RTP sent to the call is ignored.
//!
//! `tests/tls/`: a test CA (`ca.pem`) and the certificate it signed for 127.0.0.1, ::1 and
//! localhost (`cert.pem`, `key.pem`), made for these tests alone; the keys are public and
//! protect nothing.

mod common;

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::*;
use hotline::config::{SrtpMode, TlsConfig};
use hotline::media::Codec;
use hotline::media::srtp::{MasterKey, Protector, SrtpKeys, Suite, Unprotector};
use hotline::media::{rfc4733, rtp};
use hotline::sdp::SessionDescription;
use hotline::sip::{CallRef, Peer, TransportKind, UaConfig, UaEvent, UserAgent};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// A TLS client that trusts only the test CA.
fn client_config() -> rustls::ClientConfig {
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(repo().join("tests/tls/ca.pem")).unwrap() {
        roots.add(cert.unwrap()).unwrap();
    }
    #[allow(deprecated)]
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth()
}

fn tls_site(srtp: SrtpMode) -> Site {
    tls_site_with(TEST_FLOW, srtp)
}

fn tls_site_with(flow: &str, srtp: SrtpMode) -> Site {
    let mut site = site(flow);
    let tcp = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = tcp.local_addr().unwrap().port();
    drop(tcp);
    site.config.tls = Some(TlsConfig {
        port,
        certificate: repo().join("tests/tls/cert.pem"),
        key: repo().join("tests/tls/key.pem"),
    });
    site.config.srtp = srtp;
    site
}

type Tls = rustls::StreamOwned<rustls::ClientConnection, TcpStream>;

/// A phone on a TLS connection: hotline's UA for SIP, one UDP socket for SRTP.
struct TlsPhone {
    ua: UserAgent,
    tls: Tls,
    server: SocketAddr,
    pending: Vec<u8>,
    /// Every SIP message the server sent, as text.
    seen: Vec<String>,
    events: Vec<UaEvent>,
    rtp: UdpSocket,
    key: MasterKey,
}

impl TlsPhone {
    fn connect(server: SocketAddr) -> TlsPhone {
        let config = client_config();
        let name = ServerName::try_from("127.0.0.1").unwrap();
        let conn = rustls::ClientConnection::new(Arc::new(config), name).unwrap();
        let sock = TcpStream::connect(server).unwrap();
        sock.set_read_timeout(Some(Duration::from_millis(5)))
            .unwrap();
        let local = sock.local_addr().unwrap();
        let rtp = UdpSocket::bind("127.0.0.1:0").unwrap();
        rtp.set_nonblocking(true).unwrap();
        TlsPhone {
            ua: UserAgent::new(UaConfig {
                timers: Default::default(),
                advertised: local.to_string(),
                advertise_request_host: false,
                user: "phone".into(),
                seed: fastrand::u64(..),
                nonce_secret: [0; 32],
                tls_port: Some(local.port()),
            }),
            tls: rustls::StreamOwned::new(conn, sock),
            server,
            pending: Vec::new(),
            seen: Vec::new(),
            events: Vec::new(),
            rtp,
            key: MasterKey(std::array::from_fn(|i| (i * 7 + 3) as u8)),
        }
    }

    fn peer(&self) -> Peer {
        Peer {
            addr: self.server,
            transport: TransportKind::Tls,
        }
    }

    fn offer(&self, secure: bool) -> String {
        let profile = if secure { "RTP/SAVP" } else { "RTP/AVP" };
        let mut sdp = format!(
            "v=0\r\no=phone 1 1 IN IP4 127.0.0.1\r\ns=call\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n\
             m=audio {} {profile} 0 101\r\na=rtpmap:0 PCMU/8000\r\n\
             a=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-16\r\na=ptime:20\r\n",
            self.rtp.local_addr().unwrap().port()
        );
        if secure {
            sdp.push_str(&format!(
                "a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:{}\r\n",
                self.key.to_inline()
            ));
        }
        sdp
    }

    fn pump(&mut self, d: Duration) {
        let end = Instant::now() + d;
        let mut buf = [0u8; 16384];
        loop {
            self.ua.handle_timeout(Instant::now());
            while let Some(t) = self.ua.poll_transmit() {
                self.tls.write_all(&t.data).unwrap();
                self.tls.flush().unwrap();
            }
            match self.tls.read(&mut buf) {
                Ok(0) => {}
                Ok(n) => self.pending.extend_from_slice(&buf[..n]),
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
                Err(e) => panic!("TLS read: {e}"),
            }
            while let Ok(Some(len)) = hotline::sip::framing::stream_message_len(&self.pending) {
                if len == 0 {
                    break;
                }
                let message: Vec<u8> = self.pending.drain(..len).collect();
                self.seen
                    .push(String::from_utf8_lossy(&message).to_string());
                self.ua.handle_input(Instant::now(), self.peer(), &message);
            }
            while let Some(e) = self.ua.poll_event() {
                self.events.push(e);
            }
            if Instant::now() >= end {
                return;
            }
        }
    }

    fn wait_for(&mut self, timeout: Duration, f: impl Fn(&UaEvent) -> bool) -> Option<UaEvent> {
        let end = Instant::now() + timeout;
        loop {
            if let Some(i) = self.events.iter().position(&f) {
                return Some(self.events.remove(i));
            }
            if Instant::now() >= end {
                return None;
            }
            self.pump(Duration::from_millis(5));
        }
    }

    fn dial(&mut self, offer: String) -> CallRef {
        let peer = self.peer();
        let call = self
            .ua
            .invite(
                Instant::now(),
                peer,
                "5550177",
                "100",
                Some(offer.into_bytes()),
            )
            .unwrap();
        self.pump(Duration::from_millis(1));
        call
    }
}

fn rtp_packet(pt: u8, seq: u16, ts: u32, payload: &[u8]) -> Vec<u8> {
    let mut p = vec![0u8; 12];
    rtp::write_header(
        &rtp::RtpHeader {
            marker: false,
            payload_type: pt,
            sequence: seq,
            timestamp: ts,
            ssrc: 0x7115,
        },
        (&mut p[..12]).try_into().unwrap(),
    );
    p.extend_from_slice(payload);
    p
}

#[test]
fn a_call_over_tls_with_srtp_hears_encrypted_prompts_and_its_encrypted_keys_reach_the_flow() {
    let site = tls_site(SrtpMode::Optional);
    let mut server = start(site.config.clone());
    let tls_addr = server
        .server
        .as_ref()
        .unwrap()
        .tls_addr
        .expect("TLS listens");
    let mut phone = TlsPhone::connect(tls_addr);
    let offer = phone.offer(true);
    let call = phone.dial(offer);
    let answer = match phone.wait_for(Duration::from_secs(5), |e| {
        matches!(e, UaEvent::Answered { .. })
    }) {
        Some(UaEvent::Answered {
            answer: Some(sdp), ..
        }) => String::from_utf8(sdp).unwrap(),
        other => panic!("no answer over TLS: {other:?} {:?}", phone.seen),
    };
    let ok = phone
        .seen
        .iter()
        .find(|m| m.starts_with("SIP/2.0 200"))
        .unwrap();
    assert!(
        ok.contains(&format!("127.0.0.1:{};transport=tls>", tls_addr.port())),
        "Contact names the TLS port: {ok}"
    );
    let sd = SessionDescription::parse(&answer).unwrap();
    let m = &sd.media[0];
    assert_eq!(m.protocol, "RTP/SAVP", "{answer}");
    assert_eq!(m.crypto.len(), 1, "{answer}");
    let theirs = m.crypto[0];
    assert_eq!((theirs.tag, theirs.suite), (1, Suite::Aes128CmHmacSha1_80));
    assert_ne!(theirs.key, phone.key, "hotline's own key");
    let media = SocketAddr::new(sd.connection_of(m).unwrap(), m.port);
    let keys = SrtpKeys {
        suite: theirs.suite,
        send: phone.key,
        receive: theirs.key,
    };
    let mut open = Unprotector::new(&keys).unwrap();
    let mut seal = Protector::new(&keys).unwrap();

    // Talk (sealed silence) and listen for the prompts; then press 1, sealed, and a 9 in
    // plain RTP, which must not count.
    let mut heard = Vec::new();
    let (mut refused, mut seq, mut ts) = (0, 1u16, 0u32);
    let mut buf = [0u8; 2048];
    let start = Instant::now();
    let mut pressed = false;
    while start.elapsed() < Duration::from_millis(2500) {
        phone.pump(Duration::from_millis(20));
        let packet = if !pressed && start.elapsed() > Duration::from_millis(900) {
            pressed = true;
            for (i, end) in [(1u16, false), (2, false), (3, true), (3, true)] {
                let ev = rfc4733::TelephoneEvent {
                    event: 1,
                    end,
                    volume: 10,
                    duration: 160 * i,
                };
                let mut payload = [0u8; 4];
                rfc4733::write(&ev, &mut payload);
                let sealed = seal.protect(&rtp_packet(101, seq, ts, &payload)).unwrap();
                phone.rtp.send_to(&sealed, media).unwrap();
                seq += 1;
                rfc4733::write(&rfc4733::TelephoneEvent { event: 9, ..ev }, &mut payload);
                phone
                    .rtp
                    .send_to(&rtp_packet(101, 9000 + seq, ts + 8000, &payload), media)
                    .unwrap();
            }
            ts += 800;
            continue;
        } else {
            rtp_packet(0, seq, ts, &[0xFF; 160])
        };
        phone
            .rtp
            .send_to(&seal.protect(&packet).unwrap(), media)
            .unwrap();
        seq += 1;
        ts += 160;
        while let Ok(n) = phone.rtp.recv(&mut buf) {
            match open.unprotect(&mut buf[..n]) {
                Some(n) => {
                    let (_, payload) = rtp::parse(&buf[..n]).unwrap();
                    heard.extend(payload.iter().map(|&b| Codec::Pcmu.decode(b)));
                }
                None => refused += 1,
            }
        }
    }
    assert_eq!(refused, 0, "every packet from hotline opens under its key");
    let loud = heard.iter().filter(|s| s.abs() > 2000).count();
    assert!(
        loud > 4000,
        "the prompts came through SRTP: {loud} loud samples"
    );
    phone.ua.hangup(Instant::now(), call);
    phone.pump(Duration::from_millis(300));
    server.stop();
    let cdrs = read_cdrs(&site.config.database);
    assert_eq!(cdrs.len(), 1, "{cdrs:?}");
    assert_eq!(
        cdrs[0].digits, "1",
        "the sealed key reached the flow and the plain one did not: {:?}",
        cdrs[0]
    );
}

#[test]
fn srtp_required_refuses_a_plain_call_and_srtp_off_refuses_an_srtp_only_one() {
    for (mode, secure) in [(SrtpMode::Required, false), (SrtpMode::Off, true)] {
        let site = tls_site(mode);
        let mut server = start(site.config.clone());
        let tls_addr = server.server.as_ref().unwrap().tls_addr.unwrap();
        let mut phone = TlsPhone::connect(tls_addr);
        let offer = phone.offer(secure);
        phone.dial(offer);
        let failed = phone.wait_for(Duration::from_secs(5), |e| {
            matches!(e, UaEvent::Failed { .. } | UaEvent::Answered { .. })
        });
        assert!(
            matches!(failed, Some(UaEvent::Failed { code: 488, .. })),
            "{mode:?}: {failed:?}"
        );
        server.stop();
        let cdrs = read_cdrs(&site.config.database);
        assert_eq!(cdrs[0].end_reason, "no_srtp", "{:?}", cdrs[0]);
    }
}

#[test]
fn a_bad_certificate_path_stops_the_start_with_the_path_named() {
    let mut site = tls_site(SrtpMode::Optional);
    if let Some(tls) = site.config.tls.as_mut() {
        tls.certificate = site.dir.path().join("missing.pem");
    }
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let error = match runtime.block_on(hotline::runtime::start(site.config.clone())) {
        Ok(_) => panic!("started without a certificate"),
        Err(e) => e.to_string(),
    };
    assert!(error.contains("missing.pem"), "{error}");
}

const TRUNK_FLOW: &str = r##"
[flow]
name = "out"
numbers = ["300"]
start = "xfer"

[nodes.xfer]
type = "transfer"
number = "13800138000"
ring_timeout = "5s"
on_failure = "bye"

[nodes.bye]
type = "hangup"
"##;

/// A trunk that takes calls only over TLS: hotline opens the connection itself, checks the
/// trunk's certificate against the configured authority and name, and sends the transfer's
/// INVITE through it with `transport=tls`, a TLS Via and an SRTP offer. The trunk here is a
/// rustls server that answers 486, so the transfer takes its failure exit.
#[test]
fn a_transfer_to_a_number_reaches_a_tls_trunk_over_a_connection_hotline_opens() {
    let mut site = tls_site_with(TRUNK_FLOW, SrtpMode::Optional);
    let our_tls_port = site.config.tls.as_ref().unwrap().port;
    let trunk = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let trunk_addr = trunk.local_addr().unwrap();
    site.config.outbound = Some(trunk_addr);
    site.config.outbound_transport = hotline::sip::TransportKind::Tls;
    site.config.tls_ca = Some(repo().join("tests/tls/ca.pem"));
    site.config.outbound_tls_name = Some("localhost".into());
    let trunk_thread = std::thread::spawn(move || {
        let certs: Vec<_> = CertificateDer::pem_file_iter(repo().join("tests/tls/cert.pem"))
            .unwrap()
            .map(Result::unwrap)
            .collect();
        let key = rustls::pki_types::PrivateKeyDer::from_pem_file(repo().join("tests/tls/key.pem"))
            .unwrap();
        #[allow(deprecated)]
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(certs, key)
            .unwrap();
        let (sock, _) = trunk.accept().unwrap();
        sock.set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        let conn = rustls::ServerConnection::new(Arc::new(config)).unwrap();
        let mut tls = rustls::StreamOwned::new(conn, sock);
        let mut pending = Vec::new();
        let mut buf = [0u8; 8192];
        let invite = loop {
            let n = tls.read(&mut buf).expect("the INVITE over TLS");
            pending.extend_from_slice(&buf[..n]);
            if let Ok(Some(len)) = hotline::sip::framing::stream_message_len(&pending)
                && len > 0
            {
                break String::from_utf8_lossy(&pending[..len]).to_string();
            }
        };
        // 486 Busy Here, built from the INVITE's own headers.
        let header = |name: &str| {
            invite
                .lines()
                .filter(|l| {
                    l.to_ascii_lowercase()
                        .starts_with(&format!("{}:", name.to_ascii_lowercase()))
                })
                .map(|l| format!("{l}\r\n"))
                .collect::<String>()
        };
        let busy = format!(
            "SIP/2.0 486 Busy Here\r\n{}{}{};tag=trunk\r\n{}{}Content-Length: 0\r\n\r\n",
            header("Via"),
            header("From"),
            header("To").trim_end(),
            header("Call-ID"),
            header("CSeq"),
        );
        tls.write_all(busy.as_bytes()).unwrap();
        tls.flush().unwrap();
        // Then the ACK for the 486, on the same connection.
        let mut ack = Vec::new();
        while !String::from_utf8_lossy(&ack).contains("ACK ") {
            match tls.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => ack.extend_from_slice(&buf[..n]),
            }
        }
        (invite, String::from_utf8_lossy(&ack).to_string())
    });
    let mut server = start(site.config.clone());
    let mut phone = Phone::new(server.sip);
    phone.call("300");
    let (invite, ack) = trunk_thread.join().unwrap();
    assert!(
        invite.to_ascii_lowercase().starts_with(&format!(
            "invite sip:13800138000@{trunk_addr};transport=tls sip/2.0"
        )),
        "{invite}"
    );
    assert!(
        invite.contains(&format!("Via: SIP/2.0/TLS 127.0.0.1:{our_tls_port};")),
        "{invite}"
    );
    assert!(
        invite.contains(&format!("@127.0.0.1:{our_tls_port};transport=tls>")),
        "the trunk's requests come back to our TLS port: {invite}"
    );
    assert!(
        invite.contains(" RTP/SAVP ")
            && invite.contains("a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:"),
        "SRTP is offered to a trunk reached over TLS: {invite}"
    );
    assert!(
        ack.contains("ACK "),
        "the 486 is acknowledged over the connection: {ack}"
    );
    phone.pump(Duration::from_millis(500));
    server.stop();
    let cdrs = read_cdrs(&site.config.database);
    assert_eq!(cdrs.len(), 1);
    assert!(cdrs[0].ivr_path.iter().any(|n| n == "bye"), "{:?}", cdrs[0]);
}

/// The same trunk under a name its certificate does not carry: hotline refuses the
/// connection (nothing is sent to an impostor) and the transfer takes its failure exit when
/// its ring time is up.
#[test]
fn a_trunk_whose_certificate_does_not_match_gets_nothing() {
    let mut site = site(&TRUNK_FLOW.replace("ring_timeout = \"5s\"", "ring_timeout = \"2s\""));
    let trunk = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    site.config.outbound = Some(trunk.local_addr().unwrap());
    site.config.outbound_transport = hotline::sip::TransportKind::Tls;
    site.config.tls_ca = Some(repo().join("tests/tls/ca.pem"));
    site.config.outbound_tls_name = Some("trunk.example.net".into());
    let trunk_thread = std::thread::spawn(move || {
        let acceptor = {
            let certs: Vec<_> = CertificateDer::pem_file_iter(repo().join("tests/tls/cert.pem"))
                .unwrap()
                .map(Result::unwrap)
                .collect();
            let key =
                rustls::pki_types::PrivateKeyDer::from_pem_file(repo().join("tests/tls/key.pem"))
                    .unwrap();
            #[allow(deprecated)]
            let provider = Arc::new(rustls::crypto::ring::default_provider());
            rustls::ServerConfig::builder_with_provider(provider)
                .with_safe_default_protocol_versions()
                .unwrap()
                .with_no_client_auth()
                .with_single_cert(certs, key)
                .unwrap()
        };
        let (sock, _) = trunk.accept().unwrap();
        sock.set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        let conn = rustls::ServerConnection::new(Arc::new(acceptor)).unwrap();
        let mut tls = rustls::StreamOwned::new(conn, sock);
        let mut buf = [0u8; 8192];
        tls.read(&mut buf)
    });
    let mut server = start(site.config.clone());
    let mut phone = Phone::new(server.sip);
    phone.call("300");
    let got = trunk_thread.join().unwrap();
    assert!(
        matches!(got, Err(_) | Ok(0)),
        "no SIP reached the trunk: {got:?}"
    );
    phone.pump(Duration::from_secs(3));
    server.stop();
    let cdrs = read_cdrs(&site.config.database);
    assert!(cdrs[0].ivr_path.iter().any(|n| n == "bye"), "{:?}", cdrs[0]);
}

/// A client that opens the TLS port and never finishes a handshake holds its slot only for
/// the message timeout; a real phone connects meanwhile.
#[test]
fn a_stalled_tls_handshake_is_dropped_within_the_message_timeout() {
    let mut site = tls_site(SrtpMode::Optional);
    site.config.tcp_message_timeout = Duration::from_millis(300);
    let mut server = start(site.config.clone());
    let tls_addr = server.server.as_ref().unwrap().tls_addr.unwrap();
    let mut stalled = TcpStream::connect(tls_addr).unwrap();
    stalled
        .set_read_timeout(Some(Duration::from_secs(3)))
        .unwrap();
    stalled.write_all(&[0x16, 0x03, 0x01]).unwrap(); // the first bytes of a ClientHello
    let mut phone = TlsPhone::connect(tls_addr);
    let offer = phone.offer(true);
    phone.dial(offer);
    assert!(
        phone
            .wait_for(Duration::from_secs(5), |e| matches!(
                e,
                UaEvent::Answered { .. }
            ))
            .is_some(),
        "a phone is served beside the stalled client"
    );
    let started = Instant::now();
    let mut buf = [0u8; 64];
    let closed = matches!(stalled.read(&mut buf), Ok(0) | Err(_));
    assert!(
        closed && started.elapsed() < Duration::from_secs(2),
        "the stalled connection is closed: {:?}",
        started.elapsed()
    );
    drop(phone);
    server.stop();
}

/// The CTI API over HTTPS with the configured certificate: a client that trusts the test CA
/// logs in, the session cookie is marked Secure, and plain HTTP on the same port gets no
/// answer.
#[test]
fn the_api_answers_over_https_with_a_secure_session_cookie() {
    use hotline::api::auth::hash_password;
    use hotline::config::ApiSettings;
    let mut site = site(TEST_FLOW);
    let hash = hash_password("correct horse").unwrap();
    let users = site.dir.path().join("users.toml");
    std::fs::write(
        &users,
        format!("[[user]]\nname = \"boss\"\nrole = \"admin\"\npassword = \"{hash}\"\n"),
    )
    .unwrap();
    site.config.api = Some(ApiSettings {
        bind: "127.0.0.1:0".parse().unwrap(),
        users,
        tls: Some((
            repo().join("tests/tls/cert.pem"),
            repo().join("tests/tls/key.pem"),
        )),
        session_idle: Duration::from_secs(600),
        session_max: Duration::from_secs(3600),
        max_connections: 16,
        max_connections_per_address: 8,
        request_timeout: Duration::from_secs(15),
    });
    let mut server = start(site.config.clone());
    let api = server.server.as_ref().unwrap().api_addr.unwrap();

    let https = |request: &str| -> String {
        let config = client_config();
        let conn = rustls::ClientConnection::new(
            Arc::new(config),
            ServerName::try_from("127.0.0.1").unwrap(),
        )
        .unwrap();
        let sock = TcpStream::connect(api).unwrap();
        sock.set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        let mut tls = rustls::StreamOwned::new(conn, sock);
        tls.write_all(request.as_bytes()).unwrap();
        let mut raw = Vec::new();
        let _ = tls.read_to_end(&mut raw);
        String::from_utf8_lossy(&raw).to_string()
    };
    let health = https("GET /api/v1/health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    assert!(health.starts_with("HTTP/1.1 200"), "{health}");
    let body = r#"{"user": "boss", "password": "correct horse"}"#;
    let login = https(&format!(
        "POST /api/v1/session HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    ));
    assert!(login.starts_with("HTTP/1.1 200"), "{login}");
    let cookie = login
        .lines()
        .find(|l| l.to_ascii_lowercase().starts_with("set-cookie:"))
        .unwrap_or_else(|| panic!("{login}"));
    assert!(cookie.contains("; Secure"), "{cookie}");
    assert!(cookie.contains("HttpOnly"), "{cookie}");

    // Plain HTTP on the HTTPS port: no HTTP answer.
    let mut plain = TcpStream::connect(api).unwrap();
    plain
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    plain
        .write_all(b"GET /api/v1/health HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    let mut answer = Vec::new();
    let _ = plain.read_to_end(&mut answer);
    assert!(
        !String::from_utf8_lossy(&answer).contains("200 OK"),
        "plain HTTP must not be served on the HTTPS port"
    );
    server.stop();
}
