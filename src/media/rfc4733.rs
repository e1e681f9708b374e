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

/// A packet stamped like an ended press but arriving this many ticks (20 ms each) after that
/// press's last packet is a new press: network reordering and the end's repeats are a matter
/// of milliseconds, a second press takes a person far longer.
const REPRESS_TICKS: u32 = 10;

/// Reduces the packet stream of RFC 4733 to one digit per key press.
///
/// Every packet of one event carries the event's start timestamp, and senders repeat packets
/// on purpose (updates while the key is held, the end packet three times), so the timestamp is
/// the event's identity. A digit is reported on the first packet seen with a new timestamp,
/// whether that is a start, an update or an end packet (the earlier ones may have been lost).
///
/// Some senders stamp a second press of a key like the first (a replayed capture repeats
/// timestamps and sequence numbers alike; some stacks reuse the last event's stamp). After an
/// event's end, a start or update packet sent later than everything seen so far (its sequence
/// number says so) is a new press, and so is any packet of that stamp arriving
/// `REPRESS_TICKS` after the event's last one; a copy delayed in the network does neither. A
/// new SSRC starts afresh (its timestamps and sequence numbers do).
#[derive(Debug, Default)]
pub struct DigitDeduper {
    /// Recently reported events (timestamp, tick of their last packet), so a delayed copy of
    /// an older event does not count as a new press. A list rather than "older than the
    /// newest" because a restarted sender may legitimately move its timestamps backwards.
    recent: [Option<(u32, u32)>; HISTORY],
    next: usize,
    current: Option<Current>,
    /// The newest sequence number seen on an event packet, with the sender's SSRC.
    newest: Option<(u32, u16)>,
}

#[derive(Debug, Clone, Copy)]
struct Current {
    timestamp: u32,
    event: u8,
    ended: bool,
    /// The tick its last packet came in.
    heard: u32,
}

/// `a` was sent after `b` (sequence numbers wrap at 2^16).
fn seq_after(a: u16, b: u16) -> bool {
    (a.wrapping_sub(b) as i16) > 0
}

impl DigitDeduper {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn reset(&mut self) {
        *self = Self::default();
    }

    /// One telephone-event packet: its RTP timestamp, sequence number and SSRC, the tick it
    /// arrived in, and the event. Returns the key when this packet is a new press.
    pub fn on_event(
        &mut self,
        rtp_timestamp: u32,
        seq: u16,
        ssrc: u32,
        tick: u32,
        ev: &TelephoneEvent,
    ) -> Option<char> {
        // Non-key events are not part of any key press, so they must not disturb the state
        // that recognises the press's remaining packets.
        let digit = event_digit(ev.event)?;
        if self.newest.is_some_and(|(s, _)| s != ssrc) {
            self.reset();
        }
        let newest = self.newest.is_none_or(|(_, n)| seq_after(seq, n));
        if newest {
            self.newest = Some((ssrc, seq));
        }
        let long_after = |heard: u32| tick.wrapping_sub(heard) as i32 >= REPRESS_TICKS as i32;

        if let Some(cur) = &mut self.current
            && cur.timestamp == rtp_timestamp
        {
            let again = cur.ended && ((newest && !ev.end) || long_after(cur.heard));
            cur.heard = tick;
            if again {
                cur.ended = ev.end;
                return Some(digit);
            }
            cur.ended |= ev.end;
            return None;
        }
        if let Some(entry) = self
            .recent
            .iter_mut()
            .flatten()
            .find(|(ts, _)| *ts == rtp_timestamp)
            && !newest
            && !long_after(entry.1)
        {
            entry.1 = tick;
            return None;
        }
        let continues_current = self.current.is_some_and(|cur| {
            // A key held past the 16-bit duration limit goes on as a new segment stamped
            // exactly where the previous one stopped, and the previous one never ended.
            !cur.ended
                && cur.event == ev.event
                && rtp_timestamp == cur.timestamp.wrapping_add(MAX_SEGMENT)
        });
        // The event that was current is remembered with its last packet's tick.
        if let Some(cur) = self.current {
            self.remember(cur.timestamp, cur.heard);
        }
        self.remember(rtp_timestamp, tick);
        self.current = Some(Current {
            timestamp: rtp_timestamp,
            event: ev.event,
            ended: ev.end,
            heard: tick,
        });
        if continues_current { None } else { Some(digit) }
    }

