use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use proptest::prelude::*;

use super::*;
use crate::media::Codec;
use crate::media::srtp::{MasterKey, Suite};

fn crlf(sdp: &str) -> String {
    sdp.replace('\n', "\r\n")
}

fn local() -> LocalMedia {
    LocalMedia::new(IpAddr::V4(Ipv4Addr::new(198, 51, 100, 7)), 40000, 777)
}

fn parse(sdp: &str) -> SessionDescription {
    SessionDescription::parse(sdp).expect("fixture parses")
}

fn answer_for(sdp: &str) -> (Negotiated, SessionDescription, String) {
    let offer = parse(sdp);
    let neg = negotiate(&offer, &local()).expect("negotiates");
    let text = build_answer(&offer, &local(), &neg);
    (neg, parse(&text), text)
}

fn sock(ip: &str, port: u16) -> Option<SocketAddr> {
    Some(SocketAddr::new(ip.parse().unwrap(), port))
}

const LINPHONE: &str = "v=0
o=alice 2364 1234 IN IP4 203.0.113.20
s=Talk
c=IN IP4 203.0.113.20
t=0 0
a=rtcp-xr:rcvr-rtt=all:10000 stat-summary=loss,dup,jitt,TTL voip-metrics
m=audio 7078 RTP/AVP 96 0 8 101 97
a=rtpmap:96 opus/48000/2
a=fmtp:96 useinbandfec=1
a=rtpmap:101 telephone-event/48000
a=rtpmap:97 telephone-event/8000
a=rtcp-fb:* trr-int 1000
a=rtcp-fb:* ccm tmmbr
";

const BARESIP: &str = "v=0
o=- 1713862520 1713862521 IN IP4 192.0.2.55
s=-
c=IN IP4 192.0.2.55
t=0 0
m=audio 10104 RTP/AVP 96 8 0 101
b=AS:128
a=rtpmap:96 opus/48000/2
a=fmtp:96 stereo=1;sprop-stereo=1
a=rtpmap:8 PCMA/8000
a=rtpmap:0 PCMU/8000
a=rtpmap:101 telephone-event/8000
a=fmtp:101 0-15
a=sendrecv
a=label:1
a=ssrc:1594290375 cname:f5dbe4b1-5c1b-4ad2-b6e4-4c12ab7e3e0a
a=rtcp-mux
";

const SIPP: &str = "v=0
o=user1 53655765 2353687637 IN IP4 127.0.0.1
s=-
c=IN IP4 127.0.0.1
t=0 0
m=audio 6000 RTP/AVP 0
";

const POLYCOM: &str = "v=0
o=- 1394723001 1394723001 IN IP4 203.0.113.40
s=Polycom IP Phone
c=IN IP4 203.0.113.40
t=0 0
a=sendrecv
m=audio 2222 RTP/AVP 9 0 8 18 127
a=rtpmap:9 G722/8000
a=rtpmap:0 PCMU/8000
a=rtpmap:8 PCMA/8000
a=rtpmap:18 G729/8000
a=fmtp:18 annexb=no
a=rtpmap:127 telephone-event/8000
a=ptime:30
";

const IPV6: &str = "v=0
o=bob 2890844526 2890844527 IN IP6 2001:db8::10
s=-
c=IN IP6 2001:db8::10
t=0 0
m=audio 49170 RTP/AVP 8 0 101
a=rtpmap:101 telephone-event/8000
";

const VIDEO_FIRST: &str = "v=0
o=- 42 42 IN IP4 192.0.2.9
s=-
c=IN IP4 192.0.2.9
t=0 0
m=video 51372 RTP/AVP 99 31
a=rtpmap:99 H264/90000
a=fmtp:99 profile-level-id=42e01f
m=audio 49170 RTP/AVP 0 8 97
c=IN IP4 192.0.2.10
a=rtpmap:97 telephone-event/8000
m=application 5000 UDP/BFCP *
";

