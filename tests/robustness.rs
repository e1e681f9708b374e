//! Bad input, other transports and a database that goes away: hotline keeps serving, and
//! every call still leaves exactly one CDR.

mod common;

use std::io::{Read, Write};
use std::net::{TcpStream, UdpSocket};
use std::time::{Duration, Instant};

use common::*;
use hotline::cdr::Disposition;
use hotline::media::Codec;
use hotline::sip::UaEvent;

const S: fn(u64) -> Duration = Duration::from_millis;

#[test]
fn garbage_on_sip_and_rtp_ports_harms_no_call() {
    let site = site(TEST_FLOW);
    let mut server = start(site.config.clone());
    let mut phone = Phone::new(server.sip);
    phone.call("100");
    phone.talk(S(200));
    let rtp_target = phone.remote_rtp.unwrap();
    let junk = UdpSocket::bind("127.0.0.1:0").unwrap();
    junk.set_read_timeout(Some(S(300))).unwrap();
    let mut rng = fastrand::Rng::with_seed(5);
    let valid = "OPTIONS sip:100@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:9;branch=z9hG4bKj\r\nFrom: <sip:x@y>;tag=1\r\nTo: <sip:100@h>\r\nCall-ID: junk\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n";
    for i in 0..400 {
        let mut data: Vec<u8> = match i % 4 {
            0 => (0..rng.usize(1..1500)).map(|_| rng.u8(..)).collect(),
            1 => valid.as_bytes()[..rng.usize(1..valid.len())].to_vec(),
            2 => valid
                .replace("Content-Length: 0", "Content-Length: 999")
                .into_bytes(),
            _ => format!(
                "INVITE sip:100@h SIP/2.0\r\nSubject: {}\r\n\r\n",
                "x".repeat(70_000)
            )
            .into_bytes(),
        };
        data.truncate(65_000);
        junk.send_to(&data, server.sip).unwrap();
        junk.send_to(&data[..data.len().min(400)], rtp_target)
            .unwrap();
    }
    // A truncated message with a usable Via is answered 400.
    junk.send_to(
        valid
            .replace("Content-Length: 0", "Content-Length: 40")
            .as_bytes(),
        server.sip,
    )
    .unwrap();
    let mut buf = [0u8; 4096];
    let mut got_400 = false;
    let deadline = Instant::now() + S(2000);
    while Instant::now() < deadline && !got_400 {
        if let Ok(n) = junk.recv(&mut buf) {
            got_400 = String::from_utf8_lossy(&buf[..n]).starts_with("SIP/2.0 400");
        }
    }
    assert!(got_400, "wrong Content-Length gets 400 Bad Request");
    // The call in progress still hears its menu and still takes keys.
    phone.talk(S(700));
    phone.press("9", S(700));
    phone
        .wait_for(S(3000), |e| matches!(e, UaEvent::RemoteBye { .. }))
        .expect("call unaffected");
    // And a new call still works.
    let mut second = Phone::new(server.sip);
    second.call("100");
    second.hangup();
    second.pump(S(100));
    server.stop();
    let cdrs = read_cdrs(&site.config.database);
    assert_eq!(cdrs.len(), 2);
    assert_eq!(cdrs[0].digits, "9");
}

