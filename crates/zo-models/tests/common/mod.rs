//! Helpers shared by the integration tests: fixture paths and golden-file readers.
#![allow(dead_code)]

use std::path::PathBuf;

use candle_core::{Device, Tensor};

/// The tiny random OPT checkpoint with transformers' golden logits (`tests/fixtures/tiny-opt`,
/// made by `tests/fixtures/make_tiny_fixture.py`).
pub fn tiny_opt() -> PathBuf {
    fixture("tiny-opt")
}

/// Whether this test binary is `tests/candle_ops.rs`, which includes other test files as
/// modules to run their checks on candle's own ops (the op sequence of `--device cuda`).
pub fn on_candle_ops() -> bool {
    module_path!().starts_with("candle_ops::")
}

/// Sets the process's path for this binary's checks: zo's CPU kernels, or candle's ops under
/// `tests/candle_ops.rs` ([`zo_models::set_candle_ops`]). Every check of a file that
/// `candle_ops.rs` includes calls it before running a model.
pub fn select_ops() {
    zo_models::set_candle_ops(on_candle_ops());
}

/// `got` against `want`: bit for bit on zo's kernels (where a check asserts that two orders of
/// computation give the same bits), within `tol` on candle's ops, whose products round by
/// their shapes.
pub fn assert_same_or_close(got: &[f64], want: &[f64], tol: f64, what: &str) {
    if on_candle_ops() {
        let d = max_abs_diff(got, want);
        eprintln!("{what}: max |Δ| {d:.3e} on candle's ops");
        assert!(d <= tol, "{what}: max |Δ| {d:e} > {tol:e} on candle's ops");
    } else {
        let bits = |v: &[f64]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
        assert_eq!(bits(got), bits(want), "{what}");
    }
}

/// This crate's own fixtures (made by `tests/fixtures/make_fixtures.py`).
pub fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

pub fn read_json(path: &std::path::Path) -> serde_json::Value {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap()
}

pub fn u32_rows(v: &serde_json::Value) -> Vec<Vec<u32>> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|r| {
            r.as_array()
                .unwrap()
                .iter()
                .map(|x| x.as_u64().unwrap() as u32)
                .collect()
        })
        .collect()
}

pub fn f64_vec(v: &serde_json::Value) -> Vec<f64> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap())
        .collect()
}

pub fn flat<T: Copy>(rows: &[Vec<T>]) -> Vec<T> {
    rows.iter().flatten().copied().collect()
}

/// Max |a - b| over two equally long slices; infinite where one side is NaN and the other is
/// not (`f64::max` alone would skip a NaN).
pub fn max_abs_diff(a: &[f64], b: &[f64]) -> f64 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(x, y)| match (x.is_nan(), y.is_nan()) {
            (false, false) => (x - y).abs(),
            (true, true) => 0.0,
            _ => f64::INFINITY,
        })
        .fold(0.0, f64::max)
}

/// log-softmax of one row, in f64.
pub fn log_softmax(row: &[f32]) -> Vec<f64> {
    let m = row.iter().copied().fold(f32::NEG_INFINITY, f32::max) as f64;
    let lse = m + row.iter().map(|&x| (x as f64 - m).exp()).sum::<f64>().ln();
    row.iter().map(|&x| x as f64 - lse).collect()
}

/// All of a tensor's values, flattened, in f64.
pub fn vec_of(t: &Tensor) -> Vec<f64> {
    t.flatten_all()
        .unwrap()
        .to_dtype(candle_core::DType::F64)
        .unwrap()
        .to_vec1()
        .unwrap()
}

pub fn to_vec3(t: &Tensor) -> Vec<Vec<Vec<f32>>> {
    t.to_device(&Device::Cpu)
        .unwrap()
        .to_dtype(candle_core::DType::F32)
        .unwrap()
        .to_vec3()
        .unwrap()
}
