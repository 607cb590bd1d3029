//! Node partitions for domain decomposition (docs/DESIGN.md §16.5.1).
//!
//! * [`Partition::rcb`]: recursive coordinate bisection of node positions — split the longest
//!   extent of the current box at the weighted median, recurse. O(n log n log P), balanced to
//!   one node, boundaries ∝ (n/P)^{(d−1)/d} on quasi-uniform meshes.
//! * [`Partition::level_bisection`]: recursive level-structure (BFS) bisection of the node
//!   coupling graph, for graphs without positions: a BFS from a pseudo-peripheral node orders
//!   the nodes by distance, and the first share of that order is one half. Connected halves on
//!   connected graphs; boundaries are BFS level sets.
//!
//! Both are deterministic (ties broken by node index), so every rank computes the same
//! partition from the same graph without communication.

use crate::lagrangian::Lagrangian;
use crate::{Error, Result};

/// How nodes are split among ranks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PartitionMethod {
    /// Coordinate bisection when the graph has node positions, else level-structure bisection.
    Auto,
    /// Recursive coordinate bisection (needs node positions).
    Rcb,
    /// Recursive level-structure (BFS) bisection of the coupling graph.
    Graph,
}

crate::named!(PartitionMethod {
    Auto => "auto": "coordinate bisection when the graph has node positions, else graph bisection",
    Rcb => "rcb": "recursive coordinate bisection of the node positions (meshes)",
    Graph => "graph": "recursive BFS level-structure bisection of the coupling graph",
});

/// Owner rank of every node.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Partition {
    /// Number of parts P.
    pub parts: usize,
    /// `owner[i]` ∈ 0..P for every node i.
    pub owner: Vec<u32>,
}

/// Symmetric node adjacency (CSR, no self loops): i ~ j when they share a site of any term.
#[derive(Clone, Debug)]
pub struct Adjacency {
    pub ptr: Vec<usize>,
    pub idx: Vec<usize>,
}

impl Adjacency {
    /// Nodes coupled through the sites of `lag` (the coupling the solve sees).
    pub fn of_lagrangian(lag: &Lagrangian) -> Adjacency {
        let n = lag.n_nodes;
        let mut pairs: Vec<(usize, usize)> = Vec::new();
        for t in &lag.terms {
            for s in 0..t.sites.len() {
                let nb = t.sites.neighbourhood(s);
                for &a in nb {
                    for &b in nb {
                        if a != b {
                            pairs.push((a, b));
                        }
                    }
                }
            }
        }
        pairs.sort_unstable();
        pairs.dedup();
        let mut ptr = vec![0usize; n + 1];
        for &(a, _) in &pairs {
            ptr[a + 1] += 1;
        }
        for i in 0..n {
            ptr[i + 1] += ptr[i];
        }
        Adjacency {
            ptr,
            idx: pairs.into_iter().map(|(_, b)| b).collect(),
        }
    }

    pub fn n_nodes(&self) -> usize {
        self.ptr.len() - 1
    }

    pub fn neighbours(&self, i: usize) -> &[usize] {
        &self.idx[self.ptr[i]..self.ptr[i + 1]]
    }
}

fn check_parts(parts: usize, n: usize) -> Result<()> {
    if parts == 0 {
        return Err(Error::input("a partition needs at least one part"));
    }
    if parts > n {
        return Err(Error::input(format!(
            "cannot split {n} nodes among {parts} ranks: every rank needs at least one node"
        )));
    }
    if parts > u32::MAX as usize {
        return Err(Error::input(format!(
            "{parts} parts is more than supported"
        )));
    }
    Ok(())
}

impl Partition {
    /// Everything on rank 0.
    pub fn single(n: usize) -> Partition {
        Partition {
            parts: 1,
            owner: vec![0; n],
        }
    }