fn with_audio_attrs(extra_session: &str, conn: &str, extra_media: &str) -> String {
    format!(
        "v=0\no=- 1 1 IN IP4 192.0.2.1\ns=-\nc=IN IP4 {conn}\nt=0 0\n{extra_session}\
         m=audio 5004 RTP/AVP 0\n{extra_media}"
    )
}

#[test]
fn linphone_offer_takes_pcmu_and_the_8k_event() {
    let (neg, answer, _) = answer_for(&crlf(LINPHONE));
    assert_eq!(neg.codec, Codec::Pcmu);
    assert_eq!((neg.audio_pt, neg.event_pt), (0, Some(97)));
    assert_eq!(neg.remote, sock("203.0.113.20", 7078));
    assert_eq!(
        (neg.ptime, neg.direction, neg.remote_rtcp_mux),
        (20, Direction::SendRecv, false)
    );
    let m = &answer.media[0];
    assert_eq!(m.formats, vec![Format::Pt(0), Format::Pt(97)]);
    assert_eq!(m.fmtp(97), Some("0-16"));
    assert!(!m.rtcp_mux);
}

#[test]
fn baresip_offer_keeps_offerer_order_and_rtcp_mux() {
    let (neg, answer, text) = answer_for(BARESIP);
    assert_eq!(
        (neg.codec, neg.audio_pt, neg.event_pt),
        (Codec::Pcma, 8, Some(101))
    );
    assert!(neg.remote_rtcp_mux);
    assert!(answer.media[0].rtcp_mux);
    assert!(text.contains("a=rtpmap:8 PCMA/8000\r\na=rtpmap:101 telephone-event/8000\r\n"));
}

#[test]
fn sipp_offer_without_rtpmap_gives_exact_answer() {
    let (neg, _, text) = answer_for(SIPP);
    assert_eq!(
        (neg.codec, neg.audio_pt, neg.event_pt),
        (Codec::Pcmu, 0, None)
    );
    assert_eq!(neg.remote, sock("127.0.0.1", 6000));
    assert_eq!(
        text,
        "v=0\r\no=hotline 777 777 IN IP4 198.51.100.7\r\ns=hotline\r\nc=IN IP4 198.51.100.7\r\n\
         t=0 0\r\nm=audio 40000 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\na=ptime:20\r\na=sendrecv\r\n"
    );
}

#[test]
fn polycom_offer_skips_g722_and_reports_ptime() {
    let (neg, _, _) = answer_for(&crlf(POLYCOM));
    assert_eq!(
        (neg.codec, neg.event_pt, neg.ptime),
        (Codec::Pcmu, Some(127), 30)
    );
    let sd = parse(POLYCOM);
    assert_eq!(sd.direction, Some(Direction::SendRecv));
    assert_eq!(sd.media[0].fmtp(18), Some("annexb=no"));
    let origin = sd.origin.unwrap();
    assert_eq!(
        (origin.username.as_str(), origin.session_version),
        ("-", 1394723001)
    );
}

#[test]
fn local_codec_list_filters_offer() {
    let mut only_pcma = local();
    only_pcma.codecs = vec![Codec::Pcma];
    let neg = negotiate(&parse(LINPHONE), &only_pcma).unwrap();
    assert_eq!((neg.codec, neg.audio_pt), (Codec::Pcma, 8));
}

#[test]
fn renumbered_and_remapped_payload_types() {
    let sdp = with_audio_attrs("", "192.0.2.1", "a=rtpmap:0 G729/8000\n")
        .replace("RTP/AVP 0", "RTP/AVP 0 98 99")
        + "a=rtpmap:98 PCMA/16000\na=rtpmap:99 pcma/8000\n";
    let neg = negotiate(&parse(&sdp), &local()).unwrap();
    assert_eq!((neg.codec, neg.audio_pt), (Codec::Pcma, 99));
}