#[test]
fn options_over_udp_and_a_call_over_tcp() {
    let site = site(TEST_FLOW);
    let mut server = start(site.config.clone());
    let udp = UdpSocket::bind("127.0.0.1:0").unwrap();
    udp.set_read_timeout(Some(S(2000))).unwrap();
    let me = udp.local_addr().unwrap();
    let options = format!(
        "OPTIONS sip:100@{0} SIP/2.0\r\nVia: SIP/2.0/UDP {me};branch=z9hG4bKopt;rport\r\nFrom: <sip:probe@{me}>;tag=a\r\nTo: <sip:100@{0}>\r\nCall-ID: opt-1\r\nCSeq: 1 OPTIONS\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n",
        server.sip
    );
    udp.send_to(options.as_bytes(), server.sip).unwrap();
    let mut buf = [0u8; 4096];
    let n = udp.recv(&mut buf).unwrap();
    let reply = String::from_utf8_lossy(&buf[..n]);
    assert!(reply.starts_with("SIP/2.0 200"), "{reply}");
    assert!(
        reply.contains("Allow: INVITE, ACK, BYE, CANCEL, OPTIONS, INFO"),
        "{reply}"
    );

    // An INVITE over TCP, framed by Content-Length, answered on the same connection even
    // though its Via names another address (RFC 3261 §18.2.2), as desk phones often do.
    let mut tcp = TcpStream::connect(server.sip).unwrap();
    tcp.set_read_timeout(Some(S(3000))).unwrap();
    let local = tcp.local_addr().unwrap();
    let sdp = "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 4000 RTP/AVP 0\r\n";
    let invite = format!(
        "INVITE sip:100@{0};transport=tcp SIP/2.0\r\nVia: SIP/2.0/TCP 192.0.2.10:5060;branch=z9hG4bKtcp1\r\nFrom: <sip:tcp@{local}>;tag=t1\r\nTo: <sip:100@{0}>\r\nCall-ID: tcp-call-1\r\nCSeq: 1 INVITE\r\nContact: <sip:tcp@{local};transport=tcp>\r\nContent-Type: application/sdp\r\nContent-Length: {1}\r\n\r\n{sdp}",
        server.sip,
        sdp.len()
    );
    tcp.write_all(invite.as_bytes()).unwrap();
    let mut got = String::new();
    let deadline = Instant::now() + S(3000);
    while !got.contains("SIP/2.0 200") && Instant::now() < deadline {
        let n = tcp.read(&mut buf).unwrap_or(0);
        got.push_str(&String::from_utf8_lossy(&buf[..n]));
    }
    assert!(got.contains("SIP/2.0 100"), "{got}");
    assert!(got.contains("SIP/2.0 200"), "{got}");
    let to_tag = got
        .split("To: ")
        .nth(2)
        .or(got.split("To: ").nth(1))
        .and_then(|t| t.split("tag=").nth(1))
        .map(|t| t.split(['\r', ';']).next().unwrap().to_string())
        .unwrap();
    let ack = format!(
        "ACK sip:100@{0};transport=tcp SIP/2.0\r\nVia: SIP/2.0/TCP 192.0.2.10:5060;branch=z9hG4bKtcp2\r\nFrom: <sip:tcp@{local}>;tag=t1\r\nTo: <sip:100@{0}>;tag={to_tag}\r\nCall-ID: tcp-call-1\r\nCSeq: 1 ACK\r\nContent-Length: 0\r\n\r\n",
        server.sip
    );
    let bye = format!(
        "BYE sip:100@{0};transport=tcp SIP/2.0\r\nVia: SIP/2.0/TCP 192.0.2.10:5060;branch=z9hG4bKtcp3\r\nFrom: <sip:tcp@{local}>;tag=t1\r\nTo: <sip:100@{0}>;tag={to_tag}\r\nCall-ID: tcp-call-1\r\nCSeq: 2 BYE\r\nContent-Length: 0\r\n\r\n",
        server.sip
    );
    tcp.write_all(ack.as_bytes()).unwrap();
    std::thread::sleep(S(200));
    tcp.write_all(bye.as_bytes()).unwrap();
    got.clear();
    let deadline = Instant::now() + S(3000);
    while !got.contains("CSeq: 2 BYE") && Instant::now() < deadline {
        let n = tcp.read(&mut buf).unwrap_or(0);
        got.push_str(&String::from_utf8_lossy(&buf[..n]));
    }
    assert!(
        got.contains("SIP/2.0 200") && got.contains("CSeq: 2 BYE"),
        "{got}"
    );
    server.stop();
    let cdrs = read_cdrs(&site.config.database);
    assert_eq!(cdrs.len(), 1);
    assert_eq!(
        (cdrs[0].sip_call_id.as_str(), cdrs[0].disposition),
        ("tcp-call-1", Disposition::CallerHangup)
    );
}

#[test]
fn hold_and_unhold_by_reinvite() {
    let site = site(TEST_FLOW);
    let mut server = start(site.config.clone());
    let mut phone = Phone::new(server.sip);
    phone.call("100");
    phone.talk(S(300));
    let call = phone.call.unwrap();
    let hold = phone
        .offer(&[Codec::Pcmu], true)
        .replace("a=sendrecv", "a=sendonly");
    phone.ua.send_in_dialog(
        Instant::now(),
        call,
        hotline::sip::message::Method::Invite,
        Some(("application/sdp".into(), hold.into_bytes())),
    );
    let held = phone
        .wait_for(S(2000), |e| matches!(e, UaEvent::Reinvited { .. }))
        .expect("hold answered");
    let UaEvent::Reinvited {
        code: 200,
        answer: Some(answer),
        ..
    } = held
    else {
        panic!("{held:?}")
    };
    assert!(String::from_utf8_lossy(&answer).contains("a=recvonly"));
    phone.talk(S(200));
    let before = phone.received.len();
    phone.talk(S(600));
    assert!(phone.received.len() <= before + 1, "no audio while held");
    let unhold = phone.offer(&[Codec::Pcmu], true);
    phone.ua.send_in_dialog(
        Instant::now(),
        call,
        hotline::sip::message::Method::Invite,
        Some(("application/sdp".into(), unhold.into_bytes())),
    );
    phone
        .wait_for(S(2000), |e| {
            matches!(e, UaEvent::Reinvited { code: 200, .. })
        })
        .expect("unhold answered");
    let before = phone.received.len();
    phone.talk(S(600));
    assert!(
        phone.received.len() >= before + 20,
        "audio again after unhold"
    );
    let marker = phone.received[before..].iter().any(|(h, _)| h.marker);
    assert!(marker, "a new talkspurt after the hold");
    phone.hangup();
    phone.pump(S(100));
    server.stop();
    assert_eq!(read_cdrs(&site.config.database).len(), 1);
}

