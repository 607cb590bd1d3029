//! Inputs and halo figures of the domain-decomposition targets (docs/DESIGN.md §16.5.5).
//!
//! ```text
//! cargo run --release --example domain_mesh -- inputs DIR K   # DIR/mesh_model.h5, DIR/state.h5
//! cargo run --release --example domain_mesh -- halo K 2 4 8   # halo volume per rank
//! RAYON_NUM_THREADS=2 domain_mesh step K STEPS                  # 1 process, the plain engine
//! RAYON_NUM_THREADS=1 mpirun -n 2 -x RAYON_NUM_THREADS domain_mesh step K STEPS
//! ```
//!
//! `step` times STEPS velocity-Verlet steps (h = 1e-4) after the set-up, wall and CPU seconds
//! per step, and the seconds spent in halo exchanges and reductions.
//!
//! K × K cells of the unit square: (K + 1)² nodes (K = 999: 10⁶ nodes). The model is the
//! node-edge graph model on mesh features with a fixed boundary (the test mesh model of
//! `lgn::domain::testing`).

use lgn::domain::{testing, Partition, PartitionMethod, Subdomain};

fn main() -> lgn::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let usage = || lgn::Error::input("usage: domain_mesh inputs DIR K | halo K P…");
    let num = |s: &String| s.parse::<usize>().map_err(|_| usage());
    match args.first().map(String::as_str) {
        Some("inputs") if args.len() == 3 => {
            let dir = std::path::Path::new(&args[1]);
            let case = testing::mesh(num(&args[2])?)?;
            case.model.save(&dir.join("mesh_model.h5"), None, true)?;
            let f = hdf5::File::create(dir.join("state.h5"))
                .map_err(|e| lgn::Error::input(e.to_string()))?;
            for (name, x) in [("q", &case.q), ("qdot", &case.v)] {
                f.new_dataset_builder()
                    .with_data(x.as_slice())
                    .create(name)
                    .map_err(|e| lgn::Error::input(e.to_string()))?;
            }
            println!(
                "{} nodes: {}/mesh_model.h5, {}/state.h5",
                case.q.len(),
                dir.display(),
                dir.display()
            );
        }
        Some("halo") if args.len() >= 3 => {
            let case = testing::mesh(num(&args[1])?)?;
            let lag = &case.dynamics.lagrangian;
            let n = lag.n_nodes;
            let (pos, dim) = case.positions.as_ref().expect("mesh positions");
            println!("| P | method | owned nodes/rank | halo nodes/rank (max) | sent nodes/rank (max) | halo/√(n/P) |");
            println!("|---|---|---|---|---|---|");
            for p in &args[2..] {
                let parts = num(p)?;
                for method in [PartitionMethod::Rcb, PartitionMethod::Graph] {
                    let part = Partition::of_lagrangian(lag, Some((pos, *dim)), method, parts)?;
                    let (mut halo, mut sent, mut owned) = (0usize, 0usize, 0usize);
                    for r in 0..parts {
                        let s = Subdomain::new(lag, case.dynamics.fixed_coords(), &part, r)?;
                        halo = halo.max(s.n_halo());
                        sent = sent.max(s.n_send());
                        owned = owned.max(s.n_owned);
                    }
                    println!(
                        "| {parts} | {method} | {owned} | {halo} | {sent} | {:.2} |",
                        halo as f64 / (n as f64 / parts as f64).sqrt()
                    );
                }
            }
        }
        Some("step") if args.len() == 3 => step(num(&args[1])?, num(&args[2])?)?,
        _ => return Err(usage()),
    }
    Ok(())
}

fn cpu_seconds() -> f64 {
    // SAFETY: getrusage writes into the zeroed struct it is given.
    let mut u: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut u) };
    let t = |x: libc::timeval| x.tv_sec as f64 + x.tv_usec as f64 * 1e-6;
    t(u.ru_utime) + t(u.ru_stime)
}

/// Time `steps` Verlet steps of the test mesh model on K × K cells: the plain engine on one
/// process, the domain-decomposed one (RCB) on several.
fn step(k: usize, steps: usize) -> lgn::Result<()> {
    use lgn::integrate::{integrate, Linspace, Method};
    let comm = lgn::parallel::world()?;
    let case = testing::mesh(k)?;
    let h = 1e-4;
    let times = Linspace {
        n: 2,
        dt: h * steps as f64,
    };
    let method = Method::Verlet { dt: h };
    let threads = rayon::current_num_threads();
    let (wall, cpu, comm_s, sent) = if comm.size() == 1 {
        let mut dy = case.dynamics;
        let (t0, c0) = (std::time::Instant::now(), cpu_seconds());
        integrate(&mut dy, &method, &case.q, &case.v, &times, |_, _, _, _| {
            Ok(())
        })?;
        (t0.elapsed().as_secs_f64(), cpu_seconds() - c0, 0.0, 0.0)
    } else {
        let lag = &case.dynamics.lagrangian;
        let (pos, dim) = case.positions.as_ref().expect("mesh positions");
        let part =
            Partition::of_lagrangian(lag, Some((pos, *dim)), PartitionMethod::Rcb, comm.size())?;
        let sub = Subdomain::new(lag, case.dynamics.fixed_coords(), &part, comm.rank())?;
        let mine: Vec<usize> = sub.global[..sub.n_owned].to_vec();
        let q: Vec<f64> = mine.iter().map(|&i| case.q[i]).collect();
        let v: Vec<f64> = mine.iter().map(|&i| case.v[i]).collect();
        drop(case);
        let mut dd = lgn::domain::DistDynamics::new(comm.as_ref(), sub)?;
        comm.barrier()?;
        let (t0, c0) = (std::time::Instant::now(), cpu_seconds());
        integrate(&mut dd, &method, &q, &v, &times, |_, _, _, _| Ok(()))?;
        comm.barrier()?;
        (
            t0.elapsed().as_secs_f64(),
            cpu_seconds() - c0,
            dd.stats.comm_seconds,
            dd.stats.values_sent as f64,
        )
    };
    let per = (steps + 1) as f64; // Verlet: one evaluation per step plus the initial one
    let all = comm.gather(0, &[wall, cpu, comm_s, sent])?;
    if let Some(all) = all {
        let wall_max = all.iter().map(|x| x[0]).fold(0.0, f64::max);
        let cpu_sum: f64 = all.iter().map(|x| x[1]).sum();
        let comm_max = all.iter().map(|x| x[2]).fold(0.0, f64::max);
        let sent_max = all.iter().map(|x| x[3]).fold(0.0, f64::max);
        println!(
            "{{\"ranks\": {}, \"threads_per_rank\": {threads}, \"nodes\": {}, \"steps\": {steps}, \"wall_per_step_s\": {:.4}, \"cpu_per_step_s\": {:.4}, \"comm_per_step_s\": {:.5}, \"values_sent_per_step\": {:.0}}}",
            comm.size(),
            (k + 1) * (k + 1),
            wall_max / per,
            cpu_sum / per,
            comm_max / per,
            sent_max / per
        );
    }
    Ok(())
}