    /// Recursive coordinate bisection of `positions` (`n × dim`, row-major) into `parts` parts
    /// of sizes differing by at most one node.
    pub fn rcb(positions: &[f64], dim: usize, parts: usize) -> Result<Partition> {
        if dim == 0 || positions.len() % dim != 0 {
            return Err(Error::input(format!(
                "node positions of length {} are not a multiple of the dimension {dim}",
                positions.len()
            )));
        }
        crate::error::check_finite("node positions", positions)?;
        let n = positions.len() / dim;
        check_parts(parts, n)?;
        let mut owner = vec![0u32; n];
        let mut nodes: Vec<usize> = (0..n).collect();
        let mut stack = vec![(0usize, n, 0u32, parts)];
        while let Some((lo, hi, first, p)) = stack.pop() {
            let set = &mut nodes[lo..hi];
            if p == 1 {
                for &i in set.iter() {
                    owner[i] = first;
                }
                continue;
            }
            // Longest extent of the bounding box.
            let axis = (0..dim)
                .map(|c| {
                    let (mn, mx) = set.iter().fold((f64::MAX, f64::MIN), |(a, b), &i| {
                        let x = positions[i * dim + c];
                        (a.min(x), b.max(x))
                    });
                    (c, mx - mn)
                })
                .fold(
                    (0, -1.0),
                    |best, (c, e)| if e > best.1 { (c, e) } else { best },
                )
                .0;
            let pl = p / 2;
            let nl = set.len() * pl / p;
            let key = |i: &usize| (positions[i * dim + axis], *i);
            set.select_nth_unstable_by(nl, |a, b| {
                let (ka, kb) = (key(a), key(b));
                ka.0.total_cmp(&kb.0).then(ka.1.cmp(&kb.1))
            });
            stack.push((lo, lo + nl, first, pl));
            stack.push((lo + nl, hi, first + pl as u32, p - pl));
        }
        Ok(Partition { parts, owner })
    }

    /// Recursive level-structure bisection of the graph `adj` into `parts` parts of sizes
    /// differing by at most one node.
    pub fn level_bisection(adj: &Adjacency, parts: usize) -> Result<Partition> {
        let n = adj.n_nodes();
        check_parts(parts, n)?;
        let mut owner = vec![0u32; n];
        // `mark[i]`: the current sub-problem id of node i (BFS stays inside it).
        let mut mark = vec![0usize; n];
        let mut seen = vec![usize::MAX; n];
        let mut stack = vec![((0..n).collect::<Vec<usize>>(), 0u32, parts, 0usize)];
        let mut next_id = 1usize;
        let mut stamp = 0usize;
        while let Some((set, first, p, id)) = stack.pop() {
            if p == 1 {
                for &i in &set {
                    owner[i] = first;
                }
                continue;
            }
            let order = bfs_order(adj, &set, &mark, id, &mut seen, &mut stamp);
            let pl = p / 2;
            let nl = set.len() * pl / p;
            let (left, right) = (order[..nl].to_vec(), order[nl..].to_vec());
            let (il, ir) = (next_id, next_id + 1);
            next_id += 2;
            for &i in &left {
                mark[i] = il;
            }
            for &i in &right {
                mark[i] = ir;
            }
            stack.push((left, first, pl, il));
            stack.push((right, first + pl as u32, p - pl, ir));
        }
        Ok(Partition { parts, owner })
    }

    /// The partition `method` chooses for `lag` with optional node `positions` (`n × dim`).
    pub fn of_lagrangian(
        lag: &Lagrangian,
        positions: Option<(&[f64], usize)>,
        method: PartitionMethod,
        parts: usize,
    ) -> Result<Partition> {
        match (method, positions) {
            (PartitionMethod::Rcb | PartitionMethod::Auto, Some((p, dim))) => {
                if p.len() != lag.n_nodes * dim {
                    return Err(Error::input(format!(
                        "{} node positions of dimension {dim} given for {} nodes",
                        p.len() / dim.max(1),
                        lag.n_nodes
                    )));
                }
                Partition::rcb(p, dim, parts)
            }
            (PartitionMethod::Rcb, None) => Err(Error::input(
                "coordinate bisection (rcb) needs node positions, and this graph has none; use the graph partition",
            )),
            _ => Partition::level_bisection(&Adjacency::of_lagrangian(lag), parts),
        }
    }

    /// Nodes per part.
    pub fn sizes(&self) -> Vec<usize> {
        let mut s = vec![0; self.parts];
        for &o in &self.owner {
            s[o as usize] += 1;
        }
        s
    }
}

