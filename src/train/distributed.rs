//! Data-parallel training over the ranks of a [`Comm`] (docs/DESIGN.md §16.3).
//!
//! Each rank holds its shard of the samples ([`ShardedSamples`]: the global sample count and
//! weights everywhere, the samples' values only where they are owned). [`fit`] runs unchanged
//! on every rank: its seeded split and shuffles are the same everywhere, so every rank sees the
//! same minibatch of global indices. [`DataParallel`] evaluates the loss and its exact gradient
//! on the rank's share of that minibatch and sums the weighted shares over the ranks in a fixed
//! order ([`Comm::sum`]): every rank gets the bitwise same gradient, takes the same Adam step
//! and keeps the same parameters. Errors and stop requests of any rank are agreed on, so all
//! ranks leave [`fit`] together.

use super::{fit, LossKind, Progress, Samples, TrainConfig, TrainReport, Trainable, TrainingSet};
use crate::error::{Error, Result};
use crate::parallel::{agree, Comm};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

const NOT_HERE: usize = usize::MAX;

/// Samples spread over ranks: what [`fit`] trains on in a data-parallel run.
#[derive(Clone)]
pub struct ShardedSamples<'c> {
    comm: &'c dyn Comm,
    /// Weights of all samples (global indices).
    weights: Arc<[f64]>,
    /// The samples owned by this rank.
    local: Samples,
    /// Global index → row of `local`, or `NOT_HERE`.
    local_of: Arc<[usize]>,
}

impl<'c> ShardedSamples<'c> {
    /// The samples `local` of this rank are the global samples `start..start + local.n` of
    /// `total`; `all_weights` are the weights of all `total` samples (None: all 1). Checks
    /// that the ranks' shards tile `0..total` in rank order.
    pub fn new(
        comm: &'c dyn Comm,
        local: Samples,
        start: usize,
        total: usize,
        all_weights: Option<Vec<f64>>,
    ) -> Result<ShardedSamples<'c>> {
        let mut ranges = vec![0.0; 2 * comm.size()];
        ranges[2 * comm.rank()] = start as f64;
        ranges[2 * comm.rank() + 1] = (start + local.n) as f64;
        comm.sum(&mut ranges)?;
        let mut next = 0.0;
        for r in 0..comm.size() {
            if ranges[2 * r] != next {
                return Err(Error::input(format!(
                    "the shards do not tile the samples: rank {r} starts at sample {} instead of {next}",
                    ranges[2 * r]
                )));
            }
            next = ranges[2 * r + 1];
        }
        if next != total as f64 {
            return Err(Error::input(format!(
                "the shards hold {next} samples, the data {total}"
            )));
        }
        let weights: Arc<[f64]> = match all_weights {
            Some(w) if w.len() == total => w.into(),
            Some(w) => {
                return Err(Error::input(format!(
                    "{} weights for {total} samples",
                    w.len()
                )))
            }
            None => vec![1.0; total].into(),
        };
        let mut local_of = vec![NOT_HERE; total];
        for (k, slot) in local_of[start..start + local.n].iter_mut().enumerate() {
            *slot = k;
        }
        Ok(ShardedSamples {
            comm,
            weights,
            local,
            local_of: local_of.into(),
        })
    }

    /// The samples of this rank.
    pub fn local(&self) -> &Samples {
        &self.local
    }

    /// The rows of `local` among the global indices `idx` (in `idx` order) and their total
    /// weight.
    fn share(&self, idx: &[usize]) -> (Vec<usize>, f64) {
        let rows: Vec<usize> = idx
            .iter()
            .filter_map(|&i| Some(self.local_of[i]).filter(|&k| k != NOT_HERE))
            .collect();
        let w = rows.iter().map(|&k| self.local.weight(k)).sum();
        (rows, w)
    }
}

impl TrainingSet for ShardedSamples<'_> {
    fn len(&self) -> usize {
        self.weights.len()
    }
    fn subset(&self, idx: &[usize]) -> Self {
        let mut local_of = vec![NOT_HERE; idx.len()];
        let mut rows = Vec::new();
        for (g, &i) in idx.iter().enumerate() {
            let k = self.local_of[i];
            if k != NOT_HERE {
                local_of[g] = rows.len();
                rows.push(k);
            }
        }
        ShardedSamples {
            comm: self.comm,
            weights: idx.iter().map(|&i| self.weights[i]).collect(),
            local: self.local.subset(&rows),
            local_of: local_of.into(),
        }
    }
    fn weight(&self, i: usize) -> f64 {
        self.weights[i]
    }
    /// The zero loss of all shards (NaN when the ranks cannot communicate: [`fit`] then stops
    /// with an error).
    fn zero_loss(&self, idx: &[usize], loss: LossKind) -> f64 {
        let (rows, w) = self.share(idx);
        let total: f64 = idx.iter().map(|&i| self.weights[i]).sum();
        let mut acc = [if rows.is_empty() {
            0.0
        } else {
            super::zero_loss(&self.local, &rows, loss) * w
        }];
        match self.comm.sum(&mut acc) {
            Ok(()) => acc[0] / total,
            Err(_) => f64::NAN,
        }
    }
}

