//! Fused in-place sweeps over a [`ParamSet`]: x ← x + Σⱼ cⱼ·z(keyⱼ) (and, for weight decay,
//! x ← a·x on the decayed tensors), in one pass over the weights.
//!
//! Why fused and in place: a ZO step's only weight-sized work is moving the weights along the
//! direction (MeZO's recipe, docs/ALGORITHMS.md "Memory-efficient execution"). Generating z into a
//! buffer and then adding it would double the memory traffic and allocate a weight-sized
//! temporary; here z is generated in registers and consumed at once ([`rng::axpy_raw`]; an 8 KiB
//! stack tile where the same direction is used twice or the tile is not whole groups).
//!
//! Mechanics: each tensor is mutated through candle's [`candle_core::InplaceOp1`] (so a model
//! built on the same storage sees the change). The CPU kernel cuts the tensor into chunks of
//! [`CHUNK`] elements processed by rayon; element `e` always gets z(key, t, e) whatever chunk it
//! falls in, so the result is bit-identical for any thread count. Arithmetic: the value is read
//! as f32 (bf16/f16 are widened exactly), each term is one fused multiply-add `x = fma(c, z, x)`,
//! a decay is one multiply, and the result is rounded once back to the storage dtype.
//! The FMA is correctly rounded in every code path, so scalar and SIMD agree bit for bit.
//! Over bf16/f16 weights the widening and the rounding happen in registers around the terms'
//! FMAs ([`rng::axpy_io`]: one term in place; with more, the first reads the weights into the
//! f32 tile and the last rounds it back); tiles with a decay that applies or a repeated
//! direction go through the tile with vectorised conversions ([`crate::convert`]). Both give
//! the `half` crate's bits. B3 on opt-125m shapes, Zen 4, two threads (2026-12-07): one / two
//! terms 43 / 78 ms in bf16 and 39 / 74 ms in f16 (57 / 91 and 64 / 98 ms with `half`'s
//! conversions), 34 / 67 ms in f32.
//!
//! Tensors on CUDA (the `cuda` feature) take a native kernel, `perturb/sweep.cu`: the same
//! generator and arithmetic in CUDA, run in place, used on a device only after it has matched
//! the CPU kernel bit for bit on a self-check (`perturb/cuda.rs`; its source, compiled for the
//! host, is tested against this kernel in `perturb/device_tests.rs`).
//! Tensors on a device without a native sweep kernel (Metal; CUDA where the kernel failed to
//! build or its self-check; [`apply_staged`]) take the staged path: each tensor is cut into
//! chunks of [`STAGE`] elements, each chunk is copied to the host, swept there by the same CPU
//! kernel with its element offset (so every element gets the same z and the same arithmetic:
//! the same bits as a CPU run), and copied back into the tensor. Host memory stays bounded by one chunk per rayon thread; the path is slower (two
//! copies of the weights per sweep) and says so once in the log.
//!
//! Cost (examples/sweep_bench.rs, CPU time per sweep, 125.2 M f32 = opt-125m, AVX2 + VAES, AMD
//! EPYC Zen 3 VM at ≈ 2.1-2.4 GHz, shared and loaded, 2026-11-23), generator v3 (ARS4x32-7):
//! ≈ 110-127 ms for a one-term normal sweep, ≈ 216-241 ms for two terms, ≈ 40-53 ms for
//! rademacher (v2, Philox4x32-7: 150 / 310 / 77 ms; v1 with a z tile buffer: 238 / 416 /
//! 125 ms). `examples/rng_micro.rs` splits the normal figure into ARS ≈ 28-31 ms (Philox was
//! 61-64), Box–Muller ≈ 75-80 ms and the fused x += c·z pass ≈ 10 ms. Box–Muller and AES
//! share the two FMA/AES pipes of the core, the bound now. Wall time ≈ CPU time / cores on a
//! quiet machine: 58-64 ms median measured on 2 cores under load. The PyTorch peer
//! (`torch.normal` + add) takes ≈ 600 ms.

