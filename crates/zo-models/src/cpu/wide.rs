//! bf16/f16 inputs of the fast paths (a model loaded with `model.dtype = "bf16" | "f16"`):
//! read widened exactly to f32 ([`with_wide`], [`Data::range`]), or, for 16-bit weights, read
//! in place by the products ([`linear_w16`]); results rounded once back to the inputs' dtype
//! ([`tensor_of`]).

use candle_core::{CpuStorage, DType, Device, Storage, Tensor};
use half::vec::HalfBitsVecExt;
use rayon::prelude::*;

use crate::{sgemm, Result};

/// A CPU tensor's contiguous data in its storage type.
pub(crate) enum Data<'a> {
    F32(&'a [f32]),
    Bf16(&'a [half::bf16]),
    F16(&'a [half::f16]),
}

impl Data<'_> {
    pub(crate) fn len(&self) -> usize {
        match self {
            Data::F32(d) => d.len(),
            Data::Bf16(d) => d.len(),
            Data::F16(d) => d.len(),
        }
    }

    /// Elements `r` as f32: borrowed for f32, widened (exactly) into `buf` for bf16/f16.
    pub(crate) fn range<'b>(
        &'b self,
        r: std::ops::Range<usize>,
        buf: &'b mut Vec<f32>,
    ) -> &'b [f32] {
        let widen_into = |buf: &'b mut Vec<f32>, n: usize| {
            if buf.capacity() < n {
                // A zeroed allocation (fresh pages for a large one, no fill pass).
                *buf = vec![0.0; n];
            } else {
                buf.clear();
                buf.resize(n, 0.0);
            }
            buf
        };
        match self {
            Data::F32(d) => &d[r],
            Data::Bf16(d) => {
                let out = widen_into(buf, r.len());
                par_convert(&d[r], out, zo_core::convert::bf16_to_f32);
                out
            }
            Data::F16(d) => {
                let out = widen_into(buf, r.len());
                par_convert(&d[r], out, zo_core::convert::f16_to_f32);
                out
            }
        }
    }
}

impl<'a> Data<'a> {
    /// `n` rows of `width` elements, the first at `start` and each `stride` after the last, as
    /// f32 rows and their stride: the data itself from `start` (stride `stride`) for f32,
    /// the rows widened (exactly) into `buf`, `width` apart, for bf16/f16. On the calling
    /// thread: for a rayon task's own block (an attention head's keys or values).
    pub(crate) fn rows<'b>(
        &self,
        start: usize,
        n: usize,
        width: usize,
        stride: usize,
        buf: &'b mut Vec<f32>,
    ) -> (&'b [f32], usize)
    where
        'a: 'b,
    {
        fn widen<'b, S>(
            d: &[S],
            (start, n, width, stride): (usize, usize, usize, usize),
            buf: &'b mut Vec<f32>,
            conv: fn(&[S], &mut [f32]),
        ) -> &'b [f32] {
            buf.clear();
            buf.resize(n * width, 0.0);
            if stride == width {
                conv(&d[start..start + n * width], buf);
            } else {
                for (r, out) in buf.chunks_exact_mut(width).enumerate() {
                    let at = start + r * stride;
                    conv(&d[at..at + width], out);
                }
            }
            buf
        }
        let shape = (start, n, width, stride);
        match self {
            &Data::F32(d) => (&d[start..], stride),
            Data::Bf16(d) => (widen(d, shape, buf, zo_core::convert::bf16_to_f32), width),
            Data::F16(d) => (widen(d, shape, buf, zo_core::convert::f16_to_f32), width),
        }
    }
}