#[test]
fn ipv6_offer() {
    let (neg, _, _) = answer_for(IPV6);
    assert_eq!((neg.codec, neg.event_pt), (Codec::Pcma, Some(101)));
    assert_eq!(neg.remote, sock("2001:db8::10", 49170));
    let mut v6 = local();
    v6.addr = IpAddr::V6(Ipv6Addr::LOCALHOST);
    let text = build_answer(&parse(IPV6), &v6, &neg);
    assert!(text.contains("o=hotline 777 777 IN IP6 ::1\r\n"));
    assert!(text.contains("c=IN IP6 ::1\r\n"));
}

#[test]
fn multi_stream_answer_keeps_count_order_and_rejects_others() {
    let (neg, answer, text) = answer_for(VIDEO_FIRST);
    assert_eq!(neg.media_index, 1);
    assert_eq!(neg.remote, sock("192.0.2.10", 49170));
    let kinds: Vec<_> = answer
        .media
        .iter()
        .map(|m| (m.media.as_str(), m.port))
        .collect();
    assert_eq!(kinds, [("video", 0), ("audio", 40000), ("application", 0)]);
    assert!(text.contains("m=video 0 RTP/AVP 99 31\r\n"));
    assert!(text.contains("m=application 0 UDP/BFCP *\r\n"));
    assert_eq!(answer.media[2].formats, vec![Format::Other("*".into())]);
}

#[test]
fn later_audio_section_used_when_first_has_no_common_codec() {
    let sdp =
        with_audio_attrs("", "192.0.2.1", "a=rtpmap:0 G729/8000\n") + "m=audio 5006 RTP/AVP 8\n";
    let neg = negotiate(&parse(&sdp), &local()).unwrap();
    assert_eq!((neg.media_index, neg.codec), (1, Codec::Pcma));
}

#[test]
fn negotiation_failures() {
    let g729 =
        with_audio_attrs("", "192.0.2.1", "a=rtpmap:18 G729/8000\n").replace("AVP 0", "AVP 18");
    assert_eq!(
        negotiate(&parse(&g729), &local()),
        Err(NegotiationError::NoCommonCodec)
    );

    let savp = with_audio_attrs(
        "",
        "192.0.2.1",
        "a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:PS1uQCVeeCFCanVmcjkpPywjNWhcYD0mXXtxaVBR\n",
    )
    .replace("RTP/AVP", "RTP/SAVP");
    let sd = parse(&savp);
    assert!(!sd.media[0].crypto.is_empty() && sd.media[0].is_secure());
    assert_eq!(negotiate(&sd, &local()), Err(NegotiationError::SecureOnly));

    let webrtc = with_audio_attrs("a=fingerprint:sha-256 AB:CD\n", "192.0.2.1", "")
        .replace("RTP/AVP", "UDP/TLS/RTP/SAVPF");
    let sd = parse(&webrtc);
    assert!(sd.media[0].fingerprint);
    assert_eq!(negotiate(&sd, &local()), Err(NegotiationError::SecureOnly));

    let tcp = with_audio_attrs("", "192.0.2.1", "").replace("RTP/AVP", "TCP/RTP/AVP");
    assert_eq!(
        negotiate(&parse(&tcp), &local()),
        Err(NegotiationError::UnsupportedProtocol)
    );

    let disabled = with_audio_attrs("", "192.0.2.1", "").replace("5004", "0");
    assert_eq!(
        negotiate(&parse(&disabled), &local()),
        Err(NegotiationError::NoAudio)
    );
    let video_only = VIDEO_FIRST.replace("m=audio", "m=text");
    assert_eq!(
        negotiate(&parse(&video_only), &local()),
        Err(NegotiationError::NoAudio)
    );
}

#[test]
fn opportunistic_srtp_on_avp_is_answered_plain() {
    let sdp = with_audio_attrs(
        "",
        "192.0.2.1",
        "a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:x\n",
    );
    let (_, answer, text) = answer_for(&sdp);
    assert!(answer.media[0].crypto.is_empty() && !answer.media[0].any_crypto);
    assert!(!text.contains("crypto"));
}

