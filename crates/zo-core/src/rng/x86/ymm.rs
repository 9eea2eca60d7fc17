//! The 8-lane kernels: AVX2+FMA with the AES rounds as two AES-NI xmm `aesenc` (`avx2`) or
//! one VAES ymm `vaesenc` (`avx2_vaes`). Both give the same bits (tested).

/// The AVX2 primitives of `kernel!` shared by both modules (everything but AES).
macro_rules! avx2_prims {
    ($feat:literal) => {
        type VI = __m256i;
        type VF = __m256;
        const LANES: usize = 8;

        /// The four words `w` in each 128-bit lane.
        #[inline]
        #[target_feature(enable = $feat)]
        fn bcast128(w: [u32; 4]) -> VI {
            let [a, b, c, d] = w.map(|x| x as i32);
            _mm256_setr_epi32(a, b, c, d, a, b, c, d)
        }
        /// Word 0 of 128-bit lane j holds j (the block offset of that lane), other words 0.
        #[inline]
        #[target_feature(enable = $feat)]
        fn lane_blocks() -> VI {
            _mm256_setr_epi32(0, 0, 0, 0, 1, 0, 0, 0)
        }
        #[inline]
        #[target_feature(enable = $feat)]
        fn si(x: u32) -> VI {
            _mm256_set1_epi32(x as i32)
        }
        #[inline]
        #[target_feature(enable = $feat)]
        fn sf(x: f32) -> VF {
            _mm256_set1_ps(x)
        }
        #[inline]
        #[target_feature(enable = $feat)]
        fn add_i(a: VI, b: VI) -> VI {
            _mm256_add_epi32(a, b)
        }
        #[inline]
        #[target_feature(enable = $feat)]
        fn sub_i(a: VI, b: VI) -> VI {
            _mm256_sub_epi32(a, b)
        }
        #[inline]
        #[target_feature(enable = $feat)]
        fn xor_i(a: VI, b: VI) -> VI {
            _mm256_xor_si256(a, b)
        }
        #[inline]
        #[target_feature(enable = $feat)]
        fn and_i(a: VI, b: VI) -> VI {
            _mm256_and_si256(a, b)
        }
        #[inline]
        #[target_feature(enable = $feat)]
        fn or_i(a: VI, b: VI) -> VI {
            _mm256_or_si256(a, b)
        }
        #[inline]
        #[target_feature(enable = $feat)]
        fn srli<const N: i32>(a: VI) -> VI {
            _mm256_srli_epi32::<N>(a)
        }
        #[inline]
        #[target_feature(enable = $feat)]
        fn srai<const N: i32>(a: VI) -> VI {
            _mm256_srai_epi32::<N>(a)
        }
        #[inline]
        #[target_feature(enable = $feat)]
        fn slli<const N: i32>(a: VI) -> VI {
            _mm256_slli_epi32::<N>(a)
        }
        #[inline]
        #[target_feature(enable = $feat)]
        fn cvt(a: VI) -> VF {
            _mm256_cvtepi32_ps(a)
        }
        /// `(ix >> 23) − 127` as a float for the bits `ix` of a positive normal float.
        #[inline]
        #[target_feature(enable = $feat)]
        fn exponent(ix: VI) -> VF {
            cvt(sub_i(srli::<23>(ix), si(127)))
        }
        #[inline]
        #[target_feature(enable = $feat)]
        fn mul(a: VF, b: VF) -> VF {
            _mm256_mul_ps(a, b)
        }
        #[inline]
        #[target_feature(enable = $feat)]
        fn sub(a: VF, b: VF) -> VF {
            _mm256_sub_ps(a, b)
        }
        #[inline]
        #[target_feature(enable = $feat)]
        fn fma(a: VF, b: VF, c: VF) -> VF {
            _mm256_fmadd_ps(a, b, c)
        }
        #[inline]
        #[target_feature(enable = $feat)]
        fn sqrt(a: VF) -> VF {
            _mm256_sqrt_ps(a)
        }
        #[inline]
        #[target_feature(enable = $feat)]
        /// `t` where the sign bit of `m` is set, else `f`, lane by lane (blendv reads only
        /// the sign bit).
        fn sel_sign(m: VI, t: VF, f: VF) -> VF {
            _mm256_blendv_ps(f, t, _mm256_castsi256_ps(m))
        }
        #[inline]
        #[target_feature(enable = $feat)]
        fn to_f(a: VI) -> VF {
            _mm256_castsi256_ps(a)
        }
        #[inline]
        #[target_feature(enable = $feat)]
        fn to_i(a: VF) -> VI {
            _mm256_castps_si256(a)
        }
        /// # Safety
        /// `p` must be valid for reading LANES f32.
        #[inline]
        #[target_feature(enable = $feat)]
        unsafe fn load(p: *const f32) -> VF {
            // SAFETY: guaranteed by the caller.
            unsafe { _mm256_loadu_ps(p) }
        }
        /// # Safety
        /// `p` must be valid for writing LANES f32.
        #[inline]
        #[target_feature(enable = $feat)]
        unsafe fn store(p: *mut f32, v: VF) {
            // SAFETY: guaranteed by the caller.
            unsafe { _mm256_storeu_ps(p, v) }
        }
        /// LANES bf16 widened exactly. NaNs keep their bits: every use feeds an FMA, which
        /// makes a signalling NaN quiet with the same payload, as `half`'s widening would have.
        /// # Safety
        /// `p` must be valid for reading LANES u16.
        #[inline]
        #[target_feature(enable = $feat)]
        unsafe fn load_bf16(p: *const u16) -> VF {
            // SAFETY: guaranteed by the caller.
            to_f(slli::<16>(_mm256_cvtepu16_epi32(unsafe {
                _mm_loadu_si128(p.cast())
            })))
        }
        /// LANES f32 rounded to bf16 (`half`'s `from_f32`: nearest even, subnormals kept, NaNs
        /// quiet) and stored.
        /// # Safety
        /// `p` must be valid for writing LANES u16.
        #[inline]
        #[target_feature(enable = $feat)]
        unsafe fn store_bf16(p: *mut u16, v: VF) {
            let x = to_i(v);
            let hi = srli::<16>(x);
            let rounded = srli::<16>(add_i(x, add_i(si(0x7fff), and_i(hi, si(1)))));
            let nan = _mm256_castps_si256(_mm256_cmp_ps::<_CMP_UNORD_Q>(v, v));
            let r = _mm256_blendv_epi8(rounded, or_i(hi, si(0x40)), nan);
            // Every lane ≤ 0xffff: the unsigned saturation of the pack never bites.
            let h = _mm_packus_epi32(_mm256_castsi256_si128(r), _mm256_extracti128_si256::<1>(r));
            // SAFETY: guaranteed by the caller.
            unsafe { _mm_storeu_si128(p.cast(), h) }
        }
        /// LANES f16 widened (F16C, exact; what `half` runs on such a CPU).
        /// # Safety
        /// `p` must be valid for reading LANES u16.
        #[inline]
        #[target_feature(enable = $feat)]
        unsafe fn load_f16(p: *const u16) -> VF {
            // SAFETY: guaranteed by the caller.
            _mm256_cvtph_ps(unsafe { _mm_loadu_si128(p.cast()) })
        }
        /// LANES f32 rounded to f16 (F16C, nearest even) and stored.
        /// # Safety
        /// `p` must be valid for writing LANES u16.
        #[inline]
        #[target_feature(enable = $feat)]
        unsafe fn store_f16(p: *mut u16, v: VF) {
            let h = _mm256_cvtps_ph::<_MM_FROUND_TO_NEAREST_INT>(v);
            // SAFETY: guaranteed by the caller.
            unsafe { _mm_storeu_si128(p.cast(), h) }
        }
    };
}

