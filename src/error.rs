//! One error type for the whole crate. Every variant names the problem and, where there is one,
//! the place (file, path inside the file, node or site index) so the CLI can print it verbatim.

pub use crate::integrate::IntegrateError;
pub use crate::parallel::CommError;
pub use crate::solve::SolveError;
pub use crate::train::TrainError;
use std::fmt;
use std::path::PathBuf;

/// Errors returned by lgn. Displayed messages are meant for end users.
///
/// Each layer has its own typed error — [`SolveError`] (the mass-matrix solve),
/// [`IntegrateError`] (time integration), [`TrainError`] (training) — wrapped here, and
/// reachable through [`std::error::Error::source`]; [`Error::At`] adds where it happened.
#[derive(Debug)]
pub enum Error {
    /// Bad user input: wrong shapes, NaN/Inf values, impossible graph sizes, unknown names.
    /// The message names the field or argument.
    Input(String),
    /// The mass matrix M = ∂²L/∂q̇∂q̇ could not be factorised or solved.
    Solve(SolveError),
    /// Time integration failed (non-finite state, step limits, an implicit step).
    Integrate(IntegrateError),
    /// Training produced no usable model.
    Train(TrainError),
    /// A file could not be read or written, or does not follow the lgn schema.
    /// `location` is the path inside the file (e.g. an HDF5 dataset), when known.
    File {
        path: PathBuf,
        location: Option<String>,
        msg: String,
    },
    /// A communication between MPI ranks failed (docs/DESIGN.md §16).
    Comm(CommError),
    /// `source` happened at `place` (a sample, a frame, a file).
    At { place: String, source: Box<Error> },
}

/// Crate-wide result alias.
pub type Result<T> = std::result::Result<T, Error>;

impl From<SolveError> for Error {
    fn from(e: SolveError) -> Self {
        Error::Solve(e)
    }
}
impl From<IntegrateError> for Error {
    fn from(e: IntegrateError) -> Self {
        Error::Integrate(e)
    }
}
impl From<CommError> for Error {
    fn from(e: CommError) -> Self {
        Error::Comm(e)
    }
}
impl From<TrainError> for Error {
    fn from(e: TrainError) -> Self {
        Error::Train(e)
    }
}

impl Error {
    /// Shorthand for [`Error::Input`].
    pub fn input(msg: impl Into<String>) -> Self {
        Error::Input(msg.into())
    }
    /// The innermost error (past every [`Error::At`]).
    pub fn root(&self) -> &Error {
        match self {
            Error::At { source, .. } => source.root(),
            e => e,
        }
    }
    /// Say where the error happened (e.g. "sample 12", or the argument a value came from): an
    /// input error "X" becomes "context: X"; a file error keeps its file and gets "context: "
    /// before its message; a typed error is wrapped in [`Error::At`].
    pub fn context(self, context: &str) -> Self {
        match self {
            Error::Input(m) => Error::Input(format!("{context}: {m}")),
            Error::File {
                path,
                location,
                msg,
            } => Error::File {
                path,
                location,
                msg: format!("{context}: {msg}"),
            },
            e => Error::At {
                place: context.to_string(),
                source: Box::new(e),
            },
        }
    }
    /// An input or mass-matrix error caused by the contents of `path` (a graph, mesh or model
    /// file) names it: input errors become file errors, solve errors are placed in the file;
    /// file and integration errors are unchanged.
    pub fn in_file(self, path: impl Into<PathBuf>) -> Self {
        match self {
            Error::Input(msg) => Error::File {
                path: path.into(),
                location: None,
                msg,
            },
            e @ Error::Solve(_) => Error::At {
                place: path.into().display().to_string(),
                source: Box::new(e),
            },
            e => e,
        }
    }
    /// Shorthand for [`Error::File`] without an inner location.
    pub fn file(path: impl Into<PathBuf>, msg: impl Into<String>) -> Self {
        Error::File {
            path: path.into(),
            location: None,
            msg: msg.into(),
        }
    }
    /// Shorthand for [`Error::File`] with a location inside the file.
    pub fn file_at(
        path: impl Into<PathBuf>,
        location: impl Into<String>,
        msg: impl Into<String>,
    ) -> Self {
        Error::File {
            path: path.into(),
            location: Some(location.into()),
            msg: msg.into(),
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Input(m) => write!(f, "invalid input: {m}"),
            Error::Solve(e) => write!(f, "singular mass matrix: {e}"),
            Error::Integrate(e) => write!(f, "integration failed: {e}"),
            Error::Train(e) => write!(f, "{e}"),
            Error::Comm(e) => write!(f, "MPI: {e}"),
            Error::File {
                path,
                location: Some(loc),
                msg,
            } => write!(f, "{}: {loc}: {msg}", path.display()),
            Error::File {
                path,
                location: None,
                msg,
            } => write!(f, "{}: {msg}", path.display()),
            Error::At { place, source } => write!(f, "{place}: {source}"),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Solve(e) => Some(e),
            Error::Integrate(e) => Some(e),
            Error::Train(e) => Some(e),
            Error::Comm(e) => Some(e),
            Error::At { source, .. } => Some(source.as_ref()),
            Error::Input(_) | Error::File { .. } => None,
        }
    }
}

/// Check that every value is finite; name the first offender.
pub fn check_finite(what: &str, xs: &[f64]) -> Result<()> {
    if let Some((i, x)) = xs.iter().enumerate().find(|(_, x)| !x.is_finite()) {
        return Err(Error::input(format!("{what}[{i}] = {x} is not finite")));
    }
    Ok(())
}