#[test]
fn hold_and_direction_offers() {
    let cases = [
        ("", "192.0.2.1", "a=sendonly\n", Direction::RecvOnly, true),
        ("", "192.0.2.1", "a=recvonly\n", Direction::SendOnly, true),
        ("", "192.0.2.1", "a=inactive\n", Direction::Inactive, true),
        ("a=inactive\n", "192.0.2.1", "", Direction::Inactive, true),
        (
            "a=sendonly\n",
            "192.0.2.1",
            "a=sendrecv\n",
            Direction::SendRecv,
            true,
        ),
        ("", "0.0.0.0", "", Direction::RecvOnly, false),
        ("", "0.0.0.0", "a=recvonly\n", Direction::Inactive, false),
    ];
    for (session, conn, media, ours, has_remote) in cases {
        let sdp = with_audio_attrs(session, conn, media);
        let (neg, answer, _) = answer_for(&sdp);
        assert_eq!(neg.direction, ours, "{sdp}");
        assert_eq!(neg.remote.is_some(), has_remote, "{sdp}");
        assert_eq!(answer.media[0].direction, Some(ours));
    }
}

#[test]
fn direction_helpers() {
    use Direction::*;
    for d in [SendRecv, SendOnly, RecvOnly, Inactive] {
        assert_eq!(d.mirror().mirror(), d);
        assert_eq!(Direction::from_attr(d.as_attr()), Some(d));
        assert_eq!(d.sends(), d.mirror().receives());
    }
    assert!(SendRecv.sends() && SendRecv.receives() && !Inactive.sends() && !Inactive.receives());
}

#[test]
fn tolerates_whitespace_unknown_lines_and_bad_utf8() {
    let sdp = "\r\nv=0  \r\no=- 1 2 IN IP4 host.example.com\r\nx-junk\r\nz=0\r\n\
               c=IN IP4 192.0.2.1/127 \r\nm=audio  5004/2  RTP/AVP  0   8 \t\r\n\
               a=RTPMAP:8 PCMA/8000\r\na=rtpmap:bad\r\na=ptime:20.0\r\n\
               a=fmtp:0\r\na=weird:\r\nb=AS:64\r\n";
    let mut bytes = sdp.as_bytes().to_vec();
    let at = sdp.find("o=").unwrap();
    bytes.splice(at..at, [b's', b'=', 0xff, 0xfe, b'\n']);
    let sd = SessionDescription::parse_bytes(&bytes).unwrap();
    assert_eq!(sd.origin.unwrap().address, "host.example.com");
    let m = &sd.media[0];
    assert_eq!((m.port, m.formats.len(), m.ptime), (5004, 2, Some(20)));
    assert_eq!(m.rtpmaps.len(), 1);
    assert_eq!(m.fmtp(0), Some(""));
    assert_eq!(sd.connection, Some(IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1))));
    assert_eq!(
        "v=0\nm=audio 0 RTP/AVP 0"
            .parse::<SessionDescription>()
            .unwrap()
            .media
            .len(),
        1
    );
}

#[test]
fn parse_errors_carry_line_numbers() {
    use SdpError::*;
    let cases = [
        ("", Empty),
        ("\n \r\n", Empty),
        (
            "o=- 1 1 IN IP4 192.0.2.1\nv=0\n",
            MissingVersion { line: 1 },
        ),
        ("\nv=1\n", UnsupportedVersion { line: 2 }),
        ("v=0\no=- 1 x IN IP4 a\n", BadOrigin { line: 2 }),
        ("v=0\no=- 1 1 IN IP4\n", BadOrigin { line: 2 }),
        ("v=0\nc=IN IP4 pbx.example.com\n", BadConnection { line: 2 }),
        ("v=0\nc=ATM NSAP 47.0005\n", BadConnection { line: 2 }),
        (
            "v=0\nc=IN IP4 192.0.2.1\nm=audio 5004 RTP/AVP\n",
            BadMedia { line: 3 },
        ),
        (
            "v=0\nc=IN IP4 192.0.2.1\nm=audio 70000 RTP/AVP 0\n",
            BadMedia { line: 3 },
        ),
        (
            "v=0\nm=video 5 RTP/AVP 31\nc=IN IP4 192.0.2.1\nm=audio 5004 RTP/AVP 0\n",
            MissingConnection { line: 4 },
        ),
    ];
    for (sdp, expected) in cases {
        assert_eq!(
            SessionDescription::parse(sdp),
            Err(expected.clone()),
            "{sdp:?}"
        );
        assert!(expected.to_string().len() > 5);
    }
}

