//! The blocked loops, packing buffers and threading of [`super::sgemm_nt`] (x86-64 only),
//! generic over the micro-kernel ([`Kernel`]) and monomorphised once per kernel.

use std::cell::RefCell;
use std::mem::MaybeUninit;
use std::thread::LocalKey;

use rayon::prelude::*;

use super::{finish, Epilogue};

mod a_panels;
pub(super) mod few_rows;
pub(super) mod shared_a;

use a_panels::{with_runs, APanel};
pub(super) use a_panels::{ARun, Dense, Gathered, PackA, Zeros};

/// A micro-kernel with its packing routines and blocking constants.
///
/// Contract shared by every implementation, which is what makes their results bit-identical
/// to each other: the kernel computes each element of its `MR × NR` tile as one chain of
/// `fma(a[p], b[p], acc)` over `p = 0 .. kc` in order, starting from C (`accumulate`) or from
/// `+0.0`, and the epilogue as `fma(acc, scale, bias_scaled)`, then `+ residual`, then
/// `max(·, 0)` (second operand returned on NaN), exactly as [`super::finish`].
pub(super) trait Kernel {
    /// Micro-tile rows (broadcast A values per `k` step), ≤ [`MAX_MR`].
    const MR: usize;
    /// Micro-tile columns (vector lanes of B per `k` step), ≤ [`MAX_NR`].
    const NR: usize;
    /// Reduction block.
    const KC: usize;
    /// Largest row block (multiple of `MR`).
    const MC_MAX: usize;
    /// Column block (multiple of `NR`): bounds the shared packed B buffer at `KC·NC` floats.
    const NC: usize;
    /// How many floats [`Kernel::pack_a`] may write past `kc·MR`.
    const A_SPILL: usize;
    /// Whether the driver prefetches the next tile of C (and of the residual) into L1 before
    /// each kernel call (only in the panel-outer order, `B_GROUP = 0`).
    const PREFETCH_C: bool;
    /// The order of a task's kernel calls over its row block × panel group. `0`: panel-outer,
    /// each packed B panel (`KC × NR`) stays in L1 while the block's A micro-panels stream
    /// past it. `g > 0`: the panels are taken `g` at a time (an L2-resident group), and for
    /// each A micro-panel (`MR × KC`, then the L1-resident one) the kernel runs over the
    /// group's panels; for a `KC` whose B panel no longer fits L1.
    const B_GROUP: usize = 0;
    /// `r > 0`: dense products with several row blocks run in [`shared_a`]'s order where it
    /// suits their shape ([`shared_a::suits`]): A packed once per `k` block, `r` rows at a
    /// time, into a buffer all tasks read, each task's B panels packed by the task. `0`: the
    /// default order.
    const SHARED_A_ROWS: usize = 0;

    /// `dst[p·MR + i] = src[i·ld + p]` for `i < rows ≤ MR`, `p < kc`; zero for `i ≥ rows`.
    ///
    /// # Safety
    /// The kernel's CPU features are available; `src` readable for rows `0 .. rows`, `kc`
    /// elements each at stride `ld`; `dst` writable for `kc·MR + A_SPILL` elements.
    unsafe fn pack_a(src: *const f32, ld: usize, rows: usize, kc: usize, dst: *mut f32);

    /// `dst[p·NR + j] = src[j·ld + p]` for `j < rows ≤ NR`, `p < kc`; zero for `j ≥ rows`.
    ///
    /// # Safety
    /// As [`Kernel::pack_a`], `dst` writable for `kc·NR` elements.
    unsafe fn pack_b(src: *const f32, ld: usize, rows: usize, kc: usize, dst: *mut f32);

    /// [`Kernel::pack_a`] from one pointer per row (null: zeros) for `kc` columns, composable
    /// over consecutive runs of columns (`dst + q·MR` for the run at `q`), where the kernel's
    /// packing allows it (`kernel_avx2::pack_ptrs`); `None`: A that is not stored is gathered
    /// into a buffer first. Same safety contract as `pack_ptrs`.
    const PACK_A_PTRS: Option<unsafe fn(&[*const f32], usize, *mut f32)> = None;

