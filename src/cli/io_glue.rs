//! Reading CLI inputs from files.

use lgn::{Error, Result};
use std::path::Path;

/// A state file: float64 datasets `q` and `qdot` at the root.
pub fn read_state(path: &Path) -> Result<(Vec<f64>, Vec<f64>)> {
    let file = hdf5::File::open(path)
        .map_err(|e| Error::file(path, format!("cannot open as HDF5: {e}")))?;
    let read = |name: &str| -> Result<Vec<f64>> {
        let ds = file
            .dataset(name)
            .map_err(|_| Error::file_at(path, format!("/{name}"), "dataset missing"))?;
        let v: Vec<f64> = ds.read_raw().map_err(|e| {
            Error::file_at(
                path,
                format!("/{name}"),
                format!("cannot read as float64: {e}"),
            )
        })?;
        lgn::error::check_finite(name, &v)
            .map_err(|e| Error::file_at(path, format!("/{name}"), e.to_string()))?;
        Ok(v)
    };
    Ok((read("q")?, read("qdot")?))
}
