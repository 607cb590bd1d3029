//! One rank's share of a Lagrangian system: owned nodes, halo, local sites, exchange lists
//! (docs/DESIGN.md §16.5.2).
//!
//! Rank r owns the nodes O_r of a [`Partition`]. It keeps every site that touches an owned
//! node (in the global site order) and every node those sites read; the nodes read but not
//! owned are its halo H_r. Then each owned row of M and b (M_ij = Σ_s ∂²ρ_s/∂v_i∂v_j over the
//! sites s ∋ i) has all its contributions, added in the same order as the global assembly,
//! so the owned rows are bitwise those of the single-process system; the columns of those rows
//! are O_r ∪ H_r, so a matrix–vector product over the owned rows needs x on the halo only.
//!
//! Local numbering: owned nodes first (ascending global index), then the halo grouped by owner
//! rank (ascending), ascending global index within a group. Rank p's halo nodes owned by r are
//! exactly the r-owned nodes of sites that also touch a p-owned node — both ranks hold those
//! sites, so each computes the other's side of the exchange without communication, in the same
//! (ascending global) order.

use super::partition::Partition;
use crate::dynamics::Dynamics;
use crate::lagrangian::{Lagrangian, Term};
use crate::sites::Sites;
use crate::solve::SolverKind;
use crate::{Error, Result};

/// Nodes exchanged with one neighbour rank.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Neighbour {
    pub rank: usize,
    /// Local indices of owned nodes this neighbour reads (ascending global index).
    pub send: Vec<usize>,
    /// Local indices of the halo nodes it owns: a contiguous range of the halo.
    pub recv: std::ops::Range<usize>,
}

/// One rank's part of a system.
#[derive(Clone)]
pub struct Subdomain {
    pub rank: usize,
    pub parts: usize,
    /// Coordinates per node.
    pub dof: usize,
    /// Global index of every local node: the `n_owned` owned nodes, then the halo.
    pub global: Vec<usize>,
    pub n_owned: usize,
    /// Neighbour ranks (ascending) with their exchange lists.
    pub neighbours: Vec<Neighbour>,
    /// Per term, the global indices of the local sites (ascending).
    pub site_ids: Vec<Vec<usize>>,
    /// Per term, whether a local site is *counted* here (its first node is owned): every global
    /// site is counted on exactly one rank (energies, sums over sites).
    pub counted: Vec<Vec<bool>>,
    /// The local Lagrangian: the local sites renumbered to local nodes.
    pub lagrangian: Lagrangian,
    /// Local coordinates held fixed (owned or halo).
    pub fixed: Vec<usize>,
}

impl std::fmt::Debug for Subdomain {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Subdomain")
            .field("rank", &self.rank)
            .field("n_owned", &self.n_owned)
            .field("n_halo", &self.n_halo())
            .field("neighbours", &self.neighbours.len())
            .finish()
    }
}

