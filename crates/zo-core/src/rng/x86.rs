//! SIMD kernels of the generator for x86-64: AVX2+FMA (8 lanes) and AVX-512F (16 lanes).
//!
//! The kernel body is written once (`kernel!`) against a handful of primitives that each module
//! defines with its own intrinsics, so the two kernels cannot drift apart. Lane `j` of a vector
//! computes Philox block `16·G + j` (AVX-512) or `16·G + 8h + j` (AVX2, half h), and output word
//! `m` of the block goes to `out[16·m + j]` of the group (the layout of `rng/mod.rs`), so whole
//! vectors are stored with no transpose. Every float operation mirrors `scalar.rs` one for one
//! (same constants, same order, FMA where the scalar code calls `mul_add`).

// The kernel's `philox` special-cases the first two rounds.
const _: () = assert!(super::PHILOX_ROUNDS >= 2);

/// The shared kernel. Expects in scope: `VI`, `VF`, `M`, `LANES`, and the primitives
/// `si sf iota add_i sub_i xor_i and_i or_i srli srai slli mulhilo cvt mul add sub fma sqrt
/// eq_i sel to_f to_i load store`, all with the target features `$feat`.
macro_rules! kernel {
    ($feat:literal) => {
        use super::super::scalar::{
            COS_P, INV_2_24, LOG_P, LOG_Q1, LOG_Q2, SIN_P, SQRTHF_BITS, TWO_PI, UNIF_OFFSET,
            UNIF_SCALE,
        };
        use super::super::{
            Distribution, BLOCKS_PER_GROUP, GROUP, PHILOX_M0, PHILOX_M1, PHILOX_ROUNDS, PHILOX_W0,
            PHILOX_W1,
        };

        /// Philox4x32-R (R = PHILOX_ROUNDS ≥ 2) on N×LANES counters at once (mirrors
        /// `rng::philox4x32`). N independent chains are interleaved round by round: one chain
        /// alone is bound by the latency of its dependent multiply rounds.
        ///
        /// Chain `i` has counters `[c0[i] (per lane), c1[i], t, 0]`: only word 0 differs
        /// between lanes, so the first two rounds are half scalar. Round 1 multiplies the
        /// constant t (its output words 0 and 1 are the same in every lane) and round 2 then
        /// multiplies that constant word 0: each of the two rounds needs one vector 32×32→64
        /// multiply instead of two. Same integers as the scalar rounds, so the same bits.
        #[inline]
        #[target_feature(enable = $feat)]
        fn philox<const N: usize>(
            c0: [VI; N],
            c1: [u32; N],
            t: u32,
            k: &[[u32; 2]; PHILOX_ROUNDS],
        ) -> [[VI; 4]; N] {
            let (m0, m1) = (si(PHILOX_M0), si(PHILOX_M1));
            let p = u64::from(PHILOX_M1) * u64::from(t);
            let (h1, l1) = ((p >> 32) as u32, p as u32);
            let mut c = [[si(0); 4]; N];
            for i in 0..N {
                // Round 1 on [c0, c1, t, 0]: [h1 ^ c1 ^ k0, l1, hi0 ^ k1, lo0].
                let (hi0, lo0) = mulhilo(c0[i], m0);
                let s0 = h1 ^ c1[i] ^ k[0][0];
                let v2 = xor_i(hi0, si(k[0][1]));
                // Round 2 on [s0, l1, v2, lo0]: [hi(M1·v2) ^ l1 ^ k0, lo(M1·v2),
                // hi(M0·s0) ^ lo0 ^ k1, lo(M0·s0)].
                let q = u64::from(PHILOX_M0) * u64::from(s0);
                let (g0, f0) = ((q >> 32) as u32, q as u32);
                let (hi1, lo1) = mulhilo(v2, m1);
                c[i] = [
                    xor_i(hi1, si(l1 ^ k[1][0])),
                    lo1,
                    xor_i(lo0, si(g0 ^ k[1][1])),
                    si(f0),
                ];
            }
            for rk in &k[2..] {
                let (k0, k1) = (si(rk[0]), si(rk[1]));
                for ci in c.iter_mut() {
                    let (hi0, lo0) = mulhilo(ci[0], m0);
                    let (hi1, lo1) = mulhilo(ci[2], m1);
                    *ci = [
                        xor_i(xor_i(hi1, ci[1]), k0),
                        lo1,
                        xor_i(xor_i(hi0, ci[3]), k1),
                        lo0,
                    ];
                }
            }
            c
        }

        /// Mirrors `scalar::normal_pair` on M independent vectors in lockstep (each statement
        /// for all M before the next, so the M dependency chains overlap): returns
        /// (R cos θ, R sin θ) per vector.
        #[inline]
        #[target_feature(enable = $feat)]
        fn normal_pairs(a: &[VI], b: &[VI], zc: &mut [VF], zs: &mut [VF]) {
            const MAX: usize = 8;
            let m_len = a.len();
            assert!(m_len <= MAX && b.len() == m_len && zc.len() == m_len && zs.len() == m_len);
            let mut r = [sf(0.0); MAX];
            let r = &mut r[..m_len];
            let mut x = [sf(0.0); MAX];
            let x = &mut x[..m_len];
            let mut ef = [sf(0.0); MAX];
            let ef = &mut ef[..m_len];
            let mut p = [sf(LOG_P[0]); MAX];
            let p = &mut p[..m_len];

            for i in 0..m_len {
                r[i] = mul(cvt(add_i(srli::<8>(a[i]), si(1))), sf(INV_2_24));
            }
            // ln_unit, lockstep
            let one = sf(1.0);
            for i in 0..m_len {
                let ix = add_i(to_i(r[i]), si(0x3f80_0000 - SQRTHF_BITS));
                ef[i] = cvt(sub_i(srli::<23>(ix), si(127)));
                x[i] = sub(
                    to_f(add_i(and_i(ix, si(0x007f_ffff)), si(SQRTHF_BITS))),
                    one,
                );
            }
            for c in &LOG_P[1..] {
                for i in 0..m_len {
                    p[i] = fma(p[i], x[i], sf(*c));
                }
            }
            for i in 0..m_len {
                let z = mul(x[i], x[i]);
                let mut y = mul(mul(p[i], x[i]), z);
                y = fma(ef[i], sf(LOG_Q1), y);
                y = fma(z, sf(-0.5), y);
                let l = fma(ef[i], sf(LOG_Q2), add(x[i], y));
                r[i] = sqrt(mul(l, sf(-2.0)));
            }
            // sincos_turn, lockstep
            for i in 0..m_len {
                let q = srli::<30>(add_i(b[i], si(1 << 29)));
                let ri = srai::<8>(sub_i(b[i], slli::<30>(q)));
                let t = mul(mul(cvt(ri), sf(INV_2_24)), sf(TWO_PI));
                let z = mul(t, t);
                let mut ps = fma(sf(SIN_P[0]), z, sf(SIN_P[1]));
                ps = fma(ps, z, sf(SIN_P[2]));
                ps = mul(ps, z);
                let sinv = fma(ps, t, t);
                let mut pc = fma(sf(COS_P[0]), z, sf(COS_P[1]));
                pc = fma(pc, z, sf(COS_P[2]));
                pc = mul(pc, mul(z, z));
                let cosv = add(fma(z, sf(-0.5), sf(1.0)), pc);
                let swap = eq_i(and_i(q, si(1)), si(1));
                let c0 = sel(swap, sinv, cosv);
                let s0 = sel(swap, cosv, sinv);
                let c = to_f(xor_i(to_i(c0), slli::<30>(and_i(add_i(q, si(1)), si(2)))));
                let s = to_f(xor_i(to_i(s0), slli::<30>(and_i(q, si(2)))));
                zc[i] = mul(r[i], c);
                zs[i] = mul(r[i], s);
            }
        }

        /// Mirrors `scalar::rademacher`.
        #[inline]
        #[target_feature(enable = $feat)]
        fn rademacher(a: VI) -> VF {
            to_f(or_i(si(0x3f80_0000), and_i(a, si(0x8000_0000))))
        }

        /// Mirrors `scalar::uniform`.
        #[inline]
        #[target_feature(enable = $feat)]
        fn uniform(a: VI) -> VF {
            fma(cvt(srli::<8>(a)), sf(UNIF_SCALE), sf(UNIF_OFFSET))
        }

        /// Generates `N·LANES` consecutive blocks starting at block `b` (a multiple of LANES)
        /// into `out`, the groups those blocks belong to (`out[0]` = element 0 of the group of
        /// block `b − b mod 16`): stores z, or with `axpy = Some(c)` updates
        /// `out = fma(z, c, out)` in place (the sweep's term, with no z buffer).
        #[inline]
        #[target_feature(enable = $feat)]
        fn blocks<const N: usize>(
            k: &[[u32; 2]; PHILOX_ROUNDS],
            tensor: u32,
            b: u64,
            dist: Distribution,
            axpy: Option<f32>,
            out: &mut [f32],
        ) {
            let lanes = iota();
            let mut c0 = [si(0); N];
            let mut c1 = [0u32; N];
            for i in 0..N {
                // b + i·LANES is a multiple of LANES (which divides 2³²), so adding a lane index
                // never carries into the high word: it is the same for all lanes of a chain.
                let bi = b + (i * LANES) as u64;
                c0[i] = add_i(si(bi as u32), lanes);
                c1[i] = (bi >> 32) as u32;
            }
            let w = philox::<N>(c0, c1, tensor, k);
            let mut z = [[sf(0.0); 4]; N];
            match dist {
                Distribution::Normal => {
                    // All 2N Box–Muller pairs of the N chains in lockstep.
                    let mut a = [si(0); 8];
                    let mut bb = [si(0); 8];
                    for i in 0..N {
                        for h in 0..2 {
                            a[2 * i + h] = w[i][2 * h];
                            bb[2 * i + h] = w[i][2 * h + 1];
                        }
                    }
                    let mut zc = [sf(0.0); 8];
                    let mut zs = [sf(0.0); 8];
                    normal_pairs(
                        &a[..2 * N],
                        &bb[..2 * N],
                        &mut zc[..2 * N],
                        &mut zs[..2 * N],
                    );
                    for i in 0..N {
                        for h in 0..2 {
                            z[i][2 * h] = zc[2 * i + h];
                            z[i][2 * h + 1] = zs[2 * i + h];
                        }
                    }
                }
                Distribution::Rademacher => {
                    for i in 0..N {
                        for m in 0..4 {
                            z[i][m] = rademacher(w[i][m]);
                        }
                    }
                }
                Distribution::Uniform => {
                    for i in 0..N {
                        for m in 0..4 {
                            z[i][m] = uniform(w[i][m]);
                        }
                    }
                }
            }
            for (i, zi) in z.iter().enumerate() {
                let off = i * LANES; // block offset from b
                let (g, j) = (off / 16, off % 16);
                for (m, v) in zi.iter().enumerate() {
                    let at = GROUP * g + 16 * m + j;
                    assert!(at + LANES <= out.len());
                    let p = out.as_mut_ptr().wrapping_add(at);
                    // SAFETY: bounds checked just above; unaligned load/store.
                    unsafe {
                        match axpy {
                            None => store(p, *v),
                            Some(c) => store(p, fma(*v, sf(c), load(p))),
                        }
                    }
                }
            }
        }

        /// See `rng::fill_with` (`axpy = None`) and `rng::axpy_raw` (`Some(coef)`).
        /// `out.len()` is a multiple of GROUP (checked by the caller).
        #[target_feature(enable = $feat)]
        pub(in crate::rng) fn fill(
            k: [u32; 2],
            tensor: u32,
            first_group: u64,
            dist: Distribution,
            axpy: Option<f32>,
            out: &mut [f32],
        ) {
            let mut rk = [[0u32; 2]; PHILOX_ROUNDS];
            for (r, slot) in rk.iter_mut().enumerate() {
                let r = r as u32;
                *slot = [
                    k[0].wrapping_add(r.wrapping_mul(PHILOX_W0)),
                    k[1].wrapping_add(r.wrapping_mul(PHILOX_W1)),
                ];
            }
            // CHAINS·LANES blocks per iteration = CHAINS·LANES/16 groups.
            let per = CHAINS * LANES / 16;
            let mut groups = out.chunks_exact_mut(GROUP * per);
            let mut g = first_group;
            for chunk in &mut groups {
                blocks::<CHAINS>(&rk, tensor, g * BLOCKS_PER_GROUP, dist, axpy, chunk);
                g += per as u64;
            }
            for chunk in groups.into_remainder().chunks_exact_mut(GROUP) {
                blocks::<{ 16 / LANES }>(&rk, tensor, g * BLOCKS_PER_GROUP, dist, axpy, chunk);
                g += 1;
            }
        }
    };
}

