//! The KV cache written in place ([`zo_models::opt::KvCache`]: buffers grown by doubling, new
//! positions appended where they go): a sequence fed in pieces of every size, through several
//! reallocations, gives the hidden states of one forward over the whole sequence, and a cache
//! split by `select_rows` serves each row's continuation as its own forward would.
//! (`tests/candle_ops.rs` runs these checks on candle's ops too, where "bit for bit" becomes
//! "within rounding".)

mod common;

use candle_core::{DType, Device, Tensor};
use zo_models::opt::KvCache;
use zo_models::OptModel;

fn tiny() -> OptModel {
    tiny_in(DType::F32)
}

/// The tiny fixture model with its weights and activations in `dtype` (`model.dtype`).
fn tiny_in(dtype: DType) -> OptModel {
    OptModel::from_dir(&common::tiny_opt(), dtype, &Device::Cpu).unwrap()
}

/// The storage types whose KV cache the CPU kernels read (bf16/f16 widened exactly).
const DTYPES: [DType; 3] = [DType::F32, DType::BF16, DType::F16];

fn vals(x: &Tensor) -> Vec<f64> {
    common::vec_of(x)
}

/// How far apart two orders of computation may land on candle's ops
/// ([`common::assert_same_or_close`]; on zo's kernels they give the same bits): f32 rounding
/// (seen: ≤ 3e-6), or activations rounded to 16 bits after every op, a few units in the last
/// place of values up to ≈ 8 (seen: ≤ 4e-3 in f16, 2e-5 in bf16).
fn tol(dtype: DType) -> f64 {
    match dtype {
        DType::F32 => 1e-5,
        _ => 0.05,
    }
}

/// Bit for bit, in every storage type: a position's attention reads the keys it sees with
/// the same arithmetic whether they came from the cache or from the same pass.
#[test]
fn pieces_through_reallocations_give_the_whole_forward() {
    common::select_ops();
    for dtype in DTYPES {
        let m = tiny_in(dtype);
        let ids: Vec<u32> = (0..23).map(|i| 4 + (i * 37) % 90).collect();
        let full = m.forward_hidden(&ids, &[1; 23], 1, 23).unwrap();
        // 5 positions, then single steps and a few longer pieces: the buffers grow 5 → 10 → 20 → 40.
        let mut cache = KvCache::default();
        let mut parts = Vec::new();
        let mut at = 0;
        for len in [5, 1, 1, 1, 1, 1, 3, 1, 6, 1, 2] {
            let h = m
                .forward_hidden_cached(&ids[at..at + len], &vec![1; len], 1, len, &mut cache)
                .unwrap();
            parts.push(h);
            at += len;
            assert_eq!(cache.len(), at);
        }
        assert_eq!(at, 23);
        let both = Tensor::cat(&parts.iter().collect::<Vec<_>>(), 0).unwrap();
        assert_eq!(both.dtype(), dtype);
        common::assert_same_or_close(
            &vals(&both),
            &vals(&full),
            tol(dtype),
            &format!("{dtype:?}: the cached pieces against the whole forward"),
        );
    }
}

#[test]
fn selected_rows_continue_as_their_own_forwards() {
    common::select_ops();
    let m = tiny();
    let a: Vec<u32> = (0..9).map(|i| 5 + (i * 13) % 80).collect();
    let b: Vec<u32> = (0..9).map(|i| 7 + (i * 29) % 80).collect();
    // Both prompts (6 tokens) in one cache, then rows [1, 0, 1], each continued by 3 tokens.
    let mut cache = KvCache::default();
    let ids: Vec<u32> = a[..6].iter().chain(&b[..6]).copied().collect();
    m.forward_hidden_cached(&ids, &[1; 12], 2, 6, &mut cache)
        .unwrap();
    let mut sel = cache.select_rows(&[1, 0, 1]).unwrap();
    let next: Vec<u32> = b[6..]
        .iter()
        .chain(&a[6..])
        .chain(&b[6..])
        .copied()
        .collect();
    let h = m
        .forward_hidden_cached(&next, &[1; 9], 3, 3, &mut sel)
        .unwrap();
    for (r, seq) in [&b, &a, &b].into_iter().enumerate() {
        let whole = m.forward_hidden(seq, &[1; 9], 1, 9).unwrap();
        let d = common::max_abs_diff(
            &common::vec_of(&h.narrow(0, 3 * r, 3).unwrap()),
            &common::vec_of(&whole.narrow(0, 6, 3).unwrap()),
        );
        assert!(d < 1e-4, "row {r} differs by {d}");
    }
    // The original cache is untouched by the selection's appends.
    assert_eq!(cache.len(), 6);
    assert_eq!(sel.len(), 9);
}