impl Subdomain {
    /// Rank `rank`'s part of `lag` (with the globally fixed coordinates `fixed`) under `part`.
    pub fn new(lag: &Lagrangian, fixed: &[usize], part: &Partition, rank: usize) -> Result<Self> {
        let n = lag.n_nodes;
        let d = lag.dof;
        if part.owner.len() != n {
            return Err(Error::input(format!(
                "the partition covers {} nodes but the system has {n}",
                part.owner.len()
            )));
        }
        if rank >= part.parts {
            return Err(Error::input(format!(
                "rank {rank} is outside the partition's {} parts",
                part.parts
            )));
        }
        let r = rank as u32;
        let owned: Vec<usize> = (0..n).filter(|&i| part.owner[i] == r).collect();
        if owned.is_empty() {
            return Err(Error::input(format!("rank {rank} owns no node")));
        }
        // Local sites: those touching an owned node.
        let mut site_ids = Vec::with_capacity(lag.terms.len());
        let mut read = vec![false; n];
        // send[p]: r-owned nodes in sites that also touch a p-owned node.
        let mut send_to = vec![Vec::<usize>::new(); part.parts];
        for t in &lag.terms {
            let mut ids = Vec::new();
            for s in 0..t.sites.len() {
                let nb = t.sites.neighbourhood(s);
                if !nb.iter().any(|&i| part.owner[i] == r) {
                    continue;
                }
                ids.push(s);
                for &i in nb {
                    read[i] = true;
                    let p = part.owner[i] as usize;
                    if p != rank {
                        send_to[p].extend(nb.iter().copied().filter(|&j| part.owner[j] == r));
                    }
                }
            }
            site_ids.push(ids);
        }
        let mut halo: Vec<usize> = (0..n).filter(|&i| read[i] && part.owner[i] != r).collect();
        halo.sort_by_key(|&i| (part.owner[i], i));
        let n_owned = owned.len();
        let global: Vec<usize> = owned.into_iter().chain(halo).collect();
        let mut local = vec![usize::MAX; n];
        for (l, &g) in global.iter().enumerate() {
            local[g] = l;
        }
        let mut neighbours = Vec::new();
        let mut h = n_owned;
        for (p, mut send) in send_to.into_iter().enumerate() {
            let count = global[h..]
                .iter()
                .take_while(|&&g| part.owner[g] as usize == p)
                .count();
            if send.is_empty() && count == 0 {
                continue;
            }
            send.sort_unstable();
            send.dedup();
            neighbours.push(Neighbour {
                rank: p,
                send: send.into_iter().map(|g| local[g]).collect(),
                recv: h..h + count,
            });
            h += count;
        }
        debug_assert_eq!(h, global.len());
        let mut terms = Vec::with_capacity(lag.terms.len());
        let mut counted = Vec::with_capacity(lag.terms.len());
        for (t, ids) in lag.terms.iter().zip(&site_ids) {
            let k = t.sites.arity;
            let nf = t.sites.n_features;
            let mut nodes = Vec::with_capacity(ids.len() * k);
            let mut features = Vec::with_capacity(ids.len() * nf);
            let mut cnt = Vec::with_capacity(ids.len());
            for &s in ids {
                let nb = t.sites.neighbourhood(s);
                nodes.extend(nb.iter().map(|&i| local[i]));
                cnt.push(part.owner[nb[0]] == r);
                if nf > 0 {
                    features.extend_from_slice(t.sites.features_of(s));
                }
            }
            let sites = Sites {
                arity: k,
                nodes,
                n_features: nf,
                features,
            };
            terms.push(Term {
                sites,
                density: t.density.clone(),
            });
            counted.push(cnt);
        }
        let lagrangian = Lagrangian {
            n_nodes: global.len(),
            dof: d,
            terms,
        };
        let mut fixed_local: Vec<usize> = fixed
            .iter()
            .filter(|&&j| j < n * d && local[j / d] != usize::MAX)
            .map(|&j| local[j / d] * d + j % d)
            .collect();
        fixed_local.sort_unstable();
        Ok(Subdomain {
            rank,
            parts: part.parts,
            dof: d,
            global,
            n_owned,
            neighbours,
            site_ids,
            counted,
            lagrangian,
            fixed: fixed_local,
        })
    }

    /// Local nodes (owned + halo).
    pub fn n_local(&self) -> usize {
        self.global.len()
    }

    /// Owned coordinates.
    pub fn n_owned_coords(&self) -> usize {
        self.n_owned * self.dof
    }

    /// Halo nodes.
    pub fn n_halo(&self) -> usize {
        self.global.len() - self.n_owned
    }

    /// Nodes sent per halo exchange (sum over neighbours).
    pub fn n_send(&self) -> usize {
        self.neighbours.iter().map(|nb| nb.send.len()).sum()
    }

    /// The local system's [`Dynamics`]: its owned rows of M and b are the global ones, its halo
    /// rows are partial and never used. Its solver plan is never factorised (the distributed
    /// solve works on the owned rows); `Auto` keeps it cheap for a diagonal M.
    pub fn dynamics(&self) -> Result<Dynamics> {
        let dy = Dynamics::new(
            self.lagrangian.clone(),
            SolverKind::Auto,
            crate::graph::GraphKind::General,
        )?;
        if self.fixed.is_empty() {
            Ok(dy)
        } else {
            dy.with_fixed(&self.fixed)
        }
    }

