//! `/metrics`: the engine's snapshot and the CDR writer's state in the Prometheus text format
//! (OpenMetrics), through prometheus-client. Built afresh from the latest snapshot on each
//! scrape, so the engine never waits on a scraper.

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use std::sync::atomic::AtomicU64;

use crate::call::snapshot::Snapshot;
use crate::cdr::WriterStats;

pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

type Labels = Vec<(String, String)>;

pub fn render(snapshot: &Snapshot, cdr: &WriterStats) -> String {
    let mut registry = Registry::with_prefix("hotline");

    let gauge = |value: u64| {
        let g: Gauge = Gauge::default();
        g.set(i64::try_from(value).unwrap_or(i64::MAX));
        g
    };
    let counter = |value: u64| {
        let c: Counter = Counter::default();
        c.inc_by(value);
        c
    };
    registry.register(
        "active_calls",
        "Callers' calls in progress",
        gauge(snapshot.active_calls),
    );

    let waiting = Family::<Labels, Gauge>::default();
    let longest = Family::<Labels, Gauge<f64, AtomicU64>>::default();
    let logged_in = Family::<Labels, Gauge>::default();
    for q in &snapshot.queues {
        let labels = vec![("queue".to_string(), q.name.clone())];
        waiting
            .get_or_create(&labels)
            .set(i64::try_from(q.waiting).unwrap_or(i64::MAX));
        longest
            .get_or_create(&labels)
            .set(q.longest_wait.as_secs_f64());
        logged_in
            .get_or_create(&labels)
            .set(i64::try_from(q.agents_logged_in).unwrap_or(i64::MAX));
    }
    registry.register("queue_waiting", "Callers waiting in a queue", waiting);
    registry.register(
        "queue_longest_wait_seconds",
        "How long the longest-waiting caller of a queue has waited",
        longest,
    );
    registry.register(
        "queue_agents_logged_in",
        "Agents logged in to a queue",
        logged_in,
    );

    let agents = Family::<Labels, Gauge>::default();
    for (state, n) in &snapshot.agents {
        agents
            .get_or_create(&vec![("state".to_string(), (*state).to_string())])
            .set(i64::try_from(*n).unwrap_or(i64::MAX));
    }
    registry.register("agents", "Agents by state", agents);

    let t = snapshot.totals;
    registry.register("calls", "Calls ended since start", counter(t.calls));
    registry.register(
        "calls_offered",
        "Calls that reached a queue, since start",
        counter(t.offered),
    );
    registry.register(
        "calls_answered",
        "Calls an agent answered, since start",
        counter(t.answered),
    );
    registry.register(
        "calls_abandoned",
        "Calls abandoned while waiting in a queue, since start",
        counter(t.abandoned),
    );

    let m = snapshot.media;
    registry.register(
        "rtp_packets_received",
        "RTP packets received from phones and trunks (from the source each stream latched to), since start",
        counter(m.rtp_received),
    );
    registry.register(
        "rtp_packets_lost",
        "RTP packets those senders' sequence numbers say were lost on the way, since start",
        counter(m.rtp_lost),
    );
    registry.register(
        "media_late_ticks",
        "Media pacing ticks (20 ms) whose sending began more than 5 ms late, since start",
        counter(m.late_ticks),
    );
    registry.register(
        "media_skipped_ticks",
        "Media pacing ticks skipped after a stall of the media thread, since start",
        counter(m.skipped_ticks),
    );

    registry.register(
        "cdr_backlog",
        "Call records and agent states not yet in the database",
        gauge(cdr.backlog as u64),
    );
    registry.register(
        "cdr_database_down",
        "1 while the CDR database cannot be written",
        gauge(u64::from(cdr.outage)),
    );
    registry.register(
        "cdr_write_failures",
        "Failed attempts to write CDRs, since start",
        counter(cdr.failures),
    );

    let mut out = String::new();
    // Writing to a String cannot fail.
    let _ = encode(&mut out, &registry);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::call::snapshot::{QueueSnapshot, Totals};
    use std::time::Duration;

    #[test]
    fn the_snapshot_reads_as_prometheus_text() {
        let snapshot = Snapshot {
            active_calls: 7,
            queues: vec![QueueSnapshot {
                name: "billing".into(),
                waiting: 3,
                longest_wait: Duration::from_millis(42_500),
                agents_logged_in: 2,
            }],
            agents: vec![("available", 1), ("on_call", 2)],
            agent_list: Vec::new(),
            waiting: Vec::new(),
            reasons: Vec::new(),
            dispositions: Vec::new(),
            totals: Totals {
                calls: 10,
                offered: 6,
                answered: 4,
                abandoned: 1,
            },
            media: crate::call::MediaTotals {
                rtp_received: 990,
                rtp_lost: 10,
                late_ticks: 3,
                skipped_ticks: 1,
            },
        };
        let cdr = WriterStats {
            backlog: 5,
            outage: true,
            failures: 2,
            written: 0,
        };
        let text = render(&snapshot, &cdr);
        for line in [
            "hotline_active_calls 7",
            "hotline_queue_waiting{queue=\"billing\"} 3",
            "hotline_queue_longest_wait_seconds{queue=\"billing\"} 42.5",
            "hotline_agents{state=\"on_call\"} 2",
            "hotline_calls_offered_total 6",
            "hotline_calls_abandoned_total 1",
            "hotline_cdr_backlog 5",
            "hotline_rtp_packets_received_total 990",
            "hotline_rtp_packets_lost_total 10",
            "hotline_media_late_ticks_total 3",
            "hotline_media_skipped_ticks_total 1",
            "hotline_cdr_database_down 1",
            "# EOF",
        ] {
            assert!(text.contains(line), "{line}\n{text}");
        }
    }
}