/// A prompt pass into an empty cache (what generation and the shared-prompt scoring run) is
/// the forward without a cache at every real token, bit for bit: both go through the same
/// attention arithmetic (the prompt pass over the real tokens alone, packed; the padded
/// forward over each sequence's span of keys). The rows at padding predict nothing and are
/// not compared.
#[test]
fn a_pass_into_the_cache_gives_the_uncached_bits() {
    common::select_ops();
    for dtype in DTYPES {
        let m = tiny_in(dtype);
        let (b, t) = (3, 21);
        let ids: Vec<u32> = (0..b * t).map(|i| 4 + (i as u32 * 41) % 90).collect();
        // Row 1 left-padded by 4, row 2 by 9.
        let mask: Vec<u8> = (0..b * t)
            .map(|i| u8::from(!matches!((i / t, i % t), (1, 0..=3) | (2, 0..=8))))
            .collect();
        let plain = m.forward_hidden(&ids, &mask, b, t).unwrap();
        let mut cache = KvCache::default();
        let cached = m
            .forward_hidden_cached(&ids, &mask, b, t, &mut cache)
            .unwrap();
        let real: Vec<u32> = (0..(b * t) as u32)
            .filter(|&i| mask[i as usize] == 1)
            .collect();
        let real = Tensor::from_slice(&real, real.len(), &Device::Cpu).unwrap();
        let at_real = |x: &Tensor| vals(&x.index_select(&real, 0).unwrap());
        common::assert_same_or_close(
            &at_real(&cached),
            &at_real(&plain),
            tol(dtype),
            &format!("{dtype:?}"),
        );
    }
}

/// Greedy decoding's passes over a left-padded batch (the prompt pass into the cache, then
/// steps of one token per row) give each row the logits of decoding it alone, bit for bit:
/// the attention's softmax runs over each row's span of keys, whatever its padding. So a
/// batch of prompts decodes to the tokens each would decode to alone. bf16/f16 models too
/// (their 16-bit cache read widened by the same kernels).
#[test]
fn a_padded_batch_decodes_each_row_with_its_own_bits() {
    common::select_ops();
    for dtype in DTYPES {
        let m = tiny_in(dtype);
        assert_eq!(m.rows_independent(), !common::on_candle_ops(), "{dtype:?}");
        let lens = [21usize, 6, 17];
        let (b, t) = (lens.len(), 21);
        let prompt = |r: usize| -> Vec<u32> {
            (0..lens[r])
                .map(|i| 4 + ((r * 53 + i * 41) % 90) as u32)
                .collect()
        };
        let (mut ids, mut mask) = (Vec::new(), Vec::new());
        for (r, &n) in lens.iter().enumerate() {
            ids.extend(std::iter::repeat_n(1, t - n).chain(prompt(r)));
            mask.extend(std::iter::repeat_n(0u8, t - n).chain(std::iter::repeat_n(1, n)));
        }
        let steps: Vec<Vec<u32>> = (0..4)
            .map(|s| (0..b).map(|r| 5 + ((s * 7 + r * 11) % 80) as u32).collect())
            .collect();
        let mut cache = KvCache::default();
        let h = m
            .forward_hidden_cached(&ids, &mask, b, t, &mut cache)
            .unwrap();
        let last: Vec<u32> = (0..b).map(|r| (r * t + t - 1) as u32).collect();
        let mut batched = vec![vals(&m.logits_for_rows(&h, &last).unwrap())];
        for step in &steps {
            let h = m
                .forward_hidden_cached(step, &vec![1; b], b, 1, &mut cache)
                .unwrap();
            batched.push(vals(&m.logits_from_hidden(&h).unwrap()));
        }
        let vocab = m.config().vocab_size;
        for r in 0..b {
            let p = prompt(r);
            let mut alone = KvCache::default();
            let h = m
                .forward_hidden_cached(&p, &vec![1; p.len()], 1, p.len(), &mut alone)
                .unwrap();
            let mut want = vec![vals(&m.logits_for_rows(&h, &[p.len() as u32 - 1]).unwrap())];
            for step in &steps {
                let h = m
                    .forward_hidden_cached(&step[r..r + 1], &[1], 1, 1, &mut alone)
                    .unwrap();
                want.push(vals(&m.logits_from_hidden(&h).unwrap()));
            }
            for (s, (got, want)) in batched.iter().zip(&want).enumerate() {
                common::assert_same_or_close(
                    &got[r * vocab..(r + 1) * vocab],
                    want,
                    tol(dtype),
                    &format!("{dtype:?}: row {r}, pass {s}"),
                );
            }
        }
    }
}

