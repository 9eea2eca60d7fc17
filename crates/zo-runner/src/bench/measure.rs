//! Timing and machine-state readings shared by every figure: repeated wall-clock samples with
//! their summary, the CPU time the process used meanwhile, the load average, the resident set
//! peak, and the quiet-machine probe.
//!
//! Why the CPU time next to the wall time: on this shared 2-vCPU VM the two vCPUs sometimes
//! share one physical core. A figure whose `cpu_s_per_call / median_s` is ≈ 1 instead of ≈ 2
//! ran on one effective core and must not be compared with a peer run that had two.

use std::time::Instant;

use anyhow::{Context, Result};
use candle_core::{Device, Tensor};
use serde::Serialize;

/// Median, extremes and raw samples of a timed closure, in seconds.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct Summary {
    pub median_s: f64,
    pub min_s: f64,
    pub max_s: f64,
    pub mean_s: f64,
    pub repeats: usize,
    pub warmup: usize,
    pub samples_s: Vec<f64>,
    /// User + system CPU seconds of the whole process per timed call (all threads).
    pub cpu_s_per_call: Option<f64>,
}

impl Summary {
    /// Summarises `samples` (at least one).
    pub fn of(samples: Vec<f64>, warmup: usize, cpu_s_per_call: Option<f64>) -> Self {
        let mut sorted = samples.clone();
        sorted.sort_by(f64::total_cmp);
        let n = sorted.len().max(1);
        let median = if sorted.is_empty() {
            f64::NAN
        } else if n % 2 == 1 {
            sorted[n / 2]
        } else {
            0.5 * (sorted[n / 2 - 1] + sorted[n / 2])
        };
        Summary {
            median_s: median,
            min_s: sorted.first().copied().unwrap_or(f64::NAN),
            max_s: sorted.last().copied().unwrap_or(f64::NAN),
            mean_s: samples.iter().sum::<f64>() / n as f64,
            repeats: samples.len(),
            warmup,
            samples_s: samples.iter().map(|s| (s * 1e6).round() / 1e6).collect(),
            cpu_s_per_call,
        }
    }
}

/// Runs `f` `warmup` times untimed, then `repeats` (≥ 1) times timed. The closure receives the
/// call index (warm-up calls included) so that stateful figures (alternating sweep signs,
/// optimizer steps) can advance.
pub fn time_it(
    warmup: usize,
    repeats: usize,
    mut f: impl FnMut(usize) -> Result<()>,
) -> Result<Summary> {
    let repeats = repeats.max(1);
    for i in 0..warmup {
        f(i)?;
    }
    let cpu0 = process_cpu_s();
    let mut samples = Vec::with_capacity(repeats);
    for i in 0..repeats {
        let t0 = Instant::now();
        f(warmup + i)?;
        samples.push(t0.elapsed().as_secs_f64());
    }
    let cpu = match (cpu0, process_cpu_s()) {
        (Some(a), Some(b)) => Some((b - a) / repeats as f64),
        _ => None,
    };
    Ok(Summary::of(samples, warmup, cpu))
}

/// User + system CPU seconds of this process (all threads) from `/proc/self/stat` (fields 14
/// and 15, in clock ticks of 1/100 s: USER_HZ is 100 on every Linux x86-64/arm64 kernel).
/// `None` off Linux.
pub fn process_cpu_s() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // The command name (field 2) may hold spaces; fields after the closing paren are plain.
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // `rest` starts at field 3 (state): utime is field 14 → index 11, stime index 12.
    let utime: f64 = fields.get(11)?.parse().ok()?;
    let stime: f64 = fields.get(12)?.parse().ok()?;
    Some((utime + stime) / 100.0)
}