pub(super) mod avx2 {
    use core::arch::x86_64::*;

    type VI = __m256i;
    type VF = __m256;
    type M = __m256;
    const LANES: usize = 8;
    /// Independent Philox chains interleaved (16 ymm registers: 2 chains fit; 4 spill and
    /// measured slower).
    const CHAINS: usize = 2;

    #[inline]
    #[target_feature(enable = "avx2,fma")]
    fn si(x: u32) -> VI {
        _mm256_set1_epi32(x as i32)
    }
    #[inline]
    #[target_feature(enable = "avx2,fma")]
    fn sf(x: f32) -> VF {
        _mm256_set1_ps(x)
    }
    #[inline]
    #[target_feature(enable = "avx2,fma")]
    fn iota() -> VI {
        _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7)
    }
    #[inline]
    #[target_feature(enable = "avx2,fma")]
    fn add_i(a: VI, b: VI) -> VI {
        _mm256_add_epi32(a, b)
    }
    #[inline]
    #[target_feature(enable = "avx2,fma")]
    fn sub_i(a: VI, b: VI) -> VI {
        _mm256_sub_epi32(a, b)
    }
    #[inline]
    #[target_feature(enable = "avx2,fma")]
    fn xor_i(a: VI, b: VI) -> VI {
        _mm256_xor_si256(a, b)
    }
    #[inline]
    #[target_feature(enable = "avx2,fma")]
    fn and_i(a: VI, b: VI) -> VI {
        _mm256_and_si256(a, b)
    }
    #[inline]
    #[target_feature(enable = "avx2,fma")]
    fn or_i(a: VI, b: VI) -> VI {
        _mm256_or_si256(a, b)
    }
    #[inline]
    #[target_feature(enable = "avx2,fma")]
    fn srli<const N: i32>(a: VI) -> VI {
        _mm256_srli_epi32::<N>(a)
    }
    #[inline]
    #[target_feature(enable = "avx2,fma")]
    fn srai<const N: i32>(a: VI) -> VI {
        _mm256_srai_epi32::<N>(a)
    }
    #[inline]
    #[target_feature(enable = "avx2,fma")]
    fn slli<const N: i32>(a: VI) -> VI {
        _mm256_slli_epi32::<N>(a)
    }
    /// (high, low) 32 bits of the 32×32→64 products, lane by lane.
    #[inline]
    #[target_feature(enable = "avx2,fma")]
    fn mulhilo(a: VI, m: VI) -> (VI, VI) {
        let pe = _mm256_mul_epu32(a, m);
        let po = _mm256_mul_epu32(_mm256_srli_epi64::<32>(a), m);
        let lo = _mm256_blend_epi32::<0b1010_1010>(pe, _mm256_slli_epi64::<32>(po));
        let hi = _mm256_blend_epi32::<0b1010_1010>(_mm256_srli_epi64::<32>(pe), po);
        (hi, lo)
    }
    #[inline]
    #[target_feature(enable = "avx2,fma")]
    fn cvt(a: VI) -> VF {
        _mm256_cvtepi32_ps(a)
    }
    #[inline]
    #[target_feature(enable = "avx2,fma")]
    fn mul(a: VF, b: VF) -> VF {
        _mm256_mul_ps(a, b)
    }
    #[inline]
    #[target_feature(enable = "avx2,fma")]
    fn add(a: VF, b: VF) -> VF {
        _mm256_add_ps(a, b)
    }
    #[inline]
    #[target_feature(enable = "avx2,fma")]
    fn sub(a: VF, b: VF) -> VF {
        _mm256_sub_ps(a, b)
    }
    #[inline]
    #[target_feature(enable = "avx2,fma")]
    fn fma(a: VF, b: VF, c: VF) -> VF {
        _mm256_fmadd_ps(a, b, c)
    }
    #[inline]
    #[target_feature(enable = "avx2,fma")]
    fn sqrt(a: VF) -> VF {
        _mm256_sqrt_ps(a)
    }
    #[inline]
    #[target_feature(enable = "avx2,fma")]
    fn eq_i(a: VI, b: VI) -> M {
        _mm256_castsi256_ps(_mm256_cmpeq_epi32(a, b))
    }
    /// `m ? t : f`, lane by lane.
    #[inline]
    #[target_feature(enable = "avx2,fma")]
    fn sel(m: M, t: VF, f: VF) -> VF {
        _mm256_blendv_ps(f, t, m)
    }
    #[inline]
    #[target_feature(enable = "avx2,fma")]
    fn to_f(a: VI) -> VF {
        _mm256_castsi256_ps(a)
    }
    #[inline]
    #[target_feature(enable = "avx2,fma")]
    fn to_i(a: VF) -> VI {
        _mm256_castps_si256(a)
    }
    /// # Safety
    /// `p` must be valid for reading LANES f32.
    #[inline]
    #[target_feature(enable = "avx2,fma")]
    unsafe fn load(p: *const f32) -> VF {
        // SAFETY: guaranteed by the caller.
        unsafe { _mm256_loadu_ps(p) }
    }
    /// # Safety
    /// `p` must be valid for writing LANES f32.
    #[inline]
    #[target_feature(enable = "avx2,fma")]
    unsafe fn store(p: *mut f32, v: VF) {
        // SAFETY: guaranteed by the caller.
        unsafe { _mm256_storeu_ps(p, v) }
    }

    kernel!("avx2,fma");
}

