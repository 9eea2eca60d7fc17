//! The f32 CPU forward of the ResNet, on zo's own SGEMM ([`crate::sgemm`]), activations
//! position-major, HWNC (`[y, x, image, channel]`, channels contiguous, then the images of one
//! pixel position).
//!
//! A convolution with eval-mode BatchNorm, the block's residual add and ReLU is one GEMM
//! `out[pixel, o] = relu?(patch[pixel, :] · W'[o, :] + shift[o] + residual[pixel, o])`, where
//! `W'[o, (ki, kj, c)] = W[o, c, ki, kj]·scale[o]` is the weight with the BN scale folded in
//! (rebuilt every call, as ZO perturbs the weights between forwards), `shift` goes in the
//! GEMM's bias and the residual and ReLU in its epilogue, so the output is written once.
//!
//! With channels last the output of the GEMM is the next layer's input as it is, a 1×1 stride-1
//! convolution multiplies the activation itself (no copy), and the patch row of an output pixel
//! is `kh·kw` contiguous runs of `c` channels. Those rows are not stored: the GEMM asks
//! [`Patches`] for them `MR` rows × one `k` block at a time, right before packing them
//! (implicit im2col through L1, [`crate::sgemm::RowSource`]), where a stored im2col matrix of a
//! CIFAR batch would be 9× the input (300 MB for ResNet-18's first stage at B128) and cost a
//! second pass over memory.
//!
//! Why position-major: the GEMM's rows are the output pixels in storage order, taken `MR`
//! (12, or 6 with AVX2) at a time by the kernel. In HWNC those 12 rows are one pixel position
//! of 12 images, so they share their padding: a tap that falls in the padding is zero for all
//! 12 rows, and the kernel skips it instead of multiplying zeros, whether it reads A in place
//! (`ARun::zero`) or packs it (`driver::Zeros`, the smaller-L2 AVX-512 blocking and AVX2).
//! In NHWC the 12 rows were 12
//! neighbouring pixels of one image, with different padding. On CIFAR's 3×3 convolutions the
//! padding is 4 % of the taps at 32×32, 8 % at 16×16, 16 % at 8×8 and 31 % at 4×4 (ResNet-18's
//! four stages, of equal FLOPs). The tap of 12 images at one pixel is also one contiguous block
//! of `12·c` floats.
//!
//! Tried and not kept (2026-12-04, Intel Xeon, AVX-512): gathering the patch rows straight into
//! row-major A micro-panels read by a strided variant of the AVX-512 kernel (skipping the
//! transposing pack): ResNet-18 forward (B128, 2 threads) went from 0.52–0.53 s to 0.87–0.89 s,
//! bit-identical but slower: the kernel's 12 broadcast streams at a stride of `KC` floats cost
//! more than the pack they save.
//!
//! Determinism: the SGEMM computes each output element as one in-order FMA chain whatever
//! the number of threads; pooling and the head reduce in a fixed order per image. The result
//! does not depend on the thread count (tested).

use std::cell::RefCell;
use std::mem::MaybeUninit;

use rayon::prelude::*;

use crate::sgemm::{
    sgemm_nt_uninit_compute, sgemm_rows_uninit_compute, Compute, Epilogue, RowSource,
};

thread_local! {
    /// Activation buffers that [`Act::recycle`] gave back, reused by the next convolutions on
    /// this thread. A CIFAR ResNet's activations are tens of MB each, above the size where
    /// the allocator maps fresh zeroed pages for every allocation: reusing them saves the
    /// page faults and the zeroing on every forward. The pool holds at most the buffers that
    /// were alive at once in one forward.
    static POOL: RefCell<Vec<Vec<f32>>> = const { RefCell::new(Vec::new()) };
}

/// An empty vector with room for `len` floats: the smallest pooled buffer that fits, else a
/// new one.
fn buffer(len: usize) -> Vec<f32> {
    POOL.with(|p| {
        let mut p = p.borrow_mut();
        let best = (0..p.len())
            .filter(|&i| p[i].capacity() >= len)
            .min_by_key(|&i| p[i].capacity());
        match best {
            Some(i) => {
                let mut v = p.swap_remove(i);
                v.clear();
                v
            }
            None => Vec::with_capacity(len),
        }
    })
}