#[test]
fn one_cdr_per_call_while_the_database_is_locked() {
    let site = site(TEST_FLOW);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    // Create the schema, then hold an exclusive lock from a second connection.
    let path = site.dir.path().join("cdr.db");
    let mut lock = rt.block_on(async {
        use sqlx::Connection;
        let store = hotline::cdr::store::CdrStore::connect(&site.config.database)
            .await
            .unwrap();
        store.migrate().await.unwrap();
        store.close().await;
        let mut c = sqlx::SqliteConnection::connect(&format!("sqlite://{}", path.display()))
            .await
            .unwrap();
        sqlx::query("BEGIN EXCLUSIVE")
            .execute(&mut c)
            .await
            .unwrap();
        c
    });
    let mut server = start(site.config.clone());
    // One call of each disposition while nothing can be written.
    let mut a = Phone::new(server.sip);
    a.call("100");
    a.talk(S(900));
    a.press("9", S(600));
    a.wait_for(S(3000), |e| matches!(e, UaEvent::RemoteBye { .. }))
        .expect("completed in IVR");
    let mut b = Phone::new(server.sip);
    b.call("100");
    b.hangup();
    b.pump(S(100));
    let mut c = Phone::new(server.sip);
    c.dial("555", Some(c.offer(&[Codec::Pcmu], true)));
    c.wait_for(S(2000), |e| matches!(e, UaEvent::Failed { .. }))
        .expect("refused");
    std::thread::sleep(S(1500));
    rt.block_on(async {
        sqlx::query("ROLLBACK").execute(&mut lock).await.unwrap();
    });
    drop(lock);
    server.stop();
    let cdrs = read_cdrs(&site.config.database);
    let mut dispositions: Vec<Disposition> = cdrs.iter().map(|c| c.disposition).collect();
    dispositions.sort_by_key(|d| d.as_str());
    assert_eq!(
        dispositions,
        [
            Disposition::CallerHangup,
            Disposition::Completed,
            Disposition::Failed
        ]
    );
}

#[test]
fn a_stray_rtp_packet_before_the_caller_does_not_take_over_the_media() {
    let site = site(TEST_FLOW);
    let mut server = start(site.config.clone());
    let mut phone = Phone::new(server.sip);
    phone.call("100");
    let media_port = phone.remote_rtp.unwrap();
    // Another loopback address than the one in the phone's SDP: a sender on the announced IP
    // is trusted at once by design.
    let intruder = UdpSocket::bind("127.0.0.2:0").unwrap();
    intruder.set_nonblocking(true).unwrap();
    for seq in 0..2u16 {
        let mut pkt = [0xFFu8; 172];
        hotline::media::rtp::write_header(
            &hotline::media::rtp::RtpHeader {
                marker: seq == 0,
                payload_type: 0,
                sequence: seq,
                timestamp: u32::from(seq) * 160,
                ssrc: 0x0bad,
            },
            (&mut pkt[..12]).try_into().unwrap(),
        );
        intruder.send_to(&pkt, media_port).unwrap();
    }
    std::thread::sleep(S(60));
    phone.talk(S(1200));
    let heard = phone.heard(&encoded_prompts(&site, phone.codec));
    assert!(heard.iter().any(|p| p == "menu"), "heard {heard:?}");
    phone.press("9", S(700));
    phone
        .wait_for(S(3000), |e| matches!(e, UaEvent::RemoteBye { .. }))
        .expect("the caller's key still works");
    let mut buf = [0u8; 2048];
    assert!(
        intruder.recv_from(&mut buf).is_err(),
        "no audio went to the intruder"
    );
    server.stop();
    let cdrs = read_cdrs(&site.config.database);
    assert_eq!(cdrs.len(), 1);
    assert_eq!(cdrs[0].digits, "9");
}