    /// Copy the owned and halo values of a global per-coordinate vector into a local one.
    pub fn scatter(&self, global: &[f64], local: &mut [f64]) {
        let d = self.dof;
        for (l, &g) in self.global.iter().enumerate() {
            local[l * d..(l + 1) * d].copy_from_slice(&global[g * d..(g + 1) * d]);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::testing;
    use crate::domain::PartitionMethod;

    /// Emulate R ranks in one process: the owned rows of every rank's local M and b, stacked,
    /// are bitwise the rows of the global M and b; every global site is counted once; the
    /// exchange lists of two ranks mirror each other.
    #[test]
    fn stacked_owned_rows_equal_the_global_system() {
        for case in testing::cases().unwrap() {
            let mut g = case.dynamics;
            g.evaluate_sites_accel(&case.q, &case.v).unwrap();
            g.assemble_accel();
            let gm = g.mass_matrix();
            let d = g.lagrangian.dof;
            for method in [PartitionMethod::Auto, PartitionMethod::Graph] {
                for parts in [1, 2, 3, 5] {
                    let pos = case.positions.as_ref().map(|(p, k)| (p.as_slice(), *k));
                    let part = Partition::of_lagrangian(&g.lagrangian, pos, method, parts).unwrap();
                    let subs: Vec<Subdomain> = (0..parts)
                        .map(|r| Subdomain::new(&g.lagrangian, g.fixed_coords(), &part, r).unwrap())
                        .collect();
                    let mut seen_rows = vec![0usize; g.n_coords()];
                    let mut counted = vec![0usize; g.lagrangian.terms.len()];
                    for sub in &subs {
                        let mut dy = sub.dynamics().unwrap();
                        let nl = sub.n_local() * d;
                        let (mut ql, mut vl) = (vec![0.0; nl], vec![0.0; nl]);
                        sub.scatter(&case.q, &mut ql);
                        sub.scatter(&case.v, &mut vl);
                        dy.evaluate_sites_accel(&ql, &vl).unwrap();
                        dy.assemble_accel();
                        let p = &dy.pattern;
                        for li in 0..sub.n_owned_coords() {
                            let gi = sub.global[li / d] * d + li % d;
                            seen_rows[gi] += 1;
                            assert_eq!(
                                dy.rhs[li].to_bits(),
                                g.rhs[gi].to_bits(),
                                "{} b row {gi}",
                                case.name
                            );
                            let row = gm.outer_view(gi).unwrap();
                            assert_eq!(
                                row.nnz(),
                                p.indptr[li + 1] - p.indptr[li],
                                "{} row {gi}",
                                case.name
                            );
                            for k in p.indptr[li]..p.indptr[li + 1] {
                                let lj = p.indices[k];
                                let gj = sub.global[lj / d] * d + lj % d;
                                let want = row.get(gj).copied().expect("entry in the global row");
                                assert_eq!(
                                    dy.mass[k].to_bits(),
                                    want.to_bits(),
                                    "{} M({gi},{gj})",
                                    case.name
                                );
                            }
                        }
                        for (t, c) in sub.counted.iter().enumerate() {
                            counted[t] += c.iter().filter(|&&x| x).count();
                        }
                        // Mirror: what r sends p is what p receives from r, in global order.
                        for nb in &sub.neighbours {
                            let other = &subs[nb.rank];
                            let back = other
                                .neighbours
                                .iter()
                                .find(|o| o.rank == sub.rank)
                                .unwrap();
                            let sent: Vec<usize> = nb.send.iter().map(|&l| sub.global[l]).collect();
                            assert_eq!(sent, other.global[back.recv.clone()].to_vec());
                        }
                    }
                    assert!(seen_rows.iter().all(|&c| c == 1));
                    for (t, term) in g.lagrangian.terms.iter().enumerate() {
                        assert_eq!(counted[t], term.sites.len());
                    }
                }
            }
        }
    }
}
