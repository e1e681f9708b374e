//! Layers, the first step of a layered (Sugiyama) drawing; `order` then orders each one.
//!
//! A depth-first search from the start node marks the arrows that close cycles; the rest
//! form a DAG, and each node's rank is its longest path from the start, so every forward
//! arrow points down. Nodes the start cannot reach get ranks of their own below. Rank r is
//! layer 2r: the odd layers between hold the arrows' labels, so labels take part in the
//! ordering and spacing like boxes do and can never sit on top of one another. An arrow is
//! cut into one-layer hops through placeholder items, so ordering and spacing see it and
//! the drawing can route it between boxes. Upward arrows (cycles, and arrows from unreachable
//! nodes back into the flow) get a lane beside their two nodes.

use super::Link;
use super::order::{keep_beside, reduce_crossings};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Item {
    Node(usize),
    /// Where an arrow crosses a layer it does not stop at.
    Dummy,
    /// Where an upward arrow leaves or enters the layer of this node; kept just right of it,
    /// so the arrow comes out of (or into) the node's side.
    Beside(usize),
}

#[derive(Debug, Clone)]
pub(super) struct Route {
    pub link: usize,
    pub upward: bool,
    /// Forward: the source node, dummies, the target node, top to bottom. Upward: the
    /// source's `Beside`, dummies, the target's `Beside`, bottom to top.
    pub items: Vec<usize>,
}

impl Route {
    /// The dummy on the label layer next to the source, where the label goes.
    pub fn label_item(&self) -> Option<usize> {
        (self.items.len() >= 3).then(|| self.items[1])
    }
}

#[derive(Debug, Clone, Default)]
pub(super) struct Layered {
    /// Items `0..n` are the diagram's nodes, in order.
    pub items: Vec<Item>,
    /// Even for nodes and `Beside` items; dummies on odd layers carry labels.
    pub layer: Vec<usize>,
    pub order: Vec<Vec<usize>>,
    pub routes: Vec<Route>,
    /// Links from a node to itself; drawn as a loop, not routed.
    pub self_loops: Vec<usize>,
    /// The first layer of nodes the start cannot reach, if there are any.
    pub unreachable_layer: Option<usize>,
    /// Neighbours of each item in the layer above and the layer below.
    pub up: Vec<Vec<usize>>,
    pub down: Vec<Vec<usize>>,
}

pub(super) fn layer_graph(n: usize, start: usize, links: &[Link]) -> Layered {
    let mut out: Vec<Vec<usize>> = vec![Vec::new(); n];
    let mut self_loops = Vec::new();
    for (i, l) in links.iter().enumerate() {
        if l.from == l.to {
            self_loops.push(i);
        } else {
            out[l.from].push(i);
        }
    }
    let search = search(n, start, links, &out);
    let layer: Vec<usize> = assign_layers(n, links, &out, &search)
        .into_iter()
        .map(|r| 2 * r)
        .collect();
    let reachable_layers = (0..n)
        .filter(|&v| search.reachable[v])
        .map(|v| layer[v] + 2)
        .max();
    let unreachable_layer = if search.reachable.iter().all(|&r| r) || n == 0 {
        None
    } else {
        Some(reachable_layers.unwrap_or(0))
    };

    let mut g = Layered {
        items: (0..n).map(Item::Node).collect(),
        layer,
        self_loops,
        unreachable_layer,
        ..Default::default()
    };
    for (i, l) in links.iter().enumerate() {
        if l.from != l.to {
            add_route(&mut g, i, l);
        }
    }
    g.up = vec![Vec::new(); g.items.len()];
    g.down = vec![Vec::new(); g.items.len()];
    for r in &g.routes {
        for w in r.items.windows(2) {
            let (a, b) = (w[0], w[1]);
            let (above, below) = if g.layer[b] == g.layer[a] + 1 {
                (a, b)
            } else if g.layer[a] == g.layer[b] + 1 {
                (b, a)
            } else {
                continue;
            };
            g.down[above].push(below);
            g.up[below].push(above);
        }
    }

    let layers = g.layer.iter().map(|&l| l + 1).max().unwrap_or(0);
    g.order = vec![Vec::new(); layers];
    // Discovery order first: it already keeps a node's successors near each other.
    for &v in &search.preorder {
        g.order[g.layer[v]].push(v);
    }
    for item in n..g.items.len() {
        g.order[g.layer[item]].push(item);
    }
    for row in &mut g.order {
        keep_beside(row, &g.items);
    }
    reduce_crossings(&mut g);
    g
}

