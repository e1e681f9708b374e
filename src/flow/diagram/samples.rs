//! Diagrams and checks the tests share: small builders, a realistic IVR, a large menu
//! tree, random hostile diagrams, and minimal checks that SVG, DOT and Mermaid output is
//! well formed.

use super::{Diagram, DiagramEdge, DiagramNode};

pub(super) fn node(name: &str, kind: &str) -> DiagramNode {
    DiagramNode {
        name: name.to_string(),
        kind: kind.to_string(),
        detail: String::new(),
        terminal: kind == "hangup" || kind == "transfer",
    }
}

pub(super) fn edge(from: usize, to: usize, label: &str) -> DiagramEdge {
    DiagramEdge {
        from,
        to,
        label: label.to_string(),
    }
}

/// A chain a -> b -> c -> ... of `n` plain nodes.
pub(super) fn chain(n: usize) -> Diagram {
    Diagram {
        title: "chain".into(),
        nodes: (0..n).map(|i| node(&format!("n{i}"), "play")).collect(),
        edges: (1..n).map(|i| edge(i - 1, i, "")).collect(),
        start: 0,
    }
}

const HOSTILE: &[&str] = &[
    "a",
    "main_menu",
    "\"quoted\"",
    "it's",
    "<b>",
    "a&b",
    "x\ny",
    "[br]",
    "{c}",
    "主菜单",
    "|pipe|",
    "#hash;",
    "\\back",
    "end",
    "0digit",
    "",
    " ",
    "\u{0}nul",
    "\t",
    "é",
    "👋",
    "--> x",
    "%%",
    "a;b",
];

/// Random diagrams with hostile text and some arrows pointing nowhere.
pub(super) fn random_diagram(rng: &mut fastrand::Rng) -> Diagram {
    let n = rng.usize(0..80);
    let pick = |rng: &mut fastrand::Rng| {
        let mut s = String::new();
        for _ in 0..rng.usize(1..4) {
            s.push_str(HOSTILE[rng.usize(..HOSTILE.len())]);
        }
        s
    };
    let kinds = [
        "menu", "play", "hangup", "queue", "transfer", "subflow", "schedule", "x",
    ];
    let nodes = (0..n)
        .map(|_| DiagramNode {
            name: pick(rng),
            kind: kinds[rng.usize(..kinds.len())].to_string(),
            detail: if rng.bool() { pick(rng) } else { String::new() },
            terminal: rng.u8(..) < 40,
        })
        .collect();
    let edge_count = rng.usize(0..(n * 3 + 5));
    let mut edges = Vec::new();
    for _ in 0..edge_count {
        let end = |rng: &mut fastrand::Rng| {
            if rng.u8(..) < 10 {
                rng.usize(n..n + 10)
            } else {
                rng.usize(..n.max(1))
            }
        };
        let (from, to) = (end(rng), end(rng));
        let label = if rng.bool() { String::new() } else { pick(rng) };
        edges.push(DiagramEdge { from, to, label });
    }
    let start = if rng.u8(..) < 20 {
        n + 3
    } else {
        rng.usize(..n.max(1))
    };
    Diagram {
        title: pick(rng),
        nodes,
        edges,
        start,
    }
}

