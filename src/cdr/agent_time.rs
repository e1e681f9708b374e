//! Agents' time per state, rolled up per quarter hour as it passes: the input of occupancy,
//! adherence and calls per agent hour. Summing state rows at report time would mean reading
//! every state change of the period (four or more per call); the roll-up is one row per
//! agent and quarter hour. Pure: state changes and the wall clock come in, rows go out.

use std::collections::{HashMap, VecDeque};

use super::record::{AgentStateKind, AgentTimeRecord};

/// A quarter hour. Every time zone in use is offset from UTC by whole quarter hours, so the
/// local half hours, hours and days a report asks for are each a run of whole cells.
pub const CELL_MS: i64 = 900_000;

/// The cell an instant falls in.
pub fn cell_of(ms: i64) -> i64 {
    ms.div_euclid(CELL_MS) * CELL_MS
}

#[derive(Debug)]
struct Open {
    team: Option<String>,
    state: AgentStateKind,
    /// Counted up to here.
    since_ms: i64,
    /// The cell `acc` belongs to.
    cell_ms: i64,
    acc: Acc,
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
struct Acc {
    available: i64,
    ringing: i64,
    on_call: i64,
    on_hold: i64,
    wrap_up: i64,
    not_ready: i64,
}

impl Acc {
    fn add(&mut self, state: AgentStateKind, ms: i64) {
        let slot = match state {
            AgentStateKind::LoggedOut => return,
            AgentStateKind::Available => &mut self.available,
            AgentStateKind::Ringing => &mut self.ringing,
            AgentStateKind::OnCall => &mut self.on_call,
            AgentStateKind::OnHold => &mut self.on_hold,
            AgentStateKind::WrapUp => &mut self.wrap_up,
            AgentStateKind::NotReady => &mut self.not_ready,
        };
        *slot += ms;
    }
}

/// Logged-in agents' open cells. Rows come out when a cell is over, when an agent logs out,
/// and on [`AgentTimeTracker::flush`] (shutdown); ids are left empty for the owner to fill.
#[derive(Debug, Default)]
pub struct AgentTimeTracker {
    open: HashMap<String, Open>,
    out: VecDeque<AgentTimeRecord>,
}

impl AgentTimeTracker {
    /// The agent is in `state` from `at_ms` on.
    pub fn change(&mut self, agent: &str, team: Option<&str>, state: AgentStateKind, at_ms: i64) {
        if let Some(open) = self.open.get_mut(agent) {
            advance(agent, open, at_ms, &mut self.out);
            open.state = state;
            open.team = team.map(str::to_owned);
        } else if state != AgentStateKind::LoggedOut {
            self.open.insert(
                agent.to_owned(),
                Open {
                    team: team.map(str::to_owned),
                    state,
                    since_ms: at_ms,
                    cell_ms: cell_of(at_ms),
                    acc: Acc::default(),
                },
            );
        }
        if state == AgentStateKind::LoggedOut
            && let Some(mut open) = self.open.remove(agent)
        {
            emit(agent, &mut open, &mut self.out);
        }
    }

    /// Closes the cells that ended by `now_ms`.
    pub fn tick(&mut self, now_ms: i64) {
        for (agent, open) in &mut self.open {
            if now_ms >= open.cell_ms + CELL_MS {
                advance(agent, open, now_ms, &mut self.out);
            }
        }
    }

    /// Everything counted so far goes out, the current cells too (the server is stopping).
    pub fn flush(&mut self, now_ms: i64) {
        for (agent, open) in &mut self.open {
            advance(agent, open, now_ms, &mut self.out);
            emit(agent, open, &mut self.out);
        }
    }

    /// When the next cell closes, if anyone is logged in.
    pub fn next_close(&self) -> Option<i64> {
        self.open.values().map(|o| o.cell_ms + CELL_MS).min()
    }

