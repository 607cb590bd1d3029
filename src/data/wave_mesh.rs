//! Finite-element truth data for the wave equation on a user's triangle mesh
//! (`lgn generate wave-mesh`, `lgn simulate --system wave-mesh`).
//!
//! The system is [`crate::systems::wave_mesh`] with [`MeshDensity::Fem`]: P1 elements, lumped
//! mass M = diag(m_i) (a third of the adjacent triangle areas), cotangent stiffness K, free
//! (natural) boundary, so q̈ = −M⁻¹Kφ. States are random smooth fields
//! ([`crate::mesh::fields::random_state`]): φ of RMS 1 about a level uniform in [−1, 1), φ̇ of
//! RMS 1 about 0.
//!
//! * [`wave_mesh_samples`]: N independent states with their accelerations (samples file).
//! * [`wave_mesh_trajectories`]: B trajectories from random states, integrated together as one
//!   system (the B blocks are independent), each output frame streamed into a
//!   [`TrajectoryWriter`] with q̈ and the FEM energy ½φ̇ᵀMφ̇ + ½φᵀKφ.

use crate::dynamics::Dynamics;
use crate::integrate::{integrate, Method, Stats};
use crate::io::{AtomicOutput, SamplesData, TrajectoryWriter};
use crate::mesh::fields::{random_state, SmoothFieldConfig};
use crate::mesh::TriMesh;
use crate::solve::SolverKind;
use crate::systems::{wave_mesh, MeshDensity};
use crate::{Error, Result};
use ndarray::{Array1, Array2, ArrayView2};
use rand::rngs::StdRng;
use rand::SeedableRng;
use std::collections::BTreeMap;

/// The `system` attribute of wave-mesh data.
pub const SYSTEM: &str = "wave-mesh";

/// The FEM truth on `mesh` (lumped mass: `SolverKind::Auto` solves the diagonal M in O(n)).
pub fn fem_dynamics(mesh: &TriMesh, solver: SolverKind) -> Result<Dynamics> {
    Ok(wave_mesh(mesh, &MeshDensity::Fem, solver)?.dynamics)
}

/// Parameters recorded as root attributes: n_nodes, c, waves, k_max, seed.
pub fn params(mesh: &TriMesh, fields: &SmoothFieldConfig, seed: u64) -> BTreeMap<String, f64> {
    [
        ("n_nodes", mesh.n_nodes() as f64),
        ("c", 1.0),
        ("waves", fields.waves as f64),
        ("k_max", fields.k_max),
        ("seed", seed as f64),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect()
}

/// `n` random states (φ, φ̇) on `mesh` with their FEM accelerations −M⁻¹Kφ. Deterministic
/// given `seed`.
pub fn wave_mesh_samples(
    mesh: &TriMesh,
    n: usize,
    fields: &SmoothFieldConfig,
    seed: u64,
) -> Result<SamplesData> {
    if n == 0 {
        return Err(Error::input("the number of samples must be at least 1"));
    }
    fields.check()?;
    let mut dy = fem_dynamics(mesh, SolverKind::Auto)?;
    let d = mesh.n_nodes();
    let mut rng = StdRng::seed_from_u64(seed);
    let (mut q, mut v, mut a) = (
        Array2::zeros((n, d)),
        Array2::zeros((n, d)),
        Array2::zeros((n, d)),
    );
    let mut acc = vec![0.0; d];
    for i in 0..n {
        let (phi, phidot) = random_state(&mesh.positions, &mut rng, fields);
        dy.accelerations_into(&phi, &phidot, &mut acc)?;
        q.row_mut(i).assign(&Array1::from(phi));
        v.row_mut(i).assign(&Array1::from(phidot));
        a.row_mut(i).assign(&Array1::from(acc.clone()));
    }
    Ok(SamplesData {
        system: Some(SYSTEM.into()),
        params: params(mesh, fields, seed),
        q,
        qdot: v,
        qddot: a,
        weights: None,
    })
}

/// Write `samples` through a prepared atomic output (create it with [`AtomicOutput::new`]
/// before computing, so a refused output fails before any work), plus extra string root
/// attributes (e.g. `mesh` = the mesh file name).
pub fn write_samples_with_attrs(
    samples: &SamplesData,
    attrs: &[(&str, &str)],
    out: AtomicOutput,
) -> Result<()> {
    write_samples_with(samples, attrs, &[], out)
}

/// [`write_samples_with_attrs`] plus extra float64 root datasets (e.g. the inputs `u`, `B` of
/// driven data, docs/SCHEMA.md "Inputs and work"), all written before the commit.
pub fn write_samples_with(
    samples: &SamplesData,
    attrs: &[(&str, &str)],
    extra: &[(&str, ndarray::ArrayD<f64>)],
    out: AtomicOutput,
) -> Result<()> {
    use hdf5::types::VarLenUnicode;
    let target = out.target().to_path_buf();
    samples.write(out.tmp_path(), true)?;
    crate::io::inputs::add_datasets(out.tmp_path(), &target, extra)?;
    {
        let f = hdf5::File::open_rw(out.tmp_path())
            .map_err(|e| Error::file(&target, format!("cannot reopen for writing: {e}")))?;
        for (name, v) in attrs {
            let at = |msg: String| Error::file_at(&target, format!("/@{name}"), msg);
            let s: VarLenUnicode = v
                .parse()
                .map_err(|_| at("the string contains a NUL byte".into()))?;
            f.new_attr::<VarLenUnicode>()
                .shape(())
                .create(*name)
                .and_then(|a| a.write_scalar(&s))
                .map_err(|e| at(format!("cannot write: {e}")))?;
        }
    }
    out.commit()?;
    Ok(())
}

/// What [`wave_mesh_trajectories`] integrates.
#[derive(Clone, Debug)]
pub struct TrajectorySpec<'a> {
    /// Number of trajectories B.
    pub batch: usize,
    /// Output times (the first is the initial state).
    pub times: &'a [f64],
    /// Random initial fields.
    pub fields: SmoothFieldConfig,
    /// Seed of the initial fields.
    pub seed: u64,
    /// Integrator (any but the implicit midpoint, which needs the per-block Lagrangian).
    pub method: Method,
}

