//! `queues.toml`: each queue's skills and their widening, strategy, timers, limits, rules
//! and announcements, and whether anyone defined can serve it.

use super::*;

pub(super) fn read_queues(sink: &mut Sink, files: &mut AcdFiles, agents_read: bool) {
    let Some(doc) = parse(sink, sink.src.text) else {
        return;
    };
    let top = Table::new(doc.get_ref(), doc.span(), "queues.toml");
    let queues = top.table("queues", sink);
    top.finish(sink);
    let Some(queues) = queues else {
        return;
    };
    for (name, value) in queues.entries() {
        if !name
            .v
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
            || name.v.is_empty()
        {
            sink.error(
                &name.span,
                format!("queue name {:?} must be letters, digits, - and _", name.v),
            );
        }
        let DeValue::Table(t) = value.get_ref() else {
            sink.error(
                &value.span(),
                format!(
                    "queue {:?} must be a table, not {}",
                    name.v,
                    kind_of(value.get_ref())
                ),
            );
            continue;
        };
        let t = Table::new(t, value.span(), format!("queue {:?}", name.v));
        let errors_before = sink.error_count();
        let queue = read_queue(sink, &name, &t, files, agents_read);
        t.finish(sink);
        if agents_read && sink.error_count() == errors_before && !servable(&queue, &files.config) {
            sink.out.warnings.push(Warning {
                at: sink.src.locate(&name.span),
                message: format!(
                    "no agent can serve queue {:?} (none is a member with the skills it needs): its callers wait until they time out",
                    name.v
                ),
            });
        }
        files.config.queues.push(queue);
    }
}

