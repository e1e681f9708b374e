//! The caller's side of SDP for the load generator: an offer of one codec plus
//! telephone-event, and what the answer says about where and how to send. A thin adapter
//! over `crate::sdp`, so the load tool reads answers exactly as hotline itself would.

use std::net::{IpAddr, SocketAddr};

use crate::media::Codec;
use crate::sdp::{self, Direction, LocalMedia, SessionDescription};

pub(crate) const EVENT_PT: u8 = 101;

fn local(ip: IpAddr, port: u16, codec: Codec, session_id: u64) -> LocalMedia {
    LocalMedia {
        addr: ip,
        port,
        session_id,
        session_version: 1,
        codecs: vec![codec],
        telephone_event_pt: EVENT_PT,
        srtp: None,
    }
}

pub(crate) fn offer(ip: IpAddr, port: u16, codec: Codec, session_id: u64) -> String {
    sdp::build_offer(&local(ip, port, codec, session_id), Direction::SendRecv)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Answer {
    pub remote: SocketAddr,
    pub audio_pt: u8,
    pub event_pt: Option<u8>,
}

/// The answer to our offer from `ip:port` with `codec`; None if it is unusable (rejected
/// audio, no address, a codec we did not offer).
pub(crate) fn read_answer(ip: IpAddr, port: u16, codec: Codec, answer: &[u8]) -> Option<Answer> {
    let parsed = SessionDescription::parse_bytes(answer).ok()?;
    let n = sdp::accept_answer(&parsed, &local(ip, port, codec, 0)).ok()?;
    Some(Answer {
        remote: n.remote?,
        audio_pt: n.audio_pt,
        event_pt: n.event_pt,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const IP: &str = "127.0.0.1";

    #[test]
    fn offer_then_read_back() {
        let o = offer(IP.parse().unwrap(), 40000, Codec::Pcma, 7);
        assert!(o.contains("m=audio 40000 RTP/AVP 8 101\r\n"), "{o}");
        assert!(o.contains("a=rtpmap:8 PCMA/8000"));
        let a = read_answer(IP.parse().unwrap(), 40000, Codec::Pcma, o.as_bytes()).unwrap();
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
            read_answer("::1".parse().unwrap(), 5000, Codec::Pcmu, v6.as_bytes())
                .unwrap()
                .remote,
            "[::1]:5000".parse().unwrap()
        );
    }

    #[test]
    fn media_level_address_wins_and_event_pt_is_read() {
        let sdp = "v=0\no=- 1 1 IN IP4 10.0.0.1\ns=-\nc=IN IP4 10.0.0.1\nt=0 0\nm=audio 30000 RTP/AVP 0 96\nc=IN IP4 127.0.0.2\na=rtpmap:96 telephone-event/8000\nm=video 0 RTP/AVP 31\nc=IN IP4 10.9.9.9\n";
        let a = read_answer(IP.parse().unwrap(), 4000, Codec::Pcmu, sdp.as_bytes()).unwrap();
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
    fn rejected_or_unusable_answers() {
        let ip = IP.parse().unwrap();
        assert_eq!(
            read_answer(
                ip,
                4000,
                Codec::Pcmu,
                b"v=0\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 0 RTP/AVP 0\r\n"
            ),
            None
        );
        assert_eq!(
            read_answer(
                ip,
                4000,
                Codec::Pcmu,
                b"v=0\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 4000 RTP/AVP 8\r\n"
            ),
            None,
            "PCMA was not offered"
        );
        assert_eq!(
            read_answer(ip, 4000, Codec::Pcmu, b"v=0\r\nc=IN IP4 127.0.0.1\r\n"),
            None
        );
        assert_eq!(read_answer(ip, 4000, Codec::Pcmu, b"\xff\xfe"), None);
    }
}
