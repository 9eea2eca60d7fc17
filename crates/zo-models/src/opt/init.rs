//! Deterministic random initialisation of an OPT from a seed (for the quickstart, tests and
//! benchmarks; hub checkpoints are loaded, not initialised).
//!
//! The distribution follows transformers' `OPTPreTrainedModel._init_weights`: every Linear
//! weight and both embedding tables ~ N(0, init_std²) (`init_std` from config.json, 0.02 by
//! default), biases 0, LayerNorm weight 1 and bias 0, and the `pad_token_id` row of
//! `embed_tokens` zeroed (torch's `padding_idx`).
//!
//! The generator is our own, counter-based, so the weights are a pure function of
//! `(seed, parameter name, element index)`: independent of thread count, of the order in which
//! tensors are built and of the device. Element `i` of the tensor named `n` is
//! `init_std · N(i)` with `N(i) = sqrt(-2 ln u₁) · cos(2π u₂)` (Box–Muller, cosine branch),
//! `u₁ = (top 53 bits of mix(k + (2i+1)·γ) + 1) / 2⁵³` (never 0) and
//! `u₂ = top 53 bits of mix(k + (2i+2)·γ) / 2⁵³`, where `mix` is SplitMix64's finaliser,
//! `γ = 0x9E37_79B9_7F4A_7C15` and `k = mix(seed ^ mix(fnv1a64(n)))`.
//! Reference values are pinned by the unit test `normal_stream_reference_values`.

use candle_core::{DType, Device, Tensor};
use rayon::prelude::*;
use zo_core::ParamSet;

use super::config::Config;
use crate::Result;

mod fast;

const GAMMA: u64 = 0x9E37_79B9_7F4A_7C15;

/// SplitMix64's output function (Steele, Lea & Flood 2014).
fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// FNV-1a, 64-bit: a stable hash of a parameter name.
fn fnv1a64(s: &str) -> u64 {
    let mut h: u64 = 0xCBF2_9CE4_8422_2325;
    for b in s.bytes() {
        h ^= b as u64;
        h = h.wrapping_mul(0x0000_0100_0000_01B3);
    }
    h
}

/// The stream key of tensor `name` under `seed`.
fn key(seed: u64, name: &str) -> u64 {
    mix(seed ^ mix(fnv1a64(name)))
}

/// The two uniforms of normal number `i` of stream `k`, as 53-bit integers: `u₁ = (a + 1)/2⁵³`,
/// `u₂ = b/2⁵³`.
#[inline(always)]
fn uniform_bits(k: u64, i: u64) -> (u64, u64) {
    let a = mix(k.wrapping_add((2 * i + 1).wrapping_mul(GAMMA))) >> 11;
    let b = mix(k.wrapping_add((2 * i + 2).wrapping_mul(GAMMA))) >> 11;
    (a, b)
}

