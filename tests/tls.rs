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

fn tls_site(srtp: SrtpMode) -> Site {
    let mut site = site(TEST_FLOW);
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
        let mut roots = rustls::RootCertStore::empty();
        for cert in CertificateDer::pem_file_iter(repo().join("tests/tls/ca.pem")).unwrap() {
            roots.add(cert.unwrap()).unwrap();
        }
        #[allow(deprecated)]
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
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