#[test]
fn offer_round_trips_through_our_own_answer() {
    let ours = local();
    let offer_text = build_offer(&ours, Direction::SendRecv);
    let offer = parse(&offer_text);
    assert_eq!(offer.media.len(), 1);
    assert_eq!(
        offer.media[0].formats,
        vec![Format::Pt(0), Format::Pt(8), Format::Pt(101)]
    );

    let mut peer = LocalMedia::new("2001:db8::5".parse().unwrap(), 30000, 9);
    peer.codecs = vec![Codec::Pcma];
    let neg = negotiate(&offer, &peer).unwrap();
    assert_eq!((neg.codec, neg.event_pt), (Codec::Pcma, Some(101)));
    assert_eq!(neg.remote, sock("198.51.100.7", 40000));

    let answer = parse(&build_answer(&offer, &peer, &neg));
    let back = accept_answer(&answer, &ours).unwrap();
    assert_eq!(
        (back.codec, back.audio_pt, back.event_pt),
        (Codec::Pcma, 8, Some(101))
    );
    assert_eq!(back.remote, sock("2001:db8::5", 30000));
    assert_eq!(back.direction, Direction::SendRecv);
}

#[test]
fn hold_offer_uses_sendonly_and_bad_event_pt_is_not_offered() {
    let mut ours = local();
    ours.telephone_event_pt = 8;
    ours.codecs = vec![Codec::Pcma, Codec::Pcma, Codec::Pcmu];
    let offer = parse(&build_offer(&ours, Direction::SendOnly));
    assert_eq!(offer.media[0].formats, vec![Format::Pt(8), Format::Pt(0)]);
    assert_eq!(offer.media[0].direction, Some(Direction::SendOnly));
    assert_eq!(offer.connection, Some(ours.addr));
}

#[test]
fn accept_answer_from_a_phone() {
    let answer = "v=0\no=- 5 5 IN IP4 203.0.113.3\ns=-\nc=IN IP4 203.0.113.3\nt=0 0\n\
                  m=audio 30000 RTP/AVP 8 101\na=rtpmap:101 telephone-event/8000\na=recvonly\n";
    let neg = accept_answer(&parse(answer), &local()).unwrap();
    assert_eq!(
        (neg.codec, neg.audio_pt, neg.event_pt),
        (Codec::Pcma, 8, Some(101))
    );
    assert_eq!((neg.direction, neg.media_index), (Direction::SendOnly, 0));

    let mut pcmu_only = local();
    pcmu_only.codecs = vec![Codec::Pcmu];
    assert_eq!(
        accept_answer(&parse(answer), &pcmu_only),
        Err(NegotiationError::NoCommonCodec)
    );
    let refused = answer.replace("30000", "0");
    assert_eq!(
        accept_answer(&parse(&refused), &local()),
        Err(NegotiationError::NoAudio)
    );
    let secure = answer.replace("RTP/AVP", "RTP/SAVP");
    assert_eq!(
        accept_answer(&parse(&secure), &local()),
        Err(NegotiationError::SecureOnly)
    );
    let mut no_events = local();
    no_events.telephone_event_pt = 200;
    assert_eq!(
        accept_answer(&parse(answer), &no_events).unwrap().event_pt,
        None
    );
}

const FIXTURES: [&str; 6] = [LINPHONE, BARESIP, SIPP, POLYCOM, IPV6, VIDEO_FIRST];

