//! Prefix tuning (MeZO's `--prefix_tuning`) and the untied head (`--untie_emb`) against the
//! fixture `tests/fixtures/prefix/` made by `make_prefix_fixture.py` with transformers and
//! PEFT: the real-activation initialisation, the forward with a prefix, PEFT's saved layout
//! both ways; and the forward paths of a prefixed model agreeing with each other.

mod common;

use candle_core::{DType, Device, Tensor};
use zo_core::ParamSet;
use zo_models::opt::{Config, KvCache, PrefixSpec};
use zo_models::OptModel;

fn expected() -> serde_json::Value {
    common::read_json(&common::fixture("prefix/expected.json"))
}

fn tiny() -> OptModel {
    OptModel::from_dir(&common::tiny_opt(), DType::F32, &Device::Cpu).unwrap()
}

fn ids_of(v: &serde_json::Value) -> Vec<u32> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_u64().unwrap() as u32)
        .collect()
}

/// The logits of one unpadded sequence, `[T, vocab]` as rows.
fn logit_rows(m: &OptModel, ids: &[u32]) -> Vec<Vec<f64>> {
    let t = ids.len();
    let l = m.logits(ids, &vec![1; t], 1, t).unwrap();
    (0..t)
        .map(|i| common::vec_of(&l.get(0).unwrap().get(i).unwrap()))
        .collect()
}

fn logsumexp(row: &[f64]) -> f64 {
    let m = row.iter().copied().fold(f64::MIN, f64::max);
    m + row.iter().map(|x| (x - m).exp()).sum::<f64>().ln()
}

/// Checks `m`'s logits on the fixture's input against transformers' MeZO-semantics logits.
fn assert_fixture_logits(m: &OptModel, what: &str) {
    let e = expected();
    let rows = logit_rows(m, &ids_of(&e["input_ids"]));
    for (pos, want) in e["logits_rows"].as_object().unwrap() {
        let got = &rows[pos.parse::<usize>().unwrap()];
        let d = common::max_abs_diff(got, &common::f64_vec(want));
        assert!(d < 2e-4, "{what}: logits at position {pos} differ by {d}");
    }
    let lse: Vec<f64> = rows.iter().map(|r| logsumexp(r)).collect();
    let d = common::max_abs_diff(&lse, &common::f64_vec(&e["logsumexp"]));
    assert!(d < 2e-4, "{what}: logsumexp differs by {d}");
}

fn spec(p: usize) -> PrefixSpec {
    PrefixSpec {
        num_prefix: p,
        reparam: false,
    }
}

#[test]
fn real_activation_init_matches_mezo_expression() {
    common::select_ops();
    let e = expected();
    let m = tiny();
    let set = m.prefix_from_tokens(&ids_of(&e["init_tokens"])).unwrap();
    for (l, (k, v)) in e["prefix_keys"]
        .as_array()
        .unwrap()
        .iter()
        .zip(e["prefix_values"].as_array().unwrap())
        .enumerate()
    {
        let a = format!("model.decoder.layers.{l}.self_attn");
        let dk = common::max_abs_diff(
            &common::vec_of(set.get(&format!("{a}.prefix_keys")).unwrap()),
            &common::f64_vec(k),
        );
        let dv = common::max_abs_diff(
            &common::vec_of(set.get(&format!("{a}.prefix_values")).unwrap()),
            &common::f64_vec(v),
        );
        assert!(dk < 1e-5 && dv < 1e-5, "layer {l}: keys {dk}, values {dv}");
    }
}

#[test]
fn prefixed_forward_matches_transformers_and_peft_loads_both_ways() {
    common::select_ops();
    let e = expected();
    let p = e["num_prefix"].as_u64().unwrap() as usize;
    let base = tiny();
    let plain = logit_rows(&base, &ids_of(&e["input_ids"]));
    let set = base.prefix_from_tokens(&ids_of(&e["init_tokens"])).unwrap();
    let m = base.clone().with_prefix(&spec(p), set).unwrap();
    assert_fixture_logits(&m, "zo's prefix");
    // The prefix changes the output (else the comparison above proves nothing).
    let rows = logit_rows(&m, &ids_of(&e["input_ids"]));
    assert!(common::max_abs_diff(&rows[0], &plain[0]) > 1e-3);

    // PEFT's own save loads, with the same result.
    let from_peft = base
        .clone()
        .load_adapter(&common::fixture("prefix/peft"))
        .unwrap();
    assert_eq!(from_peft.prefix(), Some(&spec(p)));
    assert_fixture_logits(&from_peft, "PEFT's save");

    // zo's save holds PEFT's tensor under PEFT's name, and reloads to the same prefix.
    let dir = tempfile::tempdir().unwrap();
    m.save_adapter(dir.path(), "tiny-opt").unwrap();
    let ours = zo_models::opt::load::read_safetensors_file(
        &dir.path().join("adapter_model.safetensors"),
        &Device::Cpu,
    )
    .unwrap();
    let theirs = zo_models::opt::load::read_safetensors_file(
        &common::fixture("prefix/peft/adapter_model.safetensors"),
        &Device::Cpu,
    )
    .unwrap();
    assert_eq!(ours.len(), 1);
    assert_eq!(ours[0].0, theirs[0].0);
    assert_eq!(ours[0].1.dims(), theirs[0].1.dims());
    assert!(
        common::max_abs_diff(&common::vec_of(&ours[0].1), &common::vec_of(&theirs[0].1)) < 1e-5
    );
    let cfg: serde_json::Value = common::read_json(&dir.path().join("adapter_config.json"));
    assert_eq!(cfg["peft_type"], "PREFIX_TUNING");
    assert_eq!(cfg["num_virtual_tokens"], p);
    let back = base.load_adapter(dir.path()).unwrap();
    assert_eq!(logit_rows(&back, &ids_of(&e["input_ids"])), rows);
}

