//! Real calls over loopback UDP into hotline started in-process: audio, menus, digits by every
//! route, cancel and hang-up from both sides, refusals, and the CDR each call leaves.

mod common;

use std::time::Duration;

use common::*;
use hotline::cdr::{Disposition, HangupBy};
use hotline::media::Codec;
use hotline::sip::UaEvent;

const S: fn(u64) -> Duration = Duration::from_millis;

#[test]
fn caller_hears_the_welcome_prompt_sample_exact() {
    let site = site(TEST_FLOW);
    let mut server = start(site.config.clone());
    let mut phone = Phone::new(server.sip);
    phone.call("100");
    phone.talk(S(600));
    let prompts = encoded_prompts(&site, phone.codec);
    // Until the ACK starts the flow the stream may carry a silence frame or two; the first
    // talkspurt with sound is the welcome prompt, frame for frame, starting with a marker.
    let start = phone
        .received
        .iter()
        .position(|(_, p)| p.iter().any(|b| *b != phone.codec.silence_byte()))
        .expect("some audio");
    assert!(
        start <= 5,
        "the prompt starts at once ({start} silent frames first)"
    );
    assert!(
        phone.received[start].0.marker,
        "the prompt starts a talkspurt"
    );
    let welcome: Vec<u8> = phone.received[start..]
        .iter()
        .take(20)
        .flat_map(|(_, p)| p.clone())
        .collect();
    assert_eq!(
        welcome,
        prompts[0].1[..welcome.len()],
        "received audio is the welcome prompt"
    );
    // Sequence numbers and timestamps run on without gaps.
    for pair in phone.received.windows(2) {
        assert_eq!(pair[1].0.sequence, pair[0].0.sequence.wrapping_add(1));
        assert_eq!(pair[1].0.timestamp, pair[0].0.timestamp.wrapping_add(160));
        assert_eq!(pair[1].0.ssrc, pair[0].0.ssrc);
    }
    phone.hangup();
    phone
        .wait_for(S(2000), |e| matches!(e, UaEvent::Ended { .. }))
        .expect("BYE answered");
    server.stop();
    let cdrs = read_cdrs(&site.config.database);
    assert_eq!(cdrs.len(), 1);
    let c = &cdrs[0];
    assert_eq!(
        (c.disposition, c.hangup_by, c.sip_code),
        (Disposition::CallerHangup, HangupBy::Caller, 200)
    );
    assert_eq!(
        (c.caller.as_str(), c.dialled.as_str(), c.flow.as_deref()),
        ("5550100", "100", Some("test"))
    );
    assert!(c.answer_ms.is_some() && c.end_ms >= c.start_ms);
    assert_eq!(c.ivr_path, ["welcome", "menu"]);
}

#[test]
fn pressing_1_plays_option_1_then_9_says_goodbye_and_hangs_up() {
    let site = site(TEST_FLOW);
    let mut server = start(site.config.clone());
    let mut phone = Phone::new(server.sip);
    phone.call("100");
    phone.talk(S(900));
    phone.press("1", S(300));
    phone.press("9", S(700));
    phone
        .wait_for(S(2000), |e| matches!(e, UaEvent::RemoteBye { .. }))
        .expect("hotline hangs up after goodbye");
    let prompts = encoded_prompts(&site, phone.codec);
    assert_eq!(
        phone.heard(&prompts),
        ["welcome", "menu", "option1", "menu", "goodbye"]
    );
    server.stop();
    let c = &read_cdrs(&site.config.database)[0];
    assert_eq!(
        (c.disposition, c.hangup_by),
        (Disposition::Completed, HangupBy::Hotline)
    );
    assert_eq!(c.digits, "19");
    assert_eq!(
        c.ivr_path,
        ["welcome", "menu", "option1", "menu", "goodbye", "end"]
    );
}

#[test]
fn timeout_and_invalid_digit_retry_then_fail_to_goodbye() {
    let site = site(TEST_FLOW);
    let mut server = start(site.config.clone());
    let mut phone = Phone::new(server.sip);
    phone.call("100");
    phone.talk(S(900)); // welcome + menu
    phone.talk(S(2200)); // menu timeout (1 s): "invalid" + menu again
    phone.press("7", S(100)); // a wrong key: second failure
    phone
        .wait_for(S(3000), |e| matches!(e, UaEvent::RemoteBye { .. }))
        .expect("failure exit ends in goodbye");
    let prompts = encoded_prompts(&site, phone.codec);
    let heard = phone.heard(&prompts);
    server.stop();
    let c = &read_cdrs(&site.config.database)[0];
    assert_eq!(
        heard,
        ["welcome", "menu", "invalid", "menu", "goodbye"],
        "{c:?}"
    );
    assert_eq!(c.digits, "7");
    assert_eq!(c.ivr_path, ["welcome", "menu", "goodbye", "end"]);
}

