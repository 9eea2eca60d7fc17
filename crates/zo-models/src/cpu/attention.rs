//! Multi-head attention on f32 CPU tensors, per (sequence, head) as rayon tasks: without a
//! cache ([`attention`], the keys and values as strided views of the `[b·t, h]` projections)
//! and over a KV cache's per-head buffers read in place ([`attention_cached`]), both through
//! the same arithmetic ([`super::attn`]'s register-tiled products and
//! [`crate::rows::softmax_rows`]), so a query's output does not depend on whether its keys came
//! from a cache.

use candle_core::{CpuStorage, DType, Device, Storage, Tensor};
use rayon::prelude::*;

use super::{attn, with_f32};
use crate::rows::softmax_rows;
use crate::Result;

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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cpu::tests::{data, max_abs_diff};
    use crate::sgemm::tests::in_pool;

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
}
