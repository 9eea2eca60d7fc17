//! Our own f32 GEMM for the one product shape the OPT forward is made of:
//! `C[n × o] = epilogue(A[n × k] · Wᵀ)` with `W: [o, k]` row-major (torch's Linear layout, and
//! the tied lm_head), fused with the Linear epilogue (scale, bias, residual, ReLU).
//!
//! Why not the `gemm` crate (which candle uses): on this workload it runs at ~120 GFLOP/s on
//! two Zen 3 cores where OpenBLAS reaches 150-174, and at ~205 GFLOP/s on two cores of an
//! AVX-512 Xeon where MKL reaches ~355 and our AVX-512 kernel ~345 (idle machine, 1024-row
//! body products); the forward is ~88% GEMM.
//! The structure is the Goto/BLIS one (Goto & van de Geijn, "Anatomy of High-Performance Matrix
//! Multiplication", TOMS 2008; Van Zee & van de Geijn, "BLIS", TOMS 2015):
//!
//! ```text
//! for jc in 0..o step NC            (columns of C = rows of W)
//!   for pc in 0..k step KC          (the reduction, in order)
//!     pack B = W[jc.., pc..]ᵀ into KC×NR panels        (shared, L3; see below)
//!     parallel over (MC row block, group of NR panels) of C:
//!       pack A[ic.., pc..] into KC×MR micro-panels     (per thread, L2)
//!       for each NR panel: for each MR micro-panel:  MR×NR micro-kernel (B panel in L1)
//! ```
//!
//! An implicit im2col (a [`RowSource`] with runs: the convolutions) need not be packed at
//! all: where the kernel has `driver::Kernel::KERNEL_RUNS` (the AVX-512 kernel, under both
//! of its blockings), it broadcasts A straight from the input, one pointer per row and run,
//! in the packed kernel's FMA order (the same bits). With ResNet's 64–128 output channels
//! each packed A micro-panel served only 2–4 B panels, so the packing was ~12 % of the
//! ResNet-18 forward; reading in place took the 64→64 3×3 convolution from 1.06–1.12 to
//! 1.19–1.34 times zo's SGEMM on its stored im2col matrix (docs/BENCH.md round 11). A dense
//! A read in place was slower (136–180 against 155–204 GFLOP/s on opt-125m's products: its
//! micro-panel is reused over many B panels, and 12 rows 3 KB apart sit worse in L1 than one
//! packed block), so dense A stays packed.
//!
//! With a single row block (few rows: in bf16, or a convolution's gathered A) each B panel
//! has one user, so the task packs it itself right before use instead (no shared buffer, one
//! parallel region per `KC` step). Dense f32 products of up to 128 rows on the AVX-512F
//! kernel (64 on the AVX2 one) skip packing altogether (`driver::few_rows`: W read in place
//! and broadcast, A's rows in the lanes; a task-head slice 16×768→4096 at 1.5–2.3× the packed
//! order's GFLOP/s, greedy decoding's steps in 0.54–0.71 of the time; the same bits). The row
//! blocks deal the `MR`-row micro-panels out evenly, in a multiple of the thread count:
//! rounding a block up to a multiple of `MR` rows had left 1024 rows in 11 blocks on 2
//! threads, and dealing them evenly took the AVX-512 kernel from
//! ~300 to ~345 GFLOP/s on the 1024-row body products (2 threads, idle machine).
//!
//! C is `n × o` floats (megabytes) and every `KC` block revisits all of it, so with the AVX2
//! kernel each kernel call prefetches the C (and residual) tile of the next call: loading the
//! partial sums then hits L1 instead of stalling on L3/DRAM (with it, our time relative to the
//! `gemm` crate on 1024×768×3072 went from 1.2× to ~0.9×, measured on the shared Zen 3
//! machine). On the AVX-512 Xeon that prefetch was a loss (see below), so the AVX-512 kernel
//! goes without.
//!
//! The AMX kernel multiplies a pair of packed panels in a fraction of the time it takes to
//! move them, so its dense products take another order (`driver::shared_a`): per `KC` step, A
//! is packed once (1024 rows at a time) into a buffer every task reads, and each task packs
//! the few B panels it owns into its own L2 right before using them. Nothing packed then goes
//! out to L3 and back but the shared A, and A is not packed again per `NC` columns: 1.02–1.35
//! times the default order per CPU-second on the wide products (FC1, the LM head), level on
//! the 768-wide ones (docs/BENCH.md round 16). Packing the next panels a little at a time
//! between kernel calls, so as to overlap it with the tile unit's work, was behind on most
//! shapes.
//!
//! Tried and not kept: packing the next step's B panels as extra tasks of the current step's
//! parallel region (double-buffered B, one barrier per `KC` step instead of two): on the shared
//! machine our ratio to the `gemm` crate over the four body shapes was 1.12 with it against
//! 1.20 without (alternated runs of `examples/sgemm_bench.rs`), so the simpler loop stays.
//!
//! The epilogue is applied by the micro-kernel of the last `KC` block, so C is written once
//! with its final values. Earlier blocks store raw sums that the next block's kernel reloads
//! and continues: every element of C is one chain of FMAs over `p = 0, 1, …, k−1` in order
//! whatever the blocking, so the result is independent of `MC`, of how tasks are formed and of
//! the number of threads (work is split over output blocks only, never over `k`).
//!
//! Kernels (see [`Isa`]): an AVX-512F one with 12×32 tiles where the CPU has AVX-512F,
//! else the AVX2+FMA 6×16 one; elsewhere [`sgemm_nt`] returns `false` and the caller keeps
//! using the `gemm` crate. The driver is generic over the kernel (`driver::Kernel`: tile
//! shape, blocking constants, packing and micro-kernel), monomorphised once per kernel. Every
//! kernel computes each element of C as the same in-order FMA chain, with the same epilogue
//! operations, so they all give bit-identical results (tested), and which one runs does not
//! change any number. [`Compute::Bf16`] adds two kernels that round the inputs to bf16 (their
//! own bits, not the f32 ones): AMX tiles (`kernel_amx`, Intel) and AVX512-BF16 (`kernel_bf16`).
//!
//! The AVX-512 shape comes from the register budget: 32 `zmm` hold `2·MR` accumulators, the
//! 2 B vectors of a `k` step and a broadcast, so `MR ≤ 14` with `NR = 32`; 8 accumulators
//! would cover the FMA latency (4 cycles × 2 pipes), more leave slack and cut the B loads per
//! FMA. Measured on the 2-core AVX-512 Xeon (Sapphire Rapids class, 48 KB L1d, 2 MB L2;
//! `examples/sgemm_bench.rs`, 1 thread, GFLOP per CPU-second, medians over 5 alternated
//! samples, shapes 1024×768→768 / 768→3072 / 3072→768 / 768→4096, `KC = 256`, `MC = 192`):
//! 12×32 165/162/160/163, 14×32 166/159/161/162, 8×32 160/156/154/161, against 109/106/105/104
//! for the AVX2 6×16 kernel and 200/197/188/188 for MKL (torch, 1 thread). 12×32 and 14×32 are
//! a tie; 12×32 is the usual choice (BLIS's Skylake-X sgemm is 32×12 in its column-major
//! terms). Then, for 12×32: `KC = 128` lost ~10% against 256; `KC ∈ {256, 320, 384, 448,
//! 512}` × `MC ∈ {48, 72, 96, 144, 192, 384}` were within the noise of each other (166-193)
//! with `KC = 384`, `MC = 96` at the top of it in repeated sweeps (179-193); `NC` 1024, 2048,
//! 4096 tied (2048 keeps the shared B buffer at 3 MB); skipping the driver's C prefetch gave
//! 179-195 against 172-194 with it. The 16-row task head (16×768→50272, before the few-row
//! order) streams 154 MB of W for 1.2 GFLOP: it is bound by packing W, not by the kernel
//! (every kernel, MKL and the `gemm` crate ran it at 35-40 GFLOP/s on 1 thread); prefetching
//! W's rows in the packing routine and packing in the task (above) took ours to 43-46 (MKL
//! 40-45) and 75-85 on 2 threads (MKL 92-100).
//!
//! Where L2 is 2 MB or more per core (CPUID; Intel Sapphire Rapids and later) the AVX-512
//! kernel takes a larger blocking (`kernel_avx512::Avx512`'s `BIG_L2`): `KC = 768`, `MC = 192`,
//! and each task runs its A micro-panels outermost over L2-resident groups of 4 B panels
//! (`driver::Kernel::B_GROUP`), so the A micro-panel stays in L1 and C is written once for
//! `k ≤ 768`. On the Xeon with AMX of 2026-12-05 (docs/BENCH.md round 10; `sgemm_bench`,
//! medians of 5 alternated runs, GFLOP/s on the five 1024-row opt-125m products): 1 thread
//! 160–176 → 179–186, 2 threads 293–315 → 346–347 (MKL through torch, the same half hour:
//! 158–197 and 286–387). Zen 4/5 (1 MB L2) keep the blocking above.

