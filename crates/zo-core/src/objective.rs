//! The objective the trainer minimises, and the deterministic mini-batch order.
//!
//! An objective is a loss over a mini-batch of row indices at the *current* weights (the model
//! shares storage with the `ParamSet`, so it sees every sweep). It is called once per query;
//! all queries of a step see the same batch.

use serde::{Deserialize, Serialize};

use crate::rng::mix64;
use crate::Result;

/// A loss over a mini-batch: `loss(step, batch)` (batch = row indices; empty for full-data
/// objectives).
pub trait Objective {
    /// One query: the loss of `batch` at the current weights.
    fn loss(&mut self, step: u64, batch: &[usize]) -> Result<f64>;
}

impl<F: FnMut(u64, &[usize]) -> Result<f64>> Objective for F {
    fn loss(&mut self, step: u64, batch: &[usize]) -> Result<f64> {
        self(step, batch)
    }
}

/// Which rows each step trains on: epochs of a seeded permutation of `0..n`, consumed
/// `batch_size` at a time (batches may straddle epochs), like a shuffled DataLoader
/// without dropping the last partial batch. A pure function of (seed, step).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DataOrder {
    /// Number of training rows.
    pub n: usize,
    /// Rows per step.
    pub batch_size: usize,
    /// The data seed.
    pub seed: u64,
}

/// [`DataOrder`] with the current epoch's permutation cached.
#[derive(Clone, Debug)]
pub struct BatchSampler {
    order: DataOrder,
    epoch: Option<(u64, Vec<usize>)>,
}

impl BatchSampler {
    /// A sampler for `order`.
    pub fn new(order: DataOrder) -> Self {
        BatchSampler { order, epoch: None }
    }

    /// The permutation of epoch `e`: Fisher–Yates driven by a SplitMix64 stream seeded from
    /// (seed, e), index drawn by Lemire's multiply-shift.
    pub fn permutation(order: &DataOrder, e: u64) -> Vec<usize> {
        let mut p: Vec<usize> = (0..order.n).collect();
        let mut state = mix64(order.seed ^ mix64(e.wrapping_add(0x632B_E59B_D9B4_E019)));
        for i in (1..p.len()).rev() {
            state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let r = mix64(state);
            let j = ((u128::from(r) * (i as u128 + 1)) >> 64) as usize;
            p.swap(i, j);
        }
        p
    }

    /// The rows of step `step`.
    pub fn batch(&mut self, step: u64) -> Vec<usize> {
        let (n, b) = (self.order.n as u64, self.order.batch_size as u64);
        if n == 0 || b == 0 {
            return Vec::new();
        }
        (0..b)
            .map(|i| {
                let pos = step * b + i;
                let (e, at) = (pos / n, (pos % n) as usize);
                if self.epoch.as_ref().map(|(c, _)| *c) != Some(e) {
                    self.epoch = Some((e, Self::permutation(&self.order, e)));
                }
                self.epoch.as_ref().map_or(0, |(_, p)| p[at])
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batches_are_a_pure_function_of_seed_and_step() {
        let order = DataOrder {
            n: 10,
            batch_size: 4,
            seed: 7,
        };
        let mut a = BatchSampler::new(order);
        let seq: Vec<Vec<usize>> = (0..10).map(|s| a.batch(s)).collect();
        // Out of order, fresh sampler: same batches.
        let mut b = BatchSampler::new(order);
        for s in (0..10).rev() {
            assert_eq!(b.batch(s), seq[s as usize]);
        }
        // Each epoch is a permutation.
        let flat: Vec<usize> = seq.concat();
        for e in 0..4 {
            let mut ep = flat[e * 10..e * 10 + 10].to_vec();
            ep.sort();
            assert_eq!(ep, (0..10).collect::<Vec<_>>());
        }
        assert_ne!(flat[..10], flat[10..20], "epochs differ");
        let mut c = BatchSampler::new(DataOrder { seed: 8, ..order });
        assert_ne!(c.batch(0), seq[0]);
    }
}
