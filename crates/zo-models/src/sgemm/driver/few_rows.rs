//! Products with few rows (`n ≤` [`MAX_ROWS`]: the task head's 16 rows over the vocabulary,
//! a decoding step's one row per sequence, a candidate's continuation after its cached
//! prompt) on the f32 AVX-512F FMAs, in the other orientation: W is read in place and
//! broadcast, the rows of A go in the vector lanes. [`run_avx2`] does the same on the AVX2
//! kernel (`n ≤` [`MAX_ROWS_AVX2`]) with tiles of 6 columns × 16 rows in 8-lane vectors.
//!
//! With few rows each weight serves few FMAs, and the packed order pays for it: W's rows are
//! read from memory, transposed into panels, written and read again (at ≈ 7 GB/s per thread,
//! docs/BENCH.md round 20), and its 12-row micro-tiles waste lanes (16 rows are a 12-row tile
//! and a 12-row tile holding 4). Here a tile is 16 rows of W (16 columns of C) × 16 or 32 rows
//! of A: A is packed once per product, transposed (`k` steps of 16 lanes per group of 16
//! rows), and at step `p` each accumulator (one per row of W and group) takes
//! `fma(broadcast(W[j, p]), A[·, p], acc)`. W is read straight from its rows, once per pair of
//! groups, with no packing; the tile's 16 × 16 blocks are transposed in registers and stored
//! row by row through the epilogue.
//!
//! Each element of C is the same in-order chain `fma(a[i, p], w[j, p], acc)` over
//! `p = 0 .. k` from `+0.0`, followed by the same epilogue operations, as in every other
//! kernel ([`super::Kernel`]'s contract; the product is exact inside the FMA, so which operand
//! is broadcast changes nothing): the bits are the packed order's for any `n`, thread count
//! and slice of rows (tested).
//!
//! Measured on the 2-core Emerald Rapids Xeon (`examples/sgemm_bench.rs`, GFLOP/s on 2
//! threads against the packed order, docs/BENCH.md round 21): 16×768→4096 (a task-head slice)
//! 82 → 187 with W in cache and 74 → 111 with W from memory (`--cold-mb 600`), 16×768→768
//! 73 → 155, 32×768→3072 139 → 225, 128×768→3072 173 → 271; level from ≈ 192 rows to 1024,
//! hence [`MAX_ROWS`] = 128. Greedy decoding's steps (one row per sequence) took 0.54–0.71 of
//! their time.
//!
//! With at most [`MAX_ROWS_WIDE`] rows (a decoding step of one to eight sequences, an option's
//! few tokens after its cached prompt), [`run_wide`] turns the tile around once more: 16 rows
//! of W are loaded a line each, transposed in registers, and W's rows go in the lanes, so a
//! weight costs `n/16` of an FMA instead of a broadcast and an FMA on mostly idle lanes. The
//! chains, and so the bits, are the same.

use std::arch::x86_64::*;
use std::cell::RefCell;
use std::mem::MaybeUninit;

use rayon::prelude::*;

use super::super::kernel_amx;
use super::super::kernel_avx2::pack;
use super::super::{finish, Epilogue};
use super::{with_buf, OutPtr, Weights};

/// Products with at most this many rows take this order (where the f32 kernel is AVX-512F;
/// measured level with the packed order from ≈ 192 rows up: see the module docs).
pub(in crate::sgemm) const MAX_ROWS: usize = 128;

/// The same for the AVX2 kernel ([`run_avx2`]): measured on the Emerald Rapids Xeon with the
/// AVX2 kernels forced, 1.3–1.9× the packed order up to 64 rows, level at 128 and 192
/// (docs/BENCH.md round 21); not measured on an AVX2-only CPU (Zen 3).
pub(in crate::sgemm) const MAX_ROWS_AVX2: usize = 64;

/// Rows of A (lanes) and of W (accumulators) per tile.
const T: usize = 16;

