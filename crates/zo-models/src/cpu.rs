//! f32 CPU fast paths of the OPT forward, where candle's composite ops cost extra passes over
//! memory. The projections and the lm_head use our
//! [`crate::sgemm::sgemm_nt`] (specialised for `x Wᵀ` with the Linear epilogue fused, faster
//! than `gemm` on these shapes) where the CPU has AVX2+FMA or AVX-512F, and `gemm` (the GEMM
//! library candle's CPU backend uses) elsewhere:
//!
//! - [`linear`]: `y = s·(x Wᵀ + b)` in one GEMM call with the bias / residual / ReLU applied as
//!   the output is stored (with `gemm`: on an output pre-filled with the bias rows,
//!   `read_dst`), instead of candle's zero-filled matmul output, a bias pass, and a scaling
//!   pass for the attention queries;
//! - [`attention`]: `softmax(q kᵀ + mask) v` per (sequence, head) as tasks in parallel (rayon),
//!   reading the heads as strided views of the `[b·t, h]` projections and writing the output in
//!   place, instead of three head-splitting copies, 2·b·heads tiny GEMMs one after another on one
//!   core, a mask pass, a softmax pass and a transposing copy; the two small products of a task
//!   are register-tiled loops of our own (`attn`), not GEMM-library calls; [`attention_cached`]
//!   is the same arithmetic over keys and values read in place in a KV cache's per-head layout
//!   (decoding steps, the shared-prompt scoring, prefix tuning), so a pass into the cache gives
//!   the bits of the forward without one;
//! - [`layer_norm`]: rows in parallel, each in two vectorised passes (`rows`), instead of
//!   candle's scalar one-pass kernel into a zero-filled buffer.
//!
//! Every function returns `Ok(None)` when its inputs are not contiguous f32, bf16 or f16 CPU
//! tensors (or [`set_candle_ops`] is on), and the caller then runs the candle ops. bf16/f16
//! inputs (a model loaded with `model.dtype = "bf16" | "f16"`) are widened exactly to f32
//! (activations with [`with_wide`]; a weight matrix by the product itself, a block at a time
//! as it reads it; the lm_head one vocabulary slice at a time; a KV cache one attention head at
//! a time), computed on as f32, and the result rounded once to the inputs' dtype
//! ([`tensor_of`]).
//! Determinism: the GEMMs split a product between threads over
//! output blocks only (the reduction over `k` runs in one order whatever the thread count), and
//! each attention task and LayerNorm row is single-threaded and independent of the others, so
//! results do not depend on the number of threads (tested in `tests`).

use std::mem::MaybeUninit;
use std::sync::atomic::{AtomicBool, Ordering};

use candle_core::{CpuStorage, DType, Storage, Tensor};
use gemm::{gemm, Parallelism};
use rayon::prelude::*;

use crate::rows::max_sumexp;
use crate::{sgemm, Result};

mod attention;
mod attn;
mod wide;

use wide::linear_w16;
pub(crate) use wide::{tensor_of, with_data, with_data_strided, with_wide, Data};

pub(crate) use attention::{
    attention, attention_cached, attention_packed, PackedQueries, PackedSeq,
};

/// Vocabulary columns per lm_head slice of [`crate::ops::head_nll`]: `n × 4096` f32 logits (16 MB at
/// n = 1008) stay in the allocator's heap instead of a fresh 200 MB mapping per call, whose
/// page faults and memory traffic cost more than the slicing.
pub(crate) const HEAD_CHUNK: usize = 4096;

/// Whether CPU tensors run candle's own ops instead of zo's CPU kernels ([`set_candle_ops`]).
static CANDLE_OPS: AtomicBool = AtomicBool::new(false);

/// Runs a CPU model on candle's own ops, the op sequence other devices (CUDA, Metal) run,
/// instead of this module's kernels (the products, attention, LayerNorm, the lm_head's online
/// NLL, the packed forward of [`crate::OptModel`], ResNet's fused convolutions): every fast
/// path answers `None` and its caller takes the candle branch. Slower, and rounded as candle
/// rounds; for checking that sequence on a machine without a GPU (`tests/candle_ops.rs`) and
/// for telling a kernel's rounding from a model's behaviour. Process-wide (`zo`:
/// `--candle-ops`, `ZO_CANDLE_OPS=1`).
pub fn set_candle_ops(on: bool) {
    CANDLE_OPS.store(on, Ordering::Relaxed);
}

