//! Replay: the engine and its UA draw every random number (tags, branches, Call-IDs, CSeq
//! starts, SDP session ids, record ids) from `EngineConfig::seed`, so the inputs of one run,
//! fed to a second engine with the same seed, give the same bytes out. Both engines live in
//! one thread: a draw left on the global `fastrand` generator would give the second engine
//! the numbers after the first one's, and these tests would fail.

use super::*;

/// One input the engine got, by when it came (from the run's start).
#[derive(Debug, Clone)]
enum Input {
    Sip(Vec<u8>),
    Media(MediaEvent),
    Tick,
}

/// What one run fed the engine and what the engine did.
#[derive(Default)]
struct Tape {
    inputs: Vec<(Duration, Input)>,
    /// Every datagram the engine sent, in order, with where to.
    sent: Vec<(SocketAddr, Vec<u8>)>,
    records: Vec<CdrRecord>,
    /// The media backend's commands, as text (they do not compare).
    media: Vec<String>,
}

/// The harness `T` with its engine rebuilt on `seed`.
fn harness(seed: u64) -> T {
    let mut t = T::new(10);
    let mut cfg = t.engine.cfg.clone();
    cfg.seed = seed;
    let catalog = Arc::clone(&t.engine.catalog);
    t.engine = Engine::new(
        cfg,
        catalog,
        Recorder::default(),
        (t.now, 1_700_000_000_000),
    );
    t
}

/// `T::pump` and `T::advance`, writing down each engine input and output on the way.
struct Recording {
    t: T,
    start: Instant,
    tape: Tape,
}

impl Recording {
    fn new(seed: u64) -> Recording {
        let t = harness(seed);
        Recording {
            start: t.now,
            t,
            tape: Tape::default(),
        }
    }

    fn at(&self) -> Duration {
        self.t.now - self.start
    }

    fn pump(&mut self) {
        loop {
            let mut moved = false;
            while let Some(x) = self.t.phone.poll_transmit() {
                moved = true;
                self.tape
                    .inputs
                    .push((self.at(), Input::Sip(x.data.clone())));
                self.t.engine.handle_sip(self.t.now, phone_peer(), &x.data);
            }
            while let Some(x) = self.t.engine.poll_transmit() {
                moved = true;
                self.tape.sent.push((x.to.addr, x.data.clone()));
                self.t
                    .phone
                    .handle_input(self.t.now, server_peer(), &x.data);
            }
            while let Some(e) = self.t.phone.poll_event() {
                self.t.events.push(e);
            }
            if !moved {
                return;
            }
        }
    }

    fn media(&mut self, event: MediaEvent) {
        self.tape
            .inputs
            .push((self.at(), Input::Media(event.clone())));
        self.t.engine.handle_media(self.t.now, event);
        self.pump();
    }

    fn advance(&mut self, d: Duration) {
        let end = self.t.now + d;
        loop {
            let next = [self.t.engine.poll_timeout(), self.t.phone.poll_timeout()]
                .into_iter()
                .flatten()
                .min();
            match next {
                Some(at) if at <= end => {
                    self.t.now = self.t.now.max(at);
                    self.tape.inputs.push((self.at(), Input::Tick));
                    self.t.engine.handle_timeout(self.t.now);
                    self.t.phone.handle_timeout(self.t.now);
                    self.pump();
                }
                _ => break,
            }
        }
        self.t.now = end;
    }

    /// A caller dials 100 (INVITE, 200, ACK), hears the welcome and the menu, waits, presses
    /// 1, and hotline hangs up (its BYE, with its own CSeq and branch); then the transactions
    /// run out on the clock.
    fn session(seed: u64) -> Tape {
        let mut r = Recording::new(seed);
        r.t.phone
            .invite(
                r.t.now,
                server_peer(),
                "5551234",
                "100",
                Some(OFFER.as_bytes().to_vec()),
            )
            .unwrap();
        r.pump();
        for _ in 0..2 {
            let (call, id) = r.t.last_play().expect("a prompt plays");
            r.media(MediaEvent::PlayDone { call, id });
        }
        r.advance(Duration::from_secs(2));
        let (call, _) = r.t.last_play().unwrap();
        r.media(MediaEvent::Digit { call, digit: '1' });
        r.advance(Duration::from_secs(40));
        r.tape.records = r.t.records();
        r.tape.media = media_log(&r.t.engine);
        r.tape
    }
}

