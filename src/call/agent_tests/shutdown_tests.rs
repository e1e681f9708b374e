//! Shutdown with agents' phones in every state: the exit comes within the grace.

use super::*;

const B: usize = 2;

#[test]
fn shutdown_does_not_wait_for_phones_that_are_gone() {
    let mut n = ready_net("ring-all", "");
    // Both agents' phones vanish after registering: offers to them are never answered, and
    // an INVITE nobody answers is a 32 s client transaction.
    n.dead = vec![n.phones[A1].addr, n.phones[B].addr];
    queued_caller(&mut n);
    n.advance(Duration::from_secs(1));
    assert!(n.engine.ua.pending_requests() > 0, "offers out, unanswered");
    n.engine.begin_shutdown(n.now);
    // The grace (10 s here), then two seconds for the last BYEs and CANCELs.
    n.advance(Duration::from_secs(12) + Duration::from_millis(100));
    assert!(
        n.engine.drained(),
        "the exit waits for nobody once the grace is over ({} requests still open)",
        n.engine.ua.pending_requests()
    );
    assert_eq!(n.records().len(), 1, "the caller's CDR went out first");
}