/// Whatever parses must survive negotiation, and our answer to it must parse back with the
/// same number of sections: a peer's junk must never turn into SDP we cannot read ourselves.
fn exercise(sd: &SessionDescription) {
    if let Ok(neg) = negotiate(sd, &local()) {
        let answer = SessionDescription::parse(&build_answer(sd, &local(), &neg)).unwrap();
        assert_eq!(answer.media.len(), sd.media.len());
    }
    let _ = accept_answer(sd, &local());
}

#[derive(Debug, Clone)]
enum Edit {
    Delete(usize),
    Insert(usize, u8),
    Replace(usize, u8),
    DuplicateLine(usize),
    Truncate(usize),
}

fn edit() -> impl Strategy<Value = Edit> {
    let byte = prop_oneof![
        any::<u8>(),
        prop::sample::select(b"\r\n =:/ 0123456789.amcov".to_vec())
    ];
    prop_oneof![
        any::<usize>().prop_map(Edit::Delete),
        (any::<usize>(), byte.clone()).prop_map(|(at, b)| Edit::Insert(at, b)),
        (any::<usize>(), byte).prop_map(|(at, b)| Edit::Replace(at, b)),
        any::<usize>().prop_map(Edit::DuplicateLine),
        any::<usize>().prop_map(Edit::Truncate),
    ]
}

fn apply(bytes: &mut Vec<u8>, edit: &Edit) {
    let len = bytes.len().max(1);
    match *edit {
        Edit::Delete(at) if !bytes.is_empty() => {
            bytes.remove(at % bytes.len());
        }
        Edit::Insert(at, b) => bytes.insert(at % (bytes.len() + 1), b),
        Edit::Replace(at, b) if !bytes.is_empty() => bytes[at % len] = b,
        Edit::DuplicateLine(n) => {
            let text = String::from_utf8_lossy(bytes).into_owned();
            let lines: Vec<&str> = text.split('\n').collect();
            let pick = lines[n % lines.len()].to_string();
            *bytes = format!("{text}\n{pick}").into_bytes();
        }
        Edit::Truncate(at) => bytes.truncate(at % len),
        _ => {}
    }
}

proptest! {
    #[test]
    fn parse_never_panics_on_text(text in "\\PC*") {
        if let Ok(sd) = SessionDescription::parse(&text) { exercise(&sd); }
    }

    #[test]
    fn parse_never_panics_on_bytes(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        if let Ok(sd) = SessionDescription::parse_bytes(&bytes) { exercise(&sd); }
    }

    #[test]
    fn parse_never_panics_on_sdp_shaped_lines(
        lines in prop::collection::vec(("[vocmat]", "=", "[ -~]{0,40}"), 0..24)
    ) {
        let text: String = lines.iter().map(|(k, e, v)| format!("{k}{e}{v}\r\n")).collect();
        if let Ok(sd) = SessionDescription::parse(&format!("v=0\r\n{text}")) { exercise(&sd); }
    }

    #[test]
    fn parse_never_panics_on_mutated_sdp(
        which in 0..FIXTURES.len(),
        crlf_endings in any::<bool>(),
        edits in prop::collection::vec(edit(), 1..12),
    ) {
        let base = if crlf_endings { crlf(FIXTURES[which]) } else { FIXTURES[which].to_string() };
        let mut bytes = base.into_bytes();
        for e in &edits { apply(&mut bytes, e); }
        if let Ok(sd) = SessionDescription::parse_bytes(&bytes) { exercise(&sd); }
    }

    #[test]
    fn any_local_media_round_trips(
        v6 in any::<bool>(), a in any::<u32>(), port in 1u16.., id in any::<u64>(),
        codecs in prop::collection::vec(prop::sample::select(vec![Codec::Pcmu, Codec::Pcma]), 1..4),
        event_pt in any::<u8>(), key in prop::option::of(any::<[u8; 30]>()),
    ) {
        // The low bit keeps the address from being unspecified, which would mean hold.
        let addr = if v6 {
            IpAddr::V6(Ipv6Addr::from(u128::from(a) << 64 | 1))
        } else {
            IpAddr::V4(Ipv4Addr::from(a | 1))
        };
        let ours = LocalMedia {
            addr, port, session_id: id, session_version: id, codecs, telephone_event_pt: event_pt,
            srtp: key.map(|k| SrtpPolicy::new(MasterKey(k), true)),
        };
        // The answerer has a key of its own.
        let theirs = LocalMedia {
            srtp: key.map(|k| SrtpPolicy::new(MasterKey(k.map(|b| !b)), true)),
            ..ours.clone()
        };
        let offer = SessionDescription::parse(&build_offer(&ours, Direction::SendRecv)).unwrap();
        let neg = negotiate(&offer, &theirs).unwrap();
        prop_assert_eq!(neg.codec, ours.codecs[0]);
        prop_assert_eq!(neg.remote, Some(SocketAddr::new(addr, port)));
        let answer = SessionDescription::parse(&build_answer(&offer, &theirs, &neg)).unwrap();
        let back = accept_answer(&answer, &ours).unwrap();
        prop_assert_eq!((back.codec, back.event_pt), (neg.codec, neg.event_pt));
        prop_assert_eq!(back.srtp.map(|s| s.keys.receive), key.map(|k| MasterKey(k.map(|b| !b))));
    }
}

