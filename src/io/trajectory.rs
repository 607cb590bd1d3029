//! `trajectories` files: B trajectories of T frames each, plus the streaming writer.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use hdf5::{Dataset, Extent, SimpleExtents};
use ndarray::{s, Array1, Array2, Array3, ArrayView1, ArrayView2};

use super::h5::{guard, h5msg, refuse_invalid, Ctx, Out, Problem};
use super::samples::finite_problem2;
use super::{AttrValue, Kind};
use crate::error::{Error, Result};

/// B trajectories sampled at the same T times, D coordinates each.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct TrajectoryData {
    /// Name of the physical system (root attribute `system`).
    pub system: Option<String>,
    /// System parameters: the other numeric root attributes (e.g. `g`, `dx`).
    pub params: BTreeMap<String, f64>,
    /// Times, length T, strictly increasing (dataset `t`).
    pub t: Array1<f64>,
    /// Coordinates, B×T×D (dataset `q`).
    pub q: Array3<f64>,
    /// Velocities, B×T×D (dataset `qdot`).
    pub qdot: Array3<f64>,
    /// Accelerations, B×T×D (optional dataset `qddot`).
    pub qddot: Option<Array3<f64>>,
    /// Energy, B×T (optional dataset `energy`).
    pub energy: Option<Array2<f64>>,
}

const RESERVED: &[&str] = &["lgn_kind", "lgn_schema_version", "system"];

fn finite_problem3(name: &str, a: &Array3<f64>) -> Option<Problem> {
    a.indexed_iter()
        .find(|(_, x)| !x.is_finite())
        .map(|((i, j, k), x)| Problem {
            location: name.into(),
            msg: format!("value at index [{i}, {j}, {k}] is {x}, expected a finite number"),
        })
}

pub(crate) fn t_problem(t: &Array1<f64>) -> Option<Problem> {
    let p = |msg: String| {
        Some(Problem {
            location: "/t".into(),
            msg,
        })
    };
    if t.is_empty() {
        return p("is empty, a trajectory needs at least one frame".into());
    }
    if let Some((i, x)) = t.iter().enumerate().find(|(_, x)| !x.is_finite()) {
        return p(format!(
            "value at index [{i}] is {x}, expected a finite number"
        ));
    }
    if let Some(i) = (1..t.len()).find(|&i| t[i] <= t[i - 1]) {
        return p(format!(
            "times must be strictly increasing, but t[{i}] = {} <= t[{}] = {}",
            t[i],
            i - 1,
            t[i - 1]
        ));
    }
    None
}

/// The node geometry must divide the coordinates.
fn geometry_problem(n: usize, dim: usize) -> Option<Problem> {
    (n == 0 || dim % n != 0).then(|| Problem {
        location: format!("/{}/positions", super::xdmf::GROUP),
        msg: format!("has {n} nodes, which does not divide the D = {dim} coordinates of /q"),
    })
}

/// The checks of [`TrajectoryData::problems`] that need only shapes (and the small times
/// vector): shared by the in-memory and the streaming validation.
fn shape_problems(
    t: &Array1<f64>,
    shape: &[usize],
    others: &[(&str, &[usize])],
    energy: Option<&[usize]>,
) -> Vec<Problem> {
    let mut p = Vec::new();
    p.extend(t_problem(t));
    if shape[0] == 0 || shape[2] == 0 {
        p.push(Problem {
            location: "/q".into(),
            msg: format!("has shape {shape:?}, expected (B, T, D) with B >= 1 and D >= 1"),
        });
    }
    if t.len() != shape[1] {
        p.push(Problem {
            location: "/t".into(),
            msg: format!(
                "has length {} but /q has shape {shape:?} (B, T, D), so T = {}",
                t.len(),
                shape[1]
            ),
        });
    }
    for (name, a) in others {
        if *a != shape {
            p.push(Problem {
                location: name.to_string(),
                msg: format!("has shape {a:?} but /q has shape {shape:?}; they must match"),
            });
        }
    }
    if let Some(e) = energy {
        if e != &shape[..2] {
            p.push(Problem {
                location: "/energy".into(),
                msg: format!("has shape {e:?}, expected (B, T) = {:?}", &shape[..2]),
            });
        }
    }
    p
}

