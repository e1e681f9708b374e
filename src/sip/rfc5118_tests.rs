//! RFC 5118's IPv6 torture messages through the path a datagram takes, one test per message,
//! with what the RFC says of each. The fixtures in tests/rfc5118/ are typed in from the RFC's
//! message listings (§4.1-4.10, as reproduced in public SIP test suites), stored with LF
//! line ends and sent with CRLF; each Content-Length is that of its body as sent (three of
//! the RFC's own are off by the line ends).
//!
//! Beyond being parsed, an IPv6 reference must come back out as it went in: responses echo
//! Via, From and To, and a bracketed address that rsip cannot hold is carried through it in
//! an alias (see `message::alias_v6`), so every test also reads what was sent.

use super::message::{self, MessageExt, Parsed};
use super::torture_tests::{answered, call, expand, header};
use crate::sdp::SessionDescription;

macro_rules! fixture {
    ($name:literal) => {
        include_bytes!(concat!("../../tests/rfc5118/", $name, ".sip"))
    };
}

fn vias(response: &str) -> Vec<&str> {
    response
        .lines()
        .filter_map(|l| l.strip_prefix("Via: "))
        .collect()
}

fn request_host_ip(data: &[u8]) -> Option<std::net::IpAddr> {
    match message::parse(&expand(data)).ok()? {
        Parsed::Request(r) => message::host_ip(&r.uri.host_with_port.host),
        Parsed::Response(_) => None,
    }
}

/// The address of the offer's audio stream.
fn audio_address(data: &[u8]) -> Option<std::net::IpAddr> {
    let Some(Parsed::Request(r)) = message::parse(&expand(data)).ok() else {
        panic!("not a request");
    };
    let sdp = SessionDescription::parse_bytes(&r.body).expect("the SDP parses");
    let audio = sdp.media.iter().find(|m| m.is_audio())?;
    sdp.connection_of(audio)
}

/// §4.1: IPv6 references in the Request-URI, Via and Contact; a REGISTER to challenge.
#[test]
fn ipv6_good_is_parsed_and_its_via_echoed_as_sent() {
    let o = answered(fixture!("ipv6-good"), 401);
    let via = vias(o.final_response());
    assert_eq!(via.len(), 1);
    assert!(
        via[0].starts_with("SIP/2.0/UDP [2001:db8::9:1];branch=z9hG4bKas3-111"),
        "{via:?}"
    );
    assert!(via[0].contains("received=192.0.2.1"), "{via:?}");
    assert_eq!(
        request_host_ip(fixture!("ipv6-good")),
        Some("2001:db8::10".parse().unwrap())
    );
}

/// §4.2: the Request-URI's address without its brackets: 400.
#[test]
fn ipv6_bad_unbracketed_request_uri_is_400() {
    answered(fixture!("ipv6-bad"), 400);
}

/// §4.3: well formed; the "port" inside the brackets is the address's last group.
#[test]
fn port_ambiguous_is_parsed_and_the_port_is_part_of_the_address() {
    answered(fixture!("port-ambiguous"), 401);
    let Some(Parsed::Request(r)) = message::parse(&expand(fixture!("port-ambiguous"))).ok() else {
        panic!()
    };
    assert_eq!(
        message::host_ip(&r.uri.host_with_port.host),
        Some("2001:db8::10:5070".parse().unwrap())
    );
    assert!(r.uri.host_with_port.port.is_none());
}

/// §4.4: the port after the brackets.
#[test]
fn port_unambiguous_is_parsed_with_its_port() {
    answered(fixture!("port-unambiguous"), 401);
    let Some(Parsed::Request(r)) = message::parse(&expand(fixture!("port-unambiguous"))).ok()
    else {
        panic!()
    };
    assert_eq!(
        message::host_ip(&r.uri.host_with_port.host),
        Some("2001:db8::10".parse().unwrap())
    );
    assert_eq!(r.uri.host_with_port.port.map(|p| *p.value()), Some(5070));
}