thread_local! {
    /// A transposed: `⌈n/16⌉` groups of `k` steps of 16 lanes.
    static AT_BUF: RefCell<Vec<f32>> = const { RefCell::new(Vec::new()) };
}

/// The epilogue of one tile: `max?(scale·acc + bias[j] + res[i, j], 0)`, as
/// [`super::super::finish`].
struct Epi {
    scale: f32,
    /// The tile's first column of the pre-scaled bias, or null.
    bias: *const f32,
    /// The tile's first element of the residual (row stride `ldc`), or null.
    res: *const f32,
    relu: bool,
}

/// In-register transpose of a 16 × 16 tile: `r[i]` lane `j` goes to `r[j]` lane `i`
/// ([`kernel_amx::transpose16`]'s, on floats).
#[inline]
#[target_feature(enable = "avx512f")]
fn transpose16(r: &mut [__m512; 16]) {
    let t = kernel_amx::transpose16(&r.map(|x| _mm512_castps_si512(x)));
    *r = t.map(|x| _mm512_castsi512_ps(x));
}

/// `C[rows × cols] = epi(A · Wᵀ)` for one tile and `G` groups of 16 rows of A: `at` is A's
/// groups transposed (`k` steps of 16 lanes each, `16·k` floats apart), `w0` the tile's first
/// row of W (stride `k`), `c` the tile's first element of C (stride `ldc`). The 16 rows of W
/// are taken 8 at a time: 8 row pointers stay in registers; with 16, the compiler reloaded
/// them from the stack, a load per FMA, and the kernel ran at about half the FMA rate (97
/// GFLOP/s on one thread with W in L2, 16×768→240). With `PF`, the `16·k` floats from `next` (the next tile's rows, which may lie
/// past W: a prefetch does not fault) are prefetched into L2 along the way.
///
/// # Safety
/// AVX-512F available; `at` readable for `G·16·k` floats; rows `0 .. cols` of W readable for
/// `k` floats each from `w0`; `c` writable (and the epilogue's pointers readable) for `rows`
/// rows of `cols ≤ 16` floats at stride `ldc`; `k > 0`, `1 ≤ cols ≤ 16`,
/// `16·(G − 1) < rows ≤ 16·G`.
#[target_feature(enable = "avx512f,avx2,fma")]
#[allow(clippy::too_many_arguments)]
unsafe fn tile<const G: usize, const PF: bool>(
    k: usize,
    at: *const f32,
    w0: *const f32,
    next: *const f32,
    cols: usize,
    c: *mut f32,
    ldc: usize,
    rows: usize,
    epi: &Epi,
) {
    // SAFETY (whole body): every offset stays inside the extents listed above; the columns
    // past `cols` read row `cols − 1` again and are not stored.
    unsafe {
        let mut acc = [[_mm512_setzero_ps(); T]; G];
        for half in 0..2 {
            let rp: [*const f32; 8] =
                std::array::from_fn(|q| w0.add((8 * half + q).min(cols - 1) * k));
            let mut h = [[_mm512_setzero_ps(); 8]; G];
            macro_rules! step {
                ($p:expr) => {{
                    let b: [__m512; G] =
                        std::array::from_fn(|g| _mm512_loadu_ps(at.add(g * T * k + $p * T)));
                    for (q, &r) in rp.iter().enumerate() {
                        let x = _mm512_set1_ps(*r.add($p));
                        for g in 0..G {
                            h[g][q] = _mm512_fmadd_ps(x, b[g], h[g][q]);
                        }
                    }
                }};
            }
            let mut p = 0;
            // The next tile's 16 rows (`16·k` floats, contiguous) are prefetched while this
            // one computes: two lines per 4 steps cover them over the two halves.
            let mut pf = next.wrapping_add(half * 8 * k);
            while p + 4 <= k {
                if PF {
                    _mm_prefetch::<_MM_HINT_T1>(pf as *const i8);
                    _mm_prefetch::<_MM_HINT_T1>(pf.wrapping_add(16) as *const i8);
                    pf = pf.wrapping_add(32);
                }
                step!(p);
                step!(p + 1);
                step!(p + 2);
                step!(p + 3);
                p += 4;
            }
            while p < k {
                step!(p);
                p += 1;
            }
            for g in 0..G {
                acc[g][8 * half..8 * half + 8].copy_from_slice(&h[g]);
            }
        }
        let mask: __mmask16 = ((1u32 << cols) - 1) as __mmask16;
        let s = _mm512_set1_ps(epi.scale);
        let zero = _mm512_setzero_ps();
        let bias = if epi.bias.is_null() {
            zero
        } else {
            _mm512_maskz_loadu_ps(mask, epi.bias)
        };
        for (g, a) in acc.iter_mut().enumerate() {
            transpose16(a);
            for (i, &x) in a.iter().enumerate().take(rows - g * T) {
                let r = g * T + i;
                let mut y = _mm512_fmadd_ps(x, s, bias);
                if !epi.res.is_null() {
                    y = _mm512_add_ps(y, _mm512_maskz_loadu_ps(mask, epi.res.add(r * ldc)));
                }
                if epi.relu {
                    y = _mm512_max_ps(y, zero);
                }
                _mm512_mask_storeu_ps(c.add(r * ldc), mask, y);
            }
        }
    }
}