    /// Whether [`Kernel::PACK_A_PTRS`] works on pairs of columns (`kernel_fma_bf16`, which swaps
    /// the two of each pair): then it is used only where every run starts at an even column of
    /// the `k` block and has an even length (the block's last run excepted), and A is gathered
    /// elsewhere.
    const PACK_A_PTRS_PAIRS: bool = false;

    /// [`Kernel::kernel`] on an A micro-panel read in place instead of packed: the `runs`
    /// cover the `kc` columns in order, each giving one pointer per row (rows past the
    /// micro-panel's read [`a_panels::ZEROS`]). The same FMA chains in the same order, so the same
    /// bits as packing the runs first. `None`: A is always packed.
    const KERNEL_RUNS: Option<KernelRuns> = None;

    /// `C[MR × NR] (+)= Apanel · Bpanel` over `kc` steps, then a plain store of the raw sums
    /// (`epi = None`) or the epilogue.
    ///
    /// # Safety
    /// The kernel's CPU features are available; `a` readable for `kc·MR`, `b` for `kc·NR`
    /// elements; `c` valid for writing an `MR × NR` tile with row stride `ldc` (and for
    /// reading it, initialised, when `accumulate`); the epilogue pointers, when not null,
    /// readable for `NR` (bias) and an `MR × NR` tile at stride `ldr` (residual).
    unsafe fn kernel(
        kc: usize,
        a: *const f32,
        b: *const f32,
        c: *mut f32,
        ldc: usize,
        accumulate: bool,
        epi: Option<&TileEpi>,
    );
}

/// The weights `W: [o, k]` of a product as every order reads them: f32 in place, or bf16/f16
/// ([`Widened`]) read in place by the wide few-row kernel (widened in registers) and widened
/// exactly a block at a time (a panel right before its packing, a few-row tile's rows right
/// before its products) elsewhere, so that no f32 copy of W is made. The blocks hold the
/// widened values, so every order gives the bits of the product of the widened weights.
pub(super) trait Weights: Sync {
    /// The storage element, and its kind for [`few_rows::run_wide`] (`few_rows::W_*`).
    type Elem: Sync;
    const KIND: u8;

    /// The `o·k` stored elements.
    fn elems(&self) -> &[Self::Elem];

    /// [`Kernel::pack_b`] of rows `j0 .. j0 + rows` (`rows ≤ NR`), columns `pc .. pc + kc` of
    /// W into `dst`.
    ///
    /// # Safety
    /// `K`'s CPU features are available; the block lies inside `W: [o, k]`; `dst` writable for
    /// `kc·NR` floats.
    unsafe fn pack_b<K: Kernel>(
        &self,
        k: usize,
        j0: usize,
        rows: usize,
        pc: usize,
        kc: usize,
        dst: *mut f32,
    );

    /// Runs `f` on rows `j0 .. j0 + rows` of W as f32 rows `k` apart, with whether they are W
    /// itself (so the rows after them may be prefetched) or a widened copy.
    fn rows<R>(&self, k: usize, j0: usize, rows: usize, f: impl FnOnce(*const f32, bool) -> R)
        -> R;
}

impl Weights for [f32] {
    type Elem = f32;
    const KIND: u8 = few_rows::W_F32;

    fn elems(&self) -> &[f32] {
        self
    }

    unsafe fn pack_b<K: Kernel>(
        &self,
        k: usize,
        j0: usize,
        rows: usize,
        pc: usize,
        kc: usize,
        dst: *mut f32,
    ) {
        debug_assert!((j0 + rows - 1) * k + pc + kc <= self.len());
        // SAFETY: the caller's contract: the block lies inside W.
        unsafe { K::pack_b(self.as_ptr().add(j0 * k + pc), k, rows, kc, dst) }
    }

    fn rows<R>(
        &self,
        k: usize,
        j0: usize,
        rows: usize,
        f: impl FnOnce(*const f32, bool) -> R,
    ) -> R {
        f(self[j0 * k..(j0 + rows) * k].as_ptr(), true)
    }
}

