//! The forward over a batch's real tokens alone (`forward_hidden_rows` on f32 CPU tensors
//! skips the padding's rows): it gives the padded forward's bits, and a sequence's hidden
//! states do not depend on its batch-mates or its padding, left or right (f32, bf16 and f16
//! weights).

mod common;

use candle_core::{DType, Device, Tensor};
use zo_models::opt::{Config, Preset};
use zo_models::OptModel;

/// The tiny preset (pre-LN) and a post-LN one with `project_in` / `project_out` (opt-350m's
/// structure), 16-wide heads.
fn models() -> Vec<(&'static str, OptModel)> {
    models_in(DType::F32)
}

/// [`models`] with weights and activations in `dtype` (`model.dtype`).
fn models_in(dtype: DType) -> Vec<(&'static str, OptModel)> {
    let mut pre = Config::preset(Preset::Tiny);
    pre.vocab_size = 512;
    pre.max_position_embeddings = 128;
    let mut post = pre.clone();
    post.do_layer_norm_before = false;
    post.word_embed_proj_dim = Some(32);
    [("pre-LN", pre), ("post-LN + projections", post)]
        .into_iter()
        .map(|(name, c)| (name, OptModel::random(&c, 11, dtype, &Device::Cpu).unwrap()))
        .collect()
}

/// Token `t` of sequence `i` (the first is BOS).
fn seq(i: usize, len: usize) -> Vec<u32> {
    std::iter::once(2)
        .chain((1..len).map(|t| ((i * 131 + t * 17) % 500 + 3) as u32))
        .collect()
}

/// The sequences of `lens` in a `[lens.len(), width]` batch, each padded on the left (`true`)
/// or the right: `(ids, mask)`.
fn padded(lens: &[usize], left: &[bool], width: usize) -> (Vec<u32>, Vec<u8>) {
    let (mut ids, mut mask) = (Vec::new(), Vec::new());
    for (i, (&n, &l)) in lens.iter().zip(left).enumerate() {
        let pad = width - n;
        let (p, s) = (vec![1u32; pad], seq(i, n));
        let (pm, sm) = (vec![0u8; pad], vec![1u8; n]);
        if l {
            ids.extend(p.iter().chain(&s));
            mask.extend(pm.iter().chain(&sm));
        } else {
            ids.extend(s.iter().chain(&p));
            mask.extend(sm.iter().chain(&pm));
        }
    }
    (ids, mask)
}

fn bits(x: &Tensor) -> Vec<u32> {
    x.flatten_all()
        .unwrap()
        .to_dtype(DType::F32)
        .unwrap()
        .to_vec1::<f32>()
        .unwrap()
        .iter()
        .map(|v| v.to_bits())
        .collect()
}

/// Flat row (`b·width + t`) of token `t` of sequence `b` of `padded`.
fn row(lens: &[usize], left: &[bool], width: usize, b: usize, t: usize) -> u32 {
    (b * width + if left[b] { width - lens[b] + t } else { t }) as u32
}

const LENS: [usize; 5] = [37, 5, 64, 20, 33];
const LEFT: [bool; 5] = [true, false, true, true, false];
const WIDTH: usize = 64;

#[test]
fn packed_rows_give_the_padded_forward_bits() {
    let (ids, mask) = padded(&LENS, &LEFT, WIDTH);
    let b = LENS.len();
    for (name, mut m) in models() {
        assert!(m.rows_independent(), "{name}");
        // bf16 products (rounded inputs) are not promised the same bits in every layout.
        m.set_compute(zo_models::sgemm::Compute::Bf16);
        assert!(!m.rows_independent(), "{name}");
        m.set_compute(zo_models::sgemm::Compute::F32);
        let full = m.forward_hidden(&ids, &mask, b, WIDTH).unwrap();
        // Each sequence's last token (few rows: the last layer runs at them alone), then every
        // real token (the whole forward, then the rows).
        let last: Vec<u32> = (0..b)
            .map(|i| row(&LENS, &LEFT, WIDTH, i, LENS[i] - 1))
            .collect();
        let every: Vec<u32> = (0..b)
            .flat_map(|i| (0..LENS[i]).map(move |t| row(&LENS, &LEFT, WIDTH, i, t)))
            .collect();
        for rows in [last, every] {
            let got = m.forward_hidden_rows(&ids, &mask, b, WIDTH, &rows).unwrap();
            let idx = Tensor::from_slice(&rows, rows.len(), &Device::Cpu).unwrap();
            let want = full.index_select(&idx, 0).unwrap();
            assert_eq!(bits(&got), bits(&want), "{name}, {} rows", rows.len());
        }
    }
}

