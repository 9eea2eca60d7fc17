//! Writes random OPTs saved by zo (`save_pretrained`) plus zo's own logits, for
//! `tests/fixtures/check_zo_saved.py` to load with transformers and compare.
//!
//!     cargo run -p zo-models --example save_for_hf_check -- /tmp/zo-saved
//!     $VENV/bin/python crates/zo-models/tests/fixtures/check_zo_saved.py /tmp/zo-saved
//!
//! Two models: pre-LN (opt-125m's layout) and post-LN with project_in/out (opt-350m's), both
//! with the built-in tokenizer's vocabulary; the second is saved sharded. f32 throughout.

use std::path::PathBuf;

use candle_core::{DType, Device, Tensor};
use zo_models::opt::save::SaveOptions;
use zo_models::opt::{Config, Preset};
use zo_models::tokenizer::Tokenizer;
use zo_models::{Batch, OptModel};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let out = PathBuf::from(
        std::env::args()
            .nth(1)
            .ok_or("usage: save_for_hf_check <out_dir>")?,
    );
    let tok = Tokenizer::builtin_tiny();
    let texts = [
        "the film is a delight . It was great",
        "the plot is a mess",
        "Yes or No?\nYes",
    ];
    let seqs: Vec<Vec<u32>> = texts
        .iter()
        .map(|t| tok.encode(t))
        .collect::<Result<_, _>>()?;
    let batch = Batch::left_padded(&seqs, &vec![1; seqs.len()], 1, Some(8))?;

    let mut pre = Config::preset(Preset::Tiny);
    pre.vocab_size = tok.vocab_size();
    pre.max_position_embeddings = 128;
    let mut post = Config::preset(Preset::Tiny);
    post.vocab_size = tok.vocab_size();
    post.max_position_embeddings = 128;
    post.do_layer_norm_before = false;
    post.word_embed_proj_dim = Some(32);

    for (name, cfg, shard) in [("pre_ln", pre, usize::MAX), ("post_ln_proj", post, 300_000)] {
        let m = OptModel::random(&cfg, 11, DType::F32, &Device::Cpu)?;
        // Make biases and LayerNorms non-trivial (a deterministic pattern) so that a dropped
        // term would show in the logits. Written in place: the model sees it.
        for (n, t) in m.params().names().iter().zip(m.params().tensors()) {
            if n.ends_with(".bias") || n.contains("layer_norm") {
                let k = t.elem_count() as u32;
                let pat = Tensor::arange(0u32, k, &Device::Cpu)?
                    .to_dtype(DType::F32)?
                    .affine(0.37, 0.0)?
                    .sin()?
                    .affine(0.1, 0.0)?;
                let v = (t + pat)?;
                t.slice_set(&v, 0, 0)?;
            }
        }
        let dir = out.join(name);
        m.save_pretrained(
            &dir,
            Some(&tok),
            &SaveOptions {
                dtype: None,
                max_shard_bytes: shard,
            },
        )?;
        let logits = m.logits(&batch.ids, &batch.mask, batch.batch, batch.seq_len)?;
        let json = serde_json::json!({
            "input_ids": batch.ids.chunks(batch.seq_len).collect::<Vec<_>>(),
            "attention_mask": batch.mask.chunks(batch.seq_len).collect::<Vec<_>>(),
            "logits": logits.to_vec3::<f32>()?,
            "texts": texts,
        });
        std::fs::write(dir.join("zo_logits.json"), serde_json::to_string(&json)?)?;
        eprintln!("wrote {}", dir.display());
    }
    Ok(())
}
