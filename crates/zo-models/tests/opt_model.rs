//! Properties of the OPT model that are not about matching transformers: no backprop graph,
//! shared parameter storage, deterministic random init, named errors on bad inputs.

mod common;

use candle_core::{DType, Device, Tensor};
use common::*;
use zo_core::ParamSet;
use zo_models::opt::{Config, Preset};
use zo_models::scoring::lm_loss;
use zo_models::{Batch, Error, OptModel};

fn tiny_cfg() -> Config {
    let mut c = Config::preset(Preset::Tiny);
    c.vocab_size = 512;
    c.max_position_embeddings = 64;
    c
}

fn some_batch() -> Batch {
    Batch::left_padded(&[vec![0, 5, 6, 7, 8], vec![0, 9, 10]], &[2, 1], 1, Some(8)).unwrap()
}

#[test]
fn forward_outputs_do_not_track_a_graph() {
    let m = OptModel::random(&tiny_cfg(), 1, DType::F32, &Device::Cpu).unwrap();
    assert!(m.params().tensors().iter().all(|t| !t.track_op()));
    let b = some_batch();
    let h = m
        .forward_hidden(&b.ids, &b.mask, b.batch, b.seq_len)
        .unwrap();
    assert!(!h.track_op(), "hidden states record a backprop graph");
    let logits = m.logits_for_rows(&h, &[3, 7, 15]).unwrap();
    assert!(!logits.track_op(), "logits record a backprop graph");
    assert_eq!(logits.dims(), &[3, 512]);
}

#[test]
fn in_place_parameter_change_is_seen_by_the_next_forward() {
    let dir = tiny_opt();
    let m = OptModel::from_dir(&dir, DType::F32, &Device::Cpu).unwrap();
    let b = some_batch();
    let before = lm_loss(&m, &b).unwrap();

    // New values for one tensor, written into the model's own storage (no rebuild).
    let name = "model.decoder.layers.1.fc2.weight";
    let items: Vec<(String, Tensor)> = m
        .params()
        .iter()
        .map(|(_, n, t)| {
            let t = if n == name {
                (t * 1.5).unwrap()
            } else {
                t.copy().unwrap()
            };
            (n.to_string(), t)
        })
        .collect();
    let target = ParamSet::new(items).unwrap();
    m.params().assign_from(&target).unwrap();
    let after = lm_loss(&m, &b).unwrap();
    assert!(
        (after - before).abs() > 1e-4,
        "the forward did not see the change"
    );

    // Same as a model built from scratch on the new values.
    let fresh = OptModel::new(m.config().clone(), target.deep_clone().unwrap()).unwrap();
    assert_eq!(lm_loss(&fresh, &b).unwrap(), after);
}

#[test]
fn random_init_is_deterministic_and_hf_like() {
    let cfg = tiny_cfg();
    let a = OptModel::random(&cfg, 7, DType::F32, &Device::Cpu).unwrap();
    let b = OptModel::random(&cfg, 7, DType::F32, &Device::Cpu).unwrap();
    let c = OptModel::random(&cfg, 8, DType::F32, &Device::Cpu).unwrap();
    let emb = "model.decoder.embed_tokens.weight";
    let va = a.params().get(emb).unwrap().to_vec2::<f32>().unwrap();
    assert_eq!(va, b.params().get(emb).unwrap().to_vec2::<f32>().unwrap());
    assert_ne!(va, c.params().get(emb).unwrap().to_vec2::<f32>().unwrap());
    assert!(
        va[1].iter().all(|&x| x == 0.0),
        "pad row is zero (padding_idx)"
    );
    let std = (va
        .iter()
        .flatten()
        .map(|&x| (x as f64).powi(2))
        .sum::<f64>()
        / (va.len() * va[0].len()) as f64)
        .sqrt();
    assert!((std - 0.02).abs() < 0.002, "std {std}");
    let ln = a
        .params()
        .get("model.decoder.layers.0.final_layer_norm.weight")
        .unwrap();
    assert!(ln.to_vec1::<f32>().unwrap().iter().all(|&x| x == 1.0));
    // A random OPT predicts ~uniformly: loss ≈ ln(vocab).
    let loss = lm_loss(&a, &some_batch()).unwrap();
    assert!((loss - (512f64).ln()).abs() < 0.5, "loss {loss}");
    // bf16 model: same values rounded.
    let h = OptModel::random(&cfg, 7, DType::BF16, &Device::Cpu).unwrap();
    assert_eq!(h.params().dtype(), Some(DType::BF16));
}

