//! `lgn info`: contents and schema check of any HDF5 file.

use std::fmt;
use std::path::{Path, PathBuf};

use hdf5::{Group, LocationType};
use serde_json::{json, Value};

use super::h5::{
    attr_names, descriptor, guard, h5msg, read_attr_value, stream_f64, type_name, Ctx, Problem,
    STREAM_CHUNK_ELEMS,
};
use super::{AttrValue, GraphData, Kind, ModelData, SamplesData, StateData, TrajectoryData};
use crate::error::Result;

/// One dataset of the file.
#[derive(Debug, Clone, PartialEq)]
pub struct DatasetInfo {
    /// Absolute path inside the file, e.g. `/layers/0/weight`.
    pub path: String,
    /// Current shape (empty for scalars).
    pub shape: Vec<usize>,
    /// Element type, e.g. `float64`, `int64`, `string (vlen utf-8)`.
    pub dtype: String,
    /// Chunk shape, if chunked.
    pub chunks: Option<Vec<usize>>,
    /// Filters (compression etc.), e.g. `["shuffle", "deflate(4)"]`.
    pub filters: Vec<String>,
    /// Statistics of a float dataset (None for other types, or when it cannot be read).
    pub stats: Option<DatasetStats>,
}

/// Statistics of a float dataset, computed one hyperslab of bounded size at a time (the file
/// is never loaded whole; see [`info_with`]).
#[derive(Debug, Clone, PartialEq)]
pub struct DatasetStats {
    /// Number of values.
    pub count: u64,
    /// Number of NaN or infinite values.
    pub non_finite: u64,
    /// Smallest finite value (NaN if there is none).
    pub min: f64,
    /// Largest finite value (NaN if there is none).
    pub max: f64,
    /// Mean of the finite values, from a compensated (Neumaier) sum (NaN if there is none).
    pub mean: f64,
}

/// Streaming accumulator of [`DatasetStats`].
#[derive(Default)]
struct StatsAcc {
    count: u64,
    non_finite: u64,
    min: f64,
    max: f64,
    sum: f64,
    comp: f64,
}

impl StatsAcc {
    fn push(&mut self, vals: &[f64]) {
        for &x in vals {
            self.count += 1;
            if !x.is_finite() {
                self.non_finite += 1;
                continue;
            }
            if self.count - self.non_finite == 1 {
                (self.min, self.max) = (x, x);
            } else {
                self.min = self.min.min(x);
                self.max = self.max.max(x);
            }
            // Neumaier: the rounding error of every addition is carried separately.
            let t = self.sum + x;
            if self.sum.abs() >= x.abs() {
                self.comp += (self.sum - t) + x;
            } else {
                self.comp += (x - t) + self.sum;
            }
            self.sum = t;
        }
    }

    fn finish(self) -> DatasetStats {
        let finite = self.count - self.non_finite;
        let none = finite == 0;
        DatasetStats {
            count: self.count,
            non_finite: self.non_finite,
            min: if none { f64::NAN } else { self.min },
            max: if none { f64::NAN } else { self.max },
            mean: if none {
                f64::NAN
            } else {
                (self.sum + self.comp) / finite as f64
            },
        }
    }
}

/// Statistics of the float dataset `ds`, streamed `budget` values at a time. Refused (with
/// the reason) when the dataset is larger than lgn would ever load.
fn stats_of(ds: &hdf5::Dataset, budget: usize) -> std::result::Result<DatasetStats, String> {
    let shape = ds.shape();
    crate::limits::check_alloc(
        &format!("dataset of shape {shape:?}"),
        crate::limits::product(&shape),
        8,
    )
    .map_err(|e| e.to_string())?;
    let mut acc = StatsAcc::default();
    stream_f64(ds, &shape, budget, |_, v| {
        acc.push(v);
        true
    })
    .map_err(|e| h5msg(&e))?;
    Ok(acc.finish())
}

/// One attribute of the file.
#[derive(Debug, Clone, PartialEq)]
pub struct AttrInfo {
    /// Path of the object carrying the attribute (`/` for the root group).
    pub object: String,
    /// Attribute name.
    pub name: String,
    /// The value, or a description of why it could not be shown.
    pub value: std::result::Result<AttrValue, String>,
}

