//! Counter-based random directions: z = f(seed, step, tensor index, element index).
//!
//! # Generator: Philox4x32-7 (generator version 2)
//!
//! Salmon, Moraes, Dror, Shaw, "Parallel random numbers: as easy as 1, 2, 3" (SC'11), the
//! generator family of cuRAND, JAX and PyTorch's CUDA backend. It is a pure function
//! `philox(counter: [u32; 4], key: [u32; 2]) -> [u32; 4]`: no state, so any element of any
//! direction can be regenerated in any order, by any thread, after a restart, and (later) by a
//! GPU kernel that will produce the very same values.
//!
//! Seven rounds, not the upstream default ten: the paper's Table 2 gives 7 rounds as the
//! fewest for which Philox4x32 passes all of TestU01's SmallCrush, Crush and BigCrush
//! ("Crush-resistant"); 10 is the default with a safety margin for cryptographic-style
//! use. A ZO direction needs statistical quality, not that margin, and the rounds are about
//! half of the sweep's cost (`examples/rng_micro.rs`): 7 rounds cut it by ~30 %. What is lost:
//! z is no longer the output of cuRAND's `curandStatePhilox4_32_10_t` (a future GPU kernel must
//! run Philox4x32-7 itself, e.g. Random123's `philox4x32_R(7, …)`). Random123's `kat_vectors`
//! for both 7 and 10 rounds are pinned in the tests (the round function is the same).
//!
//! [`GENERATOR_VERSION`] numbers the contract below; any change of values bumps it.
//! Version 1 (until 2026-11-23) was the same contract with Philox4x32-10.
//!
//! # The contract (changing any of this changes every trained model: bump a version)
//!
//! * key: `(k0, k1)` = low/high halves of `mix64(seed ^ mix64(step + φ))`, `mix64` being the
//!   SplitMix64 finaliser and φ = 0x9E3779B97F4A7C15 ([`Key::philox_key`]).
//! * elements of a tensor are taken in groups of [`GROUP`] = 64. Element `e` lies in group
//!   `G = e / 64` at `p = e % 64`; it uses Philox *block* `B = 16·G + p % 16` and output word
//!   `m = p / 16` of that block. The counter of block `B` of tensor `t` is
//!   `[B mod 2³², B / 2³², t, 0]`. (This "structure of arrays" layout lets a 16-lane AVX-512
//!   kernel, an 8-lane AVX2 kernel, the scalar code and a GPU thread-per-block kernel all store
//!   whole vectors with no transpose.)
//! * normal: words (0, 1) and (2, 3) of a block are Box–Muller pairs ([`scalar::normal_pair`]);
//!   rademacher and uniform use one word per element.
//!
//! Because the value of element `e` depends on nothing but `(key, t, e)`, the way a sweep is cut
//! into chunks and threads cannot change it.
//!
//! # Three implementations, one result
//!
//! [`Isa::Scalar`], [`Isa::Avx2`] (AVX2 + FMA) and [`Isa::Avx512`] (AVX-512F) run the same
//! operations in the same order: integer ops are exact, every float op is one IEEE-754
//! correctly-rounded `+ − × √` or a fused multiply-add (`f32::mul_add` in the scalar code,
//! `vfmadd` in the SIMD code), so the three produce bit-identical values (tested by forcing
//! each path). The runtime dispatch ([`Isa::detect`]) picks the widest one the CPU has.
//!
//! Caveat (2026-11): the development machine has AVX2 but no AVX-512, so the AVX-512 kernel is
//! compiled but has not been executed here; `rng::tests::simd_paths_bit_identical_to_scalar`
//! and `perturb::tests::sweep_isa_paths_identical` check it automatically on any AVX-512 host.
//! It shares its whole body with the AVX2 kernel (`x86.rs`, `kernel!`); only the ~25 one-line
//! primitives differ.

pub mod scalar;
#[cfg(target_arch = "x86_64")]
mod x86;

use serde::{Deserialize, Serialize};

/// Elements per group: 16 Philox blocks × 4 output words.
pub const GROUP: usize = 64;
/// Philox blocks per group.
pub const BLOCKS_PER_GROUP: u64 = 16;

/// Philox4x32 multipliers and Weyl key increments (Random123 `philox.h`).
pub const PHILOX_M0: u32 = 0xD251_1F53;
/// Second Philox multiplier.
pub const PHILOX_M1: u32 = 0xCD9E_8D57;
/// Weyl increment of key word 0 (golden ratio).
pub const PHILOX_W0: u32 = 0x9E37_79B9;
/// Weyl increment of key word 1 (√3 − 1).
pub const PHILOX_W1: u32 = 0xBB67_AE85;
/// Number of rounds: 7, "Philox4x32-7" (see the module docs for why not the upstream 10).
pub const PHILOX_ROUNDS: usize = 7;

/// Version of the generator contract (module docs): 1 = Philox4x32-10, 2 = Philox4x32-7.
/// Directions (and so trained weights, trajectories and their replays) of different versions
/// differ; record it next to anything that must be regenerated later.
pub const GENERATOR_VERSION: u32 = 2;

