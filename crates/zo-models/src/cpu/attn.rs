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
//! Tiles are `R × L` (4 rows × 16 columns) accumulated in local arrays, which the compiler
//! keeps in vector registers; the columns are the vector dimension (keys for `S`, through a
//! transposed copy of `K`; features for `O`, read straight from `V`'s rows). Every element is
//! one chain of fused multiply-adds in `p` (resp. `j`) order, started from the mask value
//! (resp. 0), in the full-tile path and the edge path alike and on every ISA (`f32::mul_add`
//! is always fused): the result does not depend on the tiling, the thread count or the CPU.

/// Rows per tile.
const R: usize = 4;
/// Columns per tile (one AVX-512 vector, two AVX2 vectors).
const L: usize = 16;

/// `s[t × t] += q kᵀ` where `s` holds the additive mask on entry and `q`, `k` are `t × d`
/// blocks with row stride `ld` (a head's columns of the `[b·t, heads·d]` projections).
/// `kt` is scratch for `kᵀ` (`d × t`, resized here).
///
/// # Panics
/// If a slice is shorter than the shapes say (callers pass in-bounds blocks).
pub(super) fn scores(
    q: &[f32],
    k: &[f32],
    ld: usize,
    t: usize,
    d: usize,
    kt: &mut Vec<f32>,
    s: &mut [f32],
) {
    kt.resize(t * d, 0.0);
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx512f") {
            // SAFETY: AVX-512F is available (checked just above).
            return unsafe { scores_avx512(q, k, ld, t, d, kt, s) };
        }
        if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma")
        {
            // SAFETY: AVX2 and FMA are available (checked just above).
            return unsafe { scores_avx2(q, k, ld, t, d, kt, s) };
        }
    }
    scores_impl(q, k, ld, t, d, kt, s)
}

/// `out[t × d] = p v` for the row-stochastic `p` (`t × t`, contiguous) and `v` (`t × d`, row
/// stride `ld`); `out` has row stride `ld` too.
///
/// # Safety
/// `out` must be valid for writing the `t × d` block at row stride `ld`, and no other thread
/// may access that block meanwhile.
///
/// # Panics
/// If `p` or `v` is shorter than the shapes say.
pub(super) unsafe fn weighted_sum(
    p: &[f32],
    v: &[f32],
    ld: usize,
    t: usize,
    d: usize,
    out: *mut f32,
) {
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx512f") {
            // SAFETY: AVX-512F is available; `out` as the caller guarantees.
            return unsafe { weighted_sum_avx512(p, v, ld, t, d, out) };
        }
        if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma")
        {
            // SAFETY: AVX2 and FMA are available; `out` as the caller guarantees.
            return unsafe { weighted_sum_avx2(p, v, ld, t, d, out) };
        }
    }
    // SAFETY: `out` as the caller guarantees.
    unsafe { weighted_sum_impl(p, v, ld, t, d, out) }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx2,fma")]
