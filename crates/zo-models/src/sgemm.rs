//! Our own f32 GEMM for the one product shape the OPT forward is made of:
//! `C[n × o] = epilogue(A[n × k] · Wᵀ)` with `W: [o, k]` row-major (torch's Linear layout, and
//! the tied lm_head), fused with the Linear epilogue (scale, bias, residual, ReLU).
//!
//! Why not the `gemm` crate (which candle uses): on this workload it runs at ~120 GFLOP/s on
//! two Zen 3 cores where OpenBLAS reaches 150-174; the forward is ~88% GEMM. The structure is
//! the Goto/BLIS one (Goto & van de Geijn, "Anatomy of High-Performance Matrix
//! Multiplication", TOMS 2008; Van Zee & van de Geijn, "BLIS", TOMS 2015):
//!
//! ```text
//! for jc in 0..o step NC            (columns of C = rows of W)
//!   for pc in 0..k step KC          (the reduction, in order)
//!     pack B = W[jc.., pc..]ᵀ into KC×NR panels        (shared, L3)
//!     parallel over (MC row block, group of NR panels) of C:
//!       pack A[ic.., pc..] into KC×MR micro-panels     (per thread, L2)
//!       for each NR panel: for each MR micro-panel:  6×16 micro-kernel  (B panel in L1)
//! ```
//!
//! C is `n × o` floats (megabytes) and every `KC` block revisits all of it, so each kernel call
//! prefetches the C (and residual) tile of the next call: loading the partial sums then hits
//! L1 instead of stalling on L3/DRAM (with it, our time relative to the `gemm` crate on
//! 1024×768×3072 went from 1.2× to ~0.9×, measured on the shared machine).
//!
//! Tried and not kept: packing the next step's B panels as extra tasks of the current step's
//! parallel region (double-buffered B, one barrier per `KC` step instead of two): on the shared
//! machine our ratio to the `gemm` crate over the four body shapes was 1.12 with it against
//! 1.20 without (alternated runs of `examples/sgemm_bench.rs`), so the simpler loop stays.
//!
//! The epilogue is applied by the micro-kernel of the last `KC` block, so C is written once
//! with its final values. Earlier blocks store raw sums that the next block's kernel reloads
//! and continues: every element of C is one chain of FMAs over `p = 0, 1, …, k−1` in order
//! whatever the blocking, so the result is independent of `MC`, of how tasks are formed and of
//! the number of threads (work is split over output blocks only, never over `k`).
//!
//! Only x86-64 with AVX2+FMA has a kernel; elsewhere [`sgemm_nt`] returns `false` and the
//! caller keeps using the `gemm` crate.

// Without the x86 kernel, the blocking constants and the scalar epilogue have no user.
#![cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]

#[cfg(target_arch = "x86_64")]
mod kernel_avx2;

/// Micro-tile rows (broadcast A values per `k` step).
pub(crate) const MR: usize = 6;
/// Micro-tile columns (two 8-lane vectors of B per `k` step).
pub(crate) const NR: usize = 16;
/// Reduction block: a `KC × NR` B panel is 16 KB, half of Zen 3's 32 KB L1d, and the
/// `MC × KC` packed A block ≤ 192 KB fits its 512 KB L2 beside the streaming B panel.
const KC: usize = 256;
/// Largest row block (multiple of `MR`). KC ∈ {256, 384} × MC ∈ {96, 144, 192} all measured
/// within the noise of the shared 2-core machine (`examples/sgemm_bench.rs`); these are the
/// BLIS Zen values.
const MC_MAX: usize = 192;
/// Column block: bounds the shared packed B buffer at `KC·NC·4` = 4 MB (in L3).
const NC: usize = 4096;

/// What is applied to `acc = A Wᵀ` before the single store:
/// `y = max?(scale·acc + scale·bias[j] + residual[i, j], 0)`.
#[derive(Clone, Copy, Debug)]
pub struct Epilogue<'a> {
    pub scale: f32,
    /// `[o]`.
    pub bias: Option<&'a [f32]>,
    /// `[n, o]` row-major.
    pub residual: Option<&'a [f32]>,
    pub relu: bool,
}

impl Epilogue<'_> {
    /// `y = acc` (plain product).
    pub const PLAIN: Epilogue<'static> = Epilogue {
        scale: 1.0,
        bias: None,
        residual: None,
        relu: false,
    };
}

/// Whether [`sgemm_nt`] has a kernel on this CPU.
pub fn available() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// `c[n × o] = epilogue(a[n × k] · wᵀ)` with `w: [o, k]`, all row-major and contiguous, on
/// rayon's current pool. Returns `false` (and leaves `c` untouched) when this CPU has no
/// kernel or a slice length does not match the shape; the caller then uses another GEMM.
#[allow(clippy::too_many_arguments)]
pub fn sgemm_nt(
    n: usize,
    o: usize,
    k: usize,
    a: &[f32],
    w: &[f32],
    c: &mut [f32],
    epi: &Epilogue<'_>,
) -> bool {
    let shapes_ok = a.len() == n * k
        && w.len() == o * k
        && c.len() == n * o
        && epi.bias.is_none_or(|b| b.len() == o)
        && epi.residual.is_none_or(|r| r.len() == n * o);
    if !shapes_ok || !available() {
        return false;
    }
    if n == 0 || o == 0 {
        return true;
    }
    let bias_scaled: Option<Vec<f32>> =
        epi.bias.map(|b| b.iter().map(|&v| v * epi.scale).collect());
    if k == 0 {
        for (i, row) in c.chunks_exact_mut(o).enumerate() {
            for (j, y) in row.iter_mut().enumerate() {
                *y = finish(0.0, epi, bias_scaled.as_deref(), i, j, o);
            }
        }
        return true;
    }
    #[cfg(target_arch = "x86_64")]
    driver::run(n, o, k, a, w, c, epi, bias_scaled.as_deref());
    true
}

/// The scalar epilogue, the same operations as the kernel's vector one (FMA, then add, then
/// max), for edge tiles and `k = 0`.
#[inline]
fn finish(acc: f32, epi: &Epilogue<'_>, bs: Option<&[f32]>, i: usize, j: usize, o: usize) -> f32 {
    let mut y = acc.mul_add(epi.scale, bs.map_or(0.0, |b| b[j]));
    if let Some(r) = epi.residual {
        y += r[i * o + j];
    }
    if epi.relu {
        y = y.max(0.0);
    }
    y
}

#[cfg(target_arch = "x86_64")]
mod driver;

#[cfg(test)]
mod tests;