/// Issue 9, reflection: an INVITE whose SDP names a third party's address, never ACKed, must
/// not make hotline send that party RTP; and a stream that never hears its caller ends the
/// call at `media.first_packet_timeout` with a CDR.
#[test]
fn an_invite_naming_a_third_party_sends_it_no_rtp() {
    let mut site = site(TEST_FLOW);
    site.config.first_packet_timeout = S(800);
    let mut server = start(site.config.clone());
    let victim = UdpSocket::bind("127.0.0.3:0").unwrap();
    victim.set_read_timeout(Some(S(50))).unwrap();
    let port = victim.local_addr().unwrap().port();
    let attacker = UdpSocket::bind("127.0.0.1:0").unwrap();
    attacker.set_read_timeout(Some(S(200))).unwrap();
    let me = attacker.local_addr().unwrap();
    let sdp = format!(
        "v=0\r\no=- 1 1 IN IP4 127.0.0.3\r\ns=-\r\nc=IN IP4 127.0.0.3\r\nt=0 0\r\n\
         m=audio {port} RTP/AVP 0 101\r\na=rtpmap:0 PCMU/8000\r\n\
         a=rtpmap:101 telephone-event/8000\r\n"
    );
    let invite = format!(
        "INVITE sip:100@{sip} SIP/2.0\r\nVia: SIP/2.0/UDP {me};branch=z9hG4bKrefl1;rport\r\n\
         Max-Forwards: 70\r\nFrom: <sip:x@{me}>;tag=refl\r\nTo: <sip:100@{sip}>\r\n\
         Call-ID: reflection-1\r\nCSeq: 1 INVITE\r\nContact: <sip:x@{me}>\r\n\
         Content-Type: application/sdp\r\nContent-Length: {len}\r\n\r\n{sdp}",
        sip = server.sip,
        len = sdp.len()
    );
    attacker.send_to(invite.as_bytes(), server.sip).unwrap();
    let mut buf = [0u8; 4096];
    let deadline = Instant::now() + S(2000);
    let mut ok = None;
    while Instant::now() < deadline && ok.is_none() {
        if let Ok(n) = attacker.recv(&mut buf)
            && buf[..n].starts_with(b"SIP/2.0 200 ")
        {
            ok = Some(String::from_utf8_lossy(&buf[..n]).into_owned());
        }
    }
    let ok = ok.expect("hotline answers (and the ACK does not come)");
    // Two RTP timeouts' worth (and 75 packets' at 20 ms) of listening at the victim.
    let mut received = 0;
    let end = Instant::now() + S(1500);
    while Instant::now() < end {
        if victim.recv(&mut buf).is_ok() {
            received += 1;
        }
    }
    assert_eq!(
        received, 0,
        "no RTP towards the address an unacknowledged INVITE named"
    );
    // The call is over (CDR below); a late ACK gets the BYE hotline kept for it, which we
    // answer, so that shutdown need not wait for the SIP timers.
    let to = sip_header(&ok, "To");
    let ack = format!(
        "ACK sip:100@{sip} SIP/2.0\r\nVia: SIP/2.0/UDP {me};branch=z9hG4bKrefl2\r\n\
         Max-Forwards: 70\r\nFrom: <sip:x@{me}>;tag=refl\r\nTo: {to}\r\n\
         Call-ID: reflection-1\r\nCSeq: 1 ACK\r\nContent-Length: 0\r\n\r\n",
        sip = server.sip
    );
    attacker.send_to(ack.as_bytes(), server.sip).unwrap();
    let deadline = Instant::now() + S(2000);
    while Instant::now() < deadline {
        let Ok(n) = attacker.recv(&mut buf) else {
            continue;
        };
        let bye = String::from_utf8_lossy(&buf[..n]).into_owned();
        if bye.starts_with("BYE ") {
            let mut reply = String::from("SIP/2.0 200 OK\r\n");
            for name in ["Via", "From", "To", "Call-ID", "CSeq"] {
                reply += &format!("{name}: {}\r\n", sip_header(&bye, name));
            }
            reply += "Content-Length: 0\r\n\r\n";
            attacker.send_to(reply.as_bytes(), server.sip).unwrap();
            break;
        }
    }
    server.stop();
    let cdrs = read_cdrs(&site.config.database);
    assert_eq!(cdrs.len(), 1, "{cdrs:?}");
    assert_eq!(
        (cdrs[0].disposition, cdrs[0].end_reason.as_str()),
        (Disposition::Failed, "rtp_timeout")
    );
}

/// The value of the first header `name` in a SIP message.
fn sip_header(msg: &str, name: &str) -> String {
    msg.split("\r\n")
        .filter_map(|line| line.split_once(':'))
        .find(|(n, _)| n.trim().eq_ignore_ascii_case(name))
        .map(|(_, v)| v.trim().to_string())
        .unwrap_or_default()
}