/// Products with at most this many rows take [`run_wide`] (on AVX-512F), see [`wide`].
pub(in crate::sgemm) const MAX_ROWS_WIDE: usize = 8;

/// Whether an `n`-row product with `k`-long rows takes [`run_wide`]: up to 4 rows, and up to
/// [`MAX_ROWS_WIDE`] where `k ≤ 1024`. Measured on the Emerald Rapids Xeon, weights from
/// memory, 2 threads, GB/s of W against [`run`] (docs/BENCH.md round 24): 1.26–1.56× with
/// one row, 1.07–1.45× with two, 1.06–1.31× with four; with eight, 1.11–1.27× where
/// `k = 768` but 0.94× where `k = 3072`.
pub(in crate::sgemm) fn wide(n: usize, k: usize) -> bool {
    n <= 4 || (n <= MAX_ROWS_WIDE && k <= 1024)
}

/// Columns of C (rows of W) per tile of [`run_wide`]: two blocks of 16 lanes.
const TW: usize = 32;

/// W's storage in [`run_wide`]: f32, or bf16 / f16 weights widened in registers (exactly;
/// the FMA chains, and so the bits, are those of the widened f32 weights).
pub(in crate::sgemm) const W_F32: u8 = 0;
pub(in crate::sgemm) const W_BF16: u8 = 1;
pub(in crate::sgemm) const W_F16: u8 = 2;

const fn w_bytes(kind: u8) -> usize {
    if kind == W_F32 {
        4
    } else {
        2
    }
}

/// Elements `p0 .. p0 + len` (`len ≤ 16`) of the W row at `row` (kind `WK`) as the bits of
/// 16 f32 lanes, zeros past `len`; `m` has the low `len` bits set.
///
/// # Safety
/// AVX-512F available; the elements are readable.
#[inline]
#[target_feature(enable = "avx512f,avx2,fma")]
unsafe fn load_w<const WK: u8>(row: *const u8, p0: usize, len: usize, m: __mmask16) -> __m512i {
    // SAFETY: the caller's contract; 16-bit tails are copied out element by element.
    unsafe {
        if WK == W_F32 {
            return _mm512_castps_si512(_mm512_maskz_loadu_ps(m, row.cast::<f32>().add(p0)));
        }
        let p = row.cast::<u16>().add(p0);
        let h = if len == T {
            _mm256_loadu_si256(p.cast())
        } else {
            let mut tail = [0u16; T];
            std::ptr::copy_nonoverlapping(p, tail.as_mut_ptr(), len);
            _mm256_loadu_si256(tail.as_ptr().cast())
        };
        if WK == W_BF16 {
            _mm512_slli_epi32::<16>(_mm512_cvtepu16_epi32(h))
        } else {
            _mm512_castps_si512(_mm512_cvtph_ps(h))
        }
    }
}

