//! AVX2 + FMA pieces of [`super`]: the 6×16 micro-kernel ([`Avx2`]) and the packing routine
//! of every kernel ([`pack`]).
//!
//! The micro-kernel is the BLIS one for Haswell/Zen (Van Zee & van de Geijn, "BLIS: A Framework
//! for Rapidly Instantiating BLAS Functionality", TOMS 2015; kernel shape as in BLIS's
//! `bli_sgemm_haswell_asm_6x16`): 12 `ymm` accumulators hold a 6×16 tile of C, and each step
//! of `k` loads one 16-wide row of the packed B panel (2 loads), broadcasts the 6 packed A
//! values of that column and issues 12 FMAs. With 2 FMA pipes, 12 independent accumulators
//! cover the 4-cycle FMA latency (8 would be the minimum), and 14 loads per 12 FMAs stay
//! under the 2 loads/cycle of Zen 3, so the loop is FMA-bound.
//!
//! Packing (Goto & van de Geijn, "Anatomy of High-Performance Matrix Multiplication", TOMS
//! 2008, §4) turns both operands into the order the kernel reads them: contiguous and
//! zero-padded, so the kernel has no edge cases and streams memory linearly. Both of our
//! operands are stored "k-contiguous" (A is `[n, k]`, W is `[o, k]`), so packing is a
//! transposition of 8×8 blocks in registers.
//!
//! Every function here is `unsafe` and requires the CPU to support AVX2 and FMA (checked once
//! by the caller with `is_x86_feature_detected!`).

use std::arch::x86_64::*;

use super::driver::{Kernel, TileEpi};

/// The AVX2+FMA kernel: 6×16 tile, `KC = 256`, `MC ≤ 192`, `NC = 4096`.
pub(super) struct Avx2;

/// Micro-tile rows (broadcast A values per `k` step).
const MR: usize = 6;
/// Micro-tile columns (two 8-lane vectors of B per `k` step).
const NR: usize = 16;

impl Kernel for Avx2 {
    const MR: usize = MR;
    const NR: usize = NR;
    /// A `KC × NR` B panel is 16 KB, half of Zen 3's 32 KB L1d, and the `MC × KC` packed A
    /// block ≤ 192 KB fits its 512 KB L2 beside the streaming B panel.
    const KC: usize = 256;
    /// KC ∈ {256, 384} × MC ∈ {96, 144, 192} all measured within the noise of the shared
    /// 2-core Zen 3 machine (`examples/sgemm_bench.rs`); these are the BLIS Zen values.
    const MC_MAX: usize = 192;
    /// Bounds the shared packed B buffer at `KC·NC·4` = 4 MB (in L3).
    const NC: usize = 4096;
    const A_SPILL: usize = 2;
    /// With it, our time relative to the `gemm` crate on 1024×768×3072 went from 1.2× to
    /// ~0.9× on Zen 3.
    const PREFETCH_C: bool = true;
    const PACK_A_PTRS: Option<unsafe fn(&[*const f32], usize, *mut f32)> = Some(pack_ptrs::<MR>);

    unsafe fn pack_a(src: *const f32, ld: usize, rows: usize, kc: usize, dst: *mut f32) {
        // SAFETY: the trait's contract, which is `pack`'s (spill `8 − 6 = 2`).
        unsafe { pack::<MR>(src, ld, rows, kc, dst) }
    }

    unsafe fn pack_b(src: *const f32, ld: usize, rows: usize, kc: usize, dst: *mut f32) {
        // SAFETY: the trait's contract, which is `pack`'s (no spill: 16 is a multiple of 8).
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
        // SAFETY: the trait's contract, which is `kernel_6x16`'s.
        unsafe { kernel_6x16(kc, a, b, c, ldc, accumulate, epi) }
    }
}

