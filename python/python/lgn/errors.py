"""Exceptions raised by lgn. Every lgn error keeps the Rust core's message verbatim."""


class LgnError(Exception):
    """Base class of every error lgn raises."""


class InputError(LgnError, ValueError):
    """Bad input: wrong shapes or dtypes, NaN/Inf values, unknown names, impossible sizes."""


class FileError(LgnError, OSError):
    """A file could not be read or written, or does not follow the lgn schema."""


class SingularMassError(LgnError, ArithmeticError):
    """The mass matrix M = ∂²L/∂q̇∂q̇ could not be factorised (singular or indefinite)."""


class IntegrationError(LgnError, RuntimeError):
    """Time integration failed (non-finite state, step-size underflow, no convergence)."""


class TrainingError(LgnError, RuntimeError):
    """Training failed (diverged, or failed in its first epoch)."""