pub(in crate::rng) mod avx2 {
    use core::arch::x86_64::*;

    avx2_prims!("avx2,fma,aes,f16c");

    /// The two 128-bit halves, each one block.
    type AS = [__m128i; 2];
    type AK = __m128i;

    #[inline]
    #[target_feature(enable = "avx2,fma,aes,f16c")]
    fn aes_in(v: VI) -> AS {
        [_mm256_castsi256_si128(v), _mm256_extracti128_si256::<1>(v)]
    }
    #[inline]
    #[target_feature(enable = "avx2,fma,aes,f16c")]
    fn aes_out(s: AS) -> VI {
        _mm256_set_m128i(s[1], s[0])
    }
    #[inline]
    #[target_feature(enable = "avx2,fma,aes,f16c")]
    fn aes_key(k: [u32; 4]) -> AK {
        let [a, b, c, d] = k.map(|x| x as i32);
        _mm_setr_epi32(a, b, c, d)
    }
    #[inline]
    #[target_feature(enable = "avx2,fma,aes,f16c")]
    fn aesenc(s: AS, k: AK) -> AS {
        [_mm_aesenc_si128(s[0], k), _mm_aesenc_si128(s[1], k)]
    }
    #[inline]
    #[target_feature(enable = "avx2,fma,aes,f16c")]
    fn aesenclast(s: AS, k: AK) -> AS {
        [_mm_aesenclast_si128(s[0], k), _mm_aesenclast_si128(s[1], k)]
    }

    kernel!("avx2,fma,aes,f16c");
}

pub(in crate::rng) mod avx2_vaes {
    use core::arch::x86_64::*;

    avx2_prims!("avx2,fma,aes,vaes,f16c");

    type AS = __m256i;
    type AK = __m256i;

    #[inline]
    #[target_feature(enable = "avx2,fma,aes,vaes,f16c")]
    fn aes_in(v: VI) -> AS {
        v
    }
    #[inline]
    #[target_feature(enable = "avx2,fma,aes,vaes,f16c")]
    fn aes_out(s: AS) -> VI {
        s
    }
    #[inline]
    #[target_feature(enable = "avx2,fma,aes,vaes,f16c")]
    fn aes_key(k: [u32; 4]) -> AK {
        bcast128(k)
    }
    #[inline]
    #[target_feature(enable = "avx2,fma,aes,vaes,f16c")]
    fn aesenc(s: AS, k: AK) -> AS {
        _mm256_aesenc_epi128(s, k)
    }
    #[inline]
    #[target_feature(enable = "avx2,fma,aes,vaes,f16c")]
    fn aesenclast(s: AS, k: AK) -> AS {
        _mm256_aesenclast_epi128(s, k)
    }

    kernel!("avx2,fma,aes,vaes,f16c");
}
