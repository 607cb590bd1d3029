//! Why a communication between ranks failed (docs/DESIGN.md §16).

use std::fmt;

/// A failed communication between MPI ranks. Every variant names the operation and the ranks
/// involved, so that a message printed by any rank says what went wrong where.
#[derive(Clone, Debug, PartialEq)]
pub enum CommError {
    /// A peer did not take part in `op` within `seconds` (it died, hangs, or is far behind).
    Timeout {
        op: String,
        rank: usize,
        seconds: f64,
    },
    /// The MPI library returned an error code.
    Mpi {
        op: String,
        rank: usize,
        code: i32,
        msg: String,
    },
    /// A message had another length than the receiver expected (the ranks disagree about a
    /// halo or a parameter vector).
    Size {
        op: String,
        rank: usize,
        peer: usize,
        expected: usize,
        got: usize,
    },
    /// A rank or root number outside `0..size`, or another misuse of the API.
    Usage { op: String, msg: String },
    /// Another rank failed; `msg` is its own error message.
    Peer { rank: usize, msg: String },
    /// An earlier communication of this rank failed, so it no longer communicates.
    Broken { op: String },
    /// MPI was needed (several ranks were launched) but lgn was built without it.
    NoMpi { ranks: usize },
}

impl fmt::Display for CommError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CommError::Timeout { op, rank, seconds } => write!(
                f,
                "rank {rank}: {op}: no answer from the other ranks within {seconds} s (a rank died or hangs; the limit is LGN_MPI_TIMEOUT)"
            ),
            CommError::Mpi {
                op,
                rank,
                code,
                msg,
            } => write!(f, "rank {rank}: {op}: MPI error {code}: {msg}"),
            CommError::Size {
                op,
                rank,
                peer,
                expected,
                got,
            } => write!(
                f,
                "rank {rank}: {op}: rank {peer} sent {got} values where {expected} were expected"
            ),
            CommError::Usage { op, msg } => write!(f, "{op}: {msg}"),
            CommError::Peer { rank, msg } => write!(f, "rank {rank} failed: {msg}"),
            CommError::Broken { op } => write!(
                f,
                "{op}: an earlier communication failed, this rank no longer communicates"
            ),
            CommError::NoMpi { ranks } => write!(
                f,
                "lgn was started as one of {ranks} MPI ranks but was built without MPI support: rebuild it with `cargo build --release --features mpi`, or run it without mpirun"
            ),
        }
    }
}

impl std::error::Error for CommError {}