/// A batch of activations, HWNC: pixel `(y, x)` of image `i` at `((y·w + x)·n + i)·c`.
#[derive(Debug)]
pub(crate) struct Act {
    pub n: usize,
    pub h: usize,
    pub w: usize,
    pub c: usize,
    pub data: Vec<f32>,
}

impl Act {
    /// Gives the buffer back to this thread's pool.
    pub fn recycle(self) {
        POOL.with(|p| p.borrow_mut().push(self.data));
    }

    /// From NCHW values.
    pub fn from_nchw(v: &[f32], n: usize, c: usize, h: usize, w: usize) -> Act {
        let mut data = buffer(n * h * w * c);
        data.resize(n * h * w * c, 0.0);
        data.par_chunks_mut(n * c).enumerate().for_each(|(p, dst)| {
            for (img, px) in dst.chunks_exact_mut(c).enumerate() {
                let src = &v[img * c * h * w..];
                for (ch, d) in px.iter_mut().enumerate() {
                    *d = src[ch * h * w + p];
                }
            }
        });
        Act { n, h, w, c, data }
    }
}

/// A convolution's weights with BN folded in, `[o, kh, kw, c]`, and its shift `[o]`.
pub(crate) struct Folded {
    pub o: usize,
    pub kh: usize,
    pub kw: usize,
    pub c: usize,
    pub w: Vec<f32>,
    pub shift: Vec<f32>,
}

impl Folded {
    /// `w: [o, c, kh, kw]` (torch's layout) times `scale[o]`, reordered to `[o, kh, kw, c]`.
    pub fn new(
        w: &[f32],
        (o, c, kh, kw): (usize, usize, usize, usize),
        scale: &[f32],
        shift: Vec<f32>,
    ) -> Folded {
        let k = c * kh * kw;
        let mut out = vec![0f32; o * k];
        out.par_chunks_mut(k).enumerate().for_each(|(oc, dst)| {
            let (src, s) = (&w[oc * k..][..k], scale[oc]);
            for ch in 0..c {
                for t in 0..kh * kw {
                    dst[t * c + ch] = src[ch * kh * kw + t] * s;
                }
            }
        });
        Folded {
            o,
            kh,
            kw,
            c,
            w: out,
            shift,
        }
    }
}

/// Shape of one convolution over an HWNC batch of `n` images.
#[derive(Clone, Copy, Debug)]
struct Geometry {
    n: usize,
    h: usize,
    w: usize,
    c: usize,
    kw: usize,
    stride: usize,
    pad: usize,
    oh: usize,
    ow: usize,
}

/// The implicit im2col matrix of an HWNC batch: row `(oy, ox, image)`, column
/// `(ki, kj, ch)` holds `x[image, oy·s + ki − pad, ox·s + kj − pad, ch]`, 0 outside the image.
struct Patches<'a> {
    x: &'a [f32],
    g: Geometry,
}

impl Patches<'_> {
    /// Output row `i`'s patch: its image and the padded input coordinates of its tap (0, 0).
    #[inline]
    fn corner(&self, i: usize) -> (usize, usize, usize) {
        let g = &self.g;
        let (p, img) = (i / g.n, i % g.n);
        (img, p / g.ow * g.stride, p % g.ow * g.stride)
    }

    /// Where tap `(ki, kj)` of the patch at `corner` reads: the input column `ix` (wrapped
    /// below zero: past the image in the left padding) and, when the pixel is inside the
    /// image, the offset of its channel 0 in `x`.
    #[inline]
    fn tap(
        &self,
        (img, y, x): (usize, usize, usize),
        ki: usize,
        kj: usize,
    ) -> (usize, Option<usize>) {
        let g = &self.g;
        let iy = (y + ki).wrapping_sub(g.pad);
        let ix = (x + kj).wrapping_sub(g.pad);
        let inside = iy < g.h && ix < g.w;
        (ix, inside.then(|| ((iy * g.w + ix) * g.n + img) * g.c))
    }
}