/// A prefixed model: the full forward, the rows-only forward, a left-padded batch and a
/// cached prompt + continuation give the same hidden states.
#[test]
fn prefixed_forward_paths_agree() {
    common::select_ops();
    let base = tiny();
    let sp = spec(4);
    let set = base.init_prefix(&sp, 3, true).unwrap();
    // (On candle's ops no model claims it: the padded forward serves every batch.)
    assert_eq!(base.rows_independent(), !common::on_candle_ops());
    let m = base.with_prefix(&sp, set).unwrap();
    // A prefix's keys sit before a row's padding: batching may change its bits.
    assert!(!m.rows_independent());
    let ids = [2u32, 40, 41, 42, 43, 44, 45];
    let t = ids.len();
    let full = m.forward_hidden(&ids, &[1; 7], 1, t).unwrap();
    // Rows only (the last row, as a classification loss asks).
    let last = m
        .forward_hidden_rows(&ids, &[1; 7], 1, t, &[t as u32 - 1])
        .unwrap();
    let d = common::max_abs_diff(
        &common::vec_of(&last),
        &common::vec_of(&full.get(t - 1).unwrap()),
    );
    assert!(d < 1e-4, "rows-only forward differs by {d}");
    // Left padding in a batch with a longer row.
    let mut pids = vec![1u32, 1];
    pids.extend_from_slice(&ids);
    pids.extend_from_slice(&[2, 50, 51, 52, 53, 54, 55, 56, 57]);
    let mut pmask = vec![0u8, 0];
    pmask.extend_from_slice(&[1; 7]);
    pmask.extend_from_slice(&[1; 9]);
    let padded = m.forward_hidden(&pids, &pmask, 2, 9).unwrap();
    let d = common::max_abs_diff(
        &common::vec_of(&padded.narrow(0, 2, 7).unwrap()),
        &common::vec_of(&full),
    );
    assert!(d < 1e-4, "left-padded row differs by {d}");
    // A cached prompt, then the continuation.
    let mut cache = KvCache::default();
    let h1 = m
        .forward_hidden_cached(&ids[..4], &[1; 4], 1, 4, &mut cache)
        .unwrap();
    let h2 = m
        .forward_hidden_cached(&ids[4..], &[1; 3], 1, 3, &mut cache)
        .unwrap();
    let both = Tensor::cat(&[&h1, &h2], 0).unwrap();
    let d = common::max_abs_diff(&common::vec_of(&both), &common::vec_of(&full));
    assert!(d < 1e-4, "cached forward differs by {d}");
}

#[test]
fn reparameterised_prefix_round_trips_and_changes_the_output() {
    common::select_ops();
    let base = tiny();
    let sp = PrefixSpec {
        num_prefix: 5,
        reparam: true,
    };
    assert!(
        base.init_prefix(&sp, 1, true).is_err(),
        "MeZO forbids real activations with the reparameterisation"
    );
    let set = base.init_prefix(&sp, 1, false).unwrap();
    let names = set.names();
    assert!(names.contains(&"model.decoder.layers.0.self_attn.prefix_input_embeds".to_string()));
    assert!(
        names.contains(&"model.decoder.layers.1.self_attn.prefix_mlp_values.2.bias".to_string())
    );
    assert_eq!(
        set.get("model.decoder.layers.1.self_attn.prefix_mlp_keys.0.weight")
            .unwrap()
            .dims(),
        &[512, 512]
    );
    let m = base.clone().with_prefix(&sp, set).unwrap();
    let ids = [2u32, 9, 8, 7];
    let rows = logit_rows(&m, &ids);
    assert!(common::max_abs_diff(&rows[3], &logit_rows(&base, &ids)[3]) > 1e-3);
    let dir = tempfile::tempdir().unwrap();
    m.save_adapter(dir.path(), "tiny-opt").unwrap();
    assert!(dir.path().join("zo_prefix_reparam.safetensors").is_file());
    let back = base.clone().load_adapter(dir.path()).unwrap();
    assert_eq!(back.prefix(), Some(&sp));
    assert_eq!(back.params().names(), m.params().names());
    assert_eq!(logit_rows(&back, &ids), rows);
    // Without its own tensors the directory is a direct prefix holding the computed keys and
    // values: the same output (what PEFT runs).
    std::fs::remove_file(dir.path().join("zo_prefix_reparam.safetensors")).unwrap();
    let direct = base.load_adapter(dir.path()).unwrap();
    assert_eq!(direct.prefix(), Some(&spec(5)));
    let d = common::max_abs_diff(&logit_rows(&direct, &ids)[3], &rows[3]);
    assert!(d < 1e-5, "computed keys/values give {d}");
}

