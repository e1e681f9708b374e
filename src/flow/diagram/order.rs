//! Left-to-right order within each layer: barycenter sweeps, alternately down and up,
//! each followed by adjacent swaps that lower the crossings; the best order seen is kept.

use super::layout::{Item, Layered};

const SWEEPS: usize = 12;

/// Moves every `Beside` item to just right of its node, keeping their relative order.
pub(super) fn keep_beside(row: &mut Vec<usize>, items: &[Item]) {
    let host = |i: usize| match items[i] {
        Item::Beside(h) => Some(h),
        _ => None,
    };
    if row.iter().all(|&i| host(i).is_none()) {
        return;
    }
    let beside: Vec<usize> = row.iter().copied().filter(|&i| host(i).is_some()).collect();
    let mut placed = vec![false; beside.len()];
    let mut result = Vec::with_capacity(row.len());
    for &i in row.iter().filter(|&&i| host(i).is_none()) {
        result.push(i);
        for (k, &b) in beside.iter().enumerate() {
            if host(b) == Some(i) {
                result.push(b);
                placed[k] = true;
            }
        }
    }
    result.extend(
        beside
            .iter()
            .zip(&placed)
            .filter(|(_, p)| !**p)
            .map(|(b, _)| *b),
    );
    *row = result;
}

/// Reorders every layer, keeping the order with the fewest crossings seen.
pub(super) fn reduce_crossings(g: &mut Layered) {
    let mut pos = vec![0usize; g.items.len()];
    for row in &g.order {
        for (i, &item) in row.iter().enumerate() {
            pos[item] = i;
        }
    }
    let mut best = g.order.clone();
    let mut best_crossings = crossings(g, &pos);
    for sweep in 0..SWEEPS {
        if best_crossings == 0 {
            break;
        }
        let downward = sweep % 2 == 0;
        let rows: Vec<usize> = if downward {
            (1..g.order.len()).collect()
        } else {
            (0..g.order.len().saturating_sub(1)).rev().collect()
        };
        for l in rows {
            let (nbrs, other) = if downward {
                (&g.up, l - 1)
            } else {
                (&g.down, l + 1)
            };
            let scale = g.order[other].len() as f64 / g.order[l].len().max(1) as f64;
            let mut keyed: Vec<(f64, usize)> = g.order[l]
                .iter()
                .enumerate()
                .map(|(i, &item)| {
                    let ns = &nbrs[item];
                    let key = if ns.is_empty() {
                        i as f64 * scale
                    } else {
                        ns.iter().map(|&x| pos[x] as f64).sum::<f64>() / ns.len() as f64
                    };
                    (key, item)
                })
                .collect();
            // Stable, so ties keep their current order and the result is deterministic.
            keyed.sort_by(|a, b| a.0.total_cmp(&b.0));
            g.order[l] = keyed.into_iter().map(|(_, item)| item).collect();
            keep_beside(&mut g.order[l], &g.items);
            for (i, &item) in g.order[l].iter().enumerate() {
                pos[item] = i;
            }
        }
        transpose(g, &mut pos);
        let c = crossings(g, &pos);
        if c < best_crossings {
            best_crossings = c;
            best = g.order.clone();
        }
    }
    g.order = best;
}

/// Swaps neighbours within a layer while that lowers the crossings with both adjacent
/// layers. `Beside` items stay put: they belong next to their node.
fn transpose(g: &mut Layered, pos: &mut [usize]) {
    let pair = |a: usize, b: usize, pos: &[usize]| {
        let mut c = 0;
        for nbrs in [&g.up, &g.down] {
            for &x in &nbrs[a] {
                c += nbrs[b].iter().filter(|&&y| pos[x] > pos[y]).count();
            }
        }
        c
    };
    for l in 0..g.order.len() {
        for _ in 0..4 {
            let mut improved = false;
            for i in 1..g.order[l].len() {
                let (a, b) = (g.order[l][i - 1], g.order[l][i]);
                if matches!(g.items[a], Item::Beside(_)) || matches!(g.items[b], Item::Beside(_)) {
                    continue;
                }
                if pair(b, a, pos) < pair(a, b, pos) {
                    g.order[l].swap(i - 1, i);
                    pos[a] = i;
                    pos[b] = i - 1;
                    improved = true;
                }
            }
            if !improved {
                break;
            }
        }
        keep_beside(&mut g.order[l], &g.items);
        for (i, &item) in g.order[l].iter().enumerate() {
            pos[item] = i;
        }
    }
}

