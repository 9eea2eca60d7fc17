//! Counter-based random directions: z = f(seed, step, tensor index, element index).
//!
//! # Generator: ARS4x32-7 (generator version 3)
//!
//! ARS ("Advanced Randomization System"), from Salmon, Moraes, Dror, Shaw, "Parallel random
//! numbers: as easy as 1, 2, 3" (SC'11) — the paper of Philox — and Random123's `ars.h`: a
//! pure function `ars(counter: [u32; 4], key: [u32; 4]) -> [u32; 4]` made of AES rounds with
//! a Weyl key schedule instead of AES's. No state, so any element of any direction can be
//! regenerated in any order, by any thread, after a restart, and by a GPU kernel (which has no
//! AES instruction: it runs the same rounds in software, the usual T-tables, and gets the same
//! values; see `ars.rs`).
//!
//! Why ARS: on x86 one `vaesenc` does a whole 128-bit round of four words (two blocks per ymm
//! instruction with VAES), ≈ 0.16 ns on the Zen 3 development machine (a bound of ≈ 0.14 ns per
//! 32-bit word for 7 rounds). Measured (`examples/rng_micro.rs`, words + rademacher transform +
//! store, one thread): ≈ 0.23 ns per word for ARS4x32-7 against ≈ 0.50 ns for Philox4x32-7's
//! 32×32→64 multiplies (28-31 ms vs 61-64 ms per 125.2 M words); sweep figures in `perturb.rs`. Seven rounds: Random123's default for
//! ARS; the paper's Table 2 gives 5 as the fewest that pass TestU01's BigCrush, so 7 keeps a
//! margin at a small cost. Random123's `kat_vectors` for `ars4x32` 7 and 10 are pinned in the
//! tests.
//!
//! [`GENERATOR_VERSION`] numbers the contract below; any change of values bumps it.
//! History: version 1 (until 2026-11-23) was Philox4x32-10; version 2 (2026-11-23) was
//! Philox4x32-7 with block `16·(e/64) + e%16`, word `(e%64)/16` and Box–Muller on words
//! (0, 1), (2, 3) of a block. Directions of different versions differ.
//!
//! # The contract (changing any of this changes every trained model: bump a version)
//!
//! * key: the 128-bit ARS key is `[k0, k1, 0, 0]` (u32 words), `(k0, k1)` = low/high halves of
//!   `mix64(seed ^ mix64(step + φ))`, `mix64` being the SplitMix64 finaliser and
//!   φ = 0x9E3779B97F4A7C15 ([`Key::ars_key`]).
//! * element `e` of tensor `t` is word `m = e % 4` of ARS *block* `B = e / 4`, whose counter is
//!   `[B mod 2³², B / 2³², t, 0]`: consecutive elements are consecutive words, so a 128-bit
//!   AES lane (one block) stores four consecutive elements and a SIMD vector of any width stores
//!   whole with no transpose (a GPU thread per block stores a float4).
//! * normal: elements come in runs of 32 (`e = 32·h + i`); for i < 16, elements `e` and
//!   `e + 16` are one Box–Muller pair ([`scalar::normal_pair`]): radius from the word of `e`,
//!   angle from the word of `e + 16`; z(e) = R cos θ, z(e + 16) = R sin θ. (Pairs are 16 apart
//!   so that the radius words and the angle words fill whole vectors of 4, 8 or 16 lanes: no
//!   shuffles.) Rademacher and uniform use the element's own word.
//! * elements are generated in groups of [`GROUP`] = 64 (16 blocks, two Box–Muller runs); a
//!   fill starts at a group boundary.
//!
//! Because the value of element `e` depends on nothing but `(key, t, e)`, the way a sweep is cut
//! into chunks and threads cannot change it.
//!
//! # Four implementations, one result
//!
//! [`Isa::Scalar`] (software AES), [`Isa::Avx2`] (AVX2 + FMA, AES-NI on the two 128-bit halves
//! of a ymm), [`Isa::Avx2Vaes`] (the same kernel with one VAES `vaesenc` per ymm) and
//! [`Isa::Avx512`] (AVX-512F + VAES on zmm) run the same operations in the same order: AES
//! rounds and integer ops are exact, every float op is one IEEE-754 correctly-rounded
//! `+ − × √`, a fused multiply-add (`f32::mul_add` in the scalar code, `vfmadd` in the SIMD
//! code) or exact (an integer converted to float; `vgetexpps`' exponent), so all produce
//! bit-identical values (tested by forcing each path). The runtime dispatch
//! ([`Isa::detect`]) picks the widest one the CPU has.
//!
//! Caveat (2026-11): the development machine has AVX2 and VAES but no AVX-512, so the AVX-512
//! kernel is compiled but has not been executed here; `rng::tests::simd_paths_bit_identical_to_scalar`
//! and `perturb::tests::sweep_isa_paths_identical` check it automatically on any AVX-512 host.
//! It shares its whole body with the AVX2 kernels (`x86/mod.rs`, `kernel!`); only the one-line
//! primitives differ.