/// Balanced tags, quoted attributes without `<`, only the five predefined entities or
/// character references, no raw `>` or control characters in text, one root.
pub(super) fn assert_well_formed(xml: &str) {
    assert!(
        xml.chars().all(|c| c == '\n' || !c.is_control()),
        "control character in output"
    );
    let mut stack: Vec<&str> = Vec::new();
    let mut roots = 0;
    let mut rest = xml;
    while !rest.is_empty() {
        let Some(lt) = rest.find('<') else {
            assert!(
                stack.is_empty() && rest.trim().is_empty(),
                "text after root: {rest:?}"
            );
            break;
        };
        let text = &rest[..lt];
        assert!(
            !stack.is_empty() || text.trim().is_empty(),
            "text outside root: {text:?}"
        );
        check_text(text);
        let gt = rest[lt..].find('>').expect("unclosed tag") + lt;
        let tag = &rest[lt + 1..gt];
        rest = &rest[gt + 1..];
        if let Some(name) = tag.strip_prefix('/') {
            assert_eq!(stack.pop(), Some(name.trim()), "mismatched </{name}>");
            continue;
        }
        let (body, closed) = match tag.strip_suffix('/') {
            Some(b) => (b, true),
            None => (tag, false),
        };
        let name_end = body.find(char::is_whitespace).unwrap_or(body.len());
        let name = &body[..name_end];
        assert!(
            !name.is_empty()
                && name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == ':'),
            "bad tag name {name:?}"
        );
        let mut attrs = body[name_end..].trim_start();
        let mut seen = Vec::new();
        while !attrs.is_empty() {
            let eq = attrs.find("=\"").expect("attribute without =\"");
            let key = &attrs[..eq];
            assert!(
                key.chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == ':'),
                "{key:?}"
            );
            assert!(!seen.contains(&key), "duplicate attribute {key}");
            seen.push(key);
            let value_end = attrs[eq + 2..].find('"').expect("unterminated attribute") + eq + 2;
            let value = &attrs[eq + 2..value_end];
            assert!(!value.contains('<'), "< in attribute");
            check_text(value);
            attrs = attrs[value_end + 1..].trim_start();
        }
        if stack.is_empty() {
            roots += 1;
        }
        if !closed {
            stack.push(name);
        }
    }
    assert!(stack.is_empty(), "unclosed: {stack:?}");
    assert_eq!(roots, 1, "one root element");
}

fn check_text(t: &str) {
    assert!(!t.contains('>'), "raw > in {t:?}");
    for (i, _) in t.match_indices('&') {
        let semi = t[i..]
            .find(';')
            .map(|k| &t[i + 1..i + k])
            .expect("& without ;");
        let ok = matches!(semi, "amp" | "lt" | "gt" | "quot" | "apos")
            || semi
                .strip_prefix('#')
                .is_some_and(|d| !d.is_empty() && d.chars().all(|c| c.is_ascii_digit()));
        assert!(ok, "bad entity &{semi};");
    }
}

/// A small but complete IVR: languages, opening hours, a main menu, an account lookup,
/// two queues, voicemail, a survey, and one node nothing leads to.
pub(super) fn sample_ivr() -> Diagram {
    let n = |name: &str, kind: &str, detail: &str| DiagramNode {
        detail: detail.to_string(),
        ..node(name, kind)
    };
    let nodes = vec![
        n("welcome", "play", "welcome"),
        n("language", "menu", "choose_language"),
        n("hours", "schedule", "support_hours"),
        n("closed_msg", "play", "we_are_closed"),
        n("holiday_msg", "play", "holiday_greeting"),
        n("main_menu", "menu", "main_menu, invalid"),
        n("account", "collect", "enter_account"),
        n("lookup", "lookup", "crm account"),
        n("support_queue", "queue", "support"),
        n("sales_queue", "queue", "sales"),
        n("voicemail", "record", "leave_message"),
        n("feedback", "record", "feedback"),
        n("survey", "subflow", "csat_survey"),
        n("operator", "transfer", "reception 1000"),
        n("goodbye", "play", "goodbye"),
        n("hangup", "hangup", ""),
        n("old_promo", "play", "spring_offer"),
    ];
    let e = [
        (0, 1, ""),
        (1, 2, "1"),
        (1, 2, "2"),
        (1, 2, "timeout"),
        (1, 1, "invalid"),
        (2, 5, "open"),
        (2, 3, "closed"),
        (2, 4, "holiday"),
        (3, 10, ""),
        (4, 14, ""),
        (5, 6, "1"),
        (5, 9, "2"),
        (5, 11, "3"),
        (5, 13, "0"),
        (5, 1, "*"),
        (5, 14, "timeout"),
        (6, 7, ""),
        (7, 8, "ok"),
        (7, 5, "fail"),
        (8, 12, "answered"),
        (8, 10, "timeout"),
        (8, 10, "full"),
        (8, 3, "no_agents"),
        (9, 12, "answered"),
        (9, 10, "timeout"),
        (10, 14, ""),
        (11, 12, ""),
        (12, 14, ""),
        (14, 15, ""),
        (16, 5, ""),
    ];
    let edges: Vec<DiagramEdge> = e.iter().map(|&(f, t, l)| edge(f, t, l)).collect();
    Diagram {
        title: "support line (main.toml)".into(),
        nodes,
        edges,
        start: 0,
    }
}