/// A [`Trainable`] on [`Samples`] made data-parallel: its loss and gradient over a minibatch of
/// global indices are the weighted sums of the ranks' shares (see the module documentation).
pub struct DataParallel<'a, T: ?Sized> {
    inner: &'a mut T,
    comm: &'a dyn Comm,
    /// Set locally (a signal on this rank).
    stop_local: Arc<AtomicBool>,
    /// Set on every rank once any rank's `stop_local` was seen: the `stop` of the [`fit`] run.
    stop_agreed: Arc<AtomicBool>,
}

impl<T: Trainable + ?Sized> DataParallel<'_, T> {
    fn eval(
        &mut self,
        data: &ShardedSamples<'_>,
        idx: &[usize],
        loss: LossKind,
        want_grad: bool,
        val: bool,
    ) -> Result<(f64, Vec<f64>, usize)> {
        let (rows, w) = data.share(idx);
        let total: f64 = idx.iter().map(|&i| data.weights[i]).sum();
        let local = if rows.is_empty() {
            Ok((0.0, vec![], 0))
        } else if val {
            self.inner
                .val_loss(&data.local, &rows, loss)
                .map(|(l, nd)| (l, vec![], nd))
        } else {
            self.inner.loss_grad(&data.local, &rows, loss, want_grad)
        };
        let (l, g, nd) = agree(self.comm, local)?;
        let np = if want_grad {
            self.inner.params().len()
        } else {
            0
        };
        // [stop requests, dropped samples, weighted loss, weighted gradient]
        let mut buf = vec![0.0; 3 + np];
        buf[0] = f64::from(u8::from(self.stop_local.load(Ordering::Relaxed)));
        buf[1] = nd as f64;
        buf[2] = l * w;
        if want_grad && !g.is_empty() {
            if g.len() != np {
                return Err(Error::input(format!(
                    "rank {}: the gradient has {} entries for {np} parameters",
                    self.comm.rank(),
                    g.len()
                )));
            }
            buf[3..].iter_mut().zip(&g).for_each(|(b, x)| *b = x * w);
        }
        self.comm.sum(&mut buf)?;
        if buf[0] > 0.0 {
            self.stop_agreed.store(true, Ordering::Relaxed);
        }
        let inv = 1.0 / total;
        let grad = buf[3..].iter().map(|x| x * inv).collect();
        Ok((buf[2] * inv, grad, buf[1] as usize))
    }
}

impl<'c, T: Trainable + ?Sized> Trainable<ShardedSamples<'c>> for DataParallel<'_, T> {
    fn params(&self) -> Vec<f64> {
        self.inner.params()
    }
    fn set_params(&mut self, theta: &[f64]) -> Result<()> {
        let r = self.inner.set_params(theta);
        agree(self.comm, r)
    }
    fn loss_grad(
        &mut self,
        data: &ShardedSamples<'c>,
        idx: &[usize],
        loss: LossKind,
        want_grad: bool,
    ) -> Result<(f64, Vec<f64>, usize)> {
        self.eval(data, idx, loss, want_grad, false)
    }
    fn val_loss(
        &mut self,
        data: &ShardedSamples<'c>,
        idx: &[usize],
        loss: LossKind,
    ) -> Result<(f64, usize)> {
        self.eval(data, idx, loss, false, true)
            .map(|(l, _, nd)| (l, nd))
    }
}

