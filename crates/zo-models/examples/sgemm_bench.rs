//! GFLOP/s of `zo_models::sgemm::sgemm_nt` against the `gemm` crate (what candle and the
//! previous fast paths call) on the opt-125m forward's product shapes, `C[n×o] = A[n×k] Wᵀ`
//! with `W: [o, k]`:
//!
//!     cargo run --release -p zo-models --example sgemm_bench -- [--threads 2] [--samples 9] [--min-s 0.2] [--cold-mb 0] [--shape n,k,o] [--kernels best,gemm]
//!
//! `--kernels` lists the contenders, compared in turn: `best` (what `sgemm_nt` picks), `avx2`,
//! `avx512` (12×32; up to 128 rows, the few-row order), `avx512_packed` and `avx2_packed` (the
//! same kernels in the packed order whatever the rows), `avx512bf16` (12×32, bf16 inputs), `avx512_fma_bf16` (bf16
//! inputs on the f32 kernel), `amx` (the kernels forced through `sgemm_nt_with`),
//! `gemm` (the crate), and `alloc-zeroed` / `alloc-uninit` (`best` into a freshly allocated
//! output, `vec![0.0; n·o]` or `Vec::with_capacity` + `sgemm_nt_uninit`: what `cpu::linear`
//! pays per call).
//!
//! `--cold-mb M`: W is replicated into copies totalling at least M MB, used in turn, so that
//! each call reads W from memory (as a forward reads its weights) and not from the cache the
//! previous call left it in.
//!
//! Each sample times a loop of calls lasting at least `--min-s` seconds; the contenders'
//! samples alternate (A/B in one process, so all see the same machine load). Prints one JSON
//! line per shape with, per contender, the median wall GFLOP/s and the median GFLOP per
//! CPU-second (CPU time summed over the threads' /proc/self/task/*/schedstat; on a shared
//! machine the CPU figures are the ones to compare: they do not depend on other load), and
//! `_best`, the wall GFLOP/s of the fastest sample: where other tenants share the cores (the
//! CPU time then runs slow too), the samples they left alone, the nearest to a quiet machine.

use std::time::Instant;

use gemm::{gemm, Parallelism};
use zo_models::sgemm::{
    sgemm_nt, sgemm_nt_packed_with, sgemm_nt_uninit, sgemm_nt_with, Epilogue, Isa,
};

fn process_cpu_s() -> f64 {
    // Sum of the per-thread run times in /proc/self/task/*/schedstat (nanoseconds; first
    // field), finer than the 10 ms ticks of /proc/self/stat.
    let Ok(dir) = std::fs::read_dir("/proc/self/task") else {
        return 0.0;
    };
    dir.filter_map(|e| e.ok())
        .filter_map(|e| std::fs::read_to_string(e.path().join("schedstat")).ok())
        .filter_map(|s| s.split_whitespace().next()?.parse::<f64>().ok())
        .sum::<f64>()
        / 1e9
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(|x, y| x.total_cmp(y));
    v[v.len() / 2]
}

fn gemm_crate(n: usize, o: usize, k: usize, a: &[f32], w: &[f32], c: &mut [f32], threads: usize) {
    let par = if threads > 1 {
        Parallelism::Rayon(threads)
    } else {
        Parallelism::None
    };
    // SAFETY: c is [n, o], a [n, k], w [o, k] read as Wᵀ [k, o]; all row-major, in bounds.
    unsafe {
        gemm(
            n,
            o,
            k,
            c.as_mut_ptr(),
            1,
            o as isize,
            false,
            a.as_ptr(),
            1,
            k as isize,
            w.as_ptr(),
            k as isize,
            1,
            0.0,
            1.0,
            false,
            false,
            false,
            par,
        );
    }
}

/// Wall seconds and CPU seconds per call of `f`, over a loop lasting at least `min_s`.
fn sample(min_s: f64, mut f: impl FnMut()) -> (f64, f64) {
    let (t0, c0) = (Instant::now(), process_cpu_s());
    let mut calls = 0usize;
    while calls == 0 || t0.elapsed().as_secs_f64() < min_s {
        f();
        calls += 1;
    }
    let wall = t0.elapsed().as_secs_f64() / calls as f64;
    (wall, (process_cpu_s() - c0) / calls as f64)
}