fn scores_avx512(
    q: &[f32],
    k: &[f32],
    ld: usize,
    t: usize,
    d: usize,
    kt: &mut [f32],
    s: &mut [f32],
) {
    scores_impl(q, k, ld, t, d, kt, s)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
fn scores_avx2(q: &[f32], k: &[f32], ld: usize, t: usize, d: usize, kt: &mut [f32], s: &mut [f32]) {
    scores_impl(q, k, ld, t, d, kt, s)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx2,fma")]
unsafe fn weighted_sum_avx512(p: &[f32], v: &[f32], ld: usize, t: usize, d: usize, out: *mut f32) {
    // SAFETY: forwarded from the caller.
    unsafe { weighted_sum_impl(p, v, ld, t, d, out) }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn weighted_sum_avx2(p: &[f32], v: &[f32], ld: usize, t: usize, d: usize, out: *mut f32) {
    // SAFETY: forwarded from the caller.
    unsafe { weighted_sum_impl(p, v, ld, t, d, out) }
}

#[inline(always)]
fn scores_impl(q: &[f32], k: &[f32], ld: usize, t: usize, d: usize, kt: &mut [f32], s: &mut [f32]) {
    for j in 0..t {
        for (p, &x) in k[j * ld..j * ld + d].iter().enumerate() {
            kt[p * t + j] = x;
        }
    }
    for i in (0..t).step_by(R) {
        let rows = R.min(t - i);
        for j in (0..t).step_by(L) {
            let cols = L.min(t - j);
            if rows == R && cols == L {
                let qr: [&[f32]; R] = std::array::from_fn(|r| &q[(i + r) * ld..][..d]);
                let mut acc = [[0f32; L]; R];
                for (r, a) in acc.iter_mut().enumerate() {
                    a.copy_from_slice(&s[(i + r) * t + j..][..L]);
                }
                for p in 0..d {
                    let kv: &[f32; L] = kt[p * t + j..][..L].try_into().expect("L columns");
                    for (a, qrow) in acc.iter_mut().zip(&qr) {
                        let x = qrow[p];
                        for (y, &b) in a.iter_mut().zip(kv) {
                            *y = x.mul_add(b, *y);
                        }
                    }
                }
                for (r, a) in acc.iter().enumerate() {
                    s[(i + r) * t + j..][..L].copy_from_slice(a);
                }
            } else {
                for r in i..i + rows {
                    for c in j..j + cols {
                        let mut y = s[r * t + c];
                        for p in 0..d {
                            y = q[r * ld + p].mul_add(kt[p * t + c], y);
                        }
                        s[r * t + c] = y;
                    }
                }
            }
        }
    }
}

/// # Safety
/// As [`weighted_sum`].
#[inline(always)]
unsafe fn weighted_sum_impl(p: &[f32], v: &[f32], ld: usize, t: usize, d: usize, out: *mut f32) {
    assert!(p.len() >= t * t && (t == 0 || v.len() >= (t - 1) * ld + d));
    for i in (0..t).step_by(R) {
        let rows = R.min(t - i);
        for c in (0..d).step_by(L) {
            let cols = L.min(d - c);
            let mut acc = [[0f32; L]; R];
            if rows == R && cols == L {
                let pr: [&[f32]; R] = std::array::from_fn(|r| &p[(i + r) * t..][..t]);
                for j in 0..t {
                    let vv: &[f32; L] = v[j * ld + c..][..L].try_into().expect("L columns");
                    for (a, prow) in acc.iter_mut().zip(&pr) {
                        let x = prow[j];
                        for (y, &b) in a.iter_mut().zip(vv) {
                            *y = x.mul_add(b, *y);
                        }
                    }
                }
            } else {
                for (r, a) in acc.iter_mut().enumerate().take(rows) {
                    for (l, y) in a.iter_mut().enumerate().take(cols) {
                        for j in 0..t {
                            *y = p[(i + r) * t + j].mul_add(v[j * ld + c + l], *y);
                        }
                    }
                }
            }
            for (r, a) in acc.iter().enumerate().take(rows) {
                for (l, &y) in a.iter().enumerate().take(cols) {
                    // SAFETY: row i + r < t, column c + l < d: inside the caller's block.
                    unsafe { *out.add((i + r) * ld + c + l) = y };
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
            (64, 64, 768),
        ] {
            let gen = |n: usize, s: u32| -> Vec<f32> {
                (0..n)
                    .map(|i| {
                        (((i as u32).wrapping_mul(2654435761).wrapping_add(s) >> 8) as f32
                            / 16777216.0)
                            - 0.5
                    })
                    .collect()
            };
            let (q, k, v) = (
                gen((t - 1) * ld + d, 1),
                gen((t - 1) * ld + d, 2),
                gen((t - 1) * ld + d, 3),
            );
            let mask = gen(t * t, 4);
            let mut s = mask.clone();
            let mut kt = Vec::new();
            scores(&q, &k, ld, t, d, &mut kt, &mut s);
            let mut s_port = mask.clone();
            let mut kt2 = vec![0.0; t * d];
            scores_impl(&q, &k, ld, t, d, &mut kt2, &mut s_port);
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
            let mut o = vec![f32::NAN; (t - 1) * ld + d];
            let mut o_port = o.clone();
            // SAFETY: `o` holds the t × d block at stride ld; single thread.
            unsafe {
                weighted_sum(&s, &v, ld, t, d, o.as_mut_ptr());
                weighted_sum_impl(&s, &v, ld, t, d, o_port.as_mut_ptr());
            }
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
}
