//! An SDP body from the network: parsed, then offered to our answerer and read as an answer
//! to our offer. Any panic or hang is a finding.
#![no_main]

use hotline::sdp::{LocalMedia, SessionDescription, accept_answer, build_answer, negotiate};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(sdp) = SessionDescription::parse_bytes(data) else {
        return;
    };
    let local = LocalMedia::new("127.0.0.1".parse().unwrap(), 20000, 1);
    if let Ok(n) = negotiate(&sdp, &local) {
        let _ = build_answer(&sdp, &local, &n);
    }
    let _ = accept_answer(&sdp, &local);
});
