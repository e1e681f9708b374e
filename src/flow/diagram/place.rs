//! Coordinates for a layered diagram: boxes, arrow paths and label spots, on the x
//! positions `columns` picks.
//!
//! Forward arrows leave the bottom of a box and enter the top, fanned out so arrowheads do
//! not pile up; upward arrows use the side lanes `layout` reserved. A label is as wide as
//! the placeholder that carries it on its label layer, so the same gaps that keep boxes
//! apart keep labels off each other, off boxes and off other arrows.

use super::Link;
use super::columns::{Spacing, x_positions};
use super::layout::{Item, Layered};

pub(super) const NODE_H: f64 = 44.0;
/// Height of the label layers between the layers of boxes.
const LABEL_ROW: f64 = 16.0;
/// Vertical room between a layer of boxes and a label layer, where arrows bend.
const ROW_GAP: f64 = 30.0;
/// Extra room above the nodes the start cannot reach, for the line that sets them apart.
const SECTION_GAP: f64 = 40.0;
/// How far a self-loop reaches out of the box's left side.
const LOOP: f64 = 24.0;
const CORNER: f64 = 8.0;
const PORT_SPACING: f64 = 22.0;

#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) struct Point {
    pub x: f64,
    pub y: f64,
}

fn pt(x: f64, y: f64) -> Point {
    Point { x, y }
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) struct Rect {
    pub x: f64,
    pub y: f64,
    pub w: f64,
    pub h: f64,
}

impl Rect {
    pub fn centered(c: Point, w: f64, h: f64) -> Rect {
        Rect {
            x: c.x - w / 2.0,
            y: c.y - h / 2.0,
            w,
            h,
        }
    }

    pub fn right(&self) -> f64 {
        self.x + self.w
    }

    pub fn bottom(&self) -> f64 {
        self.y + self.h
    }

    pub fn grow(&self, by: f64) -> Rect {
        Rect {
            x: self.x - by,
            y: self.y - by,
            w: self.w + 2.0 * by,
            h: self.h + 2.0 * by,
        }
    }

    #[cfg(test)]
    fn overlap(&self, o: &Rect) -> f64 {
        let w = self.right().min(o.right()) - self.x.max(o.x);
        let h = self.bottom().min(o.bottom()) - self.y.max(o.y);
        if w > 0.0 && h > 0.0 { w * h } else { 0.0 }
    }

