//! Where the driver's A micro-panels come from ([`PackA`]: dense, or gathered from a
//! [`crate::sgemm::RowSource`]), packed or read in place through their runs ([`ARun`]), and
//! the columns where a whole micro-panel is zero ([`Zeros`]), which the kernels skip.

use std::cell::RefCell;

use super::{with_buf, Kernel, TileEpi, MAX_MR};

thread_local! {
    /// The `MR × KC` rows of A a [`crate::sgemm::RowSource`] gathers before they are packed.
    static G_BUF: RefCell<Vec<f32>> = const { RefCell::new(Vec::new()) };
    /// The runs of a row block's A micro-panels read in place, and where each panel's start.
    static R_BUF: RefCell<(Vec<ARun>, Vec<usize>)> = const { RefCell::new((Vec::new(), Vec::new())) };
}

/// `len` consecutive columns of an A micro-panel where row `r` reads `len` floats at
/// `ptrs[r]` (rows past the micro-panel and zero rows point at [`ZEROS`]).
#[derive(Clone, Copy)]
pub(in crate::sgemm) struct ARun {
    pub len: usize,
    pub ptrs: [*const f32; MAX_MR],
    /// Every row of the micro-panel reads zeros here (a convolution tap in the padding for all
    /// of them): the kernel skips the run, whose terms would add `0·b` to each chain and leave
    /// it as it is (up to the sign of a zero sum).
    pub zero: bool,
}

/// The columns of a packed A micro-panel (relative to its `k` block) where every row is zero:
/// a convolution tap in the padding for the whole micro-panel. With the kernels that pack
/// from row pointers ([`Kernel::PACK_A_PTRS`], whose packed A is `kc` steps of `MR` floats and
/// B `kc` steps of `NR`), the kernel runs over the other columns only ([`APanel::kernel`]):
/// the skipped terms would add `0·b` to each chain and leave it as it is (a chain that starts
/// at `+0` cannot reach `−0`), so the bits are the same.
#[derive(Clone, Copy, Default)]
pub(in crate::sgemm) struct Zeros {
    /// Ranges `(start, len)`, in order, disjoint and not adjacent; `n` of them.
    ranges: [(u32, u32); Zeros::MAX],
    n: usize,
    /// More ranges than fit: nothing is skipped.
    overflow: bool,
}

impl Zeros {
    const MAX: usize = 8;

    /// Adds columns `q .. q + len` (after the ranges so far).
    fn push(&mut self, q: usize, len: usize) {
        let (q, len) = (q as u32, len as u32);
        match self.n.checked_sub(1).map(|l| &mut self.ranges[l]) {
            Some(last) if last.0 + last.1 == q => last.1 += len,
            _ if self.n == Self::MAX => self.overflow = true,
            _ => {
                self.ranges[self.n] = (q, len);
                self.n += 1;
            }
        }
    }

    /// The ranges of `0 .. kc` to compute (the complement), or `None` when nothing is
    /// skipped.
    fn segments(&self, kc: usize) -> Option<impl Iterator<Item = (usize, usize)> + '_> {
        (self.n > 0 && !self.overflow).then(|| {
            let mut from = 0;
            let zeros = self.ranges[..self.n]
                .iter()
                .map(|&(q, l)| (q as usize, l as usize));
            zeros
                .chain(std::iter::once((kc, 0)))
                .filter_map(move |(q, l)| {
                    let seg = (from < q).then_some((from, q - from));
                    from = q + l;
                    seg
                })
        })
    }
}

/// What an A row that is zeros (padding, or past the last row) reads in place; a run is at
/// most this long ([`PackA::runs_into`]).
pub(super) static ZEROS: [f32; 1024] = [0.0; 1024];

/// Shortest mean run for which [`Kernel::KERNEL_RUNS`] reads A in place: shorter runs (the
/// stem's 3 channels) pay the kernel's per-run set-up more often than the packing costs.
const MIN_MEAN_RUN: usize = 16;