/// A 16-bit storage type of weights: its kind for the wide few-row kernel and its exact
/// widening (vectorised, `zo_core::convert`).
pub(super) trait Half: Sync + Copy {
    const KIND: u8;
    fn widen(src: &[Self], dst: &mut [f32]);
}

impl Half for half::bf16 {
    const KIND: u8 = few_rows::W_BF16;
    fn widen(src: &[Self], dst: &mut [f32]) {
        zo_core::convert::bf16_to_f32(src, dst)
    }
}

impl Half for half::f16 {
    const KIND: u8 = few_rows::W_F16;
    fn widen(src: &[Self], dst: &mut [f32]) {
        zo_core::convert::f16_to_f32(src, dst)
    }
}

/// 16-bit weights ([`Weights`]): each block widened into one of the thread's buffers (a packed
/// panel's `NR × KC` floats, in L1; a few-row tile's 16 rows, in L2) and read from there.
pub(super) struct Widened<'a, S>(pub &'a [S]);

impl<S: Half> Widened<'_, S> {
    /// Rows `j0 .. j0 + rows`, columns `pc .. pc + kc` of `W: [o, k]`, widened into `dst`
    /// (row stride `kc`).
    fn widen_block(
        &self,
        k: usize,
        (j0, rows): (usize, usize),
        (pc, kc): (usize, usize),
        dst: &mut [f32],
    ) {
        for (r, row) in dst.chunks_exact_mut(kc).take(rows).enumerate() {
            let at = (j0 + r) * k + pc;
            S::widen(&self.0[at..at + kc], row);
        }
    }
}

impl<S: Half> Weights for Widened<'_, S> {
    type Elem = S;
    const KIND: u8 = S::KIND;

    fn elems(&self) -> &[S] {
        self.0
    }

    unsafe fn pack_b<K: Kernel>(
        &self,
        k: usize,
        j0: usize,
        rows: usize,
        pc: usize,
        kc: usize,
        dst: *mut f32,
    ) {
        with_buf(&W_BUF, rows * kc, |buf| {
            self.widen_block(k, (j0, rows), (pc, kc), buf);
            // SAFETY: `buf` holds the block, `rows` rows of `kc` floats at stride `kc`; the
            // rest is the caller's contract.
            unsafe { K::pack_b(buf.as_ptr(), kc, rows, kc, dst) }
        })
    }

    fn rows<R>(
        &self,
        k: usize,
        j0: usize,
        rows: usize,
        f: impl FnOnce(*const f32, bool) -> R,
    ) -> R {
        with_buf(&T_BUF, rows * k, |buf| {
            self.widen_block(k, (j0, rows), (0, k), buf);
            f(buf.as_ptr(), false)
        })
    }
}

/// The signature of [`Kernel::KERNEL_RUNS`]: `(runs, b, c, ldc, accumulate, epi)`, as
/// [`Kernel::kernel`] with the A micro-panel given by its runs.
///
/// # Safety
/// As [`Kernel::kernel`]; each run's `MR` pointers readable for its `len` floats.
pub(super) type KernelRuns =
    unsafe fn(&[ARun], *const f32, *mut f32, usize, bool, Option<&TileEpi>);

/// Bounds on the kernels' tile shape (the size of the edge tiles' stack copy).
pub(super) const MAX_MR: usize = 32;
pub(super) const MAX_NR: usize = 32;

/// What the last `k` block of a full tile applies before its single store:
/// `max?(scale·acc + bias_scaled[j] + res[i, j], 0)`.
pub(super) struct TileEpi {
    pub scale: f32,
    /// `NR` pre-scaled bias values for the tile's columns, or null.
    pub bias: *const f32,
    /// The residual tile (row stride `ldr`), or null.
    pub res: *const f32,
    pub ldr: usize,
    pub relu: bool,
}