/// bf16/f16 weights and activations pack too (each product, LayerNorm and attention reads its
/// 16-bit inputs widened and rounds its f32 result once): the padded forward's bits, and rows
/// independent of their batch as in f32 (the decoding steps read the 16-bit cache the same
/// way; `tests/kv_cache.rs`).
#[test]
fn sixteen_bit_packed_rows_give_the_padded_forward_bits() {
    let (ids, mask) = padded(&LENS, &LEFT, WIDTH);
    let b = LENS.len();
    for dtype in [DType::BF16, DType::F16] {
        for (name, m) in models() {
            let params = zo_core::ParamSet::new(
                m.params()
                    .iter()
                    .map(|(_, n, t)| (n.to_string(), t.to_dtype(dtype).unwrap())),
            )
            .unwrap();
            let m = OptModel::new(m.config().clone(), params).unwrap();
            assert!(m.rows_independent(), "{name} {dtype:?}");
            let full = m.forward_hidden(&ids, &mask, b, WIDTH).unwrap();
            assert_eq!(full.dtype(), dtype);
            let last: Vec<u32> = (0..b)
                .map(|i| row(&LENS, &LEFT, WIDTH, i, LENS[i] - 1))
                .collect();
            let got = m.forward_hidden_rows(&ids, &mask, b, WIDTH, &last).unwrap();
            let idx = Tensor::from_slice(&last, last.len(), &Device::Cpu).unwrap();
            let want = full.index_select(&idx, 0).unwrap();
            assert_eq!(bits(&got), bits(&want), "{name} {dtype:?}");
        }
    }
}

#[test]
fn a_sequence_has_its_own_bits_in_any_padded_batch() {
    let b = LENS.len();
    let all = [DType::F32, DType::BF16, DType::F16].map(models_in);
    for (name, m) in all.iter().flatten() {
        assert!(m.rows_independent(), "{name}");
        for (left, width) in [(LEFT, WIDTH), ([false; 5], 72), ([true; 5], 80)] {
            let (ids, mask) = padded(&LENS, &left, width);
            let rows: Vec<u32> = (0..b)
                .flat_map(|i| [0, LENS[i] / 2, LENS[i] - 1].map(|t| row(&LENS, &left, width, i, t)))
                .collect();
            let batched = m.forward_hidden_rows(&ids, &mask, b, width, &rows).unwrap();
            for (i, &n) in LENS.iter().enumerate() {
                let alone = m.forward_hidden(&seq(i, n), &vec![1; n], 1, n).unwrap();
                let idx = Tensor::from_slice(&[0u32, n as u32 / 2, n as u32 - 1], 3, &Device::Cpu)
                    .unwrap();
                let want = alone.index_select(&idx, 0).unwrap();
                let got = batched.narrow(0, 3 * i, 3).unwrap();
                assert_eq!(
                    bits(&got),
                    bits(&want),
                    "{name} {:?}: sequence {i}, width {width}",
                    m.dtype()
                );
            }
            // The padded forward too, at the same rows.
            let full = m.forward_hidden(&ids, &mask, b, width).unwrap();
            let idx = Tensor::from_slice(&rows, rows.len(), &Device::Cpu).unwrap();
            let full = full.index_select(&idx, 0).unwrap();
            assert_eq!(
                bits(&full),
                bits(&batched),
                "{name} {:?}: padded forward, width {width}",
                m.dtype()
            );
        }
    }
}

#[test]
fn a_row_at_padding_is_still_computed() {
    let (_, m) = models().remove(0);
    let (ids, mask) = padded(&LENS, &LEFT, WIDTH);
    // Row 0 is padding of sequence 0 (left-padded by 27): the padded forward serves it.
    let rows = [0u32, row(&LENS, &LEFT, WIDTH, 0, 36)];
    let got = m
        .forward_hidden_rows(&ids, &mask, LENS.len(), WIDTH, &rows)
        .unwrap();
    assert_eq!(got.dims(), &[2, 64]);
    let want = m.forward_hidden(&ids, &mask, LENS.len(), WIDTH).unwrap();
    let want = want
        .index_select(&Tensor::from_slice(&rows, 2, &Device::Cpu).unwrap(), 0)
        .unwrap();
    let d = common::max_abs_diff(&common::vec_of(&got), &common::vec_of(&want));
    assert!(d < 1e-5, "{d}");
}