#[test]
fn new_rejects_missing_extra_and_misshapen_parameters() {
    let cfg = tiny_cfg();
    let m = OptModel::random(&cfg, 1, DType::F32, &Device::Cpu).unwrap();
    let all: Vec<(String, Tensor)> = m
        .params()
        .iter()
        .map(|(_, n, t)| (n.to_string(), t.clone()))
        .collect();

    let missing = ParamSet::new(
        all.iter()
            .filter(|(n, _)| !n.ends_with("fc1.bias"))
            .cloned(),
    )
    .unwrap();
    let e = OptModel::new(cfg.clone(), missing).unwrap_err();
    assert!(
        matches!(&e, Error::MissingTensor { tensor, .. } if tensor.ends_with("fc1.bias")),
        "{e}"
    );

    let mut extra = all.clone();
    extra.push((
        "model.decoder.layers.9.fc1.bias".into(),
        Tensor::zeros(256, DType::F32, &Device::Cpu).unwrap(),
    ));
    let e = OptModel::new(cfg.clone(), ParamSet::new(extra).unwrap()).unwrap_err();
    assert!(
        matches!(&e, Error::UnexpectedTensor { tensor, .. } if tensor == "model.decoder.layers.9.fc1.bias"),
        "{e}"
    );

    let bad: Vec<(String, Tensor)> = all
        .iter()
        .map(|(n, t)| {
            if n.ends_with("layers.0.fc1.weight") {
                (
                    n.clone(),
                    Tensor::zeros((3, 3), DType::F32, &Device::Cpu).unwrap(),
                )
            } else {
                (n.clone(), t.clone())
            }
        })
        .collect();
    let e = OptModel::new(cfg, ParamSet::new(bad).unwrap()).unwrap_err();
    assert!(
        matches!(&e, Error::ShapeMismatch { got, .. } if got == &vec![3, 3]),
        "{e}"
    );
}

#[test]
fn forward_rejects_bad_inputs_without_panicking() {
    let m = OptModel::random(&tiny_cfg(), 1, DType::F32, &Device::Cpu).unwrap();
    assert!(matches!(
        m.forward_hidden(&[0, 1, 2], &[1, 1], 1, 3),
        Err(Error::Input(_))
    ));
    assert!(matches!(
        m.forward_hidden(&[0, 9999], &[1, 1], 1, 2),
        Err(Error::Input(_))
    ));
    let long = vec![5u32; 65];
    let e = m.forward_hidden(&long, &[1; 65], 1, 65).unwrap_err();
    assert!(e.to_string().contains("max_position_embeddings"), "{e}");
}

#[test]
fn hidden_rows_shortcut_equals_the_full_forward() {
    // The last layer computed only at a few rows (left padding, pre- and post-LN layouts).
    for dir in [fixture("postln"), fixture("nobias-bin"), tiny_opt()] {
        let m = OptModel::from_dir(&dir, DType::F32, &Device::Cpu).unwrap();
        let b = Batch::left_padded(
            &[vec![0, 5, 6, 7, 8, 9, 10], vec![0, 9, 10], vec![0, 3, 4, 5]],
            &[1, 1, 1],
            1,
            Some(8),
        )
        .unwrap();
        let rows = [7u32, 15, 23, 21];
        let full = m
            .forward_hidden(&b.ids, &b.mask, b.batch, b.seq_len)
            .unwrap();
        let idx = Tensor::new(&rows, &Device::Cpu).unwrap();
        let want = full.index_select(&idx, 0).unwrap();
        let got = m
            .forward_hidden_rows(&b.ids, &b.mask, b.batch, b.seq_len, &rows)
            .unwrap();
        let d = (want - got)
            .unwrap()
            .abs()
            .unwrap()
            .max_all()
            .unwrap()
            .to_scalar::<f32>()
            .unwrap();
        assert!(d < 1e-5, "{}: {d}", dir.display());
    }
}
