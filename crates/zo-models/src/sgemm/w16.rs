//! Products over 16-bit weights read in place (a decoding step's few rows): the few-row
//! order's kernel widens them in registers.

use std::mem::MaybeUninit;

#[cfg(target_arch = "x86_64")]
use super::{driver, kernel_avx512, Isa};
use super::{Compute, Epilogue};

/// Rows up to which [`sgemm_nt_uninit_w16`] may run (it runs where the few-row order with W's
/// rows in the lanes does: `driver::few_rows::wide`).
pub const MAX_ROWS_W16: usize = 8;
#[cfg(target_arch = "x86_64")]
const _: () = assert!(MAX_ROWS_W16 == driver::few_rows::MAX_ROWS_WIDE);

/// bf16 / f16 weights for [`sgemm_nt_uninit_w16`].
#[derive(Clone, Copy)]
pub enum W16<'a> {
    Bf16(&'a [half::bf16]),
    F16(&'a [half::f16]),
}

/// [`sgemm_nt_uninit_compute`] with 16-bit weights read in place and widened in registers: the
/// bits of the f32 product of the exactly widened weights. Only where the f32 arithmetic runs
/// the few-row order on AVX-512F with W's rows in the lanes (at most
/// `driver::few_rows::MAX_ROWS_WIDE` rows: a decoding step), where widening all of W for a
/// few rows would cost more than the product; `false` elsewhere (the caller widens W and calls
/// [`sgemm_nt_uninit_compute`]).
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
        let w_len = match w {
            W16::Bf16(w) => w.len(),
            W16::F16(w) => w.len(),
        };
        let ok = compute.isa() == Some(Isa::Avx512)
            && Isa::Avx512.supported()
            && n > 0
            && o > 0
            && k > 0
            && driver::few_rows::wide(n, k)
            && a.len() == n * k
            && w_len == o * k
            && c.len() == n * o
            && epi.bias.is_none_or(|b| b.len() == o)
            && epi.residual.is_none_or(|r| r.len() == n * o);
        if !ok {
            return false;
        }
        let bias_scaled: Option<Vec<f32>> =
            epi.bias.map(|b| b.iter().map(|&v| v * epi.scale).collect());
        let bs = bias_scaled.as_deref();
        let tw = driver::few_rows::wide_tile_cols(n, k, kernel_avx512::big_l2());
        use driver::few_rows::{run_wide, W_BF16, W_F16};
        // SAFETY: AVX-512F (with AVX2 and FMA) was checked above, the shapes just above; `tw`
        // is one `wide_tile_cols` gives.
        unsafe {
            match w {
                W16::Bf16(w) => run_wide::<_, W_BF16>(tw, n, o, k, a, w, c, epi, bs),
                W16::F16(w) => run_wide::<_, W_F16>(tw, n, o, k, a, w, c, epi, bs),
            }
        }
        true
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        let _ = (compute, n, o, k, a, w, c, epi);
        false
    }
}
