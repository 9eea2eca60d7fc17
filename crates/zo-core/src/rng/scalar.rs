//! Portable reference of the generator's transforms: u32 words → normal / rademacher / uniform.
//!
//! Every function here gives the same bits as the SIMD kernels in `x86/mod.rs`: integer steps
//! are exact, each float step is one correctly-rounded IEEE op or a fused multiply-add written
//! as `f32::mul_add` (never `a * b + c`, which rounds twice and would break bit-identity with
//! `vfmadd`). The kernels do the same operations, except where a step is scaled by a power of
//! two or folded into an exact integer step (each such place says why the bits cannot differ).
//! Keep the two in lock-step when editing; the tests force every path and compare bits.
//!
//! # Normal: Box–Muller with Cephes polynomials
//!
//! Words (a, b) give u₁ = (⌊a/2⁸⌋ + 1)·2⁻²⁴ ∈ (0, 1] and an angle from b; then
//! z₀ = R cos θ, z₁ = R sin θ with R = √(−2 ln u₁) (Box & Muller 1958).
//! * ln: Cephes `logf.c` (S. Moshier): frexp, a shift to [√½, √2), its degree-8 polynomial,
//!   ln 2 split in two parts; since generator v3 the sum x − x²/2 + x³P(x) is evaluated in
//!   Horner form, x + x²·(x·P(x) − ½), with FMAs (2 operations fewer than Cephes' order).
//! * sin/cos: the angle 2π·b/2³² is reduced *exactly* in integers: the two top bits (rounded)
//!   pick the quadrant q, the rest is r ∈ [−1/8, 1/8) turns, θ = 2π r ∈ [−π/4, π/4); Cephes
//!   `sinf.c`/`cosf.c` minimax polynomials on that interval (cos in Horner form down to its
//!   constant 1, v3), then the quadrant's swap/sign.
//! * R ≤ √(2·24 ln 2) ≈ 5.77: the tails beyond 5.77σ (probability 8e-9) are cut off; the
//!   variance loss is ≈ 5e-7, far below anything a ZO step can see.
//!
//! Approximation error against f64 (generator v3): ln ≤ 0.91 ulp on *every* u₁ the generator
//! can produce (`rng::tests::ln_unit_error_exhaustive`, all 2²⁴); sin/cos ≤ 8.5e-8 absolute and
//! z at the largest radius R = 5.77 ≤ 7.9e-7 absolute (`rng::tests::transcendental_error_vs_f64`,
//! every 257th angle word plus the end points; it asserts 1.5e-7 and 1.2e-6). So z is a
//! N(0, 1) sample truncated at 5.77σ, off by at most ~1e-6 absolute (~1.4e-7 relative).

use super::{ars4x32, counter, Distribution, BLOCKS_PER_GROUP, GROUP, PAIR_STRIDE};

/// 2⁻²⁴: the weight of the lowest of the 24 bits kept from a word.
pub const INV_2_24: f32 = 1.0 / 16_777_216.0;
/// √½, the frexp shift point of Cephes `logf`.
pub const SQRTHF: f32 = std::f32::consts::FRAC_1_SQRT_2;
/// Cephes `logf` polynomial, highest degree first (Cephes' published digits, rounded to f32 by
/// the compiler).
#[allow(clippy::excessive_precision)]
pub const LOG_P: [f32; 9] = [
    7.0376836292E-2,
    -1.1514610310E-1,
    1.1676998740E-1,
    -1.2420140846E-1,
    1.4249322787E-1,
    -1.6668057665E-1,
    2.0000714765E-1,
    -2.4999993993E-1,
    3.3333331174E-1,
];
/// ln 2 = LOG_Q2 + LOG_Q1 (Cephes' split: LOG_Q2 has few bits, so e·LOG_Q2 is exact).
#[allow(clippy::excessive_precision)]
pub const LOG_Q1: f32 = -2.12194440e-4;
/// High part of ln 2 (exactly representable).
pub const LOG_Q2: f32 = 0.693_359_4; // = 0.693359375 = 355/512 exactly
/// Cephes `sinf` polynomial on [−π/4, π/4].
#[allow(clippy::excessive_precision)]
pub const SIN_P: [f32; 3] = [-1.9515295891E-4, 8.3321608736E-3, -1.6666654611E-1];
/// Cephes `cosf` polynomial on [−π/4, π/4].
#[allow(clippy::excessive_precision)]
pub const COS_P: [f32; 3] = [
    2.443315711809948E-005,
    -1.388731625493765E-003,
    4.166664568298827E-002,
];
/// 2π rounded to f32.
pub const TWO_PI: f32 = std::f32::consts::TAU;
/// U(−√3, √3) as one FMA of the 24-bit integer f: z = f·UNIF_SCALE + UNIF_OFFSET, i.e. the
/// centre of the f-th of 2²⁴ equal cells.
pub const UNIF_SCALE: f32 = (2.0 * 1.732_050_807_568_877_2_f64 / 16_777_216.0) as f32;
/// See [`UNIF_SCALE`].
pub const UNIF_OFFSET: f32 =
    (-1.732_050_807_568_877_2_f64 + 1.732_050_807_568_877_2_f64 / 16_777_216.0) as f32;

/// Bits of [`SQRTHF`] (0x3f3504f3).
pub const SQRTHF_BITS: u32 = 0x3f35_04f3;
const _: () = assert!(SQRTHF.to_bits() == SQRTHF_BITS);