// Without the x86 kernels, the scalar epilogue and the kernel enum's variants have no user.
#![cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]

use std::mem::MaybeUninit;

/// The two ends of a micro-kernel, written once for both kernels over their vector type's
/// intrinsics (`$w` lanes per vector, two vectors per tile row): loading the partial sums of
/// the previous `k` blocks into `acc`, and storing `acc` to C raw (`epi = None`: more `k`
/// blocks follow) or through the epilogue `max?(scale·acc + bias_scaled + res, 0)`.
/// Expands to unsafe intrinsic calls: use inside the kernels' `unsafe` bodies.
#[cfg(target_arch = "x86_64")]
macro_rules! load_tile {
    ($acc:ident, $c:ident, $ldc:ident, $w:literal, $loadu:ident) => {
        for (i, row) in $acc.iter_mut().enumerate() {
            for (h, v) in row.iter_mut().enumerate() {
                *v = $loadu($c.add(i * $ldc + h * $w));
            }
        }
    };
}

/// See `load_tile!`.
#[cfg(target_arch = "x86_64")]
macro_rules! store_tile {
    ($acc:ident, $c:ident, $ldc:ident, $epi:ident, $w:literal,
     $set1:ident, $setzero:ident, $loadu:ident, $storeu:ident, $fmadd:ident, $add:ident,
     $max:ident) => {
        match $epi {
            None => {
                for (i, row) in $acc.iter().enumerate() {
                    for (h, &v) in row.iter().enumerate() {
                        $storeu($c.add(i * $ldc + h * $w), v);
                    }
                }
            }
            Some(e) => {
                let s = $set1(e.scale);
                let zero = $setzero();
                let bias = if e.bias.is_null() {
                    [zero, zero]
                } else {
                    [$loadu(e.bias), $loadu(e.bias.add($w))]
                };
                for (i, row) in $acc.iter().enumerate() {
                    for (h, &v) in row.iter().enumerate() {
                        let mut y = $fmadd(v, s, bias[h]);
                        if !e.res.is_null() {
                            y = $add(y, $loadu(e.res.add(i * e.ldr + h * $w)));
                        }
                        if e.relu {
                            y = $max(y, zero);
                        }
                        $storeu($c.add(i * $ldc + h * $w), y);
                    }
                }
            }
        }
    };
}