/// Which random direction a step uses. One of the paper's three (ALGORITHMS.md "Directions").
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
/// u64 with full avalanche, used to turn (seed, step) into a Philox key.
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

    /// The Philox key `[k0, k1]` of this (seed, step). Part of the contract (see module docs).
    pub const fn philox_key(&self) -> [u32; 2] {
        let k = mix64(self.seed ^ mix64(self.step.wrapping_add(PHI64)));
        [k as u32, (k >> 32) as u32]
    }
}

/// One Philox4x32 round (Random123 `_philox4x32round`).
#[inline(always)]
fn round(c: [u32; 4], k: [u32; 2]) -> [u32; 4] {
    let p0 = u64::from(PHILOX_M0) * u64::from(c[0]);
    let p1 = u64::from(PHILOX_M1) * u64::from(c[2]);
    let (hi0, lo0) = ((p0 >> 32) as u32, p0 as u32);
    let (hi1, lo1) = ((p1 >> 32) as u32, p1 as u32);
    [hi1 ^ c[1] ^ k[0], lo1, hi0 ^ c[3] ^ k[1], lo0]
}

/// The generator's block function: Philox4x32 with [`PHILOX_ROUNDS`] rounds.
#[inline]
pub fn philox4x32(ctr: [u32; 4], key: [u32; 2]) -> [u32; 4] {
    philox4x32_r(PHILOX_ROUNDS, ctr, key)
}

/// Philox4x32 with `rounds` rounds (Random123's `philox4x32_R(R, ctr, key)`). The key is bumped
/// between rounds.
#[inline]
pub fn philox4x32_r(rounds: usize, mut ctr: [u32; 4], mut key: [u32; 2]) -> [u32; 4] {
    for r in 0..rounds {
        if r > 0 {
            key = [
                key[0].wrapping_add(PHILOX_W0),
                key[1].wrapping_add(PHILOX_W1),
            ];
        }
        ctr = round(ctr, key);
    }
    ctr
}

/// The counter of Philox block `block` of tensor `tensor` (see the contract above).
#[inline(always)]
pub const fn counter(tensor: u32, block: u64) -> [u32; 4] {
    [block as u32, (block >> 32) as u32, tensor, 0]
}

/// The instruction sets the generator can run on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Isa {
    /// Portable Rust (the reference; used off x86-64).
    Scalar,
    /// AVX2 + FMA, 8 lanes.
    Avx2,
    /// AVX-512F, 16 lanes.
    Avx512,
}

impl Isa {
    /// Is this instruction set usable on the running CPU?
    pub fn is_available(self) -> bool {
        match self {
            Isa::Scalar => true,
            #[cfg(target_arch = "x86_64")]
            Isa::Avx2 => {
                std::arch::is_x86_feature_detected!("avx2")
                    && std::arch::is_x86_feature_detected!("fma")
            }
            // The sweep's FMA/convert loop is compiled for AVX2+FMA (every AVX-512 CPU has them).
            #[cfg(target_arch = "x86_64")]
            Isa::Avx512 => {
                std::arch::is_x86_feature_detected!("avx512f")
                    && std::arch::is_x86_feature_detected!("avx2")
                    && std::arch::is_x86_feature_detected!("fma")
            }
            #[cfg(not(target_arch = "x86_64"))]
            _ => false,
        }
    }

    /// The widest available instruction set (detected once, then cached).
    pub fn detect() -> Isa {
        use std::sync::OnceLock;
        static DETECTED: OnceLock<Isa> = OnceLock::new();
        *DETECTED.get_or_init(|| {
            [Isa::Avx512, Isa::Avx2]
                .into_iter()
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
    fill_raw(isa, key.philox_key(), tensor, first_group, dist, out)
}

/// [`fill_with`] from an already derived Philox key (the sweep kernel derives it once per
/// sweep, not once per tile).
pub fn fill_raw(
    isa: Isa,
    k: [u32; 2],
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
    k: [u32; 2],
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
    k: [u32; 2],
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
        // SAFETY: availability of AVX2+FMA was checked just above.
        Isa::Avx2 => unsafe { x86::avx2::fill(k, tensor, first_group, dist, axpy, out) },
        #[cfg(target_arch = "x86_64")]
        // SAFETY: availability of AVX-512F was checked just above.
        Isa::Avx512 => unsafe { x86::avx512::fill(k, tensor, first_group, dist, axpy, out) },
        #[cfg(not(target_arch = "x86_64"))]
        _ => unreachable!("checked by is_available"),
    }
}

/// The direction value of element `elem` of tensor `tensor` (scalar reference, one element).
pub fn z_at(key: &Key, tensor: u32, elem: u64, dist: Distribution) -> f32 {
    let group = elem / GROUP as u64;
    let p = elem % GROUP as u64;
    let block = BLOCKS_PER_GROUP * group + p % BLOCKS_PER_GROUP;
    let m = (p / BLOCKS_PER_GROUP) as usize;
    let w = philox4x32(counter(tensor, block), key.philox_key());
    match dist {
        Distribution::Normal => {
            let (a, b) = if m < 2 {
                scalar::normal_pair(w[0], w[1])
            } else {
                scalar::normal_pair(w[2], w[3])
            };
            if m.is_multiple_of(2) {
                a
            } else {
                b
            }
        }
        Distribution::Rademacher => scalar::rademacher(w[m]),
        Distribution::Uniform => scalar::uniform(w[m]),
    }
}

#[cfg(test)]
mod tests;