/// Asks for the `rows × cols` tile at `p` (row stride `ld`) to be brought into L1: issued one
/// micro-kernel call ahead, so that loading the partial sums of C (and the residual) does not
/// stall the next call on L3/DRAM misses (C is `n × o` floats, megabytes, and every `KC`
/// block revisits all of it).
///
/// # Safety
/// None needed for correctness (prefetches never fault); the tile must lie inside one live
/// allocation so the offsets are valid pointer arithmetic.
#[inline]
unsafe fn prefetch_tile(p: *const f32, ld: usize, rows: usize, cols: usize) {
    use std::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};
    for r in 0..rows {
        // SAFETY: the offsets `r·ld + q` with `q < cols` lie inside the tile.
        unsafe {
            let row = p.add(r * ld);
            let mut q = 0;
            while q < cols {
                _mm_prefetch::<_MM_HINT_T0>(row.add(q) as *const i8);
                q += 16;
            }
            _mm_prefetch::<_MM_HINT_T0>(row.add(cols - 1) as *const i8);
        }
    }
}

thread_local! {
    /// Packed A block of the tasks that run on this thread (≤ `MC_MAX·KC` floats).
    static A_BUF: RefCell<Vec<f32>> = const { RefCell::new(Vec::new()) };
    /// Packed B panel of the calls made from this thread (≤ `KC·NC` floats).
    static B_BUF: RefCell<Vec<f32>> = const { RefCell::new(Vec::new()) };
    /// One B panel packed by the task that uses it (`KC·NR` floats), when there is one row
    /// block.
    static P_BUF: RefCell<Vec<f32>> = const { RefCell::new(Vec::new()) };
    /// A block of 16-bit weights widened before its packing (`NR·KC` floats; [`Widened`]).
    static W_BUF: RefCell<Vec<f32>> = const { RefCell::new(Vec::new()) };
    /// A few-row tile's rows of 16-bit weights, widened (`16·k` floats; [`Widened`]).
    static T_BUF: RefCell<Vec<f32>> = const { RefCell::new(Vec::new()) };
}

/// Runs `f` on a 64-byte-aligned slice of `len` floats from the thread's reusable buffer `key`
/// (grown on first use, never shrunk: no allocation per call once warm). Only if the buffer is
/// already borrowed on this thread (a nested call from a task that rayon ran while this thread
/// waited) does it allocate a temporary one.
fn with_buf<R>(
    key: &'static LocalKey<RefCell<Vec<f32>>>,
    len: usize,
    f: impl FnOnce(&mut [f32]) -> R,
) -> R {
    fn aligned(v: &mut Vec<f32>, len: usize) -> &mut [f32] {
        if v.len() < len + 16 {
            v.resize(len + 16, 0.0);
        }
        let off = v.as_ptr().align_offset(64).min(16);
        &mut v[off..off + len]
    }
    key.with(|cell| match cell.try_borrow_mut() {
        Ok(mut v) => f(aligned(&mut v, len)),
        Err(_) => f(aligned(&mut Vec::new(), len)),
    })
}

/// An output's base pointer, shared by tasks that write pairwise disjoint elements (C's tiles
/// here; attention's (rows, head columns) blocks in `cpu::attention`).
#[derive(Clone, Copy)]
pub(crate) struct OutPtr(pub(crate) *mut f32);
// SAFETY: every user lets each task write only its own elements (here the tiles of its (row
// block, panel group); see `run`).
unsafe impl Send for OutPtr {}
unsafe impl Sync for OutPtr {}

impl OutPtr {
    /// Through a method, so that closures capture the (Send) wrapper and not its raw field.
    pub(crate) fn get(self) -> *mut f32 {
        self.0
    }
}

