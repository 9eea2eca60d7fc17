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
    };
}

pub(in crate::rng) mod avx2 {
    use core::arch::x86_64::*;

    avx2_prims!("avx2,fma,aes");

    /// The two 128-bit halves, each one block.
    type AS = [__m128i; 2];
    type AK = __m128i;

    #[inline]
    #[target_feature(enable = "avx2,fma,aes")]
    fn aes_in(v: VI) -> AS {
        [_mm256_castsi256_si128(v), _mm256_extracti128_si256::<1>(v)]
    }
    #[inline]
    #[target_feature(enable = "avx2,fma,aes")]
    fn aes_out(s: AS) -> VI {
        _mm256_set_m128i(s[1], s[0])
    }
    #[inline]
    #[target_feature(enable = "avx2,fma,aes")]
    fn aes_key(k: [u32; 4]) -> AK {
        let [a, b, c, d] = k.map(|x| x as i32);
        _mm_setr_epi32(a, b, c, d)
    }
    #[inline]
    #[target_feature(enable = "avx2,fma,aes")]
    fn aesenc(s: AS, k: AK) -> AS {
        [_mm_aesenc_si128(s[0], k), _mm_aesenc_si128(s[1], k)]
    }
    #[inline]
    #[target_feature(enable = "avx2,fma,aes")]
    fn aesenclast(s: AS, k: AK) -> AS {
        [_mm_aesenclast_si128(s[0], k), _mm_aesenclast_si128(s[1], k)]
    }

    kernel!("avx2,fma,aes");
}

pub(in crate::rng) mod avx2_vaes {
    use core::arch::x86_64::*;

    avx2_prims!("avx2,fma,aes,vaes");

    type AS = __m256i;
    type AK = __m256i;

    #[inline]
    #[target_feature(enable = "avx2,fma,aes,vaes")]
    fn aes_in(v: VI) -> AS {
        v
    }
    #[inline]
    #[target_feature(enable = "avx2,fma,aes,vaes")]
    fn aes_out(s: AS) -> VI {
        s
    }
    #[inline]
    #[target_feature(enable = "avx2,fma,aes,vaes")]
    fn aes_key(k: [u32; 4]) -> AK {
        bcast128(k)
    }
    #[inline]
    #[target_feature(enable = "avx2,fma,aes,vaes")]
    fn aesenc(s: AS, k: AK) -> AS {
        _mm256_aesenc_epi128(s, k)
    }
    #[inline]
    #[target_feature(enable = "avx2,fma,aes,vaes")]
    fn aesenclast(s: AS, k: AK) -> AS {
        _mm256_aesenclast_epi128(s, k)
    }

    kernel!("avx2,fma,aes,vaes");
}