/// ln(u) for u ∈ [2⁻²⁴, 1] (Cephes `logf`, FMA + Horner form). Not meant for other inputs.
///
/// Cephes' frexp + "if m < √½ then m ← 2m, e ← e − 1" is done in integers (the form of musl's
/// `logf`): adding 1 − √½ (in bits) to u carries into the exponent exactly when the mantissa
/// M ∈ [1, 2) of u is ≥ √2, so `u = 2^e · m` with m ∈ [√½, √2) comes out with no compare and
/// no select. Same e and m as Cephes' branches, bit for bit (checked on all 2²⁴ inputs by a
/// test of generator v2, commit b8d299f).
#[inline(always)]
pub fn ln_unit(u: f32) -> f32 {
    let ix = u.to_bits().wrapping_add(0x3f80_0000 - SQRTHF_BITS);
    let ef = (((ix >> 23) as i32) - 127) as f32;
    // Exact (Sterbenz): x ∈ [√½ − 1, √2 − 1).
    let x = f32::from_bits((ix & 0x007f_ffff) + SQRTHF_BITS) - 1.0;
    let mut p = LOG_P[0];
    for c in &LOG_P[1..] {
        p = p.mul_add(x, *c);
    }
    // ln(1 + x) = x + x²·(x·P(x) − ½) (Cephes' sum, in Horner form: 2 operations fewer).
    let q = p.mul_add(x, -0.5);
    let y = q.mul_add(x * x, x);
    ef.mul_add(LOG_Q2, ef.mul_add(LOG_Q1, y))
}

/// (sin 2πb/2³², cos 2πb/2³²) with exact integer range reduction (see module docs).
#[inline(always)]
pub fn sincos_turn(b: u32) -> (f32, f32) {
    let q = b.wrapping_add(1 << 29) >> 30;
    let ri = (b.wrapping_sub(q << 30) as i32) >> 8;
    let t = ((ri as f32) * INV_2_24) * TWO_PI;
    let z = t * t;
    let mut ps = SIN_P[0].mul_add(z, SIN_P[1]);
    ps = ps.mul_add(z, SIN_P[2]);
    ps *= z;
    let sinv = ps.mul_add(t, t);
    // cos in Horner form down to the constant 1 (one rounding at the end).
    let cosv = COS_P[0]
        .mul_add(z, COS_P[1])
        .mul_add(z, COS_P[2])
        .mul_add(z, -0.5)
        .mul_add(z, 1.0);
    let (c0, s0) = if q & 1 == 1 {
        (sinv, cosv)
    } else {
        (cosv, sinv)
    };
    let c = f32::from_bits(c0.to_bits() ^ (((q + 1) & 2) << 30));
    let s = f32::from_bits(s0.to_bits() ^ ((q & 2) << 30));
    (s, c)
}

/// The radius u₁ of a Box–Muller pair from word `a`: (⌊a/2⁸⌋ + 1)·2⁻²⁴ ∈ (0, 1], exact.
#[inline(always)]
pub fn unit_open0(a: u32) -> f32 {
    (((a >> 8) + 1) as i32 as f32) * INV_2_24
}

/// Two independent N(0, 1) values from two words (Box–Muller).
#[inline(always)]
pub fn normal_pair(a: u32, b: u32) -> (f32, f32) {
    let r = (ln_unit(unit_open0(a)) * -2.0).sqrt();
    let (s, c) = sincos_turn(b);
    (r * c, r * s)
}

/// ±1 from the top bit of a word.
#[inline(always)]
pub fn rademacher(a: u32) -> f32 {
    f32::from_bits(0x3f80_0000 | (a & 0x8000_0000))
}

/// U(−√3, √3) from the top 24 bits of a word.
#[inline(always)]
pub fn uniform(a: u32) -> f32 {
    ((a >> 8) as i32 as f32).mul_add(UNIF_SCALE, UNIF_OFFSET)
}

/// Scalar fill (see [`super::fill_with`]); with `axpy = Some(c)`, `out = z.mul_add(c, out)`
/// instead (see [`super::axpy_raw`]).
pub fn fill(
    k: [u32; 4],
    tensor: u32,
    first_group: u64,
    dist: Distribution,
    axpy: Option<f32>,
    out: &mut [f32],
) {
    for (gi, g) in out.chunks_exact_mut(GROUP).enumerate() {
        let base = (first_group + gi as u64) * BLOCKS_PER_GROUP;
        // The group's 64 words: element p is word p % 4 of block base + p / 4.
        let mut w = [0u32; GROUP];
        for (j, ws) in w.chunks_exact_mut(4).enumerate() {
            ws.copy_from_slice(&ars4x32(counter(tensor, base + j as u64), k));
        }
        let mut z = [0.0f32; GROUP];
        match dist {
            Distribution::Normal => {
                // Runs of 32: element i < 16 pairs with i + 16.
                for run in (0..GROUP).step_by(2 * PAIR_STRIDE) {
                    for i in run..run + PAIR_STRIDE {
                        let (c, s) = normal_pair(w[i], w[i + PAIR_STRIDE]);
                        z[i] = c;
                        z[i + PAIR_STRIDE] = s;
                    }
                }
            }
            Distribution::Rademacher => z = w.map(rademacher),
            Distribution::Uniform => z = w.map(uniform),
        }
        for (o, v) in g.iter_mut().zip(z) {
            *o = match axpy {
                None => v,
                Some(c) => v.mul_add(c, *o),
            };
        }
    }
}
