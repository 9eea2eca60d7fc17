//! Which order and which kernel run a product (x86-64): [`run_src`] takes the few-row orders
//! where the shape suits (`driver::few_rows`), else the packed order on the kernel of the
//! requested instruction set and shape ([`packed`]); the same bits either way.

use std::mem::MaybeUninit;

use super::{
    driver, finish, kernel_amx, kernel_avx2, kernel_avx512, kernel_bf16, kernel_fma_bf16, Epilogue,
    Isa,
};

/// The product of `a` and the weights `w` (f32, or 16-bit read in place: `w16`) on `isa`:
/// the few-row orders where `few_rows` allows and the shape suits, else the packed order.
/// `false` (and `c` untouched) when `isa` is not supported or a length does not match.
#[allow(clippy::too_many_arguments)]
pub(super) fn run_src<A: driver::PackA, W: driver::Weights + ?Sized>(
    isa: Isa,
    n: usize,
    o: usize,
    k: usize,
    a: &A,
    w: &W,
    c: &mut [MaybeUninit<f32>],
    epi: &Epilogue<'_>,
    few_rows: bool,
) -> bool {
    let shapes_ok = w.elems().len() == o * k
        && c.len() == n * o
        && epi.bias.is_none_or(|b| b.len() == o)
        && epi.residual.is_none_or(|r| r.len() == n * o);
    if !shapes_ok || !isa.supported() {
        return false;
    }
    if n == 0 || o == 0 {
        return true;
    }
    let bias_scaled: Option<Vec<f32>> =
        epi.bias.map(|b| b.iter().map(|&v| v * epi.scale).collect());
    if k == 0 {
        for (i, row) in c.chunks_exact_mut(o).enumerate() {
            for (j, y) in row.iter_mut().enumerate() {
                y.write(finish(0.0, epi, bias_scaled.as_deref(), i, j, o));
            }
        }
        return true;
    }
    let bs = bias_scaled.as_deref();
    match (few_rows, isa, a.dense()) {
        (true, Isa::Avx512, Some(dense)) if driver::few_rows::wide(n, k) => {
            let tw = driver::few_rows::wide_tile_cols(n, k, kernel_avx512::big_l2());
            use driver::few_rows::{run_wide, W_BF16, W_F16, W_F32};
            let w = w.elems();
            // SAFETY: AVX-512F (with AVX2 and FMA) was checked above; the shapes are as below;
            // `tw` is one `wide_tile_cols` gives; the kind is W's (`run_wide` checks its size).
            unsafe {
                match W::KIND {
                    W_F32 => run_wide::<_, W_F32>(tw, n, o, k, dense, w, c, epi, bs),
                    W_BF16 => run_wide::<_, W_BF16>(tw, n, o, k, dense, w, c, epi, bs),
                    _ => run_wide::<_, W_F16>(tw, n, o, k, dense, w, c, epi, bs),
                }
            };
            return true;
        }
        (true, Isa::Avx512, Some(dense)) if n <= driver::few_rows::MAX_ROWS => {
            // SAFETY: AVX-512F (with AVX2 and FMA) was checked above; the shapes are as below.
            unsafe { driver::few_rows::run(n, o, k, dense, w, c, epi, bs) };
            return true;
        }
        (true, Isa::Avx2, Some(dense)) if n <= driver::few_rows::MAX_ROWS_AVX2 => {
            // SAFETY: AVX2 and FMA were checked above; the shapes are as below.
            unsafe { driver::few_rows::run_avx2(n, o, k, dense, w, c, epi, bs) };
            return true;
        }
        _ => {}
    }
    // SAFETY: the kernel's CPU features were checked above, `a` is `[n, k]` (checked by the
    // callers), the other lengths match the shape and `n, o, k > 0`.
    unsafe { packed(isa, n, o, k, a, w, c, epi, bs) };
    true
}

/// The packed order ([`driver::run`]) on `isa`'s kernel for this shape; `bs` is the bias
/// times the epilogue's scale.
///
/// # Safety
/// `isa`'s CPU features are available; `a` is `[n, k]`, `w` `[o, k]`, `c` `[n, o]`, the
/// epilogue's operands of matching lengths; `n, o, k > 0`.
#[allow(clippy::too_many_arguments)]
unsafe fn packed<A: driver::PackA, W: driver::Weights + ?Sized>(
    isa: Isa,
    n: usize,
    o: usize,
    k: usize,
    a: &A,
    w: &W,
    c: &mut [MaybeUninit<f32>],
    epi: &Epilogue<'_>,
    bs: Option<&[f32]>,
) {
    use driver::run as go;
    use kernel_amx::Amx;
    use kernel_avx2::Avx2;
    use kernel_avx512::Avx512;
    use kernel_bf16::Avx512Bf16;
    use kernel_fma_bf16::Avx512FmaBf16;
    // SAFETY: the caller's contract, which is `driver::run`'s.
    unsafe {
        match isa {
            Isa::Avx2 => go::<Avx2, A, W>(n, o, k, a, w, c, epi, bs),
            Isa::Avx512 if kernel_avx512::big_l2() => {
                go::<Avx512<12, true>, A, W>(n, o, k, a, w, c, epi, bs)
            }
            Isa::Avx512 => go::<Avx512<12, false>, A, W>(n, o, k, a, w, c, epi, bs),
            Isa::Avx512Bf16 if kernel_bf16::wide(o) => {
                go::<Avx512Bf16<12, true>, A, W>(n, o, k, a, w, c, epi, bs)
            }
            Isa::Avx512Bf16 => go::<Avx512Bf16<12, false>, A, W>(n, o, k, a, w, c, epi, bs),
            Isa::Avx512FmaBf16 if kernel_avx512::big_l2() => {
                go::<Avx512FmaBf16<12, true>, A, W>(n, o, k, a, w, c, epi, bs)
            }
            Isa::Avx512FmaBf16 => go::<Avx512FmaBf16<12, false>, A, W>(n, o, k, a, w, c, epi, bs),
            Isa::AmxBf16 if kernel_amx::shape_ok(k) => go::<Amx, A, W>(n, o, k, a, w, c, epi, bs),
            Isa::AmxBf16 => go::<Avx512Bf16<12, false>, A, W>(n, o, k, a, w, c, epi, bs),
        }
    }
}