pub mod ars;
pub mod scalar;
#[cfg(target_arch = "x86_64")]
mod x86;

pub use ars::{ars4x32, ars4x32_r};

use serde::{Deserialize, Serialize};

/// Elements per group: 16 ARS blocks × 4 words.
pub const GROUP: usize = 64;
/// ARS blocks per group.
pub const BLOCKS_PER_GROUP: u64 = 16;
/// Distance between the two elements of a Box–Muller pair (see the contract).
pub const PAIR_STRIDE: usize = 16;

/// Weyl increment of the low 64 bits of the ARS key (golden ratio; Random123 `ars.h`).
pub const ARS_W0: u64 = 0x9E37_79B9_7F4A_7C15;
/// Weyl increment of the high 64 bits of the ARS key (√3 − 1; Random123 `ars.h`).
pub const ARS_W1: u64 = 0xBB67_AE85_84CA_A73B;
/// Number of rounds: 7, "ARS4x32-7" (Random123's default; see the module docs).
pub const ARS_ROUNDS: u32 = 7;

/// Version of the generator contract (module docs): 1 = Philox4x32-10, 2 = Philox4x32-7,
/// 3 = ARS4x32-7 with the v3 layout. Directions (and so trained weights, trajectories and their
/// replays) of different versions differ; record it next to anything that must be regenerated
/// later.
pub const GENERATOR_VERSION: u32 = 3;

/// Which random direction a step uses. One of the paper's three (docs/ALGORITHMS.md "Directions").
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Distribution {
    /// N(0, 1) by Box–Muller (the paper's experiments, MeZO).
    #[default]
    Normal,
    /// ±1 with equal probability (GA_sign, AS2P_sign).
    Rademacher,
    /// U(−√3, √3): unit variance (the paper's Figure 4 ablation).
    Uniform,
}

/// Identifies one direction: the run seed and the optimizer step.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Key {
    /// The run seed.
    pub seed: u64,
    /// The step whose direction this is.
    pub step: u64,
}

/// SplitMix64's output finaliser (Steele, Lea & Flood 2014; Stafford's "Mix13"): a bijection of
/// u64 with full avalanche, used to turn (seed, step) into a generator key.
pub const fn mix64(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Golden-ratio constant added to the step before mixing (so step 0 does not map to mix64(0)=0).
const PHI64: u64 = 0x9E37_79B9_7F4A_7C15;

impl Key {
    /// The key of `step` under `seed`.
    pub const fn new(seed: u64, step: u64) -> Self {
        Key { seed, step }
    }

    /// The ARS key `[k0, k1, 0, 0]` of this (seed, step). Part of the contract (module docs).
    pub const fn ars_key(&self) -> [u32; 4] {
        let k = mix64(self.seed ^ mix64(self.step.wrapping_add(PHI64)));
        [k as u32, (k >> 32) as u32, 0, 0]
    }
}

/// The counter of ARS block `block` of tensor `tensor` (see the contract above).
#[inline(always)]
pub const fn counter(tensor: u32, block: u64) -> [u32; 4] {
    [block as u32, (block >> 32) as u32, tensor, 0]
}

/// The instruction sets the generator can run on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Isa {
    /// Portable Rust, software AES (the reference; used off x86-64).
    Scalar,
    /// AVX2 + FMA + AES-NI, 8 lanes (each AES round as two xmm `aesenc`).
    Avx2,
    /// AVX2 + FMA + VAES, 8 lanes (one ymm `vaesenc` per AES round).
    Avx2Vaes,
    /// AVX-512F + VAES, 16 lanes. CPUs with AVX-512 but no VAES (Skylake-SP) use
    /// [`Isa::Avx2`].
    Avx512,
}

