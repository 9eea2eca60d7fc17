//! LoRA adapters and trainable subsets on OPT: a zero-initialised B leaves the logits exactly
//! as the base model's, the adapted forward equals the merged-weight forward, the adapter
//! round-trips through PEFT's layout, and only the selected tensors are trainable.

mod common;

use candle_core::{DType, Device, Tensor};
use zo_core::ParamSet;
use zo_models::opt::{Config, LoraSpec, Preset};
use zo_models::OptModel;

fn cfg() -> Config {
    let mut c = Config::preset(Preset::Tiny);
    c.vocab_size = 512;
    c.max_position_embeddings = 64;
    c
}

const IDS: [u32; 10] = [0, 5, 6, 7, 8, 0, 0, 9, 10, 11];
const MASK: [u8; 10] = [1, 1, 1, 1, 1, 0, 1, 1, 1, 1];

fn logits(m: &OptModel) -> Vec<f32> {
    m.logits(&IDS, &MASK, 2, 5)
        .unwrap()
        .flatten_all()
        .unwrap()
        .to_vec1()
        .unwrap()
}

/// The adapter of `spec` with B filled with a seeded pattern (non-zero), A as initialised.
fn nonzero_adapter(spec: &LoraSpec, c: &Config) -> ParamSet {
    let fresh = spec.init(c, 7, DType::F32, &Device::Cpu).unwrap();
    let items = fresh
        .iter()
        .map(|(i, n, t)| {
            let t = if n.ends_with("lora_B.weight") {
                let k = t.elem_count();
                let v: Vec<f32> = (0..k)
                    .map(|j| ((j * 7 + i * 13) % 17) as f32 / 17.0 - 0.5)
                    .collect();
                Tensor::from_vec(v, t.dims(), &Device::Cpu).unwrap()
            } else {
                t.clone()
            };
            (n.to_string(), t)
        })
        .collect::<Vec<_>>();
    ParamSet::new(items).unwrap()
}

#[test]
fn zero_b_gives_the_base_logits_exactly() {
    common::select_ops();
    let c = cfg();
    let base = OptModel::random(&c, 3, DType::F32, &Device::Cpu).unwrap();
    let want = logits(&base);
    let spec = LoraSpec::default();
    let adapter = spec.init(&c, 11, DType::F32, &Device::Cpu).unwrap();
    // A is not zero (so the test sees a live adapter), B is.
    let a = adapter
        .get("model.decoder.layers.0.self_attn.q_proj.lora_A.weight")
        .unwrap();
    let bound = 1.0 / (c.hidden_size as f32).sqrt();
    let av: Vec<f32> = a.flatten_all().unwrap().to_vec1().unwrap();
    assert!(av.iter().any(|&x| x != 0.0));
    assert!(av.iter().all(|&x| x.abs() <= bound));
    let m = base.with_lora(&spec, adapter).unwrap();
    assert_eq!(logits(&m), want);
}

#[test]
fn lora_forward_equals_the_merged_forward() {
    common::select_ops();
    let c = cfg();
    for targets in [
        vec!["q_proj", "v_proj"],
        vec!["k_proj", "out_proj", "fc1", "fc2"],
    ] {
        let spec = LoraSpec {
            r: 4,
            alpha: 16.0,
            targets: targets.iter().map(|s| s.to_string()).collect(),
        };
        let base = OptModel::random(&c, 3, DType::F32, &Device::Cpu).unwrap();
        let base_logits = logits(&base);
        let m = base.with_lora(&spec, nonzero_adapter(&spec, &c)).unwrap();
        let got = logits(&m);
        let want = logits(&m.merged().unwrap());
        let max_diff = got
            .iter()
            .zip(&want)
            .map(|(a, b)| (a - b).abs())
            .fold(0f32, f32::max);
        assert!(
            max_diff < 1e-4,
            "{targets:?}: max |lora − merged| = {max_diff}"
        );
        assert_ne!(got, base_logits, "{targets:?}: the adapter changed nothing");
    }
}

#[test]
fn the_adapter_is_the_trainable_set_and_the_base_is_kept_apart() {
    common::select_ops();
    let c = cfg();
    let spec = LoraSpec::default();
    let base = OptModel::random(&c, 3, DType::F32, &Device::Cpu).unwrap();
    let n_base = base.params().len();
    let m = base
        .with_lora(&spec, spec.init(&c, 1, DType::F32, &Device::Cpu).unwrap())
        .unwrap();
    let names: Vec<(String, Vec<usize>)> = m
        .params()
        .iter()
        .map(|(_, n, t)| (n.to_string(), t.dims().to_vec()))
        .collect();
    assert_eq!(names, spec.expected_params(&c));
    assert_eq!(m.params().len(), 4 * c.num_hidden_layers);
    assert_eq!(m.base_params().len(), n_base);
    assert!(m.params().names().iter().all(|n| n.contains("lora_")));
}

