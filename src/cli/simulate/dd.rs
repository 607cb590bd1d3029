//! `mpirun -n R lgn simulate --model M.h5 …`: a domain-decomposed rollout of a graph model
//! (docs/DESIGN.md §16.5). Every rank reads the model, the graph and the state, computes the
//! same partition, and integrates its owned nodes; rank 0 gathers every output frame and
//! streams it into the one trajectory file (atomically: nothing at --out unless the run ends).

use super::{sidecar_free, Integrator, MeshOutputs, SimulateArgs};
use lgn::domain::{DistDynamics, Partition, Subdomain};
use lgn::integrate::{Method, MidpointOptions};
use lgn::io::{TrajectoryWriter, TrajectoryWriterOptions};
use lgn::parallel::{agree, Comm};
use lgn::{Error, Result};
use std::collections::BTreeMap;

/// Run on every rank of `comm`; an error on any rank ends every rank (see [`run`]).
pub(super) fn run(a: &SimulateArgs, comm: &dyn Comm) -> Result<()> {
    let r = rollout(a, comm);
    if let Err(e) = &r {
        if comm.size() > 1 {
            // Rank 0 has dropped its writer (the temporary file is gone); end every rank now,
            // whether or not the others saw the error.
            eprintln!("error: rank {} of {}: {e}", comm.rank(), comm.size());
            comm.abort(1);
        }
    }
    r
}

fn method_of(a: &SimulateArgs) -> Result<Method> {
    let step = a.step.unwrap_or(a.dt);
    Ok(match a.integrator {
        Integrator::Rk4 => Method::Rk4 { dt: step },
        Integrator::Verlet => Method::Verlet { dt: step },
        Integrator::Midpoint => Method::Midpoint {
            dt: step,
            opts: MidpointOptions::default(),
        },
        Integrator::Dp5 => {
            return Err(Error::input(
                "under mpirun, --integrator dp5 (the default) is not available: its adaptive step \
                 is not decomposed over ranks; pass --integrator verlet, rk4 or midpoint (with --step)",
            ));
        }
    })
}