impl Isa {
    /// Every instruction set, narrowest first.
    pub const ALL: [Isa; 4] = [Isa::Scalar, Isa::Avx2, Isa::Avx2Vaes, Isa::Avx512];

    /// Is this instruction set usable on the running CPU, within the process's cap
    /// ([`crate::cpu`])?
    pub fn is_available(self) -> bool {
        #[cfg(target_arch = "x86_64")]
        {
            use std::arch::is_x86_feature_detected as has;
            // The sweep's FMA/convert loop is compiled for AVX2+FMA, which every AVX-512 CPU
            // has; AES-NI comes with every VAES CPU.
            // F16C (every AVX2 CPU has it) for the f16 storage of the fused sweep term.
            let avx2 = crate::cpu::avx2_fma() && has!("aes") && has!("f16c");
            match self {
                Isa::Scalar => true,
                Isa::Avx2 => avx2,
                Isa::Avx2Vaes => avx2 && has!("vaes"),
                Isa::Avx512 => avx2 && has!("vaes") && crate::cpu::avx512f(),
            }
        }
        #[cfg(not(target_arch = "x86_64"))]
        {
            self == Isa::Scalar
        }
    }

    /// The widest available instruction set (detected once, then cached).
    pub fn detect() -> Isa {
        use std::sync::OnceLock;
        static DETECTED: OnceLock<Isa> = OnceLock::new();
        *DETECTED.get_or_init(|| {
            Isa::ALL
                .into_iter()
                .rev()
                .find(|i| i.is_available())
                .unwrap_or(Isa::Scalar)
        })
    }
}

/// Writes z for elements `64·first_group ..` of tensor `tensor` into `out` (whose length must be
/// a multiple of [`GROUP`]), with the detected instruction set.
#[inline]
pub fn fill(key: &Key, tensor: u32, first_group: u64, dist: Distribution, out: &mut [f32]) {
    fill_with(Isa::detect(), key, tensor, first_group, dist, out)
}

/// [`fill`] on a chosen instruction set. Panics if `isa` is not available on this CPU or if
/// `out.len()` is not a multiple of [`GROUP`] (both are programming errors, not input errors:
/// the public entry points check them).
pub fn fill_with(
    isa: Isa,
    key: &Key,
    tensor: u32,
    first_group: u64,
    dist: Distribution,
    out: &mut [f32],
) {
    fill_raw(isa, key.ars_key(), tensor, first_group, dist, out)
}

/// [`fill_with`] from an already derived ARS key (the sweep kernel derives it once per sweep,
/// not once per tile).
pub fn fill_raw(
    isa: Isa,
    k: [u32; 4],
    tensor: u32,
    first_group: u64,
    dist: Distribution,
    out: &mut [f32],
) {
    dispatch(isa, k, tensor, first_group, dist, None, out)
}

/// `x[i] = fma(z[i], coef, x[i])` (rounded once, as `z.mul_add(coef, x)`) for the elements
/// `64·first_group ..` of tensor `tensor`: the sweep's term with z kept in registers, so no z
/// buffer is written and read back. Same bits as [`fill_raw`] followed by that loop. Panics
/// like [`fill_with`].
pub fn axpy_raw(
    isa: Isa,
    k: [u32; 4],
    tensor: u32,
    first_group: u64,
    dist: Distribution,
    coef: f32,
    x: &mut [f32],
) {
    dispatch(isa, k, tensor, first_group, dist, Some(coef), x)
}

fn dispatch(
    isa: Isa,
    k: [u32; 4],
    tensor: u32,
    first_group: u64,
    dist: Distribution,
    axpy: Option<f32>,
    out: &mut [f32],
) {
    assert!(
        out.len().is_multiple_of(GROUP),
        "fill: length {} is not a multiple of {GROUP}",
        out.len()
    );
    assert!(
        isa.is_available(),
        "fill: {isa:?} is not available on this CPU"
    );
    match isa {
        Isa::Scalar => scalar::fill(k, tensor, first_group, dist, axpy, out),
        #[cfg(target_arch = "x86_64")]
        // SAFETY: availability of AVX2+FMA+AES was checked just above.
        Isa::Avx2 => unsafe { x86::avx2::fill(k, tensor, first_group, dist, axpy, out) },
        #[cfg(target_arch = "x86_64")]
        // SAFETY: availability of AVX2+FMA+AES+VAES was checked just above.
        Isa::Avx2Vaes => unsafe { x86::avx2_vaes::fill(k, tensor, first_group, dist, axpy, out) },
        #[cfg(target_arch = "x86_64")]
        // SAFETY: availability of AVX-512F+VAES (and AVX2+FMA+AES) was checked just above.
        Isa::Avx512 => unsafe { x86::avx512::fill(k, tensor, first_group, dist, axpy, out) },
        #[cfg(not(target_arch = "x86_64"))]
        _ => unreachable!("checked by is_available"),
    }
}

