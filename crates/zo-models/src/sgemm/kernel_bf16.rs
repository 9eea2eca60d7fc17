//! The bf16-input micro-kernel of [`super`] (`model.compute = "bf16"`): A and W are rounded
//! to bfloat16 while they are packed, and the products accumulate in f32 with AVX512-BF16's
//! `vdpbf16ps` (Intel Cooper Lake / Sapphire Rapids and later, AMD Zen 4 and later).
//!
//! Packing: the reduction runs over *pairs* of `k`. Packed word `p` of a row holds
//! `(bf16(x[2p]), bf16(x[2p + 1]))` (low half, high half; a zero pads an odd `kc`), so a packed
//! A micro-panel is `⌈kc/2⌉ × MR` words and a B panel `⌈kc/2⌉ × 32`: half the bytes of the f32
//! panels. The rounding is `vcvtne2ps2bf16`'s (round to nearest even). Each step of the kernel
//! broadcasts one A word per row and issues `vdpbf16ps` against two 16-word vectors of B:
//! `acc += a₀·b₀ + a₁·b₁` per lane, twice the multiply-adds of an f32 FMA per instruction.
//!
//! Determinism: each element of C is one chain of `vdpbf16ps` over the pairs in order, from
//! block to block (raw f32 sums stored and reloaded as in the f32 kernels), so the result does
//! not depend on the blocking or the thread count. It is not the f32 result (the inputs are
//! rounded to 8 significant bits), and vendors round the pair sum inside `vdpbf16ps`
//! differently, so bf16 results are reproducible on one CPU family, not across Intel and AMD.
//!
//! Every function here is `unsafe` and requires AVX-512F, AVX512-BF16, AVX2 and FMA.

use std::arch::x86_64::*;

use super::driver::{Kernel, TileEpi};

/// Micro-tile columns: two 16-lane vectors of B per pair step.
const NR: usize = 32;

/// The bf16 kernel with `MR × 32` tiles; `WIDE`: for products wider than one `NC` block
/// ([`wide`]), in the driver's shared-A order.
///
/// The order and the groups were measured on Zen 4 (docs/BENCH.md round 27; `sgemm_bench
/// --cold-mb 300`, alternated in one process, three rounds, GFLOP per CPU-second): B panels in
/// L2-resident groups of 4 instead of panel-outer, 1.00–1.09× on each of the forward's
/// shapes; the shared-A order (A packed once, each task packing its own B panels, 2 at a
/// time) 1.05–1.09× on the 1024-row products 768 → 3072 and 768 → 50272 and 1.02–1.19× on
/// 400 × 768 → 3072, but 0.91–0.98× at 1024 rows where the output is one `NC` block
/// (768 → 768, 3072 → 768). The bits are the same in every order (the driver's contract).
pub(super) struct Avx512Bf16<const MR: usize, const WIDE: bool>;

/// Whether a product with `o` output columns takes [`Avx512Bf16`]'s `WIDE` order: more than
/// one `NC` block, which the default order packs A for once each.
pub(super) fn wide(o: usize) -> bool {
    o > <Avx512Bf16<12, false> as Kernel>::NC
}

impl<const MR: usize, const WIDE: bool> Kernel for Avx512Bf16<MR, WIDE> {
    const MR: usize = MR;
    const NR: usize = NR;
    /// In elements of `k`: 384 pairs, so a packed `KC × 32` B panel is 48 KB.
    const KC: usize = 768;
    const MC_MAX: usize = 96;
    const NC: usize = 2048;
    /// The packing writes whole words only inside `⌈kc/2⌉·MR ≤ kc·MR`.
    const A_SPILL: usize = 0;
    const PREFETCH_C: bool = false;
    const B_GROUP: usize = if WIDE { 2 } else { 4 };
    const SHARED_A_ROWS: usize = if WIDE { 1024 } else { 0 };

    unsafe fn pack_a(src: *const f32, ld: usize, rows: usize, kc: usize, dst: *mut f32) {
        // SAFETY: the trait's contract, which is `pack_pairs`'s.
        unsafe { pack_pairs::<MR>(src, ld, rows, kc, dst.cast::<u32>()) }
    }

