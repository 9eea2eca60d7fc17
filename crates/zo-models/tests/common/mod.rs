//! Helpers shared by the integration tests: fixture paths and golden-file readers.
#![allow(dead_code)]

use std::path::PathBuf;

use candle_core::{Device, Tensor};

/// The tiny random OPT checkpoint with transformers' golden logits (`tests/fixtures/tiny-opt`,
/// made by `tests/fixtures/make_tiny_fixture.py`).
pub fn tiny_opt() -> PathBuf {
    fixture("tiny-opt")
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

/// Max |a - b| over two equally long slices.
pub fn max_abs_diff(a: &[f64], b: &[f64]) -> f64 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
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
