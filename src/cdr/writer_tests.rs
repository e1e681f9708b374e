use super::super::record::{AgentStateKind, Disposition, HangupBy};
use super::*;

fn rec(n: u32) -> CdrItem {
    CdrItem::Call(CdrRecord {
        id: format!("{n:032x}"),
        sip_call_id: format!("call-{n}@test"),
        caller: "100".into(),
        dialled: "200".into(),
        start_ms: 1_700_000_000_000 + i64::from(n),
        answer_ms: None,
        end_ms: 1_700_000_001_000 + i64::from(n),
        flow: None,
        ivr_path: vec![],
        digits: String::new(),
        disposition: Disposition::Failed,
        hangup_by: HangupBy::None,
        sip_code: 404,
        end_reason: "no_route".into(),
        language: None,
        survey: Vec::new(),
        recordings: Vec::new(),
        ..Default::default()
    })
}

fn state(n: u32) -> CdrItem {
    CdrItem::AgentState(AgentStateRecord {
        id: format!("s{n}"),
        agent: "a1001".into(),
        state: AgentStateKind::NotReady,
        reason: Some("lunch".into()),
        start_ms: 1_700_000_000_000 + i64::from(n),
    })
}

fn sink_with_capacity(capacity: usize) -> (CdrSink, mpsc::Receiver<CdrItem>) {
    let (tx, rx) = mpsc::channel(capacity);
    let sink = CdrSink {
        tx,
        overflow: VecDeque::new(),
        overflow_warned: false,
    };
    (sink, rx)
}

#[test]
fn sink_keeps_order_across_the_overflow() {
    let (mut sink, mut rx) = sink_with_capacity(3);
    for n in 0..10 {
        sink.submit(rec(n));
    }
    assert_eq!(sink.pending(), 7);
    let mut seen = Vec::new();
    while seen.len() < 10 {
        while let Ok(r) = rx.try_recv() {
            seen.push(r);
        }
        sink.pump();
    }
    assert_eq!(sink.pending(), 0);
    assert_eq!(seen, (0..10).map(rec).collect::<Vec<_>>());
}

#[test]
fn a_new_record_never_overtakes_held_ones() {
    let (mut sink, mut rx) = sink_with_capacity(1);
    sink.submit(rec(0));
    sink.submit(rec(1));
    assert_eq!(rx.try_recv().ok(), Some(rec(0)));
    // Room for one: the held record goes first, the new one is held.
    sink.submit(rec(2));
    assert_eq!(sink.pending(), 1);
    // The channel still holds rec(1), so close has nowhere to put rec(2).
    assert_eq!(sink.close(), vec![rec(2)]);
    assert_eq!(rx.try_recv().ok(), Some(rec(1)));
}

#[test]
fn close_returns_what_a_closed_writer_never_took() {
    let (mut sink, rx) = sink_with_capacity(8);
    drop(rx);
    sink.submit(rec(0));
    sink.submit(rec(1));
    assert_eq!(sink.pending(), 2);
    assert_eq!(sink.close(), vec![rec(0), rec(1)]);
}

#[test]
fn spool_lines_of_calls_are_plain_records_and_agent_states_are_tagged() {
    let CdrItem::Call(call) = rec(1) else {
        unreachable!()
    };
    let line = rec(1).to_spool_line().expect("serialise");
    assert_eq!(line, serde_json::to_string(&call).expect("serialise"));
    let line = state(2).to_spool_line().expect("serialise");
    assert!(line.starts_with(r#"{"agent_state":{"id":"s2""#), "{line}");
    assert_eq!(
        CdrItem::from_spool_line(line.as_bytes()).expect("parse"),
        state(2)
    );
    assert!(CdrItem::from_spool_line(br#"{"agent_state":{"id":"x"}}"#).is_err());
}

#[test]
fn a_journal_replays_finished_calls_and_ends_calls_cut_by_a_crash() {
    let open = |n: u32| {
        let CdrItem::Call(mut r) = rec(n) else {
            unreachable!()
        };
        r.end_ms = r.start_ms;
        r.end_reason = CRASH_END_REASON.into();
        CdrItem::Open(r)
    };
    let line = open(5).to_spool_line().expect("serialise");
    assert!(line.starts_with(r#"{"open":{"id":"#), "{line}");
    assert_eq!(CdrItem::from_spool_line(line.as_bytes()).unwrap(), open(5));
    let crash = 1_700_000_050_000;
    let items = vec![open(1), open(2), state(3), rec(1), open(2), open(4)];
    let replayed = replay(items, Some(crash));
    let ids: Vec<String> = replayed
        .iter()
        .map(|i| match i {
            CdrItem::Call(r) => {
                format!("call {} {}", r.id.trim_start_matches('0'), r.end_reason)
            }
            CdrItem::AgentState(s) => format!("state {}", s.id),
            CdrItem::AgentTime(t) => format!("time {}", t.id),
            CdrItem::Open(_) => "open".into(),
        })
        .collect();
    assert_eq!(
        ids,
        [
            "call 2 server_crash",
            "state s3",
            "call 1 no_route",
            "call 4 server_crash"
        ],
        "finished calls as they were, each open one once"
    );
    let CdrItem::Call(cut) = &replayed[0] else {
        unreachable!()
    };
    assert_eq!((cut.end_ms, cut.disposition), (crash, Disposition::Failed));
    // A clock that says the crash came before the call started: never a negative length.
    let CdrItem::Call(cut) = &replay(vec![open(7)], Some(0))[0] else {
        unreachable!()
    };
    assert_eq!(cut.end_ms, cut.start_ms);
}

#[test]
fn config_debug_hides_the_password() {
    let config = CdrWriterConfig::new("postgres://cdr:hunter2@db/hotline", "/tmp/spool");
    let text = format!("{config:?}");
    assert!(!text.contains("hunter2"), "{text}");
    assert!(text.contains("cdr:***@db"), "{text}");
}