pub(super) fn read_queue(
    sink: &mut Sink,
    name: &Sp<String>,
    t: &Table,
    files: &mut AcdFiles,
    agents_read: bool,
) -> QueueDef {
    let config = &files.config;
    let strategy = keyword(sink, t, "strategy", &STRATEGIES).unwrap_or(Strategy::LongestIdle);
    let mut skills = Vec::new();
    if let Some(v) = t.get("skills") {
        match v.get_ref() {
            DeValue::Table(tbl) => {
                let tbl = Table::new(tbl, v.span(), "`skills`");
                for (skill, level) in tbl.entries() {
                    if let Some(min_level) = level_value(sink, &skill.v, level) {
                        skills.push(SkillNeed {
                            skill: skill.v,
                            min_level,
                        });
                    }
                }
            }
            DeValue::Array(_) | DeValue::String(_) => {
                for s in t.strings("skills", sink).unwrap_or_default() {
                    skills.push(SkillNeed {
                        skill: s.v,
                        min_level: 1,
                    });
                }
            }
            other => sink.error(
                &v.span(),
                format!(
                    "`skills` is a table of minimum levels like {{ billing = 5 }} or a list of names, not {}",
                    kind_of(other)
                ),
            ),
        }
    }
    let mut widening: Vec<Widening> = Vec::new();
    if let Some(items) = t.array("widening", sink) {
        for item in items {
            let DeValue::Table(w) = item.get_ref() else {
                sink.error(
                    &item.span(),
                    "each widening step is a table: { after = \"30s\", min_level = 2 }",
                );
                continue;
            };
            let w = Table::new(w, item.span(), "a widening step");
            let after = duration_opt(sink, &w, "after", Duration::from_secs(1));
            let level = w.int("min_level", 1..=10, sink);
            for key in ["after", "min_level"] {
                if !w.has(key) {
                    sink.error(&item.span(), format!("a widening step needs `{key}`"));
                }
            }
            w.finish(sink);
            let (Some(after), Some(level)) = (after, level) else {
                continue;
            };
            let min_level = level.v as u8;
            if let Some(prev) = widening.last() {
                if after <= prev.after {
                    sink.error(
                        &item.span(),
                        "widening steps come in order: each `after` later than the one before",
                    );
                }
                if min_level >= prev.min_level {
                    sink.error(
                        &level.span,
                        format!(
                            "a widening step lowers the level: {min_level} is not below the step before ({})",
                            prev.min_level
                        ),
                    );
                }
            } else if let Some(top) = skills.iter().map(|s| s.min_level).max()
                && min_level >= top
            {
                sink.error(
                    &level.span,
                    format!(
                        "a widening step lowers the level: {min_level} is not below the queue's skill levels (at most {top})"
                    ),
                );
            }
            widening.push(Widening { after, min_level });
        }
        if !widening.is_empty() && skills.is_empty() {
            sink.out.warnings.push(Warning {
                at: sink
                    .src
                    .locate(&t.key_span("widening").unwrap_or(t.span.clone())),
                message: format!(
                    "queue {:?} needs no skills, so `widening` has nothing to lower",
                    name.v
                ),
            });
        }
    }
    let agents = t.strings("agents", sink).unwrap_or_default();
    for a in agents.iter().filter(|_| agents_read) {
        if config.agent(&a.v).is_none() {
            let hint = suggest(&a.v, config.agents.iter().map(|a| a.id.as_str()));
            sink.error(&a.span, format!("unknown agent {:?}{hint}", a.v));
        }
    }
    let teams = t.strings("teams", sink).unwrap_or_default();
    let known_teams: Vec<&str> = config
        .agents
        .iter()
        .filter_map(|a| a.team.as_deref())
        .collect();
    for team in teams.iter().filter(|_| agents_read) {
        if !known_teams.contains(&team.v.as_str()) {
            let hint = suggest(&team.v, known_teams.iter().copied());
            sink.error(
                &team.span,
                format!("unknown team {:?}: no agent has it{hint}", team.v),
            );
        }
    }
    let one_s = Duration::from_secs(1);
    let ring_timeout = duration_opt(sink, t, "ring_timeout", one_s).unwrap_or(DEFAULT_RING_TIMEOUT);
    let max_wait = duration_opt(sink, t, "max_wait", one_s).unwrap_or(DEFAULT_MAX_WAIT);
    let max_length = t.int("max_length", 1..=100_000, sink).map(|n| n.v as u32);
    let wrap_up = duration_opt(sink, t, "wrap_up", Duration::ZERO).unwrap_or(DEFAULT_WRAP_UP);
    let weight = count(sink, t, "weight", 100, 1);
    let when_empty = keyword(sink, t, "when_empty", &EMPTY_RULES).unwrap_or(EmptyRule::RefuseNew);
    let max_misses = count(sink, t, "max_misses", 100, DEFAULT_MAX_MISSES);
    let busy_rest = duration_opt(sink, t, "busy_rest", Duration::ZERO).unwrap_or(DEFAULT_BUSY_REST);
    let sticky_wait = duration_opt(sink, t, "sticky_wait", Duration::ZERO).unwrap_or_default();
    let sticky_days = count(sink, t, "sticky_days", 3650, DEFAULT_STICKY_DAYS);
    let music = t.str("music", sink).and_then(|m| {
        if m.v.is_empty() || m.v.contains("..") || m.v.starts_with('/') || m.v.contains('\\') {
            sink.error(&m.span, format!("bad prompt name {:?}", m.v));
            return None;
        }
        files.music.push((m.v.clone(), sink.src.locate(&m.span)));
        Some(m.v)
    });
    let announcements = t.table("announcements", sink).and_then(|a| {
        files.announce.push(sink.src.locate(&a.span));
        let a = a.relabel("the `announcements` table");
        let every = duration_opt(sink, &a, "every", Duration::from_secs(10));
        if every.is_none() && !a.has("every") {
            sink.error(
                &a.span,
                "`announcements` needs `every`, e.g. every = \"60s\"",
            );
        }
        let position = a.bool("position", sink).is_none_or(|b| b.v);
        let wait = a.bool("wait", sink).is_some_and(|b| b.v);
        a.finish(sink);
        Some(Announcements {
            every: every?,
            position,
            wait,
        })
    });
    let record = t.bool("record", sink).is_some_and(|b| b.v);
    QueueDef {
        name: name.v.clone(),
        strategy,
        skills,
        widening,
        agents: agents.into_iter().map(|a| a.v).collect(),
        teams: teams.into_iter().map(|t| t.v).collect(),
        ring_timeout,
        max_wait,
        max_length,
        wrap_up,
        weight,
        when_empty,
        max_misses,
        busy_rest,
        sticky_wait,
        sticky_days,
        music,
        announcements,
        record,
    }
}

/// Whether some agent is a member of the queue with every skill it needs, at the lowest
/// level its widening reaches.
fn servable(q: &QueueDef, config: &AcdConfig) -> bool {
    let floor = q.widening.last().map(|w| w.min_level);
    config.agents.iter().any(|a| {
        let member = (q.agents.is_empty() && q.teams.is_empty())
            || q.agents.contains(&a.id)
            || a.team.as_ref().is_some_and(|t| q.teams.contains(t));
        member
            && q.skills.iter().all(|need| {
                let min = floor.map_or(need.min_level, |f| f.min(need.min_level));
                a.skill_level(&need.skill).is_some_and(|l| l >= min)
            })
    })
}

// --- passwords ---
