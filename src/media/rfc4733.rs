//! RFC 4733 telephone-event payloads (DTMF sent as RTP events rather than as tones), and the
//! receiver logic that turns a sender's many packets per key press into one digit.

/// The RTP clock ticks covered by one event segment at most (RFC 4733 §2.5.1.3).
const MAX_SEGMENT: u32 = u16::MAX as u32;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TelephoneEvent {
    pub event: u8,
    pub end: bool,
    /// Power level as -dBm0, 0..=63; only the low 6 bits go on the wire.
    pub volume: u8,
    /// In RTP timestamp units, counted from the event's (shared) timestamp.
    pub duration: u16,
}

/// Reads the first event of a payload. Anything after the first four bytes (a sender packing
/// several events, RFC 4733 §2.5.1.5 and §4.1) is ignored: the first one is the current event.
pub fn parse(payload: &[u8]) -> Option<TelephoneEvent> {
    let b = payload.get(..4)?;
    Some(TelephoneEvent {
        event: b[0],
        end: b[1] & 0x80 != 0,
        // Bit 0x40 is reserved: senders must clear it and receivers must ignore it.
        volume: b[1] & 0x3F,
        duration: u16::from_be_bytes([b[2], b[3]]),
    })
}

pub fn write(ev: &TelephoneEvent, out: &mut [u8; 4]) {
    out[0] = ev.event;
    out[1] = (u8::from(ev.end) << 7) | (ev.volume & 0x3F);
    out[2..4].copy_from_slice(&ev.duration.to_be_bytes());
}

/// The DTMF key for an event code (RFC 4733 §3.2, table 7); other events (flash, modem and
/// fax tones) are not keys.
pub fn event_digit(event: u8) -> Option<char> {
    match event {
        0..=9 => Some(char::from(b'0' + event)),
        10 => Some('*'),
        11 => Some('#'),
        12..=15 => Some(char::from(b'A' + event - 12)),
        _ => None,
    }
}

/// The event code for a DTMF key; `a`-`d` are accepted as well as `A`-`D`.
pub fn digit_event(c: char) -> Option<u8> {
    match c {
        '0'..='9' => Some(c as u8 - b'0'),
        '*' => Some(10),
        '#' => Some(11),
        'A'..='D' => Some(c as u8 - b'A' + 12),
        'a'..='d' => Some(c as u8 - b'a' + 12),
        _ => None,
    }
}

/// How many past events are remembered to catch late duplicates. Reordering in a real network
/// spans a few packets, and by then the previous event's three end packets are long gone.
const HISTORY: usize = 4;

/// Reduces the packet stream of RFC 4733 to one digit per key press.
///
/// Every packet of one event carries the event's start timestamp, and senders repeat packets
/// on purpose (updates while the key is held, the end packet three times), so the timestamp is
/// the event's identity. A digit is reported on the first packet seen with a new timestamp,
/// whether that is a start, an update or an end packet (the earlier ones may have been lost).
///
/// Call [`DigitDeduper::reset`] when the sender's SSRC changes: its timestamps start afresh.
#[derive(Debug, Default)]
pub struct DigitDeduper {
    /// Timestamps of recently reported events, so a delayed retransmission of an older event
    /// does not count as a new press. A list rather than "older than the newest" because a
    /// restarted sender may legitimately move its timestamps backwards.
    recent: [Option<u32>; HISTORY],
    next: usize,
    current: Option<Current>,
}

#[derive(Debug, Clone, Copy)]
struct Current {
    timestamp: u32,
    event: u8,
    ended: bool,
}

impl DigitDeduper {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn reset(&mut self) {
        *self = Self::default();
    }