/// Storage kinds of [`axpy_io`]'s operands (the const parameters of the SIMD kernels).
pub(crate) const KIND_F32: u8 = 0;
pub(crate) const KIND_BF16: u8 = 1;
pub(crate) const KIND_F16: u8 = 2;

/// 16-bit float storage that [`axpy_io`] reads and writes: [`half::bf16`] and [`half::f16`].
pub trait HalfStorage: Copy + sealed::Sealed {
    /// Which kind (`KIND_*`).
    #[doc(hidden)]
    const KIND: u8;
    /// `half`'s exact widening.
    #[doc(hidden)]
    fn widen(self) -> f32;
    /// `half`'s rounding (nearest even).
    #[doc(hidden)]
    fn narrow(x: f32) -> Self;
}

mod sealed {
    pub trait Sealed {}
    impl Sealed for half::bf16 {}
    impl Sealed for half::f16 {}
}

macro_rules! half_storage {
    ($t:ty, $kind:expr) => {
        impl HalfStorage for $t {
            const KIND: u8 = $kind;
            fn widen(self) -> f32 {
                self.to_f32()
            }
            fn narrow(x: f32) -> Self {
                <$t>::from_f32(x)
            }
        }
    };
}

half_storage!(half::bf16, KIND_BF16);
half_storage!(half::f16, KIND_F16);

/// Where [`axpy_io`] reads x and writes the result, for 16-bit storage `T`.
pub enum Io<'a, T> {
    /// `x[i] = round(fma(z, c, widen(x[i])))`: a one-term sweep of stored weights.
    InPlace(&'a mut [T]),
    /// `out[i] = fma(z, c, widen(x[i]))`: the first term of several, into an f32 buffer.
    Widen(&'a [T], &'a mut [f32]),
    /// `out[i] = round(fma(z, c, x[i]))`: the last term of several, back to storage.
    Narrow(&'a [f32], &'a mut [T]),
}

/// [`axpy_raw`] with bf16/f16 storage on one side or both: the widening and the rounding
/// (`half`'s bits: exact widening with NaNs made quiet, round to nearest even with subnormals
/// kept) happen in registers around the fused multiply-add, so a sweep over 16-bit weights
/// needs no f32 copy of its tile. The same bits as widening with `half`, [`axpy_raw`] and
/// rounding with `half`. Panics like [`fill_with`], and if the two slices differ in length.
pub fn axpy_io<T: HalfStorage>(
    isa: Isa,
    k: [u32; 4],
    tensor: u32,
    first_group: u64,
    dist: Distribution,
    coef: f32,
    io: Io<'_, T>,
) {
    let (src, s_kind, dst, d_kind, len): (*const u8, u8, *mut u8, u8, usize) = match io {
        Io::InPlace(x) => {
            let p = x.as_mut_ptr().cast::<u8>();
            (p, T::KIND, p, T::KIND, x.len())
        }
        Io::Widen(x, out) => {
            assert_eq!(x.len(), out.len(), "axpy_io: lengths differ");
            (
                x.as_ptr().cast(),
                T::KIND,
                out.as_mut_ptr().cast(),
                KIND_F32,
                x.len(),
            )
        }
        Io::Narrow(x, out) => {
            assert_eq!(x.len(), out.len(), "axpy_io: lengths differ");
            (
                x.as_ptr().cast(),
                KIND_F32,
                out.as_mut_ptr().cast(),
                T::KIND,
                x.len(),
            )
        }
    };
    assert!(
        len.is_multiple_of(GROUP),
        "axpy_io: length {len} is not a multiple of {GROUP}"
    );
    assert!(
        isa.is_available(),
        "axpy_io: {isa:?} is not available on this CPU"
    );
    /// One kernel for each (source, destination) pair the sweep uses.
    macro_rules! run {
        ($m:path) => {{
            use $m as m;
            macro_rules! go {
                ($s:ident, $d:ident) => {
                    m::axpy_io::<$s, $d>(k, tensor, first_group, dist, coef, src, dst, len)
                };
            }
            // SAFETY: the ISA's availability was checked above; `src` and `dst` come from
            // slices of `len` elements of their kinds, the same memory (in place) or two
            // distinct borrows (one shared, one exclusive: no overlap).
            unsafe {
                match (s_kind, d_kind) {
                    (KIND_BF16, KIND_BF16) => go!(KIND_BF16, KIND_BF16),
                    (KIND_F16, KIND_F16) => go!(KIND_F16, KIND_F16),
                    (KIND_BF16, _) => go!(KIND_BF16, KIND_F32),
                    (KIND_F16, _) => go!(KIND_F16, KIND_F32),
                    (_, KIND_BF16) => go!(KIND_F32, KIND_BF16),
                    _ => go!(KIND_F32, KIND_F16),
                }
            }
        }};
    }
    match isa {
        Isa::Scalar => axpy_io_scalar::<T>(
            k,
            tensor,
            first_group,
            dist,
            coef,
            (src, s_kind),
            (dst, d_kind),
            len,
        ),
        #[cfg(target_arch = "x86_64")]
        Isa::Avx2 => run!(x86::avx2),
        #[cfg(target_arch = "x86_64")]
        Isa::Avx2Vaes => run!(x86::avx2_vaes),
        #[cfg(target_arch = "x86_64")]
        Isa::Avx512 => run!(x86::avx512),
        #[cfg(not(target_arch = "x86_64"))]
        _ => unreachable!("checked by is_available"),
    }
}

