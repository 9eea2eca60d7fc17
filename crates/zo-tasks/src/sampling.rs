//! MeZO's seeded train/dev/test subsets (`large_models/tasks.py` `sample_subset` /
//! `sample_train_sets`, driven by `run.py main`; docs/PROTOCOL.md 1.0).
//!
//! - train+dev: `permutation(len(train_pool))[:num_train + num_dev]` with `np.random.seed(seed)`;
//!   dev is the **tail** `[-num_dev:]`, train the rest `[:-num_dev]`;
//! - test: `permutation(len(valid_pool))[:num_eval]` with the **same** seed.
//!
//! Pools smaller than the request are simply permuted whole (COPA: 400 → 300 train / 100 dev).

use serde::{Deserialize, Serialize};

use crate::error::TaskError;
use crate::mt19937::numpy_permutation;

/// How many examples each split takes (MeZO's `--num_train/--num_dev/--num_eval`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SplitSizes {
    pub num_train: usize,
    /// `0` means "no dev set" (MeZO's `--num_dev` unset). MeZO's own slicing with a literal 0
    /// would be `samples[-0:]` = everything as dev and no training data; we do not copy that.
    pub num_dev: usize,
    pub num_eval: usize,
}

/// Row indices (into the train pool for train/dev, into the validation pool for test), in the
/// order MeZO visits them.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SplitIndices {
    pub train: Vec<usize>,
    pub dev: Vec<usize>,
    pub test: Vec<usize>,
}

/// The sampled examples themselves, plus the indices they came from.
#[derive(Clone, Debug, PartialEq)]
pub struct Splits<T> {
    pub train: Vec<T>,
    pub dev: Vec<T>,
    pub test: Vec<T>,
    pub indices: SplitIndices,
}

/// `sample_subset(split, seed, num)`: the first `num` entries of numpy's permutation of
/// `0..pool_len` under `np.random.seed(seed)`.
pub fn sample_subset_indices(
    pool_len: usize,
    seed: u32,
    num: usize,
) -> Result<Vec<usize>, TaskError> {
    // numpy's random_interval takes the 32-bit path only below 2^32; MeZO's pools are < 2^17.
    if pool_len as u64 > u64::from(u32::MAX) + 1 {
        return Err(TaskError::PoolTooLarge { len: pool_len });
    }
    let mut perm = numpy_permutation(pool_len, seed);
    perm.truncate(num);
    Ok(perm)
}

/// Indices of MeZO's train/dev/test subsets.
pub fn split_indices(
    train_pool_len: usize,
    valid_pool_len: usize,
    seed: u32,
    sizes: SplitSizes,
) -> Result<SplitIndices, TaskError> {
    let wanted = sizes.num_train.saturating_add(sizes.num_dev);
    if wanted > train_pool_len {
        tracing::warn!(
            wanted,
            train_pool_len,
            "num_train + num_dev > available training examples: the whole pool is used"
        );
    }
    let mut train = sample_subset_indices(train_pool_len, seed, wanted)?;
    // Python: dev = samples[-num_dev:], train = samples[:-num_dev]. With fewer samples than
    // num_dev, dev takes everything and train is empty, as in Python.
    let dev = if sizes.num_dev == 0 {
        Vec::new()
    } else {
        let cut = train.len().saturating_sub(sizes.num_dev);
        train.split_off(cut)
    };
    let test = sample_subset_indices(valid_pool_len, seed, sizes.num_eval)?;
    Ok(SplitIndices { train, dev, test })
}

/// MeZO's subsets of the given pools (HF row order in, permuted subsets out).
pub fn sample_splits<T: Clone>(
    train_pool: &[T],
    valid_pool: &[T],
    seed: u32,
    sizes: SplitSizes,
) -> Result<Splits<T>, TaskError> {
    let indices = split_indices(train_pool.len(), valid_pool.len(), seed, sizes)?;
    let pick = |pool: &[T], idx: &[usize]| idx.iter().map(|&i| pool[i].clone()).collect();
    Ok(Splits {
        train: pick(train_pool, &indices.train),
        dev: pick(train_pool, &indices.dev),
        test: pick(valid_pool, &indices.test),
        indices,
    })
}
