//! bf16/f16 slices widened to f32 and rounded back, vectorised. Used by the sweep for the tiles
//! whose terms are not fused with the conversions (`rng::axpy_io`: a weight decay that applies,
//! a direction used twice in one sweep, more than `perturb::MAX_FUSED` terms, a tensor's last
//! partial group, the scalar instruction set), and by `zo-models` to read 16-bit weights into
//! its f32 kernels.
//!
//! The values are the `half` crate's, bit for bit (the tests compare every 16-bit pattern on the
//! way in and a wide sample of f32 patterns on the way out): widening is exact and makes NaNs
//! quiet, narrowing rounds to nearest even, keeps subnormals (bf16's as well as f16's), turns
//! NaNs quiet with their sign and high payload bits, and rounds overflow to ±∞.
//!
//! `half` converts bf16 one element at a time behind a NaN branch, and f16 eight at a time
//! through a call per vector. Here:
//!
//! - bf16 → f32 is a 16-bit shift (NaNs made quiet, as `half` does); f32 → bf16 the integer
//!   round-to-nearest-even `(x + 0x7fff + lsb) >> 16`, NaNs as `(x >> 16) | 0x40` (`half`'s
//!   rule). The CPU's own `vcvtneps2bf16` (AVX512-BF16) is not used: it flushes subnormal
//!   inputs to zero.
//! - f16 ↔ f32 are `vcvtph2ps` / `vcvtps2ph` with round-to-nearest-even: what `half` itself runs
//!   on a CPU with F16C (which every [`Isa`] but `Scalar` requires), 16 lanes under AVX-512F.
//!
//! [`Isa::Scalar`] takes `half`'s slice conversions; tails shorter than a vector take `half`'s
//! too.

use half::slice::HalfFloatSliceExt;
use half::{bf16, f16};

use crate::rng::Isa;

/// `src` widened into `dst` (same length; panics otherwise), on the widest instruction set.
pub fn bf16_to_f32(src: &[bf16], dst: &mut [f32]) {
    bf16_to_f32_on(Isa::detect(), src, dst)
}

/// `src` rounded into `dst` (same length; panics otherwise), on the widest instruction set.
pub fn f32_to_bf16(src: &[f32], dst: &mut [bf16]) {
    f32_to_bf16_on(Isa::detect(), src, dst)
}

/// `src` widened into `dst` (same length; panics otherwise), on the widest instruction set.
pub fn f16_to_f32(src: &[f16], dst: &mut [f32]) {
    f16_to_f32_on(Isa::detect(), src, dst)
}

/// `src` rounded into `dst` (same length; panics otherwise), on the widest instruction set.
pub fn f32_to_f16(src: &[f32], dst: &mut [f16]) {
    f32_to_f16_on(Isa::detect(), src, dst)
}

/// [`bf16_to_f32`] on `isa` (which the caller has checked is available).
pub(crate) fn bf16_to_f32_on(isa: Isa, src: &[bf16], dst: &mut [f32]) {
    assert_eq!(src.len(), dst.len());
    #[cfg(target_arch = "x86_64")]
    {
        let done = match isa {
            // SAFETY: `Isa::Avx512` is only chosen on a CPU with AVX-512F, the AVX2 ones on a
            // CPU with AVX2 and F16C (`Isa::is_available`, checked by the sweep before it runs).
            Isa::Avx512 => unsafe { x86::bf16_to_f32_avx512(src, dst) },
            Isa::Avx2 | Isa::Avx2Vaes => unsafe { x86::bf16_to_f32_avx2(src, dst) },
            Isa::Scalar => 0,
        };
        src[done..].convert_to_f32_slice(&mut dst[done..]);
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        let _ = isa;
        src.convert_to_f32_slice(dst);
    }
}

/// [`f32_to_bf16`] on `isa` (available).
pub(crate) fn f32_to_bf16_on(isa: Isa, src: &[f32], dst: &mut [bf16]) {
    assert_eq!(src.len(), dst.len());
    #[cfg(target_arch = "x86_64")]
    {
        let done = match isa {
            // SAFETY: as in `bf16_to_f32`.
            Isa::Avx512 => unsafe { x86::f32_to_bf16_avx512(src, dst) },
            Isa::Avx2 | Isa::Avx2Vaes => unsafe { x86::f32_to_bf16_avx2(src, dst) },
            Isa::Scalar => 0,
        };
        dst[done..].convert_from_f32_slice(&src[done..]);
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        let _ = isa;
        dst.convert_from_f32_slice(src);
    }
}

