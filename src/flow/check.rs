//! Checks over the compiled graph: what an admin would otherwise find on a live call.
//! Errors: loops that can spin without ever waiting for the caller. Warnings: nodes nothing
//! leads to, variables read but never set, exits a caller can fall through.

use std::collections::HashSet;

use super::schema::{Diagnostics, FlowError, Warning, suggest};
use super::*;

pub fn analyse(set: &FlowSet, diags: &mut Diagnostics) {
    let assigned = assigned_variables(set);
    let called: HashSet<FlowId> = set
        .flows
        .iter()
        .flat_map(|f| f.nodes.iter())
        .filter_map(|n| match n.kind {
            NodeKind::Subflow { flow, .. } => Some(flow),
            _ => None,
        })
        .collect();
    recursive_subflows(set, diags);
    for (i, flow) in set.flows.iter().enumerate() {
        if flow.nodes.is_empty() {
            continue;
        }
        let id = FlowId(i as u32);
        unreachable_nodes(flow, diags);
        spin_loops(set, flow, diags);
        for node in &flow.nodes {
            unset_variables(node, &assigned, diags);
            fall_through_exits(node, diags);
            if matches!(node.kind, NodeKind::Return) && !called.contains(&id) {
                diags.warnings.push(Warning {
                    at: node.at.clone(),
                    message: format!(
                        "`return` in flow {:?}, which no subflow node calls: the call ends here",
                        flow.name
                    ),
                });
            }
        }
    }
}

/// A flow that calls itself through subflows: each call nests deeper until the call is cut
/// off. IVRs go back with `goto`, never by recursion, so any such cycle is an error.
fn recursive_subflows(set: &FlowSet, diags: &mut Diagnostics) {
    let calls: Vec<Vec<(usize, &Node)>> = set
        .flows
        .iter()
        .map(|f| {
            f.nodes
                .iter()
                .filter_map(|n| match n.kind {
                    NodeKind::Subflow { flow, .. } => Some((flow.0 as usize, n)),
                    _ => None,
                })
                .collect()
        })
        .collect();
    for start in 0..set.flows.len() {
        // Depth-first over flow calls, looking for a way back to `start`; one report each.
        let mut stack: Vec<Vec<usize>> = vec![vec![start]];
        let mut seen = vec![false; set.flows.len()];
        'search: while let Some(path) = stack.pop() {
            let f = *path.last().unwrap_or(&start);
            for (callee, node) in calls.get(f).into_iter().flatten() {
                if *callee == start {
                    let mut names: Vec<&str> =
                        path.iter().map(|i| set.flows[*i].name.as_str()).collect();
                    names.push(&set.flows[start].name);
                    diags.errors.push(FlowError::At {
                        at: node.at.clone(),
                        message: format!(
                            "flow {:?} calls itself through subflows ({}): use goto to go back",
                            set.flows[start].name,
                            names.join(" -> ")
                        ),
                    });
                    break 'search;
                }
                if *callee < seen.len() && !seen[*callee] {
                    seen[*callee] = true;
                    let mut p = path.clone();
                    p.push(*callee);
                    stack.push(p);
                }
            }
        }
    }
}

fn unreachable_nodes(flow: &Flow, diags: &mut Diagnostics) {
    let mut seen = vec![false; flow.nodes.len()];
    let mut stack = vec![flow.start];
    while let Some(n) = stack.pop() {
        let Some(s) = seen.get_mut(n.0 as usize) else {
            continue;
        };
        if std::mem::replace(s, true) {
            continue;
        }
        stack.extend(
            flow.nodes[n.0 as usize]
                .kind
                .exits()
                .into_iter()
                .map(|e| e.1),
        );
    }
    let start = &flow.nodes[flow.start.0 as usize].name;
    for (node, reached) in flow.nodes.iter().zip(seen) {
        if !reached {
            diags.warnings.push(Warning {
                at: node.at.clone(),
                message: format!(
                    "node {:?} is never reached from the start {start:?}",
                    node.name
                ),
            });
        }
    }
}

/// The exits a node may take at once, without a prompt, a key or a timer in between.
fn instant_exits(set: &FlowSet, kind: &NodeKind) -> Vec<NodeId> {
    match kind {
        NodeKind::Set { next, .. }
        | NodeKind::Label { next, .. }
        | NodeKind::Goto { next }
        | NodeKind::Language { next, .. }
        | NodeKind::Announcement { next, .. } => vec![*next],
        NodeKind::Play { prompts, next, .. } if prompts.is_empty() => vec![*next],
        NodeKind::Branch { .. } | NodeKind::Schedule { .. } => {
            kind.exits().into_iter().map(|e| e.1).collect()
        }
        // A cached answer comes back at once.
        NodeKind::Lookup(_) => kind.exits().into_iter().map(|e| e.1).collect(),
        _ => {
            let _ = set;
            Vec::new()
        }
    }
}