/// `store_tile!` with the AVX-512 intrinsics (16 lanes), for the kernels whose tiles are rows
/// of two `zmm` (AVX-512F, AVX512-BF16, and AMX after its tiles are stored).
#[cfg(target_arch = "x86_64")]
macro_rules! store_tile_zmm {
    ($acc:ident, $c:ident, $ldc:ident, $epi:ident) => {
        store_tile!(
            $acc,
            $c,
            $ldc,
            $epi,
            16,
            _mm512_set1_ps,
            _mm512_setzero_ps,
            _mm512_loadu_ps,
            _mm512_storeu_ps,
            _mm512_fmadd_ps,
            _mm512_add_ps,
            _mm512_max_ps
        )
    };
}

#[cfg(target_arch = "x86_64")]
mod kernel_amx;
/// The 16 × 16 in-register transpose of 32-bit words (also the attention's key transpose).
#[cfg(target_arch = "x86_64")]
pub(crate) use driver::OutPtr;
pub(crate) use kernel_amx::transpose16;
#[cfg(target_arch = "x86_64")]
mod kernel_avx2;
#[cfg(target_arch = "x86_64")]
mod kernel_avx512;
#[cfg(target_arch = "x86_64")]
mod kernel_bf16;
#[cfg(target_arch = "x86_64")]
mod kernel_fma_bf16;