fn rollout(a: &SimulateArgs, comm: &dyn Comm) -> Result<()> {
    let (rank, size) = (comm.rank(), comm.size());
    let root = rank == 0;
    let setup = || -> Result<_> {
        if a.input.is_some() || a.damping.is_some() {
            return Err(Error::input(
                "under mpirun, --input and --damping are not available (non-conservative forces are not decomposed yet); run on one rank",
            ));
        }
        let method = method_of(a)?;
        let Some(path) = &a.model else {
            return Err(Error::input(
                "under mpirun, lgn simulate runs graph models: pass --model M.h5 (with --graph or --mesh)",
            ));
        };
        let model = match lgn::model::AnyModel::load(path)? {
            lgn::model::AnyModel::Graph(m) => *m,
            lgn::model::AnyModel::Net(m) => {
                return Err(Error::file(
                    path,
                    format!(
                        "a '{}' model is not a graph model; under mpirun lgn simulate decomposes graph models only",
                        m.kind.as_str()
                    ),
                ))
            }
        };
        let graph = match super::super::accel::model_graph(a.graph.as_deref(), a.mesh.as_deref())? {
            Some(g) => g,
            None => model.own_graph()?,
        };
        if model.dissipation.is_some() {
            return Err(Error::file(
                path,
                "the model has a learned dissipation term; under mpirun lgn simulate decomposes conservative graph models only (run it on one rank)",
            ));
        }
        let (lag, fixed) = model.lagrangian(&graph)?;
        let on = format!(
            "the graph {} ({} nodes × {})",
            graph.name,
            graph.n_nodes(),
            graph.dof()
        );
        let (q0, mut v0) = super::super::accel::read_state_for(&a.state, lag.n_coords(), &on)?;
        super::at_rest(&mut v0, &fixed, graph.dof())?;
        let positions: Option<Vec<f64>> = graph
            .data
            .positions
            .as_ref()
            .map(|p| p.iter().copied().collect());
        let dim = graph.data.positions.as_ref().map_or(0, |p| p.ncols());
        let part = Partition::of_lagrangian(
            &lag,
            positions.as_deref().map(|p| (p, dim)),
            a.partition,
            size,
        )
        .map_err(|e| e.context("--partition"))?;
        let sub = Subdomain::new(&lag, &fixed, &part, rank)?;
        let geometry = lgn::io::xdmf::Geometry::from_graph(&graph.data)?.map(|g| MeshOutputs {
            mesh_file: graph.name.clone(),
            geometry: g,
        });
        let name = format!("{} on {}", model.describe(), graph.name);
        Ok((method, lag.n_coords(), q0, v0, part, sub, geometry, name))
    };
    let (method, n, q0, v0, part, sub, geometry, name) = agree(comm, setup())?;
    let d = sub.dof;
    let owned_of = |p: usize| -> Vec<usize> {
        (0..part.owner.len())
            .filter(|&i| part.owner[i] as usize == p)
            .collect()
    };
    let frames = lgn::limits::frame_count(a.t_end, a.dt)?;
    let times = lgn::integrate::Linspace {
        n: frames,
        dt: a.dt,
    };
    // Rank 0 writes; every check before any work, so a failed run commits nothing.
    let writer = if root {
        let w = || -> Result<TrajectoryWriter> {
            if let Some(p) = &a.plot {
                lgn::io::check_writable(p, a.force)?;
                lgn::io::check_writable(super::energy_png(p), a.force)?;
            }
            lgn::limits::check_disk(&a.out, frames, 8 * (3 * n as u128 + 2))?;
            if geometry.is_some() {
                sidecar_free(a)?;
            }
            let mut params = BTreeMap::new();
            params.insert("t_end".into(), a.t_end);
            params.insert("mpi_ranks".into(), size as f64);
            let opts = TrajectoryWriterOptions {
                system: Some(name.clone()),
                params,
                with_qddot: true,
                with_energy: true,
                ..Default::default()
            };
            let w = TrajectoryWriter::create(&a.out, 1, n, &opts, a.force)?;
            if let Some(m) = &geometry {
                m.write_into(&w)?;
            }
            w.set_attr(
                "partition",
                &lgn::io::AttrValue::Str(a.partition.as_str().to_string()),
            )?;
            Ok(w)
        };
        Some(agree(comm, w())?)
    } else {
        agree(comm, Ok(()))?;
        None
    };
    let owned: Vec<Vec<usize>> = if root {
        (0..size).map(owned_of).collect()
    } else {
        vec![]
    };
    let mine = sub
        .global
        .iter()
        .take(sub.n_owned)
        .flat_map(|&g| g * d..(g + 1) * d);
    let q0o: Vec<f64> = mine.clone().map(|j| q0[j]).collect();
    let v0o: Vec<f64> = mine.map(|j| v0[j]).collect();
    let mut eval = DistDynamics::new(comm, sub.clone())?;
    let mut dd = DistDynamics::new(comm, sub)?;
    let no = q0o.len();
    let mut writer = writer;
    let mut a_o = vec![0.0; no];
    let mut buf = vec![0.0; 3 * no];
    let (mut qg, mut vg, mut ag) = (vec![0.0; n], vec![0.0; n], vec![0.0; n]);
    let quiet = a.quiet || !root;
    let t0 = std::time::Instant::now();
    let stats = lgn::integrate::integrate(&mut dd, &method, &q0o, &v0o, &times, |k, t, q, v| {
        eval.accelerations_into(q, v, &mut a_o)?;
        let e = eval.energy(q, v)?;
        buf[..no].copy_from_slice(q);
        buf[no..2 * no].copy_from_slice(v);
        buf[2 * no..].copy_from_slice(&a_o);
        let all = comm.gather(0, &buf)?;
        let pushed = match (&mut writer, all) {
            (Some(w), Some(all)) => {
                for (p, b) in all.iter().enumerate() {
                    let m = b.len() / 3;
                    for (k, j) in owned[p]
                        .iter()
                        .flat_map(|&g| g * d..(g + 1) * d)
                        .enumerate()
                    {
                        qg[j] = b[k];
                        vg[j] = b[m + k];
                        ag[j] = b[2 * m + k];
                    }
                }
                let view = |x: &[f64]| ndarray::Array2::from_shape_vec((1, n), x.to_vec());
                let (qa, va, aa) = (view(&qg), view(&vg), view(&ag));
                match (qa, va, aa) {
                    (Ok(qa), Ok(va), Ok(aa)) => w.push_frame(
                        t,
                        qa.view(),
                        va.view(),
                        Some(aa.view()),
                        Some(ndarray::ArrayView1::from(&[e][..])),
                    ),
                    _ => Err(Error::input("frame shape")),
                }
            }
            _ => Ok(()),
        };
        agree(comm, pushed)?;
        if !quiet && (k + 1) % (frames / 20).max(1) == 0 {
            eprint!("\rframe {}/{frames}", k + 1);
        }
        Ok(())
    })?;
    let wall = t0.elapsed().as_secs_f64();
    if !quiet {
        eprintln!();
    }
    let committed = match writer.take() {
        Some(w) => {
            let r = w.finish().and_then(|_| match &geometry {
                Some(_) => lgn::io::xdmf::write_sidecar(&a.out, a.force).map(Some),
                None => Ok(None),
            });
            agree(comm, r)?
        }
        None => agree(comm, Ok(None))?,
    };
    // Communication summary: per rank, gathered to rank 0.
    let s = dd.stats;
    let mine = [
        dd.sub.n_owned as f64,
        dd.sub.n_halo() as f64,
        dd.sub.n_send() as f64,
        s.values_sent as f64,
        s.comm_seconds,
        s.cg_iterations as f64,
    ];
    if let Some(all) = comm.gather(0, &mine)? {
        if let Some(side) = committed {
            eprintln!(
                "wrote the XDMF sidecar {} (open it in ParaView)",
                side.display()
            );
        }
        eprintln!(
            "wrote {frames} frames of {name} ({n} coordinates) to {} on {size} ranks ({} partition): {} {} steps, {} evaluations, {wall:.3} s",
            a.out.display(),
            a.partition.as_str(),
            stats.steps,
            method.name(),
            stats.evals
        );
        for (p, x) in all.iter().enumerate() {
            eprintln!(
                "  rank {p}: {} owned nodes, {} halo nodes, sends {} nodes per exchange, {} values sent, {:.3} s in communication, {} CG iterations",
                x[0], x[1], x[2], x[3], x[4], x[5]
            );
        }
    }
    if root {
        if let Some(p) = &a.plot {
            super::plot_trajectory(&a.out, p, &name, a.force)?;
        }
    }
    Ok(())
}