/// Where the driver's A micro-panels come from.
pub(in crate::sgemm) trait PackA: Sync {
    /// Packs rows `i .. i + rows` (`rows ≤ MR`), columns `pc .. pc + kc` of A as
    /// [`Kernel::pack_a`] does.
    ///
    /// # Safety
    /// `K`'s CPU features are available; the rows and columns are inside A; `dst` writable
    /// for `kc·MR + A_SPILL` floats.
    ///
    /// Where `K` packs from row pointers ([`Kernel::PACK_A_PTRS`]), records in `zeros` the
    /// columns where every row is zero.
    unsafe fn pack<K: Kernel>(
        &self,
        i: usize,
        rows: usize,
        pc: usize,
        kc: usize,
        dst: *mut f32,
        zeros: &mut Zeros,
    );

    /// Appends rows `i .. i + rows`, columns `pc .. pc + kc` of A to `out` as runs read in
    /// place ([`ARun`]), when A has runs at least [`MIN_MEAN_RUN`] long on average; `false`
    /// (and `out` as it was) otherwise.
    fn runs_into(&self, i: usize, rows: usize, pc: usize, kc: usize, out: &mut Vec<ARun>) -> bool {
        let _ = (i, rows, pc, kc, out);
        false
    }

    /// Whether the driver may use [`super::shared_a`]'s order for this A (where the kernel
    /// asks for it): measured on dense products only; convolutions keep the default order.
    const SHARED_ORDER: bool = false;

    /// A as a row-major `[n, k]` slice, where it is one ([`super::few_rows`] reads only that).
    fn dense(&self) -> Option<&[f32]> {
        None
    }
}

/// A dense row-major `[n, k]` A: packed straight from memory.
pub(in crate::sgemm) struct Dense<'a> {
    pub a: &'a [f32],
    pub k: usize,
}

impl PackA for Dense<'_> {
    const SHARED_ORDER: bool = true;

    fn dense(&self) -> Option<&[f32]> {
        Some(self.a)
    }

    unsafe fn pack<K: Kernel>(
        &self,
        i: usize,
        rows: usize,
        pc: usize,
        kc: usize,
        dst: *mut f32,
        _zeros: &mut Zeros,
    ) {
        // SAFETY: the caller's contract; rows `i .. i + rows`, columns `pc .. pc + kc` of the
        // `[n, k]` slice are in bounds.
        unsafe { K::pack_a(self.a.as_ptr().add(i * self.k + pc), self.k, rows, kc, dst) }
    }
}

/// An A that a [`crate::sgemm::RowSource`] writes, `MR` rows at a time, into a small per-thread
/// buffer (L1-sized) that is then packed: an implicit im2col for convolutions.
pub(in crate::sgemm) struct Gathered<'a, S: ?Sized>(pub &'a S);

impl<S: crate::sgemm::RowSource + ?Sized> PackA for Gathered<'_, S> {
    unsafe fn pack<K: Kernel>(
        &self,
        i: usize,
        rows: usize,
        pc: usize,
        kc: usize,
        dst: *mut f32,
        zeros: &mut Zeros,
    ) {
        // A kernel that packs pairs of columns takes runs that keep the pairs whole.
        let pairs_whole = || {
            let mut ok = true;
            let whole = self.0.runs(i, rows, pc, kc, &mut |q, len, _| {
                ok &= (q - pc).is_multiple_of(2) && (len.is_multiple_of(2) || q + len == pc + kc);
            });
            whole && ok
        };
        if let Some(pack_ptrs) = K::PACK_A_PTRS.filter(|_| !K::PACK_A_PTRS_PAIRS || pairs_whole()) {
            // Straight from the source, run by run: no copy through a buffer.
            let mut at = pc;
            *zeros = Zeros::default();
            let whole = self.0.runs(i, rows, pc, kc, &mut |q, len, ptrs| {
                debug_assert!(q == at && ptrs.len() == rows);
                if ptrs.iter().all(|p| p.is_null()) {
                    zeros.push(q - pc, len);
                }
                // SAFETY: the source's pointers are readable for `len` floats (or null);
                // `dst + (q − pc)·MR` holds the run's `len·MR` floats (the spill lands in the
                // next run, packed after, or in the caller's `A_SPILL`).
                unsafe { pack_ptrs(ptrs, len, dst.add((q - pc) * K::MR)) };
                at = q + len;
            });
            if whole {
                debug_assert_eq!(at, pc + kc);
                return;
            }
            *zeros = Zeros::default();
        }
        with_buf(&G_BUF, K::MR * kc, |t| {
            let t = &mut t[..rows * kc];
            self.0.gather(i, rows, pc, kc, t);
            // SAFETY: `t` holds `rows × kc` floats at row stride `kc`; `dst` as the caller's.
            unsafe { K::pack_a(t.as_ptr(), kc, rows, kc, dst) }
        })
    }

    fn runs_into(&self, i: usize, rows: usize, pc: usize, kc: usize, out: &mut Vec<ARun>) -> bool {
        let start = out.len();
        let mut fits = rows <= MAX_MR;
        let whole = fits
            && self.0.runs(i, rows, pc, kc, &mut |_, len, ptrs| {
                fits &= len <= ZEROS.len();
                let mut run = ARun {
                    len,
                    ptrs: [ZEROS.as_ptr(); MAX_MR],
                    zero: ptrs.iter().all(|p| p.is_null()),
                };
                for (d, &p) in run.ptrs.iter_mut().zip(ptrs) {
                    if !p.is_null() {
                        *d = p;
                    }
                }
                out.push(run);
            });
        if whole && fits && (out.len() - start) * MIN_MEAN_RUN <= kc {
            return true;
        }
        out.truncate(start);
        false
    }
}

