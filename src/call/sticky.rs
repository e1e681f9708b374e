//! Who served each caller last, for sticky routing (the first-responder rule): a returning
//! caller is offered first to that agent. Kept in memory and bounded, so the look-up never
//! waits on the database; the runtime seeds it from the CDRs at start.

use std::collections::{HashMap, VecDeque};

use crate::acd::AcdConfig;

/// Callers remembered at most; the oldest are forgotten first.
const CAPACITY: usize = 200_000;
const DAY_MS: i64 = 86_400_000;

#[derive(Default)]
pub(super) struct StickyMemory {
    last: HashMap<String, (String, i64)>,
    /// Insertion order with the time, so an entry overwritten later is not evicted early.
    order: VecDeque<(String, i64)>,
}

impl StickyMemory {
    pub fn remember(&mut self, caller: &str, agent: &str, wall_ms: i64) {
        if caller.is_empty() {
            return;
        }
        self.last
            .insert(caller.to_string(), (agent.to_string(), wall_ms));
        self.order.push_back((caller.to_string(), wall_ms));
        while self.order.len() > CAPACITY {
            if let Some((old, at)) = self.order.pop_front()
                && self.last.get(&old).is_some_and(|(_, t)| *t == at)
            {
                self.last.remove(&old);
            }
        }
    }

    /// The agent to offer `caller` to first in `queue`, if the queue routes returning callers
    /// and they called within its window.
    pub fn last_agent(
        &self,
        caller: &str,
        wall_ms: i64,
        queue: &str,
        acd: &AcdConfig,
    ) -> Option<String> {
        let q = acd.queue(queue)?;
        if q.sticky_wait.is_zero() {
            return None;
        }
        let (agent, at) = self.last.get(caller)?;
        (wall_ms - at <= i64::from(q.sticky_days) * DAY_MS).then(|| agent.clone())
    }

    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.last.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memory_is_bounded_and_keeps_the_newest() {
        let mut m = StickyMemory::default();
        for i in 0..CAPACITY + 10 {
            m.remember(&i.to_string(), "a", i as i64);
        }
        assert_eq!(m.len(), CAPACITY);
        assert!(!m.last.contains_key("0"));
        assert!(m.last.contains_key(&(CAPACITY + 9).to_string()));
        // A caller remembered again is not evicted by their first entry.
        let mut m = StickyMemory::default();
        m.remember("x", "a", 0);
        for i in 0..CAPACITY - 1 {
            m.remember(&i.to_string(), "b", 1);
        }
        m.remember("x", "c", 2);
        m.remember("y", "d", 3);
        assert_eq!(m.last.get("x").map(|(a, _)| a.as_str()), Some("c"));
    }
}
