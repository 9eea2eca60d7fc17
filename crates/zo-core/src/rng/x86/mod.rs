//! SIMD kernels of the generator for x86-64: AVX2+FMA with AES-NI or VAES (8 lanes) and
//! AVX-512F+VAES (16 lanes).
//!
//! The kernel body is written once (`kernel!`) against a handful of primitives that each module
//! defines with its own intrinsics, so the kernels cannot drift apart. A 128-bit lane of a vector
//! holds one ARS block (4 words = 4 consecutive elements, the layout of `rng/mod.rs`), so vector
//! `i` of a group is elements `LANES·i ..`: whole vectors are stored with no transpose. The
//! Box–Muller pairs (elements 16 apart) are then whole vectors too. Every float operation mirrors
//! `scalar.rs` one for one (same constants, same order, FMA where the scalar code calls
//! `mul_add`); `aesenc`/`aesenclast` are the AES rounds `ars.rs` computes in software.

/// The shared kernel. Expects in scope: `VI`, `VF`, `M`, `AS` (AES state of one vector), `AK`
/// (a round key), `LANES`, and the primitives `si sf bcast128 lane_blocks add_i xor_i
/// and_i or_i srli srai slli cvt exponent mul sub fma sqrt sel_sign to_f to_i load store aes_in
/// aes_out aes_key aesenc aesenclast`, all with the target features `$feat`.
macro_rules! kernel {
    ($feat:literal) => {
        kernel!($feat, 1);
    };
    ($feat:literal, $gpi:literal) => {
        use crate::rng::ars::round_key;
        use crate::rng::scalar::{
            COS_P, INV_2_24, LOG_P, LOG_Q1, LOG_Q2, SIN_P, SQRTHF_BITS, TWO_PI, UNIF_OFFSET,
            UNIF_SCALE,
        };
        use crate::rng::{
            Distribution, ARS_ROUNDS, BLOCKS_PER_GROUP, GROUP, KIND_BF16, KIND_F32, PAIR_STRIDE,
        };

        const R: usize = ARS_ROUNDS as usize;
        /// `LOG_P` for the variable x' = −2x and the result scaled by −2: the coefficient of
        /// x^j (LOG_P[8 − j]) times (−½)^j / 4, then q̂ = p̂·x' + ¼ = −q/2 and
        /// y' = q̂·x'² + x' = −2y (see `normal_pairs`). Powers of two: exact.
        const LOG_PH: [f32; 9] = {
            let mut c = LOG_P;
            let mut i = 0;
            while i < 9 {
                let mut s = 0.25f32;
                let mut j = 0;
                while j < 8 - i {
                    s *= -0.5;
                    j += 1;
                }
                c[i] *= s;
                i += 1;
            }
            c
        };
        /// Vectors per group.
        const NV: usize = GROUP / LANES;
        /// Vectors per half of a Box–Muller run (16 elements).
        const NP: usize = PAIR_STRIDE / LANES;
        const _: () = assert!(NP >= 1 && NV % (2 * NP) == 0 && GPI <= 4);
        /// Box–Muller pair vectors computed in lockstep: 4 overlaps the dependency chains of
        /// the polynomials (2 measured slower; the AVX2 kernel spills a little at 4 already).
        const LOCKSTEP: usize = 4;
        /// Groups per kernel iteration, whose NV·GPI ARS chains run interleaved (the macro's
        /// second argument). AVX2: 1, since with 2 the 16 ymm AES states spill and ARS alone
        /// measured 15-45 % slower (`rng_micro`, Zen 3). AVX-512: 2, since 32 zmm registers
        /// hold 8 states; on the Sapphire Rapids machine (2026-11-23, quiet, 3 alternated runs
        /// of `sweep_bench --threads 2 --repeats 9`) the one-term sweep took 34.4-34.8 ms
        /// against 38.0-39.1 ms with 1 and 35.2-37.5 ms with 4.
        const GPI: usize = $gpi;
        /// Floats ahead of the current group that the axpy sweep prefetches (4 KB, 16 groups
        /// ahead; the group's 4 cache lines each call). On the AVX-512 machine (2026-11-23,
        /// alternated runs of `rng_micro` and `sweep_bench`, other load present) the one-term
        /// sweep's CPU time went from 97-101 to 81-86 ms on one thread, and 4096 floats ahead
        /// gave 87-95 ms.
        const PREFETCH_AHEAD: usize = 1024;

        /// The group-invariant inputs: round keys and per-vector block offsets.
        struct Setup {
            /// Round key 0 (the key), XORed into the counter before the rounds.
            k0: VI,
            /// Keys of rounds 1..=R.
            rk: [AK; R],
            /// Vector i of a group starts at block `LANES/4 · i`; lane j of it adds j.
            step: [VI; NV],
        }

        #[inline]
        #[target_feature(enable = $feat)]
        fn setup(k: [u32; 4]) -> Setup {
            let lanes = lane_blocks();
            let mut step = [si(0); NV];
            for (i, s) in step.iter_mut().enumerate() {
                *s = add_i(bcast128([(i * LANES / 4) as u32, 0, 0, 0]), lanes);
            }
            Setup {
                k0: bcast128(k),
                rk: core::array::from_fn(|r| aes_key(round_key(k, r as u32 + 1))),
                step,
            }
        }

        /// ARS4x32-R of the N·LANES/4 blocks from the first block of group `g` of tensor `t`
        /// (mirrors `ars::ars4x32`): vector i holds blocks `16g + LANES/4·i ..`, one per
        /// 128-bit lane. The N vectors are interleaved round by round: one alone would wait
        /// on the latency of each dependent `aesenc`.
        #[inline]
        #[target_feature(enable = $feat)]
        fn ars_vectors<const N: usize>(s: &Setup, g: u64, t: u32) -> [VI; N] {
            // Block 16·(g + i / NV) + LANES/4·(i % NV) + lane: a group's first block is a
            // multiple of 16, so the offsets (< 16) never carry out of word 0; each group's own
            // base carries the high word.
            // Adding an offset < 16 to a multiple of 16 is an OR, so also an XOR: the counter
            // XOR the key is (base ^ key) ^ offset, one operation per vector.
            let mut base = [si(0); 4];
            for (j, bj) in base.iter_mut().enumerate().take(N.div_ceil(NV)) {
                let b = (g + j as u64) * BLOCKS_PER_GROUP;
                *bj = xor_i(bcast128([b as u32, (b >> 32) as u32, t, 0]), s.k0);
            }
            let mut v = [aes_in(si(0)); N];
            for (i, vi) in v.iter_mut().enumerate() {
                *vi = aes_in(xor_i(base[i / NV], s.step[i % NV]));
            }
            for rk in &s.rk[..R - 1] {
                for vi in v.iter_mut() {
                    *vi = aesenc(*vi, *rk);
                }
            }
            let mut w = [si(0); N];
            for i in 0..N {
                w[i] = aes_out(aesenclast(v[i], s.rk[R - 1]));
            }
            w
        }

        /// Mirrors `scalar::normal_pair` on M independent vectors in lockstep (each statement
        /// for all M before the next, so the M dependency chains overlap): returns
        /// (R cos θ, R sin θ) per vector. M is a constant so that the M chains live in
        /// registers (a slice length known only at run time cost a compare and branch per
        /// statement and kept the chains in memory).
        #[inline]
        #[target_feature(enable = $feat)]
        fn normal_pairs<const M: usize>(a: [VI; M], b: [VI; M]) -> ([VF; M], [VF; M]) {
            let mut r = [sf(0.0); M];
            let mut x = [sf(0.0); M];
            let mut ef = [sf(0.0); M];
            let mut zc = [sf(0.0); M];
            let mut zs = [sf(0.0); M];

            // ln_unit, lockstep. The bits of u₁ = k·2⁻²⁴ (k = ⌊a/2⁸⌋ + 1) are those of the float
            // k with 24 taken off the exponent: folded into the integer constant (exact, u₁ is
            // normal), so no multiply.
            for i in 0..M {
                let k = cvt(add_i(srli::<8>(a[i]), si(1)));
                let ix = add_i(
                    to_i(k),
                    si((0x3f80_0000 - SQRTHF_BITS).wrapping_sub(24 << 23)),
                );
                // e = (ix >> 23) − 127 as a float (ix is a positive normal float's bits).
                ef[i] = exponent(ix);
                // x' = −2·(m − 1) = 2 − 2m, exact (Sterbenz); 2m is m with the exponent + 1, in
                // the integer constant. (A subtraction rather than an FMA: the FMA pipes are
                // the busy ones, with the AES rounds.)
                x[i] = sub(
                    sf(2.0),
                    to_f(add_i(
                        and_i(ix, si(0x007f_ffff)),
                        si(SQRTHF_BITS + (1 << 23)),
                    )),
                );
            }
            // −2·ln u₁ directly, in the variable x' = −2x (exact): every
            // constant of `ln_unit` is scaled by a power of two (`LOG_PH`), so every intermediate
            // is exactly a power of two times the scalar one (rounding commutes with that): the
            // same bits as `ln_unit(u) * -2.0` with no final multiply.
            let mut p = [sf(LOG_PH[0]); M];
            for c in &LOG_PH[1..] {
                for i in 0..M {
                    p[i] = fma(p[i], x[i], sf(*c));
                }
            }
            for i in 0..M {
                let q = fma(p[i], x[i], sf(0.25));
                let y = fma(q, mul(x[i], x[i]), x[i]);
                let l = fma(ef[i], sf(-2.0 * LOG_Q2), fma(ef[i], sf(-2.0 * LOG_Q1), y));
                r[i] = sqrt(l);
            }
            // sincos_turn, lockstep. With c = b + 2²⁹ the quadrant is q = c >> 30, so
            // q << 30 = c & 0xC000_0000; q odd ⇔ bit 30 of c (the swap: sign bit of c << 1);
            // sin's sign bit is bit 1 of q = bit 31 of c, cos's is bit 1 of q + 1 = bit 31 of
            // c + 2³⁰. And b − (q << 30), as i32, is the low 30 bits of b read as a signed
            // 30-bit number (write b = Q·2³⁰ + L: q = Q and the difference is L when L < 2²⁹,
            // else q = Q + 1 and it is L − 2³⁰), i.e. (b << 2) >> 2 arithmetic; with the
            // scalar code's >> 8 that is (b << 2) >> 10. Same integers as the scalar code,
            // fewer operations.
            for i in 0..M {
                let c = add_i(b[i], si(1 << 29));
                let ri = srai::<10>(slli::<2>(b[i]));
                // (ri·2⁻²⁴)·2π rounds once, as ri·(2π·2⁻²⁴) does (2⁻²⁴ scaling is exact).
                let t = mul(cvt(ri), sf(TWO_PI * INV_2_24));
                let z = mul(t, t);
                let mut ps = fma(sf(SIN_P[0]), z, sf(SIN_P[1]));
                ps = fma(ps, z, sf(SIN_P[2]));
                ps = mul(ps, z);
                let sinv = fma(ps, t, t);
                let mut cosv = fma(sf(COS_P[0]), z, sf(COS_P[1]));
                cosv = fma(cosv, z, sf(COS_P[2]));
                cosv = fma(cosv, z, sf(-0.5));
                cosv = fma(cosv, z, sf(1.0));
                let swap = slli::<1>(c);
                let c0 = sel_sign(swap, sinv, cosv);
                let s0 = sel_sign(swap, cosv, sinv);
                let sign = si(0x8000_0000);
                let cs = to_f(xor_i(to_i(c0), and_i(add_i(c, si(1 << 30)), sign)));
                let sn = to_f(xor_i(to_i(s0), and_i(c, sign)));
                zc[i] = mul(r[i], cs);
                zs[i] = mul(r[i], sn);
            }
            (zc, zs)
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

        /// The vectors (radius words, angle words) of Box–Muller vector pair `p` of a group:
        /// runs of 2·NP vectors, the first NP give radii, the next NP angles.
        #[inline(always)]
        const fn pair_vectors(p: usize) -> (usize, usize) {
            let run = p / NP;
            let a = 2 * NP * run + (p - NP * run);
            (a, a + NP)
        }

        /// Generates the z vectors of the N·LANES elements from the first of group `g` and
        /// hands each to `sink` with its index (vector i is elements i·LANES ..). Generic in
        /// `sink` so that every use is its own copy, inlined where it is called.
        #[inline]
        #[target_feature(enable = $feat)]
        fn directions<const N: usize, F: FnMut(usize, VF)>(
            s: &Setup,
            t: u32,
            g: u64,
            dist: Distribution,
            mut sink: F,
        ) {
            let w = ars_vectors::<N>(s, g, t);
            let mut z = [sf(0.0); N];
            match dist {
                Distribution::Normal => {
                    // Runs of 2·NP vectors: the first NP give radii, the next NP angles;
                    // LOCKSTEP pair vectors at a time (a last, partial set computes on zero
                    // words in the unused places and drops those results).
                    for p0 in (0..N / 2).step_by(LOCKSTEP) {
                        let m = LOCKSTEP.min(N / 2 - p0);
                        let mut a = [si(0); LOCKSTEP];
                        let mut b = [si(0); LOCKSTEP];
                        for q in 0..m {
                            let (ra, rb) = pair_vectors(p0 + q);
                            a[q] = w[ra];
                            b[q] = w[rb];
                        }
                        let (zc, zs) = normal_pairs::<LOCKSTEP>(a, b);
                        for q in 0..m {
                            let (ra, rb) = pair_vectors(p0 + q);
                            z[ra] = zc[q];
                            z[rb] = zs[q];
                        }
                    }
                }
                Distribution::Rademacher => {
                    for i in 0..N {
                        z[i] = rademacher(w[i]);
                    }
                }
                Distribution::Uniform => {
                    for i in 0..N {
                        z[i] = uniform(w[i]);
                    }
                }
            }
            for (i, v) in z.iter().enumerate() {
                sink(i, *v);
            }
        }

        /// Generates group `g` into `out` (64 values): stores z, or with `axpy = Some(c)`
        /// updates `out = fma(z, c, out)` in place (the sweep's term, with no z buffer).
        #[inline]
        #[target_feature(enable = $feat)]
        fn group<const N: usize>(
            s: &Setup,
            t: u32,
            g: u64,
            dist: Distribution,
            axpy: Option<f32>,
            out: &mut [f32],
        ) {
            assert!(out.len() >= N * LANES);
            directions::<N, _>(s, t, g, dist, |i, v| {
                let p = out.as_mut_ptr().wrapping_add(i * LANES);
                // SAFETY: i·LANES + LANES ≤ N·LANES ≤ out.len() (checked above); unaligned.
                unsafe {
                    match axpy {
                        None => store(p, v),
                        Some(c) => store(p, fma(v, sf(c), load(p))),
                    }
                }
            });
        }

        /// Bytes per element of a storage kind (`rng::KIND_*`).
        const fn kind_bytes(kind: u8) -> usize {
            if kind == KIND_F32 {
                4
            } else {
                2
            }
        }

        /// LANES elements of kind `K` from element `i` of `p`, widened to f32.
        /// # Safety
        /// `p` must be valid for reading elements `i .. i + LANES` of kind `K`.
        #[inline]
        #[target_feature(enable = $feat)]
        unsafe fn load_kind<const K: u8>(p: *const u8, i: usize) -> VF {
            // SAFETY: guaranteed by the caller.
            unsafe {
                match K {
                    KIND_F32 => load(p.cast::<f32>().add(i)),
                    KIND_BF16 => load_bf16(p.cast::<u16>().add(i)),
                    _ => load_f16(p.cast::<u16>().add(i)),
                }
            }
        }

        /// `v` rounded to kind `K` into elements `i .. i + LANES` of `p`.
        /// # Safety
        /// `p` must be valid for writing elements `i .. i + LANES` of kind `K`.
        #[inline]
        #[target_feature(enable = $feat)]
        unsafe fn store_kind<const K: u8>(p: *mut u8, i: usize, v: VF) {
            // SAFETY: guaranteed by the caller.
            unsafe {
                match K {
                    KIND_F32 => store(p.cast::<f32>().add(i), v),
                    KIND_BF16 => store_bf16(p.cast::<u16>().add(i), v),
                    _ => store_f16(p.cast::<u16>().add(i), v),
                }
            }
        }

        /// See `rng::axpy_io`: `dst = round_D(fma(z, coef, widen_S(src)))` over `len`
        /// elements (a multiple of GROUP) from group `first_group`.
        /// # Safety
        /// `src` must be valid for reading `len` elements of kind `S`, `dst` for writing `len`
        /// of kind `D`; they may be the same memory (in place), otherwise they do not overlap.
        #[allow(clippy::too_many_arguments)]
        #[target_feature(enable = $feat)]
        pub(in crate::rng) unsafe fn axpy_io<const S: u8, const D: u8>(
            k: [u32; 4],
            tensor: u32,
            first_group: u64,
            dist: Distribution,
            coef: f32,
            src: *const u8,
            dst: *mut u8,
            len: usize,
        ) {
            let s = setup(k);
            let c = sf(coef);
            let mut g = first_group;
            let mut off = 0;
            while off < len {
                let wide = off + GROUP * GPI <= len;
                let n = if wide { GROUP * GPI } else { GROUP };
                {
                    use core::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};
                    let ahead = src.wrapping_add((off + PREFETCH_AHEAD) * kind_bytes(S));
                    for line in (0..n * kind_bytes(S)).step_by(64) {
                        // A prefetch never faults, whatever the address.
                        _mm_prefetch::<_MM_HINT_T0>(ahead.wrapping_add(line).cast());
                    }
                }
                let term = |i: usize, v: VF| {
                    let e = off + i * LANES;
                    // SAFETY: e + LANES ≤ off + n ≤ len, within both (the caller's contract);
                    // an element is read before it is written.
                    unsafe { store_kind::<D>(dst, e, fma(v, c, load_kind::<S>(src, e))) };
                };
                if wide {
                    directions::<{ NV * GPI }, _>(&s, tensor, g, dist, term);
                } else {
                    directions::<NV, _>(&s, tensor, g, dist, term);
                }
                g += (n / GROUP) as u64;
                off += n;
            }
        }

        /// See `rng::fill_with` (`axpy = None`) and `rng::axpy_raw` (`Some(coef)`).
        /// `out.len()` is a multiple of GROUP (checked by the caller).
        #[target_feature(enable = $feat)]
        pub(in crate::rng) fn fill(
            k: [u32; 4],
            tensor: u32,
            first_group: u64,
            dist: Distribution,
            axpy: Option<f32>,
            out: &mut [f32],
        ) {
            let s = setup(k);
            let mut chunks = out.chunks_exact_mut(GROUP * GPI);
            let mut g = first_group;
            for chunk in &mut chunks {
                if axpy.is_some() {
                    use core::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};
                    let ahead = chunk.as_ptr().wrapping_add(PREFETCH_AHEAD) as *const i8;
                    for line in 0..GROUP * GPI / 16 {
                        // A prefetch never faults, whatever the address.
                        _mm_prefetch::<_MM_HINT_T0>(ahead.wrapping_add(64 * line));
                    }
                }
                group::<{ NV * GPI }>(&s, tensor, g, dist, axpy, chunk);
                g += GPI as u64;
            }
            for chunk in chunks.into_remainder().chunks_exact_mut(GROUP) {
                group::<NV>(&s, tensor, g, dist, axpy, chunk);
                g += 1;
            }
        }
    };
}

mod ymm;
mod zmm;

pub(super) use ymm::{avx2, avx2_vaes};
pub(super) use zmm::avx512;