/// Summary of an HDF5 file; `Display` is the human-readable `lgn info` output,
/// [`InfoReport::to_json`] the `lgn info --json` output.
#[derive(Debug, Clone, PartialEq)]
pub struct InfoReport {
    /// The file.
    pub path: PathBuf,
    /// File size in bytes.
    pub file_size: u64,
    /// Value of the root attribute `lgn_kind`, if present.
    pub kind: Option<String>,
    /// Value of the root attribute `lgn_schema_version`, if present.
    pub schema_version: Option<i64>,
    /// Whether the file claims to be an lgn file (has `lgn_kind`).
    pub is_lgn: bool,
    /// Whether the file validates against the schema of its kind.
    pub valid: bool,
    /// Everything that does not follow the schema (empty when `valid`).
    pub problems: Vec<Problem>,
    /// Remarks, e.g. "not an lgn file" or "readable as a plain state file".
    pub notes: Vec<String>,
    /// All groups (absolute paths, root excluded).
    pub groups: Vec<String>,
    /// All datasets.
    pub datasets: Vec<DatasetInfo>,
    /// All attributes of all objects.
    pub attributes: Vec<AttrInfo>,
}

const MAX_OBJECTS: usize = 100_000;
const MAX_DEPTH: usize = 64;

struct Walk {
    budget: usize,
    groups: Vec<String>,
    datasets: Vec<DatasetInfo>,
    attributes: Vec<AttrInfo>,
    notes: Vec<String>,
}

fn join(prefix: &str, name: &str) -> String {
    if prefix == "/" {
        format!("/{name}")
    } else {
        format!("{prefix}/{name}")
    }
}

fn attrs_of(w: &mut Walk, object: &str, loc: &hdf5::Location) {
    let list = match attr_names(loc) {
        Ok(n) => n,
        Err(m) => {
            w.notes
                .push(format!("{object}: cannot list attributes: {m}"));
            return;
        }
    };
    for name in list {
        let value = loc
            .attr(&name)
            .map_err(|e| format!("cannot open: {}", h5msg(&e)))
            .and_then(|a| read_attr_value(&a));
        w.attributes.push(AttrInfo {
            object: object.to_string(),
            name,
            value,
        });
    }
}

fn walk(w: &mut Walk, g: &Group, prefix: &str, depth: usize) {
    if depth > MAX_DEPTH || w.groups.len() + w.datasets.len() > MAX_OBJECTS {
        w.notes.push(format!(
            "{prefix}: not listed (too deep or too many objects)"
        ));
        return;
    }
    let names = match g.member_names() {
        Ok(n) => n,
        Err(e) => {
            w.notes
                .push(format!("{prefix}: cannot list members: {}", h5msg(&e)));
            return;
        }
    };
    for name in names {
        let path = join(prefix, &name);
        match g.loc_type_by_name(&name) {
            Ok(LocationType::Group) => match g.group(&name) {
                Ok(sub) => {
                    w.groups.push(path.clone());
                    attrs_of(w, &path, &sub);
                    walk(w, &sub, &path, depth + 1);
                }
                Err(e) => w
                    .notes
                    .push(format!("{path}: cannot open group: {}", h5msg(&e))),
            },
            Ok(LocationType::Dataset) => match g.dataset(&name) {
                Ok(ds) => {
                    let dtype = match descriptor(&ds) {
                        Ok(t) => type_name(&t),
                        Err(m) => m,
                    };
                    let filters = ds.filters().iter().map(filter_name).collect();
                    let stats = match descriptor(&ds) {
                        Ok(hdf5::types::TypeDescriptor::Float(_)) => {
                            match stats_of(&ds, w.budget) {
                                Ok(st) => Some(st),
                                Err(m) => {
                                    w.notes.push(format!("{path}: no statistics: {m}"));
                                    None
                                }
                            }
                        }
                        _ => None,
                    };
                    w.datasets.push(DatasetInfo {
                        path: path.clone(),
                        shape: ds.shape(),
                        dtype,
                        chunks: ds.chunk(),
                        filters,
                        stats,
                    });
                    attrs_of(w, &path, &ds);
                }
                Err(e) => w
                    .notes
                    .push(format!("{path}: cannot open dataset: {}", h5msg(&e))),
            },
            Ok(_) => w.notes.push(format!("{path}: named datatype (ignored)")),
            Err(e) => w
                .notes
                .push(format!("{path}: unresolvable link: {}", h5msg(&e))),
        }
    }
}

