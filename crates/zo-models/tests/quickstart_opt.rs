//! The compiled-in quickstart model (`OptModel::builtin_quickstart`) against transformers: its
//! logits on left-padded prompts equal those `assets/quickstart-opt/make_quickstart_opt.py`
//! computed with `OPTForCausalLM` from the same files (`assets/quickstart-opt/golden.json`).

mod common;

use std::path::PathBuf;

use candle_core::{DType, Device};
use common::*;
use zo_models::tokenizer::Tokenizer;
use zo_models::OptModel;

const TOL: f64 = 1e-4;

fn assets() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("assets/quickstart-opt")
}

#[test]
fn embedded_quickstart_model_matches_transformers() {
    let model = OptModel::builtin_quickstart(DType::F32, &Device::Cpu).unwrap();
    let g = read_json(&assets().join("golden.json"));
    let ids = u32_rows(&g["input_ids"]);
    let mask: Vec<u8> = flat(&u32_rows(&g["attention_mask"]))
        .into_iter()
        .map(|x| x as u8)
        .collect();
    let (batch, seq) = (ids.len(), ids[0].len());
    // The prompts encode to the ids transformers was given (BOS 0, then the tiny BPE).
    let tok = Tokenizer::builtin_tiny();
    for (b, p) in g["prompts"].as_array().unwrap().iter().enumerate() {
        let want: Vec<u32> = ids[b]
            .iter()
            .zip(&mask[b * seq..(b + 1) * seq])
            .filter(|(_, &m)| m == 1)
            .map(|(&i, _)| i)
            .collect();
        assert_eq!(tok.encode(p.as_str().unwrap()).unwrap(), want, "{p}");
    }
    let logits = to_vec3(&model.logits(&flat(&ids), &mask, batch, seq).unwrap());
    let mut max_diff = 0f64;
    for (b, want) in g["last_logits"].as_array().unwrap().iter().enumerate() {
        let got: Vec<f64> = logits[b][seq - 1].iter().map(|&x| x as f64).collect();
        max_diff = max_diff.max(max_abs_diff(&got, &f64_vec(want)));
    }
    let cols: Vec<usize> = f64_vec(&g["columns"]).iter().map(|&c| c as usize).collect();
    for (b, rows) in g["column_logits"].as_array().unwrap().iter().enumerate() {
        let rows = rows.as_array().unwrap();
        let start = seq - rows.len();
        for (i, want) in rows.iter().enumerate() {
            let got: Vec<f64> = cols
                .iter()
                .map(|&c| logits[b][start + i][c] as f64)
                .collect();
            max_diff = max_diff.max(max_abs_diff(&got, &f64_vec(want)));
        }
    }
    eprintln!("quickstart-opt: max |logit - transformers| = {max_diff:.3e}");
    assert!(max_diff <= TOL, "{max_diff}");
}

#[test]
fn embedded_quickstart_model_is_the_shipped_directory() {
    let embedded = OptModel::builtin_quickstart(DType::F32, &Device::Cpu).unwrap();
    let dir = OptModel::from_dir(&assets(), DType::F32, &Device::Cpu).unwrap();
    assert_eq!(embedded.config(), dir.config());
    assert_eq!(embedded.params().names(), dir.params().names());
    for ((_, name, a), (_, _, b)) in embedded.params().iter().zip(dir.params().iter()) {
        let (a, b) = (
            a.flatten_all().unwrap().to_vec1::<f32>().unwrap(),
            b.flatten_all().unwrap().to_vec1::<f32>().unwrap(),
        );
        assert!(a == b, "{name}");
    }
    // 239 488 parameters (the tied lm_head counted once).
    let n: usize = embedded
        .params()
        .iter()
        .map(|(_, _, t)| t.elem_count())
        .sum();
    assert_eq!(n, 239_488);
}