/// The tile of [`run_wide`]: `C[R × cols] = epi(A · Wᵀ)` for `R` rows of A (read in place,
/// stride `k`) and `cols ≤ 16·B` rows of W from `w0` (stride `k`). Per 16 steps of `k`, each
/// block of 16 rows of W is loaded (a line per row), transposed in registers (lane `q` of
/// vector `x` = `W[q, p0 + x]`) and takes `fma(broadcast(A[i, p]), ·, acc[i])` for `p` in
/// order: every element's chain is the in-order one of every kernel. With `PF`, the next
/// tile's rows (from `next`, possibly past W: a prefetch does not fault) are prefetched
/// into L2 at the same offset, one tile ahead.
///
/// # Safety
/// AVX-512F available; `a` readable for `R` rows of `k` floats; rows `0 .. cols` of W
/// readable for `k` floats each from `w0`; `c` writable (and the epilogue's pointers
/// readable) for `R` rows of `cols` floats at stride `ldc`; `k > 0`, `1 ≤ cols ≤ 16·B`,
/// `B ≤ 2`.
#[target_feature(enable = "avx512f,avx2,fma")]
#[allow(clippy::too_many_arguments)]
unsafe fn tile_wide<const R: usize, const B: usize, const PF: bool, const WK: u8>(
    k: usize,
    a: *const f32,
    w0: *const u8,
    next: *const u8,
    cols: usize,
    c: *mut f32,
    ldc: usize,
    epi: &Epi,
) {
    // SAFETY (whole body): every offset stays inside the extents listed above; the columns
    // past `cols` read row `cols − 1` again and are not stored; the loads past `k` are masked
    // (or, for 16-bit W, copied out element by element).
    unsafe {
        let blocks = cols.div_ceil(T);
        let eb = w_bytes(WK);
        let rp: [*const u8; TW] = std::array::from_fn(|q| w0.add(q.min(cols - 1) * k * eb));
        let mut acc = [[_mm512_setzero_ps(); R]; B];
        let mut p0 = 0;
        while p0 < k {
            let len = (k - p0).min(T);
            let m = (u32::MAX >> (32 - len)) as __mmask16;
            for (bl, acc) in acc.iter_mut().enumerate().take(blocks) {
                let r: [__m512i; T] =
                    std::array::from_fn(|q| load_w::<WK>(rp[bl * T + q], p0, len, m));
                if PF {
                    for q in 0..T {
                        let pf = next.wrapping_add(((bl * T + q) * k + p0) * eb);
                        _mm_prefetch::<_MM_HINT_T1>(pf as *const i8);
                    }
                }
                let t = kernel_amx::transpose16(&r);
                macro_rules! step {
                    ($x:expr, $col:expr) => {{
                        let col = _mm512_castsi512_ps($col);
                        for (i, acc) in acc.iter_mut().enumerate() {
                            let x = _mm512_set1_ps(*a.add(i * k + p0 + $x));
                            *acc = _mm512_fmadd_ps(x, col, *acc);
                        }
                    }};
                }
                // A whole block is unrolled; the last one, shorter, is not.
                if len == T {
                    for (x, &col) in t.iter().enumerate() {
                        step!(x, col);
                    }
                } else {
                    for (x, &col) in t.iter().enumerate().take(len) {
                        step!(x, col);
                    }
                }
            }
            p0 += T;
        }
        let s = _mm512_set1_ps(epi.scale);
        let zero = _mm512_setzero_ps();
        for (bl, acc) in acc.iter().enumerate().take(blocks) {
            let n = (cols - bl * T).min(T);
            let mask = (u32::MAX >> (32 - n)) as __mmask16;
            let j = bl * T;
            let bias = if epi.bias.is_null() {
                zero
            } else {
                _mm512_maskz_loadu_ps(mask, epi.bias.add(j))
            };
            for (i, &x) in acc.iter().enumerate() {
                let mut y = _mm512_fmadd_ps(x, s, bias);
                if !epi.res.is_null() {
                    y = _mm512_add_ps(y, _mm512_maskz_loadu_ps(mask, epi.res.add(i * ldc + j)));
                }
                if epi.relu {
                    y = _mm512_max_ps(y, zero);
                }
                _mm512_mask_storeu_ps(c.add(i * ldc + j), mask, y);
            }
        }
    }
}

