//! One error type for the whole crate. Every variant names the problem and, where there is one,
//! the place (file, path inside the file, node or site index) so the CLI can print it verbatim.

use std::fmt;
use std::path::PathBuf;

/// Errors returned by lgn. Displayed messages are meant for end users.
#[derive(Debug)]
pub enum Error {
    /// Bad user input: wrong shapes, NaN/Inf values, impossible graph sizes, unknown names.
    Input(String),
    /// The mass matrix M = ∂²L/∂q̇∂q̇ could not be factorised (singular or numerically indefinite).
    Singular(String),
    /// Time integration failed: non-finite state, step size underflow, step limit reached,
    /// or an implicit step that did not converge. The message names the time and the cure.
    Integration(String),
    /// A file could not be read or written, or does not follow the lgn schema.
    /// `location` is the path inside the file (e.g. an HDF5 dataset), when known.
    File {
        path: PathBuf,
        location: Option<String>,
        msg: String,
    },
}

/// Crate-wide result alias.
pub type Result<T> = std::result::Result<T, Error>;

impl Error {
    /// Shorthand for [`Error::Input`].
    pub fn input(msg: impl Into<String>) -> Self {
        Error::Input(msg.into())
    }
    /// Shorthand for [`Error::Integration`].
    pub fn integration(msg: impl Into<String>) -> Self {
        Error::Integration(msg.into())
    }
    /// Prefix the message with `context` (e.g. the flag the value came from): an input error
    /// "X" becomes "context: X"; a file error keeps its file and gets "context: " before its
    /// message; the category is unchanged.
    pub fn context(self, context: &str) -> Self {
        match self {
            Error::Input(m) => Error::Input(format!("{context}: {m}")),
            Error::Singular(m) => Error::Singular(format!("{context}: {m}")),
            Error::Integration(m) => Error::Integration(format!("{context}: {m}")),
            Error::File {
                path,
                location,
                msg,
            } => Error::File {
                path,
                location,
                msg: format!("{context}: {msg}"),
            },
        }
    }
    /// An input or mass-matrix error caused by the contents of `path` (a graph, mesh or model
    /// file) becomes a file error naming it; file and integration errors are unchanged.
    pub fn in_file(self, path: impl Into<PathBuf>) -> Self {
        match self {
            Error::Input(msg) => Error::File {
                path: path.into(),
                location: None,
                msg,
            },
            Error::Singular(m) => Error::File {
                path: path.into(),
                location: None,
                msg: format!("singular mass matrix: {m}"),
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
            Error::Singular(m) => write!(f, "singular mass matrix: {m}"),
            Error::Integration(m) => write!(f, "integration failed: {m}"),
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
        }
    }
}

impl std::error::Error for Error {}

/// Check that every value is finite; name the first offender.
pub fn check_finite(what: &str, xs: &[f64]) -> Result<()> {
    if let Some((i, x)) = xs.iter().enumerate().find(|(_, x)| !x.is_finite()) {
        return Err(Error::input(format!("{what}[{i}] = {x} is not finite")));
    }
    Ok(())
}