/// How the `n` rows are cut into row blocks: `(blocks, micro-panels)`, where the `⌈n/mr⌉`
/// micro-panels (of `mr` rows) are dealt out as evenly as possible, block `b` getting
/// micro-panels `b·M/blocks .. (b+1)·M/blocks` ([`block_rows`]). Blocks start at multiples of
/// `mr`, so micro-tiles, and hence which elements go through the edge path, do not depend on
/// the cut. With enough rows the number of blocks is a multiple of the thread count, and the
/// even deal keeps the threads' shares within one micro-panel of each other (rounding the
/// block height up to a multiple of `mr` instead left 1024 rows in 11 blocks of 96 rows on 2
/// threads, 6 against 5).
pub(super) fn row_blocks(n: usize, threads: usize, mr: usize, mc_max: usize) -> (usize, usize) {
    let micro = n.div_ceil(mr);
    let mut rb = n.div_ceil(mc_max);
    if rb > 1 || n >= threads * 4 * mr {
        rb = rb.max(threads).div_ceil(threads) * threads;
    }
    (rb.min(micro), micro)
}

/// Rows `(first, count)` of row block `b` of [`row_blocks`]' `(rb, micro)` cut.
pub(super) fn block_rows(b: usize, rb: usize, micro: usize, mr: usize, n: usize) -> (usize, usize) {
    let (p0, p1) = (b * micro / rb, (b + 1) * micro / rb);
    let i0 = p0 * mr;
    (i0, (p1 * mr).min(n) - i0)
}

