//! The AVX-512F micro-kernel of [`super`]: `MR × 32` tiles ([`Avx512`]), packing shared with
//! the AVX2 kernel ([`super::kernel_avx2::pack`]).
//!
//! Same scheme as the AVX2 6×16 kernel with 512-bit vectors: `2·MR` `zmm` accumulators hold
//! an `MR × 32` tile of C, and each step of `k` loads one 32-wide row of the packed B panel
//! (2 loads), broadcasts the `MR` packed A values of that column and issues `2·MR` FMAs. Each
//! lane is one element of C and runs the same in-order FMA chain as the AVX2 kernel's lane for
//! that element, so the two give bit-identical results.
//!
//! Every function here is `unsafe` and requires the CPU to support AVX-512F, AVX2 and FMA
//! (checked once by the caller with `is_x86_feature_detected!`).

use std::arch::x86_64::*;

use std::sync::OnceLock;

use super::driver::{ARun, Kernel, KernelRuns, TileEpi};
use super::kernel_avx2::{pack, pack_ptrs};

/// Micro-tile columns: two 16-lane vectors of B per `k` step.
const NR: usize = 32;

/// The AVX-512F kernel with `MR × 32` tiles; `BIG_L2` picks the blocking for an L2 of 2 MB or
/// more per core ([`big_l2`]: Intel Sapphire Rapids and later) over the one kept for smaller
/// L2s (AMD Zen 4/5: 1 MB). The blocking changes no result (the driver's contract), only the
/// speed.
pub(super) struct Avx512<const MR: usize, const BIG_L2: bool>;

impl<const MR: usize, const BIG_L2: bool> Kernel for Avx512<MR, BIG_L2> {
    const MR: usize = MR;
    const NR: usize = NR;
    /// `BIG_L2 = true` (measured on the Xeon with AMX of 2026-12-05, docs/BENCH.md round 10):
    /// `KC = 768` (all of `k` for opt-125m's 768-wide inputs, so C is written once instead of
    /// stored and reloaded per `k` block), `MC = 192`, and the micro-panel-outer order over
    /// groups of 4 B panels ([`Kernel::B_GROUP`]): the A micro-panel (36 KB) stays in L1, the
    /// group of B panels (384 KB) and the A block (576 KB) in L2.
    ///
    /// `BIG_L2 = false` (1 MB L2 and 32 KB L1d: AMD Zen 4; measured there, docs/BENCH.md
    /// round 25): the same `KC` and order with `MC = 96`, so the A block (288 KB) and the group
    /// of B panels (384 KB) share the smaller L2. Against the blocking it replaced (`KC = 384`,
    /// `MC = 96`, panel-outer: a 48 KB B panel, made for a 48 KB L1) 1.02–1.08× the GFLOP per
    /// CPU-second on the forward's products of 256–1024 rows, and the B1 forward in 0.88×
    /// (full LM) and 0.95× (task loss) the time; `KC = 256` (a B panel that fits 32 KB) was
    /// slower than 384.
    const KC: usize = 768;
    const MC_MAX: usize = if BIG_L2 { 192 } else { 96 };
    /// The shared packed B buffer is `KC·NC·4` = 6 MB.
    const NC: usize = 2048;
    const A_SPILL: usize = MR.div_ceil(8) * 8 - MR;
    /// Measured a loss on the round-6 Xeon (the prefetches stall the issuing loop there).
    const PREFETCH_C: bool = false;
    const B_GROUP: usize = 4;
    const PACK_A_PTRS: Option<unsafe fn(&[*const f32], usize, *mut f32)> = Some(pack_ptrs::<MR>);
    /// A read in place (convolutions' runs, [`kernel_runs_mx32`]): faster than packing under
    /// both blockings (docs/BENCH.md round 11 on the Xeon; round 25 on Zen 4, where the
    /// ResNet-18 / ResNet-50 forward took 0.93× / 0.95× the time of packing them).
    const KERNEL_RUNS: Option<KernelRuns> = Some(kernel_runs_mx32::<MR>);

    unsafe fn pack_a(src: *const f32, ld: usize, rows: usize, kc: usize, dst: *mut f32) {
        // SAFETY: the trait's contract, which is `pack`'s (spill `8·⌈MR/8⌉ − MR`).
        unsafe { pack::<MR>(src, ld, rows, kc, dst) }
    }

    unsafe fn pack_b(src: *const f32, ld: usize, rows: usize, kc: usize, dst: *mut f32) {
        // SAFETY: the trait's contract, which is `pack`'s (no spill: 32 is a multiple of 8).
        unsafe { pack::<NR>(src, ld, rows, kc, dst) }
    }

    unsafe fn kernel(
        kc: usize,
        a: *const f32,
        b: *const f32,
        c: *mut f32,
        ldc: usize,
        accumulate: bool,
        epi: Option<&TileEpi>,
    ) {
        // SAFETY: the trait's contract, which is `kernel_mx32`'s.
        unsafe { kernel_mx32::<MR>(kc, a, b, c, ldc, accumulate, epi) }
    }
}

/// Whether the L2 cache is at least 2 MB per core (CPUID leaf `0x8000_0006`, ECX bits 31–16:
/// the L2 size in KB, reported by Intel and AMD alike), which selects the larger blocking of
/// [`Avx512`]. Read once.
pub(super) fn big_l2() -> bool {
    static BIG: OnceLock<bool> = OnceLock::new();
    *BIG.get_or_init(|| {
        use std::arch::x86_64::__cpuid;
        // The extended leaf is read only where leaf 0x8000_0000 says it exists.
        __cpuid(0x8000_0000).eax >= 0x8000_0006 && __cpuid(0x8000_0006).ecx >> 16 >= 2048
    })
}