/// Columns per tile of [`run_wide`] for `n` rows with `k`-long rows: 32 (two blocks of 16
/// lanes, 8 accumulators) up to 4 rows, else 16 (the 16 transposed vectors and 8 accumulators
/// fill 24 of the 32 registers); and 16 where `k > 1024` on a CPU without the larger L2
/// (`kernel_avx512::big_l2`, AMD Zen 4). A tile streams its W rows from memory side by side,
/// `k` apart: on Zen 4, 32 such streams ran at 12–16 GB/s where 16 ran at 21–25 (rows of
/// 3072 weights, 1–4 rows of A, 2 threads; docs/BENCH.md round 25). The Emerald Rapids Xeon
/// (2 MB L2), where the 32-column tile was measured (round 24), keeps it.
pub(in crate::sgemm) fn wide_tile_cols(n: usize, k: usize, big_l2: bool) -> usize {
    if n <= 4 && (k <= 1024 || big_l2) {
        TW
    } else {
        T
    }
}

/// The few-row order for at most [`MAX_ROWS_WIDE`] rows (a decoding step of one to eight
/// sequences; [`wide`] says where it runs): [`run`]'s tiles put A's rows in the lanes, so
/// with one row 15 of 16 lanes are idle and every weight costs an FMA and a broadcast; here
/// W's rows go in the lanes (transposed 16 × 16 in registers: 64 shuffles per 256 weights)
/// and each weight costs `1/16` of an FMA per row of A, with the same in-order chains, so the
/// same bits. A is read in place. Tiles of `tw` columns ([`wide_tile_cols`] picks them).
///
/// # Safety
/// As [`run`], with `n ≤` [`MAX_ROWS_WIDE`]; `tw` 16 or 32, and 16 where `n > 4`.
#[allow(clippy::too_many_arguments)]
pub(in crate::sgemm) unsafe fn run_wide<E: Sync, const WK: u8>(
    tw: usize,
    n: usize,
    o: usize,
    k: usize,
    a: &[f32],
    w: &[E],
    c: &mut [MaybeUninit<f32>],
    epi: &Epilogue<'_>,
    bias_scaled: Option<&[f32]>,
) {
    assert_eq!(
        size_of::<E>(),
        w_bytes(WK),
        "run_wide: W's element size is not its kind's"
    );
    assert!(
        tw == T || (tw == TW && n <= 4),
        "run_wide: {tw} columns for {n} rows"
    );
    let out = OutPtr(c.as_mut_ptr().cast::<f32>());
    // The next tile's rows are prefetched where they are short, as in [`run`]: with
    // k = 3072 it measured level or slower.
    let prefetch = k <= 1024;
    deal_tiles(o.div_ceil(tw), |tl| {
        let j0 = tl * tw;
        let e = Epi {
            scale: epi.scale,
            bias: bias_scaled.map_or(std::ptr::null(), |b| b[j0..].as_ptr()),
            res: epi.residual.map_or(std::ptr::null(), |r| r[j0..].as_ptr()),
            relu: epi.relu,
        };
        let w0 = w[j0 * k..].as_ptr().cast::<u8>();
        let next = w0.wrapping_add(tw * k * size_of::<E>());
        let c0 = out.get().wrapping_add(j0);
        let cols = tw.min(o - j0);
        let a = a.as_ptr();
        // SAFETY: rows `j0 .. j0 + cols` of W, the `n` rows of A, and columns
        // `j0 .. j0 + cols` of C (and of the residual) are in bounds and written by this
        // tile only; the features are the caller's.
        unsafe {
            macro_rules! tile {
                ($($r:literal, $b:literal);*) => {
                    match (n, prefetch) {
                        $(
                            ($r, true) => tile_wide::<$r, $b, true, WK>(k, a, w0, next, cols, c0, o, &e),
                            ($r, false) => tile_wide::<$r, $b, false, WK>(k, a, w0, next, cols, c0, o, &e),
                        )*
                        _ => unreachable!("run_wide takes at most {MAX_ROWS_WIDE} rows"),
                    }
                };
            }
            if tw == T {
                tile!(1, 1; 2, 1; 3, 1; 4, 1; 5, 1; 6, 1; 7, 1; 8, 1)
            } else {
                tile!(1, 2; 2, 2; 3, 2; 4, 2)
            }
        }
    });
}