fn main() -> Result<(), String> {
    let (mut threads, mut samples, mut min_s) = (2usize, 9usize, 0.2f64);
    let mut only: Option<(usize, usize, usize)> = None;
    let mut cold_mb = 0usize;
    let mut kernels: Vec<String> = vec!["best".into(), "gemm".into()];
    let argv: Vec<String> = std::env::args().skip(1).collect();
    if argv.iter().any(|a| a == "--help" || a == "-h") {
        println!(
            "sgemm_bench [--threads 2] [--samples 9] [--min-s 0.2] [--cold-mb 0] [--shape n,k,o] \
             [--kernels best,gemm]\n\
             GFLOP/s of zo_models::sgemm::sgemm_nt's kernels vs the gemm crate, \
             C[n×o] = A[n×k]·Wᵀ;\n\
             kernels: best avx2 avx2_packed avx512 avx512_packed avx512bf16 avx512_fma_bf16 amx (the last three: bf16 inputs) \
             gemm alloc-zeroed alloc-uninit;\n\
             one JSON line per shape (default: the opt-125m forward's shapes)."
        );
        return Ok(());
    }
    for pair in argv.chunks(2) {
        let v = pair.get(1).ok_or(format!("{} needs a value", pair[0]))?;
        let bad = |e: &dyn std::fmt::Display| format!("{}: {e}", pair[0]);
        match pair[0].as_str() {
            "--threads" => threads = v.parse().map_err(|e| bad(&e))?,
            "--samples" => samples = v.parse().map_err(|e| bad(&e))?,
            "--min-s" => min_s = v.parse().map_err(|e| bad(&e))?,
            "--cold-mb" => cold_mb = v.parse().map_err(|e| bad(&e))?,
            "--shape" => {
                let d: Vec<usize> = v
                    .split(',')
                    .map(|x| x.parse().map_err(|e| bad(&e)))
                    .collect::<Result<_, _>>()?;
                let [n, k, o] = d[..] else {
                    return Err("--shape wants n,k,o".into());
                };
                only = Some((n, k, o));
            }
            "--kernels" => kernels = v.split(',').map(str::to_owned).collect(),
            o => {
                return Err(format!(
                    "unknown argument {o} (--threads, --samples, --min-s, --cold-mb, --shape, --kernels)"
                ))
            }
        }
    }
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .map_err(|e| e.to_string())?;
    // (n, k, o): q/k/v/out projections, fc1, fc2, one lm_head slice of 4096 vocabulary columns
    // (what head_nll runs 13 times), the whole tied lm_head, and the task loss's 16-row head.
    let shapes = [
        (1024, 768, 768),
        (1024, 768, 3072),
        (1024, 3072, 768),
        (1024, 768, 4096),
        (1024, 768, 50272),
        (16, 768, 50272),
    ];
    let shapes = match only {
        Some(s) => vec![s],
        None => shapes.to_vec(),
    };
    for (n, k, o) in shapes {
        let gen = |len: usize, salt: u64| -> Vec<f32> {
            (0..len as u64)
                .map(|i| ((i.wrapping_mul(2_654_435_761) ^ salt) % 2001) as f32 / 1000.0 - 1.0)
                .collect()
        };
        let a = gen(n * k, 1);
        // With `--cold-mb M`, copies of W totalling at least M MB, used in turn, so that each
        // call reads its W from memory as a forward does (not from the cache the previous call
        // left it in).
        let copies = (cold_mb * 1_000_000).div_ceil(o * k * 4).max(1);
        let ws: Vec<Vec<f32>> = (0..copies).map(|_| gen(o * k, 2)).collect();
        let mut turn = 0usize;
        let mut c = vec![0f32; n * o];
        let flop = 2.0 * (n * k * o) as f64;
        let mut wall = vec![vec![]; kernels.len()];
        let mut cpu = vec![vec![]; kernels.len()];
        let forced = |name: &str| match name {
            "avx2" => Some(Isa::Avx2),
            "avx512" => Some(Isa::Avx512),
            "avx512bf16" => Some(Isa::Avx512Bf16),
            "avx512_fma_bf16" => Some(Isa::Avx512FmaBf16),
            "amx" => Some(Isa::AmxBf16),
            _ => None,
        };
        for name in &kernels {
            if let Some(isa) = forced(name) {
                if !isa.supported() {
                    return Err(format!("{name}: not supported by this CPU"));
                }
            } else if name == "avx512_packed" || name == "avx2_packed" {
                let isa = if name == "avx2_packed" {
                    Isa::Avx2
                } else {
                    Isa::Avx512
                };
                if !isa.supported() {
                    return Err(format!("{name}: not supported by this CPU"));
                }
            } else if !["best", "gemm", "alloc-zeroed", "alloc-uninit"].contains(&name.as_str()) {
                return Err(format!("unknown kernel {name}"));
            }
        }
        pool.install(|| {
            for s in 0..samples + 1 {
                for (ki, name) in kernels.iter().enumerate() {
                    let x = sample(min_s, || {
                        let w = &ws[turn % copies];
                        turn += 1;
                        match name.as_str() {
                            "gemm" => gemm_crate(n, o, k, &a, w, &mut c, threads),
                            "best" => assert!(sgemm_nt(n, o, k, &a, w, &mut c, &Epilogue::PLAIN)),
                            "alloc-zeroed" => {
                                let mut out = vec![0f32; n * o];
                                assert!(sgemm_nt(n, o, k, &a, w, &mut out, &Epilogue::PLAIN));
                                std::hint::black_box(out);
                            }
                            "alloc-uninit" => {
                                let mut out: Vec<f32> = Vec::with_capacity(n * o);
                                assert!(sgemm_nt_uninit(
                                    n,
                                    o,
                                    k,
                                    &a,
                                    w,
                                    &mut out.spare_capacity_mut()[..n * o],
                                    &Epilogue::PLAIN
                                ));
                                // SAFETY: `sgemm_nt_uninit` returned true: all `n·o` are written.
                                unsafe { out.set_len(n * o) };
                                std::hint::black_box(out);
                            }
                            "avx512_packed" | "avx2_packed" => assert!(sgemm_nt_packed_with(
                                if name == "avx2_packed" {
                                    Isa::Avx2
                                } else {
                                    Isa::Avx512
                                },
                                n,
                                o,
                                k,
                                &a,
                                w,
                                &mut c,
                                &Epilogue::PLAIN
                            )),
                            other => {
                                let isa = forced(other).expect("checked above");
                                assert!(sgemm_nt_with(
                                    isa,
                                    n,
                                    o,
                                    k,
                                    &a,
                                    w,
                                    &mut c,
                                    &Epilogue::PLAIN
                                ));
                            }
                        }
                    });
                    if s > 0 {
                        // The first round warms caches and buffers.
                        wall[ki].push(x.0);
                        cpu[ki].push(x.1);
                    }
                }
            }
        });
        let fields: Vec<String> = kernels
            .iter()
            .enumerate()
            .map(|(ki, name)| {
                let best = wall[ki].iter().copied().fold(f64::INFINITY, f64::min);
                let (w, c) = (median(&mut wall[ki]), median(&mut cpu[ki]));
                format!(
                    "\"{name}_best\":{:.1},\"{name}_gflops\":{:.1},\"{name}_gflop_per_cpu_s\":{:.1},\"{name}_wall_s\":{w:.5}",
                    flop / best / 1e9,
                    flop / w / 1e9,
                    flop / c / 1e9
                )
            })
            .collect();
        println!(
            "{{\"bench\":\"sgemm_nt\",\"n\":{n},\"k\":{k},\"o\":{o},\"threads\":{threads},{}}}",
            fields.join(",")
        );
    }
    Ok(())
}
