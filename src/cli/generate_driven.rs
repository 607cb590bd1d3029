//! `lgn generate wave-mesh --damping C --forcing SPEC`: the damped, driven FEM wave
//! (docs/DESIGN.md §13.6), samples or trajectories with `u`, `B` and the work datasets.

use super::generate::{GenKind, GenerateArgs};
use lgn::data::wave_mesh_driven::{self as driven, Drive, Forcing};
use lgn::integrate::{linspace_times, Method};
use lgn::mesh::fields::SmoothFieldConfig;
use lgn::mesh::TriMesh;
use lgn::Result;

pub fn run(
    a: &GenerateArgs,
    mesh: &TriMesh,
    fields: SmoothFieldConfig,
    method: &Method,
    mesh_attr: &str,
) -> Result<()> {
    use lgn::io::xdmf;
    let drive = Drive {
        damping: a.damping.unwrap_or(0.0),
        forcing: a.forcing.as_deref().map(Forcing::parse).transpose()?,
    };
    let nn = mesh.n_nodes();
    let what = format!(
        "damping c = {}{}",
        drive.damping,
        match &drive.forcing {
            Some(f) => format!(", {} forcing source(s)", f.width()),
            None => String::new(),
        }
    );
    let mut attrs = vec![("mesh", mesh_attr.to_string())];
    if let Some(s) = &a.forcing {
        attrs.push(("forcing", s.clone()));
    }
    let attr_refs: Vec<(&str, &str)> = attrs.iter().map(|(k, v)| (*k, v.as_str())).collect();
    match a.kind {
        GenKind::Samples => {
            let out = lgn::io::AtomicOutput::new(&a.out, a.force)?;
            let (samples, inputs) =
                driven::driven_samples(mesh, a.n, &fields, &drive, a.t_span, a.seed)?;
            let extra: Vec<(&str, ndarray::ArrayD<f64>)> = match inputs {
                Some((u, b)) => vec![("u", u.into_dyn()), ("B", b.into_dyn())],
                None => vec![],
            };
            lgn::data::wave_mesh::write_samples_with(&samples, &attr_refs, &extra, out)?;
            eprintln!(
                "wrote {} driven wave-mesh samples ({what}) on {mesh_attr} ({nn} nodes) to {}",
                a.n,
                a.out.display()
            );
        }
        GenKind::Trajectories => {
            let times = linspace_times(a.frames, a.dt);
            super::generate::refuse_existing_sidecar(&a.out, a.force)?;
            let (t, inputs) = driven::driven_trajectories(
                mesh, a.batch, &times, &fields, &drive, a.seed, method,
            )?;
            let opts = lgn::io::TrajectoryWriterOptions {
                system: t.data.system.clone(),
                params: t.data.params.clone(),
                with_qddot: true,
                with_energy: true,
                ..Default::default()
            };
            let mut w = lgn::io::TrajectoryWriter::create(&a.out, a.batch, nn, &opts, a.force)?;
            for (k, v) in &attrs {
                w.set_attr(k, &lgn::io::AttrValue::Str(v.clone()))?;
            }
            w.write_geometry(&xdmf::Geometry::from_mesh(mesh))?;
            let d = &t.data;
            let (qdd, e) = (d.qddot.as_ref(), d.energy.as_ref());
            for (k, &tk) in times.iter().enumerate() {
                let s = ndarray::s![.., k, ..];
                w.push_frame(
                    tk,
                    d.q.slice(s),
                    d.qdot.slice(s),
                    qdd.map(|x| x.slice(s)),
                    e.map(|x| x.column(k)),
                )?;
            }
            w.write_extra("w_dissipated", t.w_dissipated.view())?;
            w.write_extra("w_injected", t.w_injected.view())?;
            if let Some((u, b)) = &inputs {
                w.write_extra("u", u.view())?;
                w.write_extra("B", b.view())?;
            }
            w.finish()?;
            let side = xdmf::write_sidecar(&a.out, a.force)?;
            eprintln!(
                "wrote {} driven wave-mesh trajectories ({what}) × {} frames on {mesh_attr} ({nn} nodes, with w_dissipated, w_injected) to {} and {}",
                a.batch,
                a.frames,
                a.out.display(),
                side.display()
            );
        }
    }
    Ok(())
}
