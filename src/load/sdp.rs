//! The caller's side of SDP, just enough for a phone that offers one codec plus
//! telephone-event and reads back where and how to send.

use std::net::{IpAddr, SocketAddr};

use crate::media::Codec;

pub(crate) const EVENT_PT: u8 = 101;

pub(crate) fn offer(ip: IpAddr, port: u16, codec: Codec, session_id: u64) -> String {
    let family = if ip.is_ipv4() { "IP4" } else { "IP6" };
    let pt = codec.payload_type();
    format!(
        "v=0\r\no=hotline-load {session_id} 1 IN {family} {ip}\r\ns=hotline-load\r\nc=IN {family} {ip}\r\nt=0 0\r\n\
         m=audio {port} RTP/AVP {pt} {EVENT_PT}\r\na=rtpmap:{pt} {}/8000\r\na=rtpmap:{EVENT_PT} telephone-event/8000\r\n\
         a=fmtp:{EVENT_PT} 0-15\r\na=ptime:20\r\na=sendrecv\r\n",
        codec.encoding_name()
    )
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Answer {
    pub remote: SocketAddr,
    pub audio_pt: u8,
    pub event_pt: Option<u8>,
}

/// The first audio stream of an answer: its address (media-level c= over session-level),
/// the first payload type listed, and the telephone-event type if one is mapped.
/// None for a rejected (port 0) or missing audio stream, or one without an address.
pub(crate) fn read_answer(sdp: &[u8]) -> Option<Answer> {
    let text = std::str::from_utf8(sdp).ok()?;
    let mut session_addr: Option<IpAddr> = None;
    let mut media_addr: Option<IpAddr> = None;
    let mut port: Option<u16> = None;
    let mut first_pt: Option<u8> = None;
    let mut event_pt: Option<u8> = None;
    let mut in_audio = false;
    let mut seen_audio = false;
    for line in text.lines().map(str::trim) {
        let Some((kind, value)) = line.split_once('=') else {
            continue;
        };
        match kind {
            "m" => {
                if seen_audio {
                    break;
                }
                let mut parts = value.split_ascii_whitespace();
                in_audio = parts.next() == Some("audio");
                if in_audio {
                    seen_audio = true;
                    port = parts.next().and_then(|p| p.split('/').next()?.parse().ok());
                    first_pt = parts.nth(1).and_then(|p| p.parse().ok());
                }
            }
            "c" => {
                let addr = value
                    .split_ascii_whitespace()
                    .nth(2)
                    .and_then(|a| a.split('/').next()?.parse().ok());
                if seen_audio && in_audio {
                    media_addr = addr;
                } else if !seen_audio {
                    session_addr = addr;
                }
            }
            "a" if in_audio => {
                if let Some((pt, enc)) = value
                    .strip_prefix("rtpmap:")
                    .and_then(|m| m.split_once(' '))
                    && enc
                        .trim()
                        .to_ascii_lowercase()
                        .starts_with("telephone-event/")
                {
                    event_pt = pt.trim().parse().ok();
                }
            }
            _ => {}
        }
    }
    let port = port.filter(|&p| p != 0)?;
    let ip = media_addr.or(session_addr)?;
    Some(Answer {
        remote: SocketAddr::new(ip, port),
        audio_pt: first_pt?,
        event_pt,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offer_then_read_back() {
        let o = offer("127.0.0.1".parse().unwrap(), 40000, Codec::Pcma, 7);
        assert!(o.contains("m=audio 40000 RTP/AVP 8 101\r\n"), "{o}");
        assert!(o.contains("a=rtpmap:8 PCMA/8000"));
        let a = read_answer(o.as_bytes()).unwrap();
        assert_eq!(
            a,
            Answer {
                remote: "127.0.0.1:40000".parse().unwrap(),
                audio_pt: 8,
                event_pt: Some(101)
            }
        );
        let v6 = offer("::1".parse().unwrap(), 5000, Codec::Pcmu, 1);
        assert_eq!(
            read_answer(v6.as_bytes()).unwrap().remote,
            "[::1]:5000".parse().unwrap()
        );
    }

    #[test]
    fn media_level_address_wins_and_event_pt_is_read() {
        let sdp = "v=0\no=- 1 1 IN IP4 10.0.0.1\ns=-\nc=IN IP4 10.0.0.1\nt=0 0\nm=audio 30000 RTP/AVP 0 96\nc=IN IP4 127.0.0.2\na=rtpmap:96 telephone-event/8000\nm=video 0 RTP/AVP 31\nc=IN IP4 10.9.9.9\n";
        let a = read_answer(sdp.as_bytes()).unwrap();
        assert_eq!(
            a,
            Answer {
                remote: "127.0.0.2:30000".parse().unwrap(),
                audio_pt: 0,
                event_pt: Some(96)
            }
        );
    }

    #[test]
    fn rejected_or_missing_audio() {
        assert_eq!(
            read_answer(b"v=0\r\nc=IN IP4 127.0.0.1\r\nm=audio 0 RTP/AVP 0\r\n"),
            None
        );
        assert_eq!(
            read_answer(b"v=0\r\nm=audio 4000 RTP/AVP 0\r\n"),
            None,
            "no address"
        );
        assert_eq!(read_answer(b"v=0\r\nc=IN IP4 127.0.0.1\r\n"), None);
        assert_eq!(read_answer(b"\xff\xfe"), None);
    }
}
