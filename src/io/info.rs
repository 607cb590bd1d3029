//! `lgn info`: contents and schema check of any HDF5 file.

use std::fmt;
use std::path::{Path, PathBuf};

use hdf5::{Group, LocationType};
use serde_json::{json, Value};

use super::h5::{descriptor, guard, h5msg, read_attr_value, type_name, Ctx, Problem};
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
    let names = match loc.attr_names() {
        Ok(n) => n,
        Err(e) => {
            w.notes
                .push(format!("{object}: cannot list attributes: {}", h5msg(&e)));
            return;
        }
    };
    for name in names {
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
                    w.datasets.push(DatasetInfo {
                        path: path.clone(),
                        shape: ds.shape(),
                        dtype,
                        chunks: ds.chunk(),
                        filters,
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
    let path = path.as_ref();
    guard(path, || {
        let mut ctx = Ctx::open(path)?;
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
    let path = path.as_ref();
    guard(path, || {
        let ctx = Ctx::open(path)?;
        let mut w = Walk {
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
        let mut problems = validate(path)?;
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