/// Packs A's rows `L·g .. L·g + L` transposed into group `g` of `at` (`L` lanes per group).
///
/// # Safety
/// AVX2 and FMA available; `a` is `[n, k]`; `at` holds `⌈n/L⌉·L·k` floats.
#[target_feature(enable = "avx2,fma")]
unsafe fn pack_at<const L: usize>(n: usize, k: usize, a: &[f32], at: &mut [f32]) {
    for g in 0..n.div_ceil(L) {
        let rows = L.min(n - g * L);
        // SAFETY: rows `L·g .. L·g + rows` of `a` are in bounds; group `g` holds `L·k` floats
        // (`pack::<L>` writes no spill for `L` a multiple of 8).
        unsafe {
            pack::<L>(
                a.as_ptr().add(g * L * k),
                k,
                rows,
                k,
                at.as_mut_ptr().add(g * L * k),
            )
        };
    }
}

/// Columns of C (rows of W) per tile of the AVX2 order: 6 row pointers, and `6 × 2`
/// accumulators of 8 lanes with the two A vectors and a broadcast fill the 16 `ymm`.
const T2: usize = 6;

/// The AVX2 tile: raw sums `out[q][8g + i] = Σ_p W[j0 + q, p]·A[8g + i, p]` (the chain of
/// every kernel, in order) for `q < 6` and `G` groups of 8 rows of A; `at` is A's groups transposed (`k` steps
/// of 8 lanes, `8·k` floats apart), `w0` the tile's first row of W (stride `k`).
///
/// # Safety
/// AVX2 and FMA available; `at` readable for `G·8·k` floats; rows `0 .. cols` of W readable
/// for `k` floats each from `w0`; `k > 0`, `1 ≤ cols ≤ 6`.
#[target_feature(enable = "avx2,fma")]
unsafe fn tile_avx2<const G: usize>(
    k: usize,
    at: *const f32,
    w0: *const f32,
    cols: usize,
    out: &mut [[f32; 16]; T2],
) {
    // SAFETY (whole body): every offset stays inside the extents listed above; the rows past
    // `cols` read row `cols − 1` again and are not stored.
    unsafe {
        let rp: [*const f32; T2] = std::array::from_fn(|q| w0.add(q.min(cols - 1) * k));
        let mut acc = [[_mm256_setzero_ps(); G]; T2];
        macro_rules! step {
            ($p:expr) => {{
                let b: [__m256; G] =
                    std::array::from_fn(|g| _mm256_loadu_ps(at.add(g * 8 * k + $p * 8)));
                for (row, &r) in acc.iter_mut().zip(&rp) {
                    let x = _mm256_set1_ps(*r.add($p));
                    for g in 0..G {
                        row[g] = _mm256_fmadd_ps(x, b[g], row[g]);
                    }
                }
            }};
        }
        let mut p = 0;
        while p + 4 <= k {
            step!(p);
            step!(p + 1);
            step!(p + 2);
            step!(p + 3);
            p += 4;
        }
        while p < k {
            step!(p);
            p += 1;
        }
        for (o, row) in out.iter_mut().zip(&acc) {
            for (g, &v) in row.iter().enumerate() {
                _mm256_storeu_ps(o[8 * g..].as_mut_ptr(), v);
            }
        }
    }
}