impl TrajectoryData {
    /// Number of trajectories B.
    pub fn n_batch(&self) -> usize {
        self.q.shape()[0]
    }
    /// Number of frames T.
    pub fn n_frames(&self) -> usize {
        self.q.shape()[1]
    }
    /// Dimension D of q.
    pub fn dim(&self) -> usize {
        self.q.shape()[2]
    }

    /// Read and validate a trajectories file (the whole file is loaded into memory).
    pub fn read(path: impl AsRef<Path>) -> Result<Self> {
        Ctx::read_with(path.as_ref(), Self::read_ctx)
    }

    pub(crate) fn read_ctx(ctx: &mut Ctx) -> Option<Self> {
        ctx.check_kind(Kind::Trajectories);
        if ["q", "qdot", "qddot", "energy"]
            .iter()
            .any(|n| ctx.streams(n))
        {
            return Self::check_streamed(ctx);
        }
        let t = ctx.f64_1d("t", true);
        let q = ctx.f64_3d("q", true);
        let qdot = ctx.f64_3d("qdot", true);
        let qddot = ctx.f64_3d("qddot", false);
        let energy = ctx.f64_2d("energy", false);
        let system = ctx.attr_str("/", "system", false);
        let params = ctx.params(RESERVED);
        // The optional node geometry (group `mesh`, see `io::xdmf`) is validated too.
        let geometry_nodes = if ctx.exists(super::xdmf::GROUP) {
            super::xdmf::read_ctx(ctx).map(|g| g.n_nodes())
        } else {
            None
        };
        let s = TrajectoryData {
            system,
            params,
            t: t?,
            q: q?,
            qdot: qdot?,
            qddot,
            energy,
        };
        let mut problems = s.problems();
        if let Some(n) = geometry_nodes {
            problems.extend(geometry_problem(n, s.dim()));
        }
        ctx.accept(s, problems)
    }

    /// `lgn info` on a large file: the checks of [`TrajectoryData::read_ctx`], with the large
    /// datasets validated one hyperslab at a time (their problems go to `ctx`; nothing is
    /// returned).
    fn check_streamed(ctx: &mut Ctx) -> Option<Self> {
        let t = ctx.f64_1d("t", true);
        let q = ctx.f64_streamed("q", true, 3);
        let qdot = ctx.f64_streamed("qdot", true, 3);
        let qddot = if ctx.exists("qddot") {
            Some(ctx.f64_streamed("qddot", true, 3)?)
        } else {
            None
        };
        let energy = if ctx.exists("energy") {
            Some(ctx.f64_streamed("energy", true, 2)?)
        } else {
            None
        };
        let _ = ctx.attr_str("/", "system", false);
        let params = ctx.params(RESERVED);
        let geometry_nodes = if ctx.exists(super::xdmf::GROUP) {
            super::xdmf::read_ctx(ctx).map(|g| g.n_nodes())
        } else {
            None
        };
        let (t, q, qdot) = (t?, q?, qdot?);
        let mut others = vec![("/qdot", qdot.as_slice())];
        if let Some(a) = &qddot {
            others.push(("/qddot", a.as_slice()));
        }
        let mut p = shape_problems(&t, &q, &others, energy.as_deref());
        p.extend(super::samples::param_problems(&params));
        if let Some(n) = geometry_nodes {
            p.extend(geometry_problem(n, q[2]));
        }
        ctx.problems.extend(p);
        None
    }

    /// Consistency checks on the in-memory trajectories.
    pub fn problems(&self) -> Vec<Problem> {
        let shape = self.q.shape().to_vec();
        let mut others = vec![("/qdot", self.qdot.shape())];
        if let Some(a) = &self.qddot {
            others.push(("/qddot", a.shape()));
        }
        let mut p = shape_problems(
            &self.t,
            &shape,
            &others,
            self.energy.as_ref().map(|e| e.shape()),
        );
        if let Some(e) = &self.energy {
            p.extend(finite_problem2("/energy", e));
        }
        let mut arrays = vec![("/qdot", &self.qdot)];
        if let Some(a) = &self.qddot {
            arrays.push(("/qddot", a));
        }
        arrays.push(("/q", &self.q));
        for (name, a) in arrays {
            p.extend(finite_problem3(name, a));
        }
        p.extend(super::samples::param_problems(&self.params));
        p
    }

