//! ResNet timings on CIFAR-shaped inputs (32×32, CIFAR stem), medians over alternated runs.
//!
//! cargo run --release -p zo-models --example resnet_bench -- [depth=18] [batch=128] [repeats=5]
//!   the forward on the f32 CPU path (HWNC, convolutions on zo's SGEMM) against candle's ops,
//!   interleaved (A, B, A, B, …) so machine noise hits both alike.
//!
//! cargo run --release -p zo-models --example resnet_bench -- convs [depth=18] [batch=32] [repeats=5]
//!   every distinct convolution shape of the network: the convolution (implicit im2col) against
//!   zo's SGEMM on the same product with the im2col matrix stored beforehand, and the
//!   FLOP-weighted total over the network's convolutions (the conv GEMM efficiency).

use std::time::Instant;

use candle_core::{DType, Device, Tensor};
use zo_models::resnet::{conv_vs_sgemm, Depth, ResNet, ResNetConfig, Stem};

fn depth_of(d: usize) -> Depth {
    match d {
        18 => Depth::R18,
        34 => Depth::R34,
        50 => Depth::R50,
        101 => Depth::R101,
        152 => Depth::R152,
        d => panic!("no ResNet-{d}"),
    }
}

/// `(c, h, o, k, stride, count)`: the convolutions of a CIFAR ResNet (input side `h`), each
/// distinct shape once with how many times the network runs it.
fn conv_shapes(d: usize) -> Vec<(usize, usize, usize, usize, usize, usize)> {
    let (blocks, bottleneck) = match d {
        18 => ([2, 2, 2, 2], false),
        34 => ([3, 4, 6, 3], false),
        50 => ([3, 4, 6, 3], true),
        101 => ([3, 4, 23, 3], true),
        _ => ([3, 8, 36, 3], true),
    };
    let exp = if bottleneck { 4 } else { 1 };
    let mut v: Vec<(usize, usize, usize, usize, usize, usize)> = Vec::new();
    let mut add = |s: (usize, usize, usize, usize, usize)| match v
        .iter_mut()
        .find(|e| (e.0, e.1, e.2, e.3, e.4) == (s.0, s.1, s.2, s.3, s.4))
    {
        Some(e) => e.5 += 1,
        None => v.push((s.0, s.1, s.2, s.3, s.4, 1)),
    };
    add((3, 32, 64, 3, 1));
    let (mut inp, mut h) = (64, 32);
    for (s, &n) in blocks.iter().enumerate() {
        let planes = 64 << s;
        for i in 0..n {
            let stride = if i == 0 && s > 0 { 2 } else { 1 };
            let h2 = h / stride;
            if bottleneck {
                add((inp, h, planes, 1, 1));
                add((planes, h, planes, 3, stride));
                add((planes, h2, planes * exp, 1, 1));
            } else {
                add((inp, h, planes, 3, stride));
                add((planes, h2, planes, 3, 1));
            }
            if i == 0 && (stride != 1 || inp != planes * exp) {
                add((inp, h, planes * exp, 1, stride));
            }
            inp = planes * exp;
            h = h2;
        }
    }
    v
}

fn convs(args: &[usize]) {
    let d = args.first().copied().unwrap_or(18);
    let n = args.get(1).copied().unwrap_or(32);
    let repeats = args.get(2).copied().unwrap_or(5);
    let (mut conv_total, mut gemm_total, mut flops_total) = (0.0, 0.0, 0.0);
    for (c, h, o, k, stride, count) in conv_shapes(d) {
        let (tc, tg, fl) =
            conv_vs_sgemm((n, c, h, o, k, stride), repeats).expect("this CPU has no SGEMM kernel");
        println!(
            "{{\"conv\":\"{c}x{h}x{h} -> {o}, {k}x{k}/{stride}\",\"count\":{count},\"conv_gflops\":{:.1},\"sgemm_gflops\":{:.1},\"efficiency\":{:.3}}}",
            fl as f64 / tc / 1e9,
            fl as f64 / tg / 1e9,
            tg / tc
        );
        conv_total += tc * count as f64;
        gemm_total += tg * count as f64;
        flops_total += fl as f64 * count as f64;
    }
    println!(
        "{{\"model\":\"resnet{d}\",\"batch\":{n},\"threads\":{},\"repeats\":{repeats},\"conv_gflops\":{:.1},\"sgemm_gflops\":{:.1},\"efficiency\":{:.3}}}",
        rayon::current_num_threads(),
        flops_total / conv_total / 1e9,
        flops_total / gemm_total / 1e9,
        gemm_total / conv_total
    );
}

fn main() -> zo_models::Result<()> {
    let mut raw: Vec<String> = std::env::args().skip(1).collect();
    let conv_mode = raw.first().is_some_and(|a| a == "convs");
    if conv_mode {
        raw.remove(0);
    }
    let args: Vec<usize> = raw
        .iter()
        .map(|a| a.parse().expect("numeric arguments: depth batch repeats"))
        .collect();
    if conv_mode {
        convs(&args);
        return Ok(());
    }
    let depth = depth_of(args.first().copied().unwrap_or(18));
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
    let flops = cfg.forward_flops(batch, 32, 32) as f64;
    println!(
        "{{\"model\":\"resnet{}\",\"batch\":{batch},\"threads\":{},\"repeats\":{repeats},\"fused_s\":{f:.4},\"fused_gflops\":{:.1},\"candle_ops_s\":{p:.4},\"ratio\":{:.3}}}",
        args.first().copied().unwrap_or(18),
        rayon::current_num_threads(),
        flops / f / 1e9,
        f / p
    );
    Ok(())
}
