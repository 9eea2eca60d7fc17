//! GFLOP/s of `zo_models::sgemm::sgemm_nt` against the `gemm` crate (what candle and the
//! previous fast paths call) on the opt-125m forward's product shapes, `C[n×o] = A[n×k] Wᵀ`
//! with `W: [o, k]`:
//!
//!     cargo run --release -p zo-models --example sgemm_bench -- [--threads 2] [--samples 9] [--min-s 0.2] [--shape n,k,o]
//!
//! Each sample times a loop of calls lasting at least `--min-s` seconds; ours and gemm's
//! samples alternate (A/B in one process, so both see the same machine load). Prints one JSON
//! line per shape with the median wall GFLOP/s and the median CPU seconds per call of both
//! (CPU time summed over the threads' /proc/self/task/*/schedstat; on a shared machine the
//! CPU figures are the ones to compare: GFLOP per CPU-second does not depend on other load). The OpenBLAS ceiling
//! on the same shapes comes from numpy (`/tmp/gemm_ceiling.py` in the notes).

use std::time::Instant;

use gemm::{gemm, Parallelism};
use zo_models::sgemm::{sgemm_nt, Epilogue};

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
    let argv: Vec<String> = std::env::args().skip(1).collect();
    if argv.iter().any(|a| a == "--help" || a == "-h") {
        println!(
            "sgemm_bench [--threads 2] [--samples 9] [--min-s 0.2] [--shape n,k,o]\n\
             GFLOP/s of zo_models::sgemm::sgemm_nt vs the gemm crate, C[n×o] = A[n×k]·Wᵀ;\n\
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
            o => {
                return Err(format!(
                    "unknown argument {o} (--threads, --samples, --min-s)"
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
        let (a, w) = (gen(n * k, 1), gen(o * k, 2));
        let mut c = vec![0f32; n * o];
        let flop = 2.0 * (n * k * o) as f64;
        let (mut ow, mut oc, mut gw, mut gc) = (vec![], vec![], vec![], vec![]);
        pool.install(|| {
            for s in 0..samples + 1 {
                let x = sample(min_s, || {
                    assert!(sgemm_nt(n, o, k, &a, &w, &mut c, &Epilogue::PLAIN));
                });
                let y = sample(min_s, || gemm_crate(n, o, k, &a, &w, &mut c, threads));
                if s > 0 {
                    // The first pair warms caches and buffers.
                    ow.push(x.0);
                    oc.push(x.1);
                    gw.push(y.0);
                    gc.push(y.1);
                }
            }
        });
        let (ow, oc, gw, gc) = (
            median(&mut ow),
            median(&mut oc),
            median(&mut gw),
            median(&mut gc),
        );
        println!(
            "{{\"bench\":\"sgemm_nt\",\"n\":{n},\"k\":{k},\"o\":{o},\"threads\":{threads},\
             \"ours_gflops\":{:.1},\"gemm_crate_gflops\":{:.1},\
             \"ours_gflop_per_cpu_s\":{:.1},\"gemm_crate_gflop_per_cpu_s\":{:.1},\"ours_cpu_s\":{oc:.5},\
             \"gemm_crate_cpu_s\":{gc:.5},\"ours_wall_s\":{ow:.5},\"gemm_crate_wall_s\":{gw:.5}}}",
            flop / ow / 1e9,
            flop / gw / 1e9,
            flop / oc / 1e9,
            flop / gc / 1e9,
        );
    }
    Ok(())
}
