//! Our MT19937 + Fisher–Yates against numpy itself, beyond the reference table: vectors
//! written by tools/numpy_permutation_vectors.py (numpy's legacy `RandomState`).

use serde_json::Value;
use zo_tasks::mt19937::{numpy_permutation, Mt19937};

fn u64s(v: &Value) -> Vec<u64> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_u64().unwrap())
        .collect()
}

#[test]
fn permutations_match_numpy() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/numpy_vectors.json");
    let data: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let perms = data["perms"].as_array().unwrap();
    assert!(perms.len() >= 60);
    for e in perms {
        let seed = e["seed"].as_u64().unwrap() as u32;
        let n = e["n"].as_u64().unwrap() as usize;
        let p: Vec<u64> = numpy_permutation(n, seed)
            .iter()
            .map(|&x| x as u64)
            .collect();
        let head = u64s(&e["head"]);
        assert_eq!(p[..head.len()], head, "seed {seed} n {n}");
        let weighted: u128 = p
            .iter()
            .enumerate()
            .map(|(i, &v)| i as u128 * u128::from(v))
            .sum();
        assert_eq!(
            weighted,
            u128::from(e["weighted_sum"].as_u64().unwrap()),
            "seed {seed} n {n}"
        );
        if let Some(full) = e.get("full") {
            assert_eq!(p, u64s(full), "seed {seed} n {n}");
        }
    }
    for e in data["randint"].as_array().unwrap() {
        let mut rng = Mt19937::new(e["seed"].as_u64().unwrap() as u32);
        let draws: Vec<u64> = (0..5)
            .map(|_| u64::from(rng.random_interval(999_999_999)))
            .collect();
        assert_eq!(draws, u64s(&e["draws"]));
    }
}