/// §4.5: `received` with brackets (not RFC 3261 grammar, to be tolerated) and without.
#[test]
fn via_received_with_or_without_brackets_is_tolerated() {
    // A BYE for a dialog we do not have.
    let o = answered(fixture!("via-received-param-with-delim"), 481);
    let via = vias(o.final_response());
    assert!(via[0].starts_with("SIP/2.0/UDP [2001:db8::9:1]"), "{via:?}");
    answered(fixture!("via-received-param-no-delim"), 200);
    for f in [
        fixture!("via-received-param-with-delim").as_slice(),
        fixture!("via-received-param-no-delim"),
    ] {
        let Some(Parsed::Request(r)) = message::parse(&expand(f)).ok() else {
            panic!()
        };
        assert!(
            r.branch().is_some_and(|b| b.starts_with("z9hG4bKas3")),
            "the parameters after `received` are read too"
        );
        assert_eq!(
            message::response_destination(&r, "[2001:db8::9:1]:5060".parse().unwrap()),
            "[2001:db8::9:255]:5060".parse().unwrap(),
            "responses go where `received` says"
        );
    }
}

/// §4.6: IPv6 in the SDP (no brackets there): a call, and the offer's address read.
#[test]
fn ipv6_in_sdp_sets_up_a_call_with_an_ip6_offer() {
    call(fixture!("ipv6-in-sdp"));
    assert_eq!(
        audio_address(fixture!("ipv6-in-sdp")),
        Some("2001:db8::20".parse().unwrap())
    );
}

/// §4.7: IPv4 and IPv6 Vias mixed; all three echoed as sent, ports and parameters kept.
#[test]
fn mult_ip_in_header_echoes_every_via() {
    let o = answered(fixture!("mult-ip-in-header"), 481);
    let via = vias(o.final_response());
    assert_eq!(via.len(), 3, "{via:?}");
    assert!(via[0].starts_with("SIP/2.0/UDP [2001:db8::9:1]:6050;branch=z9hG4bKas3-111"));
    assert!(via[1].starts_with("SIP/2.0/UDP 192.0.2.1;branch=z9hG4bKjhja8781hjuaij65144"));
    assert_eq!(
        via[2],
        "SIP/2.0/TCP [2001:db8::9:255];branch=z9hG4bK451jj;received=192.0.2.200"
    );
    assert_eq!(
        header(o.final_response(), "To"),
        Some("sip:user@example.net;tag=9817--94")
    );
}

/// §4.8: one IPv4 and one IPv6 media line: a call; the audio stream's address is its own.
#[test]
fn mult_ip_in_sdp_sets_up_a_call() {
    call(fixture!("mult-ip-in-sdp"));
    assert_eq!(
        audio_address(fixture!("mult-ip-in-sdp")),
        Some("192.0.2.1".parse().unwrap())
    );
}

/// §4.9: IPv4-mapped IPv6 addresses in Via, Contact and SDP.
#[test]
fn ipv4_mapped_ipv6_sets_up_a_call_and_keeps_the_port() {
    let o = call(fixture!("ipv4-mapped-ipv6"));
    let trying = &o.sent[0];
    let via = vias(trying);
    assert!(
        via[0].starts_with("SIP/2.0/UDP [::ffff:192.0.2.10]:19823;branch=z9hG4bKbh19"),
        "{via:?}"
    );
    assert!(via[1].starts_with("SIP/2.0/UDP [::ffff:192.0.2.2];branch=z9hG4bKas3-111"));
    let Some(Parsed::Request(r)) = message::parse(&expand(fixture!("ipv4-mapped-ipv6"))).ok()
    else {
        panic!()
    };
    let contact = r.contact_uri().expect("a Contact");
    assert_eq!(
        message::host_ip(&contact.host_with_port.host),
        Some("::ffff:192.0.2.2".parse().unwrap())
    );
    assert_eq!(
        audio_address(fixture!("ipv4-mapped-ipv6")),
        Some("::ffff:192.0.2.2".parse().unwrap())
    );
}

