//! The driver's order for kernels whose packing costs more than their arithmetic
//! ([`Kernel::SHARED_A_ROWS`], the AMX kernel): A is packed once per `k` block into a buffer
//! every task reads, and each task packs the few B panels it owns into its own small buffer
//! right before using them.
//!
//! In the default order ([`super::run`]) the `NC`-column block of packed B (3 MB in bf16 at
//! `KC` 768, more than a 2 MB L2) is written out by a parallel packing pass and read back from
//! L3 by every row block, and each row block re-packs its A for every column block (twice per
//! 4096-column slice of the LM head). The tile unit multiplies a packed panel pair in a fraction
//! of the time that moving the panels takes, so here nothing packed leaves the L2 of the core
//! that uses it but the shared A, which is packed once.
//!
//! The kernel calls are the same as in the default order (the same micro-panels, panels and
//! `k` blocks, each C element one chain over its `k` blocks in order), so the bits are too.

use std::mem::MaybeUninit;

use rayon::prelude::*;

use super::{tile, with_buf, APanel, Kernel, OutPtr, PackA, Weights, Zeros, A_BUF, P_BUF};
use crate::sgemm::Epilogue;

/// Whether a product of `n` rows and `o` columns, cut into `rb` row blocks by the default
/// order, runs in this order on `threads` threads: where the kernel asks for it
/// ([`Kernel::SHARED_A_ROWS`]) and A is dense ([`PackA::SHARED_ORDER`]), with several row
/// blocks (with one, the default order already packs each panel by its one user), at least
/// two column panels per thread (with fewer, some threads would idle: the tasks split
/// only the columns), and one row chunk (each row chunk packs all of W again, where the
/// default order packs A again per `NC`-column block: with 2048 rows the 768-wide products
/// and the 3072-deep one were 0.83–0.97 times the default order per CPU-second, the wider
/// ones 1.06–1.13; with 4096 and 8192 rows 0.87–1.02; docs/BENCH.md round 16).
pub(in crate::sgemm) fn suits<K: Kernel, A: PackA>(
    n: usize,
    o: usize,
    rb: usize,
    threads: usize,
) -> bool {
    K::SHARED_A_ROWS > 0
        && A::SHARED_ORDER
        && rb > 1
        && o.div_ceil(K::NR) >= 2 * threads
        && n <= K::SHARED_A_ROWS
}

/// Panels `(first, end)` of column task `t` of `tasks`: the `panels` dealt out evenly.
pub(in crate::sgemm) fn task_panels(t: usize, tasks: usize, panels: usize) -> (usize, usize) {
    (t * panels / tasks, (t + 1) * panels / tasks)
}

/// How many column tasks: about one per [`Kernel::B_GROUP`] panels (at least one panel
/// each), rounded up to a multiple of the thread count so that the threads' shares differ by
/// at most one panel per task.
pub(in crate::sgemm) fn column_tasks(panels: usize, group: usize, threads: usize) -> usize {
    let t = panels.div_ceil(group.max(1));
    (t.div_ceil(threads) * threads).min(panels).max(1)
}

/// The product on `K` in the shared-A order (module docs); same contract as [`super::run`].
/// Any `n` is computed right, in chunks of [`Kernel::SHARED_A_ROWS`] rows, though [`suits`]
/// sends it one chunk at most.
///
/// # Safety
/// As [`super::run`].
#[allow(clippy::too_many_arguments)]
pub(in crate::sgemm) unsafe fn run<K: Kernel, A: PackA, W: Weights + ?Sized>(
    n: usize,
    o: usize,
    k: usize,
    a: &A,
    w: &W,
    c: &mut [MaybeUninit<f32>],
    epi: &Epilogue<'_>,
    bias_scaled: Option<&[f32]>,
) {
    let (mr, nr, kc_blk) = (K::MR, K::NR, K::KC);
    let threads = rayon::current_num_threads().max(1);
    let out = OutPtr(c.as_mut_ptr().cast::<f32>());
    let kc_max = kc_blk.min(k);
    // Micro-panel stride in the shared buffer: room for the spill, 64-byte aligned.
    let a_stride = (kc_max * mr + K::A_SPILL).div_ceil(16) * 16;
    let chunk_rows = K::SHARED_A_ROWS.max(mr) / mr * mr;
    let panels = o.div_ceil(nr);
    let tasks = column_tasks(panels, K::B_GROUP, threads);
    let per_task = panels.div_ceil(tasks);
    for i0 in (0..n).step_by(chunk_rows) {
        let m = chunk_rows.min(n - i0);
        let micro = m.div_ceil(mr);
        for pc in (0..k).step_by(kc_blk) {
            let kc = kc_blk.min(k - pc);
            let last = pc + kc == k;
            let mut zeros = vec![Zeros::default(); micro];
            with_buf(&A_BUF, micro * a_stride, |abuf| {
                abuf.par_chunks_mut(a_stride)
                    .zip(zeros.par_iter_mut())
                    .enumerate()
                    .for_each(|(ip, (dst, z))| {
                        let i = i0 + ip * mr;
                        // SAFETY: rows `i .. i + min(MR, n − i)` of `a: [n, k]`, columns
                        // `pc .. pc + kc`, are in bounds; `dst` holds `kc·MR + A_SPILL`
                        // floats (`a_stride`).
                        unsafe { a.pack::<K>(i, mr.min(n - i), pc, kc, dst.as_mut_ptr(), z) };
                    });
                let (abuf, zeros) = (&*abuf, &zeros);
                (0..tasks).into_par_iter().for_each(|t| {
                    let (jp0, jp1) = task_panels(t, tasks, panels);
                    if jp0 >= jp1 {
                        return;
                    }
                    with_buf(&P_BUF, per_task * kc * nr, |pb| {
                        for jp in jp0..jp1 {
                            let j = jp * nr;
                            // SAFETY: rows `j .. j + min(NR, o − j)` of `w: [o, k]`,
                            // columns `pc .. pc + kc`, are in bounds; the destination
                            // holds `kc·NR` floats of the task's buffer.
                            unsafe {
                                w.pack_b::<K>(
                                    k,
                                    j,
                                    nr.min(o - j),
                                    pc,
                                    kc,
                                    pb.as_mut_ptr().add((jp - jp0) * kc * nr),
                                );
                            }
                        }
                        for ip in 0..micro {
                            let i = i0 + ip * mr;
                            let ap = APanel::Packed(abuf[ip * a_stride..].as_ptr(), &zeros[ip]);
                            for jp in jp0..jp1 {
                                let j = jp * nr;
                                // SAFETY: the tile `[i, i + rows) × [j, j + cols)` of C is
                                // inside `[n, o]` and written by this task only (tasks own
                                // disjoint panels, the row chunks run one after the other),
                                // already written by the previous `k` block when `pc > 0`;
                                // the packed panels hold `kc·MR` and `kc·NR` floats.
                                unsafe {
                                    tile::<K>(
                                        kc,
                                        ap,
                                        pb[(jp - jp0) * kc * nr..].as_ptr(),
                                        out.get(),
                                        (i, j, mr.min(n - i), nr.min(o - j), o),
                                        pc > 0,
                                        last.then_some((epi, bias_scaled)),
                                    );
                                }
                            }
                        }
                    });
                });
            });
        }
    }
}
