//! Multi-head attention on CPU tensors (f32, or bf16/f16 read widened exactly and the result
//! rounded once), per (sequence, head) as rayon tasks: without a
//! cache ([`attention`], the keys and values as strided views of the `[b·t, h]` projections),
//! over a KV cache's per-head buffers read in place ([`attention_cached`]) and over a packed
//! batch without padding ([`attention_packed`]), all through the same arithmetic
//! ([`super::attn`]'s register-tiled products and [`crate::rows::softmax_rows`] over the keys
//! each query sees), so a query's output depends on its keys alone: not on whether they came
//! from a cache, nor on its sequence's padding or length.

use candle_core::{DType, Tensor};
use rayon::prelude::*;

use super::{attn, tensor_of, with_data_strided, with_wide, Data};
use crate::rows::softmax_rows;
use crate::sgemm::OutPtr;
use crate::Result;

/// Where the keys and values of a head start relative to its sequence's, and the stride of
/// their rows (in floats).
#[derive(Clone, Copy, Debug)]
struct KvLayout {
    head: usize,
    row: usize,
}

/// How a task's scores start: rows of an additive mask, or a packed sequence's causal mask.
#[derive(Clone, Copy, Debug)]
enum MaskRows<'a> {
    /// `tq × tk` additive mask values, row-major.
    Given(&'a [f32]),
    /// Query `i` sees keys `0 ..= pos0 + i`, and all `tk` keys are the sequence's tokens.
    Causal { pos0: usize },
}

/// One sequence's queries against its keys (every head of them is a rayon task).
#[derive(Clone, Copy, Debug)]
struct SeqTask<'a> {
    /// First query row (of `q`, and of the output).
    q_row: usize,
    tq: usize,
    /// Offset of the sequence's first key (and value) of head 0, in floats.
    kv: usize,
    tk: usize,
    mask: MaskRows<'a>,
}

/// A sequence of a packed batch (no padding): its tokens are rows `start .. start + len` of
/// the `[N, h]` activations.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct PackedSeq {
    pub start: usize,
    pub len: usize,
}

/// Queries of one packed sequence: `tq` consecutive rows of `q` (and of the output) from
/// `q_row`, at positions `pos0 .. pos0 + tq` of sequence `seq`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct PackedQueries {
    pub q_row: usize,
    pub tq: usize,
    pub seq: usize,
    pub pos0: usize,
}