fn filter_name(f: &hdf5::filters::Filter) -> String {
    use hdf5::filters::Filter;
    match f {
        Filter::Deflate(l) => format!("deflate({l})"),
        Filter::Shuffle => "shuffle".into(),
        Filter::Fletcher32 => "fletcher32".into(),
        other => format!("{other:?}").to_lowercase(),
    }
}

/// Validate an open file against the schema of `kind`; the problems end up in `ctx`.
fn validate_kind(ctx: &mut Ctx, kind: Kind) {
    match kind {
        Kind::Graph => drop(GraphData::read_ctx(ctx)),
        Kind::State => drop(StateData::read_ctx(ctx)),
        Kind::Samples => drop(SamplesData::read_ctx(ctx)),
        // Positions-only trajectories (t and q, no qdot) are valid too (issue 12).
        Kind::Trajectories if !ctx.exists("qdot") => {
            drop(super::positions::PositionsData::read_ctx(ctx))
        }
        Kind::Trajectories => drop(TrajectoryData::read_ctx(ctx)),
        Kind::Model if crate::model::file::is_graph_model(ctx) => {
            drop(crate::model::file::read_ctx(ctx))
        }
        Kind::Model => {
            // The same checks as every command that loads a model.
            if let Some(md) = ModelData::read_ctx(ctx) {
                let path = ctx.path.clone();
                ctx.problems.extend(super::model_problems(&md, &path));
            }
        }
    }
}

/// All schema problems of an lgn file (empty if it is valid). A file without `lgn_kind`
/// yields a single problem saying it is not an lgn file. Files that cannot be opened as HDF5
/// are an error.
pub fn validate(path: impl AsRef<Path>) -> Result<Vec<Problem>> {
    validate_with(path.as_ref(), STREAM_CHUNK_ELEMS)
}

/// [`validate`], streaming datasets of more than `budget` values one hyperslab of at most
/// `budget` values at a time (the same checks; the memory stays bounded).
pub fn validate_with(path: &Path, budget: usize) -> Result<Vec<Problem>> {
    guard(path, || {
        let mut ctx = Ctx::open(path)?;
        ctx.stream = Some(budget.max(1));
        match ctx.attr_str("/", "lgn_kind", false) {
            None if ctx.ok() => ctx.problem(
                "/@lgn_kind",
                "attribute is missing: this is not an lgn file",
            ),
            None => {}
            Some(k) => match Kind::parse(&k) {
                Some(kind) => validate_kind(&mut ctx, kind),
                None => {
                    ctx.problem("/@lgn_kind", format!("unknown lgn kind '{k}', expected one of graph, trajectories, samples, state, model"));
                    ctx.check_version();
                }
            },
        }
        Ok(ctx.problems)
    })
}

/// Summarise any HDF5 file: every group, dataset (shape, dtype, chunks, filters) and attribute,
/// the lgn kind, and whether it validates against the schema (with all problems found).
/// Files that are not HDF5, or are too damaged to open, are an error.
pub fn info(path: impl AsRef<Path>) -> Result<InfoReport> {
    info_with(path.as_ref(), STREAM_CHUNK_ELEMS)
}

/// [`info`] reading at most `budget` values of a dataset at a time: statistics and schema
/// checks stream through the file in hyperslabs, so memory stays bounded whatever its size.
pub fn info_with(path: &Path, budget: usize) -> Result<InfoReport> {
    let budget = budget.max(1);
    guard(path, || {
        let ctx = Ctx::open(path)?;
        let mut w = Walk {
            budget,
            groups: Vec::new(),
            datasets: Vec::new(),
            attributes: Vec::new(),
            notes: Vec::new(),
        };
        attrs_of(&mut w, "/", &ctx.file);
        walk(&mut w, &ctx.file, "/", 0);
        let file_size = std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);
        let root_attr = |name: &str| {
            w.attributes
                .iter()
                .find(|a| a.object == "/" && a.name == name)
                .and_then(|a| a.value.clone().ok())
        };
        let kind = match root_attr("lgn_kind") {
            Some(AttrValue::Str(s)) => Some(s),
            _ => None,
        };
        let schema_version = match root_attr("lgn_schema_version") {
            Some(AttrValue::Int(i)) => Some(i),
            _ => None,
        };
        let is_lgn = w
            .attributes
            .iter()
            .any(|a| a.object == "/" && a.name == "lgn_kind");
        drop(ctx);
        let mut problems = validate_with(path, budget)?;
        let mut notes = std::mem::take(&mut w.notes);
        let valid;
        if !is_lgn {
            problems.clear();
            valid = false;
            notes.insert(
                0,
                "not an lgn file (no root attribute lgn_kind); see docs/SCHEMA.md".into(),
            );
            let has = |n: &str| w.datasets.iter().any(|d| d.path == n);
            if has("/q") && has("/qdot") {
                match StateData::read(path) {
                    Ok(_) => notes.push(
                        "readable as a plain state file (float datasets q and qdot at the root)"
                            .into(),
                    ),
                    Err(e) => notes.push(format!(
                        "has q and qdot but is not a usable state file: {e}"
                    )),
                }
            }
        } else {
            valid = problems.is_empty();
        }
        Ok(InfoReport {
            path: path.to_path_buf(),
            file_size,
            kind,
            schema_version,
            is_lgn,
            valid,
            problems,
            notes,
            groups: w.groups,
            datasets: w.datasets,
            attributes: w.attributes,
        })
    })
}

