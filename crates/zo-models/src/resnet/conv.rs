//! f32 CPU convolution for the ResNet forward: `relu?(conv(x, W)·scale + shift [+ residual])`
//! in one pass over the output, i.e. a convolution with eval-mode BatchNorm, the ReLU and the
//! residual add of a block fused in.
//!
//! Why not candle's `conv2d`: on CIFAR's 32×32 inputs candle 0.11's CPU path (tiled im2col)
//! gathers every patch element by element into a per-image, per-512-pixel tile and runs one
//! small GEMM per tile; a profile of a ResNet-18 step showed 39 % of the time in that gather and
//! the GEMMs of the last stages skinny (16 pixels × 4 608). Here the im2col matrix of a group of
//! images is built row by row (one `(channel, ki, kj)` row is a strided copy of input rows, a
//! straight `memcpy` at stride 1), one GEMM multiplies the whole group, and the write to the
//! NCHW output applies BN, residual and ReLU, where candle would make three more passes.
//!
//! Determinism: `gemm` splits a product between threads over output blocks only (each dot
//! product runs in one order whatever the thread count), and the im2col and epilogue are
//! element-wise, so the result does not depend on the number of threads (tested).

use candle_core::Tensor;

use crate::cpu::with_f32;
use gemm::{gemm, Parallelism};
use rayon::prelude::*;

use crate::Result;

/// Floats of im2col buffer per group of images (16 MiB): bounds the memory of a convolution
/// whatever the batch size, while keeping each GEMM wide.
const COLS_BUDGET: usize = 4 << 20;

/// Shape of one convolution.
#[derive(Clone, Copy, Debug)]
struct Geometry {
    c: usize,
    h: usize,
    w: usize,
    kh: usize,
    kw: usize,
    stride: usize,
    pad: usize,
    oh: usize,
    ow: usize,
}

impl Geometry {
    fn pixels(&self) -> usize {
        self.oh * self.ow
    }

    fn k(&self) -> usize {
        self.c * self.kh * self.kw
    }
}

/// Writes the im2col rows of images `x` (`gn` images, NCHW) into `cols` (`k` rows of
/// `gn·pixels` columns): row `(ci, ki, kj)`, column `(image, oy, ox)` holds
/// `x[image, ci, oy·s + ki − pad, ox·s + kj − pad]`, 0 outside the image.
fn im2col(x: &[f32], gn: usize, g: &Geometry, cols: &mut [f32]) {
    let p = g.pixels();
    let row_len = gn * p;
    cols[..g.k() * row_len]
        .par_chunks_mut(row_len)
        .enumerate()
        .for_each(|(r, row)| {
            let ci = r / (g.kh * g.kw);
            let ki = (r / g.kw) % g.kh;
            let kj = r % g.kw;
            // Output columns ox whose input column ix = ox·s + kj − pad lies in [0, w).
            let ox_lo = g.pad.saturating_sub(kj).div_ceil(g.stride).min(g.ow);
            let ox_hi = ((g.w + g.pad).saturating_sub(kj))
                .div_ceil(g.stride)
                .clamp(ox_lo, g.ow);
            for img in 0..gn {
                let src = &x[(img * g.c + ci) * g.h * g.w..][..g.h * g.w];
                for oy in 0..g.oh {
                    let dst = &mut row[img * p + oy * g.ow..][..g.ow];
                    let iy = (oy * g.stride + ki) as isize - g.pad as isize;
                    if iy < 0 || iy >= g.h as isize {
                        dst.fill(0.0);
                        continue;
                    }
                    let line = &src[iy as usize * g.w..][..g.w];
                    dst[..ox_lo].fill(0.0);
                    dst[ox_hi..].fill(0.0);
                    if ox_hi == ox_lo {
                        continue;
                    }
                    let ix0 = ox_lo * g.stride + kj - g.pad;
                    if g.stride == 1 {
                        dst[ox_lo..ox_hi].copy_from_slice(&line[ix0..ix0 + (ox_hi - ox_lo)]);
                    } else {
                        for (d, s) in dst[ox_lo..ox_hi]
                            .iter_mut()
                            .zip(line[ix0..].iter().step_by(g.stride))
                        {
                            *d = *s;
                        }
                    }
                }
            }
        });
}