/// The product on the kernel `K`; `c` is fully initialised when this returns.
///
/// # Safety
/// `K`'s CPU features are available (checked by the caller); `a` is `[n, k]`, slice lengths
/// match the shape (`w: o·k`, `c: n·o`, bias `o`, residual `n·o`); `n, o, k > 0`.
#[allow(clippy::too_many_arguments)]
pub(super) unsafe fn run<K: Kernel, A: PackA, W: Weights + ?Sized>(
    n: usize,
    o: usize,
    k: usize,
    a: &A,
    w: &W,
    c: &mut [MaybeUninit<f32>],
    epi: &Epilogue<'_>,
    bias_scaled: Option<&[f32]>,
) {
    let (mr, nr, kc_blk, nc_blk) = (K::MR, K::NR, K::KC, K::NC);
    let threads = rayon::current_num_threads().max(1);
    let (rb, micro_all) = row_blocks(n, threads, mr, K::MC_MAX);
    if shared_a::suits::<K, A>(n, o, rb, threads) {
        // SAFETY: the caller's contract, which is `shared_a::run`'s.
        return unsafe { shared_a::run::<K, A, W>(n, o, k, a, w, c, epi, bias_scaled) };
    }
    // Written only through this pointer, initialised values only: the first `k` block's
    // kernels (`accumulate = false`) write every element before any later block reads it.
    let out = OutPtr(c.as_mut_ptr().cast::<f32>());
    let kc_max = kc_blk.min(k);
    let nc_max = nc_blk.min(o).div_ceil(nr) * nr;
    // With several row blocks, every B panel is used by several tasks: it is packed once,
    // shared, before them. With one (few rows where `few_rows` does not run), each panel has
    // one user, which packs it right before use into its own small buffer: the packed panel
    // stays in L1 instead of going through L3, and there is one parallel region per `k` step
    // instead of two (16×768→50272: 67 → 70 GFLOP/s on 2 threads, 37 → 38.7 on 1, alternated runs).
    let shared_b = rb > 1;
    with_buf(&B_BUF, if shared_b { kc_max * nc_max } else { 0 }, |bbuf| {
        for jc in (0..o).step_by(nc_blk) {
            let nc = nc_blk.min(o - jc);
            let panels = nc.div_ceil(nr);
            // Enough tasks for every thread to have ~2 (work stealing evens out the rest);
            // with few rows, the panels are split into groups instead.
            let groups = (2 * threads).div_ceil(rb).clamp(1, panels);
            let per_group = panels.div_ceil(groups);
            for pc in (0..k).step_by(kc_blk) {
                let kc = kc_blk.min(k - pc);
                let last = pc + kc == k;
                let bpack = &mut bbuf[..if shared_b { panels * kc * nr } else { 0 }];
                bpack
                    .par_chunks_mut(kc * nr)
                    .enumerate()
                    .for_each(|(jp, dst)| {
                        let j0 = jc + jp * nr;
                        // SAFETY: rows `j0 .. j0 + min(NR, o − j0)` of `w: [o, k]`, columns
                        // `pc .. pc + kc ≤ k`, are in bounds; `dst` holds `kc·NR` floats;
                        // the kernel's features were detected by the caller.
                        unsafe { w.pack_b::<K>(k, j0, nr.min(o - j0), pc, kc, dst.as_mut_ptr()) };
                    });
                let bpack = &*bpack;
                (0..rb * groups).into_par_iter().for_each(|task| {
                    let (ib, g) = (task / groups, task % groups);
                    let (i0, m) = block_rows(ib, rb, micro_all, mr, n);
                    let (jp0, jp1) = (g * per_group, ((g + 1) * per_group).min(panels));
                    if jp0 >= jp1 || m == 0 {
                        return;
                    }
                    let micro = m.div_ceil(mr);
                    // The block's kernel calls, A micro-panel `ip` given by `panel(ip)`.
                    let calls = |panel: &dyn Fn(usize) -> APanel| {
                        if shared_b && K::B_GROUP > 0 {
                            const { assert!(K::B_GROUP == 0 || !K::PREFETCH_C) };
                            for js in (jp0..jp1).step_by(K::B_GROUP) {
                                for ip in 0..micro {
                                    let i = i0 + ip * mr;
                                    let ap = panel(ip);
                                    for jp in js..(js + K::B_GROUP).min(jp1) {
                                        let j = jc + jp * nr;
                                        // SAFETY: as in the panel-outer order below.
                                        unsafe {
                                            tile::<K>(
                                                kc,
                                                ap,
                                                bpack[jp * kc * nr..].as_ptr(),
                                                out.get(),
                                                (i, j, mr.min(n - i), nr.min(o - j), o),
                                                pc > 0,
                                                last.then_some((epi, bias_scaled)),
                                            );
                                        }
                                    }
                                }
                            }
                            return;
                        }
                        for jp in jp0..jp1 {
                            let j = jc + jp * nr;
                            let cols = nr.min(o - j);
                            let micro_panels = |bp: *const f32| {
                                for ip in 0..micro {
                                    let i = i0 + ip * mr;
                                    let rows = mr.min(n - i);
                                    // The tile after this one: next micro-panel, or the first
                                    // of the next panel.
                                    let next = if ip + 1 < micro {
                                        Some((i + mr, j))
                                    } else if jp + 1 < jp1 {
                                        Some((i0, j + nr))
                                    } else {
                                        None
                                    };
                                    if let (Some((ni, nj)), true) = (next, K::PREFETCH_C) {
                                        let (nrows, ncols) = (mr.min(n - ni), nr.min(o - nj));
                                        // SAFETY: the tile at (ni, nj) lies inside C (and inside
                                        // the residual, of the same shape).
                                        unsafe {
                                            prefetch_tile(
                                                out.get().add(ni * o + nj),
                                                o,
                                                nrows,
                                                ncols,
                                            );
                                            if let (true, Some(r)) = (last, epi.residual) {
                                                prefetch_tile(
                                                    r.as_ptr().add(ni * o + nj),
                                                    o,
                                                    nrows,
                                                    ncols,
                                                );
                                            }
                                        }
                                    }
                                    // SAFETY: the tile `[i, i + rows) × [j, j + cols)` of C is
                                    // inside `[n, o]` and written by this task only (tasks own
                                    // disjoint row blocks × panel groups), and already written
                                    // by the previous `k` block when `pc > 0`; packed panels
                                    // hold `kc·MR` and `kc·NR` floats, runs cover `kc`.
                                    unsafe {
                                        tile::<K>(
                                            kc,
                                            panel(ip),
                                            bp,
                                            out.get(),
                                            (i, j, rows, cols, o),
                                            pc > 0,
                                            last.then_some((epi, bias_scaled)),
                                        );
                                    }
                                }
                            };
                            if shared_b {
                                micro_panels(bpack[jp * kc * nr..].as_ptr());
                            } else {
                                with_buf(&P_BUF, kc * nr, |pb| {
                                    // SAFETY: as for the shared packing above, into the
                                    // task's own `kc·NR`-float buffer.
                                    unsafe { w.pack_b::<K>(k, j, cols, pc, kc, pb.as_mut_ptr()) };
                                    micro_panels(pb.as_ptr());
                                });
                            }
                        }
                    };
                    // A read in place where the kernel and A allow it (no packing), else
                    // packed, micro-panel by micro-panel, into the thread's buffer.
                    let in_place = K::KERNEL_RUNS.is_some()
                        && with_runs(|runs, starts| {
                            starts.push(0);
                            for ip in 0..micro {
                                let i = i0 + ip * mr;
                                if !a.runs_into(i, mr.min(n - i), pc, kc, runs) {
                                    return false;
                                }
                                starts.push(runs.len());
                            }
                            let runs = &*runs;
                            calls(&|ip| APanel::runs(&runs[starts[ip]..starts[ip + 1]]));
                            true
                        });
                    if in_place {
                        return;
                    }
                    with_buf(&A_BUF, micro * kc * mr + K::A_SPILL, |abuf| {
                        let mut zeros = vec![Zeros::default(); micro];
                        for (ip, z) in zeros.iter_mut().enumerate() {
                            let i = i0 + ip * mr;
                            // SAFETY: rows `i .. i + min(MR, n − i)` of `a: [n, k]`, columns
                            // `pc .. pc + kc`, are in bounds; `abuf` holds
                            // `micro·kc·MR + A_SPILL` floats, so the last spill fits.
                            unsafe {
                                a.pack::<K>(
                                    i,
                                    mr.min(n - i),
                                    pc,
                                    kc,
                                    abuf.as_mut_ptr().add(ip * kc * mr),
                                    z,
                                );
                            }
                        }
                        let abuf = &*abuf;
                        calls(&|ip| APanel::Packed(abuf[ip * kc * mr..].as_ptr(), &zeros[ip]));
                    });
                });
            }
        }
    });
}

