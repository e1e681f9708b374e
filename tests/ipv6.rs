//! SIP and RTP over IPv6 end to end: hotline bound to [::1], callers from ::1 (the load tool,
//! which speaks SIP through the same message layer and checks the audio), IPv6 references in
//! Request-URI, Via, Contact and the SDP's `IN IP6` both ways, and the CDRs the calls leave.

mod common;

use std::time::Duration;

use common::*;
use hotline::cdr::Disposition;
use hotline::load::{self, LoadOptions};

#[test]
fn calls_over_ipv6_loopback_run_the_flow_with_audio_both_ways() {
    let mut site = site(TEST_FLOW);
    site.config.sip_bind = "[::1]:0".parse().unwrap();
    let mut server = start(site.config.clone());
    assert!(server.sip.is_ipv6(), "{}", server.sip);
    let mut opts = LoadOptions::new(server.sip);
    opts.local_ip = "::1".parse().unwrap();
    opts.calls = 3;
    opts.cps = 10.0;
    opts.hold = Duration::from_secs(3);
    opts.digit_interval = Duration::from_millis(1500);
    let report = load::run(opts).expect("the load tool runs over ::1");
    let table = load::format_table(&report);
    assert_eq!(
        (
            report.calls_attempted,
            report.calls_answered,
            report.calls_completed
        ),
        (3, 3, 3),
        "{table}"
    );
    assert_eq!(report.bad_answers, 0, "an IN IP6 answer: {table}");
    assert_eq!(report.rtp.packets_lost, 0, "{table}");
    assert!(
        report.rtp.audio_packets > 3 * 25,
        "the prompts came back over IPv6: {table}"
    );
    assert!(report.rtp.dtmf_digits_sent >= 3, "{table}");
    server.stop();
    let cdrs = read_cdrs(&site.config.database);
    assert_eq!(cdrs.len(), 3);
    for cdr in &cdrs {
        assert!(cdr.answer_ms.is_some(), "{cdr:?}");
        assert_ne!(cdr.disposition, Disposition::Failed, "{cdr:?}");
        assert!(
            cdr.digits.starts_with('1'),
            "the key press reached the flow: {cdr:?}"
        );
    }
}