/// Decoding prompts together gives each the tokens it decodes to alone, its budget included:
/// a short prompt beside one near the model's last position still gets its `max_new_tokens`.
#[test]
fn a_batch_decodes_each_prompt_as_alone_within_its_own_budget() {
    common::select_ops();
    use zo_models::opt::{Config, Preset};
    use zo_models::scoring::{greedy_generate, greedy_generate_batch, GenerateOptions};
    let mut c = Config::preset(Preset::Tiny);
    c.vocab_size = 96;
    c.max_position_embeddings = 24;
    for dtype in DTYPES {
        let m = OptModel::random(&c, 5, dtype, &Device::Cpu).unwrap();
        let prompts: Vec<Vec<u32>> = [20usize, 6, 13]
            .iter()
            .enumerate()
            .map(|(r, &n)| (0..n).map(|i| 4 + ((r * 31 + i * 7) % 90) as u32).collect())
            .collect();
        // No stop token: every row runs to its budget (24 − 20 = 4, then 10 and 10).
        let opts = GenerateOptions {
            max_new_tokens: 10,
            stop_ids: vec![],
        };
        let together = greedy_generate_batch(&m, &prompts, &opts).unwrap();
        let lens: Vec<usize> = together.iter().map(Vec::len).collect();
        assert_eq!(lens, [4, 10, 10]);
        for (p, got) in prompts.iter().zip(&together) {
            assert_eq!(got, &greedy_generate(&m, p, &opts).unwrap(), "{dtype:?}");
        }
    }
}

/// A prompt pass whose rows are all padding (no real token: nothing to pack) runs, and a
/// real token after it sees no key but its own.
#[test]
fn a_pass_of_padding_alone_runs() {
    common::select_ops();
    let m = tiny();
    let mut cache = KvCache::default();
    let h = m
        .forward_hidden_cached(&[1, 1, 1, 1], &[0; 4], 2, 2, &mut cache)
        .unwrap();
    assert_eq!(h.dims()[0], 4);
    let h = m
        .forward_hidden_cached(&[5, 6], &[1, 1], 2, 1, &mut cache)
        .unwrap();
    let alone = m.forward_hidden(&[5], &[1], 1, 1).unwrap();
    let d = common::max_abs_diff(
        &common::vec_of(&h.narrow(0, 0, 1).unwrap()),
        &common::vec_of(&alone),
    );
    assert!(d < 1e-5, "{d}");
}
