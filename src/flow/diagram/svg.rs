//! The diagram as a standalone SVG: layout from `layout` and `place`, text sized by a
//! monospace estimate (no font files are read), and every string escaped for XML.

use std::fmt::Write;

use super::layout::layer_graph;
use super::measure::{truncate, width};
use super::place::{NODE_H, Placed, Rect, Seg, Style, place};
use super::{Diagram, DiagramNode, Family, family, links, palette};

const FONT: &str = "DejaVu Sans Mono, Menlo, Consolas, monospace";
const NAME_PX: f64 = 12.0;
const SUB_PX: f64 = 11.0;
const LABEL_PX: f64 = 10.0;
const TITLE_PX: f64 = 15.0;
/// Longest name and second line drawn, in monospace columns; the whole text is in the
/// box's tooltip.
const NAME_COLS: usize = 32;
const SUB_COLS: usize = 40;
const LABEL_COLS: usize = 30;
const PAD: f64 = 12.0;
const MARGIN: f64 = 20.0;

const EDGE: &str = "#475569";
const BACK_EDGE: &str = "#c2410c";

pub fn to_svg(d: &Diagram) -> String {
    let links = links(d);
    let layered = layer_graph(d.nodes.len(), d.start, &links);
    let texts: Vec<(String, String)> = d.nodes.iter().map(node_text).collect();
    let widths: Vec<f64> = d
        .nodes
        .iter()
        .zip(&texts)
        .map(|(node, (name, sub))| {
            let text = (width(name, NAME_PX)).max(width(sub, SUB_PX));
            let ends = if family(node) == Family::Exit {
                NODE_H / 3.0
            } else {
                0.0
            };
            (text + 2.0 * PAD + ends).max(72.0)
        })
        .collect();
    let label_text: Vec<String> = links
        .iter()
        .map(|l| truncate(&l.label, LABEL_COLS))
        .collect();
    let label_size: Vec<(f64, f64)> = label_text
        .iter()
        .map(|t| {
            if t.is_empty() {
                (0.0, 0.0)
            } else {
                (width(t, LABEL_PX) + 8.0, 15.0)
            }
        })
        .collect();
    let placed = place(&layered, &links, &widths, &label_size);
    let start = (d.start < d.nodes.len()).then_some(d.start);
    let title = if d.title.trim().is_empty() {
        "flow"
    } else {
        d.title.as_str()
    };
    let title_line = truncate(title, 80);

    // Content bounds, then room for the title above and a margin all round.
    let start_mark = start.map(|s| {
        let b = placed.nodes[s];
        (b.x + b.w / 2.0, b.y)
    });
    let mut content = placed.bounds.unwrap_or(Rect {
        x: 0.0,
        y: 0.0,
        w: 160.0,
        h: 20.0,
    });
    if let Some((cx, top)) = start_mark {
        content = content.union(&Rect {
            x: cx - 6.0,
            y: top - 30.0,
            w: 12.0,
            h: 30.0,
        });
    }
    if let Some(y) = placed.separator {
        content = content.union(&Rect {
            x: content.x,
            y: y - 18.0,
            w: width(UNREACHABLE, 11.0),
            h: 18.0,
        });
    }
    let title_y = content.y - 16.0;
    let view = content
        .union(&Rect {
            x: content.x,
            y: title_y - TITLE_PX,
            w: width(&title_line, TITLE_PX),
            h: TITLE_PX,
        })
        .grow(MARGIN);

    let mut s = String::new();
    let _ = writeln!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" viewBox="{x} {y} {w} {h}" font-family="{FONT}">"#,
        x = num(view.x),
        y = num(view.y),
        w = num(view.w),
        h = num(view.h),
    );
    let _ = writeln!(s, "<title>{}</title>", escape(title));
    s.push_str("<defs>\n");
    for (id, colour) in [("hl-arrow", EDGE), ("hl-arrow-back", BACK_EDGE)] {
        let _ = writeln!(
            s,
            r#"<marker id="{id}" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="9" markerHeight="9" markerUnits="userSpaceOnUse" orient="auto"><path d="M0,0 L10,5 L0,10 z" fill="{colour}"/></marker>"#
        );
    }
    s.push_str("</defs>\n");
    let _ = writeln!(
        s,
        r##"<rect x="{}" y="{}" width="{}" height="{}" fill="#ffffff"/>"##,
        num(view.x),
        num(view.y),
        num(view.w),
        num(view.h)
    );
    let _ = writeln!(
        s,
        r##"<text x="{}" y="{}" font-size="{TITLE_PX}" font-weight="bold" fill="#0f172a">{}</text>"##,
        num(content.x),
        num(title_y),
        escape(&title_line)
    );
    if d.nodes.is_empty() {
        let _ = writeln!(
            s,
            r##"<text x="{}" y="{}" font-size="11" fill="#64748b">no nodes</text>"##,
            num(content.x),
            num(content.y + 14.0)
        );
    }
    if let Some(y) = placed.separator {
        let _ = writeln!(
            s,
            r##"<line x1="{x0}" y1="{y}" x2="{x1}" y2="{y}" stroke="#94a3b8" stroke-dasharray="4 4"/>"##,
            x0 = num(content.x),
            x1 = num(content.x + content.w),
            y = num(y)
        );
        let _ = writeln!(
            s,
            r##"<text x="{}" y="{}" font-size="11" font-style="italic" fill="#64748b">{UNREACHABLE}</text>"##,
            num(content.x),
            num(y - 6.0)
        );
    }
    write_edges(&mut s, &placed, start_mark);
    for (i, node) in d.nodes.iter().enumerate() {
        write_node(&mut s, node, &texts[i], &placed.nodes[i], start == Some(i));
    }
    write_labels(&mut s, &placed, &label_text);
    s.push_str("</svg>\n");
    s
}