    pub fn union(&self, o: &Rect) -> Rect {
        let (x, y) = (self.x.min(o.x), self.y.min(o.y));
        Rect {
            x,
            y,
            w: self.right().max(o.right()) - x,
            h: self.bottom().max(o.bottom()) - y,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) enum Seg {
    Move(Point),
    Line(Point),
    Quad(Point, Point),
    Curve(Point, Point, Point),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Style {
    Forward,
    Upward,
    SelfLoop,
}

#[derive(Debug, Clone)]
pub(super) struct DrawnEdge {
    pub link: usize,
    pub style: Style,
    pub path: Vec<Seg>,
    pub label: Option<Rect>,
}

#[derive(Debug, Clone)]
pub(super) struct Placed {
    pub nodes: Vec<Rect>,
    pub edges: Vec<DrawnEdge>,
    /// Height of the line above the nodes the start cannot reach.
    pub separator: Option<f64>,
    /// Everything drawn, boxes, arrows and labels; `None` with nothing to draw.
    pub bounds: Option<Rect>,
}

/// `widths` per node; `labels` the (width, height) of each link's label, zero for none.
pub(super) fn place(g: &Layered, links: &[Link], widths: &[f64], labels: &[(f64, f64)]) -> Placed {
    let n = widths.len();
    let mut width: Vec<f64> = widths
        .iter()
        .copied()
        .chain(std::iter::repeat(0.0))
        .take(g.items.len())
        .collect();
    for r in &g.routes {
        if let Some(d) = r.label_item() {
            width[d] = labels[r.link].0;
        }
    }
    let mut loop_room = vec![0.0; n];
    for &l in &g.self_loops {
        loop_room[links[l].from] = LOOP + 8.0 + labels[l].0;
    }
    let x = x_positions(&Spacing {
        g,
        width,
        loop_room,
    });

    let height = |l: usize| {
        if l.is_multiple_of(2) {
            NODE_H
        } else {
            LABEL_ROW
        }
    };
    let mut layer_top = Vec::with_capacity(g.order.len());
    let mut at = 0.0;
    for l in 0..g.order.len() {
        if l > 0 {
            at += height(l - 1) + ROW_GAP;
        }
        if l > 0 && g.unreachable_layer == Some(l) {
            at += SECTION_GAP;
        }
        layer_top.push(at);
    }
    let top = |i: usize| layer_top[g.layer[i]];
    let bottom = |i: usize| top(i) + height(g.layer[i]);

    let nodes: Vec<Rect> = (0..n)
        .map(|u| Rect {
            x: x[u] - widths[u] / 2.0,
            y: top(u),
            w: widths[u],
            h: NODE_H,
        })
        .collect();

    // Fan the arrows at each box's bottom and top, in the order of where they go or come
    // from, so they do not cross as they leave.
    let mut out_port = vec![0.0; g.routes.len()];
    let mut in_port = vec![0.0; g.routes.len()];
    let mut outs: Vec<Vec<(f64, usize)>> = vec![Vec::new(); n];
    let mut ins: Vec<Vec<(f64, usize)>> = vec![Vec::new(); n];
    for (r, route) in g.routes.iter().enumerate() {
        let items = &route.items;
        if !route.upward && items.len() >= 2 {
            outs[items[0]].push((x[items[1]], r));
            ins[items[items.len() - 1]].push((x[items[items.len() - 2]], r));
        }
    }
    for (ports, fans) in [(&mut out_port, &mut outs), (&mut in_port, &mut ins)] {
        for (u, fan) in fans.iter_mut().enumerate() {
            fan.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
            let m = fan.len() as f64;
            let spacing = if m > 1.0 {
                PORT_SPACING.min((widths[u] - 16.0) / (m - 1.0))
            } else {
                0.0
            };
            for (k, &(_, r)) in fan.iter().enumerate() {
                ports[r] = x[u] + (k as f64 - (m - 1.0) / 2.0) * spacing;
            }
        }
    }

    // Side arms: arrows going up take the highest free slot, arrows coming down the lowest,
    // nearest lane first, so no arm crosses a lane of the same node.
    let mut slot = vec![0.0; g.items.len()];
    let mut leaving = vec![false; g.items.len()];
    for r in g.routes.iter().filter(|r| r.upward) {
        r.items.first().into_iter().for_each(|&i| leaving[i] = true);
    }
    for row in &g.order {
        for (k, &i) in row.iter().enumerate() {
            let Item::Node(u) = g.items[i] else { continue };
            let arms: Vec<usize> = row[k + 1..]
                .iter()
                .copied()
                .take_while(|&j| g.items[j] == Item::Beside(u))
                .collect();
            let count = arms.len() as f64;
            let (mut hi, mut lo) = (0.0, count - 1.0);
            for &j in &arms {
                let s = if leaving[j] {
                    hi += 1.0;
                    hi - 1.0
                } else {
                    lo -= 1.0;
                    lo + 1.0
                };
                slot[j] = nodes[u].y + NODE_H * (s + 1.0) / (count + 1.0);
            }
        }
    }

    let mut edges = Vec::new();
    for (r, route) in g.routes.iter().enumerate() {
        let items = &route.items;
        let path = if route.upward {
            let (Item::Beside(u), Item::Beside(v)) =
                (g.items[items[0]], g.items[items[items.len() - 1]])
            else {
                continue;
            };
            upward_path(items, &x, &slot, (&top, &bottom), &nodes[u], &nodes[v])
        } else {
            let mut pts = vec![pt(out_port[r], nodes[items[0]].bottom())];
            for &d in &items[1..items.len() - 1] {
                pts.push(pt(x[d], top(d)));
                pts.push(pt(x[d], bottom(d)));
            }
            pts.push(pt(in_port[r], nodes[items[items.len() - 1]].y));
            let mut path = vec![Seg::Move(pts[0])];
            for (k, w) in pts.windows(2).enumerate() {
                path.push(if k % 2 == 0 {
                    bend(w[0], w[1])
                } else {
                    Seg::Line(w[1])
                });
            }
            path
        };
        let style = if route.upward {
            Style::Upward
        } else {
            Style::Forward
        };
        let (w, h) = labels[route.link];
        let label = route
            .label_item()
            .filter(|_| w > 0.0)
            .map(|d| Rect::centered(pt(x[d], top(d) + LABEL_ROW / 2.0), w, h));
        edges.push(DrawnEdge {
            link: route.link,
            style,
            path,
            label,
        });
    }
    for &l in &g.self_loops {
        let b = &nodes[links[l].from];
        let cy = b.y + NODE_H / 2.0;
        let reach = LOOP * 4.0 / 3.0;
        let path = vec![
            Seg::Move(pt(b.x, cy - 8.0)),
            Seg::Curve(
                pt(b.x - reach, cy - 24.0),
                pt(b.x - reach, cy + 24.0),
                pt(b.x, cy + 8.0),
            ),
        ];
        let (w, h) = labels[l];
        let label = (w > 0.0).then(|| Rect::centered(pt(b.x - LOOP - 4.0 - w / 2.0, cy), w, h));
        edges.push(DrawnEdge {
            link: l,
            style: Style::SelfLoop,
            path,
            label,
        });
    }

    let mut bounds: Option<Rect> = None;
    let mut add = |r: Rect| bounds = Some(bounds.map_or(r, |b| b.union(&r)));
    nodes.iter().for_each(|r| add(*r));
    for e in &edges {
        e.label.into_iter().for_each(&mut add);
        for p in e.path.iter().flat_map(seg_points) {
            add(Rect {
                x: p.x,
                y: p.y,
                w: 0.0,
                h: 0.0,
            });
        }
    }
    let separator = g
        .unreachable_layer
        .filter(|&u| u > 0 && u < layer_top.len())
        .map(|u| layer_top[u] - (ROW_GAP + SECTION_GAP) / 2.0);
    Placed {
        nodes,
        edges,
        separator,
        bounds,
    }
}

/// A smooth step between layers: leaves and arrives vertically.
fn bend(a: Point, b: Point) -> Seg {
    let mid = (a.y + b.y) / 2.0;
    Seg::Curve(pt(a.x, mid), pt(b.x, mid), b)
}

/// Out of the source's right side, up its lane through the layers between, and into the
/// target's right side.
fn upward_path(
    items: &[usize],
    x: &[f64],
    slot: &[f64],
    (top, bottom): (&dyn Fn(usize) -> f64, &dyn Fn(usize) -> f64),
    from: &Rect,
    to: &Rect,
) -> Vec<Seg> {
    let (first, last) = (items[0], items[items.len() - 1]);
    let (sy, ty) = (slot[first], slot[last]);
    let r0 = CORNER
        .min((x[first] - from.right()) / 2.0)
        .min(sy - top(first))
        .max(0.0);
    let mut path = vec![
        Seg::Move(pt(from.right(), sy)),
        Seg::Line(pt(x[first] - r0, sy)),
        Seg::Quad(pt(x[first], sy), pt(x[first], sy - r0)),
        Seg::Line(pt(x[first], top(first))),
    ];
    let mut prev = pt(x[first], top(first));
    for &d in &items[1..items.len() - 1] {
        path.push(bend(prev, pt(x[d], bottom(d))));
        prev = pt(x[d], top(d));
        path.push(Seg::Line(prev));
    }
    let r1 = CORNER
        .min((x[last] - to.right()) / 2.0)
        .min(bottom(last) - ty)
        .max(0.0);
    path.push(bend(prev, pt(x[last], bottom(last))));
    path.push(Seg::Line(pt(x[last], ty + r1)));
    path.push(Seg::Quad(pt(x[last], ty), pt(x[last] - r1, ty)));
    path.push(Seg::Line(pt(to.right(), ty)));
    path
}

fn seg_points(s: &Seg) -> Vec<Point> {
    match *s {
        Seg::Move(p) | Seg::Line(p) => vec![p],
        Seg::Quad(c, p) => vec![c, p],
        Seg::Curve(c1, c2, p) => vec![c1, c2, p],
    }
}

#[cfg(test)]
mod tests {
    use super::super::layout::layer_graph;
    use super::*;

    fn link(from: usize, to: usize, label: &str) -> Link {
        Link {
            from,
            to,
            label: label.to_string(),
        }
    }

    #[test]
    fn boxes_and_labels_never_overlap() {
        let mut rng = fastrand::Rng::with_seed(21);
        for _ in 0..40 {
            let n = rng.usize(1..30);
            let links: Vec<Link> = (0..rng.usize(0..60))
                .map(|_| link(rng.usize(..n), rng.usize(..n), "label"))
                .collect();
            let links = dedup(links);
            let g = layer_graph(n, 0, &links);
            let widths: Vec<f64> = (0..n).map(|_| 60.0 + rng.f64() * 100.0).collect();
            let p = place(&g, &links, &widths, &vec![(40.0, 14.0); links.len()]);
            let labels: Vec<Rect> = p.edges.iter().filter_map(|e| e.label).collect();
            let boxes: Vec<&Rect> = p.nodes.iter().chain(&labels).collect();
            for (i, a) in boxes.iter().enumerate() {
                for b in &boxes[i + 1..] {
                    assert_eq!(a.grow(-1.0).overlap(b), 0.0, "{a:?} {b:?}");
                }
            }
            assert_eq!(p.edges.len(), links.len());
            for e in &p.edges {
                assert!(e.label.is_some());
                for pnt in e.path.iter().flat_map(seg_points) {
                    assert!(pnt.x.is_finite() && pnt.y.is_finite());
                }
            }
        }
    }

    fn dedup(mut links: Vec<Link>) -> Vec<Link> {
        let mut seen = std::collections::BTreeSet::new();
        links.retain(|l| seen.insert((l.from, l.to)));
        links
    }

    #[test]
    fn a_straight_chain_stays_straight() {
        let links: Vec<Link> = (1..4).map(|i| link(i - 1, i, "")).collect();
        let g = layer_graph(4, 0, &links);
        let p = place(&g, &links, &[100.0, 60.0, 140.0, 80.0], &[(0.0, 0.0); 3]);
        let centre = |r: &Rect| r.x + r.w / 2.0;
        assert!(
            p.nodes
                .iter()
                .all(|r| (centre(r) - centre(&p.nodes[0])).abs() < 0.01)
        );
        assert!(p.nodes.windows(2).all(|w| w[1].y > w[0].bottom()));
    }

    #[test]
    fn back_arrow_leaves_and_enters_at_the_right_side() {
        let links = vec![link(0, 1, ""), link(1, 2, ""), link(2, 0, "again")];
        let g = layer_graph(3, 0, &links);
        let p = place(
            &g,
            &links,
            &[80.0, 80.0, 80.0],
            &[(0.0, 0.0), (0.0, 0.0), (36.0, 14.0)],
        );
        let back = p
            .edges
            .iter()
            .find(|e| e.style == Style::Upward)
            .expect("upward edge");
        let Seg::Move(start) = back.path[0] else {
            panic!("path starts with a move")
        };
        let Some(Seg::Line(end)) = back.path.last().copied() else {
            panic!("ends with a line")
        };
        assert_eq!(start.x, p.nodes[2].right());
        assert_eq!(end.x, p.nodes[0].right());
        let label = back.label.expect("label placed");
        assert!(
            label.x + label.w / 2.0 > p.nodes[1].right() + 8.0,
            "label sits on the side lane"
        );
    }
}