    unsafe fn pack_b(src: *const f32, ld: usize, rows: usize, kc: usize, dst: *mut f32) {
        // SAFETY: as `pack_a`.
        unsafe { pack_pairs::<NR>(src, ld, rows, kc, dst.cast::<u32>()) }
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
        unsafe {
            kernel_mx32::<MR>(
                kc,
                a.cast::<u32>(),
                b.cast::<u32>(),
                c,
                ldc,
                accumulate,
                epi,
            )
        }
    }
}

/// How far ahead (in elements) [`pack_pairs`] prefetches each source row: two of its steps of
/// 32 elements, the two cache lines a step reads. Without it the packing stalled on the loads
/// of its 16 strided rows (`perf annotate`: the hot instructions were the row loads and the
/// conversions waiting on them), ≈ 8 % of a bf16 product's time. On Zen 5 (docs/BENCH.md
/// round 26; the forward's products of 1024 rows, alternated in one process, the weights read
/// from memory) 0.995–1.064× the GFLOP per CPU-second of no prefetch (median 1.026; the
/// 3072-deep fc2 level, the others 1.02–1.06); 128 ahead was no better.
const PF_AHEAD: usize = 64;

/// `dst[p·R + i] = (bf16(src[i·ld + 2p]), bf16(src[i·ld + 2p + 1]))` for `i < rows ≤ R` and
/// `p < ⌈kc/2⌉` (the element past `kc` is 0); zero words for `i ≥ rows`.
///
/// Per 16 rows and 32 elements: each row's 16 pair words ([`pairs16`]; zeros for a row past
/// `rows`), transposed 16 × 16 in registers ([`super::transpose16`]), so that each pair's words
/// of the 16 rows go out in one (masked) store instead of 16 scalar ones: the scattered stores
/// were 12 % of a bf16 forward's time on Zen 4 (docs/BENCH.md round 25). The words are the
/// same, only the order of the stores changed. Each row is prefetched [`PF_AHEAD`] elements
/// ahead of the step that reads it.
///
/// # Safety
/// AVX-512F + AVX512-BF16 available; `src` readable for rows `0 .. rows`, `kc` elements each at
/// stride `ld`; `dst` writable for `⌈kc/2⌉·R` words.
#[target_feature(enable = "avx512f,avx512bf16")]
unsafe fn pack_pairs<const R: usize>(
    src: *const f32,
    ld: usize,
    rows: usize,
    kc: usize,
    dst: *mut u32,
) {
    let pairs = kc.div_ceil(2);
    // SAFETY (whole body): loads are masked to the `kc` elements of a row below `rows` (the
    // prefetches, which cannot fault, start inside them); each store writes lanes
    // `g·16 .. g·16 + lanes ≤ R` of a pair `p0 + q < pairs`.
    unsafe {
        for g in 0..R.div_ceil(16) {
            let lanes = (R - g * 16).min(16);
            let mask: __mmask16 = if lanes == 16 { !0 } else { (1u16 << lanes) - 1 };
            let mut e = 0;
            while e < kc {
                let mut words = [_mm512_setzero_si512(); 16];
                if e + PF_AHEAD < kc {
                    for i in g * 16..rows.min(g * 16 + 16) {
                        let ahead = src.add(i * ld + e + PF_AHEAD);
                        _mm_prefetch::<_MM_HINT_T0>(ahead.cast());
                        _mm_prefetch::<_MM_HINT_T0>(ahead.wrapping_add(16).cast());
                    }
                }
                for (j, w) in words.iter_mut().enumerate() {
                    let i = g * 16 + j;
                    if i < rows {
                        *w = pairs16(src.add(i * ld), e, kc);
                    }
                }
                let cols = super::transpose16(&words);
                let p0 = e / 2;
                for (q, col) in cols.iter().enumerate().take((pairs - p0).min(16)) {
                    _mm512_mask_storeu_epi32(dst.add((p0 + q) * R + g * 16).cast(), mask, *col);
                }
                e += 32;
            }
        }
    }
}

/// The 16 pair words of `row[e .. e + 32]` (zeros past `kc`) into `out`.
///
/// # Safety
/// AVX-512F + AVX512-BF16 available; `row` readable for `kc` elements.
#[inline]
#[target_feature(enable = "avx512f,avx512bf16")]
pub(super) unsafe fn pairs16(row: *const f32, e: usize, kc: usize) -> __m512i {
    let left = kc - e;
    let m_lo: __mmask16 = if left >= 16 { !0 } else { (1u16 << left) - 1 };
    let m_hi: __mmask16 = if left >= 32 {
        !0
    } else if left > 16 {
        (1u16 << (left - 16)) - 1
    } else {
        0
    };
    // SAFETY: masked loads touch only the `kc` elements of the row.
    unsafe {
        let lo = _mm512_maskz_loadu_ps(m_lo, row.add(e));
        let hi = _mm512_maskz_loadu_ps(m_hi, row.add(e + 16));
        std::mem::transmute::<__m512bh, __m512i>(_mm512_cvtne2ps_pbh(hi, lo))
    }
}

