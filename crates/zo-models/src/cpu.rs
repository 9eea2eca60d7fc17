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
//! Every function returns `Ok(None)` when its inputs are not contiguous f32 CPU tensors, and the
//! caller then runs the candle ops. Determinism: the GEMMs split a product between threads over
//! output blocks only (the reduction over `k` runs in one order whatever the thread count), and
//! each attention task and LayerNorm row is single-threaded and independent of the others, so
//! results do not depend on the number of threads (tested in `tests`).

use candle_core::{CpuStorage, DType, Device, Storage, Tensor};
use gemm::{gemm, Parallelism};
use rayon::prelude::*;

use crate::rows::{max_sumexp, softmax_rows};
use crate::{sgemm, Result};

mod attn;

/// Vocabulary columns per lm_head slice of [`crate::ops::head_nll`]: `n × 4096` f32 logits (16 MB at
/// n = 1008) stay in the allocator's heap instead of a fresh 200 MB mapping per call, whose
/// page faults and memory traffic cost more than the slicing.
pub(crate) const HEAD_CHUNK: usize = 4096;

/// Runs `f` on the contiguous f32 data of a CPU tensor; `None` for another device, dtype or a
/// non-contiguous layout.
pub(crate) fn with_f32<R>(t: &Tensor, f: impl FnOnce(&[f32]) -> R) -> Option<R> {
    if t.dtype() != DType::F32 || !t.device().is_cpu() {
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
    let out = with_f32(x, |x| {
        with_f32(w, |w| {
            let b = match bias {
                Some(b) => with_f32(b, |b| Some(b.to_vec()))?,
                None => None,
            };
            let run_res = |res: Option<&[f32]>| run(x, w, b.as_deref(), res);
            match residual {
                Some(r) => with_f32(r, |r| run_res(Some(r))),
                None => Some(run_res(None)),
            }
        })
    })
    .flatten()
    .flatten();
    Ok(match out {
        Some(v) => Some(Tensor::from_vec(v, (n, o), &Device::Cpu)?),
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

/// A raw output pointer shared by tasks that write disjoint elements.
#[derive(Clone, Copy)]
struct SharedOut(*mut f32);
// SAFETY: the attention tasks write pairwise disjoint (rows, head columns) blocks.
unsafe impl Send for SharedOut {}
unsafe impl Sync for SharedOut {}

impl SharedOut {
    /// Through a method, so that closures capture the (Send) wrapper and not its raw field.
    fn ptr(self) -> *mut f32 {
        self.0
    }
}

/// Where the keys and values of each (sequence, head) pair start in their buffers, and the
/// stride of their rows (in floats).
#[derive(Clone, Copy, Debug)]
struct KvLayout {
    seq: usize,
    head: usize,
    row: usize,
}

/// Multi-head attention without a cache: `q`, `k`, `v` are `[b·t, heads·d]` (queries already
/// scaled), `mask` the additive `[b, 1, t, t]` mask; returns `[b·t, heads·d]` with head `j` of
/// row `r` in columns `j·d .. (j+1)·d`, as `transpose(1, 2).reshape` gives in the candle path.
/// `None` where the tensors are not contiguous f32 on the CPU.
#[allow(clippy::too_many_arguments)]
pub(crate) fn attention(
    q: &Tensor,
    k: &Tensor,
    v: &Tensor,
    mask: &Tensor,
    b: usize,
    t: usize,
    heads: usize,
    d: usize,
) -> Result<Option<Tensor>> {
    let h = heads * d;
    for x in [q, k, v] {
        if x.dims() != [b * t, h] {
            return Ok(None);
        }
    }
    let kv = KvLayout {
        seq: t * h,
        head: d,
        row: h,
    };
    let out = with_f32(k, |k| {
        with_f32(v, |v| attention_f32(q, k, v, kv, mask, b, t, t, heads, d))
    });
    match out {
        Some(Some(r)) => r,
        _ => Ok(None),
    }
}

/// Multi-head attention over keys and values laid out per head, `[b, heads, tk, d]` each, as a
/// KV cache holds them (a view of the live positions: the rows of a head may be strided
/// apart from the next head's): the `tq` new queries `q: [b·tq, heads·d]` (scaled), `mask` the
/// additive `[b, 1, tq, tk]` mask. Returns `[b·tq, heads·d]`, the same arithmetic as
/// [`attention`] (so a query's output does not depend on whether its keys came from a cache).
/// `None` where the tensors are not f32 on the CPU or the layout is not one of rows of `d`
/// contiguous floats.
#[allow(clippy::too_many_arguments)]
pub(crate) fn attention_cached(
    q: &Tensor,
    k: &Tensor,
    v: &Tensor,
    mask: &Tensor,
    b: usize,
    tq: usize,
    heads: usize,
    d: usize,
) -> Result<Option<Tensor>> {
    let tk = k.dim(2)?;
    if q.dims() != [b * tq, heads * d] || k.dims() != [b, heads, tk, d] || v.dims() != k.dims() {
        return Ok(None);
    }
    let out = with_f32_strided(k, |k, ks| {
        with_f32_strided(v, |v, vs| {
            if ks != vs || ks[3] != 1 {
                return Ok(None);
            }
            let kv = KvLayout {
                seq: ks[0],
                head: ks[1],
                row: ks[2],
            };
            attention_f32(q, k, v, kv, mask, b, tq, tk, heads, d)
        })
    });
    match out {
        Some(Some(r)) => r,
        _ => Ok(None),
    }
}

/// Runs `f` on the f32 data of a CPU tensor from its first element to the end of its storage,
/// with its strides; `None` for another device or dtype.
fn with_f32_strided<R>(t: &Tensor, f: impl FnOnce(&[f32], &[usize]) -> R) -> Option<R> {
    if t.dtype() != DType::F32 || !t.device().is_cpu() {
        return None;
    }
    let (storage, layout) = t.storage_and_layout();
    match &*storage {
        Storage::Cpu(CpuStorage::F32(d)) => d
            .get(layout.start_offset()..)
            .map(|d| f(d, layout.stride())),
        _ => None,
    }
}

/// The attention of [`attention`] and [`attention_cached`]: one task per (sequence, head),
/// each `scores = mask + q kᵀ` (`[tq, tk]`), the softmax of its rows, then `scores · v` into
/// the task's rows × head columns of the output.
#[allow(clippy::too_many_arguments)]
fn attention_f32(
    q: &Tensor,
    k: &[f32],
    v: &[f32],
    kv: KvLayout,
    mask: &Tensor,
    b: usize,
    tq: usize,
    tk: usize,
    heads: usize,
    d: usize,
) -> Result<Option<Tensor>> {
    let h = heads * d;
    if mask.dims() != [b, 1, tq, tk] {
        return Ok(None);
    }
    let run = |q: &[f32], mask: &[f32]| -> Vec<f32> {
        // Not zero-filled: the tasks write every element (each its rows × head columns).
        let mut out: Vec<f32> = Vec::with_capacity(b * tq * h);
        let dst = SharedOut(out.as_mut_ptr());
        (0..b * heads).into_par_iter().for_each(|task| {
            let (bi, hi) = (task / heads, task % heads);
            let base = bi * tq * h + hi * d;
            let kv_base = bi * kv.seq + hi * kv.head;
            let blk = attn::Block {
                tq,
                tk,
                d,
                ldq: h,
                ldk: kv.row,
                ldo: h,
            };
            // scores = mask + q_h k_hᵀ, [tq, tk]
            let mut scores = mask[bi * tq * tk..(bi + 1) * tq * tk].to_vec();
            let mut kt = Vec::new();
            // q_h is the `[tq, d]` block at `base` with row stride h inside `[b·tq, h]`; k_h
            // and v_h the `[tk, d]` blocks at `kv_base` with row stride `kv.row`.
            attn::scores(&q[base..], &k[kv_base..], blk, &mut kt, &mut scores);
            softmax_rows(&mut scores, tk);
            // SAFETY: the output block (rows of sequence bi, columns of head hi) lies inside
            // `out` (`[b·tq, h]`) and is written by this task only.
            unsafe { attn::weighted_sum(&scores, &v[kv_base..], blk, dst.ptr().add(base)) };
        });
        // SAFETY: the b·heads tasks wrote rows `bi·tq ..` × columns `hi·d ..` of `[b·tq, h]`,
        // together every element of the capacity.
        unsafe { out.set_len(b * tq * h) };
        out
    };
    let out = with_f32(q, |q| with_f32(mask, |m| run(q, m))).flatten();
    Ok(match out {
        Some(v) => Some(Tensor::from_vec(v, (b * tq, h), &Device::Cpu)?),
        None => None,
    })
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
    let out = with_f32(x, |x| with_f32(w, |w| with_f32(b, |b| run(x, w, b))))
        .flatten()
        .flatten();
    Ok(match out {
        Some(v) => Some(Tensor::from_vec(v, x.shape(), &Device::Cpu)?),
        None => None,
    })
}

/// Per-row NLL of `labels` under the tied lm_head `W: [vocab, E]` for hidden rows
/// `h: [n, E]`: [`crate::ops::head_nll`]'s online logsumexp over vocabulary slices of
/// [`HEAD_CHUNK`] columns, with each slice's logits written by the GEMM into one buffer reused
/// for every slice (no per-slice allocation, zero-fill or tensor round trip). Each row's
/// running `(max, Σ)` is updated by one task, slices in order, so the result does not depend
/// on the thread count.
pub(crate) fn head_nll(
    h: &Tensor,
    w: &Tensor,
    labels: &[u32],
    compute: sgemm::Compute,
) -> Result<Option<Vec<f64>>> {
    let (Ok((n, e)), Ok((vocab, e2))) = (h.dims2(), w.dims2()) else {
        return Ok(None);
    };
    if e != e2 || labels.len() != n {
        return Ok(None);
    }
    let run = |h: &[f32], w: &[f32]| -> Vec<f64> {
        // (max, Σ exp(x − max), picked logit) per row, in f64.
        let mut state = vec![(f64::NEG_INFINITY, 0f64, f64::NAN); n];
        let mut logits = vec![0f32; n * HEAD_CHUNK.min(vocab)];
        let mut v0 = 0;
        while v0 < vocab {
            let width = HEAD_CHUNK.min(vocab - v0);
            let ours = sgemm::available()
                && sgemm::sgemm_nt_compute(
                    compute,
                    n,
                    width,
                    e,
                    h,
                    &w[v0 * e..(v0 + width) * e],
                    &mut logits[..n * width],
                    &sgemm::Epilogue::PLAIN,
                );
            // SAFETY: `logits` holds at least `[n, width]`; `h` is `[n, e]` row-major; rows
            // `v0 .. v0 + width` of `w` (`[vocab, e]` row-major) are read as `[e, width]`
            // (column stride e, row stride 1).
            if !ours {
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
                        w.as_ptr().add(v0 * e),
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
                .zip(labels.par_iter())
                .for_each(|((row, st), &lab)| {
                    let (m, s) = max_sumexp(row);
                    let (m, s) = (f64::from(m), s);
                    if m > st.0 {
                        st.1 = st.1 * (st.0 - m).exp() + s;
                        st.0 = m;
                    } else {
                        st.1 += s * (m - st.0).exp();
                    }
                    if let Some(&p) = (lab as usize).checked_sub(v0).and_then(|i| row.get(i)) {
                        st.2 = f64::from(p);
                    }
                });
            v0 += width;
        }
        state.into_iter().map(|(m, s, p)| m + s.ln() - p).collect()
    };
    Ok(with_f32(h, |h| with_f32(w, |w| run(h, w))).flatten())
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::sgemm::tests::in_pool;

    fn data(n: usize, salt: usize) -> Vec<f32> {
        (0..n)
            .map(|i| (((i * 7919 + salt * 104_729) % 2003) as f32 / 1001.0 - 1.0) * 0.7)
            .collect()
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
        // Not f32 / not contiguous: the caller falls back to candle.
        let x16 = x.to_dtype(DType::F16).unwrap();
        assert!(
            linear(&x16, &w, None, 1.0, Epilogue::None, sgemm::Compute::F32)
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

    /// `q`, `k`, `v` (`[b·t, h]`, from `data` with salts `salt ..= salt + 2`) and OPT's additive
    /// causal mask `[b, 1, t, t]`, sequence 1 left-padded by `pad`.
    fn causal_inputs(
        b: usize,
        t: usize,
        h: usize,
        pad: usize,
        salt: usize,
    ) -> (Tensor, Tensor, Tensor, Tensor) {
        let dev = Device::Cpu;
        let x = |s| Tensor::from_vec(data(b * t * h, s), (b * t, h), &dev).unwrap();
        let neg = f32::MIN / 2.0;
        let mut m = vec![neg; b * t * t];
        for bi in 0..b {
            for i in 0..t {
                for j in 0..=i {
                    if !(bi == 1 && j < pad) {
                        m[(bi * t + i) * t + j] = 0.0;
                    }
                }
            }
        }
        let mask = Tensor::from_vec(m, (b, 1, t, t), &dev).unwrap();
        (x(salt), x(salt + 1), x(salt + 2), mask)
    }

    #[test]
    fn attention_matches_candle_and_ignores_thread_count() {
        let (b, t, heads, d) = (3, 13, 4, 8);
        let h = heads * d;
        // Sequence 1 left-padded by 2 (its first two query rows are fully masked).
        let (q, k, v, mask) = causal_inputs(b, t, h, 2, 7);
        let split = |x: &Tensor| {
            x.reshape((b, t, heads, d))
                .unwrap()
                .transpose(1, 2)
                .unwrap()
                .contiguous()
                .unwrap()
        };
        let scores = split(&q)
            .matmul(&split(&k).t().unwrap())
            .unwrap()
            .broadcast_add(&mask)
            .unwrap();
        let probs = candle_nn::ops::softmax_last_dim(&scores).unwrap();
        let want = probs
            .matmul(&split(&v))
            .unwrap()
            .transpose(1, 2)
            .unwrap()
            .reshape((b * t, h))
            .unwrap();
        let got = attention(&q, &k, &v, &mask, b, t, heads, d)
            .unwrap()
            .unwrap();
        assert!(max_abs_diff(&got, &want) < 1e-6);
        let one = in_pool(1, || attention(&q, &k, &v, &mask, b, t, heads, d).unwrap());
        let two = in_pool(2, || attention(&q, &k, &v, &mask, b, t, heads, d).unwrap());
        let flat = |x: Option<Tensor>| x.unwrap().flatten_all().unwrap().to_vec1::<f32>().unwrap();
        assert!(flat(one) == flat(two), "thread count changed the attention");
        // A shape that does not fit: fall back.
        assert!(attention(&q, &k, &v, &mask, b, t + 1, heads, d)
            .unwrap()
            .is_none());
    }

    /// Keys and values in a KV cache's layout (`[b, heads, capacity, d]` buffers, a view of
    /// the first `t` positions) give the bits of the same attention without a cache, for all
    /// queries at once and for the last queries alone (a decoding step's shape); a layout
    /// whose rows are not contiguous falls back.
    #[test]
    fn cached_layout_gives_the_bits_of_the_uncached_attention() {
        let dev = Device::Cpu;
        let (b, t, heads, d, cap) = (2, 37, 3, 16, 50);
        let h = heads * d;
        // Sequence 1 left-padded by 5.
        let (q, k, v, mask) = causal_inputs(b, t, h, 5, 17);
        let cached = |x: &Tensor| {
            let heads_first = x
                .reshape((b, t, heads, d))
                .unwrap()
                .transpose(1, 2)
                .unwrap()
                .contiguous()
                .unwrap();
            let buf = Tensor::full(f32::NAN, (b, heads, cap, d), &dev).unwrap();
            buf.slice_set(&heads_first, 2, 0).unwrap();
            buf.narrow(2, 0, t).unwrap()
        };
        let (kc, vc) = (cached(&k), cached(&v));
        let bits = |x: &Tensor| -> Vec<u32> {
            let v = x.flatten_all().unwrap().to_vec1::<f32>().unwrap();
            v.iter().map(|x| x.to_bits()).collect()
        };
        let plain = attention(&q, &k, &v, &mask, b, t, heads, d)
            .unwrap()
            .unwrap();
        let got = attention_cached(&q, &kc, &vc, &mask, b, t, heads, d)
            .unwrap()
            .unwrap();
        assert_eq!(bits(&got), bits(&plain), "all queries");
        // The last 3 queries of each sequence against all t keys.
        let tq = 3;
        let last = |x: &Tensor, w: usize| {
            let x = x.reshape((b, t, w)).unwrap();
            x.narrow(1, t - tq, tq).unwrap().contiguous().unwrap()
        };
        let q3 = last(&q, h).reshape((b * tq, h)).unwrap();
        let m3 = last(&mask.reshape((b, t, t)).unwrap(), t)
            .reshape((b, 1, tq, t))
            .unwrap();
        let got3 = attention_cached(&q3, &kc, &vc, &m3, b, tq, heads, d)
            .unwrap()
            .unwrap();
        let want3 = last(&plain, h).reshape((b * tq, h)).unwrap();
        assert_eq!(bits(&got3), bits(&want3), "the last queries alone");
        // Rows of a head not contiguous (a transposed view): not taken.
        let strided = kc.transpose(2, 3).unwrap().contiguous().unwrap();
        let strided = strided.transpose(2, 3).unwrap();
        assert_eq!(strided.dims(), kc.dims());
        assert_ne!(strided.stride()[3], 1);
        assert!(
            attention_cached(&q, &strided, &strided, &mask, b, t, heads, d)
                .unwrap()
                .is_none()
        );
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
    }
}
