//! lgn errors → Python exceptions (classes defined in `lgn/errors.py`), and Ctrl-C checks.

use pyo3::prelude::*;
use pyo3::types::PyType;
use std::cell::{Cell, RefCell};
use std::time::{Duration, Instant};

/// The message of an lgn error: its `Display` followed by any `source()` not already in it.
pub fn message(e: &(dyn std::error::Error + 'static)) -> String {
    let mut msg = e.to_string();
    let mut src = e.source();
    while let Some(s) = src {
        let m = s.to_string();
        if !msg.contains(&m) {
            msg = format!("{msg}: {m}");
        }
        src = s.source();
    }
    msg
}

/// The Python class an lgn error becomes (by its innermost kind, past any `Error::At`).
fn class_name(e: &lgn::Error) -> &'static str {
    match e.root() {
        lgn::Error::Input(_) => "InputError",
        lgn::Error::Solve(_) => "SingularMassError",
        lgn::Error::Integrate(_) => "IntegrationError",
        lgn::Error::Train(_) => "TrainingError",
        lgn::Error::Comm(_) => "LgnError",
        lgn::Error::File { .. } => "FileError",
        lgn::Error::At { .. } => "LgnError",
    }
}

fn class<'py>(py: Python<'py>, name: &str) -> PyResult<Bound<'py, PyType>> {
    Ok(py
        .import("lgn.errors")?
        .getattr(name)?
        .cast_into::<PyType>()?)
}

/// An exception of class `name` (`InputError`, `FileError`, …) with message `msg`.
pub fn raise(name: &str, msg: impl Into<String>) -> PyErr {
    let msg = msg.into();
    Python::attach(|py| match class(py, name) {
        Ok(cls) => PyErr::from_type(cls, msg),
        Err(e) => e,
    })
}

/// A bad argument (`lgn.InputError`, a `ValueError`).
pub fn input(msg: impl Into<String>) -> PyErr {
    raise("InputError", msg)
}

/// Convert an lgn error with its message unchanged.
pub fn lgn(e: lgn::Error) -> PyErr {
    raise(class_name(&e), message(&e))
}

/// Convert an lgn error, prefixing the message with `context` (e.g. "state 7").
pub fn lgn_at(e: lgn::Error, context: &str) -> PyErr {
    raise(class_name(&e), format!("{context}: {}", message(&e)))
}

/// `?` on lgn results inside the bindings.
pub trait IntoPy<T> {
    fn py_err(self) -> PyResult<T>;
}

impl<T> IntoPy<T> for lgn::Result<T> {
    fn py_err(self) -> PyResult<T> {
        self.map_err(lgn)
    }
}

/// Ctrl-C between steps of a long call that runs without the GIL: [`Signals::check`] takes the
/// GIL at most every 20 ms on the calling (main) thread and runs Python's signal handlers; a
/// `KeyboardInterrupt` (or any exception a handler raises) is kept and reported as "stop".
pub struct Signals {
    last: Cell<Instant>,
    pub err: RefCell<Option<PyErr>>,
}

impl Default for Signals {
    fn default() -> Self {
        Signals {
            last: Cell::new(Instant::now()),
            err: RefCell::new(None),
        }
    }
}

impl Signals {
    /// True when the call should stop (a signal handler raised).
    pub fn check(&self) -> bool {
        if self.err.borrow().is_some() {
            return true;
        }
        if self.last.get().elapsed() < Duration::from_millis(20) {
            return false;
        }
        self.last.set(Instant::now());
        self.check_now()
    }

    /// Check without the rate limit.
    pub fn check_now(&self) -> bool {
        if let Err(e) = Python::attach(|py| py.check_signals()) {
            *self.err.borrow_mut() = Some(e);
            return true;
        }
        false
    }

    /// The kept exception, if any.
    pub fn take(&self) -> Option<PyErr> {
        self.err.borrow_mut().take()
    }
}