struct Search {
    preorder: Vec<usize>,
    postorder: Vec<usize>,
    reachable: Vec<bool>,
    back: Vec<bool>,
}

/// Depth-first search from the start node, then from every node left unvisited, in index
/// order. Iterative, so a 10 000-node chain cannot overflow the stack.
fn search(n: usize, start: usize, links: &[Link], out: &[Vec<usize>]) -> Search {
    const NEW: u8 = 0;
    const OPEN: u8 = 1;
    const DONE: u8 = 2;
    let mut state = vec![NEW; n];
    let mut s = Search {
        preorder: Vec::with_capacity(n),
        postorder: Vec::with_capacity(n),
        reachable: vec![false; n],
        back: vec![false; links.len()],
    };
    let roots = (start < n).then_some(start).into_iter().chain(0..n);
    let mut stack: Vec<(usize, usize)> = Vec::new();
    for (nth, root) in roots.enumerate() {
        if state[root] == NEW {
            state[root] = OPEN;
            s.preorder.push(root);
            stack.push((root, 0));
        }
        while let Some((u, next)) = stack.last_mut() {
            let u = *u;
            if let Some(&l) = out[u].get(*next) {
                *next += 1;
                let v = links[l].to;
                match state[v] {
                    NEW => {
                        state[v] = OPEN;
                        s.preorder.push(v);
                        stack.push((v, 0));
                    }
                    OPEN => s.back[l] = true,
                    _ => {}
                }
            } else {
                state[u] = DONE;
                s.postorder.push(u);
                stack.pop();
            }
        }
        if nth == 0 && start < n {
            s.reachable = state.iter().map(|&st| st == DONE).collect();
        }
    }
    s
}

/// Longest path over the arrows that are not back arrows, taken in reverse postorder (a
/// topological order of exactly those arrows). Nodes the start cannot reach are layered
/// among themselves and then moved below the reachable ones.
fn assign_layers(n: usize, links: &[Link], out: &[Vec<usize>], s: &Search) -> Vec<usize> {
    let mut layer = vec![0usize; n];
    for &u in s.postorder.iter().rev() {
        for &l in &out[u] {
            let v = links[l].to;
            if !s.back[l] && s.reachable[u] == s.reachable[v] {
                layer[v] = layer[v].max(layer[u] + 1);
            }
        }
    }
    let base = (0..n)
        .filter(|&v| s.reachable[v])
        .map(|v| layer[v] + 1)
        .max()
        .unwrap_or(0);
    for (l, _) in layer.iter_mut().zip(&s.reachable).filter(|(_, r)| !**r) {
        *l += base;
    }
    layer
}