/// A menu tree of 63 nodes: six submenus of six choices, each choice a queue or a
/// message, every submenu with a way back, all ending at one goodbye.
pub(super) fn large_ivr() -> Diagram {
    let mut d = Diagram {
        title: "large".into(),
        ..Default::default()
    };
    let add = |d: &mut Diagram, name: String, kind: &str| {
        d.nodes.push(DiagramNode {
            detail: format!("{name}_prompt"),
            ..node(&name, kind)
        });
        d.nodes.len() - 1
    };
    let root = add(&mut d, "main".into(), "menu");
    let goodbye = add(&mut d, "goodbye".into(), "play");
    let hangup = add(&mut d, "hangup".into(), "hangup");
    d.edges.push(edge(goodbye, hangup, ""));
    d.edges.push(edge(root, goodbye, "timeout"));
    for m in 1..=6 {
        let sub = add(&mut d, format!("menu_{m}"), "menu");
        d.edges.push(edge(root, sub, &m.to_string()));
        d.edges.push(edge(sub, root, "*"));
        d.edges.push(edge(sub, sub, "invalid"));
        for c in 1..=6 {
            let kind = if c % 2 == 0 { "queue" } else { "play" };
            let leaf = add(&mut d, format!("m{m}_choice_{c}"), kind);
            d.edges.push(edge(sub, leaf, &c.to_string()));
            if kind == "queue" {
                let vm = add(&mut d, format!("m{m}_voicemail_{c}"), "record");
                d.edges.push(edge(leaf, vm, "timeout"));
                d.edges.push(edge(leaf, goodbye, "answered"));
                d.edges.push(edge(vm, goodbye, ""));
            } else {
                d.edges.push(edge(leaf, goodbye, ""));
            }
        }
    }
    d
}

/// Every quoted string in DOT closes on its line, and braces outside them balance.
pub(super) fn assert_dot_strings_closed(dot: &str) {
    let mut depth = 0i32;
    for line in dot.lines() {
        let mut quoted = false;
        let mut chars = line.chars();
        while let Some(c) = chars.next() {
            match (quoted, c) {
                (true, '\\') => {
                    chars.next();
                }
                (_, '"') => quoted = !quoted,
                (false, '{') => depth += 1,
                (false, '}') => depth -= 1,
                _ => {}
            }
        }
        assert!(!quoted, "unclosed string: {line:?}");
    }
    assert_eq!(depth, 0);
}

/// Ids are plain words, quotes pair up on every line, and labels hold no raw syntax.
pub(super) fn assert_mermaid_clean(m: &str) {
    let body = match m.strip_prefix("---\n") {
        Some(rest) => rest.split_once("\n---\n").expect("front matter closes").1,
        None => m,
    };
    let mut lines = body.lines();
    assert_eq!(lines.next(), Some("flowchart TD"));
    for line in lines {
        let line = line.trim();
        let id_end = line
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(line.len());
        assert!(id_end > 0, "line starts without an id: {line:?}");
        let parts: Vec<&str> = line.split('"').collect();
        assert!(parts.len() % 2 == 1, "unpaired quote: {line:?}");
        for quoted in parts.iter().skip(1).step_by(2) {
            let mut raw = quoted
                .replace("<b>", "")
                .replace("</b>", "")
                .replace("<br/>", "");
            while let Some(at) = raw.find('#') {
                let end = raw[at..]
                    .find(';')
                    .map(|k| at + k)
                    .expect("# starts an entity");
                assert!(
                    raw[at + 1..end].chars().all(|c| c.is_ascii_alphanumeric()) && end > at + 1
                );
                raw.replace_range(at..=end, "");
            }
            assert!(
                !raw.contains(['<', '>', '|', ';', '\n']),
                "raw syntax in {quoted:?}"
            );
        }
    }
}