/// Multi-head attention without a cache: `q`, `k`, `v` are `[b·t, heads·d]` (queries already
/// scaled), `mask` the additive `[b, 1, t, t]` mask; returns `[b·t, heads·d]` with head `j` of
/// row `r` in columns `j·d .. (j+1)·d`, as `transpose(1, 2).reshape` gives in the candle path.
/// `None` where the tensors are not contiguous f32, bf16 or f16 on the CPU.
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
    let kv = KvLayout { head: d, row: h };
    let out = with_wide(k, |k| {
        with_wide(v, |v| {
            attention_masked(
                q,
                &Data::F32(k),
                &Data::F32(v),
                kv,
                t * h,
                mask,
                b,
                t,
                t,
                heads,
                d,
            )
        })
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
/// A bf16/f16 cache is read in place, each task widening its head's keys and values exactly
/// (the bits of the widened cache). `None` where the tensors are not f32, bf16 or f16 on the
/// CPU, or the layout is not one of rows of `d` contiguous elements.
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
    if k.dtype() != v.dtype() {
        return Ok(None);
    }
    let out = with_data_strided(k, |k, ks| {
        with_data_strided(v, |v, vs| {
            if ks != vs || ks[3] != 1 {
                return Ok(None);
            }
            let kv = KvLayout {
                head: ks[1],
                row: ks[2],
            };
            attention_masked(q, &k, &v, kv, ks[0], mask, b, tq, tk, heads, d)
        })
    });
    match out {
        Some(Some(r)) => r,
        _ => Ok(None),
    }
}

/// Multi-head attention over a packed batch (sequences one after the other, no padding):
/// `k`, `v` are `[N, heads·d]` with sequence `s`'s tokens at rows `seqs[s]`, `q` is
/// `[nq, heads·d]` (scaled) and `queries` says which sequence and positions its rows are; they
/// must cover the rows of `q` once each. Each query sees its sequence's keys up to its own
/// position. Returns `[nq, heads·d]`, the bits [`attention`] gives the same rows of the
/// sequences padded (left or right) into a batch. `None` where the tensors are not contiguous
/// f32, bf16 or f16 on the CPU.
pub(crate) fn attention_packed(
    q: &Tensor,
    k: &Tensor,
    v: &Tensor,
    seqs: &[PackedSeq],
    queries: &[PackedQueries],
    heads: usize,
    d: usize,
) -> Result<Option<Tensor>> {
    let h = heads * d;
    let (n, nq) = (k.dim(0)?, q.dim(0)?);
    if q.dims() != [nq, h] || k.dims() != [n, h] || v.dims() != k.dims() {
        return Ok(None);
    }
    // Every output row is written by exactly one task: the query blocks must tile `0..nq`.
    let mut order: Vec<&PackedQueries> = queries.iter().collect();
    order.sort_by_key(|b| b.q_row);
    let mut next = 0;
    for b in &order {
        let s = seqs.get(b.seq).copied();
        let fits = s.is_some_and(|s| s.start + s.len <= n && b.pos0 + b.tq <= s.len);
        if b.q_row != next || b.tq == 0 || !fits {
            return Err(crate::Error::Input(format!(
                "packed attention: query block {b:?} does not fit {nq} queries over {n} keys"
            )));
        }
        next += b.tq;
    }
    if next != nq {
        return Err(crate::Error::Input(format!(
            "packed attention: the query blocks cover {next} of {nq} rows"
        )));
    }
    let tasks: Vec<SeqTask<'_>> = queries
        .iter()
        .map(|b| SeqTask {
            q_row: b.q_row,
            tq: b.tq,
            kv: seqs[b.seq].start * h,
            tk: seqs[b.seq].len,
            mask: MaskRows::Causal { pos0: b.pos0 },
        })
        .collect();
    let kv = KvLayout { head: d, row: h };
    let out = with_wide(q, |q| {
        with_wide(k, |k| {
            with_wide(v, |v| {
                run_tasks(q, &Data::F32(k), &Data::F32(v), kv, &tasks, nq, heads, d)
            })
        })
    });
    Ok(match out.flatten().flatten() {
        Some(v) => Some(tensor_of(v, (nq, h), q.dtype())?),
        None => None,
    })
}

/// [`attention`] and [`attention_cached`]: sequence `bi`'s keys start at `bi · kv_seq`, its
/// queries at row `bi · tq`, its scores at the `[tq, tk]` block of the additive mask.
#[allow(clippy::too_many_arguments)]
fn attention_masked(
    q: &Tensor,
    k: &Data<'_>,
    v: &Data<'_>,
    kv: KvLayout,
    kv_seq: usize,
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
    let run = |q: &[f32], mask: &[f32]| {
        let tasks: Vec<SeqTask<'_>> = (0..b)
            .map(|bi| SeqTask {
                q_row: bi * tq,
                tq,
                kv: bi * kv_seq,
                tk,
                mask: MaskRows::Given(&mask[bi * tq * tk..(bi + 1) * tq * tk]),
            })
            .collect();
        run_tasks(q, k, v, kv, &tasks, b * tq, heads, d)
    };
    let out = with_wide(q, |q| {
        with_wide(mask, |m| {
            if mask.dtype() != DType::F16 {
                return run(q, m);
            }
            // An f16 model's mask value (f16::MIN / 2 = −32752) lies above `attn::ABSORBING`:
            // read as it is, its keys would be computed and summed (to exact zeros), with
            // other lane sums than the packed forward's, which skips them. Each masked entry
            // is read as the f32 mask value instead: the same probabilities, skipped alike.
            let f16_mask = half::f16::MIN.to_f32() / 2.0;
            let m: Vec<f32> = m
                .iter()
                .map(|&x| if x <= f16_mask { f32::MIN / 2.0 } else { x })
                .collect();
            run(q, &m)
        })
    })
    .flatten();
    Ok(match out {
        Some(v) => Some(tensor_of(v, (b * tq, h), q.dtype())?),
        None => None,
    })
}

/// The softmax of each `tk`-long score row of `s` over the keys the row sees: from its first
/// visible key to one past its last (zeros elsewhere); a row that sees no key (a padding query)
/// over all of its keys, uniform, as torch gives. A packed sequence's causal mask gives the
/// rows' spans (row `r` sees keys `0 ..= pos0 + r`); a given mask's are read from the scores,
/// whose masked entries kept the mask value.
///
/// This makes a query's bits depend on its own keys alone: the softmax's lane sums
/// ([`softmax_rows`]) start at the row's first key and end at its last, so a sequence left- or
/// right-padded, alone, packed, continued from a KV cache or followed by more tokens adds the
/// same terms in the same lanes; the products before and after are chains over single
/// elements, which the masked keys do not enter (their scores stay the mask value, their
/// probabilities are exact zeros).
fn softmax_visible(s: &mut [f32], tk: usize, mask: MaskRows<'_>) {
    for (r, row) in s.chunks_exact_mut(tk).enumerate() {
        let (lo, hi) = match mask {
            MaskRows::Causal { pos0 } => (0, (pos0 + r + 1).min(tk)),
            MaskRows::Given(_) => match row.iter().position(|&x| x > attn::ABSORBING) {
                Some(lo) => {
                    let last = row.iter().rposition(|&x| x > attn::ABSORBING);
                    (lo, last.map_or(tk, |l| l + 1))
                }
                None => (0, tk),
            },
        };
        softmax_rows(&mut row[lo..hi], hi - lo);
        row[..lo].fill(0.0);
        row[hi..].fill(0.0);
    }
}

/// One rayon task per (sequence task, head): `scores = mask + q kᵀ` (`[tq, tk]`), the softmax
/// of each row over the keys it sees, then `scores · v` into the task's rows × head
/// columns of the `[nq, heads·d]` output. The tasks' query rows must tile `0..nq`. 16-bit
/// keys and values are widened by each task, its head's `tk` rows alone ([`Data::rows`]).
#[allow(clippy::too_many_arguments)]
fn run_tasks(
    q: &[f32],
    k: &Data<'_>,
    v: &Data<'_>,
    kv: KvLayout,
    tasks: &[SeqTask<'_>],
    nq: usize,
    heads: usize,
    d: usize,
) -> Vec<f32> {
    let h = heads * d;
    // OPT's additive mask value, as the model's f32 mask holds it.
    let neg = f32::MIN / 2.0;
    // Not zero-filled: the tasks write every element (each its rows × head columns).
    let mut out: Vec<f32> = Vec::with_capacity(nq * h);
    let dst = OutPtr(out.as_mut_ptr());
    (0..tasks.len() * heads).into_par_iter().for_each(|i| {
        let (task, hi) = (&tasks[i / heads], i % heads);
        let (tq, tk) = (task.tq, task.tk);
        let base = task.q_row * h + hi * d;
        let kv_base = task.kv + hi * kv.head;
        let (mut kb, mut vb) = (Vec::new(), Vec::new());
        let (kh, ldk) = k.rows(kv_base, tk, d, kv.row, &mut kb);
        let (vh, ldv) = v.rows(kv_base, tk, d, kv.row, &mut vb);
        // Keys and values of one dtype: the same row stride.
        assert_eq!(
            ldk, ldv,
            "attention: keys and values of different storage types"
        );
        let blk = attn::Block {
            tq,
            tk,
            d,
            ldq: h,
            ldk,
            ldo: h,
        };
        // scores = mask + q_h k_hᵀ, [tq, tk]
        let mut scores = match task.mask {
            MaskRows::Given(m) => m.to_vec(),
            MaskRows::Causal { pos0 } => {
                let mut s = vec![neg; tq * tk];
                for (r, row) in s.chunks_exact_mut(tk).enumerate() {
                    row[..(pos0 + r + 1).min(tk)].fill(0.0);
                }
                s
            }
        };
        let mut kt = Vec::new();
        // q_h is the `[tq, d]` block at `base` with row stride h; k_h and v_h the `[tk, d]`
        // blocks `kh` and `vh` with row stride `ldk`.
        attn::scores(&q[base..], kh, blk, &mut kt, &mut scores);
        softmax_visible(&mut scores, tk, task.mask);
        // SAFETY: the output block (the task's rows, the columns of head hi) lies inside `out`
        // (`[nq, h]`) and is written by this task only (the tasks' rows tile `0..nq`).
        unsafe { attn::weighted_sum(&scores, vh, blk, dst.get().add(base)) };
    });
    // SAFETY: the tasks' rows tile `0..nq` and each wrote its rows × every head's columns:
    // every element of the capacity.
    unsafe { out.set_len(nq * h) };
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cpu::tests::{data, max_abs_diff};
    use crate::sgemm::tests::in_pool;
    use candle_core::Device;

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
        // A bf16/f16 cache (and queries and mask), read in place: the bits of the same
        // attention over the widened f32 tensors, rounded once.
        for dtype in [DType::BF16, DType::F16] {
            let to = |x: &Tensor| x.to_dtype(dtype).unwrap();
            let half_cache = |x: &Tensor| {
                let buf = Tensor::zeros((b, heads, cap, d), dtype, &dev).unwrap();
                buf.slice_set(&to(&x.contiguous().unwrap()), 2, 0).unwrap();
                buf.narrow(2, 0, t).unwrap()
            };
            let (k16, v16) = (half_cache(&kc), half_cache(&vc));
            assert_eq!(k16.stride()[1], cap * d);
            let wide = |x: &Tensor| to(x).to_dtype(DType::F32).unwrap();
            for (qq, mm, tq) in [(&q, &mask, t), (&q3, &m3, tq)] {
                let got = attention_cached(&to(qq), &k16, &v16, &to(mm), b, tq, heads, d)
                    .unwrap()
                    .unwrap();
                assert_eq!(got.dtype(), dtype);
                let want = attention_cached(&wide(qq), &wide(&kc), &wide(&vc), mm, b, tq, heads, d)
                    .unwrap()
                    .unwrap();
                assert_eq!(
                    bits(&got.to_dtype(DType::F32).unwrap()),
                    bits(&to(&want).to_dtype(DType::F32).unwrap()),
                    "{dtype:?}, {tq} queries"
                );
            }
        }
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

    /// The packed attention (sequences one after the other, no padding) gives the bits of the
    /// padded one at every real query, whether the padding is on the left or the right, for
    /// every query at once and for a selection of them; query blocks that do not tile the
    /// output are an error.
    #[test]
    fn packed_sequences_give_the_bits_of_their_padded_batch() {
        let dev = Device::Cpu;
        let (heads, d) = (3, 16);
        let h = heads * d;
        let lens = [37usize, 5, 40, 18];
        let t = 40;
        let neg = f32::MIN / 2.0;
        for left in [true, false] {
            let (q, k, v) = (data(4 * t * h, 3), data(4 * t * h, 4), data(4 * t * h, 5));
            // Padded row of token j of sequence b.
            let at = |b: usize, j: usize| b * t + if left { t - lens[b] + j } else { j };
            let mut m = vec![neg; 4 * t * t];
            for (b, &n) in lens.iter().enumerate() {
                for i in 0..t {
                    for j in 0..n {
                        if at(b, j) - b * t <= i {
                            m[(b * t + i) * t + at(b, j) - b * t] = 0.0;
                        }
                    }
                }
            }
            let x = |v: &Vec<f32>| Tensor::from_slice(v, (4 * t, h), &dev).unwrap();
            let mask = Tensor::from_vec(m, (4, 1, t, t), &dev).unwrap();
            let padded = attention(&x(&q), &x(&k), &x(&v), &mask, 4, t, heads, d)
                .unwrap()
                .unwrap();
            let real: Vec<u32> = (0..4)
                .flat_map(|b| (0..lens[b]).map(move |j| at(b, j) as u32))
                .collect();
            let n = real.len();
            let real_t = Tensor::from_slice(&real, n, &dev).unwrap();
            let pack = |v: &Vec<f32>| x(v).index_select(&real_t, 0).unwrap();
            let mut seqs = Vec::new();
            let mut all = Vec::new();
            for (s, &len) in lens.iter().enumerate() {
                let start = seqs.last().map_or(0, |p: &PackedSeq| p.start + p.len);
                seqs.push(PackedSeq { start, len });
                all.push(PackedQueries {
                    q_row: start,
                    tq: len,
                    seq: s,
                    pos0: 0,
                });
            }
            let (pk, pv) = (pack(&k), pack(&v));
            let got = attention_packed(&pack(&q), &pk, &pv, &seqs, &all, heads, d)
                .unwrap()
                .unwrap();
            let want = padded.index_select(&real_t, 0).unwrap();
            let bits = |x: &Tensor| -> Vec<u32> {
                let v = x.flatten_all().unwrap().to_vec1::<f32>().unwrap();
                v.iter().map(|x| x.to_bits()).collect()
            };
            assert_eq!(bits(&got), bits(&want), "left padding {left}");
            // Tokens 10..13 of sequence 2 and the last of sequence 0, in that order.
            let pick = [
                seqs[2].start + 10,
                seqs[2].start + 11,
                seqs[2].start + 12,
                36,
            ];
            let pick: Vec<u32> = pick.iter().map(|&r| r as u32).collect();
            let pick_t = Tensor::from_slice(&pick, 4, &dev).unwrap();
            let blocks = [
                PackedQueries {
                    q_row: 0,
                    tq: 3,
                    seq: 2,
                    pos0: 10,
                },
                PackedQueries {
                    q_row: 3,
                    tq: 1,
                    seq: 0,
                    pos0: 36,
                },
            ];
            let qs = pack(&q).index_select(&pick_t, 0).unwrap();
            let some = attention_packed(&qs, &pk, &pv, &seqs, &blocks, heads, d)
                .unwrap()
                .unwrap();
            assert_eq!(bits(&some), bits(&got.index_select(&pick_t, 0).unwrap()));
            // A block past its sequence's end, and blocks leaving a row unwritten.
            let past = [
                blocks[0],
                PackedQueries {
                    q_row: 3,
                    tq: 1,
                    seq: 1,
                    pos0: 5,
                },
            ];
            assert!(attention_packed(&qs, &pk, &pv, &seqs, &past, heads, d).is_err());
            assert!(attention_packed(&qs, &pk, &pv, &seqs, &blocks[..1], heads, d).is_err());
        }
    }
}
