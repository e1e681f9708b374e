//! Everything a datagram or a TCP stream from the network goes through before the engine:
//! stream framing, datagram framing and parsing, validation, transaction matching and the
//! dialog layer of the user agent, followed by its timers. Any panic or hang is a finding.
#![no_main]

use std::time::{Duration, Instant};

use hotline::sip::transaction::TimerConfig;
use hotline::sip::{Peer, TransportKind, UaConfig, UserAgent, framing};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // The byte stream of a TCP connection, cut into messages as the connection task does.
    let mut buf = data.to_vec();
    for _ in 0..64 {
        match framing::stream_message_len(&buf) {
            Ok(Some(0)) | Ok(None) | Err(_) => break,
            Ok(Some(len)) => {
                let len = len.min(buf.len());
                buf.drain(..len);
            }
        }
    }
    let mut ua = UserAgent::new(UaConfig {
        timers: TimerConfig::default(),
        advertised: "127.0.0.1:5060".into(),
        advertise_request_host: false,
        user: "hotline".into(),
        seed: 1,
        nonce_secret: [7; 32],
    });
    let now = Instant::now();
    let from = Peer {
        addr: "192.0.2.1:5070".parse().unwrap(),
        transport: TransportKind::Udp,
    };
    // The same bytes twice: the second copy is a retransmission to the transaction layer.
    ua.handle_input(now, from, data);
    ua.handle_input(now, from, data);
    while ua.poll_event().is_some() {}
    while ua.poll_transmit().is_some() {}
    ua.handle_timeout(now + Duration::from_secs(64));
    while ua.poll_event().is_some() {}
    while ua.poll_transmit().is_some() {}
});
