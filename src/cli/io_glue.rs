//! Reading CLI inputs from files.

use lgn::Result;
use std::path::Path;

/// A state file: float64 datasets `q` and `qdot` at the root (see docs/SCHEMA.md).
pub fn read_state(path: &Path) -> Result<(Vec<f64>, Vec<f64>)> {
    let (q, v) = lgn::io::read_state(path)?;
    Ok((q.to_vec(), v.to_vec()))
}