/// Cycles in the graph of instant exits: such a loop would run the call in circles without
/// ever waiting. One error per cycle found, naming its nodes.
fn spin_loops(set: &FlowSet, flow: &Flow, diags: &mut Diagnostics) {
    #[derive(Clone, Copy, PartialEq)]
    enum Mark {
        New,
        Open,
        Done,
    }
    let n = flow.nodes.len();
    let mut mark = vec![Mark::New; n];
    for root in 0..n {
        if mark[root] != Mark::New {
            continue;
        }
        // Iterative DFS: (node, next exit index); `path` mirrors the open nodes.
        let mut stack: Vec<(usize, usize)> = vec![(root, 0)];
        let mut path: Vec<usize> = vec![root];
        mark[root] = Mark::Open;
        while let Some(&mut (node, ref mut next)) = stack.last_mut() {
            let exits = instant_exits(set, &flow.nodes[node].kind);
            if *next < exits.len() {
                let to = exits[*next].0 as usize;
                *next += 1;
                if to >= n {
                    continue;
                }
                match mark[to] {
                    Mark::New => {
                        mark[to] = Mark::Open;
                        stack.push((to, 0));
                        path.push(to);
                    }
                    Mark::Open => {
                        let from = path.iter().position(|p| *p == to).unwrap_or(0);
                        let mut names: Vec<&str> = path[from..]
                            .iter()
                            .map(|i| flow.nodes[*i].name.as_str())
                            .collect();
                        names.push(&flow.nodes[to].name);
                        diags.errors.push(FlowError::At {
                            at: flow.nodes[to].at.clone(),
                            message: format!(
                                "{} can loop without waiting for the caller: put a prompt, a menu or a hangup on the way",
                                names.join(" -> ")
                            ),
                        });
                    }
                    Mark::Done => {}
                }
            } else {
                mark[node] = Mark::Done;
                stack.pop();
                path.pop();
            }
        }
    }
}

fn assigned_variables(set: &FlowSet) -> HashSet<String> {
    let mut vars = HashSet::new();
    for node in set.flows.iter().flat_map(|f| f.nodes.iter()) {
        match &node.kind {
            NodeKind::Collect(c) => {
                vars.insert(c.variable.clone());
            }
            NodeKind::Set { vars: v, .. } => vars.extend(v.iter().map(|(n, _)| n.clone())),
            NodeKind::Lookup(l) => vars.extend(l.result.iter().map(|(n, _)| n.clone())),
            NodeKind::Record(r) => vars.extend(r.variable.clone()),
            NodeKind::Survey(s) => vars.extend(s.questions.iter().map(|q| q.id.clone())),
            _ => {}
        }
    }
    vars
}

fn unset_variables(node: &Node, assigned: &HashSet<String>, diags: &mut Diagnostics) {
    // A branch's cases are reported at their own `when` lines.
    if let NodeKind::Branch {
        cases, when_sites, ..
    } = &node.kind
    {
        for ((e, _), at) in cases.iter().zip(when_sites) {
            let mut used = Vec::new();
            e.variables(&mut used);
            report_unset(&used, at, assigned, diags);
        }
        return;
    }
    let mut used = Vec::new();
    for list in node.kind.prompt_lists() {
        for item in list {
            if let PromptItem::Say(_, e) = item {
                e.variables(&mut used);
            }
        }
    }
    match &node.kind {
        NodeKind::Set { vars, .. } => vars.iter().for_each(|(_, e)| e.variables(&mut used)),
        NodeKind::Label { labels, .. } => labels.iter().for_each(|(_, t)| t.variables(&mut used)),
        NodeKind::Announcement { switch, .. } => switch.variables(&mut used),
        NodeKind::Lookup(l) => {
            l.url.variables(&mut used);
            l.body.iter().for_each(|(_, e)| e.variables(&mut used));
        }
        NodeKind::Transfer(t) => match &t.target {
            TransferTarget::Uri(t) | TransferTarget::Number(t) => t.variables(&mut used),
        },
        NodeKind::Queue(q) => {
            q.queue.template.variables(&mut used);
            q.priority.template.variables(&mut used);
            if let Some(r) = &q.record {
                r.template.variables(&mut used);
            }
            q.skills
                .iter()
                .for_each(|s| s.template.variables(&mut used));
        }
        _ => {}
    }
    report_unset(&used, &node.at, assigned, diags);
}

fn report_unset(used: &[&str], at: &Located, assigned: &HashSet<String>, diags: &mut Diagnostics) {
    let mut reported = HashSet::new();
    for &v in used {
        if !assigned.contains(v) && reported.insert(v) {
            let known = assigned
                .iter()
                .map(String::as_str)
                .chain(expr::Builtin::ALL.iter().map(|b| b.0));
            diags.warnings.push(Warning {
                at: at.clone(),
                message: format!(
                    "variable `{v}` is never set by any flow, so it reads as empty{} (text needs quotes: '{v}')",
                    suggest(v, known)
                ),
            });
        }
    }
}

fn fall_through_exits(node: &Node, diags: &mut Diagnostics) {
    let missing: Vec<&str> = match &node.kind {
        NodeKind::Queue(q) => [
            ("no_agents", q.no_agents.is_none()),
            ("on_timeout", q.on_timeout.is_none()),
            ("full", q.full.is_none()),
        ]
        .into_iter()
        .filter(|(_, m)| *m)
        .map(|(k, _)| k)
        .collect(),
        NodeKind::Lookup(l) if l.on_failure.is_none() => vec!["on_failure"],
        NodeKind::Transfer(t) if t.on_failure.is_none() => vec!["on_failure"],
        _ => Vec::new(),
    };
    if !missing.is_empty() {
        diags.warnings.push(Warning {
            at: node.at.clone(),
            message: format!(
                "{} node {:?} has no {}: a caller taking that way is hung up",
                node.kind.type_name(),
                node.name,
                missing
                    .iter()
                    .map(|m| format!("`{m}`"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        });
    }
}