impl RowSource for Patches<'_> {
    fn gather(&self, i0: usize, rows: usize, p0: usize, kc: usize, dst: &mut [f32]) {
        let g = &self.g;
        let c = g.c;
        let end = p0 + kc;
        for (r, d) in dst.chunks_exact_mut(kc).take(rows).enumerate() {
            let corner = self.corner(i0 + r);
            let mut q = p0;
            while q < end {
                let (tap, c0) = (q / c, q % c);
                let (ki, kj) = (tap / g.kw, tap % g.kw);
                let (ix, at) = self.tap(corner, ki, kj);
                let mut len = (c - c0).min(end - q);
                let seg = &mut d[q - p0..];
                if let Some(at) = at {
                    // At stride 1 and one image the taps (ki, kj..) of one input row are
                    // contiguous: copy the run as far as it stays inside the row and the block.
                    if g.stride == 1 && g.n == 1 && len == c - c0 {
                        let mut next = kj + 1;
                        while next < g.kw && ix + (next - kj) < g.w && q + len < end {
                            len += c.min(end - q - len);
                            next += 1;
                        }
                    }
                    let at = at + c0;
                    seg[..len].copy_from_slice(&self.x[at..at + len]);
                } else {
                    seg[..len].fill(0.0);
                }
                q += len;
            }
        }
    }

    /// One run per tap (or the part of it inside the block): the tap's `c` channels of an
    /// input pixel are contiguous, and a pixel in the padding is a null (zero) row.
    fn runs(
        &self,
        i0: usize,
        rows: usize,
        p0: usize,
        kc: usize,
        f: &mut dyn FnMut(usize, usize, &[*const f32]),
    ) -> bool {
        const MAX_ROWS: usize = 32;
        if rows > MAX_ROWS {
            return false;
        }
        let (g, c) = (&self.g, self.g.c);
        let mut ptrs = [std::ptr::null::<f32>(); MAX_ROWS];
        // Each row's patch once (its divisions showed in the profile when done per tap).
        let mut corners = [(0, 0, 0); MAX_ROWS];
        for (r, corner) in corners[..rows].iter_mut().enumerate() {
            *corner = self.corner(i0 + r);
        }
        let (end, mut q) = (p0 + kc, p0);
        while q < end {
            let (tap, c0) = (q / c, q % c);
            let (ki, kj) = (tap / g.kw, tap % g.kw);
            let len = (c - c0).min(end - q);
            for (ptr, &corner) in ptrs[..rows].iter_mut().zip(&corners[..rows]) {
                *ptr = match self.tap(corner, ki, kj).1 {
                    Some(at) => self.x[at + c0..][..len].as_ptr(),
                    None => std::ptr::null(),
                };
            }
            f(q, len, &ptrs[..rows]);
            q += len;
        }
        true
    }
}

/// `relu?(conv(x, W')·+ shift [+ residual])` over the HWNC batch `x` (zero padding `pad`,
/// stride `stride`, torch's cross-correlation); `residual` is HWNC of the output's shape.
/// `None` when this CPU has no SGEMM kernel or a shape does not fit.
pub(crate) fn conv_bn(
    x: &Act,
    f: &Folded,
    stride: usize,
    pad: usize,
    residual: Option<&[f32]>,
    relu: bool,
    compute: Compute,
) -> Option<Act> {
    if f.c != x.c || stride == 0 || x.h + 2 * pad < f.kh || x.w + 2 * pad < f.kw {
        return None;
    }
    let g = Geometry {
        n: x.n,
        h: x.h,
        w: x.w,
        c: x.c,
        kw: f.kw,
        stride,
        pad,
        oh: (x.h + 2 * pad - f.kh) / stride + 1,
        ow: (x.w + 2 * pad - f.kw) / stride + 1,
    };
    let rows = x.n * g.oh * g.ow;
    let k = f.kh * f.kw * f.c;
    let epi = Epilogue {
        scale: 1.0,
        bias: Some(&f.shift),
        residual,
        relu,
    };
    let mut out = buffer(rows * f.o);
    let spare: &mut [MaybeUninit<f32>] = &mut out.spare_capacity_mut()[..rows * f.o];
    let ok = if f.kh == 1 && f.kw == 1 && stride == 1 && pad == 0 {
        sgemm_nt_uninit_compute(compute, rows, f.o, k, &x.data, &f.w, spare, &epi)
    } else {
        let src = Patches { x: &x.data, g };
        sgemm_rows_uninit_compute(compute, rows, f.o, k, &src, &f.w, spare, &epi)
    };
    if !ok {
        return None;
    }
    // SAFETY: the SGEMM returned true, so it initialised all `rows·o` values.
    unsafe { out.set_len(rows * f.o) };
    Some(Act {
        n: x.n,
        h: g.oh,
        w: g.ow,
        c: f.o,
        data: out,
    })
}

