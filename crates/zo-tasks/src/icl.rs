//! MeZO's in-context demonstrations (`run.py` with `--trainer none`, `tasks.py`
//! `sample_train_sets` with neither `--train_set_seed` nor `--num_train_sets`; docs/PROTOCOL.md
//! 1.8): every evaluation example gets its own demonstration set.
//!
//! - `seeds = np.random.randint(0, 10000, num_eval)` under `np.random.seed(0)`: numpy's legacy
//!   bounded draw is the masked rejection [`Mt19937::random_interval`]`(9999)` per value;
//! - the demonstrations of evaluation example `i` are `sample_subset("train", seed=seeds[i],
//!   num=k)`: the first `k` of numpy's permutation of the whole train pool under `seeds[i]`;
//! - they are verbalized with their gold candidate and joined before the example's prompt
//!   ([`crate::Rendered::with_demos`]). `k = 0` is zero-shot.

use crate::error::TaskError;
use crate::mt19937::Mt19937;
use crate::sampling::sample_subset_indices;

/// `np.random.seed(0); np.random.randint(0, 10000, n)`: the seed of each evaluation
/// example's demonstration set.
pub fn demo_seeds(n: usize) -> Vec<u32> {
    let mut rng = Mt19937::new(0);
    (0..n).map(|_| rng.random_interval(9999)).collect()
}

/// Train-pool indices of the demonstrations of each of `num_eval` evaluation examples, `k`
/// each (fewer when the pool is smaller than `k`, as `permutation(n)[:k]` gives).
pub fn demo_sets(
    train_pool_len: usize,
    num_eval: usize,
    k: usize,
) -> Result<Vec<Vec<usize>>, TaskError> {
    if k == 0 {
        return Ok(vec![Vec::new(); num_eval]);
    }
    demo_seeds(num_eval)
        .into_iter()
        .map(|seed| sample_subset_indices(train_pool_len, seed, k))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zero_shot_has_no_demonstrations() {
        assert_eq!(demo_sets(100, 3, 0).unwrap(), vec![Vec::<usize>::new(); 3]);
    }

    #[test]
    fn every_example_draws_its_own_set_from_its_own_seed() {
        let seeds = demo_seeds(4);
        let sets = demo_sets(50, 4, 5).unwrap();
        for (seed, set) in seeds.iter().zip(&sets) {
            assert_eq!(set, &sample_subset_indices(50, *seed, 5).unwrap());
        }
        // A longer draw starts with the shorter one (sequential draws).
        assert_eq!(demo_seeds(10)[..4], seeds[..]);
        assert!(seeds.iter().all(|&s| s < 10_000));
    }
}
