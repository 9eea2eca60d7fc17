//! The OPT checks against transformers, PEFT and MeZO's vectors, and the KV cache's, again on
//! candle's own ops ([`zo_models::set_candle_ops`]): the op sequence a model runs on `--device
//! cuda` or `metal` (candle's matmul, softmax and LayerNorm, the padded forward for every
//! batch, the lm_head's full logits per row), here on the CPU, so that sequence is checked on
//! a machine without a GPU. Left to a GPU: candle's device kernels themselves and zo's CUDA
//! sweep (`scripts/gpu-check.sh`).
//!
//! The included files' checks each start with `common::select_ops`, which turns candle's ops
//! on in this binary (and leaves zo's kernels on in the files' own binaries); where a check
//! asserts that two orders of computation give the same bits on zo's kernels, it allows a
//! rounding's difference here (`common::assert_same_or_close`).

// Each included file declares `mod common`, as its own binary needs: the helpers are compiled
// once per file here.
#![allow(clippy::duplicate_mod)]

#[path = "adapters.rs"]
mod adapters;
#[path = "golden_tiny_opt.rs"]
mod golden_tiny_opt;
#[path = "kv_cache.rs"]
mod kv_cache;
#[path = "opt_fixtures.rs"]
mod opt_fixtures;
#[path = "prefix.rs"]
mod prefix;

mod common;

use candle_core::{DType, Device, Tensor};
use zo_models::resnet::{Depth, ResNet, ResNetConfig, Stem};
use zo_models::OptModel;

/// The switch reaches the model: an f32 CPU OPT no longer claims the packed forward (which
/// only zo's kernels run), and a ResNet's forward is its unfused candle forward, bit for bit.
#[test]
fn the_models_run_candle_ops() {
    common::select_ops();
    assert!(zo_models::candle_ops());
    let m = OptModel::from_dir(&common::tiny_opt(), DType::F32, &Device::Cpu).unwrap();
    assert!(!m.rows_independent());
    let cfg = ResNetConfig::new(Depth::R18, 10, Stem::Cifar);
    let r = ResNet::random(cfg, 3, DType::F32, &Device::Cpu).unwrap();
    let x = Tensor::randn(0f32, 1.0, (2, 3, 32, 32), &Device::Cpu).unwrap();
    let bits = |t: Tensor| -> Vec<u32> {
        let v: Vec<f32> = t.flatten_all().unwrap().to_vec1().unwrap();
        v.into_iter().map(f32::to_bits).collect()
    };
    assert_eq!(
        bits(r.forward(&x).unwrap()),
        bits(r.forward_unfused(&x).unwrap())
    );
}
