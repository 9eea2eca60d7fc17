//! The two small products of one (sequence, head) of attention, `S = mask + Q Kᵀ` and
//! `O = P V` (`t × t` and `t × d`, with `d` = 64 in every OPT size up to 1.3b, 80 in 2.7b),
//! register-tiled for the CPU this runs on.
//!
//! Why not a GEMM library: there are `B·heads` of these pairs per layer (2 304 per opt-125m
//! forward at B=16), each about 0.5 MFLOP, and a general GEMM's packing and dispatch cost more
//! than the arithmetic at that size. Measured on the AVX-512 machine (2026-11-23, `perf record`
//! of `zo bench --figure b1`): the `gemm` crate's calls took 26 % of the forward's samples for
//! 1 % of its FLOPs.
//!
//! Tiles are `R × L` accumulated in local arrays, which the compiler keeps in vector
//! registers; the columns are the vector dimension (keys for `S`, through a transposed copy of
//! `K`; features for `O`, read straight from `V`'s rows). The shapes are per ISA, as many
//! accumulators as the registers hold with room for the operands: AVX-512 `S` in 8 × 16 tiles
//! and `O` in 4 × 64 (then 4 × 16), AVX2 and the portable path 4 × 16 for both. Rows left over
//! run as 1-row tiles, columns left over element by element.
//!
//! Work the mask makes useless is skipped: a causal mask hides half of `S` and, after the
//! softmax, leaves half of `P` zero. A score whose mask value is at most [`ABSORBING`] is not
//! computed (it stays the mask value, which is what computing it gives), and `O`'s sums run
//! only over the keys where some row of the tile has a nonzero probability (a zero term leaves
//! an FMA chain as it is).
//!
//! Every element is one chain of fused multiply-adds in `p` (resp. `j`) order, started from the
//! mask value (resp. 0), in the full-tile path and the edge path alike and on every ISA
//! (`f32::mul_add` is always fused): the result does not depend on the tiling, the thread
//! count or the CPU.

/// Mask values at or below `−2¹²⁰` absorb every product term: their ulp is at least `2⁹⁷`, so
/// `m + y` rounds back to `m` for `|y| < 2⁹⁶`, and an FMA chain started from such an `m` ends at
/// `m` (for finite operands whose products stay under `2⁹⁶`, i.e. every real activation).
/// OPT's additive mask is `f32::MIN / 2` (bf16's `MIN / 2` in a bf16 model), far below.
pub(super) const ABSORBING: f32 = f32::from_bits(0xFB80_0000);

/// Shapes and row strides of one (sequence, head) pair: `tq` query rows of `d` features at
/// stride `ldq`, `tk` key and value rows at stride `ldk` (the keys are the queries' positions
/// without a KV cache; with one, the cached positions and then the new ones, in the cache's own
/// layout), and the output's `tq` rows at stride `ldo`.
#[derive(Clone, Copy, Debug)]
pub(super) struct Block {
    pub tq: usize,
    pub tk: usize,
    pub d: usize,
    pub ldq: usize,
    pub ldk: usize,
    pub ldo: usize,
}

impl Block {
    /// Queries, keys, values and output as blocks of one `[b·t, heads·d]` layout (`ld` =
    /// `heads·d`): attention without a cache.
    #[cfg(test)]
    pub(super) fn square(t: usize, d: usize, ld: usize) -> Self {
        Self {
            tq: t,
            tk: t,
            d,
            ldq: ld,
            ldk: ld,
            ldo: ld,
        }
    }

    /// Floats a `rows × d` block at stride `ld` spans.
    fn span(rows: usize, d: usize, ld: usize) -> usize {
        if rows == 0 {
            0
        } else {
            (rows - 1) * ld + d
        }
    }
}