#[test]
fn the_adapter_round_trips_through_peft_layout() {
    common::select_ops();
    let c = cfg();
    let spec = LoraSpec::default();
    let dir = tempfile::tempdir().unwrap();
    let base = OptModel::random(&c, 3, DType::F32, &Device::Cpu).unwrap();
    let m = base
        .clone()
        .with_lora(&spec, nonzero_adapter(&spec, &c))
        .unwrap();
    m.save_adapter(dir.path(), "base").unwrap();
    let cfg_json: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(dir.path().join("adapter_config.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(cfg_json["peft_type"], "LORA");
    assert_eq!(cfg_json["r"], 8);
    let keys: Vec<String> = zo_models::opt::load::read_safetensors_file(
        &dir.path().join("adapter_model.safetensors"),
        &Device::Cpu,
    )
    .unwrap()
    .into_iter()
    .map(|(k, _)| k)
    .collect();
    assert!(keys.contains(
        &"base_model.model.model.decoder.layers.1.self_attn.v_proj.lora_B.weight".to_string()
    ));
    let back = base.load_adapter(dir.path()).unwrap();
    assert_eq!(logits(&back), logits(&m));
}

#[test]
fn bad_adapters_are_named_errors() {
    common::select_ops();
    let c = cfg();
    let base = OptModel::random(&c, 3, DType::F32, &Device::Cpu).unwrap();
    let bad = LoraSpec {
        targets: vec!["qproj".into()],
        ..LoraSpec::default()
    };
    let e = bad.init(&c, 1, DType::F32, &Device::Cpu).unwrap_err();
    assert!(e.to_string().contains("`qproj`"), "{e}");
    let spec = LoraSpec::default();
    let other = LoraSpec {
        r: 4,
        ..LoraSpec::default()
    };
    let e = base
        .with_lora(&spec, other.init(&c, 1, DType::F32, &Device::Cpu).unwrap())
        .unwrap_err();
    assert!(e.to_string().contains("lora_"), "{e}");
}

#[test]
fn trainable_patterns_select_by_substring_or_glob() {
    common::select_ops();
    let c = cfg();
    let m = OptModel::random(&c, 3, DType::F32, &Device::Cpu).unwrap();
    let sub = m.clone().with_trainable(&["fc1".into()]).unwrap();
    assert!(!sub.params().is_empty());
    assert!(sub.params().names().iter().all(|n| n.contains("fc1")));
    let glob = m
        .clone()
        .with_trainable(&["model.decoder.layers.?.self_attn.*_proj.bias".into()])
        .unwrap();
    assert_eq!(glob.params().len(), 4 * c.num_hidden_layers);
    let e = m.with_trainable(&["lm_head".into()]).unwrap_err();
    assert!(e.to_string().contains("`lm_head`"), "{e}");
}

/// MeZO's `LoRA(model, r=8, alpha=16)` on opt-125m shapes, recorded by
/// `fixtures/make_mezo_lora_vectors.py` from MeZO's `large_models/lora.py`: the same trainable
/// tensors (MeZO's `nn.Parameter` names + `.weight`, PEFT's module form), shapes, scaling and
/// initialisation range.
#[test]
fn lora_matches_mezo_vectors() {
    common::select_ops();
    let v: serde_json::Value =
        serde_json::from_str(include_str!("fixtures/mezo_lora_vectors.json")).unwrap();
    let c = Config::preset(Preset::Opt125m);
    assert_eq!(v["config"]["hidden_size"], c.hidden_size);
    assert_eq!(v["config"]["num_hidden_layers"], c.num_hidden_layers);
    let spec = LoraSpec::default();
    assert_eq!(v["r"], spec.r);
    assert_eq!(v["scaling"].as_f64().unwrap(), spec.scaling());
    let mezo: Vec<(String, Vec<usize>)> = v["trainable"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                format!("{}.weight", e[0].as_str().unwrap()),
                e[1].as_array()
                    .unwrap()
                    .iter()
                    .map(|d| d.as_u64().unwrap() as usize)
                    .collect(),
            )
        })
        .collect();
    assert_eq!(spec.expected_params(&c), mezo);
    assert_eq!(v["b_all_zero"], true);
    // Ours: A within MeZO's kaiming-uniform(a=√5) bound 1/√in, B zero (one layer suffices).
    let small = LoraSpec {
        targets: vec!["q_proj".into()],
        ..LoraSpec::default()
    };
    let mut c1 = c.clone();
    c1.num_hidden_layers = 1;
    let set = small.init(&c1, 42, DType::F32, &Device::Cpu).unwrap();
    let bound = v["a_bound"].as_f64().unwrap() as f32;
    let a: Vec<f32> = set.tensors()[0].flatten_all().unwrap().to_vec1().unwrap();
    let max = a.iter().fold(0f32, |m, x| m.max(x.abs()));
    assert!(
        max <= bound && max > 0.9 * bound,
        "max |A| {max}, bound {bound}"
    );
    let b: Vec<f32> = set.tensors()[1].flatten_all().unwrap().to_vec1().unwrap();
    assert!(b.iter().all(|&x| x == 0.0));
}
