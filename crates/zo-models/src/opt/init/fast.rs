//! The Box–Muller transform of [`super::normal`] in a form the compiler vectorises: 8 normals at
//! a time, f64 throughout, with branch-free ports of FreeBSD msun's `e_log.c` (`log`, the
//! `Lg1..Lg7` minimax polynomial on `s = f/(2+f)`) and `k_cos.c` / `k_sin.c` (kernels on
//! `|x| ≤ π/4`, coefficients `C1..C6`, `S1..S6`), each within ≈ 1 ulp like libm's.
//!
//! `cos(2π u₂)` needs no general argument reduction: `u₂` is a multiple of 2⁻⁵³ in `[0, 1)`, so
//! with the quadrant `q = round(4u₂)` the remainder `r = u₂ − q/4 ∈ [−1/8, 1/8]` is exact and
//! `cos(2π u₂) = ±cos(2πr)` or `±sin(2πr)` by `q mod 4`.
//!
//! Only `+ − × ÷ sqrt` are written (Rust never contracts them into FMA), so the AVX2 build and
//! the baseline build give the same bits.

// The polynomial coefficients are msun's decimal constants, kept digit for digit.
#![allow(clippy::excessive_precision)]

use super::uniform_bits;

/// Normals per block (one AVX2 register holds 4 f64).
const W: usize = 8;

/// 2⁵²: adding a non-negative integer `< 2⁵²` to its bit pattern gives `2⁵² + x` exactly.
const TWO52: f64 = 4_503_599_627_370_496.0;

/// An integer `x < 2⁵³` as f64, exactly, with integer and float adds only (AVX2 has no
/// u64 → f64 conversion).
#[inline(always)]
fn exact_f64(x: u64) -> f64 {
    let h = f64::from_bits(TWO52.to_bits() + (x >> 1)) - TWO52;
    let l = f64::from_bits(TWO52.to_bits() + (x & 1)) - TWO52;
    2.0 * h + l
}

/// `ln(u)` for a positive normal `u` (FreeBSD `e_log.c`, the `hfsq` branch for every `f`).
#[inline(always)]
fn ln(u: f64) -> f64 {
    const LN2_HI: f64 = 6.931_471_803_691_238_164_90e-01;
    const LN2_LO: f64 = 1.908_214_929_270_587_700_02e-10;
    const LG1: f64 = 6.666_666_666_666_735_130e-01;
    const LG2: f64 = 3.999_999_999_940_941_908e-01;
    const LG3: f64 = 2.857_142_874_366_239_149e-01;
    const LG4: f64 = 2.222_219_843_214_978_396e-01;
    const LG5: f64 = 1.818_357_216_161_805_012e-01;
    const LG6: f64 = 1.531_383_769_920_937_332e-01;
    const LG7: f64 = 1.479_819_860_511_658_591e-01;
    let bits = u.to_bits();
    // u = 2^e · m, m ∈ [1, 2), then m ∈ [√2/2, √2).
    let e = bits >> 52; // biased exponent, 1..=1022 here
    let m = f64::from_bits((bits & 0x000F_FFFF_FFFF_FFFF) | 0x3FF0_0000_0000_0000);
    let big = m >= std::f64::consts::SQRT_2;
    let m = if big { 0.5 * m } else { m };
    let e = e + u64::from(big);
    // (e − 1023) as f64 without an i64 → f64 conversion: (2⁵² + e) − (2⁵² + 1023).
    let dk = f64::from_bits(TWO52.to_bits() + e) - (TWO52 + 1023.0);
    let f = m - 1.0;
    let s = f / (2.0 + f);
    let z = s * s;
    let w = z * z;
    let t1 = w * (LG2 + w * (LG4 + w * LG6));
    let t2 = z * (LG1 + w * (LG3 + w * (LG5 + w * LG7)));
    let r = t2 + t1;
    let hfsq = 0.5 * f * f;
    dk * LN2_HI - ((hfsq - (s * (hfsq + r) + dk * LN2_LO)) - f)
}