/// 3×3 stride-2 max-pool with padding 1 (torchvision's ImageNet stem), padding as −∞.
pub(crate) fn max_pool_3x3_s2(x: &Act) -> Act {
    let (oh, ow, c) = ((x.h + 2 - 3) / 2 + 1, (x.w + 2 - 3) / 2 + 1, x.c);
    let n = x.n;
    let mut data = buffer(n * oh * ow * c);
    data.resize(n * oh * ow * c, f32::NEG_INFINITY);
    data.par_chunks_mut(n * c).enumerate().for_each(|(p, dst)| {
        let (oy, ox) = (p / ow, p % ow);
        for iy in (2 * oy).saturating_sub(1)..(2 * oy + 2).min(x.h) {
            for ix in (2 * ox).saturating_sub(1)..(2 * ox + 2).min(x.w) {
                let src = &x.data[(iy * x.w + ix) * n * c..][..n * c];
                for (a, &b) in dst.iter_mut().zip(src) {
                    *a = a.max(b);
                }
            }
        }
    });
    Act {
        n: x.n,
        h: oh,
        w: ow,
        c,
        data,
    }
}

/// Global average pool then the linear head: `[n, classes]` logits, `fc_w: [classes, c]`.
/// `None` when this CPU has no SGEMM kernel or a shape does not fit.
pub(crate) fn head(x: &Act, fc_w: &[f32], fc_b: &[f32]) -> Option<Vec<f32>> {
    let (hw, c) = (x.h * x.w, x.c);
    let classes = fc_b.len();
    let mut feats = vec![0f32; x.n * c];
    feats.par_chunks_mut(c).enumerate().for_each(|(img, f)| {
        for p in 0..hw {
            let px = &x.data[(p * x.n + img) * c..][..c];
            for (a, &b) in f.iter_mut().zip(px) {
                *a += b;
            }
        }
        for a in f.iter_mut() {
            *a /= hw as f32;
        }
    });
    let mut logits = vec![0f32; x.n * classes];
    let epi = Epilogue {
        scale: 1.0,
        bias: Some(fc_b),
        residual: None,
        relu: false,
    };
    crate::sgemm::sgemm_nt(x.n, classes, c, &feats, fc_w, &mut logits, &epi).then_some(logits)
}

