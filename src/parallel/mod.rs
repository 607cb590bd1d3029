//! Communication between the ranks of an MPI job (docs/DESIGN.md §16).
//!
//! [`Comm`] is what the rest of lgn sees: rank and size, a sum over ranks in a fixed order
//! (bitwise identical on every rank and independent of timing), broadcasts, a neighbour
//! exchange of `f64` buffers (halos), a gather of variable-length buffers to a root, and a
//! barrier. [`SerialComm`] (one rank) is always there; [`MpiComm`] (feature `mpi`, rsmpi over
//! Open MPI) runs over `MPI_COMM_WORLD`. [`world`] picks the one the process was started for.
//!
//! Failures are typed ([`CommError`] inside [`Error::Comm`]), never a hang: every MPI wait has
//! a deadline (`LGN_MPI_TIMEOUT` seconds, default [`DEFAULT_TIMEOUT_SECONDS`]), and [`agree`]
//! turns an error on one rank into an error on all of them, so that every rank leaves a
//! collective section together.

mod error;
#[cfg(feature = "mpi")]
mod mpi_comm;

pub use error::CommError;
#[cfg(feature = "mpi")]
pub use mpi_comm::MpiComm;

use crate::error::{Error, Result};
use std::ops::Range;
use std::time::Duration;

/// Seconds a rank waits for its peers in one communication before it gives up with
/// [`CommError::Timeout`] (overridden by the environment variable `LGN_MPI_TIMEOUT`).
pub const DEFAULT_TIMEOUT_SECONDS: f64 = 600.0;

/// The communication a distributed computation needs. All methods are collective over the
/// ranks involved (every rank calls them in the same order), except that [`Comm::exchange`]
/// involves only the listed peers.
pub trait Comm {
    /// This process's rank, `0..size`.
    fn rank(&self) -> usize;
    /// Number of ranks.
    fn size(&self) -> usize;
    /// True on rank 0, which writes the files.
    fn is_root(&self) -> bool {
        self.rank() == 0
    }
    /// Element-wise sum of `buf` over all ranks, left in `buf` on every rank. Every rank passes
    /// a buffer of the same length. The order of the additions is fixed by the ranks alone (a
    /// binary tree over rank numbers, docs/DESIGN.md §16.2): the result is bitwise identical on
    /// every rank and from run to run, whatever the timing.
    fn sum(&self, buf: &mut [f64]) -> Result<()>;
    /// Copy `buf` of rank `root` into `buf` of every rank (same length everywhere).
    fn broadcast(&self, root: usize, buf: &mut [f64]) -> Result<()>;
    /// Copy the bytes of rank `root` into `buf` of every rank (any length; resized).
    fn broadcast_bytes(&self, root: usize, buf: &mut Vec<u8>) -> Result<()>;
    /// Neighbour exchange: send each `(peer, data)` of `sends` and fill each `(peer, buf)` of
    /// `recvs` with what `peer` sent. The k-th message this rank sends to a peer is the k-th
    /// that peer receives from this rank; a received length must equal the buffer's
    /// ([`CommError::Size`] otherwise). A rank may list itself (a one-rank periodic halo).
    fn exchange(&self, sends: &[(usize, &[f64])], recvs: &mut [(usize, &mut [f64])]) -> Result<()>;
    /// Gather `local` (any length per rank) to `root`: `Some(buffers by rank)` there, `None`
    /// elsewhere.
    fn gather(&self, root: usize, local: &[f64]) -> Result<Option<Vec<Vec<f64>>>>;
    /// Wait until every rank has arrived.
    fn barrier(&self) -> Result<()>;
    /// End the whole job now with exit code `code` (every rank, `MPI_Abort`): for an error
    /// seen by one rank alone outside a collective section. Does not return.
    fn abort(&self, code: i32) -> !;
}

/// The one-rank communicator: every collective is a copy or nothing.
#[derive(Clone, Copy, Debug, Default)]
pub struct SerialComm;

fn check_root(op: &str, root: usize, size: usize) -> Result<()> {
    if root >= size {
        return Err(Error::Comm(CommError::Usage {
            op: op.into(),
            msg: format!("root rank {root} does not exist (there are {size} ranks)"),
        }));
    }
    Ok(())
}