pub(super) mod avx512 {
    use core::arch::x86_64::*;

    type VI = __m512i;
    type VF = __m512;
    type M = __mmask16;
    const LANES: usize = 16;
    /// Independent Philox chains interleaved (32 zmm registers).
    const CHAINS: usize = 2;

    #[inline]
    #[target_feature(enable = "avx512f")]
    fn si(x: u32) -> VI {
        _mm512_set1_epi32(x as i32)
    }
    #[inline]
    #[target_feature(enable = "avx512f")]
    fn sf(x: f32) -> VF {
        _mm512_set1_ps(x)
    }
    #[inline]
    #[target_feature(enable = "avx512f")]
    fn iota() -> VI {
        _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15)
    }
    #[inline]
    #[target_feature(enable = "avx512f")]
    fn add_i(a: VI, b: VI) -> VI {
        _mm512_add_epi32(a, b)
    }
    #[inline]
    #[target_feature(enable = "avx512f")]
    fn sub_i(a: VI, b: VI) -> VI {
        _mm512_sub_epi32(a, b)
    }
    #[inline]
    #[target_feature(enable = "avx512f")]
    fn xor_i(a: VI, b: VI) -> VI {
        _mm512_xor_si512(a, b)
    }
    #[inline]
    #[target_feature(enable = "avx512f")]
    fn and_i(a: VI, b: VI) -> VI {
        _mm512_and_si512(a, b)
    }
    #[inline]
    #[target_feature(enable = "avx512f")]
    fn or_i(a: VI, b: VI) -> VI {
        _mm512_or_si512(a, b)
    }
    #[inline]
    #[target_feature(enable = "avx512f")]
    fn srli<const N: u32>(a: VI) -> VI {
        _mm512_srli_epi32::<N>(a)
    }
    #[inline]
    #[target_feature(enable = "avx512f")]
    fn srai<const N: u32>(a: VI) -> VI {
        _mm512_srai_epi32::<N>(a)
    }
    #[inline]
    #[target_feature(enable = "avx512f")]
    fn slli<const N: u32>(a: VI) -> VI {
        _mm512_slli_epi32::<N>(a)
    }
    /// (high, low) 32 bits of the 32×32→64 products, lane by lane.
    #[inline]
    #[target_feature(enable = "avx512f")]
    fn mulhilo(a: VI, m: VI) -> (VI, VI) {
        let pe = _mm512_mul_epu32(a, m);
        let po = _mm512_mul_epu32(_mm512_srli_epi64::<32>(a), m);
        let lo = _mm512_mask_blend_epi32(0xAAAA, pe, _mm512_slli_epi64::<32>(po));
        let hi = _mm512_mask_blend_epi32(0xAAAA, _mm512_srli_epi64::<32>(pe), po);
        (hi, lo)
    }
    #[inline]
    #[target_feature(enable = "avx512f")]
    fn cvt(a: VI) -> VF {
        _mm512_cvtepi32_ps(a)
    }
    #[inline]
    #[target_feature(enable = "avx512f")]
    fn mul(a: VF, b: VF) -> VF {
        _mm512_mul_ps(a, b)
    }
    #[inline]
    #[target_feature(enable = "avx512f")]
    fn add(a: VF, b: VF) -> VF {
        _mm512_add_ps(a, b)
    }
    #[inline]
    #[target_feature(enable = "avx512f")]
    fn sub(a: VF, b: VF) -> VF {
        _mm512_sub_ps(a, b)
    }
    #[inline]
    #[target_feature(enable = "avx512f")]
    fn fma(a: VF, b: VF, c: VF) -> VF {
        _mm512_fmadd_ps(a, b, c)
    }
    #[inline]
    #[target_feature(enable = "avx512f")]
    fn sqrt(a: VF) -> VF {
        _mm512_sqrt_ps(a)
    }
    #[inline]
    #[target_feature(enable = "avx512f")]
    fn eq_i(a: VI, b: VI) -> M {
        _mm512_cmpeq_epi32_mask(a, b)
    }
    /// `m ? t : f`, lane by lane.
    #[inline]
    #[target_feature(enable = "avx512f")]
    fn sel(m: M, t: VF, f: VF) -> VF {
        _mm512_mask_blend_ps(m, f, t)
    }
    #[inline]
    #[target_feature(enable = "avx512f")]
    fn to_f(a: VI) -> VF {
        _mm512_castsi512_ps(a)
    }
    #[inline]
    #[target_feature(enable = "avx512f")]
    fn to_i(a: VF) -> VI {
        _mm512_castps_si512(a)
    }
    /// # Safety
    /// `p` must be valid for reading LANES f32.
    #[inline]
    #[target_feature(enable = "avx512f")]
    unsafe fn load(p: *const f32) -> VF {
        // SAFETY: guaranteed by the caller.
        unsafe { _mm512_loadu_ps(p) }
    }
    /// # Safety
    /// `p` must be valid for writing LANES f32.
    #[inline]
    #[target_feature(enable = "avx512f")]
    unsafe fn store(p: *mut f32, v: VF) {
        // SAFETY: guaranteed by the caller.
        unsafe { _mm512_storeu_ps(p, v) }
    }

    kernel!("avx512f");
}