/// A CPU tensor's data in its storage type from its first element to the end of the storage,
/// with its strides (a view such as a KV cache's live positions); `None` for another device
/// or dtype, and under [`super::set_candle_ops`].
pub(crate) fn with_data_strided<R>(
    t: &Tensor,
    f: impl FnOnce(Data<'_>, &[usize]) -> R,
) -> Option<R> {
    if !super::kernels_serve(t) {
        return None;
    }
    let (storage, layout) = t.storage_and_layout();
    let (at, strides) = (layout.start_offset(), layout.stride());
    match &*storage {
        Storage::Cpu(CpuStorage::F32(d)) => Some(f(Data::F32(d.get(at..)?), strides)),
        Storage::Cpu(CpuStorage::BF16(d)) => Some(f(Data::Bf16(d.get(at..)?), strides)),
        Storage::Cpu(CpuStorage::F16(d)) => Some(f(Data::F16(d.get(at..)?), strides)),
        _ => None,
    }
}

/// Runs `f` on the contiguous data of a CPU tensor in its storage type; `None` for another
/// device or dtype or a non-contiguous layout, and under [`super::set_candle_ops`].
pub(crate) fn with_data<R>(t: &Tensor, f: impl FnOnce(Data<'_>) -> R) -> Option<R> {
    if !super::kernels_serve(t) {
        return None;
    }
    let (storage, layout) = t.storage_and_layout();
    let (a, b) = layout.contiguous_offsets()?;
    match &*storage {
        Storage::Cpu(CpuStorage::F32(d)) => Some(f(Data::F32(&d[a..b]))),
        Storage::Cpu(CpuStorage::BF16(d)) => Some(f(Data::Bf16(&d[a..b]))),
        Storage::Cpu(CpuStorage::F16(d)) => Some(f(Data::F16(&d[a..b]))),
        _ => None,
    }
}

/// Runs `f` on the contiguous data of a CPU tensor as f32: the data itself for f32, a widened
/// copy (exact) for bf16/f16 weights and activations (`model.dtype`); `None` for another
/// device or dtype or a non-contiguous layout.
pub(crate) fn with_wide<R>(t: &Tensor, f: impl FnOnce(&[f32]) -> R) -> Option<R> {
    with_data(t, |d| f(d.range(0..d.len(), &mut Vec::new())))
}

/// Elements per rayon task of the conversions.
const CONVERT_CHUNK: usize = 1 << 16;

/// `src` converted into `dst` (same length) by `conv`, in parallel.
fn par_convert<S: Sync, D: Send>(src: &[S], dst: &mut [D], conv: fn(&[S], &mut [D])) {
    dst.par_chunks_mut(CONVERT_CHUNK)
        .zip(src.par_chunks(CONVERT_CHUNK))
        .for_each(|(d, s)| conv(s, d));
}

/// An f32 result as a CPU tensor of `shape` and `dtype` (f32 as it is; bf16/f16 rounded to
/// nearest even, in parallel): what the fast paths return for 16-bit activations.
pub(crate) fn tensor_of(
    v: Vec<f32>,
    shape: impl Into<candle_core::Shape>,
    dtype: DType,
) -> Result<Tensor> {
    /// `v` rounded into `out` (of `v`'s length).
    fn narrow<T: Send>(v: &[f32], mut out: Vec<T>, conv: fn(&[f32], &mut [T])) -> Vec<T> {
        par_convert(v, &mut out, conv);
        out
    }
    // Zeroed allocations of the bits (fresh pages for a large one, no fill pass).
    let bits = || vec![0u16; v.len()];
    let shape = shape.into();
    Ok(match dtype {
        DType::BF16 => Tensor::from_vec(
            narrow(&v, bits().reinterpret_into(), zo_core::convert::f32_to_bf16),
            shape,
            &Device::Cpu,
        )?,
        DType::F16 => Tensor::from_vec(
            narrow(&v, bits().reinterpret_into(), zo_core::convert::f32_to_f16),
            shape,
            &Device::Cpu,
        )?,
        _ => Tensor::from_vec(v, shape, &Device::Cpu)?,
    })
}

/// [`linear`] over bf16/f16 weights read in place ([`sgemm::sgemm_nt_uninit_w16`]: widened
/// in registers for a decoding step's few rows, one packed panel at a time otherwise) instead
/// of an f32 copy of the whole matrix per call; the same bits. `None` where that product does
/// not run (the caller widens W).
///
/// [`linear`]: super::linear
pub(super) fn linear_w16(
    x: &Tensor,
    w: &Tensor,
    bias: Option<&Tensor>,
    scale: f32,
    residual: Option<&Tensor>,
    relu: bool,
    compute: sgemm::Compute,
) -> Result<Option<Tensor>> {
    let (Ok((n, k)), Ok((o, _))) = (x.dims2(), w.dims2()) else {
        return Ok(None);
    };
    if !matches!(w.dtype(), DType::BF16 | DType::F16) {
        return Ok(None);
    }
    let out = with_wide(x, |x| {
        with_data(w, |wd| {
            let w16 = match wd {
                Data::Bf16(d) => sgemm::W16::Bf16(d),
                Data::F16(d) => sgemm::W16::F16(d),
                Data::F32(_) => return None,
            };
            let b = match bias {
                Some(b) => Some(with_wide(b, |b| b.to_vec())?),
                None => None,
            };
            let run = |res: Option<&[f32]>| -> Option<Vec<f32>> {
                let epi = sgemm::Epilogue {
                    scale,
                    bias: b.as_deref(),
                    residual: res,
                    relu,
                };
                let mut out: Vec<f32> = Vec::with_capacity(n * o);
                let dst = &mut out.spare_capacity_mut()[..n * o];
                if !sgemm::sgemm_nt_uninit_w16(compute, n, o, k, x, w16, dst, &epi) {
                    return None;
                }
                // SAFETY: `sgemm_nt_uninit_w16` returned true, so it initialised all `n·o`
                // elements of the spare capacity, which `with_capacity` made ≥ `n·o`.
                unsafe { out.set_len(n * o) };
                Some(out)
            };
            // The residual (`[n, o]`) read in place, or widened once: not copied again.
            match residual {
                Some(r) => with_wide(r, |r| run(Some(r)))?,
                None => run(None),
            }
        })
    })
    .flatten()
    .flatten();
    Ok(match out {
        Some(v) => Some(tensor_of(v, (n, o), x.dtype())?),
        None => None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `Data::rows`: f32 borrowed in place with its stride; bf16/f16 rows widened exactly and
    /// packed `width` apart, whether the rows are contiguous or strided.
    #[test]
    fn rows_widen_strided_blocks_exactly() {
        let f: Vec<f32> = (0..40).map(|i| i as f32 * 0.37 - 5.0).collect();
        let b: Vec<half::bf16> = f.iter().map(|&x| half::bf16::from_f32(x)).collect();
        let h: Vec<half::f16> = f.iter().map(|&x| half::f16::from_f32(x)).collect();
        let mut buf = Vec::new();
        let (got, ld) = Data::F32(&f).rows(3, 4, 5, 9, &mut buf);
        assert_eq!((ld, got[0], got.len()), (9, f[3], 37));
        // Rows 3.., 12.., 21.. of 5 elements (strided), then 2.., 7.. (contiguous).
        for (start, n, stride) in [(3, 3, 9), (2, 2, 5)] {
            let want_b: Vec<f32> = (0..n)
                .flat_map(|r| (0..5).map(move |j| start + r * stride + j))
                .map(|i| b[i].to_f32())
                .collect();
            let want_h: Vec<f32> = (0..n)
                .flat_map(|r| (0..5).map(move |j| start + r * stride + j))
                .map(|i| h[i].to_f32())
                .collect();
            let (got, ld) = Data::Bf16(&b).rows(start, n, 5, stride, &mut buf);
            assert_eq!((ld, got), (5, &want_b[..]), "bf16, stride {stride}");
            let (got, ld) = Data::F16(&h).rows(start, n, 5, stride, &mut buf);
            assert_eq!((ld, got), (5, &want_h[..]), "f16, stride {stride}");
        }
    }
}
