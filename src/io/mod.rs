//! HDF5 input/output for lgn: graphs, states, training samples, trajectories and models.
//!
//! The on-disk layout is documented in `docs/SCHEMA.md`. All arrays are C order, values are
//! float64, indices int64 (0-based). Every file written by lgn carries the root attributes
//! `lgn_kind` (`"graph"`, `"trajectories"`, `"samples"`, `"state"`, `"model"`) and
//! `lgn_schema_version` (int64, currently [`SCHEMA_VERSION`]).
//!
//! # Public API
//!
//! Each kind of file is a plain struct with `read` and `write`:
//!
//! | struct               | kind             | read                                      | write                                     |
//! |----------------------|------------------|-------------------------------------------|-------------------------------------------|
//! | [`GraphData`]        | `graph`          | `GraphData::read(path) -> Result<Self>`   | `g.write(path, force) -> Result<()>`      |
//! | [`StateData`]        | `state`          | `StateData::read(path)`                   | `s.write(path, force)`                    |
//! | [`SamplesData`]      | `samples`        | `SamplesData::read(path)`                 | `s.write(path, force)`                    |
//! | [`TrajectoryData`]   | `trajectories`   | `TrajectoryData::read(path)`              | `t.write(path, force)`                    |
//! | [`ModelData`]        | `model`          | `ModelData::read(path)`                   | `m.write(path, force)`                    |
//!
//! Other entry points:
//!
//! * [`read_state`]`(path) -> Result<(Array1<f64>, Array1<f64>)>`: the `(q, qdot)` pair of a
//!   state file (used by `lgn accel --state FILE.h5`). Plain files with float datasets `q` and
//!   `qdot` at the root are accepted without any lgn attributes.
//! * [`TrajectoryWriter`]: streaming writer; `TrajectoryWriter::create(path, n_batch, dim,
//!   &opts, force)`, then `push_frame(t, q, qdot, qddot, energy)` per time step, then `finish()`.
//!   Frames go to disk in chunks, so a long simulation never holds its trajectory in memory.
//! * [`info`]`(path) -> Result<InfoReport>`: contents and schema check of any HDF5 file
//!   (`lgn info FILE [--json]`): `Display` gives the human-readable report,
//!   [`InfoReport::to_json`] a `serde_json::Value`.
//! * [`validate`]`(path) -> Result<Vec<Problem>>`: all schema problems of an lgn file.
//! * Each struct also has `problems(&self) -> Vec<Problem>` (the in-memory consistency checks
//!   that `write` applies before touching the disk).
//! * [`xdmf`]: the optional `mesh` group of a trajectories file ([`xdmf::Geometry`],
//!   written with [`TrajectoryWriter::write_geometry`]) and the XDMF sidecar
//!   ([`xdmf::write_sidecar`]) that lets ParaView open the trajectories directly.
//! * [`AtomicOutput`]: the temp-file-then-rename helper, usable for other outputs (JSON, CSV):
//!   `AtomicOutput::new(path, force)?`, write to `tmp_path()`, then `commit()?`.
//!
//! # Behaviour common to all readers and writers
//!
//! * Reading validates everything: missing datasets/attributes, wrong dtype (integers where
//!   floats are expected and vice versa, strings where numbers are expected; float32 is
//!   silently widened to float64, any integer width to int64), wrong rank or shape, inconsistent
//!   sizes, NaN/Inf, out-of-range or negative indices, truncated or corrupt files and files that
//!   are not HDF5 at all. Errors are [`Error::File`](crate::error::Error::File) with the file
//!   path, the location inside it (`/edges`, `/layers/1/weight`, `/@n_nodes` for attribute
//!   `n_nodes` of the root group) and a message. Reading never panics.
//! * Files without `lgn_kind` (written by other tools) are accepted by every reader as long as
//!   they contain what that reader needs; a file whose `lgn_kind` names a different kind, or
//!   whose `lgn_schema_version` is not [`SCHEMA_VERSION`], is rejected.
//! * Writing is atomic: data goes to `.NAME.tmp-PID-N` in the target directory and is renamed
//!   over the target only on success (the temporary file is removed on error). An existing
//!   output is only replaced when `force` is true; otherwise the error tells the user to pass
//!   `--force`. Writers refuse non-finite values and inconsistent shapes with the same errors.

mod atomic;
mod graph;
pub(crate) mod h5;
mod info;
pub mod inputs;
mod model;
mod positions;
mod samples;
mod semantics;
mod shard;
mod state;
mod training;
mod trajectory;
pub mod xdmf;

use std::fmt;

