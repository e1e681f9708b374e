//! ACD distribution throughput: 10,000 waiting callers in 100 queues, 2,000 agents (each in
//! 4 queues, 80 agents per queue). Agents cycle answer -> hang-up -> end wrap-up; each time
//! one becomes free the core picks their next caller across their queues, and a new caller
//! joins a random queue to keep the load. Prints distribution decisions (offers) per second.
//!
//! `cargo bench --bench acd` (or with `-- <decisions>`).

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

use hotline::acd::model::{
    AcdConfig, AgentDef, AgentEndpoint, Credentials, EmptyRule, QueueDef, Skill, SkillNeed,
    Strategy,
};
use hotline::acd::{Acd, AcdAction, AcdEvent, AgentId, CallerId};

const AGENTS: usize = 2_000;
const QUEUES: usize = 100;
const CALLERS: u64 = 10_000;

fn config() -> AcdConfig {
    let agents = (0..AGENTS)
        .map(|i| AgentDef {
            id: format!("agent{i}"),
            name: format!("Agent {i}"),
            extension: format!("{}", 1000 + i),
            credentials: Credentials::default(),
            pin_sha256: None,
            endpoint: AgentEndpoint::Registered,
            skills: (0..10)
                .map(|k| Skill {
                    name: format!("s{k}"),
                    level: 1 + ((i * 3 + k * 7) % 10) as u8,
                })
                .collect(),
            team: Some(format!("t{}", i % 50)),
            wrap_up: None,
            auto_login: false,
        })
        .collect();
    let strategies = [
        Strategy::LongestIdle,
        Strategy::RoundRobin,
        Strategy::FewestCalls,
        Strategy::SkillWeighted,
    ];
    let queues = (0..QUEUES)
        .map(|j| QueueDef {
            name: format!("q{j}"),
            strategy: strategies[j % strategies.len()],
            skills: vec![SkillNeed {
                skill: format!("s{}", j % 10),
                min_level: 1,
            }],
            widening: Vec::new(),
            agents: Vec::new(),
            teams: vec![format!("t{}", j % 50), format!("t{}", (j + 25) % 50)],
            ring_timeout: Duration::from_secs(20),
            max_wait: Duration::from_secs(3600),
            max_length: None,
            wrap_up: Duration::from_secs(30),
            weight: 1 + (j % 3) as u32,
            when_empty: EmptyRule::Wait,
            max_misses: 3,
            busy_rest: Duration::from_secs(30),
            sticky_wait: Duration::ZERO,
            sticky_days: 0,
            music: None,
            announcements: None,
            record: false,
        })
        .collect();
    AcdConfig {
        agents,
        queues,
        reasons: Vec::new(),
        dispositions: Vec::new(),
    }
}

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

fn enqueue(acd: &mut Acd, now: Instant, rng: &mut Rng, caller: u64) {
    let r = rng.next();
    acd.handle(
        now,
        AcdEvent::Enqueue {
            caller: CallerId(caller),
            queue: format!("q{}", r % QUEUES as u64),
            priority: if r.is_multiple_of(10) { 50 } else { 0 },
            skills: if r % 20 == 1 {
                vec!["s3".into()]
            } else {
                vec![]
            },
            sticky: None,
            sticky_for: None,
            max_wait: Duration::from_secs(3600),
        },
    );
}

fn drain(acd: &mut Acd, ringing: &mut VecDeque<(CallerId, AgentId)>) -> u64 {
    let mut offers = 0;
    while let Some(action) = acd.poll_action() {
        if let AcdAction::Offer { caller, agent } = action {
            ringing.push_back((caller, agent));
            offers += 1;
        }
    }
    offers
}

fn main() {
    let target: u64 = std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(300_000);
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let mut now = Instant::now();
    let mut acd = Acd::new(Arc::new(config()));
    for c in 0..CALLERS {
        enqueue(&mut acd, now, &mut rng, c);
    }
    let mut ringing = VecDeque::new();
    for i in 0..AGENTS {
        let agent = acd.agent_id(&format!("agent{i}")).unwrap();
        acd.handle(now, AcdEvent::Login { agent });
    }
    drain(&mut acd, &mut ringing);
    let waiting: usize = (0..QUEUES).map(|j| acd.waiting(&format!("q{j}"))).sum();
    println!(
        "set-up: {AGENTS} agents, {QUEUES} queues, {waiting} callers waiting, {} ringing",
        ringing.len()
    );

    let mut next_caller = CALLERS;
    let mut decisions = 0u64;
    let mut events = 0u64;
    let start = Instant::now();
    while decisions < target {
        let Some((caller, agent)) = ringing.pop_front() else {
            break;
        };
        now += Duration::from_millis(1);
        acd.handle(now, AcdEvent::OfferAnswered { caller, agent });
        enqueue(&mut acd, now, &mut rng, next_caller);
        next_caller += 1;
        acd.handle(now, AcdEvent::ConversationEnded { agent });
        acd.handle(now, AcdEvent::EndWrapUp { agent });
        if acd.poll_timeout().is_some_and(|t| t <= now) {
            acd.handle_timeout(now);
        }
        events += 4;
        decisions += drain(&mut acd, &mut ringing);
    }
    let elapsed = start.elapsed();
    let waiting: usize = (0..QUEUES).map(|j| acd.waiting(&format!("q{j}"))).sum();
    println!(
        "{decisions} decisions ({events} events) in {:.3} s: {:.0} decisions/s, {:.0} events/s; {waiting} callers waiting at the end",
        elapsed.as_secs_f64(),
        decisions as f64 / elapsed.as_secs_f64(),
        events as f64 / elapsed.as_secs_f64(),
    );
}