/// The few-row order on the AVX2 kernel (see [`run`]): tiles of 6 columns of C × 16 rows of A
/// (two groups of 8 lanes), the epilogue applied by [`finish`] on the stored sums.
///
/// # Safety
/// AVX2 and FMA available; shapes as [`run`]'s.
#[allow(clippy::too_many_arguments)]
pub(in crate::sgemm) unsafe fn run_avx2<W: Weights + ?Sized>(
    n: usize,
    o: usize,
    k: usize,
    a: &[f32],
    w: &W,
    c: &mut [MaybeUninit<f32>],
    epi: &Epilogue<'_>,
    bias_scaled: Option<&[f32]>,
) {
    const L: usize = 8;
    let out = OutPtr(c.as_mut_ptr().cast::<f32>());
    // SAFETY: the caller's contract, which is `for_each_tile`'s.
    unsafe {
        for_each_tile::<L>(n, o, k, a, T2, |job| {
            let mut sums = [[0f32; 16]; T2];
            // SAFETY: rows `j0 .. j0 + cols` of W (`w0`: `cols` rows of `k` floats) and the
            // job's groups of `at` are in bounds; the features are the caller's.
            w.rows(k, job.j0, job.cols, |w0, _| {
                if job.two {
                    tile_avx2::<2>(k, job.at, w0, job.cols, &mut sums);
                } else {
                    tile_avx2::<1>(k, job.at, w0, job.cols, &mut sums);
                }
            });
            for (q, col) in sums.iter().enumerate().take(job.cols) {
                for (r, &v) in col.iter().enumerate().take(job.rows) {
                    let (i, j) = (job.i0 + r, job.j0 + q);
                    // SAFETY: `(i, j)` is inside C, written by this job only (`for_each_tile`).
                    *out.get().add(i * o + j) = finish(v, epi, bias_scaled, i, j, o);
                }
            }
        });
    }
}

/// One job of [`for_each_tile`]: columns `j0 .. j0 + cols` of C (rows of W) × rows
/// `i0 .. i0 + rows` of A, one group of `L` rows or two (`two`), whose transposed rows start
/// at `at`.
struct Job {
    j0: usize,
    cols: usize,
    i0: usize,
    rows: usize,
    two: bool,
    at: *const f32,
}

/// Calls `f` for every tile index `0 .. tiles`, in about 8 rayon tasks per thread of
/// consecutive tiles (work stealing evens out the rest).
fn deal_tiles(tiles: usize, f: impl Fn(usize) + Sync) {
    let per_task = tiles
        .div_ceil(8 * rayon::current_num_threads().max(1))
        .max(1);
    (0..tiles.div_ceil(per_task)).into_par_iter().for_each(|t| {
        for tl in t * per_task..((t + 1) * per_task).min(tiles) {
            f(tl);
        }
    });
}