use candle_core::backend::BackendStorage;
use candle_core::{CpuStorage, DType, Device, Layout, Tensor};
use half::{bf16, f16};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::convert;
use crate::rng::{self, Distribution, Isa, Key, GROUP};
use crate::{Error, ParamSet, Result};

/// Elements per rayon task (a multiple of [`GROUP`]; 64 KiB of f32).
pub const CHUNK: usize = 16 * 1024;
/// Elements per stack tile inside a task (a multiple of [`GROUP`]; 8 KiB of f32, so a tile and
/// its z buffer stay in L1). 2048 rather than 256: the per-call set-up of the generator (key
/// schedule, dispatch) then costs nothing measurable (-3 % CPU per sweep, `rng_micro`).
const TILE: usize = 2048;

/// One term of a sweep: add `coef · z(key)` to every parameter.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Term {
    /// Which direction.
    pub key: Key,
    /// Its coefficient.
    pub coef: f32,
}

impl Term {
    /// `coef · z(key)`.
    pub fn new(key: Key, coef: f32) -> Self {
        Term { key, coef }
    }
}

/// One operation of a sweep, applied element by element in list order.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum Op {
    /// x ← fma(coef, z(key), x) on every tensor.
    Add(Term),
    /// x ← factor · x on the tensors that take weight decay ([`ParamSet::decay_mask`]:
    /// MeZO's rule, not on "bias" / "layer_norm" / "layernorm" names).
    ScaleDecayed(f32),
}

/// A whole sweep: what the trainer records in the trajectory, and what `replay` re-applies.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Sweep {
    /// The operations, in order.
    pub ops: Vec<Op>,
    /// The direction distribution of every `Add`.
    pub dist: Distribution,
}

impl Sweep {
    /// A sweep of `Add` terms only.
    pub fn add(terms: &[Term], dist: Distribution) -> Self {
        Sweep {
            ops: terms.iter().copied().map(Op::Add).collect(),
            dist,
        }
    }

    /// True when the sweep changes nothing (no op, or only zero coefficients / unit factors).
    pub fn is_noop(&self) -> bool {
        self.ops.iter().all(|op| match op {
            Op::Add(t) => t.coef == 0.0,
            Op::ScaleDecayed(f) => *f == 1.0,
        })
    }
}

/// x += Σ coef·z(key) over every tensor of `params`, on the detected instruction set.
pub fn sweep(params: &ParamSet, terms: &[Term], dist: Distribution) -> Result<()> {
    apply(params, &Sweep::add(terms, dist))
}

/// Applies a recorded [`Sweep`] (the detected instruction set).
pub fn apply(params: &ParamSet, sweep: &Sweep) -> Result<()> {
    apply_with(params, sweep, Isa::detect())
}

/// Elements per chunk of the staged path (16 MiB of f32 on the host per chunk in flight).
pub const STAGE: usize = 4 << 20;

/// [`apply`] on a chosen instruction set (tests force each one). Tensors on the CPU are swept
/// in place; others through the staged path (see the module documentation).
pub fn apply_with(params: &ParamSet, sweep: &Sweep, isa: Isa) -> Result<()> {
    run_sweep(params, sweep, isa, None)
}

/// [`apply_with`] through the staged path for every tensor, CPU ones included, with chunks of
/// `stage` elements (rounded up to a whole number of groups): what a device without a native
/// kernel gets, forced so that tests can compare its bits with the in-place sweep.
pub fn apply_staged(params: &ParamSet, sweep: &Sweep, isa: Isa, stage: usize) -> Result<()> {
    run_sweep(params, sweep, isa, Some(stage))
}

