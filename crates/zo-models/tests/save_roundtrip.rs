//! save_pretrained → from_dir round trips are bit-identical, in transformers' layout.

mod common;

use candle_core::{DType, Device};
use common::*;
use zo_models::opt::save::SaveOptions;
use zo_models::opt::{Config, Preset};
use zo_models::tokenizer::Tokenizer;
use zo_models::OptModel;

fn tiny() -> OptModel {
    let mut c = Config::preset(Preset::Tiny);
    c.vocab_size = 2048;
    c.max_position_embeddings = 128;
    OptModel::random(&c, 3, DType::F32, &Device::Cpu).unwrap()
}

fn assert_same_params(a: &OptModel, b: &OptModel) {
    assert_eq!(a.params().names(), b.params().names());
    for ((n, x), y) in a
        .params()
        .names()
        .iter()
        .zip(a.params().tensors())
        .zip(b.params().tensors())
    {
        assert_eq!(x.dtype(), y.dtype(), "{n}");
        let x = x
            .to_dtype(DType::F32)
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1::<f32>()
            .unwrap();
        let y = y
            .to_dtype(DType::F32)
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1::<f32>()
            .unwrap();
        assert!(
            x.iter().zip(&y).all(|(p, q)| p.to_bits() == q.to_bits()),
            "{n} differs"
        );
    }
}

fn file_names(dir: &std::path::Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

#[test]
fn single_file_round_trip_is_bit_identical_and_hf_shaped() {
    let m = tiny();
    let d = tempfile::tempdir().unwrap();
    let tok = Tokenizer::builtin_tiny();
    m.save_pretrained(d.path(), Some(&tok), &SaveOptions::default())
        .unwrap();
    assert_eq!(
        file_names(d.path()),
        [
            "config.json",
            "merges.txt",
            "model.safetensors",
            "special_tokens_map.json",
            "tokenizer_config.json",
            "vocab.json"
        ]
    );
    let back = OptModel::from_dir(d.path(), DType::F32, &Device::Cpu).unwrap();
    assert_same_params(&m, &back);
    assert_eq!(back.config().vocab_size, 2048);
    assert_eq!(back.config().checkpoint_dtype(), Some(DType::F32));

    // Header metadata {"format": "pt"}, HF names, no lm_head.weight.
    let bytes = std::fs::read(d.path().join("model.safetensors")).unwrap();
    let (_, meta) = safetensors::SafeTensors::read_metadata(&bytes).unwrap();
    assert_eq!(
        meta.metadata()
            .as_ref()
            .unwrap()
            .get("format")
            .map(String::as_str),
        Some("pt")
    );
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let names = st.names();
    assert!(
        names.iter().all(|n| n.starts_with("model.decoder.")),
        "{names:?}"
    );
    assert!(!names.iter().any(|n| n.contains("lm_head")));

    // The tokenizer comes back and encodes the same.
    let tok2 = Tokenizer::from_dir(d.path()).unwrap();
    let s = "the film is a delight . It was great";
    assert_eq!(tok.encode(s).unwrap(), tok2.encode(s).unwrap());
}

#[test]
fn sharded_round_trip_and_stale_files_removed() {
    let m = tiny();
    let d = tempfile::tempdir().unwrap();
    let opts = SaveOptions {
        dtype: None,
        max_shard_bytes: 200_000,
    };
    m.save_pretrained(d.path(), None, &opts).unwrap();
    let names = file_names(d.path());
    assert!(names.contains(&"model.safetensors.index.json".to_string()));
    let shards: Vec<&String> = names.iter().filter(|n| n.starts_with("model-")).collect();
    assert!(shards.len() >= 2, "{names:?}");
    let index = read_json(&d.path().join("model.safetensors.index.json"));
    assert_eq!(
        index["metadata"]["total_size"].as_u64().unwrap() as usize,
        m.params().size_in_bytes()
    );
    assert_eq!(
        index["weight_map"].as_object().unwrap().len(),
        m.params().len()
    );
    let back = OptModel::from_dir(d.path(), DType::F32, &Device::Cpu).unwrap();
    assert_same_params(&m, &back);

    // Saving again unsharded leaves no stale shard or index behind (the loader would prefer
    // model.safetensors anyway, but a stale index would confuse other tools).
    m.save_pretrained(d.path(), None, &SaveOptions::default())
        .unwrap();
    assert_eq!(file_names(d.path()), ["config.json", "model.safetensors"]);
    // And the other way: a stale model.safetensors must not shadow new shards.
    m.save_pretrained(d.path(), None, &opts).unwrap();
    assert!(!d.path().join("model.safetensors").exists());
}

#[test]
fn half_precision_save_and_load() {
    let m = tiny();
    let d = tempfile::tempdir().unwrap();
    m.save_pretrained(
        d.path(),
        None,
        &SaveOptions {
            dtype: Some(DType::BF16),
            ..Default::default()
        },
    )
    .unwrap();
    let cfg = read_json(&d.path().join("config.json"));
    assert_eq!(cfg["dtype"], "bfloat16");
    let back = OptModel::from_dir(d.path(), DType::BF16, &Device::Cpu).unwrap();
    let m16 = OptModel::new(
        m.config().clone(),
        zo_core::ParamSet::new(
            m.params()
                .iter()
                .map(|(_, n, t)| (n.to_string(), t.to_dtype(DType::BF16).unwrap())),
        )
        .unwrap(),
    )
    .unwrap();
    assert_same_params(&m16, &back);
}

#[test]
fn loaded_fixture_saves_back_bit_identical() {
    // A checkpoint loaded from a `.bin` with `decoder.` names and a tied lm_head entry comes
    // back out as HF safetensors with the same values.
    let m = OptModel::from_dir(&fixture("nobias-bin"), DType::F32, &Device::Cpu).unwrap();
    let d = tempfile::tempdir().unwrap();
    m.save_pretrained(d.path(), None, &SaveOptions::default())
        .unwrap();
    let back = OptModel::from_dir(d.path(), DType::F32, &Device::Cpu).unwrap();
    assert_same_params(&m, &back);
    assert!(!back.config().enable_bias);
}

/// A saved built-in (and any config without them) carries transformers' `model_type` and
/// `architectures`, so `AutoModelForCausalLM` loads it; a config that has them keeps its own.
#[test]
fn saved_config_names_the_architecture_for_auto_classes() {
    use zo_models::opt::Builtin;
    let cfg = Builtin::TinyOpt.config().unwrap();
    assert_eq!(cfg.vocab_size, 2048, "the tiny tokenizer's vocabulary");
    let m = Builtin::TinyOpt.load(5, DType::F32, &Device::Cpu).unwrap();
    let dir = tempfile::tempdir().unwrap();
    m.save_pretrained(dir.path(), None, &SaveOptions::default())
        .unwrap();
    let saved = read_json(&dir.path().join("config.json"));
    assert_eq!(saved["model_type"], "opt");
    assert_eq!(
        saved["architectures"],
        serde_json::json!(["OPTForCausalLM"])
    );

    let mut c = Config::preset(Preset::Tiny);
    c.extra
        .insert("architectures".into(), serde_json::json!(["OPTModel"]));
    let c = c.with_hf_identity();
    assert_eq!(c.extra["architectures"], serde_json::json!(["OPTModel"]));
    assert_eq!(c.extra["model_type"], "opt");
    assert!("gpt-2".parse::<Builtin>().is_err());
}