/// Transposes the 8×8 block held in `r` (row `i` in `r[i]`): afterwards `r[j]` lane `i` is
/// the old `r[i]` lane `j`. The standard unpack / shuffle / lane-permute sequence.
#[inline]
#[target_feature(enable = "avx2,fma")]
fn transpose8(r: &mut [__m256; 8]) {
    let t0 = _mm256_unpacklo_ps(r[0], r[1]);
    let t1 = _mm256_unpackhi_ps(r[0], r[1]);
    let t2 = _mm256_unpacklo_ps(r[2], r[3]);
    let t3 = _mm256_unpackhi_ps(r[2], r[3]);
    let t4 = _mm256_unpacklo_ps(r[4], r[5]);
    let t5 = _mm256_unpackhi_ps(r[4], r[5]);
    let t6 = _mm256_unpacklo_ps(r[6], r[7]);
    let t7 = _mm256_unpackhi_ps(r[6], r[7]);
    let s0 = _mm256_shuffle_ps::<0x44>(t0, t2);
    let s1 = _mm256_shuffle_ps::<0xEE>(t0, t2);
    let s2 = _mm256_shuffle_ps::<0x44>(t1, t3);
    let s3 = _mm256_shuffle_ps::<0xEE>(t1, t3);
    let s4 = _mm256_shuffle_ps::<0x44>(t4, t6);
    let s5 = _mm256_shuffle_ps::<0xEE>(t4, t6);
    let s6 = _mm256_shuffle_ps::<0x44>(t5, t7);
    let s7 = _mm256_shuffle_ps::<0xEE>(t5, t7);
    r[0] = _mm256_permute2f128_ps::<0x20>(s0, s4);
    r[1] = _mm256_permute2f128_ps::<0x20>(s1, s5);
    r[2] = _mm256_permute2f128_ps::<0x20>(s2, s6);
    r[3] = _mm256_permute2f128_ps::<0x20>(s3, s7);
    r[4] = _mm256_permute2f128_ps::<0x31>(s0, s4);
    r[5] = _mm256_permute2f128_ps::<0x31>(s1, s5);
    r[6] = _mm256_permute2f128_ps::<0x31>(s2, s6);
    r[7] = _mm256_permute2f128_ps::<0x31>(s3, s7);
}

/// How far ahead (in floats, 2 cache lines) [`pack`] prefetches each source row. W streams
/// from DRAM in 32 strided rows at once; without this, packing was ~60% of the 16-row task
/// head's time (16×768→50272, 1 thread); with it that product went from 39 to 46 GFLOP/s
/// (2 threads: 70 to 85). 1 line ahead gave 42, 4 lines 43, 8 lines 38.5 (no gain).
const PF_AHEAD: usize = 32;

/// Packs rows `0 .. rows` (`rows ≤ R`) of `src` (row stride `ld`), columns `0 .. kc`, into the
/// `kc × R` panel `dst[p·R + i] = src[i·ld + p]`, zero for `i ≥ rows`: the packing of both
/// operands for every kernel (`R` = the kernel's `MR` for A, `NR` for B).
///
/// Rows go by groups of 8, each transposed in registers; each transposed column of a group is
/// stored as a full 8-lane vector, so when `R` is not a multiple of 8 the last group's stores
/// spill `8·⌈R/8⌉ − R` floats into the next column. Groups are stored last to first, so the
/// next column's first group (stored after) overwrites the spill, and the panel's last column
/// spills past it. Each source row is prefetched [`PF_AHEAD`] floats ahead, once per line.
///
/// # Safety
/// AVX2+FMA available; `src` valid for reading rows `0 .. rows`, `kc` elements each at stride
/// `ld`; `dst` valid for writing `kc·R + 8·⌈R/8⌉ − R` elements (what lies past `kc·R` may be
/// clobbered).
#[target_feature(enable = "avx2,fma")]
pub(super) unsafe fn pack<const R: usize>(
    src: *const f32,
    ld: usize,
    rows: usize,
    kc: usize,
    dst: *mut f32,
) {
    // SAFETY: the caller's contract; row `i < rows` starts at `src + i·ld`.
    unsafe { pack_from::<R, false>(|i| src.wrapping_add(i * ld), rows, kc, dst, |v| v) }
}

/// [`pack`] with each row's start given by a pointer of its own (`rows.len() ≤ R` rows; a
/// null pointer is a row of zeros): packs a run of columns of an A that is not stored, such
/// as an implicit im2col's (every row's run contiguous in the input), straight from the
/// source. Consecutive runs of one panel may be packed by consecutive calls at
/// `dst + q·R` (the spill of each call's last column is overwritten by the next call).
///
/// # Safety
/// AVX2+FMA available; each non-null `rows[i]` valid for reading `kc` elements; `dst` as in
/// [`pack`].
#[target_feature(enable = "avx2,fma")]
pub(super) unsafe fn pack_ptrs<const R: usize>(rows: &[*const f32], kc: usize, dst: *mut f32) {
    // SAFETY: the caller's contract.
    unsafe { pack_from::<R, false>(|i| rows[i], rows.len(), kc, dst, |v| v) }
}

