//! B3 of docs/PERFORMANCE.md: one perturbation sweep over 125.2 M f32 parameters (the tensor shapes of
//! facebook/opt-125m), median over repeats, at 1 and 2 threads (and any others asked for).
//!
//! Run: `cargo run --release -p zo-core --example sweep_bench [-- --repeats 9 --threads 1,2]`
//!
//! Prints one JSON line per figure: median/min/max ms, repeats, threads, and GB/s counting
//! 8 bytes per f32 element (read + write), the docs/PERFORMANCE.md convention.

use std::time::Instant;

use candle_core::{DType, Device, Tensor};
use zo_core::perturb::{apply_with, Op, Sweep, Term};
use zo_core::rng::Isa;
use zo_core::{Distribution, Key, ParamSet};

/// The parameter shapes of facebook/opt-125m (125 239 296 elements).
fn opt125m_shapes() -> Vec<(String, usize)> {
    let (v, h, f, layers, pos) = (50_272, 768, 3072, 12, 2050);
    let mut s = vec![
        ("decoder.embed_tokens.weight".to_string(), v * h),
        ("decoder.embed_positions.weight".to_string(), pos * h),
        ("decoder.final_layer_norm.weight".to_string(), h),
        ("decoder.final_layer_norm.bias".to_string(), h),
    ];
    for l in 0..layers {
        let p = format!("decoder.layers.{l}.");
        for (n, len) in [
            ("self_attn.q_proj.weight", h * h),
            ("self_attn.q_proj.bias", h),
            ("self_attn.k_proj.weight", h * h),
            ("self_attn.k_proj.bias", h),
            ("self_attn.v_proj.weight", h * h),
            ("self_attn.v_proj.bias", h),
            ("self_attn.out_proj.weight", h * h),
            ("self_attn.out_proj.bias", h),
            ("self_attn_layer_norm.weight", h),
            ("self_attn_layer_norm.bias", h),
            ("fc1.weight", f * h),
            ("fc1.bias", f),
            ("fc2.weight", h * f),
            ("fc2.bias", h),
            ("final_layer_norm.weight", h),
            ("final_layer_norm.bias", h),
        ] {
            s.push((format!("{p}{n}"), len));
        }
    }
    s
}

/// CPU seconds (user + system, all threads) of this process so far, from /proc/self/stat
/// (Linux; None elsewhere). On a contended machine the wall time includes waiting for a core;
/// the CPU time per sweep does not, so both are reported.
fn cpu_seconds() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    let after = &stat[stat.rfind(')')? + 2..];
    let f: Vec<&str> = after.split_whitespace().collect();
    let (u, s): (f64, f64) = (f.get(11)?.parse().ok()?, f.get(12)?.parse().ok()?);
    Some((u + s) / 100.0) // USER_HZ is 100 on Linux
}

fn arg(name: &str) -> Option<String> {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1).cloned())
}

fn main() -> zo_core::Result<()> {
    let repeats: usize = arg("--repeats").map_or(9, |s| s.parse().expect("--repeats N"));
    let threads: Vec<usize> = arg("--threads")
        .unwrap_or_else(|| "1,2".into())
        .split(',')
        .map(|s| s.parse().expect("--threads 1,2"))
        .collect();
    let params = ParamSet::new(
        opt125m_shapes()
            .into_iter()
            .map(|(n, len)| (n, Tensor::zeros(len, DType::F32, &Device::Cpu).unwrap())),
    )?;
    let n = params.numel();
    let isa = Isa::detect();
    eprintln!("{n} f32 elements in {} tensors; isa {isa:?}", params.len());

    let one = Sweep::add(&[Term::new(Key::new(1, 0), 1e-3)], Distribution::Normal);
    let fused = Sweep {
        ops: vec![
            Op::Add(Term::new(Key::new(1, 0), 1e-3)),
            Op::Add(Term::new(Key::new(1, 1), 1e-3)),
        ],
        dist: Distribution::Normal,
    };
    let rad = Sweep::add(&[Term::new(Key::new(1, 0), 1e-3)], Distribution::Rademacher);
    for &t in &threads {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(t)
            .build()
            .expect("rayon pool");
        for (label, sweep) in [
            ("sweep_normal_1term", &one),
            ("sweep_normal_2terms", &fused),
            ("sweep_rademacher_1term", &rad),
        ] {
            pool.install(|| apply_with(&params, sweep, isa))?; // warm-up (page faults)
            let cpu0 = cpu_seconds();
            let mut ms: Vec<f64> = (0..repeats)
                .map(|_| {
                    let t0 = Instant::now();
                    // CPU: the sweep is synchronous; nothing to sync.
                    pool.install(|| apply_with(&params, sweep, isa)).unwrap();
                    t0.elapsed().as_secs_f64() * 1e3
                })
                .collect();
            let cpu_ms = match (cpu0, cpu_seconds()) {
                (Some(a), Some(b)) => format!("{:.1}", (b - a) * 1e3 / repeats as f64),
                _ => "null".into(),
            };
            ms.sort_by(f64::total_cmp);
            let median = ms[ms.len() / 2];
            let gbps = 8.0 * n as f64 / (median * 1e-3) / 1e9;
            println!(
                "{{\"id\":\"B3\",\"figure\":\"{label}\",\"device\":\"cpu\",\"dtype\":\"f32\",\"isa\":\"{isa:?}\",\"elements\":{n},\"threads\":{t},\"repeats\":{repeats},\"median_ms\":{median:.2},\"min_ms\":{:.2},\"max_ms\":{:.2},\"gb_per_s\":{gbps:.2},\"cpu_ms_per_sweep\":{cpu_ms}}}",
                ms[0],
                ms[ms.len() - 1]
            );
        }
    }
    Ok(())
}