/// One `rows × cols` tile of C at `(i, j)` (row stride `ldc`): the kernel straight on C for a
/// full tile, through a zero-padded `MR × NR` copy for an edge tile.
///
/// # Safety
/// As [`Kernel::kernel`], for the tile inside C, and `(i, j)` within the epilogue's operands.
#[allow(clippy::type_complexity)]
unsafe fn tile<K: Kernel>(
    kc: usize,
    ap: APanel,
    bp: *const f32,
    c: *mut f32,
    (i, j, rows, cols, ldc): (usize, usize, usize, usize, usize),
    accumulate: bool,
    last: Option<(&Epilogue<'_>, Option<&[f32]>)>,
) {
    let (mr, nr) = (K::MR, K::NR);
    // SAFETY (whole body): the caller's guarantees; the temporary tile holds `MR × NR`.
    unsafe {
        let ct = c.add(i * ldc + j);
        if rows == mr && cols == nr {
            let te = last.map(|(e, bs)| TileEpi {
                scale: e.scale,
                bias: bs.map_or(std::ptr::null(), |b| b[j..].as_ptr()),
                res: e
                    .residual
                    .map_or(std::ptr::null(), |r| r[i * ldc + j..].as_ptr()),
                ldr: ldc,
                relu: e.relu,
            });
            ap.kernel::<K>(kc, bp, ct, ldc, accumulate, te.as_ref());
            return;
        }
        const { assert!(K::MR <= MAX_MR && K::NR <= MAX_NR) };
        let mut tmp = [0f32; MAX_MR * MAX_NR];
        if accumulate {
            for r in 0..rows {
                for q in 0..cols {
                    tmp[r * nr + q] = *ct.add(r * ldc + q);
                }
            }
        }
        ap.kernel::<K>(kc, bp, tmp.as_mut_ptr(), nr, accumulate, None);
        for r in 0..rows {
            for q in 0..cols {
                let v = tmp[r * nr + q];
                *ct.add(r * ldc + q) = match last {
                    Some((e, bs)) => finish(v, e, bs, i + r, j + q, ldc),
                    None => v,
                };
            }
        }
    }
}