/// The 1-minute load average (`/proc/loadavg`), `None` off Linux.
pub fn load_avg_1m() -> Option<f64> {
    std::fs::read_to_string("/proc/loadavg")
        .ok()?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// The arithmetic peaks a run's GFLOP/s are compared with, probed once per run: the f32 FMA
/// peak ([`fma_peak_gflops`], or one given on the command line), and the bf16 dot-product peak
/// ([`bf16_dot_peak_gflops`]) where the products run on `vdpbf16ps`.
pub struct Peaks {
    /// The f32 FMA peak, `None` where there is no probe; not a peak of products on bf16 units.
    pub fma: Option<f64>,
    /// Whether the products ran on bf16 units (AMX tiles or `vdpbf16ps`): then no fraction of
    /// the f32 peak is given, that peak not being the one of the arithmetic that ran.
    pub bf16_units: bool,
    /// The `vdpbf16ps` peak, where the kernel is `avx512bf16` and the CPU has one.
    pub bf16_dot: Option<f64>,
}

impl Peaks {
    /// The peaks for products on `isa` (`None`: candle's), with `fma_given` in place of the
    /// f32 probe where it is given.
    pub fn probe(isa: Option<zo_models::sgemm::Isa>, fma_given: Option<f64>) -> Self {
        let dot = isa == Some(zo_models::sgemm::Isa::Avx512Bf16);
        Peaks {
            fma: fma_given.or_else(fma_peak_gflops),
            bf16_units: isa.is_some_and(zo_models::sgemm::Isa::bf16_units),
            bf16_dot: if dot { bf16_dot_peak_gflops() } else { None },
        }
    }

    /// The fields of a line whose products ran at `gflops` GFLOP/s: each peak (rounded to a
    /// GFLOP/s) and the fraction of it, to 0.001 (`null` where it does not apply).
    pub fn fields(&self, gflops: f64) -> serde_json::Value {
        let frac = |p: f64| (gflops / p * 1000.0).round() / 1000.0;
        serde_json::json!({
            "fma_peak_gflops": self.fma.map(f64::round),
            "fraction_of_fma_peak": self.fma.filter(|_| !self.bf16_units).map(frac),
            "bf16_dot_peak_gflops": self.bf16_dot.map(f64::round),
            "fraction_of_bf16_dot_peak": self.bf16_dot.map(frac),
        })
    }
}

/// The f32 FMA peak of this process's threads, GFLOP/s: one thread's best over 5 runs (after a
/// warm-up run) of a loop of independent vector FMAs (16 accumulators, 12 with AVX2, enough to
/// cover the FMA latency on two pipes, ~0.05 s each), times the thread count candle uses. One thread and the best of
/// several short runs, because on a shared machine a run of all threads rarely gets every
/// core at once. AVX-512F where the CPU has it (and `ZO_MAX_ISA` allows it), else AVX2+FMA;
/// `None` elsewhere.
pub fn fma_peak_gflops() -> Option<f64> {
    #[cfg(target_arch = "x86_64")]
    {
        if zo_core::cpu::avx512f() {
            // SAFETY: AVX-512F was detected.
            Some(peak_of(AVX512_CHAINS as u64 * 16 * 2, |iters| unsafe {
                fma_loop_avx512::<AVX512_CHAINS>(iters)
            }))
        } else if zo_core::cpu::avx2_fma() {
            // SAFETY: AVX2 and FMA were detected.
            Some(peak_of(AVX2_CHAINS as u64 * 8 * 2, |iters| unsafe {
                fma_loop_avx2::<AVX2_CHAINS>(iters)
            }))
        } else {
            None
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        None
    }
}

/// Independent FMA chains of the AVX-512 probe (AVX-512 has 32 vector registers).
pub(super) const AVX512_CHAINS: usize = 16;
/// Independent FMA chains of the AVX2 probe: 12 of AVX2's 16 vector registers, beside the
/// multiplier ([`fma_loop_avx2`]).
pub(super) const AVX2_CHAINS: usize = 12;

/// The bf16 dot-product peak of this process's threads, GFLOP/s, measured as
/// [`fma_peak_gflops`] with AVX512-BF16's `vdpbf16ps` in place of the FMA (16 lanes, each
/// adding two products: 64 FLOP per instruction): the peak of the arithmetic that
/// `compute = "bf16"` runs on where its kernel is `avx512bf16` (AMD Zen 4/5, Intel without
/// AMX tiles). Where `vdpbf16ps` issues at the FMA's rate (Zen 4 and Zen 5 do) it is twice the
/// f32 peak. `None` where the CPU lacks AVX512-BF16.
pub fn bf16_dot_peak_gflops() -> Option<f64> {
    #[cfg(target_arch = "x86_64")]
    {
        if zo_core::cpu::avx512bf16() {
            // SAFETY: AVX-512F and AVX512-BF16 were detected.
            Some(peak_of(16 * 16 * 4, |iters| unsafe { dpbf16_loop(iters) }))
        } else {
            None
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        None
    }
}

/// `flop_per_iter · ITERS / seconds` of `run(ITERS)`, the best of 5 runs after a warm-up run
/// (wide vector units may start powered down), in GFLOP/s, times candle's thread count.
#[cfg(target_arch = "x86_64")]
pub(super) fn peak_of(flop_per_iter: u64, run: impl Fn(u64) -> f32) -> f64 {
    const ITERS: u64 = 2_000_000;
    let best = (0..6)
        .map(|i| {
            let t0 = Instant::now();
            // The count through `black_box`: the loops are pure functions, and LLVM otherwise
            // runs one call for all six runs.
            std::hint::black_box(run(std::hint::black_box(ITERS)));
            let g = (ITERS * flop_per_iter) as f64 / t0.elapsed().as_secs_f64() / 1e9;
            if i == 0 {
                0.0
            } else {
                g
            }
        })
        .fold(0f64, f64::max);
    best * candle_core::utils::get_num_threads().max(1) as f64
}

/// `iters` rounds of 16 independent `vdpbf16ps` on 512-bit vectors; returns a value that
/// depends on them all.
///
/// # Safety
/// The CPU supports AVX-512F and AVX512-BF16.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512bf16")]
unsafe fn dpbf16_loop(iters: u64) -> f32 {
    use std::arch::x86_64::*;
    // Distinct starting values, as in `fma_loop_avx512`.
    let mut acc = [_mm512_setzero_ps(); 16];
    for (i, v) in acc.iter_mut().enumerate() {
        *v = _mm512_set1_ps(i as f32);
    }
    // Pairs of bf16 words: (1, 1) times (2⁻²⁴, 2⁻²⁴), so the sums stay finite.
    // SAFETY: both are 512-bit vectors; any bits are a valid `__m512bh`.
    let (a, b) = unsafe {
        (
            std::mem::transmute::<__m512i, __m512bh>(_mm512_set1_epi32(0x3F80_3F80)),
            std::mem::transmute::<__m512i, __m512bh>(_mm512_set1_epi32(0x3380_3380)),
        )
    };
    for _ in 0..iters {
        for v in acc.iter_mut() {
            *v = _mm512_dpbf16_ps(*v, a, b);
        }
    }
    acc.iter().map(|&v| _mm512_reduce_add_ps(v)).sum()
}

/// `iters` rounds of `N` independent AVX-512 FMAs; returns a value that depends on them all.
///
/// # Safety
/// The CPU supports AVX-512F.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
pub(super) unsafe fn fma_loop_avx512<const N: usize>(iters: u64) -> f32 {
    use std::arch::x86_64::*;
    // Distinct starting values: with equal ones LLVM merges the chains into a rotation of
    // registers through the stack.
    let mut acc = [_mm512_setzero_ps(); N];
    for (i, v) in acc.iter_mut().enumerate() {
        *v = _mm512_set1_ps(i as f32);
    }
    let (a, b) = (_mm512_set1_ps(0.999_999), _mm512_set1_ps(1e-7));
    for _ in 0..iters {
        for v in acc.iter_mut() {
            *v = _mm512_fmadd_ps(*v, a, b);
        }
    }
    acc.iter().map(|&v| _mm512_reduce_add_ps(v)).sum()
}

/// As [`fma_loop_avx512`] with 256-bit vectors. The probe runs 12 chains: AVX2 has 16 vector
/// registers, and 16 accumulators plus the multiplier spill one chain to the stack, whose
/// store-to-load latency then sets the pace (134 against 236 GFLOP/s on 2 threads of a Zen 4,
/// whose 256-bit FMAs issue two per cycle; 12 chains cover the 4-cycle latency on two pipes).
///
/// # Safety
/// The CPU supports AVX2 and FMA.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
pub(super) unsafe fn fma_loop_avx2<const N: usize>(iters: u64) -> f32 {
    use std::arch::x86_64::*;
    // Distinct starting values: with equal ones LLVM merges the chains into a rotation of
    // registers through the stack.
    let mut acc = [_mm256_setzero_ps(); N];
    for (i, v) in acc.iter_mut().enumerate() {
        *v = _mm256_set1_ps(i as f32);
    }
    let (a, b) = (_mm256_set1_ps(0.999_999), _mm256_set1_ps(1e-7));
    for _ in 0..iters {
        for v in acc.iter_mut() {
            *v = _mm256_fmadd_ps(*v, a, b);
        }
    }
    let mut out = [0f32; 8];
    let sum = acc
        .iter()
        .fold(_mm256_setzero_ps(), |s, &v| _mm256_add_ps(s, v));
    // SAFETY: `out` holds 8 floats.
    unsafe { _mm256_storeu_ps(out.as_mut_ptr(), sum) };
    out.iter().sum()
}

/// A `Vm*:` field of a `/proc/<pid>/status` text, in KiB.
pub fn status_kib(status: &str, field: &str) -> Option<u64> {
    status
        .lines()
        .find(|l| l.starts_with(field) && l[field.len()..].starts_with(':'))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

/// `VmHWM` (peak resident set, KiB) and `VmRSS` (current) of this process.
pub fn self_rss_kib() -> Option<(u64, u64)> {
    let s = std::fs::read_to_string("/proc/self/status").ok()?;
    Some((status_kib(&s, "VmHWM")?, status_kib(&s, "VmRSS")?))
}

/// Resets this process's `VmHWM` to its current RSS (Linux ≥ 4.0: writing 5 to `clear_refs`),
/// so that the next reading is the peak of what ran since. Returns whether it worked.
pub fn reset_peak_rss() -> bool {
    std::fs::write("/proc/self/clear_refs", "5").is_ok()
}

/// Runs `f` with candle's matmul thread count forced to `threads`.
///
/// candle reads `RAYON_NUM_THREADS` on every CPU matmul (`candle_core::utils::get_num_threads`)
/// and uses `Parallelism::None` when it is 1, so a temporary override changes the matmul's
/// threading without rebuilding rayon's global pool. Only called from the bench's single
/// driving thread while no other work is in flight (so no concurrent `getenv`).
pub fn with_matmul_threads<R>(threads: usize, f: impl FnOnce() -> R) -> R {
    let old = std::env::var_os("RAYON_NUM_THREADS");
    std::env::set_var("RAYON_NUM_THREADS", threads.to_string());
    let r = f();
    match old {
        Some(v) => std::env::set_var("RAYON_NUM_THREADS", v),
        None => std::env::remove_var("RAYON_NUM_THREADS"),
    }
    r
}

/// The quiet-machine probe, as the peer prints it: GFLOP/s of a fixed 1024×768 · 768×3072 f32
/// GEMM (the shape of opt-125m's fc1 at 1024 tokens), best of 5, with 1 thread and with the
/// bench's thread count. On a quiet 2-core machine the ratio is ≈ 1.8–2; below
/// [`PROBE_MIN_RATIO`] the cores were shared and the figures next to it are suspect.
#[derive(Clone, Debug, Serialize)]
pub struct Probe {
    pub gflops_1t: f64,
    pub gflops_nt: f64,
    pub threads: usize,
    pub ratio: f64,
    pub load_avg_1m: Option<f64>,
    pub contended: bool,
}

/// Below this 2-thread/1-thread probe ratio the machine is called contended.
pub const PROBE_MIN_RATIO: f64 = 1.6;

/// Measures the probe (≈ 0.2 s).
pub fn probe() -> Result<Probe> {
    let (m, k, n) = (1024usize, 768usize, 3072usize);
    let dev = Device::Cpu;
    // Deterministic, well-scaled values (no denormals): the speed must not depend on them.
    let xs: Vec<f32> = (0..m * k)
        .map(|i| ((i % 97) as f32 - 48.0) / 97.0)
        .collect();
    let ws: Vec<f32> = (0..n * k)
        .map(|i| ((i % 89) as f32 - 44.0) / 89.0)
        .collect();
    let x = Tensor::from_vec(xs, (m, k), &dev)?;
    let w = Tensor::from_vec(ws, (n, k), &dev)?;
    let flops = 2.0 * (m * k * n) as f64;
    let best = |threads: usize| -> Result<f64> {
        with_matmul_threads(threads, || {
            x.matmul(&w.t()?).context("probe matmul")?;
            let mut best = f64::INFINITY;
            for _ in 0..5 {
                let t0 = Instant::now();
                let y = x.matmul(&w.t()?)?;
                best = best.min(t0.elapsed().as_secs_f64());
                drop(y);
            }
            Ok(flops / best / 1e9)
        })
    };
    let threads = candle_core::utils::get_num_threads();
    let g1 = best(1)?;
    let gn = if threads > 1 { best(threads)? } else { g1 };
    let ratio = gn / g1;
    let round1 = |v: f64| (v * 10.0).round() / 10.0;
    Ok(Probe {
        gflops_1t: round1(g1),
        gflops_nt: round1(gn),
        threads,
        ratio: (ratio * 1000.0).round() / 1000.0,
        load_avg_1m: load_avg_1m(),
        contended: threads > 1 && ratio < PROBE_MIN_RATIO,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summary_median_even_and_odd() {
        let s = Summary::of(vec![3.0, 1.0, 2.0], 1, None);
        assert_eq!(
            (s.median_s, s.min_s, s.max_s, s.repeats),
            (2.0, 1.0, 3.0, 3)
        );
        let s = Summary::of(vec![4.0, 1.0, 2.0, 3.0], 0, None);
        assert_eq!(s.median_s, 2.5);
        assert_eq!(s.mean_s, 2.5);
    }

    #[test]
    fn status_fields_parse() {
        let text = "Name:\tzo\nVmHWMx:\t1 kB\nVmHWM:\t  123456 kB\nVmRSS:\t  2048 kB\n";
        assert_eq!(status_kib(text, "VmHWM"), Some(123_456));
        assert_eq!(status_kib(text, "VmRSS"), Some(2048));
        assert_eq!(status_kib(text, "VmPeak"), None);
    }
}