    pub fn on_event(&mut self, rtp_timestamp: u32, ev: &TelephoneEvent) -> Option<char> {
        // Non-key events are not part of any key press, so they must not disturb the state
        // that recognises the press's remaining packets.
        let digit = event_digit(ev.event)?;

        if let Some(cur) = &mut self.current
            && cur.timestamp == rtp_timestamp
        {
            cur.ended |= ev.end;
            return None;
        }
        if self.recent.contains(&Some(rtp_timestamp)) {
            return None;
        }
        let continues_current = self.current.is_some_and(|cur| {
            // A key held past the 16-bit duration limit goes on as a new segment stamped
            // exactly where the previous one stopped, and the previous one never ended.
            !cur.ended
                && cur.event == ev.event
                && rtp_timestamp == cur.timestamp.wrapping_add(MAX_SEGMENT)
        });

        self.remember(rtp_timestamp);
        self.current = Some(Current {
            timestamp: rtp_timestamp,
            event: ev.event,
            ended: ev.end,
        });
        if continues_current { None } else { Some(digit) }
    }

    fn remember(&mut self, timestamp: u32) {
        self.recent[self.next] = Some(timestamp);
        self.next = (self.next + 1) % HISTORY;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(event: u8, end: bool, duration: u16) -> TelephoneEvent {
        TelephoneEvent {
            event,
            end,
            volume: 10,
            duration,
        }
    }

    /// The packets an RFC 4733 sender emits for one press: a start, updates every 20 ms, and
    /// the end packet three times.
    fn press(event: u8, updates: u16) -> Vec<TelephoneEvent> {
        let mut v: Vec<_> = (0..=updates)
            .map(|i| ev(event, false, 160 * (i + 1)))
            .collect();
        let total = 160 * (updates + 1);
        v.extend([ev(event, true, total); 3]);
        v
    }

    fn feed(d: &mut DigitDeduper, ts: u32, packets: &[TelephoneEvent]) -> String {
        packets.iter().filter_map(|p| d.on_event(ts, p)).collect()
    }

    #[test]
    fn wire_format() {
        let e = TelephoneEvent {
            event: 11,
            end: true,
            volume: 10,
            duration: 0x0320,
        };
        let mut out = [0u8; 4];
        write(&e, &mut out);
        assert_eq!(out, [0x0B, 0x8A, 0x03, 0x20]);
        assert_eq!(parse(&out), Some(e));
        // The reserved bit is ignored, trailing bytes are ignored, short payloads are refused.
        assert_eq!(parse(&[0x0B, 0xCA, 0x03, 0x20, 0xFF]), Some(e));
        for len in 0..4 {
            assert_eq!(parse(&out[..len]), None);
        }
        // An out-of-range volume cannot set the end or reserved bits.
        write(
            &TelephoneEvent {
                volume: 0xFF,
                end: false,
                ..e
            },
            &mut out,
        );
        assert_eq!(out[1], 0x3F);
    }

    #[test]
    fn digit_mapping_round_trips() {
        let keys = "0123456789*#ABCD";
        for (code, key) in keys.chars().enumerate() {
            assert_eq!(event_digit(code as u8), Some(key));
            assert_eq!(digit_event(key), Some(code as u8));
        }
        assert_eq!(digit_event('c'), Some(14));
        for code in 16..=255u8 {
            assert_eq!(event_digit(code), None);
        }
        for c in ['E', 'e', ' ', 'x', '+', 'é', '\0'] {
            assert_eq!(digit_event(c), None);
        }
    }

    #[test]
    fn one_digit_per_press_despite_repeats() {
        let mut d = DigitDeduper::new();
        assert_eq!(feed(&mut d, 1000, &press(5, 6)), "5");
        // Updates and end packets arriving after the end are still the same press.
        assert_eq!(feed(&mut d, 1000, &press(5, 2)), "");
    }

    #[test]
    fn three_end_packets_alone_give_one_digit() {
        let mut d = DigitDeduper::new();
        let ends = [ev(3, true, 800); 3];
        assert_eq!(feed(&mut d, 4000, &ends), "3");
    }

    #[test]
    fn lost_start_packets() {
        let mut d = DigitDeduper::new();
        // Only a late update and the ends made it through.
        let p = press(9, 5);
        assert_eq!(feed(&mut d, 7000, &p[4..]), "9");
    }

    #[test]
    fn same_digit_twice_is_two_presses() {
        let mut d = DigitDeduper::new();
        assert_eq!(feed(&mut d, 1000, &press(1, 3)), "1");
        assert_eq!(feed(&mut d, 2600, &press(1, 3)), "1");
        // Even when the second press is seen only through its end packets.
        assert_eq!(feed(&mut d, 4200, &[ev(1, true, 480); 3]), "1");
    }

    #[test]
    fn a_sequence_of_keys() {
        let mut d = DigitDeduper::new();
        let mut got = String::new();
        for (i, key) in "12*#A0".chars().enumerate() {
            let code = digit_event(key).unwrap();
            got += &feed(&mut d, 10_000 + 1600 * i as u32, &press(code, 4));
        }
        assert_eq!(got, "12*#A0");
    }

    #[test]
    fn interleaved_garbage_and_other_events() {
        let mut d = DigitDeduper::new();
        let mut got = String::new();
        for (i, p) in press(7, 4).iter().enumerate() {
            if let Some(c) = d.on_event(500, p) {
                got.push(c);
            }
            // A flash-hook event and unparsable payloads between every packet.
            assert_eq!(d.on_event(9999 + i as u32, &ev(16, i % 2 == 0, 80)), None);
            assert_eq!(parse(&[0xFF, 0x00][..]), None);
        }
        assert_eq!(got, "7");
        assert_eq!(feed(&mut d, 2100, &press(7, 1)), "7");
    }

    #[test]
    fn late_duplicate_of_an_earlier_press() {
        let mut d = DigitDeduper::new();
        assert_eq!(feed(&mut d, 1000, &press(2, 3)), "2");
        assert_eq!(feed(&mut d, 2000, &press(4, 3)[..2]), "4");
        // A reordered end packet of the first press shows up during the second.
        assert_eq!(d.on_event(1000, &ev(2, true, 640)), None);
        assert_eq!(feed(&mut d, 2000, &press(4, 3)[2..]), "");
    }

    #[test]
    fn long_press_split_into_segments_is_one_digit() {
        let mut d = DigitDeduper::new();
        let ts = u32::MAX - 100; // the segment boundary also wraps the timestamp
        assert_eq!(d.on_event(ts, &ev(0, false, 160)), Some('0'));
        assert_eq!(d.on_event(ts, &ev(0, false, u16::MAX)), None);
        let ts2 = ts.wrapping_add(MAX_SEGMENT);
        assert_eq!(d.on_event(ts2, &ev(0, false, 160)), None);
        assert_eq!(d.on_event(ts2, &ev(0, true, 4000)), None);
        // Once that press ended, the same key is a new press.
        assert_eq!(
            d.on_event(ts2.wrapping_add(5000), &ev(0, false, 160)),
            Some('0')
        );
    }

    proptest::proptest! {
        #[test]
        fn never_more_digits_than_events(
            packets in proptest::collection::vec(
                (0u32..8, proptest::prelude::any::<[u8; 4]>()),
                0..200,
            ),
        ) {
            let mut d = DigitDeduper::new();
            let mut reported = 0;
            let mut stamps = std::collections::HashSet::new();
            for (ts, bytes) in packets {
                let Some(e) = parse(&bytes) else { continue };
                if event_digit(e.event).is_some() {
                    stamps.insert(ts);
                }
                if d.on_event(ts * 1000, &e).is_some() {
                    reported += 1;
                }
            }
            // Each timestamp can be reported again only after HISTORY others pushed it out.
            proptest::prop_assert!(reported <= stamps.len() || stamps.len() > HISTORY);
        }
    }

    #[test]
    fn reset_forgets_history() {
        let mut d = DigitDeduper::new();
        assert_eq!(feed(&mut d, 1000, &press(6, 1)), "6");
        d.reset();
        assert_eq!(feed(&mut d, 1000, &press(6, 1)), "6");
    }

    #[test]
    fn history_is_bounded() {
        let mut d = DigitDeduper::new();
        for i in 0..HISTORY as u32 + 1 {
            assert_eq!(d.on_event(i * 1000, &ev(8, true, 400)), Some('8'));
        }
        // The oldest has been forgotten; only the recent ones are still suppressed.
        for i in 1..HISTORY as u32 + 1 {
            assert_eq!(d.on_event(i * 1000, &ev(8, true, 400)), None);
        }
        assert_eq!(d.on_event(0, &ev(8, true, 400)), Some('8'));
    }
}