/// `C[MR × 32] (+)= Apanel · Bpanel` over `⌈kc/2⌉` pair steps, then a plain store of the raw
/// sums (`epi = None`) or the epilogue, as the f32 AVX-512 kernel.
///
/// # Safety
/// AVX-512F+AVX512-BF16+AVX2+FMA available; `a` readable for `⌈kc/2⌉·MR`, `b` for `⌈kc/2⌉·32`
/// words; `c` valid for writing (and, when `accumulate`, reading) an `MR × 32` tile with row
/// stride `ldc`; the epilogue pointers as in the f32 kernels.
#[target_feature(enable = "avx512f,avx512bf16,avx2,fma")]
unsafe fn kernel_mx32<const MR: usize>(
    kc: usize,
    a: *const u32,
    b: *const u32,
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
        }
        let (mut ap, mut bp) = (a, b);
        for _ in 0..kc.div_ceil(2) {
            _mm_prefetch::<_MM_HINT_T0>(bp.add(NR * 4) as *const i8);
            let b0: __m512bh = std::mem::transmute(_mm512_loadu_si512(bp.cast()));
            let b1: __m512bh = std::mem::transmute(_mm512_loadu_si512(bp.add(16).cast()));
            for (i, row) in acc.iter_mut().enumerate() {
                let ai: __m512bh = std::mem::transmute(_mm512_set1_epi32(*ap.add(i) as i32));
                row[0] = _mm512_dpbf16_ps(row[0], ai, b0);
                row[1] = _mm512_dpbf16_ps(row[1], ai, b1);
            }
            ap = ap.add(MR);
            bp = bp.add(NR);
        }
        store_tile_zmm!(acc, c, ldc, epi);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The word of a pair as the packing's contract states it: round to nearest even, the
    /// first element in the low half.
    fn word(x0: f32, x1: f32) -> u32 {
        let b = |x: f32| u32::from(half::bf16::from_f32(x).to_bits());
        b(x0) | (b(x1) << 16)
    }

    fn check<const R: usize>(rows: usize, kc: usize, ld: usize) {
        let src: Vec<f32> = (0..rows * ld)
            .map(|i| ((i * 7919 % 2003) as f32 - 1001.0) / 317.0)
            .collect();
        let pairs = kc.div_ceil(2);
        let mut got = vec![0xDEAD_BEEFu32; pairs * R + 16];
        // SAFETY: AVX512-BF16 checked by the caller; `src` holds `rows` rows of `ld ≥ kc`,
        // `got` `pairs·R` words (and a canary past them).
        unsafe { pack_pairs::<R>(src.as_ptr(), ld, rows, kc, got.as_mut_ptr()) };
        for p in 0..pairs {
            for i in 0..R {
                let want = if i < rows {
                    let x = |e: usize| if e < kc { src[i * ld + e] } else { 0.0 };
                    word(x(2 * p), x(2 * p + 1))
                } else {
                    0
                };
                assert_eq!(
                    got[p * R + i],
                    want,
                    "R {R} rows {rows} kc {kc}: pair {p} row {i}"
                );
            }
        }
        assert!(
            got[pairs * R..].iter().all(|&w| w == 0xDEAD_BEEF),
            "wrote past the panel"
        );
    }

    /// The packed words, odd `kc` and rows below `R` included, for the A (12) and B (32)
    /// panels.
    #[test]
    fn pack_pairs_writes_the_pair_words() {
        if !(is_x86_feature_detected!("avx512f") && is_x86_feature_detected!("avx512bf16")) {
            return;
        }
        for kc in [1, 2, 3, 31, 32, 33, 64, 77, 768] {
            for rows in [1, 5, 12] {
                check::<12>(rows, kc, kc + 3);
            }
            for rows in [1, 16, 17, 31, 32] {
                check::<32>(rows, kc, kc);
            }
        }
    }
}
