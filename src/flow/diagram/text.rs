//! The diagram as text for other tools: Graphviz DOT and Mermaid. Both lay the graph out
//! themselves, so these only name things, escape them, and pick shapes and colours.

use std::collections::BTreeSet;
use std::fmt::Write;

use super::{Diagram, DiagramNode, Family, family, links, palette};

const FAMILIES: [(Family, &str); 8] = [
    (Family::Input, "input"),
    (Family::Decision, "decision"),
    (Family::Media, "media"),
    (Family::Queue, "queue"),
    (Family::Subflow, "subflow"),
    (Family::Data, "data"),
    (Family::Exit, "exit"),
    (Family::Other, "other"),
];

fn family_name(f: Family) -> &'static str {
    FAMILIES
        .iter()
        .find(|(g, _)| *g == f)
        .map_or("other", |(_, n)| n)
}

/// Names made unique by a numbered suffix, in node order, avoiding `reserved`.
fn unique(names: impl Iterator<Item = String>, reserved: &str, sep: &str) -> Vec<String> {
    let mut used: BTreeSet<String> = BTreeSet::from([reserved.to_string()]);
    names
        .map(|base| {
            let mut id = base.clone();
            let mut k = 2;
            while used.contains(&id) {
                id = format!("{base}{sep}{k}");
                k += 1;
            }
            used.insert(id.clone());
            id
        })
        .collect()
}

fn second_line(node: &DiagramNode) -> String {
    match (node.kind.trim(), node.detail.trim()) {
        (k, "") => k.to_string(),
        ("", d) => d.to_string(),
        (k, d) => format!("{k} · {d}"),
    }
}

/// Inside a DOT double-quoted string. Backslashes are doubled because Graphviz reads `\n`,
/// `\l`, `\N` and friends in labels.
fn dot_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            c if c.is_control() => out.push(' '),
            c => out.push(c),
        }
    }
    out
}

fn dot_shape(node: &DiagramNode) -> (&'static str, &'static str) {
    match family(node) {
        Family::Input | Family::Media | Family::Other => ("box", "rounded,filled"),
        Family::Decision => ("diamond", "filled"),
        Family::Queue => ("hexagon", "filled"),
        Family::Subflow => ("component", "filled"),
        Family::Data => ("parallelogram", "filled"),
        Family::Exit if node.kind.trim().eq_ignore_ascii_case("hangup") => {
            ("doublecircle", "filled")
        }
        Family::Exit => ("doubleoctagon", "filled"),
    }
}

pub fn to_dot(d: &Diagram) -> String {
    const START: &str = "__start";
    let ids = unique(d.nodes.iter().map(|n| n.name.clone()), START, "~");
    let title = dot_escape(&d.title);
    let mut s = String::new();
    let _ = writeln!(s, "digraph \"{title}\" {{");
    let _ = writeln!(
        s,
        "  graph [label=\"{title}\", labelloc=\"t\", fontname=\"Helvetica\"];"
    );
    s.push_str("  node [fontname=\"Helvetica\", fontsize=\"11\"];\n");
    s.push_str("  edge [fontname=\"Helvetica\", fontsize=\"10\"];\n");
    for (i, node) in d.nodes.iter().enumerate() {
        let (shape, style) = dot_shape(node);
        let (fill, stroke) = palette(family(node));
        let label = match second_line(node) {
            sub if sub.is_empty() => dot_escape(&node.name),
            sub => format!("{}\\n{}", dot_escape(&node.name), dot_escape(&sub)),
        };
        let pen = if i == d.start { "3" } else { "1" };
        let _ = writeln!(
            s,
            "  \"{}\" [label=\"{label}\", shape=\"{shape}\", style=\"{style}\", fillcolor=\"{fill}\", color=\"{stroke}\", penwidth=\"{pen}\"];",
            dot_escape(&ids[i])
        );
    }
    if let Some(start) = ids.get(d.start) {
        let _ = writeln!(
            s,
            "  \"{START}\" [shape=\"point\", width=\"0.15\", label=\"\"];"
        );
        let _ = writeln!(s, "  \"{START}\" -> \"{}\";", dot_escape(start));
    }
    for l in links(d) {
        let (from, to) = (dot_escape(&ids[l.from]), dot_escape(&ids[l.to]));
        if l.label.is_empty() {
            let _ = writeln!(s, "  \"{from}\" -> \"{to}\";");
        } else {
            let _ = writeln!(
                s,
                "  \"{from}\" -> \"{to}\" [label=\"{}\"];",
                dot_escape(&l.label)
            );
        }
    }
    s.push_str("}\n");
    s
}