/// [`f16_to_f32`] on `isa` (available).
pub(crate) fn f16_to_f32_on(isa: Isa, src: &[f16], dst: &mut [f32]) {
    assert_eq!(src.len(), dst.len());
    #[cfg(target_arch = "x86_64")]
    {
        let done = match isa {
            // SAFETY: as in `bf16_to_f32` (the AVX2 instruction sets require F16C).
            Isa::Avx512 => unsafe { x86::f16_to_f32_avx512(src, dst) },
            Isa::Avx2 | Isa::Avx2Vaes => unsafe { x86::f16_to_f32_f16c(src, dst) },
            Isa::Scalar => 0,
        };
        src[done..].convert_to_f32_slice(&mut dst[done..]);
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        let _ = isa;
        src.convert_to_f32_slice(dst);
    }
}

/// [`f32_to_f16`] on `isa` (available).
pub(crate) fn f32_to_f16_on(isa: Isa, src: &[f32], dst: &mut [f16]) {
    assert_eq!(src.len(), dst.len());
    #[cfg(target_arch = "x86_64")]
    {
        let done = match isa {
            // SAFETY: as in `f16_to_f32`.
            Isa::Avx512 => unsafe { x86::f32_to_f16_avx512(src, dst) },
            Isa::Avx2 | Isa::Avx2Vaes => unsafe { x86::f32_to_f16_f16c(src, dst) },
            Isa::Scalar => 0,
        };
        dst[done..].convert_from_f32_slice(&src[done..]);
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        let _ = isa;
        dst.convert_from_f32_slice(src);
    }
}

/// The vector loops. Each converts the longest prefix that fills whole vectors and returns its
/// length; the caller converts the rest. `src` and `dst` have the same length.
#[cfg(target_arch = "x86_64")]
mod x86 {
    use std::arch::x86_64::*;

    use half::{bf16, f16};

    #[target_feature(enable = "avx512f")]
    pub(super) fn bf16_to_f32_avx512(src: &[bf16], dst: &mut [f32]) -> usize {
        let n = src.len() / 16 * 16;
        let abs_mask = _mm512_set1_epi32(0x7fff);
        let inf = _mm512_set1_epi32(0x7f80);
        let quiet = _mm512_set1_epi32(0x40);
        for i in (0..n).step_by(16) {
            // SAFETY: elements i..i + 16 are in bounds of both slices (i + 16 ≤ n ≤ len);
            // unaligned loads and stores.
            unsafe {
                let h = _mm512_cvtepu16_epi32(_mm256_loadu_si256(src.as_ptr().add(i).cast()));
                // NaNs come out quiet, as `half` widens them.
                let nan = _mm512_cmpgt_epi32_mask(_mm512_and_si512(h, abs_mask), inf);
                let h = _mm512_mask_or_epi32(h, nan, h, quiet);
                let x = _mm512_slli_epi32::<16>(h);
                _mm512_storeu_si512(dst.as_mut_ptr().add(i).cast(), x);
            }
        }
        n
    }

    /// Sixteen f32 bit patterns rounded to bf16 in the low 16 bits of each lane.
    #[inline]
    #[target_feature(enable = "avx512f")]
    fn round_bf16_avx512(x: __m512i) -> __m512i {
        let hi = _mm512_srli_epi32::<16>(x);
        let lsb = _mm512_and_si512(hi, _mm512_set1_epi32(1));
        let rounded = _mm512_srli_epi32::<16>(_mm512_add_epi32(
            x,
            _mm512_add_epi32(_mm512_set1_epi32(0x7fff), lsb),
        ));
        // |x| > ∞ as integers (both non-negative): NaN.
        let abs = _mm512_and_si512(x, _mm512_set1_epi32(0x7fff_ffff));
        let nan = _mm512_cmpgt_epi32_mask(abs, _mm512_set1_epi32(0x7f80_0000));
        _mm512_mask_or_epi32(rounded, nan, hi, _mm512_set1_epi32(0x40))
    }

    #[target_feature(enable = "avx512f")]
    pub(super) fn f32_to_bf16_avx512(src: &[f32], dst: &mut [bf16]) -> usize {
        let n = src.len() / 16 * 16;
        for i in (0..n).step_by(16) {
            // SAFETY: as in `bf16_to_f32_avx512`.
            unsafe {
                let r = round_bf16_avx512(_mm512_loadu_si512(src.as_ptr().add(i).cast()));
                _mm256_storeu_si256(dst.as_mut_ptr().add(i).cast(), _mm512_cvtepi32_epi16(r));
            }
        }
        n
    }

    #[target_feature(enable = "avx512f")]
    pub(super) fn f16_to_f32_avx512(src: &[f16], dst: &mut [f32]) -> usize {
        let n = src.len() / 16 * 16;
        for i in (0..n).step_by(16) {
            // SAFETY: as in `bf16_to_f32_avx512`.
            unsafe {
                let h = _mm256_loadu_si256(src.as_ptr().add(i).cast());
                _mm512_storeu_ps(dst.as_mut_ptr().add(i), _mm512_cvtph_ps(h));
            }
        }
        n
    }