/// A micro-kernel of [`sgemm_nt_with`] (what [`sgemm_nt`] picks: [`Isa::best`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Isa {
    /// AVX2+FMA, 6×16 tiles (BLIS's Haswell/Zen shape).
    Avx2,
    /// AVX-512F, 12×32 tiles.
    Avx512,
    /// AVX512-BF16, 12×32 tiles, inputs rounded to bf16 (not bit-identical to the f32
    /// kernels: only used when asked for, by [`Compute::Bf16`]).
    Avx512Bf16,
    /// The f32 AVX-512 kernel on inputs rounded to bf16 as [`Isa::Avx512Bf16`]'s, for Intel
    /// CPUs without AMX, where `vdpbf16ps` runs at half the f32 FMA's rate
    /// (`kernel_fma_bf16`).
    Avx512FmaBf16,
    /// AMX-BF16 tiles (Intel Sapphire Rapids and later), 32×32 micro-tiles, inputs rounded to
    /// bf16 as [`Isa::Avx512Bf16`]'s; a product whose `k` blocks do not suit the tiles (`k < 16`,
    /// a last block under 16) runs on [`Isa::Avx512Bf16`] instead.
    AmxBf16,
}

/// The arithmetic of the products: f32 (every kernel gives the same bits), or bf16 inputs with
/// f32 accumulation where the CPU has AVX512-BF16 (the f32 kernels elsewhere).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Compute {
    #[default]
    F32,
    Bf16,
}

impl Compute {
    /// The kernel this setting runs on this CPU: for bf16, AMX where the CPU has it, else
    /// AVX512-BF16 (`vdpbf16ps` on AMD, the rounded inputs on the f32 FMA kernel on Intel:
    /// [`dpbf16_is_slow`]), else the best f32 kernel.
    pub fn isa(self) -> Option<Isa> {
        match self {
            Compute::Bf16 if Isa::AmxBf16.supported() => Some(Isa::AmxBf16),
            // The kernel picked is the one whose features are checked (it needs AVX512-VL too).
            Compute::Bf16 if Isa::Avx512FmaBf16.supported() && dpbf16_is_slow() => {
                Some(Isa::Avx512FmaBf16)
            }
            Compute::Bf16 if Isa::Avx512Bf16.supported() => Some(Isa::Avx512Bf16),
            _ => Isa::best(),
        }
    }
}

/// Whether this CPU's `vdpbf16ps` is slower than computing its products with f32 FMAs: on
/// Intel (CPUID vendor "GenuineIntel"). Measured on two Intel Xeons: the Sapphire Rapids class
/// part of 2026-12-04 ran the bf16 kernel at 97–103 GFLOP/s against 151–173 for the f32 one
/// (one thread, opt-125m shapes), the Emerald Rapids one of 2026-12-06 issued `vdpbf16ps zmm`
/// at a quarter of the rate of `vfmadd231ps zmm` (0.75 against 0.19 ns); on AMD Zen 4 the bf16
/// kernel took 0.55× the f32 time (docs/BENCH.md, rounds 9 and 18).
pub fn dpbf16_is_slow() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        // Read once: CPUID exits to the hypervisor in a VM, and every product asks.
        static INTEL: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
        *INTEL.get_or_init(|| {
            // CPUID leaf 0: the vendor string in EBX, EDX, ECX.
            let r = std::arch::x86_64::__cpuid(0);
            let mut vendor = [0u8; 12];
            for (d, w) in vendor.chunks_exact_mut(4).zip([r.ebx, r.edx, r.ecx]) {
                d.copy_from_slice(&w.to_le_bytes());
            }
            &vendor == b"GenuineIntel"
        })
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