/// The body of [`pack`] and [`pack_ptrs`]: row `i < rows` of the source starts at `row(i)`
/// (null: zeros). Each value is mapped by `map` on its way (8 at a time; it must map a value
/// the same way in any lane and map 0 to 0), and with `SWAP` columns `2q` and `2q + 1` of the
/// source trade places (an odd last column stays): `dst[p·R + i] = map(src[i][p ^ 1])`. [`pack`]
/// and [`pack_ptrs`] map nothing and swap nothing; the bf16-rounding kernel
/// ([`super::kernel_fma_bf16`]) rounds and swaps, from a function with more target features
/// that inlines this one and its `map`.
///
/// # Safety
/// As [`pack_ptrs`].
#[inline]
#[target_feature(enable = "avx2,fma")]
pub(super) unsafe fn pack_from<const R: usize, const SWAP: bool>(
    row: impl Fn(usize) -> *const f32,
    rows: usize,
    kc: usize,
    dst: *mut f32,
    map: impl Fn(__m256) -> __m256,
) {
    let kv = kc / 8 * 8;
    let groups = R.div_ceil(8);
    // SAFETY (whole body): reads stay in rows `< rows` (non-null) and columns `< kc`; vector
    // writes end at `(kv − 1)·R + 8·groups ≤ kc·R + 8·groups − R`, the tail's inside `kc·R`.
    unsafe {
        let mut p = 0;
        while p < kv {
            for g in (0..groups).rev() {
                let mut r = [_mm256_setzero_ps(); 8];
                for (i, ri) in r.iter_mut().enumerate() {
                    let at = if g * 8 + i < rows {
                        row(g * 8 + i)
                    } else {
                        std::ptr::null()
                    };
                    if !at.is_null() {
                        let at = at.add(p);
                        if p % 16 == 0 && p + PF_AHEAD < kc {
                            _mm_prefetch::<_MM_HINT_T0>(at.add(PF_AHEAD) as *const i8);
                        }
                        *ri = map(_mm256_loadu_ps(at));
                    }
                }
                transpose8(&mut r);
                for (q, rq) in r.iter().enumerate() {
                    // Column p + q goes to step p + q, or p + (q ^ 1) (p is even).
                    let to = p + if SWAP { q ^ 1 } else { q };
                    _mm256_storeu_ps(dst.add(to * R + g * 8), *rq);
                }
            }
            p += 8;
        }
        for i in 0..R {
            let at = if i < rows { row(i) } else { std::ptr::null() };
            for p in kv..kc {
                // The column packed at step p (kv is even: pairs stay inside the tail).
                let from = if SWAP && (p ^ 1) < kc { p ^ 1 } else { p };
                *dst.add(p * R + i) = if at.is_null() {
                    0.0
                } else {
                    _mm256_cvtss_f32(map(_mm256_set1_ps(*at.add(from))))
                };
            }
        }
    }
}

/// `C[MR × NR] (+)= Apanel · Bpanel` over `kc` steps, then either a plain store of the raw sums
/// (`epi = None`: more `k` blocks follow and continue from them) or the epilogue.
///
/// `accumulate`: start from the values in C (the sums of the previous `k` blocks) instead of
/// zero. A sum continued this way is the same chain of FMAs as one uninterrupted loop, so the
/// result does not depend on the `k` blocking.
///
/// # Safety
/// AVX2+FMA available; `a` readable for `kc·MR`, `b` for `kc·NR` elements; `c` valid for
/// reading/writing an `MR × NR` tile with row stride `ldc`; the epilogue pointers, when not
/// null, readable for `NR` (bias) and an `MR × NR` tile at stride `ldr` (residual).
#[target_feature(enable = "avx2,fma")]
unsafe fn kernel_6x16(
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
        let mut acc = [[_mm256_setzero_ps(); 2]; MR];
        if accumulate {
            load_tile!(acc, c, ldc, 8, _mm256_loadu_ps);
        } else {
            for i in 0..MR {
                _mm_prefetch::<_MM_HINT_T0>(c.add(i * ldc) as *const i8);
                _mm_prefetch::<_MM_HINT_T0>(c.add(i * ldc + 15) as *const i8);
            }
        }
        let (mut ap, mut bp) = (a, b);
        macro_rules! step {
            () => {{
                let b0 = _mm256_loadu_ps(bp);
                let b1 = _mm256_loadu_ps(bp.add(8));
                for (i, row) in acc.iter_mut().enumerate() {
                    let ai = _mm256_broadcast_ss(&*ap.add(i));
                    row[0] = _mm256_fmadd_ps(ai, b0, row[0]);
                    row[1] = _mm256_fmadd_ps(ai, b1, row[1]);
                }
                ap = ap.add(MR);
                bp = bp.add(NR);
            }};
        }
        // B is prefetched 8 steps ahead (one 64-byte line per 2 steps): it comes from L3 on
        // the first micro-panel of a panel, from L1 after. (Prefetching A from L2 as well
        // made no difference we could measure on the shared machine.)
        for _ in 0..kc / 4 {
            _mm_prefetch::<_MM_HINT_T0>(bp.add(NR * 8) as *const i8);
            step!();
            step!();
            _mm_prefetch::<_MM_HINT_T0>(bp.add(NR * 8) as *const i8);
            step!();
            step!();
        }
        for _ in 0..kc % 4 {
            step!();
        }
        store_tile!(
            acc,
            c,
            ldc,
            epi,
            8,
            _mm256_set1_ps,
            _mm256_setzero_ps,
            _mm256_loadu_ps,
            _mm256_storeu_ps,
            _mm256_fmadd_ps,
            _mm256_add_ps,
            _mm256_max_ps
        );
    }
}
