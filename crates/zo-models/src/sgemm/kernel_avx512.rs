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

use super::driver::{Kernel, TileEpi};
use super::kernel_avx2::pack;

/// Micro-tile columns: two 16-lane vectors of B per `k` step.
const NR: usize = 32;

/// The AVX-512F kernel with `MR × 32` tiles.
pub(super) struct Avx512<const MR: usize>;

impl<const MR: usize> Kernel for Avx512<MR> {
    const MR: usize = MR;
    const NR: usize = NR;
    /// The constants were measured on a 2-core AVX-512 Xeon (48 KB L1d, 2 MB L2), see the
    /// module doc of [`super`]: a `KC × 32` B panel is 48 KB, the `MC × KC` A block 144 KB.
    const KC: usize = 384;
    const MC_MAX: usize = 96;
    /// The shared packed B buffer is `KC·NC·4` = 3 MB.
    const NC: usize = 2048;
    const A_SPILL: usize = MR.div_ceil(8) * 8 - MR;
    /// Measured a loss on that Xeon (the prefetches stall the issuing loop there).
    const PREFETCH_C: bool = false;

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
        let mut acc = [[_mm512_setzero_ps(); 2]; MR];
        if accumulate {
            load_tile!(acc, c, ldc, 16, _mm512_loadu_ps);
        } else {
            for i in 0..MR {
                _mm_prefetch::<_MM_HINT_T0>(c.add(i * ldc) as *const i8);
                _mm_prefetch::<_MM_HINT_T0>(c.add(i * ldc + 16) as *const i8);
                _mm_prefetch::<_MM_HINT_T0>(c.add(i * ldc + 31) as *const i8);
            }
        }
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