/// `relu?(conv2d(x, w)·scale[o] + shift[o] + residual)` (`bn` = (scale, shift)) for `x: [n, c, h, w]`,
/// `w: [o, c, kh, kw]` (cross-correlation, zero padding `pad`, stride `stride`, as torch's and
/// candle's `conv2d`), `scale`, `shift: [o]`, `residual: [n, o, oh, ow]`. `Ok(None)` when an
/// input is not a contiguous f32 CPU tensor or the shapes do not fit (the caller then runs
/// the candle ops).
pub(crate) fn conv_bn(
    x: &Tensor,
    w: &Tensor,
    stride: usize,
    pad: usize,
    (scale, shift): (&Tensor, &Tensor),
    residual: Option<&Tensor>,
    relu: bool,
) -> Result<Option<Tensor>> {
    let (Ok((n, c, h, wd)), Ok((o, c2, kh, kw))) = (x.dims4(), w.dims4()) else {
        return Ok(None);
    };
    if c != c2 || stride == 0 || h + 2 * pad < kh || wd + 2 * pad < kw {
        return Ok(None);
    }
    let g = Geometry {
        c,
        h,
        w: wd,
        kh,
        kw,
        stride,
        pad,
        oh: (h + 2 * pad - kh) / stride + 1,
        ow: (wd + 2 * pad - kw) / stride + 1,
    };
    if scale.dims() != [o] || shift.dims() != [o] {
        return Ok(None);
    }
    if residual.is_some_and(|r| r.dims() != [n, o, g.oh, g.ow]) {
        return Ok(None);
    }
    let run = |xs: &[f32], ws: &[f32], sc: &[f32], sh: &[f32], res: Option<&[f32]>| {
        let (p, k) = (g.pixels(), g.k());
        let per_group = (COLS_BUDGET / (k * p).max(1)).clamp(1, n.max(1));
        let mut cols = vec![0f32; k * per_group * p];
        let mut prod = vec![0f32; o * per_group * p];
        let mut out = vec![0f32; n * o * p];
        let par = match rayon::current_num_threads() {
            0 | 1 => Parallelism::None,
            t => Parallelism::Rayon(t),
        };
        for n0 in (0..n).step_by(per_group) {
            let gn = per_group.min(n - n0);
            let row_len = gn * p;
            im2col(&xs[n0 * c * g.h * g.w..], gn, &g, &mut cols);
            // SAFETY: prod is o × row_len (row stride row_len), w is o × k (row stride k),
            // cols is k × row_len (row stride row_len); all within their buffers.
            unsafe {
                gemm(
                    o,
                    row_len,
                    k,
                    prod.as_mut_ptr(),
                    1,
                    row_len as isize,
                    false,
                    ws.as_ptr(),
                    1,
                    k as isize,
                    cols.as_ptr(),
                    1,
                    row_len as isize,
                    0.0,
                    1.0,
                    false,
                    false,
                    false,
                    par,
                );
            }
            // Scatter [o, (img, pixel)] into NCHW with the epilogue.
            let base = n0 * o * p;
            out[base..base + gn * o * p]
                .par_chunks_mut(p)
                .enumerate()
                .for_each(|(j, dst)| {
                    let (img, oc) = (j / o, j % o);
                    let src = &prod[oc * row_len + img * p..][..p];
                    let (a, b) = (sc[oc], sh[oc]);
                    match res {
                        Some(r) => {
                            let r = &r[base + j * p..][..p];
                            for ((d, &s), &r) in dst.iter_mut().zip(src).zip(r) {
                                *d = s.mul_add(a, b) + r;
                            }
                        }
                        None => {
                            for (d, &s) in dst.iter_mut().zip(src) {
                                *d = s.mul_add(a, b);
                            }
                        }
                    }
                    if relu {
                        for d in dst.iter_mut() {
                            *d = d.max(0.0);
                        }
                    }
                });
        }
        out
    };
    let out = with_f32(x, |xs| {
        with_f32(w, |ws| {
            with_f32(scale, |sc| {
                with_f32(shift, |sh| match residual {
                    Some(r) => with_f32(r, |rs| run(xs, ws, sc, sh, Some(rs))),
                    None => Some(run(xs, ws, sc, sh, None)),
                })
            })
        })
    });
    match out.flatten().flatten().flatten().flatten() {
        Some(v) => Ok(Some(Tensor::from_vec(v, (n, o, g.oh, g.ow), x.device())?)),
        None => Ok(None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{DType, Device};

    /// Deterministic pseudo-random values in [-1, 1).
    fn values(n: usize, seed: u32) -> Vec<f32> {
        let mut s = seed.wrapping_mul(2_654_435_761).wrapping_add(1);
        (0..n)
            .map(|_| {
                s ^= s << 13;
                s ^= s >> 17;
                s ^= s << 5;
                (s >> 8) as f32 / (1u32 << 23) as f32 - 1.0
            })
            .collect()
    }

    fn t(shape: &[usize], seed: u32) -> Tensor {
        let n = shape.iter().product();
        Tensor::from_vec(values(n, seed), shape, &Device::Cpu).unwrap()
    }

    /// candle's ops for the same expression.
    fn reference(
        x: &Tensor,
        w: &Tensor,
        stride: usize,
        pad: usize,
        (scale, shift): (&Tensor, &Tensor),
        residual: Option<&Tensor>,
        relu: bool,
    ) -> Tensor {
        let o = scale.dim(0).unwrap();
        let mut y = x
            .conv2d(w, pad, stride, 1, 1)
            .unwrap()
            .broadcast_mul(&scale.reshape((1, o, 1, 1)).unwrap())
            .unwrap()
            .broadcast_add(&shift.reshape((1, o, 1, 1)).unwrap())
            .unwrap();
        if let Some(r) = residual {
            y = (y + r).unwrap();
        }
        if relu {
            y = y.relu().unwrap();
        }
        y
    }

    fn max_abs_diff(a: &Tensor, b: &Tensor) -> f32 {
        (a - b)
            .unwrap()
            .abs()
            .unwrap()
            .flatten_all()
            .unwrap()
            .max(0)
            .unwrap()
            .to_scalar::<f32>()
            .unwrap()
    }

    #[test]
    fn matches_candle_conv_bn_relu_residual_on_resnet_shapes() {
        // (n, c, h, o, k, stride, pad): the stems, 3×3 convs at stride 1 and 2, 1×1
        // downsamples, odd sizes, a batch larger than one im2col group.
        let cases = [
            (3, 3, 32, 8, 3, 1, 1),
            (2, 3, 33, 8, 7, 2, 3),
            (4, 8, 16, 16, 3, 2, 1),
            (3, 16, 8, 32, 1, 2, 0),
            (2, 16, 7, 16, 3, 1, 1),
            (1, 4, 5, 6, 1, 1, 0),
            (40, 64, 8, 8, 3, 1, 1),
        ];
        for (i, &(n, c, h, o, k, stride, pad)) in cases.iter().enumerate() {
            let seed = i as u32 * 7;
            let x = t(&[n, c, h, h], seed + 1);
            let w = t(&[o, c, k, k], seed + 2);
            let scale = t(&[o], seed + 3);
            let shift = t(&[o], seed + 4);
            let oh = (h + 2 * pad - k) / stride + 1;
            let res = t(&[n, o, oh, oh], seed + 5);
            for (residual, relu) in [(None, false), (None, true), (Some(&res), true)] {
                let got = conv_bn(&x, &w, stride, pad, (&scale, &shift), residual, relu)
                    .unwrap()
                    .expect("fast path taken");
                let want = reference(&x, &w, stride, pad, (&scale, &shift), residual, relu);
                assert_eq!(got.dims(), want.dims(), "case {i}");
                // Sums of up to c·k² = 576 products of values in [-1, 1): f32 rounding of
                // two different summation orders stays far below 1e-4.
                let d = max_abs_diff(&got, &want);
                assert!(d < 1e-4, "case {i}: max |Δ| = {d}");
            }
        }
    }

    #[test]
    fn same_bits_with_one_and_four_threads() {
        let x = t(&[6, 16, 12, 12], 1);
        let w = t(&[24, 16, 3, 3], 2);
        let (scale, shift) = (t(&[24], 3), t(&[24], 4));
        let run = |threads| {
            let pool = rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build()
                .unwrap();
            pool.install(|| {
                conv_bn(&x, &w, 1, 1, (&scale, &shift), None, true)
                    .unwrap()
                    .unwrap()
                    .flatten_all()
                    .unwrap()
                    .to_vec1::<f32>()
                    .unwrap()
            })
        };
        let (a, b) = (run(1), run(4));
        assert!(a.iter().zip(&b).all(|(x, y)| x.to_bits() == y.to_bits()));
    }

    #[test]
    fn other_dtypes_fall_back() {
        let x = t(&[1, 3, 8, 8], 1).to_dtype(DType::BF16).unwrap();
        let w = t(&[4, 3, 3, 3], 2).to_dtype(DType::BF16).unwrap();
        let s = t(&[4], 3).to_dtype(DType::BF16).unwrap();
        assert!(conv_bn(&x, &w, 1, 1, (&s, &s), None, false)
            .unwrap()
            .is_none());
    }
}