fn add_route(g: &mut Layered, link: usize, l: &Link) {
    let (lu, lv) = (g.layer[l.from], g.layer[l.to]);
    let new_item = |g: &mut Layered, item: Item, layer: usize| {
        g.items.push(item);
        g.layer.push(layer);
        g.items.len() - 1
    };
    let route = if lv > lu {
        let mut items = vec![l.from];
        for layer in lu + 1..lv {
            items.push(new_item(g, Item::Dummy, layer));
        }
        items.push(l.to);
        Route {
            link,
            upward: false,
            items,
        }
    } else {
        let mut items = vec![new_item(g, Item::Beside(l.from), lu)];
        for layer in (lv + 1..lu).rev() {
            items.push(new_item(g, Item::Dummy, layer));
        }
        items.push(new_item(g, Item::Beside(l.to), lv));
        Route {
            link,
            upward: true,
            items,
        }
    };
    g.routes.push(route);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn link(from: usize, to: usize) -> Link {
        Link {
            from,
            to,
            label: String::new(),
        }
    }

    #[test]
    fn chain_gets_increasing_layers() {
        let links: Vec<Link> = (1..6).map(|i| link(i - 1, i)).collect();
        let g = layer_graph(6, 0, &links);
        assert_eq!(&g.layer[..6], &[0, 2, 4, 6, 8, 10]);
        assert!(g.routes.iter().all(|r| !r.upward && r.items.len() == 3));
        assert!(
            g.routes
                .iter()
                .all(|r| r.label_item().is_some_and(|d| g.layer[d] % 2 == 1))
        );
        assert_eq!(g.unreachable_layer, None);
    }

    #[test]
    fn start_need_not_be_node_zero() {
        let g = layer_graph(3, 2, &[link(2, 1), link(1, 0)]);
        assert_eq!(&g.layer[..3], &[4, 2, 0]);
    }

    #[test]
    fn cycles_terminate_and_point_back_up() {
        // 0 -> 1 -> 2 -> 0, plus 2 -> 1: two cycles.
        let links = [link(0, 1), link(1, 2), link(2, 0), link(2, 1)];
        let g = layer_graph(3, 0, &links);
        assert_eq!(&g.layer[..3], &[0, 2, 4]);
        let upward: Vec<usize> = g
            .routes
            .iter()
            .filter(|r| r.upward)
            .map(|r| r.link)
            .collect();
        assert_eq!(upward, vec![2, 3]);
        // The upward arrow 2 -> 0 climbs layers 3, 2, 1 through dummies.
        let r = &g.routes[2];
        assert_eq!(r.items.len(), 5);
        assert_eq!(g.items[r.items[0]], Item::Beside(2));
        assert!(r.items[1..4].iter().all(|&d| g.items[d] == Item::Dummy));
        assert_eq!(g.items[r.items[4]], Item::Beside(0));
        assert_eq!(r.label_item().map(|d| g.layer[d]), Some(3));
    }

    #[test]
    fn long_arrows_pass_through_dummies() {
        let g = layer_graph(3, 0, &[link(0, 1), link(1, 2), link(0, 2)]);
        let r = &g.routes[2];
        assert_eq!(r.items.len(), 5);
        assert_eq!(g.layer[r.items[2]], 2);
    }

    #[test]
    fn unreachable_nodes_go_below_and_arrows_back_go_up() {
        // 0 -> 1; 2 -> 3 -> 0 cannot be reached from 0.
        let g = layer_graph(4, 0, &[link(0, 1), link(2, 3), link(3, 0)]);
        assert_eq!(&g.layer[..4], &[0, 2, 4, 6]);
        assert_eq!(g.unreachable_layer, Some(4));
        assert!(g.routes[2].upward);
    }

    #[test]
    fn bad_start_still_lays_everything_out() {
        let g = layer_graph(2, 5, &[link(0, 1)]);
        assert_eq!(&g.layer[..2], &[0, 2]);
        assert_eq!(g.unreachable_layer, Some(0));
    }

    #[test]
    fn every_hop_joins_adjacent_layers() {
        let mut rng = fastrand::Rng::with_seed(11);
        for _ in 0..50 {
            let n = rng.usize(0..40);
            let links: Vec<Link> = (0..rng.usize(0..100))
                .map(|_| link(rng.usize(..n.max(1)), rng.usize(..n.max(1))))
                .filter(|l| l.from < n && l.to < n)
                .collect();
            let g = layer_graph(n, rng.usize(..n + 2), &links);
            for r in &g.routes {
                for w in r.items.windows(2) {
                    assert_eq!(g.layer[w[0]].abs_diff(g.layer[w[1]]), 1);
                }
            }
            let mut seen: Vec<usize> = g.order.concat();
            seen.sort_unstable();
            assert_eq!(seen, (0..g.items.len()).collect::<Vec<_>>());
        }
    }
}
