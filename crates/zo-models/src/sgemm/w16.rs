//! Products over 16-bit weights read in place: a decoding step's few rows by the wide few-row
//! kernel, which widens them in registers, and every other order (the few-row tiles, the
//! packed panels) widening the block of W it reads right before reading it. No f32 copy of W
//! is made.

use std::mem::MaybeUninit;

#[cfg(target_arch = "x86_64")]
use super::{driver, run_src};
use super::{Compute, Epilogue};

/// Rows up to which [`sgemm_nt_uninit_w16`] may run the wide few-row kernel (W's rows in the
/// lanes, on AVX-512F: `driver::few_rows::wide`), which reads 16-bit weights in place.
pub const MAX_ROWS_W16: usize = 8;
#[cfg(target_arch = "x86_64")]
const _: () = assert!(MAX_ROWS_W16 == driver::few_rows::MAX_ROWS_WIDE);

/// bf16 / f16 weights for [`sgemm_nt_uninit_w16`].
#[derive(Clone, Copy)]
pub enum W16<'a> {
    Bf16(&'a [half::bf16]),
    F16(&'a [half::f16]),
}

/// [`sgemm_nt_uninit_compute`] with 16-bit weights read in place: the bits of the product of
/// the exactly widened weights, in the same order as f32 weights would run. A decoding step's
/// few rows (f32 arithmetic on AVX-512F) run the wide few-row kernel, which widens W in
/// registers; the other few-row tiles widen their 16 rows of W into a thread's buffer, and
/// the packed order each `NR × KC` panel right before packing it. Returns `false` (and leaves
/// `c` untouched) when this CPU has no kernel for `compute` or a length does not match the
/// shape; the caller then widens W and calls [`sgemm_nt_uninit_compute`].
///
/// [`sgemm_nt_uninit_compute`]: super::sgemm_nt_uninit_compute
#[allow(clippy::too_many_arguments)]
pub fn sgemm_nt_uninit_w16(
    compute: Compute,
    n: usize,
    o: usize,
    k: usize,
    a: &[f32],
    w: W16<'_>,
    c: &mut [MaybeUninit<f32>],
    epi: &Epilogue<'_>,
) -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        let Some(isa) = compute.isa() else {
            return false;
        };
        let dense = driver::Dense { a, k };
        if a.len() != n * k {
            return false;
        }
        match w {
            W16::Bf16(w) => run_src(isa, n, o, k, &dense, &driver::Widened(w), c, epi, true),
            W16::F16(w) => run_src(isa, n, o, k, &dense, &driver::Widened(w), c, epi, true),
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        let _ = (compute, n, o, k, a, w, c, epi);
        false
    }
}