#[test]
fn prefix_is_the_only_trainable_set_and_cannot_be_merged() {
    common::select_ops();
    let base = tiny();
    let sp = spec(2);
    let set = base.init_prefix(&sp, 5, false).unwrap();
    let m = base.clone().with_prefix(&sp, set.clone()).unwrap();
    assert_eq!(m.params().names(), set.names());
    assert_eq!(m.base_params().len(), base.params().len());
    assert!(m.merged().is_err());
    assert!(m.clone().with_trainable(&["fc1".into()]).is_err());
    // A prefix of the wrong shape is refused with the tensor's name.
    let bad = ParamSet::new(vec![(
        "model.decoder.layers.0.self_attn.prefix_keys".to_string(),
        Tensor::zeros((2, 3), DType::F32, &Device::Cpu).unwrap(),
    )])
    .unwrap();
    let err = base.with_prefix(&sp, bad).unwrap_err().to_string();
    assert!(err.contains("prefix_"), "{err}");
}

#[test]
fn untied_head_starts_equal_then_trains_alone() {
    common::select_ops();
    let base = tiny();
    let ids = [2u32, 30, 31, 32];
    let before = logit_rows(&base, &ids);
    let m = base.clone().untied().unwrap();
    assert!(!m.config().tie_word_embeddings);
    assert_eq!(
        logit_rows(&m, &ids),
        before,
        "an untied copy computes the same"
    );
    let m = m.with_trainable(&["lm_head".into()]).unwrap();
    assert_eq!(m.params().names(), vec!["lm_head.weight".to_string()]);
    // Writing the head leaves the embeddings (and so the input side) alone.
    let head = m.params().get("lm_head.weight").unwrap();
    let emb = m
        .base_params()
        .get("model.decoder.embed_tokens.weight")
        .unwrap()
        .copy()
        .unwrap();
    let halved =
        ParamSet::new(vec![("lm_head.weight".to_string(), (head * 0.5).unwrap())]).unwrap();
    m.params().assign_from(&halved).unwrap();
    let after = m
        .base_params()
        .get("model.decoder.embed_tokens.weight")
        .unwrap();
    assert_eq!(common::vec_of(after), common::vec_of(&emb));
    assert_ne!(common::vec_of(head), common::vec_of(&emb));
    // Saved and reloaded: config.json says untied and lm_head.weight is read back.
    let dir = tempfile::tempdir().unwrap();
    m.save_pretrained(dir.path(), None, &Default::default())
        .unwrap();
    let cfg = Config::from_file(&dir.path().join("config.json")).unwrap();
    assert!(!cfg.tie_word_embeddings);
    let back = OptModel::from_dir(dir.path(), DType::F32, &Device::Cpu).unwrap();
    assert_eq!(logit_rows(&back, &ids), logit_rows(&m, &ids));
    // An untied config without lm_head.weight is an error naming the tensor.
    std::fs::copy(
        common::tiny_opt().join("model.safetensors"),
        dir.path().join("model.safetensors"),
    )
    .unwrap();
    let err = OptModel::from_dir(dir.path(), DType::F32, &Device::Cpu)
        .unwrap_err()
        .to_string();
    assert!(err.contains("lm_head.weight"), "{err}");
}

/// The prefix tensors' names and shapes are those of MeZO's `PrefixTuning` on opt-125m's
/// shapes, both parameterisations (vectors by `fixtures/make_mezo_prefix_vectors.py` from
/// MeZO's `large_models/prefix.py`).
#[test]
fn prefix_tensor_names_and_shapes_match_mezo() {
    common::select_ops();
    let v: serde_json::Value =
        serde_json::from_str(include_str!("fixtures/mezo_prefix_vectors.json")).unwrap();
    let cfg = Config::preset(zo_models::opt::Preset::Opt125m);
    assert_eq!(v["config"]["hidden_size"], cfg.hidden_size);
    assert_eq!(v["config"]["num_hidden_layers"], cfg.num_hidden_layers);
    for (key, reparam) in [("direct", false), ("reparam", true)] {
        let want: Vec<(String, Vec<usize>)> = serde_json::from_value(v[key].clone()).unwrap();
        let sp = PrefixSpec {
            num_prefix: v["num_prefix"].as_u64().unwrap() as usize,
            reparam,
        };
        assert_eq!(sp.expected_params(&cfg), want, "{key}");
    }
}