/// [`axpy_io`] on the scalar path: group by group through an f32 buffer.
#[allow(clippy::too_many_arguments)]
fn axpy_io_scalar<T: HalfStorage>(
    k: [u32; 4],
    tensor: u32,
    first_group: u64,
    dist: Distribution,
    coef: f32,
    (src, s_kind): (*const u8, u8),
    (dst, d_kind): (*mut u8, u8),
    len: usize,
) {
    let mut buf = [0.0f32; GROUP];
    for (gi, off) in (0..len).step_by(GROUP).enumerate() {
        // SAFETY: `axpy_io`'s contract: `src` is readable and `dst` writable for `len`
        // elements of their kinds (T, or f32 for KIND_F32), and off + j < len.
        unsafe {
            for (j, b) in buf.iter_mut().enumerate() {
                *b = if s_kind == KIND_F32 {
                    src.cast::<f32>().add(off + j).read()
                } else {
                    src.cast::<T>().add(off + j).read().widen()
                };
            }
            scalar::fill(
                k,
                tensor,
                first_group + gi as u64,
                dist,
                Some(coef),
                &mut buf,
            );
            for (j, b) in buf.iter().enumerate() {
                if d_kind == KIND_F32 {
                    dst.cast::<f32>().add(off + j).write(*b);
                } else {
                    dst.cast::<T>().add(off + j).write(T::narrow(*b));
                }
            }
        }
    }
}

/// The ARS word of element `elem` of tensor `tensor` (contract: word `elem % 4` of block
/// `elem / 4`).
fn word_at(k: [u32; 4], tensor: u32, elem: u64) -> u32 {
    ars4x32(counter(tensor, elem / 4), k)[(elem % 4) as usize]
}

/// The direction value of element `elem` of tensor `tensor` (scalar reference, one element).
pub fn z_at(key: &Key, tensor: u32, elem: u64, dist: Distribution) -> f32 {
    let k = key.ars_key();
    match dist {
        Distribution::Normal => {
            let stride = PAIR_STRIDE as u64;
            // First or second half of its run of 32: radius word of the pair's first element,
            // angle word of its second.
            let first = elem % (2 * stride) < stride;
            let e0 = if first { elem } else { elem - stride };
            let (c, s) =
                scalar::normal_pair(word_at(k, tensor, e0), word_at(k, tensor, e0 + stride));
            if first {
                c
            } else {
                s
            }
        }
        Distribution::Rademacher => scalar::rademacher(word_at(k, tensor, elem)),
        Distribution::Uniform => scalar::uniform(word_at(k, tensor, elem)),
    }
}

#[cfg(test)]
mod tests;
