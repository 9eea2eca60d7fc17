//! ResNet forward time on CIFAR-shaped inputs: the fused f32 conv+BN+ReLU path against candle's
//! ops, interleaved (A, B, A, B, …) so machine noise hits both alike; medians.
//!
//! cargo run --release -p zo-models --example resnet_bench -- [depth=18] [batch=128] [repeats=5]

use std::time::Instant;

use candle_core::{DType, Device, Tensor};
use zo_models::resnet::{Depth, ResNet, ResNetConfig, Stem};

fn main() -> zo_models::Result<()> {
    let args: Vec<usize> = std::env::args()
        .skip(1)
        .map(|a| a.parse().expect("numeric arguments: depth batch repeats"))
        .collect();
    let depth = match args.first().copied().unwrap_or(18) {
        18 => Depth::R18,
        34 => Depth::R34,
        50 => Depth::R50,
        101 => Depth::R101,
        152 => Depth::R152,
        d => panic!("no ResNet-{d}"),
    };
    let batch = args.get(1).copied().unwrap_or(128);
    let repeats = args.get(2).copied().unwrap_or(5);
    let cfg = ResNetConfig::new(depth, 10, Stem::Cifar);
    let model = ResNet::random(cfg, 0, DType::F32, &Device::Cpu)?;
    let x = Tensor::randn(0f32, 1.0, (batch, 3, 32, 32), &Device::Cpu)?;
    let (mut fused, mut plain) = (Vec::new(), Vec::new());
    model.forward(&x)?; // warm-up
    model.forward_unfused(&x)?;
    for _ in 0..repeats {
        let t = Instant::now();
        model.forward(&x)?;
        fused.push(t.elapsed().as_secs_f64());
        let t = Instant::now();
        model.forward_unfused(&x)?;
        plain.push(t.elapsed().as_secs_f64());
    }
    let median = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let (f, p) = (median(&mut fused), median(&mut plain));
    println!(
        "{{\"model\":\"resnet{}\",\"batch\":{batch},\"threads\":{},\"repeats\":{repeats},\"fused_s\":{f:.4},\"candle_ops_s\":{p:.4},\"ratio\":{:.3}}}",
        args.first().copied().unwrap_or(18),
        rayon::current_num_threads(),
        f / p
    );
    Ok(())
}