    /// Write (atomically; an existing file is only replaced with `force`), chunked along time
    /// and deflate-compressed, in the same layout as [`TrajectoryWriter`].
    pub fn write(&self, path: impl AsRef<Path>, force: bool) -> Result<()> {
        let path = path.as_ref();
        refuse_invalid(path, self.problems())?;
        let opts = TrajectoryWriterOptions {
            system: self.system.clone(),
            params: self.params.clone(),
            with_qddot: self.qddot.is_some(),
            with_energy: self.energy.is_some(),
            // The whole trajectory is known: no chunk needs to be longer than it.
            chunk_frames: Some(default_chunk_frames(self.dim()).min(self.n_frames().max(1))),
            ..Default::default()
        };
        let mut w = TrajectoryWriter::create(path, self.n_batch(), self.dim(), &opts, force)?;
        for k in 0..self.n_frames() {
            w.push_frame(
                self.t[k],
                self.q.slice(s![.., k, ..]),
                self.qdot.slice(s![.., k, ..]),
                self.qddot.as_ref().map(|a| a.slice(s![.., k, ..])),
                self.energy.as_ref().map(|e| e.slice(s![.., k])),
            )?;
        }
        w.finish().map(|_| ())
    }
}

/// Options of a [`TrajectoryWriter`].
#[derive(Debug, Clone)]
pub struct TrajectoryWriterOptions {
    /// Root attribute `system`.
    pub system: Option<String>,
    /// System parameters, written as float64 root attributes.
    pub params: BTreeMap<String, f64>,
    /// Write a `qddot` dataset (then every frame must provide qddot).
    pub with_qddot: bool,
    /// Write an `energy` dataset (then every frame must provide the B energies).
    pub with_energy: bool,
    /// Frames per chunk along time; default: about 128 KiB per chunk of one trajectory.
    pub chunk_frames: Option<usize>,
    /// Deflate level 0..=9 (0: no compression). Default 4.
    pub deflate: u8,
}

impl Default for TrajectoryWriterOptions {
    fn default() -> Self {
        TrajectoryWriterOptions {
            system: None,
            params: BTreeMap::new(),
            with_qddot: false,
            with_energy: false,
            chunk_frames: None,
            deflate: 4,
        }
    }
}

struct Datasets {
    t: Dataset,
    q: Dataset,
    qdot: Dataset,
    qddot: Option<Dataset>,
    energy: Option<Dataset>,
}

/// Streaming writer of a `trajectories` file: datasets are resizable (unlimited along T),
/// chunked along time and deflate-compressed; frames are buffered for at most one chunk and
/// then appended. Writes go to a temporary file that [`finish`](Self::finish) renames into
/// place; if the writer is dropped without `finish` the temporary file is removed.
///
/// ```no_run
/// use lgn::io::{TrajectoryWriter, TrajectoryWriterOptions};
/// use ndarray::Array2;
/// let (b, d) = (2, 3);
/// let mut w = TrajectoryWriter::create("traj.h5", b, d, &TrajectoryWriterOptions::default(), false)?;
/// for k in 0..100 {
///     let q = Array2::<f64>::zeros((b, d));
///     w.push_frame(k as f64 * 0.01, q.view(), q.view(), None, None)?;
/// }
/// w.finish()?;
/// # Ok::<(), lgn::error::Error>(())
/// ```
pub struct TrajectoryWriter {
    // Drop order matters: datasets, then the file, then the temporary path (in `Out`).
    ds: Datasets,
    out: Out,
    n_batch: usize,
    dim: usize,
    written: usize,
    buffered: usize,
    t_buf: Vec<f64>,
    q_buf: Array3<f64>,
    qdot_buf: Array3<f64>,
    qddot_buf: Option<Array3<f64>>,
    e_buf: Option<Array2<f64>>,
    last_t: Option<f64>,
}

/// Frames per chunk for D coordinates: about 128 KiB, between 1 and 4096.
fn default_chunk_frames(dim: usize) -> usize {
    (131072 / (8 * dim.max(1))).clamp(1, 4096)
}

