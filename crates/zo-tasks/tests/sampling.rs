//! docs/PROTOCOL.md 1.7: numpy 2.4 `np.random.seed(0); np.random.permutation(n)` test vectors
//! (verified there against numpy), and the resulting subset sizes of every task.

use zo_tasks::mt19937::{numpy_permutation, Mt19937};
use zo_tasks::{sample_splits, split_indices, SplitSizes, Task};

/// (n, perm[0:6], perm[1000:1003] or empty) for seed 0, from the table in 1.7.
const VECTORS: &[(&str, usize, [usize; 6], &[usize])] = &[
    (
        "SST-2 train",
        67349,
        [43787, 16159, 59015, 5108, 67052, 35938],
        &[2307, 42285, 56182],
    ),
    ("SST-2 validation", 872, [372, 676, 548, 293, 382, 532], &[]),
    (
        "RTE train",
        2490,
        [2325, 1450, 1047, 2390, 2283, 1500],
        &[189, 505, 1893],
    ),
    ("RTE validation", 277, [218, 225, 190, 15, 55, 198], &[]),
    ("COPA train", 400, [132, 309, 341, 196, 246, 60], &[]),
    ("COPA validation", 100, [26, 86, 2, 55, 75, 93], &[]),
    (
        "ReCoRD train",
        100730,
        [46709, 71939, 14815, 28500, 47043, 34295],
        &[76149, 66078, 52979],
    ),
    (
        "ReCoRD validation",
        10000,
        [9394, 898, 2398, 5906, 2343, 8225],
        &[],
    ),
    (
        "SQuAD train",
        87599,
        [50436, 22762, 45227, 54941, 33360, 78996],
        &[1003, 44969, 80288],
    ),
    (
        "SQuAD validation",
        10570,
        [4004, 2588, 8936, 2569, 8732, 3849],
        &[],
    ),
    (
        "DROP train",
        77400,
        [67454, 11388, 48515, 48537, 23294, 57879],
        &[47984, 52202, 58407],
    ),
    (
        "DROP validation",
        9535,
        [1842, 1824, 5622, 2861, 6651, 2702],
        &[],
    ),
];

#[test]
fn numpy_permutation_matches_every_reference_vector() {
    for &(name, n, first, dev) in VECTORS {
        let p = numpy_permutation(n, 0);
        assert_eq!(p[..6], first, "{name}: perm[0:6]");
        if !dev.is_empty() {
            assert_eq!(&p[1000..1003], dev, "{name}: perm[1000:1003]");
        }
    }
}

#[test]
fn copa_dev_is_the_tail_of_the_permuted_pool() {
    // "dev = perm[300:400], starts 201, 339, 98".
    let idx = split_indices(400, 100, 0, Task::Copa.spec().default_sizes).unwrap();
    assert_eq!(idx.dev[..3], [201, 339, 98]);
    assert_eq!(idx.train[..6], [132, 309, 341, 196, 246, 60]);
    assert_eq!(idx.test[..6], [26, 86, 2, 55, 75, 93]);
}

#[test]
fn seed_42_small_vector() {
    // "also checked for n=10, seed=42 → [8, 1, 5, 0, 7, 2, 9, 4]" (the first 8 of 10).
    assert_eq!(numpy_permutation(10, 42)[..8], [8, 1, 5, 0, 7, 2, 9, 4]);
}

#[test]
fn randint_masked_rejection_vector() {
    // `np.random.seed(42); np.random.randint(1000000000)` ×3 → 534895718, 199900595, 862061404:
    // the same masked rejection draw with max = 999_999_999.
    let mut rng = Mt19937::new(42);
    let draws: Vec<u32> = (0..3).map(|_| rng.random_interval(999_999_999)).collect();
    assert_eq!(draws, [534_895_718, 199_900_595, 862_061_404]);
}

#[test]
fn split_sizes_of_every_task() {
    // (task, train used, dev used, test used) from the "Resulting sizes" table in 1.0.
    let expected = [
        (Task::Sst2, 1000, 500, 872),
        (Task::Rte, 1000, 500, 277),
        (Task::Copa, 300, 100, 100),
        (Task::Record, 1000, 500, 1000),
        (Task::Squad, 1000, 500, 1000),
        (Task::Drop, 1000, 500, 1000),
    ];
    for (task, tr, dv, te) in expected {
        let m = task.manifest().unwrap();
        let idx = split_indices(
            m.pool.train,
            m.pool.validation,
            0,
            task.spec().default_sizes,
        )
        .unwrap();
        assert_eq!(
            (idx.train.len(), idx.dev.len(), idx.test.len()),
            (tr, dv, te),
            "{task}"
        );
        // train and dev never overlap: both are slices of one permutation.
        let mut all = idx.train.clone();
        all.extend(&idx.dev);
        all.sort_unstable();
        all.dedup();
        assert_eq!(all.len(), tr + dv, "{task}");
    }
}

#[test]
fn sample_splits_picks_pool_items_in_permutation_order() {
    let train: Vec<String> = (0..400).map(|i| format!("t{i}")).collect();
    let valid: Vec<String> = (0..100).map(|i| format!("v{i}")).collect();
    let s = sample_splits(&train, &valid, 0, Task::Copa.spec().default_sizes).unwrap();
    assert_eq!(s.train[0], "t132");
    assert_eq!(s.dev[0], "t201");
    assert_eq!(s.test[0], "v26");
    assert_eq!((s.train.len(), s.dev.len(), s.test.len()), (300, 100, 100));
}

#[test]
fn small_pools_and_no_dev() {
    // A pool smaller than num_dev: Python's samples[-num_dev:] takes everything, train is empty.
    let idx = split_indices(
        5,
        3,
        1,
        SplitSizes {
            num_train: 10,
            num_dev: 8,
            num_eval: 2,
        },
    )
    .unwrap();
    assert_eq!((idx.train.len(), idx.dev.len(), idx.test.len()), (0, 5, 2));
    // num_dev = 0: no dev set, all sampled rows train.
    let idx = split_indices(
        50,
        3,
        1,
        SplitSizes {
            num_train: 10,
            num_dev: 0,
            num_eval: 5,
        },
    )
    .unwrap();
    assert_eq!((idx.train.len(), idx.dev.len(), idx.test.len()), (10, 0, 3));
    assert_eq!(idx.train, numpy_permutation(50, 1)[..10]);
}