fn finite_or_null(x: f64) -> Value {
    if x.is_finite() {
        json!(x)
    } else {
        Value::Null
    }
}

impl InfoReport {
    /// Machine-readable form (`lgn info --json`).
    pub fn to_json(&self) -> Value {
        json!({
            "path": self.path.display().to_string(),
            "file_size": self.file_size,
            "lgn_kind": self.kind,
            "lgn_schema_version": self.schema_version,
            "is_lgn": self.is_lgn,
            "valid": self.valid,
            "problems": self.problems.iter().map(|p| json!({"location": p.location, "message": p.msg})).collect::<Vec<_>>(),
            "notes": self.notes,
            "groups": self.groups,
            "datasets": self.datasets.iter().map(|d| json!({
                "path": d.path,
                "shape": d.shape,
                "dtype": d.dtype,
                "chunks": d.chunks,
                "filters": d.filters,
                "stats": d.stats.as_ref().map(|st| json!({
                    "count": st.count,
                    "non_finite": st.non_finite,
                    "min": finite_or_null(st.min),
                    "max": finite_or_null(st.max),
                    "mean": finite_or_null(st.mean),
                })),
            })).collect::<Vec<_>>(),
            "attributes": self.attributes.iter().map(|a| {
                let mut o = json!({"object": a.object, "name": a.name});
                match &a.value {
                    Ok(v) => o["value"] = v.to_json(),
                    Err(m) => o["error"] = Value::String(m.clone()),
                }
                o
            }).collect::<Vec<_>>(),
        })
    }
}