fn run_sweep(params: &ParamSet, sweep: &Sweep, isa: Isa, force_stage: Option<usize>) -> Result<()> {
    if !isa.is_available() {
        return Err(Error::Msg(format!("{isa:?} is not available on this CPU")));
    }
    for op in &sweep.ops {
        let bad = match op {
            Op::Add(t) if !t.coef.is_finite() => Some(format!(
                "the coefficient of step {}'s direction is {}",
                t.key.step, t.coef
            )),
            Op::ScaleDecayed(f) if !f.is_finite() => Some(format!("the decay factor is {f}")),
            _ => None,
        };
        if let Some(what) = bad {
            return Err(Error::Msg(format!(
                "sweep: non-finite coefficient: {what} (the step size overflows f32: a smaller learning rate or ρ)"
            )));
        }
    }
    for (_, name, t) in params.iter() {
        if !matches!(t.dtype(), DType::F32 | DType::BF16 | DType::F16) {
            return Err(Error::UnsupportedDtype {
                op: "perturbation sweep",
                dtype: t.dtype(),
            });
        }
        if !t.is_contiguous() {
            return Err(Error::Msg(format!(
                "perturbation sweep: tensor `{name}` is not contiguous"
            )));
        }
    }
    if sweep.is_noop() {
        return Ok(());
    }
    let decay = params.decay_mask();
    // Which tensors take the native device kernel: decided here, before the parallel loop (the
    // first use on a device runs its self-check, which must not run inside a rayon task).
    let native: Vec<bool> = params
        .tensors()
        .iter()
        .map(|t| force_stage.is_none() && !t.device().is_cpu() && native_ready(t.device()))
        .collect();
    let prepared: Vec<Prepared> = sweep
        .ops
        .iter()
        .enumerate()
        .map(|(i, op)| match op {
            Op::Add(t) => Prepared::Add {
                key: t.key.ars_key(),
                coef: t.coef,
                reused: sweep.ops[i + 1..]
                    .iter()
                    .any(|later| matches!(later, Op::Add(u) if u.key == t.key)),
            },
            Op::ScaleDecayed(f) => Prepared::Scale(*f),
        })
        .collect();
    params
        .tensors()
        .par_iter()
        .enumerate()
        .try_for_each(|(i, t)| {
            let index = u32::try_from(i)
                .map_err(|_| Error::Msg("more than 2^32 tensors in a ParamSet".into()))?;
            let kernel = SweepKernel {
                tensor: index,
                first: 0,
                ops: &prepared,
                dist: sweep.dist,
                decayed: decay[i],
                isa,
            };
            match (force_stage, t.device().is_cpu()) {
                (None, true) => t.inplace_op1(&kernel).map_err(Error::from),
                (None, false) if native[i] && device_fits(&kernel) => {
                    t.inplace_op1(&kernel).map_err(Error::from)
                }
                (Some(stage), _) => staged(t, &kernel, stage),
                (None, false) => {
                    static SAID: std::sync::Once = std::sync::Once::new();
                    SAID.call_once(|| {
                        tracing::warn!(
                            "perturbation sweep on {:?}: no native kernel in use there; z is generated on the CPU in chunks of {STAGE} elements and copied (the same bits, slower)",
                            t.device().location()
                        )
                    });
                    staged(t, &kernel, STAGE)
                }
            }
        })
}

/// Do sweeps of tensors on `device` run in place on it? Always on the CPU; on CUDA (with the
/// `cuda` feature) once the native kernel has passed its bit-for-bit check against the CPU
/// kernel (run on the first call for a device); elsewhere not: z is generated on the host and
/// copied (the same bits, slower).
pub fn native_on(device: &Device) -> bool {
    device.is_cpu() || native_ready(device)
}

/// Does `device` have a native sweep kernel that passed its self-check? (CUDA, with the `cuda`
/// feature: `perturb/cuda.rs`.)
fn native_ready(device: &Device) -> bool {
    #[cfg(feature = "cuda")]
    {
        cuda::native_ready(device)
    }
    #[cfg(not(feature = "cuda"))]
    {
        let _ = device;
        false
    }
}