/// Words Mermaid reads as syntax when used as a node id.
const MERMAID_WORDS: &[&str] = &[
    "end",
    "graph",
    "flowchart",
    "subgraph",
    "class",
    "classdef",
    "style",
    "linkstyle",
    "click",
    "direction",
    "call",
    "href",
];

fn mermaid_id(name: &str) -> String {
    let id: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect();
    // A leading letter keeps ids from reading as numbers. Ids starting with `o` or `x` are
    // safe because every arrow is written with spaces round it: only `--oB` or `--xB`
    // would read as a circle or cross arrow head.
    let plain = id.starts_with(|c: char| c.is_ascii_alphabetic());
    if plain && !MERMAID_WORDS.contains(&id.to_ascii_lowercase().as_str()) {
        id
    } else {
        format!("n_{id}")
    }
}

/// Inside a Mermaid quoted label: quotes and anything Mermaid or the HTML it renders into
/// might read as syntax become `#name;` / `#code;` entities.
fn mermaid_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '"' => out.push_str("#quot;"),
            '#' => out.push_str("#35;"),
            '&' => out.push_str("#amp;"),
            '<' => out.push_str("#lt;"),
            '>' => out.push_str("#gt;"),
            '|' => out.push_str("#124;"),
            ';' => out.push_str("#59;"),
            '`' => out.push_str("#96;"),
            c if c.is_control() => out.push(' '),
            c => out.push(c),
        }
    }
    out
}

fn mermaid_shape(node: &DiagramNode) -> (&'static str, &'static str) {
    match family(node) {
        Family::Input | Family::Other => ("[", "]"),
        Family::Media => ("(", ")"),
        Family::Decision => ("{", "}"),
        Family::Queue => ("{{", "}}"),
        Family::Subflow => ("[[", "]]"),
        Family::Data => ("[(", ")]"),
        Family::Exit => ("([", "])"),
    }
}

pub fn to_mermaid(d: &Diagram) -> String {
    const START: &str = "hl_start";
    let ids = unique(d.nodes.iter().map(|n| mermaid_id(&n.name)), START, "_");
    let mut s = String::new();
    if !d.title.trim().is_empty() {
        let title: String = d
            .title
            .chars()
            .flat_map(|c| match c {
                '"' => vec!['\\', '"'],
                '\\' => vec!['\\', '\\'],
                c if c.is_control() => vec![' '],
                c => vec![c],
            })
            .collect();
        let _ = write!(s, "---\ntitle: \"{title}\"\n---\n");
    }
    s.push_str("flowchart TD\n");
    for (i, node) in d.nodes.iter().enumerate() {
        let (open, close) = mermaid_shape(node);
        let name = mermaid_escape(&node.name);
        let label = match second_line(node) {
            sub if sub.is_empty() => name,
            sub => format!("<b>{name}</b><br/>{}", mermaid_escape(&sub)),
        };
        let _ = writeln!(s, "    {}{open}\"{label}\"{close}", ids[i]);
    }
    if let Some(start) = ids.get(d.start) {
        let _ = writeln!(s, "    {START}((\"start\")) --> {start}");
    }
    for l in links(d) {
        let (from, to) = (&ids[l.from], &ids[l.to]);
        if l.label.is_empty() {
            let _ = writeln!(s, "    {from} --> {to}");
        } else {
            let _ = writeln!(s, "    {from} -->|\"{}\"| {to}", mermaid_escape(&l.label));
        }
    }
    for (f, name) in FAMILIES {
        let members: Vec<&str> = d
            .nodes
            .iter()
            .zip(&ids)
            .filter(|(n, _)| family(n) == f)
            .map(|(_, id)| id.as_str())
            .collect();
        if !members.is_empty() {
            let (fill, stroke) = palette(f);
            let _ = writeln!(
                s,
                "    classDef {name} fill:{fill},stroke:{stroke},color:#0f172a"
            );
            let _ = writeln!(s, "    class {} {}", members.join(","), family_name(f));
        }
    }
    if let Some(start) = ids.get(d.start) {
        s.push_str("    classDef start stroke-width:3px\n");
        let _ = writeln!(s, "    class {start} start");
    }
    s
}

#[cfg(test)]
mod tests {
    use super::super::samples::{
        assert_dot_strings_closed, assert_mermaid_clean, chain, edge, node,
    };
    use super::*;

