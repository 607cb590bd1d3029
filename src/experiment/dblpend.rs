//! `lgn experiment dblpend` (to be written).

use super::{ExperimentOptions, ExperimentReport};
use crate::{Error, Result};

pub fn run(_opts: &ExperimentOptions) -> Result<ExperimentReport> {
    Err(Error::input(
        "experiment 'dblpend' is not available in this build yet",
    ))
}