/// The frame both few-row kernels share: packs A transposed into groups of `L` lanes (in the
/// thread's reusable buffer), then calls `job` for every tile of `tc` columns of C and every
/// pair of groups (the last group alone when their number is odd: each W row is read once per
/// pair), the tiles dealt out by [`deal_tiles`]. Jobs cover C once, in disjoint blocks.
///
/// # Safety
/// AVX2 and FMA available; `a: [n, k]`; `n, o, k > 0`; `L` a multiple of 8.
unsafe fn for_each_tile<const L: usize>(
    n: usize,
    o: usize,
    k: usize,
    a: &[f32],
    tc: usize,
    job: impl Fn(Job) + Sync,
) {
    let groups = n.div_ceil(L);
    with_buf(&AT_BUF, groups * L * k, |at| {
        // SAFETY: the caller's contract; `at` holds `groups·L·k` floats.
        unsafe { pack_at::<L>(n, k, a, at) };
        let at = &*at;
        let tiles = o.div_ceil(tc);
        deal_tiles(tiles, |tl| {
            let j0 = tl * tc;
            let mut g = 0;
            while g < groups {
                let two = g + 1 < groups;
                let i0 = g * L;
                job(Job {
                    j0,
                    cols: tc.min(o - j0),
                    i0,
                    rows: (if two { 2 * L } else { L }).min(n - i0),
                    two,
                    at: at[g * L * k..].as_ptr(),
                });
                g += if two { 2 } else { 1 };
            }
        });
    });
}

/// `c[n × o] = epilogue(a[n × k] · wᵀ)` in the few-row order; `bias_scaled` is the bias times
/// the epilogue's scale. `c` is fully initialised when this returns.
///
/// # Safety
/// AVX-512F, AVX2 and FMA available; `a: [n, k]`, `w: [o, k]`, `c: [n, o]`, bias `[o]` and
/// residual `[n, o]`; `n, o, k > 0`.
#[allow(clippy::too_many_arguments)]
pub(in crate::sgemm) unsafe fn run<W: Weights + ?Sized>(
    n: usize,
    o: usize,
    k: usize,
    a: &[f32],
    w: &W,
    c: &mut [MaybeUninit<f32>],
    epi: &Epilogue<'_>,
    bias_scaled: Option<&[f32]>,
) {
    // Prefetching the next tile's rows paid where they are short (k = 768: one task-head
    // slice 16×768→4096 at 88–97 → 98–116 GFLOP/s, W from memory) and there is one pair of
    // groups; with k = 3072 (16×3072→768: 110–121 → 93–106) and 64 rows (220–232 → 189–227)
    // it cost (docs/BENCH.md round 21).
    let prefetch = k <= 1024 && n <= 2 * T;
    let out = OutPtr(c.as_mut_ptr().cast::<f32>());
    // SAFETY: the caller's contract, which is `for_each_tile`'s.
    unsafe {
        for_each_tile::<T>(n, o, k, a, T, |job| {
            let (j0, i0) = (job.j0, job.i0);
            let e = Epi {
                scale: epi.scale,
                bias: bias_scaled.map_or(std::ptr::null(), |b| b[j0..].as_ptr()),
                res: epi
                    .residual
                    .map_or(std::ptr::null(), |r| r[i0 * o + j0..].as_ptr()),
                relu: epi.relu,
            };
            let c0 = out.get().wrapping_add(i0 * o + j0);
            let (at, cols, rows) = (job.at, job.cols, job.rows);
            // SAFETY: rows `j0 .. j0 + cols` of W (`w0`: `cols` rows of `k` floats), the job's
            // groups of `at`, rows `i0 .. i0 + rows` and columns `j0 .. j0 + cols` of C (and of
            // the residual) are in bounds and written by this job only; the features are the
            // caller's. The next tile's rows are prefetched only from W itself.
            w.rows(k, j0, cols, |w0, in_w| {
                let next = w0.wrapping_add(T * k);
                match (job.two, prefetch && in_w) {
                    (true, true) => tile::<2, true>(k, at, w0, next, cols, c0, o, rows, &e),
                    (true, false) => tile::<2, false>(k, at, w0, next, cols, c0, o, rows, &e),
                    (false, true) => tile::<1, true>(k, at, w0, next, cols, c0, o, rows, &e),
                    (false, false) => tile::<1, false>(k, at, w0, next, cols, c0, o, rows, &e),
                }
            });
        });
    }
}