impl fmt::Display for InfoReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "file: {} ({} bytes)",
            self.path.display(),
            self.file_size
        )?;
        match (&self.kind, self.is_lgn) {
            (Some(k), _) => match self.schema_version {
                Some(v) => writeln!(f, "kind: {k} (lgn schema version {v})")?,
                None => writeln!(f, "kind: {k} (no lgn_schema_version)")?,
            },
            (None, true) => writeln!(f, "kind: (unreadable lgn_kind)")?,
            (None, false) => writeln!(f, "kind: none (not an lgn file)")?,
        }
        if self.is_lgn {
            if self.valid {
                writeln!(f, "schema: valid")?;
            } else {
                let n = self.problems.len();
                writeln!(
                    f,
                    "schema: INVALID ({n} problem{})",
                    if n == 1 { "" } else { "s" }
                )?;
                for p in &self.problems {
                    writeln!(f, "  - {p}")?;
                }
            }
        }
        for n in &self.notes {
            writeln!(f, "note: {n}")?;
        }
        if !self.groups.is_empty() {
            writeln!(f, "groups:")?;
            for g in &self.groups {
                writeln!(f, "  {g}")?;
            }
        }
        writeln!(f, "datasets:")?;
        if self.datasets.is_empty() {
            writeln!(f, "  (none)")?;
        }
        let w = self
            .datasets
            .iter()
            .map(|d| d.path.len())
            .max()
            .unwrap_or(0);
        for d in &self.datasets {
            let shape = match d.shape.as_slice() {
                [] => "scalar".to_string(),
                [n] => format!("({n},)"),
                s => format!(
                    "({})",
                    s.iter()
                        .map(|x| x.to_string())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            };
            write!(f, "  {:<w$}  {:<8} {}", d.path, d.dtype, shape)?;
            if let Some(c) = &d.chunks {
                write!(f, "  chunks {c:?}")?;
            }
            if !d.filters.is_empty() {
                write!(f, "  [{}]", d.filters.join(", "))?;
            }
            writeln!(f)?;
            if let Some(st) = &d.stats {
                if st.count > 0 {
                    write!(
                        f,
                        "  {:<w$}  min {:.6e}  max {:.6e}  mean {:.6e}",
                        "", st.min, st.max, st.mean
                    )?;
                    if st.non_finite > 0 {
                        write!(f, "  ({} non-finite)", st.non_finite)?;
                    }
                    writeln!(f)?;
                }
            }
        }
        writeln!(f, "attributes:")?;
        if self.attributes.is_empty() {
            writeln!(f, "  (none)")?;
        }
        for a in &self.attributes {
            match &a.value {
                Ok(v) => writeln!(f, "  {}@{} = {v}", a.object, a.name)?,
                Err(m) => writeln!(f, "  {}@{} = <{m}>", a.object, a.name)?,
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::Array2;

    fn direct(a: &Array2<f64>) -> (u64, u64, f64, f64, f64) {
        let fin: Vec<f64> = a.iter().copied().filter(|x| x.is_finite()).collect();
        let min = fin.iter().copied().fold(f64::INFINITY, f64::min);
        let max = fin.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        // Reference mean: the finite values summed in order of increasing magnitude.
        let mut s = fin.clone();
        s.sort_by(|x, y| x.abs().total_cmp(&y.abs()));
        let mean = s.iter().sum::<f64>() / fin.len() as f64;
        (a.len() as u64, (a.len() - fin.len()) as u64, min, max, mean)
    }

    fn check(st: &DatasetStats, a: &Array2<f64>) {
        let (count, nf, min, max, mean) = direct(a);
        assert_eq!((st.count, st.non_finite), (count, nf));
        assert_eq!((st.min, st.max), (min, max));
        assert!(
            (st.mean - mean).abs() <= 1e-12 * mean.abs().max(1.0),
            "{} vs {mean}",
            st.mean
        );
    }

    /// Datasets larger than the hyperslab budget: statistics and schema checks streamed in
    /// pieces (split within rows, whole rows, one piece) agree with a direct computation on
    /// the loaded arrays, and a non-finite value is reported at the same place either way.
    #[test]
    fn streamed_statistics_and_checks_match_a_direct_computation() {
        let dir = std::env::temp_dir().join(format!("lgn-info-stream-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join("s.h5");
        let (n, d) = (1000, 7);
        let q = Array2::from_shape_fn((n, d), |(i, j)| {
            ((i * 31 + j * 17) % 97) as f64 * 0.37 - 11.0 + 1e-3 * i as f64
        });
        let s = SamplesData {
            q: q.clone(),
            qdot: q.mapv(|x| (x * 0.3).sin()),
            qddot: q.mapv(|x| 1e6 + x),
            ..Default::default()
        };
        s.write(&p, true).unwrap();
        for budget in [5, 64, 7000, STREAM_CHUNK_ELEMS] {
            let r = info_with(&p, budget).unwrap();
            assert!(r.valid, "{:?}", r.problems);
            for (name, a) in [("/q", &s.q), ("/qdot", &s.qdot), ("/qddot", &s.qddot)] {
                let ds = r.datasets.iter().find(|x| x.path == name).unwrap();
                check(ds.stats.as_ref().unwrap(), a);
            }
        }
        // One NaN in q̈: found by streaming at the same index as by loading.
        {
            let f = hdf5::File::open_rw(&p).unwrap();
            let ds = f.dataset("qddot").unwrap();
            ds.write_slice(&ndarray::arr2(&[[f64::NAN]]), ndarray::s![613..614, 4..5])
                .unwrap();
        }
        let loaded = validate_with(&p, usize::MAX).unwrap();
        assert_eq!(loaded.len(), 1, "{loaded:?}");
        assert!(loaded[0].msg.contains("[613, 4]"), "{}", loaded[0]);
        for budget in [5, 64] {
            assert_eq!(validate_with(&p, budget).unwrap(), loaded);
            let r = info_with(&p, budget).unwrap();
            assert!(!r.valid);
            let ds = r.datasets.iter().find(|x| x.path == "/qddot").unwrap();
            let mut with_nan = s.qddot.clone();
            with_nan[[613, 4]] = f64::NAN;
            check(ds.stats.as_ref().unwrap(), &with_nan);
        }
        std::fs::remove_dir_all(&dir).ok();
    }
}