fn check_peers(op: &str, peers: impl Iterator<Item = usize>, size: usize) -> Result<()> {
    for p in peers {
        if p >= size {
            return Err(Error::Comm(CommError::Usage {
                op: op.into(),
                msg: format!("peer rank {p} does not exist (there are {size} ranks)"),
            }));
        }
    }
    Ok(())
}

impl Comm for SerialComm {
    fn rank(&self) -> usize {
        0
    }
    fn size(&self) -> usize {
        1
    }
    fn sum(&self, _buf: &mut [f64]) -> Result<()> {
        Ok(())
    }
    fn broadcast(&self, root: usize, _buf: &mut [f64]) -> Result<()> {
        check_root("broadcast", root, 1)
    }
    fn broadcast_bytes(&self, root: usize, _buf: &mut Vec<u8>) -> Result<()> {
        check_root("broadcast", root, 1)
    }
    fn exchange(&self, sends: &[(usize, &[f64])], recvs: &mut [(usize, &mut [f64])]) -> Result<()> {
        check_peers("exchange", sends.iter().map(|s| s.0), 1)?;
        check_peers("exchange", recvs.iter().map(|r| r.0), 1)?;
        if sends.len() != recvs.len() {
            return Err(Error::Comm(CommError::Usage {
                op: "exchange".into(),
                msg: format!(
                    "rank 0 sends {} messages to itself but receives {}",
                    sends.len(),
                    recvs.len()
                ),
            }));
        }
        for ((_, s), (_, r)) in sends.iter().zip(recvs.iter_mut()) {
            if s.len() != r.len() {
                return Err(Error::Comm(CommError::Size {
                    op: "exchange".into(),
                    rank: 0,
                    peer: 0,
                    expected: r.len(),
                    got: s.len(),
                }));
            }
            r.copy_from_slice(s);
        }
        Ok(())
    }
    fn gather(&self, root: usize, local: &[f64]) -> Result<Option<Vec<Vec<f64>>>> {
        check_root("gather", root, 1)?;
        Ok(Some(vec![local.to_vec()]))
    }
    fn barrier(&self) -> Result<()> {
        Ok(())
    }
    fn abort(&self, code: i32) -> ! {
        std::process::exit(code)
    }
}

/// Number of ranks the process was launched as, from the launcher's environment (Open MPI,
/// PMIx/Slurm, MPICH/Hydra); 1 when none is set.
pub fn launched_ranks() -> usize {
    [
        "OMPI_COMM_WORLD_SIZE",
        "PMIX_SIZE",
        "PMI_SIZE",
        "SLURM_NTASKS",
    ]
    .iter()
    .filter(|v| **v != "SLURM_NTASKS" || std::env::var_os("SLURM_PROCID").is_some())
    .find_map(|v| std::env::var(v).ok()?.parse::<usize>().ok())
    .unwrap_or(1)
}

/// True when an MPI launcher (mpirun, srun) started this process.
pub fn launched_by_mpi() -> bool {
    ["OMPI_COMM_WORLD_SIZE", "PMIX_RANK", "PMI_RANK", "PMI_SIZE"]
        .iter()
        .any(|v| std::env::var_os(v).is_some())
}

/// The wait limit of one communication: `LGN_MPI_TIMEOUT` seconds, or
/// [`DEFAULT_TIMEOUT_SECONDS`].
pub fn timeout() -> Result<Duration> {
    match std::env::var("LGN_MPI_TIMEOUT") {
        Err(_) => Ok(Duration::from_secs_f64(DEFAULT_TIMEOUT_SECONDS)),
        Ok(s) => match s.trim().parse::<f64>() {
            Ok(t) if t.is_finite() && t > 0.0 && t < 1e9 => Ok(Duration::from_secs_f64(t)),
            _ => Err(Error::input(format!(
                "LGN_MPI_TIMEOUT must be a positive number of seconds, got {s:?}"
            ))),
        },
    }
}

/// The communicator this process was started for: [`MpiComm`] over `MPI_COMM_WORLD` when an
/// MPI launcher started it (and lgn has the `mpi` feature), [`SerialComm`] otherwise. Several
/// launched ranks without the feature are an error ([`CommError::NoMpi`]): each would
/// otherwise do the whole job and write the same files. Call it once per process.
pub fn world() -> Result<Box<dyn Comm>> {
    #[cfg(feature = "mpi")]
    {
        if launched_by_mpi() {
            return Ok(Box::new(MpiComm::init(timeout()?)?));
        }
    }
    let ranks = launched_ranks();
    if ranks > 1 {
        return Err(Error::Comm(CommError::NoMpi { ranks }));
    }
    Ok(Box::new(SerialComm))
}