    #[target_feature(enable = "avx512f")]
    pub(super) fn f32_to_f16_avx512(src: &[f32], dst: &mut [f16]) -> usize {
        let n = src.len() / 16 * 16;
        for i in (0..n).step_by(16) {
            // SAFETY: as in `bf16_to_f32_avx512`.
            unsafe {
                let x = _mm512_loadu_ps(src.as_ptr().add(i));
                let h = _mm512_cvtps_ph::<_MM_FROUND_TO_NEAREST_INT>(x);
                _mm256_storeu_si256(dst.as_mut_ptr().add(i).cast(), h);
            }
        }
        n
    }

    #[target_feature(enable = "avx2")]
    pub(super) fn bf16_to_f32_avx2(src: &[bf16], dst: &mut [f32]) -> usize {
        let n = src.len() / 8 * 8;
        for i in (0..n).step_by(8) {
            // SAFETY: as in `bf16_to_f32_avx512`, 8 elements.
            unsafe {
                let h = _mm256_cvtepu16_epi32(_mm_loadu_si128(src.as_ptr().add(i).cast()));
                let abs = _mm256_and_si256(h, _mm256_set1_epi32(0x7fff));
                let nan = _mm256_cmpgt_epi32(abs, _mm256_set1_epi32(0x7f80));
                let h = _mm256_or_si256(h, _mm256_and_si256(nan, _mm256_set1_epi32(0x40)));
                let x = _mm256_slli_epi32::<16>(h);
                _mm256_storeu_si256(dst.as_mut_ptr().add(i).cast(), x);
            }
        }
        n
    }

    /// Eight f32 bit patterns rounded to bf16 in the low 16 bits of each lane.
    #[target_feature(enable = "avx2")]
    fn round_bf16_avx2(x: __m256i) -> __m256i {
        let hi = _mm256_srli_epi32::<16>(x);
        let lsb = _mm256_and_si256(hi, _mm256_set1_epi32(1));
        let rounded = _mm256_srli_epi32::<16>(_mm256_add_epi32(
            x,
            _mm256_add_epi32(_mm256_set1_epi32(0x7fff), lsb),
        ));
        let abs = _mm256_and_si256(x, _mm256_set1_epi32(0x7fff_ffff));
        let nan = _mm256_cmpgt_epi32(abs, _mm256_set1_epi32(0x7f80_0000));
        let quiet = _mm256_or_si256(hi, _mm256_set1_epi32(0x40));
        _mm256_blendv_epi8(rounded, quiet, nan)
    }

    #[target_feature(enable = "avx2")]
    pub(super) fn f32_to_bf16_avx2(src: &[f32], dst: &mut [bf16]) -> usize {
        let n = src.len() / 16 * 16;
        for i in (0..n).step_by(16) {
            // SAFETY: as in `bf16_to_f32_avx512`.
            unsafe {
                let a = round_bf16_avx2(_mm256_loadu_si256(src.as_ptr().add(i).cast()));
                let b = round_bf16_avx2(_mm256_loadu_si256(src.as_ptr().add(i + 8).cast()));
                // Every lane is ≤ 0xffff, so the unsigned saturation never bites; the pack
                // interleaves 128-bit halves (a0-3 b0-3 a4-7 b4-7), the permute restores order.
                let packed = _mm256_packus_epi32(a, b);
                let ordered = _mm256_permute4x64_epi64::<0b11_01_10_00>(packed);
                _mm256_storeu_si256(dst.as_mut_ptr().add(i).cast(), ordered);
            }
        }
        n
    }

    #[target_feature(enable = "avx2,f16c")]
    pub(super) fn f16_to_f32_f16c(src: &[f16], dst: &mut [f32]) -> usize {
        let n = src.len() / 8 * 8;
        for i in (0..n).step_by(8) {
            // SAFETY: as in `bf16_to_f32_avx512`, 8 elements.
            unsafe {
                let h = _mm_loadu_si128(src.as_ptr().add(i).cast());
                _mm256_storeu_ps(dst.as_mut_ptr().add(i), _mm256_cvtph_ps(h));
            }
        }
        n
    }