pub use atomic::{check_writable, remove_pending, AtomicOutput};
pub use graph::GraphData;
pub use h5::STREAM_CHUNK_ELEMS;
pub use h5::{input_being_read, stalled_read, Problem};
pub use info::{
    info, info_with, validate, validate_with, AttrInfo, DatasetInfo, DatasetStats, InfoReport,
};
pub use model::{LayerData, ModelData, TrainingData, ACTIVATIONS, MODEL_KINDS};
pub use positions::{is_positions_only, read_positions, PositionsData};
pub use samples::SamplesData;
pub use semantics::model_problems;
pub use shard::{read_training_shard, TrainingShard};
pub use state::{read_state, StateData};
pub use training::{file_kind, read_training_data};
pub use trajectory::{TrajectoryData, TrajectoryWriter, TrajectoryWriterOptions};

/// Value of `lgn_schema_version` written and accepted by this version of lgn.
pub const SCHEMA_VERSION: i64 = 2;
/// Oldest `lgn_schema_version` still read (version-1 files load unchanged).
pub const MIN_SCHEMA_VERSION: i64 = 1;

/// The kinds of lgn files (value of the root attribute `lgn_kind`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    Graph,
    Trajectories,
    Samples,
    State,
    Model,
}

impl Kind {
    /// All kinds.
    pub const ALL: [Kind; 5] = [
        Kind::Graph,
        Kind::Trajectories,
        Kind::Samples,
        Kind::State,
        Kind::Model,
    ];

    /// The `lgn_kind` string.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Graph => "graph",
            Kind::Trajectories => "trajectories",
            Kind::Samples => "samples",
            Kind::State => "state",
            Kind::Model => "model",
        }
    }

    /// Parse an `lgn_kind` string.
    pub fn parse(s: &str) -> Option<Kind> {
        Kind::ALL.into_iter().find(|k| k.as_str() == s)
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A free-form attribute value (strings, int64, float64 and 1-D arrays of those numbers).
#[derive(Debug, Clone, PartialEq)]
pub enum AttrValue {
    Str(String),
    Int(i64),
    Float(f64),
    Ints(Vec<i64>),
    Floats(Vec<f64>),
}

impl AttrValue {
    /// Short type description used in messages ("a string", "an int64", ...).
    pub fn type_name(&self) -> &'static str {
        match self {
            AttrValue::Str(_) => "a string",
            AttrValue::Int(_) => "an int64",
            AttrValue::Float(_) => "a float64",
            AttrValue::Ints(_) => "an int64 array",
            AttrValue::Floats(_) => "a float64 array",
        }
    }

    /// JSON form: strings and numbers map to themselves (non-finite floats to strings).
    pub fn to_json(&self) -> serde_json::Value {
        fn f(x: f64) -> serde_json::Value {
            serde_json::Number::from_f64(x)
                .map(serde_json::Value::Number)
                .unwrap_or_else(|| serde_json::Value::String(x.to_string()))
        }
        match self {
            AttrValue::Str(s) => serde_json::Value::String(s.clone()),
            AttrValue::Int(i) => serde_json::Value::from(*i),
            AttrValue::Float(x) => f(*x),
            AttrValue::Ints(v) => serde_json::Value::from(v.clone()),
            AttrValue::Floats(v) => serde_json::Value::Array(v.iter().map(|x| f(*x)).collect()),
        }
    }
}

impl fmt::Display for AttrValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AttrValue::Str(s) => write!(f, "{s:?}"),
            AttrValue::Int(i) => write!(f, "{i}"),
            AttrValue::Float(x) => write!(f, "{x}"),
            AttrValue::Ints(v) => write!(f, "{v:?}"),
            AttrValue::Floats(v) => write!(f, "{v:?}"),
        }
    }
}

impl From<&str> for AttrValue {
    fn from(s: &str) -> Self {
        AttrValue::Str(s.to_string())
    }
}
impl From<String> for AttrValue {
    fn from(s: String) -> Self {
        AttrValue::Str(s)
    }
}
impl From<i64> for AttrValue {
    fn from(i: i64) -> Self {
        AttrValue::Int(i)
    }
}
impl From<f64> for AttrValue {
    fn from(x: f64) -> Self {
        AttrValue::Float(x)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_parse_and_print() {
        for k in Kind::ALL {
            assert_eq!(Kind::parse(k.as_str()), Some(k));
            assert_eq!(k.to_string(), k.as_str());
        }
        assert_eq!(Kind::parse("trajectory"), None);
        assert_eq!(Kind::Trajectories.as_str(), "trajectories");
    }

    #[test]
    fn attr_values_to_json() {
        assert_eq!(AttrValue::from("a").to_json(), serde_json::json!("a"));
        assert_eq!(AttrValue::from(3i64).to_json(), serde_json::json!(3));
        assert_eq!(AttrValue::from(0.5).to_json(), serde_json::json!(0.5));
        assert_eq!(
            AttrValue::Float(f64::NAN).to_json(),
            serde_json::json!("NaN")
        );
        assert_eq!(
            AttrValue::Floats(vec![1.0, f64::INFINITY]).to_json(),
            serde_json::json!([1.0, "inf"])
        );
        assert_eq!(AttrValue::Ints(vec![1, 2]).to_string(), "[1, 2]");
        assert_eq!(AttrValue::from("x").to_string(), "\"x\"");
    }
}
