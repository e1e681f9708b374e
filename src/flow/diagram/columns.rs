//! x positions for a layered diagram.
//!
//! Each layer's x positions are the least-squares fit to the mean x of every item's
//! neighbours, under the order and the minimum gaps, solved exactly per layer by pooling
//! adjacent violators; sweeps down and up let the layers settle against each other. Then
//! each arrow's placeholders are lined up wherever there is room, so lanes run straight.

use super::layout::{Item, Layered};

const NODE_GAP: f64 = 28.0;
const LANE_GAP: f64 = 14.0;
const BESIDE_GAP: f64 = 18.0;
/// Sweeps of the fit: the first ones look one way only, which spreads a layer out after
/// the one it follows; the rest balance both ways and let leaves line up with their node.
const ONE_WAY_PASSES: usize = 8;
const PASSES: usize = 24;
const UP_PULL: f64 = 2.0;

/// How wide each item is, and so how far apart neighbours in a layer must be.
pub(super) struct Spacing<'a> {
    pub g: &'a Layered,
    /// Per item: the box for a node, the label for the dummy that carries one, else 0.
    pub width: Vec<f64>,
    /// Per node: room kept free left of the box for its self-loop and its label.
    pub loop_room: Vec<f64>,
}

impl Spacing<'_> {
    fn half(&self, i: usize) -> f64 {
        self.width[i] / 2.0
    }

    fn left(&self, i: usize) -> f64 {
        match self.g.items[i] {
            Item::Node(u) => self.half(i) + self.loop_room[u],
            _ => self.half(i),
        }
    }

    /// Least distance between the centres of `a` and its right neighbour `b`.
    fn sep(&self, a: usize, b: usize) -> f64 {
        let gap = match (self.g.items[a], self.g.items[b]) {
            (Item::Node(_), Item::Beside(_)) => BESIDE_GAP,
            (Item::Node(_), Item::Node(_)) => NODE_GAP,
            _ => LANE_GAP,
        };
        self.half(a) + gap + self.left(b)
    }

    /// Where the side arms of node `h` belong: just right of it.
    fn anchor(&self, h: usize, x: &[f64]) -> f64 {
        x[h] + self.half(h) + BESIDE_GAP
    }
}

/// Centre x of every item, the leftmost extent at 0.
pub(super) fn x_positions(s: &Spacing) -> Vec<f64> {
    let g = s.g;
    let mut x = vec![0.0; g.items.len()];
    for row in &g.order {
        let mut at = 0.0;
        for (k, &i) in row.iter().enumerate() {
            if k > 0 {
                at += s.sep(row[k - 1], i);
            }
            x[i] = at;
        }
    }
    for pass in 0..PASSES {
        let (use_up, use_down) = match pass {
            p if p >= ONE_WAY_PASSES => (true, true),
            p if p % 2 == 0 => (true, false),
            _ => (false, true),
        };
        let rows: Vec<usize> = if pass % 2 == 0 {
            (0..g.order.len()).collect()
        } else {
            (0..g.order.len()).rev().collect()
        };
        for l in rows {
            let row = &g.order[l];
            let mut desired = Vec::with_capacity(row.len());
            let mut weight = Vec::with_capacity(row.len());
            for &i in row {
                let mut sum = 0.0;
                let mut count = 0.0;
                // What comes before counts double: a box sits under the box that leads to
                // it, and an arrow drops straight from its source and bends near its
                // target, rather than everything drifting towards the shared last nodes.
                let nbrs = [(use_up, &g.up[i], UP_PULL), (use_down, &g.down[i], 1.0)];
                if let Item::Beside(h) = g.items[i] {
                    // Side arms stay short: the lane rises next to its box and bends at
                    // the far end instead.
                    sum += s.anchor(h, &x);
                    count += 1.0;
                } else {
                    for (_, nbrs, pull) in nbrs.into_iter().filter(|n| n.0) {
                        for &j in nbrs {
                            sum += pull * x[j];
                            count += pull;
                        }
                    }
                }
                // Placeholders hold their place harder than boxes, which keeps lanes
                // straight; an item with nothing pulling it just makes way.
                let w = match g.items[i] {
                    Item::Node(_) => 1.0,
                    _ => 2.0,
                };
                if count > 0.0 {
                    desired.push(sum / count);
                    weight.push(w);
                } else {
                    desired.push(x[i]);
                    weight.push(0.05);
                }
            }
            let seps: Vec<f64> = row.windows(2).map(|w| s.sep(w[0], w[1])).collect();
            for (&i, xi) in row.iter().zip(fit(&desired, &weight, &seps)) {
                x[i] = xi;
            }
        }
    }
    straighten(s, &mut x);
    let min = (0..g.items.len())
        .map(|i| x[i] - s.left(i))
        .fold(f64::INFINITY, f64::min);
    if min.is_finite() {
        x.iter_mut().for_each(|v| *v -= min);
    }
    x
}

