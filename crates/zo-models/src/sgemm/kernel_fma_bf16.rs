//! bf16 inputs on the f32 AVX-512 kernel ([`super::Isa::Avx512FmaBf16`]): `model.compute =
//! "bf16"` on Intel CPUs that have AVX512-BF16 but no usable AMX (a hypervisor that hides the
//! tile unit, or a part without one).
//!
//! There `vdpbf16ps` is slow: on the 2-vCPU Emerald Rapids Xeon of 2026-12-06 (AVX512-BF16,
//! AMX not exposed), independent chains of `vdpbf16ps zmm` ran at 0.75 ns per instruction
//! against 0.19 ns for `vfmadd231ps zmm` (`docs/tools/dpbf16_vs_fma.c`), so its two products
//! per lane give half the f32 FMA's rate, and `zo bench --figure b1 --compute bf16` took
//! 1.83–1.87 s against 0.94–1.00 s in f32 (docs/BENCH.md, round 18). This kernel gives the same
//! arithmetic, bf16-rounded inputs and f32 accumulation, at the f32 kernel's speed: the packing
//! rounds every value to bf16 as it packs it (`vcvtneps2bf16`, the rounding of the other bf16
//! kernels' packing) and widens it back to f32, and the f32 AVX-512 kernel multiplies the
//! packed panels. A product of two bf16 values is exact in f32, so each FMA of the chain rounds
//! only the sum.
//!
//! Determinism: each element of C is the f32 kernels' FMA chain over the rounded inputs,
//! whatever the blocking or the thread count. The packing also swaps the two `k` of each pair
//! (`2p`, `2p + 1`), so that the chain adds their products in the order of `vdpbf16ps` on Intel,
//! which adds the odd one's first (SDM; each sum rounded to nearest even, the product being
//! exact): on Intel this kernel gives the AVX512-BF16 kernel's bits (tested), so which of the
//! two runs changes no number there; except where a sum or an input is subnormal, which
//! `vdpbf16ps` flushes to zero, and for an odd `k`, whose last `k` `vdpbf16ps` pairs with a
//! zero product added first (which turns a sum of exactly −0 into +0). The `KC` of both
//! blockings is even, so every pair lies within one `k` block.
//!
//! Every function here requires AVX-512F, AVX512-BF16, AVX512-VL, AVX2 and FMA.

use std::arch::x86_64::*;

use super::driver::{Kernel, TileEpi};
use super::kernel_avx2::pack_from;
use super::kernel_avx512::Avx512;

/// The f32 AVX-512 kernel `Avx512<MR, BIG_L2>` on bf16-rounded packed panels.
pub(super) struct Avx512FmaBf16<const MR: usize, const BIG_L2: bool>;

/// The kernel whose blocking and micro-kernel this one takes.
type Inner<const MR: usize, const BIG_L2: bool> = Avx512<MR, BIG_L2>;

impl<const MR: usize, const BIG_L2: bool> Kernel for Avx512FmaBf16<MR, BIG_L2> {
    const MR: usize = MR;
    const NR: usize = Inner::<MR, BIG_L2>::NR;
    const KC: usize = Inner::<MR, BIG_L2>::KC;
    const MC_MAX: usize = Inner::<MR, BIG_L2>::MC_MAX;
    const NC: usize = Inner::<MR, BIG_L2>::NC;
    const A_SPILL: usize = Inner::<MR, BIG_L2>::A_SPILL;
    const PREFETCH_C: bool = Inner::<MR, BIG_L2>::PREFETCH_C;
    const B_GROUP: usize = Inner::<MR, BIG_L2>::B_GROUP;
    const SHARED_A_ROWS: usize = Inner::<MR, BIG_L2>::SHARED_A_ROWS;
    // A not stored (a convolution's) is packed from its rows' runs where they keep the pairs
    // whole (even starts and lengths: every layer but the 3-channel stem), else gathered and
    // packed by `pack_a`. A is never read in place: every value must be rounded.
    const PACK_A_PTRS: Option<unsafe fn(&[*const f32], usize, *mut f32)> =
        Some(pack_ptrs_rounded::<MR>);
    const PACK_A_PTRS_PAIRS: bool = true;
    const KERNEL_RUNS: Option<super::driver::KernelRuns> = None;