    fn remember(&mut self, timestamp: u32, tick: u32) {
        if let Some(entry) = self
            .recent
            .iter_mut()
            .flatten()
            .find(|(ts, _)| *ts == timestamp)
        {
            entry.1 = tick;
            return;
        }
        self.recent[self.next] = Some((timestamp, tick));
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

    /// A sender: each packet gets the next sequence number.
    #[derive(Default)]
    struct Wire {
        seq: u16,
        /// The tick packets arrive in; tests move it on for a later press.
        tick: u32,
    }

    impl Wire {
        fn one(&mut self, d: &mut DigitDeduper, ts: u32, p: &TelephoneEvent) -> Option<char> {
            self.seq = self.seq.wrapping_add(1);
            d.on_event(ts, self.seq, 7, self.tick, p)
        }

        fn feed(&mut self, d: &mut DigitDeduper, ts: u32, packets: &[TelephoneEvent]) -> String {
            packets.iter().filter_map(|p| self.one(d, ts, p)).collect()
        }
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
        let mut w = Wire::default();
        assert_eq!(w.feed(&mut d, 1000, &press(5, 6)), "5");
        // Updates and end packets delayed in the network arrive after the end: the same press.
        for (i, p) in press(5, 2).iter().enumerate() {
            assert_eq!(d.on_event(1000, 2 + i as u16, 7, 0, p), None);
        }
    }

    /// A replayed capture stamps every press of a key alike; its sequence numbers run on, so
    /// each press counts, while the end's own repeats never do.
    #[test]
    fn the_same_stamp_sent_again_after_the_end_is_a_new_press() {
        let mut d = DigitDeduper::new();
        let mut w = Wire::default();
        assert_eq!(w.feed(&mut d, 1000, &press(3, 4)), "3");
        assert_eq!(w.feed(&mut d, 1000, &press(3, 4)), "3");
        assert_eq!(w.feed(&mut d, 1000, &press(3, 2)), "3");
        // Audio packets between the end's repeats do not make them presses.
        let mut p = press(4, 2).into_iter();
        let mut got = String::new();
        for e in p.by_ref() {
            got.extend(w.one(&mut d, 9000, &e));
            w.seq = w.seq.wrapping_add(2);
        }
        assert_eq!(got, "4");
        // A new SSRC starts over, whatever its sequence numbers.
        assert_eq!(d.on_event(9000, 5, 8, 0, &ev(4, false, 160)), Some('4'));
    }

    /// A capture replayed as it is repeats sequence numbers too: what tells the second press
    /// from a copy is that it comes long after the first ended.
    #[test]
    fn a_replayed_capture_counts_once_per_replay() {
        let mut d = DigitDeduper::new();
        let capture = press(1, 6);
        let play = |d: &mut DigitDeduper, tick: u32| -> String {
            capture
                .iter()
                .enumerate()
                .filter_map(|(i, p)| {
                    d.on_event(13280, 7984 + i.min(7) as u16, 7, tick + i as u32, p)
                })
                .collect()
        };
        assert_eq!(play(&mut d, 0), "1");
        assert_eq!(
            play(&mut d, 2),
            "",
            "copies a moment later are the same press"
        );
        assert_eq!(play(&mut d, 100), "1", "two seconds later: a new press");
        assert_eq!(play(&mut d, 200), "1");
    }

    #[test]
    fn three_end_packets_alone_give_one_digit() {
        let mut d = DigitDeduper::new();
        let mut w = Wire::default();
        let ends = [ev(3, true, 800); 3];
        assert_eq!(w.feed(&mut d, 4000, &ends), "3");
    }

    #[test]
    fn lost_start_packets() {
        let mut d = DigitDeduper::new();
        let mut w = Wire::default();
        // Only a late update and the ends made it through.
        let p = press(9, 5);
        assert_eq!(w.feed(&mut d, 7000, &p[4..]), "9");
    }

    #[test]
    fn same_digit_twice_is_two_presses() {
        let mut d = DigitDeduper::new();
        let mut w = Wire::default();
        assert_eq!(w.feed(&mut d, 1000, &press(1, 3)), "1");
        assert_eq!(w.feed(&mut d, 2600, &press(1, 3)), "1");
        // Even when the second press is seen only through its end packets.
        assert_eq!(w.feed(&mut d, 4200, &[ev(1, true, 480); 3]), "1");
    }

    #[test]
    fn a_sequence_of_keys() {
        let mut d = DigitDeduper::new();
        let mut w = Wire::default();
        let mut got = String::new();
        for (i, key) in "12*#A0".chars().enumerate() {
            let code = digit_event(key).unwrap();
            got += &w.feed(&mut d, 10_000 + 1600 * i as u32, &press(code, 4));
        }
        assert_eq!(got, "12*#A0");
    }

    #[test]
    fn interleaved_garbage_and_other_events() {
        let mut d = DigitDeduper::new();
        let mut w = Wire::default();
        let mut got = String::new();
        for (i, p) in press(7, 4).iter().enumerate() {
            if let Some(c) = w.one(&mut d, 500, p) {
                got.push(c);
            }
            // A flash-hook event and unparsable payloads between every packet.
            assert_eq!(
                w.one(&mut d, 9999 + i as u32, &ev(16, i % 2 == 0, 80)),
                None
            );
            assert_eq!(parse(&[0xFF, 0x00][..]), None);
        }
        assert_eq!(got, "7");
        assert_eq!(w.feed(&mut d, 2100, &press(7, 1)), "7");
    }

    #[test]
    fn late_duplicate_of_an_earlier_press() {
        let mut d = DigitDeduper::new();
        let mut w = Wire::default();
        assert_eq!(w.feed(&mut d, 1000, &press(2, 3)), "2");
        assert_eq!(w.feed(&mut d, 2000, &press(4, 3)[..2]), "4");
        // A reordered end packet of the first press shows up during the second.
        assert_eq!(d.on_event(1000, 4, 7, 0, &ev(2, true, 640)), None);
        assert_eq!(w.feed(&mut d, 2000, &press(4, 3)[2..]), "");
    }

    #[test]
    fn long_press_split_into_segments_is_one_digit() {
        let mut d = DigitDeduper::new();
        let mut w = Wire::default();
        let ts = u32::MAX - 100; // the segment boundary also wraps the timestamp
        assert_eq!(w.one(&mut d, ts, &ev(0, false, 160)), Some('0'));
        assert_eq!(w.one(&mut d, ts, &ev(0, false, u16::MAX)), None);
        let ts2 = ts.wrapping_add(MAX_SEGMENT);
        assert_eq!(w.one(&mut d, ts2, &ev(0, false, 160)), None);
        assert_eq!(w.one(&mut d, ts2, &ev(0, true, 4000)), None);
        // Once that press ended, the same key is a new press.
        assert_eq!(
            w.one(&mut d, ts2.wrapping_add(5000), &ev(0, false, 160)),
            Some('0')
        );
    }

    proptest::proptest! {
        /// Whatever came before, copies of packets already seen (delayed in the network, so
        /// bearing their old sequence numbers) never count as presses, as long as their
        /// events are among the last HISTORY remembered.
        #[test]
        fn delayed_copies_never_count(
            packets in proptest::collection::vec(
                (0u32..HISTORY as u32, proptest::prelude::any::<[u8; 4]>()),
                0..200,
            ),
            copies in proptest::collection::vec(proptest::prelude::any::<proptest::sample::Index>(), 0..50),
        ) {
            let mut d = DigitDeduper::new();
            let sent: Vec<_> = packets
                .iter()
                .enumerate()
                .filter_map(|(i, (ts, bytes))| Some((ts * 1000, i as u16, parse(bytes)?)))
                .collect();
            for (ts, seq, e) in &sent {
                d.on_event(*ts, *seq, 7, 0, e);
            }
            if sent.is_empty() {
                return Ok(());
            }
            for c in copies {
                let (ts, seq, e) = sent[c.index(sent.len())];
                proptest::prop_assert_eq!(d.on_event(ts, seq, 7, 0, &e), None);
            }
        }
    }

    #[test]
    fn reset_forgets_history() {
        let mut d = DigitDeduper::new();
        let mut w = Wire::default();
        assert_eq!(w.feed(&mut d, 1000, &press(6, 1)), "6");
        d.reset();
        assert_eq!(w.feed(&mut d, 1000, &press(6, 1)), "6");
    }

    #[test]
    fn history_is_bounded() {
        let mut d = DigitDeduper::new();
        let mut w = Wire::default();
        for i in 0..HISTORY as u32 + 1 {
            assert_eq!(w.one(&mut d, i * 1000, &ev(8, true, 400)), Some('8'));
        }
        // Late copies: the oldest has been forgotten; only the recent ones are suppressed.
        for i in 1..HISTORY as u32 + 1 {
            assert_eq!(
                d.on_event(i * 1000, i as u16, 7, 0, &ev(8, true, 400)),
                None
            );
        }
        assert_eq!(d.on_event(0, 0, 7, 0, &ev(8, true, 400)), Some('8'));
    }
}