/// `s[tq × tk] += q kᵀ` where `s` holds the additive mask on entry and `q`, `k` are the
/// `tq × d` and `tk × d` blocks of `blk`. `kt` is scratch for `kᵀ` (`d × tk`, resized here).
///
/// # Panics
/// If a slice is shorter than the shapes say (callers pass in-bounds blocks).
pub(super) fn scores(q: &[f32], k: &[f32], blk: Block, kt: &mut Vec<f32>, s: &mut [f32]) {
    kt.resize(blk.tk * blk.d, 0.0);
    #[cfg(target_arch = "x86_64")]
    {
        if zo_core::cpu::avx512f() {
            // SAFETY: AVX-512F is available (checked just above).
            return unsafe { scores_avx512(q, k, blk, kt, s) };
        }
        if zo_core::cpu::avx2_fma() {
            // SAFETY: AVX2 and FMA are available (checked just above).
            return unsafe { scores_avx2(q, k, blk, kt, s) };
        }
    }
    scores_tiled::<4, 16>(q, k, blk, kt, s)
}

/// `out[tq × d] = p v` for the row-stochastic `p` (`tq × tk`, contiguous) and the `tk × d`
/// values `v` of `blk`; `out` is the output block of `blk` (`tq` rows at stride `ldo`).
///
/// # Safety
/// `out` must be valid for writing the `tq × d` block at row stride `ldo`, and no other thread
/// may access that block meanwhile.
///
/// # Panics
/// If `p` or `v` is shorter than the shapes say.
pub(super) unsafe fn weighted_sum(p: &[f32], v: &[f32], blk: Block, out: *mut f32) {
    #[cfg(target_arch = "x86_64")]
    {
        if zo_core::cpu::avx512f() {
            // SAFETY: AVX-512F is available; `out` as the caller guarantees.
            return unsafe { weighted_sum_avx512(p, v, blk, out) };
        }
        if zo_core::cpu::avx2_fma() {
            // SAFETY: AVX2 and FMA are available; `out` as the caller guarantees.
            return unsafe { weighted_sum_avx2(p, v, blk, out) };
        }
    }
    // SAFETY: `out` as the caller guarantees.
    unsafe { weighted_tiled::<4, 16>(p, v, blk, out) }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx2,fma")]
fn scores_avx512(q: &[f32], k: &[f32], blk: Block, kt: &mut [f32], s: &mut [f32]) {
    check_scores(q, k, blk, kt, s);
    transpose_keys_avx512(k, blk, kt);
    score_all_rows::<8, 16>(q, kt, blk, s)
}

/// [`transpose_keys`] by 16 × 16 blocks transposed in registers (a copy: the same floats).
/// A decoding step transposes every cached key for one query row: copied one float at a time,
/// the copy took most of `scores`' time there (18 % of a 16-row decoding step's samples after
/// 32 + 160 tokens, against 5 % for the `P V` product over as many values; 14 % in blocks).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
fn transpose_keys_avx512(k: &[f32], blk: Block, kt: &mut [f32]) {
    use std::arch::x86_64::{
        __m512i, _mm512_loadu_si512, _mm512_setzero_si512, _mm512_storeu_si512,
    };
    let Block { tk, d, ldk, .. } = blk;
    let (jb, pb) = (tk / 16 * 16, d / 16 * 16);
    for j0 in (0..jb).step_by(16) {
        for p0 in (0..pb).step_by(16) {
            let mut r = [_mm512_setzero_si512(); 16];
            for (i, v) in r.iter_mut().enumerate() {
                let row = &k[(j0 + i) * ldk + p0..][..16];
                // SAFETY: `row` holds the 16 floats read.
                *v = unsafe { _mm512_loadu_si512(row.as_ptr().cast::<__m512i>()) };
            }
            for (c, v) in crate::sgemm::transpose16(&r).iter().enumerate() {
                let dst = &mut kt[(p0 + c) * tk + j0..][..16];
                // SAFETY: `dst` holds the 16 floats written.
                unsafe { _mm512_storeu_si512(dst.as_mut_ptr().cast::<__m512i>(), *v) };
            }
        }
        for j in j0..j0 + 16 {
            for p in pb..d {
                kt[p * tk + j] = k[j * ldk + p];
            }
        }
    }
    for j in jb..tk {
        for p in 0..d {
            kt[p * tk + j] = k[j * ldk + p];
        }
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
fn scores_avx2(q: &[f32], k: &[f32], blk: Block, kt: &mut [f32], s: &mut [f32]) {
    scores_tiled::<4, 16>(q, k, blk, kt, s)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx2,fma")]
unsafe fn weighted_sum_avx512(p: &[f32], v: &[f32], blk: Block, out: *mut f32) {
    // SAFETY: forwarded from the caller.
    unsafe { weighted_tiled::<4, 64>(p, v, blk, out) }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn weighted_sum_avx2(p: &[f32], v: &[f32], blk: Block, out: *mut f32) {
    // SAFETY: forwarded from the caller.
    unsafe { weighted_tiled::<4, 16>(p, v, blk, out) }
}

/// [`scores`] in `R × L` tiles (rows left over in `1 × L` tiles).
#[inline(always)]
fn scores_tiled<const R: usize, const L: usize>(
    q: &[f32],
    k: &[f32],
    blk: Block,
    kt: &mut [f32],
    s: &mut [f32],
) {
    check_scores(q, k, blk, kt, s);
    transpose_keys(k, blk, kt);
    score_all_rows::<R, L>(q, kt, blk, s)
}

/// The bounds [`scores`] relies on.
#[inline(always)]
fn check_scores(q: &[f32], k: &[f32], blk: Block, kt: &[f32], s: &[f32]) {
    let Block { tq, tk, d, .. } = blk;
    assert!(
        q.len() >= Block::span(tq, d, blk.ldq)
            && k.len() >= Block::span(tk, d, blk.ldk)
            && s.len() >= tq * tk
            && kt.len() >= tk * d
    );
}

/// `kt[p·tk + j] = k[j·ldk + p]`: the keys as `d` rows of `tk`, the vector dimension of the
/// score tiles.
#[inline(always)]
fn transpose_keys(k: &[f32], blk: Block, kt: &mut [f32]) {
    let Block { tk, d, ldk, .. } = blk;
    for j in 0..tk {
        for (p, &x) in k[j * ldk..j * ldk + d].iter().enumerate() {
            kt[p * tk + j] = x;
        }
    }
}

/// Every row of [`scores`] from the transposed keys, in `R × L` tiles (rows left over in
/// `1 × L` tiles).
#[inline(always)]
fn score_all_rows<const R: usize, const L: usize>(
    q: &[f32],
    kt: &[f32],
    blk: Block,
    s: &mut [f32],
) {
    let mut i = 0;
    while i + R <= blk.tq {
        score_rows::<R, L>(q, kt, blk, s, i);
        i += R;
    }
    for i in i..blk.tq {
        score_rows::<1, L>(q, kt, blk, s, i);
    }
}

/// Rows `i .. i + R` of [`scores`].
#[inline(always)]
fn score_rows<const R: usize, const L: usize>(
    q: &[f32],
    kt: &[f32],
    blk: Block,
    s: &mut [f32],
    i: usize,
) {
    let Block { tk, d, ldq, .. } = blk;
    let qr: [&[f32]; R] = std::array::from_fn(|r| &q[(i + r) * ldq..][..d]);
    let mut j = 0;
    while j + L <= tk {
        let absorbed = (0..R).all(|r| s[(i + r) * tk + j..][..L].iter().all(|&m| m <= ABSORBING));
        if !absorbed {
            let mut acc = [[0f32; L]; R];
            for (r, a) in acc.iter_mut().enumerate() {
                a.copy_from_slice(&s[(i + r) * tk + j..][..L]);
            }
            for p in 0..d {
                let kv: &[f32; L] = kt[p * tk + j..][..L].try_into().expect("L columns");
                for (a, qrow) in acc.iter_mut().zip(&qr) {
                    let x = qrow[p];
                    for (y, &b) in a.iter_mut().zip(kv) {
                        *y = x.mul_add(b, *y);
                    }
                }
            }
            for (r, a) in acc.iter().enumerate() {
                s[(i + r) * tk + j..][..L].copy_from_slice(a);
            }
        }
        j += L;
    }
    for (r, qrow) in qr.iter().enumerate() {
        for c in j..tk {
            let mut y = s[(i + r) * tk + c];
            if y <= ABSORBING {
                continue;
            }
            for (p, &x) in qrow.iter().enumerate() {
                y = x.mul_add(kt[p * tk + c], y);
            }
            s[(i + r) * tk + c] = y;
        }
    }
}

/// [`weighted_sum`] in `R × L` tiles (then `R × 16` tiles for the columns left over, and rows
/// left over as 1-row tiles).
///
/// # Safety
/// As [`weighted_sum`].
#[inline(always)]
unsafe fn weighted_tiled<const R: usize, const L: usize>(
    p: &[f32],
    v: &[f32],
    blk: Block,
    out: *mut f32,
) {
    assert!(p.len() >= blk.tq * blk.tk && v.len() >= Block::span(blk.tk, blk.d, blk.ldk));
    let mut i = 0;
    while i + R <= blk.tq {
        // SAFETY: forwarded from the caller.
        unsafe { weighted_rows::<R, L>(p, v, blk, out, i) };
        i += R;
    }
    for i in i..blk.tq {
        // SAFETY: forwarded from the caller.
        unsafe { weighted_rows::<1, L>(p, v, blk, out, i) };
    }
}

/// Rows `i .. i + R` of [`weighted_sum`], over the keys `lo .. hi` outside which every
/// probability of these rows is zero.
///
/// # Safety
/// As [`weighted_sum`]; `i + R <= tq`.
#[inline(always)]
unsafe fn weighted_rows<const R: usize, const L: usize>(
    p: &[f32],
    v: &[f32],
    blk: Block,
    out: *mut f32,
    i: usize,
) {
    let Block {
        tk, d, ldk, ldo, ..
    } = blk;
    let pr: [&[f32]; R] = std::array::from_fn(|r| &p[(i + r) * tk..][..tk]);
    let lo = pr
        .iter()
        .map(|row| row.iter().position(|&x| x != 0.0).unwrap_or(tk))
        .min()
        .unwrap_or(tk);
    let hi = pr
        .iter()
        .map(|row| row.iter().rposition(|&x| x != 0.0).map_or(0, |j| j + 1))
        .max()
        .unwrap_or(0)
        .max(lo);
    let keys = lo..hi;
    let mut c = 0;
    while c + L <= d {
        // SAFETY: columns c .. c + L < d of rows i .. i + R < tq: inside the caller's block.
        unsafe { weighted_tile::<R, L>(&pr, v, blk, keys.clone(), out, i, c) };
        c += L;
    }
    while c + 16 <= d {
        // SAFETY: as above.
        unsafe { weighted_tile::<R, 16>(&pr, v, blk, keys.clone(), out, i, c) };
        c += 16;
    }
    for (r, prow) in pr.iter().enumerate() {
        for c in c..d {
            let mut y = 0f32;
            for j in keys.clone() {
                y = prow[j].mul_add(v[j * ldk + c], y);
            }
            // SAFETY: row i + r < tq, column c < d: inside the caller's block.
            unsafe { *out.add((i + r) * ldo + c) = y };
        }
    }
}

/// One `R × L` tile of [`weighted_sum`]: rows `i ..`, columns `c ..`, over `keys`.
///
/// # Safety
/// The tile lies inside the caller's block of [`weighted_sum`].
#[inline(always)]
unsafe fn weighted_tile<const R: usize, const L: usize>(
    pr: &[&[f32]; R],
    v: &[f32],
    blk: Block,
    keys: std::ops::Range<usize>,
    out: *mut f32,
    i: usize,
    c: usize,
) {
    let mut acc = [[0f32; L]; R];
    for j in keys {
        let vv: &[f32; L] = v[j * blk.ldk + c..][..L].try_into().expect("L columns");
        for (a, prow) in acc.iter_mut().zip(pr) {
            let x = prow[j];
            for (y, &b) in a.iter_mut().zip(vv) {
                *y = x.mul_add(b, *y);
            }
        }
    }
    for (r, a) in acc.iter().enumerate() {
        // SAFETY: the caller's contract.
        unsafe { std::ptr::copy_nonoverlapping(a.as_ptr(), out.add((i + r) * blk.ldo + c), L) };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `n` values in `[-scale/2, scale/2)` from a multiplicative hash of the index and `salt`.
    fn values(n: usize, salt: u32, scale: f32) -> Vec<f32> {
        (0..n)
            .map(|i| {
                ((((i as u32).wrapping_mul(2654435761).wrapping_add(salt) >> 8) as f32
                    / 16777216.0)
                    - 0.5)
                    * scale
            })
            .collect()
    }

    /// `O = P V` at stride `ld` (NaN outside the `t × d` block) by [`weighted_sum`] (this
    /// CPU's path) and by `other`.
    fn weighted_both(
        p: &[f32],
        v: &[f32],
        ld: usize,
        t: usize,
        d: usize,
        other: unsafe fn(&[f32], &[f32], Block, *mut f32),
    ) -> (Vec<f32>, Vec<f32>) {
        let mut o = vec![f32::NAN; (t - 1) * ld + d];
        let mut o_other = o.clone();
        // SAFETY: both buffers hold the t × d block at stride ld; single thread.
        unsafe {
            weighted_sum(p, v, Block::square(t, d, ld), o.as_mut_ptr());
            other(p, v, Block::square(t, d, ld), o_other.as_mut_ptr());
        }
        (o, o_other)
    }

    /// Higham's bound for an `n`-term f32 sum of products (inputs exact in f64):
    /// `γₙ Σ|terms|` with `γₙ = n·u / (1 − n·u)`, `u = 2⁻²⁴`.
    fn higham(n: usize, sum_abs: f64) -> f64 {
        let nu = n as f64 * 2f64.powi(-24);
        nu / (1.0 - nu) * sum_abs
    }

    /// f64 references of both products on odd shapes (edge tiles in both directions), and
    /// bit identity of the ISA paths against the portable one.
    #[test]
    fn matches_f64_reference_and_is_isa_independent() {
        for (t, d, ld) in [
            (1, 64, 64),
            (5, 7, 9),
            (16, 64, 128),
            (19, 80, 160),
            (21, 24, 40),
            (64, 64, 768),
        ] {
            let gen = |n: usize, s: u32| values(n, s, 1.0);
            let (q, k, v) = (
                gen((t - 1) * ld + d, 1),
                gen((t - 1) * ld + d, 2),
                gen((t - 1) * ld + d, 3),
            );
            let mask = gen(t * t, 4);
            let mut s = mask.clone();
            let mut kt = Vec::new();
            scores(&q, &k, Block::square(t, d, ld), &mut kt, &mut s);
            let mut s_port = mask.clone();
            let mut kt2 = vec![0.0; t * d];
            scores_tiled::<4, 16>(&q, &k, Block::square(t, d, ld), &mut kt2, &mut s_port);
            assert_eq!(
                s, s_port,
                "scores: ISA path differs from the portable one (t={t}, d={d})"
            );
            for i in 0..t {
                for j in 0..t {
                    let terms = (0..d).map(|p| q[i * ld + p] as f64 * k[j * ld + p] as f64);
                    let r = mask[i * t + j] as f64 + terms.clone().sum::<f64>();
                    let bound = higham(
                        d + 1,
                        mask[i * t + j].abs() as f64 + terms.map(f64::abs).sum::<f64>(),
                    );
                    assert!(
                        (s[i * t + j] as f64 - r).abs() <= bound,
                        "scores ({i},{j}) t={t} d={d}"
                    );
                }
            }
            let (o, o_port) = weighted_both(&s, &v, ld, t, d, weighted_tiled::<4, 16>);
            for i in 0..t {
                for c in 0..d {
                    let terms = (0..t).map(|j| s[i * t + j] as f64 * v[j * ld + c] as f64);
                    let r = terms.clone().sum::<f64>();
                    let bound = higham(t, terms.map(f64::abs).sum::<f64>());
                    let (x, y) = (o[i * ld + c], o_port[i * ld + c]);
                    assert_eq!(x.to_bits(), y.to_bits(), "weighted sum: ISA path differs");
                    assert!(
                        (x as f64 - r).abs() <= bound,
                        "weighted sum ({i},{c}) t={t} d={d}"
                    );
                }
            }
            // Columns outside the block are untouched.
            if ld > d {
                assert!(o[d].is_nan());
            }
        }
    }

    /// Every FMA chain in full, nothing skipped: the products as [`scores`] and
    /// [`weighted_sum`] define them.
    fn naive(
        q: &[f32],
        k: &[f32],
        v: &[f32],
        mask: &[f32],
        ld: usize,
        t: usize,
        d: usize,
    ) -> (Vec<f32>, Vec<f32>) {
        let mut s = mask.to_vec();
        for i in 0..t {
            for j in 0..t {
                let mut y = s[i * t + j];
                for p in 0..d {
                    y = q[i * ld + p].mul_add(k[j * ld + p], y);
                }
                s[i * t + j] = y;
            }
        }
        crate::rows::softmax_rows(&mut s, t);
        let mut o = vec![0f32; t * d];
        for i in 0..t {
            for c in 0..d {
                let mut y = 0f32;
                for j in 0..t {
                    y = s[i * t + j].mul_add(v[j * ld + c], y);
                }
                o[i * d + c] = y;
            }
        }
        (s, o)
    }

    /// Causal and left-padded masks (OPT's `f32::MIN / 2`, and −∞): skipping the masked
    /// scores and the zero probabilities gives the bits of the full chains, on every tiling
    /// (this CPU's, 4 × 16, 1-row tiles), including rows whose keys are all masked.
    #[test]
    fn skipping_masked_work_keeps_the_bits() {
        let gen = |n: usize, s: u32| values(n, s, 3.0);
        for (t, d, ld, pad, neg) in [
            (64, 64, 768, 0, f32::MIN / 2.0),
            (64, 64, 768, 13, f32::MIN / 2.0),
            (57, 80, 160, 9, f32::MIN / 2.0),
            (23, 64, 64, 5, f32::NEG_INFINITY),
            (9, 16, 16, 0, f32::MIN / 2.0),
        ] {
            let (q, k, v) = (
                gen((t - 1) * ld + d, 11),
                gen((t - 1) * ld + d, 12),
                gen((t - 1) * ld + d, 13),
            );
            // Causal, the first `pad` keys padding (so the first `pad` query rows see nothing).
            let mut mask = vec![neg; t * t];
            for i in 0..t {
                for j in pad..=i {
                    mask[i * t + j] = 0.0;
                }
            }
            let (s_ref, o_ref) = naive(&q, &k, &v, &mask, ld, t, d);
            let mut kt = Vec::new();
            let mut s_isa = mask.clone();
            scores(&q, &k, Block::square(t, d, ld), &mut kt, &mut s_isa);
            let mut s_port = mask.clone();
            let mut kt2 = vec![0.0; t * d];
            scores_tiled::<4, 16>(&q, &k, Block::square(t, d, ld), &mut kt2, &mut s_port);
            let mut s_rows = mask.clone();
            scores_tiled::<1, 16>(&q, &k, Block::square(t, d, ld), &mut kt2, &mut s_rows);
            for (name, mut s) in [("isa", s_isa), ("4x16", s_port), ("1x16", s_rows)] {
                crate::rows::softmax_rows(&mut s, t);
                let bits = |x: &[f32]| x.iter().map(|v| v.to_bits()).collect::<Vec<_>>();
                assert_eq!(bits(&s), bits(&s_ref), "{name} scores, t={t} pad={pad}");
                let (o, o_port) = weighted_both(&s, &v, ld, t, d, weighted_tiled::<1, 16>);
                for i in 0..t {
                    for c in 0..d {
                        let want = o_ref[i * d + c];
                        assert_eq!(
                            o[i * ld + c],
                            want,
                            "{name} output ({i},{c}) t={t} pad={pad}"
                        );
                        assert_eq!(o_port[i * ld + c], want, "{name} 1-row output ({i},{c})");
                    }
                }
            }
        }
    }
}