/// Least squares with order: minimises the weighted squared distance of each x to its
/// desired value subject to `x[i + 1] - x[i] >= seps[i]`. Shifting each x by the sum of
/// the gaps before it turns this into isotonic regression, which pooling adjacent
/// violators solves exactly.
fn fit(desired: &[f64], weight: &[f64], seps: &[f64]) -> Vec<f64> {
    let mut offset = Vec::with_capacity(desired.len());
    let mut at = 0.0;
    for i in 0..desired.len() {
        if i > 0 {
            at += seps[i - 1];
        }
        offset.push(at);
    }
    // (total weight, weighted sum, count) per pooled block.
    let mut blocks: Vec<(f64, f64, usize)> = Vec::new();
    for i in 0..desired.len() {
        blocks.push((weight[i], weight[i] * (desired[i] - offset[i]), 1));
        while let [.., (w1, s1, c1), (w2, s2, c2)] = blocks[..] {
            if s1 / w1 <= s2 / w2 {
                break;
            }
            blocks.pop();
            let last = blocks.len() - 1;
            blocks[last] = (w1 + w2, s1 + s2, c1 + c2);
        }
    }
    let mut out = Vec::with_capacity(desired.len());
    for (w, s, c) in blocks {
        for _ in 0..c {
            out.push(s / w + offset[out.len()]);
        }
    }
    out
}

/// Lines up the placeholders of each arrow on one x wherever their neighbours leave room,
/// so a long arrow runs as a straight lane with a bend at each end rather than wandering
/// a little at every layer.
fn straighten(s: &Spacing, x: &mut [f64]) {
    let g = s.g;
    let mut at = vec![0usize; g.items.len()];
    for row in &g.order {
        for (k, &i) in row.iter().enumerate() {
            at[i] = k;
        }
    }
    let room = |i: usize, x: &[f64]| {
        let row = &g.order[g.layer[i]];
        let k = at[i];
        let lo = if k > 0 {
            x[row[k - 1]] + s.sep(row[k - 1], i)
        } else {
            f64::NEG_INFINITY
        };
        let hi = row
            .get(k + 1)
            .map_or(f64::INFINITY, |&j| x[j] - s.sep(i, j));
        (lo, hi)
    };
    // A node joined to nothing but this arrow (the first or last box of a flow) can move
    // with it.
    let leaf = |i: usize| g.up[i].len() + g.down[i].len() == 1;
    for r in &g.routes {
        let lane: Vec<usize> = r
            .items
            .iter()
            .copied()
            .filter(|&i| !matches!(g.items[i], Item::Node(_)) || leaf(i))
            .collect();
        // A box this arrow alone enters (or leaves) takes it at its centre: lining up with
        // that centre makes the arrow straight all the way.
        let single = |i: Option<&usize>, nbrs: &[Vec<usize>]| {
            i.copied()
                .filter(|&i| matches!(g.items[i], Item::Node(_)) && !leaf(i) && nbrs[i].len() == 1)
        };
        let ends = [
            single(r.items.last(), &g.up),
            single(r.items.first(), &g.down),
        ];
        let mut k = 0;
        while k < lane.len() {
            // The longest run from k that has one x in reach of all its items.
            let (mut lo, mut hi) = room(lane[k], x);
            let mut end = k + 1;
            while let Some(&i) = lane.get(end) {
                let (l, h) = room(i, x);
                if l.max(lo) > h.min(hi) {
                    break;
                }
                (lo, hi) = (l.max(lo), h.min(hi));
                end += 1;
            }
            let mean = lane[k..end].iter().map(|&i| x[i]).sum::<f64>() / (end - k) as f64;
            let beside_ends = lane[k..end].iter().filter_map(|&i| match g.items[i] {
                Item::Beside(h) => Some(s.anchor(h, x)),
                _ => None,
            });
            let target = ends
                .iter()
                .flatten()
                .map(|&e| x[e])
                .chain(beside_ends)
                .find(|&c| c >= lo && c <= hi)
                .unwrap_or(mean.max(lo).min(hi));
            if target.is_finite() {
                lane[k..end].iter().for_each(|&i| x[i] = target);
            }
            k = end;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fit_keeps_order_and_gaps() {
        // All want x = 0: they spread around it, evenly.
        let x = fit(&[0.0, 0.0, 0.0], &[1.0, 1.0, 1.0], &[10.0, 10.0]);
        assert_eq!(x, vec![-10.0, 0.0, 10.0]);
        // Already far enough apart: left where they want to be.
        let x = fit(&[0.0, 50.0], &[1.0, 1.0], &[10.0]);
        assert_eq!(x, vec![0.0, 50.0]);
        assert!(fit(&[], &[], &[]).is_empty());
    }
}