/// `let mut $acc` = the accumulators of an `MR × 32` tile: C's values (`accumulate`) or
/// zeros, with C's lines then prefetched for the final store. A macro, not a function, so
/// that the 24 accumulators stay in registers (a `#[target_feature]` function returning them
/// was not inlined and went through the stack).
macro_rules! start_tile {
    ($acc:ident, $c:ident, $ldc:ident, $accumulate:ident) => {
        let mut $acc = [[_mm512_setzero_ps(); 2]; MR];
        if $accumulate {
            load_tile!($acc, $c, $ldc, 16, _mm512_loadu_ps);
        } else {
            for i in 0..MR {
                _mm_prefetch::<_MM_HINT_T0>($c.add(i * $ldc) as *const i8);
                _mm_prefetch::<_MM_HINT_T0>($c.add(i * $ldc + 16) as *const i8);
                _mm_prefetch::<_MM_HINT_T0>($c.add(i * $ldc + 31) as *const i8);
            }
        }
    };
}

/// `C[MR × 32] (+)= Apanel · Bpanel` over `kc` steps, then either a plain store of the raw sums
/// (`epi = None`: more `k` blocks follow and continue from them) or the epilogue; as
/// [`super::kernel_avx2`]'s 6×16 kernel, lane for lane.
///
/// # Safety
/// AVX-512F+AVX2+FMA available; `a` readable for `kc·MR`, `b` for `kc·32` elements; `c` valid
/// for writing (and, when `accumulate`, reading) an `MR × 32` tile with row stride `ldc`; the
/// epilogue pointers, when not null, readable for 32 (bias) and an `MR × 32` tile at stride
/// `ldr` (residual).
#[target_feature(enable = "avx512f,avx2,fma")]
unsafe fn kernel_mx32<const MR: usize>(
    kc: usize,
    a: *const f32,
    b: *const f32,
    c: *mut f32,
    ldc: usize,
    accumulate: bool,
    epi: Option<&TileEpi>,
) {
    // SAFETY (whole body): every pointer offset stays inside the extents listed above.
    unsafe {
        start_tile!(acc, c, ldc, accumulate);
        let (mut ap, mut bp) = (a, b);
        macro_rules! step {
            () => {{
                let b0 = _mm512_loadu_ps(bp);
                let b1 = _mm512_loadu_ps(bp.add(16));
                for (i, row) in acc.iter_mut().enumerate() {
                    let ai = _mm512_set1_ps(*ap.add(i));
                    row[0] = _mm512_fmadd_ps(ai, b0, row[0]);
                    row[1] = _mm512_fmadd_ps(ai, b1, row[1]);
                }
                ap = ap.add(MR);
                bp = bp.add(NR);
            }};
        }
        // B is prefetched 4 steps ahead (one 128-byte row, two lines, per step): it comes from
        // L2/L3 on the first micro-panel of a panel, from L1 after.
        for _ in 0..kc / 2 {
            _mm_prefetch::<_MM_HINT_T0>(bp.add(NR * 4) as *const i8);
            step!();
            _mm_prefetch::<_MM_HINT_T0>(bp.add(NR * 4 + 16) as *const i8);
            step!();
        }
        for _ in 0..kc % 2 {
            step!();
        }
        store_tile_zmm!(acc, c, ldc, epi);
    }
}

/// [`kernel_mx32`] with the A micro-panel read in place, run by run: at step `p` of a run,
/// row `i` broadcasts `ptrs[i][p]` where the packed kernel broadcasts `a[p·MR + i]`. The
/// same FMA chains in the same order, so the same bits as packing the runs and calling
/// [`kernel_mx32`].
///
/// # Safety
/// As [`kernel_mx32`], with `b` readable for `Σ len · 32` floats and each run's first `MR`
/// pointers readable for its `len` floats.
#[target_feature(enable = "avx512f,avx2,fma")]
unsafe fn kernel_runs_mx32<const MR: usize>(
    runs: &[ARun],
    b: *const f32,
    c: *mut f32,
    ldc: usize,
    accumulate: bool,
    epi: Option<&TileEpi>,
) {
    // SAFETY (whole body): every pointer offset stays inside the extents listed above.
    unsafe {
        start_tile!(acc, c, ldc, accumulate);
        let mut bp = b;
        for run in runs {
            if run.zero {
                bp = bp.add(run.len * NR);
                continue;
            }
            let mut rp: [*const f32; MR] = [std::ptr::null(); MR];
            rp.copy_from_slice(&run.ptrs[..MR]);
            macro_rules! step {
                ($p:expr) => {{
                    let b0 = _mm512_loadu_ps(bp);
                    let b1 = _mm512_loadu_ps(bp.add(16));
                    for (row, &r) in acc.iter_mut().zip(&rp) {
                        let ai = _mm512_set1_ps(*r.add($p));
                        row[0] = _mm512_fmadd_ps(ai, b0, row[0]);
                        row[1] = _mm512_fmadd_ps(ai, b1, row[1]);
                    }
                    bp = bp.add(NR);
                }};
            }
            let mut p = 0;
            while p + 2 <= run.len {
                _mm_prefetch::<_MM_HINT_T0>(bp.add(NR * 4) as *const i8);
                step!(p);
                _mm_prefetch::<_MM_HINT_T0>(bp.add(NR * 4 + 16) as *const i8);
                step!(p + 1);
                p += 2;
            }
            if p < run.len {
                step!(p);
            }
        }
        store_tile_zmm!(acc, c, ldc, epi);
    }
}