fn media_log(engine: &Engine<Recorder>) -> Vec<String> {
    engine
        .media
        .commands
        .iter()
        .map(|c| format!("{c:?}"))
        .collect()
}

/// A fresh engine on `seed`, fed `inputs` at the same offsets, and nothing else.
fn replay(seed: u64, inputs: &[(Duration, Input)]) -> Tape {
    let mut t = harness(seed);
    let start = t.now;
    let mut sent = Vec::new();
    for (at, input) in inputs {
        let now = start + *at;
        match input {
            Input::Sip(data) => t.engine.handle_sip(now, phone_peer(), data),
            Input::Media(event) => t.engine.handle_media(now, event.clone()),
            Input::Tick => t.engine.handle_timeout(now),
        }
        while let Some(x) = t.engine.poll_transmit() {
            sent.push((x.to.addr, x.data));
        }
    }
    Tape {
        inputs: inputs.to_vec(),
        sent,
        records: t.records(),
        media: media_log(&t.engine),
    }
}

/// The first datagram the engine sent whose first line starts with `start`, as text.
fn first(tape: &Tape, start: &str) -> String {
    tape.sent
        .iter()
        .map(|(_, d)| String::from_utf8_lossy(d).into_owned())
        .find(|m| m.starts_with(start))
        .unwrap_or_else(|| panic!("no {start:?} sent"))
}

/// The first line of `message` that starts with `prefix` (a header name with its colon, or
/// an SDP field such as `o=`), ignoring case.
fn line(message: &str, prefix: &str) -> String {
    message
        .lines()
        .find(|l| l.to_ascii_lowercase().starts_with(prefix))
        .unwrap_or_else(|| panic!("no {prefix} in {message}"))
        .to_string()
}

fn record_ids(tape: &Tape) -> Vec<&str> {
    tape.records.iter().map(|r| r.id.as_str()).collect()
}

#[test]
fn a_recorded_session_replays_to_the_same_bytes_and_record_ids() {
    let recorded = Recording::session(42);
    // The session went as scripted, so the replay below covers every draw on the way: the
    // 200's To tag and SDP session id, hotline's BYE (branch, CSeq), the CDR's id.
    let bye = first(&recorded, "BYE ");
    assert!(line(&bye, "cseq:").ends_with(" BYE"));
    assert!(
        recorded
            .inputs
            .iter()
            .any(|(_, i)| matches!(i, Input::Tick))
    );
    assert_eq!(recorded.records.len(), 1);
    let r = &recorded.records[0];
    assert_eq!(
        (r.disposition, r.hangup_by, r.digits.as_str()),
        (Disposition::Completed, HangupBy::Hotline, "1")
    );

    let replayed = replay(42, &recorded.inputs);
    assert_eq!(replayed.sent.len(), recorded.sent.len());
    for (i, (a, b)) in recorded.sent.iter().zip(&replayed.sent).enumerate() {
        assert_eq!(
            a,
            b,
            "datagram {i} differs:\n{}\n---\n{}",
            String::from_utf8_lossy(&a.1),
            String::from_utf8_lossy(&b.1)
        );
    }
    assert_eq!(record_ids(&replayed), record_ids(&recorded));
    assert_eq!(replayed.records, recorded.records);
    assert_eq!(replayed.media, recorded.media);
}

#[test]
fn another_seed_gives_other_tags_session_ids_branches_and_record_ids() {
    let (a, b) = (Recording::session(42), Recording::session(43));
    let (ok_a, ok_b) = (first(&a, "SIP/2.0 200 "), first(&b, "SIP/2.0 200 "));
    assert_ne!(line(&ok_a, "to:"), line(&ok_b, "to:"), "To tags");
    assert_ne!(line(&ok_a, "o="), line(&ok_b, "o="), "SDP session ids");
    let (bye_a, bye_b) = (first(&a, "BYE "), first(&b, "BYE "));
    assert_ne!(line(&bye_a, "via:"), line(&bye_b, "via:"), "branches");
    assert_ne!(line(&bye_a, "cseq:"), line(&bye_b, "cseq:"), "CSeq starts");
    assert_eq!((a.records.len(), b.records.len()), (1, 1));
    assert_ne!(record_ids(&a), record_ids(&b));
    // The tape of seed 42 played to an engine on 43: the same INVITE, other answers.
    let crossed = replay(43, &a.inputs);
    assert_ne!(
        line(&first(&crossed, "SIP/2.0 200 "), "to:"),
        line(&ok_a, "to:")
    );
}