    pub fn poll(&mut self) -> Option<AgentTimeRecord> {
        self.out.pop_front()
    }
}

/// Counts the open state up to `to_ms`, closing each cell it passes. A clock that went
/// backwards counts nothing and restarts from the new time.
fn advance(agent: &str, open: &mut Open, to_ms: i64, out: &mut VecDeque<AgentTimeRecord>) {
    if to_ms < open.since_ms {
        emit(agent, open, out);
        open.since_ms = to_ms;
        open.cell_ms = cell_of(to_ms);
        return;
    }
    while open.since_ms < to_ms {
        let cell = cell_of(open.since_ms);
        if cell != open.cell_ms {
            emit(agent, open, out);
            open.cell_ms = cell;
        }
        let end = to_ms.min(cell + CELL_MS);
        open.acc.add(open.state, end - open.since_ms);
        open.since_ms = end;
        if end == cell + CELL_MS {
            emit(agent, open, out);
            open.cell_ms = end;
        }
    }
}

fn emit(agent: &str, open: &mut Open, out: &mut VecDeque<AgentTimeRecord>) {
    let acc = std::mem::take(&mut open.acc);
    if acc == Acc::default() {
        return;
    }
    out.push_back(AgentTimeRecord {
        id: String::new(),
        agent: agent.to_owned(),
        team: open.team.clone(),
        cell_ms: open.cell_ms,
        available_ms: acc.available,
        ringing_ms: acc.ringing,
        on_call_ms: acc.on_call,
        on_hold_ms: acc.on_hold,
        wrap_up_ms: acc.wrap_up,
        not_ready_ms: acc.not_ready,
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use AgentStateKind::*;

    const T0: i64 = 1_767_225_600_000; // 2026-01-01 00:00 UTC, a cell boundary
    const MIN: i64 = 60_000;

    fn drain(t: &mut AgentTimeTracker) -> Vec<AgentTimeRecord> {
        std::iter::from_fn(|| t.poll()).collect()
    }

    #[test]
    fn time_is_split_at_quarter_hours_and_each_cell_comes_out_when_it_ends() {
        let mut t = AgentTimeTracker::default();
        t.change("a", Some("red"), Available, T0 + 10 * MIN);
        t.change("a", Some("red"), Ringing, T0 + 14 * MIN);
        t.change("a", Some("red"), OnCall, T0 + 14 * MIN + 30_000);
        assert!(drain(&mut t).is_empty(), "the first cell is still open");
        assert_eq!(t.next_close(), Some(T0 + 15 * MIN));
        t.tick(T0 + 15 * MIN);
        let rows = drain(&mut t);
        assert_eq!(rows.len(), 1);
        assert_eq!(rows[0].cell_ms, T0);
        assert_eq!(rows[0].team.as_deref(), Some("red"));
        assert_eq!(
            (rows[0].available_ms, rows[0].ringing_ms, rows[0].on_call_ms),
            (4 * MIN, 30_000, 30_000)
        );
        // A call over two more cells, then wrap-up and logout.
        t.change("a", Some("red"), WrapUp, T0 + 40 * MIN);
        t.change("a", Some("red"), LoggedOut, T0 + 41 * MIN);
        let rows = drain(&mut t);
        let cells: Vec<_> = rows.iter().map(|r| (r.cell_ms - T0) / MIN).collect();
        assert_eq!(cells, vec![15, 30]);
        assert_eq!(rows[0].on_call_ms, 15 * MIN);
        assert_eq!((rows[1].on_call_ms, rows[1].wrap_up_ms), (10 * MIN, MIN));
        assert_eq!(t.next_close(), None, "logged out: nothing open");
        t.tick(T0 + 100 * MIN);
        assert!(drain(&mut t).is_empty());
    }

    #[test]
    fn a_long_state_fills_every_cell_it_spans_and_rows_add_up_to_the_time() {
        let mut t = AgentTimeTracker::default();
        t.change("a", None, NotReady, T0 + 5 * MIN);
        t.tick(T0 + 65 * MIN);
        t.change("a", None, Available, T0 + 70 * MIN);
        t.flush(T0 + 80 * MIN);
        let rows = drain(&mut t);
        let not_ready: i64 = rows.iter().map(|r| r.not_ready_ms).sum();
        let available: i64 = rows.iter().map(|r| r.available_ms).sum();
        assert_eq!((not_ready, available), (65 * MIN, 10 * MIN));
        assert!(rows.iter().all(|r| r.cell_ms % CELL_MS == 0));
        let total: i64 = rows.iter().map(|r| r.not_ready_ms + r.available_ms).sum();
        assert_eq!(total, 75 * MIN);
        // After a flush the agent is still counted, from the flush on.
        t.change("a", None, LoggedOut, T0 + 85 * MIN);
        let rows = drain(&mut t);
        assert_eq!(rows.len(), 1);
        assert_eq!(rows[0].available_ms, 5 * MIN);
    }

    #[test]
    fn logged_out_time_and_a_clock_going_back_count_nothing() {
        let mut t = AgentTimeTracker::default();
        t.change("a", None, LoggedOut, T0);
        assert_eq!(t.next_close(), None);
        t.change("a", None, Available, T0 + MIN);
        t.change("a", None, OnCall, T0 - 10 * MIN);
        t.change("a", None, LoggedOut, T0 - 9 * MIN);
        let total: i64 = drain(&mut t)
            .iter()
            .map(|r| r.available_ms + r.on_call_ms)
            .sum();
        assert_eq!(total, MIN);
    }
}