const UNREACHABLE: &str = "not reachable from start";

/// The bold first line and the smaller second line of a box.
fn node_text(node: &DiagramNode) -> (String, String) {
    let name = truncate(&node.name, NAME_COLS);
    let (kind, detail) = (node.kind.trim(), node.detail.trim());
    let sub = match (kind.is_empty(), detail.is_empty()) {
        (_, true) => kind.to_string(),
        (true, false) => detail.to_string(),
        (false, false) => format!("{kind} · {detail}"),
    };
    (name, truncate(&sub, SUB_COLS))
}

fn write_edges(s: &mut String, placed: &Placed, start_mark: Option<(f64, f64)>) {
    s.push_str("<g fill=\"none\" stroke-width=\"1.3\">\n");
    if let Some((cx, top)) = start_mark {
        let _ = writeln!(
            s,
            r##"<circle cx="{x}" cy="{y}" r="5" fill="#0f172a"/><path d="M{x},{y1} L{x},{top}" stroke="{EDGE}" marker-end="url(#hl-arrow)"/>"##,
            x = num(cx),
            y = num(top - 24.0),
            y1 = num(top - 19.0),
            top = num(top)
        );
    }
    for e in &placed.edges {
        let (colour, marker, dash) = match e.style {
            Style::Upward => (BACK_EDGE, "hl-arrow-back", r#" stroke-dasharray="6 4""#),
            Style::Forward | Style::SelfLoop => (EDGE, "hl-arrow", ""),
        };
        let _ = writeln!(
            s,
            r#"<path d="{}" stroke="{colour}"{dash} marker-end="url(#{marker})"/>"#,
            path_data(&e.path)
        );
    }
    s.push_str("</g>\n");
}

fn write_node(s: &mut String, node: &DiagramNode, text: &(String, String), b: &Rect, start: bool) {
    let f = family(node);
    let (fill, stroke) = palette(f);
    let rx = if f == Family::Exit { NODE_H / 2.0 } else { 8.0 };
    let stroke_width = if start { 3.0 } else { 1.5 };
    let cx = num(b.x + b.w / 2.0);
    let tip = match (node.kind.trim(), node.detail.trim()) {
        (k, "") => format!("{} ({k})", node.name),
        (k, detail) => format!("{} ({k}): {detail}", node.name),
    };
    let _ = writeln!(
        s,
        r#"<g><title>{}</title><rect x="{}" y="{}" width="{}" height="{}" rx="{}" fill="{fill}" stroke="{stroke}" stroke-width="{stroke_width}"/>"#,
        escape(&tip),
        num(b.x),
        num(b.y),
        num(b.w),
        num(b.h),
        num(rx)
    );
    let (name, sub) = text;
    let name_y = if sub.is_empty() {
        b.y + NODE_H / 2.0 + 4.0
    } else {
        b.y + 19.0
    };
    let _ = writeln!(
        s,
        r##"<text x="{cx}" y="{}" text-anchor="middle" font-size="{NAME_PX}" font-weight="bold" fill="#0f172a">{}</text>"##,
        num(name_y),
        escape(name)
    );
    if !sub.is_empty() {
        let _ = writeln!(
            s,
            r##"<text x="{cx}" y="{}" text-anchor="middle" font-size="{SUB_PX}" fill="#334155">{}</text>"##,
            num(b.y + 34.0),
            escape(sub)
        );
    }
    s.push_str("</g>\n");
}

fn write_labels(s: &mut String, placed: &Placed, text: &[String]) {
    s.push_str("<g>\n");
    for e in &placed.edges {
        let (Some(r), Some(t)) = (e.label, text.get(e.link)) else {
            continue;
        };
        let colour = if e.style == Style::Upward {
            BACK_EDGE
        } else {
            "#334155"
        };
        let _ = writeln!(
            s,
            r##"<rect x="{}" y="{}" width="{}" height="{}" rx="3" fill="#ffffff" stroke="#cbd5e1"/><text x="{}" y="{}" text-anchor="middle" font-size="{LABEL_PX}" fill="{colour}">{}</text>"##,
            num(r.x),
            num(r.y),
            num(r.w),
            num(r.h),
            num(r.x + r.w / 2.0),
            num(r.y + r.h / 2.0 + LABEL_PX * 0.35),
            escape(t)
        );
    }
    s.push_str("</g>\n");
}

fn path_data(path: &[Seg]) -> String {
    let p = |p: &super::place::Point| format!("{},{}", num(p.x), num(p.y));
    let parts: Vec<String> = path
        .iter()
        .map(|seg| match seg {
            Seg::Move(a) => format!("M{}", p(a)),
            Seg::Line(a) => format!("L{}", p(a)),
            Seg::Quad(c, a) => format!("Q{} {}", p(c), p(a)),
            Seg::Curve(c1, c2, a) => format!("C{} {} {}", p(c1), p(c2), p(a)),
        })
        .collect();
    parts.join(" ")
}

/// One decimal is finer than a pixel and keeps the output stable and short.
fn num(v: f64) -> String {
    let v = if v.is_finite() {
        (v * 10.0).round() / 10.0
    } else {
        0.0
    };
    if v == v.trunc() {
        format!("{}", v as i64)
    } else {
        format!("{v:.1}")
    }
}

/// Text for XML content and attribute values. Control characters are not allowed in XML
/// at all, so they become spaces.
pub(super) fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            '\u{fffe}' | '\u{ffff}' => out.push('\u{fffd}'),
            c if c.is_control() => out.push(' '),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::super::samples::{assert_well_formed, chain, edge, large_ivr, node, sample_ivr};
    use super::*;

    #[test]
    fn empty_diagram_is_a_valid_picture() {
        let svg = to_svg(&Diagram::default());
        assert_well_formed(&svg);
        assert!(svg.contains("<title>flow</title>") && svg.contains("viewBox="));
    }

    #[test]
    fn one_node_with_a_bad_start() {
        let d = Diagram {
            nodes: vec![node("only", "hangup")],
            start: 3,
            ..Default::default()
        };
        let svg = to_svg(&d);
        assert_well_formed(&svg);
        assert!(svg.contains(">only</text>"));
        assert!(
            !svg.contains("<circle"),
            "no start mark for a start that does not exist"
        );
    }

    #[test]
    fn sample_has_every_name_and_label() {
        let d = sample_ivr();
        let svg = to_svg(&d);
        assert_well_formed(&svg);
        for node in &d.nodes {
            assert!(
                svg.contains(&format!(">{}</text>", node.name)),
                "{}",
                node.name
            );
        }
        for label in [
            "1, 2, timeout",
            "invalid",
            "open",
            "closed",
            "holiday",
            "*",
            "fail",
            "timeout, full",
            "no_agents",
        ] {
            assert!(
                svg.contains(&format!(">{}</text>", escape(label))),
                "{label}"
            );
        }
        assert_eq!(
            svg.matches("stroke-dasharray=\"6 4\"").count(),
            3,
            "three arrows go back up"
        );
        assert!(svg.contains(UNREACHABLE));
        assert_eq!(svg, to_svg(&d));
    }

    #[test]
    fn hostile_text_is_escaped() {
        let mut d = chain(2);
        d.title = "t<i>t'le".into();
        d.nodes[0].name = "<script>&\"'".into();
        d.nodes[1].detail = "a\nb\u{0}c".into();
        d.edges[0].label = "]]> &x;".into();
        let svg = to_svg(&d);
        assert_well_formed(&svg);
        assert!(svg.contains("&lt;script&gt;&amp;&quot;&apos;"));
        assert!(svg.contains("]]&gt; &amp;x;"));
        assert!(svg.contains("t&lt;i&gt;t&apos;le"));
        assert!(!svg.contains("<script"));
    }

    #[test]
    fn parallel_arrows_share_one_label_and_self_loops_draw() {
        let d = Diagram {
            nodes: vec![node("menu", "menu"), node("next", "play")],
            edges: vec![
                edge(0, 1, "1"),
                edge(0, 1, "2"),
                edge(0, 0, "invalid"),
                edge(0, 9, "x"),
            ],
            ..Default::default()
        };
        let svg = to_svg(&d);
        assert_well_formed(&svg);
        assert_eq!(svg.matches(">1, 2</text>").count(), 1);
        assert_eq!(
            svg.matches("marker-end=").count(),
            3,
            "start mark, one arrow, one loop"
        );
        assert!(svg.contains(">invalid</text>"));
    }

    #[test]
    fn large_flows_lay_out() {
        let mut d = chain(70);
        for i in (0..70).step_by(3) {
            d.edges.push(edge(i, (i * 7 + 5) % 70, "x"));
        }
        d.nodes.push(node("island", "play"));
        let svg = to_svg(&d);
        assert_well_formed(&svg);
        assert!(svg.contains(">n69</text>") && svg.contains(">island</text>"));
    }

    #[test]
    fn numbers_are_short_and_stable() {
        assert_eq!(num(-0.04), "0");
        assert_eq!(num(12.25), "12.3");
        assert_eq!(num(f64::NAN), "0");
    }

    #[test]
    fn large_ivr_lays_out_in_reasonable_size() {
        let d = large_ivr();
        assert!(d.nodes.len() > 60);
        let svg = to_svg(&d);
        assert_well_formed(&svg);
        assert!(
            d.nodes
                .iter()
                .all(|n| svg.contains(&format!(">{}</text>", n.name)))
        );
    }

    #[test]
    #[ignore = "writes /tmp/graph-sample.{svg,dot,mmd} and /tmp/graph-large.svg for a look"]
    fn write_sample() {
        let sample = sample_ivr();
        let files = [
            ("/tmp/graph-sample.svg", to_svg(&sample)),
            ("/tmp/graph-sample.dot", super::super::to_dot(&sample)),
            ("/tmp/graph-sample.mmd", super::super::to_mermaid(&sample)),
            ("/tmp/graph-large.svg", to_svg(&large_ivr())),
        ];
        for (path, text) in files {
            std::fs::write(path, text).expect("write sample");
        }
    }
}