/// Crossings between every pair of adjacent layers: the inversions among the hops between
/// them once sorted by their upper end, counted with a Fenwick tree.
fn crossings(g: &Layered, pos: &[usize]) -> usize {
    let mut total = 0;
    for l in 0..g.order.len().saturating_sub(1) {
        let mut hops: Vec<(usize, usize)> = g.order[l]
            .iter()
            .flat_map(|&a| g.down[a].iter().map(move |&b| (pos[a], pos[b])))
            .collect();
        hops.sort_unstable();
        let width = g.order[l + 1].len() + 1;
        let mut tree = vec![0usize; width + 1];
        for (seen, &(_, b)) in hops.iter().enumerate() {
            // Hops already seen whose lower end is right of this one's cross it.
            let mut at_most = 0;
            let mut i = b + 1;
            while i > 0 {
                at_most += tree[i];
                i &= i - 1;
            }
            total += seen - at_most;
            let mut i = b + 1;
            while i <= width {
                tree[i] += 1;
                i += i & i.wrapping_neg();
            }
        }
    }
    total
}

#[cfg(test)]
mod tests {
    use super::super::Link;
    use super::super::layout::layer_graph;
    use super::*;

    fn link(from: usize, to: usize) -> Link {
        Link {
            from,
            to,
            label: String::new(),
        }
    }

    fn positions(g: &Layered) -> Vec<usize> {
        let mut pos = vec![0; g.items.len()];
        for row in &g.order {
            for (i, &item) in row.iter().enumerate() {
                pos[item] = i;
            }
        }
        pos
    }

    #[test]
    fn beside_items_follow_their_node() {
        let items = [Item::Node(0), Item::Node(1), Item::Beside(0), Item::Dummy];
        let mut row = vec![2, 1, 3, 0];
        keep_beside(&mut row, &items);
        assert_eq!(row, vec![1, 3, 0, 2]);
    }

    #[test]
    fn crossing_reduction_untangles_a_crossed_pair() {
        // 0 -> {1, 2}; 1 -> 4, 2 -> 3. Discovery order puts 1 left of 2, so 4 belongs left
        // of 3: start with 3 left of 4 and let the sweeps fix it.
        let links = [link(0, 1), link(0, 2), link(1, 4), link(2, 3)];
        let mut g = layer_graph(5, 0, &links);
        g.order[2] = vec![1, 2];
        g.order[4] = vec![3, 4];
        assert_eq!(crossings(&g, &positions(&g)), 1);
        reduce_crossings(&mut g);
        assert_eq!(crossings(&g, &positions(&g)), 0);
        assert_eq!(layer_graph(5, 0, &links).order[4], vec![4, 3]);
    }

    #[test]
    fn crossing_count_matches_brute_force() {
        let mut rng = fastrand::Rng::with_seed(7);
        for _ in 0..50 {
            let n = rng.usize(1..25);
            let links: Vec<Link> = (0..rng.usize(0..60))
                .map(|_| link(rng.usize(..n), rng.usize(..n)))
                .collect();
            let g = layer_graph(n, 0, &links);
            let pos = positions(&g);
            let pos = pos.as_slice();
            let mut brute = 0;
            for l in 0..g.order.len().saturating_sub(1) {
                let hops: Vec<(usize, usize)> = g.order[l]
                    .iter()
                    .flat_map(|&a| g.down[a].iter().map(move |&b| (pos[a], pos[b])))
                    .collect();
                for (i, x) in hops.iter().enumerate() {
                    brute += hops[i + 1..]
                        .iter()
                        .filter(|y| (x.0 < y.0 && x.1 > y.1) || (x.0 > y.0 && x.1 < y.1))
                        .count();
                }
            }
            assert_eq!(crossings(&g, pos), brute);
        }
    }
}