impl Isa {
    /// Whether this CPU can run the kernel and the process's cap allows it (`zo_core::cpu`).
    pub fn supported(self) -> bool {
        #[cfg(target_arch = "x86_64")]
        {
            use std::arch::is_x86_feature_detected as has;
            use zo_core::cpu;
            let avx2 = cpu::avx2_fma();
            match self {
                Isa::Avx2 => avx2,
                Isa::Avx512 => avx2 && cpu::avx512f(),
                Isa::Avx512Bf16 => avx2 && cpu::avx512bf16(),
                // Its rounding is the 256-bit `vcvtneps2bf16` (AVX512-VL).
                Isa::Avx512FmaBf16 => avx2 && cpu::avx512bf16() && has!("avx512vl"),
                Isa::AmxBf16 => avx2 && cpu::allows(cpu::Level::Amx) && kernel_amx::supported(),
            }
        }
        #[cfg(not(target_arch = "x86_64"))]
        {
            false
        }
    }

    /// The kernel's name in reports (`zo bench`'s `kernel` field).
    pub fn name(self) -> &'static str {
        match self {
            Isa::Avx2 => "avx2",
            Isa::Avx512 => "avx512",
            Isa::Avx512Bf16 => "avx512bf16",
            Isa::Avx512FmaBf16 => "avx512_fma_bf16",
            Isa::AmxBf16 => "amx_bf16",
        }
    }

    /// Whether the kernel rounds its inputs to bf16.
    pub fn is_bf16(self) -> bool {
        matches!(self, Isa::Avx512Bf16 | Isa::Avx512FmaBf16 | Isa::AmxBf16)
    }

    /// Whether the kernel multiplies on bf16 units (`vdpbf16ps`, AMX tiles), whose peak is not
    /// the f32 FMA's; [`Isa::Avx512FmaBf16`] rounds its inputs but multiplies with f32 FMAs.
    pub fn bf16_units(self) -> bool {
        matches!(self, Isa::Avx512Bf16 | Isa::AmxBf16)
    }

    /// The fastest kernel this CPU supports, if any.
    pub fn best() -> Option<Isa> {
        [Isa::Avx512, Isa::Avx2]
            .into_iter()
            .find(|isa| isa.supported())
    }
}

/// What is applied to `acc = A Wᵀ` before the single store:
/// `y = max?(scale·acc + scale·bias[j] + residual[i, j], 0)`.
#[derive(Clone, Copy, Debug)]
pub struct Epilogue<'a> {
    pub scale: f32,
    /// `[o]`.
    pub bias: Option<&'a [f32]>,
    /// `[n, o]` row-major.
    pub residual: Option<&'a [f32]>,
    pub relu: bool,
}

impl Epilogue<'_> {
    /// `y = acc` (plain product).
    pub const PLAIN: Epilogue<'static> = Epilogue {
        scale: 1.0,
        bias: None,
        residual: None,
        relu: false,
    };
}

/// Whether [`sgemm_nt`] has a kernel on this CPU.
pub fn available() -> bool {
    Isa::best().is_some()
}

/// `c[n × o] = epilogue(a[n × k] · wᵀ)` with `w: [o, k]`, all row-major and contiguous, on
/// rayon's current pool, with the best kernel of this CPU. Returns `false` (and leaves `c`
/// untouched) when this CPU has no kernel or a slice length does not match the shape; the
/// caller then uses another GEMM.
#[allow(clippy::too_many_arguments)]
pub fn sgemm_nt(
    n: usize,
    o: usize,
    k: usize,
    a: &[f32],
    w: &[f32],
    c: &mut [f32],
    epi: &Epilogue<'_>,
) -> bool {
    match Isa::best() {
        Some(isa) => sgemm_nt_with(isa, n, o, k, a, w, c, epi),
        None => false,
    }
}