/// BFS order of the nodes of `set` (those with `mark == id`) starting from a pseudo-peripheral
/// node; components one after another (in order of their smallest node), each from its own
/// pseudo-peripheral node.
fn bfs_order(
    adj: &Adjacency,
    set: &[usize],
    mark: &[usize],
    id: usize,
    seen: &mut [usize],
    stamp: &mut usize,
) -> Vec<usize> {
    let mut sorted = set.to_vec();
    sorted.sort_unstable();
    let in_set = |i: usize| mark[i] == id;
    let mut taken = std::collections::HashSet::new();
    let mut order = Vec::with_capacity(set.len());
    let mut next = 0;
    while order.len() < set.len() {
        while taken.contains(&sorted[next]) {
            next += 1;
        }
        // Two sweeps: the last node of a BFS is a pseudo-peripheral start.
        let mut start = sorted[next];
        for _ in 0..2 {
            *stamp += 1;
            start = *bfs(adj, start, &in_set, seen, *stamp)
                .last()
                .expect("a BFS visits its start");
        }
        *stamp += 1;
        let comp = bfs(adj, start, &in_set, seen, *stamp);
        taken.extend(comp.iter().copied());
        order.extend(comp);
    }
    order
}

/// Nodes reachable from `start` inside the set, in BFS order (neighbours in index order).
fn bfs(
    adj: &Adjacency,
    start: usize,
    in_set: &impl Fn(usize) -> bool,
    seen: &mut [usize],
    stamp: usize,
) -> Vec<usize> {
    let mut out = vec![start];
    seen[start] = stamp;
    let mut head = 0;
    while head < out.len() {
        let i = out[head];
        head += 1;
        for &j in adj.neighbours(i) {
            if seen[j] != stamp && in_set(j) {
                seen[j] = stamp;
                out.push(j);
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn grid_positions(nx: usize, ny: usize) -> Vec<f64> {
        (0..nx * ny)
            .flat_map(|k| [(k % nx) as f64, (k / nx) as f64])
            .collect()
    }

    #[test]
    fn rcb_balances_and_cuts_straight() {
        let (nx, ny) = (40, 10);
        let p = Partition::rcb(&grid_positions(nx, ny), 2, 4).unwrap();
        let s = p.sizes();
        assert_eq!(s.iter().sum::<usize>(), nx * ny);
        assert!(s.iter().all(|&k| k == 100), "{s:?}");
        // The longest axis is x: four vertical strips of 10 columns each.
        for k in 0..nx * ny {
            assert_eq!(p.owner[k] as usize, (k % nx) / 10);
        }
        let p3 = Partition::rcb(&grid_positions(nx, ny), 2, 3).unwrap();
        let s = p3.sizes();
        assert!(
            s.iter().max().unwrap() - s.iter().min().unwrap() <= 1,
            "{s:?}"
        );
        assert!(Partition::rcb(&grid_positions(2, 1), 2, 3).is_err());
        assert!(Partition::rcb(&[0.0, f64::NAN], 1, 1).is_err());
    }

    #[test]
    fn level_bisection_gives_connected_balanced_parts() {
        // A path 0-1-…-29 with shuffled labels: parts must be contiguous segments.
        let n = 30;
        let label: Vec<usize> = (0..n).map(|i| (i * 7) % n).collect();
        let mut nbrs = vec![vec![]; n];
        for i in 0..n - 1 {
            nbrs[label[i]].push(label[i + 1]);
            nbrs[label[i + 1]].push(label[i]);
        }
        let mut ptr = vec![0];
        let mut idx = vec![];
        for l in &mut nbrs {
            l.sort_unstable();
            idx.extend_from_slice(l);
            ptr.push(idx.len());
        }
        let adj = Adjacency { ptr, idx };
        let p = Partition::level_bisection(&adj, 3).unwrap();
        assert_eq!(p.sizes(), vec![10, 10, 10]);
        // Walking the path, the owner changes exactly twice.
        let changes = (0..n - 1)
            .filter(|&i| p.owner[label[i]] != p.owner[label[i + 1]])
            .count();
        assert_eq!(changes, 2);
    }
}
