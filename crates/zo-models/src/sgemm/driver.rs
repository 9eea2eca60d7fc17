//! The blocked loops, packing buffers and threading of [`super::sgemm_nt`] (x86-64 only).

use std::cell::RefCell;
use std::thread::LocalKey;

use rayon::prelude::*;

use super::kernel_avx2::{kernel_6x16, pack_a, pack_b, prefetch_tile, TileEpi};
use super::{finish, Epilogue, KC, MC_MAX, MR, NC, NR};

thread_local! {
    /// Packed A block of the tasks that run on this thread (≤ `MC_MAX·KC` floats).
    static A_BUF: RefCell<Vec<f32>> = const { RefCell::new(Vec::new()) };
    /// Packed B panel of the calls made from this thread (≤ `KC·NC` floats).
    static B_BUF: RefCell<Vec<f32>> = const { RefCell::new(Vec::new()) };
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

/// C's base pointer, shared by tasks that write pairwise disjoint tiles.
#[derive(Clone, Copy)]
struct OutPtr(*mut f32);
// SAFETY: each task writes only the tiles of its own (row block, panel group); see `run`.
unsafe impl Send for OutPtr {}
unsafe impl Sync for OutPtr {}

impl OutPtr {
    /// Through a method, so that closures capture the (Send) wrapper and not its raw field.
    fn get(self) -> *mut f32 {
        self.0
    }
}

/// How the `n` rows are cut into row blocks: `(blocks, rows per block)`, the rows a multiple
/// of `MR` (so micro-tiles, and hence which elements go through the edge path, do not depend
/// on the cut) and the number of blocks a multiple of the thread count when there are enough
/// rows, for balance.
fn row_blocks(n: usize, threads: usize) -> (usize, usize) {
    let mut rb = n.div_ceil(MC_MAX);
    if rb > 1 || n >= threads * 4 * MR {
        rb = rb.max(threads).div_ceil(threads) * threads;
    }
    let mc = n.div_ceil(rb).div_ceil(MR) * MR;
    (n.div_ceil(mc), mc)
}

#[allow(clippy::too_many_arguments)]
pub(super) fn run(
    n: usize,
    o: usize,
    k: usize,
    a: &[f32],
    w: &[f32],
    c: &mut [f32],
    epi: &Epilogue<'_>,
    bias_scaled: Option<&[f32]>,
) {
    let threads = rayon::current_num_threads().max(1);
    let (rb, mc) = row_blocks(n, threads);
    let out = OutPtr(c.as_mut_ptr());
    let kc_max = KC.min(k);
    let nc_max = NC.min(o).div_ceil(NR) * NR;
    with_buf(&B_BUF, kc_max * nc_max, |bbuf| {
        for jc in (0..o).step_by(NC) {
            let nc = NC.min(o - jc);
            let panels = nc.div_ceil(NR);
            // Enough tasks for every thread to have ~2 (work stealing evens out the rest);
            // with few rows, the panels are split into groups instead.
            let groups = (2 * threads).div_ceil(rb).clamp(1, panels);
            let per_group = panels.div_ceil(groups);
            for pc in (0..k).step_by(KC) {
                let kc = KC.min(k - pc);
                let last = pc + kc == k;
                let bpack = &mut bbuf[..panels * kc * NR];
                bpack
                    .par_chunks_mut(kc * NR)
                    .enumerate()
                    .for_each(|(jp, dst)| {
                        let j0 = jc + jp * NR;
                        // SAFETY: rows `j0 .. j0 + min(NR, o − j0)` of `w: [o, k]`, columns
                        // `pc .. pc + kc ≤ k`, are in bounds; `dst` holds `kc·NR` floats;
                        // AVX2+FMA were detected by the caller.
                        unsafe {
                            pack_b(
                                w.as_ptr().add(j0 * k + pc),
                                k,
                                NR.min(o - j0),
                                kc,
                                dst.as_mut_ptr(),
                            );
                        }
                    });
                let bpack = &*bpack;
                (0..rb * groups).into_par_iter().for_each(|task| {
                    let (ib, g) = (task / groups, task % groups);
                    let i0 = ib * mc;
                    let m = mc.min(n - i0);
                    let (jp0, jp1) = (g * per_group, ((g + 1) * per_group).min(panels));
                    if jp0 >= jp1 {
                        return;
                    }
                    let micro = m.div_ceil(MR);
                    with_buf(&A_BUF, micro * kc * MR + 8, |abuf| {
                        for ip in 0..micro {
                            let i = i0 + ip * MR;
                            // SAFETY: rows `i .. i + min(MR, n − i)` of `a: [n, k]`, columns
                            // `pc .. pc + kc`, are in bounds; `abuf` holds `micro·kc·MR + 8`
                            // floats, so the 2-float spill of the last micro-panel fits.
                            unsafe {
                                pack_a(
                                    a.as_ptr().add(i * k + pc),
                                    k,
                                    MR.min(n - i),
                                    kc,
                                    abuf.as_mut_ptr().add(ip * kc * MR),
                                );
                            }
                        }
                        for jp in jp0..jp1 {
                            let j = jc + jp * NR;
                            let cols = NR.min(o - j);
                            let bp = bpack[jp * kc * NR..].as_ptr();
                            for ip in 0..micro {
                                let i = i0 + ip * MR;
                                let rows = MR.min(n - i);
                                let ap = abuf[ip * kc * MR..].as_ptr();
                                // The tile after this one: next micro-panel, or the first
                                // of the next panel.
                                let next = if ip + 1 < micro {
                                    Some((i + MR, j))
                                } else if jp + 1 < jp1 {
                                    Some((i0, j + NR))
                                } else {
                                    None
                                };
                                if let Some((ni, nj)) = next {
                                    let nrows = MR.min(n - ni);
                                    // SAFETY: (ni, nj) is a tile origin inside C (and inside
                                    // the residual, of the same shape).
                                    unsafe {
                                        prefetch_tile(out.get().add(ni * o + nj), o, nrows);
                                        if let (true, Some(r)) = (last, epi.residual) {
                                            prefetch_tile(r.as_ptr().add(ni * o + nj), o, nrows);
                                        }
                                    }
                                }
                                // SAFETY: the tile `[i, i + rows) × [j, j + cols)` of C is
                                // inside `[n, o]` and written by this task only (tasks own
                                // disjoint row blocks × panel groups); packed panels hold
                                // `kc·MR` and `kc·NR` floats.
                                unsafe {
                                    tile(
                                        kc,
                                        ap,
                                        bp,
                                        out.get(),
                                        (i, j, rows, cols, o),
                                        pc > 0,
                                        last.then_some((epi, bias_scaled)),
                                    );
                                }
                            }
                        }
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
/// As [`kernel_6x16`], for the tile inside C, and `(i, j)` within the epilogue's operands.
#[allow(clippy::type_complexity)]
unsafe fn tile(
    kc: usize,
    ap: *const f32,
    bp: *const f32,
    c: *mut f32,
    (i, j, rows, cols, ldc): (usize, usize, usize, usize, usize),
    accumulate: bool,
    last: Option<(&Epilogue<'_>, Option<&[f32]>)>,
) {
    // SAFETY (whole body): the caller's guarantees; the temporary tile is `MR × NR`.
    unsafe {
        let ct = c.add(i * ldc + j);
        if rows == MR && cols == NR {
            let te = last.map(|(e, bs)| TileEpi {
                scale: e.scale,
                bias: bs.map_or(std::ptr::null(), |b| b[j..].as_ptr()),
                res: e
                    .residual
                    .map_or(std::ptr::null(), |r| r[i * ldc + j..].as_ptr()),
                ldr: ldc,
                relu: e.relu,
            });
            kernel_6x16(kc, ap, bp, ct, ldc, accumulate, te.as_ref());
            return;
        }
        let mut tmp = [0f32; MR * NR];
        if accumulate {
            for r in 0..rows {
                for q in 0..cols {
                    tmp[r * NR + q] = *ct.add(r * ldc + q);
                }
            }
        }
        kernel_6x16(kc, ap, bp, tmp.as_mut_ptr(), NR, accumulate, None);
        for r in 0..rows {
            for q in 0..cols {
                let v = tmp[r * NR + q];
                *ct.add(r * ldc + q) = match last {
                    Some((e, bs)) => finish(v, e, bs, i + r, j + q, ldc),
                    None => v,
                };
            }
        }
    }
}
