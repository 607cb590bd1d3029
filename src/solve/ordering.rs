//! Orderings that make M banded: the ring's fold ordering and reverse Cuthill–McKee.

/// Fold ordering of a periodic ring of `n` nodes with `d` coordinates each:
/// nodes (0, n−1, 1, n−2, 2, …). Nodes at ring distance ≤ 2 land within 4 positions, so the
/// neighbour-of-neighbour mass matrix becomes a plain band of half-width 5d − 1.
pub fn fold(n: usize, d: usize) -> Vec<usize> {
    let mut nodes = Vec::with_capacity(n);
    let (mut lo, mut hi) = (0usize, n);
    while lo < hi {
        nodes.push(lo);
        lo += 1;
        if lo < hi {
            hi -= 1;
            nodes.push(hi);
        }
    }
    nodes
        .into_iter()
        .flat_map(|i| (0..d).map(move |c| i * d + c))
        .collect()
}

/// Reverse Cuthill–McKee ordering of a symmetric CSR pattern (`perm[new] = old`); each
/// connected component starts from a minimum-degree vertex.
pub fn rcm(n: usize, indptr: &[usize], indices: &[usize]) -> Vec<usize> {
    let deg: Vec<usize> = (0..n).map(|i| indptr[i + 1] - indptr[i]).collect();
    let mut by_degree: Vec<usize> = (0..n).collect();
    by_degree.sort_by_key(|&i| deg[i]);
    let mut visited = vec![false; n];
    let mut order = Vec::with_capacity(n);
    let mut nb = Vec::new();
    for &start in &by_degree {
        if visited[start] {
            continue;
        }
        visited[start] = true;
        let mut head = order.len();
        order.push(start);
        while head < order.len() {
            let v = order[head];
            head += 1;
            nb.clear();
            nb.extend(
                indices[indptr[v]..indptr[v + 1]]
                    .iter()
                    .copied()
                    .filter(|&u| !visited[u]),
            );
            nb.sort_by_key(|&u| deg[u]);
            for &u in &nb {
                if !visited[u] {
                    visited[u] = true;
                    order.push(u);
                }
            }
        }
    }
    order.reverse();
    order
}

#[cfg(test)]
mod tests {
    #[test]
    fn fold_is_a_permutation() {
        let p = super::fold(7, 2);
        let mut s = p.clone();
        s.sort();
        assert_eq!(s, (0..14).collect::<Vec<_>>());
        assert_eq!(&p[..6], &[0, 1, 12, 13, 2, 3]);
    }
}