/// `cos(2π u)` for `u ∈ [0, 1)` a multiple of 2⁻⁵³.
#[inline(always)]
fn cos_turns(u: f64) -> f64 {
    const C1: f64 = 4.166_666_666_666_660_190_37e-02;
    const C2: f64 = -1.388_888_888_887_410_957_49e-03;
    const C3: f64 = 2.480_158_728_947_672_941_78e-05;
    const C4: f64 = -2.755_731_435_139_066_330_35e-07;
    const C5: f64 = 2.087_572_321_298_174_827_90e-09;
    const C6: f64 = -1.135_964_755_778_819_482_65e-11;
    const S1: f64 = -1.666_666_666_666_663_243_48e-01;
    const S2: f64 = 8.333_333_333_322_489_461_24e-03;
    const S3: f64 = -1.984_126_982_985_794_931_34e-04;
    const S4: f64 = 2.755_731_370_707_006_767_89e-06;
    const S5: f64 = -2.505_076_025_340_686_341_95e-08;
    const S6: f64 = 1.589_690_995_211_550_102_21e-10;
    // q = round(4u) (ties to even) by the 1.5·2⁵² magic constant; q ∈ 0..=4.
    const MAGIC: f64 = 6_755_399_441_055_744.0;
    let t = 4.0 * u + MAGIC;
    let q = t - MAGIC;
    let qi = t.to_bits().wrapping_sub(MAGIC.to_bits());
    let x = std::f64::consts::TAU * (u - 0.25 * q);
    let z = x * x;
    let w = z * z;
    // k_cos.c
    let r = z * (C1 + z * (C2 + z * C3)) + w * w * (C4 + z * (C5 + z * C6));
    let hz = 0.5 * z;
    let one_m_hz = 1.0 - hz;
    let c = one_m_hz + (((1.0 - one_m_hz) - hz) + z * r);
    // k_sin.c
    let r = S2 + z * (S3 + z * S4) + z * w * (S5 + z * S6);
    let s = x + z * x * (S1 + z * r);
    // cos(x + qπ/2): cos, −sin, −cos, sin.
    let v = if qi & 1 == 0 { c } else { s };
    if (qi + 1) & 2 != 0 {
        -v
    } else {
        v
    }
}

/// Normals `base .. base + W` of stream `k`, in f64.
#[inline(always)]
pub(super) fn block(k: u64, base: u64) -> [f64; W] {
    const SCALE: f64 = 1.0 / (1u64 << 53) as f64;
    let mut u1 = [0f64; W];
    let mut u2 = [0f64; W];
    for j in 0..W {
        let (a, b) = uniform_bits(k, base + j as u64);
        u1[j] = (exact_f64(a) + 1.0) * SCALE;
        u2[j] = exact_f64(b) * SCALE;
    }
    let mut z = [0f64; W];
    for j in 0..W {
        z[j] = (-2.0 * ln(u1[j])).sqrt() * cos_turns(u2[j]);
    }
    z
}

#[inline(always)]
fn normals_generic(k: u64, first: u64, std: f64, out: &mut [f32]) {
    for (c, chunk) in out.chunks_mut(W).enumerate() {
        let z = block(k, first + (c * W) as u64);
        for (o, z) in chunk.iter_mut().zip(z) {
            *o = (std * z) as f32;
        }
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn normals_avx2(k: u64, first: u64, std: f64, out: &mut [f32]) {
    normals_generic(k, first, std, out)
}

/// `out[j] = (std · N(first + j)) as f32` for the normals of stream `k`.
pub(super) fn normals(k: u64, first: u64, std: f64, out: &mut [f32]) {
    #[cfg(target_arch = "x86_64")]
    if zo_core::cpu::avx2_fma() {
        // SAFETY: the CPU supports AVX2 (checked just above).
        return unsafe { normals_avx2(k, first, std, out) };
    }
    normals_generic(k, first, std, out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kernels_match_libm() {
        let mut worst_ln = 0f64;
        let mut worst_cos = 0f64;
        let mut state = 1u64;
        for i in 0..200_000u64 {
            state = super::super::mix(state.wrapping_add(i));
            let u = (exact_f64(state >> 11) + 1.0) / (1u64 << 53) as f64;
            worst_ln = worst_ln.max(((ln(u) - u.ln()) / u.ln().abs().max(1e-300)).abs());
            let v = exact_f64(state >> 11) / (1u64 << 53) as f64;
            worst_cos = worst_cos.max((cos_turns(v) - (std::f64::consts::TAU * v).cos()).abs());
        }
        assert!(worst_ln < 4e-16, "ln worst relative error {worst_ln}");
        // The reference rounds its argument 2π·u (up to ½ ulp of 2π ≈ 4.4e-16), ours does not.
        assert!(worst_cos < 1e-15, "cos worst absolute error {worst_cos}");
        // Exact inputs at the edges: u = 1, u = 2⁻⁵³, quadrant boundaries.
        assert_eq!(ln(1.0), 0.0);
        assert!((ln(2f64.powi(-53)) + 53.0 * std::f64::consts::LN_2).abs() < 1e-13);
        for (u, want) in [
            (0.0, 1.0),
            (0.25, 0.0),
            (0.5, -1.0),
            (0.75, 0.0),
            (0.125, 0.5f64.sqrt()),
        ] {
            assert!((cos_turns(u) - want).abs() < 1e-16, "cos_turns({u})");
        }
        assert_eq!(exact_f64((1 << 53) - 1), ((1u64 << 53) - 1) as f64);
    }

    #[test]
    fn avx2_and_baseline_builds_agree() {
        let mut a = vec![0f32; 10_007];
        let mut b = vec![0f32; 10_007];
        normals(99, 5, 0.02, &mut a);
        normals_generic(99, 5, 0.02, &mut b);
        assert!(a == b);
    }
}