#[test]
fn collect_digits_by_sip_info() {
    let site = site(TEST_FLOW);
    let mut server = start(site.config.clone());
    let mut phone = Phone::new(server.sip);
    phone.call("100");
    phone.talk(S(500));
    let call = phone.call.unwrap();
    for d in ['2', '1', '2', '3', '4', '#'] {
        phone.ua.send_info_digit(std::time::Instant::now(), call, d);
        phone.talk(S(60));
    }
    phone
        .wait_for(S(3000), |e| matches!(e, UaEvent::RemoteBye { .. }))
        .expect("collect then goodbye");
    server.stop();
    let c = &read_cdrs(&site.config.database)[0];
    assert_eq!(c.digits, "21234#");
    assert_eq!(c.ivr_path, ["welcome", "menu", "account", "goodbye", "end"]);
}

#[test]
fn inband_dtmf_when_telephone_event_is_not_offered() {
    let site = site(TEST_FLOW);
    let mut server = start(site.config.clone());
    let mut phone = Phone::new(server.sip);
    let offer = phone.offer(&[Codec::Pcma], false);
    phone.dial("100", Some(offer));
    phone
        .wait_for(S(3000), |e| matches!(e, UaEvent::Answered { .. }))
        .expect("answered");
    assert_eq!((phone.codec, phone.event_pt), (Codec::Pcma, None));
    phone.talk(S(900));
    phone.press_inband("9", S(200));
    phone
        .wait_for(S(3000), |e| matches!(e, UaEvent::RemoteBye { .. }))
        .expect("9 by in-band tone leads to goodbye");
    server.stop();
    let c = &read_cdrs(&site.config.database)[0];
    assert_eq!(c.digits, "9");
}

#[test]
fn cancel_before_answer_gets_487_and_a_caller_hangup_cdr() {
    let mut site = site(TEST_FLOW);
    site.config.answer_delay = S(2000);
    let mut server = start(site.config.clone());
    let mut phone = Phone::new(server.sip);
    let offer = phone.offer(&[Codec::Pcmu], true);
    phone.dial("100", Some(offer));
    phone
        .wait_for(S(2000), |e| {
            matches!(e, UaEvent::Progress { code: 180, .. })
        })
        .expect("ringing");
    phone.hangup();
    phone
        .wait_for(S(2000), |e| matches!(e, UaEvent::Failed { code: 487, .. }))
        .expect("487 Request Terminated");
    server.stop();
    let cdrs = read_cdrs(&site.config.database);
    assert_eq!(cdrs.len(), 1);
    assert_eq!(
        (
            cdrs[0].disposition,
            cdrs[0].sip_code,
            cdrs[0].end_reason.as_str()
        ),
        (Disposition::CallerHangup, 487, "cancel")
    );
    assert_eq!(cdrs[0].answer_ms, None);
}

#[test]
fn late_offer_is_answered_in_the_ack() {
    let site = site(TEST_FLOW);
    let mut server = start(site.config.clone());
    let mut phone = Phone::new(server.sip);
    let answer = phone.offer(&[Codec::Pcma], true);
    phone.dial_late_offer("100", answer);
    phone
        .wait_for(S(3000), |e| matches!(e, UaEvent::Answered { .. }))
        .expect("200 with an offer");
    phone.codec = Codec::Pcma;
    phone.talk(S(500));
    let prompts = encoded_prompts(&site, Codec::Pcma);
    assert_eq!(
        phone.heard(&prompts).first().map(String::as_str),
        Some("welcome"),
        "audio in the codec our ACK chose"
    );
    phone.hangup();
    phone.pump(S(100));
    server.stop();
    assert_eq!(
        read_cdrs(&site.config.database)[0].disposition,
        Disposition::CallerHangup
    );
}