    unsafe fn pack_a(src: *const f32, ld: usize, rows: usize, kc: usize, dst: *mut f32) {
        // SAFETY: the trait's contract, which is the inner kernel's packing's (`pack`, spill
        // `8·⌈MR/8⌉ − MR`).
        unsafe { pack_rounded::<MR>(src, ld, rows, kc, dst) }
    }

    unsafe fn pack_b(src: *const f32, ld: usize, rows: usize, kc: usize, dst: *mut f32) {
        const { assert!(Inner::<MR, BIG_L2>::NR == 32) };
        // SAFETY: as `pack_a` (no spill: 32 is a multiple of 8).
        unsafe { pack_rounded::<32>(src, ld, rows, kc, dst) }
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
        // SAFETY: the trait's contract, the inner kernel's.
        unsafe { Inner::<MR, BIG_L2>::kernel(kc, a, b, c, ldc, accumulate, epi) }
    }
}

/// The inner kernel's packing ([`super::kernel_avx2::pack`], its body [`pack_from`]) with every
/// value rounded to the nearest bf16 ([`round8`]) and columns `2q` and `2q + 1` swapped (the
/// order of `vdpbf16ps`'s products; an odd last column stays), in the same pass.
///
/// # Safety
/// As [`super::kernel_avx2::pack`], and AVX-512F, AVX512-BF16 and AVX512-VL available.
#[target_feature(enable = "avx512f,avx512bf16,avx512vl,avx2,fma")]
unsafe fn pack_rounded<const R: usize>(
    src: *const f32,
    ld: usize,
    rows: usize,
    kc: usize,
    dst: *mut f32,
) {
    // SAFETY: the caller's contract (`pack`'s: row `i < rows` starts at `src + i·ld`); the
    // closure runs inside this function, whose features include `round8`'s (and it inherits
    // them, so `round8` inlines).
    unsafe { pack_from::<R, true>(|i| src.wrapping_add(i * ld), rows, kc, dst, |v| round8(v)) }
}

/// [`pack_rounded`] from row pointers ([`super::kernel_avx2::pack_ptrs`]), for one run whose
/// pairs of columns are whole ([`Kernel::PACK_A_PTRS_PAIRS`]).
///
/// # Safety
/// As [`super::kernel_avx2::pack_ptrs`], and AVX-512F, AVX512-BF16 and AVX512-VL available.
#[target_feature(enable = "avx512f,avx512bf16,avx512vl,avx2,fma")]
unsafe fn pack_ptrs_rounded<const R: usize>(rows: &[*const f32], kc: usize, dst: *mut f32) {
    // SAFETY: the caller's contract (`pack_ptrs`'); the closure as in `pack_rounded`.
    unsafe { pack_from::<R, true>(|i| rows[i], rows.len(), kc, dst, |v| round8(v)) }
}

/// 8 floats rounded to the nearest bf16 (ties to even; `vcvtneps2bf16`, the rounding of the
/// other bf16 kernels' packing, which also flushes subnormals to zero), kept as f32. Maps 0
/// to 0, as [`pack_from`] asks.
#[inline]
#[target_feature(enable = "avx512f,avx512bf16,avx512vl")]
fn round8(v: __m256) -> __m256 {
    let h = _mm256_cvtneps_pbh(v);
    // SAFETY: `__m128bh` and `__m128i` are both 128 bits of plain data.
    let h = unsafe { std::mem::transmute::<__m128bh, __m128i>(h) };
    _mm256_castsi256_ps(_mm256_slli_epi32::<16>(_mm256_cvtepu16_epi32(h)))
}