/// Integrate `spec.batch` trajectories of the FEM wave on `mesh` from random states and stream
/// every output frame into `writer` (created with B = `spec.batch`, D = n_nodes, `with_qddot`
/// and `with_energy`). The B trajectories are integrated as one system of B·n coordinates
/// (blocks independent, the adaptive step is shared). `progress` is called with the number of
/// frames written.
pub fn wave_mesh_trajectories(
    mesh: &TriMesh,
    spec: &TrajectorySpec,
    writer: &mut TrajectoryWriter,
    mut progress: impl FnMut(usize),
) -> Result<Stats> {
    let TrajectorySpec {
        batch,
        times,
        fields,
        seed,
        method,
    } = spec.clone();
    let fields = &fields;
    if batch == 0 {
        return Err(Error::input(
            "the number of trajectories must be at least 1",
        ));
    }
    fields.check()?;
    crate::integrate::check_times(times)?;
    let n = mesh.n_nodes();
    let mut rng = StdRng::seed_from_u64(seed);
    let (mut q0, mut v0) = (Vec::with_capacity(batch * n), Vec::with_capacity(batch * n));
    for _ in 0..batch {
        let (phi, phidot) = random_state(&mesh.positions, &mut rng, fields);
        q0.extend(phi);
        v0.extend(phidot);
    }
    let mut dy = fem_dynamics(mesh, SolverKind::Auto)?;
    let mut eval = fem_dynamics(mesh, SolverKind::Auto)?;
    let mut rhs = |q: &[f64], v: &[f64], a: &mut [f64]| -> Result<()> {
        for ((qb, vb), ab) in q.chunks(n).zip(v.chunks(n)).zip(a.chunks_mut(n)) {
            dy.accelerations_into(qb, vb, ab)?;
        }
        Ok(())
    };
    let mut a = vec![0.0; batch * n];
    let mut e = vec![0.0; batch];
    integrate(&mut rhs, &method, &q0, &v0, times, |k, t, q, v| {
        for (b, ((qb, vb), ab)) in q
            .chunks(n)
            .zip(v.chunks(n))
            .zip(a.chunks_mut(n))
            .enumerate()
        {
            eval.accelerations_into(qb, vb, ab)?;
            e[b] = eval.energy(qb, vb)?;
        }
        fn view(x: &[f64], b: usize, n: usize) -> ArrayView2<'_, f64> {
            ArrayView2::from_shape((b, n), x).expect("B×n")
        }
        writer.push_frame(
            t,
            view(q, batch, n),
            view(v, batch, n),
            Some(view(&a, batch, n)),
            Some(ndarray::ArrayView1::from(&e[..])),
        )?;
        progress(k + 1);
        Ok(())
    })
}
