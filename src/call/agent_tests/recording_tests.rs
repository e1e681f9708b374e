//! Recording decided per caller by the flow, over the queue's own setting.

use super::*;

fn flow_with_record(record: &str) -> String {
    FLOW.replace(
        "queue = \"help\"\n",
        &format!("queue = \"help\"\nrecord = {record}\n"),
    )
}

fn recorded_bridges(n: &Net) -> usize {
    n.engine
        .media
        .commands
        .iter()
        .filter(|c| matches!(c, MediaCommand::RecordBridge { .. }))
        .count()
}

fn answered_net(flow: &str, queue_extra: &str) -> Net {
    let mut n = Net::with_acd(
        flow,
        Some((&agents_toml(), &queues_toml("longest-idle", queue_extra))),
        &ADDRS,
    );
    assert_eq!(n.register(A1, "1001", "pw1001", 300), 200);
    n.login("1001");
    queued_caller(&mut n);
    let c = n.incoming(A1)[0];
    n.answer(A1, c);
    n
}

#[test]
fn the_flow_can_record_a_caller_the_queue_does_not_and_the_other_way_round() {
    let n = answered_net(&flow_with_record("\"{caller_consents}\"").replace(
        "start = \"agent\"",
        "start = \"consent\"\n\n[nodes.consent]\ntype = \"set\"\nvars = { caller_consents = \"'yes'\" }\nnext = \"agent\"",
    ), "");
    assert_eq!(recorded_bridges(&n), 1, "recorded for this caller");
    let n = answered_net(&flow_with_record("false"), "record = true");
    assert_eq!(recorded_bridges(&n), 0, "the flow said no for this caller");
    let n = answered_net(FLOW, "record = true");
    assert_eq!(
        recorded_bridges(&n),
        1,
        "the queue decides when the flow says nothing"
    );
    let n = answered_net(FLOW, "");
    assert_eq!(recorded_bridges(&n), 0);
}
