//! `mpirun -n R lgn train …`: the parts of `lgn train` that differ when several MPI ranks train
//! one model together (docs/DESIGN.md §16.3). With one rank every helper is the serial path.

use lgn::io::SamplesData;
use lgn::parallel::{agree, Comm};
use lgn::train::{self, Progress, TrainConfig, TrainReport, Trainable};
use lgn::{Error, Result};
use std::path::Path;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

/// Where this rank's samples sit among all of them.
pub(super) struct Shard {
    /// Global index of the first local sample.
    pub start: usize,
    /// Number of samples of the whole data set.
    pub total: usize,
    /// The weights of all samples, if the file has them.
    pub all_weights: Option<Vec<f64>>,
}

/// The stop flag of `lgn train`. One rank: SIGINT/SIGTERM/SIGHUP stop after the current step
/// and the best model so far is written (a second signal aborts without writing). Several ranks: a signal ends the rank at once, removing its pending
/// temporary files (mpirun signals every rank when one of them dies, and a peer that is gone
/// cannot finish a step); Ctrl-C then writes nothing.
pub(super) fn stop_flag(comm: &dyn Comm) -> Arc<AtomicBool> {
    let stop = Arc::new(AtomicBool::new(false));
    if comm.size() == 1 {
        super::signals::set_graceful(stop.clone());
    }
    stop
}

/// Run `body` on the ranks of this job; an error on any rank (with several ranks) is printed
/// by the rank that has it and ends the whole job (`MPI_Abort`), so that no rank waits for one
/// that has left.
pub(super) fn on_ranks(body: impl FnOnce(&dyn Comm) -> Result<()>) -> Result<()> {
    let comm = lgn::parallel::world()?;
    let r = body(comm.as_ref());
    if let Err(e) = &r {
        if comm.size() > 1 {
            eprintln!("error: rank {} of {}: {e}", comm.rank(), comm.size());
            comm.abort(1);
        }
    }
    r
}

/// Refuse what the data-parallel path does not cover yet.
pub(super) fn refuse(comm: &dyn Comm, what: &str) -> Result<()> {
    if comm.size() > 1 {
        return Err(Error::input(format!(
            "{what} is not available with several MPI ranks yet: run it with one rank"
        )));
    }
    Ok(())
}

/// This rank's training data: the whole file with one rank, else its shard (HDF5 hyperslabs).
pub(super) fn read(path: &Path, comm: &dyn Comm) -> Result<(SamplesData, Shard)> {
    if comm.size() == 1 {
        let raw = lgn::io::read_training_data(path)?;
        let shard = Shard {
            start: 0,
            total: raw.len(),
            all_weights: raw.weights.as_ref().map(|w| w.to_vec()),
        };
        return Ok((raw, shard));
    }
    let s = agree(
        comm,
        lgn::io::read_training_shard(path, comm.rank(), comm.size()),
    )?;
    let shard = Shard {
        start: s.rows.start,
        total: s.total,
        all_weights: s.all_weights,
    };
    Ok((s.data, shard))
}

/// [`train::fit`] of `trainer` on this rank's `samples`: the plain fit with one rank, the
/// data-parallel one with several.
pub(super) fn fit<T: Trainable + ?Sized>(
    comm: &dyn Comm,
    trainer: &mut T,
    samples: train::Samples,
    shard: &Shard,
    cfg: &TrainConfig,
    on_step: &mut dyn FnMut(&Progress),
) -> Result<TrainReport> {
    if comm.size() == 1 {
        return train::fit(trainer, &samples, cfg, on_step);
    }
    let sharded = train::distributed::ShardedSamples::new(
        comm,
        samples,
        shard.start,
        shard.total,
        shard.all_weights.clone(),
    )?;
    train::distributed::fit_data_parallel(trainer, &sharded, cfg, on_step)
}

/// Largest value of `x` over the ranks.
pub(super) fn max_over(comm: &dyn Comm, x: f64) -> Result<f64> {
    let mut all = vec![0.0; comm.size()];
    all[comm.rank()] = x;
    comm.sum(&mut all)?;
    Ok(all.into_iter().fold(f64::NEG_INFINITY, f64::max))
}

/// True when `b` holds on every rank.
pub(super) fn all_over(comm: &dyn Comm, b: bool) -> Result<bool> {
    let mut n = [f64::from(u8::from(!b))];
    comm.sum(&mut n)?;
    Ok(n[0] == 0.0)
}

/// Run `write` on rank 0 only (the model file is written once, atomically); every rank
/// returns its outcome.
pub(super) fn on_root(comm: &dyn Comm, write: impl FnOnce() -> Result<()>) -> Result<()> {
    let r = if comm.is_root() { write() } else { Ok(()) };
    agree(comm, r)
}

/// Whether the coordinates `fixed` are still in the samples of every rank
/// ([`lgn::train::recipe::still_in_samples`] over all shards).
pub(super) fn still_over(comm: &dyn Comm, fixed: &[usize], raw: &SamplesData) -> Result<bool> {
    use lgn::train::recipe;
    let scale = max_over(comm, recipe::sample_scale(&raw.qdot, &raw.qddot))?;
    all_over(
        comm,
        recipe::still_at_scale(fixed, &raw.qdot, &raw.qddot, scale),
    )
}

/// The definite start of an LNN trained with a mass penalty (docs/DESIGN.md §21.7: M made
/// definite by the penalty alone before the data loss, so training does not sit on the
/// indefinite-M plateau of §21.6), run on rank 0's samples; every rank then takes rank 0's
/// network, so the ranks start from the same parameters. An error on rank 0 is every rank's.
pub(super) fn definite_start(
    comm: &dyn Comm,
    model: &mut train::TrainedModel,
    samples: &train::Samples,
    penalty: train::MassPenalty,
) -> Result<Option<train::definite_start::DefiniteStartReport>> {
    use train::definite_start::{definite_start, DefiniteStart};
    let r = if comm.is_root() {
        definite_start(model, samples, penalty, &DefiniteStart::default()).map(Some)
    } else {
        Ok(None)
    };
    let r = agree(comm, r)?;
    if comm.size() > 1 {
        let mut theta = train::hyperdual::flatten(&model.net);
        comm.broadcast(0, &mut theta)?;
        train::hyperdual::unflatten(&mut model.net, &theta);
    }
    Ok(r)
}