/// [`sgemm_nt`] into uninitialised memory (e.g. a `Vec`'s spare capacity, saving the zeroing
/// of a buffer that is overwritten anyway): when it returns `true`, all of `c` is initialised.
#[allow(clippy::too_many_arguments)]
pub fn sgemm_nt_uninit(
    n: usize,
    o: usize,
    k: usize,
    a: &[f32],
    w: &[f32],
    c: &mut [MaybeUninit<f32>],
    epi: &Epilogue<'_>,
) -> bool {
    sgemm_nt_uninit_compute(Compute::F32, n, o, k, a, w, c, epi)
}

/// [`sgemm_nt_uninit`] with the products in `compute`'s arithmetic ([`Compute::isa`]).
#[allow(clippy::too_many_arguments)]
pub fn sgemm_nt_uninit_compute(
    compute: Compute,
    n: usize,
    o: usize,
    k: usize,
    a: &[f32],
    w: &[f32],
    c: &mut [MaybeUninit<f32>],
    epi: &Epilogue<'_>,
) -> bool {
    match compute.isa() {
        Some(isa) => run(isa, n, o, k, a, w, c, epi, true),
        None => false,
    }
}

/// [`sgemm_nt`] with the products in `compute`'s arithmetic ([`Compute::isa`]).
#[allow(clippy::too_many_arguments)]
pub fn sgemm_nt_compute(
    compute: Compute,
    n: usize,
    o: usize,
    k: usize,
    a: &[f32],
    w: &[f32],
    c: &mut [f32],
    epi: &Epilogue<'_>,
) -> bool {
    match compute.isa() {
        Some(isa) => sgemm_nt_with(isa, n, o, k, a, w, c, epi),
        None => false,
    }
}

/// [`sgemm_nt`] on the given kernel (for tests and benchmarks): `false` also when this CPU
/// does not support it. All kernels give bit-identical results.
#[allow(clippy::too_many_arguments)]
pub fn sgemm_nt_with(
    isa: Isa,
    n: usize,
    o: usize,
    k: usize,
    a: &[f32],
    w: &[f32],
    c: &mut [f32],
    epi: &Epilogue<'_>,
) -> bool {
    run_init(isa, n, o, k, a, w, c, epi, true)
}

/// [`sgemm_nt_with`] in the packed order even where the product has few rows (for tests and
/// benchmarks: the few-row order, which the f32 AVX-512F kernel takes up to 128 rows and the
/// AVX2 one up to 64, gives the same bits).
#[doc(hidden)]
#[allow(clippy::too_many_arguments)]
pub fn sgemm_nt_packed_with(
    isa: Isa,
    n: usize,
    o: usize,
    k: usize,
    a: &[f32],
    w: &[f32],
    c: &mut [f32],
    epi: &Epilogue<'_>,
) -> bool {
    run_init(isa, n, o, k, a, w, c, epi, false)
}

/// [`run`] into an initialised output.
#[allow(clippy::too_many_arguments)]
fn run_init(
    isa: Isa,
    n: usize,
    o: usize,
    k: usize,
    a: &[f32],
    w: &[f32],
    c: &mut [f32],
    epi: &Epilogue<'_>,
    few_rows: bool,
) -> bool {
    // SAFETY: `MaybeUninit<f32>` has `f32`'s layout, and `run` writes only initialised
    // values, so `c` stays initialised.
    let c = unsafe { &mut *(c as *mut [f32] as *mut [MaybeUninit<f32>]) };
    run(isa, n, o, k, a, w, c, epi, few_rows)
}

/// The dense product on `isa`; `few_rows`: whether products with few rows may take the
/// few-row order (`driver::few_rows`).
#[allow(clippy::too_many_arguments)]
fn run(
    isa: Isa,
    n: usize,
    o: usize,
    k: usize,
    a: &[f32],
    w: &[f32],
    c: &mut [MaybeUninit<f32>],
    epi: &Epilogue<'_>,
    few_rows: bool,
) -> bool {
    if a.len() != n * k {
        return false;
    }
    #[cfg(target_arch = "x86_64")]
    {
        run_src(isa, n, o, k, &driver::Dense { a, k }, w, c, epi, few_rows)
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        let _ = (isa, o, w, c, epi, few_rows);
        false
    }
}