#[test]
fn refusals_404_488_503_each_leave_one_cdr() {
    let flow_without_default = TEST_FLOW;
    let mut site = site(flow_without_default);
    site.config.max_calls = 1;
    let mut server = start(site.config.clone());
    let mut phone = Phone::new(server.sip);
    phone.dial("555", Some(phone.offer(&[Codec::Pcmu], true)));
    phone
        .wait_for(S(2000), |e| matches!(e, UaEvent::Failed { code: 404, .. }))
        .expect("404 for an unknown number");
    let g729 = phone
        .offer(&[Codec::Pcmu], false)
        .replace("RTP/AVP 0", "RTP/AVP 18")
        .replace("a=rtpmap:0 PCMU/8000", "a=rtpmap:18 G729/8000");
    phone.dial("100", Some(g729));
    phone
        .wait_for(S(2000), |e| matches!(e, UaEvent::Failed { code: 488, .. }))
        .expect("488 for no common codec");
    let mut first = Phone::new(server.sip);
    first.call("100");
    phone.dial("100", Some(phone.offer(&[Codec::Pcmu], true)));
    phone
        .wait_for(S(2000), |e| matches!(e, UaEvent::Failed { code: 503, .. }))
        .expect("503 beyond the call limit");
    first.hangup();
    first.pump(S(200));
    server.stop();
    let cdrs = read_cdrs(&site.config.database);
    let mut summary: Vec<(u16, Disposition, String)> = cdrs
        .iter()
        .map(|c| (c.sip_code, c.disposition, c.end_reason.clone()))
        .collect();
    summary.sort_by_key(|s| s.0);
    assert_eq!(
        summary,
        vec![
            (200, Disposition::CallerHangup, "bye".to_string()),
            (404, Disposition::Failed, "no_route".to_string()),
            (488, Disposition::Failed, "no_codec".to_string()),
            (503, Disposition::Blocked, "overload".to_string()),
        ]
    );
}

#[test]
fn silent_caller_is_hung_up_after_rtp_timeout() {
    let mut site = site(TEST_FLOW);
    site.config.rtp_timeout = S(600);
    let mut server = start(site.config.clone());
    let mut phone = Phone::new(server.sip);
    phone.call("100");
    // No RTP from us at all: only SIP is pumped.
    phone
        .wait_for(S(3000), |e| matches!(e, UaEvent::RemoteBye { .. }))
        .expect("ghost call ended");
    server.stop();
    let c = &read_cdrs(&site.config.database)[0];
    assert_eq!(
        (c.disposition, c.end_reason.as_str()),
        (Disposition::Failed, "rtp_timeout")
    );
}

#[test]
fn graceful_shutdown_refuses_new_calls_and_ends_old_ones_with_bye() {
    let site = site(TEST_FLOW);
    let mut server = start(site.config.clone());
    let mut phone = Phone::new(server.sip);
    phone.call("100");
    phone.talk(S(200));
    server.server.as_ref().unwrap().shutdown();
    let mut late = Phone::new(server.sip);
    late.dial("100", Some(late.offer(&[Codec::Pcmu], true)));
    late.wait_for(S(2000), |e| matches!(e, UaEvent::Failed { code: 503, .. }))
        .expect("503 while draining");
    // The grace period is 2 s; keep talking through it until hotline says goodbye.
    for _ in 0..40 {
        phone.talk(S(100));
        if phone
            .events
            .iter()
            .any(|e| matches!(e, UaEvent::RemoteBye { .. }))
        {
            break;
        }
    }
    assert!(
        phone
            .events
            .iter()
            .any(|e| matches!(e, UaEvent::RemoteBye { .. })),
        "BYE after the grace period"
    );
    server.stop();
    let cdrs = read_cdrs(&site.config.database);
    assert_eq!(cdrs.len(), 2);
    assert!(
        cdrs.iter()
            .any(|c| c.end_reason == "shutdown" && c.disposition == Disposition::Blocked)
    );
    assert!(
        cdrs.iter()
            .any(|c| c.end_reason == "shutdown" && c.answer_ms.is_some())
    );
}

#[test]
fn survey_answers_pressed_on_a_call_are_stored_with_its_cdr() {
    let site = site(
        r#"
[flow]
name = "survey"
numbers = ["100"]
start = "ask"

[nodes.ask]
type = "survey"
prompts = ["welcome"]
questions = [
  { id = "satisfaction", prompts = ["menu"], answers = "12345" },
  { id = "solved", prompts = ["option1"], answers = "12" },
]
invalid_prompts = ["invalid"]
timeout = "3s"
next = "bye"

[nodes.bye]
type = "play"
prompts = ["goodbye"]
next = "end"

[nodes.end]
type = "hangup"
"#,
    );
    let mut server = start(site.config.clone());
    let mut phone = Phone::new(server.sip);
    phone.call("100");
    phone.talk(S(300));
    phone.press("7", S(300)); // not an allowed answer: asked again
    phone.press("4", S(300));
    phone.press("1", S(300));
    phone
        .wait_for(S(3000), |e| matches!(e, UaEvent::RemoteBye { .. }))
        .expect("goodbye and hang up after the last question");
    server.stop();
    let c = &read_cdrs(&site.config.database)[0];
    assert_eq!(
        c.survey,
        [
            ("satisfaction".to_string(), "4".to_string()),
            ("solved".to_string(), "1".to_string())
        ]
    );
    assert_eq!(c.digits, "741");
    assert_eq!(c.ivr_path, ["ask", "bye", "end"]);
}