    #[target_feature(enable = "avx2,f16c")]
    pub(super) fn f32_to_f16_f16c(src: &[f32], dst: &mut [f16]) -> usize {
        let n = src.len() / 8 * 8;
        for i in (0..n).step_by(8) {
            // SAFETY: as in `bf16_to_f32_avx512`, 8 elements.
            unsafe {
                let x = _mm256_loadu_ps(src.as_ptr().add(i));
                let h = _mm256_cvtps_ph::<_MM_FROUND_TO_NEAREST_INT>(x);
                _mm_storeu_si128(dst.as_mut_ptr().add(i).cast(), h);
            }
        }
        n
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every instruction set this CPU has.
    fn isas() -> Vec<Isa> {
        Isa::ALL.into_iter().filter(|i| i.is_available()).collect()
    }

    /// Lengths that exercise whole vectors, tails and slices shorter than a vector.
    const LENS: [usize; 6] = [0, 1, 7, 8, 17, 65];

    /// f32 bit patterns for the narrowing: every exponent with mantissas at and around the
    /// bf16 and f16 rounding boundaries (ties to even and odd, one ulp either side), both
    /// signs, zeros, subnormals, ±∞, quiet and signalling NaNs, and a pseudo-random spread.
    fn f32_patterns() -> Vec<u32> {
        let mut out = Vec::new();
        let mut mantissas = vec![0u32, 1, 0x7f_ffff, 0x40_0000];
        // bf16 keeps 7 mantissa bits (round bit 0x8000), f16 10 (round bit 0x1000): a tie,
        // one below and one above it, with the kept last bit even and odd.
        for round in [0x8000u32, 0x1000] {
            let high = 0x55_0000 & !(round * 4 - 1);
            for lsb in [0, round << 1] {
                for delta in [-1i32, 0, 1] {
                    mantissas.push((high | lsb | round).wrapping_add_signed(delta) & 0x7f_ffff);
                }
            }
        }
        for sign in [0u32, 0x8000_0000] {
            for exp in 0..=255u32 {
                for &m in &mantissas {
                    out.push(sign | exp << 23 | m);
                }
            }
        }
        // SplitMix64 spread.
        let mut s = 0x9e37_79b9_7f4a_7c15u64;
        for _ in 0..200_000 {
            s = s.wrapping_add(0x9e37_79b9_7f4a_7c15);
            let mut z = s;
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            out.push((z ^ (z >> 31)) as u32);
        }
        out
    }

    /// Narrowing, every instruction set, against `half`'s one-element conversions.
    #[test]
    fn narrowing_matches_half_bit_for_bit() {
        let src: Vec<f32> = f32_patterns().into_iter().map(f32::from_bits).collect();
        for isa in isas() {
            let mut b = vec![bf16::ZERO; src.len()];
            f32_to_bf16_on(isa, &src, &mut b);
            let mut h = vec![f16::ZERO; src.len()];
            f32_to_f16_on(isa, &src, &mut h);
            for (i, x) in src.iter().enumerate() {
                assert_eq!(
                    b[i].to_bits(),
                    bf16::from_f32(*x).to_bits(),
                    "{isa:?} bf16 of {:#010x}",
                    x.to_bits()
                );
                assert_eq!(
                    h[i].to_bits(),
                    f16::from_f32(*x).to_bits(),
                    "{isa:?} f16 of {:#010x}",
                    x.to_bits()
                );
            }
            // Short slices and tails, at every start offset modulo a vector.
            for len in LENS {
                for start in [0, 3] {
                    let s = &src[1000 + start..1000 + start + len];
                    let mut b = vec![bf16::ZERO; len];
                    f32_to_bf16_on(isa, s, &mut b);
                    let mut h = vec![f16::ZERO; len];
                    f32_to_f16_on(isa, s, &mut h);
                    for (i, x) in s.iter().enumerate() {
                        assert_eq!(b[i], bf16::from_f32(*x), "{isa:?} len {len}");
                        assert_eq!(h[i].to_bits(), f16::from_f32(*x).to_bits(), "{isa:?}");
                    }
                }
            }
        }
    }

    /// Widening, every instruction set, every 16-bit pattern.
    #[test]
    fn widening_matches_half_on_every_pattern() {
        let all: Vec<u16> = (0..=u16::MAX).collect();
        let b: Vec<bf16> = all.iter().map(|&u| bf16::from_bits(u)).collect();
        let h: Vec<f16> = all.iter().map(|&u| f16::from_bits(u)).collect();
        for isa in isas() {
            for len in LENS.into_iter().chain([all.len()]) {
                let mut out = vec![0.0f32; len];
                bf16_to_f32_on(isa, &b[all.len() - len..], &mut out);
                for (x, y) in b[all.len() - len..].iter().zip(&out) {
                    assert_eq!(y.to_bits(), x.to_f32().to_bits(), "{isa:?} bf16 {x:?}");
                }
                f16_to_f32_on(isa, &h[all.len() - len..], &mut out);
                for (x, y) in h[all.len() - len..].iter().zip(&out) {
                    assert_eq!(
                        y.to_bits(),
                        x.to_f32().to_bits(),
                        "{isa:?} f16 {:#06x}",
                        x.to_bits()
                    );
                }
            }
        }
    }
}