impl TrajectoryWriter {
    /// Start writing `path` for `n_batch` trajectories of dimension `dim`.
    pub fn create(
        path: impl AsRef<Path>,
        n_batch: usize,
        dim: usize,
        opts: &TrajectoryWriterOptions,
        force: bool,
    ) -> Result<Self> {
        let path = path.as_ref();
        if n_batch == 0 || dim == 0 {
            return Err(Error::file(
                path,
                format!("cannot write trajectories with B = {n_batch} trajectories of dimension D = {dim}; both must be >= 1"),
            ));
        }
        if opts.deflate > 9 {
            return Err(Error::input(format!(
                "deflate level {} is not in 0..=9",
                opts.deflate
            )));
        }
        if let Some((k, v)) = opts.params.iter().find(|(_, v)| !v.is_finite()) {
            return Err(Error::file_at(
                path,
                format!("/@{k}"),
                format!("refusing to write non-finite parameter {v}"),
            ));
        }
        let chunk = opts
            .chunk_frames
            .unwrap_or_else(|| default_chunk_frames(dim))
            .max(1);
        // Buffer at most one chunk, and at most ~64 MiB over all buffered arrays.
        let per_frame = 8 * n_batch * dim * (2 + usize::from(opts.with_qddot));
        let cap = chunk.min(((64usize << 20) / per_frame.max(1)).max(1));
        guard(path, || {
            let out = Out::create(path, force, Kind::Trajectories)?;
            if let Some(s) = &opts.system {
                out.attr("/", "system", &AttrValue::Str(s.clone()))?;
            }
            for (k, v) in &opts.params {
                if !RESERVED.contains(&k.as_str()) {
                    out.attr("/", k, &AttrValue::Float(*v))?;
                }
            }
            let compress = opts.deflate > 0 && hdf5::filters::deflate_available();
            let make =
                |name: &str, extents: Vec<Extent>, chunk_dims: Vec<usize>| -> Result<Dataset> {
                    let mut b = out.file().new_dataset::<f64>().chunk(chunk_dims);
                    if compress {
                        b = b.shuffle().deflate(opts.deflate);
                    }
                    b.shape(SimpleExtents::from_vec(extents))
                        .create(name)
                        .map_err(|e| out.err(&format!("/{name}"), e))
                };
            // t and energy are small per frame: longer chunks unless the caller chose the length.
            let t_chunk = if opts.chunk_frames.is_some() {
                chunk
            } else {
                chunk.max(1024)
            };
            let q3 = |name: &str| {
                make(
                    name,
                    vec![
                        Extent::fixed(n_batch),
                        Extent::resizable(0),
                        Extent::fixed(dim),
                    ],
                    vec![1, chunk, dim],
                )
            };
            let ds = Datasets {
                t: make("t", vec![Extent::resizable(0)], vec![t_chunk])?,
                q: q3("q")?,
                qdot: q3("qdot")?,
                qddot: if opts.with_qddot {
                    Some(q3("qddot")?)
                } else {
                    None
                },
                energy: if opts.with_energy {
                    Some(make(
                        "energy",
                        vec![Extent::fixed(n_batch), Extent::resizable(0)],
                        vec![1, t_chunk],
                    )?)
                } else {
                    None
                },
            };
            Ok(TrajectoryWriter {
                ds,
                out,
                n_batch,
                dim,
                written: 0,
                buffered: 0,
                t_buf: Vec::with_capacity(cap),
                q_buf: Array3::zeros((n_batch, cap, dim)),
                qdot_buf: Array3::zeros((n_batch, cap, dim)),
                qddot_buf: opts.with_qddot.then(|| Array3::zeros((n_batch, cap, dim))),
                e_buf: opts.with_energy.then(|| Array2::zeros((n_batch, cap))),
                last_t: None,
            })
        })
    }

    /// Frames accepted so far (written or buffered).
    pub fn n_frames(&self) -> usize {
        self.written + self.buffered
    }

    /// The final output path.
    pub fn path(&self) -> &Path {
        self.out.path()
    }

    fn frame_err(&self, what: &str, msg: String) -> Error {
        Error::file_at(
            self.out.path(),
            format!("/{what}"),
            format!("frame {}: {msg}", self.n_frames()),
        )
    }

    fn check2(&self, what: &str, a: &ArrayView2<f64>) -> Result<()> {
        if a.dim() != (self.n_batch, self.dim) {
            return Err(self.frame_err(
                what,
                format!(
                    "has shape {:?}, expected (B, D) = ({}, {})",
                    a.shape(),
                    self.n_batch,
                    self.dim
                ),
            ));
        }
        if let Some(((b, d), x)) = a.indexed_iter().find(|(_, x)| !x.is_finite()) {
            return Err(self.frame_err(
                what,
                format!("value at [{b}, {d}] is {x}, refusing to write non-finite values"),
            ));
        }
        Ok(())
    }