/// Whether CPU models run candle's own ops ([`set_candle_ops`]); `false` by default.
pub fn candle_ops() -> bool {
    CANDLE_OPS.load(Ordering::Relaxed)
}

/// Whether zo's kernels serve tensors on `device`: the CPU, not under [`set_candle_ops`].
pub(crate) fn kernels_on(device: &candle_core::Device) -> bool {
    device.is_cpu() && !candle_ops()
}

/// Whether `t` is a tensor that zo's kernels serve ([`kernels_on`] its device).
pub(crate) fn kernels_serve(t: &Tensor) -> bool {
    kernels_on(t.device())
}

/// Runs `f` on the contiguous f32 data of a CPU tensor; `None` for another device, dtype or a
/// non-contiguous layout, and under [`set_candle_ops`].
pub(crate) fn with_f32<R>(t: &Tensor, f: impl FnOnce(&[f32]) -> R) -> Option<R> {
    if t.dtype() != DType::F32 || !kernels_serve(t) {
        return None;
    }
    let (storage, layout) = t.storage_and_layout();
    match &*storage {
        Storage::Cpu(CpuStorage::F32(d)) => {
            let (a, b) = layout.contiguous_offsets()?;
            Some(f(&d[a..b]))
        }
        _ => None,
    }
}

/// All of rayon's threads for one GEMM (gemm itself runs small products on one thread).
fn all_threads() -> Parallelism {
    match rayon::current_num_threads() {
        0 | 1 => Parallelism::None,
        n => Parallelism::Rayon(n),
    }
}