/// The rows of an `A` matrix that is not stored (an implicit im2col): [`sgemm_rows_uninit`]
/// asks for them a few rows and one `k` block at a time, right before packing them, so they
/// go from the source to the packed panel through L1.
pub trait RowSource: Sync {
    /// Writes rows `i0 .. i0 + rows`, columns `p0 .. p0 + kc` of `A` into `dst`
    /// (`rows × kc`, row-major, row stride `kc`). Called with every `(i0, p0)` block of `A`,
    /// possibly several times and from several threads; it must write the same values each
    /// time.
    fn gather(&self, i0: usize, rows: usize, p0: usize, kc: usize, dst: &mut [f32]);

    /// The same block as runs of columns that are contiguous in memory for every row: calls
    /// `f(q, len, ptrs)` for consecutive runs covering `p0 .. p0 + kc` in order, where
    /// `ptrs[r]` (`r < rows`) points at `len` floats holding `A[i0 + r, q .. q + len]`, or is
    /// null for zeros; then the kernels that can pack from row pointers skip [`gather`]'s copy.
    /// Returns `false` without calling `f` when the source has no such runs (the default).
    ///
    /// [`gather`]: RowSource::gather
    fn runs(
        &self,
        i0: usize,
        rows: usize,
        p0: usize,
        kc: usize,
        f: &mut dyn FnMut(usize, usize, &[*const f32]),
    ) -> bool {
        let _ = (i0, rows, p0, kc, f);
        false
    }
}

/// [`sgemm_nt_uninit`] with `A: [n, k]` given by `src` instead of a slice. Returns `false`
/// (`c` untouched) when this CPU has no kernel or a slice length does not match the shape.
#[allow(clippy::too_many_arguments)]
pub fn sgemm_rows_uninit<S: RowSource + ?Sized>(
    n: usize,
    o: usize,
    k: usize,
    src: &S,
    w: &[f32],
    c: &mut [MaybeUninit<f32>],
    epi: &Epilogue<'_>,
) -> bool {
    sgemm_rows_uninit_compute(Compute::F32, n, o, k, src, w, c, epi)
}

/// [`sgemm_rows_uninit`] with the products in `compute`'s arithmetic ([`Compute::isa`]).
#[allow(clippy::too_many_arguments)]
pub fn sgemm_rows_uninit_compute<S: RowSource + ?Sized>(
    compute: Compute,
    n: usize,
    o: usize,
    k: usize,
    src: &S,
    w: &[f32],
    c: &mut [MaybeUninit<f32>],
    epi: &Epilogue<'_>,
) -> bool {
    let Some(isa) = compute.isa() else {
        return false;
    };
    #[cfg(target_arch = "x86_64")]
    {
        run_src(isa, n, o, k, &driver::Gathered(src), w, c, epi, false)
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        let _ = (isa, n, o, k, src, w, c, epi);
        false
    }
}

/// The scalar epilogue, the same operations as the kernel's vector one (FMA, then add, then
/// max), for edge tiles and `k = 0`.
#[inline]
fn finish(acc: f32, epi: &Epilogue<'_>, bs: Option<&[f32]>, i: usize, j: usize, o: usize) -> f32 {
    let mut y = acc.mul_add(epi.scale, bs.map_or(0.0, |b| b[j]));
    if let Some(r) = epi.residual {
        y += r[i * o + j];
    }
    if epi.relu {
        y = y.max(0.0);
    }
    y
}

#[cfg(target_arch = "x86_64")]
mod dispatch;
#[cfg(target_arch = "x86_64")]
use dispatch::run_src;
#[cfg(target_arch = "x86_64")]
mod driver;
mod w16;

pub use w16::{sgemm_nt_uninit_w16, MAX_ROWS_W16, W16};

#[cfg(test)]
pub(crate) mod tests;