/// Seconds (medians over `repeats`, alternated) of one convolution shape on `n` images of
/// `c × h × h` (`o` outputs, `k × k` kernel, `stride`, padding `k/2`, BN + ReLU epilogue):
/// through [`conv_bn`] (implicit im2col) and through [`crate::sgemm::sgemm_nt`] on the same
/// product with the im2col matrix stored beforehand (the GEMM alone). Both write into reused
/// buffers (the convolution's output goes back to the pool, as in the forward). Returns
/// `(conv_s, sgemm_s, flops)`; `None` without an SGEMM kernel.
pub fn conv_vs_sgemm(
    (n, c, h, o, k, stride): (usize, usize, usize, usize, usize, usize),
    repeats: usize,
) -> Option<(f64, f64, u64)> {
    let x = Act {
        n,
        h,
        w: h,
        c,
        data: (0..n * h * h * c).map(|i| (i % 7) as f32 - 3.0).collect(),
    };
    let wv: Vec<f32> = (0..o * c * k * k).map(|i| (i % 5) as f32 * 0.01).collect();
    let f = Folded::new(&wv, (o, c, k, k), &vec![1.0; o], vec![0.1; o]);
    let g = Geometry {
        n,
        h,
        w: h,
        c,
        kw: k,
        stride,
        pad: k / 2,
        oh: (h + 2 * (k / 2) - k) / stride + 1,
        ow: (h + 2 * (k / 2) - k) / stride + 1,
    };
    let (rows, kk) = (n * g.oh * g.ow, k * k * c);
    let mut a = vec![0f32; rows * kk];
    Patches { x: &x.data, g }.gather(0, rows, 0, kk, &mut a);
    let mut out = vec![0f32; rows * o];
    let epi = Epilogue {
        scale: 1.0,
        bias: Some(&f.shift),
        residual: None,
        relu: true,
    };
    let (mut tc, mut tg) = (Vec::new(), Vec::new());
    for r in 0..=repeats {
        let t = std::time::Instant::now();
        // The output goes back to the pool, as in the forward.
        std::hint::black_box(conv_bn(&x, &f, stride, k / 2, None, true, Compute::F32)?).recycle();
        let dc = t.elapsed().as_secs_f64();
        let t = std::time::Instant::now();
        crate::sgemm::sgemm_nt(rows, o, kk, &a, &f.w, &mut out, &epi).then_some(())?;
        let dg = t.elapsed().as_secs_f64();
        if r > 0 {
            tc.push(dc);
            tg.push(dg);
        }
    }
    let median = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    Some((median(&mut tc), median(&mut tg), 2 * (rows * o * kk) as u64))
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Device, Tensor};

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

    fn t(shape: &[usize], v: &[f32]) -> Tensor {
        Tensor::from_slice(v, shape, &Device::Cpu).unwrap()
    }

    /// candle's ops for the same expression, NCHW in, HWNC values out.
    #[allow(clippy::too_many_arguments)]
    fn reference(
        x: &Tensor,
        w: &Tensor,
        stride: usize,
        pad: usize,
        scale: &Tensor,
        shift: &Tensor,
        residual: Option<&Tensor>,
        relu: bool,
    ) -> Vec<f32> {
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
        hwnc(&y)
    }

    fn hwnc(t: &Tensor) -> Vec<f32> {
        t.permute((2, 3, 0, 1))
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1()
            .unwrap()
    }

    #[test]
    fn matches_candle_conv_bn_relu_residual_on_resnet_shapes() {
        if !crate::sgemm::available() {
            return;
        }
        // (n, c, h, o, k, stride, pad): the stems, 3×3 convs at stride 1 and 2, 1×1 at stride
        // 1 and 2, odd sizes, channel counts that cut `k` blocks inside a tap.
        let cases = [
            (3, 3, 32, 8, 3, 1, 1),
            (2, 3, 33, 8, 7, 2, 3),
            (4, 8, 16, 16, 3, 2, 1),
            (3, 16, 8, 32, 1, 2, 0),
            (2, 16, 7, 16, 3, 1, 1),
            (1, 4, 5, 6, 1, 1, 0),
            (5, 100, 6, 40, 3, 1, 1),
            (2, 64, 9, 70, 3, 2, 1),
        ];
        for (i, &(n, c, h, o, k, stride, pad)) in cases.iter().enumerate() {
            let seed = i as u32 * 7;
            let (xv, wv) = (
                values(n * c * h * h, seed + 1),
                values(o * c * k * k, seed + 2),
            );
            let (sc, sh) = (values(o, seed + 3), values(o, seed + 4));
            let oh = (h + 2 * pad - k) / stride + 1;
            let rv = values(n * o * oh * oh, seed + 5);
            let (x, w) = (t(&[n, c, h, h], &xv), t(&[o, c, k, k], &wv));
            let (scale, shift, res) = (t(&[o], &sc), t(&[o], &sh), t(&[n, o, oh, oh], &rv));
            let xa = Act::from_nchw(&xv, n, c, h, h);
            let f = Folded::new(&wv, (o, c, k, k), &sc, sh.clone());
            let res_hwnc = hwnc(&res);
            for (residual, relu) in [(None, false), (None, true), (Some(&res), true)] {
                let got = conv_bn(
                    &xa,
                    &f,
                    stride,
                    pad,
                    residual.map(|_| res_hwnc.as_slice()),
                    relu,
                    Compute::F32,
                )
                .expect("fast path taken");
                assert_eq!((got.n, got.h, got.w, got.c), (n, oh, oh, o), "case {i}");
                let want = reference(&x, &w, stride, pad, &scale, &shift, residual, relu);
                // Sums of up to c·k² = 900 products of values in [-1, 1) (times a scale in
                // [-1, 1)): f32 rounding of two summation orders stays far below 1e-4.
                let d = got
                    .data
                    .iter()
                    .zip(&want)
                    .map(|(a, b)| (a - b).abs())
                    .fold(0f32, f32::max);
                assert!(d < 1e-4, "case {i}: max |Δ| = {d}");
            }
        }
    }

    /// The kernels that pack straight from the input ([`RowSource::runs`]) give the bits of
    /// the gather-then-pack path (what the bf16 kernels still use), on shapes whose `k` blocks
    /// cut a tap, with padding, strides and edge tiles.
    #[test]
    fn runs_give_the_bits_of_gather() {
        use crate::sgemm::sgemm_rows_uninit;
        struct GatherOnly<'a>(Patches<'a>);
        impl RowSource for GatherOnly<'_> {
            fn gather(&self, i0: usize, rows: usize, p0: usize, kc: usize, dst: &mut [f32]) {
                self.0.gather(i0, rows, p0, kc, dst)
            }
        }
        if !crate::sgemm::available() {
            return;
        }
        for (i, &(n, c, h, o, k, stride, pad)) in [
            (3, 3, 13, 8, 3, 1, 1),
            (5, 100, 6, 40, 3, 1, 1),
            (2, 64, 9, 70, 3, 2, 1),
            (1, 200, 5, 33, 3, 1, 1),
        ]
        .iter()
        .enumerate()
        {
            let x = values(n * h * h * c, 11 * i as u32 + 1);
            let w = values(o * k * k * c, 11 * i as u32 + 2);
            let oh = (h + 2 * pad - k) / stride + 1;
            let g = Geometry {
                n,
                h,
                w: h,
                c,
                kw: k,
                stride,
                pad,
                oh,
                ow: oh,
            };
            let (rows, kk) = (n * oh * oh, k * k * c);
            let product = |src: &dyn RowSource| {
                let mut out = vec![MaybeUninit::new(f32::NAN); rows * o];
                assert!(sgemm_rows_uninit(
                    rows,
                    o,
                    kk,
                    src,
                    &w,
                    &mut out,
                    &Epilogue::PLAIN
                ));
                // SAFETY: the SGEMM returned true, so it initialised every value.
                out.into_iter()
                    .map(|v| unsafe { v.assume_init() }.to_bits())
                    .collect::<Vec<_>>()
            };
            let direct = product(&Patches { x: &x, g });
            let gathered = product(&GatherOnly(Patches { x: &x, g }));
            assert!(
                direct == gathered,
                "case {i}: the packing from runs changed the product"
            );
        }
    }

    #[test]
    fn same_bits_with_one_and_four_threads() {
        if !crate::sgemm::available() {
            return;
        }
        let (n, c, h, o) = (6, 16, 12, 24);
        let xa = Act::from_nchw(&values(n * c * h * h, 1), n, c, h, h);
        let f = Folded::new(
            &values(o * c * 9, 2),
            (o, c, 3, 3),
            &values(o, 3),
            values(o, 4),
        );
        let f1 = Folded::new(&values(o * o, 5), (o, o, 1, 1), &values(o, 6), values(o, 7));
        let fc = values(10 * o, 8);
        let run = |threads| {
            let pool = rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build()
                .unwrap();
            pool.install(|| {
                let y = conv_bn(&xa, &f, 1, 1, None, true, Compute::F32).unwrap();
                let y = conv_bn(&y, &f1, 1, 0, Some(&y.data), true, Compute::F32).unwrap();
                let y = max_pool_3x3_s2(&y);
                let mut v = y.data.clone();
                v.extend(head(&y, &fc, &values(10, 9)).unwrap());
                v
            })
        };
        let (a, b) = (run(1), run(4));
        assert_eq!(a.len(), b.len());
        assert!(a.iter().zip(&b).all(|(x, y)| x.to_bits() == y.to_bits()));
    }

    #[test]
    fn max_pool_and_head_match_candle() {
        if !crate::sgemm::available() {
            return;
        }
        let (n, c, h) = (2, 5, 9);
        let xv: Vec<f32> = values(n * c * h * h, 11);
        let x = t(&[n, c, h, h], &xv);
        let got = max_pool_3x3_s2(&Act::from_nchw(&xv, n, c, h, h));
        let want = x
            .pad_with_same(2, 1, 1)
            .unwrap()
            .pad_with_same(3, 1, 1)
            .unwrap()
            .max_pool2d_with_stride(3, 2)
            .unwrap();
        assert_eq!(got.data, hwnc(&want));
        let (fw, fb) = (values(3 * c, 12), values(3, 13));
        let logits = head(&got, &fw, &fb).unwrap();
        let want = want
            .mean((2, 3))
            .unwrap()
            .matmul(&t(&[3, c], &fw).t().unwrap())
            .unwrap()
            .broadcast_add(&t(&[3], &fb))
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1::<f32>()
            .unwrap();
        let d = logits
            .iter()
            .zip(&want)
            .map(|(a, b)| (a - b).abs())
            .fold(0f32, f32::max);
        assert!(d < 1e-5, "max |Δ| = {d}");
    }
}