/// An A micro-panel: packed (`kc·MR` floats), or read in place through its runs (a slice's
/// pointer and length: the slice outlives the block's kernel calls).
#[derive(Clone, Copy)]
pub(super) enum APanel {
    /// With the columns where all its rows are zero (by pointer: the record outlives the
    /// block's kernel calls, and copying its 80 bytes into every call showed in profiles).
    Packed(*const f32, *const Zeros),
    Runs(*const ARun, usize),
}

impl APanel {
    pub(super) fn runs(runs: &[ARun]) -> Self {
        APanel::Runs(runs.as_ptr(), runs.len())
    }

    /// [`Kernel::kernel`] or [`Kernel::KERNEL_RUNS`] on this micro-panel.
    ///
    /// # Safety
    /// As [`Kernel::kernel`]; `Runs` only where `K::KERNEL_RUNS` is `Some`, its slice live;
    /// `Packed`'s zero record live.
    #[inline]
    pub(super) unsafe fn kernel<K: Kernel>(
        self,
        kc: usize,
        bp: *const f32,
        c: *mut f32,
        ldc: usize,
        accumulate: bool,
        epi: Option<&TileEpi>,
    ) {
        // SAFETY: the caller's contract.
        unsafe {
            match (self, K::KERNEL_RUNS) {
                (APanel::Packed(ap, zeros), _) => {
                    // Only the kernels that pack from row pointers record zero columns.
                    let segments = match K::PACK_A_PTRS {
                        Some(_) => (*zeros).segments(kc),
                        None => None,
                    };
                    let Some(mut segments) = segments else {
                        K::kernel(kc, ap, bp, c, ldc, accumulate, epi);
                        return;
                    };
                    // The columns that are not zero in every row, each segment continuing
                    // the chains of the one before; the epilogue with the last.
                    let mut seg = segments.next();
                    if seg.is_none() {
                        // All zero: C as it is (or zero), then the epilogue.
                        K::kernel(0, ap, bp, c, ldc, accumulate, epi);
                    }
                    let mut first = true;
                    while let Some((q, len)) = seg {
                        seg = segments.next();
                        let e = if seg.is_none() { epi } else { None };
                        let (a, b) = (ap.add(q * K::MR), bp.add(q * K::NR));
                        K::kernel(len, a, b, c, ldc, accumulate || !first, e);
                        first = false;
                    }
                }
                (APanel::Runs(runs, len), Some(f)) => f(
                    std::slice::from_raw_parts(runs, len),
                    bp,
                    c,
                    ldc,
                    accumulate,
                    epi,
                ),
                (APanel::Runs(..), None) => unreachable!("runs without a runs kernel"),
            }
        }
    }
}

/// Runs `f` on the thread's reusable run buffers (cleared), or on new ones when they are
/// already borrowed on this thread (a nested call, as [`with_buf`]).
pub(super) fn with_runs<R>(f: impl FnOnce(&mut Vec<ARun>, &mut Vec<usize>) -> R) -> R {
    R_BUF.with(|cell| match cell.try_borrow_mut() {
        Ok(mut v) => {
            let (runs, starts) = &mut *v;
            runs.clear();
            starts.clear();
            f(runs, starts)
        }
        Err(_) => f(&mut Vec::new(), &mut Vec::new()),
    })
}