/// Do the kernel's ops fit one launch of the device kernel?
fn device_fits(kernel: &SweepKernel<'_>) -> bool {
    #[cfg(feature = "cuda")]
    {
        device_abi::DeviceArgs::new(kernel, 0).is_some()
    }
    #[cfg(not(feature = "cuda"))]
    {
        let _ = kernel;
        false
    }
}

/// The staged sweep of one contiguous tensor: chunk by chunk to the host, swept there with its
/// element offset, and back.
fn staged(t: &Tensor, kernel: &SweepKernel<'_>, stage: usize) -> Result<()> {
    let stage = stage.max(1).div_ceil(GROUP) * GROUP;
    let flat = t.flatten_all()?;
    let n = flat.elem_count();
    let mut off = 0;
    while off < n {
        let len = stage.min(n - off);
        // `copy` makes the chunk its own storage on the device (a CPU-to-CPU `to_device`
        // would share the tensor's), then it moves to the host.
        let host = flat.narrow(0, off, len)?.copy()?.to_device(&Device::Cpu)?;
        let k = SweepKernel {
            first: off,
            ..*kernel
        };
        host.inplace_op1(&k)?;
        flat.slice_set(&host.to_device(t.device())?, 0, off)?;
        off += len;
    }
    Ok(())
}

/// An op with its ARS key derived once.
#[derive(Clone, Copy, Debug)]
enum Prepared {
    /// `reused`: a later op of the sweep adds the same direction again (its tile of z is then
    /// kept in a buffer instead of being consumed in registers).
    Add {
        key: [u32; 4],
        coef: f32,
        reused: bool,
    },
    Scale(f32),
}

/// The candle in-place op over one tensor (or, staged, over a chunk of it).
#[derive(Clone, Copy)]
struct SweepKernel<'a> {
    tensor: u32,
    /// Index in the tensor of the first element the op sees (0 but for a staged chunk).
    first: usize,
    ops: &'a [Prepared],
    dist: Distribution,
    decayed: bool,
    isa: Isa,
}

impl candle_core::InplaceOp1 for SweepKernel<'_> {
    fn name(&self) -> &'static str {
        "zo-perturbation-sweep"
    }

    fn cpu_fwd(&self, storage: &mut CpuStorage, layout: &Layout) -> candle_core::Result<()> {
        let (start, end) = layout.contiguous_offsets().ok_or_else(|| {
            candle_core::Error::Msg("perturbation sweep: non-contiguous layout".into())
        })?;
        match storage {
            CpuStorage::F32(v) => self.run(&mut v[start..end]),
            CpuStorage::BF16(v) => self.run(&mut v[start..end]),
            CpuStorage::F16(v) => self.run(&mut v[start..end]),
            other => {
                return Err(candle_core::Error::Msg(format!(
                    "perturbation sweep: unsupported dtype {:?}",
                    other.dtype()
                )))
            }
        }
        Ok(())
    }

    #[cfg(feature = "cuda")]
    fn cuda_fwd(
        &self,
        storage: &mut candle_core::CudaStorage,
        layout: &Layout,
    ) -> candle_core::Result<()> {
        let (start, end) = layout.contiguous_offsets().ok_or_else(|| {
            candle_core::Error::Msg("perturbation sweep: non-contiguous layout".into())
        })?;
        cuda::launch(self, storage, start, end)
    }
}

/// Storage element types: how a tile is widened to f32 and rounded back (`convert`: `half`'s
/// bits, vectorised for `isa`).
trait Elem: Copy + Send + Sync {
    /// Loads `src` into `acc` (exact widening).
    fn load(isa: Isa, src: &[Self], acc: &mut [f32]);
    /// Stores `acc` into `dst` (one round-to-nearest-even).
    fn store(isa: Isa, acc: &[f32], dst: &mut [Self]);
    /// The tile itself when it already is f32 (worked on in place: no copy).
    fn as_f32(_tile: &mut [Self]) -> Option<&mut [f32]> {
        None
    }
    /// Does [`Elem::fused`] apply (16-bit storage)?
    const FUSES: bool = false;
    /// [`fused_tile`] for this storage.
    fn fused(
        _k: &SweepKernel<'_>,
        _start: usize,
        _adds: &[([u32; 4], f32)],
        _tile: &mut [Self],
        _acc: &mut [f32],
    ) {
        unreachable!("FUSES is false")
    }
}

