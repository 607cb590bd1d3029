//! Time the fixed-order sum over ranks (docs/DESIGN.md §16.4) for vectors of 1 to 10⁶ values:
//! `mpirun -n R target/release/examples/mpi_allreduce`. Rank 0 prints one line per size: the
//! median time of a sum and the bytes each rank sends per sum.

use lgn::parallel;
use std::time::Instant;

fn main() -> lgn::Result<()> {
    let comm = parallel::world()?;
    for n in [1usize, 100, 10_000, 100_000, 1_000_000] {
        let mut buf = vec![1.0; n];
        let reps = if n >= 100_000 { 10 } else { 100 };
        let mut times = Vec::with_capacity(reps);
        for _ in 0..reps {
            comm.barrier()?;
            let t = Instant::now();
            comm.sum(&mut buf)?;
            times.push(t.elapsed().as_secs_f64());
        }
        times.sort_by(f64::total_cmp);
        let med = times[reps / 2];
        let mut all = [med];
        comm.broadcast(0, &mut all)?;
        if comm.is_root() {
            println!(
                "ranks {} values {n:>8}: median {:>10.1} µs per sum ({:.2} GB/s of the vector)",
                comm.size(),
                med * 1e6,
                8.0 * n as f64 / med / 1e9
            );
        }
    }
    Ok(())
}