    fn hostile() -> Diagram {
        let mut d = chain(4);
        d.title = "say \"hi\"\\now".into();
        d.nodes[0].name = "main \"menu\"\n[1]".into();
        d.nodes[1].name = "主菜单".into();
        d.nodes[2].name = "a-b".into();
        d.nodes[3].name = "a_b".into();
        d.nodes[1].detail = "x; y | <z> #1".into();
        d.edges[0].label = "\"*\"".into();
        d.edges[1].label = "a|b".into();
        d
    }

    #[test]
    fn dot_quotes_and_escapes_names() {
        let dot = to_dot(&hostile());
        assert_dot_strings_closed(&dot);
        assert!(dot.starts_with("digraph \"say \\\"hi\\\"\\\\now\" {\n"));
        assert!(dot.contains(r#""main \"menu\"\n[1]" [label="main \"menu\"\n[1]\nplay""#));
        assert!(dot.contains("\"主菜单\" [label=\"主菜单\\nplay · x; y | <z> #1\""));
        assert!(dot.contains(r#""main \"menu\"\n[1]" -> "主菜单" [label="\"*\""];"#));
        assert!(dot.contains("\"__start\" -> \"main \\\"menu\\\"\\n[1]\";"));
        assert!(dot.contains("penwidth=\"3\""));
    }

    #[test]
    fn dot_shapes_by_kind_and_unique_ids() {
        let d = Diagram {
            nodes: vec![
                node("m", "menu"),
                node("s", "schedule"),
                node("h", "hangup"),
                node("m", "transfer"),
            ],
            edges: vec![edge(0, 1, ""), edge(1, 2, "open"), edge(1, 3, "closed")],
            ..Default::default()
        };
        let dot = to_dot(&d);
        assert!(dot.contains("\"m\" [label=\"m\\nmenu\", shape=\"box\""));
        assert!(dot.contains("\"s\" [label=\"s\\nschedule\", shape=\"diamond\""));
        assert!(dot.contains("shape=\"doublecircle\""));
        assert!(dot.contains("\"m~2\" [label=\"m\\ntransfer\", shape=\"doubleoctagon\""));
        assert!(dot.contains("\"s\" -> \"m~2\" [label=\"closed\"];"));
    }

    #[test]
    fn mermaid_ids_are_sanitised_and_unique() {
        let m = to_mermaid(&hostile());
        assert_mermaid_clean(&m);
        assert!(m.starts_with("---\ntitle: \"say \\\"hi\\\"\\\\now\"\n---\nflowchart TD\n"));
        assert!(m.contains("    main__menu___1_(\"<b>main #quot;menu#quot; [1]</b><br/>play\")\n"));
        assert!(
            m.contains("    n____(\"<b>主菜单</b><br/>play · x#59; y #124; #lt;z#gt; #35;1\")\n")
        );
        assert!(
            m.contains("    a_b(\"<b>a-b</b><br/>play\")\n    a_b_2(\"<b>a_b</b><br/>play\")\n")
        );
        assert!(m.contains("    main__menu___1_ -->|\"#quot;*#quot;\"| n____\n"));
        assert!(m.contains("n____ -->|\"a#124;b\"| a_b\n"));
        assert!(m.contains("    hl_start((\"start\")) --> main__menu___1_\n"));
        assert!(m.contains("    class main__menu___1_ start\n"));
    }

    #[test]
    fn mermaid_avoids_keywords_and_shapes_by_kind() {
        let d = Diagram {
            nodes: vec![
                node("end", "hangup"),
                node("1st", "schedule"),
                node("ok", "queue"),
                node("hl_start", "x"),
            ],
            edges: vec![edge(1, 0, "closed"), edge(1, 2, "open")],
            start: 1,
            ..Default::default()
        };
        let m = to_mermaid(&d);
        assert_mermaid_clean(&m);
        assert!(m.starts_with("flowchart TD\n    n_end([\"<b>end</b><br/>hangup\"])\n    n_1st{\"<b>1st</b><br/>schedule\"}\n"));
        assert!(m.contains("    ok{{\"<b>ok</b><br/>queue\"}}\n"));
        assert!(m.contains("    n_1st -->|\"open\"| ok\n"));
        assert!(m.contains("    hl_start_2[\"<b>hl_start</b><br/>x\"]\n"));
        assert!(m.contains("    n_1st -->|\"closed\"| n_end\n"));
    }

    #[test]
    fn empty_diagram_as_text() {
        let d = Diagram::default();
        assert_eq!(to_mermaid(&d), "flowchart TD\n");
        let dot = to_dot(&d);
        assert_dot_strings_closed(&dot);
        assert!(!dot.contains("__start"));
    }
}