const PEER_KEY: &str = "PS1uQCVeeCFCanVmcjkpPywjNWhcYD0mXXtxaVBR";

fn secure_local(required: bool) -> LocalMedia {
    LocalMedia {
        srtp: Some(SrtpPolicy::new(MasterKey([7; 30]), required)),
        ..local()
    }
}

#[test]
fn an_sdes_offer_is_answered_with_our_key_under_its_tag() {
    let offer = with_audio_attrs(
        "",
        "192.0.2.1",
        &format!(
            "a=crypto:3 FOO_SUITE inline:{PEER_KEY}\n\
             a=crypto:4 AES_CM_128_HMAC_SHA1_80 inline:{PEER_KEY}|2^20|1:4\n\
             a=crypto:5 AES_CM_128_HMAC_SHA1_32 inline:{PEER_KEY}|2^31\n\
             a=crypto:6 AES_CM_128_HMAC_SHA1_80 inline:{PEER_KEY}\n"
        ),
    )
    .replace("RTP/AVP", "RTP/SAVP");
    let sd = parse(&offer);
    assert!(sd.media[0].any_crypto);
    assert_eq!(
        sd.media[0].crypto.iter().map(|c| c.tag).collect::<Vec<_>>(),
        [5, 6],
        "an unknown suite and a key with an MKI are left out"
    );
    let local = secure_local(false);
    let n = negotiate(&sd, &local).unwrap();
    let sdes = n.srtp.unwrap();
    assert_eq!(sdes.tag, 5);
    assert_eq!(sdes.keys.suite, Suite::Aes128CmHmacSha1_32);
    assert_eq!(sdes.keys.send, MasterKey([7; 30]));
    assert_eq!(sdes.keys.receive, MasterKey::from_inline(PEER_KEY).unwrap());
    let text = build_answer(&sd, &local, &n);
    assert!(text.contains("m=audio 40000 RTP/SAVP 0\r\n"), "{text}");
    let ours = format!(
        "a=crypto:5 AES_CM_128_HMAC_SHA1_32 inline:{}\r\n",
        MasterKey([7; 30]).to_inline()
    );
    assert!(text.contains(&ours), "{text}");
    assert_eq!(text.matches("a=crypto").count(), 1, "{text}");

    // The answer as the offerer reads it: keys the other way round.
    let mine = build_offer(&local, Direction::SendRecv);
    assert!(
        mine.contains("RTP/SAVP") && mine.contains("a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:")
    );
    let offerer = LocalMedia {
        srtp: Some(SrtpPolicy::new(MasterKey([8; 30]), false)),
        ..local.clone()
    };
    let offer = parse(&build_offer(&offerer, Direction::SendRecv));
    let n = negotiate(&offer, &local).unwrap();
    let answer = parse(&build_answer(&offer, &local, &n));
    let back = accept_answer(&answer, &offerer).unwrap();
    assert_eq!(back.srtp.unwrap().keys.receive, MasterKey([7; 30]));
    assert_eq!(back.srtp.unwrap().keys.send, MasterKey([8; 30]));
}