impl Elem for f32 {
    #[inline(always)]
    fn load(_: Isa, src: &[Self], acc: &mut [f32]) {
        acc.copy_from_slice(src);
    }
    #[inline(always)]
    fn store(_: Isa, acc: &[f32], dst: &mut [Self]) {
        dst.copy_from_slice(acc);
    }
    #[inline(always)]
    fn as_f32(tile: &mut [Self]) -> Option<&mut [f32]> {
        Some(tile)
    }
}

/// The 16-bit storage types: fused terms, and `convert`'s vectorised widening and rounding.
macro_rules! half_elem {
    ($t:ty, $load:path, $store:path) => {
        impl Elem for $t {
            const FUSES: bool = true;
            fn fused(
                k: &SweepKernel<'_>,
                start: usize,
                adds: &[([u32; 4], f32)],
                tile: &mut [Self],
                acc: &mut [f32],
            ) {
                fused_tile(k, start, adds, tile, acc);
            }
            #[inline(always)]
            fn load(isa: Isa, src: &[Self], acc: &mut [f32]) {
                $load(isa, src, acc);
            }
            #[inline(always)]
            fn store(isa: Isa, acc: &[f32], dst: &mut [Self]) {
                $store(isa, acc, dst);
            }
        }
    };
}

half_elem!(bf16, convert::bf16_to_f32_on, convert::f32_to_bf16_on);
half_elem!(f16, convert::f16_to_f32_on, convert::f32_to_f16_on);

impl SweepKernel<'_> {
    fn run<T: Elem>(&self, data: &mut [T]) {
        data.par_chunks_mut(CHUNK)
            .enumerate()
            .for_each(|(c, chunk)| self.chunk(chunk, self.first + c * CHUNK));
    }

    /// Processes `chunk`, whose first element has index `first` in the tensor.
    fn chunk<T: Elem>(&self, chunk: &mut [T], first: usize) {
        #[cfg(target_arch = "x86_64")]
        if self.isa != Isa::Scalar {
            // SAFETY: a SIMD isa is only chosen when AVX2+FMA (or AVX-512F, whose CPUs all
            // have AVX2+FMA) is available, checked in `apply_with`.
            unsafe { chunk_fma(self, chunk, first) };
            return;
        }
        chunk_generic(self, chunk, first);
    }
}

/// The tile loop; compiled twice: plain, and with AVX2+FMA enabled so the FMA/convert loops
/// vectorise (the values are the same: FMA is correctly rounded either way).
#[inline(always)]
fn chunk_generic<T: Elem>(k: &SweepKernel<'_>, chunk: &mut [T], first: usize) {
    let mut acc = [0.0f32; TILE];
    let mut z = [0.0f32; TILE];
    let fused = if T::FUSES { fused_adds(k) } else { None };
    for (ti, tile) in chunk.chunks_mut(TILE).enumerate() {
        let start = first + ti * TILE;
        let n = tile.len();
        if let Some(x) = T::as_f32(tile) {
            tile_ops(k, start, x, &mut z);
        } else {
            let acc = &mut acc[..n];
            match &fused {
                // Whole groups only: the fused kernels do not pad.
                Some(adds) if n.is_multiple_of(GROUP) => T::fused(k, start, adds, tile, acc),
                _ => {
                    T::load(k.isa, tile, acc);
                    tile_ops(k, start, acc, &mut z);
                    T::store(k.isa, acc, tile);
                }
            }
        }
    }
}

/// Terms of one fused sweep over 16-bit storage (more go through the tile buffer).
const MAX_FUSED: usize = 4;