/// The block of `0..n` that rank `rank` of `size` owns: contiguous, in rank order, sizes
/// differing by at most one (the first `n % size` ranks hold one more).
pub fn block(n: usize, rank: usize, size: usize) -> Range<usize> {
    let (q, r) = (n / size, n % size);
    let start = rank * q + rank.min(r);
    start..start + q + usize::from(rank < r)
}

/// Make a per-rank outcome collective: if any rank's `local` is an error, every rank returns
/// an error — its own, or [`CommError::Peer`] carrying the message of the lowest failing rank.
/// Call it wherever ranks may fail independently (reading their shard, evaluating their part)
/// before the next collective, so that no rank waits for a peer that has left.
pub fn agree<T>(comm: &dyn Comm, local: Result<T>) -> Result<T> {
    if comm.size() == 1 {
        return local;
    }
    let mut failed = vec![0.0; comm.size()];
    if local.is_err() {
        failed[comm.rank()] = 1.0;
    }
    comm.sum(&mut failed)?;
    let Some(first) = failed.iter().position(|&f| f != 0.0) else {
        return local;
    };
    let mut msg = match &local {
        Err(e) if comm.rank() == first => e.to_string().into_bytes(),
        _ => vec![],
    };
    comm.broadcast_bytes(first, &mut msg)?;
    match local {
        Err(e) => Err(e),
        Ok(_) => Err(Error::Comm(CommError::Peer {
            rank: first,
            msg: String::from_utf8_lossy(&msg).into_owned(),
        })),
    }
}

/// A `mpirun -n ranks` command line for this machine's Open MPI (with `--oversubscribe`, and
/// the root permission variables when run as root), or `None` when `mpirun` is not on the
/// `PATH`. For tests and benchmarks that start a multi-rank job from a single process.
pub fn mpirun(ranks: usize) -> Option<std::process::Command> {
    let found = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).any(|d| d.join("mpirun").is_file()))
        .unwrap_or(false);
    if !found {
        return None;
    }
    let mut c = std::process::Command::new("mpirun");
    c.arg("-n").arg(ranks.to_string()).arg("--oversubscribe");
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } == 0 {
        c.env("OMPI_ALLOW_RUN_AS_ROOT", "1")
            .env("OMPI_ALLOW_RUN_AS_ROOT_CONFIRM", "1");
    }
    Some(c)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_tile_the_range_in_order() {
        for n in [0usize, 1, 5, 17, 100] {
            for size in 1..6 {
                let mut next = 0;
                for r in 0..size {
                    let b = block(n, r, size);
                    assert_eq!(b.start, next);
                    assert!(b.len() == n / size || b.len() == n / size + 1);
                    next = b.end;
                }
                assert_eq!(next, n);
            }
        }
    }

    #[test]
    fn serial_comm_collectives_are_identities_and_check_ranks() {
        let c = SerialComm;
        let mut x = vec![1.5, -2.0];
        c.sum(&mut x).unwrap();
        assert_eq!(x, vec![1.5, -2.0]);
        c.broadcast(0, &mut x).unwrap();
        assert!(matches!(
            c.broadcast(1, &mut x),
            Err(Error::Comm(CommError::Usage { .. }))
        ));
        let mut r = vec![0.0; 2];
        c.exchange(&[(0, &[3.0, 4.0])], &mut [(0, &mut r)]).unwrap();
        assert_eq!(r, vec![3.0, 4.0]);
        let mut short = vec![0.0; 1];
        assert!(matches!(
            c.exchange(&[(0, &[3.0, 4.0])], &mut [(0, &mut short)]),
            Err(Error::Comm(CommError::Size { .. }))
        ));
        assert!(c.exchange(&[(1, &[3.0])], &mut []).is_err());
        assert_eq!(c.gather(0, &x).unwrap(), Some(vec![x.clone()]));
        c.barrier().unwrap();
        assert!(agree(&c, Ok(3)).unwrap() == 3);
        assert!(agree::<()>(&c, Err(Error::input("bad"))).is_err());
    }
}