/// §4.10: the extra colon RFC 3261's ABNF lets through must be tolerated, and the reference
/// goes back out exactly as it came.
#[test]
fn ipv6_references_with_two_or_three_colons_are_both_accepted() {
    for (f, written) in [
        (
            fixture!("ipv6-bug-abnf-3-colons").as_slice(),
            "2001:db8:::192.0.2.1",
        ),
        (
            fixture!("ipv6-correct-abnf-2-colons"),
            "2001:db8::192.0.2.1",
        ),
    ] {
        let o = answered(f, 200);
        assert_eq!(
            header(o.final_response(), "To").map(|t| t.split(';').next().unwrap()),
            Some(format!("sip:user@[{written}]").as_str())
        );
        assert_eq!(
            request_host_ip(f),
            Some("2001:db8::c000:201".parse().unwrap())
        );
    }
}

/// The alias never leaks: what rsip cannot hold round-trips byte for byte, quoted strings
/// (a digest's signed `uri`) are left alone, and a request built from bracketed parts goes
/// out bracketed.
#[test]
fn ipv6_references_round_trip_through_rsip() {
    let header = "Authorization: Digest username=\"a\", uri=\"sip:[2001:db8::1]\", x=[::1]";
    let aliased = message::alias_v6(header);
    assert!(aliased.contains("uri=\"sip:[2001:db8::1]\""), "{aliased}");
    assert!(!aliased.contains("[::1]"), "{aliased}");
    assert_eq!(message::unalias_v6(&aliased), header);
    assert_eq!(
        message::alias_v6("sip:[not-an-address]"),
        "sip:[not-an-address]"
    );
    let via = "Via: SIP/2.0/UDP [2001:db8::9:1];received=2001:db8::9:255;branch=z9hG4bKas3";
    assert_eq!(message::unalias_v6(&message::alias_v6(via)), via);
    // Text beside a reference stays beside it; a stray quote ends with its header line.
    let head = "X-Note: abc[::1]\r\nSubject: 12\" pizza\r\nContact: <sip:a@[2001:db8::7]>";
    let aliased = message::alias_v6(head);
    assert!(!aliased.contains("[2001:db8::7]"), "{aliased}");
    assert_eq!(message::unalias_v6(&aliased), head);
    assert_eq!(
        message::unalias_v6("a.ipv6.invalid b v6xzz.ipv6.invalid"),
        "a.ipv6.invalid b v6xzz.ipv6.invalid"
    );
    // A head of brackets (each one looked at only as far as an address can reach) holds no
    // address.
    let brackets = format!("X: {}]", "[".repeat(60_000));
    assert_eq!(message::alias_v6(&brackets), brackets);
    let req = message::build_request(&message::RequestSpec {
        method: rsip::Method::Options,
        uri: "sip:100@[2001:db8::10]:5070".into(),
        transport: "UDP",
        via_host: "[2001:db8::20]:5060".into(),
        branch: "z9hG4bKx".into(),
        from: "<sip:hotline@[2001:db8::20]>;tag=1".into(),
        to: "<sip:100@[2001:db8::10]>".into(),
        call_id: "c".into(),
        cseq: 1,
        routes: vec!["<sip:[2001:db8::30];lr>".into()],
        contact: Some("<sip:hotline@[2001:db8::20]:5060>".into()),
        body: None,
        extra: Vec::new(),
    })
    .unwrap();
    let wire = String::from_utf8(message::to_bytes(req)).unwrap();
    assert!(
        wire.starts_with("OPTIONS sip:100@[2001:db8::10]:5070 SIP/2.0\r\n"),
        "{wire}"
    );
    for want in [
        "Via: SIP/2.0/UDP [2001:db8::20]:5060;branch=z9hG4bKx;rport",
        "From: <sip:hotline@[2001:db8::20]>;tag=1",
        "To: <sip:100@[2001:db8::10]>",
        "Route: <sip:[2001:db8::30];lr>",
        "Contact: <sip:hotline@[2001:db8::20]:5060>",
    ] {
        assert!(wire.contains(want), "{want} in {wire}");
    }
    assert!(!wire.contains("invalid"), "{wire}");
}
