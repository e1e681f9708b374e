//! Back-end look-ups seen from the engine, sans-IO: a result cache with a time to live, and
//! one request in flight per distinct look-up however many calls wait for it (a burst of
//! callers from one company asks the CRM once). The runtime makes the HTTP requests.

use std::collections::{HashMap, VecDeque};
use std::time::Instant;

use super::InteractionId;
use crate::flow::{LookupRequest, LookupResult, TaskId};

/// Past this many entries the expired ones are dropped, and if that is not enough the whole
/// cache: memory stays bounded whatever the callers do.
const MAX_CACHED: usize = 20_000;

/// Beyond its own timeout, how long a request may stay unanswered before it is sent again.
const STALE_AFTER: std::time::Duration = std::time::Duration::from_secs(5);

/// A request for the runtime to make.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LookupJob {
    pub request: LookupRequest,
}

#[derive(Default)]
pub struct Lookups {
    cache: HashMap<LookupRequest, (Instant, LookupResult)>,
    /// Calls waiting for a request in flight, and when it was sent.
    waiting: HashMap<LookupRequest, (Instant, Vec<(InteractionId, TaskId)>)>,
    jobs: VecDeque<LookupJob>,
}

impl Lookups {
    /// A call asks; a fresh cached answer is returned at once, otherwise the call waits.
    pub fn start(
        &mut self,
        now: Instant,
        call: InteractionId,
        id: TaskId,
        request: LookupRequest,
    ) -> Option<LookupResult> {
        if let Some((expires, result)) = self.cache.get(&request) {
            if *expires > now {
                return Some(result.clone());
            }
            self.cache.remove(&request);
        }
        // A request whose answer is long overdue (its task died) is sent again, so one lost
        // answer cannot make every later caller wait on it.
        let overdue = request.timeout + STALE_AFTER;
        let entry = self
            .waiting
            .entry(request.clone())
            .or_insert_with(|| (now, Vec::new()));
        if entry.1.is_empty() || now.saturating_duration_since(entry.0) > overdue {
            entry.0 = now;
            self.jobs.push_back(LookupJob { request });
        }
        entry.1.push((call, id));
        None
    }

    pub fn poll_job(&mut self) -> Option<LookupJob> {
        self.jobs.pop_front()
    }

    /// The answer arrived: the calls waiting for it. Failures are never cached, so the next
    /// caller tries again.
    pub fn complete(
        &mut self,
        now: Instant,
        request: &LookupRequest,
        result: &LookupResult,
    ) -> Vec<(InteractionId, TaskId)> {
        if !request.cache.is_zero() && !matches!(result, LookupResult::Failed(_)) {
            if self.cache.len() >= MAX_CACHED {
                self.cache.retain(|_, (expires, _)| *expires > now);
                if self.cache.len() >= MAX_CACHED {
                    self.cache.clear();
                }
            }
            self.cache
                .insert(request.clone(), (now + request.cache, result.clone()));
        }
        self.waiting
            .remove(request)
            .map(|w| w.1)
            .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::flow::Method;
    use std::time::Duration;

    fn req(url: &str, cache: u64) -> LookupRequest {
        LookupRequest {
            method: Method::Get,
            url: url.into(),
            shown_url: url.into(),
            body: None,
            timeout: Duration::from_secs(2),
            cache: Duration::from_secs(cache),
        }
    }

    fn call(n: u64) -> InteractionId {
        InteractionId(n)
    }

    #[test]
    fn one_request_in_flight_serves_every_waiting_call() {
        let mut l = Lookups::default();
        let t0 = Instant::now();
        assert_eq!(l.start(t0, call(1), TaskId(1), req("http://a/1", 60)), None);
        assert_eq!(l.start(t0, call(2), TaskId(7), req("http://a/1", 60)), None);
        assert_eq!(l.start(t0, call(3), TaskId(1), req("http://a/2", 60)), None);
        assert_eq!(l.poll_job().unwrap().request.url, "http://a/1");
        assert_eq!(l.poll_job().unwrap().request.url, "http://a/2");
        assert_eq!(
            l.poll_job(),
            None,
            "the second caller of a/1 shares the first request"
        );
        let ok = LookupResult::Ok(serde_json::json!({"name": "Li"}));
        let woken = l.complete(t0, &req("http://a/1", 60), &ok);
        assert_eq!(woken, vec![(call(1), TaskId(1)), (call(2), TaskId(7))]);
    }

    #[test]
    fn a_request_whose_answer_never_came_is_sent_again() {
        let mut l = Lookups::default();
        let t0 = Instant::now();
        l.start(t0, call(1), TaskId(1), req("http://a", 0));
        assert!(l.poll_job().is_some());
        l.start(
            t0 + Duration::from_secs(3),
            call(2),
            TaskId(1),
            req("http://a", 0),
        );
        assert!(l.poll_job().is_none(), "still in time: shared");
        l.start(
            t0 + Duration::from_secs(8),
            call(3),
            TaskId(1),
            req("http://a", 0),
        );
        assert!(l.poll_job().is_some(), "overdue: asked again");
    }

    #[test]
    fn answers_are_cached_for_their_ttl_and_failures_never() {
        let mut l = Lookups::default();
        let t0 = Instant::now();
        let ok = LookupResult::Ok(serde_json::json!(1));
        l.start(t0, call(1), TaskId(1), req("http://a", 60));
        l.complete(t0, &req("http://a", 60), &ok);
        let later = t0 + Duration::from_secs(59);
        assert_eq!(
            l.start(later, call(2), TaskId(1), req("http://a", 60)),
            Some(ok.clone())
        );
        let expired = t0 + Duration::from_secs(61);
        assert_eq!(
            l.start(expired, call(3), TaskId(1), req("http://a", 60)),
            None
        );
        assert!(l.poll_job().is_some());

        let failed = LookupResult::Failed("timeout".into());
        l.start(t0, call(4), TaskId(1), req("http://b", 60));
        l.complete(t0, &req("http://b", 60), &failed);
        assert_eq!(l.start(t0, call(5), TaskId(2), req("http://b", 60)), None);

        l.start(t0, call(6), TaskId(1), req("http://c", 0));
        l.complete(t0, &req("http://c", 0), &ok);
        assert_eq!(
            l.start(t0, call(7), TaskId(1), req("http://c", 0)),
            None,
            "no ttl, no cache"
        );
    }
}
