//! The 16-lane kernel: AVX-512F with one VAES zmm `vaesenc` per AES round (four blocks), two
//! groups per iteration (`kernel!`'s GPI). Checked by the ISA tests on any AVX-512 host (first
//! run on hardware on 2026-11-23, a Sapphire Rapids machine: bit-identical to the scalar path).

pub(in crate::rng) mod avx512 {
    use core::arch::x86_64::*;

    type VI = __m512i;
    type VF = __m512;
    const LANES: usize = 16;
    type AS = __m512i;
    type AK = __m512i;

    /// The four words `w` in each 128-bit lane.
    #[inline]
    #[target_feature(enable = "avx512f,avx2,fma,aes,vaes,f16c")]
    fn bcast128(w: [u32; 4]) -> VI {
        let [a, b, c, d] = w.map(|x| x as i32);
        _mm512_setr_epi32(a, b, c, d, a, b, c, d, a, b, c, d, a, b, c, d)
    }
    /// Word 0 of 128-bit lane j holds j (the block offset of that lane), other words 0.
    #[inline]
    #[target_feature(enable = "avx512f,avx2,fma,aes,vaes,f16c")]
    fn lane_blocks() -> VI {
        _mm512_setr_epi32(0, 0, 0, 0, 1, 0, 0, 0, 2, 0, 0, 0, 3, 0, 0, 0)
    }
    #[inline]
    #[target_feature(enable = "avx512f,avx2,fma,aes,vaes,f16c")]
    fn aes_in(v: VI) -> AS {
        v
    }
    #[inline]
    #[target_feature(enable = "avx512f,avx2,fma,aes,vaes,f16c")]
    fn aes_out(s: AS) -> VI {
        s
    }
    #[inline]
    #[target_feature(enable = "avx512f,avx2,fma,aes,vaes,f16c")]
    fn aes_key(k: [u32; 4]) -> AK {
        bcast128(k)
    }
    #[inline]
    #[target_feature(enable = "avx512f,avx2,fma,aes,vaes,f16c")]
    fn aesenc(s: AS, k: AK) -> AS {
        _mm512_aesenc_epi128(s, k)
    }
    #[inline]
    #[target_feature(enable = "avx512f,avx2,fma,aes,vaes,f16c")]
    fn aesenclast(s: AS, k: AK) -> AS {
        _mm512_aesenclast_epi128(s, k)
    }
    #[inline]
    #[target_feature(enable = "avx512f,avx2,fma,aes,vaes,f16c")]
    fn si(x: u32) -> VI {
        _mm512_set1_epi32(x as i32)
    }
    #[inline]
    #[target_feature(enable = "avx512f,avx2,fma,aes,vaes,f16c")]
    fn sf(x: f32) -> VF {
        _mm512_set1_ps(x)
    }
    #[inline]
    #[target_feature(enable = "avx512f,avx2,fma,aes,vaes,f16c")]
    fn add_i(a: VI, b: VI) -> VI {
        _mm512_add_epi32(a, b)
    }
    #[inline]
    #[target_feature(enable = "avx512f,avx2,fma,aes,vaes,f16c")]
    fn xor_i(a: VI, b: VI) -> VI {
        _mm512_xor_si512(a, b)
    }
    #[inline]
    #[target_feature(enable = "avx512f,avx2,fma,aes,vaes,f16c")]
    fn and_i(a: VI, b: VI) -> VI {
        _mm512_and_si512(a, b)
    }
    #[inline]
    #[target_feature(enable = "avx512f,avx2,fma,aes,vaes,f16c")]
    fn or_i(a: VI, b: VI) -> VI {
        _mm512_or_si512(a, b)
    }
    #[inline]
    #[target_feature(enable = "avx512f,avx2,fma,aes,vaes,f16c")]
    fn srli<const N: u32>(a: VI) -> VI {
        _mm512_srli_epi32::<N>(a)
    }
    #[inline]
    #[target_feature(enable = "avx512f,avx2,fma,aes,vaes,f16c")]
    fn srai<const N: u32>(a: VI) -> VI {
        _mm512_srai_epi32::<N>(a)
    }
    #[inline]
    #[target_feature(enable = "avx512f,avx2,fma,aes,vaes,f16c")]
    fn slli<const N: u32>(a: VI) -> VI {
        _mm512_slli_epi32::<N>(a)
    }
    #[inline]
    #[target_feature(enable = "avx512f,avx2,fma,aes,vaes,f16c")]
    fn cvt(a: VI) -> VF {
        _mm512_cvtepi32_ps(a)
    }
    /// `(ix >> 23) − 127` as a float for the bits `ix` of a positive normal float: its
    /// exponent, which `vgetexpps` gives in one operation (exact).
    #[inline]
    #[target_feature(enable = "avx512f,avx2,fma,aes,vaes,f16c")]
    fn exponent(ix: VI) -> VF {
        _mm512_getexp_ps(_mm512_castsi512_ps(ix))
    }
    #[inline]
    #[target_feature(enable = "avx512f,avx2,fma,aes,vaes,f16c")]
    fn mul(a: VF, b: VF) -> VF {
        _mm512_mul_ps(a, b)
    }
    #[inline]
    #[target_feature(enable = "avx512f,avx2,fma,aes,vaes,f16c")]
    fn sub(a: VF, b: VF) -> VF {
        _mm512_sub_ps(a, b)
    }
    #[inline]
    #[target_feature(enable = "avx512f,avx2,fma,aes,vaes,f16c")]
    fn fma(a: VF, b: VF, c: VF) -> VF {
        _mm512_fmadd_ps(a, b, c)
    }
    #[inline]
    #[target_feature(enable = "avx512f,avx2,fma,aes,vaes,f16c")]
    fn sqrt(a: VF) -> VF {
        _mm512_sqrt_ps(a)
    }
    #[inline]
    #[target_feature(enable = "avx512f,avx2,fma,aes,vaes,f16c")]
    /// `t` where the sign bit of `m` is set, else `f`, lane by lane.
    fn sel_sign(m: VI, t: VF, f: VF) -> VF {
        _mm512_mask_blend_ps(_mm512_cmplt_epi32_mask(m, _mm512_setzero_si512()), f, t)
    }
    #[inline]
    #[target_feature(enable = "avx512f,avx2,fma,aes,vaes,f16c")]
    fn to_f(a: VI) -> VF {
        _mm512_castsi512_ps(a)
    }
    #[inline]
    #[target_feature(enable = "avx512f,avx2,fma,aes,vaes,f16c")]
    fn to_i(a: VF) -> VI {
        _mm512_castps_si512(a)
    }
    /// # Safety
    /// `p` must be valid for reading LANES f32.
    #[inline]
    #[target_feature(enable = "avx512f,avx2,fma,aes,vaes,f16c")]
    unsafe fn load(p: *const f32) -> VF {
        // SAFETY: guaranteed by the caller.
        unsafe { _mm512_loadu_ps(p) }
    }
    /// # Safety
    /// `p` must be valid for writing LANES f32.
    #[inline]
    #[target_feature(enable = "avx512f,avx2,fma,aes,vaes,f16c")]
    unsafe fn store(p: *mut f32, v: VF) {
        // SAFETY: guaranteed by the caller.
        unsafe { _mm512_storeu_ps(p, v) }
    }
    /// LANES bf16 widened exactly. NaNs keep their bits: every use feeds an FMA, which makes
    /// a signalling NaN quiet with the same payload, as `half`'s widening would have.
    /// # Safety
    /// `p` must be valid for reading LANES u16.
    #[inline]
    #[target_feature(enable = "avx512f,avx2,fma,aes,vaes,f16c")]
    unsafe fn load_bf16(p: *const u16) -> VF {
        // SAFETY: guaranteed by the caller.
        to_f(slli::<16>(_mm512_cvtepu16_epi32(unsafe {
            _mm256_loadu_si256(p.cast())
        })))
    }
    /// LANES f32 rounded to bf16 (`half`'s `from_f32`: nearest even, subnormals kept, NaNs
    /// quiet) and stored. (`vcvtneps2bf16` of AVX512-BF16 flushes subnormal inputs to zero;
    /// with a test for them it measured ≈ 7 % faster on the one-term bf16 sweep on Zen 4, not
    /// worth a second copy of the kernel.)
    /// # Safety
    /// `p` must be valid for writing LANES u16.
    #[inline]
    #[target_feature(enable = "avx512f,avx2,fma,aes,vaes,f16c")]
    unsafe fn store_bf16(p: *mut u16, v: VF) {
        let x = to_i(v);
        let hi = srli::<16>(x);
        let rounded = srli::<16>(add_i(x, add_i(si(0x7fff), and_i(hi, si(1)))));
        let nan = _mm512_cmp_ps_mask::<_CMP_UNORD_Q>(v, v);
        let r = _mm512_mask_or_epi32(rounded, nan, hi, si(0x40));
        // `vpmovdw` (to memory, as compiled) measured faster on Zen 4 than a pack and permute.
        // SAFETY: guaranteed by the caller.
        unsafe { _mm256_storeu_si256(p.cast(), _mm512_cvtepi32_epi16(r)) }
    }
    /// LANES f16 widened (exact; `vcvtph2ps`, what `half` runs on a CPU with F16C).
    /// # Safety
    /// `p` must be valid for reading LANES u16.
    #[inline]
    #[target_feature(enable = "avx512f,avx2,fma,aes,vaes,f16c")]
    unsafe fn load_f16(p: *const u16) -> VF {
        // SAFETY: guaranteed by the caller.
        _mm512_cvtph_ps(unsafe { _mm256_loadu_si256(p.cast()) })
    }
    /// LANES f32 rounded to f16 (nearest even) and stored.
    /// # Safety
    /// `p` must be valid for writing LANES u16.
    #[inline]
    #[target_feature(enable = "avx512f,avx2,fma,aes,vaes,f16c")]
    unsafe fn store_f16(p: *mut u16, v: VF) {
        let h = _mm512_cvtps_ph::<_MM_FROUND_TO_NEAREST_INT>(v);
        // SAFETY: guaranteed by the caller.
        unsafe { _mm256_storeu_si256(p.cast(), h) }
    }

    kernel!("avx512f,avx2,fma,aes,vaes,f16c", 2);
}