#[test]
fn srtp_policy_decides_what_plain_and_secure_offers_get() {
    let plain = with_audio_attrs("", "192.0.2.1", "");
    let opportunistic = with_audio_attrs(
        "",
        "192.0.2.1",
        &format!("a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:{PEER_KEY}\n"),
    );
    let savp = opportunistic.replace("RTP/AVP", "RTP/SAVP");
    let unusable = with_audio_attrs(
        "",
        "192.0.2.1",
        &format!("a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:{PEER_KEY} UNENCRYPTED_SRTP\n"),
    )
    .replace("RTP/AVP", "RTP/SAVP");
    let outcome =
        |sdp: &str, local: &LocalMedia| negotiate(&parse(sdp), local).map(|n| n.srtp.is_some());
    // SRTP off: plain only.
    assert_eq!(outcome(&plain, &local()), Ok(false));
    assert_eq!(outcome(&opportunistic, &local()), Ok(false));
    assert_eq!(outcome(&savp, &local()), Err(NegotiationError::SecureOnly));
    // Offered: whatever the caller offers.
    assert_eq!(outcome(&plain, &secure_local(false)), Ok(false));
    assert_eq!(outcome(&opportunistic, &secure_local(false)), Ok(true));
    assert_eq!(outcome(&savp, &secure_local(false)), Ok(true));
    assert_eq!(
        outcome(&unusable, &secure_local(false)),
        Err(NegotiationError::SecureOnly)
    );
    // Required: plain is refused.
    assert_eq!(
        outcome(&plain, &secure_local(true)),
        Err(NegotiationError::SrtpRequired)
    );
    assert_eq!(outcome(&opportunistic, &secure_local(true)), Ok(true));
    // Opportunistic SRTP keeps its profile in the answer.
    let sd = parse(&opportunistic);
    let n = negotiate(&sd, &secure_local(false)).unwrap();
    let text = build_answer(&sd, &secure_local(false), &n);
    assert!(
        text.contains("RTP/AVP 0") && text.contains("a=crypto:1 "),
        "{text}"
    );
}

#[test]
fn an_answer_to_our_srtp_offer_must_take_our_line_on_our_profile() {
    let local = secure_local(false);
    let ours = local.srtp.unwrap().key;
    let answer = |profile: &str, crypto: &str| {
        parse(&format!(
            "v=0\no=- 1 1 IN IP4 192.0.2.1\ns=-\nc=IN IP4 192.0.2.1\nt=0 0\nm=audio 5004 {profile} 0\n{crypto}"
        ))
    };
    let good = format!("a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:{PEER_KEY}\n");
    assert!(accept_answer(&answer("RTP/SAVP", &good), &local).is_ok());
    for (profile, crypto, why) in [
        ("RTP/AVP", String::new(), "plain RTP"),
        ("RTP/AVP", good.clone(), "our key on the plain profile"),
        (
            "RTP/SAVP",
            format!("a=crypto:2 AES_CM_128_HMAC_SHA1_80 inline:{PEER_KEY}\n"),
            "a tag we did not offer",
        ),
        (
            "RTP/SAVP",
            format!("a=crypto:1 AES_CM_128_HMAC_SHA1_32 inline:{PEER_KEY}\n"),
            "a suite we did not offer",
        ),
        (
            "RTP/SAVP",
            format!(
                "a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:{}\n",
                ours.to_inline()
            ),
            "our own key sent back",
        ),
    ] {
        assert_eq!(
            accept_answer(&answer(profile, &crypto), &local),
            Err(NegotiationError::SecureOnly),
            "{why}"
        );
    }
}