/// `scale · (x Wᵀ + b)` for `x: [n, k]`, `W: [o, k]` (torch's layout), `b: [o]`, as `[n, o]`.
///
/// The bias rows are written first and the GEMM accumulates onto them (`dst = dst + scale·x Wᵀ`
/// with the bias pre-scaled); with `scale` a power of two (the 1/√64 of OPT's queries) this is
/// `(x Wᵀ + b)·scale` exactly up to where the bias enters the sum.
pub(crate) fn linear(
    x: &Tensor,
    w: &Tensor,
    bias: Option<&Tensor>,
    scale: f32,
    epilogue: Epilogue<'_>,
    compute: sgemm::Compute,
) -> Result<Option<Tensor>> {
    let (Ok((n, k)), Ok((o, k2))) = (x.dims2(), w.dims2()) else {
        return Ok(None);
    };
    if k != k2 || bias.is_some_and(|b| b.dims() != [o]) {
        return Ok(None);
    }
    let residual = match epilogue {
        Epilogue::Residual(r) if r.dims() != [n, o] => return Ok(None),
        Epilogue::Residual(r) => Some(r),
        _ => None,
    };
    let relu = matches!(epilogue, Epilogue::Relu);
    if let Some(y) = linear_w16(x, w, bias, scale, residual, relu, compute)? {
        return Ok(Some(y));
    }
    let run = |x: &[f32], w: &[f32], b: Option<&[f32]>, res: Option<&[f32]>| -> Vec<f32> {
        if sgemm::available() {
            // Written in place, without zeroing first (the output is overwritten anyway;
            // zeroing it cost 1-4% of a 1024-row product in `examples/sgemm_bench.rs`).
            let mut out: Vec<f32> = Vec::with_capacity(n * o);
            let epi = sgemm::Epilogue {
                scale,
                bias: b,
                residual: res,
                relu,
            };
            let dst = &mut out.spare_capacity_mut()[..n * o];
            if sgemm::sgemm_nt_uninit_compute(compute, n, o, k, x, w, dst, &epi) {
                // SAFETY: `sgemm_nt_uninit` returned true, so it initialised all `n·o`
                // elements of the spare capacity, which `with_capacity` made ≥ `n·o`.
                unsafe { out.set_len(n * o) };
                return out;
            }
        }
        let read_dst = b.is_some() || res.is_some();
        let mut out = match (b, res) {
            (Some(b), Some(res)) => res
                .chunks_exact(o)
                .flat_map(|r| r.iter().zip(b).map(|(&r, &b)| r + b * scale))
                .collect(),
            (None, Some(res)) => res.to_vec(),
            (Some(b), None) => {
                let mut out = Vec::with_capacity(n * o);
                for _ in 0..n {
                    out.extend(b.iter().map(|&v| v * scale));
                }
                out
            }
            (None, None) => vec![0f32; n * o],
        };
        // SAFETY: `out` is `[n, o]` row-major, `x` `[n, k]` row-major, `w` `[o, k]` row-major
        // read as `Wᵀ: [k, o]` (column stride k, row stride 1); every access is in bounds.
        unsafe {
            gemm(
                n,
                o,
                k,
                out.as_mut_ptr(),
                1,
                o as isize,
                read_dst,
                x.as_ptr(),
                1,
                k as isize,
                w.as_ptr(),
                k as isize,
                1,
                if read_dst { 1.0 } else { 0.0 },
                scale,
                false,
                false,
                false,
                all_threads(),
            );
        }
        if relu {
            // In place while the output is still in cache: no second `[n, o]` allocation.
            out.par_chunks_mut(1 << 14)
                .for_each(|c| c.iter_mut().for_each(|v| *v = v.max(0.0)));
        }
        out
    };
    // Each optional input: `Some(None)` when absent, `Some(Some(data))` when present and
    // usable, `None` when present and not usable (then the whole call falls back).
    // bf16/f16 weights and activations (`model.dtype`) are read widened: the product, bias,
    // scale and epilogue in f32, rounded once to the activations' dtype at the end (candle's
    // path rounds after the product, the bias and the residual each).
    let out = with_wide(x, |x| {
        with_wide(w, |w| {
            let b = match bias {
                Some(b) => with_wide(b, |b| Some(b.to_vec()))?,
                None => None,
            };
            let run_res = |res: Option<&[f32]>| run(x, w, b.as_deref(), res);
            match residual {
                Some(r) => with_wide(r, |r| run_res(Some(r))),
                None => Some(run_res(None)),
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

/// What [`linear`] applies to `scale · (x Wᵀ + b)` before returning it.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Epilogue<'a> {
    None,
    /// `max(y, 0)`, in place.
    Relu,
    /// `y + residual` (`[n, o]`): the GEMM accumulates onto `residual + b` (one pass less than
    /// adding afterwards; rounding differs from `(x Wᵀ + b) + r` by where the terms enter).
    Residual(&'a Tensor),
}

/// LayerNorm over the last dimension of a contiguous f32 CPU tensor (`w`, `b`: `[dim]`): each
/// row by [`crate::rows::layer_norm_rows`] (two-pass mean and variance, vectorised), rows in
/// parallel, into an output that is not zero-filled first. candle's CPU kernel sums in scalar
/// f32 in one pass (`E[x²] − mean²`) into a zeroed buffer: 3 % of a bf16 forward's samples.
pub(crate) fn layer_norm(x: &Tensor, w: &Tensor, b: &Tensor, eps: f32) -> Result<Option<Tensor>> {
    let Some(&dim) = x.dims().last() else {
        return Ok(None);
    };
    if dim == 0 || w.dims() != [dim] || b.dims() != [dim] {
        return Ok(None);
    }
    /// Rows per task: enough work per task that rayon's overhead stays small.
    const ROWS: usize = 16;
    let run = |x: &[f32], w: &[f32], b: &[f32]| -> Vec<f32> {
        let mut out: Vec<f32> = Vec::with_capacity(x.len());
        out.spare_capacity_mut()
            .par_chunks_mut(ROWS * dim)
            .zip(x.par_chunks(ROWS * dim))
            .for_each(|(d, x)| crate::rows::layer_norm_rows(x, w, b, eps, d));
        // SAFETY: `layer_norm_rows` wrote every element of each chunk, and the chunks cover
        // the `x.len()` elements of the spare capacity.
        unsafe { out.set_len(x.len()) };
        out
    };
    let out = with_wide(x, |x| with_wide(w, |w| with_wide(b, |b| run(x, w, b))))
        .flatten()
        .flatten();
    Ok(match out {
        Some(v) => Some(tensor_of(v, x.shape(), x.dtype())?),
        None => None,
    })
}

/// NLL of each `labels[i]` under the logits of hidden row `rows[i]` (the tied lm_head
/// `W: [vocab, E]`, hidden rows `h: [n, E]`; logits only for the rows some label reads, each
/// once however many labels it scores): [`crate::ops::head_nll`]'s online logsumexp over vocabulary slices of
/// [`HEAD_CHUNK`] columns, with each slice's logits written by the GEMM into one buffer reused
/// for every slice (no per-slice allocation, zero-fill or tensor round trip). Each row's
/// running `(max, Σ)` is updated by one task, slices in order, so the result does not depend
/// on the thread count.
pub(crate) fn head_nll(
    h: &Tensor,
    w: &Tensor,
    rows: &[u32],
    labels: &[u32],
    compute: sgemm::Compute,
) -> Result<Option<Vec<f64>>> {
    let (Ok((n, e)), Ok((vocab, e2))) = (h.dims2(), w.dims2()) else {
        return Ok(None);
    };
    if e != e2 || labels.len() != rows.len() || rows.iter().any(|&r| r as usize >= n) {
        return Ok(None);
    }
    let run = |h: &[f32], w: Data<'_>| -> Vec<f64> {
        // The rows the labels read, each once, in order of first use (a prompt's candidates
        // share its last row; the other positions of `h` need no logits); `rows` becomes each
        // label's index among them. A row's logits do not depend on the other rows.
        let mut slot_of = vec![u32::MAX; n];
        let mut distinct: Vec<u32> = Vec::new();
        let rows: Vec<u32> = rows
            .iter()
            .map(|&r| {
                let slot = &mut slot_of[r as usize];
                if *slot == u32::MAX {
                    *slot = distinct.len() as u32;
                    distinct.push(r);
                }
                *slot
            })
            .collect();
        let compact: Vec<f32>;
        let every_row_in_order =
            distinct.len() == n && distinct.iter().enumerate().all(|(i, &r)| r as usize == i);
        let h = if every_row_in_order {
            h
        } else {
            compact = distinct
                .iter()
                .flat_map(|&r| &h[r as usize * e..(r as usize + 1) * e])
                .copied()
                .collect();
            &compact[..]
        };
        let n = distinct.len();
        // (max, Σ exp(x − max)) per row, in f64; the picked logit per label.
        let mut state = vec![(f64::NEG_INFINITY, 0f64); n];
        let mut picked = vec![f64::NAN; labels.len()];
        let mut logits = vec![0f32; n * HEAD_CHUNK.min(vocab)];
        // 16-bit weights: read in place by the product, else (no kernel) each slice widened
        // into one buffer reused for every slice.
        let mut wbuf = Vec::new();
        let mut v0 = 0;
        while v0 < vocab {
            let width = HEAD_CHUNK.min(vocab - v0);
            let (slice, out) = (v0 * e..(v0 + width) * e, &mut logits[..n * width]);
            let plain = &sgemm::Epilogue::PLAIN;
            let w16 = match &w {
                Data::F32(_) => None,
                Data::Bf16(d) => Some(sgemm::W16::Bf16(&d[slice.clone()])),
                Data::F16(d) => Some(sgemm::W16::F16(&d[slice.clone()])),
            };
            let in_place = w16.is_some_and(|w16| {
                // SAFETY: `MaybeUninit<f32>` has `f32`'s layout and the product writes only
                // initialised values, so `out` stays initialised.
                let out = unsafe { &mut *(&mut *out as *mut [f32] as *mut [MaybeUninit<f32>]) };
                sgemm::sgemm_nt_uninit_w16(compute, n, width, e, h, w16, out, plain)
            });
            // Widened only where the product could not read the 16-bit slice in place.
            let ws = if in_place {
                &[][..]
            } else {
                w.range(slice, &mut wbuf)
            };
            let ours = in_place
                || sgemm::available()
                    && sgemm::sgemm_nt_compute(compute, n, width, e, h, ws, out, plain);
            if !ours {
                // SAFETY: `logits` holds at least `[n, width]`; `h` is `[n, e]` row-major;
                // `ws`, rows `v0 .. v0 + width` of `w` (`[vocab, e]` row-major), is read as
                // `[e, width]` (column stride e, row stride 1).
                unsafe {
                    gemm(
                        n,
                        width,
                        e,
                        logits.as_mut_ptr(),
                        1,
                        width as isize,
                        false,
                        h.as_ptr(),
                        1,
                        e as isize,
                        ws.as_ptr(),
                        e as isize,
                        1,
                        0.0,
                        1.0,
                        false,
                        false,
                        false,
                        all_threads(),
                    );
                }
            }
            logits[..n * width]
                .par_chunks(width)
                .zip(state.par_iter_mut())
                .for_each(|(row, st)| {
                    let (m, s) = max_sumexp(row);
                    let (m, s) = (f64::from(m), s);
                    if m > st.0 {
                        st.1 = st.1 * (st.0 - m).exp() + s;
                        st.0 = m;
                    } else {
                        st.1 += s * (m - st.0).exp();
                    }
                });
            for ((&r, &lab), p) in rows.iter().zip(labels).zip(&mut picked) {
                if let Some(i) = (lab as usize).checked_sub(v0).filter(|&i| i < width) {
                    *p = f64::from(logits[r as usize * width + i]);
                }
            }
            v0 += width;
        }
        rows.iter()
            .zip(picked)
            .map(|(&r, p)| {
                let (m, s) = state[r as usize];
                m + s.ln() - p
            })
            .collect()
    };
    Ok(with_wide(h, |h| with_data(w, |w| run(h, w))).flatten())
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::sgemm::tests::in_pool;
    use candle_core::Device;

    pub(super) fn data(n: usize, salt: usize) -> Vec<f32> {
        (0..n)
            .map(|i| (((i * 7919 + salt * 104_729) % 2003) as f32 / 1001.0 - 1.0) * 0.7)
            .collect()
    }

    pub(super) fn max_abs_diff(a: &Tensor, b: &Tensor) -> f32 {
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
    fn linear_matches_candle_and_ignores_thread_count() {
        let dev = Device::Cpu;
        let (n, k, o) = (130, 96, 200);
        let x = Tensor::from_vec(data(n * k, 1), (n, k), &dev).unwrap();
        let w = Tensor::from_vec(data(o * k, 2), (o, k), &dev).unwrap();
        let bias = Tensor::from_vec(data(o, 3), o, &dev).unwrap();
        let want = (x
            .matmul(&w.t().unwrap())
            .unwrap()
            .broadcast_add(&bias)
            .unwrap()
            * 0.125)
            .unwrap();
        let got = linear(
            &x,
            &w,
            Some(&bias),
            0.125,
            Epilogue::None,
            sgemm::Compute::F32,
        )
        .unwrap()
        .unwrap();
        assert!(max_abs_diff(&got, &want) < 1e-5);
        let no_bias = linear(&x, &w, None, 1.0, Epilogue::None, sgemm::Compute::F32)
            .unwrap()
            .unwrap();
        assert!(max_abs_diff(&no_bias, &x.matmul(&w.t().unwrap()).unwrap()) < 1e-5);
        let plain = (x.matmul(&w.t().unwrap()).unwrap().broadcast_add(&bias)).unwrap();
        let relu = linear(
            &x,
            &w,
            Some(&bias),
            1.0,
            Epilogue::Relu,
            sgemm::Compute::F32,
        )
        .unwrap()
        .unwrap();
        assert!(max_abs_diff(&relu, &plain.relu().unwrap()) < 1e-5);
        let r = Tensor::from_vec(data(n * o, 10), (n, o), &dev).unwrap();
        let res = linear(
            &x,
            &w,
            Some(&bias),
            1.0,
            Epilogue::Residual(&r),
            sgemm::Compute::F32,
        )
        .unwrap()
        .unwrap();
        assert!(max_abs_diff(&res, &(&plain + &r).unwrap()) < 1e-5);
        let res = linear(
            &x,
            &w,
            None,
            1.0,
            Epilogue::Residual(&r),
            sgemm::Compute::F32,
        )
        .unwrap()
        .unwrap();
        assert!(max_abs_diff(&res, &(x.matmul(&w.t().unwrap()).unwrap() + &r).unwrap()) < 1e-5);
        // A residual of the wrong shape: fall back.
        let bad = linear(
            &x,
            &w,
            None,
            1.0,
            Epilogue::Residual(&x),
            sgemm::Compute::F32,
        )
        .unwrap();
        assert!(bad.is_none());
        // Bit-identical on 1 and 3 threads, on a product big enough for gemm to split.
        let (n, k, o) = (256, 256, 512);
        let x = Tensor::from_vec(data(n * k, 4), (n, k), &dev).unwrap();
        let w = Tensor::from_vec(data(o * k, 5), (o, k), &dev).unwrap();
        let bias = Tensor::from_vec(data(o, 6), o, &dev).unwrap();
        let one = in_pool(1, || {
            linear(
                &x,
                &w,
                Some(&bias),
                1.0,
                Epilogue::None,
                sgemm::Compute::F32,
            )
            .unwrap()
            .unwrap()
        });
        let three = in_pool(3, || {
            linear(
                &x,
                &w,
                Some(&bias),
                1.0,
                Epilogue::None,
                sgemm::Compute::F32,
            )
            .unwrap()
            .unwrap()
        });
        let (one, three) = (
            one.flatten_all().unwrap().to_vec1::<f32>().unwrap(),
            three.flatten_all().unwrap().to_vec1::<f32>().unwrap(),
        );
        assert!(one == three, "thread count changed the linear's output");
        // 16-bit activations and weights: read widened (a whole product's weights, or, for
        // a few rows, in place by the kernel), the f32 result rounded once.
        let bits = |t: &Tensor| {
            t.flatten_all()
                .unwrap()
                .to_dtype(DType::F32)
                .unwrap()
                .to_vec1::<f32>()
                .unwrap()
        };
        let wide = |t: &Tensor| t.to_dtype(DType::F32).unwrap();
        for (dt, rows) in [
            (DType::BF16, n),
            (DType::F16, n),
            (DType::BF16, 3),
            (DType::F16, 1),
        ] {
            let to = |t: &Tensor| t.to_dtype(dt).unwrap();
            let (x16, w16, b16) = (to(&x.narrow(0, 0, rows).unwrap()), to(&w), to(&bias));
            let r16 = to(&Tensor::from_vec(data(rows * o, 4), (rows, o), &dev).unwrap());
            let (r32, b32) = (wide(&r16), wide(&b16));
            for (epi16, epi32) in [
                (Epilogue::Relu, Epilogue::Relu),
                (Epilogue::Residual(&r16), Epilogue::Residual(&r32)),
            ] {
                let f32_ = sgemm::Compute::F32;
                let got = linear(&x16, &w16, Some(&b16), 0.5, epi16, f32_)
                    .unwrap()
                    .unwrap();
                assert_eq!(got.dtype(), dt);
                let want = linear(&wide(&x16), &wide(&w16), Some(&b32), 0.5, epi32, f32_)
                    .unwrap()
                    .unwrap();
                assert_eq!(
                    bits(&got),
                    bits(&to(&want)),
                    "{dt:?}, {rows} rows, {epi16:?}"
                );
            }
        }
        // Another dtype / not contiguous: the caller falls back to candle.
        let xu = x.to_dtype(DType::U32).unwrap();
        assert!(
            linear(&xu, &w, None, 1.0, Epilogue::None, sgemm::Compute::F32)
                .unwrap()
                .is_none()
        );
        assert!(linear(
            &x.t().unwrap(),
            &w,
            None,
            1.0,
            Epilogue::None,
            sgemm::Compute::F32
        )
        .unwrap()
        .is_none());
    }

    /// The LayerNorm fast path agrees with candle's kernel on ordinary rows (to the rounding
    /// of the two summation orders), does not depend on the thread count, and falls back on
    /// shapes it does not take.
    #[test]
    fn layer_norm_matches_candle_and_ignores_thread_count() {
        let dev = Device::Cpu;
        let (rows, dim) = (70, 96);
        let x = Tensor::from_vec(data(rows * dim, 1), (2, rows / 2, dim), &dev).unwrap();
        let w = Tensor::from_vec(data(dim, 2), dim, &dev).unwrap();
        let b = Tensor::from_vec(data(dim, 3), dim, &dev).unwrap();
        let want = candle_nn::ops::layer_norm(&x, &w, &b, 1e-5).unwrap();
        let got = layer_norm(&x, &w, &b, 1e-5).unwrap().unwrap();
        assert_eq!(got.dims(), x.dims());
        assert!(max_abs_diff(&got, &want) < 1e-5);
        let flat = |t: Tensor| t.flatten_all().unwrap().to_vec1::<f32>().unwrap();
        let one = in_pool(1, || layer_norm(&x, &w, &b, 1e-5).unwrap().unwrap());
        let two = in_pool(2, || layer_norm(&x, &w, &b, 1e-5).unwrap().unwrap());
        assert!(flat(one) == flat(two), "thread count changed the LayerNorm");
        let short = w.narrow(0, 0, dim - 1).unwrap();
        assert!(layer_norm(&x, &short, &b, 1e-5).unwrap().is_none());
        // 16-bit rows and parameters: read widened, the f32 result rounded once.
        for dt in [DType::BF16, DType::F16] {
            let to = |t: &Tensor| t.to_dtype(dt).unwrap();
            let wide = |t: &Tensor| t.to_dtype(DType::F32).unwrap();
            let (x16, w16, b16) = (to(&x), to(&w), to(&b));
            let got = layer_norm(&x16, &w16, &b16, 1e-5).unwrap().unwrap();
            assert_eq!(got.dtype(), dt);
            let want = layer_norm(&wide(&x16), &wide(&w16), &wide(&b16), 1e-5)
                .unwrap()
                .unwrap();
            assert!(flat(wide(&got)) == flat(wide(&to(&want))), "{dt:?}");
        }
    }
}