/// The terms of a sweep over a bf16/f16 tensor when they can be fused with the widening and
/// rounding (`rng::axpy_io`): a SIMD instruction set, one to [`MAX_FUSED`] terms with non-zero
/// coefficients, no direction twice, and no scale that applies to this tensor. Otherwise the
/// tile is widened into a buffer, swept there and rounded back (the same bits).
fn fused_adds(k: &SweepKernel<'_>) -> Option<Vec<([u32; 4], f32)>> {
    if k.isa == Isa::Scalar {
        return None;
    }
    let mut adds = Vec::with_capacity(k.ops.len());
    for op in k.ops {
        match *op {
            Prepared::Add { key, coef, reused } => {
                if reused {
                    return None;
                }
                if coef != 0.0 {
                    adds.push((key, coef));
                }
            }
            Prepared::Scale(f) if k.decayed && f != 1.0 => return None,
            Prepared::Scale(_) => {}
        }
    }
    (1..=MAX_FUSED).contains(&adds.len()).then_some(adds)
}

/// `adds` on a tile of 16-bit storage whose first element has index `start` (a whole number
/// of groups): the first term reads the tile, the last writes it, terms between work on
/// `acc` in f32; one term works in place.
fn fused_tile<T: rng::HalfStorage>(
    k: &SweepKernel<'_>,
    start: usize,
    adds: &[([u32; 4], f32)],
    tile: &mut [T],
    acc: &mut [f32],
) {
    let g = (start / GROUP) as u64;
    let last = adds.len() - 1;
    for (i, &(key, coef)) in adds.iter().enumerate() {
        let io = match (i == 0, i == last) {
            (true, true) => rng::Io::InPlace(&mut *tile),
            (true, false) => rng::Io::Widen(&*tile, &mut *acc),
            (false, true) => rng::Io::Narrow(&*acc, &mut *tile),
            (false, false) => {
                rng::axpy_raw(k.isa, key, k.tensor, g, k.dist, coef, acc);
                continue;
            }
        };
        rng::axpy_io(k.isa, key, k.tensor, g, k.dist, coef, io);
    }
}

/// Runs the ops on one tile of f32 values whose first element has index `start`.
#[inline(always)]
fn tile_ops(k: &SweepKernel<'_>, start: usize, acc: &mut [f32], z: &mut [f32; TILE]) {
    let n = acc.len();
    // Whole groups covering the tile; the tail of the last group is generated and unused.
    let padded = n.div_ceil(GROUP) * GROUP;
    let mut cached: Option<[u32; 4]> = None;
    for op in k.ops {
        match *op {
            Prepared::Add { key, coef, reused } => {
                if coef == 0.0 {
                    continue;
                }
                if cached != Some(key) && !reused && n == padded {
                    // Fused: z is generated and consumed in registers (same bits as below).
                    rng::axpy_raw(
                        k.isa,
                        key,
                        k.tensor,
                        (start / GROUP) as u64,
                        k.dist,
                        coef,
                        acc,
                    );
                    continue;
                }
                if cached != Some(key) {
                    rng::fill_raw(
                        k.isa,
                        key,
                        k.tensor,
                        (start / GROUP) as u64,
                        k.dist,
                        &mut z[..padded],
                    );
                    cached = Some(key);
                }
                for (a, zv) in acc.iter_mut().zip(&z[..n]) {
                    *a = zv.mul_add(coef, *a);
                }
            }
            Prepared::Scale(f) => {
                if k.decayed && f != 1.0 {
                    for a in acc.iter_mut() {
                        *a *= f;
                    }
                }
            }
        }
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
fn chunk_fma<T: Elem>(k: &SweepKernel<'_>, chunk: &mut [T], first: usize) {
    chunk_generic(k, chunk, first)
}

#[cfg(feature = "cuda")]
mod cuda;
#[cfg(any(test, feature = "cuda"))]
mod device_abi;
#[cfg(test)]
mod device_tests;
#[cfg(test)]
mod tests;
