//! Flow diagrams: a flow reduced to boxes and labelled arrows, written out as Graphviz DOT,
//! as Mermaid, or as an SVG laid out here, so an admin needs no other program to see one.
//!
//! The SVG layout is layered: `layout` breaks cycles and assigns layers, `order` orders
//! each layer to cut crossings, `columns` picks x positions, `place` turns all that into
//! boxes and arrow paths, and `svg` writes the markup.

mod columns;
mod from_flow;
mod layout;
mod measure;
mod order;
mod place;
#[cfg(test)]
mod samples;
mod svg;
mod text;

use std::collections::BTreeMap;

pub use from_flow::of_flow;
pub use svg::to_svg;
pub use text::{to_dot, to_mermaid};

/// A flow as boxes and labelled arrows, independent of how the flow was written.
#[derive(Debug, Clone, Default)]
pub struct Diagram {
    pub title: String,
    pub nodes: Vec<DiagramNode>,
    pub edges: Vec<DiagramEdge>,
    /// Index into `nodes` of the start node.
    pub start: usize,
}

#[derive(Debug, Clone)]
pub struct DiagramNode {
    /// Node name, e.g. "main_menu".
    pub name: String,
    /// Node type, e.g. "menu", "play", "hangup", "queue", "transfer", "subflow", "schedule".
    pub kind: String,
    /// One short line, e.g. prompt names or a queue name; may be empty.
    pub detail: String,
    /// Ends the call (hangup) or leaves the flow (transfer); drawn distinctly.
    pub terminal: bool,
}

#[derive(Debug, Clone)]
pub struct DiagramEdge {
    pub from: usize,
    pub to: usize,
    /// The choice or outcome that takes this arrow: "1", "timeout", "open", "ok"; empty for
    /// a plain "next".
    pub label: String,
}

/// One arrow per ordered pair of nodes. Parallel arrows would be drawn on top of each other
/// (and their labels too), so they are folded into one whose label lists every choice.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Link {
    pub from: usize,
    pub to: usize,
    pub label: String,
}

/// The diagram's arrows with out-of-range ends dropped and parallel arrows folded, in the
/// order their first arrow appears, so every output is the same for the same input.
fn links(d: &Diagram) -> Vec<Link> {
    let n = d.nodes.len();
    let mut index: BTreeMap<(usize, usize), usize> = BTreeMap::new();
    let mut labels: Vec<Vec<&str>> = Vec::new();
    let mut ends: Vec<(usize, usize)> = Vec::new();
    for e in &d.edges {
        if e.from >= n || e.to >= n {
            continue;
        }
        let i = *index.entry((e.from, e.to)).or_insert_with(|| {
            ends.push((e.from, e.to));
            labels.push(Vec::new());
            ends.len() - 1
        });
        let label = e.label.trim();
        if !labels[i].contains(&label) {
            labels[i].push(label);
        }
    }
    ends.into_iter()
        .zip(labels)
        .map(|((from, to), labels)| {
            // A plain "next" beside named outcomes must still show, or the arrow would read
            // as taken only on those outcomes.
            let label = if labels.iter().all(|l| l.is_empty()) {
                String::new()
            } else {
                labels
                    .iter()
                    .map(|l| if l.is_empty() { "next" } else { l })
                    .collect::<Vec<_>>()
                    .join(", ")
            };
            Link { from, to, label }
        })
        .collect()
}

/// Groups of node kinds drawn alike: one shape and one colour each, so a reader learns a
/// handful of looks rather than one per kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Family {
    /// Waits for the caller's keys.
    Input,
    /// Picks a way on by time or data.
    Decision,
    /// Plays or records audio.
    Media,
    /// Hands the caller to people.
    Queue,
    Subflow,
    /// Talks to something outside the call.
    Data,
    /// The call ends or leaves the flow here.
    Exit,
    Other,
}

fn family(node: &DiagramNode) -> Family {
    let kind = node.kind.trim().to_ascii_lowercase();
    if node.terminal || kind == "hangup" {
        return Family::Exit;
    }
    match kind.as_str() {
        "menu" | "collect" | "input" | "gather" => Family::Input,
        "schedule" | "branch" | "condition" | "if" | "switch" | "choose" | "time" => {
            Family::Decision
        }
        "play" | "say" | "record" | "survey" | "voicemail" | "announce" => Family::Media,
        "queue" | "transfer" | "dial" | "agent" => Family::Queue,
        "subflow" | "goto" | "call" | "include" => Family::Subflow,
        "lookup" | "http" | "webhook" | "api" | "set" | "script" | "fetch" => Family::Data,
        _ => Family::Other,
    }
}

/// Fill and stroke of each family's boxes, shared by every output so a flow looks the same
/// in each.
fn palette(f: Family) -> (&'static str, &'static str) {
    match f {
        Family::Input => ("#dbeafe", "#1d4ed8"),
        Family::Decision => ("#fef3c7", "#b45309"),
        Family::Media => ("#dcfce7", "#15803d"),
        Family::Queue => ("#fae8ff", "#a21caf"),
        Family::Subflow => ("#e0e7ff", "#4338ca"),
        Family::Data => ("#cffafe", "#0e7490"),
        Family::Exit => ("#fee2e2", "#b91c1c"),
        Family::Other => ("#f1f5f9", "#475569"),
    }
}

#[cfg(test)]
mod tests {
    use super::samples::{edge, node, random_diagram};
    use super::*;

    #[test]
    fn links_drop_bad_indices_and_fold_parallel_arrows() {
        let d = Diagram {
            nodes: vec![node("a", "menu"), node("b", "play")],
            edges: vec![
                edge(0, 1, "1"),
                edge(0, 7, "x"),
                edge(9, 0, ""),
                edge(0, 1, "2"),
                edge(0, 1, "1"),
                edge(1, 0, ""),
                edge(0, 1, ""),
            ],
            ..Default::default()
        };
        assert_eq!(
            links(&d),
            vec![
                Link {
                    from: 0,
                    to: 1,
                    label: "1, 2, next".into()
                },
                Link {
                    from: 1,
                    to: 0,
                    label: String::new()
                },
            ]
        );
    }

    #[test]
    fn families_by_kind_and_terminal_flag() {
        assert_eq!(family(&node("m", "menu")), Family::Input);
        assert_eq!(family(&node("s", "Schedule")), Family::Decision);
        assert_eq!(family(&node("t", "transfer")), Family::Exit);
        let mut q = node("q", "queue");
        assert_eq!(family(&q), Family::Queue);
        q.terminal = true;
        assert_eq!(family(&q), Family::Exit);
        assert_eq!(family(&node("z", "")), Family::Other);
    }

    #[test]
    fn random_diagrams_never_panic_and_stay_deterministic() {
        let mut rng = fastrand::Rng::with_seed(0x5eed);
        for _ in 0..60 {
            let d = random_diagram(&mut rng);
            let svg = to_svg(&d);
            samples::assert_well_formed(&svg);
            assert_eq!(svg, to_svg(&d), "same input, same bytes");
            let dot = to_dot(&d);
            assert!(dot.starts_with("digraph ") && dot.trim_end().ends_with('}'));
            samples::assert_dot_strings_closed(&dot);
            let mermaid = to_mermaid(&d);
            samples::assert_mermaid_clean(&mermaid);
        }
    }
}