/// [`fit`] over the ranks of `data`'s communicator: `model` trains on this rank's shard of
/// `data`. The initial parameters are rank 0's. Every rank returns the same report and leaves
/// `model` with the same parameters. `cfg.stop` set on any rank stops all of them after the
/// same step.
pub fn fit_data_parallel<T: Trainable + ?Sized>(
    model: &mut T,
    data: &ShardedSamples<'_>,
    cfg: &TrainConfig,
    on_step: &mut dyn FnMut(&Progress),
) -> Result<TrainReport> {
    let comm = data.comm;
    let mut theta = model.params();
    comm.broadcast(0, &mut theta)?;
    agree(comm, model.set_params(&theta))?;
    let stop_agreed = Arc::new(AtomicBool::new(false));
    let run_cfg = TrainConfig {
        stop: stop_agreed.clone(),
        ..cfg.clone()
    };
    let mut dp = DataParallel {
        inner: model,
        comm,
        stop_local: cfg.stop.clone(),
        stop_agreed,
    };
    fit(&mut dp, data, &run_cfg, on_step)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::parallel::SerialComm;

    /// A linear least-squares model: loss = weighted mean of (θ·x − y)², exact gradient.
    struct Linear(Vec<f64>);
    impl Trainable for Linear {
        fn params(&self) -> Vec<f64> {
            self.0.clone()
        }
        fn set_params(&mut self, t: &[f64]) -> Result<()> {
            self.0 = t.to_vec();
            Ok(())
        }
        fn loss_grad(
            &mut self,
            d: &Samples,
            idx: &[usize],
            _l: LossKind,
            _g: bool,
        ) -> Result<(f64, Vec<f64>, usize)> {
            let inv = d.inv_norm(idx);
            let mut g = vec![0.0; self.0.len()];
            let mut l = 0.0;
            for &i in idx {
                let x = d.input_row(i);
                let r: f64 =
                    x.iter().zip(&self.0).map(|(a, b)| a * b).sum::<f64>() - d.target_row(i)[0];
                l += d.weight(i) * inv * r * r;
                for (gj, xj) in g.iter_mut().zip(x) {
                    *gj += 2.0 * d.weight(i) * inv * r * xj;
                }
            }
            Ok((l, g, 0))
        }
    }

    fn data(n: usize) -> Samples {
        let input: Vec<f64> = (0..2 * n).map(|k| ((k * 37 % 11) as f64).sin()).collect();
        let target: Vec<f64> = (0..n)
            .map(|i| 0.7 * input[2 * i] - 0.3 * input[2 * i + 1])
            .collect();
        let w = (0..n).map(|i| 1.0 + (i % 3) as f64).collect();
        Samples::new(2, 1, input, target, Some(w)).unwrap()
    }

    #[test]
    fn one_rank_data_parallel_equals_plain_fit() {
        let d = data(40);
        let cfg = TrainConfig {
            epochs: 5,
            batch: 7,
            ..TrainConfig::default()
        };
        let mut a = Linear(vec![0.1, 0.2]);
        let ra = fit(&mut a, &d, &cfg, &mut |_| {}).unwrap();
        let mut b = Linear(vec![0.1, 0.2]);
        let w = d.weights.clone();
        let sharded = ShardedSamples::new(&SerialComm, d, 0, 40, w).unwrap();
        let rb = fit_data_parallel(&mut b, &sharded, &cfg, &mut |_| {}).unwrap();
        for (x, y) in a.0.iter().zip(&b.0) {
            assert!((x - y).abs() <= 1e-14 * x.abs().max(1.0), "{x} vs {y}");
        }
        assert!((ra.best_val_loss - rb.best_val_loss).abs() <= 1e-12 * ra.best_val_loss);
    }

    #[test]
    fn shares_of_a_split_minibatch_sum_to_the_whole() {
        // Two "ranks" simulated by two shards: the weighted shares add up to the batch loss.
        let d = data(10);
        let w = d.weights.clone().unwrap();
        let idx = [9usize, 2, 4, 7, 0];
        let mut m = Linear(vec![0.4, -0.1]);
        let (whole, gw, _) = m.loss_grad(&d, &idx, LossKind::Mse, true).unwrap();
        let c = SerialComm;
        let lo = ShardedSamples::new(&c, d.subset(&[0, 1, 2, 3, 4]), 0, 5, None).unwrap();
        let hi = d.subset(&[5, 6, 7, 8, 9]);
        let (rl, wl) = lo.share(&[2, 4, 0]);
        let (l1, g1, _) = m.loss_grad(&lo.local, &rl, LossKind::Mse, true).unwrap();
        let (l2, g2, _) = m.loss_grad(&hi, &[4, 2], LossKind::Mse, true).unwrap();
        let w2 = w[9] + w[7];
        assert_eq!(wl, w[2] + w[4] + w[0]);
        let tot = wl + w2;
        assert!(((l1 * wl + l2 * w2) / tot - whole).abs() < 1e-14);
        for j in 0..2 {
            assert!(((g1[j] * wl + g2[j] * w2) / tot - gw[j]).abs() < 1e-14);
        }
    }
}