    /// Append one frame: time `t` (strictly increasing), `q` and `qdot` of shape (B, D),
    /// `qddot` (B, D) if the writer was created `with_qddot`, `energy` (B) if `with_energy`.
    pub fn push_frame(
        &mut self,
        t: f64,
        q: ArrayView2<f64>,
        qdot: ArrayView2<f64>,
        qddot: Option<ArrayView2<f64>>,
        energy: Option<ArrayView1<f64>>,
    ) -> Result<()> {
        if !t.is_finite() {
            return Err(self.frame_err("t", format!("time {t} is not finite")));
        }
        if let Some(last) = self.last_t {
            if t <= last {
                return Err(self.frame_err(
                    "t",
                    format!("time {t} is not after the previous frame's {last}"),
                ));
            }
        }
        self.check2("q", &q)?;
        self.check2("qdot", &qdot)?;
        match (&self.qddot_buf, &qddot) {
            (Some(_), Some(a)) => self.check2("qddot", a)?,
            (None, None) => {}
            (Some(_), None) => {
                return Err(self.frame_err(
                    "qddot",
                    "missing (the writer was created with_qddot)".into(),
                ))
            }
            (None, Some(_)) => {
                return Err(self.frame_err(
                    "qddot",
                    "given, but the writer was created without with_qddot".into(),
                ))
            }
        }
        match (&self.e_buf, &energy) {
            (Some(_), Some(e)) => {
                if e.len() != self.n_batch {
                    return Err(self.frame_err(
                        "energy",
                        format!("has length {}, expected B = {}", e.len(), self.n_batch),
                    ));
                }
                if let Some((b, x)) = e.iter().enumerate().find(|(_, x)| !x.is_finite()) {
                    return Err(self.frame_err(
                        "energy",
                        format!("value at [{b}] is {x}, refusing to write non-finite values"),
                    ));
                }
            }
            (None, None) => {}
            (Some(_), None) => {
                return Err(self.frame_err(
                    "energy",
                    "missing (the writer was created with_energy)".into(),
                ))
            }
            (None, Some(_)) => {
                return Err(self.frame_err(
                    "energy",
                    "given, but the writer was created without with_energy".into(),
                ))
            }
        }
        let k = self.buffered;
        self.t_buf.push(t);
        self.q_buf.slice_mut(s![.., k, ..]).assign(&q);
        self.qdot_buf.slice_mut(s![.., k, ..]).assign(&qdot);
        if let (Some(buf), Some(a)) = (&mut self.qddot_buf, qddot) {
            buf.slice_mut(s![.., k, ..]).assign(&a);
        }
        if let (Some(buf), Some(e)) = (&mut self.e_buf, energy) {
            buf.slice_mut(s![.., k]).assign(&e);
        }
        self.buffered += 1;
        self.last_t = Some(t);
        if self.buffered == self.q_buf.shape()[1] {
            self.flush()?;
        }
        Ok(())
    }

    /// Write buffered frames to the file.
    fn flush(&mut self) -> Result<()> {
        let k = self.buffered;
        if k == 0 {
            return Ok(());
        }
        let (n0, n1) = (self.written, self.written + k);
        let (b, d) = (self.n_batch, self.dim);
        let path = self.out.path().to_path_buf();
        let err = |name: &str, e: hdf5::Error| {
            Error::file_at(
                &path,
                format!("/{name}"),
                format!("cannot append frames: {}", h5msg(&e)),
            )
        };
        let ds = &self.ds;
        ds.t.resize(n1).map_err(|e| err("t", e))?;
        ds.t.write_slice(&self.t_buf[..k], n0..n1)
            .map_err(|e| err("t", e))?;
        let q3 = |name: &str, dset: &Dataset, buf: &Array3<f64>| -> Result<()> {
            dset.resize((b, n1, d)).map_err(|e| err(name, e))?;
            let v = buf.slice(s![.., ..k, ..]);
            let v = v.as_standard_layout();
            dset.write_slice(&v, s![.., n0..n1, ..])
                .map_err(|e| err(name, e))
        };
        q3("q", &ds.q, &self.q_buf)?;
        q3("qdot", &ds.qdot, &self.qdot_buf)?;
        if let (Some(dset), Some(buf)) = (&ds.qddot, &self.qddot_buf) {
            q3("qddot", dset, buf)?;
        }
        if let (Some(dset), Some(buf)) = (&ds.energy, &self.e_buf) {
            dset.resize((b, n1)).map_err(|e| err("energy", e))?;
            let v = buf.slice(s![.., ..k]);
            let v = v.as_standard_layout();
            dset.write_slice(&v, s![.., n0..n1])
                .map_err(|e| err("energy", e))?;
        }
        self.written = n1;
        self.buffered = 0;
        self.t_buf.clear();
        Ok(())
    }