/// Standard normal number `i` of stream `k`, through libm (the reference [`fast::normals`] is
/// tested against).
#[cfg_attr(not(test), allow(dead_code))]
fn normal(k: u64, i: u64) -> f64 {
    let (a, b) = uniform_bits(k, i);
    let scale = 1.0 / (1u64 << 53) as f64;
    let u1 = (a as f64 + 1.0) * scale;
    let u2 = b as f64 * scale;
    (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
}

/// Elements per parallel task of [`normal_vec`].
const TASK: usize = 1 << 16;

/// `n` values `std · N(i)` of the stream of `name`, computed in parallel chunks (the result does
/// not depend on the chunking or the thread count).
///
/// Each value is `(std · N(i)) as f32` with `N(i)` evaluated in f64 by [`fast::normals`]
/// (branch-free fdlibm kernels, ≤ 1 ulp like libm's `log`/`cos`), so it equals the f32 of
/// [`normal`] except where the f64 lands within ~1e-16 of an f32 rounding boundary (about one
/// element in 10⁸). The libm version took 4–5 s of CPU for opt-125m, the vectorised one about a
/// tenth of that.
pub(crate) fn normal_vec(seed: u64, name: &str, n: usize, std: f64) -> Vec<f32> {
    let k = key(seed, name);
    let mut out = vec![0f32; n];
    out.par_chunks_mut(TASK).enumerate().for_each(|(c, chunk)| {
        fast::normals(k, (c * TASK) as u64, std, chunk);
    });
    out
}

/// `n` uniforms `u(i) = (a + 1)/2⁵³` in (0, 1] of the stream of `name` (the first uniform of
/// normal number `i`, see [`uniform_bits`]).
pub(crate) fn uniform_vec(seed: u64, name: &str, n: usize) -> Vec<f64> {
    let k = key(seed, name);
    let scale = 1.0 / (1u64 << 53) as f64;
    (0..n as u64)
        .map(|i| (uniform_bits(k, i).0 as f64 + 1.0) * scale)
        .collect()
}

/// The `init_std` of config.json (transformers' default 0.02).
pub fn init_std(cfg: &Config) -> f64 {
    cfg.extra
        .get("init_std")
        .and_then(|v| v.as_f64())
        .unwrap_or(0.02)
}

/// Builds every parameter of `cfg` (names and shapes of [`Config::expected_params`]) with the
/// documented generator, in `dtype` on `device`.
pub fn random_params(cfg: &Config, seed: u64, dtype: DType, device: &Device) -> Result<ParamSet> {
    let std = init_std(cfg);
    let mut items = Vec::new();
    for (name, shape) in cfg.expected_params() {
        let n: usize = shape.iter().product();
        let is_ln = name.contains("layer_norm");
        let data: Vec<f32> = if is_ln && name.ends_with(".weight") {
            vec![1.0; n]
        } else if name.ends_with(".bias") {
            vec![0.0; n]
        } else {
            let mut v = normal_vec(seed, &name, n, std);
            if name.ends_with("embed_tokens.weight") {
                let pad = cfg.pad_token_id as usize;
                let w = shape[1];
                if pad < shape[0] {
                    v[pad * w..(pad + 1) * w].fill(0.0);
                }
            }
            v
        };
        let t = Tensor::from_vec(data, shape.as_slice(), device)?.to_dtype(dtype)?;
        items.push((name, t));
    }
    Ok(ParamSet::new(items)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normal_stream_reference_values() {
        // Pinned outputs of the documented generator, reproduced by an independent Python
        // transcription of the module docs (a change here changes every random model):
        //   M = 2**64 - 1; G = 0x9E3779B97F4A7C15
        //   def mix(z): z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & M
        //               z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & M; return z ^ (z >> 31)
        //   def fnv(s): h = 0xCBF29CE484222325
        //               for b in s.encode(): h = ((h ^ b) * 0x100000001B3) & M
        //               return h
        //   def normal(k, i): a = mix((k + (2*i+1)*G) & M) >> 11; b = mix((k + (2*i+2)*G) & M) >> 11
        //               return sqrt(-2*log((a+1)/2**53)) * cos(2*pi*b/2**53)
        //   k = mix(0 ^ mix(fnv("model.decoder.embed_tokens.weight"))); [normal(k, i) for i in range(4)]
        let k = key(0, "model.decoder.embed_tokens.weight");
        let got: Vec<f64> = (0..4).map(|i| normal(k, i)).collect();
        let want = REFERENCE;
        for (g, w) in got.iter().zip(want.iter()) {
            assert!((g - w).abs() < 1e-12, "{got:?}");
        }
        // The vectorised path used by `normal_vec` gives the same values.
        let fast = fast::block(k, 0);
        for (g, w) in fast.iter().zip(want.iter()) {
            assert!((g - w).abs() < 1e-12, "{fast:?}");
        }
    }

    const REFERENCE: [f64; 4] = [
        -0.6963738474792138,
        0.25684355307952766,
        1.6996277478554418,
        -0.19720071739963274,
    ];

    #[test]
    fn normal_stream_has_unit_moments() {
        let v = normal_vec(7, "x", 200_000, 1.0);
        let n = v.len() as f64;
        let mean = v.iter().map(|&x| x as f64).sum::<f64>() / n;
        let var = v.iter().map(|&x| (x as f64 - mean).powi(2)).sum::<f64>() / n;
        assert!(mean.abs() < 0.01, "mean {mean}");
        assert!((var - 1.0).abs() < 0.01, "var {var}");
    }

    #[test]
    fn chunking_does_not_change_values_and_libm_agrees() {
        let n = 300_001;
        let v = normal_vec(3, "w", n, 0.5);
        let k = key(3, "w");
        // Any split into calls gives the same values (the chunk boundary is not a multiple of
        // the 8-wide blocks).
        let mut w = vec![0f32; n];
        let (a, b) = w.split_at_mut(70_003);
        fast::normals(k, 0, 0.5, a);
        fast::normals(k, 70_003, 0.5, b);
        assert!(v == w, "chunking changed values");
        // The libm formula gives the same f32 (all but a ~1e-8 fraction; none expected here).
        let differ = (0..n)
            .filter(|&i| v[i] != (0.5 * normal(k, i as u64)) as f32)
            .count();
        assert!(differ <= 1, "{differ} of {n} values differ from libm's");
    }
}
