//! A compiled flow as a diagram: one box per node, one arrow per exit, labelled the way
//! `NodeKind::exits` names them.

use super::{Diagram, DiagramEdge, DiagramNode};
use crate::flow::{FlowId, FlowSet, NodeKind, PromptItem, TransferTarget};

pub fn of_flow(set: &FlowSet, id: FlowId) -> Diagram {
    let flow = set.flow(id);
    let nodes = flow
        .nodes
        .iter()
        .map(|n| DiagramNode {
            name: n.name.clone(),
            kind: n.kind.type_name().to_string(),
            detail: detail(set, &n.kind),
            terminal: matches!(n.kind, NodeKind::Hangup | NodeKind::Transfer(_)),
        })
        .collect();
    let mut edges = Vec::new();
    for (i, n) in flow.nodes.iter().enumerate() {
        for (label, to) in n.kind.exits() {
            edges.push(DiagramEdge {
                from: i,
                to: to.0 as usize,
                label,
            });
        }
    }
    Diagram {
        title: format!("{} ({})", flow.name, flow.file.display()),
        nodes,
        edges,
        start: flow.start.0 as usize,
    }
}

/// One short line: what the node plays or where it leads outside the flow.
fn detail(set: &FlowSet, kind: &NodeKind) -> String {
    let prompts = |items: &[PromptItem]| {
        items
            .iter()
            .map(|p| match p {
                PromptItem::Prompt(id) => set.prompt_name(*id).to_string(),
                PromptItem::Say(how, _) => format!("<{how:?}>").to_lowercase(),
            })
            .collect::<Vec<_>>()
            .join(", ")
    };
    match kind {
        NodeKind::Play { prompts: p, .. } | NodeKind::Announcement { prompts: p, .. } => prompts(p),
        NodeKind::Menu(m) => prompts(&m.prompts),
        NodeKind::Collect(c) => {
            format!("{} ({}-{} digits)", c.variable, c.min_digits, c.max_digits)
        }
        NodeKind::Subflow { flow, .. } => format!("flow {}", set.flow(*flow).name),
        NodeKind::Language { language, .. } => language.clone(),
        NodeKind::Queue(q) => format!("queue {}", q.queue.text),
        NodeKind::Transfer(t) => match &t.target {
            TransferTarget::Uri(_) => "to a SIP URI".into(),
            TransferTarget::Number(_) => "to a number".into(),
        },
        NodeKind::Survey(s) => format!("{} question(s)", s.questions.len()),
        NodeKind::Record(r) => r.variable.clone().unwrap_or_default(),
        NodeKind::Lookup(_) => "back end".into(),
        _ => String::new(),
    }
}
