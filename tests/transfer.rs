//! Blind transfer end to end: a caller reaches a `transfer` node, hotline calls the target
//! (a real SIP user agent on loopback), and once it answers the two hear each other, each
//! direction checked by the tone the other side sends. A busy target and one that never
//! answers take the flow's failure exit.

mod common;

use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

use common::*;
use hotline::cdr::Disposition;
use hotline::sip::{CallRef, Peer, TransportKind, UaConfig, UaEvent, UserAgent};

const S: fn(u64) -> Duration = Duration::from_millis;

#[derive(Clone, Copy)]
enum Behaviour {
    Answer,
    Busy,
    RingForever,
}

/// What the transfer target saw.
struct Seen {
    invited_user: Option<String>,
    audio: Vec<i16>,
    got_bye: bool,
}

/// The target: a SIP user agent that answers (or not) and sends a 1500 Hz tone.
fn run_target(
    sip: UdpSocket,
    rtp_sock: UdpSocket,
    behaviour: Behaviour,
    for_how_long: Duration,
) -> Seen {
    sip.set_nonblocking(true).unwrap();
    let mut ua = UserAgent::new(UaConfig {
        timers: Default::default(),
        advertised: sip.local_addr().unwrap().to_string(),
        advertise_request_host: false,
        user: "duty".into(),
        // Real sockets: any distinct seed will do; these phones challenge nobody.
        seed: fastrand::u64(..),
        nonce_secret: [0; 32],
        tls_port: None,
    });
    let mut media = ToneMedia::new(rtp_sock, 1500.0, 0xD07);
    let mut seen = Seen {
        invited_user: None,
        audio: Vec::new(),
        got_bye: false,
    };
    let end = Instant::now() + for_how_long;
    let mut buf = [0u8; 65536];
    while Instant::now() < end && !seen.got_bye {
        while let Some(t) = ua.poll_transmit() {
            sip.send_to(&t.data, t.to.addr).unwrap();
        }
        while let Ok((n, from)) = sip.recv_from(&mut buf) {
            let peer = Peer {
                addr: from,
                transport: TransportKind::Udp,
            };
            ua.handle_input(Instant::now(), peer, &buf[..n]);
        }
        ua.handle_timeout(Instant::now());
        while let Some(event) = ua.poll_event() {
            match event {
                UaEvent::Incoming {
                    call,
                    to_user,
                    offer,
                    ..
                } => {
                    seen.invited_user = Some(to_user);
                    match behaviour {
                        Behaviour::Busy => ua.reject(Instant::now(), call, 486, &[]),
                        Behaviour::RingForever => ua.ring(Instant::now(), call),
                        Behaviour::Answer => {
                            let answer = media.answer(&offer.expect("an offer"));
                            ua.answer(Instant::now(), call, answer);
                            let _: CallRef = call;
                        }
                    }
                }
                UaEvent::RemoteBye { .. } | UaEvent::Cancelled { .. } => seen.got_bye = true,
                _ => {}
            }
        }
        media.poll();
        std::thread::sleep(S(2));
    }
    seen.audio = std::mem::take(&mut media.audio);
    // Answer what came last (the 200 for a BYE, the 487 after a CANCEL) before going away.
    ua.handle_timeout(Instant::now());
    while let Some(t) = ua.poll_transmit() {
        sip.send_to(&t.data, t.to.addr).unwrap();
    }
    seen
}

fn transfer_site(target: SocketAddr, ring: &str) -> Site {
    site(&format!(
        r#"
[flow]
name = "t"
numbers = ["300"]
start = "connect"

[nodes.connect]
type = "transfer"
to = "sip:duty@{target}"
prompts = ["welcome"]
ring_timeout = "{ring}"
on_failure = "sorry"

[nodes.sorry]
type = "play"
prompts = ["goodbye"]
next = "end"

[nodes.end]
type = "hangup"
"#
    ))
}

fn target_sockets() -> (UdpSocket, UdpSocket, SocketAddr) {
    let sip = UdpSocket::bind("127.0.0.1:0").unwrap();
    let rtp = UdpSocket::bind("127.0.0.1:0").unwrap();
    let addr = sip.local_addr().unwrap();
    (sip, rtp, addr)
}

#[test]
fn an_answered_transfer_carries_audio_both_ways_until_the_caller_hangs_up() {
    let (sip, rtp_sock, addr) = target_sockets();
    let site = transfer_site(addr, "10s");
    let mut server = start(site.config.clone());
    let target = std::thread::spawn(move || run_target(sip, rtp_sock, Behaviour::Answer, S(8000)));
    let mut phone = Phone::new(server.sip);
    phone.call("300");
    phone.talk(S(800)); // the welcome prompt, then the target is called
    phone.send_audio(&sine(1000.0, 2000, 8000.0), S(300));
    phone.hangup();
    phone.pump(S(300));
    let seen = target.join().unwrap();
    server.stop();
    assert_eq!(seen.invited_user.as_deref(), Some("duty"));
    assert!(
        seen.got_bye,
        "the caller's hang-up ends the target's call too"
    );
    let to_target = crossings_per_second(&seen.audio);
    assert!(
        (1800.0..2200.0).contains(&to_target),
        "the target hears the caller's 1 kHz: {to_target}"
    );
    let to_caller = crossings_per_second(&phone.heard_pcm());
    assert!(
        (2800.0..3200.0).contains(&to_caller),
        "the caller hears the target's 1.5 kHz: {to_caller}"
    );
    let cdrs = read_cdrs(&site.config.database);
    assert_eq!(cdrs.len(), 1, "one CDR for the transferred call: {cdrs:?}");
    assert_eq!(cdrs[0].ivr_path, ["connect"]);
    assert_eq!(cdrs[0].disposition, Disposition::CallerHangup);
}

#[test]
fn a_busy_target_takes_the_failure_exit() {
    let (sip, rtp_sock, addr) = target_sockets();
    let site = transfer_site(addr, "10s");
    let mut server = start(site.config.clone());
    let target = std::thread::spawn(move || run_target(sip, rtp_sock, Behaviour::Busy, S(3000)));
    let mut phone = Phone::new(server.sip);
    phone.call("300");
    phone
        .wait_for(S(4000), |e| matches!(e, UaEvent::RemoteBye { .. }))
        .expect("the failure exit plays goodbye and hangs up");
    server.stop();
    target.join().unwrap();
    let c = &read_cdrs(&site.config.database)[0];
    assert_eq!(c.ivr_path, ["connect", "sorry", "end"]);
}

#[test]
fn a_target_that_only_rings_is_cancelled_at_the_ring_timeout() {
    let (sip, rtp_sock, addr) = target_sockets();
    let site = transfer_site(addr, "1s");
    let mut server = start(site.config.clone());
    let target =
        std::thread::spawn(move || run_target(sip, rtp_sock, Behaviour::RingForever, S(4000)));
    let mut phone = Phone::new(server.sip);
    phone.call("300");
    phone
        .wait_for(S(5000), |e| matches!(e, UaEvent::RemoteBye { .. }))
        .expect("after the ring timeout the caller hears goodbye");
    server.stop();
    let seen = target.join().unwrap();
    assert!(seen.got_bye, "the ringing call was cancelled");
    let c = &read_cdrs(&site.config.database)[0];
    assert_eq!(c.ivr_path, ["connect", "sorry", "end"]);
}