    /// Write a root attribute (e.g. the string `mesh`, the mesh file a trajectory lives on).
    /// Schema attributes (`lgn_kind`, `lgn_schema_version`) are refused.
    pub fn set_attr(&self, name: &str, v: &AttrValue) -> Result<()> {
        if name == "lgn_kind" || name == "lgn_schema_version" {
            return Err(Error::file_at(
                self.out.path(),
                format!("/@{name}"),
                "is set by the writer",
            ));
        }
        if let AttrValue::Float(x) = v {
            if !x.is_finite() {
                return Err(Error::file_at(
                    self.out.path(),
                    format!("/@{name}"),
                    format!("refusing to write non-finite value {x}"),
                ));
            }
        }
        self.out.attr("/", name, v)
    }

    /// Write the node geometry (optional group `mesh`, see [`crate::io::xdmf`]) so the file can
    /// be drawn and opened in ParaView through [`crate::io::xdmf::write_sidecar`]. The number of
    /// nodes must divide D (D = n_nodes · dof).
    pub fn write_geometry(&self, g: &crate::io::xdmf::Geometry) -> Result<()> {
        let n = g.n_nodes();
        if n == 0 || self.dim % n != 0 {
            return Err(Error::file_at(
                self.out.path(),
                "/mesh/positions",
                format!(
                    "the geometry has {n} nodes, which does not divide the D = {} coordinates per frame",
                    self.dim
                ),
            ));
        }
        g.write_to(&self.out)
    }

    /// Write an extra float64 dataset at the root (e.g. `w_dissipated`, `w_injected`, B × T;
    /// docs/SCHEMA.md "Inputs and work"). Names of the writer's own datasets and non-finite
    /// values are refused.
    pub fn write_extra(&self, name: &str, a: ndarray::ArrayView2<f64>) -> Result<()> {
        if ["t", "q", "qdot", "qddot", "energy"].contains(&name) {
            return Err(Error::file_at(
                self.out.path(),
                format!("/{name}"),
                "is written by the trajectory writer itself",
            ));
        }
        if let Some(((b, k), x)) = a.indexed_iter().find(|(_, x)| !x.is_finite()) {
            return Err(Error::file_at(
                self.out.path(),
                format!("/{name}"),
                format!("value at [{b}, {k}] is {x}, refusing to write non-finite values"),
            ));
        }
        self.out.f64(name, a)
    }

    /// Write the remaining frames, close the file and move it into place. Returns the path.
    pub fn finish(mut self) -> Result<PathBuf> {
        if self.n_frames() == 0 {
            return Err(Error::file(
                self.out.path(),
                "no frames were written; not creating an empty trajectories file",
            ));
        }
        let path = self.out.path().to_path_buf();
        guard(&path, || {
            self.flush()?;
            let TrajectoryWriter { ds, out, .. } = self;
            drop(ds);
            out.commit()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunk_lengths() {
        assert_eq!(default_chunk_frames(2), 4096);
        assert_eq!(default_chunk_frames(1000), 16);
        assert_eq!(default_chunk_frames(1_000_000), 1);
    }

    #[test]
    fn problems_of_in_memory_trajectories() {
        let mut t = TrajectoryData {
            t: ndarray::array![0.0, 0.5],
            q: Array3::zeros((1, 2, 2)),
            qdot: Array3::zeros((1, 2, 2)),
            ..Default::default()
        };
        assert!(t.problems().is_empty());
        t.t[1] = -1.0;
        assert_eq!(t.problems()[0].location, "/t");
        t.t[1] = 1.0;
        t.energy = Some(Array2::zeros((2, 1)));
        assert_eq!(t.problems()[0].location, "/energy");
    }
}
